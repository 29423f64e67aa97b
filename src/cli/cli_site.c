/*
 * `portcullis site ...`: the site tree below /root that assets live in.
 * A grant on a site covers the assets of all its sub-sites; a login names
 * the site when the asset is not in /root.
 */
#include "cli/cli.h"
#include "common/err.h"

static int site_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "PATH", pos)) != CLI_PARSED ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_site_add(&ac, pos[0], NULL, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

static int site_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    struct store_site *list = NULL;
    size_t n = 0;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_site_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list sites: %s", err_str(r));
    }
    rc = cli_fields_list(admin_site_fields, list, n, sizeof(*list), json);
    store_list_free(list);
    return rc;
}

static int site_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct admin_ctx ac;
    struct admin_err e;
    struct store_site s;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "PATH", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_site_get(ctx->st, pos[0], &s)) != ERR_OK) {
        return cli_store_error(r, "site", pos[0]);
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_site_delete(&ac, &s, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

static const struct cli_cmd site_add_cmd = {
    .name = "add",
    .synopsis = "site add PATH",
    .summary = "Create a site (and any missing parents), e.g. /root/DevOps.",
    .run = site_add_run,
};
static const struct cli_cmd site_list_cmd = {
    .name = "list",
    .synopsis = "site list [--json]",
    .summary = "List sites.",
    .run = site_list_run,
};
static const struct cli_cmd site_delete_cmd = {
    .name = "delete",
    .synopsis = "site delete PATH",
    .summary = "Delete a site that has no assets and no sub-sites.",
    .run = site_delete_run,
};
static const struct cli_cmd *const site_cmds[] = {&site_add_cmd, &site_list_cmd,
                                                  &site_delete_cmd, NULL};

const struct cli_cmd cli_site = {
    .name = "site",
    .summary = "Manage the site tree below /root.",
    .details = "PATH is \"/root/a/b\", or \"a/b\" taken below /root.\n",
    .sub = site_cmds,
};
