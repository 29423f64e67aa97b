/*
 * WebSocket frames from a server: see ws.h.
 */
#include "common/ws.h"

#include <string.h>

enum {
    OP_CONT = 0x0,
    OP_TEXT = 0x1,
    OP_BINARY = 0x2,
    OP_CLOSE = 0x8,
    OP_PING = 0x9,
    OP_PONG = 0xa,
};

void ws_dec_init(struct ws_dec *d)
{
    memset(d, 0, sizeof(*d));
}

bool ws_dec_idle(const struct ws_dec *d)
{
    return !d->broken && d->hdr_have == 0 && !d->in_payload;
}

static void ws_fail(struct ws_dec *d, struct ws_ev *ev, unsigned code,
                    const char *why)
{
    d->broken = true;
    d->err_code = code;
    d->err = why;
    ev->type = WS_EV_ERROR;
    ev->code = code;
    ev->why = why;
}

/* Header bytes the current frame needs, from what is seen so far. */
static size_t ws_hdr_need(const struct ws_dec *d)
{
    if (d->hdr_have < 2) {
        return 2;
    }
    switch (d->hdr[1] & 0x7f) {
    case 126:
        return 4;
    case 127:
        return 10;
    default:
        return 2;
    }
}

/* The header is complete: check it and set up the payload. */
static bool ws_header(struct ws_dec *d, struct ws_ev *ev)
{
    uint8_t b0 = d->hdr[0];
    uint8_t op = b0 & 0x0f;
    uint64_t n = d->hdr[1] & 0x7f;

    if (n == 126) {
        n = (uint64_t)d->hdr[2] << 8 | d->hdr[3];
    } else if (n == 127) {
        n = 0;
        for (int i = 2; i < 10; i++) {
            n = n << 8 | d->hdr[i];
        }
        if (n >> 63) {
            ws_fail(d, ev, WS_CLOSE_PROTOCOL, "frame length above 2^63");
            return false;
        }
    }
    if (b0 & 0x70) {
        ws_fail(d, ev, WS_CLOSE_PROTOCOL, "reserved bits set");
        return false;
    }
    d->fin = (b0 & 0x80) != 0;
    switch (op) {
    case OP_CLOSE:
    case OP_PING:
    case OP_PONG:
        if (!d->fin) {
            ws_fail(d, ev, WS_CLOSE_PROTOCOL, "fragmented control frame");
            return false;
        }
        if (n > WS_CTL_MAX) {
            ws_fail(d, ev, WS_CLOSE_PROTOCOL, "control frame above 125 bytes");
            return false;
        }
        break;
    case OP_TEXT:
    case OP_BINARY:
        if (d->in_msg) {
            ws_fail(d, ev, WS_CLOSE_PROTOCOL,
                    "new message inside a fragmented one");
            return false;
        }
        d->msg_text = op == OP_TEXT;
        d->in_msg = !d->fin;
        break;
    case OP_CONT:
        if (!d->in_msg) {
            ws_fail(d, ev, WS_CLOSE_PROTOCOL, "continuation without a message");
            return false;
        }
        d->in_msg = !d->fin;
        break;
    default:
        ws_fail(d, ev, WS_CLOSE_PROTOCOL, "unknown opcode");
        return false;
    }
    d->opcode = op;
    d->remain = n;
    d->in_payload = true;
    d->first = true;
    d->ctl_len = 0;
    return true;
}

static void ws_frame_done(struct ws_dec *d)
{
    d->hdr_have = 0;
    d->in_payload = false;
    d->remain = 0;
}

void ws_dec_next(struct ws_dec *d, const uint8_t *p, size_t len, size_t *used,
                 struct ws_ev *ev)
{
    size_t i = 0, n;

    memset(ev, 0, sizeof(*ev));
    *used = 0;
    if (d->broken) {
        ev->type = WS_EV_ERROR;
        ev->code = d->err_code;
        ev->why = d->err;
        return;
    }
    if (!d->in_payload) {
        while (d->hdr_have < ws_hdr_need(d)) {
            if (i == len) {
                *used = i;
                return; /* WS_EV_NONE */
            }
            d->hdr[d->hdr_have++] = p[i++];
            if (d->hdr_have == 2 && (d->hdr[1] & 0x80)) {
                *used = i;
                ws_fail(d, ev, WS_CLOSE_PROTOCOL, "masked frame from a server");
                return;
            }
        }
        if (!ws_header(d, ev)) {
            *used = i;
            return;
        }
    }
    n = len - i;
    if ((uint64_t)n > d->remain) {
        n = (size_t)d->remain;
    }
    if (d->opcode & 0x8) {
        memcpy(d->ctl + d->ctl_len, p + i, n);
        d->ctl_len += n;
        d->remain -= n;
        i += n;
        *used = i;
        if (d->remain > 0) {
            return; /* WS_EV_NONE: every byte used */
        }
        ev->data = d->ctl;
        ev->len = d->ctl_len;
        if (d->opcode == OP_PING) {
            ev->type = WS_EV_PING;
        } else if (d->opcode == OP_PONG) {
            ev->type = WS_EV_PONG;
        } else {
            if (d->ctl_len == 1) {
                ws_frame_done(d);
                ws_fail(d, ev, WS_CLOSE_PROTOCOL, "close frame of one byte");
                return;
            }
            ev->type = WS_EV_CLOSE;
            if (d->ctl_len >= 2) {
                ev->code = (unsigned)d->ctl[0] << 8 | d->ctl[1];
                ev->data = d->ctl + 2;
                ev->len = d->ctl_len - 2;
            }
        }
        ws_frame_done(d);
        return;
    }
    if (n == 0 && d->remain > 0) {
        *used = i;
        return; /* WS_EV_NONE: input used up mid-frame */
    }
    ev->type = WS_EV_DATA;
    ev->data = p + i;
    ev->len = n;
    ev->text = d->msg_text;
    ev->first = d->first;
    d->first = false;
    d->remain -= n;
    i += n;
    if (d->remain == 0) {
        ws_frame_done(d);
    }
    *used = i;
}
