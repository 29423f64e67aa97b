/*
 * What every noun file of the store is written with (store_internal.h):
 * the handle's lifecycle and migrations, one transaction per public
 * function, queries with typed binds, rows collected into lists.
 *
 * Every public function of the store is one transaction: store_tx_begin(),
 * work, store_tx_end(), which commits on ERR_OK and rolls back otherwise.
 * Values always travel as bound parameters; SQL text is constant (or, for
 * filters, assembled from constant fragments). The driver (db.h) maps the
 * database's errors: unique violations are ERR_EXISTS, foreign keys
 * ERR_NOT_FOUND, anything else ERR_STORE with one log line.
 *
 * Nothing here names a database: the SQL below is the migration
 * bookkeeping, which PostgreSQL runs as written.
 */
#include "store/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "store/audit.h"
#include "store/db.h"
#include "store/store_internal.h"

/* --- transactions -------------------------------------------------------- */

int store_tx_begin(struct store *st, bool write)
{
    if (st == NULL || st->db == NULL) {
        return ERR_INVALID;
    }
    if (st->creating) {
        return st->create_err; /* inside store_create_begin()'s */
    }
    return db_begin(st->db, write);
}

int store_tx_begin_part(struct store *st, int part)
{
    if (st == NULL || st->db == NULL) {
        return ERR_INVALID;
    }
    if (st->creating) {
        return st->create_err;
    }
    return db_begin_part(st->db, (enum db_part)part);
}

int store_tx_end(struct store *st, int r)
{
    if (st->creating) {
        if (r != ERR_OK && st->create_err == ERR_OK) {
            st->create_err = r;
        }
        return r;
    }
    if (r == ERR_OK) {
        return db_commit(st->db);
    }
    db_rollback(st->db);
    return r;
}

struct db *store_db(struct store *st)
{
    return st != NULL ? st->db : NULL;
}

/* --- queries ------------------------------------------------------------- */

/* Binds parameters 1, 2, ... from a type string (store_query()). */
static int store_bindv(struct db_stmt *stmt, const char *what,
                       const char *types, va_list ap)
{
    int r = ERR_OK, i;

    for (i = 0; types[i] != '\0' && r == ERR_OK; i++) {
        int idx = i + 1;

        switch (types[i]) {
        case 't':
            r = db_bind_text(stmt, idx, va_arg(ap, const char *));
            break;
        case 'i':
            r = db_bind_int64(stmt, idx, va_arg(ap, int64_t));
            break;
        case 'z': {
            int64_t v = va_arg(ap, int64_t);

            r = v == 0 ? db_bind_null(stmt, idx) : db_bind_int64(stmt, idx, v);
            break;
        }
        case 'b': {
            const uint8_t *p = va_arg(ap, const uint8_t *);
            size_t len = va_arg(ap, size_t);

            r = db_bind_blob(stmt, idx, p, len);
            break;
        }
        default:
            log_error("store: %s: bad bind type", what);
            return ERR_INTERNAL;
        }
    }
    if (r == ERR_OK && i != db_param_count(stmt)) {
        log_error("store: %s: %d values for %d parameters", what, i,
                  db_param_count(stmt));
        r = ERR_INTERNAL;
    }
    return r;
}

int store_step(struct db_stmt *stmt, store_row_fn fn, void *ctx, size_t *rows)
{
    bool row = false;
    size_t n = 0;
    int r;

    while ((r = db_step(stmt, &row)) == ERR_OK && row) {
        if (fn != NULL && (r = fn(stmt, ctx)) != ERR_OK) {
            break;
        }
        n++;
    }
    if (rows != NULL) {
        *rows = n;
    }
    return r;
}

static int store_queryv(struct store *st, const char *what, const char *sql,
                        store_row_fn fn, void *ctx, size_t *rows, int *changes,
                        const char *types, va_list ap)
{
    struct db_stmt *stmt = NULL;
    int r;

    if (rows != NULL) {
        *rows = 0;
    }
    if ((r = db_prepare(st->db, what, sql, &stmt)) != ERR_OK ||
        (r = store_bindv(stmt, what, types, ap)) != ERR_OK ||
        (r = store_step(stmt, fn, ctx, rows)) != ERR_OK) {
        goto out;
    }
    if (changes != NULL) {
        *changes = (int)db_changes(stmt);
    }
out:
    db_finalize(stmt);
    return r;
}

int store_query(struct store *st, const char *what, const char *sql,
                store_row_fn fn, void *ctx, size_t *rows, const char *types,
                ...)
{
    va_list ap;
    int r;

    va_start(ap, types);
    r = store_queryv(st, what, sql, fn, ctx, rows, NULL, types, ap);
    va_end(ap);
    return r;
}

int store_run(struct store *st, const char *what, const char *sql, int *changes,
              const char *types, ...)
{
    va_list ap;
    int r;

    va_start(ap, types);
    r = store_queryv(st, what, sql, NULL, NULL, NULL, changes, types, ap);
    va_end(ap);
    return r;
}

void store_sql_add(struct store_sql *q, const char *frag)
{
    size_t n = strlen(frag);

    if (q->overflow || q->len + n >= sizeof(q->text)) {
        q->overflow = true;
        return;
    }
    memcpy(q->text + q->len, frag, n + 1);
    q->len += n;
}

/* Appends frag and the next parameter's "$N"; false if there is no room. */
static bool store_sql_param(struct store_sql *q, const char *frag, char type)
{
    char num[16];

    if (q->n >= STORE_SQL_PARAMS) {
        q->overflow = true;
        return false;
    }
    snprintf(num, sizeof(num), "$%d", q->n + 1);
    store_sql_add(q, frag);
    store_sql_add(q, num);
    q->type[q->n] = type;
    return !q->overflow;
}

void store_sql_param_text(struct store_sql *q, const char *frag, const char *v)
{
    if (store_sql_param(q, frag, 't')) {
        q->str[q->n++] = v;
    }
}

void store_sql_param_int(struct store_sql *q, const char *frag, int64_t v)
{
    if (store_sql_param(q, frag, 'i')) {
        q->num[q->n++] = v;
    }
}

int store_sql_run(struct store *st, const char *what, const struct store_sql *q,
                  store_row_fn fn, void *ctx)
{
    struct db_stmt *stmt = NULL;
    int r;

    if (q->overflow) {
        log_error("store: %s: query too long", what);
        return ERR_INTERNAL;
    }
    if ((r = db_prepare(st->db, what, q->text, &stmt)) != ERR_OK) {
        return r;
    }
    for (int i = 0; i < q->n && r == ERR_OK; i++) {
        r = q->type[i] == 't' ? db_bind_text(stmt, i + 1, q->str[i])
                              : db_bind_int64(stmt, i + 1, q->num[i]);
    }
    if (r == ERR_OK) {
        r = store_step(stmt, fn, ctx, NULL);
    }
    db_finalize(stmt);
    return r;
}

int store_exists(struct store *st, const char *what, const char *sql,
                 const char *id)
{
    size_t rows = 0;
    int r = store_query(st, what, sql, NULL, NULL, &rows, "t", id);

    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    return r;
}

struct store_one {
    void *out;
    bool found;
    store_row_fn fill;
};

static int store_one_row(struct db_stmt *s, void *ctx)
{
    struct store_one *o = ctx;

    if (!o->found) {
        o->found = true;
        return o->fill(s, o->out);
    }
    return ERR_OK;
}

int store_query_one(struct store *st, const char *what, const char *sql,
                    const char *key, store_row_fn fill, void *out)
{
    struct store_one o = {out, false, fill};
    int r = store_query(st, what, sql, store_one_row, &o, NULL, "t", key);

    return r == ERR_OK && !o.found ? ERR_NOT_FOUND : r;
}

int store_get_one(struct store *st, const char *what, const char *sql,
                  const char *key, store_row_fn fill, void *out)
{
    int r;

    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_query_one(st, what, sql, key, fill, out);
    return store_tx_end(st, r);
}

int store_get_named(struct store *st, const char *what, const char *by_id,
                    const char *by_name, const char *name_or_id,
                    store_row_fn fill, void *out)
{
    char id[STORE_ID_MAX + 1];

    if (name_or_id == NULL || name_or_id[0] == '\0') {
        return ERR_NOT_FOUND;
    }
    if (store_id_norm(name_or_id, id)) {
        return store_get_one(st, what, by_id, id, fill, out);
    }
    return store_get_one(st, what, by_name, name_or_id, fill, out);
}

int store_update_one(struct store *st, const char *what, const char *sql,
                     const char *types, ...)
{
    va_list ap;
    int changes = 0, r;

    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    va_start(ap, types);
    r = store_queryv(st, what, sql, NULL, NULL, NULL, &changes, types, ap);
    va_end(ap);
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
    return store_tx_end(st, r);
}

int store_delete_id(struct store *st, const char *what, const char *sql,
                    const char *id)
{
    char nid[STORE_ID_MAX + 1];
    int r, changes = 0;

    if (id == NULL || !store_id_norm(id, nid)) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, what, sql, &changes, "t", nid);
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
    return store_tx_end(st, r);
}

int store_delete_named(struct store *st, const char *what, const char *by_id,
                       const char *by_name, const char *name_or_id)
{
    char id[STORE_ID_MAX + 1];
    int changes = 0, r;

    if (name_or_id == NULL || name_or_id[0] == '\0') {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if (store_id_norm(name_or_id, id)) {
        r = store_run(st, what, by_id, &changes, "t", id);
    } else {
        r = store_run(st, what, by_name, &changes, "t", name_or_id);
    }
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
    return store_tx_end(st, r);
}

/* --- columns ------------------------------------------------------------- */

void store_col_text(struct db_stmt *s, int i, char *dst, size_t dstlen)
{
    size_t len = 0;
    const char *t = db_col_text(s, i, &len);

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

int store_col_blob_heap(struct db_stmt *s, int i, uint8_t **out, size_t *len)
{
    size_t n = 0;
    const void *p = db_col_blob(s, i, &n);

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

int store_col_str_heap(struct db_stmt *s, int i, char **out)
{
    size_t n = 0;
    const char *t = db_col_text(s, i, &n);

    if ((*out = malloc(n + 1)) == NULL) {
        return ERR_NOMEM;
    }
    if (t != NULL) {
        memcpy(*out, t, n);
    }
    (*out)[t != NULL ? n : 0] = '\0';
    return ERR_OK;
}

int store_int_row(struct db_stmt *row, void *ctx)
{
    *(int64_t *)ctx = db_col_int64(row, 0);
    return ERR_OK;
}

/* --- lists --------------------------------------------------------------- */

int store_list_row(struct db_stmt *row, void *ctx)
{
    struct store_list *l = ctx;
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
    if ((r = l->fill(row, item)) != ERR_OK) {
        return r;
    }
    l->n++;
    return ERR_OK;
}

int store_list_end(struct store *st, int r, struct store_list *l,
                   void (*release)(void *items, size_t n))
{
    if ((r = store_tx_end(st, r)) != ERR_OK) {
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

int store_list_query(struct store *st, const char *what, const char *sql,
                     size_t size, store_row_fn fill,
                     void (*release)(void *items, size_t n), void **list,
                     size_t *n, const char *types, ...)
{
    struct store_list l = {NULL, 0, 0, size, fill};
    va_list ap;
    int r;

    *list = NULL;
    *n = 0;
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    va_start(ap, types);
    r = store_queryv(st, what, sql, store_list_row, &l, NULL, NULL, types, ap);
    va_end(ap);
    r = store_list_end(st, r, &l, release);
    *list = l.items;
    *n = l.n;
    return r;
}

int store_child_list(struct store *st,
                     int (*exists)(struct store *st, const char *id),
                     const char *id, const char *what, const char *sql,
                     struct store_list *l,
                     void (*release)(void *items, size_t n))
{
    char buf[STORE_ID_MAX + 1];
    const char *nid = store_idn(id, buf);
    int r;

    if (nid == NULL) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    if ((r = exists(st, nid)) == ERR_OK) {
        r = store_query(st, what, sql, store_list_row, l, NULL, "t", nid);
    }
    return store_list_end(st, r, l, release);
}

void store_list_free(void *list)
{
    free(list);
}

/* --- values -------------------------------------------------------------- */

const char *store_idn(const char *in, char *buf)
{
    return store_id_norm(in, buf) ? buf : NULL;
}

int64_t store_clamp_u64(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

bool store_field_ok(const char *f, size_t size)
{
    return memchr(f, '\0', size) != NULL;
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

/* --- lifecycle and migrations -------------------------------------------- */

static int store_version_read(struct store *st, int64_t *v)
{
    *v = 0;
    return store_query(st, "schema version",
                       "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                       store_int_row, v, NULL, "");
}

/* Applies step m if it is the next one, in its own write transaction.
 * The version is read inside it, so two processes opening a new database
 * at once apply each step exactly once. */
static int store_migrate_step(struct store *st, const struct store_migration *m,
                              int latest)
{
    int64_t cur = 0;
    int r;

    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = db_exec(st->db, "schema_version",
                     "CREATE TABLE IF NOT EXISTS schema_version ("
                     " version INTEGER PRIMARY KEY,"
                     " applied_at BIGINT NOT NULL)")) != ERR_OK ||
        (r = store_version_read(st, &cur)) != ERR_OK) {
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
    if ((r = db_exec(st->db, "migration", m->sql)) != ERR_OK) {
        goto out;
    }
    if (m->hook == STORE_HOOK_ROOT_SITE &&
        (r = store_site_create_root(st)) != ERR_OK) {
        goto out;
    }
    r = store_run(st, "schema version",
                  "INSERT INTO schema_version (version, applied_at)"
                  " VALUES ($1, $2)",
                  NULL, "ii", (int64_t)m->version, (int64_t)util_now());
out:
    return store_tx_end(st, r);
}

static int store_migrate(struct store *st)
{
    int latest = store_migrations[store_migrations_count - 1].version;
    int64_t cur = 0;
    bool exists = false;
    int r = ERR_OK;

    /* A schema already at this program's version (every connection a
     * server opens after its first: the store workers') is read once,
     * without a write transaction: each step's takes the store-wide
     * write lock, so a worker's new connection waited behind any write
     * that waited (a table lock held elsewhere: an API read queued on a
     * new connection stalled until a command's job row went in), and
     * paid a transaction per step. */
    if (db_has_table(st->db, "schema_version", &exists) == ERR_OK && exists &&
        store_version_read(st, &cur) == ERR_OK && cur == latest) {
        return ERR_OK;
    }
    for (size_t i = 0; i < store_migrations_count && r == ERR_OK; i++) {
        r = store_migrate_step(st, &store_migrations[i], latest);
    }
    return r;
}

/* The first step of every way in: a store on the database at `path`,
 * nothing read or written yet. */
static int store_connect(const char *path, struct store **out)
{
    struct store *st;
    int r;

    *out = NULL;
    if (path == NULL || path[0] == '\0') {
        return ERR_INVALID;
    }
    if ((st = calloc(1, sizeof(*st))) == NULL) {
        return ERR_NOMEM;
    }
    if ((r = db_open(path, &st->db)) != ERR_OK) {
        store_close(st);
        return r;
    }
    *out = st;
    return ERR_OK;
}

void store_set_session_defaults(const char *node_name, int dead_after_seconds)
{
    db_set_session_defaults(node_name, dead_after_seconds / 3);
}

int store_open(const char *path, struct store **out)
{
    struct store *st = NULL;
    int r;

    if (out == NULL) {
        return ERR_INVALID;
    }
    *out = NULL;
    if ((r = store_connect(path, &st)) != ERR_OK) {
        return r;
    }
    if ((r = store_migrate(st)) != ERR_OK) {
        store_close(st);
        return r;
    }
    *out = st;
    return ERR_OK;
}

int store_create_begin(const char *path, struct store **out)
{
    struct store *st = NULL;
    bool exists = false;
    int r;

    *out = NULL;
    if ((r = store_connect(path, &st)) != ERR_OK) {
        return r;
    }
    if ((r = db_begin(st->db, true)) != ERR_OK) {
        goto fail;
    }
    if ((r = db_has_table(st->db, "schema_version", &exists)) != ERR_OK ||
        (exists && (r = ERR_EXISTS) != ERR_OK)) {
        db_rollback(st->db);
        goto fail;
    }
    st->creating = true;
    if ((r = store_migrate(st)) != ERR_OK) {
        db_rollback(st->db);
        goto fail;
    }
    *out = st;
    return ERR_OK;
fail:
    store_close(st);
    return r;
}

int store_create_end(struct store *st, int r)
{
    if (st == NULL) {
        return r != ERR_OK ? r : ERR_INVALID;
    }
    if (r == ERR_OK) {
        r = st->create_err;
    }
    st->creating = false;
    r = store_tx_end(st, r);
    store_close(st);
    return r;
}

int store_open_existing(const char *path, struct store **out)
{
    struct store *st = NULL;
    bool exists = false;
    int r;

    *out = NULL;
    if ((r = store_connect(path, &st)) != ERR_OK) {
        return r;
    }
    if ((r = db_has_table(st->db, "schema_version", &exists)) != ERR_OK) {
        goto out;
    }
    if (!exists) {
        r = ERR_NOT_FOUND;
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
    (void)store_session_off_loop_stop(st, 2000);
    audit_later_drop(st);
    db_close(st->db);
    free(st->audit_key);
    free(st->audit_spool);
    free(st);
}

void store_reconnect_off_loop(struct store *st, struct loop *loop,
                              int deadline_ms)
{
    if (st != NULL) {
        db_set_loop(st->db, loop, deadline_ms);
    }
}

bool store_unreachable(struct store *st)
{
    return st != NULL && db_down(st->db);
}

int store_schema_version(struct store *st, int *version)
{
    int64_t v = 0;
    int r;

    if (version == NULL) {
        return ERR_INVALID;
    }
    *version = 0;
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_version_read(st, &v);
    *version = (int)v;
    return store_tx_end(st, r);
}
