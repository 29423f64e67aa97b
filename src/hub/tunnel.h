/*
 * Tunnels: listeners on the server that carry each accepted TCP connection
 * or UDP flow to HOST:PORT on an agent's side (SPEC §6).
 *
 * Definitions live in the store (store/agents.h); this module turns them
 * into listeners on [tunnel] listen while their agent is online (the hub's
 * presence callback), checks each client's address against the tunnel's
 * ACL (common/cidr.h), opens a hub stream per TCP connection or per
 * UDP source address, closes idle UDP flows after [tunnel]
 * udp_flow_seconds, deletes a tunnel idle for its idle_minutes, and writes
 * each tunnel's state ("listening", "agent offline", "error: ...") back to
 * the store. Every tunnel connection gets a report row (kind "tunnel",
 * route "agent:ID").
 *
 * Ownership: tunnels_start() borrows cfg, loop, store and hub; it sets
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

int tunnels_start(struct tunnels **out, const struct config *cfg,
                  struct loop *loop, struct store *store, struct hub *hub);
void tunnels_stop(struct tunnels *t);
/* Re-reads the store's tunnels: new ones listen (if their agent is
 * online), deleted ones close, ACL changes apply to new connections. */
void tunnels_reload(struct tunnels *t);

#endif
