/*
 * Text the RDP proxy takes from FreeRDP: user names, domains and
 * passwords arrive as UTF-16LE from the client (NTLM, CredSSP) and go to
 * the monitor as UTF-8; an asset's vaulted login "DOMAIN\user" is split
 * for the target. Pure functions, unit-tested (test_rdp_text) and fuzzed
 * (fuzz_rdp_text).
 */
#ifndef PORTCULLIS_RDP_TEXT_H
#define PORTCULLIS_RDP_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Longest UTF-8 result accepted (a login is at most 1024 bytes). */
#define RDP_TEXT_MAX 1024

/*
 * n UTF-16 code units (little-endian bytes, so alignment does not
 * matter) to NUL-terminated UTF-8 in out (cap bytes). ERR_OK; ERR_INVALID
 * for a lone surrogate or a NUL unit; ERR_TOO_LONG when it does not fit.
 * On failure out is "" (when cap > 0).
 */
int rdp_utf16_to_utf8(const uint8_t *in, size_t n, char *out, size_t cap);

/*
 * An asset's vaulted login for the target: "DOMAIN\user" gives domain
 * and user; anything else is the user with an empty domain ("user@dom"
 * stays whole: RDP servers take UPNs as user names). ERR_TOO_LONG when
 * a part does not fit.
 */
int rdp_split_login(const char *login, char *user, size_t ucap, char *domain,
                    size_t dcap);

#endif
