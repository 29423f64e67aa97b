/*
 * `portcullis token ...`: API tokens for the REST API (issue 5).
 *
 * A token is a JWT signed with the server's secret ([http] jwt_secret,
 * made here on first use if the server has not made it yet). `add` prints
 * it once; the store keeps only a hash of its ID with the owner, expiry,
 * enabled flag, description and filter, which is what `list` shows.
 * Disabling, deleting or expiry take effect on the token's next use.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/err.h"

static int token_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct admin_token_req req = {0};
    /* the verb's own options; --description, --filter-cidr and
     * --filter-path are the descriptor's (admin_token_fields) */
    const struct cli_opt extra[] = {
        CLI_OPT_STR("--user", &req.user),
        CLI_OPT_STR("--expires", &req.expires),
        CLI_OPT_END,
    };
    struct jwt_key *key = NULL;
    struct store_api_token t, in = {0};
    struct admin_ctx ac;
    struct admin_err e;
    json_t *body = NULL;
    int64_t lifetime;
    char *token = NULL;
    int rc, r;

    if ((rc = cli_parse_fields(ctx, argc, argv, admin_token_fields, true, extra,
                               "", pos, &body)) != CLI_PARSED) {
        return rc;
    }
    r = admin_json_apply(admin_token_fields, body, &in, &e);
    json_decref(body);
    if (r != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    if (req.user == NULL) {
        return cli_usage(ctx, "missing --user USER");
    }
    if (req.expires == NULL) {
        return cli_usage(ctx, "missing --expires DURATION (e.g. 30d)");
    }
    req.description = in.description;
    req.cidrs = in.filter_cidrs;
    req.paths = in.filter_paths;
    if (admin_token_check(&req, &lifetime, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_token_key_load(ctx->cfg.http_jwt_secret, &key, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    r = admin_token_add(&ac, key, &req, &t, &token, &e);
    if (token == NULL) {
        rc = cli_admin_error(ctx, &e);
    } else {
        /* made: an audit failure is told after the token, shown once */
        printf("id=%s\ntoken=%s\n", t.id, token);
        rc = r == ERR_OK ? CLI_EXIT_OK : cli_error("%s", e.msg);
    }
    admin_token_free(token);
    admin_token_key_free(key);
    return rc;
}

static int token_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *user = NULL;
    bool json = false;
    const struct cli_opt opts[] = {CLI_OPT_FLAG("--json", &json),
                                   CLI_OPT_STR("--user", &user), CLI_OPT_END};
    struct store_api_token *list = NULL;
    struct store_user u;
    size_t n = 0;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if (user != NULL && (rc = cli_get_user(ctx, user, &u)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    r = store_api_token_list(ctx->st, user != NULL ? u.id : NULL, &list, &n);
    if (r != ERR_OK) {
        return cli_error("cannot list tokens: %s", err_str(r));
    }
    rc = cli_fields_list(admin_token_fields, list, n, sizeof(*list), json);
    store_list_free(list);
    return rc;
}

static int token_set(struct cli_ctx *ctx, int argc, char **argv, int what)
{
    const char *pos[CLI_MAX_POS];
    struct store_api_token t;
    struct admin_ctx ac;
    struct admin_err e;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "ID", pos)) != CLI_PARSED ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (what < 0) {
        r = admin_token_delete(&ac, pos[0], &e);
    } else if ((r = store_api_token_get(ctx->st, pos[0], &t)) != ERR_OK) {
        return cli_store_error(r, "token", pos[0]);
    } else {
        t.enabled = what == 1;
        r = admin_token_update(
            &ac, &t, what == 1 ? "token.enable" : "token.disable", &e);
    }
    return r == ERR_OK ? CLI_EXIT_OK : cli_admin_error(ctx, &e);
}

static int token_enable_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return token_set(ctx, argc, argv, 1);
}

static int token_disable_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return token_set(ctx, argc, argv, 0);
}

static int token_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return token_set(ctx, argc, argv, -1);
}

static const struct cli_cmd token_add_cmd = {
    .name = "add",
    .synopsis = "token add --user U --expires DURATION [--description D]\n"
                "[--filter-cidr CIDR,...] [--filter-path PREFIX,...]",
    .summary = "Create an API token; prints id= and token= (shown only once).",
    .details =
        "Options:\n"
        "  --user U          the user the token acts as\n"
        "  --expires D       its lifetime: 30d, 12h, 15m or 3600s\n"
        "  --description D   free text shown by 'token list'\n"
        "  --filter-cidr L   only from these source addresses (CIDRs)\n"
        "  --filter-path L   only on these paths (prefixes, e.g.\n"
        "                    /api/v1/assets)\n"
        "\n"
        "Send it as 'Authorization: Bearer TOKEN'. Only a hash of its ID is\n"
        "stored: a lost token cannot be shown again, make a new one.\n",
    .run = token_add_run,
};
static const struct cli_cmd token_list_cmd = {
    .name = "list",
    .synopsis = "token list [--user U] [--json]",
    .summary = "List API tokens (never the tokens themselves).",
    .run = token_list_run,
};
static const struct cli_cmd token_enable_cmd = {
    .name = "enable",
    .synopsis = "token enable ID",
    .summary = "Enable an API token.",
    .run = token_enable_run,
};
static const struct cli_cmd token_disable_cmd = {
    .name = "disable",
    .synopsis = "token disable ID",
    .summary = "Disable an API token; it fails at its next use.",
    .run = token_disable_run,
};
static const struct cli_cmd token_delete_cmd = {
    .name = "delete",
    .synopsis = "token delete ID",
    .summary = "Delete an API token.",
    .run = token_delete_run,
};
static const struct cli_cmd *const token_cmds[] = {
    &token_add_cmd,     &token_list_cmd,   &token_enable_cmd,
    &token_disable_cmd, &token_delete_cmd, NULL};

const struct cli_cmd cli_token = {
    .name = "token",
    .summary = "Manage API tokens of the REST API.",
    .sub = token_cmds,
};
