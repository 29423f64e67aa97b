/*
 * hub/udp_relay.c, a UDP flow's relay between nodes, on real sockets
 * (its decoder, common/frame.c, has test_agent_frame): datagrams framed
 * onto the stream and back, the largest whole, a frame split across
 * reads, and a frame of length 0, one above the largest, or a length
 * promising more than ever comes ending it with both sockets closed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/loop.h"
#include "common/frame.h"
#include "hub/udp_relay.h"

struct fx {
    struct loop *l;
    int dg[2], st[2]; /* [0] the relay's, [1] the test's */
    struct udp_relay *r;
    int ended;
    char why[128];
};

static void on_end(void *arg, const char *why)
{
    struct fx *f = arg;

    f->ended++;
    snprintf(f->why, sizeof(f->why), "%s", why);
    f->r = NULL;
}

static void on_stop(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

/* Runs the loop for ms. */
static void turn(struct fx *f, int ms)
{
    loop_add_timer(f->l, ms, on_stop, f);
    (void)loop_run(f->l);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_non_null(f->l = loop_new());
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, f->dg), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->st), 0);
    f->r = udp_relay_start(f->l, f->dg[0], f->st[0], on_end, f);
    assert_non_null(f->r);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    udp_relay_stop(f->r);
    close(f->dg[1]);
    close(f->st[1]);
    loop_free(f->l);
    free(f);
    return 0;
}

/* Reads n bytes of the stream (the test's end), with a 2 s limit. */
static void read_stream(struct fx *f, uint8_t *out, size_t n)
{
    size_t got = 0;
    int i;

    for (i = 0; i < 200 && got < n; i++) {
        ssize_t r = recv(f->st[1], out + got, n - got, MSG_DONTWAIT);

        if (r > 0) {
            got += (size_t)r;
        } else {
            turn(f, 10);
        }
    }
    assert_int_equal(got, n);
}

static void test_relay_both_ways(void **state)
{
    struct fx *f = *state;
    static uint8_t big[FRAME_MAX_PAYLOAD], got[FRAME_HDR + FRAME_MAX_PAYLOAD];
    uint8_t in[16];
    size_t i;

    for (i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 7);
    }
    /* datagrams -> stream */
    assert_int_equal(send(f->dg[1], "hello", 5, 0), 5);
    read_stream(f, got, 7);
    assert_memory_equal(got, "\x00\x05hello", 7);
    assert_int_equal(send(f->dg[1], big, sizeof(big), 0), (ssize_t)sizeof(big));
    read_stream(f, got, sizeof(got));
    assert_int_equal(got[0], FRAME_MAX_PAYLOAD >> 8);
    assert_int_equal(got[1], FRAME_MAX_PAYLOAD & 0xff);
    assert_memory_equal(got + 2, big, sizeof(big));
    /* stream -> datagrams: two frames in one write, then one split */
    assert_int_equal(send(f->st[1], "\x00\x02hi\x00\x03you\x00", 10, 0), 10);
    turn(f, 50);
    assert_int_equal(send(f->st[1], "\x04", 1, 0), 1);
    turn(f, 50);
    assert_int_equal(send(f->st[1], "ab", 2, 0), 2);
    turn(f, 50);
    assert_int_equal(send(f->st[1], "cd", 2, 0), 2);
    turn(f, 50);
    assert_int_equal(recv(f->dg[1], in, sizeof(in), MSG_DONTWAIT), 2);
    assert_memory_equal(in, "hi", 2);
    assert_int_equal(recv(f->dg[1], in, sizeof(in), MSG_DONTWAIT), 3);
    assert_memory_equal(in, "you", 3);
    assert_int_equal(recv(f->dg[1], in, sizeof(in), MSG_DONTWAIT), 4);
    assert_memory_equal(in, "abcd", 4);
    assert_int_equal(recv(f->dg[1], in, sizeof(in), MSG_DONTWAIT), -1);
    assert_int_equal(f->ended, 0);
    /* the flow ends: the stream does */
    close(f->dg[1]);
    f->dg[1] = -1;
    turn(f, 50);
    assert_int_equal(f->ended, 1);
    assert_int_equal(recv(f->st[1], in, sizeof(in), MSG_DONTWAIT), 0);
}

/* A frame of length 0 from the other node: the relay ends, the flow's
 * socket reads its end. */
static void test_relay_zero_length(void **state)
{
    struct fx *f = *state;
    uint8_t in[16];

    assert_int_equal(send(f->st[1], "\x00\x01x\x00\x00", 5, 0), 5);
    turn(f, 50);
    assert_int_equal(f->ended, 1);
    assert_string_equal(f->why, "a bad frame from the other node");
    assert_int_equal(recv(f->dg[1], in, sizeof(in), MSG_DONTWAIT), 1);
    assert_int_equal(recv(f->dg[1], in, sizeof(in), MSG_DONTWAIT), 0);
}

/* A length above the largest UDP payload ends it at the header. */
static void test_relay_too_long(void **state)
{
    struct fx *f = *state;

    assert_int_equal(send(f->st[1], "\xff\xf0", 2, 0), 2);
    turn(f, 50);
    assert_int_equal(f->ended, 1);
}

/* A length promising more than comes, then the end of the stream: the
 * relay waits (holding one frame at most), then ends cleanly. */
static void test_relay_short_frame(void **state)
{
    struct fx *f = *state;
    uint8_t in[16];

    assert_int_equal(send(f->st[1], "\x10\x00only", 6, 0), 6);
    turn(f, 50);
    assert_int_equal(f->ended, 0);
    assert_int_equal(recv(f->dg[1], in, sizeof(in), MSG_DONTWAIT), -1);
    shutdown(f->st[1], SHUT_WR);
    turn(f, 50);
    assert_int_equal(f->ended, 1);
    assert_string_equal(f->why, "the other node closed the stream");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_relay_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_zero_length, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_relay_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_short_frame, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
