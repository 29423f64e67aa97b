/*
 * rdpprobe: the RDP client of bench/rdp. One FreeRDP 2 client session
 * that decodes what it gets (software GDI, as xfreerdp does) and prints,
 * as key=value lines on stdout:
 *
 *   connect_ms      from the start of the TCP connect until the session
 *                   is up (TLS, NLA, licensing, capabilities done)
 *   first_frame_ms  from the same start until the first painted frame
 *   first_gfx_ms    (gfx modes) until the first paint of the graphics
 *                   pipeline's decoder
 *   cpu_s           the probe's own CPU time (user + system), decoding,
 *                   all of the session
 *   sent_bytes      what the client sent (FreeRDP's transport counter)
 *   recv_bytes      what the client's TCP socket received (TCP_INFO
 *                   tcpi_bytes_received), all of the session
 *   gfx             1 when the graphics pipeline channel was connected
 *   classic_after_open  (gfx modes) classic paints between the pipeline's
 *                   channel connecting and the first GFX paint
 *   gfx_cmds_CODEC  GFX surface commands per codec (avc420, planar, ...)
 *
 * and of the held window, which starts at the mode's first frame (the
 * first paint; with GFX the first paint of the pipeline, since the
 * target may send classic updates until the pipeline is up) and lasts
 * SECONDS:
 *
 *   frames          painted frames (GDI EndPaint: output updates)
 *   classic_paints  of these, the paints of classic updates (on the main
 *                   thread; the GFX decoder paints on the channel's)
 *   gfx_frames      GFX frames ended (EndFrame PDUs)
 *   window          1, printed (and flushed) as the window starts
 *   held_ms         its length
 *   held_cpu_s      the probe's CPU time in it
 *   held_recv_bytes what the TCP socket received in it
 *
 * Usage: rdpprobe HOST PORT USER PASSWORD SECONDS [MODE [WAIT]]
 *
 * MODE classic (the default): no graphics pipeline, the classic updates
 * (bitmap updates, surface bits) as before. rfx: classic, with RemoteFX
 * offered as xfreerdp /rfx does (the target then sends RemoteFX surface
 * bits). gfx: the graphics pipeline
 * ([MS-RDPEGFX]) with AVC420 (H.264) offered, as xfreerdp /gfx:avc420;
 * gfx-refresh: gfx, and a Refresh Rect PDU for the whole screen once the
 * caps are confirmed (what the proxy does, docs/rdp.md "A still screen");
 * gfx-noavc: the pipeline without H.264 (the target picks another codec;
 * Debian 12's freerdp-shadow-cli opens the channel and confirms the caps
 * but then sends classic updates only, so this mode waits for a GFX frame
 * in vain there and fails after 30 s: measured 2026-12-04, which is why
 * bench/rdp uses gfx). With GFX, FreeRDP's own client channel add-in
 * (rdpgfx over drdynvc) decodes into the software GDI, wired as xfreerdp
 * does (gdi_graphics_pipeline_init); a paint is an output update of the
 * GDI (EndPaint), as in the classic mode.
 *
 * WAIT: how many seconds the mode's first frame is waited for (default
 * 30); without it the probe says so on stderr, with the paints and GFX
 * frames it had and how many classic paints came after the pipeline's
 * channel connected (bench/rdp --still: a target that sends its first
 * full screen as a classic update after the client's caps advertise
 * sends no GFX frame to a still screen, docs/rdp.md).
 *
 * SECONDS 0: disconnect at the (mode's) first frame. The certificate is
 * accepted without a check (the bench's own loopback servers). Exit status 0
 * when a frame came (and, in a gfx mode, the pipeline channel connected), 1
 * otherwise, with FreeRDP's error on stderr.
 *
 * Built by bench/rdp with the C compiler and pkg-config; not part of the
 * product.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <netinet/in.h>
#include <linux/tcp.h>

#include <freerdp/addin.h>
#include <freerdp/client/channels.h>
#include <freerdp/client/cmdline.h>
#include <freerdp/client/rdpgfx.h>
#include <freerdp/event.h>
#include <freerdp/freerdp.h>
#include <freerdp/gdi/gdi.h>
#include <freerdp/gdi/gfx.h>
#include <freerdp/settings.h>
#include <freerdp/update.h>
#include <winpr/synch.h>

/* the GFX codec IDs ([MS-RDPEGFX] 2.2.1.1) counted by name */
static const struct {
    UINT16 id;
    const char *name;
} codecs[] = {
    {RDPGFX_CODECID_UNCOMPRESSED, "uncompressed"},
    {RDPGFX_CODECID_CAVIDEO, "remotefx"},
    {RDPGFX_CODECID_CLEARCODEC, "clearcodec"},
    {RDPGFX_CODECID_PLANAR, "planar"},
    {RDPGFX_CODECID_AVC420, "avc420"},
    {RDPGFX_CODECID_ALPHA, "alpha"},
    {RDPGFX_CODECID_AVC444, "avc444"},
    {RDPGFX_CODECID_AVC444v2, "avc444v2"},
    {RDPGFX_CODECID_CAPROGRESSIVE, "progressive"},
};
#define NCODECS (sizeof(codecs) / sizeof(codecs[0]))

struct probe {
    rdpContext ctx; /* first: FreeRDP allocates ContextSize bytes */
    pEndPaint gdi_end;
    pcRdpgfxEndFrame gfx_end;
    pcRdpgfxSurfaceCommand gfx_cmd;
    pcRdpgfxCapsConfirm gfx_confirm;
    RdpgfxClientContext *gfx;
    BOOL refresh; /* gfx-refresh: a Refresh Rect after the caps confirm */
    double t0;
    /* written on the channel thread with GFX (the gdi paints there),
     * read by the main loop */
    double first;
    unsigned long frames, gfx_frames, cmds[NCODECS + 1];
    /* paints on the main thread: the classic updates (the GFX decoder
     * paints on the channel's thread) */
    pthread_t main;
    unsigned long main_paints, gfx_paints;
    double first_gfx;
    /* main_paints when the pipeline's channel connected */
    unsigned long paints_at_open;
};

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static BOOL probe_end_paint(rdpContext *ctx)
{
    struct probe *p = (struct probe *)ctx;
    /* gdi_init draws into its own buffer and sets no EndPaint: a
     * client's EndPaint only shows what was drawn */
    BOOL ok = p->gdi_end != NULL ? p->gdi_end(ctx) : TRUE;

    if (__atomic_load_n(&p->frames, __ATOMIC_ACQUIRE) == 0) {
        p->first = now_ms(); /* published by the increment */
    }
    if (pthread_equal(pthread_self(), p->main)) {
        __atomic_add_fetch(&p->main_paints, 1, __ATOMIC_RELAXED);
    } else {
        if (__atomic_load_n(&p->gfx_paints, __ATOMIC_ACQUIRE) == 0) {
            p->first_gfx = now_ms();
        }
        __atomic_add_fetch(&p->gfx_paints, 1, __ATOMIC_RELEASE);
    }
    __atomic_add_fetch(&p->frames, 1, __ATOMIC_RELEASE);
    return ok;
}

static UINT probe_gfx_end_frame(RdpgfxClientContext *gfx,
                                const RDPGFX_END_FRAME_PDU *pdu)
{
    struct probe *p = (struct probe *)((rdpGdi *)gfx->custom)->context;

    __atomic_add_fetch(&p->gfx_frames, 1, __ATOMIC_RELAXED);
    return p->gfx_end(gfx, pdu);
}

static UINT probe_gfx_surface_command(RdpgfxClientContext *gfx,
                                      const RDPGFX_SURFACE_COMMAND *cmd)
{
    struct probe *p = (struct probe *)((rdpGdi *)gfx->custom)->context;
    size_t i;

    for (i = 0; i < NCODECS && codecs[i].id != cmd->codecId; i++) {
    }
    __atomic_add_fetch(&p->cmds[i], 1, __ATOMIC_RELAXED);
    return p->gfx_cmd(gfx, cmd);
}

/* gfx-refresh: the client asks for the whole screen once the caps are
 * confirmed, as the proxy does for its clients (docs/rdp.md, "A still
 * screen"); for bench/rdp --still --client-refresh, which thus checks on
 * direct connections that this makes freerdp-shadow send its first GFX
 * frame. */
static UINT probe_gfx_caps_confirm(RdpgfxClientContext *gfx,
                                   const RDPGFX_CAPS_CONFIRM_PDU *pdu)
{
    struct probe *p = (struct probe *)((rdpGdi *)gfx->custom)->context;
    rdpSettings *s = p->ctx.settings;
    RECTANGLE_16 all = {0, 0, (UINT16)(s->DesktopWidth - 1),
                        (UINT16)(s->DesktopHeight - 1)};
    UINT rc = p->gfx_confirm != NULL ? p->gfx_confirm(gfx, pdu) : CHANNEL_RC_OK;

    if (rc == CHANNEL_RC_OK && !p->ctx.update->RefreshRect(&p->ctx, 1, &all)) {
        return ERROR_INTERNAL_ERROR;
    }
    return rc;
}

/* as xfreerdp's channel handler with the software GDI: the pipeline's
 * decoder is the gdi's */
static void probe_channel_connected(void *ctx, ChannelConnectedEventArgs *e)
{
    struct probe *p = (struct probe *)ctx;
    RdpgfxClientContext *gfx = e->pInterface;

    if (strcmp(e->name, RDPGFX_DVC_CHANNEL_NAME) != 0) {
        return;
    }
    if (!gdi_graphics_pipeline_init(p->ctx.gdi, gfx)) {
        fprintf(stderr, "rdpprobe: gdi_graphics_pipeline_init failed\n");
        return;
    }
    __atomic_store_n(&p->paints_at_open,
                     __atomic_load_n(&p->main_paints, __ATOMIC_ACQUIRE),
                     __ATOMIC_RELEASE);
    p->gfx_end = gfx->EndFrame;
    gfx->EndFrame = probe_gfx_end_frame;
    p->gfx_cmd = gfx->SurfaceCommand;
    gfx->SurfaceCommand = probe_gfx_surface_command;
    if (p->refresh) {
        p->gfx_confirm = gfx->CapsConfirm;
        gfx->CapsConfirm = probe_gfx_caps_confirm;
    }
    __atomic_store_n(&p->gfx, gfx, __ATOMIC_RELEASE);
}

static void probe_channel_disconnected(void *ctx,
                                       ChannelDisconnectedEventArgs *e)
{
    struct probe *p = (struct probe *)ctx;

    if (strcmp(e->name, RDPGFX_DVC_CHANNEL_NAME) == 0 && p->gfx != NULL) {
        gdi_graphics_pipeline_uninit(p->ctx.gdi, e->pInterface);
    }
}

static BOOL probe_pre_connect(freerdp *instance)
{
    rdpContext *ctx = instance->context;

    if (!freerdp_settings_get_bool(instance->settings,
                                   FreeRDP_SupportGraphicsPipeline)) {
        return TRUE;
    }
    PubSub_SubscribeChannelConnected(ctx->pubSub, probe_channel_connected);
    PubSub_SubscribeChannelDisconnected(ctx->pubSub,
                                        probe_channel_disconnected);
    /* drdynvc and, since the pipeline is asked for, rdpgfx in it */
    return freerdp_client_load_addins(ctx->channels, instance->settings);
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* what the session's TCP socket received: the only TCP socket of the
 * probe */
static unsigned long long recv_bytes(void)
{
    unsigned long long sum = 0;
    int fd;

    for (fd = 3; fd < 1024; fd++) {
        struct tcp_info ti;
        socklen_t len = sizeof(ti);

        memset(&ti, 0, sizeof(ti));
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
            len >= offsetof(struct tcp_info, tcpi_bytes_received) +
                       sizeof(ti.tcpi_bytes_received)) {
            sum += ti.tcpi_bytes_received;
        }
    }
    return sum;
}

static BOOL probe_post_connect(freerdp *instance)
{
    struct probe *p = (struct probe *)instance->context;

    if (!gdi_init(instance, PIXEL_FORMAT_BGRX32)) {
        return FALSE;
    }
    p->gdi_end = instance->update->EndPaint;
    instance->update->EndPaint = probe_end_paint;
    return TRUE;
}

static void probe_post_disconnect(freerdp *instance)
{
    gdi_free(instance);
}

static DWORD probe_verify(freerdp *instance, const char *host, UINT16 port,
                          const char *common_name, const char *subject,
                          const char *issuer, const char *fingerprint,
                          DWORD flags)
{
    (void)instance, (void)host, (void)port, (void)common_name, (void)subject,
        (void)issuer, (void)fingerprint, (void)flags;
    return 2; /* accept for this session only */
}

static DWORD probe_verify_changed(freerdp *instance, const char *host,
                                  UINT16 port, const char *common_name,
                                  const char *subject, const char *issuer,
                                  const char *fingerprint,
                                  const char *old_subject,
                                  const char *old_issuer,
                                  const char *old_fingerprint, DWORD flags)
{
    (void)instance, (void)host, (void)port, (void)common_name, (void)subject,
        (void)issuer, (void)fingerprint, (void)old_subject, (void)old_issuer,
        (void)old_fingerprint, (void)flags;
    return 2;
}

int main(int argc, char **argv)
{
    HANDLE handles[64];
    freerdp *instance;
    rdpSettings *s;
    struct probe *p;
    double connected, until;
    struct {
        double t;
        unsigned long frames, classic, gfx_frames;
        unsigned long long recv;
        double cpu;
    } held = {0};
    const char *mode = argc > 6 ? argv[6] : "classic";
    BOOL refresh = strcmp(mode, "gfx-refresh") == 0;
    BOOL gfx = strcmp(mode, "gfx") == 0 || refresh, avc = gfx;
    BOOL rfx = strcmp(mode, "rfx") == 0;
    double wait_ms = argc > 7 ? atof(argv[7]) * 1e3 : 30e3;
    int rc = 1;

    if (argc < 6 || argc > 8 || wait_ms <= 0 ||
        !(strcmp(mode, "classic") == 0 || gfx || rfx ||
          strcmp(mode, "gfx-noavc") == 0)) {
        fprintf(stderr, "usage: rdpprobe HOST PORT USER PASSWORD SECONDS "
                        "[classic|rfx|gfx|gfx-refresh|gfx-noavc [WAIT]]\n");
        return 2;
    }
    gfx = strcmp(mode, "classic") != 0 && !rfx;
    /* the channel add-ins built into libfreerdp-client2 (drdynvc,
     * rdpgfx), as xfreerdp registers them */
    freerdp_register_addin_provider(freerdp_channels_load_static_addin_entry,
                                    0);
    if ((instance = freerdp_new()) == NULL) {
        return 1;
    }
    instance->ContextSize = sizeof(struct probe);
    instance->PreConnect = probe_pre_connect;
    instance->PostConnect = probe_post_connect;
    instance->PostDisconnect = probe_post_disconnect;
    instance->VerifyCertificateEx = probe_verify;
    instance->VerifyChangedCertificateEx = probe_verify_changed;
    if (!freerdp_context_new(instance)) {
        freerdp_free(instance);
        return 1;
    }
    p = (struct probe *)instance->context;
    p->refresh = refresh;
    s = instance->settings;
    if (!freerdp_settings_set_string(s, FreeRDP_ServerHostname, argv[1]) ||
        !freerdp_settings_set_uint32(s, FreeRDP_ServerPort,
                                     (UINT32)atoi(argv[2])) ||
        !freerdp_settings_set_string(s, FreeRDP_Username, argv[3]) ||
        !freerdp_settings_set_string(s, FreeRDP_Password, argv[4]) ||
        !freerdp_settings_set_uint32(s, FreeRDP_DesktopWidth, 1024) ||
        !freerdp_settings_set_uint32(s, FreeRDP_DesktopHeight, 768) ||
        !freerdp_settings_set_uint32(s, FreeRDP_ColorDepth, 32) ||
        !freerdp_settings_set_bool(s, FreeRDP_SoftwareGdi, TRUE) ||
        !freerdp_settings_set_bool(s, FreeRDP_IgnoreCertificate, TRUE) ||
        !freerdp_settings_set_bool(s, FreeRDP_NlaSecurity, TRUE) ||
        !freerdp_settings_set_bool(s, FreeRDP_TlsSecurity, TRUE) ||
        !freerdp_settings_set_bool(s, FreeRDP_RdpSecurity, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_AutoReconnectionEnabled, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_RemoteFxCodec, rfx) ||
        !freerdp_settings_set_bool(s, FreeRDP_SupportGraphicsPipeline, gfx) ||
        !freerdp_settings_set_bool(s, FreeRDP_GfxH264, avc) ||
        !freerdp_settings_set_bool(s, FreeRDP_GfxAVC444, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_GfxAVC444v2, FALSE)) {
        fprintf(stderr, "rdpprobe: cannot set up the client\n");
        goto out;
    }
    p->main = pthread_self();
    p->t0 = now_ms();
    if (!freerdp_connect(instance)) {
        fprintf(stderr, "rdpprobe: connect failed: %s\n",
                freerdp_get_last_error_string(
                    freerdp_get_last_error(instance->context)));
        goto out;
    }
    connected = now_ms();
    until = 0;
    while (!freerdp_shall_disconnect(instance)) {
        DWORD n = freerdp_get_event_handles(instance->context, handles, 64);
        double t = now_ms();

        /* the held window starts at the mode's first frame: the first
         * paint, or with GFX the first paint of the pipeline's decoder
         * (the target may send classic updates until the pipeline is
         * up); counters and the bytes received are taken there */
        if (until == 0 &&
            (gfx ? __atomic_load_n(&p->gfx_paints, __ATOMIC_ACQUIRE)
                 : __atomic_load_n(&p->frames, __ATOMIC_ACQUIRE)) > 0) {
            until = t + atof(argv[5]) * 1e3;
            held.t = t;
            held.frames = __atomic_load_n(&p->frames, __ATOMIC_RELAXED);
            held.classic = __atomic_load_n(&p->main_paints, __ATOMIC_RELAXED);
            held.gfx_frames = __atomic_load_n(&p->gfx_frames, __ATOMIC_RELAXED);
            held.recv = recv_bytes();
            held.cpu = cpu_s();
            /* for bench/rdp, which reads the proxy's and the target's CPU
             * once every session has started its window */
            printf("window=1\n");
            fflush(stdout);
        }
        if (until != 0 && t >= until) {
            break;
        }
        if (t - p->t0 > wait_ms && until == 0) {
            BOOL open = __atomic_load_n(&p->gfx, __ATOMIC_ACQUIRE) != NULL;

            fprintf(
                stderr,
                "rdpprobe: no %sframe within %.0f s (pipeline %s, %lu "
                "paints, %lu classic after the pipeline connected, %lu "
                "GFX frames ended)\n",
                gfx ? "GFX " : "", wait_ms / 1e3,
                open ? "connected" : "not connected",
                __atomic_load_n(&p->frames, __ATOMIC_ACQUIRE),
                open ? __atomic_load_n(&p->main_paints, __ATOMIC_ACQUIRE) -
                           __atomic_load_n(&p->paints_at_open, __ATOMIC_ACQUIRE)
                     : 0,
                __atomic_load_n(&p->gfx_frames, __ATOMIC_ACQUIRE));
            break;
        }
        if (n == 0 ||
            WaitForMultipleObjects(n, handles, FALSE, 100) == WAIT_FAILED ||
            !freerdp_check_event_handles(instance->context)) {
            if (freerdp_get_last_error(instance->context) !=
                FREERDP_ERROR_SUCCESS) {
                fprintf(stderr, "rdpprobe: %s\n",
                        freerdp_get_last_error_string(
                            freerdp_get_last_error(instance->context)));
            }
            break;
        }
    }
    if (gfx && __atomic_load_n(&p->gfx, __ATOMIC_ACQUIRE) == NULL) {
        fprintf(stderr, "rdpprobe: the graphics pipeline was asked for and "
                        "not connected\n");
    } else if (until != 0) {
        double end = now_ms(), cpu = cpu_s();
        size_t i;

        printf("cpu_s=%.3f\nheld_cpu_s=%.3f\n", cpu, cpu - held.cpu);
        printf("connect_ms=%.1f\nfirst_frame_ms=%.1f\n", connected - p->t0,
               p->first - p->t0);
        if (gfx) {
            printf("first_gfx_ms=%.1f\nclassic_after_open=%lu\n",
                   p->first_gfx - p->t0,
                   held.classic -
                       __atomic_load_n(&p->paints_at_open, __ATOMIC_ACQUIRE));
        }
        printf(
            "frames=%lu\nclassic_paints=%lu\ngfx_frames=%lu\n"
            "held_ms=%.0f\nheld_recv_bytes=%llu\n",
            __atomic_load_n(&p->frames, __ATOMIC_ACQUIRE) - held.frames,
            __atomic_load_n(&p->main_paints, __ATOMIC_RELAXED) - held.classic,
            __atomic_load_n(&p->gfx_frames, __ATOMIC_RELAXED) - held.gfx_frames,
            end - held.t, recv_bytes() - held.recv);
        printf(
            "sent_bytes=%lu\nrecv_bytes=%llu\ngfx=%d\n",
            (unsigned long)freerdp_get_transport_sent(instance->context, FALSE),
            recv_bytes(), p->gfx != NULL);
        for (i = 0; i <= NCODECS; i++) {
            unsigned long n = __atomic_load_n(&p->cmds[i], __ATOMIC_RELAXED);

            if (n > 0) {
                printf("gfx_cmds_%s=%lu\n",
                       i < NCODECS ? codecs[i].name : "other", n);
            }
        }
        rc = 0;
    }
    freerdp_disconnect(instance);
out:
    freerdp_context_free(instance);
    freerdp_free(instance);
    return rc;
}
