/*
 * Bounds-checked buffer; see buf.h. All pointer arithmetic on untrusted
 * bytes in Portcullis happens here.
 */
#include "common/buf.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"

struct buf *buf_new(size_t max)
{
    struct buf *b = calloc(1, sizeof(*b));

    if (b == NULL) {
        return NULL;
    }
    b->max = max ? max : BUF_DEFAULT_MAX;
    return b;
}

void buf_free(struct buf *b)
{
    if (b == NULL) {
        return;
    }
    if (b->data != NULL) {
        sodium_memzero(b->data, b->cap);
        free(b->data);
    }
    free(b);
}

void buf_reset(struct buf *b)
{
    if (b->data != NULL) {
        sodium_memzero(b->data, b->len);
    }
    b->off = 0;
    b->len = 0;
}

size_t buf_avail(const struct buf *b)
{
    return b->len - b->off;
}

const uint8_t *buf_ptr(const struct buf *b)
{
    return b->data == NULL ? (const uint8_t *)"" : b->data + b->off;
}

int buf_reserve(struct buf *b, size_t n, uint8_t **out)
{
    size_t need, ncap;
    uint8_t *nd;

    *out = NULL;
    /* The ceiling is on live bytes: consumed ones are compacted away. */
    if (n > b->max || buf_avail(b) > b->max - n) {
        return ERR_TOO_LONG;
    }
    need = b->len + n;
    if (need > b->cap) {
        /* Compact first: consumed bytes at the front are dead. */
        if (b->off > 0) {
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
            need = b->len + n;
        }
    }
    if (need > b->cap) {
        ncap = b->cap ? b->cap : 256;
        while (ncap < need) {
            ncap *= 2;
        }
        if (ncap > b->max) {
            ncap = b->max;
        }
        nd = malloc(ncap);
        if (nd == NULL) {
            return ERR_NOMEM;
        }
        if (b->data != NULL) {
            memcpy(nd, b->data, b->len);
            sodium_memzero(b->data, b->cap);
            free(b->data);
        }
        b->data = nd;
        b->cap = ncap;
    }
    *out = b->data + b->len;
    b->len += n;
    return ERR_OK;
}

int buf_consume(struct buf *b, size_t n)
{
    if (n > buf_avail(b)) {
        return ERR_PROTO;
    }
    b->off += n;
    if (b->off == b->len) {
        b->off = 0;
        b->len = 0;
    }
    return ERR_OK;
}

int buf_put(struct buf *b, const void *p, size_t n)
{
    uint8_t *d = NULL;
    int r;

    if (n == 0) {
        return ERR_OK;
    }
    if ((r = buf_reserve(b, n, &d)) != ERR_OK) {
        return r;
    }
    memcpy(d, p, n);
    return ERR_OK;
}

int buf_put_u8(struct buf *b, uint8_t v)
{
    return buf_put(b, &v, 1);
}

int buf_put_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                    (uint8_t)v};

    return buf_put(b, x, sizeof(x));
}

int buf_put_u64(struct buf *b, uint64_t v)
{
    uint8_t x[8];
    int i;

    /* One put, so a failure cannot leave the high half behind. */
    for (i = 0; i < 8; i++) {
        x[i] = (uint8_t)(v >> (56 - 8 * i));
    }
    return buf_put(b, x, sizeof(x));
}

int buf_put_string(struct buf *b, const void *p, size_t n)
{
    uint8_t *d = NULL;
    int r;

    if (n > UINT32_MAX || n > SIZE_MAX - 4) {
        return ERR_TOO_LONG;
    }
    /* Reserve length and body together: a body that does not fit must
     * not leave its length behind. */
    if ((r = buf_reserve(b, 4 + n, &d)) != ERR_OK) {
        return r;
    }
    d[0] = (uint8_t)(n >> 24);
    d[1] = (uint8_t)(n >> 16);
    d[2] = (uint8_t)(n >> 8);
    d[3] = (uint8_t)n;
    if (n > 0) {
        memcpy(d + 4, p, n);
    }
    return ERR_OK;
}

int buf_put_cstring(struct buf *b, const char *s)
{
    return buf_put_string(b, s ? s : "", s ? strlen(s) : 0);
}

int buf_get(struct buf *b, void *p, size_t n)
{
    if (n > buf_avail(b)) {
        memset(p, 0, n);
        return ERR_PROTO;
    }
    memcpy(p, b->data + b->off, n);
    return buf_consume(b, n);
}

int buf_get_u8(struct buf *b, uint8_t *v)
{
    return buf_get(b, v, 1);
}

int buf_get_u32(struct buf *b, uint32_t *v)
{
    uint8_t x[4];
    int r;

    *v = 0;
    if ((r = buf_get(b, x, sizeof(x))) != ERR_OK) {
        return r;
    }
    *v = (uint32_t)x[0] << 24 | (uint32_t)x[1] << 16 | (uint32_t)x[2] << 8 |
         (uint32_t)x[3];
    return ERR_OK;
}

int buf_get_u64(struct buf *b, uint64_t *v)
{
    uint32_t hi = 0, lo = 0;
    int r;

    *v = 0;
    if (buf_avail(b) < 8) {
        return ERR_PROTO;
    }
    if ((r = buf_get_u32(b, &hi)) != ERR_OK ||
        (r = buf_get_u32(b, &lo)) != ERR_OK) {
        return r;
    }
    *v = (uint64_t)hi << 32 | lo;
    return ERR_OK;
}

int buf_get_string_ptr(struct buf *b, size_t max, const uint8_t **p,
                       size_t *lenp)
{
    uint32_t n;
    const uint8_t *d;

    *p = NULL;
    if (lenp != NULL) {
        *lenp = 0;
    }
    if (buf_avail(b) < 4) {
        return ERR_PROTO;
    }
    d = b->data + b->off;
    n = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 |
        (uint32_t)d[3];
    if (n > max) {
        return ERR_TOO_LONG;
    }
    if (n > buf_avail(b) - 4) {
        return ERR_PROTO;
    }
    /* Do not consume before both checks pass: the buffer stays intact. */
    *p = d + 4;
    if (lenp != NULL) {
        *lenp = n;
    }
    b->off += 4 + (size_t)n;
    return ERR_OK;
}

int buf_get_cstring(struct buf *b, size_t max, char **out)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    size_t save = b->off;
    char *s;
    int r;

    *out = NULL;
    if ((r = buf_get_string_ptr(b, max, &p, &n)) != ERR_OK) {
        return r;
    }
    if (n > 0 && memchr(p, '\0', n) != NULL) {
        b->off = save;
        return ERR_INVALID;
    }
    if ((s = malloc(n + 1)) == NULL) {
        b->off = save;
        return ERR_NOMEM;
    }
    memcpy(s, p, n);
    s[n] = '\0';
    *out = s;
    return ERR_OK;
}

int buf_get_cstring_into(struct buf *b, char *dst, size_t dstsize)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    size_t save = b->off;
    int r;

    if (dstsize == 0) {
        return ERR_INTERNAL;
    }
    dst[0] = '\0';
    if ((r = buf_get_string_ptr(b, dstsize - 1, &p, &n)) != ERR_OK) {
        return r;
    }
    if (n > 0 && memchr(p, '\0', n) != NULL) {
        b->off = save;
        return ERR_INVALID;
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
    return ERR_OK;
}

int buf_expect_end(const struct buf *b)
{
    return buf_avail(b) == 0 ? ERR_OK : ERR_PROTO;
}
