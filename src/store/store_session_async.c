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
 * the handle queues each write in an ordered write queue (store_wqueue.h)
 * whose worker of its own (store_worker.h, one connection) writes it.
 *
 * Why the order and "once" hold: only the loop appends to the queue, in
 * the order the calls are made (every write of a session's row in the
 * server's process goes through this handle: the monitor's; the open of
 * a row that led to a session is made on a login job's connection and
 * committed before the child hears of it, so before any of its later
 * writes are queued); the queue writes them in that order (at most
 * ROWS_BATCH a transaction, one batch in flight; a batch that failed
 * goes back to the front, ahead of what was queued meanwhile, and is
 * tried again after ROWS_RETRY_MS doubling to ROWS_RETRY_MAX_MS). What
 * is queued beyond the bound ([store] outage_rows, queued and in flight)
 * is refused, and the caller writes it as before. A close changes only an
 * open row (store_sessions.c), so a row another node's reaper closed as
 * interrupted meanwhile keeps that, and a batch whose COMMIT got through
 * unseen (the connection lost in it) and is tried again changes nothing
 * the second time.
 *
 * Readers on this handle (the API's report: store_session_get, _list)
 * flush first (wqueue_flush): they wait for the batch in flight (at most
 * ROWS_FLUSH_MS) and write the rest on the handle's own connection,
 * unless the writer is failing (that would fail too, after holding the
 * loop), so a session the server ended is closed in the report its API
 * answers next.
 *
 * Stop (store_session_off_loop_stop, wqueue_stop): the batch in flight is
 * waited for; back, what waits is written on the loop (bounded by the
 * statement deadline); not back (a database that does not answer),
 * nothing more is tried, since a write now could overtake it. What is not
 * written leaves its rows open, and the next start (or the node that notices
 * this one died) closes them as interrupted, as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/store_wqueue.h"

#define ROWS_BATCH 64
#define ROWS_RETRY_MS 250
#define ROWS_RETRY_MAX_MS 4000
#define ROWS_FLUSH_MS 1000

struct rows_later {
    struct wqueue_item h; /* first: the queue's */
    enum store_row_kind kind;
    struct store_session s;
};

struct rows_async {
    struct wqueue q;
    bool full; /* the bound was hit; said once until there is room */
};

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

/* The n writes from first in one transaction on st. One write's own
 * failure (a row closed already, gone, a bad field) is its own: logged,
 * the others still written. Only a failure of the database itself rolls
 * the whole batch back and is returned. */
static int rows_write(struct store *st, const char *arg,
                      const struct wqueue_item *first, size_t n)
{
    const struct wqueue_item *it = first;
    size_t i;
    int r;

    (void)arg;
    if ((r = store_tx_begin_part(st, DB_PART_SESSIONS)) != ERR_OK) {
        return r;
    }
    for (i = 0; i < n && it != NULL; i++, it = it->next) {
        const struct rows_later *l = (const struct rows_later *)it;
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

static void rows_later_free(struct wqueue_item *it)
{
    free(it);
}

static const struct wqueue_conf rows_conf = {
    .what = "report row write",
    .batch = ROWS_BATCH,
    .retry_ms = ROWS_RETRY_MS,
    .retry_max_ms = ROWS_RETRY_MAX_MS,
    .flush_ms = ROWS_FLUSH_MS,
    .write = rows_write,
    .free = rows_later_free,
};

int store_rows_put(struct store *st, enum store_row_kind kind,
                   const struct store_session *s)
{
    struct rows_async *a = st->rows_async;
    struct rows_later *l;

    if ((l = malloc(sizeof(*l))) == NULL) {
        return ERR_NOMEM;
    }
    memset(&l->h, 0, sizeof(l->h));
    l->kind = kind;
    l->s = *s;
    if (wqueue_put(&a->q, &l->h) != ERR_OK) {
        free(l);
        if (!a->full) {
            a->full = true;
            log_warn("store: %zu report row writes wait for the database "
                     "already ([store] outage_rows); further ones are not "
                     "queued until there is room",
                     wqueue_len(&a->q, NULL));
        }
        return ERR_STORE;
    }
    a->full = false;
    return ERR_OK;
}

void store_rows_flush(struct store *st)
{
    if (st != NULL && st->rows_async != NULL) {
        (void)wqueue_flush(&st->rows_async->q, st);
    }
}

int store_session_off_loop(struct store *st, struct loop *l,
                           const char *location, size_t max)
{
    struct rows_async *a;
    int r;

    if (st == NULL || st->rows_async != NULL) {
        return ERR_OK;
    }
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        return ERR_NOMEM;
    }
    wqueue_init(&a->q, &rows_conf, st, max > 0 ? max : 4096);
    r = wqueue_start(&a->q, l, st, location, "the report rows' writer", NULL);
    if (r != ERR_OK || !wqueue_off_loop(&a->q)) {
        free(a); /* SQLite: written at once, on the caller's thread */
        return r;
    }
    st->rows_async = a;
    return ERR_OK;
}

size_t store_session_off_loop_stop(struct store *st, int ms)
{
    struct rows_async *a = st != NULL ? st->rows_async : NULL;
    size_t left;

    if (a == NULL) {
        return 0;
    }
    left = wqueue_stop(&a->q, st, ms, NULL);
    if (left > 0) {
        log_warn("%zu report row write(s) could not be made (the database "
                 "does not answer); the rows they would close stay open and "
                 "the next start closes them as interrupted",
                 left);
    }
    wqueue_drop(&a->q);
    free(a);
    st->rows_async = NULL;
    return left;
}
