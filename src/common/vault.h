/*
 * The vault: seals secrets at rest (vaulted asset logins, TOTP seeds) with
 * XChaCha20-Poly1305 (libsodium) under one 32-byte key kept in a file of
 * mode 0600 in the data directory.
 *
 * Each sealed blob is: version byte (1) | 24-byte random nonce | ciphertext
 * with tag. The caller passes associated data naming what the secret
 * belongs to (e.g. "asset-password:<asset id>"), so a sealed value copied
 * into another row or field does not open.
 *
 * Ownership: vault_load() returns a struct vault kept in locked memory and
 * freed with vault_free() (wiped). vault_seal/vault_open return heap
 * buffers the caller frees; vault_open's plaintext must be wiped with
 * sodium_memzero before free (use vault_secret_free).
 */
#ifndef PORTCULLIS_VAULT_H
#define PORTCULLIS_VAULT_H

#include <stddef.h>
#include <stdint.h>

struct vault;

/* The associated data of each kind of sealed secret, "<kind>:<row id>",
 * spelled here once for the code that seals and the code that opens. */
#define VAULT_AD_MAX 64
#define VAULT_AD_TOTP "totp"
#define VAULT_AD_ASSET_PASSWORD "asset-password"
#define VAULT_AD_ASSET_KEY "asset-key"
#define VAULT_AD_PEER_TOKEN "peer-token"
#define VAULT_AD_USER_NTHASH "user-nthash"
void vault_ad(char out[VAULT_AD_MAX], const char *kind, const char *id);

/* Creates a new random key file (O_EXCL, mode 0600). */
int vault_create_key(const char *path);
int vault_load(const char *path, struct vault **out);
void vault_free(struct vault *v);
int vault_seal(const struct vault *v, const char *ad, const uint8_t *plain,
               size_t plain_len, uint8_t **sealed, size_t *sealed_len);
/* The plaintext gets one extra NUL byte after plain_len (not counted), so
 * text secrets can be used as C strings. ERR_CRYPTO if it does not open. */
int vault_open(const struct vault *v, const char *ad, const uint8_t *sealed,
               size_t sealed_len, uint8_t **plain, size_t *plain_len);
/* Wipes and frees a plaintext from vault_open (NULL-safe). */
void vault_secret_free(uint8_t *plain, size_t plain_len);

#endif
