/*
 * Unit tests for src/common/notify.c through a real loop (loop.h): a
 * notice sent by notify_send() reaches the callback with its mask, in
 * order, also several at once; notify_tell() says whether a server took
 * it; malformed datagrams are dropped without
 * stopping later ones; sending with no server (no socket, a stale socket,
 * after close) is not an error; the directory and socket modes; a stale
 * socket is replaced, a live one refused; close removes only its own
 * socket; a data directory too long for a unix socket is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/err.h"
#include "common/loop.h"
#include "common/notify.h"

#define MAX_GOT 16

struct nfx {
    char dir[64];
    char sock[96];
    struct loop *loop;
    unsigned got[MAX_GOT];
    size_t ngot, want;
    bool timed_out;
};

static int setup(void **state)
{
    struct nfx *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_notify.XXXXXX");
    if (mkdtemp(f->dir) == NULL || (f->loop = loop_new()) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->sock, sizeof(f->sock), "%s/run/notify.sock", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct nfx *f = *state;
    char p[128];

    loop_free(f->loop);
    unlink(f->sock);
    snprintf(p, sizeof(p), "%s/run", f->dir);
    rmdir(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void on_notice(void *arg, unsigned what)
{
    struct nfx *f = arg;

    if (f->ngot < MAX_GOT) {
        f->got[f->ngot] = what;
    }
    f->ngot++;
    if (f->ngot >= f->want) {
        loop_stop(f->loop);
    }
}

static void on_timeout(struct loop *l, void *arg)
{
    struct nfx *f = arg;

    f->timed_out = true;
    loop_stop(l);
}

/* Runs the loop until `want` notices arrived, or 2 s passed. */
static void run_until(struct nfx *f, size_t want)
{
    uint64_t t;

    f->want = want;
    t = loop_add_timer(f->loop, 2000, on_timeout, f);
    assert_true(t != 0);
    assert_int_equal(loop_run(f->loop), ERR_OK);
    if (!f->timed_out) {
        loop_del_timer(f->loop, t);
    }
}

/* Sends raw bytes to the socket, as anyone with access could. */
static void send_raw(const struct nfx *f, const void *data, size_t len)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
    assert_int_equal(
        sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof(sa)),
        (ssize_t)len);
    close(fd);
}

static void test_send_receive(void **state)
{
    struct nfx *f = *state;
    struct notify *n = NULL;
    struct stat sb;
    bool delivered = false;
    char p[128];

    assert_int_equal(notify_listen(&n, f->loop, f->dir, on_notice, f), ERR_OK);
    assert_int_equal(stat(f->sock, &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(p, sizeof(p), "%s/run", f->dir);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    assert_int_equal(notify_send(f->dir, 2), ERR_OK);
    run_until(f, 1);
    assert_false(f->timed_out);
    assert_int_equal(f->ngot, 1);
    assert_int_equal(f->got[0], 2);

    /* several before the loop runs: each arrives, in order */
    f->ngot = 0;
    assert_int_equal(notify_send(f->dir, 1), ERR_OK);
    assert_int_equal(notify_send(f->dir, 4 | 2), ERR_OK);
    assert_int_equal(notify_send(f->dir, 7), ERR_OK);
    run_until(f, 3);
    assert_false(f->timed_out);
    assert_int_equal(f->ngot, 3);
    assert_int_equal(f->got[0], 1);
    assert_int_equal(f->got[1], 6);
    assert_int_equal(f->got[2], 7);

    /* notify_tell says whether a server took it */
    f->ngot = 0;
    assert_int_equal(notify_tell(f->dir, 2, &delivered), ERR_OK);
    assert_true(delivered);
    run_until(f, 1);
    assert_int_equal(f->got[0], 2);

    notify_close(n);
    /* close removed the socket; sending now is not an error */
    assert_int_equal(stat(f->sock, &sb), -1);
    assert_int_equal(notify_send(f->dir, 2), ERR_OK);
    assert_int_equal(notify_tell(f->dir, 2, &delivered), ERR_OK);
    assert_false(delivered);
}

static void test_malformed_dropped(void **state)
{
    struct nfx *f = *state;
    struct notify *n = NULL;
    static const char *const bad[] = {"abc",         "12 ",        "-1", "+4",
                                      "99999999999", "4294967296", "1\n"};

    assert_int_equal(notify_listen(&n, f->loop, f->dir, on_notice, f), ERR_OK);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        send_raw(f, bad[i], strlen(bad[i]));
    }
    send_raw(f, "", 0);
    send_raw(f, "0123456789012345678901234567890123456789", 40);
    send_raw(f, "4294967295", 10);
    send_raw(f, "4", 1);
    run_until(f, 2);
    assert_false(f->timed_out);
    assert_int_equal(f->ngot, 2);
    assert_int_equal(f->got[0], 4294967295u);
    assert_int_equal(f->got[1], 4);
    notify_close(n);
}

static void test_no_server(void **state)
{
    struct nfx *f = *state;
    struct sockaddr_un sa;
    struct notify *n = NULL;
    char p[128];
    int fd;

    /* no run directory at all */
    assert_int_equal(notify_send(f->dir, 1), ERR_OK);
    assert_int_equal(notify_send("/nonexistent/portcullis", 1), ERR_OK);

    /* a stale socket left by a crashed server: sending is fine, and a
     * new server replaces it */
    snprintf(p, sizeof(p), "%s/run", f->dir);
    assert_int_equal(mkdir(p, 0755), 0);
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(notify_send(f->dir, 1), ERR_OK);
    assert_int_equal(notify_listen(&n, f->loop, f->dir, on_notice, f), ERR_OK);
    assert_int_equal(notify_send(f->dir, 2), ERR_OK);
    run_until(f, 1);
    assert_false(f->timed_out);
    assert_int_equal(f->got[0], 2);
    notify_close(n);
}

static void test_second_listener(void **state)
{
    struct nfx *f = *state;
    struct notify *n = NULL, *n2 = NULL;
    struct stat sb;

    assert_int_equal(notify_listen(&n, f->loop, f->dir, on_notice, f), ERR_OK);
    assert_int_equal(notify_listen(&n2, f->loop, f->dir, on_notice, f),
                     ERR_EXISTS);
    assert_null(n2);
    /* the first still works */
    assert_int_equal(notify_send(f->dir, 4), ERR_OK);
    run_until(f, 1);
    assert_false(f->timed_out);
    assert_int_equal(f->got[0], 4);

    /* a socket that replaced ours is not removed by our close */
    assert_int_equal(unlink(f->sock), 0);
    assert_int_equal(notify_listen(&n2, f->loop, f->dir, on_notice, f), ERR_OK);
    notify_close(n);
    assert_int_equal(stat(f->sock, &sb), 0);
    notify_close(n2);
    assert_int_equal(stat(f->sock, &sb), -1);
}

static void test_bad_arguments(void **state)
{
    struct nfx *f = *state;
    struct notify *n = NULL;
    char longdir[200];

    memset(longdir, 'd', sizeof(longdir) - 1);
    longdir[0] = '/';
    longdir[sizeof(longdir) - 1] = '\0';
    assert_int_equal(notify_send(longdir, 1), ERR_TOO_LONG);
    assert_int_equal(notify_listen(&n, f->loop, longdir, on_notice, f),
                     ERR_TOO_LONG);
    assert_int_equal(notify_send("", 1), ERR_INVALID);
    assert_int_equal(notify_listen(&n, f->loop, f->dir, NULL, f), ERR_INVALID);
    assert_null(n);
    notify_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_receive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_listener, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
