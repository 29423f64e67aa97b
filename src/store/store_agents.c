/*
 * agents.h over the store's helpers: agent credentials and the agents that
 * announced themselves (tunnels are store_tunnels.c). Written against
 * store_internal.h and db.h only, like every noun file, so every function
 * here is one transaction with the driver's busy handling and error mapping (a
 * unique constraint is ERR_EXISTS, a missing agent behind a tunnel's foreign
 * key ERR_NOT_FOUND).
 *
 * IDs: a credential ID is 32 hex digits chosen by the caller and kept
 * lower-case; an agent ID is the agent's
 * own (1-64 of A-Z a-z 0-9 . _ -) and kept exactly as announced, so two
 * machine IDs that differ only in case stay two agents.
 *
 * Agent facts come from the agent, an untrusted peer: every string is
 * checked for its length and for control characters before it is written,
 * and addresses / tags must be JSON arrays of strings, so whoever prints
 * them can parse them.
 */
#include "store/agents.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/nodes.h"
#include "store/store_internal.h"

#define CRED_ID_LEN 32

/* --- checks -------------------------------------------------------------- */

/* true if s is a credential ID (32 hex digits, either case); out gets it
 * lower-cased. */
static bool cred_id_norm(const char *s, char out[STORE_ID_MAX + 1])
{
    size_t i;

    if (s == NULL || strnlen(s, CRED_ID_LEN + 1) != CRED_ID_LEN) {
        return false;
    }
    for (i = 0; i < CRED_ID_LEN; i++) {
        char c = s[i];

        if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        }
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
        out[i] = c;
    }
    out[CRED_ID_LEN] = '\0';
    return true;
}

/* true if s is an agent ID: 1-64 of A-Z a-z 0-9 . _ - */
bool store_agent_id_valid(const char *s)
{
    size_t i;

    if (s == NULL) {
        return false;
    }
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];

        if (i >= AGENT_ID_MAX ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return i > 0;
}

/* "" (stored as "[]") or a JSON array of strings. */
static int json_list_check(const char *s, size_t fieldsize)
{
    json_t *j, *v;
    size_t i;
    int r = ERR_OK;

    if (strnlen(s, fieldsize) == fieldsize) {
        return ERR_TOO_LONG;
    }
    if (s[0] == '\0') {
        return ERR_OK;
    }
    j = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_array(j)) {
        r = ERR_INVALID;
    }
    json_array_foreach(j, i, v)
    {
        if (!json_is_string(v)) {
            r = ERR_INVALID;
        }
    }
    json_decref(j);
    return r;
}

/* --- credentials --------------------------------------------------------- */

#define CRED_SELECT                                                            \
    "SELECT c.id, c.name, c.secret_hash, c.created_by, c.created_at,"          \
    " (SELECT COUNT(*) FROM agents a WHERE a.credential_id = c.id)"            \
    " FROM credentials c"

static int cred_fill(struct db_stmt *s, void *item)
{
    struct store_credential *c = item;

    store_col_text(s, 0, c->id, sizeof(c->id));
    store_col_text(s, 1, c->name, sizeof(c->name));
    store_col_text(s, 2, c->secret_hash, sizeof(c->secret_hash));
    store_col_text(s, 3, c->created_by, sizeof(c->created_by));
    c->created_at = db_col_int64(s, 4);
    c->agents = db_col_int(s, 5);
    return ERR_OK;
}

int store_credential_add(struct store *st, const struct store_credential *c)
{
    char id[STORE_ID_MAX + 1];
    int r;

    if (c == NULL || !cred_id_norm(c->id, id) || c->created_at <= 0) {
        return ERR_INVALID;
    }
    if ((r = STORE_FIELD_TEXT(c->name, false)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(c->secret_hash, true)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(c->created_by, false)) != ERR_OK) {
        return r;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "credential add",
                  "INSERT INTO credentials (id, name, secret_hash,"
                  " created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
                  NULL, "tttti", id, c->name, c->secret_hash, c->created_by,
                  c->created_at);
    return store_tx_end(st, r);
}

int store_credential_get(struct store *st, const char *id,
                         struct store_credential *out)
{
    char nid[STORE_ID_MAX + 1];

    /* id may point into out */
    if (!cred_id_norm(id, nid)) {
        memset(out, 0, sizeof(*out));
        return ERR_NOT_FOUND;
    }
    memset(out, 0, sizeof(*out));
    return store_get_one(st, "credential get", CRED_SELECT " WHERE c.id = $1",
                         nid, cred_fill, out);
}

static void list_release_credentials(void *items, size_t n)
{
    store_credential_list_free(items, n);
}

int store_credential_list(struct store *st, struct store_credential **list,
                          size_t *n)
{
    void *items = NULL;
    int r;

    r = store_list_query(st, "credential list",
                         CRED_SELECT " ORDER BY c.created_at, c.id",
                         sizeof(struct store_credential), cred_fill,
                         list_release_credentials, &items, n, "");
    *list = items;
    return r;
}

void store_credential_list_free(struct store_credential *list, size_t n)
{
    /* The hashes are not secrets, but they are what an attacker would
     * grind on: do not leave them in freed memory. */
    if (list != NULL) {
        sodium_memzero(list, n * sizeof(*list));
    }
    free(list);
}

int store_credential_delete(struct store *st, const char *id)
{
    char nid[STORE_ID_MAX + 1];

    if (!cred_id_norm(id, nid)) {
        return ERR_NOT_FOUND;
    }
    return store_update_one(st, "credential delete",
                            "DELETE FROM credentials WHERE id = $1", "t", nid);
}

/* --- agents -------------------------------------------------------------- */

#define AGENT_SELECT                                                           \
    "SELECT id, credential_id, name, hostname, os, kernel, arch, version,"     \
    " addresses, tags, remote_addr, online, first_seen, connected_at,"         \
    " last_seen, bound_credential, node FROM agents"

static int agent_fill(struct db_stmt *s, void *item)
{
    struct store_agent *a = item;

    store_col_text(s, 0, a->id, sizeof(a->id));
    store_col_text(s, 1, a->credential_id, sizeof(a->credential_id));
    store_col_text(s, 2, a->name, sizeof(a->name));
    store_col_text(s, 3, a->hostname, sizeof(a->hostname));
    store_col_text(s, 4, a->os, sizeof(a->os));
    store_col_text(s, 5, a->kernel, sizeof(a->kernel));
    store_col_text(s, 6, a->arch, sizeof(a->arch));
    store_col_text(s, 7, a->version, sizeof(a->version));
    store_col_text(s, 8, a->addresses, sizeof(a->addresses));
    store_col_text(s, 9, a->tags, sizeof(a->tags));
    store_col_text(s, 10, a->remote_addr, sizeof(a->remote_addr));
    a->online = db_col_int(s, 11) != 0;
    a->first_seen = db_col_int64(s, 12);
    a->connected_at = db_col_int64(s, 13);
    a->last_seen = db_col_int64(s, 14);
    store_col_text(s, 15, a->bound_credential, sizeof(a->bound_credential));
    store_col_text(s, 16, a->node, sizeof(a->node));
    return ERR_OK;
}

static int agent_check(const struct store_agent *a)
{
    char cid[STORE_ID_MAX + 1];
    int r;

    if (!store_agent_id_valid(a->id) ||
        (a->credential_id[0] != '\0' && !cred_id_norm(a->credential_id, cid))) {
        return strnlen(a->id, sizeof(a->id)) > AGENT_ID_MAX ? ERR_TOO_LONG
                                                            : ERR_INVALID;
    }
    if ((r = STORE_FIELD_TEXT(a->name, false)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(a->hostname, false)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(a->os, false)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(a->kernel, false)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(a->arch, false)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(a->version, false)) != ERR_OK ||
        (r = STORE_FIELD_TEXT(a->remote_addr, false)) != ERR_OK ||
        (r = json_list_check(a->addresses, sizeof(a->addresses))) != ERR_OK ||
        (r = json_list_check(a->tags, sizeof(a->tags))) != ERR_OK) {
        return r;
    }
    return ERR_OK;
}

int store_agent_online(struct store *st, const struct store_agent *a,
                       int64_t now)
{
    char cid[STORE_ID_MAX + 1] = "";
    int r, changes = 0;

    if (a == NULL) {
        return ERR_INVALID;
    }
    if ((r = agent_check(a)) != ERR_OK) {
        return r;
    }
    if (a->credential_id[0] != '\0') {
        cred_id_norm(a->credential_id, cid);
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* An upsert, not INSERT OR REPLACE: a replace deletes the old row
     * first, and the cascade would take the agent's tunnels with it. The
     * update's WHERE is the binding: a row bound to another credential
     * changes nothing, which is how a takeover is told apart (no second
     * statement, so no window between a check and the write). */
    r = store_run(
        st, "agent online",
        "INSERT INTO agents (id, credential_id, name, hostname, os, kernel,"
        " arch, version, addresses, tags, remote_addr, online, first_seen,"
        " connected_at, last_seen, bound_credential, node)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $12,"
        " $12, $2, $13)"
        " ON CONFLICT (id) DO UPDATE SET credential_id = "
        "excluded.credential_id,"
        " name = excluded.name, hostname = excluded.hostname,"
        " os = excluded.os, kernel = excluded.kernel, arch = excluded.arch,"
        " version = excluded.version, addresses = excluded.addresses,"
        " tags = excluded.tags, remote_addr = excluded.remote_addr,"
        " online = 1, connected_at = excluded.connected_at,"
        " last_seen = excluded.last_seen,"
        " bound_credential = excluded.bound_credential,"
        " node = excluded.node"
        " WHERE agents.bound_credential IN ('', excluded.bound_credential)",
        &changes, "tttttttttttit", a->id, cid, a->name, a->hostname, a->os,
        a->kernel, a->arch, a->version,
        a->addresses[0] != '\0' ? a->addresses : "[]",
        a->tags[0] != '\0' ? a->tags : "[]", a->remote_addr, now, st->node);
    if (r == ERR_OK && changes == 0) {
        r = ERR_DENIED;
    }
    return store_tx_end(st, r);
}

int store_agent_bind(struct store *st, const char *id, const char *cred)
{
    char cid[STORE_ID_MAX + 1] = "";

    if (!store_agent_id_valid(id)) {
        return ERR_NOT_FOUND;
    }
    if (cred != NULL && cred[0] != '\0' && !cred_id_norm(cred, cid)) {
        return ERR_INVALID;
    }
    return store_update_one(
        st, "agent bind",
        "UPDATE agents SET bound_credential = $1 WHERE id = $2", "tt", cid, id);
}

int store_agent_offline(struct store *st, const char *id, int64_t now)
{
    int r, changes = 0;

    if (!store_agent_id_valid(id)) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* An agent that has moved to another node since (it reconnected
     * there before this node noticed it gone) stays that node's. */
    r = store_run(st, "agent offline",
                  "UPDATE agents SET online = 0, last_seen = $1, node = ''"
                  " WHERE id = $2 AND node IN ('', $3)",
                  &changes, "itt", now, id, st->node);
    if (r == ERR_OK && changes == 0) {
        r = store_exists(st, "agent offline",
                         "SELECT 1 FROM agents WHERE id = $1", id);
    }
    return store_tx_end(st, r);
}

int store_agent_reclaim(struct store *st, const char *id, int64_t now)
{
    if (!store_agent_id_valid(id)) {
        return ERR_NOT_FOUND;
    }
    return store_update_one(st, "agent reclaim",
                            "UPDATE agents SET online = 1, node = $1,"
                            " last_seen = $2 WHERE id = $3"
                            " AND (online = 0 OR node IN ('', $1))",
                            "tit", st->node, now, id);
}

int store_agent_all_offline(struct store *st)
{
    int r;

    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* this node's agents (and those no node claims); other nodes' stay */
    r = store_run(st, "agents offline",
                  "UPDATE agents SET online = 0, node = ''"
                  " WHERE online <> 0 AND node IN ('', $1)",
                  NULL, "t", st->node);
    return store_tx_end(st, r);
}

int store_agent_holder(struct store *st, const char *id, bool *elsewhere,
                       char *node)
{
    struct store_agent *a = malloc(sizeof(*a));
    int r;

    *elsewhere = false;
    if (a == NULL) {
        return ERR_NOMEM;
    }
    r = store_agent_get(st, id, a);
    if (r == ERR_OK) {
        *elsewhere = a->online && a->node[0] != '\0' &&
                     strcmp(a->node, store_node_self(st)) != 0;
        if (*elsewhere && node != NULL) {
            memcpy(node, a->node, sizeof(a->node));
        }
    } else if (r == ERR_NOT_FOUND) {
        r = ERR_OK; /* held nowhere */
    }
    sodium_memzero(a, sizeof(*a));
    free(a);
    return r;
}

bool store_agent_elsewhere(struct store *st, const char *id, char *node)
{
    bool elsewhere;

    return store_agent_holder(st, id, &elsewhere, node) == ERR_OK && elsewhere;
}

int store_agent_get(struct store *st, const char *id, struct store_agent *out)
{
    char nid[AGENT_ID_MAX + 1];

    /* id may point into out */
    if (!store_agent_id_valid(id)) {
        memset(out, 0, sizeof(*out));
        return ERR_NOT_FOUND;
    }
    memcpy(nid, id, strlen(id) + 1);
    memset(out, 0, sizeof(*out));
    return store_get_one(st, "agent get", AGENT_SELECT " WHERE id = $1", nid,
                         agent_fill, out);
}

int store_agent_list(struct store *st, struct store_agent **list, size_t *n)
{
    void *items = NULL;
    int r;

    r = store_list_query(st, "agent list", AGENT_SELECT " ORDER BY name, id",
                         sizeof(struct store_agent), agent_fill, NULL, &items,
                         n, "");
    *list = items;
    return r;
}

void store_agent_list_free(struct store_agent *list, size_t n)
{
    (void)n;
    free(list);
}

int store_agent_delete(struct store *st, const char *id)
{
    if (!store_agent_id_valid(id)) {
        return ERR_NOT_FOUND;
    }
    /* The tunnels go with it (ON DELETE CASCADE). */
    return store_update_one(st, "agent delete",
                            "DELETE FROM agents WHERE id = $1", "t", id);
}
