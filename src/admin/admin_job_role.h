/*
 * Job roles (store/client_groups.h, docs/security.md "Jobs on agents"):
 * job-runner, job-pusher or job-scheduler granted to a user or a group
 * on one client group. The rules shared by the CLI (`role grant
 * --client-group`, `role jobs`, `role revoke`) and the API
 * (/api/v1/job-roles): both doors accept and refuse the same things with
 * the same words, and write the same audit events (role.grant,
 * role.revoke, target "client-group:NAME"). Only an administrator may
 * call them through the API (the route table says so); the local CLI has
 * every right. A grant or revocation takes effect on the next request:
 * the job routes read the roles from the store each time.
 */
#ifndef PORTCULLIS_ADMIN_JOB_ROLE_H
#define PORTCULLIS_ADMIN_JOB_ROLE_H

#include <jansson.h>

#include "admin/admin.h"
#include "store/client_groups.h"

struct admin_job_role_req {
    const char *user;         /* a user's name or ID, or NULL */
    const char *group;        /* a group's name or ID, or NULL: exactly one */
    const char *role;         /* job-runner, job-pusher, job-scheduler */
    const char *client_group; /* name or ID */
};

int admin_job_role_add(const struct admin_ctx *c,
                       const struct admin_job_role_req *q,
                       struct store_job_role_row *out, struct admin_err *e);
int admin_job_role_delete(const struct admin_ctx *c, const char *id,
                          struct admin_err *e);
/* {id, role, grantee_type, grantee, client_group} (as `role jobs --json`) */
json_t *admin_job_role_json(const struct store_job_role_row *w);

#endif
