/*
 * The agent hub: the main process's side of every connected
 * portcullis-agent (SPEC §6 and §10, docs/agent-protocol.md).
 *
 * Each agent arrives as a WebSocket on the HTTP listener (GET /agent,
 * subprotocol portcullis-agent.v1). The hub bridges the frames to a
 * socketpair and runs a non-blocking libssh server session on the other
 * end, inside the main process's one libuv loop: no process or thread per
 * agent, so 10,000 idle agents cost only memory. It authenticates the agent
 * credential, reads the announcement, refuses everything the agent opens,
 * and opens streams (direct-tcpip channels) to targets on the agent's side
 * for the SSH proxy's agent: route and for tunnels.
 *
 * Streams are bridged to file descriptors: the caller hands the hub an fd
 * (one end of a socketpair for a session child, an accepted TCP socket for
 * a tunnel, one end of a SOCK_SEQPACKET pair for a UDP flow) and the hub
 * moves bytes between it and the channel with both sides' flow control.
 *
 * Ownership: hub_start() borrows cfg, loop and store (they outlive the
 * hub); hub_stop() drops every agent and frees everything. All functions
 * run in the loop's thread.
 */
#ifndef PORTCULLIS_HUB_H
#define PORTCULLIS_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/loop.h"
#include "store/store.h"

struct hub;
struct hub_req;
struct store_job;
struct lws;
struct lws_protocols;

/* What changed in the store (notify.h; also called by the REST API). */
enum hub_change {
    HUB_CHANGE_CREDENTIALS = 1, /* re-check online agents' credentials */
    HUB_CHANGE_TUNNELS = 2,     /* tunnels added, deleted or ACL changed */
    HUB_CHANGE_AGENTS = 4,      /* agents deleted */
    HUB_CHANGE_JOBS = 8,        /* jobs queued (`portcullis job run`) */
    HUB_CHANGE_PRESENCE = 16,   /* an agent with tunnels came or went on a
                                 * node (the tunnels' listeners follow) */
};

int hub_start(struct hub **out, const struct config *cfg, struct loop *loop,
              struct store *store);
void hub_stop(struct hub *h);

/* The libwebsockets protocol for the HTTP listener's protocol list
 * (name "portcullis-agent.v1"; its user pointer is the hub). */
const struct lws_protocols *hub_lws_protocol(struct hub *h);

/* The store changed (a mask of enum hub_change). */
void hub_changed(struct hub *h, unsigned what);

/* Writes every agent online here back into the store as this node's
 * (store_agent_reclaim): after another node declared this one dead while
 * it still held them. */
void hub_reclaim_agents(struct hub *h);

/* True if an agent with this ID is online (announced). */
bool hub_agent_online(const struct hub *h, const char *agent_id);
/* Agents online now. */
size_t hub_agents_online(const struct hub *h);

/* --- streams --- */

enum hub_stream_kind {
    HUB_TCP, /* fd: a stream socket; bytes both ways, EOF as half-close */
    HUB_UDP, /* fd: a SOCK_SEQPACKET socket (so that closing the other end
                ends the stream); one datagram per send/recv, framed on the
                channel; an empty datagram reads as that end, so none is
                carried */
};

/* Called once per hub_connect(): ok true when the agent confirmed the
 * target is connected (the hub now bridges fd); ok false with a one-line
 * why ("agent 'x' is not connected", "refused by the agent's allow-list",
 * "connect 127.0.0.1:22: Connection refused", "timed out", "agent
 * disconnected") after which the hub has closed fd. When the stream ends
 * later, the hub closes fd (the other end sees EOF) and calls nothing. */
typedef void (*hub_connect_fn)(void *arg, bool ok, const char *why);

/* Opens a stream to host:port as seen from agent_id and bridges it to fd,
 * which the hub owns from now on (also on failure). orig / orig_port name
 * whom it is for (the agent logs them). Returns a handle that is valid
 * until fn is called, or NULL if it could not even start (fn was already
 * called with the reason). */
struct hub_req *hub_connect(struct hub *h, const char *agent_id,
                            enum hub_stream_kind kind, const char *host,
                            int port, const char *orig, int orig_port, int fd,
                            hub_connect_fn fn, void *arg);
/* hub_connect() that also learns how a confirmed stream ends: end(arg,
 * up, down, why) once, when the stream ends after fn(arg, true, ...); up
 * counts bytes from fd to the target, down the other way (payload bytes
 * for UDP); why is NULL for a normal end (both sides done), else one
 * line. The handle then stays valid until end is called (or until
 * fn(arg, false, ...)). */
typedef void (*hub_end_fn)(void *arg, uint64_t up, uint64_t down,
                           const char *why);
struct hub_req *hub_connect_ex(struct hub *h, const char *agent_id,
                               enum hub_stream_kind kind, const char *host,
                               int port, const char *orig, int orig_port,
                               int fd, hub_connect_fn fn, hub_end_fn end,
                               void *arg);
/* While the handle is valid: end the stream now, calling neither fn nor
 * end (the channel and fd are closed). */
void hub_connect_cancel(struct hub_req *r);

/* Tells fn(arg, agent_id, online) whenever an agent comes online
 * (announced) or goes; one listener (the tunnels). */
typedef void (*hub_presence_fn)(void *arg, const char *agent_id, bool online);
void hub_set_presence_fn(struct hub *h, hub_presence_fn fn, void *arg);
/* Tells the other nodes of a cluster what (HUB_CHANGE_*: a notice,
 * store/notices.h) once the hub's store writes asked for so far are
 * made (its writes worker is one connection, in order): from a presence
 * listener, the notice comes after the agent's online or offline row
 * that the other nodes read on it. Nothing on a store of one node. */
void hub_publish_after_writes(struct hub *h, unsigned what);

/* Tells fn(arg, wsi) once when the agent on WebSocket wsi has
 * authenticated (the HTTP listener stops counting it as a pre-auth
 * WebSocket of its source address); one listener. */
typedef void (*hub_auth_fn)(void *arg, struct lws *wsi);
void hub_set_auth_fn(struct hub *h, hub_auth_fn fn, void *arg);

/* Passes every hub_changed() on to fn(arg, what) after the hub's own
 * work; one listener (the tunnels, for HUB_CHANGE_TUNNELS). */
typedef void (*hub_change_fn)(void *arg, unsigned what);
void hub_set_change_fn(struct hub *h, hub_change_fn fn, void *arg);

/* --- jobs (docs/agent-protocol.md §6) --- */

struct hub_job_result {
    const char *status; /* ok, failed, timeout, refused, agent offline, lost */
    int exit_code;      /* -1: none */
    int signal;         /* 0: none */
    const char *why;    /* one line, or NULL */
    const uint8_t *out, *err;
    size_t out_len, err_len;
};
/* Called once per hub_job_run() with the result (valid during the call
 * only); possibly before hub_job_run() returns. */
typedef void (*hub_job_fn)(void *arg, const struct hub_job_result *r);
/* What a job asks: a command (/bin/sh -c on the agent), or a script
 * (interpreter set: its name on the agent, script the body); or, with
 * fetch, the result the agent kept of job id (docs/agent-protocol.md §6:
 * the answer may be the status "unknown"). */
struct hub_job_spec {
    const char *id;          /* the job's ID (the agent files its result so) */
    const char *command;     /* NULL for a script */
    const char *interpreter; /* NULL or "" for a command */
    const char *script;
    const char *cwd;  /* "" or NULL: the agent's choice */
    const char *sudo; /* "" or NULL: as the agent's user; else through
                       * sudo as this account (the agent's sudo_user) */
    int timeout;      /* seconds */
    bool fetch;
    /* a file push: its parameters (JSON object text) and bytes, which
     * hub_job_run takes (freed with free()) */
    const char *push;
    uint8_t *data;
    size_t data_len;
    /* its live output goes to the store (job id's rows) every
     * HUB_JOB_PROGRESS_MS while it prints (hub_jobw.c) */
    bool save_progress;
};
/* Asks agent_id to run spec (the agent decides whether it may) for at
 * most spec->timeout seconds. ERR_OK when fn will be (or was) called. */
int hub_job_run(struct hub *h, const char *agent_id,
                const struct hub_job_spec *spec, hub_job_fn fn, void *arg);
/* true if another node of the cluster holds agent_id now (read from the
 * store). */
bool hub_agent_elsewhere(struct hub *h, const char *agent_id);
/* j's end from r: status, exit code, signal, why (made one line), out
 * and err pointing at r's bytes (valid while r is). */
void hub_job_result_to(struct store_job *j, const struct hub_job_result *r);
/* On the loop: a job's result is in the store (or could not be put
 * there: logged); j is the result as recorded, output included (valid
 * during the call only). */
typedef void (*hub_recorded_fn)(void *arg, const struct store_job *j);
/*
 * Records the end of job j (store_job_finish: its status, exit code,
 * signal, why and output, copied) in the store, after the live output
 * saved before it. On a database server off the loop, in order
 * (hub_jobw.c); else at once. skip_batch (or NULL): that batch's queued
 * jobs end "skipped" with it. Once it is written (or failed), recorded
 * (or NULL) is called with arg, then with pickup the queued jobs are
 * picked up; possibly before this returns. Not called for a result whose
 * write a database that stopped answering still holds when the hub stops
 * (hub_stop).
 */
void hub_job_record(struct hub *h, const struct store_job *j,
                    const char *skip_batch, bool pickup,
                    hub_recorded_fn recorded, void *arg);
/* store_job_unrecoverable, the same way. */
void hub_job_record_unrecoverable(struct hub *h, const char *id,
                                  const char *why);
/* Starts the jobs the store holds as queued (the CLI's, a batch's next
 * ones within its concurrency limit). */
void hub_jobs_pickup(struct hub *h);
/* Agent id came online: ask it for the results of its jobs that ended
 * lost (it keeps them until the server acknowledges them). */
void hub_jobs_recover(struct hub *h, const char *agent_id);

/* --- watching a job's output as it arrives (pushed, not polled) ---
 *
 * A watcher follows one job's stdout and stderr on this node. It holds no
 * copy of the output: it keeps two offsets into the job's own buffers
 * (each capped at 4 MiB and the marker, shared by every watcher) and
 * pulls the next bytes when its consumer can send them, so a watcher that
 * never reads costs the server nothing but its offsets; once the job has
 * ended, its buffers live on only until its last watcher has taken them
 * or is freed.
 *
 * A job that does not run here (yet) leaves the watcher waiting; if it
 * starts here later the watcher takes its output from the first byte.
 * The consumer finds out about jobs that run on another node or ended
 * before it came from the store. */
struct hub_watch;
/* Output arrived, or the job ended; from the loop. fn may ask its
 * consumer to write, but must not free the watcher. */
typedef void (*hub_watch_fn)(void *arg);
/* NULL when out of memory. */
struct hub_watch *hub_watch_job(struct hub *h, const char *id, hub_watch_fn fn,
                                void *arg);
void hub_watch_free(struct hub_watch *w);
/* true once the job runs (or ran) on this node and the watcher follows
 * it; false while it waits. */
bool hub_watch_attached(const struct hub_watch *w);
/* The next bytes of stream 1 (stdout) or 2 (stderr) not yet taken, at
 * most max: their count (0: none now), *p valid until the loop runs. */
size_t hub_watch_peek(const struct hub_watch *w, int stream, const uint8_t **p,
                      size_t max);
void hub_watch_take(struct hub_watch *w, int stream, size_t n);
/* true when the job has ended and every byte was taken; r (without
 * output) says how it ended (valid while w lives). */
bool hub_watch_done(const struct hub_watch *w, struct hub_job_result *r);
/* true once the job has ended (bytes may remain to be taken). */
bool hub_watch_job_ended(const struct hub_watch *w);
/* Serves the CLI's `--follow` on DATA/run/watch.sock (hub_watchsock.c);
 * hub_stop() closes it. */
int hub_watch_listen(struct hub *h, const char *data_dir);
void hub_watch_unlisten(struct hub *h);
/* Watchers now (all of this hub's), for limits and tests. */
size_t hub_watch_count(const struct hub *h);

#endif
