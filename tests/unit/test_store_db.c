/*
 * Unit tests of the store's database driver (src/store/db.h), the layer a
 * second backend implements: parameters spelt $1, $2, ... bind the same
 * values as PostgreSQL would (SQLite numbers "$N" names in order of first
 * appearance, so the driver refuses any other order or spelling), typed
 * binds and column getters with NULLs, the error mapping the store's
 * refusals rely on (unique -> ERR_EXISTS, foreign key -> ERR_NOT_FOUND),
 * transactions, and the fork guard.
 *
 * The database is a fresh SQLite file per test, or the location
 * PORTCULLIS_TEST_STORE names (as in store_fx.h).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/db.h"

struct dfx {
    char dir[64];
    char path[512];
    bool file;
    struct db *db;
};

static void dfx_rm(const struct dfx *f)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[sizeof(f->path) + 16];

    for (size_t i = 0; f->file && i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
}

static int setup(void **state)
{
    struct dfx *f = calloc(1, sizeof(*f));
    const char *loc = getenv("PORTCULLIS_TEST_STORE");

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_store_db.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    if (loc != NULL && loc[0] != '\0') {
        snprintf(f->path, sizeof(f->path), "%s", loc);
    } else {
        snprintf(f->path, sizeof(f->path), "%s/driver.db", f->dir);
        f->file = true;
    }
    if (db_open(f->path, &f->db) != ERR_OK ||
        db_exec(f->db, "tables",
                "CREATE TABLE drv_parent (id TEXT PRIMARY KEY);"
                "CREATE TABLE drv_t (a TEXT UNIQUE, b BIGINT, c BLOB,"
                " p TEXT REFERENCES drv_parent(id))") != ERR_OK) {
        db_close(f->db);
        dfx_rm(f);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct dfx *f = *state;

    (void)db_exec(f->db, "drop", "DROP TABLE drv_t; DROP TABLE drv_parent");
    db_close(f->db);
    dfx_rm(f);
    free(f);
    return 0;
}

static struct db *D(void **state)
{
    return ((struct dfx *)*state)->db;
}

/* Runs a statement with text parameters and no result rows. */
static int run_text(struct db *db, const char *sql, int n, const char *v1,
                    const char *v2)
{
    struct db_stmt *s = NULL;
    bool row = false;
    int r;

    if ((r = db_prepare(db, "test", sql, &s)) != ERR_OK) {
        return r;
    }
    if (n >= 1 && r == ERR_OK) {
        r = db_bind_text(s, 1, v1);
    }
    if (n >= 2 && r == ERR_OK) {
        r = db_bind_text(s, 2, v2);
    }
    if (r == ERR_OK) {
        r = db_step(s, &row);
    }
    db_finalize(s);
    return r;
}

/* "$1 ... $2 ... $1" binds as numbered: the value of $1 comes back twice
 * and in the right places, as PostgreSQL binds it. */
static void test_dollar_params_bind_by_number(void **state)
{
    struct db_stmt *s = NULL;
    bool row = false;
    size_t len = 0;

    assert_int_equal(
        db_prepare(D(state), "test", "SELECT $1, $2, $1 || $2, $1", &s),
        ERR_OK);
    assert_int_equal(db_param_count(s), 2);
    assert_int_equal(db_bind_text(s, 1, "one"), ERR_OK);
    assert_int_equal(db_bind_text(s, 2, "two"), ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    assert_string_equal(db_col_text(s, 0, &len), "one");
    assert_int_equal(len, 3);
    assert_string_equal(db_col_text(s, 1, NULL), "two");
    assert_string_equal(db_col_text(s, 2, NULL), "onetwo");
    assert_string_equal(db_col_text(s, 3, NULL), "one");
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_false(row);
    db_finalize(s);

    /* Ten and more: "$10" is its own parameter, not "$1" and a "0". */
    assert_int_equal(db_prepare(D(state), "test",
                                "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9,"
                                " $10, $11",
                                &s),
                     ERR_OK);
    assert_int_equal(db_param_count(s), 11);
    for (int i = 1; i <= 11; i++) {
        assert_int_equal(db_bind_int64(s, i, 100 + i), ERR_OK);
    }
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    for (int i = 0; i < 11; i++) {
        assert_int_equal(db_col_int64(s, i), 101 + i);
    }
    db_finalize(s);
}

/* Every spelling that could bind differently on the other database is
 * refused before it runs. */
static void test_other_param_spellings_refused(void **state)
{
    static const char *const bad[] = {
        "SELECT ?",
        "SELECT ?1",
        "SELECT :a",
        "SELECT @a",
        "SELECT $2, $1",       /* SQLite would bind $2 first */
        "SELECT $1, $3",       /* a gap */
        "SELECT $a",           /* a name, not a number */
        "SELECT $1, ?",        /* mixed */
        "SELECT $1 WHERE $02", /* "$02" is not "$2" */
        "SELECT $1::text",     /* SQLite: the parameter "$1::text" */
    };
    struct db_stmt *s = NULL;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = db_prepare(D(state), "test", bad[i], &s);

        if (r != ERR_INTERNAL || s != NULL) {
            fail_msg("\"%s\": %d, want ERR_INTERNAL", bad[i], r);
        }
    }
    /* Inside literals, quoted names and comments nothing is a parameter. */
    assert_int_equal(
        db_prepare(D(state), "test",
                   "SELECT '?:a @b $2 $a' AS \"$3?\", CAST($1 AS text)"
                   " -- $5 ?\n /* :x $4 */",
                   &s),
        ERR_OK);
    assert_int_equal(db_param_count(s), 1);
    db_finalize(s);
    /* No parameters at all is fine. */
    assert_int_equal(db_prepare(D(state), "test", "SELECT 1", &s), ERR_OK);
    assert_int_equal(db_param_count(s), 0);
    db_finalize(s);
    db_finalize(NULL);
}

static void test_binds_and_columns(void **state)
{
    static const uint8_t blob[] = {0, 1, 2, 0xff, 0};
    struct db_stmt *s = NULL;
    bool row = false;
    size_t len = 99;
    const void *p;

    assert_int_equal(db_prepare(D(state), "test",
                                "INSERT INTO drv_t (a, b, c) VALUES ($1, $2,"
                                " $3)",
                                &s),
                     ERR_OK);
    assert_int_equal(db_bind_text(s, 1, "x"), ERR_OK);
    assert_int_equal(db_bind_int64(s, 2, INT64_MAX), ERR_OK);
    assert_int_equal(db_bind_blob(s, 3, blob, sizeof(blob)), ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_false(row);
    assert_int_equal(db_changes(s), 1);
    db_finalize(s);

    /* NULL text, empty blob and an explicit NULL all store SQL NULL. */
    assert_int_equal(db_prepare(D(state), "test",
                                "INSERT INTO drv_t (a, b, c) VALUES ($1, $2,"
                                " $3)",
                                &s),
                     ERR_OK);
    assert_int_equal(db_bind_text(s, 1, NULL), ERR_OK);
    assert_int_equal(db_bind_null(s, 2), ERR_OK);
    assert_int_equal(db_bind_blob(s, 3, blob, 0), ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    db_finalize(s);

    /* NULLs last on both databases (PostgreSQL sorts them first in a
     * DESC order, SQLite last). */
    assert_int_equal(db_prepare(D(state), "test",
                                "SELECT a, b, c FROM drv_t"
                                " ORDER BY b IS NULL, b DESC",
                                &s),
                     ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    assert_false(db_col_null(s, 0));
    assert_string_equal(db_col_text(s, 0, NULL), "x");
    assert_true(db_col_int64(s, 1) == INT64_MAX);
    p = db_col_blob(s, 2, &len);
    assert_int_equal(len, sizeof(blob));
    assert_memory_equal(p, blob, sizeof(blob));
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    assert_true(db_col_null(s, 0));
    assert_null(db_col_text(s, 0, &len));
    assert_int_equal(len, 0);
    assert_true(db_col_null(s, 1));
    assert_int_equal(db_col_int64(s, 1), 0);
    assert_int_equal(db_col_int(s, 1), 0);
    assert_null(db_col_blob(s, 2, &len));
    assert_int_equal(len, 0);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_false(row);
    db_finalize(s);
}

/* The same SQL prepared again (SQLite keeps prepared statements for
 * reuse): a reused statement starts without the previous user's bindings
 * or rows, the same SQL twice at once gives two statements, and more
 * distinct statements than are kept still run. */
static void test_statement_reuse(void **state)
{
    static const char ins[] = "INSERT INTO drv_t (a, b) VALUES ($1, $2)";
    static const char sel[] = "SELECT a FROM drv_t WHERE b >= $1 ORDER BY b";
    struct db_stmt *s = NULL, *t = NULL;
    char sql[96];
    bool row = false;

    for (int i = 1; i <= 3; i++) {
        char a[8];

        snprintf(a, sizeof(a), "r%d", i);
        assert_int_equal(db_prepare(D(state), "test", ins, &s), ERR_OK);
        assert_int_equal(db_bind_text(s, 1, a), ERR_OK);
        if (i < 3) { /* the third leaves $2 unbound: NULL, not 2 */
            assert_int_equal(db_bind_int64(s, 2, i), ERR_OK);
        }
        assert_int_equal(db_step(s, &row), ERR_OK);
        db_finalize(s);
    }
    assert_int_equal(db_prepare(D(state), "test",
                                "SELECT COUNT(*) FROM drv_t WHERE b IS NULL",
                                &s),
                     ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    assert_int_equal(db_col_int64(s, 0), 1);
    db_finalize(s);

    /* left after its first row, then used again from the start */
    assert_int_equal(db_prepare(D(state), "test", sel, &s), ERR_OK);
    assert_int_equal(db_bind_int64(s, 1, 1), ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    assert_string_equal(db_col_text(s, 0, NULL), "r1");
    /* the same SQL while the first is in use: a statement of its own */
    assert_int_equal(db_prepare(D(state), "test", sel, &t), ERR_OK);
    assert_int_equal(db_bind_int64(t, 1, 2), ERR_OK);
    assert_int_equal(db_step(t, &row), ERR_OK);
    assert_true(row);
    assert_string_equal(db_col_text(t, 0, NULL), "r2");
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    assert_string_equal(db_col_text(s, 0, NULL), "r2");
    db_finalize(t);
    db_finalize(s);
    assert_int_equal(db_prepare(D(state), "test", sel, &s), ERR_OK);
    assert_int_equal(db_bind_int64(s, 1, 1), ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    assert_string_equal(db_col_text(s, 0, NULL), "r1");
    db_finalize(s);

    /* more distinct statements than any cache would keep, twice over */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 100; i++) {
            snprintf(sql, sizeof(sql),
                     "SELECT COUNT(*) + %d FROM drv_t WHERE a = $1", i);
            assert_int_equal(db_prepare(D(state), "test", sql, &s), ERR_OK);
            assert_int_equal(db_bind_text(s, 1, "r3"), ERR_OK);
            assert_int_equal(db_step(s, &row), ERR_OK);
            assert_true(row);
            assert_int_equal(db_col_int64(s, 0), 1 + i);
            db_finalize(s);
        }
    }
}

/* The error mapping the store's refusals are built on. */
static void test_error_mapping(void **state)
{
    struct db *db = D(state);
    struct db_stmt *s = NULL;

    assert_int_equal(
        run_text(db, "INSERT INTO drv_t (a) VALUES ($1)", 1, "dup", NULL),
        ERR_OK);
    assert_int_equal(
        run_text(db, "INSERT INTO drv_t (a) VALUES ($1)", 1, "dup", NULL),
        ERR_EXISTS);
    assert_int_equal(
        run_text(db, "INSERT INTO drv_parent (id) VALUES ($1)", 1, "p1", NULL),
        ERR_OK);
    assert_int_equal(
        run_text(db, "INSERT INTO drv_parent (id) VALUES ($1)", 1, "p1", NULL),
        ERR_EXISTS); /* a primary key */
    assert_int_equal(run_text(db, "INSERT INTO drv_t (a, p) VALUES ($1, $2)", 2,
                              "child", "no-such-parent"),
                     ERR_NOT_FOUND);
    assert_int_equal(run_text(db, "INSERT INTO drv_t (a, p) VALUES ($1, $2)", 2,
                              "child", "p1"),
                     ERR_OK);
    /* Anything else is ERR_STORE. */
    assert_int_equal(db_prepare(db, "test", "SELECT * FROM no_such_table", &s),
                     ERR_STORE);
    assert_null(s);
    assert_int_equal(db_exec(db, "test", "NOT SQL AT ALL"), ERR_STORE);
}

static int64_t count_rows(struct db *db)
{
    struct db_stmt *s = NULL;
    bool row = false;
    int64_t n = -1;

    assert_int_equal(db_prepare(db, "test", "SELECT COUNT(*) FROM drv_t", &s),
                     ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    n = db_col_int64(s, 0);
    db_finalize(s);
    return n;
}

static void test_transactions(void **state)
{
    struct db *db = D(state);
    struct db_stmt *s = NULL;
    bool row = false;

    assert_int_equal(db_begin(db, true), ERR_OK);
    assert_int_equal(
        run_text(db, "INSERT INTO drv_t (a) VALUES ($1)", 1, "gone", NULL),
        ERR_OK);
    db_rollback(db);
    assert_int_equal(count_rows(db), 0);

    assert_int_equal(db_begin(db, true), ERR_OK);
    assert_int_equal(
        run_text(db, "INSERT INTO drv_t (a) VALUES ($1)", 1, "kept", NULL),
        ERR_OK);
    assert_int_equal(
        run_text(db, "INSERT INTO drv_t (a) VALUES ($1)", 1, "kept2", NULL),
        ERR_OK);
    assert_int_equal(db_commit(db), ERR_OK);
    assert_int_equal(count_rows(db), 2);
    db_rollback(db); /* harmless outside a transaction */

    /* changes counts the rows an UPDATE touched. */
    assert_int_equal(db_begin(db, true), ERR_OK);
    assert_int_equal(
        db_prepare(db, "test", "UPDATE drv_t SET b = $1 WHERE a LIKE $2", &s),
        ERR_OK);
    assert_int_equal(db_bind_int64(s, 1, 7), ERR_OK);
    assert_int_equal(db_bind_text(s, 2, "kept%"), ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_int_equal(db_changes(s), 2);
    db_finalize(s);
    assert_int_equal(db_commit(db), ERR_OK);

    /* A read transaction reads. */
    assert_int_equal(db_begin(db, false), ERR_OK);
    assert_int_equal(count_rows(db), 2);
    assert_int_equal(db_commit(db), ERR_OK);
}

static void test_location(void **state)
{
    struct dfx *f = *state;
    struct db *mem = NULL;

    if (f->file) {
        /* The audit key lives beside this file. */
        const char *loc = db_location(f->db);

        assert_non_null(loc);
        assert_non_null(strstr(loc, "driver.db"));
    }
    assert_int_equal(db_open(":memory:", &mem), ERR_OK);
    assert_string_equal(db_location(mem), "");
    db_close(mem);
    db_close(NULL);
    assert_int_equal(db_open("", &mem), ERR_INVALID);
    assert_null(mem);
    assert_int_equal(db_open("/nonexistent-dir/x/y.db", &mem), ERR_IO);
    assert_null(mem);
}

/* A connection inherited across fork is refused in the child. */
static void test_fork_guard(void **state)
{
    struct db *db = D(state);
    pid_t pid;
    int status = 0;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct db_stmt *s = NULL;
        int ok = db_begin(db, false) == ERR_STORE &&
                 db_prepare(db, "test", "SELECT 1", &s) == ERR_STORE &&
                 db_exec(db, "test", "SELECT 1") == ERR_STORE &&
                 db_location(db) == NULL;

        db_close(db); /* frees only the struct in the child */
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(count_rows(db), 0); /* the parent's still works */
}

/* PostgreSQL: a connection the server dropped (a restart, a terminated
 * backend) is opened again by the next transaction, not failed forever. */
static void test_pg_reconnect(void **state)
{
    struct dfx *f = *state;
    struct db *other = NULL;
    struct db_stmt *s = NULL;
    bool row = false;
    int64_t pid;

    if (strncmp(f->path, "postgres", 8) != 0) {
        skip();
    }
    assert_int_equal(db_prepare(f->db, "test", "SELECT pg_backend_pid()", &s),
                     ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    pid = db_col_int64(s, 0);
    db_finalize(s);
    assert_int_equal(db_open(f->path, &other), ERR_OK);
    assert_int_equal(
        db_prepare(other, "test", "SELECT pg_terminate_backend($1)", &s),
        ERR_OK);
    assert_int_equal(db_bind_int64(s, 1, pid), ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    assert_int_equal(db_col_int(s, 0), 1);
    db_finalize(s);
    db_close(other);

    assert_int_equal(db_begin(f->db, false), ERR_OK);
    assert_int_equal(count_rows(f->db), 0);
    assert_int_equal(db_commit(f->db), ERR_OK);
    assert_int_equal(db_begin(f->db, true), ERR_OK);
    assert_int_equal(
        run_text(f->db, "INSERT INTO drv_t (a) VALUES ($1)", 1, "back", NULL),
        ERR_OK);
    assert_int_equal(db_commit(f->db), ERR_OK);
    assert_int_equal(count_rows(f->db), 1);
}

/* Ends the loop once the connection is back, or after 15 s. */
struct pg_back {
    struct db *db;
    int64_t until;
};

static void pg_back_tick(struct loop *l, void *arg)
{
    struct pg_back *b = arg;

    if (!db_down(b->db) || util_mono_ms() > b->until) {
        loop_stop(l);
        return;
    }
    assert_true(loop_add_timer(l, 5, pg_back_tick, b) != 0);
}

/* A job that holds a worker thread until *release is set. */
static void pg_hold_work(void *arg)
{
    const int *release = arg;
    const struct timespec tick = {0, 1000 * 1000};

    while (!__atomic_load_n(release, __ATOMIC_ACQUIRE)) {
        nanosleep(&tick, NULL);
    }
}

static void pg_hold_after(struct loop *l, void *arg)
{
    (void)l;
    (void)arg;
}

/* The same with the server's loop (db_set_loop): the connection is opened
 * again on a worker. Round 0: the server answers within the short wait,
 * and the call that found the loss goes on. Round 1: every worker is
 * busy (so the reconnection cannot be done yet): that call fails with
 * ERR_STORE within the short wait, db_down() is true, further calls fail
 * at once; once a worker is free, the new connection is swapped in by
 * the loop without any further call, and the next transaction works. */
static void test_pg_reconnect_on_a_worker(void **state)
{
    struct dfx *f = *state;
    struct loop *l = NULL;
    struct db *other = NULL;
    struct db_stmt *s = NULL;
    struct pg_back back;
    bool row = false;
    int64_t pid, t0;
    int r, release = 0;

    if (strncmp(f->path, "postgres", 8) != 0) {
        skip();
    }
    assert_non_null(l = loop_new());
    db_set_loop(f->db, l, 0);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(
            db_prepare(f->db, "test", "SELECT pg_backend_pid()", &s), ERR_OK);
        assert_int_equal(db_step(s, &row), ERR_OK);
        assert_true(row);
        pid = db_col_int64(s, 0);
        db_finalize(s);
        assert_int_equal(db_open(f->path, &other), ERR_OK);
        assert_int_equal(
            db_prepare(other, "test", "SELECT pg_terminate_backend($1)", &s),
            ERR_OK);
        assert_int_equal(db_bind_int64(s, 1, pid), ERR_OK);
        assert_int_equal(db_step(s, &row), ERR_OK);
        assert_int_equal(db_col_int(s, 0), 1);
        db_finalize(s);
        db_close(other);

        if (round == 1) { /* libuv's pool: 4 threads unless told */
            const char *env = getenv("UV_THREADPOOL_SIZE");
            int n = env != NULL && atoi(env) > 0 ? atoi(env) : 4;

            for (int i = 0; i < n; i++) {
                assert_int_equal(
                    loop_work(l, pg_hold_work, pg_hold_after, &release),
                    ERR_OK);
            }
        }
        t0 = util_mono_ms();
        r = db_begin(f->db, true);
        assert_true(util_mono_ms() - t0 < 2000);
        if (round == 1) {
            assert_int_equal(r, ERR_STORE);
        }
        if (r == ERR_STORE) {
            assert_true(db_down(f->db));
            /* in flight: the next calls fail at once, they do not wait */
            t0 = util_mono_ms();
            assert_true(db_begin(f->db, false) == ERR_STORE || !db_down(f->db));
            assert_true(util_mono_ms() - t0 < 50);
            __atomic_store_n(&release, 1, __ATOMIC_RELEASE);
            back.db = f->db;
            back.until = util_mono_ms() + 15000;
            assert_true(loop_add_timer(l, 1, pg_back_tick, &back) != 0);
            assert_int_equal(loop_run(l), ERR_OK);
            assert_false(db_down(f->db));
            db_rollback(f->db);
            assert_int_equal(db_begin(f->db, true), ERR_OK);
        } else {
            assert_int_equal(r, ERR_OK);
        }
        assert_int_equal(run_text(f->db, "INSERT INTO drv_t (a) VALUES ($1)", 1,
                                  round == 0 ? "back" : "back again", NULL),
                         ERR_OK);
        assert_int_equal(db_commit(f->db), ERR_OK);
        assert_int_equal(count_rows(f->db), round + 1);
    }
    db_set_loop(f->db, NULL, 0); /* inline again: the loop goes */
    loop_free(l);
}

/* Runs the loop for about ms (a timer re-armed from the loop, whose
 * clock may be stale before it runs), so workers' results come in. */
static void pg_until_tick(struct loop *l, void *arg)
{
    const int64_t *until = arg;

    if (util_mono_ms() >= *until) {
        loop_stop(l);
        return;
    }
    assert_true(loop_add_timer(l, 5, pg_until_tick, arg) != 0);
}

static void pg_run_for(struct loop *l, int64_t ms)
{
    int64_t until = util_mono_ms() + ms;

    assert_true(loop_add_timer(l, 1, pg_until_tick, &until) != 0);
    assert_int_equal(loop_run(l), ERR_OK);
}

static int64_t pg_pid(struct db *db)
{
    struct db_stmt *s = NULL;
    bool row = false;
    int64_t pid;

    assert_int_equal(db_prepare(db, "test", "SELECT pg_backend_pid()", &s),
                     ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    pid = db_col_int64(s, 0);
    db_finalize(s);
    return pid;
}

/* With the server's loop (db_set_loop), a statement has a deadline (here
 * 400 ms). A server that is alive but slow (pg_sleep) has the statement
 * cancelled: ERR_STORE within the deadline and the cancel's grace, the
 * connection kept, a write transaction in progress fails with nothing of
 * it committed. A server that does not answer at all (the connection's
 * backend stopped with SIGSTOP, so it takes neither the statement nor the
 * cancel): ERR_STORE as fast, db_down() true at once, and the next
 * transaction works on a new connection. Before the deadline, both
 * waited: 3 s for the sleep, for ever for the stopped backend. */
static void test_pg_statement_deadline(void **state)
{
    struct dfx *f = *state;
    struct loop *l = NULL;
    struct db_stmt *s = NULL;
    struct pg_back back;
    bool row = false;
    int64_t pid, t0, took;
    int r, stopped;

    if (strncmp(f->path, "postgres", 8) != 0) {
        skip();
    }
    assert_non_null(l = loop_new());
    db_set_loop(f->db, l, 400);
    pid = pg_pid(f->db);

    /* alive but slow: cancelled, the connection stays */
    assert_int_equal(db_begin(f->db, false), ERR_OK);
    assert_int_equal(db_prepare(f->db, "test", "SELECT pg_sleep(3)", &s),
                     ERR_OK);
    t0 = util_mono_ms();
    r = db_step(s, &row);
    took = util_mono_ms() - t0;
    db_finalize(s);
    assert_int_equal(r, ERR_STORE);
    assert_true(took >= 380);
    assert_true(took < 400 + 250 + 500);
    assert_false(db_down(f->db));
    db_rollback(f->db);
    pg_run_for(l, 200); /* the cancel's worker comes back */
    assert_true(pg_pid(f->db) == pid);

    /* in a write transaction: it fails, nothing of it is committed */
    assert_int_equal(db_begin(f->db, true), ERR_OK);
    assert_int_equal(
        run_text(f->db, "INSERT INTO drv_t (a) VALUES ($1)", 1, "lost", NULL),
        ERR_OK);
    assert_int_equal(run_text(f->db, "SELECT pg_sleep(3)", 0, NULL, NULL),
                     ERR_STORE);
    assert_int_equal(db_commit(f->db), ERR_STORE);
    pg_run_for(l, 200);
    assert_int_equal(count_rows(f->db), 0);

    /* silent: the backend stopped, so nothing answers */
    if (kill((pid_t)pid, SIGSTOP) != 0) {
        db_set_loop(f->db, NULL, 0);
        loop_free(l);
        skip(); /* not ours to stop (another user's server) */
    }
    t0 = util_mono_ms();
    r = db_begin(f->db, false);
    took = util_mono_ms() - t0;
    stopped = kill((pid_t)pid, SIGCONT);
    assert_int_equal(stopped, 0);
    assert_int_equal(r, ERR_STORE);
    assert_true(took >= 380);
    assert_true(took < 400 + 250 + 500);
    assert_true(db_down(f->db));
    /* the next transaction connects again (on a worker) */
    r = db_begin(f->db, true);
    if (r != ERR_OK) {
        back.db = f->db;
        back.until = util_mono_ms() + 15000;
        assert_true(loop_add_timer(l, 1, pg_back_tick, &back) != 0);
        assert_int_equal(loop_run(l), ERR_OK);
        assert_false(db_down(f->db));
        assert_int_equal(db_begin(f->db, true), ERR_OK);
    }
    assert_int_equal(
        run_text(f->db, "INSERT INTO drv_t (a) VALUES ($1)", 1, "back", NULL),
        ERR_OK);
    assert_int_equal(db_commit(f->db), ERR_OK);
    assert_int_equal(count_rows(f->db), 1);
    assert_true(pg_pid(f->db) != pid);
    db_set_loop(f->db, NULL, 0);
    loop_free(l);
}

static void pg_setting(struct db *db, const char *name, char *out, size_t len)
{
    struct db_stmt *s = NULL;
    bool row = false;

    assert_int_equal(db_prepare(db, "test", "SELECT current_setting($1)", &s),
                     ERR_OK);
    assert_int_equal(db_bind_text(s, 1, name), ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    assert_true(row);
    snprintf(out, len, "%s", db_col_text(s, 0, NULL));
    db_finalize(s);
}

/* A writer stuck behind another's write lock gives up with an error after
 * lock_timeout (the driver sets one where the server has none) instead
 * of waiting for ever; the lock free again, writing works. */
static void test_pg_lock_timeout(void **state)
{
    struct dfx *f = *state;
    struct db *other = NULL;
    char v[64];
    int64_t t0;

    if (strncmp(f->path, "postgres", 8) != 0) {
        skip();
    }
    pg_setting(f->db, "lock_timeout", v, sizeof(v));
    assert_string_equal(v, "20s");
    pg_setting(f->db, "statement_timeout", v, sizeof(v));
    assert_string_equal(v, "1min");
    /* the same rule, shorter, so the test does not wait 20 s */
    assert_int_equal(db_exec(f->db, "test", "SET lock_timeout = '300ms'"),
                     ERR_OK);
    assert_int_equal(db_open(f->path, &other), ERR_OK);
    assert_int_equal(db_begin(other, true), ERR_OK); /* holds the lock */
    t0 = util_mono_ms();
    assert_int_equal(db_begin(f->db, true), ERR_STORE);
    assert_true(util_mono_ms() - t0 >= 250);
    assert_true(util_mono_ms() - t0 < 5000);
    db_rollback(other);
    db_close(other);
    assert_int_equal(db_begin(f->db, true), ERR_OK);
    assert_int_equal(
        run_text(f->db, "INSERT INTO drv_t (a) VALUES ($1)", 1, "after", NULL),
        ERR_OK);
    assert_int_equal(db_commit(f->db), ERR_OK);
    assert_int_equal(count_rows(f->db), 1);
}

/* What db_set_session_defaults() sets reaches the connections opened
 * after it: the node's name in application_name (non-ASCII made '?'),
 * and idle_in_transaction_session_timeout within 3-10 s; a write
 * transaction left idle longer loses its connection, so its write lock
 * goes, and the next transaction connects again. */
static void test_pg_idle_transaction(void **state)
{
    struct dfx *f = *state;
    struct db *other = NULL, *third = NULL;
    char v[64];

    if (strncmp(f->path, "postgres", 8) != 0) {
        skip();
    }
    pg_setting(f->db, "idle_in_transaction_session_timeout", v, sizeof(v));
    assert_string_equal(v, "10s");
    pg_setting(f->db, "application_name", v, sizeof(v));
    assert_string_equal(v, "portcullis");
    db_set_session_defaults("node\x01\xc3\xa9", 1); /* below 3: 3 */
    assert_int_equal(db_open(f->path, &other), ERR_OK);
    pg_setting(other, "application_name", v, sizeof(v));
    assert_string_equal(v, "portcullis node???");
    pg_setting(other, "idle_in_transaction_session_timeout", v, sizeof(v));
    assert_string_equal(v, "3s");
    assert_int_equal(db_begin(other, true), ERR_OK); /* holds the lock */
    sleep(4);
    /* its connection was ended: the lock is free for another writer */
    assert_int_equal(db_exec(f->db, "test", "SET lock_timeout = '1s'"), ERR_OK);
    assert_int_equal(db_begin(f->db, true), ERR_OK);
    db_rollback(f->db);
    assert_int_equal(
        run_text(other, "INSERT INTO drv_t (a) VALUES ($1)", 1, "lost", NULL),
        ERR_STORE);
    db_rollback(other);
    assert_int_equal(db_begin(other, true), ERR_OK); /* connects again */
    assert_int_equal(
        run_text(other, "INSERT INTO drv_t (a) VALUES ($1)", 1, "after", NULL),
        ERR_OK);
    assert_int_equal(db_commit(other), ERR_OK);
    assert_int_equal(count_rows(f->db), 1);
    db_close(other);
    db_set_session_defaults(NULL, 100); /* above 10: 10 */
    assert_int_equal(db_open(f->path, &third), ERR_OK);
    pg_setting(third, "idle_in_transaction_session_timeout", v, sizeof(v));
    assert_string_equal(v, "10s");
    db_close(third);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dollar_params_bind_by_number,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_param_spellings_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_binds_and_columns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_statement_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_reconnect_on_a_worker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_statement_deadline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pg_lock_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_idle_transaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_location, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_guard, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
