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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NTHASH_LEN 16
/* longest password and user+domain converted (UTF-8 bytes) */
#define NTHASH_TEXT_MAX 1024

/* RFC 1320 MD4 of len bytes. */
void nthash_md4(const uint8_t *in, size_t len, uint8_t out[NTHASH_LEN]);
/* How NTOWFv2 upper-cases the user name: FreeRDP's WinPR (xfreerdp,
 * Remmina) upper-cases ASCII letters only, Windows (mstsc) every letter
 * of the Basic Multilingual Plane that has an upper case. */
#define NTHASH_UPPER_NONE 0
#define NTHASH_UPPER_ASCII 1
#define NTHASH_UPPER_UNICODE 2
/* UTF-8 to UTF-16LE: ERR_OK and *outlen bytes, or ERR_INVALID for bytes
 * that are not UTF-8 (overlong forms, surrogates, beyond U+10FFFF) or
 * ERR_TOO_LONG when out is too small. upper: NTHASH_UPPER_*. */
int nthash_utf16le(const char *in, size_t len, int upper, uint8_t *out,
                   size_t cap, size_t *outlen);
/* NTOWFv1: MD4(UTF-16LE(password)). */
int nthash_v1(const char *password, uint8_t out[NTHASH_LEN]);
/* NTOWFv2 from the NT hash, for this user and domain as the client sent
 * them (UTF-8). */
int nthash_v2(const uint8_t nt[NTHASH_LEN], const char *user,
              const char *domain, uint8_t out[NTHASH_LEN]);
/* The same with the user name upper-cased the given way
 * (NTHASH_UPPER_ASCII is nthash_v2). */
int nthash_v2_upper(const uint8_t nt[NTHASH_LEN], const char *user,
                    const char *domain, int upper, uint8_t out[NTHASH_LEN]);

/* NTLMv2's proof (MS-NLMP §3.3.2): an NTLMv2 response is NTProofStr (16
 * bytes) then the client's blob (at least NTHASH_BLOB_MIN bytes: version,
 * time stamp, client challenge, AV pairs), and NTProofStr is HMAC-MD5
 * keyed with NTOWFv2 over the server's challenge and that blob. True when
 * resp proves v2 over challenge; the comparison is in constant time. */
#define NTHASH_CHALLENGE_LEN 8
#define NTHASH_BLOB_MIN 28
/* longest NTLMv2 response taken (a real one is 16 + 28 + the server's
 * AV pairs echoed back, a few hundred bytes) */
#define NTHASH_RESPONSE_MAX 4096
/* The client's NT response in NTLM messages as WinPR's server hands them
 * to its hash callback (the MIC value: NEGOTIATE, CHALLENGE and
 * AUTHENTICATE one after the other, MS-NLMP §2.2.1): the AUTHENTICATE
 * message is the last that starts with the signature and type 3, and its
 * NtChallengeResponseFields (length, maximum, offset from its start) name
 * the response. True and *resp, *len inside msgs[0..n); false if there is
 * no such message or the fields point outside it. Bounds only: what the
 * response proves is nthash_v2_proof_ok's to say. */
bool nthash_ntlm_response(const uint8_t *msgs, size_t n, const uint8_t **resp,
                          size_t *len);
bool nthash_v2_proof_ok(const uint8_t v2[NTHASH_LEN],
                        const uint8_t challenge[NTHASH_CHALLENGE_LEN],
                        const uint8_t *resp, size_t len);

#endif
