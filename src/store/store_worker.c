/*
 * Store work off the main loop (store_worker.h): a FIFO of jobs, a fixed
 * set of connections, libuv's worker threads (loop_work) to run them on.
 *
 * Threads: the loop's thread owns every field here. A job on a worker
 * thread touches only itself and its slot's connection, which is its
 * alone while it runs (busy[slot]), and says it is over with its finished
 * flag, the only thing the loop's thread reads meanwhile (at stop).
 */
#include "store/store_worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/db.h"
#include "store/audit.h"
#include "store/store.h"
#include "store/store_internal.h"

struct store_worker {
    struct loop *loop;
    struct store *main; /* the caller's: inline jobs, the node */
    void *owner;        /* NULL once stopped */
    char *location;
    char what[128];
    unsigned nconns;     /* 0: every job inline */
    struct store **conn; /* nconns; NULL until a job opens it */
    bool *busy;
    struct store_work *waiting, **tail; /* FIFO */
    struct store_work *running;         /* on worker threads */
    struct store_worker *next_writer;   /* in store_writers */
    bool writer; /* one of main's own writers (store_worker_set_writer) */
    /* main's audit key path, copied on the loop when a job starts (a
     * worker thread never reads main, which may be gone by then) */
    char *audit_key;
};

/* The workers marked by store_worker_set_writer, for
 * store_worker_writing (the loop's thread only, as everything here). */
static struct store_worker *store_writers;

static void store_worker_free(struct store_worker *w)
{
    struct store_worker **pp;

    for (pp = &store_writers; *pp != NULL; pp = &(*pp)->next_writer) {
        if (*pp == w) {
            *pp = w->next_writer;
            break;
        }
    }
    for (unsigned k = 0; k < w->nconns; k++) {
        store_close(w->conn[k]);
    }
    free(w->conn);
    free(w->busy);
    free(w->location);
    free(w->audit_key);
    free(w);
}

struct store_worker *store_worker_new(struct loop *l, struct store *main,
                                      const char *location, unsigned conns,
                                      const char *what, void *owner)
{
    struct store_worker *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        return NULL;
    }
    w->loop = l;
    w->main = main;
    w->owner = owner;
    w->tail = &w->waiting;
    snprintf(w->what, sizeof(w->what), "%s", what);
    if (l == NULL || location == NULL || !db_is_shared(main->db)) {
        return w; /* inline */
    }
    w->nconns = conns > 0 ? conns : 1;
    if ((w->location = strdup(location)) == NULL ||
        (w->conn = calloc(w->nconns, sizeof(*w->conn))) == NULL ||
        (w->busy = calloc(w->nconns, sizeof(*w->busy))) == NULL) {
        store_worker_free(w);
        return NULL;
    }
    return w;
}

void store_worker_set_writer(struct store_worker *w)
{
    if (!w->writer) {
        w->writer = true;
        w->next_writer = store_writers;
        store_writers = w;
    }
}

bool store_worker_writing(const struct store *main)
{
    for (const struct store_worker *w = store_writers; w != NULL;
         w = w->next_writer) {
        if (w->main == main && store_worker_busy(w)) {
            return true;
        }
    }
    return false;
}

bool store_worker_async(const struct store_worker *w)
{
    return w != NULL && w->nconns > 0;
}

bool store_worker_busy(const struct store_worker *w)
{
    return w->running != NULL || w->waiting != NULL;
}

static void store_worker_here(struct store_worker *w, struct store_work *j)
{
    j->work(j, w->main);
    j->ran = true;
    j->done(w->owner, j);
}

static void store_worker_thread(void *arg)
{
    struct store_work *j = arg;
    struct store **st = &j->w->conn[j->slot];

    if (*st == NULL && store_open(j->w->location, st) != ERR_OK) {
        *st = NULL;
    }
    /* the main store's audit key for the audit events a job writes on
     * this connection (on a database server a handle has no directory to
     * find it beside: without it they were chained unkeyed into a keyed
     * log, which `audit verify` then finds broken); set before the first
     * job, at the main store's start, and not changed after */
    if (*st != NULL && j->audit_key != NULL && (*st)->audit_key == NULL &&
        store_set_audit_key(*st, j->audit_key) != ERR_OK) {
        store_close(*st);
        *st = NULL;
    }
    if (*st != NULL && store_set_node(*st, j->node) == ERR_OK) {
        j->work(j, *st);
        j->ran = true;
    }
    __atomic_store_n(&j->finished, 1, __ATOMIC_RELEASE);
}

static void store_worker_next(struct store_worker *w);

static void store_worker_after(struct loop *l, void *arg)
{
    struct store_work *j = arg, **pp;
    struct store_worker *w = j->w;

    (void)l;
    for (pp = &w->running; *pp != j; pp = &(*pp)->next) {
    }
    *pp = j->next;
    w->busy[j->slot] = false;
    j->done(w->owner, j);
    if (w->owner != NULL) {
        store_worker_next(w);
    } else if (w->running == NULL) { /* stopped: the last job frees it */
        store_worker_free(w);
    }
}

/* Starts waiting jobs while connections are free. */
static void store_worker_next(struct store_worker *w)
{
    struct store_work *j;
    unsigned k;

    while ((j = w->waiting) != NULL) {
        for (k = 0; k < w->nconns && w->busy[k]; k++) {
        }
        if (k == w->nconns) {
            return;
        }
        if ((w->waiting = j->next) == NULL) {
            w->tail = &w->waiting;
        }
        j->next = NULL;
        if (j->wanted != NULL && !j->wanted(w->owner, j)) {
            j->done(NULL, j);
            continue;
        }
        j->slot = (int)k;
        w->busy[k] = true;
        if (w->audit_key == NULL && w->main != NULL &&
            w->main->audit_key != NULL) {
            w->audit_key = strdup(w->main->audit_key); /* NULL: none yet */
        }
        j->audit_key = w->audit_key;
        if (loop_work(w->loop, store_worker_thread, store_worker_after, j) ==
            ERR_OK) {
            j->next = w->running;
            w->running = j;
            continue;
        }
        w->busy[k] = false; /* no worker thread to be had: here */
        store_worker_here(w, j);
    }
}

void store_worker_run(struct store_worker *w, struct store_work *j)
{
    j->w = w;
    j->ran = false;
    j->finished = 0;
    if (w->nconns == 0) {
        store_worker_here(w, j);
        return;
    }
    snprintf(j->node, sizeof(j->node), "%s", store_node_self(w->main));
    j->next = NULL;
    *w->tail = j;
    w->tail = &j->next;
    store_worker_next(w);
}

unsigned store_worker_stop(struct store_worker *w, int ms)
{
    int64_t until;
    struct store_work *j;
    unsigned stuck = 0;
    bool down;

    if (w == NULL) {
        return 0;
    }
    /* A database the caller's store already found gone (a statement past
     * its deadline and its cancel request: the connection dropped) will
     * not answer these either: waiting for each worker in turn only
     * lengthened a stop (2 s per worker, 15 s in all with a frozen
     * PostgreSQL). A slow one that still answers gets the time asked. */
    down = ms > 0 && w->main != NULL && store_unreachable(w->main);
    if (down) {
        ms = 0;
    }
    until = util_mono_ms() + ms;
    while ((j = w->waiting) != NULL) {
        w->waiting = j->next;
        j->done(NULL, j);
    }
    for (j = w->running; j != NULL; j = j->next) {
        int64_t left = until - util_mono_ms();

        stuck += !util_wait_flag(&j->finished, left > 0 ? (int)left : 0);
    }
    if (stuck > 0 && down) {
        log_warn("%s: %u statement%s not returned; not waited for (the "
                 "database does not answer)",
                 w->what, stuck, stuck == 1 ? " has" : "s have");
    } else if (stuck > 0) {
        log_warn("%s: %u statement%s not returned in %d ms; not waited for",
                 w->what, stuck, stuck == 1 ? " has" : "s have", ms);
    }
    /* the jobs' done runs when the loop runs their callbacks (loop_free's
     * at the latest), with no owner; the last frees w */
    w->owner = NULL;
    if (w->running == NULL) {
        store_worker_free(w);
    }
    return stuck;
}
