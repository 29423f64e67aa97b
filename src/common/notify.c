/*
 * Store-change notices from the CLI to a running server; see notify.h.
 *
 * One AF_UNIX SOCK_DGRAM socket at DATA/run/notify.sock. A datagram is
 * the decimal mask of enum hub_change and nothing else; the server reads
 * it in the main loop and re-reads the store. Datagrams keep message
 * boundaries, need no connection state, and a sender whose receiver is
 * gone just gets ECONNREFUSED / ENOENT, which is "no server running".
 *
 * Who may send: the socket is mode 0600 inside a 0700 directory, so only
 * the server's own user (and root) can reach it. A notice carries no
 * authority anyway: the worst a forged one can do is a re-read.
 */
#include "common/notify.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"

#define NOTIFY_DIR "run"
#define NOTIFY_SOCK "run/notify.sock"
#define NOTIFY_ASK_SOCK "run/ask.sock"
#define NOTIFY_MSG_MAX 16 /* "4294967295" and room: longer is not ours */
/* Datagrams read per wakeup, so a flood cannot hold the loop. */
#define NOTIFY_BURST 64

struct notify {
    struct loop *loop;
    int fd;
    struct sockaddr_un addr;
    dev_t dev; /* of the socket file we bound, so close removes only it */
    ino_t ino;
    notify_fn fn;
    notify_ask_fn ask; /* the ask socket's (ask.sock); fn is NULL then */
    void *arg;
    struct notify_reply *replies; /* the ask socket's, not answered yet */
    unsigned pending;             /* of them */
    bool full_said;               /* "too many questions" logged */
};

/* A question's way back: the asker's address, copied (the question's
 * buffer is reused for the next one), until notify_answer(). */
struct notify_reply {
    struct notify *n; /* NULL once n was closed: the answer is dropped */
    struct sockaddr_un to;
    socklen_t tolen;
    struct notify_reply *prev, *next; /* in n->replies */
};

static int notify_addr(const char *data_dir, const char *rel,
                       struct sockaddr_un *sa)
{
    int n;

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (data_dir == NULL || data_dir[0] == '\0') {
        return ERR_INVALID;
    }
    n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", data_dir, rel);
    if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
        return ERR_TOO_LONG;
    }
    return ERR_OK;
}

int notify_send(const char *data_dir, unsigned what)
{
    bool delivered;

    return notify_tell(data_dir, what, &delivered);
}

int notify_tell(const char *data_dir, unsigned what, bool *delivered)
{
    struct sockaddr_un sa;
    char msg[NOTIFY_MSG_MAX];
    int fd, n, r;

    *delivered = false;
    if ((r = notify_addr(data_dir, NOTIFY_SOCK, &sa)) != ERR_OK) {
        return r;
    }
    n = snprintf(msg, sizeof(msg), "%u", what);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return ERR_IO;
    }
    r = ERR_OK;
    if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
               sizeof(sa)) < 0) {
        switch (errno) {
        case ENOENT:       /* no server has run here */
        case ECONNREFUSED: /* a stale socket: the server is gone */
        case ENOTDIR:
        case EAGAIN: /* its queue is full: it has re-reads pending */
            break;
        default:
            r = ERR_IO;
            break;
        }
    } else {
        *delivered = true;
    }
    close(fd);
    return r;
}

/* Parses one datagram: 1-10 decimal digits, no sign, no space. */
static bool notify_parse(const char *buf, size_t len, unsigned *what)
{
    unsigned long v = 0;
    size_t i;

    if (len == 0 || len > 10) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (buf[i] < '0' || buf[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned long)(buf[i] - '0');
    }
    if (v > 0xffffffffUL) {
        return false;
    }
    *what = (unsigned)v;
    return true;
}

static void notify_on_read(struct loop *l, int fd, int events, void *arg)
{
    struct notify *n = arg;
    char buf[NOTIFY_MSG_MAX];
    unsigned what;
    ssize_t got;
    int i;

    for (i = 0; i < NOTIFY_BURST; i++) {
        got = recv(fd, buf, sizeof(buf), MSG_TRUNC);
        if (got < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                log_warn("notify: recv: %s", strerror(errno));
            }
            return;
        }
        if ((size_t)got > sizeof(buf) ||
            !notify_parse(buf, (size_t)got, &what)) {
            log_debug("notify: ignored a malformed notice of %zd bytes", got);
            continue;
        }
        n->fn(n->arg, what);
    }
}

/* DATA/run: made 0700 if missing; an existing one must be a directory
 * and is made 0700 (it is ours). */
static int notify_make_dir(const char *data_dir)
{
    struct sockaddr_un dir;
    struct stat sb;
    int r;

    if ((r = notify_addr(data_dir, NOTIFY_DIR, &dir)) != ERR_OK) {
        return r;
    }
    if (mkdir(dir.sun_path, 0700) != 0 && errno != EEXIST) {
        log_error("notify: cannot create %s: %s", dir.sun_path,
                  strerror(errno));
        return ERR_IO;
    }
    if (lstat(dir.sun_path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        log_error("notify: %s is not a directory", dir.sun_path);
        return ERR_IO;
    }
    if ((sb.st_mode & 0777) != 0700 && chmod(dir.sun_path, 0700) != 0) {
        log_error("notify: cannot chmod %s: %s", dir.sun_path, strerror(errno));
        return ERR_IO;
    }
    return ERR_OK;
}

static void notify_on_ask(struct loop *l, int fd, int events, void *arg);

static int notify_bind(struct notify **out, struct loop *loop,
                       const char *data_dir, const char *rel, notify_fn fn,
                       notify_ask_fn ask, void *arg)
{
    struct notify *n = NULL;
    struct stat sb;
    int r, probe = -1;

    *out = NULL;
    if (loop == NULL || (fn == NULL) == (ask == NULL)) {
        return ERR_INVALID;
    }
    if ((n = calloc(1, sizeof(*n))) == NULL) {
        return ERR_NOMEM;
    }
    n->fd = -1;
    n->loop = loop;
    n->fn = fn;
    n->ask = ask;
    n->arg = arg;
    if ((r = notify_addr(data_dir, rel, &n->addr)) != ERR_OK ||
        (r = notify_make_dir(data_dir)) != ERR_OK) {
        if (r == ERR_TOO_LONG) {
            log_error("notify: the data directory's path is too long for a "
                      "unix socket");
        }
        goto fail;
    }
    /* A socket someone still reads means a second server on this data
     * directory; one nobody reads is left from a crash and replaced. */
    if (lstat(n->addr.sun_path, &sb) == 0) {
        probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 &&
            connect(probe, (struct sockaddr *)&n->addr, sizeof(n->addr)) == 0) {
            log_error("notify: %s is in use by another server",
                      n->addr.sun_path);
            r = ERR_EXISTS;
            goto fail;
        }
        if (unlink(n->addr.sun_path) != 0) {
            log_error("notify: cannot remove the stale %s: %s",
                      n->addr.sun_path, strerror(errno));
            r = ERR_IO;
            goto fail;
        }
    }
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (n->fd < 0 ||
        bind(n->fd, (struct sockaddr *)&n->addr, sizeof(n->addr)) != 0) {
        log_error("notify: cannot bind %s: %s", n->addr.sun_path,
                  strerror(errno));
        r = ERR_IO;
        goto fail;
    }
    if (chmod(n->addr.sun_path, 0600) != 0 ||
        stat(n->addr.sun_path, &sb) != 0) {
        log_error("notify: cannot chmod %s: %s", n->addr.sun_path,
                  strerror(errno));
        (void)unlink(n->addr.sun_path);
        r = ERR_IO;
        goto fail;
    }
    n->dev = sb.st_dev;
    n->ino = sb.st_ino;
    if ((r = loop_add_fd(loop, n->fd, LOOP_READ,
                         fn != NULL ? notify_on_read : notify_on_ask, n)) !=
        ERR_OK) {
        (void)unlink(n->addr.sun_path);
        goto fail;
    }
    if (probe >= 0) {
        close(probe);
    }
    *out = n;
    return ERR_OK;
fail:
    if (probe >= 0) {
        close(probe);
    }
    if (n->fd >= 0) {
        close(n->fd);
    }
    free(n);
    return r;
}

int notify_listen(struct notify **out, struct loop *loop, const char *data_dir,
                  notify_fn fn, void *arg)
{
    return notify_bind(out, loop, data_dir, NOTIFY_SOCK, fn, NULL, arg);
}

int notify_listen_ask(struct notify **out, struct loop *loop,
                      const char *data_dir, notify_ask_fn ask, void *arg)
{
    return notify_bind(out, loop, data_dir, NOTIFY_ASK_SOCK, NULL, ask, arg);
}

/* A question on ask.sock: given to the owner with a reply to the
 * sender's (autobound) address, answered now or later (notify_answer).
 * The socket's mode is the whole of the check (see notify.h). */
static void notify_on_ask(struct loop *l, int fd, int events, void *arg)
{
    struct notify *n = arg;
    struct notify_reply *r;
    struct sockaddr_un from;
    socklen_t fromlen;
    char *q = NULL;
    ssize_t got;
    int i;

    if ((q = malloc(NOTIFY_ASK_MAX + 1)) == NULL) {
        return;
    }
    for (i = 0; i < NOTIFY_BURST; i++) {
        fromlen = sizeof(from);
        got = recvfrom(fd, q, NOTIFY_ASK_MAX + 1, MSG_TRUNC,
                       (struct sockaddr *)&from, &fromlen);
        if (got < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                log_warn("notify: recv: %s", strerror(errno));
            }
            break;
        }
        if ((size_t)got > NOTIFY_ASK_MAX || fromlen <= sizeof(sa_family_t) ||
            fromlen > sizeof(from)) {
            /* too long, or from an unbound socket: no way to answer */
            log_debug("notify: ignored a question of %zd bytes", got);
            sodium_memzero(q, NOTIFY_ASK_MAX + 1);
            continue;
        }
        if (n->pending >= NOTIFY_ASK_PENDING ||
            (r = calloc(1, sizeof(*r))) == NULL) {
            if (!n->full_said) {
                log_warn("notify: %u questions wait for their answers; "
                         "more are dropped unanswered",
                         n->pending);
                n->full_said = true;
            }
            sodium_memzero(q, (size_t)got);
            continue;
        }
        r->n = n;
        memcpy(&r->to, &from, fromlen);
        r->tolen = fromlen;
        r->next = n->replies;
        if (n->replies != NULL) {
            n->replies->prev = r;
        }
        n->replies = r;
        n->pending++;
        q[got] = '\0';
        n->ask(n->arg, q, (size_t)got, r); /* r is the owner's now */
        sodium_memzero(q, (size_t)got);
    }
    free(q);
}

void notify_answer(struct notify_reply *r, const char *a, size_t alen)
{
    struct notify *n;

    if (r == NULL) {
        return;
    }
    if ((n = r->n) != NULL) {
        if (r->prev != NULL) {
            r->prev->next = r->next;
        } else {
            n->replies = r->next;
        }
        if (r->next != NULL) {
            r->next->prev = r->prev;
        }
        n->pending--;
        n->full_said = false;
        /* An asker that gave up has unbound its address: ECONNREFUSED,
         * the answer is dropped. */
        if (alen > 0 && alen <= NOTIFY_ASK_MAX &&
            sendto(n->fd, a, alen, MSG_NOSIGNAL | MSG_DONTWAIT,
                   (struct sockaddr *)&r->to, r->tolen) < 0) {
            log_debug("notify: cannot answer: %s", strerror(errno));
        }
    }
    free(r);
}

unsigned notify_ask_pending(const struct notify *n)
{
    return n != NULL ? n->pending : 0;
}

int notify_ask(const char *data_dir, const char *q, size_t qlen, char *a,
               size_t alen, size_t *got, bool *delivered, int timeout_ms)
{
    struct sockaddr_un sa;
    sa_family_t fam = AF_UNIX;
    struct pollfd pfd;
    ssize_t n;
    int fd, r;

    *delivered = false;
    *got = 0;
    if (qlen > NOTIFY_ASK_MAX) {
        return ERR_TOO_LONG;
    }
    if ((r = notify_addr(data_dir, NOTIFY_ASK_SOCK, &sa)) != ERR_OK) {
        return r;
    }
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return ERR_IO;
    }
    /* autobind: an abstract address of our own, for the answer */
    if (bind(fd, (struct sockaddr *)&fam, sizeof(fam)) != 0) {
        close(fd);
        return ERR_IO;
    }
    if (sendto(fd, q, qlen, MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof(sa)) <
        0) {
        r = (errno == ENOENT || errno == ECONNREFUSED || errno == ENOTDIR)
                ? ERR_OK
                : ERR_IO;
        close(fd);
        return r;
    }
    *delivered = true;
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (poll(&pfd, 1, timeout_ms) != 1) {
        close(fd);
        return ERR_TIMEOUT;
    }
    n = recv(fd, a, alen, MSG_TRUNC);
    close(fd);
    if (n < 0 || (size_t)n > alen) {
        return ERR_IO;
    }
    *got = (size_t)n;
    return ERR_OK;
}

void notify_close(struct notify *n)
{
    struct notify_reply *r, *next;
    struct stat sb;

    if (n == NULL) {
        return;
    }
    /* replies still out stay their holders' (notify_answer frees them) */
    for (r = n->replies; r != NULL; r = next) {
        next = r->next;
        r->n = NULL;
        r->prev = r->next = NULL;
    }
    loop_del_fd(n->loop, n->fd);
    close(n->fd);
    /* Only our own socket: a later server may have replaced it. */
    if (stat(n->addr.sun_path, &sb) == 0 && sb.st_dev == n->dev &&
        sb.st_ino == n->ino) {
        (void)unlink(n->addr.sun_path);
    }
    free(n);
}

/* --- streams --- */

int notify_stream_listen(const char *data_dir, const char *name, int *fd)
{
    struct sockaddr_un sa;
    char rel[64];
    int r, probe, s;

    *fd = -1;
    snprintf(rel, sizeof(rel), "%s/%s", NOTIFY_DIR, name);
    if ((r = notify_addr(data_dir, rel, &sa)) != ERR_OK ||
        (r = notify_make_dir(data_dir)) != ERR_OK) {
        return r;
    }
    /* one that answers belongs to another server; one that does not is
     * left from a crash */
    if ((probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0) {
        if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            log_error("notify: %s is in use by another server", sa.sun_path);
            return ERR_EXISTS;
        }
        close(probe);
    }
    if (unlink(sa.sun_path) != 0 && errno != ENOENT) {
        log_error("notify: cannot remove the stale %s: %s", sa.sun_path,
                  strerror(errno));
        return ERR_IO;
    }
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        chmod(sa.sun_path, 0600) != 0 || listen(s, 16) != 0) {
        log_error("notify: cannot listen on %s: %s", sa.sun_path,
                  strerror(errno));
        if (s >= 0) {
            close(s);
            (void)unlink(sa.sun_path);
        }
        return ERR_IO;
    }
    *fd = s;
    return ERR_OK;
}

void notify_stream_close(const char *data_dir, const char *name, int fd)
{
    struct sockaddr_un sa;
    char rel[64];

    if (fd < 0) {
        return;
    }
    close(fd);
    snprintf(rel, sizeof(rel), "%s/%s", NOTIFY_DIR, name);
    if (notify_addr(data_dir, rel, &sa) == ERR_OK) {
        (void)unlink(sa.sun_path);
    }
}

int notify_stream_connect(const char *data_dir, const char *name, int *fd)
{
    struct sockaddr_un sa;
    char rel[64];
    int r, s;

    *fd = -1;
    snprintf(rel, sizeof(rel), "%s/%s", NOTIFY_DIR, name);
    if ((r = notify_addr(data_dir, rel, &sa)) != ERR_OK) {
        return r;
    }
    if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        return ERR_IO;
    }
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(s);
        return ERR_NOT_FOUND;
    }
    *fd = s;
    return ERR_OK;
}
