/*
 * The monitor: the main process's side of the session children's
 * requests (SPEC §10). It owns the store, the vault key and the login
 * throttle, and answers a small table of typed requests (mproto.h), each
 * permitted only in the states where it makes sense:
 *
 *   request           permitted when
 *   MP_AUTH_PASSWORD  not yet authenticated, no second factor pending
 *   MP_AUTH_PUBKEY    not yet authenticated, no second factor pending
 *   MP_AUTH_TOTP      a first factor succeeded and TOTP is pending
 *   MP_AUTHORIZE      authenticated
 *   MP_CONNECT        authenticated, a channel authorized, not yet asked
 *   MP_HOSTKEY        connected, not yet asked
 *   MP_CREDENTIALS    host key accepted, not yet asked
 *   MP_RECORD_OPEN    for a row of this child whose policy says record;
 *                     once per row
 *   MP_SESSION_END    authenticated; for a report row of this child only
 *
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
#include "common/vault.h"
#include "login/login.h"
#include "store/store.h"

struct hub;
struct hub_req;
struct lockout;
struct loop;
struct monitor_resolve;
struct password_pool;

enum mchild_state {
    MC_PREAUTH = 0,
    MC_NEED_TOTP, /* first factor done */
    MC_AUTHED,
    MC_DEAD, /* protocol violation: ignored until reaped */
};

struct mchild_row {
    char id[STORE_ID_MAX + 1];
    struct mchild_row *next;
    bool record;     /* policy: this session must be recorded */
    bool rec_opened; /* its recording file was handed out */
    char *rec_path;  /* heap: that file's path */
};

struct monitor;

/* What the main process knows about one session child. */
struct mchild {
    struct mchild *next;
    struct monitor *mon;
    pid_t pid;
    int fd;        /* monitor socket, -1 once closed */
    char addr[64]; /* "ip:port" of the client */
    char ip[48];   /* for the per-address throttle */
    enum mchild_state state;
    struct login login; /* as parsed from the last auth request */
    char user_id[STORE_ID_MAX + 1];
    char user_name[STORE_NAME_MAX + 1];
    bool tried;          /* an authentication was attempted */
    char last_fail[160]; /* report result if it never gets in */
    bool asset_resolved;
    char asset_id[STORE_ID_MAX + 1];
    char asset_name[STORE_NAME_MAX + 1];
    char asset_site[STORE_PATH_MAX + 1];
    char asset_host[STORE_HOST_MAX + 1];
    int asset_port;
    char route[STORE_ROUTE_MAX + 1];
    bool connect_asked, hostkey_ok, hostkey_asked, creds_given;
    int connect_fd; /* pending non-blocking connect, -1 if none */
    uint64_t connect_timer;
    char connect_row[STORE_ID_MAX + 1];
    struct hub_req *hub_req; /* pending stream through an agent, or NULL */
    int hub_fd;              /* the child's end of that stream, -1 if none */
    struct mchild_row *rows; /* report rows this child has open */
    /* asynchronous work (helper "lockout"): a password check on the
     * worker pool and a host-name resolution report back by serial, never
     * by pointer, since the child may be gone by then */
    uint64_t serial;                 /* unique for the monitor's lifetime */
    bool auth_pending;               /* a password check is running */
    bool resolving;                  /* CONNECT is resolving the host */
    char auth_uid[STORE_ID_MAX + 1]; /* user the login names; "" unknown */
};

struct monitor {
    const struct config *cfg;
    struct loop *loop; /* the main process's event loop */
    struct store *store;
    struct vault *vault;
    struct lockout *lockout;
    struct mchild *children;
    struct hub *hub; /* agents (route agent:ID), or NULL */
    /* browser terminals' one-time tickets (webticket.h), or NULL */
    struct webtickets *tickets;
    int preauth; /* children not yet authenticated */
    struct buf *req, *rep;
    /* asynchronous work (see struct mchild) */
    struct password_pool *hashes; /* NULL without a loop: check in line */
    uint64_t next_serial;
    struct monitor_resolve *resolves; /* pending CONNECT resolutions */
};

int monitor_init(struct monitor *m, const struct config *cfg,
                 struct loop *loop);
void monitor_free(struct monitor *m);
/* Handles one request from c; ERR_PROTO means kill the child. */
int monitor_request(struct monitor *m, struct mchild *c, uint8_t type,
                    struct buf *req);
/* A new child (from the spawner): tracks it and watches its monitor
 * socket in the loop. Takes ownership of fd. */
struct mchild *monitor_child_new(struct monitor *m, pid_t pid, int fd,
                                 const char *addr);
/* The child with this pid exited (status as from waitpid; -1 at
 * shutdown): closes its open report rows, writes a row for a failed
 * login, stops watching its fds and frees it. */
void monitor_child_exit(struct monitor *m, pid_t pid, int status);

#endif
