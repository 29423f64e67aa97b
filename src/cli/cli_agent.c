/*
 * `portcullis agent ...`: the agents that announced themselves to the
 * server (docs/agent-protocol.md §2). Rows are written by the server's
 * hub; the CLI reads them and can delete them.
 *
 * The online flag is the store's: the server sets it when an agent
 * announces itself and clears it when the agent goes (and for every agent
 * when the server starts), so it is right whenever a server runs.
 * Deleting an agent deletes its tunnels and tells a running server
 * (admin_agent.c), which drops the agent's connection; an agent that still
 * holds a valid credential reconnects and appears again.
 *
 * An agent ID belongs to the credential that first announced it; another
 * credential is refused ("agent id bound to another credential") until
 * `agent rebind` names the new one (or unbinds the ID, so the next
 * credential to announce it takes it). A connected agent whose credential
 * is no longer the bound one is dropped.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/err.h"

#include <sodium.h>

/* A stored JSON array of strings joined with sep into out ("" if none). */
static void agent_join(const char *jsonlist, const char *sep, char *out,
                       size_t outlen)
{
    json_t *j = json_loads(jsonlist, 0, NULL), *v;
    size_t i, used = 0;
    int n;

    out[0] = '\0';
    json_array_foreach(j, i, v)
    {
        if (!json_is_string(v) || used >= outlen) {
            continue;
        }
        n = snprintf(out + used, outlen - used, "%s%s", used > 0 ? sep : "",
                     json_string_value(v));
        used = n < 0 ? outlen : used + (size_t)n;
    }
    json_decref(j);
}

static int agent_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct store_agent *list = NULL;
    size_t n = 0;
    bool json = false;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_agent_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list agents: %s", err_str(r));
    }
    rc = cli_fields_list(admin_agent_fields, list, n, sizeof(*list), json);
    store_agent_list_free(list, n);
    return rc;
}

static int agent_show_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool json = false;
    const struct cli_opt opts[] = {CLI_OPT_FLAG("--json", &json), CLI_OPT_END};
    struct store_agent *a = NULL;
    struct store_tunnel *tl = NULL;
    char first[32], conn[32], seen[32], text[1024], count[16];
    size_t nt = 0;
    json_t *j;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "ID", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    /* struct store_agent holds two 8 KiB lists: not on the stack */
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    if ((r = store_agent_get(ctx->st, pos[0], a)) != ERR_OK) {
        rc = cli_store_error(r, "agent", pos[0]);
        goto out;
    }
    if ((r = store_tunnel_list(ctx->st, a->id, &tl, &nt)) != ERR_OK) {
        rc = cli_error("cannot list the agent's tunnels: %s", err_str(r));
        goto out;
    }
    if (json) {
        j = admin_agent_json(NULL, a);
        cli_json_set(&j, "tunnels", json_integer((json_int_t)nt));
        rc = cli_json_print(j);
        goto out;
    }
    cli_show("id", a->id);
    cli_show("name", a->name);
    cli_show("state", a->online ? "online" : "offline");
    cli_show("credential_id", a->credential_id);
    cli_show("bound_credential", a->bound_credential);
    cli_show("hostname", a->hostname);
    cli_show("os", a->os);
    cli_show("kernel", a->kernel);
    cli_show("arch", a->arch);
    cli_show("version", a->version);
    agent_join(a->addresses, ", ", text, sizeof(text));
    cli_show("addresses", text);
    agent_join(a->tags, ", ", text, sizeof(text));
    cli_show("tags", text);
    cli_show("remote_addr", a->remote_addr);
    cli_fmt_time(a->first_seen, first, sizeof(first));
    cli_fmt_time(a->connected_at, conn, sizeof(conn));
    cli_fmt_time(a->last_seen, seen, sizeof(seen));
    cli_show("first_seen", first);
    cli_show("connected_at", conn);
    cli_show("last_seen", seen);
    snprintf(count, sizeof(count), "%zu", nt);
    cli_show("tunnels", count);
    rc = CLI_EXIT_OK;
out:
    store_tunnel_list_free(tl, nt);
    free(a);
    return rc;
}

static int agent_delete_run(struct cli_ctx *ctx, int argc, char **argv)
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
    if (admin_agent_delete(&ac, pos[0], &n, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    cli_notice(&n);
    return CLI_EXIT_OK;
}

static int agent_rebind_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    const char *cred = NULL;
    bool unbind = false;
    const struct cli_opt opts[] = {CLI_OPT_STR("--credential", &cred),
                                   CLI_OPT_FLAG("--unbind", &unbind),
                                   CLI_OPT_END};
    struct admin_notice n;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, opts, "ID", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((cred == NULL) == !unbind) {
        return cli_usage(ctx, "give exactly one of --credential CRED and "
                              "--unbind");
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_agent_rebind(&ac, pos[0], cred, &n, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    cli_notice(&n);
    return CLI_EXIT_OK;
}

#define AGENT_PAIR_TAGS 16

/* Reads the credential's secret from stdin: one line, "SECRET" or
 * "ID:SECRET" (never from the command line, where ps shows it). */
static int agent_pair_secret(const char *cred, char *out, size_t outlen)
{
    size_t n, idlen = strlen(cred);

    if (fgets(out, (int)outlen, stdin) == NULL) {
        return cli_error("--credential %s: give its secret on standard "
                         "input (a line SECRET or ID:SECRET)",
                         cred);
    }
    n = strcspn(out, "\r\n");
    out[n] = '\0';
    if (strncmp(out, cred, idlen) == 0 && out[idlen] == ':') {
        memmove(out, out + idlen + 1, n - idlen);
    }
    return CLI_EXIT_OK;
}

static int agent_pair_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *tags[AGENT_PAIR_TAGS];
    const char *cred = NULL, *name = NULL;
    bool json = false;
    const struct cli_opt opts[] = {CLI_OPT_STR("--credential", &cred),
                                   CLI_OPT_STR("--name", &name),
                                   CLI_OPT_FLAG("--json", &json), CLI_OPT_END};
    char **rest = NULL, secret[128] = "";
    struct admin_ctx ac;
    struct admin_err e;
    size_t ntags = 0;
    json_t *a = NULL;
    int nrest = 0, rc;

    /* --tag repeats, which cli_parse does not do: take them out first */
    if ((rest = calloc((size_t)argc + 1, sizeof(*rest))) == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    for (int i = 0; i < argc; i++) {
        const char *t = NULL;

        if (strcmp(argv[i], "--tag") == 0) {
            if (i + 1 >= argc) {
                free(rest);
                return cli_usage(ctx, "--tag needs a value");
            }
            t = argv[++i];
        } else if (strncmp(argv[i], "--tag=", 6) == 0) {
            t = argv[i] + 6;
        } else {
            rest[nrest++] = argv[i];
            continue;
        }
        if (ntags == AGENT_PAIR_TAGS) {
            free(rest);
            return cli_usage(ctx, "at most %d tags", AGENT_PAIR_TAGS);
        }
        tags[ntags++] = t;
    }
    rc = cli_parse(ctx, nrest, rest, opts, "", pos);
    free(rest);
    if (rc != CLI_PARSED) {
        return rc;
    }
    if (cred != NULL &&
        (rc = agent_pair_secret(cred, secret, sizeof(secret))) != CLI_EXIT_OK) {
        return rc;
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        sodium_memzero(secret, sizeof(secret));
        return rc;
    }
    rc = admin_agent_pair(&ac, tags, ntags, name, cred, secret, &a, &e);
    sodium_memzero(secret, sizeof(secret));
    if (rc != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    if (json) {
        char *s = json_dumps(a, JSON_INDENT(2));

        printf("%s\n", s != NULL ? s : "{}");
        free(s);
    } else {
        const char *until = json_string_value(json_object_get(a, "expires_at"));

        printf("code=%s\nurl=%s\nexpires=%s\n",
               json_string_value(json_object_get(a, "code")),
               json_string_value(json_object_get(a, "url")),
               until != NULL ? until : "?");
        printf("Run on the new machine (once, before it expires):\n  %s\n",
               json_string_value(json_object_get(a, "command")));
        if (json_is_true(json_object_get(a, "plain_http"))) {
            fprintf(stderr,
                    "portcullis: warning: this server speaks plain HTTP: "
                    "the code and the agent's credential cross the network "
                    "readable (docs/security.md, \"Pairing codes\")\n");
        }
    }
    json_decref(a);
    return CLI_EXIT_OK;
}

static const struct cli_cmd agent_pair_cmd = {
    .name = "pair",
    .synopsis = "agent pair [--credential ID] [--tag T]... [--name N] [--json]",
    .summary = "Make a one-time code that installs an agent on a new "
               "machine.",
    .details =
        "Asks the running server for a pairing code (10 minutes, one use, "
        "kept in\nthe server's memory only) and prints the one line to run "
        "on the new\nmachine: curl .../pair/CODE | sudo sh. The installer "
        "brings the static\nagent, its config (server, pinned fingerprint, "
        "credential, tags) and a\nsystemd unit; `sh -s -- -h` lists its "
        "options. Without --credential the\nserver makes a credential when "
        "the code is used; with --credential ID\nits secret is read from "
        "standard input.\n",
    .run = agent_pair_run,
};

static const struct cli_cmd agent_list_cmd = {
    .name = "list",
    .synopsis = "agent list [--json]",
    .summary = "List agents: online or offline, last seen, address, tags.",
    .run = agent_list_run,
};
static const struct cli_cmd agent_show_cmd = {
    .name = "show",
    .synopsis = "agent show ID [--json]",
    .summary = "Show everything an agent announced, and its tunnel count.",
    .run = agent_show_run,
};
static const struct cli_cmd agent_delete_cmd = {
    .name = "delete",
    .synopsis = "agent delete ID",
    .summary = "Delete an agent and its tunnels; a connected agent is "
               "dropped.",
    .details = "An agent whose credential is still valid reconnects and "
               "appears again\n(without its tunnels); delete its credential "
               "to keep it out.\n",
    .run = agent_delete_run,
};
static const struct cli_cmd agent_rebind_cmd = {
    .name = "rebind",
    .synopsis = "agent rebind ID (--credential CRED | --unbind)",
    .summary = "Give an agent ID to another credential, or unbind it.",
    .details =
        "An agent ID belongs to the credential that first announced it; "
        "another\ncredential is refused (\"agent id bound to another "
        "credential\") until\nthe ID is rebound to it. --unbind lets the "
        "next credential to announce\nthe ID take it. A connected agent "
        "whose credential is no longer the\nbound one is dropped.\n",
    .run = agent_rebind_run,
};
static const struct cli_cmd *const agent_cmds[] = {
    &agent_list_cmd,   &agent_show_cmd, &agent_rebind_cmd,
    &agent_delete_cmd, &agent_pair_cmd, NULL};

const struct cli_cmd cli_agent = {
    .name = "agent",
    .summary = "Show, rebind and delete agents (portcullis-agent "
               "connections).",
    .sub = agent_cmds,
};
