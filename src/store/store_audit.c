/*
 * The SQLite side of audit.h: the hash-chained audit log. A companion of
 * store_sqlite.c: it borrows the handle's connection and transaction
 * helpers (store_internal.h), so each function is one transaction with
 * the driver's busy handling and error mapping.
 *
 * Tables (schema step 3): `audit` holds one row per event with its seq,
 * fields, the previous entry's hash and its own; `audit_head` holds one
 * row with the newest seq and hash, written in the same transaction as
 * the entry. The head is what makes a truncated tail visible: deleting
 * the last rows leaves the head pointing past the end of the table.
 *
 * The chain: hash(n) = SHA-256 over a domain tag, hash(n - 1) (raw 32
 * bytes; a fixed genesis value for entry 1), seq and time as 64-bit
 * big-endian integers, then actor, source, action, target and detail each
 * as a 32-bit big-endian length followed by the bytes. Every field has
 * its length in front, so no two different entries encode alike ("ab" +
 * "c" is not "a" + "bc").
 *
 * What the chain proves and what it does not: anyone who edits, deletes or
 * reorders rows with a plain SQL tool breaks it, and audit_verify() names
 * the first entry that no longer fits. It holds no secret, so someone who
 * rewrites every later hash and the head too is not caught; copying the
 * newest hash elsewhere (a log line, a ticket) pins the log up to there.
 */
#include "store/audit.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "store/store_internal.h"

#define AUDIT_HASH_BYTES crypto_hash_sha256_BYTES
#define AUDIT_HEX_LEN (2 * AUDIT_HASH_BYTES)
/* Separates this hash from any other SHA-256 the program computes. */
#define AUDIT_DOMAIN "portcullis audit v1"

/* What entry 1 chains to: SHA-256 of the domain tag followed by
 * " genesis". */
static void audit_genesis(uint8_t out[AUDIT_HASH_BYTES])
{
    static const char g[] = AUDIT_DOMAIN " genesis";

    crypto_hash_sha256(out, (const unsigned char *)g, sizeof(g) - 1);
}

static void audit_hash_u64(crypto_hash_sha256_state *h, uint64_t v)
{
    uint8_t x[8];
    int i;

    for (i = 0; i < 8; i++) {
        x[i] = (uint8_t)(v >> (56 - 8 * i));
    }
    crypto_hash_sha256_update(h, x, sizeof(x));
}

static void audit_hash_field(crypto_hash_sha256_state *h, const void *p,
                             size_t n)
{
    uint8_t x[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                    (uint8_t)n};

    crypto_hash_sha256_update(h, x, sizeof(x));
    if (n > 0) {
        crypto_hash_sha256_update(h, p, n);
    }
}

/* The fields of one entry as stored: byte strings with their lengths, so
 * verification hashes exactly what the table holds. */
struct audit_fields {
    int64_t seq, time;
    const void *f[5]; /* actor, source, action, target, detail */
    size_t n[5];
};

static void audit_hash(const uint8_t prev[AUDIT_HASH_BYTES],
                       const struct audit_fields *e,
                       uint8_t out[AUDIT_HASH_BYTES])
{
    crypto_hash_sha256_state h;
    size_t i;

    crypto_hash_sha256_init(&h);
    audit_hash_field(&h, AUDIT_DOMAIN, sizeof(AUDIT_DOMAIN) - 1);
    crypto_hash_sha256_update(&h, prev, AUDIT_HASH_BYTES);
    audit_hash_u64(&h, (uint64_t)e->seq);
    audit_hash_u64(&h, (uint64_t)e->time);
    for (i = 0; i < 5; i++) {
        audit_hash_field(&h, e->f[i], e->n[i]);
    }
    crypto_hash_sha256_final(&h, out);
}

static void audit_hex(const uint8_t h[AUDIT_HASH_BYTES],
                      char out[AUDIT_HEX_LEN + 1])
{
    sodium_bin2hex(out, AUDIT_HEX_LEN + 1, h, AUDIT_HASH_BYTES);
}

/* A stored hash back to bytes; false unless it is exactly 64 hex digits. */
static bool audit_unhex(const char *hex, size_t len,
                        uint8_t out[AUDIT_HASH_BYTES])
{
    size_t got = 0;

    if (len != AUDIT_HEX_LEN) {
        return false;
    }
    return sodium_hex2bin(out, AUDIT_HASH_BYTES, hex, len, NULL, &got, NULL) ==
               0 &&
           got == AUDIT_HASH_BYTES;
}

/* Prepares sql on the handle's connection; ERR_STORE for a handle used in
 * a forked child. */
static int audit_prepare(struct store *st, const char *what, const char *sql,
                         sqlite3_stmt **stmt)
{
    sqlite3 *db = store_sqlite_db(st);
    int rc;

    *stmt = NULL;
    if (db == NULL) {
        return ERR_STORE;
    }
    if ((rc = sqlite3_prepare_v2(db, sql, -1, stmt, NULL)) != SQLITE_OK) {
        sqlite3_finalize(*stmt);
        *stmt = NULL;
        return store_sqlite_fail(st, rc, what);
    }
    return ERR_OK;
}

/* The newest seq and hash from the head row. */
struct audit_head {
    bool found;
    int64_t seq;
    char *hash; /* AUDIT_HEX_LEN + 1 */
};

static int audit_head_row(sqlite3_stmt *stmt, void *ctx)
{
    struct audit_head *h = ctx;
    const unsigned char *t = sqlite3_column_text(stmt, 1);
    size_t n = (size_t)sqlite3_column_bytes(stmt, 1);

    if (h->found) {
        return ERR_OK;
    }
    h->found = true;
    h->seq = sqlite3_column_int64(stmt, 0);
    if (t != NULL && n <= AUDIT_HEX_LEN) {
        memcpy(h->hash, t, n);
        h->hash[n] = '\0';
    } else {
        /* A hand-edited head: keep something that cannot match. */
        snprintf(h->hash, AUDIT_HEX_LEN + 1, "?");
    }
    return ERR_OK;
}

static int audit_head_read(struct store *st, bool *found, int64_t *seq,
                           char hash[AUDIT_HEX_LEN + 1])
{
    struct audit_head h = {false, 0, hash};
    int r;

    hash[0] = '\0';
    r = store_sqlite_query(st, "audit head",
                           "SELECT seq, hash FROM audit_head WHERE id = 1",
                           audit_head_row, &h, NULL, "");
    *found = r == ERR_OK && h.found;
    *seq = *found ? h.seq : 0;
    return r;
}

static int audit_check(const char *s, size_t max)
{
    return store_check_len(s, max);
}

int audit_write(struct store *st, const char *actor, const char *source,
                const char *action, const char *target, const char *detail)
{
    uint8_t prev[AUDIT_HASH_BYTES], h[AUDIT_HASH_BYTES];
    char prev_hex[AUDIT_HEX_LEN + 1], hex[AUDIT_HEX_LEN + 1];
    const char *v[5] = {actor, source, action, target, detail};
    struct audit_fields e;
    int64_t head_seq = 0;
    bool found = false;
    int r, i;

    if (action == NULL || action[0] == '\0') {
        return ERR_INVALID;
    }
    for (i = 0; i < 5; i++) {
        if ((r = audit_check(v[i], i == 4 ? AUDIT_DETAIL_MAX
                                          : AUDIT_FIELD_MAX)) != ERR_OK) {
            return r;
        }
        v[i] = v[i] != NULL ? v[i] : "";
    }
    /* Immediate: the head is read under the write lock, so two writers
     * (the server and a CLI process) always chain one after the other. */
    if ((r = store_sqlite_begin(st, true)) != ERR_OK) {
        return r;
    }
    if ((r = audit_head_read(st, &found, &head_seq, prev_hex)) != ERR_OK) {
        goto out;
    }
    if (!found) {
        log_error("store: audit write: the audit head row is missing");
        r = ERR_STORE;
        goto out;
    }
    if (head_seq == 0) {
        audit_genesis(prev);
    } else if (!audit_unhex(prev_hex, strlen(prev_hex), prev)) {
        /* Chain to a fixed value rather than lose the event: the damage
         * is already there for audit_verify() to report. */
        memset(prev, 0, sizeof(prev));
    }
    audit_hex(prev, prev_hex);
    memset(&e, 0, sizeof(e));
    e.seq = head_seq + 1;
    e.time = util_now();
    for (i = 0; i < 5; i++) {
        e.f[i] = v[i];
        e.n[i] = strlen(v[i]);
    }
    audit_hash(prev, &e, h);
    audit_hex(h, hex);
    if ((r = store_sqlite_query(
             st, "audit write",
             "INSERT INTO audit (seq, time, actor, source, action, target,"
             " detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
             NULL, NULL, NULL, "iittttttt", e.seq, e.time, v[0], v[1], v[2],
             v[3], v[4], prev_hex, hex)) != ERR_OK) {
        goto out;
    }
    r = store_sqlite_query(st, "audit head",
                           "UPDATE audit_head SET seq = ?, hash = ?"
                           " WHERE id = 1",
                           NULL, NULL, NULL, "it", e.seq, hex);
out:
    return store_sqlite_end(st, r);
}

/* --- listing ------------------------------------------------------------ */

static int audit_entry_fill(sqlite3_stmt *s, void *item)
{
    struct audit_entry *e = item;

    e->seq = sqlite3_column_int64(s, 0);
    e->time = sqlite3_column_int64(s, 1);
    store_sqlite_col_text(s, 2, e->actor, sizeof(e->actor));
    store_sqlite_col_text(s, 3, e->source, sizeof(e->source));
    store_sqlite_col_text(s, 4, e->action, sizeof(e->action));
    store_sqlite_col_text(s, 5, e->target, sizeof(e->target));
    store_sqlite_col_text(s, 6, e->detail, sizeof(e->detail));
    store_sqlite_col_text(s, 7, e->hash, sizeof(e->hash));
    return ERR_OK;
}

int audit_list(struct store *st, const struct audit_filter *f,
               struct audit_entry **list, size_t *n)
{
    struct store_sqlite_list l = {NULL, 0, 0, sizeof(struct audit_entry),
                                  audit_entry_fill};
    sqlite3_stmt *stmt = NULL;
    char sql[512];
    int r = ERR_OK, rc, idx = 0;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    *list = NULL;
    *n = 0;
    /* Constant fragments only; the values are bound in the same order. */
    rc = snprintf(
        sql, sizeof(sql),
        "SELECT seq, time, actor, source, action, target, detail,"
        " hash FROM audit WHERE 1 = 1%s%s%s%s ORDER BY seq DESC%s",
        f != NULL && f->actor != NULL ? " AND actor = ?" : "",
        f != NULL && f->action != NULL ? " AND substr(action, 1, ?) = ?" : "",
        f != NULL && f->since != 0 ? " AND time >= ?" : "",
        f != NULL && f->until != 0 ? " AND time <= ?" : "",
        f != NULL && f->limit != 0 ? " LIMIT ?" : "");
    if (rc < 0 || (size_t)rc >= sizeof(sql)) {
        return ERR_INTERNAL;
    }
    if ((r = store_sqlite_begin(st, false)) != ERR_OK) {
        return r;
    }
    if ((r = audit_prepare(st, "audit list", sql, &stmt)) != ERR_OK) {
        goto out;
    }
    rc = SQLITE_OK;
    if (f != NULL && f->actor != NULL) {
        rc = sqlite3_bind_text(stmt, ++idx, f->actor, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK && f != NULL && f->action != NULL) {
        rc = sqlite3_bind_int64(stmt, ++idx, store_utf8_chars(f->action));
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_text(stmt, ++idx, f->action, -1, SQLITE_STATIC);
        }
    }
    if (rc == SQLITE_OK && f != NULL && f->since != 0) {
        rc = sqlite3_bind_int64(stmt, ++idx, f->since);
    }
    if (rc == SQLITE_OK && f != NULL && f->until != 0) {
        rc = sqlite3_bind_int64(stmt, ++idx, f->until);
    }
    if (rc == SQLITE_OK && f != NULL && f->limit != 0) {
        rc = sqlite3_bind_int64(
            stmt, ++idx,
            f->limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)f->limit);
    }
    if (rc != SQLITE_OK) {
        r = store_sqlite_fail(st, rc, "audit list");
        goto out;
    }
    r = store_sqlite_step(st, stmt, "audit list", store_sqlite_list_row, &l,
                          NULL);
out:
    sqlite3_finalize(stmt);
    r = store_sqlite_list_end(st, r, &l, NULL);
    *list = l.items;
    *n = l.n;
    return r;
}

/* --- verification ------------------------------------------------------- */

/* Reports the first bad entry: the outcome of audit_verify(). */
__attribute__((format(printf, 5, 6))) static int
audit_bad(int64_t *bad_seq, char *why, size_t whylen, int64_t seq,
          const char *fmt, ...)
{
    va_list ap;

    *bad_seq = seq;
    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return ERR_CRYPTO;
}

int audit_verify_count(struct store *st, int64_t *count, int64_t *bad_seq,
                       char *why, size_t whylen)
{
    uint8_t prev[AUDIT_HASH_BYTES], h[AUDIT_HASH_BYTES];
    char prev_hex[AUDIT_HEX_LEN + 1], hex[AUDIT_HEX_LEN + 1];
    char head_hash[AUDIT_HEX_LEN + 1];
    struct audit_fields e;
    sqlite3_stmt *stmt = NULL;
    int64_t expect = 1, head_seq = 0, seen = 0, dummy = 0;
    bool found = false, bad = false;
    int r, rc, i;

    if (bad_seq == NULL) {
        bad_seq = &dummy;
    }
    *bad_seq = 0;
    if (count != NULL) {
        *count = 0;
    }
    if (why != NULL && whylen > 0) {
        why[0] = '\0';
    }
    /* One read transaction: the rows and the head are one snapshot, even
     * while the server appends. */
    if ((r = store_sqlite_begin(st, false)) != ERR_OK) {
        return r;
    }
    if ((r = audit_head_read(st, &found, &head_seq, head_hash)) != ERR_OK) {
        goto out;
    }
    if (!found) {
        r = audit_bad(bad_seq, why, whylen, 0, "the audit head row is missing");
        bad = true;
        goto out;
    }
    audit_genesis(prev);
    audit_hex(prev, prev_hex);
    if ((r = audit_prepare(st, "audit verify",
                           "SELECT seq, time, actor, source, action, target,"
                           " detail, prev_hash, hash FROM audit ORDER BY seq",
                           &stmt)) != ERR_OK) {
        goto out;
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const unsigned char *ph, *hh;
        size_t phn, hhn;

        memset(&e, 0, sizeof(e));
        e.seq = sqlite3_column_int64(stmt, 0);
        e.time = sqlite3_column_int64(stmt, 1);
        for (i = 0; i < 5; i++) {
            e.f[i] = sqlite3_column_blob(stmt, 2 + i);
            e.n[i] = (size_t)sqlite3_column_bytes(stmt, 2 + i);
        }
        ph = sqlite3_column_text(stmt, 7);
        phn = (size_t)sqlite3_column_bytes(stmt, 7);
        hh = sqlite3_column_text(stmt, 8);
        hhn = (size_t)sqlite3_column_bytes(stmt, 8);
        if (e.seq != expect) {
            if (expect == e.seq - 1) {
                r = audit_bad(bad_seq, why, whylen, e.seq,
                              "entry %lld is missing", (long long)expect);
            } else if (e.seq > expect) {
                r = audit_bad(bad_seq, why, whylen, e.seq,
                              "entries %lld to %lld are missing",
                              (long long)expect, (long long)e.seq - 1);
            } else {
                r = audit_bad(bad_seq, why, whylen, e.seq,
                              "sequence number out of order (expected %lld)",
                              (long long)expect);
            }
            bad = true;
            goto out;
        }
        if (ph == NULL || phn != AUDIT_HEX_LEN ||
            memcmp(ph, prev_hex, AUDIT_HEX_LEN) != 0) {
            r = audit_bad(bad_seq, why, whylen, e.seq,
                          "does not follow entry %lld (previous hash "
                          "differs: removed, inserted or reordered)",
                          (long long)e.seq - 1);
            bad = true;
            goto out;
        }
        audit_hash(prev, &e, h);
        audit_hex(h, hex);
        if (hh == NULL || hhn != AUDIT_HEX_LEN ||
            memcmp(hh, hex, AUDIT_HEX_LEN) != 0) {
            r = audit_bad(bad_seq, why, whylen, e.seq,
                          "entry changed (its hash does not match its "
                          "contents)");
            bad = true;
            goto out;
        }
        memcpy(prev, h, sizeof(prev));
        memcpy(prev_hex, hex, sizeof(prev_hex));
        seen++;
        expect++;
    }
    if (rc != SQLITE_DONE) {
        r = store_sqlite_fail(st, sqlite3_extended_errcode(store_sqlite_db(st)),
                              "audit verify");
        goto out;
    }
    /* The rows chain; now they must end where the head says. */
    if (seen + 1 == head_seq) {
        r = audit_bad(bad_seq, why, whylen, head_seq,
                      "entry %lld is missing at the end (the log was "
                      "truncated)",
                      (long long)head_seq);
        bad = true;
    } else if (seen < head_seq) {
        r = audit_bad(bad_seq, why, whylen, seen + 1,
                      "entries %lld to %lld are missing at the end (the log "
                      "was truncated)",
                      (long long)seen + 1, (long long)head_seq);
        bad = true;
    } else if (seen > head_seq) {
        r = audit_bad(bad_seq, why, whylen, head_seq + 1,
                      "entry %lld is past the recorded end of the log "
                      "(entry %lld)",
                      (long long)head_seq + 1, (long long)head_seq);
        bad = true;
    } else if (seen > 0 && strcmp(head_hash, prev_hex) != 0) {
        r = audit_bad(bad_seq, why, whylen, seen,
                      "entry differs from the recorded end of the log");
        bad = true;
    } else if (seen == 0 && head_hash[0] != '\0') {
        r = audit_bad(bad_seq, why, whylen, 0,
                      "the audit head row was changed");
        bad = true;
    }
out:
    sqlite3_finalize(stmt);
    /* A broken chain is the answer, not a failed transaction. */
    rc = store_sqlite_end(st, bad ? ERR_OK : r);
    if (!bad) {
        r = rc;
    }
    if (count != NULL && (r == ERR_OK || bad)) {
        *count = seen;
    }
    return r;
}

int audit_verify(struct store *st, int64_t *bad_seq, char *why, size_t whylen)
{
    return audit_verify_count(st, NULL, bad_seq, why, whylen);
}
