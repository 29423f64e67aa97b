/*
 * libFuzzer target for the RDP recording reader (src/record/rdprec.c):
 * a recording may have been written by a compromised RDP child, and the
 * CLI (`session frame`) reads it. Besides "no crash, no read past the
 * input, no leak" it checks what the reader promises: every record read
 * lies inside the input and moves forward; a canvas always has w * h * 3
 * bytes within the maxima; a RECT applied lies on the screen; and the
 * last screen converts to a PNG.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "record/rdprec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_rdprec: invariant failed: %s (line %d)\n",   \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rdprec_canvas c;
    struct rdprec_event ev;
    size_t off = 0, prev = 0;
    uint8_t *png = NULL;
    size_t pnglen = 0;
    int r;

    memset(&c, 0, sizeof(c));
    while ((r = rdprec_next(data, size, &off, &ev)) == ERR_OK) {
        FUZZ_CHECK(off > prev && off <= size);
        if (ev.data != NULL) {
            FUZZ_CHECK(ev.data >= data && ev.data + ev.len <= data + off);
        }
        prev = off;
        r = rdprec_canvas_apply(&c, &ev);
        if (r == ERR_OK && ev.type == RDPREC_RECT) {
            FUZZ_CHECK((size_t)ev.x + ev.w <= c.w);
            FUZZ_CHECK((size_t)ev.y + ev.h <= c.h);
        }
        if (c.rgb != NULL) {
            FUZZ_CHECK(c.w >= 1 && c.w <= RDPREC_DIM_MAX);
            FUZZ_CHECK(c.h >= 1 && c.h <= RDPREC_DIM_MAX);
            FUZZ_CHECK((size_t)c.w * c.h <= RDPREC_PIXELS_MAX);
        }
        if (r != ERR_OK) {
            break;
        }
    }
    FUZZ_CHECK(r == ERR_OK || r == ERR_NOT_FOUND || r == ERR_IO ||
               r == ERR_INVALID || r == ERR_NOMEM);
    if (c.rgb != NULL && (size_t)c.w * c.h <= 1024 * 1024) {
        r = rdprec_canvas_png(&c, &png, &pnglen);
        FUZZ_CHECK(r == ERR_OK && pnglen > 8 + 25 + 12 + 12);
        free(png);
    }
    rdprec_canvas_free(&c);
    return 0;
}
