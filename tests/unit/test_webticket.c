/*
 * Unit tests for src/auth/webticket.c, the browser terminal's one-time
 * tickets: a ticket grants once (a replay fails), only from the
 * connection it is bound to (and even a wrong attempt uses it up), only
 * for 30 seconds, only in its exact form, and the table is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "auth/webticket.h"

#define USER "0b9c5f4e-2a57-4d1e-9a55-3c1f3b7a9d01"
#define ASSET "6f1d2e3c-4b5a-4697-8a8b-9c0d1e2f3a4b"
#define T0 1000000

static struct webtickets *issue(char *tk, uint16_t port)
{
    struct webtickets *t = webtickets_new();

    assert_non_null(t);
    assert_int_equal(webticket_issue(t, USER, ASSET, "127.0.0.1", port,
                                     "192.0.2.7", 50123, T0, tk),
                     ERR_OK);
    return t;
}

static void test_redeem_once(void **state)
{
    char tk[WEBTICKET_STR_LEN + 1];
    struct webticket_grant g;
    struct webtickets *t = issue(tk, 40001);

    (void)state;
    assert_int_equal(strlen(tk), WEBTICKET_STR_LEN);
    assert_true(webticket_is_ticket(tk));
    assert_int_equal(webticket_redeem(t, tk, "127.0.0.1", 40001, T0 + 1000, &g),
                     ERR_OK);
    assert_string_equal(g.user_id, USER);
    assert_string_equal(g.asset_id, ASSET);
    assert_string_equal(g.browser_ip, "192.0.2.7");
    assert_string_equal(g.browser_addr, "192.0.2.7:50123");
    /* a replay, even from the same connection, fails */
    assert_int_equal(webticket_redeem(t, tk, "127.0.0.1", 40001, T0 + 1001, &g),
                     ERR_AUTH);
    assert_string_equal(g.user_id, "");
    webtickets_free(t);
}

static void test_binding_and_single_use(void **state)
{
    char tk[WEBTICKET_STR_LEN + 1];
    struct webticket_grant g;
    struct webtickets *t = issue(tk, 40002);

    (void)state;
    /* another port: refused, and the ticket is gone */
    assert_int_equal(webticket_redeem(t, tk, "127.0.0.1", 40003, T0 + 10, &g),
                     ERR_AUTH);
    assert_int_equal(webticket_redeem(t, tk, "127.0.0.1", 40002, T0 + 20, &g),
                     ERR_AUTH);
    webtickets_free(t);

    t = issue(tk, 40002);
    /* another address with the right port */
    assert_int_equal(webticket_redeem(t, tk, "10.0.0.1", 40002, T0 + 10, &g),
                     ERR_AUTH);
    assert_int_equal(webticket_redeem(t, tk, "127.0.0.1", 40002, T0 + 20, &g),
                     ERR_AUTH);
    webtickets_free(t);
}

static void test_expiry(void **state)
{
    char tk[WEBTICKET_STR_LEN + 1];
    struct webticket_grant g;
    struct webtickets *t = issue(tk, 40004);

    (void)state;
    assert_int_equal(
        webticket_redeem(t, tk, "127.0.0.1", 40004, T0 + WEBTICKET_TTL_MS, &g),
        ERR_AUTH);
    webtickets_free(t);
    t = issue(tk, 40004);
    assert_int_equal(webticket_redeem(t, tk, "127.0.0.1", 40004,
                                      T0 + WEBTICKET_TTL_MS - 1, &g),
                     ERR_OK);
    webtickets_free(t);
}

static void test_malformed_and_forged(void **state)
{
    char tk[WEBTICKET_STR_LEN + 1], forged[WEBTICKET_STR_LEN + 1];
    struct webticket_grant g;
    struct webtickets *t = issue(tk, 40005);

    (void)state;
    assert_false(webticket_is_ticket("hunter2"));
    assert_false(webticket_is_ticket(NULL));
    assert_int_equal(webticket_redeem(t, "", "127.0.0.1", 40005, T0, &g),
                     ERR_AUTH);
    assert_int_equal(
        webticket_redeem(t, WEBTICKET_PREFIX, "127.0.0.1", 40005, T0, &g),
        ERR_AUTH);
    /* one digit changed: another ticket, unknown; the real one survives */
    memcpy(forged, tk, sizeof(forged));
    forged[WEBTICKET_STR_LEN - 1] =
        forged[WEBTICKET_STR_LEN - 1] == '0' ? '1' : '0';
    assert_int_equal(webticket_redeem(t, forged, "127.0.0.1", 40005, T0, &g),
                     ERR_AUTH);
    /* upper case is not the same ticket */
    memcpy(forged, tk, sizeof(forged));
    for (size_t i = 0; i < WEBTICKET_STR_LEN; i++) {
        if (forged[i] >= 'a' && forged[i] <= 'f') {
            forged[i] = (char)(forged[i] - 'a' + 'A');
        }
    }
    if (strcmp(forged, tk) != 0) {
        assert_int_equal(
            webticket_redeem(t, forged, "127.0.0.1", 40005, T0, &g), ERR_AUTH);
    }
    /* revoked: gone */
    webticket_revoke(t, tk);
    assert_int_equal(webticket_redeem(t, tk, "127.0.0.1", 40005, T0, &g),
                     ERR_AUTH);
    webtickets_free(t);
}

static void test_bounded_and_unique(void **state)
{
    static char tks[WEBTICKET_MAX][WEBTICKET_STR_LEN + 1];
    char extra[WEBTICKET_STR_LEN + 1];
    struct webticket_grant g;
    struct webtickets *t = webtickets_new();

    (void)state;
    for (size_t i = 0; i < WEBTICKET_MAX; i++) {
        assert_int_equal(webticket_issue(t, USER, ASSET, "127.0.0.1",
                                         (uint16_t)(1024 + i), "::1", 1, T0,
                                         tks[i]),
                         ERR_OK);
    }
    assert_string_not_equal(tks[0], tks[1]);
    assert_int_equal(webticket_issue(t, USER, ASSET, "127.0.0.1", 9, "::1", 1,
                                     T0 + 1, extra),
                     ERR_DENIED);
    /* a redeemed one frees its slot */
    assert_int_equal(
        webticket_redeem(t, tks[7], "127.0.0.1", 1024 + 7, T0 + 1, &g), ERR_OK);
    assert_string_equal(g.browser_addr, "::1:1");
    assert_int_equal(webticket_issue(t, USER, ASSET, "127.0.0.1", 9, "::1", 1,
                                     T0 + 1, extra),
                     ERR_OK);
    /* expired ones are reclaimed */
    assert_int_equal(webticket_issue(t, USER, ASSET, "127.0.0.1", 10, "::1", 1,
                                     T0 + 1, extra),
                     ERR_DENIED);
    assert_int_equal(webticket_issue(t, USER, ASSET, "127.0.0.1", 10, "::1", 1,
                                     T0 + WEBTICKET_TTL_MS, extra),
                     ERR_OK);
    /* bad arguments */
    assert_int_equal(webticket_issue(t, "", ASSET, "127.0.0.1", 10, "::1", 1,
                                     T0 + WEBTICKET_TTL_MS, extra),
                     ERR_INVALID);
    webtickets_free(t);
    webtickets_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redeem_once),
        cmocka_unit_test(test_binding_and_single_use),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_malformed_and_forged),
        cmocka_unit_test(test_bounded_and_unique),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
