/*
 * `portcullis credential ...`: agent credentials (SPEC §6,
 * docs/agent-protocol.md). An agent logs in with a credential's ID as
 * its SSH user name and the secret as its password; many agents may share
 * one credential.
 *
 * `add` prints the secret once: the store keeps only its argon2id hash
 * (common/secret.h). `delete` tells a running server at once, so agents
 * connected with the credential drop and are refused from then on. The
 * rules, the audit event and the notice are admin's (admin_agent.c).
 */
#include <string.h>

#include <sodium.h>

#include "cli/cli.h"
#include "common/err.h"

static int cred_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct store_credential c;
    struct admin_ctx ac;
    struct admin_err e;
    char secret[64] = "";
    json_t *body = NULL;
    int rc, r;

    /* --name is the descriptor's (admin_credential_fields) */
    if ((rc = cli_parse_fields(ctx, argc, argv, admin_credential_fields, true,
                               NULL, "", pos, &body)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        json_decref(body);
        return rc;
    }
    r = admin_credential_add(&ac,
                             json_string_value(json_object_get(body, "name")),
                             &c, secret, sizeof(secret), &e);
    json_decref(body);
    if (secret[0] == '\0') {
        return cli_admin_error(ctx, &e);
    }
    /* made: an audit failure is told after the secret, shown only once */
    printf("id=%s\nsecret=%s\n", c.id, secret);
    sodium_memzero(secret, sizeof(secret));
    return r == ERR_OK ? CLI_EXIT_OK : cli_error("%s", e.msg);
}

static int cred_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct store_credential *list = NULL;
    size_t n = 0;
    bool json = false;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_credential_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list credentials: %s", err_str(r));
    }
    rc = cli_fields_list(admin_credential_fields, list, n, sizeof(*list), json);
    store_credential_list_free(list, n);
    return rc;
}

static int cred_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct admin_notice n;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "ID", pos)) != CLI_PARSED ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_credential_delete(&ac, pos[0], &n, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    cli_notice(&n);
    return CLI_EXIT_OK;
}

static const struct cli_cmd cred_add_cmd = {
    .name = "add",
    .synopsis = "credential add [--name TEXT]",
    .summary = "Create an agent credential; prints id= and secret= (shown "
               "only once).",
    .details = "Options:\n"
               "  --name TEXT   a description shown by 'credential list'\n"
               "\n"
               "An agent logs in with both: portcullis-agent --credential "
               "ID:SECRET.\n"
               "Only an argon2id hash of the secret is stored: a lost secret "
               "cannot be\nshown again, make a new credential. Several agents "
               "may share one.\n",
    .run = cred_add_run,
};
static const struct cli_cmd cred_list_cmd = {
    .name = "list",
    .synopsis = "credential list [--json]",
    .summary = "List agent credentials (never the secrets) and how many "
               "agents used each.",
    .run = cred_list_run,
};
static const struct cli_cmd cred_delete_cmd = {
    .name = "delete",
    .synopsis = "credential delete ID",
    .summary = "Delete an agent credential; agents using it are "
               "disconnected and refused.",
    .details = "The agents' rows stay ('agent list'); delete them with "
               "'agent delete'.\n",
    .run = cred_delete_run,
};
static const struct cli_cmd *const cred_cmds[] = {&cred_add_cmd, &cred_list_cmd,
                                                  &cred_delete_cmd, NULL};

const struct cli_cmd cli_credential = {
    .name = "credential",
    .summary = "Manage agent credentials.",
    .sub = cred_cmds,
};
