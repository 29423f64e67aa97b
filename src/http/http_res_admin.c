/*
 * Route handlers for the configuration: users (with TOTP enrolment and
 * public keys), groups and members, sites, site roles, assets (with their
 * vaulted logins), asset grants and access profiles.
 *
 * They are adapters over the admin layer (src/admin/admin.h), which the
 * CLI shares: it holds the rules (validation, defaults, sealing, the JSON
 * form of each noun), so both doors accept and refuse the same things
 * with the same words. Passwords reach the store hashed, TOTP seeds and
 * asset logins sealed, and no response ever holds a hash, a sealed blob
 * or a vaulted secret. Permission checks are not made here:
 * http_dispatch() has made them from the route table.
 */
#include "http/http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "admin/admin.h"
#include "common/err.h"
#include "common/util.h"

static void http_target(struct http_req *req, const char *what)
{
    snprintf(req->audit_target, sizeof(req->audit_target), "%.255s", what);
}

void http_admin_ctx(struct http_req *req, struct admin_ctx *c)
{
    memset(c, 0, sizeof(*c));
    c->st = req->store;
    c->cfg = req->h->cfg;
    /* the hub is the loop's: on a worker thread (http_offloop.c) the
     * route's loop part tells it once the work is back (its then) */
    c->hub = req->on_worker ? NULL : req->h->hub;
    c->vault = req->h->vault;
    c->actor = req->auth.ok ? req->auth.user.name : "-";
    c->source = req->client;
    c->user_id = req->auth.ok ? req->auth.user.id : NULL;
    /* routes open to every login (jobs) limit a non-administrator to
     * their job roles (admin_job.h) */
    if (req->auth.ok &&
        (req->auth.root_roles & SITE_ROLE_BIT(SITE_ROLE_ADMIN)) == 0) {
        c->job_user = req->auth.user.id;
    }
}

int http_admin_error(struct http_req *req, const struct admin_err *e)
{
    switch (e->code) {
    case ERR_INVALID:
    case ERR_TOO_LONG:
        return http_error(req, 400, "invalid", "Invalid value", "%s", e->msg);
    case ERR_NOT_FOUND:
        return http_error(req, 404, "not_found", "Not found", "%s", e->msg);
    case ERR_EXISTS:
        return http_error(req, 409, "conflict", "Conflict", "%s", e->msg);
    case ERR_DENIED:
        return http_error(req, 403, "forbidden", "Forbidden", "%s", e->msg);
    default:
        return http_error(req, 500, "internal", "Internal error", "%s", e->msg);
    }
}

/* --- users --------------------------------------------------------------- */

int http_h_users_list(struct http_req *req)
{
    struct store_user *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_user_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "user", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, admin_user_json(&list[i]));
    }
    store_user_list_free(list, n);
    return http_list(req, arr);
}

int http_h_users_add(struct http_req *req)
{
    const char *name = http_body_str(req->body, "name");
    struct admin_ctx ac;
    struct admin_err e;
    struct store_user u;

    http_admin_ctx(req, &ac);
    if (admin_user_add(&ac, name, http_body_str(req->body, "password"),
                       http_body_bool(req->body, "disabled", false), &u,
                       &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 201, admin_user_json(&u), NULL);
}

int http_h_users_get(struct http_req *req)
{
    struct store_user u;
    json_t *j;
    int r = store_user_get(req->store, req->params[0], &u);

    if (r == ERR_OK) {
        r = admin_user_detail_json(req->store, &u, &j);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    return http_ok(req, 200, j, NULL);
}

int http_h_users_patch(struct http_req *req)
{
    char id[STORE_ID_MAX + 1];
    struct admin_ctx ac;
    struct admin_err e;
    struct store_user u;
    int r = store_user_get(req->store, req->params[0], &u);

    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    http_admin_ctx(req, &ac);
    if (admin_user_update(&ac, &u, http_body_str(req->body, "password"),
                          http_body_has(req->body, "disabled")
                              ? http_body_bool(req->body, "disabled", false)
                              : -1,
                          "user.update", &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    memcpy(id, u.id, sizeof(id)); /* the getter clears its output first */
    if ((r = store_user_get(req->store, id, &u)) != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    return http_ok(req, 200, admin_user_json(&u), NULL);
}

int http_h_users_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_user u;
    int r = store_user_get(req->store, req->params[0], &u);

    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    http_admin_ctx(req, &ac);
    if (admin_user_delete(&ac, &u, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

int http_h_users_totp_enable(struct http_req *req)
{
    char b32[64] = "", uri[1024] = "";
    struct admin_ctx ac;
    struct admin_err e;
    struct store_user u;
    int r = store_user_get(req->store, req->params[0], &u);

    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    http_admin_ctx(req, &ac);
    if (admin_user_totp_enable(&ac, &u, b32, sizeof(b32), uri, sizeof(uri),
                               &e) == ERR_OK) {
        http_ok(req, 200,
                json_pack("{s:s, s:s, s:s}", "user", u.name, "secret", b32,
                          "uri", uri),
                NULL);
    } else {
        http_admin_error(req, &e);
    }
    sodium_memzero(b32, sizeof(b32));
    sodium_memzero(uri, sizeof(uri));
    return 0;
}

int http_h_users_totp_disable(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_user u;
    int r = store_user_get(req->store, req->params[0], &u);

    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    http_admin_ctx(req, &ac);
    if (admin_user_totp_disable(&ac, &u, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

int http_h_users_keys_list(struct http_req *req)
{
    struct store_user_key *list = NULL;
    struct store_user u;
    size_t n = 0, i;
    json_t *arr;
    int r = store_user_get(req->store, req->params[0], &u);

    if (r == ERR_OK) {
        r = store_user_key_list(req->store, u.id, &list, &n);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, admin_key_json(&list[i]));
    }
    store_user_key_list_free(list, n);
    return http_list(req, arr);
}

int http_h_users_keys_add(struct http_req *req)
{
    struct store_user_key k;
    struct admin_ctx ac;
    struct admin_err e;
    struct store_user u;
    char *text;
    int r = store_user_get(req->store, req->params[0], &u);

    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    http_target(req, u.name);
    if ((text = strdup(http_body_str(req->body, "public_key"))) == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    http_admin_ctx(req, &ac);
    r = admin_user_key_add(&ac, &u, text, &k, &e);
    free(text);
    if (r != ERR_OK) {
        return http_admin_error(req, &e);
    }
    http_ok(req, 201, admin_key_json(&k), NULL);
    store_user_key_clear(&k);
    return 0;
}

int http_h_users_keys_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_user u;
    int r = store_user_get(req->store, req->params[0], &u);

    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    http_admin_ctx(req, &ac);
    if (admin_user_key_delete(&ac, &u, req->params[1], &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

/* --- groups -------------------------------------------------------------- */

int http_h_groups_list(struct http_req *req)
{
    struct store_group *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_group_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "group", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, admin_group_json(req->store, &list[i]));
    }
    store_list_free(list);
    return http_list(req, arr);
}

int http_h_groups_add(struct http_req *req)
{
    const char *name = http_body_str(req->body, "name");
    struct store_group g;
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_group_add(&ac, name, &g, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 201, admin_group_json(req->store, &g), NULL);
}

int http_h_groups_get(struct http_req *req)
{
    struct store_group g;
    int r = store_group_get(req->store, req->params[0], &g);

    if (r != ERR_OK) {
        return http_store_error(req, r, "group", req->params[0]);
    }
    return http_ok(req, 200, admin_group_json(req->store, &g), NULL);
}

int http_h_groups_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_group g;
    int r = store_group_get(req->store, req->params[0], &g);

    if (r != ERR_OK) {
        return http_store_error(req, r, "group", req->params[0]);
    }
    http_admin_ctx(req, &ac);
    if (admin_group_delete(&ac, &g, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

int http_h_groups_members_list(struct http_req *req)
{
    struct store_user *list = NULL;
    struct store_group g;
    size_t n = 0, i;
    json_t *arr;
    int r = store_group_get(req->store, req->params[0], &g);

    if (r == ERR_OK) {
        r = store_group_members(req->store, g.id, &list, &n);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "group", req->params[0]);
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, admin_user_json(&list[i]));
    }
    store_user_list_free(list, n);
    return http_list(req, arr);
}

static int http_member_change(struct http_req *req, const char *user, bool add)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_group g;
    struct store_user u;
    int r = store_group_get(req->store, req->params[0], &g);

    if (r != ERR_OK) {
        return http_store_error(req, r, "group", req->params[0]);
    }
    if ((r = store_user_get(req->store, user, &u)) != ERR_OK) {
        return http_store_error(req, r, "user", user);
    }
    http_admin_ctx(req, &ac);
    if (admin_group_member(&ac, &g, &u, add, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return add ? http_ok(req, 201, admin_group_json(req->store, &g), NULL)
               : http_ok(req, 204, NULL, NULL);
}

int http_h_groups_members_add(struct http_req *req)
{
    return http_member_change(req, http_body_str(req->body, "user"), true);
}

int http_h_groups_members_delete(struct http_req *req)
{
    return http_member_change(req, req->params[1], false);
}

/* --- sites and site roles ------------------------------------------------- */

int http_h_sites_list(struct http_req *req)
{
    struct store_site *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_site_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "site", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, admin_site_json(&list[i]));
    }
    store_list_free(list);
    return http_list(req, arr);
}

int http_h_sites_add(struct http_req *req)
{
    struct store_site s;
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_site_add(&ac, http_body_str(req->body, "path"), &s, &e) !=
        ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 201, admin_site_json(&s), NULL);
}

int http_h_sites_get(struct http_req *req)
{
    struct store_site s;
    int r = store_site_get(req->store, req->params[0], &s);

    if (r != ERR_OK) {
        return http_store_error(req, r, "site", req->params[0]);
    }
    return http_ok(req, 200, admin_site_json(&s), NULL);
}

int http_h_sites_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_site s;
    int r = store_site_get(req->store, req->params[0], &s);

    if (r != ERR_OK) {
        return http_store_error(req, r, "site", req->params[0]);
    }
    http_admin_ctx(req, &ac);
    if (admin_site_delete(&ac, &s, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

static json_t *http_site_role_json(const struct store_site_role *sr)
{
    return admin_json_encode(admin_site_role_fields, sr);
}

int http_h_site_roles_list(struct http_req *req)
{
    struct store_site_role *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_site_role_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "site role", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, http_site_role_json(&list[i]));
    }
    store_list_free(list);
    return http_list(req, arr);
}

/* Resolves exactly one of the body's "user" / "group" into ids. */
static int http_grantee(struct http_req *req, char *user_id, char *group_id)
{
    const char *user = http_body_str(req->body, "user");
    const char *group = http_body_str(req->body, "group");
    struct store_group g;
    struct store_user u;
    int r;

    user_id[0] = group_id[0] = '\0';
    if ((user != NULL) == (group != NULL)) {
        return http_error(req, 400, "invalid", "Invalid value",
                          "give either 'user' or 'group'");
    }
    if (user != NULL) {
        if ((r = store_user_get(req->store, user, &u)) != ERR_OK) {
            return http_store_error(req, r, "user", user);
        }
        memcpy(user_id, u.id, sizeof(u.id));
        snprintf(req->audit_detail, sizeof(req->audit_detail), "user=%s",
                 u.name);
    } else {
        if ((r = store_group_get(req->store, group, &g)) != ERR_OK) {
            return http_store_error(req, r, "group", group);
        }
        memcpy(group_id, g.id, sizeof(g.id));
        snprintf(req->audit_detail, sizeof(req->audit_detail), "group=%s",
                 g.name);
    }
    return 0;
}

int http_h_site_roles_add(struct http_req *req)
{
    const char *site = http_body_str(req->body, "site");
    const char *role = http_body_str(req->body, "role");
    struct store_site_role sr;
    struct store_site s;
    struct admin_ctx ac;
    struct admin_err e;
    int r;

    memset(&sr, 0, sizeof(sr));
    if (admin_site_role_parse(role, &e) < 0) {
        return http_admin_error(req, &e);
    }
    if ((r = store_site_get(req->store, site != NULL ? site : "/root", &s)) !=
        ERR_OK) {
        return http_store_error(req, r, "site", site != NULL ? site : "/root");
    }
    if (http_grantee(req, sr.user_id, sr.group_id) != 0 ||
        req->errors != NULL) {
        return 0;
    }
    memcpy(sr.site_id, s.id, sizeof(s.id));
    http_admin_ctx(req, &ac);
    /* http_grantee wrote "user=NAME" or "group=NAME" */
    if (admin_site_role_add(&ac, &sr, role,
                            req->audit_detail + (sr.user_id[0] ? 5 : 6), s.path,
                            &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    if (store_site_role_get(req->store, sr.id, &sr) != ERR_OK) {
        snprintf(sr.site_path, sizeof(sr.site_path), "%s", s.path);
    }
    return http_ok(req, 201, http_site_role_json(&sr), NULL);
}

int http_h_site_roles_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_site_role_delete(&ac, req->params[0], &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

/* --- assets -------------------------------------------------------------- */

int http_h_assets_list(struct http_req *req)
{
    struct store_asset *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_asset_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "asset", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, admin_asset_json(&list[i]));
    }
    store_asset_list_free(list, n);
    return http_list(req, arr);
}

/* The body's vaulted logins: private_key and password (strings set them,
 * null erases them, absent keeps them). */
static int http_asset_secrets(struct http_req *req, struct store_asset *a,
                              struct admin_err *e)
{
    json_t *v;
    int r;

    if ((v = json_object_get(req->body, "private_key")) != NULL) {
        if (json_is_null(v)) {
            free(a->key_sealed);
            a->key_sealed = NULL;
            a->key_sealed_len = 0;
        } else if ((r = admin_asset_seal_key(
                        req->h->vault, a, json_string_value(v),
                        json_string_length(v), e)) != ERR_OK) {
            return r;
        }
    }
    if ((v = json_object_get(req->body, "password")) != NULL) {
        return admin_asset_seal_password(
            req->h->vault, a, json_is_null(v) ? NULL : json_string_value(v), e);
    }
    return ERR_OK;
}

int http_h_assets_add(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_asset a;

    admin_asset_defaults(&a);
    http_admin_ctx(req, &ac);
    if (admin_json_apply(admin_asset_fields, req->body, &a, &e) != ERR_OK ||
        (admin_asset_default_port(&a, req->body), false) ||
        admin_asset_check(&a, &e) != ERR_OK ||
        admin_asset_set_site(req->store, &a, http_body_str(req->body, "site"),
                             &e) != ERR_OK ||
        http_asset_secrets(req, &a, &e) != ERR_OK ||
        admin_asset_add(&ac, &a, &e) != ERR_OK) {
        http_admin_error(req, &e);
        goto out;
    }
    http_ok(req, 201, admin_asset_json(&a), NULL);
out:
    store_asset_clear(&a);
    return 0;
}

/* An asset in a path is named by its ID (names may repeat across sites,
 * unlike the CLI's lookup of one unique name): a name there gets a 404
 * that says so, where a reader would otherwise think the asset missing. */
static int http_asset_error(struct http_req *req, int r)
{
    const char *ref = req->params[0];

    if (r == ERR_NOT_FOUND && !util_is_uuid(ref)) {
        return http_error(req, 404, "not_found", "Not found",
                          "asset '%.200s' not found: the API names an asset "
                          "by its ID (GET /api/v1/assets?filter[name]=... "
                          "finds it)",
                          ref);
    }
    return http_store_error(req, r, "asset", ref);
}

int http_h_assets_get(struct http_req *req)
{
    struct store_asset a;
    int r = store_asset_get(req->store, req->params[0], &a);

    if (r != ERR_OK) {
        return http_asset_error(req, r);
    }
    http_ok(req, 200, admin_asset_json(&a), NULL);
    store_asset_clear(&a);
    return 0;
}

int http_h_assets_patch(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_asset a;
    int r = store_asset_get(req->store, req->params[0], &a);

    if (r != ERR_OK) {
        return http_asset_error(req, r);
    }
    http_admin_ctx(req, &ac);
    if (admin_json_apply(admin_asset_fields, req->body, &a, &e) != ERR_OK ||
        admin_asset_check(&a, &e) != ERR_OK ||
        http_asset_secrets(req, &a, &e) != ERR_OK ||
        admin_asset_update(&ac, &a, &e) != ERR_OK) {
        http_admin_error(req, &e);
        goto out;
    }
    http_ok(req, 200, admin_asset_json(&a), NULL);
out:
    store_asset_clear(&a);
    return 0;
}

int http_h_assets_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_asset a;
    int r = store_asset_get(req->store, req->params[0], &a);

    if (r != ERR_OK) {
        return http_asset_error(req, r);
    }
    http_admin_ctx(req, &ac);
    r = admin_asset_delete(&ac, &a, &e);
    store_asset_clear(&a);
    return r != ERR_OK ? http_admin_error(req, &e)
                       : http_ok(req, 204, NULL, NULL);
}

/* --- asset grants -------------------------------------------------------- */

int http_h_grants_list(struct http_req *req)
{
    struct store_grant *list = NULL;
    struct store_asset a;
    size_t n = 0, i;
    json_t *arr;
    int r = store_asset_get(req->store, req->params[0], &a);

    if (r != ERR_OK) {
        return http_asset_error(req, r);
    }
    if ((r = store_grant_list(req->store, &list, &n)) != ERR_OK) {
        store_asset_clear(&a);
        return http_store_error(req, r, "grant", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        if (strcmp(list[i].asset_id, a.id) == 0) {
            json_array_append_new(arr, admin_grant_json(&list[i]));
        }
    }
    store_list_free(list);
    store_asset_clear(&a);
    return http_list(req, arr);
}

int http_h_grants_add(struct http_req *req)
{
    const char *role = http_body_str(req->body, "role");
    struct admin_ctx ac;
    struct admin_err e;
    struct store_asset a;
    struct store_grant g;
    char target[STORE_NAME_MAX + 1];
    int r;

    memset(&g, 0, sizeof(g));
    if (admin_role_parse(role, &e) < 0) {
        return http_admin_error(req, &e);
    }
    if ((r = store_asset_get(req->store, req->params[0], &a)) != ERR_OK) {
        return http_asset_error(req, r);
    }
    memcpy(g.asset_id, a.id, sizeof(a.id));
    memcpy(target, a.name, sizeof(target));
    store_asset_clear(&a);
    if (http_grantee(req, g.user_id, g.group_id) != 0 || req->errors != NULL) {
        return 0;
    }
    http_admin_ctx(req, &ac);
    if (admin_grant_add(
            &ac, &g, role,
            http_body_str(req->body, g.user_id[0] ? "user" : "group"), target,
            &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 201, admin_grant_json(&g), NULL);
}

int http_h_grants_delete(struct http_req *req)
{
    struct store_grant *list = NULL;
    struct admin_ctx ac;
    struct admin_err e;
    size_t n = 0, i;
    bool found = false;
    int r;

    if ((r = store_grant_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "grant", "list");
    }
    for (i = 0; i < n && !found; i++) {
        found = strcasecmp(list[i].id, req->params[1]) == 0 &&
                strcasecmp(list[i].asset_id, req->params[0]) == 0;
    }
    store_list_free(list);
    if (!found) {
        return http_error(req, 404, "not_found", "Not found",
                          "grant '%s' not found on asset '%s'", req->params[1],
                          req->params[0]);
    }
    http_admin_ctx(req, &ac);
    if (admin_grant_delete(&ac, req->params[1], &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

/* --- access profiles ----------------------------------------------------- */

int http_h_profiles_list(struct http_req *req)
{
    struct store_profile *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_profile_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "profile", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, admin_profile_json(&list[i]));
    }
    store_list_free(list);
    return http_list(req, arr);
}

int http_h_profiles_add(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_profile p;

    admin_profile_defaults(&p);
    http_admin_ctx(req, &ac);
    if (admin_json_apply(admin_profile_fields, req->body, &p, &e) != ERR_OK ||
        admin_profile_add(&ac, &p, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 201, admin_profile_json(&p), NULL);
}

int http_h_profiles_get(struct http_req *req)
{
    struct store_profile p;
    int r = store_profile_get(req->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_store_error(req, r, "profile", req->params[0]);
    }
    return http_ok(req, 200, admin_profile_json(&p), NULL);
}

int http_h_profiles_assignments(struct http_req *req)
{
    struct store_profile p;
    struct admin_ctx ac;
    struct admin_err e;
    json_t *who;
    int r = store_profile_get(req->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_store_error(req, r, "profile", req->params[0]);
    }
    http_admin_ctx(req, &ac);
    if (admin_profile_assignees(&ac, &p, &who, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_list(req, who);
}

int http_h_profiles_patch(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_profile p;
    int r = store_profile_get(req->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_store_error(req, r, "profile", req->params[0]);
    }
    http_admin_ctx(req, &ac);
    if (admin_json_apply(admin_profile_fields, req->body, &p, &e) != ERR_OK ||
        admin_profile_update(&ac, &p, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 200, admin_profile_json(&p), NULL);
}

int http_h_profiles_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;
    struct store_profile p;
    int r = store_profile_get(req->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_store_error(req, r, "profile", req->params[0]);
    }
    http_admin_ctx(req, &ac);
    if (admin_profile_delete(&ac, &p, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

int http_h_profiles_assign(struct http_req *req)
{
    char uid[STORE_ID_MAX + 1], gid[STORE_ID_MAX + 1];
    const char *who;
    struct store_profile p;
    struct admin_ctx ac;
    struct admin_err e;
    int r = store_profile_get(req->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_store_error(req, r, "profile", req->params[0]);
    }
    if (http_grantee(req, uid, gid) != 0 || req->errors != NULL) {
        return 0;
    }
    /* http_grantee wrote "user=NAME" or "group=NAME" */
    who = req->audit_detail + (uid[0] ? 5 : 6);
    http_admin_ctx(req, &ac);
    if (admin_profile_assign(&ac, &p, uid[0] ? uid : NULL, gid[0] ? gid : NULL,
                             who, true, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 201,
                   json_pack("{s:s, s:s, s:s}", "profile", p.name,
                             "grantee_type", uid[0] ? "user" : "group",
                             "grantee", who),
                   NULL);
}

int http_h_profiles_unassign(struct http_req *req)
{
    struct store_profile p;
    struct store_user u;
    struct store_group g;
    struct admin_ctx ac;
    struct admin_err e;
    bool user = strcmp(req->params[1], "user") == 0;
    int r = store_profile_get(req->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_store_error(req, r, "profile", req->params[0]);
    }
    if (!user && strcmp(req->params[1], "group") != 0) {
        return http_error(req, 404, "not_found", "Not found",
                          "assignments are under .../assignments/user/NAME "
                          "or .../assignments/group/NAME");
    }
    r = user ? store_user_get(req->store, req->params[2], &u)
             : store_group_get(req->store, req->params[2], &g);
    if (r != ERR_OK) {
        return http_store_error(req, r, req->params[1], req->params[2]);
    }
    http_admin_ctx(req, &ac);
    if (admin_profile_assign(&ac, &p, user ? u.id : NULL, user ? NULL : g.id,
                             user ? u.name : g.name, false, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}
