/*
 * API tokens and revoked session tokens (access.h). The store keeps only a
 * hash of each token's ID (its "jti"), never the token. Written against
 * store_internal.h and db.h only, like every noun file.
 */
#include "store/access.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

/* --- API tokens ---------------------------------------------------------
 */

#define TOKEN_SELECT                                                           \
    "SELECT t.id, t.user_id, COALESCE(u.name, ''), t.jti_hash,"                \
    " t.description, t.filter_cidrs, t.filter_paths, t.enabled,"               \
    " t.expires_at, t.created_at"                                              \
    " FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id"

static int token_fill(struct db_stmt *s, void *item)
{
    struct store_api_token *t = item;

    store_col_text(s, 0, t->id, sizeof(t->id));
    store_col_text(s, 1, t->user_id, sizeof(t->user_id));
    store_col_text(s, 2, t->user_name, sizeof(t->user_name));
    store_col_text(s, 3, t->jti_hash, sizeof(t->jti_hash));
    store_col_text(s, 4, t->description, sizeof(t->description));
    store_col_text(s, 5, t->filter_cidrs, sizeof(t->filter_cidrs));
    store_col_text(s, 6, t->filter_paths, sizeof(t->filter_paths));
    t->enabled = db_col_int(s, 7) != 0;
    t->expires_at = db_col_int64(s, 8);
    t->created_at = db_col_int64(s, 9);
    return ERR_OK;
}

static int token_check(const struct store_api_token *t)
{
    if (store_check_text(t->description, ACCESS_DESC_MAX, false) != ERR_OK ||
        store_check_text(t->filter_cidrs, ACCESS_FILTER_MAX, false) != ERR_OK ||
        store_check_text(t->filter_paths, ACCESS_FILTER_MAX, false) != ERR_OK) {
        return ERR_INVALID;
    }
    return ERR_OK;
}

int store_api_token_add(struct store *st, const struct store_api_token *t)
{
    char id[STORE_ID_MAX + 1], uid[STORE_ID_MAX + 1];
    int r;

    if (t == NULL || !store_id_norm(t->id, id) ||
        !store_id_norm(t->user_id, uid) || t->jti_hash[0] == '\0' ||
        t->expires_at <= 0 || token_check(t) != ERR_OK) {
        return ERR_INVALID;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "api token add",
                  "INSERT INTO api_tokens (id, user_id, jti_hash, description,"
                  " filter_cidrs, filter_paths, enabled, expires_at,"
                  " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                  NULL, "ttttttiii", id, uid, t->jti_hash, t->description,
                  t->filter_cidrs, t->filter_paths,
                  (int64_t)(t->enabled ? 1 : 0), t->expires_at,
                  (int64_t)(t->created_at != 0 ? t->created_at : util_now()));
    return store_tx_end(st, r);
}

static int token_get_by(struct store *st, const char *sql, const char *key,
                        struct store_api_token *out)
{
    char k[ACCESS_HASH_MAX + 1];
    int r;

    /* key may point into out */
    if (strlen(key) > ACCESS_HASH_MAX) {
        memset(out, 0, sizeof(*out));
        return ERR_NOT_FOUND;
    }
    memcpy(k, key, strlen(key) + 1);
    memset(out, 0, sizeof(*out));
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_query_one(st, "api token get", sql, k, token_fill, out);
    return store_tx_end(st, r);
}

int store_api_token_get(struct store *st, const char *id,
                        struct store_api_token *out)
{
    char nid[STORE_ID_MAX + 1];

    /* id may point into out */
    if (id == NULL || !store_id_norm(id, nid)) {
        memset(out, 0, sizeof(*out));
        return ERR_NOT_FOUND;
    }
    return token_get_by(st, TOKEN_SELECT " WHERE t.id = $1", nid, out);
}

int store_api_token_find(struct store *st, const char *jti_hash,
                         struct store_api_token *out)
{
    if (jti_hash == NULL || jti_hash[0] == '\0') {
        memset(out, 0, sizeof(*out));
        return ERR_NOT_FOUND;
    }
    return token_get_by(st, TOKEN_SELECT " WHERE t.jti_hash = $1", jti_hash,
                        out);
}

int store_api_token_list(struct store *st, const char *user_id,
                         struct store_api_token **list, size_t *n)
{
    char uid[STORE_ID_MAX + 1];
    void *items = NULL;
    int r;

    *list = NULL;
    *n = 0;
    if (user_id != NULL && !store_id_norm(user_id, uid)) {
        return ERR_OK;
    }
    r = store_list_query(st, "api token list",
                         TOKEN_SELECT " WHERE $1 IS NULL OR t.user_id = $1"
                                      " ORDER BY t.created_at DESC, t.id",
                         sizeof(struct store_api_token), token_fill, NULL,
                         &items, n, "t", user_id != NULL ? uid : NULL);
    *list = items;
    return r;
}

int store_api_token_update(struct store *st, const struct store_api_token *t)
{
    char id[STORE_ID_MAX + 1];
    int r, changes = 0;

    if (t == NULL || !store_id_norm(t->id, id)) {
        return ERR_NOT_FOUND;
    }
    if (token_check(t) != ERR_OK) {
        return ERR_INVALID;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "api token update",
                  "UPDATE api_tokens SET description = $1, filter_cidrs = $2,"
                  " filter_paths = $3, enabled = $4 WHERE id = $5",
                  &changes, "tttit", t->description, t->filter_cidrs,
                  t->filter_paths, (int64_t)(t->enabled ? 1 : 0), id);
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
    return store_tx_end(st, r);
}

int store_api_token_delete(struct store *st, const char *id)
{
    return store_delete_id(st, "api token delete",
                           "DELETE FROM api_tokens WHERE id = $1", id);
}

/* --- revoked session tokens -------------------------------------------- */

int store_jwt_revoke(struct store *st, const char *jti_hash, int64_t expires_at)
{
    int64_t now = util_now();
    int r;

    if (jti_hash == NULL || jti_hash[0] == '\0' ||
        strlen(jti_hash) > ACCESS_HASH_MAX) {
        return ERR_INVALID;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "jwt revoke prune",
                  "DELETE FROM revoked_jwts WHERE expires_at < $1", NULL, "i",
                  now);
    /* Revoked twice is revoked: the conflict is part of the statement,
     * not a failed one caught afterwards, because PostgreSQL aborts the
     * whole transaction on a failed statement. */
    if (r == ERR_OK) {
        r = store_run(st, "jwt revoke",
                      "INSERT INTO revoked_jwts (jti_hash, expires_at)"
                      " VALUES ($1, $2) ON CONFLICT (jti_hash) DO NOTHING",
                      NULL, "ti", jti_hash, expires_at);
    }
    return store_tx_end(st, r);
}

int store_jwt_is_revoked(struct store *st, const char *jti_hash, bool *revoked)
{
    int64_t count = 0;
    int r;

    *revoked = false;
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_query(st, "jwt revoked",
                    "SELECT COUNT(*) FROM revoked_jwts WHERE jti_hash = $1",
                    store_int_row, &count, NULL, "t", jti_hash);
    r = store_tx_end(st, r);
    if (r == ERR_OK) {
        *revoked = count > 0;
    }
    return r;
}
