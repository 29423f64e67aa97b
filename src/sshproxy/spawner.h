/*
 * The spawner both proxies share (the SSH proxy's, sshproxy/server.c,
 * and the RDP proxy's, rdpproxy/rdp_server.c): a process of its own that
 * owns a listening socket, decides before fork whether a connection gets
 * a session child at all (the pre-authentication limits, preauth.h),
 * forks one child per admitted connection with a monitor socketpair,
 * reaps children and reports their exits; and the main process's end of
 * the link to it, which hands each new child to the monitor (monitor.h)
 * and tells the spawner when a child has logged in.
 *
 * What differs between the proxies is in struct spawner_ops: the names
 * in log lines, the listen backlog and accept batch, what a refused
 * connection reads, what the spawner process sets up before it accepts,
 * what a child runs, and which kind of child the monitor is told it is.
 *
 * The order of calls (daemon/daemon.c, through each proxy's own
 * functions):
 *
 *   spawner_new     main process, before anything is forked
 *   spawner_listen  the listening socket
 *   spawner_fork    forks the spawner process: before the store or the
 *                   vault key are opened, so no child inherits them
 *   spawner_attach  main process, once the monitor is up
 *   spawner_stop    ends the spawner (which ends every session)
 *   spawner_free
 *
 * A child's slot before authentication is given back exactly once on
 * every path: when the main process says it logged in (MP_SPAWN_AUTHED,
 * queued in order while the link is full) or when the spawner reaps it,
 * whichever comes first (preauth.h).
 *
 * If either process dies, the other notices the closed link: the spawner
 * then ends all its sessions and exits; the main process's loop is
 * stopped and spawner_result() says so.
 */
#ifndef PORTCULLIS_SPAWNER_H
#define PORTCULLIS_SPAWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "sshproxy/preauth.h"

struct loop;
struct monitor;
struct spawner;

struct spawner_ops {
    /* in log lines: "child" / "RDP child", "spawner" / "RDP spawner",
     * and a prefix for the listener's and the refusals' lines ("" or
     * "[rdp] ") */
    const char *child_noun;
    const char *spawner_noun;
    const char *log_prefix;
    int backlog;      /* listen(2) backlog */
    int accept_batch; /* connections accepted per wakeup of the spawner */
    /* the children are RDP children: the monitor marks them so
     * (mchild.rdp) and reports their logins through mon->on_rdp_authed
     * instead of mon->on_authed */
    bool rdp;
    /* In the spawner process, before it accepts anything; link is its
     * end of the link to the main process (a blocking read may wait for
     * a message the main process sends in its attach). Non-ERR_OK: the
     * spawner exits with 1. May be NULL. */
    int (*setup)(void *arg, int link);
    /* In the forked child, with every descriptor of the spawner closed
     * and signals as a fresh process has them (SIGPIPE ignored): serves
     * the connection on client_fd, talking to the monitor on monitor_fd;
     * its return value is the child's exit status (_exit). */
    int (*run_child)(void *arg, int client_fd, int monitor_fd,
                     const char *client_addr);
    /* The bytes a refused connection reads, written into out (at most
     * outlen), returning their length; the connection is then half-closed
     * and kept until the client closes it (at most 2 s, at most 128 at a
     * time) so that it reads them before a reset. NULL: a refused
     * connection is closed at once, unanswered. */
    size_t (*refusal)(enum preauth_verdict v, uint8_t *out, size_t outlen);
};

/* ERR_OK and *out (freed with spawner_free), or ERR_NOMEM. ops, arg and
 * cfg must outlive the spawner; arg is handed to ops' callbacks. */
int spawner_new(const struct spawner_ops *ops, void *arg,
                const struct config *cfg, struct spawner **out);
/* Opens the listening socket on addr (numeric) and port. ERR_OK, or
 * ERR_IO after a log line. */
int spawner_listen(struct spawner *sp, const char *addr, int port);
/* Forks the spawner process, which inherits sig_fd (a signalfd for
 * SIGCHLD, SIGTERM and SIGINT, the three blocked) and the listening
 * socket, and closes keep_out[0..nkeep_out) (descriptors of the main
 * process it must not hold; -1 entries are skipped). The main process
 * keeps neither the socket nor the spawner's end of the link. ERR_OK or
 * ERR_IO. */
int spawner_fork(struct spawner *sp, int sig_fd, const int *keep_out,
                 int nkeep_out);
/* Main process, once the monitor is up: watches the link in loop, hands
 * each new child to mon and hooks mon's login notice for this kind of
 * child. mon and loop must outlive the spawner's use of them
 * (spawner_stop). ERR_OK or ERR_NOMEM. */
int spawner_attach(struct spawner *sp, struct loop *loop, struct monitor *mon);
/* The main process's end of the link, -1 if none (a process forked later
 * must close it; the SSH proxy sends its host keys on it before
 * spawner_attach). */
int spawner_link_fd(const struct spawner *sp);
/* ERR_OK, or ERR_INTERNAL once the spawner has gone (the loop was stopped
 * then). */
int spawner_result(const struct spawner *sp);
/* Ends the spawner without waiting for it: unhooks the monitor and
 * closes the link; the spawner then ends every session (SIGTERM) and
 * exits, while the main process's loop goes on answering the sessions'
 * last requests (their report rows). No-op when drained already. */
void spawner_drain(struct spawner *sp);
/* Ends the spawner and waits for it: spawner_drain, then with terminate
 * also SIGTERM, for a spawner that may still be in its setup. No-op
 * before spawner_fork or when stopped already. */
void spawner_stop(struct spawner *sp, bool terminate);
/* Stops the spawner if spawner_stop was not called; NULL is a no-op. */
void spawner_free(struct spawner *sp);

#endif
