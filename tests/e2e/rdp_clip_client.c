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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <freerdp/channels/channels.h>
#include <freerdp/freerdp.h>

#include "rdp_test.h"
#include "rdp_test_client.h"

#define CC_MSG_MAX (1024 * 1024)
#define CC_STREAM_UNOFFERED 85
#define CC_STREAM_PAST_END 102

static uint8_t cc_buf[CC_MSG_MAX];
static struct rt_msg cc_msg = {cc_buf, CC_MSG_MAX, 0, 0};
static uint32_t cc_fgd;
static bool cc_asked_fgd, cc_over;
static struct rt_clip_read cc_read;
static struct timespec cc_at; /* when it was over */

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
    rt_put16(b, type);
    rt_put16(b + 2, flags);
    rt_put32(b + 4, (uint32_t)n);
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

    rt_clip_contents_req(b, stream, index, flags, pos, want);
    return cc_send(inst, 8, 0, b, sizeof(b));
}

static void cc_next_range(freerdp *inst)
{
    uint8_t req[24];
    char line[512];

    if (rt_clip_read_next(&cc_read, req, line, sizeof(line))) {
        (void)cc_send(inst, 8, 0, req, sizeof(req));
        return;
    }
    rtc_say("%s", line);
    cc_end();
}

static void cc_formats(freerdp *inst, const uint8_t *m, size_t n)
{
    char line[1024];
    size_t off = 0, o = 0, start;
    uint8_t b[4];

    cc_fgd = 0;
    o += (size_t)snprintf(line, sizeof(line), "formats ");
    while (off + 4 <= n && o < sizeof(line) - 64) {
        uint32_t f = rt_get32(m + off);

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
        if (rt_is16(m + start, off - start, "FileGroupDescriptorW")) {
            cc_fgd = f;
        }
        off += 2;
    }
    rtc_say("%s", line);
    (void)cc_send(inst, 3, 1, NULL, 0);
    if (cc_fgd == 0) {
        cc_end();
        return;
    }
    cc_asked_fgd = true;
    rt_put32(b, cc_fgd);
    (void)cc_send(inst, 4, 0, b, 4);
}

static void cc_descriptor(freerdp *inst, const uint8_t *m, size_t n)
{
    uint32_t count;

    if (!rt_clip_file_list(m, n, &count, cc_read.name, &cc_read.size)) {
        rtc_say("files bad");
        cc_end();
        return;
    }
    rtc_say("files %u %s %llu", count, cc_read.name,
            (unsigned long long)cc_read.size);
    (void)cc_contents(inst, CC_STREAM_PAST_END, count, 1, 0, 8);
    (void)cc_contents(inst, RT_CLIP_STREAM_SIZE, 0, 1, 0, 8);
}

static void cc_contents_response(freerdp *inst, uint16_t flags,
                                 const uint8_t *m, size_t n)
{
    uint32_t stream;
    uint64_t size;

    if (n < 4) {
        return;
    }
    stream = rt_get32(m);
    m += 4;
    n -= 4;
    if (stream == RT_CLIP_STREAM_SIZE && (flags & 1) && n == 8) {
        size = ((uint64_t)rt_get32(m + 4) << 32) | rt_get32(m);
        if (!rt_clip_read_start(&cc_read, size)) {
            rtc_say("size %llu", (unsigned long long)size);
            cc_end();
            return;
        }
        cc_next_range(inst);
    } else if (stream == RT_CLIP_STREAM_RANGE && (flags & 1) &&
               rt_clip_read_range(&cc_read, m, n)) {
        cc_next_range(inst);
    } else {
        rtc_say("contents %u %s %zu", stream, (flags & 1) ? "ok" : "fail", n);
    }
}

static void cc_pdu(freerdp *inst, const uint8_t *m, size_t len)
{
    uint16_t type, flags;
    uint32_t dlen;
    uint8_t caps[16];

    if (len < 8 || (dlen = rt_get32(m + 4)) > len - 8) {
        return;
    }
    type = rt_get16(m);
    flags = rt_get16(m + 2);
    m += 8;
    switch (type) {
    case 1: /* Monitor Ready: our capabilities, an empty list, the probe */
        rt_put16(caps, 1);
        rt_put16(caps + 2, 0);
        rt_put16(caps + 4, 1);
        rt_put16(caps + 6, 12);
        rt_put32(caps + 8, 2);
        rt_put32(caps + 12, 0x02 | 0x04); /* long names, file streams */
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
                rtc_say("files fail");
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
    if (id == freerdp_channels_get_id_by_name(inst, "cliprdr") &&
        rt_msg_add(&cc_msg, data, size, flags, total)) {
        cc_pdu(inst, cc_msg.b, cc_msg.len);
    }
    return TRUE;
}

static BOOL cc_pre(freerdp *inst)
{
    return rtc_channel(inst, "cliprdr",
                       CHANNEL_OPTION_ENCRYPT_RDP |
                           CHANNEL_OPTION_COMPRESS_RDP |
                           CHANNEL_OPTION_SHOW_PROTOCOL);
}

/* 3 s after it was over, or 40 s after the start. */
static int cc_tick(const struct timespec *start)
{
    return (cc_over && rt_since(&cc_at) > 3.0) || rt_since(start) > 40.0;
}

int main(int argc, char **argv)
{
    freerdp *inst;

    if (argc != 4) {
        fprintf(stderr, "usage: rdp-clip-client PORT USER PASSWORD\n");
        return 2;
    }
    inst =
        rtc_new(argv[1], argv[2], argv[3], 800, 600, cc_pre, NULL, cc_channel);
    if (inst == NULL) {
        return 1;
    }
    if (rtc_run(inst, cc_tick) < 0) {
        return 1;
    }
    rtc_say(cc_over ? "done" : "timeout");
    rtc_free(inst);
    free(cc_read.file);
    return 0;
}
