/*
 * The main process's event loop; see loop.h.
 *
 * Built on libuv, because libwebsockets (the HTTP, WebSocket and TLS
 * library of the REST API and the agent endpoint) can run inside a
 * foreign libuv loop: the SSH monitor, the agent hub and the HTTP side then
 * share one loop in one thread, as SPEC §10 asks. (Debian's libwebsockets
 * is built without external-poll support, so a plain epoll loop could not
 * host it.)
 *
 * fds live in a table indexed by fd number, each with its own uv_poll_t.
 * libuv closes handles asynchronously: a removed fd's handle is detached
 * from the table at once and freed in its close callback, so the fd number
 * can be reused immediately.
 */
#include "common/loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/* How long loop_free waits for the jobs still on worker threads. */
#define LOOP_FREE_WAIT_MS 3000

struct loop_fd {
    uv_poll_t *poll; /* NULL: slot free */
    loop_fd_fn fn;
    void *arg;
    int events;
    struct loop *l;
    int fd;
};

struct loop_timer {
    uv_timer_t t;
    uint64_t id;
    loop_timer_fn fn;
    void *arg;
    struct loop *l;
    struct loop_timer *next;
};

struct loop {
    uv_loop_t uv;
    struct loop_fd **fds; /* indexed by fd */
    int nfds;
    struct loop_timer *timers;
    uint64_t next_timer_id;
    uv_check_t *check; /* the turn-end hooks' handle, once one is added */
    unsigned jobs;     /* loop_work and loop_resolve requests in flight */
    struct {
        loop_turn_fn fn;
        void *arg;
    } turn[LOOP_TURN_MAX];
};

struct loop *loop_new(void)
{
    struct loop *l = calloc(1, sizeof(*l));

    if (l == NULL) {
        return NULL;
    }
    if (uv_loop_init(&l->uv) != 0) {
        free(l);
        return NULL;
    }
    l->uv.data = l;
    l->next_timer_id = 1;
    return l;
}

static void loop_free_handle(uv_handle_t *h)
{
    free(h->data);
}

static void loop_free_check(uv_handle_t *h)
{
    free(h);
}

static void loop_close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void loop_wake(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until no job is on a worker or until ms have passed;
 * true when none is left. */
static bool loop_wait_jobs(struct loop *l, int ms)
{
    int64_t until = util_mono_ms() + ms, now;
    uv_timer_t *t;

    if (l->jobs == 0) {
        return true;
    }
    if ((t = malloc(sizeof(*t))) == NULL || uv_timer_init(&l->uv, t) != 0) {
        free(t);
        return false;
    }
    while (l->jobs > 0 && (now = util_mono_ms()) < until) {
        (void)uv_timer_start(t, loop_wake, (uint64_t)(until - now), 0);
        (void)uv_run(&l->uv, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)t, loop_free_check);
    (void)uv_run(&l->uv, UV_RUN_NOWAIT);
    return l->jobs == 0;
}

unsigned loop_free(struct loop *l)
{
    if (l == NULL) {
        return 0;
    }
    for (int fd = 0; fd < l->nfds; fd++) {
        loop_del_fd(l, fd);
    }
    while (l->timers != NULL) {
        loop_del_timer(l, l->timers->id);
    }
    if (l->check != NULL) {
        uv_check_stop(l->check);
        uv_close((uv_handle_t *)l->check, loop_free_check);
        l->check = NULL;
    }
    /* Let the close callbacks run, then close whatever else (e.g. handles
     * libwebsockets left) so uv_loop_close succeeds. With every handle
     * closed, the runs return once the worker threads' requests still
     * running (loop_work, loop_resolve) are done and their callbacks ran:
     * at most one argon2id or one resolver timeout, usually. A job that
     * waits on something that never answers (a database whose server is
     * stopped holds a statement for ever) is not waited for past
     * LOOP_FREE_WAIT_MS: the loop is then left allocated (its threads
     * still refer to it) and the process's exit ends them. */
    uv_run(&l->uv, UV_RUN_NOWAIT);
    uv_walk(&l->uv, loop_close_walk, NULL);
    if (!loop_wait_jobs(l, LOOP_FREE_WAIT_MS)) {
        log_warn("%u job%s still on worker threads at shutdown (a database "
                 "or name server that does not answer); not waited for",
                 l->jobs, l->jobs == 1 ? "" : "s");
        return l->jobs;
    }
    uv_run(&l->uv, UV_RUN_DEFAULT);
    (void)uv_loop_close(&l->uv);
    free(l->fds);
    free(l);
    return 0;
}

/* --- the end of a turn --- */

static void loop_on_check(uv_check_t *h)
{
    struct loop *l = h->data;

    for (int i = 0; i < LOOP_TURN_MAX; i++) {
        if (l->turn[i].fn != NULL) {
            l->turn[i].fn(l, l->turn[i].arg);
        }
    }
}

int loop_add_turn_end(struct loop *l, loop_turn_fn fn, void *arg)
{
    int i;

    for (i = 0; i < LOOP_TURN_MAX && l->turn[i].fn != NULL; i++) {
    }
    if (i == LOOP_TURN_MAX) {
        return ERR_IO;
    }
    if (l->check == NULL) {
        if ((l->check = malloc(sizeof(*l->check))) == NULL) {
            return ERR_IO;
        }
        if (uv_check_init(&l->uv, l->check) != 0) {
            free(l->check);
            l->check = NULL;
            return ERR_IO;
        }
        l->check->data = l;
        (void)uv_check_start(l->check, loop_on_check);
        /* a hook alone does not keep the loop running */
        uv_unref((uv_handle_t *)l->check);
    }
    l->turn[i].fn = fn;
    l->turn[i].arg = arg;
    return ERR_OK;
}

void loop_del_turn_end(struct loop *l, loop_turn_fn fn, void *arg)
{
    for (int i = 0; i < LOOP_TURN_MAX; i++) {
        if (l->turn[i].fn == fn && l->turn[i].arg == arg) {
            l->turn[i].fn = NULL;
            l->turn[i].arg = NULL;
        }
    }
}

void loop_reserve_workers(unsigned n)
{
    char v[16];

    /* libuv reads it once, when its pool starts; at most 1024 threads. */
    if (getenv("UV_THREADPOOL_SIZE") == NULL) {
        snprintf(v, sizeof(v), "%u", n > 1000 ? 1024 : n + 4);
        (void)setenv("UV_THREADPOOL_SIZE", v, 0);
    }
}

struct loop_work {
    uv_work_t w;
    struct loop *l;
    loop_work_fn work;
    loop_after_fn after;
    void *arg;
};

static void loop_on_work(uv_work_t *w)
{
    struct loop_work *lw = w->data;

    lw->work(lw->arg);
}

static void loop_on_work_done(uv_work_t *w, int status)
{
    struct loop_work *lw = w->data;

    (void)status; /* UV_ECANCELED never: we do not cancel */
    lw->l->jobs--;
    lw->after(lw->l, lw->arg);
    free(lw);
}

int loop_work(struct loop *l, loop_work_fn work, loop_after_fn after, void *arg)
{
    struct loop_work *lw;

    if (work == NULL || after == NULL) {
        return ERR_INVALID;
    }
    if ((lw = calloc(1, sizeof(*lw))) == NULL) {
        return ERR_NOMEM;
    }
    lw->w.data = lw;
    lw->l = l;
    lw->work = work;
    lw->after = after;
    lw->arg = arg;
    if (uv_queue_work(&l->uv, &lw->w, loop_on_work, loop_on_work_done) != 0) {
        free(lw);
        return ERR_IO;
    }
    l->jobs++;
    return ERR_OK;
}

struct loop_gai {
    uv_getaddrinfo_t req;
    struct loop *l;
    loop_resolved_fn fn;
    void *arg;
};

static void loop_on_resolved(uv_getaddrinfo_t *req, int status,
                             struct addrinfo *res)
{
    struct loop_gai *g = req->data;

    g->l->jobs--;
    if (status != 0) {
        g->fn(g->l, NULL,
              status == UV_EAI_CANCELED ? "cancelled" : uv_strerror(status),
              g->arg);
    } else {
        g->fn(g->l, res, NULL, g->arg);
    }
    uv_freeaddrinfo(res);
    free(g);
}

int loop_resolve(struct loop *l, const char *host, const char *service,
                 const struct addrinfo *hints, loop_resolved_fn fn, void *arg)
{
    struct loop_gai *g;

    if (host == NULL || fn == NULL) {
        return ERR_INVALID;
    }
    if ((g = calloc(1, sizeof(*g))) == NULL) {
        return ERR_NOMEM;
    }
    g->req.data = g;
    g->l = l;
    g->fn = fn;
    g->arg = arg;
    if (uv_getaddrinfo(&l->uv, &g->req, loop_on_resolved, host, service,
                       hints) != 0) {
        free(g);
        return ERR_IO;
    }
    l->jobs++;
    return ERR_OK;
}

void *loop_uv(struct loop *l)
{
    return &l->uv;
}

static int loop_uv_mask(int events)
{
    int m = 0;

    if (events & LOOP_READ) {
        m |= UV_READABLE | UV_DISCONNECT;
    }
    if (events & LOOP_WRITE) {
        m |= UV_WRITABLE;
    }
    return m;
}

static void loop_on_poll(uv_poll_t *h, int status, int uvev)
{
    struct loop_fd *f = h->data;
    int events = 0;

    if (f == NULL || f->fn == NULL) {
        return;
    }
    if (status < 0 || (uvev & (UV_READABLE | UV_DISCONNECT))) {
        events |= LOOP_READ;
    }
    if (uvev & UV_WRITABLE) {
        events |= LOOP_WRITE;
    }
    f->fn(f->l, f->fd, events, f->arg);
}

int loop_add_fd(struct loop *l, int fd, int events, loop_fd_fn fn, void *arg)
{
    struct loop_fd *f;

    if (fd < 0 || fn == NULL) {
        return ERR_INVALID;
    }
    if (fd >= l->nfds) {
        int n = l->nfds ? l->nfds : 64;
        struct loop_fd **nf;

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
    if (l->fds[fd] != NULL) {
        return ERR_EXISTS;
    }
    if ((f = calloc(1, sizeof(*f))) == NULL ||
        (f->poll = malloc(sizeof(*f->poll))) == NULL) {
        free(f);
        return ERR_NOMEM;
    }
    if (uv_poll_init(&l->uv, f->poll, fd) != 0) {
        free(f->poll);
        free(f);
        return ERR_IO;
    }
    f->poll->data = f;
    f->fn = fn;
    f->arg = arg;
    f->l = l;
    f->fd = fd;
    f->events = events;
    if (uv_poll_start(f->poll, loop_uv_mask(events), loop_on_poll) != 0) {
        f->poll->data = NULL;
        uv_close((uv_handle_t *)f->poll, loop_free_handle);
        free(f);
        return ERR_IO;
    }
    l->fds[fd] = f;
    return ERR_OK;
}

int loop_mod_fd(struct loop *l, int fd, int events)
{
    struct loop_fd *f;

    if (fd < 0 || fd >= l->nfds || (f = l->fds[fd]) == NULL) {
        return ERR_NOT_FOUND;
    }
    if (f->events == events) {
        return ERR_OK;
    }
    f->events = events;
    if (events == 0) {
        return uv_poll_stop(f->poll) == 0 ? ERR_OK : ERR_IO;
    }
    return uv_poll_start(f->poll, loop_uv_mask(events), loop_on_poll) == 0
               ? ERR_OK
               : ERR_IO;
}

int loop_set_fd(struct loop *l, int fd, int events, loop_fd_fn fn, void *arg)
{
    if (fd >= 0 && fd < l->nfds && l->fds[fd] != NULL) {
        l->fds[fd]->fn = fn;
        l->fds[fd]->arg = arg;
        return loop_mod_fd(l, fd, events);
    }
    if (events == 0) {
        return ERR_OK; /* not watched, and nothing to watch */
    }
    return loop_add_fd(l, fd, events, fn, arg);
}

static void loop_free_poll(uv_handle_t *h)
{
    free(h);
}

void loop_del_fd(struct loop *l, int fd)
{
    struct loop_fd *f;

    if (fd < 0 || fd >= l->nfds || (f = l->fds[fd]) == NULL) {
        return;
    }
    l->fds[fd] = NULL;
    uv_poll_stop(f->poll);
    f->poll->data = NULL;
    uv_close((uv_handle_t *)f->poll, loop_free_poll);
    free(f);
}

int loop_fd_events(const struct loop *l, int fd)
{
    if (fd < 0 || fd >= l->nfds || l->fds[fd] == NULL) {
        return 0;
    }
    return l->fds[fd]->events;
}

static void loop_on_timer(uv_timer_t *t)
{
    struct loop_timer *lt = t->data;
    loop_timer_fn fn = lt->fn;
    void *arg = lt->arg;
    struct loop *l = lt->l;

    /* One-shot: remove it before the handler may add or delete timers. */
    loop_del_timer(l, lt->id);
    fn(l, arg);
}

uint64_t loop_add_timer(struct loop *l, int64_t ms, loop_timer_fn fn, void *arg)
{
    struct loop_timer *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        return 0;
    }
    if (uv_timer_init(&l->uv, &t->t) != 0) {
        free(t);
        return 0;
    }
    t->t.data = t;
    t->id = l->next_timer_id++;
    t->fn = fn;
    t->arg = arg;
    t->l = l;
    if (uv_timer_start(&t->t, loop_on_timer, ms > 0 ? (uint64_t)ms : 0, 0) !=
        0) {
        uv_close((uv_handle_t *)&t->t, loop_free_handle);
        return 0;
    }
    t->next = l->timers;
    l->timers = t;
    return t->id;
}

void loop_del_timer(struct loop *l, uint64_t id)
{
    struct loop_timer **pp, *t;

    if (id == 0) {
        return;
    }
    for (pp = &l->timers; (t = *pp) != NULL; pp = &t->next) {
        if (t->id == id) {
            *pp = t->next;
            uv_timer_stop(&t->t);
            uv_close((uv_handle_t *)&t->t, loop_free_handle);
            return;
        }
    }
}

int loop_run(struct loop *l)
{
    return uv_run(&l->uv, UV_RUN_DEFAULT) >= 0 ? ERR_OK : ERR_IO;
}

void loop_stop(struct loop *l)
{
    uv_stop(&l->uv);
}
