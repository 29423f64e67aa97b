/*
 * Client groups (issue 14, store/client_groups.h): agents by ID (static)
 * and by patterns (dynamic, like RPort's): "id", "name", "hostname",
 * "os" and "tags" each map to a list of shell glob patterns (fnmatch).
 * An agent is a member when its ID is in the static list, or when the
 * group has patterns and every field that has some matches one of them
 * (for "tags": one of the agent's tags does). Membership is computed
 * from the agents' current facts each time it is needed (a job's
 * targets, a listing), so a dynamic group follows its agents.
 */
#ifndef PORTCULLIS_ADMIN_CLIENT_GROUP_H
#define PORTCULLIS_ADMIN_CLIENT_GROUP_H

#include <jansson.h>
#include <stdbool.h>

#include "admin/admin.h"
#include "store/agents.h"
#include "store/client_groups.h"

struct admin_client_group_req {
    const char *name;
    const char *description;
    const char *const *agents; /* static members */
    size_t nagents;
    const json_t *rules; /* NULL or the object above */
};

int admin_client_group_add(const struct admin_ctx *c,
                           const struct admin_client_group_req *q,
                           struct store_client_group *out, struct admin_err *e);
int admin_client_group_delete(const struct admin_ctx *c, const char *ref,
                              struct admin_err *e);
/* Adds agent (an ID) to the static members of the group ref, or
 * removes it; out gets the group as it is then. */
int admin_client_group_member(const struct admin_ctx *c, const char *ref,
                              const char *agent, bool add,
                              struct store_client_group *out,
                              struct admin_err *e);
/* Whether agent a is a member of g. */
bool admin_client_group_has(const struct store_client_group *g,
                            const struct store_agent *a);
/* A group as JSON; with members, its current members too (a list of IDs,
 * [] when none of the n agents, or no agent at all, is one). */
json_t *admin_client_group_json(const struct store_client_group *g,
                                bool members, const struct store_agent *agents,
                                size_t n);

#endif
