/*
 * Client groups (client_groups.h).
 */
#include "store/client_groups.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

#define CG_SELECT                                                              \
    "SELECT id, name, description, agents, rules, created_by, created_at"      \
    " FROM client_groups"

static int cg_fill(struct db_stmt *s, void *item)
{
    struct store_client_group *g = item;

    store_col_text(s, 0, g->id, sizeof(g->id));
    store_col_text(s, 1, g->name, sizeof(g->name));
    store_col_text(s, 2, g->description, sizeof(g->description));
    store_col_text(s, 3, g->agents, sizeof(g->agents));
    store_col_text(s, 4, g->rules, sizeof(g->rules));
    store_col_text(s, 5, g->created_by, sizeof(g->created_by));
    g->created_at = db_col_int64(s, 6);
    return ERR_OK;
}

int store_client_group_add(struct store *st, struct store_client_group *g)
{
    int r;

    if (g == NULL || store_check_name(g->name) != ERR_OK ||
        store_check_len(g->description, CGROUP_DESC_MAX) ||
        store_check_len(g->agents, CGROUP_JSON_MAX) ||
        store_check_len(g->rules, CGROUP_JSON_MAX) ||
        store_check_len(g->created_by, STORE_NAME_MAX)) {
        return ERR_INVALID;
    }
    util_uuid4(g->id);
    g->created_at = util_now();
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "client group add",
                  "INSERT INTO client_groups (id, name, description, agents,"
                  " rules, created_by, created_at)"
                  " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                  NULL, "tttttti", g->id, g->name, g->description, g->agents,
                  g->rules, g->created_by, g->created_at);
    return store_tx_end(st, r);
}

int store_client_group_get(struct store *st, const char *ref,
                           struct store_client_group *out)
{
    memset(out, 0, sizeof(*out));
    return store_get_named(st, "client group get", CG_SELECT " WHERE id = $1",
                           CG_SELECT " WHERE name = $1", ref, cg_fill, out);
}

int store_client_group_list(struct store *st, struct store_client_group **list,
                            size_t *n)
{
    void *items = NULL;
    int r;

    *list = NULL;
    *n = 0;
    r = store_list_query(st, "client group list", CG_SELECT " ORDER BY name",
                         sizeof(struct store_client_group), cg_fill, NULL,
                         &items, n, "");
    *list = items;
    return r;
}

int store_client_group_delete(struct store *st, const char *ref)
{
    return store_delete_named(st, "client group delete",
                              "DELETE FROM client_groups WHERE id = $1",
                              "DELETE FROM client_groups WHERE name = $1", ref);
}

int store_client_group_set_agents(struct store *st, const char *id,
                                  const char *agents_json)
{
    char nid[STORE_ID_MAX + 1];
    int r, changes = 0;

    if (id == NULL || !store_id_norm(id, nid) || agents_json == NULL ||
        store_check_len(agents_json, CGROUP_JSON_MAX)) {
        return ERR_INVALID;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "client group agents",
                  "UPDATE client_groups SET agents = $1 WHERE id = $2",
                  &changes, "tt", agents_json, nid);
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
    return store_tx_end(st, r);
}
