/*
 * What every e2e RDP test program (the targets with rdp_test_server.c,
 * the clients with rdp_test_client.c) needs to speak a channel by hand:
 * little-endian fields, a static channel's chunks put back together into
 * whole messages, UTF-16LE names, SHA-256 in hex and a monotonic clock.
 * Header only: each program uses a part.
 */
#ifndef PORTCULLIS_RDP_TEST_H
#define PORTCULLIS_RDP_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <freerdp/svc.h>
#include <winpr/crypto.h>

static inline void rt_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void rt_put32(uint8_t *p, uint32_t v)
{
    rt_put16(p, (uint16_t)v);
    rt_put16(p + 2, (uint16_t)(v >> 16));
}

static inline uint16_t rt_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t rt_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* Whether the UTF-16LE string p (n bytes) is the ASCII string s. */
static inline bool rt_is16(const uint8_t *p, size_t n, const char *s)
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

/* The SHA-256 of n bytes at p in hex (zeros if WinPR cannot). */
static inline void rt_sha256_hex(const void *p, size_t n, char hex[65])
{
    uint8_t md[32];

    if (!winpr_Digest(WINPR_MD_SHA256, p, n, md, sizeof(md))) {
        memset(md, 0, sizeof(md));
    }
    for (size_t i = 0; i < sizeof(md); i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
}

/* Seconds since t (CLOCK_MONOTONIC). */
static inline double rt_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) +
           (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* A static channel's message put back together from its chunks, max
 * bytes at most (a longer one is dropped). */
struct rt_msg {
    uint8_t *b;
    size_t max, len, total; /* total 0: none under way */
};

/* One chunk (ReceiveChannelData's arguments); true when it completed a
 * message, then in m->b, m->len bytes (at least one). */
static inline bool rt_msg_add(struct rt_msg *m, const uint8_t *data,
                              size_t size, uint32_t flags, size_t total)
{
    if (flags & CHANNEL_FLAG_FIRST) {
        m->len = 0;
        m->total = total <= m->max ? total : 0;
    }
    if (m->total == 0 || size > m->total - m->len) {
        m->total = 0;
        return false;
    }
    memcpy(m->b + m->len, data, size);
    m->len += size;
    if ((flags & CHANNEL_FLAG_LAST) && m->len == m->total) {
        m->total = 0;
        return m->len > 0;
    }
    return false;
}

/* [MS-RDPEDYC]: a Data PDU (first: a Data First, with the message's
 * total length) on channel ch (a 1-byte ID) carrying len bytes of body,
 * at b; its length. */
static inline size_t rt_dvc_data(uint8_t *b, bool first, uint8_t ch,
                                 uint32_t total, const uint8_t *body,
                                 size_t len)
{
    size_t n = 0;

    b[n++] = first ? (uint8_t)(0x20 | (2 << 2)) : 0x30;
    b[n++] = ch;
    if (first) {
        rt_put32(b + n, total);
        n += 4;
    }
    memcpy(b + n, body, len);
    return n + len;
}

/* [MS-RDPEGFX]: a PDU header at b (cmdId, flags 0, pduLength); its
 * length. */
static inline size_t rt_gfx_head(uint8_t *b, uint16_t cmd, uint32_t len)
{
    rt_put16(b, cmd);
    rt_put16(b + 2, 0);
    rt_put32(b + 4, len);
    return 8;
}

/* [MS-RDPECLIP]: both ends of the file transfer, the clipboard target
 * reading the client's files and the clipboard client the target's. */
#define RT_CLIP_FD_SIZE 592 /* a FILEDESCRIPTORW */
#define RT_CLIP_RANGE 65536 /* asked for at a time */
#define RT_CLIP_FILE_MAX (8 * 1024 * 1024)
/* the reader's stream IDs: the size, then the ranges */
#define RT_CLIP_STREAM_SIZE 1
#define RT_CLIP_STREAM_RANGE 2

/* A File Contents Request's body (24 bytes at b): flags 1 (size) or 2
 * (range). */
static inline void rt_clip_contents_req(uint8_t *b, uint32_t stream,
                                        uint32_t index, uint32_t flags,
                                        uint64_t pos, uint32_t want)
{
    rt_put32(b, stream);
    rt_put32(b + 4, index);
    rt_put32(b + 8, flags);
    rt_put32(b + 12, (uint32_t)pos);
    rt_put32(b + 16, (uint32_t)(pos >> 32));
    rt_put32(b + 20, want);
}

/* A file list (a Format Data Response of FileGroupDescriptorW, n bytes
 * at m): its count, and the first file's name (ASCII, others '?') and
 * size. False when it holds no file or fewer than it says. */
static inline bool rt_clip_file_list(const uint8_t *m, size_t n,
                                     uint32_t *count, char name[261],
                                     uint64_t *size)
{
    size_t i;

    if (n < 4 || (*count = rt_get32(m)) == 0 ||
        (n - 4) / RT_CLIP_FD_SIZE < *count) {
        return false;
    }
    m += 4;
    for (i = 0; i < 260; i++) {
        uint16_t u = rt_get16(m + 72 + 2 * i);

        if (u == 0) {
            break;
        }
        name[i] = u >= 0x20 && u < 0x7f ? (char)u : '?';
    }
    name[i] = '\0';
    *size = ((uint64_t)rt_get32(m + 64) << 32) | rt_get32(m + 68);
    return true;
}

/* The first file of a file list, read a range at a time. */
struct rt_clip_read {
    char name[261];
    uint64_t size;   /* as the list says */
    uint8_t *file;   /* once its size was confirmed (free it) */
    size_t got;      /* bytes read */
    unsigned ranges; /* ranges read */
};

/* Its size confirmed (a FILECONTENTS_SIZE answer): false when it is not
 * the list's, over RT_CLIP_FILE_MAX or memory is short. */
static inline bool rt_clip_read_start(struct rt_clip_read *r, uint64_t size)
{
    if (size != r->size || size > RT_CLIP_FILE_MAX) {
        return false;
    }
    free(r->file);
    r->file = malloc(size > 0 ? size : 1);
    r->got = 0;
    r->ranges = 0;
    return r->file != NULL;
}

/* A range's bytes (a FILECONTENTS_RANGE answer, n at m): false, and
 * nothing taken, unless they fit after what was read. */
static inline bool rt_clip_read_range(struct rt_clip_read *r, const uint8_t *m,
                                      size_t n)
{
    if (r->file == NULL || n == 0 || n > r->size - r->got) {
        return false;
    }
    memcpy(r->file + r->got, m, n);
    r->got += n;
    r->ranges++;
    return true;
}

/* While the file is not whole: true, and the next range's File Contents
 * Request body in req (24 bytes). Once whole: false, and its line in
 * line, "file NAME SIZE SHA256 RANGES". */
static inline bool rt_clip_read_next(const struct rt_clip_read *r, uint8_t *req,
                                     char *line, size_t len)
{
    uint64_t left = r->size - r->got;
    char hex[65];

    if (left > 0) {
        rt_clip_contents_req(req, RT_CLIP_STREAM_RANGE, 0, 2, r->got,
                             left < RT_CLIP_RANGE ? (uint32_t)left
                                                  : RT_CLIP_RANGE);
        return true;
    }
    rt_sha256_hex(r->file, r->got, hex);
    snprintf(line, len, "file %s %zu %s %u", r->name, r->got, hex, r->ranges);
    return false;
}

#endif
