/*
 * `portcullis schedule enable|disable NAME` and `portcullis client-group
 * add-agent|remove-agent GROUP AGENT` (admin_schedule.h,
 * admin_client_group.h; the API's PATCH /schedules/{id} and
 * /client-groups/{id}/agents). Listed in cli_job.c's verb tables.
 */
#include <stdio.h>
#include <stdlib.h>

#include "admin/admin_client_group.h"
#include "admin/admin_schedule.h"
#include "cli/cli.h"
#include "common/err.h"

static int sched_switch(struct cli_ctx *ctx, int argc, char **argv, bool on)
{
    const char *pos[CLI_MAX_POS];
    const struct cli_opt opts[] = {CLI_OPT_END};
    struct store_schedule *s;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED ||
        (rc = cli_open_store(ctx)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        return cli_error("out of memory");
    }
    if (admin_schedule_set_enabled(&ac, pos[0], on, s, &e) != ERR_OK) {
        free(s);
        return cli_error("%s", e.msg);
    }
    store_schedule_release(s);
    free(s);
    return CLI_EXIT_OK;
}

static int sched_enable_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return sched_switch(ctx, argc, argv, true);
}

static int sched_disable_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return sched_switch(ctx, argc, argv, false);
}

static int cg_member(struct cli_ctx *ctx, int argc, char **argv, bool add)
{
    const char *pos[CLI_MAX_POS];
    const struct cli_opt opts[] = {CLI_OPT_END};
    struct store_client_group *g;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, opts, "GROUP AGENT", pos)) !=
            CLI_PARSED ||
        (rc = cli_open_store(ctx)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((g = calloc(1, sizeof(*g))) == NULL) {
        return cli_error("out of memory");
    }
    rc = admin_client_group_member(&ac, pos[0], pos[1], add, g, &e) == ERR_OK
             ? CLI_EXIT_OK
             : cli_error("%s", e.msg);
    free(g);
    return rc;
}

static int cg_add_agent_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return cg_member(ctx, argc, argv, true);
}

static int cg_remove_agent_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return cg_member(ctx, argc, argv, false);
}

const struct cli_cmd cli_schedule_enable_cmd = {
    .name = "enable",
    .synopsis = "schedule enable NAME",
    .summary = "Let a disabled schedule fire again (from the next minute).",
    .run = sched_enable_run,
};
const struct cli_cmd cli_schedule_disable_cmd = {
    .name = "disable",
    .synopsis = "schedule disable NAME",
    .summary = "Stop a schedule firing; its minutes while disabled are not "
               "counted as missed.",
    .run = sched_disable_run,
};
const struct cli_cmd cli_client_group_add_agent_cmd = {
    .name = "add-agent",
    .synopsis = "client-group add-agent GROUP AGENT",
    .summary = "Add an agent (ID) to a group's static members.",
    .run = cg_add_agent_run,
};
const struct cli_cmd cli_client_group_remove_agent_cmd = {
    .name = "remove-agent",
    .synopsis = "client-group remove-agent GROUP AGENT",
    .summary = "Remove an agent from a group's static members.",
    .run = cg_remove_agent_run,
};
