/*
 * Password hashing with argon2id (libsodium crypto_pwhash_str).
 */
#ifndef PORTCULLIS_PASSWORD_H
#define PORTCULLIS_PASSWORD_H

#include <stddef.h>

#define PASSWORD_MAX 1024 /* longest password accepted anywhere */

/* out must hold STORE_HASH_MAX + 1 (crypto_pwhash_STRBYTES) bytes. */
int password_hash(const char *password, char *out, size_t outlen);
/* ERR_OK if password matches hash, ERR_AUTH otherwise. When hash is NULL
 * or empty (unknown user, no password set) it still spends the time of a
 * real verification against a dummy hash and returns ERR_AUTH, so timing
 * does not reveal which user names exist. */
int password_verify(const char *hash, const char *password);
/* A random password of len characters from an unambiguous alphabet;
 * writes len + 1 bytes (the characters and a NUL). */
void password_generate(char *out, size_t len);

#endif
