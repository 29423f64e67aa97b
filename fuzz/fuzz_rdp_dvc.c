/*
 * libFuzzer target for the RDP proxy's dynamic channel filter
 * (src/rdpproxy/rdp_dvc.c): the bytes come from the client and the
 * target. The input is a session of messages: u8 (bit 0: direction,
 * bits 1-7: milliseconds since the last message x 16), u16 length
 * (little-endian), bytes. Besides "no crash, no read past the input" it
 * checks what the filter promises: what it forwards is never longer than
 * what came; a parse error forwards nothing, answers nothing and changes
 * nothing; a refusal forwards nothing; a reply goes only to the target
 * and is a failed Create Response; a layout forwarded to the target has
 * one primary at 0,0 and every monitor within bounds; a held layout
 * stays within its buffer; two relayed channels never share an ID; a
 * graphics message still to come is never over RDP_DVC_GFX_MAX; what
 * crosses on the graphics channel crosses unchanged. The graphics
 * channel may open in inputs of even length (gfx_allowed).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "fuzz_rdp_filter.h"
#include "rdpproxy/rdp_dvc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* A layout forwarded to the target (a Data PDU, 1, 2 or 4-byte ID). */
static void check_layout(const uint8_t *out, size_t n)
{
    static const size_t ids[4] = {1, 2, 4, 0};
    size_t off = 1 + ids[out[0] & 3];
    uint32_t count, primaries = 0;

    FUZZ_CHECK(ids[out[0] & 3] != 0 && n >= off + 16);
    FUZZ_CHECK(get32(out + off) == RDP_DISP_MONITOR_LAYOUT);
    count = get32(out + off + 12);
    FUZZ_CHECK(count >= 1 && count <= RDP_DVC_MONITORS_MAX);
    FUZZ_CHECK(n == off + 16 + (size_t)count * 40);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *m = out + off + 16 + (size_t)i * 40;
        uint32_t w = get32(m + 12), h = get32(m + 16);

        FUZZ_CHECK(w >= 200 && w <= 8192 && w % 2 == 0);
        FUZZ_CHECK(h >= 200 && h <= 8192);
        FUZZ_CHECK((get32(m) & ~1u) == 0);
        if (get32(m) & 1) {
            primaries++;
            FUZZ_CHECK(get32(m + 4) == 0 && get32(m + 8) == 0);
        }
    }
    FUZZ_CHECK(primaries == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rdp_dvc d, before;
    static uint8_t held[RDP_DVC_HELD_MAX];
    struct rdp_dvc_result r;
    uint8_t *msg, *out;
    size_t off = 0, len, n;
    int64_t now = 100000;
    uint8_t head;
    int dir, e;

    rdp_dvc_init(&d);
    d.gfx_allowed = size % 2 == 0;
    while ((msg = fuzz_rdp_next(data, size, &off, &head, &len, &out)) != NULL) {
        dir = head & 1;
        now += (int64_t)(head >> 1) * 16;
        before = d;
        e = rdp_dvc_filter(&d, dir, msg, len, now, out, &n, &r);
        FUZZ_CHECK(e == ERR_OK || e == ERR_PROTO);
        FUZZ_CHECK(n <= len && d.held_len <= RDP_DVC_HELD_MAX);
        FUZZ_CHECK(r.reply_len <= sizeof(r.reply));
        if (e != ERR_OK) {
            FUZZ_CHECK(n == 0 && r.reply_len == 0);
            FUZZ_CHECK(memcmp(&d, &before, sizeof(d)) == 0);
        }
        if (r.refused != NULL || r.held) {
            FUZZ_CHECK(n == 0);
        }
        if (r.reply_len > 0) {
            FUZZ_CHECK(dir == RDP_DVC_DOWN && r.reply[0] >> 4 == 1);
            FUZZ_CHECK((int32_t)get32(r.reply + r.reply_len - 4) < 0);
        }
        if (e == ERR_OK && n > 0 && dir == RDP_DVC_UP && out[0] >> 4 == 3 &&
            r.chan == RDP_DVC_DISP) {
            check_layout(out, n);
        }
        if (e == ERR_OK && n > 0 && out[0] >> 4 == 5) {
            FUZZ_CHECK(out[2] <= 2 && out[3] == 0);
        }
        if (d.ch[0].state != RDP_DVC_NONE && d.ch[1].state != RDP_DVC_NONE) {
            FUZZ_CHECK(d.ch[0].id != d.ch[1].id);
        }
        FUZZ_CHECK(d.ch[RDP_DVC_GFX].left[0] <= RDP_DVC_GFX_MAX &&
                   d.ch[RDP_DVC_GFX].left[1] <= RDP_DVC_GFX_MAX);
        FUZZ_CHECK(d.gfx_allowed || d.ch[RDP_DVC_GFX].state == RDP_DVC_NONE);
        if (e == ERR_OK && n > 0 && r.chan == RDP_DVC_GFX) {
            FUZZ_CHECK(n == len && memcmp(out, msg, n) == 0);
        }
        n = rdp_dvc_due(&d, now, held);
        FUZZ_CHECK(n <= RDP_DVC_HELD_MAX);
        if (n > 0) {
            check_layout(held, n);
        }
        free(msg);
        free(out);
    }
    return 0;
}
