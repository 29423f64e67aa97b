/*
 * libFuzzer target for the REST API's strict JSON body parser
 * (src/http/http_body.c) and the JWT verifier that reuses it for token
 * headers (src/auth/jwt.c).
 *
 * Request bodies are the first bytes an API client controls. Besides "no
 * crash, no out-of-bounds read" (ASan/UBSan), it checks what http_body.h
 * promises: on success the result is an object whose every key is in the
 * table, of the declared type and within bounds, with every required key
 * present; on failure there is no result and the reason is one non-empty
 * line. The first input byte picks one of three route-like tables. The
 * whole input is also tried as a bearer token, which must never verify.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "http/http_body.h"
#include "auth/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr,                                                    \
                    "fuzz_json_body: invariant failed: %s (line %d)\n", #cond, \
                    __LINE__);                                                 \
            abort();                                                           \
        }                                                                      \
    } while (0)

static const struct http_field spec_login[] = {
    {"username", HF_STRING, true, 1, 128},
    {"password", HF_SECRET, true, 1, 1024},
    {"totp", HF_SECRET, false, 0, 16},
    {NULL, HF_STRING, false, 0, 0},
};
static const struct http_field spec_asset[] = {
    {"name", HF_STRING, true, 1, 128},
    {"port", HF_INT, false, 1, 65535},
    {"enabled", HF_BOOL, false, 0, 0},
    {"password", HF_STRING_NULL, false, 1, 1024},
    {NULL, HF_STRING, false, 0, 0},
};
static const struct http_field spec_token[] = {
    {"description", HF_STRING, false, 0, 256},
    {"filter_cidrs", HF_STRING_LIST, false, 0, 32},
    {"filter_paths", HF_STRING_LIST, false, 0, 32},
    {NULL, HF_STRING, false, 0, 0},
};
static const struct http_field *const specs[] = {spec_login, spec_asset,
                                                 spec_token};

static void check_value(const struct http_field *f, json_t *v)
{
    size_t i, len;
    json_t *item;

    switch (f->type) {
    case HF_STRING_NULL:
        if (json_is_null(v)) {
            return;
        }
        /* fall through */
    case HF_STRING:
    case HF_SECRET:
        FUZZ_CHECK(json_is_string(v));
        len = json_string_length(v);
        FUZZ_CHECK((int64_t)len >= f->lo && (int64_t)len <= f->hi);
        if (f->type == HF_STRING) {
            for (i = 0; i < len; i++) {
                FUZZ_CHECK((unsigned char)json_string_value(v)[i] >= 0x20);
            }
        }
        return;
    case HF_INT:
        FUZZ_CHECK(json_is_integer(v));
        FUZZ_CHECK(json_integer_value(v) >= f->lo &&
                   json_integer_value(v) <= f->hi);
        return;
    case HF_BOOL:
        FUZZ_CHECK(json_is_boolean(v));
        return;
    case HF_STRING_LIST:
        FUZZ_CHECK(json_is_array(v));
        FUZZ_CHECK((int64_t)json_array_size(v) <= f->hi);
        json_array_foreach(v, i, item)
        {
            FUZZ_CHECK(json_is_string(item));
        }
        return;
    }
    FUZZ_CHECK(0);
}

static struct jwt_key *fuzz_key;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct http_field *spec;
    struct jwt_claims claims;
    char why[256], *copy, *tok;
    const char *key;
    json_t *out = NULL, *v;
    size_t i, nreq = 0, nfound = 0;
    int r;

    if (size == 0) {
        return 0;
    }
    if (fuzz_key == NULL) {
        char path[] = "/tmp/fuzz-jwt-XXXXXX";
        int fd = mkstemp(path);

        if (fd < 0 || sodium_init() < 0) {
            abort();
        }
        close(fd);
        unlink(path);
        if (jwt_key_load(path, true, &fuzz_key) != ERR_OK) {
            abort();
        }
        unlink(path);
    }
    spec = specs[data[0] % 3];
    /* an exact-size copy, so ASan sees any read past the end */
    copy = malloc(size - 1 > 0 ? size - 1 : 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data + 1, size - 1);
    r = http_body_parse(copy, size - 1, spec, &out, why, sizeof(why));
    if (r == ERR_OK) {
        FUZZ_CHECK(json_is_object(out));
        json_object_foreach(out, key, v)
        {
            for (i = 0; spec[i].name != NULL; i++) {
                if (strcmp(spec[i].name, key) == 0) {
                    break;
                }
            }
            FUZZ_CHECK(spec[i].name != NULL);
            check_value(&spec[i], v);
            nfound++;
        }
        for (i = 0; spec[i].name != NULL; i++) {
            if (spec[i].required) {
                nreq++;
                FUZZ_CHECK(json_object_get(out, spec[i].name) != NULL);
            }
        }
        FUZZ_CHECK(nfound >= nreq);
        json_decref(out);
    } else {
        FUZZ_CHECK(out == NULL);
        FUZZ_CHECK(why[0] != '\0' && strchr(why, '\n') == NULL);
    }
    free(copy);

    /* the same bytes as a bearer token: never valid (no key is known) */
    tok = malloc(size + 1);
    if (tok != NULL) {
        memcpy(tok, data, size);
        tok[size] = '\0';
        r = jwt_verify(fuzz_key, tok, 1800000000, &claims);
        FUZZ_CHECK(r != ERR_OK);
        free(tok);
    }
    return 0;
}
