/* The test clients' common client side (rdp_test_client.h). */
#include "rdp_test_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <freerdp/channels/channels.h>
#include <freerdp/settings.h>
#include <freerdp/update.h>
#include <winpr/synch.h>

void rtc_say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

freerdp *rtc_new(const char *port, const char *user, const char *password,
                 UINT32 w, UINT32 h, pPreConnect pre, pPostConnect post,
                 pReceiveChannelData channel)
{
    freerdp *inst = freerdp_new();
    rdpSettings *s;

    if (inst == NULL) {
        return NULL;
    }
    inst->PreConnect = pre;
    inst->PostConnect = post;
    inst->ReceiveChannelData = channel;
    if (!freerdp_context_new(inst)) {
        freerdp_free(inst);
        return NULL;
    }
    s = inst->settings;
    if (!freerdp_settings_set_string(s, FreeRDP_ServerHostname, "127.0.0.1") ||
        !freerdp_settings_set_uint32(s, FreeRDP_ServerPort,
                                     (UINT32)atoi(port)) ||
        !freerdp_settings_set_string(s, FreeRDP_Username, user) ||
        !freerdp_settings_set_string(s, FreeRDP_Password, password) ||
        !freerdp_settings_set_bool(s, FreeRDP_IgnoreCertificate, TRUE) ||
        !freerdp_settings_set_bool(s, FreeRDP_NlaSecurity, TRUE) ||
        !freerdp_settings_set_bool(s, FreeRDP_TlsSecurity, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_RdpSecurity, FALSE) ||
        !freerdp_settings_set_uint32(s, FreeRDP_DesktopWidth, w) ||
        !freerdp_settings_set_uint32(s, FreeRDP_DesktopHeight, h) ||
        !freerdp_settings_set_uint32(s, FreeRDP_ColorDepth, 32) ||
        !freerdp_settings_set_bool(s, FreeRDP_SupportDynamicChannels, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_CompressionEnabled, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_AutoReconnectionEnabled, FALSE)) {
        freerdp_context_free(inst);
        freerdp_free(inst);
        return NULL;
    }
    return inst;
}

BOOL rtc_channel(freerdp *inst, const char *name, UINT32 options)
{
    rdpSettings *s = inst->settings;
    CHANNEL_DEF *d;

    if (s->ChannelDefArray == NULL || s->ChannelDefArraySize < 1) {
        return FALSE;
    }
    d = &s->ChannelDefArray[0];
    memset(d, 0, sizeof(*d));
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->options = CHANNEL_OPTION_INITIALIZED | options;
    s->ChannelCount = 1;
    return TRUE;
}

static BOOL rtc_true(rdpContext *c)
{
    (void)c;
    return TRUE;
}

static BOOL rtc_bitmap(rdpContext *c, const BITMAP_UPDATE *b)
{
    (void)c;
    (void)b;
    return TRUE;
}

static BOOL rtc_palette(rdpContext *c, const PALETTE_UPDATE *p)
{
    (void)c;
    (void)p;
    return TRUE;
}

static BOOL rtc_surface(rdpContext *c, const SURFACE_BITS_COMMAND *s)
{
    (void)c;
    (void)s;
    return TRUE;
}

static BOOL rtc_marker(rdpContext *c, const SURFACE_FRAME_MARKER *m)
{
    (void)c;
    (void)m;
    return TRUE;
}

static BOOL rtc_ptr_pos(rdpContext *c, const POINTER_POSITION_UPDATE *p)
{
    (void)c;
    (void)p;
    return TRUE;
}

static BOOL rtc_ptr_sys(rdpContext *c, const POINTER_SYSTEM_UPDATE *p)
{
    (void)c;
    (void)p;
    return TRUE;
}

static BOOL rtc_ptr_color(rdpContext *c, const POINTER_COLOR_UPDATE *p)
{
    (void)c;
    (void)p;
    return TRUE;
}

static BOOL rtc_ptr_new(rdpContext *c, const POINTER_NEW_UPDATE *p)
{
    (void)c;
    (void)p;
    return TRUE;
}

static BOOL rtc_ptr_cached(rdpContext *c, const POINTER_CACHED_UPDATE *p)
{
    (void)c;
    (void)p;
    return TRUE;
}

static BOOL rtc_ptr_large(rdpContext *c, const POINTER_LARGE_UPDATE *p)
{
    (void)c;
    (void)p;
    return TRUE;
}

void rtc_ignore_updates(rdpUpdate *u, pDesktopResize resize)
{
    u->BeginPaint = rtc_true;
    u->EndPaint = rtc_true;
    u->BitmapUpdate = rtc_bitmap;
    u->Palette = rtc_palette;
    u->SurfaceBits = rtc_surface;
    u->SurfaceFrameMarker = rtc_marker;
    u->DesktopResize = resize;
    u->pointer->PointerPosition = rtc_ptr_pos;
    u->pointer->PointerSystem = rtc_ptr_sys;
    u->pointer->PointerColor = rtc_ptr_color;
    u->pointer->PointerNew = rtc_ptr_new;
    u->pointer->PointerCached = rtc_ptr_cached;
    u->pointer->PointerLarge = rtc_ptr_large;
}

int rtc_run(freerdp *inst, int (*tick)(const struct timespec *start))
{
    HANDLE h[64];
    DWORD n;
    struct timespec start;
    int r;

    if (!freerdp_connect(inst)) {
        rtc_say("ended");
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        n = freerdp_get_event_handles(inst->context, h, 64);
        if (n == 0 || WaitForMultipleObjects(n, h, FALSE, 100) == WAIT_FAILED ||
            !freerdp_check_event_handles(inst->context) ||
            freerdp_shall_disconnect(inst)) {
            rtc_say("ended");
            return -1;
        }
        if ((r = tick(&start)) != 0) {
            return r;
        }
    }
}

void rtc_free(freerdp *inst)
{
    if (inst == NULL) {
        return;
    }
    freerdp_disconnect(inst);
    freerdp_context_free(inst);
    freerdp_free(inst);
}
