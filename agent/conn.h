/*
 * Agent connections: each one dials the server's GET /agent WebSocket
 * (libwebsockets client, optionally through an HTTP proxy, optionally over
 * TLS), runs a libssh client session over a socketpair whose other end is
 * bridged to the WebSocket's binary frames, pins the server's host key,
 * authenticates with the agent credential, announces itself and then
 * serves the server's direct-tcpip streams (stream.c). On any loss it
 * waits (exponential backoff with jitter) and starts again.
 *
 * Many connections share one struct agent_ctx: one libwebsockets context
 * in one libuv loop, no threads. The agent runs one connection; the load
 * tool (load.c) runs thousands with distinct IDs.
 *
 * Ownership: agent_ctx_new() borrows loop and conf (they outlive the
 * context). agent_conn_new() borrows conf and copies id. Free every
 * connection (agent_conn_free) before agent_ctx_free(), which runs the loop
 * until libwebsockets has closed its handles.
 */
#ifndef PORTCULLIS_AGENT_CONN_H
#define PORTCULLIS_AGENT_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "agent/agent_conf.h"

struct agent_ctx;
struct agent_conn;

struct agent_ctx_opts {
    size_t rx_buffer; /* WebSocket receive chunk per connection (bytes) */
    bool quiet;       /* log connection events at debug level only */
};

int agent_ctx_new(struct agent_ctx **out, uv_loop_t *loop,
                  const struct agent_conf *conf,
                  const struct agent_ctx_opts *opts);
void agent_ctx_free(struct agent_ctx *ctx);
/* Connections that are online (announced and accepted) / connecting. */
size_t agent_ctx_online(const struct agent_ctx *ctx);
size_t agent_ctx_count(const struct agent_ctx *ctx);

/* A connection for agent ID id (NULL: conf->id). Not started. */
int agent_conn_new(struct agent_conn **out, struct agent_ctx *ctx,
                   const struct agent_conf *conf, const char *id);
/* Dials now; from then on it reconnects by itself until freed. */
void agent_conn_start(struct agent_conn *c);
void agent_conn_free(struct agent_conn *c);
bool agent_conn_online(const struct agent_conn *c);

#endif
