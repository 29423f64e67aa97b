/*
 * NT hashes for the RDP proxy's NLA front (docs/rdp.md).
 *
 * NTLM, which CredSSP (NLA) runs, cannot be checked against an argon2id
 * hash: the server side needs the user's NT hash, MD4 of the password in
 * UTF-16LE (MS-NLMP §3.3.1 NTOWFv1), kept sealed in the vault. From it the
 * monitor derives the per-name key NTLMv2 works with, NTOWFv2 =
 * HMAC-MD5(NT hash, UTF-16LE(UPPER(user) || domain)), and hands only that
 * to the session child.
 *
 * Pure functions: bytes in, bytes out; MD4 is our own (OpenSSL 3 keeps it
 * in its legacy provider), checked against RFC 1320's test suite.
 */
#ifndef PORTCULLIS_NTHASH_H
#define PORTCULLIS_NTHASH_H

#include <stddef.h>
#include <stdint.h>

#define NTHASH_LEN 16
/* longest password and user+domain converted (UTF-8 bytes) */
#define NTHASH_TEXT_MAX 1024

/* RFC 1320 MD4 of len bytes. */
void nthash_md4(const uint8_t *in, size_t len, uint8_t out[NTHASH_LEN]);
/* UTF-8 to UTF-16LE: ERR_OK and *outlen bytes, or ERR_INVALID for bytes
 * that are not UTF-8 (overlong forms, surrogates, beyond U+10FFFF) or
 * ERR_TOO_LONG when out is too small. upper: ASCII letters upper-cased
 * (what NTOWFv2 does to the user name). */
int nthash_utf16le(const char *in, size_t len, int upper, uint8_t *out,
                   size_t cap, size_t *outlen);
/* NTOWFv1: MD4(UTF-16LE(password)). */
int nthash_v1(const char *password, uint8_t out[NTHASH_LEN]);
/* NTOWFv2 from the NT hash, for this user and domain as the client sent
 * them (UTF-8). */
int nthash_v2(const uint8_t nt[NTHASH_LEN], const char *user,
              const char *domain, uint8_t out[NTHASH_LEN]);

#endif
