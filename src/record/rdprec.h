/*
 * RDP session recordings (.rdprec): what the user saw, as the screen the
 * RDP child decoded, plus the input that went the other way. The format
 * is described for readers in docs/recordings.md; in short:
 *
 *   file    = magic record*          magic = "PCRDPv1\n" (8 bytes)
 *   record  = u8 type, u32 ms, u32 n, payload[n]   (big-endian; ms since
 *             the START record, never decreasing)
 *   START   u16 width, u16 height, u64 unix time in ms      (first record)
 *   FRAME   u16 width, u16 height, zlib(RGB rows)   a whole screen: a
 *           keyframe, and the screen's size from now on
 *   RECT    u16 x, u16 y, u16 w, u16 h, zlib(RGB rows)   a changed area
 *   MOUSE   u16 flags, u16 x, u16 y        (RDP pointer flags)
 *   KEY     u16 flags, u16 scancode        (only when input is recorded)
 *   UNICODE u16 flags, u16 code unit       (only when input is recorded)
 *   CLIP    u8 direction (0: client to target, 1: target to client),
 *           UTF-8 text: clipboard text that crossed, at most
 *           RDPREC_CLIP_MAX bytes   (only when input is recorded)
 *   END     UTF-8 text: why the recording ended
 *
 * Pixels are 3 bytes each (R, G, B), rows top to bottom, no padding,
 * compressed with zlib (RFC 1950; a browser's DecompressionStream
 * "deflate" reads it). A file cut short by a crash ends at its last
 * whole record.
 *
 * The writer (rdprec_writer) builds each record whole and hands it to
 * record_bytes() in one call, so a size limit (record_set_limit) either
 * takes a record or refuses it, never half of one. The reader
 * (rdprec_next, rdprec_canvas_apply) is a pure parser of untrusted bytes
 * (a recording may have been written by a compromised child), fuzzed by
 * fuzz/fuzz_rdprec.c: every length is checked against the data and the
 * named maxima below, every rectangle against the screen.
 *
 * Ownership: rdprec_writer_new() does not take the struct record;
 * rdprec_writer_free() (NULL-safe) frees the writer only. A canvas is
 * the caller's struct; rdprec_canvas_free() frees its pixels.
 */
#ifndef PORTCULLIS_RDPREC_H
#define PORTCULLIS_RDPREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record/record.h"

#define RDPREC_MAGIC "PCRDPv1\n"
#define RDPREC_MAGIC_LEN 8
#define RDPREC_HEAD_LEN 9 /* type, ms, length */
/* a screen's width and height, and its pixels */
#define RDPREC_DIM_MAX 8192
#define RDPREC_PIXELS_MAX (8192u * 4608u)
/* a record's payload (a whole screen of noise, compressed, fits) */
#define RDPREC_PAYLOAD_MAX (128u * 1024 * 1024)
#define RDPREC_END_MAX 1024  /* the END record's text */
#define RDPREC_CLIP_MAX 4096 /* a CLIP record's text */
#define RDPREC_CLIP_TO_TARGET 0
#define RDPREC_CLIP_TO_CLIENT 1

enum rdprec_type {
    RDPREC_START = 1,
    RDPREC_FRAME = 2,
    RDPREC_RECT = 3,
    RDPREC_MOUSE = 4,
    RDPREC_KEY = 5,
    RDPREC_UNICODE = 6,
    RDPREC_END = 7,
    RDPREC_CLIP = 8,
};

/* One record as read; data points into the reader's input. */
struct rdprec_event {
    uint8_t type;
    uint32_t ms;
    uint16_t x, y, w, h;  /* FRAME: w, h; RECT: all four; MOUSE: x, y */
    uint16_t flags, code; /* MOUSE: flags; KEY, UNICODE: flags, code;
                             CLIP: flags is the direction */
    uint64_t unix_ms;     /* START */
    const uint8_t *data;  /* FRAME, RECT: the zlib stream; END, CLIP: text */
    size_t len;
};

/* --- writing --- */

struct rdprec_writer;

struct rdprec_writer *rdprec_writer_new(struct record *r);
void rdprec_writer_free(struct rdprec_writer *w);
/* The magic and the START record; the clock starts here. */
int rdprec_w_start(struct rdprec_writer *w, unsigned width, unsigned height,
                   uint64_t unix_ms);
/* A FRAME (key: x, y must be 0 and w, h the screen) or a RECT from a
 * 32-bit framebuffer whose bytes 0, 1, 2 of each pixel are R, G, B (fb
 * points at pixel (0, 0), stride bytes per row). */
int rdprec_w_image(struct rdprec_writer *w, bool key, unsigned x, unsigned y,
                   unsigned width, unsigned height, const uint8_t *fb,
                   size_t stride);
int rdprec_w_mouse(struct rdprec_writer *w, uint16_t flags, uint16_t x,
                   uint16_t y);
int rdprec_w_key(struct rdprec_writer *w, bool unicode, uint16_t flags,
                 uint16_t code);
/* Clipboard text (n bytes of UTF-8, cut to RDPREC_CLIP_MAX) that went
 * dir (RDPREC_CLIP_TO_*). */
int rdprec_w_clip(struct rdprec_writer *w, int dir, const char *text, size_t n);
int rdprec_w_end(struct rdprec_writer *w, const char *reason);

/* --- reading --- */

/*
 * The record at *off of data[0..len) (start with *off = 0: the magic is
 * checked first). ERR_OK: *ev is filled and *off moved past it;
 * ERR_NOT_FOUND: the end of the data; ERR_IO: the data ends inside a
 * record (cut short); ERR_INVALID: not a recording, or a malformed
 * record. *ev is zeroed on every call.
 */
int rdprec_next(const uint8_t *data, size_t len, size_t *off,
                struct rdprec_event *ev);

/* The screen as the records so far left it. */
struct rdprec_canvas {
    unsigned w, h; /* 0 until the first FRAME */
    uint8_t *rgb;  /* w * h * 3 */
    uint16_t mouse_x, mouse_y;
    uint32_t ms; /* of the last record applied */
};

/* Applies one record: ERR_INVALID for a RECT outside the screen or
 * before any FRAME, or pixels that do not inflate to exactly w * h * 3
 * bytes; ERR_NOMEM. Records without pixels only move the clock (and the
 * mouse). */
int rdprec_canvas_apply(struct rdprec_canvas *c, const struct rdprec_event *ev);
void rdprec_canvas_free(struct rdprec_canvas *c);
/* The canvas as a PNG file's bytes (*out: heap, caller frees). */
int rdprec_canvas_png(const struct rdprec_canvas *c, uint8_t **out,
                      size_t *len);

#endif
