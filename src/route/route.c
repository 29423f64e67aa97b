/*
 * Routes (route.h): the table of route kinds and their connectors.
 *
 * Each request is a struct route_req owned here from route_connect until
 * its callback (or route_cancel); the routes keep a list of them, so
 * routes_free cancels what is left. The callback runs after the request
 * is freed, so it may do anything, route_connect included.
 *
 * A name resolution cannot be cancelled (loop.h: its callback always
 * runs), so it gets a small record of its own that points back at the
 * request; cancelling or timing out the request clears that pointer and
 * the late answer frees only the record. The store reads of peer: and
 * node: routes (a peer and its via chain; whether another node holds an
 * agent, and that node) run the same way on a store worker of the
 * routes' own (struct route_look): on PostgreSQL off the loop, so a slow
 * database delays that connection only; on SQLite at once, in line.
 */
#include "route/route.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "common/err.h"
#include "common/loop.h"
#include "common/util.h"
#include "common/vault.h"
#include "hub/hub.h"
#include "route/peer_link.h"
#include "store/agents.h"
#include "store/nodes.h"
#include "store/peers.h"
#include "store/store_worker.h"

struct route_resolve {
    struct route_req *rq; /* NULL once the request no longer waits */
};

struct route_look;

/* How long routes_free waits for store reads still out. */
#define ROUTE_STOP_MS 1000

struct route_req {
    struct routes *rs;
    struct route_req *next, **pprev; /* rs->reqs */
    const struct route_kind *kind;
    route_done_fn fn;
    void *arg;
    char name[STORE_ROUTE_MAX + 1];
    /* direct */
    struct route_resolve *resolve; /* pending resolution, or NULL */
    uint64_t timer;                /* the deadline, 0 if none */
    int fd;                        /* connecting socket, -1 if none */
    /* agent */
    struct hub_req *hub_req; /* until the hub calls back */
    int agent_fd;            /* our end of the socketpair, -1 if none */
    /* peer */
    struct route_req *sub;  /* the way to the peer's proxy, until it is */
    struct peer_link *link; /* TLS and CONNECT through it, until answered */
    char *token;            /* the peer's API token (wiped, freed) */
    struct store_peer *peer;
    char dest_host[STORE_HOST_MAX + 1];
    int dest_port;
    /* node: the agent the other node's proxy streams through, and the
     * ID of that node */
    char node_agent[STORE_ROUTE_MAX + 1];
    char node_id[NODE_ID_MAX + 1];
    bool udp; /* a UDP flow (struct route): only through another node */
    /* route_peer_check: OPTIONS * instead of CONNECT */
    bool check;
    /* store reads on the routes' worker, until they come back */
    struct route_look *look;
    /* while route_connect runs the connector: cleared when rq ends */
    bool *alive;
};

struct routes {
    struct loop *loop;
    const struct config *cfg;
    struct hub *hub;
    struct route_req *reqs;
    /* peer routes: the store (peers), the vault (their tokens), and the
     * links through their proxies */
    struct store *store;
    const struct vault *vault;
    struct peer_links *links;
    /* node: routes: the key node credentials are made with, and this
     * node's proxy certificate's fingerprint (every node shares both);
     * loaded at the first use */
    route_node_token_fn node_token;
    void *node_token_arg;
    char node_fp[128];
    /* the store reads of peer: and node: routes (NULL: on the loop) */
    struct store_worker *w;
};

/* One row per route kind. */
struct route_kind {
    const char *word;   /* "direct", "agent" */
    const char *prefix; /* "direct" (whole string) or "agent:" (a name
                           follows) */
    bool has_name;
    /* the name's syntax; NULL when the kind has no name */
    bool (*name_ok)(const char *name);
    /* starts rq (rq->name set); calls route_finish sooner or later,
     * perhaps before it returns */
    void (*connect)(struct route_req *rq, const char *host, int port,
                    const char *orig_ip, int orig_port);
    /* undoes whatever rq holds (no callback) */
    void (*cancel)(struct route_req *rq);
};

static void route_look_forget(struct route_req *rq);

/* Frees rq, then tells its owner: every request, connect or check,
 * ends here with one result. */
static void route_end(struct route_req *rq, const struct route_result *res)
{
    route_done_fn fn = rq->fn;
    void *arg = rq->arg;
    struct route_result out = *res;
    char node[NODE_ID_MAX + 1];

    /* rq is freed below: the node's ID goes on in a copy */
    snprintf(node, sizeof(node), "%s", rq->node_id);
    out.node = node[0] != '\0' ? node : NULL;
    res = &out;
    if (rq->alive != NULL) {
        *rq->alive = false; /* route_connect returns NULL */
    }
    route_look_forget(rq);
    if (rq->pprev != NULL) {
        *rq->pprev = rq->next;
        if (rq->next != NULL) {
            rq->next->pprev = rq->pprev;
        }
    }
    free(rq);
    fn(arg, res);
}

/* route_end with a stream (fd >= 0) or a failure (why). */
static void route_finish(struct route_req *rq, int fd, const char *why)
{
    struct route_result res;

    memset(&res, 0, sizeof(res));
    res.fd = fd;
    res.why = fd >= 0 ? NULL : why != NULL ? why : "failed";
    res.server = "";
    route_end(rq, &res);
}

/* --- store reads on the routes' worker (struct route_look) --- */

enum route_look_kind {
    ROUTE_LOOK_PEER, /* a peer and its via chain */
    ROUTE_LOOK_NODE  /* whether another node holds an agent, and that node */
};

struct route_look {
    struct store_work base; /* first: the worker's job */
    struct route_req *rq;   /* NULL once the request no longer waits */
    enum route_look_kind kind;
    char name[STORE_ROUTE_MAX + 1];
    /* the connector's arguments, for when it goes on */
    char *host;
    int port;
    char orig_ip[128];
    int orig_port;
    /* the outcome: ERR_OK, or why not */
    int rc;
    char why[600];
    /* ROUTE_LOOK_PEER: the peer read (rq->peer takes it) */
    struct store_peer *peer;
    /* ROUTE_LOOK_NODE: the agent's row names another node that holds it
     * (elsewhere), and that node's row (node_rc: ERR_OK if read) */
    bool elsewhere;
    int node_rc;
    struct store_node node;
};

static int route_peer_chain(struct store *st, const struct store_peer *p,
                            char *why, size_t whylen);
static void route_peer_loaded(struct route_req *rq, struct route_look *lk);
static void route_agent_loaded(struct route_req *rq, struct route_look *lk);

/* On the worker (or in line): nothing but lk and st. */
static void route_look_work(struct store_work *j, struct store *st)
{
    struct route_look *lk = (struct route_look *)j;
    char node[NODE_ID_MAX + 1];
    int r;

    if (lk->kind == ROUTE_LOOK_PEER) {
        if ((lk->peer = calloc(1, sizeof(*lk->peer))) == NULL) {
            lk->rc = ERR_NOMEM;
            snprintf(lk->why, sizeof(lk->why), "out of memory");
            return;
        }
        if ((r = store_peer_get(st, lk->name, lk->peer)) != ERR_OK) {
            lk->rc = r;
            snprintf(lk->why, sizeof(lk->why),
                     r == ERR_NOT_FOUND
                         ? "peer '%s' is not configured here"
                         : "peer '%s': cannot read it from the store",
                     lk->name);
            return;
        }
        lk->rc = route_peer_chain(st, lk->peer, lk->why, sizeof(lk->why));
        return;
    }
    lk->elsewhere = store_agent_elsewhere(st, lk->name, node);
    if (lk->elsewhere) {
        lk->node_rc = store_node_get(st, node, &lk->node);
    }
    lk->rc = ERR_OK;
}

static void route_look_free(struct route_look *lk)
{
    if (lk->peer != NULL) {
        sodium_memzero(lk->peer, sizeof(*lk->peer));
        free(lk->peer);
    }
    free(lk->host);
    free(lk);
}

/* On the loop: the request goes on, unless it went meanwhile (rq NULL)
 * or the routes are gone (owner NULL). */
static void route_look_done(void *owner, struct store_work *j)
{
    struct route_look *lk = (struct route_look *)j;
    struct route_req *rq = lk->rq;

    if (rq != NULL) {
        rq->look = NULL; /* dropped at a stop (owner NULL): rq never goes on */
    }
    if (owner != NULL && rq != NULL) {
        if (!j->ran) { /* no connection to the database */
            lk->rc = ERR_STORE;
            snprintf(lk->why, sizeof(lk->why),
                     "%s '%s': the store does not answer",
                     lk->kind == ROUTE_LOOK_PEER ? "peer" : "agent", lk->name);
            lk->elsewhere = false;
        }
        if (lk->kind == ROUTE_LOOK_PEER) {
            route_peer_loaded(rq, lk);
        } else {
            route_agent_loaded(rq, lk);
        }
    }
    route_look_free(lk);
}

/* Reads what rq's kind needs from the store, then goes on in
 * route_peer_loaded or route_agent_loaded (perhaps before this returns). */
static void route_look_start(struct route_req *rq, enum route_look_kind kind,
                             const char *host, int port, const char *orig_ip,
                             int orig_port)
{
    struct routes *rs = rq->rs;
    struct route_look *lk = calloc(1, sizeof(*lk));

    if (lk == NULL || (lk->host = strdup(host)) == NULL) {
        free(lk);
        route_finish(rq, -1, "out of memory");
        return;
    }
    lk->base.work = route_look_work;
    lk->base.done = route_look_done;
    lk->rq = rq;
    lk->kind = kind;
    snprintf(lk->name, sizeof(lk->name), "%s", rq->name);
    lk->port = port;
    snprintf(lk->orig_ip, sizeof(lk->orig_ip), "%s", orig_ip);
    lk->orig_port = orig_port;
    lk->rc = ERR_STORE;
    rq->look = lk;
    if (rs->w != NULL) {
        store_worker_run(rs->w, &lk->base);
        return;
    }
    route_look_work(&lk->base, rs->store); /* no worker: on the loop */
    lk->base.ran = true;
    route_look_done(rs, &lk->base);
}

/* rq no longer waits for its store reads: they are dropped when back. */
static void route_look_forget(struct route_req *rq)
{
    if (rq->look != NULL) {
        rq->look->rq = NULL;
        rq->look = NULL;
    }
}

/* --- direct: resolve, then a non-blocking connect --- */

static void route_direct_done(struct route_req *rq, bool timeout);

static void route_direct_on_connect(struct loop *l, int fd, int events,
                                    void *arg)
{
    (void)l;
    (void)fd;
    (void)events;
    route_direct_done(arg, false);
}

static void route_direct_on_timeout(struct loop *l, void *arg)
{
    struct route_req *rq = arg;

    (void)l;
    rq->timer = 0;
    if (rq->resolve != NULL) {
        /* the resolver's late answer is ignored (route_direct_resolved) */
        rq->resolve->rq = NULL;
        rq->resolve = NULL;
        route_finish(rq, -1, "timed out resolving the host name");
        return;
    }
    route_direct_done(rq, true);
}

static void route_direct_stop_timer(struct route_req *rq)
{
    loop_del_timer(rq->rs->loop, rq->timer);
    rq->timer = 0;
}

/* The addresses arrived: a non-blocking connect to the first that takes
 * one (the deadline is already running). */
static void route_direct_addrs(struct route_req *rq, const struct addrinfo *res)
{
    const struct addrinfo *ai;
    int fd = -1, err = 0;

    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
            errno == EINPROGRESS) {
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        route_direct_stop_timer(rq);
        route_finish(rq, -1, strerror(err ? err : ECONNREFUSED));
        return;
    }
    if (loop_add_fd(rq->rs->loop, fd, LOOP_WRITE, route_direct_on_connect,
                    rq) != ERR_OK) {
        close(fd);
        route_direct_stop_timer(rq);
        route_finish(rq, -1, "internal error");
        return;
    }
    rq->fd = fd;
}

/* loop_resolved_fn: for a request that may have been cancelled or timed
 * out meanwhile (q->rq NULL). */
static void route_direct_resolved(struct loop *l, const struct addrinfo *res,
                                  const char *why, void *arg)
{
    struct route_resolve *q = arg;
    struct route_req *rq = q->rq;
    char msg[300];

    (void)l;
    free(q);
    if (rq == NULL) {
        return;
    }
    rq->resolve = NULL;
    if (res == NULL) {
        route_direct_stop_timer(rq);
        snprintf(msg, sizeof(msg), "cannot resolve host name: %s",
                 why != NULL ? why : "no address");
        route_finish(rq, -1, msg);
        return;
    }
    route_direct_addrs(rq, res);
}

static void route_direct_done(struct route_req *rq, bool timeout)
{
    int fd = rq->fd, err = 0, yes = 1;
    socklen_t len = sizeof(err);

    loop_del_fd(rq->rs->loop, fd);
    route_direct_stop_timer(rq);
    rq->fd = -1;
    if (timeout) {
        close(fd);
        route_finish(rq, -1, "connection timed out");
        return;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err != 0) {
        close(fd);
        route_finish(rq, -1, strerror(err));
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    route_finish(rq, fd, NULL);
}

/*
 * The deadline (connect_timeout_seconds) covers resolving the host name
 * and the TCP connect. Names are resolved with the loop's asynchronous
 * resolver (on a worker thread), so a slow or dead DNS server stalls
 * this request only.
 */
static void route_direct_connect(struct route_req *rq, const char *host,
                                 int port, const char *orig_ip, int orig_port)
{
    struct routes *rs = rq->rs;
    struct addrinfo hints;
    struct route_resolve *q;
    char service[16];

    (void)orig_ip;
    (void)orig_port;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%d", port);
    if ((q = calloc(1, sizeof(*q))) == NULL) {
        route_finish(rq, -1, "out of memory");
        return;
    }
    q->rq = rq;
    rq->timer = loop_add_timer(rs->loop,
                               (int64_t)rs->cfg->connect_timeout_seconds * 1000,
                               route_direct_on_timeout, rq);
    rq->resolve = q;
    if (loop_resolve(rs->loop, host, service, &hints, route_direct_resolved,
                     q) != ERR_OK) {
        free(q);
        rq->resolve = NULL;
        route_direct_stop_timer(rq);
        route_finish(rq, -1, "cannot resolve host name: internal error");
    }
}

static void route_direct_cancel(struct route_req *rq)
{
    if (rq->resolve != NULL) {
        rq->resolve->rq = NULL; /* freed by its callback */
        rq->resolve = NULL;
    }
    route_direct_stop_timer(rq);
    if (rq->fd >= 0) {
        loop_del_fd(rq->rs->loop, rq->fd);
        close(rq->fd);
        rq->fd = -1;
    }
}

/* --- agent:ID: a stream through a connected agent --- */

/* The agent confirmed (or could not make) the stream. */
static void route_agent_on_stream(void *arg, bool ok, const char *why)
{
    struct route_req *rq = arg;
    int fd = rq->agent_fd;
    char msg[300];

    rq->hub_req = NULL;
    rq->agent_fd = -1;
    if (!ok) {
        if (fd >= 0) {
            close(fd);
        }
        snprintf(msg, sizeof(msg), "through agent '%s': %s", rq->name,
                 why != NULL ? why : "failed");
        route_finish(rq, -1, msg);
        return;
    }
    route_finish(rq, fd, NULL);
}

static void route_peer_cancel(struct route_req *rq);

/* A socketpair whose other end the hub bridges to a stream through this
 * node's agent; the caller gets our end once the agent has connected to
 * the target. */
static void route_agent_here(struct route_req *rq, const char *host, int port,
                             const char *orig_ip, int orig_port)
{
    struct hub_req *h;
    int sv[2];

    if (rq->udp) { /* the caller takes this node's own agents by the hub */
        route_finish(rq, -1,
                     "a udp flow goes only to an agent of another node");
        return;
    }

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        route_finish(rq, -1, strerror(errno));
        return;
    }
    rq->agent_fd = sv[1];
    /* hub_connect calls back at once when it fails early: rq is freed
     * then (and NULL returned), so it is touched only after a handle */
    h = hub_connect(rq->rs->hub, rq->name, HUB_TCP, host, port, orig_ip,
                    orig_port, sv[0], route_agent_on_stream, rq);
    if (h != NULL) {
        rq->hub_req = h;
    }
}

/* An agent this node does not hold may be held by another node of the
 * cluster (the store says: a read on the routes' worker), reached through
 * that node (node:, below); else the hub says it is not connected. */
static void route_agent_connect(struct route_req *rq, const char *host,
                                int port, const char *orig_ip, int orig_port)
{
    if (!hub_agent_online(rq->rs->hub, rq->name) && rq->rs->store != NULL) {
        route_look_start(rq, ROUTE_LOOK_NODE, host, port, orig_ip, orig_port);
        return;
    }
    route_agent_here(rq, host, port, orig_ip, orig_port);
}

static void route_node_go(struct route_req *rq, const struct route_look *lk);

static void route_agent_loaded(struct route_req *rq, struct route_look *lk)
{
    if (lk->elsewhere) {
        route_node_go(rq, lk);
        return;
    }
    route_agent_here(rq, lk->host, lk->port, lk->orig_ip, lk->orig_port);
}

static void route_agent_cancel(struct route_req *rq)
{
    if (rq->sub != NULL || rq->link != NULL || rq->peer != NULL) {
        route_peer_cancel(rq); /* it went through another node */
    }
    if (rq->hub_req != NULL) {
        hub_connect_cancel(rq->hub_req);
        rq->hub_req = NULL;
    }
    if (rq->agent_fd >= 0) {
        close(rq->agent_fd);
        rq->agent_fd = -1;
    }
}

/* An agent ID: 1-64 of A-Z a-z 0-9 . _ - (docs/agent-protocol.md). */
static bool route_agent_id_ok(const char *id)
{
    size_t n = 0;

    for (; id[n] != '\0'; n++) {
        char c = id[n];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return n >= 1 && n <= 64;
}

/* --- peer:NAME: through another node's CONNECT proxy ------------------ */

#define ROUTE_PEER_DEPTH 8

static void route_peer_clear(struct route_req *rq)
{
    if (rq->token != NULL) {
        sodium_memzero(rq->token, strlen(rq->token));
        free(rq->token);
        rq->token = NULL;
    }
    if (rq->peer != NULL) {
        sodium_memzero(rq->peer, sizeof(*rq->peer));
        free(rq->peer);
        rq->peer = NULL;
    }
}

static void route_peer_on_link(void *arg, const struct peer_link_result *res)
{
    struct route_req *rq = arg;
    struct route_result rr;

    rq->link = NULL;
    route_peer_clear(rq);
    memset(&rr, 0, sizeof(rr));
    rr.fd = res->fd;
    rr.status = res->status;
    rr.why = res->why; /* NULL: a stream, or a check that passed */
    rr.server = res->server != NULL ? res->server : "";
    route_end(rq, &rr);
}

/* The way to the peer's proxy port is there (or not). */
static void route_peer_on_sub(void *arg, const struct route_result *res)
{
    struct route_req *rq = arg;
    struct store_peer *p = rq->peer;
    struct peer_link_opts o;
    struct peer_link *pl;
    int fd = res->fd;
    char msg[600];

    rq->sub = NULL;
    if (fd < 0) {
        snprintf(msg, sizeof(msg), "%s %s: cannot reach its proxy %s:%d: %s",
                 rq->node_agent[0] != '\0' ? "node" : "peer", p->name, p->host,
                 p->port, res->why);
        route_peer_clear(rq);
        route_finish(rq, -1, msg);
        return;
    }
    memset(&o, 0, sizeof(o));
    o.peer = p->name;
    o.sni = p->host;
    o.token = rq->token;
    o.plain_http = p->plain_http;
    o.fingerprint = p->tls_fingerprint;
    o.dest_host = rq->check ? NULL : rq->dest_host;
    o.agent = rq->node_agent[0] != '\0' ? rq->node_agent : NULL;
    o.udp = o.agent != NULL && rq->udp;
    o.dest_port = rq->dest_port;
    o.timeout_ms = rq->rs->cfg->connect_timeout_seconds * 1000;
    /* the link may answer (and rq be freed) before it returns: rq is
     * touched only when a handle comes back */
    pl = peer_link_start(rq->rs->links, fd, &o, route_peer_on_link, rq);
    if (pl != NULL) {
        rq->link = pl;
    }
}

/* Walks the via chain from p: ERR_OK, or a loop, a missing peer or a
 * chain too long, with why. */
static int route_peer_chain(struct store *st, const struct store_peer *p,
                            char *why, size_t whylen)
{
    char seen[ROUTE_PEER_DEPTH + 1][PEER_NAME_MAX + 1], path[600];
    struct store_peer *cur = malloc(sizeof(*cur));
    size_t n = 0, i, used = 0;
    int r = ERR_OK;

    if (cur == NULL) {
        snprintf(why, whylen, "out of memory");
        return ERR_NOMEM;
    }
    *cur = *p;
    for (;;) {
        snprintf(seen[n++], sizeof(seen[0]), "%s", cur->name);
        if (cur->via[0] == '\0') {
            break;
        }
        if (strncmp(cur->via, "peer:", 5) != 0) {
            snprintf(why, whylen, "peer %s: via '%s' is not a peer route",
                     cur->name, cur->via);
            r = ERR_INVALID;
            break;
        }
        for (i = 0; i < n; i++) {
            if (strcmp(seen[i], cur->via + 5) == 0) {
                break;
            }
        }
        if (i < n || n > ROUTE_PEER_DEPTH) {
            used = 0;
            for (i = 0; i < n && used < sizeof(path); i++) {
                used += (size_t)snprintf(path + used, sizeof(path) - used,
                                         "%s -> ", seen[i]);
            }
            snprintf(why, whylen,
                     n > ROUTE_PEER_DEPTH
                         ? "peer route through more than %d peers: %s%s"
                         : "peer route loop%.0d: %s%s",
                     ROUTE_PEER_DEPTH, used < sizeof(path) ? path : "",
                     cur->via + 5);
            r = ERR_INVALID;
            break;
        }
        char next[PEER_NAME_MAX + 1];

        snprintf(next, sizeof(next), "%s", cur->via + 5);
        if (store_peer_get(st, next, cur) != ERR_OK) {
            snprintf(why, whylen,
                     "peer %.64s: its via peer '%.64s' is not "
                     "configured",
                     seen[n - 1], next);
            r = ERR_NOT_FOUND;
            break;
        }
    }
    sodium_memzero(cur, sizeof(*cur));
    free(cur);
    return r;
}

static void route_peer_connect(struct route_req *rq, const char *host, int port,
                               const char *orig_ip, int orig_port)
{
    struct routes *rs = rq->rs;

    if (rs->store == NULL || rs->vault == NULL || rs->links == NULL) {
        route_finish(rq, -1, "peer routes are not available here");
        return;
    }
    route_look_start(rq, ROUTE_LOOK_PEER, host, port, orig_ip, orig_port);
}

/* The peer and its chain are read (or not): through its proxy. */
static void route_peer_loaded(struct route_req *rq, struct route_look *lk)
{
    struct routes *rs = rq->rs;
    struct store_peer *p;
    struct route sub;
    char ad[VAULT_AD_MAX], why[600];
    uint8_t *plain = NULL;
    size_t plen = 0;
    struct route_req *h;

    if (lk->rc != ERR_OK) {
        route_finish(rq, -1, lk->why);
        return;
    }
    p = rq->peer = lk->peer;
    lk->peer = NULL;
    if (route_parse(p->via, &sub, why, sizeof(why)) != ERR_OK) {
        route_peer_clear(rq);
        route_finish(rq, -1, why);
        return;
    }
    vault_ad(ad, VAULT_AD_PEER_TOKEN, p->id);
    if (vault_open(rs->vault, ad, p->token_sealed, p->token_sealed_len, &plain,
                   &plen) != ERR_OK ||
        (rq->token = strndup((const char *)plain, plen)) == NULL) {
        vault_secret_free(plain, plen);
        snprintf(why, sizeof(why), "peer %s: its token does not open", p->name);
        route_peer_clear(rq);
        route_finish(rq, -1, why);
        return;
    }
    vault_secret_free(plain, plen);
    snprintf(rq->dest_host, sizeof(rq->dest_host), "%s", lk->host);
    rq->dest_port = lk->port;
    /* the proxy's port, directly or through the peer in front of it */
    h = route_connect(rs, &sub, p->host, p->port, lk->orig_ip, lk->orig_port,
                      route_peer_on_sub, rq);
    if (h != NULL) {
        rq->sub = h;
    }
}

static void route_peer_cancel(struct route_req *rq)
{
    if (rq->sub != NULL) {
        route_cancel(rq->sub);
        rq->sub = NULL;
    }
    if (rq->link != NULL) {
        peer_link_cancel(rq->link);
        rq->link = NULL;
    }
    route_peer_clear(rq);
}

/* --- node: an agent held by another node of the cluster --- */

/*
 * The link between nodes is the peer CONNECT proxy (http/http_proxy.h)
 * that already carries peer: routes: TLS with the certificate every node
 * of a cluster shares (pinned), a node credential (auth/jwt.h) instead of
 * an API token, and a Portcullis-Agent header naming the agent, which the
 * node holding it opens the stream through. No second listener, TLS setup
 * or credential store: docs/operations.md "Cluster" says why. It is not a
 * route an asset names: agent:ID turns into it when the store says
 * another node holds the agent (route_agent_connect), so an asset works
 * whichever node its agent and its user reach.
 */

/* "KEY=VALUE" of a node's addresses ("ssh=... proxy=H:P"), or false. */
static bool route_node_addr(const char *addrs, const char *key, char *out,
                            size_t outlen)
{
    size_t kl = strlen(key), n;
    const char *p = addrs;

    while (p != NULL && *p != '\0') {
        p += strspn(p, " ");
        n = strcspn(p, " ");
        if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            if (n - kl - 1 >= outlen) {
                return false;
            }
            memcpy(out, p + kl + 1, n - kl - 1);
            out[n - kl - 1] = '\0';
            return true;
        }
        if (n == kl && strncmp(p, key, kl) == 0) {
            out[0] = '\0';
            return true;
        }
        p += n;
    }
    return false;
}

/* The proxy certificate's fingerprint, "" if it cannot be read. */
static void route_node_fp(struct routes *rs)
{
    uint8_t *pem = NULL;
    size_t len = 0;
    BIO *bio;
    X509 *x = NULL;
    unsigned char *der = NULL;
    int dlen;

    if (rs->node_fp[0] != '\0' || rs->cfg->http_proxy_tls_cert == NULL ||
        util_read_file(rs->cfg->http_proxy_tls_cert, 1 << 20, &pem, &len) !=
            ERR_OK) {
        return;
    }
    if ((bio = BIO_new_mem_buf(pem, (int)len)) != NULL &&
        (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL &&
        (dlen = i2d_X509(x, &der)) > 0) {
        peer_link_cert_fp(der, dlen, rs->node_fp, sizeof(rs->node_fp));
    }
    OPENSSL_free(der);
    X509_free(x);
    BIO_free(bio);
    free(pem);
}

/* The store says node lk->node holds the agent: through its proxy. */
static void route_node_go(struct route_req *rq, const struct route_look *lk)
{
    struct routes *rs = rq->rs;
    const struct store_node *n = &lk->node;
    struct store_peer *p;
    struct route sub;
    char proxy[STORE_HOST_MAX + 16], plain[4], tok[256];
    char why[600], *colon = NULL;
    struct route_req *h;
    long pport = 0;

    why[0] = '\0';
    if (rs->links == NULL) {
        snprintf(why, sizeof(why), "node routes are not available here");
    } else if (lk->node_rc != ERR_OK || strcmp(n->state, "up") != 0) {
        snprintf(why, sizeof(why),
                 "agent '%s' is held by a node that is not up", rq->name);
    } else if (!route_node_addr(n->addresses, "proxy", proxy, sizeof(proxy)) ||
               (colon = strrchr(proxy, ':')) == NULL ||
               (pport = strtol(colon + 1, NULL, 10)) < 1 || pport > 65535) {
        snprintf(why, sizeof(why),
                 "agent '%s' is held by node %s, which runs no proxy for "
                 "other nodes ([http_proxy] enabled)",
                 rq->name, n->name);
    }
    if (why[0] != '\0') {
        route_finish(rq, -1, why);
        return;
    }
    *colon = '\0';
    route_node_fp(rs);
    if (rs->node_token == NULL ||
        rs->node_token(rs->node_token_arg, tok, sizeof(tok)) != ERR_OK ||
        (p = rq->peer = calloc(1, sizeof(*p))) == NULL ||
        (rq->token = strdup(tok)) == NULL) {
        sodium_memzero(tok, sizeof(tok));
        route_peer_clear(rq);
        route_finish(rq, -1, "cannot make a node credential");
        return;
    }
    sodium_memzero(tok, sizeof(tok));
    snprintf(p->name, sizeof(p->name), "%.*s", (int)sizeof(p->name) - 1,
             n->name);
    snprintf(p->host, sizeof(p->host), "%.*s", (int)sizeof(p->host) - 1, proxy);
    p->port = (int)pport;
    p->plain_http =
        route_node_addr(n->addresses, "proxy_plain", plain, sizeof(plain));
    snprintf(p->tls_fingerprint, sizeof(p->tls_fingerprint), "%s", rs->node_fp);
    snprintf(rq->dest_host, sizeof(rq->dest_host), "%s", lk->host);
    rq->dest_port = lk->port;
    snprintf(rq->node_agent, sizeof(rq->node_agent), "%s", rq->name);
    snprintf(rq->node_id, sizeof(rq->node_id), "%s", n->id);
    if (route_parse("direct", &sub, why, sizeof(why)) != ERR_OK) {
        route_peer_clear(rq);
        route_finish(rq, -1, why);
        return;
    }
    h = route_connect(rs, &sub, p->host, p->port, lk->orig_ip, lk->orig_port,
                      route_peer_on_sub, rq);
    if (h != NULL) {
        rq->sub = h;
    }
}

/* --- the table --- */

static const struct route_kind route_kinds[] = {
    {"direct", "direct", false, NULL, route_direct_connect,
     route_direct_cancel},
    {"agent", "agent:", true, route_agent_id_ok, route_agent_connect,
     route_agent_cancel},
    /* a peer's name has an agent ID's syntax */
    {"peer", "peer:", true, route_agent_id_ok, route_peer_connect,
     route_peer_cancel},

};

int route_parse(const char *text, struct route *out, char *why, size_t whylen)
{
    const struct route_kind *k;
    size_t i, plen;

    memset(out, 0, sizeof(*out));
    if (text == NULL || text[0] == '\0') {
        text = "direct";
    }
    snprintf(out->text, sizeof(out->text), "%s", text);
    if (strlen(text) > STORE_ROUTE_MAX) {
        snprintf(why, whylen, "route is longer than %d bytes", STORE_ROUTE_MAX);
        return ERR_INVALID;
    }
    for (i = 0; i < sizeof(route_kinds) / sizeof(route_kinds[0]); i++) {
        k = &route_kinds[i];
        plen = strlen(k->prefix);
        if (!k->has_name) {
            if (strcmp(text, k->prefix) == 0) {
                out->kind = k;
                return ERR_OK;
            }
            continue;
        }
        if (strncmp(text, k->prefix, plen) != 0) {
            continue;
        }
        if (!k->name_ok(text + plen)) {
            snprintf(why, whylen, "not a valid %s name: '%s'", k->word,
                     text + plen);
            return ERR_INVALID;
        }
        snprintf(out->name, sizeof(out->name), "%s", text + plen);
        out->kind = k;
        return ERR_OK;
    }
    snprintf(why, whylen, "not supported yet");
    return ERR_INVALID;
}

const char *route_kind_name(const struct route *rt)
{
    return rt->kind != NULL ? rt->kind->word : "invalid";
}

struct routes *routes_new(struct loop *loop, const struct config *cfg,
                          struct hub *hub)
{
    struct routes *rs = calloc(1, sizeof(*rs));

    if (rs != NULL) {
        rs->loop = loop;
        rs->cfg = cfg;
        rs->hub = hub;
        if ((rs->links = peer_links_new(loop)) == NULL) {
            free(rs);
            return NULL;
        }
    }
    return rs;
}

void routes_set_store(struct routes *rs, struct store *st,
                      const struct vault *v)
{
    rs->store = st;
    rs->vault = v;
    /* On PostgreSQL the reads of peer: and node: routes run on 2
     * connections of their own; without a worker (out of memory) on the
     * loop, as on SQLite. */
    if (rs->w == NULL && st != NULL && rs->loop != NULL) {
        rs->w = store_worker_new(rs->loop, st, rs->cfg->store_path, 2,
                                 "the routes", rs);
    }
}

void routes_free(struct routes *rs)
{
    if (rs == NULL) {
        return;
    }
    while (rs->reqs != NULL) {
        route_cancel(rs->reqs);
    }
    /* reads still out come back (if ever) with owner NULL */
    store_worker_stop(rs->w, ROUTE_STOP_MS);
    peer_links_free(rs->links);
    free(rs);
}

void routes_stop_reads(struct routes *rs)
{
    if (rs != NULL) {
        store_worker_stop(rs->w, ROUTE_STOP_MS);
        rs->w = NULL; /* from now on on the loop */
    }
}

void routes_set_node_token(struct routes *rs, route_node_token_fn fn, void *arg)
{
    rs->node_token = fn;
    rs->node_token_arg = arg;
}

/* A new request of kind on the routes' list; NULL when out of memory. */
static struct route_req *route_req_new(struct routes *rs,
                                       const struct route *rt)
{
    struct route_req *rq = calloc(1, sizeof(*rq));

    if (rq == NULL) {
        return NULL;
    }
    rq->rs = rs;
    rq->kind = rt->kind;
    rq->udp = rt->udp;
    rq->fd = -1;
    rq->agent_fd = -1;
    snprintf(rq->name, sizeof(rq->name), "%s", rt->name);
    rq->next = rs->reqs;
    if (rs->reqs != NULL) {
        rs->reqs->pprev = &rq->next;
    }
    rq->pprev = &rs->reqs;
    rs->reqs = rq;
    return rq;
}

/* Runs the kind's connector. It may finish (and free) rq before it
 * returns: route_finish then clears alive (a flag of this call's own, so
 * a connector that starts a request of its own, as peer routes do, cannot
 * confuse the two). Returns rq while it is pending, else NULL. */
static struct route_req *route_start(struct route_req *rq, const char *host,
                                     int port, const char *orig_ip,
                                     int orig_port)
{
    bool alive = true;

    rq->alive = &alive;
    rq->kind->connect(rq, host, port, orig_ip, orig_port);
    if (!alive) {
        return NULL;
    }
    rq->alive = NULL;
    return rq;
}

struct route_req *route_connect(struct routes *rs, const struct route *rt,
                                const char *host, int port, const char *orig_ip,
                                int orig_port, route_done_fn fn, void *arg)
{
    struct route_req *rq;

    struct route_result res;

    memset(&res, 0, sizeof(res));
    res.fd = -1;
    res.server = "";
    if (rt->kind == NULL || (rq = route_req_new(rs, rt)) == NULL) {
        res.why = rt->kind == NULL ? "unsupported route" : "out of memory";
        fn(arg, &res);
        return NULL;
    }
    rq->fn = fn;
    rq->arg = arg;
    if (rq->udp && rq->kind->connect != route_agent_connect) {
        route_finish(rq, -1, "a udp flow goes only through an agent");
        return NULL;
    }
    return route_start(rq, host, port, orig_ip, orig_port);
}

struct route_req *route_peer_check(struct routes *rs, const char *peer,
                                   route_done_fn fn, void *arg)
{
    struct route rt;
    struct route_req *rq = NULL;
    char text[STORE_ROUTE_MAX + 1], why[200];
    struct route_result cr;

    memset(&cr, 0, sizeof(cr));
    cr.fd = -1;
    cr.server = "";
    snprintf(text, sizeof(text), "peer:%s", peer);
    if (route_parse(text, &rt, why, sizeof(why)) != ERR_OK ||
        (rq = route_req_new(rs, &rt)) == NULL) {
        cr.why = rt.kind == NULL ? why : "out of memory";
        fn(arg, &cr);
        return NULL;
    }
    rq->check = true;
    rq->fn = fn;
    rq->arg = arg;
    return route_start(rq, "", 0, "", 0);
}

void route_cancel(struct route_req *rq)
{
    if (rq == NULL) {
        return;
    }
    route_look_forget(rq);
    rq->kind->cancel(rq);
    if (rq->alive != NULL) {
        *rq->alive = false;
    }
    *rq->pprev = rq->next;
    if (rq->next != NULL) {
        rq->next->pprev = rq->pprev;
    }
    free(rq);
}
