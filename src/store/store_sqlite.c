/*
 * The SQLite driver of the store (store.h).
 *
 * One connection per process, in WAL mode: readers never wait for the
 * writer, and the server and a CLI process may write the same file. SQLite
 * has one writer at a time, so every write transaction starts with BEGIN
 * IMMEDIATE (it takes the write lock up front, and a transaction never has
 * to be upgraded from read to write, which is where SQLite cannot wait and
 * answers SQLITE_BUSY at once). The busy handler waits up to
 * STORE_BUSY_TIMEOUT_MS for that lock, and tx_begin() retries beyond that
 * with jitter, so a busy database makes a caller wait rather than fail.
 *
 * Every public function is one transaction: tx_begin(), work, tx_end(),
 * which commits on ERR_OK and rolls back otherwise. Values always travel as
 * bound parameters (db_bind()); SQL text is constant. Errors map to the
 * project's codes in db_fail(): unique violations are ERR_EXISTS, foreign
 * keys ERR_NOT_FOUND, anything else ERR_STORE with one log line (SQLite's
 * message names tables and columns, never values, so no secret reaches the
 * log).
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
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
#include "store/store_internal.h"

#define STORE_BUSY_TIMEOUT_MS 10000
/* How long tx_begin() keeps retrying BEGIN IMMEDIATE past the busy
 * handler before it gives up. */
#define STORE_BEGIN_RETRY_MS 60000

struct store {
    sqlite3 *db;
    pid_t pid; /* the process that opened it; a forked child must not use
                  or close an inherited SQLite connection */
};

/* --- low-level helpers ------------------------------------------------ */

static int db_fail(struct store *st, int rc, const char *what)
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
              st != NULL && st->db != NULL ? sqlite3_errmsg(st->db) : "-",
              sqlite3_errstr(rc));
    return ERR_STORE;
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

static int tx_begin(struct store *st, bool write)
{
    int64_t start = util_mono_ms();
    int rc;

    if (st == NULL || st->db == NULL) {
        return ERR_INVALID;
    }
    if (st->pid != getpid()) {
        log_error("store: handle used in a forked child; open a new one");
        return ERR_STORE;
    }
    for (;;) {
        rc = sqlite3_exec(st->db, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL,
                          NULL, NULL);
        if (rc == SQLITE_OK) {
            return ERR_OK;
        }
        if (!db_is_busy(rc) || util_mono_ms() - start > STORE_BEGIN_RETRY_MS) {
            break;
        }
        /* The busy handler gave up (or was not consulted, as during WAL
         * recovery by another process): back off a little and try again. */
        db_sleep_ms(5 + (long)randombytes_uniform(45));
    }
    return db_fail(st, rc, "begin");
}

/* Commits when r is ERR_OK, rolls back otherwise; returns the outcome. */
static int tx_end(struct store *st, int r)
{
    int64_t start = util_mono_ms();
    int rc;

    if (r == ERR_OK) {
        for (;;) {
            rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
            if (rc == SQLITE_OK) {
                return ERR_OK;
            }
            if (!db_is_busy(rc) ||
                util_mono_ms() - start > STORE_BEGIN_RETRY_MS) {
                break;
            }
            db_sleep_ms(5 + (long)randombytes_uniform(45));
        }
        r = db_fail(st, rc, "commit");
    }
    if (!sqlite3_get_autocommit(st->db)) {
        (void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return r;
}

/*
 * Binds parameters 1, 2, ... from a type string (store_sqlite_query() in
 * store_internal.h lists the types). The values must outlive the
 * statement's execution (SQLITE_STATIC).
 */
static int db_bindv(struct store *st, sqlite3_stmt *stmt, const char *what,
                    const char *types, va_list ap)
{
    int rc = SQLITE_OK;

    for (int i = 0; types[i] != '\0' && rc == SQLITE_OK; i++) {
        int idx = i + 1;

        switch (types[i]) {
        case 't': {
            const char *s = va_arg(ap, const char *);

            rc = s == NULL ? sqlite3_bind_null(stmt, idx)
                           : sqlite3_bind_text(stmt, idx, s, -1, SQLITE_STATIC);
            break;
        }
        case 'i':
            rc = sqlite3_bind_int64(stmt, idx, va_arg(ap, int64_t));
            break;
        case 'z': {
            int64_t v = va_arg(ap, int64_t);

            rc = v == 0 ? sqlite3_bind_null(stmt, idx)
                        : sqlite3_bind_int64(stmt, idx, v);
            break;
        }
        case 'b': {
            const uint8_t *p = va_arg(ap, const uint8_t *);
            size_t len = va_arg(ap, size_t);

            rc = (p == NULL || len == 0)
                     ? sqlite3_bind_null(stmt, idx)
                     : sqlite3_bind_blob64(stmt, idx, p, len, SQLITE_STATIC);
            break;
        }
        default:
            log_error("store: %s: bad bind type", what);
            return ERR_INTERNAL;
        }
    }
    return rc == SQLITE_OK ? ERR_OK : db_fail(st, rc, what);
}

/*
 * Prepares sql, binds the parameters and steps through every row, calling
 * fn(stmt, ctx) for each (fn may be NULL). *rows gets the number of rows
 * and *changes the rows a write changed (either may be NULL).
 */
int store_sqlite_step(struct store *st, sqlite3_stmt *stmt, const char *what,
                      store_row_fn fn, void *ctx, size_t *rows)
{
    size_t n = 0;
    int r = ERR_OK, rc;

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (fn != NULL && (r = fn(stmt, ctx)) != ERR_OK) {
            goto out;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        r = db_fail(st, sqlite3_extended_errcode(st->db), what);
    }
out:
    if (rows != NULL) {
        *rows = n;
    }
    return r;
}

static int db_queryv(struct store *st, const char *what, const char *sql,
                     store_row_fn fn, void *ctx, size_t *rows, int *changes,
                     const char *types, va_list ap)
{
    sqlite3_stmt *stmt = NULL;
    int r = ERR_OK, rc;

    if (rows != NULL) {
        *rows = 0;
    }
    rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        r = db_fail(st, rc, what);
        goto out;
    }
    if ((r = db_bindv(st, stmt, what, types, ap)) != ERR_OK) {
        goto out;
    }
    if ((r = store_sqlite_step(st, stmt, what, fn, ctx, rows)) != ERR_OK) {
        goto out;
    }
    if (changes != NULL) {
        *changes = sqlite3_changes(st->db);
    }
out:
    sqlite3_finalize(stmt);
    return r;
}

static int db_query(struct store *st, const char *what, const char *sql,
                    store_row_fn fn, void *ctx, size_t *rows, const char *types,
                    ...)
{
    va_list ap;
    int r;

    va_start(ap, types);
    r = db_queryv(st, what, sql, fn, ctx, rows, NULL, types, ap);
    va_end(ap);
    return r;
}

/* A statement without result rows; *changes (may be NULL) gets the number
 * of rows it changed. */
static int db_run(struct store *st, const char *what, const char *sql,
                  int *changes, const char *types, ...)
{
    va_list ap;
    int r;

    va_start(ap, types);
    r = db_queryv(st, what, sql, NULL, NULL, NULL, changes, types, ap);
    va_end(ap);
    return r;
}

void store_sqlite_col_text(sqlite3_stmt *s, int i, char *dst, size_t dstlen)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    size_t len = (size_t)sqlite3_column_bytes(s, i);

    if (t == NULL) {
        dst[0] = '\0';
        return;
    }
    if (len >= dstlen) {
        len = dstlen - 1;
    }
    memcpy(dst, t, len);
    dst[len] = '\0';
}

static int col_blob_heap(sqlite3_stmt *s, int i, uint8_t **out, size_t *len)
{
    const void *p = sqlite3_column_blob(s, i);
    size_t n = (size_t)sqlite3_column_bytes(s, i);

    *out = NULL;
    *len = 0;
    if (p == NULL || n == 0) {
        return ERR_OK;
    }
    if ((*out = malloc(n)) == NULL) {
        return ERR_NOMEM;
    }
    memcpy(*out, p, n);
    *len = n;
    return ERR_OK;
}

static int col_str_heap(sqlite3_stmt *s, int i, char **out)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    size_t n = (size_t)sqlite3_column_bytes(s, i);

    if ((*out = malloc(n + 1)) == NULL) {
        return ERR_NOMEM;
    }
    if (t != NULL) {
        memcpy(*out, t, n);
    }
    (*out)[t != NULL ? n : 0] = '\0';
    return ERR_OK;
}

int store_sqlite_list_row(sqlite3_stmt *stmt, void *ctx)
{
    struct store_sqlite_list *l = ctx;
    unsigned char *item;
    int r;

    if (l->n == l->cap) {
        size_t ncap = l->cap != 0 ? l->cap * 2 : 8;
        void *p;

        if (ncap > SIZE_MAX / l->size) {
            return ERR_NOMEM;
        }
        if ((p = realloc(l->items, ncap * l->size)) == NULL) {
            return ERR_NOMEM;
        }
        l->items = p;
        l->cap = ncap;
    }
    item = &((unsigned char *)l->items)[l->n * l->size];
    memset(item, 0, l->size);
    if ((r = l->fill(stmt, item)) != ERR_OK) {
        return r;
    }
    l->n++;
    return ERR_OK;
}

int store_sqlite_list_end(struct store *st, int r, struct store_sqlite_list *l,
                          void (*release)(void *items, size_t n))
{
    if ((r = tx_end(st, r)) != ERR_OK) {
        if (release != NULL) {
            release(l->items, l->n);
        } else {
            free(l->items);
        }
        l->items = NULL;
        l->n = 0;
    }
    return r;
}

/* Release functions for store_sqlite_list_end(): lists whose items hold
 * heap memory or secrets. */
static void list_release_users(void *items, size_t n)
{
    store_user_list_free(items, n);
}

static void list_release_keys(void *items, size_t n)
{
    store_user_key_list_free(items, n);
}

static void list_release_assets(void *items, size_t n)
{
    store_asset_list_free(items, n);
}

/* A row exists (the query selects anything); ERR_NOT_FOUND otherwise. */
static int db_exists(struct store *st, const char *what, const char *sql,
                     const char *id)
{
    size_t rows = 0;
    int r = db_query(st, what, sql, NULL, NULL, &rows, "t", id);

    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    return r;
}

static int user_exists(struct store *st, const char *id)
{
    return db_exists(st, "user", "SELECT 1 FROM users WHERE id = ?", id);
}

static int group_exists(struct store *st, const char *id)
{
    return db_exists(st, "group", "SELECT 1 FROM groups WHERE id = ?", id);
}

/* The store keeps IDs lower-case; an argument that is not a UUID at all
 * names no row. Returns buf (STORE_ID_MAX + 1) filled, or NULL. */
static const char *idn(const char *in, char *buf)
{
    return store_id_norm(in, buf) ? buf : NULL;
}

static int64_t clamp_u64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/*
 * A list that belongs to one row (a user's keys, a group's members): sql
 * takes that row's ID as its one parameter. ERR_NOT_FOUND unless the row
 * exists, checked in the same read transaction as the list is read. The
 * list ends as store_sqlite_list_end() leaves it.
 */
static int db_child_list(struct store *st,
                         int (*exists)(struct store *st, const char *id),
                         const char *id, const char *what, const char *sql,
                         struct store_sqlite_list *l,
                         void (*release)(void *items, size_t n))
{
    char buf[STORE_ID_MAX + 1];
    const char *nid = idn(id, buf);
    int r;

    if (nid == NULL) {
        return ERR_NOT_FOUND;
    }
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    if ((r = exists(st, nid)) == ERR_OK) {
        r = db_query(st, what, sql, store_sqlite_list_row, l, NULL, "t", nid);
    }
    return store_sqlite_list_end(st, r, l, release);
}

/* --- lifecycle and migrations -------------------------------------------- */

int store_sqlite_int_row(sqlite3_stmt *stmt, void *ctx)
{
    *(int64_t *)ctx = sqlite3_column_int64(stmt, 0);
    return ERR_OK;
}

static int store_hook_root_site(struct store *st)
{
    char id[STORE_ID_MAX + 1];

    util_uuid4(id);
    return db_run(st, "create /root",
                  "INSERT INTO sites (id, path, parent_id, created_at)"
                  " VALUES (?, '/root', NULL, ?)",
                  NULL, "ti", id, (int64_t)util_now());
}

static int store_version_read(struct store *st, int64_t *v)
{
    *v = 0;
    return db_query(st, "schema version",
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                    store_sqlite_int_row, v, NULL, "");
}

/* Applies step m if it is the next one, in its own immediate transaction.
 * The version is read inside it, so two processes opening a new file at
 * once apply each step exactly once. */
static int store_migrate_step(struct store *st, const struct store_migration *m,
                              int latest)
{
    int64_t cur = 0;
    int r, rc;

    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    rc = sqlite3_exec(st->db,
                      "CREATE TABLE IF NOT EXISTS schema_version ("
                      " version INTEGER PRIMARY KEY,"
                      " applied_at BIGINT NOT NULL)",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        r = db_fail(st, rc, "schema_version");
        goto out;
    }
    if ((r = store_version_read(st, &cur)) != ERR_OK) {
        goto out;
    }
    if (cur > latest) {
        log_error("store: database schema version %lld is newer than this "
                  "program's (%d)",
                  (long long)cur, latest);
        r = ERR_STORE;
        goto out;
    }
    if (cur >= m->version) {
        goto out; /* applied already */
    }
    if (cur != m->version - 1) {
        log_error("store: schema version %lld, cannot apply step %d",
                  (long long)cur, m->version);
        r = ERR_STORE;
        goto out;
    }
    if ((rc = sqlite3_exec(st->db, m->sql, NULL, NULL, NULL)) != SQLITE_OK) {
        r = db_fail(st, rc, "migration");
        goto out;
    }
    if (m->hook == STORE_HOOK_ROOT_SITE &&
        (r = store_hook_root_site(st)) != ERR_OK) {
        goto out;
    }
    r = db_run(st, "schema version",
               "INSERT INTO schema_version (version, applied_at)"
               " VALUES (?, ?)",
               NULL, "ii", (int64_t)m->version, (int64_t)util_now());
out:
    return tx_end(st, r);
}

static int store_migrate(struct store *st)
{
    int latest = store_migrations[store_migrations_count - 1].version;
    int r = ERR_OK;

    for (size_t i = 0; i < store_migrations_count && r == ERR_OK; i++) {
        r = store_migrate_step(st, &store_migrations[i], latest);
    }
    return r;
}

static int store_pragma(struct store *st, const char *sql, const char *want)
{
    char got[16] = "";
    sqlite3_stmt *stmt = NULL;
    int r = ERR_OK, rc;

    if ((rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL)) != SQLITE_OK) {
        r = db_fail(st, rc, sql);
        goto out;
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        store_sqlite_col_text(stmt, 0, got, sizeof(got));
    }
    if (rc != SQLITE_DONE) {
        r = db_fail(st, rc, sql);
        goto out;
    }
    if (want != NULL && strcmp(got, want) != 0) {
        log_error("store: %s gave \"%s\"", sql, got);
        r = ERR_STORE;
    }
out:
    sqlite3_finalize(stmt);
    return r;
}

int store_open(const char *path, struct store **out)
{
    struct store *st = NULL;
    bool mem;
    int r = ERR_OK, rc, fd;

    if (out != NULL) {
        *out = NULL;
    }
    if (path == NULL || path[0] == '\0' || out == NULL) {
        return ERR_INVALID;
    }
    mem = strcmp(path, ":memory:") == 0;
    /* SQLite creates files with 0644 less the umask; the store holds
     * password hashes and sealed secrets, so create it 0600 first. The
     * -wal and -shm files inherit the database file's mode. */
    if (!mem) {
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
        } else if (errno != EEXIST) {
            log_error("store: cannot create %s: %s", path, strerror(errno));
            return ERR_IO;
        }
    }
    if ((st = calloc(1, sizeof(*st))) == NULL) {
        return ERR_NOMEM;
    }
    st->pid = getpid();
    rc = sqlite3_open_v2(path, &st->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        r = db_fail(st, rc, "open");
        goto out;
    }
    sqlite3_extended_result_codes(st->db, 1);
    /* Double-quoted strings are identifiers, as in PostgreSQL. */
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    if ((rc = sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS)) !=
        SQLITE_OK) {
        r = db_fail(st, rc, "busy timeout");
        goto out;
    }
    if ((r = store_pragma(st, "PRAGMA journal_mode=WAL",
                          mem ? "memory" : "wal")) != ERR_OK ||
        (r = store_pragma(st, "PRAGMA foreign_keys=ON", NULL)) != ERR_OK ||
        (r = store_pragma(st, "PRAGMA synchronous=NORMAL", NULL)) != ERR_OK ||
        (r = store_pragma(st, "PRAGMA trusted_schema=OFF", NULL)) != ERR_OK) {
        goto out;
    }
    if ((r = store_migrate(st)) != ERR_OK) {
        goto out;
    }
    *out = st;
    st = NULL;
out:
    store_close(st);
    return r;
}

void store_close(struct store *st)
{
    if (st == NULL) {
        return;
    }
    /* Closing an inherited connection in a forked child could disturb the
     * parent's locks and WAL; let the child's exit drop it instead. */
    if (st->pid == getpid()) {
        sqlite3_close(st->db);
    }
    free(st);
}

int store_schema_version(struct store *st, int *version)
{
    int64_t v = 0;
    int r;

    if (version == NULL) {
        return ERR_INVALID;
    }
    *version = 0;
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_version_read(st, &v);
    *version = (int)v;
    return tx_end(st, r);
}

void store_list_free(void *list)
{
    free(list);
}

/* --- users ---------------------------------------------------------------- */

#define USER_COLS                                                              \
    "u.id, u.name, u.password_hash, u.disabled, u.totp_enabled,"               \
    " u.totp_sealed, u.totp_last_step, u.created_at"

static int row_user(sqlite3_stmt *s, void *item)
{
    struct store_user *u = item;
    const void *seed = sqlite3_column_blob(s, 5);
    size_t seed_len = (size_t)sqlite3_column_bytes(s, 5);

    store_sqlite_col_text(s, 0, u->id, sizeof(u->id));
    store_sqlite_col_text(s, 1, u->name, sizeof(u->name));
    store_sqlite_col_text(s, 2, u->password_hash, sizeof(u->password_hash));
    u->disabled = sqlite3_column_int(s, 3) != 0;
    u->totp_enabled = sqlite3_column_int(s, 4) != 0;
    if (seed_len > sizeof(u->totp_sealed)) {
        log_error("store: user %s: sealed TOTP seed too long", u->id);
        return ERR_STORE;
    }
    if (seed != NULL && seed_len > 0) {
        memcpy(u->totp_sealed, seed, seed_len);
        u->totp_sealed_len = seed_len;
    }
    u->totp_last_step = sqlite3_column_int64(s, 6);
    u->created_at = sqlite3_column_int64(s, 7);
    return ERR_OK;
}

/* Finds a user by ID or name into out (cleared on failure). */
static int user_lookup(struct store *st, const char *name_or_id,
                       struct store_user *out)
{
    struct store_user u;
    char id[STORE_ID_MAX + 1];
    size_t rows = 0;
    int r;

    memset(&u, 0, sizeof(u));
    if (name_or_id == NULL || name_or_id[0] == '\0') {
        return ERR_NOT_FOUND;
    }
    if (store_id_norm(name_or_id, id)) {
        r = db_query(st, "user",
                     "SELECT " USER_COLS " FROM users u"
                     " WHERE u.id = ?",
                     row_user, &u, &rows, "t", id);
    } else {
        r = db_query(st, "user",
                     "SELECT " USER_COLS " FROM users u"
                     " WHERE u.name = ?",
                     row_user, &u, &rows, "t", name_or_id);
    }
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    if (r == ERR_OK) {
        *out = u;
    }
    sodium_memzero(&u, sizeof(u));
    return r;
}

int store_user_add(struct store *st, const char *name,
                   const char *password_hash, bool disabled,
                   struct store_user *out)
{
    struct store_user u;
    int r;

    if ((r = store_check_user_name(name)) != ERR_OK ||
        (r = store_check_text(password_hash, STORE_HASH_MAX, false)) !=
            ERR_OK) {
        return r;
    }
    memset(&u, 0, sizeof(u));
    util_uuid4(u.id);
    snprintf(u.name, sizeof(u.name), "%s", name);
    snprintf(u.password_hash, sizeof(u.password_hash), "%s",
             password_hash != NULL ? password_hash : "");
    u.disabled = disabled;
    u.created_at = util_now();
    if ((r = tx_begin(st, true)) != ERR_OK) {
        goto out;
    }
    r = db_run(st, "user add",
               "INSERT INTO users (id, name, password_hash, disabled,"
               " totp_enabled, totp_sealed, totp_last_step, created_at)"
               " VALUES (?, ?, ?, ?, 0, NULL, 0, ?)",
               NULL, "tttii", u.id, u.name, u.password_hash,
               (int64_t)u.disabled, u.created_at);
    r = tx_end(st, r);
    if (r == ERR_OK && out != NULL) {
        *out = u;
    }
out:
    sodium_memzero(&u, sizeof(u));
    return r;
}

int store_user_get(struct store *st, const char *name_or_id,
                   struct store_user *out)
{
    int r;

    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = user_lookup(st, name_or_id, out);
    return tx_end(st, r);
}

int store_user_list(struct store *st, struct store_user **list, size_t *n)
{
    struct store_sqlite_list l = {NULL, 0, 0, sizeof(struct store_user),
                                  row_user};
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    *list = NULL;
    *n = 0;
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = db_query(st, "user list",
                 "SELECT " USER_COLS " FROM users u ORDER BY u.name",
                 store_sqlite_list_row, &l, NULL, "");
    r = store_sqlite_list_end(st, r, &l, list_release_users);
    *list = l.items;
    *n = l.n;
    return r;
}

void store_user_list_free(struct store_user *list, size_t n)
{
    if (list == NULL) {
        return;
    }
    /* Password hashes and sealed seeds are not plaintext, but no copy of
     * them should linger in freed memory either. */
    sodium_memzero(list, n * sizeof(*list));
    free(list);
}

/*
 * Deletes the row named by an ID or a name in one transaction: by_id and
 * by_name are the two DELETE statements (one bound parameter each).
 * ERR_NOT_FOUND if no row matched.
 */
static int db_delete_named(struct store *st, const char *what,
                           const char *by_id, const char *by_name,
                           const char *name_or_id)
{
    char id[STORE_ID_MAX + 1];
    int changes = 0, r;

    if (name_or_id == NULL || name_or_id[0] == '\0') {
        return ERR_NOT_FOUND;
    }
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if (store_id_norm(name_or_id, id)) {
        r = db_run(st, what, by_id, &changes, "t", id);
    } else {
        r = db_run(st, what, by_name, &changes, "t", name_or_id);
    }
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
    return tx_end(st, r);
}

int store_user_delete(struct store *st, const char *name_or_id)
{
    /* Keys, memberships, grants and profile assignments go by cascade;
     * session rows keep the user's name and ID as text. */
    return db_delete_named(st, "user delete", "DELETE FROM users WHERE id = ?",
                           "DELETE FROM users WHERE name = ?", name_or_id);
}

/* Runs one UPDATE of a row by ID; ERR_NOT_FOUND if no row has that ID. */
static int db_update_one(struct store *st, const char *what, const char *sql,
                         const char *types, ...)
{
    va_list ap;
    int changes = 0, r;

    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    va_start(ap, types);
    r = db_queryv(st, what, sql, NULL, NULL, NULL, &changes, types, ap);
    va_end(ap);
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
    return tx_end(st, r);
}

int store_user_set_password(struct store *st, const char *user_id,
                            const char *password_hash)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = idn(user_id, ubuf);
    int r = store_check_text(password_hash, STORE_HASH_MAX, false);

    if (r != ERR_OK) {
        return r;
    }
    if (uid == NULL) {
        return ERR_NOT_FOUND;
    }
    return db_update_one(st, "user password",
                         "UPDATE users SET password_hash = ? WHERE id = ?",
                         "tt", password_hash != NULL ? password_hash : "", uid);
}

int store_user_set_disabled(struct store *st, const char *user_id,
                            bool disabled)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = idn(user_id, ubuf);

    if (uid == NULL) {
        return ERR_NOT_FOUND;
    }
    return db_update_one(st, "user disabled",
                         "UPDATE users SET disabled = ? WHERE id = ?", "it",
                         (int64_t)disabled, uid);
}

int store_user_set_totp(struct store *st, const char *user_id,
                        const uint8_t *sealed, size_t sealed_len)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = idn(user_id, ubuf);

    if (uid == NULL) {
        return ERR_NOT_FOUND;
    }
    if (sealed == NULL) {
        return db_update_one(st, "user totp",
                             "UPDATE users SET totp_enabled = 0,"
                             " totp_sealed = NULL, totp_last_step = 0"
                             " WHERE id = ?",
                             "t", uid);
    }
    if (sealed_len == 0) {
        return ERR_INVALID;
    }
    if (sealed_len > STORE_SEALED_SMALL_MAX) {
        return ERR_TOO_LONG;
    }
    return db_update_one(st, "user totp",
                         "UPDATE users SET totp_enabled = 1,"
                         " totp_sealed = ?, totp_last_step = 0"
                         " WHERE id = ?",
                         "bt", sealed, sealed_len, uid);
}

int store_user_totp_use(struct store *st, const char *user_id, int64_t step)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = idn(user_id, ubuf);
    int changes = 0, r;

    if (step <= 0) {
        return ERR_INVALID;
    }
    if (uid == NULL) {
        return ERR_NOT_FOUND;
    }
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* One conditional UPDATE: of two sessions racing with the same code,
     * only the first moves the guard and sees a changed row. */
    r = db_run(st, "totp use",
               "UPDATE users SET totp_last_step = ?"
               " WHERE id = ? AND totp_last_step < ?",
               &changes, "iti", step, uid, step);
    if (r == ERR_OK && changes != 1) {
        r = user_exists(st, uid);
        if (r == ERR_OK) {
            r = ERR_REPLAY;
        }
    }
    return tx_end(st, r);
}

/* --- user public keys ----------------------------------------------------- */

#define KEY_COLS "id, user_id, type, fingerprint, comment, base64"

static int row_key(sqlite3_stmt *s, void *item)
{
    struct store_user_key *k = item;

    store_sqlite_col_text(s, 0, k->id, sizeof(k->id));
    store_sqlite_col_text(s, 1, k->user_id, sizeof(k->user_id));
    store_sqlite_col_text(s, 2, k->type, sizeof(k->type));
    store_sqlite_col_text(s, 3, k->fingerprint, sizeof(k->fingerprint));
    store_sqlite_col_text(s, 4, k->comment, sizeof(k->comment));
    return col_str_heap(s, 5, &k->base64);
}

int store_user_key_add(struct store *st, const char *user_id, const char *type,
                       const char *base64, const char *fingerprint,
                       const char *comment, struct store_user_key *out)
{
    struct store_user_key k;
    int r;

    memset(&k, 0, sizeof(k));
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if ((r = store_check_text(type, sizeof(k.type) - 1, true)) != ERR_OK ||
        (r = store_check_text(base64, STORE_KEY_MAX, true)) != ERR_OK ||
        (r = store_check_text(fingerprint, STORE_FP_MAX, true)) != ERR_OK ||
        (r = store_check_text(comment, STORE_NAME_MAX, false)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(user_id, k.user_id)) {
        return ERR_NOT_FOUND;
    }
    util_uuid4(k.id);
    snprintf(k.type, sizeof(k.type), "%s", type);
    snprintf(k.fingerprint, sizeof(k.fingerprint), "%s", fingerprint);
    snprintf(k.comment, sizeof(k.comment), "%s",
             comment != NULL ? comment : "");
    /* The caller's copy is made first, so a stored key is never reported
     * as a failure. */
    if (out != NULL && (k.base64 = strdup(base64)) == NULL) {
        return ERR_NOMEM;
    }
    if ((r = tx_begin(st, true)) != ERR_OK) {
        goto out;
    }
    if ((r = user_exists(st, k.user_id)) == ERR_OK) {
        r = db_run(st, "key add",
                   "INSERT INTO user_keys (id, user_id, type, fingerprint,"
                   " comment, base64, created_at)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?)",
                   NULL, "tttttti", k.id, k.user_id, k.type, k.fingerprint,
                   k.comment, base64, (int64_t)util_now());
    }
    r = tx_end(st, r);
out:
    if (r == ERR_OK && out != NULL) {
        *out = k;
    } else {
        store_user_key_clear(&k);
    }
    return r;
}

int store_user_key_list(struct store *st, const char *user_id,
                        struct store_user_key **list, size_t *n)
{
    struct store_sqlite_list l = {NULL, 0, 0, sizeof(struct store_user_key),
                                  row_key};
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = db_child_list(st, user_exists, user_id, "key list",
                      "SELECT " KEY_COLS " FROM user_keys WHERE user_id = ?"
                      " ORDER BY created_at, fingerprint",
                      &l, list_release_keys);
    *list = l.items;
    *n = l.n;
    return r;
}

void store_user_key_clear(struct store_user_key *k)
{
    if (k == NULL) {
        return;
    }
    free(k->base64);
    memset(k, 0, sizeof(*k));
}

void store_user_key_list_free(struct store_user_key *list, size_t n)
{
    if (list == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        store_user_key_clear(&list[i]);
    }
    free(list);
}

int store_user_key_match(struct store *st, const char *user_id,
                         const char *fingerprint)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = idn(user_id, ubuf);
    size_t rows = 0;
    int r;

    if (uid == NULL || fingerprint == NULL || fingerprint[0] == '\0') {
        return ERR_NOT_FOUND;
    }
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = db_query(st, "key match",
                 "SELECT 1 FROM user_keys WHERE user_id = ?"
                 " AND fingerprint = ?",
                 NULL, NULL, &rows, "tt", uid, fingerprint);
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    return tx_end(st, r);
}

int store_user_key_delete(struct store *st, const char *user_id,
                          const char *key_id_or_fingerprint)
{
    char id[STORE_ID_MAX + 1], ubuf[STORE_ID_MAX + 1];
    const char *uid = idn(user_id, ubuf);
    int changes = 0, r;

    if (uid == NULL || key_id_or_fingerprint == NULL ||
        key_id_or_fingerprint[0] == '\0') {
        return ERR_NOT_FOUND;
    }
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if (store_id_norm(key_id_or_fingerprint, id)) {
        r = db_run(st, "key delete",
                   "DELETE FROM user_keys WHERE user_id = ? AND id = ?",
                   &changes, "tt", uid, id);
    } else {
        r = db_run(st, "key delete",
                   "DELETE FROM user_keys WHERE user_id = ?"
                   " AND fingerprint = ?",
                   &changes, "tt", uid, key_id_or_fingerprint);
    }
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
    return tx_end(st, r);
}

/* --- groups --------------------------------------------------------------- */

static int row_group(sqlite3_stmt *s, void *item)
{
    struct store_group *g = item;

    store_sqlite_col_text(s, 0, g->id, sizeof(g->id));
    store_sqlite_col_text(s, 1, g->name, sizeof(g->name));
    return ERR_OK;
}

static int group_lookup(struct store *st, const char *name_or_id,
                        struct store_group *out)
{
    char id[STORE_ID_MAX + 1];
    size_t rows = 0;
    int r;

    if (name_or_id == NULL || name_or_id[0] == '\0') {
        return ERR_NOT_FOUND;
    }
    if (store_id_norm(name_or_id, id)) {
        r = db_query(st, "group", "SELECT id, name FROM groups WHERE id = ?",
                     row_group, out, &rows, "t", id);
    } else {
        r = db_query(st, "group", "SELECT id, name FROM groups WHERE name = ?",
                     row_group, out, &rows, "t", name_or_id);
    }
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    return r;
}

int store_group_add(struct store *st, const char *name, struct store_group *out)
{
    struct store_group g;
    int r;

    if ((r = store_check_name(name)) != ERR_OK) {
        return r;
    }
    memset(&g, 0, sizeof(g));
    util_uuid4(g.id);
    snprintf(g.name, sizeof(g.name), "%s", name);
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = db_run(st, "group add",
               "INSERT INTO groups (id, name, created_at) VALUES (?, ?, ?)",
               NULL, "tti", g.id, g.name, (int64_t)util_now());
    if ((r = tx_end(st, r)) == ERR_OK && out != NULL) {
        *out = g;
    }
    return r;
}

int store_group_get(struct store *st, const char *name_or_id,
                    struct store_group *out)
{
    int r;

    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = group_lookup(st, name_or_id, out);
    return tx_end(st, r);
}

/* Runs a list query in a read transaction and hands the array over
 * (items that need no clearing: the caller frees with free()). */
static int db_list_query(struct store *st, const char *what, const char *sql,
                         size_t size, store_row_fn fill, void **list, size_t *n,
                         const char *types, ...)
{
    struct store_sqlite_list l = {NULL, 0, 0, size, fill};
    va_list ap;
    int r;

    *list = NULL;
    *n = 0;
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    va_start(ap, types);
    r = db_queryv(st, what, sql, store_sqlite_list_row, &l, NULL, NULL, types,
                  ap);
    va_end(ap);
    r = store_sqlite_list_end(st, r, &l, NULL);
    *list = l.items;
    *n = l.n;
    return r;
}

int store_group_list(struct store *st, struct store_group **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = db_list_query(st, "group list",
                      "SELECT id, name FROM groups ORDER BY name",
                      sizeof(struct store_group), row_group, &items, n, "");
    *list = items;
    return r;
}

int store_group_delete(struct store *st, const char *name_or_id)
{
    return db_delete_named(st, "group delete",
                           "DELETE FROM groups WHERE id = ?",
                           "DELETE FROM groups WHERE name = ?", name_or_id);
}

int store_group_member_add(struct store *st, const char *group_id,
                           const char *user_id)
{
    char gbuf[STORE_ID_MAX + 1], ubuf[STORE_ID_MAX + 1];
    const char *gid = idn(group_id, gbuf), *uid = idn(user_id, ubuf);
    int r;

    if (gid == NULL || uid == NULL) {
        return ERR_NOT_FOUND;
    }
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = group_exists(st, gid)) != ERR_OK ||
        (r = user_exists(st, uid)) != ERR_OK) {
        goto out;
    }
    r = db_run(st, "member add",
               "INSERT INTO group_members (group_id, user_id) VALUES (?, ?)",
               NULL, "tt", gid, uid);
out:
    return tx_end(st, r);
}

int store_group_member_remove(struct store *st, const char *group_id,
                              const char *user_id)
{
    char gbuf[STORE_ID_MAX + 1], ubuf[STORE_ID_MAX + 1];
    const char *gid = idn(group_id, gbuf), *uid = idn(user_id, ubuf);

    if (gid == NULL || uid == NULL) {
        return ERR_NOT_FOUND;
    }
    return db_update_one(st, "member remove",
                         "DELETE FROM group_members"
                         " WHERE group_id = ? AND user_id = ?",
                         "tt", gid, uid);
}

int store_group_members(struct store *st, const char *group_id,
                        struct store_user **list, size_t *n)
{
    struct store_sqlite_list l = {NULL, 0, 0, sizeof(struct store_user),
                                  row_user};
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = db_child_list(st, group_exists, group_id, "group members",
                      "SELECT " USER_COLS " FROM users u"
                      " JOIN group_members m ON m.user_id = u.id"
                      " WHERE m.group_id = ? ORDER BY u.name",
                      &l, list_release_users);
    *list = l.items;
    *n = l.n;
    return r;
}

int store_user_groups(struct store *st, const char *user_id,
                      struct store_group **list, size_t *n)
{
    struct store_sqlite_list l = {NULL, 0, 0, sizeof(struct store_group),
                                  row_group};
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = db_child_list(st, user_exists, user_id, "user groups",
                      "SELECT g.id, g.name FROM groups g"
                      " JOIN group_members m ON m.group_id = g.id"
                      " WHERE m.user_id = ? ORDER BY g.name",
                      &l, NULL);
    *list = l.items;
    *n = l.n;
    return r;
}

/* --- sites ---------------------------------------------------------------- */

static int row_site(sqlite3_stmt *s, void *item)
{
    struct store_site *x = item;

    store_sqlite_col_text(s, 0, x->id, sizeof(x->id));
    store_sqlite_col_text(s, 1, x->path, sizeof(x->path));
    store_sqlite_col_text(s, 2, x->parent_id, sizeof(x->parent_id));
    return ERR_OK;
}

#define SITE_SELECT "SELECT id, path, COALESCE(parent_id, '') FROM sites"

/* Finds a site by ID or by any form store_site_normalize() accepts (NULL
 * and "" are /root). ERR_INVALID for a malformed path. */
static int site_lookup(struct store *st, const char *path_or_id,
                       struct store_site *out)
{
    char key[STORE_PATH_MAX + 1];
    size_t rows = 0;
    int r;

    memset(out, 0, sizeof(*out));
    if (store_id_norm(path_or_id, key)) {
        r = db_query(st, "site", SITE_SELECT " WHERE id = ?", row_site, out,
                     &rows, "t", key);
    } else {
        if ((r = store_site_normalize(path_or_id, key, sizeof(key))) !=
            ERR_OK) {
            return r;
        }
        r = db_query(st, "site", SITE_SELECT " WHERE path = ?", row_site, out,
                     &rows, "t", key);
    }
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    return r;
}

int store_site_add(struct store *st, const char *path, struct store_site *out)
{
    char norm[STORE_PATH_MAX + 1], prefix[STORE_PATH_MAX + 1];
    struct store_site cur, next;
    size_t at;
    int r;

    memset(&cur, 0, sizeof(cur));
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if (path == NULL || path[0] == '\0') {
        return ERR_INVALID;
    }
    if ((r = store_site_normalize(path, norm, sizeof(norm))) != ERR_OK) {
        return r;
    }
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = site_lookup(st, "/root", &cur)) != ERR_OK) {
        goto out;
    }
    if (strcmp(norm, "/root") == 0) {
        r = ERR_EXISTS;
        goto out;
    }
    /* Walk down from /root, creating every missing level. */
    at = strlen("/root");
    while (norm[at] != '\0') {
        const char *slash = strchr(norm + at + 1, '/');
        size_t end = slash != NULL ? (size_t)(slash - norm) : strlen(norm);
        bool last = norm[end] == '\0';

        memcpy(prefix, norm, end);
        prefix[end] = '\0';
        r = site_lookup(st, prefix, &next);
        if (r == ERR_OK && last) {
            r = ERR_EXISTS;
            goto out;
        }
        if (r == ERR_NOT_FOUND) {
            memset(&next, 0, sizeof(next));
            util_uuid4(next.id);
            snprintf(next.path, sizeof(next.path), "%s", prefix);
            snprintf(next.parent_id, sizeof(next.parent_id), "%s", cur.id);
            r = db_run(st, "site add",
                       "INSERT INTO sites (id, path, parent_id, created_at)"
                       " VALUES (?, ?, ?, ?)",
                       NULL, "ttti", next.id, next.path, next.parent_id,
                       (int64_t)util_now());
        }
        if (r != ERR_OK) {
            goto out;
        }
        cur = next;
        at = end;
    }
out:
    if ((r = tx_end(st, r)) == ERR_OK && out != NULL) {
        *out = cur;
    }
    return r;
}

int store_site_get(struct store *st, const char *path_or_id,
                   struct store_site *out)
{
    int r;

    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = site_lookup(st, path_or_id, out);
    return tx_end(st, r);
}

int store_site_list(struct store *st, struct store_site **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = db_list_query(st, "site list", SITE_SELECT " ORDER BY path",
                      sizeof(struct store_site), row_site, &items, n, "");
    *list = items;
    return r;
}

int store_site_delete(struct store *st, const char *path_or_id)
{
    struct store_site s;
    size_t rows = 0;
    int r;

    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = site_lookup(st, path_or_id, &s)) != ERR_OK) {
        goto out;
    }
    if (s.parent_id[0] == '\0') {
        r = ERR_DENIED; /* /root */
        goto out;
    }
    r = db_query(st, "site delete",
                 "SELECT 1 FROM sites WHERE parent_id = ?"
                 " UNION ALL SELECT 1 FROM assets WHERE site_id = ?",
                 NULL, NULL, &rows, "tt", s.id, s.id);
    if (r == ERR_OK && rows > 0) {
        r = ERR_EXISTS;
    }
    if (r != ERR_OK) {
        goto out;
    }
    /* Grants on the site go by cascade. */
    r = db_run(st, "site delete", "DELETE FROM sites WHERE id = ?", NULL, "t",
               s.id);
out:
    return tx_end(st, r);
}

/* --- assets --------------------------------------------------------------- */

#define ASSET_SELECT                                                           \
    "SELECT a.id, a.name, a.site_id, s.path, a.protocol, a.host, a.port,"      \
    " a.route, a.login_user, a.password_sealed, a.key_sealed,"                 \
    " a.host_key_fp, a.created_at FROM assets a"                               \
    " JOIN sites s ON s.id = a.site_id"

static int row_asset(sqlite3_stmt *s, void *item)
{
    struct store_asset *a = item;
    int r;

    store_sqlite_col_text(s, 0, a->id, sizeof(a->id));
    store_sqlite_col_text(s, 1, a->name, sizeof(a->name));
    store_sqlite_col_text(s, 2, a->site_id, sizeof(a->site_id));
    store_sqlite_col_text(s, 3, a->site_path, sizeof(a->site_path));
    store_sqlite_col_text(s, 4, a->protocol, sizeof(a->protocol));
    store_sqlite_col_text(s, 5, a->host, sizeof(a->host));
    a->port = sqlite3_column_int(s, 6);
    store_sqlite_col_text(s, 7, a->route, sizeof(a->route));
    store_sqlite_col_text(s, 8, a->login_user, sizeof(a->login_user));
    if ((r = col_blob_heap(s, 9, &a->password_sealed,
                           &a->password_sealed_len)) != ERR_OK ||
        (r = col_blob_heap(s, 10, &a->key_sealed, &a->key_sealed_len)) !=
            ERR_OK) {
        store_asset_clear(a);
        return r;
    }
    store_sqlite_col_text(s, 11, a->host_key_fp, sizeof(a->host_key_fp));
    a->created_at = sqlite3_column_int64(s, 12);
    return ERR_OK;
}

void store_asset_clear(struct store_asset *a)
{
    if (a == NULL) {
        return;
    }
    if (a->password_sealed != NULL) {
        sodium_memzero(a->password_sealed, a->password_sealed_len);
        free(a->password_sealed);
    }
    if (a->key_sealed != NULL) {
        sodium_memzero(a->key_sealed, a->key_sealed_len);
        free(a->key_sealed);
    }
    sodium_memzero(a, sizeof(*a));
}

void store_asset_list_free(struct store_asset *list, size_t n)
{
    if (list == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        store_asset_clear(&list[i]);
    }
    free(list);
}

static bool field_ok(const char *f, size_t size)
{
    return memchr(f, '\0', size) != NULL;
}

/* Checks the caller-filled fields of an asset for add and update. */
static int asset_check(const struct store_asset *a)
{
    int r;

    if (!field_ok(a->id, sizeof(a->id)) ||
        !field_ok(a->name, sizeof(a->name)) ||
        !field_ok(a->site_id, sizeof(a->site_id)) ||
        !field_ok(a->site_path, sizeof(a->site_path)) ||
        !field_ok(a->protocol, sizeof(a->protocol)) ||
        !field_ok(a->host, sizeof(a->host)) ||
        !field_ok(a->route, sizeof(a->route)) ||
        !field_ok(a->login_user, sizeof(a->login_user)) ||
        !field_ok(a->host_key_fp, sizeof(a->host_key_fp))) {
        return ERR_TOO_LONG;
    }
    if ((r = store_check_name(a->name)) != ERR_OK ||
        (r = store_check_text(a->protocol, sizeof(a->protocol) - 1, true)) !=
            ERR_OK ||
        (r = store_check_text(a->host, STORE_HOST_MAX, true)) != ERR_OK ||
        (r = store_check_text(a->route, STORE_ROUTE_MAX, false)) != ERR_OK ||
        (r = store_check_text(a->login_user, STORE_NAME_MAX, false)) !=
            ERR_OK ||
        (r = store_check_text(a->host_key_fp, STORE_FP_MAX, false)) != ERR_OK) {
        return r;
    }
    if (a->port < 1 || a->port > 65535) {
        return ERR_INVALID;
    }
    if ((a->password_sealed == NULL && a->password_sealed_len != 0) ||
        (a->key_sealed == NULL && a->key_sealed_len != 0)) {
        return ERR_INVALID;
    }
    if (a->password_sealed_len > STORE_KEY_MAX ||
        a->key_sealed_len > STORE_KEY_MAX) {
        return ERR_TOO_LONG;
    }
    return ERR_OK;
}

/* The asset's site: site_id when set, else site_path ("" = /root). */
static int asset_site(struct store *st, const struct store_asset *a,
                      struct store_site *site)
{
    if (a->site_id[0] != '\0') {
        if (!util_is_uuid(a->site_id)) {
            return ERR_NOT_FOUND;
        }
        return site_lookup(st, a->site_id, site);
    }
    return site_lookup(st, a->site_path, site);
}

int store_asset_add(struct store *st, struct store_asset *a)
{
    struct store_site site;
    char id[STORE_ID_MAX + 1];
    int64_t now = util_now();
    int r;

    memset(&site, 0, sizeof(site));
    if (a == NULL) {
        return ERR_INVALID;
    }
    if ((r = asset_check(a)) != ERR_OK) {
        return r;
    }
    if (a->id[0] == '\0') {
        util_uuid4(id);
    } else if (!store_id_norm(a->id, id)) {
        return ERR_INVALID;
    }
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = asset_site(st, a, &site)) != ERR_OK) {
        goto out;
    }
    r = db_run(st, "asset add",
               "INSERT INTO assets (id, name, site_id, protocol, host, port,"
               " route, login_user, password_sealed, key_sealed, host_key_fp,"
               " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               NULL, "tttttittbbti", id, a->name, site.id, a->protocol, a->host,
               (int64_t)a->port, a->route[0] != '\0' ? a->route : "direct",
               a->login_user, a->password_sealed, a->password_sealed_len,
               a->key_sealed, a->key_sealed_len, a->host_key_fp, now);
out:
    if ((r = tx_end(st, r)) == ERR_OK) {
        memcpy(a->id, id, sizeof(a->id));
        memcpy(a->site_id, site.id, sizeof(a->site_id));
        memcpy(a->site_path, site.path, sizeof(a->site_path));
        if (a->route[0] == '\0') {
            snprintf(a->route, sizeof(a->route), "direct");
        }
        a->created_at = now;
    }
    return r;
}

int store_asset_update(struct store *st, struct store_asset *a)
{
    struct store_site site;
    char id[STORE_ID_MAX + 1];
    int changes = 0, r;

    memset(&site, 0, sizeof(site));
    if (a == NULL) {
        return ERR_INVALID;
    }
    if ((r = asset_check(a)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(a->id, id)) {
        return ERR_NOT_FOUND;
    }
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = asset_site(st, a, &site)) != ERR_OK) {
        goto out;
    }
    r = db_run(st, "asset update",
               "UPDATE assets SET name = ?, site_id = ?, protocol = ?,"
               " host = ?, port = ?, route = ?, login_user = ?,"
               " password_sealed = ?, key_sealed = ?, host_key_fp = ?"
               " WHERE id = ?",
               &changes, "ttttittbbtt", a->name, site.id, a->protocol, a->host,
               (int64_t)a->port, a->route[0] != '\0' ? a->route : "direct",
               a->login_user, a->password_sealed, a->password_sealed_len,
               a->key_sealed, a->key_sealed_len, a->host_key_fp, id);
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
out:
    if ((r = tx_end(st, r)) == ERR_OK) {
        memcpy(a->id, id, sizeof(a->id));
        memcpy(a->site_id, site.id, sizeof(a->site_id));
        memcpy(a->site_path, site.path, sizeof(a->site_path));
        if (a->route[0] == '\0') {
            snprintf(a->route, sizeof(a->route), "direct");
        }
    }
    return r;
}

int store_asset_get(struct store *st, const char *id, struct store_asset *out)
{
    char key[STORE_ID_MAX + 1];
    size_t rows = 0;
    int r;

    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = db_query(st, "asset get", ASSET_SELECT " WHERE a.id = ?", row_asset,
                 out, &rows, "t", key);
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    if ((r = tx_end(st, r)) != ERR_OK) {
        store_asset_clear(out);
    }
    return r;
}

int store_asset_find(struct store *st, const char *site_path, const char *spec,
                     struct store_asset **list, size_t *n)
{
    struct store_sqlite_list l = {NULL, 0, 0, sizeof(struct store_asset),
                                  row_asset};
    struct store_site site;
    char id[STORE_ID_MAX + 1];
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    *list = NULL;
    *n = 0;
    if (spec == NULL || spec[0] == '\0') {
        return ERR_INVALID;
    }
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    if (store_id_norm(spec, id)) {
        r = db_query(st, "asset find", ASSET_SELECT " WHERE a.id = ?",
                     store_sqlite_list_row, &l, NULL, "t", id);
        goto out;
    }
    r = site_lookup(st, site_path, &site);
    if (r == ERR_NOT_FOUND) {
        r = ERR_OK; /* no such site: no matches */
        goto out;
    }
    if (r != ERR_OK) {
        goto out;
    }
    r = db_query(st, "asset find",
                 ASSET_SELECT " WHERE a.site_id = ? AND a.name = ?"
                              " ORDER BY a.id",
                 store_sqlite_list_row, &l, NULL, "tt", site.id, spec);
out:
    r = store_sqlite_list_end(st, r, &l, list_release_assets);
    *list = l.items;
    *n = l.n;
    return r;
}

int store_asset_list(struct store *st, struct store_asset **list, size_t *n)
{
    struct store_sqlite_list l = {NULL, 0, 0, sizeof(struct store_asset),
                                  row_asset};
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    *list = NULL;
    *n = 0;
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = db_query(st, "asset list",
                 ASSET_SELECT " ORDER BY s.path, a.name, a.id",
                 store_sqlite_list_row, &l, NULL, "");
    r = store_sqlite_list_end(st, r, &l, list_release_assets);
    *list = l.items;
    *n = l.n;
    return r;
}

int store_asset_delete(struct store *st, const char *id)
{
    char key[STORE_ID_MAX + 1];

    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    /* Grants on the asset go by cascade; session rows keep its ID and
     * name as text. */
    return db_update_one(st, "asset delete", "DELETE FROM assets WHERE id = ?",
                         "t", key);
}

static int row_fp(sqlite3_stmt *s, void *ctx)
{
    store_sqlite_col_text(s, 0, ctx, STORE_FP_MAX + 1);
    return ERR_OK;
}

int store_asset_pin_host_key(struct store *st, const char *id, const char *fp)
{
    char key[STORE_ID_MAX + 1], pinned[STORE_FP_MAX + 1] = "";
    size_t rows = 0;
    int changes = 0, r;

    if ((r = store_check_text(fp, STORE_FP_MAX, true)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* Trust on first use: only an empty pin is filled, so two sessions
     * seeing different keys at once cannot both pin theirs. */
    r = db_run(st, "host key pin",
               "UPDATE assets SET host_key_fp = ?"
               " WHERE id = ? AND host_key_fp = ''",
               &changes, "tt", fp, key);
    if (r != ERR_OK || changes == 1) {
        goto out;
    }
    r = db_query(st, "host key pin",
                 "SELECT host_key_fp FROM assets WHERE id = ?", row_fp, pinned,
                 &rows, "t", key);
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    } else if (r == ERR_OK && strcmp(pinned, fp) != 0) {
        r = ERR_HOSTKEY;
    }
out:
    return tx_end(st, r);
}

int store_asset_set_host_key(struct store *st, const char *id, const char *fp)
{
    char key[STORE_ID_MAX + 1];
    int r;

    if ((r = store_check_text(fp, STORE_FP_MAX, false)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    return db_update_one(st, "host key set",
                         "UPDATE assets SET host_key_fp = ? WHERE id = ?", "tt",
                         fp != NULL ? fp : "", key);
}

/* --- grants --------------------------------------------------------------- */

static int row_grant(sqlite3_stmt *s, void *item)
{
    struct store_grant *g = item;

    store_sqlite_col_text(s, 0, g->id, sizeof(g->id));
    store_sqlite_col_text(s, 1, g->asset_id, sizeof(g->asset_id));
    store_sqlite_col_text(s, 2, g->site_id, sizeof(g->site_id));
    store_sqlite_col_text(s, 3, g->user_id, sizeof(g->user_id));
    store_sqlite_col_text(s, 4, g->group_id, sizeof(g->group_id));
    store_sqlite_col_text(s, 5, g->target_name, sizeof(g->target_name));
    store_sqlite_col_text(s, 6, g->grantee_name, sizeof(g->grantee_name));
    g->role = sqlite3_column_int(s, 7);
    return ERR_OK;
}

#define GRANT_SELECT                                                           \
    "SELECT g.id, COALESCE(g.asset_id, ''), COALESCE(g.site_id, ''),"          \
    " COALESCE(g.user_id, ''), COALESCE(g.group_id, ''),"                      \
    " COALESCE(a.name, s.path, ''), COALESCE(u.name, gr.name, ''), g.role"     \
    " FROM grants g"                                                           \
    " LEFT JOIN assets a ON a.id = g.asset_id"                                 \
    " LEFT JOIN sites s ON s.id = g.site_id"                                   \
    " LEFT JOIN users u ON u.id = g.user_id"                                   \
    " LEFT JOIN groups gr ON gr.id = g.group_id"

/* Normalizes an optional ID field in place; false if set but not a UUID. */
static bool id_field(char *f, size_t size)
{
    char id[STORE_ID_MAX + 1];

    if (!field_ok(f, size)) {
        return false;
    }
    if (f[0] == '\0') {
        return true;
    }
    if (!store_id_norm(f, id)) {
        return false;
    }
    memcpy(f, id, sizeof(id));
    return true;
}

int store_grant_add(struct store *st, struct store_grant *g)
{
    char id[STORE_ID_MAX + 1];
    size_t rows = 0;
    int r;

    if (g == NULL) {
        return ERR_INVALID;
    }
    if ((g->asset_id[0] == '\0') == (g->site_id[0] == '\0') ||
        (g->user_id[0] == '\0') == (g->group_id[0] == '\0') ||
        g->role < ROLE_VIEWER || g->role > ROLE_OWNER) {
        return ERR_INVALID;
    }
    if (!id_field(g->asset_id, sizeof(g->asset_id)) ||
        !id_field(g->site_id, sizeof(g->site_id)) ||
        !id_field(g->user_id, sizeof(g->user_id)) ||
        !id_field(g->group_id, sizeof(g->group_id))) {
        return ERR_NOT_FOUND;
    }
    util_uuid4(id);
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* Explicit checks rather than foreign-key errors, which SQLite does
     * not attribute to a column. */
    if (g->asset_id[0] != '\0') {
        r = db_exists(st, "grant", "SELECT 1 FROM assets WHERE id = ?",
                      g->asset_id);
    } else {
        r = db_exists(st, "grant", "SELECT 1 FROM sites WHERE id = ?",
                      g->site_id);
    }
    if (r != ERR_OK) {
        goto out;
    }
    r = g->user_id[0] != '\0' ? user_exists(st, g->user_id)
                              : group_exists(st, g->group_id);
    if (r != ERR_OK) {
        goto out;
    }
    r = db_run(st, "grant add",
               "INSERT INTO grants (id, asset_id, site_id, user_id, group_id,"
               " role, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
               NULL, "tttttii", id, g->asset_id[0] != '\0' ? g->asset_id : NULL,
               g->site_id[0] != '\0' ? g->site_id : NULL,
               g->user_id[0] != '\0' ? g->user_id : NULL,
               g->group_id[0] != '\0' ? g->group_id : NULL, (int64_t)g->role,
               (int64_t)util_now());
    if (r != ERR_OK) {
        goto out;
    }
    r = db_query(st, "grant add", GRANT_SELECT " WHERE g.id = ?", row_grant, g,
                 &rows, "t", id);
    if (r == ERR_OK && rows != 1) {
        r = ERR_INTERNAL;
    }
out:
    return tx_end(st, r);
}

int store_grant_list(struct store *st, struct store_grant **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = db_list_query(st, "grant list", GRANT_SELECT " ORDER BY 6, 7, g.id",
                      sizeof(struct store_grant), row_grant, &items, n, "");
    *list = items;
    return r;
}

int store_grant_delete(struct store *st, const char *id)
{
    char key[STORE_ID_MAX + 1];

    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    return db_update_one(st, "grant delete", "DELETE FROM grants WHERE id = ?",
                         "t", key);
}

int store_user_asset_role(struct store *st, const char *user_id,
                          const char *asset_id, int *role)
{
    char ubuf[STORE_ID_MAX + 1], abuf[STORE_ID_MAX + 1];
    const char *uid = idn(user_id, ubuf), *aid = idn(asset_id, abuf);
    int64_t best = 0;
    int r;

    if (role == NULL) {
        return ERR_INVALID;
    }
    *role = ROLE_NONE;
    if (uid == NULL || aid == NULL) {
        return ERR_NOT_FOUND;
    }
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    if ((r = user_exists(st, uid)) != ERR_OK ||
        (r = db_exists(st, "asset", "SELECT 1 FROM assets WHERE id = ?",
                       aid)) != ERR_OK) {
        goto out;
    }
    /* The asset's site and every ancestor, by parent links (never by path
     * prefix, so /root/ab is not taken for a sub-site of /root/a); then
     * the best grant to the user or one of their groups on any of them or
     * on the asset itself. Plain SQL:1999, as PostgreSQL runs it. */
    r = db_query(st, "asset role",
                 "WITH RECURSIVE anc(id, parent_id) AS ("
                 "  SELECT s.id, s.parent_id FROM sites s"
                 "   JOIN assets a ON a.site_id = s.id WHERE a.id = ?1"
                 "  UNION ALL"
                 "  SELECT s.id, s.parent_id FROM sites s"
                 "   JOIN anc ON s.id = anc.parent_id)"
                 " SELECT COALESCE(MAX(g.role), 0) FROM grants g"
                 " WHERE (g.asset_id = ?1"
                 "        OR g.site_id IN (SELECT id FROM anc))"
                 "   AND (g.user_id = ?2"
                 "        OR g.group_id IN (SELECT group_id"
                 "                          FROM group_members"
                 "                          WHERE user_id = ?2))",
                 store_sqlite_int_row, &best, NULL, "tt", aid, uid);
    if (r == ERR_OK) {
        *role = best >= ROLE_NONE && best <= ROLE_OWNER ? (int)best : ROLE_NONE;
    }
out:
    return tx_end(st, r);
}

/* --- access profiles ------------------------------------------------------ */

#define PROFILE_COLS                                                           \
    "p.id, p.name, p.native, p.shell, p.exec, p.sftp, p.scp,"                  \
    " p.local_forward, p.remote_forward, p.agent_forward, p.x11,"              \
    " p.max_session_minutes, p.idle_timeout_minutes, p.record_input"

static int row_profile(sqlite3_stmt *s, void *item)
{
    struct store_profile *p = item;

    store_sqlite_col_text(s, 0, p->id, sizeof(p->id));
    store_sqlite_col_text(s, 1, p->name, sizeof(p->name));
    p->native = sqlite3_column_int(s, 2);
    p->shell = sqlite3_column_int(s, 3) != 0;
    p->exec = sqlite3_column_int(s, 4) != 0;
    p->sftp = sqlite3_column_int(s, 5) != 0;
    p->scp = sqlite3_column_int(s, 6) != 0;
    p->local_forward = sqlite3_column_int(s, 7) != 0;
    p->remote_forward = sqlite3_column_int(s, 8) != 0;
    p->agent_forward = sqlite3_column_int(s, 9) != 0;
    p->x11 = sqlite3_column_int(s, 10) != 0;
    p->max_session_minutes = sqlite3_column_int(s, 11);
    p->idle_timeout_minutes = sqlite3_column_int(s, 12);
    p->record_input = sqlite3_column_int(s, 13) != 0;
    return ERR_OK;
}

static int profile_check(const struct store_profile *p)
{
    if (!field_ok(p->id, sizeof(p->id)) ||
        !field_ok(p->name, sizeof(p->name))) {
        return ERR_TOO_LONG;
    }
    if (p->native < NATIVE_DENY || p->native > NATIVE_RECORD ||
        p->max_session_minutes < 0 || p->idle_timeout_minutes < 0) {
        return ERR_INVALID;
    }
    return store_check_name(p->name);
}

static int profile_lookup(struct store *st, const char *name_or_id,
                          struct store_profile *out)
{
    char id[STORE_ID_MAX + 1];
    size_t rows = 0;
    int r;

    if (name_or_id == NULL || name_or_id[0] == '\0') {
        return ERR_NOT_FOUND;
    }
    if (store_id_norm(name_or_id, id)) {
        r = db_query(st, "profile",
                     "SELECT " PROFILE_COLS " FROM profiles p WHERE p.id = ?",
                     row_profile, out, &rows, "t", id);
    } else {
        r = db_query(st, "profile",
                     "SELECT " PROFILE_COLS " FROM profiles p WHERE p.name = ?",
                     row_profile, out, &rows, "t", name_or_id);
    }
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    return r;
}

int store_profile_add(struct store *st, struct store_profile *p)
{
    char id[STORE_ID_MAX + 1];
    int r;

    if (p == NULL) {
        return ERR_INVALID;
    }
    if ((r = profile_check(p)) != ERR_OK) {
        return r;
    }
    util_uuid4(id);
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = db_run(st, "profile add",
               "INSERT INTO profiles (id, name, native, shell, exec, sftp,"
               " scp, local_forward, remote_forward, agent_forward, x11,"
               " max_session_minutes, idle_timeout_minutes, created_at,"
               " record_input)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               NULL, "ttiiiiiiiiiiiii", id, p->name, (int64_t)p->native,
               (int64_t)p->shell, (int64_t)p->exec, (int64_t)p->sftp,
               (int64_t)p->scp, (int64_t)p->local_forward,
               (int64_t)p->remote_forward, (int64_t)p->agent_forward,
               (int64_t)p->x11, (int64_t)p->max_session_minutes,
               (int64_t)p->idle_timeout_minutes, (int64_t)util_now(),
               (int64_t)p->record_input);
    if ((r = tx_end(st, r)) == ERR_OK) {
        memcpy(p->id, id, sizeof(p->id));
    }
    return r;
}

int store_profile_update(struct store *st, const struct store_profile *p)
{
    char id[STORE_ID_MAX + 1];
    int r;

    if (p == NULL) {
        return ERR_INVALID;
    }
    if ((r = profile_check(p)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(p->id, id)) {
        return ERR_NOT_FOUND;
    }
    return db_update_one(
        st, "profile update",
        "UPDATE profiles SET name = ?, native = ?, shell = ?, exec = ?,"
        " sftp = ?, scp = ?, local_forward = ?, remote_forward = ?,"
        " agent_forward = ?, x11 = ?, max_session_minutes = ?,"
        " idle_timeout_minutes = ?, record_input = ? WHERE id = ?",
        "tiiiiiiiiiiiit", p->name, (int64_t)p->native, (int64_t)p->shell,
        (int64_t)p->exec, (int64_t)p->sftp, (int64_t)p->scp,
        (int64_t)p->local_forward, (int64_t)p->remote_forward,
        (int64_t)p->agent_forward, (int64_t)p->x11,
        (int64_t)p->max_session_minutes, (int64_t)p->idle_timeout_minutes,
        (int64_t)p->record_input, id);
}

int store_profile_get(struct store *st, const char *name_or_id,
                      struct store_profile *out)
{
    int r;

    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = profile_lookup(st, name_or_id, out);
    return tx_end(st, r);
}

int store_profile_list(struct store *st, struct store_profile **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = db_list_query(st, "profile list",
                      "SELECT " PROFILE_COLS " FROM profiles p ORDER BY p.name",
                      sizeof(struct store_profile), row_profile, &items, n, "");
    *list = items;
    return r;
}

int store_profile_delete(struct store *st, const char *name_or_id)
{
    /* Assignments go by cascade. */
    return db_delete_named(st, "profile delete",
                           "DELETE FROM profiles WHERE id = ?",
                           "DELETE FROM profiles WHERE name = ?", name_or_id);
}

/* Exactly one of user_id / group_id names the grantee; *col says which
 * column ("user" or "group"), *gid gets its normalized ID. */
static int assignee(const char *user_id, const char *group_id, char *gid,
                    bool *is_user)
{
    bool u = user_id != NULL && user_id[0] != '\0';
    bool g = group_id != NULL && group_id[0] != '\0';

    if (u == g) {
        return ERR_INVALID;
    }
    *is_user = u;
    return store_id_norm(u ? user_id : group_id, gid) ? ERR_OK : ERR_NOT_FOUND;
}

int store_profile_assign(struct store *st, const char *profile_id,
                         const char *user_id, const char *group_id)
{
    char pid[STORE_ID_MAX + 1], gid[STORE_ID_MAX + 1], id[STORE_ID_MAX + 1];
    bool is_user = false;
    int r;

    if ((r = assignee(user_id, group_id, gid, &is_user)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(profile_id, pid)) {
        return ERR_NOT_FOUND;
    }
    util_uuid4(id);
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = db_exists(st, "profile", "SELECT 1 FROM profiles WHERE id = ?",
                       pid)) != ERR_OK) {
        goto out;
    }
    r = is_user ? user_exists(st, gid) : group_exists(st, gid);
    if (r != ERR_OK) {
        goto out;
    }
    r = db_run(st, "profile assign",
               "INSERT INTO profile_assignments (id, profile_id, user_id,"
               " group_id) VALUES (?, ?, ?, ?)",
               NULL, "tttt", id, pid, is_user ? gid : NULL,
               is_user ? NULL : gid);
out:
    return tx_end(st, r);
}

int store_profile_unassign(struct store *st, const char *profile_id,
                           const char *user_id, const char *group_id)
{
    char pid[STORE_ID_MAX + 1], gid[STORE_ID_MAX + 1];
    bool is_user = false;
    int r;

    if ((r = assignee(user_id, group_id, gid, &is_user)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(profile_id, pid)) {
        return ERR_NOT_FOUND;
    }
    if (is_user) {
        return db_update_one(st, "profile unassign",
                             "DELETE FROM profile_assignments"
                             " WHERE profile_id = ? AND user_id = ?",
                             "tt", pid, gid);
    }
    return db_update_one(st, "profile unassign",
                         "DELETE FROM profile_assignments"
                         " WHERE profile_id = ? AND group_id = ?",
                         "tt", pid, gid);
}

int store_user_profiles(struct store *st, const char *user_id,
                        struct store_profile **list, size_t *n)
{
    struct store_sqlite_list l = {NULL, 0, 0, sizeof(struct store_profile),
                                  row_profile};
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    /* IN (... UNION ...) yields each profile once, however many ways it
     * reaches the user. */
    r = db_child_list(st, user_exists, user_id, "user profiles",
                      "SELECT " PROFILE_COLS " FROM profiles p WHERE p.id IN ("
                      " SELECT profile_id FROM profile_assignments"
                      "  WHERE user_id = ?1"
                      " UNION"
                      " SELECT pa.profile_id FROM profile_assignments pa"
                      "  JOIN group_members m ON m.group_id = pa.group_id"
                      "  WHERE m.user_id = ?1)"
                      " ORDER BY p.name",
                      &l, NULL);
    *list = l.items;
    *n = l.n;
    return r;
}

/* --- session report ------------------------------------------------------- */

#define SESSION_COLS                                                           \
    "id, user_id, user_name, asset_id, asset_name, site, kind, client_addr,"   \
    " route, started_at, COALESCE(ended_at, 0), bytes_up, bytes_down,"         \
    " exit_status, result, detail, recording_path, recording_sha256,"          \
    " recording_size, COALESCE(recording_deleted_at, 0)"

static int row_session(sqlite3_stmt *s, void *item)
{
    struct store_session *x = item;

    store_sqlite_col_text(s, 0, x->id, sizeof(x->id));
    store_sqlite_col_text(s, 1, x->user_id, sizeof(x->user_id));
    store_sqlite_col_text(s, 2, x->user_name, sizeof(x->user_name));
    store_sqlite_col_text(s, 3, x->asset_id, sizeof(x->asset_id));
    store_sqlite_col_text(s, 4, x->asset_name, sizeof(x->asset_name));
    store_sqlite_col_text(s, 5, x->site, sizeof(x->site));
    store_sqlite_col_text(s, 6, x->kind, sizeof(x->kind));
    store_sqlite_col_text(s, 7, x->client_addr, sizeof(x->client_addr));
    store_sqlite_col_text(s, 8, x->route, sizeof(x->route));
    x->started_at = sqlite3_column_int64(s, 9);
    x->ended_at = sqlite3_column_int64(s, 10);
    x->bytes_up = (uint64_t)sqlite3_column_int64(s, 11);
    x->bytes_down = (uint64_t)sqlite3_column_int64(s, 12);
    x->exit_status = sqlite3_column_int(s, 13);
    store_sqlite_col_text(s, 14, x->result, sizeof(x->result));
    store_sqlite_col_text(s, 15, x->detail, sizeof(x->detail));
    store_sqlite_col_text(s, 16, x->recording_path, sizeof(x->recording_path));
    store_sqlite_col_text(s, 17, x->recording_sha256,
                          sizeof(x->recording_sha256));
    x->recording_size = (uint64_t)sqlite3_column_int64(s, 18);
    x->recording_deleted_at = sqlite3_column_int64(s, 19);
    return ERR_OK;
}

/* Every text field is NUL-terminated within its array (a caller that
 * filled one to the brim gets ERR_TOO_LONG, not a truncated row). */
static int session_check(const struct store_session *s)
{
    if (!field_ok(s->id, sizeof(s->id)) ||
        !field_ok(s->user_id, sizeof(s->user_id)) ||
        !field_ok(s->user_name, sizeof(s->user_name)) ||
        !field_ok(s->asset_id, sizeof(s->asset_id)) ||
        !field_ok(s->asset_name, sizeof(s->asset_name)) ||
        !field_ok(s->site, sizeof(s->site)) ||
        !field_ok(s->kind, sizeof(s->kind)) ||
        !field_ok(s->client_addr, sizeof(s->client_addr)) ||
        !field_ok(s->route, sizeof(s->route)) ||
        !field_ok(s->result, sizeof(s->result)) ||
        !field_ok(s->detail, sizeof(s->detail)) ||
        !field_ok(s->recording_path, sizeof(s->recording_path)) ||
        !field_ok(s->recording_sha256, sizeof(s->recording_sha256))) {
        return ERR_TOO_LONG;
    }
    return ERR_OK;
}

int store_session_open(struct store *st, const struct store_session *s)
{
    char id[STORE_ID_MAX + 1];
    bool closed;
    int r;

    if (s == NULL) {
        return ERR_INVALID;
    }
    if ((r = session_check(s)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(s->id, id)) {
        return ERR_INVALID;
    }
    /* A row written already closed (an attempt refused before it became a
     * session) needs its result; an open row starts with none. */
    closed = s->ended_at != 0;
    if (closed && s->result[0] == '\0') {
        return ERR_INVALID;
    }
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* seq orders rows of the same second; the immediate transaction makes
     * MAX() + 1 race-free here. */
    r = db_run(st, "session open",
               "INSERT INTO sessions (id, seq, user_id, user_name, asset_id,"
               " asset_name, site, kind, client_addr, route, started_at,"
               " ended_at, bytes_up, bytes_down, exit_status, result, detail,"
               " recording_path, recording_sha256, recording_size)"
               " VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM sessions),"
               " ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
               " ?15, ?16, ?17, ?18, ?19)",
               NULL, "tttttttttiziiitttti", id, s->user_id, s->user_name,
               s->asset_id, s->asset_name, s->site, s->kind, s->client_addr,
               s->route, s->started_at != 0 ? s->started_at : util_now(),
               closed ? s->ended_at : (int64_t)0,
               closed ? clamp_u64(s->bytes_up) : (int64_t)0,
               closed ? clamp_u64(s->bytes_down) : (int64_t)0,
               closed ? (int64_t)s->exit_status : (int64_t)-1,
               closed ? s->result : "", s->detail, s->recording_path,
               s->recording_sha256, clamp_u64(s->recording_size));
    return tx_end(st, r);
}

int store_session_close(struct store *st, const char *id, int64_t ended_at,
                        uint64_t bytes_up, uint64_t bytes_down, int exit_status,
                        const char *result)
{
    char key[STORE_ID_MAX + 1];
    int r;

    if ((r = store_check_len(result, STORE_RESULT_MAX)) != ERR_OK) {
        return r;
    }
    if (result == NULL || result[0] == '\0') {
        return ERR_INVALID;
    }
    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    /* Only an open row is closed: a second close (a reaper racing the
     * session's own close) finds none and never rewrites the report. */
    return db_update_one(st, "session close",
                         "UPDATE sessions SET ended_at = ?, bytes_up = ?,"
                         " bytes_down = ?, exit_status = ?, result = ?"
                         " WHERE id = ? AND ended_at IS NULL",
                         "iiiitt", ended_at != 0 ? ended_at : util_now(),
                         clamp_u64(bytes_up), clamp_u64(bytes_down),
                         (int64_t)exit_status, result, key);
}

int store_session_update(struct store *st, const struct store_session *s)
{
    char key[STORE_ID_MAX + 1];
    int r;

    if (s == NULL) {
        return ERR_INVALID;
    }
    if ((r = session_check(s)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(s->id, key)) {
        return ERR_NOT_FOUND;
    }
    /* NULLIF(?, '') turns an empty argument into "keep the column". */
    return db_update_one(
        st, "session update",
        "UPDATE sessions SET"
        " user_id = COALESCE(NULLIF(?, ''), user_id),"
        " user_name = COALESCE(NULLIF(?, ''), user_name),"
        " asset_id = COALESCE(NULLIF(?, ''), asset_id),"
        " asset_name = COALESCE(NULLIF(?, ''), asset_name),"
        " site = COALESCE(NULLIF(?, ''), site),"
        " kind = COALESCE(NULLIF(?, ''), kind),"
        " client_addr = COALESCE(NULLIF(?, ''), client_addr),"
        " route = COALESCE(NULLIF(?, ''), route),"
        " detail = COALESCE(NULLIF(?, ''), detail),"
        " recording_path = COALESCE(NULLIF(?, ''), recording_path),"
        " recording_sha256 = COALESCE(NULLIF(?, ''), recording_sha256)"
        " WHERE id = ?",
        "tttttttttttt", s->user_id, s->user_name, s->asset_id, s->asset_name,
        s->site, s->kind, s->client_addr, s->route, s->detail,
        s->recording_path, s->recording_sha256, key);
}

int store_session_get(struct store *st, const char *id,
                      struct store_session *out)
{
    char key[STORE_ID_MAX + 1];
    size_t rows = 0;
    int r;

    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = db_query(st, "session get",
                 "SELECT " SESSION_COLS " FROM sessions WHERE id = ?",
                 row_session, out, &rows, "t", key);
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    return tx_end(st, r);
}

/* substr() counts characters, not bytes. */
int64_t store_utf8_chars(const char *s)
{
    int64_t n = 0;

    for (; *s != '\0'; s++) {
        if (((unsigned char)*s & 0xc0) != 0x80) {
            n++;
        }
    }
    return n;
}

/*
 * The filter's clauses are chosen from constant fragments; only their
 * values are bound, in the order the fragments were appended.
 */
int store_session_list(struct store *st, const struct store_session_filter *f,
                       struct store_session **list, size_t *n)
{
    struct store_sqlite_list l = {NULL, 0, 0, sizeof(struct store_session),
                                  row_session};
    char sql[1024], abuf[STORE_ID_MAX + 1];
    const char *asset_id = NULL;
    sqlite3_stmt *stmt = NULL;
    int r = ERR_OK, rc, idx = 0;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    *list = NULL;
    *n = 0;
    if (f != NULL && f->asset_id != NULL) {
        asset_id = store_id_norm(f->asset_id, abuf) ? abuf : f->asset_id;
    }
    rc = snprintf(sql, sizeof(sql),
                  "SELECT %s FROM sessions WHERE 1 = 1%s%s%s%s%s%s"
                  " ORDER BY started_at DESC, seq DESC%s",
                  SESSION_COLS,
                  f != NULL && f->user_name != NULL ? " AND user_name = ?" : "",
                  asset_id != NULL ? " AND asset_id = ?" : "",
                  f != NULL && f->kind != NULL ? " AND kind = ?" : "",
                  f != NULL && f->result_prefix != NULL
                      ? " AND substr(result, 1, ?) = ?"
                      : "",
                  f != NULL && f->since != 0 ? " AND started_at >= ?" : "",
                  f != NULL && f->until != 0 ? " AND started_at <= ?" : "",
                  f != NULL && f->limit != 0 ? " LIMIT ?" : "");
    if (rc < 0 || (size_t)rc >= sizeof(sql)) {
        return ERR_INTERNAL;
    }
    if ((r = tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    rc = sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK && f != NULL && f->user_name != NULL) {
        rc = sqlite3_bind_text(stmt, ++idx, f->user_name, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK && asset_id != NULL) {
        rc = sqlite3_bind_text(stmt, ++idx, asset_id, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK && f != NULL && f->kind != NULL) {
        rc = sqlite3_bind_text(stmt, ++idx, f->kind, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK && f != NULL && f->result_prefix != NULL) {
        rc =
            sqlite3_bind_int64(stmt, ++idx, store_utf8_chars(f->result_prefix));
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_text(stmt, ++idx, f->result_prefix, -1,
                                   SQLITE_STATIC);
        }
    }
    if (rc == SQLITE_OK && f != NULL && f->since != 0) {
        rc = sqlite3_bind_int64(stmt, ++idx, f->since);
    }
    if (rc == SQLITE_OK && f != NULL && f->until != 0) {
        rc = sqlite3_bind_int64(stmt, ++idx, f->until);
    }
    if (rc == SQLITE_OK && f != NULL && f->limit != 0) {
        rc = sqlite3_bind_int64(stmt, ++idx, clamp_u64(f->limit));
    }
    if (rc != SQLITE_OK) {
        r = db_fail(st, rc, "session list");
        goto out;
    }
    r = store_sqlite_step(st, stmt, "session list", store_sqlite_list_row, &l,
                          NULL);
out:
    sqlite3_finalize(stmt);
    r = store_sqlite_list_end(st, r, &l, NULL);
    *list = l.items;
    *n = l.n;
    return r;
}

int store_session_close_dangling(struct store *st, int64_t now,
                                 const char *result, int *count)
{
    int changes = 0, r;

    if (count != NULL) {
        *count = 0;
    }
    if ((r = store_check_len(result, STORE_RESULT_MAX)) != ERR_OK) {
        return r;
    }
    if (result == NULL || result[0] == '\0') {
        return ERR_INVALID;
    }
    if ((r = tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = db_run(st, "close dangling",
               "UPDATE sessions SET ended_at = ?, result = ?"
               " WHERE ended_at IS NULL",
               &changes, "it", now != 0 ? now : util_now(), result);
    if ((r = tx_end(st, r)) == ERR_OK && count != NULL) {
        *count = changes;
    }
    return r;
}

int store_session_set_recording(struct store *st, const char *id,
                                const char *path, uint64_t size,
                                const char *sha256)
{
    char key[STORE_ID_MAX + 1];
    int r;

    if ((r = store_check_len(path, STORE_PATH_MAX)) != ERR_OK ||
        (r = store_check_len(sha256, 64)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    return db_update_one(st, "session recording",
                         "UPDATE sessions SET recording_path = ?,"
                         " recording_size = ?, recording_sha256 = ?"
                         " WHERE id = ?",
                         "titt", path != NULL ? path : "", clamp_u64(size),
                         sha256 != NULL ? sha256 : "", key);
}

int store_session_list_expired(struct store *st, int64_t ended_before,
                               const char *after_id, size_t limit,
                               struct store_session **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL || limit == 0) {
        return ERR_INVALID;
    }
    /* Keyset paging by ID: a row the sweep could not delete is not seen
     * again in the same sweep. */
    r = db_list_query(st, "sessions expired",
                      "SELECT " SESSION_COLS " FROM sessions"
                      " WHERE ended_at IS NOT NULL AND ended_at < ?"
                      " AND recording_path <> ''"
                      " AND recording_deleted_at IS NULL AND id > ?"
                      " ORDER BY id LIMIT ?",
                      sizeof(struct store_session), row_session, &items, n,
                      "iti", ended_before, after_id != NULL ? after_id : "",
                      clamp_u64(limit));
    *list = items;
    return r;
}

int store_session_recording_deleted(struct store *st, const char *id,
                                    int64_t when)
{
    char key[STORE_ID_MAX + 1];

    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    return db_update_one(st, "session recording deleted",
                         "UPDATE sessions SET recording_size = 0,"
                         " recording_deleted_at = ? WHERE id = ?",
                         "it", when != 0 ? when : util_now(), key);
}

/* --- for the driver's companion files (store_internal.h) ----------------- */

struct sqlite3 *store_sqlite_db(struct store *st)
{
    return st != NULL && st->pid == getpid() ? st->db : NULL;
}

int store_sqlite_begin(struct store *st, bool write)
{
    return tx_begin(st, write);
}

int store_sqlite_end(struct store *st, int r)
{
    return tx_end(st, r);
}

int store_sqlite_fail(struct store *st, int rc, const char *what)
{
    return db_fail(st, rc, what);
}

struct store_one {
    void *out;
    bool found;
    store_row_fn fill;
};

static int store_one_row(sqlite3_stmt *s, void *ctx)
{
    struct store_one *o = ctx;

    if (!o->found) {
        o->found = true;
        return o->fill(s, o->out);
    }
    return ERR_OK;
}

int store_sqlite_query_one(struct store *st, const char *what, const char *sql,
                           const char *key, store_row_fn fill, void *out)
{
    struct store_one o = {out, false, fill};
    int r =
        store_sqlite_query(st, what, sql, store_one_row, &o, NULL, "t", key);

    return r == ERR_OK && !o.found ? ERR_NOT_FOUND : r;
}

int store_sqlite_query(struct store *st, const char *what, const char *sql,
                       store_row_fn fn, void *ctx, int *changes,
                       const char *types, ...)
{
    va_list ap;
    int r;

    if (store_sqlite_db(st) == NULL) {
        return ERR_STORE;
    }
    va_start(ap, types);
    r = db_queryv(st, what, sql, fn, ctx, NULL, changes, types, ap);
    va_end(ap);
    return r;
}
