/*
 * The API's store work off the main loop: its reads and its changes
 * (issue 18; docs/store.md "The API off the loop").
 *
 * On PostgreSQL every statement the loop makes waits for the database:
 * one that is slow, holds a lock another node took, or stopped answering
 * held the whole loop (agents, tunnels, logins' monitor traffic, the web
 * UI) for up to the statement deadline, 3 s, per statement, and the
 * API's requests (/healthz, the report, the lists the web UI polls, the
 * changes, and the token check before each) were most of the statements
 * the loop still made.
 *
 * A route whose work is the store's is marked off_loop in the route
 * table (http_routes.c, RS, RW, RT). On a database server such a
 * request, once its route is found, is copied into a job for a
 * store_worker of the API's own (HTTP_OFF_CONNS connections): the rest of
 * its dispatch (the token check, the body and query, the permission, the
 * handler, the audit event: every store call of it) runs on a worker
 * thread with req->store one of those connections; its answer is moved
 * into the request on the loop and sent (http_defer / http_resume: the
 * request is found again by its ID, so a client that went meanwhile
 * costs nothing but the work; its job is dropped unrun if it had not
 * started). Handlers of such routes touch no state of the loop's; what
 * GET /metrics shows of it is copied into the request before
 * (req->seen).
 *
 * A change the loop's live state must hear of (the hub: a deleted
 * credential's agents, tunnels' listeners) is split: the store part on
 * the worker (the admin layer gets no hub there: http_admin_ctx), the
 * route's then on the loop in http_off_done, once the work ran, before
 * the answer is sent and also when its client went or was answered at
 * the deadline: a change is made with its loop part or, dropped unrun,
 * not at all.
 *
 * Read-after-write: the report rows' and the audit log's writes are
 * queued on the loop and made by writers of the main store's
 * (store_session_async.c, store_audit.c), so a read on another
 * connection could overtake them (a session the server ended answered as
 * still open). A request therefore waits, on the loop and before its job
 * is queued, while one of those writers has work (store_worker_writing),
 * at most HTTP_OFF_GATE_MS: what was queued before the request is then
 * written. A writer that is failing holds no job between its retries, so
 * a read during an outage does not wait for it (the report read on the
 * main store's connection did not either: store_rows_flush).
 *
 * Bounds (an attacker with a token firing slow requests): at most
 * HTTP_OFF_CONNS requests run and HTTP_OFF_WAITING more wait; past that
 * a request is answered 503 store_busy with Retry-After at once, and a
 * request's answer comes at the statement deadline at the latest (503
 * store_unavailable) even when its statement does not come back (a
 * stopped server: a worker's own connection has no deadline, db_pg.c).
 * While every connection is held by such a statement, requests are
 * answered 503 store_unavailable at once rather than queued behind it.
 * The web UI's files, agents and tunnels never use these connections,
 * so none of this delays them; the worker threads are reserved beside
 * the other store workers' (monitor.c). Logins' store steps share them
 * (and their bounds) with the rest of the API, as every request's token
 * check does.
 *
 * Routes whose state is the loop's (second round): a handler on the
 * loop hands its store steps off with http_off_hand (work on a worker,
 * then on the loop, always once) and keeps its books between them: the
 * login (its lockouts and password pool), GET /pair/CODE (the codes). A
 * route's then may keep its request waiting (req->later) and answer it
 * itself by its ID (a peer's check, the login's password). A request
 * with no connection (the browser terminal's GET /me) is taken with a
 * callback (req->off_answer) instead of http_defer; its owner going
 * first says so (http_off_forget).
 *
 * SQLite (a local file, no server to wait for) keeps every route on the
 * loop: the worker is inline there (store_worker.h) and http_off_take
 * declines.
 *
 * Threads: everything here runs on the loop's thread but the job's work,
 * which touches only its own copy of the request (and req->h's fields
 * that never change: cfg, key) and its connection.
 */
#include "http/http_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/store_worker.h"

#define HTTP_OFF_GATE_MS 1000     /* at most, for the store's writers */
#define HTTP_OFF_TICK_MS 5        /* how often a waiting request looks */
#define HTTP_OFF_DEADLINE_MS 3000 /* [store] statement_deadline_ms unset */
#define HTTP_OFF_RETRY_S 1        /* Retry-After of a 503 */

struct http_off_job {
    struct store_work job; /* first: the worker's */
    struct http_off *off;  /* NULL once the API stopped */
    uint64_t id;           /* the request (http_deferred) */
    struct http_req req;   /* the worker's copy */
    char *authz, *body;    /* its copies of the header and body */
    int64_t gate_until;    /* > 0: waits for the writers until then */
    int64_t until;         /* its answer is due then */
    bool queued;           /* given to the worker */
    bool started;          /* its work began (or will at once) */
    bool stuck;            /* started, past its deadline, not back */
    bool probe;            /* the one request let through while off->down */
    bool down;             /* its connection found the database unreachable */
    /* a request with no connection (the browser terminal's token check):
     * its answer goes to cb(cb_arg, answer) on the loop, once; cb_arg
     * NULL once it went (http_off_forget) or was answered */
    void (*cb)(void *arg, struct http_req *answer);
    void *cb_arg;
    /* a handler's own store work (http_off_hand): work on the worker,
     * then on the loop, always once; ctx theirs (free() at a stop) */
    http_off_work_fn work;
    http_off_then_fn then;
    void *ctx;
    void (*ctx_free)(void *ctx);
    /* in off->jobs; its timer: the writers' gate's tick, then its
     * deadline */
    struct http_waiter waiter;
};

struct http_off {
    struct http *h;
    struct store_worker *w;
    struct http_waiters jobs; /* every job whose done has not run */
    unsigned stuck;           /* of them with stuck */
    int deadline_ms;
    /* the database did not answer (a read past its deadline, or no
     * connection): requests are answered 503 at once, but for one at a
     * time (the probe) that finds out whether it answers again */
    bool down, probing;
};

static void http_off_job_free(struct http_off_job *o)
{
    if (o->ctx != NULL) { /* the API stopped before its then ran */
        o->ctx_free(o->ctx);
    }
    http_req_clear(&o->req);
    if (o->authz != NULL) {
        sodium_memzero(o->authz, strlen(o->authz));
        free(o->authz);
    }
    if (o->body != NULL) {
        sodium_memzero(o->body, o->req.body_len);
        free(o->body);
    }
    free(o);
}

static void http_off_unlink(struct http_off *off, struct http_off_job *o)
{
    http_waiter_unlink(&o->waiter);
    if (o->stuck) {
        off->stuck--;
    }
}

static int http_off_unavailable(struct http_req *req)
{
    req->retry_after = HTTP_OFF_RETRY_S;
    return http_error(req, 503, "store_unavailable", "Database unavailable",
                      "the access server cannot reach its database; try "
                      "again in a moment");
}

/* On the worker thread: the rest of the dispatch on the job's
 * connection. */
static void http_off_work(struct store_work *j, struct store *st)
{
    struct http_off_job *o = (struct http_off_job *)j;

    o->req.store = st;
    o->req.on_worker = true;
    if (o->work != NULL) {
        o->work(&o->req, st, o->ctx);
    } else {
        http_dispatch_route(&o->req);
    }
    o->down = store_unreachable(st);
}

/* Whether someone still waits for o's answer: its deferred request (its
 * client is there and was not answered at the deadline), or its
 * callback's owner. */
static bool http_off_awaited(struct http_off *off, struct http_off_job *o)
{
    return o->cb != NULL ? o->cb_arg != NULL
                         : http_deferred(off->h, o->id) != NULL;
}

/* A callback's answer at once (its deadline): a copy of its own, since
 * the job's may be in a worker's hands still. */
static void http_off_cb_error(struct http_off_job *o, const char *detail)
{
    struct http_req *tmp = calloc(1, sizeof(*tmp));
    void *arg = o->cb_arg;

    o->cb_arg = NULL;
    if (tmp == NULL) {
        return; /* out of memory: the terminal's own timer ends it */
    }
    tmp->h = o->req.h;
    tmp->route = o->req.route;
    http_error(tmp, 503, "store_unavailable", "Database unavailable", "%s",
               detail);
    tmp->retry_after = HTTP_OFF_RETRY_S;
    o->cb(arg, tmp);
    http_req_clear(tmp);
    free(tmp);
}

/* On the loop, before the job starts: not if its request went (or was
 * answered at its deadline) meanwhile. */
static bool http_off_wanted(void *owner, const struct store_work *j)
{
    struct http_off *off = owner;
    struct http_off_job *o = (struct http_off_job *)(uintptr_t)j;

    if (off == NULL || !http_off_awaited(off, o)) {
        return false;
    }
    o->started = true;
    return true;
}

/* On the loop: the job's answer moved into its request, and sent. */
static void http_off_answer(struct http_req *req, struct http_off_job *o)
{
    struct http_req *w = &o->req;

    json_decref(req->data);
    json_decref(req->meta);
    json_decref(req->errors);
    free(req->raw);
    req->data = w->data;
    req->meta = w->meta;
    req->errors = w->errors;
    req->raw = w->raw;
    w->data = w->meta = w->errors = NULL;
    w->raw = NULL;
    req->raw_len = w->raw_len;
    req->raw_type = w->raw_type;
    req->status = w->status;
    req->www_auth = w->www_auth;
    req->delay_ms = w->delay_ms;
    req->retry_after = w->retry_after;
    memcpy(req->allow, w->allow, sizeof(req->allow));
    req->auth = w->auth;
    if (!o->job.ran) { /* no connection to the database */
        json_decref(req->data);
        req->data = NULL;
        http_off_unavailable(req);
    } else if (req->status == 503 && req->retry_after == 0) {
        req->retry_after = HTTP_OFF_RETRY_S;
    }
    http_resume(req);
}

/* The database did not answer: a read met its deadline (stuck) or found
 * no connection. Said once, until it answers again. */
static void http_off_down(struct http_off *off, bool deadline)
{
    if (!off->down && deadline) {
        log_warn("http: the database did not answer a store call of the "
                 "API within %d ms ([store] statement_deadline_ms); the API "
                 "answers 503 until it does",
                 off->deadline_ms);
    } else if (!off->down) {
        log_warn("http: the database is unreachable for the API's store "
                 "calls; the API answers 503 until it answers");
    }
    off->down = true;
}

static void http_off_done(void *owner, struct store_work *j)
{
    struct http_off_job *o = (struct http_off_job *)j;
    struct http_off *off = o->off;
    struct http_req *req;

    (void)owner; /* NULL also for a job dropped unrun: o->off says */
    if (off != NULL) {
        if (o->stuck) {
            log_info("http: a store call the database held past its "
                     "deadline came back");
        }
        http_off_unlink(off, o);
        off->h->m.api_auth_failures += o->req.auth_failures;
        if (o->probe) {
            off->probing = false;
        }
        if (o->started && (!o->job.ran || o->down)) {
            http_off_down(off, false);
        } else if (o->started && !o->stuck && off->down) {
            off->down = false;
            log_info("http: the database answers the API's store calls "
                     "again");
        }
        req = o->cb != NULL ? NULL : http_deferred(off->h, o->id);
        /* a loop part may go on with the request later (w->later) */
        o->req.deferred = req != NULL ? o->id : 0;
        if (o->then != NULL) {
            /* a handler's own: always, with what it needs to know */
            o->then(off->h, &o->req, req, o->ctx, o->job.ran);
            o->ctx = NULL;
        } else if (o->job.ran && o->req.handled && o->req.route->then != NULL &&
                   (o->req.status < 400 || o->req.status >= 500)) {
            /* the loop part of a change, once its work ran: also when
             * its client went or was answered at the deadline. Only for
             * a request its handler took (the token and the permission
             * passed: an unauthenticated client must not make the hub
             * re-read the store, per agent, on the loop) and not refused
             * by it (4xx: nothing changed); a 5xx may follow a change
             * (its audit row failed), and the hub's re-read is harmless
             * when none was. */
            o->req.route->then(off->h, &o->req);
        }
        if (o->cb != NULL && o->cb_arg != NULL) {
            void *arg = o->cb_arg;

            o->cb_arg = NULL;
            if (!o->job.ran) {
                http_off_unavailable(&o->req);
            }
            o->cb(arg, &o->req);
        } else if (req != NULL && !o->req.later &&
                   http_deferred(off->h, o->id) == req) {
            http_off_answer(req, o);
        }
    }
    http_off_job_free(o);
}

static void http_off_on_timer(void *arg);

/* Gives o to the worker; its answer is due at o->until. o may be gone
 * when this returns (a job run inline). */
static void http_off_queue(struct http_off *off, struct http_off_job *o)
{
    int64_t left = o->until - util_mono_ms();

    o->gate_until = 0;
    o->queued = true;
    (void)http_waiter_arm(&o->waiter, off->h->loop, left > 0 ? left : 0,
                          http_off_on_timer);
    o->job.work = http_off_work;
    o->job.done = http_off_done;
    o->job.wanted = http_off_wanted;
    store_worker_run(off->w, &o->job);
}

static void http_off_on_timer(void *arg)
{
    struct http_off_job *o = arg;
    struct http_off *off = o->off;
    struct http_req *req = o->cb != NULL ? NULL : http_deferred(off->h, o->id);

    if (!o->queued) { /* waiting for the store's writers */
        if (!http_off_awaited(off, o)) {
            http_off_unlink(off, o); /* its client went */
            http_off_job_free(o);
            return;
        }
        if (o->req.route->off_loop == HTTP_OFF_WRITES &&
            store_worker_writing(off->h->store) &&
            util_mono_ms() < o->gate_until &&
            http_waiter_arm(&o->waiter, off->h->loop, HTTP_OFF_TICK_MS,
                            http_off_on_timer)) {
            return;
        }
        http_off_queue(off, o);
        return;
    }
    /* its deadline: answered now, whatever comes back later */
    if (o->started && !o->stuck) {
        o->stuck = true;
        off->stuck++;
        http_off_down(off, true);
    }
    if (req != NULL) {
        /* a change that started may still be made (a statement is not
         * taken back from a server that does not answer; then its loop
         * part runs too); one that had not is dropped unrun (wanted) */
        http_error(req, 503, "store_unavailable", "Database unavailable",
                   "the access server's database did not answer in time; "
                   "%s",
                   req->method == HM_GET || req->method == HM_HEAD ||
                           o->work != NULL /* a handler's step: its then
                                              minds the rest (a login) */
                       ? "try again in a moment"
                       : o->started ? "the change may still be made: look "
                                      "before trying again"
                                    : "the change was not made; try again in a "
                                      "moment");
        req->retry_after = HTTP_OFF_RETRY_S;
        http_resume(req);
    } else if (o->cb != NULL && o->cb_arg != NULL) {
        http_off_cb_error(o, "the access server's database did not answer "
                             "in time; try again in a moment");
    }
}

/* What http_off_take and http_off_hand share: req copied into a job and
 * handed to the worker, or answered at once (true; *o NULL); false: no
 * memory, run it here. */
static bool http_off_start(struct http_req *req, struct http_off_job **out)
{
    struct http *h = req->h;
    struct http_off *off = h->off;
    struct http_off_job *o;

    *out = NULL;
    if (off->stuck >= HTTP_OFF_CONNS || (off->down && off->probing)) {
        /* every connection waits for a database that does not answer,
         * or it did not answer and a probe is out: queued, this would
         * only wait for its deadline */
        http_off_unavailable(req);
        return true;
    }
    if (off->jobs.n >= HTTP_OFF_CONNS + HTTP_OFF_WAITING) {
        req->retry_after = HTTP_OFF_RETRY_S;
        http_error(req, 503, "store_busy", "Busy",
                   "too many requests wait for the database; try again in "
                   "a moment");
        return true;
    }
    if ((o = calloc(1, sizeof(*o))) == NULL) {
        return false;
    }
    o->req = *req;
    /* a handler's request holds its body parsed, and maybe an answer
     * begun; the copy gets a body of its own (a worker thread must not
     * share JSON references with the loop) and no answer */
    o->req.body = o->req.data = o->req.meta = o->req.errors = NULL;
    o->req.raw = NULL;
    o->req.conn = NULL;
    o->req.deferred = 0;
    o->req.store = NULL;
    o->req.authorization = NULL;
    o->req.body_data = "";
    o->req.later = false;
    if (req->body != NULL &&
        (o->req.body = json_deep_copy(req->body)) == NULL) {
        http_off_job_free(o);
        return false;
    }
    if (req->authorization != NULL &&
        (o->authz = strdup(req->authorization)) == NULL) {
        http_off_job_free(o);
        return false;
    }
    o->req.authorization = o->authz;
    if (req->body_len > 0) {
        if ((o->body = malloc(req->body_len + 1)) == NULL) {
            http_off_job_free(o);
            return false;
        }
        memcpy(o->body, req->body_data, req->body_len);
        o->body[req->body_len] = '\0';
        o->req.body_data = o->body;
    }
    *out = o;
    return true;
}

/* o (from http_off_start) into the API's list, its answer due at the
 * deadline. */
static void http_off_add(struct http_off *off, struct http_off_job *o)
{
    o->off = off;
    if (off->down) {
        o->probe = off->probing = true;
    }
    http_waiter_link(&off->jobs, &o->waiter, o);
    o->until = util_mono_ms() + off->deadline_ms;
}

bool http_off_take(struct http_req *req)
{
    struct http *h = req->h;
    struct http_off *off = h->off;
    struct http_off_job *o;

    if (off == NULL || !store_worker_async(off->w) ||
        (req->conn == NULL && req->off_answer == NULL)) {
        return false;
    }
    if (!http_off_start(req, &o)) {
        return false;
    }
    if (o == NULL) {
        return true; /* answered at once */
    }
    if (req->conn == NULL) {
        /* no connection to answer later on: the caller's callback */
        o->cb = req->off_answer;
        o->cb_arg = req->off_arg;
        req->later = true;
    } else if (http_defer(req, &o->id) != ERR_OK) {
        http_off_job_free(o);
        return false;
    }
    http_off_add(off, o);
    if (req->route->off_loop == HTTP_OFF_WRITES &&
        store_worker_writing(h->store)) {
        o->gate_until = util_mono_ms() + HTTP_OFF_GATE_MS;
        if (http_waiter_arm(&o->waiter, h->loop, HTTP_OFF_TICK_MS,
                            http_off_on_timer)) {
            return true;
        }
    }
    http_off_queue(off, o);
    return true;
}

bool http_off_hand(struct http_req *req, http_off_work_fn work,
                   http_off_then_fn then, void *ctx, void (*ctx_free)(void *))
{
    struct http *h = req->h;
    struct http_off *off = h->off;
    struct http_off_job *o = NULL;

    if (off == NULL || !store_worker_async(off->w) || req->conn == NULL ||
        !http_off_start(req, &o)) {
        /* SQLite (or no memory): in line, as on the worker */
        work(req, req->store, ctx);
        then(h, req, req, ctx, true);
        return false;
    }
    if (o == NULL) { /* answered 503 at once */
        then(h, req, req, ctx, false);
        return false;
    }
    if (req->deferred != 0) {
        o->id = req->deferred; /* a later step of a request waiting */
    } else if (http_defer(req, &o->id) != ERR_OK) {
        http_off_job_free(o);
        work(req, req->store, ctx);
        then(h, req, req, ctx, true);
        return false;
    }
    o->work = work;
    o->then = then;
    o->ctx = ctx;
    o->ctx_free = ctx_free;
    http_off_add(off, o);
    http_off_queue(off, o);
    return true;
}

void http_off_forget(struct http *h, void *arg)
{
    struct http_waiter *wr;

    if (h == NULL || h->off == NULL) {
        return;
    }
    for (wr = h->off->jobs.first; wr != NULL; wr = wr->next) {
        struct http_off_job *o = wr->owner;

        if (o->cb != NULL && o->cb_arg == arg) {
            o->cb_arg = NULL;
        }
    }
}

int http_off_new(struct http *h)
{
    struct http_off *off = calloc(1, sizeof(*off));

    if (off == NULL) {
        return ERR_NOMEM;
    }
    off->h = h;
    off->deadline_ms = h->cfg->store_statement_deadline_ms > 0
                           ? h->cfg->store_statement_deadline_ms
                           : HTTP_OFF_DEADLINE_MS;
    off->w = store_worker_new(h->loop, h->store, h->cfg->store_path,
                              HTTP_OFF_CONNS, "the API's store work", off);
    if (off->w == NULL) {
        free(off);
        return ERR_NOMEM;
    }
    h->off = off;
    return ERR_OK;
}

/* A job at the API's stop: one given to the worker is freed by its done
 * (which only frees it now); one waiting for the writers, now. */
static void http_off_let_go(void *arg)
{
    struct http_off_job *o = arg;

    o->off = NULL;
    if (!o->queued) {
        http_off_job_free(o);
    }
}

void http_off_free(struct http *h)
{
    struct http_off *off = h != NULL ? h->off : NULL;

    if (off == NULL) {
        return;
    }
    http_waiters_forget(&off->jobs, http_off_let_go);
    (void)store_worker_stop(off->w, 200);
    free(off);
    h->off = NULL;
}
