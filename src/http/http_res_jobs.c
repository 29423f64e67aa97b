/*
 * Jobs (issue 14, docs/api.md "Jobs"): POST /api/v1/agents/{id}/commands
 * runs a command on an agent through the hub (admin_job_run; the agent's
 * own rules decide); by default the answer waits for the end of the job
 * (http_defer), with "wait": false it is 202 with the job's ID at once.
 * POST /api/v1/jobs runs a command or script on many agents (IDs, tags)
 * as one batch, 202 at once with its jobs (queued, started within the
 * concurrency limit). GET /api/v1/jobs and /api/v1/jobs/{id} read the
 * store.
 *
 * On a database server both starts are RT routes (docs/store.md "Jobs
 * off the loop"): the token, the scope check, the job's row and its
 * audit event are written on a worker of the API's (the handler with
 * req->on_worker), and the route's loop part starts the job through the
 * hub (http_then_agents_command, http_then_jobs_add). The row is written
 * before the job starts, as on the loop, so the loop part starts it
 * whether or not its client is still there (a row "running" that no one
 * runs would stay so). On SQLite the handler does both on the loop.
 */
#include "http/http_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_client_group.h"
#include "admin/admin_job.h"
#include "admin/admin_job_role.h"
#include "admin/admin_schedule.h"
#include "common/err.h"
#include "common/util.h"
#include "hub/hub.h"
#include "store/store_worker.h"

/* the start time of a job recorded off the loop, in the worker's answer
 * for the loop part only (http_job_of_answer) */
#define HTTP_JOB_STARTED_AT "_started_at"

/* A command's job that runs here, from its start until its result is
 * recorded (http_job_done): in h->job_waits, or forgotten (h NULL) once
 * h stops. */
struct http_job_wait {
    struct http_waiter waiter; /* in h->job_waits (no timer) */
    struct http *h;
    uint64_t id;
    bool wait, in_handler, done;
    json_t *answer;
};

static struct http_job_wait *http_job_wait_new(struct http *h)
{
    struct http_job_wait *w = calloc(1, sizeof(*w));

    if (w != NULL) {
        w->h = h;
        http_waiter_link(&h->job_waits, &w->waiter, w);
    }
    return w;
}

static void http_job_wait_free(struct http_job_wait *w)
{
    http_waiter_unlink(&w->waiter); /* on no list once forgotten */
    json_decref(w->answer);
    free(w);
}

static void http_job_wait_let_go(void *arg)
{
    struct http_job_wait *w = arg;

    w->h = NULL;
}

void http_job_waits_forget(struct http *h)
{
    http_waiters_forget(&h->job_waits, http_job_wait_let_go);
}

/* The job ended and its result is recorded (admin_job_start). */
static void http_job_done(void *arg, const struct store_job *j)
{
    struct http_job_wait *w = arg;
    struct http_req *req;

    if (w->in_handler) {
        /* ended before its start returned (the hub stopping, the agent
         * gone): the handler frees w */
        w->done = true;
        w->answer = w->wait ? admin_job_json(j, true) : NULL;
        return;
    }
    if (w->h != NULL && w->wait && (req = http_deferred(w->h, w->id)) != NULL) {
        http_ok(req, 200, admin_job_json(j, true), NULL);
        http_resume(req);
    }
    http_job_wait_free(w);
}

/* A command whose agent another node of the cluster holds: admin_job_run
 * queued the job for that node, and the request waits for its end,
 * read from the store every HTTP_JOB_FOLLOW_MS (as GET /jobs/{id}/stream
 * follows such a job; on the job streams' store worker, http_jobs_read,
 * never on the loop). Past the job's timeout and HTTP_JOB_FOLLOW_GRACE_S
 * (the other node's pickup, an agent moving to another node) the answer
 * is 202 with the job as it stands, to follow with GET /jobs/{id}. */
#define HTTP_JOB_FOLLOW_MS 500
#define HTTP_JOB_FOLLOW_GRACE_S 60
/* Each costs a store read per HTTP_JOB_FOLLOW_MS: beyond this many at
 * once, the answer is 202 at once (the job still runs). */
#define HTTP_JOB_FOLLOW_MAX 64

struct http_job_follow_read;

struct http_job_follow {
    struct http_waiter waiter; /* in h->follows; the next read's timer */
    struct http *h;
    uint64_t req_id; /* http_defer's */
    char id[STORE_ID_MAX + 1];
    int64_t deadline;                /* util_mono_ms() */
    struct http_job_follow_read *rd; /* the read in flight, or NULL */
};

/* One read of the followed job, on the worker. */
struct http_job_follow_read {
    struct store_work job;     /* first: the worker's */
    struct http_job_follow *f; /* NULL once it went */
    char id[STORE_ID_MAX + 1];
    int r;
    struct store_job j;
};

static void http_job_follow_free(void *arg)
{
    struct http_job_follow *f = arg;

    http_waiter_unlink(&f->waiter);
    if (f->rd != NULL) {
        f->rd->f = NULL; /* its answer finds no one */
    }
    free(f);
}

void http_job_follows_free(struct http *h)
{
    http_waiters_forget(&h->follows, http_job_follow_free);
}

static void http_job_follow_tick(void *arg);

/* On the loop: what the read found (j NULL: the store did not answer). */
static void http_job_follow_got(struct http_job_follow *f,
                                const struct store_job *j)
{
    struct loop *l = f->h->loop;
    struct http_waiter *wr = &f->waiter;
    struct http_req *req;
    bool ended, late;

    if ((req = http_deferred(f->h, f->req_id)) == NULL) {
        http_job_follow_free(f); /* the client went away */
        return;
    }
    if (j == NULL) {
        /* the store did not answer: try again, until the deadline */
        if (util_mono_ms() < f->deadline &&
            http_waiter_arm(wr, l, HTTP_JOB_FOLLOW_MS, http_job_follow_tick)) {
            return;
        }
        http_error(req, 503, "store_unavailable", "Store unavailable",
                   "cannot read the job; follow it with GET /api/v1/jobs/ID");
        http_resume(req);
        http_job_follow_free(f);
        return;
    }
    ended =
        strcmp(j->status, "queued") != 0 && strcmp(j->status, "running") != 0;
    late = util_mono_ms() >= f->deadline;
    if (!ended && !late &&
        http_waiter_arm(wr, l, HTTP_JOB_FOLLOW_MS, http_job_follow_tick)) {
        return;
    }
    http_ok(req, ended ? 200 : 202, admin_job_json(j, true), NULL);
    http_resume(req);
    http_job_follow_free(f);
}

static void http_job_follow_work(struct store_work *w, struct store *st)
{
    struct http_job_follow_read *rd = (struct http_job_follow_read *)w;

    rd->r = store_job_get(st, rd->id, &rd->j);
}

static void http_job_follow_done(void *owner, struct store_work *w)
{
    struct http_job_follow_read *rd = (struct http_job_follow_read *)w;
    struct http_job_follow *f = rd->f;

    (void)owner; /* NULL also at the stop: rd->f says */
    if (f != NULL) {
        f->rd = NULL;
        http_job_follow_got(f, w->ran && rd->r == ERR_OK ? &rd->j : NULL);
    }
    store_job_free_output(&rd->j);
    free(rd);
}

static void http_job_follow_tick(void *arg)
{
    struct http_job_follow *f = arg;
    struct http_job_follow_read *rd;

    if (http_deferred(f->h, f->req_id) == NULL) {
        http_job_follow_free(f); /* the client went away */
        return;
    }
    if ((rd = calloc(1, sizeof(*rd))) == NULL) {
        http_job_follow_got(f, NULL);
        return;
    }
    rd->f = f;
    snprintf(rd->id, sizeof(rd->id), "%s", f->id);
    rd->job.work = http_job_follow_work;
    rd->job.done = http_job_follow_done;
    f->rd = rd;
    /* in line (SQLite): done has run, and f may be gone, when this
     * returns */
    if (!http_jobs_read(f->h, &rd->job)) {
        f->rd = NULL;
        free(rd);
        http_job_follow_got(f, NULL);
    }
}

/* Waits for job j (queued for another node) on behalf of deferred request
 * req_id. ERR_OK: the answer will come. */
static int http_job_follow(struct http *h, uint64_t req_id,
                           const struct store_job *j)
{
    struct http_job_follow *f;

    if (h->follows.n >= HTTP_JOB_FOLLOW_MAX ||
        (f = calloc(1, sizeof(*f))) == NULL) {
        return ERR_NOMEM;
    }
    f->h = h;
    f->req_id = req_id;
    snprintf(f->id, sizeof(f->id), "%s", j->id);
    f->deadline =
        util_mono_ms() + ((int64_t)j->timeout + HTTP_JOB_FOLLOW_GRACE_S) * 1000;
    http_waiter_link(&h->follows, &f->waiter, f);
    if (!http_waiter_arm(&f->waiter, h->loop, HTTP_JOB_FOLLOW_MS,
                         http_job_follow_tick)) {
        http_job_follow_free(f);
        return ERR_NOMEM;
    }
    return ERR_OK;
}

/* What POST /agents/{id}/commands asks, from its body. */
static struct admin_job_req http_job_req_of(const json_t *body)
{
    return (struct admin_job_req){
        .command = http_body_str(body, "command"),
        .interpreter = http_body_str(body, "interpreter"),
        .script = http_body_str(body, "script"),
        .cwd = http_body_str(body, "cwd"),
        .sudo = http_body_str(body, "sudo"),
        .timeout = (int)http_body_int(body, "timeout", 0)};
}

/* The worker's part of a command (a database server): the job recorded;
 * 202 with it, and its start time for the loop part (which takes it out
 * of the answer again). */
static int http_agents_command_record(struct http_req *req)
{
    struct store_job *j = calloc(1, sizeof(*j));
    struct admin_job_req q = http_job_req_of(req->body);
    struct admin_ctx ac;
    struct admin_err e;
    json_t *d;

    if (j == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    http_admin_ctx(req, &ac);
    if (admin_job_record_run(&ac, req->params[0], &q, j, &e) != ERR_OK) {
        free(j);
        return http_admin_error(req, &e);
    }
    snprintf(req->audit_target, sizeof(req->audit_target), "%s", j->id);
    d = admin_job_json(j, false);
    json_object_set_new(d, HTTP_JOB_STARTED_AT, json_integer(j->started_at));
    free(j);
    return http_ok(req, 202, d, NULL);
}

/* The job the worker recorded, from its answer (only what a job's
 * answer shows: admin_job_json). */
static void http_job_of_answer(const json_t *d, struct store_job *j)
{
    const char *s;

    memset(j, 0, sizeof(*j));
#define HTTP_JOB_STR(field, key)                                               \
    s = json_string_value(json_object_get(d, key));                            \
    snprintf(j->field, sizeof(j->field), "%s", s != NULL ? s : "")
    HTTP_JOB_STR(id, "id");
    HTTP_JOB_STR(agent_id, "agent");
    HTTP_JOB_STR(started_by, "started_by");
    HTTP_JOB_STR(command, "command");
    HTTP_JOB_STR(interpreter, "interpreter");
    HTTP_JOB_STR(cwd, "cwd");
    HTTP_JOB_STR(sudo, "sudo");
    HTTP_JOB_STR(status, "status");
#undef HTTP_JOB_STR
    j->timeout = (int)json_integer_value(json_object_get(d, "timeout"));
    j->started_at =
        (int64_t)json_integer_value(json_object_get(d, HTTP_JOB_STARTED_AT));
    j->exit_code = -1;
}

void http_then_agents_command(struct http *h, struct http_req *req)
{
    struct http_job_wait *w;
    struct store_job *j;
    struct admin_job_req q;
    struct admin_ctx ac;
    bool wait;

    if (req->status != 202 || req->data == NULL) {
        return;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        /* the row stays as written: GET /jobs/{id} shows it */
        return;
    }
    http_job_of_answer(req->data, j);
    json_object_del(req->data, HTTP_JOB_STARTED_AT);
    wait = http_body_bool(req->body, "wait", true) && req->deferred != 0;
    if (strcmp(j->status, "queued") == 0) {
        /* another node holds the agent, as far as the store knew; if it
         * is here after all (its announcement not written yet), this
         * node picks it up */
        if (h->hub != NULL && hub_agent_online(h->hub, j->agent_id)) {
            hub_jobs_pickup(h->hub);
        }
        if (wait && http_job_follow(h, req->deferred, j) == ERR_OK) {
            req->later = true;
        }
        free(j);
        return;
    }
    if ((w = http_job_wait_new(h)) == NULL) {
        free(j);
        return;
    }
    w->wait = wait;
    w->id = req->deferred;
    ac = (struct admin_ctx){.st = h->store, .cfg = h->cfg, .hub = h->hub};
    q = http_job_req_of(req->body);
    w->in_handler = true;
    if (admin_job_start(&ac, &q, j, http_job_done, w) != ERR_OK) {
        http_job_wait_free(w);
        free(j);
        return;
    }
    free(j);
    w->in_handler = false;
    if (!wait) {
        if (w->done) {
            http_job_wait_free(w);
        }
        return; /* else w is freed by http_job_done */
    }
    if (w->done) {
        http_ok(req, 200, w->answer, NULL);
        w->answer = NULL; /* req's */
        http_job_wait_free(w);
        return;
    }
    req->later = true; /* http_job_done answers it */
}

int http_h_agents_command(struct http_req *req)
{
    struct http_job_wait *w;
    struct store_job *j;
    struct admin_job_req q;
    struct admin_ctx ac;
    struct admin_err e;
    int r;

    if (req->on_worker) {
        return http_agents_command_record(req);
    }
    if ((j = calloc(1, sizeof(*j))) == NULL ||
        (w = http_job_wait_new(req->h)) == NULL) {
        free(j);
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    w->wait = http_body_bool(req->body, "wait", true);
    if (w->wait && http_defer(req, &w->id) != ERR_OK) {
        http_job_wait_free(w);
        free(j);
        return http_error(req, 503, "server_busy", "Server busy",
                          "too many requests waiting; try again shortly");
    }
    http_admin_ctx(req, &ac);
    w->in_handler = true;
    q = http_job_req_of(req->body);
    r = admin_job_run(&ac, req->params[0], &q, http_job_done, w, j, &e);
    w->in_handler = false;
    if (r != ERR_OK) {
        if (w->wait) {
            http_undefer(req);
        }
        http_job_wait_free(w);
        free(j);
        return http_admin_error(req, &e);
    }
    snprintf(req->audit_target, sizeof(req->audit_target), "%s", j->id);
    if (strcmp(j->status, "queued") == 0) {
        /* another node runs it (admin_job_run): done is never called */
        if (w->wait && http_job_follow(req->h, w->id, j) == ERR_OK) {
            free(j);
            http_job_wait_free(w);
            return 0;
        }
        if (w->wait) {
            http_undefer(req);
        }
        http_job_wait_free(w);
        json_t *d = admin_job_json(j, false);
        free(j);
        return http_ok(req, 202, d, NULL);
    }
    if (!w->wait) {
        json_t *d = admin_job_json(j, false);
        free(j);
        if (w->done) {
            http_job_wait_free(w);
        } /* else w is freed by http_job_done */
        return http_ok(req, 202, d, NULL);
    }
    free(j);
    if (w->done) {
        http_undefer(req);
        http_ok(req, 200, w->answer, NULL);
        w->answer = NULL; /* req's */
        http_job_wait_free(w);
    }
    return 0;
}

/* A JSON list of strings as pointers into it (valid while body lives). */
static const char **http_job_strings(const json_t *body, const char *name,
                                     size_t *n)
{
    const json_t *a = json_object_get(body, name);
    const char **out;
    size_t i;

    json_t *v;

    *n = json_array_size(a);
    if (*n == 0 || (out = calloc(*n, sizeof(*out))) == NULL) {
        *n = 0;
        return NULL;
    }
    json_array_foreach(a, i, v)
    {
        out[i] = json_string_value(v);
    }
    return out;
}

int http_h_jobs_add(struct http_req *req)
{
    struct admin_job_targets t = {0};
    struct admin_job_push push;
    uint8_t *file = NULL;
    size_t file_len = 0;
    const char **agents, **tags, **groups;
    struct admin_job_req q;
    struct admin_ctx ac;
    struct admin_err e;
    char batch[STORE_ID_MAX + 1];
    struct store_job *list = NULL;
    size_t njobs = 0, n = 0;
    bool delivered = false;
    json_t *arr, *d;
    int r;

    agents = http_job_strings(req->body, "agents", &t.nagents);
    tags = http_job_strings(req->body, "tags", &t.ntags);
    groups = http_job_strings(req->body, "groups", &t.ngroups);
    t.agents = agents;
    t.tags = tags;
    t.groups = groups;
    q = (struct admin_job_req){
        .command = http_body_str(req->body, "command"),
        .interpreter = http_body_str(req->body, "interpreter"),
        .script = http_body_str(req->body, "script"),
        .cwd = http_body_str(req->body, "cwd"),
        .sudo = http_body_str(req->body, "sudo"),
        .timeout = (int)http_body_int(req->body, "timeout", 0),
        .concurrency = (int)http_body_int(req->body, "concurrency", 0),
        .stop_on_failure = http_body_bool(req->body, "stop_on_failure", false),
        /* off the loop (no hub): the route's loop part starts them */
        .in_server = req->on_worker};
    if (http_body_has(req->body, "file_base64") ||
        http_body_has(req->body, "dest")) {
        const char *b64 = http_body_str(req->body, "file_base64");
        size_t blen = b64 != NULL ? strlen(b64) : 0;
        if (b64 == NULL || http_body_str(req->body, "dest") == NULL) {
            free(agents);
            free(tags);
            free(groups);
            return http_error(req, 400, "invalid_body", "Invalid body",
                              "a file push needs file_base64 and dest");
        }
        if ((file = malloc(blen / 4 * 3 + 3)) == NULL ||
            sodium_base642bin(file, blen / 4 * 3 + 3, b64, blen, NULL,
                              &file_len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0) {
            free(file);
            free(agents);
            free(tags);
            free(groups);
            return http_error(req, 400, "invalid_body", "Invalid body",
                              "file_base64: not base64");
        }
        push = (struct admin_job_push){
            .dest = http_body_str(req->body, "dest"),
            .mode = (int)http_body_int(req->body, "mode", 0644),
            .owner = http_body_str(req->body, "owner"),
            .group = http_body_str(req->body, "group"),
            .overwrite = http_body_bool(req->body, "overwrite", false),
            .data = file,
            .len = file_len};
        q.push = &push;
    }
    http_admin_ctx(req, &ac);
    r = admin_job_queue_many(&ac, &t, &q, batch, &njobs, &delivered, &e);
    free(agents);
    free(tags);
    free(groups);
    free(file);
    if (r != ERR_OK) {
        return http_admin_error(req, &e);
    }
    snprintf(req->audit_target, sizeof(req->audit_target), "%s", batch);
    if ((r = store_job_list_batch(req->store, batch, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "batch", batch);
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, admin_job_json(&list[i], false));
    }
    free(list);
    d = json_pack("{s:s, s:o}", "batch", batch, "jobs", arr);
    return http_ok(req, 202, d, NULL);
}

void http_then_jobs_add(struct http *h, struct http_req *req)
{
    if (req->status == 202 && h->hub != NULL) {
        hub_jobs_pickup(h->hub);
    }
}

int http_h_jobs_list(struct http_req *req)
{
    struct store_job *list = NULL;
    struct admin_ctx ac;
    size_t n = 0;
    json_t *arr;
    int r;

    if ((r = store_job_list(req->store, 1000, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "job", "list");
    }
    http_admin_ctx(req, &ac);
    n = admin_job_filter(&ac, list, n);
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, admin_job_json(&list[i], false));
    }
    free(list);
    return http_list(req, arr);
}

struct store_job *http_job_read(struct http_req *req, int *ret)
{
    struct store_job *j = calloc(1, sizeof(*j));
    struct admin_ctx ac;
    int r;

    if (j == NULL) {
        *ret =
            http_error(req, 500, "internal", "Internal error", "out of memory");
        return NULL;
    }
    if ((r = store_job_get(req->store, req->params[0], j)) != ERR_OK) {
        free(j);
        *ret = http_store_error(req, r, "job", req->params[0]);
        return NULL;
    }
    http_admin_ctx(req, &ac);
    if (admin_job_filter(&ac, j, 1) == 0) {
        /* as if unknown: a job out of scope is not confirmed to exist */
        store_job_free_output(j);
        free(j);
        *ret = http_store_error(req, ERR_NOT_FOUND, "job", req->params[0]);
        return NULL;
    }
    return j;
}

int http_h_jobs_get(struct http_req *req)
{
    struct store_job *j;
    int r;

    if ((j = http_job_read(req, &r)) == NULL) {
        return r;
    }
    http_ok(req, 200, admin_job_json(j, true), NULL);
    store_job_free_output(j);
    free(j);
    return 0;
}

/* --- schedules (admin_schedule.h) --- */

int http_h_schedules_list(struct http_req *req)
{
    struct store_schedule *list = NULL;
    struct admin_ctx ac;
    size_t n = 0;
    json_t *arr;
    int r;

    if ((r = store_schedule_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "schedule", "list");
    }
    http_admin_ctx(req, &ac);
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!admin_schedule_visible(&ac, &list[i])) {
            continue;
        }
        json_array_append_new(arr, admin_schedule_json(req->h->cfg, &list[i]));
    }
    store_schedule_list_free(list, n);
    return http_list(req, arr);
}

int http_h_schedules_add(struct http_req *req)
{
    struct admin_schedule_req q;
    struct store_schedule *s = calloc(1, sizeof(*s));
    const char **agents, **tags, **groups;
    struct admin_ctx ac;
    struct admin_err e;
    int r;

    if (s == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    memset(&q, 0, sizeof(q));
    agents = http_job_strings(req->body, "agents", &q.targets.nagents);
    tags = http_job_strings(req->body, "tags", &q.targets.ntags);
    groups = http_job_strings(req->body, "groups", &q.targets.ngroups);
    q.targets.agents = agents;
    q.targets.tags = tags;
    q.targets.groups = groups;
    q.name = http_body_str(req->body, "name");
    q.cron = http_body_str(req->body, "cron");
    q.job = (struct admin_job_req){
        .command = http_body_str(req->body, "command"),
        .interpreter = http_body_str(req->body, "interpreter"),
        .script = http_body_str(req->body, "script"),
        .cwd = http_body_str(req->body, "cwd"),
        .timeout = (int)http_body_int(req->body, "timeout", 0),
        .concurrency = (int)http_body_int(req->body, "concurrency", 0)};
    http_admin_ctx(req, &ac);
    r = admin_schedule_add(&ac, &q, s, &e);
    free(agents);
    free(tags);
    free(groups);
    if (r != ERR_OK) {
        free(s);
        return http_admin_error(req, &e);
    }
    snprintf(req->audit_target, sizeof(req->audit_target), "%s", s->name);
    http_ok(req, 201, admin_schedule_json(req->h->cfg, s), NULL);
    free(s);
    return 0;
}

int http_h_schedules_get(struct http_req *req)
{
    struct store_schedule *s = calloc(1, sizeof(*s));
    struct admin_ctx ac;
    int r;

    if (s == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    http_admin_ctx(req, &ac);
    if ((r = store_schedule_get(req->store, req->params[0], s)) == ERR_OK &&
        !admin_schedule_visible(&ac, s)) {
        store_schedule_release(s);
        r = ERR_NOT_FOUND;
    }
    if (r != ERR_OK) {
        free(s);
        return http_store_error(req, r, "schedule", req->params[0]);
    }
    http_ok(req, 200, admin_schedule_json(req->h->cfg, s), NULL);
    store_schedule_release(s);
    free(s);
    return 0;
}

int http_h_schedules_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_schedule_delete(&ac, req->params[0], &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    snprintf(req->audit_target, sizeof(req->audit_target), "%s",
             req->params[0]);
    return http_ok(req, 204, NULL, NULL);
}

/* --- client groups (admin_client_group.h) --- */

int http_h_client_groups_list(struct http_req *req)
{
    struct store_client_group *list = NULL;
    struct store_agent *agents = NULL;
    size_t n = 0, na = 0;
    json_t *arr;
    int r;

    if ((r = store_client_group_list(req->store, &list, &n)) != ERR_OK ||
        (r = store_agent_list(req->store, &agents, &na)) != ERR_OK) {
        free(list);
        return http_store_error(req, r, "client group", "list");
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(
            arr, admin_client_group_json(&list[i], true, agents, na));
    }
    free(list);
    store_agent_list_free(agents, na);
    return http_list(req, arr);
}

int http_h_client_groups_add(struct http_req *req)
{
    struct admin_client_group_req q;
    struct store_client_group *g = calloc(1, sizeof(*g));
    const char **agents;
    const char *rules_txt = http_body_str(req->body, "rules");
    json_t *rules = NULL;
    struct admin_ctx ac;
    struct admin_err e;
    int r;

    if (g == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    if (rules_txt != NULL &&
        (rules = json_loads(rules_txt, JSON_REJECT_DUPLICATES, NULL)) == NULL) {
        free(g);
        return http_error(req, 400, "invalid_body", "Invalid body",
                          "rules: a JSON object (as a string)");
    }
    memset(&q, 0, sizeof(q));
    agents = http_job_strings(req->body, "agents", &q.nagents);
    q.agents = agents;
    q.name = http_body_str(req->body, "name");
    q.description = http_body_str(req->body, "description");
    q.rules = rules;
    http_admin_ctx(req, &ac);
    r = admin_client_group_add(&ac, &q, g, &e);
    free(agents);
    json_decref(rules);
    if (r != ERR_OK) {
        free(g);
        return http_admin_error(req, &e);
    }
    snprintf(req->audit_target, sizeof(req->audit_target), "%s", g->name);
    http_ok(req, 201, admin_client_group_json(g, false, NULL, 0), NULL);
    free(g);
    return 0;
}

int http_h_client_groups_get(struct http_req *req)
{
    struct store_client_group *g = calloc(1, sizeof(*g));
    struct store_agent *agents = NULL;
    size_t na = 0;
    int r;

    if (g == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    if ((r = store_client_group_get(req->store, req->params[0], g)) != ERR_OK ||
        (r = store_agent_list(req->store, &agents, &na)) != ERR_OK) {
        free(g);
        return http_store_error(req, r, "client group", req->params[0]);
    }
    http_ok(req, 200, admin_client_group_json(g, true, agents, na), NULL);
    store_agent_list_free(agents, na);
    free(g);
    return 0;
}

int http_h_client_groups_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_client_group_delete(&ac, req->params[0], &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    snprintf(req->audit_target, sizeof(req->audit_target), "%s",
             req->params[0]);
    return http_ok(req, 204, NULL, NULL);
}

int http_h_schedules_patch(struct http_req *req)
{
    struct store_schedule *s = calloc(1, sizeof(*s));
    struct admin_ctx ac;
    struct admin_err e;

    if (s == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    http_admin_ctx(req, &ac);
    if (admin_schedule_set_enabled(&ac, req->params[0],
                                   http_body_bool(req->body, "enabled", true),
                                   s, &e) != ERR_OK) {
        free(s);
        return http_admin_error(req, &e);
    }
    http_ok(req, 200, admin_schedule_json(req->h->cfg, s), NULL);
    store_schedule_release(s);
    free(s);
    return 0;
}

/* POST /client-groups/{id}/agents {agent} and DELETE
 * /client-groups/{id}/agents/{agent}: the static members. */
static int http_client_group_member(struct http_req *req, const char *agent,
                                    bool add)
{
    struct store_client_group *g = calloc(1, sizeof(*g));
    struct store_agent *agents = NULL;
    size_t na = 0;
    struct admin_ctx ac;
    struct admin_err e;

    if (g == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    http_admin_ctx(req, &ac);
    if (admin_client_group_member(&ac, req->params[0], agent, add, g, &e) !=
        ERR_OK) {
        free(g);
        return http_admin_error(req, &e);
    }
    (void)store_agent_list(req->store, &agents, &na);
    http_ok(req, 200, admin_client_group_json(g, true, agents, na), NULL);
    store_agent_list_free(agents, na);
    free(g);
    return 0;
}

int http_h_client_groups_agent_add(struct http_req *req)
{
    return http_client_group_member(req, http_body_str(req->body, "agent"),
                                    true);
}

int http_h_client_groups_agent_delete(struct http_req *req)
{
    return http_client_group_member(req, req->params[1], false);
}

/* --- job roles (admin_job_role.h): administrators only (route table) */

int http_h_job_roles_list(struct http_req *req)
{
    struct store_job_role_row *list = NULL;
    size_t n = 0;
    json_t *arr;
    int r;

    if ((r = store_job_role_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "job role", "list");
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, admin_job_role_json(&list[i]));
    }
    free(list);
    return http_list(req, arr);
}

int http_h_job_roles_add(struct http_req *req)
{
    struct admin_job_role_req q = {
        .user = http_body_str(req->body, "user"),
        .group = http_body_str(req->body, "group"),
        .role = http_body_str(req->body, "role"),
        .client_group = http_body_str(req->body, "client_group")};
    struct store_job_role_row w;
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_job_role_add(&ac, &q, &w, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 201, admin_job_role_json(&w), NULL);
}

int http_h_job_roles_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_job_role_delete(&ac, req->params[0], &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

json_t *http_me_job_roles(struct http_req *req)
{
    json_t *arr = json_array();

    for (int role = JOB_ROLE_RUNNER; role <= JOB_ROLE_SCHEDULER; role++) {
        char(*ids)[STORE_ID_MAX + 1] = NULL;
        struct store_client_group g;
        size_t n = 0;

        if (store_job_role_groups(req->store, req->auth.user.id, role, &ids,
                                  &n) != ERR_OK) {
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (store_client_group_get(req->store, ids[i], &g) == ERR_OK) {
                json_array_append_new(arr, json_pack("{s:s, s:s}", "role",
                                                     job_role_str(role),
                                                     "client_group", g.name));
            }
        }
        free(ids);
    }
    return arr;
}
