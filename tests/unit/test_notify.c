/*
 * Unit tests for src/common/notify.c through a real loop (loop.h): a
 * notice sent by notify_send() reaches the callback with its mask, in
 * order, also several at once; notify_tell() says whether a server took
 * it; malformed datagrams are dropped without
 * stopping later ones; sending with no server (no socket, a stale socket,
 * after close) is not an error; the directory and socket modes; a stale
 * socket is replaced, a live one refused; close removes only its own
 * socket; a data directory too long for a unix socket is refused.
 *
 * Questions (ask.sock): one answered later, from another turn of the
 * loop, reaches its asker; a late answer to an asker that went, or after
 * the socket was closed, is dropped (and its reply freed: the ASan
 * build's leak check); at most NOTIFY_ASK_PENDING replies wait, more
 * questions are dropped unanswered; an oversized question or one from an
 * unbound socket never reaches the owner.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
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
    snprintf(p, sizeof(p), "%s/run/ask.sock", f->dir);
    unlink(p);
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

/* --- questions --- */

#define MAX_ASKS (NOTIFY_ASK_PENDING + 8)

struct afx {
    struct nfx *f;
    struct notify_reply *r[MAX_ASKS];
    char q[MAX_ASKS][32];
    size_t n, want;
};

static void on_ask(void *arg, const char *q, size_t qlen,
                   struct notify_reply *r)
{
    struct afx *a = arg;

    assert_true(a->n < MAX_ASKS);
    assert_int_equal(strlen(q), qlen);
    snprintf(a->q[a->n], sizeof(a->q[a->n]), "%s", q);
    a->r[a->n++] = r;
    if (a->n >= a->want) {
        loop_stop(a->f->loop);
    }
}

/* Runs the loop until the owner holds want questions, or ms passed. */
static void run_asks(struct afx *a, size_t want, int ms)
{
    uint64_t t;

    a->want = want;
    a->f->timed_out = false;
    t = loop_add_timer(a->f->loop, ms, on_timeout, a->f);
    assert_true(t != 0);
    assert_int_equal(loop_run(a->f->loop), ERR_OK);
    if (!a->f->timed_out) {
        loop_del_timer(a->f->loop, t);
    }
}

/* An asker: a socket with an autobound abstract address (bound: true),
 * or none, and its question sent to ask.sock. */
static int asker(const struct nfx *f, bool bound, const void *q, size_t qlen)
{
    struct sockaddr_un sa;
    sa_family_t fam = AF_UNIX;
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

    assert_true(fd >= 0);
    if (bound) {
        assert_int_equal(bind(fd, (struct sockaddr *)&fam, sizeof(fam)), 0);
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/run/ask.sock", f->dir);
    assert_int_equal(sendto(fd, q, qlen, 0, (struct sockaddr *)&sa, sizeof(sa)),
                     (ssize_t)qlen);
    return fd;
}

/* The answer fd got within ms ("" for none). */
static void answer_of(int fd, char *out, size_t outlen, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n;

    out[0] = '\0';
    if (poll(&p, 1, ms) == 1 && (n = recv(fd, out, outlen - 1, 0)) >= 0) {
        out[n] = '\0';
    }
}

static void test_ask_answered_later(void **state)
{
    struct nfx *f = *state;
    struct afx a = {.f = f};
    struct notify *n = NULL;
    char got[64];
    int fd1, fd2;

    assert_int_equal(notify_listen_ask(&n, f->loop, f->dir, on_ask, &a),
                     ERR_OK);
    fd1 = asker(f, true, "one", 3);
    fd2 = asker(f, true, "two", 3);
    run_asks(&a, 2, 2000);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.q[0], "one");
    assert_string_equal(a.q[1], "two");
    assert_int_equal(notify_ask_pending(n), 2);
    /* answered on a later turn, out of order */
    run_asks(&a, 3, 50);
    notify_answer(a.r[1], "second", 6);
    notify_answer(a.r[0], "first", 5);
    assert_int_equal(notify_ask_pending(n), 0);
    answer_of(fd1, got, sizeof(got), 1000);
    assert_string_equal(got, "first");
    answer_of(fd2, got, sizeof(got), 1000);
    assert_string_equal(got, "second");
    close(fd1);
    close(fd2);
    notify_close(n);
}

static void test_ask_asker_gone(void **state)
{
    struct nfx *f = *state;
    struct afx a = {.f = f};
    struct notify *n = NULL;
    char got[64];
    int fd;

    assert_int_equal(notify_listen_ask(&n, f->loop, f->dir, on_ask, &a),
                     ERR_OK);
    fd = asker(f, true, "gone", 4);
    run_asks(&a, 1, 2000);
    assert_int_equal(a.n, 1);
    close(fd); /* its address is unbound now */
    notify_answer(a.r[0], "late", 4);
    assert_int_equal(notify_ask_pending(n), 0);
    /* the socket still answers the next one */
    fd = asker(f, true, "next", 4);
    run_asks(&a, 2, 2000);
    assert_int_equal(a.n, 2);
    notify_answer(a.r[1], "ok", 2);
    answer_of(fd, got, sizeof(got), 1000);
    assert_string_equal(got, "ok");
    close(fd);
    notify_close(n);
}

static void test_ask_closed_with_a_reply_out(void **state)
{
    struct nfx *f = *state;
    struct afx a = {.f = f};
    struct notify *n = NULL;
    char got[64];
    int fd;

    assert_int_equal(notify_listen_ask(&n, f->loop, f->dir, on_ask, &a),
                     ERR_OK);
    fd = asker(f, true, "wait", 4);
    run_asks(&a, 1, 2000);
    assert_int_equal(a.n, 1);
    notify_close(n); /* the reply is still the owner's */
    notify_answer(a.r[0], "late", 4);
    notify_answer(NULL, "x", 1);
    answer_of(fd, got, sizeof(got), 100);
    assert_string_equal(got, "");
    close(fd);
}

static void test_ask_pending_bounded(void **state)
{
    struct nfx *f = *state;
    struct afx a = {.f = f};
    struct notify *n = NULL;
    int fds[NOTIFY_ASK_PENDING + 3];
    size_t i;

    assert_int_equal(notify_listen_ask(&n, f->loop, f->dir, on_ask, &a),
                     ERR_OK);
    for (i = 0; i < NOTIFY_ASK_PENDING + 3; i++) {
        fds[i] = asker(f, true, "q", 1);
        run_asks(&a, i < NOTIFY_ASK_PENDING ? i + 1 : MAX_ASKS,
                 i < NOTIFY_ASK_PENDING ? 2000 : 200);
        if (i >= NOTIFY_ASK_PENDING) {
            break; /* one past the bound is enough to look at */
        }
    }
    /* the one past the bound was read and dropped, never given */
    assert_int_equal(a.n, NOTIFY_ASK_PENDING);
    assert_int_equal(notify_ask_pending(n), NOTIFY_ASK_PENDING);
    for (i = 0; i < a.n; i++) {
        notify_answer(a.r[i], "a", 1);
    }
    assert_int_equal(notify_ask_pending(n), 0);
    /* room again */
    for (i = 0; i <= NOTIFY_ASK_PENDING; i++) {
        close(fds[i]);
    }
    fds[0] = asker(f, true, "again", 5);
    run_asks(&a, NOTIFY_ASK_PENDING + 1, 2000);
    assert_int_equal(a.n, NOTIFY_ASK_PENDING + 1);
    notify_answer(a.r[NOTIFY_ASK_PENDING], NULL, 0);
    close(fds[0]);
    notify_close(n);
}

static void test_ask_malformed_not_given(void **state)
{
    struct nfx *f = *state;
    struct afx a = {.f = f};
    struct notify *n = NULL;
    char *big = calloc(1, NOTIFY_ASK_MAX + 1);
    int fd1, fd2, fd3;

    assert_non_null(big);
    memset(big, 'x', NOTIFY_ASK_MAX + 1);
    assert_int_equal(notify_listen_ask(&n, f->loop, f->dir, on_ask, &a),
                     ERR_OK);
    fd1 = asker(f, true, big, NOTIFY_ASK_MAX + 1); /* one byte too long */
    fd2 = asker(f, false, "unbound", 7);           /* nowhere to answer */
    fd3 = asker(f, true, "fine", 4);
    run_asks(&a, 1, 2000);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.q[0], "fine");
    run_asks(&a, 2, 100);
    assert_int_equal(a.n, 1);
    notify_answer(a.r[0], "ok", 2);
    close(fd1);
    close(fd2);
    close(fd3);
    free(big);
    notify_close(n);
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
        cmocka_unit_test_setup_teardown(test_ask_answered_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ask_asker_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ask_closed_with_a_reply_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ask_pending_bounded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ask_malformed_not_given, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
