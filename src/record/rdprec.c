/*
 * RDP recordings: writer and reader; see rdprec.h.
 */
#include "record/rdprec.h"

#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/err.h"
#include "common/util.h"

struct rdprec_writer {
    struct record *r;
    int64_t start_ms; /* monotonic time of START */
    uint32_t last_ms; /* never decreasing */
    uint8_t *out;     /* one record being built */
    size_t outcap;
    uint8_t *rgb; /* pixels being compressed */
    size_t rgbcap;
};

struct rdprec_writer *rdprec_writer_new(struct record *r)
{
    struct rdprec_writer *w = calloc(1, sizeof(*w));

    if (w != NULL) {
        w->r = r;
        w->start_ms = util_mono_ms();
    }
    return w;
}

void rdprec_writer_free(struct rdprec_writer *w)
{
    if (w == NULL) {
        return;
    }
    free(w->out);
    free(w->rgb);
    free(w);
}

static int rdprec_grow(uint8_t **p, size_t *cap, size_t n)
{
    uint8_t *np;

    if (*cap >= n) {
        return ERR_OK;
    }
    if ((np = realloc(*p, n)) == NULL) {
        return ERR_NOMEM;
    }
    *p = np;
    *cap = n;
    return ERR_OK;
}

static void rdprec_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void rdprec_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t rdprec_now(struct rdprec_writer *w)
{
    int64_t ms = util_mono_ms() - w->start_ms;

    if (ms < 0) {
        ms = 0;
    }
    if (ms > UINT32_MAX) {
        ms = UINT32_MAX;
    }
    if ((uint32_t)ms < w->last_ms) {
        ms = w->last_ms;
    }
    w->last_ms = (uint32_t)ms;
    return (uint32_t)ms;
}

/* Writes the record in w->out (its head filled here): n payload bytes. */
static int rdprec_emit(struct rdprec_writer *w, uint8_t type, size_t n)
{
    w->out[0] = type;
    rdprec_put32(w->out + 1, rdprec_now(w));
    rdprec_put32(w->out + 5, (uint32_t)n);
    return record_bytes(w->r, w->out, RDPREC_HEAD_LEN + n);
}

/* A small record: payload p[0..n). */
static int rdprec_small(struct rdprec_writer *w, uint8_t type, const void *p,
                        size_t n)
{
    int e;

    if ((e = rdprec_grow(&w->out, &w->outcap, RDPREC_HEAD_LEN + n)) != ERR_OK) {
        return e;
    }
    memcpy(w->out + RDPREC_HEAD_LEN, p, n);
    return rdprec_emit(w, type, n);
}

int rdprec_w_start(struct rdprec_writer *w, unsigned width, unsigned height,
                   uint64_t unix_ms)
{
    uint8_t p[12];
    int e;

    if (width == 0 || height == 0 || width > RDPREC_DIM_MAX ||
        height > RDPREC_DIM_MAX) {
        return ERR_INVALID;
    }
    if ((e = record_bytes(w->r, RDPREC_MAGIC, RDPREC_MAGIC_LEN)) != ERR_OK) {
        return e;
    }
    w->start_ms = util_mono_ms();
    w->last_ms = 0;
    rdprec_put16(p, (uint16_t)width);
    rdprec_put16(p + 2, (uint16_t)height);
    rdprec_put32(p + 4, (uint32_t)(unix_ms >> 32));
    rdprec_put32(p + 8, (uint32_t)unix_ms);
    return rdprec_small(w, RDPREC_START, p, sizeof(p));
}

int rdprec_w_image(struct rdprec_writer *w, bool key, unsigned x, unsigned y,
                   unsigned width, unsigned height, const uint8_t *fb,
                   size_t stride)
{
    size_t raw, head = key ? 4 : 8;
    uLongf zlen;
    uint8_t *d;
    int e;

    if (width == 0 || height == 0 || width > RDPREC_DIM_MAX ||
        height > RDPREC_DIM_MAX || x > RDPREC_DIM_MAX - width ||
        y > RDPREC_DIM_MAX - height || (key && (x != 0 || y != 0)) ||
        (size_t)width * height > RDPREC_PIXELS_MAX) {
        return ERR_INVALID;
    }
    raw = (size_t)width * height * 3;
    zlen = compressBound((uLong)raw);
    if ((e = rdprec_grow(&w->rgb, &w->rgbcap, raw)) != ERR_OK ||
        (e = rdprec_grow(&w->out, &w->outcap,
                         RDPREC_HEAD_LEN + head + (size_t)zlen)) != ERR_OK) {
        return e;
    }
    d = w->rgb;
    for (unsigned row = 0; row < height; row++) {
        const uint8_t *s = fb + (size_t)(y + row) * stride + (size_t)x * 4;

        for (unsigned col = 0; col < width; col++, s += 4, d += 3) {
            d[0] = s[0];
            d[1] = s[1];
            d[2] = s[2];
        }
    }
    d = w->out + RDPREC_HEAD_LEN;
    if (key) {
        rdprec_put16(d, (uint16_t)width);
        rdprec_put16(d + 2, (uint16_t)height);
    } else {
        rdprec_put16(d, (uint16_t)x);
        rdprec_put16(d + 2, (uint16_t)y);
        rdprec_put16(d + 4, (uint16_t)width);
        rdprec_put16(d + 6, (uint16_t)height);
    }
    /* level 1: the child compresses as the session runs */
    if (compress2(d + head, &zlen, w->rgb, (uLong)raw, 1) != Z_OK ||
        head + zlen > RDPREC_PAYLOAD_MAX) {
        return ERR_INTERNAL;
    }
    return rdprec_emit(w, key ? RDPREC_FRAME : RDPREC_RECT,
                       head + (size_t)zlen);
}

int rdprec_w_mouse(struct rdprec_writer *w, uint16_t flags, uint16_t x,
                   uint16_t y)
{
    uint8_t p[6];

    rdprec_put16(p, flags);
    rdprec_put16(p + 2, x);
    rdprec_put16(p + 4, y);
    return rdprec_small(w, RDPREC_MOUSE, p, sizeof(p));
}

int rdprec_w_key(struct rdprec_writer *w, bool unicode, uint16_t flags,
                 uint16_t code)
{
    uint8_t p[4];

    rdprec_put16(p, flags);
    rdprec_put16(p + 2, code);
    return rdprec_small(w, unicode ? RDPREC_UNICODE : RDPREC_KEY, p, sizeof(p));
}

int rdprec_w_clip(struct rdprec_writer *w, int dir, const char *text, size_t n)
{
    uint8_t p[1 + RDPREC_CLIP_MAX];

    if (dir != RDPREC_CLIP_TO_TARGET && dir != RDPREC_CLIP_TO_CLIENT) {
        return ERR_INVALID;
    }
    if (n > RDPREC_CLIP_MAX) {
        n = RDPREC_CLIP_MAX;
    }
    p[0] = (uint8_t)dir;
    memcpy(p + 1, text, n);
    return rdprec_small(w, RDPREC_CLIP, p, n + 1);
}

int rdprec_w_end(struct rdprec_writer *w, const char *reason)
{
    size_t n = strlen(reason);

    if (n > RDPREC_END_MAX) {
        n = RDPREC_END_MAX;
    }
    return rdprec_small(w, RDPREC_END, reason, n);
}

/* --- reading --- */

static uint16_t rdprec_get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t rdprec_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Width and height of a screen or rectangle: both 1..DIM_MAX, and not
 * more pixels than PIXELS_MAX. */
static bool rdprec_dims_ok(unsigned w, unsigned h)
{
    return w >= 1 && h >= 1 && w <= RDPREC_DIM_MAX && h <= RDPREC_DIM_MAX &&
           (size_t)w * h <= RDPREC_PIXELS_MAX;
}

/* Reads a width and height at p into ev; false when out of range. */
static bool rdprec_read_dims(struct rdprec_event *ev, const uint8_t *p)
{
    ev->w = rdprec_get16(p);
    ev->h = rdprec_get16(p + 2);
    return rdprec_dims_ok(ev->w, ev->h);
}

int rdprec_next(const uint8_t *data, size_t len, size_t *off,
                struct rdprec_event *ev)
{
    const uint8_t *p;
    size_t at = *off;
    uint32_t n;

    memset(ev, 0, sizeof(*ev));
    if (at == 0) {
        if (len < RDPREC_MAGIC_LEN) {
            return len == 0 || memcmp(data, RDPREC_MAGIC, len) != 0
                       ? ERR_INVALID
                       : ERR_IO;
        }
        if (memcmp(data, RDPREC_MAGIC, RDPREC_MAGIC_LEN) != 0) {
            return ERR_INVALID;
        }
        at = RDPREC_MAGIC_LEN;
    }
    if (at > len) {
        return ERR_INVALID;
    }
    if (at == len) {
        *off = at;
        return ERR_NOT_FOUND;
    }
    if (len - at < RDPREC_HEAD_LEN) {
        return ERR_IO;
    }
    p = data + at;
    n = rdprec_get32(p + 5);
    if (n > RDPREC_PAYLOAD_MAX) {
        return ERR_INVALID;
    }
    if (len - at - RDPREC_HEAD_LEN < n) {
        return ERR_IO;
    }
    ev->type = p[0];
    ev->ms = rdprec_get32(p + 1);
    p += RDPREC_HEAD_LEN;
    switch (ev->type) {
    case RDPREC_START:
        if (n != 12) {
            return ERR_INVALID;
        }
        ev->unix_ms = (uint64_t)rdprec_get32(p + 4) << 32 | rdprec_get32(p + 8);
        if (!rdprec_read_dims(ev, p)) {
            return ERR_INVALID;
        }
        break;
    case RDPREC_FRAME:
        if (n < 5) {
            return ERR_INVALID;
        }
        ev->data = p + 4;
        ev->len = n - 4;
        if (!rdprec_read_dims(ev, p)) {
            return ERR_INVALID;
        }
        break;
    case RDPREC_RECT:
        if (n < 9) {
            return ERR_INVALID;
        }
        ev->x = rdprec_get16(p);
        ev->y = rdprec_get16(p + 2);
        ev->data = p + 8;
        ev->len = n - 8;
        if (!rdprec_read_dims(ev, p + 4)) {
            return ERR_INVALID;
        }
        break;
    case RDPREC_MOUSE:
        if (n != 6) {
            return ERR_INVALID;
        }
        ev->flags = rdprec_get16(p);
        ev->x = rdprec_get16(p + 2);
        ev->y = rdprec_get16(p + 4);
        break;
    case RDPREC_KEY:
    case RDPREC_UNICODE:
        if (n != 4) {
            return ERR_INVALID;
        }
        ev->flags = rdprec_get16(p);
        ev->code = rdprec_get16(p + 2);
        break;
    case RDPREC_CLIP:
        if (n < 1 || n - 1 > RDPREC_CLIP_MAX || p[0] > RDPREC_CLIP_TO_CLIENT) {
            return ERR_INVALID;
        }
        ev->flags = p[0];
        ev->data = p + 1;
        ev->len = n - 1;
        break;
    case RDPREC_END:
        if (n > RDPREC_END_MAX) {
            return ERR_INVALID;
        }
        ev->data = p;
        ev->len = n;
        break;
    default:
        return ERR_INVALID;
    }
    *off = at + RDPREC_HEAD_LEN + n;
    return ERR_OK;
}

/* Inflates exactly want bytes into out; anything else is invalid. */
static int rdprec_inflate(const uint8_t *z, size_t zlen, uint8_t *out,
                          size_t want)
{
    z_stream s;
    int zr;

    memset(&s, 0, sizeof(s));
    if (inflateInit(&s) != Z_OK) {
        return ERR_NOMEM;
    }
    s.next_in = (Bytef *)(uintptr_t)z;
    s.avail_in = (uInt)zlen;
    s.next_out = out;
    s.avail_out = (uInt)want;
    zr = inflate(&s, Z_FINISH);
    inflateEnd(&s);
    /* the stream must end exactly where the pixels do */
    return zr == Z_STREAM_END && s.avail_out == 0 && s.avail_in == 0
               ? ERR_OK
               : ERR_INVALID;
}

int rdprec_canvas_apply(struct rdprec_canvas *c, const struct rdprec_event *ev)
{
    size_t want;
    uint8_t *px;
    int e;

    if (ev->ms > c->ms) {
        c->ms = ev->ms;
    }
    switch (ev->type) {
    case RDPREC_FRAME:
        want = (size_t)ev->w * ev->h * 3;
        if ((px = malloc(want)) == NULL) {
            return ERR_NOMEM;
        }
        if ((e = rdprec_inflate(ev->data, ev->len, px, want)) != ERR_OK) {
            free(px);
            return e;
        }
        free(c->rgb);
        c->rgb = px;
        c->w = ev->w;
        c->h = ev->h;
        return ERR_OK;
    case RDPREC_RECT:
        if (c->rgb == NULL || ev->x >= c->w || ev->y >= c->h ||
            ev->w > c->w - ev->x || ev->h > c->h - ev->y) {
            return ERR_INVALID;
        }
        want = (size_t)ev->w * ev->h * 3;
        if ((px = malloc(want)) == NULL) {
            return ERR_NOMEM;
        }
        if ((e = rdprec_inflate(ev->data, ev->len, px, want)) != ERR_OK) {
            free(px);
            return e;
        }
        for (unsigned row = 0; row < ev->h; row++) {
            memcpy(c->rgb + ((size_t)(ev->y + row) * c->w + ev->x) * 3,
                   px + (size_t)row * ev->w * 3, (size_t)ev->w * 3);
        }
        free(px);
        return ERR_OK;
    case RDPREC_MOUSE:
        c->mouse_x = ev->x;
        c->mouse_y = ev->y;
        return ERR_OK;
    default:
        return ERR_OK;
    }
}

void rdprec_canvas_free(struct rdprec_canvas *c)
{
    free(c->rgb);
    c->rgb = NULL;
    c->w = 0;
    c->h = 0;
}

/* --- PNG (for `portcullis session frame`) --- */

static void rdprec_chunk(uint8_t *p, size_t *at, const char *type,
                         const uint8_t *data, size_t n)
{
    uLong crc;

    rdprec_put32(p + *at, (uint32_t)n);
    memcpy(p + *at + 4, type, 4);
    if (n > 0) {
        memmove(p + *at + 8, data, n);
    }
    crc = crc32(0, p + *at + 4, (uInt)(n + 4));
    rdprec_put32(p + *at + 8 + n, (uint32_t)crc);
    *at += 12 + n;
}

int rdprec_canvas_png(const struct rdprec_canvas *c, uint8_t **out, size_t *len)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13], *raw = NULL, *png = NULL;
    size_t rawlen, at = 0;
    uLongf zlen;
    int e = ERR_NOMEM;

    *out = NULL;
    *len = 0;
    if (c->rgb == NULL || c->w == 0 || c->h == 0) {
        return ERR_INVALID;
    }
    rawlen = (size_t)c->h * (1 + (size_t)c->w * 3);
    zlen = compressBound((uLong)rawlen);
    if ((raw = malloc(rawlen)) == NULL ||
        (png = malloc(8 + 25 + 12 + (size_t)zlen + 12)) == NULL) {
        goto out;
    }
    for (unsigned row = 0; row < c->h; row++) {
        uint8_t *d = raw + (size_t)row * (1 + (size_t)c->w * 3);

        d[0] = 0; /* filter: none */
        memcpy(d + 1, c->rgb + (size_t)row * c->w * 3, (size_t)c->w * 3);
    }
    memcpy(png, sig, 8);
    at = 8;
    rdprec_put32(ihdr, c->w);
    rdprec_put32(ihdr + 4, c->h);
    ihdr[8] = 8;  /* bits per sample */
    ihdr[9] = 2;  /* truecolour */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filters */
    ihdr[12] = 0; /* no interlace */
    rdprec_chunk(png, &at, "IHDR", ihdr, sizeof(ihdr));
    /* IDAT compressed straight into place, then framed */
    if (compress2(png + at + 8, &zlen, raw, (uLong)rawlen, 6) != Z_OK) {
        e = ERR_INTERNAL;
        goto out;
    }
    rdprec_chunk(png, &at, "IDAT", png + at + 8, (size_t)zlen);
    rdprec_chunk(png, &at, "IEND", NULL, 0);
    *out = png;
    *len = at;
    png = NULL;
    e = ERR_OK;
out:
    free(raw);
    free(png);
    return e;
}
