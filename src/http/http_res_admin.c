/*
 * Route handlers for the configuration: users (with TOTP enrolment and
 * public keys), groups and members, sites, site roles, assets (with their
 * vaulted logins), asset grants and access profiles.
 *
 * They mirror the CLI nouns (src/cli/) and keep the same rules: passwords
 * reach the store hashed, TOTP seeds and asset logins sealed with the
 * vault under the same associated data ("totp:<id>",
 * "asset-password:<id>", "asset-key:<id>"), and no response ever holds a
 * hash, a sealed blob or a vaulted secret. Permission checks are not made
 * here: http_dispatch() has made them from the route table.
 */
#include "http/http_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh/libssh.h>
#include <sodium.h>

#include "auth/password.h"
#include "auth/totp.h"
#include "common/err.h"
#include "common/util.h"

#define HTTP_TOTP_ISSUER "Portcullis"

static void http_target(struct http_req *req, const char *what)
{
    snprintf(req->audit_target, sizeof(req->audit_target), "%.255s", what);
}

/* --- users --------------------------------------------------------------- */

static json_t *http_user_json(const struct store_user *u)
{
    return json_pack("{s:s, s:s, s:b, s:b, s:b, s:o}", "id", u->id, "name",
                     u->name, "disabled", u->disabled, "totp_enabled",
                     u->totp_enabled, "has_password",
                     u->password_hash[0] != '\0', "created_at",
                     http_json_time(u->created_at));
}

int http_h_users_list(struct http_req *req)
{
    struct store_user *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_user_list(req->h->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "user", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, http_user_json(&list[i]));
    }
    store_user_list_free(list, n);
    return http_list(req, arr);
}

int http_h_users_add(struct http_req *req)
{
    const char *name = http_body_str(req->body, "name");
    const char *pw = http_body_str(req->body, "password");
    char hash[STORE_HASH_MAX + 1] = "";
    struct store_user u;
    int r;

    http_target(req, name);
    if (pw != NULL && (r = password_hash(pw, hash, sizeof(hash))) != ERR_OK) {
        return http_error(req, 500, "internal", "Internal error",
                          "cannot hash the password: %s", err_str(r));
    }
    r = store_user_add(req->h->store, name, hash,
                       http_body_bool(req->body, "disabled", false), &u);
    sodium_memzero(hash, sizeof(hash));
    if (r != ERR_OK) {
        return http_store_error(req, r, "user", name);
    }
    return http_ok(req, 201, http_user_json(&u), NULL);
}

int http_h_users_get(struct http_req *req)
{
    struct store_user u;
    struct store_group *groups = NULL;
    struct store_profile *profiles = NULL;
    size_t ng = 0, np = 0, i;
    json_t *j, *jg, *jp;
    int r = store_user_get(req->h->store, req->params[0], &u);

    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    if ((r = store_user_groups(req->h->store, u.id, &groups, &ng)) != ERR_OK ||
        (r = store_user_profiles(req->h->store, u.id, &profiles, &np)) !=
            ERR_OK) {
        store_list_free(groups);
        return http_store_error(req, r, "user", req->params[0]);
    }
    jg = json_array();
    jp = json_array();
    for (i = 0; i < ng; i++) {
        json_array_append_new(jg, json_string(groups[i].name));
    }
    for (i = 0; i < np; i++) {
        json_array_append_new(jp, json_string(profiles[i].name));
    }
    store_list_free(groups);
    store_list_free(profiles);
    j = http_user_json(&u);
    json_object_set_new(j, "groups", jg);
    json_object_set_new(j, "profiles", jp);
    return http_ok(req, 200, j, NULL);
}

int http_h_users_patch(struct http_req *req)
{
    const char *pw = http_body_str(req->body, "password");
    char hash[STORE_HASH_MAX + 1] = "", id[STORE_ID_MAX + 1];
    struct store_user u;
    int r = store_user_get(req->h->store, req->params[0], &u);

    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    http_target(req, u.name);
    if (pw != NULL) {
        if ((r = password_hash(pw, hash, sizeof(hash))) != ERR_OK ||
            (r = store_user_set_password(req->h->store, u.id, hash)) !=
                ERR_OK) {
            sodium_memzero(hash, sizeof(hash));
            return http_store_error(req, r, "user", u.name);
        }
        sodium_memzero(hash, sizeof(hash));
        snprintf(req->audit_detail, sizeof(req->audit_detail), "password");
    }
    if (http_body_has(req->body, "disabled")) {
        r = store_user_set_disabled(
            req->h->store, u.id, http_body_bool(req->body, "disabled", false));
        if (r != ERR_OK) {
            return http_store_error(req, r, "user", u.name);
        }
        snprintf(req->audit_detail + strlen(req->audit_detail),
                 sizeof(req->audit_detail) - strlen(req->audit_detail),
                 " disabled=%s",
                 http_body_bool(req->body, "disabled", false) ? "true"
                                                              : "false");
    }
    memcpy(id, u.id, sizeof(id)); /* the getter clears its output first */
    if ((r = store_user_get(req->h->store, id, &u)) != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    return http_ok(req, 200, http_user_json(&u), NULL);
}

int http_h_users_delete(struct http_req *req)
{
    struct store_user u;
    int r = store_user_get(req->h->store, req->params[0], &u);

    if (r == ERR_OK) {
        http_target(req, u.name);
        r = store_user_delete(req->h->store, u.id);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    return http_ok(req, 204, NULL, NULL);
}

int http_h_users_totp_enable(struct http_req *req)
{
    uint8_t secret[TOTP_SECRET_LEN], *sealed = NULL;
    char ad[64], b32[64] = "", uri[1024] = "";
    size_t sealed_len = 0;
    struct store_user u;
    int r = store_user_get(req->h->store, req->params[0], &u);

    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    http_target(req, u.name);
    totp_new_secret(secret);
    snprintf(ad, sizeof(ad), "totp:%s", u.id);
    r = vault_seal(req->h->vault, ad, secret, sizeof(secret), &sealed,
                   &sealed_len);
    if (r == ERR_OK && sealed_len > STORE_SEALED_SMALL_MAX) {
        r = ERR_INTERNAL;
    }
    if (r == ERR_OK) {
        r = totp_base32(secret, sizeof(secret), b32, sizeof(b32));
    }
    if (r == ERR_OK) {
        r = totp_uri(HTTP_TOTP_ISSUER, u.name, b32, uri, sizeof(uri));
    }
    if (r == ERR_OK) {
        r = store_user_set_totp(req->h->store, u.id, sealed, sealed_len);
    }
    if (r == ERR_OK) {
        http_ok(req, 200,
                json_pack("{s:s, s:s, s:s}", "user", u.name, "secret", b32,
                          "uri", uri),
                NULL);
    } else {
        http_store_error(req, r, "user", u.name);
    }
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(b32, sizeof(b32));
    sodium_memzero(uri, sizeof(uri));
    free(sealed);
    return 0;
}

int http_h_users_totp_disable(struct http_req *req)
{
    struct store_user u;
    int r = store_user_get(req->h->store, req->params[0], &u);

    if (r == ERR_OK) {
        http_target(req, u.name);
        r = store_user_set_totp(req->h->store, u.id, NULL, 0);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    return http_ok(req, 204, NULL, NULL);
}

static json_t *http_key_json(const struct store_user_key *k)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "id", k->id, "type", k->type,
                     "fingerprint", k->fingerprint, "comment", k->comment);
}

int http_h_users_keys_list(struct http_req *req)
{
    struct store_user_key *list = NULL;
    struct store_user u;
    size_t n = 0, i;
    json_t *arr;
    int r = store_user_get(req->h->store, req->params[0], &u);

    if (r == ERR_OK) {
        r = store_user_key_list(req->h->store, u.id, &list, &n);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, http_key_json(&list[i]));
    }
    store_user_key_list_free(list, n);
    return http_list(req, arr);
}

/* "TYPE BASE64 [COMMENT]": checked with libssh and fingerprinted. */
static int http_parse_pubkey(const char *line, char *type, size_t typelen,
                             char **b64, char *comment, size_t commentlen,
                             char *fp, size_t fplen)
{
    unsigned char *hash = NULL;
    size_t hlen = 0, tl, bl;
    ssh_key key = NULL;
    char *fps = NULL;
    int r = ERR_INVALID;

    *b64 = NULL;
    tl = strcspn(line, " ");
    if (tl == 0 || tl >= typelen || line[tl] != ' ') {
        goto out;
    }
    memcpy(type, line, tl);
    type[tl] = '\0';
    line += tl + 1;
    bl = strcspn(line, " ");
    if (bl == 0 || (*b64 = strndup(line, bl)) == NULL) {
        goto out;
    }
    line += bl;
    while (*line == ' ') {
        line++;
    }
    snprintf(comment, commentlen, "%s", line);
    if (ssh_pki_import_pubkey_base64(*b64, ssh_key_type_from_name(type),
                                     &key) != SSH_OK ||
        ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) !=
            SSH_OK ||
        (fps = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash,
                                        hlen)) == NULL ||
        strlen(fps) >= fplen) {
        goto out;
    }
    snprintf(fp, fplen, "%s", fps);
    r = ERR_OK;
out:
    if (r != ERR_OK) {
        free(*b64);
        *b64 = NULL;
    }
    ssh_string_free_char(fps);
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(key);
    return r;
}

int http_h_users_keys_add(struct http_req *req)
{
    char type[32], comment[STORE_NAME_MAX + 1], fp[STORE_FP_MAX + 1];
    struct store_user_key k;
    struct store_user u;
    char *b64 = NULL;
    int r = store_user_get(req->h->store, req->params[0], &u);

    if (r != ERR_OK) {
        return http_store_error(req, r, "user", req->params[0]);
    }
    http_target(req, u.name);
    if (http_parse_pubkey(http_body_str(req->body, "public_key"), type,
                          sizeof(type), &b64, comment, sizeof(comment), fp,
                          sizeof(fp)) != ERR_OK) {
        return http_error(req, 400, "invalid", "Invalid value",
                          "public_key must be one 'TYPE BASE64 [COMMENT]' "
                          "line of a public key");
    }
    memset(&k, 0, sizeof(k));
    r = store_user_key_add(req->h->store, u.id, type, b64, fp, comment, &k);
    free(b64);
    if (r != ERR_OK) {
        store_user_key_clear(&k);
        return http_store_error(req, r, "key", fp);
    }
    snprintf(req->audit_detail, sizeof(req->audit_detail), "%s", fp);
    http_ok(req, 201, http_key_json(&k), NULL);
    store_user_key_clear(&k);
    return 0;
}

int http_h_users_keys_delete(struct http_req *req)
{
    struct store_user u;
    int r = store_user_get(req->h->store, req->params[0], &u);

    if (r == ERR_OK) {
        http_target(req, u.name);
        snprintf(req->audit_detail, sizeof(req->audit_detail), "%s",
                 req->params[1]);
        r = store_user_key_delete(req->h->store, u.id, req->params[1]);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "key", req->params[1]);
    }
    return http_ok(req, 204, NULL, NULL);
}

/* --- groups -------------------------------------------------------------- */

static json_t *http_group_json(struct http_req *req,
                               const struct store_group *g)
{
    struct store_user *members = NULL;
    size_t n = 0, i;
    json_t *arr = json_array();

    if (store_group_members(req->h->store, g->id, &members, &n) == ERR_OK) {
        for (i = 0; i < n; i++) {
            json_array_append_new(arr, json_string(members[i].name));
        }
        store_user_list_free(members, n);
    }
    return json_pack("{s:s, s:s, s:o}", "id", g->id, "name", g->name, "members",
                     arr);
}

int http_h_groups_list(struct http_req *req)
{
    struct store_group *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_group_list(req->h->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "group", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, http_group_json(req, &list[i]));
    }
    store_list_free(list);
    return http_list(req, arr);
}

int http_h_groups_add(struct http_req *req)
{
    const char *name = http_body_str(req->body, "name");
    struct store_group g;
    int r;

    http_target(req, name);
    if ((r = store_group_add(req->h->store, name, &g)) != ERR_OK) {
        return http_store_error(req, r, "group", name);
    }
    return http_ok(req, 201, http_group_json(req, &g), NULL);
}

int http_h_groups_get(struct http_req *req)
{
    struct store_group g;
    int r = store_group_get(req->h->store, req->params[0], &g);

    if (r != ERR_OK) {
        return http_store_error(req, r, "group", req->params[0]);
    }
    return http_ok(req, 200, http_group_json(req, &g), NULL);
}

int http_h_groups_delete(struct http_req *req)
{
    struct store_group g;
    int r = store_group_get(req->h->store, req->params[0], &g);

    if (r == ERR_OK) {
        http_target(req, g.name);
        r = store_group_delete(req->h->store, g.id);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "group", req->params[0]);
    }
    return http_ok(req, 204, NULL, NULL);
}

int http_h_groups_members_list(struct http_req *req)
{
    struct store_user *list = NULL;
    struct store_group g;
    size_t n = 0, i;
    json_t *arr;
    int r = store_group_get(req->h->store, req->params[0], &g);

    if (r == ERR_OK) {
        r = store_group_members(req->h->store, g.id, &list, &n);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "group", req->params[0]);
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, http_user_json(&list[i]));
    }
    store_user_list_free(list, n);
    return http_list(req, arr);
}

static int http_member_change(struct http_req *req, const char *user, bool add)
{
    struct store_group g;
    struct store_user u;
    int r = store_group_get(req->h->store, req->params[0], &g);

    if (r != ERR_OK) {
        return http_store_error(req, r, "group", req->params[0]);
    }
    if ((r = store_user_get(req->h->store, user, &u)) != ERR_OK) {
        return http_store_error(req, r, "user", user);
    }
    http_target(req, g.name);
    snprintf(req->audit_detail, sizeof(req->audit_detail), "user=%s", u.name);
    r = add ? store_group_member_add(req->h->store, g.id, u.id)
            : store_group_member_remove(req->h->store, g.id, u.id);
    if (r != ERR_OK) {
        return http_store_error(req, r, "membership of", u.name);
    }
    return add ? http_ok(req, 201, http_group_json(req, &g), NULL)
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

static json_t *http_site_json(const struct store_site *s)
{
    return json_pack("{s:s, s:s, s:s?}", "id", s->id, "path", s->path,
                     "parent_id", http_nz(s->parent_id));
}

int http_h_sites_list(struct http_req *req)
{
    struct store_site *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_site_list(req->h->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "site", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, http_site_json(&list[i]));
    }
    store_list_free(list);
    return http_list(req, arr);
}

int http_h_sites_add(struct http_req *req)
{
    const char *path = http_body_str(req->body, "path");
    struct store_site s;
    int r;

    http_target(req, path);
    if ((r = store_site_add(req->h->store, path, &s)) != ERR_OK) {
        return http_store_error(req, r, "site", path);
    }
    http_target(req, s.path);
    return http_ok(req, 201, http_site_json(&s), NULL);
}

int http_h_sites_get(struct http_req *req)
{
    struct store_site s;
    int r = store_site_get(req->h->store, req->params[0], &s);

    if (r != ERR_OK) {
        return http_store_error(req, r, "site", req->params[0]);
    }
    return http_ok(req, 200, http_site_json(&s), NULL);
}

int http_h_sites_delete(struct http_req *req)
{
    struct store_site s;
    int r = store_site_get(req->h->store, req->params[0], &s);

    if (r == ERR_OK) {
        http_target(req, s.path);
        r = store_site_delete(req->h->store, s.id);
    }
    if (r == ERR_EXISTS) {
        return http_error(req, 409, "conflict", "Conflict",
                          "site '%s' still has assets or sub-sites",
                          req->params[0]);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "site", req->params[0]);
    }
    return http_ok(req, 204, NULL, NULL);
}

static json_t *http_site_role_json(const struct store_site_role *sr)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "id", sr->id, "site",
                     sr->site_path, "site_id", sr->site_id, "grantee_type",
                     sr->user_id[0] != '\0' ? "user" : "group", "grantee",
                     sr->grantee_name, "role", site_role_str(sr->role));
}

int http_h_site_roles_list(struct http_req *req)
{
    struct store_site_role *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_site_role_list(req->h->store, &list, &n)) != ERR_OK) {
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
        if ((r = store_user_get(req->h->store, user, &u)) != ERR_OK) {
            return http_store_error(req, r, "user", user);
        }
        memcpy(user_id, u.id, sizeof(u.id));
        snprintf(req->audit_detail, sizeof(req->audit_detail), "user=%s",
                 u.name);
    } else {
        if ((r = store_group_get(req->h->store, group, &g)) != ERR_OK) {
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
    int r, rv;

    memset(&sr, 0, sizeof(sr));
    if ((rv = site_role_parse(role)) < 0) {
        return http_error(req, 400, "invalid", "Invalid value",
                          "role must be administrator, configuration-manager, "
                          "service or user");
    }
    if ((r = store_site_get(req->h->store, site != NULL ? site : "/root",
                            &s)) != ERR_OK) {
        return http_store_error(req, r, "site", site != NULL ? site : "/root");
    }
    if (http_grantee(req, sr.user_id, sr.group_id) != 0 ||
        req->errors != NULL) {
        return 0;
    }
    memcpy(sr.site_id, s.id, sizeof(s.id));
    sr.role = rv;
    if ((r = store_site_role_add(req->h->store, &sr)) != ERR_OK) {
        return http_store_error(req, r, "role", role);
    }
    http_target(req, s.path);
    snprintf(req->audit_detail + strlen(req->audit_detail),
             sizeof(req->audit_detail) - strlen(req->audit_detail), " role=%s",
             role);
    return http_ok(req, 201, http_site_role_json(&sr), NULL);
}

int http_h_site_roles_delete(struct http_req *req)
{
    struct store_site_role sr;
    int r = store_site_role_get(req->h->store, req->params[0], &sr);

    if (r == ERR_OK) {
        http_target(req, sr.site_path);
        snprintf(req->audit_detail, sizeof(req->audit_detail), "%s=%s role=%s",
                 sr.user_id[0] != '\0' ? "user" : "group", sr.grantee_name,
                 site_role_str(sr.role));
        r = store_site_role_delete(req->h->store, sr.id);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "site role", req->params[0]);
    }
    return http_ok(req, 204, NULL, NULL);
}

/* --- assets -------------------------------------------------------------- */

static json_t *http_asset_json(const struct store_asset *a)
{
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s?, s:b, "
        "s:b, s:s?, s:o}",
        "id", a->id, "name", a->name, "site", a->site_path, "site_id",
        a->site_id, "protocol", a->protocol, "host", a->host, "port", a->port,
        "route", a->route, "login_user", http_nz(a->login_user), "has_password",
        a->password_sealed != NULL, "has_key", a->key_sealed != NULL,
        "host_key_fingerprint", http_nz(a->host_key_fp), "created_at",
        http_json_time(a->created_at));
}

static bool http_host_valid(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!isalnum((unsigned char)s[i]) && strchr(".-_:[]%", s[i]) == NULL) {
            return false;
        }
    }
    return i > 0 && i <= STORE_HOST_MAX;
}

static bool http_fp_valid(const char *s)
{
    size_t i;

    if (strncmp(s, "SHA256:", 7) != 0) {
        return false;
    }
    for (i = 7; s[i] != '\0'; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/') {
            return false;
        }
    }
    return i == 7 + 43;
}

static int http_no_passphrase(const char *prompt, char *buf, size_t len,
                              int echo, int verify, void *userdata)
{
    return -1;
}

/* Seals a password or a private key for asset id, as `asset add` does. */
static int http_seal(struct http_req *req, const char *what, const char *id,
                     const char *secret, uint8_t **sealed, size_t *sealed_len)
{
    ssh_key key = NULL;
    char ad[64];
    int r;

    if (strcmp(what, "key") == 0) {
        if (ssh_pki_import_privkey_base64(secret, NULL, http_no_passphrase,
                                          NULL, &key) != SSH_OK) {
            http_error(req, 400, "invalid", "Invalid value",
                       "private_key is not a private key, or is protected "
                       "by a passphrase");
            return ERR_INVALID;
        }
        ssh_key_free(key);
    }
    snprintf(ad, sizeof(ad), "asset-%s:%s",
             strcmp(what, "key") == 0 ? "key" : "password", id);
    r = vault_seal(req->h->vault, ad, (const uint8_t *)secret, strlen(secret),
                   sealed, sealed_len);
    if (r == ERR_OK && *sealed_len > STORE_KEY_MAX) {
        free(*sealed);
        *sealed = NULL;
        r = ERR_TOO_LONG;
    }
    if (r != ERR_OK) {
        http_error(req, r == ERR_TOO_LONG ? 400 : 500, "seal",
                   "Cannot vault the login", "cannot seal the %s: %s", what,
                   err_str(r));
    }
    return r;
}

static bool http_asset_fields_ok(struct http_req *req)
{
    const char *host = http_body_str(req->body, "host");
    const char *fp = http_body_str(req->body, "host_key_fingerprint");

    if (host != NULL && !http_host_valid(host)) {
        http_error(req, 400, "invalid", "Invalid value",
                   "host must be a host name or address");
        return false;
    }
    if (fp != NULL && !http_fp_valid(fp)) {
        http_error(req, 400, "invalid", "Invalid value",
                   "host_key_fingerprint must be SHA256:<43 base64 "
                   "characters>");
        return false;
    }
    if (http_body_has(req->body, "route") &&
        !store_route_valid(http_body_str(req->body, "route"))) {
        http_error(req, 400, "invalid", "Invalid value",
                   "route must be 'direct' or 'agent:ID'");
        return false;
    }
    return true;
}

int http_h_assets_list(struct http_req *req)
{
    struct store_asset *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_asset_list(req->h->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "asset", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, http_asset_json(&list[i]));
    }
    store_asset_list_free(list, n);
    return http_list(req, arr);
}

int http_h_assets_add(struct http_req *req)
{
    const char *name = http_body_str(req->body, "name");
    const char *site = http_body_str(req->body, "site");
    const char *login = http_body_str(req->body, "login");
    const char *pw = http_body_str(req->body, "password");
    const char *key = http_body_str(req->body, "private_key");
    const char *fp = http_body_str(req->body, "host_key_fingerprint");
    struct store_asset a;
    struct store_site s;
    int r;

    memset(&a, 0, sizeof(a));
    http_target(req, name);
    if (!http_asset_fields_ok(req)) {
        return 0;
    }
    if ((pw != NULL || key != NULL) && login == NULL) {
        return http_error(req, 400, "invalid", "Invalid value",
                          "password and private_key need login");
    }
    if ((r = store_site_get(req->h->store, site != NULL ? site : "/root",
                            &s)) != ERR_OK) {
        return http_store_error(req, r, "site", site != NULL ? site : "/root");
    }
    util_uuid4(a.id);
    snprintf(a.name, sizeof(a.name), "%s", name);
    memcpy(a.site_id, s.id, sizeof(s.id));
    memcpy(a.site_path, s.path, sizeof(s.path));
    snprintf(a.protocol, sizeof(a.protocol), "ssh");
    snprintf(a.host, sizeof(a.host), "%s", http_body_str(req->body, "host"));
    a.port = (int)http_body_int(req->body, "port", 22);
    snprintf(a.route, sizeof(a.route), "%s",
             http_body_has(req->body, "route")
                 ? http_body_str(req->body, "route")
                 : "direct");
    snprintf(a.login_user, sizeof(a.login_user), "%s",
             login != NULL ? login : "");
    snprintf(a.host_key_fp, sizeof(a.host_key_fp), "%s", fp != NULL ? fp : "");
    if ((key != NULL && http_seal(req, "key", a.id, key, &a.key_sealed,
                                  &a.key_sealed_len) != ERR_OK) ||
        (pw != NULL && http_seal(req, "password", a.id, pw, &a.password_sealed,
                                 &a.password_sealed_len) != ERR_OK)) {
        goto out;
    }
    if ((r = store_asset_add(req->h->store, &a)) != ERR_OK) {
        http_store_error(req, r, "asset", name);
        goto out;
    }
    http_target(req, a.id);
    snprintf(req->audit_detail, sizeof(req->audit_detail), "name=%s", a.name);
    http_ok(req, 201, http_asset_json(&a), NULL);
out:
    store_asset_clear(&a);
    return 0;
}

int http_h_assets_get(struct http_req *req)
{
    struct store_asset a;
    int r = store_asset_get(req->h->store, req->params[0], &a);

    if (r != ERR_OK) {
        return http_store_error(req, r, "asset", req->params[0]);
    }
    http_ok(req, 200, http_asset_json(&a), NULL);
    store_asset_clear(&a);
    return 0;
}

/* Sets or erases (JSON null) one sealed field of an asset. */
static int http_asset_secret(struct http_req *req, struct store_asset *a,
                             const char *field, const char *what,
                             uint8_t **sealed, size_t *sealed_len)
{
    json_t *v = json_object_get(req->body, field);

    if (v == NULL) {
        return ERR_OK;
    }
    free(*sealed);
    *sealed = NULL;
    *sealed_len = 0;
    if (json_is_null(v)) {
        return ERR_OK;
    }
    return http_seal(req, what, a->id, json_string_value(v), sealed,
                     sealed_len);
}

int http_h_assets_patch(struct http_req *req)
{
    struct store_asset a;
    json_t *v;
    int r = store_asset_get(req->h->store, req->params[0], &a);

    if (r != ERR_OK) {
        return http_store_error(req, r, "asset", req->params[0]);
    }
    http_target(req, a.id);
    if (!http_asset_fields_ok(req)) {
        goto out;
    }
    if (http_body_has(req->body, "name")) {
        snprintf(a.name, sizeof(a.name), "%s",
                 http_body_str(req->body, "name"));
    }
    if (http_body_has(req->body, "host")) {
        snprintf(a.host, sizeof(a.host), "%s",
                 http_body_str(req->body, "host"));
    }
    a.port = (int)http_body_int(req->body, "port", a.port);
    if (http_body_has(req->body, "route")) {
        snprintf(a.route, sizeof(a.route), "%s",
                 http_body_str(req->body, "route"));
    }
    if ((v = json_object_get(req->body, "login")) != NULL) {
        snprintf(a.login_user, sizeof(a.login_user), "%s",
                 json_is_null(v) ? "" : json_string_value(v));
    }
    if (http_asset_secret(req, &a, "password", "password", &a.password_sealed,
                          &a.password_sealed_len) != ERR_OK ||
        http_asset_secret(req, &a, "private_key", "key", &a.key_sealed,
                          &a.key_sealed_len) != ERR_OK) {
        goto out;
    }
    if ((a.password_sealed != NULL || a.key_sealed != NULL) &&
        a.login_user[0] == '\0') {
        http_error(req, 400, "invalid", "Invalid value",
                   "a vaulted password or key needs login");
        goto out;
    }
    if ((v = json_object_get(req->body, "host_key_fingerprint")) != NULL) {
        /* null: trust the next key the target shows (retrust) */
        snprintf(a.host_key_fp, sizeof(a.host_key_fp), "%s",
                 json_is_null(v) ? "" : json_string_value(v));
    }
    if ((r = store_asset_update(req->h->store, &a)) != ERR_OK) {
        http_store_error(req, r, "asset", req->params[0]);
        goto out;
    }
    http_ok(req, 200, http_asset_json(&a), NULL);
out:
    store_asset_clear(&a);
    return 0;
}

int http_h_assets_delete(struct http_req *req)
{
    struct store_asset a;
    int r = store_asset_get(req->h->store, req->params[0], &a);

    if (r == ERR_OK) {
        http_target(req, a.id);
        snprintf(req->audit_detail, sizeof(req->audit_detail), "name=%s",
                 a.name);
        r = store_asset_delete(req->h->store, a.id);
        store_asset_clear(&a);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "asset", req->params[0]);
    }
    return http_ok(req, 204, NULL, NULL);
}

/* --- asset grants -------------------------------------------------------- */

static json_t *http_grant_json(const struct store_grant *g)
{
    return json_pack(
        "{s:s, s:s, s:s?, s:s?, s:s, s:s, s:s?, s:s?, s:s, s:s}", "id", g->id,
        "target_type", g->asset_id[0] != '\0' ? "asset" : "site", "asset_id",
        http_nz(g->asset_id), "site_id", http_nz(g->site_id), "target",
        g->target_name, "grantee_type",
        g->user_id[0] != '\0' ? "user" : "group", "user_id",
        http_nz(g->user_id), "group_id", http_nz(g->group_id), "grantee",
        g->grantee_name, "role", store_role_str(g->role));
}

int http_h_grants_list(struct http_req *req)
{
    struct store_grant *list = NULL;
    struct store_asset a;
    size_t n = 0, i;
    json_t *arr;
    int r = store_asset_get(req->h->store, req->params[0], &a);

    if (r != ERR_OK) {
        return http_store_error(req, r, "asset", req->params[0]);
    }
    if ((r = store_grant_list(req->h->store, &list, &n)) != ERR_OK) {
        store_asset_clear(&a);
        return http_store_error(req, r, "grant", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        if (strcmp(list[i].asset_id, a.id) == 0) {
            json_array_append_new(arr, http_grant_json(&list[i]));
        }
    }
    store_list_free(list);
    store_asset_clear(&a);
    return http_list(req, arr);
}

int http_h_grants_add(struct http_req *req)
{
    const char *role = http_body_str(req->body, "role");
    struct store_asset a;
    struct store_grant g;
    int r, rv;

    memset(&g, 0, sizeof(g));
    if ((rv = store_role_parse(role)) < ROLE_VIEWER) {
        return http_error(req, 400, "invalid", "Invalid value",
                          "role must be viewer, editor or owner");
    }
    if ((r = store_asset_get(req->h->store, req->params[0], &a)) != ERR_OK) {
        return http_store_error(req, r, "asset", req->params[0]);
    }
    memcpy(g.asset_id, a.id, sizeof(a.id));
    store_asset_clear(&a);
    if (http_grantee(req, g.user_id, g.group_id) != 0 || req->errors != NULL) {
        return 0;
    }
    g.role = rv;
    util_uuid4(g.id);
    if ((r = store_grant_add(req->h->store, &g)) != ERR_OK) {
        return http_store_error(req, r, "grant", role);
    }
    http_target(req, g.asset_id);
    snprintf(req->audit_detail + strlen(req->audit_detail),
             sizeof(req->audit_detail) - strlen(req->audit_detail), " role=%s",
             role);
    return http_ok(req, 201, http_grant_json(&g), NULL);
}

int http_h_grants_delete(struct http_req *req)
{
    struct store_grant *list = NULL;
    size_t n = 0, i;
    bool found = false;
    int r;

    if ((r = store_grant_list(req->h->store, &list, &n)) != ERR_OK) {
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
    if ((r = store_grant_delete(req->h->store, req->params[1])) != ERR_OK) {
        return http_store_error(req, r, "grant", req->params[1]);
    }
    http_target(req, req->params[0]);
    snprintf(req->audit_detail, sizeof(req->audit_detail), "grant=%s",
             req->params[1]);
    return http_ok(req, 204, NULL, NULL);
}

/* --- access profiles ----------------------------------------------------- */

static json_t *http_profile_json(const struct store_profile *p)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, "
                     "s:i, s:i, s:b}",
                     "id", p->id, "name", p->name, "native_session",
                     store_native_str(p->native), "shell", p->shell, "exec",
                     p->exec, "sftp", p->sftp, "scp", p->scp, "local_forward",
                     p->local_forward, "remote_forward", p->remote_forward,
                     "agent_forward", p->agent_forward, "x11", p->x11,
                     "max_session_minutes", p->max_session_minutes,
                     "idle_timeout_minutes", p->idle_timeout_minutes,
                     "record_input", p->record_input);
}

/* Applies the body's fields to p; false (answered 400) on a bad native. */
static bool http_profile_apply(struct http_req *req, struct store_profile *p)
{
    const char *native = http_body_str(req->body, "native");
    const json_t *b = req->body;

    if (native != NULL) {
        if ((p->native = store_native_parse(native)) < 0) {
            http_error(req, 400, "invalid", "Invalid value",
                       "native must be deny, allow or record");
            return false;
        }
    }
    if (http_body_has(b, "name")) {
        snprintf(p->name, sizeof(p->name), "%s", http_body_str(b, "name"));
    }
    p->shell = http_body_bool(b, "shell", p->shell);
    p->exec = http_body_bool(b, "exec", p->exec);
    p->sftp = http_body_bool(b, "sftp", p->sftp);
    p->scp = http_body_bool(b, "scp", p->scp);
    p->local_forward = http_body_bool(b, "local_forward", p->local_forward);
    p->remote_forward = http_body_bool(b, "remote_forward", p->remote_forward);
    p->agent_forward = http_body_bool(b, "agent_forward", p->agent_forward);
    p->x11 = http_body_bool(b, "x11", p->x11);
    p->record_input = http_body_bool(b, "record_input", p->record_input);
    p->max_session_minutes =
        (int)http_body_int(b, "max_session_minutes", p->max_session_minutes);
    p->idle_timeout_minutes =
        (int)http_body_int(b, "idle_timeout_minutes", p->idle_timeout_minutes);
    return true;
}

int http_h_profiles_list(struct http_req *req)
{
    struct store_profile *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_profile_list(req->h->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "profile", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, http_profile_json(&list[i]));
    }
    store_list_free(list);
    return http_list(req, arr);
}

int http_h_profiles_add(struct http_req *req)
{
    struct store_profile p;
    int r;

    memset(&p, 0, sizeof(p));
    /* as `profile add`: sessions on, forwardings off unless asked */
    p.shell = p.exec = p.sftp = p.scp = true;
    http_target(req, http_body_str(req->body, "name"));
    if (!http_profile_apply(req, &p)) {
        return 0;
    }
    if ((r = store_profile_add(req->h->store, &p)) != ERR_OK) {
        return http_store_error(req, r, "profile", p.name);
    }
    return http_ok(req, 201, http_profile_json(&p), NULL);
}

int http_h_profiles_get(struct http_req *req)
{
    struct store_profile p;
    int r = store_profile_get(req->h->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_store_error(req, r, "profile", req->params[0]);
    }
    return http_ok(req, 200, http_profile_json(&p), NULL);
}

int http_h_profiles_patch(struct http_req *req)
{
    struct store_profile p;
    int r = store_profile_get(req->h->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_store_error(req, r, "profile", req->params[0]);
    }
    http_target(req, p.name);
    if (!http_profile_apply(req, &p)) {
        return 0;
    }
    if ((r = store_profile_update(req->h->store, &p)) != ERR_OK) {
        return http_store_error(req, r, "profile", p.name);
    }
    return http_ok(req, 200, http_profile_json(&p), NULL);
}

int http_h_profiles_delete(struct http_req *req)
{
    struct store_profile p;
    int r = store_profile_get(req->h->store, req->params[0], &p);

    if (r == ERR_OK) {
        http_target(req, p.name);
        r = store_profile_delete(req->h->store, p.id);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, "profile", req->params[0]);
    }
    return http_ok(req, 204, NULL, NULL);
}

int http_h_profiles_assign(struct http_req *req)
{
    char uid[STORE_ID_MAX + 1], gid[STORE_ID_MAX + 1];
    struct store_profile p;
    int r = store_profile_get(req->h->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_store_error(req, r, "profile", req->params[0]);
    }
    if (http_grantee(req, uid, gid) != 0 || req->errors != NULL) {
        return 0;
    }
    http_target(req, p.name);
    r = store_profile_assign(req->h->store, p.id, uid[0] ? uid : NULL,
                             gid[0] ? gid : NULL);
    if (r != ERR_OK) {
        return http_store_error(req, r, "assignment of", p.name);
    }
    return http_ok(req, 201,
                   json_pack("{s:s, s:s, s:s}", "profile", p.name,
                             "grantee_type", uid[0] ? "user" : "group",
                             "grantee", req->audit_detail + (uid[0] ? 5 : 6)),
                   NULL);
}

int http_h_profiles_unassign(struct http_req *req)
{
    struct store_profile p;
    struct store_user u;
    struct store_group g;
    bool user = strcmp(req->params[1], "user") == 0;
    int r = store_profile_get(req->h->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_store_error(req, r, "profile", req->params[0]);
    }
    if (!user && strcmp(req->params[1], "group") != 0) {
        return http_error(req, 404, "not_found", "Not found",
                          "assignments are under .../assignments/user/NAME "
                          "or .../assignments/group/NAME");
    }
    http_target(req, p.name);
    snprintf(req->audit_detail, sizeof(req->audit_detail), "%s=%s",
             req->params[1], req->params[2]);
    if (user) {
        if ((r = store_user_get(req->h->store, req->params[2], &u)) == ERR_OK) {
            r = store_profile_unassign(req->h->store, p.id, u.id, NULL);
        }
    } else if ((r = store_group_get(req->h->store, req->params[2], &g)) ==
               ERR_OK) {
        r = store_profile_unassign(req->h->store, p.id, NULL, g.id);
    }
    if (r != ERR_OK) {
        return http_store_error(req, r, req->params[1], req->params[2]);
    }
    return http_ok(req, 204, NULL, NULL);
}
