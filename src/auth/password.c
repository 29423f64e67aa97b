/*
 * Password hashing; see password.h.
 *
 * Passwords are stored only as argon2id strings from libsodium's
 * crypto_pwhash_str (OPSLIMIT_INTERACTIVE, MEMLIMIT_INTERACTIVE): the
 * string carries its own salt and parameters, so stronger settings later
 * do not invalidate old hashes.
 *
 * A login for an unknown user (or a user without a password) must cost the
 * same as a wrong password for a known one, or the answer time tells an
 * attacker which user names exist. password_verify() therefore always runs
 * argon2id once: against the stored hash, or against a dummy hash of a
 * random password. The dummy is made lazily on the first unknown-user
 * login, and that call spends its argon2id run making the dummy instead of
 * verifying against it, so even the first call costs one run, not two.
 */
#include "auth/password.h"

#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"

#define PASSWORD_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define PASSWORD_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

/* No 0/O/o, 1/l/I/i: generated passwords get read aloud and typed. */
static const char password_alphabet[] = "23456789"
                                        "abcdefghjkmnpqrstuvwxyz"
                                        "ABCDEFGHJKLMNPQRSTUVWXYZ";

static char password_dummy[crypto_pwhash_STRBYTES];
static bool password_dummy_ready;

/* Length of s if it is at most PASSWORD_MAX, without reading further. */
static bool password_len_ok(const char *s, size_t *len)
{
    *len = strnlen(s, PASSWORD_MAX + 1);
    return *len <= PASSWORD_MAX;
}

static int password_hash_raw(const char *password, size_t len, char *out)
{
    if (sodium_init() < 0) {
        return ERR_CRYPTO;
    }
    if (crypto_pwhash_str_alg(out, password, len, PASSWORD_OPSLIMIT,
                              PASSWORD_MEMLIMIT,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        return ERR_NOMEM; /* argon2id's only failure is its memory */
    }
    return ERR_OK;
}

int password_hash(const char *password, char *out, size_t outlen)
{
    size_t len;
    int r;

    if (out == NULL || outlen < crypto_pwhash_STRBYTES) {
        return ERR_INVALID;
    }
    memset(out, 0, outlen);
    if (password == NULL || password[0] == '\0') {
        return ERR_INVALID;
    }
    if (!password_len_ok(password, &len)) {
        return ERR_TOO_LONG;
    }
    if ((r = password_hash_raw(password, len, out)) != ERR_OK) {
        memset(out, 0, outlen);
    }
    return r;
}

/* Spends one argon2id run and fails: the unknown-user path. */
static int password_verify_dummy(const char *password, size_t len)
{
    char random_pw[33];
    uint8_t seed[16];
    int r;

    if (password_dummy_ready) {
        /* Fails by design; only the time it takes matters. */
        r = crypto_pwhash_str_verify(password_dummy, password, len);
        (void)r;
        return ERR_AUTH;
    }
    randombytes_buf(seed, sizeof(seed));
    sodium_bin2hex(random_pw, sizeof(random_pw), seed, sizeof(seed));
    r = password_hash_raw(random_pw, strlen(random_pw), password_dummy);
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(random_pw, sizeof(random_pw));
    if (r == ERR_OK) {
        password_dummy_ready = true;
    }
    return ERR_AUTH;
}

int password_verify(const char *hash, const char *password)
{
    size_t len;

    if (password == NULL) {
        password = "";
    }
    /* The length limit is the same for every user, so failing early here
     * tells nothing about who exists, and it keeps huge inputs cheap. */
    if (!password_len_ok(password, &len)) {
        return ERR_AUTH;
    }
    if (sodium_init() < 0) {
        return ERR_AUTH;
    }
    if (hash == NULL || hash[0] == '\0') {
        return password_verify_dummy(password, len);
    }
    if (crypto_pwhash_str_verify(hash, password, len) != 0) {
        return ERR_AUTH;
    }
    return ERR_OK;
}

/* out holds len + 1 bytes: len characters and a NUL. */
void password_generate(char *out, size_t len)
{
    size_t i;

    if (out == NULL) {
        return;
    }
    /* randombytes works (or aborts) even if sodium_init fails. */
    if (sodium_init() < 0) {
        out[0] = '\0';
    }
    for (i = 0; i < len; i++) {
        out[i] = password_alphabet[randombytes_uniform(
            (uint32_t)(sizeof(password_alphabet) - 1))];
    }
    out[len] = '\0';
}
