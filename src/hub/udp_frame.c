/* UDP datagrams over a byte stream: see udp_frame.h. */
#include "hub/udp_frame.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

long udp_frame_next(const uint8_t *buf, size_t len, const uint8_t **payload,
                    size_t *plen)
{
    size_t n;

    if (len < UDP_FRAME_HDR) {
        return 0;
    }
    n = ((size_t)buf[0] << 8) | buf[1];
    if (n == 0 || n > UDP_FRAME_MAX) {
        return -1;
    }
    if (len - UDP_FRAME_HDR < n) {
        return 0;
    }
    *payload = buf + UDP_FRAME_HDR;
    *plen = n;
    return (long)(UDP_FRAME_HDR + n);
}

void udp_frame_header(uint8_t hdr[UDP_FRAME_HDR], size_t plen)
{
    hdr[0] = (uint8_t)(plen >> 8);
    hdr[1] = (uint8_t)plen;
}

/* One frame in each direction at most is held: the stream's input up to
 * a whole frame plus what one read brings, the datagrams' output one
 * framed datagram. */
#define UDP_RELAY_BUF (2 * (UDP_FRAME_HDR + UDP_FRAME_MAX))

struct udp_relay {
    struct loop *loop;
    int dg, st;
    udp_relay_end_fn end;
    void *arg;
    /* stream -> datagrams: bytes read, not yet sent as datagrams */
    uint8_t in[UDP_RELAY_BUF];
    size_t in_len;
    bool dg_blocked; /* a datagram waits for dg to be writable */
    /* datagrams -> stream: one framed datagram not yet written */
    uint8_t out[UDP_FRAME_HDR + UDP_FRAME_MAX + 1];
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

/* Sends the whole frames in r->in as datagrams. false: the relay ended. */
static bool udp_relay_flush_in(struct udp_relay *r)
{
    size_t off = 0;

    r->dg_blocked = false;
    while (off < r->in_len) {
        const uint8_t *p;
        size_t plen;
        long n = udp_frame_next(r->in + off, r->in_len - off, &p, &plen);

        if (n < 0) {
            udp_relay_finish(r, "a bad frame from the other node");
            return false;
        }
        if (n == 0) {
            break;
        }
        if (send(r->dg, p, plen, MSG_NOSIGNAL) < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                r->dg_blocked = true;
                break;
            }
            if (errno == EINTR) {
                continue;
            }
            udp_relay_finish(r, "the flow's socket failed");
            return false;
        }
        off += (size_t)n;
    }
    memmove(r->in, r->in + off, r->in_len - off);
    r->in_len -= off;
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
    if ((events & LOOP_WRITE) && r->dg_blocked && !udp_relay_flush_in(r)) {
        return;
    }
    if ((events & LOOP_READ) && r->out_len == 0) {
        /* one byte more than the largest payload: a longer packet is
         * cut, and refused below */
        n = recv(r->dg, r->out + UDP_FRAME_HDR, UDP_FRAME_MAX + 1,
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
        if (n > 0 && n <= UDP_FRAME_MAX) {
            udp_frame_header(r->out, (size_t)n);
            r->out_off = 0;
            r->out_len = UDP_FRAME_HDR + (size_t)n;
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
    if ((events & LOOP_READ) && !r->dg_blocked && r->in_len < sizeof(r->in)) {
        n = recv(r->st, r->in + r->in_len, sizeof(r->in) - r->in_len,
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
            r->in_len += (size_t)n;
            if (!udp_relay_flush_in(r)) {
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
