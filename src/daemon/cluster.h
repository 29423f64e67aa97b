/*
 * This server as a node of a cluster on a shared store (issue 18,
 * docs/operations.md "Cluster"): its row in the nodes table
 * (store/nodes.h), the heartbeat that keeps it fresh, the reaper that
 * notices other nodes dead, and the notices other nodes publish
 * (store/notices.h), passed to the hub. On SQLite it is the one node:
 * it registers and heartbeats the same way, and listens to nothing.
 *
 * Ownership: cluster_start() borrows cfg, loop, store and hub (they
 * outlive it); cluster_stop() marks the node stopped and frees it.
 */
#ifndef PORTCULLIS_CLUSTER_H
#define PORTCULLIS_CLUSTER_H

#include "common/config.h"
#include "common/loop.h"
#include "hub/hub.h"
#include "store/store.h"

struct cluster;

/* Gives the store handle its node ID (DATA/node.id, made at the first
 * start). Before anything writes rows on the node's behalf. */
int cluster_identify(const struct config *cfg, struct store *st);
/* Registers the node and starts the heartbeat, the reaper and the
 * listener. */
int cluster_start(struct cluster **out, const struct config *cfg,
                  struct loop *loop, struct store *st, struct hub *hub);
void cluster_stop(struct cluster *c);

#endif
