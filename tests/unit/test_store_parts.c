/*
 * Unit tests for the parts of the write lock (db.h db_begin_part;
 * docs/store.md "One writer at a time").
 *
 * On PostgreSQL the session report's writes and the audit log's appends
 * each take a part of the store's write lock (their own advisory key, and
 * the store-wide key shared), not the whole of it: a session's row is
 * written while an audit append waits, and the other way round. What the
 * lock protects must still hold with two writers at once (two processes,
 * each with its connection): the report's seq (MAX(seq) + 1) is unique
 * and gapless, the audit chain verifies with every event once, and the
 * writers that still take the whole lock wait for both. On SQLite (one
 * writer at a time, BEGIN IMMEDIATE) the same tests hold unchanged.
 */
#include <setjmp.h>
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
#include "common/util.h"
#include "store/audit.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store_fx.h"

#define PER_WRITER 150

struct t {
    struct fx *fx;
    bool pg;
    char key[128];
};

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));
    void *f = NULL;

    assert_non_null(t);
    assert_int_equal(fx_setup(&f, "/tmp/test_store_parts.XXXXXX"), 0);
    t->fx = f;
    t->pg = strncmp(t->fx->path, "postgres", 8) == 0;
    snprintf(t->key, sizeof(t->key), "%s/audit.key", t->fx->dir);
    assert_int_equal(store_set_audit_key(t->fx->st, t->key), ERR_OK);
    *state = t;
    return 0;
}

static int teardown_t(void **state)
{
    struct t *t = *state;
    void *f = t->fx;

    unlink(t->key);
    free(t);
    return teardown(&f);
}

static struct store *other(struct t *t)
{
    struct store *st = NULL;

    if (store_open(t->fx->path, &st) != ERR_OK ||
        store_set_audit_key(st, t->key) != ERR_OK) {
        return NULL;
    }
    return st;
}

/* One writer's work: per round a report row opened, an audit event, the
 * row closed. 0 when every call succeeded. */
static int write_rounds(struct t *t, const char *who)
{
    struct store *st = other(t);
    char d[64];

    if (st == NULL) {
        return 2;
    }
    for (int i = 0; i < PER_WRITER; i++) {
        struct store_session s;

        memset(&s, 0, sizeof(s));
        util_uuid4(s.id);
        snprintf(s.user_name, sizeof(s.user_name), "%s", who);
        snprintf(s.kind, sizeof(s.kind), "exec");
        s.exit_status = -1;
        snprintf(d, sizeof(d), "%s %d", who, i);
        if (store_session_open(st, &s) != ERR_OK ||
            audit_write(st, who, "test", "parts.ev", s.id, d) != ERR_OK ||
            store_session_close(st, s.id, 0, 1, 2, 0, "ok") != ERR_OK) {
            store_close(st);
            return 3;
        }
    }
    store_close(st);
    return 0;
}

static int64_t query_int(struct store *st, const char *sql)
{
    struct db_stmt *s = NULL;
    bool row = false;
    int64_t v;

    assert_int_equal(db_prepare(store_db(st), "test", sql, &s), ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    v = db_col_int64(s, 0);
    db_finalize(s);
    return v;
}

/* Two processes write report rows and audit events at once: seq is
 * 1..2N with no duplicate, every row closed, the chain has 2N events
 * and verifies. */
static void test_two_writers_keep_seq_and_chain(void **state)
{
    struct t *t = *state;
    pid_t pid[2];
    int status;
    int64_t bad = -1, t0;
    char why[256] = "";

    FX_NEED_SHARED(t->fx);
    /* the key exists before the children append */
    assert_int_equal(audit_write(t->fx->st, "x", "test", "first", "", ""),
                     ERR_OK);
    t0 = util_mono_ms();
    for (int k = 0; k < 2; k++) {
        pid[k] = fork();
        assert_true(pid[k] >= 0);
        if (pid[k] == 0) {
            _exit(write_rounds(t, k == 0 ? "w0" : "w1"));
        }
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(waitpid(pid[k], &status, 0), pid[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    print_message("two writers, %d rounds each: %lld ms\n", PER_WRITER,
                  (long long)(util_mono_ms() - t0));
    assert_int_equal(query_int(t->fx->st, "SELECT COUNT(*) FROM sessions"),
                     2 * PER_WRITER);
    assert_int_equal(
        query_int(t->fx->st, "SELECT COUNT(DISTINCT seq) FROM sessions"),
        2 * PER_WRITER);
    assert_int_equal(query_int(t->fx->st, "SELECT MIN(seq) FROM sessions"), 1);
    assert_int_equal(query_int(t->fx->st, "SELECT MAX(seq) FROM sessions"),
                     2 * PER_WRITER);
    assert_int_equal(query_int(t->fx->st, "SELECT COUNT(*) FROM sessions "
                                          "WHERE ended_at IS NULL"),
                     0);
    assert_int_equal(query_int(t->fx->st, "SELECT COUNT(*) FROM audit "
                                          "WHERE action = 'parts.ev'"),
                     2 * PER_WRITER);
    if (audit_verify(t->fx->st, &bad, why, sizeof(why)) != ERR_OK) {
        fail_msg("chain broken at %lld: %s", (long long)bad, why);
    }
}

/* What a child process does on a connection of its own (spawn). */
enum child_op { CHILD_APPEND, CHILD_USER_ADD, CHILD_OPEN };

/* A child process that opens a connection and does op: its pid; it
 * exits 0 when all succeeded. */
static pid_t spawn(struct t *t, enum child_op op)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *st = other(t);
        int r = st != NULL ? ERR_OK : ERR_STORE;

        if (r == ERR_OK && op == CHILD_APPEND) {
            r = audit_write(st, "child", "test", "held", "", "");
        } else if (r == ERR_OK && op == CHILD_USER_ADD) {
            r = store_user_add(st, "dave", NULL, false, NULL);
        }
        store_close(st);
        _exit(r == ERR_OK ? 0 : 3);
    }
    return pid;
}

/* PostgreSQL: a connection that holds the audit head locked. */
static struct db *lock_table(struct t *t, const char *table)
{
    struct db *db = NULL;
    char sql[128];

    assert_int_equal(db_open(t->fx->path, &db), ERR_OK);
    snprintf(sql, sizeof(sql), "BEGIN; LOCK TABLE %s IN ACCESS EXCLUSIVE MODE",
             table);
    assert_int_equal(db_exec(db, "test", sql), ERR_OK);
    return db;
}

/* PostgreSQL: waits (10 s at most) until n backends of the test's
 * database wait for a lock. */
static void wait_lock_waiters(struct t *t, int n)
{
    struct db *db = NULL;
    int64_t until = util_mono_ms() + 10000;
    int got = 0;

    assert_int_equal(db_open(t->fx->path, &db), ERR_OK);
    while (util_mono_ms() < until) {
        struct db_stmt *s = NULL;
        bool row = false;

        assert_int_equal(
            db_prepare(db, "test",
                       "SELECT count(*) FROM pg_stat_activity WHERE datname "
                       "= current_database() AND wait_event_type = 'Lock'",
                       &s),
            ERR_OK);
        assert_int_equal(db_step(s, &row), ERR_OK);
        got = row ? db_col_int(s, 0) : 0;
        db_finalize(s);
        if (got >= n) {
            break;
        }
        usleep(50 * 1000);
    }
    db_close(db);
    if (got < n) {
        fail_msg("%d backend(s) wait for a lock, want %d", got, n);
    }
}

/* PostgreSQL: another process's audit append waits for a lock on the
 * audit head (holding its part of the write lock meanwhile); a report
 * row is still opened and closed at once. Before (one lock for every
 * writer), the row waited for the append, up to lock_timeout (20 s), and
 * failed. */
static void test_a_row_does_not_wait_for_an_audit_append(void **state)
{
    struct t *t = *state;
    struct store_session s;
    struct db *lk;
    int64_t t0, took;
    pid_t pid;
    int status;

    if (!t->pg) {
        skip();
    }
    assert_int_equal(audit_write(t->fx->st, "x", "test", "first", "", ""),
                     ERR_OK);
    lk = lock_table(t, "audit_head");
    pid = spawn(t, CHILD_APPEND);
    wait_lock_waiters(t, 1); /* the child waits for the lock now */
    memset(&s, 0, sizeof(s));
    util_uuid4(s.id);
    snprintf(s.user_name, sizeof(s.user_name), "bob");
    snprintf(s.kind, sizeof(s.kind), "exec");
    s.exit_status = -1;
    t0 = util_mono_ms();
    assert_int_equal(store_session_open(t->fx->st, &s), ERR_OK);
    assert_int_equal(store_session_close(t->fx->st, s.id, 0, 1, 2, 0, "ok"),
                     ERR_OK);
    took = util_mono_ms() - t0;
    assert_int_equal(db_exec(lk, "test", "COMMIT"), ERR_OK);
    db_close(lk);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    if (took > 2000) {
        fail_msg("the report row waited %lld ms for an audit append",
                 (long long)took);
    }
    assert_int_equal(query_int(t->fx->st, "SELECT COUNT(*) FROM audit "
                                          "WHERE action = 'held'"),
                     1);
}

/* PostgreSQL: a writer that takes the whole lock (a user added) still
 * waits for a part's holder: while another process's audit append waits
 * for a lock on the audit head, the user is added only after it. */
static void test_a_whole_writer_waits_for_a_part(void **state)
{
    struct t *t = *state;
    struct db *lk;
    pid_t pid, adder;
    int status;

    if (!t->pg) {
        skip();
    }
    assert_int_equal(audit_write(t->fx->st, "x", "test", "first", "", ""),
                     ERR_OK);
    lk = lock_table(t, "audit_head");
    pid = spawn(t, CHILD_APPEND);
    wait_lock_waiters(t, 1); /* the child waits for the lock now */
    adder = spawn(t, CHILD_USER_ADD);
    wait_lock_waiters(t, 2); /* the adder waits too */
    usleep(500 * 1000);
    /* still waiting for the append's part of the lock */
    assert_int_equal(waitpid(adder, &status, WNOHANG), 0);
    assert_int_equal(db_exec(lk, "test", "COMMIT"), ERR_OK);
    db_close(lk);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(waitpid(adder, &status, 0), adder);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* PostgreSQL: a connection opened (store_open: the schema checked) while
 * a writer holds the whole write lock and waits for a table's lock is
 * open at once. Before, each migration step's write transaction waited
 * for that writer (a server's store worker opening its connection then:
 * an API read stalled until a lock held elsewhere went). */
static void test_a_connection_opens_while_a_writer_waits(void **state)
{
    struct t *t = *state;
    struct db *lk;
    pid_t adder, opener = -1;
    int status = 0;
    int64_t until;
    bool opened = false;

    if (!t->pg) {
        skip();
    }
    lk = lock_table(t, "users");
    adder = spawn(t, CHILD_USER_ADD);
    wait_lock_waiters(t, 1); /* the adder holds the write lock, waits */
    opener = spawn(t, CHILD_OPEN);
    until = util_mono_ms() + 5000;
    while (util_mono_ms() < until) {
        if (waitpid(opener, &status, WNOHANG) == opener) {
            opened = true;
            break;
        }
        usleep(20 * 1000);
    }
    /* still waiting: the user is added only after the lock */
    assert_int_equal(waitpid(adder, NULL, WNOHANG), 0);
    assert_int_equal(db_exec(lk, "test", "COMMIT"), ERR_OK);
    db_close(lk);
    if (!opened) {
        assert_int_equal(waitpid(opener, &status, 0), opener);
        fail_msg("a new connection waited for the writer (the lock)");
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(waitpid(adder, &status, 0), adder);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_writers_keep_seq_and_chain,
                                        setup, teardown_t),
        cmocka_unit_test_setup_teardown(
            test_a_row_does_not_wait_for_an_audit_append, setup, teardown_t),
        cmocka_unit_test_setup_teardown(test_a_whole_writer_waits_for_a_part,
                                        setup, teardown_t),
        cmocka_unit_test_setup_teardown(
            test_a_connection_opens_while_a_writer_waits, setup, teardown_t),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
