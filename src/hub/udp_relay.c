/* A UDP flow's datagrams framed on a stream: see udp_relay.h. */
#include "hub/udp_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/frame.h"

struct udp_relay {
    struct loop *loop;
    int dg, st;
    udp_relay_end_fn end;
    void *arg;
    /* stream -> datagrams: the decoder, which holds the datagram that
     * waits for dg to be writable (dg_blocked) until the next feed */
    struct frame_dec dec;
    const uint8_t *pend;
    size_t pend_len;
    bool dg_blocked;
    /* datagrams -> stream: one framed datagram not yet written (one byte
     * more than the largest: a longer packet reads cut, and is dropped) */
    uint8_t out[FRAME_HDR + FRAME_MAX_PAYLOAD + 1];
    size_t out_off, out_len;
};

static void udp_relay_events(struct udp_relay *r);

static void udp_relay_finish(struct udp_relay *r, const char *why)
{
    udp_relay_end_fn end = r->end;
    void *arg = r->arg;

    udp_relay_stop(r);
    if (end != NULL) {
        end(arg, why);
    }
}

/* Sends the decoded datagram waiting in r->pend. false: the relay ended. */
static bool udp_relay_send_dg(struct udp_relay *r)
{
    r->dg_blocked = false;
    while (send(r->dg, r->pend, r->pend_len, MSG_NOSIGNAL) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            r->dg_blocked = true;
            return true;
        }
        if (errno != EINTR) {
            udp_relay_finish(r, "the flow's socket failed");
            return false;
        }
    }
    return true;
}

/* Writes what is pending to the stream. false: the relay ended. */
static bool udp_relay_flush_out(struct udp_relay *r)
{
    while (r->out_off < r->out_len) {
        ssize_t n = send(r->st, r->out + r->out_off, r->out_len - r->out_off,
                         MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return true;
            }
            if (errno == EINTR) {
                continue;
            }
            udp_relay_finish(r, "the stream to the other node failed");
            return false;
        }
        r->out_off += (size_t)n;
    }
    r->out_off = r->out_len = 0;
    return true;
}

static void udp_relay_on_dg(struct loop *l, int fd, int events, void *arg)
{
    struct udp_relay *r = arg;
    ssize_t n;

    (void)l;
    (void)fd;
    if ((events & LOOP_WRITE) && r->dg_blocked && !udp_relay_send_dg(r)) {
        return;
    }
    if ((events & LOOP_READ) && r->out_len == 0) {
        n = recv(r->dg, r->out + FRAME_HDR, FRAME_MAX_PAYLOAD + 1,
                 MSG_DONTWAIT);
        if (n == 0) {
            udp_relay_finish(r, "the flow ended");
            return;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
            errno != EINTR) {
            udp_relay_finish(r, "the flow's socket failed");
            return;
        }
        if (n > 0 && frame_put_header((size_t)n, r->out) == 0) {
            r->out_off = 0;
            r->out_len = FRAME_HDR + (size_t)n;
            if (!udp_relay_flush_out(r)) {
                return;
            }
        }
    }
    udp_relay_events(r);
}

static void udp_relay_on_st(struct loop *l, int fd, int events, void *arg)
{
    struct udp_relay *r = arg;
    ssize_t n;

    (void)l;
    (void)fd;
    if ((events & LOOP_WRITE) && r->out_len != 0 && !udp_relay_flush_out(r)) {
        return;
    }
    if ((events & LOOP_READ) && !r->dg_blocked) {
        uint8_t buf[16384];
        size_t want = frame_dec_want(&r->dec), used;
        enum frame_result fr;

        /* only what the decoder needs: nothing is held over */
        n = recv(r->st, buf, want < sizeof(buf) ? want : sizeof(buf),
                 MSG_DONTWAIT);
        if (n == 0) {
            udp_relay_finish(r, "the other node closed the stream");
            return;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
            errno != EINTR) {
            udp_relay_finish(r, "the stream to the other node failed");
            return;
        }
        if (n > 0) {
            fr = frame_dec_feed(&r->dec, buf, (size_t)n, &used, &r->pend,
                                &r->pend_len);
            if (fr == FRAME_TOO_LONG ||
                (fr == FRAME_DGRAM && r->pend_len == 0)) {
                udp_relay_finish(r, "a bad frame from the other node");
                return;
            }
            if (fr == FRAME_DGRAM && !udp_relay_send_dg(r)) {
                return;
            }
        }
    }
    udp_relay_events(r);
}

/* Each side is read only while the other side's output is not pending. */
static void udp_relay_events(struct udp_relay *r)
{
    int dg = 0, st = 0;

    if (r->out_len == 0) {
        dg |= LOOP_READ;
    } else {
        st |= LOOP_WRITE;
    }
    if (r->dg_blocked) {
        dg |= LOOP_WRITE;
    } else {
        st |= LOOP_READ;
    }
    loop_mod_fd(r->loop, r->dg, dg);
    loop_mod_fd(r->loop, r->st, st);
}

struct udp_relay *udp_relay_start(struct loop *l, int dg, int st,
                                  udp_relay_end_fn end, void *arg)
{
    struct udp_relay *r = calloc(1, sizeof(*r));

    if (r == NULL || fcntl(dg, F_SETFL, fcntl(dg, F_GETFL) | O_NONBLOCK) < 0 ||
        fcntl(st, F_SETFL, fcntl(st, F_GETFL) | O_NONBLOCK) < 0) {
        free(r);
        close(dg);
        close(st);
        return NULL;
    }
    frame_dec_init(&r->dec);
    r->loop = l;
    r->dg = dg;
    r->st = st;
    r->end = end;
    r->arg = arg;
    if (loop_add_fd(l, dg, LOOP_READ, udp_relay_on_dg, r) != 0) {
        free(r);
        close(dg);
        close(st);
        return NULL;
    }
    if (loop_add_fd(l, st, LOOP_READ, udp_relay_on_st, r) != 0) {
        loop_del_fd(l, dg);
        free(r);
        close(dg);
        close(st);
        return NULL;
    }
    return r;
}

void udp_relay_stop(struct udp_relay *r)
{
    if (r == NULL) {
        return;
    }
    loop_del_fd(r->loop, r->dg);
    loop_del_fd(r->loop, r->st);
    close(r->dg);
    close(r->st);
    free(r);
}
