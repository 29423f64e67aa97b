/*
 * Unit tests of the audit log (src/store/audit.h, store_audit.c) on a real
 * SQLite file: appending, listing with filters, verifying an intact chain,
 * and the tampering an auditor must see: a row edited, deleted from the
 * middle, two rows swapped, the last row deleted, a character moved from
 * one field into the next. Edits go through the sqlite3 API on the same
 * file, as someone with the sqlite3 shell would make them. Two processes
 * appending at once must still form one chain.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/err.h"
#include "common/util.h"
#include "store/audit.h"
#include "store/store.h"

#include "store_fx.h"

static int setup(void **state)
{
    return fx_setup(state, "/tmp/test_audit.XXXXXX");
}

/* Five events: seq 1..5. */
static void write_five(struct store *st)
{
    assert_int_equal(
        audit_write(st, "admin", "127.0.0.1:5000", "login.ok", "admin", ""),
        ERR_OK);
    assert_int_equal(audit_write(st, "cli:root", "cli", "user.add", "bob",
                                 "--password-stdin"),
                     ERR_OK);
    assert_int_equal(
        audit_write(st, "bob", "10.0.0.9:4242", "login.fail", "bob", "pw"),
        ERR_OK);
    assert_int_equal(
        audit_write(st, "cli:root", "cli", "group.add", "ops", NULL), ERR_OK);
    assert_int_equal(audit_write(st, "system", "retention", "recording.delete",
                                 "s1", "path=/x"),
                     ERR_OK);
}

/* Runs one SQL statement on the file behind the store's back. */
static void raw_sql(const struct fx *f, const char *sql)
{
    sqlite3 *db = NULL;
    char *err = NULL;

    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fail_msg("%s: %s", sql, err != NULL ? err : "?");
    }
    assert_int_equal(sqlite3_changes(db) > 0, 1);
    sqlite3_close(db);
}

/* Verifies and expects the chain to break at `want`; returns why. */
static void expect_bad(const struct fx *f, int64_t want, const char *needle)
{
    char why[256] = "";
    int64_t bad = -1, count = -1;

    assert_int_equal(audit_verify_count(f->st, &count, &bad, why, sizeof(why)),
                     ERR_CRYPTO);
    if (bad != want || strstr(why, needle) == NULL) {
        fail_msg("bad seq %lld (want %lld), why \"%s\" (want \"%s\")",
                 (long long)bad, (long long)want, why, needle);
    }
    assert_int_equal(audit_verify(f->st, &bad, why, sizeof(why)), ERR_CRYPTO);
    assert_int_equal(bad, want);
}

static void expect_ok(const struct fx *f, int64_t n)
{
    char why[256] = "";
    int64_t bad = -1, count = -1;

    assert_int_equal(audit_verify_count(f->st, &count, &bad, why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(bad, 0);
    assert_int_equal(count, n);
    assert_string_equal(why, "");
}

static void test_append_list_filter(void **state)
{
    struct fx *f = *state;
    struct audit_filter flt;
    struct audit_entry *list = NULL;
    int64_t now = util_now();
    size_t n = 0;

    write_five(f->st);
    assert_int_equal(audit_list(f->st, NULL, &list, &n), ERR_OK);
    assert_int_equal(n, 5);
    /* Newest first, every field as written. */
    assert_int_equal(list[0].seq, 5);
    assert_int_equal(list[4].seq, 1);
    assert_string_equal(list[4].actor, "admin");
    assert_string_equal(list[4].source, "127.0.0.1:5000");
    assert_string_equal(list[4].action, "login.ok");
    assert_string_equal(list[4].target, "admin");
    assert_string_equal(list[3].detail, "--password-stdin");
    assert_string_equal(list[1].detail, ""); /* NULL is stored as "" */
    assert_true(list[0].time >= now && list[0].time <= util_now());
    assert_int_equal(strlen(list[0].hash), 64);
    assert_string_not_equal(list[0].hash, list[1].hash);
    store_list_free(list);

    memset(&flt, 0, sizeof(flt));
    flt.actor = "cli:root";
    assert_int_equal(audit_list(f->st, &flt, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].action, "group.add");
    assert_string_equal(list[1].action, "user.add");
    store_list_free(list);

    memset(&flt, 0, sizeof(flt));
    flt.action = "login.";
    assert_int_equal(audit_list(f->st, &flt, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].action, "login.fail");
    assert_string_equal(list[1].action, "login.ok");
    store_list_free(list);

    flt.limit = 1;
    assert_int_equal(audit_list(f->st, &flt, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].seq, 3);
    store_list_free(list);

    memset(&flt, 0, sizeof(flt));
    flt.since = now + 3600;
    assert_int_equal(audit_list(f->st, &flt, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_list_free(list);
    flt.since = now - 3600;
    flt.until = now - 1800;
    assert_int_equal(audit_list(f->st, &flt, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_list_free(list);
    flt.until = util_now();
    assert_int_equal(audit_list(f->st, &flt, &list, &n), ERR_OK);
    assert_int_equal(n, 5);
    store_list_free(list);
}

static void test_refusals(void **state)
{
    struct fx *f = *state;
    char big[AUDIT_DETAIL_MAX + 2];

    assert_int_equal(audit_write(f->st, "a", "b", "", "t", ""), ERR_INVALID);
    assert_int_equal(audit_write(f->st, "a", "b", NULL, "t", ""), ERR_INVALID);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(audit_write(f->st, "a", "b", "c", "t", big), ERR_TOO_LONG);
    big[AUDIT_FIELD_MAX + 1] = '\0';
    assert_int_equal(audit_write(f->st, big, "b", "c", "t", ""), ERR_TOO_LONG);
    big[AUDIT_FIELD_MAX] = '\0';
    assert_int_equal(audit_write(f->st, big, "b", "c", "t", ""), ERR_OK);
    expect_ok(f, 1);
}

static void test_verify_ok(void **state)
{
    struct fx *f = *state;

    expect_ok(f, 0); /* an empty log is intact */
    write_five(f->st);
    expect_ok(f, 5);
    /* Reopening changes nothing. */
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(store_open(f->path, &f->st), ERR_OK);
    expect_ok(f, 5);
}

static void test_edited_row(void **state)
{
    struct fx *f = *state;

    write_five(f->st);
    raw_sql(f, "UPDATE audit SET detail = 'nothing to see' WHERE seq = 3");
    expect_bad(f, 3, "changed");
}

static void test_edited_time(void **state)
{
    struct fx *f = *state;

    write_five(f->st);
    raw_sql(f, "UPDATE audit SET time = time - 86400 WHERE seq = 2");
    expect_bad(f, 2, "changed");
}

/* Length-prefixed fields: moving a byte from one field to the next
 * changes the hash although the concatenation is the same. */
static void test_moved_between_fields(void **state)
{
    struct fx *f = *state;

    write_five(f->st);
    /* seq 4: action "group.add", target "ops" */
    raw_sql(f, "UPDATE audit SET action = 'group.ad', target = 'dops'"
               " WHERE seq = 4");
    expect_bad(f, 4, "changed");
}

static void test_deleted_middle(void **state)
{
    struct fx *f = *state;

    write_five(f->st);
    raw_sql(f, "DELETE FROM audit WHERE seq = 3");
    /* The entry after the gap is named, the why names the missing one. */
    expect_bad(f, 4, "entry 3 is missing");
}

/* Deleted and the rest renumbered to hide the gap: the next entry's
 * previous hash no longer matches. */
static void test_deleted_renumbered(void **state)
{
    struct fx *f = *state;

    write_five(f->st);
    raw_sql(f, "DELETE FROM audit WHERE seq = 2");
    raw_sql(f, "UPDATE audit SET seq = seq - 1 WHERE seq > 2");
    raw_sql(f, "UPDATE audit_head SET seq = 4");
    expect_bad(f, 2, "does not follow");
}

static void test_swapped(void **state)
{
    struct fx *f = *state;

    write_five(f->st);
    /* Rows 2 and 3 trade everything but their seq. */
    raw_sql(f, "UPDATE audit SET seq = -2 WHERE seq = 2");
    raw_sql(f, "UPDATE audit SET seq = 2 WHERE seq = 3");
    raw_sql(f, "UPDATE audit SET seq = 3 WHERE seq = -2");
    expect_bad(f, 2, "does not follow");
}

static void test_swapped_fields_only(void **state)
{
    struct fx *f = *state;

    write_five(f->st);
    /* Rows 1 and 2 trade their events but keep their hashes. */
    raw_sql(f, "UPDATE audit SET"
               " actor = (SELECT actor FROM audit WHERE seq = 2),"
               " source = (SELECT source FROM audit WHERE seq = 2),"
               " action = (SELECT action FROM audit WHERE seq = 2),"
               " target = (SELECT target FROM audit WHERE seq = 2),"
               " detail = (SELECT detail FROM audit WHERE seq = 2)"
               " WHERE seq = 1");
    expect_bad(f, 1, "changed");
}

static void test_deleted_last(void **state)
{
    struct fx *f = *state;

    write_five(f->st);
    raw_sql(f, "DELETE FROM audit WHERE seq = 5");
    expect_bad(f, 5, "truncated");
    raw_sql(f, "DELETE FROM audit WHERE seq >= 3");
    expect_bad(f, 3, "entries 3 to 5 are missing at the end");
}

/* An append after tampering does not heal it: it chains to the recorded
 * head, so the gap stays visible. */
static void test_append_after_truncation(void **state)
{
    struct fx *f = *state;

    write_five(f->st);
    raw_sql(f, "DELETE FROM audit WHERE seq = 5");
    assert_int_equal(audit_write(f->st, "x", "cli", "user.add", "eve", ""),
                     ERR_OK);
    expect_bad(f, 6, "entry 5 is missing");
}

static void test_head_removed(void **state)
{
    struct fx *f = *state;

    write_five(f->st);
    raw_sql(f, "DELETE FROM audit_head");
    expect_bad(f, 0, "head");
    assert_int_not_equal(audit_write(f->st, "x", "y", "z", "", ""), ERR_OK);
}

#define CONC_N 40

static int conc_writes(struct store *st, const char *who)
{
    char target[32];
    int fails = 0;

    for (int i = 0; i < CONC_N; i++) {
        snprintf(target, sizeof(target), "%s-%d", who, i);
        if (audit_write(st, who, "test", "conc.write", target, "") != ERR_OK) {
            fails++;
        }
    }
    return fails;
}

/* Two processes append at once: every event lands once, in one chain. */
static void test_two_writers(void **state)
{
    struct fx *f = *state;
    struct audit_entry *list = NULL;
    struct audit_filter flt;
    size_t n = 0;
    pid_t pid;
    int status = 0, fails;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *mine = NULL;
        int r;

        if (store_open(f->path, &mine) != ERR_OK) {
            _exit(100);
        }
        r = conc_writes(mine, "child");
        store_close(mine);
        _exit(r > 99 ? 99 : r);
    }
    fails = conc_writes(f->st, "parent");
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(fails, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    expect_ok(f, 2 * CONC_N);
    memset(&flt, 0, sizeof(flt));
    flt.actor = "child";
    assert_int_equal(audit_list(f->st, &flt, &list, &n), ERR_OK);
    assert_int_equal(n, CONC_N);
    store_list_free(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_list_filter, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edited_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edited_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_between_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deleted_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_renumbered, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_swapped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swapped_fields_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deleted_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_after_truncation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_head_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
