/*
 * The one check of a bearer token, for every door that takes one: the
 * REST API (Authorization: Bearer) and the peer-node CONNECT proxy
 * (Proxy-Authorization: Bearer, http_proxy.c).
 *
 * A token passes when its signature and algorithm are accepted, it has
 * not expired, it is still in the store (API tokens: enabled, not past
 * their own expiry, used from an address their filter allows; session
 * tokens: not logged out), and its user exists and is enabled. The
 * caller decides what the user's roles allow.
 */
#ifndef PORTCULLIS_HTTP_BEARER_H
#define PORTCULLIS_HTTP_BEARER_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/jwt.h"
#include "store/access.h"
#include "store/store.h"

enum http_bearer_result {
    HTTP_BEARER_OK,
    HTTP_BEARER_UNAUTHORIZED, /* 401 / 407: no such valid token */
    HTTP_BEARER_FORBIDDEN,    /* 403: valid, but not from here */
    HTTP_BEARER_ERROR,        /* 500: the store failed */
};

struct http_bearer {
    struct jwt_claims claims;
    char jti_hash[JWT_HASH_LEN + 1];
    struct store_user user;
    struct store_api_token token; /* API tokens only */
    unsigned root_roles;          /* SITE_ROLE_BIT()s on the root site */
};

/*
 * Checks token (the text after "Bearer "), used from client_ip. path is
 * what an API token's path filter is matched against, or NULL where no
 * path applies: then a token restricted to paths is refused (it was made
 * for the API). why gets the reason, for the client, on any result but
 * OK; it never contains the token.
 */
enum http_bearer_result
http_bearer_check(struct store *st, const struct jwt_key *key,
                  const char *token, const char *client_ip, const char *path,
                  struct http_bearer *out, char *why, size_t whylen);

#endif
