/*
 * The RDP proxy's spawner and the main process's end of the link to it
 * (rdp_server.h). The shape is the SSH proxy's (sshproxy/server.c) with
 * less in it: no host keys to hand over. The pre-authentication limits
 * are the SSH spawner's, with the same [ssh] settings and an admission
 * table of the RDP spawner's own (sshproxy/preauth.h): max_sessions
 * children in all, max_startups (start:rate:full) before authentication
 * and max_startups_per_source per source (IPv4 address, IPv6 /64),
 * decided before fork. A child's slot before authentication is given
 * back when the main process says it logged in (MP_SPAWN_AUTHED) or when
 * the spawner reaps it. Each child ends itself after login_grace_seconds
 * if it has not logged in (an alarm set before the sandbox); the spawner
 * kills one that outlives that by RDP_GRACE_SLACK_MS.
 */
#include "rdpproxy/rdp_server.h"

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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "rdpproxy/rdp_child.h"
#include "sshproxy/monitor.h"
#include "sshproxy/mproto.h"
#include "sshproxy/preauth.h"
#include "sshproxy/sandbox.h"

#define RDP_PEM_MAX (64 * 1024)
#define RDP_ACCEPT_BATCH 32
#define RDP_GRACE_SLACK_MS 5000
#define RDP_REFUSE_LOG_MS 10000

struct rdp_server {
    const struct config *cfg;
    struct sandbox sb;
    char config_path[4200];   /* FreeRDP's ConfigPath as the child sees it */
    char *cert_pem, *key_pem; /* key wiped at free */
    int listen_fd;
    int link; /* main process's end */
    pid_t spawner;
    struct loop *loop;
    struct monitor *mon;
    struct buf *msg;
    int result;
};

static int rdp_read_pem(const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    char *b = NULL;
    size_t n;

    *out = NULL;
    if (f == NULL) {
        log_error("[rdp] cannot read %s: %s", path, strerror(errno));
        return ERR_CONFIG;
    }
    if ((b = malloc(RDP_PEM_MAX + 1)) == NULL) {
        fclose(f);
        return ERR_NOMEM;
    }
    n = fread(b, 1, RDP_PEM_MAX + 1, f);
    fclose(f);
    if (n == 0 || n > RDP_PEM_MAX) {
        log_error("[rdp] %s is empty or longer than %d bytes", path,
                  RDP_PEM_MAX);
        free(b);
        return ERR_CONFIG;
    }
    b[n] = '\0';
    *out = b;
    return ERR_OK;
}

/*
 * The RDP children's root. FreeRDP's client insists on a configuration
 * directory with "certs" and "server" in it (its certificate store),
 * even when the certificate check is ours (ExternalCertificateManagement):
 * it creates them if missing, and fails if it cannot. So the children
 * get a root of their own, "<data_dir>/rdp-root", empty but for
 * freerdp/certs and freerdp/server, owned by root and not writable by
 * the unprivileged user (nothing is ever written there).
 */
static int rdp_make_root(struct rdp_server *s)
{
    static const char *const sub[] = {"", "/freerdp", "/freerdp/certs",
                                      "/freerdp/server"};
    char path[4300];
    struct stat st;

    snprintf(s->sb.empty_dir, sizeof(s->sb.empty_dir), "%s/rdp-root",
             s->cfg->data_dir);
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", s->sb.empty_dir, sub[i]);
        /* chmod too: the server's umask (077) would leave the
         * unprivileged user unable to look inside */
        if ((mkdir(path, 0755) != 0 && errno != EEXIST) ||
            chmod(path, 0755) != 0) {
            log_error("cannot create %s: %s", path, strerror(errno));
            return ERR_IO;
        }
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode) ||
            (st.st_mode & 022) != 0 || (s->sb.drop && st.st_uid != 0)) {
            log_error("%s must be a directory%s not writable by others", path,
                      s->sb.drop ? " owned by root and" : "");
            return ERR_CONFIG;
        }
    }
    snprintf(s->config_path, sizeof(s->config_path), "%s/freerdp",
             s->sb.drop ? "" : s->sb.empty_dir);
    return ERR_OK;
}

int rdp_server_new(const struct config *cfg, struct rdp_server **out)
{
    struct rdp_server *s;
    int r;

    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        return ERR_NOMEM;
    }
    s->cfg = cfg;
    s->listen_fd = -1;
    s->link = -1;
    if ((r = rdp_read_pem(cfg->rdp_tls_cert, &s->cert_pem)) != ERR_OK ||
        (r = rdp_read_pem(cfg->rdp_tls_key, &s->key_pem)) != ERR_OK ||
        (r = sandbox_prepare(cfg->privsep_user, cfg->data_dir, &s->sb)) !=
            ERR_OK ||
        (r = rdp_make_root(s)) != ERR_OK) {
        goto fail;
    }
    if ((s->msg = buf_new(MPROTO_MAX)) == NULL) {
        r = ERR_NOMEM;
        goto fail;
    }
    *out = s;
    return ERR_OK;
fail:
    rdp_server_free(s);
    return r;
}

int rdp_server_listen(struct rdp_server *s)
{
    struct addrinfo hints, *res = NULL, *ai;
    char ports[16];
    int fd = -1, yes = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    snprintf(ports, sizeof(ports), "%d", s->cfg->rdp_port);
    if ((rc = getaddrinfo(s->cfg->rdp_listen, ports, &hints, &res)) != 0) {
        log_error("[rdp] listen address %s: %s", s->cfg->rdp_listen,
                  gai_strerror(rc));
        return ERR_IO;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, 128) == 0) {
            break;
        }
        log_error("[rdp] cannot listen on %s port %d: %s", s->cfg->rdp_listen,
                  s->cfg->rdp_port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    s->listen_fd = fd;
    return fd >= 0 ? ERR_OK : ERR_IO;
}

static void rdp_addr_str(const struct sockaddr_storage *ss, char *out,
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

struct rdp_spawner {
    struct rdp_server *s;
    int listen_fd, link, sig_fd;
    struct preauth *admit; /* every child not yet reaped */
    uint64_t refused;      /* connections refused since the last log line */
    int64_t refused_log;   /* util_mono_ms() of that line */
    enum preauth_verdict refused_why;
};

/* A refused connection is closed before any byte is read (RDP has nothing
 * as cheap as SSH's disconnect message to send first); a summary is
 * logged now and then, not a line per connection. */
static void rdp_spawner_refuse(struct rdp_spawner *sp, int fd, const char *addr,
                               enum preauth_verdict v)
{
    int64_t now = util_mono_ms();

    close(fd);
    sp->refused++;
    sp->refused_why = v;
    if (now - sp->refused_log >= RDP_REFUSE_LOG_MS) {
        log_warn("[rdp] refused %llu connection(s) before forking (last: "
                 "%s: %s; %d unauthenticated, %d in all)",
                 (unsigned long long)sp->refused, addr,
                 preauth_verdict_str(sp->refused_why),
                 preauth_unauth(sp->admit), preauth_live(sp->admit));
        sp->refused = 0;
        sp->refused_log = now;
    }
}

static bool rdp_spawner_accept(struct rdp_spawner *sp)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct rdp_child_args ca;
    struct preauth_src src;
    enum preauth_verdict v;
    char addr[64];
    int fd, pair[2], fds[2], pidfd;
    struct buf *b = sp->s->msg;
    pid_t pid;

    fd = accept4(sp->listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_CLOEXEC);
    if (fd < 0) {
        return errno == ECONNABORTED || errno == EINTR;
    }
    rdp_addr_str(&ss, addr, sizeof(addr));
    preauth_source_of((struct sockaddr *)&ss, sslen, &src);
    v = preauth_admit(sp->admit, &src, randombytes_uniform(100));
    if (v != PREAUTH_ACCEPT) {
        rdp_spawner_refuse(sp, fd, addr, v);
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
        ca.sb = &sp->s->sb;
        ca.cert_pem = sp->s->cert_pem;
        ca.key_pem = sp->s->key_pem;
        ca.login_grace_seconds = sp->s->cfg->login_grace_seconds;
        ca.config_path = sp->s->config_path;
        ca.client_addr = addr;
        _exit(rdp_child_run(&ca));
    }
    close(fd);
    close(pair[1]);
    pidfd = pidfd_open(pid, 0);
    if (pidfd < 0 ||
        preauth_add(sp->admit, pid, &src, util_mono_ms()) != ERR_OK) {
        log_error("cannot track RDP child %ld: %s", (long)pid,
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
        log_error("cannot hand RDP child %ld to the main process", (long)pid);
        kill(pid, SIGKILL);
    }
    close(pidfd);
    close(pair[0]);
    return true;
}

static void rdp_spawner_reap(struct rdp_spawner *sp)
{
    struct buf *b = sp->s->msg;
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        (void)preauth_gone(sp->admit, pid);
        buf_reset(b);
        if (buf_put_u32(b, (uint32_t)pid) != ERR_OK ||
            buf_put_u32(b, (uint32_t)status) != ERR_OK ||
            mproto_send(sp->link, MP_SPAWN_EXIT, b, -1, 0) != ERR_OK) {
            log_warn("cannot report the exit of RDP child %ld", (long)pid);
        }
    }
}

/* Kills children still before authentication well past their login
 * grace time (their own alarm should have ended them); not reaped yet, so
 * their pids are still ours. */
static void rdp_spawner_overdue(struct rdp_spawner *sp)
{
    pid_t pids[64];
    size_t n = preauth_overdue(sp->admit, util_mono_ms(),
                               (int64_t)sp->s->cfg->login_grace_seconds * 1000 +
                                   RDP_GRACE_SLACK_MS,
                               pids, sizeof(pids) / sizeof(pids[0]));

    for (size_t i = 0; i < n; i++) {
        log_warn("RDP child %ld outlived its login grace time; killing it",
                 (long)pids[i]);
        kill(pids[i], SIGKILL);
    }
}

/* A message from the main process; false when it is gone. */
static bool rdp_spawner_on_link(struct rdp_spawner *sp)
{
    uint32_t pid = 0;
    uint8_t type = 0;

    if (mproto_recv(sp->link, &type, sp->s->msg, NULL) != ERR_OK) {
        return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    if (type == MP_SPAWN_AUTHED && buf_get_u32(sp->s->msg, &pid) == ERR_OK &&
        buf_expect_end(sp->s->msg) == ERR_OK) {
        (void)preauth_authed(sp->admit, (pid_t)pid);
    } else {
        log_warn("unexpected message %u from the main process", type);
    }
    return true;
}

static int rdp_spawner_run(struct rdp_spawner *sp)
{
    struct signalfd_siginfo si;
    struct pollfd pfd[3];
    pid_t pid;
    int i;

    for (;;) {
        pfd[0].fd = sp->listen_fd;
        pfd[0].events = POLLIN;
        pfd[1].fd = sp->link;
        pfd[1].events = POLLIN;
        pfd[2].fd = sp->sig_fd;
        pfd[2].events = POLLIN;
        if (poll(pfd, 3, preauth_unauth(sp->admit) > 0 ? 1000 : -1) < 0) {
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
            rdp_spawner_reap(sp);
        }
        if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !rdp_spawner_on_link(sp)) {
            break; /* the main process is gone */
        }
        if (pfd[0].revents & POLLIN) {
            for (i = 0; i < RDP_ACCEPT_BATCH && rdp_spawner_accept(sp); i++) {
            }
        }
        rdp_spawner_overdue(sp);
    }
    signal(SIGTERM, SIG_IGN);
    kill(0, SIGTERM);
    while (preauth_live(sp->admit) > 0 && (pid = waitpid(-1, NULL, 0)) > 0) {
        (void)preauth_gone(sp->admit, pid);
    }
    return 0;
}

int rdp_server_spawn(struct rdp_server *s, int sig_fd, const int *keep_out,
                     int nkeep_out)
{
    struct rdp_spawner sp;
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
        if (setsid() < 0) {
            setpgid(0, 0);
        }
        close(link[0]);
        for (int i = 0; i < nkeep_out; i++) {
            if (keep_out[i] >= 0) {
                close(keep_out[i]);
            }
        }
        memset(&sp, 0, sizeof(sp));
        sp.s = s;
        sp.listen_fd = s->listen_fd;
        sp.link = link[1];
        sp.sig_fd = sig_fd;
        {
            struct preauth_limits lim = {
                .start = s->cfg->max_startups_begin,
                .rate = s->cfg->max_startups_rate,
                .full = s->cfg->max_startups,
                .per_source = s->cfg->max_startups_per_source,
                .max_sessions = s->cfg->max_sessions,
            };
            uint64_t seed;

            randombytes_buf(&seed, sizeof(seed));
            sp.admit = preauth_new(&lim, seed);
            sp.refused_log = util_mono_ms() - RDP_REFUSE_LOG_MS;
        }
        if (sp.admit == NULL || util_set_nonblock(s->listen_fd) != ERR_OK) {
            log_error("the RDP spawner cannot start");
            _exit(1);
        }
        _exit(rdp_spawner_run(&sp));
    }
    close(link[1]);
    close(s->listen_fd);
    s->listen_fd = -1;
    /* the main process never needs the private key */
    sodium_memzero(s->key_pem, strlen(s->key_pem));
    s->link = link[0];
    s->spawner = pid;
    return ERR_OK;
}

int rdp_server_link_fd(const struct rdp_server *s)
{
    return s != NULL ? s->link : -1;
}

/* --- the main process --- */

/* The monitor's word that an RDP child logged in: its slot before
 * authentication goes back to the spawner. Sent without blocking; if the
 * link is full the slot comes back when the child is reaped instead. */
static void rdp_server_on_authed(void *arg, pid_t pid)
{
    struct rdp_server *s = arg;
    struct buf *b = buf_new(16);

    if (b == NULL || s->link < 0 || buf_put_u32(b, (uint32_t)pid) != ERR_OK ||
        mproto_send(s->link, MP_SPAWN_AUTHED, b, -1, 1) != ERR_OK) {
        log_warn("cannot tell the RDP spawner that child %ld logged in",
                 (long)pid);
    }
    buf_free(b);
}

static void rdp_server_on_link(struct loop *l, int fd, int events, void *arg)
{
    struct rdp_server *s = arg;
    uint32_t pid = 0, status = 0;
    char addr[64] = "";
    uint8_t type = 0;
    int fds[2] = {-1, -1};
    size_t nfds = 0;
    struct mchild *c;

    if (mproto_recv_fds(s->link, &type, s->msg, fds, 2, &nfds) != ERR_OK) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }
        log_error("the RDP spawner is gone; shutting down");
        s->result = ERR_INTERNAL;
        loop_stop(l);
        return;
    }
    if (type == MP_SPAWN_NEW && nfds == 2 &&
        buf_get_u32(s->msg, &pid) == ERR_OK &&
        buf_get_cstring_into(s->msg, addr, sizeof(addr)) == ERR_OK) {
        c = monitor_child_new(s->mon, (pid_t)pid, fds[1], fds[0], addr);
        if (c == NULL) {
            log_error("cannot track RDP child %lu; ended it",
                      (unsigned long)pid);
        } else {
            c->rdp = true;
        }
        return;
    }
    for (size_t i = 0; i < nfds; i++) {
        if (type == MP_SPAWN_NEW && i == 1) {
            (void)pidfd_send_signal(fds[1], SIGKILL, NULL, 0);
        }
        close(fds[i]);
    }
    if (type == MP_SPAWN_EXIT && buf_get_u32(s->msg, &pid) == ERR_OK &&
        buf_get_u32(s->msg, &status) == ERR_OK) {
        monitor_child_exit(s->mon, (pid_t)pid, (int)status);
        return;
    }
    log_warn("unexpected message %u from the RDP spawner", type);
}

int rdp_server_attach(struct rdp_server *s, struct loop *loop,
                      struct monitor *mon)
{
    s->loop = loop;
    s->mon = mon;
    mon->on_rdp_authed = rdp_server_on_authed;
    mon->on_rdp_authed_arg = s;
    if (loop_add_fd(loop, s->link, LOOP_READ, rdp_server_on_link, s) !=
        ERR_OK) {
        return ERR_NOMEM;
    }
    log_info("RDP proxy listening on %s port %d", s->cfg->rdp_listen,
             s->cfg->rdp_port);
    return ERR_OK;
}

int rdp_server_result(const struct rdp_server *s)
{
    return s != NULL ? s->result : ERR_OK;
}

void rdp_server_stop(struct rdp_server *s)
{
    if (s == NULL) {
        return;
    }
    if (s->mon != NULL && s->mon->on_rdp_authed == rdp_server_on_authed) {
        s->mon->on_rdp_authed = NULL;
        s->mon->on_rdp_authed_arg = NULL;
    }
    if (s->link >= 0) {
        if (s->loop != NULL) {
            loop_del_fd(s->loop, s->link);
        }
        close(s->link);
        s->link = -1;
    }
    if (s->spawner > 0) {
        kill(s->spawner, SIGTERM);
        waitpid(s->spawner, NULL, 0);
        s->spawner = 0;
    }
}

void rdp_server_free(struct rdp_server *s)
{
    if (s == NULL) {
        return;
    }
    rdp_server_stop(s);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    if (s->key_pem != NULL) {
        sodium_memzero(s->key_pem, strlen(s->key_pem));
    }
    free(s->key_pem);
    free(s->cert_pem);
    buf_free(s->msg);
    free(s);
}
