/*
 * Store-change notices from the CLI to a running server.
 *
 * The CLI writes the store directly; a running server must still act at
 * once on some changes (a deleted credential's agents drop, a new tunnel
 * starts listening). After such a change the CLI sends one datagram to
 * the server's unix socket DATA/run/notify.sock (made by the server, mode
 * 0600, in a 0700 directory). The datagram is a decimal mask of
 * enum hub_change ("1", "2", ...). It carries no authority: the server
 * only re-reads the store, so a forged notice can at most cause a
 * re-read. A lost notice (no server running) is not an error.
 */
#ifndef PORTCULLIS_NOTIFY_H
#define PORTCULLIS_NOTIFY_H

#include <stdbool.h>

#include "common/loop.h"

struct notify;

typedef void (*notify_fn)(void *arg, unsigned what);

/* Sends what to the server of data_dir. ERR_OK, also when no server
 * listens (nothing to tell). */
int notify_send(const char *data_dir, unsigned what);
/* As notify_send; *delivered says whether a server took the notice (so a
 * caller knows whether waiting for the server's answer makes sense). */
int notify_tell(const char *data_dir, unsigned what, bool *delivered);

/* Binds DATA/run/notify.sock (replacing a stale one) and calls fn for
 * every notice, in the loop. */
int notify_listen(struct notify **out, struct loop *loop, const char *data_dir,
                  notify_fn fn, void *arg);
void notify_close(struct notify *n);

#endif
