/*
 * Assets and their pinned host keys (store.h). Several assets may share a
 * name (within a site or not); store_asset_find() gives every match and
 * the caller reports an ambiguous name. Sealed logins are heap blobs,
 * wiped when an asset is cleared. Host-key pinning is trust on first use
 * by one conditional UPDATE.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

/* --- assets --------------------------------------------------------------- */

static void list_release_assets(void *items, size_t n)
{
    store_asset_list_free(items, n);
}

#define ASSET_SELECT                                                           \
    "SELECT a.id, a.name, a.site_id, s.path, a.protocol, a.host, a.port,"      \
    " a.route, a.login_user, a.password_sealed, a.key_sealed,"                 \
    " a.host_key_fp, a.created_at FROM assets a"                               \
    " JOIN sites s ON s.id = a.site_id"

static int row_asset(struct db_stmt *s, void *item)
{
    struct store_asset *a = item;
    int r;

    store_col_text(s, 0, a->id, sizeof(a->id));
    store_col_text(s, 1, a->name, sizeof(a->name));
    store_col_text(s, 2, a->site_id, sizeof(a->site_id));
    store_col_text(s, 3, a->site_path, sizeof(a->site_path));
    store_col_text(s, 4, a->protocol, sizeof(a->protocol));
    store_col_text(s, 5, a->host, sizeof(a->host));
    a->port = db_col_int(s, 6);
    store_col_text(s, 7, a->route, sizeof(a->route));
    store_col_text(s, 8, a->login_user, sizeof(a->login_user));
    if ((r = store_col_blob_heap(s, 9, &a->password_sealed,
                                 &a->password_sealed_len)) != ERR_OK ||
        (r = store_col_blob_heap(s, 10, &a->key_sealed, &a->key_sealed_len)) !=
            ERR_OK) {
        store_asset_clear(a);
        return r;
    }
    store_col_text(s, 11, a->host_key_fp, sizeof(a->host_key_fp));
    a->created_at = db_col_int64(s, 12);
    return ERR_OK;
}

void store_asset_clear(struct store_asset *a)
{
    if (a == NULL) {
        return;
    }
    if (a->password_sealed != NULL) {
        sodium_memzero(a->password_sealed, a->password_sealed_len);
        free(a->password_sealed);
    }
    if (a->key_sealed != NULL) {
        sodium_memzero(a->key_sealed, a->key_sealed_len);
        free(a->key_sealed);
    }
    sodium_memzero(a, sizeof(*a));
}

void store_asset_list_free(struct store_asset *list, size_t n)
{
    if (list == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        store_asset_clear(&list[i]);
    }
    free(list);
}

/* Checks the caller-filled fields of an asset for add and update. */
static int asset_check(const struct store_asset *a)
{
    int r;

    if (!store_field_ok(a->id, sizeof(a->id)) ||
        !store_field_ok(a->name, sizeof(a->name)) ||
        !store_field_ok(a->site_id, sizeof(a->site_id)) ||
        !store_field_ok(a->site_path, sizeof(a->site_path)) ||
        !store_field_ok(a->protocol, sizeof(a->protocol)) ||
        !store_field_ok(a->host, sizeof(a->host)) ||
        !store_field_ok(a->route, sizeof(a->route)) ||
        !store_field_ok(a->login_user, sizeof(a->login_user)) ||
        !store_field_ok(a->host_key_fp, sizeof(a->host_key_fp))) {
        return ERR_TOO_LONG;
    }
    if ((r = store_check_name(a->name)) != ERR_OK ||
        (r = store_check_text(a->protocol, sizeof(a->protocol) - 1, true)) !=
            ERR_OK ||
        (r = store_check_text(a->host, STORE_HOST_MAX, true)) != ERR_OK ||
        (r = store_check_text(a->route, STORE_ROUTE_MAX, false)) != ERR_OK ||
        (r = store_check_text(a->login_user, STORE_NAME_MAX, false)) !=
            ERR_OK ||
        (r = store_check_text(a->host_key_fp, STORE_FP_MAX, false)) != ERR_OK) {
        return r;
    }
    if (a->port < 1 || a->port > 65535) {
        return ERR_INVALID;
    }
    if ((a->password_sealed == NULL && a->password_sealed_len != 0) ||
        (a->key_sealed == NULL && a->key_sealed_len != 0)) {
        return ERR_INVALID;
    }
    if (a->password_sealed_len > STORE_KEY_MAX ||
        a->key_sealed_len > STORE_KEY_MAX) {
        return ERR_TOO_LONG;
    }
    return ERR_OK;
}

/* The asset's site: site_id when set, else site_path ("" = /root). */
static int asset_site(struct store *st, const struct store_asset *a,
                      struct store_site *site)
{
    if (a->site_id[0] != '\0') {
        if (!util_is_uuid(a->site_id)) {
            return ERR_NOT_FOUND;
        }
        return store_site_lookup(st, a->site_id, site);
    }
    return store_site_lookup(st, a->site_path, site);
}

int store_asset_add(struct store *st, struct store_asset *a)
{
    struct store_site site;
    char id[STORE_ID_MAX + 1];
    int64_t now = util_now();
    int r;

    memset(&site, 0, sizeof(site));
    if (a == NULL) {
        return ERR_INVALID;
    }
    if ((r = asset_check(a)) != ERR_OK) {
        return r;
    }
    if (a->id[0] == '\0') {
        util_uuid4(id);
    } else if (!store_id_norm(a->id, id)) {
        return ERR_INVALID;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = asset_site(st, a, &site)) != ERR_OK) {
        goto out;
    }
    r = store_run(
        st, "asset add",
        "INSERT INTO assets (id, name, site_id, protocol, host, port,"
        " route, login_user, password_sealed, key_sealed, host_key_fp,"
        " created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
        "$12)",
        NULL, "tttttittbbti", id, a->name, site.id, a->protocol, a->host,
        (int64_t)a->port, a->route[0] != '\0' ? a->route : "direct",
        a->login_user, a->password_sealed, a->password_sealed_len,
        a->key_sealed, a->key_sealed_len, a->host_key_fp, now);
out:
    if ((r = store_tx_end(st, r)) == ERR_OK) {
        memcpy(a->id, id, sizeof(a->id));
        memcpy(a->site_id, site.id, sizeof(a->site_id));
        memcpy(a->site_path, site.path, sizeof(a->site_path));
        if (a->route[0] == '\0') {
            snprintf(a->route, sizeof(a->route), "direct");
        }
        a->created_at = now;
    }
    return r;
}

int store_asset_update(struct store *st, struct store_asset *a)
{
    struct store_site site;
    char id[STORE_ID_MAX + 1];
    int changes = 0, r;

    memset(&site, 0, sizeof(site));
    if (a == NULL) {
        return ERR_INVALID;
    }
    if ((r = asset_check(a)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(a->id, id)) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = asset_site(st, a, &site)) != ERR_OK) {
        goto out;
    }
    r = store_run(st, "asset update",
                  "UPDATE assets SET name = $1, site_id = $2, protocol = $3,"
                  " host = $4, port = $5, route = $6, login_user = $7,"
                  " password_sealed = $8, key_sealed = $9, host_key_fp = $10"
                  " WHERE id = $11",
                  &changes, "ttttittbbtt", a->name, site.id, a->protocol,
                  a->host, (int64_t)a->port,
                  a->route[0] != '\0' ? a->route : "direct", a->login_user,
                  a->password_sealed, a->password_sealed_len, a->key_sealed,
                  a->key_sealed_len, a->host_key_fp, id);
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
out:
    if ((r = store_tx_end(st, r)) == ERR_OK) {
        memcpy(a->id, id, sizeof(a->id));
        memcpy(a->site_id, site.id, sizeof(a->site_id));
        memcpy(a->site_path, site.path, sizeof(a->site_path));
        if (a->route[0] == '\0') {
            snprintf(a->route, sizeof(a->route), "direct");
        }
    }
    return r;
}

int store_asset_get(struct store *st, const char *id, struct store_asset *out)
{
    char key[STORE_ID_MAX + 1];
    size_t rows = 0;
    int r;

    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_query(st, "asset get", ASSET_SELECT " WHERE a.id = $1", row_asset,
                    out, &rows, "t", key);
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    if ((r = store_tx_end(st, r)) != ERR_OK) {
        store_asset_clear(out);
    }
    return r;
}

int store_asset_find(struct store *st, const char *site_path, const char *spec,
                     struct store_asset **list, size_t *n)
{
    struct store_list l = {NULL, 0, 0, sizeof(struct store_asset), row_asset};
    struct store_site site;
    char id[STORE_ID_MAX + 1];
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    *list = NULL;
    *n = 0;
    if (spec == NULL || spec[0] == '\0') {
        return ERR_INVALID;
    }
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    if (store_id_norm(spec, id)) {
        r = store_query(st, "asset find", ASSET_SELECT " WHERE a.id = $1",
                        store_list_row, &l, NULL, "t", id);
        goto out;
    }
    r = store_site_lookup(st, site_path, &site);
    if (r == ERR_NOT_FOUND) {
        r = ERR_OK; /* no such site: no matches */
        goto out;
    }
    if (r != ERR_OK) {
        goto out;
    }
    r = store_query(st, "asset find",
                    ASSET_SELECT " WHERE a.site_id = $1 AND a.name = $2"
                                 " ORDER BY a.id",
                    store_list_row, &l, NULL, "tt", site.id, spec);
out:
    r = store_list_end(st, r, &l, list_release_assets);
    *list = l.items;
    *n = l.n;
    return r;
}

int store_asset_list(struct store *st, struct store_asset **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = store_list_query(st, "asset list",
                         ASSET_SELECT " ORDER BY s.path, a.name, a.id",
                         sizeof(struct store_asset), row_asset,
                         list_release_assets, &items, n, "");
    *list = items;
    return r;
}

int store_asset_delete(struct store *st, const char *id)
{
    char key[STORE_ID_MAX + 1];

    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    /* Grants on the asset go by cascade; session rows keep its ID and
     * name as text. */
    return store_update_one(st, "asset delete",
                            "DELETE FROM assets WHERE id = $1", "t", key);
}

static int row_fp(struct db_stmt *s, void *ctx)
{
    store_col_text(s, 0, ctx, STORE_FP_MAX + 1);
    return ERR_OK;
}

int store_asset_pin_host_key(struct store *st, const char *id, const char *fp)
{
    char key[STORE_ID_MAX + 1], pinned[STORE_FP_MAX + 1] = "";
    size_t rows = 0;
    int changes = 0, r;

    if ((r = store_check_text(fp, STORE_FP_MAX, true)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* Trust on first use: only an empty pin is filled, so two sessions
     * seeing different keys at once cannot both pin theirs. */
    r = store_run(st, "host key pin",
                  "UPDATE assets SET host_key_fp = $1"
                  " WHERE id = $2 AND host_key_fp = ''",
                  &changes, "tt", fp, key);
    if (r != ERR_OK || changes == 1) {
        goto out;
    }
    r = store_query(st, "host key pin",
                    "SELECT host_key_fp FROM assets WHERE id = $1", row_fp,
                    pinned, &rows, "t", key);
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    } else if (r == ERR_OK && strcmp(pinned, fp) != 0) {
        r = ERR_HOSTKEY;
    }
out:
    return store_tx_end(st, r);
}

int store_asset_set_host_key(struct store *st, const char *id, const char *fp)
{
    char key[STORE_ID_MAX + 1];
    int r;

    if ((r = store_check_text(fp, STORE_FP_MAX, false)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    return store_update_one(st, "host key set",
                            "UPDATE assets SET host_key_fp = $1 WHERE id = $2",
                            "tt", fp != NULL ? fp : "", key);
}
