/* UDP datagram framing; see frame.h. */
#include "common/frame.h"

#include <string.h>

void frame_dec_init(struct frame_dec *d)
{
    d->hdr_have = 0;
    d->need = 0;
    d->have = 0;
    d->done = 0;
    d->broken = 0;
}

enum frame_result frame_dec_feed(struct frame_dec *d, const uint8_t *p,
                                 size_t len, size_t *used,
                                 const uint8_t **dgram, size_t *dlen)
{
    size_t off = 0, n;

    *used = 0;
    *dgram = NULL;
    *dlen = 0;
    if (d->broken) {
        return FRAME_TOO_LONG;
    }
    if (d->done) {
        d->hdr_have = 0;
        d->need = 0;
        d->have = 0;
        d->done = 0;
    }
    while (d->hdr_have < FRAME_HDR && off < len) {
        d->hdr[d->hdr_have++] = p[off++];
        if (d->hdr_have == FRAME_HDR) {
            d->need = ((size_t)d->hdr[0] << 8) | d->hdr[1];
            if (d->need > FRAME_MAX_PAYLOAD) {
                d->broken = 1;
                *used = off;
                return FRAME_TOO_LONG;
            }
        }
    }
    if (d->hdr_have < FRAME_HDR) {
        *used = off;
        return FRAME_MORE;
    }
    n = d->need - d->have;
    if (n > len - off) {
        n = len - off;
    }
    if (n > 0) {
        memcpy(d->buf + d->have, p + off, n);
    }
    d->have += n;
    off += n;
    *used = off;
    if (d->have < d->need) {
        return FRAME_MORE;
    }
    d->done = 1;
    *dgram = d->buf;
    *dlen = d->need;
    return FRAME_DGRAM;
}

int frame_put_header(size_t len, uint8_t out[FRAME_HDR])
{
    if (len > FRAME_MAX_PAYLOAD) {
        return -1;
    }
    out[0] = (uint8_t)(len >> 8);
    out[1] = (uint8_t)len;
    return 0;
}

size_t frame_dec_want(const struct frame_dec *d)
{
    if (d->broken) {
        return 0;
    }
    if (d->done) {
        return FRAME_HDR;
    }
    if (d->hdr_have < FRAME_HDR) {
        return FRAME_HDR - d->hdr_have;
    }
    return d->need - d->have;
}

int frame_dec_idle(const struct frame_dec *d)
{
    return !d->broken && (d->done || d->hdr_have == 0);
}
