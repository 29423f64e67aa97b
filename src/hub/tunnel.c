/*
 * Tunnels: the server side of `portcullis tunnel add` (SPEC §6); see
 * tunnel.h.
 *
 * Each tunnel in the store becomes a struct tunnel here. While its agent
 * is online (the hub's presence callback) it holds one non-blocking socket
 * per address of [tunnel] listen, registered with the main loop like every
 * other socket of the main process:
 *
 *   TCP  accept -> ACL -> hub_connect(HUB_TCP, accepted fd): from then on
 *        the hub owns and bridges the connection; we keep only the pending
 *        request until the agent answers.
 *   UDP  recvfrom -> ACL -> the flow of that source address (created on
 *        its first datagram): a SOCK_SEQPACKET socketpair whose one end is
 *        the hub's stream (HUB_UDP) and whose other end we keep. A datagram
 *        from the client is one send() into our end; one recv() from our
 *        end is one sendto() back to the client. Closing our end ends the
 *        hub's stream, which is how an idle flow ends.
 *
 * A UDP flow needs no buffer of ours: datagrams sent while the agent is
 * still connecting wait in the socketpair (at most TUNNEL_FLOW_QUEUE of
 * them; more are dropped, as a router drops what it cannot forward), and
 * anything the socketpair cannot take at once is dropped too. UDP promises
 * no delivery, and dropping keeps a flooding client from costing memory.
 *
 * One sweep timer per second closes idle flows, retries listeners that
 * failed (a port taken by another program), and deletes tunnels idle for
 * their idle_minutes. The store hears about use at most once a minute per
 * tunnel (store_tunnel_touch; a quarter of the idle time when that is
 * shorter): a busy UDP tunnel sees thousands of datagrams a second. On a
 * cluster a node deletes an idle tunnel only if no other node recorded a
 * use later than its own (store_tunnel_delete_idle).
 *
 * On a cluster a tunnel listens on every node while its agent is online
 * on any of them: a node that does not hold the agent takes the same way
 * as a peer tunnel (below) with the route "agent:ID", which the route
 * module takes through the holding node (its node: hop, as for
 * sessions). The holder tells the others when the agent comes or goes
 * (a HUB_CHANGE_PRESENCE notice, only for agents with tunnels), and only
 * the holder writes the tunnel's state. A UDP flow there asks for that
 * route with udp set: the stream carries its datagrams framed
 * (hub/udp_relay.h), between the flow's pair and the stream here and in
 * front of hub_connect(HUB_UDP) on the holder; the flow itself (ACL,
 * cap, idle end, report row) is this node's as any other.
 *
 * A tunnel through a peer node (def.peer set; TCP only) listens whenever
 * the server runs: each accepted connection asks the route module
 * (route/route.h, the one the monitor's CONNECT uses; the daemon hands it
 * in as a struct tunnel_dial, since hub/ sits below route/) for a stream
 * to the target through "peer:NAME", then a tlspump (common/tlspump.h, both
 * sides plain) joins the client to that stream and counts the bytes. A
 * peer that is down or refuses (its allow-list, the token) closes the
 * client's connection and the row says why.
 *
 * Report rows (kind "tunnel", route "agent:ID" or "peer:NAME"): one per
 * TCP connection,
 * closed when the stream ends with the bytes each way ("ok", or "error:
 * why" when the agent could not connect or the stream broke); one per UDP
 * flow, closed when the flow ends, with the payload bytes each way;
 * "denied: ..." rows for refused sources (at most TUNNEL_DENY_ROWS a
 * minute per tunnel, so a scan cannot flood the store). Open connections
 * keep a tunnel from idling out, and closing a tunnel (deleted, agent
 * gone) ends them.
 *
 * The store, on PostgreSQL, is never asked on the loop: the tunnels are
 * read (with, for each agent, whether another node holds it) on a worker
 * of their own ("reading the tunnels" below), each change coalesced into
 * the next read; a tunnel's state, its last use and an idle tunnel's
 * delete go through an ordered write queue (store/store_wqueue.h, "the
 * tunnels' writes" below), the report rows through their own batches
 * ("report rows"), the presence notice through the hub's writes, after
 * the agent's row it tells of (hub_publish_after_writes). On SQLite, a
 * local file, each is made at once on the loop as before.
 *
 * All of it runs in the main loop's thread; nothing here blocks except
 * the store on SQLite and resolving a [tunnel] listen given as a name.
 */
#include "hub/tunnel.h"
#include "hub/udp_relay.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/err.h"
#include "common/log.h"
#include "common/tlspump.h"
#include "common/util.h"
#include "hub/tunnel_def.h"
#include "store/agents.h"
#include "store/audit.h"
#include "store/nodes.h"
#include "store/notices.h"
#include "store/store_worker.h"
#include "store/store_wqueue.h"

#define TUNNEL_SOCKS_MAX 4 /* addresses [tunnel] listen may name */
#define TUNNEL_BACKLOG 128
#define TUNNEL_BURST 64         /* accepts or datagrams per wake-up */
#define TUNNEL_PENDING_MAX 4096 /* TCP connections, waiting or open */
#define TUNNEL_FLOWS_MAX 1024   /* UDP flows per tunnel */
#define TUNNEL_FLOW_BUCKETS 256 /* power of two */
#define TUNNEL_FLOW_QUEUE 8     /* datagrams held while a flow opens */
#define TUNNEL_FAILED_MS                                                       \
    5000                     /* a failed flow drops its source's datagrams     \
                                this long before it is retried */
#define TUNNEL_UDP_MAX 65507 /* the largest UDP payload */
#define TUNNEL_SWEEP_MS 1000
/* Presence notices from other nodes (an agent with tunnels came or
 * went) coalesce over this long: after a node's failure its agents come
 * back to the others by the hundred. */
#define TUNNEL_PRESENCE_MS 200
#define TUNNEL_RETRY_MS 10000 /* listen again after an error */
#define TUNNEL_PAUSE_MS 1000  /* accept paused after running out of fds */
#define TUNNEL_TOUCH_SECONDS                                                   \
    60                      /* store_tunnel_touch at most this often           \
                             * (a quarter of a shorter idle time) */
#define TUNNEL_DENY_ROWS 10 /* "denied" rows per tunnel per minute */
#define TUNNEL_DENY_WINDOW_MS 60000
#define TUNNEL_DENIED_CACHE 8     /* UDP sources refused recently */
#define TUNNEL_ROWS_MAX 128       /* report writes queued before a flush */
#define TUNNEL_ROWS_MS 100        /* the longest a queued report write waits */
#define TUNNEL_LATER_BUCKETS 1024 /* power of two: rows waiting, by ID */
#define TUNNEL_LATER_RETRY_MS 500 /* the first retry; doubling up to: */
#define TUNNEL_LATER_RETRY_MAX_MS 5000
#define TUNNEL_LATER_CALL 1024    /* rows written per timer call */
#define TUNNEL_STOP_WAIT_MS 2000  /* for the batch on a worker, at stop */
#define TUNNEL_WRITES_MAX 4096    /* state, use and idle delete writes */
#define TUNNEL_WRITE_RETRY_MS 250 /* after a failed write, doubling up to: */
#define TUNNEL_WRITE_RETRY_MAX_MS 5000
#define TUNNEL_WRITE_FLUSH_MS 1000
#define TUNNEL_READ_RETRY_MS 2000 /* after a failed read of the tunnels */

struct tunnels;
struct tunnel;

/* A source address as a hashable key. */
struct tunnel_key {
    uint8_t addr[16];
    uint16_t port;
    uint8_t family; /* 4 or 6 */
};

/* A TCP connection waiting for the agent to confirm the target. Through a
 * peer: waiting for the route (rreq), then pumped (pump). */
struct tunnel_conn {
    struct tunnel_conn *next, *prev;
    struct tunnel *t;
    struct hub_req *req;
    void *rreq; /* the dial's handle */
    struct tlspump *pump;
    int cfd;         /* the client, while the route is pending (peer only) */
    bool connecting; /* inside hub_connect(): the callback must not free */
    bool done;       /* the callback ran */
    bool open;       /* confirmed: bridged until the hub says it ended */
    char row[STORE_ID_MAX + 1];
    char client[64];
};

enum tunnel_flow_state {
    TF_OPENING, /* waiting for the agent; datagrams queue in the pair */
    TF_OPEN,    /* bridged */
    TF_FAILED,  /* the agent could not connect; dropped until it expires */
};

/* One UDP source address of one tunnel. */
struct tunnel_flow {
    struct tunnel_flow *next, *prev; /* the tunnel's flows */
    struct tunnel_flow *hnext;       /* the hash bucket's chain */
    struct tunnel *t;
    struct tunnel_key key;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    int sock; /* index into t->fds: where its datagrams arrive */
    int fd;   /* our end of the socketpair; -1 once closed */
    struct hub_req *req;
    /* through another node (tunnel_routed): the route request while it
     * is pending and the other end of the pair (pair), then the relay
     * that frames the pair's datagrams onto the stream (hub/udp_relay.h) */
    void *rreq;
    int pair;
    struct udp_relay *relay;
    enum tunnel_flow_state st;
    int queued;        /* datagrams sent into the pair while TF_OPENING */
    int64_t last_ms;   /* last datagram either way (monotonic) */
    uint64_t up, down; /* payload bytes client -> target, and back */
    char row[STORE_ID_MAX + 1];
    char client[64];
};

struct tunnel {
    struct tunnel *next, *prev;
    struct tunnels *ts;
    struct store_tunnel def;
    int fds[TUNNEL_SOCKS_MAX];
    int nfds;
    bool listening;
    uint64_t pause_timer; /* accept stopped for TUNNEL_PAUSE_MS (EMFILE) */
    int64_t retry_ms; /* monotonic time of the next listen attempt, 0 none */
    char state[TUNNEL_STATE_MAX + 1]; /* as last written to the store */
    int64_t last_used;                /* wall-clock seconds */
    int64_t touched;                  /* last store_tunnel_touch */
    bool seen;                        /* reload's mark */
    /* another node of the cluster held its agent when the tunnels were
     * last read (tunnels_read); this node's hub is asked first */
    bool elsewhere;
    /* idle: closed, its delete queued; freed once it is written */
    bool deleting;

    struct tunnel_conn *conns;
    size_t nconns;

    struct tunnel_flow *flows;
    struct tunnel_flow **buckets; /* TUNNEL_FLOW_BUCKETS, made on demand */
    size_t nflows;

    int64_t deny_window_ms;
    int deny_rows;
    unsigned long deny_quiet;
    struct tunnel_key denied[TUNNEL_DENIED_CACHE];
    int64_t denied_ms[TUNNEL_DENIED_CACHE];
    int denied_next;
};

struct tunnels {
    const struct config *cfg;
    struct loop *loop;
    struct store *store;
    struct hub *hub;
    struct tunnel_dial dial; /* for tunnels through peers */
    struct tunnel *list;
    uint64_t sweep;
    uint8_t *dgram; /* one datagram in flight: TUNNEL_UDP_MAX + 1 bytes */
    /* report writes not yet in the store (TUNNEL_ROWS_MAX; tunnel_row) */
    struct store_session_op *rows;
    size_t nrows;
    uint64_t rows_timer;
    /* report writes the store did not take (it did not answer), waiting
     * in order (tunnel_later_keep); by row ID too, so a close finds the
     * opening it completes */
    struct tunnel_later *later, **later_tail;
    struct tunnel_later *later_ids[TUNNEL_LATER_BUCKETS];
    size_t nlater;
    size_t later_max;  /* [store] outage_rows */
    size_t later_lost; /* rows not kept in this outage */
    uint64_t later_timer;
    int later_delay_ms;                 /* the retry's backoff */
    size_t later_written;               /* since the store answered again */
    struct store_session_op *later_ops; /* TUNNEL_ROWS_MAX, for a write */
    /* the batches' worker, with a connection of its own on PostgreSQL
     * (store_worker_async; else they are written on the loop, on SQLite),
     * and the one batch on it (tunnel_batch) */
    struct store_worker *writer;
    struct tunnel_batch *batch;
    /* a presence notice from another node: the listeners are looked at
     * again once TUNNEL_PRESENCE_MS after the first of a burst */
    uint64_t presence_timer;
    /* reading the tunnels: the worker (a connection of its own on
     * PostgreSQL, else inline), whether a read is on it, and whether a
     * change came meanwhile (another read follows); asked counts the
     * reads asked for, applied the last one applied (tunnels_asked) */
    struct store_worker *reader;
    bool reading, again;
    /* the last read failed (a database away): another is asked for
     * after TUNNEL_READ_RETRY_MS, and logged once until one succeeds */
    bool read_failing;
    uint64_t read_retry;
    uint64_t asked, applied;
    void (*applied_fn)(void *arg);
    void *applied_arg;
    /* the tunnels' writes (state, use, idle delete) */
    struct wqueue wq;
    /* tunnels deleted (idle) while a read was on the worker: that read
     * may list them still, and must not make them again */
    struct tunnel_gone *gone;
};

struct tunnel_gone {
    struct tunnel_gone *next;
    char id[STORE_ID_MAX + 1];
};

/* One batch of report writes on a worker (see tunnel_batch_run). */
struct tunnel_batch {
    struct store_work job;
    struct store_session_op *ops; /* TUNNEL_ROWS_MAX */
    size_t n;
    bool from_later; /* the first n waiting rows: taken off when written */
    int r;
    bool unreachable; /* r is the database not answering */
};

/* One report write waiting for the store (see tunnel_later_keep). */
struct tunnel_later {
    struct tunnel_later *next;  /* in order */
    struct tunnel_later *hnext; /* later_ids chain */
    int flight;                 /* 1: in the batch on a worker */
    struct store_session_op op;
};

static void tunnel_on_tcp(struct loop *l, int fd, int events, void *arg);
static void tunnel_on_udp(struct loop *l, int fd, int events, void *arg);
static void tunnel_flow_on_fd(struct loop *l, int fd, int events, void *arg);

/* --- small helpers ------------------------------------------------------- */

static const char *tunnel_proto(const struct tunnel *t)
{
    return t->def.udp ? "udp" : "tcp";
}

/* Its route as a report row spells it: "agent:ID" or "peer:NAME". */
static void tunnel_route_text(const struct tunnel *t, char *out, size_t len)
{
    if (t->def.peer[0] != '\0') {
        snprintf(out, len, "peer:%s", t->def.peer);
    } else {
        snprintf(out, len, "agent:%s", t->def.agent_id);
    }
}

/* --- the tunnels' writes ------------------------------------------------ */

/*
 * A tunnel's state, its last use and an idle tunnel's delete: one
 * ordered write queue (store/store_wqueue.h), one item per transaction on
 * its own connection, a failed one tried again ahead of those after it,
 * so a tunnel's states are written in the order they came. Bounded by
 * TUNNEL_WRITES_MAX: beyond it (a database away for long) a state or a
 * use is not written (logged; the next change writes it), an idle delete
 * waits for the next sweep. Without a worker (SQLite) each is written at
 * once on the loop.
 */
enum tunnel_wkind { TW_STATE, TW_TOUCH, TW_DELETE };

struct tunnel_witem {
    struct wqueue_item q; /* first: the queue's */
    enum tunnel_wkind kind;
    char id[STORE_ID_MAX + 1];
    /* TW_STATE: written only while no other node holds this agent (the
     * state is the holder's to write); "": always */
    char agent[AGENT_ID_MAX + 1];
    char state[TUNNEL_STATE_MAX + 1];
    int64_t when; /* TW_TOUCH; TW_DELETE: this node's last use */
    /* TW_DELETE's outcome, set by the write (the queue's thread, through
     * out, which points at it; read on the loop once written): used since
     * through another node, last then its last use */
    struct tunnel_wout {
        bool kept;
        int64_t last;
    } outcome, *out;
};

static void tunnel_wfree(struct wqueue_item *it)
{
    free(it);
}

/* One item on st (a worker's connection, or the loop's): ERR_OK, also for
 * the item's own failure (logged: retrying it would hold every write
 * after it for ever), or the database's error (the item is retried). */
static int tunnel_wapply(struct store *st, const struct tunnel_witem *w)
{
    int r = ERR_OK;

    switch (w->kind) {
    case TW_STATE:
        if (w->agent[0] != '\0' && store_agent_elsewhere(st, w->agent, NULL)) {
            return ERR_OK;
        }
        r = store_tunnel_set_state(st, w->id, w->state);
        break;
    case TW_TOUCH:
        r = store_tunnel_touch(st, w->id, w->when);
        break;
    case TW_DELETE:
        /* only if no node used it since (their uses are in the store) */
        r = store_tunnel_delete_idle(st, w->id, w->when, &w->out->last);
        w->out->kept = r == ERR_DENIED;
        if (r == ERR_DENIED) {
            return ERR_OK;
        }
        if (r == ERR_NOT_FOUND) {
            r = ERR_OK; /* deleted meanwhile: the notice all the same */
        }
        if (r == ERR_OK) {
            /* the other nodes close it too (a retry after a failed
             * notice finds the row gone and tells them again) */
            r = store_notice_publish(st, HUB_CHANGE_TUNNELS);
        }
        break;
    }
    if (r == ERR_NOT_FOUND || r == ERR_INVALID) {
        if (r == ERR_INVALID) {
            log_warn("tunnel %s: a write was refused: %s", w->id, err_str(r));
        }
        r = ERR_OK; /* the tunnel deleted meanwhile */
    }
    return r;
}

static int tunnel_wwrite(struct store *st, const char *arg,
                         const struct wqueue_item *first, size_t n)
{
    const struct wqueue_item *it = first;
    int r = ERR_OK;

    (void)arg;
    for (size_t i = 0; i < n && it != NULL && r == ERR_OK; i++, it = it->next) {
        r = tunnel_wapply(st, (const struct tunnel_witem *)it);
    }
    return r;
}

static struct tunnel *tunnel_find(struct tunnels *ts, const char *id);
static void tunnel_free(struct tunnel *t, const char *result);

static bool tunnel_reachable(const struct tunnel *t);
static void tunnel_listen(struct tunnel *t);
static void tunnel_set_state(struct tunnel *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* On the loop, an item written: an idle tunnel's delete frees it, or,
 * when another node used it since, it listens again with that use as
 * its last. */
static void tunnel_wwritten(void *owner, const struct wqueue_item *it)
{
    const struct tunnel_witem *w = (const struct tunnel_witem *)it;
    struct tunnels *ts = owner;
    struct tunnel *t;
    struct tunnel_gone *g;

    if (w->kind != TW_DELETE) {
        return;
    }
    if ((t = tunnel_find(ts, w->id)) != NULL && t->deleting &&
        w->outcome.kept) {
        t->deleting = false;
        if (w->outcome.last > t->last_used) {
            t->last_used = w->outcome.last;
        }
        log_info("tunnel %s: not deleted: used through another node since",
                 t->def.id);
        if (tunnel_reachable(t)) {
            tunnel_listen(t);
        }
        return;
    }
    if (w->outcome.kept) {
        return;
    }
    /* a read on the worker may have listed it before the delete: it
     * must not bring it back (tunnels_apply) */
    if (ts->reading && (g = calloc(1, sizeof(*g))) != NULL) {
        snprintf(g->id, sizeof(g->id), "%s", w->id);
        g->next = ts->gone;
        ts->gone = g;
    }
    if (t == NULL || !t->deleting) {
        return;
    }
    log_info("tunnel %s (port %d/%s) deleted: idle for %d minutes", t->def.id,
             t->def.local_port, tunnel_proto(t), t->def.idle_minutes);
    tunnel_free(t, "error: the tunnel was deleted");
}

static const struct wqueue_conf tunnel_wconf = {
    .what = "tunnel state write",
    .batch = 1, /* each is one of the store's own transactions */
    .retry_ms = TUNNEL_WRITE_RETRY_MS,
    .retry_max_ms = TUNNEL_WRITE_RETRY_MAX_MS,
    .flush_ms = TUNNEL_WRITE_FLUSH_MS,
    .write = tunnel_wwrite,
    .free = tunnel_wfree,
    .written = tunnel_wwritten,
    /* the API's reads of the report and the audit log read nothing of
     * these (and GET /tunnels does not wait for writers) */
    .no_read_gate = true,
};

/* A new item of kind for tunnel id, or NULL (out of
 * memory, logged). */
static struct tunnel_witem *tunnel_witem(enum tunnel_wkind kind, const char *id)
{
    struct tunnel_witem *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        log_error("tunnel %s: out of memory for a store write", id);
        return NULL;
    }
    w->kind = kind;
    w->out = &w->outcome;
    snprintf(w->id, sizeof(w->id), "%s", id);
    return w;
}

/* Takes w: queued, or written at once without a worker (SQLite). ERR_OK,
 * else ERR_STORE (the queue's bound: the store does not take writes) or
 * the write's error (w freed either way). */
static int tunnel_wput(struct tunnels *ts, struct tunnel_witem *w)
{
    int r;

    if (wqueue_off_loop(&ts->wq)) {
        if ((r = wqueue_put(&ts->wq, &w->q)) != ERR_OK) {
            tunnel_wfree(&w->q);
        }
        return r;
    }
    w->q.next = NULL;
    if ((r = tunnel_wwrite(ts->store, NULL, &w->q, 1)) == ERR_OK) {
        tunnel_wwritten(ts, &w->q);
    }
    tunnel_wfree(&w->q);
    return r;
}

/* Whether t can listen now: its agent is online here, or (a TCP tunnel,
 * with node routes) on another node of the cluster as the last read of
 * the tunnels found it, or it goes through a peer (reached anew at each
 * connection). */
static bool tunnel_reachable(const struct tunnel *t)
{
    if (t->def.peer[0] != '\0') {
        return t->ts->dial.connect != NULL;
    }
    if (hub_agent_online(t->ts->hub, t->def.agent_id)) {
        return true;
    }
    return t->ts->dial.connect != NULL && t->elsewhere;
}

/* Whether connections to t go through another node (the route module's
 * "agent:ID", or a peer) rather than to an agent of this node's hub. */
static bool tunnel_routed(const struct tunnel *t)
{
    return t->def.peer[0] != '\0' ||
           !hub_agent_online(t->ts->hub, t->def.agent_id);
}

/* Writes the tunnel's state to the store when it changed. */
static void tunnel_set_state(struct tunnel *t, const char *fmt, ...)
{
    char state[TUNNEL_STATE_MAX + 1];
    struct tunnel_witem *w;
    va_list ap;
    int r;

    va_start(ap, fmt);
    vsnprintf(state, sizeof(state), fmt, ap);
    va_end(ap);
    if (strcmp(state, t->state) == 0 || t->deleting) {
        return;
    }
    if ((w = tunnel_witem(TW_STATE, t->def.id)) == NULL) {
        return;
    }
    memcpy(w->state, state, sizeof(state));
    /* the state is the holding node's to write: another node's, if it
     * holds the agent when the write is made */
    if (t->def.peer[0] == '\0' &&
        !hub_agent_online(t->ts->hub, t->def.agent_id)) {
        memcpy(w->agent, t->def.agent_id, sizeof(w->agent));
    }
    if ((r = tunnel_wput(t->ts, w)) != ERR_OK) {
        log_warn("tunnel %s: cannot write its state (%s): %s", t->def.id, state,
                 err_str(r));
        return;
    }
    memcpy(t->state, state, sizeof(state));
}

/* The client's address as text: ip (IPv4-mapped IPv6 as IPv4), "ip:port"
 * or "[ip]:port", and as a key. false if the family is not IP. */
static bool tunnel_addr(const struct sockaddr_storage *ss, char *ip,
                        size_t iplen, char *client, size_t clientlen,
                        struct tunnel_key *key, int *port)
{
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    const uint8_t *a6;

    memset(key, 0, sizeof(*key));
    if (ss->ss_family == AF_INET) {
        key->family = 4;
        memcpy(key->addr, &in4->sin_addr, 4);
        key->port = ntohs(in4->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        a6 = in6->sin6_addr.s6_addr;
        key->port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            key->family = 4;
            memcpy(key->addr, a6 + 12, 4);
        } else {
            key->family = 6;
            memcpy(key->addr, a6, 16);
        }
    } else {
        return false;
    }
    if (inet_ntop(key->family == 4 ? AF_INET : AF_INET6, key->addr, ip,
                  (socklen_t)iplen) == NULL) {
        return false;
    }
    snprintf(client, clientlen, key->family == 4 ? "%s:%u" : "[%s]:%u", ip,
             (unsigned)key->port);
    *port = key->port;
    return true;
}

static bool tunnel_key_eq(const struct tunnel_key *a,
                          const struct tunnel_key *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static size_t tunnel_key_hash(const struct tunnel_key *k)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    size_t i;

    for (i = 0; i < sizeof(k->addr); i++) {
        h = (h ^ k->addr[i]) * 16777619u;
    }
    h = (h ^ (k->port & 0xff)) * 16777619u;
    h = (h ^ (k->port >> 8)) * 16777619u;
    h = (h ^ k->family) * 16777619u;
    return h & (TUNNEL_FLOW_BUCKETS - 1);
}

/* --- report rows --------------------------------------------------------- */

/*
 * Report rows are queued and written TUNNEL_ROWS_MAX at a time in one
 * transaction (store_session_batch), at the latest TUNNEL_ROWS_MS after
 * the first was queued, and at once when the tunnels stop. A connection
 * that ends while its opening is still queued gets one row, written
 * closed: under many short connections the store sees one INSERT per
 * connection in transactions of many, where it saw two transactions per
 * connection on the path of every accept and close (the most expensive
 * part of a short connection, bench/README.md). The cost: a server killed
 * without a chance to stop (SIGKILL, a crash) loses the rows of the
 * connections of its last TUNNEL_ROWS_MS (docs/security.md).
 *
 * A store that does not answer (PostgreSQL down: store_unreachable())
 * does not lose them either. A batch it could not take, and every batch
 * after it while any row waits, goes to the "later" queue in order, and a
 * timer writes it when the store answers (first after
 * TUNNEL_LATER_RETRY_MS, doubling up to TUNNEL_LATER_RETRY_MAX_MS), never
 * on the path of an accept or a close. A close finds its opening in the
 * queue by ID and completes it there (a connection opened and closed
 * during the outage is one waiting row, as in the batch). Memory is
 * bounded by [store] outage_rows (each waiting row is one struct
 * store_session_op, about 3 KiB):
 *
 *  - a new row is not kept once that many wait (its connection still
 *    works; its row ID stays empty, so its close is not kept either);
 *  - a close of a row written before the outage (a connection that was
 *    open when the store went) gets a quarter more room, so the rows the
 *    store has open are closed with their real bytes rather than as
 *    interrupted at the next start;
 *  - the earliest rows are kept and the newest dropped: someone who opens
 *    thousands of connections during an outage can fill the queue and so
 *    have their own and later connections go unrecorded, but cannot push
 *    out what happened before, nor grow the server's memory. What was not
 *    kept is counted, logged once when the bound is hit, and written as
 *    an audit event (report.lost) when the store answers again.
 *
 * On PostgreSQL a batch is written on a libuv worker, on a store
 * connection of the tunnels' own (ts->writer, a store_worker), so a slow
 * database or a lock on the sessions table delays the rows, not the loop
 * (test_store_pg_outage.py
 * test_loop_answers_while_tunnel_rows_wait_for_a_lock). One batch is in flight
 * at a time, so none overtakes an earlier one: while it runs, new rows and
 * closes gather in the queue as usual (a close of a row in flight is queued as
 * a close of its own, written after it); when the batch comes back the queue
 * goes next. A queue that fills up (TUNNEL_ROWS_MAX) while a batch is in flight
 * joins the waiting rows above, under the same bound, so a client opening
 * thousands of connections while the database is slow costs at most [store]
 * outage_rows waiting rows plus two batches. The waiting rows are then
 * written on the worker too, in order, TUNNEL_ROWS_MAX at a time (a
 * close does not complete an opening while it is in flight: it waits
 * behind it). A batch the store did not take because it does not answer
 * (store_unreachable() on the worker's connection) goes back to the
 * front of the waiting rows; failing otherwise (a lock held past
 * lock_timeout, 20 s) its rows are logged and lost, as on the loop. At
 * stop the batch in flight is waited for TUNNEL_STOP_WAIT_MS at most,
 * then the rest is written on the loop (or, if it has not come back,
 * counted as lost: nothing may overtake it). On SQLite (no second
 * connection) every batch is written on the loop, as before.
 */
static void tunnel_later_due(struct loop *l, void *arg);
static void tunnel_rows_flush(struct tunnels *ts);

static size_t tunnel_later_bucket(const char *id)
{
    uint32_t h = 2166136261u;

    for (; *id != '\0'; id++) {
        h = (h ^ (uint8_t)*id) * 16777619u;
    }
    return h & (TUNNEL_LATER_BUCKETS - 1);
}

/* The waiting opening of row id that is not yet closed, or NULL. */
static struct tunnel_later *tunnel_later_find(struct tunnels *ts,
                                              const char *id)
{
    struct tunnel_later *w = ts->later_ids[tunnel_later_bucket(id)];

    for (; w != NULL; w = w->hnext) {
        if (w->op.insert && w->op.s.ended_at == 0 && w->flight == 0 &&
            strcmp(w->op.s.id, id) == 0) {
            return w;
        }
    }
    return NULL;
}

static void tunnel_later_lose(struct tunnels *ts, const char *what)
{
    if (ts->later_lost++ == 0) {
        log_warn("tunnel: %zu report rows wait for the store already "
                 "([store] outage_rows); further ones (%s) are not kept "
                 "until it answers, only counted",
                 ts->nlater, what);
    }
}

/* A row that is not kept: the connection or flow holding its ID forgets
 * it, so its close is not queued for a row that does not exist. Runs only
 * for rows dropped from a batch moved to the queue (at most
 * TUNNEL_ROWS_MAX at a time); later ones are not made (tunnel_row). */
static void tunnel_forget_row(struct tunnels *ts, const char *id)
{
    struct tunnel *t;
    struct tunnel_conn *c;
    struct tunnel_flow *f;

    for (t = ts->list; t != NULL; t = t->next) {
        for (c = t->conns; c != NULL; c = c->next) {
            if (strcmp(c->row, id) == 0) {
                c->row[0] = '\0';
                return;
            }
        }
        for (f = t->flows; f != NULL; f = f->next) {
            if (strcmp(f->row, id) == 0) {
                f->row[0] = '\0';
                return;
            }
        }
    }
}

/* Keeps o at the end of the waiting rows (or completes its opening
 * there), within the bound. */
static void tunnel_later_keep(struct tunnels *ts,
                              const struct store_session_op *o)
{
    struct tunnel_later *w;
    size_t b;

    if (!o->insert && (w = tunnel_later_find(ts, o->s.id)) != NULL) {
        w->op.s.ended_at = o->s.ended_at;
        w->op.s.bytes_up = o->s.bytes_up;
        w->op.s.bytes_down = o->s.bytes_down;
        w->op.s.exit_status = o->s.exit_status;
        memcpy(w->op.s.result, o->s.result, sizeof(w->op.s.result));
        return;
    }
    if (ts->nlater >= ts->later_max + (o->insert ? 0 : ts->later_max / 4)) {
        tunnel_later_lose(ts, o->insert ? "new connections" : "closes");
        if (o->insert && o->s.ended_at == 0) {
            tunnel_forget_row(ts, o->s.id);
        }
        return;
    }
    if ((w = malloc(sizeof(*w))) == NULL) {
        tunnel_later_lose(ts, "out of memory");
        return;
    }
    w->op = *o;
    w->flight = 0;
    w->next = NULL;
    b = tunnel_later_bucket(o->s.id);
    w->hnext = ts->later_ids[b];
    ts->later_ids[b] = w;
    if (ts->nlater == 0) {
        ts->later_tail = &ts->later;
        log_warn("tunnel: the store does not answer (or not fast enough); "
                 "report rows wait in memory and are written when it does");
    }
    *ts->later_tail = w;
    ts->later_tail = &w->next;
    ts->nlater++;
    if (ts->later_timer == 0) {
        ts->later_delay_ms = TUNNEL_LATER_RETRY_MS;
        ts->later_timer = loop_add_timer(ts->loop, TUNNEL_LATER_RETRY_MS,
                                         tunnel_later_due, ts);
    }
}

/* Takes the first waiting row off the queue and its bucket. */
static void tunnel_later_pop(struct tunnels *ts)
{
    struct tunnel_later *w = ts->later, **pp;

    ts->later = w->next;
    for (pp = &ts->later_ids[tunnel_later_bucket(w->op.s.id)]; *pp != NULL;
         pp = &(*pp)->hnext) {
        if (*pp == w) {
            *pp = w->hnext;
            break;
        }
    }
    ts->nlater--;
    if (ts->later == NULL) {
        ts->later_tail = &ts->later;
    }
    free(w);
}

static void tunnel_rows_log(struct store_session_op *ops, size_t n, int r)
{
    struct store_session_op *o;
    size_t i;

    for (i = 0; i < n; i++) {
        o = &ops[i];
        if (r != ERR_OK || o->r != ERR_OK) {
            log_error("tunnel: cannot %s the report row %s for %s: %s",
                      o->insert ? "write" : "close", o->s.id,
                      o->s.client_addr[0] != '\0' ? o->s.client_addr : "?",
                      err_str(r != ERR_OK ? r : o->r));
        }
    }
}

/* The waiting rows are all written: what was not kept is said, once
 * (report.lost). */
static void tunnel_later_empty(struct tunnels *ts)
{
    char detail[256];
    int r;

    if (ts->later != NULL || ts->later_lost == 0) {
        return;
    }
    snprintf(detail, sizeof(detail),
             "%zu tunnel report row(s) of a time the store did not "
             "answer were not kept: more than [store] outage_rows (%zu) "
             "waited",
             ts->later_lost, ts->later_max);
    log_warn("tunnel: %s", detail);
    if ((r = audit_write(ts->store, "system", "tunnel", "report.lost", "",
                         detail)) != ERR_OK) {
        log_error("tunnel: cannot write the audit event report.lost: %s",
                  err_str(r));
    }
    ts->later_lost = 0;
}

/* Writes waiting rows in order, TUNNEL_ROWS_MAX per transaction, at most
 * max of them, on the loop: ERR_OK when that many (or all) were written,
 * else the store's error with the rest still waiting. *written: how
 * many. */
static int tunnel_later_write(struct tunnels *ts, size_t max, size_t *written)
{
    struct store_session_op *ops = ts->later_ops;
    struct tunnel_later *w;
    size_t n, i;
    int r;

    *written = 0;
    /* a batch's copy (366 KiB: not on the stack), made on first use */
    if (ts->later != NULL && ops == NULL &&
        (ops = ts->later_ops = calloc(TUNNEL_ROWS_MAX, sizeof(*ops))) == NULL) {
        return ERR_NOMEM;
    }
    while (ts->later != NULL && *written < max) {
        for (n = 0, w = ts->later; w != NULL && n < TUNNEL_ROWS_MAX;
             w = w->next) {
            ops[n++] = w->op;
        }
        if ((r = store_session_batch(ts->store, ops, n)) != ERR_OK) {
            return r;
        }
        tunnel_rows_log(ops, n, ERR_OK);
        for (i = 0; i < n; i++) {
            tunnel_later_pop(ts);
        }
        *written += n;
    }
    tunnel_later_empty(ts);
    return ERR_OK;
}

/* The next try at the waiting rows, after a longer pause each time. */
static void tunnel_later_retry(struct tunnels *ts)
{
    ts->later_delay_ms = ts->later_delay_ms >= TUNNEL_LATER_RETRY_MAX_MS / 2
                             ? TUNNEL_LATER_RETRY_MAX_MS
                             : ts->later_delay_ms * 2;
    if (ts->later_timer != 0) {
        loop_del_timer(ts->loop, ts->later_timer);
    }
    ts->later_timer = loop_add_timer(ts->loop, (uint64_t)ts->later_delay_ms,
                                     tunnel_later_due, ts);
}

/* --- batches on a worker (PostgreSQL) --- */

static void tunnel_batch_free(struct tunnel_batch *b)
{
    if (b != NULL) {
        free(b->ops);
        free(b);
    }
}

static void tunnel_batch_work(struct store_work *j, struct store *st)
{
    struct tunnel_batch *b = (struct tunnel_batch *)j;

    b->r = store_session_batch(st, b->ops, b->n);
    b->unreachable = b->r != ERR_OK && store_unreachable(st);
}

static void tunnel_batch_done(void *owner, struct store_work *j);

/* Sends b (its n ops filled in) to the batches' worker; tunnel_batch_done
 * takes it back (at once, if no worker thread can be had). */
static void tunnel_batch_run(struct tunnels *ts, struct tunnel_batch *b)
{
    b->job.work = tunnel_batch_work;
    b->job.done = tunnel_batch_done;
    b->r = ERR_STORE; /* no connection: the database does not answer */
    b->unreachable = true;
    ts->batch = b;
    store_worker_run(ts->writer, &b->job);
}

static struct tunnel_batch *tunnel_batch_new(void)
{
    struct tunnel_batch *b = calloc(1, sizeof(*b));

    if (b != NULL &&
        (b->ops = calloc(TUNNEL_ROWS_MAX, sizeof(*b->ops))) == NULL) {
        free(b);
        return NULL;
    }
    return b;
}

/* The first TUNNEL_ROWS_MAX waiting rows, on a worker. While they are in
 * flight a close does not complete them in the queue (tunnel_later_find
 * skips them): it is queued behind them. */
static void tunnel_later_start(struct tunnels *ts)
{
    struct tunnel_batch *b;
    struct tunnel_later *w;
    size_t i;

    if ((b = tunnel_batch_new()) == NULL) {
        tunnel_later_retry(ts);
        return;
    }
    for (w = ts->later; w != NULL && b->n < TUNNEL_ROWS_MAX; w = w->next) {
        b->ops[b->n++] = w->op;
    }
    b->from_later = true;
    for (w = ts->later, i = 0; w != NULL && i < b->n; w = w->next, i++) {
        w->flight = 1;
    }
    tunnel_batch_run(ts, b);
}

/* Keeps a batch the store did not take ahead of the rows that waited
 * meanwhile (they came after it). */
static void tunnel_later_keep_first(struct tunnels *ts,
                                    const struct store_session_op *ops,
                                    size_t n)
{
    struct tunnel_later *rest = ts->later, **rest_tail = ts->later_tail;
    size_t had = ts->nlater, i;

    /* the bound counts the batch alone: it is older than what waits, so
     * it may take the room of one batch beyond [store] outage_rows */
    ts->later = NULL;
    ts->later_tail = &ts->later;
    ts->nlater = 0;
    for (i = 0; i < n; i++) {
        tunnel_later_keep(ts, &ops[i]);
    }
    if (rest != NULL) {
        *ts->later_tail = rest;
        ts->later_tail = rest_tail;
    }
    ts->nlater += had;
}

/* What a batch came back with, applied on the loop. */
static void tunnel_batch_settle(struct tunnels *ts, struct tunnel_batch *b)
{
    struct tunnel_later *w;
    size_t i;

    if (b->from_later) {
        if (b->r != ERR_OK) {
            for (w = ts->later, i = 0; w != NULL && i < b->n;
                 w = w->next, i++) {
                w->flight = 0;
            }
            tunnel_later_retry(ts);
            return;
        }
        tunnel_rows_log(b->ops, b->n, ERR_OK);
        for (i = 0; i < b->n && ts->later != NULL; i++) {
            tunnel_later_pop(ts);
        }
        ts->later_written += b->n;
        if (ts->later == NULL) {
            log_info("store answers again: %zu tunnel report row(s) written",
                     ts->later_written);
            ts->later_written = 0;
            tunnel_later_empty(ts);
        }
        return;
    }
    if (b->r == ERR_OK || !b->unreachable) {
        tunnel_rows_log(b->ops, b->n, b->r);
        return;
    }
    tunnel_later_keep_first(ts, b->ops, b->n);
}

/* After a batch (or a retry's timer): the next write that is due, one at
 * a time. Queued rows whose time came while a batch was in flight go
 * first (to the waiting rows, if any wait); then the waiting rows, unless
 * their retry's timer runs (answered: the store just took a batch, so
 * they go now). */
static void tunnel_rows_next(struct tunnels *ts, bool answered)
{
    if (ts->batch != NULL) {
        return;
    }
    if (answered && ts->later_timer != 0) {
        loop_del_timer(ts->loop, ts->later_timer);
        ts->later_timer = 0;
        ts->later_delay_ms = TUNNEL_LATER_RETRY_MS;
    }
    if (ts->nrows > 0 &&
        (ts->nrows >= TUNNEL_ROWS_MAX || ts->rows_timer == 0)) {
        tunnel_rows_flush(ts);
    }
    if (ts->batch == NULL && ts->later != NULL && ts->later_timer == 0) {
        tunnel_later_start(ts);
    }
}

static void tunnel_batch_done(void *owner, struct store_work *j)
{
    struct tunnel_batch *b = (struct tunnel_batch *)j;
    struct tunnels *ts = owner;
    bool answered = b->r == ERR_OK;

    if (ts == NULL) { /* tunnels_stop went meanwhile */
        tunnel_batch_free(b);
        return;
    }
    ts->batch = NULL;
    tunnel_batch_settle(ts, b);
    tunnel_batch_free(b);
    tunnel_rows_next(ts, answered);
}

static void tunnel_later_due(struct loop *l, void *arg)
{
    struct tunnels *ts = arg;
    size_t n = 0;
    int r;

    ts->later_timer = 0;
    if (ts->batch != NULL) {
        return; /* its end starts the next write */
    }
    if (store_worker_async(ts->writer)) {
        tunnel_rows_next(ts, false);
        return;
    }
    r = tunnel_later_write(ts, TUNNEL_LATER_CALL, &n);
    if (n > 0) {
        log_info("store answers again: %zu tunnel report row(s) written", n);
    }
    if (r == ERR_OK) {
        if (ts->later != NULL) { /* a long backlog: the loop breathes */
            ts->later_timer = loop_add_timer(l, 1, tunnel_later_due, ts);
        }
        return;
    }
    tunnel_later_retry(ts);
}

/* The queued rows, as one batch: on a worker when the batches have a
 * connection of their own (PostgreSQL) and none is in flight, on the loop
 * otherwise (SQLite; at stop). While a batch is in flight the next
 * waits in the queue, and a queue that fills meanwhile joins the waiting
 * rows, within their bound. */
static void tunnel_rows_flush(struct tunnels *ts)
{
    struct tunnel_batch *b;
    size_t i, n = ts->nrows;
    int r;

    if (ts->rows_timer != 0) {
        loop_del_timer(ts->loop, ts->rows_timer);
        ts->rows_timer = 0;
    }
    if (n == 0) {
        return;
    }
    if (ts->later == NULL && ts->batch != NULL && n < TUNNEL_ROWS_MAX) {
        return; /* tunnel_rows_next sends them when the batch is back */
    }
    ts->nrows = 0;
    /* behind rows already waiting: the store is down, do not ask again */
    if (ts->later == NULL && ts->batch == NULL) {
        if (store_worker_async(ts->writer) &&
            (b = tunnel_batch_new()) != NULL) {
            memcpy(b->ops, ts->rows, n * sizeof(*b->ops));
            b->n = n;
            tunnel_batch_run(ts, b);
            return;
        }
        r = store_session_batch(ts->store, ts->rows, n);
        if (r == ERR_OK || !store_unreachable(ts->store)) {
            tunnel_rows_log(ts->rows, n, r);
            return;
        }
    }
    for (i = 0; i < n; i++) {
        tunnel_later_keep(ts, &ts->rows[i]);
    }
}

static void tunnel_rows_due(struct loop *l, void *arg)
{
    struct tunnels *ts = arg;

    ts->rows_timer = 0;
    tunnel_rows_flush(ts);
}

/* A free op at the end of the queue (flushing first when it is full). */
static struct store_session_op *tunnel_rows_add(struct tunnels *ts)
{
    struct store_session_op *o;

    if (ts->nrows >= TUNNEL_ROWS_MAX) {
        tunnel_rows_flush(ts);
    }
    o = &ts->rows[ts->nrows++];
    memset(o, 0, sizeof(*o));
    if (ts->rows_timer == 0) {
        ts->rows_timer =
            loop_add_timer(ts->loop, TUNNEL_ROWS_MS, tunnel_rows_due, ts);
    }
    return o;
}

/* Opens a row for a client of t (result NULL), or writes one already
 * closed with result (both queued). id gets the row's ID. */
static void tunnel_row(struct tunnel *t, const char *client, const char *result,
                       char *id)
{
    struct tunnels *ts = t->ts;
    struct store_session_op *o;
    struct store_session *s;

    /* The store does not answer and the rows waiting for it fill their
     * bound: this one would not be kept (tunnel_later_keep), so it is not
     * made; its ID stays empty and its close is not queued either. */
    if (ts->later != NULL && ts->nlater >= ts->later_max) {
        tunnel_later_lose(ts, "new connections");
        id[0] = '\0';
        return;
    }
    o = tunnel_rows_add(ts);
    s = &o->s;

    o->insert = true;
    util_uuid4(s->id);
    snprintf(s->user_name, sizeof(s->user_name), "%s", t->def.created_by);
    snprintf(s->kind, sizeof(s->kind), "tunnel");
    snprintf(s->client_addr, sizeof(s->client_addr), "%s", client);
    tunnel_route_text(t, s->route, sizeof(s->route));
    snprintf(
        s->detail, sizeof(s->detail), "%s/%s%s%s:%d (%s, port %d, tunnel %s)",
        t->def.peer[0] != '\0' ? s->route : t->def.agent_id,
        strchr(t->def.remote_host, ':') != NULL ? "[" : "", t->def.remote_host,
        strchr(t->def.remote_host, ':') != NULL ? "]" : "", t->def.remote_port,
        tunnel_proto(t), t->def.local_port, t->def.id);
    s->started_at = util_now();
    s->exit_status = -1;
    if (result != NULL) {
        s->ended_at = s->started_at;
        snprintf(s->result, sizeof(s->result), "%s", result);
    }
    memcpy(id, s->id, sizeof(s->id));
}

/* Closes the row id: the queued opening itself while it waits (one row
 * written closed), or a queued close. */
static void tunnel_row_close(struct tunnel *t, char *id, uint64_t up,
                             uint64_t down, const char *result)
{
    struct tunnels *ts = t->ts;
    struct store_session_op *o = NULL;
    struct store_session *s;
    size_t i;

    if (id[0] == '\0' || result == NULL) {
        return;
    }
    for (i = ts->nrows; i-- > 0;) {
        if (ts->rows[i].insert && ts->rows[i].s.ended_at == 0 &&
            strcmp(ts->rows[i].s.id, id) == 0) {
            o = &ts->rows[i];
            break;
        }
    }
    if (o == NULL) {
        o = tunnel_rows_add(ts);
        snprintf(o->s.id, sizeof(o->s.id), "%s", id);
    }
    s = &o->s;
    s->ended_at = util_now();
    s->bytes_up = up;
    s->bytes_down = down;
    s->exit_status = -1;
    snprintf(s->result, sizeof(s->result), "%s", result);
    id[0] = '\0';
}

/* A refused client: logged and reported ("denied: why" for the ACL,
 * "error: why" for limits), both limited per tunnel. */
static void tunnel_refuse(struct tunnel *t, const char *client, bool denied,
                          const char *why)
{
    int64_t now = util_mono_ms();
    char row[STORE_ID_MAX + 1], result[STORE_RESULT_MAX + 1];

    if (now - t->deny_window_ms >= TUNNEL_DENY_WINDOW_MS) {
        if (t->deny_quiet > 0) {
            log_warn("tunnel %s (port %d/%s): %lu more refusals were not "
                     "logged or reported",
                     t->def.id, t->def.local_port, tunnel_proto(t),
                     t->deny_quiet);
        }
        t->deny_window_ms = now;
        t->deny_rows = 0;
        t->deny_quiet = 0;
    }
    if (t->deny_rows >= TUNNEL_DENY_ROWS) {
        t->deny_quiet++;
        return;
    }
    t->deny_rows++;
    log_warn("tunnel %s (port %d/%s): refused %s: %s", t->def.id,
             t->def.local_port, tunnel_proto(t), client, why);
    snprintf(result, sizeof(result), "%s: %s", denied ? "denied" : "error",
             why);
    tunnel_row(t, client, result, row);
}

/* A connection or datagram used the tunnel: keeps it from idling out. */
static void tunnel_used(struct tunnel *t)
{
    int64_t now = util_now();
    struct tunnel_witem *w;
    int r;

    t->last_used = now;
    /* the store's last use is what the other nodes' idle time counts
     * from (tunnel_idle_delete): for a short idle time it is written
     * more often, so it lags the real one by a quarter of it at most */
    if (now - t->touched < TUNNEL_TOUCH_SECONDS &&
        (t->def.idle_minutes <= 0 ||
         now - t->touched < (int64_t)t->def.idle_minutes * 15)) {
        return;
    }
    t->touched = now;
    if ((w = tunnel_witem(TW_TOUCH, t->def.id)) == NULL) {
        return;
    }
    w->when = now;
    if ((r = tunnel_wput(t->ts, w)) != ERR_OK) {
        log_warn("tunnel %s: cannot record its use: %s", t->def.id, err_str(r));
    }
}

/* --- TCP connections ----------------------------------------------------- */

static void tunnel_conn_unlink(struct tunnel_conn *c)
{
    struct tunnel *t = c->t;

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        t->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->next = c->prev = NULL;
    t->nconns--;
}

/* The hub's answer for one TCP connection. */
static void tunnel_conn_done(void *arg, bool ok, const char *why)
{
    struct tunnel_conn *c = arg;
    struct tunnel *t = c->t;
    char result[STORE_RESULT_MAX + 1];

    if (ok) {
        /* the row stays open until the stream ends (tunnel_conn_end) */
        c->open = true;
        log_info("tunnel %s: %s connected to %s/%s:%d", t->def.id, c->client,
                 t->def.agent_id, t->def.remote_host, t->def.remote_port);
        return;
    }
    c->req = NULL;
    c->done = true;
    {
        log_info("tunnel %s: %s could not reach %s/%s:%d: %s", t->def.id,
                 c->client, t->def.agent_id, t->def.remote_host,
                 t->def.remote_port, why != NULL ? why : "?");
        snprintf(result, sizeof(result), "error: %s",
                 why != NULL ? why : "the agent could not connect");
        tunnel_row_close(t, c->row, 0, 0, result);
    }
    tunnel_conn_unlink(c);
    if (!c->connecting) {
        free(c);
    }
}

/* A confirmed connection ended: its row gets the byte counts. */
static void tunnel_conn_end(void *arg, uint64_t up, uint64_t down,
                            const char *why)
{
    struct tunnel_conn *c = arg;
    struct tunnel *t = c->t;
    char result[STORE_RESULT_MAX + 1];

    c->req = NULL;
    if (why != NULL) {
        snprintf(result, sizeof(result), "error: %s", why);
    } else {
        snprintf(result, sizeof(result), "ok");
    }
    tunnel_row_close(t, c->row, up, down, result);
    tunnel_used(t); /* the idle time counts from the last connection's end */
    tunnel_conn_unlink(c);
    free(c);
}

/* Forgets a connection, pending or open (the hub closes its socket). */
static void tunnel_conn_cancel(struct tunnel_conn *c, const char *result)
{
    struct tunnel *t = c->t;
    uint64_t up = 0, down = 0;

    if (c->req != NULL) {
        hub_connect_cancel(c->req);
        c->req = NULL;
    }
    if (c->rreq != NULL) {
        t->ts->dial.cancel(c->rreq);
        c->rreq = NULL;
    }
    if (c->cfd >= 0) {
        close(c->cfd);
        c->cfd = -1;
    }
    if (c->pump != NULL) {
        tlspump_counts(c->pump, &up, &down);
        tlspump_free(c->pump);
        c->pump = NULL;
        result = "ok"; /* it was carrying: ended by us, not broken */
    }
    tunnel_row_close(t, c->row, up, down, result);
    tunnel_conn_unlink(c);
    free(c);
}

/* --- TCP connections through a peer ------------------------------------- */

/* Forgets c after its end: freed now, or by tunnel_tcp_client when the
 * end came inside route_connect. */
static void tunnel_peer_conn_gone(struct tunnel_conn *c)
{
    c->done = true;
    tunnel_conn_unlink(c);
    if (!c->connecting) {
        free(c);
    }
}

/* The pump ended: either side closed, or an error. */
static void tunnel_peer_pump_done(void *arg, const char *why)
{
    struct tunnel_conn *c = arg;
    struct tunnel *t = c->t;
    char result[STORE_RESULT_MAX + 1];
    uint64_t up = 0, down = 0;

    tlspump_counts(c->pump, &up, &down);
    tlspump_free(c->pump);
    c->pump = NULL;
    if (why != NULL) {
        snprintf(result, sizeof(result), "error: %s", why);
    } else {
        snprintf(result, sizeof(result), "ok");
    }
    tunnel_row_close(t, c->row, up, down, result);
    tunnel_used(t); /* the idle time counts from the last connection's end */
    tunnel_peer_conn_gone(c);
}

/* The route's answer: a stream to the target through the peer, or why
 * not. */
static void tunnel_peer_route_done(void *arg, int fd, const char *why)
{
    struct tunnel_conn *c = arg;
    struct tunnel *t = c->t;
    char result[STORE_RESULT_MAX + 1], route[STORE_ROUTE_MAX + 1];
    int cfd = c->cfd;

    c->rreq = NULL;
    c->cfd = -1;
    tunnel_route_text(t, route, sizeof(route));
    if (fd < 0) {
        log_info("tunnel %s: %s could not reach %s:%d through %s: %s",
                 t->def.id, c->client, t->def.remote_host, t->def.remote_port,
                 route, why != NULL ? why : "?");
        close(cfd);
        snprintf(result, sizeof(result), "error: %s",
                 why != NULL ? why : "the route could not connect");
        tunnel_row_close(t, c->row, 0, 0, result);
        tunnel_peer_conn_gone(c);
        return;
    }
    c->pump =
        tlspump_new(t->ts->loop, cfd, NULL, fd, NULL, tunnel_peer_pump_done, c);
    if (c->pump == NULL) { /* it closed both fds */
        tunnel_row_close(t, c->row, 0, 0, "error: out of resources");
        tunnel_peer_conn_gone(c);
        return;
    }
    c->open = true;
    log_info("tunnel %s: %s connected to %s:%d through %s", t->def.id,
             c->client, t->def.remote_host, t->def.remote_port, route);
    tlspump_start(c->pump); /* may end it at once */
}

/* Starts c (linked into t, its row open) towards the target through the
 * peer. */
static void tunnel_peer_connect(struct tunnel *t, struct tunnel_conn *c,
                                int cfd, const char *ip, int port)
{
    char route[STORE_ROUTE_MAX + 1];
    void *rq;

    tunnel_route_text(t, route, sizeof(route));
    c->cfd = cfd;
    if (t->ts->dial.connect == NULL) { /* no route module: none to take */
        tunnel_peer_route_done(c, -1, "no route to another node here");
        return;
    }
    c->connecting = true;
    rq = t->ts->dial.connect(t->ts->dial.ctx, route, false, t->def.remote_host,
                             t->def.remote_port, ip, port,
                             tunnel_peer_route_done, c);
    c->connecting = false;
    if (c->done) {
        free(c);
        return;
    }
    if (c->pump == NULL) {
        c->rreq = rq;
    }
}

static void tunnel_tcp_client(struct tunnel *t, int cfd,
                              const struct sockaddr_storage *ss)
{
    struct tunnel_conn *c = NULL;
    struct tunnel_key key;
    struct hub_req *req;
    char ip[INET6_ADDRSTRLEN], client[64];
    int port = 0;

    if (!tunnel_addr(ss, ip, sizeof(ip), client, sizeof(client), &key, &port)) {
        close(cfd);
        return;
    }
    if (!tunnel_acl_allows(t->def.acl, ip)) {
        close(cfd);
        tunnel_refuse(t, client, true, "not in the tunnel's ACL");
        return;
    }
    tunnel_used(t);
    if (t->nconns >= TUNNEL_PENDING_MAX ||
        (c = calloc(1, sizeof(*c))) == NULL) {
        close(cfd);
        tunnel_refuse(t, client, false,
                      t->def.peer[0] != '\0'
                          ? "too many connections through the peer"
                          : "too many connections waiting for the agent");
        return;
    }
    c->t = t;
    c->cfd = -1;
    snprintf(c->client, sizeof(c->client), "%s", client);
    tunnel_row(t, client, NULL, c->row);
    c->next = t->conns;
    if (t->conns != NULL) {
        t->conns->prev = c;
    }
    t->conns = c;
    t->nconns++;
    if (tunnel_routed(t)) {
        tunnel_peer_connect(t, c, cfd, ip, port);
        return;
    }
    /* The hub may answer (a failure) before hub_connect returns; the
     * callback then leaves freeing c to us. */
    c->connecting = true;
    req = hub_connect_ex(t->ts->hub, t->def.agent_id, HUB_TCP,
                         t->def.remote_host, t->def.remote_port, ip, port, cfd,
                         tunnel_conn_done, tunnel_conn_end, c);
    c->connecting = false;
    if (c->done) {
        free(c);
        return;
    }
    c->req = req;
}

static void tunnel_resume(struct loop *l, void *arg);

static void tunnel_on_tcp(struct loop *l, int fd, int events, void *arg)
{
    struct tunnel *t = arg;
    struct sockaddr_storage ss;
    socklen_t len;
    int i, cfd, e;

    for (i = 0; i < TUNNEL_BURST && t->listening; i++) {
        len = sizeof(ss);
        cfd = accept4(fd, (struct sockaddr *)&ss, &len,
                      SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd >= 0) {
            tunnel_tcp_client(t, cfd, &ss);
            continue;
        }
        e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) {
            break;
        }
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) {
            continue;
        }
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            /* The pending connection stays readable: stop watching the
             * listeners for a moment instead of spinning. */
            log_warn("tunnel %s: cannot accept: %s; pausing for %d ms",
                     t->def.id, strerror(e), TUNNEL_PAUSE_MS);
            for (int k = 0; k < t->nfds; k++) {
                (void)loop_mod_fd(l, t->fds[k], 0);
            }
            t->pause_timer =
                loop_add_timer(l, TUNNEL_PAUSE_MS, tunnel_resume, t);
            break;
        }
        log_warn("tunnel %s: accept: %s", t->def.id, strerror(e));
        break;
    }
}

/* --- UDP flows ----------------------------------------------------------- */

static struct tunnel_flow *tunnel_flow_find(struct tunnel *t,
                                            const struct tunnel_key *k)
{
    struct tunnel_flow *f;

    if (t->buckets == NULL) {
        return NULL;
    }
    for (f = t->buckets[tunnel_key_hash(k)]; f != NULL; f = f->hnext) {
        if (tunnel_key_eq(&f->key, k)) {
            return f;
        }
    }
    return NULL;
}

/* Closes our end of the pair: the hub's stream sees EOF and ends. */
static void tunnel_flow_close_fd(struct tunnel_flow *f)
{
    if (f->fd >= 0) {
        loop_del_fd(f->t->ts->loop, f->fd);
        close(f->fd);
        f->fd = -1;
    }
}

/* Ends and frees a flow; result closes its row if it is still open. */
static void tunnel_flow_end(struct tunnel_flow *f, const char *result)
{
    struct tunnel *t = f->t;
    struct tunnel_flow **pp;

    if (f->req != NULL) {
        hub_connect_cancel(f->req);
        f->req = NULL;
    }
    if (f->rreq != NULL) {
        t->ts->dial.cancel(f->rreq);
        f->rreq = NULL;
    }
    if (f->pair >= 0) {
        close(f->pair);
        f->pair = -1;
    }
    udp_relay_stop(f->relay);
    f->relay = NULL;
    tunnel_flow_close_fd(f);
    tunnel_row_close(t, f->row, f->up, f->down, result);
    for (pp = &t->buckets[tunnel_key_hash(&f->key)]; *pp != NULL;
         pp = &(*pp)->hnext) {
        if (*pp == f) {
            *pp = f->hnext;
            break;
        }
    }
    if (f->prev != NULL) {
        f->prev->next = f->next;
    } else {
        t->flows = f->next;
    }
    if (f->next != NULL) {
        f->next->prev = f->prev;
    }
    t->nflows--;
    free(f);
}

/* The hub's answer for one flow. */
static void tunnel_flow_done(void *arg, bool ok, const char *why)
{
    struct tunnel_flow *f = arg;
    struct tunnel *t = f->t;
    char result[STORE_RESULT_MAX + 1];

    f->req = NULL;
    if (ok) {
        f->st = TF_OPEN;
        f->queued = 0;
        log_info("tunnel %s: udp flow from %s to %s/%s:%d", t->def.id,
                 f->client, t->def.agent_id, t->def.remote_host,
                 t->def.remote_port);
        return;
    }
    /* The hub closed its end; drop this source's datagrams for a while
     * rather than asking the agent again for each one. */
    log_info("tunnel %s: udp flow from %s could not reach %s/%s:%d: %s",
             t->def.id, f->client, t->def.agent_id, t->def.remote_host,
             t->def.remote_port, why != NULL ? why : "?");
    f->st = TF_FAILED;
    f->last_ms = util_mono_ms();
    tunnel_flow_close_fd(f);
    snprintf(result, sizeof(result), "error: %s",
             why != NULL ? why : "the agent could not connect");
    tunnel_row_close(t, f->row, f->up, f->down, result);
}

/* The relay of a flow through another node ended (it closed the pair's
 * other end: the flow's own socket reads its end). */
static void tunnel_flow_relay_end(void *arg, const char *why)
{
    struct tunnel_flow *f = arg;

    f->relay = NULL;
    log_info("tunnel %s: udp flow from %s through another node ended: %s",
             f->t->def.id, f->client, why != NULL ? why : "?");
}

/* The route module's answer for a flow through another node: a stream
 * that carries the flow's datagrams framed. */
static void tunnel_flow_routed(void *arg, int fd, const char *why)
{
    struct tunnel_flow *f = arg;
    int pair = f->pair;

    f->rreq = NULL;
    f->pair = -1;
    if (fd < 0) {
        close(pair);
        tunnel_flow_done(f, false, why);
        return;
    }
    f->relay = udp_relay_start(f->t->ts->loop, pair, fd, tunnel_flow_relay_end,
                               f); /* it closes both on failure */
    tunnel_flow_done(f, f->relay != NULL,
                     f->relay != NULL ? NULL : "out of resources");
}

static struct tunnel_flow *tunnel_flow_new(struct tunnel *t, int sock,
                                           const struct sockaddr_storage *ss,
                                           socklen_t sslen,
                                           const struct tunnel_key *key,
                                           const char *ip, const char *client)
{
    struct tunnel_flow *f;
    struct hub_req *req;
    size_t b;
    int sv[2];

    if (t->nflows >= TUNNEL_FLOWS_MAX) {
        return NULL;
    }
    if (t->buckets == NULL &&
        (t->buckets = calloc(TUNNEL_FLOW_BUCKETS, sizeof(*t->buckets))) ==
            NULL) {
        return NULL;
    }
    if ((f = calloc(1, sizeof(*f))) == NULL) {
        return NULL;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0) {
        log_warn("tunnel %s: socketpair: %s", t->def.id, strerror(errno));
        free(f);
        return NULL;
    }
    if (loop_add_fd(t->ts->loop, sv[0], LOOP_READ, tunnel_flow_on_fd, f) !=
        ERR_OK) {
        close(sv[0]);
        close(sv[1]);
        free(f);
        return NULL;
    }
    f->t = t;
    f->key = *key;
    memcpy(&f->peer, ss, sslen);
    f->peerlen = sslen;
    f->sock = sock;
    f->fd = sv[0];
    f->st = TF_OPENING;
    f->pair = -1;
    f->last_ms = util_mono_ms();
    snprintf(f->client, sizeof(f->client), "%s", client);
    b = tunnel_key_hash(key);
    f->hnext = t->buckets[b];
    t->buckets[b] = f;
    f->next = t->flows;
    if (t->flows != NULL) {
        t->flows->prev = f;
    }
    t->flows = f;
    t->nflows++;
    tunnel_row(t, client, NULL, f->row);
    if (tunnel_routed(t)) {
        char route[STORE_ROUTE_MAX + 1];
        void *rq;

        if (t->ts->dial.connect == NULL) {
            close(sv[1]);
            tunnel_flow_done(f, false, "no route to another node here");
            return f;
        }
        tunnel_route_text(t, route, sizeof(route));
        f->pair = sv[1];
        /* done may run before this returns (NULL then) */
        rq = t->ts->dial.connect(t->ts->dial.ctx, route, true,
                                 t->def.remote_host, t->def.remote_port, ip,
                                 key->port, tunnel_flow_routed, f);
        if (f->st == TF_OPENING) {
            f->rreq = rq;
        }
        return f;
    }
    /* On a failure the hub answers before hub_connect returns: the flow
     * is then TF_FAILED and stays (it is freed by the sweep). */
    req = hub_connect(t->ts->hub, t->def.agent_id, HUB_UDP, t->def.remote_host,
                      t->def.remote_port, ip, key->port, sv[1],
                      tunnel_flow_done, f);
    if (f->st == TF_OPENING) {
        f->req = req;
    }
    return f;
}

/* One datagram from a client of t (arrived on t->fds[sock]). */
static void tunnel_udp_datagram(struct tunnel *t, int sock,
                                const struct sockaddr_storage *ss,
                                socklen_t sslen, const uint8_t *data,
                                size_t len)
{
    struct tunnel_flow *f;
    struct tunnel_key key;
    char ip[INET6_ADDRSTRLEN], client[64];
    int64_t now;
    int port, i;
    ssize_t n;

    if (!tunnel_addr(ss, ip, sizeof(ip), client, sizeof(client), &key, &port)) {
        return;
    }
    now = util_mono_ms();
    if (!tunnel_acl_allows(t->def.acl, ip)) {
        /* One report per source and flow lifetime, not per datagram. */
        for (i = 0; i < TUNNEL_DENIED_CACHE; i++) {
            if (tunnel_key_eq(&t->denied[i], &key) &&
                now - t->denied_ms[i] <
                    (int64_t)t->ts->cfg->tunnel_udp_flow_seconds * 1000) {
                t->denied_ms[i] = now;
                return;
            }
        }
        t->denied[t->denied_next] = key;
        t->denied_ms[t->denied_next] = now;
        t->denied_next = (t->denied_next + 1) % TUNNEL_DENIED_CACHE;
        tunnel_refuse(t, client, true, "not in the tunnel's ACL");
        return;
    }
    /* A zero-length message on a SOCK_SEQPACKET pair reads as its end. */
    if (len == 0) {
        return;
    }
    if ((f = tunnel_flow_find(t, &key)) == NULL) {
        f = tunnel_flow_new(t, sock, ss, sslen, &key, ip, client);
        if (f == NULL) {
            tunnel_refuse(t, client, false,
                          t->nflows >= TUNNEL_FLOWS_MAX
                              ? "too many udp flows on this tunnel"
                              : "out of resources for a new udp flow");
            return;
        }
    }
    tunnel_used(t);
    if (f->st == TF_FAILED || f->fd < 0) {
        return;
    }
    f->last_ms = now;
    if (f->st == TF_OPENING) {
        if (f->queued >= TUNNEL_FLOW_QUEUE) {
            return;
        }
        f->queued++;
    }
    n = send(f->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == (ssize_t)len) {
        f->up += len;
    }
    /* else: the hub is behind (EAGAIN) or the stream just ended (EPIPE,
     * noticed on our end's next read): dropped */
}

static void tunnel_on_udp(struct loop *l, int fd, int events, void *arg)
{
    struct tunnel *t = arg;
    struct sockaddr_storage ss;
    socklen_t len;
    ssize_t n;
    int i, sock;

    for (sock = 0; sock < t->nfds && t->fds[sock] != fd; sock++) {
    }
    if (sock == t->nfds) {
        return;
    }
    for (i = 0; i < TUNNEL_BURST && t->listening; i++) {
        len = sizeof(ss);
        n = recvfrom(fd, t->ts->dgram, TUNNEL_UDP_MAX + 1, MSG_DONTWAIT,
                     (struct sockaddr *)&ss, &len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK &&
                errno != ECONNREFUSED) {
                log_warn("tunnel %s: recvfrom: %s", t->def.id, strerror(errno));
            }
            break;
        }
        if ((size_t)n > TUNNEL_UDP_MAX) {
            continue;
        }
        tunnel_udp_datagram(t, sock, &ss, len, t->ts->dgram, (size_t)n);
    }
}

/* Our end of a flow's pair: datagrams from the target, or the end. */
static void tunnel_flow_on_fd(struct loop *l, int fd, int events, void *arg)
{
    struct tunnel_flow *f = arg;
    struct tunnel *t = f->t;
    struct pollfd pfd;
    ssize_t n;
    int i;

    for (i = 0; i < TUNNEL_BURST; i++) {
        n = recv(fd, t->ts->dgram, TUNNEL_UDP_MAX + 1, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            break; /* the pair failed: end the flow */
        }
        if (n == 0) {
            /* The end, or an empty datagram: only the end also hangs up. */
            pfd.fd = fd;
            pfd.events = POLLRDHUP;
            pfd.revents = 0;
            if (poll(&pfd, 1, 0) != 0 &&
                (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
                break;
            }
        }
        f->last_ms = util_mono_ms();
        if (sendto(t->fds[f->sock], t->ts->dgram, (size_t)n, MSG_DONTWAIT,
                   (const struct sockaddr *)&f->peer, f->peerlen) == n) {
            f->down += (uint64_t)n;
        }
        tunnel_used(t);
    }
    if (i < TUNNEL_BURST) {
        /* the hub ended the stream (the agent closed it) */
        log_info("tunnel %s: udp flow from %s ended by the agent", t->def.id,
                 f->client);
        tunnel_flow_end(f, f->st == TF_OPEN ? "ok"
                                            : "error: the agent ended "
                                              "the stream");
    }
}

/* --- listeners ----------------------------------------------------------- */

/* Closes the listeners, every flow and every pending connection. result
 * goes into the report rows that are still open. */
static void tunnel_close(struct tunnel *t, const char *result)
{
    struct loop *l = t->ts->loop;
    int i;

    while (t->flows != NULL) {
        tunnel_flow_end(t->flows, t->flows->st == TF_OPEN ? "ok" : result);
    }
    free(t->buckets);
    t->buckets = NULL;
    while (t->conns != NULL) {
        tunnel_conn_cancel(t->conns, result);
    }
    for (i = 0; i < t->nfds; i++) {
        loop_del_fd(l, t->fds[i]);
        close(t->fds[i]);
        t->fds[i] = -1;
    }
    if (t->listening) {
        log_info("tunnel %s: port %d/%s closed", t->def.id, t->def.local_port,
                 tunnel_proto(t));
    }
    loop_del_timer(l, t->pause_timer);
    t->pause_timer = 0;
    t->nfds = 0;
    t->listening = false;
    t->retry_ms = 0;
}

static void tunnel_resume(struct loop *l, void *arg)
{
    struct tunnel *t = arg;
    int i;

    t->pause_timer = 0;
    for (i = 0; i < t->nfds; i++) {
        (void)loop_mod_fd(l, t->fds[i], LOOP_READ);
    }
}

/* Opens the listeners of t on every address of [tunnel] listen. */
static void tunnel_listen(struct tunnel *t)
{
    const struct config *cfg = t->ts->cfg;
    struct addrinfo hints, *res = NULL, *ai;
    char service[8], host[INET6_ADDRSTRLEN], why[TUNNEL_STATE_MAX];
    const char *node = cfg->tunnel_listen;
    int fd, one = 1, gai, e;

    if (t->listening) {
        return;
    }
    if (node != NULL && (node[0] == '\0' || strcmp(node, "*") == 0)) {
        node = NULL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = t->def.udp ? SOCK_DGRAM : SOCK_STREAM;
    /* An address, never a name: this runs in the event loop, where a DNS
     * lookup would stall every session (docs/operations.md). */
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
    snprintf(service, sizeof(service), "%d", t->def.local_port);
    why[0] = '\0';
    if ((gai = getaddrinfo(node, service, &hints, &res)) != 0) {
        snprintf(why, sizeof(why), "cannot resolve [tunnel] listen '%s': %s",
                 node != NULL ? node : "*", gai_strerror(gai));
        goto fail;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (t->nfds == TUNNEL_SOCKS_MAX) {
            break;
        }
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), NULL,
                        0, NI_NUMERICHOST) != 0) {
            snprintf(host, sizeof(host), "?");
        }
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            snprintf(why, sizeof(why), "socket: %s", strerror(errno));
            goto fail;
        }
        /* "::" and "0.0.0.0" are separate sockets: keep v6 to v6. */
        if (ai->ai_family == AF_INET6) {
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
        if (!t->def.udp) {
            (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
            (!t->def.udp && listen(fd, TUNNEL_BACKLOG) != 0)) {
            e = errno;
            close(fd);
            snprintf(why, sizeof(why), "cannot listen on %s port %d/%s: %s",
                     host, t->def.local_port, tunnel_proto(t), strerror(e));
            goto fail;
        }
        if (loop_add_fd(t->ts->loop, fd, LOOP_READ,
                        t->def.udp ? tunnel_on_udp : tunnel_on_tcp,
                        t) != ERR_OK) {
            close(fd);
            snprintf(why, sizeof(why), "out of memory");
            goto fail;
        }
        t->fds[t->nfds++] = fd;
    }
    freeaddrinfo(res);
    if (t->nfds == 0) {
        snprintf(why, sizeof(why), "[tunnel] listen '%s' has no address",
                 node != NULL ? node : "*");
        res = NULL;
        goto fail;
    }
    t->listening = true;
    t->retry_ms = 0;
    log_info("tunnel %s: listening on port %d/%s for %s%s/%s:%d", t->def.id,
             t->def.local_port, tunnel_proto(t),
             t->def.peer[0] != '\0' ? "peer:" : "",
             t->def.peer[0] != '\0' ? t->def.peer : t->def.agent_id,
             t->def.remote_host, t->def.remote_port);
    tunnel_set_state(t, "listening");
    return;
fail:
    if (res != NULL) {
        freeaddrinfo(res);
    }
    tunnel_close(t, "error: the tunnel could not listen");
    t->retry_ms = util_mono_ms() + TUNNEL_RETRY_MS;
    if (strcmp(t->state + (strncmp(t->state, "error: ", 7) == 0 ? 7 : 0),
               why) != 0) {
        log_warn("tunnel %s: %s (retrying every %d s)", t->def.id, why,
                 TUNNEL_RETRY_MS / 1000);
    }
    tunnel_set_state(t, "error: %s", why);
}

/* The agent went: everything of t closes until it comes back. */
static void tunnel_offline(struct tunnel *t)
{
    tunnel_close(t, "error: agent disconnected");
    tunnel_set_state(t, "agent offline");
}

/* --- the set of tunnels -------------------------------------------------- */

static void tunnel_free(struct tunnel *t, const char *result)
{
    struct tunnels *ts = t->ts;

    tunnel_close(t, result);
    if (t->prev != NULL) {
        t->prev->next = t->next;
    } else {
        ts->list = t->next;
    }
    if (t->next != NULL) {
        t->next->prev = t->prev;
    }
    free(t);
}

static struct tunnel *tunnel_find(struct tunnels *ts, const char *id)
{
    struct tunnel *t;

    for (t = ts->list; t != NULL; t = t->next) {
        if (strcmp(t->def.id, id) == 0) {
            return t;
        }
    }
    return NULL;
}

/* Closes the UDP flows whose source an ACL change no longer allows. */
static void tunnel_recheck_flows(struct tunnel *t)
{
    struct tunnel_flow *f, *next;
    char ip[INET6_ADDRSTRLEN];

    for (f = t->flows; f != NULL; f = next) {
        next = f->next;
        if (inet_ntop(f->key.family == 4 ? AF_INET : AF_INET6, f->key.addr, ip,
                      sizeof(ip)) == NULL ||
            !tunnel_acl_allows(t->def.acl, ip)) {
            log_info("tunnel %s: udp flow from %s closed: no longer in the "
                     "ACL",
                     t->def.id, f->client);
            tunnel_flow_end(f, f->st == TF_OPEN ? "ok"
                                                : "denied: no longer in "
                                                  "the tunnel's ACL");
        }
    }
}

/* --- reading the tunnels ------------------------------------------------ */

/*
 * The tunnels and, for each agent of theirs, whether another node holds
 * it: read on the tunnels' reader (a connection of its own on
 * PostgreSQL, so a slow or stopped database holds the read, never the
 * loop), applied on the loop (tunnels_apply). One read at a time; a
 * change that comes while one is out asks for one more after it, so a
 * burst of changes is one or two reads.
 */
struct tunnel_read {
    struct store_work job;
    uint64_t gen;        /* ts->asked when it started */
    bool want_elsewhere; /* node routes: whether other nodes hold agents */
    int r;
    struct store_tunnel *list;
    size_t n;
    bool *elsewhere; /* per list entry */
};

static void tunnel_read_free(struct tunnel_read *rd)
{
    store_tunnel_list_free(rd->list, rd->n);
    free(rd->elsewhere);
    free(rd);
}

static void tunnel_read_work(struct store_work *j, struct store *st)
{
    struct tunnel_read *rd = (struct tunnel_read *)j;
    size_t i, k;

    if ((rd->r = store_tunnel_list(st, NULL, &rd->list, &rd->n)) != ERR_OK ||
        rd->n == 0) {
        return;
    }
    if ((rd->elsewhere = calloc(rd->n, sizeof(*rd->elsewhere))) == NULL) {
        rd->r = ERR_NOMEM;
        return;
    }
    for (i = 0; rd->want_elsewhere && i < rd->n; i++) {
        if (rd->list[i].peer[0] != '\0') {
            continue;
        }
        /* once per agent */
        for (k = 0; k < i; k++) {
            if (rd->list[k].peer[0] == '\0' &&
                strcmp(rd->list[k].agent_id, rd->list[i].agent_id) == 0) {
                break;
            }
        }
        if (k < i) {
            rd->elsewhere[i] = rd->elsewhere[k];
        } else if ((rd->r = store_agent_holder(st, rd->list[i].agent_id,
                                               &rd->elsewhere[i], NULL)) !=
                   ERR_OK) {
            return; /* not "nowhere": the read failed (tried again) */
        }
    }
}

/* After a read: each TCP tunnel of an agent not held here listens while
 * another node holds it, and stops when none does. */
static void tunnels_follow_presence(struct tunnels *ts)
{
    struct tunnel *t;

    for (t = ts->list; t != NULL; t = t->next) {
        if (t->deleting || t->def.peer[0] != '\0' ||
            hub_agent_online(ts->hub, t->def.agent_id)) {
            continue;
        }
        if (tunnel_reachable(t)) {
            if (!t->listening && t->retry_ms == 0) {
                tunnel_listen(t);
            }
        } else if (t->listening || t->retry_ms != 0) {
            tunnel_offline(t);
        }
    }
}

static void tunnels_read_again(struct loop *l, void *arg)
{
    struct tunnels *ts = arg;

    (void)l;
    ts->read_retry = 0;
    tunnels_reload(ts);
}

static bool tunnels_gone(const struct tunnels *ts, const char *id)
{
    for (const struct tunnel_gone *g = ts->gone; g != NULL; g = g->next) {
        if (strcmp(g->id, id) == 0) {
            return true;
        }
    }
    return false;
}

/* After a read came back: the next one starts after every delete so
 * far was written, so it cannot list them. */
static void tunnels_gone_clear(struct tunnels *ts)
{
    while (ts->gone != NULL) {
        struct tunnel_gone *g = ts->gone;

        ts->gone = g->next;
        free(g);
    }
}

/* A read's outcome on the loop: new tunnels listen (if they can), deleted
 * ones close, ACL changes apply to new connections and flows, listeners
 * follow where the agents are. */
static void tunnels_apply(struct tunnels *ts, const struct tunnel_read *rd)
{
    struct tunnel *t, *next;
    size_t i;

    if (rd->r != ERR_OK) {
        if (!ts->read_failing) {
            log_error("tunnels: cannot read the tunnels: %s (trying again "
                      "every %d s)",
                      err_str(rd->r), TUNNEL_READ_RETRY_MS / 1000);
        }
        ts->read_failing = true;
        if (ts->read_retry == 0) {
            ts->read_retry = loop_add_timer(ts->loop, TUNNEL_READ_RETRY_MS,
                                            tunnels_read_again, ts);
        }
        return;
    }
    if (ts->read_failing) {
        log_info("tunnels: read again");
        ts->read_failing = false;
    }
    for (t = ts->list; t != NULL; t = t->next) {
        t->seen = false;
    }
    for (i = 0; i < rd->n; i++) {
        const struct store_tunnel *d = &rd->list[i];

        if ((t = tunnel_find(ts, d->id)) != NULL) {
            t->seen = true;
            t->elsewhere = rd->elsewhere != NULL && rd->elsewhere[i];
            /* another node's use keeps it from idling out here too */
            if (d->last_used > t->last_used) {
                t->last_used = d->last_used;
            }
            if (!t->deleting && strcmp(t->def.acl, d->acl) != 0) {
                log_info("tunnel %s: ACL now %s", t->def.id, d->acl);
                memcpy(t->def.acl, d->acl, sizeof(t->def.acl));
                tunnel_recheck_flows(t);
            }
            continue;
        }
        if (tunnels_gone(ts, d->id)) {
            continue; /* listed before its delete was written */
        }
        if ((t = calloc(1, sizeof(*t))) == NULL) {
            log_error("tunnels: out of memory for tunnel %s", d->id);
            continue;
        }
        t->ts = ts;
        t->def = *d;
        t->seen = true;
        t->elsewhere = rd->elsewhere != NULL && rd->elsewhere[i];
        memcpy(t->state, d->state, sizeof(t->state));
        t->last_used =
            d->last_used > d->created_at ? d->last_used : d->created_at;
        t->touched = d->last_used;
        for (int k = 0; k < TUNNEL_SOCKS_MAX; k++) {
            t->fds[k] = -1;
        }
        t->next = ts->list;
        if (ts->list != NULL) {
            ts->list->prev = t;
        }
        ts->list = t;
        if (t->def.peer[0] != '\0' && !tunnel_reachable(t)) {
            tunnel_set_state(t, "error: this server has no peer routes");
            continue;
        }
        if (tunnel_reachable(t)) {
            tunnel_listen(t);
        } else {
            tunnel_set_state(t, "agent offline");
        }
    }
    for (t = ts->list; t != NULL; t = next) {
        next = t->next;
        if (!t->seen) {
            if (!t->deleting) {
                log_info("tunnel %s (port %d/%s) was deleted", t->def.id,
                         t->def.local_port, tunnel_proto(t));
            }
            tunnel_free(t, "error: the tunnel was deleted");
        }
    }
    tunnels_follow_presence(ts);
}

static void tunnel_read_done(void *owner, struct store_work *j);

static void tunnels_read_start(struct tunnels *ts)
{
    struct tunnel_read *rd = calloc(1, sizeof(*rd));

    if (rd == NULL) {
        log_error("tunnels: out of memory to read the tunnels");
        ts->applied = ts->asked; /* nobody waits for what cannot come */
        if (ts->applied_fn != NULL) {
            ts->applied_fn(ts->applied_arg);
        }
        return;
    }
    rd->job.work = tunnel_read_work;
    rd->job.done = tunnel_read_done;
    rd->gen = ts->asked;
    rd->want_elsewhere = ts->dial.connect != NULL;
    ts->reading = true;
    ts->again = false;
    store_worker_run(ts->reader, &rd->job); /* inline on SQLite */
}

static void tunnel_read_done(void *owner, struct store_work *j)
{
    struct tunnel_read *rd = (struct tunnel_read *)j;
    struct tunnels *ts = owner;

    if (ts == NULL) {
        tunnel_read_free(rd); /* dropped or forgotten at stop */
        return;
    }
    ts->reading = false;
    if (!j->ran && rd->r == ERR_OK) {
        rd->r = ERR_STORE; /* no connection to the database */
    }
    tunnels_apply(ts, rd);
    tunnels_gone_clear(ts); /* the next read starts after those deletes */
    ts->applied = rd->gen;
    tunnel_read_free(rd);
    if (ts->applied_fn != NULL) {
        ts->applied_fn(ts->applied_arg);
    }
    if (ts->again) {
        tunnels_read_start(ts);
    }
}

void tunnels_reload(struct tunnels *ts)
{
    if (ts == NULL) {
        return;
    }
    ts->asked++;
    if (ts->reading) {
        ts->again = true; /* after the one on the worker */
        return;
    }
    tunnels_read_start(ts);
}

uint64_t tunnels_asked(const struct tunnels *ts)
{
    return ts != NULL ? ts->asked : 0;
}

uint64_t tunnels_applied(const struct tunnels *ts)
{
    return ts != NULL ? ts->applied : 0;
}

void tunnels_set_applied_fn(struct tunnels *ts, void (*fn)(void *arg),
                            void *arg)
{
    if (ts != NULL) {
        ts->applied_fn = fn;
        ts->applied_arg = arg;
    }
}

bool tunnels_state(const struct tunnels *ts, const char *id, char *out,
                   size_t len)
{
    const struct tunnel *t;

    for (t = ts != NULL ? ts->list : NULL; t != NULL; t = t->next) {
        if (strcmp(t->def.id, id) == 0 && !t->deleting) {
            snprintf(out, len, "%s", t->state);
            return true;
        }
    }
    return false;
}

/* --- presence, changes, the sweep ---------------------------------------- */

static void tunnels_on_presence(void *arg, const char *agent_id, bool online)
{
    struct tunnels *ts = arg;
    struct tunnel *t;
    bool any = false;

    for (t = ts->list; t != NULL; t = t->next) {
        if (strcmp(t->def.agent_id, agent_id) != 0 || t->deleting) {
            continue;
        }
        any = true;
        if (online) {
            /* connections go to the hub from now on; those that went
             * through the node holding it before carry on */
            tunnel_listen(t);
        } else {
            tunnel_offline(t);
        }
    }
    /* the other nodes listen for its tunnels while it is here: told
     * once the hub's write of its row (online or offline) is made, which
     * they read on this notice */
    if (any) {
        hub_publish_after_writes(ts->hub, HUB_CHANGE_PRESENCE);
    }
}

/* After presence notices from other nodes: the tunnels read again (who
 * holds which agent), and their listeners follow. */
static void tunnels_presence_due(struct loop *l, void *arg)
{
    struct tunnels *ts = arg;

    (void)l;
    ts->presence_timer = 0;
    tunnels_reload(ts);
}

static void tunnels_on_change(void *arg, unsigned what)
{
    struct tunnels *ts = arg;

    if (what & (HUB_CHANGE_TUNNELS | HUB_CHANGE_AGENTS)) {
        tunnels_reload(ts);
    }
    if ((what & HUB_CHANGE_PRESENCE) && ts->presence_timer == 0) {
        ts->presence_timer = loop_add_timer(ts->loop, TUNNEL_PRESENCE_MS,
                                            tunnels_presence_due, ts);
    }
}

/* An idle tunnel: closed now, deleted once its delete is written (then
 * freed: tunnel_wwritten). false: the delete was not taken (it is tried
 * again at the next sweep). t may be gone when this returns true. */
static bool tunnel_idle_delete(struct tunnel *t)
{
    struct tunnels *ts = t->ts;
    struct tunnel_witem *w;
    char id[STORE_ID_MAX + 1];
    int r;

    if ((w = tunnel_witem(TW_DELETE, t->def.id)) == NULL) {
        return false;
    }
    memcpy(id, t->def.id, sizeof(id));
    /* not if another node recorded a use later than this node knows */
    w->when = t->last_used;
    t->deleting = true;
    if ((r = tunnel_wput(ts, w)) != ERR_OK) {
        t->deleting = false; /* not written: t is still here */
        log_warn("tunnel %s: cannot delete it after its idle time: %s", id,
                 err_str(r));
        return false;
    }
    if ((t = tunnel_find(ts, id)) != NULL && t->deleting) {
        /* queued: nothing comes through it meanwhile */
        tunnel_close(t, "error: the tunnel was deleted");
    }
    /* (on SQLite it is gone now, or listens again if used since) */
    return true;
}

/* Once a second: idle flows, failed listeners, idle tunnels. */
static void tunnels_sweep(struct loop *l, void *arg)
{
    struct tunnels *ts = arg;
    struct tunnel *t, *next;
    struct tunnel_flow *f, *fnext;
    int64_t now = util_now(), now_ms = util_mono_ms();
    int64_t flow_ms = (int64_t)ts->cfg->tunnel_udp_flow_seconds * 1000;

    ts->sweep = 0;
    for (t = ts->list; t != NULL; t = next) {
        next = t->next;
        if (t->deleting) {
            continue;
        }
        if (t->def.idle_minutes > 0 && t->nconns == 0 &&
            now - t->last_used >= (int64_t)t->def.idle_minutes * 60 &&
            tunnel_idle_delete(t)) {
            continue;
        }
        for (f = t->flows; f != NULL; f = fnext) {
            fnext = f->next;
            if (f->st == TF_FAILED && now_ms - f->last_ms >= TUNNEL_FAILED_MS) {
                tunnel_flow_end(f, NULL);
            } else if (f->st != TF_FAILED && now_ms - f->last_ms >= flow_ms) {
                log_info("tunnel %s: udp flow from %s closed after %d s "
                         "without datagrams",
                         t->def.id, f->client,
                         ts->cfg->tunnel_udp_flow_seconds);
                tunnel_flow_end(f, f->st == TF_OPEN
                                       ? "ok"
                                       : "error: timed out waiting for the "
                                         "agent");
            }
        }
        if (!t->listening && t->retry_ms != 0 && now_ms >= t->retry_ms &&
            tunnel_reachable(t)) {
            tunnel_listen(t);
        }
    }
    ts->sweep = loop_add_timer(l, TUNNEL_SWEEP_MS, tunnels_sweep, ts);
}

int tunnels_start(struct tunnels **out, const struct config *cfg,
                  struct loop *loop, struct store *store, struct hub *hub,
                  const struct tunnel_dial *dial)
{
    struct tunnels *ts;

    *out = NULL;
    if ((ts = calloc(1, sizeof(*ts))) == NULL ||
        (ts->dgram = malloc(TUNNEL_UDP_MAX + 1)) == NULL ||
        (ts->rows = calloc(TUNNEL_ROWS_MAX, sizeof(*ts->rows))) == NULL) {
        if (ts != NULL) {
            free(ts->dgram);
        }
        free(ts);
        return ERR_NOMEM;
    }
    ts->cfg = cfg;
    ts->loop = loop;
    ts->store = store;
    ts->hub = hub;
    ts->later_tail = &ts->later;
    ts->later_max = (size_t)cfg->store_outage_rows;
    if (dial != NULL) {
        ts->dial = *dial;
    }
    /* the report rows' own connection, for a worker (a server's store
     * only); without one they are written on the loop */
    if ((ts->writer = store_worker_new(loop, store, cfg->store_path, 1,
                                       "tunnel: report rows", ts)) == NULL) {
        free(ts->rows);
        free(ts->dgram);
        free(ts);
        return ERR_NOMEM;
    }
    /* the tunnels' reads, on a connection of their own */
    if ((ts->reader = store_worker_new(loop, store, cfg->store_path, 1,
                                       "tunnel: reads", ts)) == NULL) {
        store_worker_stop(ts->writer, 0);
        free(ts->rows);
        free(ts->dgram);
        free(ts);
        return ERR_NOMEM;
    }
    wqueue_init(&ts->wq, &tunnel_wconf, ts, TUNNEL_WRITES_MAX);
    if (wqueue_start(&ts->wq, loop, store, cfg->store_path,
                     "tunnel: state writes", NULL) != ERR_OK) {
        log_warn("tunnels: their states are written on the main loop (out "
                 "of memory for a writer of their own)");
    }
    hub_set_presence_fn(hub, tunnels_on_presence, ts);
    hub_set_change_fn(hub, tunnels_on_change, ts);
    tunnels_reload(ts);
    ts->sweep = loop_add_timer(loop, TUNNEL_SWEEP_MS, tunnels_sweep, ts);
    *out = ts;
    return ERR_OK;
}

void tunnels_stop(struct tunnels *ts)
{
    struct tunnel_batch *b;
    size_t flying = 0;
    bool stuck = false;

    if (ts == NULL) {
        return;
    }
    if (ts->hub != NULL) {
        hub_set_presence_fn(ts->hub, NULL, NULL);
        hub_set_change_fn(ts->hub, NULL, NULL);
    }
    loop_del_timer(ts->loop, ts->sweep);
    loop_del_timer(ts->loop, ts->presence_timer);
    ts->presence_timer = 0;
    loop_del_timer(ts->loop, ts->read_retry);
    ts->read_retry = 0;
    /* a read on the worker is dropped (its done only frees it) */
    store_worker_stop(ts->reader, TUNNEL_STOP_WAIT_MS);
    ts->reader = NULL;
    ts->applied_fn = NULL;
    while (ts->list != NULL) {
        if (ts->list->listening) {
            tunnel_set_state(ts->list, ts->list->def.peer[0] != '\0'
                                           ? "server stopped"
                                           : "agent offline");
        }
        tunnel_free(ts->list, "error: the server stopped");
    }
    /* the states just set, and what waits before them, are written now
     * (on the loop once the queue's worker is done: bounded by the
     * statement deadline), unless the database does not answer */
    {
        bool wstuck = false;
        size_t left =
            wqueue_stop(&ts->wq, ts->store, TUNNEL_STOP_WAIT_MS, &wstuck);

        if (left > 0) {
            log_warn("tunnels: %zu state write(s) not made at stop%s", left,
                     wstuck ? " (the database did not answer)" : "");
        }
        wqueue_drop(&ts->wq);
    }
    /* The batch on a worker usually ends within the store's time limits;
     * its outcome is applied here (it stays allocated until the loop runs
     * its callback, which then only frees it). A database server that is
     * stopped never answers: after TUNNEL_STOP_WAIT_MS the batch is left
     * to its worker (store_worker.h), and nothing after it is written,
     * which would overtake it. */
    b = ts->batch;
    ts->batch = NULL;
    stuck = store_worker_stop(ts->writer, TUNNEL_STOP_WAIT_MS) > 0;
    ts->writer = NULL;
    if (b != NULL && !stuck) {
        tunnel_batch_settle(ts, b);
    } else if (b != NULL) {
        /* a batch of waiting rows is counted among them */
        flying = b->from_later ? 0 : b->n;
    }
    if (ts->rows_timer != 0) {
        loop_del_timer(ts->loop, ts->rows_timer);
        ts->rows_timer = 0;
    }
    if (ts->later_timer != 0) {
        loop_del_timer(ts->loop, ts->later_timer);
        ts->later_timer = 0;
    }
    /* every row queued, the ones just closed included, is written now,
     * on the loop */
    if (!stuck) {
        tunnel_rows_flush(ts);
        if (ts->later != NULL || ts->later_lost > 0) {
            size_t n = 0;

            (void)tunnel_later_write(ts, SIZE_MAX, &n);
        }
    }
    if (stuck || ts->later != NULL || ts->later_lost > 0) {
        /* Kept in memory only (docs/operations.md says why no spool):
         * the rows of connections opened before the outage stay open
         * and the next start closes them as interrupted. */
        log_error("tunnel: %zu tunnel report row(s) could not be written "
                  "(the store does not answer) and are lost",
                  flying + ts->nrows + ts->nlater + ts->later_lost);
    }
    while (ts->later != NULL) {
        tunnel_later_pop(ts);
    }
    tunnels_gone_clear(ts);
    free(ts->later_ops);
    free(ts->rows);
    free(ts->dgram);
    free(ts);
}
