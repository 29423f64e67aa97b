/*
 * Jobs (admin_job.h).
 */
#include "admin/admin_job.h"
#include "admin/admin_client_group.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/util.h"
#include "hub/hub.h"
#include "store/agents.h"
#include "store/nodes.h"
#include "store/notices.h"

struct admin_job_run {
    struct store *st;
    struct hub *hub; /* records the result; NULL: run->st at once */
    struct store_job *j;
    admin_job_done_fn done;
    void *arg;
};

/* The job's result (j, as recorded) is in the store, or could not be put
 * there: its caller hears of its end. */
static void admin_job_recorded(void *arg, const struct store_job *j)
{
    struct admin_job_run *run = arg;

    run->done(run->arg, j);
    free(run->j); /* its output was r's, never its own */
    free(run);
}

static void admin_job_result(void *arg, const struct hub_job_result *r)
{
    struct admin_job_run *run = arg;
    struct store_job *j = run->j;

    hub_job_result_to(j, r); /* its output r's, valid during this call */
    if (run->hub != NULL) {
        /* the hub keeps its own copy of the output until it is written */
        hub_job_record(run->hub, j, NULL, false, admin_job_recorded, run);
        return;
    }
    if (store_job_finish(run->st, j) != ERR_OK) {
        log_msg(LOG_ERROR, "job %s: cannot record its result", j->id);
    }
    admin_job_recorded(run, j);
}

static bool admin_job_account_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    return n == 0 || (n <= 32 && s[0] != '-' &&
                      strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQR"
                                "STUVWXYZ0123456789._-") == n);
}

/* The push's summary (command) and parameters (JSON, heap). */
static char *admin_job_push_fill(const struct admin_job_push *p,
                                 struct store_job *out, struct admin_err *e)
{
    unsigned char md[crypto_hash_sha256_BYTES];
    char hex[2 * sizeof(md) + 1];
    json_t *o;
    char *txt;

    /* the agent checks it again with the same function (agent/job.c) */
    if (p->dest == NULL ||
        !util_path_clean(p->dest, strlen(p->dest), JOB_CWDIR_MAX)) {
        admin_fail(e, ERR_INVALID,
                   "dest: an absolute path without '.', '..' or empty parts");
        return NULL;
    }
    if (p->mode < 0 || p->mode > 01777) {
        admin_fail(e, ERR_INVALID,
                   "mode: 0000-1777 (octal; setuid and setgid are refused)");
        return NULL;
    }
    if (!admin_job_account_ok(p->owner) || !admin_job_account_ok(p->group)) {
        admin_fail(e, ERR_INVALID,
                   "owner, group: a name or number (A-Z a-z 0-9 . _ -)");
        return NULL;
    }
    if (p->len > JOB_PUSH_MAX) {
        admin_fail(e, ERR_INVALID, "the file is larger than %d bytes",
                   JOB_PUSH_MAX);
        return NULL;
    }
    crypto_hash_sha256(md, p->data != NULL ? p->data : (const uint8_t *)"",
                       p->len);
    sodium_bin2hex(hex, sizeof(hex), md, sizeof(md));
    o = json_pack("{s:s, s:i, s:s, s:s, s:b, s:s, s:I}", "path", p->dest,
                  "mode", p->mode, "owner", p->owner != NULL ? p->owner : "",
                  "group", p->group != NULL ? p->group : "", "overwrite",
                  p->overwrite, "sha256", hex, "size", (json_int_t)p->len);
    txt = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (txt == NULL) {
        admin_fail(e, ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(out->command, sizeof(out->command),
             "[push %.3000s, %zu bytes, sha256 %s, mode %04o%s]", p->dest,
             p->len, hex, (unsigned)p->mode, p->overwrite ? ", overwrite" : "");
    return txt;
}

/* Checks q and fills the job's fields (but agent_id, batch_id). */
static int admin_job_fill(const struct admin_ctx *c,
                          const struct admin_job_req *q, struct store_job *out,
                          struct admin_err *e)
{
    bool script = q->interpreter != NULL && q->interpreter[0] != '\0';
    int timeout = q->timeout == 0 ? ADMIN_JOB_TIMEOUT_DEFAULT : q->timeout;
    int concurrency = q->concurrency;

    memset(out, 0, sizeof(*out));
    if (q->push != NULL) {
        if (script || (q->command != NULL && q->command[0] != '\0')) {
            return admin_fail(e, ERR_INVALID,
                              "a file push, a command or a script: one");
        }
        if ((out->push = admin_job_push_fill(q->push, out, e)) == NULL) {
            return e->code != 0 ? e->code : ERR_INVALID;
        }
        /* each running push holds the file in the server's memory */
        if (q->concurrency == 0 || q->concurrency > ADMIN_JOB_PUSH_PARALLEL) {
            concurrency = ADMIN_JOB_PUSH_PARALLEL;
        }
    } else if (script) {
        unsigned char md[crypto_hash_sha256_BYTES];
        char hex[2 * sizeof(md) + 1];
        size_t n = q->script != NULL ? strlen(q->script) : 0;

        if (strlen(q->interpreter) > JOB_INTERP_MAX ||
            strspn(q->interpreter, "abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                strlen(q->interpreter)) {
            return admin_fail(e, ERR_INVALID,
                              "interpreter: a name of 1-%d letters, digits, "
                              "'.', '_' or '-'",
                              JOB_INTERP_MAX);
        }
        if (n == 0 || n > JOB_SCRIPT_MAX) {
            return admin_fail(e, ERR_INVALID, "script: 1-%d bytes",
                              JOB_SCRIPT_MAX);
        }
        if (q->command != NULL && q->command[0] != '\0') {
            return admin_fail(e, ERR_INVALID,
                              "a command or a script, not both");
        }
        crypto_hash_sha256(md, (const unsigned char *)q->script, n);
        sodium_bin2hex(hex, sizeof(hex), md, sizeof(md));
        snprintf(out->interpreter, sizeof(out->interpreter), "%s",
                 q->interpreter);
        snprintf(out->command, sizeof(out->command),
                 "[%s script, %zu bytes, sha256 %s]", q->interpreter, n, hex);
    } else {
        if (q->command == NULL || q->command[0] == '\0' ||
            strlen(q->command) > JOB_CMD_MAX) {
            return admin_fail(e, ERR_INVALID, "command: 1-%d bytes",
                              JOB_CMD_MAX);
        }
        if (q->script != NULL) {
            return admin_fail(e, ERR_INVALID, "a script needs an interpreter");
        }
        snprintf(out->command, sizeof(out->command), "%s", q->command);
    }
    if (q->cwd != NULL && q->cwd[0] != '\0' &&
        (q->cwd[0] != '/' || strlen(q->cwd) > JOB_CWDIR_MAX)) {
        return admin_fail(e, ERR_INVALID, "cwd: an absolute path");
    }
    if (q->sudo != NULL && q->sudo[0] != '\0') {
        size_t n = strlen(q->sudo);
        if (q->push != NULL) {
            return admin_fail(e, ERR_INVALID,
                              "sudo: for commands and scripts (a push has "
                              "owner and group)");
        }
        if (n > JOB_SUDO_MAX || q->sudo[0] == '-' ||
            strspn(q->sudo, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
                            "WXYZ0123456789._-") != n) {
            return admin_fail(e, ERR_INVALID,
                              "sudo: an account name of 1-%d letters, digits, "
                              "'.', '_' or '-'",
                              JOB_SUDO_MAX);
        }
        snprintf(out->sudo, sizeof(out->sudo), "%s", q->sudo);
    }
    if (timeout < 1 || timeout > ADMIN_JOB_TIMEOUT_MAX) {
        return admin_fail(e, ERR_INVALID, "timeout: 1-%d seconds",
                          ADMIN_JOB_TIMEOUT_MAX);
    }
    if (q->concurrency < 0 || q->concurrency > ADMIN_JOB_TARGETS_MAX) {
        return admin_fail(e, ERR_INVALID, "concurrency: 0-%d (0: no limit)",
                          ADMIN_JOB_TARGETS_MAX);
    }
    snprintf(out->cwd, sizeof(out->cwd), "%s", q->cwd != NULL ? q->cwd : "");
    snprintf(out->started_by, sizeof(out->started_by), "%s",
             c->actor != NULL ? c->actor : "");
    out->timeout = timeout;
    out->concurrency = concurrency;
    out->stop_on_failure = q->stop_on_failure;
    /* only read by store_job_add */
    out->script = script ? (char *)(uintptr_t)q->script : NULL;
    return ERR_OK;
}

/* Records *j for agent_id and writes job.run. */
static int admin_job_record(const struct admin_ctx *c, const char *agent_id,
                            struct store_job *j, struct admin_err *e)
{
    char detail[400];
    int r;

    if (agent_id == NULL || agent_id[0] == '\0' ||
        strlen(agent_id) > JOB_AGENT_MAX) {
        return admin_fail(e, ERR_INVALID, "agent: 1-%d characters",
                          JOB_AGENT_MAX);
    }
    snprintf(j->agent_id, sizeof(j->agent_id), "%s", agent_id);
    if ((r = store_job_add(c->st, j)) != ERR_OK) {
        return admin_fail(e, r, "cannot record the job");
    }
    snprintf(detail, sizeof(detail), "job %s%s%s%s%s: %.200s", j->id,
             j->batch_id[0] != '\0' ? " batch " : "", j->batch_id,
             j->sudo[0] != '\0' ? " sudo " : "", j->sudo, j->command);
    (void)admin_audit(c, "job.run", agent_id, detail, NULL);
    return ERR_OK;
}

static bool admin_job_has_tag(const char *tags_json, const char *tag)
{
    json_t *a = json_loads(tags_json, 0, NULL);
    size_t i;
    json_t *v;
    bool found = false;

    json_array_foreach(a, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), tag) == 0) {
            found = true;
        }
    }
    json_decref(a);
    return found;
}

/* The target agent IDs, without repeats: a heap array of pointers into
 * t and agents (kept until the caller frees both). */
static int admin_job_resolve(const struct admin_ctx *c,
                             const struct admin_job_targets *t,
                             struct store_agent **agents, size_t *nagents,
                             const char ***ids, size_t *n, struct admin_err *e)
{
    struct store_client_group *groups = NULL;
    const char **out;
    size_t cap = t->nagents, k = 0;
    int r;

    *agents = NULL;
    *nagents = 0;
    *ids = NULL;
    *n = 0;
    if (t->ngroups > 0) {
        if ((groups = calloc(t->ngroups, sizeof(*groups))) == NULL) {
            return admin_fail(e, ERR_NOMEM, "out of memory");
        }
        for (size_t g = 0; g < t->ngroups; g++) {
            if ((r = store_client_group_get(c->st, t->groups[g], &groups[g])) !=
                ERR_OK) {
                free(groups);
                return admin_fail(e, r,
                                  r == ERR_NOT_FOUND
                                      ? "client group '%s' not found"
                                      : "cannot read client group '%s'",
                                  t->groups[g]);
            }
        }
    }
    if (t->ntags > 0 || t->ngroups > 0) {
        if ((r = store_agent_list(c->st, agents, nagents)) != ERR_OK) {
            free(groups);
            return admin_fail(e, r, "cannot list the agents");
        }
        cap += *nagents;
    }
    if (cap == 0) {
        free(groups);
        return admin_fail(e, ERR_INVALID,
                          t->ngroups > 0 ? "the client groups have no agents"
                                         : "no target: name agents, tags or "
                                           "client groups");
    }
    if ((out = calloc(cap, sizeof(*out))) == NULL) {
        free(groups);
        return admin_fail(e, ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < t->nagents + *nagents; i++) {
        const char *id;
        bool dup = false;

        if (i < t->nagents) {
            id = t->agents[i];
        } else {
            const struct store_agent *a = &(*agents)[i - t->nagents];
            bool match = false;
            for (size_t g = 0; g < t->ntags && !match; g++) {
                match = admin_job_has_tag(a->tags, t->tags[g]);
            }
            for (size_t g = 0; g < t->ngroups && !match; g++) {
                match = admin_client_group_has(&groups[g], a);
            }
            if (!match) {
                continue;
            }
            id = a->id;
        }
        for (size_t d = 0; d < k && !dup; d++) {
            dup = strcmp(out[d], id) == 0;
        }
        if (!dup) {
            out[k++] = id;
        }
    }
    free(groups);
    if (k == 0) {
        free(out);
        if (t->ngroups > 0) {
            return admin_fail(e, ERR_NOT_FOUND,
                              "no agent matches the tags or client groups");
        }
        return admin_fail(e, ERR_NOT_FOUND, "no agent has %s%s",
                          t->ntags == 1 ? "the tag " : "any of the tags",
                          t->ntags == 1 ? t->tags[0] : "");
    }
    if (k > ADMIN_JOB_TARGETS_MAX) {
        free(out);
        return admin_fail(e, ERR_INVALID, "at most %d agents in one batch",
                          ADMIN_JOB_TARGETS_MAX);
    }
    *ids = out;
    *n = k;
    return ERR_OK;
}

/* The agents a job-role holder reaches: the client groups on which the
 * user holds one of the roles (mask of 1u << JOB_ROLE_*), evaluated
 * against the agents as they are now. */
struct admin_job_scope {
    struct store_client_group *groups;
    size_t ngroups;
    struct store_agent *agents;
    size_t nagents;
};

static void admin_job_scope_free(struct admin_job_scope *sc)
{
    free(sc->groups);
    store_agent_list_free(sc->agents, sc->nagents);
    memset(sc, 0, sizeof(*sc));
}

static int admin_job_scope_load(const struct admin_ctx *c, unsigned roles,
                                struct admin_job_scope *sc)
{
    char(*ids)[STORE_ID_MAX + 1] = NULL;
    size_t n = 0;
    int r;

    memset(sc, 0, sizeof(*sc));
    for (int role = JOB_ROLE_RUNNER; role <= JOB_ROLE_SCHEDULER; role++) {
        struct store_client_group *more;

        if ((roles & (1u << role)) == 0) {
            continue;
        }
        if ((r = store_job_role_groups(c->st, c->job_user, role, &ids, &n)) !=
            ERR_OK) {
            admin_job_scope_free(sc);
            return r;
        }
        more =
            n > 0 ? realloc(sc->groups, (sc->ngroups + n) * sizeof(*sc->groups))
                  : sc->groups;
        if (n > 0 && more == NULL) {
            free(ids);
            admin_job_scope_free(sc);
            return ERR_NOMEM;
        }
        sc->groups = more;
        for (size_t i = 0; i < n; i++) {
            /* a group deleted meanwhile simply grants nothing */
            if (store_client_group_get(c->st, ids[i],
                                       &sc->groups[sc->ngroups]) == ERR_OK) {
                sc->ngroups++;
            }
        }
        free(ids);
        ids = NULL;
    }
    if (sc->ngroups > 0 &&
        (r = store_agent_list(c->st, &sc->agents, &sc->nagents)) != ERR_OK) {
        admin_job_scope_free(sc);
        return r;
    }
    return ERR_OK;
}

/* A known agent that is now a member of one of the scope's groups. */
static bool admin_job_scope_has(const struct admin_job_scope *sc,
                                const char *agent_id)
{
    for (size_t a = 0; a < sc->nagents; a++) {
        if (strcmp(sc->agents[a].id, agent_id) != 0) {
            continue;
        }
        for (size_t g = 0; g < sc->ngroups; g++) {
            if (admin_client_group_has(&sc->groups[g], &sc->agents[a])) {
                return true;
            }
        }
        return false;
    }
    return false;
}

/* The refusal names the agent only if the caller named it (t NULL: every
 * ID was named): an agent reached through a tag or a group stays unnamed,
 * or a runner could learn the IDs of agents outside their scope. */
static int admin_job_scope_ids(const struct admin_ctx *c, int role,
                               const char *const *ids, size_t n,
                               const struct admin_job_targets *t,
                               struct admin_err *e)
{
    struct admin_job_scope sc;
    char detail[200];
    int r;

    if (c->job_user == NULL) {
        return ERR_OK;
    }
    if ((r = admin_job_scope_load(c, 1u << role, &sc)) != ERR_OK) {
        return admin_fail(e, r, "cannot read the job roles");
    }
    for (size_t i = 0; i < n; i++) {
        if (!admin_job_scope_has(&sc, ids[i])) {
            admin_job_scope_free(&sc);
            snprintf(detail, sizeof(detail),
                     "%s: agent outside the client groups of the role "
                     "(%zu agents asked)",
                     job_role_str(role), n);
            bool named = t == NULL;
            for (size_t k = 0; t != NULL && k < t->nagents && !named; k++) {
                named = strcmp(t->agents[k], ids[i]) == 0;
            }
            (void)admin_audit(c, "job.denied", ids[i], detail, NULL);
            if (!named) {
                return admin_fail(e, ERR_DENIED,
                                  "the targets reach an agent outside the "
                                  "client groups on which you hold the %s "
                                  "role; nothing was run",
                                  job_role_str(role));
            }
            return admin_fail(e, ERR_DENIED,
                              "agent %.64s is not in a client group on which "
                              "you hold the %s role; nothing was run",
                              ids[i], job_role_str(role));
        }
    }
    admin_job_scope_free(&sc);
    return ERR_OK;
}

int admin_job_scope_check(const struct admin_ctx *c, int role,
                          const char *const *ids, size_t n, struct admin_err *e)
{
    return admin_job_scope_ids(c, role, ids, n, NULL, e);
}

/* For a caller limited by job roles, a tag or group that matches nothing
 * (or does not exist) is refused like one outside the scope, so names
 * cannot be probed. */
static int admin_job_resolve_limited(const struct admin_ctx *c, int role,
                                     const struct admin_job_targets *t,
                                     struct store_agent **agents,
                                     size_t *nagents, const char ***ids,
                                     size_t *n, struct admin_err *e)
{
    int r = admin_job_resolve(c, t, agents, nagents, ids, n, e);

    if (r == ERR_NOT_FOUND && c->job_user != NULL) {
        char detail[200];

        snprintf(detail, sizeof(detail), "%s: %.150s", job_role_str(role),
                 e->msg);
        (void)admin_audit(c, "job.denied", "-", detail, NULL);
        return admin_fail(e, ERR_DENIED,
                          "the targets reach an agent outside the client "
                          "groups on which you hold the %s role; nothing was "
                          "run",
                          job_role_str(role));
    }
    return r != ERR_OK ? r : admin_job_scope_ids(c, role, *ids, *n, t, e);
}

int admin_job_scope_targets(const struct admin_ctx *c,
                            const struct admin_job_targets *t, int role,
                            struct admin_err *e)
{
    struct store_agent *agents = NULL;
    const char **ids = NULL;
    size_t nagents = 0, nids = 0;
    int r;

    if (c->job_user == NULL) {
        return ERR_OK;
    }
    r = admin_job_resolve_limited(c, role, t, &agents, &nagents, &ids, &nids,
                                  e);
    free(ids);
    store_agent_list_free(agents, nagents);
    return r;
}

size_t admin_job_filter(const struct admin_ctx *c, struct store_job *list,
                        size_t n)
{
    struct admin_job_scope sc;
    size_t k = 0;

    if (c->job_user == NULL) {
        return n;
    }
    if (admin_job_scope_load(c,
                             (1u << JOB_ROLE_RUNNER) | (1u << JOB_ROLE_PUSHER) |
                                 (1u << JOB_ROLE_SCHEDULER),
                             &sc) != ERR_OK) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (admin_job_scope_has(&sc, list[i].agent_id)) {
            if (k != i) {
                list[k] = list[i];
            }
            k++;
        }
    }
    admin_job_scope_free(&sc);
    return k;
}

int admin_job_queue_many(const struct admin_ctx *c,
                         const struct admin_job_targets *t,
                         const struct admin_job_req *q, char *batch, size_t *n,
                         bool *delivered, struct admin_err *e)
{
    struct store_agent *agents = NULL;
    struct store_job *j;
    const char **ids = NULL;
    size_t nagents = 0, nids = 0;
    int r;

    *delivered = false;
    *n = 0;
    batch[0] = '\0';
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        return admin_fail(e, ERR_NOMEM, "out of memory");
    }
    if ((r = admin_job_fill(c, q, j, e)) != ERR_OK) {
        free(j);
        return r;
    }
    if ((r = admin_job_resolve_limited(c,
                                       q->role != 0      ? q->role
                                       : q->push != NULL ? JOB_ROLE_PUSHER
                                                         : JOB_ROLE_RUNNER,
                                       t, &agents, &nagents, &ids, &nids, e)) !=
        ERR_OK) {
        free(ids);
        store_agent_list_free(agents, nagents);
        free(j->push);
        free(j);
        return r;
    }
    util_uuid4(batch);
    if (q->push != NULL &&
        (r = store_job_payload_add(c->st, batch, q->push->data,
                                   q->push->len)) != ERR_OK) {
        free(ids);
        store_agent_list_free(agents, nagents);
        free(j->push);
        free(j);
        return admin_fail(e, r, "cannot record the file");
    }
    for (size_t i = 0; i < nids; i++) {
        snprintf(j->batch_id, sizeof(j->batch_id), "%s", batch);
        snprintf(j->status, sizeof(j->status), "queued");
        j->batch_seq = (int)i;
        if ((r = admin_job_record(c, ids[i], j, e)) != ERR_OK) {
            break;
        }
        (*n)++;
    }
    free(ids);
    store_agent_list_free(agents, nagents);
    free(j->push);
    free(j);
    if (*n == 0) {
        return r;
    }
    /* the node holding the agent may be another one (store/notices.h) */
    (void)store_notice_publish(c->st, HUB_CHANGE_JOBS);
    if (c->hub != NULL) {
        *delivered = true;
        hub_jobs_pickup(c->hub);
    } else if (q->in_server) {
        *delivered = true; /* the caller's loop part picks them up */
    } else if (c->data_dir == NULL ||
               notify_tell(c->data_dir, HUB_CHANGE_JOBS, delivered) != ERR_OK ||
               !*delivered) {
        *delivered = false;
        (void)store_job_batch_end(c->st, batch, "failed",
                                  "no server is running");
    }
    return ERR_OK;
}

/* A command on one agent: not a push, the agent in the caller's scope as
 * a runner, *out filled from q (admin_job_fill). */
static int admin_job_one(const struct admin_ctx *c, const char *const *agent_id,
                         const struct admin_job_req *q, struct store_job *out,
                         struct admin_err *e)
{
    int r;

    if (q->push != NULL) {
        return admin_fail(e, ERR_INVALID, "a file push is a batch");
    }
    if ((r = admin_job_scope_check(c, JOB_ROLE_RUNNER, agent_id, 1, e)) !=
        ERR_OK) {
        return r;
    }
    return admin_job_fill(c, q, out, e);
}

/* Records the job admin_job_one filled: running, or, when another node
 * of the cluster holds the agent (elsewhere), queued for that node's
 * pickup with a notice (store/notices.h), as the CLI's jobs are. */
static int admin_job_record_for(const struct admin_ctx *c, const char *agent_id,
                                bool elsewhere, struct store_job *out,
                                struct admin_err *e)
{
    int r;

    if (elsewhere) {
        snprintf(out->status, sizeof(out->status), "queued");
    }
    r = admin_job_record(c, agent_id, out, e);
    out->script = NULL; /* it was the caller's */
    if (r == ERR_OK && elsewhere) {
        (void)store_notice_publish(c->st, HUB_CHANGE_JOBS);
    }
    return r;
}

int admin_job_record_run(const struct admin_ctx *c, const char *agent_id,
                         const struct admin_job_req *q, struct store_job *out,
                         struct admin_err *e)
{
    int r;

    if ((r = admin_job_one(c, &agent_id, q, out, e)) != ERR_OK) {
        return r;
    }
    return admin_job_record_for(
        c, agent_id, store_agent_elsewhere(c->st, agent_id, NULL), out, e);
}

int admin_job_start(const struct admin_ctx *c, const struct admin_job_req *q,
                    const struct store_job *j, admin_job_done_fn done,
                    void *arg)
{
    struct admin_job_run *run;
    struct hub_job_spec spec;

    run = calloc(1, sizeof(*run));
    if (run == NULL || (run->j = malloc(sizeof(*run->j))) == NULL) {
        free(run);
        return ERR_NOMEM;
    }
    *run->j = *j;
    run->j->script = NULL;
    run->j->push = NULL;
    run->j->out = run->j->err = NULL;
    run->st = c->st;
    run->hub = c->hub;
    run->done = done;
    run->arg = arg;
    spec = (struct hub_job_spec){.id = run->j->id,
                                 .save_progress = true,
                                 .command = q->command,
                                 .interpreter = q->interpreter,
                                 .script = q->script,
                                 .cwd = q->cwd,
                                 .sudo = run->j->sudo,
                                 .timeout = run->j->timeout};
    if (c->hub == NULL || hub_job_run(c->hub, run->j->agent_id, &spec,
                                      admin_job_result, run) != ERR_OK) {
        struct hub_job_result fr = {
            .status = "failed", .exit_code = -1, .why = "cannot start the job"};
        admin_job_result(run, &fr);
    }
    return ERR_OK;
}

int admin_job_run(const struct admin_ctx *c, const char *agent_id,
                  const struct admin_job_req *q, admin_job_done_fn done,
                  void *arg, struct store_job *out, struct admin_err *e)
{
    bool elsewhere;
    int r;

    if (c->hub == NULL) {
        return admin_fail(e, ERR_INVALID,
                          "jobs run in the server: it is not running");
    }
    if ((r = admin_job_one(c, &agent_id, q, out, e)) != ERR_OK) {
        return r;
    }
    /* on a cluster the node holding the agent runs it; done is not
     * called then, the caller follows the job in the store */
    elsewhere = !hub_agent_online(c->hub, agent_id) &&
                hub_agent_elsewhere(c->hub, agent_id);
    if ((r = admin_job_record_for(c, agent_id, elsewhere, out, e)) != ERR_OK ||
        elsewhere) {
        return r;
    }
    if (admin_job_start(c, q, out, done, arg) != ERR_OK) {
        return admin_fail(e, ERR_NOMEM, "out of memory");
    }
    return ERR_OK;
}

json_t *admin_job_text(const uint8_t *p, size_t len)
{
    json_t *s = json_stringn((const char *)p, len);
    char *c;
    size_t o = 0;

    if (s != NULL || len == 0) {
        return s != NULL ? s : json_string("");
    }
    /* not UTF-8: bytes >= 0x80 become U+FFFD */
    if ((c = malloc(len * 3 + 1)) == NULL) {
        return json_string("");
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x80 && p[i] != 0) {
            c[o++] = (char)p[i];
        } else {
            c[o++] = (char)0xef;
            c[o++] = (char)0xbf;
            c[o++] = (char)0xbd;
        }
    }
    s = json_stringn(c, o);
    free(c);
    return s != NULL ? s : json_string("");
}

json_t *admin_job_json(const struct store_job *j, bool with_output)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "agent", json_string(j->agent_id));
    json_object_set_new(o, "started_by", json_string(j->started_by));
    json_object_set_new(o, "command", admin_json_text(j->command));
    json_object_set_new(o, "interpreter",
                        j->interpreter[0] != '\0' ? json_string(j->interpreter)
                                                  : json_null());
    json_object_set_new(o, "batch",
                        j->batch_id[0] != '\0' ? json_string(j->batch_id)
                                               : json_null());
    json_object_set_new(o, "concurrency", json_integer(j->concurrency));
    json_object_set_new(o, "cwd", json_string(j->cwd));
    json_object_set_new(
        o, "sudo", j->sudo[0] != '\0' ? json_string(j->sudo) : json_null());
    if (j->push != NULL) {
        json_object_set_new(o, "push", json_loads(j->push, 0, NULL));
    }
    json_object_set_new(o, "timeout", json_integer(j->timeout));
    json_object_set_new(o, "status", json_string(j->status));
    json_object_set_new(o, "exit_code",
                        j->exit_code >= 0 ? json_integer(j->exit_code)
                                          : json_null());
    json_object_set_new(o, "signal",
                        j->signal > 0 ? json_integer(j->signal) : json_null());
    json_object_set_new(o, "why", json_string(j->why));
    json_object_set_new(o, "started", admin_json_time(j->started_at));
    json_object_set_new(o, "finished",
                        j->finished_at != 0 ? admin_json_time(j->finished_at)
                                            : json_null());
    if (with_output) {
        json_object_set_new(o, "stdout", admin_job_text(j->out, j->out_len));
        json_object_set_new(o, "stderr", admin_job_text(j->err, j->err_len));
    }
    return o;
}
