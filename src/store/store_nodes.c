/*
 * The nodes of a cluster (nodes.h).
 */
#include "store/nodes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

/* Nodes a single reap looks at; the rest wait for the next round. */
#define NODE_REAP_MAX 64

static bool node_id_ok(const char *id)
{
    size_t i;

    if (id == NULL || strlen(id) != NODE_ID_MAX) {
        return false;
    }
    for (i = 0; i < NODE_ID_MAX; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') ||
              (id[i] >= 'a' && id[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

int store_set_node(struct store *st, const char *id)
{
    if (id == NULL || id[0] == '\0') {
        st->node[0] = '\0';
        return ERR_OK;
    }
    if (!node_id_ok(id)) {
        return ERR_INVALID;
    }
    memcpy(st->node, id, NODE_ID_MAX + 1);
    return ERR_OK;
}

const char *store_node_self(const struct store *st)
{
    return st->node;
}

int store_node_register(struct store *st, const struct store_node *n,
                        int64_t now)
{
    int r;

    if (n == NULL || !node_id_ok(n->id)) {
        return ERR_INVALID;
    }
    if ((r = STORE_FIELD_TEXT(n->name, true)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(n->addresses, false)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(n->version, false)) != ERR_OK) {
        return r;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "node register",
                  "INSERT INTO nodes (id, name, addresses, version, started_at,"
                  " heartbeat_at, state, reaped_by)"
                  " VALUES ($1, $2, $3, $4, $5, $5, 'up', '')"
                  " ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                  " addresses = excluded.addresses, version = excluded.version,"
                  " started_at = excluded.started_at,"
                  " heartbeat_at = excluded.heartbeat_at, state = 'up',"
                  " reaped_by = ''",
                  NULL, "tttti", n->id, n->name, n->addresses, n->version, now);
    return store_tx_end(st, r);
}

static int node_state_row(struct db_stmt *row, void *ctx)
{
    store_col_text(row, 0, ctx, NODE_STATE_MAX + 1);
    return ERR_OK;
}

int store_node_heartbeat(struct store *st, const char *id, int64_t now,
                         bool *was_dead)
{
    char state[NODE_STATE_MAX + 1] = "";
    int r, changes = 0;

    if (was_dead != NULL) {
        *was_dead = false;
    }
    if (!node_id_ok(id)) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_query_one(st, "node state",
                        "SELECT state FROM nodes WHERE id = $1", id,
                        node_state_row, state);
    if (r == ERR_OK) {
        r = store_run(st, "node heartbeat",
                      "UPDATE nodes SET heartbeat_at = $1, state = 'up',"
                      " reaped_by = '' WHERE id = $2",
                      &changes, "it", now, id);
    }
    if ((r = store_tx_end(st, r)) == ERR_OK && was_dead != NULL) {
        *was_dead = strcmp(state, "dead") == 0;
    }
    return r;
}

int store_node_stop(struct store *st, const char *id, int64_t now)
{
    int r;

    if (!node_id_ok(id)) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "node stop",
                  "UPDATE nodes SET state = 'stopped', heartbeat_at = $1"
                  " WHERE id = $2",
                  NULL, "it", now, id);
    if (r == ERR_OK) {
        r = store_run(st, "node stop agents",
                      "UPDATE agents SET online = 0, last_seen = $1, node = ''"
                      " WHERE node = $2",
                      NULL, "it", now, id);
    }
    return store_tx_end(st, r);
}

#define NODE_SELECT                                                            \
    "SELECT n.id, n.name, n.addresses, n.version, n.started_at,"               \
    " n.heartbeat_at, n.state, n.reaped_by,"                                   \
    " (SELECT COUNT(*) FROM agents a WHERE a.node = n.id AND a.online <> 0),"  \
    " (SELECT COUNT(*) FROM sessions s WHERE s.node = n.id"                    \
    " AND s.ended_at IS NULL)"                                                 \
    " FROM nodes n"

static int node_fill(struct db_stmt *s, void *item)
{
    struct store_node *n = item;

    store_col_text(s, 0, n->id, sizeof(n->id));
    store_col_text(s, 1, n->name, sizeof(n->name));
    store_col_text(s, 2, n->addresses, sizeof(n->addresses));
    store_col_text(s, 3, n->version, sizeof(n->version));
    n->started_at = db_col_int64(s, 4);
    n->heartbeat_at = db_col_int64(s, 5);
    store_col_text(s, 6, n->state, sizeof(n->state));
    store_col_text(s, 7, n->reaped_by, sizeof(n->reaped_by));
    n->agents = db_col_int(s, 8);
    n->sessions = db_col_int(s, 9);
    return ERR_OK;
}

int store_node_get(struct store *st, const char *id, struct store_node *out)
{
    memset(out, 0, sizeof(*out));
    if (!node_id_ok(id)) {
        return ERR_NOT_FOUND;
    }
    return store_get_one(st, "node get", NODE_SELECT " WHERE n.id = $1", id,
                         node_fill, out);
}

int store_node_list(struct store *st, int64_t fresh_after,
                    struct store_node **list, size_t *n)
{
    struct store_node *l;
    void *items = NULL;
    size_t i;
    int r;

    r = store_list_query(st, "node list", NODE_SELECT " ORDER BY n.name, n.id",
                         sizeof(struct store_node), node_fill, NULL, &items, n,
                         "");
    l = items;
    for (i = 0; i < *n; i++) {
        l[i].online =
            strcmp(l[i].state, "up") == 0 && l[i].heartbeat_at >= fresh_after;
    }
    *list = items;
    return r;
}

void store_node_list_free(struct store_node *list, size_t n)
{
    (void)n;
    free(list);
}

struct node_ids {
    char id[NODE_REAP_MAX][NODE_ID_MAX + 1];
    size_t n;
};

static int node_id_row(struct db_stmt *row, void *ctx)
{
    struct node_ids *ids = ctx;

    if (ids->n < NODE_REAP_MAX) {
        store_col_text(row, 0, ids->id[ids->n], sizeof(ids->id[0]));
        ids->n++;
    }
    return ERR_OK;
}

int store_node_reap(struct store *st, const char *self, int64_t dead_before,
                    int64_t now, const char *result,
                    struct store_node_reaped *out)
{
    struct node_ids ids;
    int r, changes;
    size_t i;

    memset(out, 0, sizeof(*out));
    memset(&ids, 0, sizeof(ids));
    if (!node_id_ok(self)) {
        return ERR_INVALID;
    }
    if ((r = store_check_text(result, STORE_RESULT_MAX, true)) != ERR_OK) {
        return r;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_query(st, "node stale",
                    "SELECT id FROM nodes WHERE state = 'up'"
                    " AND heartbeat_at < $1 AND id <> $2 ORDER BY id",
                    node_id_row, &ids, NULL, "it", dead_before, self);
    for (i = 0; r == ERR_OK && i < ids.n; i++) {
        /* the condition again: only one node's UPDATE finds it "up" */
        changes = 0;
        r = store_run(st, "node reap",
                      "UPDATE nodes SET state = 'dead', reaped_by = $1"
                      " WHERE id = $2 AND state = 'up' AND heartbeat_at < $3",
                      &changes, "tti", self, ids.id[i], dead_before);
        if (r != ERR_OK || changes == 0) {
            continue;
        }
        out->nodes++;
        changes = 0;
        r = store_run(st, "node reap sessions",
                      "UPDATE sessions SET ended_at = $1, result = $2"
                      " WHERE node = $3 AND ended_at IS NULL",
                      &changes, "itt", now, result, ids.id[i]);
        out->sessions += changes;
        if (r == ERR_OK) {
            changes = 0;
            r = store_run(st, "node reap agents",
                          "UPDATE agents SET online = 0, last_seen = $1,"
                          " node = '' WHERE node = $2 AND online <> 0",
                          &changes, "it", now, ids.id[i]);
            out->agents += changes;
        }
        if (r == ERR_OK) {
            r = store_run(st, "node reap jobs",
                          "UPDATE jobs SET status = 'lost', finished_at = $1,"
                          " why = 'its node stopped answering',"
                          " recoverable = 1"
                          " WHERE node = $2 AND status = 'running'",
                          NULL, "it", now, ids.id[i]);
        }
    }
    if ((r = store_tx_end(st, r)) != ERR_OK) {
        memset(out, 0, sizeof(*out));
    }
    return r;
}
