/*
 * The agent hub: WebSocket plumbing, the agents' libssh server sessions,
 * authentication, the announcement, liveness and the registry of online
 * agents. See hub.h and hub_internal.h; streams are in hub_stream.c.
 *
 * Liveness (docs/agent-protocol.md §1.5): one sweep timer a second walks
 * every connection: a PING goes to one silent for [agent]
 * keepalive_seconds, a connection silent for timeout_seconds is closed,
 * as is one that has not authenticated / announced within
 * HUB_HANDSHAKE_MS. Any received frame or PONG counts as a sign of life.
 */
#include "hub/hub_internal.h"
#include "store/jobs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "common/secret.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "store/audit.h"

#define HUB_SWEEP_MS 1000
#define HUB_REFUSE_LINGER_MS 1000
/* for a closing connection to get its close out */
#define HUB_CLOSE_GRACE_S 2

struct hub_pss {
    struct hub_agent *a;
};

static void hub_agent_free(struct hub_agent *a);

/* --- the registry of online agents --- */

static size_t hub_bucket(const char *id)
{
    uint64_t x;

    crypto_shorthash((unsigned char *)&x, (const unsigned char *)id, strlen(id),
                     (const unsigned char *)"portcullis-hub!!");
    return (size_t)(x % HUB_BUCKETS);
}

struct hub_agent *hub_find_online(const struct hub *h, const char *id)
{
    struct hub_agent *a;

    if (id == NULL || id[0] == '\0') {
        return NULL;
    }
    for (a = h->online[hub_bucket(id)]; a != NULL; a = a->hnext) {
        if (strcmp(a->id, id) == 0) {
            return a;
        }
    }
    return NULL;
}

static void hub_online_remove(struct hub_agent *a)
{
    struct hub_agent **pp;

    for (pp = &a->h->online[hub_bucket(a->id)]; *pp != NULL;
         pp = &(*pp)->hnext) {
        if (*pp == a) {
            *pp = a->hnext;
            a->hnext = NULL;
            a->h->nonline--;
            return;
        }
    }
}

bool hub_agent_online(const struct hub *h, const char *agent_id)
{
    return h != NULL && hub_find_online(h, agent_id) != NULL;
}

size_t hub_agents_online(const struct hub *h)
{
    return h != NULL ? h->nonline : 0;
}

void hub_set_presence_fn(struct hub *h, hub_presence_fn fn, void *arg)
{
    h->presence = fn;
    h->presence_arg = arg;
}

void hub_set_auth_fn(struct hub *h, hub_auth_fn fn, void *arg)
{
    h->authed = fn;
    h->authed_arg = arg;
}

void hub_set_change_fn(struct hub *h, hub_change_fn fn, void *arg)
{
    h->change = fn;
    h->change_arg = arg;
}

/* --- closing --- */

void hub_agent_close(struct hub_agent *a, const char *why, int64_t ms)
{
    if (a->dead) {
        return;
    }
    if (ms > 0) {
        if (a->close_at_ms == 0) {
            a->close_at_ms = util_mono_ms() + ms;
        }
        return;
    }
    a->dead = true;
    if (why != NULL) {
        log_info("agent %s (%s): disconnected: %s", a->id[0] ? a->id : "-",
                 a->remote, why);
    }
    if (a->wsi != NULL) {
        /* The WRITEABLE callback of a dead agent returns -1, which makes
         * libwebsockets close the connection and call WSI_DESTROY, where
         * the agent is freed. A peer that reads nothing never makes its
         * socket writable again: libwebsockets kills it after a grace. */
        lws_callback_on_writable(a->wsi);
        lws_set_timeout(a->wsi, PENDING_TIMEOUT_CLOSE_SEND, HUB_CLOSE_GRACE_S);
    } else {
        hub_agent_free(a);
    }
}

/* Everything of a, once libwebsockets has let go of its wsi. */
static void hub_agent_free(struct hub_agent *a)
{
    struct hub *h = a->h;
    bool was_online = hub_find_online(h, a->id) == a;

    a->state = HA_CLOSING;
    /* its store work in flight forgets it (an announcement that may
     * write it online is followed by its offline write) */
    hub_store_detach(a);
    if (a->auth_msg != NULL) {
        ssh_message_free(a->auth_msg);
        a->auth_msg = NULL;
    }
    if (was_online) {
        hub_online_remove(a);
        hub_offline_store(h, a->id);
        log_info("agent %s (%s) is offline", a->id, a->remote);
    }
    hub_streams_drop(a, "agent disconnected");
    if (a->fqueued) {
        struct hub_agent **pp = &h->flush;

        while (*pp != NULL && *pp != a) {
            pp = &(*pp)->fnext;
        }
        if (*pp == a) {
            *pp = a->fnext;
        }
        a->fqueued = false;
    }
    if (was_online && h->presence != NULL) {
        h->presence(h->presence_arg, a->id, false);
    }
    if (a->ann_ch != NULL) {
        ssh_remove_channel_callbacks(a->ann_ch, &a->ann_cb);
        ssh_channel_free(a->ann_ch);
        a->ann_ch = NULL;
    }
    if (a->ev != NULL) {
        if (a->s != NULL) {
            ssh_event_remove_session(a->ev, a->s);
        }
        ssh_event_free(a->ev);
    }
    if (a->s != NULL) {
        ssh_free(a->s);
    }
    if (a->fd_ssh >= 0) {
        loop_del_fd(h->loop, a->fd_ssh);
        close(a->fd_ssh);
    }
    if (a->fd_ws >= 0) {
        loop_del_fd(h->loop, a->fd_ws);
        close(a->fd_ws);
    }
    if (a->prev != NULL) {
        a->prev->next = a->next;
    } else {
        h->agents = a->next;
    }
    if (a->next != NULL) {
        a->next->prev = a->prev;
    }
    h->nconns--;
    free(a->in);
    free(a->out);
    if (a->ann_buf != NULL) {
        free(a->ann_buf);
    }
    free(a);
}

/* --- fd_ws: between the WebSocket and the socketpair --- */

static void hub_on_ws_fd(struct loop *l, int fd, int events, void *arg);

/*
 * Backpressure toward the agent. Everything the hub sends the agent
 * passes through three bounded places (libssh's socket, the socketpair,
 * one frame in a->out) and one unbounded one: libssh's own output
 * buffer, which grows whenever libssh answers something (a global
 * request, an auth attempt, a channel open or request) while the
 * socketpair is full. A peer that sends requests but never reads the
 * answers would grow it without end. So the hub reads from the agent
 * only while its way to the agent drains: not while bytes from the agent
 * wait to enter the socketpair (a->in), and not while an outgoing frame
 * waits for the WebSocket and libssh has bytes it could not write. What
 * libssh then still answers is bounded by what the socketpair already
 * holds. (libwebsockets itself stops reading a peer whose socket is full.)
 * A peer that reads nothing is therefore silent to the hub and dropped
 * after [agent] timeout_seconds (hub_sweep).
 */
static void hub_rx_flow(struct hub_agent *a)
{
    bool pause;

    if (a->dead || a->wsi == NULL) {
        return;
    }
    pause = a->in_len > a->in_off ||
            (a->out_len > 0 && a->s != NULL &&
             (ssh_get_poll_flags(a->s) & SSH_WRITE_PENDING) != 0);
    if (pause != a->rx_paused) {
        a->rx_paused = pause;
        lws_rx_flow_control(a->wsi, pause ? 0 : 1);
    }
}

/* fd_ws events: readable while no outgoing frame waits, writable while
 * received bytes wait. */
static void hub_ws_watch(struct hub_agent *a)
{
    int ev = 0;

    if (a->dead || a->fd_ws < 0) {
        return;
    }
    hub_rx_flow(a);
    if (a->out_len == 0) {
        ev |= LOOP_READ;
    }
    if (a->in_len > a->in_off) {
        ev |= LOOP_WRITE;
    }
    if (loop_fd_events(a->h->loop, a->fd_ws) != ev) {
        (void)loop_set_fd(a->h->loop, a->fd_ws, ev, hub_on_ws_fd, a);
    }
}

/* Bytes from the agent: into the socketpair, or held (and the WebSocket
 * paused) while it is full. */
static int hub_ws_receive(struct hub_agent *a, const uint8_t *p, size_t len)
{
    ssize_t n = 0;

    if (a->in_len == a->in_off) {
        n = write(a->fd_ws, p, len);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                return -1;
            }
            n = 0;
        }
        if ((size_t)n == len) {
            return 0;
        }
    }
    /* keep the rest */
    if (a->in_off > 0) {
        memmove(a->in, a->in + a->in_off, a->in_len - a->in_off);
        a->in_len -= a->in_off;
        a->in_off = 0;
    }
    {
        uint8_t *grown = realloc(a->in, a->in_len + (len - (size_t)n));

        if (grown == NULL) {
            return -1;
        }
        a->in = grown;
    }
    memcpy(a->in + a->in_len, p + n, len - (size_t)n);
    a->in_len += len - (size_t)n;
    hub_ws_watch(a); /* pauses rx */
    return 0;
}

/*
 * Whether a frame read from the socketpair may be written to the WebSocket
 * at once, from the loop's handler rather than from libwebsockets'
 * WRITEABLE callback: when nothing else waits for that callback (a PING)
 * and the socket takes bytes now (lws_send_pipe_choked: nothing of an
 * earlier write buffered in libwebsockets, and poll() says writable). A
 * write that the socket takes only in part is kept and finished by
 * libwebsockets itself, which then holds back the WRITEABLE callback
 * until it is out, so frames stay in order. Writing at once saves a
 * round through the loop per frame (asking for the callback, an
 * epoll_ctl each way for POLLOUT, a wake-up) and keeps the socketpair's
 * read watch from being paused and resumed for every frame: most of the
 * hub's system calls under many small requests through agent tunnels
 * (bench/README.md). Otherwise the frame waits for the callback.
 */
static bool hub_ws_send_now(struct hub_agent *a)
{
    if (a->wsi == NULL) {
        return false;
    }
    if (a->ping_wanted || lws_send_pipe_choked(a->wsi)) {
        lws_callback_on_writable(a->wsi);
        return false;
    }
    return true;
}

static void hub_on_ws_fd(struct loop *l, int fd, int events, void *arg)
{
    struct hub_agent *a = arg;
    ssize_t n;

    if (a->dead) {
        return;
    }
    if ((events & LOOP_WRITE) && a->in_len > a->in_off) {
        n = write(fd, a->in + a->in_off, a->in_len - a->in_off);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            hub_agent_close(a, "internal socket failed", 0);
            return;
        }
        if (n > 0) {
            a->in_off += (size_t)n;
        }
        if (a->in_off == a->in_len) {
            free(a->in);
            a->in = NULL;
            a->in_len = a->in_off = 0;
        }
    }
    if ((events & LOOP_READ) && a->out_len == 0) {
        a->out_seen = a->cnt.out_bytes; /* read now: not again at turn end */
        if (a->out == NULL &&
            (a->out = malloc(LWS_PRE + HUB_FRAME_MAX)) == NULL) {
            hub_agent_close(a, "out of memory", 0);
            return;
        }
        for (;;) {
            n = read(fd, a->out + LWS_PRE, HUB_FRAME_MAX);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                /* libssh closed its end: the session is over */
                hub_agent_close(a, NULL, 0);
                return;
            }
            if (n < 0) {
                break;
            }
            a->out_len = (size_t)n;
            if (!hub_ws_send_now(a)) {
                break; /* sent by the WRITEABLE callback */
            }
            if (lws_write(a->wsi, a->out + LWS_PRE, a->out_len,
                          LWS_WRITE_BINARY) < (int)a->out_len) {
                hub_agent_close(a, "WebSocket write failed", 0);
                return;
            }
            a->out_len = 0;
            if (n < HUB_FRAME_MAX) {
                break; /* drained, most likely; the watch says if not */
            }
        }
        if (a->out_len == 0) {
            free(a->out);
            a->out = NULL;
        }
    }
    hub_ws_watch(a);
}

static int hub_ws_writeable(struct hub_agent *a)
{
    /* a PING with a payload: libwebsockets 4.1 delivers the PONG of an
     * empty PING to no callback */
    uint8_t ping[LWS_PRE + 4] = {0};

    if (a->ping_wanted) {
        a->ping_wanted = false;
        a->ping_sent_ms = util_mono_ms();
        log_debug("agent %s (%s): PING", a->id[0] ? a->id : "-", a->remote);
        memcpy(ping + LWS_PRE, "pc", 2);
        if (lws_write(a->wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0) {
            return -1;
        }
        if (a->out_len > 0) {
            lws_callback_on_writable(a->wsi);
        }
        return 0;
    }
    if (a->out_len == 0) {
        return 0;
    }
    if (lws_write(a->wsi, a->out + LWS_PRE, a->out_len, LWS_WRITE_BINARY) <
        (int)a->out_len) {
        return -1;
    }
    a->out_len = 0;
    free(a->out);
    a->out = NULL;
    hub_ws_watch(a);
    /* more may be waiting already */
    hub_on_ws_fd(a->h->loop, a->fd_ws, LOOP_READ, a);
    return a->dead ? -1 : 0;
}

/*
 * The end of a loop turn: what libssh wrote into the socketpair during the
 * turn leaves now, one frame per agent. Read from fd_ws's read event
 * instead, packets written by two handlers of one turn (the window
 * adjustment libssh sends when a stream's status arrives, and the
 * client's first bytes) went out as two frames, each a send() and a turn
 * of the agent's loop, and fd_ws woke the loop once more after each
 * handler that wrote (bench/README.md, sixth round). libssh's byte
 * counter says which agents' libssh wrote, so the others cost nothing;
 * fd_ws's read event stays as the fallback for what a full frame or a
 * busy WebSocket left behind.
 */
static void hub_turn_end(struct loop *l, void *arg)
{
    struct hub *h = arg;
    struct hub_agent *a;

    while ((a = h->flush) != NULL) {
        h->flush = a->fnext;
        a->fnext = NULL;
        a->fqueued = false;
        if (a->dead || a->fd_ws < 0 || a->out_len > 0 ||
            a->cnt.out_bytes == a->out_seen) {
            continue;
        }
        a->out_seen = a->cnt.out_bytes;
        hub_on_ws_fd(l, a->fd_ws, LOOP_READ, a);
    }
}

/* --- fd_ssh: libssh's side --- */

static void hub_on_ssh_fd(struct loop *l, int fd, int events, void *arg)
{
    hub_agent_service(arg);
}

void hub_agent_watch(struct hub_agent *a)
{
    int ev = LOOP_READ;

    if (a->dead || a->fd_ssh < 0 || a->s == NULL) {
        return;
    }
    if (!a->fqueued && a->cnt.out_bytes != a->out_seen) {
        a->fqueued = true;
        a->fnext = a->h->flush;
        a->h->flush = a;
    }
    if (ssh_get_poll_flags(a->s) & SSH_WRITE_PENDING) {
        ev |= LOOP_WRITE;
    }
    hub_rx_flow(a);
    if (loop_fd_events(a->h->loop, a->fd_ssh) == 0) {
        (void)loop_add_fd(a->h->loop, a->fd_ssh, ev, hub_on_ssh_fd, a);
    } else if (loop_fd_events(a->h->loop, a->fd_ssh) != ev) {
        (void)loop_mod_fd(a->h->loop, a->fd_ssh, ev);
    }
}

/* --- authentication --- */

/* Every failed attempt of any method counts, `none` included (OpenSSH's
 * MaxAuthTries): a peer cannot make the hub answer failures forever.
 * Inside a libssh callback: hub_agent_close only marks the agent. */
static void hub_auth_failed(struct hub_agent *a)
{
    if (++a->auth_attempts >= HUB_AUTH_ATTEMPTS) {
        hub_agent_close(a, "too many authentication attempts", 0);
    }
}

/* Messages no other callback took once the agent is authenticated:
 * libssh's default answer (a failure), and auth requests count as failed
 * attempts. */
static int hub_on_message(ssh_session s, ssh_message msg, void *userdata)
{
    struct hub_agent *a = userdata;

    if (ssh_message_type(msg) == SSH_REQUEST_AUTH) {
        hub_auth_failed(a);
    }
    return 1;
}

static ssh_channel hub_open_session(ssh_session s, void *userdata);

/*
 * Authentication, answered later (docs/architecture.md "The hub's store
 * work"). libssh's auth callbacks must answer before they return, which
 * would make the credential lookup a statement on the loop. So until the
 * agent is in, its session has neither server callbacks nor a message
 * callback: libssh then queues every request as an ssh_message, which
 * hub_auth_messages takes after each poll. A password attempt's message
 * is kept while its lookup runs on the hub's reads worker
 * (hub_auth_lookup) and answered when it comes back (hub_auth_result):
 * ssh_message_auth_reply_success or the default failure. Only one
 * attempt may be in flight per connection: another auth request
 * meanwhile ends the connection (our agent waits for each answer; one
 * that does not is not ours).
 */
static void hub_auth_messages(struct hub_agent *a)
{
    ssh_message m;

    while (!a->dead && a->kill_why == NULL && a->state == HA_AUTH &&
           (m = ssh_message_get(a->s)) != NULL) {
        const char *user, *password;

        if (ssh_message_type(m) != SSH_REQUEST_AUTH) {
            (void)ssh_message_reply_default(m);
            ssh_message_free(m);
            continue;
        }
        if (a->auth_msg != NULL) {
            ssh_message_free(m);
            a->kill_why = "authentication requests while one is checked";
            return;
        }
        if (ssh_message_subtype(m) != SSH_AUTH_METHOD_PASSWORD) {
            /* none, publickey, keyboard-interactive, ... */
            (void)ssh_message_reply_default(m);
            ssh_message_free(m);
            hub_auth_failed(a);
            continue;
        }
        user = ssh_message_auth_user(m);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        /* deprecated for the callbacks, which answer at once */
        password = ssh_message_auth_password(m);
#pragma GCC diagnostic pop
        a->auth_msg = m;
        switch (hub_auth_lookup(a, user, password)) {
        case ERR_OK:
            break; /* answered (inline: already) by hub_auth_result */
        case ERR_DENIED:
            a->auth_msg = NULL;
            ssh_message_free(m);
            if (!a->h->auth_full) {
                /* said once until there is room again */
                a->h->auth_full = true;
                log_warn("agent connection %s: %d password lookups in "
                         "flight already; connections that ask for more "
                         "are closed unanswered",
                         a->remote, HUB_AUTH_INFLIGHT);
            }
            a->kill_why = "too many authentications in flight";
            return;
        default:
            a->auth_msg = NULL;
            ssh_message_free(m);
            a->kill_why = "out of memory";
            return;
        }
    }
}

void hub_auth_result(struct hub_agent *a, int result, const char *cred_id)
{
    ssh_message m = a->auth_msg;

    a->auth_msg = NULL;
    if (a->dead || m == NULL) {
        ssh_message_free(m);
        return;
    }
    if (result == ERR_OK) {
        snprintf(a->cred_id, sizeof(a->cred_id), "%s", cred_id);
        a->state = HA_ANNOUNCE;
        a->started_ms = util_mono_ms(); /* the announcement's deadline */
        /* from now on libssh's callbacks take the requests */
        memset(&a->server_cb, 0, sizeof(a->server_cb));
        a->server_cb.userdata = a;
        a->server_cb.channel_open_request_session_function = hub_open_session;
        ssh_callbacks_init(&a->server_cb);
        ssh_set_server_callbacks(a->s, &a->server_cb);
        ssh_set_message_callback(a->s, hub_on_message, a);
        (void)ssh_message_auth_reply_success(m, 0);
        ssh_message_free(m);
        if (a->h->authed != NULL && a->wsi != NULL) {
            a->h->authed(a->h->authed_arg, a->wsi);
        }
    } else if (result == ERR_AUTH || result == ERR_NOT_FOUND) {
        (void)ssh_message_reply_default(m);
        ssh_message_free(m);
        log_info("agent connection %s: credential refused (%s)", a->remote,
                 result == ERR_AUTH ? "wrong secret" : "unknown credential ID");
        if (++a->auth_failures >= HUB_AUTH_TRIES) {
            a->kill_why = "too many failed authentications";
        } else {
            hub_auth_failed(a);
        }
    } else {
        /* the database did not answer: not the agent's fault, no try
         * spent; it comes back after its back-off */
        ssh_message_free(m);
        log_warn("agent connection %s: cannot look up its credential: %s",
                 a->remote, err_str(result));
        a->kill_why = "the store cannot be read now";
    }
    if (!a->in_service) {
        hub_agent_service(a); /* sends the answer (or closes) */
    }
}

/* --- the announcement channel --- */

static int hub_ann_subsystem(ssh_session s, ssh_channel ch,
                             const char *subsystem, void *userdata)
{
    struct hub_agent *a = userdata;

    if (a->ann_subsystem || subsystem == NULL ||
        strcmp(subsystem, HUB_ANNOUNCE_SUBSYSTEM) != 0) {
        return 1;
    }
    a->ann_subsystem = true;
    return 0;
}

static int hub_ann_data(ssh_session s, ssh_channel ch, void *data, uint32_t len,
                        int is_stderr, void *userdata)
{
    struct hub_agent *a = userdata;

    if (!a->ann_subsystem || is_stderr || a->ann_eof ||
        a->ann_len + len > HUB_ANNOUNCE_MAX) {
        a->ann_bad = true;
        return (int)len;
    }
    if (a->ann_buf == NULL && (a->ann_buf = malloc(HUB_ANNOUNCE_MAX)) == NULL) {
        a->ann_bad = true;
        return (int)len;
    }
    memcpy(a->ann_buf + a->ann_len, data, len);
    a->ann_len += len;
    return (int)len;
}

static void hub_ann_eof(ssh_session s, ssh_channel ch, void *userdata)
{
    struct hub_agent *a = userdata;

    a->ann_eof = true;
}

static void hub_ann_close(ssh_session s, ssh_channel ch, void *userdata)
{
    struct hub_agent *a = userdata;

    if (!a->ann_done) {
        a->ann_bad = true;
    }
}

static ssh_channel hub_open_session(ssh_session s, void *userdata)
{
    struct hub_agent *a = userdata;

    if (a->state != HA_ANNOUNCE || a->ann_ch != NULL) {
        log_info("agent %s (%s): refused a session channel it opened",
                 a->id[0] ? a->id : "-", a->remote);
        return NULL;
    }
    if ((a->ann_ch = ssh_channel_new(s)) == NULL) {
        return NULL;
    }
    memset(&a->ann_cb, 0, sizeof(a->ann_cb));
    a->ann_cb.userdata = a;
    a->ann_cb.channel_subsystem_request_function = hub_ann_subsystem;
    a->ann_cb.channel_data_function = hub_ann_data;
    a->ann_cb.channel_eof_function = hub_ann_eof;
    a->ann_cb.channel_close_function = hub_ann_close;
    ssh_callbacks_init(&a->ann_cb);
    ssh_set_channel_callbacks(a->ann_ch, &a->ann_cb);
    return a->ann_ch;
}

/* Answers the announcement channel: exit status, EOF, close. */
static void hub_ann_answer(struct hub_agent *a, int status, const char *line)
{
    char msg[300];

    if (a->ann_ch == NULL) {
        return;
    }
    if (line != NULL) {
        snprintf(msg, sizeof(msg), "error: %s\n", line);
        (void)ssh_channel_write_stderr(a->ann_ch, msg, (uint32_t)strlen(msg));
    }
    (void)ssh_channel_request_send_exit_status(a->ann_ch, status);
    (void)ssh_channel_send_eof(a->ann_ch);
    (void)ssh_channel_close(a->ann_ch);
}

void hub_refuse(struct hub_agent *a, const char *why)
{
    log_info("agent %s (%s): refused: %s", a->id[0] ? a->id : "-", a->remote,
             why);
    hub_ann_answer(a, 1, why);
    a->ann_done = true;
    a->state = HA_CLOSING;
    hub_agent_close(a, NULL, HUB_REFUSE_LINGER_MS);
}

/* A credential announced an ID bound to another one (a takeover attempt,
 * or an agent moved to a new credential without a rebind): refused, and
 * an audit event, since only an administrator can settle it. */
void hub_refuse_bound(struct hub_agent *a, const char *id, const char *bound)
{
    char actor[STORE_ID_MAX + 16], detail[STORE_ID_MAX * 2 + 64];

    snprintf(actor, sizeof(actor), "credential:%s", a->cred_id);
    snprintf(detail, sizeof(detail),
             "agent id bound to another credential (%s); from %s", bound,
             a->remote);
    if (audit_write(a->h->store, actor, a->ip, "agent.refused", id, detail) !=
        ERR_OK) {
        log_warn("agent %s (%s): cannot write the audit event", id, a->remote);
    }
    log_warn("agent %s (%s): credential %s refused: agent id bound to "
             "another credential (%s)",
             id, a->remote, a->cred_id, bound);
    hub_refuse(a, HUB_BOUND_REASON);
}

/* The ID is in use by another connection here: probe the one we have
 * (if it is dead, it goes within the keepalive interval and the next
 * attempt succeeds), and refuse. */
void hub_announce_in_use(struct hub_agent *a, const char *id)
{
    struct hub *h = a->h;
    struct hub_agent *other = hub_find_online(h, id);

    if (other != NULL && other->probe_until_ms == 0) {
        other->probe_until_ms =
            util_mono_ms() + (int64_t)h->cfg->agent_keepalive_seconds * 1000;
        other->ping_wanted = true;
        if (other->wsi != NULL) {
            lws_callback_on_writable(other->wsi);
        }
    }
    a->id[0] = '\0';
    hub_refuse(a, "agent id already in use");
}

/* --- announcing agents' claims on their IDs (while the store work of
 * their announcement runs, no other connection may announce the same) */

struct hub_agent *hub_find_claim(const struct hub *h, const char *id)
{
    for (struct hub_agent *a = h->claims[hub_bucket(id)]; a != NULL;
         a = a->cnext) {
        if (strcmp(a->ann_id, id) == 0) {
            return a;
        }
    }
    return NULL;
}

static void hub_claim_add(struct hub_agent *a)
{
    size_t b = hub_bucket(a->ann_id);

    a->cnext = a->h->claims[b];
    a->h->claims[b] = a;
    a->h->nclaims++;
    a->ann_claimed = true;
}

void hub_claim_remove(struct hub_agent *a)
{
    struct hub_agent **pp;

    if (!a->ann_claimed) {
        return;
    }
    for (pp = &a->h->claims[hub_bucket(a->ann_id)]; *pp != NULL;
         pp = &(*pp)->cnext) {
        if (*pp == a) {
            *pp = a->cnext;
            a->cnext = NULL;
            a->h->nclaims--;
            break;
        }
    }
    a->ann_claimed = false;
}

static void hub_announce_finish(struct hub_agent *a)
{
    struct hub *h = a->h;
    struct hub_announce ann;
    struct store_agent *sa;
    enum hub_ann_write w = HUB_ANN_W_YES;
    char why[200], msg[260];

    if (a->ann_job != NULL) {
        return; /* its store work runs */
    }
    if (a->ann_bad || !a->ann_subsystem) {
        hub_refuse(a, "bad announcement: not as the protocol says");
        return;
    }
    if (hub_announce_parse(a->ann_buf, a->ann_len, &ann, why, sizeof(why)) !=
        ERR_OK) {
        snprintf(msg, sizeof(msg), "bad announcement: %s", why);
        hub_refuse(a, msg);
        return;
    }
    free(a->ann_buf);
    a->ann_buf = NULL;
    if ((sa = calloc(1, sizeof(*sa))) == NULL) {
        hub_refuse(a, "out of memory");
        return;
    }
    /* What the store is asked (hub_store.c): the binding first (a
     * credential that does not own the ID learns nothing else, not even
     * whether it is online, and cannot make the hub probe the real
     * agent), then, unless the ID is in use here or the hub is full, the
     * credential (it may have gone since the login) and the online write. */
    if (hub_find_online(h, ann.id) != NULL || hub_find_claim(h, ann.id)) {
        w = HUB_ANN_W_IN_USE;
    } else if (h->nonline + h->nclaims >= (size_t)h->cfg->agent_max) {
        w = HUB_ANN_W_FULL;
    }
    snprintf(sa->id, sizeof(sa->id), "%s", ann.id);
    snprintf(sa->credential_id, sizeof(sa->credential_id), "%s", a->cred_id);
    snprintf(sa->name, sizeof(sa->name), "%s", ann.name);
    snprintf(sa->hostname, sizeof(sa->hostname), "%s", ann.hostname);
    snprintf(sa->os, sizeof(sa->os), "%s", ann.os);
    snprintf(sa->kernel, sizeof(sa->kernel), "%s", ann.kernel);
    snprintf(sa->arch, sizeof(sa->arch), "%s", ann.arch);
    snprintf(sa->version, sizeof(sa->version), "%s", ann.version);
    snprintf(sa->addresses, sizeof(sa->addresses), "%s", ann.addresses);
    snprintf(sa->tags, sizeof(sa->tags), "%s", ann.tags);
    snprintf(sa->remote_addr, sizeof(sa->remote_addr), "%s", a->remote);
    snprintf(a->ann_id, sizeof(a->ann_id), "%s", ann.id);
    if (w == HUB_ANN_W_YES) {
        hub_claim_add(a);
    }
    if (hub_announce_store(a, sa, w) != ERR_OK) {
        hub_claim_remove(a);
        hub_refuse(a, "out of memory");
    }
    free(sa);
}

/* The store has the agent online: so has the hub. */
void hub_announce_online(struct hub_agent *a, const struct store_agent *sa)
{
    struct hub *h = a->h;
    size_t b;

    if (a->dead || a->state != HA_ANNOUNCE) {
        /* closing already: the store has it online, so offline follows */
        hub_offline_store(h, sa->id);
        return;
    }
    snprintf(a->id, sizeof(a->id), "%s", sa->id);
    b = hub_bucket(a->id);
    a->hnext = h->online[b];
    h->online[b] = a;
    h->nonline++;
    a->state = HA_ONLINE;
    a->ann_done = true;
    hub_ann_answer(a, 0, NULL);
    log_info("agent %s (%s, %s) is online", a->id, sa->name, a->remote);
    if (h->presence != NULL) {
        h->presence(h->presence_arg, a->id, true);
    }
    hub_jobs_recover(h, a->id);
}

/* --- driving libssh --- */

/* One zero-timeout pass of libssh over a's session; false when the
 * session ended (a is closed then). */
static bool hub_agent_dopoll(struct hub_agent *a)
{
    int rc = ssh_event_dopoll(a->ev, 0);

    if (rc == SSH_ERROR ||
        (ssh_get_status(a->s) & (SSH_CLOSED | SSH_CLOSED_ERROR))) {
        a->in_service = false;
        hub_agent_close(a, "the SSH session ended", 0);
        return false;
    }
    return true;
}

void hub_agent_service(struct hub_agent *a)
{
    int rc;

    if (a->dead || a->in_service) {
        return;
    }
    a->in_service = true;
    if (a->state == HA_KEX) {
        rc = ssh_handle_key_exchange(a->s);
        if (rc == SSH_OK) {
            /* libssh made its socket blocking when it first saw POLLOUT
             * (socket.c does that for every "connecting" socket). A
             * blocking send into a full socketpair whose other end only
             * this loop drains would hang the whole main process, so it
             * goes back to non-blocking: libssh sends only after POLLOUT
             * and takes a partial send as progress. */
            (void)util_set_nonblock(a->fd_ssh);
            sshkex_flush_end(&a->kex_flush);
            a->state = HA_AUTH;
            if (ssh_event_add_session(a->ev, a->s) != SSH_OK) {
                a->in_service = false;
                hub_agent_close(a, "internal error (event)", 0);
                return;
            }
        } else if (rc != SSH_AGAIN) {
            a->in_service = false;
            /* What libssh wrote before it gave up (its KEXINIT, which
             * says to the agent why: sshkex.h) leaves before the close. */
            hub_on_ws_fd(a->h->loop, a->fd_ws, LOOP_READ, a);
            hub_agent_close(a, ssh_get_error(a->s), 0);
            return;
        }
    }
    if (a->state != HA_KEX && !hub_agent_dopoll(a)) {
        return;
    }
    if (!a->dead && a->state == HA_AUTH) {
        hub_auth_messages(a);
    }
    if (!a->dead && a->state == HA_ANNOUNCE && a->ann_ch != NULL &&
        (a->ann_eof || a->ann_bad)) {
        hub_announce_finish(a);
    }
    if (!a->dead && a->ann_done && a->ann_ch != NULL &&
        ssh_channel_is_closed(a->ann_ch)) {
        ssh_remove_channel_callbacks(a->ann_ch, &a->ann_cb);
        ssh_channel_free(a->ann_ch);
        a->ann_ch = NULL;
    }
    if (!a->dead && a->state == HA_ONLINE) {
        /*
         * libssh waits to hear POLLOUT after every packet it sends before
         * it sends the next (SSH_WRITE_PENDING, even with nothing queued).
         * Left to the loop, that is two epoll_ctl calls for the
         * socketpair's POLLOUT and a turn per packet, and a stream's next
         * bytes wait for that turn (hub_stream_note_held). A zero-timeout
         * poll of the socketpair here tells libssh at once, and another
         * pass over the streams follows. Only for a stream held back that
         * way (a poll whenever libssh waits cost more polls than it saved
         * turns with many streams, and stalled a bulk echo); bounded; a
         * socketpair that is really full is left to its POLLOUT.
         */
        a->held = false;
        hub_streams_service(a);
        for (int pass = 0;
             pass < HUB_PASSES && a->held && !a->dead && a->kill_why == NULL &&
             (ssh_get_poll_flags(a->s) & SSH_WRITE_PENDING);
             pass++) {
            uint64_t in0 = a->cnt.in_bytes;

            a->held = false;
            if (!hub_agent_dopoll(a)) {
                return;
            }
            if (a->cnt.in_bytes == in0 &&
                (ssh_get_poll_flags(a->s) & SSH_WRITE_PENDING)) {
                break; /* the socketpair is full: its POLLOUT says when */
            }
            hub_streams_service(a); /* (input read here is only noted) */
        }
    }
    a->in_service = false;
    if (!a->dead && a->kill_why != NULL) {
        hub_agent_close(a, a->kill_why, 0);
        return;
    }
    hub_agent_watch(a);
}

/* --- a new connection --- */

static struct hub_agent *hub_agent_new(struct hub *h, struct lws *wsi)
{
    struct hub_agent *a = calloc(1, sizeof(*a));
    int sv[2], no = 0;
    char ip[64] = "";
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int port = 0;

    if (a == NULL) {
        return NULL;
    }
    a->h = h;
    a->serial = ++h->serials;
    a->wsi = wsi;
    a->fd_ws = a->fd_ssh = -1;
    a->started_ms = a->last_rx_ms = util_mono_ms();
    lws_get_peer_simple(wsi, ip, sizeof(ip));
    snprintf(a->ip, sizeof(a->ip), "%s", ip);
    if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss, &sl) == 0) {
        port = ss.ss_family == AF_INET6
                   ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                   : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    snprintf(a->remote, sizeof(a->remote), "%s:%d", ip, port);
    a->next = h->agents;
    if (h->agents != NULL) {
        h->agents->prev = a;
    }
    h->agents = a;
    h->nconns++;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0) {
        goto fail;
    }
    a->fd_ws = sv[0];
    a->fd_ssh = sv[1];
    if ((a->s = ssh_new()) == NULL || (a->ev = ssh_event_new()) == NULL) {
        goto fail;
    }
    (void)ssh_options_set(a->s, SSH_OPTIONS_PROCESS_CONFIG, &no);
    ssh_set_counters(a->s, &a->cnt, NULL);
    if (ssh_bind_accept_fd(h->bind, a->s, a->fd_ssh) != SSH_OK) {
        log_warn("agent connection %s: %s", a->remote, ssh_get_error(h->bind));
        goto fail;
    }
    /* no server or message callbacks until the agent is in: libssh
     * queues its auth requests for hub_auth_messages */
    sshkex_flush_begin(&a->kex_flush, a->s);
    ssh_set_auth_methods(a->s, SSH_AUTH_METHOD_PASSWORD);
    ssh_set_blocking(a->s, 0);
    hub_ws_watch(a);
    return a;
fail:
    log_warn("agent connection %s: cannot set up a session", a->remote);
    a->wsi = NULL;
    a->dead = true;
    hub_agent_free(a);
    return NULL;
}

/* --- libwebsockets --- */

static int hub_lws_callback(struct lws *wsi, enum lws_callback_reasons reason,
                            void *user, void *in, size_t len)
{
    const struct lws_protocols *p = lws_get_protocol(wsi);
    struct hub *h = p != NULL ? p->user : NULL;
    struct hub_pss *pss = user;
    struct hub_agent *a = pss != NULL ? pss->a : NULL;

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (h == NULL || h->nconns >= (size_t)h->cfg->agent_max + 1024) {
            return 1;
        }
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        if (h == NULL || pss == NULL ||
            (pss->a = hub_agent_new(h, wsi)) == NULL) {
            return -1;
        }
        /* The server speaks first (its SSH banner). */
        hub_agent_service(pss->a);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (a == NULL || a->dead) {
            return -1;
        }
        a->last_rx_ms = util_mono_ms();
        a->probe_until_ms = 0;
        if (!lws_frame_is_binary(wsi)) {
            static unsigned char why[] = "binary frames only";

            lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, why,
                             sizeof(why) - 1);
            return -1;
        }
        if (hub_ws_receive(a, in, len) != 0) {
            return -1;
        }
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        log_debug("agent %s: PONG", a != NULL ? a->remote : "-");
        if (a != NULL) {
            a->last_rx_ms = util_mono_ms();
            a->probe_until_ms = 0;
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (a == NULL) {
            return -1;
        }
        if (a->dead) {
            /* the frame libssh's last bytes wait in (a failed key
             * exchange's KEXINIT) goes out first, then the close */
            if (a->out_len > 0) {
                (void)lws_write(a->wsi, a->out + LWS_PRE, a->out_len,
                                LWS_WRITE_BINARY);
                a->out_len = 0;
            }
            return -1;
        }
        return hub_ws_writeable(a);
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        if (a != NULL) {
            pss->a = NULL;
            a->wsi = NULL;
            a->dead = true;
            hub_agent_free(a);
        }
        return 0;
    default:
        break;
    }
    return 0;
}

/* --- liveness --- */

static void hub_sweep(struct loop *l, void *arg)
{
    struct hub *h = arg;
    struct hub_agent *a, *next;
    int64_t now = util_mono_ms();
    int64_t keep = (int64_t)h->cfg->agent_keepalive_seconds * 1000;
    int64_t dead = (int64_t)h->cfg->agent_timeout_seconds * 1000;

    h->sweep_timer = 0;
    for (a = h->agents; a != NULL; a = next) {
        next = a->next;
        if (a->dead) {
            continue;
        }
        if (a->close_at_ms != 0 && now >= a->close_at_ms) {
            hub_agent_close(a, NULL, 0);
        } else if (now - a->last_rx_ms >= dead) {
            /* Silent: dead, or it reads nothing of what it is sent (then
             * the hub, or libwebsockets for its own full socket, stopped
             * reading it, which is why it seems silent). */
            hub_agent_close(
                a,
                a->out_len > 0 || a->rx_paused ||
                        (a->wsi != NULL && lws_send_pipe_choked(a->wsi))
                    ? "it reads nothing the server sends "
                      "(keepalive timeout)"
                    : "no sign of life (keepalive timeout)",
                0);
        } else if (a->probe_until_ms != 0 && now >= a->probe_until_ms) {
            hub_agent_close(a, "did not answer a probe (its ID was claimed)",
                            0);
        } else if ((a->state == HA_KEX || a->state == HA_AUTH ||
                    a->state == HA_ANNOUNCE) &&
                   now - a->started_ms >= HUB_HANDSHAKE_MS) {
            hub_agent_close(a, "handshake timed out", 0);
        } else if (now - a->last_rx_ms >= keep &&
                   a->ping_sent_ms <= a->last_rx_ms && a->wsi != NULL) {
            a->ping_wanted = true;
            lws_callback_on_writable(a->wsi);
        }
    }
    h->sweep_timer = loop_add_timer(h->loop, HUB_SWEEP_MS, hub_sweep, h);
}

/* --- store changes --- */

/* (hub_reclaim_agents is in hub_store.c) */

void hub_changed(struct hub *h, unsigned what)
{
    if (h == NULL) {
        return;
    }
    if (what & HUB_CHANGE_JOBS) {
        hub_jobs_pickup(h);
    }
    /* one job for every connection (hub_store.c), not a statement per
     * agent on the loop: credentials deleted, agents deleted or bound to
     * another credential */
    if (what & (HUB_CHANGE_CREDENTIALS | HUB_CHANGE_AGENTS)) {
        hub_check_begin(h, what & (HUB_CHANGE_CREDENTIALS | HUB_CHANGE_AGENTS));
    }
    if (h->change != NULL) {
        h->change(h->change_arg, what);
    }
}

/* --- start and stop --- */

int hub_start(struct hub **out, const struct config *cfg, struct loop *loop,
              struct store *store)
{
    struct hub *h;
    ssh_key key = NULL;
    int no = 0;

    *out = NULL;
    if ((h = calloc(1, sizeof(*h))) == NULL ||
        (h->online = calloc(HUB_BUCKETS, sizeof(*h->online))) == NULL ||
        (h->claims = calloc(HUB_BUCKETS, sizeof(*h->claims))) == NULL) {
        if (h != NULL) {
            free(h->online);
        }
        free(h);
        return ERR_NOMEM;
    }
    h->cfg = cfg;
    h->loop = loop;
    h->store = store;
    if (hub_store_start(h) != ERR_OK) {
        hub_store_stop(h);
        free(h->claims);
        free(h->online);
        free(h);
        return ERR_NOMEM;
    }
    /* the dummy hash an unknown credential ID is checked against is made
     * by the first check that needs one (secret.c): here, on the loop,
     * before two lookups on worker threads could both make it */
    (void)secret_verify("", "-");
    if (ssh_pki_import_privkey_file(cfg->ssh_host_key, NULL, NULL, NULL,
                                    &key) != SSH_OK) {
        log_error("hub: cannot read the SSH host key %s", cfg->ssh_host_key);
        hub_store_stop(h);
        free(h->claims);
        free(h->online);
        free(h);
        return ERR_CONFIG;
    }
    if ((h->bind = ssh_bind_new()) == NULL ||
        ssh_bind_options_set(h->bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no) !=
            SSH_OK ||
        ssh_bind_options_set(h->bind, SSH_BIND_OPTIONS_CIPHERS_C_S,
                             cfg->upstream_ciphers) != SSH_OK ||
        ssh_bind_options_set(h->bind, SSH_BIND_OPTIONS_CIPHERS_S_C,
                             cfg->upstream_ciphers) != SSH_OK ||
        ssh_bind_options_set(h->bind, SSH_BIND_OPTIONS_IMPORT_KEY, key) !=
            SSH_OK) {
        log_error("hub: cannot set up the SSH server");
        ssh_key_free(key);
        ssh_bind_free(h->bind);
        hub_store_stop(h);
        free(h->claims);
        free(h->online);
        free(h);
        return ERR_INTERNAL;
    }
    if (store_agent_all_offline(store) != ERR_OK) {
        log_warn("hub: cannot mark agents offline in the store");
    }
    h->proto.name = "portcullis-agent.v1";
    h->proto.callback = hub_lws_callback;
    h->proto.per_session_data_size = sizeof(struct hub_pss);
    h->proto.rx_buffer_size = 0;
    /* a whole frame per send(): with 0, libwebsockets sends 4 KiB at a
     * time and the rest of the frame one 4 KiB piece per POLLOUT, a turn
     * of the loop each (the agent sets the same on its side) */
    h->proto.tx_packet_size = HUB_FRAME_MAX;
    h->proto.user = h;
    h->sweep_timer = loop_add_timer(loop, HUB_SWEEP_MS, hub_sweep, h);
    if (loop_add_turn_end(loop, hub_turn_end, h) != ERR_OK) {
        log_warn("hub: no turn-end hook; frames go out per handler");
    }
    /* jobs the last run left behind can report nothing now */
    if (store_job_mark_lost(store) != ERR_OK) {
        log_warn("hub: cannot mark the last run's jobs lost");
    }
    *out = h;
    return ERR_OK;
}

const struct lws_protocols *hub_lws_protocol(struct hub *h)
{
    return &h->proto;
}

void hub_stop(struct hub *h)
{
    if (h == NULL) {
        return;
    }
    hub_watch_unlisten(h);
    loop_del_timer(h->loop, h->sweep_timer);
    loop_del_turn_end(h->loop, hub_turn_end, h);
    /* the agents' offline writes are made on the loop from now on, after
     * their jobs forgot them; then the workers stop */
    h->stopping = true;
    while (h->agents != NULL) {
        h->agents->wsi = NULL;
        h->agents->dead = true;
        hub_agent_free(h->agents);
    }
    hub_store_stop(h);
    ssh_bind_free(h->bind);
    free(h->claims);
    free(h->online);
    free(h);
}
