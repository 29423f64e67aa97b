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
 * It writes what it sees, one line each, to OUTFILE:
 *
 *   offered S N NID R RID   what the client (the proxy's back leg)
 *                           announced: surface commands (0|1), NSCodec
 *                           (0|1) under ID NID, RemoteFX (0|1) under RID
 *   sent                    the commands above went out
 *
 * Usage: rdp-surf-target PORT CERT KEY OUTFILE
 * Serves one connection after another on 127.0.0.1:PORT until killed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static BOOL st_send(freerdp_peer *peer)
{
    static const UINT16 bad[] = {0x42, RDP_CODEC_ID_REMOTEFX, RDP_CODEC_ID_JPEG,
                                 RDP_CODEC_ID_IMAGE_REMOTEFX};
    BYTE junk[256];
    BYTE *strip;
    size_t n = (size_t)ST_W * ST_STRIP * 4;
    BOOL ok = TRUE;

    memset(junk, 0xA5, sizeof(junk));
    for (size_t i = 0; ok && i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok = st_bits(peer, bad[i], 16, 16, 8, 8, junk, sizeof(junk));
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

static BOOL st_activate(freerdp_peer *peer)
{
    const rdpSettings *s = peer->settings;

    rts_say("offered %d %d %u %d %u", s->SurfaceCommandsEnabled ? 1 : 0,
            s->NSCodec ? 1 : 0, (unsigned)s->NSCodecId,
            s->RemoteFxCodec ? 1 : 0, (unsigned)s->RemoteFxCodecId);
    return st_send(peer);
}

static BOOL st_refresh(rdpContext *c, BYTE count, const RECTANGLE_16 *r)
{
    (void)count;
    (void)r;
    return st_send(c->peer);
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
    if (argc != 5) {
        fprintf(stderr, "usage: rdp-surf-target PORT CERT KEY OUTFILE\n");
        return 2;
    }
    if (!rts_open_out(argv[4])) {
        return 1;
    }
    return rts_serve_forever(argv[1], argv[2], argv[3], st_serve);
}
