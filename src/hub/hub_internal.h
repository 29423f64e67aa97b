/*
 * What the files of src/hub/ share: one agent connection, one stream, and
 * the announcement parser. Not for other modules.
 *
 * An agent connection (struct hub_agent) is three file descriptors and a
 * libssh server session:
 *
 *   agent --TCP--> lws wsi --frames--> fd_ws ==socketpair== fd_ssh <-- libssh
 *
 * hub.c moves WebSocket payloads to fd_ws and fd_ws's bytes back into
 * binary frames (with backpressure both ways: lws rx flow control, and
 * reading fd_ws only while the outgoing frame buffer is empty); libssh
 * reads and writes fd_ssh, driven by loop events on it. Buffers exist only
 * while bytes are in flight, so an idle agent holds none.
 *
 * Callbacks from libssh (channel opens, channel data) only note what
 * happened; the work is done after ssh_event_dopoll() returns
 * (hub_agent_service), never inside libssh. Authentication has no
 * callback: its requests are taken from libssh's message queue and a
 * password attempt is answered when its store lookup comes back
 * (hub.c, hub_auth_messages; hub_store.c).
 */
#ifndef PORTCULLIS_HUB_INTERNAL_H
#define PORTCULLIS_HUB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <libwebsockets.h>

#include "common/sshkex.h"
#include "hub/hub.h"
#include "store/agents.h"
#include "store/store_wqueue.h"

#define HUB_ANNOUNCE_MAX 16384
#define HUB_ANNOUNCE_SUBSYSTEM "announce@portcullis"
#define HUB_AUTH_TRIES 3    /* wrong passwords */
#define HUB_AUTH_ATTEMPTS 6 /* of any method, none included (MaxAuthTries) */
/* the refusal when a credential announces an ID bound to another one */
#define HUB_BOUND_REASON "agent id bound to another credential"
#define HUB_HANDSHAKE_MS 10000 /* to authenticate, and then to announce */
#define HUB_FRAME_MAX 65536    /* payload bytes per WebSocket frame */
#define HUB_CHUNK 65536        /* per-stream buffer, each direction */
/* The most a stream's channel may hold in libssh unread: libssh grants a
 * window of at most 1,280,000 bytes and opens it again only while less
 * than half of that is held, so an agent that keeps to the window never
 * gets near this. One that sends past it is dropped. */
#define HUB_HOLD_MAX (2 * 1280000 + HUB_CHUNK)
#define HUB_BUCKETS 16384 /* online agents by ID */
#define HUB_PASSES 4      /* extra passes over the streams per service */
/* the hub's store work (hub_store.c) */
#define HUB_READ_CONNS 2      /* connections of its reads worker */
#define HUB_AUTH_INFLIGHT 256 /* password lookups in flight, in all */
#define HUB_STOP_MS 2000      /* at stop, for jobs that run */

enum hub_agent_state {
    HA_KEX,      /* key exchange */
    HA_AUTH,     /* waiting for the credential */
    HA_ANNOUNCE, /* authenticated, waiting for the announcement */
    HA_ONLINE,   /* announced: streams may be opened */
    HA_CLOSING,  /* on its way out */
};

/* An announcement, as parsed (hub_announce.c). */
struct hub_announce {
    char id[AGENT_ID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char hostname[AGENT_FACT_MAX + 1];
    char os[STORE_NAME_MAX + 1];
    char kernel[STORE_NAME_MAX + 1];
    char arch[32 + 1];
    char version[64 + 1];
    char addresses[AGENT_JSON_MAX + 1]; /* JSON array */
    char tags[AGENT_JSON_MAX + 1];      /* JSON array */
};

struct hub_stream;
struct hub_auth_job;
struct hub_ann_job;
struct store_worker;

/* Whether an announcement's job writes the agent online, or why not
 * (hub_store.c; the binding is checked first either way). */
enum hub_ann_write {
    HUB_ANN_W_YES,
    HUB_ANN_W_IN_USE, /* another connection holds (or claims) the ID */
    HUB_ANN_W_FULL,   /* [agent] max */
};

struct hub_agent {
    struct hub *h;
    struct hub_agent *next, *prev; /* every connection */
    struct hub_agent *hnext;       /* online agents' bucket chain */
    struct hub_agent *cnext;       /* claims' bucket chain */
    uint64_t serial;               /* this connection's, unique */
    struct lws *wsi;               /* NULL once libwebsockets let go */
    enum hub_agent_state state;
    int fd_ws, fd_ssh;
    ssh_session s;
    ssh_event ev;
    struct ssh_server_callbacks_struct server_cb;
    struct sshkex_flush kex_flush; /* the first KEXINIT leaves at once */
    char ip[64];                   /* client address */
    char remote[64];               /* "ip:port" */
    char cred_id[STORE_ID_MAX + 1];
    char id[AGENT_ID_MAX + 1]; /* announced ID, "" before */
    int auth_failures;         /* wrong passwords */
    int auth_attempts;         /* failed attempts of any method */
    int64_t started_ms, last_rx_ms, ping_sent_ms, probe_until_ms;
    int64_t close_at_ms; /* deferred close (after a refusal), 0 = none */
    bool ping_wanted, in_service, dead;
    bool rx_paused;       /* lws rx flow control is off (hub_rx_flow) */
    const char *kill_why; /* set inside libssh callbacks: close after */

    /* WebSocket -> fd_ws bytes that did not fit (rx paused meanwhile) */
    uint8_t *in;
    size_t in_len, in_off;
    /* fd_ws -> WebSocket: one frame waiting for WRITEABLE (LWS_PRE first) */
    uint8_t *out;
    size_t out_len;

    /* the announcement channel */
    ssh_channel ann_ch;
    struct ssh_channel_callbacks_struct ann_cb;
    bool ann_subsystem, ann_eof, ann_done, ann_bad;
    char *ann_buf;
    size_t ann_len;

    /* the password attempt whose lookup is in flight (hub_store.c):
     * answered when it comes back */
    ssh_message auth_msg;
    struct hub_auth_job *auth_job;
    /* the announcement whose store work is in flight: the ID it claims
     * (in h->claims meanwhile) and whether the job writes it online */
    struct hub_ann_job *ann_job;
    char ann_id[AGENT_ID_MAX + 1];
    bool ann_claimed, ann_writes;

    struct hub_stream *streams;

    /* What libssh wrote into the socketpair leaves at the end of the loop
     * turn, as one frame (hub.c, hub_turn_end): libssh's byte counter,
     * its value when fd_ws was last read, and the hub's list of agents
     * to look at then. */
    struct ssh_counter_struct cnt;
    uint64_t out_seen;
    struct hub_agent *fnext;
    bool fqueued;
    /* a stream had bytes to send but libssh still waited to hear that its
     * socket takes more (hub_agent_service polls it once more) */
    bool held;
};

struct hub {
    const struct config *cfg;
    struct loop *loop;
    struct store *store;
    ssh_bind bind;
    struct lws_protocols proto;
    struct hub_agent *agents;  /* every connection */
    struct hub_agent **online; /* HUB_BUCKETS chains */
    size_t nconns, nonline;
    uint64_t sweep_timer;
    hub_presence_fn presence;
    void *presence_arg;
    hub_change_fn change;
    void *change_arg;
    hub_auth_fn authed;
    void *authed_arg;
    /* hub_jobs_pickup: one pass (or, on a database server, one plan on
     * jobw) at a time; jobs_again: another asked meanwhile */
    bool jobs_picking, jobs_again;
    struct store_worker *jobw; /* the pickup's store work (hub_job.c) */
    struct wqueue jobq; /* the jobs' result and output writes (hub_jobw.c) */
    /* jobs running here that can be watched, and watchers waiting for
     * a job to start here (hub_job.c) */
    struct hub_job_live *jobs_live;
    struct hub_watch *watch_waiting;
    size_t nwatch;
    struct hub_wsocks *wsocks; /* the CLI's watch.sock (hub_watchsock.c) */
    struct hub_agent *flush;   /* agents whose fd_ws to read at turn end */

    /* store work off the loop (hub_store.c) */
    struct store_worker *reads, *writes;
    struct hub_auth_job *auths; /* password lookups in flight */
    size_t nauths;
    bool auth_full;            /* HUB_AUTH_INFLIGHT was hit (logged once) */
    struct hub_agent **claims; /* HUB_BUCKETS chains: announcing agents */
    size_t nclaims;
    uint64_t serials;
    bool check_busy;      /* a change's check is in flight */
    unsigned check_again; /* changes that came meanwhile */
    bool stopping;
};

/* hub_announce.c: parses an announcement (docs/agent-protocol.md §2).
 * Pure; fuzzed. ERR_OK or ERR_INVALID with a one-line why. */
int hub_announce_parse(const char *data, size_t len, struct hub_announce *out,
                       char *why, size_t whylen);
/* True if s is a valid agent ID (1-64 of A-Z a-z 0-9 . _ -). */
bool hub_agent_id_valid(const char *s);

/* hub.c */
struct hub_agent *hub_find_online(const struct hub *h, const char *id);
/* Ends the connection (now, or after ms so a refusal reaches the agent). */
void hub_agent_close(struct hub_agent *a, const char *why, int64_t ms);
/* Recomputes which loop events fd_ssh needs (after libssh was used). */
void hub_agent_watch(struct hub_agent *a);
/* Runs libssh (a zero-timeout poll) and every stream, then watches. May
 * end the agent (it is then only marked dead). */
void hub_agent_service(struct hub_agent *a);

/* hub.c: what the store work's answers lead to (hub_store.c) */
/* result: ERR_OK (cred_id the credential), ERR_AUTH (wrong secret),
 * ERR_NOT_FOUND (no such credential), else the store failed. */
void hub_auth_result(struct hub_agent *a, int result, const char *cred_id);
void hub_announce_online(struct hub_agent *a, const struct store_agent *sa);
void hub_announce_in_use(struct hub_agent *a, const char *id);
void hub_refuse(struct hub_agent *a, const char *why);
void hub_refuse_bound(struct hub_agent *a, const char *id, const char *bound);
struct hub_agent *hub_find_claim(const struct hub *h, const char *id);
void hub_claim_remove(struct hub_agent *a);

/* hub_job.c: the pickup's store worker (one connection), started and
 * stopped with the hub's others (hub_store.c) */
int hub_jobs_store_start(struct hub *h);
void hub_jobs_store_stop(struct hub *h);
/* hub_store.c */
int hub_store_start(struct hub *h);
/* Stops the workers: afterwards offline writes are made on the loop. */
void hub_store_stop(struct hub *h);
/* Starts the lookup of a password attempt (user, password copied):
 * hub_auth_result() later, or before it returns when the store is
 * inline. ERR_DENIED when HUB_AUTH_INFLIGHT are in flight. */
int hub_auth_lookup(struct hub_agent *a, const char *user,
                    const char *password);
/* Starts the announcement's store work for sa (hub_announce_online, or a
 * refusal, later). */
int hub_announce_store(struct hub_agent *a, const struct store_agent *sa,
                       enum hub_ann_write w);
/* Writes agent id offline (after whatever was queued before). */
void hub_offline_store(struct hub *h, const char *id);
/* Checks the connections after a change (mask of enum hub_change). */
void hub_check_begin(struct hub *h, unsigned what);
/* a goes: its jobs forget it (before it is freed). */
void hub_store_detach(struct hub_agent *a);

/* hub_stream.c */
void hub_streams_service(struct hub_agent *a);
/* The agent is gone: pending streams fail with why, open ones end. */
void hub_streams_drop(struct hub_agent *a, const char *why);

/* hub_jobw.c: the jobs' store writes, in order, off the loop on a
 * database server */
void hub_jobw_start(struct hub *h);
void hub_jobw_stop(struct hub *h);
/* Queues the live output of job id beyond saved[0] bytes of stdout and
 * saved[1] of stderr, and moves saved to the ends; false when it was not
 * taken (the queue's bound, memory): saved stays. */
bool hub_jobw_progress(struct hub *h, const char *id, size_t saved[2],
                       const uint8_t *out, size_t out_len, const uint8_t *err,
                       size_t err_len);

#endif
