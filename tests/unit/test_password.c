/*
 * Unit tests for src/auth/password.c: argon2id hashing and verification,
 * the length limit, the unknown-user path that must still cost one
 * argon2id run, and generated passwords.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth/password.h"
#include "common/err.h"
#include "store/store.h"

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_hash_and_verify(void **state)
{
    char hash[STORE_HASH_MAX + 1];
    char hash2[STORE_HASH_MAX + 1];

    (void)state;
    assert_int_equal(password_hash("correct horse", hash, sizeof(hash)),
                     ERR_OK);
    assert_non_null(strstr(hash, "$argon2id$"));
    assert_non_null(strstr(hash, "m=65536,t=2,p=1"));
    assert_true(strlen(hash) < sizeof(hash));
    assert_int_equal(password_verify(hash, "correct horse"), ERR_OK);
    assert_int_equal(password_verify(hash, "correct horsE"), ERR_AUTH);
    assert_int_equal(password_verify(hash, "correct horse "), ERR_AUTH);
    assert_int_equal(password_verify(hash, ""), ERR_AUTH);
    assert_int_equal(password_verify(hash, NULL), ERR_AUTH);

    /* A fresh salt every time. */
    assert_int_equal(password_hash("correct horse", hash2, sizeof(hash2)),
                     ERR_OK);
    assert_string_not_equal(hash, hash2);
    assert_int_equal(password_verify(hash2, "correct horse"), ERR_OK);
}

static void test_hash_rejects_bad_arguments(void **state)
{
    char hash[STORE_HASH_MAX + 1];
    char small[64];

    (void)state;
    assert_int_equal(password_hash("", hash, sizeof(hash)), ERR_INVALID);
    assert_int_equal(password_hash(NULL, hash, sizeof(hash)), ERR_INVALID);
    assert_int_equal(password_hash("pw", small, sizeof(small)), ERR_INVALID);
}

static void test_empty_hash_never_matches(void **state)
{
    (void)state;
    /* Unknown user or no password set: always refused, for any input. */
    assert_int_equal(password_verify(NULL, "anything"), ERR_AUTH);
    assert_int_equal(password_verify("", "anything"), ERR_AUTH);
    assert_int_equal(password_verify("", ""), ERR_AUTH);
    assert_int_equal(password_verify(NULL, NULL), ERR_AUTH);
    /* Garbage in the hash column does not match either. */
    assert_int_equal(password_verify("$argon2id$garbage", "x"), ERR_AUTH);
}

static void test_over_long(void **state)
{
    char hash[STORE_HASH_MAX + 1];
    char *pw = malloc(PASSWORD_MAX + 2);

    (void)state;
    assert_non_null(pw);
    memset(pw, 'a', PASSWORD_MAX + 1);
    pw[PASSWORD_MAX + 1] = '\0';
    assert_int_equal(password_hash(pw, hash, sizeof(hash)), ERR_TOO_LONG);

    /* Exactly PASSWORD_MAX is fine, one more is refused at verify. */
    pw[PASSWORD_MAX] = '\0';
    assert_int_equal(password_hash(pw, hash, sizeof(hash)), ERR_OK);
    assert_int_equal(password_verify(hash, pw), ERR_OK);
    pw[PASSWORD_MAX] = 'a';
    assert_int_equal(password_verify(hash, pw), ERR_AUTH);
    free(pw);
}

/* An unknown user must cost about as much as a wrong password, or the
 * answer time says which user names exist. The threshold is loose (a
 * quarter) so a busy machine does not make this flaky; skipping argon2id
 * would be thousands of times faster. */
static void test_unknown_user_costs_a_verification(void **state)
{
    char hash[STORE_HASH_MAX + 1];
    double t0, real, first, later;

    (void)state;
    assert_int_equal(password_hash("secret", hash, sizeof(hash)), ERR_OK);
    t0 = now_seconds();
    assert_int_equal(password_verify(hash, "wrong"), ERR_AUTH);
    real = now_seconds() - t0;

    t0 = now_seconds();
    assert_int_equal(password_verify(NULL, "wrong"), ERR_AUTH);
    first = now_seconds() - t0;
    t0 = now_seconds();
    assert_int_equal(password_verify("", "wrong"), ERR_AUTH);
    later = now_seconds() - t0;

    assert_true(first > real / 4);
    assert_true(later > real / 4);
}

static void test_generate(void **state)
{
    char a[33], b[33];
    size_t i;

    (void)state;
    memset(a, 'X', sizeof(a));
    password_generate(a, 32);
    assert_int_equal(strlen(a), 32);
    for (i = 0; i < 32; i++) {
        assert_non_null(strchr("23456789abcdefghjkmnpqrstuvwxyz"
                               "ABCDEFGHJKLMNPQRSTUVWXYZ",
                               a[i]));
        assert_null(strchr("0O1lIio", a[i]));
    }
    password_generate(b, 32);
    assert_string_not_equal(a, b);
    password_generate(b, 0);
    assert_string_equal(b, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, so it sees the call that makes the dummy hash. */
        cmocka_unit_test(test_unknown_user_costs_a_verification),
        cmocka_unit_test(test_hash_and_verify),
        cmocka_unit_test(test_hash_rejects_bad_arguments),
        cmocka_unit_test(test_empty_hash_never_matches),
        cmocka_unit_test(test_over_long),
        cmocka_unit_test(test_generate),
    };

    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
