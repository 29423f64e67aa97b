/*
 * Jobs (hub.h, docs/agent-protocol.md §6): a command sent to an agent on
 * a direct-tcpip channel to the reserved host "job@portcullis". The hub's
 * stream machinery carries it: the request is written into one end of a
 * socketpair before the stream opens (it is small), the other end goes to
 * hub_connect(), and the result is read from ours until EOF.
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
#include "store/jobs.h"

#define HUB_JOB_DEST "job@portcullis"
#define HUB_JOB_OUT_CAP (4 * 1024 * 1024 + 128) /* cap + marker */
#define HUB_JOB_RESULT_MAX (2 * HUB_JOB_OUT_CAP + 4096)
#define HUB_JOB_GRACE_MS 30000 /* past the timeout, for the result */

struct hub_job {
    struct hub *h;
    struct loop *loop;
    int fd;
    uint64_t timer;
    char *buf;
    size_t len, cap;
    hub_job_fn fn;
    void *arg;
};

static void hub_job_end(struct hub_job *j, const struct hub_job_result *r)
{
    if (j->fd >= 0) {
        loop_del_fd(j->loop, j->fd);
        close(j->fd);
    }
    if (j->timer != 0) {
        loop_del_timer(j->loop, j->timer);
    }
    j->fn(j->arg, r);
    free(j->buf);
    free(j);
}

static void hub_job_fail(struct hub_job *j, const char *status, const char *why)
{
    struct hub_job_result r = {.status = status, .exit_code = -1, .why = why};

    hub_job_end(j, &r);
}

/* The agent's answer: a JSON header line, then stdout and stderr bytes. */
static void hub_job_parse(struct hub_job *j)
{
    struct hub_job_result r = {.exit_code = -1};
    char *nl = memchr(j->buf, '\n', j->len);
    json_t *h, *v;
    json_error_t je;
    const char *st;
    json_int_t ol, el;
    size_t hl;

    if (nl == NULL) {
        hub_job_fail(j, "lost", "the agent sent no result");
        return;
    }
    hl = (size_t)(nl - j->buf);
    h = json_loadb(j->buf, hl, JSON_REJECT_DUPLICATES, &je);
    st = h != NULL ? json_string_value(json_object_get(h, "status")) : NULL;
    ol = h != NULL ? json_integer_value(json_object_get(h, "stdout_len")) : -1;
    el = h != NULL ? json_integer_value(json_object_get(h, "stderr_len")) : -1;
    if (st == NULL ||
        (strcmp(st, "ok") != 0 && strcmp(st, "failed") != 0 &&
         strcmp(st, "timeout") != 0 && strcmp(st, "refused") != 0) ||
        ol < 0 || el < 0 || ol > HUB_JOB_OUT_CAP || el > HUB_JOB_OUT_CAP ||
        (size_t)(ol + el) != j->len - hl - 1) {
        json_decref(h);
        hub_job_fail(j, "failed", "the agent's result is malformed");
        return;
    }
    r.status = st;
    v = json_object_get(h, "exit_code");
    r.exit_code = json_is_integer(v) ? (int)json_integer_value(v) : -1;
    v = json_object_get(h, "signal");
    r.signal = json_is_integer(v) ? (int)json_integer_value(v) : 0;
    r.why = json_string_value(json_object_get(h, "why"));
    r.out = (const uint8_t *)nl + 1;
    r.out_len = (size_t)ol;
    r.err = (const uint8_t *)nl + 1 + ol;
    r.err_len = (size_t)el;
    hub_job_end(j, &r);
    json_decref(h);
}

static void hub_job_read(struct loop *l, int fd, int events, void *arg)
{
    struct hub_job *j = arg;

    (void)l;
    (void)events;
    for (;;) {
        ssize_t n;
        if (j->len == j->cap) {
            size_t ncap = j->cap ? j->cap * 2 : 65536;
            char *nb;
            if (ncap > HUB_JOB_RESULT_MAX) {
                ncap = HUB_JOB_RESULT_MAX;
            }
            if (ncap == j->cap || (nb = realloc(j->buf, ncap)) == NULL) {
                hub_job_fail(j, "failed", "the agent's result is too large");
                return;
            }
            j->buf = nb;
            j->cap = ncap;
        }
        n = read(fd, j->buf + j->len, j->cap - j->len);
        if (n > 0) {
            j->len += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        hub_job_parse(j);
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
    if (loop_add_fd(j->loop, j->fd, LOOP_READ, hub_job_read, j) != ERR_OK) {
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

    if ((j = calloc(1, sizeof(*j))) == NULL) {
        return ERR_NOMEM;
    }
    j->h = h;
    j->loop = h->loop;
    j->fn = fn;
    j->arg = arg;
    j->fd = -1;
    if (spec->interpreter != NULL && spec->interpreter[0] != '\0') {
        req = json_pack(
            "{s:s, s:s, s:s, s:i}", "interpreter", spec->interpreter, "script",
            spec->script != NULL ? spec->script : "", "cwd",
            spec->cwd != NULL ? spec->cwd : "", "timeout", spec->timeout);
    } else {
        req = json_pack("{s:s, s:s, s:i}", "command",
                        spec->command != NULL ? spec->command : "", "cwd",
                        spec->cwd != NULL ? spec->cwd : "", "timeout",
                        spec->timeout);
    }
    txt = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (txt == NULL ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0) {
        free(txt);
        free(j);
        return ERR_NOMEM;
    }
    len = strlen(txt);
    if (write(sv[0], txt, len) != (ssize_t)len) {
        free(txt);
        close(sv[0]);
        close(sv[1]);
        free(j);
        return ERR_IO;
    }
    free(txt);
    shutdown(sv[0], SHUT_WR);
    j->fd = sv[0];
    j->timer = loop_add_timer(h->loop,
                              (int64_t)spec->timeout * 1000 + HUB_JOB_GRACE_MS,
                              hub_job_timeout, j);
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
    struct store *st = q->h->store;
    struct store_job *j = calloc(1, sizeof(*j));

    if (j != NULL) {
        snprintf(j->id, sizeof(j->id), "%s", q->id);
        snprintf(j->status, sizeof(j->status), "%s", r->status);
        j->exit_code = r->exit_code;
        j->signal = r->signal;
        snprintf(j->why, sizeof(j->why), "%s", r->why != NULL ? r->why : "");
        for (char *p = j->why; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20) {
                *p = ' ';
            }
        }
        /* the bytes are only read by store_job_finish */
        memcpy(&j->out, &r->out, sizeof(j->out));
        memcpy(&j->err, &r->err, sizeof(j->err));
        j->out_len = r->out_len;
        j->err_len = r->err_len;
        if (store_job_finish(st, j) != ERR_OK) {
            log_error("job %s: cannot record its result", q->id);
        }
        free(j);
    }
    if (q->batch[0] != '\0') {
        if (q->stop_on_failure && strcmp(r->status, "ok") != 0 &&
            store_job_batch_end(st, q->batch, "skipped",
                                "an earlier job of the batch did not "
                                "end ok") != ERR_OK) {
            log_error("batch %s: cannot skip its queued jobs", q->batch);
        }
        /* the batch's next job may start now */
        hub_jobs_pickup(q->h);
    }
    free(q);
}

/* How many of a batch run now, counted once per pickup. */
struct hub_batch_tally {
    char id[STORE_ID_MAX + 1];
    int64_t running;
};

static void hub_jobs_pickup_once(struct hub *h)
{
    struct store_job *list = NULL, *j;
    struct hub_batch_tally *tally = NULL;
    size_t n = 0, nt = 0;

    if (store_job_list_queued(h->store, &list, &n) != ERR_OK) {
        log_warn("hub: cannot read the queued jobs");
        return;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL ||
        (n > 0 && (tally = calloc(n, sizeof(*tally))) == NULL)) {
        free(j);
        free(list);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct hub_batch_tally *t = NULL;
        struct hub_job_queued *q;
        struct hub_job_spec spec;

        if (list[i].batch_id[0] != '\0' && list[i].concurrency > 0) {
            for (size_t k = 0; k < nt; k++) {
                if (strcmp(tally[k].id, list[i].batch_id) == 0) {
                    t = &tally[k];
                }
            }
            if (t == NULL) {
                t = &tally[nt++];
                snprintf(t->id, sizeof(t->id), "%s", list[i].batch_id);
                if (store_job_batch_running(h->store, t->id, &t->running) !=
                    ERR_OK) {
                    t->running = INT64_MAX;
                }
            }
            if (t->running >= list[i].concurrency) {
                continue;
            }
        }
        if (store_job_claim(h->store, list[i].id) != ERR_OK) {
            continue;
        }
        if (t != NULL) {
            t->running++;
        }
        if ((q = calloc(1, sizeof(*q))) == NULL) {
            continue;
        }
        q->h = h;
        snprintf(q->id, sizeof(q->id), "%s", list[i].id);
        snprintf(q->batch, sizeof(q->batch), "%s", list[i].batch_id);
        q->stop_on_failure = list[i].stop_on_failure;
        if (store_job_get(h->store, list[i].id, j) != ERR_OK) {
            struct hub_job_result fr = {.status = "failed",
                                        .exit_code = -1,
                                        .why = "cannot read the job"};
            hub_job_queued_done(q, &fr);
            continue;
        }
        log_info("job %s: running '%.200s' on agent %s for %s", q->id,
                 j->command, j->agent_id, j->started_by);
        spec = (struct hub_job_spec){.command = j->command,
                                     .interpreter = j->interpreter,
                                     .script = j->script,
                                     .cwd = j->cwd,
                                     .timeout = j->timeout};
        if (hub_job_run(h, j->agent_id, &spec, hub_job_queued_done, q) !=
            ERR_OK) {
            struct hub_job_result fr = {.status = "failed",
                                        .exit_code = -1,
                                        .why = "cannot start the job"};
            hub_job_queued_done(q, &fr);
        }
        store_job_free_output(j);
    }
    free(tally);
    free(j);
    free(list);
}

void hub_jobs_pickup(struct hub *h)
{
    /* a job that ends at once (agent offline) picks up again from inside
     * the loop below: note it and go round once more instead */
    if (h->jobs_picking) {
        h->jobs_again = true;
        return;
    }
    h->jobs_picking = true;
    do {
        h->jobs_again = false;
        hub_jobs_pickup_once(h);
    } while (h->jobs_again);
    h->jobs_picking = false;
}
