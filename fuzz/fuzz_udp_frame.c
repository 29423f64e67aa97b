/*
 * libFuzzer target for the decoder of a UDP flow's frames between the
 * nodes of a cluster (src/hub/udp_frame.c udp_frame_next): the bytes a
 * hostile node could send. Walking the input frame by frame, each frame
 * lies inside the input, has a payload of 1..UDP_FRAME_MAX bytes, and its
 * header encodes back to the input's; the walk ends at a bad frame or an
 * incomplete one, which more bytes only ever complete.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/udp_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr,                                                    \
                    "fuzz_udp_frame: invariant failed: %s (line %d)\n", #cond, \
                    __LINE__);                                                 \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    while (off < size) {
        const uint8_t *p = NULL;
        size_t plen = 0;
        uint8_t hdr[UDP_FRAME_HDR];
        long n = udp_frame_next(data + off, size - off, &p, &plen);

        if (n <= 0) {
            if (n == 0 && size - off >= UDP_FRAME_HDR) {
                /* incomplete: the header promises more than is here */
                size_t want = ((size_t)data[off] << 8) | data[off + 1];

                FUZZ_CHECK(want >= 1 && want <= UDP_FRAME_MAX);
                FUZZ_CHECK(size - off < UDP_FRAME_HDR + want);
            }
            break;
        }
        FUZZ_CHECK(plen >= 1 && plen <= UDP_FRAME_MAX);
        FUZZ_CHECK((size_t)n == UDP_FRAME_HDR + plen);
        FUZZ_CHECK(off + (size_t)n <= size);
        FUZZ_CHECK(p == data + off + UDP_FRAME_HDR);
        udp_frame_header(hdr, plen);
        FUZZ_CHECK(memcmp(hdr, data + off, UDP_FRAME_HDR) == 0);
        off += (size_t)n;
    }
    return 0;
}
