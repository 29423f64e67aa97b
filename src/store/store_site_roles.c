/*
 * Site roles (access.h): who may manage which part of the site tree. API
 * tokens and revoked session tokens are store_tokens.c. Written against
 * store_internal.h and db.h only, like every noun file, so each function
 * here is one transaction with the driver's busy handling and error
 * mapping, on any driver.
 *
 * Every value is a bound parameter and the SQL text is constant. The role
 * query walks parent_id links from the site up to /root with the same
 * recursive CTE as the asset-role query (store_grants.c).
 */
#include "store/access.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

static const char *const site_role_names[] = {
    [SITE_ROLE_NONE] = "none",
    [SITE_ROLE_USER] = "user",
    [SITE_ROLE_SERVICE] = "service",
    [SITE_ROLE_CONFIG] = "configuration-manager",
    [SITE_ROLE_ADMIN] = "administrator",
};

const char *site_role_str(int role)
{
    if (role < SITE_ROLE_NONE || role > SITE_ROLE_ADMIN) {
        return "none";
    }
    return site_role_names[role];
}

int site_role_parse(const char *s)
{
    return store_name_index(site_role_names, SITE_ROLE_USER, SITE_ROLE_ADMIN,
                            s);
}

/* --- site roles -------------------------------------------------------- */

#define SITE_ROLE_SELECT                                                       \
    "SELECT r.id, r.site_id, COALESCE(r.user_id, ''),"                         \
    " COALESCE(r.group_id, ''), r.role, s.path,"                               \
    " COALESCE(u.name, g.name, '')"                                            \
    " FROM site_roles r JOIN sites s ON s.id = r.site_id"                      \
    " LEFT JOIN users u ON u.id = r.user_id"                                   \
    " LEFT JOIN groups g ON g.id = r.group_id"

static int site_role_fill(struct db_stmt *s, void *item)
{
    struct store_site_role *r = item;

    store_col_text(s, 0, r->id, sizeof(r->id));
    store_col_text(s, 1, r->site_id, sizeof(r->site_id));
    store_col_text(s, 2, r->user_id, sizeof(r->user_id));
    store_col_text(s, 3, r->group_id, sizeof(r->group_id));
    r->role = db_col_int(s, 4);
    store_col_text(s, 5, r->site_path, sizeof(r->site_path));
    store_col_text(s, 6, r->grantee_name, sizeof(r->grantee_name));
    return ERR_OK;
}

static int site_role_get_tx(struct store *st, const char *id,
                            struct store_site_role *out)
{
    memset(out, 0, sizeof(*out));
    return store_query_one(st, "site role get",
                           SITE_ROLE_SELECT " WHERE r.id = $1", id,
                           site_role_fill, out);
}

int store_site_role_add(struct store *st, struct store_site_role *sr)
{
    char id[STORE_ID_MAX + 1], site[STORE_ID_MAX + 1];
    struct store_grantee g;
    int r;

    if (sr == NULL || sr->role < SITE_ROLE_USER || sr->role > SITE_ROLE_ADMIN ||
        !store_id_norm(sr->site_id, site) ||
        !store_grantee_norm(&g, sr->user_id, sr->group_id)) {
        return ERR_INVALID;
    }
    util_uuid4(id);
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "site role add",
                  "INSERT INTO site_roles (id, site_id, user_id, group_id,"
                  " role, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                  NULL, "ttttii", id, site, g.user_id, g.group_id,
                  (int64_t)sr->role, (int64_t)util_now());
    if (r == ERR_OK) {
        r = site_role_get_tx(st, id, sr);
    }
    return store_tx_end(st, r);
}

int store_site_role_list(struct store *st, struct store_site_role **list,
                         size_t *n)
{
    void *items = NULL;
    int r;

    r = store_list_query(st, "site role list",
                         SITE_ROLE_SELECT " ORDER BY s.path, r.role DESC, r.id",
                         sizeof(struct store_site_role), site_role_fill, NULL,
                         &items, n, "");
    *list = items;
    return r;
}

int store_site_role_get(struct store *st, const char *id,
                        struct store_site_role *out)
{
    char nid[STORE_ID_MAX + 1];
    int r;

    /* id may point into out */
    if (id == NULL || !store_id_norm(id, nid)) {
        memset(out, 0, sizeof(*out));
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = site_role_get_tx(st, nid, out);
    return store_tx_end(st, r);
}

int store_site_role_delete(struct store *st, const char *id)
{
    return store_delete_id(st, "site role delete",
                           "DELETE FROM site_roles WHERE id = $1", id);
}

static int site_role_mask_row(struct db_stmt *s, void *ctx)
{
    int role = db_col_int(s, 0);

    if (role >= SITE_ROLE_USER && role <= SITE_ROLE_ADMIN) {
        *(unsigned *)ctx |= SITE_ROLE_BIT(role);
    }
    return ERR_OK;
}

int store_site_role_mask(struct store *st, const char *user_id,
                         const char *site_id, unsigned *mask)
{
    char uid[STORE_ID_MAX + 1], sid[STORE_ID_MAX + 1];
    int r;

    *mask = 0;
    if (user_id == NULL || !store_id_norm(user_id, uid) ||
        (site_id != NULL && !store_id_norm(site_id, sid))) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_query(st, "site role mask",
                    "WITH RECURSIVE anc(id, parent_id) AS ("
                    "  SELECT id, parent_id FROM sites"
                    "   WHERE ($1 IS NULL AND path = '/root') OR id = $1"
                    "  UNION ALL"
                    "  SELECT s.id, s.parent_id FROM sites s"
                    "   JOIN anc ON s.id = anc.parent_id)"
                    " SELECT DISTINCT r.role FROM site_roles r"
                    " WHERE r.site_id IN (SELECT id FROM anc)"
                    "   AND (r.user_id = $2"
                    "        OR r.group_id IN (SELECT group_id"
                    "                          FROM group_members"
                    "                          WHERE user_id = $2))",
                    site_role_mask_row, mask, NULL, "tt",
                    site_id != NULL ? sid : NULL, uid);
    return store_tx_end(st, r);
}

int store_site_role_mask_any(struct store *st, const char *user_id,
                             unsigned *mask)
{
    char uid[STORE_ID_MAX + 1];
    int r;

    *mask = 0;
    if (user_id == NULL || !store_id_norm(user_id, uid)) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_query(st, "site role mask",
                    "SELECT DISTINCT r.role FROM site_roles r"
                    " WHERE r.user_id = $1"
                    "    OR r.group_id IN (SELECT group_id FROM group_members"
                    "                      WHERE user_id = $1)",
                    site_role_mask_row, mask, NULL, "t", uid);
    return store_tx_end(st, r);
}
