/*
 * `portcullis peer`: the peer nodes this node routes `peer:NAME` assets
 * through (admin/admin_peer.c holds the rules, route/ the way there).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "common/err.h"
#include "common/loop.h"
#include "common/util.h"
#include "route/route.h"
#include "store/peers.h"

/* The token: --token-stdin (one line) or --token JWT (visible to ps;
 * for scripts that already hold it in the environment). */
static int peer_token(const char *arg, bool from_stdin, bool required,
                      char **out)
{
    int r;

    *out = NULL;
    if (arg != NULL && from_stdin) {
        return cli_error("give the token once: --token or --token-stdin");
    }
    if (from_stdin) {
        if ((r = util_read_stdin_line(8192, out)) != ERR_OK) {
            return cli_error("cannot read the token from stdin: %s",
                             err_str(r));
        }
        return CLI_EXIT_OK;
    }
    if (arg != NULL) {
        if ((*out = strdup(arg)) == NULL) {
            return cli_error("%s", err_str(ERR_NOMEM));
        }
        return CLI_EXIT_OK;
    }
    return required ? cli_error("the peer's API token is needed: "
                                "--token-stdin (or --token JWT)")
                    : CLI_EXIT_OK;
}

static int peer_write_run(struct cli_ctx *ctx, int argc, char **argv,
                          bool create)
{
    const char *pos[CLI_MAX_POS], *token_arg = NULL;
    bool token_stdin = false;
    const struct cli_opt extra[] = {
        CLI_OPT_STR("--token", &token_arg),
        CLI_OPT_FLAG("--token-stdin", &token_stdin),
        CLI_OPT_END,
    };
    struct store_peer p;
    struct admin_ctx ac;
    struct admin_err e;
    json_t *body = NULL;
    char *token = NULL;
    int rc, r;

    if ((rc = cli_parse_fields(ctx, argc, argv, admin_peer_fields, create,
                               extra, "NAME", pos, &body)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = peer_token(token_arg, token_stdin, create, &token)) !=
            CLI_EXIT_OK ||
        (rc = cli_open_vault(ctx)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        goto out;
    }
    ac.vault = ctx->vault;
    if (create) {
        json_object_set_new(body, "name", json_string(pos[0]));
        r = admin_peer_add(&ac, body, token, &p, &e);
    } else {
        r = admin_peer_update(&ac, pos[0], body, token, &p, &e);
    }
    if (r != ERR_OK) {
        rc = cli_admin_error(ctx, &e);
        goto out;
    }
    if (create) {
        printf("%s\n", p.id);
    }
    rc = CLI_EXIT_OK;
out:
    if (token != NULL) {
        cli_secret_free(token);
    }
    sodium_memzero(&p, sizeof(p));
    json_decref(body);
    return rc;
}

static int peer_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return peer_write_run(ctx, argc, argv, true);
}

static int peer_update_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return peer_write_run(ctx, argc, argv, false);
}

static int peer_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct store_peer *list = NULL;
    size_t n = 0;
    bool json = false;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_peer_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list peers: %s", err_str(r));
    }
    rc = cli_fields_list(admin_peer_fields, list, n, sizeof(*list), json);
    store_peer_list_free(list, n);
    return rc;
}

static int peer_show_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool json = false;
    const struct cli_opt opts[] = {
        CLI_OPT_FLAG("--json", &json),
        CLI_OPT_END,
    };
    struct store_peer p;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED ||
        (rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_peer_get(ctx->st, pos[0], &p)) != ERR_OK) {
        return cli_store_error(r, "peer", pos[0]);
    }
    if (json) {
        rc = cli_json_print(admin_json_encode(admin_peer_fields, &p));
    } else {
        cli_fields_show(admin_peer_fields, &p);
        rc = CLI_EXIT_OK;
    }
    sodium_memzero(&p, sizeof(p));
    return rc;
}

static int peer_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return cli_admin_delete(ctx, argc, argv, "NAME", admin_peer_delete);
}

struct peer_check {
    struct loop *loop;
    bool done;
    int status;
    char why[600];
    char server[128];
};

static void peer_check_done(void *arg, const struct route_result *r)
{
    struct peer_check *pc = arg;

    pc->done = true;
    pc->status = r->status;
    snprintf(pc->why, sizeof(pc->why), "%s", r->why != NULL ? r->why : "");
    snprintf(pc->server, sizeof(pc->server), "%s",
             r->server != NULL ? r->server : "");
    loop_stop(pc->loop);
}

static int peer_check_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct peer_check pc;
    struct routes *rs = NULL;
    struct store_peer p;
    int64_t t0, ms;
    int rc, r;

    memset(&pc, 0, sizeof(pc));
    if ((rc = cli_parse(ctx, argc, argv, NULL, "NAME", pos)) != CLI_PARSED ||
        (rc = cli_open_store(ctx)) != CLI_EXIT_OK ||
        (rc = cli_open_vault(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_peer_get(ctx->st, pos[0], &p)) != ERR_OK) {
        return cli_store_error(r, "peer", pos[0]);
    }
    sodium_memzero(p.token_sealed, sizeof(p.token_sealed));
    if ((pc.loop = loop_new()) == NULL ||
        (rs = routes_new(pc.loop, &ctx->cfg, NULL)) == NULL) {
        loop_free(pc.loop);
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    routes_set_store(rs, ctx->st, ctx->vault);
    t0 = util_mono_ms();
    (void)route_peer_check(rs, p.name, peer_check_done, &pc);
    if (!pc.done) {
        (void)loop_run(pc.loop);
    }
    ms = util_mono_ms() - t0;
    routes_free(rs);
    loop_free(pc.loop);
    if (pc.why[0] != '\0') {
        printf("peer=%s\nok=false\nreason=%s\n", p.name, pc.why);
        return cli_error("%s", pc.why);
    }
    printf("peer=%s\nok=true\nserver=%s\nround_trip_ms=%lld\n", p.name,
           pc.server, (long long)ms);
    return CLI_EXIT_OK;
}

static const struct cli_cmd peer_add_cmd = {
    .name = "add",
    .synopsis = "peer add NAME --host HOST [--port N] (--token-stdin | "
                "--token JWT)\n"
                "         (--tls-fingerprint SHA256:... | --plain-http) "
                "[--via peer:OTHER]",
    .summary = "Add a peer node; prints its ID.",
    .details =
        "A peer node is another Portcullis whose [http_proxy] reaches an "
        "isolated segment;\nassets with --route peer:NAME are reached "
        "through it.\n\n"
        "Options:\n"
        "  --host HOST          the peer's proxy address\n"
        "  --port N             its [http_proxy] port (default 3128)\n"
        "  --token-stdin        read the peer's API token (one line) from "
        "stdin: a token\n"
        "                       made on the peer by 'token add' for a user "
        "with the\n"
        "                       service role; sealed here, never shown "
        "again\n"
        "  --token JWT          the same on the command line (visible to "
        "other users' ps)\n"
        "  --tls-fingerprint F  the peer's certificate, as its init printed "
        "tls_fingerprint\n"
        "  --plain-http         the peer's proxy speaks plain HTTP "
        "([http_proxy] "
        "tls = false)\n"
        "  --via peer:OTHER     reach this peer's proxy through peer OTHER "
        "(a segment\n"
        "                       behind a segment; loops are refused)\n",
    .run = peer_add_run,
};
static const struct cli_cmd peer_update_cmd = {
    .name = "update",
    .synopsis = "peer update NAME [--host HOST] [--port N] [--token-stdin] "
                "[--tls-fingerprint F | --plain-http] [--via peer:OTHER]",
    .summary = "Change a peer node (what is given; the token only with "
               "--token-stdin or --token).",
    .run = peer_update_run,
};
static const struct cli_cmd peer_list_cmd = {
    .name = "list",
    .synopsis = "peer list [--json]",
    .summary = "List peer nodes (never their tokens).",
    .run = peer_list_run,
};
static const struct cli_cmd peer_show_cmd = {
    .name = "show",
    .synopsis = "peer show NAME [--json]",
    .summary = "Show a peer node.",
    .run = peer_show_run,
};
static const struct cli_cmd peer_delete_cmd = {
    .name = "delete",
    .synopsis = "peer delete NAME",
    .summary = "Delete a peer node (refused while an asset or another peer "
               "routes through it).",
    .run = peer_delete_run,
};
static const struct cli_cmd peer_check_cmd = {
    .name = "check",
    .synopsis = "peer check NAME",
    .summary = "Reach the peer's proxy, authenticate, and print its version "
               "and the round trip, or exactly why not.",
    .details = "Prints peer=, ok=true, server= (portcullis/VERSION) and "
               "round_trip_ms=; or ok=false and reason=,\nand exits 1.\n",
    .run = peer_check_run,
};
static const struct cli_cmd *const peer_cmds[] = {&peer_add_cmd,
                                                  &peer_update_cmd,
                                                  &peer_list_cmd,
                                                  &peer_show_cmd,
                                                  &peer_delete_cmd,
                                                  &peer_check_cmd,
                                                  NULL};

const struct cli_cmd cli_peer = {
    .name = "peer",
    .summary = "Manage peer nodes (isolated segments reached through another "
               "Portcullis).",
    .sub = peer_cmds,
};
