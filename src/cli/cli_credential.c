/*
 * `portcullis credential ...`: agent credentials (SPEC §6,
 * docs/agent-protocol.md). An agent logs in with a credential's ID as
 * its SSH user name and the secret as its password; many agents may share
 * one credential.
 *
 * `add` prints the secret once: the store keeps only its argon2id hash
 * (auth/secret.h). `delete` tells a running server at once (notify.h), so
 * agents connected with the credential drop and are refused from then on.
 */
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/secret.h"
#include "cli/cli.h"
#include "common/err.h"
#include "common/notify.h"
#include "common/util.h"
#include "hub/hub.h"
#include "hub/tunnel_def.h"
#include "store/agents.h"

#define CRED_ID_BYTES 16 /* 32 hex digits */

extern const struct cli_cmd cli_credential;

/* The ID `add` made, for the audit event written after run() returns. */
static char cred_added_id[STORE_ID_MAX + 1];

static int cred_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *name = NULL;
    const struct cli_opt opts[] = {CLI_OPT_STR("--name", &name), CLI_OPT_END};
    struct store_credential c;
    unsigned char raw[CRED_ID_BYTES];
    char secret[SECRET_CHARS + 1] = "";
    struct passwd *pw;
    int rc, r;

    memset(&c, 0, sizeof(c));
    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if (name != NULL && strlen(name) > STORE_NAME_MAX) {
        return cli_usage(ctx, "--name is limited to %d characters",
                         STORE_NAME_MAX);
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(c.id, sizeof(c.id), raw, sizeof(raw));
    snprintf(c.name, sizeof(c.name), "%s", name != NULL ? name : "");
    if ((pw = getpwuid(getuid())) != NULL && pw->pw_name != NULL) {
        snprintf(c.created_by, sizeof(c.created_by), "cli:%s", pw->pw_name);
    } else {
        snprintf(c.created_by, sizeof(c.created_by), "cli:uid=%u",
                 (unsigned)getuid());
    }
    c.created_at = util_now();
    secret_generate(secret);
    if ((r = secret_hash(secret, c.secret_hash, sizeof(c.secret_hash))) !=
        ERR_OK) {
        rc = cli_error("cannot hash the secret: %s", err_str(r));
        goto out;
    }
    if ((r = store_credential_add(ctx->st, &c)) != ERR_OK) {
        rc = r == ERR_INVALID ? cli_error("--name must not hold control "
                                          "characters")
                              : cli_store_error(r, "credential", c.id);
        goto out;
    }
    /* The audit event names the new credential (not a secret). */
    memcpy(cred_added_id, c.id, sizeof(cred_added_id));
    ctx->audit_target = cred_added_id;
    printf("id=%s\nsecret=%s\n", c.id, secret);
    rc = CLI_EXIT_OK;
out:
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(&c, sizeof(c));
    return rc;
}

static int cred_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct store_credential *list = NULL;
    struct cli_table *t;
    char created[32], agents[16];
    size_t n = 0, i;
    bool json = false;
    json_t *arr;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_credential_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list credentials: %s", err_str(r));
    }
    if (json) {
        arr = json_array();
        for (i = 0; i < n; i++) {
            cli_json_append(&arr, tunnel_def_credential_json(&list[i]));
        }
        rc = cli_json_print(arr);
    } else {
        t = cli_table_new(5, "ID", "NAME", "AGENTS", "CREATED", "CREATED BY");
        for (i = 0; i < n; i++) {
            cli_fmt_time(list[i].created_at, created, sizeof(created));
            snprintf(agents, sizeof(agents), "%d", list[i].agents);
            cli_table_add(t, list[i].id, list[i].name, agents, created,
                          list[i].created_by);
        }
        rc = cli_table_finish(t);
    }
    store_credential_list_free(list, n);
    return rc;
}

static int cred_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "ID", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_credential_delete(ctx->st, pos[0])) != ERR_OK) {
        return cli_store_error(r, "credential", pos[0]);
    }
    /* The server drops agents logged in with it at once. */
    if ((r = notify_send(ctx->cfg.data_dir, HUB_CHANGE_CREDENTIALS)) !=
        ERR_OK) {
        cli_error("warning: deleted, but the running server could not be "
                  "told (%s); its agents drop at its next restart",
                  err_str(r));
    }
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
    .mutates = true,
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
    .mutates = true,
};
static const struct cli_cmd *const cred_cmds[] = {&cred_add_cmd, &cred_list_cmd,
                                                  &cred_delete_cmd, NULL};

const struct cli_cmd cli_credential = {
    .name = "credential",
    .summary = "Manage agent credentials.",
    .sub = cred_cmds,
};
