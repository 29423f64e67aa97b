/*
 * Job roles (client_groups.h): who may run jobs on which client group's
 * agents. Same conventions as store_site_roles.c: one transaction per
 * function, every value a bound parameter.
 */
#include "store/client_groups.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

static const char *const job_role_names[] = {
    [0] = "none",
    [JOB_ROLE_RUNNER] = "job-runner",
    [JOB_ROLE_PUSHER] = "job-pusher",
    [JOB_ROLE_SCHEDULER] = "job-scheduler",
};

const char *job_role_str(int role)
{
    if (role < JOB_ROLE_RUNNER || role > JOB_ROLE_SCHEDULER) {
        return "none";
    }
    return job_role_names[role];
}

int job_role_parse(const char *s)
{
    return store_name_index(job_role_names, JOB_ROLE_RUNNER, JOB_ROLE_SCHEDULER,
                            s);
}

int store_job_role_add(struct store *st, struct store_job_role *jr)
{
    char cg[STORE_ID_MAX + 1];
    struct store_grantee g;
    int r;

    if (jr == NULL || jr->role < JOB_ROLE_RUNNER ||
        jr->role > JOB_ROLE_SCHEDULER ||
        !store_id_norm(jr->client_group_id, cg) ||
        !store_grantee_norm(&g, jr->user_id, jr->group_id)) {
        return ERR_INVALID;
    }
    util_uuid4(jr->id);
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "job role add",
                  "INSERT INTO job_roles (id, client_group_id, user_id,"
                  " group_id, role, created_at)"
                  " VALUES ($1, $2, $3, $4, $5, $6)",
                  NULL, "ttttii", jr->id, cg, g.user_id, g.group_id,
                  (int64_t)jr->role, (int64_t)util_now());
    return store_tx_end(st, r);
}

int store_job_role_delete(struct store *st, const char *id)
{
    return store_delete_id(st, "job role delete",
                           "DELETE FROM job_roles WHERE id = $1", id);
}

static int job_role_row_fill(struct db_stmt *s, void *item)
{
    struct store_job_role_row *w = item;

    store_col_text(s, 0, w->r.id, sizeof(w->r.id));
    store_col_text(s, 1, w->r.client_group_id, sizeof(w->r.client_group_id));
    store_col_text(s, 2, w->r.user_id, sizeof(w->r.user_id));
    store_col_text(s, 3, w->r.group_id, sizeof(w->r.group_id));
    w->r.role = db_col_int(s, 4);
    store_col_text(s, 5, w->grantee, sizeof(w->grantee));
    store_col_text(s, 6, w->client_group, sizeof(w->client_group));
    return ERR_OK;
}

int store_job_role_list(struct store *st, struct store_job_role_row **list,
                        size_t *n)
{
    void *items = NULL;
    int r;

    r = store_list_query(
        st, "job role list",
        "SELECT r.id, r.client_group_id, COALESCE(r.user_id, ''),"
        " COALESCE(r.group_id, ''), r.role, COALESCE(u.name, g.name, ''),"
        " c.name FROM job_roles r JOIN client_groups c"
        " ON c.id = r.client_group_id"
        " LEFT JOIN users u ON u.id = r.user_id"
        " LEFT JOIN groups g ON g.id = r.group_id"
        " ORDER BY c.name, r.role, r.id",
        sizeof(struct store_job_role_row), job_role_row_fill, NULL, &items, n,
        "");
    *list = items;
    return r;
}

static int job_role_group_fill(struct db_stmt *s, void *item)
{
    store_col_text(s, 0, item, STORE_ID_MAX + 1);
    return ERR_OK;
}

int store_job_role_groups(struct store *st, const char *user_id, int role,
                          char (**ids)[STORE_ID_MAX + 1], size_t *n)
{
    char uid[STORE_ID_MAX + 1];
    void *items = NULL;
    int r;

    *ids = NULL;
    *n = 0;
    if (user_id == NULL || !store_id_norm(user_id, uid)) {
        return ERR_OK; /* an unknown user holds nothing */
    }
    r = store_list_query(st, "job role groups",
                         "SELECT DISTINCT r.client_group_id FROM job_roles r"
                         " WHERE r.role = $1"
                         "   AND (r.user_id = $2"
                         "        OR r.group_id IN (SELECT group_id"
                         "                          FROM group_members"
                         "                          WHERE user_id = $2))",
                         STORE_ID_MAX + 1, job_role_group_fill, NULL, &items, n,
                         "it", (int64_t)role, uid);
    *ids = items;
    return r;
}
