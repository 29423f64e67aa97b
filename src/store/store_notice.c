/*
 * Store-change notices between nodes (notices.h): NOTIFY to publish,
 * and a LISTEN connection of its own driven by the loop.
 *
 * The listener is a small state machine on libpq's asynchronous API:
 *
 *   CONNECTING  PQconnectStart, then PQconnectPoll whenever the socket is
 *               ready the way the last poll asked (read or write);
 *   SENT        "LISTEN portcullis_change" sent, waiting for its result;
 *   READY       every readable event: PQconsumeInput, then PQnotifies.
 *
 * Any failure closes the connection and tries again after a delay that
 * doubles up to NOTICE_RETRY_MAX_MS. Nothing here waits: libpq's socket
 * is non-blocking and only read when the loop says it is readable. The
 * socket libpq uses may change during a connection attempt (several
 * hosts in the URL), so it is asked for after every poll.
 *
 * Whenever the database answers (a notice, LISTEN in effect again) the
 * store handle the caller gave is told to stop waiting out its own
 * reconnection back-off (db_retry_now): the reads a notice asks for
 * follow at once (PostgreSQL outages, test_cluster.py).
 *
 * Payload: "MASK NODE" (decimal mask, node ID or nothing), at most
 * NOTICE_PAYLOAD_MAX bytes; anything else is ignored.
 */
#include "store/notices.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "common/log.h"
#include "store/db.h"
#include "store/nodes.h"
#include "store/store_internal.h"

#define NOTICE_CHANNEL "portcullis_change"
#define NOTICE_PAYLOAD_MAX 64
#define NOTICE_RETRY_MIN_MS 500
#define NOTICE_RETRY_MAX_MS 5000

int store_notice_publish(struct store *st, unsigned what)
{
    char payload[NOTICE_PAYLOAD_MAX];
    int r;

    if (!db_is_shared(store_db(st))) {
        return ERR_OK;
    }
    snprintf(payload, sizeof(payload), "%u %s", what, st->node);
    if ((r = store_tx_begin(st, false)) != ERR_OK) {
        return r;
    }
    r = store_query(st, "notice", "SELECT pg_notify('" NOTICE_CHANNEL "', $1)",
                    NULL, NULL, NULL, "t", payload);
    return store_tx_end(st, r);
}

enum sl_state { SL_WAIT, SL_CONNECTING, SL_SENT, SL_READY };

struct store_listener {
    struct loop *loop;
    char *location;
    struct store *st; /* nudged when the database answers, or NULL */
    store_notice_fn fn;
    void *arg;
    PGconn *conn;
    int fd; /* watched in the loop, or -1 */
    enum sl_state state;
    uint64_t timer;
    int retry_ms;
    bool lost;   /* a connection was up before: tell "everything" */
    bool warned; /* the current outage was logged */
};

static void sl_connect(struct store_listener *l);

/* The database answered: l->st's connection need not wait out its
 * reconnection back-off. */
static void sl_seen(struct store_listener *l)
{
    if (l->st != NULL) {
        db_retry_now(store_db(l->st));
    }
}

/* Watches fd for events (replacing the old fd if it changed). */
static int sl_watch(struct store_listener *l, int fd, int events)
{
    if (l->fd != fd && l->fd >= 0) {
        loop_del_fd(l->loop, l->fd);
        l->fd = -1;
    }
    if (fd < 0) {
        return ERR_IO;
    }
    if (l->fd == fd) {
        return loop_mod_fd(l->loop, fd, events);
    }
    l->fd = fd;
    return ERR_OK; /* the caller adds it (it names the handler) */
}

static void sl_drop(struct store_listener *l)
{
    if (l->fd >= 0) {
        loop_del_fd(l->loop, l->fd);
        l->fd = -1;
    }
    if (l->conn != NULL) {
        PQfinish(l->conn);
        l->conn = NULL;
    }
}

static void sl_on_timer(struct loop *loop, void *arg)
{
    struct store_listener *l = arg;

    (void)loop;
    l->timer = 0;
    sl_connect(l);
}

/* Closes the connection and tries again later. */
static void sl_retry(struct store_listener *l, const char *why)
{
    if (!l->warned) {
        log_warn("store notices: %s; notices from other nodes wait until "
                 "the connection is back (trying again)",
                 why);
        l->warned = true;
    }
    if (l->state == SL_READY) {
        l->lost = true;
    }
    sl_drop(l);
    l->state = SL_WAIT;
    l->retry_ms = l->retry_ms == 0 ? NOTICE_RETRY_MIN_MS : l->retry_ms * 2;
    if (l->retry_ms > NOTICE_RETRY_MAX_MS) {
        l->retry_ms = NOTICE_RETRY_MAX_MS;
    }
    l->timer = loop_add_timer(l->loop, l->retry_ms, sl_on_timer, l);
}

static void sl_notice(struct store_listener *l, const PGnotify *n)
{
    char from[NODE_ID_MAX + 1] = "";
    unsigned long what;
    char *end;

    if (n->extra == NULL || strlen(n->extra) >= NOTICE_PAYLOAD_MAX) {
        return;
    }
    what = strtoul(n->extra, &end, 10);
    if (end == n->extra || what > 0xffffffffUL ||
        (*end != '\0' && *end != ' ')) {
        return;
    }
    if (*end == ' ' && strlen(end + 1) <= NODE_ID_MAX) {
        snprintf(from, sizeof(from), "%s", end + 1);
    }
    sl_seen(l);
    l->fn(l->arg, (unsigned)what, from);
}

/* Reads results and notices; false when the connection failed. */
static bool sl_read(struct store_listener *l)
{
    PGresult *res;
    PGnotify *n;

    if (!PQconsumeInput(l->conn)) {
        return false;
    }
    while (!PQisBusy(l->conn) && (res = PQgetResult(l->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);

        PQclear(res);
        if (l->state == SL_SENT && st == PGRES_COMMAND_OK) {
            l->state = SL_READY;
            l->retry_ms = 0;
            if (l->warned) {
                log_info("store notices: listening again");
            }
            l->warned = false;
            sl_seen(l);
            if (l->lost) {
                /* notices sent while we were away are gone */
                l->lost = false;
                l->fn(l->arg, STORE_NOTICE_ALL, "");
            }
        } else if (st != PGRES_COMMAND_OK) {
            return false;
        }
    }
    while ((n = PQnotifies(l->conn)) != NULL) {
        sl_notice(l, n);
        PQfreemem(n);
        if (l->conn == NULL) {
            break;
        }
    }
    return true;
}

static void sl_on_fd(struct loop *loop, int fd, int events, void *arg);

static void sl_add(struct store_listener *l, int events)
{
    int fd = PQsocket(l->conn);

    if (l->fd == fd && fd >= 0) {
        (void)loop_mod_fd(l->loop, fd, events);
        return;
    }
    (void)sl_watch(l, -1, 0);
    if (fd < 0 || loop_add_fd(l->loop, fd, events, sl_on_fd, l) != ERR_OK) {
        sl_retry(l, "cannot watch the connection");
        return;
    }
    l->fd = fd;
}

static void sl_poll(struct store_listener *l)
{
    switch (PQconnectPoll(l->conn)) {
    case PGRES_POLLING_READING:
        sl_add(l, LOOP_READ);
        return;
    case PGRES_POLLING_WRITING:
        sl_add(l, LOOP_WRITE);
        return;
    case PGRES_POLLING_OK:
        break;
    default:
        sl_retry(l, PQerrorMessage(l->conn));
        return;
    }
    if (PQsetnonblocking(l->conn, 1) != 0 ||
        !PQsendQuery(l->conn, "LISTEN " NOTICE_CHANNEL)) {
        sl_retry(l, PQerrorMessage(l->conn));
        return;
    }
    l->state = SL_SENT;
    sl_add(l, PQflush(l->conn) == 1 ? LOOP_READ | LOOP_WRITE : LOOP_READ);
}

static void sl_on_fd(struct loop *loop, int fd, int events, void *arg)
{
    struct store_listener *l = arg;

    (void)loop;
    (void)fd;
    if (l->conn == NULL) {
        return;
    }
    if (l->state == SL_CONNECTING) {
        sl_poll(l);
        return;
    }
    if ((events & LOOP_WRITE) && PQflush(l->conn) == 0) {
        (void)loop_mod_fd(l->loop, l->fd, LOOP_READ);
    }
    if ((events & LOOP_READ) && !sl_read(l)) {
        sl_retry(l, PQerrorMessage(l->conn));
    }
}

static void sl_connect(struct store_listener *l)
{
    l->conn = PQconnectStart(l->location);
    if (l->conn == NULL || PQstatus(l->conn) == CONNECTION_BAD) {
        sl_retry(l,
                 l->conn != NULL ? PQerrorMessage(l->conn) : "out of memory");
        return;
    }
    l->state = SL_CONNECTING;
    /* libpq: treat the start as "writing" was asked */
    sl_add(l, LOOP_WRITE);
}

int store_listener_start(struct store_listener **out, struct loop *loop,
                         const char *location, struct store *st,
                         store_notice_fn fn, void *arg)
{
    struct store_listener *l;

    *out = NULL;
    if (location == NULL || !db_location_is_server(location)) {
        return ERR_OK;
    }
    if ((l = calloc(1, sizeof(*l))) == NULL ||
        (l->location = strdup(location)) == NULL) {
        free(l);
        return ERR_NOMEM;
    }
    l->loop = loop;
    l->st = st;
    l->fn = fn;
    l->arg = arg;
    l->fd = -1;
    sl_connect(l);
    *out = l;
    return ERR_OK;
}

bool store_listener_ready(const struct store_listener *l)
{
    return l != NULL && l->state == SL_READY;
}

void store_listener_stop(struct store_listener *l)
{
    if (l == NULL) {
        return;
    }
    if (l->timer != 0) {
        loop_del_timer(l->loop, l->timer);
    }
    sl_drop(l);
    free(l->location);
    free(l);
}
