/*
 * TOTP second factor; see totp.h.
 *
 * liboath computes the RFC 6238 codes (HMAC-SHA-1, 30 s steps, 6 digits);
 * this file decides which codes count. totp_check() computes the code of
 * every step in the window and compares each with the given one using
 * sodium_memcmp, without stopping at the first match, so the answer time
 * does not tell which step (if any) matched. It reports the matched step so
 * the caller can record it in the store (store_user_totp_use), which
 * refuses a step that is not newer than the last one used: that is what
 * stops a code seen over someone's shoulder from being replayed.
 *
 * Every code we compute is wiped after use; seeds arrive already opened
 * from the vault and stay the caller's to wipe.
 */
#include "auth/totp.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <liboath/oath.h>
#include <sodium.h>

#include "common/err.h"

static bool totp_ready;

static int totp_init(void)
{
    if (totp_ready) {
        return ERR_OK;
    }
    if (sodium_init() < 0 || oath_init() != OATH_OK) {
        return ERR_CRYPTO;
    }
    totp_ready = true;
    return ERR_OK;
}

void totp_new_secret(uint8_t secret[TOTP_SECRET_LEN])
{
    /* randombytes works (or aborts) even if sodium_init fails. */
    if (sodium_init() < 0) {
        secret[0] = 0;
    }
    randombytes_buf(secret, TOTP_SECRET_LEN);
}

int totp_base32(const uint8_t *secret, size_t len, char *out, size_t outlen)
{
    char *enc = NULL;
    size_t enclen = 0, i, n = 0;
    int r = ERR_OK;

    if (out == NULL || outlen == 0) {
        return ERR_INVALID;
    }
    out[0] = '\0';
    if (secret == NULL || len == 0) {
        return ERR_INVALID;
    }
    if ((r = totp_init()) != ERR_OK) {
        return r;
    }
    if (oath_base32_encode((const char *)secret, len, &enc, &enclen) !=
        OATH_OK) {
        return ERR_NOMEM;
    }
    for (i = 0; i < enclen && enc[i] != '='; i++) {
        if (n + 1 >= outlen) {
            r = ERR_TOO_LONG;
            goto out;
        }
        out[n++] = enc[i];
    }
    out[n] = '\0';
out:
    if (r != ERR_OK) {
        sodium_memzero(out, outlen);
        out[0] = '\0';
    }
    sodium_memzero(enc, enclen);
    free(enc);
    return r;
}

/* Appends s to out at *n, percent-encoding all but RFC 3986 unreserved
 * characters (so "bob@contoso.com" becomes "bob%40contoso.com"). */
static int totp_put_escaped(char *out, size_t outlen, size_t *n, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                     (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                     c == '_' || c == '~';

        if (*n + (plain ? 1 : 3) >= outlen) {
            return ERR_TOO_LONG;
        }
        if (plain) {
            out[(*n)++] = (char)c;
        } else {
            out[(*n)++] = '%';
            out[(*n)++] = hex[c >> 4];
            out[(*n)++] = hex[c & 0x0f];
        }
    }
    out[*n] = '\0';
    return ERR_OK;
}

static int totp_put(char *out, size_t outlen, size_t *n, const char *s)
{
    size_t len = strlen(s);

    if (*n + len >= outlen) {
        return ERR_TOO_LONG;
    }
    memcpy(out + *n, s, len + 1);
    *n += len;
    return ERR_OK;
}

int totp_uri(const char *issuer, const char *user, const char *b32, char *out,
             size_t outlen)
{
    char tail[48];
    size_t n = 0;
    const char *p;
    int r;

    if (out == NULL || outlen == 0) {
        return ERR_INVALID;
    }
    out[0] = '\0';
    if (issuer == NULL || user == NULL || b32 == NULL || issuer[0] == '\0' ||
        user[0] == '\0' || b32[0] == '\0') {
        return ERR_INVALID;
    }
    for (p = b32; *p != '\0'; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '2' && *p <= '7'))) {
            return ERR_INVALID;
        }
    }
    snprintf(tail, sizeof(tail), "&digits=%d&period=%d", TOTP_DIGITS,
             TOTP_STEP);
    if ((r = totp_put(out, outlen, &n, "otpauth://totp/")) ||
        (r = totp_put_escaped(out, outlen, &n, issuer)) ||
        (r = totp_put(out, outlen, &n, ":")) ||
        (r = totp_put_escaped(out, outlen, &n, user)) ||
        (r = totp_put(out, outlen, &n, "?secret=")) ||
        (r = totp_put(out, outlen, &n, b32)) ||
        (r = totp_put(out, outlen, &n, "&issuer=")) ||
        (r = totp_put_escaped(out, outlen, &n, issuer)) ||
        (r = totp_put(out, outlen, &n, tail))) {
        /* The URI holds the seed: leave nothing of it behind. */
        sodium_memzero(out, outlen);
        return r;
    }
    return ERR_OK;
}

/* The code for one time step. */
static int totp_step_code(const uint8_t *secret, size_t len, int64_t step,
                          char out[TOTP_DIGITS + 1])
{
    if (oath_totp_generate2((const char *)secret, len,
                            (time_t)(step * TOTP_STEP), TOTP_STEP, 0,
                            TOTP_DIGITS, 0, out) != OATH_OK) {
        sodium_memzero(out, TOTP_DIGITS + 1);
        return ERR_CRYPTO;
    }
    return ERR_OK;
}

int totp_generate(const uint8_t *secret, size_t len, int64_t t,
                  char out[TOTP_DIGITS + 1])
{
    int r;

    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, TOTP_DIGITS + 1);
    if (secret == NULL || len == 0 || t < 0) {
        return ERR_INVALID;
    }
    if ((r = totp_init()) != ERR_OK) {
        return r;
    }
    return totp_step_code(secret, len, t / TOTP_STEP, out);
}

static bool totp_code_valid(const char *code)
{
    size_t i;

    for (i = 0; i < TOTP_DIGITS; i++) {
        if (code[i] < '0' || code[i] > '9') {
            return false;
        }
    }
    return code[TOTP_DIGITS] == '\0';
}

int totp_check(const uint8_t *secret, size_t len, const char *code, int64_t now,
               int64_t *step)
{
    char want[TOTP_DIGITS + 1];
    int64_t base, s, found = -1;
    int r = ERR_OK;

    if (step != NULL) {
        *step = 0;
    }
    if (code == NULL || !totp_code_valid(code)) {
        return ERR_INVALID;
    }
    if (secret == NULL || len == 0 || now < 0 || step == NULL) {
        return ERR_INVALID;
    }
    if ((r = totp_init()) != ERR_OK) {
        return r;
    }
    base = now / TOTP_STEP;
    /* Every step is computed and compared; if two steps share the code,
     * the newest wins, so the replay guard blocks as much as it can. */
    for (s = base - TOTP_WINDOW; s <= base + TOTP_WINDOW; s++) {
        if (s < 0) {
            continue;
        }
        if ((r = totp_step_code(secret, len, s, want)) != ERR_OK) {
            goto out;
        }
        if (sodium_memcmp(want, code, TOTP_DIGITS) == 0) {
            found = s;
        }
    }
    if (found < 0) {
        r = ERR_AUTH;
        goto out;
    }
    *step = found;
out:
    sodium_memzero(want, sizeof(want));
    return r;
}
