/*
 * Sites: the tree assets live in (store.h). /root always exists (made by
 * the first migration, store_site_create_root()); a site is found by ID or
 * by path, and adding one creates its missing parents in the same
 * transaction. Ancestors are followed by parent links, never by path
 * prefix.
 */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

/* --- sites ---------------------------------------------------------------- */

static int row_site(struct db_stmt *s, void *item)
{
    struct store_site *x = item;

    store_col_text(s, 0, x->id, sizeof(x->id));
    store_col_text(s, 1, x->path, sizeof(x->path));
    store_col_text(s, 2, x->parent_id, sizeof(x->parent_id));
    return ERR_OK;
}

#define SITE_SELECT "SELECT id, path, COALESCE(parent_id, '') FROM sites"

/* Finds a site by ID or by any form store_site_normalize() accepts (NULL
 * and "" are /root). ERR_INVALID for a malformed path. */
int store_site_lookup(struct store *st, const char *path_or_id,
                      struct store_site *out)
{
    char key[STORE_PATH_MAX + 1];
    size_t rows = 0;
    int r;

    memset(out, 0, sizeof(*out));
    if (store_id_norm(path_or_id, key)) {
        r = store_query(st, "site", SITE_SELECT " WHERE id = $1", row_site, out,
                        &rows, "t", key);
    } else {
        if ((r = store_site_normalize(path_or_id, key, sizeof(key))) !=
            ERR_OK) {
            return r;
        }
        r = store_query(st, "site", SITE_SELECT " WHERE path = $1", row_site,
                        out, &rows, "t", key);
    }
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    return r;
}

int store_site_add(struct store *st, const char *path, struct store_site *out)
{
    char norm[STORE_PATH_MAX + 1], prefix[STORE_PATH_MAX + 1];
    struct store_site cur, next;
    size_t at;
    int r;

    memset(&cur, 0, sizeof(cur));
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if (path == NULL || path[0] == '\0') {
        return ERR_INVALID;
    }
    if ((r = store_site_normalize(path, norm, sizeof(norm))) != ERR_OK) {
        return r;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = store_site_lookup(st, "/root", &cur)) != ERR_OK) {
        goto out;
    }
    if (strcmp(norm, "/root") == 0) {
        r = ERR_EXISTS;
        goto out;
    }
    /* Walk down from /root, creating every missing level. */
    at = strlen("/root");
    while (norm[at] != '\0') {
        const char *slash = strchr(norm + at + 1, '/');
        size_t end = slash != NULL ? (size_t)(slash - norm) : strlen(norm);
        bool last = norm[end] == '\0';

        memcpy(prefix, norm, end);
        prefix[end] = '\0';
        r = store_site_lookup(st, prefix, &next);
        if (r == ERR_OK && last) {
            r = ERR_EXISTS;
            goto out;
        }
        if (r == ERR_NOT_FOUND) {
            memset(&next, 0, sizeof(next));
            util_uuid4(next.id);
            snprintf(next.path, sizeof(next.path), "%s", prefix);
            snprintf(next.parent_id, sizeof(next.parent_id), "%s", cur.id);
            r = store_run(st, "site add",
                          "INSERT INTO sites (id, path, parent_id, created_at)"
                          " VALUES ($1, $2, $3, $4)",
                          NULL, "ttti", next.id, next.path, next.parent_id,
                          (int64_t)util_now());
        }
        if (r != ERR_OK) {
            goto out;
        }
        cur = next;
        at = end;
    }
out:
    if ((r = store_tx_end(st, r)) == ERR_OK && out != NULL) {
        *out = cur;
    }
    return r;
}

int store_site_get(struct store *st, const char *path_or_id,
                   struct store_site *out)
{
    int r;

    if (out == NULL) {
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_site_lookup(st, path_or_id, out);
    return store_tx_end(st, r);
}

int store_site_list(struct store *st, struct store_site **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    r = store_list_query(st, "site list", SITE_SELECT " ORDER BY path",
                         sizeof(struct store_site), row_site, NULL, &items, n,
                         "");
    *list = items;
    return r;
}

int store_site_delete(struct store *st, const char *path_or_id)
{
    struct store_site s;
    size_t rows = 0;
    int r;

    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = store_site_lookup(st, path_or_id, &s)) != ERR_OK) {
        goto out;
    }
    if (s.parent_id[0] == '\0') {
        r = ERR_DENIED; /* /root */
        goto out;
    }
    r = store_query(st, "site delete",
                    "SELECT 1 FROM sites WHERE parent_id = $1"
                    " UNION ALL SELECT 1 FROM assets WHERE site_id = $2",
                    NULL, NULL, &rows, "tt", s.id, s.id);
    if (r == ERR_OK && rows > 0) {
        r = ERR_EXISTS;
    }
    if (r != ERR_OK) {
        goto out;
    }
    /* Grants on the site go by cascade. */
    r = store_run(st, "site delete", "DELETE FROM sites WHERE id = $1", NULL,
                  "t", s.id);
out:
    return store_tx_end(st, r);
}

int store_site_create_root(struct store *st)
{
    char id[STORE_ID_MAX + 1];

    util_uuid4(id);
    return store_run(st, "create /root",
                     "INSERT INTO sites (id, path, parent_id, created_at)"
                     " VALUES ($1, '/root', NULL, $2)",
                     NULL, "ti", id, (int64_t)util_now());
}
