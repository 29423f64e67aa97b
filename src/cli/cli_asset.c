/*
 * `portcullis asset ...`: the targets users reach through the proxy, with
 * their vaulted logins and pinned host keys.
 *
 * A login password (from stdin) and a private key (from a file) are sealed
 * with the vault before they reach the store, under associated data that
 * names the asset ("asset-password:<id>", "asset-key:<id>"), so the asset's
 * ID is made here, before sealing, rather than by the store. Plaintexts are
 * wiped on every path.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli/cli.h"
#include "common/err.h"
#include "common/util.h"
#include "common/vault.h"

#define ASSET_KEY_FILE_MAX (16 * 1024)
#define ASSET_DEFAULT_SITE "/root"

/* libssh asks this for a passphrase: there is none to give, and the
 * default (OpenSSL's) would prompt on the terminal. */
static int asset_no_passphrase(const char *prompt, char *buf, size_t len,
                               int echo, int verify, void *userdata)
{
    return -1;
}

/* Reads a private key file, checks libssh can use it without a
 * passphrase, and seals it for asset id. */
static int asset_seal_key(const struct vault *v, const char *id,
                          const char *file, uint8_t **sealed,
                          size_t *sealed_len)
{
    uint8_t *data = NULL;
    size_t len = 0;
    ssh_key key = NULL;
    char ad[64];
    int rc = CLI_EXIT_FAIL, r;

    r = util_read_file(file, ASSET_KEY_FILE_MAX, &data, &len);
    if (r == ERR_TOO_LONG) {
        cli_error("%s: larger than %d bytes, not a private key", file,
                  ASSET_KEY_FILE_MAX);
        goto out;
    }
    if (r != ERR_OK) {
        cli_error("cannot read %s: %s", file, err_str(r));
        goto out;
    }
    if (strlen((const char *)data) != len ||
        ssh_pki_import_privkey_base64((const char *)data, NULL,
                                      asset_no_passphrase, NULL,
                                      &key) != SSH_OK) {
        cli_error("%s: not a private key, or protected by a passphrase", file);
        goto out;
    }
    snprintf(ad, sizeof(ad), "asset-key:%s", id);
    if ((r = vault_seal(v, ad, data, len, sealed, sealed_len)) != ERR_OK) {
        cli_error("cannot seal the private key: %s", err_str(r));
        goto out;
    }
    if (*sealed_len > STORE_KEY_MAX) {
        cli_error("%s: too large to store", file);
        free(*sealed);
        *sealed = NULL;
        goto out;
    }
    rc = CLI_EXIT_OK;
out:
    ssh_key_free(key);
    if (data != NULL) {
        sodium_memzero(data, len);
        free(data);
    }
    return rc;
}

/* Reads the login password from stdin and seals it for asset id. */
static int asset_seal_password(const struct vault *v, const char *id,
                               uint8_t **sealed, size_t *sealed_len)
{
    char *pw = NULL, ad[64];
    int rc, r;

    if ((rc = cli_read_password(&pw)) != CLI_EXIT_OK) {
        return rc;
    }
    snprintf(ad, sizeof(ad), "asset-password:%s", id);
    r = vault_seal(v, ad, (const uint8_t *)pw, strlen(pw), sealed, sealed_len);
    if (r != ERR_OK) {
        rc = cli_error("cannot seal the password: %s", err_str(r));
    }
    cli_secret_free(pw);
    return rc;
}

static int asset_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *host = NULL, *site = ASSET_DEFAULT_SITE;
    const char *login = NULL, *keyfile = NULL, *fp = NULL, *route = "direct";
    int port = 22, rc, r;
    bool pw_stdin = false;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--host", &host),
        CLI_OPT_INT("--port", &port, 1, 65535),
        CLI_OPT_STR("--site", &site),
        CLI_OPT_STR("--login", &login),
        CLI_OPT_FLAG("--password-stdin", &pw_stdin),
        CLI_OPT_STR("--key", &keyfile),
        CLI_OPT_STR("--host-key-fingerprint", &fp),
        CLI_OPT_STR("--route", &route),
        CLI_OPT_END,
    };
    struct store_site s;
    struct store_asset a;

    memset(&a, 0, sizeof(a));
    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if (host == NULL) {
        return cli_usage(ctx, "missing --host HOST");
    }
    if (!cli_host_valid(host)) {
        return cli_usage(ctx, "--host needs a host name or address");
    }
    if ((pw_stdin || keyfile != NULL) && login == NULL) {
        return cli_usage(ctx, "--password-stdin and --key need --login USER");
    }
    if (strlen(pos[0]) > STORE_NAME_MAX ||
        (login != NULL && strlen(login) > STORE_NAME_MAX)) {
        return cli_usage(ctx, "names are limited to %d characters",
                         STORE_NAME_MAX);
    }
    if (fp != NULL && !cli_fingerprint_valid(fp)) {
        return cli_usage(ctx, "--host-key-fingerprint needs SHA256:<43 "
                              "base64 characters>, as ssh-keygen -l prints");
    }
    if (!store_route_valid(route)) {
        return cli_usage(ctx, "--route needs 'direct' or 'agent:ID' (an "
                              "agent ID: 1-64 of A-Z a-z 0-9 . _ -)");
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_site_get(ctx->st, site, &s)) != ERR_OK) {
        return cli_store_error(r, "site", site);
    }
    util_uuid4(a.id);
    snprintf(a.name, sizeof(a.name), "%s", pos[0]);
    snprintf(a.site_id, sizeof(a.site_id), "%s", s.id);
    snprintf(a.site_path, sizeof(a.site_path), "%s", s.path);
    snprintf(a.protocol, sizeof(a.protocol), "ssh");
    snprintf(a.host, sizeof(a.host), "%s", host);
    a.port = port;
    snprintf(a.route, sizeof(a.route), "%s", route);
    snprintf(a.login_user, sizeof(a.login_user), "%s",
             login != NULL ? login : "");
    snprintf(a.host_key_fp, sizeof(a.host_key_fp), "%s", fp != NULL ? fp : "");
    if ((pw_stdin || keyfile != NULL) &&
        (rc = cli_open_vault(ctx)) != CLI_EXIT_OK) {
        goto out;
    }
    if (keyfile != NULL &&
        (rc = asset_seal_key(ctx->vault, a.id, keyfile, &a.key_sealed,
                             &a.key_sealed_len)) != CLI_EXIT_OK) {
        goto out;
    }
    if (pw_stdin &&
        (rc = asset_seal_password(ctx->vault, a.id, &a.password_sealed,
                                  &a.password_sealed_len)) != CLI_EXIT_OK) {
        goto out;
    }
    if ((r = store_asset_add(ctx->st, &a)) != ERR_OK) {
        rc = cli_store_error(r, "asset", pos[0]);
        goto out;
    }
    printf("%s\n", a.id);
    rc = CLI_EXIT_OK;
out:
    free(a.password_sealed);
    free(a.key_sealed);
    return rc;
}

static json_t *asset_json(const struct store_asset *a)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s?, s:b, s:b, "
                     "s:s?, s:o}",
                     "id", a->id, "name", a->name, "site", a->site_path,
                     "protocol", a->protocol, "host", a->host, "port", a->port,
                     "route", a->route, "login_user", cli_nz(a->login_user),
                     "has_password", a->password_sealed != NULL, "has_key",
                     a->key_sealed != NULL, "host_key_fingerprint",
                     cli_nz(a->host_key_fp), "created_at",
                     cli_json_time(a->created_at));
}

static int asset_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    struct store_asset *list = NULL;
    struct cli_table *t;
    json_t *arr;
    char port[16];
    size_t n = 0, i;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_asset_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list assets: %s", err_str(r));
    }
    if (json) {
        arr = json_array();
        for (i = 0; i < n; i++) {
            cli_json_append(&arr, asset_json(&list[i]));
        }
        rc = cli_json_print(arr);
    } else {
        t = cli_table_new(7, "ID", "NAME", "SITE", "HOST", "PORT", "LOGIN",
                          "ROUTE");
        for (i = 0; i < n; i++) {
            snprintf(port, sizeof(port), "%d", list[i].port);
            cli_table_add(t, list[i].id, list[i].name, list[i].site_path,
                          list[i].host, port, list[i].login_user,
                          list[i].route);
        }
        rc = cli_table_finish(t);
    }
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
        rc = cli_json_print(asset_json(&a));
    } else {
        snprintf(port, sizeof(port), "%d", a.port);
        cli_fmt_time(a.created_at, created, sizeof(created));
        cli_show("id", a.id);
        cli_show("name", a.name);
        cli_show("site", a.site_path);
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
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "ID|NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_get_asset(ctx, pos[0], &a)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_asset_delete(ctx->st, a.id)) != ERR_OK) {
        rc = cli_store_error(r, "asset", pos[0]);
    }
    store_asset_clear(&a);
    return rc;
}

static int asset_retrust_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *fp = NULL;
    const struct cli_opt opts[] = {CLI_OPT_STR("--fingerprint", &fp),
                                   CLI_OPT_END};
    struct store_asset a;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "ID|NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if (fp != NULL && !cli_fingerprint_valid(fp)) {
        return cli_usage(ctx, "--fingerprint needs SHA256:<43 base64 "
                              "characters>, as ssh-keygen -l prints");
    }
    if ((rc = cli_get_asset(ctx, pos[0], &a)) != CLI_EXIT_OK) {
        return rc;
    }
    r = store_asset_set_host_key(ctx->st, a.id, fp != NULL ? fp : "");
    if (r != ERR_OK) {
        rc = cli_store_error(r, "asset", pos[0]);
    }
    store_asset_clear(&a);
    return rc;
}

static const struct cli_cmd asset_add_cmd = {
    .name = "add",
    .synopsis = "asset add NAME --host H [--port P] [--site PATH]\n"
                "[--login USER] [--password-stdin] [--key FILE]\n"
                "[--host-key-fingerprint SHA256:...] [--route R]",
    .summary = "Add an SSH asset; prints its new ID.",
    .details =
        "Options:\n"
        "  --host H          host name or address of the target\n"
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
    .mutates = true,
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
    .mutates = true,
};
static const struct cli_cmd asset_retrust_cmd = {
    .name = "retrust",
    .synopsis = "asset retrust ID|NAME [--fingerprint SHA256:...]",
    .summary = "Replace an asset's pinned host key.",
    .details =
        "Without --fingerprint, the next key the target shows is trusted and "
        "pinned.\n",
    .run = asset_retrust_run,
    .mutates = true,
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
