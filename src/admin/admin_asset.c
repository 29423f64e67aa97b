/*
 * Assets: defaults, checks, the sealing of their vaulted logins and their
 * JSON form, for `portcullis asset` and /api/v1/assets alike.
 *
 * A login password and a private key are sealed before they reach the
 * store under associated data naming the asset (vault_ad), so an asset's
 * ID is made before sealing, by admin_asset_defaults, not by the store.
 */
#include "admin/admin.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <libssh/libssh.h>

#include "common/err.h"
#include "common/util.h"
#include "common/vault.h"

void admin_asset_defaults(struct store_asset *a)
{
    memset(a, 0, sizeof(*a));
    util_uuid4(a->id);
    snprintf(a->protocol, sizeof(a->protocol), "%s",
             ADMIN_ASSET_DEFAULT_PROTOCOL);
    a->port = ADMIN_ASSET_DEFAULT_PORT;
    snprintf(a->route, sizeof(a->route), "%s", ADMIN_ASSET_DEFAULT_ROUTE);
}

void admin_asset_default_port(struct store_asset *a, const json_t *body)
{
    if (json_object_get(body, "port") == NULL &&
        strcmp(a->protocol, "rdp") == 0) {
        a->port = ADMIN_ASSET_DEFAULT_RDP_PORT;
    }
}

int admin_asset_set_site(struct store *st, struct store_asset *a,
                         const char *site, struct admin_err *e)
{
    struct store_site s;
    int r;

    if (site == NULL) {
        site = ADMIN_ASSET_DEFAULT_SITE;
    }
    if ((r = store_site_get(st, site, &s)) != ERR_OK) {
        return r == ERR_NOT_FOUND
                   ? admin_fail(e, r, "site '%.512s' not found", site)
                   : admin_fail(e, r, "cannot read site '%.512s': %s", site,
                                err_str(r));
    }
    memcpy(a->site_id, s.id, sizeof(s.id));
    memcpy(a->site_path, s.path, sizeof(s.path));
    return ERR_OK;
}

/* libssh asks this for a passphrase: there is none to give, and the
 * default (OpenSSL's) would prompt on the terminal. */
static int admin_no_passphrase(const char *prompt, char *buf, size_t len,
                               int echo, int verify, void *userdata)
{
    return -1;
}

static int admin_seal(const struct vault *v, const char *kind, const char *id,
                      const char *what, const uint8_t *plain, size_t len,
                      uint8_t **sealed, size_t *sealed_len, struct admin_err *e)
{
    char ad[VAULT_AD_MAX];
    uint8_t *out = NULL;
    size_t out_len = 0;
    int r;

    if (v == NULL) {
        return admin_fail(e, ERR_INTERNAL, "no vault to seal the %s", what);
    }
    vault_ad(ad, kind, id);
    if ((r = vault_seal(v, ad, plain, len, &out, &out_len)) != ERR_OK) {
        return admin_fail(e, r, "cannot seal the %s: %s", what, err_str(r));
    }
    if (out_len > STORE_KEY_MAX) {
        free(out);
        return admin_fail(e, ERR_INVALID, "the %s is too large to store", what);
    }
    free(*sealed);
    *sealed = out;
    *sealed_len = out_len;
    return ERR_OK;
}

int admin_asset_seal_key(const struct vault *v, struct store_asset *a,
                         const char *pem, size_t len, struct admin_err *e)
{
    ssh_key key = NULL;

    if (len > ADMIN_PRIVKEY_MAX) {
        return admin_fail(e, ERR_INVALID,
                          "larger than %d bytes, not a private key",
                          ADMIN_PRIVKEY_MAX);
    }
    if (strlen(pem) != len ||
        ssh_pki_import_privkey_base64(pem, NULL, admin_no_passphrase, NULL,
                                      &key) != SSH_OK) {
        return admin_fail(e, ERR_INVALID,
                          "not a private key, or protected by a passphrase");
    }
    ssh_key_free(key);
    return admin_seal(v, VAULT_AD_ASSET_KEY, a->id, "private key",
                      (const uint8_t *)pem, len, &a->key_sealed,
                      &a->key_sealed_len, e);
}

int admin_asset_seal_password(const struct vault *v, struct store_asset *a,
                              const char *pw, struct admin_err *e)
{
    if (pw == NULL) {
        free(a->password_sealed);
        a->password_sealed = NULL;
        a->password_sealed_len = 0;
        return ERR_OK;
    }
    if (pw[0] == '\0') {
        return admin_fail(e, ERR_INVALID, "the login password is empty");
    }
    return admin_seal(v, VAULT_AD_ASSET_PASSWORD, a->id, "password",
                      (const uint8_t *)pw, strlen(pw), &a->password_sealed,
                      &a->password_sealed_len, e);
}

int admin_asset_check(const struct store_asset *a, struct admin_err *e)
{
    if (a->name[0] == '\0' || strlen(a->name) > STORE_NAME_MAX ||
        strlen(a->login_user) > STORE_NAME_MAX) {
        return admin_fail(e, ERR_INVALID, "names are 1-%d characters",
                          STORE_NAME_MAX);
    }
    if (strcmp(a->protocol, "ssh") != 0 && strcmp(a->protocol, "rdp") != 0 &&
        strcmp(a->protocol, "tcp") != 0) {
        return admin_fail(e, ERR_INVALID, "protocol must be ssh, rdp or tcp");
    }
    if (!admin_host_valid(a->host)) {
        return admin_fail(e, ERR_INVALID, "%s", admin_msg_host);
    }
    if (a->port < 1 || a->port > 65535) {
        return admin_fail(e, ERR_INVALID, "port must be 1-65535");
    }
    if (a->host_key_fp[0] != '\0' && !admin_fingerprint_valid(a->host_key_fp)) {
        return admin_fail(e, ERR_INVALID, "%s", admin_msg_fingerprint);
    }
    if (!store_route_valid(a->route)) {
        return admin_fail(e, ERR_INVALID, "%s", admin_msg_route);
    }
    if ((a->password_sealed != NULL || a->key_sealed != NULL) &&
        a->login_user[0] == '\0') {
        return admin_fail(e, ERR_INVALID,
                          "a vaulted password or key needs a login");
    }
    return ERR_OK;
}

static int admin_asset_write(struct store *st, struct store_asset *a, bool add,
                             struct admin_err *e)
{
    int r;

    if ((r = admin_asset_check(a, e)) != ERR_OK) {
        return r;
    }
    r = add ? store_asset_add(st, a) : store_asset_update(st, a);
    if (r == ERR_EXISTS) {
        return admin_fail(e, r, "asset '%s' already exists", a->name);
    }
    if (r == ERR_NOT_FOUND) {
        return admin_fail(e, r, "asset '%s' not found", a->id);
    }
    if (r != ERR_OK) {
        return admin_fail(e, r, "asset '%s': %s", a->name, err_str(r));
    }
    return ERR_OK;
}

int admin_asset_add(const struct admin_ctx *c, struct store_asset *a,
                    struct admin_err *e)
{
    int r = admin_asset_write(c->st, a, true, e);

    return r != ERR_OK ? r : admin_audit(c, "asset.add", a->name, a->id, e);
}

int admin_asset_update(const struct admin_ctx *c, struct store_asset *a,
                       struct admin_err *e)
{
    int r = admin_asset_write(c->st, a, false, e);

    return r != ERR_OK ? r : admin_audit(c, "asset.update", a->name, a->id, e);
}

int admin_asset_delete(const struct admin_ctx *c, const struct store_asset *a,
                       struct admin_err *e)
{
    int r = store_asset_delete(c->st, a->id);

    if (r == ERR_NOT_FOUND) {
        return admin_fail(e, r, "asset '%s' not found", a->name);
    }
    if (r != ERR_OK) {
        return admin_fail(e, r, "asset '%s': %s", a->name, err_str(r));
    }
    return admin_audit(c, "asset.delete", a->name, a->id, e);
}

int admin_asset_retrust(const struct admin_ctx *c, const struct store_asset *a,
                        const char *fp, struct admin_err *e)
{
    int r;

    if (fp != NULL && fp[0] != '\0' && !admin_fingerprint_valid(fp)) {
        return admin_fail(e, ERR_INVALID, "%s", admin_msg_fingerprint);
    }
    if ((r = store_asset_set_host_key(c->st, a->id, fp != NULL ? fp : "")) !=
        ERR_OK) {
        return admin_fail(e, r, "asset '%s': %s", a->name, err_str(r));
    }
    return admin_audit(c, "asset.retrust", a->name,
                       fp != NULL && fp[0] != '\0' ? fp : "(next key)", e);
}

#define AF(j, t, m, ...) ADMIN_FIELD(struct store_asset, j, t, m, __VA_ARGS__)

/* The asset: JSON (both doors), the plain fields a request sets and the
 * CLI's table columns. site is set by admin_asset_set_site, the logins
 * by the sealing functions; admin_asset_check holds the rules on each
 * value. */
const struct admin_field admin_asset_fields[] = {
    AF("id", AF_STR, id, .flags = AF_READONLY, .col = "ID"),
    AF("name", AF_STR, name, .flags = AF_REQUIRED, .cli = "NAME",
       .col = "NAME"),
    AF("site", AF_STR, site_path, .flags = AF_READONLY, .cli = "--site",
       .col = "SITE"),
    AF("site_id", AF_STR, site_id, .flags = AF_READONLY),
    AF("protocol", AF_STR, protocol, .cli = "--protocol", .col = "PROTOCOL"),
    AF("host", AF_STR, host, .flags = AF_REQUIRED, .cli = "--host",
       .col = "HOST"),
    AF("port", AF_INT, port, .cli = "--port", .lo = 1, .hi = 65535,
       .col = "PORT"),
    AF("login_user", AF_STRZ, login_user, .in = "login", .cli = "--login",
       .col = "LOGIN"),
    AF("route", AF_STR, route, .cli = "--route", .col = "ROUTE"),
    AF("has_password", AF_SEALED, password_sealed, .flags = AF_READONLY,
       .cli = "--password-stdin"),
    AF("has_key", AF_SEALED, key_sealed, .flags = AF_READONLY, .cli = "--key"),
    AF("host_key_fingerprint", AF_STRZ, host_key_fp,
       .cli = "--host-key-fingerprint"),
    AF("created_at", AF_TIME, created_at, .flags = AF_READONLY),
    ADMIN_FIELD_END,
};

json_t *admin_asset_json(const struct store_asset *a)
{
    return admin_json_encode(admin_asset_fields, a);
}
