/*
 * The RDP proxy's listener side of `portcullis serve` ([rdp], off unless
 * enabled; docs/rdp.md). Built on the SSH proxy's spawner
 * (sshproxy/spawner.h): a spawner process of its own, forked before the
 * store or the vault key are opened, accepts connections and forks one
 * sandboxed session child per connection (rdp_child.h); the main
 * process's end of the link hands each child to the same monitor the SSH
 * children talk to (sshproxy/monitor.h), marked as an RDP child. The
 * composition root (daemon/daemon.c) calls these in order:
 *
 *   rdp_server_new     reads the TLS certificate and key (the children
 *                      present them; they cannot open files later)
 *   rdp_server_listen  the listening socket
 *   rdp_server_spawn   forks the spawner
 *   rdp_server_attach  in the main process, once the monitor is up
 *   rdp_server_drain   ends the spawner without waiting for it
 *   rdp_server_stop    ends the spawner (which ends every RDP session)
 *   rdp_server_free
 */
#ifndef PORTCULLIS_RDP_SERVER_H
#define PORTCULLIS_RDP_SERVER_H

#include <stdbool.h>

#include "common/config.h"

struct loop;
struct monitor;
struct rdp_server;

/* ERR_OK and *out, or an ERR_* code after one log line. */
int rdp_server_new(const struct config *cfg, struct rdp_server **out);
int rdp_server_listen(struct rdp_server *s);
/* keep[0..nkeep): descriptors of the main process the spawner must not
 * keep (the other spawner's link): closed in the spawner. */
int rdp_server_spawn(struct rdp_server *s, int sig_fd, const int *keep_out,
                     int nkeep_out);
int rdp_server_attach(struct rdp_server *s, struct loop *loop,
                      struct monitor *mon);
/* ERR_OK, or ERR_INTERNAL once the spawner has gone. */
int rdp_server_result(const struct rdp_server *s);
/* The main process's end of the link (-1 if none): a later spawner must
 * close it. */
int rdp_server_link_fd(const struct rdp_server *s);
/* Ends the spawner without waiting (spawner_drain): it ends every RDP
 * session while the loop still answers their last requests. */
void rdp_server_drain(struct rdp_server *s);
void rdp_server_stop(struct rdp_server *s);
void rdp_server_free(struct rdp_server *s);

#endif
