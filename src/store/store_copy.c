/*
 * store_copy(): a SQLite store copied into a PostgreSQL one, table by
 * table, checked row for row (copy.h, `portcullis store migrate`).
 *
 * Which tables and columns: read from the databases' own catalogues, not
 * from a list kept here, so a table a later migration adds is copied too.
 * The source's tables come from sqlite_master and their columns (with the
 * primary key) from pragma_table_info(); the target's column types from
 * information_schema.columns, and every source column must exist in the
 * target (store_open() has brought both to this build's schema). Only the
 * order is ours: copy_first lists the tables foreign keys point at before
 * the tables that point at them; any other table follows, by name.
 *
 * Values move typed by the target's column: integer types as int64, bytea
 * as blob, everything else as text; NULL as NULL. Sites are copied
 * parents first (shorter paths first), since a site names its parent.
 *
 * The check: for every table, the rows in primary-key order (text in the
 * C collation the target must have, docs/store.md) are hashed into one
 * SHA-256, each column as a type tag and its value (int64 big-endian;
 * text and blobs with a 32-bit length), on the source in its read
 * snapshot and on the target inside the write transaction, after the
 * inserts. Only when every count and digest match is it committed.
 *
 * SQL text: table and column names are spliced into statements (the
 * catalogue gives them); each is checked to be [a-z_][a-z0-9_]* and
 * written as a quoted identifier. Values are always bound.
 */
#include "store/copy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_internal.h"

#define COPY_SQL_MAX 8192
#define COPY_COLS_MAX 64
#define COPY_TABLES_MAX 128

/* Tables others refer to, before those that refer to them (schema order). */
static const char *const copy_first[] = {
    "users",         "user_keys",  "groups",
    "group_members", "sites",      "assets",
    "grants",        "profiles",   "profile_assignments",
    "sessions",      "site_roles", "api_tokens",
    "revoked_jwts",  "audit",      "audit_head",
    "credentials",   "agents",     "tunnels",
    "jobs",          NULL,
};

enum copy_type { COPY_TEXT, COPY_INT, COPY_BLOB };

struct copy_col {
    char name[STORE_COPY_NAME_MAX + 1];
    enum copy_type type;
    int pk; /* position in the primary key, 0: not in it */
};

struct copy_tab {
    char name[STORE_COPY_NAME_MAX + 1];
    struct copy_col col[COPY_COLS_MAX];
    int ncol;
};

static bool copy_ident(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > STORE_COPY_NAME_MAX ||
        !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_')) {
            return false;
        }
    }
    return true;
}

/* Appends printf text to sql; false when it would not fit. */
static bool __attribute__((format(printf, 3, 4)))
copy_cat(char *sql, size_t len, const char *fmt, ...)
{
    size_t o = strlen(sql);
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(sql + o, len - o, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < len - o;
}

/* Runs sql (one optional text parameter); calls fn for each row. */
static int copy_rows(struct db *db, const char *what, const char *sql,
                     const char *arg, int (*fn)(struct db_stmt *, void *),
                     void *ctx)
{
    struct db_stmt *s = NULL;
    bool row = false;
    int r;

    if ((r = db_prepare(db, what, sql, &s)) != ERR_OK) {
        return r;
    }
    if (arg != NULL && (r = db_bind_text(s, 1, arg)) != ERR_OK) {
        goto out;
    }
    while ((r = db_step(s, &row)) == ERR_OK && row) {
        if ((r = fn(s, ctx)) != ERR_OK) {
            break;
        }
    }
out:
    db_finalize(s);
    return r;
}

struct copy_names {
    char (*name)[STORE_COPY_NAME_MAX + 1];
    int n, max;
};

static int copy_name_row(struct db_stmt *s, void *ctx)
{
    struct copy_names *l = ctx;
    const char *v = db_col_text(s, 0, NULL);

    if (!copy_ident(v) || l->n >= l->max) {
        return ERR_INVALID;
    }
    snprintf(l->name[l->n++], STORE_COPY_NAME_MAX + 1, "%s", v);
    return ERR_OK;
}

static int copy_col_row(struct db_stmt *s, void *ctx)
{
    struct copy_tab *t = ctx;
    const char *v = db_col_text(s, 0, NULL);

    if (!copy_ident(v) || t->ncol >= COPY_COLS_MAX) {
        return ERR_INVALID;
    }
    snprintf(t->col[t->ncol].name, sizeof(t->col[0].name), "%s", v);
    t->col[t->ncol].pk = db_col_int(s, 1);
    t->col[t->ncol].type = COPY_TEXT;
    t->ncol++;
    return ERR_OK;
}

struct copy_pgcols {
    struct copy_tab *t;
    int found;
};

static int copy_pgtype_row(struct db_stmt *s, void *ctx)
{
    struct copy_pgcols *p = ctx;
    const char *name = db_col_text(s, 0, NULL);
    const char *type = db_col_text(s, 1, NULL);

    for (int i = 0; name != NULL && type != NULL && i < p->t->ncol; i++) {
        if (strcmp(p->t->col[i].name, name) != 0) {
            continue;
        }
        if (strcmp(type, "bytea") == 0) {
            p->t->col[i].type = COPY_BLOB;
        } else if (strcmp(type, "integer") == 0 ||
                   strcmp(type, "bigint") == 0 ||
                   strcmp(type, "smallint") == 0) {
            p->t->col[i].type = COPY_INT;
        }
        p->found++;
    }
    return ERR_OK;
}

/* The table's columns (source) typed by the target's; ERR_NOT_FOUND when
 * the target lacks the table or one of its columns. */
static int copy_describe(struct db *src, struct db *dst, struct copy_tab *t)
{
    struct copy_pgcols p = {t, 0};
    int r;

    t->ncol = 0;
    if ((r = copy_rows(
             src, "store migrate: columns",
             "SELECT name, pk FROM pragma_table_info($1) ORDER BY cid", t->name,
             copy_col_row, t)) != ERR_OK) {
        return r;
    }
    if ((r = copy_rows(dst, "store migrate: target columns",
                       "SELECT column_name, data_type FROM "
                       "information_schema.columns WHERE table_schema = "
                       "current_schema() AND table_name = $1",
                       t->name, copy_pgtype_row, &p)) != ERR_OK) {
        return r;
    }
    return t->ncol > 0 && p.found == t->ncol ? ERR_OK : ERR_NOT_FOUND;
}

/* "a", "b", "c" */
static bool copy_col_list(const struct copy_tab *t, char *sql, size_t len)
{
    for (int i = 0; i < t->ncol; i++) {
        if (!copy_cat(sql, len, "%s\"%s\"", i > 0 ? ", " : "",
                      t->col[i].name)) {
            return false;
        }
    }
    return true;
}

/* ORDER BY the primary key's columns in key order (every column when the
 * table has none, NULLs placed alike on both databases). */
static bool copy_order(const struct copy_tab *t, char *sql, size_t len)
{
    int k, i, n = 0;

    for (k = 1; k <= t->ncol; k++) {
        for (i = 0; i < t->ncol; i++) {
            if (t->col[i].pk == k &&
                !copy_cat(sql, len, "%s\"%s\"", n++ > 0 ? ", " : " ORDER BY ",
                          t->col[i].name)) {
                return false;
            }
        }
    }
    for (i = 0; n == 0 && i < t->ncol; i++) {
        if (!copy_cat(sql, len, "%s\"%s\" IS NULL, \"%s\"",
                      i > 0 ? ", " : " ORDER BY ", t->col[i].name,
                      t->col[i].name)) {
            return false;
        }
    }
    return true;
}

static int copy_select(const struct copy_tab *t, bool parents_first, char *sql,
                       size_t len)
{
    sql[0] = '\0';
    if (!copy_cat(sql, len, "SELECT ") || !copy_col_list(t, sql, len) ||
        !copy_cat(sql, len, " FROM \"%s\"", t->name)) {
        return ERR_TOO_LONG;
    }
    if (parents_first && strcmp(t->name, "sites") == 0) {
        return copy_cat(sql, len, " ORDER BY length(path), path")
                   ? ERR_OK
                   : ERR_TOO_LONG;
    }
    return copy_order(t, sql, len) ? ERR_OK : ERR_TOO_LONG;
}

/* --- the digest ---------------------------------------------------------- */

static void copy_hash_len(crypto_hash_sha256_state *h, uint8_t tag,
                          const void *p, size_t n)
{
    uint8_t b[5] = {tag, (uint8_t)(n >> 24), (uint8_t)(n >> 16),
                    (uint8_t)(n >> 8), (uint8_t)n};

    crypto_hash_sha256_update(h, b, sizeof(b));
    if (n > 0) {
        crypto_hash_sha256_update(h, p, n);
    }
}

static void copy_hash_col(crypto_hash_sha256_state *h, const struct copy_col *c,
                          struct db_stmt *s, int i)
{
    size_t n = 0;
    const void *p;

    if (db_col_null(s, i)) {
        uint8_t z = 0;

        crypto_hash_sha256_update(h, &z, 1);
        return;
    }
    switch (c->type) {
    case COPY_INT: {
        uint64_t v = (uint64_t)db_col_int64(s, i);
        uint8_t b[9] = {1};

        for (int k = 0; k < 8; k++) {
            b[1 + k] = (uint8_t)(v >> (56 - 8 * k));
        }
        crypto_hash_sha256_update(h, b, sizeof(b));
        break;
    }
    case COPY_BLOB:
        p = db_col_blob(s, i, &n);
        copy_hash_len(h, 3, p, n);
        break;
    case COPY_TEXT:
        p = db_col_text(s, i, &n);
        copy_hash_len(h, 2, p, p != NULL ? n : 0);
        break;
    }
}

struct copy_digest {
    const struct copy_tab *t;
    crypto_hash_sha256_state h;
    int64_t rows;
};

static int copy_digest_row(struct db_stmt *s, void *ctx)
{
    struct copy_digest *d = ctx;

    for (int i = 0; i < d->t->ncol; i++) {
        copy_hash_col(&d->h, &d->t->col[i], s, i);
    }
    d->rows++;
    return ERR_OK;
}

static int copy_digest(struct db *db, const struct copy_tab *t, int64_t *rows,
                       uint8_t out[32])
{
    struct copy_digest d = {.t = t};
    char sql[COPY_SQL_MAX];
    int r;

    crypto_hash_sha256_init(&d.h);
    if ((r = copy_select(t, false, sql, sizeof(sql))) != ERR_OK ||
        (r = copy_rows(db, "store migrate: digest", sql, NULL, copy_digest_row,
                       &d)) != ERR_OK) {
        return r;
    }
    crypto_hash_sha256_final(&d.h, out);
    *rows = d.rows;
    return ERR_OK;
}

/* --- copying ------------------------------------------------------------- */

struct copy_ins {
    const struct copy_tab *t;
    struct db *dst;
    const char *sql;
    int64_t rows;
};

static int copy_insert_row(struct db_stmt *s, void *ctx)
{
    struct copy_ins *c = ctx;
    struct db_stmt *ins = NULL;
    bool row = false;
    const void *p;
    size_t n = 0;
    int r = db_prepare(c->dst, "store migrate: insert", c->sql, &ins);

    for (int i = 0; r == ERR_OK && i < c->t->ncol; i++) {
        if (db_col_null(s, i)) {
            r = db_bind_null(ins, i + 1);
            continue;
        }
        switch (c->t->col[i].type) {
        case COPY_INT:
            r = db_bind_int64(ins, i + 1, db_col_int64(s, i));
            break;
        case COPY_BLOB:
            p = db_col_blob(s, i, &n);
            r = db_bind_blob(ins, i + 1, p, n);
            break;
        case COPY_TEXT:
            r = db_bind_text(ins, i + 1, db_col_text(s, i, NULL));
            break;
        }
    }
    if (r == ERR_OK) {
        r = db_step(ins, &row);
    }
    db_finalize(ins);
    c->rows += r == ERR_OK;
    return r;
}

static int copy_table(struct db *src, struct db *dst, const struct copy_tab *t)
{
    char sel[COPY_SQL_MAX], ins[COPY_SQL_MAX] = "";
    struct copy_ins c = {t, dst, ins, 0};
    int r;

    if ((r = copy_select(t, true, sel, sizeof(sel))) != ERR_OK) {
        return r;
    }
    if (!copy_cat(ins, sizeof(ins), "INSERT INTO \"%s\" (", t->name) ||
        !copy_col_list(t, ins, sizeof(ins)) ||
        !copy_cat(ins, sizeof(ins), ") VALUES (")) {
        return ERR_TOO_LONG;
    }
    for (int i = 0; i < t->ncol; i++) {
        if (!copy_cat(ins, sizeof(ins), "%s$%d", i > 0 ? ", " : "", i + 1)) {
            return ERR_TOO_LONG;
        }
    }
    if (!copy_cat(ins, sizeof(ins), ")")) {
        return ERR_TOO_LONG;
    }
    return copy_rows(src, "store migrate: read", sel, NULL, copy_insert_row,
                     &c);
}

static int copy_count_row(struct db_stmt *s, void *ctx)
{
    *(int64_t *)ctx = db_col_int64(s, 0);
    return ERR_OK;
}

/* Rows of table in the target, leaving out the rows every new store has
 * (store_schema.c): /root, and the audit chain's empty head. */
static int copy_target_rows(struct db *dst, const char *table, int64_t *n)
{
    char sql[256];

    *n = 0;
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM \"%s\"%s", table,
             strcmp(table, "sites") == 0        ? " WHERE path <> '/root'"
             : strcmp(table, "audit_head") == 0 ? " WHERE seq <> 0"
                                                : "");
    return copy_rows(dst, "store migrate: target rows", sql, NULL,
                     copy_count_row, n);
}

/* Sets each sequence of the target's table (serial or identity columns)
 * past the largest value copied; counts them in *n. */
static int copy_sequences(struct db *dst, const struct copy_tab *t, int *n)
{
    struct copy_names seq = {NULL, 0, COPY_COLS_MAX};
    char sql[512];
    int r;

    if ((seq.name = calloc(COPY_COLS_MAX, sizeof(*seq.name))) == NULL) {
        return ERR_NOMEM;
    }
    r = copy_rows(dst, "store migrate: sequences",
                  "SELECT column_name FROM information_schema.columns WHERE "
                  "table_schema = current_schema() AND table_name = $1 AND "
                  "(is_identity = 'YES' OR column_default LIKE 'nextval(%')",
                  t->name, copy_name_row, &seq);
    for (int i = 0; r == ERR_OK && i < seq.n; i++) {
        int64_t ignored;

        snprintf(sql, sizeof(sql),
                 "SELECT setval(pg_get_serial_sequence('\"%s\"', '%s'), "
                 "COALESCE((SELECT MAX(\"%s\") FROM \"%s\"), 0) + 1, false)",
                 t->name, seq.name[i], seq.name[i], t->name);
        r = copy_rows(dst, "store migrate: set a sequence", sql, NULL,
                      copy_count_row, &ignored);
        *n += r == ERR_OK;
    }
    free(seq.name);
    return r;
}

static bool copy_is_first(const char *name, size_t *pos)
{
    for (size_t i = 0; copy_first[i] != NULL; i++) {
        if (strcmp(copy_first[i], name) == 0) {
            *pos = i;
            return true;
        }
    }
    return false;
}

/* The source's tables in copy order (copy_first's, then the rest by name),
 * without schema_version. */
static int copy_tables(struct db *src, struct copy_names *l)
{
    struct copy_names all = {NULL, 0, COPY_TABLES_MAX};
    size_t pos, k;
    int r;

    if ((all.name = calloc(COPY_TABLES_MAX, sizeof(*all.name))) == NULL) {
        return ERR_NOMEM;
    }
    r = copy_rows(src, "store migrate: tables",
                  "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                  "name NOT LIKE 'sqlite%' AND name <> 'schema_version' "
                  "ORDER BY name",
                  NULL, copy_name_row, &all);
    l->n = 0;
    for (k = 0; r == ERR_OK && copy_first[k] != NULL; k++) {
        for (int i = 0; i < all.n; i++) {
            if (strcmp(all.name[i], copy_first[k]) == 0) {
                memcpy(l->name[l->n++], all.name[i], sizeof(all.name[i]));
            }
        }
    }
    for (int i = 0; r == ERR_OK && i < all.n; i++) {
        if (!copy_is_first(all.name[i], &pos)) {
            memcpy(l->name[l->n++], all.name[i], sizeof(all.name[i]));
        }
    }
    free(all.name);
    return r;
}

/* ERR_OK when the SQLite file at from already holds a Portcullis store:
 * store_open() would otherwise write our schema into any SQLite file a
 * typo named. */
static int copy_source_is_store(const char *from)
{
    struct db *db = NULL;
    int64_t n = 0;
    int r = db_open(from, &db);

    if (r == ERR_OK) {
        r = copy_rows(db, "store migrate: source",
                      "SELECT COUNT(*) FROM sqlite_master WHERE type = "
                      "'table' AND name = 'schema_version'",
                      NULL, copy_count_row, &n);
    }
    db_close(db);
    return r != ERR_OK ? r : n == 1 ? ERR_OK : ERR_NOT_FOUND;
}

int store_copy(const char *from, const char *to, bool replace,
               struct store_copy_table **tables, size_t *ntables,
               int *sequences, char *why, size_t whylen)
{
    struct store *src = NULL, *dst = NULL;
    struct copy_names names = {NULL, 0, COPY_TABLES_MAX};
    struct copy_tab *tab = NULL;
    struct store_copy_table *out = NULL;
    char busy[512] = "";
    int r, vs = 0, vd = 0, i;
    bool src_tx = false, dst_tx = false;

    *tables = NULL;
    *ntables = 0;
    *sequences = 0;
    snprintf(why, whylen, "internal error");
    if ((r = copy_source_is_store(from)) != ERR_OK) {
        snprintf(why, whylen, "the source is not a Portcullis store: %s",
                 err_str(r));
        goto out;
    }
    if ((r = store_open(from, &src)) != ERR_OK) {
        snprintf(why, whylen, "cannot open the source store: %s", err_str(r));
        goto out;
    }
    if ((r = store_open(to, &dst)) != ERR_OK) {
        snprintf(why, whylen, "cannot open the target store: %s", err_str(r));
        goto out;
    }
    if ((r = store_schema_version(src, &vs)) != ERR_OK ||
        (r = store_schema_version(dst, &vd)) != ERR_OK || vs != vd) {
        snprintf(why, whylen, "schema versions differ (source %d, target %d)",
                 vs, vd);
        r = r != ERR_OK ? r : ERR_STORE;
        goto out;
    }
    if ((names.name = calloc(COPY_TABLES_MAX, sizeof(*names.name))) == NULL ||
        (tab = calloc(1, sizeof(*tab))) == NULL ||
        (out = calloc(COPY_TABLES_MAX, sizeof(*out))) == NULL) {
        r = ERR_NOMEM;
        goto out;
    }
    /* One snapshot of the source for the copy and its check. */
    if ((r = db_begin(store_db(src), false)) != ERR_OK) {
        snprintf(why, whylen, "cannot read the source: %s", err_str(r));
        goto out;
    }
    src_tx = true;
    if ((r = db_begin(store_db(dst), true)) != ERR_OK) {
        snprintf(why, whylen, "cannot write the target: %s", err_str(r));
        goto out;
    }
    dst_tx = true;
    if ((r = copy_tables(store_db(src), &names)) != ERR_OK) {
        snprintf(why, whylen, "cannot list the source's tables: %s",
                 err_str(r));
        goto out;
    }
    /* Empty apart from its schema and /root, or replace was asked for. */
    for (i = 0; i < names.n; i++) {
        int64_t n = 0;

        if ((r = copy_target_rows(store_db(dst), names.name[i], &n)) !=
            ERR_OK) {
            snprintf(why, whylen,
                     "the target has no table %s (or cannot be "
                     "read): %s",
                     names.name[i], err_str(r));
            goto out;
        }
        if (n > 0) {
            size_t o = strlen(busy);

            snprintf(busy + o, sizeof(busy) - o, "%s%s: %lld",
                     o > 0 ? ", " : "", names.name[i], (long long)n);
        }
    }
    if (busy[0] != '\0' && !replace) {
        snprintf(why, whylen,
                 "the target already holds data (%s); --replace deletes it "
                 "first",
                 busy);
        r = ERR_EXISTS;
        goto out;
    }
    for (i = names.n - 1; i >= 0; i--) {
        char sql[128];

        snprintf(sql, sizeof(sql), "DELETE FROM \"%s\"", names.name[i]);
        if ((r = db_exec(store_db(dst), "store migrate: empty the target",
                         sql)) != ERR_OK) {
            snprintf(why, whylen, "cannot empty %s in the target: %s",
                     names.name[i], err_str(r));
            goto out;
        }
    }
    for (i = 0; i < names.n; i++) {
        struct store_copy_table *o = &out[i];
        uint8_t dd[32];
        int64_t dn = 0;

        memset(tab, 0, sizeof(*tab));
        memcpy(tab->name, names.name[i], sizeof(tab->name));
        memcpy(o->name, names.name[i], sizeof(o->name));
        if ((r = copy_describe(store_db(src), store_db(dst), tab)) != ERR_OK) {
            snprintf(why, whylen,
                     "table %s: its columns differ between the stores: %s",
                     tab->name, err_str(r));
            goto out;
        }
        if ((r = copy_table(store_db(src), store_db(dst), tab)) != ERR_OK) {
            snprintf(why, whylen, "table %s: copying failed: %s", tab->name,
                     err_str(r));
            goto out;
        }
        if ((r = copy_sequences(store_db(dst), tab, sequences)) != ERR_OK) {
            snprintf(why, whylen, "table %s: cannot set its sequences: %s",
                     tab->name, err_str(r));
            goto out;
        }
        if ((r = copy_digest(store_db(src), tab, &o->rows, o->digest)) !=
                ERR_OK ||
            (r = copy_digest(store_db(dst), tab, &dn, dd)) != ERR_OK) {
            snprintf(why, whylen, "table %s: cannot check the copy: %s",
                     tab->name, err_str(r));
            goto out;
        }
        if (dn != o->rows || sodium_memcmp(dd, o->digest, sizeof(dd)) != 0) {
            snprintf(why, whylen,
                     "table %s: the copy differs from the source (%lld rows "
                     "read, %lld in the target); nothing was committed",
                     tab->name, (long long)o->rows, (long long)dn);
            r = ERR_STORE;
            goto out;
        }
    }
    dst_tx = false;
    if ((r = db_commit(store_db(dst))) != ERR_OK) {
        snprintf(why, whylen, "commit on the target failed: %s", err_str(r));
        goto out;
    }
    *tables = out;
    *ntables = (size_t)names.n;
    out = NULL;
    why[0] = '\0';
out:
    if (dst_tx) {
        db_rollback(store_db(dst));
    }
    if (src_tx) {
        db_rollback(store_db(src));
    }
    free(out);
    free(tab);
    free(names.name);
    store_close(dst);
    store_close(src);
    return r;
}
