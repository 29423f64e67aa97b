/*
 * A hostile RDP target that speaks the graphics pipeline, for
 * tests/e2e/test_rdp_gfx.py: a real RDP server (libfreerdp-server2, TLS
 * security, any login accepted) that speaks drdynvc ([MS-RDPEDYC]) on
 * the static channel by hand, opens "Microsoft::Windows::RDS::Graphics"
 * and, once the client's caps advertise came, sends what a target never
 * should around a good caps confirm and one good frame:
 *
 *   a second graphics channel under the same ID, data that is not
 *   segmented data, a multipart message announcing 4 GiB uncompressed,
 *   a Data First announcing 4 GiB, the caps confirm (8.1) split in two
 *   with a second Data First and a fragment past its end between the
 *   halves; then a frame: reset graphics, a 1024x768 surface mapped to
 *   the output, filled with crimson between start and end of frame 7.
 *
 * It writes what it sees, one line each, to OUTFILE:
 *
 *   gfx-offered 0|1   whether the client offered the graphics pipeline
 *   no-drdynvc        a connection without drdynvc
 *   caps N            the client's drdynvc version
 *   gfx-open          the client accepted the graphics channel
 *   gfx-refused       the client refused it
 *   caps-advertise    the client's caps advertise came
 *   sent              the PDUs above went out
 *   frame-ack N       the client acknowledged frame N
 *
 * With "still" after OUTFILE it is no hostile target but a still screen
 * that draws only when asked, as FreeRDP's shadow server does when it
 * lost its first graphics frame (docs/rdp.md, "A still screen"): a good
 * caps confirm (8.1) answers the caps advertise, and the frame above
 * goes out only for a Refresh Rect PDU, or a Suppress Output PDU that
 * allows output, which came after it; once for each. Its lines then:
 *
 *   confirmed         the caps confirm went out
 *   refresh           a Refresh Rect PDU came
 *   suppress 0|1      a Suppress Output PDU came (1: output allowed)
 *   drawn             the frame went out
 *
 * Usage: rdp-gfx-target PORT CERT KEY OUTFILE [still]
 * Serves one connection after another on 127.0.0.1:PORT until killed.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <freerdp/channels/wtsvc.h>
#include <freerdp/freerdp.h>
#include <freerdp/peer.h>
#include <freerdp/settings.h>

#include "rdp_test.h"
#include "rdp_test_server.h"

#define GT_GFX_NAME "Microsoft::Windows::RDS::Graphics"
#define GT_GFX_ID 3
#define GT_MSG_MAX (1024 * 1024)

static UINT16 gt_dvc;
static int gt_sent;
static int gt_still;     /* the still-screen mode */
static int gt_confirmed; /* still: the caps confirm went out */
static uint8_t gt_buf[GT_MSG_MAX];
static struct rt_msg gt_msg = {gt_buf, GT_MSG_MAX, 0, 0};

static BOOL gt_send(freerdp_peer *peer, const uint8_t *b, size_t n)
{
    return peer->SendChannelData(peer, gt_dvc, b, n);
}

/* A DVC Data PDU (first: a Data First with the total) on the graphics
 * channel. */
static BOOL gt_data(freerdp_peer *peer, int first, uint32_t total,
                    const uint8_t *body, size_t len)
{
    static uint8_t b[4096];

    return gt_send(peer, b, rt_dvc_data(b, first, GT_GFX_ID, total, body, len));
}

/* One good frame as one uncompressed segment: reset graphics, a surface
 * mapped to the output, a crimson fill in frame 7. */
static size_t gt_frame(uint8_t *b)
{
    size_t n = 0, k;

    b[n++] = 0xe0; /* single segment */
    b[n++] = 0x04; /* RDP8 bulk data, not compressed */
    k = n;
    n += rt_gfx_head(b + n, 0x000e, 340); /* reset graphics */
    memset(b + n, 0, 340 - 8);
    rt_put32(b + n, 1024);
    rt_put32(b + n + 4, 768);
    rt_put32(b + n + 8, 1); /* one monitor */
    rt_put32(b + n + 12 + 8, 1023);
    rt_put32(b + n + 12 + 12, 767);
    rt_put32(b + n + 12 + 16, 1); /* primary */
    n = k + 340;
    n += rt_gfx_head(b + n, 0x0009, 15); /* create surface 1 */
    rt_put16(b + n, 1);
    rt_put16(b + n + 2, 1024);
    rt_put16(b + n + 4, 768);
    b[n + 6] = 0x20; /* XRGB */
    n += 7;
    n += rt_gfx_head(b + n, 0x000f, 20); /* map surface to output */
    memset(b + n, 0, 12);
    rt_put16(b + n, 1);
    n += 12;
    n += rt_gfx_head(b + n, 0x000b, 16); /* start frame 7 */
    rt_put32(b + n, 0);
    rt_put32(b + n + 4, 7);
    n += 8;
    n += rt_gfx_head(b + n, 0x0004, 24); /* solid fill */
    rt_put16(b + n, 1);
    b[n + 2] = 60; /* B, G, R, XA: crimson */
    b[n + 3] = 20;
    b[n + 4] = 220;
    b[n + 5] = 0;
    rt_put16(b + n + 6, 1);
    rt_put16(b + n + 8, 0);
    rt_put16(b + n + 10, 0);
    rt_put16(b + n + 12, 1024);
    rt_put16(b + n + 14, 768);
    n += 16;
    n += rt_gfx_head(b + n, 0x000c, 12); /* end frame 7 */
    rt_put32(b + n, 7);
    return n + 4;
}

static void gt_hostile(freerdp_peer *peer)
{
    uint8_t b[1024], confirm[22];
    size_t n;

    /* a second graphics channel under the open one's ID */
    n = 0;
    b[n++] = 0x10;
    b[n++] = GT_GFX_ID;
    memcpy(b + n, GT_GFX_NAME, sizeof(GT_GFX_NAME));
    gt_send(peer, b, n + sizeof(GT_GFX_NAME));
    /* not segmented data */
    n = rt_gfx_head(b, 0x0013, 20);
    memset(b + n, 0, 12);
    gt_data(peer, 0, 0, b, n + 12);
    /* a multipart message announcing 4 GiB uncompressed */
    b[0] = 0xe1;
    rt_put16(b + 1, 1);
    rt_put32(b + 3, 0xffffffffu);
    rt_put32(b + 7, 1);
    b[11] = 0x04;
    gt_data(peer, 0, 0, b, 12);
    /* a Data First announcing 4 GiB */
    b[0] = 0xe0;
    b[1] = 0x04;
    gt_data(peer, 1, 0xffffffffu, b, 2);
    /* the caps confirm (8.1, flags 0) in two halves, a second message
     * begun and a fragment past the end between them */
    confirm[0] = 0xe0;
    confirm[1] = 0x04;
    n = 2 + rt_gfx_head(confirm + 2, 0x0013, 20);
    rt_put32(confirm + n, 0x00080105);
    rt_put32(confirm + n + 4, 4);
    rt_put32(confirm + n + 8, 0);
    gt_data(peer, 1, sizeof(confirm), confirm, 10);
    gt_data(peer, 1, sizeof(confirm), confirm, 10);
    memset(b, 0, 40);
    gt_data(peer, 0, 0, b, 40);
    gt_data(peer, 0, 0, confirm + 10, sizeof(confirm) - 10);
    /* a frame */
    n = gt_frame(b);
    gt_data(peer, 0, 0, b, n);
    rts_say("sent");
}

/* still: a plain caps confirm, 8.1 with no flags, one uncompressed
 * segment. */
static void gt_confirm(freerdp_peer *peer)
{
    uint8_t b[22];
    size_t n;

    b[0] = 0xe0;
    b[1] = 0x04;
    n = 2 + rt_gfx_head(b + 2, 0x0013, 20);
    rt_put32(b + n, 0x00080105);
    rt_put32(b + n + 4, 4);
    rt_put32(b + n + 8, 0);
    gt_data(peer, 0, 0, b, sizeof(b));
    gt_confirmed = 1;
    rts_say("confirmed");
}

/* still: the frame, when the client asked for the screen after the
 * caps confirm */
static void gt_draw(freerdp_peer *peer)
{
    uint8_t b[1024];

    if (!gt_confirmed) {
        return;
    }
    gt_data(peer, 0, 0, b, gt_frame(b));
    rts_say("drawn");
}

static BOOL gt_refresh(rdpContext *ctx, BYTE count, const RECTANGLE_16 *r)
{
    (void)count, (void)r;
    rts_say("refresh");
    gt_draw(ctx->peer);
    return TRUE;
}

static BOOL gt_suppress(rdpContext *ctx, BYTE allow, const RECTANGLE_16 *r)
{
    (void)r;
    rts_say("suppress %d", allow ? 1 : 0);
    if (allow) {
        gt_draw(ctx->peer);
    }
    return TRUE;
}

/* One whole drdynvc message from the client. */
static void gt_dvc_msg(freerdp_peer *peer, const uint8_t *m, size_t len)
{
    unsigned cmd = m[0] >> 4;
    uint8_t b[64];
    size_t n = 0;

    if (cmd == 5 && len >= 4) {
        rts_say("caps %u", rt_get16(m + 2));
        b[n++] = 0x10;
        b[n++] = GT_GFX_ID;
        memcpy(b + n, GT_GFX_NAME, sizeof(GT_GFX_NAME));
        gt_send(peer, b, n + sizeof(GT_GFX_NAME));
        return;
    }
    if ((m[0] & 3) != 0 || len < 2 || m[1] != GT_GFX_ID) {
        return;
    }
    if (cmd == 1 && len == 6) {
        rts_say((int32_t)rt_get32(m + 2) >= 0 ? "gfx-open" : "gfx-refused");
        return;
    }
    /* the client's PDUs, one per message */
    if (cmd == 3 && len >= 2 + 8) {
        unsigned id = (unsigned)(m[2] | (m[3] << 8));

        if (id == 0x0012 && !gt_sent) {
            rts_say("caps-advertise");
            gt_sent = 1;
            if (gt_still) {
                gt_confirm(peer);
            } else {
                gt_hostile(peer);
            }
        } else if (id == 0x000d && len >= 2 + 20) {
            rts_say("frame-ack %u", rt_get32(m + 2 + 8 + 4));
        }
    }
}

static BOOL gt_channel(freerdp_peer *peer, UINT16 id, const BYTE *data,
                       size_t size, UINT32 flags, size_t total)
{
    if (id == gt_dvc && gt_dvc != 0 &&
        rt_msg_add(&gt_msg, data, size, flags, total)) {
        gt_dvc_msg(peer, gt_msg.b, gt_msg.len);
    }
    return TRUE;
}

/* Active: the drdynvc capabilities (version 2, no priority charges). */
static BOOL gt_activate(freerdp_peer *peer)
{
    uint8_t caps[12] = {0x50, 0, 2, 0};

    rts_say("gfx-offered %d", peer->settings->SupportGraphicsPipeline ? 1 : 0);
    gt_dvc = WTSChannelGetId(peer, "drdynvc");
    if (gt_dvc == 0) {
        rts_say("no-drdynvc");
        return TRUE;
    }
    return gt_send(peer, caps, sizeof(caps));
}

static void gt_serve(freerdp_peer *peer)
{
    gt_dvc = 0;
    gt_msg.total = 0;
    gt_sent = 0;
    gt_confirmed = 0;
    if (!freerdp_settings_set_bool(peer->settings,
                                   FreeRDP_SupportGraphicsPipeline, TRUE) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_RefreshRect, TRUE) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_SuppressOutput,
                                   TRUE)) {
        return;
    }
    peer->update->RefreshRect = gt_refresh;
    peer->update->SuppressOutput = gt_suppress;
    peer->Activate = gt_activate;
    peer->ReceiveChannelData = gt_channel;
    rts_run(peer, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6 || (argc == 6 && strcmp(argv[5], "still"))) {
        fprintf(stderr,
                "usage: rdp-gfx-target PORT CERT KEY OUTFILE [still]\n");
        return 2;
    }
    gt_still = argc == 6;
    if (!rts_open_out(argv[4])) {
        return 1;
    }
    return rts_serve_forever(argv[1], argv[2], argv[3], gt_serve);
}
