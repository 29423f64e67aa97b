/*
 * Unit tests for src/auth/nthash.c: MD4 against RFC 1320's test suite,
 * NTOWFv1 and NTOWFv2 against MS-NLMP §4.2.4's example (user "User",
 * domain "Domain", password "Password") and a hash FreeRDP's winpr-hash
 * printed, and the UTF-8 to UTF-16LE conversion's refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/nthash.h"
#include "common/err.h"

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", b[i]);
    }
}

static void test_md4_rfc1320(void **state)
{
    static const struct {
        const char *in, *md;
    } v[] = {
        {"", "31d6cfe0d16ae931b73c59d7e0c089c0"},
        {"a", "bde52cb31de33e46245e05fbdbd6fb24"},
        {"abc", "a448017aaf21d8525fc10ae87aa6729d"},
        {"message digest", "d9130a8164549fe818874806e1c7014b"},
        {"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
         "043f8582f241db351ce627e153e7f0e4"},
        {"1234567890123456789012345678901234567890123456789012345678901234"
         "5678901234567890",
         "e33b4ddc9c38f2199c3e7b164fcc0536"},
    };
    uint8_t md[NTHASH_LEN];
    char h[2 * NTHASH_LEN + 1];

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        nthash_md4((const uint8_t *)v[i].in, strlen(v[i].in), md);
        hex(md, sizeof(md), h);
        assert_string_equal(h, v[i].md);
    }
}

static void test_ntowf(void **state)
{
    uint8_t nt[NTHASH_LEN], v2[NTHASH_LEN];
    char h[2 * NTHASH_LEN + 1];

    (void)state;
    assert_int_equal(nthash_v1("Password", nt), ERR_OK);
    hex(nt, sizeof(nt), h);
    assert_string_equal(h, "a4f49c406510bdcab6824ee7c30fd852");
    assert_int_equal(nthash_v2(nt, "User", "Domain", v2), ERR_OK);
    hex(v2, sizeof(v2), h);
    assert_string_equal(h, "0c868a403bfd7a93a3001ef22ef02e3f");
    /* the user name is upper-cased, the domain is not */
    assert_int_equal(nthash_v2(nt, "user", "Domain", v2), ERR_OK);
    hex(v2, sizeof(v2), h);
    assert_string_equal(h, "0c868a403bfd7a93a3001ef22ef02e3f");
    assert_int_equal(nthash_v2(nt, "User", "DOMAIN", v2), ERR_OK);
    hex(v2, sizeof(v2), h);
    assert_string_not_equal(h, "0c868a403bfd7a93a3001ef22ef02e3f");
    /* what `winpr-hash -u tuser -p Target-pw1` prints */
    assert_int_equal(nthash_v1("Target-pw1", nt), ERR_OK);
    hex(nt, sizeof(nt), h);
    assert_string_equal(h, "a0514b0aa5ca02ae9e5b596a82047ec0");
    /* non-ASCII passwords: UTF-16LE of U+00E9 and U+1F600 */
    assert_int_equal(nthash_v1("caf\xc3\xa9\xf0\x9f\x98\x80", nt), ERR_OK);
}

static void test_utf16le(void **state)
{
    uint8_t out[16];
    size_t n = 0;

    (void)state;
    assert_int_equal(nthash_utf16le("aZ", 2, 1, out, sizeof(out), &n), ERR_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "A\0Z\0", 4);
    assert_int_equal(
        nthash_utf16le("\xf0\x9f\x98\x80", 4, 0, out, sizeof(out), &n), ERR_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\x3d\xd8\x00\xde", 4);
    /* refusals: overlong, surrogate, truncated, stray continuation, too
     * long for the output */
    assert_int_equal(nthash_utf16le("\xc0\xaf", 2, 0, out, sizeof(out), &n),
                     ERR_INVALID);
    assert_int_equal(nthash_utf16le("\xed\xa0\x80", 3, 0, out, sizeof(out), &n),
                     ERR_INVALID);
    assert_int_equal(nthash_utf16le("\xe2\x82", 2, 0, out, sizeof(out), &n),
                     ERR_INVALID);
    assert_int_equal(nthash_utf16le("\x80", 1, 0, out, sizeof(out), &n),
                     ERR_INVALID);
    assert_int_equal(nthash_utf16le("123456789", 9, 0, out, sizeof(out), &n),
                     ERR_TOO_LONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_md4_rfc1320),
        cmocka_unit_test(test_ntowf),
        cmocka_unit_test(test_utf16le),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
