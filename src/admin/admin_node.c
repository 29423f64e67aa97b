/*
 * The nodes of a cluster (store/nodes.h, issue 18), for `portcullis node
 * list` and GET /api/v1/nodes alike: read-only, the servers write them.
 */
#include "admin/admin.h"

#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/nodes.h"

static json_t *admin_node_state(const void *obj)
{
    const struct store_node *n = obj;

    if (strcmp(n->state, "up") == 0) {
        return json_string(n->online ? "online" : "offline");
    }
    return admin_json_text(n->state);
}

#define ND(j, t, m, ...) ADMIN_FIELD(struct store_node, j, t, m, __VA_ARGS__)

const struct admin_field admin_node_fields[] = {
    ND("id", AF_STR, id, .flags = AF_READONLY, .col = "ID"),
    ND("name", AF_STR, name, .flags = AF_READONLY, .col = "NAME"),
    ADMIN_FIELD_FN("state", admin_node_state, .col = "STATE"),
    ND("online", AF_BOOL, online, .flags = AF_READONLY),
    ND("agents", AF_INT, agents, .flags = AF_READONLY, .col = "AGENTS"),
    ND("sessions", AF_INT, sessions, .flags = AF_READONLY, .col = "SESSIONS"),
    ND("heartbeat_at", AF_TIME, heartbeat_at, .flags = AF_READONLY,
       .col = "HEARTBEAT"),
    ND("started_at", AF_TIME, started_at, .flags = AF_READONLY),
    ND("version", AF_STR, version, .flags = AF_READONLY, .col = "VERSION"),
    ND("addresses", AF_STR, addresses, .flags = AF_READONLY,
       .col = "ADDRESSES"),
    ND("reaped_by", AF_STRZ, reaped_by, .flags = AF_READONLY),
    ADMIN_FIELD_END,
};

int admin_node_list(const struct admin_ctx *c, const struct config *cfg,
                    struct store_node **list, size_t *n, struct admin_err *e)
{
    int r = store_node_list(
        c->st, util_now() - (cfg != NULL ? cfg->node_dead_after_seconds : 30),
        list, n);

    if (r != ERR_OK) {
        return admin_fail(e, r, "cannot list the nodes: %s", err_str(r));
    }
    return ERR_OK;
}
