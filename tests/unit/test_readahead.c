/*
 * sshproxy/readahead.c: larger socket reads under libssh. The test links
 * like the session child (-Wl,--wrap=recv,poll,close through core_dep),
 * so recv(), poll() and close() here go through the wrappers, over a
 * socketpair; __real_recv() shows what is left in the kernel.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "sshproxy/readahead.h"

ssize_t __real_recv(int fd, void *buf, size_t len, int flags);

static int sp[2];

static int setup(void **state)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp),
                     0);
    return 0;
}

static int teardown(void **state)
{
    close(sp[0]);
    close(sp[1]);
    return 0;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(i * 31 + seed);
    }
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* Nothing waits in the kernel's socket buffer of fd. */
static void kernel_empty(int fd)
{
    uint8_t b;

    errno = 0;
    assert_int_equal(__real_recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK), -1);
    assert_int_equal(errno, EAGAIN);
}

/* A small read takes everything the kernel has; later reads, of any
 * size, come from the buffer in order, and the bytes are the same. */
static void test_short_reads_come_from_the_buffer(void **state)
{
    static uint8_t in[20000], out[20000];
    size_t got = 0;
    ssize_t n;

    fill(in, sizeof(in), 1);
    assert_true(readahead_register(sp[0]));
    send_all(sp[1], in, sizeof(in));
    n = recv(sp[0], out, 100, 0);
    assert_int_equal(n, 100);
    got = 100;
    kernel_empty(sp[0]); /* the rest was read ahead */
    while (got < sizeof(in)) {
        size_t want = got % 3 == 0 ? 7 : 4096;
        n = recv(sp[0], out + got, want, 0);
        assert_true(n > 0 && (size_t)n <= want);
        got += (size_t)n;
    }
    assert_memory_equal(in, out, sizeof(in));
    errno = 0;
    assert_int_equal(recv(sp[0], out, 10, 0), -1);
    assert_int_equal(errno, EAGAIN);
}

/* MSG_PEEK sees the buffered bytes without taking them. */
static void test_peek_leaves_the_bytes(void **state)
{
    uint8_t out[8];

    assert_true(readahead_register(sp[0]));
    send_all(sp[1], (const uint8_t *)"abcdefgh", 8);
    assert_int_equal(recv(sp[0], out, 2, 0), 2);
    assert_memory_equal(out, "ab", 2);
    assert_int_equal(recv(sp[0], out, 3, MSG_PEEK), 3);
    assert_memory_equal(out, "cde", 3);
    assert_int_equal(recv(sp[0], out, 8, 0), 6);
    assert_memory_equal(out, "cdefgh", 6);
}

/* End of file arrives after the buffered bytes, not before. */
static void test_eof_after_the_buffered_bytes(void **state)
{
    uint8_t out[64];

    assert_true(readahead_register(sp[0]));
    send_all(sp[1], (const uint8_t *)"0123456789", 10);
    shutdown(sp[1], SHUT_WR);
    assert_int_equal(recv(sp[0], out, 4, 0), 4);
    assert_int_equal(recv(sp[0], out, 64, 0), 6);
    assert_memory_equal(out, "456789", 6);
    assert_int_equal(recv(sp[0], out, 64, 0), 0);
    assert_int_equal(recv(sp[0], out, 64, 0), 0);
}

/* A non-blocking socket with nothing to read says EAGAIN, before any
 * read and after the buffer is used up. */
static void test_eagain(void **state)
{
    uint8_t out[16];

    assert_true(readahead_register(sp[0]));
    errno = 0;
    assert_int_equal(recv(sp[0], out, 16, 0), -1);
    assert_int_equal(errno, EAGAIN);
    send_all(sp[1], (const uint8_t *)"xyz", 3);
    assert_int_equal(recv(sp[0], out, 1, 0), 1);
    assert_int_equal(recv(sp[0], out, 16, MSG_DONTWAIT), 2);
    errno = 0;
    assert_int_equal(recv(sp[0], out, 16, 0), -1);
    assert_int_equal(errno, EAGAIN);
}

/* poll() says readable while bytes wait in the buffer although the
 * kernel's buffer is empty, without waiting; and answers from the kernel
 * again once they are read. */
static void test_poll_sees_buffered_bytes(void **state)
{
    struct pollfd pf[2];
    int other[2];
    uint8_t out[64];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
    assert_true(readahead_register(sp[0]));
    send_all(sp[1], (const uint8_t *)"hello world", 11);
    assert_int_equal(recv(sp[0], out, 5, 0), 5);
    kernel_empty(sp[0]);

    pf[0].fd = sp[0];
    pf[0].events = POLLIN;
    pf[0].revents = 0;
    pf[1].fd = other[0];
    pf[1].events = POLLIN;
    pf[1].revents = POLLERR;              /* must be overwritten */
    assert_int_equal(poll(pf, 2, -1), 1); /* -1: would hang if wrong */
    assert_int_equal(pf[0].revents, POLLIN);
    assert_int_equal(pf[1].revents, 0);

    /* Not asked for POLLIN: the kernel answers (nothing to report). */
    pf[0].events = 0;
    assert_int_equal(poll(pf, 1, 0), 0);

    assert_int_equal(recv(sp[0], out, 64, 0), 6);
    pf[0].events = POLLIN;
    assert_int_equal(poll(pf, 1, 0), 0); /* nothing anywhere now */
    send_all(sp[1], (const uint8_t *)"!", 1);
    assert_int_equal(poll(pf, 1, 1000), 1);
    assert_true(pf[0].revents & POLLIN);
    close(other[0]);
    close(other[1]);
}

/* close() of a registered descriptor drops its buffer: a new socket that
 * gets the same number reads only its own bytes. */
static void test_close_drops_the_buffer(void **state)
{
    int fd = sp[0], again[2];
    uint8_t out[64];
    ssize_t n;

    assert_true(readahead_register(fd));
    send_all(sp[1], (const uint8_t *)"stale bytes", 11);
    assert_int_equal(recv(fd, out, 1, 0), 1); /* 10 now buffered */
    assert_int_equal(close(fd), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, again),
                     0);
    if (again[0] != fd) {
        /* make the old number the new socket's */
        assert_int_equal(dup2(again[0], fd), fd);
        close(again[0]);
    }
    send_all(again[1], (const uint8_t *)"fresh", 5);
    n = recv(fd, out, 64, 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "fresh", 5);
    sp[0] = fd;
    close(sp[1]);
    sp[1] = again[1];
}

/* The table is bounded; forgetting frees a slot; registering twice is
 * fine. */
static void test_table_is_bounded(void **state)
{
    int fds[READAHEAD_MAX_FDS + 1];

    for (int i = 0; i <= READAHEAD_MAX_FDS; i++) {
        fds[i] = dup(sp[0]);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < READAHEAD_MAX_FDS; i++) {
        assert_true(readahead_register(fds[i]));
    }
    assert_true(readahead_register(fds[0]));
    assert_false(readahead_register(fds[READAHEAD_MAX_FDS]));
    readahead_forget(fds[1]);
    assert_true(readahead_register(fds[READAHEAD_MAX_FDS]));
    for (int i = 0; i <= READAHEAD_MAX_FDS; i++) {
        close(fds[i]);
    }
}

/* A read as large as the buffer goes straight to the kernel. */
static void test_large_read_is_direct(void **state)
{
    static uint8_t in[5000], out[READAHEAD_SIZE];

    fill(in, sizeof(in), 9);
    assert_true(readahead_register(sp[0]));
    send_all(sp[1], in, sizeof(in));
    assert_int_equal(recv(sp[0], out, sizeof(out), 0), (ssize_t)sizeof(in));
    assert_memory_equal(in, out, sizeof(in));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_short_reads_come_from_the_buffer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_peek_leaves_the_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_eof_after_the_buffered_bytes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_eagain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_sees_buffered_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_drops_the_buffer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_table_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_read_is_direct, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
