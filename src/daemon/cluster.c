/*
 * This server as a node of a cluster (cluster.h).
 *
 * The node ID is kept in DATA/node.id so that a restarted node is the same
 * node (its own leftovers are its own to clean up at start, as before);
 * the name is [node] name or the host name.
 *
 * Every [node] heartbeat_seconds the node refreshes its row and then
 * looks for nodes whose heartbeat is older than [node] dead_after_seconds:
 * store_node_reap() declares them dead, closes their open report rows as
 * interrupted and marks their agents offline, exactly once across the
 * cluster (the store's write lock and a conditional UPDATE). The agents
 * themselves come back by reconnecting to another node from their list of
 * server URLs.
 *
 * On PostgreSQL the heartbeat and the sweep run on a worker thread, on a
 * store connection of their own (a store_worker, store/store_worker.h): a
 * database that is slow, or a lock another session holds on the nodes
 * table, delays the heartbeat, not the server's loop (test_store_pg.py
 * test_loop_answers_while_the_nodes_table_is_locked). One round is in
 * flight at a time; the next is timed from its end. On SQLite (one node,
 * a local file) they stay on the loop.
 *
 * If this node finds it was itself declared dead (it was paused, or cut
 * off from the database for longer than the others wait), its report rows
 * were closed and its agents marked offline by another node: it logs that
 * and writes the agents it still holds online again as its own
 * (hub_reclaim_agents); one that reconnected elsewhere meanwhile stays
 * the other node's.
 */
#include "daemon/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <time.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "store/nodes.h"
#include "store/notices.h"
#include "store/store_worker.h"

#define CLUSTER_ID_FILE "node.id"
#define CLUSTER_RESULT "error: interrupted (its node stopped answering)"
/* How long cluster_stop waits for a heartbeat round on its worker. */
#define CLUSTER_STOP_WAIT_MS 2000

struct cluster_beat;

struct cluster {
    const struct config *cfg;
    struct loop *loop;
    struct store *st;
    struct hub *hub;
    struct store_listener *listener;
    uint64_t timer;
    struct store_node self;
    /* the heartbeat's rounds: on a worker thread with a connection of its
     * own on PostgreSQL, on the loop on SQLite */
    struct store_worker *bg;
};

/* One heartbeat round: the SQL (cluster_beat_work, on a worker thread or
 * inline), then what the loop does with its outcome (cluster_beat_done). */
struct cluster_beat {
    struct store_work job;
    struct store_node self;
    int64_t now, dead_before;
    int r;
    bool was_dead;
    bool reap_ok;
    struct store_node_reaped reaped;
};

static int cluster_read_id(const char *path, char *id)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int r;

    if ((r = util_read_file(path, 256, &data, &len)) != ERR_OK) {
        return r;
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r')) {
        len--;
    }
    r = ERR_INVALID;
    if (len == NODE_ID_MAX) {
        memcpy(id, data, len);
        id[len] = '\0';
        r = ERR_OK;
    }
    free(data);
    return r;
}

int cluster_identify(const struct config *cfg, struct store *st)
{
    char path[4096], id[NODE_ID_MAX + 2];
    unsigned char raw[NODE_ID_MAX / 2];
    int r, n;

    n = snprintf(path, sizeof(path), "%s/%s", cfg->data_dir, CLUSTER_ID_FILE);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return ERR_TOO_LONG;
    }
    r = cluster_read_id(path, id);
    if (r != ERR_OK && r != ERR_NOT_FOUND && r != ERR_IO) {
        log_error("%s holds no node ID (32 hex digits)", path);
        return r;
    }
    if (r != ERR_OK) {
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2hex(id, sizeof(id), raw, sizeof(raw));
        id[NODE_ID_MAX] = '\n';
        if (util_write_file_excl(path, id, NODE_ID_MAX + 1, 0644) != ERR_OK ||
            cluster_read_id(path, id) != ERR_OK) {
            log_error("cannot write the node ID to %s", path);
            return ERR_IO;
        }
    }
    if ((r = store_set_node(st, id)) != ERR_OK) {
        log_error("%s holds no node ID (32 hex digits)", path);
    }
    return r;
}

static void cluster_on_notice(void *arg, unsigned what, const char *from)
{
    struct cluster *c = arg;

    if (strcmp(from, c->self.id) == 0) {
        return; /* our own, acted on when it was made */
    }
    hub_changed(c->hub, what);
}

static void cluster_beat_work(struct store_work *j, struct store *st)
{
    struct cluster_beat *b = (struct cluster_beat *)j;

    b->r = store_node_heartbeat(st, b->self.id, b->now, &b->was_dead);
    if (b->r == ERR_NOT_FOUND) {
        b->r = store_node_register(st, &b->self, b->now);
    }
    b->reap_ok = b->r == ERR_OK &&
                 store_node_reap(st, b->self.id, b->dead_before, b->now,
                                 CLUSTER_RESULT, &b->reaped) == ERR_OK;
}

static void cluster_tick(struct loop *loop, void *arg);

static void cluster_beat_done(void *owner, struct store_work *j)
{
    struct cluster_beat *b = (struct cluster_beat *)j;
    struct cluster *c = owner;

    if (c == NULL) { /* the node stopped meanwhile: only free */
        free(b);
        return;
    }
    if (b->r != ERR_OK) {
        log_warn("node %s: cannot write the heartbeat; other nodes will "
                 "take this node for dead after %d s",
                 c->self.name, c->cfg->node_dead_after_seconds);
    } else if (b->was_dead) {
        log_warn("node %s: another node declared this node dead (no "
                 "heartbeat for %d s); its report rows were closed and its "
                 "agents marked offline",
                 c->self.name, c->cfg->node_dead_after_seconds);
        hub_reclaim_agents(c->hub);
        /* its agents are online again: the other nodes' tunnels for
         * them listen again */
        if (store_notice_publish(c->st, HUB_CHANGE_PRESENCE) != ERR_OK) {
            log_warn("cannot tell the other nodes that this node's agents "
                     "are back");
        }
    }
    if (b->reap_ok && b->reaped.nodes > 0) {
        log_warn("declared %d node(s) dead (no heartbeat for %d s): closed "
                 "%d report row(s) as interrupted, %d agent(s) offline",
                 b->reaped.nodes, c->cfg->node_dead_after_seconds,
                 b->reaped.sessions, b->reaped.agents);
    }
    if (b->reap_ok && b->reaped.agents > 0) {
        /* the dead node's agents are offline now: the tunnels that
         * listened for them here and on the other nodes stop (tunnel.c),
         * as when their node said they went */
        hub_changed(c->hub, HUB_CHANGE_PRESENCE);
        if (store_notice_publish(c->st, HUB_CHANGE_PRESENCE) != ERR_OK) {
            log_warn("cannot tell the other nodes that a dead node's "
                     "agents went");
        }
    }
    free(b);
    c->timer =
        loop_add_timer(c->loop, (int64_t)c->cfg->node_heartbeat_seconds * 1000,
                       cluster_tick, c);
}

static void cluster_tick(struct loop *loop, void *arg)
{
    struct cluster *c = arg;
    struct cluster_beat *b;

    c->timer = 0;
    if ((b = calloc(1, sizeof(*b))) == NULL) {
        c->timer =
            loop_add_timer(loop, (int64_t)c->cfg->node_heartbeat_seconds * 1000,
                           cluster_tick, c);
        return;
    }
    b->job.work = cluster_beat_work;
    b->job.done = cluster_beat_done;
    b->r = ERR_STORE; /* if it finds no connection */
    b->self = c->self;
    b->now = util_now();
    b->dead_before = b->now - c->cfg->node_dead_after_seconds;
    store_worker_run(c->bg, &b->job);
}

int cluster_start(struct cluster **out, const struct config *cfg,
                  struct loop *loop, struct store *st, struct hub *hub)
{
    struct cluster *c;
    char what[320];
    int r;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        return ERR_NOMEM;
    }
    c->cfg = cfg;
    c->loop = loop;
    c->st = st;
    c->hub = hub;
    snprintf(c->self.id, sizeof(c->self.id), "%s", store_node_self(st));
    config_node_name(cfg, c->self.name, sizeof(c->self.name));
    /* proxy=: where other nodes reach the agents this node holds (the
     * node: route, route/route.h); "proxy_plain" when it has no TLS */
    if (cfg->http_proxy_enabled) {
        snprintf(c->self.addresses, sizeof(c->self.addresses),
                 "ssh=%s:%d http=%s:%d proxy=%s:%d%s", cfg->ssh_listen,
                 cfg->ssh_port, cfg->http_listen, cfg->http_port,
                 cfg->http_proxy_listen, cfg->http_proxy_port,
                 cfg->http_proxy_tls ? "" : " proxy_plain");
    } else {
        snprintf(c->self.addresses, sizeof(c->self.addresses),
                 "ssh=%s:%d http=%s:%d", cfg->ssh_listen, cfg->ssh_port,
                 cfg->http_listen, cfg->http_port);
    }
    snprintf(c->self.version, sizeof(c->self.version), "%s",
             PORTCULLIS_VERSION);
    if ((r = store_node_register(st, &c->self, util_now())) != ERR_OK) {
        log_error("cannot register this node in the store");
        free(c);
        return r;
    }
    snprintf(what, sizeof(what), "node %s: the heartbeat", c->self.name);
    if ((c->bg = store_worker_new(loop, st, cfg->store_path, 1, what, c)) ==
        NULL) {
        free(c);
        return ERR_NOMEM;
    }
    if ((r = store_listener_start(&c->listener, loop, cfg->store_path, st,
                                  cluster_on_notice, c)) != ERR_OK) {
        store_worker_stop(c->bg, 0);
        free(c);
        return r;
    }
    log_info("node %s (%s) registered", c->self.name, c->self.id);
    c->timer = loop_add_timer(loop, (int64_t)cfg->node_heartbeat_seconds * 1000,
                              cluster_tick, c);
    *out = c;
    return ERR_OK;
}

void cluster_stop(struct cluster *c)
{
    if (c == NULL) {
        return;
    }
    if (c->timer != 0) {
        loop_del_timer(c->loop, c->timer);
    }
    /* A round in flight usually ends within the store's time limits, and
     * "stopped" below is the last word; a database server that is stopped
     * (SIGSTOP, a frozen VM) never answers, so after CLUSTER_STOP_WAIT_MS
     * the round is left to its worker thread and a node can always be
     * stopped. */
    (void)store_worker_stop(c->bg, CLUSTER_STOP_WAIT_MS);
    store_listener_stop(c->listener);
    if (store_node_stop(c->st, c->self.id, util_now()) != ERR_OK) {
        log_warn("cannot mark this node stopped in the store");
    }
    free(c);
}
