/*
 * Unit tests for src/sshproxy/mproto.c, the monitor protocol transport:
 * type and payload survive a SOCK_SEQPACKET socketpair intact, a passed
 * descriptor arrives working, one nobody asked for is closed rather than
 * leaked, EOF is told apart from errors, and sizes are enforced on both
 * sides (an oversize send is refused, an oversize datagram is rejected).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "sshproxy/mproto.h"

struct pair {
    int s[2];
};

static int setup_pair(void **state)
{
    static struct pair p;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p.s) != 0) {
        return -1;
    }
    *state = &p;
    return 0;
}

static int teardown_pair(void **state)
{
    struct pair *p = *state;

    if (p->s[0] >= 0) {
        close(p->s[0]);
    }
    if (p->s[1] >= 0) {
        close(p->s[1]);
    }
    return 0;
}

/* Open descriptors of this process, counted from /proc/self/fd. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static void test_round_trip(void **state)
{
    struct pair *p = *state;
    struct buf *out = buf_new(MPROTO_MAX);
    struct buf *in = buf_new(MPROTO_MAX);
    uint8_t type = 0, v8 = 0;
    uint32_t v32 = 0;
    uint64_t v64 = 0;
    char *s = NULL;
    int fd = 123;

    assert_non_null(out);
    assert_non_null(in);
    assert_int_equal(buf_put_u8(out, MP_AUTH_OK), ERR_OK);
    assert_int_equal(buf_put_u32(out, 1500), ERR_OK);
    assert_int_equal(buf_put_u64(out, 0x0102030405060708ULL), ERR_OK);
    assert_int_equal(buf_put_cstring(out, "wrong password"), ERR_OK);
    /* Stale bytes in the receive buffer must not survive. */
    assert_int_equal(buf_put_cstring(in, "stale"), ERR_OK);

    assert_int_equal(mproto_send(p->s[0], MP_AUTH_REPLY, out, -1, 0), ERR_OK);
    assert_int_equal(mproto_recv(p->s[1], &type, in, &fd), ERR_OK);
    assert_int_equal(type, MP_AUTH_REPLY);
    assert_int_equal(fd, -1);
    assert_int_equal(buf_avail(in), buf_avail(out));
    assert_memory_equal(buf_ptr(in), buf_ptr(out), buf_avail(out));

    assert_int_equal(buf_get_u8(in, &v8), ERR_OK);
    assert_int_equal(v8, MP_AUTH_OK);
    assert_int_equal(buf_get_u32(in, &v32), ERR_OK);
    assert_int_equal(v32, 1500);
    assert_int_equal(buf_get_u64(in, &v64), ERR_OK);
    assert_true(v64 == 0x0102030405060708ULL);
    assert_int_equal(buf_get_cstring(in, 64, &s), ERR_OK);
    assert_string_equal(s, "wrong password");
    free(s);
    assert_int_equal(buf_expect_end(in), ERR_OK);

    /* The sender's payload is left unread: it can be sent again, and
     * only its unread part goes. */
    assert_int_equal(buf_consume(out, 1), ERR_OK);
    assert_int_equal(mproto_send(p->s[1], MP_ACK, out, -1, 0), ERR_OK);
    assert_int_equal(mproto_recv(p->s[0], &type, in, NULL), ERR_OK);
    assert_int_equal(type, MP_ACK);
    assert_int_equal(buf_avail(in), buf_avail(out));
    assert_memory_equal(buf_ptr(in), buf_ptr(out), buf_avail(out));
    buf_free(out);
    buf_free(in);
}

static void test_empty_payload(void **state)
{
    struct pair *p = *state;
    struct buf *empty = buf_new(0);
    struct buf *in = buf_new(MPROTO_MAX);
    uint8_t type = 0;
    int fd = 123;

    assert_non_null(empty);
    assert_non_null(in);
    assert_int_equal(mproto_send(p->s[0], MP_CONNECT, NULL, -1, 0), ERR_OK);
    assert_int_equal(mproto_send(p->s[0], MP_CREDENTIALS, empty, -1, 1),
                     ERR_OK);

    assert_int_equal(buf_put_u32(in, 42), ERR_OK);
    assert_int_equal(mproto_recv(p->s[1], &type, in, &fd), ERR_OK);
    assert_int_equal(type, MP_CONNECT);
    assert_int_equal(fd, -1);
    assert_int_equal(buf_avail(in), 0);
    assert_int_equal(buf_expect_end(in), ERR_OK);

    assert_int_equal(buf_put_u32(in, 42), ERR_OK);
    assert_int_equal(mproto_recv(p->s[1], &type, in, &fd), ERR_OK);
    assert_int_equal(type, MP_CREDENTIALS);
    assert_int_equal(buf_avail(in), 0);
    buf_free(empty);
    buf_free(in);
}

static void test_fd_passing(void **state)
{
    struct pair *p = *state;
    struct buf *out = buf_new(0);
    struct buf *in = buf_new(MPROTO_MAX);
    int pfd[2], fd = -1, flags;
    uint8_t type = 0;
    uint32_t pid = 0;
    char got[8] = {0};

    assert_non_null(out);
    assert_non_null(in);
    assert_int_equal(pipe(pfd), 0);
    assert_int_equal(buf_put_u32(out, 4242), ERR_OK);
    assert_int_equal(mproto_send(p->s[0], MP_SPAWN_NEW, out, pfd[1], 0),
                     ERR_OK);
    /* The sender's copy stays its own: closing it must not matter. */
    close(pfd[1]);

    assert_int_equal(mproto_recv(p->s[1], &type, in, &fd), ERR_OK);
    assert_int_equal(type, MP_SPAWN_NEW);
    assert_int_equal(buf_get_u32(in, &pid), ERR_OK);
    assert_int_equal(pid, 4242);
    assert_int_equal(buf_expect_end(in), ERR_OK);
    assert_true(fd >= 0);
    assert_int_not_equal(fd, pfd[0]);
    /* Received close-on-exec, so a later exec cannot inherit it. */
    flags = fcntl(fd, F_GETFD);
    assert_true(flags >= 0 && (flags & FD_CLOEXEC));

    /* It is the pipe's write end: bytes written arrive at the read end. */
    assert_int_equal(write(fd, "hello", 5), 5);
    close(fd);
    assert_int_equal(read(pfd[0], got, sizeof(got)), 5);
    assert_memory_equal(got, "hello", 5);
    /* And it was the last write end. */
    assert_int_equal(read(pfd[0], got, sizeof(got)), 0);
    close(pfd[0]);
    buf_free(out);
    buf_free(in);
}

/* Two descriptors in one message (the spawner's new child: its monitor
 * socket and its pidfd), in order; a receiver that wants fewer gets the
 * first and the rest are closed, not leaked; more than MPROTO_MAX_FDS
 * are refused by the sender. */
static void test_two_fds(void **state)
{
    struct pair *p = *state;
    struct buf *in = buf_new(MPROTO_MAX);
    int a[2], b[2], fds[3] = {-1, -1, -1}, send3[3];
    size_t n = 9;
    uint8_t type = 0;
    char got[4] = {0};

    assert_non_null(in);
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    fds[0] = a[1];
    fds[1] = b[1];
    assert_int_equal(mproto_send_fds(p->s[0], MP_SPAWN_NEW, NULL, fds, 2, 0),
                     ERR_OK);
    assert_int_equal(mproto_recv_fds(p->s[1], &type, in, fds, 3, &n), ERR_OK);
    assert_int_equal(type, MP_SPAWN_NEW);
    assert_int_equal(n, 2);
    assert_true(fds[0] >= 0 && fds[1] >= 0);
    assert_int_equal(fds[2], -1);
    assert_int_equal(write(fds[0], "a", 1), 1);
    assert_int_equal(write(fds[1], "b", 1), 1);
    assert_int_equal(read(a[0], got, 1), 1);
    assert_int_equal(got[0], 'a');
    assert_int_equal(read(b[0], got, 1), 1);
    assert_int_equal(got[0], 'b');
    close(fds[0]);
    close(fds[1]);

    /* Only one wanted: the second arrives closed. */
    fds[0] = a[1];
    fds[1] = b[1];
    assert_int_equal(mproto_send_fds(p->s[0], MP_SPAWN_NEW, NULL, fds, 2, 0),
                     ERR_OK);
    close(b[1]);
    assert_int_equal(mproto_recv_fds(p->s[1], &type, in, fds, 1, &n), ERR_OK);
    assert_int_equal(n, 1);
    close(fds[0]);
    close(a[1]);
    assert_int_equal(read(a[0], got, 1), 0); /* every write end closed */
    assert_int_equal(read(b[0], got, 1), 0);

    send3[0] = send3[1] = send3[2] = a[0];
    assert_int_equal(mproto_send_fds(p->s[0], MP_SPAWN_NEW, NULL, send3, 3, 0),
                     ERR_TOO_LONG);
    close(a[0]);
    close(b[0]);
    buf_free(in);
}

static void test_unwanted_fd_is_closed(void **state)
{
    struct pair *p = *state;
    struct buf *in = buf_new(MPROTO_MAX);
    int pfd[2], before, after;
    uint8_t type = 0;
    char c;

    assert_non_null(in);
    assert_int_equal(pipe2(pfd, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(mproto_send(p->s[0], MP_CONNECT_REPLY, NULL, pfd[1], 0),
                     ERR_OK);
    close(pfd[1]);
    before = count_fds();

    /* The only write end left is in flight; fd == NULL must close it. */
    assert_int_equal(mproto_recv(p->s[1], &type, in, NULL), ERR_OK);
    assert_int_equal(type, MP_CONNECT_REPLY);
    after = count_fds();
    assert_int_equal(after, before);
    /* EOF, not EAGAIN: no write end survives anywhere in the process. */
    assert_int_equal(read(pfd[0], &c, 1), 0);
    close(pfd[0]);
    buf_free(in);
}

static void test_eof_is_io_with_errno_zero(void **state)
{
    struct pair *p = *state;
    struct buf *in = buf_new(MPROTO_MAX);
    uint8_t type = 7;
    int fd = 123;

    assert_non_null(in);
    assert_int_equal(buf_put_u8(in, 1), ERR_OK);
    close(p->s[0]);
    p->s[0] = -1;
    errno = EBADF;
    assert_int_equal(mproto_recv(p->s[1], &type, in, &fd), ERR_IO);
    assert_int_equal(errno, 0);
    assert_int_equal(type, 0);
    assert_int_equal(fd, -1);
    assert_int_equal(buf_avail(in), 0);
    buf_free(in);
}

static void test_io_error_keeps_errno(void **state)
{
    struct pair *p = *state;
    struct buf *in = buf_new(MPROTO_MAX);
    uint8_t type = 7;

    assert_non_null(in);
    /* Nothing queued on a non-blocking socket: an error, not EOF. */
    assert_int_equal(fcntl(p->s[1], F_SETFL, O_NONBLOCK), 0);
    errno = 0;
    assert_int_equal(mproto_recv(p->s[1], &type, in, NULL), ERR_IO);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    assert_int_equal(type, 0);
    /* Sending to a closed peer is an error too. */
    close(p->s[1]);
    p->s[1] = -1;
    assert_int_equal(mproto_send(p->s[0], MP_ACK, NULL, -1, 0), ERR_IO);
    buf_free(in);
}

static void test_size_limits(void **state)
{
    struct pair *p = *state;
    struct buf *out = buf_new(MPROTO_MAX + 16);
    struct buf *in = buf_new(MPROTO_MAX);
    uint8_t *d = NULL;
    uint8_t type = 0;
    int one = 1 << 20;

    assert_non_null(out);
    assert_non_null(in);
    assert_int_equal(
        setsockopt(p->s[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)), 0);
    /* Type + payload = MPROTO_MAX + 1: refused before anything is sent. */
    assert_int_equal(buf_reserve(out, MPROTO_MAX, &d), ERR_OK);
    memset(d, 'a', MPROTO_MAX);
    assert_int_equal(mproto_send(p->s[0], MP_HOSTKEY, out, -1, 0),
                     ERR_TOO_LONG);
    assert_int_equal(fcntl(p->s[1], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(mproto_recv(p->s[1], &type, in, NULL), ERR_IO);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);

    /* Exactly MPROTO_MAX in all is the largest message and arrives whole. */
    assert_int_equal(buf_consume(out, 1), ERR_OK);
    out->data[MPROTO_MAX - 1] = 'z';
    assert_int_equal(mproto_send(p->s[0], MP_HOSTKEY, out, -1, 0), ERR_OK);
    assert_int_equal(mproto_recv(p->s[1], &type, in, NULL), ERR_OK);
    assert_int_equal(type, MP_HOSTKEY);
    assert_int_equal(buf_avail(in), MPROTO_MAX - 1);
    assert_memory_equal(buf_ptr(in), buf_ptr(out), MPROTO_MAX - 1);
    buf_free(out);
    buf_free(in);
}

static void test_oversize_datagram_rejected(void **state)
{
    struct pair *p = *state;
    static uint8_t big[MPROTO_MAX + 1];
    struct buf *in = buf_new(MPROTO_MAX);
    uint8_t type = 0;
    int one = 1 << 20, fd = 123, pfd[2], before;
    char c;

    assert_non_null(in);
    assert_int_equal(
        setsockopt(p->s[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)), 0);
    /* A peer that does not use mproto_send: one byte too many, with a
     * descriptor attached. The message is refused and the fd not kept. */
    assert_int_equal(pipe2(pfd, O_NONBLOCK | O_CLOEXEC), 0);
    memset(big, MP_AUTH_PASSWORD, sizeof(big));
    {
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int))];
        } cm;
        struct iovec iov = {big, sizeof(big)};
        struct msghdr msg;
        struct cmsghdr *cmh;

        memset(&msg, 0, sizeof(msg));
        memset(&cm, 0, sizeof(cm));
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cm.buf;
        msg.msg_controllen = sizeof(cm.buf);
        cmh = CMSG_FIRSTHDR(&msg);
        cmh->cmsg_level = SOL_SOCKET;
        cmh->cmsg_type = SCM_RIGHTS;
        cmh->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmh), &pfd[1], sizeof(int));
        assert_int_equal(sendmsg(p->s[0], &msg, 0), (ssize_t)sizeof(big));
    }
    close(pfd[1]);
    before = count_fds();
    assert_int_equal(mproto_recv(p->s[1], &type, in, &fd), ERR_PROTO);
    assert_int_equal(type, 0);
    assert_int_equal(fd, -1);
    assert_int_equal(buf_avail(in), 0);
    assert_int_equal(count_fds(), before);
    assert_int_equal(read(pfd[0], &c, 1), 0);
    close(pfd[0]);
    buf_free(in);
}

static void test_payload_over_receive_buffer_max(void **state)
{
    struct pair *p = *state;
    struct buf *out = buf_new(0);
    struct buf *in = buf_new(8);
    uint8_t type = 0;
    int fd = 123, pfd[2];
    char c;

    assert_non_null(out);
    assert_non_null(in);
    assert_int_equal(pipe2(pfd, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(buf_put_cstring(out, "longer than eight"), ERR_OK);
    assert_int_equal(mproto_send(p->s[0], MP_HOSTKEY, out, pfd[1], 0), ERR_OK);
    close(pfd[1]);
    /* The caller's buffer sets the limit; on failure the fd is closed. */
    assert_int_equal(mproto_recv(p->s[1], &type, in, &fd), ERR_TOO_LONG);
    assert_int_equal(type, 0);
    assert_int_equal(fd, -1);
    assert_int_equal(buf_avail(in), 0);
    assert_int_equal(read(pfd[0], &c, 1), 0);
    close(pfd[0]);
    buf_free(out);
    buf_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(test_empty_payload, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(test_fd_passing, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(test_two_fds, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(test_unwanted_fd_is_closed, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(test_eof_is_io_with_errno_zero,
                                        setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_io_error_keeps_errno, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(test_size_limits, setup_pair,
                                        teardown_pair),
        cmocka_unit_test_setup_teardown(test_oversize_datagram_rejected,
                                        setup_pair, teardown_pair),
        cmocka_unit_test_setup_teardown(test_payload_over_receive_buffer_max,
                                        setup_pair, teardown_pair),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
