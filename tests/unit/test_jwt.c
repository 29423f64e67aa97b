/*
 * Unit tests for src/auth/jwt.c and http_body.c: the API's tokens
 * (issue and verify round trip; refusal of a changed signature or
 * payload, alg "none", other algorithms, another key, expired tokens and
 * malformed strings), the key file (made 0600 once, refused when others
 * may read it), durations, CIDR and path filters, and the strict body
 * parser (unknown keys, types, bounds, duplicates).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "common/err.h"
#include "common/util.h"
#include "http/http_body.h"
#include "auth/jwt.h"

struct fixture {
    char dir[64];
    char path[128];
    struct jwt_key *key;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL || sodium_init() < 0) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/portcullis-jwt-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/api_jwt.key", f->dir);
    if (jwt_key_load(f->path, true, &f->key) != ERR_OK) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    jwt_key_free(f->key);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static char *issue(struct fixture *f, int kind, int64_t iat, int64_t exp,
                   struct jwt_claims *c)
{
    char *t = NULL;

    memset(c, 0, sizeof(*c));
    c->kind = kind;
    snprintf(c->sub, sizeof(c->sub), "0b1c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e");
    if (kind == JWT_API) {
        snprintf(c->tid, sizeof(c->tid),
                 "11111111-2222-4333-8444-555555555555");
    }
    c->iat = iat;
    c->exp = exp;
    assert_int_equal(jwt_issue(f->key, c, &t), ERR_OK);
    assert_non_null(t);
    return t;
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct jwt_claims c, got;
    int64_t now = util_now();
    char *t = issue(f, JWT_API, now, now + 60, &c);

    assert_int_equal(jwt_verify(f->key, t, now, &got), ERR_OK);
    assert_int_equal(got.kind, JWT_API);
    assert_string_equal(got.sub, c.sub);
    assert_string_equal(got.tid, c.tid);
    assert_string_equal(got.jti, c.jti);
    assert_int_equal(got.exp, now + 60);
    assert_int_equal(strlen(got.jti), 43);
    jwt_token_free(t);

    /* two tokens never share a jti */
    t = issue(f, JWT_SESSION, now, now + 60, &c);
    assert_int_equal(jwt_verify(f->key, t, now, &got), ERR_OK);
    assert_int_equal(got.kind, JWT_SESSION);
    assert_string_equal(got.tid, "");
    jwt_token_free(t);
}

static void test_expired(void **state)
{
    struct fixture *f = *state;
    struct jwt_claims c, got;
    int64_t now = util_now();
    char *t = issue(f, JWT_SESSION, now - 100, now - 1, &c);

    assert_int_equal(jwt_verify(f->key, t, now, &got), ERR_TIMEOUT);
    assert_string_equal(got.sub, "");
    jwt_token_free(t);
    /* issued in the future */
    t = issue(f, JWT_SESSION, now + 3600, now + 7200, &c);
    assert_int_equal(jwt_verify(f->key, t, now, &got), ERR_AUTH);
    jwt_token_free(t);
}

static char *b64url(const void *p, size_t n)
{
    size_t len =
        sodium_base64_encoded_len(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(len);

    assert_non_null(out);
    sodium_bin2base64(out, len, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

/* header.payload.sig with the header replaced. */
static char *with_header(const char *token, const char *hdr_json,
                         const char *sig)
{
    const char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
    char *h = b64url(hdr_json, strlen(hdr_json)), *out = NULL;

    assert_true(asprintf(&out, "%s.%.*s.%s", h, (int)(dot2 - dot1 - 1),
                         dot1 + 1, sig != NULL ? sig : dot2 + 1) > 0);
    free(h);
    return out;
}

static void test_refusals(void **state)
{
    struct fixture *f = *state;
    struct jwt_claims c, got;
    struct jwt_key *other = NULL;
    int64_t now = util_now();
    char *t = issue(f, JWT_SESSION, now, now + 60, &c), *bad, other_path[160];
    size_t len = strlen(t);

    /* a changed signature */
    bad = strdup(t);
    bad[len - 2] = bad[len - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(jwt_verify(f->key, bad, now, &got), ERR_AUTH);
    free(bad);
    /* a changed payload */
    bad = strdup(t);
    bad[strchr(bad, '.') - bad + 5] ^= 1;
    assert_int_not_equal(jwt_verify(f->key, bad, now, &got), ERR_OK);
    free(bad);
    /* alg none, with no signature and with the real one */
    bad = with_header(t, "{\"alg\":\"none\",\"typ\":\"JWT\"}", "");
    assert_int_not_equal(jwt_verify(f->key, bad, now, &got), ERR_OK);
    free(bad);
    bad = with_header(t, "{\"alg\":\"none\",\"typ\":\"JWT\"}", NULL);
    assert_int_not_equal(jwt_verify(f->key, bad, now, &got), ERR_OK);
    free(bad);
    bad = with_header(t, "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", NULL);
    assert_int_equal(jwt_verify(f->key, bad, now, &got), ERR_AUTH);
    free(bad);
    bad = with_header(t, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"x\"}",
                      NULL);
    assert_int_equal(jwt_verify(f->key, bad, now, &got), ERR_AUTH);
    free(bad);
    /* malformed */
    assert_int_equal(jwt_verify(f->key, "", now, &got), ERR_INVALID);
    assert_int_equal(jwt_verify(f->key, "abc", now, &got), ERR_INVALID);
    assert_int_equal(jwt_verify(f->key, "a.b", now, &got), ERR_INVALID);
    assert_int_equal(jwt_verify(f->key, "a.b.c.d", now, &got), ERR_INVALID);
    assert_int_equal(jwt_verify(f->key, "a!.b.c", now, &got), ERR_INVALID);
    /* another server's key */
    snprintf(other_path, sizeof(other_path), "%s/other.key", f->dir);
    assert_int_equal(jwt_key_load(other_path, true, &other), ERR_OK);
    assert_int_equal(jwt_verify(other, t, now, &got), ERR_AUTH);
    jwt_key_free(other);
    unlink(other_path);
    jwt_token_free(t);
}

/* Node credentials (issue 18): made and checked with one key, refused
 * when tampered with, from another key, outside the time window or
 * malformed. */
static void test_node_token(void **state)
{
    struct fixture *f = *state;
    const char *id = "0123456789abcdef0123456789abcdef";
    char tok[JWT_NODE_TOKEN_MAX + 1], got[JWT_NODE_ID_LEN + 1];
    char other_path[600];
    struct jwt_key *other = NULL;
    int64_t now = 1700000000;

    assert_int_equal(jwt_node_token(f->key, id, now, tok, sizeof(tok)), ERR_OK);
    assert_true(jwt_is_node_token(tok));
    assert_false(jwt_is_node_token("eyJhbGciOi.x.y"));
    assert_int_equal(jwt_node_token_check(f->key, tok, now + 30, got), ERR_OK);
    assert_string_equal(got, id);
    assert_int_equal(
        jwt_node_token_check(f->key, tok, now + JWT_NODE_TOKEN_SKEW + 1, got),
        ERR_TIMEOUT);
    assert_int_equal(
        jwt_node_token_check(f->key, tok, now - JWT_NODE_TOKEN_SKEW - 1, got),
        ERR_TIMEOUT);
    assert_string_equal(got, "");
    /* the MAC covers the node and the time */
    tok[strlen("pcnode1.")] = '1';
    assert_int_equal(jwt_node_token_check(f->key, tok, now, got), ERR_AUTH);
    tok[strlen("pcnode1.")] = '0';
    tok[strlen(tok) - 1] ^= 1;
    assert_int_equal(jwt_node_token_check(f->key, tok, now, got), ERR_AUTH);
    tok[strlen(tok) - 1] ^= 1;
    snprintf(other_path, sizeof(other_path), "%s/other.key", f->dir);
    assert_int_equal(jwt_key_load(other_path, true, &other), ERR_OK);
    assert_int_equal(jwt_node_token_check(other, tok, now, got), ERR_AUTH);
    jwt_key_free(other);
    unlink(other_path);
    /* malformed */
    assert_int_equal(jwt_node_token(f->key, "short", now, tok, sizeof(tok)),
                     ERR_INVALID);
    assert_int_equal(jwt_node_token(f->key, id, now, tok, 40), ERR_TOO_LONG);
    assert_int_equal(jwt_node_token_check(f->key, "pcnode1.", now, got),
                     ERR_INVALID);
    assert_int_equal(
        jwt_node_token_check(
            f->key, "pcnode1.0123456789abcdef0123456789abcdef.x.y", now, got),
        ERR_INVALID);
    assert_int_equal(
        jwt_node_token_check(
            f->key, "pcnode1.0123456789ABCDEF0123456789abcdef.1.00", now, got),
        ERR_INVALID);
}

static void test_key_file(void **state)
{
    struct fixture *f = *state;
    struct jwt_key *k = NULL;
    struct stat sb;
    char p[160];

    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, JWT_KEY_LEN);
    snprintf(p, sizeof(p), "%s/missing.key", f->dir);
    assert_int_equal(jwt_key_load(p, false, &k), ERR_NOT_FOUND);
    assert_null(k);
    assert_int_equal(chmod(f->path, 0644), 0);
    assert_int_not_equal(jwt_key_load(f->path, false, &k), ERR_OK);
    assert_int_equal(chmod(f->path, 0600), 0);
    assert_int_equal(jwt_key_load(f->path, false, &k), ERR_OK);
    jwt_key_free(k);
}

static void test_helpers(void **state)
{
    int64_t s = 0;
    char h1[JWT_HASH_LEN + 1], h2[JWT_HASH_LEN + 1];

    assert_int_equal(http_parse_duration("30d", &s), ERR_OK);
    assert_int_equal(s, 30 * 86400);
    assert_int_equal(http_parse_duration("12h", &s), ERR_OK);
    assert_int_equal(s, 12 * 3600);
    assert_int_equal(http_parse_duration("90", &s), ERR_OK);
    assert_int_equal(s, 90);
    assert_int_equal(http_parse_duration("0d", &s), ERR_INVALID);
    assert_int_equal(http_parse_duration("-1h", &s), ERR_INVALID);
    assert_int_equal(http_parse_duration("5y", &s), ERR_INVALID);
    assert_int_equal(http_parse_duration("99999d", &s), ERR_INVALID);
    assert_int_equal(http_parse_duration("1dd", &s), ERR_INVALID);

    assert_true(http_path_list_valid("/api/v1/me,/api/v1/assets"));
    assert_false(http_path_list_valid("api/v1"));
    assert_true(http_path_list_match("/api/v1/assets", "/api/v1/assets/x"));
    assert_true(http_path_list_match("/api/v1/assets", "/api/v1/assets"));
    assert_false(http_path_list_match("/api/v1/assets", "/api/v1/assetsX"));
    assert_true(http_path_list_match("/a,/api/", "/api/v1"));

    jwt_hash("abc", h1);
    jwt_hash("abd", h2);
    assert_int_equal(strlen(h1), 64);
    assert_string_not_equal(h1, h2);
}

/* The token rule's containment (http_res_auth.c): a new or widened token
 * may allow no path its maker does not (sources: test_cidr.c). */
static void test_filter_within(void **state)
{
    (void)state;
    /* an empty outer list allows everything */
    assert_true(http_path_list_within("", ""));
    assert_true(http_path_list_within("/api/v1/me", ""));
    /* an empty inner list is unfiltered: never within a filter */
    assert_false(http_path_list_within("", "/api/v1/me"));

    assert_true(http_path_list_within("/api/v1/me", "/api/v1/me"));
    assert_true(http_path_list_within("/api/v1/assets/x", "/api/v1/assets"));
    assert_true(http_path_list_within("/api/v1/assets/", "/api/v1/assets"));
    assert_true(http_path_list_within("/api/v1/me,/api/v1/assets/a",
                                      "/api/v1/assets,/api/v1/me"));
    assert_true(http_path_list_within("/api/v1/x", "/api/"));
    assert_false(http_path_list_within("/api/v1/assetsX", "/api/v1/assets"));
    assert_false(http_path_list_within("/api/v1", "/api/v1/"));
    assert_false(http_path_list_within("/", "/api/v1/me"));
    assert_false(
        http_path_list_within("/api/v1/me,/api/v1/api-tokens", "/api/v1/me"));
    assert_false(http_path_list_within("relative", "/api"));
}

static const struct http_field spec[] = {
    {"name", HF_STRING, true, 1, 8},      {"port", HF_INT, false, 1, 65535},
    {"on", HF_BOOL, false, 0, 0},         {"list", HF_STRING_LIST, false, 0, 2},
    {"pw", HF_STRING_NULL, false, 1, 16}, {NULL, HF_STRING, false, 0, 0},
};

static int parse(const char *s)
{
    char why[256];
    json_t *j = NULL;
    int r = http_body_parse(s, strlen(s), spec, &j, why, sizeof(why));

    if (r == ERR_OK) {
        assert_non_null(j);
        json_decref(j);
    } else {
        assert_null(j);
        assert_true(why[0] != '\0');
    }
    return r;
}

static void test_body(void **state)
{
    assert_int_equal(parse("{\"name\":\"a\"}"), ERR_OK);
    assert_int_equal(parse("{\"name\":\"a\",\"port\":22,\"on\":true,"
                           "\"list\":[\"x\",\"y\"],\"pw\":null}"),
                     ERR_OK);
    assert_int_equal(parse(""), ERR_INVALID); /* name is required */
    assert_int_equal(parse("{}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"a\",\"x\":1}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":1}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"\"}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"123456789\"}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"a\\nb\"}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"a\",\"name\":\"b\"}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"a\",\"port\":0}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"a\",\"port\":\"22\"}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"a\",\"on\":1}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"a\",\"list\":[\"x\",\"y\",\"z\"]}"),
                     ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"a\",\"list\":[1]}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"a\"} x"), ERR_INVALID);
    assert_int_equal(parse("[{\"name\":\"a\"}]"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":\"a\\u0000\"}"), ERR_INVALID);
    assert_int_equal(parse("{\"name\":"), ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_token, setup, teardown),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_filter_within),
        cmocka_unit_test(test_body),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
