/*
 * JSON Web Tokens of the REST API: session tokens (from POST /login) and
 * API tokens (from `portcullis token add` or POST /api-tokens). Both are
 * HS256 JWTs signed with one 32-byte server secret kept in the data
 * directory ([http] jwt_secret, mode 0600, made on first use).
 *
 * Claims: iss "portcullis", sub (user ID), jti (32 random bytes,
 * base64url), iat, exp, kind ("session" or "api") and, for API tokens,
 * tid (the token's public ID). The store keeps only jwt_hash(jti).
 *
 * Verification is deliberately narrower than libjwt's: the header must be
 * exactly {"alg":"HS256","typ":"JWT"} (alg "none" and every other
 * algorithm are refused before anything else is looked at), and the
 * signature is checked here in constant time (libsodium) before libjwt
 * decodes the claims.
 *
 * Ownership: jwt_key_load() returns a key in guarded memory freed
 * (wiped) with jwt_key_free(). jwt_issue()'s token is a heap
 * string the caller wipes and frees with jwt_token_free().
 */
#ifndef PORTCULLIS_HTTP_JWT_H
#define PORTCULLIS_HTTP_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cidr.h"
#include "store/store.h"

#define JWT_KEY_LEN 32
#define JWT_MAX 2048   /* longest token accepted */
#define JWT_JTI_MAX 64 /* base64url of 32 bytes is 43 characters */
#define JWT_HASH_LEN 64

enum jwt_kind { JWT_SESSION = 1, JWT_API = 2 };

struct jwt_key;

struct jwt_claims {
    int kind;                   /* HTTP_JWT_* */
    char sub[STORE_ID_MAX + 1]; /* the user's ID */
    char tid[STORE_ID_MAX + 1]; /* API token ID; "" for a session */
    char jti[JWT_JTI_MAX + 1];
    int64_t iat, exp;
};

/* Loads the key file; when create is set and it does not exist, makes it
 * (32 random bytes, O_EXCL, mode 0600). Refuses a file any group or other
 * may access, or one that is not 32 bytes. */
int jwt_key_load(const char *path, bool create, struct jwt_key **out);
void jwt_key_free(struct jwt_key *k);

/* Fills c->jti with a fresh random ID and signs; c->kind, sub, iat, exp
 * (and tid for API tokens) are set by the caller. */
int jwt_issue(const struct jwt_key *k, struct jwt_claims *c, char **token);
void jwt_token_free(char *token);
/* ERR_OK with the claims; ERR_INVALID malformed, ERR_AUTH a bad
 * signature or a refused algorithm, ERR_TIMEOUT expired at now. */
int jwt_verify(const struct jwt_key *k, const char *token, int64_t now,
               struct jwt_claims *out);
/*
 * Node credentials (issue 18): a node of a cluster asks another node's
 * CONNECT proxy for a stream through an agent that node holds with
 *
 *   pcnode1.<node ID>.<unix time>.<HMAC-SHA256, 64 hex digits>
 *
 * keyed by a key derived from this key file's secret, which every node of
 * a cluster shares (docs/operations.md "Cluster"). A token is good for
 * JWT_NODE_TOKEN_SKEW seconds either side of its time. It names the asking
 * node; it grants nothing but agent streams on the proxy.
 */
#define JWT_NODE_TOKEN_MAX 128
#define JWT_NODE_TOKEN_SKEW 60
#define JWT_NODE_ID_LEN 32
int jwt_node_token(const struct jwt_key *k, const char *node_id, int64_t now,
                   char *out, size_t outlen);
/* true if tok has the node token's shape (no check of its MAC). */
bool jwt_is_node_token(const char *tok);
/* ERR_OK with the node ID in node_id[JWT_NODE_ID_LEN + 1]; ERR_INVALID
 * malformed, ERR_AUTH a wrong MAC, ERR_TIMEOUT outside the window. */
int jwt_node_token_check(const struct jwt_key *k, const char *tok, int64_t now,
                         char *node_id);

/* The hex BLAKE2b-256 of a jti, into out[JWT_HASH_LEN + 1]. */
void jwt_hash(const char *jti, char *out);

/* "30d", "12h", "15m", "3600s" or "3600" into seconds (1 s .. 10 years). */
int http_parse_duration(const char *s, int64_t *secs);
/* true if s is a comma-separated list of absolute path prefixes. */
bool http_path_list_valid(const char *s);
/* true if path starts with one of the prefixes (at a '/' boundary or
 * the prefix's own end). */
bool http_path_list_match(const char *list, const char *path);
/* Whether a path-prefix list "inner" allows no more than "outer" does:
 * every prefix of inner starts (at a '/' boundary) with one of outer's.
 * Empty lists as in cidr_list_within (common/cidr.h). */
bool http_path_list_within(const char *inner, const char *outer);

/*
 * The CIDR lists moved to common/cidr.h. These old names remain only for
 * callers that other work is rewriting (http_res_auth.c, http_routes.c,
 * cli_token.c); new code calls cidr_*, and the last of these goes with
 * the last of those callers.
 */
static inline bool http_cidr_list_valid(const char *s)
{
    return cidr_list_valid(s);
}
static inline bool http_cidr_list_match(const char *list, const char *ip)
{
    return cidr_list_match(list, ip);
}
static inline bool http_cidr_list_within(const char *inner, const char *outer)
{
    return cidr_list_within(inner, outer);
}

#endif
