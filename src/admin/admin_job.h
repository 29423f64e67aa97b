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

typedef void (*admin_job_done_fn)(void *arg, const struct store_job *j);

/* timeout 0: the default. out gets the new job (status running). Needs
 * c->hub (a running server). */
int admin_job_run(const struct admin_ctx *c, const char *agent_id,
                  const char *command, const char *cwd, int timeout,
                  admin_job_done_fn done, void *arg, struct store_job *out,
                  struct admin_err *e);
/* The CLI's way (it cannot reach the hub): records the job as queued,
 * writes job.run and tells a running server (notify.h, HUB_CHANGE_JOBS),
 * which runs it and records the result. *delivered: a server took the
 * notice; if not, the job is recorded as failed ("no server is
 * running"). */
int admin_job_queue(const struct admin_ctx *c, const char *agent_id,
                    const char *command, const char *cwd, int timeout,
                    struct store_job *out, bool *delivered,
                    struct admin_err *e);
/* A job as JSON; with_output adds stdout and stderr (invalid UTF-8
 * bytes shown as U+FFFD). */
json_t *admin_job_json(const struct store_job *j, bool with_output);

#endif
