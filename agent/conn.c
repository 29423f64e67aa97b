/*
 * One agent connection's life: WebSocket, SSH client session, host-key
 * pin, password authentication, announcement, then streams; teardown and
 * reconnection with backoff. See conn.h for the outline.
 *
 * Three kinds of events drive a connection, all in the loop's one thread:
 * libwebsockets callbacks (the WebSocket), a uv_poll on our end of the
 * socketpair (bytes libssh wrote, to go out as frames) and a uv_poll on
 * libssh's end (bytes the server sent, for libssh to read). Every one of
 * them ends in conn_pump(), which lets libssh process what arrived and
 * then advances the handshake or moves stream bytes, again and again until
 * nothing moves (docs pitfall: any libssh call may process packets for any
 * channel, so one pass is never enough).
 *
 * Backpressure on the WebSocket side: we read from the socketpair only
 * when the previous frame has been handed to libwebsockets, and when the
 * socketpair is full we stop the WebSocket's receive flow until it drains.
 */
#include "agent/conn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "agent/facts.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define CONN_HANDSHAKE_MS 30000 /* WebSocket up to online */
#define CONN_WAIT_FIRST_MS 1000
#define CONN_WAIT_MAX_MS 60000
#define CONN_STABLE_MS 60000 /* up this long: the backoff starts over */
#define CONN_PROTO "portcullis-agent.v1"
#define CONN_SUBSYSTEM "announce@portcullis"

static int conn_ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
                            void *user, void *in, size_t len);
static void conn_closed(struct agent_conn *c);
static void conn_update_polls(struct agent_conn *c);

/* Scratch buffers for reads from the socketpair and from the WebSocket's
 * socket, shared by every connection of the process (one thread). */
static uint8_t conn_scratch[CONN_WS_CHUNK];
static uint8_t conn_rbuf[CONN_RAW_READ];

/* --- logging ----------------------------------------------------------- */

void conn_logf(const struct agent_conn *c, int level, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;

    if (c->ctx->quiet && level > LOG_ERROR) {
        level = LOG_DEBUG;
    }
    if (level > (int)log_get_level()) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_msg((enum log_level)level, "agent %s: %s", c->id, msg);
}

static void conn_lws_log(int level, const char *line)
{
    char buf[512];
    size_t n = strlen(line);

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        n--;
    }
    if (n >= sizeof(buf)) {
        n = sizeof(buf) - 1;
    }
    memcpy(buf, line, n);
    buf[n] = '\0';
    log_msg(level == LLL_ERR    ? LOG_WARN
            : level == LLL_WARN ? LOG_WARN
                                : LOG_DEBUG,
            "lws: %s", buf);
}

/* --- the context ------------------------------------------------------- */

int agent_ctx_new(struct agent_ctx **out, uv_loop_t *loop,
                  const struct agent_conf *conf,
                  const struct agent_ctx_opts *opts)
{
    struct lws_context_creation_info info;
    struct agent_ctx *ctx;
    void *loops[1];
    int lvl = LLL_ERR | LLL_WARN;

    *out = NULL;
    if ((ctx = calloc(1, sizeof(*ctx))) == NULL) {
        return ERR_NOMEM;
    }
    ctx->loop = loop;
    ctx->conf = conf;
    ctx->quiet = opts->quiet;
    ctx->protocols[0].name = CONN_PROTO;
    ctx->protocols[0].callback = conn_ws_callback;
    ctx->protocols[0].rx_buffer_size = opts->rx_buffer;
    ctx->protocols[0].tx_packet_size = CONN_WS_CHUNK;
    /* libwebsockets PINGs after keepalive seconds without a valid frame and
     * hangs up after timeout (we also count every data frame as valid, see
     * LWS_CALLBACK_CLIENT_RECEIVE). */
    ctx->retry.secs_since_valid_ping = (uint16_t)conf->keepalive;
    ctx->retry.secs_since_valid_hangup = (uint16_t)conf->timeout;
    if (log_get_level() >= LOG_DEBUG) {
        lvl |= LLL_NOTICE | LLL_INFO;
    }
    lws_set_log_level(lvl, conn_lws_log);

    memset(&info, 0, sizeof(info));
    loops[0] = loop;
    info.foreign_loops = loops;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = ctx->protocols;
    info.user = ctx;
    info.timeout_secs = 20;
    info.options = LWS_SERVER_OPTION_LIBUV;
    if (conf->tls_any) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        if (conf->ca != NULL) {
            /* Only this CA: not the system's ones as well. */
            info.client_ssl_ca_filepath = conf->ca;
            info.options |= LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
        }
    }
    /* libwebsockets would take a proxy from $http_proxy when none is given;
     * the agent's config is the only place that says which proxy to use. */
    if (conf->proxy_lws == NULL) {
        unsetenv("http_proxy");
    }
    ctx->lws = lws_create_context(&info);
    if (ctx->lws == NULL) {
        log_error("cannot create the WebSocket client context%s",
                  conf->ca != NULL ? " (is the CA file readable PEM?)" : "");
        free(ctx);
        return ERR_IO;
    }
    ctx->vhost = lws_get_vhost_by_name(ctx->lws, "default");
    if (ctx->vhost == NULL) {
        log_error("libwebsockets made no default vhost");
        lws_context_destroy(ctx->lws);
        free(ctx);
        return ERR_INTERNAL;
    }
    if (conf->proxy_lws != NULL && lws_set_proxy(ctx->vhost, conf->proxy_lws)) {
        log_error("libwebsockets refused the proxy address");
        lws_context_destroy(ctx->lws);
        free(ctx);
        return ERR_CONFIG;
    }
    *out = ctx;
    return ERR_OK;
}

void agent_ctx_free(struct agent_ctx *ctx)
{
    if (ctx == NULL) {
        return;
    }
    if (ctx->lws != NULL) {
        lws_context_destroy(ctx->lws);
        /* On a foreign loop the context closes its handles in callbacks:
         * let them run, then finish. */
        for (int i = 0; i < 100 && uv_run(ctx->loop, UV_RUN_NOWAIT) != 0; i++) {
        }
        lws_context_destroy(ctx->lws);
        uv_run(ctx->loop, UV_RUN_NOWAIT);
    }
    free(ctx);
}

size_t agent_ctx_online(const struct agent_ctx *ctx)
{
    return ctx->online;
}

size_t agent_ctx_count(const struct agent_ctx *ctx)
{
    return ctx->count;
}

/* --- handles ----------------------------------------------------------- */

static void conn_free_handle(uv_handle_t *h)
{
    free(h);
}

static void conn_close_poll(uv_poll_t **p)
{
    if (*p != NULL) {
        uv_close((uv_handle_t *)*p, conn_free_handle);
        *p = NULL;
    }
}

static void conn_close_check(uv_check_t **p)
{
    if (*p != NULL) {
        uv_close((uv_handle_t *)*p, conn_free_handle);
        *p = NULL;
    }
}

static void conn_set_poll(uv_poll_t *p, int *cur, int want, uv_poll_cb cb)
{
    if (p == NULL || *cur == want) {
        return;
    }
    if (want == 0) {
        uv_poll_stop(p);
    } else {
        uv_poll_start(p, want, cb);
    }
    *cur = want;
}

/* --- the bridge: socketpair <-> WebSocket ------------------------------ */

/*
 * The next frame, built here rather than by lws_write(): libwebsockets
 * 4.1 masks a client's payload one byte at a time, which cost about half
 * of the agent's CPU per tunnelled byte (bench/README.md). The frame is
 * the same RFC 6455 binary frame, FIN set, masked with a fresh random
 * key; the payload is copied and masked 8 bytes at a time, and the whole
 * frame goes out through lws_write(LWS_WRITE_RAW).
 */
static size_t conn_frame(uint8_t *out, const uint8_t *in, size_t n,
                         uint8_t opcode)
{
    uint8_t key[4], hdr[14];
    uint64_t k8, w;
    size_t hl = 0, i = 0;

    randombytes_buf(key, sizeof(key));
    hdr[hl++] = 0x80 | opcode; /* FIN */
    if (n < 126) {
        hdr[hl++] = (uint8_t)(0x80 | n);
    } else if (n <= 0xffff) {
        hdr[hl++] = 0x80 | 126;
        hdr[hl++] = (uint8_t)(n >> 8);
        hdr[hl++] = (uint8_t)n;
    } else {
        hdr[hl++] = 0x80 | 127;
        for (int s = 56; s >= 0; s -= 8) {
            hdr[hl++] = (uint8_t)((uint64_t)n >> s);
        }
    }
    memcpy(hdr + hl, key, 4);
    hl += 4;
    memcpy(out - hl, hdr, hl);
    memcpy(&k8, key, 4);
    memcpy((uint8_t *)&k8 + 4, key, 4);
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, in + i, 8);
        w ^= k8;
        memcpy(out + i, &w, 8);
    }
    for (; i < n; i++) {
        out[i] = in[i] ^ key[i & 3];
    }
    return hl;
}

/* Reads what libssh wrote into the pair, as the next frame to send. */
static void conn_bridge_read(struct agent_conn *c)
{
    ssize_t n;

    if (c->tx != NULL || c->wsi == NULL || !c->ws_up || c->bridge_fd < 0) {
        return;
    }
    c->out_seen = c->sock_cnt.out_bytes; /* read now: not again at turn end */
    for (;;) {
        n = read(c->bridge_fd, conn_scratch, sizeof(conn_scratch));
        if (n <= 0) {
            break;
        }
        c->tx = malloc(LWS_PRE + (size_t)n);
        if (c->tx == NULL) {
            conn_fail(c, "out of memory");
            return;
        }
        c->tx_hdr = conn_frame(c->tx + LWS_PRE, conn_scratch, (size_t)n, 0x2);
        c->tx_len = (size_t)n;
        /* At once when nothing else waits for the WRITEABLE callback and
         * the socket takes bytes now; libwebsockets finishes a partial
         * write itself before its next WRITEABLE callback, so frames stay
         * in order. Saves a round through the loop per frame (the hub does
         * the same: hub_ws_send_now). */
        if (c->close_pending || c->pong_len > 0 || c->pong_hdr > 0 ||
            lws_send_pipe_choked(c->wsi)) {
            lws_callback_on_writable(c->wsi);
            return;
        }
        n = lws_write(c->wsi, c->tx + LWS_PRE - c->tx_hdr,
                      c->tx_hdr + c->tx_len, LWS_WRITE_RAW);
        free(c->tx);
        c->tx = NULL;
        if (n < (ssize_t)(c->tx_hdr + c->tx_len)) {
            c->tx_len = 0;
            conn_fail(c, "WebSocket write failed");
            return;
        }
        if (c->tx_len < sizeof(conn_scratch)) {
            c->tx_len = 0;
            return; /* drained, most likely; the poll says if not */
        }
        c->tx_len = 0;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        conn_fail(c, "the SSH session ended");
    }
}

static int conn_bridge_flush(struct agent_conn *c)
{
    ssize_t n;

    while (c->rxp_off < c->rxp_len) {
        n = write(c->bridge_fd, c->rxp + c->rxp_off, c->rxp_len - c->rxp_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return ERR_OK;
            }
            return ERR_IO;
        }
        c->rxp_off += (size_t)n;
        c->fed = c->msgs_maybe = true;
    }
    free(c->rxp);
    c->rxp = NULL;
    c->rxp_len = c->rxp_off = 0;
    if (c->raw) {
        c->raw_more = true; /* read on: TLS may hold bytes poll misses */
    } else if (c->rx_paused && c->wsi != NULL) {
        lws_rx_flow_control(c->wsi, 1);
        c->rx_paused = false;
    }
    return ERR_OK;
}

/* Bytes from the server: into the pair, the rest kept (bounded). */
static int conn_bridge_write(struct agent_conn *c, const uint8_t *p, size_t len)
{
    ssize_t n = 0;
    uint8_t *b;

    if (c->bridge_fd < 0) {
        return ERR_OK; /* the SSH side is gone; closing */
    }
    if (c->rxp == NULL) {
        n = write(c->bridge_fd, p, len);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                return ERR_IO;
            }
            n = 0;
        }
        if (n > 0) {
            c->fed = c->msgs_maybe = true;
        }
        if ((size_t)n == len) {
            return ERR_OK;
        }
    }
    if (c->rxp_len - c->rxp_off + len - (size_t)n > CONN_RX_PENDING_MAX) {
        return ERR_TOO_LONG;
    }
    b = realloc(c->rxp, c->rxp_len + len - (size_t)n);
    if (b == NULL) {
        return ERR_NOMEM;
    }
    memcpy(b + c->rxp_len, p + n, len - (size_t)n);
    c->rxp = b;
    c->rxp_len += len - (size_t)n;
    if (!c->raw && !c->rx_paused && c->wsi != NULL) {
        lws_rx_flow_control(c->wsi, 0);
        c->rx_paused = true;
    }
    return ERR_OK;
}

/* --- our own reads of the WebSocket ------------------------------------ */

/*
 * libwebsockets 4.1's client parser handles every byte of a server's
 * frame in a state machine call of its own: ~70 % of the agent's CPU per
 * tunnelled byte from server to agent (bench/README.md). So once the SSH
 * session is authenticated, the agent reads the WebSocket's socket (or
 * libwebsockets' TLS session, SSL_read on the same SSL *) itself, 256 KiB
 * at a time, and decodes the frames with common/ws.c. libwebsockets keeps
 * the connection: writes, its keepalive PING, the close, the teardown.
 *
 * The switch is safe only where libwebsockets holds none of the server's
 * bytes (none read but not yet handed to us, no frame half parsed). Right
 * after the server's USERAUTH_SUCCESS is such a point: the server sends
 * nothing unprompted between that packet and our channel open, and
 * libssh has consumed the whole packet, so every byte the server sent
 * has reached us. Its receive flow is then stopped for good (no more
 * reads by libwebsockets) and ours begin. Should a server ever break
 * that rule, the bytes libwebsockets kept are missing from the stream:
 * the SSH session fails its MAC check and the agent reconnects; nothing
 * is misread.
 */

/* Ends the connection after our reads saw the server's side go away. */
static void conn_raw_lost(struct agent_conn *c)
{
    c->raw_eof = true;
    if (c->wsi != NULL) {
        /* libwebsockets closes it; CLIENT_CLOSED -> conn_closed() */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

/* Closes the WebSocket with a status (libwebsockets sends the CLOSE). */
static void conn_raw_close(struct agent_conn *c, unsigned code, const char *why)
{
    c->raw_eof = true;
    c->close_code = code;
    c->close_why = why;
    c->close_pending = true;
    if (c->wsi != NULL) {
        lws_callback_on_writable(c->wsi);
    }
}

/* Up to len bytes of the WebSocket: >0, 0 at EOF, -1 on error, -2 when
 * nothing is there now. */
static ssize_t conn_raw_recv(struct agent_conn *c, uint8_t *buf, size_t len)
{
    ssize_t n;

    if (c->raw_ssl != NULL) {
        int r, e;

        ERR_clear_error();
        r = SSL_read(c->raw_ssl, buf, (int)len);
        if (r > 0) {
            return r;
        }
        e = SSL_get_error(c->raw_ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            return -2;
        }
        return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    n = recv(c->raw_fd, buf, len, 0);
    if (n < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -2
                                                                         : -1;
    }
    return n;
}

/* Decodes p[len] (all of it) and acts on every frame; false once the
 * connection is ending. */
static bool conn_raw_frames(struct agent_conn *c, const uint8_t *p, size_t len)
{
    struct ws_ev ev;
    size_t used;
    int rc;

    while (len > 0) {
        ws_dec_next(&c->wsd, p, len, &used, &ev);
        p += used;
        len -= used;
        switch (ev.type) {
        case WS_EV_NONE:
            break;
        case WS_EV_DATA:
            if (ev.text) {
                conn_logf(c, LOG_ERROR,
                          "the server sent a text frame; closing (1003)");
                conn_raw_close(c, WS_CLOSE_BAD_DATA, "binary frames only");
                return false;
            }
            if (ev.len > 0 &&
                (rc = conn_bridge_write(c, ev.data, ev.len)) != ERR_OK) {
                conn_fail(c, "cannot pass server bytes to SSH: %s",
                          err_str(rc));
                return false;
            }
            break;
        case WS_EV_PING:
            /* The latest PING is the one to answer (RFC 6455 5.5.3). */
            c->pong_hdr = conn_frame(c->pong + LWS_PRE, ev.data, ev.len, 0xa);
            c->pong_len = ev.len;
            if (c->wsi != NULL) {
                lws_callback_on_writable(c->wsi);
            }
            break;
        case WS_EV_PONG:
            break;
        case WS_EV_CLOSE:
            conn_logf(c, LOG_WARN, "the server closed the WebSocket (%u%s%.*s)",
                      ev.code, ev.len > 0 ? ": " : "", (int)ev.len,
                      (const char *)ev.data);
            conn_raw_close(c, LWS_CLOSE_STATUS_NORMAL, NULL);
            return false;
        case WS_EV_ERROR:
            conn_fail(c, "bad WebSocket frame from the server: %s", ev.why);
            c->close_code = ev.code;
            c->close_why = "bad frame";
            c->raw_eof = true;
            return false;
        }
    }
    return true;
}

/* Reads what the server sent, a bounded amount per call; comes back on
 * the next loop turn if there may be more (libwebsockets' TLS session can
 * hold decrypted bytes that poll() does not see). */
static void conn_raw_read(struct agent_conn *c)
{
    bool got = false;
    ssize_t n;

    c->raw_more = false;
    for (int round = 0; round < 4; round++) {
        if (!c->raw || c->raw_eof || c->rxp != NULL || c->phase == PH_CLOSING ||
            c->phase == PH_IDLE) {
            break;
        }
        n = conn_raw_recv(c, conn_rbuf, sizeof(conn_rbuf));
        if (n == -2) {
            break;
        }
        if (n <= 0) {
            conn_raw_lost(c);
            break;
        }
        got = true;
        if (!conn_raw_frames(c, conn_rbuf, (size_t)n)) {
            break;
        }
        /* A short read emptied the socket: the next bytes wake the poll
         * (saves a recv() that would say EAGAIN). Not for TLS, whose
         * reads end at a record; SSL_has_pending() says if more wait. */
        if (c->raw_ssl != NULL ? !SSL_has_pending(c->raw_ssl)
                               : (size_t)n < sizeof(conn_rbuf)) {
            break;
        }
        if (round == 3) {
            c->raw_more = true;
        }
    }
    if (got && c->wsi != NULL) {
        /* Any bytes from the server prove it alive (protocol 1.5). */
        lws_validity_confirmed(c->wsi);
    }
}

static void conn_raw_cb(uv_poll_t *p, int status, int events)
{
    struct agent_conn *c = p->data;

    conn_raw_read(c);
    conn_pump(c);
}

/* Takes over the reads (see above). On any failure the reads simply stay
 * with libwebsockets. */
static void conn_raw_start(struct agent_conn *c)
{
    int fd;

    if (c->raw || c->wsi == NULL || c->rxp != NULL || c->rx_paused) {
        return;
    }
    /* The switch costs a descriptor (the dup). A process of many
     * connections (portcullis-agent-load, which budgets three descriptors
     * per agent) keeps libwebsockets' reads; the agent has one. */
    if (c->ctx->count > CONN_RAW_CONNS) {
        return;
    }
    fd = lws_get_socket_fd(c->wsi);
    if (fd < 0 || (c->raw_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        c->raw_fd = -1;
        return;
    }
    if ((c->raw_poll = malloc(sizeof(*c->raw_poll))) == NULL) {
        close(c->raw_fd);
        c->raw_fd = -1;
        return;
    }
    c->raw_ssl = lws_is_ssl(c->wsi) ? (void *)lws_get_ssl(c->wsi) : NULL;
    uv_poll_init(c->ctx->loop, c->raw_poll, c->raw_fd);
    c->raw_poll->data = c;
    c->raw_events = 0;
    ws_dec_init(&c->wsd);
    lws_rx_flow_control(c->wsi, 0);
    c->raw = true;
    c->raw_eof = false;
    c->raw_more = true; /* the first read on the next loop turn */
    conn_logf(c, LOG_DEBUG, "reading the WebSocket directly%s",
              c->raw_ssl != NULL ? " (TLS)" : "");
}

static void conn_bridge_cb(uv_poll_t *p, int status, int events)
{
    struct agent_conn *c = p->data;

    if (status < 0 || (events & UV_WRITABLE)) {
        if (conn_bridge_flush(c) != ERR_OK) {
            conn_fail(c, "the SSH session ended");
        }
    }
    if (status < 0 || (events & UV_READABLE)) {
        conn_bridge_read(c);
    }
    conn_pump(c);
}

/*
 * The end of a loop turn: what libssh wrote into the pair during the
 * turn's callbacks leaves now, as one frame. Read from the pair's read
 * event instead, a stream's status line and the channel confirmation or
 * the target's first bytes written by two callbacks of one turn went out
 * as two frames, each a send() and a turn of the server's loop, and the
 * pair's event woke the loop once more after every callback that wrote
 * (bench/README.md, sixth round). libssh's byte counter says whether it
 * wrote anything, so a turn that wrote nothing costs no read(). The
 * pair's read event stays as the fallback for what a full frame or a
 * choked WebSocket left behind.
 */
static void conn_flush_cb(uv_check_t *h)
{
    struct agent_conn *c = h->data;

    if (c->ssh == NULL || c->sock_cnt.out_bytes == c->out_seen ||
        c->tx != NULL) {
        return;
    }
    conn_bridge_read(c);
    conn_update_polls(c);
}

static void conn_ssh_cb(uv_poll_t *p, int status, int events)
{
    conn_pump(p->data);
}

static void conn_update_polls(struct agent_conn *c)
{
    int want = 0;

    if (c->bridge_poll != NULL) {
        if (c->tx == NULL && c->ws_up && c->phase != PH_CLOSING) {
            want |= UV_READABLE;
        }
        if (c->rxp != NULL) {
            want |= UV_WRITABLE;
        }
        conn_set_poll(c->bridge_poll, &c->bridge_events, want, conn_bridge_cb);
    }
    if (c->raw_poll != NULL) {
        want = 0;
        if (c->raw && !c->raw_eof && c->rxp == NULL && c->phase != PH_CLOSING) {
            want = UV_READABLE;
            if (c->raw_more) {
                want |= UV_WRITABLE; /* a callback on the next turn */
            }
        }
        conn_set_poll(c->raw_poll, &c->raw_events, want, conn_raw_cb);
    }
    if (c->ssh_poll != NULL) {
        want = UV_READABLE;
        if (c->ssh != NULL && c->ssh_owns_fd &&
            (ssh_get_poll_flags(c->ssh) & SSH_WRITE_PENDING)) {
            want |= UV_WRITABLE;
        }
        if (c->phase == PH_CLOSING) {
            want = 0;
        }
        conn_set_poll(c->ssh_poll, &c->ssh_events, want, conn_ssh_cb);
    }
}

/* The server this attempt dials (conf->servers; a cluster's nodes are
 * tried in turn, conn_closed). */
static const struct agent_server *conn_srv(const struct agent_conn *c)
{
    return &c->conf->servers[c->srv % c->conf->nservers];
}

/* --- teardown and reconnection ----------------------------------------- */

static void conn_teardown(struct agent_conn *c)
{
    stream_free_all(c);
    if (c->ann != NULL) {
        ssh_remove_channel_callbacks(c->ann, &c->ann_cb);
        ssh_channel_free(c->ann);
        c->ann = NULL;
    }
    free(c->ann_json);
    c->ann_json = NULL;
    conn_close_poll(&c->bridge_poll);
    conn_close_poll(&c->ssh_poll);
    conn_close_poll(&c->raw_poll);
    conn_close_check(&c->flush_check);
    c->bridge_events = c->ssh_events = c->raw_events = 0;
    if (c->raw_fd >= 0) {
        close(c->raw_fd);
        c->raw_fd = -1;
    }
    c->raw = c->raw_eof = c->raw_more = false;
    c->raw_ssl = NULL; /* libwebsockets' own */
    c->pong_len = c->pong_hdr = 0;
    c->close_code = 0;
    c->close_why = NULL;
    if (c->event != NULL) {
        if (c->ssh != NULL) {
            ssh_event_remove_session(c->event, c->ssh);
        }
        ssh_event_free(c->event);
        c->event = NULL;
    }
    if (c->ssh != NULL) {
        ssh_free(c->ssh); /* closes ssh_fd once ssh_connect() took it */
        c->ssh = NULL;
    }
    if (!c->ssh_owns_fd && c->ssh_fd >= 0) {
        close(c->ssh_fd);
    }
    c->ssh_fd = -1;
    c->ssh_owns_fd = false;
    if (c->bridge_fd >= 0) {
        close(c->bridge_fd);
        c->bridge_fd = -1;
    }
    free(c->tx);
    c->tx = NULL;
    c->tx_len = 0;
    free(c->rxp);
    c->rxp = NULL;
    c->rxp_len = c->rxp_off = 0;
    c->rx_paused = false;
    if (c->phase == PH_ONLINE) {
        c->ctx->online--;
    }
    c->ws_up = false;
    c->close_pending = false;
}

static void conn_connect(struct agent_conn *c);

static void conn_timer_cb(uv_timer_t *t)
{
    struct agent_conn *c = t->data;

    if (c->phase == PH_IDLE) {
        conn_connect(c);
    } else if (c->phase == PH_CLOSING) {
        if (c->wsi == NULL) {
            conn_closed(c);
        }
    } else if (c->phase != PH_ONLINE) {
        conn_fail(c, "no answer from the server within %d s",
                  CONN_HANDSHAKE_MS / 1000);
    }
}

/* The WebSocket is gone (or never came): free the SSH side, wait, retry. */
static void conn_closed(struct agent_conn *c)
{
    uint64_t w, delay;

    if (c->phase == PH_IDLE) {
        return;
    }
    if (c->phase == PH_ONLINE) {
        conn_logf(c, LOG_WARN, "connection to the server lost");
    } else if (c->phase == PH_WS) {
        conn_logf(c, LOG_WARN,
                  "cannot connect to %s: closed before the WebSocket "
                  "was up%s",
                  conn_srv(c)->url,
                  c->conf->proxy_lws != NULL
                      ? " (did the proxy refuse the CONNECT?)"
                  : conn_srv(c)->tls ? " (TLS handshake refused?)"
                                     : "");
    }
    if (c->up_since != 0 &&
        uv_now(c->ctx->loop) - c->up_since >= CONN_STABLE_MS) {
        c->wait_ms = CONN_WAIT_FIRST_MS;
    }
    c->up_since = 0;
    conn_teardown(c);
    c->phase = PH_IDLE;
    /* the next node of a cluster: the one this was may be gone for good */
    if (c->conf->nservers > 1) {
        c->srv = (c->srv + 1) % c->conf->nservers;
    }
    c->wsi = NULL;
    if (c->freeing) {
        return;
    }
    /* Uniform in [w/2, w], then double w up to the cap. */
    w = c->wait_ms;
    delay = w / 2 + randombytes_uniform((uint32_t)(w / 2 + 1));
    c->wait_ms = w * 2 > CONN_WAIT_MAX_MS ? CONN_WAIT_MAX_MS : w * 2;
    conn_logf(c, LOG_INFO, "reconnecting in %.1f s", (double)delay / 1000.0);
    uv_timer_start(c->timer, conn_timer_cb, delay, 0);
}

void conn_fail(struct agent_conn *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (c->phase == PH_CLOSING || c->phase == PH_IDLE) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    conn_logf(c, c->phase == PH_WS ? LOG_WARN : LOG_ERROR, "%s", msg);
    if (c->phase == PH_ONLINE) {
        c->ctx->online--;
    }
    c->phase = PH_CLOSING;
    if (c->wsi != NULL) {
        c->close_pending = true;
        lws_callback_on_writable(c->wsi);
    } else {
        /* No WebSocket to wait for: tear down from the loop, not from
         * inside whatever called us. */
        uv_timer_start(c->timer, conn_timer_cb, 0, 0);
    }
}

/* --- SSH: start, host key, handshake steps ----------------------------- */

static void conn_ann_exit_status(ssh_session s, ssh_channel ch, int status,
                                 void *arg)
{
    struct agent_conn *c = arg;

    c->ann_status = status;
    c->activity = true;
}

static int conn_ann_data(ssh_session s, ssh_channel ch, void *data,
                         uint32_t len, int is_stderr, void *arg)
{
    ((struct agent_conn *)arg)->activity = true;
    return 0; /* consumed later by ssh_channel_read_timeout */
}

static void conn_ann_event(ssh_session s, ssh_channel ch, void *arg)
{
    ((struct agent_conn *)arg)->activity = true;
}

static int conn_ssh_start(struct agent_conn *c)
{
    const struct agent_conf *cf = c->conf;
    int sp[2], zero = 0, verbosity = SSH_LOG_NOLOG;
    bool no = false;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sp) != 0) {
        conn_fail(c, "socketpair: %s", strerror(errno));
        return ERR_IO;
    }
    c->bridge_fd = sp[0];
    c->ssh_fd = sp[1];
    c->ssh_owns_fd = false;
    c->ssh_nonblock = false;
    c->ann_status = -1;
    if ((c->ssh = ssh_new()) == NULL) {
        conn_fail(c, "out of memory");
        return ERR_NOMEM;
    }
    if (ssh_options_set(c->ssh, SSH_OPTIONS_FD, &c->ssh_fd) < 0 ||
        ssh_options_set(c->ssh, SSH_OPTIONS_HOST, conn_srv(c)->host) < 0 ||
        ssh_options_set(c->ssh, SSH_OPTIONS_USER, cf->cred_id) < 0 ||
        ssh_options_set(c->ssh, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
        ssh_options_set(c->ssh, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
        ssh_options_set(c->ssh, SSH_OPTIONS_STRICTHOSTKEYCHECK, &zero) < 0) {
        conn_fail(c, "cannot set SSH options: %s", ssh_get_error(c->ssh));
        return ERR_INTERNAL;
    }
    ssh_set_blocking(c->ssh, 0);
    memset(&c->sock_cnt, 0, sizeof(c->sock_cnt));
    c->out_seen = 0;
    ssh_set_counters(c->ssh, &c->sock_cnt, NULL);
    c->bridge_poll = malloc(sizeof(*c->bridge_poll));
    c->ssh_poll = malloc(sizeof(*c->ssh_poll));
    c->flush_check = malloc(sizeof(*c->flush_check));
    if (c->bridge_poll == NULL || c->ssh_poll == NULL ||
        c->flush_check == NULL) {
        free(c->bridge_poll);
        free(c->ssh_poll);
        free(c->flush_check);
        c->bridge_poll = c->ssh_poll = NULL;
        c->flush_check = NULL;
        conn_fail(c, "out of memory");
        return ERR_NOMEM;
    }
    uv_poll_init(c->ctx->loop, c->bridge_poll, c->bridge_fd);
    uv_poll_init(c->ctx->loop, c->ssh_poll, c->ssh_fd);
    uv_check_init(c->ctx->loop, c->flush_check);
    c->bridge_poll->data = c;
    c->ssh_poll->data = c;
    c->flush_check->data = c;
    uv_check_start(c->flush_check, conn_flush_cb);
    uv_unref((uv_handle_t *)c->flush_check);
    c->bridge_events = c->ssh_events = 0;
    c->phase = PH_KEX;
    return ERR_OK;
}

/* OpenSSH-style SHA256 fingerprint of the server's key, compared in
 * constant time with the configured one. */
static bool conn_check_hostkey(struct agent_conn *c)
{
    ssh_key key = NULL;
    unsigned char *hash = NULL;
    size_t hlen = 0, want = strlen(c->conf->fingerprint);
    char *fp = NULL;
    bool ok = false;

    if (ssh_get_server_publickey(c->ssh, &key) != SSH_OK) {
        conn_fail(c, "the server presented no host key");
        return false;
    }
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) ==
        0) {
        fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    }
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(key);
    if (fp == NULL) {
        conn_fail(c, "cannot compute the server's host key fingerprint");
        return false;
    }
    ok = strlen(fp) == want &&
         sodium_memcmp(fp, c->conf->fingerprint, want) == 0;
    if (!ok) {
        conn_fail(c,
                  "host key mismatch: expected %s, the server presented %s; "
                  "not authenticating",
                  c->conf->fingerprint, fp);
    }
    ssh_string_free_char(fp);
    return ok;
}

/* Reads what the announcement channel holds; stderr into line. */
static void conn_ann_drain(struct agent_conn *c, char *line, size_t *llen)
{
    char buf[512];
    int n;

    while ((n = ssh_channel_read_timeout(c->ann, buf, sizeof(buf), 1, 0)) > 0) {
        for (int i = 0; i < n && *llen + 1 < CONN_ERRLINE_MAX; i++) {
            unsigned char ch = (unsigned char)buf[i];
            if (ch == '\n' || ch == '\r') {
                ch = ' ';
            } else if (ch < 0x20 || ch == 0x7f) {
                ch = '?';
            }
            line[(*llen)++] = (char)ch;
        }
        line[*llen] = '\0';
    }
    while (ssh_channel_read_timeout(c->ann, buf, sizeof(buf), 0, 0) > 0) {
    }
}

/* One step of the handshake; true if the phase moved. */
static bool conn_step(struct agent_conn *c)
{
    char *errline = c->ann_err;
    size_t elen;
    int rc;

    switch (c->phase) {
    case PH_KEX:
        rc = ssh_connect(c->ssh);
        c->ssh_owns_fd = true;
        if (c->event == NULL) {
            if ((c->event = ssh_event_new()) == NULL ||
                ssh_event_add_session(c->event, c->ssh) != SSH_OK) {
                conn_fail(c, "cannot set up the SSH event");
                return false;
            }
        }
        if (rc == SSH_AGAIN) {
            return false;
        }
        if (rc != SSH_OK) {
            conn_fail(c, "SSH handshake failed: %s", ssh_get_error(c->ssh));
            return false;
        }
        if (!conn_check_hostkey(c)) {
            return false;
        }
        conn_logf(c, LOG_DEBUG, "host key %s verified", c->conf->fingerprint);
        c->phase = PH_AUTH;
        return true;
    case PH_AUTH:
        rc = ssh_userauth_password(c->ssh, NULL, c->conf->cred_secret);
        if (rc == SSH_AUTH_AGAIN) {
            return false;
        }
        if (rc == SSH_AUTH_SUCCESS) {
            conn_raw_start(c);
            c->phase = PH_OPEN;
            return true;
        }
        if (rc == SSH_AUTH_ERROR) {
            conn_fail(c, "authentication failed: %s", ssh_get_error(c->ssh));
        } else {
            conn_fail(c,
                      "the server refused credential %s (wrong ID or "
                      "secret, or the credential was deleted)",
                      c->conf->cred_id);
        }
        return false;
    case PH_OPEN:
        if (c->ann == NULL) {
            if ((c->ann = ssh_channel_new(c->ssh)) == NULL) {
                conn_fail(c, "out of memory");
                return false;
            }
            memset(&c->ann_cb, 0, sizeof(c->ann_cb));
            c->ann_cb.userdata = c;
            c->ann_cb.channel_data_function = conn_ann_data;
            c->ann_cb.channel_exit_status_function = conn_ann_exit_status;
            c->ann_cb.channel_eof_function = conn_ann_event;
            c->ann_cb.channel_close_function = conn_ann_event;
            ssh_callbacks_init(&c->ann_cb);
            ssh_set_channel_callbacks(c->ann, &c->ann_cb);
        }
        rc = ssh_channel_open_session(c->ann);
        if (rc == SSH_AGAIN) {
            return false;
        }
        if (rc != SSH_OK) {
            conn_fail(c, "the server refused the announcement channel: %s",
                      ssh_get_error(c->ssh));
            return false;
        }
        c->phase = PH_SUBSYS;
        return true;
    case PH_SUBSYS:
        rc = ssh_channel_request_subsystem(c->ann, CONN_SUBSYSTEM);
        if (rc == SSH_AGAIN) {
            return false;
        }
        if (rc != SSH_OK) {
            conn_fail(c, "the server refused the %s subsystem", CONN_SUBSYSTEM);
            return false;
        }
        rc = facts_announcement(c->id, c->conf->name,
                                (const char *const *)c->conf->tags,
                                c->conf->ntags, &c->ann_json);
        if (rc != ERR_OK) {
            conn_fail(c, "cannot build the announcement: %s", err_str(rc));
            return false;
        }
        c->ann_len = strlen(c->ann_json);
        c->ann_off = 0;
        c->phase = PH_SEND;
        return true;
    case PH_SEND:
        while (c->ann_off < c->ann_len) {
            uint32_t win = ssh_channel_window_size(c->ann);
            size_t n = c->ann_len - c->ann_off;
            if (win == 0) {
                return false;
            }
            if (n > win) {
                n = win;
            }
            rc = ssh_channel_write(c->ann, c->ann_json + c->ann_off,
                                   (uint32_t)n);
            if (rc < 0) {
                conn_fail(c, "cannot send the announcement: %s",
                          ssh_get_error(c->ssh));
                return false;
            }
            if (rc == 0) {
                return false;
            }
            c->ann_off += (size_t)rc;
        }
        if (ssh_channel_send_eof(c->ann) != SSH_OK) {
            conn_fail(c, "cannot send the announcement: %s",
                      ssh_get_error(c->ssh));
            return false;
        }
        c->phase = PH_ANSWER;
        errline[0] = '\0';
        return true;
    case PH_ANSWER:
        elen = strlen(errline);
        conn_ann_drain(c, errline, &elen);
        if (c->ann_status < 0) {
            if (ssh_channel_is_closed(c->ann) || ssh_channel_is_eof(c->ann)) {
                if (ssh_channel_is_closed(c->ann)) {
                    conn_fail(c, "announcement refused: %s",
                              errline[0] ? errline
                                         : "the server closed the channel");
                }
            }
            return false;
        }
        if (c->ann_status != 0) {
            conn_fail(c, "announcement refused: %s",
                      errline[0] ? errline : "no reason given");
            return false;
        }
        ssh_remove_channel_callbacks(c->ann, &c->ann_cb);
        ssh_channel_close(c->ann);
        ssh_channel_free(c->ann);
        c->ann = NULL;
        free(c->ann_json);
        c->ann_json = NULL;
        c->phase = PH_ONLINE;
        c->ctx->online++;
        uv_timer_stop(c->timer);
        conn_logf(c, LOG_INFO, "online (server %s, credential %s)",
                  conn_srv(c)->url, c->conf->cred_id);
        return true;
    default:
        return false;
    }
}

void conn_pump(struct agent_conn *c)
{
    ssh_message msg;
    bool moved;
    int rc;

    if (c->in_pump) {
        c->activity = true;
        return;
    }
    c->in_pump = true;
    for (int iter = 0; iter < 256; iter++) {
        if (c->ssh == NULL || c->phase == PH_CLOSING || c->phase == PH_IDLE) {
            break;
        }
        moved = false;
        c->activity = false;
        /* libssh's socket is our socketpair's other end: it has input
         * only if we fed it since a poll found it empty, and wants a poll
         * for output only while it holds some or waits to hear POLLOUT
         * (ssh_get_poll_flags: libssh 0.10 asks after every send and
         * sends the next packet only after it heard). Once online, a pass
         * with neither skips the poll (a zero-timeout poll() each, about
         * half of the agent's polls per request, bench/README.md); other
         * libssh calls (channel reads and writes, ssh_message_get) still
         * process whatever arrives, as before. */
        if (c->event != NULL &&
            (c->fed || c->phase != PH_ONLINE ||
             ((ssh_get_status(c->ssh) | ssh_get_poll_flags(c->ssh)) &
              SSH_WRITE_PENDING))) {
            for (int k = 0; k < 64; k++) {
                rc = ssh_event_dopoll(c->event, 0);
                if (rc != SSH_OK) {
                    if (rc == SSH_AGAIN) {
                        c->fed = false; /* the pair was empty */
                    }
                    break;
                }
                moved = true;
                c->msgs_maybe = true;
            }
        }
        /* libssh made its socket blocking once connected (socket.c, on the
         * first POLLOUT). A blocking send into the full socketpair, whose
         * other end only this thread drains, would hang the agent for
         * good (seen after ~1 GiB through a tunnel): back to non-blocking
         * (libssh sends only after POLLOUT and takes a partial send as
         * progress). */
        if (!c->ssh_nonblock && c->phase > PH_KEX && c->ssh_fd >= 0) {
            (void)util_set_nonblock(c->ssh_fd);
            c->ssh_nonblock = true;
        }
        if (c->phase != PH_ONLINE) {
            moved |= conn_step(c);
            c->msgs_maybe = true; /* online next: ask at once */
        } else {
            /* A message is queued only by processing input, and input
             * exists only after feeding: once ssh_message_get found none
             * with the pair empty, asking again (one more zero-timeout
             * poll) waits for new input. */
            while (c->phase == PH_ONLINE && c->msgs_maybe) {
                if ((msg = ssh_message_get(c->ssh)) == NULL) {
                    if (!c->fed) {
                        c->msgs_maybe = false;
                    }
                    break;
                }
                stream_handle_message(c, msg);
                moved = true;
            }
            if (c->phase == PH_ONLINE) {
                moved |= stream_pump_all(c);
            }
        }
        if (c->phase != PH_CLOSING && c->ssh_owns_fd &&
            ssh_get_status(c->ssh) & (SSH_CLOSED | SSH_CLOSED_ERROR)) {
            const char *e = ssh_get_error(c->ssh);
            conn_fail(c, "the server ended the SSH session%s%s",
                      e != NULL && e[0] != '\0' ? ": " : "",
                      e != NULL ? e : "");
        }
        if (!moved && !c->activity) {
            break;
        }
    }
    conn_update_polls(c);
    c->in_pump = false;
}

/* --- the WebSocket ----------------------------------------------------- */

static void conn_connect(struct agent_conn *c)
{
    const struct agent_conf *cf = c->conf;
    const struct agent_server *sv = conn_srv(c);
    struct lws_client_connect_info ci;
    char host[300];

    memset(&ci, 0, sizeof(ci));
    if (strchr(sv->host, ':') != NULL) {
        snprintf(host, sizeof(host), "[%s]", sv->host);
    } else {
        snprintf(host, sizeof(host), "%s", sv->host);
    }
    ci.context = c->ctx->lws;
    ci.vhost = c->ctx->vhost;
    ci.address = sv->host;
    ci.port = sv->port;
    ci.path = sv->path;
    ci.host = host;
    ci.origin = host;
    ci.protocol = CONN_PROTO;
    ci.local_protocol_name = CONN_PROTO;
    ci.ssl_connection = sv->tls ? LCCSCF_USE_SSL : 0;
    ci.retry_and_idle_policy = &c->ctx->retry;
    ci.opaque_user_data = c;
    ci.pwsi = &c->wsi;
    c->phase = PH_WS;
    c->ws_up = false;
    c->tls_cert_seen = false;
    c->tls_cert_why = NULL;
    conn_logf(c, LOG_DEBUG, "connecting to %s%s", sv->url,
              cf->proxy_lws != NULL ? " through the proxy" : "");
    uv_timer_start(c->timer, conn_timer_cb, CONN_HANDSHAKE_MS, 0);
    if (lws_client_connect_via_info(&ci) == NULL) {
        c->wsi = NULL;
        if (c->phase == PH_WS) {
            conn_logf(c, LOG_WARN, "cannot connect to %s", sv->url);
            conn_closed(c);
        }
    }
}

/* What a failed TLS connect to a wss:// server says after libwebsockets'
 * own words ("connect SSL err 1: error:00000001:lib(0)::reason(1)" for
 * every cause): no certificate at all means the server did not answer as
 * a TLS server (a plain HTTP server or port answers a ClientHello with
 * an HTTP error); a refused one is named (its reason follows, from
 * conn_tls_verified). */
static const char *conn_tls_hint(const struct agent_conn *c, const char *why)
{
    if (!conn_srv(c)->tls ||
        (strstr(why, "SSL") == NULL && strstr(why, "TLS") == NULL)) {
        return "";
    }
    if (!c->tls_cert_seen) {
        return " (no TLS answer from the server: a plain HTTP server or "
               "port? Then the URL is ws://, or the server's TLS port)";
    }
    if (c->tls_cert_why != NULL) {
        return " (the server's TLS certificate was refused: ";
    }
    return " (TLS failed after the server's certificate was accepted)";
}

/* libwebsockets asks protocol 0 (ours) about each certificate of the
 * server's chain after OpenSSL checked it: noted for conn_tls_hint, the
 * verdict left to OpenSSL's (0: keep it). */
static void conn_tls_verified(struct agent_conn *c, X509_STORE_CTX *x,
                              int preverify_ok)
{
    int err;

    c->tls_cert_seen = true;
    if (preverify_ok || x == NULL || c->tls_cert_why != NULL) {
        return;
    }
    err = X509_STORE_CTX_get_error(x);
    switch (err) {
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        c->tls_cert_why = "not signed by a CA this agent trusts; give the "
                          "CA's certificate with --ca)";
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        c->tls_cert_why = "it does not name the host in the URL; use the "
                          "name the certificate was made for)";
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        c->tls_cert_why = "it has expired)";
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        c->tls_cert_why = "it is not valid yet: is this machine's clock "
                          "right?)";
        break;
    default:
        c->tls_cert_why = "see the line above for OpenSSL's reason)";
        break;
    }
}

static int conn_ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
                            void *user, void *in, size_t len)
{
    struct agent_conn *c = lws_get_opaque_user_data(wsi);
    int n;

    switch (reason) {
    case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
        if (c != NULL && (c->wsi == NULL || c->wsi == wsi)) {
            conn_tls_verified(c, user, (int)len);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (c == NULL || (c->wsi != NULL && c->wsi != wsi)) {
            return 0;
        }
        {
            const char *why = in != NULL ? (const char *)in : "unknown error";
            if (conn_srv(c)->tls && strstr(why, "lib(0)") != NULL) {
                /* OpenSSL 3's error code printed as a reason: no reason */
                why = "TLS handshake failed";
            } else if (strcmp(why, "proxy not h1") == 0) {
                why = "the proxy refused the CONNECT (wrong proxy user or "
                      "password, or the port is not allowed?)";
            }
            conn_logf(c, LOG_WARN, "cannot connect to %s: %s%s%s",
                      conn_srv(c)->url, why, conn_tls_hint(c, why),
                      c->tls_cert_why != NULL ? c->tls_cert_why : "");
        }
        c->wsi = NULL;
        if (c->phase == PH_WS) {
            c->phase = PH_CLOSING; /* logged: conn_closed stays quiet */
        }
        conn_closed(c);
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (c == NULL) {
            return -1;
        }
        c->wsi = wsi;
        c->ws_up = true;
        c->up_since = uv_now(c->ctx->loop);
        conn_logf(c, LOG_DEBUG, "WebSocket to %s established",
                  conn_srv(c)->url);
        if (conn_ssh_start(c) != ERR_OK) {
            return 0; /* conn_fail asked for the close */
        }
        conn_pump(c);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (c == NULL) {
            return -1;
        }
        if (c->raw) {
            /* Cannot happen: its receive flow is stopped (conn_raw_start).
             * If it does, the stream has a hole: end it. */
            conn_fail(c, "libwebsockets read the WebSocket after the switch");
            return 0;
        }
        if (!lws_frame_is_binary(wsi)) {
            conn_logf(c, LOG_ERROR,
                      "the server sent a text frame; closing (1003)");
            static unsigned char only_binary[] = "binary frames only";
            lws_close_reason(wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                             only_binary, sizeof(only_binary) - 1);
            return -1;
        }
        /* Any frame from the server proves it alive (protocol §1.5: PING
         * only after keepalive seconds of silence). */
        lws_validity_confirmed(wsi);
        n = conn_bridge_write(c, in, len);
        if (n != ERR_OK) {
            conn_fail(c, "cannot pass server bytes to SSH: %s", err_str(n));
        }
        conn_pump(c);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (c == NULL) {
            return -1;
        }
        if (c->close_pending) {
            lws_close_reason(wsi,
                             c->close_code != 0
                                 ? (enum lws_close_status)c->close_code
                                 : LWS_CLOSE_STATUS_NORMAL,
                             (unsigned char *)(uintptr_t)c->close_why,
                             c->close_why != NULL ? strlen(c->close_why) : 0);
            return -1;
        }
        if (c->pong_len > 0 || c->pong_hdr > 0) {
            n = lws_write(wsi, c->pong + LWS_PRE - c->pong_hdr,
                          c->pong_hdr + c->pong_len, LWS_WRITE_RAW);
            if (n < (int)(c->pong_hdr + c->pong_len)) {
                conn_logf(c, LOG_WARN, "WebSocket write failed");
                return -1;
            }
            c->pong_len = c->pong_hdr = 0;
            if (c->tx != NULL) {
                lws_callback_on_writable(wsi);
            }
            return 0;
        }
        if (c->tx != NULL) {
            n = lws_write(wsi, c->tx + LWS_PRE - c->tx_hdr,
                          c->tx_hdr + c->tx_len, LWS_WRITE_RAW);
            free(c->tx);
            c->tx = NULL;
            if (n < (int)(c->tx_hdr + c->tx_len)) {
                conn_logf(c, LOG_WARN, "WebSocket write failed");
                return -1;
            }
            c->tx_len = 0;
            conn_bridge_read(c);
            conn_update_polls(c);
        }
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c != NULL && len >= 2) {
            const uint8_t *p = in;
            conn_logf(c, LOG_WARN, "the server closed the WebSocket (%u%s%.*s)",
                      (unsigned)(p[0] << 8 | p[1]), len > 2 ? ": " : "",
                      (int)(len > 2 && len < 200 ? len - 2 : 0),
                      (const char *)in + 2);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        if (c == NULL || c->wsi != wsi) {
            return 0;
        }
        lws_set_opaque_user_data(wsi, NULL);
        c->wsi = NULL;
        conn_closed(c);
        return 0;
    default:
        return 0;
    }
}

/* --- public ------------------------------------------------------------ */

int agent_conn_new(struct agent_conn **out, struct agent_ctx *ctx,
                   const struct agent_conf *conf, const char *id)
{
    struct agent_conn *c;

    *out = NULL;
    if (id == NULL) {
        id = conf->id;
    }
    if (id == NULL || !agent_conf_valid_id(id)) {
        return ERR_INVALID;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL ||
        (c->timer = malloc(sizeof(*c->timer))) == NULL) {
        free(c);
        return ERR_NOMEM;
    }
    c->ctx = ctx;
    c->conf = conf;
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->bridge_fd = c->ssh_fd = c->raw_fd = -1;
    c->wait_ms = CONN_WAIT_FIRST_MS;
    uv_timer_init(ctx->loop, c->timer);
    c->timer->data = c;
    ctx->count++;
    *out = c;
    return ERR_OK;
}

void agent_conn_start(struct agent_conn *c)
{
    if (c->phase == PH_IDLE) {
        conn_connect(c);
    }
}

bool agent_conn_online(const struct agent_conn *c)
{
    return c->phase == PH_ONLINE;
}

void agent_conn_free(struct agent_conn *c)
{
    if (c == NULL) {
        return;
    }
    c->freeing = true;
    if (c->wsi != NULL) {
        struct lws *wsi = c->wsi;
        lws_set_opaque_user_data(wsi, NULL);
        c->wsi = NULL;
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    if (c->phase != PH_IDLE) {
        if (c->phase == PH_CLOSING) {
            c->phase = PH_WS; /* online was already counted down */
        }
        conn_teardown(c);
        c->phase = PH_IDLE;
    }
    uv_timer_stop(c->timer);
    uv_close((uv_handle_t *)c->timer, conn_free_handle);
    c->ctx->count--;
    free(c);
}
