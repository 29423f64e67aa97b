/*
 * Unit tests for common/frame.c: the UDP framing of docs/agent-protocol.md
 * §3 (2-byte big-endian length, at most 65,507 bytes), fed in any slices;
 * the one codec both the agent and the server's hub use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/frame.h"

/* Feeds all of p[len] in slices of step bytes; collects datagram sizes. */
static int feed_all(struct frame_dec *d, const uint8_t *p, size_t len,
                    size_t step, size_t *sizes, size_t maxn, size_t *n)
{
    size_t off = 0, used, dl, slice;
    const uint8_t *dg;
    enum frame_result r;

    *n = 0;
    while (off < len) {
        slice = len - off < step ? len - off : step;
        r = frame_dec_feed(d, p + off, slice, &used, &dg, &dl);
        assert_true(used <= slice);
        off += used;
        if (r == FRAME_TOO_LONG) {
            return -1;
        }
        if (r == FRAME_DGRAM) {
            assert_true(*n < maxn);
            sizes[(*n)++] = dl;
            assert_ptr_equal(dg, d->buf);
        } else {
            assert_int_equal(used, slice); /* MORE consumes everything */
        }
    }
    return 0;
}

static void test_header(void **state)
{
    uint8_t h[2];

    assert_int_equal(frame_put_header(0, h), 0);
    assert_int_equal(h[0], 0);
    assert_int_equal(h[1], 0);
    assert_int_equal(frame_put_header(0x1234, h), 0);
    assert_int_equal(h[0], 0x12);
    assert_int_equal(h[1], 0x34);
    assert_int_equal(frame_put_header(FRAME_MAX_PAYLOAD, h), 0);
    assert_int_equal(frame_put_header(FRAME_MAX_PAYLOAD + 1, h), -1);
}

static void test_sequence_any_slicing(void **state)
{
    static const size_t lens[] = {0, 1, 300, 0, FRAME_MAX_PAYLOAD, 7};
    size_t nl = sizeof(lens) / sizeof(lens[0]), total = 0, off = 0, n;
    size_t sizes[16];
    static const size_t steps[] = {1, 2, 3, 1000, 70000};
    struct frame_dec *d = malloc(sizeof(*d));
    uint8_t *stream;

    for (size_t i = 0; i < nl; i++) {
        total += 2 + lens[i];
    }
    stream = malloc(total);
    for (size_t i = 0; i < nl; i++) {
        frame_put_header(lens[i], stream + off);
        memset(stream + off + 2, (int)(0x41 + i), lens[i]);
        off += 2 + lens[i];
    }
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        frame_dec_init(d);
        assert_int_equal(feed_all(d, stream, total, steps[s], sizes, 16, &n),
                         0);
        assert_int_equal(n, nl);
        for (size_t i = 0; i < nl; i++) {
            assert_int_equal(sizes[i], lens[i]);
        }
    }
    free(stream);
    free(d);
}

static void test_payload_content(void **state)
{
    struct frame_dec *d = malloc(sizeof(*d));
    const uint8_t in[] = {0, 3, 'a', 'b', 'c', 0, 2, 'x', 'y'};
    const uint8_t *dg;
    size_t used, dl;

    frame_dec_init(d);
    assert_int_equal(frame_dec_feed(d, in, sizeof(in), &used, &dg, &dl),
                     FRAME_DGRAM);
    assert_int_equal(used, 5);
    assert_int_equal(dl, 3);
    assert_memory_equal(dg, "abc", 3);
    assert_int_equal(frame_dec_feed(d, in + 5, 4, &used, &dg, &dl),
                     FRAME_DGRAM);
    assert_int_equal(dl, 2);
    assert_memory_equal(dg, "xy", 2);
    /* Nothing more: a partial header waits. */
    assert_int_equal(frame_dec_feed(d, in, 1, &used, &dg, &dl), FRAME_MORE);
    assert_null(dg);
    free(d);
}

static void test_too_long_is_sticky(void **state)
{
    struct frame_dec *d = malloc(sizeof(*d));
    const uint8_t big[] = {0xff, 0xe4}; /* 65,508 */
    const uint8_t ok[] = {0, 1, 'z'};
    const uint8_t *dg;
    size_t used, dl;

    frame_dec_init(d);
    assert_int_equal(frame_dec_feed(d, big, 1, &used, &dg, &dl), FRAME_MORE);
    assert_int_equal(frame_dec_feed(d, big + 1, 1, &used, &dg, &dl),
                     FRAME_TOO_LONG);
    assert_int_equal(frame_dec_feed(d, ok, sizeof(ok), &used, &dg, &dl),
                     FRAME_TOO_LONG);
    assert_null(dg);
    free(d);
}

/* The hub's way of reading: only what the decoder wants, so every byte
 * fed is consumed and nothing is held over between frames. */
static void test_want_and_idle(void **state)
{
    struct frame_dec *d = malloc(sizeof(*d));
    const uint8_t in[] = {0x00, 0x03, 'a', 'b', 'c', 0x00, 0x00, 0xff, 0xff};
    const uint8_t *dg;
    size_t used, dl;

    (void)state;
    assert_non_null(d);
    frame_dec_init(d);
    assert_true(frame_dec_idle(d));
    assert_int_equal(frame_dec_want(d), 2);
    assert_int_equal(frame_dec_feed(d, in, 1, &used, &dg, &dl), FRAME_MORE);
    assert_false(frame_dec_idle(d));
    assert_int_equal(frame_dec_want(d), 1);
    assert_int_equal(frame_dec_feed(d, in + 1, 1, &used, &dg, &dl), FRAME_MORE);
    assert_int_equal(frame_dec_want(d), 3);
    assert_int_equal(frame_dec_feed(d, in + 2, 2, &used, &dg, &dl), FRAME_MORE);
    assert_int_equal(frame_dec_want(d), 1);
    assert_int_equal(frame_dec_feed(d, in + 4, 1, &used, &dg, &dl),
                     FRAME_DGRAM);
    assert_int_equal(used, 1);
    assert_int_equal(dl, 3);
    assert_memory_equal(dg, "abc", 3);
    assert_true(frame_dec_idle(d));
    /* an empty datagram: complete with its header */
    assert_int_equal(frame_dec_want(d), 2);
    assert_int_equal(frame_dec_feed(d, in + 5, 2, &used, &dg, &dl),
                     FRAME_DGRAM);
    assert_int_equal(dl, 0);
    assert_true(frame_dec_idle(d));
    /* too long: broken, wants nothing, never idle again */
    assert_int_equal(frame_dec_feed(d, in + 7, 2, &used, &dg, &dl),
                     FRAME_TOO_LONG);
    assert_int_equal(frame_dec_want(d), 0);
    assert_false(frame_dec_idle(d));
    free(d);
}

static void test_empty_feed(void **state)
{
    struct frame_dec *d = malloc(sizeof(*d));
    const uint8_t *dg;
    size_t used = 99, dl = 99;

    frame_dec_init(d);
    assert_int_equal(frame_dec_feed(d, NULL, 0, &used, &dg, &dl), FRAME_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(dl, 0);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_sequence_any_slicing),
        cmocka_unit_test(test_payload_content),
        cmocka_unit_test(test_too_long_is_sticky),
        cmocka_unit_test(test_want_and_idle),
        cmocka_unit_test(test_empty_feed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
