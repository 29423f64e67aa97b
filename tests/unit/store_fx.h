/*
 * The fixture the store's unit tests share (test_store.c, test_audit.c):
 * a fresh temporary directory per test with a store opened on
 * portcullis.db inside it, removed again with its WAL and journal files
 * by teardown(). Each test file names its directory through fx_setup(),
 * so a leftover directory says which suite left it.
 */
#ifndef PORTCULLIS_TEST_STORE_FX_H
#define PORTCULLIS_TEST_STORE_FX_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/err.h"
#include "store/store.h"

struct fx {
    char dir[64];
    char path[128];
    struct store *st;
};

static void fx_rm(const struct fx *f)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[160];

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

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s", tmpl);
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/portcullis.db", f->dir);
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
