/*
 * Groups and their members (store.h). Memberships go with the group or
 * the user by cascade.
 */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

/* --- groups --------------------------------------------------------------- */

int store_group_exists(struct store *st, const char *id)
{
    return store_exists(st, "group", "SELECT 1 FROM groups WHERE id = $1", id);
}

static int row_group(struct db_stmt *s, void *item)
{
    struct store_group *g = item;

    store_col_text(s, 0, g->id, sizeof(g->id));
    store_col_text(s, 1, g->name, sizeof(g->name));
    return ERR_OK;
}

int store_group_add(struct store *st, const char *name, struct store_group *out)
{
    struct store_group g;
    int r;

    if ((r = store_check_name(name)) != ERR_OK) {
        return r;
    }
    memset(&g, 0, sizeof(g));
    util_uuid4(g.id);
    snprintf(g.name, sizeof(g.name), "%s", name);
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(
        st, "group add",
        "INSERT INTO groups (id, name, created_at) VALUES ($1, $2, $3)", NULL,
        "tti", g.id, g.name, (int64_t)util_now());
    if ((r = store_tx_end(st, r)) == ERR_OK && out != NULL) {
        *out = g;
    }
    return r;
}

int store_group_get(struct store *st, const char *name_or_id,
                    struct store_group *out)
{
    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    return store_get_named(st, "group",
                           "SELECT id, name FROM groups WHERE id = $1",
                           "SELECT id, name FROM groups WHERE name = $1",
                           name_or_id, row_group, out);
}

int store_group_list(struct store *st, struct store_group **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = store_list_query(
        st, "group list", "SELECT id, name FROM groups ORDER BY name",
        sizeof(struct store_group), row_group, NULL, &items, n, "");
    *list = items;
    return r;
}

int store_group_delete(struct store *st, const char *name_or_id)
{
    return store_delete_named(st, "group delete",
                              "DELETE FROM groups WHERE id = $1",
                              "DELETE FROM groups WHERE name = $1", name_or_id);
}

int store_group_member_add(struct store *st, const char *group_id,
                           const char *user_id)
{
    char gbuf[STORE_ID_MAX + 1], ubuf[STORE_ID_MAX + 1];
    const char *gid = store_idn(group_id, gbuf),
               *uid = store_idn(user_id, ubuf);
    int r;

    if (gid == NULL || uid == NULL) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = store_group_exists(st, gid)) != ERR_OK ||
        (r = store_user_exists(st, uid)) != ERR_OK) {
        goto out;
    }
    r = store_run(
        st, "member add",
        "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)", NULL,
        "tt", gid, uid);
out:
    return store_tx_end(st, r);
}

int store_group_member_remove(struct store *st, const char *group_id,
                              const char *user_id)
{
    char gbuf[STORE_ID_MAX + 1], ubuf[STORE_ID_MAX + 1];
    const char *gid = store_idn(group_id, gbuf),
               *uid = store_idn(user_id, ubuf);

    if (gid == NULL || uid == NULL) {
        return ERR_NOT_FOUND;
    }
    return store_update_one(st, "member remove",
                            "DELETE FROM group_members"
                            " WHERE group_id = $1 AND user_id = $2",
                            "tt", gid, uid);
}

int store_group_members(struct store *st, const char *group_id,
                        struct store_user **list, size_t *n)
{
    struct store_list l = {NULL, 0, 0, sizeof(struct store_user),
                           store_user_row};
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = store_child_list(st, store_group_exists, group_id, "group members",
                         "SELECT " STORE_USER_COLS " FROM users u"
                         " JOIN group_members m ON m.user_id = u.id"
                         " WHERE m.group_id = $1 ORDER BY u.name",
                         &l, store_user_list_release);
    *list = l.items;
    *n = l.n;
    return r;
}

int store_user_groups(struct store *st, const char *user_id,
                      struct store_group **list, size_t *n)
{
    struct store_list l = {NULL, 0, 0, sizeof(struct store_group), row_group};
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = store_child_list(st, store_user_exists, user_id, "user groups",
                         "SELECT g.id, g.name FROM groups g"
                         " JOIN group_members m ON m.group_id = g.id"
                         " WHERE m.user_id = $1 ORDER BY g.name",
                         &l, NULL);
    *list = l.items;
    *n = l.n;
    return r;
}
