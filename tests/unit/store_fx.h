/*
 * The fixture the store's unit tests share (test_store.c, test_audit.c):
 * a fresh temporary directory per test with a store opened on
 * portcullis.db inside it, removed again with its WAL and journal files
 * by teardown(). Each test file names its directory through fx_setup(),
 * so a leftover directory says which suite left it.
 *
 * The store's location comes from the environment so that the store suites
 * (test_store*.c) run unchanged against another backend:
 * PORTCULLIS_TEST_STORE unset (or empty) is the SQLite file above; any
 * other value is handed to store_open() as it is for every test, which
 * must then find an empty store there (":memory:" for SQLite). A
 * "postgresql://" URL gets a fresh schema per test (created here, dropped
 * by teardown(), the URL's search_path pointing at it). Tests that need the
 * SQLite file itself (its mode, raw edits, several processes creating it) check
 * fx->file; those that open a second handle on the same store check fx->shared.
 */
#ifndef PORTCULLIS_TEST_STORE_FX_H
#define PORTCULLIS_TEST_STORE_FX_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "store/db.h"
#include "store/store.h"

struct fx {
    char dir[64];
    char path[768];
    char pg_url[512];   /* PostgreSQL: the server's URL, without the schema */
    char pg_schema[64]; /* PostgreSQL: this test's own schema */
    char pg_extra[64];  /* PostgreSQL: fx_fresh_location()'s schema */
    bool file;          /* the default: a SQLite file at path */
    bool shared;        /* store_open(path) again reaches the same store */
    struct store *st;
};

/* Skips the calling test unless the store is the default SQLite file. */
#define FX_NEED_FILE(f)                                                        \
    do {                                                                       \
        if (!(f)->file) {                                                      \
            skip();                                                            \
        }                                                                      \
    } while (0)
#define FX_NEED_SHARED(f)                                                      \
    do {                                                                       \
        if (!(f)->shared) {                                                    \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* PostgreSQL: runs one statement on the server's URL (not the test's
 * schema). */
static int fx_pg_exec(const char *url, const char *sql)
{
    struct db *db = NULL;
    int r = db_open(url, &db);

    if (r == ERR_OK) {
        r = db_exec(db, "test fixture", sql);
    }
    db_close(db);
    return r;
}

static void fx_rm(const struct fx *f)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[sizeof(f->path) + 16];

    if (f->pg_schema[0] != '\0') {
        char sql[128];

        snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", f->pg_schema);
        (void)fx_pg_exec(f->pg_url, sql);
    }
    if (f->pg_extra[0] != '\0') {
        char sql[128];

        snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", f->pg_extra);
        (void)fx_pg_exec(f->pg_url, sql);
    }
    if (!f->file) {
        rmdir(f->dir);
        return;
    }
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    snprintf(p, sizeof(p), "%s/audit.key", f->dir); /* store_audit.c's */
    unlink(p);
    rmdir(f->dir);
}

/* tmpl: a mkdtemp() template such as "/tmp/test_store.XXXXXX". */
static int fx_setup(void **state, const char *tmpl)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *loc = getenv("PORTCULLIS_TEST_STORE");

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s", tmpl);
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    if (loc != NULL && loc[0] != '\0') {
        if (strlen(loc) >= sizeof(f->path)) {
            fx_rm(f);
            free(f);
            return -1;
        }
        snprintf(f->path, sizeof(f->path), "%s", loc);
        f->shared = strcmp(loc, ":memory:") != 0;
        if (strncmp(loc, "postgresql://", 13) == 0 ||
            strncmp(loc, "postgres://", 11) == 0) {
            /* A fresh schema per test on the one database, made the search
             * path of every connection to the test's URL. */
            static unsigned n;
            char sql[128];

            snprintf(f->pg_url, sizeof(f->pg_url), "%s", loc);
            snprintf(f->pg_schema, sizeof(f->pg_schema), "t_%ld_%u",
                     (long)getpid(), n++);
            snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", f->pg_schema);
            snprintf(f->path, sizeof(f->path),
                     "%s%soptions=-csearch_path%%3D%s", loc,
                     strchr(loc, '?') != NULL ? "&" : "?", f->pg_schema);
            if (fx_pg_exec(f->pg_url, sql) != ERR_OK) {
                f->pg_schema[0] = '\0';
                fx_rm(f);
                free(f);
                return -1;
            }
        }
    } else {
        snprintf(f->path, sizeof(f->path), "%s/portcullis.db", f->dir);
        f->file = f->shared = true;
    }
    if (store_open(f->path, &f->st) != ERR_OK) {
        fx_rm(f);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* A second location where no store exists yet, for tests that race to
 * create one: "name" in the test's directory for a SQLite file, another
 * fresh schema on the server for PostgreSQL (dropped by teardown()).
 * False (the test skips) for ":memory:", which no second handle reaches. */
static inline bool fx_fresh_location(struct fx *f, const char *name, char *out,
                                     size_t outlen)
{
    char sql[128];

    if (f->file) {
        snprintf(out, outlen, "%s/%s", f->dir, name);
        return true;
    }
    if (f->pg_schema[0] == '\0' || f->pg_extra[0] != '\0') {
        return false;
    }
    snprintf(f->pg_extra, sizeof(f->pg_extra), "%.56s_x", f->pg_schema);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", f->pg_extra);
    if (fx_pg_exec(f->pg_url, sql) != ERR_OK) {
        f->pg_extra[0] = '\0';
        return false;
    }
    snprintf(out, outlen, "%s%soptions=-csearch_path%%3D%s", f->pg_url,
             strchr(f->pg_url, '?') != NULL ? "&" : "?", f->pg_extra);
    return true;
}

/* PostgreSQL: terminates, through db (another connection on the test's
 * database), the backends waiting for a lock (a writer held by one), or
 * with all true every other backend of the database. Returns how many,
 * or -1 when the query failed. */
static inline int fx_pg_terminate(struct db *db, bool all)
{
    struct db_stmt *s = NULL;
    bool row = false;
    int n = -1;

    if (db_prepare(db, "test",
                   all ? "SELECT count(pg_terminate_backend(pid)) FROM "
                         "pg_stat_activity WHERE datname = current_database()"
                         " AND pid <> pg_backend_pid()"
                       : "SELECT count(pg_terminate_backend(pid)) FROM "
                         "pg_stat_activity WHERE datname = current_database()"
                         " AND wait_event_type = 'Lock'",
                   &s) == ERR_OK &&
        db_step(s, &row) == ERR_OK && row) {
        n = db_col_int(s, 0);
    }
    db_finalize(s);
    return n;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    store_close(f->st);
    fx_rm(f);
    free(f);
    return 0;
}

#endif
