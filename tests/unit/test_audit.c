/*
 * Unit tests of the audit log (src/store/audit.h, store_audit.c) on a real
 * SQLite file: appending, listing with filters, verifying an intact chain,
 * and the tampering an auditor must see: a row edited, deleted from the
 * middle, two rows swapped, the last row deleted, a character moved from
 * one field into the next. Edits go through the sqlite3 API on the same
 * file, as someone with the sqlite3 shell would make them. Two processes
 * appending at once must still form one chain. The key: a chain rewritten
 * whole with the old unkeyed formula (what anyone with the database could
 * do) fails once the log is keyed; an old unkeyed log stays verifiable up
 * to the switch and is pinned by it.
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

#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>

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

/* --- the key ------------------------------------------------------------ */

/* The unkeyed (v1) entry hash of store_audit.c, written again here from
 * its description: what someone who has the database but not the key
 * would compute. */
static void v1_u64(crypto_hash_sha256_state *h, uint64_t v)
{
    uint8_t x[8];

    for (int i = 0; i < 8; i++) {
        x[i] = (uint8_t)(v >> (56 - 8 * i));
    }
    crypto_hash_sha256_update(h, x, 8);
}

static void v1_field(crypto_hash_sha256_state *h, const void *p, size_t n)
{
    uint8_t x[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                    (uint8_t)n};

    crypto_hash_sha256_update(h, x, 4);
    crypto_hash_sha256_update(h, p, n);
}

/* Rewrites every prev_hash and hash from entry `from` on, and the head,
 * with the unkeyed formula, through the sqlite3 API behind the store's
 * back. */
static void rewrite_unkeyed(const struct fx *f, int64_t from)
{
    static const char g[] = "portcullis audit v1 genesis";
    uint8_t prev[32], h[32];
    char prev_hex[65], hex[65], sql[512];
    crypto_hash_sha256_state st;
    sqlite3_stmt *q = NULL;
    sqlite3 *db = NULL;
    int64_t seq = 0;

    crypto_hash_sha256(prev, (const unsigned char *)g, sizeof(g) - 1);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT seq, time, actor, source, action, target,"
                           " detail, hash FROM audit ORDER BY seq",
                           -1, &q, NULL),
        SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
        seq = sqlite3_column_int64(q, 0);
        if (seq < from) {
            assert_int_equal(
                sodium_hex2bin(prev, 32,
                               (const char *)sqlite3_column_text(q, 7), 64,
                               NULL, NULL, NULL),
                0);
            continue;
        }
        crypto_hash_sha256_init(&st);
        v1_field(&st, "portcullis audit v1", 19);
        crypto_hash_sha256_update(&st, prev, 32);
        v1_u64(&st, (uint64_t)seq);
        v1_u64(&st, (uint64_t)sqlite3_column_int64(q, 1));
        for (int i = 2; i < 7; i++) {
            v1_field(&st, sqlite3_column_blob(q, i),
                     (size_t)sqlite3_column_bytes(q, i));
        }
        crypto_hash_sha256_final(&st, h);
        sodium_bin2hex(prev_hex, sizeof(prev_hex), prev, 32);
        sodium_bin2hex(hex, sizeof(hex), h, 32);
        snprintf(sql, sizeof(sql),
                 "UPDATE audit SET prev_hash = '%s', hash = '%s'"
                 " WHERE seq = %lld",
                 prev_hex, hex, (long long)seq);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        memcpy(prev, h, 32);
    }
    sqlite3_finalize(q);
    sodium_bin2hex(hex, sizeof(hex), prev, 32);
    snprintf(sql, sizeof(sql), "UPDATE audit_head SET hash = '%s'", hex);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void key_path(const struct fx *f, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/audit.key", f->dir);
}

static void test_keyed_from_the_start(void **state)
{
    struct fx *f = *state;
    struct audit_verify_result res;
    char path[160], got[4096];
    struct stat sb;

    write_five(f->st);
    key_path(f, path, sizeof(path));
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, 32);
    assert_int_equal(audit_key_path(f->st, got, sizeof(got)), ERR_OK);
    assert_string_equal(got, path);
    assert_int_equal(audit_verify_full(f->st, NULL, &res), ERR_OK);
    assert_true(res.keyed);
    assert_int_equal(res.keyed_from, 1);
    assert_int_equal(res.count, 5);
    assert_int_equal(strlen(res.key_id), 16);
}

/* The defect: the whole chain rewritten with the unkeyed formula used to
 * verify; with the key it does not. */
static void test_rewritten_whole_without_the_key(void **state)
{
    struct fx *f = *state;
    struct audit_verify_result res;
    char path[160], moved[170];

    write_five(f->st);
    raw_sql(f, "UPDATE audit SET actor = 'mallory' WHERE seq = 1");
    rewrite_unkeyed(f, 1);
    expect_bad(f, 1, "no entry is keyed");
    /* Without the key file the same chain looks consistent: what verify
     * proved before keying, and all it can prove without the key. */
    key_path(f, path, sizeof(path));
    snprintf(moved, sizeof(moved), "%s.away", path);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(audit_verify_full(f->st, NULL, &res), ERR_OK);
    assert_false(res.keyed);
    assert_int_equal(res.count, 5);
    /* ...and the key, given explicitly (a copy elsewhere), still tells. */
    assert_int_equal(audit_verify_full(f->st, moved, &res), ERR_CRYPTO);
    assert_int_equal(res.bad_seq, 1);
    assert_int_equal(rename(moved, path), 0);
    /* The next honest, keyed append does not make the rewritten entries
     * pass for an old unkeyed log: only the marker may follow them. */
    assert_int_equal(audit_write(f->st, "x", "cli", "user.add", "eve", ""),
                     ERR_OK);
    expect_bad(f, 5, "does not start with its marker");
}

/* Rewriting only the newest entries, keeping the keyed start: the first
 * rewritten one is named. */
static void test_rewritten_tail_without_the_key(void **state)
{
    struct fx *f = *state;

    write_five(f->st);
    raw_sql(f, "UPDATE audit SET detail = 'nothing' WHERE seq = 4");
    rewrite_unkeyed(f, 3);
    expect_bad(f, 3,
               "hashed without the audit key after keyed hashing "
               "started at entry 1");
}

/* A log from before keyed hashing (no key file, unkeyed hashes) stays
 * verifiable: the first write after the upgrade makes the key, writes the
 * marker, and from there every entry is keyed. */
static void test_migration_from_unkeyed(void **state)
{
    struct fx *f = *state;
    struct audit_verify_result res;
    struct audit_entry *list = NULL;
    struct audit_filter flt;
    char path[160];
    size_t n = 0;

    write_five(f->st);
    key_path(f, path, sizeof(path));
    assert_int_equal(unlink(path), 0);
    rewrite_unkeyed(f, 1); /* what an older version wrote */
    assert_int_equal(audit_verify_full(f->st, NULL, &res), ERR_OK);
    assert_false(res.keyed);

    assert_int_equal(audit_write(f->st, "admin", "cli", "user.add", "eve", ""),
                     ERR_OK);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(audit_verify_full(f->st, NULL, &res), ERR_OK);
    assert_true(res.keyed);
    assert_int_equal(res.keyed_from, 6);
    assert_int_equal(res.count, 7);
    memset(&flt, 0, sizeof(flt));
    flt.action = "audit.keyed";
    assert_int_equal(audit_list(f->st, &flt, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].seq, 6);
    assert_non_null(strstr(list[0].detail, res.key_id));
    store_list_free(list);

    /* The old part is pinned by the first keyed entry: rewriting it with
     * the unkeyed formula (consistently) breaks the chain there. */
    raw_sql(f, "UPDATE audit SET target = 'nobody' WHERE seq = 2");
    rewrite_unkeyed(f, 1);
    expect_bad(f, 1, "no entry is keyed");
}

/* A missing key is not quietly replaced: a keyed log refuses new entries
 * until the key is back, and verify without it says so. */
static void test_key_missing_or_loose(void **state)
{
    struct fx *f = *state;
    char path[160], moved[170];

    write_five(f->st);
    key_path(f, path, sizeof(path));
    snprintf(moved, sizeof(moved), "%s.away", path);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(audit_write(f->st, "x", "cli", "user.add", "eve", ""),
                     ERR_CRYPTO);
    assert_int_equal(access(path, F_OK), -1);
    expect_bad(f, 1, "keyed with an audit key this check does not have");
    assert_int_equal(rename(moved, path), 0);
    expect_ok(f, 5);
    /* a key others may read is refused, by writers and by verify */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(audit_write(f->st, "x", "cli", "user.add", "eve", ""),
                     ERR_CRYPTO);
    assert_int_equal(audit_verify(f->st, NULL, NULL, 0), ERR_CRYPTO);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(audit_write(f->st, "x", "cli", "user.add", "eve", ""),
                     ERR_OK);
    expect_ok(f, 6);
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

/* Writes a spool as the server does (store_audit.c's format, sealed here
 * independently): lines[] are the texts before their seals. */
static void write_spool(const struct fx *f, const char *path,
                        const char *const *lines, size_t n)
{
    static const char tag[] = "portcullis audit spool v1";
    unsigned char key[32], prev[32] = {0};
    char keypath[sizeof(f->dir) + 16], hex[65];
    crypto_auth_hmacsha256_state h;
    FILE *fp, *kf;
    size_t i;

    snprintf(keypath, sizeof(keypath), "%s/audit.key", f->dir);
    assert_non_null(kf = fopen(keypath, "r"));
    assert_int_equal(fread(key, 1, sizeof(key), kf), sizeof(key));
    fclose(kf);
    assert_non_null(fp = fopen(path, "w"));
    for (i = 0; i < n; i++) {
        crypto_auth_hmacsha256_init(&h, key, sizeof(key));
        crypto_auth_hmacsha256_update(&h, (const unsigned char *)tag,
                                      sizeof(tag));
        crypto_auth_hmacsha256_update(&h, prev, sizeof(prev));
        crypto_auth_hmacsha256_update(&h, (const unsigned char *)lines[i],
                                      strlen(lines[i]));
        crypto_auth_hmacsha256_final(&h, prev);
        sodium_bin2hex(hex, sizeof(hex), prev, sizeof(prev));
        fprintf(fp, "%s %s\n", lines[i], hex);
    }
    fclose(fp);
}

static void b64(char *out, size_t outlen, const char *s)
{
    sodium_bin2base64(out, outlen, (const unsigned char *)s, strlen(s),
                      sodium_base64_VARIANT_ORIGINAL);
}

/* The spool of a server stopped during a database outage (audit_spool):
 * its events are queued first, kept again when the store closes before
 * they are written, and written with the time they happened; the file
 * goes once they are. */
static void test_spool(void **state)
{
    struct fx *f = *state;
    struct audit_entry *list = NULL;
    struct audit_filter flt;
    char path[sizeof(f->dir) + 32], ev1[512], ev2[512], a[64], s1[64], s2[64],
        d1[128], d2[64];
    const char *lines[3];
    size_t n = 0, written = 0;

    /* the first write makes the key */
    assert_int_equal(audit_write(f->st, "cli:root", "cli", "init", "", ""),
                     ERR_OK);
    snprintf(path, sizeof(path), "%s/audit-pending", f->dir);
    b64(a, sizeof(a), "alice");
    b64(s1, sizeof(s1), "10.0.0.1:50000");
    b64(s2, sizeof(s2), "session.end");
    b64(d1, sizeof(d1), "error: interrupted \xff");
    b64(d2, sizeof(d2), "tunnel");
    snprintf(ev1, sizeof(ev1), "1000 %s %s %s - %s", a, s1, s2, d1);
    snprintf(ev2, sizeof(ev2), "1001 %s %s %s %s -", a, s1, s2, d2);
    lines[0] = ev1;
    lines[1] = ev2;
    lines[2] = "end 2 3";
    write_spool(f, path, lines, 3);
    audit_defer(f->st, 100); /* as the server's handle */
    assert_int_equal(audit_spool(f->st, path), ERR_OK);
    assert_int_equal(audit_waiting(f->st), 3); /* two events, one note */

    /* closed before they are written: kept again, and read again */
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(store_open(f->path, &f->st), ERR_OK);
    audit_defer(f->st, 100);
    assert_int_equal(audit_spool(f->st, path), ERR_OK);
    assert_int_equal(audit_waiting(f->st), 3);
    assert_int_equal(access(path, F_OK), 0);

    assert_int_equal(audit_write(f->st, "bob", "cli", "user.add", "x", ""),
                     ERR_OK);
    assert_int_equal(audit_write_waiting(f->st, &written), ERR_OK);
    assert_int_equal(written, 3); /* the new one behind the spool's */
    assert_int_equal(audit_waiting(f->st), 0);
    assert_int_equal(access(path, F_OK), -1);

    memset(&flt, 0, sizeof(flt));
    assert_int_equal(audit_list(f->st, &flt, &list, &n), ERR_OK);
    assert_int_equal(n, 5); /* newest first */
    assert_string_equal(list[0].action, "audit.lost");
    assert_string_equal(list[1].action, "user.add");
    assert_string_equal(list[2].action, "session.end");
    assert_int_equal(list[2].time, 1001);
    assert_string_equal(list[2].detail, "");
    assert_string_equal(list[2].target, "tunnel");
    assert_int_equal(list[3].time, 1000);
    assert_string_equal(list[3].actor, "alice");
    assert_string_equal(list[3].target, "");
    assert_string_equal(list[3].detail, "error: interrupted \xff");
    store_list_free(list);
    expect_ok(f, 5);
}

/* A spool someone edited, cut short, or sealed with another key is not
 * written: set aside, and said in the chain. */
static void test_spool_tampered(void **state)
{
    struct fx *f = *state;
    struct audit_entry *list = NULL;
    struct audit_filter flt;
    char path[sizeof(f->dir) + 32], aside[sizeof(path) + 16], ev1[256],
        ev2[256], a[64], b[64], c[64];
    const char *lines[3];
    size_t n = 0, written = 0, k;
    FILE *fp;
    const char *const why[] = {"does not match", "cut short", "does not match"};

    assert_int_equal(audit_write(f->st, "cli:root", "cli", "init", "", ""),
                     ERR_OK);
    audit_defer(f->st, 100);
    snprintf(path, sizeof(path), "%s/audit-pending", f->dir);
    snprintf(aside, sizeof(aside), "%s.rejected", path);
    b64(a, sizeof(a), "alice");
    b64(b, sizeof(b), "mallory");
    b64(c, sizeof(c), "login.ok");
    snprintf(ev1, sizeof(ev1), "1000 %s %s %s - -", a, a, c);
    snprintf(ev2, sizeof(ev2), "1000 %s %s %s - -", b, a, c);
    for (k = 0; k < 3; k++) {
        lines[0] = ev1;
        lines[1] = "end 1 0";
        write_spool(f, path, lines, k == 1 ? 1 : 2);
        if (k == 0) { /* alice's event made mallory's after sealing */
            char *text = NULL;
            size_t len = 0;

            assert_int_equal(
                util_read_file(path, 4096, (uint8_t **)&text, &len), ERR_OK);
            memcpy(strstr(text, a), b, strlen(a));
            assert_non_null(fp = fopen(path, "w"));
            fputs(text, fp);
            fclose(fp);
            free(text);
        }
        if (k == 2) { /* another event appended after the end */
            assert_non_null(fp = fopen(path, "a"));
            fprintf(fp, "%s %064d\n", ev2, 0);
            fclose(fp);
        }
        assert_int_equal(audit_spool(f->st, path), ERR_OK);
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(access(aside, F_OK), 0);
        assert_int_equal(audit_waiting(f->st), 0);
        memset(&flt, 0, sizeof(flt));
        flt.action = "audit.spool_rejected";
        assert_int_equal(audit_list(f->st, &flt, &list, &n), ERR_OK);
        assert_int_equal(n, k + 1);
        if (k < 2 && strstr(list[0].detail, why[k]) == NULL) {
            fail_msg("%s", list[0].detail);
        }
        store_list_free(list);
        unlink(aside);
    }
    assert_int_equal(audit_write_waiting(f->st, &written), ERR_OK);
    memset(&flt, 0, sizeof(flt));
    flt.action = "login.ok";
    assert_int_equal(audit_list(f->st, &flt, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
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
        cmocka_unit_test_setup_teardown(test_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyed_from_the_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rewritten_whole_without_the_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewritten_tail_without_the_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_unkeyed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_missing_or_loose, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
