/*
 * Tunnels (agents.h): definitions of ports on an agent's side that the
 * server listens for while the agent is online, and the listener state the
 * server writes back. A tunnel ID is a UUID made here; a tunnel goes with
 * its agent by cascade, and one whose agent is missing is ERR_NOT_FOUND
 * (the foreign key). A tunnel through a peer has no agent (agent_id NULL);
 * deleting the peer is refused while tunnels use it (store_peer_delete).
 */
#include "store/agents.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

/* --- tunnels ------------------------------------------------------------- */

#define TUNNEL_SELECT                                                          \
    "SELECT id, agent_id, protocol, remote_host, remote_port, local_port,"     \
    " acl, idle_minutes, created_by, created_at, state, last_used, peer"       \
    " FROM tunnels"

static int tunnel_fill(struct db_stmt *s, void *item)
{
    struct store_tunnel *t = item;
    char proto[8];

    store_col_text(s, 0, t->id, sizeof(t->id));
    store_col_text(s, 1, t->agent_id, sizeof(t->agent_id));
    store_col_text(s, 2, proto, sizeof(proto));
    t->udp = strcmp(proto, "udp") == 0;
    store_col_text(s, 3, t->remote_host, sizeof(t->remote_host));
    t->remote_port = db_col_int(s, 4);
    t->local_port = db_col_int(s, 5);
    store_col_text(s, 6, t->acl, sizeof(t->acl));
    t->idle_minutes = db_col_int(s, 7);
    store_col_text(s, 8, t->created_by, sizeof(t->created_by));
    t->created_at = db_col_int64(s, 9);
    store_col_text(s, 10, t->state, sizeof(t->state));
    t->last_used = db_col_int64(s, 11);
    store_col_text(s, 12, t->peer, sizeof(t->peer));
    return ERR_OK;
}

int store_tunnel_add(struct store *st, struct store_tunnel *t)
{
    int r;

    if (t == NULL) {
        return ERR_INVALID;
    }
    if (strnlen(t->agent_id, sizeof(t->agent_id)) == sizeof(t->agent_id) ||
        strnlen(t->peer, sizeof(t->peer)) == sizeof(t->peer)) {
        return ERR_TOO_LONG;
    }
    /* an agent's or a peer's, never both; a peer carries TCP only */
    if ((t->peer[0] == '\0') == (t->agent_id[0] == '\0') ||
        (t->peer[0] != '\0' && t->udp)) {
        return ERR_INVALID;
    }
    if ((t->agent_id[0] != '\0' && !store_agent_id_valid(t->agent_id)) ||
        t->remote_port < 1 || t->remote_port > 65535 || t->local_port < 1 ||
        t->local_port > 65535 || t->idle_minutes < 0 || t->created_at <= 0) {
        return ERR_INVALID;
    }
    if ((r = STORE_FIELD_TEXT(t->remote_host, true)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(t->acl, true)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(t->created_by, false)) != ERR_OK) {
        return r;
    }
    util_uuid4(t->id);
    t->state[0] = '\0';
    t->last_used = 0;
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* A missing agent fails the foreign key: ERR_NOT_FOUND. A local port
     * taken by a tunnel of the same protocol fails the unique index:
     * ERR_EXISTS. */
    r = store_run(
        st, "tunnel add",
        "INSERT INTO tunnels (id, agent_id, protocol, remote_host,"
        " remote_port, local_port, acl, idle_minutes, created_by, created_at,"
        " peer)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        NULL, "ttttiititit", t->id, t->agent_id[0] != '\0' ? t->agent_id : NULL,
        t->udp ? "udp" : "tcp", t->remote_host, (int64_t)t->remote_port,
        (int64_t)t->local_port, t->acl, (int64_t)t->idle_minutes, t->created_by,
        t->created_at, t->peer);
    r = store_tx_end(st, r);
    if (r != ERR_OK) {
        t->id[0] = '\0';
    }
    return r;
}

int store_tunnel_get(struct store *st, const char *id, struct store_tunnel *out)
{
    char nid[STORE_ID_MAX + 1];

    /* id may point into out */
    if (id == NULL || !store_id_norm(id, nid)) {
        memset(out, 0, sizeof(*out));
        return ERR_NOT_FOUND;
    }
    memset(out, 0, sizeof(*out));
    return store_get_one(st, "tunnel get", TUNNEL_SELECT " WHERE id = $1", nid,
                         tunnel_fill, out);
}

int store_tunnel_list(struct store *st, const char *agent_id,
                      struct store_tunnel **list, size_t *n)
{
    void *items = NULL;
    int r;

    *list = NULL;
    *n = 0;
    if (agent_id != NULL && !store_agent_id_valid(agent_id)) {
        return ERR_OK; /* no such agent: no tunnels */
    }
    r = store_list_query(st, "tunnel list",
                         TUNNEL_SELECT " WHERE $1 IS NULL OR agent_id = $1"
                                       " ORDER BY local_port, protocol, id",
                         sizeof(struct store_tunnel), tunnel_fill, NULL, &items,
                         n, "t", agent_id);
    *list = items;
    return r;
}

void store_tunnel_list_free(struct store_tunnel *list, size_t n)
{
    (void)n;
    free(list);
}

int store_tunnel_set_acl(struct store *st, const char *id, const char *acl)
{
    char nid[STORE_ID_MAX + 1];
    int r;

    if ((r = store_check_text(acl, TUNNEL_ACL_MAX, true)) != ERR_OK) {
        return r;
    }
    if (id == NULL || !store_id_norm(id, nid)) {
        return ERR_NOT_FOUND;
    }
    return store_update_one(st, "tunnel acl",
                            "UPDATE tunnels SET acl = $1 WHERE id = $2", "tt",
                            acl, nid);
}

int store_tunnel_set_state(struct store *st, const char *id, const char *state)
{
    char nid[STORE_ID_MAX + 1];
    int r;

    if ((r = store_check_text(state, TUNNEL_STATE_MAX, false)) != ERR_OK) {
        return r;
    }
    if (id == NULL || !store_id_norm(id, nid)) {
        return ERR_NOT_FOUND;
    }
    return store_update_one(st, "tunnel state",
                            "UPDATE tunnels SET state = $1 WHERE id = $2", "tt",
                            state != NULL ? state : "", nid);
}

int store_tunnel_touch(struct store *st, const char *id, int64_t when)
{
    char nid[STORE_ID_MAX + 1];
    int r;

    if (id == NULL || !store_id_norm(id, nid)) {
        return ERR_NOT_FOUND;
    }
    r = store_update_one(st, "tunnel touch",
                         "UPDATE tunnels SET last_used = $1 WHERE id = $2"
                         " AND (last_used IS NULL OR last_used < $1)",
                         "it", when, nid);
    if (r == ERR_NOT_FOUND) {
        /* none changed: no such tunnel, or a later use is there */
        struct store_tunnel *t = malloc(sizeof(*t));

        if (t == NULL) {
            return ERR_NOMEM;
        }
        r = store_tunnel_get(st, nid, t);
        free(t);
    }
    return r;
}

int store_tunnel_delete(struct store *st, const char *id)
{
    return store_delete_id(st, "tunnel delete",
                           "DELETE FROM tunnels WHERE id = $1", id);
}

int store_tunnel_delete_idle(struct store *st, const char *id, int64_t known,
                             int64_t *last)
{
    char nid[STORE_ID_MAX + 1];
    struct store_tunnel *t = NULL;
    int r, n = 0;

    if (id == NULL || !store_id_norm(id, nid)) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "tunnel delete idle",
                  "DELETE FROM tunnels WHERE id = $1 AND created_at <= $2 AND"
                  " (last_used IS NULL OR last_used <= $2)",
                  &n, "ti", nid, known);
    if (r == ERR_OK && n == 0) {
        /* gone, or used since (another node's use) */
        if ((t = calloc(1, sizeof(*t))) == NULL) {
            r = ERR_NOMEM;
        } else if ((r = store_query_one(st, "tunnel get",
                                        TUNNEL_SELECT " WHERE id = $1", nid,
                                        tunnel_fill, t)) == ERR_OK) {
            if (last != NULL) {
                *last =
                    t->last_used > t->created_at ? t->last_used : t->created_at;
            }
            r = ERR_DENIED;
        }
        free(t);
    }
    /* ERR_DENIED and ERR_NOT_FOUND changed nothing: commit or not alike */
    return store_tx_end(st, r);
}
