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
#include "common/util.h"
#include "http/http_jwt.h"
#include "http/http_token.h"
#include "store/access.h"

static int token_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *user = NULL, *expires = NULL;
    const char *desc = NULL, *cidrs = NULL, *paths = NULL;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--user", &user),
        CLI_OPT_STR("--expires", &expires),
        CLI_OPT_STR("--description", &desc),
        CLI_OPT_STR("--filter-cidr", &cidrs),
        CLI_OPT_STR("--filter-path", &paths),
        CLI_OPT_END,
    };
    struct http_jwt_key *key = NULL;
    struct store_api_token t;
    struct store_user u;
    int64_t lifetime = 0;
    char *token = NULL;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if (user == NULL) {
        return cli_usage(ctx, "missing --user USER");
    }
    if (expires == NULL) {
        return cli_usage(ctx, "missing --expires DURATION (e.g. 30d)");
    }
    if (http_parse_duration(expires, &lifetime) != ERR_OK) {
        return cli_usage(ctx, "--expires needs a duration like 30d, 12h, "
                              "15m or 3600s (at most 10 years)");
    }
    if (cidrs != NULL && !http_cidr_list_valid(cidrs)) {
        return cli_usage(ctx, "--filter-cidr needs addresses or CIDRs, "
                              "separated by commas");
    }
    if (paths != NULL && !http_path_list_valid(paths)) {
        return cli_usage(ctx, "--filter-path needs paths starting with '/', "
                              "separated by commas");
    }
    if (desc != NULL && strlen(desc) > ACCESS_DESC_MAX) {
        return cli_usage(ctx, "--description is limited to %d characters",
                         ACCESS_DESC_MAX);
    }
    if ((rc = cli_get_user(ctx, user, &u)) != CLI_EXIT_OK) {
        return rc;
    }
    r = http_jwt_key_load(ctx->cfg.http_jwt_secret, true, &key);
    if (r != ERR_OK) {
        return cli_error("cannot load the API's JWT secret %s: %s",
                         ctx->cfg.http_jwt_secret, err_str(r));
    }
    r = http_token_create(ctx->st, key, u.id, lifetime, desc, cidrs, paths, &t,
                          &token);
    if (r != ERR_OK) {
        rc = cli_error("cannot create the token: %s", err_str(r));
        goto out;
    }
    printf("id=%s\ntoken=%s\n", t.id, token);
    rc = CLI_EXIT_OK;
out:
    http_jwt_token_free(token);
    http_jwt_key_free(key);
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
    struct cli_table *t;
    char exp[32], created[32];
    int64_t now = util_now();
    size_t n = 0, i;
    json_t *arr;
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
    if (json) {
        arr = json_array();
        for (i = 0; i < n; i++) {
            cli_json_append(&arr, http_token_json(&list[i], now));
        }
        rc = cli_json_print(arr);
    } else {
        t = cli_table_new(7, "ID", "USER", "ENABLED", "EXPIRES", "CREATED",
                          "FILTER", "DESCRIPTION");
        for (i = 0; i < n; i++) {
            char filter[2 * ACCESS_FILTER_MAX + 4];

            cli_fmt_time(list[i].expires_at, exp, sizeof(exp));
            cli_fmt_time(list[i].created_at, created, sizeof(created));
            snprintf(filter, sizeof(filter), "%s%s%s", list[i].filter_cidrs,
                     list[i].filter_cidrs[0] && list[i].filter_paths[0] ? " "
                                                                        : "",
                     list[i].filter_paths);
            cli_table_add(t, list[i].id, list[i].user_name,
                          !list[i].enabled            ? "no"
                          : list[i].expires_at <= now ? "expired"
                                                      : "yes",
                          exp, created, filter, list[i].description);
        }
        rc = cli_table_finish(t);
    }
    store_list_free(list);
    return rc;
}

static int token_set(struct cli_ctx *ctx, int argc, char **argv, int what)
{
    const char *pos[CLI_MAX_POS];
    struct store_api_token t;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "ID", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if (what < 0) {
        r = store_api_token_delete(ctx->st, pos[0]);
    } else if ((r = store_api_token_get(ctx->st, pos[0], &t)) == ERR_OK) {
        t.enabled = what == 1;
        r = store_api_token_update(ctx->st, &t);
    }
    if (r != ERR_OK) {
        return cli_store_error(r, "token", pos[0]);
    }
    return CLI_EXIT_OK;
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
    .mutates = true,
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
    .mutates = true,
};
static const struct cli_cmd token_disable_cmd = {
    .name = "disable",
    .synopsis = "token disable ID",
    .summary = "Disable an API token; it fails at its next use.",
    .run = token_disable_run,
    .mutates = true,
};
static const struct cli_cmd token_delete_cmd = {
    .name = "delete",
    .synopsis = "token delete ID",
    .summary = "Delete an API token.",
    .run = token_delete_run,
    .mutates = true,
};
static const struct cli_cmd *const token_cmds[] = {
    &token_add_cmd,     &token_list_cmd,   &token_enable_cmd,
    &token_disable_cmd, &token_delete_cmd, NULL};

const struct cli_cmd cli_token = {
    .name = "token",
    .summary = "Manage API tokens of the REST API.",
    .sub = token_cmds,
};
