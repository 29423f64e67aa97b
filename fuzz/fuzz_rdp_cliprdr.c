/*
 * libFuzzer target for the RDP proxy's clipboard filter
 * (src/rdpproxy/rdp_cliprdr.c): the bytes come from the client and the
 * target, both untrusted. The input is a session: byte 0 says whether
 * files may cross, then messages of u8 direction, u16 length (little-
 * endian), bytes. Besides "no crash, no read past the input" it checks
 * what the filter promises: what it forwards is never longer than what
 * came; a refusal or a parse error forwards nothing; what it forwards
 * passes the same filter again unchanged, with nothing left to strip or
 * refuse (so no file format survives a pass); text it reports lies
 * inside the message, and converts to a NUL-terminated UTF-8 string
 * that fits its buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "rdpproxy/rdp_cliprdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr,                                                    \
                    "fuzz_rdp_cliprdr: invariant failed: %s (line %d)\n",      \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rdp_cliprdr c, before, again;
    struct rdp_filter_result r, r2;
    uint8_t *msg, *out, *out2;
    char text[64];
    size_t off = 1, len, n, n2, t;
    int dir, e, e2;

    if (size < 1) {
        return 0;
    }
    rdp_cliprdr_init(&c, (data[0] & 1) != 0);
    while (size - off >= 3) {
        dir = data[off] & 1;
        len = (size_t)data[off + 1] | ((size_t)data[off + 2] << 8);
        off += 3;
        if (len > size - off) {
            len = size - off;
        }
        /* exactly len bytes on the heap, so ASan sees any overread */
        msg = malloc(len ? len : 1);
        out = malloc(len ? len : 1);
        out2 = malloc(len ? len : 1);
        FUZZ_CHECK(msg != NULL && out != NULL && out2 != NULL);
        memcpy(msg, data + off, len);
        off += len;
        before = c;
        n = 12345;
        e = rdp_cliprdr_filter(&c, dir, msg, len, out, &n, &r);
        FUZZ_CHECK(e == ERR_OK || e == ERR_PROTO);
        FUZZ_CHECK(n <= len);
        if (e != ERR_OK || r.refused != NULL) {
            FUZZ_CHECK(n == 0);
            if (e != ERR_OK) {
                FUZZ_CHECK(memcmp(&c, &before, sizeof(c)) == 0);
            }
        }
        if (r.text != NULL) {
            FUZZ_CHECK(r.text >= msg && r.text_len <= len &&
                       (size_t)(r.text - msg) <= len - r.text_len);
            t = rdp_cliprdr_text(r.text, r.text_len, r.text_utf16, text,
                                 sizeof(text));
            FUZZ_CHECK(t < sizeof(text) && text[t] == '\0' &&
                       strlen(text) == t);
        }
        if (e == ERR_OK && n > 0) {
            again = before;
            e2 = rdp_cliprdr_filter(&again, dir, out, n, out2, &n2, &r2);
            FUZZ_CHECK(e2 == ERR_OK && r2.refused == NULL && r2.stripped == 0 &&
                       n2 == n && memcmp(out, out2, n) == 0);
        }
        free(msg);
        free(out);
        free(out2);
    }
    return 0;
}
