/*
 * libFuzzer target for the RDP proxy's plain-data checks and rewrites
 * (src/rdpproxy/rdp_codec.c) of bytes a client or a target chose: the
 * back leg's Confirm Active (written by FreeRDP from settings a hostile
 * target's Demand Active filled), rdesktop's Erect Domain Request (a
 * client's PDU before authentication), FreeRDP's log lines naming a
 * target's order or capability set, and the codec IDs, bitmap and pointer
 * fields a client or target announced. Besides "no crash, no access past
 * the input" it checks what the functions promise:
 *
 *   - confirm_fix: NOT leaves the PDU as it was; FIXED is stable (a second
 *     pass changes nothing and says FIXED again); *off names only
 *     RDP_CAPS_* bits; rdp_codec_caps_said fits its buffer.
 *   - edrq_fix: false leaves the PDU as it was; true only for a 12-byte
 *     PDU, and a second pass finds nothing to rewrite.
 *   - the refusal readers: a name that fits, whatever the text.
 *   - the codec map: an ID maps only to an ID the client announced.
 *
 * The first input byte picks the function; the rest is its input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdpproxy/rdp_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr,                                                    \
                    "fuzz_rdp_codec: invariant failed: %s (line %d)\n", #cond, \
                    __LINE__);                                                 \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define RDP_CAPS_ALL 0x07ff

static uint32_t u32(const uint8_t *p, size_t n, size_t at)
{
    uint32_t v = 0;

    for (size_t i = 0; i < 4; i++) {
        v = v << 8 | (at + i < n ? p[at + i] : 0);
    }
    return v;
}

static void fuzz_confirm(const uint8_t *p, size_t n, uint8_t how)
{
    uint8_t *a = malloc(n > 0 ? n : 1), *b = malloc(n > 0 ? n : 1);
    bool surface = (how & 1) != 0, marker = (how & 2) != 0;
    unsigned off = 0, off2 = 0;
    enum rdp_confirm_verdict v, v2;
    char said[64];

    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return;
    }
    memcpy(a, p, n);
    v = rdp_codec_confirm_fix(a, n, surface, marker, &off);
    FUZZ_CHECK((off & ~(unsigned)RDP_CAPS_ALL) == 0);
    if (v == RDP_CONFIRM_NOT) {
        FUZZ_CHECK(n == 0 || memcmp(a, p, n) == 0);
    } else if (v == RDP_CONFIRM_FIXED) {
        memcpy(b, a, n);
        v2 = rdp_codec_confirm_fix(b, n, surface, marker, &off2);
        FUZZ_CHECK(v2 == RDP_CONFIRM_FIXED);
        FUZZ_CHECK(memcmp(a, b, n) == 0);
    }
    rdp_codec_caps_said(off, said, (how >> 2 & 63) + 1);
    FUZZ_CHECK(strlen(said) < (size_t)(how >> 2 & 63) + 1);
    free(a);
    free(b);
}

static void fuzz_edrq(const uint8_t *p, size_t n)
{
    uint8_t a[64];

    if (n > sizeof(a)) {
        n = sizeof(a);
    }
    memcpy(a, p, n);
    if (rdp_codec_edrq_fix(a, n)) {
        FUZZ_CHECK(n == 12);
        FUZZ_CHECK(!rdp_codec_edrq_fix(a, n));
    } else {
        FUZZ_CHECK(n == 0 || memcmp(a, p, n) == 0);
    }
}

static void fuzz_text(const uint8_t *p, size_t n)
{
    char *t = malloc(n + 1), name[24];
    uint8_t type8 = 0;
    uint16_t type16 = 0;

    if (t == NULL) {
        return;
    }
    memcpy(t, p, n);
    t[n] = '\0';
    if (rdp_codec_primary_refusal(t, &type8)) {
        rdp_codec_order_name(RDP_ORDER_PRIMARY, type8, name, sizeof(name));
        FUZZ_CHECK(strlen(name) < sizeof(name));
    }
    if (rdp_codec_capset_refusal(t, &type16)) {
        rdp_codec_capset_name(type16, name, sizeof(name));
        FUZZ_CHECK(strlen(name) < sizeof(name));
    }
    free(t);
}

static void fuzz_fields(const uint8_t *p, size_t n)
{
    struct rdp_codec_set back, front, usable;
    struct rdp_codec_map m;
    uint8_t id;

    memset(&front, 0, sizeof(front));
    for (int c = 0; c < RDP_CODEC_N; c++) {
        front.on[c] = (u32(p, n, 0) >> c & 1) != 0;
        front.id[c] = u32(p, n, 4 + 4 * (size_t)c);
    }
    rdp_codec_back_set(&back, (u32(p, n, 0) & 0x100) != 0,
                       (u32(p, n, 0) & 0x200) != 0);
    rdp_codec_usable(&front, &usable);
    for (int c = 0; c < RDP_CODEC_N; c++) {
        if (usable.on[c]) {
            FUZZ_CHECK(usable.id[c] >= 1 && usable.id[c] <= 255);
        }
    }
    rdp_codec_map_make(&m, (u32(p, n, 0) & 0x400) != 0, &back, &front);
    for (unsigned b = 0; b < 256; b++) {
        if (rdp_codec_map_id(&m, (uint8_t)b, &id)) {
            bool announced = id == RDP_CODEC_ID_PLAIN;

            for (int c = 0; c < RDP_CODEC_N; c++) {
                announced |= usable.on[c] && usable.id[c] == id;
            }
            FUZZ_CHECK(announced);
        }
    }
    (void)rdp_codec_bitmap_check((uint8_t)u32(p, n, 12), u32(p, n, 16),
                                 u32(p, n, 20), u32(p, n, 24), u32(p, n, 28),
                                 u32(p, n, 32), u32(p, n, 36), u32(p, n, 40));
    (void)rdp_codec_update_check(u32(p, n, 16), (u32(p, n, 0) & 0x800) != 0,
                                 u32(p, n, 36), u32(p, n, 40), u32(p, n, 44),
                                 u32(p, n, 48));
    (void)rdp_codec_pointer_check((enum rdp_pointer_kind)(u32(p, n, 52) % 3),
                                  u32(p, n, 56), u32(p, n, 60), u32(p, n, 64),
                                  u32(p, n, 68), u32(p, n, 72));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    switch (data[0] & 3) {
    case 0:
        fuzz_confirm(data + 1, size - 1, data[0] >> 2);
        break;
    case 1:
        fuzz_edrq(data + 1, size - 1);
        break;
    case 2:
        fuzz_text(data + 1, size - 1);
        break;
    default:
        fuzz_fields(data + 1, size - 1);
        break;
    }
    return 0;
}
