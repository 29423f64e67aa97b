/*
 * A session child: serves one client connection from key exchange to
 * disconnect.
 *
 * It runs sandboxed (sandbox.c) for its whole life and holds no store
 * handle and no vault key: it asks the main process for everything
 * privileged over its monitor socket (mproto.h): checking a password,
 * key or TOTP code, authorizing a channel, connecting to the asset (the
 * main process passes back a connected socket), the asset's vaulted login,
 * pinning the target's host key, closing a report row.
 *
 * Authentication uses libssh's blocking message API (one connection, one
 * process: blocking is fine). After it, the child switches to callbacks
 * and one non-blocking ssh_event holding both the client session and, once
 * the first channel is authorized, the target session. Callbacks only note
 * what happened; all work (authorizing, connecting, opening target
 * channels, moving bytes) happens in the loop in child_loop(), outside
 * libssh's packet processing, so no callback re-enters libssh.
 */
#include "sshproxy/child.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "policy/policy.h"
#include "sshproxy/hostkeys.h"
#include "sshproxy/libssh_priv.h"
#include "sshproxy/mproto.h"
#include "sshproxy/readahead.h"
#include "sshproxy/scpcmd.h"
#include "sshproxy/session.h"

/*
 * libssh 0.10 marks the ssh_message auth getters deprecated in favour of
 * server callbacks, but its callbacks have no keyboard-interactive entry
 * (needed for TOTP prompts), so authentication uses the message API.
 */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

enum { KBD_NONE = 0, KBD_PASSWORD, KBD_TOTP };

#define CHILD_AUTH_METHODS                                                     \
    (SSH_AUTH_METHOD_PASSWORD | SSH_AUTH_METHOD_PUBLICKEY |                    \
     SSH_AUTH_METHOD_INTERACTIVE)

/* Environment variables a client may pass on to the target. */
static const char *const child_env_allowed[] = {"LANG", "LANGUAGE", "TZ",
                                                "COLORTERM", NULL};

int session_monitor_call(struct session_child *sc, uint8_t type,
                         uint8_t reply_type, int *fd)
{
    uint8_t got = 0;
    int r;

    r = mproto_send(sc->mon, type, sc->req, -1, 0);
    buf_reset(sc->req); /* may have held a secret */
    if (r != ERR_OK) {
        log_error("monitor: send failed");
        return ERR_IO;
    }
    if ((r = mproto_recv(sc->mon, &got, sc->rep, fd)) != ERR_OK) {
        log_error("monitor: no reply");
        return r;
    }
    if (got != reply_type) {
        log_error("monitor: unexpected reply %u to %u", got, type);
        if (fd != NULL && *fd >= 0) {
            close(*fd);
            *fd = -1;
        }
        return ERR_PROTO;
    }
    return ERR_OK;
}

/* --- authentication --- */

static void child_sleep_ms(uint32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

#define CHILD_STORE_DOWN_TEXT                                                  \
    "portcullis: login not possible right now: the access server cannot "      \
    "reach its database. Try again in a moment.\r\n"

/* Sends the authentication request in sc->req as type and waits for the
 * verdict (MP_AUTH_*); a failure's delay is served here. */
static int child_auth_send(struct session_child *sc, uint8_t type)
{
    uint8_t verdict = MP_AUTH_FAIL;
    uint32_t delay = 0;
    char reason[256];

    if (session_monitor_call(sc, type, MP_AUTH_REPLY, NULL) != ERR_OK ||
        buf_get_u8(sc->rep, &verdict) != ERR_OK ||
        buf_get_u32(sc->rep, &delay) != ERR_OK ||
        buf_get_cstring_into(sc->rep, reason, sizeof(reason)) != ERR_OK) {
        return MP_AUTH_FAIL;
    }
    if (verdict == MP_AUTH_FAIL && delay > 0) {
        child_sleep_ms(delay > 10000 ? 10000 : delay);
    }
    /* The store did not answer: say so (OpenSSH prints a banner), rather
     * than let it look like a wrong password. */
    sc->store_down_last =
        verdict == MP_AUTH_FAIL && strcmp(reason, MP_REASON_STORE_DOWN) == 0;
    if (sc->store_down_last && !sc->store_down_said) {
        ssh_string s = ssh_string_from_char(CHILD_STORE_DOWN_TEXT);

        sc->store_down_said = true;
        if (s != NULL) {
            (void)ssh_send_issue_banner(sc->down, s);
            ssh_string_free(s);
        }
    }
    return verdict;
}

/* Sends one authentication request; returns the verdict (MP_AUTH_*). */
static int child_auth_ask(struct session_child *sc, uint8_t type, const char *a,
                          const char *b, int flag)
{
    buf_reset(sc->req);
    if (a != NULL && buf_put_cstring(sc->req, a) != ERR_OK) {
        return MP_AUTH_FAIL;
    }
    if (b != NULL && buf_put_cstring(sc->req, b) != ERR_OK) {
        buf_reset(sc->req);
        return MP_AUTH_FAIL;
    }
    if (flag >= 0 && buf_put_u8(sc->req, (uint8_t)flag) != ERR_OK) {
        buf_reset(sc->req);
        return MP_AUTH_FAIL;
    }
    return child_auth_send(sc, type);
}

/* Why a kbd-interactive answer failed, said with the next prompt. The
 * same words for a wrong password of a known and of an unknown user (no
 * user enumeration); a wrong TOTP code is told as such only after the
 * password was accepted, which the client knows already. OpenSSH re-asks
 * kbd-interactive silently, so without it a user who typed a used code
 * saw only the prompts start over. */
#define CHILD_KBD_WRONG_PASSWORD "Wrong password."
#define CHILD_KBD_WRONG_TOTP                                                   \
    "Wrong TOTP code, or one already used (a code is good once; the next "     \
    "comes within 30 s): enter the password and a new code."
#define CHILD_KBD_STORE_DOWN                                                   \
    "Login not possible right now: the access server cannot reach its "        \
    "database. Try again in a moment."

/* The note after a failed answer: the store's outage is not a wrong
 * answer (the banner said so once already; a client that shows no
 * banners reads it here). */
static const char *child_kbd_failed(const struct session_child *sc,
                                    const char *wrong)
{
    return sc->store_down_last ? CHILD_KBD_STORE_DOWN : wrong;
}

static int child_kbd_prompt(struct session_child *sc, ssh_message m,
                            const char *prompt)
{
    const char *prompts[1] = {prompt};
    char echo[1] = {0};
    const char *note = sc->kbd_note != NULL ? sc->kbd_note : "";

    /* No name, and an instruction only after a failed answer: OpenSSH
     * prints both to stderr, into every script's output. */
    sc->kbd_note = NULL;
    return ssh_message_auth_interactive_request(m, "", note, 1, prompts, echo);
}

/* [ssh] banner: sent once, with the first answer of the authentication
 * protocol, where sshd sends its Banner. */
static void child_send_banner(struct session_child *sc)
{
    ssh_string s;

    if (sc->banner == NULL || sc->banner_sent) {
        return;
    }
    sc->banner_sent = true;
    if ((s = ssh_string_from_char(sc->banner)) != NULL) {
        (void)ssh_send_issue_banner(sc->down, s);
        ssh_string_free(s);
    }
}

/*
 * Asks the monitor about a public key: a probe sends the key's blob; a
 * signed attempt sends the bytes the client signed and its signature, as
 * libssh saw them (libssh_hooks.c), for the monitor to check itself.
 */
static int child_auth_pubkey(struct session_child *sc, ssh_key key,
                             bool is_signed)
{
    const uint8_t *data = NULL, *sig = NULL;
    size_t dlen = 0, slen = 0;
    ssh_string blob = NULL;
    int r;

    buf_reset(sc->req);
    r = buf_put_cstring(sc->req, sc->login) ||
        buf_put_u8(sc->req, is_signed ? 1 : 0);
    if (r == ERR_OK && !is_signed) {
        r = ssh_pki_export_pubkey_blob(key, &blob) != SSH_OK
                ? ERR_CRYPTO
                : buf_put_string(sc->req, ssh_string_data(blob),
                                 ssh_string_len(blob));
        ssh_string_free(blob);
    } else if (r == ERR_OK) {
        r = hostkeys_last_userauth(&data, &dlen, &sig, &slen);
        if (r == ERR_OK) {
            r = buf_put_string(sc->req, data, dlen) ||
                buf_put_string(sc->req, sig, slen);
        }
        hostkeys_forget_userauth();
    }
    if (r != ERR_OK) {
        buf_reset(sc->req);
        return MP_AUTH_FAIL;
    }
    return child_auth_send(sc, MP_AUTH_PUBKEY);
}

/* Called by libssh inside the key exchange (hostkeys.h): the monitor
 * signs the exchange hash with the real host key. */
static int child_kex_sign(void *arg, const char *type, uint8_t hash,
                          const uint8_t *data, size_t len, struct buf *out)
{
    struct session_child *sc = arg;
    const uint8_t *p = NULL;
    size_t n = 0;

    buf_reset(sc->req);
    if (buf_put_cstring(sc->req, type) != ERR_OK ||
        buf_put_u8(sc->req, hash) != ERR_OK ||
        buf_put_string(sc->req, data, len) != ERR_OK ||
        session_monitor_call(sc, MP_KEX_SIGN, MP_KEX_SIGN_REPLY, NULL) !=
            ERR_OK ||
        buf_get_string_ptr(sc->rep, HOSTKEYS_BLOB_MAX, &p, &n) != ERR_OK ||
        buf_expect_end(sc->rep) != ERR_OK) {
        buf_reset(sc->req);
        return ERR_PROTO;
    }
    return buf_put_string(out, p, n);
}

static void child_auth_message(struct session_child *sc, ssh_message m)
{
    const char *user = ssh_message_auth_user(m);
    int subtype = ssh_message_subtype(m);
    int verdict = MP_AUTH_FAIL;
    const char *ans;

    if (user != NULL && user[0] != '\0' && !sc->need_totp) {
        if (strlen(user) > LOGIN_MAX) {
            goto fail;
        }
        snprintf(sc->login, sizeof(sc->login), "%s", user);
    }
    switch (subtype) {
    case SSH_AUTH_METHOD_PASSWORD:
        if (sc->need_totp) {
            goto fail;
        }
        verdict = child_auth_ask(sc, MP_AUTH_PASSWORD, sc->login,
                                 ssh_message_auth_password(m), -1);
        break;
    case SSH_AUTH_METHOD_PUBLICKEY:
        if (sc->need_totp || ssh_message_auth_pubkey(m) == NULL) {
            goto fail;
        }
        if (ssh_message_auth_publickey_state(m) == SSH_PUBLICKEY_STATE_NONE) {
            /* A probe: "would this key do?". */
            verdict = child_auth_pubkey(sc, ssh_message_auth_pubkey(m), false);
            if (verdict == MP_AUTH_OK) {
                ssh_message_auth_reply_pk_ok_simple(m);
                return;
            }
            if (verdict == MP_AUTH_TOO_MANY) {
                break;
            }
            ssh_message_auth_set_methods(m, CHILD_AUTH_METHODS);
            ssh_message_reply_default(m);
            return;
        }
        /* libssh may veto; only the monitor's own check can accept. */
        if (ssh_message_auth_publickey_state(m) != SSH_PUBLICKEY_STATE_VALID) {
            hostkeys_forget_userauth();
            goto fail;
        }
        verdict = child_auth_pubkey(sc, ssh_message_auth_pubkey(m), true);
        break;
    case SSH_AUTH_METHOD_INTERACTIVE:
        if (!ssh_message_auth_kbdint_is_response(m)) {
            sc->kbd_stage = sc->need_totp ? KBD_TOTP : KBD_PASSWORD;
            child_kbd_prompt(sc, m,
                             sc->need_totp ? "TOTP code: " : "Password: ");
            return;
        }
        if (ssh_userauth_kbdint_getnanswers(sc->down) != 1 ||
            (ans = ssh_userauth_kbdint_getanswer(sc->down, 0)) == NULL) {
            goto fail;
        }
        if (sc->kbd_stage == KBD_PASSWORD && !sc->need_totp) {
            verdict = child_auth_ask(sc, MP_AUTH_PASSWORD, sc->login, ans, -1);
            sc->kbd_note = verdict == MP_AUTH_FAIL
                               ? child_kbd_failed(sc, CHILD_KBD_WRONG_PASSWORD)
                               : NULL;
            if (verdict == MP_AUTH_PARTIAL) {
                /* Second factor in the same conversation. */
                sc->need_totp = true;
                sc->kbd_stage = KBD_TOTP;
                child_kbd_prompt(sc, m, "TOTP code: ");
                return;
            }
        } else if (sc->kbd_stage == KBD_TOTP && sc->need_totp) {
            verdict = child_auth_ask(sc, MP_AUTH_TOTP, ans, NULL, -1);
            sc->kbd_note = verdict == MP_AUTH_FAIL
                               ? child_kbd_failed(sc, CHILD_KBD_WRONG_TOTP)
                               : NULL;
        }
        break;
    default:
        break;
    }
    switch (verdict) {
    case MP_AUTH_OK:
        sc->authenticated = true;
        ssh_message_auth_reply_success(m, 0);
        return;
    case MP_AUTH_PARTIAL:
        sc->need_totp = true;
        ssh_message_auth_set_methods(m, SSH_AUTH_METHOD_INTERACTIVE);
        ssh_message_auth_reply_success(m, 1);
        return;
    case MP_AUTH_TOO_MANY:
        /* As sshd at MaxAuthTries: no answer, a disconnect with the
         * reason (sent by ssh_disconnect at the end of child_run). */
        sc->auth_ended = true;
        ssh_session_set_disconnect_message(sc->down,
                                           "Too many authentication failures");
        return;
    default:
        break;
    }
fail:
    /* A failed second factor starts authentication over. */
    sc->need_totp = false;
    sc->kbd_stage = KBD_NONE;
    ssh_message_auth_set_methods(m, CHILD_AUTH_METHODS);
    ssh_message_reply_default(m);
}

static int child_authenticate(struct session_child *sc)
{
    ssh_message m;

    while (!sc->authenticated && !sc->auth_ended &&
           (m = ssh_message_get(sc->down)) != NULL) {
        if (ssh_message_type(m) == SSH_REQUEST_AUTH) {
            child_send_banner(sc);
            child_auth_message(sc, m);
        } else {
            ssh_message_reply_default(m);
        }
        ssh_message_free(m);
    }
    return sc->authenticated ? ERR_OK : ERR_AUTH;
}

/* --- client-side channel callbacks: note what happened, nothing more --- */

static int child_down_data(ssh_session session, ssh_channel channel, void *data,
                           uint32_t len, int is_stderr, void *userdata)
{
    struct relay_chan *ch = userdata;

    if (is_stderr) {
        return (int)len; /* clients have no stderr to send: drop it */
    }
    ch->s[0].avail = len;
    ch->sc->activity = true;
    return 0;
}

static void child_down_eof(ssh_session session, ssh_channel channel,
                           void *userdata)
{
    struct relay_chan *ch = userdata;

    ch->down_eof = true;
    ch->sc->activity = true;
}

static void child_down_close(ssh_session session, ssh_channel channel,
                             void *userdata)
{
    struct relay_chan *ch = userdata;

    ch->down_closed = true;
    ch->sc->activity = true;
}

static void child_down_signal(ssh_session session, ssh_channel channel,
                              const char *signal, void *userdata)
{
    struct relay_chan *ch = userdata;

    if (ch->up != NULL && ch->state == CHAN_RELAYING) {
        ssh_channel_request_send_signal(ch->up, signal);
    }
}

static int child_down_pty(ssh_session session, ssh_channel channel,
                          const char *term, int width, int height, int pxwidth,
                          int pwheight, void *userdata)
{
    struct relay_chan *ch = userdata;

    if (ch->state != CHAN_NEW || ch->pty) {
        return -1;
    }
    ch->pty = true;
    snprintf(ch->term, sizeof(ch->term), "%s", term ? term : "xterm");
    ch->cols = width;
    ch->rows = height;
    ch->pxw = pxwidth;
    ch->pxh = pwheight;
    return 0;
}

static int child_down_window(ssh_session session, ssh_channel channel,
                             int width, int height, int pxwidth, int pwheight,
                             void *userdata)
{
    struct relay_chan *ch = userdata;

    ch->cols = width;
    ch->rows = height;
    if (ch->up != NULL && ch->state == CHAN_RELAYING) {
        ssh_channel_change_pty_size(ch->up, width, height);
    }
    if (ch->rec != NULL && ch->record_cast) {
        (void)record_cast_resize(ch->rec, width, height);
    }
    return 0;
}

static int child_down_env(ssh_session session, ssh_channel channel,
                          const char *name, const char *value, void *userdata)
{
    struct relay_chan *ch = userdata;
    bool ok = false;

    if (ch->state != CHAN_NEW || ch->nenv >= CHAN_ENV_MAX || name == NULL ||
        value == NULL || strlen(value) > 1024) {
        return -1;
    }
    for (int i = 0; child_env_allowed[i] != NULL; i++) {
        ok |= strcmp(name, child_env_allowed[i]) == 0;
    }
    ok |= strncmp(name, "LC_", 3) == 0 && strlen(name) < 64;
    if (!ok) {
        return -1;
    }
    ch->env_name[ch->nenv] = strdup(name);
    ch->env_value[ch->nenv] = strdup(value);
    if (ch->env_name[ch->nenv] == NULL || ch->env_value[ch->nenv] == NULL) {
        free(ch->env_name[ch->nenv]);
        free(ch->env_value[ch->nenv]);
        return -1;
    }
    ch->nenv++;
    return 0;
}

/* A shell, exec or subsystem request: accepted at once, carried out by the
 * loop. If it is then refused, the client reads why on stderr. */
static int child_down_start(struct relay_chan *ch, int kind, const char *detail)
{
    if (ch->state != CHAN_NEW) {
        return -1;
    }
    ch->kind = kind;
    if (detail != NULL && (ch->detail = strdup(detail)) == NULL) {
        return -1;
    }
    ch->state = CHAN_STARTING;
    ch->sc->activity = true;
    return 0;
}

static int child_down_shell(ssh_session session, ssh_channel channel,
                            void *userdata)
{
    return child_down_start(userdata, KIND_SHELL, NULL);
}

/*
 * An exec request is an scp session only if scpcmd_parse() reads it as
 * exactly what OpenSSH's scp sends; then the target gets the canonical
 * command rebuilt from the parsed tokens, never the client's string.
 * Everything else is an exec, checked against the exec switch.
 */
static int child_down_exec(ssh_session session, ssh_channel channel,
                           const char *command, void *userdata)
{
    struct scpcmd *scp = NULL;
    char *canon = NULL;
    size_t len;
    int r;

    if (command == NULL || (len = strlen(command)) > SCPCMD_CMD_MAX) {
        return -1;
    }
    if ((scp = malloc(sizeof(*scp))) == NULL ||
        (canon = malloc(SCPCMD_FORMAT_MAX)) == NULL) {
        free(scp);
        return -1;
    }
    if (scpcmd_parse(command, len, scp) == ERR_OK &&
        scpcmd_format(scp, canon, SCPCMD_FORMAT_MAX) > 0) {
        r = child_down_start(userdata, KIND_SCP, canon);
    } else {
        r = child_down_start(userdata, KIND_EXEC, command);
    }
    free(scp);
    free(canon);
    return r;
}

/* ssh -A: libssh answers success (the request exists), and OpenSSH asks
 * for no answer anyway; whether the target is asked too is decided when
 * the channel starts (forward_agent_start), and a refusal is a report
 * row, as OpenSSH's sshd refuses it: silently. */
static void child_down_agent_req(ssh_session session, ssh_channel channel,
                                 void *userdata)
{
    struct relay_chan *ch = userdata;

    (void)session;
    (void)channel;
    if (ch->state == CHAN_NEW) {
        ch->agent_req = true;
    }
}

static int child_down_subsystem(ssh_session session, ssh_channel channel,
                                const char *subsystem, void *userdata)
{
    if (subsystem == NULL || strcmp(subsystem, "sftp") != 0) {
        return -1;
    }
    return child_down_start(userdata, KIND_SFTP, "sftp");
}

int child_set_down_callbacks(struct relay_chan *ch)
{
    struct ssh_channel_callbacks_struct *cb = &ch->down_cb;

    memset(cb, 0, sizeof(*cb));
    cb->userdata = ch;
    cb->channel_data_function = child_down_data;
    cb->channel_eof_function = child_down_eof;
    cb->channel_close_function = child_down_close;
    cb->channel_signal_function = child_down_signal;
    cb->channel_pty_request_function = child_down_pty;
    cb->channel_pty_window_change_function = child_down_window;
    cb->channel_env_request_function = child_down_env;
    cb->channel_shell_request_function = child_down_shell;
    cb->channel_exec_request_function = child_down_exec;
    cb->channel_subsystem_request_function = child_down_subsystem;
    cb->channel_auth_agent_req_function = child_down_agent_req;
    /* No X11 callback: x11-req goes to child_on_message, which can refuse
     * it (libssh answers success to a request that has a callback). */
    ssh_callbacks_init(cb);
    return ssh_set_channel_callbacks(ch->down, cb);
}

static void child_link(struct session_child *sc, struct relay_chan *ch)
{
    ch->next = sc->chans;
    sc->chans = ch;
}

static ssh_channel child_on_session_open(ssh_session session, void *userdata)
{
    struct session_child *sc = userdata;
    struct relay_chan *ch = relay_chan_new(sc);

    if (ch == NULL) {
        return NULL;
    }
    if ((ch->down = ssh_channel_new(session)) == NULL ||
        child_set_down_callbacks(ch) != SSH_OK) {
        relay_chan_free(ch);
        return NULL;
    }
    child_link(sc, ch);
    return ch->down;
}

/* --- authorization --- */

int child_authorize(struct session_child *sc, struct relay_chan *ch)
{
    char msg[512] = "", asset[STORE_NAME_MAX + 1] = "";
    uint32_t max_minutes = 0, idle_minutes = 0;
    uint8_t ok = 0, record = 0;

    buf_reset(sc->req);
    if (buf_put_u8(sc->req, (uint8_t)ch->kind) != ERR_OK ||
        buf_put_cstring(sc->req, ch->detail) != ERR_OK ||
        session_monitor_call(sc, MP_AUTHORIZE, MP_AUTHORIZE_REPLY, NULL) !=
            ERR_OK ||
        buf_get_u8(sc->rep, &ok) != ERR_OK ||
        buf_get_cstring_into(sc->rep, ch->session_id, sizeof(ch->session_id)) !=
            ERR_OK ||
        buf_get_cstring_into(sc->rep, msg, sizeof(msg)) != ERR_OK ||
        buf_get_cstring_into(sc->rep, asset, sizeof(asset)) != ERR_OK ||
        buf_get_u32(sc->rep, &max_minutes) != ERR_OK ||
        buf_get_u32(sc->rep, &idle_minutes) != ERR_OK ||
        buf_get_u8(sc->rep, &record) != ERR_OK ||
        buf_get_cstring_into(sc->rep, ch->user_name, sizeof(ch->user_name)) !=
            ERR_OK) {
        ch->session_id[0] = '\0';
        ch->fail_msg = strdup("internal error: authorization failed");
        return ERR_INTERNAL;
    }
    if (!ok) {
        ch->session_id[0] = '\0'; /* the monitor closed the row */
        ch->fail_msg = strdup(msg);
        return ERR_DENIED;
    }
    if (sc->asset_name[0] == '\0') {
        snprintf(sc->asset_name, sizeof(sc->asset_name), "%s", asset);
    }
    ch->record_required = (record & 1) != 0;
    ch->record_input = (record & 2) != 0;
    if (max_minutes > 0 && (sc->max_session_minutes == 0 ||
                            (int)max_minutes < sc->max_session_minutes)) {
        sc->max_session_minutes = (int)max_minutes;
    }
    if (idle_minutes > 0 && (sc->idle_timeout_minutes == 0 ||
                             (int)idle_minutes < sc->idle_timeout_minutes)) {
        sc->idle_timeout_minutes = (int)idle_minutes;
    }
    log_set_session(ch->session_id);
    return ERR_OK;
}

/* direct-tcpip (ssh -L): authorized here, synchronously, so a refusal is
 * an ordinary "open failed" on the client. The monitor call does not touch
 * libssh, so it is safe inside this callback. */
static int child_on_message(ssh_session session, ssh_message m, void *userdata)
{
    struct session_child *sc = userdata;
    struct relay_chan *ch;
    const char *host, *orig;
    char detail[300];

    if (ssh_message_type(m) == SSH_REQUEST_GLOBAL) {
        return forward_global_request(sc, m);
    }
    /* x11-req comes here because the channels have no X11 callback:
     * libssh answers success to any request that has one */
    if (ssh_message_type(m) == SSH_REQUEST_CHANNEL &&
        ssh_message_subtype(m) == SSH_CHANNEL_REQUEST_X11) {
        return forward_x11_request(sc, m);
    }
    if (ssh_message_type(m) != SSH_REQUEST_CHANNEL_OPEN ||
        ssh_message_subtype(m) != SSH_CHANNEL_DIRECT_TCPIP) {
        return 1; /* default reply: refused */
    }
    host = ssh_message_channel_request_open_destination(m);
    orig = ssh_message_channel_request_open_originator(m);
    if (host == NULL || strlen(host) > 255 ||
        (ch = relay_chan_new(sc)) == NULL) {
        return 1;
    }
    ch->kind = KIND_LOCAL_FORWARD;
    snprintf(ch->fwd_host, sizeof(ch->fwd_host), "%s", host);
    ch->fwd_port = ssh_message_channel_request_open_destination_port(m);
    snprintf(ch->fwd_orig_host, sizeof(ch->fwd_orig_host), "%s",
             orig ? orig : "127.0.0.1");
    ch->fwd_orig_port = ssh_message_channel_request_open_originator_port(m);
    snprintf(detail, sizeof(detail), "%s:%d", ch->fwd_host, ch->fwd_port);
    ch->detail = strdup(detail);
    if (ch->detail == NULL || child_authorize(sc, ch) != ERR_OK) {
        relay_chan_free(ch);
        return 1;
    }
    ch->down = ssh_message_channel_request_open_reply_accept(m);
    if (ch->down == NULL || child_set_down_callbacks(ch) != SSH_OK) {
        ch->result = strdup("error: cannot accept the channel");
        ch->state = CHAN_CLOSING;
        ch->down_closed = true;
        child_link(sc, ch);
        return 0;
    }
    ch->state = CHAN_STARTING;
    child_link(sc, ch);
    sc->activity = true;
    return 0;
}

/* --- the loop --- */

void child_report_end(struct session_child *sc, struct relay_chan *ch,
                      const char *result)
{
    char sha[65] = "";
    uint64_t rec_size = 0;

    if (ch->rec != NULL) {
        relay_transfer_finish(ch);
        if (record_close(ch->rec, &rec_size, sha) != ERR_OK &&
            strncmp(result, "ok", 2) == 0) {
            result = "error: recording failed";
        }
        ch->rec = NULL;
    }
    forward_credit(ch);
    if (ch->session_id[0] == '\0') {
        return;
    }
    buf_reset(sc->req);
    if (buf_put_cstring(sc->req, ch->session_id) == ERR_OK &&
        buf_put_u64(sc->req, ch->bytes_up) == ERR_OK &&
        buf_put_u64(sc->req, ch->bytes_down) == ERR_OK &&
        buf_put_u32(sc->req, ch->exit_status_set ? (uint32_t)ch->exit_status + 1
                                                 : 0) == ERR_OK &&
        buf_put_cstring(sc->req, result) == ERR_OK &&
        buf_put_u64(sc->req, rec_size) == ERR_OK &&
        buf_put_cstring(sc->req, sha) == ERR_OK) {
        (void)session_monitor_call(sc, MP_SESSION_END, MP_ACK, NULL);
    }
    ch->session_id[0] = '\0';
}

/* Kept below the size limit for the end marker written when the limit
 * is reached. */
#define CHILD_REC_RESERVE 4096

#define CHILD_REC_LIMIT_MSG                                                    \
    "the session recording reached its size limit ([record] ssh_max_mb); "     \
    "the session has ended"

/*
 * Opens the session's recording through the monitor (the child cannot
 * create files). Nothing is written yet (child_record_start does that
 * once the target is reached): a session that fails before leaves an
 * empty file, which the monitor removes. A session the policy says to
 * record does not start unless this works.
 */
static int child_record_open(struct session_child *sc, struct relay_chan *ch)
{
    char msg[600] = "", line[600];
    uint64_t max = 0;
    uint8_t ok = 0;
    int fd = -1;

    ch->record_cast = ch->kind == KIND_SHELL || ch->kind == KIND_EXEC;
    buf_reset(sc->req);
    if (buf_put_cstring(sc->req, ch->session_id) != ERR_OK ||
        buf_put_u8(sc->req, ch->record_cast ? 0 : 1) != ERR_OK ||
        session_monitor_call(sc, MP_RECORD_OPEN, MP_RECORD_OPEN_REPLY, &fd) !=
            ERR_OK ||
        buf_get_u8(sc->rep, &ok) != ERR_OK ||
        buf_get_cstring_into(sc->rep, msg, sizeof(msg)) != ERR_OK) {
        snprintf(msg, sizeof(msg), "internal error");
        ok = 0;
    }
    if (ok && (buf_get_u64(sc->rep, &max) != ERR_OK ||
               buf_expect_end(sc->rep) != ERR_OK || max <= CHILD_REC_RESERVE)) {
        snprintf(msg, sizeof(msg), "internal error");
        ok = 0;
    }
    if (!ok || fd < 0) {
        if (fd >= 0) {
            close(fd);
        }
        snprintf(line, sizeof(line), "cannot record this session: %s", msg);
        relay_abort(ch, line, "error: recording unavailable");
        return ERR_IO;
    }
    if ((ch->rec = record_new(fd)) == NULL) {
        close(fd);
        relay_abort(ch, "cannot record this session: out of memory",
                    "error: recording unavailable");
        return ERR_NOMEM;
    }
    ch->rec_max = max;
    record_set_limit(ch->rec, max - CHILD_REC_RESERVE);
    return ERR_OK;
}

/* The target is reached: the recording's header (asciicast) or start
 * record (JSON lines). */
static int child_record_start(struct session_child *sc, struct relay_chan *ch)
{
    char title[400];

    if (ch->record_cast) {
        snprintf(title, sizeof(title), "%s on %s (%s)", ch->user_name,
                 sc->asset_name, ch->session_id);
        if (record_cast_header(ch->rec, ch->pty ? ch->cols : 80,
                               ch->pty ? ch->rows : 24, util_now(), title,
                               ch->pty ? ch->term : NULL) != ERR_OK) {
            relay_abort(ch, "cannot record this session: write failed",
                        "error: recording unavailable");
            return ERR_IO;
        }
    } else if (relay_transfer_start(ch) != ERR_OK) {
        relay_abort(ch, "cannot record this session: write failed",
                    "error: recording unavailable");
        return ERR_IO;
    }
    return ERR_OK;
}

/*
 * The recording reached [record] ssh_max_mb: an end marker (the reserve
 * kept below the limit is for it) and the session ends. In asciicast an
 * output event, so players show it where the recording stops; in JSON
 * lines a record with op "limit".
 */
static void child_record_limit(struct relay_chan *ch)
{
    char line[256], result[128];

    record_set_limit(ch->rec, ch->rec_max);
    if (ch->record_cast) {
        static const char marker[] =
            "\r\n[portcullis: " CHILD_REC_LIMIT_MSG "]\r\n";

        (void)record_cast_data(ch->rec, 'o', (const uint8_t *)marker,
                               sizeof(marker) - 1);
    } else {
        char when[32];

        util_fmt_time(util_now(), when, sizeof(when));
        snprintf(line, sizeof(line),
                 "{\"time\": \"%s\", \"session\": \"%s\", \"op\": "
                 "\"limit\", \"path\": \"\", \"bytes\": %llu}",
                 when, ch->session_id,
                 (unsigned long long)record_size(ch->rec));
        (void)record_line(ch->rec, line);
    }
    snprintf(result, sizeof(result),
             "error: the recording reached its size limit (%llu MiB, "
             "[record] ssh_max_mb)",
             (unsigned long long)(ch->rec_max / (1024 * 1024)));
    log_warn("session %s: %s", ch->session_id, result);
    relay_abort(ch, CHILD_REC_LIMIT_MSG, result);
}

static void child_start(struct session_child *sc, struct relay_chan *ch)
{
    if (ch->session_id[0] == '\0' && child_authorize(sc, ch) != ERR_OK) {
        ch->state = CHAN_FAILING;
        return;
    }
    if (ch->record_required && ch->rec == NULL &&
        child_record_open(sc, ch) != ERR_OK) {
        return; /* failing, with the reason */
    }
    if (upstream_open(sc, ch->session_id) != ERR_OK) {
        relay_abort(ch, sc->up_error ? sc->up_error : "upstream failed",
                    sc->up_result ? sc->up_result : "error: upstream");
        return;
    }
    if (ch->agent_req) {
        forward_agent_start(sc, ch);
    }
    if (upstream_open_channel(sc, ch) != ERR_OK) {
        relay_abort(ch, "the asset refused to open the channel",
                    "error: the asset refused the channel");
        return;
    }
    if (ch->rec != NULL && child_record_start(sc, ch) != ERR_OK) {
        return; /* failing, with the reason */
    }
    if (ch->cols > 0 && ch->pty) {
        ssh_channel_change_pty_size(ch->up, ch->cols, ch->rows);
    }
    ch->state = CHAN_RELAYING;
    ch->last_activity_ms = util_mono_ms(); /* idle from here on */
}

static void child_time_limit(struct session_child *sc)
{
    int64_t limit_ms = (int64_t)sc->max_session_minutes * 60000;

    if (sc->max_session_minutes <= 0 ||
        sc->now_ms - sc->started_ms < limit_ms) {
        return;
    }
    for (struct relay_chan *ch = sc->chans; ch != NULL; ch = ch->next) {
        /* one still opening on the client's side is ended once it is
         * open (a turn later) */
        if (ch->state == CHAN_RELAYING || ch->state == CHAN_STARTING) {
            relay_abort(ch, "session time limit reached",
                        "ok: session time limit reached");
        }
    }
    /* nor may the target open anything more (an `ssh -N -R` session has
     * no channel of its own to end) */
    forward_end(sc, "ok: session time limit reached");
}

/*
 * The access profile's idle_timeout_minutes: a channel that moved no byte
 * in either direction for that long is ended (relay_pump() notes the last
 * byte moved). SSH keepalives are not channel data, so they do not keep
 * a forgotten session alive. The smallest limit of the channels
 * authorized on this connection applies, as for max_session_minutes.
 */
static void child_idle_limit(struct session_child *sc)
{
    int minutes = sc->idle_timeout_minutes;
    int64_t now = sc->now_ms;
    char msg[80];

    if (minutes <= 0) {
        return;
    }
    for (struct relay_chan *ch = sc->chans; ch != NULL; ch = ch->next) {
        if (ch->state == CHAN_RELAYING &&
            now - ch->last_activity_ms >= (int64_t)minutes * 60000) {
            snprintf(msg, sizeof(msg), "session closed: idle for %d minute%s",
                     minutes, minutes == 1 ? "" : "s");
            log_info("channel idle for %d minutes; closing it", minutes);
            relay_abort(ch, msg, "ok: idle timeout");
        }
    }
}

static bool child_step(struct session_child *sc)
{
    struct relay_chan **pp = &sc->chans, *ch;
    bool moved = false;

    while ((ch = *pp) != NULL) {
        if (ch->state == CHAN_STARTING) {
            child_start(sc, ch);
            moved = true;
        }
        if (ch->state == CHAN_OPENING) {
            moved |= forward_open_step(ch);
        }
        if (ch->state == CHAN_RELAYING && ch->up != NULL &&
            (sc->up == NULL || !ssh_is_connected(sc->up))) {
            if (!ch->up_closed && !ch->up_eof) {
                /* lost mid-stream (target or agent gone): say so */
                relay_abort(ch, "connection to the asset was lost",
                            "error: connection to the asset lost");
            } else {
                ch->up_closed = true;
                if (ch->result == NULL) {
                    ch->result = strdup("error: connection to the asset lost");
                }
            }
        }
        if (ch->state == CHAN_FAILING) {
            moved |= relay_fail(ch);
        }
        moved |= relay_pump(ch);
        if (ch->rec != NULL && record_limit_hit(ch->rec) &&
            ch->state == CHAN_RELAYING) {
            child_record_limit(ch);
            moved = true;
        }
        if (ch->rec != NULL && record_failed(ch->rec) &&
            ch->state == CHAN_RELAYING) {
            relay_abort(ch, "the session recording failed; session ended",
                        "error: recording failed");
            moved = true;
        }
        if (relay_finished(ch)) {
            child_report_end(sc, ch, ch->result ? ch->result : "ok");
            *pp = ch->next;
            relay_chan_free(ch);
            moved = true;
            continue;
        }
        pp = &ch->next;
    }
    return moved;
}

/*
 * SIGTERM: the spawner ends every session this way when the main process
 * is gone (killed, crashed) or stops. Without a handler the child would
 * die at once and the user would see only a dropped connection; with it,
 * the loop below notices (poll is interrupted, or within its second),
 * and the client gets an SSH disconnect that says what happened.
 */
static volatile sig_atomic_t child_stopping;

#define CHILD_STOP_MESSAGE                                                     \
    "portcullis: the access server stopped (restarted, or its node "           \
    "failed); this session has ended. Connect again."
#define CHILD_STOP_RESULT "error: interrupted (the access server stopped)"

static void child_on_term(int sig)
{
    (void)sig;
    child_stopping = 1;
}

static void child_loop(struct session_child *sc)
{
    struct sigaction sa;
    int rc, errors = 0;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = child_on_term;
    sa.sa_flags = SA_RESETHAND; /* a second SIGTERM ends it at once */
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGTERM, &sa, NULL);
    sc->started_ms = sc->now_ms = util_mono_ms();
    for (;;) {
        bool moved;

        if (child_stopping) {
            log_info("the access server stopped: ending the session of %s",
                     sc->client_addr);
            /* On each channel's stderr first: a client whose last
             * channel closes exits without reading the disconnect. */
            ssh_session_set_disconnect_message(sc->down, CHILD_STOP_MESSAGE);
            for (struct relay_chan *ch = sc->chans; ch != NULL; ch = ch->next) {
                if (ch->down != NULL && ssh_channel_is_open(ch->down)) {
                    (void)ssh_channel_write_stderr(
                        ch->down, CHILD_STOP_MESSAGE "\r\n",
                        (uint32_t)sizeof(CHILD_STOP_MESSAGE "\r\n") - 1);
                }
                if (ch->result == NULL) {
                    ch->result = strdup(CHILD_STOP_RESULT);
                }
            }
            (void)ssh_blocking_flush(sc->down, 1000);
            break;
        }
        sc->now_ms = util_mono_ms();
        moved = child_step(sc);

        if (!ssh_is_connected(sc->down)) {
            break;
        }
        child_time_limit(sc);
        child_idle_limit(sc);
        if (sc->now_ms - sc->last_flush_ms >= 1000) {
            for (struct relay_chan *ch = sc->chans; ch != NULL; ch = ch->next) {
                if (ch->rec != NULL) {
                    (void)record_flush(ch->rec);
                }
            }
            sc->last_flush_ms = sc->now_ms;
        }
        if (moved || sc->activity) {
            sc->activity = false;
            continue;
        }
        rc = ssh_event_dopoll(sc->event, 1000);
        if (rc == SSH_ERROR) {
            if (!ssh_is_connected(sc->down)) {
                break;
            }
            if (++errors > 100) {
                log_error("event loop keeps failing; ending the session");
                break;
            }
        } else {
            errors = 0;
        }
    }
    /* The client is gone: close what is still open, then the grants
     * (whose rows add up their channels' bytes). */
    while (sc->chans != NULL) {
        struct relay_chan *ch = sc->chans;

        sc->chans = ch->next;
        child_report_end(sc, ch,
                         ch->state == CHAN_CLOSING && ch->result == NULL ? "ok"
                         : ch->result != NULL ? ch->result
                                              : "error: client disconnected");
        relay_chan_free(ch);
    }
    forward_end(sc, "ok");
}

/* Sanitizer runtimes (ASan/UBSan builds) report to stderr unless told
 * otherwise; weak, so a normal build has no such symbol. */
extern void __sanitizer_set_report_fd(void *fd) __attribute__((weak));

/*
 * The child must not hold the server's stdin, stdout and stderr (often
 * the administrator's terminal) nor that terminal as its controlling
 * terminal: a compromised child could type into it (TIOCSTI) or read it.
 * So, before the sandbox closes the file system: log lines (and sanitizer
 * reports) go to a descriptor of their own, where the server's stderr
 * goes (reopened write-only if that is a terminal); fds 0-2 become
 * /dev/null; and the child gives up its controlling terminal. Not
 * setsid(): the spawner ends all sessions by signalling its process
 * group, which a new session would leave (the spawner itself could start
 * a session without a terminal for all of them). The seccomp filter
 * refuses terminal ioctls as well.
 */
static int child_detach_stdio(void)
{
    int null_fd, log_fd, tty;

    if (isatty(STDERR_FILENO)) {
        /* A terminal: a new, write-only open of it, so the child cannot
         * read what the administrator types. */
        log_fd = open("/proc/self/fd/2", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    } else {
        /* A file (maybe O_APPEND), pipe or journald's socket: a copy. */
        log_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    }
    if (log_fd >= 0 && log_fd <= 2) { /* fd 0 or 1 was closed: move up */
        int moved = fcntl(log_fd, F_DUPFD_CLOEXEC, 3);

        close(log_fd);
        log_fd = moved;
    }
    if (log_fd >= 0) {
        log_set_fd(log_fd);
        if (__sanitizer_set_report_fd != NULL) {
            __sanitizer_set_report_fd((void *)(intptr_t)log_fd);
        }
    }
    if ((null_fd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
        log_error("cannot open /dev/null: %s", strerror(errno));
        return ERR_IO;
    }
    for (int fd = 0; fd <= 2; fd++) {
        if (dup2(null_fd, fd) < 0) {
            log_error("dup2: %s", strerror(errno));
            close(null_fd);
            return ERR_IO;
        }
    }
    if (null_fd > 2) {
        close(null_fd);
    }
    /* No controlling terminal: ENXIO, nothing to give up. */
    tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty >= 0) {
        if (ioctl(tty, TIOCNOTTY) != 0) {
            log_error("cannot give up the controlling terminal: %s",
                      strerror(errno));
            close(tty);
            return ERR_IO;
        }
        close(tty);
    }
    return ERR_OK;
}

int child_run(const struct child_args *a)
{
    struct session_child sc;
    int yes = 1, rc = 1;

    memset(&sc, 0, sizeof(sc));
    if (child_detach_stdio() != ERR_OK) {
        return 1;
    }
    sc.mon = a->monitor_fd;
    sc.connect_timeout = a->connect_timeout_seconds;
    sc.upstream_ciphers = a->upstream_ciphers;
    sc.upstream_macs = a->upstream_macs;
    sc.upstream_kex = a->upstream_kex;
    sc.upstream_hostkeys = a->upstream_hostkeys;
    sc.banner = a->banner;
    snprintf(sc.client_addr, sizeof(sc.client_addr), "%s", a->client_addr);
    sc.req = buf_new(MPROTO_MAX);
    sc.rep = buf_new(MPROTO_MAX);
    if (sc.req == NULL || sc.rep == NULL || (sc.down = ssh_new()) == NULL) {
        goto out;
    }
    if (ssh_bind_accept_fd(a->bind, sc.down, a->client_fd) != SSH_OK) {
        log_error("accept: %s", ssh_get_error(a->bind));
        goto out;
    }
    /* Allocated before the sandbox, once: not on the stack. */
    if (relay_init() != ERR_OK) {
        goto out;
    }
    if (sandbox_enter(a->sb) != ERR_OK) {
        goto out;
    }
    /* The monitor signs the key exchange: this process holds stand-ins
     * of the host keys only (hostkeys.h). */
    hostkeys_hook(sc.down, a->keys, child_kex_sign, &sc);
    /* A client that does not finish logging in is cut off. */
    alarm((unsigned)a->login_grace_seconds);
    ssh_set_auth_methods(sc.down, CHILD_AUTH_METHODS);
    sshkex_flush_begin(&sc.kex_flush, sc.down);
    if (ssh_handle_key_exchange(sc.down) != SSH_OK) {
        log_info("key exchange with %s failed: %s", sc.client_addr,
                 ssh_get_error(sc.down));
        goto out;
    }
    sshkex_flush_end(&sc.kex_flush);
    /* Nagle with delayed ACKs costs ~40 ms per round trip. */
    setsockopt(a->client_fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
    /* libssh made the socket blocking on its first POLLOUT; a blocking
     * send to a client that does not read would stop the whole relay
     * (both directions). libssh sends only after POLLOUT and takes a
     * partial send as progress, so non-blocking is safe. */
    (void)util_set_nonblock(a->client_fd);
    if (child_authenticate(&sc) != ERR_OK) {
        goto out;
    }
    alarm(0);
    sc.server_cb.userdata = &sc;
    sc.server_cb.channel_open_request_session_function = child_on_session_open;
    ssh_callbacks_init(&sc.server_cb);
    ssh_set_server_callbacks(sc.down, &sc.server_cb);
    ssh_set_message_callback(sc.down, child_on_message, &sc);
    if ((sc.event = ssh_event_new()) == NULL ||
        ssh_event_add_session(sc.event, sc.down) != SSH_OK) {
        goto out;
    }
    ssh_set_blocking(sc.down, 0);
    (void)readahead_register(ssh_get_fd(sc.down));
    child_loop(&sc);
    rc = 0;
out:
    while (sc.chans != NULL) {
        struct relay_chan *ch = sc.chans;
        sc.chans = ch->next;
        relay_chan_free(ch);
    }
    if (sc.up != NULL) {
        if (sc.event != NULL) {
            ssh_event_remove_session(sc.event, sc.up);
        }
        ssh_disconnect(sc.up);
        ssh_free(sc.up);
    }
    if (sc.down != NULL) {
        if (sc.event != NULL) {
            ssh_event_remove_session(sc.event, sc.down);
        }
        ssh_disconnect(sc.down);
        ssh_free(sc.down);
    }
    if (sc.event != NULL) {
        ssh_event_free(sc.event);
    }
    free(sc.up_error);
    free(sc.up_result);
    buf_free(sc.req);
    buf_free(sc.rep);
    return rc;
}
