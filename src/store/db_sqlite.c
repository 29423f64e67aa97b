/*
 * The SQLite driver (db.h): the only file of the store that calls sqlite3_*.
 *
 * One connection per process, in WAL mode: readers never wait for the
 * writer, and the server and a CLI process may write the same file. SQLite
 * has one writer at a time, so a write transaction starts with BEGIN
 * IMMEDIATE (it takes the write lock up front, and a transaction never has
 * to be upgraded from read to write, which is where SQLite cannot wait and
 * answers SQLITE_BUSY at once). The busy handler waits up to
 * DB_BUSY_TIMEOUT_MS for that lock, and db_begin() retries beyond that
 * with jitter, so a busy database makes a caller wait rather than fail.
 *
 * db_prepare() checks that parameters are spelt $1, $2, ... in ascending
 * order of first use (db.h says why): SQLite numbers named parameters in
 * order of first appearance, so "$2 ... $1" would silently swap values.
 */
#include "store/db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "store/db_driver.h"

#define DB_BUSY_TIMEOUT_MS 10000
/* How long db_begin() and db_commit() keep retrying past the busy handler
 * before they give up. */
#define DB_BEGIN_RETRY_MS 60000

/*
 * Prepared statements are kept for reuse (DB_STMT_CACHE of them, by their
 * SQL text): compiling a statement costs more than running it for the
 * short INSERTs and UPDATEs that the server runs for every tunnel
 * connection and session (report rows), which under many small requests
 * through an agent tunnel made SQLite's parser and code generator a
 * visible part of the main process's profile (bench/README.md). A kept
 * statement is reset and its bindings cleared when its user finalizes it;
 * one in use is never handed out twice (a second user of the same SQL
 * gets a statement of its own). SQLite re-prepares a kept statement by
 * itself when the schema changed (sqlite3_prepare_v2).
 */
#define DB_STMT_CACHE 32

struct db_cached {
    char *sql; /* NULL: slot free */
    sqlite3_stmt *stmt;
    bool busy;     /* handed out */
    uint64_t used; /* for eviction: the least recently used goes */
};

struct db {
    struct db_conn c; /* first (db_driver.h): driver, owning process */
    sqlite3 *conn;
    struct db_cached cache[DB_STMT_CACHE];
    uint64_t tick;
};

struct db_stmt {
    const struct db_driver *drv; /* first (db_driver.h) */
    struct db *db;
    sqlite3_stmt *stmt;
    const char *what; /* for log lines; a constant */
    int64_t changes;
    int cached; /* its slot in db->cache, or -1 */
};

static void sq_rollback(struct db *db);
static void sq_finalize(struct db_stmt *s);
static void sq_close(struct db *db);

static int db_fail(struct db *db, int rc, const char *what)
{
    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return ERR_EXISTS;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return ERR_NOT_FOUND;
    case SQLITE_NOMEM:
        return ERR_NOMEM;
    default:
        break;
    }
    log_error("store: %s: %s (%s)", what,
              db != NULL && db->conn != NULL ? sqlite3_errmsg(db->conn) : "-",
              sqlite3_errstr(rc));
    return ERR_STORE;
}

/* ERR_OK if db may be used by this process. */
static int db_usable(struct db *db)
{
    if (db == NULL || db->conn == NULL) {
        return ERR_INVALID;
    }
    return db_conn_check(&db->c);
}

static void db_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool db_is_busy(int rc)
{
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* Runs sql (no parameters), retrying while the database is busy. */
static int db_exec_retry(struct db *db, const char *sql, const char *what)
{
    int64_t start = util_mono_ms();
    int rc;

    for (;;) {
        rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            return ERR_OK;
        }
        if (!db_is_busy(rc) || util_mono_ms() - start > DB_BEGIN_RETRY_MS) {
            break;
        }
        /* The busy handler gave up (or was not consulted, as during WAL
         * recovery by another process): back off a little and try again. */
        db_sleep_ms(5 + (long)randombytes_uniform(45));
    }
    return db_fail(db, rc, what);
}

static int sq_begin(struct db *db, bool write)
{
    int r;

    if ((r = db_usable(db)) != ERR_OK) {
        return r;
    }
    return db_exec_retry(db, write ? "BEGIN IMMEDIATE" : "BEGIN", "begin");
}

static int sq_commit(struct db *db)
{
    int r;

    if ((r = db_usable(db)) != ERR_OK) {
        return r;
    }
    if ((r = db_exec_retry(db, "COMMIT", "commit")) != ERR_OK) {
        sq_rollback(db);
    }
    return r;
}

static void sq_rollback(struct db *db)
{
    if (db_usable(db) == ERR_OK && !sqlite3_get_autocommit(db->conn)) {
        (void)sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    }
}

static int sq_exec(struct db *db, const char *what, const char *sql)
{
    int r, rc;

    if ((r = db_usable(db)) != ERR_OK) {
        return r;
    }
    rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? ERR_OK : db_fail(db, rc, what);
}

/* Parameters must be named "$1", "$2", ... in index order (db.h). */
static bool db_params_portable(sqlite3_stmt *stmt)
{
    int n = sqlite3_bind_parameter_count(stmt);
    char want[16];

    for (int i = 1; i <= n; i++) {
        const char *name = sqlite3_bind_parameter_name(stmt, i);

        snprintf(want, sizeof(want), "$%d", i);
        if (name == NULL || strcmp(name, want) != 0) {
            return false;
        }
    }
    return true;
}

static void db_cache_put(struct db *db, struct db_stmt *s, const char *sql,
                         int free_slot);

static int sq_prepare(struct db *db, const char *what, const char *sql,
                      struct db_stmt **out)
{
    struct db_stmt *s = NULL;
    int r, rc, free_slot;

    *out = NULL;
    if ((r = db_usable(db)) != ERR_OK) {
        return r;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        return ERR_NOMEM;
    }
    s->drv = &db_sqlite_driver;
    s->db = db;
    s->what = what;
    s->cached = -1;
    free_slot = -1;
    for (int i = 0; i < DB_STMT_CACHE; i++) {
        struct db_cached *k = &db->cache[i];

        if (k->sql == NULL) {
            if (free_slot < 0) {
                free_slot = i;
            }
        } else if (!k->busy && strcmp(k->sql, sql) == 0) {
            k->busy = true;
            k->used = ++db->tick;
            s->stmt = k->stmt;
            s->cached = i;
            *out = s;
            return ERR_OK;
        }
    }
    rc = sqlite3_prepare_v2(db->conn, sql, -1, &s->stmt, NULL);
    if (rc != SQLITE_OK) {
        r = db_fail(db, rc, what);
        goto fail;
    }
    if (!db_params_portable(s->stmt)) {
        log_error("store: %s: parameters must be $1, $2, ... in order of "
                  "first use",
                  what);
        r = ERR_INTERNAL;
        goto fail;
    }
    db_cache_put(db, s, sql, free_slot);
    *out = s;
    return ERR_OK;
fail:
    sq_finalize(s);
    return r;
}

/* Keeps s's statement in the cache (slot free_slot, or the least recently
 * used one not in use); nothing if every slot is in use or out of memory. */
static void db_cache_put(struct db *db, struct db_stmt *s, const char *sql,
                         int free_slot)
{
    int slot = free_slot;
    char *copy;

    if (slot < 0) {
        for (int i = 0; i < DB_STMT_CACHE; i++) {
            if (!db->cache[i].busy &&
                (slot < 0 || db->cache[i].used < db->cache[slot].used)) {
                slot = i;
            }
        }
    }
    if (slot < 0 || (copy = strdup(sql)) == NULL) {
        return;
    }
    if (db->cache[slot].sql != NULL) {
        sqlite3_finalize(db->cache[slot].stmt);
        free(db->cache[slot].sql);
    }
    db->cache[slot].sql = copy;
    db->cache[slot].stmt = s->stmt;
    db->cache[slot].busy = true;
    db->cache[slot].used = ++db->tick;
    s->cached = slot;
}

static void sq_finalize(struct db_stmt *s)
{
    if (s == NULL) {
        return;
    }
    if (s->cached >= 0) {
        /* back to the cache, as if new: no row, no bindings (a bound
         * SQLITE_STATIC pointer must not outlive its caller) */
        (void)sqlite3_reset(s->stmt);
        (void)sqlite3_clear_bindings(s->stmt);
        s->db->cache[s->cached].busy = false;
    } else {
        sqlite3_finalize(s->stmt);
    }
    free(s);
}

/* Finalizes every kept statement (before the connection is closed). */
static void db_cache_clear(struct db *db)
{
    for (int i = 0; i < DB_STMT_CACHE; i++) {
        if (db->cache[i].sql != NULL) {
            sqlite3_finalize(db->cache[i].stmt);
            free(db->cache[i].sql);
            db->cache[i].sql = NULL;
            db->cache[i].stmt = NULL;
            db->cache[i].busy = false;
        }
    }
}

static int sq_param_count(struct db_stmt *s)
{
    return sqlite3_bind_parameter_count(s->stmt);
}

static int db_bind_rc(struct db_stmt *s, int rc)
{
    return rc == SQLITE_OK ? ERR_OK : db_fail(s->db, rc, s->what);
}

static int sq_bind_text(struct db_stmt *s, int idx, const char *v)
{
    return db_bind_rc(
        s, v == NULL ? sqlite3_bind_null(s->stmt, idx)
                     : sqlite3_bind_text(s->stmt, idx, v, -1, SQLITE_STATIC));
}

static int sq_bind_int64(struct db_stmt *s, int idx, int64_t v)
{
    return db_bind_rc(s, sqlite3_bind_int64(s->stmt, idx, v));
}

static int sq_bind_blob(struct db_stmt *s, int idx, const void *p, size_t len)
{
    return db_bind_rc(
        s, p == NULL || len == 0
               ? sqlite3_bind_null(s->stmt, idx)
               : sqlite3_bind_blob64(s->stmt, idx, p, len, SQLITE_STATIC));
}

static int sq_bind_null(struct db_stmt *s, int idx)
{
    return db_bind_rc(s, sqlite3_bind_null(s->stmt, idx));
}

static int sq_step(struct db_stmt *s, bool *row)
{
    int rc = sqlite3_step(s->stmt);

    *row = false;
    if (rc == SQLITE_ROW) {
        *row = true;
        return ERR_OK;
    }
    if (rc == SQLITE_DONE) {
        s->changes = sqlite3_changes(s->db->conn);
        return ERR_OK;
    }
    return db_fail(s->db, sqlite3_extended_errcode(s->db->conn), s->what);
}

static int64_t sq_changes(struct db_stmt *s)
{
    return s->changes;
}

static bool sq_col_null(struct db_stmt *s, int i)
{
    return sqlite3_column_type(s->stmt, i) == SQLITE_NULL;
}

static int64_t sq_col_int64(struct db_stmt *s, int i)
{
    return sqlite3_column_int64(s->stmt, i);
}

static int sq_col_int(struct db_stmt *s, int i)
{
    return sqlite3_column_int(s->stmt, i);
}

static const char *sq_col_text(struct db_stmt *s, int i, size_t *len)
{
    const unsigned char *t = sqlite3_column_text(s->stmt, i);

    if (len != NULL) {
        *len = t != NULL ? (size_t)sqlite3_column_bytes(s->stmt, i) : 0;
    }
    return (const char *)t;
}

static const void *sq_col_blob(struct db_stmt *s, int i, size_t *len)
{
    const void *p = sqlite3_column_blob(s->stmt, i);

    *len = p != NULL ? (size_t)sqlite3_column_bytes(s->stmt, i) : 0;
    return p;
}

/* Runs a PRAGMA and, when want is set, checks the value it answers. */
static int db_pragma(struct db *db, const char *sql, const char *want)
{
    char got[16] = "";
    struct db_stmt *s = NULL;
    bool row = false;
    int r;

    if ((r = sq_prepare(db, sql, sql, &s)) != ERR_OK) {
        return r;
    }
    while ((r = sq_step(s, &row)) == ERR_OK && row) {
        snprintf(got, sizeof(got), "%s",
                 sq_col_text(s, 0, NULL) != NULL ? sq_col_text(s, 0, NULL)
                                                 : "");
    }
    sq_finalize(s);
    if (r == ERR_OK && want != NULL && strcmp(got, want) != 0) {
        log_error("store: %s gave \"%s\"", sql, got);
        r = ERR_STORE;
    }
    return r;
}

/*
 * PRAGMA journal_mode=WAL on a file several processes open for the first
 * time at once: the switch needs an exclusive lock, and SQLite answers
 * SQLITE_BUSY at once, without its busy handler, when another connection
 * is switching too (seen as "database is locked" in
 * test_concurrent_first_open). Retried quietly for up to
 * DB_BUSY_TIMEOUT_MS; any other failure, or still busy then, is an error.
 */
static int db_wal(struct db *db, bool mem)
{
    int64_t until = util_mono_ms() + DB_BUSY_TIMEOUT_MS;
    struct timespec pause = {0, 10 * 1000 * 1000};
    int rc;

    for (;;) {
        rc =
            sqlite3_exec(db->conn, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY || util_mono_ms() >= until) {
            break;
        }
        nanosleep(&pause, NULL);
    }
    if (rc != SQLITE_OK) {
        return db_fail(db, rc, "PRAGMA journal_mode=WAL");
    }
    return db_pragma(db, "PRAGMA journal_mode", mem ? "memory" : "wal");
}

static int sq_open(const char *location, struct db **out)
{
    struct db *db = NULL;
    bool mem;
    int r = ERR_OK, rc, fd;

    *out = NULL;
    if (location == NULL || location[0] == '\0') {
        return ERR_INVALID;
    }
    mem = strcmp(location, ":memory:") == 0;
    /* SQLite creates files with 0644 less the umask; the store holds
     * password hashes and sealed secrets, so create it 0600 first. The
     * -wal and -shm files inherit the database file's mode. */
    if (!mem) {
        fd = open(location, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
        } else if (errno != EEXIST) {
            log_error("store: cannot create %s: %s", location, strerror(errno));
            return ERR_IO;
        }
    }
    if ((db = calloc(1, sizeof(*db))) == NULL) {
        return ERR_NOMEM;
    }
    db_conn_init(&db->c, &db_sqlite_driver);
    rc = sqlite3_open_v2(location, &db->conn,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        r = db_fail(db, rc, "open");
        goto out;
    }
    sqlite3_extended_result_codes(db->conn, 1);
    /* Double-quoted strings are identifiers, as in PostgreSQL. */
    sqlite3_db_config(db->conn, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
    sqlite3_db_config(db->conn, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);
    sqlite3_db_config(db->conn, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    if ((rc = sqlite3_busy_timeout(db->conn, DB_BUSY_TIMEOUT_MS)) !=
        SQLITE_OK) {
        r = db_fail(db, rc, "busy timeout");
        goto out;
    }
    if ((r = db_wal(db, mem)) != ERR_OK ||
        (r = db_pragma(db, "PRAGMA foreign_keys=ON", NULL)) != ERR_OK ||
        (r = db_pragma(db, "PRAGMA synchronous=NORMAL", NULL)) != ERR_OK ||
        (r = db_pragma(db, "PRAGMA trusted_schema=OFF", NULL)) != ERR_OK) {
        goto out;
    }
    *out = db;
    db = NULL;
out:
    sq_close(db);
    return r;
}

static void sq_close(struct db *db)
{
    if (db == NULL) {
        return;
    }
    /* Closing an inherited connection in a forked child could disturb the
     * parent's locks and WAL; let the child's exit drop it instead. */
    if (db_conn_mine(&db->c)) {
        db_cache_clear(db);
        sqlite3_close(db->conn);
    } else {
        for (int i = 0; i < DB_STMT_CACHE; i++) {
            free(db->cache[i].sql); /* the statements are the parent's */
        }
    }
    free(db);
}

static const char *sq_location(struct db *db)
{
    const char *f;

    if (db_usable(db) != ERR_OK) {
        return NULL;
    }
    f = sqlite3_db_filename(db->conn, "main");
    return f != NULL ? f : "";
}

const struct db_driver db_sqlite_driver = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .location = sq_location,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .exec = sq_exec,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .param_count = sq_param_count,
    .bind_text = sq_bind_text,
    .bind_int64 = sq_bind_int64,
    .bind_blob = sq_bind_blob,
    .bind_null = sq_bind_null,
    .step = sq_step,
    .changes = sq_changes,
    .col_null = sq_col_null,
    .col_int64 = sq_col_int64,
    .col_int = sq_col_int,
    .col_text = sq_col_text,
    .col_blob = sq_col_blob,
};
