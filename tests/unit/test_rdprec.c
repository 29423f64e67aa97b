/*
 * RDP recordings (record/rdprec.h): what the writer writes, the reader
 * reads back to the same screen; the size limit takes whole records or
 * none, leaving a file that still reads; a file cut short reads up to its
 * last whole record; malformed records (rectangles off the screen, pixels
 * that do not inflate to the rectangle, huge lengths, unknown types) are
 * refused; the PNG is well formed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "common/err.h"
#include "common/util.h"
#include "record/rdprec.h"
#include "record/record.h"

static char path[] = "/tmp/pc-rdprec-XXXXXX";

static struct record *open_tmp(void)
{
    int fd;

    strcpy(path, "/tmp/pc-rdprec-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    return record_new(fd);
}

static uint8_t *slurp(size_t *n)
{
    uint8_t *d = NULL;

    assert_int_equal(util_read_file(path, 64u << 20, &d, n), ERR_OK);
    unlink(path);
    return d;
}

/* A w x h RGBX framebuffer filled with one colour. */
static uint8_t *fb_new(unsigned w, unsigned h, uint8_t r, uint8_t g, uint8_t b)
{
    uint8_t *fb = malloc((size_t)w * h * 4);

    for (size_t i = 0; i < (size_t)w * h; i++) {
        fb[i * 4] = r;
        fb[i * 4 + 1] = g;
        fb[i * 4 + 2] = b;
        fb[i * 4 + 3] = 0xee; /* ignored */
    }
    return fb;
}

static void fb_fill(uint8_t *fb, unsigned w, unsigned x, unsigned y,
                    unsigned rw, unsigned rh, uint8_t r, uint8_t g, uint8_t b)
{
    for (unsigned j = y; j < y + rh; j++) {
        for (unsigned i = x; i < x + rw; i++) {
            uint8_t *p = fb + ((size_t)j * w + i) * 4;
            p[0] = r;
            p[1] = g;
            p[2] = b;
        }
    }
}

static void px_is(const struct rdprec_canvas *c, unsigned x, unsigned y,
                  uint8_t r, uint8_t g, uint8_t b)
{
    const uint8_t *p = c->rgb + ((size_t)y * c->w + x) * 3;

    assert_int_equal(p[0], r);
    assert_int_equal(p[1], g);
    assert_int_equal(p[2], b);
}

/* Reads everything; returns the last rdprec_next result. */
static int read_all(const uint8_t *d, size_t n, struct rdprec_canvas *c,
                    int *types)
{
    struct rdprec_event ev;
    size_t off = 0;
    int r;

    while ((r = rdprec_next(d, n, &off, &ev)) == ERR_OK) {
        if (types != NULL) {
            *types++ = ev.type;
            *types = 0;
        }
        if ((r = rdprec_canvas_apply(c, &ev)) != ERR_OK) {
            return r;
        }
    }
    return r;
}

static void test_roundtrip(void **state)
{
    struct record *r = open_tmp();
    struct rdprec_writer *w = rdprec_writer_new(r);
    struct rdprec_canvas c;
    uint8_t *fb = fb_new(64, 48, 30, 144, 255), *d;
    uint64_t size = 0;
    char sha[65];
    int types[16];
    size_t n;

    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(rdprec_w_start(w, 64, 48, 1700000000123ull), ERR_OK);
    assert_int_equal(rdprec_w_image(w, true, 0, 0, 64, 48, fb, 64 * 4), ERR_OK);
    fb_fill(fb, 64, 10, 5, 7, 3, 250, 1, 2);
    assert_int_equal(rdprec_w_image(w, false, 10, 5, 7, 3, fb, 64 * 4), ERR_OK);
    assert_int_equal(rdprec_w_mouse(w, 0x0800, 12, 6), ERR_OK);
    assert_int_equal(rdprec_w_key(w, false, 0, 0x1e), ERR_OK);
    assert_int_equal(rdprec_w_key(w, true, 0x8000, 'a'), ERR_OK);
    assert_int_equal(rdprec_w_clip(w, RDPREC_CLIP_TO_TARGET, "copied", 6),
                     ERR_OK);
    assert_int_equal(rdprec_w_clip(w, 2, "x", 1), ERR_INVALID);
    assert_int_equal(rdprec_w_end(w, "ok"), ERR_OK);
    assert_int_equal(record_close(r, &size, sha), ERR_OK);
    rdprec_writer_free(w);
    d = slurp(&n);
    assert_int_equal(size, n);
    assert_memory_equal(d, RDPREC_MAGIC, RDPREC_MAGIC_LEN);
    {
        /* the CLIP record reads back with its direction and text */
        struct rdprec_event ev;
        size_t off = 0;

        while (rdprec_next(d, n, &off, &ev) == ERR_OK &&
               ev.type != RDPREC_CLIP) {
        }
        assert_int_equal(ev.type, RDPREC_CLIP);
        assert_int_equal(ev.flags, RDPREC_CLIP_TO_TARGET);
        assert_int_equal(ev.len, 6);
        assert_memory_equal(ev.data, "copied", 6);
    }
    assert_int_equal(read_all(d, n, &c, types), ERR_NOT_FOUND);
    assert_int_equal(types[0], RDPREC_START);
    assert_int_equal(types[1], RDPREC_FRAME);
    assert_int_equal(types[2], RDPREC_RECT);
    assert_int_equal(types[3], RDPREC_MOUSE);
    assert_int_equal(types[4], RDPREC_KEY);
    assert_int_equal(types[5], RDPREC_UNICODE);
    assert_int_equal(types[6], RDPREC_CLIP);
    assert_int_equal(types[7], RDPREC_END);
    assert_int_equal(types[8], 0);
    assert_int_equal(c.w, 64);
    assert_int_equal(c.h, 48);
    px_is(&c, 0, 0, 30, 144, 255);
    px_is(&c, 10, 5, 250, 1, 2);
    px_is(&c, 16, 7, 250, 1, 2);
    px_is(&c, 17, 7, 30, 144, 255);
    px_is(&c, 16, 8, 30, 144, 255);
    assert_int_equal(c.mouse_x, 12);
    assert_int_equal(c.mouse_y, 6);
    rdprec_canvas_free(&c);
    free(d);
    free(fb);
}

/* The limit refuses a record whole: the file stays readable, and a
 * small END still fits once the limit is raised for it. */
static void test_limit(void **state)
{
    struct record *r = open_tmp();
    struct rdprec_writer *w = rdprec_writer_new(r);
    struct rdprec_canvas c;
    uint8_t *fb = malloc(256 * 256 * 4), *d;
    uint64_t size = 0;
    char sha[65];
    int types[16], e = ERR_OK, frames = 0;
    uint64_t x = 88172645463325252ull;
    size_t n;

    (void)state;
    memset(&c, 0, sizeof(c));
    /* noise (xorshift): does not compress */
    for (size_t i = 0; i < 256 * 256 * 4; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        fb[i] = (uint8_t)x;
    }
    record_set_limit(r, 500000);
    assert_int_equal(rdprec_w_start(w, 256, 256, 0), ERR_OK);
    while (frames < 10 && (e = rdprec_w_image(w, true, 0, 0, 256, 256, fb,
                                              256 * 4)) == ERR_OK) {
        frames++;
    }
    assert_int_equal(e, ERR_TOO_LONG);
    assert_true(record_limit_hit(r));
    assert_false(record_failed(r));
    assert_true(frames >= 1 && frames < 10);
    assert_true(record_size(r) <= 500000);
    record_set_limit(r, 600000);
    assert_int_equal(rdprec_w_end(w, "size limit"), ERR_OK);
    assert_int_equal(record_close(r, &size, sha), ERR_OK);
    rdprec_writer_free(w);
    d = slurp(&n);
    assert_true(n <= 600000);
    assert_int_equal(read_all(d, n, &c, types), ERR_NOT_FOUND);
    assert_int_equal(types[frames + 1], RDPREC_END);
    rdprec_canvas_free(&c);
    free(d);
    free(fb);
}

/* A record to append: type, ms, payload. */
static size_t put_rec(uint8_t *p, uint8_t type, uint32_t ms, const void *pl,
                      uint32_t n)
{
    p[0] = type;
    p[1] = (uint8_t)(ms >> 24);
    p[2] = (uint8_t)(ms >> 16);
    p[3] = (uint8_t)(ms >> 8);
    p[4] = (uint8_t)ms;
    p[5] = (uint8_t)(n >> 24);
    p[6] = (uint8_t)(n >> 16);
    p[7] = (uint8_t)(n >> 8);
    p[8] = (uint8_t)n;
    memcpy(p + 9, pl, n);
    return 9 + n;
}

/* A FRAME or RECT payload: head bytes, then zlib of raw bytes. */
static uint32_t img_payload(uint8_t *out, const uint8_t *head, size_t hn,
                            size_t raw)
{
    uint8_t *px = calloc(1, raw + 1);
    uLongf zl = compressBound((uLong)raw);

    memcpy(out, head, hn);
    assert_int_equal(compress2(out + hn, &zl, px, (uLong)raw, 1), Z_OK);
    free(px);
    return (uint32_t)(hn + zl);
}

static void test_malformed(void **state)
{
    static uint8_t d[8192], pl[4096];
    const uint8_t frame_head[4] = {0, 4, 0, 4};           /* 4 x 4 */
    const uint8_t off_head[8] = {0, 3, 0, 3, 0, 2, 0, 1}; /* 2x1 at 3,3 */
    const uint8_t ok_head[8] = {0, 2, 0, 3, 0, 2, 0, 1};  /* 2x1 at 2,3 */
    struct rdprec_canvas c;
    struct rdprec_event ev;
    size_t n, base, off;
    uint32_t pn;

    (void)state;
    memset(&c, 0, sizeof(c));
    /* not a recording */
    off = 0;
    assert_int_equal(
        rdprec_next((const uint8_t *)"{\"version\": 2}\n", 15, &off, &ev),
        ERR_INVALID);
    /* a RECT before any FRAME */
    memcpy(d, RDPREC_MAGIC, 8);
    pn = img_payload(pl, ok_head, 8, 2 * 1 * 3);
    n = 8 + put_rec(d + 8, RDPREC_RECT, 0, pl, pn);
    assert_int_equal(read_all(d, n, &c, NULL), ERR_INVALID);
    /* a FRAME, then a RECT off its right edge */
    pn = img_payload(pl, frame_head, 4, 4 * 4 * 3);
    base = 8 + put_rec(d + 8, RDPREC_FRAME, 0, pl, pn);
    pn = img_payload(pl, off_head, 8, 2 * 1 * 3);
    n = base + put_rec(d + base, RDPREC_RECT, 1, pl, pn);
    assert_int_equal(read_all(d, n, &c, NULL), ERR_INVALID);
    rdprec_canvas_free(&c);
    /* pixels that inflate to more than the rectangle */
    pn = img_payload(pl, ok_head, 8, 2 * 1 * 3 + 1);
    n = base + put_rec(d + base, RDPREC_RECT, 1, pl, pn);
    assert_int_equal(read_all(d, n, &c, NULL), ERR_INVALID);
    rdprec_canvas_free(&c);
    /* ... or fewer */
    pn = img_payload(pl, ok_head, 8, 2 * 1 * 3 - 1);
    n = base + put_rec(d + base, RDPREC_RECT, 1, pl, pn);
    assert_int_equal(read_all(d, n, &c, NULL), ERR_INVALID);
    rdprec_canvas_free(&c);
    /* the right one reads, and a record cut short after it is ERR_IO */
    pn = img_payload(pl, ok_head, 8, 2 * 1 * 3);
    n = base + put_rec(d + base, RDPREC_RECT, 1, pl, pn);
    assert_int_equal(read_all(d, n, &c, NULL), ERR_NOT_FOUND);
    rdprec_canvas_free(&c);
    assert_int_equal(read_all(d, n - 1, &c, NULL), ERR_IO);
    rdprec_canvas_free(&c);
    /* a huge length */
    memset(d + base, 0, 9);
    d[base] = RDPREC_END;
    d[base + 5] = 0x7f;
    assert_int_equal(read_all(d, base + 9, &c, NULL), ERR_INVALID);
    rdprec_canvas_free(&c);
    /* an unknown type, a MOUSE of the wrong length, a screen too big */
    n = base + put_rec(d + base, 99, 1, "x", 1);
    assert_int_equal(read_all(d, n, &c, NULL), ERR_INVALID);
    rdprec_canvas_free(&c);
    n = base + put_rec(d + base, RDPREC_MOUSE, 1, "12345", 5);
    assert_int_equal(read_all(d, n, &c, NULL), ERR_INVALID);
    rdprec_canvas_free(&c);
    n = 8 + put_rec(d + 8, RDPREC_FRAME, 0, "\x20\x01\x00\x04\x78", 5);
    assert_int_equal(read_all(d, n, &c, NULL), ERR_INVALID);
    rdprec_canvas_free(&c);
    assert_null(c.rgb);
}

static void test_png(void **state)
{
    struct rdprec_canvas c;
    uint8_t *png = NULL;
    size_t n = 0;

    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(rdprec_canvas_png(&c, &png, &n), ERR_INVALID);
    c.w = 3;
    c.h = 2;
    c.rgb = calloc(1, 3 * 2 * 3);
    c.rgb[0] = 255;
    assert_int_equal(rdprec_canvas_png(&c, &png, &n), ERR_OK);
    assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
    assert_memory_equal(png + 12, "IHDR", 4);
    assert_memory_equal(png + n - 8, "IEND", 4);
    /* the IHDR's CRC */
    assert_int_equal(crc32(0, png + 12, 17), (uLong)png[29] << 24 |
                                                 (uLong)png[30] << 16 |
                                                 (uLong)png[31] << 8 | png[32]);
    free(png);
    rdprec_canvas_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_png),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
