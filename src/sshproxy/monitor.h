/*
 * The monitor: the main process's side of the session children's
 * requests (SPEC §10). It owns the store, the vault key and the login
 * throttle, and answers a small table of typed requests (mproto.h), each
 * permitted only in the states where it makes sense:
 *
 *   request           from     permitted when
 *   MP_AUTH_PASSWORD  both     not yet authenticated, no second factor
 *                              pending
 *   MP_AUTH_PUBKEY    SSH      not yet authenticated, no second factor
 *                              pending, the key exchange signed (a
 *                              session identifier)
 *   MP_RDP_NTLM       RDP      not yet authenticated, once
 *   MP_KEX_SIGN       SSH      once before authentication (that hash
 *                              becomes the session identifier); again only
 *                              after it (re-keying)
 *   MP_AUTH_TOTP      SSH      a first factor succeeded and TOTP is
 *                              pending (an RDP login's code comes in the
 *                              user name)
 *   MP_AUTHORIZE      both     authenticated; a session of the child's
 *                              kind (KIND_RDP from an RDP child only)
 *   MP_CONNECT        both     authenticated, a channel authorized, not
 *                              yet asked
 *   MP_HOSTKEY        both     a connected stream was handed over, not yet
 *                              asked
 *   MP_CREDENTIALS    both     host key accepted, not yet asked
 *   MP_RECORD_OPEN    both     for a row of this child whose policy says
 *                              record; once per row
 *   MP_SESSION_END    both     authenticated; for a report row of this
 *                              child only
 *
 * "from": which children may send it, SSH (the SSH proxy's) or RDP (the
 * RDP proxy's, mchild.rdp); the other kind asking for it is ended.
 * Anything else ends the child. The child never learns a password hash, a
 * TOTP seed or the vault key; it receives the asset's vaulted login once,
 * after authorization and the host-key check.
 */
#ifndef PORTCULLIS_MONITOR_H
#define PORTCULLIS_MONITOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/config.h"
#include "auth/lockout.h"
#include "common/vault.h"
#include "login/login.h"
#include "route/route.h"
#include "sshproxy/hostkeys.h"
#include "store/store.h"

struct lockout;
struct loop;
struct password_pool;

/*
 * A child's life in the main process. Every change goes through
 * monitor_child_state(), which alone adjusts m->preauth, tells the
 * spawner when a child authenticated (its pre-authentication slots are
 * given back there) and kills a child that becomes MC_DEAD:
 *
 *   MC_NEW -> MC_PREAUTH <-> MC_NEED_TOTP -> MC_AUTHED
 *   MC_PREAUTH / MC_NEED_TOTP -> MC_AUTH_ENDED ([ssh] max_auth_tries)
 *   any of them -> MC_DEAD (killed) -> MC_GONE (reaped: freed)
 *   any of them -> MC_GONE
 *
 * MC_PREAUTH, MC_NEED_TOTP and MC_AUTH_ENDED count in m->preauth.
 */
enum mchild_state {
    MC_NEW = 0,    /* allocated, not yet counted */
    MC_PREAUTH,    /* not authenticated */
    MC_NEED_TOTP,  /* first factor done */
    MC_AUTH_ENDED, /* too many failures: the child must disconnect; any
                      further request ends it */
    MC_AUTHED,
    MC_DEAD, /* killed (protocol violation, lost link): ignored until
                reaped */
    MC_GONE, /* reaped; about to be freed */
};

struct mchild_row {
    char id[STORE_ID_MAX + 1];
    struct mchild_row *next;
    bool record;     /* policy: this session must be recorded */
    bool rec_opened; /* its recording file was handed out */
    char *rec_path;  /* heap: that file's path */
    /* an RDP recording: a descriptor of the monitor's own on it (-1:
     * none) and its size limit, checked on each sweep */
    int rec_fd;
    uint64_t rec_max;
};

struct monitor;

/* What the main process knows about one session child. */
struct mchild {
    struct mchild *next;
    struct monitor *mon;
    pid_t pid;
    int pidfd;     /* signals go through it only: never a reused pid */
    int fd;        /* monitor socket, -1 once closed */
    char addr[64]; /* "ip:port" of the client */
    char ip[48];   /* for the per-address throttle */
    enum mchild_state state; /* changed by monitor_child_state() only */
    int auth_failures;       /* failed authentication replies */
    struct login login;      /* as parsed from the last auth request */
    char user_id[STORE_ID_MAX + 1];
    char user_name[STORE_NAME_MAX + 1];
    bool tried;          /* an authentication was attempted */
    char last_fail[256]; /* report result if it never gets in */
    bool asset_resolved;
    char asset_id[STORE_ID_MAX + 1];
    char asset_name[STORE_NAME_MAX + 1];
    char asset_site[STORE_PATH_MAX + 1];
    char asset_host[STORE_HOST_MAX + 1];
    int asset_port;
    struct route route; /* the asset's, parsed (route_parse) */
    /* the first exchange hash signed for this child (hostkeys.h) */
    uint8_t session_id[HOSTKEYS_HASH_MAX];
    size_t session_id_len;
    bool connect_asked, hostkey_ok, hostkey_asked, creds_given;
    bool connected;       /* a connected stream was handed over */
    char end_result[120]; /* ended by the monitor: its rows' result */
    char connect_row[STORE_ID_MAX + 1];
    struct route_req *route_req; /* pending CONNECT, or NULL */
    struct mchild_row *rows;     /* report rows this child has open */
    /* asynchronous work (helper "lockout"): a password check on the
     * worker pool reports back by serial, never by pointer, since the
     * child may be gone by then (a CONNECT's route_req is cancelled when
     * the child goes) */
    uint64_t serial;   /* unique for the monitor's lifetime */
    bool auth_pending; /* a password check is running */
    /* a request's store work is on a worker (monitor.c, "Store work off
     * the loop"): the child's socket is not read until it is answered */
    bool store_pending;
    bool store_down; /* the last user lookup failed: store unavailable */
    /* the RDP proxy's children (rdpproxy/rdp_server.c): report rows of
     * kind "rdp", audit events say "rdp" */
    bool rdp;
    bool ntlm_asked; /* MP_RDP_NTLM answered: once per child */
    /* MP_RDP_NTLM's response did not prove the password: counted as a
     * failed password for ntlm_key (the user's password factor) and the
     * address, which this child's own password check settles */
    bool ntlm_charged;
    char ntlm_key[LOCKOUT_KEY_MAX];
    /* NT hash of the password being checked, stored sealed if the check
     * succeeds and the user has none yet (docs/rdp.md) */
    uint8_t pending_nt[16];
    bool pending_nt_set;
    char auth_uid[STORE_ID_MAX + 1]; /* user the login names; "" unknown */
};

struct store_worker;

struct monitor {
    const struct config *cfg;
    struct loop *loop; /* the main process's event loop */
    struct store *store;
    struct vault *vault;
    struct lockout *lockout;
    struct mchild *children;
    /* how CONNECT reaches assets (route.h); NULL: every CONNECT fails */
    struct routes *routes;
    /* browser terminals' one-time tickets (webticket.h), or NULL */
    struct webtickets *tickets;
    int preauth;              /* children not yet authenticated */
    struct hostkeys hostkeys; /* the SSH host keys: only here */
    ssh_session ssh_ctx;      /* for libssh's signature checks */
    uint64_t sweep_timer;     /* monitor_on_sweep, 0 if none */
    /* the disabled-user check's rounds (one connection) and the login
     * path's store work (monitor.c, "Store work off the loop"): on worker
     * threads with connections of their own on PostgreSQL, on the loop on
     * SQLite or without a loop (store/store_worker.h) */
    struct store_worker *users;
    struct store_worker *jobs;
    /* writes the audit events kept while the store did not answer
     * (audit_defer()): 0 if not armed, and its backoff */
    uint64_t audit_timer;
    int audit_delay_ms;
    /* report rows whose closing the store refused (a database outage),
     * written again by each sweep until it takes them (monitor.c) */
    struct monitor_pending *pending;
    size_t npending;
    /* called once per child that authenticates (server.c tells the
     * spawner, which owns the pre-authentication limits); may be NULL */
    void (*on_authed)(void *arg, pid_t pid);
    void *on_authed_arg;
    /* the same for RDP children (rdp_server.c tells the RDP spawner) */
    void (*on_rdp_authed)(void *arg, pid_t pid);
    void *on_rdp_authed_arg;
    struct buf *req, *rep;
    /* asynchronous work (see struct mchild) */
    struct password_pool *hashes; /* NULL without a loop: check in line */
    uint64_t next_serial;
};

int monitor_init(struct monitor *m, const struct config *cfg,
                 struct loop *loop);
void monitor_free(struct monitor *m);
/* Handles one request from c; ERR_PROTO means kill the child. */
int monitor_request(struct monitor *m, struct mchild *c, uint8_t type,
                    struct buf *req);
/* A new child (from the spawner): tracks it and watches its monitor
 * socket in the loop. Takes ownership of pidfd (a pidfd of the child,
 * or -1: then it is never signalled) and fd, also when it fails: it
 * then kills the child (an untracked child must not run) and returns
 * NULL. */
struct mchild *monitor_child_new(struct monitor *m, pid_t pid, int pidfd,
                                 int fd, const char *addr);
/* The one state transition (see enum mchild_state): ERR_OK, or
 * ERR_INTERNAL for a transition the diagram does not have (nothing
 * changes then). */
int monitor_child_state(struct monitor *m, struct mchild *c,
                        enum mchild_state to);
/* The child with this pid exited (status as from waitpid; -1 at
 * shutdown): closes its open report rows, writes a row for a failed
 * login, stops watching its fds and frees it. */
void monitor_child_exit(struct monitor *m, pid_t pid, int status);

#endif
