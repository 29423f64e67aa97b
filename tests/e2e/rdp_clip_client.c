/*
 * A clipboard client for tests/e2e/test_rdp_clip_files.py, the other
 * direction from xfreerdp's: it logs in through the proxy (NLA), joins
 * cliprdr only and speaks the client side of [MS-RDPECLIP] itself, to
 * read a file the target (rdp_clip_target.c with CT_OFFER_FILE) put on
 * its clipboard: the file list (FileGroupDescriptorW), then the first
 * file's size and its bytes, 64 KiB a File Contents Request. xfreerdp
 * 2.11's X11 client reads a server's file contents only through a FUSE
 * file system, which Debian's build leaves out.
 *
 * As a hostile client would, it also asks for file contents it was
 * never offered: stream 85, the first file, before any file list, and
 * stream 102, the file past the end of the list, once the list came.
 *
 * It prints one line for each thing it sees, to stdout:
 *
 *   formats ID:NAME,...   the target's Format List (as forwarded)
 *   files N NAME SIZE     the file list: N files, the first one's name
 *                         and size
 *   file NAME SIZE SHA256 RANGES   the first file, read whole
 *   contents STREAM ok|fail LEN    an answer to any other stream
 *   done | ended          3 s after the file (or after a Format List
 *                         without files), or disconnected
 *
 * Usage: rdp-clip-client PORT USER PASSWORD
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <freerdp/channels/channels.h>
#include <freerdp/freerdp.h>
#include <freerdp/settings.h>
#include <freerdp/update.h>
#include <winpr/crypto.h>
#include <winpr/synch.h>

#define CC_MSG_MAX (1024 * 1024)
#define CC_FILE_MAX (8 * 1024 * 1024)
#define CC_RANGE 65536
#define CC_FD_SIZE 592 /* a FILEDESCRIPTORW */
#define CC_STREAM_SIZE 1
#define CC_STREAM_RANGE 2
#define CC_STREAM_UNOFFERED 85
#define CC_STREAM_PAST_END 102

static uint8_t cc_msg[CC_MSG_MAX];
static size_t cc_len, cc_total;
static uint32_t cc_fgd;
static bool cc_asked_fgd, cc_over;
static char cc_fname[261];
static uint64_t cc_fsize;
static uint8_t *cc_file;
static size_t cc_got;
static unsigned cc_ranges;
static struct timespec cc_at; /* when it was over */

static void cc_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void cc_put32(uint8_t *p, uint32_t v)
{
    cc_put16(p, (uint16_t)v);
    cc_put16(p + 2, (uint16_t)(v >> 16));
}

static uint32_t cc_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void cc_say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void cc_end(void)
{
    cc_over = true;
    clock_gettime(CLOCK_MONOTONIC, &cc_at);
}

static BOOL cc_send(freerdp *inst, uint16_t type, uint16_t flags,
                    const uint8_t *data, size_t n)
{
    uint8_t b[8 + 64];

    if (n > 64) {
        return FALSE;
    }
    cc_put16(b, type);
    cc_put16(b + 2, flags);
    cc_put32(b + 4, (uint32_t)n);
    if (n > 0) {
        memcpy(b + 8, data, n);
    }
    return inst->SendChannelData(
        inst, freerdp_channels_get_id_by_name(inst, "cliprdr"), b, 8 + n);
}

static BOOL cc_contents(freerdp *inst, uint32_t stream, uint32_t index,
                        uint32_t flags, uint64_t pos, uint32_t want)
{
    uint8_t b[24];

    cc_put32(b, stream);
    cc_put32(b + 4, index);
    cc_put32(b + 8, flags);
    cc_put32(b + 12, (uint32_t)pos);
    cc_put32(b + 16, (uint32_t)(pos >> 32));
    cc_put32(b + 20, want);
    return cc_send(inst, 8, 0, b, sizeof(b));
}

static void cc_next_range(freerdp *inst)
{
    BYTE md[32];
    char hex[65];
    uint64_t left = cc_fsize - cc_got;

    if (left > 0) {
        (void)cc_contents(inst, CC_STREAM_RANGE, 0, 2, cc_got,
                          left < CC_RANGE ? (uint32_t)left : CC_RANGE);
        return;
    }
    if (!winpr_Digest(WINPR_MD_SHA256, cc_file, cc_got, md, sizeof(md))) {
        memset(md, 0, sizeof(md));
    }
    for (size_t i = 0; i < sizeof(md); i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    cc_say("file %s %zu %s %u", cc_fname, cc_got, hex, cc_ranges);
    cc_end();
}

/* Whether the UTF-16LE string p (n bytes) is the ASCII string s. */
static bool cc_is16(const uint8_t *p, size_t n, const char *s)
{
    size_t k = strlen(s);

    if (n != 2 * k) {
        return false;
    }
    for (size_t i = 0; i < k; i++) {
        if (p[2 * i] != (uint8_t)s[i] || p[2 * i + 1] != 0) {
            return false;
        }
    }
    return true;
}

static void cc_formats(freerdp *inst, const uint8_t *m, size_t n)
{
    char line[1024];
    size_t off = 0, o = 0, start;
    uint8_t b[4];

    cc_fgd = 0;
    o += (size_t)snprintf(line, sizeof(line), "formats ");
    while (off + 4 <= n && o < sizeof(line) - 64) {
        uint32_t f = cc_get32(m + off);

        off += 4;
        start = off;
        while (off + 1 < n && (m[off] | m[off + 1]) != 0) {
            off += 2;
        }
        o += (size_t)snprintf(line + o, sizeof(line) - o,
                              "%s%u:", start > 4 ? "," : "", f);
        for (size_t i = start; i + 1 < off && o < sizeof(line) - 2; i += 2) {
            line[o++] =
                m[i] >= 0x20 && m[i] < 0x7f && !m[i + 1] ? (char)m[i] : '?';
        }
        line[o] = '\0';
        if (cc_is16(m + start, off - start, "FileGroupDescriptorW")) {
            cc_fgd = f;
        }
        off += 2;
    }
    cc_say("%s", line);
    (void)cc_send(inst, 3, 1, NULL, 0);
    if (cc_fgd == 0) {
        cc_end();
        return;
    }
    cc_asked_fgd = true;
    cc_put32(b, cc_fgd);
    (void)cc_send(inst, 4, 0, b, 4);
}

static void cc_descriptor(freerdp *inst, const uint8_t *m, size_t n)
{
    uint32_t count;
    size_t i;

    if (n < 4 || (count = cc_get32(m)) == 0 || (n - 4) / CC_FD_SIZE < count) {
        cc_say("files bad");
        cc_end();
        return;
    }
    m += 4;
    for (i = 0; i < 260; i++) {
        uint16_t u = (uint16_t)(m[72 + 2 * i] | (m[73 + 2 * i] << 8));

        if (u == 0) {
            break;
        }
        cc_fname[i] = u >= 0x20 && u < 0x7f ? (char)u : '?';
    }
    cc_fname[i] = '\0';
    cc_fsize = ((uint64_t)cc_get32(m + 64) << 32) | cc_get32(m + 68);
    cc_say("files %u %s %llu", count, cc_fname, (unsigned long long)cc_fsize);
    (void)cc_contents(inst, CC_STREAM_PAST_END, count, 1, 0, 8);
    (void)cc_contents(inst, CC_STREAM_SIZE, 0, 1, 0, 8);
}

static void cc_contents_response(freerdp *inst, uint16_t flags,
                                 const uint8_t *m, size_t n)
{
    uint32_t stream;
    uint64_t size;

    if (n < 4) {
        return;
    }
    stream = cc_get32(m);
    m += 4;
    n -= 4;
    if (stream == CC_STREAM_SIZE && (flags & 1) && n == 8) {
        size = ((uint64_t)cc_get32(m + 4) << 32) | cc_get32(m);
        if (size != cc_fsize || size > CC_FILE_MAX ||
            (cc_file = malloc(size > 0 ? size : 1)) == NULL) {
            cc_say("size %llu", (unsigned long long)size);
            cc_end();
            return;
        }
        cc_next_range(inst);
    } else if (stream == CC_STREAM_RANGE && (flags & 1) && cc_file != NULL &&
               n > 0 && n <= cc_fsize - cc_got) {
        memcpy(cc_file + cc_got, m, n);
        cc_got += n;
        cc_ranges++;
        cc_next_range(inst);
    } else {
        cc_say("contents %u %s %zu", stream, (flags & 1) ? "ok" : "fail", n);
    }
}

static void cc_pdu(freerdp *inst, const uint8_t *m, size_t len)
{
    uint16_t type, flags;
    uint32_t dlen;
    uint8_t caps[16];

    if (len < 8 || (dlen = cc_get32(m + 4)) > len - 8) {
        return;
    }
    type = (uint16_t)(m[0] | (m[1] << 8));
    flags = (uint16_t)(m[2] | (m[3] << 8));
    m += 8;
    switch (type) {
    case 1: /* Monitor Ready: our capabilities, an empty list, the probe */
        cc_put16(caps, 1);
        cc_put16(caps + 2, 0);
        cc_put16(caps + 4, 1);
        cc_put16(caps + 6, 12);
        cc_put32(caps + 8, 2);
        cc_put32(caps + 12, 0x02 | 0x04); /* long names, file streams */
        (void)cc_send(inst, 7, 0, caps, sizeof(caps));
        (void)cc_send(inst, 2, 0, NULL, 0);
        (void)cc_contents(inst, CC_STREAM_UNOFFERED, 0, 1, 0, 8);
        break;
    case 2:
        cc_formats(inst, m, dlen);
        break;
    case 5:
        if (cc_asked_fgd) {
            cc_asked_fgd = false;
            if (flags & 1) {
                cc_descriptor(inst, m, dlen);
            } else {
                cc_say("files fail");
                cc_end();
            }
        }
        break;
    case 9:
        cc_contents_response(inst, flags, m, dlen);
        break;
    default:
        break;
    }
}

static BOOL cc_channel(freerdp *inst, UINT16 id, const BYTE *data, size_t size,
                       UINT32 flags, size_t total)
{
    if (id != freerdp_channels_get_id_by_name(inst, "cliprdr")) {
        return TRUE;
    }
    if (flags & CHANNEL_FLAG_FIRST) {
        cc_len = 0;
        cc_total = total <= CC_MSG_MAX ? total : 0;
    }
    if (cc_total == 0 || size > cc_total - cc_len) {
        cc_total = 0;
        return TRUE;
    }
    memcpy(cc_msg + cc_len, data, size);
    cc_len += size;
    if ((flags & CHANNEL_FLAG_LAST) && cc_len == cc_total) {
        cc_pdu(inst, cc_msg, cc_len);
        cc_total = 0;
    }
    return TRUE;
}

static BOOL cc_pre(freerdp *inst)
{
    rdpSettings *s = inst->settings;
    CHANNEL_DEF *d;

    if (s->ChannelDefArray == NULL || s->ChannelDefArraySize < 1) {
        return FALSE;
    }
    d = &s->ChannelDefArray[0];
    memset(d, 0, sizeof(*d));
    strcpy(d->name, "cliprdr");
    d->options = CHANNEL_OPTION_INITIALIZED | CHANNEL_OPTION_ENCRYPT_RDP |
                 CHANNEL_OPTION_COMPRESS_RDP | CHANNEL_OPTION_SHOW_PROTOCOL;
    s->ChannelCount = 1;
    return TRUE;
}

static double cc_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) +
           (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

int main(int argc, char **argv)
{
    freerdp *inst;
    rdpSettings *s;
    HANDLE h[64];
    DWORD n;
    struct timespec start;

    if (argc != 4) {
        fprintf(stderr, "usage: rdp-clip-client PORT USER PASSWORD\n");
        return 2;
    }
    if ((inst = freerdp_new()) == NULL) {
        return 1;
    }
    inst->PreConnect = cc_pre;
    inst->ReceiveChannelData = cc_channel;
    if (!freerdp_context_new(inst)) {
        return 1;
    }
    s = inst->settings;
    if (!freerdp_settings_set_string(s, FreeRDP_ServerHostname, "127.0.0.1") ||
        !freerdp_settings_set_uint32(s, FreeRDP_ServerPort,
                                     (UINT32)atoi(argv[1])) ||
        !freerdp_settings_set_string(s, FreeRDP_Username, argv[2]) ||
        !freerdp_settings_set_string(s, FreeRDP_Password, argv[3]) ||
        !freerdp_settings_set_bool(s, FreeRDP_IgnoreCertificate, TRUE) ||
        !freerdp_settings_set_bool(s, FreeRDP_NlaSecurity, TRUE) ||
        !freerdp_settings_set_bool(s, FreeRDP_TlsSecurity, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_RdpSecurity, FALSE) ||
        !freerdp_settings_set_uint32(s, FreeRDP_DesktopWidth, 800) ||
        !freerdp_settings_set_uint32(s, FreeRDP_DesktopHeight, 600) ||
        !freerdp_settings_set_uint32(s, FreeRDP_ColorDepth, 32) ||
        !freerdp_settings_set_bool(s, FreeRDP_SupportDynamicChannels, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_CompressionEnabled, FALSE) ||
        !freerdp_settings_set_bool(s, FreeRDP_AutoReconnectionEnabled, FALSE)) {
        return 1;
    }
    if (!freerdp_connect(inst)) {
        cc_say("ended");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        n = freerdp_get_event_handles(inst->context, h, 64);
        if (n == 0 || WaitForMultipleObjects(n, h, FALSE, 100) == WAIT_FAILED ||
            !freerdp_check_event_handles(inst->context) ||
            freerdp_shall_disconnect(inst)) {
            cc_say("ended");
            return 1;
        }
        if ((cc_over && cc_since(&cc_at) > 3.0) || cc_since(&start) > 40.0) {
            break;
        }
    }
    cc_say(cc_over ? "done" : "timeout");
    freerdp_disconnect(inst);
    freerdp_context_free(inst);
    freerdp_free(inst);
    free(cc_file);
    return 0;
}
