/*
 * Jobs (issue 14): an administrator asks an agent to run a command
 * through the hub; the agent's own rules decide (docs/agent.md).
 * admin_job_run() records the job (store/jobs.h), writes the audit event
 * job.run and starts it; done(arg, job) is called once, in the loop's
 * thread, with the finished job (output included), possibly before
 * admin_job_run() returns (an offline agent).
 */
#ifndef PORTCULLIS_ADMIN_JOB_H
#define PORTCULLIS_ADMIN_JOB_H

#include <jansson.h>

#include "admin/admin.h"
#include "store/jobs.h"

#define ADMIN_JOB_TIMEOUT_DEFAULT 60
#define ADMIN_JOB_TIMEOUT_MAX 86400

#define ADMIN_JOB_TARGETS_MAX 4096 /* agents of one batch */
/* a file push runs on at most this many agents at once (each running one
 * holds a copy of the file in the server's memory) */
#define ADMIN_JOB_PUSH_PARALLEL 16

typedef void (*admin_job_done_fn)(void *arg, const struct store_job *j);

/* A file to copy onto the agents (admin_job_queue_many only). */
struct admin_job_push {
    const char *dest;          /* absolute path on the agent */
    int mode;                  /* 0-01777 (no setuid/setgid) */
    const char *owner, *group; /* NULL or "": the agent's user */
    bool overwrite;
    const uint8_t *data;
    size_t len; /* at most JOB_PUSH_MAX */
};

/* What to run: a command, or a script (interpreter set, its name on the
 * agent, which must permit it; script the body). */
struct admin_job_req {
    const char *command;
    const char *interpreter;
    const char *script;
    const struct admin_job_push *push; /* or a file push */
    const char *cwd;
    const char *sudo; /* NULL or "": none; else an account on the agent */
    int timeout;      /* 0: the default */
    /* a batch (admin_job_queue_many) */
    int concurrency; /* most running at once, 0: no limit */
    bool stop_on_failure;
    /* admin_job_queue_many without c->hub: the caller is the server's
     * own (its API off the loop), which starts the jobs itself
     * (hub_jobs_pickup) once this returns; no notice to a server */
    bool in_server;
    /* the job role c->job_user needs (JOB_ROLE_*); 0: job-runner, or
     * job-pusher for a push */
    int role;
};

/* The agents of a batch: these IDs, every known agent (online or not:
 * an offline one's job ends "agent offline") with any of these tags, and
 * the current members of these client groups (admin_client_group.h). */
struct admin_job_targets {
    const char *const *agents;
    size_t nagents;
    const char *const *tags;
    size_t ntags;
    const char *const *groups; /* client groups, by ID or name */
    size_t ngroups;
};

/* The API's way for one agent. out gets the new job (status running).
 * Needs c->hub (a running server). When another node of the cluster
 * holds the agent, the job is queued for that node instead (out's status
 * "queued") and done is never called: the caller follows the job in the
 * store. */
int admin_job_run(const struct admin_ctx *c, const char *agent_id,
                  const struct admin_job_req *q, admin_job_done_fn done,
                  void *arg, struct store_job *out, struct admin_err *e);
/* admin_job_run in two steps, for a caller whose store work runs off
 * the loop (the API on a database server; docs/store.md "Jobs off the
 * loop"). admin_job_record_run needs no hub (a worker thread): the scope
 * check, the job recorded (status running) with its audit event, or, if
 * the store says another node holds the agent, recorded queued for that
 * node with a notice (out's status "queued"). admin_job_start, on the
 * loop, starts a job so recorded (status running) through c->hub:
 * done(arg, job) is called once, when its result is in the store (on a
 * database server written off the loop: hub_job_record), maybe before it
 * returns, and not at all for a result whose write a database that
 * stopped answering still holds at the hub's stop; without a hub,
 * or if the hub cannot start it, the job ends "failed". ERR_NOMEM:
 * nothing started, done not called. */
int admin_job_record_run(const struct admin_ctx *c, const char *agent_id,
                         const struct admin_job_req *q, struct store_job *out,
                         struct admin_err *e);
int admin_job_start(const struct admin_ctx *c, const struct admin_job_req *q,
                    const struct store_job *j, admin_job_done_fn done,
                    void *arg);
/* A batch: one job per target agent, recorded as queued under one batch
 * ID (batch, STORE_ID_MAX + 1 bytes), each with the audit event job.run;
 * the server starts them within the concurrency limit and records each
 * result as it arrives. With c->hub (inside the server) they start at
 * once; else (the CLI) a notice tells a running server (notify.h,
 * HUB_CHANGE_JOBS). *delivered: they reach a server; if not, they are
 * recorded as failed ("no server is running"). *n: the jobs recorded. */
int admin_job_queue_many(const struct admin_ctx *c,
                         const struct admin_job_targets *t,
                         const struct admin_job_req *q, char *batch, size_t *n,
                         bool *delivered, struct admin_err *e);
/* A job as JSON; with_output adds stdout and stderr (invalid UTF-8
 * bytes shown as U+FFFD). */
/* Job roles (docs/security.md, "Jobs on agents"): with c->job_user set,
 * ERR_DENIED (with the audit event job.denied, naming the first agent)
 * unless every agent in ids is now a member of a client group on which
 * the user holds role (JOB_ROLE_*). admin_job_run and
 * admin_job_queue_many call it themselves. */
int admin_job_scope_check(const struct admin_ctx *c, int role,
                          const char *const *ids, size_t n,
                          struct admin_err *e);
/* admin_job_scope_check on the agents t resolves to now. */
int admin_job_scope_targets(const struct admin_ctx *c,
                            const struct admin_job_targets *t, int role,
                            struct admin_err *e);
/* Keeps (in place, order kept) the jobs c may see: all without
 * c->job_user, else those on agents now in the scope of any of the
 * user's job roles. Returns how many are kept (0 on a store error). */
size_t admin_job_filter(const struct admin_ctx *c, struct store_job *list,
                        size_t n);

json_t *admin_job_json(const struct store_job *j, bool with_output);
/* JSON text of a job's output, which may not be UTF-8: bytes that are
 * not become U+FFFD (as in GET /jobs/{id} and its stream). Never NULL. */
json_t *admin_job_text(const uint8_t *p, size_t len);

#endif
