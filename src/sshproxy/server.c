/*
 * `portcullis serve`: the main process and the spawner.
 *
 * Two long-lived processes:
 *
 *  - The spawner is forked first, before the store or the vault key are
 *    opened, so the session children it forks inherit neither (only the
 *    SSH host key, which a libssh server session must hold). It owns the
 *    listening socket: it accepts, makes a monitor socketpair, forks a
 *    session child, and hands the main process the other end of the
 *    socketpair (SCM_RIGHTS) with the child's pid and address. It reaps
 *    children and reports their exit.
 *  - The main process owns the store, the vault key and the login
 *    throttle, and answers the children's requests in one event loop
 *    (loop.c, monitor.c). Upstream TCP connects are non-blocking, so a slow
 * target delays nobody else.
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
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <libssh/server.h>

#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "http/http.h"
#include "sshproxy/child.h"
#include "sshproxy/monitor.h"
#include "sshproxy/mproto.h"
#include "sshproxy/sandbox.h"
#include "sshproxy/webticket.h"
#include "record/retention.h"
#include "hub/hub.h"
#include "hub/tunnel.h"
#include "common/notify.h"

static int server_listen(const char *addr, int port)
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

struct spawner {
    const struct config *cfg;
    int listen_fd;
    int link;   /* to the main process */
    int sig_fd; /* SIGCHLD, SIGTERM, SIGINT */
    ssh_bind bind;
    const struct sandbox *sb;
    int live;
};

static void spawner_accept(struct spawner *sp)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct child_args ca;
    char addr[64];
    struct buf *b = NULL;
    int fd, pair[2], rc;
    pid_t pid;

    fd = accept4(sp->listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
    if (fd < 0) {
        return;
    }
    server_addr_str(&ss, addr, sizeof(addr));
    if (sp->live >= sp->cfg->max_sessions) {
        log_warn("refusing %s: %d sessions already", addr, sp->live);
        close(fd);
        return;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        log_error("socketpair: %s", strerror(errno));
        close(fd);
        return;
    }
    pid = fork();
    if (pid < 0) {
        log_error("fork: %s", strerror(errno));
        close(fd);
        close(pair[0]);
        close(pair[1]);
        return;
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
        ca.sb = sp->sb;
        ca.login_grace_seconds = sp->cfg->login_grace_seconds;
        ca.connect_timeout_seconds = sp->cfg->connect_timeout_seconds;
        ca.upstream_ciphers = sp->cfg->upstream_ciphers;
        ca.client_addr = addr;
        rc = child_run(&ca);
        /* _exit: no atexit handlers from the parent's libraries. */
        _exit(rc);
    }
    sp->live++;
    close(fd);
    close(pair[1]);
    b = buf_new(256);
    if (b == NULL || buf_put_u32(b, (uint32_t)pid) != ERR_OK ||
        buf_put_cstring(b, addr) != ERR_OK ||
        mproto_send(sp->link, MP_SPAWN_NEW, b, pair[0], 0) != ERR_OK) {
        log_error("cannot hand child %ld to the main process", (long)pid);
        kill(pid, SIGKILL);
    }
    buf_free(b);
    close(pair[0]);
}

static void spawner_reap(struct spawner *sp)
{
    struct buf *b = buf_new(64);
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        sp->live--;
        buf_reset(b);
        if (b == NULL || buf_put_u32(b, (uint32_t)pid) != ERR_OK ||
            buf_put_u32(b, (uint32_t)status) != ERR_OK ||
            mproto_send(sp->link, MP_SPAWN_EXIT, b, -1, 0) != ERR_OK) {
            log_warn("cannot report the exit of child %ld", (long)pid);
        }
    }
    buf_free(b);
}

static int spawner_run(struct spawner *sp)
{
    struct signalfd_siginfo si;
    struct pollfd pfd[3];
    char byte;

    for (;;) {
        pfd[0].fd = sp->listen_fd;
        pfd[0].events = POLLIN;
        pfd[1].fd = sp->link;
        pfd[1].events = POLLIN;
        pfd[2].fd = sp->sig_fd;
        pfd[2].events = POLLIN;
        if (poll(pfd, 3, -1) < 0) {
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
        if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            /* The main process never writes: this is its exit. */
            if (recv(sp->link, &byte, 1, MSG_DONTWAIT) <= 0) {
                break;
            }
        }
        if (pfd[0].revents & POLLIN) {
            spawner_accept(sp);
        }
    }
    /* End every session: they cannot work without the main process. */
    signal(SIGTERM, SIG_IGN);
    kill(0, SIGTERM);
    while (sp->live > 0 && waitpid(-1, NULL, 0) > 0) {
        sp->live--;
    }
    return 0;
}

/* --- the main process --- */

struct server {
    const struct config *cfg;
    struct loop *loop;
    struct monitor mon;
    int link;
    int sig_fd;
    pid_t spawner;
    struct buf *msg;
    int result;
};

static void server_on_link(struct loop *l, int fd, int events, void *arg)
{
    struct server *s = arg;
    uint32_t pid = 0, status = 0;
    char addr[64] = "";
    uint8_t type = 0;
    int cfd = -1;

    if (mproto_recv(s->link, &type, s->msg, &cfd) != ERR_OK) {
        log_error("the spawner is gone; shutting down");
        s->result = ERR_INTERNAL;
        loop_stop(l);
        return;
    }
    if (type == MP_SPAWN_NEW && cfd >= 0 &&
        buf_get_u32(s->msg, &pid) == ERR_OK &&
        buf_get_cstring_into(s->msg, addr, sizeof(addr)) == ERR_OK) {
        if (s->mon.preauth >= s->cfg->max_startups) {
            log_warn("too many unauthenticated connections; dropping %s", addr);
            kill((pid_t)pid, SIGTERM);
            close(cfd);
        } else if (monitor_child_new(&s->mon, (pid_t)pid, cfd, addr) == NULL) {
            kill((pid_t)pid, SIGTERM);
            close(cfd);
        }
        return;
    }
    if (cfd >= 0) {
        close(cfd);
    }
    if (type == MP_SPAWN_EXIT && buf_get_u32(s->msg, &pid) == ERR_OK &&
        buf_get_u32(s->msg, &status) == ERR_OK) {
        monitor_child_exit(&s->mon, (pid_t)pid, (int)status);
        return;
    }
    log_warn("unexpected message %u from the spawner", type);
}

#define SERVER_RETENTION_MS (3600 * 1000)

/* Deletes recordings older than [record] retention_days, now and then
 * every hour (each deletion is an audit event). */
static void server_on_retention(struct loop *l, void *arg)
{
    struct server *s = arg;
    int deleted = 0;

    if (s->cfg->record_retention_days <= 0) {
        return;
    }
    if (record_retention_sweep(s->mon.store, s->cfg->record_dir,
                               (int64_t)s->cfg->record_retention_days * 86400,
                               0, &deleted) != ERR_OK) {
        log_warn("recording retention sweep failed");
    } else if (deleted > 0) {
        log_info("retention: deleted %d recordings older than %d days", deleted,
                 s->cfg->record_retention_days);
    }
    (void)loop_add_timer(l, SERVER_RETENTION_MS, server_on_retention, s);
}

static void server_on_signal(struct loop *l, int fd, int events, void *arg)
{
    struct signalfd_siginfo si;

    if (read(fd, &si, sizeof(si)) == sizeof(si) &&
        (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)) {
        log_info("shutting down");
        loop_stop(l);
    }
}

/* The CLI changed the store (common/notify.h). */
static void server_on_notify(void *arg, unsigned what)
{
    hub_changed(arg, what);
}

int server_run(const struct config *cfg)
{
    struct sandbox sb;
    struct spawner sp;
    struct server s;
    ssh_key hostkey = NULL;
    ssh_bind bind = NULL;
    sigset_t mask;
    int link[2] = {-1, -1}, listen_fd = -1, sig_fd = -1, no = 0, r, count = 0;
    pid_t pid;
    struct http *http = NULL;
    struct hub *hub = NULL;
    struct tunnels *tunnels = NULL;
    struct notify *notify = NULL;

    memset(&s, 0, sizeof(s));
    ssh_init();
    if (ssh_pki_import_privkey_file(cfg->ssh_host_key, NULL, NULL, NULL,
                                    &hostkey) != SSH_OK) {
        log_error("cannot read the SSH host key %s", cfg->ssh_host_key);
        return ERR_CONFIG;
    }
    if ((r = sandbox_prepare(cfg->privsep_user, cfg->data_dir, &sb)) !=
        ERR_OK) {
        ssh_key_free(hostkey);
        return r;
    }
    /* Check the store and vault now, so a bad setup fails before forking. */
    if ((r = monitor_init(&s.mon, cfg, NULL)) != ERR_OK) {
        monitor_free(&s.mon);
        ssh_key_free(hostkey);
        return r;
    }
    monitor_free(&s.mon);
    if ((listen_fd = server_listen(cfg->ssh_listen, cfg->ssh_port)) < 0) {
        ssh_key_free(hostkey);
        return ERR_IO;
    }
    bind = ssh_bind_new();
    if (bind == NULL ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no) !=
            SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_CIPHERS_C_S,
                             cfg->client_ciphers) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_CIPHERS_S_C,
                             cfg->client_ciphers) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, hostkey) !=
            SSH_OK) {
        log_error("cannot set up the SSH server");
        r = ERR_INTERNAL;
        goto out;
    }
    hostkey = NULL; /* the bind owns it */
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((sig_fd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, link) != 0) {
        r = ERR_IO;
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        r = ERR_IO;
        goto out;
    }
    if (pid == 0) {
        /* The spawner: its own process group, so ending it ends all
         * sessions. */
        setpgid(0, 0);
        close(link[0]);
        memset(&sp, 0, sizeof(sp));
        sp.cfg = cfg;
        sp.listen_fd = listen_fd;
        sp.link = link[1];
        sp.sig_fd = sig_fd;
        sp.bind = bind;
        sp.sb = &sb;
        _exit(spawner_run(&sp));
    }
    close(link[1]);
    link[1] = -1;
    close(listen_fd);
    listen_fd = -1;
    ssh_bind_free(bind);
    bind = NULL;
    /* Agents cost three descriptors each (docs/operations.md). */
    {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    s.cfg = cfg;
    s.link = link[0];
    s.sig_fd = sig_fd;
    s.spawner = pid;
    s.msg = buf_new(MPROTO_MAX);
    s.loop = loop_new();
    if (s.msg == NULL || s.loop == NULL ||
        (r = monitor_init(&s.mon, cfg, s.loop)) != ERR_OK ||
        loop_add_fd(s.loop, s.link, LOOP_READ, server_on_link, &s) != ERR_OK ||
        loop_add_fd(s.loop, s.sig_fd, LOOP_READ, server_on_signal, &s) !=
            ERR_OK) {
        r = r ? r : ERR_NOMEM;
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        monitor_free(&s.mon);
        goto out;
    }
    if (store_session_close_dangling(s.mon.store, util_now(),
                                     "error: interrupted", &count) == ERR_OK &&
        count > 0) {
        log_warn("closed %d report rows left open by a previous run", count);
    }
    /* The agent hub, tunnels and the HTTP side (REST API, agents'
     * WebSocket) share the loop and the monitor's store. */
    if ((r = hub_start(&hub, cfg, s.loop, s.mon.store)) != ERR_OK ||
        (r = tunnels_start(&tunnels, cfg, s.loop, s.mon.store, hub)) !=
            ERR_OK ||
        (s.mon.tickets = webtickets_new()) == NULL ||
        (r = http_start(&http, cfg, s.loop, s.mon.store, s.mon.vault, hub,
                        s.mon.tickets)) != ERR_OK) {
        r = r ? r : ERR_NOMEM;
        webtickets_free(s.mon.tickets);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        tunnels_stop(tunnels);
        hub_stop(hub);
        monitor_free(&s.mon);
        goto out;
    }
    s.mon.hub = hub;
    /* one cap on password checks, one lockout table */
    http_share_auth(http, s.mon.hashes, s.mon.lockout);
    if (notify_listen(&notify, s.loop, cfg->data_dir, server_on_notify, hub) !=
        ERR_OK) {
        log_warn("cannot listen for store-change notices; CLI changes to "
                 "credentials and tunnels apply after a restart");
    }
    log_info("listening on %s port %d", cfg->ssh_listen, cfg->ssh_port);
    (void)loop_add_timer(s.loop, 0, server_on_retention, &s);
    r = loop_run(s.loop);
    if (r == ERR_OK) {
        r = s.result;
    }
    loop_del_fd(s.loop, s.link);
    close(link[0]);
    link[0] = -1;
    waitpid(pid, NULL, 0);
    notify_close(notify);
    /* HTTP first: closing the agents' WebSockets frees them in the hub. */
    http_stop(http);
    tunnels_stop(tunnels);
    s.mon.hub = NULL;
    hub_stop(hub);
    webtickets_free(s.mon.tickets);
    s.mon.tickets = NULL;
    monitor_free(&s.mon);
out:
    loop_free(s.loop);
    buf_free(s.msg);
    if (link[0] >= 0) {
        close(link[0]);
    }
    if (link[1] >= 0) {
        close(link[1]);
    }
    if (sig_fd >= 0) {
        close(sig_fd);
    }
    if (listen_fd >= 0) {
        close(listen_fd);
    }
    if (bind != NULL) {
        ssh_bind_free(bind);
    }
    ssh_key_free(hostkey);
    ssh_finalize();
    return r;
}
