/*
 * Reassembly of the RDP proxy's static virtual channel messages from
 * their chunks ([MS-RDPBCGR] 3.1.5.2.2), under one budget per session.
 *
 * The relay (rdp_child.c) keeps each message until its last chunk, so
 * that the other leg gets it whole and the channel filters see whole
 * PDUs. A message may be up to RDP_VC_MSG_MAX bytes (a clipboard image),
 * and one can be under way per channel and direction: without a bound
 * on the sum, a client and a target the user controls could make one
 * session hold six of them (~200 MiB) by never sending the last chunks.
 * So every buffer held is charged to the session's struct rdp_vc_budget
 * (its capacity, from the first chunk's announced total, not what has
 * arrived), and a message that would take the session over its maximum
 * is dropped whole, as one too long is. A buffer larger than
 * RDP_VC_KEEP is given back once its message is delivered or dropped.
 *
 * Plain data and malloc only; unit-tested (test_rdp_vc). The chunk
 * headers (total, flags) are untrusted.
 */
#ifndef PORTCULLIS_RDP_VC_H
#define PORTCULLIS_RDP_VC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest message on a channel. */
#define RDP_VC_MSG_MAX (32u * 1024 * 1024)
/* What one session may hold in reassembly and filter buffers: one
 * largest message with its filtered copy, and some room besides. */
#define RDP_VC_BUDGET (2 * (size_t)RDP_VC_MSG_MAX + 8u * 1024 * 1024)
/* A buffer up to this size is kept for the next message. */
#define RDP_VC_KEEP (64u * 1024)

/* Chunk flags, as CHANNEL_FLAG_FIRST and CHANNEL_FLAG_LAST. */
#define RDP_VC_FIRST 0x01
#define RDP_VC_LAST 0x02

/* The bytes a session holds (charged) and may hold (max). */
struct rdp_vc_budget {
    size_t held;
    size_t max;
};

/* A buffer charged to a budget: a message being reassembled (total 0:
 * none, or the rest of a dropped one is being skipped), or the filters'
 * output. Zeroed to start; owns msg. */
struct rdp_vc_buf {
    uint8_t *msg;
    size_t cap, len, total;
};

/* What one chunk did. */
enum rdp_vc_verdict {
    RDP_VC_MORE,        /* kept (or skipped): more chunks to come */
    RDP_VC_WHOLE,       /* the message is complete in msg[0..len) */
    RDP_VC_TOO_BIG,     /* its total is 0 or over RDP_VC_MSG_MAX: dropped */
    RDP_VC_OVER_BUDGET, /* it would take the session over max: dropped */
    RDP_VC_MISFIT,      /* its chunks do not add up: dropped */
};

/* One chunk of size bytes with flags and the message's announced total
 * (meaningful on the first chunk). ERR_OK with *v set; ERR_NOMEM when an
 * allocation failed (the message dropped; the session should end);
 * ERR_INVALID for bad arguments. After RDP_VC_WHOLE the caller uses the
 * message, then calls rdp_vc_done. */
int rdp_vc_chunk(struct rdp_vc_buf *a, struct rdp_vc_budget *b,
                 const uint8_t *data, size_t size, uint32_t flags, size_t total,
                 enum rdp_vc_verdict *v);

/* A delivered message is done with: its buffer given back if large. */
void rdp_vc_done(struct rdp_vc_buf *a, struct rdp_vc_budget *b);

/* At least n bytes in a->msg (for a filter's output), charged to b.
 * ERR_OK; ERR_TOO_LONG when that would take b over its max (nothing
 * changed); ERR_NOMEM. */
int rdp_vc_reserve(struct rdp_vc_buf *a, struct rdp_vc_budget *b, size_t n);

/* Frees a's buffer and gives its charge back; a zeroed after. */
void rdp_vc_free(struct rdp_vc_buf *a, struct rdp_vc_budget *b);

#endif
