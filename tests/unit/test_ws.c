/*
 * common/ws.c: the decoder of a server's WebSocket frames (the agent's
 * own reads of its WebSocket, agent/conn.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/ws.h"

/* Writes an unmasked frame header for n payload bytes; returns its size. */
static size_t hdr(uint8_t *out, uint8_t b0, uint64_t n)
{
    size_t h = 0;

    out[h++] = b0;
    if (n < 126) {
        out[h++] = (uint8_t)n;
    } else if (n <= 0xffff) {
        out[h++] = 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = 127;
        for (int s = 56; s >= 0; s -= 8) {
            out[h++] = (uint8_t)(n >> s);
        }
    }
    return h;
}

/* Feeds p[len] in slices of at most step bytes; gathers DATA payload into
 * out (returns its length) and counts other events. */
struct tally {
    size_t data_events, pings, pongs, closes, errors;
    unsigned close_code, err_code;
    bool text;
    uint8_t ping[WS_CTL_MAX];
    size_t ping_len;
};

static size_t feed(struct ws_dec *d, const uint8_t *p, size_t len, size_t step,
                   uint8_t *out, struct tally *t)
{
    size_t got = 0, off = 0;

    memset(t, 0, sizeof(*t));
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        const uint8_t *q = p + off;

        off += n;
        while (1) {
            struct ws_ev ev;
            size_t used;

            ws_dec_next(d, q, n, &used, &ev);
            assert_true(used <= n);
            q += used;
            n -= used;
            if (ev.type == WS_EV_NONE) {
                assert_int_equal(n, 0);
                break;
            }
            if (ev.type == WS_EV_DATA) {
                t->data_events++;
                t->text |= ev.text;
                memcpy(out + got, ev.data, ev.len);
                got += ev.len;
            } else if (ev.type == WS_EV_PING) {
                t->pings++;
                memcpy(t->ping, ev.data, ev.len);
                t->ping_len = ev.len;
            } else if (ev.type == WS_EV_PONG) {
                t->pongs++;
            } else if (ev.type == WS_EV_CLOSE) {
                t->closes++;
                t->close_code = ev.code;
            } else {
                t->errors++;
                t->err_code = ev.code;
                assert_non_null(ev.why);
                return got;
            }
            if (n == 0) {
                break;
            }
        }
    }
    return got;
}

static void test_binary_frames_any_slicing(void **state)
{
    static const uint64_t sizes[] = {0, 1, 125, 126, 65535, 65536, 200000};

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = (size_t)sizes[k];
        uint8_t *frame = malloc(n + 14);
        uint8_t *out = malloc(n + 1);
        size_t h = hdr(frame, 0x82, n);

        for (size_t i = 0; i < n; i++) {
            frame[h + i] = (uint8_t)(i * 7 + 3);
        }
        for (size_t step = 1; step <= 65536 * 4; step *= 16) {
            struct ws_dec d;
            struct tally t;

            if (n > 70000 && step < 256) {
                continue; /* the slow cases add nothing for big frames */
            }
            ws_dec_init(&d);
            assert_int_equal(feed(&d, frame, h + n, step, out, &t), n);
            assert_memory_equal(out, frame + h, n);
            assert_int_equal(t.errors, 0);
            assert_false(t.text);
            assert_true(ws_dec_idle(&d));
        }
        free(frame);
        free(out);
    }
}

static void test_several_frames_in_one_read(void **state)
{
    uint8_t buf[64], out[64];
    size_t h = 0;
    struct ws_dec d;
    struct tally t;

    h += hdr(buf + h, 0x82, 3);
    memcpy(buf + h, "abc", 3);
    h += 3;
    h += hdr(buf + h, 0x89, 2); /* PING "pc" */
    memcpy(buf + h, "pc", 2);
    h += 2;
    h += hdr(buf + h, 0x82, 2);
    memcpy(buf + h, "de", 2);
    h += 2;
    h += hdr(buf + h, 0x8a, 0); /* PONG */
    ws_dec_init(&d);
    assert_int_equal(feed(&d, buf, h, sizeof(buf), out, &t), 5);
    assert_memory_equal(out, "abcde", 5);
    assert_int_equal(t.pings, 1);
    assert_int_equal(t.ping_len, 2);
    assert_memory_equal(t.ping, "pc", 2);
    assert_int_equal(t.pongs, 1);
}

static void test_fragments_and_a_ping_between(void **state)
{
    uint8_t buf[64], out[64];
    size_t h = 0;
    struct ws_dec d;
    struct tally t;

    h += hdr(buf + h, 0x02, 2); /* binary, not FIN */
    memcpy(buf + h, "ab", 2);
    h += 2;
    h += hdr(buf + h, 0x89, 0);
    h += hdr(buf + h, 0x80, 2); /* continuation, FIN */
    memcpy(buf + h, "cd", 2);
    h += 2;
    for (size_t step = 1; step <= sizeof(buf); step++) {
        ws_dec_init(&d);
        assert_int_equal(feed(&d, buf, h, step, out, &t), 4);
        assert_memory_equal(out, "abcd", 4);
        assert_int_equal(t.pings, 1);
        assert_int_equal(t.errors, 0);
    }
}

static void test_text_is_reported(void **state)
{
    uint8_t buf[16], out[16];
    size_t h = hdr(buf, 0x81, 2);
    struct ws_dec d;
    struct tally t;

    memcpy(buf + h, "hi", 2);
    ws_dec_init(&d);
    assert_int_equal(feed(&d, buf, h + 2, 16, out, &t), 2);
    assert_true(t.text);
}

static void test_close_frames(void **state)
{
    uint8_t buf[16], out[16];
    size_t h;
    struct ws_dec d;
    struct tally t;

    h = hdr(buf, 0x88, 4);
    buf[h] = 0x03;
    buf[h + 1] = 0xe8; /* 1000 */
    memcpy(buf + h + 2, "ok", 2);
    ws_dec_init(&d);
    feed(&d, buf, h + 4, 1, out, &t);
    assert_int_equal(t.closes, 1);
    assert_int_equal(t.close_code, 1000);

    h = hdr(buf, 0x88, 0); /* no status */
    ws_dec_init(&d);
    feed(&d, buf, h, 16, out, &t);
    assert_int_equal(t.closes, 1);
    assert_int_equal(t.close_code, 0);

    h = hdr(buf, 0x88, 1); /* one byte: invalid */
    buf[h] = 3;
    ws_dec_init(&d);
    feed(&d, buf, h + 1, 16, out, &t);
    assert_int_equal(t.errors, 1);
    assert_int_equal(t.err_code, WS_CLOSE_PROTOCOL);
}

/* Each malformed frame is a protocol error (1002) and the decoder stays
 * broken, consuming nothing more. */
static void expect_error(const uint8_t *p, size_t len)
{
    uint8_t out[256];
    struct ws_dec d;
    struct tally t;
    struct ws_ev ev;
    size_t used;

    ws_dec_init(&d);
    feed(&d, p, len, len, out, &t);
    assert_int_equal(t.errors, 1);
    assert_int_equal(t.err_code, WS_CLOSE_PROTOCOL);
    ws_dec_next(&d, (const uint8_t *)"\x82\x00", 2, &used, &ev);
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(used, 0);
    assert_false(ws_dec_idle(&d));
}

static void test_malformed_frames(void **state)
{
    uint8_t big_ping[2 + 126] = {0x89, 126, 0, 126};
    static const uint8_t masked[] = {0x82, 0x82, 1, 2, 3, 4, 'a', 'b'};
    static const uint8_t rsv[] = {0xc2, 0x00};
    static const uint8_t opcode3[] = {0x83, 0x00};
    static const uint8_t frag_ping[] = {0x09, 0x00};
    static const uint8_t lone_cont[] = {0x80, 0x01, 'x'};
    static const uint8_t nested[] = {0x02, 0x01, 'a', 0x82, 0x01, 'b'};
    static const uint8_t huge[] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0};

    expect_error(masked, sizeof(masked));
    expect_error(rsv, sizeof(rsv));
    expect_error(opcode3, sizeof(opcode3));
    expect_error(frag_ping, sizeof(frag_ping));
    expect_error(lone_cont, sizeof(lone_cont));
    expect_error(nested, sizeof(nested));
    expect_error(huge, sizeof(huge));
    expect_error(big_ping, sizeof(big_ping));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_frames_any_slicing),
        cmocka_unit_test(test_several_frames_in_one_read),
        cmocka_unit_test(test_fragments_and_a_ping_between),
        cmocka_unit_test(test_text_is_reported),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_malformed_frames),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
