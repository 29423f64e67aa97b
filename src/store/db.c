/*
 * db.h by dispatch: db_open() picks the driver from the location (a
 * "postgresql://" or "postgres://" URL is PostgreSQL, anything else a
 * SQLite file or ":memory:"), and every other call goes to the driver
 * named at the start of the handle (db_driver.h).
 */
#include "store/db.h"

#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "store/db_driver.h"

#define DRV(h) (((const struct db_head *)(const void *)(h))->drv)

void db_conn_init(struct db_conn *c, const struct db_driver *drv)
{
    c->head.drv = drv;
    c->pid = getpid();
}

bool db_conn_mine(const struct db_conn *c)
{
    return c->pid == getpid();
}

int db_conn_check(const struct db_conn *c)
{
    if (!db_conn_mine(c)) {
        log_error("store: handle used in a forked child; open a new one");
        return ERR_STORE;
    }
    return ERR_OK;
}

bool db_is_shared(struct db *db)
{
    return db != NULL && DRV(db) == &db_pg_driver;
}

bool db_location_is_server(const char *location)
{
    return db_location_is_pg(location);
}

bool db_location_is_pg(const char *location)
{
    return location != NULL && (strncmp(location, "postgresql://", 13) == 0 ||
                                strncmp(location, "postgres://", 11) == 0);
}

int db_open(const char *location, struct db **out)
{
    *out = NULL;
    if (location == NULL || location[0] == '\0') {
        return ERR_INVALID;
    }
    return db_location_is_pg(location) ? db_pg_driver.open(location, out)
                                       : db_sqlite_driver.open(location, out);
}

void db_close(struct db *db)
{
    if (db != NULL) {
        DRV(db)->close(db);
    }
}

const char *db_location(struct db *db)
{
    return db != NULL ? DRV(db)->location(db) : NULL;
}

int db_begin(struct db *db, bool write)
{
    return db != NULL ? DRV(db)->begin(db, write) : ERR_INVALID;
}

int db_begin_part(struct db *db, enum db_part part)
{
    if (db == NULL) {
        return ERR_INVALID;
    }
    return DRV(db)->begin_part != NULL ? DRV(db)->begin_part(db, (int)part)
                                       : DRV(db)->begin(db, true);
}

void db_retry_now(struct db *db)
{
    if (db != NULL && DRV(db)->retry_now != NULL) {
        DRV(db)->retry_now(db);
    }
}

bool db_down(struct db *db)
{
    return db != NULL && DRV(db)->down != NULL && DRV(db)->down(db);
}

void db_set_loop(struct db *db, struct loop *loop, int deadline_ms)
{
    if (db != NULL && DRV(db)->set_loop != NULL) {
        DRV(db)->set_loop(db, loop, deadline_ms);
    }
}

int db_commit(struct db *db)
{
    return db != NULL ? DRV(db)->commit(db) : ERR_INVALID;
}

void db_rollback(struct db *db)
{
    if (db != NULL) {
        DRV(db)->rollback(db);
    }
}

int db_exec(struct db *db, const char *what, const char *sql)
{
    return db != NULL ? DRV(db)->exec(db, what, sql) : ERR_INVALID;
}

int db_prepare(struct db *db, const char *what, const char *sql,
               struct db_stmt **out)
{
    *out = NULL;
    return db != NULL ? DRV(db)->prepare(db, what, sql, out) : ERR_INVALID;
}

int db_has_table(struct db *db, const char *name, bool *exists)
{
    struct db_stmt *s = NULL;
    bool row = false;
    int r;

    *exists = false;
    if (db == NULL) {
        return ERR_INVALID;
    }
    /* The one query of the store that names a database's catalogue. */
    r = db_prepare(db, "table lookup",
                   DRV(db) == &db_pg_driver
                       ? "SELECT CASE WHEN to_regclass($1) IS NULL THEN 0"
                         " ELSE 1 END"
                       : "SELECT COUNT(*) FROM sqlite_master WHERE type ="
                         " 'table' AND name = $1",
                   &s);
    if (r == ERR_OK && (r = db_bind_text(s, 1, name)) == ERR_OK &&
        (r = db_step(s, &row)) == ERR_OK) {
        *exists = row && db_col_int64(s, 0) > 0;
    }
    db_finalize(s);
    return r;
}

void db_finalize(struct db_stmt *s)
{
    if (s != NULL) {
        DRV(s)->finalize(s);
    }
}

int db_param_count(struct db_stmt *s)
{
    return DRV(s)->param_count(s);
}

int db_bind_text(struct db_stmt *s, int idx, const char *v)
{
    return DRV(s)->bind_text(s, idx, v);
}

int db_bind_int64(struct db_stmt *s, int idx, int64_t v)
{
    return DRV(s)->bind_int64(s, idx, v);
}

int db_bind_blob(struct db_stmt *s, int idx, const void *p, size_t len)
{
    return DRV(s)->bind_blob(s, idx, p, len);
}

int db_bind_null(struct db_stmt *s, int idx)
{
    return DRV(s)->bind_null(s, idx);
}

int db_step(struct db_stmt *s, bool *row)
{
    return DRV(s)->step(s, row);
}

int64_t db_changes(struct db_stmt *s)
{
    return DRV(s)->changes(s);
}

bool db_col_null(struct db_stmt *s, int i)
{
    return DRV(s)->col_null(s, i);
}

int64_t db_col_int64(struct db_stmt *s, int i)
{
    return DRV(s)->col_int64(s, i);
}

int db_col_int(struct db_stmt *s, int i)
{
    return DRV(s)->col_int(s, i);
}

const char *db_col_text(struct db_stmt *s, int i, size_t *len)
{
    return DRV(s)->col_text(s, i, len);
}

const void *db_col_blob(struct db_stmt *s, int i, size_t *len)
{
    return DRV(s)->col_blob(s, i, len);
}
