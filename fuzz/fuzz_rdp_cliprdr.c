/*
 * libFuzzer target for the RDP proxy's clipboard filter
 * (src/rdpproxy/rdp_cliprdr.c): the bytes come from the client and the
 * target, both untrusted. The input is a session (fuzz_rdp_filter.h;
 * bit 0 of byte 0: files may cross). Besides the checks every filter
 * gets there: what it forwards passes the same filter again unchanged,
 * with nothing left to strip or refuse (so no file format survives a
 * pass); text it reports lies inside the message, and converts to a
 * NUL-terminated UTF-8 string that fits its buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "fuzz_rdp_filter.h"
#include "rdpproxy/rdp_cliprdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rdp_cliprdr fuzz_clip;

static void fuzz_clip_init(void *state, uint8_t switches)
{
    rdp_cliprdr_init(state, (switches & 1) != 0);
}

static int fuzz_clip_run(void *state, int dir, const uint8_t *in, size_t len,
                         uint8_t *out, size_t *outlen,
                         struct rdp_filter_result *r)
{
    return rdp_cliprdr_filter(state, dir, in, len, out, outlen, r);
}

static void fuzz_clip_check(const struct fuzz_rdp_filter *f, const void *before,
                            int dir, const uint8_t *msg, size_t len, int e,
                            const uint8_t *out, size_t n,
                            const struct rdp_filter_result *r)
{
    struct rdp_cliprdr again;
    struct rdp_filter_result r2;
    uint8_t *out2;
    char text[64];
    size_t n2, t;
    int e2;

    (void)f;
    if (r->text != NULL) {
        FUZZ_CHECK(r->text >= msg && r->text_len <= len &&
                   (size_t)(r->text - msg) <= len - r->text_len);
        t = rdp_cliprdr_text(r->text, r->text_len, r->text_utf16, text,
                             sizeof(text));
        FUZZ_CHECK(t < sizeof(text) && text[t] == '\0' && strlen(text) == t);
    }
    if (e == ERR_OK && n > 0) {
        memcpy(&again, before, sizeof(again));
        out2 = malloc(n);
        FUZZ_CHECK(out2 != NULL);
        e2 = rdp_cliprdr_filter(&again, dir, out, n, out2, &n2, &r2);
        FUZZ_CHECK(e2 == ERR_OK && r2.refused == NULL && r2.stripped == 0 &&
                   n2 == n && memcmp(out, out2, n) == 0);
        free(out2);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct fuzz_rdp_filter f = {
        &fuzz_clip,    sizeof(fuzz_clip), fuzz_clip_init,
        fuzz_clip_run, fuzz_clip_check,
    };

    fuzz_rdp_filter_session(&f, data, size);
    return 0;
}
