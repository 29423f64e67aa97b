/*
 * libFuzzer target for the API's JWTs and the token filters
 * (src/auth/jwt.c). The first input byte picks one of six modes:
 *
 *   0  the rest is a bearer token: it never verifies (the key is random
 *      and unknown to the input), and a refusal leaves the claims zeroed.
 *   1  a real token is issued and the rest edits it ((position, xor)
 *      pairs): whatever still verifies carries exactly the issued claims,
 *      so no edit is a forgery.
 *   2  the rest is a claims payload, signed with the real key under the
 *      one accepted header: libjwt's decoding and our checks of the claims
 *      run on any JSON; what verifies has a known kind, a subject, an API
 *      token ID when it is one, an expiry in the future and no issue time
 *      in the future.
 *   3  the rest is two filter lists (split at the first newline) and the
 *      token rule's containment is checked against matching: a list is
 *      within itself, and when A is within B every path and address A
 *      allows (probed with A's own prefixes and addresses) B allows too.
 *      Durations are parsed from the first list, and stay within bounds.
 *   4  the rest is a node credential (pcnode1...): it never checks out
 *      (the key is unknown to the input) and a refusal names no node.
 *   5  a real node credential is made and the rest edits it ((position,
 *      xor) pairs): whatever still checks out is the credential as made.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/cidr.h"
#include "common/err.h"
#include "auth/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_jwt: invariant failed: %s (line %d)\n",      \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define FUZZ_NOW 1800000000
#define FUZZ_KEY_LEN 32

static struct jwt_key *fuzz_key;
static uint8_t fuzz_raw_key[FUZZ_KEY_LEN];

static void fuzz_init(void)
{
    char path[] = "/tmp/fuzz-jwt-XXXXXX";
    int fd;

    if (fuzz_key != NULL) {
        return;
    }
    if (sodium_init() < 0 || (fd = mkstemp(path)) < 0) {
        abort();
    }
    randombytes_buf(fuzz_raw_key, sizeof(fuzz_raw_key));
    if (fchmod(fd, 0600) != 0 ||
        write(fd, fuzz_raw_key, sizeof(fuzz_raw_key)) !=
            (ssize_t)sizeof(fuzz_raw_key)) {
        abort();
    }
    close(fd);
    if (jwt_key_load(path, false, &fuzz_key) != ERR_OK) {
        abort();
    }
    unlink(path);
}

static int fuzz_zero(const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return 0;
        }
    }
    return 1;
}

/* A NUL-terminated heap copy of n bytes (NULs inside end the string). */
static char *fuzz_str(const uint8_t *d, size_t n)
{
    char *s = malloc(n + 1);

    if (s != NULL) {
        memcpy(s, d, n);
        s[n] = '\0';
    }
    return s;
}

static void fuzz_garbage(const uint8_t *d, size_t n)
{
    struct jwt_claims c;
    char *tok = fuzz_str(d, n);

    if (tok == NULL) {
        return;
    }
    FUZZ_CHECK(jwt_verify(fuzz_key, tok, FUZZ_NOW, &c) != ERR_OK);
    FUZZ_CHECK(fuzz_zero(&c, sizeof(c)));
    free(tok);
}

static void fuzz_edit(const uint8_t *d, size_t n)
{
    struct jwt_claims c, got;
    char *tok = NULL;
    size_t len, i;
    int r;

    memset(&c, 0, sizeof(c));
    c.kind = (n > 0 && (d[0] & 1)) ? JWT_API : JWT_SESSION;
    snprintf(c.sub, sizeof(c.sub), "0b6c1a52-5c43-4f5e-9d0e-2b9a1f3c4d5e");
    if (c.kind == JWT_API) {
        snprintf(c.tid, sizeof(c.tid), "7d1f0c3e-8a2b-4c5d-9e6f-0a1b2c3d4e5f");
    }
    c.iat = FUZZ_NOW - 10;
    c.exp = FUZZ_NOW + 3600;
    if (jwt_issue(fuzz_key, &c, &tok) != ERR_OK) {
        abort();
    }
    len = strlen(tok);
    for (i = 1; i + 1 < n; i += 2) {
        tok[d[i] % len] ^= (char)d[i + 1];
    }
    /* a NUL put in by an edit shortens the token: that is an edit too */
    r = jwt_verify(fuzz_key, tok, FUZZ_NOW, &got);
    if (r == ERR_OK) {
        FUZZ_CHECK(got.kind == c.kind);
        FUZZ_CHECK(strcmp(got.sub, c.sub) == 0);
        FUZZ_CHECK(strcmp(got.tid, c.tid) == 0);
        FUZZ_CHECK(strcmp(got.jti, c.jti) == 0);
        FUZZ_CHECK(got.iat == c.iat && got.exp == c.exp);
    } else {
        FUZZ_CHECK(fuzz_zero(&got, sizeof(got)));
    }
    jwt_token_free(tok);
}

static void fuzz_signed(const uint8_t *d, size_t n)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    struct jwt_claims c;
    size_t hl = sodium_base64_ENCODED_LEN(
        sizeof(hdr) - 1, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t pl =
        sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t ml = sodium_base64_ENCODED_LEN(
        sizeof(mac), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *tok = malloc(hl + pl + ml + 2);
    size_t used;
    int r;

    if (tok == NULL) {
        return;
    }
    sodium_bin2base64(tok, hl, (const unsigned char *)hdr, sizeof(hdr) - 1,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    used = strlen(tok);
    tok[used++] = '.';
    sodium_bin2base64(tok + used, pl, d, n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    used += strlen(tok + used);
    crypto_auth_hmacsha256(mac, (const unsigned char *)tok, used, fuzz_raw_key);
    tok[used++] = '.';
    sodium_bin2base64(tok + used, ml, mac, sizeof(mac),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    r = jwt_verify(fuzz_key, tok, FUZZ_NOW, &c);
    if (r == ERR_OK) {
        FUZZ_CHECK(c.kind == JWT_SESSION || c.kind == JWT_API);
        FUZZ_CHECK(c.sub[0] != '\0' && memchr(c.sub, 0, sizeof(c.sub)));
        FUZZ_CHECK(c.jti[0] != '\0' && memchr(c.jti, 0, sizeof(c.jti)));
        FUZZ_CHECK(memchr(c.tid, 0, sizeof(c.tid)) != NULL);
        FUZZ_CHECK(c.kind != JWT_API || c.tid[0] != '\0');
        FUZZ_CHECK(c.exp > FUZZ_NOW && c.iat > 0 && c.iat <= FUZZ_NOW + 60);
    } else {
        FUZZ_CHECK(r == ERR_INVALID || r == ERR_AUTH || r == ERR_TIMEOUT);
        FUZZ_CHECK(fuzz_zero(&c, sizeof(c)));
    }
    sodium_memzero(mac, sizeof(mac));
    free(tok);
}

/* What a token's filter allows: an empty list allows everything (the
 * callers' rule), otherwise what matches. */
static int fuzz_path_allows(const char *list, const char *path)
{
    return list[0] == '\0' || http_path_list_match(list, path);
}

static int fuzz_cidr_allows(const char *list, const char *ip)
{
    return list[0] == '\0' || cidr_list_match(list, ip);
}

/* Probes: every entry of list a (as a path prefix, a path under it, and
 * as an address: the text before any '/'). */
static void fuzz_probe_within(const char *a, const char *b)
{
    char one[1100], probe[1200];
    const char *p = a;
    size_t len;
    char *slash;

    while (*p != '\0') {
        len = strcspn(p, ",");
        if (len > 0 && len < sizeof(one)) {
            memcpy(one, p, len);
            one[len] = '\0';
            if (http_path_list_within(a, b) && fuzz_path_allows(a, one)) {
                FUZZ_CHECK(fuzz_path_allows(b, one));
                snprintf(probe, sizeof(probe), "%s/x", one);
                FUZZ_CHECK(!fuzz_path_allows(a, probe) ||
                           fuzz_path_allows(b, probe));
            }
            if ((slash = strchr(one, '/')) != NULL) {
                *slash = '\0';
            }
            if (cidr_list_within(a, b) && fuzz_cidr_allows(a, one)) {
                FUZZ_CHECK(fuzz_cidr_allows(b, one));
            }
        }
        p += len;
        if (*p == ',') {
            p++;
        }
    }
}

static void fuzz_filters(const uint8_t *d, size_t n)
{
    const uint8_t *nl = memchr(d, '\n', n);
    size_t na = nl != NULL ? (size_t)(nl - d) : n;
    char *a = fuzz_str(d, na);
    char *b =
        fuzz_str(nl != NULL ? nl + 1 : d + n, nl != NULL ? n - na - 1 : 0);
    int64_t secs = 0;

    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return;
    }
    if (http_path_list_valid(a)) {
        FUZZ_CHECK(http_path_list_within(a, a));
        FUZZ_CHECK(!http_path_list_within("", a));
        FUZZ_CHECK(http_path_list_within(a, ""));
    }
    if (cidr_list_valid(a)) {
        FUZZ_CHECK(cidr_list_within(a, a));
        FUZZ_CHECK(!cidr_list_within("", a));
    }
    fuzz_probe_within(a, b);
    fuzz_probe_within(b, a);
    if (http_parse_duration(a, &secs) == ERR_OK) {
        FUZZ_CHECK(secs >= 1 && secs <= 3650LL * 86400);
    } else {
        FUZZ_CHECK(secs == 0);
    }
    free(a);
    free(b);
}

static void fuzz_node_garbage(const uint8_t *data, size_t size)
{
    char tok[JWT_NODE_TOKEN_MAX + 64], node[JWT_NODE_ID_LEN + 1];
    size_t n = size < sizeof(tok) - 1 ? size : sizeof(tok) - 1;

    memcpy(tok, data, n);
    tok[n] = '\0';
    FUZZ_CHECK(jwt_node_token_check(fuzz_key, tok, FUZZ_NOW, node) != ERR_OK);
    FUZZ_CHECK(node[0] == '\0');
}

static void fuzz_node_edit(const uint8_t *data, size_t size)
{
    const char *id = "0123456789abcdef0123456789abcdef";
    char tok[JWT_NODE_TOKEN_MAX + 1], orig[JWT_NODE_TOKEN_MAX + 1];
    char node[JWT_NODE_ID_LEN + 1];
    size_t len;

    FUZZ_CHECK(jwt_node_token(fuzz_key, id, FUZZ_NOW, tok, sizeof(tok)) ==
               ERR_OK);
    memcpy(orig, tok, sizeof(tok));
    len = strlen(tok);
    for (size_t i = 0; i + 1 < size; i += 2) {
        tok[data[i] % len] ^= data[i + 1];
    }
    tok[len] = '\0';
    if (jwt_node_token_check(fuzz_key, tok, FUZZ_NOW, node) == ERR_OK) {
        FUZZ_CHECK(strcmp(tok, orig) == 0);
        FUZZ_CHECK(strcmp(node, id) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 8192) {
        return 0;
    }
    fuzz_init();
    switch (data[0] % 6) {
    case 0:
        fuzz_garbage(data + 1, size - 1);
        break;
    case 1:
        fuzz_edit(data + 1, size - 1);
        break;
    case 2:
        fuzz_signed(data + 1, size - 1);
        break;
    case 3:
        fuzz_filters(data + 1, size - 1);
        break;
    case 4:
        fuzz_node_garbage(data + 1, size - 1);
        break;
    default:
        fuzz_node_edit(data + 1, size - 1);
        break;
    }
    return 0;
}
