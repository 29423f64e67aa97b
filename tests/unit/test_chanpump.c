/*
 * Unit tests for common/chanpump.c, the channel <-> local end byte pump
 * of the hub's and the agent's streams. The pump runs over a scripted
 * channel end (a window the test opens and shuts, data the peer "sent",
 * a session output that is or is not drained) and a scripted local end
 * (bytes to read, how much each write takes), and every call on either
 * end is logged in order, so the tests can assert on what each side saw:
 * the bytes, EOF after the last byte, nothing past the window, nothing
 * read while the session's output is queued, nothing held past a chunk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/chanpump.h"
#include "common/err.h"
#include "common/frame.h"

#define LOGMAX 4096

/* --- the scripted channel end --- */

struct tchan {
    uint8_t in[200000]; /* what the peer sent, not yet read */
    size_t in_len, in_off;
    uint8_t out[200000]; /* what the pump wrote to the channel */
    size_t out_len;
    uint32_t window;
    bool pending; /* the session's output is not drained */
    bool write_fails;
    int eofs;         /* send_eof calls */
    size_t max_read;  /* the largest read asked for */
    int partial;      /* reads that left bytes in the channel (each would
                         regrow libssh's window: chanpump_dn_take) */
    char log[LOGMAX]; /* "W" channel write, "E" channel EOF, */
    size_t log_len;   /* "w" local write, "S" local shut_wr */
};

static void tlog(struct tchan *c, char what)
{
    if (c->log_len + 1 < LOGMAX) {
        c->log[c->log_len++] = what;
        c->log[c->log_len] = '\0';
    }
}

static int tc_read(void *v, uint8_t *p, uint32_t len)
{
    struct tchan *c = v;
    size_t n = c->in_len - c->in_off;

    if (len > c->max_read) {
        c->max_read = len;
    }
    if (n > len) {
        n = len;
    }
    memcpy(p, c->in + c->in_off, n);
    c->in_off += n;
    if (c->in_off < c->in_len) {
        c->partial++;
    }
    return (int)n;
}

static int tc_write(void *v, const uint8_t *p, uint32_t len)
{
    struct tchan *c = v;

    if (c->write_fails) {
        return -1;
    }
    /* a write past the window is a protocol violation */
    assert_true(len <= c->window);
    assert_int_equal(c->eofs, 0); /* nothing after EOF */
    memcpy(c->out + c->out_len, p, len);
    c->out_len += len;
    c->window -= len;
    tlog(c, 'W');
    return (int)len;
}

static uint32_t tc_window(void *v)
{
    return ((struct tchan *)v)->window;
}

static bool tc_pending(void *v)
{
    return ((struct tchan *)v)->pending;
}

static void tc_eof(void *v)
{
    struct tchan *c = v;

    c->eofs++;
    tlog(c, 'E');
}

static const struct chanpump_chan_ops tc_ops = {
    .read = tc_read,
    .write = tc_write,
    .window = tc_window,
    .write_pending = tc_pending,
    .send_eof = tc_eof,
};

/* The peer sends n bytes: libssh holds them and the data callback says
 * how much it holds. */
static void peer_sends(struct tchan *c, struct chanpump *p, const void *b,
                       size_t n)
{
    memcpy(c->in + c->in_len, b, n);
    c->in_len += n;
    chanpump_note_data(p, (uint32_t)(c->in_len - c->in_off));
}

/* --- the scripted local end --- */

struct tlocal {
    struct tchan *c;     /* for the shared log */
    uint8_t src[200000]; /* to be read */
    size_t src_len, src_off;
    bool src_eof; /* after src: EOF */
    size_t dgram_sizes[16], ndgram_src, dgram_next;
    uint8_t dst[200000]; /* written */
    size_t dst_len;
    size_t dgram_out[16], ndgram_out;
    size_t take; /* the most one write takes; 0: AGAIN */
    int budget;  /* writes before AGAIN (-1: any number) */
    bool write_fails;
    int fail_errno; /* errno of a failing write (0: EIO) */
    int reads, shuts;
};

static ssize_t tl_read(void *v, uint8_t *p, size_t len)
{
    struct tlocal *l = v;
    size_t n;

    l->reads++;
    if (l->ndgram_src > 0) {
        if (l->dgram_next == l->ndgram_src) {
            return CHANPUMP_AGAIN;
        }
        n = l->dgram_sizes[l->dgram_next++];
        assert_true(n <= len);
        memcpy(p, l->src + l->src_off, n);
        l->src_off += n;
        return (ssize_t)n;
    }
    n = l->src_len - l->src_off;
    if (n == 0) {
        return l->src_eof ? CHANPUMP_EOF : CHANPUMP_AGAIN;
    }
    if (n > len) {
        n = len;
    }
    memcpy(p, l->src + l->src_off, n);
    l->src_off += n;
    return (ssize_t)n;
}

static ssize_t tl_write(void *v, const uint8_t *p, size_t len)
{
    struct tlocal *l = v;
    size_t n = len;

    if (l->write_fails) {
        errno = l->fail_errno != 0 ? l->fail_errno : EIO;
        return CHANPUMP_FAIL;
    }
    assert_int_equal(l->shuts, 0); /* nothing after the half-close */
    if (l->take == 0 || l->budget == 0) {
        return CHANPUMP_AGAIN;
    }
    if (l->budget > 0) {
        l->budget--;
    }
    if (n > l->take) {
        n = l->take;
    }
    memcpy(l->dst + l->dst_len, p, n);
    l->dst_len += n;
    if (l->ndgram_out < 16) {
        l->dgram_out[l->ndgram_out++] = n;
    }
    tlog(l->c, 'w');
    return (ssize_t)n;
}

static void tl_shut(void *v)
{
    struct tlocal *l = v;

    l->shuts++;
    tlog(l->c, 'S');
}

static const struct chanpump_local_ops tl_ops = {
    .read = tl_read,
    .write = tl_write,
    .shut_wr = tl_shut,
};

struct fx {
    struct tchan c;
    struct tlocal l;
    struct chanpump p;
};

static struct fx *fx_new(bool dgram, size_t chunk)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->l.c = &f->c;
    f->l.take = (size_t)-1;
    f->l.budget = -1;
    chanpump_init(&f->p, &tc_ops, &f->c, &tl_ops, &f->l, dgram, chunk);
    return f;
}

static void fx_free(struct fx *f)
{
    chanpump_free(&f->p);
    free(f);
}

static bool run(struct fx *f)
{
    bool moved = false;

    assert_int_equal(chanpump_run(&f->p, &moved), ERR_OK);
    return moved;
}

/* --- channel -> local --- */

/* Partial writes: the local end takes 3 bytes at a time, sometimes none;
 * every byte arrives once, in order, and the channel's EOF becomes the
 * half-close only after the last one. */
static void test_partial_writes_then_eof(void **state)
{
    struct fx *f = fx_new(false, 8);
    uint8_t msg[100];
    int rounds = 0;

    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] = (uint8_t)(i * 7);
    }
    peer_sends(&f->c, &f->p, msg, sizeof(msg));
    chanpump_note_eof(&f->p);
    while (f->l.dst_len < sizeof(msg) && rounds++ < 1000) {
        /* 3 bytes a write, two writes a round, none every third */
        f->l.take = rounds % 3 == 0 ? 0 : 3;
        f->l.budget = 2;
        (void)run(f);
        /* everything the channel held, in one read */
        assert_int_equal(f->c.partial, 0);
        if (f->l.dst_len < sizeof(msg)) {
            assert_int_equal(f->l.shuts, 0);
            assert_true(chanpump_dn_blocked(&f->p));
        }
    }
    assert_true(rounds > 20);
    f->l.budget = -1;
    (void)run(f);
    assert_int_equal(f->l.dst_len, sizeof(msg));
    assert_memory_equal(f->l.dst, msg, sizeof(msg));
    assert_int_equal(f->c.max_read, sizeof(msg));
    assert_int_equal(f->l.shuts, 1);
    assert_int_equal(f->c.log[f->c.log_len - 1], 'S');
    assert_true(chanpump_dn_done(&f->p));
    assert_int_equal(f->p.ndown, sizeof(msg));
    /* the half-close is passed on once */
    (void)run(f);
    assert_int_equal(f->l.shuts, 1);
    fx_free(f);
}

/* Only what libssh was noted to hold is read: the pump never asks the
 * channel for more (which would poll the socket and buffer without
 * bound). */
static void test_reads_only_noted(void **state)
{
    struct fx *f = fx_new(false, 1024);

    peer_sends(&f->c, &f->p, "abcdef", 6);
    chanpump_note_data(&f->p, 4); /* the callback said 4 */
    (void)run(f);
    assert_int_equal(f->l.dst_len, 4);
    assert_true(f->c.max_read <= 4);
    chanpump_note_data(&f->p, 2);
    (void)run(f);
    assert_int_equal(f->l.dst_len, 6);
    assert_memory_equal(f->l.dst, "abcdef", 6);
    /* nothing held, so no buffer either */
    assert_null(f->p.dn);
    assert_false(chanpump_dn_blocked(&f->p));
    fx_free(f);
}

/* A local end that takes nothing holds the channel back: what the channel
 * held is read whole (a part would let libssh grant a new window with
 * the rest still held), and then nothing more while the pump holds it,
 * so libssh's window stays shut. */
static void test_local_full_holds_channel(void **state)
{
    struct fx *f = fx_new(false, 16);
    uint8_t big[1000];

    memset(big, 'x', sizeof(big));
    peer_sends(&f->c, &f->p, big, sizeof(big));
    f->l.take = 0;
    for (int i = 0; i < 5; i++) {
        (void)run(f);
    }
    assert_int_equal(f->c.in_off, sizeof(big));
    assert_int_equal(f->c.partial, 0);
    assert_true(chanpump_dn_blocked(&f->p));
    /* more arrives: left with libssh while the pump holds bytes */
    peer_sends(&f->c, &f->p, big, 500);
    for (int i = 0; i < 5; i++) {
        (void)run(f);
    }
    assert_int_equal(f->c.in_off, sizeof(big));
    f->l.take = (size_t)-1;
    for (int i = 0; i < 200 && f->l.dst_len < sizeof(big) + 500; i++) {
        (void)run(f);
    }
    assert_int_equal(f->l.dst_len, sizeof(big) + 500);
    fx_free(f);
}

/* The channel closed with bytes still held: they are delivered, then
 * the half-close, then the pump is done (no EOF is sent on a closed
 * channel). */
static void test_close_delivers_first(void **state)
{
    struct fx *f = fx_new(false, 4);

    peer_sends(&f->c, &f->p, "0123456789", 10);
    chanpump_note_close(&f->p);
    f->l.take = 0;
    (void)run(f);
    assert_int_equal(f->l.shuts, 0);
    assert_false(chanpump_done(&f->p));
    f->l.take = (size_t)-1;
    while (run(f)) {
    }
    assert_int_equal(f->l.dst_len, 10);
    assert_string_equal(f->c.log, "wS"); /* read whole, written whole */
    assert_true(chanpump_done(&f->p));
    assert_int_equal(f->c.eofs, 0);
    fx_free(f);
}

static void test_local_write_failure(void **state)
{
    struct fx *f = fx_new(false, 64);

    peer_sends(&f->c, &f->p, "data", 4);
    f->l.write_fails = true;
    assert_int_equal(chanpump_run(&f->p, NULL), ERR_IO);
    assert_string_equal(f->p.why, "write to the local side failed");
    /* spent: it moves nothing more */
    f->l.write_fails = false;
    assert_int_not_equal(chanpump_run(&f->p, NULL), ERR_OK);
    assert_int_equal(f->l.dst_len, 0);
    fx_free(f);
}

/* A local end that stops reading (EPIPE: a job that refused its input,
 * a target that shut its reading half) but still writes: what the
 * channel sends is dropped, and what the local end writes still goes to
 * the channel, then its EOF. A failure here lost a refused file push's
 * result (test_jobs.py, "lost"). */
static void test_local_stops_reading(void **state)
{
    struct fx *f = fx_new(false, 64);

    f->c.window = 1000;
    peer_sends(&f->c, &f->p, "input", 5);
    f->l.write_fails = true;
    f->l.fail_errno = EPIPE;
    memcpy(f->l.src, "result", 6);
    f->l.src_len = 6;
    f->l.src_eof = true;
    assert_int_equal(chanpump_run(&f->p, NULL), ERR_OK);
    peer_sends(&f->c, &f->p, "more", 4);
    chanpump_note_eof(&f->p);
    while (run(f)) {
    }
    assert_null(f->p.why);
    assert_int_equal(f->l.dst_len, 0);
    assert_int_equal(f->c.out_len, 6);
    assert_memory_equal(f->c.out, "result", 6);
    assert_int_equal(f->c.eofs, 1);
    assert_true(chanpump_done(&f->p));
    fx_free(f);
}

/* --- local -> channel --- */

/* Window exhaustion: nothing past the window is written, and the local
 * end is not read while bytes wait for it; as the window opens the rest
 * follows, and the local EOF goes out after the last byte. */
static void test_window_exhaustion_and_eof_order(void **state)
{
    struct fx *f = fx_new(false, 64);
    int reads;

    memcpy(f->l.src, "hello, world; the window is small", 33);
    f->l.src_len = 33;
    f->l.src_eof = true;
    f->c.window = 5;
    (void)run(f);
    /* a byte stream is read no further than the window: nothing held */
    assert_int_equal(f->c.out_len, 5);
    assert_int_equal(f->l.src_off, 5);
    assert_false(chanpump_up_held(&f->p));
    /* the window is shut: the local end is not to be watched */
    assert_false(chanpump_up_ready(&f->p));
    assert_false(chanpump_up_open(&f->p));
    reads = f->l.reads;
    for (int i = 0; i < 3; i++) {
        assert_false(run(f));
    }
    assert_int_equal(f->l.reads, reads);
    assert_int_equal(f->c.eofs, 0);
    /* the window opens a little at a time */
    while (f->c.out_len < 33) {
        f->c.window += 7;
        (void)run(f);
    }
    f->c.window += 100;
    (void)run(f);
    assert_memory_equal(f->c.out, "hello, world; the window is small", 33);
    assert_int_equal(f->c.eofs, 1);
    assert_int_equal(f->c.log[f->c.log_len - 1], 'E');
    assert_int_equal(f->p.nup, 33);
    assert_null(f->p.up);
    fx_free(f);
}

/* A read takes no more than the window allows: nothing is held that the
 * channel could not take. */
static void test_read_bounded_by_window(void **state)
{
    struct fx *f = fx_new(false, 4096);

    memset(f->l.src, 'y', 3000);
    f->l.src_len = 3000;
    f->c.window = 10;
    (void)run(f);
    assert_int_equal(f->l.src_off, 10);
    assert_int_equal(f->c.out_len, 10);
    assert_null(f->p.up); /* nothing held */
    fx_free(f);
}

/* While the session's output is queued, the local end is not read (and
 * held bytes wait): libssh's output buffer stays bounded. */
static void test_write_pending_blocks_reading(void **state)
{
    struct fx *f = fx_new(false, 64);

    memcpy(f->l.src, "queued", 6);
    f->l.src_len = 6;
    f->l.src_eof = true;
    f->c.window = 1000;
    f->c.pending = true;
    assert_false(chanpump_up_ready(&f->p));
    /* open, though: the hub watches the fd and reads after the drain */
    assert_true(chanpump_up_open(&f->p));
    (void)run(f);
    assert_int_equal(f->l.reads, 0);
    assert_int_equal(f->c.out_len, 0);
    assert_int_equal(f->c.eofs, 0);
    f->c.pending = false;
    assert_true(chanpump_up_ready(&f->p));
    (void)run(f);
    assert_int_equal(f->c.out_len, 6);
    assert_string_equal(f->c.log, "WE");
    fx_free(f);
}

static void test_channel_write_failure(void **state)
{
    struct fx *f = fx_new(false, 64);

    memcpy(f->l.src, "x", 1);
    f->l.src_len = 1;
    f->c.window = 100;
    f->c.write_fails = true;
    assert_int_equal(chanpump_run(&f->p, NULL), ERR_IO);
    assert_string_equal(f->p.why, "channel write failed");
    fx_free(f);
}

/* Both directions end: done only once both ends were passed on. */
static void test_done_both_ways(void **state)
{
    struct fx *f = fx_new(false, 64);

    f->c.window = 100;
    f->l.src_eof = true;
    (void)run(f);
    assert_int_equal(f->c.eofs, 1);
    assert_false(chanpump_done(&f->p));
    peer_sends(&f->c, &f->p, "bye", 3);
    chanpump_note_eof(&f->p);
    (void)run(f);
    assert_true(chanpump_done(&f->p));
    assert_string_equal(f->c.log, "EwS");
    fx_free(f);
}

/* chanpump_run_up (the hub's optimistic open): the local end's bytes go
 * to the channel, but neither its EOF nor anything of the channel's; a
 * later chanpump_run passes on both. */
static void test_run_up_only(void **state)
{
    struct fx *f = fx_new(false, 64);
    bool moved = false;

    f->c.window = 100;
    memcpy(f->l.src, "hello", 5);
    f->l.src_len = 5;
    f->l.src_eof = true;
    peer_sends(&f->c, &f->p, "early", 5);
    chanpump_note_eof(&f->p);
    assert_int_equal(chanpump_run_up(&f->p, &moved), ERR_OK);
    assert_true(moved);
    assert_int_equal(f->c.out_len, 5);
    assert_memory_equal(f->c.out, "hello", 5);
    assert_int_equal(f->c.eofs, 0);    /* the EOF waits */
    assert_int_equal(f->l.dst_len, 0); /* nothing comes back */
    assert_int_equal(f->l.shuts, 0);
    assert_int_equal(f->p.nup, 5);
    assert_null(f->p.up); /* nothing held, no buffer */
    /* again: nothing more moves */
    assert_int_equal(chanpump_run_up(&f->p, &moved), ERR_OK);
    assert_int_equal(f->c.eofs, 0);
    (void)run(f);
    assert_int_equal(f->c.eofs, 1);
    assert_int_equal(f->l.dst_len, 5);
    assert_memory_equal(f->l.dst, "early", 5);
    assert_int_equal(f->l.shuts, 1);
    assert_true(chanpump_done(&f->p));
    fx_free(f);
}

/* --- datagrams --- */

/* Frames split across slices arrive as whole datagrams, one write each;
 * a local end that is full holds the datagram and the channel back. */
static void test_dgram_down(void **state)
{
    struct fx *f = fx_new(true, 3); /* tiny slices: frames split */
    uint8_t wire[64];
    size_t n = 0;

    /* "hi", "", "world" */
    wire[n++] = 0;
    wire[n++] = 2;
    memcpy(wire + n, "hi", 2);
    n += 2;
    wire[n++] = 0;
    wire[n++] = 0;
    wire[n++] = 0;
    wire[n++] = 5;
    memcpy(wire + n, "world", 5);
    n += 5;
    peer_sends(&f->c, &f->p, wire, n);
    f->l.take = 0;
    (void)run(f);
    assert_true(chanpump_dn_blocked(&f->p)); /* "hi" waits */
    /* held: what the channel held, read whole; nothing more is read
     * while "hi" waits */
    assert_int_equal(f->c.in_off, n);
    assert_int_equal(f->c.partial, 0);
    peer_sends(&f->c, &f->p, wire, 4);
    for (int i = 0; i < 3; i++) {
        assert_false(run(f));
    }
    assert_int_equal(f->c.in_off, n);
    f->l.take = (size_t)-1;
    chanpump_note_eof(&f->p);
    while (run(f)) {
    }
    /* the three, then the "hi" that waited with libssh */
    assert_int_equal(f->l.ndgram_out, 4);
    assert_int_equal(f->l.dgram_out[0], 2);
    assert_int_equal(f->l.dgram_out[1], 0);
    assert_int_equal(f->l.dgram_out[2], 5);
    assert_int_equal(f->l.dgram_out[3], 2);
    assert_memory_equal(f->l.dst, "hiworldhi", 9);
    assert_int_equal(f->l.shuts, 1);
    assert_int_equal(f->p.ndown, 9);
    assert_null(f->p.dec);
    fx_free(f);
}

static void test_dgram_too_long(void **state)
{
    struct fx *f = fx_new(true, 64);
    uint8_t wire[4] = {0xff, 0xe4, 'a', 'b'}; /* 65,508 */

    peer_sends(&f->c, &f->p, wire, sizeof(wire));
    assert_int_equal(chanpump_run(&f->p, NULL), ERR_PROTO);
    assert_string_equal(f->p.why, "datagram length above 65507");
    assert_int_equal(f->l.dst_len, 0);
    fx_free(f);
}

/* Each local datagram goes on the channel framed by the shared codec,
 * an empty one included; a frame larger than the window is written as
 * the window opens. */
static void test_dgram_up(void **state)
{
    struct fx *f = fx_new(true, 64);
    uint8_t hdr[FRAME_HDR];

    memcpy(f->l.src, "abcxyz", 6);
    f->l.src_len = 6;
    f->l.dgram_sizes[0] = 3;
    f->l.dgram_sizes[1] = 0;
    f->l.dgram_sizes[2] = 3;
    f->l.ndgram_src = 3;
    f->c.window = 4;
    (void)run(f);
    assert_int_equal(f->c.out_len, 4);
    f->c.window = 1000;
    (void)run(f);
    assert_int_equal(f->c.out_len, 3 * FRAME_HDR + 6);
    (void)frame_put_header(3, hdr);
    assert_memory_equal(f->c.out, hdr, FRAME_HDR);
    assert_memory_equal(f->c.out + 2, "abc", 3);
    assert_memory_equal(f->c.out + 5, "\0\0", 2);
    assert_memory_equal(f->c.out + 7, hdr, FRAME_HDR);
    assert_memory_equal(f->c.out + 9, "xyz", 3);
    assert_int_equal(f->p.nup, 6);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partial_writes_then_eof),
        cmocka_unit_test(test_reads_only_noted),
        cmocka_unit_test(test_local_full_holds_channel),
        cmocka_unit_test(test_close_delivers_first),
        cmocka_unit_test(test_local_write_failure),
        cmocka_unit_test(test_local_stops_reading),
        cmocka_unit_test(test_window_exhaustion_and_eof_order),
        cmocka_unit_test(test_read_bounded_by_window),
        cmocka_unit_test(test_write_pending_blocks_reading),
        cmocka_unit_test(test_channel_write_failure),
        cmocka_unit_test(test_done_both_ways),
        cmocka_unit_test(test_run_up_only),
        cmocka_unit_test(test_dgram_down),
        cmocka_unit_test(test_dgram_too_long),
        cmocka_unit_test(test_dgram_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
