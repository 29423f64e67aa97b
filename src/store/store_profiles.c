/*
 * Access profiles (what a session may do: native mode, channel switches,
 * limits) and their assignments to users and groups (store.h).
 */
#include "store/store.h"

#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

/* --- access profiles ------------------------------------------------------ */

#define PROFILE_COLS                                                           \
    "p.id, p.name, p.native, p.shell, p.exec, p.sftp, p.scp,"                  \
    " p.local_forward, p.remote_forward, p.agent_forward, p.x11,"              \
    " p.max_session_minutes, p.idle_timeout_minutes, p.record_input,"          \
    " p.rdp_clipboard_text, p.rdp_clipboard_files, p.rdp_audio, p.rdp_drive,"  \
    " p.rdp_printer, p.rdp"

static int row_profile(struct db_stmt *s, void *item)
{
    struct store_profile *p = item;

    store_col_text(s, 0, p->id, sizeof(p->id));
    store_col_text(s, 1, p->name, sizeof(p->name));
    p->native = db_col_int(s, 2);
    p->shell = db_col_int(s, 3) != 0;
    p->exec = db_col_int(s, 4) != 0;
    p->sftp = db_col_int(s, 5) != 0;
    p->scp = db_col_int(s, 6) != 0;
    p->local_forward = db_col_int(s, 7) != 0;
    p->remote_forward = db_col_int(s, 8) != 0;
    p->agent_forward = db_col_int(s, 9) != 0;
    p->x11 = db_col_int(s, 10) != 0;
    p->max_session_minutes = db_col_int(s, 11);
    p->idle_timeout_minutes = db_col_int(s, 12);
    p->record_input = db_col_int(s, 13) != 0;
    p->rdp_clipboard_text = db_col_int(s, 14) != 0;
    p->rdp_clipboard_files = db_col_int(s, 15) != 0;
    p->rdp_audio = db_col_int(s, 16) != 0;
    p->rdp_drive = db_col_int(s, 17) != 0;
    p->rdp_printer = db_col_int(s, 18) != 0;
    p->rdp = db_col_int(s, 19) != 0;
    return ERR_OK;
}

static int profile_check(const struct store_profile *p)
{
    if (!store_field_ok(p->id, sizeof(p->id)) ||
        !store_field_ok(p->name, sizeof(p->name))) {
        return ERR_TOO_LONG;
    }
    if (p->native < NATIVE_DENY || p->native > NATIVE_RECORD ||
        p->max_session_minutes < 0 || p->idle_timeout_minutes < 0) {
        return ERR_INVALID;
    }
    return store_check_name(p->name);
}

int store_profile_add(struct store *st, struct store_profile *p)
{
    char id[STORE_ID_MAX + 1];
    int r;

    if (p == NULL) {
        return ERR_INVALID;
    }
    if ((r = profile_check(p)) != ERR_OK) {
        return r;
    }
    util_uuid4(id);
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "profile add",
                  "INSERT INTO profiles (id, name, native, shell, exec, sftp,"
                  " scp, local_forward, remote_forward, agent_forward, x11,"
                  " max_session_minutes, idle_timeout_minutes, created_at,"
                  " record_input, rdp_clipboard_text, rdp_clipboard_files,"
                  " rdp_audio, rdp_drive, rdp_printer, rdp)"
                  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
                  "$13, $14, $15, $16, $17, $18, $19, $20, $21)",
                  NULL, "ttiiiiiiiiiiiiiiiiiii", id, p->name,
                  (int64_t)p->native, (int64_t)p->shell, (int64_t)p->exec,
                  (int64_t)p->sftp, (int64_t)p->scp, (int64_t)p->local_forward,
                  (int64_t)p->remote_forward, (int64_t)p->agent_forward,
                  (int64_t)p->x11, (int64_t)p->max_session_minutes,
                  (int64_t)p->idle_timeout_minutes, (int64_t)util_now(),
                  (int64_t)p->record_input, (int64_t)p->rdp_clipboard_text,
                  (int64_t)p->rdp_clipboard_files, (int64_t)p->rdp_audio,
                  (int64_t)p->rdp_drive, (int64_t)p->rdp_printer,
                  (int64_t)p->rdp);
    if ((r = store_tx_end(st, r)) == ERR_OK) {
        memcpy(p->id, id, sizeof(p->id));
    }
    return r;
}

int store_profile_update(struct store *st, const struct store_profile *p)
{
    char id[STORE_ID_MAX + 1];
    int r;

    if (p == NULL) {
        return ERR_INVALID;
    }
    if ((r = profile_check(p)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(p->id, id)) {
        return ERR_NOT_FOUND;
    }
    return store_update_one(
        st, "profile update",
        "UPDATE profiles SET name = $1, native = $2, shell = $3, exec = $4,"
        " sftp = $5, scp = $6, local_forward = $7, remote_forward = $8,"
        " agent_forward = $9, x11 = $10, max_session_minutes = $11,"
        " idle_timeout_minutes = $12, record_input = $13,"
        " rdp_clipboard_text = $14, rdp_clipboard_files = $15, rdp_audio = $16,"
        " rdp_drive = $17, rdp_printer = $18, rdp = $19 WHERE id = $20",
        "tiiiiiiiiiiiiiiiiiit", p->name, (int64_t)p->native, (int64_t)p->shell,
        (int64_t)p->exec, (int64_t)p->sftp, (int64_t)p->scp,
        (int64_t)p->local_forward, (int64_t)p->remote_forward,
        (int64_t)p->agent_forward, (int64_t)p->x11,
        (int64_t)p->max_session_minutes, (int64_t)p->idle_timeout_minutes,
        (int64_t)p->record_input, (int64_t)p->rdp_clipboard_text,
        (int64_t)p->rdp_clipboard_files, (int64_t)p->rdp_audio,
        (int64_t)p->rdp_drive, (int64_t)p->rdp_printer, (int64_t)p->rdp, id);
}

int store_profile_get(struct store *st, const char *name_or_id,
                      struct store_profile *out)
{
    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    return store_get_named(
        st, "profile",
        "SELECT " PROFILE_COLS " FROM profiles p WHERE p.id = $1",
        "SELECT " PROFILE_COLS " FROM profiles p WHERE p.name = $1", name_or_id,
        row_profile, out);
}

int store_profile_list(struct store *st, struct store_profile **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = store_list_query(
        st, "profile list",
        "SELECT " PROFILE_COLS " FROM profiles p ORDER BY p.name",
        sizeof(struct store_profile), row_profile, NULL, &items, n, "");
    *list = items;
    return r;
}

int store_profile_delete(struct store *st, const char *name_or_id)
{
    /* Assignments go by cascade. */
    return store_delete_named(
        st, "profile delete", "DELETE FROM profiles WHERE id = $1",
        "DELETE FROM profiles WHERE name = $1", name_or_id);
}

/* Exactly one of user_id / group_id names the grantee; *col says which
 * column ("user" or "group"), *gid gets its normalized ID. */
static int assignee(const char *user_id, const char *group_id, char *gid,
                    bool *is_user)
{
    bool u = user_id != NULL && user_id[0] != '\0';
    bool g = group_id != NULL && group_id[0] != '\0';

    if (u == g) {
        return ERR_INVALID;
    }
    *is_user = u;
    return store_id_norm(u ? user_id : group_id, gid) ? ERR_OK : ERR_NOT_FOUND;
}

int store_profile_assign(struct store *st, const char *profile_id,
                         const char *user_id, const char *group_id)
{
    char pid[STORE_ID_MAX + 1], gid[STORE_ID_MAX + 1], id[STORE_ID_MAX + 1];
    bool is_user = false;
    int r;

    if ((r = assignee(user_id, group_id, gid, &is_user)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(profile_id, pid)) {
        return ERR_NOT_FOUND;
    }
    util_uuid4(id);
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = store_exists(st, "profile", "SELECT 1 FROM profiles WHERE id = $1",
                          pid)) != ERR_OK) {
        goto out;
    }
    r = is_user ? store_user_exists(st, gid) : store_group_exists(st, gid);
    if (r != ERR_OK) {
        goto out;
    }
    r = store_run(st, "profile assign",
                  "INSERT INTO profile_assignments (id, profile_id, user_id,"
                  " group_id) VALUES ($1, $2, $3, $4)",
                  NULL, "tttt", id, pid, is_user ? gid : NULL,
                  is_user ? NULL : gid);
out:
    return store_tx_end(st, r);
}

int store_profile_unassign(struct store *st, const char *profile_id,
                           const char *user_id, const char *group_id)
{
    char pid[STORE_ID_MAX + 1], gid[STORE_ID_MAX + 1];
    bool is_user = false;
    int r;

    if ((r = assignee(user_id, group_id, gid, &is_user)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(profile_id, pid)) {
        return ERR_NOT_FOUND;
    }
    if (is_user) {
        return store_update_one(st, "profile unassign",
                                "DELETE FROM profile_assignments"
                                " WHERE profile_id = $1 AND user_id = $2",
                                "tt", pid, gid);
    }
    return store_update_one(st, "profile unassign",
                            "DELETE FROM profile_assignments"
                            " WHERE profile_id = $1 AND group_id = $2",
                            "tt", pid, gid);
}

int store_user_profiles(struct store *st, const char *user_id,
                        struct store_profile **list, size_t *n)
{
    struct store_list l = {NULL, 0, 0, sizeof(struct store_profile),
                           row_profile};
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    /* IN (... UNION ...) yields each profile once, however many ways it
     * reaches the user. */
    r = store_child_list(st, store_user_exists, user_id, "user profiles",
                         "SELECT " PROFILE_COLS
                         " FROM profiles p WHERE p.id IN ("
                         " SELECT profile_id FROM profile_assignments"
                         "  WHERE user_id = $1"
                         " UNION"
                         " SELECT pa.profile_id FROM profile_assignments pa"
                         "  JOIN group_members m ON m.group_id = pa.group_id"
                         "  WHERE m.user_id = $1)"
                         " ORDER BY p.name",
                         &l, NULL);
    *list = l.items;
    *n = l.n;
    return r;
}

static int row_assignee(struct db_stmt *s, void *item)
{
    struct store_assignee *a = item;

    a->group = db_col_int(s, 0) != 0;
    store_col_text(s, 1, a->id, sizeof(a->id));
    store_col_text(s, 2, a->name, sizeof(a->name));
    return ERR_OK;
}

static int profile_exists(struct store *st, const char *id)
{
    return store_exists(st, "profile", "SELECT 1 FROM profiles WHERE id = $1",
                        id);
}

int store_profile_assignees(struct store *st, const char *profile_id,
                            struct store_assignee **list, size_t *n)
{
    struct store_list l = {NULL, 0, 0, sizeof(struct store_assignee),
                           row_assignee};
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = store_child_list(st, profile_exists, profile_id, "profile assignees",
                         "SELECT 0, u.id, u.name FROM profile_assignments pa"
                         " JOIN users u ON u.id = pa.user_id"
                         " WHERE pa.profile_id = $1"
                         " UNION ALL"
                         " SELECT 1, g.id, g.name FROM profile_assignments pa"
                         " JOIN groups g ON g.id = pa.group_id"
                         " WHERE pa.profile_id = $1"
                         " ORDER BY 1, 3",
                         &l, NULL);
    *list = l.items;
    *n = l.n;
    return r;
}
