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
 * must then find an empty store there (":memory:" for SQLite; a fresh
 * database per test for a server). Tests that need the SQLite file itself
 * (its mode, raw edits, several processes creating it) check fx->file;
 * those that open a second handle on the same store check fx->shared.
 */
#ifndef PORTCULLIS_TEST_STORE_FX_H
#define PORTCULLIS_TEST_STORE_FX_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "store/store.h"

struct fx {
    char dir[64];
    char path[512];
    bool file;   /* the default: a SQLite file at path */
    bool shared; /* store_open(path) again reaches the same store */
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

static void fx_rm(const struct fx *f)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[sizeof(f->path) + 16];

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

static int teardown(void **state)
{
    struct fx *f = *state;

    store_close(f->st);
    fx_rm(f);
    free(f);
    return 0;
}

#endif
