/*
 * Tunnels: listeners on the server that carry each accepted TCP connection
 * or UDP flow to HOST:PORT on an agent's side (SPEC §6), or each TCP
 * connection to HOST:PORT in a segment a peer node reaches (SPEC §7,
 * through route/route.h's "peer:NAME").
 *
 * Definitions live in the store (store/agents.h); this module turns them
 * into listeners on [tunnel] listen while their agent is online (the hub's
 * presence callback), checks each client's address against the tunnel's
 * ACL (common/cidr.h), opens a hub stream per TCP connection or per
 * UDP source address, closes idle UDP flows after [tunnel]
 * udp_flow_seconds, deletes a tunnel idle for its idle_minutes, and writes
 * each tunnel's state ("listening", "agent offline", "error: ...") back to
 * the store. Every tunnel connection gets a report row (kind "tunnel",
 * route "agent:ID" or "peer:NAME").
 *
 * Ownership: tunnels_start() borrows cfg, loop, store, hub and what dial
 * names (NULL: tunnels through peers stay in "error: ..."); it sets
 * itself as the hub's presence listener. tunnels_stop() closes every
 * listener and flow.
 */
#ifndef PORTCULLIS_TUNNEL_H
#define PORTCULLIS_TUNNEL_H

#include "common/config.h"
#include "common/loop.h"
#include "hub/hub.h"
#include "store/store.h"

struct tunnels;

/*
 * How a tunnel through a peer gets its stream: the route module's
 * route_connect (route/route.h), handed in by the daemon because hub/
 * sits below route/. connect starts a stream to host:port along route
 * ("peer:NAME") and calls done exactly once (fd >= 0 owned by the
 * callee, or -1 and one line why), perhaps before it returns NULL;
 * otherwise it returns a handle that cancel stops without calling done.
 */
typedef void (*tunnel_dial_done_fn)(void *arg, int fd, const char *why);
struct tunnel_dial {
    /* udp: a UDP flow, which comes back as a stream of length-prefixed
     * datagrams (hub/udp_relay.h; route/route.h struct route's udp) */
    void *(*connect)(void *ctx, const char *route, bool udp, const char *host,
                     int port, const char *orig_ip, int orig_port,
                     tunnel_dial_done_fn done, void *arg);
    void (*cancel)(void *handle);
    void *ctx;
};

int tunnels_start(struct tunnels **out, const struct config *cfg,
                  struct loop *loop, struct store *store, struct hub *hub,
                  const struct tunnel_dial *dial);
void tunnels_stop(struct tunnels *t);
/* Asks for the store's tunnels to be read again: new ones listen (if
 * their agent is online), deleted ones close, ACL changes apply to new
 * connections. On PostgreSQL the read runs on a worker and is applied
 * later on the loop (on SQLite before this returns); a read asked for
 * while one runs follows it. */
void tunnels_reload(struct tunnels *t);
/* Reads asked for so far (tunnels_reload, the hub's changes), and the
 * last one applied: a caller that asked sees its change applied once
 * applied reaches what asked was just after. */
uint64_t tunnels_asked(const struct tunnels *t);
uint64_t tunnels_applied(const struct tunnels *t);
/* fn(arg) on the loop after each read is applied (tunnels_applied says
 * which); one listener (the API's answers that wait: POST /tunnels).
 * NULL: none. */
void tunnels_set_applied_fn(struct tunnels *t, void (*fn)(void *arg),
                            void *arg);
/* The state this node holds for tunnel id (as written, or being written,
 * to the store) into out; false when it has no such tunnel. */
bool tunnels_state(const struct tunnels *t, const char *id, char *out,
                   size_t len);

#endif
