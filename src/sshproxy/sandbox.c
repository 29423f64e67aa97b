/*
 * Privilege drop and seccomp filter for session children; see sandbox.h.
 *
 * Why an allow-list with EACCES rather than "kill on anything unknown":
 * libssh and OpenSSL occasionally probe for files (configuration, home
 * directories) on paths we do not control; a failed probe must end in an
 * error path inside the library, not a dead session. Calls that only an
 * attacker would make (exec, ptrace, process_vm_*) kill the child.
 */
#include "sshproxy/sandbox.h"

#include <errno.h>
#include <sched.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <seccomp.h>

#include "common/err.h"
#include "common/log.h"

int sandbox_prepare(const char *user, const char *data_dir, struct sandbox *sb)
{
    struct passwd *pw;
    struct stat st;

    memset(sb, 0, sizeof(*sb));
    if (geteuid() != 0) {
        return ERR_OK;
    }
    if (user == NULL || user[0] == '\0' || (pw = getpwnam(user)) == NULL) {
        log_error("privsep_user '%s' does not exist", user ? user : "");
        return ERR_CONFIG;
    }
    if (pw->pw_uid == 0) {
        log_error("privsep_user must not be root");
        return ERR_CONFIG;
    }
    sb->drop = true;
    sb->uid = pw->pw_uid;
    sb->gid = pw->pw_gid;
    snprintf(sb->empty_dir, sizeof(sb->empty_dir), "%s/empty", data_dir);
    if (mkdir(sb->empty_dir, 0755) != 0 && errno != EEXIST) {
        log_error("cannot create %s: %s", sb->empty_dir, strerror(errno));
        return ERR_IO;
    }
    if (stat(sb->empty_dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != 0 || (st.st_mode & 022) != 0) {
        log_error("%s must be a directory owned by root and not writable "
                  "by others",
                  sb->empty_dir);
        return ERR_CONFIG;
    }
    return ERR_OK;
}

/* System calls a session child may make once sandboxed. */
static const int sandbox_allowed[] = {
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(recvfrom),
    SCMP_SYS(sendto),
    SCMP_SYS(recvmsg),
    SCMP_SYS(sendmsg),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(select),
    SCMP_SYS(pselect6),
    SCMP_SYS(close),
    SCMP_SYS(shutdown),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(brk),
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    SCMP_SYS(mprotect),
    SCMP_SYS(futex),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(time),
    SCMP_SYS(getrandom),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(sigaltstack),
    SCMP_SYS(alarm),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(getuid),
    SCMP_SYS(geteuid),
    SCMP_SYS(getgid),
    SCMP_SYS(getegid),
    SCMP_SYS(fcntl),
    SCMP_SYS(setsockopt),
    SCMP_SYS(getsockopt),
    SCMP_SYS(getpeername),
    SCMP_SYS(getsockname),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(lseek),
    SCMP_SYS(sched_yield),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(dup),
    SCMP_SYS(fsync),
    SCMP_SYS(fdatasync),
};

/* System calls that only an attacker would make: kill the child. */
static const int sandbox_fatal[] = {
    SCMP_SYS(execve),           SCMP_SYS(execveat),          SCMP_SYS(ptrace),
    SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev),
};

/*
 * ioctl(2) is allowed only for the few requests on sockets a relay may
 * make (no library we use makes any today: strace of ssh, scp and sftp
 * sessions shows none). isatty()'s TCGETS answers "not a terminal".
 * Requests that act on a terminal only an attacker would send: TIOCSTI
 * types into a terminal, TIOCLINUX can paste the console selection,
 * TIOCCONS redirects the console, TIOCSCTTY takes a controlling
 * terminal. Those kill the child, compared on the low 32 bits (the
 * kernel ignores the upper half of the request); anything else fails.
 */
static const unsigned long sandbox_ioctl_allowed[] = {FIONREAD, FIONBIO,
                                                      FIOCLEX, FIONCLEX};
static const unsigned long sandbox_ioctl_fatal[] = {TIOCSTI, TIOCLINUX,
                                                    TIOCCONS, TIOCSCTTY};

static int sandbox_seccomp_ioctl(scmp_filter_ctx ctx)
{
    size_t i;

    for (i = 0;
         i < sizeof(sandbox_ioctl_allowed) / sizeof(sandbox_ioctl_allowed[0]);
         i++) {
        if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                             SCMP_A1(SCMP_CMP_EQ, sandbox_ioctl_allowed[i])) !=
            0) {
            return ERR_INTERNAL;
        }
    }
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOTTY), SCMP_SYS(ioctl), 1,
                         SCMP_A1(SCMP_CMP_EQ, TCGETS)) != 0) {
        return ERR_INTERNAL;
    }
    for (i = 0;
         i < sizeof(sandbox_ioctl_fatal) / sizeof(sandbox_ioctl_fatal[0]);
         i++) {
        if (seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(ioctl), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL,
                                     sandbox_ioctl_fatal[i])) != 0) {
            return ERR_INTERNAL;
        }
    }
    return ERR_OK;
}

/*
 * What an RDP session child needs beyond the list above (docs/rdp.md,
 * "Sandbox"). WinPR, under FreeRDP, implements Windows event objects on
 * eventfd(2) (every wait in the session is on such events, the sockets'
 * included), and asks uname(2) for the host name it puts in the client's
 * info (the result inside the sandbox does not matter).
 */
static const int sandbox_rdp_extra[] = {
    SCMP_SYS(eventfd2),
    SCMP_SYS(uname),
    /* FreeRDP's RemoteFX context starts a thread pool when the target's
     * leg connects (it is made whether or not the relay decodes, which
     * it does not): threads, and what glibc does in a new one */
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(madvise),
};

/*
 * Threads but no processes: clone(2) only with CLONE_THREAD (a fork has
 * no CLONE_THREAD), clone3(2) answered ENOSYS so that glibc falls back
 * to clone(2), whose flags a filter can see. RLIMIT_NPROC cannot do this
 * for RDP children: it counts the tasks of the unprivileged user across
 * every session, so 0 would forbid their threads too.
 */
static int sandbox_seccomp_threads(scmp_filter_ctx ctx)
{
    if (seccomp_rule_add(
            ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
            SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)) != 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) !=
            0) {
        return ERR_INTERNAL;
    }
    /* tgkill(2) of this process's own threads (the thread group is the
     * child's pid, fixed when the filter is loaded) with the one signal
     * the RDP child uses to wake its back leg's thread (docs/rdp.md,
     * "Sandbox"); any other signal, or another process, fails */
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 2,
                         SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()),
                         SCMP_A2(SCMP_CMP_EQ, SANDBOX_RDP_KICK_SIG)) != 0) {
        return ERR_INTERNAL;
    }
    return ERR_OK;
}

static int sandbox_seccomp(const int *extra, size_t nextra, bool threads)
{
    scmp_filter_ctx ctx;
    size_t i;
    int r = ERR_INTERNAL;

    ctx = seccomp_init(SCMP_ACT_ERRNO(EACCES));
    if (ctx == NULL) {
        return ERR_NOMEM;
    }
    for (i = 0; i < sizeof(sandbox_allowed) / sizeof(sandbox_allowed[0]); i++) {
        if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sandbox_allowed[i], 0) != 0) {
            goto out;
        }
    }
    for (i = 0; i < nextra; i++) {
        if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, extra[i], 0) != 0) {
            goto out;
        }
    }
    if (sandbox_seccomp_ioctl(ctx) != ERR_OK ||
        (threads && sandbox_seccomp_threads(ctx) != ERR_OK)) {
        goto out;
    }
    for (i = 0; i < sizeof(sandbox_fatal) / sizeof(sandbox_fatal[0]); i++) {
        if (seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, sandbox_fatal[i], 0) !=
            0) {
            goto out;
        }
    }
    if (seccomp_load(ctx) != 0) {
        goto out;
    }
    r = ERR_OK;
out:
    seccomp_release(ctx);
    return r;
}

static int sandbox_enter_with(const struct sandbox *sb, const int *extra,
                              size_t nextra, bool threads)
{
    struct rlimit zero = {0, 0};

    if (sb->drop) {
        if (chroot(sb->empty_dir) != 0 || chdir("/") != 0) {
            log_error("sandbox: chroot %s: %s", sb->empty_dir, strerror(errno));
            return ERR_DENIED;
        }
        if (setgroups(0, NULL) != 0 ||
            setresgid(sb->gid, sb->gid, sb->gid) != 0 ||
            setresuid(sb->uid, sb->uid, sb->uid) != 0) {
            log_error("sandbox: cannot drop privileges: %s", strerror(errno));
            return ERR_DENIED;
        }
        if (setuid(0) == 0) {
            log_error("sandbox: privileges were not dropped");
            return ERR_DENIED;
        }
    }
    /* No new processes (with threads, the seccomp filter says so). Not
     * RLIMIT_FSIZE: stderr may be a log file. */
    if (!threads && setrlimit(RLIMIT_NPROC, &zero) != 0) {
        log_error("sandbox: setrlimit(NPROC): %s", strerror(errno));
        return ERR_DENIED;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        log_error("sandbox: prctl: %s", strerror(errno));
        return ERR_DENIED;
    }
    if (sandbox_seccomp(extra, nextra, threads) != ERR_OK) {
        log_error("sandbox: cannot load the seccomp filter");
        return ERR_DENIED;
    }
    return ERR_OK;
}

int sandbox_enter(const struct sandbox *sb)
{
    return sandbox_enter_with(sb, NULL, 0, false);
}

int sandbox_enter_rdp(const struct sandbox *sb)
{
    return sandbox_enter_with(
        sb, sandbox_rdp_extra,
        sizeof(sandbox_rdp_extra) / sizeof(sandbox_rdp_extra[0]), true);
}
