/*
 * Who may manage Portcullis: site roles, API tokens and revoked session
 * tokens (the REST API's side of the store; SPEC §4 and §9).
 *
 * Site roles are granted to a user or a group on a site and inherited by
 * its sub-sites. They are not ordered: a user holds a set of them, given
 * as a bit mask (SITE_ROLE_BIT(role)) of every role granted on the site or
 * an ancestor, to the user or to one of their groups.
 *
 * API tokens are JWTs; the store keeps only a hash of each token's ID
 * (its "jti" claim), never the token, so a copy of the database cannot be
 * used to call the API. Revoked session tokens are kept (as jti hashes)
 * until they would have expired anyway.
 *
 * Every function is one transaction, like those of store.h. Lists are heap
 * arrays freed with store_list_free().
 */
#ifndef PORTCULLIS_ACCESS_H
#define PORTCULLIS_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

enum site_role {
    SITE_ROLE_NONE = 0,
    SITE_ROLE_USER = 1,
    SITE_ROLE_SERVICE = 2,
    SITE_ROLE_CONFIG = 3, /* configuration-manager */
    SITE_ROLE_ADMIN = 4,
};
#define SITE_ROLE_BIT(r) (1u << (r))

/* "administrator", "configuration-manager", "service", "user"; "none". */
const char *site_role_str(int role);
int site_role_parse(const char *s); /* SITE_ROLE_* or -1 */

#define ACCESS_HASH_MAX 64     /* hex of a 32-byte hash */
#define ACCESS_DESC_MAX 256    /* an API token's description */
#define ACCESS_FILTER_MAX 1024 /* comma-separated CIDRs or path prefixes */

struct store_site_role {
    char id[STORE_ID_MAX + 1];
    char site_id[STORE_ID_MAX + 1];
    char user_id[STORE_ID_MAX + 1];  /* "" if a group's */
    char group_id[STORE_ID_MAX + 1]; /* "" if a user's */
    int role;                        /* SITE_ROLE_* */
    /* filled by list and add: */
    char site_path[STORE_PATH_MAX + 1];
    char grantee_name[STORE_NAME_MAX + 1];
};

struct store_api_token {
    char id[STORE_ID_MAX + 1]; /* public ID; not the secret */
    char user_id[STORE_ID_MAX + 1];
    char user_name[STORE_NAME_MAX + 1]; /* filled by getters */
    char jti_hash[ACCESS_HASH_MAX + 1]; /* hex hash of the token's jti */
    char description[ACCESS_DESC_MAX + 1];
    char filter_cidrs[ACCESS_FILTER_MAX + 1]; /* "" = any source */
    char filter_paths[ACCESS_FILTER_MAX + 1]; /* "" = any path */
    bool enabled;
    int64_t expires_at;
    int64_t created_at;
};

/* --- site roles --- */
/* r->id is generated; site_id, role and exactly one grantee are needed.
 * ERR_EXISTS if the grantee already holds that role on that site. */
int store_site_role_add(struct store *st, struct store_site_role *r);
int store_site_role_list(struct store *st, struct store_site_role **list,
                         size_t *n);
int store_site_role_get(struct store *st, const char *id,
                        struct store_site_role *out);
int store_site_role_delete(struct store *st, const char *id);
/* Every role the user holds on the site (or /root when site_id is NULL),
 * directly or through a group, granted there or on an ancestor site. */
int store_site_role_mask(struct store *st, const char *user_id,
                         const char *site_id, unsigned *mask);
/* Roles the user holds anywhere (the union over all sites). */
int store_site_role_mask_any(struct store *st, const char *user_id,
                             unsigned *mask);

/* --- API tokens --- */
/* t->id must be a UUID (made by the caller, as it goes into the token);
 * user_id, jti_hash, expires_at are needed. */
int store_api_token_add(struct store *st, const struct store_api_token *t);
int store_api_token_get(struct store *st, const char *id,
                        struct store_api_token *out);
int store_api_token_find(struct store *st, const char *jti_hash,
                         struct store_api_token *out);
/* user_id NULL lists every user's tokens. Newest first. */
int store_api_token_list(struct store *st, const char *user_id,
                         struct store_api_token **list, size_t *n);
/* Replaces description, filters and the enabled flag of token t->id. */
int store_api_token_update(struct store *st, const struct store_api_token *t);
int store_api_token_delete(struct store *st, const char *id);

/* --- revoked session tokens --- */
/* Remembers a revoked jti hash until expires_at; forgets expired ones. */
int store_jwt_revoke(struct store *st, const char *jti_hash,
                     int64_t expires_at);
int store_jwt_is_revoked(struct store *st, const char *jti_hash, bool *revoked);

#endif
