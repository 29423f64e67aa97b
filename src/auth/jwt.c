/*
 * Issuing and verifying the API's JWTs (see jwt.h), and the small
 * parsers the token commands share: durations and path-prefix lists
 * (CIDR lists are common/cidr.c's).
 *
 * libjwt encodes and decodes; the checks that decide whether a token is
 * accepted are ours: the header's exact shape (no "none", no other
 * algorithm, no key confusion), a constant-time HMAC comparison, the
 * issuer, the expiry, and the claims' types.
 */
#include "auth/jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <jwt.h>
#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "store/access.h"

#define JWT_ISSUER "portcullis"
#define JWT_CLOCK_SKEW 60 /* seconds an iat may lie in the future */

struct jwt_key {
    uint8_t k[JWT_KEY_LEN];
};

/* --- the key --- */

static int jwt_key_read(const char *path, struct jwt_key *k)
{
    return util_read_key_file(path, "jwt secret", false, k->k, JWT_KEY_LEN);
}

int jwt_key_load(const char *path, bool create, struct jwt_key **out)
{
    uint8_t fresh[JWT_KEY_LEN];
    struct jwt_key *k;
    int r;

    *out = NULL;
    if (path == NULL) {
        return ERR_CONFIG;
    }
    if ((k = sodium_malloc(sizeof(*k))) == NULL) {
        return ERR_NOMEM;
    }
    r = jwt_key_read(path, k);
    if (r == ERR_NOT_FOUND && create) {
        randombytes_buf(fresh, sizeof(fresh));
        r = util_write_file_excl(path, fresh, sizeof(fresh), 0600);
        sodium_memzero(fresh, sizeof(fresh));
        /* Another process may have made it first: use theirs. */
        r = jwt_key_read(path, k);
    }
    if (r != ERR_OK) {
        sodium_free(k);
        return r;
    }
    sodium_mprotect_readonly(k);
    *out = k;
    return ERR_OK;
}

void jwt_key_free(struct jwt_key *k)
{
    if (k != NULL) {
        sodium_free(k); /* wipes */
    }
}

/* --- node credentials --- */

#define JWT_NODE_PREFIX "pcnode1."

/* The MAC of "pcnode1.<node>.<time>" under a key derived from k, so the
 * JWT secret itself never signs anything but JWTs. */
static void jwt_node_mac(const struct jwt_key *k, const char *msg,
                         size_t msglen, char *hex)
{
    uint8_t sub[crypto_auth_hmacsha256_KEYBYTES];
    uint8_t mac[crypto_auth_hmacsha256_BYTES];

    crypto_generichash(sub, sizeof(sub),
                       (const uint8_t *)"portcullis node link v1", 23, k->k,
                       sizeof(k->k));
    crypto_auth_hmacsha256(mac, (const uint8_t *)msg, msglen, sub);
    sodium_bin2hex(hex, 2 * sizeof(mac) + 1, mac, sizeof(mac));
    sodium_memzero(sub, sizeof(sub));
}

static bool jwt_node_id_ok(const char *s, size_t len)
{
    if (len != JWT_NODE_ID_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

int jwt_node_token(const struct jwt_key *k, const char *node_id, int64_t now,
                   char *out, size_t outlen)
{
    char hex[2 * crypto_auth_hmacsha256_BYTES + 1];
    int n;

    if (node_id == NULL || !jwt_node_id_ok(node_id, strlen(node_id))) {
        return ERR_INVALID;
    }
    n = snprintf(out, outlen, JWT_NODE_PREFIX "%s.%lld", node_id,
                 (long long)now);
    if (n < 0 || (size_t)n + 1 + sizeof(hex) > outlen) {
        return ERR_TOO_LONG;
    }
    jwt_node_mac(k, out, (size_t)n, hex);
    snprintf(out + n, outlen - (size_t)n, ".%s", hex);
    return ERR_OK;
}

bool jwt_is_node_token(const char *tok)
{
    return tok != NULL &&
           strncmp(tok, JWT_NODE_PREFIX, strlen(JWT_NODE_PREFIX)) == 0;
}

int jwt_node_token_check(const struct jwt_key *k, const char *tok, int64_t now,
                         char *node_id)
{
    char hex[2 * crypto_auth_hmacsha256_BYTES + 1];
    const char *id, *t, *mac;
    size_t len;
    long long when = 0;

    node_id[0] = '\0';
    if (!jwt_is_node_token(tok) || (len = strlen(tok)) > JWT_NODE_TOKEN_MAX) {
        return ERR_INVALID;
    }
    id = tok + strlen(JWT_NODE_PREFIX);
    t = strchr(id, '.');
    mac = t != NULL ? strchr(t + 1, '.') : NULL;
    if (t == NULL || mac == NULL || !jwt_node_id_ok(id, (size_t)(t - id)) ||
        mac == t + 1 || mac - t - 1 > 12 ||
        strlen(mac + 1) != sizeof(hex) - 1) {
        return ERR_INVALID;
    }
    for (const char *q = t + 1; q < mac; q++) {
        if (*q < '0' || *q > '9') {
            return ERR_INVALID;
        }
        when = when * 10 + (*q - '0');
    }
    jwt_node_mac(k, tok, (size_t)(mac - tok), hex);
    if (sodium_memcmp(hex, mac + 1, sizeof(hex) - 1) != 0) {
        return ERR_AUTH;
    }
    if (when < now - JWT_NODE_TOKEN_SKEW || when > now + JWT_NODE_TOKEN_SKEW) {
        return ERR_TIMEOUT;
    }
    memcpy(node_id, id, JWT_NODE_ID_LEN);
    node_id[JWT_NODE_ID_LEN] = '\0';
    return ERR_OK;
}

/* --- issuing --- */

static const char *jwt_kind_str(int kind)
{
    return kind == JWT_API ? "api" : "session";
}

int jwt_issue(const struct jwt_key *k, struct jwt_claims *c, char **token)
{
    uint8_t raw[32];
    jwt_t *jwt = NULL;
    char *s = NULL;
    int r = ERR_CRYPTO;

    *token = NULL;
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(c->jti, sizeof(c->jti), raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (jwt_new(&jwt) != 0) {
        r = ERR_NOMEM;
        goto out;
    }
    if (jwt_add_grant(jwt, "iss", JWT_ISSUER) != 0 ||
        jwt_add_grant(jwt, "sub", c->sub) != 0 ||
        jwt_add_grant(jwt, "jti", c->jti) != 0 ||
        jwt_add_grant(jwt, "kind", jwt_kind_str(c->kind)) != 0 ||
        (c->kind == JWT_API && jwt_add_grant(jwt, "tid", c->tid) != 0) ||
        jwt_add_grant_int(jwt, "iat", (long)c->iat) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)c->exp) != 0 ||
        jwt_set_alg(jwt, JWT_ALG_HS256, k->k, JWT_KEY_LEN) != 0) {
        goto out;
    }
    if ((s = jwt_encode_str(jwt)) == NULL) {
        goto out;
    }
    *token = s;
    r = ERR_OK;
out:
    sodium_memzero(raw, sizeof(raw));
    jwt_free(jwt);
    return r;
}

void jwt_token_free(char *token)
{
    if (token != NULL) {
        sodium_memzero(token, strlen(token));
        free(token);
    }
}

/* --- verifying --- */

static bool jwt_b64url(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];

        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '-' || ch == '_')) {
            return false;
        }
    }
    return len > 0;
}

/* The header must be exactly {"alg": "HS256", "typ": "JWT"}. */
static int jwt_check_header(const char *h, size_t hlen)
{
    char dec[256];
    size_t declen = 0;
    json_error_t jerr;
    json_t *hdr = NULL, *alg, *typ;
    int r = ERR_AUTH;

    if (sodium_base642bin((unsigned char *)dec, sizeof(dec) - 1, h, hlen, NULL,
                          &declen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
        return ERR_INVALID;
    }
    /* strictly: one object, no duplicate keys, no NUL in strings,
     * nothing but the two keys */
    hdr = json_loadb(dec, declen, JSON_REJECT_DUPLICATES, &jerr);
    if (hdr == NULL) {
        return ERR_AUTH;
    }
    alg = json_object_get(hdr, "alg");
    typ = json_object_get(hdr, "typ");
    if (json_is_object(hdr) && json_object_size(hdr) == 2 &&
        json_is_string(alg) && json_is_string(typ) &&
        strcmp(json_string_value(alg), "HS256") == 0 &&
        strcmp(json_string_value(typ), "JWT") == 0) {
        r = ERR_OK;
    }
    json_decref(hdr);
    return r;
}

static int jwt_check_sig(const struct jwt_key *k, const char *token,
                         size_t signed_len, const char *sig, size_t siglen)
{
    uint8_t want[crypto_auth_hmacsha256_BYTES], got[64];
    crypto_auth_hmacsha256_state st;
    size_t gotlen = 0;
    int r = ERR_AUTH;

    if (sodium_base642bin(got, sizeof(got), sig, siglen, NULL, &gotlen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        gotlen != sizeof(want)) {
        return ERR_AUTH;
    }
    crypto_auth_hmacsha256_init(&st, k->k, JWT_KEY_LEN);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)token,
                                  signed_len);
    crypto_auth_hmacsha256_final(&st, want);
    if (sodium_memcmp(want, got, sizeof(want)) == 0) {
        r = ERR_OK;
    }
    sodium_memzero(&st, sizeof(st));
    sodium_memzero(want, sizeof(want));
    return r;
}

static int jwt_copy_claim(jwt_t *jwt, const char *name, char *dst,
                          size_t dstlen)
{
    const char *v = jwt_get_grant(jwt, name);

    if (v == NULL || v[0] == '\0' || strlen(v) >= dstlen) {
        return ERR_AUTH;
    }
    memcpy(dst, v, strlen(v) + 1);
    return ERR_OK;
}

int jwt_verify(const struct jwt_key *k, const char *token, int64_t now,
               struct jwt_claims *out)
{
    const char *dot1, *dot2, *iss, *kind;
    jwt_t *jwt = NULL;
    size_t len;
    int r;

    memset(out, 0, sizeof(*out));
    if (token == NULL || (len = strlen(token)) == 0 || len > JWT_MAX) {
        return ERR_INVALID;
    }
    dot1 = strchr(token, '.');
    dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL ||
        !jwt_b64url(token, (size_t)(dot1 - token)) ||
        !jwt_b64url(dot1 + 1, (size_t)(dot2 - dot1 - 1))) {
        return ERR_INVALID;
    }
    /* "alg": "none" tokens have an empty signature: refused here too. */
    if ((r = jwt_check_header(token, (size_t)(dot1 - token))) != ERR_OK) {
        return r;
    }
    if (!jwt_b64url(dot2 + 1, strlen(dot2 + 1)) ||
        jwt_check_sig(k, token, (size_t)(dot2 - token), dot2 + 1,
                      strlen(dot2 + 1)) != ERR_OK) {
        return ERR_AUTH;
    }
    if (jwt_decode(&jwt, token, k->k, JWT_KEY_LEN) != 0 || jwt == NULL ||
        jwt_get_alg(jwt) != JWT_ALG_HS256) {
        r = ERR_AUTH;
        goto out;
    }
    iss = jwt_get_grant(jwt, "iss");
    kind = jwt_get_grant(jwt, "kind");
    if (iss == NULL || strcmp(iss, JWT_ISSUER) != 0 || kind == NULL) {
        r = ERR_AUTH;
        goto out;
    }
    if (strcmp(kind, "session") == 0) {
        out->kind = JWT_SESSION;
    } else if (strcmp(kind, "api") == 0) {
        out->kind = JWT_API;
    } else {
        r = ERR_AUTH;
        goto out;
    }
    if ((r = jwt_copy_claim(jwt, "sub", out->sub, sizeof(out->sub))) !=
            ERR_OK ||
        (r = jwt_copy_claim(jwt, "jti", out->jti, sizeof(out->jti))) !=
            ERR_OK ||
        (out->kind == JWT_API &&
         (r = jwt_copy_claim(jwt, "tid", out->tid, sizeof(out->tid))) !=
             ERR_OK)) {
        goto out;
    }
    out->iat = jwt_get_grant_int(jwt, "iat");
    out->exp = jwt_get_grant_int(jwt, "exp");
    if (out->exp <= 0 || out->iat <= 0 || out->iat > now + JWT_CLOCK_SKEW) {
        r = ERR_AUTH;
        goto out;
    }
    if (out->exp <= now) {
        r = ERR_TIMEOUT;
        goto out;
    }
    r = ERR_OK;
out:
    jwt_free(jwt);
    if (r != ERR_OK) {
        sodium_memzero(out, sizeof(*out));
    }
    return r;
}

void jwt_hash(const char *jti, char *out)
{
    uint8_t h[32];

    crypto_generichash(h, sizeof(h), (const unsigned char *)jti, strlen(jti),
                       NULL, 0);
    sodium_bin2hex(out, JWT_HASH_LEN + 1, h, sizeof(h));
}

/* --- durations, CIDRs, path prefixes --- */

int http_parse_duration(const char *s, int64_t *secs)
{
    char *end = NULL;
    long long v;
    int64_t mult = 1;

    *secs = 0;
    if (s == NULL || s[0] < '0' || s[0] > '9') {
        return ERR_INVALID;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s) {
        return ERR_INVALID;
    }
    if (*end != '\0') {
        switch (*end) {
        case 's':
            mult = 1;
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        default:
            return ERR_INVALID;
        }
        if (end[1] != '\0') {
            return ERR_INVALID;
        }
    }
    if (v <= 0 || v > 3650LL * 86400 / mult) {
        return ERR_INVALID;
    }
    *secs = (int64_t)v * mult;
    return ERR_OK;
}

bool http_path_list_valid(const char *s)
{
    size_t len;

    if (s == NULL || *s == '\0') {
        return false;
    }
    for (;;) {
        len = strcspn(s, ",");
        if (len == 0 || s[0] != '/') {
            return false;
        }
        for (size_t i = 0; i < len; i++) {
            if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f) {
                return false;
            }
        }
        if (s[len] == '\0') {
            return true;
        }
        s += len + 1;
    }
}

bool http_path_list_match(const char *list, const char *path)
{
    size_t len;

    while (list != NULL && *list != '\0') {
        len = strcspn(list, ",");
        if (len > 0 && strncmp(path, list, len) == 0 &&
            (path[len] == '\0' || path[len] == '/' || list[len - 1] == '/')) {
            return true;
        }
        if (list[len] == '\0') {
            break;
        }
        list += len + 1;
    }
    return false;
}

bool http_path_list_within(const char *inner, const char *outer)
{
    char one[ACCESS_FILTER_MAX + 1];
    size_t len;

    if (outer == NULL || outer[0] == '\0') {
        return true;
    }
    if (inner == NULL || !http_path_list_valid(inner)) {
        return false;
    }
    for (;;) {
        len = strcspn(inner, ",");
        if (len >= sizeof(one)) {
            return false;
        }
        /* A prefix p allows the paths that start with p at a boundary;
         * when p itself is allowed by outer's prefix q (p starts with q
         * at a boundary, or q ends in '/'), so is every path p allows. */
        memcpy(one, inner, len);
        one[len] = '\0';
        if (!http_path_list_match(outer, one)) {
            return false;
        }
        if (inner[len] == '\0') {
            return true;
        }
        inner += len + 1;
    }
}
