/*
 * Unit tests for src/common/vault.c: the key file (size, mode, exclusive
 * creation, refusal of unsafe modes) and sealing: round trip, and that a
 * wrong associated data, another key, any flipped byte or a truncated
 * blob does not open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"
#include "common/vault.h"

#define SEAL_OVERHEAD (1 + 24 + 16)

struct fixture {
    char dir[64];
    char key[96];
    struct vault *v;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/portcullis-vault-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->key, sizeof(f->key), "%s/vault.key", f->dir);
    if (vault_create_key(f->key) != ERR_OK ||
        vault_load(f->key, &f->v) != ERR_OK) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char path[128];

    vault_free(f->v);
    unlink(f->key);
    snprintf(path, sizeof(path), "%s/other.key", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void test_key_file(void **state)
{
    struct fixture *f = *state;
    struct stat st;

    assert_int_equal(stat(f->key, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 32);
    /* Never overwrites an existing key. */
    assert_int_equal(vault_create_key(f->key), ERR_EXISTS);
    assert_int_equal(stat(f->key, &st), 0);
    assert_int_equal(st.st_size, 32);
}

static void test_load_refuses_unsafe_mode(void **state)
{
    struct fixture *f = *state;
    struct vault *v = NULL;

    assert_int_equal(chmod(f->key, 0644), 0);
    assert_int_equal(vault_load(f->key, &v), ERR_CRYPTO);
    assert_null(v);
    assert_int_equal(chmod(f->key, 0640), 0);
    assert_int_equal(vault_load(f->key, &v), ERR_CRYPTO);
    assert_int_equal(chmod(f->key, 0602), 0);
    assert_int_equal(vault_load(f->key, &v), ERR_CRYPTO);
    assert_null(v);
    assert_int_equal(chmod(f->key, 0400), 0);
    assert_int_equal(vault_load(f->key, &v), ERR_OK);
    vault_free(v);
    assert_int_equal(chmod(f->key, 0600), 0);
}

static void test_load_refuses_wrong_size_and_missing(void **state)
{
    struct fixture *f = *state;
    struct vault *v = NULL;
    char path[128];
    uint8_t bytes[33] = {0};

    snprintf(path, sizeof(path), "%s/other.key", f->dir);
    assert_int_equal(util_write_file_excl(path, bytes, 31, 0600), ERR_OK);
    assert_int_equal(vault_load(path, &v), ERR_CRYPTO);
    assert_null(v);
    unlink(path);
    assert_int_equal(util_write_file_excl(path, bytes, 33, 0600), ERR_OK);
    assert_int_equal(vault_load(path, &v), ERR_CRYPTO);
    unlink(path);
    assert_int_equal(vault_load(path, &v), ERR_NOT_FOUND);
    assert_null(v);
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    static const char secret[] = "hunter2 and more";
    uint8_t *sealed = NULL, *sealed2 = NULL, *plain = NULL;
    size_t sealed_len = 0, sealed2_len = 0, plain_len = 0;

    assert_int_equal(vault_seal(f->v, "asset-password:A1",
                                (const uint8_t *)secret, strlen(secret),
                                &sealed, &sealed_len),
                     ERR_OK);
    assert_int_equal(sealed_len, strlen(secret) + SEAL_OVERHEAD);
    assert_int_equal(sealed[0], 1);
    assert_null(memmem(sealed, sealed_len, "hunter2", 7));

    assert_int_equal(vault_open(f->v, "asset-password:A1", sealed, sealed_len,
                                &plain, &plain_len),
                     ERR_OK);
    assert_int_equal(plain_len, strlen(secret));
    assert_memory_equal(plain, secret, plain_len);
    assert_int_equal(plain[plain_len], '\0');
    assert_string_equal((const char *)plain, secret);
    vault_secret_free(plain, plain_len);

    /* A random nonce each time: equal secrets do not look equal. */
    assert_int_equal(vault_seal(f->v, "asset-password:A1",
                                (const uint8_t *)secret, strlen(secret),
                                &sealed2, &sealed2_len),
                     ERR_OK);
    assert_memory_not_equal(sealed, sealed2, sealed_len);

    /* A key loaded again from the file opens it. */
    {
        struct vault *v2 = NULL;

        assert_int_equal(vault_load(f->key, &v2), ERR_OK);
        assert_int_equal(vault_open(v2, "asset-password:A1", sealed2,
                                    sealed2_len, &plain, &plain_len),
                         ERR_OK);
        assert_string_equal((const char *)plain, secret);
        vault_secret_free(plain, plain_len);
        vault_free(v2);
    }
    free(sealed);
    free(sealed2);
    vault_secret_free(NULL, 0);
}

static void test_empty_plaintext(void **state)
{
    struct fixture *f = *state;
    uint8_t *sealed = NULL, *plain = NULL;
    size_t sealed_len = 0, plain_len = 99;

    assert_int_equal(vault_seal(f->v, "x", NULL, 0, &sealed, &sealed_len),
                     ERR_OK);
    assert_int_equal(sealed_len, SEAL_OVERHEAD);
    assert_int_equal(
        vault_open(f->v, "x", sealed, sealed_len, &plain, &plain_len), ERR_OK);
    assert_int_equal(plain_len, 0);
    assert_string_equal((const char *)plain, "");
    vault_secret_free(plain, plain_len);
    free(sealed);
}

static void test_wrong_ad_or_key_fails(void **state)
{
    struct fixture *f = *state;
    struct vault *other = NULL;
    uint8_t *sealed = NULL, *plain = NULL;
    size_t sealed_len = 0, plain_len = 0;
    char path[128];

    assert_int_equal(vault_seal(f->v, "totp-seed:U1", (const uint8_t *)"seed",
                                4, &sealed, &sealed_len),
                     ERR_OK);
    assert_int_equal(vault_open(f->v, "totp-seed:U2", sealed, sealed_len,
                                &plain, &plain_len),
                     ERR_CRYPTO);
    assert_null(plain);
    assert_int_equal(
        vault_open(f->v, "", sealed, sealed_len, &plain, &plain_len),
        ERR_CRYPTO);

    snprintf(path, sizeof(path), "%s/other.key", f->dir);
    assert_int_equal(vault_create_key(path), ERR_OK);
    assert_int_equal(vault_load(path, &other), ERR_OK);
    assert_int_equal(vault_open(other, "totp-seed:U1", sealed, sealed_len,
                                &plain, &plain_len),
                     ERR_CRYPTO);
    vault_free(other);
    unlink(path);
    free(sealed);
}

static void test_tampered_byte_fails(void **state)
{
    struct fixture *f = *state;
    uint8_t *sealed = NULL, *plain = NULL;
    size_t sealed_len = 0, plain_len = 0, i;

    assert_int_equal(vault_seal(f->v, "ad", (const uint8_t *)"secret", 6,
                                &sealed, &sealed_len),
                     ERR_OK);
    /* Version, nonce, ciphertext and tag: any flipped bit is caught. */
    for (i = 0; i < sealed_len; i++) {
        sealed[i] ^= 0x01;
        assert_int_equal(
            vault_open(f->v, "ad", sealed, sealed_len, &plain, &plain_len),
            ERR_CRYPTO);
        assert_null(plain);
        assert_int_equal(plain_len, 0);
        sealed[i] ^= 0x01;
    }
    assert_int_equal(
        vault_open(f->v, "ad", sealed, sealed_len, &plain, &plain_len), ERR_OK);
    vault_secret_free(plain, plain_len);
    free(sealed);
}

static void test_truncated_fails(void **state)
{
    struct fixture *f = *state;
    uint8_t *sealed = NULL, *plain = NULL;
    size_t sealed_len = 0, plain_len = 0, n;

    assert_int_equal(vault_seal(f->v, "ad", (const uint8_t *)"secret", 6,
                                &sealed, &sealed_len),
                     ERR_OK);
    for (n = 0; n < sealed_len; n++) {
        assert_int_equal(vault_open(f->v, "ad", sealed, n, &plain, &plain_len),
                         ERR_CRYPTO);
        assert_null(plain);
    }
    free(sealed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_unsafe_mode, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_load_refuses_wrong_size_and_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_plaintext, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_ad_or_key_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tampered_byte_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_truncated_fails, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
