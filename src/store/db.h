/*
 * The database driver under the store: the few things the store's noun
 * files (store_users.c, store_assets.c, ...) need from a SQL database, and
 * nothing more. db_sqlite.c implements it on SQLite; a PostgreSQL driver
 * (db_pg.c on libpq) implements the same functions, and every noun comes
 * with it unchanged. Nothing outside src/store/ includes this.
 *
 * SQL text: parameters are written $1, $2, ... and numbered in ascending
 * order of their first use in the text ($1 may be used again later). That
 * is PostgreSQL's own syntax, and SQLite reads "$1" as a named parameter
 * that it numbers in order of first appearance, so the same text binds the
 * same values on both. db_prepare() refuses any other spelling ('?',
 * '?NNN', ':name', "$2" before "$1") with ERR_INTERNAL, so a statement that
 * would bind differently on the other database never runs here either.
 * docs/store.md lists the SQL constructs the two databases do not share.
 *
 * Errors: every function returns ERR_OK or an ERR_* code. The driver maps
 * its database's codes: a unique or primary-key violation is ERR_EXISTS, a
 * foreign-key violation ERR_NOT_FOUND, out of memory ERR_NOMEM, anything
 * else ERR_STORE with one log line naming `what` and the database's message
 * (which names tables and columns, never bound values, so no secret reaches
 * the log). "Busy" is the driver's to absorb: db_begin() and db_commit()
 * wait and retry rather than fail.
 *
 * Processes: a connection belongs to the process that opened it. Every call
 * made in a forked child fails with ERR_STORE, and db_close() there only
 * frees memory, so a child never disturbs its parent's locks.
 *
 * Ownership: db_open() gives a connection freed by db_close() (NULL-safe);
 * db_prepare() a statement freed by db_finalize() (NULL-safe). Text and
 * blobs bound to a statement must outlive its last db_step(); column
 * pointers are valid until the next db_step() or db_finalize().
 */
#ifndef PORTCULLIS_STORE_DB_H
#define PORTCULLIS_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct db_stmt;

/* Opens (creating if absent, mode 0600) the database at location: for
 * SQLite a file path or ":memory:". ERR_IO when the file cannot be made.
 * A "postgresql://" or "postgres://" URL opens the PostgreSQL driver
 * (db_pg.c) on an existing database; ERR_STORE when it cannot connect. */
int db_open(const char *location, struct db **out);
void db_close(struct db *db);
/* The database file (for files kept beside it, such as the audit key);
 * "" for one in memory or on a server; NULL in a forked child. */
const char *db_location(struct db *db);

/* true for a database server that several nodes share (PostgreSQL): the
 * store's notices (notices.h) go through it. */
bool db_is_shared(struct db *db);
/* The same from a location as db_open() takes it. */
bool db_location_is_server(const char *location);
/* Process-wide settings of the connections opened after it (PostgreSQL;
 * nothing on SQLite): app_name ("" or NULL: none) follows "portcullis " in
 * the server's application_name (pg_stat_activity shows which node holds
 * what); a transaction idle longer than idle_tx_seconds (clamped to 3-10;
 * <= 0 keeps 10) between its statements has its connection ended by the
 * server, so a frozen holder of the write lock cannot hold the cluster's
 * writes longer (db_pg.c). Call before the first db_open() and before any
 * thread that opens connections starts. */
void db_set_session_defaults(const char *app_name, int idle_tx_seconds);

/* Transactions. A write transaction takes the write lock up front (SQLite:
 * BEGIN IMMEDIATE), so it never has to be upgraded and never fails half
 * way for a lock; a read transaction sees one snapshot. db_commit() that
 * fails has rolled back. db_rollback() is harmless outside a transaction. */
int db_begin(struct db *db, bool write);
/*
 * A write transaction that takes only a part of the write lock: on
 * PostgreSQL the store-wide key shared and the part's own key exclusive,
 * so writers of one part take turns, writers of different parts run at
 * once, and a db_begin(true) writer (the whole lock) waits for every
 * part's writer and they for it. For writes whose rule needs only the
 * part's own tables to be written one at a time (docs/store.md, "One
 * writer at a time"). SQLite: db_begin(true) (one writer at a time).
 */
enum db_part {
    DB_PART_SESSIONS = 1, /* the session report: seq is MAX(seq) + 1 */
    DB_PART_AUDIT = 2,    /* the audit log: the head read, then moved */
    DB_PART_JOBS = 3,     /* a running job's output and end (hub_jobw.c) */
};
int db_begin_part(struct db *db, enum db_part part);
int db_commit(struct db *db);
/* The database was seen answering on another connection: a lost
 * connection waiting out its reconnection back-off tries again at the next
 * call instead (PostgreSQL; nothing for SQLite). */
void db_retry_now(struct db *db);
/* true when the connection to the database server is known to be lost
 * (the last call failed on it, or a reconnection is waiting out its
 * back-off); false for SQLite, and while the server answers. */
bool db_down(struct db *db);
/* From now on a lost connection is opened again on loop's workers
 * (loop_work), never in the caller's thread beyond a short wait; until it
 * is, db_begin() fails at once with ERR_STORE and db_down() is true. And
 * a statement that has no answer within deadline_ms (<= 0: 3000) fails
 * with ERR_STORE: it is cancelled, or, when the server does not answer
 * that either, the connection is dropped (db_down() true) and opened
 * again as above (PostgreSQL; nothing for SQLite). Without it, db_begin()
 * reconnects inline and statements wait for the server. Call in the
 * loop's thread, which then makes every call; loop NULL: back to that. */
struct loop;
void db_set_loop(struct db *db, struct loop *loop, int deadline_ms);
void db_rollback(struct db *db);

/* *exists: whether a table of that name is in the database (on
 * PostgreSQL, on the connection's search_path). */
int db_has_table(struct db *db, const char *name, bool *exists);

/* Runs statements separated by ';' without parameters or result rows
 * (schema migrations). */
int db_exec(struct db *db, const char *what, const char *sql);

int db_prepare(struct db *db, const char *what, const char *sql,
               struct db_stmt **out);
void db_finalize(struct db_stmt *s);
/* The number of parameters the statement takes ($1 .. $N). */
int db_param_count(struct db_stmt *s);

/* Binds parameter idx (1-based). NULL text and NULL or empty blobs bind
 * SQL NULL. */
int db_bind_text(struct db_stmt *s, int idx, const char *v);
int db_bind_int64(struct db_stmt *s, int idx, int64_t v);
int db_bind_blob(struct db_stmt *s, int idx, const void *p, size_t len);
int db_bind_null(struct db_stmt *s, int idx);

/* Executes or advances the statement: ERR_OK with *row true when a result
 * row is ready, false when it is done. */
int db_step(struct db_stmt *s, bool *row);
/* Rows the statement changed (INSERT, UPDATE, DELETE) once done. */
int64_t db_changes(struct db_stmt *s);

/* Columns of the current row (0-based). SQL NULL reads as 0, as a NULL
 * text pointer or as an empty blob. */
bool db_col_null(struct db_stmt *s, int i);
int64_t db_col_int64(struct db_stmt *s, int i);
int db_col_int(struct db_stmt *s, int i);
const char *db_col_text(struct db_stmt *s, int i,
                        size_t *len /* may be NULL */);
const void *db_col_blob(struct db_stmt *s, int i, size_t *len);

#endif
