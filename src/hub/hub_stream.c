/*
 * Streams to targets on an agent's side (docs/agent-protocol.md §3): one
 * direct-tcpip channel each, bridged to a file descriptor.
 *
 * A stream goes OPENING (channel open sent) -> STATUS (confirmed; waiting
 * for the agent's status line on stderr) -> OPEN (bridging) and ends when
 * both directions are done, either side fails, or the agent goes.
 *
 * Flow control follows relay.c: libssh's data callbacks only note how
 * much it holds (and return 0, so libssh keeps the bytes and its window
 * accounting); the pump reads from the channel only as much as it can
 * hand to the fd (at most HUB_CHUNK held by us), and reads the fd only
 * while the channel's remote window is open and libssh's output to the
 * agent has drained. Memory per stream is therefore bounded by libssh's
 * window plus two chunks (HUB_HOLD_MAX: an agent that sends past the
 * window is dropped), and buffers exist only while bytes are in flight.
 *
 * UDP streams carry datagrams framed as a 2-byte big-endian length and
 * the payload, encoded and decoded by the codec the agent uses too
 * (common/frame.h, fuzzed); the fd is a datagram socket (one send/recv
 * per datagram).
 */
#include "hub/hub_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/frame.h"
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
    uint64_t nup, ndown; /* bytes fd -> target, target -> fd */
    bool dead;

    char status[HUB_STATUS_MAX];
    size_t status_len;

    uint32_t avail[2]; /* bytes libssh holds: stdout, stderr */
    bool ch_eof, ch_closed;
    bool fd_eof, eof_sent, shut_wr;

    /* fd -> channel: bytes read (for UDP: framed) not yet written */
    uint8_t *up;
    size_t up_len, up_off;
    /* channel -> fd: TCP bytes, or (UDP) the slice being decoded */
    uint8_t *dn;
    size_t dn_len, dn_off;
    /* UDP: the frame being assembled; dgram_ready while its datagram
     * (dec->buf, dgram_len bytes) waits to be sent */
    struct frame_dec *dec;
    bool dgram_ready;
    size_t dgram_len;
};

static void hub_stream_on_fd(struct loop *l, int fd, int events, void *arg);

/* --- callbacks: note, never consume --- */

static int hub_stream_data(ssh_session s, ssh_channel ch, void *data,
                           uint32_t len, int is_stderr, void *userdata)
{
    struct hub_stream *st = userdata;

    st->avail[is_stderr ? 1 : 0] = len;
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
}

static void hub_stream_close(ssh_session s, ssh_channel ch, void *userdata)
{
    struct hub_stream *st = userdata;

    st->ch_closed = true;
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
    free(st->up);
    free(st->dn);
    free(st->dec);
    st->up = st->dn = NULL;
    st->dec = NULL;
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
    st->fn = NULL;
    st->end = NULL;
    hub_stream_release(st);
    if (fn != NULL) {
        fn(arg, false, why);
    } else if (end != NULL) {
        end(arg, st->nup, st->ndown, why);
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

    if (st->dead || st->st != HS_OPEN || st->fd < 0) {
        return;
    }
    /* read the fd while there is room and somewhere to put it */
    if (!st->fd_eof && st->up_len == 0 && ssh_channel_window_size(st->ch) > 0 &&
        !(ssh_get_poll_flags(st->a->s) & SSH_WRITE_PENDING)) {
        ev |= LOOP_READ;
    }
    if (st->kind == HUB_TCP ? st->dn_len > st->dn_off : st->dgram_ready) {
        ev |= LOOP_WRITE;
    }
    if (loop_fd_events(l, st->fd) == ev) {
        return;
    }
    if (ev == 0) {
        loop_del_fd(l, st->fd);
    } else if (loop_fd_events(l, st->fd) == 0) {
        (void)loop_add_fd(l, st->fd, ev, hub_stream_on_fd, st);
    } else {
        (void)loop_mod_fd(l, st->fd, ev);
    }
}

/* --- channel -> fd --- */

/* TCP: write what we hold, then take more from libssh. */
static bool hub_down_tcp(struct hub_stream *st)
{
    ssize_t n;
    int r;

    for (;;) {
        if (st->dn_len > st->dn_off) {
            n = write(st->fd, st->dn + st->dn_off, st->dn_len - st->dn_off);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    return true;
                }
                return false;
            }
            st->dn_off += (size_t)n;
            st->ndown += (uint64_t)n;
            if (st->dn_off < st->dn_len) {
                continue;
            }
            st->dn_off = st->dn_len = 0;
        }
        if (st->avail[0] == 0) {
            break;
        }
        if (st->dn == NULL && (st->dn = malloc(HUB_CHUNK)) == NULL) {
            return false;
        }
        r = ssh_channel_read_timeout(
            st->ch, st->dn, st->avail[0] < HUB_CHUNK ? st->avail[0] : HUB_CHUNK,
            0, 0);
        if (r <= 0) {
            st->avail[0] = 0;
            break;
        }
        st->avail[0] =
            (uint32_t)r >= st->avail[0] ? 0 : st->avail[0] - (uint32_t)r;
        st->dn_len = (size_t)r;
    }
    if (st->dn_len == 0 && st->dn != NULL) {
        free(st->dn);
        st->dn = NULL;
    }
    if ((st->ch_eof || st->ch_closed) && st->dn_len == 0 && st->avail[0] == 0 &&
        !st->shut_wr) {
        st->shut_wr = true;
        (void)shutdown(st->fd, SHUT_WR);
    }
    return true;
}

/* UDP: the shared codec (common/frame.h) assembles one frame at a time,
 * taking from libssh only the bytes it needs, so nothing is held over
 * but the frame; each datagram is sent as one. The decoder exists only
 * while a frame is partly read or waits to be sent. */
static bool hub_down_udp(struct hub_stream *st)
{
    const uint8_t *dg;
    size_t want, used, dl;
    ssize_t n;
    int r;

    for (;;) {
        if (st->dgram_ready && st->dgram_len == 0) {
            /* an empty datagram would read as the flow's end on the
             * SEQPACKET fd: not carried (as in the other direction) */
            st->dgram_ready = false;
        }
        if (st->dgram_ready) {
            n = send(st->fd, st->dec->buf, st->dgram_len, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return true;
            }
            if (n < 0 && errno != ECONNREFUSED) {
                return false;
            }
            if (n > 0) {
                st->ndown += (uint64_t)n;
            }
            st->dgram_ready = false;
        }
        if (st->avail[0] == 0) {
            break;
        }
        if (st->dec == NULL) {
            if ((st->dec = malloc(sizeof(*st->dec))) == NULL) {
                return false;
            }
            frame_dec_init(st->dec);
        }
        if (st->dn == NULL && (st->dn = malloc(HUB_CHUNK)) == NULL) {
            return false;
        }
        want = frame_dec_want(st->dec);
        if (want > HUB_CHUNK) {
            want = HUB_CHUNK;
        }
        r = ssh_channel_read_timeout(st->ch, st->dn, (uint32_t)want, 0, 0);
        if (r <= 0) {
            st->avail[0] = 0;
            break;
        }
        st->avail[0] =
            (uint32_t)r >= st->avail[0] ? 0 : st->avail[0] - (uint32_t)r;
        switch (frame_dec_feed(st->dec, st->dn, (size_t)r, &used, &dg, &dl)) {
        case FRAME_TOO_LONG:
            return false; /* protocol error */
        case FRAME_DGRAM:
            st->dgram_ready = true;
            st->dgram_len = dl;
            break;
        case FRAME_MORE:
            break;
        }
    }
    free(st->dn);
    st->dn = NULL;
    if (!st->dgram_ready && st->dec != NULL && frame_dec_idle(st->dec)) {
        free(st->dec);
        st->dec = NULL;
    }
    if (st->ch_eof || st->ch_closed) {
        st->shut_wr = true;
    }
    return true;
}

/* --- fd -> channel --- */

static bool hub_up(struct hub_stream *st)
{
    uint32_t win;
    ssize_t n;
    int w;
    size_t want;

    for (;;) {
        if (ssh_get_poll_flags(st->a->s) & SSH_WRITE_PENDING) {
            return true; /* the agent's link is full: wait for it */
        }
        if (st->up_len > st->up_off) {
            win = ssh_channel_window_size(st->ch);
            want = st->up_len - st->up_off;
            if (want > win) {
                want = win;
            }
            if (want == 0) {
                return true;
            }
            w = ssh_channel_write(st->ch, st->up + st->up_off, (uint32_t)want);
            if (w < 0) {
                return false;
            }
            if (w == 0) {
                return true;
            }
            st->up_off += (size_t)w;
            if (st->up_off < st->up_len) {
                continue;
            }
            st->up_off = st->up_len = 0;
        }
        if (st->fd_eof) {
            break;
        }
        if (st->up == NULL &&
            (st->up = malloc(st->kind == HUB_UDP ? FRAME_HDR + FRAME_MAX_PAYLOAD
                                                 : HUB_CHUNK)) == NULL) {
            return false;
        }
        if (st->kind == HUB_UDP) {
            n = recv(st->fd, st->up + FRAME_HDR, FRAME_MAX_PAYLOAD,
                     MSG_DONTWAIT);
            if (n > 0) {
                st->nup += (uint64_t)n;
                (void)frame_put_header((size_t)n, st->up);
                st->up_len = FRAME_HDR + (size_t)n;
                st->up_off = 0;
                continue;
            }
            if (n == 0) {
                /* the end: a SEQPACKET peer that closed (an empty
                 * datagram reads the same, so none is carried) */
                st->fd_eof = true;
                break;
            }
        } else {
            n = read(st->fd, st->up, HUB_CHUNK);
            if (n > 0) {
                st->nup += (uint64_t)n;
                st->up_len = (size_t)n;
                st->up_off = 0;
                continue;
            }
            if (n == 0) {
                st->fd_eof = true;
                break;
            }
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        }
        return false;
    }
    if (st->up_len == 0 && st->up != NULL) {
        free(st->up);
        st->up = NULL;
    }
    if (st->fd_eof && st->up_len == 0 && !st->eof_sent) {
        st->eof_sent = true;
        (void)ssh_channel_send_eof(st->ch);
    }
    return true;
}

/* --- the states --- */

/* Reads the status line from stderr; true once it is complete. */
static bool hub_stream_status(struct hub_stream *st)
{
    int r;
    char *nl;

    while (st->avail[1] > 0 && st->status_len < sizeof(st->status) - 1) {
        r = ssh_channel_read_timeout(
            st->ch, st->status + st->status_len,
            (uint32_t)(sizeof(st->status) - 1 - st->status_len), 1, 0);
        if (r <= 0) {
            st->avail[1] = 0;
            break;
        }
        st->avail[1] =
            (uint32_t)r >= st->avail[1] ? 0 : st->avail[1] - (uint32_t)r;
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
    if (!(st->kind == HUB_TCP ? hub_down_tcp(st) : hub_down_udp(st))) {
        hub_stream_end(st, "write to the local side failed");
        return;
    }
    if (!hub_up(st)) {
        hub_stream_end(st, "read from the local side failed");
        return;
    }
    /* done when both directions are, or the agent closed the channel and
     * everything it sent is delivered */
    if ((st->shut_wr && st->eof_sent) ||
        (st->ch_closed && st->dn_len == 0 && st->avail[0] == 0)) {
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
    hub_stream_service(st);
    if (!a->in_service) {
        hub_streams_reap(a);
        if (a->kill_why != NULL) {
            hub_agent_close(a, a->kill_why, 0);
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
