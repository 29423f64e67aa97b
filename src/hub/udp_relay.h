/*
 * A UDP tunnel's flow between the nodes of a cluster: a node that does
 * not hold the agent carries each flow's datagrams to the holder over the
 * node hop (a TCP CONNECT with Portcullis-Kind: udp) framed as on an
 * agent's stream channel (common/frame.h: a 2-byte big-endian length and
 * that many bytes, decoded by the one fuzzed codec). udp_relay pumps
 * between a SOCK_SEQPACKET socket (one datagram a packet, as
 * hub_connect(HUB_UDP) takes) and that stream, on both nodes.
 *
 * Bounded: one datagram each way is held (the decoder's, and one framed
 * datagram to write); neither side is read while the other's output is
 * pending. An empty datagram is not sent (the flow drops them); a frame
 * of length 0 or above the largest UDP payload from the other node ends
 * the relay, as the end or an error of either socket does.
 */
#ifndef PORTCULLIS_UDP_RELAY_H
#define PORTCULLIS_UDP_RELAY_H

#include "common/loop.h"

struct udp_relay;
/* Called once when the relay ended by itself (either side closed, an
 * error, a bad frame); both sockets are closed by then. why is one line
 * for logs. */
typedef void (*udp_relay_end_fn)(void *arg, const char *why);

/* Takes both sockets (closing them on failure): dg a SOCK_SEQPACKET
 * socket, st a stream socket. NULL on failure (end not called); end may
 * be NULL. */
struct udp_relay *udp_relay_start(struct loop *l, int dg, int st,
                                  udp_relay_end_fn end, void *arg);
/* Closes both sockets, calling nothing; NULL is a no-op. */
void udp_relay_stop(struct udp_relay *r);

#endif
