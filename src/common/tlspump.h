/*
 * A byte pump between two stream sockets on the loop, either of which may
 * carry TLS (an OpenSSL SSL already past its handshake): the peer-node
 * CONNECT proxy relays a TLS client to a plain TCP destination with it,
 * and a main node's peer link relays a session's socketpair to the TLS
 * stream through a peer (route/peer_link.c).
 *
 * Contract (the same as relay.c's): a side is read only while the buffer
 * towards the other side has room (64 KiB), so a slow reader slows the
 * writer and memory stays bounded; after every event the pump moves what
 * it can in both directions until nothing moves (bytes OpenSSL decrypted
 * but the socket no longer signals are never stranded), then asks the
 * loop for exactly the events that would let more move. End of stream
 * travels: when side A has ended and everything it sent is written to B,
 * B's write half is shut (TLS: close_notify first). The pump is done when
 * both directions are; then done(arg, NULL), or done(arg, why) on an
 * error. done may free the pump; nothing else may be called on it after.
 *
 * Ownership: the pump owns both fds and SSLs from tlspump_new on, and
 * closes/frees them in tlspump_free (also when tlspump_new fails).
 */
#ifndef PORTCULLIS_TLSPUMP_H
#define PORTCULLIS_TLSPUMP_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct loop;
struct tlspump;

typedef void (*tlspump_done_fn)(void *arg, const char *why);

/* fd_b may be -1: then the pump only writes what tlspump_send queued for
 * side 0 and ends (an answer followed by a close). NULL on failure (out
 * of memory, the loop refused an fd): the fds and SSLs are closed. */
struct tlspump *tlspump_new(struct loop *l, int fd_a, SSL *ssl_a, int fd_b,
                            SSL *ssl_b, tlspump_done_fn done, void *arg);
/* Queues bytes to be written to side (0: A, 1: B) before anything the
 * other side sends; at most 64 KiB in all per side. ERR_OK or
 * ERR_TOO_LONG. Call before tlspump_start. */
int tlspump_send(struct tlspump *p, int side, const void *data, size_t len);
/* Starts pumping (registers the fds, moves what can move now). done may
 * be called from inside. */
void tlspump_start(struct tlspump *p);
/* Closes both sides now. NULL is fine. */
void tlspump_free(struct tlspump *p);
/* Bytes moved so far from A to B and from B to A. */
void tlspump_counts(const struct tlspump *p, uint64_t *a_to_b,
                    uint64_t *b_to_a);

#endif
