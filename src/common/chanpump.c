/*
 * The byte pump between an SSH channel and a local end; the contract is
 * in chanpump.h. Each direction is one loop: hand on what is held, then
 * take more only if all of it went.
 */
#include "common/chanpump.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "common/frame.h"

/* --- libssh as the channel end --- */

static int chanpump_ssh_read(void *c, uint8_t *p, uint32_t len)
{
    struct chanpump_ssh *x = c;
    int n = ssh_channel_read_timeout(x->ch, p, len, 0, 0);

    /* (ssh_channel_read_timeout with 0 does not block and grows the
     * local window; _nonblocking would not grow it.) */
    return n == SSH_EOF ? 0 : n;
}

static int chanpump_ssh_write(void *c, const uint8_t *p, uint32_t len)
{
    struct chanpump_ssh *x = c;

    return ssh_channel_write(x->ch, p, len);
}

static uint32_t chanpump_ssh_window(void *c)
{
    struct chanpump_ssh *x = c;

    return ssh_channel_window_size(x->ch);
}

static bool chanpump_ssh_write_pending(void *c)
{
    struct chanpump_ssh *x = c;

    return (ssh_get_poll_flags(x->s) & SSH_WRITE_PENDING) != 0;
}

static void chanpump_ssh_send_eof(void *c)
{
    struct chanpump_ssh *x = c;

    (void)ssh_channel_send_eof(x->ch);
}

const struct chanpump_chan_ops chanpump_ssh_ops = {
    .read = chanpump_ssh_read,
    .write = chanpump_ssh_write,
    .window = chanpump_ssh_window,
    .write_pending = chanpump_ssh_write_pending,
    .send_eof = chanpump_ssh_send_eof,
};

/* --- setting up --- */

void chanpump_init(struct chanpump *p, const struct chanpump_chan_ops *cops,
                   void *c, const struct chanpump_local_ops *lops, void *l,
                   bool dgram, size_t chunk)
{
    memset(p, 0, sizeof(*p));
    p->cops = cops;
    p->c = c;
    p->lops = lops;
    p->l = l;
    p->dgram = dgram;
    p->chunk = chunk > 0 ? chunk : 1;
}

static size_t chanpump_up_cap(const struct chanpump *p)
{
    return p->dgram ? FRAME_HDR + FRAME_MAX_PAYLOAD : p->chunk;
}

/* Frees a buffer of cap bytes, wiped first when the bytes may be secret. */
static void chanpump_drop(const struct chanpump *p, uint8_t **b, size_t cap)
{
    if (*b != NULL && p->wipe) {
        sodium_memzero(*b, cap);
    }
    free(*b);
    *b = NULL;
}

void chanpump_free(struct chanpump *p)
{
    if (p == NULL) {
        return;
    }
    chanpump_drop(p, &p->dn, p->dn_cap);
    chanpump_drop(p, &p->up, chanpump_up_cap(p));
    if (p->dec != NULL && p->wipe) {
        sodium_memzero(p->dec, sizeof(*p->dec));
    }
    free(p->dec);
    p->dec = NULL;
    p->dg_ready = false;
    p->dn_len = p->dn_off = p->up_len = p->up_off = 0;
}

void chanpump_note_data(struct chanpump *p, uint32_t len)
{
    p->avail = len;
}

void chanpump_note_eof(struct chanpump *p)
{
    p->ch_eof = true;
}

void chanpump_note_close(struct chanpump *p)
{
    p->ch_closed = true;
}

/* Spends the pump; e: the errno of a failed local end, else 0. */
static int chanpump_fail(struct chanpump *p, int err, int e, const char *why)
{
    p->err = e;
    p->why = why;
    return err;
}

/* --- channel -> local --- */

/*
 * Reads what the channel holds into p->dn (empty); 0 if none.
 *
 * All of it, not a chunk: libssh 0.10 grants the peer a whole new window
 * (WINDOW_DEFAULT, 1,280,000 bytes) on every read that finds the window
 * below half of that, whatever it still holds unread. Read a chunk at a
 * time towards a slow local end, every chunk let the peer send another
 * window's worth, and what libssh held grew without end (the hub then
 * dropped the agent, and every stream on it, for sending "past the
 * window"). Taking everything it holds makes each grant follow an
 * emptied buffer: libssh holds at most one window, and p->dn at most
 * what the window let in before it (CHANPUMP_TAKE_MAX, a peer that
 * ignores the window being its owner's to end). The buffer is back to
 * chunk size, or freed, once written.
 */
static int chanpump_dn_take(struct chanpump *p, size_t *got)
{
    size_t want = p->avail < CHANPUMP_TAKE_MAX ? p->avail : CHANPUMP_TAKE_MAX;
    size_t cap = want > p->chunk ? want : p->chunk;
    int n;

    *got = 0;
    if (want == 0) {
        return ERR_OK;
    }
    if (p->dn != NULL && p->dn_cap < cap) {
        chanpump_drop(p, &p->dn, p->dn_cap);
    }
    if (p->dn == NULL) {
        if ((p->dn = malloc(cap)) == NULL) {
            return chanpump_fail(p, ERR_NOMEM, 0, "out of memory");
        }
        p->dn_cap = cap;
    }
    n = p->cops->read(p->c, p->dn, (uint32_t)want);
    if (n <= 0) {
        /* nothing after all; a failed channel is the owner's to notice
         * (its close, or the session's error) */
        p->avail = 0;
        return ERR_OK;
    }
    p->avail = (uint32_t)n >= p->avail ? 0 : p->avail - (uint32_t)n;
    p->dn_len = (size_t)n;
    p->dn_off = 0;
    *got = (size_t)n;
    return ERR_OK;
}

static int chanpump_dn_stream(struct chanpump *p, bool *moved)
{
    ssize_t n;
    size_t got;
    int r;

    for (;;) {
        while (p->dn_off < p->dn_len) {
            if (p->dn_gone) {
                p->dn_off = p->dn_len; /* no one reads it */
                *moved = true;
                break;
            }
            n = p->lops->write(p->l, p->dn + p->dn_off, p->dn_len - p->dn_off);
            if (n == CHANPUMP_AGAIN || n == 0) {
                return ERR_OK;
            }
            if (n < 0 && errno == EPIPE) {
                /* The local end stopped reading (a job that refused its
                 * input and answers, a target that shut its reading
                 * half): what it would have read is dropped, and what it
                 * still writes goes on to the channel, its result
                 * included. */
                p->dn_gone = true;
                continue;
            }
            if (n < 0) {
                return chanpump_fail(p, ERR_IO, errno,
                                     "write to the local side failed");
            }
            p->dn_off += (size_t)n;
            p->ndown += (uint64_t)n;
            *moved = true;
        }
        p->dn_off = p->dn_len = 0;
        if ((r = chanpump_dn_take(p, &got)) != ERR_OK) {
            return r;
        }
        if (got == 0) {
            return ERR_OK;
        }
        *moved = true;
    }
}

/*
 * Datagrams: the decoder is fed from what is held; each datagram it
 * completes is written whole before more is fed, so a local end that is
 * full holds back the channel (the hub's socketpair); an end that drops
 * (UDP to the network) says it took it.
 */
static int chanpump_dn_dgram(struct chanpump *p, bool *moved)
{
    size_t used, got;
    ssize_t n;
    int r;

    for (;;) {
        if (p->dg_ready) {
            n = p->lops->write(p->l, p->dg, p->dg_len);
            if (n == CHANPUMP_AGAIN) {
                return ERR_OK;
            }
            if (n < 0) {
                return chanpump_fail(p, ERR_IO, errno,
                                     "write to the local side failed");
            }
            p->ndown += (uint64_t)p->dg_len;
            p->dg_ready = false;
            *moved = true;
        }
        if (p->dn_off < p->dn_len) {
            if (p->dec == NULL) {
                if ((p->dec = malloc(sizeof(*p->dec))) == NULL) {
                    return chanpump_fail(p, ERR_NOMEM, 0, "out of memory");
                }
                frame_dec_init(p->dec);
            }
            switch (frame_dec_feed(p->dec, p->dn + p->dn_off,
                                   p->dn_len - p->dn_off, &used, &p->dg,
                                   &p->dg_len)) {
            case FRAME_TOO_LONG:
                return chanpump_fail(p, ERR_PROTO, 0,
                                     "datagram length above 65507");
            case FRAME_DGRAM:
                p->dg_ready = true;
                break;
            case FRAME_MORE:
                break;
            }
            p->dn_off += used;
            *moved = true;
            continue;
        }
        p->dn_off = p->dn_len = 0;
        if ((r = chanpump_dn_take(p, &got)) != ERR_OK) {
            return r;
        }
        if (got == 0) {
            return ERR_OK;
        }
        *moved = true;
    }
}

/* --- local -> channel --- */

static int chanpump_up(struct chanpump *p, bool *moved)
{
    size_t cap = chanpump_up_cap(p);
    uint32_t win;
    size_t want;
    ssize_t n;
    int w;

    for (;;) {
        if (p->cops->write_pending(p->c)) {
            return ERR_OK; /* the session's link is full: wait for it */
        }
        if (p->up_off < p->up_len) {
            win = p->cops->window(p->c);
            want = p->up_len - p->up_off;
            if (want > win) {
                want = win;
            }
            if (want == 0) {
                return ERR_OK; /* the window is shut */
            }
            w = p->cops->write(p->c, p->up + p->up_off, (uint32_t)want);
            if (w < 0) {
                return chanpump_fail(p, ERR_IO, 0, "channel write failed");
            }
            if (w == 0) {
                return ERR_OK;
            }
            p->up_off += (size_t)w;
            *moved = true;
            if (p->up_off < p->up_len) {
                continue;
            }
        }
        p->up_off = p->up_len = 0;
        if (p->local_eof || (win = p->cops->window(p->c)) == 0) {
            return ERR_OK;
        }
        if (p->up == NULL && (p->up = malloc(cap)) == NULL) {
            return chanpump_fail(p, ERR_NOMEM, 0, "out of memory");
        }
        if (p->dgram) {
            n = p->lops->read(p->l, p->up + FRAME_HDR, FRAME_MAX_PAYLOAD);
        } else {
            n = p->lops->read(p->l, p->up, win < cap ? win : cap);
        }
        if (n == CHANPUMP_AGAIN) {
            return ERR_OK;
        }
        if (n == CHANPUMP_EOF || (n == 0 && !p->dgram)) {
            p->local_eof = true;
            *moved = true;
            return ERR_OK;
        }
        if (n < 0) {
            return chanpump_fail(p, ERR_IO, errno,
                                 "read from the local side failed");
        }
        p->nup += (uint64_t)n;
        *moved = true;
        if (p->dgram) {
            (void)frame_put_header((size_t)n, p->up);
            p->up_len = FRAME_HDR + (size_t)n;
        } else {
            p->up_len = (size_t)n;
        }
    }
}

/* --- both --- */

int chanpump_run(struct chanpump *p, bool *moved)
{
    bool any = false;
    int r;

    if (moved != NULL) {
        *moved = false;
    }
    if (p->why != NULL) {
        return ERR_IO; /* spent */
    }
    if (!p->shut_wr) {
        r = p->dgram ? chanpump_dn_dgram(p, &any) : chanpump_dn_stream(p, &any);
        if (r != ERR_OK) {
            goto out;
        }
        /* The channel's end, once everything before it is written. */
        if ((p->ch_eof || p->ch_closed) && p->avail == 0 &&
            p->dn_off == p->dn_len && !p->dg_ready) {
            p->shut_wr = true;
            if (p->lops->shut_wr != NULL) {
                p->lops->shut_wr(p->l);
            }
            any = true;
        }
    }
    if (!p->eof_sent && !p->ch_closed) {
        if ((r = chanpump_up(p, &any)) != ERR_OK) {
            goto out;
        }
        /* The local end's EOF, once everything before it is written. */
        if (p->local_eof && p->up_off == p->up_len) {
            p->eof_sent = true;
            p->cops->send_eof(p->c);
            any = true;
        }
    }
    r = ERR_OK;
out:
    /* buffers only while bytes are in flight */
    if (p->dn != NULL && p->dn_off == p->dn_len) {
        chanpump_drop(p, &p->dn, p->dn_cap);
        p->dn_off = p->dn_len = 0;
    }
    if (p->dec != NULL && !p->dg_ready && frame_dec_idle(p->dec)) {
        if (p->wipe) {
            sodium_memzero(p->dec, sizeof(*p->dec));
        }
        free(p->dec);
        p->dec = NULL;
    }
    if (p->up != NULL && p->up_off == p->up_len) {
        chanpump_drop(p, &p->up, chanpump_up_cap(p));
        p->up_off = p->up_len = 0;
    }
    if (moved != NULL) {
        *moved = any;
    }
    return r;
}

int chanpump_run_up(struct chanpump *p, bool *moved)
{
    bool any = false;
    int r = ERR_OK;

    if (moved != NULL) {
        *moved = false;
    }
    if (p->why != NULL) {
        return ERR_IO; /* spent */
    }
    if (!p->eof_sent && !p->ch_closed) {
        r = chanpump_up(p, &any);
    }
    if (p->up != NULL && p->up_off == p->up_len) {
        chanpump_drop(p, &p->up, chanpump_up_cap(p));
        p->up_off = p->up_len = 0;
    }
    if (moved != NULL) {
        *moved = any;
    }
    return r;
}

int chanpump_flush_dn(struct chanpump *p, bool *moved)
{
    ssize_t n;

    *moved = false;
    if (p->dgram) {
        p->dg_ready = false;
        p->dn_off = p->dn_len;
        return ERR_OK;
    }
    while (p->dn_off < p->dn_len) {
        n = p->lops->write(p->l, p->dn + p->dn_off, p->dn_len - p->dn_off);
        if (n == CHANPUMP_AGAIN || n == 0) {
            return ERR_OK;
        }
        if (n < 0) {
            return chanpump_fail(p, ERR_IO, errno,
                                 "write to the local side failed");
        }
        p->dn_off += (size_t)n;
        p->ndown += (uint64_t)n;
        *moved = true;
    }
    chanpump_drop(p, &p->dn, p->dn_cap);
    p->dn_off = p->dn_len = 0;
    return ERR_OK;
}

bool chanpump_dn_blocked(const struct chanpump *p)
{
    return p->dg_ready || (!p->dgram && p->dn_off < p->dn_len);
}

bool chanpump_up_ready(const struct chanpump *p)
{
    return !p->local_eof && !p->eof_sent && !p->ch_closed &&
           p->up_off == p->up_len && p->cops->window(p->c) > 0 &&
           !p->cops->write_pending(p->c);
}

bool chanpump_up_open(const struct chanpump *p)
{
    return !p->local_eof && !p->eof_sent && !p->ch_closed &&
           p->up_off == p->up_len && p->cops->window(p->c) > 0;
}

bool chanpump_up_held(const struct chanpump *p)
{
    return p->up_off < p->up_len;
}

bool chanpump_dn_done(const struct chanpump *p)
{
    return p->shut_wr;
}

bool chanpump_done(const struct chanpump *p)
{
    return p->shut_wr && (p->eof_sent || p->ch_closed);
}
