/*
 * Unit tests for the audit log written off the loop (audit.h
 * audit_off_loop(); store_audit.c "Off the loop").
 *
 * A real loop (libuv workers) and a real store: a SQLite file, where
 * audit_off_loop() changes nothing and every event is written at once,
 * and PostgreSQL (scripts/with-postgres), where a worker of the handle's
 * own writes the events. What must hold on both: the chain has the
 * events in exactly the order audit_write() was called, also with a
 * second process appending at the same time; a stop loses nothing.
 * PostgreSQL only (the hostile cases): audit_write() never waits for a
 * database that holds a lock; the worker's connection killed in the
 * middle of a burst loses and reorders nothing; a stop while a batch is
 * stuck spools it and everything after it, in order, and the next start
 * writes them once; a flood of failed logins against a stuck database
 * stays within the bound, and the gap is an audit.lost event.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/audit.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store_fx.h"

struct t {
    struct fx *fx;
    struct loop *l;
    bool pg;
    char key[128];   /* the audit key (PostgreSQL: set on each handle) */
    char spool[128]; /* a spool file in the test's directory */
};

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));
    void *f = NULL;

    assert_non_null(t);
    assert_int_equal(fx_setup(&f, "/tmp/test_audit_async.XXXXXX"), 0);
    t->fx = f;
    t->pg = strncmp(t->fx->path, "postgres", 8) == 0;
    snprintf(t->key, sizeof(t->key), "%s/audit.key", t->fx->dir);
    snprintf(t->spool, sizeof(t->spool), "%s/audit-pending", t->fx->dir);
    if (t->pg) {
        assert_int_equal(store_set_audit_key(t->fx->st, t->key), ERR_OK);
    }
    assert_non_null(t->l = loop_new());
    *state = t;
    return 0;
}

static int teardown_t(void **state)
{
    struct t *t = *state;
    void *f = t->fx;

    store_close(t->fx->st); /* before the loop: it stops the writer */
    t->fx->st = NULL;
    if (t->l != NULL) {
        assert_int_equal(loop_free(t->l), 0);
    }
    unlink(t->spool);
    if (t->pg) {
        unlink(t->key);
    }
    free(t);
    return teardown(&f);
}

/* Another handle on the test's store (no writer of its own: reads what
 * is committed, without a flush). */
static struct store *other(struct t *t)
{
    struct store *st = NULL;

    assert_int_equal(store_open(t->fx->path, &st), ERR_OK);
    if (t->pg) {
        assert_int_equal(store_set_audit_key(st, t->key), ERR_OK);
    }
    return st;
}

static size_t count_action(struct store *st, const char *action)
{
    struct audit_filter f = {NULL, action, 0, 0, 0};
    struct audit_entry *list = NULL;
    size_t n = 0;

    assert_int_equal(audit_list(st, &f, &list, &n), ERR_OK);
    store_list_free(list);
    return n;
}

static void verify_ok(struct store *st)
{
    int64_t bad = -1;
    char why[512] = "";
    int r = audit_verify(st, &bad, why, sizeof(why));

    if (r != ERR_OK) {
        fail_msg("chain broken at %lld: %s", (long long)bad, why);
    }
}

/* Every event of action in seq order; their details must be "0", "1",
 * ... "n-1": each exactly once, in the order written. */
static void assert_in_order(struct store *st, const char *action, int n)
{
    struct audit_filter f = {NULL, action, 0, 0, 0};
    struct audit_entry *list = NULL;
    size_t got = 0;
    char want[32];

    assert_int_equal(audit_list(st, &f, &list, &got), ERR_OK);
    if (got != (size_t)n) {
        fail_msg("%s: %zu events, want %d", action, got, n);
    }
    for (int i = 0; i < n; i++) { /* newest first */
        snprintf(want, sizeof(want), "%d", i);
        if (strcmp(list[(size_t)n - 1 - (size_t)i].detail, want) != 0) {
            fail_msg("%s: event %d has detail %s", action, i,
                     list[(size_t)n - 1 - (size_t)i].detail);
        }
    }
    store_list_free(list);
}

/* The loop turns until the committed count of action (read on another
 * handle, so no flush helps) reaches want, or ms pass. */
struct wait_for {
    struct store *reader;
    const char *action;
    size_t want;
    int64_t until;
};

static void wait_tick(struct loop *l, void *arg)
{
    struct wait_for *w = arg;

    if (util_mono_ms() >= w->until ||
        count_action(w->reader, w->action) >= w->want) {
        loop_stop(l);
        return;
    }
    assert_true(loop_add_timer(l, 10, wait_tick, arg) != 0);
}

static void wait_written(struct t *t, struct store *reader, const char *action,
                         size_t want, int ms)
{
    struct wait_for w = {reader, action, want, util_mono_ms() + ms};

    assert_true(loop_add_timer(t->l, 1, wait_tick, &w) != 0);
    assert_int_equal(loop_run(t->l), ERR_OK);
}

/* Bursts of events from the loop's timers: burst events per tick. */
struct burst {
    struct t *t;
    const char *action;
    int next, total, per_tick;
    void (*at)(struct burst *b); /* called once, at half way */
    bool done_half;
    int64_t slowest_ms; /* the slowest audit_write() */
};

static void burst_tick(struct loop *l, void *arg)
{
    struct burst *b = arg;

    for (int k = 0; k < b->per_tick && b->next < b->total; k++) {
        char d[32];
        int64_t t0 = util_mono_ms(), took;

        snprintf(d, sizeof(d), "%d", b->next++);
        assert_int_equal(
            audit_write(b->t->fx->st, "alice", "test", b->action, "target", d),
            ERR_OK);
        took = util_mono_ms() - t0;
        b->slowest_ms = took > b->slowest_ms ? took : b->slowest_ms;
    }
    if (!b->done_half && b->at != NULL && b->next >= b->total / 2) {
        b->done_half = true;
        b->at(b);
    }
    if (b->next >= b->total) {
        loop_stop(l);
        return;
    }
    assert_true(loop_add_timer(l, 1, burst_tick, arg) != 0);
}

static void stop_tick(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

/* The loop turns for ms: workers' outcomes come in. */
static void run_for(struct t *t, int ms)
{
    assert_true(loop_add_timer(t->l, ms, stop_tick, NULL) != 0);
    assert_int_equal(loop_run(t->l), ERR_OK);
}

static void run_burst(struct burst *b)
{
    assert_true(loop_add_timer(b->t->l, 1, burst_tick, b) != 0);
    assert_int_equal(loop_run(b->t->l), ERR_OK);
}

/* Events from the loop in bursts while another process appends its own:
 * both kinds end in the chain each exactly once, each in its writer's
 * order, and the chain verifies. On PostgreSQL the worker wrote them
 * (read on another handle before any flush). */
static void test_order_with_a_second_writer(void **state)
{
    struct t *t = *state;
    struct burst b = {t, "srv.ev", 0, 600, 20, NULL, false, 0};
    struct store *reader;
    pid_t pid;
    int status;

    /* the key exists before the child writes; no thread yet at the fork */
    assert_int_equal(audit_write(t->fx->st, "x", "test", "first", "", ""),
                     ERR_OK);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *st = NULL;
        char d[32];

        if (store_open(t->fx->path, &st) != ERR_OK ||
            (t->pg && store_set_audit_key(st, t->key) != ERR_OK)) {
            _exit(2);
        }
        for (int i = 0; i < 300; i++) {
            snprintf(d, sizeof(d), "%d", i);
            if (audit_write(st, "cli", "cli", "cli.ev", "", d) != ERR_OK) {
                _exit(3);
            }
        }
        store_close(st);
        _exit(0);
    }
    audit_defer(t->fx->st, 4096);
    assert_int_equal(audit_off_loop(t->fx->st, t->l, t->fx->path), ERR_OK);
    reader = other(t);
    run_burst(&b);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    wait_written(t, reader, "srv.ev", 600, 20000);
    assert_int_equal(count_action(reader, "srv.ev"), 600); /* no flush */
    assert_in_order(reader, "srv.ev", 600);
    assert_in_order(reader, "cli.ev", 300);
    verify_ok(reader);
    store_close(reader);
}

/* PostgreSQL: a connection that holds the audit tables locked. */
static struct db *lock_audit(struct t *t)
{
    struct db *db = NULL;

    assert_int_equal(db_open(t->fx->path, &db), ERR_OK);
    assert_int_equal(db_exec(db, "test",
                             "BEGIN; LOCK TABLE audit_head IN ACCESS "
                             "EXCLUSIVE MODE"),
                     ERR_OK);
    return db;
}

/* The database holds the writer behind a lock: audit_write() still
 * returns at once (before: the first one waited for the lock, up to
 * lock_timeout), and once the lock goes the events are written in order
 * by the worker. */
static void test_write_never_waits_for_a_lock(void **state)
{
    struct t *t = *state;
    struct burst b = {t, "lk.ev", 0, 200, 50, NULL, false, 0};
    struct store *reader;
    struct db *lk;

    if (!t->pg) {
        skip();
    }
    audit_defer(t->fx->st, 4096);
    assert_int_equal(audit_off_loop(t->fx->st, t->l, t->fx->path), ERR_OK);
    reader = other(t); /* opened before: an open writes (migrations) */
    lk = lock_audit(t);
    run_burst(&b);
    if (b.slowest_ms > 200) {
        fail_msg("audit_write took %lld ms behind a lock",
                 (long long)b.slowest_ms);
    }
    assert_int_equal(count_action(reader, "lk.ev"), 0); /* still waiting */
    assert_int_equal(db_exec(lk, "test", "COMMIT"), ERR_OK);
    db_close(lk);
    wait_written(t, reader, "lk.ev", 200, 20000);
    assert_in_order(reader, "lk.ev", 200);
    verify_ok(reader);
    store_close(reader);
}

static struct db *killer;

static void kill_all(struct burst *b)
{
    (void)b;
    assert_true(fx_pg_terminate(killer, true) >= 1);
}

/* The database drops every connection in the middle of a burst (its
 * backends terminated, the writer's included): the batch in flight
 * fails and goes back ahead of the rest, the worker reconnects, and the
 * chain has every event once, in order. */
static void test_outage_in_the_middle_of_a_burst(void **state)
{
    struct t *t = *state;
    struct burst b = {t, "out.ev", 0, 1000, 25, kill_all, false, 0};
    struct store *reader;

    if (!t->pg) {
        skip();
    }
    audit_defer(t->fx->st, 4096);
    assert_int_equal(audit_off_loop(t->fx->st, t->l, t->fx->path), ERR_OK);
    assert_int_equal(db_open(t->fx->path, &killer), ERR_OK);
    run_burst(&b);
    db_close(killer);
    killer = NULL;
    reader = other(t);
    wait_written(t, reader, "out.ev", 1000, 30000);
    assert_int_equal(count_action(reader, "out.ev"), 1000);
    assert_in_order(reader, "out.ev", 1000);
    verify_ok(reader);
    store_close(reader);
}

/* A stop with events queued and the database answering: none lost (the
 * batch in flight comes back, the rest is written by store_close). */
static void test_stop_writes_what_waits(void **state)
{
    struct t *t = *state;
    struct store *reader;
    char d[32];

    audit_defer(t->fx->st, 4096);
    assert_int_equal(audit_off_loop(t->fx->st, t->l, t->fx->path), ERR_OK);
    assert_int_equal(audit_spool(t->fx->st, t->spool), ERR_OK);
    for (int i = 0; i < 300; i++) {
        snprintf(d, sizeof(d), "%d", i);
        assert_int_equal(
            audit_write(t->fx->st, "alice", "test", "stop.ev", "", d), ERR_OK);
    }
    assert_true(audit_off_loop_stop(t->fx->st, 5000));
    /* as monitor_free: one last try on the handle's connection */
    while (audit_waiting(t->fx->st) > 0) {
        size_t n = 0;

        assert_int_equal(audit_write_waiting(t->fx->st, &n), ERR_OK);
    }
    store_close(t->fx->st);
    t->fx->st = NULL;
    assert_int_equal(access(t->spool, F_OK), -1); /* nothing spooled */
    reader = other(t);
    assert_in_order(reader, "stop.ev", 300);
    verify_ok(reader);
    t->fx->st = reader;
}

/* A stop while the writer's batch is held by a lock: the stop waits its
 * bound only, the batch's events and every later one go to the spool in
 * order; the writer's statement then fails (its backend terminated, so
 * nothing of it commits) and the next start writes the spool: each event
 * once, in order, the chain intact. */
static void test_stop_with_a_batch_stuck_spools_in_order(void **state)
{
    struct t *t = *state;
    struct store *st;
    struct db *lk;
    size_t n = 0;
    int64_t t0;
    char d[32];

    if (!t->pg) {
        skip();
    }
    audit_defer(t->fx->st, 4096);
    assert_int_equal(audit_off_loop(t->fx->st, t->l, t->fx->path), ERR_OK);
    assert_int_equal(audit_write(t->fx->st, "x", "test", "first", "", ""),
                     ERR_OK);
    assert_int_equal(count_action(t->fx->st, "first"), 1); /* flushed */
    assert_int_equal(audit_spool(t->fx->st, t->spool), ERR_OK);
    lk = lock_audit(t);
    for (int i = 0; i < 150; i++) {
        snprintf(d, sizeof(d), "%d", i);
        assert_int_equal(
            audit_write(t->fx->st, "alice", "test", "stuck.ev", "", d), ERR_OK);
    }
    run_for(t, 300); /* a batch goes out and waits for the lock */
    t0 = util_mono_ms();
    assert_false(audit_off_loop_stop(t->fx->st, 300));
    assert_true(util_mono_ms() - t0 < 2000);
    /* after the stop, still in order behind the stuck batch */
    for (int i = 150; i < 200; i++) {
        snprintf(d, sizeof(d), "%d", i);
        assert_int_equal(
            audit_write(t->fx->st, "alice", "test", "stuck.ev", "", d), ERR_OK);
    }
    store_close(t->fx->st);
    t->fx->st = NULL;
    assert_int_equal(access(t->spool, F_OK), 0);
    assert_true(fx_pg_terminate(lk, false) >= 1); /* the writer: rolled back */
    assert_int_equal(db_exec(lk, "test", "COMMIT"), ERR_OK);
    db_close(lk);
    /* the next start */
    st = other(t);
    t->fx->st = st;
    assert_int_equal(count_action(st, "stuck.ev"), 0);
    assert_int_equal(audit_spool(st, t->spool), ERR_OK);
    while (audit_waiting(st) > 0) {
        assert_int_equal(audit_write_waiting(st, &n), ERR_OK);
    }
    assert_int_equal(access(t->spool, F_OK), -1);
    assert_in_order(st, "stuck.ev", 200);
    verify_ok(st);
}

/* A client that makes audited failures as fast as it can while the
 * database holds the writer: the queue stays within the bound (16 here,
 * half of it for failed logins), the rest is counted, and the count is
 * in the chain as audit.lost at the place of each gap: before the first
 * event kept after it. */
static void test_a_flood_stays_bounded(void **state)
{
    struct t *t = *state;
    struct audit_filter f = {NULL, NULL, 0, 0, 0};
    struct audit_entry *list = NULL;
    struct store *reader;
    struct db *lk;
    size_t n = 0, i, kept = 0, refused = 0;
    char d[32];

    if (!t->pg) {
        skip();
    }
    audit_defer(t->fx->st, 16);
    assert_int_equal(audit_off_loop(t->fx->st, t->l, t->fx->path), ERR_OK);
    lk = lock_audit(t);
    for (i = 0; i < 5000; i++) {
        snprintf(d, sizeof(d), "%zu", i);
        if (audit_write(t->fx->st, "mallory", "10.0.0.1", "login.fail",
                        "mallory", d) == ERR_OK) {
            kept++;
        } else {
            refused++;
        }
        assert_true(wqueue_len(&t->fx->st->audit_later, NULL) <= 16);
    }
    assert_int_equal(kept, 8); /* half of the room */
    assert_int_equal(refused, 5000 - 8);
    for (i = 0; i < 20; i++) { /* the other half stays for the rest */
        snprintf(d, sizeof(d), "%zu", i);
        (void)audit_write(t->fx->st, "admin", "api", "user.add", "bob", d);
        assert_true(wqueue_len(&t->fx->st->audit_later, NULL) <= 16);
    }
    assert_int_equal(db_exec(lk, "test", "COMMIT"), ERR_OK);
    db_close(lk);
    reader = other(t);
    wait_written(t, reader, "user.add", 7, 20000);
    /* room again: the gap's note first, then the new event */
    assert_int_equal(
        audit_write(t->fx->st, "admin", "api", "after", "", "after"), ERR_OK);
    wait_written(t, reader, "after", 1, 20000);
    assert_int_equal(count_action(reader, "login.fail"), 8);
    assert_int_equal(count_action(reader, "user.add"), 7);
    assert_int_equal(count_action(reader, "audit.lost"), 2);
    assert_int_equal(audit_list(reader, &f, &list, &n), ERR_OK);
    assert_true(n >= 16);
    assert_string_equal(list[0].action, "after");
    assert_string_equal(list[1].action, "audit.lost");
    assert_non_null(strstr(list[1].detail, "13 audit event(s)"));
    assert_string_equal(list[9].action, "audit.lost"); /* after the 8 */
    assert_non_null(strstr(list[9].detail, "4992 audit event(s)"));
    assert_string_equal(list[10].action, "login.fail");
    store_list_free(list);
    verify_ok(reader);
    store_close(reader);
}

/* A read on the server's own handle right after a write sees it (the
 * API's GET /audit after an action): audit_list() flushes first. */
static void test_read_after_write_sees_it(void **state)
{
    struct t *t = *state;
    char d[32];

    audit_defer(t->fx->st, 4096);
    assert_int_equal(audit_off_loop(t->fx->st, t->l, t->fx->path), ERR_OK);
    for (int i = 0; i < 100; i++) {
        snprintf(d, sizeof(d), "%d", i);
        assert_int_equal(
            audit_write(t->fx->st, "admin", "api", "user.add", "bob", d),
            ERR_OK);
        assert_int_equal(count_action(t->fx->st, "user.add"), (size_t)i + 1);
    }
    assert_in_order(t->fx->st, "user.add", 100);
    verify_ok(t->fx->st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_with_a_second_writer, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(test_write_never_waits_for_a_lock,
                                        setup, teardown_t),
        cmocka_unit_test_setup_teardown(test_outage_in_the_middle_of_a_burst,
                                        setup, teardown_t),
        cmocka_unit_test_setup_teardown(test_stop_writes_what_waits, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(
            test_stop_with_a_batch_stuck_spools_in_order, setup, teardown_t),
        cmocka_unit_test_setup_teardown(test_a_flood_stays_bounded, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(test_read_after_write_sees_it, setup,
                                        teardown_t),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
