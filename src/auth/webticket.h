/*
 * One-time tickets of the browser terminal (docs/web.md, "Browser
 * terminal").
 *
 * The HTTP side (http_term.c) opens a browser's terminal as an SSH client
 * of our own proxy, in the main process, so the session takes the same
 * path as a native one (monitor, policy, relay, report, recording). It
 * logs in as "<user>#<asset ID>" with a ticket as the password: the
 * monitor (monitor_auth_password) redeems it instead of checking a
 * password, then goes on exactly as after a correct one (TOTP included).
 *
 * A ticket is WEBTICKET_PREFIX followed by 64 hex digits (256 random
 * bits). Only its SHA-256 is kept; it is compared in constant time, it
 * lives WEBTICKET_TTL_MS, it is removed by any attempt to redeem it
 * (right or wrong binding), and it is bound to the user ID, the asset ID
 * and the local address and port of the main process's own client
 * connection, so a ticket read out of memory cannot be used from another
 * connection. It carries the browser's address, which the monitor puts
 * into the session (report rows, the login throttle).
 *
 * Ownership: the monitor owns the struct webtickets (webtickets_free);
 * issued ticket strings belong to the caller, who wipes them.
 */
#ifndef PORTCULLIS_WEBTICKET_H
#define PORTCULLIS_WEBTICKET_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

#define WEBTICKET_PREFIX "pcwt1-"
#define WEBTICKET_STR_LEN (sizeof(WEBTICKET_PREFIX) - 1 + 64)
#define WEBTICKET_TTL_MS 30000
#define WEBTICKET_MAX 1024  /* outstanding tickets */
#define WEBTICKET_IP_MAX 47 /* an IPv6 address as text */

struct webtickets;

/* What a redeemed ticket grants. */
struct webticket_grant {
    char user_id[STORE_ID_MAX + 1];
    char asset_id[STORE_ID_MAX + 1];
    char browser_addr[64]; /* "ip:port", as mchild.addr */
    char browser_ip[WEBTICKET_IP_MAX + 1];
};

struct webtickets *webtickets_new(void);
void webtickets_free(struct webtickets *t);

/* Whether a password has the shape of a ticket (the monitor's switch). */
bool webticket_is_ticket(const char *password);

/* Issues a ticket for user_id on asset_id, for the client connection whose
 * local end is local_ip:local_port, on behalf of the browser at
 * browser_ip:browser_port. out gets WEBTICKET_STR_LEN characters and a
 * NUL. ERR_OK; ERR_INVALID for an empty or too long argument; ERR_DENIED
 * when WEBTICKET_MAX unexpired tickets are outstanding. */
int webticket_issue(struct webtickets *t, const char *user_id,
                    const char *asset_id, const char *local_ip,
                    uint16_t local_port, const char *browser_ip,
                    uint16_t browser_port, int64_t now_ms,
                    char out[WEBTICKET_STR_LEN + 1]);

/* Redeems ticket presented on the connection from peer_ip:peer_port (as
 * the proxy saw it). A matching ticket is removed whatever follows. ERR_OK
 * with *g filled when it matches, is unexpired and its binding holds;
 * ERR_AUTH otherwise (*g zeroed). */
int webticket_redeem(struct webtickets *t, const char *ticket,
                     const char *peer_ip, uint16_t peer_port, int64_t now_ms,
                     struct webticket_grant *g);

/* Forgets a ticket that was issued but will not be used (the connection
 * failed before logging in). Unknown tickets are ignored. */
void webticket_revoke(struct webtickets *t, const char *ticket);

#endif
