/*
 * The session report (store.h): one row per connection attempt, opened
 * when it starts and closed once; a closed row is never rewritten.
 * Recording paths and hashes are kept after retention deletes the file.
 * Sessions carry no foreign keys: a row outlives its user and asset.
 */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

/* --- session report ------------------------------------------------------- */

#define SESSION_COLS                                                           \
    "id, user_id, user_name, asset_id, asset_name, site, kind, client_addr,"   \
    " route, started_at, COALESCE(ended_at, 0), bytes_up, bytes_down,"         \
    " exit_status, result, detail, recording_path, recording_sha256,"          \
    " recording_size, COALESCE(recording_deleted_at, 0), node, agent_node"

static int row_session(struct db_stmt *s, void *item)
{
    struct store_session *x = item;

    store_col_text(s, 0, x->id, sizeof(x->id));
    store_col_text(s, 1, x->user_id, sizeof(x->user_id));
    store_col_text(s, 2, x->user_name, sizeof(x->user_name));
    store_col_text(s, 3, x->asset_id, sizeof(x->asset_id));
    store_col_text(s, 4, x->asset_name, sizeof(x->asset_name));
    store_col_text(s, 5, x->site, sizeof(x->site));
    store_col_text(s, 6, x->kind, sizeof(x->kind));
    store_col_text(s, 7, x->client_addr, sizeof(x->client_addr));
    store_col_text(s, 8, x->route, sizeof(x->route));
    x->started_at = db_col_int64(s, 9);
    x->ended_at = db_col_int64(s, 10);
    x->bytes_up = (uint64_t)db_col_int64(s, 11);
    x->bytes_down = (uint64_t)db_col_int64(s, 12);
    x->exit_status = db_col_int(s, 13);
    store_col_text(s, 14, x->result, sizeof(x->result));
    store_col_text(s, 15, x->detail, sizeof(x->detail));
    store_col_text(s, 16, x->recording_path, sizeof(x->recording_path));
    store_col_text(s, 17, x->recording_sha256, sizeof(x->recording_sha256));
    x->recording_size = (uint64_t)db_col_int64(s, 18);
    x->recording_deleted_at = db_col_int64(s, 19);
    store_col_text(s, 20, x->node, sizeof(x->node));
    store_col_text(s, 21, x->agent_node, sizeof(x->agent_node));
    return ERR_OK;
}

/* Every text field is NUL-terminated within its array (a caller that
 * filled one to the brim gets ERR_TOO_LONG, not a truncated row). */
static int session_check(const struct store_session *s)
{
    if (!store_field_ok(s->id, sizeof(s->id)) ||
        !store_field_ok(s->user_id, sizeof(s->user_id)) ||
        !store_field_ok(s->user_name, sizeof(s->user_name)) ||
        !store_field_ok(s->asset_id, sizeof(s->asset_id)) ||
        !store_field_ok(s->asset_name, sizeof(s->asset_name)) ||
        !store_field_ok(s->site, sizeof(s->site)) ||
        !store_field_ok(s->kind, sizeof(s->kind)) ||
        !store_field_ok(s->client_addr, sizeof(s->client_addr)) ||
        !store_field_ok(s->route, sizeof(s->route)) ||
        !store_field_ok(s->result, sizeof(s->result)) ||
        !store_field_ok(s->detail, sizeof(s->detail)) ||
        !store_field_ok(s->recording_path, sizeof(s->recording_path)) ||
        !store_field_ok(s->recording_sha256, sizeof(s->recording_sha256)) ||
        !store_field_ok(s->agent_node, sizeof(s->agent_node))) {
        return ERR_TOO_LONG;
    }
    return ERR_OK;
}

/* The INSERT of store_session_open, inside the caller's transaction. */
static int session_insert(struct store *st, const struct store_session *s)
{
    char id[STORE_ID_MAX + 1];
    bool closed;
    int r;

    if ((r = session_check(s)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(s->id, id)) {
        return ERR_INVALID;
    }
    /* A row written already closed (an attempt refused before it became a
     * session) needs its result; an open row starts with none. */
    closed = s->ended_at != 0;
    if (closed && s->result[0] == '\0') {
        return ERR_INVALID;
    }
    /* seq orders rows of the same second; the report's part of the write
     * lock (db_begin_part), taken by every caller, makes MAX() + 1
     * race-free here. */
    return store_run(
        st, "session open",
        "INSERT INTO sessions (id, seq, user_id, user_name, asset_id,"
        " asset_name, site, kind, client_addr, route, started_at,"
        " ended_at, bytes_up, bytes_down, exit_status, result, detail,"
        " recording_path, recording_sha256, recording_size, node)"
        " VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM sessions),"
        " $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
        " $15, $16, $17, $18, $19, $20)",
        NULL,
        "tttttttttiziiitttti"
        "t",
        id, s->user_id, s->user_name, s->asset_id, s->asset_name, s->site,
        s->kind, s->client_addr, s->route,
        s->started_at != 0 ? s->started_at : util_now(),
        closed ? s->ended_at : (int64_t)0,
        closed ? store_clamp_u64(s->bytes_up) : (int64_t)0,
        closed ? store_clamp_u64(s->bytes_down) : (int64_t)0,
        closed ? (int64_t)s->exit_status : (int64_t)-1, closed ? s->result : "",
        s->detail, s->recording_path, s->recording_sha256,
        store_clamp_u64(s->recording_size), st->node);
}

/* The UPDATE of store_session_close, inside the caller's transaction. */
static int session_close_row(struct store *st, const char *id, int64_t ended_at,
                             uint64_t bytes_up, uint64_t bytes_down,
                             int exit_status, const char *result)
{
    char key[STORE_ID_MAX + 1];
    int changes = 0, r;

    if ((r = store_check_len(result, STORE_RESULT_MAX)) != ERR_OK) {
        return r;
    }
    if (result == NULL || result[0] == '\0') {
        return ERR_INVALID;
    }
    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    /* Only an open row is closed: a second close (a reaper racing the
     * session's own close) finds none and never rewrites the report. */
    r = store_run(st, "session close",
                  "UPDATE sessions SET ended_at = $1, bytes_up = $2,"
                  " bytes_down = $3, exit_status = $4, result = $5"
                  " WHERE id = $6 AND ended_at IS NULL",
                  &changes, "iiiitt", ended_at != 0 ? ended_at : util_now(),
                  store_clamp_u64(bytes_up), store_clamp_u64(bytes_down),
                  (int64_t)exit_status, result, key);
    return r == ERR_OK && changes == 0 ? ERR_NOT_FOUND : r;
}

int store_session_open(struct store *st, const struct store_session *s)
{
    int r;

    if (s == NULL) {
        return ERR_INVALID;
    }
    if (st != NULL && st->rows_async != NULL) {
        char id[STORE_ID_MAX + 1];

        if ((r = session_check(s)) != ERR_OK) {
            return r;
        }
        if (!store_id_norm(s->id, id) ||
            (s->ended_at != 0 && s->result[0] == '\0')) {
            return ERR_INVALID;
        }
        return store_rows_put(st, STORE_ROW_OPEN, s);
    }
    if ((r = store_tx_begin_part(st, DB_PART_SESSIONS)) != ERR_OK) {
        return r;
    }
    return store_tx_end(st, session_insert(st, s));
}

int store_session_close(struct store *st, const char *id, int64_t ended_at,
                        uint64_t bytes_up, uint64_t bytes_down, int exit_status,
                        const char *result)
{
    int r;

    if (st != NULL && st->rows_async != NULL) {
        struct store_session s;

        memset(&s, 0, sizeof(s));
        /* the time it ended, not the time the write gets through */
        s.ended_at = ended_at != 0 ? ended_at : util_now();
        s.bytes_up = bytes_up;
        s.bytes_down = bytes_down;
        s.exit_status = exit_status;
        if ((r = store_check_len(result, STORE_RESULT_MAX)) != ERR_OK) {
            return r;
        }
        if (result == NULL || result[0] == '\0') {
            return ERR_INVALID;
        }
        if (!store_id_norm(id != NULL ? id : "", s.id)) {
            return ERR_NOT_FOUND;
        }
        snprintf(s.result, sizeof(s.result), "%s", result);
        return store_rows_put(st, STORE_ROW_CLOSE, &s);
    }
    if ((r = store_tx_begin_part(st, DB_PART_SESSIONS)) != ERR_OK) {
        return r;
    }
    return store_tx_end(st, session_close_row(st, id, ended_at, bytes_up,
                                              bytes_down, exit_status, result));
}

int store_session_batch(struct store *st, struct store_session_op *ops,
                        size_t n)
{
    size_t i;
    int r;

    if (n == 0) {
        return ERR_OK;
    }
    if (ops == NULL) {
        return ERR_INVALID;
    }
    if ((r = store_tx_begin_part(st, DB_PART_SESSIONS)) != ERR_OK) {
        return r;
    }
    /* One op's own failure (a bad field, a row already closed) is its
     * own: kept in ->r, the others are still written. Only a failure of
     * the database itself rolls the whole batch back. */
    for (i = 0; i < n; i++) {
        struct store_session_op *o = &ops[i];

        o->r = o->insert ? session_insert(st, &o->s)
                         : session_close_row(st, o->s.id, o->s.ended_at,
                                             o->s.bytes_up, o->s.bytes_down,
                                             o->s.exit_status, o->s.result);
        if (o->r != ERR_OK && o->r != ERR_INVALID && o->r != ERR_TOO_LONG &&
            o->r != ERR_NOT_FOUND) {
            r = o->r;
            break;
        }
    }
    return store_tx_end(st, r);
}

/* The UPDATE of store_session_update, inside the caller's transaction. */
static int session_update_row(struct store *st, const struct store_session *s)
{
    char key[STORE_ID_MAX + 1];
    int changes = 0, r;

    if ((r = session_check(s)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(s->id, key)) {
        return ERR_NOT_FOUND;
    }
    /* NULLIF(?, '') turns an empty argument into "keep the column". */
    r = store_run(
        st, "session update",
        "UPDATE sessions SET"
        " user_id = COALESCE(NULLIF($1, ''), user_id),"
        " user_name = COALESCE(NULLIF($2, ''), user_name),"
        " asset_id = COALESCE(NULLIF($3, ''), asset_id),"
        " asset_name = COALESCE(NULLIF($4, ''), asset_name),"
        " site = COALESCE(NULLIF($5, ''), site),"
        " kind = COALESCE(NULLIF($6, ''), kind),"
        " client_addr = COALESCE(NULLIF($7, ''), client_addr),"
        " route = COALESCE(NULLIF($8, ''), route),"
        " detail = COALESCE(NULLIF($9, ''), detail),"
        " recording_path = COALESCE(NULLIF($10, ''), recording_path),"
        " recording_sha256 = COALESCE(NULLIF($11, ''), recording_sha256),"
        " agent_node = COALESCE(NULLIF($12, ''), agent_node)"
        " WHERE id = $13",
        &changes, "ttttttttttttt", s->user_id, s->user_name, s->asset_id,
        s->asset_name, s->site, s->kind, s->client_addr, s->route, s->detail,
        s->recording_path, s->recording_sha256, s->agent_node, key);
    return r == ERR_OK && changes == 0 ? ERR_NOT_FOUND : r;
}

int store_session_update(struct store *st, const struct store_session *s)
{
    int r;

    if (s == NULL) {
        return ERR_INVALID;
    }
    if (st != NULL && st->rows_async != NULL) {
        char key[STORE_ID_MAX + 1];

        if ((r = session_check(s)) != ERR_OK) {
            return r;
        }
        if (!store_id_norm(s->id, key)) {
            return ERR_NOT_FOUND;
        }
        return store_rows_put(st, STORE_ROW_UPDATE, s);
    }
    if ((r = store_tx_begin_part(st, DB_PART_SESSIONS)) != ERR_OK) {
        return r;
    }
    return store_tx_end(st, session_update_row(st, s));
}

int store_session_get(struct store *st, const char *id,
                      struct store_session *out)
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
    store_rows_flush(st);
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_query(st, "session get",
                    "SELECT " SESSION_COLS " FROM sessions WHERE id = $1",
                    row_session, out, &rows, "t", key);
    if (r == ERR_OK && rows == 0) {
        r = ERR_NOT_FOUND;
    }
    return store_tx_end(st, r);
}

/*
 * The filter's clauses are chosen from constant fragments (store_sql);
 * only their values are bound.
 */
int store_session_list(struct store *st, const struct store_session_filter *f,
                       struct store_session **list, size_t *n)
{
    struct store_list l = {NULL, 0, 0, sizeof(struct store_session),
                           row_session};
    struct store_sql q;
    char abuf[STORE_ID_MAX + 1];
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    *list = NULL;
    *n = 0;
    memset(&q, 0, sizeof(q));
    store_sql_add(&q, "SELECT " SESSION_COLS " FROM sessions WHERE 1 = 1");
    if (f != NULL && f->user_name != NULL) {
        store_sql_param_text(&q, " AND user_name = ", f->user_name);
    }
    if (f != NULL && f->asset_id != NULL) {
        store_sql_param_text(&q, " AND asset_id = ",
                             store_id_norm(f->asset_id, abuf) ? abuf
                                                              : f->asset_id);
    }
    if (f != NULL && f->kind != NULL) {
        store_sql_param_text(&q, " AND kind = ", f->kind);
    }
    if (f != NULL && f->result_prefix != NULL) {
        store_sql_param_int(&q, " AND substr(result, 1, ",
                            store_utf8_chars(f->result_prefix));
        store_sql_param_text(&q, ") = ", f->result_prefix);
    }
    if (f != NULL && f->since != 0) {
        store_sql_param_int(&q, " AND started_at >= ", f->since);
    }
    if (f != NULL && f->until != 0) {
        store_sql_param_int(&q, " AND started_at <= ", f->until);
    }
    store_sql_add(&q, " ORDER BY started_at DESC, seq DESC");
    if (f != NULL && f->limit != 0) {
        store_sql_param_int(&q, " LIMIT ", store_clamp_u64(f->limit));
    }
    store_rows_flush(st);
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_sql_run(st, "session list", &q, store_list_row, &l);
    r = store_list_end(st, r, &l, NULL);
    *list = l.items;
    *n = l.n;
    return r;
}

int store_session_close_dangling(struct store *st, int64_t now,
                                 const char *result, int *count)
{
    int changes = 0, r;

    if (count != NULL) {
        *count = 0;
    }
    if ((r = store_check_len(result, STORE_RESULT_MAX)) != ERR_OK) {
        return r;
    }
    if (result == NULL || result[0] == '\0') {
        return ERR_INVALID;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    /* this node's rows and those of no node; another node's open rows are
     * its own to close (or the reaper's, store_node_reap, if it died) */
    r = store_run(st, "close dangling",
                  "UPDATE sessions SET ended_at = $1, result = $2"
                  " WHERE ended_at IS NULL AND node IN ('', $3)",
                  &changes, "itt", now != 0 ? now : util_now(), result,
                  st->node);
    if ((r = store_tx_end(st, r)) == ERR_OK && count != NULL) {
        *count = changes;
    }
    return r;
}

/* The UPDATE of store_session_set_recording, inside the caller's
 * transaction. */
static int session_recording_row(struct store *st, const char *id,
                                 const char *path, uint64_t size,
                                 const char *sha256)
{
    char key[STORE_ID_MAX + 1];
    int changes = 0, r;

    if ((r = store_check_len(path, STORE_PATH_MAX)) != ERR_OK ||
        (r = store_check_len(sha256, 64)) != ERR_OK) {
        return r;
    }
    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    r = store_run(st, "session recording",
                  "UPDATE sessions SET recording_path = $1,"
                  " recording_size = $2, recording_sha256 = $3"
                  " WHERE id = $4",
                  &changes, "titt", path != NULL ? path : "",
                  store_clamp_u64(size), sha256 != NULL ? sha256 : "", key);
    return r == ERR_OK && changes == 0 ? ERR_NOT_FOUND : r;
}

int store_session_set_recording(struct store *st, const char *id,
                                const char *path, uint64_t size,
                                const char *sha256)
{
    int r;

    if (st != NULL && st->rows_async != NULL) {
        struct store_session s;

        memset(&s, 0, sizeof(s));
        if ((r = store_check_len(path, STORE_PATH_MAX)) != ERR_OK ||
            (r = store_check_len(sha256, 64)) != ERR_OK) {
            return r;
        }
        if (!store_id_norm(id != NULL ? id : "", s.id)) {
            return ERR_NOT_FOUND;
        }
        snprintf(s.recording_path, sizeof(s.recording_path), "%s",
                 path != NULL ? path : "");
        snprintf(s.recording_sha256, sizeof(s.recording_sha256), "%s",
                 sha256 != NULL ? sha256 : "");
        s.recording_size = size;
        return store_rows_put(st, STORE_ROW_RECORDING, &s);
    }
    if ((r = store_tx_begin_part(st, DB_PART_SESSIONS)) != ERR_OK) {
        return r;
    }
    return store_tx_end(st, session_recording_row(st, id, path, size, sha256));
}

/* One write the report rows' writer queued (store_session_async.c),
 * inside the caller's write transaction. */
int store_session_apply(struct store *st, enum store_row_kind kind,
                        const struct store_session *s)
{
    switch (kind) {
    case STORE_ROW_OPEN:
        return session_insert(st, s);
    case STORE_ROW_CLOSE:
        return session_close_row(st, s->id, s->ended_at, s->bytes_up,
                                 s->bytes_down, s->exit_status, s->result);
    case STORE_ROW_RECORDING:
        return session_recording_row(st, s->id, s->recording_path,
                                     s->recording_size, s->recording_sha256);
    case STORE_ROW_UPDATE:
        return session_update_row(st, s);
    }
    return ERR_INTERNAL;
}

int store_session_list_expired(struct store *st, int64_t ended_before,
                               const char *after_id, size_t limit,
                               struct store_session **list, size_t *n)
{
    void *items = NULL;
    int r;

    if (list == NULL || n == NULL || limit == 0) {
        return ERR_INVALID;
    }
    /* Keyset paging by ID: a row the sweep could not delete is not seen
     * again in the same sweep. */
    r = store_list_query(
        st, "sessions expired",
        "SELECT " SESSION_COLS " FROM sessions"
        " WHERE ended_at IS NOT NULL AND ended_at < $1"
        " AND recording_path <> ''"
        " AND recording_deleted_at IS NULL AND id > $2"
        " ORDER BY id LIMIT $3",
        sizeof(struct store_session), row_session, NULL, &items, n, "iti",
        ended_before, after_id != NULL ? after_id : "", store_clamp_u64(limit));
    *list = items;
    return r;
}

int store_session_recording_deleted(struct store *st, const char *id,
                                    int64_t when)
{
    char key[STORE_ID_MAX + 1];

    if (!store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    return store_update_one(st, "session recording deleted",
                            "UPDATE sessions SET recording_size = 0,"
                            " recording_deleted_at = $1 WHERE id = $2",
                            "it", when != 0 ? when : util_now(), key);
}
