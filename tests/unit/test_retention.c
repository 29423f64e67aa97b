/*
 * Unit tests of the recording retention sweep (src/record/retention.h)
 * with a real store and recording files in a temporary directory: old
 * recordings are deleted, their rows marked and audited; recent ones,
 * open sessions, and anything outside the recordings directory (an
 * absolute path elsewhere, "..", a link to a file or a folder outside) are
 * left alone; a second sweep does nothing; many rows are paged through.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "record/retention.h"
#include "store/audit.h"
#include "store/store.h"

#define DAY 86400

struct fx {
    char dir[64];   /* the temporary directory */
    char rec[128];  /* its recordings folder */
    char out[128];  /* a folder outside it */
    char path[128]; /* the store */
    struct store *st;
    int64_t now;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_retention.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->rec, sizeof(f->rec), "%s/recordings", f->dir);
    snprintf(f->out, sizeof(f->out), "%s/outside", f->dir);
    snprintf(f->path, sizeof(f->path), "%s/portcullis.db", f->dir);
    if (mkdir(f->rec, 0700) != 0 || mkdir(f->out, 0700) != 0 ||
        store_open(f->path, &f->st) != ERR_OK) {
        free(f);
        return -1;
    }
    f->now = util_now();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[160];

    store_close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", f->dir);
    }
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_true(fputs(text, fp) >= 0);
    assert_int_equal(fclose(fp), 0);
}

static bool exists(const char *path)
{
    struct stat sb;

    return lstat(path, &sb) == 0;
}

/* A report row with a recording at path; ended_at 0 leaves it open. */
static void add_session(struct fx *f, char *id, int64_t started, int64_t ended,
                        const char *path)
{
    struct store_session s;

    memset(&s, 0, sizeof(s));
    util_uuid4(s.id);
    snprintf(s.user_name, sizeof(s.user_name), "alice");
    snprintf(s.kind, sizeof(s.kind), "shell");
    s.started_at = started;
    s.ended_at = ended;
    if (ended != 0) {
        snprintf(s.result, sizeof(s.result), "ok");
    }
    assert_int_equal(store_session_open(f->st, &s), ERR_OK);
    if (path != NULL) {
        assert_int_equal(
            store_session_set_recording(f->st, s.id, path, 6, "ab12"), ERR_OK);
    }
    strcpy(id, s.id);
}

static void get(struct fx *f, const char *id, struct store_session *s)
{
    assert_int_equal(store_session_get(f->st, id, s), ERR_OK);
}

static void test_sweep(void **state)
{
    struct fx *f = *state;
    char old[37], recent[37], open_[37], outside[37], dotdot[37], link[37];
    char dirlink[37], gone[37], none[37], rel[37];
    char p_old[256], p_recent[256], p_open[256], p_out[256], p_dotdot[256];
    char p_link[256], p_dirlink[256], p_gone[256], p_rel[256], p_tgt[256];
    struct audit_filter flt;
    struct audit_entry *ev = NULL;
    struct store_session s;
    int64_t bad = 0;
    size_t n = 0;
    int deleted = -1;

    /* date folders, as the server makes them */
    snprintf(p_tgt, sizeof(p_tgt), "%s/2026", f->rec);
    assert_int_equal(mkdir(p_tgt, 0700), 0);
    snprintf(p_tgt, sizeof(p_tgt), "%s/2026/01", f->rec);
    assert_int_equal(mkdir(p_tgt, 0700), 0);
    snprintf(p_tgt, sizeof(p_tgt), "%s/2026/01/01", f->rec);
    assert_int_equal(mkdir(p_tgt, 0700), 0);

    snprintf(p_old, sizeof(p_old), "%s/2026/01/01/old.cast", f->rec);
    snprintf(p_recent, sizeof(p_recent), "%s/recent.cast", f->rec);
    snprintf(p_open, sizeof(p_open), "%s/open.cast", f->rec);
    snprintf(p_out, sizeof(p_out), "%s/elsewhere.cast", f->out);
    snprintf(p_dotdot, sizeof(p_dotdot), "%s/../outside/elsewhere.cast",
             f->rec);
    snprintf(p_tgt, sizeof(p_tgt), "%s/target.cast", f->out);
    snprintf(p_link, sizeof(p_link), "%s/link.cast", f->rec);
    snprintf(p_gone, sizeof(p_gone), "%s/gone.cast", f->rec);
    snprintf(p_rel, sizeof(p_rel), "%s/relative.jsonl", f->rec);
    write_file(p_old, "old\n");
    write_file(p_recent, "recent\n");
    write_file(p_open, "open\n");
    write_file(p_out, "outside\n");
    write_file(p_tgt, "target\n");
    write_file(p_rel, "{}\n");
    /* a link to a file outside, and a link to the folder outside */
    assert_int_equal(symlink(p_tgt, p_link), 0);
    snprintf(p_dirlink, sizeof(p_dirlink), "%s/dirlink", f->rec);
    assert_int_equal(symlink(f->out, p_dirlink), 0);
    snprintf(p_dirlink, sizeof(p_dirlink), "%s/dirlink/target.cast", f->rec);

    add_session(f, old, f->now - 20 * DAY, f->now - 10 * DAY, p_old);
    add_session(f, recent, f->now - 2 * DAY, f->now - 1 * DAY, p_recent);
    add_session(f, open_, f->now - 30 * DAY, 0, p_open);
    add_session(f, outside, f->now - 30 * DAY, f->now - 30 * DAY, p_out);
    add_session(f, dotdot, f->now - 30 * DAY, f->now - 30 * DAY, p_dotdot);
    add_session(f, link, f->now - 30 * DAY, f->now - 30 * DAY, p_link);
    add_session(f, dirlink, f->now - 30 * DAY, f->now - 30 * DAY, p_dirlink);
    add_session(f, gone, f->now - 30 * DAY, f->now - 30 * DAY, p_gone);
    add_session(f, none, f->now - 30 * DAY, f->now - 30 * DAY, NULL);
    /* a path relative to the recordings folder */
    add_session(f, rel, f->now - 30 * DAY, f->now - 30 * DAY, "relative.jsonl");

    /* keep forever */
    assert_int_equal(record_retention_sweep(f->st, f->rec, 0, f->now, &deleted),
                     ERR_OK);
    assert_int_equal(deleted, 0);
    assert_true(exists(p_old));

    assert_int_equal(
        record_retention_sweep(f->st, f->rec, 7 * DAY, f->now, &deleted),
        ERR_OK);
    assert_int_equal(deleted, 3); /* old, gone, relative */
    assert_false(exists(p_old));
    assert_false(exists(p_rel));
    assert_true(exists(p_recent));
    assert_true(exists(p_open));
    assert_true(exists(p_out));
    assert_true(exists(p_tgt));
    assert_true(exists(p_link));

    get(f, old, &s);
    assert_int_equal(s.recording_deleted_at, f->now);
    assert_int_equal(s.recording_size, 0);
    assert_string_equal(s.recording_path, p_old);
    assert_string_equal(s.recording_sha256, "ab12");
    get(f, gone, &s);
    assert_int_equal(s.recording_deleted_at, f->now);
    get(f, recent, &s);
    assert_int_equal(s.recording_deleted_at, 0);
    assert_int_equal(s.recording_size, 6);
    get(f, open_, &s);
    assert_int_equal(s.recording_deleted_at, 0);
    get(f, outside, &s);
    assert_int_equal(s.recording_deleted_at, 0);
    get(f, dotdot, &s);
    assert_int_equal(s.recording_deleted_at, 0);
    get(f, link, &s);
    assert_int_equal(s.recording_deleted_at, 0);
    get(f, dirlink, &s);
    assert_int_equal(s.recording_deleted_at, 0);

    /* one audit event per deletion, chained */
    memset(&flt, 0, sizeof(flt));
    flt.action = "recording.delete";
    assert_int_equal(audit_list(f->st, &flt, &ev, &n), ERR_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(ev[i].actor, "system");
        assert_true(strcmp(ev[i].target, old) == 0 ||
                    strcmp(ev[i].target, gone) == 0 ||
                    strcmp(ev[i].target, rel) == 0);
        if (strcmp(ev[i].target, gone) == 0) {
            assert_non_null(strstr(ev[i].detail, "already missing"));
        }
        if (strcmp(ev[i].target, old) == 0) {
            assert_non_null(strstr(ev[i].detail, p_old));
        }
    }
    store_list_free(ev);
    assert_int_equal(audit_verify(f->st, &bad, NULL, 0), ERR_OK);

    /* nothing left to do */
    assert_int_equal(
        record_retention_sweep(f->st, f->rec, 7 * DAY, f->now, &deleted),
        ERR_OK);
    assert_int_equal(deleted, 0);
    (void)none;
}

/* More rows than one page. */
static void test_paging(void **state)
{
    struct fx *f = *state;
    char id[37], p[256];
    int deleted = -1, i, total = 2 * RETENTION_BATCH + 7;

    for (i = 0; i < total; i++) {
        snprintf(p, sizeof(p), "%s/r%d.cast", f->rec, i);
        write_file(p, "x");
        add_session(f, id, f->now - 9 * DAY, f->now - 8 * DAY, p);
    }
    assert_int_equal(
        record_retention_sweep(f->st, f->rec, 7 * DAY, f->now, &deleted),
        ERR_OK);
    assert_int_equal(deleted, total);
    for (i = 0; i < total; i++) {
        snprintf(p, sizeof(p), "%s/r%d.cast", f->rec, i);
        assert_false(exists(p));
    }
}

/* Rows that cannot be deleted do not stop the sweep, nor hold it in a
 * loop: with more such rows than a page, the ones after them still go. */
static void test_undeletable_do_not_block(void **state)
{
    struct fx *f = *state;
    char id[37], p[256], last[256];
    int deleted = -1, i;

    snprintf(p, sizeof(p), "%s/keep.cast", f->out);
    write_file(p, "x");
    for (i = 0; i < RETENTION_BATCH + 5; i++) {
        add_session(f, id, f->now - 9 * DAY, f->now - 8 * DAY, p);
    }
    snprintf(last, sizeof(last), "%s/last.cast", f->rec);
    write_file(last, "x");
    add_session(f, id, f->now - 9 * DAY, f->now - 8 * DAY, last);
    assert_int_equal(
        record_retention_sweep(f->st, f->rec, 7 * DAY, f->now, &deleted),
        ERR_OK);
    assert_int_equal(deleted, 1);
    assert_false(exists(last));
    assert_true(exists(p));
    snprintf(p, sizeof(p), "%s/missing-dir", f->dir);
    assert_int_equal(
        record_retention_sweep(f->st, p, 7 * DAY, f->now, &deleted), ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undeletable_do_not_block, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
