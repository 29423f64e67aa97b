/*
 * What the e2e tests' RDP targets (rdp_clip_target.c, rdp_dev_target.c)
 * share: a listener on a loopback port serving one connection after
 * another, a FreeRDP peer with the test's certificate and TLS security
 * only (any login accepted), and its event loop.
 */
#ifndef PORTCULLIS_RDP_TEST_SERVER_H
#define PORTCULLIS_RDP_TEST_SERVER_H

#include <freerdp/peer.h>

/* WinPR's TLS set up, then a socket listening on 127.0.0.1:port; -1
 * (said on stderr) when it cannot. */
int rts_listen(const char *port);

/* The next connection on ls (waits, retries failed accepts). */
int rts_accept(int ls);

/* A peer on fd with the certificate and key, TLS security only and a
 * PostConnect that accepts; NULL (fd closed) when it cannot be set up. */
freerdp_peer *rts_peer(int fd, const char *cert, const char *key);

/* Initialises the peer and serves its events, and those of the virtual
 * channel manager vcm (or NULL), until the connection ends; then
 * disconnects it. Set its callbacks first. */
void rts_run(freerdp_peer *peer, HANDLE vcm);

void rts_peer_free(freerdp_peer *peer);

#endif
