/*
 * The HTTP side of the main process: the REST API (/api/v1), /healthz and
 * /metrics, served by libwebsockets inside the main process's libuv loop
 * (SPEC §10), so HTTP requests and the SSH monitor share one thread.
 *
 * hub (may be NULL) serves the agents' WebSocket (GET /agent) on the
 * same listener, and the API's agent routes ask it who is online.
 *
 * tickets (may be NULL: no browser terminal) are the monitor's one-time
 * tickets (auth/webticket.h): the browser terminal's WebSocket
 * (/api/v1/terminal, http_term.c) logs in to our own SSH proxy with one.
 *
 * Ownership: http_start() borrows cfg, loop, store, vault, hub and tickets
 * (they must outlive the struct http) and returns a struct http freed by
 * http_stop(), which closes every connection and lets the loop finish
 * libwebsockets' teardown. http_stop(NULL) is a no-op.
 */
#ifndef PORTCULLIS_HTTP_H
#define PORTCULLIS_HTTP_H

#include "common/config.h"
#include "common/loop.h"
#include "common/vault.h"
#include "hub/hub.h"
#include "store/store.h"

struct http;
struct webtickets;

int http_start(struct http **out, const struct config *cfg, struct loop *loop,
               struct store *store, struct vault *vault, struct hub *hub,
               struct webtickets *tickets);
void http_stop(struct http *h);

/* Answers a question of `portcullis agent pair` (common/notify.h,
 * notify_ask_fn; arg is the struct http): makes a pairing code. The
 * answer may come later (a named credential's read off the loop on a
 * database server: http_pair.c); to is answered once either way. */
struct notify_reply;
void http_pair_ask(void *arg, const char *q, size_t qlen,
                   struct notify_reply *to);
/* Shares the SSH side's password pool and lockout table (both borrowed:
 * they must outlive h): password checks of POST /api/v1/login then run off
 * the loop under the one cap on concurrent checks, and failures count in
 * the one table, so SSH and API logins together get max_failures guesses
 * per window (docs/security.md, "Lockouts"). NULL keeps h's own. */
struct lockout;
struct password_pool;
/* The node's tunnels (hub/tunnel.h, or NULL): POST /tunnels answers
 * with the new tunnel's state once they have looked at it. Set after
 * http_start, before the loop runs; h forgets them at http_stop. */
struct tunnels;
void http_set_tunnels(struct http *h, struct tunnels *ts);
void http_share_auth(struct http *h, struct password_pool *p,
                     struct lockout *l);

#endif
