/*
 * A hostile RDP target of surface commands, for
 * tests/e2e/test_rdp_codec_ids.py: a real RDP server (libfreerdp-server2,
 * TLS security, any login accepted) that, once active, sends surface
 * bits under codec IDs it was not offered and then a good screen:
 *
 *   four 8x8 commands of junk under codec IDs 0x42 (no codec has it),
 *   3, 2 and 4 (FreeRDP's numbers for RemoteFX, JPEG and RemoteFX's image
 *   mode: a client that did not announce them must not get them; a
 *   FreeRDP client fails the session on junk under 3); then the whole
 *   1024x768 screen in 64-row strips of plain 32-bit pixels (codec ID 0,
 *   "not encoded") in teal. Again for each Refresh Rect PDU.
 *
 * With MODE "nsc" it sends instead a picture encoded with FreeRDP's
 * NSCodec encoder, under the ID the client announced for NSCodec: the
 * screen in four quadrants (red top left, green top right, blue bottom
 * left, yellow bottom right, the st_quad colours), in 64-row strips,
 * and a white 64x64 square with a black 32x32 one inside it at
 * (64, 64). MODE "nsc-big" first sends one hostile NSCodec command: an
 * 8x8 rectangle at the bottom right corner whose bitmap is 1024x4096
 * (a 20-byte NSCodec stream, every plane empty: FreeRDP decodes it as
 * white), which FreeRDP 2.11's decoder copies whole from the
 * rectangle's corner, far past the end of a 1024x768 screen; then the
 * picture. MODE "bpp1" sends, instead of the four junk commands, one
 * "not encoded" 1024x64 bitmap of 1 bit per pixel (16 bytes), a depth
 * FreeRDP's decoder does not take (it logs an error for each of its
 * pixels), then the teal screen. MODE "planar-big" sends, before the
 * teal screen, one Bitmap Update PDU (the classic path, not a surface
 * command) of one 64x64 rectangle at (0, 0) whose bitmap is a white
 * 64x2048 planar one (32 bpp, compressed with FreeRDP's planar encoder,
 * run-length: a few KB), far taller than the 1024x768 desktop that
 * FreeRDP 2.11's planar decoder sizes its scratch buffer for, and which
 * it decodes into that buffer unchecked. MODE "brush" sends, before the
 * teal screen, one Cache Brush order (a secondary drawing order: an 8x8
 * brush of 1 bpp for brush cache entry 1), which the client never asked
 * for: a FreeRDP 2.11 client takes it whatever it announced. MODE
 * "pointer" sends, before the teal screen, a 32x32 New Pointer stored
 * at cache index 1, then a Cached Pointer of index 25, past the 20
 * entries the client announced (FreeRDP's clients' default).
 *
 * It writes what it sees, one line each, to OUTFILE:
 *
 *   offered S N NID R RID   what the client (the proxy's back leg)
 *                           announced: surface commands (0|1), NSCodec
 *                           (0|1) under ID NID, RemoteFX (0|1) under RID
 *   brush                   (brush) the Cache Brush order went out
 *   pointer N               (pointer) the pointer updates went out; the
 *                           client announced a pointer cache of N
 *   sent                    the commands above went out
 *   no nscodec              (nsc modes) the client announced no NSCodec:
 *                           nothing sent
 *
 * Usage: rdp-surf-target PORT CERT KEY OUTFILE
 *        [junk|nsc|nsc-big|bpp1|planar-big|brush|pointer]
 * Serves one connection after another on 127.0.0.1:PORT until killed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <freerdp/codec/color.h>
#include <freerdp/codec/nsc.h>
#include <freerdp/codec/planar.h>
#include <freerdp/constants.h>
#include <freerdp/freerdp.h>
#include <freerdp/peer.h>
#include <freerdp/settings.h>
#include <freerdp/update.h>

#include "rdp_test_server.h"

#define ST_W 1024
#define ST_H 768
#define ST_STRIP 64
/* teal, as B, G, R, A (32 bpp "not encoded" is BGRA) */
static const BYTE st_teal[4] = {128, 128, 0, 255};
/* the NSCodec picture's quadrants as R, G, B: top left, top right,
 * bottom left, bottom right (test_rdp_codec_ids.py QUADS) */
static const BYTE st_quad[4][3] = {
    {220, 40, 40}, {40, 200, 60}, {40, 60, 220}, {230, 200, 40}};

enum st_mode {
    ST_JUNK,
    ST_NSC,
    ST_NSC_BIG,
    ST_BPP1,
    ST_PLANAR_BIG,
    ST_BRUSH,
    ST_POINTER
};
static enum st_mode st_mode = ST_JUNK;

static BOOL st_bits(freerdp_peer *peer, UINT16 codec, UINT32 x, UINT32 y,
                    UINT32 w, UINT32 h, BYTE *data, UINT32 len)
{
    SURFACE_BITS_COMMAND cmd;

    memset(&cmd, 0, sizeof(cmd));
    cmd.cmdType = CMDTYPE_SET_SURFACE_BITS;
    cmd.destLeft = x;
    cmd.destTop = y;
    cmd.destRight = x + w;
    cmd.destBottom = y + h;
    cmd.bmp.bpp = 32;
    cmd.bmp.codecID = codec;
    cmd.bmp.width = (UINT16)w;
    cmd.bmp.height = (UINT16)h;
    cmd.bmp.bitmapDataLength = len;
    cmd.bmp.bitmapData = data;
    return peer->update->SurfaceBits(peer->context, &cmd);
}

/* The hostile Bitmap Update of "planar-big". */
#define ST_PLANAR_W 64
#define ST_PLANAR_H 2048
/* TS_BITMAP_DATA's flags ([MS-RDPBCGR] 2.2.9.1.1.3.1.2.2; FreeRDP 2 does
 * not install its names) */
#define ST_BITMAP_COMPRESSION 0x0001
#define ST_NO_BITMAP_COMPRESSION_HDR 0x0400
static BOOL st_planar_big(freerdp_peer *peer)
{
    BITMAP_PLANAR_CONTEXT *pl = NULL;
    BYTE *white = NULL, *enc = NULL;
    UINT32 len = 0;
    size_t n = (size_t)ST_PLANAR_W * ST_PLANAR_H * 4;
    BITMAP_DATA r;
    BITMAP_UPDATE u;
    BOOL ok = FALSE;

    if ((pl = freerdp_bitmap_planar_context_new(
             PLANAR_FORMAT_HEADER_RLE | PLANAR_FORMAT_HEADER_NA, ST_PLANAR_W,
             ST_PLANAR_H)) == NULL ||
        (white = malloc(n)) == NULL) {
        goto out;
    }
    memset(white, 0xFF, n);
    enc = freerdp_bitmap_compress_planar(pl, white, PIXEL_FORMAT_BGRX32,
                                         ST_PLANAR_W, ST_PLANAR_H,
                                         ST_PLANAR_W * 4, NULL, &len);
    if (enc == NULL || len == 0 || len > UINT16_MAX) {
        fprintf(stderr, "planar encoding failed (%u bytes)\n", (unsigned)len);
        goto out;
    }
    memset(&r, 0, sizeof(r));
    r.destRight = ST_PLANAR_W - 1;
    r.destBottom = ST_PLANAR_W - 1;
    r.width = ST_PLANAR_W;
    r.height = ST_PLANAR_H;
    r.bitsPerPixel = 32;
    r.compressed = TRUE;
    r.flags = ST_BITMAP_COMPRESSION | ST_NO_BITMAP_COMPRESSION_HDR;
    r.cbCompMainBodySize = len;
    r.bitmapLength = len;
    r.bitmapDataStream = enc;
    memset(&u, 0, sizeof(u));
    u.number = 1;
    u.count = 1;
    u.rectangles = &r;
    /* as built above: NO_BITMAP_COMPRESSION_HDR whatever the client said */
    peer->update->autoCalculateBitmapData = FALSE;
    ok = peer->update->BitmapUpdate(peer->context, &u);
    if (ok) {
        rts_say("planar %u", (unsigned)len);
    }
out:
    free(enc);
    free(white);
    freerdp_bitmap_planar_context_free(pl);
    return ok;
}

/*
 * The drawing order of "brush": a Cache Brush order (secondary,
 * [MS-RDPEGDI] 2.2.2.2.1.2.7), 8x8 at 1 bpp, which the proxy's back leg
 * never asked for (no brush cache, no order that paints with one) and
 * FreeRDP 2.11's client takes whatever it announced.
 */
static BOOL st_brush(freerdp_peer *peer)
{
    CACHE_BRUSH_ORDER b;
    BOOL ok;

    memset(&b, 0, sizeof(b));
    b.index = 1;
    b.bpp = 1;
    b.cx = 8;
    b.cy = 8;
    b.length = 8;
    for (int i = 0; i < 8; i++) {
        b.data[i] = (BYTE)(i % 2 == 0 ? 0xAA : 0x55);
    }
    ok = peer->update->BeginPaint(peer->context) &&
         peer->update->secondary->CacheBrush(peer->context, &b) &&
         peer->update->EndPaint(peer->context);
    if (ok) {
        rts_say("brush");
    }
    return ok;
}

/*
 * The pointer updates of "pointer": a 32x32 New Pointer (32 bpp, a
 * black square, opaque) stored at cache index 1, then a Cached Pointer
 * naming index 25, past the 20 entries FreeRDP's clients announce.
 */
static BOOL st_pointer(freerdp_peer *peer)
{
    static BYTE xor_mask[32 * 32 * 4];
    static BYTE and_mask[4 * 32];
    POINTER_NEW_UPDATE p;
    POINTER_CACHED_UPDATE c;
    BOOL ok;

    memset(&p, 0, sizeof(p));
    p.xorBpp = 32;
    p.colorPtrAttr.cacheIndex = 1;
    p.colorPtrAttr.width = 32;
    p.colorPtrAttr.height = 32;
    p.colorPtrAttr.lengthXorMask = sizeof(xor_mask);
    p.colorPtrAttr.xorMaskData = xor_mask;
    p.colorPtrAttr.lengthAndMask = sizeof(and_mask);
    p.colorPtrAttr.andMaskData = and_mask;
    memset(&c, 0, sizeof(c));
    c.cacheIndex = 25;
    ok = peer->update->pointer->PointerNew(peer->context, &p) &&
         peer->update->pointer->PointerCached(peer->context, &c);
    if (ok) {
        rts_say("pointer %u", (unsigned)peer->settings->PointerCacheSize);
    }
    return ok;
}

static BOOL st_send(freerdp_peer *peer)
{
    static const UINT16 bad[] = {0x42, RDP_CODEC_ID_REMOTEFX, RDP_CODEC_ID_JPEG,
                                 RDP_CODEC_ID_IMAGE_REMOTEFX};
    BYTE junk[256];
    BYTE *strip;
    size_t n = (size_t)ST_W * ST_STRIP * 4;
    BOOL ok = TRUE;

    memset(junk, 0xA5, sizeof(junk));
    for (size_t i = 0;
         ok && st_mode == ST_JUNK && i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok = st_bits(peer, bad[i], 16, 16, 8, 8, junk, sizeof(junk));
    }
    if (ok && st_mode == ST_BPP1) {
        SURFACE_BITS_COMMAND cmd;

        memset(&cmd, 0, sizeof(cmd));
        cmd.cmdType = CMDTYPE_SET_SURFACE_BITS;
        cmd.destRight = ST_W;
        cmd.destBottom = ST_STRIP;
        cmd.bmp.bpp = 1;
        cmd.bmp.codecID = RDP_CODEC_ID_NONE;
        cmd.bmp.width = ST_W;
        cmd.bmp.height = ST_STRIP;
        cmd.bmp.bitmapDataLength = 16;
        cmd.bmp.bitmapData = junk;
        ok = peer->update->SurfaceBits(peer->context, &cmd);
    }
    if (ok && st_mode == ST_PLANAR_BIG) {
        ok = st_planar_big(peer);
    }
    if (ok && st_mode == ST_BRUSH) {
        ok = st_brush(peer);
    }
    if (ok && st_mode == ST_POINTER) {
        ok = st_pointer(peer);
    }
    if ((strip = malloc(n)) == NULL) {
        return FALSE;
    }
    for (size_t i = 0; i < n; i += 4) {
        memcpy(strip + i, st_teal, 4);
    }
    for (UINT32 y = 0; ok && y < ST_H; y += ST_STRIP) {
        ok = st_bits(peer, RDP_CODEC_ID_NONE, 0, y, ST_W, ST_STRIP, strip,
                     (UINT32)n);
    }
    free(strip);
    if (ok) {
        rts_say("sent");
    }
    return ok;
}

/* The picture's pixel at (x, y) as BGRX. */
static void st_pixel(UINT32 x, UINT32 y, BYTE *p)
{
    const BYTE *c = st_quad[(y >= ST_H / 2 ? 2 : 0) + (x >= ST_W / 2 ? 1 : 0)];

    if (x >= 64 && x < 128 && y >= 64 && y < 128) {
        BYTE v = x >= 80 && x < 112 && y >= 80 && y < 112 ? 0 : 255;

        p[0] = p[1] = p[2] = v;
    } else {
        p[0] = c[2];
        p[1] = c[1];
        p[2] = c[0];
    }
    p[3] = 255;
}

/* The hostile command of "nsc-big": a bitmap far larger than its 8x8
 * rectangle (an NSCodec stream of 20 bytes: four empty planes, colour
 * loss level 1, no subsampling). */
static BOOL st_nsc_big(freerdp_peer *peer, UINT16 id)
{
    BYTE hdr[20];
    SURFACE_BITS_COMMAND cmd;

    memset(hdr, 0, sizeof(hdr));
    hdr[16] = 1;
    memset(&cmd, 0, sizeof(cmd));
    cmd.cmdType = CMDTYPE_SET_SURFACE_BITS;
    cmd.destLeft = ST_W - 8;
    cmd.destTop = ST_H - 8;
    cmd.destRight = ST_W;
    cmd.destBottom = ST_H;
    cmd.bmp.bpp = 32;
    cmd.bmp.codecID = id;
    cmd.bmp.width = ST_W;
    cmd.bmp.height = 4096;
    cmd.bmp.bitmapDataLength = sizeof(hdr);
    cmd.bmp.bitmapData = hdr;
    return peer->update->SurfaceBits(peer->context, &cmd);
}

/* The picture, NSCodec-encoded strip by strip under the client's ID. */
static BOOL st_send_nsc(freerdp_peer *peer)
{
    UINT16 id = (UINT16)peer->settings->NSCodecId;
    NSC_CONTEXT *nsc = NULL;
    wStream *s = NULL;
    BYTE *strip = NULL;
    size_t stride = (size_t)ST_W * 4;
    BOOL ok = FALSE;

    if (!peer->settings->NSCodec) {
        rts_say("no nscodec");
        return TRUE;
    }
    if ((nsc = nsc_context_new()) == NULL ||
        !nsc_context_reset(nsc, ST_W, ST_STRIP) ||
        !nsc_context_set_parameters(nsc, NSC_COLOR_LOSS_LEVEL, 3) ||
        !nsc_context_set_parameters(nsc, NSC_ALLOW_SUBSAMPLING, TRUE) ||
        !nsc_context_set_parameters(nsc, NSC_COLOR_FORMAT,
                                    PIXEL_FORMAT_BGRX32) ||
        (s = Stream_New(NULL, 65536)) == NULL ||
        (strip = malloc(stride * ST_STRIP)) == NULL) {
        goto out;
    }
    if (st_mode == ST_NSC_BIG && !st_nsc_big(peer, id)) {
        goto out;
    }
    ok = TRUE;
    for (UINT32 y = 0; ok && y < ST_H; y += ST_STRIP) {
        for (UINT32 r = 0; r < ST_STRIP; r++) {
            for (UINT32 x = 0; x < ST_W; x++) {
                st_pixel(x, y + r, strip + r * stride + x * 4);
            }
        }
        Stream_SetPosition(s, 0);
        ok = nsc_compose_message(nsc, s, strip, ST_W, ST_STRIP,
                                 (UINT32)stride) &&
             st_bits(peer, id, 0, y, ST_W, ST_STRIP, Stream_Buffer(s),
                     (UINT32)Stream_GetPosition(s));
    }
    if (ok) {
        rts_say("sent");
    }
out:
    free(strip);
    if (s != NULL) {
        Stream_Free(s, TRUE);
    }
    nsc_context_free(nsc);
    return ok;
}

static BOOL st_activate(freerdp_peer *peer)
{
    const rdpSettings *s = peer->settings;

    rts_say("offered %d %d %u %d %u", s->SurfaceCommandsEnabled ? 1 : 0,
            s->NSCodec ? 1 : 0, (unsigned)s->NSCodecId,
            s->RemoteFxCodec ? 1 : 0, (unsigned)s->RemoteFxCodecId);
    return st_mode != ST_NSC && st_mode != ST_NSC_BIG ? st_send(peer)
                                                      : st_send_nsc(peer);
}

static BOOL st_refresh(rdpContext *c, BYTE count, const RECTANGLE_16 *r)
{
    (void)count;
    (void)r;
    return st_mode != ST_NSC && st_mode != ST_NSC_BIG ? st_send(c->peer)
                                                      : st_send_nsc(c->peer);
}

static void st_serve(freerdp_peer *peer)
{
    /* offered, so that what the client announces is kept (FreeRDP's
     * server keeps only codecs it offered) and can be written out */
    if (!freerdp_settings_set_bool(peer->settings, FreeRDP_RemoteFxCodec,
                                   TRUE) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_NSCodec, TRUE) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_RefreshRect, TRUE)) {
        return;
    }
    peer->update->RefreshRect = st_refresh;
    peer->Activate = st_activate;
    rts_run(peer, NULL);
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[5], "nsc") == 0) {
        st_mode = ST_NSC;
    } else if (argc == 6 && strcmp(argv[5], "nsc-big") == 0) {
        st_mode = ST_NSC_BIG;
    } else if (argc == 6 && strcmp(argv[5], "bpp1") == 0) {
        st_mode = ST_BPP1;
    } else if (argc == 6 && strcmp(argv[5], "planar-big") == 0) {
        st_mode = ST_PLANAR_BIG;
    } else if (argc == 6 && strcmp(argv[5], "brush") == 0) {
        st_mode = ST_BRUSH;
    } else if (argc == 6 && strcmp(argv[5], "pointer") == 0) {
        st_mode = ST_POINTER;
    } else if (argc != 5 && !(argc == 6 && strcmp(argv[5], "junk") == 0)) {
        fprintf(stderr, "usage: rdp-surf-target PORT CERT KEY OUTFILE "
                        "[junk|nsc|nsc-big|bpp1|planar-big|brush|pointer]\n");
        return 2;
    }
    if (!rts_open_out(argv[4])) {
        return 1;
    }
    return rts_serve_forever(argv[1], argv[2], argv[3], st_serve);
}
