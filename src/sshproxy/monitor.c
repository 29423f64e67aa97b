/*
 * The monitor's request handlers; see monitor.h for the permitted-request
 * table. Every request is parsed with the buf getters and must end exactly
 * where its last field ends (buf_expect_end): a child that sends anything
 * else is treated as compromised and killed.
 */
#include "sshproxy/monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <limits.h>

#include <sodium.h>

#include "admin/admin.h"
#include "auth/directory.h"
#include "auth/lockout.h"
#include "auth/nthash.h"
#include "auth/password.h"
#include "auth/totp.h"
#include "auth/webticket.h"
#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "policy/policy.h"
#include "route/route.h"
#include "sshproxy/libssh_priv.h"
#include "sshproxy/mproto.h"
#include "sshproxy/scpcmd.h"
#include "sshproxy/userauth_sig.h"
#include "store/audit.h"
#include "store/nodes.h"
#include "store/store_worker.h"

#define MONITOR_FP_MAX 128
#define MONITOR_DETAIL_MAX 65536
#define MONITOR_LOCKOUT_SLOTS 4096
/* password checks waiting for a worker, per one allowed to run at once */
#define MONITOR_HASH_WAITING_PER_RUNNING 32
/* PostgreSQL connections for the login path's store work (at most this
 * many jobs run at once; the rest wait in a FIFO, at most one per child) */
#define MONITOR_JOB_CONNS 4

static void monitor_on_sweep(struct loop *l, void *arg);
static void monitor_row_free(struct mchild_row *row);
#define MONITOR_SWEEP_MS 3000
/* Report rows kept for a store that does not answer; beyond this many the
 * oldest stay open (closed as interrupted at the next start). */
#define MONITOR_PENDING_MAX 65536
/* Audit events kept while the store did not answer: the first attempt to
 * write them, then doubling up to the longest wait between attempts. */
#define MONITOR_AUDIT_RETRY_MS 500
#define MONITOR_AUDIT_RETRY_MAX_MS 5000

/*
 * The end of a session whose report row the store could not take (its
 * database was down): kept here and written by the next sweep that finds
 * the store answering, so the row gets its real result, bytes and
 * recording hash rather than staying open until a restart closes it as
 * interrupted. Sessions relay without the store; only their rows wait.
 */
struct monitor_pending {
    struct monitor_pending *next;
    char id[STORE_ID_MAX + 1];
    int64_t ended_at;
    uint64_t up, down;
    int exit_status;
    char result[STORE_RESULT_MAX + 1];
    char *rec_path; /* NULL: no recording hash to write */
    uint64_t rec_size;
    char sha[65];
};

/* Writes p's recording hash (if any) and closes its row: ERR_OK when done
 * (or the row is gone or closed already), else the store's error. */
static int monitor_pending_write(struct monitor *m,
                                 const struct monitor_pending *p)
{
    int r;

    if (p->rec_path != NULL &&
        (r = store_session_set_recording(m->store, p->id, p->rec_path,
                                         p->rec_size, p->sha)) != ERR_OK &&
        r != ERR_NOT_FOUND) {
        return r;
    }
    r = store_session_close(m->store, p->id, p->ended_at, p->up, p->down,
                            p->exit_status, p->result);
    return r == ERR_NOT_FOUND ? ERR_OK : r;
}

static void monitor_pending_free(struct monitor_pending *p)
{
    if (p != NULL) {
        free(p->rec_path);
        free(p);
    }
}

/* Closes a report row now, or keeps it for the next sweep when the store
 * does not take it. rec_path and sha may be NULL. */
static void monitor_row_close(struct monitor *m, const char *id,
                              int64_t ended_at, uint64_t up, uint64_t down,
                              int exit_status, const char *result,
                              const char *rec_path, uint64_t rec_size,
                              const char *sha)
{
    struct monitor_pending *p = calloc(1, sizeof(*p)), **tail;
    int r;

    if (p == NULL) {
        log_error("cannot close report row %s: out of memory", id);
        return;
    }
    snprintf(p->id, sizeof(p->id), "%s", id);
    p->ended_at = ended_at;
    p->up = up;
    p->down = down;
    p->exit_status = exit_status;
    snprintf(p->result, sizeof(p->result), "%s", result);
    if (rec_path != NULL && sha != NULL && sha[0] != '\0') {
        p->rec_path = strdup(rec_path);
        p->rec_size = rec_size;
        snprintf(p->sha, sizeof(p->sha), "%s", sha);
    }
    /* behind rows already waiting: the store is down, do not ask again */
    if (m->pending == NULL && (r = monitor_pending_write(m, p)) == ERR_OK) {
        monitor_pending_free(p);
        return;
    }
    if (m->npending >= MONITOR_PENDING_MAX) {
        log_error("cannot close report row %s: %zu rows wait for the store "
                  "already; it stays open",
                  id, m->npending);
        monitor_pending_free(p);
        return;
    }
    log_warn("report row %s: the store does not answer; it is written when "
             "it does",
             id);
    for (tail = &m->pending; *tail != NULL; tail = &(*tail)->next) {
    }
    *tail = p;
    m->npending++;
}

/* From the sweep: the rows that waited, in order, while the store takes
 * them. */
static void monitor_pending_flush(struct monitor *m)
{
    struct monitor_pending *p;
    size_t done = 0;

    while ((p = m->pending) != NULL && monitor_pending_write(m, p) == ERR_OK) {
        m->pending = p->next;
        m->npending--;
        monitor_pending_free(p);
        done++;
    }
    if (done > 0) {
        log_info("store answers again: %zu report row(s) written", done);
    }
}

/*
 * The audit events the store kept for a database that did not answer
 * (audit_defer(); store_audit.c), written from this timer, never on the
 * path of a login or a request: the sweep arms it when events wait, and a
 * failed attempt waits MONITOR_AUDIT_RETRY_MS, doubling up to
 * MONITOR_AUDIT_RETRY_MAX_MS (the driver has its own pause between
 * connection attempts; this keeps a backlog from being tried on every
 * tick). A long backlog is written a thousand events at a time with the
 * loop free in between.
 */
static void monitor_on_audit(struct loop *l, void *arg)
{
    struct monitor *m = arg;
    size_t n = 0;
    int r;

    m->audit_timer = 0;
    r = audit_write_waiting(m->store, &n);
    if (n > 0) {
        log_info("store answers again: %zu audit event(s) written", n);
    }
    if (r == ERR_OK) {
        m->audit_delay_ms = 0;
        if (audit_waiting(m->store) > 0) {
            m->audit_timer = loop_add_timer(l, 1, monitor_on_audit, m);
        }
        return;
    }
    m->audit_delay_ms = m->audit_delay_ms == 0 ? MONITOR_AUDIT_RETRY_MS
                        : m->audit_delay_ms >= MONITOR_AUDIT_RETRY_MAX_MS / 2
                            ? MONITOR_AUDIT_RETRY_MAX_MS
                            : m->audit_delay_ms * 2;
    m->audit_timer =
        loop_add_timer(l, (uint64_t)m->audit_delay_ms, monitor_on_audit, m);
}

int monitor_init(struct monitor *m, const struct config *cfg, struct loop *loop)
{
    struct directory_service *dirs;
    char why[512];
    int r;

    memset(m, 0, sizeof(*m));
    m->cfg = cfg;
    m->loop = loop;
    if ((r = store_open(cfg->store_path, &m->store)) != ERR_OK) {
        log_error("cannot open the store %s: %s", cfg->store_path, err_str(r));
        return r;
    }
    /* the disabled-user check (monitor_on_sweep) and the login path's
     * store work (monitor_job_start), on workers with connections of
     * their own on a server's store; on SQLite, or without a loop, they
     * stay on the loop */
    if ((m->users = store_worker_new(loop, m->store, cfg->store_path, 1,
                                     "the disabled-user check", m)) == NULL ||
        (m->jobs = store_worker_new(loop, m->store, cfg->store_path,
                                    MONITOR_JOB_CONNS,
                                    "the store work of a login", m)) == NULL) {
        return ERR_NOMEM;
    }
    if ((r = store_set_audit_key(m->store, cfg->store_audit_key)) != ERR_OK) {
        return r;
    }
    if ((r = vault_load(cfg->vault_key, &m->vault)) != ERR_OK) {
        log_error("cannot load the vault key %s: %s", cfg->vault_key,
                  err_str(r));
        return r;
    }
    m->lockout = lockout_new(cfg->max_failures, cfg->failure_window_seconds,
                             cfg->lockout_seconds, MONITOR_LOCKOUT_SLOTS);
    m->rep = buf_new(MPROTO_MAX);
    m->req = buf_new(MPROTO_MAX);
    m->ssh_ctx = ssh_new();
    if (m->lockout == NULL || m->rep == NULL || m->req == NULL ||
        m->ssh_ctx == NULL) {
        return ERR_NOMEM;
    }
    /* [directory "DOMAIN"] sections (auth/directory.h): checked here, at
     * start, so a wrong one stops serve with its line number. */
    if ((dirs = directory_service_new(loop, cfg, m->vault, why, sizeof(why))) ==
        NULL) {
        log_error("%s", why);
        return ERR_CONFIG;
    }
    if (loop == NULL) {
        directory_service_free(dirs);
        return ERR_OK; /* a check of the setup: no requests to answer */
    }
    /* a database that stops answering never holds the loop for a
     * reconnection attempt, nor for a statement longer than
     * [store] statement_deadline_ms (store.h) */
    store_reconnect_off_loop(m->store, loop, cfg->store_statement_deadline_ms);
    m->sweep_timer =
        loop_add_timer(loop, MONITOR_SWEEP_MS, monitor_on_sweep, m);
    /* the server's audit events wait out an outage of the database */
    audit_defer(m->store, (size_t)cfg->store_outage_audit_events);
    /* and on a database server they are written off the loop, in order */
    if ((r = audit_off_loop(m->store, loop, cfg->store_path)) != ERR_OK) {
        return r;
    }
    /* and so are the report rows' closes (and the writes beside them):
     * the loop makes no statement at a session's end (store.h) */
    if ((r = store_session_off_loop(m->store, loop, cfg->store_path,
                                    (size_t)cfg->store_outage_rows)) !=
        ERR_OK) {
        return r;
    }
    /* Password checks and directory binds never take the resolver's
     * threads, nor do the store's jobs on a database server (the
     * heartbeat, the disabled-user check, a reconnection, a cancel
     * request, the tunnels' report rows, the audit log's writer, the
     * session report rows' writer, the login path's connections, the
     * API's 2 store-read connections (http_offloop.c, HTTP_OFF_CONNS),
     * the agent hub's 2 reads and 1 writes connections (hub_store.c),
     * the schedules' one (admin_schedule.c), the hub's job pickup's one
     * (hub_job.c), the jobs' result and output writer's one
     * (hub_jobw.c), the job streams' reads' one (http_sse.c), the
     * retention sweep's one (daemon.c), the routes' 2 + 2 (the reads of
     * peer: and node: routes, route.c: the daemon's and the API's
     * routes), the pairing questions' one (http_pair.c), the tunnels'
     * reads' one and their state writes' one (tunnel.c):
     * each of them may wait for connect_timeout, or longer, when the
     * database does not answer). */
    loop_reserve_workers(
        (unsigned)cfg->max_concurrent_hashes + directory_service_workers(dirs) +
        (store_worker_async(m->jobs)
             ? 7u + MONITOR_JOB_CONNS + 2u + 3u + 1u + 4u + 4u + 1u + 2u
             : 0u));
    directory_service_set_shared(dirs);
    m->hashes = password_pool_new(loop, (unsigned)cfg->max_concurrent_hashes,
                                  (unsigned)cfg->max_concurrent_hashes *
                                      MONITOR_HASH_WAITING_PER_RUNNING);
    return m->hashes != NULL ? ERR_OK : ERR_NOMEM;
}

static void monitor_child_free(struct monitor *m, struct mchild *c)
{
    struct mchild_row *row;

    if (c->fd >= 0) {
        if (m->loop != NULL) {
            loop_del_fd(m->loop, c->fd);
        }
        close(c->fd);
    }
    route_cancel(c->route_req); /* a pending CONNECT */
    c->route_req = NULL;
    while ((row = c->rows) != NULL) {
        c->rows = row->next;
        monitor_row_free(row);
    }
    if (c->pidfd >= 0) {
        close(c->pidfd);
    }
    sodium_memzero(&c->login, sizeof(c->login));
    free(c);
}

void monitor_free(struct monitor *m)
{
    struct mchild *c;

    while ((c = m->children) != NULL) {
        monitor_child_exit(m, c->pid, -1);
    }
    if (m->loop != NULL && m->sweep_timer != 0) {
        loop_del_timer(m->loop, m->sweep_timer);
    }
    /* each round or job still on a worker thread usually ends within the
     * store's time limits; a database server that is stopped never
     * answers, so after 2 s each is left to its thread (store_worker.h) */
    (void)store_worker_stop(m->users, 2000);
    (void)store_worker_stop(m->jobs, 2000);
    /* the report rows' writer (PostgreSQL): its transaction back (2 s at
     * most), what waits written here; then the rows the store refused to
     * queue, as on SQLite */
    (void)store_session_off_loop_stop(m->store, 2000);
    monitor_pending_flush(m);
    if (m->npending > 0) {
        log_warn("%zu report row(s) could not be written; the next start "
                 "closes them as interrupted",
                 m->npending);
    }
    while (m->pending != NULL) {
        struct monitor_pending *p = m->pending;

        m->pending = p->next;
        monitor_pending_free(p);
    }
    if (m->loop != NULL && m->audit_timer != 0) {
        loop_del_timer(m->loop, m->audit_timer);
    }
    /* the audit log's writer: its batch back (2 s at most), then one
     * last try here; store_close() spools what that leaves */
    (void)audit_off_loop_stop(m->store, 2000);
    while (m->store != NULL && audit_waiting(m->store) > 0) {
        size_t n = 0;

        if (audit_write_waiting(m->store, &n) != ERR_OK || n == 0) {
            break;
        }
    }
    password_pool_free(m->hashes);
    if (m->loop != NULL) {
        directory_service_free(directory_service_shared());
    }
    lockout_free(m->lockout);
    hostkeys_free(&m->hostkeys);
    if (m->ssh_ctx != NULL) {
        ssh_free(m->ssh_ctx);
    }
    vault_free(m->vault);
    store_close(m->store);
    buf_free(m->rep);
    buf_free(m->req);
    memset(m, 0, sizeof(*m));
}

static void monitor_on_child(struct loop *l, int fd, int events, void *arg);

/* The states that hold a pre-authentication slot. */
static bool monitor_state_preauth(enum mchild_state st)
{
    return st == MC_PREAUTH || st == MC_NEED_TOTP || st == MC_AUTH_ENDED;
}

static bool monitor_transition_ok(enum mchild_state from, enum mchild_state to)
{
    switch (from) {
    case MC_NEW:
        return to == MC_PREAUTH || to == MC_GONE;
    case MC_PREAUTH:
        return to == MC_NEED_TOTP || to == MC_AUTHED || to == MC_AUTH_ENDED ||
               to == MC_DEAD || to == MC_GONE;
    case MC_NEED_TOTP:
        return to == MC_PREAUTH || to == MC_AUTHED || to == MC_AUTH_ENDED ||
               to == MC_DEAD || to == MC_GONE;
    case MC_AUTH_ENDED:
    case MC_AUTHED:
        return to == MC_DEAD || to == MC_GONE;
    case MC_DEAD:
        return to == MC_GONE;
    case MC_GONE:
        return false;
    }
    return false;
}

/*
 * The one place a child's state changes, and so the one place that counts
 * it: entering a pre-authentication state takes a slot in m->preauth,
 * leaving them gives it back (whichever way: authenticated, killed,
 * reaped), and authenticating tells the spawner, which holds the limits.
 * A child that becomes MC_DEAD is killed through its pidfd: once the
 * spawner has reaped it the pidfd names no process, so a reused pid is
 * never hit.
 */
int monitor_child_state(struct monitor *m, struct mchild *c,
                        enum mchild_state to)
{
    enum mchild_state from = c->state;

    if (!monitor_transition_ok(from, to)) {
        log_error("child %ld: no transition from state %d to %d", (long)c->pid,
                  (int)from, (int)to);
        return ERR_INTERNAL;
    }
    c->state = to;
    if (!monitor_state_preauth(from) && monitor_state_preauth(to)) {
        m->preauth++;
    } else if (monitor_state_preauth(from) && !monitor_state_preauth(to)) {
        m->preauth--;
        if (to == MC_AUTHED && c->rdp && m->on_rdp_authed != NULL) {
            m->on_rdp_authed(m->on_rdp_authed_arg, c->pid);
        } else if (to == MC_AUTHED && !c->rdp && m->on_authed != NULL) {
            m->on_authed(m->on_authed_arg, c->pid);
        }
    }
    if (to == MC_DEAD && c->pidfd >= 0 &&
        pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0) != 0 && errno != ESRCH) {
        log_warn("cannot kill child %ld: %s", (long)c->pid, strerror(errno));
    }
    return ERR_OK;
}

struct mchild *monitor_child_new(struct monitor *m, pid_t pid, int pidfd,
                                 int fd, const char *addr)
{
    struct mchild *c = calloc(1, sizeof(*c));
    const char *colon;

    if (c == NULL) {
        if (pidfd >= 0) {
            (void)pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
            close(pidfd);
        }
        close(fd);
        return NULL;
    }
    c->mon = m;
    c->serial = ++m->next_serial;
    c->pid = pid;
    c->pidfd = pidfd;
    c->fd = fd;
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    snprintf(c->ip, sizeof(c->ip), "%s", addr);
    if ((colon = strrchr(c->ip, ':')) != NULL) {
        c->ip[colon - c->ip] = '\0';
    }
    snprintf(c->route.text, sizeof(c->route.text), "direct");
    if (m->loop != NULL &&
        (util_set_nonblock(fd) != ERR_OK ||
         loop_add_fd(m->loop, fd, LOOP_READ, monitor_on_child, c) != ERR_OK)) {
        c->fd = -1;
        close(fd);
        if (pidfd >= 0) {
            (void)pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
        }
        monitor_child_free(m, c);
        return NULL;
    }
    c->next = m->children;
    m->children = c;
    (void)monitor_child_state(m, c, MC_PREAUTH);
    return c;
}

/*
 * Every answer to a child passes here. An authentication answer that
 * fails counts against [ssh] max_auth_tries (whatever produced it: a
 * password, a key or a refused key probe, TOTP, a lockout, as OpenSSH
 * counts); the failure that reaches the cap is answered MP_AUTH_TOO_MANY
 * instead, the child disconnects with "Too many authentication failures",
 * and any further request from it ends it. A reply that cannot be sent
 * (the child died or stopped reading) ends the child.
 */
static void monitor_reply(struct monitor *m, struct mchild *c, uint8_t type,
                          int fd)
{
    if (type == MP_AUTH_REPLY && buf_avail(m->rep) > 0 &&
        buf_ptr(m->rep)[0] == MP_AUTH_FAIL &&
        ++c->auth_failures >= m->cfg->max_auth_tries &&
        monitor_state_preauth(c->state)) {
        log_info("login from %s: too many authentication failures (%d)",
                 c->addr, c->auth_failures);
        (void)monitor_child_state(m, c, MC_AUTH_ENDED);
        buf_reset(m->rep);
        (void)(buf_put_u8(m->rep, MP_AUTH_TOO_MANY) || buf_put_u32(m->rep, 0) ||
               buf_put_cstring(m->rep, "Too many authentication failures"));
    }
    if (c->fd < 0 || c->state == MC_DEAD) {
        /* gone, or killed (a late answer to a pending connect) */
        buf_reset(m->rep);
        return;
    }
    if (mproto_send(c->fd, type, m->rep, fd, 1) != ERR_OK) {
        log_warn("monitor: cannot reply to child %ld; ending it", (long)c->pid);
        (void)monitor_child_state(m, c, MC_DEAD);
    }
    buf_reset(m->rep); /* may have held a vaulted login */
}

/* One audit event; a failure to write it is logged, never fatal to the
 * session (the report row still exists). */
static void monitor_audit(struct monitor *m, const struct mchild *c,
                          const char *actor, const char *action,
                          const char *target, const char *detail)
{
    if (audit_write(m->store, actor && actor[0] ? actor : "(unknown)", c->addr,
                    action, target ? target : "",
                    detail ? detail : "") != ERR_OK) {
        log_error("cannot write the audit event %s", action);
    }
}

/* --- report rows --- */

static void monitor_row_free(struct mchild_row *row)
{
    if (row->rec_fd >= 0) {
        close(row->rec_fd);
    }
    free(row->rec_path);
    free(row);
}

static int monitor_row_add(struct mchild *c, const char *id, bool record)
{
    struct mchild_row *row = calloc(1, sizeof(*row));

    if (row == NULL) {
        return ERR_NOMEM;
    }
    snprintf(row->id, sizeof(row->id), "%s", id);
    row->record = record;
    row->rec_fd = -1;
    row->next = c->rows;
    c->rows = row;
    return ERR_OK;
}

static bool monitor_row_take(struct mchild *c, const char *id)
{
    struct mchild_row **pp, *row;

    for (pp = &c->rows; (row = *pp) != NULL; pp = &row->next) {
        if (strcmp(row->id, id) == 0) {
            *pp = row->next;
            monitor_row_free(row);
            return true;
        }
    }
    return false;
}

static struct mchild_row *monitor_row_find(struct mchild *c, const char *id)
{
    for (struct mchild_row *row = c->rows; row != NULL; row = row->next) {
        if (strcmp(row->id, id) == 0) {
            return row;
        }
    }
    return NULL;
}

/* A row for something refused before it started; opened and closed. */
static void monitor_row_refused(struct monitor *m, struct mchild *c,
                                const char *kind, const char *asset_name,
                                const char *detail, const char *result)
{
    struct store_session s;
    int64_t now = util_now();

    memset(&s, 0, sizeof(s));
    util_uuid4(s.id);
    snprintf(s.user_id, sizeof(s.user_id), "%s", c->user_id);
    util_strlcpy(s.user_name,
                 c->user_name[0] ? c->user_name : c->login.principal,
                 sizeof(s.user_name));
    snprintf(s.asset_id, sizeof(s.asset_id), "%s", c->asset_id);
    snprintf(s.asset_name, sizeof(s.asset_name), "%s",
             asset_name ? asset_name : c->asset_name);
    snprintf(s.site, sizeof(s.site), "%s",
             c->asset_site[0] ? c->asset_site
                              : (c->login.site[0] ? c->login.site : "/root"));
    snprintf(s.kind, sizeof(s.kind), "%s", kind);
    snprintf(s.client_addr, sizeof(s.client_addr), "%s", c->addr);
    snprintf(s.route, sizeof(s.route), "%s", c->route.text);
    snprintf(s.detail, sizeof(s.detail), "%s", detail ? detail : "");
    s.started_at = now;
    s.exit_status = -1;
    if (store_session_open(m->store, &s) != ERR_OK ||
        store_session_close(m->store, s.id, now, 0, 0, -1, result) != ERR_OK) {
        log_error("cannot write the report row for %s", c->addr);
    }
    log_info("session %s %s from %s: %s", s.id, s.user_name, c->addr, result);
}

/* --- authentication --- */

/*
 * Lockouts (docs/security.md, "Lockouts"). Three kinds of key, never the
 * login text: the source address ("addr:IP", every user from there), and
 * per user the failing factor ("password:id:UUID", "totp:id:UUID"). The
 * user is the one the login resolves to, so every spelling of a name or ID
 * counts together; a login that names no user counts under its lowercased
 * name instead, so that it locks (and answers) just like a real one and
 * lockouts reveal nothing about who exists. A key login is no factor an
 * attacker can guess, so a locked password leaves it working from a clean
 * address: five wrong passwords do not lock an administrator out.
 *
 * A success forgets the failures of the factor that succeeded, not those
 * of the address: an attacker with one account of his own could otherwise
 * wipe his address's count between guesses at others.
 */
static void monitor_factor_key(const struct mchild *c, enum lockout_factor f,
                               char *key, size_t len)
{
    lockout_key_factor(key, len, f, c->auth_uid, c->login.principal);
}

static bool monitor_addr_locked(struct monitor *m, const struct mchild *c)
{
    char key[LOCKOUT_KEY_MAX];

    lockout_key_addr(key, sizeof(key), c->ip);
    return lockout_is_locked(m->lockout, key, util_now());
}

static bool monitor_factor_locked(struct monitor *m, const struct mchild *c,
                                  enum lockout_factor f)
{
    char key[LOCKOUT_KEY_MAX];

    monitor_factor_key(c, f, key, sizeof(key));
    return lockout_is_locked(m->lockout, key, util_now());
}

static void monitor_factor_ok(struct monitor *m, const struct mchild *c,
                              enum lockout_factor f)
{
    char key[LOCKOUT_KEY_MAX];

    monitor_factor_key(c, f, key, sizeof(key));
    lockout_success(m->lockout, key);
}

static void monitor_auth_reply(struct monitor *m, struct mchild *c, int verdict,
                               const char *reason)
{
    uint32_t delay =
        verdict == MP_AUTH_FAIL ? (uint32_t)m->cfg->failure_delay_ms : 0;

    if (verdict == MP_AUTH_FAIL && reason != NULL) {
        snprintf(c->last_fail, sizeof(c->last_fail), "denied: %s", reason);
        log_info("login %s from %s failed: %s",
                 c->login.principal[0] ? c->login.principal : "(invalid)",
                 c->addr, reason);
        monitor_audit(m, c, c->login.principal, "login.fail",
                      c->rdp ? "rdp" : "ssh", reason);
    }
    if (verdict == MP_AUTH_OK) {
        (void)monitor_child_state(m, c, MC_AUTHED);
        log_info("login %s from %s accepted", c->user_name, c->addr);
        monitor_audit(m, c, c->user_name, "login.ok", c->rdp ? "rdp" : "ssh",
                      "");
    }
    (void)(buf_put_u8(m->rep, (uint8_t)verdict) || buf_put_u32(m->rep, delay) ||
           buf_put_cstring(m->rep, reason ? reason : ""));
    monitor_reply(m, c, MP_AUTH_REPLY, -1);
}

/* The reason a locked attempt is refused with (report row and audit). */
static const char *monitor_locked_why(enum lockout_factor f)
{
    return f == LOCKOUT_TOTP ? "locked out: TOTP locked after too many "
                               "wrong codes"
                             : "locked out: password locked after too many "
                               "wrong passwords";
}

/* Counts a failure of factor f (or of no factor: f < 0, a key that is not
 * the user's) and of the source address; logs and audits a new lock. */
static void monitor_count_failure(struct monitor *m, struct mchild *c, int f)
{
    char key[LOCKOUT_KEY_MAX], what[600];
    int64_t now = util_now();
    const char *who = c->login.principal[0] ? c->login.principal : "(invalid)";

    if (f >= 0) {
        monitor_factor_key(c, (enum lockout_factor)f, key, sizeof(key));
        if (lockout_fail(m->lockout, key, now)) {
            snprintf(what, sizeof(what),
                     "%s of %s%s (login '%s') locked for %d s after %d "
                     "failures within %d s",
                     lockout_factor_str((enum lockout_factor)f),
                     c->auth_uid[0] ? "user id " : "unknown user", c->auth_uid,
                     who, m->cfg->lockout_seconds, m->cfg->max_failures,
                     m->cfg->failure_window_seconds);
            log_warn("%s", what);
            monitor_audit(m, c, who, "login.lock", "ssh", what);
        }
    }
    lockout_key_addr(key, sizeof(key), c->ip);
    if (lockout_fail(m->lockout, key, now)) {
        snprintf(what, sizeof(what),
                 "address %s locked for %d s after %d failures within %d s",
                 c->ip, m->cfg->lockout_seconds, m->cfg->max_failures,
                 m->cfg->failure_window_seconds);
        log_warn("%s", what);
        monitor_audit(m, c, who, "login.lock", "ssh", what);
    }
}

/*
 * An RDP child's NTLM answer that did not prove the password (MP_RDP_NTLM)
 * is counted as a failed password at once, since a compromised child
 * could never report: the child's own password check then settles it.
 * Called with the check's outcome; true if that outcome is already
 * counted (a failure of the same user: the charge was it).
 */
static bool monitor_ntlm_settle(struct monitor *m, struct mchild *c, bool ok)
{
    char key[LOCKOUT_KEY_MAX];
    bool same;

    if (!c->ntlm_charged) {
        return false;
    }
    c->ntlm_charged = false;
    monitor_factor_key(c, LOCKOUT_PASSWORD, key, sizeof(key));
    same = strcmp(key, c->ntlm_key) == 0;
    if (same && ok) {
        /* the user's own factor is cleared by the success; the address
         * keeps no count for a login that succeeded */
        lockout_key_addr(key, sizeof(key), c->ip);
        lockout_forgive(m->lockout, key);
    }
    return same && !ok;
}

static struct mchild *monitor_child_by_serial(struct monitor *m,
                                              uint64_t serial)
{
    for (struct mchild *c = m->children; c != NULL; c = c->next) {
        if (c->serial == serial) {
            return c;
        }
    }
    return NULL;
}

/*
 * Store work off the loop. On PostgreSQL the store calls a child's request
 * needs on the login path (the user, the key, the NT hash, the asset, its
 * grants and profiles, the report row) run as a job on a libuv worker, on
 * one of MONITOR_JOB_CONNS connections of the monitor's own (m->jobs, a
 * store_worker), so a slow database or a locked table stalls that login,
 * not every session, tunnel and API request the loop serves
 * (test_store_pg.py test_loop_answers_while_a_login_waits_for_a_lock).
 * A job is three
 * parts: what it needs copied from the child when it starts (never a
 * pointer into the monitor), its work on the worker (store calls on the
 * connection it is given, nothing else), and its done on the loop, which
 * finds the child again by its serial number and answers it, or cleans up
 * when the child went meanwhile (c NULL).
 *
 * One job per child at a time: while it runs the child's socket is not
 * read, so a second request waits in the socket and is handled, in order,
 * once the first is answered (a well-behaved child sends nothing before
 * its answer anyway). Jobs beyond the connections wait in a FIFO, at most
 * one per child; one whose child went before it started is dropped
 * unrun. At shutdown they are waited for 2 s at most (store_worker_stop).
 *
 * Where the store is not on a server (SQLite: a local file), without a
 * loop, or while the server's own connection knows the database is
 * unreachable, the work runs at once on the loop on m->store, as it did
 * before: an outage still refuses logins at once (MP_REASON_STORE_DOWN),
 * and the first login after it finds the database back.
 */
struct monitor_job;
/* on the loop: c is the job's child, or NULL if it went meanwhile */
typedef void (*monitor_job_done_fn)(struct monitor *m, struct mchild *c,
                                    struct monitor_job *j);

struct monitor_job {
    /* first: m->jobs's part; sj.work: on a worker (or inline), the job's
     * store calls on the connection it is given, nothing else; sj.ran */
    struct store_work sj;
    uint64_t serial; /* the child's */
    monitor_job_done_fn done;
    void (*release)(struct monitor_job *j); /* frees the job */
};

/* A waiting job whose child went before it started is dropped unrun. */
static bool monitor_job_wanted(void *owner, const struct store_work *sj)
{
    const struct monitor_job *j = (const struct monitor_job *)sj;

    return monitor_child_by_serial(owner, j->serial) != NULL;
}

static void monitor_on_child(struct loop *l, int fd, int events, void *arg);

/* The end of a job on the loop: the child's socket is read again, then
 * the job's done answers it (and may start its next job). No monitor
 * (it went meanwhile): only free. */
static void monitor_job_done(void *owner, struct store_work *sj)
{
    struct monitor_job *j = (struct monitor_job *)sj;
    struct monitor *m = owner;
    struct mchild *c;

    if (m == NULL) {
        j->release(j);
        return;
    }
    if ((c = monitor_child_by_serial(m, j->serial)) != NULL) {
        c->store_pending = false;
        if (c->fd >= 0 && m->loop != NULL &&
            loop_set_fd(m->loop, c->fd, LOOP_READ, monitor_on_child, c) !=
                ERR_OK) {
            (void)monitor_child_state(m, c, MC_DEAD);
        }
    }
    buf_reset(m->rep);
    j->done(m, c, j);
    j->release(j);
}

/*
 * Runs j for c: on a worker (PostgreSQL), or at once on the loop (see
 * above). Either way j->done answers c and j->release frees j; the caller
 * must not touch j afterwards, and must answer c nothing itself.
 */
static void monitor_job_start(struct monitor *m, struct mchild *c,
                              struct monitor_job *j)
{
    j->serial = c->serial;
    if (!store_worker_async(m->jobs) || store_unreachable(m->store)) {
        j->sj.work(&j->sj, m->store);
        j->sj.ran = true;
        buf_reset(m->rep);
        j->done(m, c, j);
        j->release(j);
        return;
    }
    c->store_pending = true;
    if (c->fd >= 0) {
        (void)loop_set_fd(m->loop, c->fd, 0, monitor_on_child, c);
    }
    j->sj.done = monitor_job_done;
    j->sj.wanted = monitor_job_wanted;
    store_worker_run(m->jobs, &j->sj);
}

/* The TOTP time step a code was accepted for, marked used (the replay
 * guard): a job (see "Store work off the loop"). */
struct monitor_totpq {
    struct monitor_job job;
    char user_id[STORE_ID_MAX + 1];
    int64_t step;
    int use_r; /* store_user_totp_use's; ERR_STORE if it never ran */
};

static void monitor_totpq_work(struct store_work *j, struct store *st)
{
    struct monitor_totpq *q = (struct monitor_totpq *)j;

    q->use_r = store_user_totp_use(st, q->user_id, q->step);
}

static void monitor_totpq_release(struct monitor_job *j)
{
    free(j);
}

/* The step was marked used, or not: the TOTP factor's verdict. */
static void monitor_totpq_done(struct monitor *m, struct mchild *c,
                               struct monitor_job *j)
{
    struct monitor_totpq *q = (struct monitor_totpq *)j;
    const char *why = q->use_r == ERR_OK       ? NULL
                      : q->use_r == ERR_REPLAY ? "TOTP code already used"
                                               : "TOTP unavailable";

    if (c == NULL || c->state == MC_DEAD) {
        return;
    }
    if (why != NULL) {
        monitor_count_failure(m, c, LOCKOUT_TOTP);
        monitor_auth_reply(m, c, MP_AUTH_FAIL, why);
        return;
    }
    monitor_factor_ok(m, c, LOCKOUT_TOTP);
    monitor_auth_reply(m, c, MP_AUTH_OK, "");
}

/* Checks a TOTP code against the user's seed: NULL and the code's time
 * step on success, else the reason. */
static const char *monitor_check_totp(struct monitor *m,
                                      const struct store_user *u,
                                      const char *code, int64_t *step)
{
    char ad[64];
    uint8_t *seed = NULL;
    size_t seed_len = 0;
    int r;

    snprintf(ad, sizeof(ad), "totp:%s", u->id);
    if (vault_open(m->vault, ad, u->totp_sealed, u->totp_sealed_len, &seed,
                   &seed_len) != ERR_OK) {
        log_error("cannot open the TOTP seed of %s", u->name);
        return "TOTP unavailable";
    }
    r = totp_check(seed, seed_len, code, util_now(), step);
    vault_secret_free(seed, seed_len);
    return r != ERR_OK ? "wrong TOTP code" : NULL;
}

/* A TOTP code for c's user: checked unless the factor is locked, its step
 * then marked used by a job (monitor_totpq_done); counts the failure.
 * Answers the child either way. */
static void monitor_totp_step(struct monitor *m, struct mchild *c,
                              const struct store_user *u, const char *code)
{
    struct monitor_totpq *q;
    const char *why;
    int64_t step = 0;

    if (monitor_factor_locked(m, c, LOCKOUT_TOTP)) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL,
                           monitor_locked_why(LOCKOUT_TOTP));
        return;
    }
    if ((why = monitor_check_totp(m, u, code, &step)) != NULL) {
        monitor_count_failure(m, c, LOCKOUT_TOTP);
        monitor_auth_reply(m, c, MP_AUTH_FAIL, why);
        return;
    }
    if ((q = calloc(1, sizeof(*q))) == NULL) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "internal error");
        return;
    }
    q->job.sj.work = monitor_totpq_work;
    q->job.done = monitor_totpq_done;
    q->job.release = monitor_totpq_release;
    snprintf(q->user_id, sizeof(q->user_id), "%s", u->id);
    q->step = step;
    q->use_r = ERR_STORE;
    monitor_job_start(m, c, &q->job);
}

/*
 * After a first factor: TOTP from the login string, or ask for it
 * (partial success), or done.
 */
static void monitor_second_factor(struct monitor *m, struct mchild *c,
                                  const struct store_user *u)
{
    snprintf(c->user_id, sizeof(c->user_id), "%s", u->id);
    snprintf(c->user_name, sizeof(c->user_name), "%s", u->name);
    snprintf(c->auth_uid, sizeof(c->auth_uid), "%s", u->id);
    if (u->totp_enabled) {
        if (c->login.totp[0] == '\0') {
            if (c->rdp) {
                /* RDP has no prompt for it: the report says where it goes */
                snprintf(c->last_fail, sizeof(c->last_fail),
                         "denied: TOTP required: put the code in the user "
                         "name (user?123456#asset)");
            }
            (void)monitor_child_state(m, c, MC_NEED_TOTP);
            monitor_auth_reply(m, c, MP_AUTH_PARTIAL, "TOTP required");
            return;
        }
        monitor_totp_step(m, c, u, c->login.totp);
        return;
    }
    monitor_auth_reply(m, c, MP_AUTH_OK, "");
}

/* Parses and binds the login; replies and returns false if invalid or
 * if the source address is locked. */
static bool monitor_take_login(struct monitor *m, struct mchild *c,
                               const char *login)
{
    const char *why = NULL;
    char reason[200];

    c->tried = true;
    if (login_parse(login, strlen(login), &c->login, &why) != ERR_OK) {
        snprintf(reason, sizeof(reason), "invalid login: %s",
                 why ? why : "malformed");
        monitor_auth_reply(m, c, MP_AUTH_FAIL, reason);
        return false;
    }
    c->user_id[0] = '\0';
    c->user_name[0] = '\0';
    c->auth_uid[0] = '\0';
    if (monitor_addr_locked(m, c)) {
        snprintf(reason, sizeof(reason),
                 "locked out: too many failures from %s", c->ip);
        monitor_auth_reply(m, c, MP_AUTH_FAIL, reason);
        return false;
    }
    return true;
}

/*
 * A login's user (by name or ID) and, for a key login, whether the key is
 * theirs; after a password proved right, the NT hash stored first if the
 * user has none (monitor_password_checked). A job (see "Store work off
 * the loop"): its done continues the request that asked.
 */
struct monitor_userq {
    struct monitor_job job;
    /* in */
    char name[LOGIN_USER_MAX + 1 + LOGIN_DOMAIN_MAX + 1]; /* or an ID */
    char fp[MONITOR_FP_MAX + 1]; /* a key to match, "" none */
    char *login;                 /* heap: a key probe's or NTLM's login */
    char *domain;                /* heap: MP_RDP_NTLM's domain */
    bool want_nt;                /* MP_RDP_NTLM: the sealed NT hash too */
    uint8_t ntlm_sc[NTHASH_CHALLENGE_LEN]; /* MP_RDP_NTLM: the server's */
    uint8_t *ntlm_resp;                    /* heap: the client's NTLMv2 */
    size_t ntlm_resp_len;                  /* response to prove */
    char *password;                        /* heap, wiped: MP_AUTH_PASSWORD's */
    char totp[16];                         /* wiped: MP_AUTH_TOTP's code */
    uint8_t *nt_sealed; /* the NT hash to keep, sealed, or NULL */
    size_t nt_sealed_len;
    char *rehash_old, *rehash_new; /* heap: a hash remade (password.h) */
    /* out */
    bool nt_stored;
    bool rehashed;
    int get_r; /* store_user_get's; ERR_STORE if it never ran */
    struct store_user u;
    int match_r; /* store_user_key_match's; ERR_STORE if not asked */
    uint8_t nt_have[STORE_SEALED_SMALL_MAX]; /* want_nt: the sealed hash */
    size_t nt_have_len;                      /* 0: none */
};

static void monitor_userq_work(struct store_work *j, struct store *st)
{
    struct monitor_userq *q = (struct monitor_userq *)j;
    uint8_t have[STORE_SEALED_SMALL_MAX];
    size_t havelen = 0;

    if (q->nt_sealed != NULL &&
        store_user_nt_get(st, q->name, have, sizeof(have), &havelen) ==
            ERR_OK &&
        havelen == 0 &&
        store_user_nt_set(st, q->name, q->nt_sealed, q->nt_sealed_len) ==
            ERR_OK) {
        q->nt_stored = true;
    }
    if (q->rehash_new != NULL && store_user_rehash(st, q->name, q->rehash_old,
                                                   q->rehash_new) == ERR_OK) {
        q->rehashed = true;
    }
    if ((q->get_r = store_user_get(st, q->name, &q->u)) != ERR_OK) {
        memset(&q->u, 0, sizeof(q->u));
    } else if (q->fp[0] != '\0') {
        q->match_r = store_user_key_match(st, q->u.id, q->fp);
    } else if (q->want_nt && !q->u.disabled &&
               store_user_nt_get(st, q->u.id, q->nt_have, sizeof(q->nt_have),
                                 &q->nt_have_len) != ERR_OK) {
        q->nt_have_len = 0;
    }
}

static void monitor_userq_release(struct monitor_job *j)
{
    struct monitor_userq *q = (struct monitor_userq *)j;

    if (q->password != NULL) {
        sodium_memzero(q->password, strlen(q->password));
        free(q->password);
    }
    free(q->login);
    free(q->domain);
    free(q->ntlm_resp);
    free(q->nt_sealed);
    free(q->rehash_old);
    free(q->rehash_new);
    sodium_memzero(q, sizeof(*q));
    free(q);
}

static struct monitor_userq *monitor_userq_new(const char *name,
                                               monitor_job_done_fn done)
{
    struct monitor_userq *q = calloc(1, sizeof(*q));

    if (q == NULL) {
        return NULL;
    }
    q->job.sj.work = monitor_userq_work;
    q->job.done = done;
    q->job.release = monitor_userq_release;
    snprintf(q->name, sizeof(q->name), "%s", name);
    q->get_r = ERR_STORE;
    q->match_r = ERR_STORE;
    return q;
}

/* The user the parsed login names, from q, into c->auth_uid (for the
 * lockout keys); false if it names none (c->store_down: the store did not
 * answer). */
static bool monitor_userq_found(struct mchild *c, const struct monitor_userq *q)
{
    if (q->get_r != ERR_OK) {
        c->store_down = q->get_r == ERR_STORE;
        return false;
    }
    snprintf(c->auth_uid, sizeof(c->auth_uid), "%s", q->u.id);
    return true;
}

/* The user the parsed login names, into *u and c->auth_uid (for the
 * lockout keys); false if it names none. */
static bool monitor_login_user(struct monitor *m, struct mchild *c,
                               struct store_user *u)
{
    int r = store_user_get(m->store, c->login.principal, u);

    if (r != ERR_OK) {
        c->store_down = r == ERR_STORE;
        memset(u, 0, sizeof(*u));
        return false;
    }
    snprintf(c->auth_uid, sizeof(c->auth_uid), "%s", u->id);
    return true;
}

/* The store did not answer (PostgreSQL down or unreachable): the login is
 * refused as such, not counted as a failure, and the child tells the user
 * (MP_REASON_STORE_DOWN); a later attempt finds the store back by itself
 * (db_pg.c connects again). */
static bool monitor_store_down(struct monitor *m, struct mchild *c)
{
    if (!c->store_down) {
        return false;
    }
    c->store_down = false;
    log_warn("login %s from %s refused: the store is unavailable",
             c->login.principal[0] ? c->login.principal : "(invalid)", c->addr);
    monitor_auth_reply(m, c, MP_AUTH_FAIL, MP_REASON_STORE_DOWN);
    return true;
}

/* After a password proved right (monitor_password_checked): the NT hash
 * kept if it was missing, and the user read again, since it may have
 * been changed while the hash ran. */
static void monitor_password_user_again(struct monitor *m, struct mchild *c,
                                        struct monitor_job *j)
{
    struct monitor_userq *q = (struct monitor_userq *)j;

    if (q->nt_stored) {
        log_info("stored the NT hash of user %s (for RDP logins)", q->name);
    }
    if (q->rehashed) {
        log_info("remade the password hash of user %s at the configured "
                 "cost ([auth] password_memory_kib, password_passes)",
                 q->name);
    }
    if (c == NULL || c->state == MC_DEAD) {
        return;
    }
    if (q->get_r != ERR_OK) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "authentication failed");
    } else if (q->u.disabled) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "user disabled");
    } else {
        monitor_second_factor(m, c, &q->u);
    }
}

/*
 * The password check of c came back (in line, or from the worker pool).
 * A password just proved right: if its user has no NT hash yet (made
 * before version 11 of the store, or by a path that had no vault), the
 * NT hash of this password is sealed here and stored by the job that
 * reads the user again, so the RDP proxy's NLA works from now on
 * (docs/rdp.md). A hash the pool remade at the configured cost (rh) is
 * stored by the same job.
 */
static void monitor_password_checked(struct monitor *m, struct mchild *c,
                                     bool ok, const struct password_rehash *rh)
{
    struct monitor_userq *q;
    char ad[VAULT_AD_MAX];

    if (!ok) {
        if (!monitor_ntlm_settle(m, c, false)) {
            monitor_count_failure(m, c, LOCKOUT_PASSWORD);
        }
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "authentication failed");
        return;
    }
    (void)monitor_ntlm_settle(m, c, true);
    monitor_factor_ok(m, c, LOCKOUT_PASSWORD);
    q = monitor_userq_new(c->auth_uid, monitor_password_user_again);
    if (q != NULL && c->pending_nt_set && c->auth_uid[0] != '\0') {
        vault_ad(ad, VAULT_AD_USER_NTHASH, c->auth_uid);
        if (vault_seal(m->vault, ad, c->pending_nt, sizeof(c->pending_nt),
                       &q->nt_sealed, &q->nt_sealed_len) != ERR_OK) {
            q->nt_sealed = NULL;
        }
    }
    if (q != NULL && rh != NULL && c->auth_uid[0] != '\0') {
        q->rehash_old = strdup(rh->old_hash);
        q->rehash_new = strdup(rh->new_hash);
        if (q->rehash_old == NULL || q->rehash_new == NULL) {
            free(q->rehash_old);
            free(q->rehash_new);
            q->rehash_old = q->rehash_new = NULL; /* next login, then */
        }
    }
    sodium_memzero(c->pending_nt, sizeof(c->pending_nt));
    c->pending_nt_set = false;
    if (q == NULL) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "internal error");
        return;
    }
    monitor_job_start(m, c, &q->job);
}

/* password_done_fn: a worker finished the check of child `serial`, which
 * may have died, been killed or been reaped meanwhile. */
static void monitor_on_password(void *ctx, uint64_t serial, int result,
                                const struct password_rehash *rh)
{
    struct monitor *m = ctx;
    struct mchild *c = monitor_child_by_serial(m, serial);

    if (c == NULL || c->state == MC_DEAD || !c->auth_pending) {
        return;
    }
    c->auth_pending = false;
    buf_reset(m->rep);
    monitor_password_checked(m, c, result == ERR_OK, rh);
}

/* Checks password for c's user (u, or none): on the worker pool, answered
 * in monitor_on_password; in line when the monitor has no loop. */
static void monitor_password_start(struct monitor *m, struct mchild *c,
                                   const struct store_user *u, bool found,
                                   const char *password)
{
    const char *hash = found ? u->password_hash : NULL;
    int r;

    if (m->hashes == NULL) {
        monitor_password_checked(
            m, c, password_verify(hash, password) == ERR_OK, NULL);
        return;
    }
    r = password_verify_async(m->hashes, hash, password, monitor_on_password, m,
                              c->serial);
    if (r == ERR_OK) {
        c->auth_pending = true;
    } else if (r == ERR_DENIED) {
        /* Not a guess checked: not counted. */
        log_warn("login from %s refused: %d password checks running and "
                 "waiting",
                 c->addr,
                 m->cfg->max_concurrent_hashes *
                     (1 + MONITOR_HASH_WAITING_PER_RUNNING));
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "server busy");
    } else {
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "internal error");
    }
}

/* The directory answered for child `serial` (or its deadline did); the
 * child may be gone. key: a key login's lookup, no password checked. */
static void monitor_directory_done(struct monitor *m, uint64_t serial,
                                   const struct directory_result *res, bool key)
{
    struct mchild *c = monitor_child_by_serial(m, serial);
    struct store_user u;
    char why[256], detail[1024];

    if (c == NULL || c->state == MC_DEAD || !c->auth_pending) {
        return;
    }
    c->auth_pending = false;
    buf_reset(m->rep);
    memset(&u, 0, sizeof(u));
    if (res->status == ERR_AUTH && !key) {
        monitor_count_failure(m, c, LOCKOUT_PASSWORD);
    }
    if (res->status != ERR_OK) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL, res->why);
        return;
    }
    if (!key) {
        monitor_factor_ok(m, c, LOCKOUT_PASSWORD);
    }
    if (directory_provision(m->store, c->login.principal, res, &u, why,
                            sizeof(why), detail, sizeof(detail)) != ERR_OK) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL, why);
    } else {
        monitor_audit(m, c, u.name, "directory.login", c->login.domain, detail);
        monitor_second_factor(m, c, &u);
    }
    sodium_memzero(&u, sizeof(u));
}

/* directory_done_fn of a password login */
static void monitor_on_directory(void *ctx, uint64_t serial,
                                 const struct directory_result *res)
{
    monitor_directory_done(ctx, serial, res, false);
}

/* directory_done_fn of a key login */
static void monitor_on_directory_key(void *ctx, uint64_t serial,
                                     const struct directory_result *res)
{
    monitor_directory_done(ctx, serial, res, true);
}

/* A key login of a user "user@DOMAIN" whose DOMAIN has a directory: the
 * key counts only while the directory still knows the user, asked with
 * its service account unless a check within key_cache_seconds said so
 * (auth/directory.h). False: no directory to ask, go on. */
static bool monitor_directory_key(struct monitor *m, struct mchild *c)
{
    struct directory_service *dirs = directory_service_shared();
    const struct directory_conf *d;
    char why[LOGIN_DOMAIN_MAX + 128];
    int r;

    if (c->login.domain[0] == '\0' ||
        (d = directory_service_find(dirs, c->login.domain)) == NULL ||
        directory_service_cached(dirs, c->login.domain, c->login.username)) {
        return false;
    }
    if (d->bind_dn == NULL) {
        snprintf(why, sizeof(why),
                 "directory %s cannot check key logins (no bind_dn); log in "
                 "with the password",
                 d->name);
        monitor_auth_reply(m, c, MP_AUTH_FAIL, why);
        return true;
    }
    r = directory_lookup_async(dirs, c->login.domain, c->login.username,
                               monitor_on_directory_key, m, c->serial);
    if (r == ERR_OK) {
        c->auth_pending = true;
    } else {
        monitor_auth_reply(m, c, MP_AUTH_FAIL,
                           r == ERR_DENIED ? "server busy" : "internal error");
    }
    return true;
}

/* A login "user@DOMAIN": checked by DOMAIN's directory (auth/directory.h)
 * when one is configured, and answered in monitor_on_directory; refused
 * when directories are configured, none is DOMAIN's and no local user
 * has the name. False: an ordinary local login. */
static bool monitor_directory_start(struct monitor *m, struct mchild *c,
                                    bool found, const char *password)
{
    struct directory_service *dirs = directory_service_shared();
    char why[LOGIN_DOMAIN_MAX + 64];
    int r;

    if (c->login.domain[0] == '\0' || directory_service_count(dirs) == 0) {
        return false;
    }
    if (directory_service_find(dirs, c->login.domain) == NULL) {
        if (found) {
            return false;
        }
        snprintf(why, sizeof(why), "unknown domain %s", c->login.domain);
        monitor_auth_reply(m, c, MP_AUTH_FAIL, why);
        return true;
    }
    r = directory_login_async(dirs, c->login.domain, c->login.username,
                              password, monitor_on_directory, m, c->serial);
    if (r == ERR_OK) {
        c->auth_pending = true;
    } else {
        monitor_auth_reply(m, c, MP_AUTH_FAIL,
                           r == ERR_DENIED ? "server busy" : "internal error");
    }
    return true;
}

/* MP_AUTH_PASSWORD's user came back: a locked name is answered alike,
 * known or not, without a check; then the directory or the password. */
static void monitor_password_user(struct monitor *m, struct mchild *c,
                                  struct monitor_job *j)
{
    struct monitor_userq *q = (struct monitor_userq *)j;
    bool found;

    if (c == NULL || c->state == MC_DEAD) {
        return;
    }
    found = monitor_userq_found(c, q);
    if (monitor_store_down(m, c)) {
        return;
    }
    if (monitor_factor_locked(m, c, LOCKOUT_PASSWORD)) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL,
                           monitor_locked_why(LOCKOUT_PASSWORD));
        return;
    }
    if (monitor_directory_start(m, c, found, q->password)) {
        return;
    }
    c->pending_nt_set =
        found && nthash_v1(q->password, c->pending_nt) == ERR_OK;
    monitor_password_start(m, c, &q->u, found, q->password);
}

/*
 * A password, or a browser terminal's one-time ticket (webticket.h): the
 * HTTP side logs in to our own proxy as "<user>#<asset ID>" with a ticket
 * bound to that user, that asset and its own connection's address. A
 * redeemed ticket stands for a correct password: from then on the session
 * is the browser's (its address goes into the report and the throttle)
 * and continues as after a password, TOTP included.
 *
 * A password is checked on the worker pool (password.h): the answer goes
 * to the child later, from monitor_on_password. Meanwhile the child may
 * send nothing (it waits for the answer; anything else ends it).
 */
static int monitor_auth_password(struct monitor *m, struct mchild *c,
                                 struct buf *req)
{
    char *login = NULL, *password = NULL;
    struct store_user u;
    struct webticket_grant g;
    const char *colon;
    struct monitor_userq *q = NULL;
    unsigned long port = 0;
    int r = ERR_PROTO, ok;

    memset(&u, 0, sizeof(u));
    memset(&g, 0, sizeof(g));
    if (c->state != MC_PREAUTH || c->auth_pending ||
        buf_get_cstring(req, LOGIN_MAX, &login) != ERR_OK ||
        buf_get_cstring(req, PASSWORD_MAX, &password) != ERR_OK ||
        buf_expect_end(req) != ERR_OK) {
        goto out;
    }
    r = ERR_OK;
    if (m->tickets != NULL && webticket_is_ticket(password)) {
        if ((colon = strrchr(c->addr, ':')) != NULL) {
            port = strtoul(colon + 1, NULL, 10);
        }
        ok = port > 0 && port <= 65535 &&
             webticket_redeem(m->tickets, password, c->ip, (uint16_t)port,
                              util_mono_ms(), &g) == ERR_OK;
        if (ok) {
            /* The session is the browser's from here on. */
            snprintf(c->addr, sizeof(c->addr), "%s", g.browser_addr);
            snprintf(c->ip, sizeof(c->ip), "%s", g.browser_ip);
        }
        if (!monitor_take_login(m, c, login)) {
            goto out;
        }
        ok = ok && store_user_get(m->store, g.user_id, &u) == ERR_OK &&
             strcmp(u.name, c->login.principal) == 0 && c->login.asset_is_id &&
             strcmp(c->login.asset, g.asset_id) == 0;
        if (!ok) {
            (void)monitor_login_user(m, c, &u);
            monitor_count_failure(m, c, LOCKOUT_PASSWORD);
            monitor_auth_reply(m, c, MP_AUTH_FAIL, "authentication failed");
            goto out;
        }
        snprintf(c->auth_uid, sizeof(c->auth_uid), "%s", u.id);
        if (u.disabled) {
            monitor_auth_reply(m, c, MP_AUTH_FAIL, "user disabled");
            goto out;
        }
        monitor_second_factor(m, c, &u);
        goto out;
    }
    if (!monitor_take_login(m, c, login)) {
        goto out;
    }
    /* the user is looked up by a job, continued in monitor_password_user */
    if ((q = monitor_userq_new(c->login.principal, monitor_password_user)) ==
            NULL ||
        (q->password = strdup(password)) == NULL) {
        if (q != NULL) {
            monitor_userq_release(&q->job);
        }
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "internal error");
        goto out;
    }
    monitor_job_start(m, c, &q->job);
out:
    if (password != NULL) {
        sodium_memzero(password, strlen(password));
    }
    free(password);
    free(login);
    sodium_memzero(&u, sizeof(u));
    sodium_memzero(&g, sizeof(g));
    return r;
}

/*
 * MP_RDP_NTLM: the RDP child runs NTLM inside CredSSP (NLA) and needs,
 * for the user and domain the client named, NTOWFv2 of that user's
 * password (auth/nthash.h). The monitor derives it from the sealed NT
 * hash and hands out that one key, once per child, after the same
 * lockout checks as a password, and only when the client's NTLMv2
 * response (sent along with the server challenge) proves it: a
 * compromised child cannot obtain the key, an offline-attackable value,
 * of a user whose password its client does not know. A response that
 * does not prove it is a wrong password, counted as one. The key still
 * proves nothing by itself: after NLA the child sends the cleartext
 * password it received (MP_AUTH_PASSWORD), checked against the argon2id
 * hash as for SSH, and a failed NLA is reported the same way (an empty
 * password), so it counts as a failure (once: monitor_ntlm_settle).
 */
/* Does the RDP client's login name a configured directory (LDAP) domain,
 * as user@DOMAIN or as the NTLM domain (DOMAIN\\user)? */
static bool monitor_rdp_directory_user(const struct mchild *c,
                                       const char *ntlm_domain)
{
    struct directory_service *dirs = directory_service_shared();

    if (dirs == NULL || directory_service_count(dirs) == 0) {
        return false;
    }
    return (c->login.domain[0] != '\0' &&
            directory_service_find(dirs, c->login.domain) != NULL) ||
           (ntlm_domain[0] != '\0' &&
            directory_service_find(dirs, ntlm_domain) != NULL);
}

/* A login with letters beyond ASCII: Windows upper-cases them in NTOWFv2
 * (mstsc), WinPR does not (xfreerdp, the key tried first). True and the
 * key in key if the Unicode upper case proves the response. */
static bool monitor_ntlm_unicode_key(const uint8_t *nt, const char *login,
                                     const char *domain,
                                     const struct monitor_userq *q,
                                     uint8_t key[NTHASH_LEN])
{
    bool wide = false;

    for (const char *p = login; *p != '\0'; p++) {
        wide = wide || (unsigned char)*p >= 0x80;
    }
    return wide &&
           nthash_v2_upper(nt, login, domain, NTHASH_UPPER_UNICODE, key) ==
               ERR_OK &&
           nthash_v2_proof_ok(key, q->ntlm_sc, q->ntlm_resp, q->ntlm_resp_len);
}

/* MP_RDP_NTLM's answer: the key, or why not (why NULL: the user is
 * known, enabled and has a sealed NT hash in q). */
static void monitor_rdp_ntlm_answer(struct monitor *m, struct mchild *c,
                                    const char *login, const char *domain,
                                    const char *why,
                                    const struct monitor_userq *q)
{
    uint8_t *nt = NULL, key[NTHASH_LEN];
    size_t ntlen = 0;
    char ad[VAULT_AD_MAX];
    bool wrong = false;

    if (why == NULL) {
        if (monitor_factor_locked(m, c, LOCKOUT_PASSWORD)) {
            why = monitor_locked_why(LOCKOUT_PASSWORD);
        } else if (q->nt_have_len == 0) {
            why = "no RDP password hash stored yet: log in once over SSH or "
                  "the web, or have the password set again";
        } else {
            vault_ad(ad, VAULT_AD_USER_NTHASH, q->u.id);
            if (vault_open(m->vault, ad, q->nt_have, q->nt_have_len, &nt,
                           &ntlen) != ERR_OK ||
                ntlen != NTHASH_LEN ||
                nthash_v2(nt, login, domain, key) != ERR_OK) {
                why = "internal error";
            } else if (!nthash_v2_proof_ok(key, q->ntlm_sc, q->ntlm_resp,
                                           q->ntlm_resp_len) &&
                       !monitor_ntlm_unicode_key(nt, login, domain, q, key)) {
                why = "authentication failed";
                wrong = true;
            }
        }
    }
    if (wrong) {
        /* a wrong password, counted now (a compromised child may never
         * report); the child's report of its failed NLA is this one */
        monitor_count_failure(m, c, LOCKOUT_PASSWORD);
        monitor_factor_key(c, LOCKOUT_PASSWORD, c->ntlm_key,
                           sizeof(c->ntlm_key));
        c->ntlm_charged = true;
    }
    if (why != NULL) {
        snprintf(c->last_fail, sizeof(c->last_fail), "denied: %s", why);
        log_info("RDP login %s from %s refused: %s",
                 c->login.principal[0] ? c->login.principal : "(invalid)",
                 c->addr, why);
        monitor_audit(m, c, c->login.principal[0] ? c->login.principal : login,
                      "login.fail", "rdp", why);
        (void)(buf_put_u8(m->rep, 0) || buf_put_cstring(m->rep, why) ||
               buf_put_string(m->rep, NULL, 0));
    } else {
        /* The response proved the password's NT hash: nothing counted
         * (a key costs a child whose client knows the password nothing
         * it could not have had). The child's password check, which
         * is the authentication, counts as any password does. */
        /* if NLA fails, the child says so (an empty password) */
        snprintf(c->last_fail, sizeof(c->last_fail),
                 "denied: authentication failed");
        (void)(buf_put_u8(m->rep, 1) || buf_put_cstring(m->rep, "") ||
               buf_put_string(m->rep, key, sizeof(key)));
    }
    monitor_reply(m, c, MP_RDP_NTLM_REPLY, -1);
    vault_secret_free(nt, ntlen);
    sodium_memzero(key, sizeof(key));
}

/* MP_RDP_NTLM's user and sealed NT hash came back. */
static void monitor_rdp_ntlm_user(struct monitor *m, struct mchild *c,
                                  struct monitor_job *j)
{
    struct monitor_userq *q = (struct monitor_userq *)j;
    bool found;

    if (c == NULL || c->state == MC_DEAD) {
        return;
    }
    found = monitor_userq_found(c, q);
    if (!found && !c->store_down) {
        /* a name that is no user: a wrong password, as over SSH, so a
         * spray of names meets the address's lockout (the child, whose
         * NLA then fails on the random key, does not report) */
        monitor_count_failure(m, c, LOCKOUT_PASSWORD);
    }
    monitor_rdp_ntlm_answer(
        m, c, q->login, q->domain,
        !found || q->u.disabled ? "authentication failed" : NULL, q);
}

static int monitor_rdp_ntlm(struct monitor *m, struct mchild *c,
                            struct buf *req)
{
    char *login = NULL, *domain = NULL, bad[120];
    const uint8_t *sc = NULL, *resp = NULL;
    size_t sclen = 0, resplen = 0;
    struct monitor_userq *q = NULL;
    const char *why = NULL;
    int r = ERR_PROTO;

    if (c->ntlm_asked || c->state != MC_PREAUTH || c->auth_pending ||
        buf_get_cstring(req, LOGIN_MAX, &login) != ERR_OK ||
        buf_get_cstring(req, LOGIN_DOMAIN_MAX + 1, &domain) != ERR_OK ||
        buf_get_string_ptr(req, NTHASH_CHALLENGE_LEN, &sc, &sclen) != ERR_OK ||
        sclen != NTHASH_CHALLENGE_LEN ||
        buf_get_string_ptr(req, NTHASH_RESPONSE_MAX, &resp, &resplen) !=
            ERR_OK ||
        buf_expect_end(req) != ERR_OK) {
        goto out;
    }
    r = ERR_OK;
    c->ntlm_asked = true;
    c->tried = true;
    if (login_parse(login, strlen(login), &c->login, &why) != ERR_OK) {
        snprintf(bad, sizeof(bad), "invalid login: %s",
                 why ? why : "malformed");
        why = bad;
    } else if (monitor_addr_locked(m, c)) {
        why = "locked out: too many failures from your address";
    } else if (monitor_rdp_directory_user(c, domain)) {
        /* said before the store is asked: no NT hash can ever be there */
        why = "directory (domain) users cannot log in over RDP with NLA: "
              "it needs an NT hash of the password, which Portcullis never "
              "holds for a directory password; connect with TLS security "
              "where the server allows it ([rdp] tls_logins), or use SSH "
              "or the web";
    } else if ((q = monitor_userq_new(c->login.principal,
                                      monitor_rdp_ntlm_user)) == NULL) {
        why = "internal error";
    } else {
        /* the user and its NT hash by a job (monitor_rdp_ntlm_user) */
        q->want_nt = true;
        q->login = login;
        q->domain = domain;
        login = domain = NULL;
        memcpy(q->ntlm_sc, sc, sizeof(q->ntlm_sc));
        if (resplen > 0 && (q->ntlm_resp = malloc(resplen)) != NULL) {
            memcpy(q->ntlm_resp, resp, resplen);
            q->ntlm_resp_len = resplen;
        }
        monitor_job_start(m, c, &q->job);
        goto out;
    }
    monitor_rdp_ntlm_answer(m, c, login, domain, why, NULL);
out:
    free(login);
    free(domain);
    return r;
}

/* OpenSSH's fingerprint of a public key ("SHA256:..."), or "". */
static void monitor_key_fp(ssh_key key, char *out, size_t outlen)
{
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp = NULL;

    out[0] = '\0';
    if (key != NULL &&
        ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) ==
            0 &&
        (fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash,
                                       hlen)) != NULL) {
        snprintf(out, outlen, "%s", fp);
    }
    ssh_string_free_char(fp);
    ssh_clean_pubkey_hash(&hash);
}

/* The answer to a key probe. A refused probe still counts as an attempt
 * for the report: a client with only unknown keys never gets further.
 * sr: the user lookup's result (ERR_STORE: the store did not answer). */
static void monitor_probe_answer(struct monitor *m, struct mchild *c,
                                 const char *login, bool ok, int sr)
{
    struct login l;

    if (!ok && c->state == MC_PREAUTH) {
        c->tried = true;
        if (login_parse(login, strlen(login), &l, NULL) == ERR_OK) {
            c->login = l;
        }
        if (c->last_fail[0] == '\0') {
            snprintf(c->last_fail, sizeof(c->last_fail),
                     "denied: authentication failed");
        }
        sodium_memzero(&l, sizeof(l));
    }
    (void)(buf_put_u8(m->rep, ok ? MP_AUTH_OK : MP_AUTH_FAIL) ||
           buf_put_u32(m->rep, 0) ||
           buf_put_cstring(m->rep,
                           sr == ERR_STORE ? MP_REASON_STORE_DOWN : ""));
    monitor_reply(m, c, MP_AUTH_REPLY, -1);
}

/* A key probe's user and key came back. */
static void monitor_probe_user(struct monitor *m, struct mchild *c,
                               struct monitor_job *j)
{
    struct monitor_userq *q = (struct monitor_userq *)j;

    if (c == NULL || c->state == MC_DEAD) {
        return;
    }
    monitor_probe_answer(
        m, c, q->login,
        q->get_r == ERR_OK && !q->u.disabled && q->match_r == ERR_OK, q->get_r);
}

/* A signed key login's user and key came back. */
static void monitor_pubkey_user(struct monitor *m, struct mchild *c,
                                struct monitor_job *j)
{
    struct monitor_userq *q = (struct monitor_userq *)j;
    bool match;

    if (c == NULL || c->state == MC_DEAD) {
        return;
    }
    match = monitor_userq_found(c, q) && q->match_r == ERR_OK;
    if (monitor_store_down(m, c)) {
        return;
    }
    if (!match) {
        monitor_count_failure(m, c, -1);
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "authentication failed");
        return;
    }
    if (q->u.disabled) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "user disabled");
        return;
    }
    if (monitor_directory_key(m, c)) {
        return;
    }
    monitor_second_factor(m, c, &q->u);
}

/*
 * A public-key login. A probe ("would this key do?") carries the key blob
 * and is answered without counting or changing state. A signed request
 * carries the bytes the client signed and its signature: the monitor
 * checks both itself over the session identifier it signed for this child
 * (userauth_sig.h); the child's view of libssh's own check counts for
 * nothing.
 */
static int monitor_auth_pubkey(struct monitor *m, struct mchild *c,
                               struct buf *req)
{
    char *login = NULL, fp[MONITOR_FP_MAX + 1];
    const uint8_t *blob = NULL, *data = NULL, *sig = NULL;
    size_t blen = 0, dlen = 0, slen = 0;
    struct monitor_userq *q = NULL;
    ssh_string kstr = NULL;
    ssh_key key = NULL;
    uint8_t is_signed = 0;
    int r = ERR_PROTO;

    if (c->state != MC_PREAUTH || c->auth_pending || c->session_id_len == 0 ||
        buf_get_cstring(req, LOGIN_MAX, &login) != ERR_OK ||
        buf_get_u8(req, &is_signed) != ERR_OK || is_signed > 1) {
        goto out;
    }
    if (!is_signed) {
        struct login l;

        if (buf_get_string_ptr(req, HOSTKEYS_BLOB_MAX, &blob, &blen) !=
                ERR_OK ||
            buf_expect_end(req) != ERR_OK) {
            goto out;
        }
        r = ERR_OK;
        if ((kstr = ssh_string_new(blen)) == NULL ||
            ssh_string_fill(kstr, blob, blen) != 0 ||
            ssh_pki_import_pubkey_blob(kstr, &key) != SSH_OK) {
            key = NULL;
        }
        monitor_key_fp(key, fp, sizeof(fp));
        /* A probe: answered without counting it or changing state, by a
         * job when there is a user to ask about (monitor_probe_user). */
        if (fp[0] != '\0' &&
            login_parse(login, strlen(login), &l, NULL) == ERR_OK &&
            (q = monitor_userq_new(l.principal, monitor_probe_user)) != NULL) {
            snprintf(q->fp, sizeof(q->fp), "%s", fp);
            q->login = login;
            login = NULL;
            sodium_memzero(&l, sizeof(l));
            monitor_job_start(m, c, &q->job);
            goto out;
        }
        sodium_memzero(&l, sizeof(l));
        monitor_probe_answer(m, c, login, false, ERR_OK);
        goto out;
    }
    if (buf_get_string_ptr(req, USERAUTH_DATA_MAX, &data, &dlen) != ERR_OK ||
        buf_get_string_ptr(req, HOSTKEYS_BLOB_MAX, &sig, &slen) != ERR_OK ||
        buf_expect_end(req) != ERR_OK) {
        goto out;
    }
    r = ERR_OK;
    /* A key is not a factor anyone can guess: only the source address
     * can lock it out, never the user's locked password. */
    if (!monitor_take_login(m, c, login)) {
        goto out;
    }
    /* The signature is checked before the store is asked anything, so a
     * forged request learns nothing about registered keys. */
    if (userauth_sig_check(m->ssh_ctx, c->session_id, c->session_id_len, login,
                           data, dlen, sig, slen, &key) != ERR_OK) {
        log_warn("child %ld (%s) sent a public-key signature that does not "
                 "verify",
                 (long)c->pid, c->addr);
        monitor_count_failure(m, c, -1);
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "authentication failed");
        goto out;
    }
    monitor_key_fp(key, fp, sizeof(fp));
    /* the user and the key by a job, continued in monitor_pubkey_user */
    if ((q = monitor_userq_new(c->login.principal, monitor_pubkey_user)) ==
        NULL) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "internal error");
        goto out;
    }
    snprintf(q->fp, sizeof(q->fp), "%s", fp);
    monitor_job_start(m, c, &q->job);
out:
    ssh_key_free(key);
    ssh_string_free(kstr);
    free(login);
    return r;
}

/*
 * Signs a child's key-exchange hash with the real host key (hostkeys.h).
 * The first hash signed for a child is its session identifier, as in
 * OpenSSH's monitor. Before authentication a child gets exactly one
 * signature (a client that wants to re-key before logging in is refused);
 * afterwards re-keying is allowed.
 */
static int monitor_kex_sign(struct monitor *m, struct mchild *c,
                            struct buf *req)
{
    char type[64];
    const uint8_t *data = NULL;
    size_t len = 0;
    uint8_t hash = 0;
    int r;

    if (buf_get_cstring_into(req, type, sizeof(type)) != ERR_OK ||
        buf_get_u8(req, &hash) != ERR_OK ||
        buf_get_string_ptr(req, HOSTKEYS_HASH_MAX, &data, &len) != ERR_OK ||
        buf_expect_end(req) != ERR_OK) {
        return ERR_PROTO;
    }
    if (c->session_id_len != 0 && c->state != MC_AUTHED) {
        return ERR_PROTO;
    }
    if ((r = hostkeys_sign(&m->hostkeys, type, hash, data, len, m->rep)) !=
        ERR_OK) {
        log_warn("child %ld asked for a host-key signature: %s", (long)c->pid,
                 err_str(r));
        return ERR_PROTO;
    }
    if (c->session_id_len == 0) {
        memcpy(c->session_id, data, len);
        c->session_id_len = len;
    }
    monitor_reply(m, c, MP_KEX_SIGN_REPLY, -1);
    return ERR_OK;
}

/* MP_AUTH_TOTP's user came back (read again: it may have been disabled
 * since the first factor). */
static void monitor_totp_user(struct monitor *m, struct mchild *c,
                              struct monitor_job *j)
{
    struct monitor_userq *q = (struct monitor_userq *)j;

    if (c == NULL || c->state == MC_DEAD) {
        return;
    }
    if (q->get_r != ERR_OK || q->u.disabled) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "authentication failed");
        return;
    }
    monitor_totp_step(m, c, &q->u, q->totp);
}

static int monitor_auth_totp(struct monitor *m, struct mchild *c,
                             struct buf *req)
{
    char code[16] = "", reason[200];
    struct monitor_userq *q;

    if (c->state != MC_NEED_TOTP || c->auth_pending ||
        buf_get_cstring_into(req, code, sizeof(code)) != ERR_OK ||
        buf_expect_end(req) != ERR_OK) {
        return ERR_PROTO;
    }
    (void)monitor_child_state(m, c, MC_PREAUTH); /* a failure starts over */
    if (monitor_addr_locked(m, c)) {
        snprintf(reason, sizeof(reason),
                 "locked out: too many failures from %s", c->ip);
        monitor_auth_reply(m, c, MP_AUTH_FAIL, reason);
    } else if ((q = monitor_userq_new(c->user_id, monitor_totp_user)) == NULL) {
        monitor_auth_reply(m, c, MP_AUTH_FAIL, "internal error");
    } else {
        snprintf(q->totp, sizeof(q->totp), "%s", code);
        monitor_job_start(m, c, &q->job);
    }
    sodium_memzero(code, sizeof(code));
    return ERR_OK;
}

/* --- authorization --- */

static void monitor_authorize_reply(struct monitor *m, struct mchild *c,
                                    bool ok, const char *sid, const char *msg,
                                    const struct policy_decision *d)
{
    (void)(buf_put_u8(m->rep, ok ? 1 : 0) ||
           buf_put_cstring(m->rep, sid ? sid : "") ||
           buf_put_cstring(m->rep, msg ? msg : "") ||
           buf_put_cstring(m->rep, c->asset_name) ||
           buf_put_u32(m->rep, d ? (uint32_t)d->max_session_minutes : 0) ||
           buf_put_u32(m->rep, d ? (uint32_t)d->idle_timeout_minutes : 0) ||
           buf_put_u8(m->rep, d && d->record ? (d->record_input ? 3 : 1) : 0) ||
           buf_put_cstring(m->rep, c->user_name) ||
           buf_put_u8(m->rep, d ? (uint8_t)d->rdp_channels : 0));
    monitor_reply(m, c, MP_AUTHORIZE_REPLY, -1);
}

/*
 * MP_AUTHORIZE's store work (a job: see "Store work off the loop"): the
 * user still enabled, the login's asset among those the user holds a
 * role on, the role, the access profiles, the policy's decision and, if
 * allowed, the report row opened. What it needs of the child is copied
 * in; what it finds is copied back to the child by monitor_authz_done.
 */
struct monitor_authz {
    struct monitor_job job;
    /* in */
    char user_id[STORE_ID_MAX + 1];
    char user_name[STORE_NAME_MAX + 1];
    char client_addr[64];
    char site[LOGIN_SITE_MAX + 1];
    char asset[LOGIN_ASSET_MAX + 1];
    bool rdp;
    bool resolved; /* c->asset_resolved when it started */
    uint8_t kind;
    char *detail; /* heap */
    /* in and out: the child's asset (as it was, or as resolved here) */
    char asset_id[STORE_ID_MAX + 1];
    char asset_name[STORE_NAME_MAX + 1];
    char asset_site[STORE_PATH_MAX + 1];
    char asset_host[STORE_HOST_MAX + 1];
    int asset_port;
    struct route route;
    /* out */
    bool active;   /* the user exists and is enabled */
    int user_r;    /* store_user_get's: a store failure is not "disabled" */
    int resolve_r; /* monitor_resolve_asset's, ERR_OK if not asked */
    int role;
    char msg[600], result[STORE_RESULT_MAX + 1];
    struct policy_decision d;
    int open_r; /* store_session_open's; ERR_STORE if not asked */
    struct store_session s;
};

/*
 * Resolves the login's asset among those the user holds a role on.
 * Returns ERR_OK with a->asset_* set, or ERR_NOT_FOUND / ERR_AMBIGUOUS /
 * ERR_DENIED with msg and result filled.
 */
static int monitor_resolve_asset(struct store *st, struct monitor_authz *a,
                                 int *role, char *msg, size_t msglen,
                                 char *result, size_t reslen)
{
    struct store_asset *list = NULL;
    size_t n = 0, visible = 0, pick = 0, off;
    int r, rl, route_ok, best = ROLE_NONE;
    char why[200];

    *role = ROLE_NONE;
    r = store_asset_find(st, a->site[0] ? a->site : NULL, a->asset, &list, &n);
    if (r != ERR_OK && r != ERR_NOT_FOUND) {
        snprintf(msg, msglen, "internal error looking up the asset");
        snprintf(result, reslen, "error: store failed");
        return ERR_STORE;
    }
    for (size_t i = 0; i < n; i++) {
        rl = ROLE_NONE;
        if (store_user_asset_role(st, a->user_id, list[i].id, &rl) == ERR_OK &&
            rl >= ROLE_VIEWER) {
            visible++;
            pick = i;
            best = rl;
        }
    }
    if (n == 0) {
        snprintf(msg, msglen, "unknown asset '%s'", a->asset);
        snprintf(result, reslen, "denied: unknown asset");
        r = ERR_NOT_FOUND;
        goto out;
    }
    if (visible == 0) {
        snprintf(msg, msglen, "access denied: you have no role on this asset");
        snprintf(result, reslen, "denied: you have no role on this asset");
        if (n == 1) {
            snprintf(a->asset_id, sizeof(a->asset_id), "%s", list[0].id);
            snprintf(a->asset_name, sizeof(a->asset_name), "%s", list[0].name);
        }
        r = ERR_DENIED;
        goto out;
    }
    if (visible > 1) {
        off = (size_t)snprintf(
            msg, msglen, "asset name '%s' is ambiguous: matches ", a->asset);
        for (size_t i = 0, k = 0; i < n && off < msglen; i++) {
            rl = ROLE_NONE;
            if (store_user_asset_role(st, a->user_id, list[i].id, &rl) !=
                    ERR_OK ||
                rl < ROLE_VIEWER) {
                continue;
            }
            off += (size_t)snprintf(msg + off, msglen - off, "%s%s",
                                    k++ ? ", " : "", list[i].id);
        }
        if (off < msglen) {
            snprintf(msg + off, msglen - off, "; use the asset ID");
        }
        snprintf(result, reslen, "denied: ambiguous asset name");
        r = ERR_AMBIGUOUS;
        goto out;
    }
    snprintf(a->asset_id, sizeof(a->asset_id), "%s", list[pick].id);
    snprintf(a->asset_name, sizeof(a->asset_name), "%s", list[pick].name);
    snprintf(a->asset_site, sizeof(a->asset_site), "%s", list[pick].site_path);
    snprintf(a->asset_host, sizeof(a->asset_host), "%s", list[pick].host);
    a->asset_port = list[pick].port;
    route_ok = route_parse(list[pick].route, &a->route, why, sizeof(why));
    if (strcmp(list[pick].protocol, a->rdp ? "rdp" : "ssh") != 0) {
        snprintf(msg, msglen, "asset '%s' is not an %s asset", list[pick].name,
                 a->rdp ? "RDP" : "SSH");
        snprintf(result, reslen, "denied: not an %s asset",
                 a->rdp ? "RDP" : "SSH");
        r = ERR_DENIED;
        goto out;
    }
    if (route_ok != ERR_OK) {
        snprintf(msg, msglen, "asset '%s' uses route '%s', %s", list[pick].name,
                 a->route.text, why);
        snprintf(result, reslen, "error: unsupported route");
        r = ERR_DENIED;
        goto out;
    }
    *role = best;
    r = ERR_OK;
out:
    store_asset_list_free(list, n);
    return r;
}

/* Ends a child now; its open report rows close with result. */
static void monitor_end_child(struct monitor *m, struct mchild *c,
                              const char *result)
{
    if (c->end_result[0] == '\0') {
        snprintf(c->end_result, sizeof(c->end_result), "%s", result);
        log_info("ending the session process of %s from %s: %s", c->user_name,
                 c->addr, result);
        monitor_audit(m, c, c->user_name, "session.kill", c->addr, result);
    }
    kill(c->pid, SIGKILL);
}

/* Every few seconds: connections of users disabled or deleted since they
 * logged in (by the CLI, the API or anything else that writes the store)
 * are ended, with their sessions. */
/*
 * The recordings' size limit ([record] rdp_max_mb, ssh_max_mb), checked
 * here too: the child that writes a recording enforces it an event at a
 * time, but it parses what the client and the target send, and one taken
 * over could write on. Its
 * file's size is looked at on each sweep, through a descriptor of our
 * own: a recording past its limit ends the session (so a child can pass
 * the limit only by what it writes between two sweeps).
 */
static void monitor_check_recordings(struct monitor *m)
{
    struct stat st;

    for (struct mchild *c = m->children; c != NULL; c = c->next) {
        if (c->state != MC_AUTHED || c->end_result[0] != '\0') {
            continue;
        }
        for (struct mchild_row *r = c->rows; r != NULL; r = r->next) {
            if (r->rec_fd >= 0 && fstat(r->rec_fd, &st) == 0 &&
                (uint64_t)st.st_size > r->rec_max) {
                log_warn("session %s: the recording %s has %lld bytes, "
                         "past its limit of %llu",
                         r->id, r->rec_path ? r->rec_path : "?",
                         (long long)st.st_size, (unsigned long long)r->rec_max);
                monitor_end_child(m, c,
                                  c->rdp ? "error: the recording passed its "
                                           "size limit ([record] rdp_max_mb)"
                                         : "error: the recording passed its "
                                           "size limit ([record] ssh_max_mb)");
                break;
            }
        }
    }
}

/*
 * One round of the disabled-user check: the logged-in connections' users
 * (by the child's serial, never a pointer: a child may go meanwhile), one
 * store_users_active() call (a read transaction, a query per 16 users),
 * and the verdicts applied on the loop (monitor_users_done). On
 * PostgreSQL the call runs on a worker thread on the check's own
 * connection (m->users, a store_worker), so a slow database, a lock on
 * the users table or a statement that hangs delays the check, not the
 * loop (test_store_pg.py test_loop_answers_while_the_users_table_is_locked);
 * one round is in flight at a time, and a sweep that finds one still
 * running skips the check. On SQLite it runs on the loop.
 */
struct monitor_users {
    struct store_work job;
    size_t n;
    char (*ids)[STORE_ID_MAX + 1];
    const char **idp;
    uint64_t *serials;
    bool *active;
    int r;
};

static void monitor_users_free(struct monitor_users *u)
{
    if (u != NULL) {
        free(u->ids);
        free(u->idp);
        free(u->serials);
        free(u->active);
        free(u);
    }
}

static void monitor_users_work(struct store_work *j, struct store *st)
{
    struct monitor_users *u = (struct monitor_users *)j;

    u->r = store_users_active(st, u->idp, u->n, u->active);
}

static void monitor_users_done(void *owner, struct store_work *j)
{
    struct monitor_users *u = (struct monitor_users *)j;
    struct monitor *m = owner;
    size_t i = 0;

    /* A store that does not answer (PostgreSQL down) says nothing about
     * the users: sessions in progress go on, and the next round decides
     * again (docs/security.md). The children are in the order they were
     * taken in, less those that went meanwhile; no monitor (it went
     * meanwhile, m NULL): only free. */
    for (struct mchild *c = m != NULL ? m->children : NULL;
         c != NULL && i < u->n && u->r == ERR_OK; c = c->next) {
        size_t k = i;

        while (k < u->n && u->serials[k] != c->serial) {
            k++;
        }
        if (k == u->n) {
            continue; /* logged in after the round began */
        }
        i = k + 1;
        if (c->state == MC_AUTHED && c->end_result[0] == '\0' &&
            strcmp(c->user_id, u->ids[k]) == 0 && !u->active[k]) {
            monitor_end_child(m, c, "error: user disabled");
        }
    }
    monitor_users_free(u);
}

/* Starts a round of the check (on a worker when the store has a
 * connection for it, else here and now). */
static void monitor_users_check(struct monitor *m)
{
    struct monitor_users *u = NULL;
    struct mchild *c;
    size_t n = 0, i = 0;

    if (store_worker_busy(m->users)) {
        return; /* the last round is still on its worker */
    }
    for (c = m->children; c != NULL; c = c->next) {
        n += c->state == MC_AUTHED && c->end_result[0] == '\0';
    }
    if (n == 0) {
        return;
    }
    if ((u = calloc(1, sizeof(*u))) == NULL ||
        (u->ids = calloc(n, sizeof(*u->ids))) == NULL ||
        (u->idp = calloc(n, sizeof(*u->idp))) == NULL ||
        (u->serials = calloc(n, sizeof(*u->serials))) == NULL ||
        (u->active = calloc(n, sizeof(*u->active))) == NULL) {
        monitor_users_free(u);
        return; /* the next round tries again */
    }
    for (c = m->children; c != NULL && i < n; c = c->next) {
        if (c->state == MC_AUTHED && c->end_result[0] == '\0') {
            snprintf(u->ids[i], sizeof(u->ids[i]), "%s", c->user_id);
            u->idp[i] = u->ids[i];
            u->serials[i] = c->serial;
            i++;
        }
    }
    u->n = i;
    u->r = ERR_STORE; /* if it finds no connection */
    u->job.work = monitor_users_work;
    u->job.done = monitor_users_done;
    store_worker_run(m->users, &u->job);
}

static void monitor_on_sweep(struct loop *l, void *arg)
{
    struct monitor *m = arg;

    monitor_pending_flush(m);
    if (m->audit_timer == 0 && audit_waiting(m->store) > 0) {
        m->audit_timer =
            loop_add_timer(l, MONITOR_AUDIT_RETRY_MS, monitor_on_audit, m);
    }
    monitor_check_recordings(m);
    monitor_users_check(m);
    m->sweep_timer = loop_add_timer(l, MONITOR_SWEEP_MS, monitor_on_sweep, m);
}

static void monitor_authz_work(struct store_work *j, struct store *st)
{
    struct monitor_authz *a = (struct monitor_authz *)j;
    struct store_profile *profiles = NULL;
    struct store_user u;
    size_t np = 0;

    memset(&u, 0, sizeof(u));
    a->user_r = store_user_get(st, a->user_id, &u);
    a->active = a->user_r == ERR_OK && !u.disabled;
    sodium_memzero(&u, sizeof(u));
    if (!a->active) {
        return;
    }
    if (!a->resolved && (a->resolve_r = monitor_resolve_asset(
                             st, a, &a->role, a->msg, sizeof(a->msg), a->result,
                             sizeof(a->result))) != ERR_OK) {
        return;
    }
    if (a->role == ROLE_NONE &&
        store_user_asset_role(st, a->user_id, a->asset_id, &a->role) !=
            ERR_OK) {
        a->role = ROLE_NONE;
    }
    if (store_user_profiles(st, a->user_id, &profiles, &np) != ERR_OK) {
        np = 0;
    }
    policy_decide(a->role, profiles, np, a->kind, &a->d);
    free(profiles);
    if (!a->d.allowed) {
        return;
    }
    util_uuid4(a->s.id);
    snprintf(a->s.user_id, sizeof(a->s.user_id), "%s", a->user_id);
    snprintf(a->s.user_name, sizeof(a->s.user_name), "%s", a->user_name);
    snprintf(a->s.asset_id, sizeof(a->s.asset_id), "%s", a->asset_id);
    snprintf(a->s.asset_name, sizeof(a->s.asset_name), "%s", a->asset_name);
    snprintf(a->s.site, sizeof(a->s.site), "%s", a->asset_site);
    snprintf(a->s.kind, sizeof(a->s.kind), "%s", policy_kind_str(a->kind));
    snprintf(a->s.client_addr, sizeof(a->s.client_addr), "%s", a->client_addr);
    snprintf(a->s.route, sizeof(a->s.route), "%s", a->route.text);
    snprintf(a->s.detail, sizeof(a->s.detail), "%s", a->detail);
    a->s.started_at = util_now();
    a->s.exit_status = -1;
    a->open_r = store_session_open(st, &a->s);
}

static void monitor_authz_release(struct monitor_job *j)
{
    struct monitor_authz *a = (struct monitor_authz *)j;

    free(a->detail);
    free(a);
}

/* The decision came back: the child is told, the report and the audit log
 * say it. A row opened for a child that went meanwhile is closed. */
static void monitor_authz_done(struct monitor *m, struct mchild *c,
                               struct monitor_job *j)
{
    struct monitor_authz *a = (struct monitor_authz *)j;
    const char *kind = policy_kind_str(a->kind);
    char what[200];

    if (c == NULL) {
        if (j->sj.ran && a->d.allowed && a->open_r == ERR_OK) {
            monitor_row_close(m, a->s.id, util_now(), 0, 0, -1,
                              "error: session process ended without "
                              "closing the session",
                              NULL, 0, NULL);
        }
        return;
    }
    if (!j->sj.ran) { /* no connection to the database */
        log_warn("session of %s from %s refused: the store is unavailable",
                 c->user_name, c->addr);
        monitor_authorize_reply(m, c, false, NULL,
                                "internal error: the store is unavailable",
                                NULL);
        return;
    }
    if (!a->resolved) {
        snprintf(c->asset_id, sizeof(c->asset_id), "%s", a->asset_id);
        snprintf(c->asset_name, sizeof(c->asset_name), "%s", a->asset_name);
        snprintf(c->asset_site, sizeof(c->asset_site), "%s", a->asset_site);
        snprintf(c->asset_host, sizeof(c->asset_host), "%s", a->asset_host);
        c->asset_port = a->asset_port;
        c->route = a->route;
        c->asset_resolved = a->active && a->resolve_r == ERR_OK;
    }
    if (!a->active && a->user_r != ERR_OK && a->user_r != ERR_NOT_FOUND) {
        /* The store failed (a lock held past lock_timeout, the database
         * gone mid-job): this channel is refused, the connection stays
         * (a store hiccup is not a disabled user). */
        log_warn("session of %s from %s refused: cannot read the user: %s",
                 c->user_name, c->addr, err_str(a->user_r));
        monitor_row_refused(m, c, kind,
                            c->asset_name[0] ? c->asset_name : c->login.asset,
                            a->detail,
                            "error: the store is unavailable (reading the "
                            "user)");
        monitor_authorize_reply(m, c, false, NULL,
                                "internal error: the store is unavailable",
                                NULL);
        return;
    }
    if (!a->active) {
        /* Disabled or deleted since this connection logged in: no new
         * channels, and the sweep ends the connection. */
        monitor_row_refused(m, c, kind,
                            c->asset_name[0] ? c->asset_name : c->login.asset,
                            a->detail, "denied: user disabled");
        monitor_authorize_reply(m, c, false, NULL,
                                "access denied: user disabled", NULL);
        monitor_end_child(m, c, "error: user disabled");
        return;
    }
    if (a->resolve_r != ERR_OK) {
        monitor_row_refused(m, c, kind,
                            c->asset_name[0] ? c->asset_name : c->login.asset,
                            a->detail, a->result);
        monitor_audit(m, c, c->user_name, "session.denied",
                      c->asset_name[0] ? c->asset_name : c->login.asset,
                      a->result);
        monitor_authorize_reply(m, c, false, NULL, a->msg, NULL);
        return;
    }
    if (!a->d.allowed) {
        snprintf(a->msg, sizeof(a->msg), "access denied: %s", a->d.reason);
        snprintf(a->result, sizeof(a->result), "denied: %s", a->d.reason);
        monitor_row_refused(m, c, kind, NULL, a->detail, a->result);
        monitor_audit(m, c, c->user_name, "session.denied", c->asset_name,
                      a->result);
        monitor_authorize_reply(m, c, false, NULL, a->msg, NULL);
        return;
    }
    if (a->open_r != ERR_OK ||
        monitor_row_add(c, a->s.id, a->d.record) != ERR_OK) {
        monitor_authorize_reply(
            m, c, false, NULL, "internal error: cannot write the report", NULL);
        return;
    }
    log_info("session %s: %s %s on %s (%s) from %s", a->s.id, c->user_name,
             kind, c->asset_name, c->asset_id, c->addr);
    snprintf(what, sizeof(what), "%s on %s (%s)", kind, c->asset_name,
             c->asset_id);
    monitor_audit(m, c, c->user_name, "session.start", a->s.id, what);
    monitor_authorize_reply(m, c, true, a->s.id, "", &a->d);
}

static int monitor_authorize(struct monitor *m, struct mchild *c,
                             struct buf *req)
{
    struct monitor_authz *a = NULL;
    char *detail = NULL;
    uint8_t kind = 0;
    int r = ERR_PROTO;

    if (c->state != MC_AUTHED || buf_get_u8(req, &kind) != ERR_OK ||
        kind >= KIND__COUNT || (kind == KIND_RDP) != c->rdp ||
        buf_get_cstring(req, MONITOR_DETAIL_MAX, &detail) != ERR_OK ||
        buf_expect_end(req) != ERR_OK) {
        goto out;
    }
    /* An scp session is exactly what scpcmd.h accepts (the child sends
     * the canonical command): a child that calls a command scp to pass an
     * scp-only profile is lying. */
    if (kind == KIND_SCP) {
        struct scpcmd sc;

        if (scpcmd_parse(detail, strlen(detail), &sc) != ERR_OK) {
            log_warn("child %ld asked for scp with a command that is not "
                     "scp",
                     (long)c->pid);
            goto out;
        }
    }
    r = ERR_OK;
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        monitor_authorize_reply(m, c, false, NULL, "internal error", NULL);
        goto out;
    }
    a->job.sj.work = monitor_authz_work;
    a->job.done = monitor_authz_done;
    a->job.release = monitor_authz_release;
    snprintf(a->user_id, sizeof(a->user_id), "%s", c->user_id);
    snprintf(a->user_name, sizeof(a->user_name), "%s", c->user_name);
    snprintf(a->client_addr, sizeof(a->client_addr), "%s", c->addr);
    snprintf(a->site, sizeof(a->site), "%s", c->login.site);
    snprintf(a->asset, sizeof(a->asset), "%s", c->login.asset);
    a->rdp = c->rdp;
    a->resolved = c->asset_resolved;
    a->kind = kind;
    a->detail = detail;
    detail = NULL;
    snprintf(a->asset_id, sizeof(a->asset_id), "%s", c->asset_id);
    snprintf(a->asset_name, sizeof(a->asset_name), "%s", c->asset_name);
    snprintf(a->asset_site, sizeof(a->asset_site), "%s", c->asset_site);
    snprintf(a->asset_host, sizeof(a->asset_host), "%s", c->asset_host);
    a->asset_port = c->asset_port;
    a->route = c->route;
    a->role = ROLE_NONE;
    a->resolve_r = ERR_OK;
    a->open_r = ERR_STORE;
    monitor_job_start(m, c, &a->job);
out:
    free(detail);
    return r;
}

/* --- connecting --- */

static void monitor_connect_reply(struct monitor *m, struct mchild *c, bool ok,
                                  const char *msg, int fd)
{
    (void)(buf_put_u8(m->rep, ok ? 1 : 0) ||
           buf_put_cstring(m->rep, msg ? msg : ""));
    /* Only a child holding a connected stream may report its host key. */
    c->connected = ok;
    monitor_reply(m, c, MP_CONNECT_REPLY, ok ? fd : -1);
}

static void monitor_connect_failed(struct monitor *m, struct mchild *c,
                                   const char *why)
{
    char msg[600];

    snprintf(msg, sizeof(msg), "cannot reach asset '%s' (%s:%d): %s",
             c->asset_name, c->asset_host, c->asset_port, why);
    log_info("%s", msg);
    monitor_connect_reply(m, c, false, msg, -1);
}

/* route_done_fn: the route has a stream to c's asset, or why not. */
static void monitor_on_route(void *arg, const struct route_result *r)
{
    struct mchild *c = arg;
    struct monitor *m = c->mon;
    int fd = r->fd;

    c->route_req = NULL;
    buf_reset(m->rep);
    /* Through another node of the cluster: the row names it beside the
     * session's own node (a failure too: that node refused or failed). */
    if (r->node != NULL) {
        struct store_session s;

        memset(&s, 0, sizeof(s));
        snprintf(s.id, sizeof(s.id), "%s", c->connect_row);
        snprintf(s.agent_node, sizeof(s.agent_node), "%s", r->node);
        if (store_session_update(m->store, &s) != ERR_OK) {
            log_warn("session %s: cannot write the agent's node %s",
                     c->connect_row, r->node);
        }
    }
    if (fd < 0) {
        monitor_connect_failed(m, c, r->why);
        return;
    }
    monitor_connect_reply(m, c, true, "", fd);
    close(fd); /* the child has its own copy now */
}

/*
 * CONNECT: the asset's route (route/route.h) makes the stream, within
 * its own deadlines, without blocking this loop; a slow target or DNS
 * server stalls this session only.
 */
static int monitor_connect(struct monitor *m, struct mchild *c, struct buf *req)
{
    char row[STORE_ID_MAX + 1] = "";
    const char *colon = strrchr(c->addr, ':');

    if (c->state != MC_AUTHED || !c->asset_resolved || c->connect_asked ||
        buf_get_cstring_into(req, row, sizeof(row)) != ERR_OK ||
        buf_expect_end(req) != ERR_OK || monitor_row_find(c, row) == NULL) {
        return ERR_PROTO;
    }
    c->connect_asked = true;
    snprintf(c->connect_row, sizeof(c->connect_row), "%s", row);
    if (m->routes == NULL) {
        monitor_connect_failed(m, c, "internal error");
        return ERR_OK;
    }
    /* calls monitor_on_route at once when it fails early */
    c->route_req =
        route_connect(m->routes, &c->route, c->asset_host, c->asset_port, c->ip,
                      colon != NULL ? atoi(colon + 1) : 0, monitor_on_route, c);
    return ERR_OK;
}

/* --- host key and credentials --- */

/*
 * MP_HOSTKEY and MP_CREDENTIALS's store work (jobs: see "Store work off
 * the loop"): the host key pinned or compared, the asset read for its
 * pinned key or its vaulted login. The vault is opened on the loop.
 */
struct monitor_assetq {
    struct monitor_job job;
    char asset_id[STORE_ID_MAX + 1];
    char fp[MONITOR_FP_MAX + 1]; /* MP_HOSTKEY: the key presented */
    int pin_r;                   /* ERR_STORE if it never ran */
    int get_r;
    struct store_asset a; /* its sealed blobs are freed by release */
};

static void monitor_hostkey_work(struct store_work *j, struct store *st)
{
    struct monitor_assetq *q = (struct monitor_assetq *)j;

    if ((q->pin_r = store_asset_pin_host_key(st, q->asset_id, q->fp)) !=
        ERR_OK) {
        q->get_r = store_asset_get(st, q->asset_id, &q->a);
    }
}

static void monitor_credentials_work(struct store_work *j, struct store *st)
{
    struct monitor_assetq *q = (struct monitor_assetq *)j;

    q->get_r = store_asset_get(st, q->asset_id, &q->a);
}

static void monitor_assetq_release(struct monitor_job *j)
{
    struct monitor_assetq *q = (struct monitor_assetq *)j;

    store_asset_clear(&q->a);
    free(q);
}

static struct monitor_assetq *monitor_assetq_new(const struct mchild *c,
                                                 store_job_work_fn work,
                                                 monitor_job_done_fn done)
{
    struct monitor_assetq *q = calloc(1, sizeof(*q));

    if (q == NULL) {
        return NULL;
    }
    q->job.sj.work = work;
    q->job.done = done;
    q->job.release = monitor_assetq_release;
    snprintf(q->asset_id, sizeof(q->asset_id), "%s", c->asset_id);
    q->pin_r = ERR_STORE;
    q->get_r = ERR_STORE;
    return q;
}

static void monitor_hostkey_done(struct monitor *m, struct mchild *c,
                                 struct monitor_job *j)
{
    struct monitor_assetq *q = (struct monitor_assetq *)j;
    char msg[600];

    if (c == NULL) {
        return;
    }
    if (q->pin_r == ERR_OK) {
        c->hostkey_ok = true;
        (void)(buf_put_u8(m->rep, 1) || buf_put_cstring(m->rep, ""));
    } else {
        if (q->pin_r == ERR_HOSTKEY) {
            snprintf(msg, sizeof(msg),
                     "host key of asset '%s' has changed (pinned %s, "
                     "presented %s); an administrator must run "
                     "'portcullis asset retrust %s'",
                     c->asset_name, q->a.host_key_fp, q->fp, c->asset_id);
            log_warn("%s", msg);
        } else {
            snprintf(msg, sizeof(msg), "cannot check the host key: %s",
                     err_str(q->pin_r));
        }
        (void)(buf_put_u8(m->rep, 0) || buf_put_cstring(m->rep, msg));
    }
    monitor_reply(m, c, MP_HOSTKEY_REPLY, -1);
}

static int monitor_hostkey(struct monitor *m, struct mchild *c, struct buf *req)
{
    char row[STORE_ID_MAX + 1] = "", fp[MONITOR_FP_MAX + 1] = "";
    struct monitor_assetq *q;

    if (c->state != MC_AUTHED || !c->connected || c->hostkey_asked ||
        buf_get_cstring_into(req, row, sizeof(row)) != ERR_OK ||
        buf_get_cstring_into(req, fp, sizeof(fp)) != ERR_OK ||
        buf_expect_end(req) != ERR_OK || monitor_row_find(c, row) == NULL) {
        return ERR_PROTO;
    }
    c->hostkey_asked = true;
    if ((q = monitor_assetq_new(c, monitor_hostkey_work,
                                monitor_hostkey_done)) == NULL) {
        (void)(buf_put_u8(m->rep, 0) ||
               buf_put_cstring(m->rep, "cannot check the host key: out of "
                                       "memory"));
        monitor_reply(m, c, MP_HOSTKEY_REPLY, -1);
        return ERR_OK;
    }
    snprintf(q->fp, sizeof(q->fp), "%s", fp);
    monitor_job_start(m, c, &q->job);
    return ERR_OK;
}

static void monitor_credentials_done(struct monitor *m, struct mchild *c,
                                     struct monitor_job *j)
{
    struct monitor_assetq *q = (struct monitor_assetq *)j;
    const struct store_asset *a = &q->a;
    uint8_t *pw = NULL, *key = NULL;
    size_t pwlen = 0, keylen = 0;
    char ad[80];
    bool ok = q->get_r == ERR_OK;

    if (c == NULL) {
        return;
    }
    if (ok && a->password_sealed != NULL) {
        snprintf(ad, sizeof(ad), "asset-password:%s", a->id);
        ok = vault_open(m->vault, ad, a->password_sealed,
                        a->password_sealed_len, &pw, &pwlen) == ERR_OK;
    }
    if (ok && a->key_sealed != NULL) {
        snprintf(ad, sizeof(ad), "asset-key:%s", a->id);
        ok = vault_open(m->vault, ad, a->key_sealed, a->key_sealed_len, &key,
                        &keylen) == ERR_OK;
    }
    if (!ok) {
        log_error("cannot open the vaulted login of asset %s", c->asset_id);
    }
    (void)(buf_put_u8(m->rep, ok ? 1 : 0) ||
           buf_put_cstring(m->rep,
                           a->login_user[0] ? a->login_user : c->user_name) ||
           buf_put_cstring(m->rep, pw ? (const char *)pw : "") ||
           buf_put_cstring(m->rep, key ? (const char *)key : ""));
    monitor_reply(m, c, MP_CREDENTIALS_REPLY, -1);
    vault_secret_free(pw, pwlen);
    vault_secret_free(key, keylen);
}

static int monitor_credentials(struct monitor *m, struct mchild *c,
                               struct buf *req)
{
    char row[STORE_ID_MAX + 1] = "";
    struct monitor_assetq *q;

    if (c->state != MC_AUTHED || !c->hostkey_ok || c->creds_given ||
        buf_get_cstring_into(req, row, sizeof(row)) != ERR_OK ||
        buf_expect_end(req) != ERR_OK || monitor_row_find(c, row) == NULL) {
        return ERR_PROTO;
    }
    c->creds_given = true;
    if ((q = monitor_assetq_new(c, monitor_credentials_work,
                                monitor_credentials_done)) == NULL) {
        log_error("cannot open the vaulted login of asset %s", c->asset_id);
        (void)(buf_put_u8(m->rep, 0) || buf_put_cstring(m->rep, c->user_name) ||
               buf_put_cstring(m->rep, "") || buf_put_cstring(m->rep, ""));
        monitor_reply(m, c, MP_CREDENTIALS_REPLY, -1);
        return ERR_OK;
    }
    monitor_job_start(m, c, &q->job);
    return ERR_OK;
}

/* --- the end of a session --- */

static bool monitor_result_ok(const char *s)
{
    if (strncmp(s, "ok", 2) != 0 && strncmp(s, "error: ", 7) != 0 &&
        strncmp(s, "denied: ", 8) != 0) {
        return false;
    }
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return false;
        }
    }
    return true;
}

/* mkdir -p for the recording's date folders, each mode 0750. */
static int monitor_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);

    if (n >= sizeof(tmp)) {
        return ERR_TOO_LONG;
    }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) == 0) {
                (void)chmod(tmp, 0750);
            } else if (errno != EEXIST) {
                return ERR_IO;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0750) == 0) {
        (void)chmod(tmp, 0750);
    } else if (errno != EEXIST) {
        return ERR_IO;
    }
    return ERR_OK;
}

/*
 * Creates the recording file of a session: exclusively (never overwrite),
 * mode 0640, below [record] dir in date folders, and hands the child the
 * descriptor. The row gets the path at once, so a crash leaves the report
 * pointing at what was recorded.
 */
static int monitor_record_open(struct monitor *m, struct mchild *c,
                               struct buf *req)
{
    char row_id[STORE_ID_MAX + 1] = "", dir[PATH_MAX], path[PATH_MAX + 64],
                               msg[PATH_MAX + 128] = "";
    struct mchild_row *row;
    struct tm tm;
    time_t now = time(NULL);
    uint8_t format = 0;
    int fd = -1;

    if (c->state != MC_AUTHED ||
        buf_get_cstring_into(req, row_id, sizeof(row_id)) != ERR_OK ||
        buf_get_u8(req, &format) != ERR_OK || format > 2 ||
        (format == 2) != c->rdp || buf_expect_end(req) != ERR_OK ||
        (row = monitor_row_find(c, row_id)) == NULL || !row->record ||
        row->rec_opened) {
        return ERR_PROTO;
    }
    row->rec_opened = true;
    gmtime_r(&now, &tm);
    snprintf(dir, sizeof(dir), "%s/%04d/%02d/%02d", m->cfg->record_dir,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    snprintf(path, sizeof(path), "%s/%s.%s", dir, row_id,
             format == 0   ? "cast"
             : format == 1 ? "jsonl"
                           : "rdprec");
    if (monitor_mkdirs(dir) != ERR_OK) {
        snprintf(msg, sizeof(msg), "cannot create the recording folder %s: %s",
                 dir, strerror(errno));
    } else if ((fd = open(path,
                          O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                          0640)) < 0) {
        snprintf(msg, sizeof(msg), "cannot create the recording %s: %s", path,
                 strerror(errno));
    }
    if (fd >= 0 && fchmod(fd, 0640) != 0) {
        snprintf(msg, sizeof(msg), "cannot set the mode of %s: %s", path,
                 strerror(errno));
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        log_error("session %s: %s", row_id, msg);
        (void)(buf_put_u8(m->rep, 0) || buf_put_cstring(m->rep, msg));
        monitor_reply(m, c, MP_RECORD_OPEN_REPLY, -1);
        return ERR_OK;
    }
    free(row->rec_path);
    row->rec_path = strdup(path);
    /* watched by monitor_check_recordings(); an empty one is removed at
     * the session's end (monitor_session_end) */
    row->rec_max = (uint64_t)(format == 2 ? m->cfg->record_rdp_max_mb
                                          : m->cfg->record_ssh_max_mb) *
                   1024 * 1024;
    if (row->rec_fd >= 0) {
        close(row->rec_fd);
    }
    row->rec_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (store_session_set_recording(m->store, row_id, path, 0, "") != ERR_OK) {
        log_error("session %s: cannot store the recording path", row_id);
    }
    /* the size limit ([record] rdp_max_mb or ssh_max_mb) */
    (void)(buf_put_u8(m->rep, 1) || buf_put_cstring(m->rep, "") ||
           buf_put_u64(m->rep, row->rec_max));
    monitor_reply(m, c, MP_RECORD_OPEN_REPLY, fd);
    close(fd);
    return ERR_OK;
}

static int monitor_session_end(struct monitor *m, struct mchild *c,
                               struct buf *req)
{
    char row[STORE_ID_MAX + 1] = "", result[STORE_RESULT_MAX + 1] = "",
                            sha[65] = "";
    struct mchild_row *r;
    uint64_t up = 0, down = 0, rec_size = 0;
    uint32_t exit1 = 0;
    struct stat st;
    bool recorded;

    if (c->state != MC_AUTHED ||
        buf_get_cstring_into(req, row, sizeof(row)) != ERR_OK ||
        buf_get_u64(req, &up) != ERR_OK || buf_get_u64(req, &down) != ERR_OK ||
        buf_get_u32(req, &exit1) != ERR_OK ||
        buf_get_cstring_into(req, result, sizeof(result)) != ERR_OK ||
        buf_get_u64(req, &rec_size) != ERR_OK ||
        buf_get_cstring_into(req, sha, sizeof(sha)) != ERR_OK ||
        buf_expect_end(req) != ERR_OK || !monitor_result_ok(result) ||
        (r = monitor_row_find(c, row)) == NULL) {
        return ERR_PROTO;
    }
    recorded = r->rec_opened && r->rec_path != NULL;
    if (recorded && strncmp(result, "ok", 2) != 0 && r->rec_fd >= 0 &&
        fstat(r->rec_fd, &st) == 0 && st.st_size == 0) {
        /* The session failed before anything was recorded (the target
         * refused, say): the children write nothing until the target is
         * reached, so the file is empty. It is removed and the row links
         * no recording, rather than pointing at an empty file. Seen
         * through our own descriptor, so a child cannot have a file
         * with anything in it removed. */
        if (unlink(r->rec_path) != 0) {
            log_warn("session %s: cannot remove the empty recording %s: %s",
                     row, r->rec_path, strerror(errno));
        } else if (store_session_set_recording(m->store, row, "", 0, "") !=
                   ERR_OK) {
            log_error("session %s: cannot clear the recording path", row);
        }
        recorded = false;
        rec_size = 0;
        sha[0] = '\0';
    }
    if (!recorded && r->record && strncmp(result, "ok", 2) == 0) {
        /* Policy said record and nothing was: never report that as ok. */
        snprintf(result, sizeof(result), "error: session was not recorded");
    }
    monitor_row_close(m, row, util_now(), up, down,
                      exit1 == 0 ? -1 : (int)(exit1 - 1), result,
                      recorded ? r->rec_path : NULL, rec_size, sha);
    (void)monitor_row_take(c, row);
    monitor_audit(m, c, c->user_name, "session.end", row, result);
    log_info("session %s ended: %s, %llu bytes up, %llu down", row, result,
             (unsigned long long)up, (unsigned long long)down);
    monitor_reply(m, c, MP_ACK, -1);
    return ERR_OK;
}

/* Which children may send a request: the SSH proxy's, the RDP proxy's,
 * or both. A child asking for the other kind's request is compromised. */
#define MONITOR_SSH 1u
#define MONITOR_RDP 2u
#define MONITOR_BOTH (MONITOR_SSH | MONITOR_RDP)

/*
 * The request table: which kind of child may send each request (checked
 * here, in monitor_request, before the handler runs); each handler
 * checks the states in which its request is permitted (see monitor.h)
 * and parses its payload strictly; anything not listed here ends the
 * child. An RDP child has no key exchange (KEX_SIGN would make the SSH
 * host key sign bytes it chose), no public-key login and no TOTP
 * question (its code comes in the user name); an SSH child has no NTLM.
 * AUTHORIZE checks the kind of session against the kind of child itself.
 */
static const struct {
    uint8_t type;
    unsigned who; /* MONITOR_SSH, MONITOR_RDP or both */
    int (*fn)(struct monitor *m, struct mchild *c, struct buf *req);
} monitor_table[] = {
    {MP_AUTH_PASSWORD, MONITOR_BOTH, monitor_auth_password},
    {MP_AUTH_PUBKEY, MONITOR_SSH, monitor_auth_pubkey},
    {MP_KEX_SIGN, MONITOR_SSH, monitor_kex_sign},
    {MP_RDP_NTLM, MONITOR_RDP, monitor_rdp_ntlm},
    {MP_AUTH_TOTP, MONITOR_SSH, monitor_auth_totp},
    {MP_AUTHORIZE, MONITOR_BOTH, monitor_authorize},
    {MP_CONNECT, MONITOR_BOTH, monitor_connect},
    {MP_HOSTKEY, MONITOR_BOTH, monitor_hostkey},
    {MP_CREDENTIALS, MONITOR_BOTH, monitor_credentials},
    /* no RDP recording yet (the RDP child refuses sessions that must be
     * recorded); open to both for the recording to come */
    {MP_RECORD_OPEN, MONITOR_BOTH, monitor_record_open},
    {MP_SESSION_END, MONITOR_BOTH, monitor_session_end},
};

int monitor_request(struct monitor *m, struct mchild *c, uint8_t type,
                    struct buf *req)
{
    int r;

    if (c->state == MC_DEAD) {
        return ERR_PROTO;
    }
    buf_reset(m->rep);
    r = ERR_PROTO;
    /* a request while a store job of this child runs cannot come from
     * its socket (not read meanwhile; monitor_job_start): refused */
    for (size_t k = 0; !c->store_pending &&
                       k < sizeof(monitor_table) / sizeof(monitor_table[0]);
         k++) {
        if (monitor_table[k].type == type) {
            if (monitor_table[k].who & (c->rdp ? MONITOR_RDP : MONITOR_SSH)) {
                r = monitor_table[k].fn(m, c, req);
            }
            break;
        }
    }
    buf_reset(req);
    if (r != ERR_OK) {
        log_warn("child %ld sent a bad request (type %u); ending it",
                 (long)c->pid, type);
        if (c->state != MC_DEAD) {
            (void)monitor_child_state(m, c, MC_DEAD);
        }
    }
    return r;
}

void monitor_child_exit(struct monitor *m, pid_t pid, int status)
{
    struct mchild_row *row;
    struct mchild **pp, *c = NULL;
    char result[200];
    int64_t now = util_now();

    for (pp = &m->children; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->pid == pid) {
            c = *pp;
            *pp = c->next;
            break;
        }
    }
    if (c == NULL) {
        return;
    }

    if (c->end_result[0] != '\0') {
        snprintf(result, sizeof(result), "%s", c->end_result);
    } else if (status == -1) {
        snprintf(result, sizeof(result), "error: server shut down");
    } else if (WIFSIGNALED(status)) {
        snprintf(result, sizeof(result),
                 "error: session process ended by signal %d", WTERMSIG(status));
    } else {
        snprintf(result, sizeof(result),
                 "error: session process ended "
                 "without closing the session");
    }
    while ((row = c->rows) != NULL) {
        c->rows = row->next;
        monitor_row_close(m, row->id, now, 0, 0, -1, result, NULL, 0, NULL);
        monitor_audit(m, c, c->user_name, "session.end", row->id, result);
        log_info("session %s: %s", row->id, result);
        monitor_row_free(row);
    }
    if (monitor_state_preauth(c->state)) {
        if (c->tried) {
            monitor_row_refused(m, c, c->rdp ? "rdp" : "", c->login.asset, NULL,
                                c->last_fail[0]
                                    ? c->last_fail
                                    : "denied: authentication not completed");
        }
    }
    (void)monitor_child_state(m, c, MC_GONE);
    monitor_child_free(m, c);
}

/* A message (or EOF) on a child's monitor socket. */
static void monitor_on_child(struct loop *l, int fd, int events, void *arg)
{
    struct mchild *c = arg;
    struct monitor *m = c->mon;
    uint8_t type = 0;
    int r;

    r = mproto_recv(c->fd, &type, m->req, NULL);
    if (r == ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
    }
    if (r != ERR_OK) {
        /* Closed (the child is exiting) or garbage (oversize, truncated,
         * an unexpected descriptor): stop listening; the spawner's exit
         * report cleans up. Garbage is a protocol violation. */
        if (!(r == ERR_IO && errno == 0)) {
            log_warn("child %ld sent a malformed message; ending it",
                     (long)c->pid);
            kill(c->pid, SIGKILL);
        }
        loop_del_fd(l, c->fd);
        close(c->fd);
        c->fd = -1;
        return;
    }
    (void)monitor_request(m, c, type, m->req);
}
