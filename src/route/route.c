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
 * the late answer frees only the record.
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

#include "common/err.h"
#include "common/loop.h"
#include "hub/hub.h"

struct route_resolve {
    struct route_req *rq; /* NULL once the request no longer waits */
};

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
};

struct routes {
    struct loop *loop;
    const struct config *cfg;
    struct hub *hub;
    struct route_req *reqs;
    /* the request whose connector is running, until it finishes */
    struct route_req *starting;
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

/* Frees rq, then tells its owner. */
static void route_finish(struct route_req *rq, int fd, const char *why)
{
    route_done_fn fn = rq->fn;
    void *arg = rq->arg;

    if (rq->rs->starting == rq) {
        rq->rs->starting = NULL; /* route_connect returns NULL */
    }
    if (rq->pprev != NULL) {
        *rq->pprev = rq->next;
        if (rq->next != NULL) {
            rq->next->pprev = rq->pprev;
        }
    }
    free(rq);
    fn(arg, fd, fd >= 0 ? NULL : why != NULL ? why : "failed");
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

/* A socketpair whose other end the hub bridges to a stream through the
 * agent; the caller gets our end once the agent has connected to the
 * target. */
static void route_agent_connect(struct route_req *rq, const char *host,
                                int port, const char *orig_ip, int orig_port)
{
    struct hub_req *h;
    int sv[2];

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

static void route_agent_cancel(struct route_req *rq)
{
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

/* --- the table --- */

static const struct route_kind route_kinds[] = {
    {"direct", "direct", false, NULL, route_direct_connect,
     route_direct_cancel},
    {"agent", "agent:", true, route_agent_id_ok, route_agent_connect,
     route_agent_cancel},
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
    }
    return rs;
}

void routes_free(struct routes *rs)
{
    if (rs == NULL) {
        return;
    }
    while (rs->reqs != NULL) {
        route_cancel(rs->reqs);
    }
    free(rs);
}

struct route_req *route_connect(struct routes *rs, const struct route *rt,
                                const char *host, int port, const char *orig_ip,
                                int orig_port, route_done_fn fn, void *arg)
{
    struct route_req *rq, *head, *outer;
    bool pending;

    if (rt->kind == NULL) {
        fn(arg, -1, "unsupported route");
        return NULL;
    }
    if ((rq = calloc(1, sizeof(*rq))) == NULL) {
        fn(arg, -1, "out of memory");
        return NULL;
    }
    rq->rs = rs;
    rq->kind = rt->kind;
    rq->fn = fn;
    rq->arg = arg;
    rq->fd = -1;
    rq->agent_fd = -1;
    snprintf(rq->name, sizeof(rq->name), "%s", rt->name);
    head = rs->reqs;
    rq->next = head;
    if (head != NULL) {
        head->pprev = &rq->next;
    }
    rq->pprev = &rs->reqs;
    rs->reqs = rq;
    /* The connector may finish (and free) rq before it returns:
     * route_finish then clears rs->starting. */
    outer = rs->starting;
    rs->starting = rq;
    rt->kind->connect(rq, host, port, orig_ip, orig_port);
    pending = rs->starting == rq;
    rs->starting = outer;
    return pending ? rq : NULL;
}

void route_cancel(struct route_req *rq)
{
    if (rq == NULL) {
        return;
    }
    rq->kind->cancel(rq);
    if (rq->rs->starting == rq) {
        rq->rs->starting = NULL;
    }
    *rq->pprev = rq->next;
    if (rq->next != NULL) {
        rq->next->pprev = rq->pprev;
    }
    free(rq);
}
