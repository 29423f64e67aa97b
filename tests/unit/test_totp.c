/*
 * Unit tests for src/auth/totp.c: RFC 6238 vectors, the +/-1 step window
 * and the step it reports (the replay guard depends on it), strict code
 * syntax, base32 and the otpauth:// URI that authenticator apps scan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/totp.h"
#include "common/err.h"

/* RFC 6238 appendix B, SHA-1 seed. */
static const uint8_t rfc_seed[] = "12345678901234567890";
#define RFC_SEED_LEN 20

static void test_rfc6238_vectors(void **state)
{
    static const struct {
        int64_t t;
        const char *code;
    } v[] = {
        {59, "287082"},         {1111111109, "081804"}, {1111111111, "050471"},
        {1234567890, "005924"}, {2000000000, "279037"},
    };
    char out[TOTP_DIGITS + 1];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(totp_generate(rfc_seed, RFC_SEED_LEN, v[i].t, out),
                         ERR_OK);
        assert_string_equal(out, v[i].code);
    }
}

static void test_check_exact_step(void **state)
{
    int64_t step = -1;

    (void)state;
    assert_int_equal(
        totp_check(rfc_seed, RFC_SEED_LEN, "005924", 1234567890, &step),
        ERR_OK);
    assert_int_equal(step, 1234567890 / 30);
}

static void test_check_window(void **state)
{
    const int64_t now = 1234567890; /* step 41152263 */
    char code[TOTP_DIGITS + 1];
    int64_t step;

    (void)state;
    /* One step ahead (client clock fast) and one behind are accepted and
     * report the step the code belongs to. */
    assert_int_equal(totp_generate(rfc_seed, RFC_SEED_LEN, now + 30, code),
                     ERR_OK);
    step = 0;
    assert_int_equal(totp_check(rfc_seed, RFC_SEED_LEN, code, now, &step),
                     ERR_OK);
    assert_int_equal(step, now / 30 + 1);

    assert_int_equal(totp_generate(rfc_seed, RFC_SEED_LEN, now - 30, code),
                     ERR_OK);
    step = 0;
    assert_int_equal(totp_check(rfc_seed, RFC_SEED_LEN, code, now, &step),
                     ERR_OK);
    assert_int_equal(step, now / 30 - 1);

    /* Two steps either side are refused. */
    assert_int_equal(totp_generate(rfc_seed, RFC_SEED_LEN, now + 60, code),
                     ERR_OK);
    assert_int_equal(totp_check(rfc_seed, RFC_SEED_LEN, code, now, &step),
                     ERR_AUTH);
    assert_int_equal(totp_generate(rfc_seed, RFC_SEED_LEN, now - 60, code),
                     ERR_OK);
    assert_int_equal(totp_check(rfc_seed, RFC_SEED_LEN, code, now, &step),
                     ERR_AUTH);
}

static void test_check_wrong_code_and_seed(void **state)
{
    static const uint8_t other[RFC_SEED_LEN] = {1, 2, 3};
    int64_t step;

    (void)state;
    /* 005924 is right at 1234567890 for rfc_seed only. */
    assert_int_equal(
        totp_check(rfc_seed, RFC_SEED_LEN, "005925", 1234567890, &step),
        ERR_AUTH);
    assert_int_equal(
        totp_check(other, sizeof(other), "005924", 1234567890, &step),
        ERR_AUTH);
}

static void test_check_code_syntax(void **state)
{
    static const char *const bad[] = {
        "",        "12345",   "1234567", "12345a",   "a12345",
        " 12345",  "12345 ",  "12 345",  "+12345",   "-12345",
        "123\n45", "１23456", "0x1234",  "123456\n",
    };
    int64_t step;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            totp_check(rfc_seed, RFC_SEED_LEN, bad[i], 1234567890, &step),
            ERR_INVALID);
    }
    assert_int_equal(
        totp_check(rfc_seed, RFC_SEED_LEN, NULL, 1234567890, &step),
        ERR_INVALID);
}

static void test_new_secret(void **state)
{
    uint8_t a[TOTP_SECRET_LEN], b[TOTP_SECRET_LEN];

    (void)state;
    totp_new_secret(a);
    totp_new_secret(b);
    assert_memory_not_equal(a, b, TOTP_SECRET_LEN);
}

static void test_base32(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(totp_base32(rfc_seed, RFC_SEED_LEN, out, sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    /* RFC 4648 vectors, with the padding stripped. */
    assert_int_equal(totp_base32((const uint8_t *)"f", 1, out, sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "MY");
    assert_int_equal(
        totp_base32((const uint8_t *)"foobar", 6, out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "MZXW6YTBOI");
    /* 32 characters need 33 bytes. */
    assert_int_equal(totp_base32(rfc_seed, RFC_SEED_LEN, out, 32),
                     ERR_TOO_LONG);
    assert_int_equal(totp_base32(rfc_seed, RFC_SEED_LEN, out, 33), ERR_OK);
    assert_int_equal(totp_base32(rfc_seed, 0, out, sizeof(out)), ERR_INVALID);
}

static void test_uri(void **state)
{
    char out[256];

    (void)state;
    assert_int_equal(totp_uri("Portcullis", "bwilliams",
                              "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", out,
                              sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "otpauth://totp/Portcullis:bwilliams"
                             "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                             "&issuer=Portcullis&digits=6&period=30");

    /* '@', spaces and ':' in names are percent-encoded. */
    assert_int_equal(totp_uri("ACME Corp", "bob@contoso.com", "MZXW6YTBOI", out,
                              sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "otpauth://totp/ACME%20Corp:bob%40contoso.com"
                             "?secret=MZXW6YTBOI"
                             "&issuer=ACME%20Corp&digits=6&period=30");
    assert_int_equal(totp_uri("a:b&c", "u/v?w", "MZXW6YTBOI", out, sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "otpauth://totp/a%3Ab%26c:u%2Fv%3Fw"
                             "?secret=MZXW6YTBOI"
                             "&issuer=a%3Ab%26c&digits=6&period=30");
}

static void test_uri_errors(void **state)
{
    char out[256];

    (void)state;
    assert_int_equal(totp_uri("P", "u", "MZXW6YTBOI=", out, sizeof(out)),
                     ERR_INVALID);
    assert_int_equal(totp_uri("P", "u", "mzxw6ytboi", out, sizeof(out)),
                     ERR_INVALID);
    assert_int_equal(totp_uri("P", "", "MZXW6YTBOI", out, sizeof(out)),
                     ERR_INVALID);
    assert_int_equal(totp_uri(NULL, "u", "MZXW6YTBOI", out, sizeof(out)),
                     ERR_INVALID);
    assert_int_equal(totp_uri("P", "u", "MZXW6YTBOI", out, 40), ERR_TOO_LONG);
    /* Nothing of the seed is left in a buffer that was too small. */
    assert_null(strstr(out, "MZXW"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6238_vectors),
        cmocka_unit_test(test_check_exact_step),
        cmocka_unit_test(test_check_window),
        cmocka_unit_test(test_check_wrong_code_and_seed),
        cmocka_unit_test(test_check_code_syntax),
        cmocka_unit_test(test_new_secret),
        cmocka_unit_test(test_base32),
        cmocka_unit_test(test_uri),
        cmocka_unit_test(test_uri_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
