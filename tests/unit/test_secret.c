/*
 * Unit tests for src/auth/secret.c: generated secrets (length, alphabet,
 * no repeats), argon2id at libsodium's minimum cost (the parameters in
 * the encoded string), verification (right, wrong, empty, NULL), hashes
 * that cannot be checked (empty, damaged, another algorithm) refused after
 * the work of a real check, and the argument checks of secret_hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth/password.h"
#include "common/secret.h"
#include "common/err.h"
#include "store/store.h"

static void test_generate(void **state)
{
    char a[SECRET_CHARS + 1], b[SECRET_CHARS + 1];
    unsigned char raw[64];
    size_t rawlen = 0;

    (void)state;
    memset(a, 'x', sizeof(a));
    secret_generate(a);
    secret_generate(b);
    assert_int_equal(strlen(a), SECRET_CHARS);
    assert_string_not_equal(a, b);
    for (size_t i = 0; i < SECRET_CHARS; i++) {
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
                               "vwxyz0123456789-_",
                               a[i]));
    }
    /* 32 bytes of base64url without padding */
    assert_int_equal(
        sodium_base642bin(raw, sizeof(raw), a, strlen(a), NULL, &rawlen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING),
        0);
    assert_int_equal(rawlen, 32);
}

static void test_hash_and_verify(void **state)
{
    char secret[SECRET_CHARS + 1], hash[STORE_HASH_MAX + 1];
    char hash2[STORE_HASH_MAX + 1];

    (void)state;
    secret_generate(secret);
    assert_int_equal(secret_hash(secret, hash, sizeof(hash)), ERR_OK);
    /* argon2id, one pass over 8 KiB: libsodium's minimum */
    assert_true(strncmp(hash, "$argon2id$v=19$m=8,t=1,p=1$", 27) == 0);
    assert_int_equal(secret_verify(hash, secret), ERR_OK);
    secret[0] = secret[0] == 'A' ? 'B' : 'A';
    assert_int_equal(secret_verify(hash, secret), ERR_AUTH);
    assert_int_equal(secret_verify(hash, ""), ERR_AUTH);
    assert_int_equal(secret_verify(hash, NULL), ERR_AUTH);
    /* a fresh salt every time */
    secret[0] = secret[0] == 'A' ? 'B' : 'A';
    assert_int_equal(secret_hash(secret, hash2, sizeof(hash2)), ERR_OK);
    assert_string_not_equal(hash, hash2);
    assert_int_equal(secret_verify(hash2, secret), ERR_OK);
}

static void test_unusable_hashes(void **state)
{
    char secret[SECRET_CHARS + 1], hash[STORE_HASH_MAX + 1];
    char pwhash[STORE_HASH_MAX + 1];

    (void)state;
    secret_generate(secret);
    assert_int_equal(secret_hash(secret, hash, sizeof(hash)), ERR_OK);
    /* an unknown credential: twice, so the dummy is made and then used */
    assert_int_equal(secret_verify("", secret), ERR_AUTH);
    assert_int_equal(secret_verify(NULL, secret), ERR_AUTH);
    assert_int_equal(secret_verify("", secret), ERR_AUTH);
    assert_int_equal(secret_verify("$argon2id$garbage", secret), ERR_AUTH);
    assert_int_equal(secret_verify("plain text", secret), ERR_AUTH);
    /* cut short */
    hash[strlen(hash) - 10] = '\0';
    assert_int_equal(secret_verify(hash, secret), ERR_AUTH);
    /* a password hash (other parameters) still verifies */
    assert_int_equal(password_hash(secret, pwhash, sizeof(pwhash)), ERR_OK);
    assert_int_equal(secret_verify(pwhash, secret), ERR_OK);
    assert_int_equal(secret_verify(pwhash, "other"), ERR_AUTH);
}

static void test_hash_arguments(void **state)
{
    char hash[STORE_HASH_MAX + 1], small[64];
    char *big = malloc(2000);

    (void)state;
    assert_non_null(big);
    assert_int_equal(secret_hash("", hash, sizeof(hash)), ERR_INVALID);
    assert_int_equal(secret_hash(NULL, hash, sizeof(hash)), ERR_INVALID);
    assert_int_equal(secret_hash("s", small, sizeof(small)), ERR_INVALID);
    assert_int_equal(secret_hash("s", NULL, 0), ERR_INVALID);
    memset(big, 'b', 1999);
    big[1999] = '\0';
    assert_int_equal(secret_hash(big, hash, sizeof(hash)), ERR_TOO_LONG);
    assert_string_equal(hash, "");
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_hash_and_verify),
        cmocka_unit_test(test_unusable_hashes),
        cmocka_unit_test(test_hash_arguments),
    };

    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
