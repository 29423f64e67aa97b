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

/* [MS-RDPEGDI] 2.2.2.2.1.1.2 (primary orderType, as FreeRDP 2.11 spells
 * them in its log: rdp_codec_primary_refusal compares), 2.2.2.2.1.2.1.1
 * (secondary orderType), 2.2.2.2.1.3.1.1 (alternate secondary
 * orderType); NULL: no order of that type */
static const char *const rdp_codec_primary[] = {
    "DstBlt",
    "PatBlt",
    "ScrBlt",
    NULL,
    NULL,
    NULL,
    NULL,
    "DrawNineGrid",
    "MultiDrawNineGrid",
    "LineTo",
    "OpaqueRect",
    "SaveBitmap",
    NULL,
    "MemBlt",
    "Mem3Blt",
    "MultiDstBlt",
    "MultiPatBlt",
    "MultiScrBlt",
    "MultiOpaqueRect",
    "FastIndex",
    "PolygonSC",
    "PolygonCB",
    "Polyline",
    NULL,
    "FastGlyph",
    "EllipseSC",
    "EllipseCB",
    "GlyphIndex",
};
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

#define RDP_CODEC_N_OF(t) (sizeof(t) / sizeof((t)[0]))

/* The name of the order of class cls and type, NULL when none has it. */
static const char *rdp_codec_order_known(enum rdp_order_class cls, uint8_t type)
{
    switch (cls) {
    case RDP_ORDER_PRIMARY:
        return type < RDP_CODEC_N_OF(rdp_codec_primary)
                   ? rdp_codec_primary[type]
                   : NULL;
    case RDP_ORDER_SECONDARY:
        return type < RDP_CODEC_N_OF(rdp_codec_secondary)
                   ? rdp_codec_secondary[type]
                   : NULL;
    case RDP_ORDER_ALTSEC:
        return type < RDP_CODEC_N_OF(rdp_codec_altsec) ? rdp_codec_altsec[type]
                                                       : NULL;
    }
    return NULL;
}

void rdp_codec_order_name(enum rdp_order_class cls, uint8_t type, char *out,
                          size_t n)
{
    const char *name = rdp_codec_order_known(cls, type);
    const char *kind = cls == RDP_ORDER_PRIMARY ? "primary order"
                       : cls == RDP_ORDER_SECONDARY
                           ? "secondary order"
                           : "alternate secondary order";

    if (n == 0) {
        return;
    }
    if (name != NULL) {
        snprintf(out, n, "%s %s", kind, name);
    } else {
        snprintf(out, n, "%s 0x%02x", kind, (unsigned)type);
    }
}

/* FreeRDP 2.11's words after the order's name (orders.c,
 * check_order_activated) */
#define RDP_CODEC_REFUSAL " - SERVER BUG: The support for this feature was not"

static int rdp_codec_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

bool rdp_codec_primary_refusal(const char *text, uint8_t *type)
{
    const char *name;
    size_t n;
    int hi, lo;

    /* "[0x" two lower-case hex digits "] " name RDP_CODEC_REFUSAL ... */
    if (text == NULL || strncmp(text, "[0x", 3) != 0 ||
        (hi = rdp_codec_hex(text[3])) < 0 ||
        (lo = rdp_codec_hex(text[4])) < 0 || text[5] != ']' || text[6] != ' ') {
        return false;
    }
    name = rdp_codec_order_known(RDP_ORDER_PRIMARY, (uint8_t)(hi * 16 + lo));
    if (name == NULL) {
        return false;
    }
    n = strlen(name);
    if (strncmp(text + 7, name, n) != 0 ||
        strncmp(text + 7 + n, RDP_CODEC_REFUSAL, strlen(RDP_CODEC_REFUSAL)) !=
            0) {
        return false;
    }
    *type = (uint8_t)(hi * 16 + lo);
    return true;
}

#define RDP_CODEC_NOT_FROM_SERVER ") not expected from server"

bool rdp_codec_capset_refusal(const char *text, uint16_t *type)
{
    const char *open, *end;
    unsigned long v = 0;
    size_t n, tail = strlen(RDP_CODEC_NOT_FROM_SERVER);

    /* "capability " name "(" decimal RDP_CODEC_NOT_FROM_SERVER */
    if (text == NULL || strncmp(text, "capability ", 11) != 0) {
        return false;
    }
    n = strlen(text);
    if (n < 11 + tail + 2 ||
        strcmp(text + n - tail, RDP_CODEC_NOT_FROM_SERVER) != 0) {
        return false;
    }
    end = text + n - tail;
    open = end;
    while (open > text + 11 && open[-1] >= '0' && open[-1] <= '9') {
        open--;
    }
    if (open == end || end - open > 5 || open[-1] != '(') {
        return false;
    }
    for (const char *p = open; p < end; p++) {
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > UINT16_MAX) {
        return false;
    }
    *type = (uint16_t)v;
    return true;
}

void rdp_codec_capset_name(uint16_t type, char *out, size_t n)
{
    /* [MS-RDPBCGR] 2.2.1.13.1.1.1: the sets only a client sends */
    static const struct {
        uint16_t type;
        const char *name;
    } names[] = {
        {0x04, "Bitmap Cache"},
        {0x05, "Control"},
        {0x07, "Window Activation"},
        {0x0C, "Sound"},
        {0x0F, "Brush"},
        {0x10, "Glyph Cache"},
        {0x11, "Offscreen Bitmap Cache"},
        {0x13, "Bitmap Cache Rev. 2"},
        {0x15, "DrawNineGrid Cache"},
    };

    if (n == 0) {
        return;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].type == type) {
            snprintf(out, n, "%s", names[i].name);
            return;
        }
    }
    snprintf(out, n, "capability set %u", (unsigned)type);
}

/* --- the back leg's Confirm Active --- */

/* [MS-RDPBCGR] 2.2.1.13.1.1.1 capabilitySetType */
#define RDP_CAPSET_ORDER 0x0003
#define RDP_CAPSET_BITMAP_CACHE 0x0004
#define RDP_CAPSET_BITMAP_CACHE_V3_CODEC_ID 0x0006
#define RDP_CAPSET_BRUSH 0x000F
#define RDP_CAPSET_GLYPH_CACHE 0x0010
#define RDP_CAPSET_OFFSCREEN_CACHE 0x0011
#define RDP_CAPSET_BITMAP_CACHE_V2 0x0013
#define RDP_CAPSET_DRAW_NINE_GRID_CACHE 0x0015
#define RDP_CAPSET_DRAW_GDI_PLUS 0x0016
#define RDP_CAPSET_RAIL 0x0017
#define RDP_CAPSET_WINDOW 0x0018
#define RDP_CAPSET_COMP_DESK 0x0019
#define RDP_CAPSET_SURFACE_COMMANDS 0x001C
#define RDP_CAPSET_FRAME_ACKNOWLEDGE 0x001E
/* TS_SURFCMDS_CAPABILITYSET cmdFlags */
#define RDP_SURFCMDS_SET_SURFACE_BITS 0x00000002
#define RDP_SURFCMDS_FRAME_MARKER 0x00000010
#define RDP_SURFCMDS_STREAM_SURFACE_BITS 0x00000040
/* PDUTYPE_CONFIRMACTIVEPDU, in the low 4 bits of pduType */
#define RDP_PDUTYPE_CONFIRM_ACTIVE 0x3
/* MCS Send Data Request's first byte (DomainMCSPDU choice 25, PER) */
#define RDP_MCS_SEND_DATA_REQUEST 0x64

static uint16_t rdp_codec_le16(const uint8_t *p, size_t at)
{
    return (uint16_t)(p[at] | (p[at + 1] << 8));
}

static uint32_t rdp_codec_le32(const uint8_t *p, size_t at)
{
    return (uint32_t)p[at] | (uint32_t)p[at + 1] << 8 |
           (uint32_t)p[at + 2] << 16 | (uint32_t)p[at + 3] << 24;
}

/* Zeroes n bytes of body (blen long) from at: false when they are not
 * all there; *changed when one was not 0. */
static bool rdp_codec_zero(uint8_t *body, size_t blen, size_t at, size_t n,
                           bool *changed)
{
    if (at > blen || n > blen - at) {
        return false;
    }
    for (size_t i = at; i < at + n; i++) {
        if (body[i] != 0) {
            *changed = true;
            body[i] = 0;
        }
    }
    return true;
}

/* One capability set's body (blen bytes): false when too short for the
 * fields it must change. */
static bool rdp_codec_capset_fix(uint16_t type, uint8_t *body, size_t blen,
                                 bool surface, bool marker, unsigned *off)
{
    bool ch = false;
    bool ok = true;
    unsigned what = 0;

    switch (type) {
    case RDP_CAPSET_ORDER:
        /* orderSupport (32 bytes at 32), orderSupportExFlags (at 66) */
        ok = rdp_codec_zero(body, blen, 32, 32, &ch) &&
             rdp_codec_zero(body, blen, 66, 2, &ch);
        what = RDP_CAPS_ORDERS;
        break;
    case RDP_CAPSET_BITMAP_CACHE:
        /* three caches' entries and cell sizes after 24 bytes of pad */
        ok = rdp_codec_zero(body, blen, 24, 12, &ch);
        what = RDP_CAPS_BITMAP_CACHE;
        break;
    case RDP_CAPSET_BITMAP_CACHE_V2:
        /* cacheFlags, pad, numCellCaches, five cell infos */
        ok = rdp_codec_zero(body, blen, 0, 24, &ch);
        what = RDP_CAPS_BITMAP_CACHE;
        break;
    case RDP_CAPSET_BITMAP_CACHE_V3_CODEC_ID:
        ok = rdp_codec_zero(body, blen, 0, 1, &ch);
        what = RDP_CAPS_BITMAP_CACHE;
        break;
    case RDP_CAPSET_BRUSH:
        ok = rdp_codec_zero(body, blen, 0, 4, &ch);
        what = RDP_CAPS_BRUSH;
        break;
    case RDP_CAPSET_GLYPH_CACHE:
        /* ten glyph caches, the fragment cache, glyphSupportLevel */
        ok = rdp_codec_zero(body, blen, 0, 46, &ch);
        what = RDP_CAPS_GLYPH;
        break;
    case RDP_CAPSET_OFFSCREEN_CACHE:
        ok = rdp_codec_zero(body, blen, 0, 8, &ch);
        what = RDP_CAPS_OFFSCREEN;
        break;
    case RDP_CAPSET_DRAW_NINE_GRID_CACHE:
        ok = rdp_codec_zero(body, blen, 0, 8, &ch);
        what = RDP_CAPS_NINEGRID;
        break;
    case RDP_CAPSET_DRAW_GDI_PLUS:
        /* drawGDIPlusSupportLevel, GdipVersion, drawGdiplusCacheLevel
         * and the cache sizes */
        ok = rdp_codec_zero(body, blen, 0, 36, &ch);
        what = RDP_CAPS_GDIPLUS;
        break;
    case RDP_CAPSET_RAIL:
        ok = rdp_codec_zero(body, blen, 0, 4, &ch);
        what = RDP_CAPS_WINDOW;
        break;
    case RDP_CAPSET_WINDOW:
        ok = rdp_codec_zero(body, blen, 0, 7, &ch);
        what = RDP_CAPS_WINDOW;
        break;
    case RDP_CAPSET_COMP_DESK:
        ok = rdp_codec_zero(body, blen, 0, 2, &ch);
        what = RDP_CAPS_COMPDESK;
        break;
    case RDP_CAPSET_FRAME_ACKNOWLEDGE:
        ok = rdp_codec_zero(body, blen, 0, 4, &ch);
        what = RDP_CAPS_FRAME_ACK;
        break;
    case RDP_CAPSET_SURFACE_COMMANDS: {
        uint32_t want = 0, had;

        if (blen < 4) {
            return false;
        }
        if (surface) {
            want = RDP_SURFCMDS_SET_SURFACE_BITS |
                   RDP_SURFCMDS_STREAM_SURFACE_BITS |
                   (marker ? RDP_SURFCMDS_FRAME_MARKER : 0);
        }
        had = rdp_codec_le32(body, 0);
        if ((had & ~want) != 0) {
            ch = true;
        }
        /* never more than FreeRDP announced */
        want &= had;
        for (int i = 0; i < 4; i++) {
            body[i] = (uint8_t)(want >> (8 * i));
        }
        what = RDP_CAPS_SURFACE;
        break;
    }
    default:
        return true;
    }
    if (ok && ch) {
        *off |= what;
    }
    return ok;
}

bool rdp_codec_edrq_fix(uint8_t *pdu, size_t len)
{
    /* TPKT (03 00, length 12), X.224 Data (02 F0 80), DomainMCSPDU
     * erectDomainRequest (1 << 2), then four bytes: two 16-bit numbers
     * below 256 each (their high bytes 00), as rdesktop writes them */
    static const uint8_t head[8] = {0x03, 0x00, 0x00, 0x0c,
                                    0x02, 0xf0, 0x80, 0x04};

    if (pdu == NULL || len != 12 || memcmp(pdu, head, sizeof(head)) != 0 ||
        pdu[8] != 0x00 || pdu[10] != 0x00) {
        return false;
    }
    pdu[8] = 0x01;  /* length 1, then the low byte: subHeight */
    pdu[10] = 0x01; /* length 1, then the low byte: subInterval */
    return true;
}

enum rdp_confirm_verdict rdp_codec_confirm_fix(uint8_t *pdu, size_t len,
                                               bool surface, bool marker,
                                               unsigned *off)
{
    size_t at, end, src_len, caps_len, ncaps;
    unsigned changed = 0;

    if (off != NULL) {
        *off = 0;
    }
    /* TPKT (version 3, its length the PDU's), X.224 Data (02 f0 80), MCS
     * Send Data Request: initiator, channel, flags, PER length */
    if (len < 8 || pdu[0] != 3 || ((size_t)pdu[2] << 8 | pdu[3]) != len ||
        pdu[4] != 2 || pdu[5] != 0xF0 || pdu[6] != 0x80 ||
        pdu[7] != RDP_MCS_SEND_DATA_REQUEST) {
        return RDP_CONFIRM_NOT;
    }
    /* pdu[12]: dataPriority and segmentation; then the PER length */
    if (len < 15) {
        return RDP_CONFIRM_NOT;
    }
    if (pdu[13] & 0x80) {
        at = 15;
        end = at + (((size_t)pdu[13] & 0x3F) << 8 | pdu[14]);
    } else {
        at = 14;
        end = at + pdu[13];
    }
    /* Share Control Header: totalLength, pduType, pduSource */
    if (end != len || len - at < 6 ||
        (rdp_codec_le16(pdu, at + 2) & 0x0F) != RDP_PDUTYPE_CONFIRM_ACTIVE) {
        return RDP_CONFIRM_NOT;
    }
    at += 6;
    /* shareId, originatorId, lengthSourceDescriptor,
     * lengthCombinedCapabilities, sourceDescriptor, numberCapabilities,
     * pad2Octets */
    if (len - at < 10) {
        return RDP_CONFIRM_BAD;
    }
    src_len = rdp_codec_le16(pdu, at + 6);
    caps_len = rdp_codec_le16(pdu, at + 8);
    at += 10;
    if (len - at < src_len || len - at - src_len < 4) {
        return RDP_CONFIRM_BAD;
    }
    at += src_len;
    ncaps = rdp_codec_le16(pdu, at);
    /* lengthCombinedCapabilities counts numberCapabilities and the pad */
    if (caps_len < 4 || caps_len > len - at) {
        return RDP_CONFIRM_BAD;
    }
    end = at + caps_len;
    at += 4;
    for (size_t i = 0; i < ncaps; i++) {
        uint16_t type, slen;

        if (end - at < 4) {
            return RDP_CONFIRM_BAD;
        }
        type = rdp_codec_le16(pdu, at);
        slen = rdp_codec_le16(pdu, at + 2);
        if (slen < 4 || slen > end - at) {
            return RDP_CONFIRM_BAD;
        }
        if (!rdp_codec_capset_fix(type, pdu + at + 4, slen - 4u, surface,
                                  marker, &changed)) {
            return RDP_CONFIRM_BAD;
        }
        at += slen;
    }
    if (at != end) {
        return RDP_CONFIRM_BAD;
    }
    if (off != NULL) {
        *off = changed;
    }
    return RDP_CONFIRM_FIXED;
}

void rdp_codec_caps_said(unsigned off, char *out, size_t n)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {RDP_CAPS_ORDERS, "drawing orders"},
        {RDP_CAPS_BITMAP_CACHE, "bitmap cache"},
        {RDP_CAPS_BRUSH, "brush cache"},
        {RDP_CAPS_GLYPH, "glyph cache"},
        {RDP_CAPS_OFFSCREEN, "offscreen bitmaps"},
        {RDP_CAPS_NINEGRID, "nine-grid bitmaps"},
        {RDP_CAPS_GDIPLUS, "GDI+"},
        {RDP_CAPS_WINDOW, "windows (RemoteApp)"},
        {RDP_CAPS_COMPDESK, "desktop composition"},
        {RDP_CAPS_SURFACE, "surface commands"},
        {RDP_CAPS_FRAME_ACK, "frame acknowledgements"},
    };
    size_t used = 0;

    if (n == 0) {
        return;
    }
    out[0] = '\0';
    for (size_t i = 0; i < RDP_CODEC_N_OF(names); i++) {
        int w;

        if ((off & names[i].bit) == 0 || used >= n) {
            continue;
        }
        w = snprintf(out + used, n - used, "%s%s", used > 0 ? ", " : "",
                     names[i].name);
        used = w < 0 ? n : used + (size_t)w;
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
    /* with no cache (0), no index is in it */
    if (index >= client_cache) {
        return RDP_POINTER_INDEX;
    }
    return RDP_POINTER_OK;
}
