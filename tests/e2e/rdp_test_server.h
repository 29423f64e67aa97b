/*
 * What the e2e tests' RDP targets (rdp_clip_target.c, rdp_dev_target.c,
 * rdp_gfx_target.c) share: the lines they write to OUTFILE, a listener
 * on a loopback port serving one connection after another, a FreeRDP
 * peer with the test's certificate and TLS security only (any login
 * accepted), and its event loop.
 */
#ifndef PORTCULLIS_RDP_TEST_SERVER_H
#define PORTCULLIS_RDP_TEST_SERVER_H

#include <stdbool.h>
#include <stdio.h>

#include <freerdp/peer.h>

/* OUTFILE, opened for appending by rts_open_out. */
extern FILE *rts_out;

/* Opens path as rts_out; false (said on stderr) when it cannot. */
bool rts_open_out(const char *path);

/* A line of rts_out, flushed at once; safe from any thread (a channel
 * server's). */
void rts_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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

/* Listens on 127.0.0.1:port and serves one connection after another
 * with serve, each on a peer from rts_peer(cert, key) freed after it,
 * until killed; 1 when it cannot listen. */
int rts_serve_forever(const char *port, const char *cert, const char *key,
                      void (*serve)(freerdp_peer *peer));

#endif
