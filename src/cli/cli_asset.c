/*
 * `portcullis asset ...`: the targets users reach through the proxy, with
 * their vaulted logins and pinned host keys.
 *
 * An adapter over the admin layer (admin_asset.c), which checks, defaults
 * and seals: a login password (from stdin) and a private key (from a
 * file) are sealed with the vault before they reach the store. Plaintexts
 * are wiped on every path.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli/cli.h"
#include "common/err.h"
#include "common/util.h"
#include "store/agents.h"
#include "store/peers.h"

/* Reads a private key file and seals it for the asset (admin checks
 * libssh can use it without a passphrase). */
static int asset_seal_key(const struct cli_ctx *ctx, struct store_asset *a,
                          const char *file)
{
    uint8_t *data = NULL;
    size_t len = 0;
    struct admin_err e;
    int rc = CLI_EXIT_FAIL, r;

    r = util_read_file(file, ADMIN_PRIVKEY_MAX, &data, &len);
    if (r == ERR_TOO_LONG) {
        return cli_error("%s: larger than %d bytes, not a private key", file,
                         ADMIN_PRIVKEY_MAX);
    }
    if (r != ERR_OK) {
        return cli_error("cannot read %s: %s", file, err_str(r));
    }
    if (admin_asset_seal_key(ctx->vault, a, (const char *)data, len, &e) !=
        ERR_OK) {
        rc = cli_error("%s: %s", file, e.msg);
    } else {
        rc = CLI_EXIT_OK;
    }
    sodium_memzero(data, len);
    free(data);
    return rc;
}

/* A route naming a peer or an agent this store does not know (yet) is
 * accepted (an agent may enroll later, a peer be added later), with a
 * warning: sessions to the asset fail until then. */
static void asset_route_warn(struct cli_ctx *ctx, const char *route)
{
    if (strncmp(route, "peer:", 5) == 0) {
        struct store_peer *p = malloc(sizeof(*p));
        if (p != NULL &&
            store_peer_get(ctx->st, route + 5, p) == ERR_NOT_FOUND) {
            fprintf(stderr,
                    "warning: no peer named '%s' yet: sessions to this "
                    "asset fail until `portcullis peer add %s ...`\n",
                    route + 5, route + 5);
        }
        if (p != NULL) {
            sodium_memzero(p, sizeof(*p));
        }
        free(p);
    } else if (strncmp(route, "agent:", 6) == 0) {
        struct store_agent *a = malloc(sizeof(*a));
        if (a != NULL &&
            store_agent_get(ctx->st, route + 6, a) == ERR_NOT_FOUND) {
            fprintf(stderr,
                    "warning: no agent '%s' has connected yet: sessions "
                    "to this asset fail until it does\n",
                    route + 6);
        }
        free(a);
    }
}

static int asset_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *site = NULL, *keyfile = NULL;
    bool pw_stdin = false;
    /* the verb's own options; the rest are the descriptor's
     * (admin_asset.c): --protocol --host --port --login --route
     * --host-key-fingerprint */
    const struct cli_opt extra[] = {
        CLI_OPT_STR("--site", &site),
        CLI_OPT_FLAG("--password-stdin", &pw_stdin),
        CLI_OPT_STR("--key", &keyfile),
        CLI_OPT_END,
    };
    struct admin_ctx ac;
    struct admin_err e;
    struct store_asset a;
    json_t *body = NULL;
    char *pw = NULL;
    int rc;

    admin_asset_defaults(&a);
    if ((rc = cli_parse_fields(ctx, argc, argv, admin_asset_fields, true, extra,
                               "NAME", pos, &body)) != CLI_PARSED) {
        return rc;
    }
    if ((pw_stdin || keyfile != NULL) && !json_object_get(body, "login")) {
        json_decref(body);
        return cli_usage(ctx, "--password-stdin and --key need --login USER");
    }
    rc = admin_set_name(a.name, sizeof(a.name), pos[0], "asset", &e);
    if (rc == ERR_OK) {
        rc = admin_json_apply(admin_asset_fields, body, &a, &e);
        admin_asset_default_port(&a, body);
    }
    json_decref(body);
    if (rc != ERR_OK || admin_asset_check(&a, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_asset_set_site(ctx->st, &a, site, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    if ((pw_stdin || keyfile != NULL) &&
        (rc = cli_open_vault(ctx)) != CLI_EXIT_OK) {
        goto out;
    }
    if (keyfile != NULL &&
        (rc = asset_seal_key(ctx, &a, keyfile)) != CLI_EXIT_OK) {
        goto out;
    }
    if (pw_stdin) {
        if ((rc = cli_read_password(&pw)) != CLI_EXIT_OK) {
            goto out;
        }
        if (admin_asset_seal_password(ctx->vault, &a, pw, &e) != ERR_OK) {
            rc = cli_admin_error(ctx, &e);
            goto out;
        }
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        goto out;
    }
    if (admin_asset_add(&ac, &a, &e) != ERR_OK) {
        rc = cli_admin_error(ctx, &e);
        goto out;
    }
    printf("%s\n", a.id);
    asset_route_warn(ctx, a.route);
    rc = CLI_EXIT_OK;
out:
    cli_secret_free(pw);
    store_asset_clear(&a);
    return rc;
}

static int asset_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    struct store_asset *list = NULL;
    size_t n = 0;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_asset_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list assets: %s", err_str(r));
    }
    rc = cli_fields_list(admin_asset_fields, list, n, sizeof(*list), json);
    store_asset_list_free(list, n);
    return rc;
}

static int asset_show_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool json = false;
    const struct cli_opt opts[] = {CLI_OPT_FLAG("--json", &json), CLI_OPT_END};
    struct store_asset a;
    char port[16], created[32];
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, opts, "ID|NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_get_asset(ctx, pos[0], &a)) != CLI_EXIT_OK) {
        return rc;
    }
    if (json) {
        rc = cli_json_print(admin_asset_json(&a));
    } else {
        snprintf(port, sizeof(port), "%d", a.port);
        cli_fmt_time(a.created_at, created, sizeof(created));
        cli_show("id", a.id);
        cli_show("name", a.name);
        cli_show("site", a.site_path);
        cli_show("site_id", a.site_id);
        cli_show("protocol", a.protocol);
        cli_show("host", a.host);
        cli_show("port", port);
        cli_show("route", a.route);
        cli_show("login_user", a.login_user);
        cli_show("has_password", a.password_sealed != NULL ? "yes" : "no");
        cli_show("has_key", a.key_sealed != NULL ? "yes" : "no");
        cli_show("host_key_fingerprint", a.host_key_fp);
        cli_show("created_at", created);
    }
    store_asset_clear(&a);
    return rc;
}

static int asset_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct store_asset a;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "ID|NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_get_asset(ctx, pos[0], &a)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) == CLI_EXIT_OK &&
        admin_asset_delete(&ac, &a, &e) != ERR_OK) {
        rc = cli_admin_error(ctx, &e);
    }
    store_asset_clear(&a);
    return rc;
}

static int asset_retrust_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *fp = NULL;
    const struct cli_opt opts[] = {CLI_OPT_STR("--fingerprint", &fp),
                                   CLI_OPT_END};
    struct admin_ctx ac;
    struct admin_err e;
    struct store_asset a;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, opts, "ID|NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if (fp != NULL && !admin_fingerprint_valid(fp)) {
        e.code = ERR_INVALID;
        snprintf(e.msg, sizeof(e.msg), "%s", admin_msg_fingerprint);
        return cli_admin_error(ctx, &e);
    }
    if ((rc = cli_get_asset(ctx, pos[0], &a)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) == CLI_EXIT_OK &&
        admin_asset_retrust(&ac, &a, fp, &e) != ERR_OK) {
        rc = cli_admin_error(ctx, &e);
    }
    store_asset_clear(&a);
    return rc;
}

static const struct cli_cmd asset_add_cmd = {
    .name = "add",
    .synopsis = "asset add NAME --host H [--protocol ssh|rdp|tcp] [--port P]\n"
                "[--site PATH] [--login USER] [--password-stdin] [--key FILE]\n"
                "[--host-key-fingerprint SHA256:...] [--route R]",
    .summary = "Add an asset; prints its new ID.",
    .details =
        "Options:\n"
        "  --host H          host name or address of the target\n"
        "  --protocol P      ssh (default), rdp (port 3389 unless given) or "
        "tcp\n"
        "  --port P          its SSH port (default 22)\n"
        "  --site PATH       the site it belongs to (default /root)\n"
        "  --login USER      the login used on the target (default: the\n"
        "                    Portcullis user's own name)\n"
        "  --password-stdin  vault the login's password, read from stdin\n"
        "  --key FILE        vault the login's private key (no passphrase)\n"
        "  --host-key-fingerprint SHA256:...\n"
        "                    pin the target's host key (default: trust the\n"
        "                    first key seen)\n"
        "  --route R         direct (default), or agent:ID: host and port as\n"
        "                    the agent ID sees them (e.g. 127.0.0.1:22)\n",
    .run = asset_add_run,
};
static const struct cli_cmd asset_list_cmd = {
    .name = "list",
    .synopsis = "asset list [--json]",
    .summary = "List assets.",
    .run = asset_list_run,
};
static const struct cli_cmd asset_show_cmd = {
    .name = "show",
    .synopsis = "asset show ID|NAME [--json]",
    .summary = "Show an asset.",
    .run = asset_show_run,
};
static const struct cli_cmd asset_delete_cmd = {
    .name = "delete",
    .synopsis = "asset delete ID|NAME",
    .summary = "Delete an asset.",
    .run = asset_delete_run,
};
static const struct cli_cmd asset_retrust_cmd = {
    .name = "retrust",
    .synopsis = "asset retrust ID|NAME [--fingerprint SHA256:...]",
    .summary = "Replace an asset's pinned host key.",
    .details =
        "Without --fingerprint, the next key the target shows is trusted and "
        "pinned.\n",
    .run = asset_retrust_run,
};
static const struct cli_cmd *const asset_cmds[] = {
    &asset_add_cmd,    &asset_list_cmd,    &asset_show_cmd,
    &asset_delete_cmd, &asset_retrust_cmd, NULL};

const struct cli_cmd cli_asset = {
    .name = "asset",
    .summary = "Manage assets and their vaulted logins.",
    .details = "ID|NAME is an asset's ID, or its name when exactly one asset "
               "has it.\n",
    .sub = asset_cmds,
};
