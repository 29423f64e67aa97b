/*
 * TOTP (RFC 6238, SHA-1, 30 s steps, 6 digits) via liboath.
 */
#ifndef PORTCULLIS_TOTP_H
#define PORTCULLIS_TOTP_H

#include <stddef.h>
#include <stdint.h>

#define TOTP_SECRET_LEN 20 /* bytes of a new seed */
#define TOTP_DIGITS 6
#define TOTP_STEP 30
#define TOTP_WINDOW 1 /* steps accepted either side of now */

void totp_new_secret(uint8_t secret[TOTP_SECRET_LEN]);
/* Base32 (RFC 4648, no padding) of the secret into out. */
int totp_base32(const uint8_t *secret, size_t len, char *out, size_t outlen);
/* otpauth://totp/ISSUER:USER?secret=...&issuer=ISSUER&digits=6&period=30 */
int totp_uri(const char *issuer, const char *user, const char *b32, char *out,
             size_t outlen);
/* Checks a 6-digit code at time now within +/-TOTP_WINDOW steps; on
 * success *step is the matched time step (now/30 +/- 1). The caller must
 * then make sure the step was not used before (store_user_totp_use).
 * ERR_INVALID if code is not exactly 6 digits, ERR_AUTH if it is wrong. */
int totp_check(const uint8_t *secret, size_t len, const char *code, int64_t now,
               int64_t *step);
/* The code for time t (tests and the CLI's self-check). */
int totp_generate(const uint8_t *secret, size_t len, int64_t t,
                  char out[TOTP_DIGITS + 1]);

#endif
