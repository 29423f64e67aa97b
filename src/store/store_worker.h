/*
 * Store work off the main loop, on connections of its own.
 *
 * On PostgreSQL a store call waits for a server that may be slow, hold a
 * lock for 20 s or, stopped (SIGSTOP, a frozen VM), never answer. Work
 * that must not hold the loop meanwhile (the heartbeat, the disabled-user
 * check, the login path's store calls, the tunnels' report rows, the
 * audit log's appends: store_audit.c) is a job
 * given to a store_worker: its work runs on a libuv worker thread on one
 * of the worker's connections, then its done runs on the loop with the
 * worker's owner. Each connection is opened by the first job that needs
 * it (on the worker thread: a database that does not answer holds that
 * job, never the loop) and reopened by the driver when lost. At most one
 * job runs per connection; the rest wait in a FIFO, so with one
 * connection none overtakes an earlier one. Without a database server
 * (SQLite: a local file) or a loop, each job runs at once on the main
 * store, work then done, before store_worker_run returns.
 *
 * store_worker_stop drops the waiting jobs and waits a bounded time for
 * the running ones; then, since a statement a stopped server holds never
 * returns, it forgets them: when (if ever) such a job comes back its done
 * runs with owner NULL and only frees it, and the worker and its
 * connections go with the last one (loop_free leaves a job that never
 * comes back to the process's exit). So the owner may go at once.
 *
 * Ownership: the caller allocates each job (a struct that starts with
 * struct store_work) and its done frees it, exactly once. The worker owns
 * its connections; the main store is the caller's.
 */
#ifndef PORTCULLIS_STORE_WORKER_H
#define PORTCULLIS_STORE_WORKER_H

#include <stdbool.h>

#include "store/nodes.h"

struct loop;
struct store;
struct store_work;
struct store_worker;

/* On a worker thread (or inline): the job's store calls on st, and
 * nothing the loop's thread uses meanwhile. */
typedef void (*store_job_work_fn)(struct store_work *j, struct store *st);
/* On the loop: the outcome for owner, then free j. owner NULL: the job
 * was dropped unrun or forgotten at stop; only free it. */
typedef void (*store_job_done_fn)(void *owner, struct store_work *j);

struct store_work {
    store_job_work_fn work; /* set by the caller */
    store_job_done_fn done; /* set by the caller */
    /* optional, on the loop before a waiting job starts: false drops it
     * unrun (done(NULL, j)), e.g. its requester went meanwhile */
    bool (*wanted)(void *owner, const struct store_work *j);
    bool ran; /* work ran (false: no connection to the database) */
    /* the worker's own */
    struct store_work *next;
    struct store_worker *w;
    int slot;
    int finished;          /* set (atomically) when the work is over */
    const char *audit_key; /* main's audit key path (w's copy), or NULL */
    char node[NODE_ID_MAX + 1];
};

/* A worker for owner's jobs, named by what in its log line. location:
 * the main store's (store_open; NULL: inline, as off a server). conns: at most
 * this many jobs at once (at least 1). Jobs run with main's node
 * (store_node_self). NULL only when out of memory. */
struct store_worker *store_worker_new(struct loop *l, struct store *main,
                                      const char *location, unsigned conns,
                                      const char *what, void *owner);
/* true when jobs run on worker threads (the store is on a server). */
bool store_worker_async(const struct store_worker *w);
/* true while a job is queued or running (its done has not run yet). */
bool store_worker_busy(const struct store_worker *w);
/* Marks w as one of its main store's own writers (store_worker_writing):
 * an ordered write queue's worker (store_wqueue.c). */
void store_worker_set_writer(struct store_worker *w);
/*
 * true while a writer of main's own has a job queued or running: a
 * worker marked by store_worker_set_writer (the ordered write queues of
 * the report rows, store_session_async.c, and of the audit log,
 * store_audit.c). A read on
 * another connection that must see what the loop asked them to write
 * (the API's report after a session ended: http_offloop.c) waits until
 * this is false. Their queue never waits idle while it holds writes,
 * except in a retry's back-off after a failure (the database does not
 * take them: the same read on main would not wait either).
 */
bool store_worker_writing(const struct store *main);
/* Runs j (queued, or inline: see above; inline also when no worker
 * thread can be had). j->done runs once; do not touch j afterwards. */
void store_worker_run(struct store_worker *w, struct store_work *j);
/*
 * Stops w (see above): waits at most ms in all, logs what was left and
 * returns how many had not finished. A job that finished stays allocated
 * until its done runs (on the loop, later), so the owner may still read
 * its outcome right after this returns. NULL: nothing.
 */
unsigned store_worker_stop(struct store_worker *w, int ms);

#endif
