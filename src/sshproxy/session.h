/*
 * A session child: one forked process per client connection, holding two
 * libssh sessions (the client "down", the target "up") in one ssh_event.
 *
 * Shared between child.c (authentication, channel callbacks, the loop),
 * relay.c (moving bytes between channel pairs) and upstream.c (the libssh
 * client session to the target). Everything here belongs to one child
 * process and is freed when the child ends.
 */
#ifndef PORTCULLIS_SESSION_H
#define PORTCULLIS_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>

#include "common/buf.h"
#include "common/sshkex.h"
#include "record/record.h"
#include "record/scp.h"
#include "record/sftp.h"
#include "login/login.h"
#include "store/store.h"

#define RELAY_CHUNK                                                            \
    65536 /* bytes held per stream, while the source is fast                   \
           */
/* the most one read takes: everything libssh holds (relay.c), a little
 * more than its window of 1,280,000 bytes and a packet */
#define RELAY_TAKE_MAX (2u << 20)
/* how long a failure message waits for the client's window (relay_fail) */
#define RELAY_FAIL_WAIT_MS 10000
/* the exit status of a channel the access server refused or ended */
#define RELAY_FAIL_STATUS 255
/* OpenSSH's 32768-byte maximum packet less libssh's 10-byte margin: the
 * unit in which the relay writes while more data is coming. */
#define RELAY_PACKET 32758
#define CHAN_ENV_MAX 16 /* env requests kept per channel */

/* Per-direction stream state: bytes the source has buffered in libssh,
 * and bytes read but not yet accepted by the destination. */
struct relay_stream {
    uint32_t avail; /* bytes libssh holds for us (from callbacks) */
    uint8_t *pend;  /* pend_cap bytes, lazily allocated */
    uint32_t pend_off, pend_len, pend_cap;
};

enum chan_state {
    CHAN_NEW = 0,  /* opened; waiting for shell/exec/subsystem */
    CHAN_STARTING, /* request accepted; upstream not yet set up */
    CHAN_RELAYING, /* both sides open, bytes flowing */
    CHAN_FAILING,  /* telling the client why it failed */
    CHAN_CLOSING,  /* we closed the client side; waiting for its close */
    CHAN_OPENING,  /* opened by the target (an agent or a remote forward's
                      connection): its client side is being opened */
};

struct session_child;

struct relay_chan {
    struct session_child *sc;
    struct relay_chan *next;
    enum chan_state state;
    int kind;         /* enum policy_kind */
    ssh_channel down; /* client side */
    ssh_channel up;   /* target side, NULL until set up */
    char session_id[STORE_ID_MAX + 1];
    char *detail;    /* exec command, "host:port" for forwards */
    char *fail_msg;  /* one line for the client's stderr */
    int64_t fail_ms; /* when relay_fail first waited for the window */
    char *result;    /* report result, "ok" by default */
    /* pty request, replayed upstream */
    bool pty;
    char term[64];
    int cols, rows, pxw, pxh;
    char *env_name[CHAN_ENV_MAX], *env_value[CHAN_ENV_MAX];
    int nenv;
    /* forward target */
    char fwd_host[256];
    int fwd_port;
    char fwd_orig_host[64];
    int fwd_orig_port;
    /* a session channel: the client asked for agent forwarding, and the
     * access profile allowed it (forward.c) */
    bool agent_req, agent_fwd;
    /* a session channel: X11 forwarding allowed, with the client's
     * x11-req replayed to the target as it came (its cookie is the
     * client's stand-in, which the client swaps for the real one) */
    bool x11_fwd, x11_single;
    int x11_screen;
    char *x11_proto, *x11_cookie;
    /* a channel the target opened: the grant (sc->grants) it came by */
    struct relay_chan *grant;
    /* streams: 0 = client stdin to target, 1 = target stdout to client,
     * 2 = target stderr to client */
    struct relay_stream s[3];
    bool down_eof, down_closed; /* seen from the client */
    bool up_eof, up_closed;     /* seen from the target */
    bool sent_up_eof, sent_down_eof, sent_down_close;
    bool exit_status_set;
    bool sent_exit;    /* exit-status or exit-signal sent to the client */
    int64_t up_eof_ms; /* monotonic ms of the target's EOF */
    int exit_status;
    char *exit_signal; /* e.g. "KILL" */
    bool exit_core;
    uint64_t bytes_up, bytes_down;
    int64_t last_activity_ms;
    /* recording, when the access profile says record */
    bool record_required;
    bool record_cast;  /* asciicast (shell, exec) or JSON lines */
    bool record_input; /* asciicast "i" events: what the user types */
    struct record *rec;
    uint64_t rec_max;          /* its size limit ([record] ssh_max_mb), bytes */
    struct scp_tracker *scp;   /* legacy scp transfers, for the record */
    struct sftp_tracker *sftp; /* SFTP operations, for the record */
    char user_name[STORE_NAME_MAX + 1];
    struct ssh_channel_callbacks_struct down_cb;
    struct ssh_channel_callbacks_struct up_cb;
};

struct session_child {
    ssh_session down;
    ssh_session up;
    ssh_event event;
    int mon;               /* monitor socket */
    struct buf *req, *rep; /* monitor message buffers */
    char client_addr[64];
    char login[LOGIN_MAX + 1]; /* as the client sent it */
    bool authenticated;
    bool need_totp;  /* first factor done, TOTP pending */
    bool auth_ended; /* [ssh] max_auth_tries reached: disconnect */
    int kbd_stage;   /* what the kbd-interactive prompt asked */
    /* said with the next kbd-interactive prompt: why the last answer
     * failed (child.c, child_kbd_prompt) */
    const char *kbd_note;
    char asset_name[STORE_NAME_MAX + 1];
    bool up_failed;  /* the upstream could not be set up */
    char *up_error;  /* why: message for the client */
    char *up_result; /* why: report result */
    int max_session_minutes;
    int idle_timeout_minutes;
    int64_t started_ms;
    bool activity; /* a callback saw something happen */
    struct relay_chan *chans;
    /* what the access profile allowed that the target may use later:
     * agent forwarding (one at most) and remote forwards, each with its
     * report row; no channels of their own (forward.c) */
    struct relay_chan *grants;
    int forward_requests; /* tcpip-forward requests so far (forward.c) */
    struct ssh_callbacks_struct up_session_cb;
    struct ssh_server_callbacks_struct server_cb;
    struct sshkex_flush kex_flush; /* the first KEXINIT leaves at once */
    int connect_timeout;
    const char *upstream_ciphers; /* see child_args */
    const char *upstream_macs;
    const char *upstream_kex;
    const char *upstream_hostkeys;
    const char *banner;
    bool banner_sent;
    bool store_down_said;  /* the "database unavailable" banner was sent */
    bool store_down_last;  /* the last verdict failed for it */
    int64_t last_flush_ms; /* recordings are flushed at least every second */
    /* util_mono_ms() read once per turn of child_run()'s loop, for the
     * checks of that turn (it was read four times a turn: ~1 % of the
     * child's CPU in a bulk transfer, bench/README.md). */
    int64_t now_ms;
};

/* relay.c */
/* Allocates the transfer records' line buffer; once per process, before
 * the sandbox. */
int relay_init(void);
struct relay_chan *relay_chan_new(struct session_child *sc);
void relay_chan_free(struct relay_chan *ch);
/* Installs the target-side callbacks on ch->up (the client side's are in
 * child.c, with the requests they start). */
void relay_set_up_callbacks(struct relay_chan *ch);
/* Moves what can be moved without blocking; true if anything moved. */
bool relay_pump(struct relay_chan *ch);
/* Sends the failure message, exit status 1, EOF and close to the client;
 * waits (false: nothing done yet, called again) while the client's window
 * cannot take the message, RELAY_FAIL_WAIT_MS at most. */
bool relay_fail(struct relay_chan *ch);
/* true when both sides are done and the channel can be freed. */
bool relay_finished(const struct relay_chan *ch);
/* Starts the transfer records of an scp or sftp channel (JSON lines). */
int relay_transfer_start(struct relay_chan *ch);
/* Reports what the SFTP tracker still holds (unclosed handles). */
void relay_transfer_finish(struct relay_chan *ch);
/* Ends the channel at once (both sides) with a message for the client. */
void relay_abort(struct relay_chan *ch, const char *msg, const char *result);

/* upstream.c */
/* Connects (through the monitor), verifies the host key, authenticates
 * with the vaulted login. On failure sets sc->up_failed, up_error and
 * up_result. session_id: the report row that triggered the connection. */
int upstream_open(struct session_child *sc, const char *session_id);
/* Opens ch->up on the upstream session and replays the client's requests
 * (pty, env, shell/exec/subsystem or direct-tcpip). Blocking. */
int upstream_open_channel(struct session_child *sc, struct relay_chan *ch);

/* forward.c: agent forwarding and remote forwards (ssh -A, ssh -R) */
/* Installs the callbacks by which the target opens channels towards the
 * client, on sc->up before it connects. */
int forward_set_up_callbacks(struct session_child *sc);
/* A session channel that asked for agent forwarding is being started:
 * authorizes it (once per connection) and sets ch->agent_fwd. */
void forward_agent_start(struct session_child *sc, struct relay_chan *ch);
/* The client's x11-req on a session channel: authorized (once per
 * connection) and answered here; 1 for libssh's default (refused). */
int forward_x11_request(struct session_child *sc, ssh_message m);
/* A global request of the client (tcpip-forward, cancel-tcpip-forward):
 * answered here; 1 for libssh's default answer (refused). */
int forward_global_request(struct session_child *sc, ssh_message m);
/* A channel in CHAN_OPENING: goes on opening its client side; true if
 * anything changed. */
bool forward_open_step(struct relay_chan *ch);
/* A channel the target opened adds what it moved to its grant's row and
 * leaves it (it ends, or its grant does first). */
void forward_credit(struct relay_chan *ch);
/* The connection ends (or reached its time limit): closes the grants'
 * report rows with result; the target may open nothing more. */
void forward_end(struct session_child *sc, const char *result);

/* child.c: a blocking request to the monitor; reply payload in sc->rep. */
int session_monitor_call(struct session_child *sc, uint8_t type,
                         uint8_t reply_type, int *fd);
/* Asks the monitor whether ch (its kind and detail) is allowed: opens its
 * report row (ch->session_id) or, refused, sets ch->fail_msg. */
int child_authorize(struct session_child *sc, struct relay_chan *ch);
/* Closes ch's report row with result and what it moved. */
void child_report_end(struct session_child *sc, struct relay_chan *ch,
                      const char *result);
/* Installs the client-side callbacks on ch->down. */
int child_set_down_callbacks(struct relay_chan *ch);

#endif
