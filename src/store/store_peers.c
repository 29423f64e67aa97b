/*
 * Peer nodes (peers.h).
 */
#include "store/peers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

#define PEER_SELECT                                                            \
    "SELECT id, name, host, port, token_sealed, tls_fingerprint,"              \
    " plain_http, via, created_at FROM peers"

static int peer_fill(struct db_stmt *s, void *item)
{
    struct store_peer *p = item;
    const void *b;
    size_t n = 0;

    store_col_text(s, 0, p->id, sizeof(p->id));
    store_col_text(s, 1, p->name, sizeof(p->name));
    store_col_text(s, 2, p->host, sizeof(p->host));
    p->port = db_col_int(s, 3);
    b = db_col_blob(s, 4, &n);
    if (b == NULL || n > sizeof(p->token_sealed)) {
        n = 0;
    }
    if (n > 0) {
        memcpy(p->token_sealed, b, n);
    }
    p->token_sealed_len = n;
    store_col_text(s, 5, p->tls_fingerprint, sizeof(p->tls_fingerprint));
    p->plain_http = db_col_int(s, 6) != 0;
    store_col_text(s, 7, p->via, sizeof(p->via));
    p->created_at = db_col_int64(s, 8);
    return ERR_OK;
}

static int peer_check(const struct store_peer *p)
{
    int r;

    if (p->port < 1 || p->port > 65535 || p->token_sealed_len == 0 ||
        p->token_sealed_len > sizeof(p->token_sealed)) {
        return ERR_INVALID;
    }
    if ((r = store_check_text(p->name, PEER_NAME_MAX, true)) != ERR_OK ||
        (r = store_check_text(p->host, STORE_HOST_MAX, true)) != ERR_OK ||
        (r = store_check_text(p->tls_fingerprint, PEER_FP_MAX, false)) !=
            ERR_OK ||
        (r = store_check_text(p->via, STORE_ROUTE_MAX, false)) != ERR_OK) {
        return r;
    }
    return ERR_OK;
}

int store_peer_add(struct store *st, struct store_peer *p)
{
    int r;

    if (p == NULL) {
        return ERR_INVALID;
    }
    if ((r = peer_check(p)) != ERR_OK) {
        return r;
    }
    /* the caller may have made the ID: the sealed token is bound to it */
    if (p->id[0] == '\0') {
        util_uuid4(p->id);
    } else if (!store_id_norm(p->id, p->id)) {
        return ERR_INVALID;
    }
    if (p->created_at == 0) {
        p->created_at = util_now();
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "peer add",
                  "INSERT INTO peers (id, name, host, port, token_sealed,"
                  " tls_fingerprint, plain_http, via, created_at)"
                  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                  NULL, "tttibtiti", p->id, p->name, p->host, (int64_t)p->port,
                  p->token_sealed, p->token_sealed_len, p->tls_fingerprint,
                  (int64_t)(p->plain_http ? 1 : 0), p->via, p->created_at);
    r = store_tx_end(st, r);
    if (r != ERR_OK) {
        p->id[0] = '\0';
    }
    return r;
}

int store_peer_get(struct store *st, const char *name_or_id,
                   struct store_peer *out)
{
    char key[PEER_NAME_MAX + 1];

    /* name_or_id may point into out */
    if (name_or_id == NULL || name_or_id[0] == '\0' ||
        strlen(name_or_id) > PEER_NAME_MAX) {
        memset(out, 0, sizeof(*out));
        return ERR_NOT_FOUND;
    }
    snprintf(key, sizeof(key), "%s", name_or_id);
    memset(out, 0, sizeof(*out));
    return store_get_one(st, "peer get",
                         PEER_SELECT " WHERE name = $1 OR id = lower($1)", key,
                         peer_fill, out);
}

int store_peer_list(struct store *st, struct store_peer **list, size_t *n)
{
    void *items = NULL;
    int r;

    *list = NULL;
    *n = 0;
    r = store_list_query(st, "peer list", PEER_SELECT " ORDER BY name",
                         sizeof(struct store_peer), peer_fill, NULL, &items, n,
                         "");
    *list = items;
    return r;
}

void store_peer_list_free(struct store_peer *list, size_t n)
{
    if (list != NULL) {
        sodium_memzero(list, n * sizeof(*list));
    }
    free(list);
}

int store_peer_update(struct store *st, const struct store_peer *p)
{
    char nid[STORE_ID_MAX + 1];
    int r;

    if (p == NULL || !store_id_norm(p->id, nid)) {
        return ERR_NOT_FOUND;
    }
    if ((r = peer_check(p)) != ERR_OK) {
        return r;
    }
    return store_update_one(
        st, "peer update",
        "UPDATE peers SET name = $1, host = $2, port = $3, token_sealed = $4,"
        " tls_fingerprint = $5, plain_http = $6, via = $7 WHERE id = $8",
        "ttibtitt", p->name, p->host, (int64_t)p->port, p->token_sealed,
        p->token_sealed_len, p->tls_fingerprint,
        (int64_t)(p->plain_http ? 1 : 0), p->via, nid);
}

static int peer_count_row(struct db_stmt *row, void *ctx)
{
    *(int *)ctx = db_col_int(row, 0);
    return ERR_OK;
}

int store_peer_delete(struct store *st, const char *name_or_id, int *users)
{
    struct store_peer p;
    char route[STORE_ROUTE_MAX + 1];
    int r, used = 0, changes = 0;

    if (users != NULL) {
        *users = 0;
    }
    if ((r = store_peer_get(st, name_or_id, &p)) != ERR_OK) {
        return r;
    }
    snprintf(route, sizeof(route), "peer:%s", p.name);
    sodium_memzero(p.token_sealed, sizeof(p.token_sealed));
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_query(st, "peer users",
                    "SELECT (SELECT count(*) FROM assets WHERE route = $1)"
                    " + (SELECT count(*) FROM peers WHERE via = $1)"
                    " + (SELECT count(*) FROM tunnels WHERE peer = $2)",
                    peer_count_row, &used, NULL, "tt", route, p.name);
    if (r == ERR_OK && used > 0) {
        r = ERR_DENIED;
    }
    if (r == ERR_OK) {
        r = store_run(st, "peer delete", "DELETE FROM peers WHERE id = $1",
                      &changes, "t", p.id);
        if (r == ERR_OK && changes == 0) {
            r = ERR_NOT_FOUND;
        }
    }
    if (users != NULL) {
        *users = used;
    }
    return store_tx_end(st, r);
}
