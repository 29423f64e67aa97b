/*
 * The SSH proxy's listener side of `portcullis serve`: the spawner and
 * the main process's end of the link to it (server.h says in which order
 * the composition root, daemon/daemon.c, calls them).
 *
 * Two long-lived processes:
 *
 *  - The spawner is forked first, before the store or the vault key are
 *    opened, so the session children it forks inherit neither (only the
 *    SSH host keys, which a libssh server session must hold). It owns the
 *    listening socket: it accepts, makes a monitor socketpair, forks a
 *    session child, and hands the main process the other end of the
 *    socketpair (SCM_RIGHTS) with the child's pid and address. It reaps
 *    children and reports their exit.
 *  - The main process owns the store, the vault key and the login
 *    throttle, and answers the children's requests in one event loop
 *    (loop.c, monitor.c). Upstream TCP connects are non-blocking, so a
 *    slow target delays nobody else.
 *
 * If either process dies, the other notices the closed link: the spawner
 * then ends all sessions and exits; the main process exits with an error.
 * On SIGTERM/SIGINT the main process closes the link and waits for the
 * spawner, which ends every session.
 */
#include "sshproxy/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#include <libssh/libssh.h>
#include <libssh/server.h>
#include <sodium.h>

#include "common/err.h"
#include "common/hostkey.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "sshproxy/child.h"
#include "sshproxy/hostkeys.h"
#include "sshproxy/monitor.h"
#include "sshproxy/mproto.h"
#include "sshproxy/preauth.h"
#include "sshproxy/sandbox.h"

static int server_listen_fd(const char *addr, int port)
{
    struct addrinfo hints, *res = NULL, *ai;
    char ports[16];
    int fd = -1, yes = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    snprintf(ports, sizeof(ports), "%d", port);
    if ((rc = getaddrinfo(addr, ports, &hints, &res)) != 0) {
        log_error("listen address %s: %s", addr, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, 512) == 0) {
            break;
        }
        log_error("cannot listen on %s port %d: %s", addr, port,
                  strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void server_addr_str(const struct sockaddr_storage *ss, char *out,
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

/* --- the spawner --- */

/* Connections accepted per wakeup of the spawner: a flood is drained in
 * batches without starving the link to the main process. */
#define SPAWNER_ACCEPT_BATCH 64
/* A child still before authentication this long after its login grace
 * time has stopped its own timer (a compromised child may): killed. */
#define SPAWNER_GRACE_SLACK_MS 5000
/* At most one log line per this many ms about refused connections. */
#define SPAWNER_REFUSE_LOG_MS 10000
/* Refused connections kept open (reading and discarding) until the
 * client has read why and closed, at most this many and this long. */
#define SPAWNER_LINGER_MAX 128
#define SPAWNER_LINGER_MS 2000

struct spawner_linger {
    int fd;
    int64_t until; /* util_mono_ms() */
};

struct spawner {
    const struct config *cfg;
    int listen_fd;
    int link;   /* to the main process */
    int sig_fd; /* SIGCHLD, SIGTERM, SIGINT */
    ssh_bind bind;
    struct hostkey_standins keys; /* public host keys and stand-ins */
    const struct sandbox *sb;
    const char *banner;    /* sent to clients before login, or NULL */
    struct preauth *admit; /* every child not yet reaped (preauth.h) */
    struct buf *msg;
    uint64_t refused;    /* connections refused since the last log line */
    int64_t refused_log; /* util_mono_ms() of that line */
    enum preauth_verdict refused_why;
    struct spawner_linger linger[SPAWNER_LINGER_MAX];
    int nlinger;
};

/*
 * What a refused connection reads before it is closed: our identification
 * string and an unencrypted SSH_MSG_DISCONNECT (RFC 4253 §11.1, allowed
 * before key exchange), so an OpenSSH user sees "Received disconnect ...:
 * too many unauthenticated connections" instead of a bare reset. One
 * non-blocking send of a few bytes: as cheap as closing.
 */
static size_t spawner_refusal(enum preauth_verdict v, uint8_t *out,
                              size_t outlen)
{
    static const char ident[] = "SSH-2.0-Portcullis\r\n";
    const char *why = v == PREAUTH_SESSIONS ? "too many sessions; try later"
                      : v == PREAUTH_SOURCE
                          ? "too many unauthenticated connections from "
                            "your address"
                          : "too many unauthenticated connections; try later";
    size_t il = strlen(ident), wl = strlen(why), payload, pad, plen, n;
    uint32_t reason = 12; /* SSH_DISCONNECT_TOO_MANY_CONNECTIONS */

    /* payload: byte 1, uint32 reason, string why, string "" */
    payload = 1 + 4 + 4 + wl + 4;
    pad = 8 - ((4 + 1 + payload) % 8);
    if (pad < 4) {
        pad += 8;
    }
    plen = 1 + payload + pad;
    n = il + 4 + plen;
    if (n > outlen) {
        return 0;
    }
    memcpy(out, ident, il);
    out += il;
    *out++ = (uint8_t)(plen >> 24);
    *out++ = (uint8_t)(plen >> 16);
    *out++ = (uint8_t)(plen >> 8);
    *out++ = (uint8_t)plen;
    *out++ = (uint8_t)pad;
    *out++ = 1; /* SSH_MSG_DISCONNECT */
    *out++ = (uint8_t)(reason >> 24);
    *out++ = (uint8_t)(reason >> 16);
    *out++ = (uint8_t)(reason >> 8);
    *out++ = (uint8_t)reason;
    *out++ = (uint8_t)(wl >> 24);
    *out++ = (uint8_t)(wl >> 16);
    *out++ = (uint8_t)(wl >> 8);
    *out++ = (uint8_t)wl;
    memcpy(out, why, wl);
    out += wl;
    memset(out, 0, 4 + pad); /* empty language tag, then the padding */
    return n;
}

/*
 * Ends a connection that gets no child. Closing a socket while the
 * client's bytes (its identification, then its KEXINIT) are unread makes
 * the kernel answer with a reset, and a reset throws away the refusal the
 * client has not read yet. So a refused connection is half-closed and
 * kept, its input discarded, until the client closes it or
 * SPAWNER_LINGER_MS pass; when SPAWNER_LINGER_MAX are kept already (a
 * flood), it is closed at once.
 */
static void spawner_linger_drop(struct spawner *sp, int i)
{
    close(sp->linger[i].fd);
    sp->linger[i] = sp->linger[--sp->nlinger];
}

static void spawner_linger_read(struct spawner *sp, int i)
{
    char scratch[4096];
    ssize_t n;

    while ((n = recv(sp->linger[i].fd, scratch, sizeof(scratch),
                     MSG_DONTWAIT)) > 0) {
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        spawner_linger_drop(sp, i);
    }
}

/* Logs a summary now and then (one line per refused connection would
 * let a flood fill the log). */
static void spawner_refuse(struct spawner *sp, int fd, const char *addr,
                           enum preauth_verdict v)
{
    uint8_t msg[256];
    size_t n = spawner_refusal(v, msg, sizeof(msg));
    int64_t now = util_mono_ms();

    if (n > 0) {
        (void)send(fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    if (sp->nlinger < SPAWNER_LINGER_MAX && shutdown(fd, SHUT_WR) == 0) {
        sp->linger[sp->nlinger].fd = fd;
        sp->linger[sp->nlinger].until = now + SPAWNER_LINGER_MS;
        spawner_linger_read(sp, sp->nlinger++);
    } else {
        close(fd);
    }
    sp->refused++;
    sp->refused_why = v;
    if (now - sp->refused_log >= SPAWNER_REFUSE_LOG_MS) {
        log_warn("refused %llu connection(s) before forking (last: %s: %s; "
                 "%d unauthenticated, %d in all)",
                 (unsigned long long)sp->refused, addr,
                 preauth_verdict_str(sp->refused_why),
                 preauth_unauth(sp->admit), preauth_live(sp->admit));
        sp->refused = 0;
        sp->refused_log = now;
    }
}

/* Accepts one connection; returns false when there is none waiting. */
static bool spawner_accept(struct spawner *sp)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct preauth_src src;
    struct child_args ca;
    enum preauth_verdict v;
    char addr[64];
    struct buf *b = sp->msg;
    int fd, pair[2], fds[2], pidfd, rc;
    pid_t pid;

    fd = accept4(sp->listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) {
            log_error("accept: %s", strerror(errno));
        }
        return errno == ECONNABORTED || errno == EINTR;
    }
    server_addr_str(&ss, addr, sizeof(addr));
    /* Decided before fork: a refused connection costs no process. */
    preauth_source_of((struct sockaddr *)&ss, sslen, &src);
    v = preauth_admit(sp->admit, &src, randombytes_uniform(100));
    if (v != PREAUTH_ACCEPT) {
        spawner_refuse(sp, fd, addr, v);
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
        sigset_t none;

        close(sp->listen_fd);
        close(sp->link);
        close(sp->sig_fd);
        close(pair[0]);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGPIPE, SIG_IGN);
        memset(&ca, 0, sizeof(ca));
        ca.client_fd = fd;
        ca.monitor_fd = pair[1];
        ca.bind = sp->bind;
        ca.keys = &sp->keys;
        ca.sb = sp->sb;
        ca.login_grace_seconds = sp->cfg->login_grace_seconds;
        ca.connect_timeout_seconds = sp->cfg->connect_timeout_seconds;
        ca.upstream_ciphers = sp->cfg->upstream_ciphers;
        ca.upstream_macs = sp->cfg->upstream_macs;
        ca.upstream_kex = sp->cfg->upstream_kex;
        ca.upstream_hostkeys = sp->cfg->upstream_hostkey_algorithms;
        ca.banner = sp->banner;
        ca.client_addr = addr;
        rc = child_run(&ca);
        /* _exit: no atexit handlers from the parent's libraries. */
        _exit(rc);
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
        preauth_add(sp->admit, pid, &src, util_mono_ms()) != ERR_OK) {
        log_error("cannot track child %ld: %s", (long)pid,
                  pidfd < 0 ? strerror(errno) : "out of memory");
        kill(pid, SIGKILL); /* not reaped yet: still ours */
        (void)preauth_gone(sp->admit, pid);
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
        log_error("cannot hand child %ld to the main process", (long)pid);
        kill(pid, SIGKILL);
    }
    close(pidfd);
    close(pair[0]);
    return true;
}

static void spawner_reap(struct spawner *sp)
{
    struct buf *b = sp->msg;
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        (void)preauth_gone(sp->admit, pid);
        buf_reset(b);
        if (buf_put_u32(b, (uint32_t)pid) != ERR_OK ||
            buf_put_u32(b, (uint32_t)status) != ERR_OK ||
            mproto_send(sp->link, MP_SPAWN_EXIT, b, -1, 0) != ERR_OK) {
            log_warn("cannot report the exit of child %ld", (long)pid);
        }
    }
}

/* A message from the main process; false when it is gone. */
static bool spawner_on_link(struct spawner *sp)
{
    uint32_t pid = 0;
    uint8_t type = 0;

    if (mproto_recv(sp->link, &type, sp->msg, NULL) != ERR_OK) {
        return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    if (type == MP_SPAWN_AUTHED && buf_get_u32(sp->msg, &pid) == ERR_OK &&
        buf_expect_end(sp->msg) == ERR_OK) {
        (void)preauth_authed(sp->admit, (pid_t)pid);
    } else {
        log_warn("unexpected message %u from the main process", type);
    }
    return true;
}

/* Kills children still before authentication well past their login grace
 * time: their own timer should have ended them. They are not reaped yet
 * (reaping removes them from the table), so their pids are still ours. */
static void spawner_overdue(struct spawner *sp)
{
    pid_t pids[64];
    size_t n = preauth_overdue(sp->admit, util_mono_ms(),
                               (int64_t)sp->cfg->login_grace_seconds * 1000 +
                                   SPAWNER_GRACE_SLACK_MS,
                               pids, sizeof(pids) / sizeof(pids[0]));

    for (size_t i = 0; i < n; i++) {
        log_warn("child %ld outlived its login grace time; killing it",
                 (long)pids[i]);
        kill(pids[i], SIGKILL);
    }
}

static int server_bind_setup(const struct config *cfg, ssh_bind bind,
                             ssh_key keys[], int nkeys);

/*
 * The bind the children accept with. It holds stand-in host keys only
 * (hostkeys.h): the main process sends the public host keys once at
 * start, and the spawner never sees a private one.
 */
static int spawner_make_bind(struct spawner *sp)
{
    struct buf *b = buf_new(MPROTO_MAX);
    uint8_t type = 0;
    int r;

    if (b == NULL) {
        return ERR_NOMEM;
    }
    r = mproto_recv(sp->link, &type, b, NULL);
    if (r != ERR_OK || type != MP_SPAWN_HOSTKEYS ||
        (r = hostkeys_standins_make(b, &sp->keys)) != ERR_OK ||
        (r = buf_expect_end(b)) != ERR_OK) {
        buf_free(b);
        return r != ERR_OK ? r : ERR_PROTO;
    }
    buf_free(b);
    sp->bind = ssh_bind_new();
    if (sp->bind == NULL ||
        (r = server_bind_setup(sp->cfg, sp->bind, NULL, 0)) != ERR_OK ||
        (r = hostkeys_standins_bind(&sp->keys, sp->bind)) != ERR_OK) {
        log_error("cannot set up the SSH server");
        return r != ERR_OK ? r : ERR_NOMEM;
    }
    return ERR_OK;
}

static int spawner_run(struct spawner *sp)
{
    struct signalfd_siginfo si;
    struct pollfd pfd[3 + SPAWNER_LINGER_MAX];
    int accepted, timeout, nl, i;
    int64_t now;
    pid_t pid;

    if (spawner_make_bind(sp) != ERR_OK) {
        return 1;
    }
    for (;;) {
        pfd[0].fd = sp->listen_fd;
        pfd[0].events = POLLIN;
        pfd[1].fd = sp->link;
        pfd[1].events = POLLIN;
        pfd[2].fd = sp->sig_fd;
        pfd[2].events = POLLIN;
        nl = sp->nlinger;
        for (i = 0; i < nl; i++) {
            pfd[3 + i].fd = sp->linger[i].fd;
            pfd[3 + i].events = POLLIN;
        }
        timeout = nl > 0 ? 200 : preauth_unauth(sp->admit) > 0 ? 1000 : -1;
        if (poll(pfd, (nfds_t)(3 + nl), timeout) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (pfd[2].revents & POLLIN) {
            if (read(sp->sig_fd, &si, sizeof(si)) == sizeof(si) &&
                si.ssi_signo != SIGCHLD) {
                break;
            }
            spawner_reap(sp);
        }
        if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !spawner_on_link(sp)) {
            break; /* the main process is gone */
        }
        /* Backwards: dropping entry i moves the last one into its place. */
        now = util_mono_ms();
        for (i = nl - 1; i >= 0; i--) {
            if (pfd[3 + i].revents != 0) {
                spawner_linger_read(sp, i);
            } else if (now >= sp->linger[i].until) {
                spawner_linger_drop(sp, i);
            }
        }
        if (pfd[0].revents & POLLIN) {
            for (accepted = 0; accepted < SPAWNER_ACCEPT_BATCH; accepted++) {
                if (!spawner_accept(sp)) {
                    break;
                }
            }
        }
        spawner_overdue(sp);
    }
    /* End every session: they cannot work without the main process. */
    signal(SIGTERM, SIG_IGN);
    kill(0, SIGTERM);
    while (preauth_live(sp->admit) > 0 && (pid = waitpid(-1, NULL, 0)) > 0) {
        (void)preauth_gone(sp->admit, pid);
    }
    return 0;
}

/* --- the main process --- */

struct server {
    const struct config *cfg;
    struct sandbox sb;   /* the session children's (sandbox.h) */
    char *banner;        /* sent to clients before login, or NULL */
    int listen_fd;       /* until the spawner has it, -1 after */
    int link;            /* to the spawner, -1 if none */
    pid_t spawner;       /* 0 if none, or reaped */
    struct loop *loop;   /* once attached */
    struct monitor *mon; /* once attached */
    struct buf *msg;
    int result;
    /* children that logged in, not yet told to the spawner (its link was
     * full); sent as soon as it is writable */
    pid_t *authed;
    size_t nauthed, authed_cap;
};

/* Tells the spawner about every child in s->authed it can take now; the
 * rest wait for the link to be writable. */
static void server_flush_authed(struct server *s)
{
    struct buf *b = buf_new(16);
    size_t i = 0;
    int r = ERR_OK;

    for (; b != NULL && i < s->nauthed; i++) {
        buf_reset(b);
        if (buf_put_u32(b, (uint32_t)s->authed[i]) != ERR_OK ||
            (r = mproto_send(s->link, MP_SPAWN_AUTHED, b, -1, 1)) != ERR_OK) {
            break;
        }
    }
    buf_free(b);
    if (i < s->nauthed && r == ERR_IO && errno != EAGAIN &&
        errno != EWOULDBLOCK) {
        log_warn("cannot tell the spawner that child %ld logged in: %s",
                 (long)s->authed[i], strerror(errno));
        i++; /* the link is broken: server_on_link will see it */
    }
    memmove(s->authed, s->authed + i, (s->nauthed - i) * sizeof(pid_t));
    s->nauthed -= i;
    (void)loop_mod_fd(s->loop, s->link,
                      s->nauthed > 0 ? LOOP_READ | LOOP_WRITE : LOOP_READ);
}

static void server_on_link(struct loop *l, int fd, int events, void *arg)
{
    struct server *s = arg;
    uint32_t pid = 0, status = 0;
    char addr[64] = "";
    uint8_t type = 0;
    int fds[2] = {-1, -1};
    size_t nfds = 0;

    if (events & LOOP_WRITE) {
        server_flush_authed(s);
    }
    if (!(events & LOOP_READ)) {
        return;
    }
    if (mproto_recv_fds(s->link, &type, s->msg, fds, 2, &nfds) != ERR_OK) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }
        log_error("the spawner is gone; shutting down");
        s->result = ERR_INTERNAL;
        loop_stop(l);
        return;
    }
    /* The spawner admitted it (pre-authentication limits are decided
     * there, before fork); here it is only tracked. */
    if (type == MP_SPAWN_NEW && nfds == 2 &&
        buf_get_u32(s->msg, &pid) == ERR_OK &&
        buf_get_cstring_into(s->msg, addr, sizeof(addr)) == ERR_OK) {
        /* the monitor owns both descriptors now, also when it fails */
        if (monitor_child_new(s->mon, (pid_t)pid, fds[1], fds[0], addr) ==
            NULL) {
            log_error("cannot track child %lu; ended it", (unsigned long)pid);
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
        log_error("malformed new-child message from the spawner");
        return;
    }
    if (type == MP_SPAWN_EXIT && buf_get_u32(s->msg, &pid) == ERR_OK &&
        buf_get_u32(s->msg, &status) == ERR_OK) {
        monitor_child_exit(s->mon, (pid_t)pid, (int)status);
        return;
    }
    log_warn("unexpected message %u from the spawner", type);
}

/* The monitor's hook: a child authenticated, so the spawner gives back
 * its pre-authentication slots. Never blocks the loop: if the link is
 * full the notice waits in s->authed (in order) until it is writable. */
static void server_on_authed(void *arg, pid_t pid)
{
    struct server *s = arg;
    pid_t *grown;

    if (s->nauthed == s->authed_cap) {
        size_t cap = s->authed_cap ? s->authed_cap * 2 : 16;
        if ((grown = realloc(s->authed, cap * sizeof(pid_t))) == NULL) {
            log_error("cannot tell the spawner that child %ld logged in: "
                      "out of memory",
                      (long)pid);
            return;
        }
        s->authed = grown;
        s->authed_cap = cap;
    }
    s->authed[s->nauthed++] = pid;
    server_flush_authed(s);
}

/* Hands the spawner the public host keys (its only message from us). */
static int server_send_host_keys(struct server *s)
{
    struct buf *b = buf_new(MPROTO_MAX);
    int r;

    if (b == NULL) {
        return ERR_NOMEM;
    }
    r = hostkeys_put_public(&s->mon->hostkeys, b);
    if (r == ERR_OK) {
        r = mproto_send(s->link, MP_SPAWN_HOSTKEYS, b, -1, 0);
    }
    buf_free(b);
    return r;
}

/* --- host keys and what the client leg offers --- */

#define SERVER_HOST_KEYS 3

/* A key file that is missing is made, as Debian's sshd-keygen does at
 * sshd's start, so a data directory from before ECDSA and RSA keys
 * existed serves every client after an upgrade. Returns false (and says
 * why) when there is no file and none could be made. */
static bool server_make_missing_key(const char *path, enum hostkey_type type)
{
    char fp[HOSTKEY_FP_MAX + 1];
    int r;

    if (access(path, F_OK) == 0 || errno != ENOENT) {
        return true;
    }
    if ((r = hostkey_create(path, type, fp, sizeof(fp))) != ERR_OK) {
        log_warn("no %s host key: %s is missing and cannot be made (%s); "
                 "clients that need one cannot connect",
                 hostkey_type_name(type), path, err_str(r));
        return false;
    }
    log_info("made the missing %s host key %s (fingerprint %s)",
             hostkey_type_name(type), path, fp);
    return true;
}

static bool server_key_is(enum hostkey_type want, enum ssh_keytypes_e kt)
{
    switch (want) {
    case HOSTKEY_ED25519:
        return kt == SSH_KEYTYPE_ED25519;
    case HOSTKEY_ECDSA:
        return kt == SSH_KEYTYPE_ECDSA_P256 || kt == SSH_KEYTYPE_ECDSA_P384 ||
               kt == SSH_KEYTYPE_ECDSA_P521;
    case HOSTKEY_RSA:
        return kt == SSH_KEYTYPE_RSA;
    }
    return false;
}

/*
 * Makes the ECDSA and RSA host keys an older data directory lacks, as
 * sshd-keygen does. In a short-lived process of its own: the main process
 * must not have held a private host key in its memory when it forks the
 * spawner (hostkeys.h), and this runs before that fork so that an error is
 * in the log before the server listens.
 */
static void server_make_missing_keys(const struct config *cfg)
{
    pid_t pid = fork();

    if (pid < 0) {
        log_warn("cannot fork to make missing host keys: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        if (cfg->ssh_host_key_ecdsa != NULL) {
            (void)server_make_missing_key(cfg->ssh_host_key_ecdsa,
                                          HOSTKEY_ECDSA);
        }
        if (cfg->ssh_host_key_rsa != NULL) {
            (void)server_make_missing_key(cfg->ssh_host_key_rsa, HOSTKEY_RSA);
        }
        _exit(0);
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

/*
 * The host keys the client leg presents: the Ed25519 key (required; the
 * agent hub presents it alone, hub.c) and, unless configured off, the
 * ECDSA and RSA keys, made if missing. Fills keys[0..*n) (the caller frees
 * each); on error nothing is left to free.
 */
static int server_load_host_keys(const struct config *cfg,
                                 ssh_key keys[SERVER_HOST_KEYS], int *n)
{
    const struct {
        const char *path;
        enum hostkey_type type;
    } want[SERVER_HOST_KEYS] = {
        {cfg->ssh_host_key, HOSTKEY_ED25519},
        {cfg->ssh_host_key_ecdsa, HOSTKEY_ECDSA},
        {cfg->ssh_host_key_rsa, HOSTKEY_RSA},
    };
    enum ssh_keytypes_e kt;
    char names[32] = "";
    ssh_key key;
    size_t len;
    bool ok;
    int i;

    *n = 0;
    for (i = 0; i < SERVER_HOST_KEYS; i++) {
        if (want[i].path == NULL) {
            log_info("no %s host key ([ssh] host_key_%s is empty)",
                     hostkey_type_name(want[i].type),
                     hostkey_type_name(want[i].type));
            continue;
        }
        if (want[i].type != HOSTKEY_ED25519 &&
            access(want[i].path, F_OK) != 0) {
            continue; /* server_make_missing_keys said why */
        }
        key = NULL;
        if (ssh_pki_import_privkey_file(want[i].path, NULL, NULL, NULL, &key) !=
            SSH_OK) {
            log_error("cannot read the SSH host key %s", want[i].path);
            goto fail;
        }
        kt = ssh_key_type(key);
        ok = server_key_is(want[i].type, kt);
        if (!ok) {
            log_error("the SSH host key %s is of type %s, not %s", want[i].path,
                      ssh_key_type_to_char(kt),
                      hostkey_type_name(want[i].type));
            ssh_key_free(key);
            goto fail;
        }
        keys[(*n)++] = key;
        len = strlen(names);
        snprintf(names + len, sizeof(names) - len, " %s",
                 hostkey_type_name(want[i].type));
    }
    log_info("SSH host keys offered to clients:%s", names);
    return ERR_OK;
fail:
    while (*n > 0) {
        ssh_key_free(keys[--*n]);
    }
    return ERR_CONFIG;
}

#define SERVER_BANNER_MAX 8192

/* [ssh] banner or the contents of banner_file, ending in a newline; NULL
 * in *out for none (the default: nothing in scripts' output). */
static int server_banner(const struct config *cfg, char **out)
{
    const char *text = cfg->ssh_banner;
    char buf[SERVER_BANNER_MAX + 1];
    size_t len = 0;
    FILE *f;

    *out = NULL;
    if (cfg->ssh_banner_file != NULL) {
        if ((f = fopen(cfg->ssh_banner_file, "r")) == NULL) {
            log_error("cannot read [ssh] banner_file %s: %s",
                      cfg->ssh_banner_file, strerror(errno));
            return ERR_CONFIG;
        }
        len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        if (len > SERVER_BANNER_MAX) {
            log_error("[ssh] banner_file %s is longer than %d bytes",
                      cfg->ssh_banner_file, SERVER_BANNER_MAX);
            return ERR_CONFIG;
        }
        buf[len] = '\0';
        text = buf;
    }
    if (text == NULL || text[0] == '\0') {
        return ERR_OK;
    }
    len = strlen(text);
    if (asprintf(out, "%s%s", text, text[len - 1] == '\n' ? "" : "\n") < 0) {
        *out = NULL;
        return ERR_NOMEM;
    }
    return ERR_OK;
}

/* The client leg's libssh server: algorithms as configured (config.c
 * checked the names), the host keys (the bind owns each one it took:
 * keys[i] is set to NULL). */
static int server_bind_setup(const struct config *cfg, ssh_bind bind,
                             ssh_key keys[], int nkeys)
{
    int no = 0, i;

    if (ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no) !=
            SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_CIPHERS_C_S,
                             cfg->client_ciphers) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_CIPHERS_S_C,
                             cfg->client_ciphers) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HMAC_C_S,
                             cfg->client_macs) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HMAC_S_C,
                             cfg->client_macs) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_KEY_EXCHANGE,
                             cfg->client_kex) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS,
                             cfg->hostkey_algorithms) != SSH_OK) {
        log_error("cannot set the SSH algorithms: %s", ssh_get_error(bind));
        return ERR_CONFIG;
    }
    for (i = 0; i < nkeys; i++) {
        if (ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, keys[i]) !=
            SSH_OK) {
            log_error("cannot use a host key: %s", ssh_get_error(bind));
            return ERR_CONFIG;
        }
        keys[i] = NULL;
    }
    return ERR_OK;
}

int server_new(const struct config *cfg, struct server **out)
{
    struct server *s;
    char weak[1024];
    int r;

    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        return ERR_NOMEM;
    }
    s->cfg = cfg;
    s->listen_fd = -1;
    s->link = -1;
    if ((r = server_banner(cfg, &s->banner)) != ERR_OK) {
        goto fail;
    }
    server_make_missing_keys(cfg);
    if (config_weak_algorithms(cfg, weak, sizeof(weak)) > 0) {
        log_warn("weak SSH algorithms enabled (OpenSSH offers none of "
                 "them by default): %s",
                 weak);
    }
    if ((r = sandbox_prepare(cfg->privsep_user, cfg->data_dir, &s->sb)) !=
        ERR_OK) {
        goto fail;
    }
    if ((s->msg = buf_new(MPROTO_MAX)) == NULL) {
        r = ERR_NOMEM;
        goto fail;
    }
    *out = s;
    return ERR_OK;
fail:
    server_free(s);
    return r;
}

int server_listen(struct server *s)
{
    s->listen_fd = server_listen_fd(s->cfg->ssh_listen, s->cfg->ssh_port);
    return s->listen_fd >= 0 ? ERR_OK : ERR_IO;
}

int server_spawn(struct server *s, int sig_fd)
{
    const struct config *cfg = s->cfg;
    struct spawner sp;
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
         * ends all sessions, and neither it nor a session child has the
         * server's controlling terminal (a compromised child cannot
         * TIOCSTI into it; the seccomp filter refuses that too). */
        if (setsid() < 0) {
            setpgid(0, 0);
        }
        close(link[0]);
        memset(&sp, 0, sizeof(sp));
        sp.cfg = cfg;
        sp.listen_fd = s->listen_fd;
        sp.link = link[1];
        sp.sig_fd = sig_fd;
        sp.sb = &s->sb;
        sp.banner = s->banner;
        {
            struct preauth_limits lim = {
                .start = cfg->max_startups_begin,
                .rate = cfg->max_startups_rate,
                .full = cfg->max_startups,
                .per_source = cfg->max_startups_per_source,
                .max_sessions = cfg->max_sessions,
            };
            uint64_t seed;

            randombytes_buf(&seed, sizeof(seed));
            sp.admit = preauth_new(&lim, seed);
            sp.msg = buf_new(MPROTO_MAX);
            sp.refused_log = util_mono_ms() - SPAWNER_REFUSE_LOG_MS;
        }
        if (sp.admit == NULL || sp.msg == NULL ||
            util_set_nonblock(s->listen_fd) != ERR_OK) {
            log_error("the spawner cannot start");
            _exit(1);
        }
        _exit(spawner_run(&sp));
    }
    close(link[1]);
    close(s->listen_fd);
    s->listen_fd = -1;
    s->link = link[0];
    s->spawner = pid;
    return ERR_OK;
}

int server_attach(struct server *s, struct loop *loop, struct monitor *mon)
{
    ssh_key hostkeys[SERVER_HOST_KEYS] = {NULL};
    int nkeys = 0, r, i;

    s->loop = loop;
    s->mon = mon;
    if ((r = server_load_host_keys(s->cfg, hostkeys, &nkeys)) != ERR_OK ||
        (r = hostkeys_adopt(&mon->hostkeys, hostkeys, (size_t)nkeys)) !=
            ERR_OK ||
        (r = server_send_host_keys(s)) != ERR_OK) {
        goto out;
    }
    if (loop_add_fd(loop, s->link, LOOP_READ, server_on_link, s) != ERR_OK) {
        r = ERR_NOMEM;
        goto out;
    }
    mon->on_authed = server_on_authed;
    mon->on_authed_arg = s;
out:
    for (i = 0; i < nkeys; i++) {
        ssh_key_free(hostkeys[i]); /* NULL once adopted */
    }
    return r;
}

int server_link_fd(const struct server *s)
{
    return s != NULL ? s->link : -1;
}

int server_result(const struct server *s)
{
    return s->result;
}

void server_stop(struct server *s, bool terminate)
{
    if (s->link >= 0) {
        if (s->loop != NULL) {
            loop_del_fd(s->loop, s->link);
        }
        close(s->link);
        s->link = -1;
    }
    if (s->mon != NULL && s->mon->on_authed == server_on_authed) {
        s->mon->on_authed = NULL;
        s->mon->on_authed_arg = NULL;
    }
    if (s->spawner > 0) {
        if (terminate) {
            kill(s->spawner, SIGTERM);
        }
        waitpid(s->spawner, NULL, 0);
        s->spawner = 0;
    }
}

void server_free(struct server *s)
{
    if (s == NULL) {
        return;
    }
    server_stop(s, true);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    buf_free(s->msg);
    free(s->authed);
    free(s->banner);
    free(s);
}
