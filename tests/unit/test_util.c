/*
 * util_path_clean (common/util.h): the server checks a file push's
 * destination with it before it sends the job, and the agent checks it
 * again before it writes a byte, so a wrong "yes" lets a push land
 * outside the directory the agent's operator allowed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"

#define MAX 4096

static bool clean(const char *p)
{
    return util_path_clean(p, strlen(p), MAX);
}

static void test_path_clean_accepts(void **state)
{
    (void)state;
    assert_true(clean("/a"));
    assert_true(clean("/a/b"));
    assert_true(clean("/srv/in/report.csv"));
    /* dots inside a name are only a name */
    assert_true(clean("/a/..b/c."));
    assert_true(clean("/.hidden/..."));   /* "..." is a name, not a step up */
    assert_true(clean("/a b/c\xc3\xa9")); /* spaces and UTF-8 are bytes */
}

static void test_path_clean_hostile(void **state)
{
    static const char *const bad[] = {
        "",           /* empty */
        "/",          /* the root itself */
        "a/b",        /* relative */
        "./a",        /* relative */
        "../etc/x",   /* relative, upwards */
        "/..",        /* upwards */
        "/../etc",    /* upwards from the root */
        "/a/../b",    /* upwards in the middle */
        "/a/b/..",    /* upwards at the end */
        "/a/./b",     /* a "." step */
        "/.",         /* a "." step */
        "/a/.",       /* a "." step at the end */
        "/a//b",      /* an empty component */
        "//a",        /* an empty component at the start */
        "/a/b/",      /* a trailing slash */
        "/a/b//",     /* trailing slashes */
        "/a\nb",      /* control characters */
        "/a\tb",      /* */
        "/a\x1b[2Jb", /* */
        "/a\x7f",     /* DEL */
        "\\a\\b",     /* not a '/' path at all */
        NULL,
    };

    (void)state;
    for (size_t i = 0; bad[i] != NULL; i++) {
        if (clean(bad[i])) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}

static void test_path_clean_nul(void **state)
{
    /* the length says what was sent: a NUL inside it is refused, not
     * taken as the end of the path */
    static const char p[] = "/srv/in/ok\0/../../etc/passwd";

    (void)state;
    assert_false(util_path_clean(p, sizeof(p) - 1, MAX));
    assert_false(util_path_clean("/a\0", 3, MAX));
    assert_false(util_path_clean("\0/a", 3, MAX));
    /* the same bytes up to the NUL are fine */
    assert_true(util_path_clean(p, strlen(p), MAX));
    /* and len is all it reads: a shorter len sees a shorter path */
    assert_true(util_path_clean("/a/b/..", 4, MAX));
    assert_false(util_path_clean("/a/b", 0, MAX));
    assert_false(util_path_clean("/a/b", 1, MAX));
}

static void test_path_clean_length(void **state)
{
    char *p = malloc(MAX + 2);

    (void)state;
    assert_non_null(p);
    /* "/aaaa...": exactly the maximum, then one byte over */
    p[0] = '/';
    memset(p + 1, 'a', MAX);
    p[MAX] = '\0';
    assert_int_equal(strlen(p), MAX);
    assert_true(util_path_clean(p, MAX, MAX));
    p[MAX] = 'a';
    p[MAX + 1] = '\0';
    assert_false(util_path_clean(p, MAX + 1, MAX));
    /* a small max is a small max */
    assert_true(util_path_clean("/ab", 3, 3));
    assert_false(util_path_clean("/abc", 4, 3));
    free(p);
}

/* A flood: the first line at once, then one per period with the count
 * held back since; what is held at the end is handed to the flush. */
static void test_log_limit(void **state)
{
    static const struct {
        int64_t at;
        uint64_t said; /* 0: held back */
    } steps[] = {
        {1000, 1},  {1001, 0},  {5000, 0},  {10999, 0}, {11000, 4},
        {11001, 0}, {30000, 2}, {30500, 0}, {30600, 0},
    };
    struct log_limit l = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        assert_int_equal(log_limit_take(&l, steps[i].at, 10000), steps[i].said);
    }
    assert_int_equal(log_limit_flush(&l), 2);
    assert_int_equal(log_limit_flush(&l), 0);
    /* a clock at 0 (the first call) still says the first line */
    memset(&l, 0, sizeof(l));
    assert_int_equal(log_limit_take(&l, 0, 10000), 1);
    assert_int_equal(log_limit_take(&l, 0, 10000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_clean_accepts),
        cmocka_unit_test(test_path_clean_hostile),
        cmocka_unit_test(test_path_clean_nul),
        cmocka_unit_test(test_path_clean_length),
        cmocka_unit_test(test_log_limit),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
