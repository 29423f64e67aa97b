/*
 * Byte pump between two stream sockets, TLS or not; see tlspump.h.
 */
#include "common/tlspump.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/err.h"
#include "common/loop.h"

#define TLSPUMP_BUF (64 * 1024)

struct tp_side {
    int fd;
    SSL *ssl;
    bool rd_wants_wr, wr_wants_rd; /* OpenSSL's crossed wishes */
    bool eof;                      /* nothing more will be read */
    bool shut;                     /* our write half is closed */
    int events;                    /* what the loop watches */
};

struct tp_buf {
    uint8_t data[TLSPUMP_BUF];
    size_t off, len;
    uint64_t moved;
};

struct tlspump {
    struct loop *loop;
    struct tp_side s[2];
    struct tp_buf to[2]; /* to[i]: bytes waiting to be written to side i */
    tlspump_done_fn done;
    void *arg;
    bool started;
};

static void tp_pump(struct tlspump *p);

static void tp_on_fd(struct loop *l, int fd, int events, void *arg)
{
    (void)l;
    (void)fd;
    (void)events;
    tp_pump(arg);
}

/* > 0 bytes, 0 nothing now, -1 end of stream, -2 error */
static ssize_t tp_read(struct tp_side *s, void *buf, size_t n)
{
    ssize_t r;
    int e;

    if (s->ssl == NULL) {
        r = recv(s->fd, buf, n, 0);
        if (r < 0) {
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
                       ? 0
                       : -2;
        }
        return r == 0 ? -1 : r;
    }
    s->rd_wants_wr = false;
    ERR_clear_error();
    r = SSL_read(s->ssl, buf, (int)(n > INT32_MAX ? INT32_MAX : n));
    if (r > 0) {
        return r;
    }
    e = SSL_get_error(s->ssl, (int)r);
    if (e == SSL_ERROR_WANT_READ) {
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        s->rd_wants_wr = true;
        return 0;
    }
    /* close_notify, or a TCP end without one (many clients do that) */
    return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ? -1 : -2;
}

/* > 0 bytes, 0 nothing now, -1 error */
static ssize_t tp_write(struct tp_side *s, const void *buf, size_t n)
{
    ssize_t r;
    int e;

    if (s->ssl == NULL) {
        r = send(s->fd, buf, n, MSG_NOSIGNAL);
        if (r < 0) {
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
                       ? 0
                       : -1;
        }
        return r;
    }
    s->wr_wants_rd = false;
    ERR_clear_error();
    r = SSL_write(s->ssl, buf, (int)(n > INT32_MAX ? INT32_MAX : n));
    if (r > 0) {
        return r;
    }
    e = SSL_get_error(s->ssl, (int)r);
    if (e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    if (e == SSL_ERROR_WANT_READ) {
        s->wr_wants_rd = true;
        return 0;
    }
    return -1;
}

static void tp_shut(struct tp_side *s)
{
    if (s->shut) {
        return;
    }
    s->shut = true;
    if (s->ssl != NULL) {
        (void)SSL_shutdown(s->ssl);
    }
    (void)shutdown(s->fd, SHUT_WR);
}

struct tlspump *tlspump_new(struct loop *l, int fd_a, SSL *ssl_a, int fd_b,
                            SSL *ssl_b, tlspump_done_fn done, void *arg)
{
    struct tlspump *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        if (ssl_a != NULL) {
            SSL_free(ssl_a);
        }
        if (ssl_b != NULL) {
            SSL_free(ssl_b);
        }
        close(fd_a);
        if (fd_b >= 0) {
            close(fd_b);
        }
        return NULL;
    }
    p->loop = l;
    p->s[0].fd = fd_a;
    p->s[0].ssl = ssl_a;
    p->s[1].fd = fd_b;
    p->s[1].ssl = ssl_b;
    if (fd_b < 0) {
        /* no B: nothing comes from it, nothing goes to it */
        p->s[1].eof = true;
        p->s[1].shut = true;
        p->s[0].eof = true;
    }
    p->done = done;
    p->arg = arg;
    if (loop_add_fd(l, fd_a, 0, tp_on_fd, p) != ERR_OK ||
        (fd_b >= 0 && loop_add_fd(l, fd_b, 0, tp_on_fd, p) != ERR_OK)) {
        loop_del_fd(l, fd_a);
        p->done = NULL;
        tlspump_free(p);
        return NULL;
    }
    return p;
}

int tlspump_send(struct tlspump *p, int side, const void *data, size_t len)
{
    struct tp_buf *b = &p->to[side != 0];

    if (len > sizeof(b->data) - b->off - b->len) {
        return ERR_TOO_LONG;
    }
    memcpy(b->data + b->off + b->len, data, len);
    b->len += len;
    return ERR_OK;
}

void tlspump_start(struct tlspump *p)
{
    p->started = true;
    tp_pump(p);
}

void tlspump_counts(const struct tlspump *p, uint64_t *a_to_b, uint64_t *b_to_a)
{
    *a_to_b = p->to[1].moved;
    *b_to_a = p->to[0].moved;
}

void tlspump_free(struct tlspump *p)
{
    int i;

    if (p == NULL) {
        return;
    }
    for (i = 0; i < 2; i++) {
        if (p->s[i].fd < 0) {
            continue;
        }
        loop_del_fd(p->loop, p->s[i].fd);
        if (p->s[i].ssl != NULL) {
            SSL_free(p->s[i].ssl);
        }
        close(p->s[i].fd);
    }
    free(p);
}

/* Moves bytes from side i into to[1 - i]; true if anything happened. */
static bool tp_fill(struct tlspump *p, int i, const char **why)
{
    struct tp_side *s = &p->s[i];
    struct tp_buf *b = &p->to[1 - i];
    ssize_t n;

    if (s->eof || b->off + b->len >= sizeof(b->data)) {
        return false;
    }
    n = tp_read(s, b->data + b->off + b->len,
                sizeof(b->data) - b->off - b->len);
    if (n == -2) {
        *why = "read error";
        s->eof = true;
        return true;
    }
    if (n == -1) {
        s->eof = true;
        return true;
    }
    b->len += (size_t)n;
    return n > 0;
}

/* Writes to[i] to side i; true if anything happened. */
static bool tp_drain(struct tlspump *p, int i, const char **why)
{
    struct tp_side *s = &p->s[i];
    struct tp_buf *b = &p->to[i];
    ssize_t n;

    if (b->len == 0 || s->shut) {
        return false;
    }
    n = tp_write(s, b->data + b->off, b->len);
    if (n < 0) {
        *why = "write error";
        b->len = 0;
        s->shut = true;
        return true;
    }
    b->off += (size_t)n;
    b->len -= (size_t)n;
    b->moved += (uint64_t)n;
    if (b->len == 0) {
        b->off = 0;
    }
    return n > 0;
}

static void tp_watch(struct tlspump *p, int i)
{
    struct tp_side *s = &p->s[i];
    bool room = p->to[1 - i].off + p->to[1 - i].len < TLSPUMP_BUF;
    int ev = 0;

    if (s->fd < 0) {
        return;
    }
    if (!s->eof && room) {
        ev |= s->rd_wants_wr ? LOOP_WRITE : LOOP_READ;
    }
    if (p->to[i].len > 0 && !s->shut) {
        ev |= s->wr_wants_rd ? LOOP_READ : LOOP_WRITE;
    }
    if (ev != s->events) {
        (void)loop_mod_fd(p->loop, s->fd, ev);
        s->events = ev;
    }
}

static void tp_pump(struct tlspump *p)
{
    const char *why = NULL;
    bool moved;
    int i;

    if (!p->started) {
        return;
    }
    do {
        moved = false;
        for (i = 0; i < 2; i++) {
            moved |= tp_fill(p, i, &why);
            moved |= tp_drain(p, 1 - i, &why);
            /* side i ended and all it sent is out: end the other way */
            if (p->s[i].eof && p->to[1 - i].len == 0 && p->s[1 - i].fd >= 0 &&
                !p->s[1 - i].shut) {
                tp_shut(&p->s[1 - i]);
                moved = true;
            }
        }
    } while (moved && why == NULL);

    if (why != NULL || (p->s[0].eof && p->s[1].eof && p->to[0].len == 0 &&
                        p->to[1].len == 0 && p->s[0].shut && p->s[1].shut)) {
        for (i = 0; i < 2; i++) {
            if (p->s[i].fd >= 0 && p->s[i].events != 0) {
                (void)loop_mod_fd(p->loop, p->s[i].fd, 0);
                p->s[i].events = 0;
            }
        }
        if (p->done != NULL) {
            tlspump_done_fn done = p->done;
            p->done = NULL;
            done(p->arg, why); /* may free p */
        }
        return;
    }
    tp_watch(p, 0);
    tp_watch(p, 1);
}
