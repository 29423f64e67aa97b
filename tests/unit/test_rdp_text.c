/*
 * Unit tests for src/rdpproxy/rdp_text.c: UTF-16LE from RDP clients to
 * UTF-8 (surrogate pairs, lone surrogates, NUL units, sizes) and the
 * split of an asset's vaulted login into user and domain.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "rdpproxy/rdp_text.h"

static void test_utf16_to_utf8(void **state)
{
    /* "a?1#x", e-acute, U+20AC, U+1F600 (a pair) */
    static const uint8_t in[] = {'a',  0,    '?',  0,    '1',  0,
                                 '#',  0,    'x',  0,    0xe9, 0,
                                 0xac, 0x20, 0x3d, 0xd8, 0x00, 0xde};
    char out[64];

    (void)state;
    assert_int_equal(rdp_utf16_to_utf8(in, sizeof(in) / 2, out, sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "a?1#x\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_int_equal(rdp_utf16_to_utf8(in, 0, out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "");
    /* exactly fits: 5 bytes and the NUL */
    assert_int_equal(rdp_utf16_to_utf8(in, 5, out, 6), ERR_OK);
    assert_int_equal(rdp_utf16_to_utf8(in, 5, out, 5), ERR_TOO_LONG);
    assert_string_equal(out, "");
    assert_int_equal(rdp_utf16_to_utf8(in, 1, out, 0), ERR_TOO_LONG);
}

static void test_utf16_refusals(void **state)
{
    static const uint8_t lone_high[] = {0x3d, 0xd8, 'a', 0};
    static const uint8_t lone_high_end[] = {'a', 0, 0x3d, 0xd8};
    static const uint8_t lone_low[] = {0x00, 0xde};
    static const uint8_t nul[] = {'a', 0, 0, 0, 'b', 0};
    char out[64];

    (void)state;
    assert_int_equal(rdp_utf16_to_utf8(lone_high, 2, out, sizeof(out)),
                     ERR_INVALID);
    assert_string_equal(out, "");
    /* a failure after good units leaves "" too (found by fuzz_rdp_text) */
    memset(out, 'x', sizeof(out));
    assert_int_equal(rdp_utf16_to_utf8(nul, 3, out, sizeof(out)), ERR_INVALID);
    assert_string_equal(out, "");
    assert_int_equal(rdp_utf16_to_utf8(lone_high_end, 2, out, sizeof(out)),
                     ERR_INVALID);
    assert_int_equal(rdp_utf16_to_utf8(lone_low, 1, out, sizeof(out)),
                     ERR_INVALID);
    assert_int_equal(rdp_utf16_to_utf8(nul, 3, out, sizeof(out)), ERR_INVALID);
}

static void test_split_login(void **state)
{
    char u[16], d[16];

    (void)state;
    assert_int_equal(rdp_split_login("CORP\\admin", u, sizeof(u), d, sizeof(d)),
                     ERR_OK);
    assert_string_equal(u, "admin");
    assert_string_equal(d, "CORP");
    assert_int_equal(
        rdp_split_login("admin@corp.example", u, sizeof(u), d, sizeof(d)),
        ERR_TOO_LONG);
    assert_int_equal(rdp_split_login("adm@corp", u, sizeof(u), d, sizeof(d)),
                     ERR_OK);
    assert_string_equal(u, "adm@corp");
    assert_string_equal(d, "");
    assert_int_equal(rdp_split_login("\\x", u, sizeof(u), d, sizeof(d)),
                     ERR_OK);
    assert_string_equal(u, "x");
    assert_string_equal(d, "");
    assert_int_equal(rdp_split_login("", u, sizeof(u), d, sizeof(d)), ERR_OK);
    assert_string_equal(u, "");
    assert_int_equal(
        rdp_split_login("ADOMAINTOOLONGFORIT\\x", u, sizeof(u), d, sizeof(d)),
        ERR_TOO_LONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf16_to_utf8),
        cmocka_unit_test(test_utf16_refusals),
        cmocka_unit_test(test_split_login),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
