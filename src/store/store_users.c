/*
 * Users, their public keys and their TOTP state (store.h).
 *
 * A user is found by name or by ID (store_internal.h: names shaped like a
 * UUID are refused, so the two never collide). Secrets arrive hashed or
 * sealed; lists of users are wiped when freed all the same. The TOTP
 * replay guard is one conditional UPDATE, so two sessions racing with one
 * code cannot both win on any database.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

/* IDs per query of store_users_active() (store_sql's parameter limit). */
#define STORE_USERS_ACTIVE_CHUNK STORE_SQL_PARAMS

/* --- users ---------------------------------------------------------------- */

int store_user_exists(struct store *st, const char *id)
{
    return store_exists(st, "user", "SELECT 1 FROM users WHERE id = $1", id);
}

void store_user_list_release(void *items, size_t n)
{
    store_user_list_free(items, n);
}

static void list_release_keys(void *items, size_t n)
{
    store_user_key_list_free(items, n);
}

int store_user_row(struct db_stmt *s, void *item)
{
    struct store_user *u = item;
    size_t seed_len = 0;
    const void *seed = db_col_blob(s, 5, &seed_len);

    store_col_text(s, 0, u->id, sizeof(u->id));
    store_col_text(s, 1, u->name, sizeof(u->name));
    store_col_text(s, 2, u->password_hash, sizeof(u->password_hash));
    u->disabled = db_col_int(s, 3) != 0;
    u->totp_enabled = db_col_int(s, 4) != 0;
    if (seed_len > sizeof(u->totp_sealed)) {
        log_error("store: user %s: sealed TOTP seed too long", u->id);
        return ERR_STORE;
    }
    if (seed != NULL && seed_len > 0) {
        memcpy(u->totp_sealed, seed, seed_len);
        u->totp_sealed_len = seed_len;
    }
    u->totp_last_step = db_col_int64(s, 6);
    u->created_at = db_col_int64(s, 7);
    store_col_text(s, 8, u->display_name, sizeof(u->display_name));
    store_col_text(s, 9, u->mail, sizeof(u->mail));
    return ERR_OK;
}

/* Finds a user by ID or name into out (cleared on failure). */
int store_user_add(struct store *st, const char *name,
                   const char *password_hash, bool disabled,
                   struct store_user *out)
{
    struct store_user u;
    int r;

    if ((r = store_check_user_name(name)) != ERR_OK ||
        (r = store_check_text(password_hash, STORE_HASH_MAX, false)) !=
            ERR_OK) {
        return r;
    }
    memset(&u, 0, sizeof(u));
    util_uuid4(u.id);
    snprintf(u.name, sizeof(u.name), "%s", name);
    snprintf(u.password_hash, sizeof(u.password_hash), "%s",
             password_hash != NULL ? password_hash : "");
    u.disabled = disabled;
    u.created_at = util_now();
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        goto out;
    }
    r = store_run(st, "user add",
                  "INSERT INTO users (id, name, password_hash, disabled,"
                  " totp_enabled, totp_sealed, totp_last_step, created_at)"
                  " VALUES ($1, $2, $3, $4, 0, NULL, 0, $5)",
                  NULL, "tttii", u.id, u.name, u.password_hash,
                  (int64_t)u.disabled, u.created_at);
    r = store_tx_end(st, r);
    if (r == ERR_OK && out != NULL) {
        *out = u;
    }
out:
    sodium_memzero(&u, sizeof(u));
    return r;
}

int store_user_get(struct store *st, const char *name_or_id,
                   struct store_user *out)
{
    struct store_user u;
    int r;

    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    /* read into u, so out holds a whole user or none; u is wiped (it
     * holds the password hash and the sealed TOTP secret) */
    memset(&u, 0, sizeof(u));
    r = store_get_named(st, "user",
                        "SELECT " STORE_USER_COLS " FROM users u"
                        " WHERE u.id = $1",
                        "SELECT " STORE_USER_COLS " FROM users u"
                        " WHERE u.name = $1",
                        name_or_id, store_user_row, &u);
    if (r == ERR_OK) {
        *out = u;
    }
    sodium_memzero(&u, sizeof(u));
    return r;
}

int store_user_list(struct store *st, struct store_user **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = store_list_query(st, "user list",
                         "SELECT " STORE_USER_COLS
                         " FROM users u ORDER BY u.name",
                         sizeof(struct store_user), store_user_row,
                         store_user_list_release, &items, n, "");
    *list = items;
    return r;
}

void store_user_list_free(struct store_user *list, size_t n)
{
    if (list == NULL) {
        return;
    }
    /* Password hashes and sealed seeds are not plaintext, but no copy of
     * them should linger in freed memory either. */
    sodium_memzero(list, n * sizeof(*list));
    free(list);
}

int store_user_delete(struct store *st, const char *name_or_id)
{
    /* Keys, memberships, grants and profile assignments go by cascade;
     * session rows keep the user's name and ID as text. */
    return store_delete_named(st, "user delete",
                              "DELETE FROM users WHERE id = $1",
                              "DELETE FROM users WHERE name = $1", name_or_id);
}

int store_user_set_password(struct store *st, const char *user_id,
                            const char *password_hash)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = store_idn(user_id, ubuf);
    int r = store_check_text(password_hash, STORE_HASH_MAX, false);

    if (r != ERR_OK) {
        return r;
    }
    if (uid == NULL) {
        return ERR_NOT_FOUND;
    }
    /* The NT hash belongs to the old password: cleared with it. */
    return store_update_one(st, "user password",
                            "UPDATE users SET password_hash = $1,"
                            " nt_sealed = NULL WHERE id = $2",
                            "tt", password_hash != NULL ? password_hash : "",
                            uid);
}

int store_user_rehash(struct store *st, const char *user_id,
                      const char *old_hash, const char *new_hash)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = store_idn(user_id, ubuf);
    int r;

    if ((r = store_check_text(new_hash, STORE_HASH_MAX, false)) != ERR_OK ||
        (r = store_check_text(old_hash, STORE_HASH_MAX, false)) != ERR_OK) {
        return r;
    }
    if (uid == NULL || old_hash[0] == '\0' || new_hash[0] == '\0') {
        return ERR_NOT_FOUND;
    }
    return store_update_one(st, "user password rehash",
                            "UPDATE users SET password_hash = $1"
                            " WHERE id = $2 AND password_hash = $3",
                            "ttt", new_hash, uid, old_hash);
}

struct store_nt_out {
    uint8_t *buf;
    size_t cap, len;
    bool too_long;
};

static int store_nt_row(struct db_stmt *s, void *item)
{
    struct store_nt_out *o = item;
    size_t len = 0;
    const void *b = db_col_blob(s, 0, &len);

    o->len = 0;
    if (b == NULL || len == 0) {
        return ERR_OK;
    }
    if (len > o->cap) {
        o->too_long = true;
        return ERR_OK;
    }
    memcpy(o->buf, b, len);
    o->len = len;
    return ERR_OK;
}

int store_user_nt_get(struct store *st, const char *user_id, uint8_t *sealed,
                      size_t cap, size_t *len)
{
    struct store_nt_out o = {sealed, cap, 0, false};
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = store_idn(user_id, ubuf);
    int r;

    *len = 0;
    if (uid == NULL) {
        return ERR_NOT_FOUND;
    }
    r = store_get_one(st, "user nt hash",
                      "SELECT nt_sealed FROM users WHERE id = $1", uid,
                      store_nt_row, &o);
    if (r == ERR_OK && o.too_long) {
        return ERR_TOO_LONG;
    }
    if (r == ERR_OK) {
        *len = o.len;
    }
    return r;
}

int store_user_nt_set(struct store *st, const char *user_id,
                      const uint8_t *sealed, size_t sealed_len)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = store_idn(user_id, ubuf);

    if (uid == NULL) {
        return ERR_NOT_FOUND;
    }
    if (sealed == NULL || sealed_len == 0) {
        return store_update_one(st, "user nt hash",
                                "UPDATE users SET nt_sealed = NULL"
                                " WHERE id = $1",
                                "t", uid);
    }
    if (sealed_len > STORE_SEALED_SMALL_MAX) {
        return ERR_TOO_LONG;
    }
    return store_update_one(st, "user nt hash",
                            "UPDATE users SET nt_sealed = $1 WHERE id = $2",
                            "bt", sealed, sealed_len, uid);
}

int store_user_set_disabled(struct store *st, const char *user_id,
                            bool disabled)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = store_idn(user_id, ubuf);

    if (uid == NULL) {
        return ERR_NOT_FOUND;
    }
    return store_update_one(st, "user disabled",
                            "UPDATE users SET disabled = $1 WHERE id = $2",
                            "it", (int64_t)disabled, uid);
}

int store_user_set_info(struct store *st, const char *user_id,
                        const char *display_name, const char *mail)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = store_idn(user_id, ubuf);
    int r;

    if (uid == NULL) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_check_text(display_name, STORE_USER_INFO_MAX, false)) !=
            ERR_OK ||
        (r = store_check_text(mail, STORE_USER_INFO_MAX, false)) != ERR_OK) {
        return r;
    }
    return store_update_one(st, "user info",
                            "UPDATE users SET display_name = $1, mail = $2"
                            " WHERE id = $3",
                            "ttt", display_name != NULL ? display_name : "",
                            mail != NULL ? mail : "", uid);
}

int store_user_set_totp(struct store *st, const char *user_id,
                        const uint8_t *sealed, size_t sealed_len)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = store_idn(user_id, ubuf);

    if (uid == NULL) {
        return ERR_NOT_FOUND;
    }
    if (sealed == NULL) {
        return store_update_one(st, "user totp",
                                "UPDATE users SET totp_enabled = 0,"
                                " totp_sealed = NULL, totp_last_step = 0"
                                " WHERE id = $1",
                                "t", uid);
    }
    if (sealed_len == 0) {
        return ERR_INVALID;
    }
    if (sealed_len > STORE_SEALED_SMALL_MAX) {
        return ERR_TOO_LONG;
    }
    return store_update_one(st, "user totp",
                            "UPDATE users SET totp_enabled = 1,"
                            " totp_sealed = $1, totp_last_step = 0"
                            " WHERE id = $2",
                            "bt", sealed, sealed_len, uid);
}

int store_user_totp_use(struct store *st, const char *user_id, int64_t step)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = store_idn(user_id, ubuf);
    int changes = 0, r;

    if (step <= 0) {
        return ERR_INVALID;
    }
    if (uid == NULL) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* One conditional UPDATE: of two sessions racing with the same code,
     * only the first moves the guard and sees a changed row. */
    r = store_run(st, "totp use",
                  "UPDATE users SET totp_last_step = $1"
                  " WHERE id = $2 AND totp_last_step < $1",
                  &changes, "it", step, uid);
    if (r == ERR_OK && changes != 1) {
        r = store_user_exists(st, uid);
        if (r == ERR_OK) {
            r = ERR_REPLAY;
        }
    }
    return store_tx_end(st, r);
}

/* --- user public keys ----------------------------------------------------- */

#define KEY_COLS "id, user_id, type, fingerprint, comment, base64"

static int row_key(struct db_stmt *s, void *item)
{
    struct store_user_key *k = item;

    store_col_text(s, 0, k->id, sizeof(k->id));
    store_col_text(s, 1, k->user_id, sizeof(k->user_id));
    store_col_text(s, 2, k->type, sizeof(k->type));
    store_col_text(s, 3, k->fingerprint, sizeof(k->fingerprint));
    store_col_text(s, 4, k->comment, sizeof(k->comment));
    return store_col_str_heap(s, 5, &k->base64);
}

int store_user_key_add(struct store *st, const char *user_id, const char *type,
                       const char *base64, const char *fingerprint,
                       const char *comment, struct store_user_key *out)
{
    struct store_user_key k;
    int r;

    memset(&k, 0, sizeof(k));
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if ((r = store_check_text(type, sizeof(k.type) - 1, true)) != ERR_OK ||
        (r = store_check_text(base64, STORE_KEY_MAX, true)) != ERR_OK ||
        (r = store_check_text(fingerprint, STORE_FP_MAX, true)) != ERR_OK ||
        (r = store_check_text(comment, STORE_NAME_MAX, false)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(user_id, k.user_id)) {
        return ERR_NOT_FOUND;
    }
    util_uuid4(k.id);
    snprintf(k.type, sizeof(k.type), "%s", type);
    snprintf(k.fingerprint, sizeof(k.fingerprint), "%s", fingerprint);
    snprintf(k.comment, sizeof(k.comment), "%s",
             comment != NULL ? comment : "");
    /* The caller's copy is made first, so a stored key is never reported
     * as a failure. */
    if (out != NULL && (k.base64 = strdup(base64)) == NULL) {
        return ERR_NOMEM;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        goto out;
    }
    if ((r = store_user_exists(st, k.user_id)) == ERR_OK) {
        r = store_run(st, "key add",
                      "INSERT INTO user_keys (id, user_id, type, fingerprint,"
                      " comment, base64, created_at)"
                      " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                      NULL, "tttttti", k.id, k.user_id, k.type, k.fingerprint,
                      k.comment, base64, (int64_t)util_now());
    }
    r = store_tx_end(st, r);
out:
    if (r == ERR_OK && out != NULL) {
        *out = k;
    } else {
        store_user_key_clear(&k);
    }
    return r;
}

int store_user_key_list(struct store *st, const char *user_id,
                        struct store_user_key **list, size_t *n)
{
    struct store_list l = {NULL, 0, 0, sizeof(struct store_user_key), row_key};
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = store_child_list(st, store_user_exists, user_id, "key list",
                         "SELECT " KEY_COLS " FROM user_keys WHERE user_id = $1"
                         " ORDER BY created_at, fingerprint",
                         &l, list_release_keys);
    *list = l.items;
    *n = l.n;
    return r;
}

void store_user_key_clear(struct store_user_key *k)
{
    if (k == NULL) {
        return;
    }
    free(k->base64);
    memset(k, 0, sizeof(*k));
}

void store_user_key_list_free(struct store_user_key *list, size_t n)
{
    if (list == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        store_user_key_clear(&list[i]);
    }
    free(list);
}

int store_user_key_match(struct store *st, const char *user_id,
                         const char *fingerprint)
{
    char ubuf[STORE_ID_MAX + 1];
    const char *uid = store_idn(user_id, ubuf);
    size_t rows = 0;
    int r;

    if (uid == NULL || fingerprint == NULL || fingerprint[0] == '\0') {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_query(st, "key match",
                    "SELECT 1 FROM user_keys WHERE user_id = $1"
                    " AND fingerprint = $2",
                    NULL, NULL, &rows, "tt", uid, fingerprint);
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    return store_tx_end(st, r);
}

int store_user_key_delete(struct store *st, const char *user_id,
                          const char *key_id_or_fingerprint)
{
    char id[STORE_ID_MAX + 1], ubuf[STORE_ID_MAX + 1];
    const char *uid = store_idn(user_id, ubuf);
    int changes = 0, r;

    if (uid == NULL || key_id_or_fingerprint == NULL ||
        key_id_or_fingerprint[0] == '\0') {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if (store_id_norm(key_id_or_fingerprint, id)) {
        r = store_run(st, "key delete",
                      "DELETE FROM user_keys WHERE user_id = $1 AND id = $2",
                      &changes, "tt", uid, id);
    } else {
        r = store_run(st, "key delete",
                      "DELETE FROM user_keys WHERE user_id = $1"
                      " AND fingerprint = $2",
                      &changes, "tt", uid, key_id_or_fingerprint);
    }
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
    return store_tx_end(st, r);
}

struct users_active {
    const char *const *ids;
    size_t n;
    bool *active;
};

static int users_active_row(struct db_stmt *row, void *ctx)
{
    struct users_active *a = ctx;
    const char *id = db_col_text(row, 0, NULL);

    for (size_t i = 0; id != NULL && i < a->n; i++) {
        if (a->ids[i] != NULL && strcasecmp(a->ids[i], id) == 0) {
            a->active[i] = true;
        }
    }
    return ERR_OK;
}

int store_users_active(struct store *st, const char *const *ids, size_t n,
                       bool *active)
{
    struct users_active a = {ids, n, active};
    char norm[STORE_USERS_ACTIVE_CHUNK][STORE_ID_MAX + 1];
    int r;

    if (n > 0 && (ids == NULL || active == NULL)) {
        return ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        active[i] = false;
    }
    if (n == 0) {
        return ERR_OK;
    }
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    for (size_t from = 0; r == ERR_OK && from < n;
         from += STORE_USERS_ACTIVE_CHUNK) {
        struct store_sql q;
        size_t k = 0;

        memset(&q, 0, sizeof(q));
        store_sql_add(&q,
                      "SELECT id FROM users WHERE disabled = 0 AND id IN (");
        for (size_t i = from; i < n && i < from + STORE_USERS_ACTIVE_CHUNK;
             i++) {
            /* an ID that is not one matches nothing */
            if (ids[i] == NULL || !store_id_norm(ids[i], norm[k])) {
                snprintf(norm[k], sizeof(norm[k]), "-");
            }
            store_sql_param_text(&q, k > 0 ? ", " : "", norm[k]);
            k++;
        }
        store_sql_add(&q, ")");
        r = store_sql_run(st, "users active", &q, users_active_row, &a);
    }
    return store_tx_end(st, r);
}
