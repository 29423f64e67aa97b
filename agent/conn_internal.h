/*
 * Inside an agent connection: shared by conn.c (WebSocket, SSH session,
 * announcement, reconnects) and stream.c (direct-tcpip streams). Not for
 * other modules.
 */
#ifndef PORTCULLIS_AGENT_CONN_INTERNAL_H
#define PORTCULLIS_AGENT_CONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h> /* the ssh_message accessors */
#include <libwebsockets.h>
#include <uv.h>

#include "agent/agent_conf.h"
#include "agent/allow.h"
#include "agent/conn.h"
#include "common/ws.h"

#define CONN_WS_CHUNK 65536 /* bytes per WebSocket message we send */
#define CONN_RX_PENDING_MAX (1024 * 1024) /* WS bytes not yet in the pair */
#define STREAM_BUF 65536                  /* per direction, per stream */
/* more than the 32,000 bytes libssh grants on accepting a channel: asked
 * for once, it grows the window at once (stream.c, stream_grow_window) */
#define CONN_WINDOW_ASK 32768
#define CONN_ERRLINE_MAX 256       /* the server's refusal line we keep */
#define CONN_RAW_READ (256 * 1024) /* our reads of the WebSocket's socket */
#define CONN_RAW_CONNS 16          /* our own reads only with this many conns */

enum conn_phase {
    PH_IDLE = 0, /* waiting to (re)connect */
    PH_WS,       /* WebSocket connecting */
    PH_KEX,      /* ssh_connect: key exchange */
    PH_AUTH,     /* password authentication */
    PH_OPEN,     /* opening the announcement channel */
    PH_SUBSYS,   /* subsystem request announce@portcullis */
    PH_SEND,     /* writing the announcement, then EOF */
    PH_ANSWER,   /* waiting for exit-status */
    PH_ONLINE,   /* accepted: serving streams */
    PH_CLOSING,  /* WebSocket closing; teardown follows */
};

struct agent_stream;

struct agent_ctx {
    uv_loop_t *loop;
    const struct agent_conf *conf;
    struct lws_context *lws;
    struct lws_vhost *vhost;
    struct lws_protocols protocols[2];
    lws_retry_bo_t retry; /* keepalive PING and hang-up times */
    size_t online;
    size_t count;
    bool quiet;
};

struct agent_conn {
    struct agent_ctx *ctx;
    const struct agent_conf *conf;
    char id[AGENT_ID_MAX + 1];
    enum conn_phase phase;
    bool freeing; /* agent_conn_free() is running */
    size_t srv;   /* the conf->servers entry this attempt dials */

    /* WebSocket side. */
    struct lws *wsi;
    bool ws_up; /* CLIENT_ESTABLISHED seen */
    /* This attempt's TLS certificate check: whether the server sent a
     * certificate at all, and why it was refused (static text, or NULL). */
    bool tls_cert_seen;
    const char *tls_cert_why;
    bool close_pending; /* close the WebSocket at the next writeable */
    uint8_t *tx;        /* LWS_PRE + up to CONN_WS_CHUNK, or NULL */
    size_t tx_len;
    size_t tx_hdr; /* frame header bytes just before tx + LWS_PRE */
    uint8_t *rxp;  /* WS bytes waiting to go into the pair */
    size_t rxp_len, rxp_off;
    bool rx_paused;
    unsigned close_code;   /* for close_pending: 0 = normal (1000) */
    const char *close_why; /* its reason text (static), or NULL */

    /* Our own reads of the WebSocket (conn.c, conn_raw_start): once the
     * SSH session is authenticated, the server's frames are read here in
     * large reads and decoded by common/ws.c, not by libwebsockets.
     * Writes still go through lws_write(). */
    bool raw;      /* reads are ours */
    bool raw_eof;  /* the server's side ended (EOF, error, CLOSE) */
    bool raw_more; /* read again on the next loop turn */
    int raw_fd;    /* dup() of the WebSocket's socket, for raw_poll */
    void *raw_ssl; /* libwebsockets' SSL * when over TLS, else NULL */
    uv_poll_t *raw_poll;
    int raw_events;
    struct ws_dec wsd;
    uint8_t pong[LWS_PRE + 6 + WS_CTL_MAX]; /* a PONG to send, framed */
    size_t pong_len, pong_hdr;              /* 0: none */

    /* The socketpair: bridge_fd is ours, ssh_fd belongs to libssh. */
    int bridge_fd;
    int ssh_fd;
    uv_poll_t *bridge_poll;
    int bridge_events;
    uv_poll_t *ssh_poll;
    int ssh_events;
    /* What libssh wrote into the pair leaves as one frame per loop turn:
     * read by flush_check (after every callback of the turn ran) when
     * libssh's byte counter moved since the last read, not by the pair's
     * read event in the next turn (conn.c, conn_flush_cb). */
    uv_check_t *flush_check;
    struct ssh_counter_struct sock_cnt; /* libssh's socket counter */
    uint64_t out_seen;                  /* its out_bytes at the last read */
    bool ssh_owns_fd;  /* ssh_connect() took ssh_fd: ssh_free closes it */
    bool ssh_nonblock; /* ssh_fd made non-blocking again after connect */

    /* SSH side. */
    ssh_session ssh;
    ssh_event event;
    ssh_channel ann; /* the announcement channel */
    struct ssh_channel_callbacks_struct ann_cb;
    char *ann_json;
    size_t ann_len, ann_off;
    int ann_status;                 /* exit-status, -1 until it arrives */
    char ann_err[CONN_ERRLINE_MAX]; /* its stderr line, cleaned */
    bool activity;                  /* a callback saw something: pump again */
    /* bytes went into the socketpair since libssh's last poll of its end
     * found nothing to read: only then can a poll of it find input (we are
     * its only writer), so conn_pump skips ssh_event_dopoll otherwise */
    bool fed;
    /* libssh may hold a queued message (channel open): set whenever it
     * may have processed input, cleared when ssh_message_get found none
     * with the socketpair known empty */
    bool msgs_maybe;
    bool in_pump;

    struct agent_stream *streams; /* doubly linked */
    size_t nstreams;

    /* Reconnection. */
    uv_timer_t *timer; /* retry wait, or the handshake deadline */
    uint64_t wait_ms;  /* current backoff ceiling w */
    uint64_t up_since; /* uv_now() when the WebSocket came up */
};

/* conn.c */
void conn_logf(const struct agent_conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends the connection: logs why (at error level) and closes the
 * WebSocket; teardown and the retry follow. */
void conn_fail(struct agent_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Runs the SSH side until nothing moves (every event ends here). */
void conn_pump(struct agent_conn *c);

/* stream.c */
/* A message libssh queued while online: a channel open (direct-tcpip or
 * anything else) or a request; takes msg. */
void stream_handle_message(struct agent_conn *c, ssh_message msg);
/* Moves bytes of every stream; returns true if anything moved. */
bool stream_pump_all(struct agent_conn *c);
/* Frees every stream of c (the session is going away). */
void stream_free_all(struct agent_conn *c);

#endif
