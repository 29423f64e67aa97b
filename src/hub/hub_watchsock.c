/*
 * The CLI's view of a job's live output (`portcullis job show --follow`,
 * `job run --follow`): a stream socket DATA/run/watch.sock (mode 0600 in
 * a 0700 directory, common/notify.h), served by the hub's watchers
 * (hub.h) so the CLI is pushed each piece of output as it arrives
 * instead of reading the store ten times a second.
 *
 * The CLI connects and writes the job's ID and "\n". The server answers
 * with frames as the agent's (docs/agent-protocol.md §6): 'O' or 'E', a
 * 4-byte big-endian length (1-16,384) and that many bytes of stdout or
 * stderr, from byte 0 of each stream; then one 'Z' frame of length 0:
 * "no more from here", after which the server closes. 'Z' comes when the
 * job has ended and all its output was sent, and at once when the job
 * does not run on this node (another node runs it, it ended before, or
 * there is no such job); the CLI then reads the rest and the result from
 * the store, skipping what it printed. A job still queued is waited for
 * (checked in the store every HUB_WSOCK_POLL_MS).
 *
 * Bounds: at most HUB_WSOCK_MAX connections (more are closed at once,
 * and the CLI reads the store); each holds one frame; a connection that
 * takes nothing for HUB_WSOCK_STALL_MS, or sends no ID within that time,
 * is closed. The socket's mode is the whole of the check: only the
 * server's user (and root), who can read the store anyway.
 */
#include "hub/hub_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/util.h"
#include "store/jobs.h"

#define HUB_WSOCK_NAME "watch.sock"
#define HUB_WSOCK_MAX 64
#define HUB_WSOCK_SLICE 16384
#define HUB_WSOCK_POLL_MS 200
#define HUB_WSOCK_STALL_MS 60000

struct hub_wsock {
    struct hub_wsocks *ws;
    int fd;
    char line[STORE_ID_MAX + 2];
    size_t line_len;
    bool asked, done;
    struct hub_watch *w;
    uint8_t frame[5 + HUB_WSOCK_SLICE];
    size_t frame_len, frame_off;
    int64_t last_ms;
    struct hub_wsock *next;
};

struct hub_wsocks {
    struct hub *h;
    char *data_dir;
    int fd;
    size_t n;
    uint64_t timer;
    struct hub_wsock *list;
    /* out of descriptors: the listener is not watched until the next
     * tick (it stays readable: watching it would spin the loop) */
    bool paused;
    int64_t paused_log;
};

static void hub_wsock_free(struct hub_wsock *c)
{
    struct hub_wsocks *ws = c->ws;

    for (struct hub_wsock **pp = &ws->list; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    loop_del_fd(ws->h->loop, c->fd);
    close(c->fd);
    hub_watch_free(c->w);
    ws->n--;
    free(c);
}

static void hub_wsock_frame(struct hub_wsock *c, char type, const uint8_t *p,
                            size_t n)
{
    c->frame[0] = (uint8_t)type;
    c->frame[1] = (uint8_t)(n >> 24);
    c->frame[2] = (uint8_t)(n >> 16);
    c->frame[3] = (uint8_t)(n >> 8);
    c->frame[4] = (uint8_t)n;
    if (n > 0) {
        memcpy(c->frame + 5, p, n);
    }
    c->frame_len = 5 + n;
    c->frame_off = 0;
}

/* The next frame, if there is one now. */
static bool hub_wsock_next(struct hub_wsock *c)
{
    struct hub_job_result r;

    if (c->done) {
        return false;
    }
    if (c->w != NULL && hub_watch_attached(c->w)) {
        for (int st = 1; st <= 2; st++) {
            const uint8_t *p;
            size_t n = hub_watch_peek(c->w, st, &p, HUB_WSOCK_SLICE);
            if (n > 0) {
                hub_wsock_frame(c, st == 1 ? 'O' : 'E', p, n);
                hub_watch_take(c->w, st, n);
                return true;
            }
        }
        if (hub_watch_done(c->w, &r)) {
            hub_wsock_frame(c, 'Z', NULL, 0);
            c->done = true;
            return true;
        }
    }
    return false;
}

/* Writes while the socket takes it; false when the connection is over. */
static bool hub_wsock_flush(struct hub_wsock *c)
{
    for (;;) {
        if (c->frame_off == c->frame_len) {
            if (c->done) {
                return false; /* 'Z' is out */
            }
            if (!hub_wsock_next(c)) {
                (void)loop_mod_fd(c->ws->h->loop, c->fd, LOOP_READ);
                return true;
            }
        }
        ssize_t n = send(c->fd, c->frame + c->frame_off,
                         c->frame_len - c->frame_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            (void)loop_mod_fd(c->ws->h->loop, c->fd, LOOP_READ | LOOP_WRITE);
            return true;
        }
        if (n <= 0) {
            return false;
        }
        c->frame_off += (size_t)n;
        c->last_ms = util_mono_ms();
    }
}

static void hub_wsock_wake(void *arg)
{
    struct hub_wsock *c = arg;

    /* written from the loop, not from inside the job's read */
    (void)loop_mod_fd(c->ws->h->loop, c->fd, LOOP_READ | LOOP_WRITE);
}

/* A job this node does not run (yet): still queued, wait; else 'Z'. */
static void hub_wsock_check(struct hub_wsock *c)
{
    struct store_job *j;
    bool queued = false;

    if (c->w == NULL || hub_watch_attached(c->w) || c->done) {
        return;
    }
    if ((j = calloc(1, sizeof(*j))) != NULL &&
        /* its status only: no output */
        store_job_get_from(c->ws->h->store, c->line, JOB_OUT_MAX, JOB_OUT_MAX,
                           j) == ERR_OK) {
        queued = strcmp(j->status, "queued") == 0;
        store_job_free_output(j);
    }
    free(j);
    if (!queued) {
        hub_wsock_frame(c, 'Z', NULL, 0);
        c->done = true;
        (void)loop_mod_fd(c->ws->h->loop, c->fd, LOOP_READ | LOOP_WRITE);
    }
}

static void hub_wsock_on_ask(struct hub_wsock *c)
{
    size_t n = c->line_len - 1;

    c->line[n] = '\0';
    c->asked = true;
    if (n == 0 || n > STORE_ID_MAX ||
        strspn(c->line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789-_.") != n ||
        (c->w = hub_watch_job(c->ws->h, c->line, hub_wsock_wake, c)) == NULL) {
        hub_wsock_frame(c, 'Z', NULL, 0);
        c->done = true;
        (void)loop_mod_fd(c->ws->h->loop, c->fd, LOOP_READ | LOOP_WRITE);
        return;
    }
    hub_wsock_check(c);
    (void)loop_mod_fd(c->ws->h->loop, c->fd, LOOP_READ | LOOP_WRITE);
}

static void hub_wsock_io(struct loop *l, int fd, int events, void *arg)
{
    struct hub_wsock *c = arg;
    char buf[256];

    (void)l;
    if ((events & LOOP_READ) != 0) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            hub_wsock_free(c); /* the CLI is gone */
            return;
        }
        for (ssize_t i = 0; i < n && !c->asked; i++) {
            if (c->line_len + 1 >= sizeof(c->line)) {
                hub_wsock_free(c);
                return;
            }
            c->line[c->line_len++] = buf[i];
            if (buf[i] == '\n') {
                hub_wsock_on_ask(c);
            }
        }
    }
    if (c->asked && !hub_wsock_flush(c)) {
        hub_wsock_free(c);
    }
}

static void hub_wsock_accept(struct loop *l, int fd, int events, void *arg)
{
    struct hub_wsocks *ws = arg;

    (void)events;
    for (int i = 0; i < 16; i++) {
        struct hub_wsock *c;
        int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (s < 0) {
            if ((errno == EMFILE || errno == ENFILE) &&
                loop_mod_fd(l, fd, 0) == ERR_OK) {
                int64_t now = util_mono_ms();

                ws->paused = true;
                if (ws->paused_log == 0 || now - ws->paused_log >= 10000) {
                    log_warn("job watch socket: cannot accept: %s; waiting",
                             strerror(errno));
                    ws->paused_log = now;
                }
            }
            return;
        }
        if (ws->n >= HUB_WSOCK_MAX || (c = calloc(1, sizeof(*c))) == NULL) {
            /* the CLI reads the store instead */
            close(s);
            continue;
        }
        c->ws = ws;
        c->fd = s;
        c->last_ms = util_mono_ms();
        if (loop_add_fd(l, s, LOOP_READ, hub_wsock_io, c) != ERR_OK) {
            close(s);
            free(c);
            continue;
        }
        c->next = ws->list;
        ws->list = c;
        ws->n++;
    }
}

static void hub_wsock_tick(struct loop *l, void *arg)
{
    struct hub_wsocks *ws = arg;
    int64_t now = util_mono_ms();
    struct hub_wsock *c = ws->list, *next;

    ws->timer = loop_add_timer(l, HUB_WSOCK_POLL_MS, hub_wsock_tick, ws);
    if (ws->paused && loop_mod_fd(l, ws->fd, LOOP_READ) == ERR_OK) {
        ws->paused = false;
    }
    for (; c != NULL; c = next) {
        next = c->next;
        /* waiting with nothing to send is not a stall */
        if (c->frame_off == c->frame_len && !c->done && c->asked) {
            c->last_ms = now;
        }
        if (now - c->last_ms > HUB_WSOCK_STALL_MS) {
            hub_wsock_free(c);
            continue;
        }
        hub_wsock_check(c);
    }
}

int hub_watch_listen(struct hub *h, const char *data_dir)
{
    struct hub_wsocks *ws = calloc(1, sizeof(*ws));
    int r;

    if (ws == NULL || (ws->data_dir = strdup(data_dir)) == NULL) {
        free(ws);
        return ERR_NOMEM;
    }
    ws->h = h;
    if ((r = notify_stream_listen(data_dir, HUB_WSOCK_NAME, &ws->fd)) !=
        ERR_OK) {
        free(ws->data_dir);
        free(ws);
        return r;
    }
    if ((r = loop_add_fd(h->loop, ws->fd, LOOP_READ, hub_wsock_accept, ws)) !=
        ERR_OK) {
        notify_stream_close(data_dir, HUB_WSOCK_NAME, ws->fd);
        free(ws->data_dir);
        free(ws);
        return r;
    }
    ws->timer = loop_add_timer(h->loop, HUB_WSOCK_POLL_MS, hub_wsock_tick, ws);
    h->wsocks = ws;
    return ERR_OK;
}

void hub_watch_unlisten(struct hub *h)
{
    struct hub_wsocks *ws = h->wsocks;

    if (ws == NULL) {
        return;
    }
    while (ws->list != NULL) {
        hub_wsock_free(ws->list);
    }
    loop_del_timer(h->loop, ws->timer);
    loop_del_fd(h->loop, ws->fd);
    notify_stream_close(ws->data_dir, HUB_WSOCK_NAME, ws->fd);
    free(ws->data_dir);
    free(ws);
    h->wsocks = NULL;
}
