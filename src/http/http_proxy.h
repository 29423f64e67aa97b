/*
 * The peer-node HTTP CONNECT proxy (SPEC section 7): on a node that runs
 * in an isolated segment, `[http_proxy] enabled = true` opens a listener
 * (port 3128, TLS with the node's certificate by default) through which a
 * main node reaches the segment's machines:
 *
 *   CONNECT 10.1.2.3:22 HTTP/1.1
 *   Host: 10.1.2.3:22
 *   Proxy-Authorization: Bearer <API token>
 *
 * is answered 200 and then relays bytes both ways, only when the token is
 * an API token (enabled, not expired, no path filter, usable from the
 * caller's address) of an enabled user holding the `service` site role,
 * and the destination (every address a name resolves to is checked, and
 * only allowed ones are tried) matches [http_proxy] allow. Anything else
 * is answered 400/405/407/403/502/504 with the reason as the body, and
 * every CONNECT, accepted or refused, is an audit event (proxy.connect,
 * proxy.refused). `OPTIONS * HTTP/1.1` with the same credential answers
 * 200 with the node's version (Server: portcullis/VERSION) and relays
 * nothing: what a main node's `peer check` asks (proxy.check).
 *
 * The nodes of a cluster use the same listener to reach each other's
 * agents: a node credential (auth/jwt.h jwt_node_token) instead of an API
 * token and a "Portcullis-Agent: ID" header; the stream then goes through
 * that agent (hub_connect), whose own allow-list decides, not allow.
 * Neither works without the other (403).
 *
 * It runs on the main process's loop: TLS handshakes, header reads, name
 * resolution (loop_resolve) and connects never block; a source address
 * holds at most max_connections_per_source connections, the whole
 * listener max_connections, and a client must finish its TLS handshake
 * and request within timeout_seconds.
 */
#ifndef PORTCULLIS_HTTP_PROXY_H
#define PORTCULLIS_HTTP_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"
#include "common/loop.h"
#include "store/store.h"

struct http_proxy;

/* Starts the listener if cfg enables it (*out stays NULL otherwise).
 * ERR_OK, or an error logged with its reason (bad allow list, no
 * certificate, port in use). */
struct hub;
/* hub: the agents this node holds, for other nodes' agent streams
 * (Portcullis-Agent with a node credential, auth/jwt.h); may be NULL. */
int http_proxy_start(struct http_proxy **out, const struct config *cfg,
                     struct loop *l, struct store *st, struct hub *hub);
/* Closes the listener and every connection. NULL is fine. */
void http_proxy_stop(struct http_proxy *px);

/* --- parts with their own tests (tests/unit, fuzz/fuzz_http_proxy) --- */

/* One allow-list entry: an address or CIDR and a port range. */
struct http_proxy_dest {
    char cidr[64];
    int port_lo, port_hi;
};

/*
 * [http_proxy] allow: entries separated by spaces or commas, each
 * ADDRESS[/BITS]:PORTS with IPv6 in brackets ([fd00::]/8:22), PORTS one
 * port, LO-HI, or * for all. ERR_OK with a heap array (*n may be 0: then
 * nothing is allowed), or ERR_CONFIG with why.
 */
int http_proxy_allow_parse(const char *text, struct http_proxy_dest **out,
                           size_t *n, char *why, size_t whylen);
bool http_proxy_allow_match(const struct http_proxy_dest *d, size_t n,
                            const char *ip, int port);

#define HTTP_PROXY_HEAD_MAX 8192
#define HTTP_PROXY_HOST_MAX 255
#define HTTP_PROXY_TOKEN_MAX 4096
#define HTTP_PROXY_AGENT_MAX 64

struct http_proxy_req {
    char host[HTTP_PROXY_HOST_MAX + 1]; /* without brackets */
    int port;
    bool check;    /* OPTIONS *: authenticate only (`peer check`) */
    bool has_auth; /* a Proxy-Authorization header */
    char token[HTTP_PROXY_TOKEN_MAX + 1]; /* its Bearer token; "" if none */
    /* Portcullis-Agent: the stream goes through this agent, held by this
     * node, to host:port (another node of the cluster asks, with a node
     * credential: auth/jwt.h jwt_node_token); "" if none */
    char agent[HTTP_PROXY_AGENT_MAX + 1];
    /* Portcullis-Kind: udp (with Portcullis-Agent): the stream carries a
     * UDP tunnel's flow as length-prefixed datagrams (hub/udp_relay.h) */
    bool udp;
};

/* The length of the request head in buf (through the blank line), or 0
 * while it is incomplete. */
size_t http_proxy_head_len(const char *buf, size_t len);
/*
 * Parses a complete request head. 0 with req filled, or the HTTP status to
 * answer (400 malformed, 405 not CONNECT, 505 not HTTP/1.x) with why.
 * The token is copied, never quoted in why.
 */
int http_proxy_parse_head(const char *buf, size_t len,
                          struct http_proxy_req *req, char *why, size_t whylen);

#endif
