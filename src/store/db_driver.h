/*
 * Between db.c (which implements db.h by dispatching) and the drivers
 * (db_sqlite.c, db_pg.c). Every driver's struct db and struct db_stmt start
 * with a pointer to its table, so db.c finds the driver from the handle.
 * Nothing outside src/store/db*.c includes this.
 */
#ifndef PORTCULLIS_STORE_DB_DRIVER_H
#define PORTCULLIS_STORE_DB_DRIVER_H

#include <sys/types.h>

#include "store/db.h"

struct db_driver {
    const char *name;
    int (*open)(const char *location, struct db **out);
    void (*close)(struct db *db);
    const char *(*location)(struct db *db);
    int (*begin)(struct db *db, bool write);
    /* optional: db_begin_part (NULL: begin(db, true)) */
    int (*begin_part)(struct db *db, int part);
    int (*commit)(struct db *db);
    /* optional: the server was seen answering (a notice arrived): a
     * reconnection waiting out its back-off may try at the next call */
    void (*retry_now)(struct db *db);
    /* optional: reconnect on loop's workers, statements with a deadline
     * (db_set_loop) */
    void (*set_loop)(struct db *db, struct loop *loop, int deadline_ms);
    /* optional: the connection to the server is known lost */
    bool (*down)(struct db *db);
    void (*rollback)(struct db *db);
    int (*exec)(struct db *db, const char *what, const char *sql);
    int (*prepare)(struct db *db, const char *what, const char *sql,
                   struct db_stmt **out);
    void (*finalize)(struct db_stmt *s);
    int (*param_count)(struct db_stmt *s);
    int (*bind_text)(struct db_stmt *s, int idx, const char *v);
    int (*bind_int64)(struct db_stmt *s, int idx, int64_t v);
    int (*bind_blob)(struct db_stmt *s, int idx, const void *p, size_t len);
    int (*bind_null)(struct db_stmt *s, int idx);
    int (*step)(struct db_stmt *s, bool *row);
    int64_t (*changes)(struct db_stmt *s);
    bool (*col_null)(struct db_stmt *s, int i);
    int64_t (*col_int64)(struct db_stmt *s, int i);
    int (*col_int)(struct db_stmt *s, int i);
    const char *(*col_text)(struct db_stmt *s, int i, size_t *len);
    const void *(*col_blob)(struct db_stmt *s, int i, size_t *len);
};

/* The first member of every driver's struct db_stmt, and of its struct
 * db (inside struct db_conn). */
struct db_head {
    const struct db_driver *drv;
};

/*
 * The first member of every driver's struct db: its table and the process
 * that opened it. A connection belongs to that process (db.h,
 * "Processes"): a forked child must not use it, nor close it (SQLite's
 * locks and WAL, PostgreSQL's goodbye on a socket the parent still uses),
 * so both drivers ask these three (db.c) rather than getpid() themselves.
 */
struct db_conn {
    struct db_head head;
    pid_t pid;
};
/* Fills c for a connection this process opens with driver drv. */
void db_conn_init(struct db_conn *c, const struct db_driver *drv);
/* true if this process opened c (and so may use and close it). */
bool db_conn_mine(const struct db_conn *c);
/* ERR_OK if this process opened c; else ERR_STORE, with a log line. */
int db_conn_check(const struct db_conn *c);

extern const struct db_driver db_sqlite_driver;
extern const struct db_driver db_pg_driver;

/* True for "postgresql://..." and "postgres://..." (db.c). */
bool db_location_is_pg(const char *location);

#endif
