/*
 * Peer nodes (store/peers.h, SPEC section 7): the rules under `portcullis
 * peer` and /api/v1/peers. The proxy's API token is write-only: sealed
 * here with the vault (bound to the peer's ID), never shown, never logged.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "admin/admin.h"
#include "common/err.h"
#include "common/util.h"
#include "common/vault.h"
#include "store/peers.h"

#define ADMIN_PEER_TOKEN_MAX 4000

static json_t *admin_peer_token_set(const void *obj)
{
    return json_boolean(((const struct store_peer *)obj)->token_sealed_len > 0);
}

/* The table's column: the fingerprint is too long for it. */
static json_t *admin_peer_tls(const void *obj)
{
    return json_string(
        ((const struct store_peer *)obj)->plain_http ? "plain http" : "pinned");
}

const struct admin_field admin_peer_fields[] = {
    ADMIN_FIELD(struct store_peer, "id", AF_STR, id, .flags = AF_READONLY),
    ADMIN_FIELD(struct store_peer, "name", AF_STR, name,
                .flags = AF_REQUIRED | AF_FIXED, .col = "NAME"),
    ADMIN_FIELD(struct store_peer, "host", AF_STR, host, .flags = AF_REQUIRED,
                .cli = "--host", .col = "HOST"),
    ADMIN_FIELD(struct store_peer, "port", AF_INT, port, .lo = 1, .hi = 65535,
                .cli = "--port", .col = "PORT"),
    ADMIN_FIELD(struct store_peer, "tls_fingerprint", AF_STRZ, tls_fingerprint,
                .cli = "--tls-fingerprint"),
    ADMIN_FIELD_FN("tls", admin_peer_tls, .flags = AF_NOJSON, .col = "TLS"),
    ADMIN_FIELD(struct store_peer, "plain_http", AF_BOOL, plain_http,
                .cli = "--plain-http"),
    ADMIN_FIELD(struct store_peer, "via", AF_STRZ, via, .cli = "--via",
                .col = "VIA"),
    ADMIN_FIELD_FN("token_set", admin_peer_token_set),
    ADMIN_FIELD(struct store_peer, "created_at", AF_TIME, created_at,
                .flags = AF_READONLY, .col = "CREATED"),
    ADMIN_FIELD_END,
};

/* A peer's name, as routes spell it: 1-64 of A-Z a-z 0-9 . _ - */
static bool admin_peer_name_ok(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' &&
            s[i] != '-') {
            return false;
        }
    }
    return i >= 1 && i <= PEER_NAME_MAX;
}

/* "SHA256:" and 32 hex pairs, with or without the colons, any case, into
 * init's spelling (upper case, colons). */
static bool admin_peer_fp_canon(const char *in, char *out, size_t outlen)
{
    unsigned char bin[32];
    size_t n = 0, o;
    const char *p;

    if (strncasecmp(in, "SHA256:", 7) != 0) {
        return false;
    }
    for (p = in + 7; *p != '\0';) {
        if (*p == ':') {
            p++;
            continue;
        }
        if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) ||
            n >= sizeof(bin)) {
            return false;
        }
        char hx[3] = {p[0], p[1], '\0'};
        bin[n++] = (unsigned char)strtoul(hx, NULL, 16);
        p += 2;
    }
    if (n != sizeof(bin) || outlen < 8 + 3 * sizeof(bin)) {
        return false;
    }
    memcpy(out, "SHA256:", 7);
    o = 7;
    for (n = 0; n < sizeof(bin); n++) {
        o += (size_t)snprintf(out + o, outlen - o, n == 0 ? "%02X" : ":%02X",
                              bin[n]);
    }
    return true;
}

/* Three base64url parts: what a Portcullis API token looks like. */
static bool admin_peer_token_ok(const char *t)
{
    size_t i, dots = 0;

    for (i = 0; t[i] != '\0'; i++) {
        if (t[i] == '.') {
            dots++;
        } else if (!isalnum((unsigned char)t[i]) && t[i] != '-' &&
                   t[i] != '_') {
            return false;
        }
    }
    return dots == 2 && i >= 5 && i <= ADMIN_PEER_TOKEN_MAX;
}

/* The rules every add and update checks; p is the peer as it will be. */
static int admin_peer_check(const struct admin_ctx *c, struct store_peer *p,
                            struct admin_err *e)
{
    struct store_peer *v;
    char fp[PEER_FP_MAX + 1], seen[9][PEER_NAME_MAX + 1];
    size_t n = 0, i;
    int r = ERR_OK;

    if (!admin_peer_name_ok(p->name)) {
        return admin_fail(e, ERR_INVALID,
                          "a peer's name is 1-%d of A-Z a-z 0-9 . _ -",
                          PEER_NAME_MAX);
    }
    if (!admin_host_valid(p->host)) {
        return admin_fail(e, ERR_INVALID, "%s", admin_msg_host);
    }
    if (p->port == 0) {
        p->port = ADMIN_PEER_DEFAULT_PORT;
    }
    if (p->plain_http) {
        if (p->tls_fingerprint[0] != '\0') {
            return admin_fail(e, ERR_INVALID,
                              "a plain-HTTP peer has no TLS fingerprint "
                              "(drop --tls-fingerprint or --plain-http)");
        }
    } else if (p->tls_fingerprint[0] == '\0') {
        return admin_fail(e, ERR_INVALID,
                          "the peer's TLS fingerprint is needed (its init "
                          "printed tls_fingerprint=SHA256:...), or "
                          "--plain-http for a peer without TLS");
    } else if (!admin_peer_fp_canon(p->tls_fingerprint, fp, sizeof(fp))) {
        return admin_fail(e, ERR_INVALID,
                          "the TLS fingerprint must be SHA256: and 32 hex "
                          "pairs, as init prints tls_fingerprint");
    } else {
        snprintf(p->tls_fingerprint, sizeof(p->tls_fingerprint), "%s", fp);
    }
    if (p->via[0] == '\0') {
        return ERR_OK;
    }
    if (strncmp(p->via, "peer:", 5) != 0 || !admin_peer_name_ok(p->via + 5)) {
        return admin_fail(e, ERR_INVALID,
                          "via must be peer:NAME (the peer in front of this "
                          "one)");
    }
    /* the chain from here must end, and not come back to this peer */
    if ((v = calloc(1, sizeof(*v))) == NULL) {
        return admin_fail(e, ERR_NOMEM, "out of memory");
    }
    snprintf(seen[n++], sizeof(seen[0]), "%s", p->name);
    snprintf(v->via, sizeof(v->via), "%s", p->via);
    while (v->via[0] != '\0') {
        char next[PEER_NAME_MAX + 1];

        snprintf(next, sizeof(next), "%s", v->via + 5);
        for (i = 0; i < n; i++) {
            if (strcmp(seen[i], next) == 0) {
                r = admin_fail(e, ERR_INVALID,
                               "via %s would make a loop back to peer %s",
                               p->via, next);
                goto out;
            }
        }
        if (n >= sizeof(seen) / sizeof(seen[0])) {
            r = admin_fail(e, ERR_INVALID, "a chain of more than 8 peers");
            goto out;
        }
        if (store_peer_get(c->st, next, v) != ERR_OK) {
            r = admin_fail(e, ERR_NOT_FOUND, "peer '%s' not found", next);
            goto out;
        }
        snprintf(seen[n++], sizeof(seen[0]), "%s", v->name);
    }
out:
    sodium_memzero(v, sizeof(*v));
    free(v);
    return r;
}

static int admin_peer_seal(const struct admin_ctx *c, struct store_peer *p,
                           const char *token, struct admin_err *e)
{
    char ad[VAULT_AD_MAX];
    uint8_t *sealed = NULL;
    size_t len = 0;
    int r;

    if (token == NULL || !admin_peer_token_ok(token)) {
        return admin_fail(e, ERR_INVALID,
                          "the token must be the peer's API token (a JWT made "
                          "on the peer by 'token add' for a service user)");
    }
    if (c->vault == NULL) {
        return admin_fail(e, ERR_INTERNAL, "the vault is not open");
    }
    vault_ad(ad, VAULT_AD_PEER_TOKEN, p->id);
    r = vault_seal(c->vault, ad, (const uint8_t *)token, strlen(token), &sealed,
                   &len);
    if (r != ERR_OK || len > sizeof(p->token_sealed)) {
        free(sealed);
        return admin_fail(e, r != ERR_OK ? r : ERR_TOO_LONG,
                          "cannot seal the token");
    }
    memcpy(p->token_sealed, sealed, len);
    p->token_sealed_len = len;
    free(sealed);
    return ERR_OK;
}

static int admin_peer_store_fail(struct admin_err *e, int r, const char *name)
{
    switch (r) {
    case ERR_NOT_FOUND:
        return admin_fail(e, r, "peer '%.64s' not found", name);
    case ERR_EXISTS:
        return admin_fail(e, r, "peer '%.64s' already exists", name);
    default:
        return admin_fail(e, r, "peer '%.64s': %s", name, err_str(r));
    }
}

static void admin_peer_detail(const struct store_peer *p, char *out,
                              size_t outlen)
{
    snprintf(out, outlen, "host=%s port=%d%s%s%s", p->host, p->port,
             p->plain_http ? " plain_http" : "",
             p->via[0] != '\0' ? " via=" : "", p->via);
}

int admin_peer_add(const struct admin_ctx *c, const json_t *body,
                   const char *token, struct store_peer *out,
                   struct admin_err *e)
{
    char detail[STORE_HOST_MAX + STORE_ROUTE_MAX + 64];
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = admin_json_apply(admin_peer_fields, body, out, e)) != ERR_OK ||
        (r = admin_peer_check(c, out, e)) != ERR_OK) {
        return r;
    }
    util_uuid4(out->id);
    out->created_at = util_now();
    if ((r = admin_peer_seal(c, out, token, e)) != ERR_OK) {
        return r;
    }
    if ((r = store_peer_add(c->st, out)) != ERR_OK) {
        sodium_memzero(out->token_sealed, sizeof(out->token_sealed));
        return admin_peer_store_fail(e, r, out->name);
    }
    admin_peer_detail(out, detail, sizeof(detail));
    return admin_audit(c, "peer.add", out->name, detail, e);
}

int admin_peer_update(const struct admin_ctx *c, const char *name_or_id,
                      const json_t *body, const char *token,
                      struct store_peer *out, struct admin_err *e)
{
    char detail[STORE_HOST_MAX + STORE_ROUTE_MAX + 80];
    int r;

    if ((r = store_peer_get(c->st, name_or_id, out)) != ERR_OK) {
        return admin_peer_store_fail(e, r, name_or_id);
    }
    /* --plain-http given alone drops the pin; a pin given alone ends it */
    if (json_is_true(json_object_get(body, "plain_http")) &&
        json_object_get(body, "tls_fingerprint") == NULL) {
        out->tls_fingerprint[0] = '\0';
    }
    if (json_is_string(json_object_get(body, "tls_fingerprint")) &&
        json_object_get(body, "plain_http") == NULL) {
        out->plain_http = false;
    }
    if ((r = admin_json_apply(admin_peer_fields, body, out, e)) != ERR_OK ||
        (r = admin_peer_check(c, out, e)) != ERR_OK ||
        (token != NULL && (r = admin_peer_seal(c, out, token, e)) != ERR_OK)) {
        sodium_memzero(out->token_sealed, sizeof(out->token_sealed));
        return r;
    }
    if ((r = store_peer_update(c->st, out)) != ERR_OK) {
        sodium_memzero(out->token_sealed, sizeof(out->token_sealed));
        return admin_peer_store_fail(e, r, out->name);
    }
    admin_peer_detail(out, detail, sizeof(detail));
    if (token != NULL) {
        snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
                 " token replaced");
    }
    return admin_audit(c, "peer.update", out->name, detail, e);
}

int admin_peer_delete(const struct admin_ctx *c, const char *name_or_id,
                      struct admin_err *e)
{
    struct store_peer p;
    int users = 0, r;

    if ((r = store_peer_get(c->st, name_or_id, &p)) != ERR_OK) {
        return admin_peer_store_fail(e, r, name_or_id);
    }
    sodium_memzero(p.token_sealed, sizeof(p.token_sealed));
    r = store_peer_delete(c->st, p.id, &users);
    if (r == ERR_DENIED) {
        return admin_fail(e, r,
                          "peer '%s' is still the route of %d asset(s), "
                          "peer(s) or tunnel(s); change those first",
                          p.name, users);
    }
    if (r != ERR_OK) {
        return admin_peer_store_fail(e, r, name_or_id);
    }
    return admin_audit(c, "peer.delete", p.name, NULL, e);
}
