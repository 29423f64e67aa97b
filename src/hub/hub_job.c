/*
 * Jobs (hub.h, docs/agent-protocol.md §6): a command or script sent to an
 * agent on a direct-tcpip channel to the reserved host "job@portcullis".
 * The hub's stream machinery carries it: the request line is written into
 * one end of a socketpair before the stream opens (it fits the socket
 * buffer), the other end goes to hub_connect(). The agent answers with
 * frames (job_msg.h): output as it arrives, then the result. Once the
 * result is recorded the hub writes "ack\n" and EOF, and the agent drops
 * the copy it kept.
 */
#include "hub/hub_internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "hub/job_msg.h"
#include "store/jobs.h"
#include "store/store_worker.h"

#define HUB_JOB_DEST "job@portcullis"
#define HUB_JOB_GRACE_MS 30000 /* past the timeout, for the result */
/* live output to the store: at most this often. Each write appends only
 * the bytes since the last one (hub_jobw.c), so its cost does not grow
 * with the output already stored. */
#define HUB_JOB_PROGRESS_MS 250

_Static_assert(JOB_MSG_OUT_MAX == JOB_OUT_MAX,
               "the store keeps what the agent may send of a stream");

struct hub_job_buf {
    uint8_t *p;
    size_t len, cap;
};

/* A job's output, shared by the job and its watchers (hub.h); freed
 * with the last of them. */
struct hub_job_live {
    int refs;
    struct hub *h;
    char id[STORE_ID_MAX + 1];
    struct hub_job_buf out, err;
    bool listed; /* in h->jobs_live (while the job runs) */
    bool ended;
    char status[JOB_MSG_STATUS_MAX + 1];
    int exit_code, signal;
    char why[JOB_MSG_WHY_MAX + 1];
    struct hub_watch *watchers;
    struct hub_job_live *next;
};

struct hub_watch {
    struct hub *h;
    char id[STORE_ID_MAX + 1];
    struct hub_job_live *live; /* NULL: waiting in h->watch_waiting */
    size_t off[2];             /* stdout, stderr bytes taken */
    hub_watch_fn fn;
    void *arg;
    struct hub_watch *next;
};

struct hub_job {
    struct hub *h;
    struct loop *loop;
    int fd;
    uint64_t timer, progress_timer;
    bool fetch;
    bool sudo; /* asked for sudo: the result must say it was understood */
    struct job_msg msg;
    struct hub_job_live *live; /* out and err */
    bool dirty;                /* output since the last progress call */
    bool save;                 /* the live output goes to the store */
    size_t saved[2];           /* what of stdout, stderr went so far */
    /* what is still to send after the request line (a pushed file) */
    uint8_t *send;
    size_t send_len, send_off;
    hub_job_fn fn;
    void *arg;
};

static void hub_live_unref(struct hub_job_live *lv)
{
    if (--lv->refs > 0) {
        return;
    }
    free(lv->out.p);
    free(lv->err.p);
    free(lv);
}

static void hub_live_wake(struct hub_job_live *lv)
{
    for (struct hub_watch *w = lv->watchers; w != NULL; w = w->next) {
        w->fn(w->arg);
    }
}

/* The job of lv starts here: it can be watched, and the watchers that
 * waited for it follow it from now on. */
static void hub_live_list(struct hub *h, struct hub_job_live *lv)
{
    struct hub_watch **pp = &h->watch_waiting;

    lv->next = h->jobs_live;
    h->jobs_live = lv;
    lv->listed = true;
    while (*pp != NULL) {
        struct hub_watch *w = *pp;
        if (strcmp(w->id, lv->id) != 0) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->live = lv;
        lv->refs++;
        w->next = lv->watchers;
        lv->watchers = w;
    }
}

static void hub_live_unlist(struct hub *h, struct hub_job_live *lv)
{
    if (!lv->listed) {
        return;
    }
    for (struct hub_job_live **pp = &h->jobs_live; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == lv) {
            *pp = lv->next;
            break;
        }
    }
    lv->listed = false;
    lv->next = NULL;
}

static void hub_job_end(struct hub_job *j, const struct hub_job_result *r,
                        bool ack)
{
    struct hub_job_live *lv = j->live;

    if (j->timer != 0) {
        loop_del_timer(j->loop, j->timer);
    }
    if (j->progress_timer != 0) {
        loop_del_timer(j->loop, j->progress_timer);
    }
    if (j->fd >= 0) {
        loop_del_fd(j->loop, j->fd);
    }
    j->fn(j->arg, r);
    if (j->fd >= 0) {
        /* recorded: the agent may drop its copy */
        if (ack && write(j->fd, "ack\n", 4) != 4) {
            log_debug("job: the ack did not go out");
        }
        close(j->fd);
    }
    /* watchers take the rest of the output, then the end */
    hub_live_unlist(j->h, lv);
    lv->ended = true;
    snprintf(lv->status, sizeof(lv->status), "%s", r->status);
    lv->exit_code = r->exit_code;
    lv->signal = r->signal;
    snprintf(lv->why, sizeof(lv->why), "%s", r->why != NULL ? r->why : "");
    hub_live_wake(lv);
    hub_live_unref(lv);
    free(j->send);
    free(j);
}

static void hub_job_fail(struct hub_job *j, const char *status, const char *why)
{
    struct hub_job_result r = {.status = status,
                               .exit_code = -1,
                               .why = why,
                               .out = j->live->out.p,
                               .out_len = j->live->out.len,
                               .err = j->live->err.p,
                               .err_len = j->live->err.len};

    hub_job_end(j, &r, false);
}

static void hub_job_chunk(void *arg, int stream, const uint8_t *p, size_t n)
{
    struct hub_job *j = arg;
    struct hub_job_buf *b = stream == 1 ? &j->live->out : &j->live->err;

    /* job_msg caps each stream at JOB_MSG_OUT_MAX */
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 65536;
        uint8_t *nb;
        while (ncap < b->len + n) {
            ncap *= 2;
        }
        if (ncap > JOB_MSG_OUT_MAX) {
            ncap = JOB_MSG_OUT_MAX;
        }
        if ((nb = realloc(b->p, ncap)) == NULL) {
            return; /* dropped; the lengths will disagree */
        }
        b->p = nb;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    j->dirty = true;
    hub_live_wake(j->live);
}

static void hub_job_progress(struct loop *l, void *arg)
{
    struct hub_job *j = arg;

    (void)l;
    j->progress_timer = 0;
    if (!j->dirty || !j->save) {
        return;
    }
    j->dirty = false;
    if (!hub_jobw_progress(j->h, j->live->id, j->saved, j->live->out.p,
                           j->live->out.len, j->live->err.p,
                           j->live->err.len)) {
        /* not taken now (the writes wait on the database): later */
        j->dirty = true;
        j->progress_timer =
            loop_add_timer(j->loop, HUB_JOB_PROGRESS_MS, hub_job_progress, j);
    }
}

/* At EOF from the agent. */
static void hub_job_finish(struct hub_job *j)
{
    struct hub_job_result r = {.exit_code = -1};
    char why[160];

    if (!j->msg.done && j->msg.head_len == 0 && j->msg.need == 0 &&
        j->msg.out_len == 0 && j->msg.err_len == 0) {
        hub_job_fail(j, "lost", "the agent sent no result");
        return;
    }
    if (job_msg_end(&j->msg, j->fetch, why, sizeof(why)) != ERR_OK ||
        j->live->out.len != j->msg.out_len ||
        j->live->err.len != j->msg.err_len) {
        char full[200];
        snprintf(full, sizeof(full), "the agent's result is malformed: %s",
                 j->msg.done ? why : "it ended before the result");
        hub_job_fail(j, j->msg.done ? "failed" : "lost", full);
        return;
    }
    if (j->sudo && !j->msg.sudo && strcmp(j->msg.status, "refused") != 0) {
        /* an agent from before sudo ignores the key and runs the job as
         * its own user: say so rather than pass it off as done */
        hub_job_fail(j, "failed",
                     "the agent ignored sudo (it predates it): the job ran "
                     "as the agent's own user");
        return;
    }
    r.status = j->msg.status;
    r.exit_code = j->msg.exit_code;
    r.signal = j->msg.signal;
    r.why = j->msg.why[0] != '\0' ? j->msg.why : NULL;
    r.out = j->live->out.p;
    r.out_len = j->live->out.len;
    r.err = j->live->err.p;
    r.err_len = j->live->err.len;
    hub_job_end(j, &r, true);
}

/* Sends what is left of a pushed file, as the socket takes it. */
static void hub_job_send(struct hub_job *j)
{
    while (j->send_off < j->send_len) {
        ssize_t n =
            write(j->fd, j->send + j->send_off, j->send_len - j->send_off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return; /* EAGAIN: LOOP_WRITE brings us back */
        }
        j->send_off += (size_t)n;
    }
    free(j->send);
    j->send = NULL;
    j->send_len = j->send_off = 0;
    (void)loop_mod_fd(j->loop, j->fd, LOOP_READ);
}

static void hub_job_read(struct loop *l, int fd, int events, void *arg)
{
    struct hub_job *j = arg;
    uint8_t buf[65536];
    char why[160];

    (void)l;
    if ((events & LOOP_WRITE) != 0 && j->send != NULL) {
        hub_job_send(j);
    }
    if ((events & LOOP_READ) == 0) {
        return;
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            if (job_msg_feed(&j->msg, buf, (size_t)n, hub_job_chunk, j, why,
                             sizeof(why)) != ERR_OK) {
                char full[200];
                snprintf(full, sizeof(full),
                         "the agent's result is malformed: %s", why);
                hub_job_fail(j, "failed", full);
                return;
            }
            if (j->dirty && j->save && j->progress_timer == 0) {
                j->progress_timer = loop_add_timer(j->loop, HUB_JOB_PROGRESS_MS,
                                                   hub_job_progress, j);
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        hub_job_finish(j);
        return;
    }
}

static void hub_job_timeout(struct loop *l, void *arg)
{
    struct hub_job *j = arg;

    (void)l;
    j->timer = 0;
    hub_job_fail(j, "lost", "no result from the agent");
}

static void hub_job_connected(void *arg, bool ok, const char *why)
{
    struct hub_job *j = arg;

    if (!ok) {
        /* the agent went away before the stream opened: it may still run
         * the command, but no result can come back */
        const char *st = "failed";
        if (strstr(why, "is not connected") != NULL) {
            st = "agent offline";
        } else if (strcmp(why, "agent disconnected") == 0) {
            st = "lost";
        }
        hub_job_fail(j, st, why);
        return;
    }
    if (loop_add_fd(j->loop, j->fd,
                    LOOP_READ | (j->send != NULL ? LOOP_WRITE : 0),
                    hub_job_read, j) != ERR_OK) {
        hub_job_fail(j, "failed", "cannot watch the job");
    }
}

int hub_job_run(struct hub *h, const char *agent_id,
                const struct hub_job_spec *spec, hub_job_fn fn, void *arg)
{
    struct hub_job *j;
    json_t *req;
    char *txt;
    int sv[2];
    size_t len;

    if ((j = calloc(1, sizeof(*j))) == NULL ||
        (j->live = calloc(1, sizeof(*j->live))) == NULL) {
        free(j);
        free(spec->data);
        return ERR_NOMEM;
    }
    j->live->refs = 1;
    j->live->h = h;
    snprintf(j->live->id, sizeof(j->live->id), "%s",
             spec->id != NULL ? spec->id : "");
    j->h = h;
    j->loop = h->loop;
    j->fn = fn;
    j->send = spec->data;
    j->send_len = spec->data_len;
    j->save = spec->save_progress && j->live->id[0] != '\0';
    j->arg = arg;
    j->fd = -1;
    j->fetch = spec->fetch;
    j->sudo = spec->sudo != NULL && spec->sudo[0] != '\0';
    job_msg_init(&j->msg);
    if (spec->fetch) {
        req = json_pack("{s:s, s:i}", "fetch", spec->id, "timeout",
                        spec->timeout);
    } else if (spec->push != NULL) {
        req = json_pack(
            "{s:s, s:o, s:i}", "id", spec->id != NULL ? spec->id : "", "push",
            json_loads(spec->push, 0, NULL), "timeout", spec->timeout);
    } else if (spec->interpreter != NULL && spec->interpreter[0] != '\0') {
        req = json_pack(
            "{s:s, s:s, s:s, s:s, s:i}", "id", spec->id != NULL ? spec->id : "",
            "interpreter", spec->interpreter, "script",
            spec->script != NULL ? spec->script : "", "cwd",
            spec->cwd != NULL ? spec->cwd : "", "timeout", spec->timeout);
    } else {
        req = json_pack(
            "{s:s, s:s, s:s, s:i}", "id", spec->id != NULL ? spec->id : "",
            "command", spec->command != NULL ? spec->command : "", "cwd",
            spec->cwd != NULL ? spec->cwd : "", "timeout", spec->timeout);
    }
    if (req != NULL && j->sudo && !spec->fetch && spec->push == NULL) {
        json_object_set_new(req, "sudo", json_string(spec->sudo));
    }
    txt = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (txt == NULL ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0) {
        free(txt);
        free(j->send);
        free(j->live);
        free(j);
        return ERR_NOMEM;
    }
    /* one line: compact JSON holds no raw newline */
    len = strlen(txt);
    txt[len++] = '\n';
    if (write(sv[0], txt, len) != (ssize_t)len) {
        free(txt);
        close(sv[0]);
        close(sv[1]);
        free(j->send);
        free(j->live);
        free(j);
        return ERR_IO;
    }
    free(txt);
    j->fd = sv[0];
    j->timer = loop_add_timer(h->loop,
                              (int64_t)spec->timeout * 1000 + HUB_JOB_GRACE_MS,
                              hub_job_timeout, j);
    /* a job (not a fetch of a kept result) may be watched */
    if (!spec->fetch && j->live->id[0] != '\0') {
        hub_live_list(h, j->live);
    }
    /* on failure hub_connect has called hub_job_connected (j is gone) */
    (void)hub_connect(h, agent_id, HUB_TCP, HUB_JOB_DEST, 1, "portcullis", 0,
                      sv[1], hub_job_connected, j);
    return ERR_OK;
}

/* --- queued jobs (the CLI's `job run`, batches: the store and a notice) */

struct hub_job_queued {
    struct hub *h;
    char id[STORE_ID_MAX + 1];
    char batch[STORE_ID_MAX + 1];
    bool stop_on_failure;
};

static void hub_job_queued_done(void *arg, const struct hub_job_result *r)
{
    struct hub_job_queued *q = arg;
    struct store_job j = {0};
    bool batch = q->batch[0] != '\0';

    snprintf(j.id, sizeof(j.id), "%s", q->id);
    hub_job_result_to(&j, r);
    /* a batch's next job may start once this one's end is written (the
     * pickup counts the batch's running jobs in the store) */
    hub_job_record(q->h, &j,
                   batch && q->stop_on_failure && strcmp(r->status, "ok") != 0
                       ? q->batch
                       : NULL,
                   batch, NULL, NULL);
    free(q);
}

bool hub_agent_elsewhere(struct hub *h, const char *agent_id)
{
    return store_agent_elsewhere(h->store, agent_id, NULL);
}

/* How many of a batch run now, counted once per pickup. */
struct hub_batch_tally {
    char id[STORE_ID_MAX + 1];
    int64_t running;
};

/* Whether another node holds an agent, read from the store once per
 * pickup for each agent not connected here (a pass looks at up to 256
 * queued jobs, and a batch on another node's agents would otherwise read
 * the same rows for every job of every pass). */
struct hub_elsewhere_memo {
    char agent[JOB_AGENT_MAX + 1];
    bool elsewhere;
};

static bool hub_agent_elsewhere_memo(struct store *st, const char *agent_id,
                                     struct hub_elsewhere_memo *memo,
                                     size_t *nmemo)
{
    for (size_t k = 0; k < *nmemo; k++) {
        if (strcmp(memo[k].agent, agent_id) == 0) {
            return memo[k].elsewhere;
        }
    }
    /* memo has room for every job of the pass */
    snprintf(memo[*nmemo].agent, sizeof(memo[*nmemo].agent), "%s", agent_id);
    memo[*nmemo].elsewhere = store_agent_elsewhere(st, agent_id, NULL);
    return memo[(*nmemo)++].elsewhere;
}

/* A job a pickup claimed: to start, or (why set) to end failed. */
struct hub_picked {
    struct store_job j; /* with its script or push (store_job_free_output) */
    uint8_t *data;      /* a push's file (hub_job_run takes it) */
    size_t data_len;
    const char *why;
};

/* Which agents are connected here: the hub itself on the loop, a copy of
 * their IDs on a worker (hub_jobs_plan). */
struct hub_here {
    const struct hub *h; /* or */
    char (*ids)[JOB_AGENT_MAX + 1];
    size_t n;
};

static bool hub_here_has(const struct hub_here *here, const char *agent_id)
{
    if (here->h != NULL) {
        return hub_agent_online(here->h, agent_id);
    }
    for (size_t i = 0; i < here->n; i++) {
        if (strcmp(here->ids[i], agent_id) == 0) {
            return true;
        }
    }
    return false;
}

/* The store part of a pickup, on st (the loop's, or a worker's): the
 * queued jobs this node may start now (its agents', and those of agents
 * no node holds: they end "agent offline"), within each batch's
 * concurrency, claimed (store_job_claim: of a cluster's nodes one takes
 * each) and read. *out: a hub_picked per claimed job (free with
 * hub_picked_free). ERR_OK, or the queued jobs could not be read. */
static int hub_jobs_plan(struct store *st, const struct hub_here *here,
                         struct hub_picked **out, size_t *nout)
{
    struct store_job *list = NULL;
    struct hub_batch_tally *tally = NULL;
    struct hub_elsewhere_memo *memo = NULL;
    struct hub_picked *picked = NULL;
    size_t n = 0, nt = 0, nmemo = 0, np = 0;
    int r;

    *out = NULL;
    *nout = 0;
    if ((r = store_job_list_queued(st, &list, &n)) != ERR_OK) {
        return r;
    }
    if (n > 0 && ((tally = calloc(n, sizeof(*tally))) == NULL ||
                  (memo = calloc(n, sizeof(*memo))) == NULL ||
                  (picked = calloc(n, sizeof(*picked))) == NULL)) {
        free(tally);
        free(memo);
        free(list);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct hub_batch_tally *t = NULL;
        struct hub_picked *p;

        /* on a cluster, the node holding the agent runs its jobs */
        if (!hub_here_has(here, list[i].agent_id) &&
            hub_agent_elsewhere_memo(st, list[i].agent_id, memo, &nmemo)) {
            continue;
        }
        if (list[i].batch_id[0] != '\0' && list[i].concurrency > 0) {
            for (size_t k = 0; k < nt; k++) {
                if (strcmp(tally[k].id, list[i].batch_id) == 0) {
                    t = &tally[k];
                }
            }
            if (t == NULL) {
                t = &tally[nt++];
                snprintf(t->id, sizeof(t->id), "%s", list[i].batch_id);
                if (store_job_batch_running(st, t->id, &t->running) != ERR_OK) {
                    t->running = INT64_MAX;
                }
            }
            if (t->running >= list[i].concurrency) {
                continue;
            }
        }
        if (store_job_claim(st, list[i].id) != ERR_OK) {
            continue;
        }
        if (t != NULL) {
            t->running++;
        }
        p = &picked[np++];
        if (store_job_get(st, list[i].id, &p->j) != ERR_OK) {
            /* what the queued-done needs of it */
            p->j = list[i];
            p->j.script = p->j.push = NULL;
            p->why = "cannot read the job";
            continue;
        }
        if (p->j.push != NULL &&
            store_job_payload_get(st, p->j.batch_id, &p->data, &p->data_len) !=
                ERR_OK) {
            p->why = "cannot read the file to push";
        }
    }
    free(memo);
    free(tally);
    free(list);
    *out = picked;
    *nout = np;
    return ERR_OK;
}

static void hub_picked_free(struct hub_picked *picked, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(picked[i].data);
        store_job_free_output(&picked[i].j);
    }
    free(picked);
}

/* On the loop: the claimed jobs started (or ended failed). */
static void hub_jobs_start(struct hub *h, struct hub_picked *picked, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct store_job *j = &picked[i].j;
        struct hub_job_queued *q;
        struct hub_job_spec spec;

        if ((q = calloc(1, sizeof(*q))) == NULL) {
            continue;
        }
        q->h = h;
        snprintf(q->id, sizeof(q->id), "%s", j->id);
        snprintf(q->batch, sizeof(q->batch), "%s", j->batch_id);
        q->stop_on_failure = j->stop_on_failure;
        if (picked[i].why != NULL) {
            struct hub_job_result fr = {
                .status = "failed", .exit_code = -1, .why = picked[i].why};
            hub_job_queued_done(q, &fr);
            continue;
        }
        log_info("job %s: running '%.200s' on agent %s for %s", q->id,
                 j->command, j->agent_id, j->started_by);
        spec = (struct hub_job_spec){.id = j->id,
                                     .push = j->push,
                                     .data = picked[i].data,
                                     .data_len = picked[i].data_len,
                                     .save_progress = true,
                                     .command = j->command,
                                     .interpreter = j->interpreter,
                                     .script = j->script,
                                     .cwd = j->cwd,
                                     .sudo = j->sudo,
                                     .timeout = j->timeout};
        picked[i].data = NULL; /* hub_job_run's now */
        if (hub_job_run(h, j->agent_id, &spec, hub_job_queued_done, q) !=
            ERR_OK) {
            struct hub_job_result fr = {.status = "failed",
                                        .exit_code = -1,
                                        .why = "cannot start the job"};
            hub_job_queued_done(q, &fr);
        }
    }
}

/* A pickup's plan on the jobs' store worker (a database server). */
struct hub_pick_job {
    struct store_work job; /* first: the worker's */
    struct hub *h;
    struct hub_here here; /* a copy of the IDs */
    int r;
    struct hub_picked *picked;
    size_t npicked;
};

static void hub_pick_work(struct store_work *w, struct store *st)
{
    struct hub_pick_job *pj = (struct hub_pick_job *)w;

    pj->r = hub_jobs_plan(st, &pj->here, &pj->picked, &pj->npicked);
}

static void hub_pick_done(void *owner, struct store_work *w)
{
    struct hub_pick_job *pj = (struct hub_pick_job *)w;
    struct hub *h = owner;

    /* owner NULL: the hub stopped; a job claimed stays "running" for this
     * node, and its next start ends it lost (store_job_restart) */
    if (h != NULL) {
        if (w->ran && pj->r != ERR_OK) {
            log_warn("hub: cannot read the queued jobs");
        }
        hub_jobs_start(h, pj->picked, pj->npicked);
        h->jobs_picking = false;
        if (h->jobs_again) {
            h->jobs_again = false;
            hub_jobs_pickup(h);
        }
    }
    hub_picked_free(pj->picked, pj->npicked);
    free(pj->here.ids);
    free(pj);
}

/* The plan on a worker: the IDs of the agents connected here copied. */
static void hub_jobs_pickup_off(struct hub *h)
{
    struct hub_pick_job *pj = calloc(1, sizeof(*pj));
    size_t k = 0;

    if (pj == NULL ||
        (h->nonline > 0 &&
         (pj->here.ids = calloc(h->nonline, sizeof(*pj->here.ids))) == NULL)) {
        free(pj);
        return;
    }
    for (size_t b = 0; b < HUB_BUCKETS && k < h->nonline; b++) {
        for (struct hub_agent *a = h->online[b]; a != NULL && k < h->nonline;
             a = a->hnext) {
            snprintf(pj->here.ids[k++], sizeof(pj->here.ids[0]), "%s", a->id);
        }
    }
    pj->here.n = k;
    pj->h = h;
    pj->job.work = hub_pick_work;
    pj->job.done = hub_pick_done;
    h->jobs_picking = true;
    store_worker_run(h->jobw, &pj->job);
}

void hub_jobs_pickup(struct hub *h)
{
    struct hub_picked *picked;
    size_t n;

    /* one plan at a time; one asked meanwhile follows it (a job that ends
     * at once, agent offline, picks up again from inside the loop below) */
    if (h->stopping) {
        return; /* nothing new starts at stop */
    }
    if (h->jobs_picking) {
        h->jobs_again = true;
        return;
    }
    if (h->jobw != NULL && store_worker_async(h->jobw)) {
        hub_jobs_pickup_off(h);
        return;
    }
    h->jobs_picking = true;
    do {
        struct hub_here here = {.h = h};

        h->jobs_again = false;
        if (hub_jobs_plan(h->store, &here, &picked, &n) != ERR_OK) {
            log_warn("hub: cannot read the queued jobs");
            break;
        }
        hub_jobs_start(h, picked, n);
        hub_picked_free(picked, n);
    } while (h->jobs_again);
    h->jobs_picking = false;
}

int hub_jobs_store_start(struct hub *h)
{
    hub_jobw_start(h);
    h->jobw = store_worker_new(h->loop, h->store, h->cfg->store_path, 1,
                               "the agent hub's job pickup", h);
    return h->jobw != NULL ? ERR_OK : ERR_NOMEM;
}

void hub_jobs_store_stop(struct hub *h)
{
    (void)store_worker_stop(h->jobw, HUB_STOP_MS);
    h->jobw = NULL;
    hub_jobw_stop(h);
}

/* --- results kept by an agent that went away (fetch) --- */

struct hub_job_fetch {
    struct hub *h;
    struct store_job *j; /* without output */
};

static void hub_job_fetched(void *arg, const struct hub_job_result *r)
{
    struct hub_job_fetch *f = arg;
    struct store_job *j = f->j;

    if (strcmp(r->status, "unknown") == 0 || strcmp(r->status, "lost") == 0 ||
        strcmp(r->status, "agent offline") == 0) {
        char why[JOB_WHY_MAX + 1];
        snprintf(why, sizeof(why), "%.180s; the agent kept no result", j->why);
        hub_job_record_unrecoverable(f->h, j->id, why);
        log_info("job %s: agent %s kept no result", j->id, j->agent_id);
    } else {
        hub_job_result_to(j, r);
        /* the agent's kept result is the whole output: it replaces what
         * the live output left in the store */
        j->out_whole = true;
        hub_job_record(f->h, j, NULL, false, NULL, NULL);
        log_info("job %s: agent %s handed over its result (%s)", j->id,
                 j->agent_id, j->status);
        j->out = j->err = NULL; /* r's */
    }
    free(j);
    free(f);
}

/* The store part of a recovery, on st: agent_id's jobs that ended lost,
 * each marked asked (store_job_unrecoverable: an agent that has nothing
 * is not asked again). *out: those marked. */
static int hub_recover_plan(struct store *st, const char *agent_id,
                            struct store_job **out, size_t *nout)
{
    struct store_job *list = NULL;
    size_t n = 0, k = 0;
    int r;

    *out = NULL;
    *nout = 0;
    if ((r = store_job_list_recoverable(st, agent_id, &list, &n)) != ERR_OK) {
        return r;
    }
    for (size_t i = 0; i < n; i++) {
        if (store_job_unrecoverable(st, list[i].id, NULL) == ERR_OK) {
            list[k++] = list[i];
        }
    }
    *out = list;
    *nout = k;
    return ERR_OK;
}

/* On the loop: agent_id asked for the results of list's jobs. */
static void hub_recover_ask(struct hub *h, const char *agent_id,
                            const struct store_job *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct hub_job_fetch *f;
        struct hub_job_spec spec;
        int64_t left;

        if ((f = calloc(1, sizeof(*f))) == NULL) {
            continue;
        }
        if ((f->j = malloc(sizeof(*f->j))) == NULL) {
            free(f);
            continue;
        }
        *f->j = list[i];
        f->h = h;
        /* a job still running waits for its end, at most its timeout */
        left = list[i].started_at + list[i].timeout - util_now() + 5;
        spec = (struct hub_job_spec){.id = list[i].id,
                                     .fetch = true,
                                     .timeout = left < 1 ? 1
                                                : left > list[i].timeout + 5
                                                    ? list[i].timeout + 5
                                                    : (int)left};
        log_info("job %s: asking agent %s for its result", list[i].id,
                 agent_id);
        if (hub_job_run(h, agent_id, &spec, hub_job_fetched, f) != ERR_OK) {
            free(f->j);
            free(f);
        }
    }
}

/* A recovery's plan on the jobs' store worker (a database server). */
struct hub_recover_job {
    struct store_work job; /* first: the worker's */
    char agent[JOB_AGENT_MAX + 1];
    int r;
    struct store_job *list;
    size_t n;
};

static void hub_recover_work(struct store_work *w, struct store *st)
{
    struct hub_recover_job *rj = (struct hub_recover_job *)w;

    rj->r = hub_recover_plan(st, rj->agent, &rj->list, &rj->n);
}

static void hub_recover_done(void *owner, struct store_work *w)
{
    struct hub_recover_job *rj = (struct hub_recover_job *)w;
    struct hub *h = owner;

    if (h != NULL && (!w->ran || rj->r != ERR_OK)) {
        log_warn("hub: cannot read agent %s's lost jobs", rj->agent);
    } else if (h != NULL) {
        /* an agent gone meanwhile answers "agent offline": its jobs say
         * it kept no result (hub_job_fetched), as when it drops at once */
        hub_recover_ask(h, rj->agent, rj->list, rj->n);
    }
    free(rj->list);
    free(rj);
}

void hub_jobs_recover(struct hub *h, const char *agent_id)
{
    struct store_job *list = NULL;
    size_t n = 0;

    if (h->jobw != NULL && store_worker_async(h->jobw)) {
        struct hub_recover_job *rj = calloc(1, sizeof(*rj));

        if (rj == NULL) {
            return;
        }
        snprintf(rj->agent, sizeof(rj->agent), "%s", agent_id);
        rj->job.work = hub_recover_work;
        rj->job.done = hub_recover_done;
        store_worker_run(h->jobw, &rj->job);
        return;
    }
    if (hub_recover_plan(h->store, agent_id, &list, &n) != ERR_OK) {
        log_warn("hub: cannot read agent %s's lost jobs", agent_id);
        return;
    }
    hub_recover_ask(h, agent_id, list, n);
    free(list);
}

/* --- watchers (hub.h) --- */

struct hub_watch *hub_watch_job(struct hub *h, const char *id, hub_watch_fn fn,
                                void *arg)
{
    struct hub_watch *w = calloc(1, sizeof(*w));
    struct hub_job_live *lv;

    if (w == NULL) {
        return NULL;
    }
    w->h = h;
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->fn = fn;
    w->arg = arg;
    h->nwatch++;
    for (lv = h->jobs_live; lv != NULL; lv = lv->next) {
        if (strcmp(lv->id, w->id) == 0) {
            break;
        }
    }
    if (lv == NULL) {
        w->next = h->watch_waiting;
        h->watch_waiting = w;
        return w;
    }
    w->live = lv;
    lv->refs++;
    w->next = lv->watchers;
    lv->watchers = w;
    return w;
}

void hub_watch_free(struct hub_watch *w)
{
    struct hub_watch **pp;

    if (w == NULL) {
        return;
    }
    pp = w->live != NULL ? &w->live->watchers : &w->h->watch_waiting;
    for (; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    if (w->live != NULL) {
        hub_live_unref(w->live);
    }
    w->h->nwatch--;
    free(w);
}

bool hub_watch_attached(const struct hub_watch *w)
{
    return w->live != NULL;
}

size_t hub_watch_peek(const struct hub_watch *w, int stream, const uint8_t **p,
                      size_t max)
{
    const struct hub_job_buf *b;
    size_t n;

    if (w->live == NULL || (stream != 1 && stream != 2)) {
        return 0;
    }
    b = stream == 1 ? &w->live->out : &w->live->err;
    if (b->len <= w->off[stream - 1]) {
        return 0;
    }
    n = b->len - w->off[stream - 1];
    *p = b->p + w->off[stream - 1];
    return n < max ? n : max;
}

void hub_watch_take(struct hub_watch *w, int stream, size_t n)
{
    if (w->live != NULL && (stream == 1 || stream == 2)) {
        w->off[stream - 1] += n;
    }
}

bool hub_watch_done(const struct hub_watch *w, struct hub_job_result *r)
{
    const struct hub_job_live *lv = w->live;

    if (lv == NULL || !lv->ended || w->off[0] < lv->out.len ||
        w->off[1] < lv->err.len) {
        return false;
    }
    *r = (struct hub_job_result){.status = lv->status,
                                 .exit_code = lv->exit_code,
                                 .signal = lv->signal,
                                 .why = lv->why[0] != '\0' ? lv->why : NULL};
    return true;
}

bool hub_watch_job_ended(const struct hub_watch *w)
{
    return w->live != NULL && w->live->ended;
}

size_t hub_watch_count(const struct hub *h)
{
    return h->nwatch;
}
