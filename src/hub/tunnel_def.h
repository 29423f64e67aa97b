/*
 * Tunnel definitions: the rules a new tunnel must follow, shared by the
 * CLI (`portcullis tunnel add|acl`), the REST API (/api/v1/tunnels) and
 * the tunnel listeners (tunnel.c, for ACL matching), so the three cannot
 * disagree.
 *
 * An ACL is a comma-separated list of IPv4/IPv6 CIDRs; a bare address
 * means /32 or /128. The stored form is canonical: no spaces, each entry
 * "address/bits" with the host bits cleared ("10.1.2.3/8" is stored as
 * "10.0.0.0/8").
 *
 * Local ports come from [tunnel] port_min..port_max. A port is free when
 * no tunnel of the same protocol in the store uses it and a socket of that
 * protocol can be bound to it on [tunnel] listen right now (test-bound
 * and closed again).
 *
 * Functions that can refuse write one line for the user into why, and
 * return ERR_INVALID (bad input), ERR_TOO_LONG, ERR_NOT_FOUND (unknown
 * agent or peer), ERR_EXISTS (the port is taken), or ERR_STORE / ERR_IO.
 */
#ifndef PORTCULLIS_TUNNEL_DEF_H
#define PORTCULLIS_TUNNEL_DEF_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"
#include "store/agents.h"
#include "store/store.h"

#define TUNNEL_IDLE_MAX 525600 /* minutes: one year */

/* What a caller asks for; pointers may be NULL / 0 for "default". */
struct tunnel_def_req {
    const char *agent_id; /* through this agent, or */
    const char *peer;     /* through this peer node (TCP only) */
    const char *remote;   /* "HOST:PORT", "[v6]:PORT" */
    bool udp;
    int local_port;         /* 0: pick one */
    const char *acl;        /* NULL: default_ip's address only */
    const char *default_ip; /* the creator's address */
    int idle_minutes;       /* 0: never closes by itself */
    const char *created_by;
};

/* true if ip (an address, IPv4-mapped IPv6 taken as IPv4) lies in one of
 * the CIDRs of acl. */
bool tunnel_acl_allows(const char *acl, const char *ip);

/* Validates and canonicalises a CIDR list into out (TUNNEL_ACL_MAX + 1
 * bytes). Spaces around entries are allowed. */
int tunnel_acl_normalize(const char *in, char *out, size_t outlen, char *why,
                         size_t whylen);

/* The ACL of one address: "a.b.c.d/32" or "x::y/128" (an IPv4-mapped
 * IPv6 address becomes IPv4). ERR_INVALID if ip is not an address. */
int tunnel_acl_of_ip(const char *ip, char *out, size_t outlen);

/* Splits "HOST:PORT" (IPv6 as "[addr]:PORT") into host (without the
 * brackets; STORE_HOST_MAX + 1 bytes) and port 1..65535. */
int tunnel_remote_parse(const char *s, char *host, size_t hostlen, int *port,
                        char *why, size_t whylen);

/* Checks that port (in the configured range) is free for the protocol,
 * or with port 0 finds the lowest free one; the result goes to *out. */
int tunnel_port_pick(struct store *st, const struct config *cfg, bool udp,
                     int port, int *out, char *why, size_t whylen);

/* Everything `tunnel add` does before the notice: checks the request,
 * checks that the agent or the peer exists (it need not be online: the
 * listener reaches it at each connection), picks or checks
 * the port, and adds the tunnel to the store; t gets the stored
 * definition. */
int tunnel_def_add(struct store *st, const struct config *cfg,
                   const struct tunnel_def_req *req, struct store_tunnel *t,
                   char *why, size_t whylen);

/* The state to show: the one the server wrote, or "pending" before it
 * wrote any. */
const char *tunnel_def_state(const struct store_tunnel *t);

#endif
