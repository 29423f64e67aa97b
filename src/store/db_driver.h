/*
 * Between db.c (which implements db.h by dispatching) and the drivers
 * (db_sqlite.c, db_pg.c). Every driver's struct db and struct db_stmt start
 * with a pointer to its table, so db.c finds the driver from the handle.
 * Nothing outside src/store/db*.c includes this.
 */
#ifndef PORTCULLIS_STORE_DB_DRIVER_H
#define PORTCULLIS_STORE_DB_DRIVER_H

#include "store/db.h"

struct db_driver {
    const char *name;
    int (*open)(const char *location, struct db **out);
    void (*close)(struct db *db);
    const char *(*location)(struct db *db);
    int (*begin)(struct db *db, bool write);
    int (*commit)(struct db *db);
    /* optional: the server was seen answering (a notice arrived): a
     * reconnection waiting out its back-off may try at the next call */
    void (*retry_now)(struct db *db);
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

/* The first member of every driver's struct db and struct db_stmt. */
struct db_head {
    const struct db_driver *drv;
};

extern const struct db_driver db_sqlite_driver;
extern const struct db_driver db_pg_driver;

/* True for "postgresql://..." and "postgres://..." (db.c). */
bool db_location_is_pg(const char *location);

#endif
