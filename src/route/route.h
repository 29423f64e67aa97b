/*
 * Routes: how the main process gets a byte stream to an asset (SPEC
 * section 5). An asset's route string names one kind from route.c's
 * table, with a name where the kind needs one:
 *
 *   "direct"     TCP from this server: the host name is resolved on the
 *                loop's resolver and connected without blocking, both
 *                within [ssh] connect_timeout_seconds
 *   "agent:ID"   a stream through the connected agent ID (hub/); the
 *                hub and the agent have their own deadlines
 *   "peer:NAME"  through the peer node NAME's CONNECT proxy
 *                (route/peer_link.h): its proxy port is reached directly
 *                or, when the peer has a via, along that route (a
 *                segment behind a segment; loops are refused), then TLS
 *                with its pinned certificate and CONNECT with its token
 *
 * Cluster routes are one more row in that table: a prefix, the syntax of
 * its name and a connect function.
 *
 * The caller (the monitor's CONNECT, sshproxy/monitor.c) neither parses
 * route strings nor knows the hub: it parses an asset's route once with
 * route_parse, then asks route_connect for a connected stream socket.
 */
#ifndef PORTCULLIS_ROUTE_H
#define PORTCULLIS_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"
#include "store/store.h"

struct hub;
struct loop;
struct route_kind;
struct routes;
struct route_req;

/* A parsed route. text is its canonical spelling (for report rows); an
 * empty route string is "direct". */
struct route {
    const struct route_kind *kind;  /* NULL when route_parse refused it */
    char name[STORE_ROUTE_MAX + 1]; /* after the prefix ("" for direct) */
    char text[STORE_ROUTE_MAX + 1];
    /* set by the caller after route_parse (which clears it): a UDP
     * tunnel's flow, as length-prefixed datagrams (hub/udp_relay.h); only
     * an agent another node holds takes it (the node: hop with
     * Portcullis-Kind: udp), other routes fail */
    bool udp;
};

/* Parses an asset's route string. ERR_OK with *out; ERR_INVALID for a
 * route this server cannot use, with one line in why (and out->text the
 * string as given, out->kind NULL). */
int route_parse(const char *text, struct route *out, char *why, size_t whylen);
/* The kind's own word ("direct", "agent"), for logs. */
const char *route_kind_name(const struct route *rt);

/* What the connectors need, shared by every request: the loop, the
 * config ([ssh] connect_timeout_seconds) and the agent hub (NULL: agent
 * routes fail with "agent '...' is not connected"). All three must
 * outlive the routes. */
struct routes *routes_new(struct loop *loop, const struct config *cfg,
                          struct hub *hub);
/* Peer routes ("peer:NAME", store/peers.h) read the peer from st and open
 * its sealed token with v; without them they fail with a clear line. */
struct vault;
void routes_set_store(struct routes *rs, struct store *st,
                      const struct vault *v);
/* An agent:ID route whose agent another node of the cluster holds goes
 * through that node's CONNECT proxy (the node: connector in route.c); fn
 * writes this node's credential for it (auth/jwt.h jwt_node_token) into
 * out. Without it such routes fail with a clear line. */
typedef int (*route_node_token_fn)(void *arg, char *out, size_t outlen);
void routes_set_node_token(struct routes *rs, route_node_token_fn fn,
                           void *arg);
/* Stops the worker the store reads of peer: and node: routes run on
 * (before the store they read goes): reads still out are dropped, and
 * their requests wait for their route_cancel; later ones read on the
 * loop. routes_free does it too. */
void routes_stop_reads(struct routes *rs);
/* Cancels every request still pending (calling no callbacks) and closes
 * every link through a peer; NULL is a no-op. */
void routes_free(struct routes *rs);

/* What a request found, given to its one callback once. A connect:
 * fd >= 0 a connected stream socket, which the callee owns from now on
 * (why NULL); or fd -1 and why, one line such as "Connection refused",
 * "timed out resolving the host name" or "through agent 'a1': refused by
 * the agent's allow-list". A peer check: fd -1, why NULL when the peer's
 * proxy took the credential. Through a peer, status is the proxy's HTTP
 * status (0 if none came) and server its Server header
 * ("portcullis/VER"; "" if none). */
struct route_result {
    int fd;
    int status;
    const char *why;
    const char *server;
    /* an agent: route that went through another node of the cluster: that
     * node's ID (for the report row); NULL otherwise */
    const char *node;
};
typedef void (*route_done_fn)(void *arg, const struct route_result *r);

/* Starts connecting to host:port along rt, for the client at
 * orig_ip:orig_port (an agent logs it). Returns a handle valid until fn
 * is called, or NULL when fn was already called (a failure known at
 * once). */
struct route_req *route_connect(struct routes *rs, const struct route *rt,
                                const char *host, int port, const char *orig_ip,
                                int orig_port, route_done_fn fn, void *arg);

/* `peer check NAME`: reaches the peer's proxy along its via route, then
 * TLS and `OPTIONS *` with its token instead of a CONNECT. fn is called
 * once (perhaps before this returns NULL); the handle cancels like a
 * route_connect's. */
struct route_req *route_peer_check(struct routes *rs, const char *peer,
                                   route_done_fn fn, void *arg);

/* While the handle is valid: stops the request, calling nothing. */
void route_cancel(struct route_req *rq);

#endif
