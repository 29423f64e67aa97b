/* Unit tests for the agents' announcement parser (src/hub/hub_announce.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "hub/hub_internal.h"

static int parse(const char *json, struct hub_announce *a, char *why)
{
    return hub_announce_parse(json, strlen(json), a, why, 200);
}

static void test_full(void **state)
{
    struct hub_announce a;
    char why[200] = "";

    assert_int_equal(
        parse("{\"id\":\"3f1c0ad7\",\"name\":\"db-08\",\"hostname\":\"db-08."
              "corp\",\"os\":\"Debian GNU/Linux 12\",\"kernel\":\"Linux 6.1\","
              "\"arch\":\"x86_64\",\"addresses\":[\"10.1.2.8\", \"fe80::1\"],"
              "\"version\":\"0.1.0\",\"tags\":[\"prod\",\"db\"]}",
              &a, why),
        ERR_OK);
    assert_string_equal(a.id, "3f1c0ad7");
    assert_string_equal(a.name, "db-08");
    assert_string_equal(a.hostname, "db-08.corp");
    assert_string_equal(a.os, "Debian GNU/Linux 12");
    assert_string_equal(a.kernel, "Linux 6.1");
    assert_string_equal(a.arch, "x86_64");
    assert_string_equal(a.version, "0.1.0");
    assert_string_equal(a.addresses, "[\"10.1.2.8\",\"fe80::1\"]");
    assert_string_equal(a.tags, "[\"prod\",\"db\"]");
}

static void test_minimal_and_unknown_keys(void **state)
{
    struct hub_announce a;
    char why[200] = "";

    assert_int_equal(
        parse("{\"id\":\"a.b_c-9\",\"later\":{\"x\":[1]}}", &a, why), ERR_OK);
    assert_string_equal(a.id, "a.b_c-9");
    assert_string_equal(a.name, "a.b_c-9"); /* defaults to the ID */
    assert_string_equal(a.tags, "[]");
    assert_string_equal(a.addresses, "[]");
    assert_int_equal(parse("{\"id\":\"x\",\"hostname\":\"h1\"}", &a, why),
                     ERR_OK);
    assert_string_equal(a.name, "h1"); /* then to the host name */
}

static void test_refusals(void **state)
{
    static const char *const bad[] = {
        "",
        "[]",
        "\"id\"",
        "{}",
        "{\"id\":\"\"}",
        "{\"id\":\"a b\"}",
        "{\"id\":\"../x\"}",
        "{\"id\":\"x:y\"}",
        "{\"id\":12}",
        "{\"id\":\"x\",\"name\":7}",
        "{\"id\":\"x\",\"tags\":\"prod\"}",
        "{\"id\":\"x\",\"tags\":[\"\"]}",
        "{\"id\":\"x\",\"tags\":[1]}",
        "{\"id\":\"x\",\"name\":\"a\\nb\"}",
        "{\"id\":\"x\",\"id\":\"y\"}",
        "{\"id\":\"x\"",
        "{\"id\":\"01234567890123456789012345678901234567890123456789"
        "0123456789012345\"}",
    };
    struct hub_announce a;
    char why[200];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        assert_int_equal(parse(bad[i], &a, why), ERR_INVALID);
        assert_true(why[0] != '\0');
    }
}

static void test_limits(void **state)
{
    char big[HUB_ANNOUNCE_MAX + 64], why[200];
    struct hub_announce a;
    size_t n;

    /* 33 tags: one too many */
    n = (size_t)snprintf(big, sizeof(big), "{\"id\":\"x\",\"tags\":[");
    for (int i = 0; i < 33; i++) {
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"t%d\"",
                              i ? "," : "", i);
    }
    snprintf(big + n, sizeof(big) - n, "]}");
    assert_int_equal(parse(big, &a, why), ERR_INVALID);
    /* longer than 16 KiB */
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"id\":\"x\"}", 10);
    assert_int_equal(
        hub_announce_parse(big, HUB_ANNOUNCE_MAX + 1, &a, why, sizeof(why)),
        ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_minimal_and_unknown_keys),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
