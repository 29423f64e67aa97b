/*
 * The main process's event loop: file descriptors (it must carry many
 * thousands of idle agent connections) and one-shot timers, on libuv so
 * that libwebsockets can share it (loop_uv). Handlers run one at a time in
 * the loop's thread.
 *
 * Modeled on Redis's ae: register a handler per fd with the events it
 * wants; change the mask as the connection's state changes (e.g. add
 * LOOP_WRITE while output is pending, the nginx way of backpressure).
 *
 * Ownership: the loop does not own the fds; remove an fd with
 * loop_del_fd before closing it. A handler may add, change or delete any
 * fd or timer, including its own.
 */
#ifndef PORTCULLIS_LOOP_H
#define PORTCULLIS_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

enum loop_events {
    LOOP_READ = 1,  /* readable, or hung up / error */
    LOOP_WRITE = 2, /* writable */
};

/* events: what happened (LOOP_READ | LOOP_WRITE); a hang-up or error is
 * reported as LOOP_READ so the handler's read sees it. */
typedef void (*loop_fd_fn)(struct loop *l, int fd, int events, void *arg);
typedef void (*loop_timer_fn)(struct loop *l, void *arg);

struct loop *loop_new(void);
/* Closes every handle and waits (at most 3 s) for the jobs still on
 * worker threads (loop_work, loop_resolve) and runs their callbacks.
 * Returns how many jobs were left running (then the loop stays
 * allocated, since those threads refer to it, and the caller must end
 * the process with _exit(): libuv's exit handler would wait for those
 * threads for ever); 0 normally. */
unsigned loop_free(struct loop *l);

int loop_add_fd(struct loop *l, int fd, int events, loop_fd_fn fn, void *arg);
int loop_mod_fd(struct loop *l, int fd, int events);
void loop_del_fd(struct loop *l, int fd);
/* The events an fd is watched for; 0 if it is not registered (or paused
 * by loop_set_fd). */
int loop_fd_events(const struct loop *l, int fd);
/* Watches fd for events (registering it with fn and arg if it is not yet
 * registered); events 0 pauses it but keeps it registered, so that a
 * watch that comes and goes with every message costs one epoll_ctl each
 * way instead of a libuv handle torn down and set up again (four more
 * system calls). An fd paused this way still needs loop_del_fd before it
 * is closed. */
int loop_set_fd(struct loop *l, int fd, int events, loop_fd_fn fn, void *arg);

/*
 * Calls fn(l, arg) at the end of every turn of the loop, once the turn's
 * fd handlers have run (libuv's check phase), until loop_del_turn_end:
 * for work best done once per turn rather than once per handler, such as
 * sending in one piece what several handlers wrote (src/hub/hub.c). fn
 * must be cheap when it has nothing to do; it does not keep the loop
 * awake. At most LOOP_TURN_MAX hooks. Returns ERR_OK or ERR_IO.
 */
#define LOOP_TURN_MAX 4
typedef void (*loop_turn_fn)(struct loop *l, void *arg);
int loop_add_turn_end(struct loop *l, loop_turn_fn fn, void *arg);
void loop_del_turn_end(struct loop *l, loop_turn_fn fn, void *arg);

/* Calls fn(arg) once, after ms milliseconds. Returns a timer id (> 0), or
 * 0 when out of memory. */
uint64_t loop_add_timer(struct loop *l, int64_t ms, loop_timer_fn fn,
                        void *arg);
void loop_del_timer(struct loop *l, uint64_t id);

/*
 * Work off the loop's thread: work(arg) runs on one of libuv's worker
 * threads (UV_THREADPOOL_SIZE, default 4, shared with the resolver), then
 * after(l, arg) runs in the loop's thread. work must touch nothing the
 * loop's thread uses meanwhile. Neither can be cancelled once queued: the
 * caller's after() must find out by itself whether what it served still
 * exists (an ID, not a pointer). Returns ERR_OK or ERR_IO.
 */
/* Sizes libuv's worker pool for n long jobs plus 4 threads for the
 * resolver, unless UV_THREADPOOL_SIZE is set already; call before the
 * first loop_work or loop_resolve (the pool starts then). */
void loop_reserve_workers(unsigned n);
typedef void (*loop_work_fn)(void *arg);
typedef void (*loop_after_fn)(struct loop *l, void *arg);
int loop_work(struct loop *l, loop_work_fn work, loop_after_fn after,
              void *arg);

/*
 * Asynchronous name resolution (libuv's uv_getaddrinfo, on the worker
 * threads): fn(l, res, why, arg) runs in the loop's thread with the
 * addresses (freed by the loop when fn returns) or res NULL and why, a
 * static message. Same rule as loop_work: fn is always called, so arg must
 * not be a pointer to something that may go meanwhile. Returns ERR_OK or
 * ERR_NOMEM / ERR_IO (then fn is never called).
 */
struct addrinfo;
typedef void (*loop_resolved_fn)(struct loop *l, const struct addrinfo *res,
                                 const char *why, void *arg);
int loop_resolve(struct loop *l, const char *host, const char *service,
                 const struct addrinfo *hints, loop_resolved_fn fn, void *arg);

/* The underlying uv_loop_t *, for libraries that join the loop
 * (libwebsockets: LWS_SERVER_OPTION_LIBUV with foreign_loops). */
void *loop_uv(struct loop *l);

/* Runs until loop_stop(). Returns ERR_OK, or ERR_IO if epoll failed. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
