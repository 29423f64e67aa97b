/*
 * Unit tests for src/common/tlspump.c over socketpairs (plain sides; the
 * TLS side is exercised end to end by tests/e2e/test_http_proxy.py):
 * bytes both ways unchanged under a slow reader, what was queued goes
 * first, end of stream travels in order, a pump without a B side writes
 * its answer and ends, and an error on one side ends the pump with a
 * reason.
 */
#include <pthread.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/loop.h"
#include "common/tlspump.h"
#include "common/util.h"

#define SIZE (3 * 1024 * 1024 + 17)

struct done_state {
    struct loop *l;
    int calls;
    char why[64];
};

static void on_done(void *arg, const char *why)
{
    struct done_state *d = arg;

    d->calls++;
    snprintf(d->why, sizeof(d->why), "%s", why != NULL ? why : "");
    loop_stop(d->l);
}

struct peer {
    int fd;
    const uint8_t *out; /* written then write half shut */
    size_t outlen;
    uint8_t *in; /* read until EOF */
    size_t inlen, incap;
    int slow; /* microseconds to sleep between reads */
};

static void *peer_run(void *arg)
{
    struct peer *p = arg;
    size_t off = 0;
    bool got_eof = false;
    ssize_t n;

    /* one thread writes and reads in turn, non-blocking, so neither
     * direction waits for the other */
    (void)util_set_nonblock(p->fd);
    for (;;) {
        bool idle = true;
        if (off < p->outlen) {
            n = send(p->fd, p->out + off, p->outlen - off, MSG_NOSIGNAL);
            if (n > 0) {
                off += (size_t)n;
                idle = false;
                if (off == p->outlen) {
                    shutdown(p->fd, SHUT_WR);
                }
            }
        }
        if (got_eof && off == p->outlen) {
            break;
        }
        n = got_eof ? -1
                    : recv(p->fd, p->in + p->inlen, p->incap - p->inlen, 0);
        if (n == 0) {
            got_eof = true;
            continue;
        }
        if (n > 0) {
            p->inlen += (size_t)n;
            idle = false;
            if (p->slow > 0) {
                usleep((useconds_t)p->slow);
            }
        }
        if (idle) {
            usleep(200);
        }
    }
    return NULL;
}

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *b = malloc(n);

    for (size_t i = 0; i < n; i++) {
        b[i] = (uint8_t)((i * 131 + seed) ^ (i >> 11));
    }
    return b;
}

static void test_relay_both_ways_in_order(void **state)
{
    int a[2], b[2];
    struct done_state d = {0};
    struct peer pa = {0}, pb = {0};
    pthread_t ta, tb;
    uint8_t *from_a = pattern(SIZE, 1), *from_b = pattern(SIZE / 2, 7);
    struct tlspump *p;
    uint64_t ab, ba;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    assert_int_equal(util_set_nonblock(a[1]), ERR_OK);
    assert_int_equal(util_set_nonblock(b[1]), ERR_OK);
    d.l = loop_new();
    p = tlspump_new(d.l, a[1], NULL, b[1], NULL, on_done, &d);
    assert_non_null(p);
    assert_int_equal(tlspump_send(p, 0, "HELLO-A ", 8), ERR_OK);
    assert_int_equal(tlspump_send(p, 1, "HELLO-B ", 8), ERR_OK);

    pa.fd = a[0];
    pa.out = from_a;
    pa.outlen = SIZE;
    pa.incap = SIZE;
    pa.in = malloc(pa.incap);
    pa.slow = 50; /* A reads slowly: the pump must hold back, not buffer */
    pb.fd = b[0];
    pb.out = from_b;
    pb.outlen = SIZE / 2;
    pb.incap = SIZE + 8;
    pb.in = malloc(pb.incap);
    pthread_create(&ta, NULL, peer_run, &pa);
    pthread_create(&tb, NULL, peer_run, &pb);
    tlspump_start(p);
    loop_run(d.l);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);

    assert_int_equal(d.calls, 1);
    assert_string_equal(d.why, "");
    /* B got the queued bytes, then all of A's, in order */
    assert_int_equal(pb.inlen, SIZE + 8);
    assert_memory_equal(pb.in, "HELLO-B ", 8);
    assert_memory_equal(pb.in + 8, from_a, SIZE);
    assert_int_equal(pa.inlen, SIZE / 2 + 8);
    assert_memory_equal(pa.in, "HELLO-A ", 8);
    assert_memory_equal(pa.in + 8, from_b, SIZE / 2);
    tlspump_counts(p, &ab, &ba);
    assert_int_equal(ab, SIZE + 8);
    assert_int_equal(ba, SIZE / 2 + 8);
    tlspump_free(p);
    loop_free(d.l);
    close(a[0]);
    close(b[0]);
    free(pa.in);
    free(pb.in);
    free(from_a);
    free(from_b);
}

static void test_answer_then_close(void **state)
{
    int a[2];
    struct done_state d = {0};
    struct tlspump *p;
    char buf[64];
    ssize_t n;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    assert_int_equal(util_set_nonblock(a[1]), ERR_OK);
    d.l = loop_new();
    p = tlspump_new(d.l, a[1], NULL, -1, NULL, on_done, &d);
    assert_non_null(p);
    assert_int_equal(tlspump_send(p, 0, "HTTP/1.1 403 no\r\n\r\n", 19), ERR_OK);
    tlspump_start(p);
    if (d.calls == 0) {
        loop_run(d.l);
    }
    assert_int_equal(d.calls, 1);
    n = recv(a[0], buf, sizeof(buf), 0);
    assert_int_equal(n, 19);
    assert_int_equal(recv(a[0], buf, sizeof(buf), 0), 0); /* then EOF */
    tlspump_free(p);
    loop_free(d.l);
    close(a[0]);
}

static void test_queue_is_bounded(void **state)
{
    int a[2];
    struct done_state d = {0};
    struct tlspump *p;
    static uint8_t big[64 * 1024];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    d.l = loop_new();
    p = tlspump_new(d.l, a[1], NULL, -1, NULL, on_done, &d);
    assert_non_null(p);
    assert_int_equal(tlspump_send(p, 0, big, sizeof(big)), ERR_OK);
    assert_int_equal(tlspump_send(p, 0, "x", 1), ERR_TOO_LONG);
    tlspump_free(p); /* before start: nothing is called */
    assert_int_equal(d.calls, 0);
    loop_free(d.l);
    close(a[0]);
}

static void test_error_ends_with_a_reason(void **state)
{
    int a[2], b[2];
    struct done_state d = {0};
    struct tlspump *p;
    struct linger lg = {1, 0};
    int tcp[2];

    (void)state;
    (void)tcp;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    assert_int_equal(util_set_nonblock(a[1]), ERR_OK);
    assert_int_equal(util_set_nonblock(b[1]), ERR_OK);
    d.l = loop_new();
    p = tlspump_new(d.l, a[1], NULL, b[1], NULL, on_done, &d);
    assert_non_null(p);
    tlspump_start(p);
    /* B's peer goes away entirely while A still sends: writing to B fails */
    (void)setsockopt(b[0], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(b[0]);
    assert_int_equal(send(a[0], "data", 4, 0), 4);
    loop_run(d.l);
    assert_int_equal(d.calls, 1);
    assert_string_equal(d.why, "write error");
    tlspump_free(p);
    loop_free(d.l);
    close(a[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_both_ways_in_order),
        cmocka_unit_test(test_answer_then_close),
        cmocka_unit_test(test_queue_is_bounded),
        cmocka_unit_test(test_error_ends_with_a_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
