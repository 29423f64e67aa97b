/*
 * Address filters (common/cidr.h): API tokens' source filters and
 * tunnels' listener ACLs admit by these, so a wrong answer admits a
 * client it should not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/cidr.h"

static void test_valid(void **state)
{
    (void)state;
    assert_true(cidr_list_valid("10.0.0.0/8,192.0.2.7,::1/128"));
    assert_false(cidr_list_valid("10.0.0.0/33"));
    assert_false(cidr_list_valid("10.0.0.0/8,"));
    assert_false(cidr_list_valid("host.example"));
    assert_false(cidr_list_valid(""));
    assert_false(cidr_list_valid(NULL));
    assert_false(cidr_list_valid(",10.0.0.0/8"));
    assert_false(cidr_list_valid("10.0.0.0/"));
    assert_false(cidr_list_valid("10.0.0.0/-1"));
    assert_false(cidr_list_valid("::1/129"));
    assert_false(cidr_list_valid("10.0.0.0/8 "));
    assert_true(cidr_list_valid("::/0"));
}

static void test_match(void **state)
{
    (void)state;
    assert_true(cidr_list_match("10.0.0.0/8", "10.2.3.4"));
    assert_false(cidr_list_match("10.0.0.0/8", "11.2.3.4"));
    assert_true(cidr_list_match("192.0.2.0/25", "192.0.2.127"));
    assert_false(cidr_list_match("192.0.2.0/25", "192.0.2.128"));
    assert_true(cidr_list_match("127.0.0.0/8", "::ffff:127.0.0.1"));
    assert_true(cidr_list_match("2001:db8::/32", "2001:db8::1"));
    assert_false(cidr_list_match("2001:db8::/32", "10.0.0.1"));
    assert_true(cidr_list_match("0.0.0.0/0", "8.8.8.8"));
    /* a malformed entry matches nothing; the others still count */
    assert_true(cidr_list_match("junk,10.0.0.0/8", "10.1.1.1"));
    assert_false(cidr_list_match("junk", "10.1.1.1"));
    assert_false(cidr_list_match(NULL, "10.1.1.1"));
    assert_false(cidr_list_match("10.0.0.0/8", NULL));
    assert_false(cidr_list_match("10.0.0.0/8", "not-an-address"));
    assert_false(cidr_list_match("", "10.1.1.1"));
    /* a prefix not on a byte boundary */
    assert_true(cidr_list_match("10.0.0.0/9", "10.127.255.255"));
    assert_false(cidr_list_match("10.0.0.0/9", "10.128.0.0"));
    /* ::ffff:a.b.c.d is IPv4 only when written so */
    assert_false(cidr_list_match("::ffff:0:0/96", "127.0.0.1"));
}

/* The token rule's containment (http_res_auth.c): a new or widened token
 * may allow no source its maker does not. */
static void test_within(void **state)
{
    (void)state;
    assert_true(cidr_list_within("", ""));
    assert_true(cidr_list_within("10.0.0.0/8", ""));
    assert_false(cidr_list_within("", "127.0.0.0/8"));
    assert_false(cidr_list_within(NULL, "127.0.0.0/8"));
    assert_true(cidr_list_within("127.0.0.1", "127.0.0.0/8"));
    assert_true(
        cidr_list_within("127.1.0.0/16,10.1.2.3", "10.0.0.0/8,127.0.0.0/8"));
    assert_true(cidr_list_within("127.0.0.0/8", "127.0.0.0/8"));
    assert_false(cidr_list_within("127.0.0.0/7", "127.0.0.0/8"));
    assert_false(cidr_list_within("0.0.0.0/0", "127.0.0.0/8"));
    assert_false(cidr_list_within("127.0.0.1,192.0.2.1", "127.0.0.0/8"));
    assert_false(cidr_list_within("::1", "127.0.0.0/8"));
    assert_true(cidr_list_within("2001:db8::1", "2001:db8::/32"));
    assert_false(cidr_list_within("2001:db9::/48", "2001:db8::/32"));
    assert_false(cidr_list_within("junk", "127.0.0.0/8"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_within),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
