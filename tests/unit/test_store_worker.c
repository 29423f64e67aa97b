/*
 * Unit tests for store work off the loop (store/store_worker.h): jobs on
 * libuv workers with connections of their own, in order, and a stop that
 * is bounded whatever the database does.
 *
 * A real loop (libuv workers) and a real PostgreSQL (scripts/with-postgres;
 * the worker tests skip elsewhere). The hostile cases: the worker
 * connection's backend stopped with SIGSTOP, so a statement on it never
 * returns (a frozen database server; its statement_timeout never fires),
 * must not hold store_worker_stop past its bound; and a job that comes
 * back after the stop must not touch its freed owner (the owner here is
 * on the heap and freed at once: run under ASan to see a touch).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/store_worker.h"
#include "store_fx.h"

/* What the jobs' done saw while the owner lived. */
struct owner {
    int order[16]; /* job ids, in the order their done ran */
    int n;
    int64_t pid; /* the last job's backend */
    bool ran[16];
};

/* done(NULL, j): jobs dropped or forgotten (the owner may be gone) */
static int orphans;
/* the store is on a PostgreSQL server */
static bool on_server;

struct tjob {
    struct store_work job;
    int id;
    int64_t pid; /* its connection's backend (PostgreSQL) */
    int r;
};

static int64_t backend_pid(struct store *st)
{
    struct db_stmt *s = NULL;
    bool row = false;
    int64_t pid = -1;

    if (db_prepare(st->db, "test", "SELECT pg_backend_pid()", &s) == ERR_OK &&
        db_step(s, &row) == ERR_OK && row) {
        pid = db_col_int64(s, 0);
    }
    db_finalize(s);
    return pid;
}

/* On a worker: no cmocka asserts here (they jump on the test's thread). */
static void tjob_work(struct store_work *j, struct store *st)
{
    struct tjob *t = (struct tjob *)j;
    const char *ids[1] = {"nobody"};
    bool active[1];

    if (on_server) {
        t->pid = backend_pid(st);
    }
    t->r = store_users_active(st, ids, 1, active);
}

static void tjob_done(void *owner, struct store_work *j)
{
    struct tjob *t = (struct tjob *)j;
    struct owner *o = owner;

    if (o == NULL) {
        orphans++;
    } else {
        /* writes into the owner: a freed one is ASan's to see */
        o->ran[o->n] = j->ran;
        o->order[o->n++] = t->id;
        o->pid = t->pid;
    }
    free(t);
}

static struct tjob *tjob_new(int id)
{
    struct tjob *t = calloc(1, sizeof(*t));

    assert_non_null(t);
    t->id = id;
    t->r = -1;
    t->job.work = tjob_work;
    t->job.done = tjob_done;
    return t;
}

struct until {
    const int *count;
    int want;
    int64_t deadline;
};

static void until_tick(struct loop *l, void *arg)
{
    struct until *u = arg;

    if (*u->count >= u->want || util_mono_ms() >= u->deadline) {
        loop_stop(l);
        return;
    }
    assert_true(loop_add_timer(l, 5, until_tick, arg) != 0);
}

/* Runs the loop until *count reaches want (at most ms). */
static void run_until(struct loop *l, const int *count, int want, int ms)
{
    struct until u = {count, want, util_mono_ms() + ms};

    assert_true(loop_add_timer(l, 1, until_tick, &u) != 0);
    assert_int_equal(loop_run(l), ERR_OK);
}

/* The test's store (fx), loop and owner; a test that frees the loop or
 * the owner itself sets it NULL. */
struct t {
    struct fx *fx;
    struct loop *l;
    struct owner *o;
};

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));
    void *f = NULL;

    orphans = 0;
    assert_non_null(t);
    assert_int_equal(fx_setup(&f, "/tmp/test_store_worker.XXXXXX"), 0);
    t->fx = f;
    on_server = strncmp(t->fx->path, "postgres", 8) == 0;
    assert_non_null(t->l = loop_new());
    assert_non_null(t->o = calloc(1, sizeof(*t->o)));
    *state = t;
    return 0;
}

static int teardown_t(void **state)
{
    struct t *t = *state;
    void *f = t->fx;

    if (t->l != NULL) {
        assert_int_equal(loop_free(t->l), 0);
    }
    free(t->o);
    free(t);
    return teardown(&f);
}

/* A worker on the test's PostgreSQL (the test skips elsewhere). */
static struct store_worker *server_worker(struct t *t, unsigned conns)
{
    struct store_worker *w;

    if (!on_server) {
        skip(); /* only a database server has workers */
    }
    assert_non_null(w = store_worker_new(t->l, t->fx->st, t->fx->path, conns,
                                         "test", t->o));
    assert_true(store_worker_async(w));
    return w;
}

/* No server's store (location NULL, as on SQLite): each job runs at once
 * on the main store, its done before store_worker_run returns; the
 * worker has nothing to wait for at stop. */
static void test_inline_without_a_server(void **state)
{
    struct t *t = *state;
    struct owner *o = t->o;
    struct store_worker *w;

    assert_non_null(w = store_worker_new(t->l, t->fx->st, NULL, 1, "test", o));
    assert_false(store_worker_async(w));
    store_worker_run(w, &tjob_new(1)->job);
    store_worker_run(w, &tjob_new(2)->job);
    assert_int_equal(o->n, 2);
    assert_int_equal(o->order[0], 1);
    assert_int_equal(o->order[1], 2);
    assert_true(o->ran[0] && o->ran[1]);
    assert_false(store_worker_busy(w));
    assert_int_equal(store_worker_stop(w, 1000), 0);
    assert_int_equal(orphans, 0);
}

/* On PostgreSQL: jobs go to worker threads (store_worker_run returns at
 * once, their done runs on the loop), one connection runs them one after
 * the other in the order given, on one backend; a waiting job its
 * wanted() refuses is dropped unrun. */
static bool refuse(void *owner, const struct store_work *j)
{
    (void)owner;
    return ((const struct tjob *)j)->id != 3;
}

static void test_jobs_in_order_on_a_worker(void **state)
{
    struct t *t = *state;
    struct owner *o = t->o;
    struct store_worker *w = server_worker(t, 1);
    struct tjob *j;
    int64_t first_pid;

    for (int i = 1; i <= 4; i++) {
        j = tjob_new(i);
        j->job.wanted = refuse;
        store_worker_run(w, &j->job);
    }
    assert_int_equal(o->n, 0); /* none done in store_worker_run */
    assert_true(store_worker_busy(w));
    run_until(t->l, &o->n, 3, 15000);
    assert_int_equal(o->n, 3);
    assert_int_equal(orphans, 1); /* job 3, dropped unrun */
    assert_int_equal(o->order[0], 1);
    assert_int_equal(o->order[1], 2);
    assert_int_equal(o->order[2], 4);
    assert_true(o->ran[0] && o->ran[1] && o->ran[2]);
    assert_false(store_worker_busy(w));
    first_pid = o->pid;
    assert_true(first_pid > 0);
    assert_true(first_pid != backend_pid(t->fx->st)); /* its own */
    store_worker_run(w, &tjob_new(5)->job);
    run_until(t->l, &o->n, 4, 15000);
    assert_int_equal(o->pid, first_pid); /* the same connection again */
    assert_int_equal(store_worker_stop(w, 1000), 0);
}

/* The hostile case: the worker connection's backend is stopped, so the
 * job's statement never returns. store_worker_stop gives up after its
 * bound, the waiting job is dropped, the owner is freed at once; once
 * the backend goes on, the job comes back and its done runs with no
 * owner, touching nothing freed (ASan would see it). */
static void test_stop_is_bounded_when_the_server_is_stopped(void **state)
{
    struct t *t = *state;
    struct store_worker *w = server_worker(t, 1);
    int64_t pid, t0, took;
    unsigned stuck;

    store_worker_run(w, &tjob_new(1)->job);
    run_until(t->l, &t->o->n, 1, 15000);
    assert_int_equal(t->o->n, 1);
    pid = t->o->pid;
    assert_true(pid > 0);
    if (kill((pid_t)pid, SIGSTOP) != 0) {
        store_worker_stop(w, 1000);
        skip(); /* not ours to stop (another user's server) */
    }
    store_worker_run(w, &tjob_new(2)->job); /* hangs on the backend */
    store_worker_run(w, &tjob_new(3)->job); /* waits behind it */
    run_until(t->l, &t->o->n, 2, 300);      /* nothing comes back */
    assert_int_equal(t->o->n, 1);
    t0 = util_mono_ms();
    stuck = store_worker_stop(w, 400);
    took = util_mono_ms() - t0;
    free(t->o); /* the owner goes at once */
    t->o = NULL;
    /* on again before any assert, so a failure leaves no server stopped */
    assert_int_equal(kill((pid_t)pid, SIGCONT), 0);
    assert_int_equal(stuck, 1);
    assert_true(took >= 390);
    assert_true(took < 400 + 300);
    assert_int_equal(orphans, 1); /* job 3, dropped unrun */
    /* job 2 comes back now: its done runs with no owner */
    run_until(t->l, &orphans, 2, 15000);
    assert_int_equal(orphans, 2);
}

/* A job whose work finished but whose done has not run yet when the
 * owner stops: stop does not wait for it, the owner goes, and the done
 * (loop_free's) runs with no owner. */
static void test_done_after_stop_touches_no_owner(void **state)
{
    struct t *t = *state;
    struct store_worker *w = server_worker(t, 2);
    struct tjob *a = tjob_new(1), *b = tjob_new(2);
    int64_t t0;

    store_worker_run(w, &a->job);
    store_worker_run(w, &b->job);
    /* the work is over, their done not yet (the loop has not run) */
    assert_true(util_wait_flag(&a->job.finished, 15000));
    assert_true(util_wait_flag(&b->job.finished, 15000));
    assert_int_equal(t->o->n, 0);
    t0 = util_mono_ms();
    assert_int_equal(store_worker_stop(w, 5000), 0);
    assert_true(util_mono_ms() - t0 < 100);
    free(t->o);
    t->o = NULL;
    assert_int_equal(loop_free(t->l), 0); /* runs the two callbacks */
    t->l = NULL;
    assert_int_equal(orphans, 2);
}

/* A database that cannot be reached: the job finds no connection (ran
 * false), its done still runs once, on the loop. */
static void test_no_connection_still_answers(void **state)
{
    struct t *t = *state;
    struct store_worker *w;

    if (!on_server) {
        skip();
    }
    assert_non_null(
        w = store_worker_new(t->l, t->fx->st,
                             "postgresql:///nowhere?host=/nonexistent&"
                             "connect_timeout=2",
                             1, "test", t->o));
    store_worker_run(w, &tjob_new(1)->job);
    run_until(t->l, &t->o->n, 1, 15000);
    assert_int_equal(t->o->n, 1);
    assert_false(t->o->ran[0]);
    assert_int_equal(store_worker_stop(w, 1000), 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown_t)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_inline_without_a_server),
        T(test_jobs_in_order_on_a_worker),
        T(test_stop_is_bounded_when_the_server_is_stopped),
        T(test_done_after_stop_touches_no_owner),
        T(test_no_connection_still_answers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
