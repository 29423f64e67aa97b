/*
 * What the store's own files share and nothing else includes: the input
 * checks every driver applies before it writes (store_names.c), so SQLite
 * and PostgreSQL refuse the same names and lengths, and the list of schema
 * migrations (store_schema.c) that store_open() applies.
 *
 * Not part of the store interface; only src/store/ includes this.
 */
#ifndef PORTCULLIS_STORE_INTERNAL_H
#define PORTCULLIS_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ERR_OK if s (NULL counts as "") has at most max bytes, else
 * ERR_TOO_LONG. For free text such as report details. */
int store_check_len(const char *s, size_t max);
/* As store_check_len, and refuses control characters (ERR_INVALID), and
 * NULL or "" when required. */
int store_check_text(const char *s, size_t max, bool required);
/* An object name (group, profile, asset): non-empty, at most
 * STORE_NAME_MAX bytes, no control characters, and not shaped like a UUID,
 * so that "name or ID" lookups are never ambiguous. */
int store_check_name(const char *s);
/* A user name: as store_check_name, and none of the login grammar's
 * delimiters ('/', '?', '#'), so every user can log in. */
int store_check_user_name(const char *s);
/* true if s is a UUID; then out (STORE_ID_MAX + 1) gets it lower-cased,
 * the form in which the store keeps every ID. */
bool store_id_norm(const char *s, char *out);

/* One schema step. hook names work that needs values (bound, never
 * formatted into SQL) and so is done in C by the driver after sql ran, in
 * the same transaction. */
enum store_hook {
    STORE_HOOK_NONE = 0,
    STORE_HOOK_ROOT_SITE, /* insert the /root site with a fresh UUID */
};

struct store_migration {
    int version;     /* 1, 2, ...: the schema_version after this step */
    const char *sql; /* statements separated by ';' */
    enum store_hook hook;
};

extern const struct store_migration store_migrations[];
extern const size_t store_migrations_count;

/* For the driver's companion files (store_access.c, store_audit.c): the
 * SQLite connection
 * of a handle and the transaction helpers every public function uses, so
 * a companion's functions are one transaction each like the driver's own.
 * store_sqlite_db() returns NULL for a handle used in a forked child. */
struct sqlite3;
struct store;
struct sqlite3 *store_sqlite_db(struct store *st);
int store_sqlite_begin(struct store *st, bool write);
/* Commits when r is ERR_OK, rolls back otherwise; returns the outcome. */
int store_sqlite_end(struct store *st, int r);
/* Maps an SQLite result code to ERR_* (logged as db_fail() does). */
int store_sqlite_fail(struct store *st, int rc, const char *what);

/* Called for each result row; anything but ERR_OK stops the query. */
struct sqlite3_stmt;
typedef int (*store_row_fn)(struct sqlite3_stmt *stmt, void *ctx);

/*
 * Prepares sql, binds parameters 1, 2, ... from a type string and steps
 * through every row, calling fn(stmt, ctx) for each (fn may be NULL);
 * *changes (may be NULL) gets the rows a write changed. Types:
 *   't' const char *            text; NULL binds SQL NULL
 *   'i' int64_t                 integer (pass an int64_t, not an int)
 *   'z' int64_t                 integer; 0 binds SQL NULL
 *   'b' const uint8_t *, size_t blob; NULL or length 0 binds SQL NULL
 * ERR_STORE for a handle used in a forked child.
 */
int store_sqlite_query(struct store *st, const char *what, const char *sql,
                       store_row_fn fn, void *ctx, int *changes,
                       const char *types, ...);
/* A SELECT with one text parameter (key) whose first row fill() writes
 * into out, in the caller's transaction: ERR_NOT_FOUND without a row. */
int store_sqlite_query_one(struct store *st, const char *what, const char *sql,
                           const char *key, store_row_fn fill, void *out);
/* Steps a prepared and bound statement through every row, calling
 * fn(stmt, ctx) for each (fn may be NULL); *rows (may be NULL) gets the
 * number of rows. Does not finalize stmt. */
int store_sqlite_step(struct store *st, struct sqlite3_stmt *stmt,
                      const char *what, store_row_fn fn, void *ctx,
                      size_t *rows);

/* Copies a text column into a fixed field. Writes refuse over-long values,
 * so truncation here only guards against a file edited by hand. */
void store_sqlite_col_text(struct sqlite3_stmt *s, int i, char *dst,
                           size_t dstlen);
/* A row function: column 0 into the int64_t at ctx. */
int store_sqlite_int_row(struct sqlite3_stmt *stmt, void *ctx);

/* Rows collected into a heap array of fixed-size structs: pass
 * store_sqlite_list_row as the row function and the list as its ctx. The
 * caller frees items. */
struct store_sqlite_list {
    void *items;
    size_t n, cap, size;
    store_row_fn fill; /* fills one zeroed item; frees what it allocated on
                          failure */
};
int store_sqlite_list_row(struct sqlite3_stmt *stmt, void *ctx);
/* Ends the transaction a list was read in (store_sqlite_end()); when that
 * fails, frees the items with release (NULL: free()) and empties l, so
 * the caller hands over l->items and l->n either way. */
int store_sqlite_list_end(struct store *st, int r, struct store_sqlite_list *l,
                          void (*release)(void *items, size_t n));

/* The number of characters (not bytes) in a UTF-8 string, as SQLite's
 * substr() counts them. */
int64_t store_utf8_chars(const char *s);

#endif
