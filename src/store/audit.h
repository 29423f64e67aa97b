/*
 * The audit log: an append-only, hash-chained stream of events (logins
 * and their failures, session starts and ends, every administrative
 * change through the CLI or the API).
 *
 * Each entry's hash covers the previous entry's hash and the entry's own
 * fields, so changing, removing or reordering a stored entry breaks the
 * chain at that point; audit_verify() names the first bad entry. The hash
 * is an HMAC under a key kept outside the database (audit.key beside it,
 * see store_audit.c), so someone who can write the database but not read
 * the key cannot rewrite the chain whole either.
 *
 * Ownership: entries returned by audit_list() are a heap array freed with
 * store_list_free(). Never put a secret (password, TOTP code, token) in
 * an event's fields.
 */
#ifndef PORTCULLIS_AUDIT_H
#define PORTCULLIS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define AUDIT_FIELD_MAX 256
#define AUDIT_DETAIL_MAX 1024

struct audit_entry {
    int64_t seq;                      /* 1, 2, 3, ... in append order */
    int64_t time;                     /* Unix seconds */
    char actor[AUDIT_FIELD_MAX + 1];  /* user name, "cli:root", "system" */
    char source[AUDIT_FIELD_MAX + 1]; /* client address, "cli", "api" */
    char action[AUDIT_FIELD_MAX + 1]; /* "login.ok", "user.add", ... */
    char target[AUDIT_FIELD_MAX + 1]; /* what it acted on */
    char detail[AUDIT_DETAIL_MAX + 1];
    char hash[65]; /* hex SHA-256 (HMAC-SHA-256 once keyed) chaining this
                      entry to the previous */
};

struct audit_filter {
    const char *actor;  /* NULL = any */
    const char *action; /* prefix, e.g. "login." */
    int64_t since, until;
    size_t limit; /* 0 = all; newest first */
};

/* Appends one event (one transaction: reads the last hash, writes). On a
 * handle with audit_defer() set, an event the database cannot take now
 * because it does not answer (store_unreachable()), and every event after
 * it while any waits, is kept in memory in order and ERR_OK returned;
 * ERR_STORE when the bound left no room (counted; see store_audit.c). */
int audit_write(struct store *st, const char *actor, const char *source,
                const char *action, const char *target, const char *detail);
/* Keeps up to max events for a database that does not answer (0: none,
 * the default: a CLI process fails instead). The server's handle. */
void audit_defer(struct store *st, size_t max);
/* Events waiting (plus one for the note of events not kept): 0 when
 * there is nothing for audit_write_waiting() to do. */
size_t audit_waiting(const struct store *st);
/* Writes the waiting events in order, in transactions of several, then
 * one audit.lost event if some were not kept. Stops at the first failure
 * (returned; the rest stay for the next call), and after about a thousand
 * events (ERR_OK with audit_waiting() > 0: call again soon, so a long
 * backlog does not hold the caller's loop); *written gets how many were
 * written. */
int audit_write_waiting(struct store *st, size_t *written);
/* Frees whatever still waits (store_close() does this). With a spool
 * (audit_spool()), the events are first written to that file, for the
 * next start; otherwise the log says how many events that loses. */
void audit_later_drop(struct store *st);
/*
 * The server's handle: path (in the data directory) keeps the events
 * still waiting when the store is closed (the server stopped while the
 * database did not answer), one JSON object per line, mode 0600. Events a
 * previous run left there are taken first: queued in order before any new
 * one, to be written by audit_write_waiting() (each with the time it
 * happened), and the file is removed once they are all written. A line
 * that is not an event is skipped with a warning; ERR_OK unless path
 * cannot be kept.
 */
int audit_spool(struct store *st, const char *path);
/*
 * The server's handle on a database server (PostgreSQL), with its loop:
 * from now on audit_write() only queues the event (ERR_OK; ERR_STORE when
 * the bound of audit_defer() left no room: counted, then recorded as
 * audit.lost) and a worker of the handle's own, on a connection opened
 * from location, appends the queued events in the order they were
 * queued, batch after batch, retrying a failed batch ahead of the rest.
 * audit_list() and audit_verify_full() on this handle first wait for
 * what is queued (the batch in flight at most 1 s; the rest on the
 * handle's connection). audit_waiting() is then 0: there is nothing for
 * the caller's timer to do. On SQLite, or without a loop, nothing
 * changes: audit_write() appends at once. ERR_OK or ERR_NOMEM.
 */
struct loop;
int audit_off_loop(struct store *st, struct loop *l, const char *location);
/*
 * Stops that worker, waiting at most ms for the batch in flight, on the
 * loop's thread while the loop exists (before store_close(), which
 * otherwise does it). true: stopped cleanly; what still waits is written
 * on the handle's connection by audit_write_waiting() (audit_waiting() >
 * 0), else spooled by store_close(). false: a batch did not come back
 * (the database does not answer); its events and every later one go to
 * the spool at store_close(), in order, none written ahead of it.
 */
bool audit_off_loop_stop(struct store *st, int ms);
int audit_list(struct store *st, const struct audit_filter *f,
               struct audit_entry **list, size_t *n);
/* The result of audit_verify_full(). */
struct audit_verify_result {
    int64_t count;      /* entries that verified */
    int64_t bad_seq;    /* the first that did not (0: none, or the head) */
    int64_t keyed_from; /* the first keyed entry; 0 = none */
    bool keyed;         /* an audit key was found and used */
    char key_id[17];    /* its public ID (hex), when keyed */
    char key_path[4096];
    char why[512]; /* why it is broken, or why it could not be checked */
};

/* Where the audit key of this store lives: the path store_set_audit_key()
 * gave, else audit.key in the database's directory. ERR_NOT_FOUND for an
 * in-memory database or one on a server without a path set. */
int audit_key_path(struct store *st, char *out, size_t outlen);
/* The audit key's place for this handle ([store] audit_key; on PostgreSQL
 * data_dir/audit.key by default): "" or NULL keeps the default. */
int store_set_audit_key(struct store *st, const char *path);
/* Makes a new random audit key file (O_EXCL, mode 0600) for a new store
 * (`portcullis init`); a writer that finds none makes one by itself. */
int audit_key_create(struct store *st);
/* Walks the whole chain with the audit key at key_file (NULL: the store's
 * own, audit_key_path()), and fills res. ERR_OK if intact, ERR_CRYPTO when
 * broken (res->bad_seq, res->why); ERR_NOT_FOUND if key_file was given
 * and does not exist; other errors when it could not check. Entries
 * before the first keyed one verify without the key (a log from before
 * keyed hashing); after it, only keyed ones. With a key, a log with no
 * keyed entry at all is broken (rewritten by someone without the key). */
int audit_verify_full(struct store *st, const char *key_file,
                      struct audit_verify_result *res);
/* Walks the whole chain. ERR_OK if intact; otherwise ERR_CRYPTO and
 * *bad_seq = the first entry that does not verify (changed, or following
 * a removed entry), with why filled in. */
int audit_verify(struct store *st, int64_t *bad_seq, char *why, size_t whylen);
/* As audit_verify(); *count (may be NULL) gets the number of entries that
 * verified (all of them when the chain is intact). */
int audit_verify_count(struct store *st, int64_t *count, int64_t *bad_seq,
                       char *why, size_t whylen);

#endif
