/*
 * The main process's event loop; see loop.h.
 *
 * fds live in a table indexed by fd number (fds are small and dense), so
 * a lookup is one array access. Timers are few (connect deadlines,
 * housekeeping) and kept in an unsorted array scanned once per turn.
 */
#include "common/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"

#define LOOP_BATCH 256

struct loop_fd {
    loop_fd_fn fn; /* NULL: slot free */
    void *arg;
    int events;
};

struct loop_timer {
    uint64_t id;
    int64_t due_ms;
    loop_timer_fn fn;
    void *arg;
};

struct loop {
    int ep;
    struct loop_fd *fds;
    int nfds; /* size of fds[] */
    struct loop_timer *timers;
    size_t ntimers, captimers;
    uint64_t next_timer_id;
    bool stop;
};

struct loop *loop_new(void)
{
    struct loop *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        return NULL;
    }
    if ((l->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        free(l);
        return NULL;
    }
    l->next_timer_id = 1;
    return l;
}

void loop_free(struct loop *l)
{
    if (l == NULL) {
        return;
    }
    close(l->ep);
    free(l->fds);
    free(l->timers);
    free(l);
}

static uint32_t loop_epoll_mask(int events)
{
    uint32_t m = 0;

    if (events & LOOP_READ) {
        m |= EPOLLIN | EPOLLRDHUP;
    }
    if (events & LOOP_WRITE) {
        m |= EPOLLOUT;
    }
    return m;
}

int loop_add_fd(struct loop *l, int fd, int events, loop_fd_fn fn, void *arg)
{
    struct epoll_event ev;

    if (fd < 0 || fn == NULL) {
        return ERR_INVALID;
    }
    if (fd >= l->nfds) {
        int n = l->nfds ? l->nfds : 64;
        struct loop_fd *nf;

        while (n <= fd) {
            n *= 2;
        }
        if ((nf = realloc(l->fds, (size_t)n * sizeof(*nf))) == NULL) {
            return ERR_NOMEM;
        }
        memset(nf + l->nfds, 0, (size_t)(n - l->nfds) * sizeof(*nf));
        l->fds = nf;
        l->nfds = n;
    }
    if (l->fds[fd].fn != NULL) {
        return ERR_EXISTS;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = loop_epoll_mask(events);
    ev.data.fd = fd;
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        return ERR_IO;
    }
    l->fds[fd].fn = fn;
    l->fds[fd].arg = arg;
    l->fds[fd].events = events;
    return ERR_OK;
}

int loop_mod_fd(struct loop *l, int fd, int events)
{
    struct epoll_event ev;

    if (fd < 0 || fd >= l->nfds || l->fds[fd].fn == NULL) {
        return ERR_NOT_FOUND;
    }
    if (l->fds[fd].events == events) {
        return ERR_OK;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = loop_epoll_mask(events);
    ev.data.fd = fd;
    if (epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev) != 0) {
        return ERR_IO;
    }
    l->fds[fd].events = events;
    return ERR_OK;
}

void loop_del_fd(struct loop *l, int fd)
{
    if (fd < 0 || fd >= l->nfds || l->fds[fd].fn == NULL) {
        return;
    }
    (void)epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
    memset(&l->fds[fd], 0, sizeof(l->fds[fd]));
}

int loop_fd_events(const struct loop *l, int fd)
{
    if (fd < 0 || fd >= l->nfds || l->fds[fd].fn == NULL) {
        return 0;
    }
    return l->fds[fd].events;
}

uint64_t loop_add_timer(struct loop *l, int64_t ms, loop_timer_fn fn, void *arg)
{
    struct loop_timer *t;

    if (l->ntimers == l->captimers) {
        size_t n = l->captimers ? l->captimers * 2 : 16;

        if ((t = realloc(l->timers, n * sizeof(*t))) == NULL) {
            return 0;
        }
        l->timers = t;
        l->captimers = n;
    }
    t = &l->timers[l->ntimers++];
    t->id = l->next_timer_id++;
    t->due_ms = util_mono_ms() + (ms > 0 ? ms : 0);
    t->fn = fn;
    t->arg = arg;
    return t->id;
}

void loop_del_timer(struct loop *l, uint64_t id)
{
    for (size_t i = 0; i < l->ntimers; i++) {
        if (l->timers[i].id == id) {
            l->timers[i] = l->timers[--l->ntimers];
            return;
        }
    }
}

/* Milliseconds until the next timer; -1 if none. */
static int loop_next_timeout(const struct loop *l)
{
    int64_t now = util_mono_ms(), best = -1;

    for (size_t i = 0; i < l->ntimers; i++) {
        int64_t d = l->timers[i].due_ms - now;

        if (d < 0) {
            d = 0;
        }
        if (best < 0 || d < best) {
            best = d;
        }
    }
    return best > 60000 ? 60000 : (int)best;
}

static void loop_run_timers(struct loop *l)
{
    int64_t now = util_mono_ms();
    size_t i = 0;

    while (i < l->ntimers) {
        if (l->timers[i].due_ms <= now) {
            struct loop_timer t = l->timers[i];

            /* Remove first: the handler may add or delete timers. */
            l->timers[i] = l->timers[--l->ntimers];
            t.fn(l, t.arg);
            i = 0;
            continue;
        }
        i++;
    }
}

int loop_run(struct loop *l)
{
    struct epoll_event evs[LOOP_BATCH];
    int n, fd, events;

    l->stop = false;
    while (!l->stop) {
        n = epoll_wait(l->ep, evs, LOOP_BATCH, loop_next_timeout(l));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return ERR_IO;
        }
        for (int i = 0; i < n && !l->stop; i++) {
            fd = evs[i].data.fd;
            /* An earlier handler of this batch may have removed it. */
            if (fd >= l->nfds || l->fds[fd].fn == NULL) {
                continue;
            }
            events = 0;
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                events |= LOOP_READ;
            }
            if (evs[i].events & EPOLLOUT) {
                events |= LOOP_WRITE;
            }
            if ((events & LOOP_WRITE) && !(l->fds[fd].events & LOOP_WRITE) &&
                !(events & LOOP_READ)) {
                continue;
            }
            l->fds[fd].fn(l, fd, events, l->fds[fd].arg);
        }
        loop_run_timers(l);
    }
    return ERR_OK;
}

void loop_stop(struct loop *l)
{
    l->stop = true;
}
