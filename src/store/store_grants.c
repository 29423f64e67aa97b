/*
 * Grants of asset roles to users and groups, on an asset or a site, and
 * the question every login asks: the best role a user holds on an asset
 * (store.h). The inheritance through ancestor sites and groups is one
 * recursive query in plain SQL:1999.
 */
#include "store/store.h"

#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

/* --- grants --------------------------------------------------------------- */

static int row_grant(struct db_stmt *s, void *item)
{
    struct store_grant *g = item;

    store_col_text(s, 0, g->id, sizeof(g->id));
    store_col_text(s, 1, g->asset_id, sizeof(g->asset_id));
    store_col_text(s, 2, g->site_id, sizeof(g->site_id));
    store_col_text(s, 3, g->user_id, sizeof(g->user_id));
    store_col_text(s, 4, g->group_id, sizeof(g->group_id));
    store_col_text(s, 5, g->target_name, sizeof(g->target_name));
    store_col_text(s, 6, g->grantee_name, sizeof(g->grantee_name));
    g->role = db_col_int(s, 7);
    return ERR_OK;
}

#define GRANT_SELECT                                                           \
    "SELECT g.id, COALESCE(g.asset_id, ''), COALESCE(g.site_id, ''),"          \
    " COALESCE(g.user_id, ''), COALESCE(g.group_id, ''),"                      \
    " COALESCE(a.name, s.path, ''), COALESCE(u.name, gr.name, ''), g.role"     \
    " FROM grants g"                                                           \
    " LEFT JOIN assets a ON a.id = g.asset_id"                                 \
    " LEFT JOIN sites s ON s.id = g.site_id"                                   \
    " LEFT JOIN users u ON u.id = g.user_id"                                   \
    " LEFT JOIN groups gr ON gr.id = g.group_id"

/* Normalizes an optional ID field in place; false if set but not a UUID. */
static bool id_field(char *f, size_t size)
{
    char id[STORE_ID_MAX + 1];

    if (!store_field_ok(f, size)) {
        return false;
    }
    if (f[0] == '\0') {
        return true;
    }
    if (!store_id_norm(f, id)) {
        return false;
    }
    memcpy(f, id, sizeof(id));
    return true;
}

int store_grant_add(struct store *st, struct store_grant *g)
{
    char id[STORE_ID_MAX + 1];
    size_t rows = 0;
    int r;

    if (g == NULL) {
        return ERR_INVALID;
    }
    if ((g->asset_id[0] == '\0') == (g->site_id[0] == '\0') ||
        (g->user_id[0] == '\0') == (g->group_id[0] == '\0') ||
        g->role < ROLE_VIEWER || g->role > ROLE_OWNER) {
        return ERR_INVALID;
    }
    if (!id_field(g->asset_id, sizeof(g->asset_id)) ||
        !id_field(g->site_id, sizeof(g->site_id)) ||
        !id_field(g->user_id, sizeof(g->user_id)) ||
        !id_field(g->group_id, sizeof(g->group_id))) {
        return ERR_NOT_FOUND;
    }
    util_uuid4(id);
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* Explicit checks rather than foreign-key errors, which SQLite does
     * not attribute to a column. */
    if (g->asset_id[0] != '\0') {
        r = store_exists(st, "grant", "SELECT 1 FROM assets WHERE id = $1",
                         g->asset_id);
    } else {
        r = store_exists(st, "grant", "SELECT 1 FROM sites WHERE id = $1",
                         g->site_id);
    }
    if (r != ERR_OK) {
        goto out;
    }
    r = g->user_id[0] != '\0' ? store_user_exists(st, g->user_id)
                              : store_group_exists(st, g->group_id);
    if (r != ERR_OK) {
        goto out;
    }
    r = store_run(
        st, "grant add",
        "INSERT INTO grants (id, asset_id, site_id, user_id, group_id,"
        " role, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        NULL, "tttttii", id, g->asset_id[0] != '\0' ? g->asset_id : NULL,
        g->site_id[0] != '\0' ? g->site_id : NULL,
        g->user_id[0] != '\0' ? g->user_id : NULL,
        g->group_id[0] != '\0' ? g->group_id : NULL, (int64_t)g->role,
        (int64_t)util_now());
    if (r != ERR_OK) {
        goto out;
    }
    r = store_query(st, "grant add", GRANT_SELECT " WHERE g.id = $1", row_grant,
                    g, &rows, "t", id);
    if (r == ERR_OK && rows != 1) {
        r = ERR_INTERNAL;
    }
out:
    return store_tx_end(st, r);
}

int store_grant_list(struct store *st, struct store_grant **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = store_list_query(st, "grant list", GRANT_SELECT " ORDER BY 6, 7, g.id",
                         sizeof(struct store_grant), row_grant, NULL, &items, n,
                         "");
    *list = items;
    return r;
}

int store_grant_delete(struct store *st, const char *id)
{
    char key[STORE_ID_MAX + 1];

    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    return store_update_one(st, "grant delete",
                            "DELETE FROM grants WHERE id = $1", "t", key);
}

int store_user_asset_role(struct store *st, const char *user_id,
                          const char *asset_id, int *role)
{
    char ubuf[STORE_ID_MAX + 1], abuf[STORE_ID_MAX + 1];
    const char *uid = store_idn(user_id, ubuf),
               *aid = store_idn(asset_id, abuf);
    int64_t best = 0;
    int r;

    if (role == NULL) {
        return ERR_INVALID;
    }
    *role = ROLE_NONE;
    if (uid == NULL || aid == NULL) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    if ((r = store_user_exists(st, uid)) != ERR_OK ||
        (r = store_exists(st, "asset", "SELECT 1 FROM assets WHERE id = $1",
                          aid)) != ERR_OK) {
        goto out;
    }
    /* The asset's site and every ancestor, by parent links (never by path
     * prefix, so /root/ab is not taken for a sub-site of /root/a); then
     * the best grant to the user or one of their groups on any of them or
     * on the asset itself. Plain SQL:1999, as PostgreSQL runs it. */
    r = store_query(st, "asset role",
                    "WITH RECURSIVE anc(id, parent_id) AS ("
                    "  SELECT s.id, s.parent_id FROM sites s"
                    "   JOIN assets a ON a.site_id = s.id WHERE a.id = $1"
                    "  UNION ALL"
                    "  SELECT s.id, s.parent_id FROM sites s"
                    "   JOIN anc ON s.id = anc.parent_id)"
                    " SELECT COALESCE(MAX(g.role), 0) FROM grants g"
                    " WHERE (g.asset_id = $1"
                    "        OR g.site_id IN (SELECT id FROM anc))"
                    "   AND (g.user_id = $2"
                    "        OR g.group_id IN (SELECT group_id"
                    "                          FROM group_members"
                    "                          WHERE user_id = $2))",
                    store_int_row, &best, NULL, "tt", aid, uid);
    if (r == ERR_OK) {
        *role = best >= ROLE_NONE && best <= ROLE_OWNER ? (int)best : ROLE_NONE;
    }
out:
    return store_tx_end(st, r);
}
