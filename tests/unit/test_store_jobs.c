/*
 * Unit tests for jobs, their batches, payloads and recovery marks, for
 * schedules and for client groups in the store (store_jobs.c,
 * store_schedules.c, store_client_groups.c) and job roles
 * (store_job_roles.c), through the interface
 * (store_fx.h: PORTCULLIS_TEST_STORE picks the store, so the same SQL runs
 * on SQLite and PostgreSQL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "store/access.h"
#include "store/agents.h"
#include "store/client_groups.h"
#include "store/jobs.h"
#include "store/nodes.h"
#include "store/schedules.h"
#include "store/store.h"
#include "store/store_internal.h"

#include "store_fx.h"

static int setup(void **state)
{
    return fx_setup(state, "/tmp/test_store_jobs.XXXXXX");
}

static struct store *S(void **state)
{
    return ((struct fx *)*state)->st;
}

static char push_json[] = "{\"path\":\"/srv/x\"}";
static char script[] = "echo hi\n";

/* Runs sql (text parameter $1 if arg) and gives the first column of its
 * first row as an integer. */
static int64_t sql_int(struct store *st, const char *sql, const char *arg)
{
    struct db_stmt *s = NULL;
    bool row = false;
    int64_t v = -1;

    assert_int_equal(db_prepare(store_db(st), "test", sql, &s), ERR_OK);
    if (arg != NULL) {
        assert_int_equal(db_bind_text(s, 1, arg), ERR_OK);
    }
    assert_int_equal(db_step(s, &row), ERR_OK);
    if (row) {
        v = db_col_int64(s, 0);
    }
    db_finalize(s);
    return v;
}

/* Chunks and bytes of job id's output in the store. */
static int64_t chunks(struct store *st, const char *id)
{
    return sql_int(st, "SELECT COUNT(*) FROM job_output WHERE job_id = $1", id);
}

static int64_t stored_bytes(struct store *st, const char *id)
{
    return sql_int(st,
                   "SELECT COALESCE(SUM(length(data)), 0) FROM job_output"
                   " WHERE job_id = $1",
                   id);
}

static void add_running(struct store *st, struct store_job *j)
{
    memset(j, 0, sizeof(*j));
    snprintf(j->agent_id, sizeof(j->agent_id), "ag");
    snprintf(j->command, sizeof(j->command), "yes");
    snprintf(j->status, sizeof(j->status), "running");
    j->timeout = 5;
    assert_int_equal(store_job_add(st, j), ERR_OK);
}

static void expect_output(struct store *st, const char *id, const char *out,
                          const char *err)
{
    static struct store_job got;

    assert_int_equal(store_job_get(st, id, &got), ERR_OK);
    assert_int_equal(got.out_len, strlen(out));
    assert_int_equal(got.err_len, strlen(err));
    if (strlen(out) > 0) {
        assert_memory_equal(got.out, out, strlen(out));
    }
    if (strlen(err) > 0) {
        assert_memory_equal(got.err, err, strlen(err));
    }
    store_job_free_output(&got);
}

/* Live output as the hub's writer appends it (hub_jobw.c): out from
 * byte opos and err from epos in one write transaction. */
struct prog {
    const char *id;
    int64_t opos, epos;
    const uint8_t *o, *e;
    size_t on, en;
    bool fail; /* then fails: the transaction rolls back */
};

static int prog_apply(struct store *st, void *arg)
{
    const struct prog *p = arg;
    int r = store_job_append_in(st, p->id, 1, p->opos, p->o, p->on);

    if (r == ERR_OK) {
        r = store_job_append_in(st, p->id, 2, p->epos, p->e, p->en);
    }
    return r == ERR_OK && p->fail ? ERR_STORE : r;
}

static int progress_at(struct store *st, const char *id, int64_t opos,
                       const uint8_t *o, size_t on, int64_t epos,
                       const uint8_t *e, size_t en)
{
    struct prog p = {id, opos, epos, o, e, on, en, false};

    return store_job_write_tx(st, prog_apply, &p);
}

/* The whole output so far (what the store holds of it is skipped). */
static int progress(struct store *st, const char *id, const uint8_t *o,
                    size_t on, const uint8_t *e, size_t en)
{
    return progress_at(st, id, 0, o, on, 0, e, en);
}

static void test_batches(void **state)
{
    struct store *st = S(state);
    static struct store_job j, got, *list;
    static const uint8_t bin[] = {0, 1, 2, 0xff, 0};
    uint8_t *data = NULL;
    size_t n = 0, len = 0;
    int64_t running = -1;
    char ids[3][STORE_ID_MAX + 1];

    for (int i = 0; i < 3; i++) {
        memset(&j, 0, sizeof(j));
        snprintf(j.agent_id, sizeof(j.agent_id), "ag%d", 2 - i);
        snprintf(j.command, sizeof(j.command), "[push /srv/x, 5 bytes]");
        snprintf(j.status, sizeof(j.status), "queued");
        snprintf(j.batch_id, sizeof(j.batch_id),
                 "00000000-0000-4000-8000-000000000001");
        j.batch_seq = i;
        j.concurrency = 1;
        j.stop_on_failure = true;
        j.timeout = 5;
        j.push = push_json;
        assert_int_equal(store_job_add(st, &j), ERR_OK);
        snprintf(ids[i], sizeof(ids[i]), "%s", j.id);
    }
    assert_int_equal(store_job_payload_add(st, j.batch_id, bin, sizeof(bin)),
                     ERR_OK);
    assert_int_equal(store_job_payload_get(st, j.batch_id, &data, &len),
                     ERR_OK);
    assert_int_equal(len, sizeof(bin));
    assert_memory_equal(data, bin, sizeof(bin));
    free(data);
    assert_int_equal(store_job_payload_get(st, "nope", &data, &len),
                     ERR_NOT_FOUND);
    /* the batch in its order, not by agent */
    assert_int_equal(store_job_list_batch(st, j.batch_id, &list, &n), ERR_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, ids[0]);
    assert_string_equal(list[2].agent_id, "ag0");
    assert_int_equal(list[1].batch_seq, 1);
    assert_true(list[1].stop_on_failure);
    free(list);
    assert_int_equal(store_job_claim(st, ids[0]), ERR_OK);
    assert_int_equal(store_job_batch_running(st, j.batch_id, &running), ERR_OK);
    assert_int_equal(running, 1);
    /* live output, then lost (recoverable), then skipped for the rest */
    assert_int_equal(progress(st, ids[0], bin, 3, NULL, 0), ERR_OK);
    assert_int_equal(store_job_get(st, ids[0], &got), ERR_OK);
    assert_int_equal(got.out_len, 3);
    assert_string_equal(got.push, "{\"path\":\"/srv/x\"}");
    store_job_free_output(&got);
    memset(&j, 0, sizeof(j));
    snprintf(j.id, sizeof(j.id), "%s", ids[0]);
    snprintf(j.status, sizeof(j.status), "lost");
    j.exit_code = -1;
    assert_int_equal(store_job_finish(st, &j), ERR_OK);
    assert_int_equal(store_job_batch_end(st,
                                         "00000000-0000-4000-8000-000000000001",
                                         "skipped", "an earlier job failed"),
                     ERR_OK);
    assert_int_equal(store_job_get(st, ids[2], &got), ERR_OK);
    assert_string_equal(got.status, "skipped");
    store_job_free_output(&got);
    assert_int_equal(store_job_list_recoverable(st, "ag2", &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    free(list);
    assert_int_equal(store_job_unrecoverable(st, ids[0], "gone"), ERR_OK);
    assert_int_equal(store_job_list_recoverable(st, "ag2", &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    free(list);
}

/* Retention: jobs that ended before the cut go with their output, and a
 * batch's pushed file once none of its jobs is left; queued and running
 * jobs stay whatever their age. */
static void test_prune(void **state)
{
    struct store *st = S(state);
    static struct store_job j, got;
    static uint8_t bin[] = {1, 2, 3};
    const char *batch = "00000000-0000-4000-8000-0000000000b1";
    char ids[4][STORE_ID_MAX + 1];
    uint8_t *data = NULL;
    size_t len = 0;
    int deleted = -1;

    /* 0: ends (batch), 1: stays running (batch), 2: queued, 3: ends */
    for (int i = 0; i < 4; i++) {
        memset(&j, 0, sizeof(j));
        snprintf(j.agent_id, sizeof(j.agent_id), "ag");
        snprintf(j.command, sizeof(j.command), "true");
        snprintf(j.status, sizeof(j.status), i == 2 ? "queued" : "running");
        if (i < 2) {
            snprintf(j.batch_id, sizeof(j.batch_id), "%s", batch);
        }
        j.timeout = 5;
        assert_int_equal(store_job_add(st, &j), ERR_OK);
        snprintf(ids[i], sizeof(ids[i]), "%s", j.id);
    }
    assert_int_equal(store_job_payload_add(st, batch, bin, sizeof(bin)),
                     ERR_OK);
    for (int i = 0; i < 4; i += 3) {
        memset(&j, 0, sizeof(j));
        memcpy(j.id, ids[i], sizeof(j.id));
        snprintf(j.status, sizeof(j.status), "ok");
        j.out = bin;
        j.out_len = sizeof(bin);
        assert_int_equal(store_job_finish(st, &j), ERR_OK);
        assert_int_equal(chunks(st, ids[i]), 1);
    }
    /* nothing ended that long ago */
    assert_int_equal(store_job_prune(st, 1000, &deleted), ERR_OK);
    assert_int_equal(deleted, 0);
    assert_int_equal(store_job_get(st, ids[0], &got), ERR_OK);
    store_job_free_output(&got);
    /* everything that ended, now */
    assert_int_equal(store_job_prune(st, INT64_MAX / 2, &deleted), ERR_OK);
    assert_int_equal(deleted, 2);
    assert_int_equal(store_job_get(st, ids[0], &got), ERR_NOT_FOUND);
    assert_int_equal(store_job_get(st, ids[3], &got), ERR_NOT_FOUND);
    /* their output with them */
    assert_int_equal(chunks(st, ids[0]) + chunks(st, ids[3]), 0);
    for (int i = 1; i < 3; i++) {
        assert_int_equal(store_job_get(st, ids[i], &got), ERR_OK);
        store_job_free_output(&got);
    }
    /* the batch still has a job: its file stays */
    assert_int_equal(store_job_payload_get(st, batch, &data, &len), ERR_OK);
    free(data);
    memset(&j, 0, sizeof(j));
    snprintf(j.id, sizeof(j.id), "%s", ids[1]);
    snprintf(j.status, sizeof(j.status), "failed");
    assert_int_equal(store_job_finish(st, &j), ERR_OK);
    assert_int_equal(store_job_prune(st, INT64_MAX / 2, &deleted), ERR_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(store_job_payload_get(st, batch, &data, &len),
                     ERR_NOT_FOUND);
    assert_int_equal(store_job_get(st, ids[2], &got), ERR_OK);
    assert_string_equal(got.status, "queued");
    store_job_free_output(&got);
}

/* Live output is appended, never rewritten: each progress write stores
 * only the bytes beyond what the store holds, the job's end only the
 * rest, and the output reads back whole and in order (issue 14). */
static void test_output_appended(void **state)
{
    struct store *st = S(state);
    static struct store_job j, got;
    static uint8_t o[] = "line 1\nline 2\nline 3\n", e[] = "warn\n",
                   o2[] = "LINE 1\nLINE 2\n";

    add_running(st, &j);
    assert_int_equal(chunks(st, j.id), 0);
    expect_output(st, j.id, "", "");
    assert_int_equal(progress(st, j.id, o, 7, NULL, 0), ERR_OK);
    assert_int_equal(progress(st, j.id, o, 14, e, 5), ERR_OK);
    /* nothing new: nothing written */
    assert_int_equal(progress(st, j.id, o, 14, e, 5), ERR_OK);
    assert_int_equal(chunks(st, j.id), 3);
    assert_int_equal(stored_bytes(st, j.id), 19);
    expect_output(st, j.id, "line 1\nline 2\n", "warn\n");
    /* a watcher that has 7 bytes of stdout and all of stderr */
    assert_int_equal(store_job_get_from(st, j.id, 7, 5, &got), ERR_OK);
    assert_int_equal(got.out_len, 7);
    assert_memory_equal(got.out, "line 2\n", 7);
    assert_int_equal(got.err_len, 0);
    assert_string_equal(got.status, "running");
    store_job_free_output(&got);
    /* beyond the end: nothing */
    assert_int_equal(store_job_get_from(st, j.id, 99, 99, &got), ERR_OK);
    assert_int_equal(got.out_len + got.err_len, 0);
    store_job_free_output(&got);
    /* the end adds the last line only */
    snprintf(j.status, sizeof(j.status), "ok");
    j.exit_code = 0;
    j.out = o;
    j.out_len = 21;
    j.err = e;
    j.err_len = 5;
    assert_int_equal(store_job_finish(st, &j), ERR_OK);
    assert_int_equal(chunks(st, j.id), 4);
    assert_int_equal(stored_bytes(st, j.id), 26);
    expect_output(st, j.id, "line 1\nline 2\nline 3\n", "warn\n");
    assert_int_equal(store_job_get(st, j.id, &got), ERR_OK);
    assert_string_equal(got.status, "ok");
    assert_int_equal(got.exit_code, 0);
    store_job_free_output(&got);
    /* a job that no longer runs takes no live output */
    assert_int_equal(progress(st, j.id, o, 21, e, 5), ERR_NOT_FOUND);
    assert_int_equal(progress(st, "nope", o, 21, e, 5), ERR_NOT_FOUND);
    /* a result shorter than what is stored replaces it */
    j.out_len = 6;
    j.err_len = 0;
    assert_int_equal(store_job_finish(st, &j), ERR_OK);
    expect_output(st, j.id, "line 1", "");
    /* and a recovered one (out_whole) replaces it whatever its length */
    j.out = o2;
    j.out_len = 14;
    j.out_whole = true;
    assert_int_equal(store_job_finish(st, &j), ERR_OK);
    expect_output(st, j.id, "LINE 1\nLINE 2\n", "");
    assert_int_equal(chunks(st, j.id), 1);
    j.out_whole = false;
    snprintf(j.id, sizeof(j.id), "00000000-0000-4000-8000-0000000000ff");
    assert_int_equal(store_job_finish(st, &j), ERR_NOT_FOUND);
}

/* The writer's appends from an offset: a gap (an earlier append not
 * written) writes nothing and says so; an overlap (an append written
 * twice) writes only its new part; a failed batch leaves nothing. */
static void test_output_append_at(void **state)
{
    struct store *st = S(state);
    static struct store_job j;
    static uint8_t o[] = "abcdefghij", e[] = "XYZ";
    struct prog p;

    add_running(st, &j);
    assert_int_equal(progress_at(st, j.id, 0, o, 4, 0, e, 1), ERR_OK);
    expect_output(st, j.id, "abcd", "X");
    /* bytes 6.. while the store holds 4: nothing, ERR_DENIED */
    assert_int_equal(progress_at(st, j.id, 6, o + 6, 2, 1, NULL, 0),
                     ERR_DENIED);
    expect_output(st, j.id, "abcd", "X");
    /* 2..8 again and on: only 4..8 is new */
    assert_int_equal(progress_at(st, j.id, 2, o + 2, 6, 1, e + 1, 2), ERR_OK);
    expect_output(st, j.id, "abcdefgh", "XYZ");
    /* all of it already there: nothing */
    assert_int_equal(progress_at(st, j.id, 0, o, 8, 0, e, 3), ERR_OK);
    assert_int_equal(chunks(st, j.id), 4);
    /* a batch that fails after its append: rolled back */
    p = (struct prog){j.id, 8, 3, o + 8, e, 2, 0, true};
    assert_int_equal(store_job_write_tx(st, prog_apply, &p), ERR_STORE);
    expect_output(st, j.id, "abcdefgh", "XYZ");
    /* bad arguments */
    assert_int_equal(progress_at(st, j.id, -1, o, 1, 0, NULL, 0), ERR_INVALID);
    assert_int_equal(progress_at(st, j.id, JOB_OUT_MAX, o, 1, 0, NULL, 0),
                     ERR_INVALID);
    /* the end carries the rest */
    snprintf(j.status, sizeof(j.status), "ok");
    j.out = o;
    j.out_len = 10;
    j.err = e;
    j.err_len = 3;
    p = (struct prog){j.id, 8, 3, o + 8, e, 2, 0, false};
    assert_int_equal(store_job_write_tx(st, prog_apply, &p), ERR_OK);
    expect_output(st, j.id, "abcdefghij", "XYZ");
    j.exit_code = 0;
    assert_int_equal(store_job_finish(st, &j), ERR_OK);
    expect_output(st, j.id, "abcdefghij", "XYZ");
    /* ended: an append is refused */
    assert_int_equal(progress_at(st, j.id, 10, o, 1, 3, NULL, 0),
                     ERR_NOT_FOUND);
}

/* Each stream holds at most JOB_OUT_MAX bytes (the agent's 4 MiB and its
 * truncation marker): that much is stored and read back, a byte more is
 * refused and changes nothing. */
static void test_output_cap(void **state)
{
    struct store *st = S(state);
    static struct store_job j, got;
    uint8_t *big = malloc(JOB_OUT_MAX + 1);
    static const char marker[] = "\n[output truncated at 4 MiB]\n";

    assert_non_null(big);
    for (size_t i = 0; i < JOB_OUT_MAX + 1; i++) {
        big[i] = (uint8_t)('a' + i % 26);
    }
    memcpy(big + JOB_OUT_MAX - strlen(marker), marker, strlen(marker));
    add_running(st, &j);
    assert_int_equal(progress(st, j.id, big, JOB_OUT_MAX / 3, big, 10), ERR_OK);
    assert_int_equal(progress(st, j.id, big, JOB_OUT_MAX + 1, NULL, 0),
                     ERR_INVALID);
    assert_int_equal(stored_bytes(st, j.id), JOB_OUT_MAX / 3 + 10);
    snprintf(j.status, sizeof(j.status), "ok");
    j.out = big;
    j.out_len = JOB_OUT_MAX + 1;
    assert_int_equal(store_job_finish(st, &j), ERR_INVALID);
    j.out_len = JOB_OUT_MAX;
    j.err = big;
    j.err_len = 10;
    assert_int_equal(store_job_finish(st, &j), ERR_OK);
    assert_int_equal(stored_bytes(st, j.id), JOB_OUT_MAX + 10);
    assert_int_equal(store_job_get(st, j.id, &got), ERR_OK);
    assert_int_equal(got.out_len, JOB_OUT_MAX);
    assert_memory_equal(got.out, big, JOB_OUT_MAX);
    assert_memory_equal(got.out + JOB_OUT_MAX - strlen(marker), marker,
                        strlen(marker));
    assert_int_equal(got.err_len, 10);
    store_job_free_output(&got);
    free(big);
}

/* The job_output step (schema version 20) moves the output of existing jobs
 * (jobs.stdout and jobs.stderr) into job_output: a store taken back to version
 * 18 with output in the old columns reads the same after it migrates again. */
static void test_output_migrated(void **state)
{
    struct fx *f = *state;
    static struct store_job j;
    struct db_stmt *s = NULL;
    bool row = false;
    int v = 0, vjo = 0;

    FX_NEED_SHARED(f);
    for (size_t i = 0; i < store_migrations_count; i++) {
        if (strstr(store_migrations[i].sql, "CREATE TABLE job_output") !=
            NULL) {
            vjo = store_migrations[i].version;
        }
    }
    assert_true(vjo > 0);
    add_running(f->st, &j);
    snprintf(j.status, sizeof(j.status), "failed");
    assert_int_equal(store_job_finish(f->st, &j), ERR_OK);
    /* as a store before that step held it (it is the last step: were a
     * later one added, rolling back to it would run that one twice) */
    assert_int_equal(db_exec(store_db(f->st), "test", "DROP TABLE job_output"),
                     ERR_OK);
    assert_int_equal(db_prepare(store_db(f->st), "test",
                                "UPDATE jobs SET stdout = $1, stderr = $2"
                                " WHERE id = $3",
                                &s),
                     ERR_OK);
    assert_int_equal(db_bind_blob(s, 1, "old\0out", 7), ERR_OK);
    assert_int_equal(db_bind_blob(s, 2, "old err", 7), ERR_OK);
    assert_int_equal(db_bind_text(s, 3, j.id), ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    db_finalize(s);
    assert_int_equal(
        db_prepare(store_db(f->st), "test",
                   "DELETE FROM schema_version WHERE version >= $1", &s),
        ERR_OK);
    assert_int_equal(db_bind_int64(s, 1, vjo), ERR_OK);
    assert_int_equal(db_step(s, &row), ERR_OK);
    db_finalize(s);
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(store_open(f->path, &f->st), ERR_OK);
    assert_int_equal(store_schema_version(f->st, &v), ERR_OK);
    assert_int_equal(v, (int)store_migrations_count);
    assert_int_equal(chunks(f->st, j.id), 2);
    assert_int_equal(sql_int(f->st,
                             "SELECT COUNT(*) FROM jobs WHERE id = $1"
                             " AND stdout IS NULL AND stderr IS NULL",
                             j.id),
                     1);
    {
        static struct store_job got;
        assert_int_equal(store_job_get(f->st, j.id, &got), ERR_OK);
        assert_int_equal(got.out_len, 7);
        assert_memory_equal(got.out, "old\0out", 7);
        assert_int_equal(got.err_len, 7);
        assert_memory_equal(got.err, "old err", 7);
        store_job_free_output(&got);
    }
}

static void test_schedules(void **state)
{
    struct store *st = S(state);
    static struct store_schedule s, got, *list;
    size_t n = 0;

    memset(&s, 0, sizeof(s));
    snprintf(s.name, sizeof(s.name), "nightly");
    snprintf(s.cron, sizeof(s.cron), "0 3 * * *");
    snprintf(s.agents, sizeof(s.agents), "[]");
    snprintf(s.tags, sizeof(s.tags), "[\"prod\"]");
    snprintf(s.groups, sizeof(s.groups), "[\"web\"]");
    snprintf(s.interpreter, sizeof(s.interpreter), "sh");
    s.script = script;
    s.timeout = 60;
    s.last_fire = 600;
    assert_int_equal(store_schedule_add(st, &s), ERR_OK);
    got = s; /* a failed add gives s a new ID */
    assert_int_equal(store_schedule_add(st, &s), ERR_EXISTS);
    s = got;
    assert_int_equal(
        store_schedule_mark(st, s.id, 660, 1, 0, 1000,
                            "00000000-0000-4000-8000-00000000000b"),
        ERR_OK);
    assert_int_equal(store_schedule_mark(st, s.id, 900, 0, 4, 2000, ""),
                     ERR_OK);
    /* a minute is claimed once (each node of a cluster ticks) */
    assert_int_equal(store_schedule_claim(st, s.id, 900), ERR_NOT_FOUND);
    assert_int_equal(store_schedule_claim(st, s.id, 840), ERR_NOT_FOUND);
    assert_int_equal(store_schedule_claim(st, s.id, 960), ERR_OK);
    assert_int_equal(store_schedule_claim(st, s.id, 960), ERR_NOT_FOUND);
    assert_int_equal(
        store_schedule_claim(st, "00000000-0000-4000-8000-0000000000ff", 1020),
        ERR_NOT_FOUND);
    assert_int_equal(store_schedule_mark(st, s.id, 960, 0, 0, 2100, ""),
                     ERR_OK);
    assert_int_equal(store_schedule_get(st, "nightly", &got), ERR_OK);
    assert_int_equal(got.last_fire, 960);
    store_schedule_release(&got);
    assert_int_equal(store_schedule_mark(st, s.id, 900, 0, 0, 2000, ""),
                     ERR_OK);
    assert_int_equal(store_schedule_get(st, "nightly", &got), ERR_OK);
    assert_int_equal(got.last_fire, 900);
    assert_int_equal(got.fired, 1);
    assert_int_equal(got.missed, 4);
    assert_int_equal(got.last_missed_at, 2000);
    assert_string_equal(got.last_batch, "00000000-0000-4000-8000-00000000000b");
    assert_string_equal(got.script, "echo hi\n");
    assert_string_equal(got.groups, "[\"web\"]");
    assert_true(got.enabled); /* a new schedule fires */
    store_schedule_release(&got);
    /* disabled, then enabled again (by ID only) */
    assert_int_equal(store_schedule_set_enabled(st, s.id, false), ERR_OK);
    assert_int_equal(store_schedule_get(st, "nightly", &got), ERR_OK);
    assert_false(got.enabled);
    store_schedule_release(&got);
    assert_int_equal(store_schedule_set_enabled(st, s.id, true), ERR_OK);
    assert_int_equal(store_schedule_get(st, s.id, &got), ERR_OK);
    assert_true(got.enabled);
    store_schedule_release(&got);
    assert_int_equal(store_schedule_set_enabled(st, "nightly", false),
                     ERR_NOT_FOUND);
    assert_int_equal(store_schedule_set_enabled(
                         st, "00000000-0000-4000-8000-0000000000ff", false),
                     ERR_NOT_FOUND);
    assert_int_equal(store_schedule_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    store_schedule_list_free(list, n);
    assert_int_equal(store_schedule_delete(st, s.id), ERR_OK);
    assert_int_equal(store_schedule_delete(st, "nightly"), ERR_NOT_FOUND);
}

static void test_client_groups(void **state)
{
    struct store *st = S(state);
    static struct store_client_group g, got, *list;
    size_t n = 0;

    memset(&g, 0, sizeof(g));
    snprintf(g.name, sizeof(g.name), "web");
    snprintf(g.agents, sizeof(g.agents), "[\"a1\"]");
    snprintf(g.rules, sizeof(g.rules), "{\"tags\":[\"prod\"]}");
    assert_int_equal(store_client_group_add(st, &g), ERR_OK);
    got = g; /* a failed add gives g a new ID */
    assert_int_equal(store_client_group_add(st, &g), ERR_EXISTS);
    g = got;
    assert_int_equal(store_client_group_get(st, g.id, &got), ERR_OK);
    assert_string_equal(got.rules, "{\"tags\":[\"prod\"]}");
    /* the static members replaced; the rules stay */
    assert_int_equal(store_client_group_set_agents(st, g.id, "[\"a1\",\"a2\"]"),
                     ERR_OK);
    assert_int_equal(store_client_group_get(st, "web", &got), ERR_OK);
    assert_string_equal(got.agents, "[\"a1\",\"a2\"]");
    assert_string_equal(got.rules, "{\"tags\":[\"prod\"]}");
    assert_int_equal(store_client_group_set_agents(
                         st, "00000000-0000-4000-8000-0000000000ff", "[]"),
                     ERR_NOT_FOUND);
    assert_int_equal(store_client_group_set_agents(st, "web", "[]"),
                     ERR_INVALID);
    assert_int_equal(store_client_group_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    free(list);
    assert_int_equal(store_client_group_delete(st, "web"), ERR_OK);
    assert_int_equal(store_client_group_get(st, "web", &got), ERR_NOT_FOUND);
}

/* Upper-cases the hex letters of an ID in place. */
static void upper(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s >= 'a' && *s <= 'f') {
            *s = (char)(*s - 'a' + 'A');
        }
    }
}

/* store_schedule_get and store_client_group_get take a name or an ID (in
 * either case); nothing else names a row (store_get_named). */
static void test_get_by_name_or_id(void **state)
{
    struct store *st = S(state);
    static struct store_schedule s, sgot;
    static struct store_client_group g, ggot;
    char id[STORE_ID_MAX + 1];
    static const char *const none[] = {"", "nope",
                                       "00000000-0000-4000-8000-000000000000",
                                       "nightly ", "NIGHTLY"};

    memset(&s, 0, sizeof(s));
    snprintf(s.name, sizeof(s.name), "nightly");
    snprintf(s.cron, sizeof(s.cron), "0 3 * * *");
    snprintf(s.command, sizeof(s.command), "true");
    s.timeout = 60;
    assert_int_equal(store_schedule_add(st, &s), ERR_OK);
    memset(&g, 0, sizeof(g));
    snprintf(g.name, sizeof(g.name), "nightly"); /* another noun's name */
    snprintf(g.agents, sizeof(g.agents), "[]");
    snprintf(g.rules, sizeof(g.rules), "{}");
    assert_int_equal(store_client_group_add(st, &g), ERR_OK);

    assert_int_equal(store_schedule_get(st, "nightly", &sgot), ERR_OK);
    assert_string_equal(sgot.id, s.id);
    store_schedule_release(&sgot);
    snprintf(id, sizeof(id), "%s", s.id);
    upper(id);
    assert_int_equal(store_schedule_get(st, id, &sgot), ERR_OK);
    assert_string_equal(sgot.name, "nightly");
    store_schedule_release(&sgot);
    assert_int_equal(store_client_group_get(st, "nightly", &ggot), ERR_OK);
    assert_string_equal(ggot.id, g.id);
    snprintf(id, sizeof(id), "%s", g.id);
    upper(id);
    assert_int_equal(store_client_group_get(st, id, &ggot), ERR_OK);
    assert_string_equal(ggot.name, "nightly");
    /* one noun's ID is not another's */
    assert_int_equal(store_client_group_get(st, s.id, &ggot), ERR_NOT_FOUND);
    assert_string_equal(ggot.id, "");
    assert_int_equal(store_schedule_get(st, g.id, &sgot), ERR_NOT_FOUND);
    assert_string_equal(sgot.id, "");
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        assert_int_equal(store_schedule_get(st, none[i], &sgot), ERR_NOT_FOUND);
        assert_int_equal(store_client_group_get(st, none[i], &ggot),
                         ERR_NOT_FOUND);
    }
    assert_int_equal(store_schedule_get(st, NULL, &sgot), ERR_NOT_FOUND);
    assert_int_equal(store_client_group_get(st, NULL, &ggot), ERR_NOT_FOUND);
}

static void test_job_roles(void **state)
{
    struct store *st = S(state);
    static struct store_client_group g;
    struct store_user alice;
    struct store_group ops;
    struct store_job_role jr, r2;
    struct store_job_role_row *list = NULL;
    char(*ids)[STORE_ID_MAX + 1] = NULL;
    char id[STORE_ID_MAX + 1];
    size_t n = 0;

    assert_string_equal(job_role_str(JOB_ROLE_PUSHER), "job-pusher");
    assert_string_equal(job_role_str(0), "none");
    assert_string_equal(job_role_str(4), "none");
    assert_int_equal(job_role_parse("job-scheduler"), JOB_ROLE_SCHEDULER);
    assert_int_equal(job_role_parse("none"), -1);
    assert_int_equal(job_role_parse("Job-runner"), -1);
    assert_int_equal(job_role_parse(NULL), -1);

    memset(&g, 0, sizeof(g));
    snprintf(g.name, sizeof(g.name), "web");
    snprintf(g.agents, sizeof(g.agents), "[]");
    snprintf(g.rules, sizeof(g.rules), "{}");
    assert_int_equal(store_client_group_add(st, &g), ERR_OK);
    assert_int_equal(store_user_add(st, "alice", "", false, &alice), ERR_OK);
    assert_int_equal(store_group_add(st, "ops", &ops), ERR_OK);
    assert_int_equal(store_group_member_add(st, ops.id, alice.id), ERR_OK);

    /* to a user (an ID in upper case is the same ID) and to a group */
    memset(&jr, 0, sizeof(jr));
    snprintf(jr.client_group_id, sizeof(jr.client_group_id), "%s", g.id);
    snprintf(jr.user_id, sizeof(jr.user_id), "%s", alice.id);
    upper(jr.user_id);
    jr.role = JOB_ROLE_RUNNER;
    assert_int_equal(store_job_role_add(st, &jr), ERR_OK);
    memset(&r2, 0, sizeof(r2));
    snprintf(r2.client_group_id, sizeof(r2.client_group_id), "%s", g.id);
    snprintf(r2.group_id, sizeof(r2.group_id), "%s", ops.id);
    r2.role = JOB_ROLE_PUSHER;
    assert_int_equal(store_job_role_add(st, &r2), ERR_OK);
    assert_int_equal(store_job_role_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].r.user_id, alice.id);
    assert_string_equal(list[0].grantee, "alice");
    assert_string_equal(list[1].grantee, "ops");
    assert_string_equal(list[1].client_group, "web");
    free(list);
    /* alice pushes through ops */
    assert_int_equal(
        store_job_role_groups(st, alice.id, JOB_ROLE_PUSHER, &ids, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], g.id);
    free(ids);

    /* a grantee is exactly one user or one group, by ID */
    r2.role = JOB_ROLE_RUNNER;
    snprintf(r2.user_id, sizeof(r2.user_id), "%s", alice.id);
    assert_int_equal(store_job_role_add(st, &r2), ERR_INVALID); /* both */
    r2.user_id[0] = r2.group_id[0] = '\0';
    assert_int_equal(store_job_role_add(st, &r2), ERR_INVALID); /* none */
    snprintf(r2.user_id, sizeof(r2.user_id), "alice");
    assert_int_equal(store_job_role_add(st, &r2), ERR_INVALID); /* a name */
    snprintf(r2.user_id, sizeof(r2.user_id), "%s", alice.id);
    r2.role = 0;
    assert_int_equal(store_job_role_add(st, &r2), ERR_INVALID);
    r2.role = JOB_ROLE_RUNNER;
    assert_int_equal(store_job_role_add(st, &r2), ERR_EXISTS);

    /* delete by ID (either case), once */
    snprintf(id, sizeof(id), "%s", jr.id);
    upper(id);
    assert_int_equal(store_job_role_delete(st, id), ERR_OK);
    assert_int_equal(store_job_role_delete(st, jr.id), ERR_NOT_FOUND);
    assert_int_equal(store_job_role_delete(st, "web"), ERR_NOT_FOUND);
    assert_int_equal(store_job_role_delete(st, NULL), ERR_NOT_FOUND);
    assert_int_equal(store_job_role_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    free(list);
}

/* The queued page leaves out the jobs of an agent another node holds:
 * more than a page of them must not hide this node's own jobs (review
 * of issue 14: starvation). */
#define N1 "11111111111111111111111111111111"
#define N2 "22222222222222222222222222222222"

static void test_queued_skips_other_nodes_agents(void **state)
{
    struct store *st = S(state);
    static struct store_job j, *list;
    static struct store_agent a;
    char mine[STORE_ID_MAX + 1];
    size_t n = 0;
    bool far = false;

    /* agent "far" is online on node N2 */
    assert_int_equal(store_set_node(st, N2), ERR_OK);
    snprintf(a.id, sizeof(a.id), "far");
    assert_int_equal(store_agent_online(st, &a, 1000), ERR_OK);
    for (int i = 0; i < 300; i++) {
        memset(&j, 0, sizeof(j));
        snprintf(j.agent_id, sizeof(j.agent_id), "far");
        snprintf(j.command, sizeof(j.command), "true");
        snprintf(j.status, sizeof(j.status), "queued");
        j.timeout = 5;
        assert_int_equal(store_job_add(st, &j), ERR_OK);
    }
    memset(&j, 0, sizeof(j));
    snprintf(j.agent_id, sizeof(j.agent_id), "near");
    snprintf(j.command, sizeof(j.command), "true");
    snprintf(j.status, sizeof(j.status), "queued");
    j.timeout = 5;
    assert_int_equal(store_job_add(st, &j), ERR_OK);
    snprintf(mine, sizeof(mine), "%s", j.id);
    /* node N1 sees its own job, and none of N2's */
    assert_int_equal(store_set_node(st, N1), ERR_OK);
    assert_int_equal(store_job_list_queued(st, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, mine);
    free(list);
    /* node N2 sees a page of its agent's jobs first */
    assert_int_equal(store_set_node(st, N2), ERR_OK);
    assert_int_equal(store_job_list_queued(st, &list, &n), ERR_OK);
    assert_int_equal(n, 256);
    for (size_t i = 0; i < n; i++) {
        far = far || strcmp(list[i].agent_id, "far") == 0;
    }
    assert_true(far);
    free(list);
}

/* A batch with a concurrency limit fills the queued page with no more
 * than its limit: a big batch on one-at-a-time does not hide the jobs
 * queued after it. */
static void test_queued_page_not_filled_by_a_limited_batch(void **state)
{
    struct store *st = S(state);
    static struct store_job j, *list;
    char mine[STORE_ID_MAX + 1];
    size_t n = 0;

    for (int i = 0; i < 300; i++) {
        memset(&j, 0, sizeof(j));
        snprintf(j.agent_id, sizeof(j.agent_id), "ag%d", i);
        snprintf(j.command, sizeof(j.command), "true");
        snprintf(j.status, sizeof(j.status), "queued");
        snprintf(j.batch_id, sizeof(j.batch_id),
                 "00000000-0000-4000-8000-000000000002");
        j.batch_seq = i;
        j.concurrency = 2;
        j.timeout = 5;
        assert_int_equal(store_job_add(st, &j), ERR_OK);
    }
    memset(&j, 0, sizeof(j));
    snprintf(j.agent_id, sizeof(j.agent_id), "lone");
    snprintf(j.command, sizeof(j.command), "true");
    snprintf(j.status, sizeof(j.status), "queued");
    j.timeout = 5;
    assert_int_equal(store_job_add(st, &j), ERR_OK);
    snprintf(mine, sizeof(mine), "%s", j.id);
    assert_int_equal(store_job_list_queued(st, &list, &n), ERR_OK);
    /* the batch's first two and the lone job (the same second: any order) */
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_true(strcmp(list[i].agent_id, "ag0") == 0 ||
                    strcmp(list[i].agent_id, "ag1") == 0 ||
                    strcmp(list[i].id, mine) == 0);
    }
    assert_string_not_equal(list[0].agent_id, list[1].agent_id);
    assert_string_not_equal(list[1].agent_id, list[2].agent_id);
    assert_string_not_equal(list[0].agent_id, list[2].agent_id);
    free(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_appended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_append_at, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_migrated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schedules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_by_name_or_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_job_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_skips_other_nodes_agents,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_queued_page_not_filled_by_a_limited_batch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
