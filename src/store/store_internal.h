/*
 * What the store's own files share and nothing else includes: the input
 * checks applied before every write (store_names.c), the list of schema
 * migrations (store_schema.c) that store_open() applies, and the helpers
 * every noun file is written with (store_common.c): one transaction per
 * public function, a query with typed binds, rows collected into lists.
 *
 * The noun files (store_users.c, store_groups.c, ...) use these helpers and
 * db.h only, never a database's own API, so a second driver beside
 * db_sqlite.c serves every noun. docs/store.md describes the layout.
 *
 * Not part of the store interface; only src/store/ includes this.
 */
#ifndef PORTCULLIS_STORE_INTERNAL_H
#define PORTCULLIS_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h" /* STORE_ID_MAX */
#include "store/store_wqueue.h"

/* ERR_OK if s (NULL counts as "") has at most max bytes, else
 * ERR_TOO_LONG. For free text such as report details. */
int store_check_len(const char *s, size_t max);
/* As store_check_len, and refuses control characters (ERR_INVALID), and
 * NULL or "" when required. */
int store_check_text(const char *s, size_t max, bool required);
/* An object name (group, profile, asset): non-empty, at most
 * STORE_NAME_MAX bytes, no control characters, and not shaped like a UUID,
 * so that "name or ID" lookups are never ambiguous. */
int store_check_name(const char *s);
/* A user name: as store_check_name, and none of the login grammar's
 * delimiters ('/', '?', '#'), so every user can log in. */
int store_check_user_name(const char *s);
/* true if s is a UUID; then out (STORE_ID_MAX + 1) gets it lower-cased,
 * the form in which the store keeps every ID. */
bool store_id_norm(const char *s, char *out);

/* One schema step. hook names work that needs values (bound, never
 * formatted into SQL) and so is done in C by the driver after sql ran, in
 * the same transaction. */
enum store_hook {
    STORE_HOOK_NONE = 0,
    STORE_HOOK_ROOT_SITE, /* insert the /root site with a fresh UUID */
};

struct store_migration {
    int version;     /* 1, 2, ...: the schema_version after this step */
    const char *sql; /* statements separated by ';' */
    enum store_hook hook;
};

extern const struct store_migration store_migrations[];
extern const size_t store_migrations_count;

/* The handle: a driver connection, and the node whose rows it writes
 * (store_set_node, nodes.h; "" for the CLI and tests). */
struct db;
struct db_stmt;
struct store {
    struct db *db;
    char *audit_key; /* store_set_audit_key(); NULL: beside the file */
    char node[32 + 1];
    /* store_create_begin(): one transaction holds every call until
     * store_create_end(); create_err is the first failure inside it */
    bool creating;
    int create_err;
    /* audit events kept while the database does not answer
     * (audit_defer(), store_audit.c): an ordered write queue
     * (store_wqueue.h; its bound, its marked events those before any
     * authentication), off the loop with audit_off_loop() (its worker
     * writes it; otherwise audit_write() writes on this connection), and
     * what did not fit */
    struct wqueue audit_later;
    size_t audit_lost;
    char *audit_spool;        /* audit_spool(): where drop keeps what waits */
    bool audit_spool_pending; /* the spool's events wait in the queue */
    /* store_session_off_loop(): the session report's writes queued for a
     * worker of their own (store_session_async.c); NULL: written on this
     * connection */
    struct rows_async *rows_async;
};

/* --- the session report's writes off the loop (store_session_async.c) --- */

enum store_row_kind {
    STORE_ROW_OPEN,      /* store_session_open */
    STORE_ROW_CLOSE,     /* store_session_close: id, ended_at, bytes,
                            exit_status, result */
    STORE_ROW_RECORDING, /* store_session_set_recording: id,
                            recording_path, _size, _sha256 */
    STORE_ROW_UPDATE,    /* store_session_update */
};
/* Queues one write (its input already checked) behind the others:
 * ERR_OK, or ERR_STORE when the queue is full (nothing kept). */
int store_rows_put(struct store *st, enum store_row_kind kind,
                   const struct store_session *s);
/* Before a read of the report on a handle whose writes are queued: the
 * batch in flight back (1 s at most) and the rest written here. */
void store_rows_flush(struct store *st);
/* One write, inside the caller's write transaction (store_sessions.c). */
int store_session_apply(struct store *st, enum store_row_kind kind,
                        const struct store_session *s);

/* --- transactions: every public function is one ------------------------- */

int store_tx_begin(struct store *st, bool write);
/* A write transaction under a part of the write lock (db.h
 * db_begin_part): only for the session report's and the audit log's
 * writes, which touch their own tables alone. */
int store_tx_begin_part(struct store *st, int part);
/* Commits when r is ERR_OK, rolls back otherwise; returns the outcome. */
int store_tx_end(struct store *st, int r);

/* --- queries ------------------------------------------------------------- */

/* Called for each result row; anything but ERR_OK stops the query. */
typedef int (*store_row_fn)(struct db_stmt *row, void *ctx);

/*
 * Prepares sql (parameters $1, $2, ...: db.h), binds parameters 1, 2, ...
 * from a type string and steps through every row, calling fn(row, ctx)
 * for each (fn may be NULL). *rows (may be NULL) gets the number of rows.
 * The type string must name every parameter (ERR_INTERNAL otherwise).
 * Types:
 *   't' const char *            text; NULL binds SQL NULL
 *   'i' int64_t                 integer (pass an int64_t, not an int)
 *   'z' int64_t                 integer; 0 binds SQL NULL
 *   'b' const uint8_t *, size_t blob; NULL or length 0 binds SQL NULL
 */
int store_query(struct store *st, const char *what, const char *sql,
                store_row_fn fn, void *ctx, size_t *rows, const char *types,
                ...);
/* A statement without result rows; *changes (may be NULL) gets the number
 * of rows it changed. */
int store_run(struct store *st, const char *what, const char *sql, int *changes,
              const char *types, ...);
/* Steps a prepared and bound statement through every row like
 * store_query(). Does not finalize. */
int store_step(struct db_stmt *stmt, store_row_fn fn, void *ctx, size_t *rows);
/* The handle's driver connection. */
struct db *store_db(struct store *st);

/*
 * SQL assembled from constant fragments, for filters whose clauses depend
 * on which criteria are set: store_sql_add() appends text, the _param
 * functions append text followed by the next parameter ("$N", so the
 * numbering is always ascending) and keep its value for store_sql_run().
 * Values are never formatted into the text. A fragment that does not fit
 * makes store_sql_run() fail with ERR_INTERNAL.
 */
#define STORE_SQL_MAX 1024
#define STORE_SQL_PARAMS 16
struct store_sql {
    char text[STORE_SQL_MAX];
    size_t len;
    int n;
    bool overflow;
    char type[STORE_SQL_PARAMS];       /* 't' or 'i' */
    const char *str[STORE_SQL_PARAMS]; /* must outlive store_sql_run() */
    int64_t num[STORE_SQL_PARAMS];
};
void store_sql_add(struct store_sql *q, const char *frag);
void store_sql_param_text(struct store_sql *q, const char *frag, const char *v);
void store_sql_param_int(struct store_sql *q, const char *frag, int64_t v);
/* Runs q like store_query(), in the caller's transaction. */
int store_sql_run(struct store *st, const char *what, const struct store_sql *q,
                  store_row_fn fn, void *ctx);

/* ERR_OK if the query (one text parameter) gives a row, else
 * ERR_NOT_FOUND. */
int store_exists(struct store *st, const char *what, const char *sql,
                 const char *id);
/* A SELECT with one text parameter (key) whose first row fill() writes
 * into out, in the caller's transaction: ERR_NOT_FOUND without a row. */
int store_query_one(struct store *st, const char *what, const char *sql,
                    const char *key, store_row_fn fill, void *out);
/* As store_query_one() in a read transaction of its own. */
int store_get_one(struct store *st, const char *what, const char *sql,
                  const char *key, store_row_fn fill, void *out);
/* Reads the row named by an ID or a name in a read transaction of its
 * own: by_id and by_name are the two SELECTs ($1 each; an ID is matched
 * in the lower case the store keeps, a name as given) whose first row
 * fill() writes into out. ERR_NOT_FOUND without a row, and for NULL or
 * "". Names are never shaped like a UUID (store_check_name), so the two
 * cannot disagree. */
int store_get_named(struct store *st, const char *what, const char *by_id,
                    const char *by_name, const char *name_or_id,
                    store_row_fn fill, void *out);
/* One write in its own transaction; ERR_NOT_FOUND if it changed no row. */
int store_update_one(struct store *st, const char *what, const char *sql,
                     const char *types, ...);
/* Deletes the row whose ID is id (sql: a DELETE with $1) in one
 * transaction. ERR_NOT_FOUND if id is not an ID or no row matched. */
int store_delete_id(struct store *st, const char *what, const char *sql,
                    const char *id);
/* Deletes the row named by an ID or a name in one transaction: by_id and
 * by_name are the two DELETE statements ($1 each). ERR_NOT_FOUND if no
 * row matched. */
int store_delete_named(struct store *st, const char *what, const char *by_id,
                       const char *by_name, const char *name_or_id);

/* Who a role is granted to (site roles, job roles): exactly one of a
 * user and a group, by ID. store_grantee_norm() fills g from the two ID
 * fields of a role (the one not set is ""): user_id and group_id point
 * at the lower-cased ID or are NULL (SQL NULL when bound). false if not
 * exactly one is set or it is not an ID. */
struct store_grantee {
    char user[STORE_ID_MAX + 1], group[STORE_ID_MAX + 1];
    const char *user_id, *group_id;
};
bool store_grantee_norm(struct store_grantee *g, const char *user_id,
                        const char *group_id);
/* The index of s in names[lo..hi] (a role's or a mode's names), or -1
 * (also for NULL). */
int store_name_index(const char *const *names, int lo, int hi, const char *s);

/* --- columns ------------------------------------------------------------- */

/* Copies a text column into a fixed field. Writes refuse over-long values,
 * so truncation here only guards against a file edited by hand. */
void store_col_text(struct db_stmt *s, int i, char *dst, size_t dstlen);
/* A text column into a new heap string ("" for NULL). */
int store_col_str_heap(struct db_stmt *s, int i, char **out);
/* A blob column into a new heap copy (NULL, 0 for NULL or empty). */
int store_col_blob_heap(struct db_stmt *s, int i, uint8_t **out, size_t *len);
/* A row function: column 0 into the int64_t at ctx. */
int store_int_row(struct db_stmt *row, void *ctx);

/* --- lists --------------------------------------------------------------- */

/* Rows collected into a heap array of fixed-size structs: pass
 * store_list_row as the row function and the list as its ctx. The caller
 * frees items. */
struct store_list {
    void *items;
    size_t n, cap, size;
    store_row_fn fill; /* fills one zeroed item; frees what it allocated on
                          failure */
};
int store_list_row(struct db_stmt *row, void *ctx);
/* Ends the transaction a list was read in (store_tx_end()); when that
 * fails, frees the items with release (NULL: free()) and empties l, so
 * the caller hands over l->items and l->n either way. */
int store_list_end(struct store *st, int r, struct store_list *l,
                   void (*release)(void *items, size_t n));
/* Runs a list query in a read transaction of its own and hands the array
 * over (*list, *n: empty on failure). release frees items that hold heap
 * memory or secrets (NULL: free()). */
int store_list_query(struct store *st, const char *what, const char *sql,
                     size_t size, store_row_fn fill,
                     void (*release)(void *items, size_t n), void **list,
                     size_t *n, const char *types, ...);
/*
 * A list that belongs to one row (a user's keys, a group's members): sql
 * takes that row's ID as $1. ERR_NOT_FOUND unless the row exists (exists()
 * is asked in the same read transaction). The list ends as
 * store_list_end() leaves it.
 */
int store_child_list(struct store *st,
                     int (*exists)(struct store *st, const char *id),
                     const char *id, const char *what, const char *sql,
                     struct store_list *l,
                     void (*release)(void *items, size_t n));

/* --- values -------------------------------------------------------------- */

/* The store keeps IDs lower-case; an argument that is not a UUID at all
 * names no row. Returns buf (STORE_ID_MAX + 1) filled, or NULL. */
const char *store_idn(const char *in, char *buf);
/* An unsigned count as the signed 64-bit integer both databases store. */
int64_t store_clamp_u64(uint64_t v);
/* true if the fixed field f of size bytes holds its NUL. */
bool store_field_ok(const char *f, size_t size);
/* The number of characters (not bytes) in a UTF-8 string, as SQL's
 * substr() counts them. */
int64_t store_utf8_chars(const char *s);

/* A fixed field of a struct must hold its NUL (a caller that filled it
 * with memcpy may not have written one): ERR_TOO_LONG otherwise; then as
 * store_check_text(). */
#define STORE_FIELD_TEXT(f, required)                                          \
    (strnlen((f), sizeof(f)) == sizeof(f)                                      \
         ? ERR_TOO_LONG                                                        \
         : store_check_text((f), sizeof(f) - 1, (required)))

/* --- lookups shared between noun files ----------------------------------- */

/* true if s is an agent ID: 1-64 of A-Z a-z 0-9 . _ - (store_agents.c). */
bool store_agent_id_valid(const char *s);

int store_user_exists(struct store *st, const char *id);
int store_group_exists(struct store *st, const char *id);
/* The user columns and row reader (store_users.c), for member lists. */
#define STORE_USER_COLS                                                        \
    "u.id, u.name, u.password_hash, u.disabled, u.totp_enabled,"               \
    " u.totp_sealed, u.totp_last_step, u.created_at, u.display_name, u.mail"
int store_user_row(struct db_stmt *row, void *item);
void store_user_list_release(void *items, size_t n);
/* Finds a site by ID or by any form store_site_normalize() accepts (NULL
 * and "" are /root), in the caller's transaction (store_sites.c). */
struct store_site;
int store_site_lookup(struct store *st, const char *path_or_id,
                      struct store_site *out);
/* The first migration's hook: the /root site. */
int store_site_create_root(struct store *st);

#endif
