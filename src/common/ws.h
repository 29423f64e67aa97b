/*
 * A WebSocket (RFC 6455) frame decoder for the client side: what a
 * server sends. The agent reads its WebSocket's socket itself once the
 * SSH session is up (agent/conn.c) and decodes the server's frames with
 * this, in large reads, instead of libwebsockets 4.1's client parser,
 * which handles every payload byte one at a time (bench/README.md).
 *
 * Pure and bounded: bytes in any slices; data payloads are handed back as
 * slices of the caller's input (no copy), control frames (at most 125
 * bytes each, RFC 6455 §5.5) are gathered in the decoder. A server's
 * frames are never masked (§5.1: a client closes the connection on a
 * masked frame); reserved bits are errors (no extension is negotiated).
 * Unit-tested (test_ws) and fuzzed (fuzz_ws): the agent decodes what a
 * possibly hostile server sends.
 *
 * Ownership: struct ws_dec is caller-allocated; it points only to static
 * text.
 */
#ifndef PORTCULLIS_COMMON_WS_H
#define PORTCULLIS_COMMON_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_CTL_MAX 125
#define WS_CLOSE_PROTOCOL 1002 /* status: protocol error */
#define WS_CLOSE_BAD_DATA 1003 /* status: a data type we do not accept */
#define WS_CLOSE_TOO_BIG 1009  /* status: message too big */

enum ws_event {
    WS_EV_NONE = 0, /* every byte consumed; nothing to report yet */
    WS_EV_DATA,     /* payload bytes of a data frame: ev->data/len */
    WS_EV_PING,     /* a complete PING; its payload in ev->data/len */
    WS_EV_PONG,     /* a complete PONG */
    WS_EV_CLOSE,    /* a CLOSE; ev->code (0: none given), reason data/len */
    WS_EV_ERROR,    /* a protocol error: ev->code, ev->why; stays broken */
};

struct ws_ev {
    enum ws_event type;
    const uint8_t *data; /* into the input (DATA) or the decoder */
    size_t len;
    bool text;       /* DATA: the message is a text message */
    bool first;      /* DATA: the first bytes of a new frame */
    unsigned code;   /* CLOSE/ERROR: the status code */
    const char *why; /* ERROR: what was wrong (static text) */
};

struct ws_dec {
    uint8_t hdr[14];
    size_t hdr_have;
    uint64_t remain; /* payload bytes left in the current frame */
    bool in_payload; /* header done, payload (maybe 0 bytes) pending */
    uint8_t opcode;  /* of the current frame */
    bool fin;
    bool in_msg;   /* a fragmented data message is open */
    bool msg_text; /* and it is text */
    bool first;    /* no payload of the current frame reported yet */
    bool broken;
    unsigned err_code;
    const char *err; /* static text */
    size_t ctl_len;
    uint8_t ctl[WS_CTL_MAX];
};

void ws_dec_init(struct ws_dec *d);
/* Consumes bytes of p[len] until one event is ready or all are used; *used
 * says how many. Call again with the rest (p + *used) until WS_EV_NONE.
 * A DATA slice points into p and is valid as long as p is; a control
 * frame's payload lives in d until the next call. After WS_EV_ERROR every
 * call returns the same error and consumes nothing. */
void ws_dec_next(struct ws_dec *d, const uint8_t *p, size_t len, size_t *used,
                 struct ws_ev *ev);
/* True between frames (no header or payload bytes of a frame held). */
bool ws_dec_idle(const struct ws_dec *d);

#endif
