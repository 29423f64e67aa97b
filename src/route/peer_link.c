/*
 * A link through a peer node's CONNECT proxy; see peer_link.h.
 *
 * States: TLS handshake (skipped for plain HTTP) -> send the request ->
 * read the answer's head (and, for a refusal, its short body) -> either
 * a relay (tlspump) or the end. One deadline covers all of it.
 */
#include "route/peer_link.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/tlspump.h"
#include "common/util.h"

#define PL_HEAD_MAX 8192
#define PL_BODY_MAX 512
#define PL_TOKEN_MAX 4096

enum pl_state { PL_HANDSHAKE, PL_SEND, PL_HEAD, PL_BODY, PL_RELAY };

struct peer_links {
    struct loop *loop;
    SSL_CTX *tls;
    struct peer_link *all;
    struct peer_link *starting; /* in peer_link_start, until it returns */
};

struct peer_link {
    struct peer_links *ls;
    struct peer_link *next, **pprev;
    enum pl_state state;
    int fd;
    SSL *ssl;
    bool rd_wants_wr, wr_wants_rd;
    uint64_t timer;
    peer_link_fn fn;
    void *arg;
    char peer[128];
    char fingerprint[128];
    char req[PL_TOKEN_MAX + 600];
    size_t reqlen, reqoff;
    char head[PL_HEAD_MAX + PL_BODY_MAX + 1];
    size_t headlen, hl; /* bytes read; the head's length once known */
    bool check;         /* OPTIONS *: no relay after the 200 */
    int status;
    size_t body_want;
    char server[128];
    struct tlspump *pump;
};

void peer_link_cert_fp(const unsigned char *der, int len, char *out,
                       size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    size_t o;

    if (outlen < 8 + 3 * 32 ||
        EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        if (outlen > 0) {
            out[0] = '\0';
        }
        return;
    }
    memcpy(out, "SHA256:", 7);
    o = 7;
    for (i = 0; i < mdlen && o + 3 < outlen; i++) {
        o += (size_t)snprintf(out + o, outlen - o, i == 0 ? "%02X" : ":%02X",
                              md[i]);
    }
}

struct peer_links *peer_links_new(struct loop *l)
{
    struct peer_links *ls = calloc(1, sizeof(*ls));

    if (ls == NULL) {
        return NULL;
    }
    ls->loop = l;
    /* The certificate is checked by its pinned fingerprint, not a CA: a
     * peer's certificate is its own self-signed one (init). */
    ls->tls = SSL_CTX_new(TLS_client_method());
    if (ls->tls == NULL ||
        SSL_CTX_set_min_proto_version(ls->tls, TLS1_2_VERSION) != 1) {
        SSL_CTX_free(ls->tls);
        free(ls);
        return NULL;
    }
    SSL_CTX_set_verify(ls->tls, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ls->tls, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ls;
}

static void pl_free(struct peer_link *pl)
{
    if (pl->ls->starting == pl) {
        pl->ls->starting = NULL;
    }
    if (pl->timer != 0) {
        loop_del_timer(pl->ls->loop, pl->timer);
    }
    if (pl->fd >= 0) {
        loop_del_fd(pl->ls->loop, pl->fd);
        if (pl->ssl != NULL) {
            SSL_free(pl->ssl);
        }
        close(pl->fd);
    }
    tlspump_free(pl->pump);
    if (pl->pprev != NULL) {
        *pl->pprev = pl->next;
        if (pl->next != NULL) {
            pl->next->pprev = pl->pprev;
        }
    }
    sodium_memzero(pl->req, sizeof(pl->req));
    free(pl);
}

void peer_links_free(struct peer_links *ls)
{
    if (ls == NULL) {
        return;
    }
    while (ls->all != NULL) {
        pl_free(ls->all);
    }
    SSL_CTX_free(ls->tls);
    free(ls);
}

/* Ends the exchange: tells the owner (once) and frees the link unless it
 * became a relay. */
static void pl_end(struct peer_link *pl, int fd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pl_end(struct peer_link *pl, int fd, const char *fmt, ...)
{
    struct peer_link_result res;
    peer_link_fn fn = pl->fn;
    void *arg = pl->arg;
    char why[600];
    va_list ap;

    why[0] = '\0';
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        util_strip_ctl(why);
    }
    memset(&res, 0, sizeof(res));
    res.fd = fd;
    res.status = pl->status;
    res.why = fmt != NULL ? why : NULL;
    res.server = pl->server;
    pl->fn = NULL;
    if (pl->state != PL_RELAY) {
        /* the owner may start another link at once: free ours first, but
         * keep what fn is told */
        char server[sizeof(pl->server)];
        snprintf(server, sizeof(server), "%s", pl->server);
        res.server = server;
        pl_free(pl);
        fn(arg, &res);
        return;
    }
    fn(arg, &res);
}

static void pl_on_timeout(struct loop *l, void *arg)
{
    struct peer_link *pl = arg;

    (void)l;
    pl->timer = 0;
    pl_end(pl, -1, "peer %s: no answer from its proxy in time", pl->peer);
}

static void pl_on_pump_done(void *arg, const char *why)
{
    struct peer_link *pl = arg;

    if (why != NULL) {
        log_info("peer %s: link ended: %s", pl->peer, why);
    }
    pl_free(pl);
}

/* 200: the rest of the stream is the destination's. */
static void pl_relay(struct peer_link *pl)
{
    int sv[2];
    size_t extra = pl->headlen - pl->hl;
    int fd = pl->fd;
    SSL *ssl = pl->ssl;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0) {
        pl_end(pl, -1, "peer %s: socketpair: %s", pl->peer, strerror(errno));
        return;
    }
    loop_del_fd(pl->ls->loop, fd);
    if (pl->timer != 0) {
        loop_del_timer(pl->ls->loop, pl->timer);
        pl->timer = 0;
    }
    pl->fd = -1;
    pl->ssl = NULL;
    pl->state = PL_RELAY;
    pl->pump =
        tlspump_new(pl->ls->loop, fd, ssl, sv[0], NULL, pl_on_pump_done, pl);
    if (pl->pump == NULL ||
        (extra > 0 &&
         tlspump_send(pl->pump, 1, pl->head + pl->hl, extra) != ERR_OK)) {
        close(sv[1]);
        pl->state = PL_HEAD; /* not a relay: pl_end frees it */
        pl_end(pl, -1, "peer %s: out of resources", pl->peer);
        return;
    }
    sodium_memzero(pl->req, sizeof(pl->req));
    pl_end(pl, sv[1], NULL);
    tlspump_start(pl->pump); /* may end (and free pl) at once */
}

/* > 0 bytes, 0 nothing now, -1 the end, -2 an error */
static ssize_t pl_read(struct peer_link *pl, void *buf, size_t n)
{
    ssize_t r;
    int e;

    if (pl->ssl == NULL) {
        r = recv(pl->fd, buf, n, 0);
        if (r < 0) {
            return errno == EAGAIN || errno == EINTR ? 0 : -2;
        }
        return r == 0 ? -1 : r;
    }
    pl->rd_wants_wr = false;
    ERR_clear_error();
    r = SSL_read(pl->ssl, buf, (int)n);
    if (r > 0) {
        return r;
    }
    e = SSL_get_error(pl->ssl, (int)r);
    if (e == SSL_ERROR_WANT_READ) {
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        pl->rd_wants_wr = true;
        return 0;
    }
    return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ? -1 : -2;
}

static ssize_t pl_write(struct peer_link *pl, const void *buf, size_t n)
{
    ssize_t r;
    int e;

    if (pl->ssl == NULL) {
        r = send(pl->fd, buf, n, MSG_NOSIGNAL);
        if (r < 0) {
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        }
        return r;
    }
    pl->wr_wants_rd = false;
    ERR_clear_error();
    r = SSL_write(pl->ssl, buf, (int)n);
    if (r > 0) {
        return r;
    }
    e = SSL_get_error(pl->ssl, (int)r);
    if (e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    if (e == SSL_ERROR_WANT_READ) {
        pl->wr_wants_rd = true;
        return 0;
    }
    return -1;
}

/* The answer's head is complete: status, Server, Content-Length. */
void peer_link_parse_answer(const char *head, size_t hl, int *status,
                            char *server, size_t serverlen, size_t *body_want)
{
    const char *p = head, *end = head + hl, *eol;
    size_t n;

    *status = 0;
    *body_want = 0;
    if (serverlen > 0) {
        server[0] = '\0';
    }
    /* a status is 100..599; anything else is not an HTTP answer */
    if (hl > 12 && memcmp(p, "HTTP/1.", 7) == 0 && p[8] == ' ' && p[9] >= '1' &&
        p[9] <= '5' && isdigit((unsigned char)p[10]) &&
        isdigit((unsigned char)p[11])) {
        *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    }
    while (p < end && (eol = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n = (size_t)(eol - p);
        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
        if (n > 7 && strncasecmp(p, "Server:", 7) == 0 && serverlen > 0) {
            const char *v = p + 7;
            size_t vn = n - 7;
            while (vn > 0 && *v == ' ') {
                v++;
                vn--;
            }
            snprintf(server, serverlen, "%.*s",
                     (int)(vn < serverlen ? vn : serverlen - 1), v);
            util_strip_ctl(server); /* shown to users (peer check) */
        } else if (n > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
            const char *v = p + 15;
            size_t want = 0;
            while (v < p + n && *v == ' ') {
                v++;
            }
            for (;
                 v < p + n && isdigit((unsigned char)*v) && want <= PL_BODY_MAX;
                 v++) {
                want = want * 10 + (size_t)(*v - '0');
            }
            *body_want = want;
        }
        p = eol + 1;
    }
    if (*body_want > PL_BODY_MAX) {
        *body_want = PL_BODY_MAX;
    }
}

/* A refusal: its status and the first line of its body. */
static void pl_refused(struct peer_link *pl)
{
    const char *body = pl->head + pl->hl;
    size_t n = pl->headlen - pl->hl, i;

    for (i = 0; i < n && body[i] != '\n' && body[i] != '\r'; i++) {
    }
    if (pl->status == 0) {
        pl_end(pl, -1, "peer %s: its proxy did not answer in HTTP", pl->peer);
    } else if (i == 0) {
        pl_end(pl, -1, "peer %s refused: %d", pl->peer, pl->status);
    } else {
        pl_end(pl, -1, "peer %s refused: %d %.*s", pl->peer, pl->status, (int)i,
               body);
    }
}

static size_t pl_head_len(const char *b, size_t n)
{
    size_t i;

    for (i = 0; i + 3 < n; i++) {
        if (b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '\r' &&
            b[i + 3] == '\n') {
            return i + 4;
        }
    }
    return 0;
}

static void pl_step(struct peer_link *pl);

static void pl_on_fd(struct loop *l, int fd, int events, void *arg)
{
    (void)l;
    (void)fd;
    (void)events;
    pl_step(arg);
}

static bool pl_check_cert(struct peer_link *pl)
{
    X509 *cert = SSL_get1_peer_certificate(pl->ssl);
    unsigned char *der = NULL;
    char fp[128];
    int len;

    if (cert == NULL) {
        pl_end(pl, -1, "peer %s: its proxy sent no certificate", pl->peer);
        return false;
    }
    len = i2d_X509(cert, &der);
    X509_free(cert);
    if (len <= 0) {
        pl_end(pl, -1, "peer %s: unreadable certificate", pl->peer);
        return false;
    }
    peer_link_cert_fp(der, len, fp, sizeof(fp));
    OPENSSL_free(der);
    if (strcasecmp(fp, pl->fingerprint) != 0) {
        pl_end(pl, -1,
               "peer %s: the proxy's TLS certificate is %s, not the pinned "
               "%s",
               pl->peer, fp, pl->fingerprint);
        return false;
    }
    return true;
}

static void pl_step(struct peer_link *pl)
{
    ssize_t n;
    int r, e, ev;

    for (;;) {
        switch (pl->state) {
        case PL_HANDSHAKE:
            ERR_clear_error();
            r = SSL_connect(pl->ssl);
            if (r != 1) {
                e = SSL_get_error(pl->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    (void)loop_mod_fd(pl->ls->loop, pl->fd,
                                      e == SSL_ERROR_WANT_READ ? LOOP_READ
                                                               : LOOP_WRITE);
                    return;
                }
                pl_end(pl, -1,
                       "peer %s: TLS handshake with its proxy failed (is it "
                       "plain HTTP?)",
                       pl->peer);
                return;
            }
            if (!pl_check_cert(pl)) {
                return;
            }
            pl->state = PL_SEND;
            continue;
        case PL_SEND:
            while (pl->reqoff < pl->reqlen) {
                n = pl_write(pl, pl->req + pl->reqoff, pl->reqlen - pl->reqoff);
                if (n < 0) {
                    pl_end(pl, -1, "peer %s: its proxy closed the connection",
                           pl->peer);
                    return;
                }
                if (n == 0) {
                    (void)loop_mod_fd(pl->ls->loop, pl->fd,
                                      pl->wr_wants_rd ? LOOP_READ : LOOP_WRITE);
                    return;
                }
                pl->reqoff += (size_t)n;
            }
            sodium_memzero(pl->req, sizeof(pl->req));
            pl->state = PL_HEAD;
            continue;
        case PL_HEAD:
        case PL_BODY:
            n = pl_read(pl, pl->head + pl->headlen,
                        sizeof(pl->head) - 1 - pl->headlen);
            if (n == 0) {
                ev = pl->rd_wants_wr ? LOOP_WRITE : LOOP_READ;
                (void)loop_mod_fd(pl->ls->loop, pl->fd, ev);
                return;
            }
            if (n < 0) {
                if (pl->state == PL_BODY) {
                    pl_refused(pl);
                } else {
                    pl_end(pl, -1,
                           "peer %s: its proxy closed the connection "
                           "without an answer",
                           pl->peer);
                }
                return;
            }
            pl->headlen += (size_t)n;
            pl->head[pl->headlen] = '\0';
            if (pl->state == PL_HEAD) {
                if ((pl->hl = pl_head_len(pl->head, pl->headlen)) == 0) {
                    if (pl->headlen >= PL_HEAD_MAX) {
                        pl_end(pl, -1,
                               "peer %s: the proxy's answer is too long",
                               pl->peer);
                        return;
                    }
                    continue;
                }
                peer_link_parse_answer(pl->head, pl->hl, &pl->status,
                                       pl->server, sizeof(pl->server),
                                       &pl->body_want);
                if (pl->status == 200) {
                    goto answered;
                }
                pl->state = PL_BODY;
            }
            if (pl->headlen - pl->hl >= pl->body_want ||
                pl->headlen >= sizeof(pl->head) - 1) {
                pl_refused(pl);
                return;
            }
            continue;
        case PL_RELAY:
            return;
        }
    }
answered:
    if (pl->check) {
        pl_end(pl, -1, NULL);
        return;
    }
    pl_relay(pl);
}

struct peer_link *peer_link_start(struct peer_links *ls, int fd,
                                  const struct peer_link_opts *o,
                                  peer_link_fn fn, void *arg)
{
    struct peer_link *pl = calloc(1, sizeof(*pl));
    struct peer_link_result res;
    int n;

    if (pl == NULL) {
        close(fd);
        memset(&res, 0, sizeof(res));
        res.fd = -1;
        res.why = "out of memory";
        res.server = "";
        fn(arg, &res);
        return NULL;
    }
    pl->ls = ls;
    pl->fd = fd;
    pl->fn = fn;
    pl->arg = arg;
    pl->check = o->dest_host == NULL;
    snprintf(pl->peer, sizeof(pl->peer), "%s", o->peer);
    snprintf(pl->fingerprint, sizeof(pl->fingerprint), "%s",
             o->fingerprint != NULL ? o->fingerprint : "");
    pl->next = ls->all;
    if (ls->all != NULL) {
        ls->all->pprev = &pl->next;
    }
    pl->pprev = &ls->all;
    ls->all = pl;
    if (pl->check) {
        n = snprintf(pl->req, sizeof(pl->req),
                     "OPTIONS * HTTP/1.1\r\nHost: %s\r\n"
                     "Proxy-Authorization: Bearer %s\r\n\r\n",
                     o->sni != NULL ? o->sni : "peer", o->token);
    } else {
        bool v6 = strchr(o->dest_host, ':') != NULL;

        n = snprintf(pl->req, sizeof(pl->req),
                     "CONNECT %s%s%s:%d HTTP/1.1\r\nHost: %s%s%s:%d\r\n"
                     "%s%s%s%s"
                     "Proxy-Authorization: Bearer %s\r\n\r\n",
                     v6 ? "[" : "", o->dest_host, v6 ? "]" : "", o->dest_port,
                     v6 ? "[" : "", o->dest_host, v6 ? "]" : "", o->dest_port,
                     o->agent != NULL ? "Portcullis-Agent: " : "",
                     o->agent != NULL ? o->agent : "",
                     o->agent != NULL ? "\r\n" : "",
                     o->udp ? "Portcullis-Kind: udp\r\n" : "", o->token);
    }
    if (n < 0 || (size_t)n >= sizeof(pl->req)) {
        pl_end(pl, -1, "peer %s: the token or destination is too long",
               pl->peer);
        return NULL;
    }
    pl->reqlen = (size_t)n;
    if (!o->plain_http && pl->fingerprint[0] == '\0') {
        pl_end(pl, -1, "peer %s: no TLS fingerprint is pinned", pl->peer);
        return NULL;
    }
    if (loop_add_fd(ls->loop, fd, 0, pl_on_fd, pl) != ERR_OK) {
        pl->fd = -1;
        close(fd);
        pl_end(pl, -1, "peer %s: out of resources", pl->peer);
        return NULL;
    }
    pl->timer = loop_add_timer(ls->loop, o->timeout_ms, pl_on_timeout, pl);
    if (o->plain_http) {
        pl->state = PL_SEND;
    } else {
        if ((pl->ssl = SSL_new(ls->tls)) == NULL ||
            SSL_set_fd(pl->ssl, fd) != 1 ||
            (o->sni != NULL && o->sni[0] != '\0' &&
             SSL_set_tlsext_host_name(pl->ssl, o->sni) != 1)) {
            pl_end(pl, -1, "peer %s: cannot start TLS", pl->peer);
            return NULL;
        }
        pl->state = PL_HANDSHAKE;
    }
    /* pl_step may end the link (and free pl, and its callback start
     * another) before it returns: pl_free clears ls->starting */
    {
        struct peer_link *outer = ls->starting;
        bool pending;

        ls->starting = pl;
        pl_step(pl);
        pending = ls->starting == pl && pl->fn != NULL;
        ls->starting = outer;
        return pending ? pl : NULL;
    }
}

void peer_link_cancel(struct peer_link *pl)
{
    if (pl != NULL) {
        pl->fn = NULL;
        pl_free(pl);
    }
}
