/*
 * A test RDP server with device redirection and audio, for
 * tests/e2e/test_rdp_devices.py.
 *
 * FreeRDP's shadow server (the other RDP tests' target) speaks neither;
 * this is a real RDP server (libfreerdp-server2, TLS security, any login
 * accepted) that runs FreeRDP's own channel servers, rdpdr ([MS-RDPEFS])
 * and rdpsnd ([MS-RDPEA]), and writes what it sees, one line each, to
 * OUTFILE:
 *
 *   joined CHANNEL     the client (the proxy) joined rdpdr or rdpsnd
 *   no-CHANNEL         a connection without it
 *   drive ID NAME      a drive the client announced
 *   printer ID NAME    a printer, likewise
 *   port ID NAME       a serial or parallel port, likewise
 *   smartcard ID NAME  a smart card, likewise
 *   open ID STATUS     the answer to opening FILE on a drive
 *   read STATUS LEN SHA256 TEXT   the file read back (its first 200
 *                      bytes as ASCII, others as '?'); then it tries the
 *                      same open on device IDs 1 to 6 (an "open" line for
 *                      each answer)
 *   audio formats N    the client's audio formats (N of them)
 *   audio confirm      the client confirmed a block of samples
 *
 * On each drive announced it opens FILE (a path on the drive, such as
 * \secret.txt) and reads it (64 KiB at most). Once the client's audio
 * formats are known it selects the first PCM one and sends a block of
 * silence.
 *
 * Usage: rdp-dev-target PORT CERT KEY OUTFILE FILE
 * Serves one connection after another on 127.0.0.1:PORT until killed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <freerdp/channels/channels.h>
#include <freerdp/channels/wtsvc.h>
#include <freerdp/codec/audio.h>
#include <freerdp/freerdp.h>
#include <freerdp/peer.h>
#include <freerdp/server/rdpdr.h>
#include <freerdp/server/rdpsnd.h>
#include <freerdp/settings.h>
#include <winpr/crypto.h>
#include <winpr/ssl.h>
#include <winpr/synch.h>

#define DT_READ_MAX 65536
#define DT_GENERIC_READ 0x80000000u
#define DT_FILE_OPEN 1u
#define DT_PROBE_MAX 6u

static FILE *dt_out;
static const char *dt_file;
static HANDLE dt_vcm;
static bool dt_probed;
static RdpdrServerContext *dt_dr;
static RdpsndServerContext *dt_snd;
static CRITICAL_SECTION dt_lock;

static const AUDIO_FORMAT dt_pcm = {
    WAVE_FORMAT_PCM, 2, 44100, 176400, 4, 16, 0, NULL};

static void dt_say(const char *fmt, ...)
{
    va_list ap;

    EnterCriticalSection(&dt_lock);
    va_start(ap, fmt);
    vfprintf(dt_out, fmt, ap);
    va_end(ap);
    fputc('\n', dt_out);
    fflush(dt_out);
    LeaveCriticalSection(&dt_lock);
}

static void dt_drive(RdpdrServerContext *c, UINT32 id, const char *name)
{
    UINT e;

    dt_say("drive %u %s", id, name);
    e = c->DriveOpenFile(c, (void *)(uintptr_t)id, id, dt_file, DT_GENERIC_READ,
                         DT_FILE_OPEN);
    if (e != CHANNEL_RC_OK) {
        dt_say("open %u send-failed %u", id, e);
    }
}

static void dt_opened(RdpdrServerContext *c, void *cb, UINT32 status, UINT32 id,
                      UINT32 file)
{
    dt_say("open %u %u", id, status);
    if (status == 0 && !dt_probed) {
        dt_probed = true;
        (void)c->DriveReadFile(c, cb, id, file, DT_READ_MAX, 0);
    }
}

static void dt_read(RdpdrServerContext *c, void *cb, UINT32 status,
                    const char *buf, UINT32 len)
{
    BYTE md[32];
    char hex[65], text[201];
    size_t i;

    if (!winpr_Digest(WINPR_MD_SHA256, (const BYTE *)buf, len, md,
                      sizeof(md))) {
        memset(md, 0, sizeof(md));
    }
    for (i = 0; i < sizeof(md); i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    for (i = 0; i < len && i < 200; i++) {
        unsigned char ch = (unsigned char)buf[i];

        text[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    text[i] = '\0';
    dt_say("read %u %u %s %s", status, len, hex, text);
    /* then, as a hostile server would, the same open on the IDs a client
     * gives its other devices (xfreerdp counts from 1): an ID the target
     * was never told of gets an answer only if the proxy lets it by */
    for (UINT32 id = 1; id <= DT_PROBE_MAX; id++) {
        if (id != (UINT32)(uintptr_t)cb) {
            (void)c->DriveOpenFile(c, (void *)(uintptr_t)id, id, dt_file,
                                   DT_GENERIC_READ, DT_FILE_OPEN);
        }
    }
}

static void dt_printer(RdpdrServerContext *c, UINT32 id, const char *name)
{
    (void)c;
    dt_say("printer %u %s", id, name);
}

static void dt_port(RdpdrServerContext *c, UINT32 id, const char *name)
{
    (void)c;
    dt_say("port %u %s", id, name);
}

static void dt_smartcard(RdpdrServerContext *c, UINT32 id, const char *name)
{
    (void)c;
    dt_say("smartcard %u %s", id, name);
}

static void dt_audio(RdpsndServerContext *c)
{
    static BYTE silence[4 * 4410];
    UINT16 i;

    dt_say("audio formats %u", c->num_client_formats);
    for (i = 0; i < c->num_client_formats; i++) {
        if (c->client_formats[i].wFormatTag == WAVE_FORMAT_PCM) {
            break;
        }
    }
    if (i == c->num_client_formats) {
        return;
    }
    if (c->SelectFormat(c, i) != CHANNEL_RC_OK ||
        c->SendSamples(c, silence, 4410, 0) != CHANNEL_RC_OK) {
        dt_say("audio send-failed");
    }
}

static UINT dt_confirm(RdpsndServerContext *c, BYTE block, UINT16 ts)
{
    (void)c;
    (void)block;
    (void)ts;
    dt_say("audio confirm");
    return CHANNEL_RC_OK;
}

static BOOL dt_post_connect(freerdp_peer *peer)
{
    (void)peer;
    return TRUE;
}

static BOOL dt_activate(freerdp_peer *peer)
{
    (void)peer;
    if (dt_dr == NULL) {
        if (!WTSVirtualChannelManagerIsChannelJoined(dt_vcm, "rdpdr")) {
            dt_say("no-rdpdr");
        } else if ((dt_dr = rdpdr_server_context_new(dt_vcm)) != NULL) {
            dt_say("joined rdpdr");
            dt_dr->supportsDrives = TRUE;
            dt_dr->supportsPorts = TRUE;
            dt_dr->supportsPrinters = TRUE;
            dt_dr->supportsSmartcards = TRUE;
            dt_dr->OnDriveCreate = dt_drive;
            dt_dr->OnDriveOpenFileComplete = dt_opened;
            dt_dr->OnDriveReadFileComplete = dt_read;
            dt_dr->OnPrinterCreate = dt_printer;
            dt_dr->OnPortCreate = dt_port;
            dt_dr->OnSmartcardCreate = dt_smartcard;
            if (dt_dr->Start(dt_dr) != CHANNEL_RC_OK) {
                dt_say("rdpdr start failed");
            }
        }
    }
    if (dt_snd == NULL) {
        if (!WTSVirtualChannelManagerIsChannelJoined(dt_vcm, "rdpsnd")) {
            dt_say("no-rdpsnd");
        } else if ((dt_snd = rdpsnd_server_context_new(dt_vcm)) != NULL) {
            dt_say("joined rdpsnd");
            /* the context's to free */
            dt_snd->server_formats = audio_formats_new(1);
            dt_snd->src_format = audio_format_new();
            if (dt_snd->server_formats == NULL || dt_snd->src_format == NULL) {
                return FALSE;
            }
            dt_snd->server_formats[0] = dt_pcm;
            *dt_snd->src_format = dt_pcm;
            dt_snd->num_server_formats = 1;
            dt_snd->latency = 50;
            dt_snd->Activated = dt_audio;
            dt_snd->ConfirmBlock = dt_confirm;
            if (dt_snd->Initialize(dt_snd, TRUE) != CHANNEL_RC_OK) {
                dt_say("rdpsnd start failed");
            }
        }
    }
    return TRUE;
}

static void dt_serve(int fd, const char *cert, const char *key)
{
    freerdp_peer *peer = freerdp_peer_new(fd);
    HANDLE h[32];
    DWORD n;

    if (peer == NULL || !freerdp_peer_context_new(peer)) {
        close(fd);
        return;
    }
    dt_probed = false;
    if (!freerdp_settings_set_string(peer->settings, FreeRDP_CertificateFile,
                                     cert) ||
        !freerdp_settings_set_string(peer->settings, FreeRDP_PrivateKeyFile,
                                     key) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_NlaSecurity,
                                   FALSE) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_TlsSecurity, TRUE) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_RdpSecurity,
                                   FALSE)) {
        goto out;
    }
    if ((dt_vcm = WTSOpenServerA((LPSTR)peer->context)) == NULL ||
        dt_vcm == INVALID_HANDLE_VALUE) {
        goto out;
    }
    peer->PostConnect = dt_post_connect;
    peer->Activate = dt_activate;
    if (!peer->Initialize(peer)) {
        goto out;
    }
    for (;;) {
        n = peer->GetEventHandles(peer, h, 31);
        if (n == 0) {
            break;
        }
        h[n++] = WTSVirtualChannelManagerGetEventHandle(dt_vcm);
        if (WaitForMultipleObjects(n, h, FALSE, INFINITE) == WAIT_FAILED) {
            break;
        }
        if (!peer->CheckFileDescriptor(peer) ||
            !WTSVirtualChannelManagerCheckFileDescriptor(dt_vcm)) {
            break;
        }
    }
    peer->Disconnect(peer);
out:
    if (dt_dr != NULL) {
        dt_dr->Stop(dt_dr);
        rdpdr_server_context_free(dt_dr);
        dt_dr = NULL;
    }
    if (dt_snd != NULL) {
        dt_snd->Stop(dt_snd);
        rdpsnd_server_context_free(dt_snd);
        dt_snd = NULL;
    }
    if (dt_vcm != NULL && dt_vcm != INVALID_HANDLE_VALUE) {
        WTSCloseServer(dt_vcm);
    }
    dt_vcm = NULL;
    freerdp_peer_context_free(peer);
    freerdp_peer_free(peer);
}

int main(int argc, char **argv)
{
    struct sockaddr_in a;
    int ls, fd, one = 1;

    if (argc < 6) {
        fprintf(stderr, "usage: rdp-dev-target PORT CERT KEY OUTFILE FILE\n");
        return 2;
    }
    if ((dt_out = fopen(argv[4], "a")) == NULL) {
        perror(argv[4]);
        return 1;
    }
    dt_file = argv[5];
    InitializeCriticalSection(&dt_lock);
    winpr_InitializeSSL(WINPR_SSL_INIT_DEFAULT);
    WTSRegisterWtsApiFunctionTable(FreeRDP_InitWtsApi());
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((ls = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 8) != 0) {
        perror("listen");
        return 1;
    }
    for (;;) {
        if ((fd = accept(ls, NULL, NULL)) < 0) {
            continue;
        }
        dt_serve(fd, argv[2], argv[3]);
    }
}
