/*
 * The spawner both proxies share, and the main process's end of the link
 * to it (spawner.h says what differs between the proxies and in which
 * order they call these).
 *
 * Two long-lived processes per proxy:
 *
 *  - The spawner is forked before the store or the vault key are opened,
 *    so the session children it forks inherit neither. It owns the
 *    listening socket: it accepts, asks the admission table (preauth.h)
 *    whether the connection may have a child, makes a monitor
 *    socketpair, forks a session child, and hands the main process the
 *    other end of the socketpair and a pidfd of the child (SCM_RIGHTS,
 *    MP_SPAWN_NEW) with the child's pid and address. It reaps children
 *    and reports their exit (MP_SPAWN_EXIT), and kills children still
 *    before authentication well past their login grace time.
 *  - The main process hands each new child to the monitor, reports each
 *    exit to it, and tells the spawner when a child has logged in
 *    (MP_SPAWN_AUTHED), which gives back its pre-authentication slot.
 */
#include "sshproxy/spawner.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "sshproxy/monitor.h"
#include "sshproxy/mproto.h"

/* A child still before authentication this long after its login grace
 * time has stopped its own timer (a compromised child may): killed. */
#define SPAWNER_GRACE_SLACK_MS 5000
/* At most one log line per this many ms about refused connections. */
#define SPAWNER_REFUSE_LOG_MS 10000
/* Refused connections kept open (reading and discarding) until the
 * client has read why and closed, at most this many and this long. */
#define SPAWNER_LINGER_MAX 128
#define SPAWNER_LINGER_MS 2000
/* out of descriptors: accept() is tried again after this long */
#define SPAWNER_EMFILE_PAUSE_MS 100
#define SPAWNER_EMFILE_LOG_MS 10000
/* at start, how long a port in use is waited for (spawner_listen) */
#define SPAWNER_BUSY_WAIT_MS 5000

struct spawner {
    const struct spawner_ops *ops;
    void *arg; /* for ops' callbacks */
    const struct config *cfg;
    int listen_fd;       /* until the spawner has it, -1 after */
    int link;            /* the main process's end (the spawner's in the
                            spawner), -1 if none */
    pid_t pid;           /* the spawner; 0 if none, or reaped */
    struct loop *loop;   /* once attached */
    struct monitor *mon; /* once attached */
    struct buf *msg;     /* the link's messages (in either process) */
    int result;
    /* children that logged in, not yet told to the spawner (its link was
     * full); sent as soon as it is writable */
    pid_t *authed;
    size_t nauthed, authed_cap;
};

/* --- the spawner process --- */

struct spawner_linger {
    int fd;
    int64_t until; /* util_mono_ms() */
};

/* The spawner process's own state; sp is its copy of the main process's
 * object (listen_fd and link are its descriptors there). */
struct spawner_proc {
    struct spawner *sp;
    int sig_fd;               /* SIGCHLD, SIGTERM, SIGINT */
    struct preauth *admit;    /* every child not yet reaped (preauth.h) */
    struct log_limit refused; /* connections refused (log.h) */
    enum preauth_verdict refused_why;
    struct spawner_linger linger[SPAWNER_LINGER_MAX];
    int nlinger;
    /* out of descriptors: the listener is not polled until then (it
     * stays readable, and polling it would spin), and one log line per
     * SPAWNER_EMFILE_LOG_MS says how often accept() failed */
    int64_t accept_paused_until;
    struct log_limit emfile;
};

static void spawner_addr_str(const struct sockaddr_storage *ss, char *out,
                             size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        port = ntohs(sin->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        port = ntohs(sin6->sin6_port);
    }
    snprintf(out, outlen, "%s:%d", host, port);
}

/*
 * Ends a connection that gets no child but is told why (ops->refusal).
 * Closing a socket while the client's bytes (for SSH its identification,
 * then its KEXINIT) are unread makes the kernel answer with a reset, and
 * a reset throws away the refusal the client has not read yet. So a
 * refused connection is half-closed and kept, its input discarded, until
 * the client closes it or SPAWNER_LINGER_MS pass; when SPAWNER_LINGER_MAX
 * are kept already (a flood), it is closed at once.
 */
static void spawner_linger_drop(struct spawner_proc *p, int i)
{
    close(p->linger[i].fd);
    p->linger[i] = p->linger[--p->nlinger];
}

static void spawner_linger_read(struct spawner_proc *p, int i)
{
    char scratch[4096];
    ssize_t n;

    while ((n = recv(p->linger[i].fd, scratch, sizeof(scratch), MSG_DONTWAIT)) >
           0) {
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        spawner_linger_drop(p, i);
    }
}

/* Logs a summary now and then (one line per refused connection would
 * let a flood fill the log). */
static void spawner_refuse(struct spawner_proc *p, int fd, const char *addr,
                           enum preauth_verdict v)
{
    const struct spawner_ops *ops = p->sp->ops;
    int64_t now = util_mono_ms();
    uint8_t msg[256];
    uint64_t said;
    size_t n;

    if (ops->refusal == NULL) {
        close(fd);
    } else {
        if ((n = ops->refusal(v, msg, sizeof(msg))) > 0) {
            (void)send(fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        if (p->nlinger < SPAWNER_LINGER_MAX && shutdown(fd, SHUT_WR) == 0) {
            p->linger[p->nlinger].fd = fd;
            p->linger[p->nlinger].until = now + SPAWNER_LINGER_MS;
            spawner_linger_read(p, p->nlinger++);
        } else {
            close(fd);
        }
    }
    p->refused_why = v;
    if ((said = log_limit_take(&p->refused, now, SPAWNER_REFUSE_LOG_MS)) > 0) {
        log_warn("%srefused %llu connection(s) before forking (last: %s: %s; "
                 "%d unauthenticated, %d in all)",
                 ops->log_prefix, (unsigned long long)said, addr,
                 preauth_verdict_str(p->refused_why), preauth_unauth(p->admit),
                 preauth_live(p->admit));
    }
}

/* In the forked child: drops what belongs to the spawner, then runs it. */
static void spawner_child(struct spawner_proc *p, int fd, int monitor_fd,
                          int other_end, const char *addr)
{
    struct spawner *sp = p->sp;
    sigset_t none;

    close(sp->listen_fd);
    close(sp->link);
    close(p->sig_fd);
    close(other_end);
    for (int i = 0; i < p->nlinger; i++) {
        close(p->linger[i].fd);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    /* _exit: no atexit handlers from the parent's libraries. */
    _exit(sp->ops->run_child(sp->arg, fd, monitor_fd, addr));
}

/* Accepts one connection; returns false when there is none waiting. */
static bool spawner_accept(struct spawner_proc *p)
{
    struct spawner *sp = p->sp;
    const char *child = sp->ops->child_noun;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct preauth_src src;
    enum preauth_verdict v;
    char addr[64];
    struct buf *b = p->sp->msg;
    int fd, pair[2], fds[2], pidfd;
    pid_t pid;

    fd = accept4(sp->listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
            int64_t now = util_mono_ms();
            int e = errno;
            uint64_t n;

            p->accept_paused_until = now + SPAWNER_EMFILE_PAUSE_MS;
            n = log_limit_take(&p->emfile, now, SPAWNER_EMFILE_LOG_MS);
            if (n > 0) {
                log_error("%saccept: %s (%llu time(s)); new connections "
                          "wait in the listen queue",
                          sp->ops->log_prefix, strerror(e),
                          (unsigned long long)n);
            }
            errno = e;
        }
        return errno == ECONNABORTED || errno == EINTR;
    }
    spawner_addr_str(&ss, addr, sizeof(addr));
    /* Decided before fork: a refused connection costs no process. */
    preauth_source_of((struct sockaddr *)&ss, sslen, &src);
    v = preauth_admit(p->admit, &src, randombytes_uniform(100));
    if (v != PREAUTH_ACCEPT) {
        spawner_refuse(p, fd, addr, v);
        return true;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        log_error("socketpair: %s", strerror(errno));
        close(fd);
        return true;
    }
    pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        close(fd);
        close(pair[0]);
        close(pair[1]);
        return true;
    }
    if (pid == 0) {
        spawner_child(p, fd, pair[1], pair[0], addr); /* never returns */
    }
    close(fd);
    close(pair[1]);
    /*
     * The pidfd is opened here, before this process can have reaped the
     * child, so it names this child and no later process with a reused
     * pid; the main process signals only through it.
     */
    pidfd = pidfd_open(pid, 0);
    if (pidfd < 0 ||
        preauth_add(p->admit, pid, &src, util_mono_ms()) != ERR_OK) {
        log_error("cannot track %s %ld: %s", child, (long)pid,
                  pidfd < 0 ? strerror(errno) : "out of memory");
        kill(pid, SIGKILL); /* not reaped yet: still ours */
        (void)preauth_gone(p->admit, pid);
        if (pidfd >= 0) {
            close(pidfd);
        }
        close(pair[0]);
        return true;
    }
    fds[0] = pair[0];
    fds[1] = pidfd;
    buf_reset(b);
    if (buf_put_u32(b, (uint32_t)pid) != ERR_OK ||
        buf_put_cstring(b, addr) != ERR_OK ||
        mproto_send_fds(sp->link, MP_SPAWN_NEW, b, fds, 2, 0) != ERR_OK) {
        log_error("cannot hand %s %ld to the main process", child, (long)pid);
        kill(pid, SIGKILL); /* its slot comes back when it is reaped */
    }
    close(pidfd);
    close(pair[0]);
    return true;
}

/* Reaping is the ground truth: whatever a child held comes back here. */
static void spawner_reap(struct spawner_proc *p)
{
    struct buf *b = p->sp->msg;
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        (void)preauth_gone(p->admit, pid);
        buf_reset(b);
        if (buf_put_u32(b, (uint32_t)pid) != ERR_OK ||
            buf_put_u32(b, (uint32_t)status) != ERR_OK ||
            mproto_send(p->sp->link, MP_SPAWN_EXIT, b, -1, 0) != ERR_OK) {
            log_warn("cannot report the exit of %s %ld", p->sp->ops->child_noun,
                     (long)pid);
        }
    }
}

/* A message from the main process; false when it is gone. */
static bool spawner_on_link(struct spawner_proc *p)
{
    uint32_t pid = 0;
    uint8_t type = 0;

    struct buf *b = p->sp->msg;

    if (mproto_recv(p->sp->link, &type, b, NULL) != ERR_OK) {
        return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    if (type == MP_SPAWN_AUTHED && buf_get_u32(b, &pid) == ERR_OK &&
        buf_expect_end(b) == ERR_OK) {
        (void)preauth_authed(p->admit, (pid_t)pid);
    } else {
        log_warn("unexpected message %u from the main process", type);
    }
    return true;
}

/* Kills children still before authentication well past their login grace
 * time: their own timer should have ended them. They are not reaped yet
 * (reaping removes them from the table), so their pids are still ours. */
static void spawner_overdue(struct spawner_proc *p)
{
    pid_t pids[64];
    size_t n = preauth_overdue(p->admit, util_mono_ms(),
                               (int64_t)p->sp->cfg->login_grace_seconds * 1000 +
                                   SPAWNER_GRACE_SLACK_MS,
                               pids, sizeof(pids) / sizeof(pids[0]));

    for (size_t i = 0; i < n; i++) {
        log_warn("%s %ld outlived its login grace time; killing it",
                 p->sp->ops->child_noun, (long)pids[i]);
        kill(pids[i], SIGKILL);
    }
}

static int spawner_run(struct spawner_proc *p)
{
    struct spawner *sp = p->sp;
    struct signalfd_siginfo si;
    struct pollfd pfd[3 + SPAWNER_LINGER_MAX];
    int accepted, timeout, nl, i;
    int64_t now;
    pid_t pid;

    for (;;) {
        int64_t paused = p->accept_paused_until - util_mono_ms();

        pfd[0].fd = sp->listen_fd;
        pfd[0].events = paused > 0 ? 0 : POLLIN;
        pfd[1].fd = sp->link;
        pfd[1].events = POLLIN;
        pfd[2].fd = p->sig_fd;
        pfd[2].events = POLLIN;
        nl = p->nlinger;
        for (i = 0; i < nl; i++) {
            pfd[3 + i].fd = p->linger[i].fd;
            pfd[3 + i].events = POLLIN;
        }
        timeout = nl > 0 ? 200 : preauth_unauth(p->admit) > 0 ? 1000 : -1;
        if (paused > 0 && (timeout < 0 || paused < timeout)) {
            timeout = (int)paused;
        }
        if (poll(pfd, (nfds_t)(3 + nl), timeout) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (pfd[2].revents & POLLIN) {
            if (read(p->sig_fd, &si, sizeof(si)) == sizeof(si) &&
                si.ssi_signo != SIGCHLD) {
                break;
            }
            spawner_reap(p);
        }
        if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !spawner_on_link(p)) {
            break; /* the main process is gone */
        }
        /* Backwards: dropping entry i moves the last one into its place. */
        now = util_mono_ms();
        for (i = nl - 1; i >= 0; i--) {
            if (pfd[3 + i].revents != 0) {
                spawner_linger_read(p, i);
            } else if (now >= p->linger[i].until) {
                spawner_linger_drop(p, i);
            }
        }
        if (pfd[0].revents & POLLIN) {
            for (accepted = 0; accepted < sp->ops->accept_batch; accepted++) {
                if (!spawner_accept(p)) {
                    break;
                }
            }
        }
        spawner_overdue(p);
    }
    /* The port first: a server started again at once (after a crash of
     * the main process, or by a supervisor) must find it free, even while
     * sessions below take their time to end, or never do (a stopped
     * child keeps this loop's waitpid for as long as it is stopped). */
    close(sp->listen_fd);
    sp->listen_fd = -1;
    /* End every session: they cannot work without the main process. */
    signal(SIGTERM, SIG_IGN);
    kill(0, SIGTERM);
    while (preauth_live(p->admit) > 0 && (pid = waitpid(-1, NULL, 0)) > 0) {
        (void)preauth_gone(p->admit, pid);
    }
    return 0;
}

/* The spawner process from its fork on; never returns. */
static void spawner_main(struct spawner *sp, int sig_fd)
{
    const struct config *cfg = sp->cfg;
    struct preauth_limits lim = {
        .start = cfg->max_startups_begin,
        .rate = cfg->max_startups_rate,
        .full = cfg->max_startups,
        .per_source = cfg->max_startups_per_source,
        .max_sessions = cfg->max_sessions,
    };
    struct spawner_proc p;
    uint64_t seed;

    memset(&p, 0, sizeof(p));
    p.sp = sp;
    p.sig_fd = sig_fd;
    randombytes_buf(&seed, sizeof(seed));
    p.admit = preauth_new(&lim, seed);
    if (p.admit == NULL || util_set_nonblock(sp->listen_fd) != ERR_OK) {
        log_error("the %s cannot start", sp->ops->spawner_noun);
        _exit(1);
    }
    if (sp->ops->setup != NULL && sp->ops->setup(sp->arg, sp->link) != ERR_OK) {
        _exit(1);
    }
    _exit(spawner_run(&p));
}

/* --- the main process --- */

int spawner_new(const struct spawner_ops *ops, void *arg,
                const struct config *cfg, struct spawner **out)
{
    struct spawner *sp;

    *out = NULL;
    if ((sp = calloc(1, sizeof(*sp))) == NULL) {
        return ERR_NOMEM;
    }
    sp->ops = ops;
    sp->arg = arg;
    sp->cfg = cfg;
    sp->listen_fd = -1;
    sp->link = -1;
    if ((sp->msg = buf_new(MPROTO_MAX)) == NULL) {
        free(sp);
        return ERR_NOMEM;
    }
    *out = sp;
    return ERR_OK;
}

int spawner_listen(struct spawner *sp, const char *addr, int port)
{
    const char *pre = sp->ops->log_prefix;
    struct addrinfo hints, *res = NULL, *ai;
    char ports[16];
    int fd = -1, yes = 1, rc;
    int64_t until;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    snprintf(ports, sizeof(ports), "%d", port);
    if ((rc = getaddrinfo(addr, ports, &hints, &res)) != 0) {
        log_error("%slisten address %s: %s", pre, addr, gai_strerror(rc));
        return ERR_IO;
    }
    /* one wait for the port, whatever the name resolves to */
    until = util_mono_ms() + SPAWNER_BUSY_WAIT_MS;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        bool told = false;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
        /* A port still held may be the spawner of a server that has just
         * died (it lets the port go as soon as it sees the main process
         * gone, but on a loaded machine that can take a moment): a restart
         * by a supervisor waits for it a little, then gives up. */
        while ((rc = bind(fd, ai->ai_addr, ai->ai_addrlen)) != 0 &&
               errno == EADDRINUSE && util_mono_ms() < until) {
            if (!told) {
                log_warn("%s%s port %d is in use; waiting up to %d s for it "
                         "to be free",
                         pre, addr, port, SPAWNER_BUSY_WAIT_MS / 1000);
                told = true;
            }
            (void)poll(NULL, 0, 100);
        }
        if (rc == 0 && listen(fd, sp->ops->backlog) == 0) {
            break;
        }
        log_error("%scannot listen on %s port %d: %s", pre, addr, port,
                  strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    sp->listen_fd = fd;
    return fd >= 0 ? ERR_OK : ERR_IO;
}

int spawner_fork(struct spawner *sp, int sig_fd, const int *keep_out,
                 int nkeep_out)
{
    int link[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, link) != 0) {
        return ERR_IO;
    }
    pid = fork();
    if (pid < 0) {
        close(link[0]);
        close(link[1]);
        return ERR_IO;
    }
    if (pid == 0) {
        /* The spawner: its own session and process group, so ending it
         * ends all its sessions, and neither it nor a session child has
         * the server's controlling terminal (a compromised child cannot
         * TIOCSTI into it; the seccomp filter refuses that too). */
        if (setsid() < 0) {
            setpgid(0, 0);
        }
        close(link[0]);
        for (int i = 0; i < nkeep_out; i++) {
            if (keep_out[i] >= 0) {
                close(keep_out[i]);
            }
        }
        sp->link = link[1];
        spawner_main(sp, sig_fd); /* never returns */
    }
    close(link[1]);
    close(sp->listen_fd);
    sp->listen_fd = -1;
    sp->link = link[0];
    sp->pid = pid;
    return ERR_OK;
}

/* Tells the spawner about every child in sp->authed it can take now; the
 * rest wait for the link to be writable. */
static void spawner_flush_authed(struct spawner *sp)
{
    struct buf *b = buf_new(16);
    size_t i = 0;
    int r = ERR_OK;

    for (; b != NULL && i < sp->nauthed; i++) {
        buf_reset(b);
        if (buf_put_u32(b, (uint32_t)sp->authed[i]) != ERR_OK ||
            (r = mproto_send(sp->link, MP_SPAWN_AUTHED, b, -1, 1)) != ERR_OK) {
            break;
        }
    }
    buf_free(b);
    if (i < sp->nauthed && r == ERR_IO && errno != EAGAIN &&
        errno != EWOULDBLOCK) {
        log_warn("cannot tell the %s that %s %ld logged in: %s",
                 sp->ops->spawner_noun, sp->ops->child_noun,
                 (long)sp->authed[i], strerror(errno));
        i++; /* the link is broken: spawner_on_msg will see it */
    }
    memmove(sp->authed, sp->authed + i, (sp->nauthed - i) * sizeof(pid_t));
    sp->nauthed -= i;
    (void)loop_mod_fd(sp->loop, sp->link,
                      sp->nauthed > 0 ? LOOP_READ | LOOP_WRITE : LOOP_READ);
}

/* The monitor's hook: a child authenticated, so the spawner gives back
 * its pre-authentication slot. Never blocks the loop: if the link is
 * full the notice waits in sp->authed (in order) until it is writable;
 * if it cannot be queued the slot still comes back when the child is
 * reaped. */
static void spawner_on_authed(void *arg, pid_t pid)
{
    struct spawner *sp = arg;
    pid_t *grown;

    if (sp->nauthed == sp->authed_cap) {
        size_t cap = sp->authed_cap ? sp->authed_cap * 2 : 16;
        if ((grown = realloc(sp->authed, cap * sizeof(pid_t))) == NULL) {
            log_error("cannot tell the %s that %s %ld logged in: out of "
                      "memory",
                      sp->ops->spawner_noun, sp->ops->child_noun, (long)pid);
            return;
        }
        sp->authed = grown;
        sp->authed_cap = cap;
    }
    sp->authed[sp->nauthed++] = pid;
    spawner_flush_authed(sp);
}

static void spawner_on_msg(struct loop *l, int fd, int events, void *arg)
{
    struct spawner *sp = arg;
    const char *child = sp->ops->child_noun, *spawner = sp->ops->spawner_noun;
    uint32_t pid = 0, status = 0;
    char addr[64] = "";
    uint8_t type = 0;
    int fds[2] = {-1, -1};
    size_t nfds = 0;
    struct mchild *c;

    (void)fd;
    if (events & LOOP_WRITE) {
        spawner_flush_authed(sp);
    }
    if (!(events & LOOP_READ)) {
        return;
    }
    if (mproto_recv_fds(sp->link, &type, sp->msg, fds, 2, &nfds) != ERR_OK) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }
        log_error("the %s is gone; shutting down", spawner);
        sp->result = ERR_INTERNAL;
        loop_stop(l);
        return;
    }
    /* The spawner admitted it (pre-authentication limits are decided
     * there, before fork); here it is only tracked. */
    if (type == MP_SPAWN_NEW && nfds == 2 &&
        buf_get_u32(sp->msg, &pid) == ERR_OK &&
        buf_get_cstring_into(sp->msg, addr, sizeof(addr)) == ERR_OK) {
        /* the monitor owns both descriptors now, also when it fails */
        c = monitor_child_new(sp->mon, (pid_t)pid, fds[1], fds[0], addr);
        if (c == NULL) {
            log_error("cannot track %s %lu; ended it", child,
                      (unsigned long)pid);
        } else {
            c->rdp = sp->ops->rdp;
        }
        return;
    }
    for (size_t i = 0; i < nfds; i++) {
        if (type == MP_SPAWN_NEW && i == 1) {
            /* not tracked: end it through its pidfd */
            (void)pidfd_send_signal(fds[1], SIGKILL, NULL, 0);
        }
        close(fds[i]);
    }
    if (type == MP_SPAWN_NEW) {
        log_error("malformed new-child message from the %s", spawner);
        return;
    }
    if (type == MP_SPAWN_EXIT && buf_get_u32(sp->msg, &pid) == ERR_OK &&
        buf_get_u32(sp->msg, &status) == ERR_OK) {
        monitor_child_exit(sp->mon, (pid_t)pid, (int)status);
        return;
    }
    log_warn("unexpected message %u from the %s", type, spawner);
}

int spawner_attach(struct spawner *sp, struct loop *loop, struct monitor *mon)
{
    sp->loop = loop;
    sp->mon = mon;
    if (loop_add_fd(loop, sp->link, LOOP_READ, spawner_on_msg, sp) != ERR_OK) {
        return ERR_NOMEM;
    }
    if (sp->ops->rdp) {
        mon->on_rdp_authed = spawner_on_authed;
        mon->on_rdp_authed_arg = sp;
    } else {
        mon->on_authed = spawner_on_authed;
        mon->on_authed_arg = sp;
    }
    return ERR_OK;
}

int spawner_link_fd(const struct spawner *sp)
{
    return sp != NULL ? sp->link : -1;
}

int spawner_result(const struct spawner *sp)
{
    return sp != NULL ? sp->result : ERR_OK;
}

void spawner_drain(struct spawner *sp)
{
    struct monitor *mon;

    if (sp == NULL) {
        return;
    }
    if ((mon = sp->mon) != NULL) {
        if (mon->on_authed_arg == sp) {
            mon->on_authed = NULL;
            mon->on_authed_arg = NULL;
        }
        if (mon->on_rdp_authed_arg == sp) {
            mon->on_rdp_authed = NULL;
            mon->on_rdp_authed_arg = NULL;
        }
    }
    if (sp->link >= 0) {
        if (sp->loop != NULL) {
            loop_del_fd(sp->loop, sp->link);
        }
        close(sp->link);
        sp->link = -1;
    }
}

void spawner_stop(struct spawner *sp, bool terminate)
{
    if (sp == NULL) {
        return;
    }
    spawner_drain(sp);
    if (sp->pid > 0) {
        if (terminate) {
            kill(sp->pid, SIGTERM);
        }
        waitpid(sp->pid, NULL, 0);
        sp->pid = 0;
    }
}

void spawner_free(struct spawner *sp)
{
    if (sp == NULL) {
        return;
    }
    spawner_stop(sp, true);
    if (sp->listen_fd >= 0) {
        close(sp->listen_fd);
    }
    buf_free(sp->msg);
    free(sp->authed);
    free(sp);
}
