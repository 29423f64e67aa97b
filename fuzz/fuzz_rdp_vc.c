/*
 * libFuzzer target for the RDP proxy's channel message reassembly
 * (src/rdpproxy/rdp_vc.c): chunk headers come from the client and the
 * target. The input: byte 0 sets a small budget (4 KiB + 256 bytes per
 * unit), then chunks of u8 slot (bits 0-2, one of six buffers; bit 3
 * the filters' output buffer, reserved instead) and flags (bits 4-5:
 * first, last), u16 announced total, u16 size (capped by what is left),
 * bytes. Checked besides memory safety: the budget's held bytes are
 * exactly the buffers' capacities and never over its maximum; a whole
 * message is exactly the chunks given since its first one; after
 * rdp_vc_done no buffer over RDP_VC_KEEP stays; all is given back at
 * the end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "rdpproxy/rdp_vc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_rdp_vc: invariant failed: %s (line %d)\n",   \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define SLOTS 6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rdp_vc_budget b = {0, 0};
    struct rdp_vc_buf a[SLOTS], out;
    /* what each slot's message should hold: the chunks since its first */
    uint8_t *shadow[SLOTS];
    size_t slen[SLOTS], off = 1, total, n, held;
    enum rdp_vc_verdict v;
    uint32_t flags;
    int slot, e;

    if (size < 1) {
        return 0;
    }
    b.max = 4096 + (size_t)data[0] * 256;
    memset(a, 0, sizeof(a));
    memset(&out, 0, sizeof(out));
    for (int i = 0; i < SLOTS; i++) {
        shadow[i] = malloc(b.max);
        FUZZ_CHECK(shadow[i] != NULL);
        slen[i] = 0;
    }
    while (size - off >= 5) {
        slot = (data[off] & 7) % SLOTS;
        flags = ((data[off] >> 4) & 1 ? RDP_VC_FIRST : 0) |
                ((data[off] >> 5) & 1 ? RDP_VC_LAST : 0);
        total = (size_t)data[off + 1] | ((size_t)data[off + 2] << 8);
        n = (size_t)data[off + 3] | ((size_t)data[off + 4] << 8);
        off += 5;
        if (data[off - 5] & 8) {
            e = rdp_vc_reserve(&out, &b, total);
            FUZZ_CHECK(e == ERR_OK || e == ERR_TOO_LONG);
            FUZZ_CHECK(e != ERR_OK || out.cap >= total);
            rdp_vc_done(&out, &b);
        } else {
            if (n > size - off) {
                n = size - off;
            }
            e = rdp_vc_chunk(&a[slot], &b, data + off, n, flags, total, &v);
            FUZZ_CHECK(e == ERR_OK);
            if (flags & RDP_VC_FIRST) {
                slen[slot] = 0;
            }
            if (a[slot].total != 0 || v == RDP_VC_WHOLE) {
                /* kept: it fits in its total, which fits the budget */
                FUZZ_CHECK(slen[slot] + n <= b.max);
                memcpy(shadow[slot] + slen[slot], data + off, n);
                slen[slot] += n;
                FUZZ_CHECK(a[slot].len == slen[slot]);
            }
            if (v == RDP_VC_WHOLE) {
                FUZZ_CHECK(a[slot].len == a[slot].total);
                FUZZ_CHECK(memcmp(a[slot].msg, shadow[slot], slen[slot]) == 0);
                rdp_vc_done(&a[slot], &b);
                FUZZ_CHECK(a[slot].cap <= RDP_VC_KEEP);
            }
            off += n;
        }
        held = out.cap;
        for (int i = 0; i < SLOTS; i++) {
            held += a[i].cap;
        }
        FUZZ_CHECK(b.held == held && b.held <= b.max);
    }
    for (int i = 0; i < SLOTS; i++) {
        rdp_vc_free(&a[i], &b);
        free(shadow[i]);
    }
    rdp_vc_free(&out, &b);
    FUZZ_CHECK(b.held == 0);
    return 0;
}
