/*
 * A hostile RDP client for tests/e2e/test_rdp_resize.py: it logs in
 * through the proxy (NLA), joins drdynvc and speaks the client side of
 * [MS-RDPEDYC] itself, accepts the display control channel, and once the
 * target's display control capabilities came, sends what a well-behaved
 * client never does, then a flood of good layouts ending with WIDTHxHEIGHT:
 *
 *   data on a channel that was never opened, a layout with an odd width,
 *   one 9000 pixels wide, one 100x100, one whose monitor count the PDU
 *   does not hold, a PDU of one byte, a compressed PDU, one with 17
 *   monitors, then 12 layouts 20 ms apart (1100x800 ... WIDTHxHEIGHT).
 *
 * It prints one line for each thing it sees, to stdout:
 *
 *   caps N            the capabilities version the target asked for
 *   create NAME       a Create Request (accepted only for display control)
 *   disp-caps N       the target's monitor count
 *   sent              the hostile PDUs and the flood went out
 *   resized WxH       the desktop was resized (Deactivate-Reactivate)
 *   alive             still connected 2 s after the last resize to WxH
 *   timeout | ended   no resize to WIDTHxHEIGHT in 40 s | disconnected
 *
 * Usage: rdp-dvc-client PORT USER PASSWORD WIDTH HEIGHT
 *
 * With --gfx first (test_rdp_gfx.py), it offers the graphics pipeline
 * instead and accepts the target's graphics channel; once that is open
 * it sends what a client never does on it, mixed with the fragments of
 * a valid caps advertise (version 8):
 *
 *   a solid fill (a server's PDU), a frame acknowledgement 4 bytes
 *   short, data on channel 99 (never opened), a Data First announcing
 *   4 GiB, the caps advertise's first 10 bytes as a Data First of 22, a
 *   second Data First before that message ended, a fragment past its
 *   end, then the caps advertise's last 12 bytes.
 *
 * and prints, besides create and caps:
 *
 *   gfx-open          it accepted the graphics channel
 *   sent              the PDUs above went out
 *   caps-confirm V    the target's caps confirm (version V, hex) came
 *   alive             still connected 2 s after it
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <freerdp/channels/channels.h>
#include <freerdp/freerdp.h>
#include <freerdp/settings.h>

#include "rdp_test.h"
#include "rdp_test_client.h"

#define DISP_NAME "Microsoft::Windows::RDS::DisplayControl"
#define GFX_NAME "Microsoft::Windows::RDS::Graphics"

static int dc_gfx_mode;               /* --gfx */
static uint32_t dc_gfx = 0xffffffffu; /* the graphics channel's ID */

static UINT32 dc_w, dc_h, dc_disp = 0xffffffffu;
static int dc_done; /* 1: resized to the final size */
static struct timespec dc_at;

static BOOL dc_send(freerdp *inst, const uint8_t *b, size_t n)
{
    UINT16 id = freerdp_channels_get_id_by_name(inst, "drdynvc");

    return inst->SendChannelData(inst, id, b, n);
}

/* A Monitor Layout of count monitors w x h side by side on channel ch;
 * declared says how many the PDU claims. */
static size_t dc_layout(uint8_t *b, uint32_t ch, uint32_t count,
                        uint32_t declared, uint32_t w, uint32_t h)
{
    size_t n = 0;

    b[n++] = 0x30; /* Data, a 1-byte channel ID */
    b[n++] = (uint8_t)ch;
    rt_put32(b + n, 2);
    rt_put32(b + n + 4, 16 + 40 * count);
    rt_put32(b + n + 8, 40);
    rt_put32(b + n + 12, declared);
    n += 16;
    for (uint32_t i = 0; i < count; i++) {
        memset(b + n, 0, 40);
        rt_put32(b + n, i == 0 ? 1 : 0);
        rt_put32(b + n + 4, i * w);
        rt_put32(b + n + 12, w);
        rt_put32(b + n + 16, h);
        rt_put32(b + n + 32, 100);
        rt_put32(b + n + 36, 100);
        n += 40;
    }
    return n;
}

static void dc_hostile(freerdp *inst)
{
    static uint8_t b[2048];
    size_t n;
    struct timespec ms20 = {0, 20 * 1000 * 1000};

    /* data on channel 99, never opened */
    n = dc_layout(b, 99, 1, 1, 1280, 960);
    dc_send(inst, b, n);
    n = dc_layout(b, dc_disp, 1, 1, 1281, 960);
    dc_send(inst, b, n);
    n = dc_layout(b, dc_disp, 1, 1, 9000, 960);
    dc_send(inst, b, n);
    n = dc_layout(b, dc_disp, 1, 1, 100, 100);
    dc_send(inst, b, n);
    n = dc_layout(b, dc_disp, 1, 1000, 1280, 960);
    dc_send(inst, b, n);
    b[0] = 0x30;
    dc_send(inst, b, 1);
    n = dc_layout(b, dc_disp, 1, 1, 1280, 960);
    b[0] = 0x70; /* Data Compressed */
    dc_send(inst, b, n);
    n = dc_layout(b, dc_disp, 17, 17, 1024, 768);
    dc_send(inst, b, n);
    for (int i = 0; i < 12; i++) {
        uint32_t w = i == 11 ? dc_w : 1100 + 10 * (uint32_t)i;
        uint32_t h = i == 11 ? dc_h : 800;

        n = dc_layout(b, dc_disp, 1, 1, w, h);
        dc_send(inst, b, n);
        nanosleep(&ms20, NULL);
    }
    rtc_say("sent");
}

/* A Data (first 0) or Data First (with the total) PDU on the graphics
 * channel with body. */
static void dc_gfx_send(freerdp *inst, int first, uint32_t total,
                        const uint8_t *body, size_t len)
{
    uint8_t b[256];

    dc_send(inst, b, rt_dvc_data(b, first, (uint8_t)dc_gfx, total, body, len));
}

static void dc_gfx_hostile(freerdp *inst)
{
    uint8_t b[128], caps[22];
    size_t n;

    /* a solid fill: a PDU only a server sends */
    n = rt_gfx_head(b, 0x0004, 8 + 10);
    memset(b + n, 0, 10);
    dc_gfx_send(inst, 0, 0, b, n + 10);
    /* a frame acknowledgement 4 bytes short */
    n = rt_gfx_head(b, 0x000d, 16);
    memset(b + n, 0, 8);
    dc_gfx_send(inst, 0, 0, b, n + 8);
    /* a frame acknowledgement on a channel never opened */
    b[0] = 0x30;
    b[1] = 99;
    n = 2 + rt_gfx_head(b + 2, 0x000d, 20);
    memset(b + n, 0, 12);
    dc_send(inst, b, n + 12);
    /* a message announced at 4 GiB */
    n = rt_gfx_head(b, 0x0010, 0xffffffffu);
    dc_gfx_send(inst, 1, 0xffffffffu, b, n);
    /* the caps advertise (one set: version 8, flags 0) in two fragments,
     * with a second message begun and a fragment too long between them */
    n = rt_gfx_head(caps, 0x0012, sizeof(caps));
    caps[n] = 1; /* capsSetCount */
    caps[n + 1] = 0;
    rt_put32(caps + n + 2, 0x00080004);
    rt_put32(caps + n + 6, 4);
    rt_put32(caps + n + 10, 0);
    dc_gfx_send(inst, 1, sizeof(caps), caps, 10);
    dc_gfx_send(inst, 1, sizeof(caps), caps, 10);
    memset(b, 0, 30);
    dc_gfx_send(inst, 0, 0, b, 30);
    dc_gfx_send(inst, 0, 0, caps + 10, sizeof(caps) - 10);
    rtc_say("sent");
}

static BOOL dc_channel(freerdp *inst, UINT16 id, const BYTE *data, size_t size,
                       UINT32 flags, size_t total)
{
    uint8_t b[64];
    unsigned cmd;
    uint32_t ch;

    (void)id;
    /* every message here fits in one chunk */
    if (!(flags & CHANNEL_FLAG_FIRST) || !(flags & CHANNEL_FLAG_LAST) ||
        size != total || size < 2) {
        return TRUE;
    }
    cmd = data[0] >> 4;
    if (cmd == 5 && size >= 4) {
        rtc_say("caps %u", rt_get16(data + 2));
        b[0] = 0x50;
        b[1] = 0;
        b[2] = 3; /* a client of version 3 */
        b[3] = 0;
        return dc_send(inst, b, 4);
    }
    if ((data[0] & 3) != 0) {
        return TRUE; /* the proxy's target uses 1-byte IDs */
    }
    ch = data[1];
    if (cmd == 1 && memchr(data + 2, 0, size - 2) != NULL) {
        int disp = strcmp((const char *)data + 2, DISP_NAME) == 0;
        int gfx = dc_gfx_mode && strcmp((const char *)data + 2, GFX_NAME) == 0;
        BOOL ok;

        rtc_say("create %s", (const char *)data + 2);
        if (disp) {
            dc_disp = ch;
        }
        b[0] = 0x10;
        b[1] = (uint8_t)ch;
        rt_put32(b + 2, disp || gfx ? 0 : 0x80004005u);
        ok = dc_send(inst, b, 6);
        if (gfx) {
            dc_gfx = ch;
            rtc_say("gfx-open");
            dc_gfx_hostile(inst);
        }
        return ok;
    }
    /* the target's caps confirm: one uncompressed segment (FreeRDP's
     * servers do not compress) */
    if (cmd == 3 && ch == dc_gfx && size >= 2 + 2 + 8 + 4 && data[2] == 0xe0 &&
        (data[3] & 0x20) == 0 && data[4] == 0x13 && data[5] == 0 && !dc_done) {
        rtc_say("caps-confirm 0x%08x", rt_get32(data + 2 + 2 + 8));
        dc_done = 1;
        clock_gettime(CLOCK_MONOTONIC, &dc_at);
    }
    if (cmd == 3 && ch == dc_disp && size >= 2 + 12 &&
        rt_get32(data + 2) == 5) {
        rtc_say("disp-caps %u", rt_get32(data + 2 + 8));
        dc_hostile(inst);
    }
    return TRUE;
}

static BOOL dc_resize(rdpContext *c)
{
    UINT32 w = c->settings->DesktopWidth, h = c->settings->DesktopHeight;

    rtc_say("resized %ux%u", w, h);
    if (w == dc_w && h == dc_h) {
        dc_done = 1;
        clock_gettime(CLOCK_MONOTONIC, &dc_at);
    }
    return TRUE;
}

static BOOL dc_pre(freerdp *inst)
{
    rtc_ignore_updates(inst->update, dc_resize);
    return rtc_channel(inst, "drdynvc",
                       CHANNEL_OPTION_ENCRYPT_RDP |
                           CHANNEL_OPTION_COMPRESS_RDP);
}

static BOOL dc_post(freerdp *inst)
{
    /* the pointer cache's handlers replaced */
    rtc_ignore_updates(inst->update, dc_resize);
    return TRUE;
}

/* "alive" 2 s after it was done, or "timeout" after 40 s. */
static int dc_tick(const struct timespec *start)
{
    if (dc_done && rt_since(&dc_at) > 2.0) {
        rtc_say("alive");
        return 1;
    }
    if (rt_since(start) > 40.0) {
        rtc_say("timeout");
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    freerdp *inst;
    rdpSettings *s;
    int r;

    if (argc == 7 && strcmp(argv[1], "--gfx") == 0) {
        dc_gfx_mode = 1;
        argv++;
        argc--;
    }
    if (argc != 6) {
        fprintf(stderr, "usage: rdp-dvc-client [--gfx] PORT USER PASSWORD "
                        "WIDTH HEIGHT\n");
        return 2;
    }
    dc_w = (UINT32)atoi(argv[4]);
    dc_h = (UINT32)atoi(argv[5]);
    inst = rtc_new(argv[1], argv[2], argv[3], 1024, 768, dc_pre, dc_post,
                   dc_channel);
    if (inst == NULL) {
        return 1;
    }
    s = inst->settings;
    memset(s->OrderSupport, 0, 32);
    if (!freerdp_settings_set_bool(s, FreeRDP_DesktopResize, TRUE) ||
        !freerdp_settings_set_bool(s, FreeRDP_RemoteFxCodec, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_NSCodec, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_SurfaceCommandsEnabled, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_SupportGraphicsPipeline,
                                   dc_gfx_mode ? TRUE : FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_BitmapCacheEnabled, FALSE)) {
        return 1;
    }
    if ((r = rtc_run(inst, dc_tick)) != 1) {
        return 1; /* ended, or a timeout (not disconnected) */
    }
    rtc_free(inst);
    return 0;
}
