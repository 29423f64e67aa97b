/*
 * UDP datagrams over a byte stream, for a UDP tunnel's flow between the
 * nodes of a cluster: a node that does not hold the agent carries each
 * flow's datagrams to the holder over the node hop (a TCP CONNECT), each
 * as a 2-byte big-endian length and that many bytes. The length is
 * 1..UDP_FRAME_MAX: an empty datagram is not sent, and a frame of length
 * 0 or above the largest UDP payload is a bad frame, which ends the
 * stream.
 *
 * udp_frame_next is the decoder of those untrusted bytes (pure; fuzzed by
 * fuzz/fuzz_udp_frame.c). udp_relay pumps between a SOCK_SEQPACKET socket
 * (one datagram a packet, as hub_connect(HUB_UDP) takes) and a stream
 * socket, with bounded buffers: it reads neither side while the other's
 * output is pending.
 */
#ifndef PORTCULLIS_UDP_FRAME_H
#define PORTCULLIS_UDP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "common/loop.h"

#define UDP_FRAME_MAX 65507 /* the largest UDP payload */
#define UDP_FRAME_HDR 2

/* Looks at the front of buf (len bytes). Returns the frame's whole size
 * (UDP_FRAME_HDR + payload) with *payload and *plen set; 0 when more
 * bytes are needed; -1 for a bad frame (length 0 or > UDP_FRAME_MAX). */
long udp_frame_next(const uint8_t *buf, size_t len, const uint8_t **payload,
                    size_t *plen);
/* Writes the header of a plen-byte payload (1..UDP_FRAME_MAX) to hdr. */
void udp_frame_header(uint8_t hdr[UDP_FRAME_HDR], size_t plen);

struct udp_relay;
/* Called once when the relay ended (either side closed, an error, a bad
 * frame); both sockets are closed by then. why is one line for logs. */
typedef void (*udp_relay_end_fn)(void *arg, const char *why);

/* Takes both sockets (closing them on failure): dg a SOCK_SEQPACKET
 * socket, st a stream socket. NULL on failure (end not called). */
struct udp_relay *udp_relay_start(struct loop *l, int dg, int st,
                                  udp_relay_end_fn end, void *arg);
/* Closes both sockets, calling nothing; NULL is a no-op. */
void udp_relay_stop(struct udp_relay *r);

#endif
