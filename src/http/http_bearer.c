/*
 * Bearer token checks; see http_bearer.h.
 */
#include "http/http_bearer.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

static enum http_bearer_result http_bearer_no(enum http_bearer_result res,
                                              char *why, size_t whylen,
                                              const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum http_bearer_result http_bearer_no(enum http_bearer_result res,
                                              char *why, size_t whylen,
                                              const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return res;
}

static enum http_bearer_result
http_bearer_api_token(struct store *st, const char *client_ip, const char *path,
                      struct http_bearer *b, char *why, size_t whylen)
{
    struct store_api_token *tok = &b->token;
    int r;

    r = store_api_token_find(st, b->jti_hash, tok);
    if (r == ERR_NOT_FOUND ||
        (r == ERR_OK && (strcmp(tok->id, b->claims.tid) != 0 ||
                         strcmp(tok->user_id, b->claims.sub) != 0))) {
        return http_bearer_no(HTTP_BEARER_UNAUTHORIZED, why, whylen,
                              "the API token was deleted");
    }
    if (r != ERR_OK) {
        return http_bearer_no(HTTP_BEARER_ERROR, why, whylen,
                              "cannot check the token: %s", err_str(r));
    }
    if (!tok->enabled) {
        return http_bearer_no(HTTP_BEARER_UNAUTHORIZED, why, whylen,
                              "the API token is disabled");
    }
    if (tok->expires_at <= util_now()) {
        return http_bearer_no(HTTP_BEARER_UNAUTHORIZED, why, whylen,
                              "the API token has expired");
    }
    if (tok->filter_cidrs[0] != '\0' &&
        !http_cidr_list_match(tok->filter_cidrs, client_ip)) {
        return http_bearer_no(HTTP_BEARER_FORBIDDEN, why, whylen,
                              "the API token may not be used from %s",
                              client_ip);
    }
    if (tok->filter_paths[0] != '\0' && path == NULL) {
        return http_bearer_no(HTTP_BEARER_FORBIDDEN, why, whylen,
                              "the API token is limited to API paths");
    }
    if (tok->filter_paths[0] != '\0' &&
        !http_path_list_match(tok->filter_paths, path)) {
        return http_bearer_no(HTTP_BEARER_FORBIDDEN, why, whylen,
                              "the API token may not be used on %.200s", path);
    }
    return HTTP_BEARER_OK;
}

enum http_bearer_result
http_bearer_check(struct store *st, const struct jwt_key *key,
                  const char *token, const char *client_ip, const char *path,
                  struct http_bearer *out, char *why, size_t whylen)
{
    enum http_bearer_result res;
    bool revoked = false;
    int r;

    memset(out, 0, sizeof(*out));
    r = jwt_verify(key, token, util_now(), &out->claims);
    if (r == ERR_TIMEOUT) {
        return http_bearer_no(HTTP_BEARER_UNAUTHORIZED, why, whylen,
                              "the token has expired");
    }
    if (r != ERR_OK) {
        return http_bearer_no(HTTP_BEARER_UNAUTHORIZED, why, whylen, "%s",
                              r == ERR_INVALID
                                  ? "the token is malformed"
                                  : "the token's signature or algorithm is "
                                    "not accepted");
    }
    jwt_hash(out->claims.jti, out->jti_hash);
    if (out->claims.kind == JWT_API) {
        res = http_bearer_api_token(st, client_ip, path, out, why, whylen);
        if (res != HTTP_BEARER_OK) {
            return res;
        }
    } else {
        r = store_jwt_is_revoked(st, out->jti_hash, &revoked);
        if (r != ERR_OK) {
            return http_bearer_no(HTTP_BEARER_ERROR, why, whylen,
                                  "cannot check the token: %s", err_str(r));
        }
        if (revoked) {
            return http_bearer_no(HTTP_BEARER_UNAUTHORIZED, why, whylen,
                                  "the session has ended (logged out)");
        }
    }
    r = store_user_get(st, out->claims.sub, &out->user);
    if (r == ERR_NOT_FOUND || (r == ERR_OK && out->user.disabled)) {
        return http_bearer_no(HTTP_BEARER_UNAUTHORIZED, why, whylen,
                              "the token's user is deleted or disabled");
    }
    if (r != ERR_OK) {
        return http_bearer_no(HTTP_BEARER_ERROR, why, whylen,
                              "cannot read the user: %s", err_str(r));
    }
    if ((r = store_site_role_mask(st, out->user.id, NULL, &out->root_roles)) !=
        ERR_OK) {
        return http_bearer_no(HTTP_BEARER_ERROR, why, whylen,
                              "cannot read site roles: %s", err_str(r));
    }
    return HTTP_BEARER_OK;
}
