/*
 * audit.h over the store's helpers: the hash-chained audit log. Written
 * against store_internal.h and db.h only, like every noun file, so each
 * function is one transaction with the driver's busy handling and error
 * mapping.
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
 * The key (defect: an unkeyed chain can be rewritten whole by anyone who
 * can write the database). Entries are hashed with HMAC-SHA-256 under a
 * 32-byte key kept outside the database: the file audit.key (mode 0600)
 * in the database's directory, which is the data directory next to
 * vault.key in the layout `portcullis init` makes. Same encoding, another
 * domain tag, so a keyed and an unkeyed hash of one entry never agree. Why
 * a file of its own rather than a key derived from the vault key: every
 * process that appends (the server, every changing CLI command) then
 * needs only the store and this file, not the vault; losing or replacing
 * it touches only the audit log; and it can be handed to an auditor who
 * must not be able to open vaulted passwords.
 *
 * A writer that finds no key file creates one (O_EXCL, so two writers
 * agree) inside its write transaction, and removes it again if the
 * transaction fails; `portcullis init` makes the key with the database,
 * so a new log is keyed from entry 1. An older database's entries stay as
 * they were, hashed without a key, and the first keyed entry after them
 * is a marker with action "audit.keyed" and the key's ID in its detail.
 * Verification accepts unkeyed entries only before that marker (and none
 * after it): otherwise a chain rewritten without the key would pass for
 * an old log as soon as the server appended its next, keyed, entry. A
 * writer refuses (ERR_CRYPTO) to make a new key for a log whose newest
 * entry is not an unkeyed one: the old key was lost or deleted, and a new
 * one would hide that.
 *
 * What audit_verify() then proves: with the key, that nobody without the
 * key changed, removed, reordered or appended entries, the unkeyed part
 * before the switch included (the first keyed entry's HMAC covers the hash
 * of the entry before it). A whole chain rewritten with the unkeyed
 * formula fails ("an audit key exists but no entry is keyed"). It does not
 * hold against whoever holds the key (the server, root on its host), nor
 * against someone who both rewrites the database and deletes the key file:
 * verification then reports an unkeyed chain, which proves only that the
 * log is consistent; copying the newest hash elsewhere pins the log up to
 * there against that. An in-memory database (tests) keeps an unkeyed
 * chain: it has no directory for a key.
 */
#include "store/audit.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"
#include "store/store_wqueue.h"

#define AUDIT_HASH_BYTES crypto_hash_sha256_BYTES
#define AUDIT_HEX_LEN (2 * AUDIT_HASH_BYTES)
/* Separates this hash from any other SHA-256 the program computes. */
#define AUDIT_DOMAIN "portcullis audit v1"
/* The keyed entries' tag: a keyed and an unkeyed hash never agree. */
#define AUDIT_DOMAIN_KEYED "portcullis audit v2 hmac-sha256"
#define AUDIT_KEY_BYTES crypto_auth_hmacsha256_KEYBYTES
#define AUDIT_KEYED_ACTION "audit.keyed"
#define AUDIT_KEY_FILE "audit.key"

_Static_assert(AUDIT_KEY_BYTES == 32, "the audit key file holds 32 bytes");
_Static_assert(crypto_auth_hmacsha256_BYTES == AUDIT_HASH_BYTES,
               "keyed and unkeyed hashes have one size");

/* What entry 1 chains to: SHA-256 of the domain tag followed by
 * " genesis". */
static void audit_genesis(uint8_t out[AUDIT_HASH_BYTES])
{
    static const char g[] = AUDIT_DOMAIN " genesis";

    crypto_hash_sha256(out, (const unsigned char *)g, sizeof(g) - 1);
}

/* SHA-256 of an unkeyed entry or HMAC-SHA-256 of a keyed one; the same
 * bytes go into either. */
struct audit_hctx {
    bool keyed;
    crypto_hash_sha256_state h;
    crypto_auth_hmacsha256_state m;
};

static void audit_upd(struct audit_hctx *c, const void *p, size_t n)
{
    if (c->keyed) {
        crypto_auth_hmacsha256_update(&c->m, p, n);
    } else {
        crypto_hash_sha256_update(&c->h, p, n);
    }
}

static void audit_hash_u64(struct audit_hctx *c, uint64_t v)
{
    uint8_t x[8];
    int i;

    for (i = 0; i < 8; i++) {
        x[i] = (uint8_t)(v >> (56 - 8 * i));
    }
    audit_upd(c, x, sizeof(x));
}

static void audit_hash_field(struct audit_hctx *c, const void *p, size_t n)
{
    uint8_t x[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                    (uint8_t)n};

    audit_upd(c, x, sizeof(x));
    if (n > 0) {
        audit_upd(c, p, n);
    }
}

/* The fields of one entry as stored: byte strings with their lengths, so
 * verification hashes exactly what the table holds. */
struct audit_fields {
    int64_t seq, time;
    const void *f[5]; /* actor, source, action, target, detail */
    size_t n[5];
};

/* key NULL: the unkeyed (v1) hash; else the keyed one. */
static void audit_hash(const uint8_t *key, const uint8_t prev[AUDIT_HASH_BYTES],
                       const struct audit_fields *e,
                       uint8_t out[AUDIT_HASH_BYTES])
{
    struct audit_hctx c;
    size_t i;

    memset(&c, 0, sizeof(c));
    c.keyed = key != NULL;
    if (c.keyed) {
        crypto_auth_hmacsha256_init(&c.m, key, AUDIT_KEY_BYTES);
        audit_hash_field(&c, AUDIT_DOMAIN_KEYED,
                         sizeof(AUDIT_DOMAIN_KEYED) - 1);
    } else {
        crypto_hash_sha256_init(&c.h);
        audit_hash_field(&c, AUDIT_DOMAIN, sizeof(AUDIT_DOMAIN) - 1);
    }
    audit_upd(&c, prev, AUDIT_HASH_BYTES);
    audit_hash_u64(&c, (uint64_t)e->seq);
    audit_hash_u64(&c, (uint64_t)e->time);
    for (i = 0; i < 5; i++) {
        audit_hash_field(&c, e->f[i], e->n[i]);
    }
    if (c.keyed) {
        crypto_auth_hmacsha256_final(&c.m, out);
    } else {
        crypto_hash_sha256_final(&c.h, out);
    }
    sodium_memzero(&c, sizeof(c));
}

/* --- the key ------------------------------------------------------------ */

int store_set_audit_key(struct store *st, const char *path)
{
    char *p = NULL;

    if (st == NULL) {
        return ERR_INVALID;
    }
    if (path != NULL && path[0] != '\0' && (p = strdup(path)) == NULL) {
        return ERR_NOMEM;
    }
    free(st->audit_key);
    st->audit_key = p;
    return ERR_OK;
}

int audit_key_path(struct store *st, char *out, size_t outlen)
{
    const char *file = db_location(store_db(st));
    const char *slash;
    int n;

    if (outlen > 0) {
        out[0] = '\0';
    }
    if (file != NULL && st->audit_key != NULL) {
        n = snprintf(out, outlen, "%s", st->audit_key);
        return n < 0 || (size_t)n >= outlen ? ERR_TOO_LONG : ERR_OK;
    }
    if (file == NULL) {
        return ERR_STORE; /* a handle used in a forked child */
    }
    if (file[0] == '\0') {
        return ERR_NOT_FOUND; /* in memory: no directory */
    }
    slash = strrchr(file, '/');
    if (slash == NULL) {
        n = snprintf(out, outlen, "%s", AUDIT_KEY_FILE);
    } else {
        n = snprintf(out, outlen, "%.*s/%s", (int)(slash - file), file,
                     AUDIT_KEY_FILE);
    }
    return n < 0 || (size_t)n >= outlen ? ERR_TOO_LONG : ERR_OK;
}

/* ERR_NOT_FOUND when there is no such file; ERR_CRYPTO (logged) for one
 * that others may read or that is not exactly a key. */
static int audit_key_read(const char *path, uint8_t key[AUDIT_KEY_BYTES])
{
    return util_read_key_file(path, "audit key", false, key, AUDIT_KEY_BYTES);
}

int audit_key_create(struct store *st)
{
    uint8_t key[AUDIT_KEY_BYTES];
    char path[PATH_MAX];
    int r;

    if ((r = audit_key_path(st, path, sizeof(path))) != ERR_OK) {
        return r;
    }
    randombytes_buf(key, sizeof(key));
    r = util_write_file_excl(path, key, sizeof(key), 0600);
    sodium_memzero(key, sizeof(key));
    return r;
}

/* A short public name of a key (hex of a keyed BLAKE2b of a fixed text),
 * for the marker entry and `audit verify`: says which key, reveals none. */
static void audit_key_id(const uint8_t key[AUDIT_KEY_BYTES], char out[17])
{
    static const char what[] = "portcullis audit key id";
    uint8_t id[8];

    crypto_generichash(id, sizeof(id), (const unsigned char *)what,
                       sizeof(what) - 1, key, AUDIT_KEY_BYTES);
    sodium_bin2hex(out, 17, id, sizeof(id));
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

/* The newest seq and hash from the head row. */
struct audit_head {
    bool found;
    int64_t seq;
    char *hash; /* AUDIT_HEX_LEN + 1 */
};

static int audit_head_row(struct db_stmt *stmt, void *ctx)
{
    struct audit_head *h = ctx;
    size_t n = 0;
    const char *t = db_col_text(stmt, 1, &n);

    if (h->found) {
        return ERR_OK;
    }
    h->found = true;
    h->seq = db_col_int64(stmt, 0);
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
    r = store_query(st, "audit head",
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

/* Inserts one entry after prev (seq head_seq + 1), keyed when key is set;
 * prev and head_seq then name the new entry. */
static int audit_append(struct store *st, const uint8_t *key,
                        uint8_t prev[AUDIT_HASH_BYTES], int64_t *head_seq,
                        int64_t time, const char *const v[5])
{
    uint8_t h[AUDIT_HASH_BYTES];
    char prev_hex[AUDIT_HEX_LEN + 1], hex[AUDIT_HEX_LEN + 1];
    struct audit_fields e;
    int r, i;

    audit_hex(prev, prev_hex);
    memset(&e, 0, sizeof(e));
    e.seq = *head_seq + 1;
    e.time = time;
    for (i = 0; i < 5; i++) {
        e.f[i] = v[i];
        e.n[i] = strlen(v[i]);
    }
    audit_hash(key, prev, &e, h);
    audit_hex(h, hex);
    if ((r = store_run(
             st, "audit write",
             "INSERT INTO audit (seq, time, actor, source, action, target,"
             " detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, "
             "$8, $9)",
             NULL, "iittttttt", e.seq, e.time, v[0], v[1], v[2], v[3], v[4],
             prev_hex, hex)) != ERR_OK) {
        return r;
    }
    memcpy(prev, h, AUDIT_HASH_BYTES);
    *head_seq = e.seq;
    return ERR_OK;
}

/* Whether the stored entry seq hashes, without a key, to its stored hash:
 * a row of a log from before keyed hashing. */
struct audit_unkeyed_probe {
    bool found, unkeyed;
};

static int audit_unkeyed_row(struct db_stmt *stmt, void *ctx)
{
    struct audit_unkeyed_probe *p = ctx;
    uint8_t prev[AUDIT_HASH_BYTES], h[AUDIT_HASH_BYTES];
    char hex[AUDIT_HEX_LEN + 1];
    size_t phn = 0, hhn = 0;
    const char *ph = db_col_text(stmt, 7, &phn);
    const char *hh = db_col_text(stmt, 8, &hhn);
    struct audit_fields e;
    int i;

    p->found = true;
    memset(&e, 0, sizeof(e));
    e.seq = db_col_int64(stmt, 0);
    e.time = db_col_int64(stmt, 1);
    for (i = 0; i < 5; i++) {
        e.f[i] = db_col_text(stmt, 2 + i, &e.n[i]);
    }
    if (ph == NULL || hh == NULL || !audit_unhex((const char *)ph, phn, prev)) {
        return ERR_OK;
    }
    audit_hash(NULL, prev, &e, h);
    audit_hex(h, hex);
    p->unkeyed = hhn == AUDIT_HEX_LEN && memcmp(hh, hex, AUDIT_HEX_LEN) == 0;
    return ERR_OK;
}

/* The key for a write, in key[]: read from its file, or made now when the
 * file is missing and the log is empty or still unkeyed at its newest
 * entry (*created then set: the caller writes the marker, and removes the
 * file again if its transaction fails). *have false: no key at all (an
 * in-memory database). */
static int audit_key_for_write(struct store *st, int64_t head_seq,
                               uint8_t key[AUDIT_KEY_BYTES], bool *have,
                               bool *created, char *path, size_t pathlen)
{
    struct audit_unkeyed_probe probe = {false, false};
    int r;

    *have = *created = false;
    r = audit_key_path(st, path, pathlen);
    if (r == ERR_NOT_FOUND) {
        return ERR_OK;
    }
    if (r != ERR_OK) {
        return r;
    }
    r = audit_key_read(path, key);
    if (r == ERR_NOT_FOUND) {
        if (head_seq > 0) {
            r = store_query(
                st, "audit write",
                "SELECT seq, time, actor, source, action, target, detail,"
                " prev_hash, hash FROM audit WHERE seq = $1",
                audit_unkeyed_row, &probe, NULL, "i", head_seq);
            if (r != ERR_OK) {
                return r;
            }
            if (!probe.found || !probe.unkeyed) {
                log_error("store: audit write: the audit key %s is missing "
                          "but the log is keyed (or damaged at entry %lld); "
                          "restore the key file, do not make a new one",
                          path, (long long)head_seq);
                return ERR_CRYPTO;
            }
        }
        randombytes_buf(key, AUDIT_KEY_BYTES);
        r = util_write_file_excl(path, key, AUDIT_KEY_BYTES, 0600);
        if (r == ERR_OK) {
            *created = true;
        } else {
            /* Another writer made it first (or it cannot be written):
             * what is on disk is the key. */
            r = audit_key_read(path, key);
        }
    }
    if (r != ERR_OK) {
        sodium_memzero(key, AUDIT_KEY_BYTES);
        log_error("store: audit write: cannot use the audit key %s: %s", path,
                  err_str(r));
        return r == ERR_NOT_FOUND ? ERR_CRYPTO : r;
    }
    *have = true;
    return ERR_OK;
}

/* One event to append: its fields (audit_check()ed, none NULL) and the
 * time it happened. */
struct audit_ev {
    int64_t time;
    const char *v[5]; /* actor, source, action, target, detail */
};

/* Appends events ev[0..n) in order, in one write transaction. */
static int audit_write_many(struct store *st, const struct audit_ev *ev,
                            size_t n)
{
    uint8_t prev[AUDIT_HASH_BYTES], key[AUDIT_KEY_BYTES];
    char prev_hex[AUDIT_HEX_LEN + 1], path[PATH_MAX], kid[17];
    char mdetail[AUDIT_DETAIL_MAX + 1];
    const char *marker[5] = {"system", "audit", AUDIT_KEYED_ACTION, "",
                             mdetail};
    int64_t head_seq = 0;
    bool found = false, have = false, created = false;
    size_t i;
    int r;

    /* Immediate: the head is read under the audit log's part of the
     * write lock (db_begin_part), so two writers (the server and a CLI
     * process, or two nodes) always chain one after the other. */
    if ((r = store_tx_begin_part(st, DB_PART_AUDIT)) != ERR_OK) {
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
    if ((r = audit_key_for_write(st, head_seq, key, &have, &created, path,
                                 sizeof(path))) != ERR_OK) {
        goto out;
    }
    /* The switch of an existing log gets a marker; a new log is keyed
     * from entry 1 and needs none. */
    if (created && head_seq > 0) {
        audit_key_id(key, kid);
        snprintf(mdetail, sizeof(mdetail),
                 "keyed hashing (HMAC-SHA-256) starts here; key id %s", kid);
        if ((r = audit_append(st, key, prev, &head_seq, util_now(), marker)) !=
            ERR_OK) {
            goto out;
        }
    }
    for (i = 0; i < n; i++) {
        if ((r = audit_append(st, have ? key : NULL, prev, &head_seq,
                              ev[i].time, ev[i].v)) != ERR_OK) {
            goto out;
        }
    }
    audit_hex(prev, prev_hex);
    r = store_run(st, "audit head",
                  "UPDATE audit_head SET seq = $1, hash = $2"
                  " WHERE id = 1",
                  NULL, "it", head_seq, prev_hex);
out:
    sodium_memzero(key, sizeof(key));
    r = store_tx_end(st, r);
    if (r != ERR_OK && created) {
        (void)unlink(path);
    }
    return r;
}

/*
 * Events kept for a database that does not answer (audit_defer()).
 *
 * Why here rather than in each caller: every event of the server goes
 * through its one store handle, so one queue keeps them all in the order
 * they happened, and the chain gets them in that order (an event is never
 * written while older ones wait). Each keeps the time it happened, so an
 * entry written late says when it happened; its seq says when it was
 * written. The bound is on events, and each holds only its own strings
 * (at most about 2 KiB). Events an unauthenticated client causes (a
 * failed or locked login) may take at most half of it: a flood of bad
 * logins during an outage cannot crowd out what authenticated users and
 * administrators did. What does not fit is counted and, once the store
 * answers again, recorded as an event of its own (audit.lost), so the
 * gap is in the log itself and not only in a log file.
 *
 * The queue is an ordered write queue (store_wqueue.h, st->audit_later):
 * its items are the events, marked when they come before any
 * authentication (counted apart for the half of the bound), its bound the
 * outage bound (q->max). Without a worker it only keeps them, and
 * audit_write_waiting() writes them on the handle's connection; off the
 * loop (audit_off_loop(), below) its worker writes them.
 */
struct audit_later {
    struct wqueue_item h; /* first: the queue's; marked: before auth */
    struct audit_ev ev;
    char text[]; /* the five strings, each NUL-terminated */
};

#define AUDIT_LATER_BATCH 64  /* events per transaction when written late */
#define AUDIT_LATER_CALL 1024 /* events per audit_write_waiting() call */

/*
 * Off the loop (audit_off_loop()): on a server's store (PostgreSQL) with
 * a loop, audit_write() only queues the event, in the queue above, and
 * its worker (store_worker.h, one connection of the handle's own, one
 * batch in flight) appends the events in order, up to AUDIT_LATER_BATCH
 * per transaction. The loop never waits for the database for an event.
 *
 * Why this keeps the chain in the loop's order: the loop alone appends
 * to the queue, in the order audit_write() is called, and the queue
 * writes them in that order (store_wqueue.h: a batch is its first
 * events, taken off it, the next starts only when this one's outcome is
 * back on the loop; a batch that failed goes back to the front, ahead of
 * everything queued meanwhile, and is tried again after
 * AUDIT_ASYNC_RETRY_MS doubling to AUDIT_ASYNC_RETRY_MAX_MS). An outage
 * is only a longer wait: the same queue, the same bound, the same spool
 * at stop.
 *
 * The bound is the outage bound ([store] outage_audit_events,
 * audit_defer()), counted over the queue and the batch in flight, with
 * half of it for failed and locked logins: a client producing audited
 * failures faster than the database takes them costs at most that many
 * events of memory. Beyond it an event is not kept but counted, and the
 * count goes into the chain as one audit.lost event at the place of the
 * gap, as soon as there is room again (never dropped silently).
 *
 * Readers on the same handle (audit_list(), audit_verify_full(): the
 * API's GET /audit) flush first: they wait for the batch in flight (at
 * most AUDIT_FLUSH_MS) and write the rest on the handle's own connection
 * (not while the writer is failing: that would fail too),
 * so an action the API answered is in the list it answers next.
 */
#define AUDIT_ASYNC_RETRY_MS 250
#define AUDIT_ASYNC_RETRY_MAX_MS 4000
#define AUDIT_FLUSH_MS 1000
#define AUDIT_ASYNC_MAX 4096 /* when audit_defer() set no bound */

static bool audit_is_preauth(const char *action)
{
    return strcmp(action, "login.fail") == 0 ||
           strcmp(action, "login.lock") == 0;
}

/* The n events from first in one transaction on st; arg (the worker's
 * connection): the audit key's path. */
static int audit_later_write(struct store *st, const char *arg,
                             const struct wqueue_item *first, size_t n)
{
    struct audit_ev ev[AUDIT_LATER_BATCH];
    const struct wqueue_item *it;
    size_t k = 0;
    int r;

    if (arg != NULL && (r = store_set_audit_key(st, arg)) != ERR_OK) {
        return r;
    }
    for (it = first; it != NULL && k < n && k < AUDIT_LATER_BATCH;
         it = it->next) {
        ev[k++] = ((const struct audit_later *)it)->ev;
    }
    return audit_write_many(st, ev, k);
}

static void audit_later_free(struct wqueue_item *it)
{
    free(it);
}

/* A copy of an event of a batch that did not come back, for the spool. */
static struct wqueue_item *audit_later_copy(void *owner,
                                            const struct wqueue_item *it)
{
    const struct audit_later *l = (const struct audit_later *)it;
    struct store *st = owner;
    struct audit_later *copy;
    size_t len = sizeof(*l);
    int i;

    for (i = 0; i < 5; i++) {
        len += strlen(l->ev.v[i]) + 1;
    }
    if ((copy = malloc(len)) == NULL) {
        st->audit_lost++;
        return NULL;
    }
    memcpy(copy, l, len);
    for (i = 0; i < 5; i++) {
        copy->ev.v[i] = copy->text + (l->ev.v[i] - l->text);
    }
    return &copy->h;
}

static void audit_later_drained(void *owner);

static const struct wqueue_conf audit_conf = {
    .what = "audit event",
    .batch = AUDIT_LATER_BATCH,
    .retry_ms = AUDIT_ASYNC_RETRY_MS,
    .retry_max_ms = AUDIT_ASYNC_RETRY_MAX_MS,
    .flush_ms = AUDIT_FLUSH_MS,
    .write = audit_later_write,
    .free = audit_later_free,
    .copy = audit_later_copy,
    .drained = audit_later_drained,
};

/* The handle's queue, made on first use. */
static struct wqueue *audit_q(struct store *st)
{
    if (st->audit_later.conf == NULL) {
        wqueue_init(&st->audit_later, &audit_conf, st, 0);
    }
    return &st->audit_later;
}

/* Appends a copy of ev to the queue, whatever its bound (the callers
 * check it). */
static int audit_enqueue(struct store *st, const struct audit_ev *ev)
{
    struct audit_later *l;
    size_t len[5], total = 0;
    char *p;
    int i;

    for (i = 0; i < 5; i++) {
        len[i] = strlen(ev->v[i]) + 1;
        total += len[i];
    }
    if ((l = calloc(1, sizeof(*l) + total)) == NULL) {
        st->audit_lost++;
        return ERR_NOMEM;
    }
    l->ev.time = ev->time;
    l->h.marked = audit_is_preauth(ev->v[2]);
    for (i = 0, p = l->text; i < 5; p += len[i], i++) {
        memcpy(p, ev->v[i], len[i]);
        l->ev.v[i] = p;
    }
    wqueue_put_any(audit_q(st), &l->h);
    return ERR_OK;
}

static int audit_keep(struct store *st, const struct audit_ev *ev)
{
    struct wqueue *q = audit_q(st);
    bool preauth = audit_is_preauth(ev->v[2]);
    size_t np, n = wqueue_len(q, &np);

    if (n >= q->max || (preauth && np >= q->max / 2)) {
        if (st->audit_lost++ == 0) {
            log_warn("store: %zu audit events wait for the database already "
                     "(%s); further ones are not kept until it answers "
                     "([store] outage_audit_events), only counted",
                     n,
                     preauth ? "half of the room, for failed logins"
                             : "the bound");
        }
        return ERR_STORE;
    }
    if (n == 0) {
        log_warn("store: the database does not answer; audit events wait "
                 "in memory and are written when it does");
    }
    return audit_enqueue(st, ev);
}

static int audit_async_put(struct store *st, const struct audit_ev *ev);

int audit_write(struct store *st, const char *actor, const char *source,
                const char *action, const char *target, const char *detail)
{
    struct audit_ev ev = {util_now(), {actor, source, action, target, detail}};
    struct wqueue *q = audit_q(st);
    int r, i;

    if (action == NULL || action[0] == '\0') {
        return ERR_INVALID;
    }
    for (i = 0; i < 5; i++) {
        if ((r = audit_check(ev.v[i], i == 4 ? AUDIT_DETAIL_MAX
                                             : AUDIT_FIELD_MAX)) != ERR_OK) {
            return r;
        }
        ev.v[i] = ev.v[i] != NULL ? ev.v[i] : "";
    }
    if (wqueue_off_loop(q)) {
        return audit_async_put(st, &ev); /* the worker writes it */
    }
    /* behind events already waiting: never out of order */
    if (wqueue_len(q, NULL) > 0) {
        return audit_keep(st, &ev);
    }
    r = audit_write_many(st, &ev, 1);
    if (r != ERR_OK && q->max > 0 && store_unreachable(st)) {
        return audit_keep(st, &ev);
    }
    return r;
}

void audit_defer(struct store *st, size_t max)
{
    audit_q(st)->max = max;
}

size_t audit_waiting(const struct store *st)
{
    if (wqueue_off_loop(&st->audit_later)) {
        return 0; /* its own worker writes them (audit_off_loop()) */
    }
    return wqueue_len(&st->audit_later, NULL) + (st->audit_lost > 0 ? 1 : 0);
}

/* The note of events not kept, as the event audit.lost. */
static void audit_lost_detail(const struct store *st, char *detail, size_t len)
{
    snprintf(detail, len,
             "%zu audit event(s) of a time the database did not answer "
             "were not kept: more than [store] outage_audit_events "
             "(%zu) waited",
             st->audit_lost, st->audit_later.max);
}

static int audit_write_queue(struct store *st, size_t *written);

int audit_write_waiting(struct store *st, size_t *written)
{
    *written = 0;
    if (wqueue_off_loop(audit_q(st))) {
        return ERR_OK; /* never ahead of a batch on the worker */
    }
    return audit_write_queue(st, written);
}

/* audit_write_waiting() on this connection, whatever else is set. */
static int audit_write_queue(struct store *st, size_t *written)
{
    struct wqueue *q = audit_q(st);
    char detail[AUDIT_DETAIL_MAX + 1];
    struct audit_ev ev;
    int r;

    if ((r = wqueue_write(q, st, AUDIT_LATER_CALL, written)) != ERR_OK) {
        return r;
    }
    if (wqueue_len(q, NULL) > 0) {
        return ERR_OK; /* the rest at the caller's next call */
    }
    st->audit_spool_pending = false;
    if (st->audit_spool != NULL && unlink(st->audit_spool) == 0) {
        log_info("store: the audit events the last run could not write "
                 "are written; %s removed",
                 st->audit_spool);
    }
    if (st->audit_lost > 0) {
        audit_lost_detail(st, detail, sizeof(detail));
        ev = (struct audit_ev){util_now(),
                               {"system", "store", "audit.lost", "", detail}};
        if ((r = audit_write_many(st, &ev, 1)) != ERR_OK) {
            return r;
        }
        log_warn("store: %s", detail);
        st->audit_lost = 0;
    }
    return ERR_OK;
}

/* Queues the note of events not kept (audit.lost) at the end of the
 * queue: the place of the gap. */
static void audit_async_lost_note(struct store *st)
{
    char detail[AUDIT_DETAIL_MAX + 1];
    struct audit_ev ev = {util_now(),
                          {"system", "store", "audit.lost", "", detail}};
    size_t lost = st->audit_lost;

    audit_lost_detail(st, detail, sizeof(detail));
    st->audit_lost = 0;
    if (audit_enqueue(st, &ev) != ERR_OK) {
        st->audit_lost += lost; /* and the one audit_enqueue counted */
        return;
    }
    log_warn("store: %s", detail);
}

/* Off the loop, with nothing waiting: the note of a gap, if any. */
static void audit_async_kick(struct store *st)
{
    struct wqueue *q = audit_q(st);

    if (q->w != NULL && wqueue_len(q, NULL) == 0 && st->audit_lost > 0) {
        audit_async_lost_note(st);
    }
}

/* On the loop: the worker wrote everything that waited. */
static void audit_later_drained(void *owner)
{
    struct store *st = owner;

    if (st->audit_spool_pending && st->audit_spool != NULL) {
        st->audit_spool_pending = false;
        if (unlink(st->audit_spool) == 0) {
            log_info("store: the audit events the last run could not "
                     "write are written; %s removed",
                     st->audit_spool);
        }
    }
    audit_async_kick(st);
}

static int audit_async_put(struct store *st, const struct audit_ev *ev)
{
    struct wqueue *q = audit_q(st);
    bool preauth = audit_is_preauth(ev->v[2]);
    size_t np, n = wqueue_len(q, &np);

    /* room for the event, and for the note of a gap before it */
    if (n + 1 + (st->audit_lost > 0 ? 1 : 0) > q->max ||
        (preauth && np >= q->max / 2)) {
        if (st->audit_lost++ == 0) {
            log_warn("store: %zu audit events wait for the database already "
                     "(%s); further ones are not kept until there is room, "
                     "only counted ([store] outage_audit_events)",
                     n,
                     preauth ? "half of the room, for failed logins"
                             : "the bound");
        }
        return ERR_STORE;
    }
    if (st->audit_lost > 0) {
        audit_async_lost_note(st);
    }
    return audit_enqueue(st, ev);
}

/* Before a read on this handle: the batch in flight back (at most
 * AUDIT_FLUSH_MS), then the rest written on the handle's own connection,
 * the note of a gap and the spool's removal included. */
static void audit_async_flush(struct store *st)
{
    struct wqueue *q = audit_q(st);
    size_t n = 0;

    if (wqueue_flush(q, st) == ERR_OK &&
        (st->audit_lost > 0 || st->audit_spool_pending) && !wqueue_failing(q) &&
        !store_unreachable(st)) {
        (void)audit_write_queue(st, &n);
    }
}

int audit_off_loop(struct store *st, struct loop *l, const char *location)
{
    struct wqueue *q;
    int r;

    if (st == NULL) {
        return ERR_OK;
    }
    q = audit_q(st);
    if (wqueue_off_loop(q)) {
        return ERR_OK;
    }
    if ((r = wqueue_start(q, l, st, location, "the audit log's writer",
                          st->audit_key)) != ERR_OK ||
        !wqueue_off_loop(q)) {
        return r; /* SQLite: written at once, on the caller's thread */
    }
    if (q->max == 0) {
        q->max = AUDIT_ASYNC_MAX;
    }
    audit_async_kick(st);
    return ERR_OK;
}

bool audit_off_loop_stop(struct store *st, int ms)
{
    struct wqueue *q = st != NULL ? audit_q(st) : NULL;
    bool stuck = false;

    if (q == NULL || !wqueue_off_loop(q)) {
        return true;
    }
    if (q->stuck) {
        return false; /* stopped already, with a batch stuck */
    }
    /* Not back: copies of its events go ahead of the rest into the
     * spool: the statement may yet commit, then they are written twice
     * (as an event whose COMMIT met the deadline on the loop is), but
     * none is lost and the order holds. */
    (void)wqueue_stop(q, st, ms, &stuck);
    if (stuck) {
        log_warn("store: a batch of audit events did not come back from "
                 "the database in %d ms; kept for the spool with the rest",
                 ms);
        return false; /* the handle keeps queueing, for the spool */
    }
    return true;
}

/*
 * The spool (audit_spool()): one event per line, its time and its five
 * fields each in base64 (fields are bytes, not necessarily UTF-8, "-"
 * for an empty one), then a last line "end EVENTS LOST"; every line ends
 * with a seal, the hex HMAC-SHA-256 under the audit log's key of a domain
 * tag, the seal of the line before (zeros for the first) and the line's
 * text before it. So whoever cannot forge an entry of the chain cannot
 * edit, reorder, drop or add an event either, nor cut the file short
 * (the end line counts them); deleting the whole file loses them, as not
 * keeping them would. Without a key (an in-memory store) there is no
 * spool. Written whole to PATH.tmp, synced, then renamed over PATH, so a
 * crash leaves the old file or the new one.
 */
#define AUDIT_SPOOL_MAX ((size_t)256 << 20) /* bytes read at the most */
#define AUDIT_SPOOL_B64 sodium_base64_VARIANT_ORIGINAL
#define AUDIT_SPOOL_TAG "portcullis audit spool v1"
#define AUDIT_SEAL_BYTES crypto_auth_hmacsha256_BYTES

struct audit_seal {
    uint8_t key[AUDIT_KEY_BYTES];
    uint8_t prev[AUDIT_SEAL_BYTES];
};

/* The audit key for the spool; false (logged) if there is none. */
static bool audit_seal_init(struct store *st, struct audit_seal *sl)
{
    char path[PATH_MAX];

    memset(sl, 0, sizeof(*sl));
    if (audit_key_path(st, path, sizeof(path)) != ERR_OK ||
        audit_key_read(path, sl->key) != ERR_OK) {
        log_error("store: no audit key to seal the audit events' spool with");
        return false;
    }
    return true;
}

/* The seal of text (len bytes) after sl->prev, as hex into out[65];
 * becomes sl->prev. */
static void audit_seal_line(struct audit_seal *sl, const char *text, size_t len,
                            char out[2 * AUDIT_SEAL_BYTES + 1])
{
    crypto_auth_hmacsha256_state h;

    crypto_auth_hmacsha256_init(&h, sl->key, sizeof(sl->key));
    crypto_auth_hmacsha256_update(&h, (const unsigned char *)AUDIT_SPOOL_TAG,
                                  sizeof(AUDIT_SPOOL_TAG));
    crypto_auth_hmacsha256_update(&h, sl->prev, sizeof(sl->prev));
    crypto_auth_hmacsha256_update(&h, (const unsigned char *)text, len);
    crypto_auth_hmacsha256_final(&h, sl->prev);
    sodium_memzero(&h, sizeof(h));
    sodium_bin2hex(out, 2 * AUDIT_SEAL_BYTES + 1, sl->prev, sizeof(sl->prev));
}

/* Writes text and its seal as one line; false on a write error. */
static bool audit_spool_put(FILE *f, struct audit_seal *sl, const char *text)
{
    char seal[2 * AUDIT_SEAL_BYTES + 1];

    audit_seal_line(sl, text, strlen(text), seal);
    return fprintf(f, "%s %s\n", text, seal) >= 0;
}

static int audit_spool_write(struct store *st)
{
    char tmp[PATH_MAX];
    char line[32 + 5 * (sodium_base64_ENCODED_LEN(AUDIT_DETAIL_MAX,
                                                  AUDIT_SPOOL_B64) +
                        1)];
    struct audit_seal sl;
    const struct audit_later *l;
    const struct wqueue_item *it;
    FILE *f = NULL;
    size_t at;
    int fd, i;
    bool ok = true;

    if (!audit_seal_init(st, &sl)) {
        return ERR_CRYPTO;
    }
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", st->audit_spool) >=
            (int)sizeof(tmp) ||
        (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                   0600)) < 0) {
        sodium_memzero(&sl, sizeof(sl));
        return ERR_IO;
    }
    if ((f = fdopen(fd, "w")) == NULL) {
        close(fd);
        (void)unlink(tmp);
        sodium_memzero(&sl, sizeof(sl));
        return ERR_IO;
    }
    for (it = wqueue_first(&st->audit_later); it != NULL && ok; it = it->next) {
        l = (const struct audit_later *)it;
        at =
            (size_t)snprintf(line, sizeof(line), "%lld", (long long)l->ev.time);
        for (i = 0; i < 5; i++) {
            size_t n = strlen(l->ev.v[i]);

            line[at++] = ' ';
            if (n == 0) {
                line[at++] = '-';
                line[at] = '\0';
            } else {
                /* never longer than AUDIT_DETAIL_MAX: audit_write checked */
                sodium_bin2base64(line + at, sizeof(line) - at,
                                  (const unsigned char *)l->ev.v[i], n,
                                  AUDIT_SPOOL_B64);
                at += strlen(line + at);
            }
        }
        ok = audit_spool_put(f, &sl, line);
    }
    snprintf(line, sizeof(line), "end %zu %zu",
             wqueue_len(&st->audit_later, NULL), st->audit_lost);
    ok = ok && audit_spool_put(f, &sl, line);
    sodium_memzero(&sl, sizeof(sl));
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, st->audit_spool) != 0) {
        (void)unlink(tmp);
        return ERR_IO;
    }
    return ERR_OK;
}

/* One event line's text (its seal cut off) into ev, its strings in
 * text[]; false if it is not one. */
static bool audit_spool_event(char *line, struct audit_ev *ev,
                              char text[5][AUDIT_DETAIL_MAX + 1])
{
    char *field[6], *save = NULL, *end;
    size_t n;
    int i;

    for (i = 0; i < 6; i++) {
        if ((field[i] = strtok_r(i == 0 ? line : NULL, " ", &save)) == NULL) {
            return false;
        }
    }
    if (strtok_r(NULL, " ", &save) != NULL) {
        return false;
    }
    errno = 0;
    ev->time = strtoll(field[0], &end, 10);
    if (errno != 0 || *end != '\0' || end == field[0]) {
        return false;
    }
    for (i = 0; i < 5; i++) {
        n = 0;
        if (strcmp(field[i + 1], "-") != 0 &&
            (sodium_base642bin((unsigned char *)text[i], AUDIT_DETAIL_MAX,
                               field[i + 1], strlen(field[i + 1]), NULL, &n,
                               NULL, AUDIT_SPOOL_B64) != 0 ||
             n == 0 || memchr(text[i], '\0', n) != NULL ||
             n > (i == 4 ? AUDIT_DETAIL_MAX : AUDIT_FIELD_MAX))) {
            return false;
        }
        text[i][n] = '\0';
        ev->v[i] = text[i];
    }
    return ev->v[2][0] != '\0';
}

/*
 * Checks the whole spool (data, NUL-terminated) and queues its events:
 * all or none. NULL when it was good, else why not (the 1-based line in
 * *bad, 0 for the file as a whole).
 */
static const char *audit_spool_take(struct store *st, char *data, size_t *bad)
{
    char text[5][AUDIT_DETAIL_MAX + 1], seal[2 * AUDIT_SEAL_BYTES + 1];
    struct audit_seal sl;
    struct audit_ev ev;
    char *line, *next, *sp;
    size_t nline = 0, nev = 0, lost = 0, want_ev = 0, want_lost = 0;
    bool end = false;
    const char *why = NULL;

    *bad = 0;
    if (!audit_seal_init(st, &sl)) {
        return "no audit key to check its seals with";
    }
    /* first pass: every seal, in order, and the end line's counts */
    for (line = data; *line != '\0' && why == NULL; line = next) {
        char *eol = strchr(line, '\n');

        next = eol != NULL ? eol + 1 : line + strlen(line);
        eol = eol != NULL ? eol : next;
        nline++;
        sp = memrchr(line, ' ', (size_t)(eol - line));
        if (end) {
            why = "lines after its end";
        } else if (sp == NULL || eol - sp - 1 != 2 * AUDIT_SEAL_BYTES) {
            why = "a line without a seal";
        } else {
            audit_seal_line(&sl, line, (size_t)(sp - line), seal);
            if (sodium_memcmp(seal, sp + 1, 2 * AUDIT_SEAL_BYTES) != 0) {
                why = "a seal that does not match (edited, reordered, or "
                      "another key)";
            } else if (strncmp(line, "end ", 4) == 0) {
                end = true;
                if (sscanf(line, "end %zu %zu", &want_ev, &want_lost) != 2) {
                    why = "an unreadable end line";
                }
                lost = want_lost;
            } else {
                nev++;
            }
        }
    }
    sodium_memzero(&sl, sizeof(sl));
    if (why != NULL) {
        *bad = nline;
        return why;
    }
    if (!end || want_ev != nev) {
        return "cut short (its end line is missing or counts otherwise)";
    }
    /* second pass: the events, now known to be ours */
    for (line = data; *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL) {
            *next++ = '\0';
        } else {
            next = line + strlen(line);
        }
        *strrchr(line, ' ') = '\0';
        if (strncmp(line, "end ", 4) == 0) {
            break;
        }
        if (!audit_spool_event(line, &ev, text) ||
            audit_enqueue(st, &ev) != ERR_OK) {
            st->audit_lost++;
        }
    }
    st->audit_lost += lost;
    return NULL;
}

int audit_spool(struct store *st, const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0, bad = 0, before = wqueue_len(audit_q(st), NULL);
    char aside[PATH_MAX], detail[AUDIT_DETAIL_MAX + 1];
    const char *why;
    int r;

    free(st->audit_spool);
    if ((st->audit_spool = strdup(path)) == NULL) {
        return ERR_NOMEM;
    }
    r = util_read_file(path, AUDIT_SPOOL_MAX, &data, &len);
    if (r == ERR_NOT_FOUND) {
        return ERR_OK;
    }
    why = r != ERR_OK ? err_str(r) : audit_spool_take(st, (char *)data, &bad);
    free(data);
    if (why == NULL) {
        log_info("store: %zu audit event(s) that a previous run could not "
                 "write (the database did not answer), from %s, are "
                 "written first",
                 wqueue_len(&st->audit_later, NULL) - before, path);
        if (wqueue_len(&st->audit_later, NULL) == 0 && st->audit_lost == 0) {
            (void)unlink(path);
        } else if (wqueue_off_loop(&st->audit_later)) {
            st->audit_spool_pending = true;
            audit_async_kick(st);
        }
        return ERR_OK;
    }
    /* Not ours, or not whole: set aside, and said in the chain itself. */
    snprintf(aside, sizeof(aside), "%s.rejected", path);
    (void)rename(path, aside);
    snprintf(detail, sizeof(detail),
             "the audit events a previous run kept in %.300s were not "
             "written: %s%s; moved to %.300s",
             path, why, bad > 0 ? " (at a line of it)" : "", aside);
    log_error("store: %s (line %zu)", detail, bad);
    (void)audit_write(st, "system", "store", "audit.spool_rejected", path,
                      detail);
    return ERR_OK;
}

void audit_later_drop(struct store *st)
{
    struct wqueue *q = audit_q(st);
    size_t n = 0;
    bool spooled = false;

    if (wqueue_off_loop(q) && audit_off_loop_stop(st, 2000)) {
        /* stopped cleanly: what waits is written here, one last try */
        while (wqueue_len(q, NULL) > 0 || st->audit_lost > 0) {
            if (audit_write_queue(st, &n) != ERR_OK || n == 0) {
                break;
            }
        }
    }
    /* stopped with a batch stuck: spooled below */
    n = wqueue_len(q, NULL);
    if ((n > 0 || st->audit_lost > 0) && st->audit_spool != NULL) {
        if (audit_spool_write(st) == ERR_OK) {
            log_warn("store: %zu audit event(s) could not be written (the "
                     "database does not answer); kept in %s for the next "
                     "start",
                     n, st->audit_spool);
            st->audit_lost = 0;
            spooled = true;
        } else {
            log_error("store: cannot keep the waiting audit events in %s: "
                      "%s",
                      st->audit_spool, strerror(errno));
        }
    }
    if (!spooled && (n > 0 || st->audit_lost > 0)) {
        log_error("store: %zu audit event(s) could not be written (the "
                  "database does not answer) and are lost%s",
                  n + st->audit_lost,
                  st->audit_lost > 0 ? ", some of them not kept at all" : "");
    }
    wqueue_drop(q);
    st->audit_lost = 0;
}

/* --- listing ------------------------------------------------------------ */

static int audit_entry_fill(struct db_stmt *s, void *item)
{
    struct audit_entry *e = item;

    e->seq = db_col_int64(s, 0);
    e->time = db_col_int64(s, 1);
    store_col_text(s, 2, e->actor, sizeof(e->actor));
    store_col_text(s, 3, e->source, sizeof(e->source));
    store_col_text(s, 4, e->action, sizeof(e->action));
    store_col_text(s, 5, e->target, sizeof(e->target));
    store_col_text(s, 6, e->detail, sizeof(e->detail));
    store_col_text(s, 7, e->hash, sizeof(e->hash));
    return ERR_OK;
}

int audit_list(struct store *st, const struct audit_filter *f,
               struct audit_entry **list, size_t *n)
{
    struct store_list l = {NULL, 0, 0, sizeof(struct audit_entry),
                           audit_entry_fill};
    struct store_sql q;
    int r;

    if (list == NULL || n == NULL) {
        return ERR_INVALID;
    }
    *list = NULL;
    *n = 0;
    audit_async_flush(st); /* what the loop wrote is there */
    /* Constant fragments only; the values are bound (store_sql). */
    memset(&q, 0, sizeof(q));
    store_sql_add(&q, "SELECT seq, time, actor, source, action, target,"
                      " detail, hash FROM audit WHERE 1 = 1");
    if (f != NULL && f->actor != NULL) {
        store_sql_param_text(&q, " AND actor = ", f->actor);
    }
    if (f != NULL && f->action != NULL) {
        store_sql_param_int(&q, " AND substr(action, 1, ",
                            store_utf8_chars(f->action));
        store_sql_param_text(&q, ") = ", f->action);
    }
    if (f != NULL && f->since != 0) {
        store_sql_param_int(&q, " AND time >= ", f->since);
    }
    if (f != NULL && f->until != 0) {
        store_sql_param_int(&q, " AND time <= ", f->until);
    }
    store_sql_add(&q, " ORDER BY seq DESC");
    if (f != NULL && f->limit != 0) {
        store_sql_param_int(&q, " LIMIT ", store_clamp_u64(f->limit));
    }
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_sql_run(st, "audit list", &q, store_list_row, &l);
    r = store_list_end(st, r, &l, NULL);
    *list = l.items;
    *n = l.n;
    return r;
}

/* --- verification ------------------------------------------------------- */

static bool audit_is_marker(const struct audit_fields *e)
{
    return e->n[2] == sizeof(AUDIT_KEYED_ACTION) - 1 &&
           memcmp(e->f[2], AUDIT_KEYED_ACTION, e->n[2]) == 0;
}

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

int audit_verify_full(struct store *st, const char *key_file,
                      struct audit_verify_result *res)
{
    uint8_t prev[AUDIT_HASH_BYTES], h[AUDIT_HASH_BYTES];
    uint8_t key[AUDIT_KEY_BYTES];
    char prev_hex[AUDIT_HEX_LEN + 1], hex[AUDIT_HEX_LEN + 1];
    char khex[AUDIT_HEX_LEN + 1], head_hash[AUDIT_HEX_LEN + 1];
    struct audit_fields e;
    struct db_stmt *stmt = NULL;
    int64_t expect = 1, head_seq = 0, seen = 0, *bad_seq = &res->bad_seq;
    char *why = res->why;
    size_t whylen = sizeof(res->why);
    bool found = false, bad = false, have = false, row = false;
    int r, rc, i;

    memset(res, 0, sizeof(*res));
    audit_async_flush(st);
    if (key_file != NULL) {
        r = snprintf(res->key_path, sizeof(res->key_path), "%s", key_file) <
                    (int)sizeof(res->key_path)
                ? ERR_OK
                : ERR_TOO_LONG;
    } else {
        r = audit_key_path(st, res->key_path, sizeof(res->key_path));
    }
    if (r == ERR_OK) {
        r = audit_key_read(res->key_path, key);
        if (r == ERR_NOT_FOUND && key_file != NULL) {
            snprintf(why, whylen, "no audit key at %.400s", key_file);
            return ERR_NOT_FOUND;
        }
        if (r != ERR_OK && r != ERR_NOT_FOUND) {
            snprintf(why, whylen, "cannot read the audit key %.400s: %s",
                     res->key_path, err_str(r));
            return r;
        }
        have = r == ERR_OK;
    } else if (r != ERR_NOT_FOUND) {
        return r;
    }
    res->keyed = have;
    if (have) {
        audit_key_id(key, res->key_id);
    }
    /* One read transaction: the rows and the head are one snapshot, even
     * while the server appends. */
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        goto wipe;
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
    if ((r = db_prepare(store_db(st), "audit verify",
                        "SELECT seq, time, actor, source, action, target,"
                        " detail, prev_hash, hash FROM audit ORDER BY seq",
                        &stmt)) != ERR_OK) {
        goto out;
    }
    while ((r = db_step(stmt, &row)) == ERR_OK && row) {
        const char *ph, *hh;
        size_t phn, hhn;
        bool keyed_ok = false, unkeyed_ok;

        memset(&e, 0, sizeof(e));
        e.seq = db_col_int64(stmt, 0);
        e.time = db_col_int64(stmt, 1);
        for (i = 0; i < 5; i++) {
            e.f[i] = db_col_text(stmt, 2 + i, &e.n[i]);
        }
        ph = db_col_text(stmt, 7, &phn);
        hh = db_col_text(stmt, 8, &hhn);
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
        /* Keyed from the first keyed entry on; unkeyed only before it. */
        if (have) {
            audit_hash(key, prev, &e, h);
            audit_hex(h, khex);
            keyed_ok = hh != NULL && hhn == AUDIT_HEX_LEN &&
                       sodium_memcmp(hh, khex, AUDIT_HEX_LEN) == 0;
        }
        audit_hash(NULL, prev, &e, h);
        audit_hex(h, hex);
        unkeyed_ok = !keyed_ok && hh != NULL && hhn == AUDIT_HEX_LEN &&
                     memcmp(hh, hex, AUDIT_HEX_LEN) == 0;
        if (keyed_ok && res->keyed_from == 0 && e.seq != 1 &&
            !audit_is_marker(&e)) {
            /* The switch is always the marker a writer makes with the
             * key: unkeyed entries followed by any other keyed one are a
             * rewrite that a later, honest append chained onto. */
            r = audit_bad(bad_seq, why, whylen, e.seq - 1,
                          "entry changed (hashed without the audit key, and "
                          "keyed hashing does not start with its marker)");
            bad = true;
            goto out;
        }
        if (keyed_ok) {
            if (res->keyed_from == 0) {
                res->keyed_from = e.seq;
            }
            memcpy(hex, khex, sizeof(hex));
            audit_unhex(khex, AUDIT_HEX_LEN, h);
        } else if (unkeyed_ok && res->keyed_from != 0) {
            r = audit_bad(bad_seq, why, whylen, e.seq,
                          "entry changed (hashed without the audit key after "
                          "keyed hashing started at entry %lld)",
                          (long long)res->keyed_from);
            bad = true;
            goto out;
        } else if (!unkeyed_ok) {
            r = audit_bad(bad_seq, why, whylen, e.seq, "%s",
                          have ? "entry changed (its hash does not match its "
                                 "contents under the audit key)"
                               : "entry changed, or keyed with an audit key "
                                 "this check does not have (its hash does "
                                 "not match its contents)");
            bad = true;
            goto out;
        }
        memcpy(prev, h, sizeof(prev));
        memcpy(prev_hex, hex, sizeof(prev_hex));
        seen++;
        expect++;
    }
    if (r != ERR_OK) {
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
    } else if (have && seen > 0 && res->keyed_from == 0) {
        /* Every entry hashes without the key, yet a key exists: only a
         * chain rewritten by someone without the key looks like this. */
        r = audit_bad(bad_seq, why, whylen, 1,
                      "an audit key exists (%.300s) but no entry is keyed: the "
                      "log was rewritten without the key",
                      res->key_path);
        bad = true;
    }
out:
    db_finalize(stmt);
    /* A broken chain is the answer, not a failed transaction. */
    rc = store_tx_end(st, bad ? ERR_OK : r);
    if (!bad) {
        r = rc;
    }
    if (r == ERR_OK || bad) {
        res->count = seen;
    }
wipe:
    sodium_memzero(key, sizeof(key));
    return r;
}

int audit_verify_count(struct store *st, int64_t *count, int64_t *bad_seq,
                       char *why, size_t whylen)
{
    struct audit_verify_result res;
    int r = audit_verify_full(st, NULL, &res);

    if (count != NULL) {
        *count = res.count;
    }
    if (bad_seq != NULL) {
        *bad_seq = res.bad_seq;
    }
    if (why != NULL && whylen > 0) {
        snprintf(why, whylen, "%s", res.why);
    }
    return r;
}

int audit_verify(struct store *st, int64_t *bad_seq, char *why, size_t whylen)
{
    return audit_verify_count(st, NULL, bad_seq, why, whylen);
}
