/*
 * Store-change notices between the nodes of a cluster (issue 18).
 *
 * A change one node (or the CLI) makes that running servers must act on
 * at once (a deleted credential's agents drop, a tunnel appears, a queued
 * job is picked up) is published as a notice: a mask of enum hub_change
 * and the ID of the node that made it ("" for the CLI). On PostgreSQL it
 * is a NOTIFY on the channel "portcullis_change", which the database
 * delivers to every node LISTENing, on commit. On SQLite there is one
 * node and the CLI's datagram (common/notify.h) reaches it, so publishing
 * does nothing.
 *
 * A notice carries no authority: a node receiving one only re-reads the
 * store. A node that lost its LISTEN connection may have missed notices;
 * when it is listening again it is told "everything changed".
 *
 * The listener runs on the caller's loop on a connection of its own,
 * non-blocking throughout (connection, LISTEN, reads), so a slow or
 * unreachable database never holds the main loop; it reconnects by
 * itself. Whenever it sees the database answer (a notice, or LISTEN in
 * effect again) it nudges the store handle it was given: that handle's
 * connection, if it lost the server and waits out its reconnection
 * back-off, tries at its next call, so the store reads a notice asks for
 * do not fail for seconds after an outage. All functions run in the
 * loop's thread.
 */
#ifndef PORTCULLIS_STORE_NOTICES_H
#define PORTCULLIS_STORE_NOTICES_H

#include "common/loop.h"
#include "store/store.h"

/* The mask a listener reports after it (re)connected: everything. */
#define STORE_NOTICE_ALL 0xffffffffu

/* Publishes what, from the handle's node (nodes.h). ERR_OK on SQLite
 * (nothing to do). */
int store_notice_publish(struct store *st, unsigned what);

struct store_listener;
/* fn(arg, what, from): from is the publishing node's ID, "" for the CLI
 * and for STORE_NOTICE_ALL. */
typedef void (*store_notice_fn)(void *arg, unsigned what, const char *from);

/* Starts listening on the database at location (what store_open() takes)
 * on loop; st (or NULL) is the handle to nudge when the database answers
 * (see above), used in the loop's thread only. On SQLite *out is NULL and
 * ERR_OK: nothing to listen to. */
int store_listener_start(struct store_listener **out, struct loop *loop,
                         const char *location, struct store *st,
                         store_notice_fn fn, void *arg);
/* true while LISTEN is in effect (tests, logs). */
bool store_listener_ready(const struct store_listener *l);
void store_listener_stop(struct store_listener *l);

#endif
