/*
 * Unit tests for src/common/srccount.c, the per-source connection counts
 * the HTTP listener and the peer-node CONNECT proxy share: an IPv4
 * address is its own source (an IPv4-mapped one the same), every IPv6
 * address of one /64 is one source, different /64s are not; counts of
 * each kind, moves between kinds, and the entry freed at zero.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/srccount.h"

static void expect_source(const char *ip, const char *want)
{
    uint8_t key[17];
    char text[SRCCOUNT_TEXT_MAX];

    assert_true(srccount_source(ip, key, text, sizeof(text)));
    assert_string_equal(text, want);
}

static void test_sources(void **state)
{
    uint8_t key[17];
    char text[SRCCOUNT_TEXT_MAX];

    (void)state;
    expect_source("192.0.2.7", "192.0.2.7");
    expect_source("::ffff:192.0.2.7", "192.0.2.7");
    expect_source("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64");
    expect_source("2001:db8:1:2::1", "2001:db8:1:2::/64");
    expect_source("::1", "::/64");
    assert_false(srccount_source("not an address", key, text, sizeof(text)));
    assert_false(srccount_source("[::1]", key, text, sizeof(text)));
    assert_false(srccount_source("", key, text, sizeof(text)));
    assert_false(srccount_source(NULL, key, text, sizeof(text)));
}

static void test_counts(void **state)
{
    struct srccount *sc = srccount_new();
    struct srccount_src *a, *b, *c, *d;

    (void)state;
    assert_non_null(sc);
    /* one /64, many addresses: one source */
    a = srccount_add(sc, "2001:db8:1:2::1", 0);
    b = srccount_add(sc, "2001:db8:1:2:ffff::9", 0);
    assert_ptr_equal(a, b);
    assert_int_equal(a->n[0], 2);
    assert_ptr_equal(srccount_find(sc, "2001:db8:1:2:1:2:3:4"), a);
    /* the next /64 is another */
    c = srccount_add(sc, "2001:db8:1:3::1", 0);
    assert_ptr_not_equal(a, c);
    assert_null(srccount_find(sc, "2001:db8:1:4::1"));
    /* IPv4 per address; the mapped form is the same source */
    d = srccount_add(sc, "192.0.2.7", 0);
    assert_ptr_equal(srccount_add(sc, "::ffff:192.0.2.7", 1), d);
    assert_null(srccount_find(sc, "192.0.2.8"));
    assert_int_equal(d->n[0], 1);
    assert_int_equal(d->n[1], 1);
    assert_int_equal(srccount_size(sc), 3);
    /* bad input */
    assert_null(srccount_add(sc, "nope", 0));
    assert_null(srccount_add(sc, "192.0.2.7", SRCCOUNT_KINDS));

    /* moves, and the entry goes when every count is 0 */
    srccount_move(d, 0, 1);
    assert_int_equal(d->n[0], 0);
    assert_int_equal(d->n[1], 2);
    srccount_drop(sc, d, 1);
    assert_ptr_equal(srccount_find(sc, "192.0.2.7"), d);
    srccount_drop(sc, d, 1);
    assert_null(srccount_find(sc, "192.0.2.7"));
    srccount_drop(sc, a, 0);
    assert_non_null(srccount_find(sc, "2001:db8:1:2::1"));
    srccount_drop(sc, a, 0);
    assert_null(srccount_find(sc, "2001:db8:1:2::1"));
    assert_int_equal(srccount_size(sc), 1);
    srccount_drop(sc, NULL, 0);
    srccount_free(sc); /* frees c */
    srccount_free(NULL);
}

/* Many sources: each keeps its own count (the chains work). */
static void test_many(void **state)
{
    struct srccount *sc = srccount_new();
    char ip[64];

    (void)state;
    for (int i = 0; i < 2000; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
        assert_non_null(srccount_add(sc, ip, 0));
        assert_non_null(srccount_add(sc, ip, 0));
    }
    assert_int_equal(srccount_size(sc), 2000);
    for (int i = 0; i < 2000; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
        assert_int_equal(srccount_find(sc, ip)->n[0], 2);
        srccount_drop(sc, srccount_find(sc, ip), 0);
        srccount_drop(sc, srccount_find(sc, ip), 0);
    }
    assert_int_equal(srccount_size(sc), 0);
    srccount_free(sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sources),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_many),
    };
    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
