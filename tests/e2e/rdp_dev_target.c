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
 *                      bytes as ASCII, others as '?')
 *   wopen ID STATUS    with DT_WRITE: the answer to creating that file
 *                      on the drive (overwritten if there)
 *   wwrite ID STATUS N the answer to writing DT_WRITE_SRC's bytes to it
 *                      (2 KiB a request; N in all)
 *   wclose ID STATUS   the answer to closing it
 *   popen ID STATUS    with DT_PRINT_SRC, on a printer announced: the
 *                      answer to opening it (a print job on the client)
 *   pwrite ID STATUS N the answer to writing DT_PRINT_SRC's bytes to it
 *   pclose ID STATUS   the answer to closing it (the job printed)
 *   open ID STATUS, write ID STATUS N   after the file was read (without
 *                      DT_WRITE), written or printed, as a hostile server
 *                      would, it sends an open and a write to device IDs
 *                      1 to 6 but its own: these are their answers (none
 *                      should come but the drive's own open)
 *   audio formats N    the client's audio formats (N of them)
 *   audio confirm      the client confirmed a block of samples
 *
 * On each drive announced it opens FILE (a path on the drive, such as
 * \secret.txt) and reads it (64 KiB at most). Once the client's audio
 * formats are known it selects the first PCM one and sends a block of
 * silence.
 *
 * Usage: [DT_WRITE=\\PATH DT_WRITE_SRC=LOCAL] [DT_PRINT_SRC=LOCAL]
 *        rdp-dev-target PORT CERT KEY OUTFILE FILE
 * Serves one connection after another on 127.0.0.1:PORT until killed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <freerdp/channels/channels.h>
#include <freerdp/channels/wtsvc.h>
#include <freerdp/codec/audio.h>
#include <freerdp/freerdp.h>
#include <freerdp/peer.h>
#include <freerdp/server/rdpdr.h>
#include <freerdp/server/rdpsnd.h>
#include <winpr/synch.h>

#include "rdp_test.h"
#include "rdp_test_server.h"

#define DT_READ_MAX 65536
#define DT_SRC_MAX (4 * 1024 * 1024)
#define DT_GENERIC_READ 0x80000000u
#define DT_GENERIC_WRITE 0x40000000u
#define DT_FILE_OPEN 1u
#define DT_FILE_OVERWRITE_IF 5u
#define DT_PROBE_MAX 6u

/* What an I/O request was for: its callback data is the device ID and
 * one of these, shifted by DT_KIND_SHIFT. */
enum { DT_READ, DT_WRITE, DT_PRINT, DT_PROBE };
#define DT_KIND_SHIFT 16
/* Written a request at a time: see dt_receive. */
#define DT_CHUNK 2048
#define DT_CB(id, kind)                                                        \
    ((void *)(uintptr_t)((id) | ((uint32_t)(kind) << DT_KIND_SHIFT)))
#define DT_CB_ID(cb) ((UINT32)((uintptr_t)(cb)&0xffffu))
#define DT_CB_KIND(cb) ((int)((uintptr_t)(cb) >> DT_KIND_SHIFT))

/* the file written (DT_WRITE) and the print job (DT_PRINT): its ID on
 * the client and what was written of it */
static UINT32 dt_fid[DT_PROBE + 1];
static size_t dt_off[DT_PROBE + 1];
static const char *dt_file;
/* DT_WRITE: where on the drive to write; its bytes and those of a print
 * job, read from DT_WRITE_SRC and DT_PRINT_SRC */
static const char *dt_write;
static char *dt_wbuf, *dt_pbuf;
static size_t dt_wlen, dt_plen;
static HANDLE dt_vcm;
static bool dt_probed;
static RdpdrServerContext *dt_dr;
static RdpsndServerContext *dt_snd;
static CRITICAL_SECTION dt_lock;

static const AUDIO_FORMAT dt_pcm = {
    WAVE_FORMAT_PCM, 2, 44100, 176400, 4, 16, 0, NULL};

static void dt_drive(RdpdrServerContext *c, UINT32 id, const char *name)
{
    UINT e;

    rts_say("drive %u %s", id, name);
    e = c->DriveOpenFile(c, DT_CB(id, DT_READ), id, dt_file, DT_GENERIC_READ,
                         DT_FILE_OPEN);
    if (e != CHANNEL_RC_OK) {
        rts_say("open %u send-failed %u", id, e);
    }
}

/* The hostile part: the open and a write on the IDs a client gives its
 * other devices (xfreerdp counts from 1): an ID the target was never
 * told of gets an answer only if the proxy lets it by. */
static void dt_probe(RdpdrServerContext *c, UINT32 own)
{
    for (UINT32 id = 1; id <= DT_PROBE_MAX; id++) {
        if (id != own) {
            (void)c->DriveOpenFile(c, DT_CB(id, DT_PROBE), id, dt_file,
                                   DT_GENERIC_READ, DT_FILE_OPEN);
            (void)c->DriveWriteFile(c, DT_CB(id, DT_PROBE), id, 1, "probe", 5,
                                    0);
        }
    }
}

/* The next chunk of what kind DT_WRITE or DT_PRINT writes, or the close
 * once all is written. */
static void dt_write_next(RdpdrServerContext *c, void *cb)
{
    int kind = DT_CB_KIND(cb);
    const char *buf = kind == DT_WRITE ? dt_wbuf : dt_pbuf;
    size_t len = kind == DT_WRITE ? dt_wlen : dt_plen, n;

    if (dt_off[kind] < len) {
        n = len - dt_off[kind] < DT_CHUNK ? len - dt_off[kind] : DT_CHUNK;
        (void)c->DriveWriteFile(c, cb, DT_CB_ID(cb), dt_fid[kind],
                                buf + dt_off[kind], (UINT32)n,
                                (UINT32)dt_off[kind]);
    } else {
        rts_say("%cwrite %u 0 %zu", kind == DT_WRITE ? 'w' : 'p', DT_CB_ID(cb),
                dt_off[kind]);
        (void)c->DriveCloseFile(c, cb, DT_CB_ID(cb), dt_fid[kind]);
    }
}

static void dt_opened(RdpdrServerContext *c, void *cb, UINT32 status, UINT32 id,
                      UINT32 file)
{
    int kind = DT_CB_KIND(cb);

    if (kind == DT_WRITE || kind == DT_PRINT) {
        rts_say("%s %u %u", kind == DT_WRITE ? "wopen" : "popen", id, status);
        if (status == 0) {
            dt_fid[kind] = file;
            dt_off[kind] = 0;
            dt_write_next(c, cb);
        }
        return;
    }
    rts_say("open %u %u", id, status);
    if (kind == DT_READ && status == 0 && !dt_probed) {
        dt_probed = true;
        (void)c->DriveReadFile(c, cb, id, file, DT_READ_MAX, 0);
    }
}

static void dt_read(RdpdrServerContext *c, void *cb, UINT32 status,
                    const char *buf, UINT32 len)
{
    char hex[65], text[201];
    size_t i;

    rt_sha256_hex(buf, len, hex);
    for (i = 0; i < len && i < 200; i++) {
        unsigned char ch = (unsigned char)buf[i];

        text[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    text[i] = '\0';
    rts_say("read %u %u %s %s", status, len, hex, text);
    if (dt_write != NULL) {
        (void)c->DriveOpenFile(c, DT_CB(DT_CB_ID(cb), DT_WRITE), DT_CB_ID(cb),
                               dt_write, DT_GENERIC_WRITE,
                               DT_FILE_OVERWRITE_IF);
    } else {
        dt_probe(c, DT_CB_ID(cb));
    }
}

static const char *dt_prefix(void *cb)
{
    switch (DT_CB_KIND(cb)) {
    case DT_WRITE:
        return "w";
    case DT_PRINT:
        return "p";
    default:
        return "";
    }
}

static void dt_written(RdpdrServerContext *c, void *cb, UINT32 status, UINT32 n)
{
    int kind = DT_CB_KIND(cb);

    if ((kind == DT_WRITE || kind == DT_PRINT) && status == 0 && n > 0) {
        dt_off[kind] += n;
        dt_write_next(c, cb);
        return;
    }
    rts_say("%swrite %u %u %u", dt_prefix(cb), DT_CB_ID(cb), status, n);
    if (kind == DT_WRITE || kind == DT_PRINT) {
        (void)c->DriveCloseFile(c, cb, DT_CB_ID(cb), dt_fid[kind]);
    }
}

/* The file written and closed: then the probes. */
static void dt_closed(RdpdrServerContext *c, void *cb, UINT32 status)
{
    rts_say("%sclose %u %u", dt_prefix(cb), DT_CB_ID(cb), status);
    if (DT_CB_KIND(cb) == DT_WRITE || DT_CB_KIND(cb) == DT_PRINT) {
        dt_probe(c, DT_CB_ID(cb));
    }
}

static void dt_printer(RdpdrServerContext *c, UINT32 id, const char *name)
{
    rts_say("printer %u %s", id, name);
    if (dt_pbuf != NULL) {
        (void)c->DriveOpenFile(c, DT_CB(id, DT_PRINT), id, "\\job",
                               DT_GENERIC_WRITE, DT_FILE_OVERWRITE_IF);
    }
}

/*
 * Mending what FreeRDP 2.11's rdpdr server cannot read. Its Drive API
 * reads the answer to a write as if it were a read's (as many bytes
 * after the count as were written) and the answer to any create as a
 * drive's (a FileId and an Information byte; a printer sends the FileId
 * only), and ends its channel thread when they are short. The target
 * notes each I/O request it sends (the completion ID and the major
 * function) and pads the client's answers to those two before the
 * server reads them: a create's with the missing byte, a write's with as
 * many bytes as were written, rounded up to 4, each 4 an empty Device
 * Reply PDU that the server reads after it and ignores (it reads on
 * after a PDU's end). The server reads no channel message over 4 KiB
 * (its read buffer), so the target writes 2 KiB a request. Only the
 * target's own view is mended: what crossed the proxy is what the
 * client sent.
 */
#define DT_IRP_MJ_CREATE 0
#define DT_IRP_MJ_WRITE 4
#define DT_SENT_MAX 64

static struct {
    uint32_t completion, major;
} dt_sent[DT_SENT_MAX];
static size_t dt_nsent;
static psPeerSendChannelData dt_send_orig;
static psPeerReceiveChannelData dt_receive_orig;
static UINT16 dt_rdpdr_id;

/* An rdpdr PDU of the core component with packet ID pkt. */
static bool dt_is_core(const BYTE *d, size_t n, size_t min, uint16_t pkt)
{
    return n >= min && d[0] == 0x72 && d[1] == 0x44 &&
           (uint16_t)(d[2] | (d[3] << 8)) == pkt;
}

static BOOL dt_send(freerdp_peer *peer, UINT16 channel, const BYTE *d, size_t n)
{
    /* a Device I/O Request: DeviceId, FileId, CompletionId, Major */
    if (channel == dt_rdpdr_id && dt_is_core(d, n, 24, 0x4952)) {
        EnterCriticalSection(&dt_lock);
        dt_sent[dt_nsent % DT_SENT_MAX].completion = rt_get32(d + 12);
        dt_sent[dt_nsent % DT_SENT_MAX].major = rt_get32(d + 16);
        dt_nsent++;
        LeaveCriticalSection(&dt_lock);
    }
    return dt_send_orig(peer, channel, d, n);
}

static BOOL dt_receive(freerdp_peer *peer, UINT16 channel, const BYTE *d,
                       size_t n, UINT32 flags, size_t total)
{
    uint32_t major = UINT32_MAX, completion;
    size_t pad = 0;
    BYTE *m;
    BOOL ok;

    /* a whole Device I/O Response: DeviceId, CompletionId, IoStatus */
    if (channel != dt_rdpdr_id || n != total ||
        (flags & (CHANNEL_FLAG_FIRST | CHANNEL_FLAG_LAST)) !=
            (CHANNEL_FLAG_FIRST | CHANNEL_FLAG_LAST) ||
        !dt_is_core(d, n, 16, 0x4943)) {
        return dt_receive_orig(peer, channel, d, n, flags, total);
    }
    completion = rt_get32(d + 8);
    EnterCriticalSection(&dt_lock);
    for (size_t i = 0; i < DT_SENT_MAX && i < dt_nsent; i++) {
        if (dt_sent[i].completion == completion) {
            major = dt_sent[i].major;
        }
    }
    LeaveCriticalSection(&dt_lock);
    if (major == DT_IRP_MJ_WRITE && n == 21 && rt_get32(d + 16) <= DT_CHUNK) {
        pad = (rt_get32(d + 16) + 3) / 4 * 4;
    } else if (major == DT_IRP_MJ_CREATE && n == 20) {
        pad = 1;
    }
    if (pad == 0 || (m = calloc(1, n + pad)) == NULL) {
        return dt_receive_orig(peer, channel, d, n, flags, total);
    }
    memcpy(m, d, n);
    for (size_t i = 0; pad > 1 && i < pad; i += 4) {
        memcpy(m + n + i, "\x72\x44\x72\x64", 4); /* core, Device Reply */
    }
    ok = dt_receive_orig(peer, channel, m, n + pad, flags, n + pad);
    free(m);
    return ok;
}

static void dt_port(RdpdrServerContext *c, UINT32 id, const char *name)
{
    (void)c;
    rts_say("port %u %s", id, name);
}

static void dt_smartcard(RdpdrServerContext *c, UINT32 id, const char *name)
{
    (void)c;
    rts_say("smartcard %u %s", id, name);
}

static void dt_audio(RdpsndServerContext *c)
{
    static BYTE silence[4 * 4410];
    UINT16 i;

    rts_say("audio formats %u", c->num_client_formats);
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
        rts_say("audio send-failed");
    }
}

static UINT dt_confirm(RdpsndServerContext *c, BYTE block, UINT16 ts)
{
    (void)c;
    (void)block;
    (void)ts;
    rts_say("audio confirm");
    return CHANNEL_RC_OK;
}

static BOOL dt_activate(freerdp_peer *peer)
{
    if (dt_dr == NULL) {
        if (!WTSVirtualChannelManagerIsChannelJoined(dt_vcm, "rdpdr")) {
            rts_say("no-rdpdr");
        } else if ((dt_dr = rdpdr_server_context_new(dt_vcm)) != NULL) {
            rts_say("joined rdpdr");
            dt_rdpdr_id = WTSChannelGetId(peer, "rdpdr");
            dt_dr->supportsDrives = TRUE;
            dt_dr->supportsPorts = TRUE;
            dt_dr->supportsPrinters = TRUE;
            dt_dr->supportsSmartcards = TRUE;
            dt_dr->OnDriveCreate = dt_drive;
            dt_dr->OnDriveOpenFileComplete = dt_opened;
            dt_dr->OnDriveReadFileComplete = dt_read;
            dt_dr->OnDriveWriteFileComplete = dt_written;
            dt_dr->OnDriveCloseFileComplete = dt_closed;
            dt_dr->OnPrinterCreate = dt_printer;
            dt_dr->OnPortCreate = dt_port;
            dt_dr->OnSmartcardCreate = dt_smartcard;
            if (dt_dr->Start(dt_dr) != CHANNEL_RC_OK) {
                rts_say("rdpdr start failed");
            }
        }
    }
    if (dt_snd == NULL) {
        if (!WTSVirtualChannelManagerIsChannelJoined(dt_vcm, "rdpsnd")) {
            rts_say("no-rdpsnd");
        } else if ((dt_snd = rdpsnd_server_context_new(dt_vcm)) != NULL) {
            rts_say("joined rdpsnd");
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
                rts_say("rdpsnd start failed");
            }
        }
    }
    return TRUE;
}

static void dt_serve(freerdp_peer *peer)
{
    dt_probed = false;
    if ((dt_vcm = WTSOpenServerA((LPSTR)peer->context)) == NULL ||
        dt_vcm == INVALID_HANDLE_VALUE) {
        goto out;
    }
    dt_send_orig = peer->SendChannelData;
    dt_receive_orig = peer->ReceiveChannelData; /* the channel manager's */
    peer->SendChannelData = dt_send;
    peer->ReceiveChannelData = dt_receive;
    dt_nsent = 0;
    peer->Activate = dt_activate;
    rts_run(peer, dt_vcm);
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
}

/* The whole of file path (DT_SRC_MAX at most), or NULL. */
static char *dt_slurp(const char *path, size_t *n)
{
    FILE *f;
    char *b;

    *n = 0;
    if (path == NULL || (f = fopen(path, "rb")) == NULL) {
        return NULL;
    }
    if ((b = malloc(DT_SRC_MAX)) != NULL) {
        *n = fread(b, 1, DT_SRC_MAX, f);
    }
    fclose(f);
    return b;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: rdp-dev-target PORT CERT KEY OUTFILE FILE\n");
        return 2;
    }
    if (!rts_open_out(argv[4])) {
        return 1;
    }
    dt_file = argv[5];
    dt_write = getenv("DT_WRITE");
    if (dt_write != NULL &&
        (dt_wbuf = dt_slurp(getenv("DT_WRITE_SRC"), &dt_wlen)) == NULL) {
        fprintf(stderr, "DT_WRITE without a readable DT_WRITE_SRC\n");
        return 2;
    }
    dt_pbuf = dt_slurp(getenv("DT_PRINT_SRC"), &dt_plen);
    InitializeCriticalSection(&dt_lock);
    WTSRegisterWtsApiFunctionTable(FreeRDP_InitWtsApi());
    return rts_serve_forever(argv[1], argv[2], argv[3], dt_serve);
}
