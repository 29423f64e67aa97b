/*
 * Machine secrets; see secret.h for why the cost is libsodium's minimum.
 *
 * A secret is 32 bytes from randombytes_buf() in unpadded base64url, so it
 * is safe in a config file, on a command line and in an SSH password
 * field. The hash is an argon2id string from crypto_pwhash_str_alg at
 * OPSLIMIT_MIN / MEMLIMIT_MIN (one pass over 8 KiB): microseconds, not the
 * tenth of a second a person's password gets.
 *
 * secret_verify() spends one argon2id run whatever it is given. A hash
 * that libsodium cannot parse (empty: an unknown credential ID; or
 * damaged) is replaced by a dummy hash of a random secret, made on first
 * need by a run of its own, so answer times do not tell which credential
 * IDs exist.
 */
#include "common/secret.h"

#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"

#define SECRET_BYTES 32
#define SECRET_OPSLIMIT crypto_pwhash_argon2id_OPSLIMIT_MIN
#define SECRET_MEMLIMIT crypto_pwhash_argon2id_MEMLIMIT_MIN
/* Longest secret verify looks at: far above SECRET_CHARS, so an agent
 * configured with a mangled secret still just fails. */
#define SECRET_INPUT_MAX 1024

static char secret_dummy[crypto_pwhash_STRBYTES];
static bool secret_dummy_ready;

void secret_generate(char out[SECRET_CHARS + 1])
{
    unsigned char raw[SECRET_BYTES];

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, SECRET_CHARS + 1, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
}

static int secret_hash_raw(const char *secret, size_t len, char *out)
{
    if (crypto_pwhash_str_alg(out, secret, len, SECRET_OPSLIMIT,
                              SECRET_MEMLIMIT,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        return ERR_NOMEM; /* argon2id's only failure is its memory */
    }
    return ERR_OK;
}

int secret_hash(const char *secret, char *out, size_t outlen)
{
    size_t len;
    int r;

    if (out == NULL || outlen < crypto_pwhash_STRBYTES) {
        return ERR_INVALID;
    }
    memset(out, 0, outlen);
    if (secret == NULL || secret[0] == '\0') {
        return ERR_INVALID;
    }
    if ((len = strnlen(secret, SECRET_INPUT_MAX + 1)) > SECRET_INPUT_MAX) {
        return ERR_TOO_LONG;
    }
    if ((r = secret_hash_raw(secret, len, out)) != ERR_OK) {
        memset(out, 0, outlen);
    }
    return r;
}

/* One argon2id run that fails: for a hash that cannot be checked. */
static int secret_verify_dummy(const char *secret, size_t len)
{
    char random[SECRET_CHARS + 1];

    if (!secret_dummy_ready) {
        /* This call's run makes the dummy; later ones verify against it. */
        secret_generate(random);
        if (secret_hash_raw(random, strlen(random), secret_dummy) == ERR_OK) {
            secret_dummy_ready = true;
        }
        sodium_memzero(random, sizeof(random));
        return ERR_AUTH;
    }
    if (crypto_pwhash_str_verify(secret_dummy, secret, len) == 0) {
        return ERR_AUTH; /* cannot happen: nobody knows the dummy's secret */
    }
    return ERR_AUTH;
}

int secret_verify(const char *hash, const char *secret)
{
    size_t len = 0;
    bool usable;

    if (secret == NULL) {
        secret = "";
    }
    len = strnlen(secret, SECRET_INPUT_MAX + 1);
    /* -1: not an argon2id string libsodium can parse. 0 or 1 (other
     * parameters than ours) are both hashes it can verify. */
    usable = hash != NULL && hash[0] != '\0' &&
             strnlen(hash, crypto_pwhash_STRBYTES) < crypto_pwhash_STRBYTES &&
             crypto_pwhash_argon2id_str_needs_rehash(hash, SECRET_OPSLIMIT,
                                                     SECRET_MEMLIMIT) >= 0;
    if (!usable || len > SECRET_INPUT_MAX || len == 0) {
        return secret_verify_dummy(secret, len > SECRET_INPUT_MAX ? 0 : len);
    }
    return crypto_pwhash_str_verify(hash, secret, len) == 0 ? ERR_OK : ERR_AUTH;
}
