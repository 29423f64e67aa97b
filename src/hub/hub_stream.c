/*
 * Streams to targets on an agent's side (docs/agent-protocol.md §3): one
 * direct-tcpip channel each, bridged to a file descriptor.
 *
 * A stream goes OPENING (channel open sent) -> STATUS (confirmed; waiting
 * for the agent's status line on stderr) -> OPEN (bridging) and ends when
 * both directions are done, either side fails, or the agent goes. A TCP
 * stream already sends the client's bytes in STATUS (not its EOF; nothing
 * comes back before "ok"): docs/agent-protocol.md §3, "optimistic open".
 *
 * Bytes move with the shared pump (common/chanpump.h, whose contract is
 * relay.c's backpressure): libssh's data callbacks only note how much it
 * holds; the pump reads from the channel everything libssh holds, once
 * what it read before went to the fd (chanpump.h, rule 2), and reads the
 * fd only while the channel's remote window is open and libssh's output
 * to the agent has drained. Memory per stream is therefore bounded by
 * twice libssh's window (HUB_HOLD_MAX: an agent that sends past the
 * window is dropped), and buffers exist only while bytes are in flight.
 * A stream broken while carrying (the agent gone, a failed end) resets
 * the client's TCP connection rather than ending it cleanly, so that a
 * part is never taken for the whole.
 *
 * UDP streams carry datagrams framed as a 2-byte big-endian length and
 * the payload, by the pump's datagram mode (the codec common/frame.h,
 * which the agent uses too, fuzzed); the fd is a SEQPACKET socket (one
 * send/recv per datagram) on which an empty datagram would read as the
 * end, so none is carried either way.
 */
#include "hub/hub_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/chanpump.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define HUB_STATUS_MAX 300

enum hub_stream_state { HS_OPENING, HS_STATUS, HS_OPEN };

struct hub_stream {
    struct hub_stream *next;
    struct hub_agent *a;
    enum hub_stream_kind kind;
    enum hub_stream_state st;
    ssh_channel ch;
    struct ssh_channel_callbacks_struct cb;
    int fd;
    char host[STORE_HOST_MAX + 8]; /* as sent: "udp:" + host for UDP */
    int port;
    char orig[64];
    int orig_port;
    hub_connect_fn fn; /* until confirmed */
    hub_end_fn end;    /* after */
    void *arg;
    uint64_t timer;
    bool dead;
    /* the fd may have bytes: set by its read event (and at the start),
     * cleared when a read finds none, so that a pass over an agent's
     * streams reads only the fds that said they have something (the
     * others cost no system call) */
    bool readable;

    char status[HUB_STATUS_MAX];
    size_t status_len;

    uint32_t avail_err; /* stderr bytes libssh holds (the status) */
    bool ch_eof, ch_closed;

    /* the bytes, once open: channel <-> fd (nup: fd -> target, ndown:
     * target -> fd) */
    struct chanpump_ssh sx;
    struct chanpump pump;
};

static void hub_stream_on_fd(struct loop *l, int fd, int events, void *arg);

/* --- callbacks: note, never consume --- */

static int hub_stream_data(ssh_session s, ssh_channel ch, void *data,
                           uint32_t len, int is_stderr, void *userdata)
{
    struct hub_stream *st = userdata;

    if (is_stderr) {
        st->avail_err = len;
    } else {
        chanpump_note_data(&st->pump, len);
    }
    /* libssh keeps data that arrives beyond the window it granted (it only
     * logs it): an agent that ignores the window would grow this without
     * end. Bounded here; the agent goes after the libssh pass. */
    if (len > HUB_HOLD_MAX && st->a->kill_why == NULL) {
        st->a->kill_why = "it sent past the channel window";
    }
    return 0;
}

static void hub_stream_eof(ssh_session s, ssh_channel ch, void *userdata)
{
    struct hub_stream *st = userdata;

    st->ch_eof = true;
    chanpump_note_eof(&st->pump);
}

static void hub_stream_close(ssh_session s, ssh_channel ch, void *userdata)
{
    struct hub_stream *st = userdata;

    st->ch_closed = true;
    chanpump_note_close(&st->pump);
}

/* --- ending --- */

static void hub_stream_release(struct hub_stream *st)
{
    struct hub *h = st->a->h;

    if (st->timer != 0) {
        loop_del_timer(h->loop, st->timer);
        st->timer = 0;
    }
    if (st->ch != NULL) {
        ssh_remove_channel_callbacks(st->ch, &st->cb);
        if (!st->ch_closed && ssh_channel_is_open(st->ch)) {
            (void)ssh_channel_close(st->ch);
        }
        ssh_channel_free(st->ch);
        st->ch = NULL;
    }
    if (st->fd >= 0) {
        loop_del_fd(h->loop, st->fd);
        close(st->fd);
        st->fd = -1;
    }
    chanpump_free(&st->pump);
    st->dead = true;
}

/* Ends the stream; before it was confirmed, tells the requester why. */
static void hub_stream_end(struct hub_stream *st, const char *why)
{
    hub_connect_fn fn = st->fn;
    hub_end_fn end = st->end;
    void *arg = st->arg;

    if (st->dead) {
        return;
    }
    if (why != NULL && fn == NULL && st->kind == HUB_TCP && st->fd >= 0) {
        /* broken while carrying (the agent gone, a failed end): the
         * client's connection is reset, so that it cannot take the
         * bytes it got for the whole stream (a clean FIN would say so) */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};

        (void)setsockopt(st->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    st->fn = NULL;
    st->end = NULL;
    hub_stream_release(st);
    if (fn != NULL) {
        fn(arg, false, why);
    } else if (end != NULL) {
        end(arg, st->pump.nup, st->pump.ndown, why);
    } else if (why != NULL) {
        log_debug("agent %s: stream to %s:%d ended: %s", st->a->id, st->host,
                  st->port, why);
    }
}

/* Frees the streams marked dead. */
static void hub_streams_reap(struct hub_agent *a)
{
    struct hub_stream **pp = &a->streams, *st;

    while ((st = *pp) != NULL) {
        if (st->dead) {
            *pp = st->next;
            free(st);
        } else {
            pp = &st->next;
        }
    }
}

static void hub_stream_timeout(struct loop *l, void *arg)
{
    struct hub_stream *st = arg;
    struct hub_agent *a = st->a;

    st->timer = 0;
    hub_stream_end(st, "timed out waiting for the agent");
    if (!a->in_service) {
        hub_streams_reap(a);
        hub_agent_watch(a);
    }
}

/* --- watching the fd --- */

static void hub_stream_watch(struct hub_stream *st)
{
    struct loop *l = st->a->h->loop;
    int ev = 0;

    if (st->dead || st->fd < 0 ||
        (st->st != HS_OPEN && (st->st != HS_STATUS || st->kind != HUB_TCP))) {
        return;
    }
    /* Read events only while none is pending (a read found the fd empty)
     * and there is room and somewhere to put it. Not waiting for libssh's
     * output to drain here: hub_agent_service passes over every stream
     * after each drain, and a stream whose fd is flagged readable is read
     * then. (Dropping the event whenever libssh had output queued took
     * every stream's fd off the loop and put it back, two epoll_ctl each,
     * once or twice per request: most of the hub's system calls under
     * many small requests.) */
    if (!st->readable && chanpump_up_open(&st->pump)) {
        ev |= LOOP_READ;
    }
    if (chanpump_dn_blocked(&st->pump)) {
        ev |= LOOP_WRITE;
    }
    if (loop_fd_events(l, st->fd) != ev) {
        (void)loop_set_fd(l, st->fd, ev, hub_stream_on_fd, st);
    }
}

/* --- the fd as the pump's local end --- */

static ssize_t hub_fd_read(void *arg, uint8_t *p, size_t len)
{
    struct hub_stream *st = arg;
    ssize_t n;

    if (!st->readable) {
        return CHANPUMP_AGAIN; /* the fd's read event says when */
    }
    n = read(st->fd, p, len);
    if (n > 0) {
        return n;
    }
    if (n == 0) {
        return CHANPUMP_EOF;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        st->readable = false;
        return CHANPUMP_AGAIN;
    }
    return CHANPUMP_FAIL;
}

static ssize_t hub_fd_write(void *arg, const uint8_t *p, size_t len)
{
    struct hub_stream *st = arg;
    ssize_t n = write(st->fd, p, len);

    if (n >= 0) {
        return n;
    }
    return errno == EAGAIN || errno == EWOULDBLOCK ? CHANPUMP_AGAIN
                                                   : CHANPUMP_FAIL;
}

static void hub_fd_shut_wr(void *arg)
{
    struct hub_stream *st = arg;

    (void)shutdown(st->fd, SHUT_WR);
}

static const struct chanpump_local_ops hub_tcp_ops = {
    .read = hub_fd_read,
    .write = hub_fd_write,
    .shut_wr = hub_fd_shut_wr,
};

/* UDP: one datagram per call on the SEQPACKET fd, where 0 bytes read is
 * the peer's close; an empty datagram from the agent is not carried. */
static ssize_t hub_dgram_read(void *arg, uint8_t *p, size_t len)
{
    struct hub_stream *st = arg;
    ssize_t n;

    if (!st->readable) {
        return CHANPUMP_AGAIN;
    }
    n = recv(st->fd, p, len, MSG_DONTWAIT);
    if (n > 0) {
        return n;
    }
    if (n == 0) {
        return CHANPUMP_EOF;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        st->readable = false;
        return CHANPUMP_AGAIN;
    }
    return CHANPUMP_FAIL;
}

static ssize_t hub_dgram_write(void *arg, const uint8_t *p, size_t len)
{
    struct hub_stream *st = arg;
    ssize_t n;

    if (len == 0) {
        return 0;
    }
    n = send(st->fd, p, len, MSG_DONTWAIT);
    if (n >= 0) {
        return (ssize_t)len;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return CHANPUMP_AGAIN;
    }
    return errno == ECONNREFUSED ? (ssize_t)len : CHANPUMP_FAIL;
}

static const struct chanpump_local_ops hub_udp_ops = {
    .read = hub_dgram_read,
    .write = hub_dgram_write,
    .shut_wr = NULL,
};

/* --- the states --- */

/* Notes on the agent that this stream's fd may have bytes the pump did
 * not take only because libssh has not yet heard that its socket takes
 * more (after every packet it sends, libssh waits for POLLOUT before the
 * next): hub_agent_service then polls libssh at once and passes over the
 * streams again, instead of a turn of the loop later, so that e.g. the
 * window adjustment libssh sends when the status arrives and the client's
 * first bytes leave in one frame. */
static void hub_stream_note_held(struct hub_stream *st)
{
    if (st->readable && !st->dead && chanpump_up_open(&st->pump)) {
        st->a->held = true;
    }
}

/* Reads the status line from stderr; true once it is complete. */
static bool hub_stream_status(struct hub_stream *st)
{
    int r;
    char *nl;

    while (st->avail_err > 0 && st->status_len < sizeof(st->status) - 1) {
        r = ssh_channel_read_timeout(
            st->ch, st->status + st->status_len,
            (uint32_t)(sizeof(st->status) - 1 - st->status_len), 1, 0);
        if (r <= 0) {
            st->avail_err = 0;
            break;
        }
        st->avail_err =
            (uint32_t)r >= st->avail_err ? 0 : st->avail_err - (uint32_t)r;
        st->status_len += (size_t)r;
    }
    st->status[st->status_len] = '\0';
    if ((nl = memchr(st->status, '\n', st->status_len)) == NULL) {
        if (st->status_len >= sizeof(st->status) - 1) {
            hub_stream_end(st, "the agent sent a malformed status");
        } else if (st->ch_eof || st->ch_closed) {
            hub_stream_end(st, "the agent closed the stream");
        }
        return false;
    }
    *nl = '\0';
    if (strcmp(st->status, "ok") == 0) {
        return true;
    }
    for (char *p = st->status; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    hub_stream_end(st, strncmp(st->status, "error: ", 7) == 0 ? st->status + 7
                                                              : st->status);
    return false;
}

static void hub_stream_service(struct hub_stream *st)
{
    hub_connect_fn fn;
    const char *err;
    char why[300];
    int rc;

    if (st->st == HS_OPENING) {
        rc = ssh_channel_open_forward(st->ch, st->host, st->port, st->orig,
                                      st->orig_port);
        if (rc == SSH_AGAIN) {
            return;
        }
        if (rc != SSH_OK) {
            err = ssh_get_error(st->a->s);
            if (err != NULL && strstr(err, "error (1)") != NULL) {
                hub_stream_end(st, "refused by the agent's allow-list");
            } else {
                snprintf(why, sizeof(why), "the agent refused the stream: %s",
                         err != NULL ? err : "?");
                hub_stream_end(st, why);
            }
            return;
        }
        st->st = HS_STATUS;
    }
    if (st->st == HS_STATUS) {
        if (!hub_stream_status(st)) {
            /* Optimistic open: the channel is confirmed, so a TCP client's
             * first bytes go now, without waiting for the agent's "ok"
             * (a round trip saved per connection). The agent keeps them
             * in the channel, within its window, until its target is
             * connected; if the target fails they are dropped with the
             * stream, and the client gets no byte of the target's. */
            if (!st->dead && st->kind == HUB_TCP) {
                if (chanpump_run_up(&st->pump, NULL) != ERR_OK) {
                    hub_stream_end(st, st->pump.why);
                    return;
                }
                hub_stream_note_held(st);
                hub_stream_watch(st);
            }
            return;
        }
        st->st = HS_OPEN;
        loop_del_timer(st->a->h->loop, st->timer);
        st->timer = 0;
        fn = st->fn;
        st->fn = NULL;
        if (fn != NULL) {
            fn(st->arg, true, NULL);
        }
        if (st->dead) {
            return;
        }
    }
    if (chanpump_run(&st->pump, NULL) != ERR_OK) {
        hub_stream_end(st, st->pump.why);
        return;
    }
    hub_stream_note_held(st);
    /* done when both directions are, or the agent closed the channel and
     * everything it sent is delivered */
    if (chanpump_done(&st->pump)) {
        hub_stream_end(st, NULL);
        return;
    }
    hub_stream_watch(st);
}

static void hub_stream_on_fd(struct loop *l, int fd, int events, void *arg)
{
    struct hub_stream *st = arg;
    struct hub_agent *a = st->a;

    if (st->dead) {
        return;
    }
    if (events & LOOP_READ) {
        st->readable = true;
    }
    hub_stream_service(st);
    if (!a->in_service) {
        hub_streams_reap(a);
        if (a->kill_why != NULL) {
            hub_agent_close(a, a->kill_why, 0);
            return;
        }
        /* libssh sent a packet and waits to hear POLLOUT before the next:
         * tell it now (hub_agent_service polls it) rather than through
         * the loop, a turn later */
        if (ssh_get_poll_flags(a->s) & SSH_WRITE_PENDING) {
            hub_agent_service(a);
            return;
        }
        hub_agent_watch(a);
    }
}

void hub_streams_service(struct hub_agent *a)
{
    struct hub_stream *st;

    for (st = a->streams; st != NULL; st = st->next) {
        if (!st->dead) {
            hub_stream_service(st);
        }
    }
    hub_streams_reap(a);
}

void hub_streams_drop(struct hub_agent *a, const char *why)
{
    struct hub_stream *st;

    for (st = a->streams; st != NULL; st = st->next) {
        hub_stream_end(st, why);
    }
    hub_streams_reap(a);
}

/* --- opening --- */

struct hub_req *hub_connect(struct hub *h, const char *agent_id,
                            enum hub_stream_kind kind, const char *host,
                            int port, const char *orig, int orig_port, int fd,
                            hub_connect_fn fn, void *arg)
{
    return hub_connect_ex(h, agent_id, kind, host, port, orig, orig_port, fd,
                          fn, NULL, arg);
}

struct hub_req *hub_connect_ex(struct hub *h, const char *agent_id,
                               enum hub_stream_kind kind, const char *host,
                               int port, const char *orig, int orig_port,
                               int fd, hub_connect_fn fn, hub_end_fn end,
                               void *arg)
{
    struct hub_agent *a = h != NULL ? hub_find_online(h, agent_id) : NULL;
    struct hub_stream *st;
    char why[200];

    if (a == NULL || a->dead || a->state != HA_ONLINE) {
        close(fd);
        snprintf(why, sizeof(why), "agent '%s' is not connected",
                 agent_id != NULL ? agent_id : "");
        fn(arg, false, why);
        return NULL;
    }
    if (host == NULL || strlen(host) > STORE_HOST_MAX || port < 1 ||
        port > 65535 || (st = calloc(1, sizeof(*st))) == NULL) {
        close(fd);
        fn(arg, false, "bad target");
        return NULL;
    }
    st->a = a;
    st->kind = kind;
    st->fd = fd;
    st->fn = fn;
    st->end = end;
    st->arg = arg;
    st->port = port;
    st->orig_port = orig_port;
    st->readable = true; /* try once; a read that finds nothing clears it */
    snprintf(st->host, sizeof(st->host), "%s%s", kind == HUB_UDP ? "udp:" : "",
             host);
    snprintf(st->orig, sizeof(st->orig), "%s", orig != NULL ? orig : "");
    (void)util_set_nonblock(fd);
    if ((st->ch = ssh_channel_new(a->s)) == NULL) {
        close(fd);
        free(st);
        fn(arg, false, "internal error (channel)");
        return NULL;
    }
    memset(&st->cb, 0, sizeof(st->cb));
    st->cb.userdata = st;
    st->cb.channel_data_function = hub_stream_data;
    st->cb.channel_eof_function = hub_stream_eof;
    st->cb.channel_close_function = hub_stream_close;
    st->sx.s = a->s;
    st->sx.ch = st->ch;
    chanpump_init(&st->pump, &chanpump_ssh_ops, &st->sx,
                  kind == HUB_UDP ? &hub_udp_ops : &hub_tcp_ops, st,
                  kind == HUB_UDP, HUB_CHUNK);
    ssh_callbacks_init(&st->cb);
    ssh_set_channel_callbacks(st->ch, &st->cb);
    st->timer =
        loop_add_timer(h->loop, (int64_t)h->cfg->connect_timeout_seconds * 1000,
                       hub_stream_timeout, st);
    st->next = a->streams;
    a->streams = st;
    st->st = HS_OPENING;
    /* sends the open; the answer comes through hub_agent_service */
    hub_stream_service(st);
    if (st->dead) {
        hub_streams_reap(a);
        hub_agent_watch(a);
        return NULL;
    }
    hub_agent_watch(a);
    return (struct hub_req *)st;
}

void hub_connect_cancel(struct hub_req *r)
{
    struct hub_stream *st = (struct hub_stream *)r;
    struct hub_agent *a;

    if (st == NULL || st->dead) {
        return;
    }
    a = st->a;
    st->fn = NULL;
    st->end = NULL;
    hub_stream_end(st, NULL);
    /* inside a service pass the pass itself reaps it */
    if (!a->in_service) {
        hub_streams_reap(a);
        hub_agent_watch(a);
    }
}
