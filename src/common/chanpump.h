/*
 * chanpump: one SSH channel bridged to one local end (a connected socket,
 * a datagram socket, the browser terminal's WebSocket), both directions,
 * with bounded memory. The hub's streams to an agent
 * (src/hub/hub_stream.c), the agent's streams to their targets
 * (agent/stream.c) and the browser terminal (src/http/http_term.c) move
 * their bytes with it; the session child's channel-to-channel relay
 * (src/sshproxy/relay.c: three streams, packet-sized writes, recording)
 * keeps its own loop under the same contract.
 *
 * The contract (relay.c's backpressure, for a channel and a local end):
 *
 * 1. The channel's data callback consumes nothing. libssh processes
 *    incoming packets of every session inside any call that touches a
 *    socket, so data for one channel arrives while another is serviced;
 *    if a callback consumed it we would have to buffer it without bound.
 *    So the owner's data callback calls chanpump_note_data() with the
 *    length libssh holds (the callback sees the whole buffered length)
 *    and returns 0: libssh keeps the bytes and grows the window only as
 *    they are read, so a fast peer is held back by the SSH window.
 * 2. Channel -> local: the pump reads from the channel only what was
 *    noted, all of it in one read (at most CHANPUMP_TAKE_MAX), and only
 *    once what it read before has been written to the local end. All of
 *    it because libssh 0.10 grants a whole new window on a read that
 *    finds the window below half, whatever it still holds: reading a
 *    part at a time towards a slow local end let a fast peer send a
 *    window per part, without end (test_tunnel_drain.py,
 *    test_relay_slow_reader.py). So libssh holds at most a window and
 *    the pump what came before it: `chunk` bytes while the local end
 *    keeps up, up to a window (1,280,000 bytes) when it does not.
 * 3. Local -> channel: the pump reads the local end only into an empty
 *    buffer, only while the channel's remote window is open (no more
 *    than the window, for a byte stream), and nothing while the session
 *    still has output queued (SSH_WRITE_PENDING), so libssh's own output
 *    buffer stays bounded too. It writes no more than the window takes
 *    and keeps what a short write left (libssh may take less, even 0).
 *    libssh has no callback for a window that grows: an owner with bytes
 *    held (chanpump_up_held) pumps again on the session's next event.
 * 4. EOF order: the channel's EOF (or close) reaches the local end
 *    (shut_wr) only after every byte before it was written there; the
 *    local end's EOF reaches the channel (ssh_channel_send_eof) only
 *    after every byte read before it was written to the channel.
 * 5. Buffers exist only while bytes are in flight (a thousand idle
 *    streams cost no buffers), and are wiped when they may hold secrets
 *    (wipe).
 *
 * Datagram mode (dgram): the channel carries UDP datagrams framed by the
 * one codec common/frame.h (a peer's bytes are untrusted either way, and
 * that codec is fuzzed); each local read is one datagram, each local
 * write one datagram.
 *
 * The two ends are small operation tables so that the same pump runs
 * over libssh (chanpump_ssh_ops) in the programs and over a scripted
 * channel in tests/unit/test_chanpump.c.
 *
 * Ownership: struct chanpump is the owner's (embedded or allocated); it
 * owns only its buffers, freed by chanpump_free (the ends stay the
 * owner's).
 */
#ifndef PORTCULLIS_COMMON_CHANPUMP_H
#define PORTCULLIS_COMMON_CHANPUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libssh/libssh.h>

/* The most one read from the channel takes (chanpump.c,
 * chanpump_dn_take): above libssh's window of 1,280,000 bytes and one
 * packet. */
#define CHANPUMP_TAKE_MAX ((size_t)2 << 20)

/* Returns of the local end's operations besides byte counts. */
#define CHANPUMP_FAIL (-1)  /* the end failed (errno may say why) */
#define CHANPUMP_AGAIN (-2) /* nothing now: wait for the fd */
#define CHANPUMP_EOF (-3)   /* read: the local end's data has ended */

/* The channel end. */
struct chanpump_chan_ops {
    /* Reads up to len bytes of channel data without blocking: the count,
     * 0 when there is none, < 0 when the channel failed. */
    int (*read)(void *c, uint8_t *p, uint32_t len);
    /* Writes up to len bytes: the count taken (may be short, even 0),
     * < 0 when the channel failed. */
    int (*write)(void *c, const uint8_t *p, uint32_t len);
    /* The peer's window: how many bytes a write may take now. */
    uint32_t (*window)(void *c);
    /* True while the session has output not yet written to its socket. */
    bool (*write_pending)(void *c);
    void (*send_eof)(void *c);
};

/* The local end. */
struct chanpump_local_ops {
    /* Reads up to len bytes (datagram mode: one datagram, which may be
     * empty): the count, CHANPUMP_EOF, CHANPUMP_AGAIN or CHANPUMP_FAIL. */
    ssize_t (*read)(void *l, uint8_t *p, size_t len);
    /* Writes up to len bytes (datagram mode: the whole datagram, or drops
     * it and says len): the count taken (> 0 unless len is 0),
     * CHANPUMP_AGAIN or CHANPUMP_FAIL. */
    ssize_t (*write)(void *l, const uint8_t *p, size_t len);
    /* The channel's data has ended and all of it is written: half-close
     * (NULL: nothing to do). */
    void (*shut_wr)(void *l);
};

/* libssh as the channel end: c is a struct chanpump_ssh. */
struct chanpump_ssh {
    ssh_session s;
    ssh_channel ch;
};
extern const struct chanpump_chan_ops chanpump_ssh_ops;

struct frame_dec;

struct chanpump {
    const struct chanpump_chan_ops *cops;
    void *c;
    const struct chanpump_local_ops *lops;
    void *l;
    bool dgram;   /* framed datagrams (common/frame.h) */
    bool wipe;    /* buffers are wiped before they are freed (a terminal's
                     keystrokes); set after chanpump_init */
    size_t chunk; /* bytes held per direction at most (byte streams) */

    /* noted by the owner's channel callbacks */
    uint32_t avail; /* channel data libssh holds (stdout) */
    bool ch_eof, ch_closed;

    /* channel -> local */
    uint8_t *dn;
    size_t dn_cap; /* dn's size: chunk, or all libssh held (below) */
    size_t dn_len, dn_off;
    struct frame_dec *dec; /* datagrams: the frame being decoded */
    const uint8_t *dg;     /* a decoded datagram waiting to be written */
    size_t dg_len;
    bool dg_ready;
    bool shut_wr; /* the channel's end passed on to the local end */
    bool dn_gone; /* the local end reads no more (EPIPE): what the channel
                     sends is read and dropped, the other way goes on */

    /* local -> channel */
    uint8_t *up;
    size_t up_len, up_off;
    bool local_eof;
    bool eof_sent; /* the local end's EOF passed on to the channel */

    uint64_t nup, ndown; /* bytes local -> channel, channel -> local (for
                            datagrams: payload bytes) */
    const char *why;     /* after a failure: what failed, in words */
    int err;             /* and the errno of a failed end (or 0) */
};

/* Sets up p (zeroed first) for the given ends. chunk: the most bytes held
 * per direction for a byte stream (datagram mode holds one datagram). */
void chanpump_init(struct chanpump *p, const struct chanpump_chan_ops *cops,
                   void *c, const struct chanpump_local_ops *lops, void *l,
                   bool dgram, size_t chunk);
/* Frees the buffers (not the ends). p may be NULL. */
void chanpump_free(struct chanpump *p);

/* For the owner's channel callbacks: the length libssh now holds (the
 * data callback's len, stdout only), its EOF, its close. */
void chanpump_note_data(struct chanpump *p, uint32_t len);
void chanpump_note_eof(struct chanpump *p);
void chanpump_note_close(struct chanpump *p);

/* Moves what can move without blocking, both directions, and passes the
 * ends on (contract item 4). *moved (may be NULL) is set when anything
 * moved. Returns ERR_OK, or ERR_IO / ERR_PROTO / ERR_NOMEM with p->why
 * set: the pump is then spent and the owner ends the stream. */
int chanpump_run(struct chanpump *p, bool *moved);
/* Only local -> channel, and only the bytes: not the local end's EOF,
 * nothing of the channel's data. For an owner whose channel is open but
 * whose peer has not yet said the far end is ready (the hub's streams
 * send a client's first bytes before the agent's "ok", which the agent
 * keeps in its channel until its target is connected). A later
 * chanpump_run passes on the EOF as usual. */
int chanpump_run_up(struct chanpump *p, bool *moved);

/* The channel is gone (closed): writes what is still held for the local
 * end, and nothing else (the channel can take nothing more). ERR_OK with
 * *moved set if bytes went; a failed local end as chanpump_run. Done
 * when chanpump_dn_blocked() is false. Datagram mode: what is held is
 * dropped (a datagram's loss is UDP's). */
int chanpump_flush_dn(struct chanpump *p, bool *moved);

/* For the owner's watching of the local fd: */
/* bytes (or a datagram) wait for the local end to take them */
bool chanpump_dn_blocked(const struct chanpump *p);
/* the local end may be read now: not at its end, nothing held, the
 * window open and the session's output drained */
bool chanpump_up_ready(const struct chanpump *p);
/* the local end may be read once the session's output has drained:
 * chanpump_up_ready without the wait for the session's output (for an
 * owner whose pass over its streams follows every drain of it) */
bool chanpump_up_open(const struct chanpump *p);
/* bytes read from the local end wait for the channel's window */
bool chanpump_up_held(const struct chanpump *p);
/* the channel's data has ended and is all delivered (shut_wr done) */
bool chanpump_dn_done(const struct chanpump *p);
/* both ends passed on: nothing more will move */
bool chanpump_done(const struct chanpump *p);

#endif
