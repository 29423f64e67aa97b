/*
 * GET /api/v1/jobs/{id}/stream (docs/api.md "Watching a job"): a job's
 * output pushed as it arrives, as server-sent events (text/event-stream):
 *
 *   event: job      data: the job (as GET /jobs/{id}, without output)
 *   event: output   data: {"stream": "stdout"|"stderr", "offset": N,
 *                          "text": "..."}
 *   event: end      data: the job as it ended (without output)
 *
 * then the server closes the connection. A job that runs on this node is
 * followed through the hub (hub_watch_*): the connection pulls the next
 * slice of the job's own buffers when it can write, so a client that
 * reads slowly (or never) makes the server hold nothing but two offsets.
 * A job that ended already, or runs on another node of a cluster, is
 * followed through the store instead (its output recorded every 250 ms,
 * less often once large: hub_job.c),
 * read every HTTP_SSE_POLL_MS and only after the last read was written.
 *
 * On a database server the store work is off the loop (docs/store.md
 * "Jobs off the loop"): the route is RT, its token check, the job's read
 * and the scope check run on the API's worker (the handler with
 * req->on_worker), and its loop part (http_then_jobs_stream) turns the
 * waiting connection into the stream; a stream that follows the store
 * reads it on a store worker of its own (http_sse_reads: one connection,
 * one read in flight per stream), never on the loop. On SQLite the
 * handler does it all on the loop, and the reads run in line.
 *
 * A connection that cannot write for HTTP_SSE_STALL_MS (the client reads
 * nothing) is closed; at most HTTP_SSE_MAX streams are open at once (503
 * beyond), and at most HTTP_SSE_PER_USER of them for one user, however
 * many tokens that user holds (429 beyond): one token holder cannot take
 * every stream of the node. A comment line every HTTP_SSE_KEEPALIVE_MS keeps
 * proxies from closing a quiet stream.
 */
#include "http/http_internal.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/admin_job.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "http/http_web.h"
#include "store/jobs.h"
#include "store/store_worker.h"

#define HTTP_SSE_MAX 256
#define HTTP_SSE_PER_USER 32
#define HTTP_SSE_SLICE 16384 /* output bytes per event */
#define HTTP_SSE_POLL_MS 500
#define HTTP_SSE_KEEPALIVE_MS 15000
#define HTTP_SSE_STALL_MS 60000

struct http_sse {
    struct http *h;
    struct http_sse *next, *prev; /* every open stream */
    char user[STORE_ID_MAX + 1];  /* whose */
    struct lws *wsi;
    char id[STORE_ID_MAX + 1]; /* the job's */
    json_t *job;               /* the job as it started (no output) */
    struct http_sse_read *rd;  /* the store read in flight, or NULL */
    struct hub_watch *w;       /* NULL: no hub on this node */
    bool headers_sent, began, ended, closing;
    /* the event being written */
    char *ev;
    size_t ev_len, ev_off;
    /* followed through the store: bytes already sent, and the last
     * read's new bytes not yet sent */
    size_t off[2];
    uint8_t *held[2];
    size_t held_len[2], held_off[2];
    json_t *end; /* the final job, when the store says it ended */
    uint64_t timer;
    int64_t last_write_ms, last_ka_ms;
};

/* A read of the store for a stream (http_sse_read_store): on the
 * worker, the output beyond what was sent. */
struct http_sse_read {
    struct store_work job; /* first: the worker's */
    struct http_sse *s;    /* NULL once the stream went */
    char id[STORE_ID_MAX + 1];
    size_t off[2];
    int r;
    struct store_job j;
};

static size_t http_nsse;
static struct http_sse *http_sse_all;
/* the streams' store reads (one connection: a read per 500 ms per stream
 * that follows the store is light); made by the first read */
static struct store_worker *http_sse_reads;

/* Streams open for user `id`. */
static size_t http_sse_of_user(const char *id)
{
    size_t n = 0;

    for (const struct http_sse *s = http_sse_all; s != NULL; s = s->next) {
        n += strcmp(s->user, id) == 0;
    }
    return n;
}

static int64_t http_sse_now_ms(void)
{
    return util_mono_ms();
}

static void http_sse_want(struct http_sse *s)
{
    if (s->wsi != NULL && !s->closing) {
        lws_callback_on_writable(s->wsi);
    }
}

static void http_sse_wake(void *arg)
{
    http_sse_want(arg);
}

/* How much of p[0..n) ends on a whole UTF-8 character (an incomplete
 * sequence at the end waits for its next bytes). */
static size_t http_sse_utf8_cut(const uint8_t *p, size_t n)
{
    size_t i = n, need;

    for (size_t k = 0; k < 3 && i > 0; k++) {
        uint8_t c = p[i - 1];
        if ((c & 0xc0) != 0x80) {
            break;
        }
        i--;
    }
    if (i == 0) {
        return n;
    }
    {
        uint8_t c = p[i - 1];
        need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    }
    /* the lead byte at i-1 and n-i continuation bytes after it */
    return need > 1 && n - (i - 1) < need ? i - 1 : n;
}

/* Makes "event: NAME\ndata: JSON\n\n" the event to write (steals d). */
static bool http_sse_event(struct http_sse *s, const char *name, json_t *d)
{
    char *txt = d != NULL ? json_dumps(d, JSON_COMPACT) : NULL;
    size_t n;

    json_decref(d);
    if (txt == NULL) {
        return false;
    }
    n = strlen(name) + strlen(txt) + 32;
    if ((s->ev = malloc(n)) == NULL) {
        free(txt);
        return false;
    }
    s->ev_len =
        (size_t)snprintf(s->ev, n, "event: %s\ndata: %s\n\n", name, txt);
    s->ev_off = 0;
    free(txt);
    return true;
}

static bool http_sse_output(struct http_sse *s, int stream, size_t offset,
                            const uint8_t *p, size_t n)
{
    return http_sse_event(s, "output",
                          json_pack("{s:s, s:I, s:o}", "stream",
                                    stream == 1 ? "stdout" : "stderr", "offset",
                                    (json_int_t)offset, "text",
                                    admin_job_text(p, n)));
}

/* The job as the hub saw it end. */
static json_t *http_sse_end_json(const struct http_sse *s,
                                 const struct hub_job_result *r)
{
    json_t *o = json_deep_copy(s->job);

    if (o == NULL) {
        o = json_object();
    }

    json_object_set_new(o, "status", json_string(r->status));
    json_object_set_new(o, "exit_code",
                        r->exit_code >= 0 ? json_integer(r->exit_code)
                                          : json_null());
    json_object_set_new(o, "signal",
                        r->signal > 0 ? json_integer(r->signal) : json_null());
    json_object_set_new(o, "why", json_string(r->why != NULL ? r->why : ""));
    json_object_set_new(o, "finished", admin_json_time(util_now()));
    return o;
}

/* The next event from the hub's buffers; false if none now. */
static bool http_sse_next_live(struct http_sse *s)
{
    struct hub_job_result r;
    bool ended = hub_watch_done(s->w, &r);

    for (int st = 1; st <= 2; st++) {
        const uint8_t *p;
        size_t n = hub_watch_peek(s->w, st, &p, HTTP_SSE_SLICE), cut;
        if (n == 0) {
            continue;
        }
        /* a character split across slices goes out whole, once its
         * last bytes came; at the end, whatever is there */
        cut = http_sse_utf8_cut(p, n);
        if (cut == 0) {
            if (!hub_watch_job_ended(s->w)) {
                continue;
            }
            cut = n;
        }
        if (!http_sse_output(s, st, s->off[st - 1], p, cut)) {
            return false;
        }
        hub_watch_take(s->w, st, cut);
        s->off[st - 1] += cut;
        return true;
    }
    if (ended) {
        s->ended = true;
        return http_sse_event(s, "end", http_sse_end_json(s, &r));
    }
    return false;
}

/* The next event from the last store read; false if none now. */
static bool http_sse_next_stored(struct http_sse *s)
{
    for (int i = 0; i < 2; i++) {
        size_t n = s->held_len[i] - s->held_off[i];
        if (n == 0) {
            continue;
        }
        if (n > HTTP_SSE_SLICE) {
            n = http_sse_utf8_cut(s->held[i] + s->held_off[i], HTTP_SSE_SLICE);
            n = n > 0 ? n : HTTP_SSE_SLICE;
        }
        if (!http_sse_output(s, i + 1, s->off[i], s->held[i] + s->held_off[i],
                             n)) {
            return false;
        }
        s->held_off[i] += n;
        s->off[i] += n;
        if (s->held_off[i] == s->held_len[i]) {
            free(s->held[i]);
            s->held[i] = NULL;
            s->held_len[i] = s->held_off[i] = 0;
        }
        return true;
    }
    if (s->end != NULL) {
        json_t *e = s->end;
        s->end = NULL;
        s->ended = true;
        return http_sse_event(s, "end", e);
    }
    return false;
}

static bool http_sse_ended_status(const char *st)
{
    return strcmp(st, "queued") != 0 && strcmp(st, "running") != 0;
}

static void http_sse_read_work(struct store_work *w, struct store *st)
{
    struct http_sse_read *rd = (struct http_sse_read *)w;

    rd->r = store_job_get_from(st, rd->id, rd->off[0], rd->off[1], &rd->j);
}

static void http_sse_read_done(void *owner, struct store_work *w)
{
    struct http_sse_read *rd = (struct http_sse_read *)w;
    struct http_sse *s = rd->s;
    uint8_t *src[2];
    size_t len[2];

    (void)owner; /* NULL also when dropped at the stop: rd->s says */
    if (s != NULL) {
        s->rd = NULL;
    }
    /* bytes read from the offsets the stream had when the read started:
     * if it moved meanwhile (the hub's live output), they would be sent
     * at the wrong place; the next tick reads again from where it is */
    if (s != NULL && w->ran && rd->r == ERR_OK && rd->off[0] == s->off[0] &&
        rd->off[1] == s->off[1]) {
        src[0] = rd->j.out;
        src[1] = rd->j.err;
        len[0] = rd->j.out_len;
        len[1] = rd->j.err_len;
        for (int i = 0; i < 2; i++) {
            /* output only grows; a shorter one (a result that replaced a
             * fetch's) gives nothing beyond s->off[i], so nothing more */
            if (len[i] > 0 && (s->held[i] = malloc(len[i])) != NULL) {
                memcpy(s->held[i], src[i], len[i]);
                s->held_len[i] = len[i];
            }
        }
        if (http_sse_ended_status(rd->j.status)) {
            s->end = admin_job_json(&rd->j, false);
        }
        http_sse_want(s);
    }
    store_job_free_output(&rd->j);
    free(rd);
}

bool http_jobs_read(struct http *h, struct store_work *w)
{
    if (http_sse_reads == NULL &&
        (http_sse_reads = store_worker_new(
             h->loop, h->store, h->cfg->store_path, 1,
             "the job streams' store reads", &http_sse_all)) == NULL) {
        return false;
    }
    store_worker_run(http_sse_reads, w);
    return true;
}

/* Reads what the store has beyond what was sent (the job runs on another
 * node, or ended before the hub could be asked), on the streams' store
 * worker; its answer is taken by http_sse_next_stored. */
static void http_sse_read_store(struct http_sse *s)
{
    struct http_sse_read *rd;

    if (s->rd != NULL || s->held_len[0] > 0 || s->held_len[1] > 0 ||
        s->end != NULL || s->ended) {
        return;
    }
    if ((rd = calloc(1, sizeof(*rd))) == NULL) {
        return;
    }
    rd->s = s;
    snprintf(rd->id, sizeof(rd->id), "%s", s->id);
    rd->off[0] = s->off[0];
    rd->off[1] = s->off[1];
    rd->job.work = http_sse_read_work;
    rd->job.done = http_sse_read_done;
    s->rd = rd;
    /* inline (SQLite): done has run when this returns */
    if (!http_jobs_read(s->h, &rd->job)) {
        s->rd = NULL;
        free(rd);
    }
}

/* The client went away (FIN or RST) while nothing was being written:
 * libwebsockets does not watch a streaming response's socket for
 * reading, so a watcher that closed between events would keep its place
 * (and its user's share) until the next keepalive failed. */
static bool http_sse_peer_gone(struct lws *wsi)
{
    struct pollfd p = {.fd = wsi != NULL ? lws_get_socket_fd(wsi) : -1,
                       .events = POLLRDHUP};

    return p.fd >= 0 && poll(&p, 1, 0) == 1 &&
           (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void http_sse_tick(struct loop *l, void *arg)
{
    struct http_sse *s = arg;
    int64_t now = http_sse_now_ms();

    s->timer = loop_add_timer(l, HTTP_SSE_POLL_MS, http_sse_tick, s);
    if (s->closing) {
        return;
    }
    if (http_sse_peer_gone(s->wsi)) {
        s->closing = true;
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                        LWS_TO_KILL_ASYNC);
        return;
    }
    if (now - s->last_write_ms > HTTP_SSE_STALL_MS) {
        /* it reads nothing: let it go */
        log_info("http: job %s: closing a watcher that reads nothing", s->id);
        s->closing = true;
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                        LWS_TO_KILL_ASYNC);
        return;
    }
    if (s->w == NULL || !hub_watch_attached(s->w)) {
        http_sse_read_store(s);
    }
    http_sse_want(s);
}

int http_sse_writeable(struct http_sse *s, struct lws *wsi)
{
    unsigned char buf[LWS_PRE + HTTP_SSE_SLICE * 6 + 256];
    unsigned char *start = buf + LWS_PRE, *p = start;
    unsigned char *end = buf + sizeof(buf) - 1;
    int64_t now = http_sse_now_ms();

    if (s->closing) {
        return -1;
    }
    if (!s->headers_sent) {
        if (lws_add_http_common_headers(wsi, 200, "text/event-stream",
                                        LWS_ILLEGAL_HTTP_CONTENT_LEN, &p,
                                        end) ||
            lws_add_http_header_by_name(
                wsi, (const unsigned char *)"cache-control:",
                (const unsigned char *)"no-store", 8, &p, end) ||
            lws_add_http_header_by_name(
                wsi, (const unsigned char *)"x-accel-buffering:",
                (const unsigned char *)"no", 2, &p, end) ||
            http_web_security_headers(wsi, false, &p, end) ||
            lws_finalize_write_http_header(wsi, start, &p, end)) {
            return -1;
        }
        s->headers_sent = true;
        s->last_write_ms = now;
        /* no idle timeout: the stream lasts as long as the job */
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        http_sse_want(s);
        return 0;
    }
    if (s->ev == NULL) {
        bool got;
        if (!s->began) {
            s->began = true;
            got = http_sse_event(s, "job", json_incref(s->job));
        } else if (s->ended) {
            return 1; /* all written */
        } else if (s->w != NULL && hub_watch_attached(s->w)) {
            got = http_sse_next_live(s);
        } else {
            got = http_sse_next_stored(s);
        }
        if (!got) {
            if (now - s->last_ka_ms < HTTP_SSE_KEEPALIVE_MS) {
                s->last_write_ms = now; /* nothing to send is not a stall */
                return 0;
            }
            if ((s->ev = strdup(": keepalive\n\n")) == NULL) {
                return -1;
            }
            s->ev_len = strlen(s->ev);
            s->ev_off = 0;
        }
    }
    {
        size_t n = s->ev_len - s->ev_off;
        if (n > sizeof(buf) - LWS_PRE - 1) {
            n = sizeof(buf) - LWS_PRE - 1;
        }
        memcpy(start, s->ev + s->ev_off, n);
        if (lws_write(wsi, start, n, LWS_WRITE_HTTP) != (int)n) {
            return -1;
        }
        s->ev_off += n;
        s->last_write_ms = s->last_ka_ms = now;
        if (s->ev_off == s->ev_len) {
            free(s->ev);
            s->ev = NULL;
        }
    }
    http_sse_want(s);
    return 0;
}

void http_sse_free(struct http_sse *s)
{
    if (s == NULL) {
        return;
    }
    if (s->timer != 0) {
        loop_del_timer(s->h->loop, s->timer);
    }
    hub_watch_free(s->w);
    free(s->ev);
    free(s->held[0]);
    free(s->held[1]);
    json_decref(s->end);
    json_decref(s->job);
    if (s->rd != NULL) {
        s->rd->s = NULL; /* its answer finds no one */
    }
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        http_sse_all = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    http_nsse--;
    free(s);
}

/* The stream for req's connection (real: the request on the loop whose
 * connection it is; req itself on the loop) of the job shown by job
 * (a reference taken). An error is set on req. */
static int http_sse_open(struct http_req *req, struct http_req *real,
                         json_t *job)
{
    struct http *h = req->h;
    const char *id = json_string_value(json_object_get(job, "id"));
    const char *status = json_string_value(json_object_get(job, "status"));
    struct http_sse *s;

    if (id == NULL || status == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "the job has no ID");
    }
    if (http_sse_of_user(req->auth.user.id) >= HTTP_SSE_PER_USER) {
        return http_error(req, 429, "too_many_streams", "Too many streams",
                          "you have %d job streams open already (at most "
                          "%d per user); close one first",
                          HTTP_SSE_PER_USER, HTTP_SSE_PER_USER);
    }
    if (http_nsse >= HTTP_SSE_MAX || (s = calloc(1, sizeof(*s))) == NULL) {
        return http_error(req, 503, "server_busy", "Server busy",
                          "too many job streams open (at most %d); try again "
                          "shortly",
                          HTTP_SSE_MAX);
    }
    http_nsse++;
    s->h = h;
    snprintf(s->user, sizeof(s->user), "%s", req->auth.user.id);
    if ((s->next = http_sse_all) != NULL) {
        s->next->prev = s;
    }
    http_sse_all = s;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->job = json_incref(job);
    s->last_write_ms = s->last_ka_ms = http_sse_now_ms();
    if (h->hub != NULL && !http_sse_ended_status(status) &&
        (s->w = hub_watch_job(h->hub, s->id, http_sse_wake, s)) == NULL) {
        http_sse_free(s);
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    s->timer = loop_add_timer(h->loop, HTTP_SSE_POLL_MS, http_sse_tick, s);
    if (real != req) {
        http_undefer(real);
    }
    if (http_conn_stream(real, s) != ERR_OK) {
        http_sse_free(s);
        if (real != req) {
            /* undeferred above: the worker's copy no longer answers it */
            http_error(real, 500, "internal", "Internal error",
                       "cannot stream");
            http_resume(real);
        }
        return http_error(req, 500, "internal", "Internal error",
                          "cannot stream");
    }
    s->wsi = http_conn_wsi(real);
    if (s->w == NULL || !hub_watch_attached(s->w)) {
        http_sse_read_store(s);
    }
    log_info("http: %s watches job %s", req->auth.user.name, s->id);
    return 0;
}

int http_h_jobs_stream(struct http_req *req)
{
    struct store_job *j;
    json_t *job;
    int r;

    if ((j = http_job_read(req, &r)) == NULL) {
        return r;
    }
    /* the output is followed from byte 0, by the hub or the store */
    store_job_free_output(j);
    job = admin_job_json(j, false);
    free(j);
    if (req->method == HM_HEAD) {
        json_decref(job);
        req->raw_type = "text/event-stream";
        return http_ok(req, 200, json_object(), NULL);
    }
    if (req->on_worker) {
        /* the loop part opens the stream (http_then_jobs_stream) */
        return http_ok(req, 200, job, NULL);
    }
    r = http_sse_open(req, req, job);
    json_decref(job);
    return r;
}

void http_then_jobs_stream(struct http *h, struct http_req *req)
{
    struct http_req *real;

    if (req->status != 200 || req->method == HM_HEAD || req->data == NULL) {
        return;
    }
    if (req->deferred == 0 ||
        (real = http_deferred(h, req->deferred)) == NULL) {
        return; /* its client went, or was answered at the deadline */
    }
    (void)http_sse_open(req, real, req->data);
    if (req->status == 200) {
        req->later = true; /* its connection is the stream now */
    }
}

void http_sse_stop(void)
{
    (void)store_worker_stop(http_sse_reads, 200);
    http_sse_reads = NULL;
}
