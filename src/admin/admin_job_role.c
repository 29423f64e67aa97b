/*
 * Job roles (admin_job_role.h).
 */
#include "admin/admin_job_role.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "store/store.h"

static int jr_store_fail(struct admin_err *e, int r, const char *what,
                         const char *name)
{
    if (r == ERR_NOT_FOUND) {
        return admin_fail(e, r, "%s '%.64s' not found", what, name);
    }
    return admin_fail(e, r, "%s '%.64s': %s", what, name, err_str(r));
}

int admin_job_role_add(const struct admin_ctx *c,
                       const struct admin_job_role_req *q,
                       struct store_job_role_row *out, struct admin_err *e)
{
    struct store_client_group cg;
    struct store_user u;
    struct store_group g;
    char target[STORE_NAME_MAX + 16], detail[STORE_NAME_MAX + 64];
    int r = ERR_OK;

    memset(out, 0, sizeof(*out));
    if ((out->r.role = job_role_parse(q->role)) < 0) {
        return admin_fail(e, ERR_INVALID,
                          "role must be job-runner, job-pusher or "
                          "job-scheduler");
    }
    if ((q->user != NULL) == (q->group != NULL)) {
        return admin_fail(e, ERR_INVALID, "give either a user or a group");
    }
    if (q->client_group == NULL ||
        (r = store_client_group_get(c->st, q->client_group, &cg)) != ERR_OK) {
        r = q->client_group == NULL ? ERR_NOT_FOUND : r;
        return admin_fail(e, r,
                          r == ERR_NOT_FOUND ? "client group '%s' not found"
                                             : "cannot read client group '%s'",
                          q->client_group != NULL ? q->client_group : "");
    }
    if (q->user != NULL) {
        if ((r = store_user_get(c->st, q->user, &u)) != ERR_OK) {
            return jr_store_fail(e, r, "user", q->user);
        }
        memcpy(out->r.user_id, u.id, sizeof(u.id));
        snprintf(out->grantee, sizeof(out->grantee), "%s", u.name);
    } else {
        if ((r = store_group_get(c->st, q->group, &g)) != ERR_OK) {
            return jr_store_fail(e, r, "group", q->group);
        }
        memcpy(out->r.group_id, g.id, sizeof(g.id));
        snprintf(out->grantee, sizeof(out->grantee), "%s", g.name);
    }
    memcpy(out->r.client_group_id, cg.id, sizeof(cg.id));
    snprintf(out->client_group, sizeof(out->client_group), "%s", cg.name);
    if ((r = store_job_role_add(c->st, &out->r)) != ERR_OK) {
        if (r == ERR_EXISTS) {
            return admin_fail(e, r,
                              "%s '%s' already has the role %s on client "
                              "group %s",
                              q->user != NULL ? "user" : "group", out->grantee,
                              job_role_str(out->r.role), cg.name);
        }
        return jr_store_fail(e, r, "job role", q->role);
    }
    snprintf(target, sizeof(target), "client-group:%s", cg.name);
    snprintf(detail, sizeof(detail), "%s=%s role=%s id=%s",
             q->user != NULL ? "user" : "group", out->grantee,
             job_role_str(out->r.role), out->r.id);
    return admin_audit(c, "role.grant", target, detail, e);
}

int admin_job_role_delete(const struct admin_ctx *c, const char *id,
                          struct admin_err *e)
{
    struct store_job_role_row *list = NULL, w;
    char target[STORE_NAME_MAX + 16], detail[STORE_NAME_MAX + 64];
    size_t n = 0, i;
    int r;

    if ((r = store_job_role_list(c->st, &list, &n)) != ERR_OK) {
        return jr_store_fail(e, r, "job role", id);
    }
    for (i = 0; i < n && strcmp(list[i].r.id, id != NULL ? id : "") != 0; i++) {
    }
    if (i == n) {
        free(list);
        return admin_fail(e, ERR_NOT_FOUND, "job role '%s' not found",
                          id != NULL ? id : "");
    }
    w = list[i];
    free(list);
    if ((r = store_job_role_delete(c->st, w.r.id)) != ERR_OK) {
        return jr_store_fail(e, r, "job role", id);
    }
    snprintf(target, sizeof(target), "client-group:%s", w.client_group);
    snprintf(detail, sizeof(detail), "%s=%s role=%s id=%s",
             w.r.user_id[0] != '\0' ? "user" : "group", w.grantee,
             job_role_str(w.r.role), w.r.id);
    return admin_audit(c, "role.revoke", target, detail, e);
}

json_t *admin_job_role_json(const struct store_job_role_row *w)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", w->r.id, "role",
                     job_role_str(w->r.role), "grantee_type",
                     w->r.user_id[0] != '\0' ? "user" : "group", "grantee",
                     w->grantee, "client_group", w->client_group);
}
