/*
 * rdpprobe: the RDP client of bench/rdp. One FreeRDP 2 client session
 * that decodes what it gets (software GDI, as xfreerdp does) and prints,
 * as key=value lines on stdout:
 *
 *   connect_ms      from the start of the TCP connect until the session
 *                   is up (TLS, NLA, licensing, capabilities done)
 *   first_frame_ms  from the same start until the first painted frame
 *   frames          painted frames while the session was held
 *   held_ms         how long it was held after the first frame
 *   sent_bytes      what the client sent (FreeRDP's transport counter)
 *   cpu_s           the probe's own CPU time (user + system), decoding
 *
 * Usage: rdpprobe HOST PORT USER PASSWORD SECONDS
 *
 * SECONDS 0: disconnect at the first frame. The certificate is accepted
 * without a check (the bench's own loopback servers). Exit status 0 when
 * a frame came, 1 otherwise, with FreeRDP's error on stderr.
 *
 * Built by bench/rdp with the C compiler and pkg-config; not part of the
 * product.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <freerdp/freerdp.h>
#include <freerdp/gdi/gdi.h>
#include <freerdp/settings.h>
#include <freerdp/update.h>
#include <winpr/synch.h>

struct probe {
    rdpContext ctx; /* first: FreeRDP allocates ContextSize bytes */
    pEndPaint gdi_end;
    double t0, first;
    unsigned long frames;
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

    if (p->frames++ == 0) {
        p->first = now_ms();
    }
    return ok;
}

static BOOL probe_pre_connect(freerdp *instance)
{
    (void)instance;
    return TRUE;
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
    int rc = 1;

    if (argc != 6) {
        fprintf(stderr, "usage: rdpprobe HOST PORT USER PASSWORD SECONDS\n");
        return 2;
    }
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
        !freerdp_settings_set_bool(s, FreeRDP_AutoReconnectionEnabled, FALSE)) {
        fprintf(stderr, "rdpprobe: cannot set up the client\n");
        goto out;
    }
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

        if (p->frames > 0 && until == 0) {
            until = p->first + atof(argv[5]) * 1e3;
        }
        if (until != 0 && t >= until) {
            break;
        }
        if (t - p->t0 > 60e3 && p->frames == 0) {
            fprintf(stderr, "rdpprobe: no frame within 60 s\n");
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
    if (p->frames > 0) {
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        printf("cpu_s=%.3f\n",
               ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
                   (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
        printf("connect_ms=%.1f\nfirst_frame_ms=%.1f\nframes=%lu\n"
               "held_ms=%.0f\nsent_bytes=%lu\n",
               connected - p->t0, p->first - p->t0, p->frames,
               now_ms() - p->first,
               (unsigned long)freerdp_get_transport_sent(instance->context,
                                                         FALSE));
        rc = 0;
    }
    freerdp_disconnect(instance);
out:
    freerdp_context_free(instance);
    freerdp_free(instance);
    return rc;
}
