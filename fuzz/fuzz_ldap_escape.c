/*
 * libFuzzer target for the directory escapers (src/auth/directory.c):
 * directory_escape_filter (RFC 4515) and directory_escape_dn (RFC 4514).
 * Their input is a login's user name, which an unauthenticated client
 * chooses (the API takes any string), so besides "no crash, no read past
 * len" this checks what the escapers promise: the output is terminated
 * inside the buffer; a filter value has no bare '*', '(', ')', '\' or NUL
 * and decodes back to the input; a DN value decodes back to the input, and
 * for printable input libldap's own DN parser reads "cn=<value>,dc=x" as
 * exactly two RDNs whose first value is the input, so no user name can
 * add or change an RDN. A buffer too small is refused, never truncated.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldap.h>

#include "auth/directory.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr,                                                    \
                    "fuzz_ldap_escape: invariant failed: %s (line "            \
                    "%d)\n",                                                   \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define FUZZ_MAX 512

static int fuzz_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes an escaped value; dn: "\c" for a special c is allowed too.
 * Returns the decoded length, or -1 if malformed. */
static long fuzz_unescape(const char *s, bool dn, uint8_t *out)
{
    size_t o = 0;

    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] != '\\') {
            if (!dn && strchr("*()", s[i]) != NULL) {
                return -1;
            }
            out[o++] = (uint8_t)s[i];
            continue;
        }
        if (fuzz_hex(s[i + 1]) >= 0 && fuzz_hex(s[i + 2]) >= 0) {
            out[o++] = (uint8_t)(fuzz_hex(s[i + 1]) * 16 + fuzz_hex(s[i + 2]));
            i += 2;
        } else if (dn && s[i + 1] != '\0' &&
                   strchr("\"+,;<>\\=# ", s[i + 1]) != NULL) {
            out[o++] = (uint8_t)s[++i];
        } else {
            return -1;
        }
    }
    return (long)o;
}

static void fuzz_dn_parses(const uint8_t *data, size_t size, const char *esc)
{
    char dnstr[FUZZ_MAX * 3 + 32];
    LDAPDN dn = NULL;

    for (size_t i = 0; i < size; i++) {
        if (data[i] < 0x20 || data[i] > 0x7e) {
            return;
        }
    }
    snprintf(dnstr, sizeof(dnstr), "cn=%s,dc=x", esc);
    FUZZ_CHECK(ldap_str2dn(dnstr, &dn, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS);
    FUZZ_CHECK(dn != NULL && dn[0] != NULL && dn[1] != NULL && dn[2] == NULL);
    FUZZ_CHECK(dn[0][0] != NULL && dn[0][1] == NULL);
    FUZZ_CHECK(dn[0][0]->la_value.bv_len == size);
    FUZZ_CHECK(size == 0 || memcmp(dn[0][0]->la_value.bv_val, data, size) == 0);
    ldap_dnfree(dn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[FUZZ_MAX * 3 + 1];
    uint8_t back[FUZZ_MAX * 3 + 1];
    size_t cap;
    long n;
    int r;

    if (size > FUZZ_MAX) {
        return 0;
    }
    /* the first byte picks an output buffer size: small ones too */
    cap = size > 0 ? (data[0] % 2 == 0 ? sizeof(out) : 1 + data[0] % 16)
                   : sizeof(out);
    memset(out, 'Z', sizeof(out));
    r = directory_escape_filter((const char *)data, size, out, cap);
    FUZZ_CHECK(memchr(out, '\0', cap) != NULL);
    if (r == ERR_OK) {
        FUZZ_CHECK(strlen(out) < cap);
        n = fuzz_unescape(out, false, back);
        FUZZ_CHECK(n == (long)size);
        FUZZ_CHECK(size == 0 || memcmp(back, data, size) == 0);
    } else {
        FUZZ_CHECK(r == ERR_TOO_LONG && cap < sizeof(out));
    }
    memset(out, 'Z', sizeof(out));
    r = directory_escape_dn((const char *)data, size, out, cap);
    FUZZ_CHECK(memchr(out, '\0', cap) != NULL);
    if (r == ERR_OK) {
        n = fuzz_unescape(out, true, back);
        FUZZ_CHECK(n == (long)size);
        FUZZ_CHECK(size == 0 || memcmp(back, data, size) == 0);
        if (size > 0) {
            FUZZ_CHECK(out[0] != ' ' && out[0] != '#');
            FUZZ_CHECK(out[strlen(out) - 1] != ' ' ||
                       (strlen(out) >= 2 && out[strlen(out) - 2] == '\\'));
        }
        fuzz_dn_parses(data, size, out);
    } else {
        FUZZ_CHECK(r == ERR_TOO_LONG && cap < sizeof(out));
    }
    return 0;
}
