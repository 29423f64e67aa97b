/*
 * Unit tests for src/hub/job_msg.c: the hub's parser of a job's result
 * stream, bytes an untrusted agent sends. Output frames reach the
 * callback in order and in any pieces; the result must come last, agree
 * with the output it follows and carry a known status; everything else
 * (bytes after the result, an unknown frame, an oversized or empty frame,
 * more output than the cap, a stream that ends early) is refused with a
 * reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "hub/job_msg.h"

struct got {
    char out[256], err[256];
    size_t out_len, err_len;
};

static void on_chunk(void *arg, int stream, const uint8_t *p, size_t n)
{
    struct got *g = arg;

    char *dst = stream == 1 ? g->out : g->err;
    size_t *len = stream == 1 ? &g->out_len : &g->err_len;

    /* keeps the first bytes, counts them all */
    if (*len < sizeof(g->out)) {
        size_t room = sizeof(g->out) - *len;
        memcpy(dst + *len, p, n < room ? n : room);
    }
    *len += n;
}

/* Appends one frame to buf at *len. */
static void frame(uint8_t *buf, size_t *len, char type, const char *p, size_t n)
{
    buf[(*len)++] = (uint8_t)type;
    buf[(*len)++] = (uint8_t)(n >> 24);
    buf[(*len)++] = (uint8_t)(n >> 16);
    buf[(*len)++] = (uint8_t)(n >> 8);
    buf[(*len)++] = (uint8_t)n;
    memcpy(buf + *len, p, n);
    *len += n;
}

static const char hdr_ok[] = "{\"status\":\"ok\",\"exit_code\":0,"
                             "\"signal\":null,\"stdout_len\":5,"
                             "\"stderr_len\":3}";

static size_t good_stream(uint8_t *buf)
{
    size_t len = 0;

    frame(buf, &len, 'O', "hel", 3);
    frame(buf, &len, 'E', "err", 3);
    frame(buf, &len, 'O', "lo", 2);
    frame(buf, &len, 'R', hdr_ok, strlen(hdr_ok));
    return len;
}

static void test_good_in_any_pieces(void **state)
{
    uint8_t buf[1024];
    size_t len = good_stream(buf);

    (void)state;
    for (size_t piece = 1; piece <= len; piece++) {
        struct job_msg m;
        struct got g = {0};
        char why[128] = "";

        job_msg_init(&m);
        for (size_t at = 0; at < len; at += piece) {
            size_t n = len - at < piece ? len - at : piece;
            assert_int_equal(
                job_msg_feed(&m, buf + at, n, on_chunk, &g, why, sizeof(why)),
                ERR_OK);
        }
        assert_int_equal(job_msg_end(&m, false, why, sizeof(why)), ERR_OK);
        assert_string_equal(m.status, "ok");
        assert_int_equal(m.exit_code, 0);
        assert_int_equal(m.signal, 0);
        assert_int_equal(g.out_len, 5);
        assert_memory_equal(g.out, "hello", 5);
        assert_memory_equal(g.err, "err", 3);
    }
}

static int feed_all(const uint8_t *buf, size_t len, bool unknown_ok, char *why,
                    size_t whylen, struct job_msg *m)
{
    struct got g = {0};
    int r;

    job_msg_init(m);
    why[0] = '\0';
    if ((r = job_msg_feed(m, buf, len, on_chunk, &g, why, whylen)) != ERR_OK) {
        return r;
    }
    return job_msg_end(m, unknown_ok, why, whylen);
}

static void test_refusals(void **state)
{
    static uint8_t buf[8 * 1024 * 1024];
    static char big[JOB_MSG_CHUNK_MAX + 1];
    struct job_msg m;
    char why[128];
    size_t len;

    (void)state;
    /* bytes after the result */
    len = good_stream(buf);
    buf[len++] = 'O';
    assert_int_equal(feed_all(buf, len, false, why, sizeof(why), &m),
                     ERR_INVALID);
    assert_string_equal(why, "bytes after the result");
    /* ended before the result */
    len = good_stream(buf) - 3;
    assert_int_equal(feed_all(buf, len, false, why, sizeof(why), &m),
                     ERR_INVALID);
    assert_string_equal(why, "the stream ended before the result");
    assert_int_equal(feed_all(buf, 0, false, why, sizeof(why), &m),
                     ERR_INVALID);
    /* an unknown frame, an empty one, an oversized one */
    len = 0;
    frame(buf, &len, 'X', "a", 1);
    assert_int_equal(feed_all(buf, len, false, why, sizeof(why), &m),
                     ERR_INVALID);
    assert_non_null(strstr(why, "unknown frame type 0x58"));
    len = 0;
    frame(buf, &len, 'O', "", 0);
    assert_int_equal(feed_all(buf, len, false, why, sizeof(why), &m),
                     ERR_INVALID);
    len = 0;
    memset(big, 'a', sizeof(big));
    frame(buf, &len, 'E', big, sizeof(big));
    assert_int_equal(feed_all(buf, len, false, why, sizeof(why), &m),
                     ERR_INVALID);
    len = 0;
    frame(buf, &len, 'R', big, JOB_MSG_HEADER_MAX + 1);
    assert_int_equal(feed_all(buf, len, false, why, sizeof(why), &m),
                     ERR_INVALID);
    /* more output than the cap (each frame within bounds) */
    len = 0;
    while (len < JOB_MSG_OUT_MAX + 2 * JOB_MSG_CHUNK_MAX) {
        frame(buf, &len, 'O', big, JOB_MSG_CHUNK_MAX);
    }
    assert_int_equal(feed_all(buf, len, false, why, sizeof(why), &m),
                     ERR_INVALID);
    assert_string_equal(why, "more output than the cap");
    /* lengths that disagree, a status it cannot have, not JSON */
    len = 0;
    frame(buf, &len, 'O', "hello", 5);
    frame(buf, &len, 'R', hdr_ok, strlen(hdr_ok));
    assert_int_equal(feed_all(buf, len, false, why, sizeof(why), &m),
                     ERR_INVALID);
    assert_string_equal(why, "the result's lengths differ from the output");
    {
        static const char *const bad[] = {
            "{\"status\":\"running\",\"stdout_len\":0,\"stderr_len\":0}",
            "{\"status\":\"lost\",\"stdout_len\":0,\"stderr_len\":0}",
            "{\"status\":\"ok\",\"stdout_len\":-1,\"stderr_len\":0}",
            "{\"status\":\"ok\",\"stdout_len\":\"0\",\"stderr_len\":0}",
            "{\"status\":\"ok\",\"status\":\"ok\",\"stdout_len\":0,"
            "\"stderr_len\":0}",
            "[\"ok\"]",
            "{\"status\":\"ok\"",
            NULL,
        };
        for (size_t i = 0; bad[i] != NULL; i++) {
            len = 0;
            frame(buf, &len, 'R', bad[i], strlen(bad[i]));
            assert_int_equal(feed_all(buf, len, false, why, sizeof(why), &m),
                             ERR_INVALID);
        }
    }
    /* "unknown" only answers a fetch; out-of-range numbers are dropped;
     * control characters in why become spaces */
    {
        static const char unk[] = "{\"status\":\"unknown\",\"exit_code\":900,"
                                  "\"signal\":-3,\"why\":\"a\\nb\","
                                  "\"stdout_len\":0,\"stderr_len\":0}";
        len = 0;
        frame(buf, &len, 'R', unk, strlen(unk));
        assert_int_equal(feed_all(buf, len, false, why, sizeof(why), &m),
                         ERR_INVALID);
        assert_int_equal(feed_all(buf, len, true, why, sizeof(why), &m),
                         ERR_OK);
        assert_string_equal(m.status, "unknown");
        assert_int_equal(m.exit_code, -1);
        assert_int_equal(m.signal, 0);
        assert_string_equal(m.why, "a b");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_in_any_pieces),
        cmocka_unit_test(test_refusals),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
