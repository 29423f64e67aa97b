/*
 * API tokens (issue 5): making one, changing and deleting it, its JSON,
 * for `portcullis token` and /api/v1/api-tokens alike.
 *
 * A token is a JWT whose jti only the holder knows; the store keeps its
 * hash with the owner, expiry, enabled flag, description and filter.
 * The API's own rule that a token never makes or widens a token beyond
 * itself needs the calling token and stays with the API (http_res_auth.c).
 * The JWT code is auth/jwt.h.
 */
#include "admin/admin.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "common/util.h"
#include "auth/jwt.h"

static json_t *admin_token_expired(const void *obj)
{
    const struct store_api_token *t = obj;

    return json_boolean(t->expires_at <= util_now());
}

static json_t *admin_token_filter(const void *obj)
{
    const struct store_api_token *t = obj;
    const struct admin_field *fc = admin_field_find(admin_token_fields,
                                                    "filter_cidrs"),
                             *fp = admin_field_find(admin_token_fields,
                                                    "filter_paths");

    return json_pack("{s:o, s:o}", "cidrs", admin_field_json(fc, t), "paths",
                     admin_field_json(fp, t));
}

/* The table's ENABLED: no, expired or yes. */
static json_t *admin_token_enabled_text(const void *obj)
{
    const struct store_api_token *t = obj;

    return json_string(!t->enabled                   ? "no"
                       : t->expires_at <= util_now() ? "expired"
                                                     : "yes");
}

/* The table's FILTER: the CIDRs and the paths, a space between. */
static json_t *admin_token_filter_text(const void *obj)
{
    const struct store_api_token *t = obj;

    return json_pack("s++", t->filter_cidrs,
                     t->filter_cidrs[0] && t->filter_paths[0] ? " " : "",
                     t->filter_paths);
}

#define TK(j, t, m, ...)                                                       \
    ADMIN_FIELD(struct store_api_token, j, t, m, __VA_ARGS__)

const struct admin_field admin_token_fields[] = {
    TK("id", AF_STR, id, .flags = AF_READONLY, .col = "ID"),
    TK("user", AF_STR, user_name, .flags = AF_READONLY, .cli = "--user",
       .col = "USER"),
    TK("user_id", AF_STR, user_id, .flags = AF_READONLY),
    TK("description", AF_STR, description, .flags = AF_EMPTY,
       .cli = "--description"),
    TK("enabled", AF_BOOL, enabled, .flags = AF_NOCREATE,
       .cli = "enable/disable"),
    ADMIN_FIELD_FN("enabled_text", admin_token_enabled_text, .flags = AF_NOJSON,
                   .col = "ENABLED"),
    ADMIN_FIELD_FN("expired", admin_token_expired),
    TK("expires_at", AF_TIME, expires_at, .flags = AF_READONLY,
       .cli = "--expires", .col = "EXPIRES"),
    TK("created_at", AF_TIME, created_at, .flags = AF_READONLY,
       .col = "CREATED"),
    /* in the JSON as filter {cidrs, paths}; in an API body as lists */
    TK("filter_cidrs", AF_CSV, filter_cidrs, .flags = AF_NOJSON,
       .cli = "--filter-cidr", .hi = 32),
    TK("filter_paths", AF_CSV, filter_paths, .flags = AF_NOJSON,
       .cli = "--filter-path", .hi = 32),
    ADMIN_FIELD_FN("filter", admin_token_filter),
    ADMIN_FIELD_FN("filter_text", admin_token_filter_text, .flags = AF_NOJSON,
                   .col = "FILTER"),
    TK("description_col", AF_STR, description, .flags = AF_READONLY | AF_NOJSON,
       .col = "DESCRIPTION"),
    ADMIN_FIELD_END,
};

json_t *admin_token_json(const struct store_api_token *t)
{
    return admin_json_encode(admin_token_fields, t);
}

/* The checks on the values a token's row may hold. */
static int admin_token_values(const char *desc, const char *cidrs,
                              const char *paths, struct admin_err *e)
{
    if (desc != NULL && strlen(desc) > ACCESS_DESC_MAX) {
        return admin_fail(e, ERR_INVALID,
                          "description is limited to %d characters",
                          ACCESS_DESC_MAX);
    }
    if (cidrs != NULL && cidrs[0] != '\0' &&
        (strlen(cidrs) > ACCESS_FILTER_MAX || !http_cidr_list_valid(cidrs))) {
        return admin_fail(e, ERR_INVALID,
                          "the source filter needs addresses or CIDRs, "
                          "separated by commas");
    }
    if (paths != NULL && paths[0] != '\0' &&
        (strlen(paths) > ACCESS_FILTER_MAX || !http_path_list_valid(paths))) {
        return admin_fail(e, ERR_INVALID,
                          "the path filter needs paths starting with '/', "
                          "separated by commas");
    }
    return ERR_OK;
}

int admin_token_check(const struct admin_token_req *req, int64_t *lifetime,
                      struct admin_err *e)
{
    const char *exp =
        req->expires != NULL ? req->expires : ADMIN_TOKEN_DEFAULT_LIFETIME;

    *lifetime = req->lifetime;
    if (*lifetime <= 0 && http_parse_duration(exp, lifetime) != ERR_OK) {
        return admin_fail(e, ERR_INVALID,
                          "the expiry needs a duration like 30d, 12h, 15m "
                          "or 3600s (at most 10 years)");
    }
    return admin_token_values(req->description, req->cidrs, req->paths, e);
}

int admin_token_key_load(const char *path, struct jwt_key **out,
                         struct admin_err *e)
{
    int r = jwt_key_load(path, true, out);

    if (r != ERR_OK) {
        return admin_fail(e, r, "cannot load the API's JWT secret %s: %s", path,
                          err_str(r));
    }
    return ERR_OK;
}

void admin_token_key_free(struct jwt_key *k)
{
    jwt_key_free(k);
}

void admin_token_free(char *token)
{
    jwt_token_free(token);
}

int admin_token_add(const struct admin_ctx *c, const struct jwt_key *key,
                    const struct admin_token_req *req,
                    struct store_api_token *out, char **token,
                    struct admin_err *e)
{
    struct jwt_claims cl;
    struct store_user u;
    char detail[STORE_NAME_MAX + 8];
    int64_t lifetime, now = util_now();
    int r;

    *token = NULL;
    memset(out, 0, sizeof(*out));
    if ((r = admin_token_check(req, &lifetime, e)) != ERR_OK) {
        return r;
    }
    if (req->user == NULL) {
        return admin_fail(e, ERR_INVALID, "a token needs a user");
    }
    if ((r = store_user_get(c->st, req->user, &u)) != ERR_OK) {
        return r == ERR_NOT_FOUND
                   ? admin_fail(e, r, "user '%.200s' not found", req->user)
                   : admin_fail(e, r, "user '%.200s': %s", req->user,
                                err_str(r));
    }
    util_uuid4(out->id);
    snprintf(out->user_id, sizeof(out->user_id), "%s", u.id);
    sodium_memzero(&u, sizeof(u));
    snprintf(out->description, sizeof(out->description), "%s",
             req->description != NULL ? req->description : "");
    snprintf(out->filter_cidrs, sizeof(out->filter_cidrs), "%s",
             req->cidrs != NULL ? req->cidrs : "");
    snprintf(out->filter_paths, sizeof(out->filter_paths), "%s",
             req->paths != NULL ? req->paths : "");
    out->enabled = true;
    out->created_at = now;
    out->expires_at = now + lifetime;
    memset(&cl, 0, sizeof(cl));
    cl.kind = JWT_API;
    snprintf(cl.sub, sizeof(cl.sub), "%s", out->user_id);
    snprintf(cl.tid, sizeof(cl.tid), "%s", out->id);
    cl.iat = now;
    cl.exp = out->expires_at;
    if ((r = jwt_issue(key, &cl, token)) != ERR_OK) {
        sodium_memzero(&cl, sizeof(cl));
        return admin_fail(e, r, "cannot sign the token: %s", err_str(r));
    }
    jwt_hash(cl.jti, out->jti_hash);
    sodium_memzero(&cl, sizeof(cl));
    if ((r = store_api_token_add(c->st, out)) != ERR_OK ||
        (r = store_api_token_get(c->st, out->id, out)) != ERR_OK) {
        jwt_token_free(*token);
        *token = NULL;
        return admin_fail(e, r, "cannot create the token: %s", err_str(r));
    }
    snprintf(detail, sizeof(detail), "user=%s", out->user_name);
    return admin_audit(c, "token.add", out->id, detail, e);
}

int admin_token_update(const struct admin_ctx *c, struct store_api_token *t,
                       const char *action, struct admin_err *e)
{
    int r;

    if ((r = admin_token_values(t->description, t->filter_cidrs,
                                t->filter_paths, e)) != ERR_OK) {
        return r;
    }
    if ((r = store_api_token_update(c->st, t)) != ERR_OK) {
        return r == ERR_NOT_FOUND
                   ? admin_fail(e, r, "token '%.200s' not found", t->id)
                   : admin_fail(e, r, "token '%.200s': %s", t->id, err_str(r));
    }
    return admin_audit(c, action, t->id,
                       t->enabled ? "enabled=true" : "enabled=false", e);
}

int admin_token_delete(const struct admin_ctx *c, const char *id,
                       struct admin_err *e)
{
    int r = store_api_token_delete(c->st, id);

    if (r != ERR_OK) {
        return r == ERR_NOT_FOUND
                   ? admin_fail(e, r, "token '%.200s' not found", id)
                   : admin_fail(e, r, "token '%.200s': %s", id, err_str(r));
    }
    return admin_audit(c, "token.delete", id, NULL, e);
}
