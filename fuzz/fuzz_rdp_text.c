/*
 * libFuzzer target for the text an RDP client chooses before it is
 * authenticated (src/rdpproxy/rdp_text.c, src/auth/nthash.c): the user
 * name and domain arrive as UTF-16LE in NTLM and CredSSP. Besides "no
 * crash, no read past the input" it checks what the converters promise:
 * a conversion that succeeds fits its buffer, is NUL-terminated, and
 * converts back (nthash_utf16le) to exactly the input units; one that
 * fails leaves an empty string; the same input as UTF-8 either converts
 * or is refused, never overruns; and a vaulted login's split gives back
 * the login when joined again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/nthash.h"
#include "common/err.h"
#include "rdpproxy/rdp_text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_rdp_text: invariant failed: %s (line %d)\n", \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define FUZZ_IN_MAX 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[] = {1, 2, 5, 64, RDP_TEXT_MAX + 1};
    char out[RDP_TEXT_MAX + 1], user[256], dom[256], joined[600];
    uint8_t back[2 * FUZZ_IN_MAX];
    size_t n = size / 2, blen = 0;
    char *copy;
    int r;

    if (size > FUZZ_IN_MAX) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        memset(out, 'x', sizeof(out));
        r = rdp_utf16_to_utf8(data, n, out, caps[i]);
        FUZZ_CHECK(r == ERR_OK || r == ERR_INVALID || r == ERR_TOO_LONG);
        FUZZ_CHECK(memchr(out, '\0', caps[i]) != NULL);
        if (r != ERR_OK) {
            FUZZ_CHECK(r == ERR_INVALID || out[0] == '\0');
            continue;
        }
        FUZZ_CHECK(nthash_utf16le(out, strlen(out), 0, back, sizeof(back),
                                  &blen) == ERR_OK);
        FUZZ_CHECK(blen == 2 * n && memcmp(back, data, blen) == 0);
    }
    /* the same bytes as UTF-8 (a password or a login from the monitor) */
    r = nthash_utf16le((const char *)data, size, 1, back, sizeof(back), &blen);
    FUZZ_CHECK(r == ERR_OK || r == ERR_INVALID || r == ERR_TOO_LONG);
    FUZZ_CHECK(r != ERR_OK || blen <= sizeof(back));
    if ((copy = malloc(size + 1)) == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    copy[size] = '\0';
    r = rdp_split_login(copy, user, sizeof(user), dom, sizeof(dom));
    FUZZ_CHECK(r == ERR_OK || r == ERR_TOO_LONG);
    if (r == ERR_OK) {
        snprintf(joined, sizeof(joined), "%s%s%s", dom,
                 strchr(copy, '\\') != NULL ? "\\" : "", user);
        FUZZ_CHECK(strcmp(joined, copy) == 0);
    }
    free(copy);
    return 0;
}
