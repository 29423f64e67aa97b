/*
 * The nodes of a cluster (issue 18): every `portcullis serve` on a shared
 * store registers itself here and refreshes its heartbeat every few
 * seconds; the others read the table to list the cluster and to notice a
 * node that died. Same conventions as store.h.
 *
 * A store handle writes rows on behalf of one node (store_set_node): an
 * agent that comes online, and a report row that opens, carry that node's
 * ID, so a node's restart cleans up only its own rows and a node that
 * notices another one dead closes only that one's.
 *
 * A running job (store/jobs.h) likewise carries the node that runs it.
 *
 * state: "up" (heartbeating), "stopped" (shut down cleanly), "dead"
 * (its heartbeat went stale and another node, reaped_by, cleaned up
 * after it: report rows closed, agents offline, running jobs lost). Times are
 * the nodes' own clocks (NTP is assumed: docs/operations.md).
 */
#ifndef PORTCULLIS_STORE_NODES_H
#define PORTCULLIS_STORE_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define NODE_ID_MAX 32     /* 32 hex digits */
#define NODE_ADDR_MAX 1024 /* "ssh=ADDR:PORT http=ADDR:PORT ..." */
#define NODE_STATE_MAX 15

struct store_node {
    char id[NODE_ID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char addresses[NODE_ADDR_MAX + 1];
    char version[64 + 1];
    int64_t started_at;
    int64_t heartbeat_at;
    char state[NODE_STATE_MAX + 1];
    char reaped_by[NODE_ID_MAX + 1]; /* "" unless dead */
    /* filled by store_node_list */
    int agents;   /* agents online on it */
    int sessions; /* report rows it holds open */
    bool online;  /* "up" with a heartbeat at or after fresh_after */
};

/* Makes st write rows on behalf of node id (32 lower-case hex digits);
 * ERR_INVALID for anything else. "" (the default) is no node. */
int store_set_node(struct store *st, const char *id);
/* The handle's node ID, "" if none. */
const char *store_node_self(const struct store *st);

/* Creates or refreshes n->id: every field of n, state "up", started_at =
 * heartbeat_at = now. */
int store_node_register(struct store *st, const struct store_node *n,
                        int64_t now);
/* heartbeat_at = now, state "up". *was_dead (may be NULL) tells whether
 * another node had declared it dead meanwhile. ERR_NOT_FOUND if the row
 * is gone (register again). */
int store_node_heartbeat(struct store *st, const char *id, int64_t now,
                         bool *was_dead);
/* A clean shutdown: state "stopped", its agents offline. */
int store_node_stop(struct store *st, const char *id, int64_t now);
/* One node (counts not filled); ERR_NOT_FOUND if none. */
int store_node_get(struct store *st, const char *id, struct store_node *out);
/* Every node, by name then ID, with its counts; online as seen at
 * fresh_after (now minus [node] dead_after_seconds). */
int store_node_list(struct store *st, int64_t fresh_after,
                    struct store_node **list, size_t *n);
void store_node_list_free(struct store_node *list, size_t n);

/* What store_node_reap did. */
struct store_node_reaped {
    int nodes;    /* nodes this call declared dead */
    int sessions; /* their report rows it closed */
    int agents;   /* their agents it marked offline */
};
/*
 * Declares dead every node other than self that is "up" with a heartbeat
 * before dead_before: its state becomes "dead" (reaped_by self), its open
 * report rows close with result at now, its agents go offline. Each node
 * is taken by one conditional UPDATE inside the store's write lock, so
 * when several nodes notice at once exactly one of them does the work
 * (the others' UPDATE finds the node no longer "up").
 */
int store_node_reap(struct store *st, const char *self, int64_t dead_before,
                    int64_t now, const char *result,
                    struct store_node_reaped *out);

#endif
