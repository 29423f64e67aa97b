/*
 * libFuzzer target for the login-grammar parser (src/login/login.c).
 *
 * The login is the first thing an unauthenticated SSH client controls, so
 * besides "no crash, no out-of-bounds read" (ASan/UBSan do that) this
 * target checks the promises login.h makes about the result: on success
 * every field is NUL-terminated inside its array and within its maximum,
 * holds only the characters its grammar allows, principal is username or
 * username@domain, and the TOTP is empty or exactly six digits; on failure
 * the struct is all zero and a one-line reason was given. The input is
 * copied into an exact-size heap block so ASan sees any read past len.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "login/login.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_login: invariant failed: %s (line %d)\n",    \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Length of a field, checking it is NUL-terminated inside its array. */
static size_t fuzz_field_len(const char *f, size_t cap)
{
    const char *nul = memchr(f, '\0', cap);

    FUZZ_CHECK(nul != NULL);
    return (size_t)(nul - f);
}

static int fuzz_is_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9');
}

/* Every byte of a field is printable ASCII or (asset only) >= 0x80. */
static void fuzz_no_controls(const char *f, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)f[i];

        FUZZ_CHECK(c >= 0x20 && c != 0x7f);
    }
}

static void fuzz_check_ok(const struct login *l, const uint8_t *data,
                          size_t size)
{
    size_t nu = fuzz_field_len(l->username, sizeof(l->username));
    size_t nd = fuzz_field_len(l->domain, sizeof(l->domain));
    size_t np = fuzz_field_len(l->principal, sizeof(l->principal));
    size_t ns = fuzz_field_len(l->site, sizeof(l->site));
    size_t nt = fuzz_field_len(l->totp, sizeof(l->totp));
    size_t na = fuzz_field_len(l->asset, sizeof(l->asset));
    size_t i;

    FUZZ_CHECK(size <= LOGIN_MAX);
    FUZZ_CHECK(nu >= 1 && nu <= LOGIN_USER_MAX);
    FUZZ_CHECK(nd <= LOGIN_DOMAIN_MAX);
    FUZZ_CHECK(ns <= LOGIN_SITE_MAX);
    FUZZ_CHECK(na >= 1 && na <= LOGIN_ASSET_MAX);
    FUZZ_CHECK(memchr(data, '\0', size) == NULL);

    for (i = 0; i < nu; i++) {
        char c = l->username[i];

        FUZZ_CHECK(fuzz_is_alnum(c) || c == '.' || c == '_' || c == '-');
    }
    FUZZ_CHECK(l->username[0] != '-' && l->username[0] != '.');
    for (i = 0; i < nd; i++) {
        char c = l->domain[i];

        FUZZ_CHECK(fuzz_is_alnum(c) || c == '.' || c == '-');
    }
    if (nd > 0) {
        FUZZ_CHECK(l->domain[0] != '.' && l->domain[nd - 1] != '.');
        FUZZ_CHECK(strstr(l->domain, "..") == NULL);
        FUZZ_CHECK(np == nu + 1 + nd);
        FUZZ_CHECK(memcmp(l->principal, l->username, nu) == 0);
        FUZZ_CHECK(l->principal[nu] == '@');
        FUZZ_CHECK(memcmp(l->principal + nu + 1, l->domain, nd) == 0);
    } else {
        FUZZ_CHECK(strcmp(l->principal, l->username) == 0);
    }
    for (i = 0; i < ns; i++) {
        char c = l->site[i];

        FUZZ_CHECK(fuzz_is_alnum(c) || c == ' ' || c == '.' || c == '_' ||
                   c == '-' || c == '/');
    }
    if (ns > 0) {
        FUZZ_CHECK(strstr(l->site, "//") == NULL);
        FUZZ_CHECK(l->site[ns - 1] != '/');
    }
    FUZZ_CHECK(nt == 0 || nt == LOGIN_TOTP_LEN);
    for (i = 0; i < nt; i++) {
        FUZZ_CHECK(l->totp[i] >= '0' && l->totp[i] <= '9');
    }
    fuzz_no_controls(l->asset, na);
    FUZZ_CHECK(strchr(l->asset, '#') == NULL);
    FUZZ_CHECK(strspn(l->asset, " ") < na);
    FUZZ_CHECK(l->asset_is_id == util_is_uuid(l->asset));

    /* The asset is the input's tail after its only '#'. */
    FUZZ_CHECK(na < size);
    FUZZ_CHECK(memcmp(data + size - na, l->asset, na) == 0);
    FUZZ_CHECK(data[size - na - 1] == '#');
    /* And the login can be put back together from the fields. */
    {
        char again[LOGIN_MAX + 1];
        int n = snprintf(again, sizeof(again), "%s%s%s%s%s#%s", l->principal,
                         ns > 0 ? "/" : "", l->site, nt > 0 ? "?" : "", l->totp,
                         l->asset);

        FUZZ_CHECK(n >= 0 && (size_t)n == size);
        FUZZ_CHECK(memcmp(again, data, size) == 0);
    }
}

static void fuzz_check_fail(const struct login *l, int r, const char *why)
{
    const unsigned char *p = (const unsigned char *)l;
    size_t i;

    FUZZ_CHECK(r == ERR_INVALID || r == ERR_TOO_LONG);
    for (i = 0; i < sizeof(*l); i++) {
        FUZZ_CHECK(p[i] == 0);
    }
    FUZZ_CHECK(why != NULL);
    FUZZ_CHECK(why[0] != '\0');
    FUZZ_CHECK(strchr(why, '\n') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct login l;
    const char *why = NULL;
    char *copy = malloc(size > 0 ? size : 1);
    int r;

    if (copy == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(copy, data, size);
    }
    memset(&l, 0xa5, sizeof(l));
    r = login_parse(copy, size, &l, &why);
    if (r == ERR_OK) {
        FUZZ_CHECK(why == NULL);
        fuzz_check_ok(&l, data, size);
    } else {
        fuzz_check_fail(&l, r, why);
    }
    /* A NULL why must be accepted and give the same answer. */
    FUZZ_CHECK(login_parse(copy, size, &l, NULL) == r);
    free(copy);
    return 0;
}
