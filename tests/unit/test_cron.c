/*
 * Unit tests for src/common/cron.c: the five fields and their syntax
 * (lists, ranges, steps, 7 as Sunday), refusals naming the field, the
 * Vixie rule for the two day fields, and the next and counted minutes
 * (in UTC: TZ is set for the test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/cron.h"
#include "common/err.h"

/* 2026-12-03 (a Thursday) 10:00:00 UTC */
#define T0 1796292000

static void test_parse(void **state)
{
    struct cron c;
    char why[160];
    static const char *const bad[] = {
        "",
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
        "5-1 * * * *",
        "1, * * * *",
        ",1 * * * *",
        "a * * * *",
        "1-2-3 * * * *",
        "0001 * * * *",
        "-1 * * * *",
        "*/ * * * *",
        NULL,
    };

    (void)state;
    assert_int_equal(
        cron_parse("*/15 0-6/2,23 1,15 * 1-5", &c, why, sizeof(why)), ERR_OK);
    assert_true(c.minute == (1ULL << 0 | 1ULL << 15 | 1ULL << 30 | 1ULL << 45));
    assert_int_equal(c.hour, 1 << 0 | 1 << 2 | 1 << 4 | 1 << 6 | 1 << 23);
    assert_int_equal(c.dom, 1 << 1 | 1 << 15);
    assert_int_equal(c.month, 0x1ffe);
    assert_int_equal(c.dow, 0x3e);
    assert_false(c.dom_star);
    assert_int_equal(cron_parse("0 0 * * 7", &c, why, sizeof(why)), ERR_OK);
    assert_int_equal(c.dow, 1); /* 7 is Sunday */
    for (size_t i = 0; bad[i] != NULL; i++) {
        why[0] = '\0';
        assert_int_equal(cron_parse(bad[i], &c, why, sizeof(why)), ERR_INVALID);
        assert_true(why[0] != '\0');
    }
    assert_int_equal(cron_parse("61 * * * *", &c, why, sizeof(why)),
                     ERR_INVALID);
    assert_non_null(strstr(why, "minute"));
}

static void test_next_and_count(void **state)
{
    struct cron c;
    struct tm tm;
    time_t t;

    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    assert_int_equal(cron_parse("* * * * *", &c, NULL, 0), ERR_OK);
    assert_int_equal(cron_next(&c, T0, 10), T0 + 60);
    assert_int_equal(cron_next(&c, T0 + 59, 10), T0 + 60);
    assert_int_equal(cron_count(&c, T0, T0 + 300, 1000), 5);
    assert_int_equal(cron_count(&c, T0, T0 + 300, 3), 3);
    assert_int_equal(cron_count(&c, T0, T0, 1000), 0);
    /* 10:30 on the 3rd (a Thursday): with both day fields restricted,
     * either may match */
    assert_int_equal(cron_parse("30 10 25 * 4", &c, NULL, 0), ERR_OK);
    assert_int_equal(cron_next(&c, T0, 100000), T0 + 1800);
    assert_int_equal(cron_parse("30 10 25 * *", &c, NULL, 0), ERR_OK);
    t = (time_t)cron_next(&c, T0, 100000);
    gmtime_r(&t, &tm);
    assert_int_equal(tm.tm_mday, 25);
    assert_int_equal(tm.tm_hour, 10);
    assert_int_equal(tm.tm_min, 30);
    /* never (31 February): nothing within the limit */
    assert_int_equal(cron_parse("0 0 31 2 *", &c, NULL, 0), ERR_OK);
    assert_int_equal(cron_next(&c, T0, 527040), -1);
    assert_int_equal(cron_count(&c, T0, T0 + 400LL * 86400, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_next_and_count),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
