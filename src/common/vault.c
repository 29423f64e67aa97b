/*
 * The vault; see vault.h for the blob format and ownership.
 *
 * XChaCha20-Poly1305 (IETF) has a 24-byte nonce, large enough to pick at
 * random for every seal without counting, so no state beyond the key is
 * needed and several processes may seal with one key. The caller's
 * associated data binds a blob to the row and field it belongs to; the
 * version byte must be exactly VAULT_VERSION, so a later format cannot be
 * mistaken for this one.
 *
 * The key file is the one secret everything else hangs on. It is created
 * exclusively with mode 0600 and loaded only if no group or other
 * permission bit is set, and read straight into sodium_malloc'd memory
 * (guard pages, mlock, excluded from core dumps), which is then made
 * read-only. It never passes through an ordinary heap buffer.
 */
#include "common/vault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define VAULT_KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define VAULT_NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define VAULT_TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define VAULT_VERSION 1
#define VAULT_OVERHEAD (1 + VAULT_NONCE_LEN + VAULT_TAG_LEN)

struct vault {
    unsigned char key[VAULT_KEY_LEN];
};

int vault_create_key(const char *path)
{
    unsigned char key[VAULT_KEY_LEN];
    int r;

    if (path == NULL) {
        return ERR_INVALID;
    }
    if (sodium_init() < 0) {
        return ERR_CRYPTO;
    }
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    r = util_write_file_excl(path, key, sizeof(key), 0600);
    sodium_memzero(key, sizeof(key));
    return r;
}

int vault_load(const char *path, struct vault **out)
{
    struct vault *v = NULL;
    int r = ERR_OK;

    if (out != NULL) {
        *out = NULL;
    }
    if (path == NULL || out == NULL) {
        return ERR_INVALID;
    }
    if (sodium_init() < 0) {
        return ERR_CRYPTO;
    }
    if ((v = sodium_malloc(sizeof(*v))) == NULL) {
        return ERR_NOMEM;
    }
    /* Symlinks are followed (secret mounts use them); the checks apply to
     * the file itself. A missing file is the caller's to report, since
     * `init` expects it. */
    if ((r = util_read_key_file(path, "vault key", true, v->key,
                                sizeof(v->key))) != ERR_OK) {
        goto out;
    }
    if (sodium_mprotect_readonly(v) != 0) {
        r = ERR_CRYPTO;
        goto out;
    }
    *out = v;
    v = NULL;
out:
    sodium_free(v); /* wipes */
    return r;
}

void vault_free(struct vault *v)
{
    /* sodium_free makes the pages writable again and wipes them. */
    sodium_free(v);
}

int vault_seal(const struct vault *v, const char *ad, const uint8_t *plain,
               size_t plain_len, uint8_t **sealed, size_t *sealed_len)
{
    uint8_t *blob = NULL;
    unsigned long long clen = 0;
    size_t len;

    if (sealed != NULL) {
        *sealed = NULL;
    }
    if (sealed_len != NULL) {
        *sealed_len = 0;
    }
    if (v == NULL || ad == NULL || (plain == NULL && plain_len > 0) ||
        sealed == NULL || sealed_len == NULL) {
        return ERR_INVALID;
    }
    if (plain_len > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX ||
        plain_len > SIZE_MAX - VAULT_OVERHEAD) {
        return ERR_TOO_LONG;
    }
    len = plain_len + VAULT_OVERHEAD;
    if ((blob = malloc(len)) == NULL) {
        return ERR_NOMEM;
    }
    blob[0] = VAULT_VERSION;
    randombytes_buf(blob + 1, VAULT_NONCE_LEN);
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(
            blob + 1 + VAULT_NONCE_LEN, &clen, plain, plain_len,
            (const unsigned char *)ad, strlen(ad), NULL, blob + 1,
            v->key) != 0 ||
        clen != plain_len + VAULT_TAG_LEN) {
        free(blob);
        return ERR_CRYPTO;
    }
    *sealed = blob;
    *sealed_len = len;
    return ERR_OK;
}

int vault_open(const struct vault *v, const char *ad, const uint8_t *sealed,
               size_t sealed_len, uint8_t **plain, size_t *plain_len)
{
    uint8_t *p = NULL;
    unsigned long long mlen = 0;
    size_t len;

    if (plain != NULL) {
        *plain = NULL;
    }
    if (plain_len != NULL) {
        *plain_len = 0;
    }
    if (v == NULL || ad == NULL || sealed == NULL || plain == NULL ||
        plain_len == NULL) {
        return ERR_INVALID;
    }
    if (sealed_len < VAULT_OVERHEAD || sealed[0] != VAULT_VERSION) {
        return ERR_CRYPTO;
    }
    len = sealed_len - VAULT_OVERHEAD;
    if ((p = malloc(len + 1)) == NULL) {
        return ERR_NOMEM;
    }
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            p, &mlen, NULL, sealed + 1 + VAULT_NONCE_LEN,
            sealed_len - 1 - VAULT_NONCE_LEN, (const unsigned char *)ad,
            strlen(ad), sealed + 1, v->key) != 0 ||
        mlen != len) {
        vault_secret_free(p, len);
        return ERR_CRYPTO;
    }
    p[len] = '\0';
    *plain = p;
    *plain_len = len;
    return ERR_OK;
}

void vault_secret_free(uint8_t *plain, size_t plain_len)
{
    if (plain == NULL) {
        return;
    }
    sodium_memzero(plain, plain_len + 1);
    free(plain);
}

void vault_ad(char out[VAULT_AD_MAX], const char *kind, const char *id)
{
    snprintf(out, VAULT_AD_MAX, "%s:%s", kind, id);
}
