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
 * datagrams on a connected socket. Flow control both ways: we read from
 * the socket no more than the channel's window (and nothing while libssh
 * still has output queued), and read from the channel only when the
 * previous slice has been written to the socket, so each stream holds at
 * most STREAM_BUF bytes per direction.
 */
#include "agent/conn_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/frame.h"
#include "common/err.h"
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

    uint8_t *out; /* channel -> socket */
    size_t out_len, out_off;
    uint8_t *in; /* socket -> channel */
    size_t in_len, in_off;
    struct frame_dec *dec; /* UDP: channel bytes to datagrams */
    bool chan_eof, shut_wr, sock_eof, eof_sent;
};

static void stream_poll_cb(uv_poll_t *p, int status, int events);

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
    free(st->out);
    free(st->in);
    free(st->dec);
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
    ((struct agent_stream *)arg)->c->activity = true;
    return 0; /* read later, as the socket has room */
}

static void stream_event_cb(ssh_session s, ssh_channel ch, void *arg)
{
    ((struct agent_stream *)arg)->c->activity = true;
}

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
    memset(&st->cb, 0, sizeof(st->cb));
    st->cb.userdata = st;
    st->cb.channel_data_function = stream_data_cb;
    st->cb.channel_eof_function = stream_event_cb;
    st->cb.channel_close_function = stream_event_cb;
    ssh_callbacks_init(&st->cb);
    ssh_set_channel_callbacks(st->ch, &st->cb);
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
    if ((st = calloc(1, sizeof(*st))) == NULL ||
        (st->out = malloc(STREAM_BUF)) == NULL ||
        (st->in = malloc(STREAM_BUF)) == NULL ||
        (t.proto == ALLOW_UDP &&
         (st->dec = malloc(sizeof(*st->dec))) == NULL)) {
        if (st != NULL) {
            free(st->out);
            free(st->in);
            free(st);
        }
        conn_logf(c, LOG_WARN, "refused stream for %s: out of memory", origbuf);
        goto refuse;
    }
    if (st->dec != NULL) {
        frame_dec_init(st->dec);
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

/* Channel to socket; true if anything moved. */
static bool stream_down(struct agent_stream *st)
{
    const uint8_t *dg;
    size_t used, dl;
    bool moved = false;
    ssize_t n;
    int avail;

    for (;;) {
        if (st->out_off < st->out_len) {
            if (st->t.proto == ALLOW_UDP) {
                enum frame_result r =
                    frame_dec_feed(st->dec, st->out + st->out_off,
                                   st->out_len - st->out_off, &used, &dg, &dl);
                st->out_off += used;
                moved = true;
                if (r == FRAME_TOO_LONG) {
                    stream_end(st, "datagram length above 65507", 0);
                    return true;
                }
                if (r == FRAME_DGRAM) {
                    /* UDP may drop: a full socket buffer loses the
                     * datagram, as the network would. */
                    (void)send(st->fd, dg, dl, MSG_DONTWAIT);
                }
                continue;
            }
            n = send(st->fd, st->out + st->out_off, st->out_len - st->out_off,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    st->writable = false;
                    return moved;
                }
                stream_end(st, "target write failed", errno);
                return true;
            }
            st->out_off += (size_t)n;
            moved = true;
            continue;
        }
        st->out_off = st->out_len = 0;
        if (st->chan_eof) {
            break;
        }
        avail = ssh_channel_poll(st->ch, 0);
        if (avail == SSH_EOF) {
            st->chan_eof = true;
            moved = true;
            break;
        }
        if (avail <= 0) {
            break;
        }
        n = ssh_channel_read_timeout(
            st->ch, st->out,
            (uint32_t)(avail > STREAM_BUF ? STREAM_BUF : avail), 0, 0);
        if (n <= 0) {
            break;
        }
        st->out_len = (size_t)n;
        moved = true;
    }
    if (st->chan_eof && st->t.proto == ALLOW_TCP && !st->shut_wr) {
        shutdown(st->fd, SHUT_WR);
        st->shut_wr = true;
        moved = true;
    }
    return moved;
}

/* Socket to channel; true if anything moved. */
static bool stream_up(struct agent_stream *st)
{
    struct agent_conn *c = st->c;
    bool moved = false;
    uint32_t win;
    ssize_t n;
    int w;

    for (;;) {
        if (st->in_off < st->in_len) {
            win = ssh_channel_window_size(st->ch);
            if (win == 0) {
                break;
            }
            n = (ssize_t)(st->in_len - st->in_off);
            if ((size_t)n > win) {
                n = (ssize_t)win;
            }
            w = ssh_channel_write(st->ch, st->in + st->in_off, (uint32_t)n);
            if (w < 0) {
                stream_end(st, "channel write failed", 0);
                return true;
            }
            if (w == 0) {
                break;
            }
            st->in_off += (size_t)w;
            moved = true;
            continue;
        }
        st->in_off = st->in_len = 0;
        if (st->sock_eof || !st->readable) {
            break;
        }
        /* Bound libssh's own output queue: read nothing more while it
         * still waits for the socketpair to drain. */
        if (ssh_get_poll_flags(c->ssh) & SSH_WRITE_PENDING) {
            break;
        }
        win = ssh_channel_window_size(st->ch);
        if (win == 0) {
            break;
        }
        if (st->t.proto == ALLOW_UDP) {
            n = recv(st->fd, st->in + FRAME_HDR, FRAME_MAX_PAYLOAD, 0);
            if (n >= 0) {
                frame_put_header((size_t)n, st->in);
                st->in_len = (size_t)n + FRAME_HDR;
                moved = true;
                continue;
            }
            if (errno == ECONNREFUSED) {
                continue; /* an ICMP error for an earlier datagram */
            }
        } else {
            n = recv(st->fd, st->in, win < STREAM_BUF ? win : STREAM_BUF, 0);
            if (n > 0) {
                st->in_len = (size_t)n;
                moved = true;
                continue;
            }
            if (n == 0) {
                st->sock_eof = true;
                if (!st->eof_sent) {
                    ssh_channel_send_eof(st->ch);
                    st->eof_sent = true;
                }
                moved = true;
                break;
            }
        }
        if (errno == EAGAIN || errno == EINTR) {
            st->readable = false;
            break;
        }
        stream_end(st, "target read failed", errno);
        return true;
    }
    return moved;
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
        if (!st->sock_eof && !st->readable && st->in_len == 0 &&
            ssh_channel_window_size(st->ch) > 0) {
            want |= UV_READABLE;
        }
        if (st->out_off < st->out_len && st->t.proto == ALLOW_TCP) {
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
    bool moved = false;

    for (st = c->streams; st != NULL; st = next) {
        next = st->next;
        if (st->state == ST_OPEN) {
            if (ssh_channel_is_closed(st->ch)) {
                stream_end(st, NULL, 0);
                moved = true;
            } else {
                moved |= stream_down(st);
                if (st->state == ST_OPEN) {
                    moved |= stream_up(st);
                }
                if (st->state == ST_OPEN && st->t.proto == ALLOW_UDP &&
                    st->chan_eof) {
                    stream_end(st, NULL, 0);
                }
                if (st->state == ST_OPEN && st->t.proto == ALLOW_TCP &&
                    st->chan_eof && st->shut_wr && st->sock_eof &&
                    st->in_len == 0) {
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
