/*
 * `portcullis node list`: the servers that share this store (issue 18,
 * store/nodes.h), with their state, agents and open sessions. Read-only:
 * each `serve` registers itself and keeps its heartbeat. `node join`
 * (a new node's data directory) lives in cli_init.c beside init, whose
 * files and checks it shares.
 */
#include "cli/cli.h"
#include "common/err.h"
#include "store/nodes.h"

static int node_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct store_node *list = NULL;
    struct admin_ctx ac;
    struct admin_err e;
    size_t n = 0;
    bool json = false;
    int rc;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_node_list(&ac, &ctx->cfg, &list, &n, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    rc = cli_fields_list(admin_node_fields, list, n, sizeof(*list), json);
    store_node_list_free(list, n);
    return rc;
}

static const struct cli_cmd node_list_cmd = {
    .name = "list",
    .synopsis = "node list [--json]",
    .summary = "List the servers sharing this store: state, agents, open "
               "sessions.",
    .details = "A node is online while its heartbeat is younger than [node]\n"
               "dead_after_seconds; then another node declares it dead, "
               "closes its\nopen sessions as interrupted and marks its "
               "agents offline.\n",
    .run = node_list_run,
};
extern const struct cli_cmd cli_node_join; /* cli_init.c */

static const struct cli_cmd *const node_cmds[] = {&node_list_cmd,
                                                  &cli_node_join, NULL};

const struct cli_cmd cli_node = {
    .name = "node",
    .summary = "The nodes of a cluster (servers on one store): list, join.",
    .sub = node_cmds,
};
