/*
 * Streams: the server's direct-tcpip channels (docs/agent-protocol.md §3).
 *
 * A channel open is checked against the allow-list before anything else.
 * An address literal, or a name equal to a name entry, is confirmed at
 * once. A name that only address or CIDR entries could allow is resolved
 * first (libuv's thread pool, so the loop never blocks) while libssh's
 * message waits unanswered; only the resolved addresses that pass the
 * allow-list are used, and none passing is an ordinary "administratively
 * prohibited" open failure. That is why messages are taken from libssh's
 * queue (ssh_message_get) and not from ssh_set_message_callback: a
 * callback's message is freed when the callback returns, so its answer
 * could not wait for the resolver.
 *
 * Once confirmed, the agent connects without blocking and sends one status
 * line on stderr ("ok\n" or "error: ...\n" with EOF and close), then moves
 * bytes: TCP as a byte stream with half-close, UDP as length-framed
 * datagrams on a connected socket. The bytes move with the shared pump
 * (common/chanpump.h, relay.c's backpressure as its contract): we read
 * from the socket no more than the channel's window (and nothing while
 * libssh still has output queued), and read from the channel only what
 * libssh was noted to hold and only when the previous slice has been
 * written to the socket, so each stream holds at most STREAM_BUF bytes
 * per direction (a UDP stream: one datagram each way), and only while
 * bytes are in flight.
 */
#include "agent/conn_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/chanpump.h"
#include "common/err.h"
#include "agent/job.h"
#include "common/log.h"

#define STREAM_MAX 1024 /* streams per connection */

enum stream_state {
    ST_CHECK = 0, /* resolving a name before confirming; msg held */
    ST_RESOLVE,   /* confirmed; resolving */
    ST_CONNECT,   /* confirmed; connecting */
    ST_OPEN,      /* "ok" sent; moving bytes */
    ST_DONE,      /* to be freed */
};

struct stream_gai {
    uv_getaddrinfo_t req;
    struct agent_stream *st; /* NULL once the stream is gone */
};

struct agent_stream {
    struct agent_conn *c;
    struct agent_stream *prev, *next;
    enum stream_state state;
    ssh_message msg; /* ST_CHECK: the open waiting for an answer */
    ssh_channel ch;
    struct ssh_channel_callbacks_struct cb;
    struct allow_target t;
    char desc[ALLOW_MAX_NAME + 24]; /* "tcp host:port" for logs */
    char orig[80];                  /* "addr:port" the server named */
    struct stream_gai *gai;
    struct addrinfo *ai, *ai_next;
    int last_err;

    int fd;
    uv_poll_t *poll;
    int events;
    bool readable, writable;

    struct chanpump_ssh sx;
    struct chanpump pump; /* once confirmed */
};

static void stream_poll_cb(uv_poll_t *p, int status, int events);
static void stream_connect_done(struct agent_stream *st);

static void stream_free_handle(uv_handle_t *h)
{
    free(h);
}

static void stream_free(struct agent_stream *st)
{
    struct agent_conn *c = st->c;

    if (st->poll != NULL) {
        uv_close((uv_handle_t *)st->poll, stream_free_handle);
    }
    if (st->fd >= 0) {
        close(st->fd);
    }
    if (st->msg != NULL) {
        ssh_message_reply_default(st->msg);
        ssh_message_free(st->msg);
    }
    if (st->ch != NULL) {
        /* libssh keeps a freed channel until the server's close arrives
         * and would still call our callbacks with st: unhook them. */
        ssh_remove_channel_callbacks(st->ch, &st->cb);
        if (!ssh_channel_is_closed(st->ch)) {
            ssh_channel_close(st->ch);
        }
        ssh_channel_free(st->ch);
    }
    if (st->gai != NULL) {
        st->gai->st = NULL;
        uv_cancel((uv_req_t *)&st->gai->req);
    }
    if (st->ai != NULL) {
        freeaddrinfo(st->ai);
    }
    chanpump_free(&st->pump);
    if (st->prev != NULL) {
        st->prev->next = st->next;
    } else {
        c->streams = st->next;
    }
    if (st->next != NULL) {
        st->next->prev = st->prev;
    }
    c->nstreams--;
    free(st);
}

void stream_free_all(struct agent_conn *c)
{
    while (c->streams != NULL) {
        stream_free(c->streams);
    }
}

static int stream_data_cb(ssh_session s, ssh_channel ch, void *data,
                          uint32_t len, int is_stderr, void *arg)
{
    struct agent_stream *st = arg;

    st->c->activity = true;
    if (!is_stderr) {
        chanpump_note_data(&st->pump, len);
    }
    return 0; /* read later, as the socket has room */
}

static void stream_eof_cb(ssh_session s, ssh_channel ch, void *arg)
{
    struct agent_stream *st = arg;

    st->c->activity = true;
    chanpump_note_eof(&st->pump);
}

static void stream_close_cb(ssh_session s, ssh_channel ch, void *arg)
{
    struct agent_stream *st = arg;

    st->c->activity = true;
    chanpump_note_close(&st->pump);
}

/* --- the target socket as the pump's local end --- */

static ssize_t stream_sock_read(void *arg, uint8_t *p, size_t len)
{
    struct agent_stream *st = arg;
    ssize_t n;

    if (!st->readable) {
        return CHANPUMP_AGAIN; /* the poll says when */
    }
    for (;;) {
        n = recv(st->fd, p, len, 0);
        if (n > 0 || (n == 0 && st->t.proto == ALLOW_UDP)) {
            return n; /* (UDP: an empty datagram is one) */
        }
        if (n == 0) {
            return CHANPUMP_EOF;
        }
        if (errno == ECONNREFUSED && st->t.proto == ALLOW_UDP) {
            continue; /* an ICMP error for an earlier datagram */
        }
        if (errno == EAGAIN || errno == EINTR) {
            st->readable = false;
            return CHANPUMP_AGAIN;
        }
        return CHANPUMP_FAIL;
    }
}

static ssize_t stream_sock_write(void *arg, const uint8_t *p, size_t len)
{
    struct agent_stream *st = arg;
    ssize_t n;

    if (st->t.proto == ALLOW_UDP) {
        /* UDP may drop: a full socket buffer loses the datagram, as the
         * network would. */
        (void)send(st->fd, p, len, MSG_DONTWAIT);
        return (ssize_t)len;
    }
    n = send(st->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
        return n;
    }
    if (errno == EAGAIN || errno == EINTR) {
        st->writable = false;
        return CHANPUMP_AGAIN;
    }
    return CHANPUMP_FAIL;
}

static void stream_sock_shut_wr(void *arg)
{
    struct agent_stream *st = arg;

    (void)shutdown(st->fd, SHUT_WR);
}

static const struct chanpump_local_ops stream_tcp_ops = {
    .read = stream_sock_read,
    .write = stream_sock_write,
    .shut_wr = stream_sock_shut_wr,
};

static const struct chanpump_local_ops stream_udp_ops = {
    .read = stream_sock_read,
    .write = stream_sock_write,
    .shut_wr = NULL,
};

/* Ends a confirmed stream with a status line (before "ok" only). */
static void stream_error(struct agent_stream *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void stream_error(struct agent_stream *st, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    n = snprintf(line, sizeof(line), "error: ");
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    conn_logf(st->c, LOG_INFO, "stream %s for %s: %s", st->desc, st->orig,
              line + n);
    strcat(line, "\n");
    ssh_channel_write_stderr(st->ch, line, (uint32_t)strlen(line));
    ssh_channel_send_eof(st->ch);
    ssh_channel_close(st->ch);
    st->state = ST_DONE;
}

/* Refuses an open that is still unanswered. */
static void stream_refuse(struct agent_stream *st, const char *why)
{
    conn_logf(st->c, LOG_WARN, "refused stream %s for %s: %s", st->desc,
              st->orig, why);
    ssh_message_reply_default(st->msg); /* administratively prohibited */
    ssh_message_free(st->msg);
    st->msg = NULL;
    st->state = ST_DONE;
}

/*
 * libssh grants the server 32,000 bytes when it accepts a channel and
 * grows that to 1,280,000 with a window adjustment as soon as the first
 * data arrives: a packet that then leaves on its own, a WebSocket frame
 * and a turn of the server's loop per stream. A read that asks for more
 * than the window holds grows it at once instead (libssh 0.10's
 * ssh_channel_read_timeout), so the adjustment leaves in the turn of the
 * confirmation and in its frame (conn.c, conn_flush_cb). Nothing can be
 * read yet: the server sends no data before the confirmation, which has
 * not even left. The same packet as before, only sooner; any server
 * takes a window adjustment at any time.
 */
static void stream_grow_window(struct agent_stream *st)
{
    static uint8_t none[CONN_WINDOW_ASK];

    (void)ssh_channel_read_timeout(st->ch, none, sizeof(none), 0, 0);
}

static int stream_accept(struct agent_stream *st)
{
    st->ch = ssh_message_channel_request_open_reply_accept(st->msg);
    ssh_message_free(st->msg);
    st->msg = NULL;
    if (st->ch == NULL) {
        conn_logf(st->c, LOG_WARN, "cannot confirm stream %s: %s", st->desc,
                  ssh_get_error(st->c->ssh));
        st->state = ST_DONE;
        return ERR_IO;
    }
    st->sx.s = st->c->ssh;
    st->sx.ch = st->ch;
    chanpump_init(&st->pump, &chanpump_ssh_ops, &st->sx,
                  st->t.proto == ALLOW_UDP ? &stream_udp_ops : &stream_tcp_ops,
                  st, st->t.proto == ALLOW_UDP, STREAM_BUF);
    memset(&st->cb, 0, sizeof(st->cb));
    st->cb.userdata = st;
    st->cb.channel_data_function = stream_data_cb;
    st->cb.channel_eof_function = stream_eof_cb;
    st->cb.channel_close_function = stream_close_cb;
    ssh_callbacks_init(&st->cb);
    ssh_set_channel_callbacks(st->ch, &st->cb);
    stream_grow_window(st);
    st->state = ST_RESOLVE;
    return ERR_OK;
}

static int stream_watch(struct agent_stream *st)
{
    if (st->poll != NULL) {
        return ERR_OK;
    }
    if ((st->poll = malloc(sizeof(*st->poll))) == NULL) {
        return ERR_NOMEM;
    }
    if (uv_poll_init(st->c->ctx->loop, st->poll, st->fd) != 0) {
        free(st->poll);
        st->poll = NULL;
        return ERR_IO;
    }
    st->poll->data = st;
    st->events = 0;
    return ERR_OK;
}

static void stream_connected(struct agent_stream *st)
{
    int one = 1;

    if (st->t.proto == ALLOW_TCP) {
        setsockopt(st->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    freeaddrinfo(st->ai);
    st->ai = st->ai_next = NULL;
    if (ssh_channel_write_stderr(st->ch, "ok\n", 3) != 3) {
        conn_logf(st->c, LOG_WARN, "stream %s: cannot send its status",
                  st->desc);
        st->state = ST_DONE;
        return;
    }
    st->state = ST_OPEN;
    st->readable = true; /* try once; EAGAIN clears it */
    conn_logf(st->c, LOG_INFO, "stream %s for %s open", st->desc, st->orig);
}

/* Tries the next address; on the last failure sends the error line. */
static void stream_try_connect(struct agent_stream *st)
{
    int type = st->t.proto == ALLOW_UDP ? SOCK_DGRAM : SOCK_STREAM;
    struct addrinfo *a;

    while ((a = st->ai_next) != NULL) {
        st->ai_next = a->ai_next;
        st->fd = socket(a->ai_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (st->fd < 0) {
            st->last_err = errno;
            continue;
        }
        if (connect(st->fd, a->ai_addr, a->ai_addrlen) == 0) {
            if (stream_watch(st) != ERR_OK) {
                stream_error(st, "out of memory");
                return;
            }
            stream_connected(st);
            return;
        }
        if (errno == EINPROGRESS && type == SOCK_STREAM) {
            if (stream_watch(st) != ERR_OK) {
                stream_error(st, "out of memory");
                return;
            }
            st->state = ST_CONNECT;
            /* A target on this host or next to it has often answered
             * already: then "ok" is written in this turn and leaves in
             * one frame with the channel's confirmation (conn.c,
             * conn_flush_cb) instead of a turn later on its own. */
            if (poll(&(struct pollfd){.fd = st->fd, .events = POLLOUT}, 1, 0) ==
                1) {
                stream_connect_done(st);
            }
            return;
        }
        st->last_err = errno;
        close(st->fd);
        st->fd = -1;
    }
    stream_error(st, "connect %s: %s", st->desc + 4,
                 strerror(st->last_err ? st->last_err : EHOSTUNREACH));
}

/* Keeps only the addresses the allow-list passes (ST_CHECK). */
static struct addrinfo *stream_filter(struct agent_stream *st,
                                      struct addrinfo *res, char *seen,
                                      size_t seenlen)
{
    struct addrinfo *keep = NULL, **tail = &keep, *a, *next;
    const uint8_t *addr;
    int fam;

    seen[0] = '\0';
    for (a = res; a != NULL; a = next) {
        next = a->ai_next;
        a->ai_next = NULL;
        fam = a->ai_family;
        addr = NULL;
        if (fam == AF_INET) {
            addr = (const uint8_t *)&((struct sockaddr_in *)(void *)a->ai_addr)
                       ->sin_addr;
        } else if (fam == AF_INET6) {
            addr = (const uint8_t *)&((struct sockaddr_in6 *)(void *)a->ai_addr)
                       ->sin6_addr;
        }
        if (addr != NULL && allow_check_addr(&st->c->conf->allow, st->t.proto,
                                             fam, addr, st->t.port)) {
            *tail = a;
            tail = &a->ai_next;
        } else {
            if (addr != NULL && seen[0] == '\0') {
                inet_ntop(fam, addr, seen, (socklen_t)seenlen);
            }
            freeaddrinfo(a);
        }
    }
    return keep;
}

static void stream_resolved(struct agent_stream *st, int status,
                            struct addrinfo *res)
{
    char seen[INET6_ADDRSTRLEN + 1], why[ALLOW_MAX_NAME + 96];

    if (status != 0 || res == NULL) {
        if (st->state == ST_CHECK && stream_accept(st) != ERR_OK) {
            return;
        }
        stream_error(st, "resolve %s: %s", st->t.host,
                     status != 0 ? uv_strerror(status) : "no address");
        if (res != NULL) {
            freeaddrinfo(res);
        }
        return;
    }
    if (st->state == ST_CHECK) {
        res = stream_filter(st, res, seen, sizeof(seen));
        if (res == NULL) {
            snprintf(why, sizeof(why),
                     "%s resolves to %s, which the allow-list does not allow",
                     st->t.host, seen[0] ? seen : "no usable address");
            stream_refuse(st, why);
            return;
        }
        if (stream_accept(st) != ERR_OK) {
            freeaddrinfo(res);
            return;
        }
    }
    st->ai = st->ai_next = res;
    stream_try_connect(st);
}

static void stream_gai_cb(uv_getaddrinfo_t *req, int status,
                          struct addrinfo *res)
{
    struct stream_gai *g = (struct stream_gai *)req;
    struct agent_stream *st = g->st;
    struct agent_conn *c;

    free(g);
    if (st == NULL) {
        if (res != NULL) {
            uv_freeaddrinfo(res);
        }
        return;
    }
    st->gai = NULL;
    c = st->c;
    stream_resolved(st, status, res);
    conn_pump(c);
}

static void stream_resolve(struct agent_stream *st)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    char port[8];
    int r;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = st->t.proto == ALLOW_UDP ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", (unsigned)st->t.port);
    if (st->t.is_addr) {
        hints.ai_flags |= AI_NUMERICHOST;
        r = getaddrinfo(st->t.host, port, &hints, &res);
        stream_resolved(st, r == 0 ? 0 : UV_EAI_NONAME, r == 0 ? res : NULL);
        return;
    }
    if ((st->gai = calloc(1, sizeof(*st->gai))) == NULL) {
        stream_resolved(st, UV_ENOMEM, NULL);
        return;
    }
    st->gai->st = st;
    r = uv_getaddrinfo(st->c->ctx->loop, &st->gai->req, stream_gai_cb,
                       st->t.host, port, &hints);
    if (r != 0) {
        free(st->gai);
        st->gai = NULL;
        stream_resolved(st, r, NULL);
    }
}

/* A job channel (docs/agent-protocol.md §6): bridged to a runner process
 * through a socketpair; the runner checks the agent's rules itself. */
static void stream_job(struct agent_conn *c, ssh_message msg,
                       const char *origbuf)
{
    struct agent_stream *st;
    int sv[2];

    if (c->nstreams >= STREAM_MAX ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0) {
        conn_logf(c, LOG_WARN, "refused a job for %s: %s", origbuf,
                  c->nstreams >= STREAM_MAX ? "too many streams"
                                            : strerror(errno));
        ssh_message_reply_default(msg);
        ssh_message_free(msg);
        return;
    }
    if (job_runner_spawn(&c->conf->jobs, sv[1]) != ERR_OK) {
        close(sv[0]);
        close(sv[1]);
        conn_logf(c, LOG_WARN, "refused a job for %s: cannot start a runner",
                  origbuf);
        ssh_message_reply_default(msg);
        ssh_message_free(msg);
        return;
    }
    close(sv[1]);
    if ((st = calloc(1, sizeof(*st))) == NULL) {
        close(sv[0]);
        ssh_message_reply_default(msg);
        ssh_message_free(msg);
        return;
    }
    st->c = c;
    st->fd = sv[0];
    st->t.proto = ALLOW_TCP;
    snprintf(st->desc, sizeof(st->desc), "job");
    snprintf(st->orig, sizeof(st->orig), "%s", origbuf);
    st->msg = msg;
    st->next = c->streams;
    if (c->streams != NULL) {
        c->streams->prev = st;
    }
    c->streams = st;
    c->nstreams++;
    if (stream_accept(st) != ERR_OK) {
        return;
    }
    if (stream_watch(st) != ERR_OK) {
        st->state = ST_DONE;
        return;
    }
    stream_connected(st);
}

void stream_handle_message(struct agent_conn *c, ssh_message msg)
{
    struct agent_stream *st = NULL;
    struct allow_target t;
    enum allow_verdict v;
    const char *dest, *orig;
    char why[160], origbuf[80];

    if (ssh_message_type(msg) != SSH_REQUEST_CHANNEL_OPEN) {
        conn_logf(c, LOG_DEBUG, "refused an SSH request of type %d",
                  ssh_message_type(msg));
        ssh_message_reply_default(msg);
        ssh_message_free(msg);
        return;
    }
    if (ssh_message_subtype(msg) != SSH_CHANNEL_DIRECT_TCPIP) {
        conn_logf(c, LOG_WARN,
                  "refused a channel of type %d (only "
                  "direct-tcpip streams are served)",
                  ssh_message_subtype(msg));
        ssh_message_reply_default(msg);
        ssh_message_free(msg);
        return;
    }
    dest = ssh_message_channel_request_open_destination(msg);
    orig = ssh_message_channel_request_open_originator(msg);
    snprintf(origbuf, sizeof(origbuf), "%.60s:%d", orig ? orig : "?",
             ssh_message_channel_request_open_originator_port(msg));
    for (char *p = origbuf; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    if (dest != NULL && strcmp(dest, JOB_DEST) == 0) {
        stream_job(c, msg, origbuf);
        return;
    }
    if (allow_target_parse(
            dest != NULL ? dest : "",
            (uint32_t)ssh_message_channel_request_open_destination_port(msg),
            &t, why, sizeof(why)) != ERR_OK) {
        for (char *p = why; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                *p = '?';
            }
        }
        conn_logf(c, LOG_WARN, "refused stream for %s: %s", origbuf, why);
        goto refuse;
    }
    v = allow_check(&c->conf->allow, &t);
    if (v == ALLOW_NO || c->nstreams >= STREAM_MAX) {
        conn_logf(c, LOG_WARN, "refused stream %s%s:%u for %s: %s",
                  t.proto == ALLOW_UDP ? "udp:" : "", t.host, (unsigned)t.port,
                  origbuf,
                  v == ALLOW_NO ? "not in the allow-list" : "too many streams");
        goto refuse;
    }
    if ((st = calloc(1, sizeof(*st))) == NULL) {
        conn_logf(c, LOG_WARN, "refused stream for %s: out of memory", origbuf);
        goto refuse;
    }
    st->c = c;
    st->fd = -1;
    st->t = t;
    snprintf(st->desc, sizeof(st->desc),
             strchr(t.host, ':') != NULL ? "%s [%s]:%u" : "%s %s:%u",
             t.proto == ALLOW_UDP ? "udp" : "tcp", t.host, (unsigned)t.port);
    snprintf(st->orig, sizeof(st->orig), "%s", origbuf);
    st->msg = msg;
    st->next = c->streams;
    if (c->streams != NULL) {
        c->streams->prev = st;
    }
    c->streams = st;
    c->nstreams++;
    if (v == ALLOW_YES) {
        if (stream_accept(st) != ERR_OK) {
            return;
        }
    } else {
        st->state = ST_CHECK;
    }
    stream_resolve(st);
    return;
refuse:
    ssh_message_reply_default(msg);
    ssh_message_free(msg);
}

/* Connect finished (the socket became writable). */
static void stream_connect_done(struct agent_stream *st)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(st->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
    }
    if (err == 0) {
        stream_connected(st);
        return;
    }
    st->last_err = err;
    uv_close((uv_handle_t *)st->poll, stream_free_handle);
    st->poll = NULL;
    close(st->fd);
    st->fd = -1;
    stream_try_connect(st);
}

static void stream_poll_cb(uv_poll_t *p, int status, int events)
{
    struct agent_stream *st = p->data;
    struct agent_conn *c = st->c;

    if (status < 0) {
        events = UV_READABLE | UV_WRITABLE;
    }
    if (events & UV_READABLE) {
        st->readable = true;
    }
    if (events & UV_WRITABLE) {
        st->writable = true;
    }
    if (st->state == ST_CONNECT && (events & UV_WRITABLE)) {
        stream_connect_done(st);
    }
    conn_pump(c);
}

static void stream_end(struct agent_stream *st, const char *why, int err)
{
    conn_logf(st->c, LOG_INFO, "stream %s for %s closed%s%s%s%s%s", st->desc,
              st->orig, why != NULL ? " (" : "", why != NULL ? why : "",
              err != 0 ? ": " : "", err != 0 ? strerror(err) : "",
              why != NULL ? ")" : "");
    if (st->ch != NULL && !ssh_channel_is_closed(st->ch)) {
        ssh_channel_close(st->ch);
    }
    st->state = ST_DONE;
}

static void stream_update_poll(struct agent_stream *st)
{
    int want = 0;

    if (st->poll == NULL) {
        return;
    }
    if (st->state == ST_CONNECT) {
        want = UV_WRITABLE;
    } else if (st->state == ST_OPEN) {
        if (!st->readable && !st->pump.local_eof && !st->pump.eof_sent &&
            !chanpump_up_held(&st->pump) &&
            ssh_channel_window_size(st->ch) > 0) {
            want |= UV_READABLE;
        }
        if (chanpump_dn_blocked(&st->pump) && st->t.proto == ALLOW_TCP) {
            want |= UV_WRITABLE;
        }
    }
    if (want != st->events) {
        if (want == 0) {
            uv_poll_stop(st->poll);
        } else {
            uv_poll_start(st->poll, want, stream_poll_cb);
        }
        st->events = want;
    }
}

bool stream_pump_all(struct agent_conn *c)
{
    struct agent_stream *st, *next;
    bool moved = false, m;

    for (st = c->streams; st != NULL; st = next) {
        next = st->next;
        if (st->state == ST_OPEN) {
            if (ssh_channel_is_closed(st->ch)) {
                /* the server's close can come right behind its last
                 * data: what the pump took from the channel is written
                 * to the target first (a slow one: over later passes) */
                if (chanpump_flush_dn(&st->pump, &m) != ERR_OK) {
                    stream_end(st, st->pump.why, st->pump.err);
                    moved = true;
                } else if (!chanpump_dn_blocked(&st->pump)) {
                    stream_end(st, NULL, 0);
                    moved = true;
                } else {
                    moved |= m;
                }
            } else if (chanpump_run(&st->pump, &m) != ERR_OK) {
                stream_end(st, st->pump.why, st->pump.err);
                moved = true;
            } else {
                moved |= m;
                /* UDP ends with the server's EOF (nothing of the
                 * target's to wait for); TCP once both ways ended */
                if (st->t.proto == ALLOW_UDP ? chanpump_dn_done(&st->pump)
                                             : chanpump_done(&st->pump)) {
                    stream_end(st, NULL, 0);
                }
            }
        } else if ((st->state == ST_CONNECT || st->state == ST_RESOLVE) &&
                   ssh_channel_is_closed(st->ch)) {
            conn_logf(c, LOG_INFO, "stream %s: the server gave up waiting",
                      st->desc);
            st->state = ST_DONE;
        }
        if (st->state == ST_DONE) {
            stream_free(st);
            moved = true;
            continue;
        }
        stream_update_poll(st);
    }
    return moved;
}
