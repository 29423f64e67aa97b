/*
 * Surface commands' codec IDs from the target's numbering to the
 * client's (rdp_codec.h).
 */
#include "rdpproxy/rdp_codec.h"

#include <stdio.h>
#include <string.h>

void rdp_codec_usable(const struct rdp_codec_set *in, struct rdp_codec_set *out)
{
    struct rdp_codec_set r;

    memset(&r, 0, sizeof(r));
    for (int c = 0; c < RDP_CODEC_N; c++) {
        bool ok = in->on[c] && in->id[c] != RDP_CODEC_ID_PLAIN &&
                  in->id[c] <= UINT8_MAX;

        for (int o = 0; ok && o < RDP_CODEC_N; o++) {
            if (o != c && in->on[o] && in->id[o] == in->id[c]) {
                ok = false;
            }
        }
        if (ok) {
            r.on[c] = true;
            r.id[c] = in->id[c];
        }
    }
    *out = r;
}

void rdp_codec_map_make(struct rdp_codec_map *m, bool surface,
                        const struct rdp_codec_set *back,
                        const struct rdp_codec_set *front)
{
    struct rdp_codec_set b, f;

    for (int i = 0; i < 256; i++) {
        m->to_front[i] = -1;
    }
    m->surface = surface;
    if (!surface) {
        return;
    }
    m->to_front[RDP_CODEC_ID_PLAIN] = RDP_CODEC_ID_PLAIN;
    rdp_codec_usable(back, &b);
    rdp_codec_usable(front, &f);
    for (int c = 0; c < RDP_CODEC_N; c++) {
        if (b.on[c] && f.on[c]) {
            m->to_front[b.id[c]] = (int16_t)f.id[c];
        }
    }
}

bool rdp_codec_map_id(const struct rdp_codec_map *m, uint8_t back_id,
                      uint8_t *out)
{
    int16_t v = m->to_front[back_id];

    if (!m->surface || v < 0) {
        return false;
    }
    *out = (uint8_t)v;
    return true;
}

void rdp_codec_back_set(struct rdp_codec_set *s, bool nsc, bool rfx)
{
    memset(s, 0, sizeof(*s));
    s->on[RDP_CODEC_NSC] = nsc;
    s->id[RDP_CODEC_NSC] = RDP_CODEC_BACK_NSC;
    s->on[RDP_CODEC_RFX] = rfx;
    s->id[RDP_CODEC_RFX] = RDP_CODEC_BACK_RFX;
}

enum rdp_bitmap_verdict rdp_codec_bitmap_check(uint8_t back_id, uint32_t bpp,
                                               uint32_t left, uint32_t top,
                                               uint32_t right, uint32_t bottom,
                                               uint32_t width, uint32_t height)
{
    if (back_id == RDP_CODEC_BACK_NSC &&
        (right <= left || bottom <= top || width > right - left ||
         height > bottom - top)) {
        return RDP_BITMAP_TOO_LARGE;
    }
    if (back_id == RDP_CODEC_ID_PLAIN && bpp != 8 && bpp != 15 && bpp != 16 &&
        bpp != 24 && bpp != 32) {
        return RDP_BITMAP_DEPTH;
    }
    return RDP_BITMAP_OK;
}

/* up to a multiple of 4, as FreeRDP sizes its planar scratch buffers */
static uint64_t rdp_codec_align4(uint32_t v)
{
    return ((uint64_t)v + 3) & ~(uint64_t)3;
}

enum rdp_bitmap_verdict rdp_codec_update_check(uint32_t bpp, bool compressed,
                                               uint32_t width, uint32_t height,
                                               uint32_t max_w, uint32_t max_h)
{
    /* gdi hands a compressed bitmap of 32 bpp or more to the planar
     * decoder, one of less to the interleaved one */
    if (compressed && bpp >= 32 &&
        (width > rdp_codec_align4(max_w) || height > rdp_codec_align4(max_h))) {
        return RDP_BITMAP_PLANAR_TOO_LARGE;
    }
    return RDP_BITMAP_OK;
}

/* [MS-RDPEGDI] 2.2.2.2.1.2.1.1 (secondary orderType), 2.2.2.2.1.3.1.1
 * (alternate secondary orderType); NULL: no order of that type */
static const char *const rdp_codec_secondary[] = {
    "Cache Bitmap", "Cache Color Table", "Cache Bitmap (compressed)",
    "Cache Glyph",  "Cache Bitmap V2",   "Cache Bitmap V2 (compressed)",
    NULL,           "Cache Brush",       "Cache Bitmap V3",
};
static const char *const rdp_codec_altsec[] = {
    "Switch Surface",         "Create Offscreen Bitmap",
    "Stream Bitmap First",    "Stream Bitmap Next",
    "Create NineGrid Bitmap", "Draw GDI+ First",
    "Draw GDI+ Next",         "Draw GDI+ End",
    "Draw GDI+ Cache First",  "Draw GDI+ Cache Next",
    "Draw GDI+ Cache End",    "Window",
    "Desktop Composition",    "Frame Marker",
};

void rdp_codec_order_name(bool altsec, uint8_t type, char *out, size_t n)
{
    const char *const *t = altsec ? rdp_codec_altsec : rdp_codec_secondary;
    size_t count = altsec ? sizeof(rdp_codec_altsec) / sizeof(t[0])
                          : sizeof(rdp_codec_secondary) / sizeof(t[0]);
    const char *kind = altsec ? "alternate secondary order" : "secondary order";

    if (n == 0) {
        return;
    }
    if (type < count && t[type] != NULL) {
        snprintf(out, n, "%s %s", kind, t[type]);
    } else {
        snprintf(out, n, "%s 0x%02x", kind, (unsigned)type);
    }
}

enum rdp_pointer_verdict rdp_codec_pointer_check(enum rdp_pointer_kind kind,
                                                 uint32_t index, uint32_t width,
                                                 uint32_t height,
                                                 uint32_t client_cache,
                                                 uint32_t client_large)
{
    uint32_t max = (client_large & RDP_LARGE_POINTER_96) != 0 ? 96 : 32;

    if (kind == RDP_POINTER_LARGE) {
        if ((client_large & RDP_LARGE_POINTER_384) == 0) {
            return RDP_POINTER_TOO_LARGE;
        }
        max = 384;
    }
    if (kind != RDP_POINTER_CACHED && (width > max || height > max)) {
        return RDP_POINTER_TOO_LARGE;
    }
    if (client_cache != 0 && index >= client_cache) {
        return RDP_POINTER_INDEX;
    }
    return RDP_POINTER_OK;
}
