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

/* For the driver's companion files (store_access.c): the SQLite connection
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

#endif
