/*
 * Jobs (jobs.h).
 */
#include "store/jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

#define JOB_COLS                                                               \
    "id, started_by, agent_id, command, cwd, timeout, status,"                 \
    " exit_code, signal, why, started_at, finished_at, batch_id,"              \
    " concurrency, stop_on_failure, interpreter, batch_seq, sudo"
#define JOB_SELECT "SELECT " JOB_COLS " FROM jobs"

static int job_fill(struct db_stmt *s, void *item)
{
    struct store_job *j = item;

    store_col_text(s, 0, j->id, sizeof(j->id));
    store_col_text(s, 1, j->started_by, sizeof(j->started_by));
    store_col_text(s, 2, j->agent_id, sizeof(j->agent_id));
    store_col_text(s, 3, j->command, sizeof(j->command));
    store_col_text(s, 4, j->cwd, sizeof(j->cwd));
    j->timeout = db_col_int(s, 5);
    store_col_text(s, 6, j->status, sizeof(j->status));
    j->exit_code = db_col_null(s, 7) ? -1 : db_col_int(s, 7);
    j->signal = db_col_int(s, 8);
    store_col_text(s, 9, j->why, sizeof(j->why));
    j->started_at = db_col_int64(s, 10);
    j->finished_at = db_col_int64(s, 11);
    store_col_text(s, 12, j->batch_id, sizeof(j->batch_id));
    j->concurrency = db_col_int(s, 13);
    j->stop_on_failure = db_col_int(s, 14) != 0;
    store_col_text(s, 15, j->interpreter, sizeof(j->interpreter));
    j->batch_seq = db_col_int(s, 16);
    store_col_text(s, 17, j->sudo, sizeof(j->sudo));
    return ERR_OK;
}

int store_job_add(struct store *st, struct store_job *j)
{
    int r;

    if (j == NULL || store_check_text(j->agent_id, JOB_AGENT_MAX, true) ||
        store_check_len(j->command, JOB_CMD_MAX) || j->command[0] == '\0' ||
        store_check_len(j->cwd, JOB_CWDIR_MAX) ||
        store_check_len(j->started_by, JOB_BY_MAX) ||
        store_check_len(j->batch_id, STORE_ID_MAX) ||
        store_check_text(j->interpreter, JOB_INTERP_MAX, false) ||
        store_check_text(j->sudo, JOB_SUDO_MAX, false) ||
        (j->interpreter[0] != '\0') != (j->script != NULL) ||
        (j->script != NULL && strlen(j->script) > JOB_SCRIPT_MAX) ||
        (j->push != NULL && strlen(j->push) > JOB_PUSH_JSON_MAX)) {
        return ERR_INVALID;
    }
    util_uuid4(j->id);
    j->started_at = util_now();
    if (strcmp(j->status, "queued") != 0) {
        snprintf(j->status, sizeof(j->status), "running");
    }
    j->exit_code = -1;
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "job add",
                  "INSERT INTO jobs (id, started_by, agent_id, command, cwd,"
                  " timeout, status, started_at, batch_id, concurrency,"
                  " stop_on_failure, interpreter, script, batch_seq, push,"
                  " node, sudo)"
                  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
                  " $12, $13, $14, $15, $16, $17)",
                  NULL, "tttttititiittittt", j->id, j->started_by, j->agent_id,
                  j->command, j->cwd, (int64_t)j->timeout, j->status,
                  j->started_at, j->batch_id, (int64_t)j->concurrency,
                  (int64_t)(j->stop_on_failure ? 1 : 0), j->interpreter,
                  j->script, (int64_t)j->batch_seq, j->push,
                  strcmp(j->status, "running") == 0 ? st->node : "", j->sudo);
    return store_tx_end(st, r);
}

/* --- output: chunks appended to job_output (schema version 20) --- */

static int job_len_row(struct db_stmt *s, void *ctx)
{
    *(int64_t *)ctx = db_col_int64(s, 0);
    return ERR_OK;
}

/* Bytes of stream (1 stdout, 2 stderr) the store holds for job id: the
 * end of its last chunk (the primary key's order, one row read). */
static int job_out_stored(struct store *st, const char *id, int stream,
                          int64_t *len)
{
    *len = 0;
    return store_query(st, "job output length",
                       "SELECT pos + length(data) FROM job_output"
                       " WHERE job_id = $1 AND stream = $2"
                       " ORDER BY pos DESC LIMIT 1",
                       job_len_row, len, NULL, "ti", id, (int64_t)stream);
}

/* Appends what of p[0..n) lies beyond what the store holds of the stream
 * (inside the caller's write transaction). With replace, or when the
 * store holds more than n bytes (a result that is not the live output's
 * continuation), the stream's chunks are replaced by p whole. */
static int job_out_put(struct store *st, const char *id, int stream,
                       const uint8_t *p, size_t n, bool replace)
{
    int64_t have = 0;
    int r;

    if (n > JOB_OUT_MAX) {
        return ERR_INVALID;
    }
    if (!replace && (r = job_out_stored(st, id, stream, &have)) != ERR_OK) {
        return r;
    }
    if (replace || have > (int64_t)n) {
        if ((r = store_run(st, "job output replace",
                           "DELETE FROM job_output WHERE job_id = $1"
                           " AND stream = $2",
                           NULL, "ti", id, (int64_t)stream)) != ERR_OK) {
            return r;
        }
        have = 0;
    }
    if ((size_t)have == n) {
        return ERR_OK;
    }
    return store_run(st, "job output append",
                     "INSERT INTO job_output (job_id, stream, pos, data)"
                     " VALUES ($1, $2, $3, $4)",
                     NULL, "tiib", id, (int64_t)stream, have, p + have,
                     n - (size_t)have);
}

int store_job_finish(struct store *st, const struct store_job *j)
{
    int r;

    if (j->out_len > JOB_OUT_MAX || j->err_len > JOB_OUT_MAX) {
        return ERR_INVALID;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    return store_tx_end(st, store_job_finish_in(st, j));
}

int store_job_write_tx(struct store *st, int (*fn)(struct store *, void *),
                       void *arg)
{
    int r;

    /* a part of the write lock: the jobs' own rows only, read then
     * written (an output's end, then the bytes after it) */
    if ((r = store_tx_begin_part(st, DB_PART_JOBS)) != ERR_OK) {
        return r;
    }
    return store_tx_end(st, fn(st, arg));
}

int store_job_finish_in(struct store *st, const struct store_job *j)
{
    int r, n = 0;

    if (j->out_len > JOB_OUT_MAX || j->err_len > JOB_OUT_MAX) {
        return ERR_INVALID;
    }
    r = store_run(
        st, "job finish",
        "UPDATE jobs SET status = $1, exit_code = $2, signal = $3, why = $4,"
        " finished_at = $5, recoverable = $6 WHERE id = $7",
        &n, "tiitiit", j->status, (int64_t)j->exit_code, (int64_t)j->signal,
        j->why, util_now(), (int64_t)(strcmp(j->status, "lost") == 0 ? 1 : 0),
        j->id);
    if (r == ERR_OK && n == 0) {
        r = ERR_NOT_FOUND;
    }
    if (r == ERR_OK) {
        r = job_out_put(st, j->id, 1, j->out, j->out_len, j->out_whole);
    }
    if (r == ERR_OK) {
        r = job_out_put(st, j->id, 2, j->err, j->err_len, j->out_whole);
    }
    return r;
}

struct job_out_read {
    struct store_job *j;
    int64_t from[2];
};

/* Appends one chunk (rows come in stream, pos order) to j->out or
 * j->err; a chunk that starts before what is read so far (it cannot,
 * unless edited by hand) gives only its new part. */
static int job_out_row(struct db_stmt *s, void *ctx)
{
    struct job_out_read *rd = ctx;
    int stream = db_col_int(s, 0);
    int64_t pos = db_col_int64(s, 1);
    size_t n = 0, skip;
    const uint8_t *p = db_col_blob(s, 2, &n);
    uint8_t **buf;
    size_t *len;
    uint8_t *nb;
    int64_t end;

    if (stream != 1 && stream != 2) {
        return ERR_OK;
    }
    buf = stream == 1 ? &rd->j->out : &rd->j->err;
    len = stream == 1 ? &rd->j->out_len : &rd->j->err_len;
    end = rd->from[stream - 1] + (int64_t)*len;
    if (pos < 0 || pos + (int64_t)n <= end) {
        return ERR_OK;
    }
    skip = pos < end ? (size_t)(end - pos) : 0;
    if (*len + n - skip > JOB_OUT_MAX) {
        return ERR_STORE;
    }
    if ((nb = realloc(*buf, *len + n - skip + 1)) == NULL) {
        return ERR_NOMEM;
    }
    if (n > skip) {
        memcpy(nb + *len, p + skip, n - skip);
    }
    *buf = nb;
    *len += n - skip;
    return ERR_OK;
}

/* j's output from byte from_out of stdout and from_err of stderr on
 * (inside the caller's transaction): chunks that end after them. */
static int job_out_read(struct store *st, struct store_job *j, int64_t from_out,
                        int64_t from_err)
{
    struct job_out_read rd = {j, {from_out, from_err}};

    return store_query(st, "job output",
                       "SELECT stream, pos, data FROM job_output"
                       " WHERE job_id = $1 AND ((stream = 1 AND"
                       " pos + length(data) > $2) OR (stream = 2 AND"
                       " pos + length(data) > $3))"
                       " ORDER BY stream, pos",
                       job_out_row, &rd, NULL, "tii", j->id, from_out,
                       from_err);
}

static int job_fill_out(struct db_stmt *s, void *item)
{
    struct store_job *j = item;
    int r;

    job_fill(s, j);
    if ((r = store_col_blob_heap(s, 18, &j->out, &j->out_len)) != ERR_OK ||
        (r = store_col_blob_heap(s, 19, &j->err, &j->err_len)) != ERR_OK) {
        return r;
    }
    if (!db_col_null(s, 20) &&
        (r = store_col_str_heap(s, 20, &j->script)) != ERR_OK) {
        return r;
    }
    if (!db_col_null(s, 21)) {
        return store_col_str_heap(s, 21, &j->push);
    }
    return ERR_OK;
}

/* Drops the first from_out and from_err bytes of j's output (read from
 * the row's own columns). */
static int job_out_skip(struct store_job *j, size_t from_out, size_t from_err)
{
    size_t from[2] = {from_out, from_err};
    uint8_t **buf[2] = {&j->out, &j->err};
    size_t *len[2] = {&j->out_len, &j->err_len};

    for (int i = 0; i < 2; i++) {
        size_t k = from[i] < *len[i] ? from[i] : *len[i];
        if (k == 0) {
            continue;
        }
        memmove(*buf[i], *buf[i] + k, *len[i] - k);
        *len[i] -= k;
    }
    return ERR_OK;
}

int store_job_get(struct store *st, const char *id, struct store_job *out)
{
    return store_job_get_from(st, id, 0, 0, out);
}

int store_job_get_from(struct store *st, const char *id, size_t from_out,
                       size_t from_err, struct store_job *out)
{
    char key[STORE_ID_MAX + 1];
    int r;

    memset(out, 0, sizeof(*out));
    if (id == NULL || !store_id_norm(id, key)) {
        return ERR_NOT_FOUND;
    }
    from_out = from_out < JOB_OUT_MAX ? from_out : JOB_OUT_MAX;
    from_err = from_err < JOB_OUT_MAX ? from_err : JOB_OUT_MAX;
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    /* stdout and stderr of the row itself: NULL since version 20 moved
     * them into job_output; read in case a row still has them */
    r = store_query_one(st, "job get",
                        "SELECT id, started_by, agent_id, command, cwd,"
                        " timeout, status, exit_code, signal, why,"
                        " started_at, finished_at, batch_id, concurrency,"
                        " stop_on_failure, interpreter, batch_seq, sudo,"
                        " stdout, stderr, script, push FROM jobs WHERE id ="
                        " $1",
                        key, job_fill_out, out);
    if (r == ERR_OK && (out->out_len > 0 || out->err_len > 0)) {
        r = job_out_skip(out, from_out, from_err);
    }
    if (r == ERR_OK) {
        r = job_out_read(st, out, (int64_t)from_out, (int64_t)from_err);
    }
    if (r != ERR_OK) {
        store_job_free_output(out);
    }
    return store_tx_end(st, r);
}

void store_job_free_output(struct store_job *j)
{
    free(j->out);
    free(j->err);
    free(j->script);
    free(j->push);
    j->script = j->push = NULL;
    j->out = j->err = NULL;
    j->out_len = j->err_len = 0;
}

int store_job_list(struct store *st, int limit, struct store_job **list,
                   size_t *n)
{
    void *items = NULL;
    int r;

    *list = NULL;
    *n = 0;
    r = store_list_query(st, "job list",
                         JOB_SELECT " ORDER BY started_at DESC, id LIMIT $1",
                         sizeof(struct store_job), job_fill, NULL, &items, n,
                         "i", (int64_t)(limit > 0 ? limit : 1000));
    *list = items;
    return r;
}

int store_job_list_queued(struct store *st, struct store_job **list, size_t *n)
{
    /* Jobs for an agent another node holds are that node's to run, and a
     * batch with a concurrency limit can start at most that many at once:
     * neither fills the page beyond that, so that a long queue of them
     * cannot hide this node's other jobs behind it (the hub still checks
     * each agent and each batch's running count, in case they changed). */
    void *items = NULL;
    int r;

    *list = NULL;
    *n = 0;
    r = store_list_query(
        st, "job queued",
        "SELECT " JOB_COLS " FROM"
        " (SELECT " JOB_COLS ", ROW_NUMBER() OVER (PARTITION BY batch_id"
        " ORDER BY batch_seq, id) AS nth FROM jobs"
        " WHERE status = 'queued' AND NOT EXISTS"
        " (SELECT 1 FROM agents a WHERE a.id = jobs.agent_id"
        " AND a.online <> 0 AND a.node NOT IN ('', $1))) q"
        " WHERE batch_id = '' OR concurrency <= 0 OR nth <= concurrency"
        " ORDER BY started_at, batch_seq, id LIMIT 256",
        sizeof(struct store_job), job_fill, NULL, &items, n, "t", st->node);
    *list = items;
    return r;
}

int store_job_list_batch(struct store *st, const char *batch,
                         struct store_job **list, size_t *n)
{
    void *items = NULL;
    int r;

    *list = NULL;
    *n = 0;
    r = store_list_query(st, "job batch",
                         JOB_SELECT " WHERE batch_id = $1"
                                    " ORDER BY batch_seq, id",
                         sizeof(struct store_job), job_fill, NULL, &items, n,
                         "t", batch);
    *list = items;
    return r;
}

int store_job_claim(struct store *st, const char *id)
{
    return store_update_one(st, "job claim",
                            "UPDATE jobs SET status = 'running', node = $1"
                            " WHERE id = $2 AND status = 'queued'",
                            "tt", st->node, id);
}

int store_job_batch_running(struct store *st, const char *batch, int64_t *n)
{
    int r;

    *n = 0;
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_query(st, "job batch running",
                    "SELECT COUNT(*) FROM jobs WHERE batch_id = $1"
                    " AND status = 'running'",
                    store_int_row, n, NULL, "t", batch);
    return store_tx_end(st, r);
}

int store_job_batch_end(struct store *st, const char *batch, const char *status,
                        const char *why)
{
    int r;

    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    return store_tx_end(st, store_job_batch_end_in(st, batch, status, why));
}

int store_job_batch_end_in(struct store *st, const char *batch,
                           const char *status, const char *why)
{
    return store_run(st, "job batch skip",
                     "UPDATE jobs SET status = $1, finished_at = $2,"
                     " why = $3 WHERE batch_id = $4 AND status = 'queued'",
                     NULL, "titt", status, util_now(), why, batch);
}

int store_job_payload_add(struct store *st, const char *batch,
                          const uint8_t *data, size_t len)
{
    int r;

    if (len > JOB_PUSH_MAX) {
        return ERR_INVALID;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "job payload add",
                  "INSERT INTO job_payloads (batch_id, data) VALUES ($1, $2)",
                  NULL, "tb", batch, data, len);
    return store_tx_end(st, r);
}

struct job_payload {
    uint8_t *data;
    size_t len;
};

static int job_payload_fill(struct db_stmt *s, void *item)
{
    struct job_payload *p = item;

    return store_col_blob_heap(s, 0, &p->data, &p->len);
}

int store_job_payload_get(struct store *st, const char *batch, uint8_t **data,
                          size_t *len)
{
    struct job_payload p = {0};
    int r = store_get_one(st, "job payload get",
                          "SELECT data FROM job_payloads WHERE batch_id = $1",
                          batch, job_payload_fill, &p);

    *data = p.data;
    *len = p.len;
    return r;
}

int store_job_append_in(struct store *st, const char *id, int stream,
                        int64_t pos, const uint8_t *p, size_t n)
{
    int64_t running = 0, have = 0;
    size_t skip;
    int r;

    if ((stream != 1 && stream != 2) || pos < 0 ||
        (uint64_t)pos + n > JOB_OUT_MAX) {
        return ERR_INVALID;
    }
    if (n == 0) {
        return ERR_OK;
    }
    r = store_query(st, "job progress",
                    "SELECT COUNT(*) FROM jobs WHERE id = $1"
                    " AND status = 'running'",
                    store_int_row, &running, NULL, "t", id);
    if (r == ERR_OK && running == 0) {
        r = ERR_NOT_FOUND;
    }
    if (r == ERR_OK) {
        r = job_out_stored(st, id, stream, &have);
    }
    if (r != ERR_OK) {
        return r;
    }
    if (have < pos) {
        /* a gap (what came before was not written): the job's result
         * carries its whole output */
        return ERR_DENIED;
    }
    if (have >= pos + (int64_t)n) {
        return ERR_OK; /* written already */
    }
    skip = (size_t)(have - pos);
    return store_run(st, "job output append",
                     "INSERT INTO job_output (job_id, stream, pos, data)"
                     " VALUES ($1, $2, $3, $4)",
                     NULL, "tiib", id, (int64_t)stream, have, p + skip,
                     n - skip);
}

int store_job_unrecoverable_in(struct store *st, const char *id,
                               const char *why)
{
    int n = 0, r;

    if (why != NULL) {
        r = store_run(st, "job unrecoverable",
                      "UPDATE jobs SET recoverable = 0, why = $1"
                      " WHERE id = $2",
                      &n, "tt", why, id);
    } else {
        r = store_run(st, "job unrecoverable",
                      "UPDATE jobs SET recoverable = 0 WHERE id = $1", &n, "t",
                      id);
    }
    return r == ERR_OK && n == 0 ? ERR_NOT_FOUND : r;
}

int store_job_list_recoverable(struct store *st, const char *agent,
                               struct store_job **list, size_t *n)
{
    void *items = NULL;
    int r;

    *list = NULL;
    *n = 0;
    r = store_list_query(st, "job recoverable",
                         JOB_SELECT " WHERE agent_id = $1 AND status = 'lost'"
                                    " AND recoverable = 1"
                                    " ORDER BY started_at, id LIMIT 64",
                         sizeof(struct store_job), job_fill, NULL, &items, n,
                         "t", agent);
    *list = items;
    return r;
}

int store_job_unrecoverable(struct store *st, const char *id, const char *why)
{
    if (why != NULL) {
        return store_update_one(st, "job unrecoverable",
                                "UPDATE jobs SET recoverable = 0, why = $1"
                                " WHERE id = $2",
                                "tt", why, id);
    }
    return store_update_one(st, "job unrecoverable",
                            "UPDATE jobs SET recoverable = 0 WHERE id = $1",
                            "t", id);
}

int store_job_mark_lost(struct store *st)
{
    int r;

    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "job lost",
                  "UPDATE jobs SET status = 'lost', finished_at = $1,"
                  " why = 'the server restarted while the job ran',"
                  " recoverable = CASE WHEN status = 'running' THEN 1"
                  " ELSE 0 END"
                  " WHERE status = 'queued'"
                  " OR (status = 'running' AND node IN ('', $2))",
                  NULL, "it", util_now(), st->node);
    return store_tx_end(st, r);
}

int store_job_prune(struct store *st, int64_t before, int *deleted)
{
    int r, n = 0;

    if (deleted != NULL) {
        *deleted = 0;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "job prune",
                  "DELETE FROM jobs WHERE finished_at > 0 AND finished_at < $1"
                  " AND status NOT IN ('queued', 'running')",
                  &n, "i", before);
    if (r == ERR_OK && n > 0) {
        r = store_run(st, "job payload prune",
                      "DELETE FROM job_payloads WHERE batch_id NOT IN"
                      " (SELECT batch_id FROM jobs)",
                      NULL, "");
    }
    r = store_tx_end(st, r);
    if (r == ERR_OK && deleted != NULL) {
        *deleted = n;
    }
    return r;
}
