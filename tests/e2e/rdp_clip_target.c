/*
 * A test RDP server with a clipboard, for tests/e2e/test_rdp_clipboard.py.
 *
 * FreeRDP's shadow server (the other RDP tests' target) has no clipboard
 * channel, and xrdp is not installed here; this is a real RDP server
 * (libfreerdp-server2, TLS security, any login accepted) that speaks the
 * server side of [MS-RDPECLIP] on the static channel cliprdr and writes
 * what it sees, one line each, to OUTFILE:
 *
 *   joined            the client (the proxy) joined cliprdr
 *   no-cliprdr        a connection without cliprdr
 *   formats ID:NAME,...   a Format List (long names)
 *   text TEXT         clipboard text it asked for and got (ASCII; other
 *                     characters as '?')
 *   pdu TYPE          any other clipboard PDU
 *
 * With a TEXT argument it also offers that text on its own clipboard
 * (a Format List with CF_UNICODETEXT after the client's capabilities),
 * and answers the client's request for it.
 *
 * With CT_FLOOD=N in its environment it is a hostile target: after the
 * client's capabilities it sends N clipboard PDUs the proxy must not
 * forward, one malformed (a Monitor Ready with data) and one refused (an
 * unknown type) in turn, and writes "flooded N".
 *
 * Files: when the client's Format List has FileGroupDescriptorW, it asks
 * for that (not the text), and for the first file in it its size (a File
 * Contents Request, FILECONTENTS_SIZE) then its bytes, 64 KiB a request
 * (FILECONTENTS_RANGE), and writes
 *
 *   files N NAME SIZE     the descriptor: N files, the first one's name
 *                         and size
 *   file NAME SIZE SHA256 RANGES   the first file, read whole
 *
 * With CT_OFFER_FILE=PATH (and no TEXT) it offers that file on its own
 * clipboard instead (FileGroupDescriptorW and FileContents), answers the
 * request for the file list (one file: its name and size), and File
 * Contents Requests for it (size and ranges; any other index fails),
 * writing "asked STREAM INDEX FLAGS" for each request.
 *
 * With CT_HOSTILE=1 it also asks for file contents it was never offered:
 * stream 85, the first file, as soon as the client's capabilities came
 * (no file list yet), and stream 102, the file past the end of the
 * list, once the descriptor came. Every File Contents Response to any
 * stream but its own is written as "contents STREAM ok|fail LEN".
 *
 * Usage: rdp-clip-target PORT CERT KEY OUTFILE [TEXT]
 * Serves one connection after another on 127.0.0.1:PORT until killed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <freerdp/channels/wtsvc.h>
#include <freerdp/freerdp.h>
#include <freerdp/peer.h>

#include "rdp_test.h"
#include "rdp_test_server.h"

#define CT_MSG_MAX (1024 * 1024)
#define CT_STREAM_UNOFFERED 85
#define CT_STREAM_PAST_END 102
#define CT_OFFER_FGD 0xc0a0 /* our FileGroupDescriptorW (FileContents next) */

static const char *ct_text;
static long ct_flood;
static UINT16 ct_clip;
static uint8_t ct_buf[CT_MSG_MAX];
static struct rt_msg ct_msg = {ct_buf, CT_MSG_MAX, 0, 0};
static bool ct_hostile;
/* CT_OFFER_FILE: a file offered on the target's clipboard, its size */
static const char *ct_offer;
static uint64_t ct_offer_size;
/* the file transfer: the descriptor's format ID asked for, the first
 * file's name and size, and what was read of it */
static uint32_t ct_fgd;
static bool ct_asked_fgd;
static struct rt_clip_read ct_read;

static BOOL ct_send(freerdp_peer *peer, uint16_t type, uint16_t flags,
                    const uint8_t *data, size_t n)
{
    static uint8_t b[8 + 4 + RT_CLIP_RANGE]; /* a range and its stream ID */

    if (n > 4 + RT_CLIP_RANGE) {
        return FALSE;
    }
    rt_put16(b, type);
    rt_put16(b + 2, flags);
    rt_put32(b + 4, (uint32_t)n);
    if (n > 0) {
        memcpy(b + 8, data, n);
    }
    return peer->SendChannelData(peer, ct_clip, b, 8 + n);
}

/* A UTF-16LE string: as ASCII, other characters '?'. */
static void ct_print16(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint16_t u = (uint16_t)(p[i] | (p[i + 1] << 8));

        if (u == 0) {
            break;
        }
        fputc(u >= 0x20 && u < 0x7f ? (int)u : '?', rts_out);
    }
}

/* s as a NUL-terminated UTF-16LE string at p; its length in bytes. */
static size_t ct_put_str16(uint8_t *p, const char *s)
{
    size_t n = 0;

    do {
        rt_put16(p + n, (uint16_t)(unsigned char)*s);
        n += 2;
    } while (*s++ != '\0');
    return n;
}

/* CT_OFFER_FILE: the file list (one FILEDESCRIPTORW) asked for. */
static void ct_offer_list(freerdp_peer *peer)
{
    static uint8_t b[4 + RT_CLIP_FD_SIZE];
    const char *name =
        strrchr(ct_offer, '/') ? strrchr(ct_offer, '/') + 1 : ct_offer;
    size_t i;

    memset(b, 0, sizeof(b));
    rt_put32(b, 1);
    rt_put32(b + 4, 0x44);      /* FD_ATTRIBUTES | FD_FILESIZE */
    rt_put32(b + 4 + 36, 0x80); /* FILE_ATTRIBUTE_NORMAL */
    rt_put32(b + 4 + 64, (uint32_t)(ct_offer_size >> 32));
    rt_put32(b + 4 + 68, (uint32_t)ct_offer_size);
    for (i = 0; name[i] != '\0' && i < 259; i++) {
        rt_put16(b + 4 + 72 + 2 * i, (uint16_t)(unsigned char)name[i]);
    }
    (void)ct_send(peer, 5, 1, b, sizeof(b));
}

/* CT_OFFER_FILE: a File Contents Request for it (the first file). */
static void ct_offer_contents(freerdp_peer *peer, const uint8_t *m, size_t n)
{
    static uint8_t b[4 + RT_CLIP_RANGE];
    uint32_t stream, index, flags, want;
    uint64_t pos;
    FILE *f;
    size_t got = 0;

    if (ct_offer == NULL || n < 24) {
        return;
    }
    stream = rt_get32(m);
    index = rt_get32(m + 4);
    flags = rt_get32(m + 8);
    pos = ((uint64_t)rt_get32(m + 16) << 32) | rt_get32(m + 12);
    want = rt_get32(m + 20);
    rts_say("asked %u %u %u", stream, index, flags);
    rt_put32(b, stream);
    if (index != 0) {
        (void)ct_send(peer, 9, 2, b, 4);
    } else if (flags & 1) {
        rt_put32(b + 4, (uint32_t)ct_offer_size);
        rt_put32(b + 8, (uint32_t)(ct_offer_size >> 32));
        (void)ct_send(peer, 9, 1, b, 12);
    } else if ((f = fopen(ct_offer, "rb")) != NULL) {
        if (fseeko(f, (off_t)pos, SEEK_SET) == 0) {
            got =
                fread(b + 4, 1, want < RT_CLIP_RANGE ? want : RT_CLIP_RANGE, f);
        }
        fclose(f);
        (void)ct_send(peer, 9, 1, b, 4 + got);
    } else {
        (void)ct_send(peer, 9, 2, b, 4);
    }
}

/* A File Contents Request: flags 1 (size) or 2 (range). */
static BOOL ct_contents(freerdp_peer *peer, uint32_t stream, uint32_t index,
                        uint32_t flags, uint64_t pos, uint32_t want)
{
    uint8_t b[24];

    rt_clip_contents_req(b, stream, index, flags, pos, want);
    return ct_send(peer, 8, 0, b, sizeof(b));
}

/* The next range of the file, or its line once whole. */
static void ct_next_range(freerdp_peer *peer)
{
    uint8_t req[24];
    char line[512];

    if (rt_clip_read_next(&ct_read, req, line, sizeof(line))) {
        (void)ct_send(peer, 8, 0, req, sizeof(req));
        return;
    }
    rts_say("%s", line);
}

/* The client's file list (a FILEDESCRIPTORW array): the first file's
 * size asked for. */
static void ct_descriptor(freerdp_peer *peer, const uint8_t *m, size_t n)
{
    uint32_t count;

    if (!rt_clip_file_list(m, n, &count, ct_read.name, &ct_read.size)) {
        rts_say("files bad");
        return;
    }
    rts_say("files %u %s %llu", count, ct_read.name,
            (unsigned long long)ct_read.size);
    if (ct_hostile) {
        (void)ct_contents(peer, CT_STREAM_PAST_END, count, 1, 0, 8);
    }
    (void)ct_contents(peer, RT_CLIP_STREAM_SIZE, 0, 1, 0, 8);
}

/* A File Contents Response. */
static void ct_contents_response(freerdp_peer *peer, uint16_t flags,
                                 const uint8_t *m, size_t n)
{
    uint32_t stream;
    uint64_t size;

    if (n < 4) {
        rts_say("contents bad");
        return;
    }
    stream = rt_get32(m);
    m += 4;
    n -= 4;
    if (stream == RT_CLIP_STREAM_SIZE && (flags & 1) && n == 8) {
        size = ((uint64_t)rt_get32(m + 4) << 32) | rt_get32(m);
        rts_say("size %llu", (unsigned long long)size);
        if (rt_clip_read_start(&ct_read, size)) {
            ct_next_range(peer);
        }
    } else if (stream == RT_CLIP_STREAM_RANGE && (flags & 1) &&
               rt_clip_read_range(&ct_read, m, n)) {
        ct_next_range(peer);
    } else {
        rts_say("contents %u %s %zu", stream, (flags & 1) ? "ok" : "fail", n);
    }
}

static void ct_pdu(freerdp_peer *peer, const uint8_t *m, size_t len)
{
    uint16_t type, flags;
    uint32_t dlen, id;
    uint8_t b[1024];
    size_t off, n;

    if (len < 8) {
        return;
    }
    type = (uint16_t)(m[0] | (m[1] << 8));
    flags = (uint16_t)(m[2] | (m[3] << 8));
    dlen = rt_get32(m + 4);
    if (dlen > len - 8) {
        return;
    }
    m += 8;
    switch (type) {
    case 7: /* the client's capabilities: our own list, if any */
        rts_say("pdu 7");
        n = 0;
        memset(b, 0, 4);
        while ((long)n < ct_flood && ct_send(peer, n % 2 ? 0x63 : 1, 0, b, 4)) {
            n++;
        }
        if (ct_flood > 0) {
            rts_say("flooded %zu", n);
        }
        if (ct_hostile) {
            (void)ct_contents(peer, CT_STREAM_UNOFFERED, 0, 1, 0, 8);
        }
        if (ct_text != NULL) {
            rt_put32(b, 13);
            rt_put16(b + 4, 0);
            (void)ct_send(peer, 2, 0, b, 6);
        } else if (ct_offer != NULL) {
            n = 0;
            rt_put32(b, CT_OFFER_FGD);
            n = 4 + ct_put_str16(b + 4, "FileGroupDescriptorW");
            rt_put32(b + n, CT_OFFER_FGD + 1);
            n += 4;
            n += ct_put_str16(b + n, "FileContents");
            (void)ct_send(peer, 2, 0, b, n);
        }
        break;
    case 2: /* Format List: said, answered, files or text asked for */
        fprintf(rts_out, "formats ");
        off = 0;
        id = 0;
        ct_fgd = 0;
        while (off + 4 <= dlen) {
            uint32_t f = rt_get32(m + off);
            size_t start;

            off += 4;
            start = off;
            while (off + 1 < dlen && (m[off] | m[off + 1]) != 0) {
                off += 2;
            }
            fprintf(rts_out, "%s%u:", id++ ? "," : "", f);
            ct_print16(m + start, off - start);
            if (rt_is16(m + start, off - start, "FileGroupDescriptorW")) {
                ct_fgd = f;
            }
            off += 2;
            if (f == 13) {
                id |= 0x80000000u;
            }
        }
        fputc('\n', rts_out);
        (void)ct_send(peer, 3, 1, NULL, 0);
        ct_asked_fgd = ct_fgd != 0;
        if (ct_asked_fgd) {
            rt_put32(b, ct_fgd);
            (void)ct_send(peer, 4, 0, b, 4);
        } else if (id & 0x80000000u) {
            rt_put32(b, 13);
            (void)ct_send(peer, 4, 0, b, 4);
        }
        break;
    case 5: /* Format Data Response */
        if (ct_asked_fgd) {
            ct_asked_fgd = false;
            if (flags & 1) {
                ct_descriptor(peer, m, dlen);
            } else {
                rts_say("files fail");
            }
        } else if (flags & 1) {
            fprintf(rts_out, "text ");
            ct_print16(m, dlen);
            fputc('\n', rts_out);
        } else {
            rts_say("pdu 5 fail");
        }
        break;
    case 4: /* the client asks for our text, or our file list */
        rts_say("pdu 4");
        if (ct_offer != NULL && dlen == 4 && rt_get32(m) == CT_OFFER_FGD) {
            ct_offer_list(peer);
            break;
        }
        n = 0;
        for (const char *t = ct_text ? ct_text : ""; *t && n + 4 < sizeof(b);
             t++) {
            rt_put16(b + n, (uint16_t)(unsigned char)*t);
            n += 2;
        }
        rt_put16(b + n, 0);
        (void)ct_send(peer, 5, ct_text ? 1 : 2, b, ct_text ? n + 2 : 0);
        break;
    case 8: /* File Contents Request: our file's size or bytes */
        rts_say("pdu 8");
        ct_offer_contents(peer, m, dlen);
        break;
    case 9: /* File Contents Response */
        ct_contents_response(peer, flags, m, dlen);
        break;
    default:
        rts_say("pdu %u", type);
    }
    fflush(rts_out);
}

static BOOL ct_channel(freerdp_peer *peer, UINT16 id, const BYTE *data,
                       size_t size, UINT32 flags, size_t total)
{
    if (id == ct_clip && ct_clip != 0 &&
        rt_msg_add(&ct_msg, data, size, flags, total)) {
        ct_pdu(peer, ct_msg.b, ct_msg.len);
    }
    return TRUE;
}

/* Active: capabilities (long names, file streams) and Monitor Ready. */
static BOOL ct_activate(freerdp_peer *peer)
{
    uint8_t caps[16];

    ct_clip = WTSChannelGetId(peer, "cliprdr");
    if (ct_clip == 0) {
        rts_say("no-cliprdr");
        return TRUE;
    }
    rts_say("joined");
    rt_put16(caps, 1);      /* one set */
    rt_put16(caps + 2, 0);  /* pad */
    rt_put16(caps + 4, 1);  /* general */
    rt_put16(caps + 6, 12); /* its length */
    rt_put32(caps + 8, 2);  /* version */
    rt_put32(caps + 12, 0x02 | 0x04);
    return ct_send(peer, 7, 0, caps, sizeof(caps)) &&
           ct_send(peer, 1, 0, NULL, 0);
}

static void ct_serve(freerdp_peer *peer)
{
    ct_clip = 0;
    ct_msg.total = 0;
    ct_asked_fgd = false;
    free(ct_read.file);
    ct_read.file = NULL;
    peer->Activate = ct_activate;
    peer->ReceiveChannelData = ct_channel;
    rts_run(peer, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr,
                "usage: rdp-clip-target PORT CERT KEY OUTFILE [TEXT]\n");
        return 2;
    }
    if (!rts_open_out(argv[4])) {
        return 1;
    }
    ct_text = argc > 5 ? argv[5] : NULL;
    if ((ct_offer = getenv("CT_OFFER_FILE")) != NULL && *ct_offer != '\0') {
        FILE *f = fopen(ct_offer, "rb");

        if (f == NULL || fseeko(f, 0, SEEK_END) != 0) {
            perror(ct_offer);
            return 1;
        }
        ct_offer_size = (uint64_t)ftello(f);
        fclose(f);
    } else {
        ct_offer = NULL;
    }
    ct_hostile = getenv("CT_HOSTILE") != NULL && *getenv("CT_HOSTILE") == '1';
    ct_flood = getenv("CT_FLOOD") != NULL ? atol(getenv("CT_FLOOD")) : 0;
    return rts_serve_forever(argv[1], argv[2], argv[3], ct_serve);
}
