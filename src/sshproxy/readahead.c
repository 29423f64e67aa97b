/*
 * Larger socket reads under libssh: see readahead.h.
 *
 * One process, one thread (a session child): plain static state.
 */
#include "sshproxy/readahead.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
int __real_poll(struct pollfd *fds, nfds_t nfds, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t nfds, int timeout);
int __real_close(int fd);
int __wrap_close(int fd);

struct ra {
    int fd; /* -1: free slot */
    uint8_t *buf;
    size_t off, len; /* buffered bytes are buf[off..len) */
};

static struct ra ras[READAHEAD_MAX_FDS] = {
    {.fd = -1}, {.fd = -1}, {.fd = -1}, {.fd = -1}};
static int ra_count;    /* registered descriptors */
static int ra_buffered; /* of which hold bytes */

static struct ra *ra_find(int fd)
{
    if (ra_count == 0 || fd < 0) {
        return NULL;
    }
    for (int i = 0; i < READAHEAD_MAX_FDS; i++) {
        if (ras[i].fd == fd) {
            return &ras[i];
        }
    }
    return NULL;
}

bool readahead_register(int fd)
{
    struct ra *r = ra_find(fd);

    if (r != NULL) {
        return true;
    }
    for (int i = 0; i < READAHEAD_MAX_FDS; i++) {
        if (ras[i].fd < 0) {
            /* Untouched pages cost no memory until bytes arrive. */
            if ((ras[i].buf = malloc(READAHEAD_SIZE)) == NULL) {
                return false;
            }
            ras[i].fd = fd;
            ras[i].off = ras[i].len = 0;
            ra_count++;
            return true;
        }
    }
    return false;
}

void readahead_forget(int fd)
{
    struct ra *r = ra_find(fd);

    if (r == NULL) {
        return;
    }
    if (r->len > r->off) {
        ra_buffered--;
    }
    free(r->buf);
    r->buf = NULL;
    r->fd = -1;
    r->off = r->len = 0;
    ra_count--;
}

/* Copies up to len buffered bytes of r into buf. */
static size_t ra_take(struct ra *r, void *buf, size_t len, bool peek)
{
    size_t n = r->len - r->off;

    if (n > len) {
        n = len;
    }
    memcpy(buf, r->buf + r->off, n);
    if (!peek) {
        r->off += n;
        if (r->off == r->len) {
            r->off = r->len = 0;
            ra_buffered--;
        }
    }
    return n;
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
    struct ra *r = ra_find(fd);
    struct iovec iov[2];
    struct msghdr msg;
    ssize_t n;

    if (r == NULL || len == 0) {
        return __real_recv(fd, buf, len, flags);
    }
    if (r->len > r->off) {
        return (ssize_t)ra_take(r, buf, len, (flags & MSG_PEEK) != 0);
    }
    if ((flags & ~MSG_DONTWAIT) != 0 || len >= READAHEAD_SIZE) {
        return __real_recv(fd, buf, len, flags);
    }
    /* The caller's buffer first (no copy for the common small read),
     * then ours: one system call. */
    iov[0].iov_base = buf;
    iov[0].iov_len = len;
    iov[1].iov_base = r->buf;
    iov[1].iov_len = READAHEAD_SIZE;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    n = recvmsg(fd, &msg, flags);
    if (n > (ssize_t)len) {
        r->off = 0;
        r->len = (size_t)n - len;
        ra_buffered++;
        n = (ssize_t)len;
    }
    return n;
}

int __wrap_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    int ready = 0;

    if (ra_buffered > 0) {
        for (nfds_t i = 0; i < nfds; i++) {
            struct ra *r = ra_find(fds[i].fd);

            if (r != NULL && r->len > r->off && (fds[i].events & POLLIN)) {
                ready++;
            }
        }
    }
    if (ready == 0) {
        return __real_poll(fds, nfds, timeout);
    }
    /* Bytes wait in our buffers: readable now, as the kernel would have
     * said. Other events are seen at the next poll, once these are read
     * (at most READAHEAD_SIZE / 4 KiB rounds later). */
    for (nfds_t i = 0; i < nfds; i++) {
        struct ra *r = ra_find(fds[i].fd);

        fds[i].revents =
            (r != NULL && r->len > r->off && (fds[i].events & POLLIN)) ? POLLIN
                                                                       : 0;
    }
    return ready;
}

int __wrap_close(int fd)
{
    readahead_forget(fd);
    return __real_close(fd);
}
