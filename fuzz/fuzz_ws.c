/*
 * libFuzzer target for the decoder of a server's WebSocket frames
 * (common/ws.c): the agent decodes with it whatever the server (or
 * anything posing as it) sends after the switch to its own reads.
 *
 * The first input byte picks the slice size (1-256), the rest is the
 * byte stream, fed slice by slice. Checked: `used` never past the slice;
 * every event but NONE and ERROR is reported with bytes consumed or a
 * frame completed; DATA slices lie inside the input; control payloads at
 * most 125 bytes; the same events and DATA bytes as when the whole
 * stream is fed at once; after ERROR nothing more is consumed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_ws: invariant failed: %s (%d)\n", #cond,     \
                    __LINE__);                                                 \
            abort();                                                           \
        }                                                                      \
    } while (0)

struct run {
    uint8_t *bytes; /* DATA bytes, in order */
    size_t nbytes;
    size_t ctl; /* PING + PONG + CLOSE events */
    bool error;
    unsigned err_code;
};

static void run_sliced(const uint8_t *p, size_t len, size_t step, struct run *r)
{
    struct ws_dec d;
    size_t off = 0;

    ws_dec_init(&d);
    while (off < len && !r->error) {
        size_t n = len - off < step ? len - off : step;
        const uint8_t *q = p + off;

        off += n;
        while (!r->error) {
            struct ws_ev ev;
            size_t used;

            ws_dec_next(&d, q, n, &used, &ev);
            FUZZ_CHECK(used <= n);
            if (ev.type == WS_EV_DATA) {
                FUZZ_CHECK(ev.data >= q && ev.data + ev.len <= q + used);
                memcpy(r->bytes + r->nbytes, ev.data, ev.len);
                r->nbytes += ev.len;
            } else if (ev.type == WS_EV_PING || ev.type == WS_EV_PONG ||
                       ev.type == WS_EV_CLOSE) {
                FUZZ_CHECK(ev.len <= WS_CTL_MAX);
                r->ctl++;
            } else if (ev.type == WS_EV_ERROR) {
                FUZZ_CHECK(ev.why != NULL);
                r->error = true;
                r->err_code = ev.code;
                ws_dec_next(&d, q + used, n - used, &used, &ev);
                FUZZ_CHECK(ev.type == WS_EV_ERROR && used == 0);
                break;
            } else {
                FUZZ_CHECK(used == n);
            }
            q += used;
            n -= used;
            if (n == 0) {
                break;
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run a, b;

    if (size < 1) {
        return 0;
    }
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.bytes = malloc(size);
    b.bytes = malloc(size);
    if (a.bytes == NULL || b.bytes == NULL) {
        abort();
    }
    run_sliced(data + 1, size - 1, (size_t)data[0] + 1, &a);
    run_sliced(data + 1, size - 1, size, &b);
    FUZZ_CHECK(a.error == b.error && a.err_code == b.err_code);
    FUZZ_CHECK(a.ctl == b.ctl && a.nbytes == b.nbytes);
    FUZZ_CHECK(memcmp(a.bytes, b.bytes, a.nbytes) == 0);
    free(a.bytes);
    free(b.bytes);
    return 0;
}
