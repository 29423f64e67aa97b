/*
 * Schedules (admin_schedule.h).
 */
#include "admin/admin_schedule.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cron.h"
#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/access.h"
#include "store/client_groups.h"
#include "store/store_worker.h"

#define SCHED_MISSED_LIMIT 1000000
/* How long a stop waits for a tick's store work on its worker. */
#define ADMIN_SCHEDULER_STOP_MS 2000

int64_t admin_schedule_clock(const struct config *cfg)
{
    struct timespec ts;
    int n = cfg != NULL ? cfg->jobs_schedule_minute_seconds : 60;
    int64_t ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (n <= 0 || n >= 60) {
        return ms / 1000;
    }
    return ms / 1000 * 60 / n + (ms % 1000) * 60 / n / 1000;
}

/* Schedule-clock t as real time (for display). */
static int64_t sched_real(const struct config *cfg, int64_t t)
{
    int n = cfg != NULL ? cfg->jobs_schedule_minute_seconds : 60;

    return n <= 0 || n >= 60 ? t : t / 60 * n;
}

static json_t *sched_list(const char *const *v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(v[i]));
    }
    return a;
}

static int sched_dump(json_t *a, char *out, size_t size)
{
    char *t = json_dumps(a, JSON_COMPACT);
    int r = ERR_OK;

    json_decref(a);
    if (t == NULL) {
        return ERR_NOMEM;
    }
    if (strlen(t) > size - 1) {
        r = ERR_INVALID;
    } else {
        snprintf(out, size, "%s", t);
    }
    free(t);
    return r;
}

int admin_schedule_add(const struct admin_ctx *c,
                       const struct admin_schedule_req *q,
                       struct store_schedule *out, struct admin_err *e)
{
    const struct admin_job_req *j = &q->job;
    bool script = j->interpreter != NULL && j->interpreter[0] != '\0';
    struct cron cr;
    char why[160], detail[600];
    int r;

    memset(out, 0, sizeof(*out));
    if (q->name == NULL || q->name[0] == '\0' || strlen(q->name) > 64 ||
        strspn(q->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789._-") != strlen(q->name) ||
        util_is_uuid(q->name)) {
        return admin_fail(e, ERR_INVALID,
                          "name: 1-64 letters, digits, '.', '_' or '-'");
    }
    if (cron_parse(q->cron, &cr, why, sizeof(why)) != ERR_OK) {
        return admin_fail(e, ERR_INVALID, "%s", why);
    }
    if (q->targets.nagents + q->targets.ntags + q->targets.ngroups == 0) {
        return admin_fail(e, ERR_INVALID, "no target: name agents or tags");
    }
    for (size_t i = 0; i < q->targets.nagents; i++) {
        if (q->targets.agents[i] == NULL || q->targets.agents[i][0] == '\0' ||
            strlen(q->targets.agents[i]) > JOB_AGENT_MAX) {
            return admin_fail(e, ERR_INVALID, "agent: 1-%d characters",
                              JOB_AGENT_MAX);
        }
    }
    if (j->push != NULL) {
        return admin_fail(e, ERR_INVALID,
                          "a schedule runs a command or a "
                          "script");
    }
    if (script ? (j->script == NULL || j->script[0] == '\0' ||
                  strlen(j->script) > JOB_SCRIPT_MAX ||
                  strlen(j->interpreter) > JOB_INTERP_MAX ||
                  (j->command != NULL && j->command[0] != '\0'))
               : (j->command == NULL || j->command[0] == '\0' ||
                  strlen(j->command) > JOB_CMD_MAX || j->script != NULL)) {
        return admin_fail(e, ERR_INVALID,
                          "a command (1-%d bytes) or an interpreter and a "
                          "script (1-%d bytes)",
                          JOB_CMD_MAX, JOB_SCRIPT_MAX);
    }
    if (j->cwd != NULL && j->cwd[0] != '\0' &&
        (j->cwd[0] != '/' || strlen(j->cwd) > JOB_CWDIR_MAX)) {
        return admin_fail(e, ERR_INVALID, "cwd: an absolute path");
    }
    if (j->timeout < 0 || j->timeout > ADMIN_JOB_TIMEOUT_MAX ||
        j->concurrency < 0 || j->concurrency > ADMIN_JOB_TARGETS_MAX) {
        return admin_fail(e, ERR_INVALID, "timeout: 1-%d s; concurrency: 0-%d",
                          ADMIN_JOB_TIMEOUT_MAX, ADMIN_JOB_TARGETS_MAX);
    }
    snprintf(out->name, sizeof(out->name), "%s", q->name);
    snprintf(out->cron, sizeof(out->cron), "%s", q->cron);
    if (sched_dump(sched_list(q->targets.agents, q->targets.nagents),
                   out->agents, sizeof(out->agents)) != ERR_OK ||
        sched_dump(sched_list(q->targets.tags, q->targets.ntags), out->tags,
                   sizeof(out->tags)) != ERR_OK ||
        sched_dump(sched_list(q->targets.groups, q->targets.ngroups),
                   out->groups, sizeof(out->groups)) != ERR_OK) {
        return admin_fail(e, ERR_INVALID, "too many targets");
    }
    snprintf(out->command, sizeof(out->command), "%s",
             script ? "" : j->command);
    snprintf(out->interpreter, sizeof(out->interpreter), "%s",
             script ? j->interpreter : "");
    out->script = script ? (char *)(uintptr_t)j->script : NULL;
    snprintf(out->cwd, sizeof(out->cwd), "%s", j->cwd != NULL ? j->cwd : "");
    out->timeout = j->timeout == 0 ? ADMIN_JOB_TIMEOUT_DEFAULT : j->timeout;
    out->concurrency = j->concurrency;
    snprintf(out->created_by, sizeof(out->created_by), "%s",
             c->actor != NULL ? c->actor : "");
    snprintf(out->created_by_id, sizeof(out->created_by_id), "%s",
             c->user_id != NULL ? c->user_id : "");
    if (c->job_user != NULL) {
        /* the targets as they resolve now must be in the creator's scope
         * (job-scheduler); each firing checks again */
        struct admin_job_targets t = q->targets;
        if ((r = admin_job_scope_targets(c, &t, JOB_ROLE_SCHEDULER, e)) !=
            ERR_OK) {
            return r;
        }
    }
    /* from the current minute on: the next matching one fires */
    out->last_fire = admin_schedule_clock(c->cfg) / 60 * 60;
    r = store_schedule_add(c->st, out);
    out->script = NULL;
    if (r != ERR_OK) {
        return admin_fail(e, r,
                          r == ERR_EXISTS ? "a schedule '%s' exists"
                                          : "cannot record schedule '%s'",
                          q->name);
    }
    snprintf(detail, sizeof(detail), "cron '%s': %.200s", out->cron,
             script ? "(script)" : out->command);
    (void)admin_audit(c, "schedule.add", out->name, detail, NULL);
    return ERR_OK;
}

bool admin_schedule_visible(const struct admin_ctx *c,
                            const struct store_schedule *s)
{
    return c->job_user == NULL || strcmp(s->created_by_id, c->job_user) == 0;
}

int admin_schedule_delete(const struct admin_ctx *c, const char *ref,
                          struct admin_err *e)
{
    struct store_schedule s;
    const char *key = ref;
    int r;

    if (c->job_user != NULL) {
        /* a job-scheduler deletes only their own (others: not found) */
        r = store_schedule_get(c->st, ref, &s);
        if (r == ERR_OK && !admin_schedule_visible(c, &s)) {
            r = ERR_NOT_FOUND;
        }
        store_schedule_release(&s);
        if (r != ERR_OK) {
            return admin_fail(e, r,
                              r == ERR_NOT_FOUND ? "schedule '%s' not found"
                                                 : "cannot read schedule '%s'",
                              ref);
        }
        key = s.id; /* the one checked */
    }
    r = store_schedule_delete(c->st, key);

    if (r != ERR_OK) {
        return admin_fail(e, r,
                          r == ERR_NOT_FOUND ? "schedule '%s' not found"
                                             : "cannot delete schedule '%s'",
                          ref);
    }
    (void)admin_audit(c, "schedule.delete", ref, NULL, NULL);
    return ERR_OK;
}

/* The targets' JSON arrays as string pointers (into the arrays). */
static const char **sched_strings(json_t *a, size_t *n)
{
    const char **out;
    size_t i;
    json_t *v;

    *n = 0;
    if (!json_is_array(a) || json_array_size(a) == 0 ||
        (out = calloc(json_array_size(a), sizeof(*out))) == NULL) {
        return NULL;
    }
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v)) {
            out[(*n)++] = json_string_value(v);
        }
    }
    return out;
}

/* One firing: a batch started by "schedule:NAME". */
static void sched_fire(const struct admin_ctx *c,
                       const struct store_schedule *s, char *batch)
{
    json_t *ja = json_loads(s->agents, 0, NULL),
           *jt = json_loads(s->tags, 0, NULL),
           *jg = json_loads(s->groups, 0, NULL);
    const char **agents, **tags, **groups;
    struct admin_job_targets t;
    struct admin_job_req q;
    struct admin_ctx sc = *c;
    struct admin_err e;
    char actor[STORE_NAME_MAX + 16];
    size_t n = 0;
    bool delivered = false;

    agents = sched_strings(ja, &t.nagents);
    tags = sched_strings(jt, &t.ntags);
    groups = sched_strings(jg, &t.ngroups);
    t.agents = agents;
    t.tags = tags;
    t.groups = groups;
    snprintf(actor, sizeof(actor), "schedule:%s", s->name);
    sc.actor = actor;
    sc.job_user = NULL;
    if (s->created_by_id[0] != '\0') {
        /* the creator's rights, as they are now */
        struct store_user u;
        unsigned mask = 0;
        if (store_user_get(c->st, s->created_by_id, &u) != ERR_OK ||
            u.disabled) {
            log_warn("schedule %s: not run: its creator is gone or disabled",
                     s->name);
            (void)admin_audit(&sc, "schedule.failed", s->name,
                              "its creator is gone or disabled", NULL);
            batch[0] = '\0';
            goto out;
        }
        if (store_site_role_mask(c->st, s->created_by_id, NULL, &mask) !=
                ERR_OK ||
            (mask & SITE_ROLE_BIT(SITE_ROLE_ADMIN)) == 0) {
            sc.job_user = s->created_by_id;
        }
    }
    q = (struct admin_job_req){
        .command = s->interpreter[0] == '\0' ? s->command : NULL,
        .interpreter = s->interpreter[0] != '\0' ? s->interpreter : NULL,
        .script = s->interpreter[0] != '\0' ? s->script : NULL,
        .cwd = s->cwd,
        .timeout = s->timeout,
        .concurrency = s->concurrency,
        .role = JOB_ROLE_SCHEDULER};
    if (admin_job_queue_many(&sc, &t, &q, batch, &n, &delivered, &e) !=
        ERR_OK) {
        batch[0] = '\0';
        log_warn("schedule %s: not run: %s", s->name, e.msg);
        (void)admin_audit(&sc, "schedule.failed", s->name, e.msg, NULL);
    } else {
        log_info("schedule %s: batch %s on %zu agents", s->name, batch, n);
    }
out:
    free(agents);
    free(tags);
    free(groups);
    json_decref(ja);
    json_decref(jt);
    json_decref(jg);
}

/*
 * The tick, in two parts (issue 18: no store statement on the loop on a
 * database server). The plan runs on the schedules' own store worker
 * (one connection): it reads the schedules, records the minutes of the
 * disabled ones, and keeps the ones whose minute has come, each with
 * whether it fires and how many firings were missed. Then, on the loop,
 * those few are audited and fired (a batch of jobs: the hub is the
 * loop's; starting jobs still makes its statements there, as POST /jobs
 * does) and their minutes recorded by a second job on the same worker,
 * queued before the next tick's plan: its FIFO keeps a minute from being
 * considered twice. One tick is in flight at a time; the next is timed
 * from its end, so a database that does not answer holds the worker,
 * never the loop. On SQLite the worker is inline: all of it runs at
 * once, as before.
 */
struct sched_due {
    struct store_schedule s; /* its script: store_schedule_release */
    int64_t missed;
    bool fire;
    char batch[STORE_ID_MAX + 1];
};

struct sched_plan_job {
    struct store_work job; /* first: the worker's */
    int64_t minute;
    int ok;
    struct sched_due *due;
    size_t ndue;
};

struct sched_mark_job {
    struct store_work job; /* first: the worker's */
    int64_t minute, now;
    struct sched_due *due; /* the plan's, owned here now */
    size_t ndue;
};

struct admin_scheduler {
    const struct config *cfg;
    struct loop *loop;
    struct store *st; /* the loop's (firing) */
    struct hub *hub;
    struct store_worker *w;
    uint64_t timer;
    bool planning; /* a plan job is queued or runs */
};

static void sched_due_free(struct sched_due *due, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        store_schedule_release(&due[i].s);
    }
    free(due);
}

static void sched_plan_work(struct store_work *j, struct store *st)
{
    struct sched_plan_job *pj = (struct sched_plan_job *)j;
    struct store_schedule *list = NULL;
    size_t n = 0;

    if ((pj->ok = store_schedule_list(st, &list, &n)) != ERR_OK) {
        return;
    }
    if (n > 0 && (pj->due = calloc(n, sizeof(*pj->due))) == NULL) {
        pj->ok = ERR_NOMEM;
        store_schedule_list_free(list, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct store_schedule *s = &list[i];
        struct sched_due *d;
        struct cron cr;
        char why[160];
        bool fire;
        int r;

        if (s->last_fire >= pj->minute) {
            continue;
        }
        if (!s->enabled) {
            /* a disabled schedule's minutes are neither run nor missed */
            if (store_schedule_mark(st, s->id, pj->minute, 0, 0, util_now(),
                                    "") != ERR_OK) {
                log_warn("schedule %s: cannot record its minute", s->name);
            }
            continue;
        }
        if (cron_parse(s->cron, &cr, why, sizeof(why)) != ERR_OK) {
            log_warn("schedule %s: %s", s->name, why);
            continue;
        }
        {
            time_t tt = (time_t)pj->minute;
            struct tm tm;
            fire = localtime_r(&tt, &tm) != NULL && cron_match(&cr, &tm);
        }
        /* each node ticks: the one whose claim moves last_fire on to
         * this minute fires it and counts what was missed */
        if ((r = store_schedule_claim(st, s->id, pj->minute)) != ERR_OK) {
            if (r != ERR_NOT_FOUND) {
                log_warn("schedule %s: cannot claim its minute", s->name);
            }
            continue;
        }
        d = &pj->due[pj->ndue++];
        /* the matching minutes between the last one considered and this
         * one fell while the server was not running: reported only */
        d->missed =
            cron_count(&cr, s->last_fire, pj->minute - 60, SCHED_MISSED_LIMIT);
        d->fire = fire;
        d->s = *s; /* the script moves with it */
        s->script = NULL;
    }
    store_schedule_list_free(list, n);
}

static void sched_mark_work(struct store_work *j, struct store *st)
{
    struct sched_mark_job *mj = (struct sched_mark_job *)j;

    for (size_t i = 0; i < mj->ndue; i++) {
        const struct sched_due *d = &mj->due[i];

        if (store_schedule_mark(st, d->s.id, mj->minute, d->fire ? 1 : 0,
                                d->missed, mj->now, d->batch) != ERR_OK) {
            log_warn("schedule %s: cannot record its firing", d->s.name);
        }
    }
}

static void sched_mark_done(void *owner, struct store_work *j)
{
    struct sched_mark_job *mj = (struct sched_mark_job *)j;

    (void)owner;
    if (!j->ran && owner != NULL) {
        log_warn("schedules: cannot record this minute's firings (no "
                 "connection to the database)");
    }
    sched_due_free(mj->due, mj->ndue);
    free(mj);
}

static void sched_arm(struct admin_scheduler *sc);

static void sched_plan_done(void *owner, struct store_work *j)
{
    struct sched_plan_job *pj = (struct sched_plan_job *)j;
    struct admin_scheduler *sc = owner;
    struct sched_mark_job *mj;
    struct admin_ctx c;

    if (sc == NULL) {
        sched_due_free(pj->due, pj->ndue);
        free(pj);
        return;
    }
    sc->planning = false;
    if (!j->ran || pj->ok != ERR_OK) {
        log_warn("schedules: cannot read them");
        sched_due_free(pj->due, pj->ndue);
        free(pj);
        sched_arm(sc);
        return;
    }
    memset(&c, 0, sizeof(c));
    c.st = sc->st;
    c.cfg = sc->cfg;
    c.hub = sc->hub;
    c.data_dir = sc->cfg->data_dir;
    c.actor = "schedule";
    c.source = "server";
    for (size_t i = 0; i < pj->ndue; i++) {
        struct sched_due *d = &pj->due[i];

        if (d->missed > 0) {
            char detail[200];
            snprintf(detail, sizeof(detail),
                     "%lld firing%s missed while the server was not running "
                     "(not run late)",
                     (long long)d->missed, d->missed == 1 ? "" : "s");
            log_warn("schedule %s: %s", d->s.name, detail);
            (void)admin_audit(&c, "schedule.missed", d->s.name, detail, NULL);
        }
        if (d->fire) {
            sched_fire(&c, &d->s, d->batch);
        }
    }
    if (pj->ndue > 0) {
        if ((mj = calloc(1, sizeof(*mj))) == NULL) {
            log_warn("schedules: out of memory recording this minute");
            sched_due_free(pj->due, pj->ndue);
        } else {
            mj->minute = pj->minute;
            mj->now = util_now();
            mj->due = pj->due;
            mj->ndue = pj->ndue;
            mj->job.work = sched_mark_work;
            mj->job.done = sched_mark_done;
            store_worker_run(sc->w, &mj->job); /* before the next plan */
        }
    } else {
        free(pj->due);
    }
    free(pj);
    sched_arm(sc);
}

static void sched_tick(struct loop *l, void *arg)
{
    struct admin_scheduler *sc = arg;
    struct sched_plan_job *pj;
    int64_t now = admin_schedule_clock(sc->cfg);

    (void)l;
    sc->timer = 0;
    if (sc->planning) {
        return; /* its done arms the next */
    }
    if ((pj = calloc(1, sizeof(*pj))) == NULL) {
        log_warn("schedules: out of memory");
        sched_arm(sc);
        return;
    }
    pj->minute = now / 60 * 60;
    pj->ok = ERR_INTERNAL;
    pj->job.work = sched_plan_work;
    pj->job.done = sched_plan_done;
    sc->planning = true;
    store_worker_run(sc->w, &pj->job); /* inline: done ran already */
}

/* Four times a minute of the schedule clock (at least every 250 ms). */
static void sched_arm(struct admin_scheduler *sc)
{
    int64_t ms = (int64_t)sc->cfg->jobs_schedule_minute_seconds * 250;

    if (sc->timer == 0) {
        sc->timer =
            loop_add_timer(sc->loop, ms < 250 ? 250 : ms, sched_tick, sc);
    }
}

struct admin_scheduler *admin_scheduler_start(struct loop *l, struct store *st,
                                              const struct config *cfg,
                                              struct hub *hub)
{
    struct admin_scheduler *sc = calloc(1, sizeof(*sc));

    if (sc == NULL) {
        return NULL;
    }
    sc->cfg = cfg;
    sc->loop = l;
    sc->st = st;
    sc->hub = hub;
    if ((sc->w = store_worker_new(l, st, cfg->store_path, 1, "the schedules",
                                  sc)) == NULL) {
        free(sc);
        return NULL;
    }
    sc->timer = loop_add_timer(l, 0, sched_tick, sc);
    return sc;
}

void admin_scheduler_stop(struct admin_scheduler *sc)
{
    if (sc == NULL) {
        return;
    }
    if (sc->timer != 0) {
        loop_del_timer(sc->loop, sc->timer);
    }
    /* a plan in flight comes back (if ever) with owner NULL */
    store_worker_stop(sc->w, ADMIN_SCHEDULER_STOP_MS);
    free(sc);
}

static json_t *sched_time_local(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char s[40];

    if (t <= 0 || localtime_r(&tt, &tm) == NULL ||
        strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S%z", &tm) == 0) {
        return json_null();
    }
    return json_string(s);
}

json_t *admin_schedule_json(const struct config *cfg,
                            const struct store_schedule *s)
{
    json_t *o = json_object();
    struct cron cr;
    int64_t next = -1;

    if (s->enabled && cron_parse(s->cron, &cr, NULL, 0) == ERR_OK) {
        /* a year ahead at most */
        next = cron_next(&cr, admin_schedule_clock(cfg), 527040);
    }
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "name", json_string(s->name));
    json_object_set_new(o, "cron", json_string(s->cron));
    json_object_set_new(o, "enabled", json_boolean(s->enabled));
    json_object_set_new(o, "agents", json_loads(s->agents, 0, NULL));
    json_object_set_new(o, "tags", json_loads(s->tags, 0, NULL));
    json_object_set_new(o, "groups", json_loads(s->groups, 0, NULL));
    json_object_set_new(o, "command",
                        s->interpreter[0] == '\0' ? admin_json_text(s->command)
                                                  : json_null());
    json_object_set_new(o, "interpreter",
                        s->interpreter[0] != '\0' ? json_string(s->interpreter)
                                                  : json_null());
    json_object_set_new(o, "cwd", json_string(s->cwd));
    json_object_set_new(o, "timeout", json_integer(s->timeout));
    json_object_set_new(o, "concurrency", json_integer(s->concurrency));
    json_object_set_new(o, "created_by", json_string(s->created_by));
    json_object_set_new(o, "created", admin_json_time(s->created_at));
    json_object_set_new(o, "fired", json_integer(s->fired));
    json_object_set_new(o, "missed", json_integer(s->missed));
    json_object_set_new(o, "last_missed", admin_json_time(s->last_missed_at));
    json_object_set_new(o, "last_batch",
                        s->last_batch[0] != '\0' ? json_string(s->last_batch)
                                                 : json_null());
    json_object_set_new(o, "next_run",
                        next > 0 ? sched_time_local(sched_real(cfg, next))
                                 : json_null());
    json_object_set_new(o, "next_run_utc",
                        next > 0 ? admin_json_time(sched_real(cfg, next))
                                 : json_null());
    return o;
}

int admin_schedule_set_enabled(const struct admin_ctx *c, const char *ref,
                               bool enabled, struct store_schedule *out,
                               struct admin_err *e)
{
    int r = store_schedule_get(c->st, ref, out);

    if (r == ERR_OK && !admin_schedule_visible(c, out)) {
        store_schedule_release(out);
        r = ERR_NOT_FOUND; /* a job-scheduler sees only their own */
    }
    if (r == ERR_OK) {
        r = store_schedule_set_enabled(c->st, out->id, enabled);
        if (r != ERR_OK) {
            store_schedule_release(out);
        }
    }
    if (r != ERR_OK) {
        return admin_fail(e, r,
                          r == ERR_NOT_FOUND ? "schedule '%s' not found"
                                             : "cannot change schedule '%s'",
                          ref);
    }
    out->enabled = enabled;
    (void)admin_audit(c, enabled ? "schedule.enable" : "schedule.disable",
                      out->name, NULL, NULL);
    return ERR_OK;
}
