/*
 * UDP datagram framing on an agent's stream channel
 * (docs/agent-protocol.md §3): each datagram is a 2-byte big-endian
 * length and that many bytes, at most FRAME_MAX_PAYLOAD. Frames may be
 * split across or combined within SSH data messages, so the decoder takes
 * bytes in any slices and says when a whole datagram is ready. Pure and
 * bounded (one datagram of state); unit-tested and fuzzed
 * (fuzz_agent_frame), since both ends decode a peer's bytes with it: the
 * agent what a hostile server sends (agent/stream.c), the server what a
 * hostile agent sends (src/hub/hub_stream.c). One codec for both sides.
 *
 * Ownership: struct frame_dec is caller-allocated (about 64 KiB: allocate
 * it on the heap) and holds no pointers.
 */
#ifndef PORTCULLIS_COMMON_FRAME_H
#define PORTCULLIS_COMMON_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX_PAYLOAD 65507 /* the largest UDP payload over IPv4 */
#define FRAME_HDR 2

enum frame_result {
    FRAME_MORE = 0, /* every byte consumed; no datagram complete yet */
    FRAME_DGRAM,    /* a datagram is complete (maybe bytes left over) */
    FRAME_TOO_LONG, /* a length above FRAME_MAX_PAYLOAD: protocol error */
};

struct frame_dec {
    uint8_t hdr[FRAME_HDR];
    size_t hdr_have; /* header bytes seen of the current frame */
    size_t need;     /* payload length, once the header is complete */
    size_t have;     /* payload bytes seen */
    int done;        /* the last call returned FRAME_DGRAM */
    int broken;      /* FRAME_TOO_LONG was returned; stays broken */
    uint8_t buf[FRAME_MAX_PAYLOAD];
};

void frame_dec_init(struct frame_dec *d);
/* Consumes bytes of p[len] into the decoder and sets *used to how many.
 * On FRAME_DGRAM, *dgram and *dlen name the datagram (inside d, valid
 * until the next call); feed the remaining bytes in the next call. After
 * FRAME_TOO_LONG every call fails the same way. */
enum frame_result frame_dec_feed(struct frame_dec *d, const uint8_t *p,
                                 size_t len, size_t *used,
                                 const uint8_t **dgram, size_t *dlen);
/* How many more bytes complete the current frame's header or payload
 * (after a datagram: the next header's 2). Feeding at most this many
 * bytes consumes them all, so a reader can take from its source only
 * what the decoder needs and hold nothing over. 0 once broken. */
size_t frame_dec_want(const struct frame_dec *d);
/* True between frames: no header or payload bytes of a frame held (after
 * init, or after a datagram), so a caller may free the decoder. */
int frame_dec_idle(const struct frame_dec *d);
/* Writes the header for a datagram of len bytes; -1 if len is too big. */
int frame_put_header(size_t len, uint8_t out[FRAME_HDR]);

#endif
