/*
 * The ordered write queue (store_wqueue.h): the one place the rule of
 * the store's off-loop writers lives (append on the loop, one batch in
 * flight, a failed batch back at the front, retry with backoff, a bound,
 * flush for readers, stop without overtaking). Its users say what an
 * item is and how a batch is written (struct wqueue_conf) and nothing
 * else: the session report's writes (store_session_async.c) and the
 * audit log's appends (store_audit.c).
 */
#include "store/store_wqueue.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"
#include "store/store_worker.h"

struct wqueue_batch {
    struct store_work job; /* first: the worker's */
    const struct wqueue_conf *conf;
    struct wqueue_item *first; /* taken off the queue, in order */
    size_t n, nmarked;
    char *arg;    /* the queue's arg, the batch's own copy */
    int r;        /* the outcome; ERR_STORE until it ran */
    bool applied; /* its outcome taken on the loop already (a flush) */
};

static void wqueue_free_list(const struct wqueue_conf *conf,
                             struct wqueue_item *it)
{
    struct wqueue_item *next;

    for (; it != NULL; it = next) {
        next = it->next;
        conf->free(it);
    }
}

/* Items from it on were written: told (conf->written), then freed. */
static void wqueue_written(const struct wqueue *q, struct wqueue_item *it)
{
    struct wqueue_item *next;

    for (; it != NULL; it = next) {
        next = it->next;
        if (q->conf->written != NULL) {
            q->conf->written(q->owner, it);
        }
        q->conf->free(it);
    }
}

void wqueue_init(struct wqueue *q, const struct wqueue_conf *conf, void *owner,
                 size_t max)
{
    memset(q, 0, sizeof(*q));
    q->conf = conf;
    q->owner = owner;
    q->max = max;
    q->tail = &q->head;
}

bool wqueue_off_loop(const struct wqueue *q)
{
    return q->w != NULL || q->stuck;
}

bool wqueue_failing(const struct wqueue *q)
{
    return q->delay_ms > 0;
}

struct wqueue_item *wqueue_first(const struct wqueue *q)
{
    return q->head;
}

/* The batch in flight whose outcome the loop has not taken, or NULL. */
static struct wqueue_batch *wqueue_out(const struct wqueue *q)
{
    return q->out != NULL && !q->out->applied ? q->out : NULL;
}

size_t wqueue_len(const struct wqueue *q, size_t *marked)
{
    const struct wqueue_batch *b = wqueue_out(q);

    if (marked != NULL) {
        *marked = q->nmarked + (b != NULL ? b->nmarked : 0);
    }
    return q->n + (b != NULL ? b->n : 0);
}

/* Puts the n items from first (nmarked of them marked) back at the
 * front, ahead of what was appended meanwhile. */
static void wqueue_put_front(struct wqueue *q, struct wqueue_item *first,
                             size_t n, size_t nmarked)
{
    struct wqueue_item **tail;

    if (first == NULL) {
        return;
    }
    for (tail = &first; *tail != NULL; tail = &(*tail)->next) {
    }
    *tail = q->head;
    if (q->n == 0) {
        q->tail = tail;
    }
    q->head = first;
    q->n += n;
    q->nmarked += nmarked;
}

/* Takes the first n queued items off the queue (n <= q->n). */
static struct wqueue_item *wqueue_take(struct wqueue *q, size_t n,
                                       size_t *nmarked)
{
    struct wqueue_item *first = q->head, **pp = &q->head;
    size_t i;

    *nmarked = 0;
    for (i = 0; i < n; i++) {
        *nmarked += (*pp)->marked ? 1 : 0;
        pp = &(*pp)->next;
    }
    q->head = *pp;
    *pp = NULL;
    q->n -= n;
    q->nmarked -= *nmarked;
    if (q->n == 0) {
        q->tail = &q->head;
    }
    return first;
}

static void wqueue_on_timer(struct loop *l, void *arg);

static void wqueue_retry_later(struct wqueue *q)
{
    if (q->w != NULL && q->timer == 0) {
        q->timer =
            loop_add_timer(q->loop, (uint64_t)q->delay_ms, wqueue_on_timer, q);
    }
}

/* On the loop: the outcome of b, whose work is over. Its items are freed
 * (written) or put back at the front of the queue (failed). */
static void wqueue_apply(struct wqueue *q, struct wqueue_batch *b)
{
    const struct wqueue_conf *c = q->conf;

    b->applied = true;
    if (b->r == ERR_OK) {
        struct wqueue_item *first = b->first;

        b->first = NULL;
        wqueue_written(q, first);
        if (q->delay_ms > 0) {
            q->since += b->n;
            if (q->n == 0) {
                log_info("store answers again: %zu %s(s) written", q->since,
                         c->what);
                q->delay_ms = 0;
            }
        }
        return;
    }
    wqueue_put_front(q, b->first, b->n, b->nmarked);
    b->first = NULL;
    if (q->delay_ms == 0) {
        q->since = 0;
        log_warn("store: %ss wait in memory and are written when the "
                 "database takes them (%s)",
                 c->what, err_str(b->r));
    }
    q->delay_ms = q->delay_ms == 0                     ? c->retry_ms
                  : q->delay_ms >= c->retry_max_ms / 2 ? c->retry_max_ms
                                                       : q->delay_ms * 2;
    wqueue_retry_later(q);
}

/* On the worker thread: the batch on the worker's own connection. */
static void wqueue_batch_work(struct store_work *j, struct store *st)
{
    struct wqueue_batch *b = (struct wqueue_batch *)j;

    b->r = b->conf->write(st, b->arg, b->first, b->n);
}

static void wqueue_next(struct wqueue *q);

static void wqueue_batch_done(void *owner, struct store_work *j)
{
    struct wqueue_batch *b = (struct wqueue_batch *)j;
    struct wqueue *q = owner;
    bool written = b->r == ERR_OK;

    if (q != NULL && q->out == b) {
        q->out = NULL;
    }
    if (q != NULL && !b->applied) {
        wqueue_apply(q, b);
    }
    wqueue_free_list(b->conf, b->first); /* only when stopped */
    free(b->arg);
    free(b);
    if (q == NULL) {
        return;
    }
    if (written && q->n == 0 && q->out == NULL && q->conf->drained != NULL) {
        q->conf->drained(q->owner);
    }
    wqueue_next(q);
}

static void wqueue_on_timer(struct loop *l, void *arg)
{
    struct wqueue *q = arg;

    (void)l;
    q->timer = 0;
    wqueue_next(q);
}

/* Starts the next batch unless one is in flight or a retry waits. */
static void wqueue_next(struct wqueue *q)
{
    struct wqueue_batch *b;

    if (q->w == NULL || q->out != NULL || q->timer != 0 || q->n == 0) {
        return;
    }
    if ((b = calloc(1, sizeof(*b))) == NULL ||
        (q->arg != NULL && (b->arg = strdup(q->arg)) == NULL)) {
        free(b);
        q->delay_ms = q->conf->retry_ms;
        wqueue_retry_later(q);
        return;
    }
    b->conf = q->conf;
    b->n = q->n < q->conf->batch ? q->n : q->conf->batch;
    b->first = wqueue_take(q, b->n, &b->nmarked);
    b->r = ERR_STORE; /* if it finds no connection */
    b->job.work = wqueue_batch_work;
    b->job.done = wqueue_batch_done;
    q->out = b;
    store_worker_run(q->w, &b->job);
}

void wqueue_put_any(struct wqueue *q, struct wqueue_item *it)
{
    it->next = NULL;
    *q->tail = it;
    q->tail = &it->next;
    q->n++;
    q->nmarked += it->marked ? 1 : 0;
    wqueue_next(q);
}

int wqueue_put(struct wqueue *q, struct wqueue_item *it)
{
    if (wqueue_len(q, NULL) >= q->max) {
        return ERR_STORE;
    }
    wqueue_put_any(q, it);
    return ERR_OK;
}

int wqueue_write(struct wqueue *q, struct store *st, size_t max,
                 size_t *written)
{
    struct wqueue_item *first;
    size_t n, nmarked, done = 0;
    int r = ERR_OK;

    if (wqueue_out(q) != NULL || q->stuck) {
        r = ERR_STORE; /* it would overtake that batch */
        goto out;
    }
    while (q->n > 0 && (max == 0 || done < max)) {
        n = q->n < q->conf->batch ? q->n : q->conf->batch;
        if ((r = q->conf->write(st, NULL, q->head, n)) != ERR_OK) {
            break;
        }
        first = wqueue_take(q, n, &nmarked);
        wqueue_written(q, first);
        done += n;
    }
out:
    if (written != NULL) {
        *written = done;
    }
    return r;
}

int wqueue_flush(struct wqueue *q, struct store *st)
{
    struct wqueue_batch *b = wqueue_out(q);

    if (q->w == NULL) {
        return ERR_STORE;
    }
    if (b != NULL) {
        if (!util_wait_flag(&b->job.finished, q->conf->flush_ms)) {
            return ERR_STORE; /* writing the rest now would overtake it */
        }
        wqueue_apply(q, b);
    }
    if (q->n == 0) {
        return ERR_OK;
    }
    /* a writer that is failing (an outage, a lock) would fail here too,
     * after holding the loop up to the statement deadline */
    if (q->delay_ms > 0 || store_unreachable(st)) {
        return ERR_STORE;
    }
    return wqueue_write(q, st, 0, NULL);
}

int wqueue_start(struct wqueue *q, struct loop *l, struct store *main,
                 const char *location, const char *what, const char *arg)
{
    struct store_worker *w;

    if (l == NULL || location == NULL || !db_is_shared(main->db) ||
        wqueue_off_loop(q)) {
        return ERR_OK; /* SQLite: written at once, on the caller's thread */
    }
    if ((w = store_worker_new(l, main, location, 1, what, q)) == NULL) {
        return ERR_NOMEM;
    }
    if (!store_worker_async(w)) {
        (void)store_worker_stop(w, 0);
        return ERR_OK;
    }
    /* the API's reads on other connections wait for it (http_offloop.c) */
    if (!q->conf->no_read_gate) {
        store_worker_set_writer(w);
    }
    if (arg != NULL && (q->arg = strdup(arg)) == NULL) {
        (void)store_worker_stop(w, 0);
        return ERR_NOMEM;
    }
    q->loop = l;
    q->w = w;
    wqueue_next(q);
    return ERR_OK;
}

/* Copies of the items of b (a batch that did not come back) back at the
 * front; returns how many could not be copied. */
static size_t wqueue_copy_back(struct wqueue *q, const struct wqueue_batch *b)
{
    struct wqueue_item *head = NULL, **tail = &head, *copy;
    const struct wqueue_item *it;
    size_t n = 0, nmarked = 0, lost = 0;

    for (it = b->first; it != NULL; it = it->next) {
        if ((copy = q->conf->copy(q->owner, it)) == NULL) {
            lost++;
            continue;
        }
        copy->next = NULL;
        copy->marked = it->marked;
        *tail = copy;
        tail = &copy->next;
        n++;
        nmarked += copy->marked ? 1 : 0;
    }
    wqueue_put_front(q, head, n, nmarked);
    return lost;
}

size_t wqueue_stop(struct wqueue *q, struct store *st, int ms, bool *stuck)
{
    struct wqueue_batch *b;
    size_t left = 0;
    bool stk;

    if (q->w == NULL) {
        if (stuck != NULL) {
            *stuck = q->stuck;
        }
        return q->n;
    }
    if (q->timer != 0) {
        loop_del_timer(q->loop, q->timer);
        q->timer = 0;
    }
    b = wqueue_out(q);
    q->out = NULL; /* its done runs with no owner now, and only frees it */
    stk = store_worker_stop(q->w, ms) > 0;
    q->w = NULL;
    if (b != NULL && !stk) {
        wqueue_apply(q, b); /* written, or back at the front */
    } else if (b != NULL) {
        /* it may yet commit: nothing may overtake it */
        left += q->conf->copy != NULL ? wqueue_copy_back(q, b) : b->n;
        q->stuck = true;
    }
    if (!q->stuck && q->n > 0 && !store_unreachable(st)) {
        (void)wqueue_write(q, st, 0, NULL);
    }
    if (stuck != NULL) {
        *stuck = q->stuck;
    }
    return left + q->n;
}

void wqueue_drop(struct wqueue *q)
{
    wqueue_free_list(q->conf, q->head);
    q->head = NULL;
    q->tail = &q->head;
    q->n = q->nmarked = 0;
    q->delay_ms = 0;
    q->stuck = false;
    free(q->arg);
    q->arg = NULL;
}
