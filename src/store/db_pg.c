/*
 * The PostgreSQL driver (db.h) on libpq: with store_notice.c (the
 * notices' own LISTEN connection) the only file of the store that calls
 * PQ*. Selected by db_open() for a "postgresql://" or "postgres://"
 * URL (db.c).
 *
 * Synchronous for its callers: every call returns with the server's
 * answer, as the SQLite driver's returns with its file's. That is what the
 * store's callers expect today; running the statements themselves off the
 * server's main loop (a worker pool, answers by callback) is still to come
 * (issue 18, docs/store.md).
 *
 * A deadline on the loop: once db_set_loop() gave the server's loop, a
 * statement is sent with libpq's asynchronous calls (PQsendQuery..., the
 * connection in nonblocking mode) and its answer awaited with poll() on
 * the connection's socket for at most the deadline ([store]
 * statement_deadline_ms, PG_DEADLINE_MS by default): pg_await. A server
 * that went silent mid-statement (stopped, a network black hole) would
 * otherwise hold the loop until tcp_user_timeout on TCP, and for ever on
 * a Unix socket. At the deadline a cancel request goes out on a worker
 * (PQcancel opens a connection of its own and waits for the server to
 * close it, so never in the loop's thread; one at a time), and the loop
 * waits PG_CANCEL_GRACE_MS more: a server that is alive but slow (a lock
 * held for long by another node, a heavy query) answers the cancel at
 * once, the statement fails with ERR_STORE and the connection stays. No
 * answer by then: the connection is dropped (PQfinish, which in
 * nonblocking mode never waits), db_down() is true at once, and the next
 * transaction redials in the background as below, so the outage queues
 * take over. Either way the call returns ERR_STORE with one line saying
 * which limit fired, and a transaction in progress fails: the caller rolls
 * back (or, dropped, the server does, when its backend finds the
 * connection closed). A COMMIT that met the deadline may still have been
 * applied, as with any connection lost during a COMMIT. The CLI and the
 * workers' own connections (no loop) keep waiting as before, bounded by
 * statement_timeout, lock_timeout and tcp_user_timeout.
 *
 * Reconnection: a connection found lost (the server restarted, the
 * backend was terminated, the socket failed) is opened again by the next
 * transaction that begins ("a redial": close the old, connect, session
 * settings). Inline by default (the CLI, a worker's own connection). Once
 * db_set_loop() gave the server's loop, a redial runs on one of its
 * workers (loop_work): the loop waits at most PG_REDIAL_WAIT_MS for it (a
 * server that restarted answers in a few milliseconds, and the call that
 * found the loss goes on as if nothing happened); past that, that call
 * and every one while the redial is in flight fail at once with ERR_STORE
 * (db_down() true, so the outage queues keep their rows), and the new
 * connection is swapped in on the loop when the worker is done. A server
 * that accepts connections and never answers (stopped, or a black-holed
 * address) thus costs the loop PG_REDIAL_WAIT_MS per attempt, not
 * connect_timeout (test_store_pg.py
 * test_loop_answers_while_the_database_hangs). The worker touches only
 * its struct pg_redial: the location copied, the old connection handed
 * over, the new one handed back.
 *
 * Statements: db_prepare() checks the $N spelling (as the SQLite driver
 * does, with its own scanner, since PostgreSQL would accept "$2 ... $1"
 * and bind it correctly while SQLite would not) and has the server parse
 * the text (an unnamed prepared statement), so a missing table fails there.
 * The first db_step() sends the text with its parameters (PQexecParams):
 * text (a NULL one too) as text, so "$1 IS NULL OR col = $1" has a type;
 * int64 as an untyped literal, so the server gives it the type its place
 * wants (integer for substr()'s length, bigint for a BIGINT column) as
 * SQLite's dynamic typing would; db_bind_null() untyped; blobs as bytea in
 * binary format. Results come in text format: integers parsed, bytea decoded.
 *
 * One writer at a time (docs/store.md): db_begin(true) takes a
 * transaction-level advisory lock, so write transactions of every node and
 * process are serialized as SQLite's BEGIN IMMEDIATE serializes them;
 * readers take none and see one snapshot (REPEATABLE READ).
 *
 * Schema text: db_exec() spells the type BLOB as BYTEA, the one word of
 * the migrations PostgreSQL does not know (docs/store.md, "Portability").
 */
#include "store/db.h"

#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/db_driver.h"

/* The key of the advisory lock every write transaction takes: "PCWR". */
#define PG_WRITE_LOCK "1346590546"
/* Seconds a connection attempt may take (a URL's connect_timeout wins). */
#define PG_CONNECT_TIMEOUT "10"
/* Milliseconds unacknowledged data may wait on a TCP connection before it
 * counts as dead: a server that vanished mid-statement ends the statement
 * instead of hanging it (a URL's tcp_user_timeout wins). */
#define PG_TCP_USER_TIMEOUT "20000"
/* How long a statement waits for a lock (the write lock of another writer,
 * a row another transaction holds), and how long one may run: a stuck
 * lock or statement is an error, not a hang. Applied only where the
 * server's own setting is 0 (none), so a role's, a database's or the
 * URL's options=-clock_timeout=... setting wins. */
#define PG_LOCK_TIMEOUT "20s"
#define PG_STATEMENT_TIMEOUT "60s"
/* How long a transaction may sit idle between two of its statements before
 * the server ends its connection (idle_in_transaction_session_timeout;
 * db_set_session_defaults() picks within these bounds). Every write takes
 * the one write lock of the whole cluster, so a node frozen inside a write
 * transaction (SIGSTOP, a paused VM: its socket stays open and its kernel
 * answers keepalives) would otherwise hold every other node's writes,
 * their heartbeats and the declaring of it dead included, until it runs
 * again. A transaction here never waits on anything but the database
 * between its statements, so seconds of idleness mean a stuck client. */
#define PG_IDLE_TX_SECONDS_MIN 3
#define PG_IDLE_TX_SECONDS_MAX 10
/* After a failed reconnection, further attempts wait this long at first,
 * doubling up to the maximum: a server that is down costs callers an
 * immediate error, not a connection attempt each. */
#define PG_RETRY_MIN_MS 500
#define PG_RETRY_MAX_MS 4000
/* How long the loop waits for a redial on a worker before the call that
 * started it fails (see the top comment). */
#define PG_REDIAL_WAIT_MS 100
/* The longest the loop waits for one statement's answer by default
 * (db_set_loop's deadline_ms; docs/store.md says why 3 s), and then for
 * the answer to the cancel request, before it drops the connection: a
 * cancel costs a server that is alive a connection and a signal, a few
 * milliseconds even across a network. */
#define PG_DEADLINE_MS 3000
#define PG_CANCEL_GRACE_MS 250
#define PG_TEXTOID 25
#define PG_BYTEAOID 17

struct pg_redial;
struct pg_cancel;

struct db {
    struct db_conn c; /* first (db_driver.h): driver, owning process */
    PGconn *conn;     /* NULL while a redial runs, or after one failed */
    char *location;   /* as opened: for reconnecting */
    int64_t retry_at; /* monotonic ms: no reconnection attempt before */
    int retry_ms;     /* the wait after the next failed attempt */
    /* the last failure was the connection's, not the statement's (see
     * pg_fail): libpq may still say CONNECTION_OK until its next read */
    bool lost;
    struct loop *loop; /* set: redials run on its workers, and
                          statements have a deadline (pg_await) */
    int deadline_ms;   /* with loop: the deadline of a statement */
    /* PORTCULLIS_TRACE_LOOP_SQL set: each statement made on the loop is
     * logged by its label (never its text or parameters) */
    bool trace_loop;
    struct pg_redial *redial; /* the redial in flight on a worker */
    struct pg_cancel *cancel; /* the cancel request in flight on a worker */
};

/* One cancel request (pg_cancel_work) on a worker thread. */
struct pg_cancel {
    struct db *db; /* NULL once db was closed */
    PGcancel *req; /* the backend's key, copied from the connection */
    char what[64]; /* the statement cancelled, for the log */
    char why[256]; /* why the request failed, when it did */
    bool ok;       /* the server took the request */
};

/* One reconnection (pg_redial_work): inline, or on a worker thread. */
struct pg_redial {
    struct db *db;   /* NULL once the result was taken or db closed */
    char *location;  /* a copy: db may go meanwhile */
    PGconn *old;     /* the lost connection, finished by the work */
    PGconn *conn;    /* the new one; NULL when it failed */
    char why[512];   /* why it failed, one line */
    bool background; /* on a worker: pg_redial_after frees it */
    int done;        /* set (atomically) when the work is over */
};

struct pg_param {
    unsigned int type; /* 0: let the server infer it */
    const char *value; /* NULL: SQL NULL */
    int len;
    int format; /* 0 text, 1 binary */
    char num[24];
};

struct db_stmt {
    const struct db_driver *drv; /* first (db_driver.h) */
    struct db *db;
    const char *what; /* for log lines; a constant */
    char *sql;
    int nparams;
    struct pg_param *params;
    PGresult *res;
    int row;  /* the current row of res */
    bool ran; /* res is the statement's result */
    int64_t changes;
    unsigned char **blobs; /* decoded bytea of the current row, per column */
    size_t *bloblen;
};

static void pg_rollback(struct db *db);
static void pg_finalize(struct db_stmt *s);
static void pg_close(struct db *db);

/* libpq's connection messages run over lines ("...failed: reason\n\tIs
 * the server running...?\n"): one line for the log, in buf. */
static const char *pg_one_line(const char *msg, char *buf, size_t buflen)
{
    size_t o = 0;

    for (; msg != NULL && *msg != '\0' && o + 1 < buflen; msg++) {
        char c = *msg == '\n' || *msg == '\t' || *msg == '\r' ? ' ' : *msg;

        if (c == ' ' && (o == 0 || buf[o - 1] == ' ')) {
            continue;
        }
        buf[o++] = c;
    }
    while (o > 0 && buf[o - 1] == ' ') {
        o--;
    }
    buf[o] = '\0';
    return buf;
}

/* Maps a failed result (or, with res NULL, the connection's state). */
static int pg_fail(struct db *db, const PGresult *res, const char *what)
{
    const char *state =
        res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg =
        res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char line[512];

    if (state != NULL && strcmp(state, "23505") == 0) {
        return ERR_EXISTS;
    }
    if (state != NULL && strcmp(state, "23503") == 0) {
        return ERR_NOT_FOUND;
    }
    if (state != NULL && strcmp(state, "53200") == 0) {
        return ERR_NOMEM;
    }
    if (state != NULL && strcmp(state, "55P03") == 0) {
        log_error("store: %s: gave up waiting for a lock another transaction "
                  "holds (lock_timeout; " PG_LOCK_TIMEOUT
                  " where the server sets none)",
                  what);
        return ERR_STORE;
    }
    if (state != NULL && strcmp(state, "57014") == 0) {
        log_error("store: %s: cancelled: ran longer than statement_timeout "
                  "(" PG_STATEMENT_TIMEOUT
                  " where the server sets none) or was cancelled",
                  what);
        return ERR_STORE;
    }
    /* No SQLSTATE: libpq's own error (the server closed the connection,
     * the socket failed); class 08 and 57P01-57P03: the server's words
     * for the same (shut down, crashed, starting). The database does not
     * answer: store_unreachable() must say so at once, on this first
     * failure, so callers that keep writes for later (tunnel rows, audit
     * events) do not take it for a failed statement. */
    if (db != NULL &&
        (state == NULL || strncmp(state, "08", 2) == 0 ||
         strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
         strcmp(state, "57P03") == 0)) {
        db->lost = true;
    }
    if ((res == NULL || (msg == NULL && state == NULL)) && db != NULL &&
        db->conn != NULL) {
        msg = pg_one_line(PQerrorMessage(db->conn), line, sizeof(line));
    }
    /* Data exceptions (class 22) quote the offending value: leave the
     * message out, the SQLSTATE says what it was. */
    if (state != NULL && strncmp(state, "22", 2) == 0) {
        msg = NULL;
    }
    log_error("store: %s: %s (SQLSTATE %s)", what, msg != NULL ? msg : "-",
              state != NULL ? state : "-");
    return ERR_STORE;
}

static int pg_usable(struct db *db)
{
    int r;

    if (db == NULL) {
        return ERR_INVALID;
    }
    if ((r = db_conn_check(&db->c)) != ERR_OK) {
        return r;
    }
    return db->conn != NULL ? ERR_OK : ERR_STORE; /* reconnecting */
}

static void pg_cancel_work(void *arg)
{
    struct pg_cancel *c = arg;

    c->ok = PQcancel(c->req, c->why, sizeof(c->why)) == 1;
}

static void pg_cancel_after(struct loop *loop, void *arg)
{
    struct pg_cancel *c = arg;
    char line[256];

    (void)loop;
    if (c->db != NULL) {
        c->db->cancel = NULL;
    }
    if (!c->ok) {
        log_warn("store: %s: the cancel request failed: %s", c->what,
                 pg_one_line(c->why, line, sizeof(line)));
    }
    PQfreeCancel(c->req);
    free(c);
}

/* Asks the server, from a worker, to cancel what db's connection runs;
 * false when no request went out. One at a time: while the last one has
 * not come back, the server is not answering those either, and the
 * statement left running ends by statement_timeout, or when its backend
 * next reads the connection and finds it dropped. */
static bool pg_cancel_start(struct db *db, const char *what)
{
    struct pg_cancel *c = NULL;

    if (db->cancel != NULL || (c = calloc(1, sizeof(*c))) == NULL ||
        (c->req = PQgetCancel(db->conn)) == NULL) {
        free(c);
        return false;
    }
    snprintf(c->what, sizeof(c->what), "%s", what);
    c->db = db;
    if (loop_work(db->loop, pg_cancel_work, pg_cancel_after, c) != ERR_OK) {
        PQfreeCancel(c->req);
        free(c);
        return false;
    }
    db->cancel = c;
    return true;
}

/*
 * With a loop (see the top comment): waits for the answer to the
 * statement just sent on db->conn (sent: what PQsend...() returned), in
 * the loop's thread, for at most db->deadline_ms, then PG_CANCEL_GRACE_MS
 * more after a cancel request. ERR_OK with *out the last result, as
 * PQexec() would give it (NULL when libpq failed: the caller's pg_fail()
 * reads why from the connection, which is then marked lost). ERR_STORE,
 * logged here, with *out NULL, when the deadline fired: the statement was
 * cancelled (the connection stays), or the connection was dropped.
 *
 * A cancel request that reaches the backend only after the statement
 * ended is ignored if the backend is idle by then; one that lands on the
 * next statement fails that one (57014): one failed call, never a wrong
 * answer.
 */
static int pg_await(struct db *db, const char *what, int sent, PGresult **out)
{
    PGconn *conn = db->conn;
    int64_t now = util_mono_ms(), until = now + db->deadline_ms;
    bool late = false, cancelling = false;
    PGresult *res;
    const char *state;
    int fl;

    *out = NULL;
    if (!sent) {
        return ERR_OK;
    }
    for (;;) {
        struct pollfd pfd;

        if ((fl = PQflush(conn)) < 0 || PQconsumeInput(conn) == 0) {
            break; /* the connection failed */
        }
        while (!PQisBusy(conn)) {
            if ((res = PQgetResult(conn)) == NULL) {
                goto answered;
            }
            PQclear(*out);
            *out = res;
        }
        now = util_mono_ms();
        if (now >= until && late) {
            log_error("store: %s: no answer from PostgreSQL within %d ms "
                      "([store] statement_deadline_ms)%s; connection "
                      "dropped, connecting again in the background",
                      what, db->deadline_ms,
                      cancelling ? " nor to a cancel request" : "");
            PQclear(*out);
            *out = NULL;
            /* nonblocking: the goodbye is not waited for */
            PQfinish(db->conn);
            db->conn = NULL;
            db->lost = true;
            return ERR_STORE;
        }
        if (now >= until) {
            late = true;
            cancelling = pg_cancel_start(db, what);
            until = now + PG_CANCEL_GRACE_MS;
            continue;
        }
        pfd.fd = PQsocket(conn);
        pfd.events = (short)(POLLIN | (fl > 0 ? POLLOUT : 0));
        pfd.revents = 0;
        (void)poll(&pfd, 1, (int)(until - now)); /* EINTR: look again */
    }
    /* Failed: once the connection is bad, PQgetResult() hands over
     * libpq's error without waiting (its socket is closed). */
    while (PQstatus(conn) == CONNECTION_BAD &&
           (res = PQgetResult(conn)) != NULL) {
        PQclear(*out);
        *out = res;
    }
    return ERR_OK;
answered:
    state = *out != NULL ? PQresultErrorField(*out, PG_DIAG_SQLSTATE) : NULL;
    if (late && state != NULL && strcmp(state, "57014") == 0) {
        log_error("store: %s: cancelled: no answer from PostgreSQL within "
                  "%d ms ([store] statement_deadline_ms)",
                  what, db->deadline_ms);
        PQclear(*out);
        *out = NULL;
        return ERR_STORE;
    }
    return ERR_OK; /* in time, or it ended by itself during the grace */
}

/* Runs sql without parameters; ERR_OK when the server said so. */
static int pg_simple(struct db *db, const char *what, const char *sql,
                     char *status, size_t statuslen)
{
    PGresult *res = NULL;
    ExecStatusType st;
    int r = ERR_OK;

    if (db->trace_loop) {
        log_info("store: a statement on the loop: %s", what);
    }
    if (db->loop == NULL) {
        res = PQexec(db->conn, sql);
    } else if ((r = pg_await(db, what, PQsendQuery(db->conn, sql), &res)) !=
               ERR_OK) {
        return r;
    }
    st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        r = res == NULL ? pg_fail(db, NULL, what) : pg_fail(db, res, what);
    } else if (status != NULL) {
        snprintf(status, statuslen, "%s", PQcmdStatus(res));
    }
    PQclear(res);
    return r;
}

/* What db_set_session_defaults() set: written before the first connection
 * (and before the threads that open theirs exist), only read after. */
static char pg_app_name[64] = "portcullis";
static int pg_idle_tx_seconds = PG_IDLE_TX_SECONDS_MAX;

void db_set_session_defaults(const char *app_name, int idle_tx_seconds)
{
    size_t i;

    if (app_name != NULL && app_name[0] != '\0') {
        /* PostgreSQL keeps 63 bytes of printable ASCII; anything else
         * becomes '?' here, not a byte cut in half there */
        snprintf(pg_app_name, sizeof(pg_app_name), "portcullis %s", app_name);
        for (i = 0; pg_app_name[i] != '\0'; i++) {
            if (pg_app_name[i] < 0x20 || pg_app_name[i] > 0x7e) {
                pg_app_name[i] = '?';
            }
        }
    }
    if (idle_tx_seconds > 0) {
        pg_idle_tx_seconds =
            idle_tx_seconds < PG_IDLE_TX_SECONDS_MIN   ? PG_IDLE_TX_SECONDS_MIN
            : idle_tx_seconds > PG_IDLE_TX_SECONDS_MAX ? PG_IDLE_TX_SECONDS_MAX
                                                       : idle_tx_seconds;
    }
}

/* The connection's settings: time limits where the server sets none. */
static void pg_session_sql(char *sql, size_t len)
{
    snprintf(sql, len,
             "SELECT set_config('lock_timeout', '" PG_LOCK_TIMEOUT "', false)"
             " WHERE current_setting('lock_timeout') = '0';"
             "SELECT set_config('statement_timeout', '" PG_STATEMENT_TIMEOUT
             "', false) WHERE current_setting('statement_timeout') = '0';"
             "SELECT set_config('idle_in_transaction_session_timeout', '%ds',"
             " false) WHERE"
             " current_setting('idle_in_transaction_session_timeout') = '0'",
             pg_idle_tx_seconds);
}

/* Notices ("relation already exists, skipping") are not errors. */
static void pg_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Connects to location and applies the session settings: *out a ready
 * connection, or NULL with why (one line, never a password: libpq's
 * messages name the host and the reason). Touches nothing shared, so it
 * may run on a worker thread. */
static int pg_dial(const char *location, PGconn **out, char *why, size_t whylen)
{
    /* Before the URL's own fields, which override them: a server that
     * does not answer is given up after PG_CONNECT_TIMEOUT seconds
     * (libpq's default is to wait for ever). */
    const char *const keys[] = {"connect_timeout", "tcp_user_timeout",
                                "keepalives_idle", "fallback_application_name",
                                "dbname",          NULL};
    const char *const vals[] = {PG_CONNECT_TIMEOUT,
                                PG_TCP_USER_TIMEOUT,
                                "10",
                                pg_app_name,
                                location,
                                NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    PGresult *res = NULL;
    char line[480], sql[600];
    int r = ERR_STORE;

    *out = NULL;
    why[0] = '\0';
    if (conn == NULL) {
        snprintf(why, whylen, "out of memory");
        return ERR_NOMEM;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(why, whylen, "%s",
                 pg_one_line(PQerrorMessage(conn), line, sizeof(line)));
        goto out;
    }
    PQsetNoticeProcessor(conn, pg_notice, NULL);
    if (PQsetClientEncoding(conn, "UTF8") != 0) {
        snprintf(why, whylen, "client encoding: %s",
                 pg_one_line(PQerrorMessage(conn), line, sizeof(line)));
        goto out;
    }
    pg_session_sql(sql, sizeof(sql));
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK &&
        PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(why, whylen, "session settings: %s",
                 pg_one_line(PQerrorMessage(conn), line, sizeof(line)));
        goto out;
    }
    *out = conn;
    conn = NULL;
    r = ERR_OK;
out:
    PQclear(res);
    PQfinish(conn);
    return r;
}

static void pg_redial_work(void *arg)
{
    struct pg_redial *rd = arg;

    PQfinish(rd->old);
    rd->old = NULL;
    (void)pg_dial(rd->location, &rd->conn, rd->why, sizeof(rd->why));
    __atomic_store_n(&rd->done, 1, __ATOMIC_RELEASE);
}

static void pg_redial_free(struct pg_redial *rd)
{
    if (rd != NULL) {
        PQfinish(rd->conn);
        free(rd->location);
        free(rd);
    }
}

/* In the loop's (or the caller's) thread: waits up to wait_ms for the
 * redial in flight; if it is over, takes its connection (or, when it
 * failed, sets the back-off) and returns true. */
static bool pg_redial_take(struct db *db, int wait_ms)
{
    struct pg_redial *rd = db->redial;
    const struct timespec tick = {0, 1000 * 1000};
    int64_t until = util_mono_ms() + wait_ms;

    while (!__atomic_load_n(&rd->done, __ATOMIC_ACQUIRE)) {
        if (util_mono_ms() >= until) {
            return false;
        }
        nanosleep(&tick, NULL);
    }
    db->redial = NULL;
    rd->db = NULL;
    db->conn = rd->conn;
    rd->conn = NULL;
    if (db->conn != NULL && db->loop != NULL) {
        (void)PQsetnonblocking(db->conn, 1); /* pg_await */
    }
    if (db->conn != NULL) {
        db->retry_ms = 0;
        db->lost = false;
        log_info("store: connected to PostgreSQL again");
    } else {
        db->retry_ms = db->retry_ms < PG_RETRY_MIN_MS    ? PG_RETRY_MIN_MS
                       : db->retry_ms >= PG_RETRY_MAX_MS ? PG_RETRY_MAX_MS
                                                         : db->retry_ms * 2;
        db->retry_at = util_mono_ms() + db->retry_ms;
        log_error("store: reconnect: %s", rd->why);
        log_warn("store: PostgreSQL unavailable; next attempt in %d ms",
                 db->retry_ms);
    }
    if (!rd->background) {
        pg_redial_free(rd);
    }
    return true;
}

/* In the loop's thread when the worker is done: the new connection goes
 * in at once (unless a call took it already, or db was closed). */
static void pg_redial_after(struct loop *loop, void *arg)
{
    struct pg_redial *rd = arg;

    (void)loop;
    if (rd->db != NULL) {
        (void)pg_redial_take(rd->db, 0);
    }
    pg_redial_free(rd);
}

/* Starts a redial: on a worker when db has a loop, else here and now. */
static int pg_redial_start(struct db *db)
{
    struct pg_redial *rd = calloc(1, sizeof(*rd));

    if (rd == NULL || (rd->location = strdup(db->location)) == NULL) {
        free(rd);
        return ERR_NOMEM;
    }
    log_warn("store: connection to PostgreSQL lost; connecting again%s",
             db->loop != NULL ? " (in the background)" : "");
    rd->db = db;
    rd->old = db->conn;
    db->conn = NULL;
    db->redial = rd;
    rd->background = db->loop != NULL;
    if (rd->background &&
        loop_work(db->loop, pg_redial_work, pg_redial_after, rd) == ERR_OK) {
        return ERR_OK;
    }
    rd->background = false; /* no worker to be had: here, as before */
    pg_redial_work(rd);
    return ERR_OK;
}

/* Starts a transaction; a connection found broken (the server restarted,
 * the backend was terminated) is opened again first, once: nothing of a
 * transaction is lost, since none had begun. With a loop the reconnection
 * runs on a worker (see the top comment): until it is done, ERR_STORE. */
static int pg_begin_sql(struct db *db, const char *sql)
{
    int r = ERR_OK, wait = 0;

    if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK && !db->lost &&
        ((r = pg_simple(db, "begin", sql, NULL, 0)) == ERR_OK ||
         db->conn == NULL)) {
        return r; /* NULL: dropped at the deadline, the next call redials */
    }
    if (db->conn != NULL && PQstatus(db->conn) != CONNECTION_BAD && !db->lost) {
        return r;
    }
    if (db->redial == NULL) {
        if (util_mono_ms() < db->retry_at) {
            return ERR_STORE; /* logged when the last attempt failed */
        }
        if ((r = pg_redial_start(db)) != ERR_OK) {
            return r;
        }
        wait = PG_REDIAL_WAIT_MS; /* only the call that started it */
    }
    if (!pg_redial_take(db, wait) || db->conn == NULL) {
        return ERR_STORE; /* connecting on a worker, or it failed */
    }
    return pg_simple(db, "begin", sql, NULL, 0);
}

static bool pg_down(struct db *db)
{
    return db_conn_mine(&db->c) && (db->conn == NULL || db->lost ||
                                    PQstatus(db->conn) == CONNECTION_BAD);
}

static void pg_retry_now(struct db *db)
{
    db->retry_at = 0;
}

static int pg_begin(struct db *db, bool write)
{
    int r;

    if (db == NULL) {
        return ERR_INVALID;
    }
    if ((r = db_conn_check(&db->c)) != ERR_OK) {
        return r;
    }
    if (!write) {
        return pg_begin_sql(db, "BEGIN ISOLATION LEVEL REPEATABLE READ");
    }
    if ((r = pg_begin_sql(db, "BEGIN")) != ERR_OK) {
        return r;
    }
    /* Waits for every other writer, in this process or any other node. */
    if ((r = pg_simple(db, "write lock",
                       "SELECT pg_advisory_xact_lock(" PG_WRITE_LOCK ")", NULL,
                       0)) != ERR_OK) {
        pg_rollback(db);
    }
    return r;
}

/*
 * Part of the write lock (db_begin_part): the store-wide key shared, then
 * the part's key (the two-int form, a key space of its own) exclusive, in
 * one statement whose target list PostgreSQL evaluates left to right.
 * Always in that order: a holder of a part's key then never waits for the
 * store-wide key, so no cycle can form with a db_begin(true) writer
 * waiting for it exclusively.
 */
static int pg_begin_part(struct db *db, int part)
{
    char sql[160];
    int r;

    if (db == NULL || part <= 0) {
        return ERR_INVALID;
    }
    if ((r = db_conn_check(&db->c)) != ERR_OK) {
        return r;
    }
    if ((r = pg_begin_sql(db, "BEGIN")) != ERR_OK) {
        return r;
    }
    snprintf(sql, sizeof(sql),
             "SELECT pg_advisory_xact_lock_shared(" PG_WRITE_LOCK "),"
             " pg_advisory_xact_lock(" PG_WRITE_LOCK ", %d)",
             part);
    if ((r = pg_simple(db, "write lock", sql, NULL, 0)) != ERR_OK) {
        pg_rollback(db);
    }
    return r;
}

static int pg_commit(struct db *db)
{
    char status[32] = "";
    int r;

    if ((r = pg_usable(db)) != ERR_OK) {
        return r;
    }
    r = pg_simple(db, "commit", "COMMIT", status, sizeof(status));
    /* COMMIT of a transaction that failed earlier "succeeds" as ROLLBACK. */
    if (r == ERR_OK && strcmp(status, "COMMIT") != 0) {
        log_error("store: commit: the transaction had failed; rolled back");
        r = ERR_STORE;
    }
    if (r != ERR_OK) {
        pg_rollback(db);
    }
    return r;
}

/* On a connection found lost, nothing: the server rolls back when it
 * finds the connection closed, and the redial closes it. */
static void pg_rollback(struct db *db)
{
    if (pg_usable(db) == ERR_OK && !db->lost &&
        PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
        (void)pg_simple(db, "rollback", "ROLLBACK", NULL, 0);
    }
}

/* Walks sql outside string literals, quoted identifiers and comments:
 * calls fn(ctx, sql, i) for each such position i. */
static bool pg_scan(const char *sql, bool (*fn)(void *, const char *, size_t),
                    void *ctx)
{
    size_t i = 0, n = strlen(sql);

    while (i < n) {
        char c = sql[i];

        if (c == '\'' || c == '"') {
            for (i++; i < n; i++) {
                if (sql[i] == c) {
                    if (i + 1 < n && sql[i + 1] == c) {
                        i++;
                        continue;
                    }
                    break;
                }
            }
            i++;
        } else if (c == '-' && sql[i + 1] == '-') {
            while (i < n && sql[i] != '\n') {
                i++;
            }
        } else if (c == '/' && sql[i + 1] == '*') {
            const char *end = strstr(sql + i + 2, "*/");

            i = end != NULL ? (size_t)(end - sql) + 2 : n;
        } else {
            if (!fn(ctx, sql, i)) {
                return false;
            }
            i++;
        }
    }
    return true;
}

/* $1, $2, ... in ascending order of first use, nothing else (db.h). */
static bool pg_param_at(void *ctx, const char *sql, size_t i)
{
    int *max = ctx;
    char c = sql[i];
    long v;
    char *end;

    if (c == '?') {
        return false;
    }
    if ((c == ':' || c == '@') &&
        (isalpha((unsigned char)sql[i + 1]) || sql[i + 1] == '_') &&
        !(c == ':' && i > 0 && sql[i - 1] == ':')) {
        return false;
    }
    if (c != '$') {
        return true;
    }
    if (sql[i + 1] < '1' || sql[i + 1] > '9') {
        return false; /* "$a", "$02", "$" */
    }
    v = strtol(sql + i + 1, &end, 10);
    if (v > *max + 1 || v > 10000 || isalpha((unsigned char)*end) ||
        *end == '_' || (end[0] == ':' && end[1] == ':')) {
        return false; /* a gap, out of order, "$1a", or "$1::text", which
                         SQLite reads as one parameter named so */
    }
    if (v > *max) {
        *max = (int)v;
    }
    return true;
}

static bool pg_blob_at(void *ctx, const char *sql, size_t i)
{
    size_t *hits = ctx;

    if (strncasecmp(sql + i, "BLOB", 4) == 0 &&
        (i == 0 ||
         !(isalnum((unsigned char)sql[i - 1]) || sql[i - 1] == '_')) &&
        !(isalnum((unsigned char)sql[i + 4]) || sql[i + 4] == '_')) {
        hits[hits[0] + 1] = i;
        hits[0]++;
    }
    return hits[0] < 64;
}

/* sql with the type name BLOB spelt BYTEA; NULL when out of memory. */
static char *pg_schema_text(const char *sql)
{
    size_t hits[65] = {0}, n = strlen(sql), o = 0, from = 0;
    char *out;

    if (!pg_scan(sql, pg_blob_at, hits)) {
        return NULL; /* more than 64: not a migration of ours */
    }
    if ((out = malloc(n + hits[0] + 1)) == NULL) {
        return NULL;
    }
    for (size_t k = 0; k < hits[0]; k++) {
        memcpy(out + o, sql + from, hits[k + 1] - from);
        o += hits[k + 1] - from;
        memcpy(out + o, "BYTEA", 5);
        o += 5;
        from = hits[k + 1] + 4;
    }
    memcpy(out + o, sql + from, n - from + 1);
    return out;
}

static int pg_exec(struct db *db, const char *what, const char *sql)
{
    char *text;
    int r;

    if ((r = pg_usable(db)) != ERR_OK) {
        return r;
    }
    if ((text = pg_schema_text(sql)) == NULL) {
        return ERR_NOMEM;
    }
    r = pg_simple(db, what, text, NULL, 0);
    free(text);
    return r;
}

static int pg_prepare(struct db *db, const char *what, const char *sql,
                      struct db_stmt **out)
{
    struct db_stmt *s = NULL;
    PGresult *res = NULL;
    int r, max = 0;

    *out = NULL;
    if ((r = pg_usable(db)) != ERR_OK) {
        return r;
    }
    if (!pg_scan(sql, pg_param_at, &max)) {
        log_error("store: %s: parameters must be $1, $2, ... in order of "
                  "first use",
                  what);
        return ERR_INTERNAL;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->sql = strdup(sql)) == NULL ||
        (max > 0 &&
         (s->params = calloc((size_t)max, sizeof(*s->params))) == NULL)) {
        r = ERR_NOMEM;
        goto fail;
    }
    s->drv = &db_pg_driver;
    s->db = db;
    s->what = what;
    s->nparams = max;
    /* Outside a transaction, parse it now, so a statement that cannot run
     * fails here. Parameters whose type only the binds tell (42P18, 42P08,
     * 42725: "SELECT $1 || $2", "$1 IS NULL OR col = $1") are left to the
     * first step, which sends the types. Inside a transaction the parse
     * waits for that step: a failed parse would abort the transaction. */
    if (PQtransactionStatus(db->conn) == PQTRANS_IDLE) {
        if (db->loop == NULL) {
            res = PQprepare(db->conn, "", sql, 0, NULL);
        } else if ((r = pg_await(db, what,
                                 PQsendPrepare(db->conn, "", sql, 0, NULL),
                                 &res)) != ERR_OK) {
            goto fail;
        }
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

            if (state == NULL ||
                (strcmp(state, "42P18") != 0 && strcmp(state, "42P08") != 0 &&
                 strcmp(state, "42725") != 0)) {
                r = res == NULL ? pg_fail(db, NULL, what)
                                : pg_fail(db, res, what);
                goto fail;
            }
        }
    }
    PQclear(res);
    *out = s;
    return ERR_OK;
fail:
    PQclear(res);
    pg_finalize(s);
    return r;
}

static void pg_blobs_free(struct db_stmt *s)
{
    if (s->blobs == NULL || s->res == NULL) {
        return;
    }
    for (int i = 0; i < PQnfields(s->res); i++) {
        PQfreemem(s->blobs[i]);
        s->blobs[i] = NULL;
    }
}

static void pg_finalize(struct db_stmt *s)
{
    if (s == NULL) {
        return;
    }
    pg_blobs_free(s);
    free(s->blobs);
    free(s->bloblen);
    PQclear(s->res);
    free(s->params);
    free(s->sql);
    free(s);
}

static int pg_param_count(struct db_stmt *s)
{
    return s->nparams;
}

static struct pg_param *pg_param(struct db_stmt *s, int idx)
{
    if (idx < 1 || idx > s->nparams || s->ran) {
        log_error("store: %s: no parameter %d", s->what, idx);
        return NULL;
    }
    return &s->params[idx - 1];
}

static int pg_bind_null(struct db_stmt *s, int idx)
{
    struct pg_param *p = pg_param(s, idx);

    if (p == NULL) {
        return ERR_INTERNAL;
    }
    memset(p, 0, sizeof(*p));
    return ERR_OK;
}

static int pg_bind_text(struct db_stmt *s, int idx, const char *v)
{
    struct pg_param *p = pg_param(s, idx);

    if (p == NULL) {
        return ERR_INTERNAL;
    }
    memset(p, 0, sizeof(*p));
    p->type = PG_TEXTOID;
    p->value = v;
    return ERR_OK;
}

static int pg_bind_int64(struct db_stmt *s, int idx, int64_t v)
{
    struct pg_param *p = pg_param(s, idx);

    if (p == NULL) {
        return ERR_INTERNAL;
    }
    memset(p, 0, sizeof(*p));
    snprintf(p->num, sizeof(p->num), "%lld", (long long)v);
    p->value = p->num;
    return ERR_OK;
}

static int pg_bind_blob(struct db_stmt *s, int idx, const void *v, size_t len)
{
    struct pg_param *p = pg_param(s, idx);

    if (p == NULL) {
        return ERR_INTERNAL;
    }
    memset(p, 0, sizeof(*p));
    if (v == NULL || len == 0) {
        return ERR_OK;
    }
    if (len > 0x7fffffff) {
        return ERR_TOO_LONG;
    }
    p->type = PG_BYTEAOID;
    p->value = v;
    p->len = (int)len;
    p->format = 1;
    return ERR_OK;
}

static int pg_run(struct db_stmt *s)
{
    size_t n = s->nparams > 0 ? (size_t)s->nparams : 1;
    unsigned int *types = calloc(n, sizeof(*types));
    const char **values = calloc(n, sizeof(*values));
    int *lens = calloc(n, sizeof(*lens)),
        *formats = calloc(n, sizeof(*formats));
    ExecStatusType st;
    int r = ERR_OK;

    for (int i = 0; types != NULL && values != NULL && lens != NULL &&
                    formats != NULL && i < s->nparams;
         i++) {
        types[i] = s->params[i].type;
        values[i] = s->params[i].value;
        lens[i] = s->params[i].len;
        formats[i] = s->params[i].format;
    }
    s->ran = true;
    s->row = -1;
    if (types != NULL && values != NULL && lens != NULL && formats != NULL) {
        if (s->db->trace_loop) {
            log_info("store: a statement on the loop: %s", s->what);
        }
        if (s->db->loop == NULL) {
            s->res = PQexecParams(s->db->conn, s->sql, s->nparams, types,
                                  values, lens, formats, 0);
        } else {
            r = pg_await(s->db, s->what,
                         PQsendQueryParams(s->db->conn, s->sql, s->nparams,
                                           types, values, lens, formats, 0),
                         &s->res);
        }
    }
    free(types);
    free(values);
    free(lens);
    free(formats);
    if (r != ERR_OK) {
        return r;
    }
    st = PQresultStatus(s->res);
    if (st == PGRES_COMMAND_OK) {
        s->changes = strtoll(PQcmdTuples(s->res), NULL, 10);
        return ERR_OK;
    }
    if (st == PGRES_TUPLES_OK) {
        int nf = PQnfields(s->res);

        if (nf > 0 &&
            ((s->blobs = calloc((size_t)nf, sizeof(*s->blobs))) == NULL ||
             (s->bloblen = calloc((size_t)nf, sizeof(*s->bloblen))) == NULL)) {
            return ERR_NOMEM;
        }
        return ERR_OK;
    }
    return s->res == NULL ? pg_fail(s->db, NULL, s->what)
                          : pg_fail(s->db, s->res, s->what);
}

static int pg_step(struct db_stmt *s, bool *row)
{
    int r;

    *row = false;
    if (!s->ran) {
        if ((r = pg_usable(s->db)) != ERR_OK || (r = pg_run(s)) != ERR_OK) {
            return r;
        }
    }
    if (s->res == NULL || PQresultStatus(s->res) != PGRES_TUPLES_OK) {
        return ERR_OK;
    }
    pg_blobs_free(s);
    if (s->row + 1 < PQntuples(s->res)) {
        s->row++;
        *row = true;
    } else {
        s->row = PQntuples(s->res);
    }
    return ERR_OK;
}

static int64_t pg_changes(struct db_stmt *s)
{
    return s->changes;
}

static bool pg_have(struct db_stmt *s, int i)
{
    return s->res != NULL && s->row >= 0 && s->row < PQntuples(s->res) &&
           i >= 0 && i < PQnfields(s->res);
}

static bool pg_col_null(struct db_stmt *s, int i)
{
    return !pg_have(s, i) || PQgetisnull(s->res, s->row, i);
}

static int64_t pg_col_int64(struct db_stmt *s, int i)
{
    const char *v;

    if (pg_col_null(s, i)) {
        return 0;
    }
    v = PQgetvalue(s->res, s->row, i);
    if (v[0] == 't' && v[1] == '\0') {
        return 1; /* a boolean expression */
    }
    return strtoll(v, NULL, 10);
}

static int pg_col_int(struct db_stmt *s, int i)
{
    return (int)pg_col_int64(s, i);
}

static const char *pg_col_text(struct db_stmt *s, int i, size_t *len)
{
    if (len != NULL) {
        *len = 0;
    }
    if (pg_col_null(s, i)) {
        return NULL;
    }
    if (len != NULL) {
        *len = (size_t)PQgetlength(s->res, s->row, i);
    }
    return PQgetvalue(s->res, s->row, i);
}

static const void *pg_col_blob(struct db_stmt *s, int i, size_t *len)
{
    *len = 0;
    if (pg_col_null(s, i)) {
        return NULL;
    }
    if (s->blobs[i] == NULL) {
        const char *v = PQgetvalue(s->res, s->row, i);

        if (PQftype(s->res, i) == PG_BYTEAOID) {
            s->blobs[i] =
                PQunescapeBytea((const unsigned char *)v, &s->bloblen[i]);
        } else {
            return (*len = (size_t)PQgetlength(s->res, s->row, i)) > 0 ? v
                                                                       : NULL;
        }
        if (s->blobs[i] == NULL) {
            return NULL;
        }
    }
    *len = s->bloblen[i];
    return *len > 0 ? s->blobs[i] : NULL;
}

static int pg_open(const char *location, struct db **out)
{
    struct db *db = NULL;
    char why[512];
    int r = ERR_OK;

    *out = NULL;
    if ((db = calloc(1, sizeof(*db))) == NULL ||
        (db->location = strdup(location)) == NULL) {
        free(db);
        return ERR_NOMEM;
    }
    db_conn_init(&db->c, &db_pg_driver);
    if ((r = pg_dial(location, &db->conn, why, sizeof(why))) != ERR_OK) {
        log_error("store: cannot connect to PostgreSQL: %s", why);
        goto out;
    }
    *out = db;
    db = NULL;
out:
    pg_close(db);
    return r;
}

static void pg_close(struct db *db)
{
    if (db == NULL) {
        return;
    }
    /* PQfinish() says goodbye on the socket the parent still uses: in a
     * forked child, leave the connection to the child's exit. */
    if (db_conn_mine(&db->c)) {
        PQfinish(db->conn);
        if (db->redial != NULL) {
            db->redial->db = NULL; /* pg_redial_after frees it */
        }
        if (db->cancel != NULL) {
            db->cancel->db = NULL; /* pg_cancel_after frees it */
        }
    }
    free(db->location);
    free(db);
}

static void pg_set_loop(struct db *db, struct loop *loop, int deadline_ms)
{
    db->loop = loop;
    db->deadline_ms = deadline_ms > 0 ? deadline_ms : PG_DEADLINE_MS;
    db->trace_loop =
        loop != NULL && getenv("PORTCULLIS_TRACE_LOOP_SQL") != NULL;
    if (db->conn != NULL) {
        (void)PQsetnonblocking(db->conn, loop != NULL); /* pg_await */
    }
}

static const char *pg_location(struct db *db)
{
    return db != NULL && db_conn_mine(&db->c) ? "" : NULL;
}

const struct db_driver db_pg_driver = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .location = pg_location,
    .begin = pg_begin,
    .begin_part = pg_begin_part,
    .commit = pg_commit,
    .retry_now = pg_retry_now,
    .set_loop = pg_set_loop,
    .down = pg_down,
    .rollback = pg_rollback,
    .exec = pg_exec,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .param_count = pg_param_count,
    .bind_text = pg_bind_text,
    .bind_int64 = pg_bind_int64,
    .bind_blob = pg_bind_blob,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .changes = pg_changes,
    .col_null = pg_col_null,
    .col_int64 = pg_col_int64,
    .col_int = pg_col_int,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
};
