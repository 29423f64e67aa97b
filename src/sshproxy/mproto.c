/*
 * Monitor protocol transport; see mproto.h. One sendmsg/recvmsg per
 * message on a SOCK_SEQPACKET socket.
 */
#include "sshproxy/mproto.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"

int mproto_send(int sock, uint8_t type, const struct buf *payload, int fd,
                int nonblock)
{
    return mproto_send_fds(sock, type, payload, &fd, fd >= 0 ? 1 : 0, nonblock);
}

int mproto_send_fds(int sock, uint8_t type, const struct buf *payload,
                    const int *fds, size_t nfds, int nonblock)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * MPROTO_MAX_FDS)];
    } cm;
    struct iovec iov[2];
    struct msghdr msg;
    struct cmsghdr *c;
    size_t plen = payload ? buf_avail(payload) : 0;
    ssize_t n;

    if (plen + 1 > MPROTO_MAX || nfds > MPROTO_MAX_FDS) {
        return ERR_TOO_LONG;
    }
    memset(&msg, 0, sizeof(msg));
    iov[0].iov_base = &type;
    iov[0].iov_len = 1;
    iov[1].iov_base = (void *)(uintptr_t)(payload ? buf_ptr(payload) : NULL);
    iov[1].iov_len = plen;
    msg.msg_iov = iov;
    msg.msg_iovlen = plen ? 2 : 1;
    if (nfds > 0) {
        memset(&cm, 0, sizeof(cm));
        msg.msg_control = cm.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL | (nonblock ? MSG_DONTWAIT : 0));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return ERR_IO;
    }
    return (size_t)n == plen + 1 ? ERR_OK : ERR_IO;
}

int mproto_recv(int sock, uint8_t *type, struct buf *b, int *fd)
{
    size_t n = 0;

    return mproto_recv_fds(sock, type, b, fd, fd != NULL ? 1 : 0, &n);
}

int mproto_recv_fds(int sock, uint8_t *type, struct buf *b, int *fds,
                    size_t maxfds, size_t *nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 4)];
    } cm;
    uint8_t data[MPROTO_MAX];
    struct iovec iov;
    struct msghdr msg;
    struct cmsghdr *c;
    int got[MPROTO_MAX_FDS];
    size_t ngot = 0;
    int r = ERR_OK;
    ssize_t n;

    *type = 0;
    *nfds = 0;
    for (size_t i = 0; i < maxfds; i++) {
        fds[i] = -1;
    }
    buf_reset(b);
    memset(&msg, 0, sizeof(msg));
    iov.iov_base = data;
    iov.iov_len = sizeof(data);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cm.buf;
    msg.msg_controllen = sizeof(cm.buf);
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
        errno = 0;
        return ERR_IO;
    }
    if (n < 0) {
        return ERR_IO;
    }
    /* Take every passed descriptor first, so none leaks on any error. */
    for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < cnt; i++) {
                int x;
                memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (ngot < maxfds && ngot < MPROTO_MAX_FDS) {
                    got[ngot++] = x;
                } else {
                    close(x);
                }
            }
        }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
        r = ERR_PROTO;
        goto out;
    }
    *type = data[0];
    if ((r = buf_put(b, data + 1, (size_t)n - 1)) != ERR_OK) {
        goto out;
    }
out:
    if (r != ERR_OK) {
        while (ngot > 0) {
            close(got[--ngot]);
        }
        *type = 0;
        buf_reset(b);
    }
    for (size_t i = 0; i < ngot; i++) {
        fds[i] = got[i];
    }
    *nfds = ngot;
    sodium_memzero(data, (size_t)n);
    return r;
}
