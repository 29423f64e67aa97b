/*
 * The session report's writes off the server's loop (store.h,
 * store_session_off_loop; docs/store.md "Report rows off the loop").
 *
 * On PostgreSQL a report row's close at a session's end (and the writes
 * beside it: the recording's path and hash, the node that held the
 * agent, a refused attempt's row) was the last store work a login made on
 * the loop's own connection: four statements a login (the transaction,
 * the advisory write lock, the UPDATE, the commit), and a database that
 * was slow, locked the sessions table or stopped answering held the loop
 * at every session end for as long as the statement deadline (3 s). Now
 * the handle queues each write and one worker of the handle's own
 * (store_worker.h, one connection) writes the queue.
 *
 * Why the order and "once" hold: only the loop appends to the queue, in
 * the order the calls are made (every write of a session's row in the
 * server's process goes through this handle: the monitor's; the open of
 * a row that led to a session is made on a login job's connection and
 * committed before the child hears of it, so before any of its later
 * writes are queued); a batch is the queue's first writes (at most
 * ROWS_BATCH, one transaction), taken off it, and the next starts only
 * when its outcome is back on the loop; a batch that failed goes back to
 * the front, ahead of what was queued meanwhile, and is tried again after
 * ROWS_RETRY_MS doubling to ROWS_RETRY_MAX_MS. A close changes only an
 * open row (store_sessions.c), so a row another node's reaper closed as
 * interrupted meanwhile keeps that, and a batch whose COMMIT got through
 * unseen (the connection lost in it) and is tried again changes nothing
 * the second time.
 *
 * Readers on this handle (the API's report: store_session_get, _list)
 * flush first: they wait for the batch in flight (at most ROWS_FLUSH_MS)
 * and write the rest on the handle's own connection, unless the writer
 * is failing (that would fail too, after holding the loop), so a session
 * the server ended is closed in the report its API answers next.
 *
 * Stop (store_session_off_loop_stop): the batch in flight is waited for;
 * back, what waits is written on the loop (bounded by the statement
 * deadline); not back (a database that does not answer), nothing more is
 * tried, since a write now could overtake it. What is not written leaves
 * its rows open, and the next start (or the node that notices this one
 * died) closes them as interrupted, as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/store_worker.h"

#define ROWS_BATCH 64
#define ROWS_RETRY_MS 250
#define ROWS_RETRY_MAX_MS 4000
#define ROWS_FLUSH_MS 1000

struct rows_later {
    struct rows_later *next;
    enum store_row_kind kind;
    struct store_session s;
};

struct rows_batch {
    struct store_job job;     /* first: the worker's */
    struct rows_later *first; /* taken off the queue, in order */
    size_t n;
    int r;        /* the outcome; ERR_STORE until it ran */
    bool applied; /* its outcome taken on the loop already (a flush) */
};

struct rows_async {
    struct loop *loop;
    struct store_worker *w; /* NULL once stopped */
    struct rows_later *head, **tail;
    size_t n, max;
    /* the batch given to the worker whose done has not run yet; until it
     * has, the worker's connection is its, so no other batch starts */
    struct rows_batch *out;
    uint64_t timer; /* the retry after a failed batch */
    int delay_ms;
    size_t since; /* writes made since a failure (delay_ms > 0) */
    bool full;    /* the bound was hit; said once until there is room */
};

static void rows_later_free_list(struct rows_later *l)
{
    struct rows_later *next;

    for (; l != NULL; l = next) {
        next = l->next;
        free(l);
    }
}

static const char *rows_kind_str(enum store_row_kind kind)
{
    switch (kind) {
    case STORE_ROW_OPEN:
        return "open";
    case STORE_ROW_CLOSE:
        return "close";
    case STORE_ROW_RECORDING:
        return "recording";
    case STORE_ROW_UPDATE:
        return "update";
    }
    return "?";
}

/* The first n writes of l in one transaction on st. One write's own
 * failure (a row closed already, gone, a bad field) is its own: logged,
 * the others still written. Only a failure of the database itself rolls
 * the whole batch back and is returned. */
static int rows_write(struct store *st, const struct rows_later *l, size_t n)
{
    size_t i;
    int r;

    if ((r = store_tx_begin_part(st, DB_PART_SESSIONS)) != ERR_OK) {
        return r;
    }
    for (i = 0; i < n && l != NULL; i++, l = l->next) {
        int o = store_session_apply(st, l->kind, &l->s);

        if (o == ERR_OK) {
            continue;
        }
        if (o != ERR_INVALID && o != ERR_TOO_LONG && o != ERR_NOT_FOUND) {
            r = o;
            break;
        }
        /* a close that finds the row closed (or gone) is not news: a
         * reaper or a restart closed it first */
        if (l->kind != STORE_ROW_CLOSE || o != ERR_NOT_FOUND) {
            log_warn("report row %s: the %s was not written: %s", l->s.id,
                     rows_kind_str(l->kind), err_str(o));
        }
    }
    return store_tx_end(st, r);
}

/* On the worker thread: the batch on the worker's own connection. */
static void rows_batch_work(struct store_job *j, struct store *st)
{
    struct rows_batch *b = (struct rows_batch *)j;

    b->r = rows_write(st, b->first, b->n);
}

static void rows_async_on_timer(struct loop *l, void *arg);

/* On the loop: the outcome of b, whose work is over. Its writes are freed
 * (made) or put back at the front of the queue (failed). */
static void rows_batch_apply(struct store *st, struct rows_batch *b)
{
    struct rows_async *a = st->rows_async;
    struct rows_later **tail;

    b->applied = true;
    if (b->r == ERR_OK) {
        rows_later_free_list(b->first);
        b->first = NULL;
        if (a->delay_ms > 0) {
            a->since += b->n;
            if (a->n == 0) {
                log_info("store answers again: %zu report row write(s) "
                         "made",
                         a->since);
                a->delay_ms = 0;
            }
        }
        return;
    }
    for (tail = &b->first; *tail != NULL; tail = &(*tail)->next) {
    }
    *tail = a->head;
    if (a->n == 0) {
        a->tail = tail;
    }
    a->head = b->first;
    b->first = NULL;
    a->n += b->n;
    if (a->delay_ms == 0) {
        a->since = 0;
        log_warn("store: report row writes wait in memory and are made when "
                 "the database takes them (%s)",
                 err_str(b->r));
    }
    a->delay_ms = a->delay_ms == 0                       ? ROWS_RETRY_MS
                  : a->delay_ms >= ROWS_RETRY_MAX_MS / 2 ? ROWS_RETRY_MAX_MS
                                                         : a->delay_ms * 2;
    if (a->w != NULL && a->timer == 0) {
        a->timer = loop_add_timer(a->loop, (uint64_t)a->delay_ms,
                                  rows_async_on_timer, st);
    }
}

static void rows_async_next(struct store *st);

static void rows_batch_done(void *owner, struct store_job *j)
{
    struct rows_batch *b = (struct rows_batch *)j;
    struct store *st = owner;

    if (st != NULL && st->rows_async->out == b) {
        st->rows_async->out = NULL;
    }
    if (st != NULL && !b->applied) {
        rows_batch_apply(st, b);
    }
    rows_later_free_list(b->first); /* only when stopped */
    free(b);
    if (st != NULL) {
        rows_async_next(st);
    }
}

static void rows_async_on_timer(struct loop *l, void *arg)
{
    struct store *st = arg;

    (void)l;
    st->rows_async->timer = 0;
    rows_async_next(st);
}

/* Starts the next batch unless one is in flight or a retry waits. */
static void rows_async_next(struct store *st)
{
    struct rows_async *a = st->rows_async;
    struct rows_later **pp;
    struct rows_batch *b;
    size_t n;

    if (a == NULL || a->w == NULL || a->out != NULL || a->timer != 0 ||
        a->n == 0) {
        return;
    }
    if ((b = calloc(1, sizeof(*b))) == NULL) {
        a->delay_ms = ROWS_RETRY_MS;
        a->timer = loop_add_timer(a->loop, (uint64_t)a->delay_ms,
                                  rows_async_on_timer, st);
        return;
    }
    pp = &a->head;
    for (n = 0; *pp != NULL && n < ROWS_BATCH; n++) {
        pp = &(*pp)->next;
    }
    b->first = a->head;
    a->head = *pp;
    *pp = NULL;
    b->n = n;
    a->n -= n;
    if (a->n == 0) {
        a->tail = &a->head;
    }
    b->r = ERR_STORE; /* if it finds no connection */
    b->job.work = rows_batch_work;
    b->job.done = rows_batch_done;
    a->out = b;
    store_worker_run(a->w, &b->job);
}

int store_rows_put(struct store *st, enum store_row_kind kind,
                   const struct store_session *s)
{
    struct rows_async *a = st->rows_async;
    struct rows_batch *b = a->out != NULL && !a->out->applied ? a->out : NULL;
    size_t n = a->n + (b != NULL ? b->n : 0);
    struct rows_later *l;

    if (n >= a->max) {
        if (!a->full) {
            a->full = true;
            log_warn("store: %zu report row writes wait for the database "
                     "already ([store] outage_rows); further ones are not "
                     "queued until there is room",
                     n);
        }
        return ERR_STORE;
    }
    a->full = false;
    if ((l = malloc(sizeof(*l))) == NULL) {
        return ERR_NOMEM;
    }
    l->next = NULL;
    l->kind = kind;
    l->s = *s;
    *a->tail = l;
    a->tail = &l->next;
    a->n++;
    rows_async_next(st);
    return ERR_OK;
}

/* Writes what waits on st itself, in order, ROWS_BATCH a transaction:
 * ERR_OK when all of it is written. */
static int rows_write_queue(struct store *st)
{
    struct rows_async *a = st->rows_async;
    struct rows_later *l, *next;
    size_t k;
    int r;

    while (a->head != NULL) {
        if ((r = rows_write(st, a->head, ROWS_BATCH)) != ERR_OK) {
            return r;
        }
        for (k = 0, l = a->head; l != NULL && k < ROWS_BATCH; k++, l = next) {
            next = l->next;
            free(l);
            a->n--;
        }
        a->head = l;
    }
    a->tail = &a->head;
    return ERR_OK;
}

void store_rows_flush(struct store *st)
{
    struct rows_async *a = st != NULL ? st->rows_async : NULL;

    if (a == NULL || a->w == NULL) {
        return;
    }
    if (a->out != NULL && !a->out->applied) {
        if (!util_wait_flag(&a->out->job.finished, ROWS_FLUSH_MS)) {
            return; /* writing the rest now would overtake it */
        }
        rows_batch_apply(st, a->out);
    }
    /* a writer that is failing (an outage, a lock) would fail here too,
     * after holding the loop up to the statement deadline */
    if (a->n > 0 && a->delay_ms == 0 && !store_unreachable(st)) {
        (void)rows_write_queue(st);
    }
}

int store_session_off_loop(struct store *st, struct loop *l,
                           const char *location, size_t max)
{
    struct rows_async *a;

    if (st == NULL || l == NULL || location == NULL || !db_is_shared(st->db) ||
        st->rows_async != NULL) {
        return ERR_OK; /* SQLite: written at once, on the caller's thread */
    }
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        return ERR_NOMEM;
    }
    a->loop = l;
    a->tail = &a->head;
    a->max = max > 0 ? max : 4096;
    a->w = store_worker_new(l, st, location, 1, "the report rows' writer", st);
    if (a->w == NULL || !store_worker_async(a->w)) {
        int r = a->w == NULL ? ERR_NOMEM : ERR_OK;

        (void)store_worker_stop(a->w, 0);
        free(a);
        return r;
    }
    st->rows_async = a;
    return ERR_OK;
}

size_t store_session_off_loop_stop(struct store *st, int ms)
{
    struct rows_async *a = st != NULL ? st->rows_async : NULL;
    struct rows_batch *b;
    size_t left = 0;
    bool stuck;

    if (a == NULL) {
        return 0;
    }
    if (a->timer != 0) {
        loop_del_timer(a->loop, a->timer);
        a->timer = 0;
    }
    b = a->out != NULL && !a->out->applied ? a->out : NULL;
    a->out = NULL; /* its done runs with no owner now, and only frees it */
    stuck = store_worker_stop(a->w, ms) > 0;
    a->w = NULL;
    if (b != NULL && !stuck) {
        rows_batch_apply(st, b); /* written, or back at the front */
    } else if (b != NULL) {
        left += b->n; /* may yet commit; nothing may overtake it */
    }
    if (!stuck && a->n > 0 && !store_unreachable(st)) {
        (void)rows_write_queue(st);
    }
    left += a->n;
    if (left > 0) {
        log_warn("%zu report row write(s) could not be made (the database "
                 "does not answer); the rows they would close stay open and "
                 "the next start closes them as interrupted",
                 left);
    }
    rows_later_free_list(a->head);
    free(a);
    st->rows_async = NULL;
    return left;
}
