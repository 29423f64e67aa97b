/*
 * The SSH proxy's listener side of `portcullis serve`: the spawner (a
 * process of its own that accepts connections, applies the
 * pre-authentication limits and forks one sandboxed session child per
 * connection) and the main process's end of the link to it, which hands
 * each new child to the monitor (monitor.h); both are spawner.h's, shared
 * with the RDP proxy, and this is the SSH proxy's use of them. The
 * composition root (daemon/daemon.c) calls these in order:
 *
 *   server_new      banner, missing host keys, weak-algorithm warning,
 *                   the sandbox's preparation
 *   server_listen   the listening socket
 *   server_spawn    forks the spawner: before the store or the vault key
 *                   are opened, so no session child inherits them
 *   server_attach   in the main process, once the monitor is up: loads
 *                   the private host keys into the monitor, sends the
 *                   public ones to the spawner and watches the link
 *   server_stop     ends the spawner (which ends every session)
 *   server_free
 *
 * If the spawner dies, the link closes: the main process's loop is
 * stopped and server_result() says so. See docs/architecture.md.
 */
#ifndef PORTCULLIS_SERVER_H
#define PORTCULLIS_SERVER_H

#include <stdbool.h>

#include "common/config.h"

struct loop;
struct monitor;
struct server;

/* ERR_OK and *out (freed with server_free), or an ERR_* code after one
 * log line (banner file, sandbox). cfg must outlive the server. */
int server_new(const struct config *cfg, struct server **out);
/* Opens [ssh] listen/port. ERR_OK or ERR_IO (logged). */
int server_listen(struct server *s);
/* Forks the spawner, which inherits sig_fd (a signalfd for SIGCHLD,
 * SIGTERM and SIGINT, the three blocked) and the listening socket; the
 * main process keeps neither the socket nor the spawner's end of the
 * link. ERR_OK or ERR_IO. */
int server_spawn(struct server *s, int sig_fd);
/* Main process, after monitor_init(mon, cfg, loop): reads the host keys
 * into mon, hands the spawner the public keys, watches the link in loop
 * and tells the spawner of each child that logs in (mon->on_authed).
 * mon and loop must outlive the server's use of them (server_stop). */
int server_attach(struct server *s, struct loop *loop, struct monitor *mon);
/* The main process's end of the link to the spawner, -1 if none (another
 * process forked later must close it). */
int server_link_fd(const struct server *s);
/* ERR_OK, or ERR_INTERNAL once the spawner has gone (the loop was
 * stopped then). */
int server_result(const struct server *s);
/* Ends the spawner without waiting (spawner_drain): it ends every
 * session while the loop still answers their last requests. */
void server_drain(struct server *s);
/* Ends the spawner and waits for it: closes the link (the spawner then
 * ends every session and exits); with terminate also SIGTERM, for a
 * spawner that may still wait for its host keys. No-op before
 * server_spawn or when stopped already. */
void server_stop(struct server *s, bool terminate);
/* Stops the spawner if server_stop was not called; NULL is a no-op. */
void server_free(struct server *s);

#endif
