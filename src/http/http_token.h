/*
 * API tokens: making one (the REST API's POST /api-tokens and the CLI's
 * `portcullis token add` share this) and describing one as JSON. A token
 * is a JWT (http_jwt.h) whose jti only the holder knows; the store keeps
 * its hash with the owner, expiry, enabled flag, description and filter.
 *
 * Ownership: *token is shown once and then wiped and freed by the caller
 * with http_jwt_token_free(); the JSON is a new reference.
 */
#ifndef PORTCULLIS_HTTP_TOKEN_H
#define PORTCULLIS_HTTP_TOKEN_H

#include <stdint.h>

#include <jansson.h>

#include "http/http_jwt.h"
#include "store/access.h"
#include "store/store.h"

/* cidrs and paths: comma-separated lists, NULL or "" for none (checked:
 * ERR_INVALID if malformed). lifetime in seconds. */
int http_token_create(struct store *st, const struct http_jwt_key *key,
                      const char *user_id, int64_t lifetime,
                      const char *description, const char *cidrs,
                      const char *paths, struct store_api_token *out,
                      char **token);
/* id, user, user_id, description, enabled, expires_at, expired, created_at,
 * filter {cidrs: [...], paths: [...]}; never the token or its hash. */
json_t *http_token_json(const struct store_api_token *t, int64_t now);

#endif
