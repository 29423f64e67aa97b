/*
 * Unit tests for the pre-authentication limits: the spawner's admission
 * table (src/sshproxy/preauth.c) and the monitor's one state-transition
 * function (monitor_child_state in src/sshproxy/monitor.c).
 *
 * What they pin down: every slot is given back exactly once whichever
 * way a child leaves (authenticated, reaped, both, reported twice), a
 * source's cap holds while other sources still get in, MaxStartups'
 * start:rate:full curve, and that the monitor kills a dead child through
 * its pidfd and counts it out once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/err.h"
#include "sshproxy/monitor.h"
#include "sshproxy/preauth.h"

static struct preauth_src src4(const char *ip)
{
    struct sockaddr_in sin;
    struct preauth_src s;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    preauth_source_of((struct sockaddr *)&sin, sizeof(sin), &s);
    return s;
}

static struct preauth_src src6(const char *ip)
{
    struct sockaddr_in6 sin6;
    struct preauth_src s;

    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
    preauth_source_of((struct sockaddr *)&sin6, sizeof(sin6), &s);
    return s;
}

static struct preauth *table(int start, int rate, int full, int per_source,
                             int max_sessions)
{
    struct preauth_limits l = {start, rate, full, per_source, max_sessions};
    struct preauth *p = preauth_new(&l, 42);

    assert_non_null(p);
    return p;
}

static void test_slot_given_back_once(void **state)
{
    struct preauth *p = table(4, 100, 4, 4, 100);
    struct preauth_src a = src4("127.0.0.2");

    (void)state;
    assert_int_equal(preauth_add(p, 100, &a, 0), ERR_OK);
    assert_int_equal(preauth_add(p, 100, &a, 0), ERR_EXISTS);
    assert_int_equal(preauth_add(p, 101, &a, 0), ERR_OK);
    assert_int_equal(preauth_unauth(p), 2);
    assert_int_equal(preauth_source_count(p, &a), 2);
    /* Authenticated, reported twice: one slot back, the session stays. */
    assert_int_equal(preauth_authed(p, 100), ERR_OK);
    assert_int_equal(preauth_authed(p, 100), ERR_OK);
    assert_int_equal(preauth_unauth(p), 1);
    assert_int_equal(preauth_source_count(p, &a), 1);
    assert_int_equal(preauth_live(p), 2);
    /* Reaped after authenticating: only the session slot. */
    assert_int_equal(preauth_gone(p, 100), ERR_OK);
    assert_int_equal(preauth_unauth(p), 1);
    assert_int_equal(preauth_live(p), 1);
    /* Reaped before authenticating (killed, timed out, crashed). */
    assert_int_equal(preauth_gone(p, 101), ERR_OK);
    assert_int_equal(preauth_unauth(p), 0);
    assert_int_equal(preauth_source_count(p, &a), 0);
    assert_int_equal(preauth_live(p), 0);
    /* Reports about a reaped child change nothing. */
    assert_int_equal(preauth_gone(p, 101), ERR_NOT_FOUND);
    assert_int_equal(preauth_authed(p, 101), ERR_NOT_FOUND);
    assert_int_equal(preauth_unauth(p), 0);
    assert_int_equal(preauth_live(p), 0);
    preauth_free(p);
}

/* Thousands of children that die in every order never leak a slot: the
 * defect was a path that forgot to give one back. */
static void test_no_leak_over_many_lives(void **state)
{
    struct preauth *p = table(8, 100, 8, 8, 100);
    struct preauth_src a = src4("10.0.0.1");

    (void)state;
    for (pid_t pid = 2; pid < 20000; pid++) {
        assert_int_equal(preauth_admit(p, &a, 0), PREAUTH_ACCEPT);
        assert_int_equal(preauth_add(p, pid, &a, pid), ERR_OK);
        if (pid % 3 == 0) {
            assert_int_equal(preauth_authed(p, pid), ERR_OK);
        }
        if (pid % 5 == 0) {
            assert_int_equal(preauth_authed(p, pid), ERR_OK);
        }
        assert_int_equal(preauth_gone(p, pid), ERR_OK);
    }
    assert_int_equal(preauth_unauth(p), 0);
    assert_int_equal(preauth_live(p), 0);
    assert_int_equal(preauth_source_count(p, &a), 0);
    preauth_free(p);
}

static void test_per_source_cap(void **state)
{
    struct preauth *p = table(100, 100, 100, 3, 1000);
    struct preauth_src a = src4("127.0.0.2"), b = src4("127.0.0.3");

    (void)state;
    for (pid_t pid = 10; pid < 13; pid++) {
        assert_int_equal(preauth_admit(p, &a, 0), PREAUTH_ACCEPT);
        assert_int_equal(preauth_add(p, pid, &a, 0), ERR_OK);
    }
    assert_int_equal(preauth_admit(p, &a, 0), PREAUTH_SOURCE);
    assert_int_equal(preauth_admit(p, &a, 99), PREAUTH_SOURCE);
    assert_int_equal(preauth_admit(p, &b, 0), PREAUTH_ACCEPT);
    /* One of a's logs in: a may start another. */
    assert_int_equal(preauth_authed(p, 11), ERR_OK);
    assert_int_equal(preauth_admit(p, &a, 0), PREAUTH_ACCEPT);
    preauth_free(p);
}

static void test_ipv6_counts_per_64(void **state)
{
    struct preauth *p = table(100, 100, 100, 2, 1000);
    struct preauth_src x = src6("2001:db8:1:2::1"),
                       y = src6("2001:db8:1:2::ff");
    struct preauth_src z = src6("2001:db8:1:3::1");
    struct preauth_src m = src6("::ffff:192.0.2.7"), v4 = src4("192.0.2.7");

    (void)state;
    assert_memory_equal(&x, &y, sizeof(x));
    assert_memory_not_equal(&x, &z, sizeof(x));
    assert_memory_equal(&m, &v4, sizeof(m));
    assert_int_equal(preauth_add(p, 1, &x, 0), ERR_OK);
    assert_int_equal(preauth_add(p, 2, &y, 0), ERR_OK);
    assert_int_equal(preauth_admit(p, &x, 0), PREAUTH_SOURCE);
    assert_int_equal(preauth_admit(p, &z, 0), PREAUTH_ACCEPT);
    preauth_free(p);
}

static void test_start_rate_full(void **state)
{
    /* 10:30:20: below 10 all in; at 10, 30% dropped; at 15, 65%; at 20
     * everyone refused. roll is uniform in [0, 100). */
    struct preauth *p = table(10, 30, 20, 1000, 1000);
    struct preauth_src a = src4("192.0.2.1");
    pid_t pid = 1000;

    (void)state;
    for (; pid < 1010; pid++) {
        assert_int_equal(preauth_admit(p, &a, 0), PREAUTH_ACCEPT);
        assert_int_equal(preauth_add(p, pid, &a, 0), ERR_OK);
    }
    assert_int_equal(preauth_admit(p, &a, 29), PREAUTH_DROP);
    assert_int_equal(preauth_admit(p, &a, 30), PREAUTH_ACCEPT);
    for (; pid < 1015; pid++) {
        assert_int_equal(preauth_add(p, pid, &a, 0), ERR_OK);
    }
    assert_int_equal(preauth_admit(p, &a, 64), PREAUTH_DROP);
    assert_int_equal(preauth_admit(p, &a, 65), PREAUTH_ACCEPT);
    for (; pid < 1020; pid++) {
        assert_int_equal(preauth_add(p, pid, &a, 0), ERR_OK);
    }
    assert_int_equal(preauth_admit(p, &a, 99), PREAUTH_FULL);
    /* Authenticated children do not count against MaxStartups... */
    assert_int_equal(preauth_authed(p, 1000), ERR_OK);
    assert_int_equal(preauth_admit(p, &a, 99), PREAUTH_ACCEPT);
    preauth_free(p);
    /* ...but against max_sessions. */
    p = table(10, 100, 10, 10, 2);
    assert_int_equal(preauth_add(p, 1, &a, 0), ERR_OK);
    assert_int_equal(preauth_add(p, 2, &a, 0), ERR_OK);
    assert_int_equal(preauth_authed(p, 1), ERR_OK);
    assert_int_equal(preauth_authed(p, 2), ERR_OK);
    assert_int_equal(preauth_admit(p, &a, 99), PREAUTH_SESSIONS);
    preauth_free(p);
}

static void test_overdue(void **state)
{
    struct preauth *p = table(10, 100, 10, 10, 10);
    struct preauth_src a = src4("192.0.2.1");
    pid_t out[4];

    (void)state;
    assert_int_equal(preauth_add(p, 1, &a, 1000), ERR_OK);
    assert_int_equal(preauth_add(p, 2, &a, 5000), ERR_OK);
    assert_int_equal(preauth_add(p, 3, &a, 1000), ERR_OK);
    assert_int_equal(preauth_authed(p, 3), ERR_OK); /* logged in: fine */
    assert_int_equal(preauth_overdue(p, 3000, 3000, out, 4), 0);
    assert_int_equal(preauth_overdue(p, 4000, 3000, out, 4), 1);
    assert_int_equal(out[0], 1);
    assert_int_equal(preauth_overdue(p, 9000, 3000, out, 4), 2);
    preauth_free(p);
}

/* --- the monitor's transition function --- */

static int authed_calls;
static pid_t authed_pid;

static void on_authed(void *arg, pid_t pid)
{
    (void)arg;
    authed_calls++;
    authed_pid = pid;
}

static void monitor_setup(struct monitor *m, struct config *cfg)
{
    memset(m, 0, sizeof(*m));
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_auth_tries = 6;
    m->cfg = cfg;
    m->on_authed = on_authed;
    authed_calls = 0;
}

static int socket_end(void)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    close(sv[1]);
    return sv[0];
}

static void test_monitor_counts_once(void **state)
{
    struct monitor m;
    struct config cfg;
    struct mchild *a, *b, *c;

    (void)state;
    monitor_setup(&m, &cfg);
    a = monitor_child_new(&m, 11, -1, socket_end(), "127.0.0.2:1");
    b = monitor_child_new(&m, 12, -1, socket_end(), "127.0.0.2:2");
    c = monitor_child_new(&m, 13, -1, socket_end(), "127.0.0.2:3");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_int_equal(m.preauth, 3);
    /* a: TOTP pending, a wrong code starts over, then in. */
    assert_int_equal(monitor_child_state(&m, a, MC_NEED_TOTP), ERR_OK);
    assert_int_equal(monitor_child_state(&m, a, MC_PREAUTH), ERR_OK);
    assert_int_equal(m.preauth, 3);
    assert_int_equal(monitor_child_state(&m, a, MC_AUTHED), ERR_OK);
    assert_int_equal(m.preauth, 2);
    assert_int_equal(authed_calls, 1);
    assert_int_equal(authed_pid, 11);
    /* An authenticated child cannot go back before authentication. */
    assert_int_equal(monitor_child_state(&m, a, MC_PREAUTH), ERR_INTERNAL);
    assert_int_equal(monitor_child_state(&m, a, MC_AUTHED), ERR_INTERNAL);
    assert_int_equal(m.preauth, 2);
    assert_int_equal(authed_calls, 1);
    /* b: a reply it never read (the defect): dead, counted out once. */
    assert_int_equal(monitor_child_state(&m, b, MC_DEAD), ERR_OK);
    assert_int_equal(m.preauth, 1);
    assert_int_equal(monitor_child_state(&m, b, MC_DEAD), ERR_INTERNAL);
    assert_int_equal(m.preauth, 1);
    /* c: too many failures, then reaped. */
    assert_int_equal(monitor_child_state(&m, c, MC_AUTH_ENDED), ERR_OK);
    assert_int_equal(m.preauth, 1);
    assert_int_equal(monitor_child_state(&m, c, MC_AUTHED), ERR_INTERNAL);
    /* Reaped in any state: gone, nothing counted twice. */
    monitor_child_exit(&m, 11, 0);
    monitor_child_exit(&m, 12, SIGKILL);
    monitor_child_exit(&m, 13, 0);
    monitor_child_exit(&m, 13, 0); /* a second report: nothing */
    assert_int_equal(m.preauth, 0);
    assert_null(m.children);
    assert_int_equal(authed_calls, 1);
}

/* A dead child is killed through its pidfd; after it was reaped the
 * pidfd names no process, whatever got its pid since. */
static void test_monitor_kills_by_pidfd(void **state)
{
    struct monitor m;
    struct config cfg;
    struct mchild *c;
    int status = 0, pidfd;
    pid_t pid;

    (void)state;
    monitor_setup(&m, &cfg);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (;;) {
            pause();
        }
    }
    pidfd = pidfd_open(pid, 0);
    assert_true(pidfd >= 0);
    c = monitor_child_new(&m, pid, pidfd, socket_end(), "127.0.0.1:9");
    assert_non_null(c);
    assert_int_equal(monitor_child_state(&m, c, MC_DEAD), ERR_OK);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    monitor_child_exit(&m, pid, status);
    assert_int_equal(m.preauth, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_given_back_once),
        cmocka_unit_test(test_no_leak_over_many_lives),
        cmocka_unit_test(test_per_source_cap),
        cmocka_unit_test(test_ipv6_counts_per_64),
        cmocka_unit_test(test_start_rate_full),
        cmocka_unit_test(test_overdue),
        cmocka_unit_test(test_monitor_counts_once),
        cmocka_unit_test(test_monitor_kills_by_pidfd),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
