/*
 * `portcullis grant ...`: asset roles (viewer < editor < owner) given to a
 * user or a group, on one asset or on a site (then on all assets of the
 * site and its sub-sites). A native session needs at least viewer.
 *
 * `grant ASSET ...` itself adds a grant, so an asset named "list" or
 * "delete" is granted by its ID.
 */
#include <string.h>

#include "cli/cli.h"
#include "common/err.h"
#include "common/util.h"

static int grant_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *site = NULL, *user = NULL, *group = NULL;
    const char *role = NULL;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--site", &site),
        CLI_OPT_STR("--user", &user),
        CLI_OPT_STR("--group", &group),
        CLI_OPT_STR("--role", &role),
        CLI_OPT_END,
    };
    struct store_grant g;
    struct store_asset a;
    struct store_site s;
    struct store_user u;
    struct store_group gr;
    struct admin_ctx ac;
    struct admin_err e;
    int rc, r;

    memset(&g, 0, sizeof(g));
    if ((rc = cli_parse(ctx, argc, argv, opts, "[ASSET]", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((pos[0] != NULL) == (site != NULL)) {
        return cli_usage(ctx, "give either an ASSET or --site PATH");
    }
    if ((user != NULL) == (group != NULL)) {
        return cli_usage(ctx, "give either --user USER or --group GROUP");
    }
    if (role == NULL) {
        return cli_usage(ctx, "missing --role viewer|editor|owner");
    }
    if (pos[0] != NULL) {
        if ((rc = cli_get_asset(ctx, pos[0], &a)) != CLI_EXIT_OK) {
            return rc;
        }
        snprintf(g.asset_id, sizeof(g.asset_id), "%s", a.id);
        store_asset_clear(&a);
    } else {
        if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
            return rc;
        }
        if ((r = store_site_get(ctx->st, site, &s)) != ERR_OK) {
            return cli_store_error(r, "site", site);
        }
        snprintf(g.site_id, sizeof(g.site_id), "%s", s.id);
    }
    if (user != NULL) {
        if ((rc = cli_get_user(ctx, user, &u)) != CLI_EXIT_OK) {
            return rc;
        }
        snprintf(g.user_id, sizeof(g.user_id), "%s", u.id);
    } else {
        if ((rc = cli_get_group(ctx, group, &gr)) != CLI_EXIT_OK) {
            return rc;
        }
        snprintf(g.group_id, sizeof(g.group_id), "%s", gr.id);
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_grant_add(&ac, &g, role, user != NULL ? user : group,
                        pos[0] != NULL ? pos[0] : site, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    printf("%s\n", g.id);
    return CLI_EXIT_OK;
}

static int grant_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    struct store_grant *list = NULL;
    size_t n = 0;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_grant_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list grants: %s", err_str(r));
    }
    rc = cli_fields_list(admin_grant_fields, list, n, sizeof(*list), json);
    store_list_free(list);
    return rc;
}

static int grant_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return cli_admin_delete(ctx, argc, argv, "GRANT_ID", admin_grant_delete);
}

static const struct cli_cmd grant_list_cmd = {
    .name = "list",
    .synopsis = "grant list [--json]",
    .summary = "List grants.",
    .run = grant_list_run,
};
static const struct cli_cmd grant_delete_cmd = {
    .name = "delete",
    .synopsis = "grant delete GRANT_ID",
    .summary = "Delete a grant.",
    .run = grant_delete_run,
};
static const struct cli_cmd *const grant_cmds[] = {&grant_list_cmd,
                                                   &grant_delete_cmd, NULL};

const struct cli_cmd cli_grant = {
    .name = "grant",
    .synopsis = "grant ASSET|--site PATH (--user U | --group G)\n"
                "--role viewer|editor|owner",
    .summary = "Grant asset roles on assets or sites to users and groups.",
    .details =
        "The first form adds a grant and prints its ID.\n"
        "ASSET is an asset's ID, or its name when exactly one asset has it.\n"
        "A site grant covers the assets of the site and of all its "
        "sub-sites.\n",
    .run = grant_add_run,
    .sub = grant_cmds,
};
