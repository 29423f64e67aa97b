/*
 * Unit tests for the session report's writes off the loop (store.h
 * store_session_off_loop(); store_session_async.c).
 *
 * A real loop (libuv workers) and a real store: a SQLite file, where
 * store_session_off_loop() changes nothing and every write is made at
 * once, and PostgreSQL (scripts/with-postgres), where a worker of the
 * handle's own makes them. What must hold on both: each row gets its
 * writes in the order they were made, and is closed once (a second close
 * changes nothing); a read on the same handle right after a close sees
 * it closed; a stop loses nothing. PostgreSQL only: a close never waits
 * for a database that holds the sessions table locked, and the writer's
 * connection killed in the middle of a stream of closes loses none.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store.h"
#include "store_fx.h"

#define NROWS 200

struct t {
    struct fx *fx;
    struct loop *l;
    bool pg;
    char ids[NROWS][STORE_ID_MAX + 1];
};

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));
    void *f = NULL;

    assert_non_null(t);
    assert_int_equal(fx_setup(&f, "/tmp/test_store_rows_async.XXXXXX"), 0);
    t->fx = f;
    t->pg = strncmp(t->fx->path, "postgres", 8) == 0;
    assert_non_null(t->l = loop_new());
    /* the rows, open, written before the writer starts (as the login
     * path's connections do) */
    for (int i = 0; i < NROWS; i++) {
        struct store_session s;

        memset(&s, 0, sizeof(s));
        util_uuid4(t->ids[i]);
        snprintf(s.id, sizeof(s.id), "%s", t->ids[i]);
        snprintf(s.user_name, sizeof(s.user_name), "alice");
        snprintf(s.kind, sizeof(s.kind), "exec");
        s.started_at = 1000 + i;
        s.exit_status = -1;
        assert_int_equal(store_session_open(t->fx->st, &s), ERR_OK);
    }
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
    free(t);
    return teardown(&f);
}

/* Another handle on the test's store (no writer of its own: reads what
 * is committed, without a flush). */
static struct store *other(struct t *t)
{
    struct store *st = NULL;

    assert_int_equal(store_open(t->fx->path, &st), ERR_OK);
    return st;
}

static size_t count_closed(struct store *st)
{
    struct store_session_filter f = {"alice", NULL, NULL, NULL, 0, 0, 0};
    struct store_session *list = NULL;
    size_t n = 0, closed = 0;

    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    for (size_t i = 0; i < n; i++) {
        closed += list[i].ended_at != 0;
    }
    store_list_free(list);
    return closed;
}

static void stop_tick(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

/* The loop turns until reader sees want rows closed, or ms pass. */
static void wait_closed(struct t *t, struct store *reader, size_t want, int ms)
{
    int64_t until = util_mono_ms() + ms;

    while (count_closed(reader) < want && util_mono_ms() < until) {
        assert_true(loop_add_timer(t->l, 20, stop_tick, NULL) != 0);
        assert_int_equal(loop_run(t->l), ERR_OK);
    }
}

/* Row i's writes, as a session's end makes them: the node that held the
 * agent, the recording, the close, then a second close that must change
 * nothing. Returns the slowest call's time. */
static int64_t end_row(struct t *t, int i)
{
    struct store_session u;
    char path[64], result[32];
    int64_t t0 = util_mono_ms();

    memset(&u, 0, sizeof(u));
    snprintf(u.id, sizeof(u.id), "%s", t->ids[i]);
    snprintf(u.agent_node, sizeof(u.agent_node), "node-%d", i);
    assert_int_equal(store_session_update(t->fx->st, &u), ERR_OK);
    snprintf(path, sizeof(path), "/rec/%d.cast", i);
    assert_int_equal(store_session_set_recording(t->fx->st, t->ids[i], path,
                                                 (uint64_t)i, "ab"),
                     ERR_OK);
    snprintf(result, sizeof(result), "ok %d", i);
    assert_int_equal(store_session_close(t->fx->st, t->ids[i], 5000 + i,
                                         (uint64_t)i, (uint64_t)(2 * i), 0,
                                         result),
                     ERR_OK);
    (void)store_session_close(t->fx->st, t->ids[i], 9999, 0, 0, 1,
                              "error: closed twice");
    return util_mono_ms() - t0;
}

/* Every row has its own writes, once, the second close ignored. */
static void assert_rows(struct t *t, struct store *st)
{
    for (int i = 0; i < NROWS; i++) {
        struct store_session s;
        char want[64];

        assert_int_equal(store_session_get(st, t->ids[i], &s), ERR_OK);
        snprintf(want, sizeof(want), "ok %d", i);
        assert_string_equal(s.result, want);
        assert_int_equal(s.ended_at, 5000 + i);
        assert_int_equal(s.bytes_up, i);
        assert_int_equal(s.bytes_down, 2 * i);
        assert_int_equal(s.exit_status, 0);
        snprintf(want, sizeof(want), "/rec/%d.cast", i);
        assert_string_equal(s.recording_path, want);
        assert_int_equal(s.recording_size, i);
        snprintf(want, sizeof(want), "node-%d", i);
        assert_string_equal(s.agent_node, want);
    }
}

static void test_in_order_and_once(void **state)
{
    struct t *t = *state;
    struct store *reader;

    assert_int_equal(store_session_off_loop(t->fx->st, t->l, t->fx->path, 4096),
                     ERR_OK);
    for (int i = 0; i < NROWS; i++) {
        (void)end_row(t, i);
    }
    if (!t->fx->shared) {
        assert_rows(t, t->fx->st);
        return;
    }
    reader = other(t);
    wait_closed(t, reader, NROWS, 20000);
    assert_rows(t, reader); /* the worker wrote them: no flush there */
    store_close(reader);
}

/* A read on the server's own handle right after a close sees it (the
 * API's report after a session ended): store_session_get and _list
 * flush first. */
static void test_read_after_write_sees_it(void **state)
{
    struct t *t = *state;

    assert_int_equal(store_session_off_loop(t->fx->st, t->l, t->fx->path, 4096),
                     ERR_OK);
    for (int i = 0; i < NROWS; i++) {
        (void)end_row(t, i);
        assert_int_equal(count_closed(t->fx->st), (size_t)i + 1);
    }
    assert_rows(t, t->fx->st);
}

/* A stop with writes queued and the database answering: none lost. */
static void test_stop_writes_what_waits(void **state)
{
    struct t *t = *state;
    struct store *reader;

    assert_int_equal(store_session_off_loop(t->fx->st, t->l, t->fx->path, 4096),
                     ERR_OK);
    for (int i = 0; i < NROWS; i++) {
        (void)end_row(t, i);
    }
    assert_int_equal(store_session_off_loop_stop(t->fx->st, 5000), 0);
    store_close(t->fx->st);
    t->fx->st = NULL;
    reader = t->fx->shared ? other(t) : NULL;
    if (reader != NULL) {
        assert_rows(t, reader);
    }
    t->fx->st = reader;
    if (reader == NULL) { /* :memory: went with the handle */
        assert_int_equal(store_open(t->fx->path, &t->fx->st), ERR_OK);
    }
}

/* PostgreSQL: a connection that holds the sessions table against writes
 * (reads still go through). */
static struct db *lock_sessions(struct t *t)
{
    struct db *db = NULL;

    assert_int_equal(db_open(t->fx->path, &db), ERR_OK);
    assert_int_equal(
        db_exec(db, "test", "BEGIN; LOCK TABLE sessions IN EXCLUSIVE MODE"),
        ERR_OK);
    return db;
}

/* The database holds the writer behind a lock on the sessions table:
 * every call still returns at once (before: the first close waited for
 * the lock, up to lock_timeout, on the caller's thread), and once the
 * lock goes the rows are written, in order, once. */
static void test_close_never_waits_for_a_lock(void **state)
{
    struct t *t = *state;
    struct store *reader;
    struct db *lk;
    int64_t slowest = 0;

    if (!t->pg) {
        skip();
    }
    assert_int_equal(store_session_off_loop(t->fx->st, t->l, t->fx->path, 4096),
                     ERR_OK);
    reader = other(t);
    lk = lock_sessions(t);
    for (int i = 0; i < NROWS; i++) {
        int64_t took = end_row(t, i);

        slowest = took > slowest ? took : slowest;
    }
    if (slowest > 200) {
        fail_msg("a report row write took %lld ms behind a lock",
                 (long long)slowest);
    }
    assert_true(loop_add_timer(t->l, 300, stop_tick, NULL) != 0);
    assert_int_equal(loop_run(t->l), ERR_OK);
    assert_int_equal(count_closed(reader), 0); /* still waiting */
    assert_int_equal(db_exec(lk, "test", "COMMIT"), ERR_OK);
    db_close(lk);
    wait_closed(t, reader, NROWS, 20000);
    assert_rows(t, reader);
    store_close(reader);
}

/* Every backend of the test's database but this one's terminated. */
static void terminate_all(struct t *t)
{
    struct db *db = NULL;

    assert_int_equal(db_open(t->fx->path, &db), ERR_OK);
    assert_int_equal(db_exec(db, "test",
                             "SELECT pg_terminate_backend(pid) FROM "
                             "pg_stat_activity WHERE datname = "
                             "current_database() AND pid <> "
                             "pg_backend_pid()"),
                     ERR_OK);
    db_close(db);
}

/* The database drops every connection half way through the closes (the
 * writer's included): the batch in flight fails and goes back ahead of
 * the rest, the worker reconnects, and every row is closed once with its
 * own writes. */
static void test_outage_in_the_middle(void **state)
{
    struct t *t = *state;
    struct store *reader;

    if (!t->pg) {
        skip();
    }
    assert_int_equal(store_session_off_loop(t->fx->st, t->l, t->fx->path, 4096),
                     ERR_OK);
    for (int i = 0; i < NROWS; i++) {
        (void)end_row(t, i);
        if (i == NROWS / 2) {
            terminate_all(t);
        }
        if (i % 10 == 0) { /* batches go out meanwhile */
            assert_true(loop_add_timer(t->l, 2, stop_tick, NULL) != 0);
            assert_int_equal(loop_run(t->l), ERR_OK);
        }
    }
    reader = other(t);
    wait_closed(t, reader, NROWS, 30000);
    assert_rows(t, reader);
    store_close(reader);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_in_order_and_once, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(test_read_after_write_sees_it, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(test_stop_writes_what_waits, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(test_close_never_waits_for_a_lock,
                                        setup, teardown_t),
        cmocka_unit_test_setup_teardown(test_outage_in_the_middle, setup,
                                        teardown_t),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
