/*
 * libFuzzer target for the UDP framing codec (common/frame.c) that both
 * the agent (bytes from the server) and the server's hub (bytes from an
 * agent) decode a UDP stream channel with: untrusted either way.
 *
 * The first input byte picks the slice size (1-256), the rest is the
 * channel's byte stream, fed slice by slice. Checked against a plain
 * reference decoder over the whole input: the same datagrams, in order,
 * with the same bytes; FRAME_TOO_LONG exactly where a length exceeds
 * 65,507; no datagram larger than that; `used` never past the slice.
 * Then the hub's way (frame_dec_want): feeding exactly what the decoder
 * wants consumes every byte and yields the same datagrams; the decoder
 * is idle exactly between frames; encoding each datagram again with
 * frame_put_header gives back the input's bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_agent_frame: invariant failed: %s (%d)\n",   \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

static struct frame_dec dec;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t step, off = 0, ref = 0, used, dl, slice;
    const uint8_t *p, *dg;
    enum frame_result r;
    uint8_t *copy;
    bool broken = false;

    if (size < 1) {
        return 0;
    }
    step = (size_t)data[0] + 1;
    size--;
    copy = malloc(size ? size : 1); /* exact size: ASan sees overreads */
    memcpy(copy, data + 1, size);
    p = copy;
    frame_dec_init(&dec);
    while (off < size) {
        slice = size - off < step ? size - off : step;
        r = frame_dec_feed(&dec, p + off, slice, &used, &dg, &dl);
        FUZZ_CHECK(used <= slice);
        off += used;
        if (r == FRAME_TOO_LONG) {
            /* The reference: the next header says more than the max. */
            FUZZ_CHECK(ref + 2 <= size);
            FUZZ_CHECK(((size_t)p[ref] << 8 | p[ref + 1]) > FRAME_MAX_PAYLOAD);
            broken = true;
            FUZZ_CHECK(frame_dec_feed(&dec, p, size, &used, &dg, &dl) ==
                       FRAME_TOO_LONG);
            break;
        }
        if (r == FRAME_DGRAM) {
            size_t want;
            FUZZ_CHECK(ref + 2 <= size);
            want = (size_t)p[ref] << 8 | p[ref + 1];
            FUZZ_CHECK(want <= FRAME_MAX_PAYLOAD);
            FUZZ_CHECK(dl == want);
            FUZZ_CHECK(ref + 2 + want <= size);
            FUZZ_CHECK(dl == 0 || memcmp(dg, p + ref + 2, dl) == 0);
            ref += 2 + want;
            FUZZ_CHECK(ref == off);
        } else {
            FUZZ_CHECK(r == FRAME_MORE && used == slice);
        }
    }
    if (!broken) {
        /* Whatever is left after the last datagram is an incomplete one. */
        if (ref + 2 <= size) {
            FUZZ_CHECK(((size_t)p[ref] << 8 | p[ref + 1]) + ref + 2 > size ||
                       ((size_t)p[ref] << 8 | p[ref + 1]) > FRAME_MAX_PAYLOAD);
        }
    }
    /* The hub's reader: only what the decoder wants, never a leftover. */
    frame_dec_init(&dec);
    FUZZ_CHECK(frame_dec_idle(&dec));
    off = 0;
    ref = 0;
    while (off < size) {
        size_t want = frame_dec_want(&dec);

        FUZZ_CHECK(want >= 1 && want <= FRAME_MAX_PAYLOAD);
        slice = size - off < want ? size - off : want;
        r = frame_dec_feed(&dec, p + off, slice, &used, &dg, &dl);
        if (r == FRAME_TOO_LONG) {
            FUZZ_CHECK(broken && frame_dec_want(&dec) == 0);
            FUZZ_CHECK(!frame_dec_idle(&dec));
            break;
        }
        FUZZ_CHECK(used == slice);
        off += used;
        if (r == FRAME_DGRAM) {
            uint8_t hdr[FRAME_HDR];

            FUZZ_CHECK(frame_dec_idle(&dec));
            FUZZ_CHECK(frame_put_header(dl, hdr) == 0);
            FUZZ_CHECK(memcmp(hdr, p + ref, FRAME_HDR) == 0);
            FUZZ_CHECK(dl == 0 || memcmp(dg, p + ref + FRAME_HDR, dl) == 0);
            ref += FRAME_HDR + dl;
            FUZZ_CHECK(ref == off);
        } else {
            FUZZ_CHECK(r == FRAME_MORE);
            FUZZ_CHECK(!frame_dec_idle(&dec) || off == ref);
        }
    }
    free(copy);
    return 0;
}
