/*
 * The login grammar of the SSH and RDP proxies (SPEC §3):
 *
 *   login     = principal [ "/" site ] [ "?" totp ] "#" asset
 *   principal = username [ "@" domain ]
 *   site      = site name or path below /root ; absent => /root
 *   totp      = 6 digits
 *   asset     = asset ID (UUID) | asset name
 *
 * A pure function: bytes in, struct out, no allocation, no I/O. The input
 * is untrusted (it is the SSH user name a client sends before
 * authentication), so every field has a named maximum and control
 * characters are refused everywhere.
 */
#ifndef PORTCULLIS_LOGIN_H
#define PORTCULLIS_LOGIN_H

#include <stdbool.h>
#include <stddef.h>

#define LOGIN_MAX 1024       /* whole login string */
#define LOGIN_USER_MAX 64    /* username part */
#define LOGIN_DOMAIN_MAX 253 /* domain part */
#define LOGIN_SITE_MAX 256   /* site name or path */
#define LOGIN_ASSET_MAX 128  /* asset name or ID */
#define LOGIN_TOTP_LEN 6

struct login {
    char username[LOGIN_USER_MAX + 1];
    char domain[LOGIN_DOMAIN_MAX + 1]; /* "" if none */
    /* username or username@domain: the Portcullis user name */
    char principal[LOGIN_USER_MAX + 1 + LOGIN_DOMAIN_MAX + 1];
    char site[LOGIN_SITE_MAX + 1]; /* "" if none (=> /root) */
    char totp[LOGIN_TOTP_LEN + 1]; /* "" if none */
    char asset[LOGIN_ASSET_MAX + 1];
    bool asset_is_id; /* asset looks like a UUID */
};

/* Parses s (len bytes, need not be NUL-terminated). On failure returns
 * ERR_INVALID or ERR_TOO_LONG, zeroes *out and points *why at a static
 * one-line reason fit to show the user ("missing '#asset' in login",
 * "TOTP code must be 6 digits", ...). why may be NULL. */
int login_parse(const char *s, size_t len, struct login *out, const char **why);

#endif
