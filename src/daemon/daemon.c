/*
 * The composition root of `portcullis serve` (daemon.h). The order is
 * the security argument, so it is written out here once:
 *
 *  1. The SSH proxy's preparation (banner, missing host keys, sandbox)
 *     and a check that the store and vault open, so a bad setup fails
 *     before anything is forked.
 *  2. The listening socket, the blocked signals and their signalfd, then
 *     the spawner is forked (sshproxy/server.h): it and the session
 *     children it forks never inherit the store or the vault key, which
 *     are opened only after it. With [rdp] enabled, the RDP proxy's
 *     listening socket and spawner follow (rdpproxy/rdp_server.h), on
 *     the same terms; its children talk to the same monitor.
 *  3. In the main process: the event loop, the monitor (store, vault,
 *     login throttle), the host keys (the spawner gets the public ones).
 *  4. The agent hub, the tunnels, the browser terminals' tickets and the
 *     HTTP side (REST API, agents' WebSocket) on the same loop and store,
 *     then the routes (route/route.h) by which the monitor's CONNECT
 *     reaches an asset, directly or through the hub; the HTTP side shares
 *     the monitor's password-check pool and lockout table.
 *  5. This node's row in the cluster (daemon/cluster.h: heartbeat, dead
 *     nodes, notices from other nodes), store-change notices from the
 *     CLI, the retention timer, then the loop runs until SIGTERM/SIGINT
 *     or the spawner's end.
 *
 * Shutdown runs backwards: the spawners first, drained while the loop
 * still runs (daemon_on_signal: they end every session, and the monitor
 * answers the sessions' last requests, which close their report rows,
 * for at most DAEMON_DRAIN_MS), then HTTP (closing the agents' WebSockets frees
 * them in the hub), the tunnels, the hub and the monitor.
 */
#include "daemon/daemon.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "auth/jwt.h"
#include "admin/admin_schedule.h"
#include "auth/webticket.h"
#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/notify.h"
#include "common/util.h"
#include "store/audit.h"
#include "store/jobs.h"
#include "daemon/cluster.h"
#include "http/http.h"
#include "http/http_proxy.h"
#include "hub/hub.h"
#include "hub/tunnel.h"
#include "rdpproxy/rdp_server.h"
#include "record/retention.h"
#include "route/route.h"
#include "sshproxy/monitor.h"
#include "sshproxy/server.h"
#include "store/nodes.h"
#include "store/store_worker.h"

#define DAEMON_RETENTION_MS (3600 * 1000)

struct daemon {
    const struct config *cfg;
    struct loop *loop;
    struct monitor mon;
    struct server *ssh;
    struct rdp_server *rdp; /* [rdp]: NULL unless enabled */
    struct hub *hub;
    struct routes *routes; /* freed after the monitor (its requests) */
    struct tunnels *tunnels;
    struct http *http;
    struct http_proxy *proxy; /* [http_proxy]: NULL unless enabled */
    struct notify *notify;
    struct cluster *cluster;       /* this node's row, heartbeat, notices */
    struct jwt_key *node_key;      /* node credentials (NULL until needed) */
    struct notify *ask;            /* `portcullis agent pair` asks here */
    struct admin_scheduler *sched; /* schedules' ticks */
    /* the retention sweep's store worker (daemon_on_retention) */
    struct store_worker *sweeper;
    int sig_fd;
    int64_t drain_until; /* monotonic ms: shutting down, sessions ending */
};

/* How long a shutdown waits for the sessions to end (each writes its
 * message to the client, flushes its recording and closes its report
 * rows through the monitor: well under a second each, all at once). */
#define DAEMON_DRAIN_MS 10000
#define DAEMON_DRAIN_TICK_MS 50
/* In the data directory: audit events not written when the server
 * stopped (store/audit.h audit_spool). */
#define DAEMON_AUDIT_SPOOL "audit-pending"

/* The retention sweep's store work (and the recordings' files): on a
 * database server on a worker of its own, one sweep at a time, so a
 * slow database or a lock on the sessions or jobs rows delays the sweep,
 * not the loop (docs/store.md "Jobs off the loop"); on SQLite in line. */
struct daemon_sweep {
    struct store_work job; /* first: the worker's */
    /* the job's own copies: a sweep left running at the stop outlives
     * the configuration */
    char *record_dir;
    int record_days, jobs_days;
    int64_t now;
    int rec_r, rec_deleted, jobs_r, jobs_deleted;
};

static void daemon_sweep_work(struct store_work *w, struct store *st)
{
    struct daemon_sweep *sw = (struct daemon_sweep *)w;

    if (sw->record_days > 0) {
        sw->rec_r = record_retention_sweep(st, sw->record_dir,
                                           (int64_t)sw->record_days * 86400, 0,
                                           &sw->rec_deleted);
    }
    if (sw->jobs_days > 0) {
        sw->jobs_r = store_job_prune(
            st, sw->now - (int64_t)sw->jobs_days * 86400, &sw->jobs_deleted);
    }
}

static void daemon_sweep_done(void *owner, struct store_work *w)
{
    struct daemon_sweep *sw = (struct daemon_sweep *)w;

    if (owner == NULL) {
        /* dropped or forgotten at the stop: nothing to say */
    } else if (!w->ran) {
        log_warn("retention sweep: no connection to the database");
    } else {
        if (sw->rec_r != ERR_OK) {
            log_warn("recording retention sweep failed");
        } else if (sw->rec_deleted > 0) {
            log_info("retention: deleted %d recordings older than %d days",
                     sw->rec_deleted, sw->record_days);
        }
        if (sw->jobs_r != ERR_OK) {
            log_warn("job retention sweep failed");
        } else if (sw->jobs_deleted > 0) {
            log_info("retention: deleted %d jobs (and their output) that "
                     "ended more than %d days ago",
                     sw->jobs_deleted, sw->jobs_days);
        }
    }
    free(sw->record_dir);
    free(sw);
}

/* Deletes recordings older than [record] retention_days (each deletion
 * is an audit event) and jobs that ended more than [jobs] retention_days
 * ago, now and then every hour. */
static void daemon_on_retention(struct loop *l, void *arg)
{
    struct daemon *d = arg;
    struct daemon_sweep *sw;

    if (d->cfg->record_retention_days <= 0 &&
        d->cfg->jobs_retention_days <= 0) {
        return;
    }
    (void)loop_add_timer(l, DAEMON_RETENTION_MS, daemon_on_retention, d);
    if (d->sweeper != NULL && store_worker_busy(d->sweeper)) {
        return; /* the last one still waits for the database */
    }
    if (d->sweeper == NULL &&
        (d->sweeper = store_worker_new(l, d->mon.store, d->cfg->store_path, 1,
                                       "the retention sweep", d)) == NULL) {
        return;
    }
    if ((sw = calloc(1, sizeof(*sw))) == NULL) {
        return;
    }
    if (d->cfg->record_dir != NULL &&
        (sw->record_dir = strdup(d->cfg->record_dir)) == NULL) {
        free(sw);
        return;
    }
    sw->record_days = d->cfg->record_retention_days;
    sw->jobs_days = d->cfg->jobs_retention_days;
    sw->now = util_now();
    sw->job.work = daemon_sweep_work;
    sw->job.done = daemon_sweep_done;
    store_worker_run(d->sweeper, &sw->job);
}

/*
 * Whether a session child is still there. Its monitor socket closing is
 * not enough: a compromised child can close it and ignore SIGTERM, and
 * its spawner, which waits for every child before it exits, would then
 * hold the main process's spawner_stop for ever. Its pidfd turns
 * readable only once the process has exited (it names this child, never
 * a later process with its pid). Without a pidfd: while its socket is
 * open.
 */
static bool daemon_child_alive(const struct mchild *c)
{
    struct pollfd p = {.fd = c->pidfd, .events = POLLIN};

    if (c->fd >= 0) {
        return true;
    }
    return c->pidfd >= 0 && poll(&p, 1, 0) == 0;
}

/* Session children still there. */
static int daemon_sessions_left(const struct daemon *d)
{
    int n = 0;

    for (const struct mchild *c = d->mon.children; c != NULL; c = c->next) {
        n += daemon_child_alive(c);
    }
    return n;
}

/* SIGKILL to every session child still there (a stopped one included);
 * their rows are closed by monitor_free as "error: server shut down". */
static int daemon_kill_sessions(struct daemon *d)
{
    int n = 0;

    for (struct mchild *c = d->mon.children; c != NULL; c = c->next) {
        if (c->pidfd >= 0 && daemon_child_alive(c) &&
            pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0) == 0) {
            n++;
        }
    }
    return n;
}

/* Shutting down: the loop runs until every session has ended (its
 * process exited) or DAEMON_DRAIN_MS have passed; the sessions still
 * there then are ended with SIGKILL (their rows are closed by
 * monitor_free as "error: server shut down"), so that the spawners,
 * which wait for their children, can exit. */
static void daemon_on_drain(struct loop *l, void *arg)
{
    struct daemon *d = arg;
    int left = daemon_sessions_left(d);

    if (left > 0 && util_mono_ms() < d->drain_until) {
        (void)loop_add_timer(l, DAEMON_DRAIN_TICK_MS, daemon_on_drain, d);
        return;
    }
    if (left > 0) {
        log_warn("%d session%s did not end within %d s of the shutdown; "
                 "killed",
                 left, left == 1 ? "" : "s", DAEMON_DRAIN_MS / 1000);
        (void)daemon_kill_sessions(d);
    }
    loop_stop(l);
}

/* SIGTERM or SIGINT: the spawners go first (no new connection; they end
 * every session), the loop goes on until the sessions have said their
 * last (daemon_on_drain). A second signal stops at once: the sessions
 * still there are killed, or a spawner waiting for one that does not end
 * (stopped, or ignoring SIGTERM) would hold the stop for ever. */
static void daemon_on_signal(struct loop *l, int fd, int events, void *arg)
{
    struct daemon *d = arg;
    struct signalfd_siginfo si;

    if (read(fd, &si, sizeof(si)) != sizeof(si) ||
        (si.ssi_signo != SIGTERM && si.ssi_signo != SIGINT)) {
        return;
    }
    if (d->drain_until != 0) {
        int killed = daemon_kill_sessions(d);

        if (killed > 0) {
            log_info("shutting down at once; %d session%s killed", killed,
                     killed == 1 ? "" : "s");
        } else {
            log_info("shutting down at once");
        }
        loop_stop(l);
        return;
    }
    log_info("shutting down");
    d->drain_until = util_mono_ms() + DAEMON_DRAIN_MS;
    rdp_server_drain(d->rdp);
    server_drain(d->ssh);
    daemon_on_drain(l, d);
}

/* The CLI changed the store (common/notify.h). */
static void daemon_on_notify(void *arg, unsigned what)
{
    hub_changed(arg, what);
}

/* This node's credential for another node's proxy (route/route.h
 * routes_set_node_token, auth/jwt.h): made with the JWT secret every node
 * of a cluster shares, loaded at the first use. */
static int daemon_node_token(void *arg, char *out, size_t outlen)
{
    struct daemon *d = arg;
    int r;

    if (d->node_key == NULL && (r = jwt_key_load(d->cfg->http_jwt_secret, false,
                                                 &d->node_key)) != ERR_OK) {
        log_warn("cannot load %s for a node credential: %s",
                 d->cfg->http_jwt_secret, err_str(r));
        return r;
    }
    return jwt_node_token(d->node_key, store_node_self(d->mon.store),
                          util_now(), out, outlen);
}

/* Agents cost three descriptors each (docs/operations.md). */
static void daemon_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Steps 1 and 2: everything before the spawner exists, and its fork. */
static int daemon_spawn(struct daemon *d)
{
    sigset_t mask;
    int r;

    if ((r = server_new(d->cfg, &d->ssh)) != ERR_OK) {
        return r;
    }
    /* Check the store and vault now, so a bad setup fails before forking. */
    r = monitor_init(&d->mon, d->cfg, NULL);
    monitor_free(&d->mon);
    if (r != ERR_OK) {
        return r;
    }
    if ((r = server_listen(d->ssh)) != ERR_OK) {
        return r;
    }
    if (d->cfg->rdp_enabled &&
        (r = rdp_server_new(d->cfg, &d->rdp)) != ERR_OK) {
        return r;
    }
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((d->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
        return ERR_IO;
    }
    if ((r = server_spawn(d->ssh, d->sig_fd)) != ERR_OK) {
        return r;
    }
    /* The RDP spawner, likewise before the store and the vault key; it
     * must not keep the main process's end of the SSH spawner's link. */
    if (d->rdp != NULL) {
        int other = server_link_fd(d->ssh);

        /* listening only now, so the SSH spawner holds no RDP socket */
        if ((r = rdp_server_listen(d->rdp)) != ERR_OK) {
            return r;
        }
        return rdp_server_spawn(d->rdp, d->sig_fd, &other, 1);
    }
    return ERR_OK;
}

/* Tunnels through peers reach their target by the route module (hub/
 * sits below route/, so the wiring is here): one of these per pending
 * connection, the tunnel's handle. */
struct daemon_dial {
    struct route_req *rq;
    tunnel_dial_done_fn done;
    void *arg;
};

static void daemon_dial_done(void *arg, const struct route_result *r)
{
    struct daemon_dial *dd = arg;
    tunnel_dial_done_fn done = dd->done;
    void *darg = dd->arg;

    free(dd);
    done(darg, r->fd, r->why);
}

static void *daemon_tunnel_dial(void *ctx, const char *route, bool udp,
                                const char *host, int port, const char *orig_ip,
                                int orig_port, tunnel_dial_done_fn done,
                                void *arg)
{
    struct daemon_dial *dd;
    struct route_req *rq;
    struct route rt;
    char why[256];

    if (route_parse(route, &rt, why, sizeof(why)) != ERR_OK) {
        done(arg, -1, why);
        return NULL;
    }
    rt.udp = udp;
    if ((dd = calloc(1, sizeof(*dd))) == NULL) {
        done(arg, -1, "out of memory");
        return NULL;
    }
    dd->done = done;
    dd->arg = arg;
    /* NULL: daemon_dial_done ran (and freed dd) already */
    rq = route_connect(ctx, &rt, host, port, orig_ip, orig_port,
                       daemon_dial_done, dd);
    if (rq == NULL) {
        return NULL;
    }
    dd->rq = rq;
    return dd;
}

static void daemon_tunnel_cancel(void *handle)
{
    struct daemon_dial *dd = handle;

    route_cancel(dd->rq);
    free(dd);
}

/* Step 4: the agent hub, tunnels and the HTTP side (REST API, agents'
 * WebSocket) share the loop and the monitor's store. */
static int daemon_start_services(struct daemon *d)
{
    struct monitor *m = &d->mon;
    int r;

    if ((r = hub_start(&d->hub, d->cfg, d->loop, m->store)) != ERR_OK ||
        (d->routes = routes_new(d->loop, d->cfg, d->hub)) == NULL) {
        return r ? r : ERR_NOMEM;
    }
    /* the monitor's CONNECT reaches assets directly, through agents or
     * through peer nodes; tunnels through peers go the same way */
    routes_set_store(d->routes, m->store, m->vault);
    routes_set_node_token(d->routes, daemon_node_token, d);
    m->routes = d->routes;
    if ((r = tunnels_start(&d->tunnels, d->cfg, d->loop, m->store, d->hub,
                           &(struct tunnel_dial){daemon_tunnel_dial,
                                                 daemon_tunnel_cancel,
                                                 d->routes})) != ERR_OK ||
        (m->tickets = webtickets_new()) == NULL ||
        (r = http_start(&d->http, d->cfg, d->loop, m->store, m->vault, d->hub,
                        m->tickets)) != ERR_OK) {
        return r ? r : ERR_NOMEM;
    }
    /* one cap on password checks, one lockout table */
    http_share_auth(d->http, m->hashes, m->lockout);
    http_set_tunnels(d->http, d->tunnels);
    /* the peer-node CONNECT proxy, when this node serves a segment */
    if ((r = http_proxy_start(&d->proxy, d->cfg, d->loop, m->store, d->hub)) !=
        ERR_OK) {
        log_error("the peer-node CONNECT proxy did not start");
        return r;
    }
    return ERR_OK;
}

/* Undoes daemon_start_services (each part may be missing). HTTP first:
 * closing the agents' WebSockets frees them in the hub. */
static void daemon_stop_services(struct daemon *d)
{
    http_proxy_stop(d->proxy);
    d->proxy = NULL;
    http_stop(d->http);
    d->http = NULL;
    tunnels_stop(d->tunnels);
    d->tunnels = NULL;
    /* pending agent routes fail now ("agent disconnected"); the monitor
     * cancels the rest when it frees its children */
    hub_stop(d->hub);
    d->hub = NULL;
    webtickets_free(d->mon.tickets);
    d->mon.tickets = NULL;
    /* they read the monitor's store, which every caller frees next */
    routes_stop_reads(d->routes);
}

int daemon_run(const struct config *cfg)
{
    struct daemon d;
    int r, count = 0;
    unsigned left;
    char spool[PATH_MAX];

    memset(&d, 0, sizeof(d));
    d.cfg = cfg;
    d.sig_fd = -1;
    ssh_init();
    if ((r = daemon_spawn(&d)) != ERR_OK) {
        goto out;
    }
    daemon_raise_nofile();
    /* Step 3. On failure the spawner may still wait for the host keys
     * (with SIGTERM blocked for its signalfd): the closed link ends it. */
    if ((d.loop = loop_new()) == NULL ||
        (r = monitor_init(&d.mon, cfg, d.loop)) != ERR_OK ||
        (r = server_attach(d.ssh, d.loop, &d.mon)) != ERR_OK ||
        (d.rdp != NULL &&
         (r = rdp_server_attach(d.rdp, d.loop, &d.mon)) != ERR_OK) ||
        loop_add_fd(d.loop, d.sig_fd, LOOP_READ, daemon_on_signal, &d) !=
            ERR_OK) {
        r = r ? r : ERR_NOMEM;
        rdp_server_stop(d.rdp);
        server_stop(d.ssh, true);
        monitor_free(&d.mon);
        goto out;
    }
    /* rows the store writes from now on are this node's */
    if ((r = cluster_identify(cfg, d.mon.store)) != ERR_OK) {
        server_stop(d.ssh, true);
        monitor_free(&d.mon);
        goto out;
    }
    /* audit events a run stopped during a database outage kept */
    if (snprintf(spool, sizeof(spool), "%s/%s", cfg->data_dir,
                 DAEMON_AUDIT_SPOOL) < (int)sizeof(spool)) {
        (void)audit_spool(d.mon.store, spool);
    }
    if (store_session_close_dangling(d.mon.store, util_now(),
                                     "error: interrupted", &count) == ERR_OK &&
        count > 0) {
        log_warn("closed %d report rows left open by a previous run", count);
    }
    if ((r = daemon_start_services(&d)) != ERR_OK) {
        rdp_server_stop(d.rdp);
        server_stop(d.ssh, true);
        daemon_stop_services(&d);
        monitor_free(&d.mon);
        goto out;
    }
    /* Step 5. */
    if ((r = cluster_start(&d.cluster, cfg, d.loop, d.mon.store, d.hub)) !=
        ERR_OK) {
        server_stop(d.ssh, true);
        daemon_stop_services(&d);
        monitor_free(&d.mon);
        goto out;
    }
    if (notify_listen(&d.notify, d.loop, cfg->data_dir, daemon_on_notify,
                      d.hub) != ERR_OK) {
        log_warn("cannot listen for store-change notices; CLI changes to "
                 "credentials and tunnels apply after a restart");
    }
    if (d.hub != NULL && hub_watch_listen(d.hub, cfg->data_dir) != ERR_OK) {
        log_warn("cannot serve the CLI's job watchers; `portcullis job "
                 "--follow` reads the store instead");
    }
    if (notify_listen_ask(&d.ask, d.loop, cfg->data_dir, http_pair_ask,
                          d.http) != ERR_OK) {
        log_warn("cannot listen for the CLI's questions; `portcullis agent "
                 "pair` will not work (the API's POST /pairing does)");
    }
    log_info("listening on %s port %d", cfg->ssh_listen, cfg->ssh_port);
    (void)loop_add_timer(d.loop, 0, daemon_on_retention, &d);
    if ((d.sched = admin_scheduler_start(d.loop, d.mon.store, cfg, d.hub)) ==
        NULL) {
        log_warn("cannot start the schedules' ticks (out of memory): "
                 "schedules do not fire");
    }
    r = loop_run(d.loop);
    if (r == ERR_OK) {
        r = server_result(d.ssh);
    }
    if (r == ERR_OK) {
        r = rdp_server_result(d.rdp);
    }
    admin_scheduler_stop(d.sched);
    /* a sweep that waits for the database is left to finish or not */
    (void)store_worker_stop(d.sweeper, 200);
    rdp_server_stop(d.rdp);
    server_stop(d.ssh, false);
    notify_close(d.notify);
    cluster_stop(d.cluster);
    daemon_stop_services(&d);
    /* after the API: it answers the pairing questions still out (the
     * server stopped) through this socket; the loop no longer runs, so
     * no question reaches the freed API */
    notify_close(d.ask);
    monitor_free(&d.mon);
out:
    routes_free(d.routes);
    rdp_server_free(d.rdp);
    jwt_key_free(d.node_key);
    server_free(d.ssh);
    left = loop_free(d.loop);
    if (d.sig_fd >= 0) {
        close(d.sig_fd);
    }
    ssh_finalize();
    if (left > 0) {
        /* Jobs stuck on worker threads (a database that does not
         * answer): libuv's exit handler would join those threads for
         * ever, so the process ends here (loop_free said so). */
        log_info("stopped");
        (void)fflush(NULL);
        _exit(r == ERR_OK ? 0 : 1);
    }
    return r;
}
