/*
 * Machine secrets: agent credential secrets (and other random secrets that
 * no person chooses), hashed with argon2id at libsodium's minimum cost.
 *
 * A secret made by secret_generate() has 256 bits of entropy, so a slow
 * hash adds nothing against guessing; what it would add is 10,000 slow
 * verifications when every agent reconnects after a server restart. The
 * hash is still argon2id (crypto_pwhash_str_alg, OPSLIMIT_MIN /
 * MEMLIMIT_MIN), so a stolen store never yields a usable secret, and
 * verification is libsodium's (constant time in the secret).
 */
#ifndef PORTCULLIS_SECRET_H
#define PORTCULLIS_SECRET_H

#include <stddef.h>

#define SECRET_CHARS 43 /* base64url of 32 random bytes, no padding */

/* Writes a new random secret (SECRET_CHARS characters and a NUL). */
void secret_generate(char out[SECRET_CHARS + 1]);
/* out must hold STORE_HASH_MAX + 1 bytes. ERR_OK or ERR_NOMEM. */
int secret_hash(const char *secret, char *out, size_t outlen);
/* ERR_OK if secret matches hash, ERR_AUTH otherwise (also for an empty or
 * malformed hash, after the same work as a real check). */
int secret_verify(const char *hash, const char *secret);

#endif
