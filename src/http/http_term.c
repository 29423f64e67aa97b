/*
 * The browser terminal: the WebSocket GET /api/v1/terminal (subprotocol
 * portcullis-terminal.v1, docs/api.md) bridged to an SSH session that the
 * main process opens, as a client, on its own SSH proxy.
 *
 * Why a client of our own proxy: a browser's shell then takes exactly the
 * path of a native client's (session child in its sandbox, monitor,
 * policy, relay, report row, recording), with nothing duplicated here.
 * The client logs in as "<user name>#<asset ID>" with a one-time ticket
 * (auth/webticket.h) as its password, bound to this connection's own
 * address; the monitor redeems it, puts the browser's address into the
 * session and asks for TOTP (keyboard-interactive) when the user has it,
 * and this file forwards that prompt to the page.
 *
 *   page --{"type":"auth",token,asset,cols,rows}--> here: the token is
 *        checked by the REST API's own code (http_dispatch of GET
 *        /api/v1/me), a ticket issued, TCP to the proxy, key exchange
 *        (the proxy's key must be our own host key), password = ticket,
 *        [keyboard-interactive: {"type":"prompt"} <-> {"type":"answer"}],
 *        session channel, pty-req, shell -> {"type":"ready"}
 *   then binary frames both ways; {"type":"resize"} -> window-change;
 *   the end: {"type":"exit","status":N} or {"type":"error","detail":...}
 *   and the WebSocket closes.
 *
 * Flow control both ways, with bounded memory, by the shared pump
 * (common/chanpump.h, relay.c's backpressure as its contract) with the
 * WebSocket as its local end: bytes from the channel are read only while
 * the queue towards the WebSocket has room (TERM_DOWN_MAX), so a fast
 * shell is held back by the SSH window; bytes from the page wait in a
 * buffer the SSH window drains, and the WebSocket's reading is paused
 * (lws_rx_flow_control) while it holds TERM_UP_HIGH or more. The pump
 * wipes its buffers (keystrokes may be passwords). The channel's stderr
 * is read here, for the proxy's own "portcullis: <why>" line.
 *
 * The libssh session is non-blocking and driven by loop events on its
 * socket (as the hub drives its server sessions): every step (connect,
 * authentication, channel requests) is retried when the socket is ready
 * until it stops answering SSH_AGAIN. Everything runs in the loop's one
 * thread; callbacks of libwebsockets only queue and ask for a write.
 *
 * Ownership: struct term belongs to its WebSocket (per-session data holds
 * the pointer) and is freed when the WebSocket closes, with the SSH
 * session, the socket, the timer and every buffer.
 */
#include "http/http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <sodium.h>

#include "auth/webticket.h"
#include "common/chanpump.h"
#include "common/err.h"
#include "common/hostkey.h"
#include "common/log.h"
#include "common/util.h"

#define TERM_MAX 256              /* open terminals, all users */
#define TERM_DOWN_MAX (64 * 1024) /* queued towards the page */
#define TERM_UP_HIGH (64 * 1024)  /* from the page: pause reading above */
#define TERM_UP_MAX (1024 * 1024) /* hard ceiling (frames in flight) */
#define TERM_READ_CHUNK 16384
#define TERM_AUTH_MS 10000   /* for the first message */
#define TERM_LOGIN_MS 120000 /* to ready, a TOTP prompt included */

enum term_state {
    TS_AUTH = 0, /* waiting for the page's auth message */
    TS_CHECK,    /* its token is being checked (off the loop) */
    TS_TCP,      /* non-blocking connect to the proxy */
    TS_SSH,      /* key exchange */
    TS_PASSWORD, /* the ticket */
    TS_KBD,      /* keyboard-interactive, asking */
    TS_PROMPT,   /* a prompt is with the page */
    TS_OPEN,     /* opening the session channel */
    TS_PTY,      /* pty-req */
    TS_SHELL,    /* shell */
    TS_RUNNING,  /* bytes flow */
    TS_DONE,     /* the last message is queued; close once it is out */
};

/* A frame towards the page. */
struct term_frame {
    struct term_frame *next;
    bool binary;
    size_t len;
    uint8_t data[]; /* LWS_PRE bytes of room, then the payload */
};

struct term {
    struct http *h;
    struct lws *wsi;
    enum term_state state;
    char id[9]; /* for log lines */
    char browser_ip[WEBTICKET_IP_MAX + 1];
    uint16_t browser_port;
    char user_id[STORE_ID_MAX + 1];
    char user_name[STORE_NAME_MAX + 1];
    char asset_id[STORE_ID_MAX + 1];
    unsigned cols, rows;
    bool resize_pending;
    bool prompted; /* a TOTP prompt was answered */
    char ticket[WEBTICKET_STR_LEN + 1];
    char answer[HTTP_TERM_TEXT_MAX + 1];
    bool answer_ready;
    uint64_t timer;

    int fd; /* the socket to the proxy, owned by s once s exists */
    ssh_session s;
    ssh_event ev;
    ssh_channel ch;
    struct ssh_channel_callbacks_struct ch_cb;
    struct chanpump_ssh sx; /* the pump: channel <-> the WebSocket */
    struct chanpump pump;
    bool queue_failed; /* the pump's failure was a frame not queued */
    int exit_status;   /* -1 until the shell's exit status arrives */
    bool stderr_line;  /* inside a "portcullis: " line on stderr */
    char why[256];
    size_t why_len;

    /* text messages of the page, assembled from fragments */
    char msg[HTTP_TERM_MSG_MAX];
    size_t msg_len;
    bool msg_too_long;

    /* from the page, waiting for the SSH window */
    uint8_t *up;
    size_t up_len, up_cap;
    bool rx_paused;

    /* towards the page */
    struct term_frame *out_head, *out_tail;
    size_t out_bytes;

    bool in_service;
};

struct term_pss {
    struct term *t;
};

const size_t http_term_pss_size = sizeof(struct term_pss);

/* --- the page's messages (pure, fuzzed: fuzz/fuzz_term_msg.c) --------- */

static bool term_json_str(json_t *v, char *out, size_t outlen)
{
    const char *s;
    size_t n;

    if (!json_is_string(v)) {
        return false;
    }
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n >= outlen || memchr(s, '\0', n) != NULL) {
        return false;
    }
    memcpy(out, s, n + 1);
    return true;
}

static bool term_json_dim(json_t *v, unsigned *out)
{
    json_int_t n;

    if (!json_is_integer(v)) {
        return false;
    }
    n = json_integer_value(v);
    if (n < 1 || n > HTTP_TERM_DIM_MAX) {
        return false;
    }
    *out = (unsigned)n;
    return true;
}

int http_term_msg_parse(const char *s, size_t len, struct http_term_msg *out,
                        const char **why)
{
    static const struct {
        const char *name;
        int type;
        size_t nkeys;
    } types[] = {
        {"auth", HTTP_TERM_AUTH, 5},
        {"answer", HTTP_TERM_ANSWER, 2},
        {"resize", HTTP_TERM_RESIZE, 3},
    };
    json_t *doc = NULL, *type;
    json_error_t jerr;
    const char *tname, *w = NULL;
    size_t i;
    int r = ERR_INVALID;

    memset(out, 0, sizeof(*out));
    if (len == 0 || len > HTTP_TERM_MSG_MAX) {
        w = "the message is empty or too long";
        goto out;
    }
    doc = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        w = "the message is not a JSON object";
        goto out;
    }
    type = json_object_get(doc, "type");
    tname = json_is_string(type) ? json_string_value(type) : "";
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(tname, types[i].name) == 0) {
            break;
        }
    }
    if (i == sizeof(types) / sizeof(types[0])) {
        w = "unknown message type";
        goto out;
    }
    /* Exactly the type's keys: each is looked up below, so a count that
     * matches means nothing else is there. */
    if (json_object_size(doc) != types[i].nkeys) {
        w = "missing or unknown fields";
        goto out;
    }
    out->type = types[i].type;
    switch (out->type) {
    case HTTP_TERM_AUTH:
        if (!term_json_str(json_object_get(doc, "token"), out->token,
                           sizeof(out->token)) ||
            !term_json_str(json_object_get(doc, "asset"), out->asset,
                           sizeof(out->asset)) ||
            !term_json_dim(json_object_get(doc, "cols"), &out->cols) ||
            !term_json_dim(json_object_get(doc, "rows"), &out->rows)) {
            w = "auth needs token, asset, cols and rows";
            goto out;
        }
        break;
    case HTTP_TERM_ANSWER:
        if (!term_json_str(json_object_get(doc, "text"), out->text,
                           sizeof(out->text))) {
            w = "answer needs a text";
            goto out;
        }
        break;
    case HTTP_TERM_RESIZE:
        if (!term_json_dim(json_object_get(doc, "cols"), &out->cols) ||
            !term_json_dim(json_object_get(doc, "rows"), &out->rows)) {
            w = "resize needs cols and rows";
            goto out;
        }
        break;
    }
    r = ERR_OK;
out:
    json_decref(doc);
    if (r != ERR_OK) {
        sodium_memzero(out, sizeof(*out));
    }
    if (why != NULL) {
        *why = w;
    }
    return r;
}

/* --- towards the page ---------------------------------------------------- */

static bool term_queue(struct term *t, bool binary, const void *p, size_t len)
{
    struct term_frame *f;

    if (t->wsi == NULL) {
        return true;
    }
    if ((f = malloc(sizeof(*f) + LWS_PRE + len)) == NULL) {
        return false;
    }
    f->next = NULL;
    f->binary = binary;
    f->len = len;
    memcpy(f->data + LWS_PRE, p, len);
    if (t->out_tail != NULL) {
        t->out_tail->next = f;
    } else {
        t->out_head = f;
    }
    t->out_tail = f;
    t->out_bytes += len;
    lws_callback_on_writable(t->wsi);
    return true;
}

static void term_queue_json(struct term *t, json_t *doc)
{
    char *s = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

    if (s != NULL) {
        (void)term_queue(t, false, s, strlen(s));
    }
    free(s);
    json_decref(doc);
}

static void term_send_type(struct term *t, const char *type)
{
    term_queue_json(t, json_pack("{s:s}", "type", type));
}

static void term_release(struct term *t);

/* Ends the session with words for the page; the WebSocket closes once
 * they are out. */
static void term_fail(struct term *t, const char *detail)
{
    if (t->state == TS_DONE) {
        return;
    }
    log_info("terminal %s (%s on %s from %s): %s", t->id,
             t->user_name[0] ? t->user_name : "-",
             t->asset_id[0] ? t->asset_id : "-", t->browser_ip, detail);
    term_queue_json(t,
                    json_pack("{s:s, s:s}", "type", "error", "detail", detail));
    t->state = TS_DONE;
    term_release(t);
}

/* --- the SSH side ----------------------------------------------------------
 */

static void term_service(struct term *t);

static void term_on_fd(struct loop *l, int fd, int events, void *arg)
{
    term_service(arg);
}

static void term_on_timer(struct loop *l, void *arg)
{
    struct term *t = arg;

    t->timer = 0;
    if (t->state < TS_RUNNING) {
        term_fail(t, t->state == TS_AUTH    ? "no auth message in time"
                     : t->state == TS_CHECK ? "the token check did not "
                                              "finish in time"
                                            : "the login did not finish in "
                                              "time");
    }
}

/* Which socket events the current step waits for. */
static void term_watch(struct term *t)
{
    int ev = LOOP_READ;

    if (t->fd < 0 || t->state == TS_DONE) {
        return;
    }
    if (t->state == TS_TCP ||
        (t->s != NULL && (ssh_get_poll_flags(t->s) & SSH_WRITE_PENDING))) {
        ev |= LOOP_WRITE;
    }
    if (t->state == TS_TCP) {
        ev = LOOP_WRITE;
    }
    if (loop_fd_events(t->h->loop, t->fd) == 0) {
        (void)loop_add_fd(t->h->loop, t->fd, ev, term_on_fd, t);
    } else if (loop_fd_events(t->h->loop, t->fd) != ev) {
        (void)loop_mod_fd(t->h->loop, t->fd, ev);
    }
}

/* Closes the SSH side (not the WebSocket). */
static void term_release(struct term *t)
{
    if (t->timer != 0) {
        loop_del_timer(t->h->loop, t->timer);
        t->timer = 0;
    }
    if (t->fd >= 0) {
        loop_del_fd(t->h->loop, t->fd);
    }
    if (t->ticket[0] != '\0') {
        webticket_revoke(t->h->tickets, t->ticket);
        sodium_memzero(t->ticket, sizeof(t->ticket));
    }
    sodium_memzero(t->answer, sizeof(t->answer));
    if (t->ch != NULL) {
        ssh_remove_channel_callbacks(t->ch, &t->ch_cb);
        if (!ssh_channel_is_closed(t->ch)) {
            (void)ssh_channel_close(t->ch);
        }
        ssh_channel_free(t->ch);
        t->ch = NULL;
    }
    chanpump_free(&t->pump);
    if (t->ev != NULL) {
        if (t->s != NULL) {
            ssh_event_remove_session(t->ev, t->s);
        }
        ssh_event_free(t->ev);
        t->ev = NULL;
    }
    if (t->s != NULL) {
        ssh_disconnect(t->s); /* closes t->fd */
        ssh_free(t->s);
        t->s = NULL;
        t->fd = -1;
    }
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
}

static void term_on_exit_status(ssh_session s, ssh_channel ch, int status,
                                void *userdata)
{
    ((struct term *)userdata)->exit_status = status;
}

static void term_on_exit_signal(ssh_session s, ssh_channel ch,
                                const char *signal, int core,
                                const char *errmsg, const char *lang,
                                void *userdata)
{
    ((struct term *)userdata)->exit_status = 128;
}

/* The proxy's address: its own listen address, or loopback for a
 * wildcard. */
static int term_proxy_addr(const struct config *cfg,
                           struct sockaddr_storage *ss, socklen_t *sl)
{
    const char *l = cfg->ssh_listen != NULL ? cfg->ssh_listen : "";
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (l[0] == '\0' || strcmp(l, "0.0.0.0") == 0 || strcmp(l, "::") == 0 ||
        strcmp(l, "*") == 0) {
        l = "127.0.0.1";
    }
    if (inet_pton(AF_INET, l, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)cfg->ssh_port);
        *sl = sizeof(*sin);
        return ERR_OK;
    }
    if (inet_pton(AF_INET6, l, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)cfg->ssh_port);
        *sl = sizeof(*sin6);
        return ERR_OK;
    }
    return ERR_CONFIG;
}

static bool term_sock_name(int fd, char *ip, size_t iplen, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        return false;
    }
    if (ss.ss_family == AF_INET) {
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        return inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip,
                         (socklen_t)iplen) != NULL;
    }
    if (ss.ss_family == AF_INET6) {
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        return inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip,
                         (socklen_t)iplen) != NULL;
    }
    return false;
}

/* Starts the TCP connection and issues the ticket bound to it. */
static void term_connect(struct term *t)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    char lip[WEBTICKET_IP_MAX + 1];
    uint16_t lport = 0;
    int r;

    if (term_proxy_addr(t->h->cfg, &ss, &sl) != ERR_OK) {
        term_fail(t, "the SSH proxy's address is not usable");
        return;
    }
    t->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->fd < 0) {
        term_fail(t, "cannot open a connection to the SSH proxy");
        return;
    }
    if (connect(t->fd, (struct sockaddr *)&ss, sl) != 0 &&
        errno != EINPROGRESS) {
        term_fail(t, "the SSH proxy cannot be reached");
        return;
    }
    if (!term_sock_name(t->fd, lip, sizeof(lip), &lport)) {
        term_fail(t, "cannot open a connection to the SSH proxy");
        return;
    }
    r = webticket_issue(t->h->tickets, t->user_id, t->asset_id, lip, lport,
                        t->browser_ip, t->browser_port, util_mono_ms(),
                        t->ticket);
    if (r != ERR_OK) {
        term_fail(t, r == ERR_DENIED ? "too many terminals are opening; try "
                                       "again"
                                     : "cannot open a terminal");
        return;
    }
    log_info("terminal %s: %s on %s from %s port %u: connecting from port %u",
             t->id, t->user_name, t->asset_id, t->browser_ip,
             (unsigned)t->browser_port, (unsigned)lport);
    t->state = TS_TCP;
}

static int term_ssh_new(struct term *t)
{
    char user[STORE_NAME_MAX + STORE_ID_MAX + 2];
    int no = 0, yes = 1;
    long timeout = 30;

    snprintf(user, sizeof(user), "%s#%s", t->user_name, t->asset_id);
    if ((t->s = ssh_new()) == NULL || (t->ev = ssh_event_new()) == NULL) {
        return ERR_NOMEM;
    }
    if (ssh_options_set(t->s, SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK ||
        ssh_options_set(t->s, SSH_OPTIONS_FD, &t->fd) != SSH_OK ||
        ssh_options_set(t->s, SSH_OPTIONS_HOST, "127.0.0.1") != SSH_OK ||
        ssh_options_set(t->s, SSH_OPTIONS_USER, user) != SSH_OK ||
        ssh_options_set(t->s, SSH_OPTIONS_NODELAY, &yes) != SSH_OK ||
        ssh_options_set(t->s, SSH_OPTIONS_TIMEOUT, &timeout) != SSH_OK ||
        ssh_options_set(t->s, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") != SSH_OK ||
        ssh_options_set(t->s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") !=
            SSH_OK) {
        return ERR_INTERNAL;
    }
    ssh_set_blocking(t->s, 0);
    return ERR_OK;
}

/* The proxy must present our own host key: anything else on that port is
 * not us. */
static bool term_hostkey_ok(struct term *t)
{
    char want[HOSTKEY_FP_MAX];
    ssh_key key = NULL;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp = NULL;
    bool ok = false;

    if (hostkey_fingerprint(t->h->cfg->ssh_host_key, want, sizeof(want)) ==
            ERR_OK &&
        ssh_get_server_publickey(t->s, &key) == SSH_OK &&
        ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) ==
            0 &&
        (fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash,
                                       hlen)) != NULL) {
        ok = strcmp(fp, want) == 0;
    }
    ssh_string_free_char(fp);
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(key);
    return ok;
}

/* One keyboard-interactive round: a prompt goes to the page. */
static void term_kbd(struct term *t)
{
    const char *prompt;
    char echo = 0;
    int rc;

    for (;;) {
        rc = ssh_userauth_kbdint(t->s, NULL, NULL);
        if (rc == SSH_AUTH_AGAIN) {
            return;
        }
        if (rc == SSH_AUTH_SUCCESS) {
            t->state = TS_OPEN;
            return;
        }
        if (rc != SSH_AUTH_INFO) {
            term_fail(t, t->prompted ? "the TOTP code was not accepted"
                                     : "authentication failed");
            return;
        }
        if (ssh_userauth_kbdint_getnprompts(t->s) == 0) {
            continue; /* an empty round: answer it at once */
        }
        if (ssh_userauth_kbdint_getnprompts(t->s) != 1 ||
            (prompt = ssh_userauth_kbdint_getprompt(t->s, 0, &echo)) == NULL) {
            term_fail(t, "authentication failed");
            return;
        }
        term_queue_json(t, json_pack("{s:s, s:s, s:b}", "type", "prompt",
                                     "text", prompt, "echo", echo != 0));
        t->state = TS_PROMPT;
        return;
    }
}

/* The channel's callbacks only take note (chanpump.h). */
static int term_on_data(ssh_session s, ssh_channel ch, void *data, uint32_t len,
                        int is_stderr, void *userdata)
{
    struct term *t = userdata;

    if (!is_stderr) {
        chanpump_note_data(&t->pump, len);
    }
    return 0;
}

static void term_on_eof(ssh_session s, ssh_channel ch, void *userdata)
{
    chanpump_note_eof(&((struct term *)userdata)->pump);
}

static void term_on_close(ssh_session s, ssh_channel ch, void *userdata)
{
    chanpump_note_close(&((struct term *)userdata)->pump);
}

/* --- the WebSocket as the pump's local end --- */

/* The page's bytes, as the receive callback buffered them. */
static ssize_t term_ws_read(void *arg, uint8_t *p, size_t len)
{
    struct term *t = arg;
    size_t n = t->up_len < len ? t->up_len : len;

    if (n == 0) {
        return CHANPUMP_AGAIN;
    }
    memcpy(p, t->up, n);
    memmove(t->up, t->up + n, t->up_len - n);
    t->up_len -= n;
    sodium_memzero(t->up + t->up_len, n);
    return (ssize_t)n;
}

/* Towards the page: as much as the queue has room for. */
static ssize_t term_ws_write(void *arg, const uint8_t *p, size_t len)
{
    struct term *t = arg;
    size_t room =
        t->out_bytes < TERM_DOWN_MAX ? TERM_DOWN_MAX - t->out_bytes : 0;

    if (room == 0) {
        return CHANPUMP_AGAIN;
    }
    if (len > room) {
        len = room;
    }
    if (!term_queue(t, true, p, len)) {
        t->queue_failed = true;
        return CHANPUMP_FAIL;
    }
    return (ssize_t)len;
}

static const struct chanpump_local_ops term_ws_ops = {
    .read = term_ws_read,
    .write = term_ws_write,
    .shut_wr = NULL,
};

static void term_open_channel(struct term *t)
{
    if ((t->ch = ssh_channel_new(t->s)) == NULL) {
        term_fail(t, "cannot open a session");
        return;
    }
    t->sx.s = t->s;
    t->sx.ch = t->ch;
    chanpump_init(&t->pump, &chanpump_ssh_ops, &t->sx, &term_ws_ops, t, false,
                  TERM_READ_CHUNK);
    t->pump.wipe = true;
    memset(&t->ch_cb, 0, sizeof(t->ch_cb));
    t->ch_cb.userdata = t;
    t->ch_cb.channel_data_function = term_on_data;
    t->ch_cb.channel_eof_function = term_on_eof;
    t->ch_cb.channel_close_function = term_on_close;
    t->ch_cb.channel_exit_status_function = term_on_exit_status;
    t->ch_cb.channel_exit_signal_function = term_on_exit_signal;
    ssh_callbacks_init(&t->ch_cb);
    (void)ssh_set_channel_callbacks(t->ch, &t->ch_cb);
}

/* stderr of the channel: the proxy's own "portcullis: <why>" line (a
 * refusal, the asset down) becomes an error in words; anything else goes
 * to the terminal. With a pty the target's stderr arrives on stdout. */
static void term_stderr(struct term *t, const uint8_t *p, size_t n)
{
    static const char tag[] = "portcullis: ";
    const size_t tlen = sizeof(tag) - 1;
    size_t i = 0, run;

    while (i < n) {
        if (t->stderr_line) {
            if (p[i] == '\n' || p[i] == '\r') {
                t->stderr_line = false;
            } else if (t->why_len + 1 < sizeof(t->why) && p[i] >= 0x20) {
                t->why[t->why_len++] = (char)p[i];
                t->why[t->why_len] = '\0';
            }
            i++;
            continue;
        }
        if (t->why_len == 0 && n - i >= tlen && memcmp(p + i, tag, tlen) == 0) {
            t->stderr_line = true;
            i += tlen;
            continue;
        }
        /* up to the next line that may be ours */
        for (run = 1; i + run < n && p[i + run - 1] != '\n'; run++) {
        }
        (void)term_queue(t, true, p + i, run);
        i += run;
    }
}

/* Moves bytes while anything moves. */
static void term_pump(struct term *t)
{
    uint8_t buf[512];
    bool moved, m;
    int n;

    do {
        moved = false;
        if (ssh_event_dopoll(t->ev, 0) == SSH_ERROR) {
            term_fail(t, "the connection to the SSH proxy broke");
            return;
        }
        /* stderr: only the proxy's own short lines come this way (with a
         * pty the target's stderr arrives on stdout) */
        while (t->out_bytes < TERM_DOWN_MAX &&
               (n = ssh_channel_read_timeout(t->ch, buf, sizeof(buf), 1, 0)) >
                   0) {
            term_stderr(t, buf, (size_t)n);
            moved = true;
        }
        sodium_memzero(buf, sizeof(buf));
        if (chanpump_run(&t->pump, &m) != ERR_OK) {
            term_fail(t, t->queue_failed
                             ? "out of memory"
                             : "the connection to the SSH proxy broke");
            return;
        }
        moved |= m;
        if (t->rx_paused && t->up_len < TERM_UP_HIGH / 2 && t->wsi != NULL) {
            t->rx_paused = false;
            lws_rx_flow_control(t->wsi, 1);
        }
        if (t->resize_pending) {
            t->resize_pending = false;
            (void)ssh_channel_change_pty_size(t->ch, (int)t->cols,
                                              (int)t->rows);
        }
    } while (moved && t->state == TS_RUNNING);

    /* The end: everything read, and the channel closed by the proxy (or
     * at EOF with its exit status). */
    if (t->state == TS_RUNNING &&
        (ssh_channel_is_closed(t->ch) || ssh_channel_is_eof(t->ch)) &&
        chanpump_dn_done(&t->pump) && ssh_channel_poll(t->ch, 1) <= 0) {
        if (!ssh_channel_is_closed(t->ch) && t->exit_status < 0) {
            return; /* the exit status may still be on its way */
        }
        if (t->why_len > 0 && t->exit_status != 0) {
            term_fail(t, t->why);
            return;
        }
        log_info("terminal %s (%s on %s): ended, exit status %d", t->id,
                 t->user_name, t->asset_id, t->exit_status);
        term_queue_json(t, json_pack("{s:s, s:i}", "type", "exit", "status",
                                     t->exit_status));
        t->state = TS_DONE;
        term_release(t);
    }
}

static void term_step(struct term *t)
{
    int rc, soerr = 0;
    socklen_t sl = sizeof(soerr);

    switch (t->state) {
    case TS_TCP:
        if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
            soerr == EINPROGRESS) {
            return;
        }
        if (soerr != 0) {
            term_fail(t, "the SSH proxy cannot be reached");
            return;
        }
        if (term_ssh_new(t) != ERR_OK) {
            term_fail(t, "cannot start an SSH client");
            return;
        }
        t->state = TS_SSH;
        /* fall through */
    case TS_SSH:
        rc = ssh_connect(t->s);
        if (rc == SSH_AGAIN) {
            return;
        }
        if (rc != SSH_OK) {
            term_fail(t, "the SSH proxy did not answer");
            return;
        }
        if (!term_hostkey_ok(t)) {
            term_fail(t, "the SSH proxy's host key is not the server's own");
            return;
        }
        if (ssh_event_add_session(t->ev, t->s) != SSH_OK) {
            term_fail(t, "cannot start an SSH client");
            return;
        }
        t->state = TS_PASSWORD;
        /* fall through */
    case TS_PASSWORD:
        rc = ssh_userauth_password(t->s, NULL, t->ticket);
        if (rc == SSH_AUTH_AGAIN) {
            return;
        }
        /* Redeemed (or refused): no longer any use. */
        sodium_memzero(t->ticket, sizeof(t->ticket));
        if (rc == SSH_AUTH_SUCCESS) {
            t->state = TS_OPEN;
        } else if (rc == SSH_AUTH_PARTIAL) {
            t->state = TS_KBD;
            term_kbd(t);
            return;
        } else {
            term_fail(t, "authentication failed");
            return;
        }
        break;
    case TS_KBD:
        term_kbd(t);
        return;
    case TS_PROMPT:
        if (!t->answer_ready) {
            /* keep the socket drained while the user types */
            if (ssh_event_dopoll(t->ev, 0) == SSH_ERROR) {
                term_fail(t, "the connection to the SSH proxy broke");
            }
            return;
        }
        t->answer_ready = false;
        t->prompted = true;
        rc = ssh_userauth_kbdint_setanswer(t->s, 0, t->answer);
        sodium_memzero(t->answer, sizeof(t->answer));
        if (rc < 0) {
            term_fail(t, "authentication failed");
            return;
        }
        t->state = TS_KBD;
        term_kbd(t);
        return;
    default:
        break;
    }
    if (t->state == TS_OPEN) {
        if (t->ch == NULL) {
            term_open_channel(t);
            if (t->ch == NULL) {
                return;
            }
        }
        rc = ssh_channel_open_session(t->ch);
        if (rc == SSH_AGAIN) {
            return;
        }
        if (rc != SSH_OK) {
            term_fail(t, "the SSH proxy refused a session");
            return;
        }
        t->state = TS_PTY;
    }
    if (t->state == TS_PTY) {
        rc = ssh_channel_request_pty_size(t->ch, "xterm-256color", (int)t->cols,
                                          (int)t->rows);
        if (rc == SSH_AGAIN) {
            return;
        }
        if (rc != SSH_OK) {
            term_fail(t, "the SSH proxy refused a terminal");
            return;
        }
        t->resize_pending = false;
        t->state = TS_SHELL;
    }
    if (t->state == TS_SHELL) {
        rc = ssh_channel_request_shell(t->ch);
        if (rc == SSH_AGAIN) {
            return;
        }
        if (rc != SSH_OK) {
            term_fail(t, "the SSH proxy refused a shell");
            return;
        }
        t->state = TS_RUNNING;
        if (t->timer != 0) {
            loop_del_timer(t->h->loop, t->timer);
            t->timer = 0;
        }
        log_info("terminal %s: %s on %s from %s: running", t->id, t->user_name,
                 t->asset_id, t->browser_ip);
        term_send_type(t, "ready");
    }
}

static void term_service(struct term *t)
{
    enum term_state before;

    if (t->in_service || t->state == TS_DONE || t->state == TS_AUTH) {
        return;
    }
    t->in_service = true;
    do {
        before = t->state;
        if (t->state == TS_RUNNING) {
            term_pump(t);
        } else {
            term_step(t);
        }
    } while (t->state != before && t->state != TS_DONE &&
             t->state != TS_PROMPT);
    t->in_service = false;
    if (t->state == TS_DONE) {
        term_release(t);
    } else {
        term_watch(t);
    }
}

/* --- the page's side ---------------------------------------------------------
 */

/* The token check's answer (the GET /api/v1/me of term_authenticate),
 * on the loop: the login goes on, or the page is told why not. */
static void term_checked(struct term *t, const struct http_req *req)
{
    json_t *e;
    const char *detail;

    if (t->state != TS_CHECK) {
        return; /* ended meanwhile */
    }
    if (!req->auth.ok || req->status != 200) {
        e = req->errors != NULL ? json_array_get(req->errors, 0) : NULL;
        detail =
            e != NULL ? json_string_value(json_object_get(e, "detail")) : NULL;
        term_fail(t, detail != NULL ? detail : "not signed in");
        return;
    }
    snprintf(t->user_id, sizeof(t->user_id), "%s", req->auth.user.id);
    snprintf(t->user_name, sizeof(t->user_name), "%s", req->auth.user.name);
    /* no longer a pre-auth WebSocket of its address */
    http_ws_authed(t->wsi);
    if (t->timer != 0) {
        loop_del_timer(t->h->loop, t->timer);
    }
    t->timer = loop_add_timer(t->h->loop, TERM_LOGIN_MS, term_on_timer, t);
    term_connect(t);
    if (t->state == TS_TCP) {
        term_service(t);
    }
}

/* http_off's answer of a check that ran off the loop. */
static void term_on_checked(void *arg, struct http_req *answer)
{
    term_checked(arg, answer);
}

/* The token, checked by the REST API's own code: a GET /api/v1/me made
 * here, with the browser's address (API tokens' CIDR filters) and the
 * terminal's own path for an API token's path filter (a token limited to
 * other paths must not open a shell). On a database server it runs off
 * the loop like any GET /me (http_offloop.c: its bounds, its deadline),
 * and its answer comes to term_on_checked; on SQLite at once. */
static void term_authenticate(struct term *t, const char *token)
{
    struct http_req *req = calloc(1, sizeof(*req));
    size_t alen = strlen(token) + sizeof("Bearer ");
    char *authz = malloc(alen);

    if (req == NULL || authz == NULL) {
        term_fail(t, "out of memory");
        goto out;
    }
    snprintf(authz, alen, "Bearer %s", token);
    req->h = t->h;
    req->method = HM_GET;
    snprintf(req->path, sizeof(req->path), "/api/v1/me");
    req->filter_path = HTTP_TERM_PATH;
    snprintf(req->client_ip, sizeof(req->client_ip), "%s", t->browser_ip);
    snprintf(req->client, sizeof(req->client), "%s", t->browser_ip);
    req->authorization = authz;
    req->body_data = "";
    req->off_answer = term_on_checked;
    req->off_arg = t;
    t->state = TS_CHECK;
    http_dispatch(req);
    if (!req->later) {
        term_checked(t, req);
    }
out:
    if (req != NULL) {
        sodium_memzero(&req->auth, sizeof(req->auth));
        http_req_clear(req);
        free(req);
    }
    if (authz != NULL) {
        sodium_memzero(authz, alen);
        free(authz);
    }
}

static void term_on_message(struct term *t)
{
    struct http_term_msg m;
    const char *why = NULL;

    if (t->msg_too_long ||
        http_term_msg_parse(t->msg, t->msg_len, &m, &why) != ERR_OK) {
        sodium_memzero(t->msg, sizeof(t->msg));
        term_fail(t, why != NULL ? why : "the message is too long");
        return;
    }
    sodium_memzero(t->msg, sizeof(t->msg));
    switch (m.type) {
    case HTTP_TERM_AUTH:
        if (t->state != TS_AUTH) {
            term_fail(t, "auth is the first message only");
            break;
        }
        t->cols = m.cols;
        t->rows = m.rows;
        if (!util_is_uuid(m.asset)) {
            term_fail(t, "the asset must be given by its ID");
            break;
        }
        snprintf(t->asset_id, sizeof(t->asset_id), "%s", m.asset);
        term_authenticate(t, m.token);
        break;
    case HTTP_TERM_ANSWER:
        if (t->state != TS_PROMPT || t->answer_ready) {
            term_fail(t, "no question is waiting for an answer");
            break;
        }
        memcpy(t->answer, m.text, sizeof(t->answer));
        t->answer_ready = true;
        term_service(t);
        break;
    case HTTP_TERM_RESIZE:
        if (t->state == TS_AUTH || t->state == TS_CHECK) {
            term_fail(t, "auth must come first");
            break;
        }
        t->cols = m.cols;
        t->rows = m.rows;
        t->resize_pending = true;
        if (t->state == TS_RUNNING) {
            term_service(t);
        }
        break;
    }
    sodium_memzero(&m, sizeof(m));
}

static int term_on_receive(struct term *t, struct lws *wsi, const void *in,
                           size_t len)
{
    uint8_t *nb;

    if (t->state == TS_DONE) {
        return 0;
    }
    if (lws_frame_is_binary(wsi)) {
        if (t->state != TS_RUNNING) {
            term_fail(t, "terminal bytes before the session is ready");
            return 0;
        }
        if (t->up_len + len > TERM_UP_MAX) {
            term_fail(t, "the page sends faster than the session takes");
            return 0;
        }
        if (t->up_len + len > t->up_cap) {
            size_t cap = t->up_cap ? t->up_cap : 4096;

            while (cap < t->up_len + len) {
                cap *= 2;
            }
            if ((nb = realloc(t->up, cap)) == NULL) {
                term_fail(t, "out of memory");
                return 0;
            }
            t->up = nb;
            t->up_cap = cap;
        }
        memcpy(t->up + t->up_len, in, len);
        t->up_len += len;
        if (t->up_len >= TERM_UP_HIGH && !t->rx_paused) {
            t->rx_paused = true;
            lws_rx_flow_control(wsi, 0);
        }
        term_service(t);
        return 0;
    }
    /* A text message, possibly in pieces (fragments, or a frame larger
     * than libwebsockets' receive buffer). */
    if (len > sizeof(t->msg) - t->msg_len) {
        t->msg_too_long = true;
    } else {
        memcpy(t->msg + t->msg_len, in, len);
        t->msg_len += len;
    }
    if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
        term_on_message(t);
        t->msg_len = 0;
        t->msg_too_long = false;
    }
    return 0;
}

static int term_on_writeable(struct term *t, struct lws *wsi)
{
    struct term_frame *f = t->out_head;
    bool was_full = t->out_bytes >= TERM_DOWN_MAX;

    if (f == NULL) {
        if (t->state == TS_DONE) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1;
        }
        return 0;
    }
    if (lws_write(wsi, f->data + LWS_PRE, f->len,
                  f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
        (int)f->len) {
        return -1;
    }
    t->out_head = f->next;
    if (t->out_head == NULL) {
        t->out_tail = NULL;
    }
    t->out_bytes -= f->len;
    sodium_memzero(f->data + LWS_PRE, f->len); /* a terminal's output */
    free(f);
    if (t->out_head != NULL || t->state == TS_DONE) {
        lws_callback_on_writable(wsi);
    }
    if (was_full || t->state == TS_RUNNING) {
        term_service(t); /* room again: read more from the channel */
    }
    return 0;
}

static void term_free(struct term *t)
{
    struct term_frame *f;

    http_off_forget(t->h, t); /* a token check still out */
    term_release(t);
    while ((f = t->out_head) != NULL) {
        t->out_head = f->next;
        sodium_memzero(f->data + LWS_PRE, f->len);
        free(f);
    }
    if (t->up != NULL) {
        sodium_memzero(t->up, t->up_cap);
        free(t->up);
    }
    sodium_memzero(t, sizeof(*t));
    free(t);
}

static struct term *term_new(struct http *h, struct lws *wsi)
{
    struct term *t;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    uint8_t rnd[4];

    if (h->nterms >= TERM_MAX || (t = calloc(1, sizeof(*t))) == NULL) {
        return NULL;
    }
    t->h = h;
    t->wsi = wsi;
    t->fd = -1;
    t->exit_status = -1;
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(t->id, sizeof(t->id), rnd, sizeof(rnd));
    if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
                      t->browser_ip, sizeof(t->browser_ip));
            t->browser_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
                      t->browser_ip, sizeof(t->browser_ip));
            t->browser_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    if (t->browser_ip[0] == '\0') {
        free(t);
        return NULL;
    }
    t->timer = loop_add_timer(h->loop, TERM_AUTH_MS, term_on_timer, t);
    h->nterms++;
    return t;
}

int http_term_callback(struct lws *wsi, enum lws_callback_reasons reason,
                       void *user, void *in, size_t len)
{
    struct http *h = lws_context_user(lws_get_context(wsi));
    struct term_pss *pss = user;
    struct term *t = pss != NULL ? pss->t : NULL;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        if ((pss->t = term_new(h, wsi)) == NULL) {
            log_warn("terminal: refused (%u open, or out of memory)",
                     h->nterms);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return t != NULL ? term_on_receive(t, wsi, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return t != NULL ? term_on_writeable(t, wsi) : -1;
    case LWS_CALLBACK_CLOSED:
        if (t != NULL) {
            t->wsi = NULL;
            term_free(t);
            pss->t = NULL;
            h->nterms--;
        }
        return 0;
    default:
        break;
    }
    return 0;
}
