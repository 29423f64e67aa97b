/*
 * The set-up the RDP proxy's channel-filter fuzz targets share
 * (fuzz_rdp_cliprdr.c, fuzz_rdp_rdpdr.c): the input is a session, byte 0
 * the filter's switches, then messages of u8 direction (bit 0), u16
 * length (little-endian) and bytes. Each message is copied to the heap
 * at exactly its length (so ASan sees any read past it) and run through
 * the filter; the promises every filter makes (rdp_filter.h) are checked
 * here: only ERR_OK or ERR_PROTO, nothing forwarded longer than what
 * came, nothing forwarded on a refusal or a parse error, and no state
 * changed by a parse error. The target's own checks follow in its
 * check callback.
 */
#ifndef PORTCULLIS_FUZZ_RDP_FILTER_H
#define PORTCULLIS_FUZZ_RDP_FILTER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "rdpproxy/rdp_filter.h"

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s: invariant failed: %s (line %d)\n", __FILE__,  \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/*
 * The next message of a session input from *off: u8 head (the caller's:
 * bit 0 the direction, the rest its own), u16 length (little-endian,
 * cut to what is left), bytes. Returns a heap copy of exactly those
 * bytes (so ASan sees any read past them) and, in *out, a buffer of the
 * same size for what a filter forwards; both for the caller to free.
 * NULL at the end of the input.
 */
static inline uint8_t *fuzz_rdp_next(const uint8_t *data, size_t size,
                                     size_t *off, uint8_t *head, size_t *len,
                                     uint8_t **out)
{
    uint8_t *msg;

    if (size - *off < 3) {
        return NULL;
    }
    *head = data[*off];
    *len = (size_t)data[*off + 1] | ((size_t)data[*off + 2] << 8);
    *off += 3;
    if (*len > size - *off) {
        *len = size - *off;
    }
    msg = malloc(*len ? *len : 1);
    *out = malloc(*len ? *len : 1);
    FUZZ_CHECK(msg != NULL && *out != NULL);
    memcpy(msg, data + *off, *len);
    *off += *len;
    return msg;
}

/* One filter under test: its state (size bytes, set up by init from the
 * switches byte), how to run it, and its own checks of one message. */
struct fuzz_rdp_filter {
    void *state;
    size_t size;
    void (*init)(void *state, uint8_t switches);
    int (*run)(void *state, int dir, const uint8_t *in, size_t len,
               uint8_t *out, size_t *outlen, struct rdp_filter_result *r);
    /* after the shared checks: e the result, before the state before the
     * call, out[0..n) what it forwards */
    void (*check)(const struct fuzz_rdp_filter *f, const void *before, int dir,
                  const uint8_t *msg, size_t len, int e, const uint8_t *out,
                  size_t n, const struct rdp_filter_result *r);
};

static inline void fuzz_rdp_filter_session(const struct fuzz_rdp_filter *f,
                                           const uint8_t *data, size_t size)
{
    size_t off = 1, len, n;
    uint8_t *msg, *out;
    void *before;
    struct rdp_filter_result r;
    uint8_t head;
    int dir, e;

    if (size < 1) {
        return;
    }
    before = malloc(f->size);
    FUZZ_CHECK(before != NULL);
    f->init(f->state, data[0]);
    while ((msg = fuzz_rdp_next(data, size, &off, &head, &len, &out)) != NULL) {
        dir = head & 1;
        memcpy(before, f->state, f->size);
        n = 12345;
        e = f->run(f->state, dir, msg, len, out, &n, &r);
        FUZZ_CHECK(e == ERR_OK || e == ERR_PROTO);
        FUZZ_CHECK(n <= len);
        if (e != ERR_OK) {
            FUZZ_CHECK(n == 0 && memcmp(f->state, before, f->size) == 0);
        }
        if (r.refused != NULL) {
            FUZZ_CHECK(n == 0);
        }
        if (f->check != NULL) {
            f->check(f, before, dir, msg, len, e, out, n, &r);
        }
        free(msg);
        free(out);
    }
    free(before);
}

#endif
