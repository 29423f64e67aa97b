/*
 * The ordered write queue: writes the loop makes, kept in the order it
 * made them, written off the loop by a store worker of their own
 * (store_worker.h, one connection), a batch per transaction. The session
 * report's writes (store_session_async.c) and the audit log's appends
 * (store_audit.c) are each one such queue; what an item is and how a batch
 * is written is theirs (struct wqueue_conf), the ordering rule is here,
 * once.
 *
 * Why the order holds: only the loop appends (wqueue_put), at the end; a
 * batch is the queue's first items (at most conf->batch, one transaction
 * on the worker's connection), taken off it, and the next starts only
 * when this one's outcome is back on the loop (one batch in flight); a
 * batch that failed goes back to the front, ahead of what was appended
 * meanwhile, and is tried again after conf->retry_ms, doubling up to
 * conf->retry_max_ms. So an item is written only after every item
 * appended before it, and a failure is only a longer wait.
 *
 * The bound (max): items queued and in flight. wqueue_put refuses an item
 * beyond it (ERR_STORE, nothing kept); what the caller does then is the
 * caller's (the report falls back to the monitor's pending list, the
 * audit log counts it for an audit.lost event). Items the caller marks
 * (struct wqueue_item.marked) are counted apart as well, for a caller
 * that gives one kind of item less room (failed logins).
 *
 * Flush (wqueue_flush, before a read on the owner's own connection): the
 * batch in flight is waited for (at most conf->flush_ms), then what waits
 * is written on the caller's connection, unless the writer is failing or
 * the store does not answer (that would fail too, after holding the loop
 * up to the statement deadline). A batch that does not come back in time
 * means nothing else is written: it would overtake it.
 *
 * Stop (wqueue_stop): the batch in flight is waited for; back, what waits
 * is written on the caller's connection (bounded by the statement
 * deadline); not back (a database that does not answer), nothing more is
 * written through this queue (wqueue_write refuses: it could overtake
 * the batch, which may yet commit). With conf->copy, copies of that
 * batch's items go back to the front of the queue, so the caller can
 * keep them elsewhere (the audit spool) in their order.
 *
 * Without a worker (wqueue_start not called, or stopped) the queue only
 * keeps items in order; the caller writes them with wqueue_write when it
 * chooses (the audit log's outage queue on SQLite or in a CLI process).
 *
 * Ownership: the queue owns the items put into it and frees each with
 * conf->free once written or dropped (wqueue_drop). An item in a batch
 * that stop forgot is freed when (if ever) that batch comes back, so
 * conf->write and conf->free must use nothing but the item, the store
 * they are given and conf itself: not the owner.
 */
#ifndef PORTCULLIS_STORE_WQUEUE_H
#define PORTCULLIS_STORE_WQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct store;
struct store_worker;
struct wqueue_batch;

/* The head of every item: the caller's item struct starts with it. */
struct wqueue_item {
    struct wqueue_item *next; /* the queue's */
    bool marked;              /* set by the caller: counted apart */
};

struct wqueue_conf {
    const char *what; /* for the log: "report row write", "audit event" */
    size_t batch;     /* items per transaction */
    int retry_ms;     /* after a failed batch; doubling up to: */
    int retry_max_ms;
    int flush_ms; /* the longest a flush waits for the batch in flight */
    /*
     * Writes the n items from first (in order, following next) in one
     * transaction on st: ERR_OK, or the error that rolled them all back
     * (they are then tried again). Runs on the worker's thread with arg
     * the text given to wqueue_start (a copy the batch owns: what the
     * worker's connection needs, e.g. the audit key's path), or on the
     * loop's (a flush, a stop, wqueue_write) on the caller's own
     * connection with arg NULL.
     */
    int (*write)(struct store *st, const char *arg,
                 const struct wqueue_item *first, size_t n);
    void (*free)(struct wqueue_item *it);
    /* optional, on the loop at stop: a copy of an item of a batch that
     * did not come back, or NULL (out of memory: the item is not kept) */
    struct wqueue_item *(*copy)(void *owner, const struct wqueue_item *it);
    /* optional, on the loop: a batch was written and nothing waits or is
     * in flight any more */
    void (*drained)(void *owner);
    /* optional, on the loop: it was written (committed), just before it
     * is freed; not called for an item dropped or left to a stuck batch */
    void (*written)(void *owner, const struct wqueue_item *it);
    /* true: nothing the API reads after a write of the loop's (its RW
     * routes: the report, the audit log, jobs) comes from this queue, so
     * those reads do not wait for it (store_worker_set_writer is not
     * called for its worker) */
    bool no_read_gate;
};

struct wqueue {
    const struct wqueue_conf *conf;
    void *owner; /* for copy and drained */
    size_t max;  /* the bound: items queued and in flight */
    struct wqueue_item *head, **tail;
    size_t n, nmarked; /* queued (not in flight) */
    /* off the loop (wqueue_start); w NULL: not, or stopped */
    struct loop *loop;
    struct store_worker *w;
    char *arg;
    /* the batch given to the worker whose done has not run yet; until it
     * has, the worker's connection is its, so no other batch starts */
    struct wqueue_batch *out;
    uint64_t timer; /* the retry after a failed batch */
    int delay_ms;   /* > 0: the writer is failing */
    size_t since;   /* items written since it started failing */
    bool stuck;     /* stopped with a batch that did not come back */
};

/* An empty queue of conf's items (conf outlives it), bounded by max
 * (q->max may be changed later), without a worker. */
void wqueue_init(struct wqueue *q, const struct wqueue_conf *conf, void *owner,
                 size_t max);
/*
 * Writes the queue off loop l from now on, on a worker of its own on the
 * store at location (main's), named by what (store_worker_new). arg: a text
 * handed to every conf->write (copied), or NULL. ERR_OK with the queue
 * off the loop; ERR_OK and nothing changed when the store has no second
 * connection to give (SQLite: the caller writes at once instead, and
 * wqueue_off_loop stays false); ERR_NOMEM.
 */
int wqueue_start(struct wqueue *q, struct loop *l, struct store *main,
                 const char *location, const char *what, const char *arg);
/* true from wqueue_start until a clean stop (a stuck stop stays true:
 * the queue keeps appending but never writes). */
bool wqueue_off_loop(const struct wqueue *q);
/* Items not yet written: queued and in flight; *marked (may be NULL) the
 * marked ones among them. */
size_t wqueue_len(const struct wqueue *q, size_t *marked);
/* true while the last batch failed and its retry waits. */
bool wqueue_failing(const struct wqueue *q);
/* The first queued item (not in flight), or NULL; follow next. */
struct wqueue_item *wqueue_first(const struct wqueue *q);
/*
 * Appends it (loop only) and, off the loop, starts a batch if none is in
 * flight and no retry waits. ERR_OK: the queue owns it. ERR_STORE: the
 * bound is reached, it is not taken (the caller still owns it).
 */
int wqueue_put(struct wqueue *q, struct wqueue_item *it);
/* wqueue_put without the bound: only for items that must not be lost and
 * are bounded elsewhere (a previous run's, read back at start). */
void wqueue_put_any(struct wqueue *q, struct wqueue_item *it);
/*
 * Writes at most max queued items (0: all), conf->batch a transaction, on
 * st (the caller's connection), in order: ERR_OK when that many (or all)
 * were written, else the error with the rest still queued (ERR_STORE at
 * once while a batch is in flight or stuck: it would overtake it).
 * *written (may be NULL): how many.
 */
int wqueue_write(struct wqueue *q, struct store *st, size_t max,
                 size_t *written);
/* Before a read on st, the owner's connection (see above): ERR_OK when
 * nothing waits any more, else why not (ERR_STORE: not off the loop, the
 * batch in flight did not come back, the writer is failing). */
int wqueue_flush(struct wqueue *q, struct store *st);
/*
 * Stops the worker (see above), waiting at most ms for the batch in
 * flight; then what waits is written on st unless the store does not
 * answer. Returns how many items are not written (queued, and in a batch
 * that did not come back unless copied back); *stuck (may be NULL): that
 * batch did not come back. The items stay queued for the caller.
 */
size_t wqueue_stop(struct wqueue *q, struct store *st, int ms, bool *stuck);
/* Frees every queued item. Call after wqueue_stop (or without start). */
void wqueue_drop(struct wqueue *q);

#endif
