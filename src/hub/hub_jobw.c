/*
 * The store writes of the jobs that run here (hub.h, "recording a job"):
 * their live output every HUB_JOB_PROGRESS_MS while they print, their
 * results, a stop_on_failure batch's skip, a recovered result's.
 *
 * On a database server they go through one ordered write queue
 * (store/store_wqueue.h: the loop appends, one batch per transaction on a
 * connection of its own, a failed batch retried ahead of what came after
 * it), so a locked jobs table or a database that does not answer holds
 * these writes, never the loop; and a job's result is written after its
 * live output, never overtaken by it. Without one (SQLite, a local file)
 * each is written at once on the hub's store, as before.
 *
 * Live output is appended from where the last item left it: each item
 * holds only the bytes that came since (the hub keeps the whole output
 * for its watchers anyway), so the queue's memory is at most what the
 * jobs printed. An item the bound refuses is not lost: the next one
 * starts where the refused one would have, and a result carries the
 * whole output in any case (store_job_finish writes what the store lacks
 * of it). The next pickup of a batch's jobs waits for its job's result
 * to be written (the pickup counts the batch's running jobs in the
 * store).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "hub/hub_internal.h"
#include "store/jobs.h"
#include "store/store_wqueue.h"

#define JOBW_BATCH 32     /* items per transaction */
#define JOBW_MAX 4096     /* live output items queued; results always go */
#define JOBW_RETRY_MS 250 /* after a failed batch, doubling up to */
#define JOBW_RETRY_MAX_MS 5000
#define JOBW_FLUSH_MS 1000

enum jobw_kind { JOBW_APPEND, JOBW_FINISH, JOBW_UNRECOVERABLE };

struct jobw_item {
    struct wqueue_item q; /* first: the queue's */
    enum jobw_kind kind;
    char id[STORE_ID_MAX + 1];
    /* JOBW_APPEND: out_n bytes of stdout from out_pos, then err_n of
     * stderr from err_pos, in data */
    int64_t out_pos, err_pos;
    size_t out_n, err_n;
    /* JOBW_FINISH: the job's end */
    const struct store_job *res; /* what is written: j, or the caller's */
    struct store_job *j;         /* its own copy (off the loop), or NULL */
    char skip[STORE_ID_MAX + 1]; /* a batch whose queued jobs it skips */
    bool pickup;                 /* then the queued jobs are picked up */
    hub_recorded_fn recorded;    /* then (or NULL) */
    void *arg;
    /* JOBW_UNRECOVERABLE */
    bool has_why;
    char why[JOB_WHY_MAX + 1];
    uint8_t data[];
};

static void jobw_free(struct wqueue_item *it)
{
    struct jobw_item *w = (struct jobw_item *)it;

    if (w->j != NULL) {
        store_job_free_output(w->j);
        free(w->j);
    }
    free(w);
}

/* One item on st, inside the caller's transaction: ERR_OK, the item's own
 * failure (logged; the batch goes on), or the database's. */
static int jobw_apply(struct store *st, const struct jobw_item *w)
{
    int r = ERR_OK;

    switch (w->kind) {
    case JOBW_APPEND:
        r = store_job_append_in(st, w->id, 1, w->out_pos, w->data, w->out_n);
        if (r == ERR_OK) {
            r = store_job_append_in(st, w->id, 2, w->err_pos,
                                    w->data + w->out_n, w->err_n);
        }
        if (r == ERR_NOT_FOUND || r == ERR_DENIED || r == ERR_INVALID) {
            /* ended meanwhile, a refused item's gap, or past the cap:
             * the result carries the output (its own failure is its
             * own, never the batch's, which would be retried for ever) */
            r = ERR_OK;
        }
        break;
    case JOBW_FINISH:
        r = store_job_finish_in(st, w->res);
        if (r == ERR_NOT_FOUND || r == ERR_INVALID) {
            log_error("job %s: cannot record its result: %s", w->id,
                      err_str(r));
            r = ERR_OK;
        }
        if (r == ERR_OK && w->skip[0] != '\0') {
            r = store_job_batch_end_in(st, w->skip, "skipped",
                                       "an earlier job of the batch did not "
                                       "end ok");
        }
        break;
    case JOBW_UNRECOVERABLE:
        r = store_job_unrecoverable_in(st, w->id, w->has_why ? w->why : NULL);
        if (r == ERR_NOT_FOUND) {
            r = ERR_OK; /* deleted meanwhile (retention, by hand) */
        }
        break;
    }
    return r;
}

struct jobw_batch {
    const struct wqueue_item *first;
    size_t n;
};

static int jobw_batch_apply(struct store *st, void *arg)
{
    const struct jobw_batch *b = arg;
    const struct wqueue_item *it = b->first;
    int r = ERR_OK;

    for (size_t i = 0; i < b->n && it != NULL && r == ERR_OK;
         i++, it = it->next) {
        r = jobw_apply(st, (const struct jobw_item *)it);
    }
    return r;
}

static int jobw_write(struct store *st, const char *arg,
                      const struct wqueue_item *first, size_t n)
{
    struct jobw_batch b = {first, n};

    (void)arg;
    return store_job_write_tx(st, jobw_batch_apply, &b);
}

static void jobw_written(void *owner, const struct wqueue_item *it)
{
    const struct jobw_item *w = (const struct jobw_item *)it;

    if (w->kind != JOBW_FINISH) {
        return;
    }
    if (w->recorded != NULL) {
        w->recorded(w->arg, w->res);
    }
    if (w->pickup) {
        hub_jobs_pickup(owner); /* nothing at stop */
    }
}

static const struct wqueue_conf jobw_conf = {
    .what = "job result and output write",
    .batch = JOBW_BATCH,
    .retry_ms = JOBW_RETRY_MS,
    .retry_max_ms = JOBW_RETRY_MAX_MS,
    .flush_ms = JOBW_FLUSH_MS,
    .write = jobw_write,
    .free = jobw_free,
    .written = jobw_written,
};

/* Writes w at once on the hub's store (the queue is not off the loop);
 * false when live output was not written. w stays the caller's. */
static bool jobw_now(struct hub *h, struct jobw_item *w)
{
    int r;

    w->q.next = NULL;
    if ((r = jobw_write(h->store, NULL, &w->q, 1)) != ERR_OK &&
        w->kind != JOBW_APPEND) {
        log_error("job %s: cannot record its %s: %s", w->id,
                  w->kind == JOBW_FINISH ? "result" : "recovery", err_str(r));
    }
    if (r == ERR_OK || w->kind == JOBW_FINISH) {
        jobw_written(h, &w->q); /* its waiter is answered all the same */
    }
    return r == ERR_OK || w->kind != JOBW_APPEND;
}

/* Takes w: queued (bounded unless must), or written at once when the
 * queue is not off the loop. false: refused by the bound (freed). */
static bool jobw_put(struct hub *h, struct jobw_item *w, bool must)
{
    bool ok;

    if (wqueue_off_loop(&h->jobq)) {
        if (!must) {
            if (wqueue_put(&h->jobq, &w->q) != ERR_OK) {
                jobw_free(&w->q);
                return false;
            }
            return true;
        }
        wqueue_put_any(&h->jobq, &w->q);
        return true;
    }
    ok = jobw_now(h, w);
    jobw_free(&w->q);
    return ok;
}

void hub_jobw_start(struct hub *h)
{
    wqueue_init(&h->jobq, &jobw_conf, h, JOBW_MAX);
    if (wqueue_start(&h->jobq, h->loop, h->store, h->cfg->store_path,
                     "the agent hub's job writes", NULL) != ERR_OK) {
        log_warn("jobs: their results are written on the main loop "
                 "(out of memory for a writer of their own)");
    }
}

void hub_jobw_stop(struct hub *h)
{
    bool stuck = false;
    size_t left = wqueue_stop(&h->jobq, h->store, HUB_STOP_MS, &stuck);

    if (left > 0) {
        log_warn("jobs: %zu result or output write(s) not made at stop%s", left,
                 stuck ? " (the database did not answer)" : "");
    }
    /* the results not written: their waiters are answered all the same
     * (a batch that did not come back keeps its own, and they go with
     * the process) */
    for (struct wqueue_item *it = wqueue_first(&h->jobq); it != NULL;
         it = it->next) {
        struct jobw_item *w = (struct jobw_item *)it;

        if (w->kind == JOBW_FINISH && w->recorded != NULL) {
            w->recorded(w->arg, w->res);
            w->recorded = NULL;
        }
    }
    wqueue_drop(&h->jobq);
}

bool hub_jobw_progress(struct hub *h, const char *id, size_t saved[2],
                       const uint8_t *out, size_t out_len, const uint8_t *err,
                       size_t err_len)
{
    struct jobw_item *w;
    size_t on, en;

    if (out_len < saved[0] || err_len < saved[1]) {
        return true; /* cannot be (the buffers only grow): the result
                      * carries the output */
    }
    on = out_len - saved[0];
    en = err_len - saved[1];
    if (on + en == 0) {
        return true;
    }
    if (wqueue_off_loop(&h->jobq) && wqueue_len(&h->jobq, NULL) >= JOBW_MAX) {
        return false; /* refused before its bytes are copied */
    }
    if ((w = calloc(1, sizeof(*w) + on + en)) == NULL) {
        return false;
    }
    w->kind = JOBW_APPEND;
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->out_pos = (int64_t)saved[0];
    w->err_pos = (int64_t)saved[1];
    w->out_n = on;
    w->err_n = en;
    if (on > 0) {
        memcpy(w->data, out + saved[0], on);
    }
    if (en > 0) {
        memcpy(w->data + on, err + saved[1], en);
    }
    if (!jobw_put(h, w, false)) {
        return false;
    }
    saved[0] = out_len;
    saved[1] = err_len;
    return true;
}

void hub_job_result_to(struct store_job *j, const struct hub_job_result *r)
{
    snprintf(j->status, sizeof(j->status), "%s", r->status);
    j->exit_code = r->exit_code;
    j->signal = r->signal;
    snprintf(j->why, sizeof(j->why), "%s", r->why != NULL ? r->why : "");
    for (char *p = j->why; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20) {
            *p = ' ';
        }
    }
    /* the bytes are only read, never freed, through j */
    memcpy(&j->out, &r->out, sizeof(j->out));
    memcpy(&j->err, &r->err, sizeof(j->err));
    j->out_len = r->out_len;
    j->err_len = r->err_len;
}

/* A copy of j with its output, or NULL (out of memory). */
static struct store_job *jobw_copy(const struct store_job *j)
{
    struct store_job *c = malloc(sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    *c = *j;
    c->script = c->push = NULL;
    c->out = c->out_len > 0 ? malloc(c->out_len) : NULL;
    c->err = c->err_len > 0 ? malloc(c->err_len) : NULL;
    if ((c->out_len > 0 && c->out == NULL) ||
        (c->err_len > 0 && c->err == NULL)) {
        store_job_free_output(c);
        free(c);
        return NULL;
    }
    if (c->out_len > 0) {
        memcpy(c->out, j->out, c->out_len);
    }
    if (c->err_len > 0) {
        memcpy(c->err, j->err, c->err_len);
    }
    return c;
}

void hub_job_record(struct hub *h, const struct store_job *j,
                    const char *skip_batch, bool pickup,
                    hub_recorded_fn recorded, void *arg)
{
    struct jobw_item *w = calloc(1, sizeof(*w));
    /* written at once (not off the loop): j's own output will do */
    bool now = !wqueue_off_loop(&h->jobq);

    if (w == NULL || (!now && (w->j = jobw_copy(j)) == NULL)) {
        free(w);
        log_error("job %s: cannot record its result: out of memory", j->id);
        if (recorded != NULL) {
            recorded(arg, j);
        }
        return;
    }
    w->kind = JOBW_FINISH;
    w->res = now ? j : w->j;
    snprintf(w->id, sizeof(w->id), "%s", j->id);
    snprintf(w->skip, sizeof(w->skip), "%s",
             skip_batch != NULL ? skip_batch : "");
    w->pickup = pickup;
    w->recorded = recorded;
    w->arg = arg;
    if (now) {
        (void)jobw_now(h, w);
        jobw_free(&w->q);
        return;
    }
    (void)jobw_put(h, w, true);
}

void hub_job_record_unrecoverable(struct hub *h, const char *id,
                                  const char *why)
{
    struct jobw_item *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        log_error("job %s: cannot record that it is not recoverable", id);
        return;
    }
    w->kind = JOBW_UNRECOVERABLE;
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->has_why = why != NULL;
    snprintf(w->why, sizeof(w->why), "%s", why != NULL ? why : "");
    (void)jobw_put(h, w, true);
}
