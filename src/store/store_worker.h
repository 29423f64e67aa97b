/*
 * Store work off the main loop, on connections of its own.
 *
 * On PostgreSQL a store call waits for a server that may be slow, hold a
 * lock for 20 s or, stopped (SIGSTOP, a frozen VM), never answer at all.
 * Work that must not hold the loop meanwhile (the heartbeat, the
 * disabled-user check, the login path's store calls, the tunnels' report
 * rows) is a job given to a store_worker: its work runs on a libuv worker
 * thread (loop_work) on one of the worker's connections, and its done runs
 * on the loop afterwards with the worker's owner, the thing that asked.
 *
 * A worker has conns connections to the main store's location, each
 * opened by the first job that needs it (on the worker thread, so a
 * database that does not answer holds that job, never the loop) and
 * reopened by the driver when lost. At most conns jobs run at once; the
 * rest wait in a FIFO and start in order, so a worker with one connection
 * runs its jobs one after the other and none overtakes an earlier one.
 *
 * Where the store is not on a server (SQLite: a local file), or without a
 * loop, the worker has no connections and every job runs at once on the
 * main store, work then done, before store_worker_run returns: as such
 * work always ran there.
 *
 * Stopping: store_worker_stop drops the waiting jobs and waits a bounded
 * time for the running ones (each usually ends within the store's
 * statement and lock timeouts). A statement a stopped server holds never
 * returns, so past the bound the job is forgotten: the owner is cleared,
 * and when (if ever) the job comes back its done runs with owner NULL and
 * only frees it; the worker and its connections go with the last such job
 * (loop_free leaves a job that never comes back to the process's exit).
 * So an owner can always be freed after store_worker_stop, whatever its
 * jobs do.
 *
 * Ownership: the caller allocates each job (a struct that starts with
 * struct store_job) and its done frees it, always exactly once. The
 * worker owns its connections; the main store is the caller's.
 */
#ifndef PORTCULLIS_STORE_WORKER_H
#define PORTCULLIS_STORE_WORKER_H

#include <stdbool.h>

#include "store/nodes.h"

struct loop;
struct store;
struct store_job;
struct store_worker;

/* On a worker thread (or inline on the loop): the job's store calls on
 * st, and nothing the loop's thread uses meanwhile. */
typedef void (*store_job_work_fn)(struct store_job *j, struct store *st);
/* On the loop: what the job's outcome means to owner, then free j. owner
 * is NULL when the job was dropped unrun or forgotten at stop: then only
 * free j (and whatever it holds). */
typedef void (*store_job_done_fn)(void *owner, struct store_job *j);

struct store_job {
    store_job_work_fn work; /* set by the caller */
    store_job_done_fn done; /* set by the caller */
    /* Optional, on the loop before a waiting job starts: false drops it
     * unrun (done(NULL, j)), e.g. its requester went meanwhile. */
    bool (*wanted)(void *owner, const struct store_job *j);
    bool ran; /* work ran (false: no connection to the database) */
    /* the worker's own */
    struct store_job *next;
    struct store_worker *w;
    int slot;
    int finished; /* set (atomically) when the work is over */
    char node[NODE_ID_MAX + 1];
};

/*
 * A worker for owner's jobs, named by what in its log lines ("the
 * heartbeat's statement"). location: the main store's (store_open), or
 * NULL or "" where the store is not on a server: then, as without a loop,
 * every job runs inline on main. conns: at most this many jobs at once
 * (at least 1). Each job runs with main's node (store_node_self) set on
 * its connection. NULL only when out of memory.
 */
struct store_worker *store_worker_new(struct loop *l, struct store *main,
                                      const char *location, unsigned conns,
                                      const char *what, void *owner);
/* true when jobs run on worker threads (the store is on a server). */
bool store_worker_async(const struct store_worker *w);
/* Jobs started and not yet done, plus those waiting. */
unsigned store_worker_pending(const struct store_worker *w);
/*
 * Runs j: queued for a worker thread, or inline (see above; also when no
 * worker thread can be had). Either way j->done runs once with the
 * outcome; the caller must not touch j afterwards.
 */
void store_worker_run(struct store_worker *w, struct store_job *j);
/* Waits at most ms for the jobs now on worker threads to finish their
 * work (their done has not run yet): true when all did. */
bool store_worker_wait(struct store_worker *w, int ms);
/*
 * Stops w: waiting jobs are dropped (done(NULL, j)); those running are
 * waited for at most ms in all, then forgotten (see above), what was
 * left logged. Returns how many had not finished. w must not be used
 * afterwards; the owner may go. A job that finished stays allocated until
 * its done runs (on the loop, later), so the owner may still read its
 * outcome right after this returns. NULL: nothing.
 */
unsigned store_worker_stop(struct store_worker *w, int ms);

#endif
