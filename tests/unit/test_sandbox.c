/*
 * The session child's sandbox: after sandbox_enter() a process cannot
 * open files, create sockets or exec, and can still use the descriptors
 * it already holds. Each case runs in a forked process, because the
 * sandbox cannot be left once entered.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "sshproxy/sandbox.h"

static char test_dir[] = "/tmp/pc-sandbox-XXXXXX";

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(test_dir) == NULL) {
        return -1;
    }
    chmod(test_dir, 0755);
    return 0;
}

static int teardown(void **state)
{
    char p[256];

    (void)state;
    snprintf(p, sizeof(p), "%s/empty", test_dir);
    rmdir(p);
    rmdir(test_dir);
    return 0;
}

/* Runs fn in a child sandboxed by enter; reads outlen bytes it wrote into
 * out (the first int -1 if it wrote fewer); returns its wait status. */
static int run_sandboxed_as(int (*enter)(const struct sandbox *),
                            int (*fn)(int wfd), int *out, size_t outlen)
{
    struct sandbox sb;
    int p[2], status = 0;
    pid_t pid;

    assert_int_equal(sandbox_prepare("nobody", test_dir, &sb), ERR_OK);
    assert_int_equal(pipe(p), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        if (enter(&sb) != ERR_OK) {
            _exit(100);
        }
        _exit(fn(p[1]));
    }
    close(p[1]);
    out[0] = 0;
    if (read(p[0], out, outlen) != (ssize_t)outlen) {
        out[0] = -1;
    }
    close(p[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* Runs fn in a sandboxed (SSH) child; returns its wait status. */
static int run_sandboxed(int (*fn)(int wfd), int *out)
{
    return run_sandboxed_as(sandbox_enter, fn, out, sizeof(*out));
}

static int try_open(int wfd)
{
    int fd = open("/etc/passwd", O_RDONLY);
    int e = fd < 0 ? errno : 0;

    (void)!write(wfd, &e, sizeof(e));
    return fd < 0 ? 0 : 1;
}

static int try_create(int wfd)
{
    int fd = open("/tmp/pc-sandbox-should-not-exist",
                  O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = fd < 0 ? errno : 0;

    (void)!write(wfd, &e, sizeof(e));
    return fd < 0 ? 0 : 1;
}

static int try_socket(int wfd)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int e = fd < 0 ? errno : 0;

    (void)!write(wfd, &e, sizeof(e));
    return fd < 0 ? 0 : 1;
}

static int try_exec(int wfd)
{
    static char prog[] = "/bin/true";
    char *argv[] = {prog, NULL};
    int e = 0;

    (void)!write(wfd, &e, sizeof(e));
    execv(prog, argv);
    return 2; /* exec returned: the filter did not kill us */
}

static int try_memory(int wfd)
{
    /* What a relay needs keeps working: allocation and held descriptors. */
    char *big = malloc(8 << 20);
    int ok = big != NULL;

    if (big != NULL) {
        memset(big, 1, 8 << 20);
        free(big);
    }
    (void)!write(wfd, &ok, sizeof(ok));
    return ok ? 0 : 1;
}

/* A terminal the sandboxed process holds from before the sandbox, as a
 * child once held the server's terminal on fds 0-2. */
static int test_tty = -1, test_tty_master = -1;
static int test_pipe[2] = {-1, -1}; /* holds "abc" */

static void open_tty(void)
{
    char *name;

    test_tty_master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(test_tty_master >= 0);
    assert_int_equal(grantpt(test_tty_master), 0);
    assert_int_equal(unlockpt(test_tty_master), 0);
    name = ptsname(test_tty_master);
    assert_non_null(name);
    test_tty = open(name, O_RDWR | O_NOCTTY);
    assert_true(test_tty >= 0);
    assert_int_equal(pipe(test_pipe), 0);
    assert_int_equal(write(test_pipe[1], "abc", 3), 3);
}

static void close_tty(void)
{
    close(test_tty);
    close(test_tty_master);
    close(test_pipe[0]);
    close(test_pipe[1]);
    test_tty = test_tty_master = test_pipe[0] = test_pipe[1] = -1;
}

static int try_tiocsti(int wfd)
{
    char c = 'x';
    int e = 0;

    (void)!write(wfd, &e, sizeof(e));
    (void)ioctl(test_tty, TIOCSTI, &c);
    return 2; /* the filter did not kill us */
}

static int try_tiocsti_high_bits(int wfd)
{
    char c = 'x';
    int e = 0;

    (void)!write(wfd, &e, sizeof(e));
    /* The kernel reads only the low 32 bits of the request. */
    (void)ioctl(test_tty, (unsigned long)TIOCSTI | (1UL << 32), &c);
    return 2;
}

/* Other terminal requests fail; isatty() says "not a terminal"; what a
 * relay may ask of a socket or pipe still works. */
static int try_other_ioctls(int wfd)
{
    struct winsize ws;
    int n = -1, e = 0;

    if (ioctl(test_tty, TIOCGWINSZ, &ws) == 0 || errno != EACCES) {
        e = 1;
    } else if (isatty(test_tty) || errno != ENOTTY) {
        e = 2;
    } else if (ioctl(test_pipe[0], FIONREAD, &n) != 0 || n != 3) {
        e = 3;
    }
    (void)!write(wfd, &e, sizeof(e));
    return 0;
}

static void test_tiocsti_kills(void **state)
{
    int e = -1, st;

    (void)state;
    open_tty();
    st = run_sandboxed(try_tiocsti, &e);
    close_tty();
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSYS);
}

static void test_tiocsti_with_high_bits_kills(void **state)
{
    int e = -1, st;

    (void)state;
    open_tty();
    st = run_sandboxed(try_tiocsti_high_bits, &e);
    close_tty();
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSYS);
}

static void test_other_ioctls_refused(void **state)
{
    int e = -1, st;

    (void)state;
    open_tty();
    st = run_sandboxed(try_other_ioctls, &e);
    close_tty();
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(e, 0);
}

static void test_open_refused(void **state)
{
    int e = -1, st = run_sandboxed(try_open, &e);

    (void)state;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(e, EACCES);
}

static void test_create_refused(void **state)
{
    int e = -1, st = run_sandboxed(try_create, &e);

    (void)state;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(e, EACCES);
    assert_int_equal(access("/tmp/pc-sandbox-should-not-exist", F_OK), -1);
}

static void test_socket_refused(void **state)
{
    int e = -1, st = run_sandboxed(try_socket, &e);

    (void)state;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(e, EACCES);
}

static void test_exec_kills(void **state)
{
    int e = -1, st = run_sandboxed(try_exec, &e);

    (void)state;
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSYS);
}

static void test_memory_and_pipes_work(void **state)
{
    int ok = 0, st = run_sandboxed(try_memory, &ok);

    (void)state;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(ok, 1);
}

static void test_prepare_rejects_unknown_user(void **state)
{
    struct sandbox sb;

    (void)state;
    if (geteuid() != 0) {
        skip();
    }
    assert_int_equal(sandbox_prepare("no-such-user-pc", test_dir, &sb),
                     ERR_CONFIG);
    assert_int_equal(sandbox_prepare("root", test_dir, &sb), ERR_CONFIG);
}

static void on_urg(int sig)
{
    (void)sig;
}

/* An RDP child may tgkill its own threads with SANDBOX_RDP_KICK_SIG
 * (rdp_child.c wakes its back leg's thread so); any other signal, or
 * another process, fails with EACCES. Writes the three results. */
static int try_tgkill(int wfd)
{
    int r[3];

    signal(SANDBOX_RDP_KICK_SIG, on_urg);
    signal(SIGUSR1, SIG_IGN);
    r[0] = syscall(SYS_tgkill, getpid(), gettid(), SANDBOX_RDP_KICK_SIG) == 0
               ? 0
               : errno;
    r[1] = syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1) == 0 ? 0 : errno;
    /* the parent (the test), its main thread */
    r[2] = syscall(SYS_tgkill, getppid(), getppid(), SANDBOX_RDP_KICK_SIG) == 0
               ? 0
               : errno;
    (void)!write(wfd, r, sizeof(r));
    return 0;
}

static int try_tgkill_ssh(int wfd)
{
    int e;

    signal(SANDBOX_RDP_KICK_SIG, on_urg);
    e = syscall(SYS_tgkill, getpid(), gettid(), SANDBOX_RDP_KICK_SIG) == 0
            ? 0
            : errno;
    (void)!write(wfd, &e, sizeof(e));
    return 0;
}

static void test_rdp_tgkill_own_threads_kick_only(void **state)
{
    int r[3] = {-1, -1, -1}, status;

    (void)state;
    status = run_sandboxed_as(sandbox_enter_rdp, try_tgkill, r, sizeof(r));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(r[0], 0);
    assert_int_equal(r[1], EACCES);
    assert_int_equal(r[2], EACCES);
}

/* An SSH child may not signal at all. */
static void test_ssh_tgkill_refused(void **state)
{
    int e = -1, status;

    (void)state;
    status = run_sandboxed(try_tgkill_ssh, &e);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(e, EACCES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_refused),
        cmocka_unit_test(test_create_refused),
        cmocka_unit_test(test_socket_refused),
        cmocka_unit_test(test_exec_kills),
        cmocka_unit_test(test_memory_and_pipes_work),
        cmocka_unit_test(test_tiocsti_kills),
        cmocka_unit_test(test_tiocsti_with_high_bits_kills),
        cmocka_unit_test(test_other_ioctls_refused),
        cmocka_unit_test(test_prepare_rejects_unknown_user),
        cmocka_unit_test(test_rdp_tgkill_own_threads_kick_only),
        cmocka_unit_test(test_ssh_tgkill_refused),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
