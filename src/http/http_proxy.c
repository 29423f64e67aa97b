/*
 * The peer-node HTTP CONNECT proxy; see http_proxy.h.
 *
 * One struct px_conn per client connection, a small state machine driven
 * by the loop:
 *
 *   TLS handshake -> request head -> (resolve) -> connect -> relay
 *
 * Until the head is read a connection holds no relay buffers (8 KiB for
 * the head). Then the client and the destination go to a tlspump
 * (common/tlspump.h: 64 KiB each way, backpressure, end of stream in
 * order), which first writes the 200; a refusal goes to a pump with no
 * destination, which writes the answer and ends.
 */
#include "http/http_proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/srccount.h"
#include "common/tlspump.h"
#include "common/util.h"
#include "http/http_bearer.h"
#include "auth/jwt.h"
#include "hub/hub.h"
#include "hub/udp_relay.h"
#include "store/access.h"
#include "store/audit.h"

#define PX_MAX_ADDRS 8

enum px_state {
    PX_HANDSHAKE,
    PX_HEAD,
    PX_RESOLVING,
    PX_CONNECTING,
    PX_RELAY,   /* c->pump relays (common/tlspump.h) */
    PX_CLOSING, /* an answer waits its delay or is being sent by c->pump */
};

struct px_conn {
    struct http_proxy *px;
    struct px_conn *next, **prev;
    uint64_t id;
    enum px_state state;
    int cfd, tfd; /* -1 once the pump owns them */
    SSL *ssl;     /* NULL for plain HTTP, and once the pump owns it */
    struct tlspump *pump;
    bool rd_wants_wr; /* the TLS read of the head wants the socket writable */
    uint64_t timer;
    char ip[INET6_ADDRSTRLEN];
    struct srccount_src *src; /* its place in px->sources */
    char head[HTTP_PROXY_HEAD_MAX + 1];
    size_t headlen, extra; /* the head, and bytes the client sent after it */
    struct http_proxy_req req;
    char actor[STORE_NAME_MAX + 1];
    char dest[HTTP_PROXY_HOST_MAX + 16]; /* host:port, for messages */
    struct sockaddr_storage addrs[PX_MAX_ADDRS];
    socklen_t addrlens[PX_MAX_ADDRS];
    size_t naddrs, next_addr;
    char conn_ip[INET6_ADDRSTRLEN];
    struct hub_req *hub_req; /* an agent stream the hub is opening */
    struct udp_relay *relay; /* a UDP flow's (Portcullis-Kind: udp) */
    int delayed_status;      /* an authentication refusal waiting its delay */
    char delayed_why[320];
};

struct http_proxy {
    const struct config *cfg;
    struct loop *loop;
    struct store *st;
    struct jwt_key *key;
    struct hub *hub; /* agent streams for other nodes (NULL: none) */
    SSL_CTX *tls;
    int lfd;
    struct http_proxy_dest *allow;
    size_t nallow;
    struct px_conn *conns;
    unsigned nconns;
    struct srccount *sources; /* connections per source (kind 0) */
    uint64_t next_id;
};

static void px_on_client(struct loop *l, int fd, int events, void *arg);

/* --- allow list ----------------------------------------------------------- */

static int px_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int px_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
        util_strip_ctl(why);
    }
    return ERR_CONFIG;
}

static bool px_port(const char *s, size_t len, int *out)
{
    int v = 0;
    size_t i;

    if (len == 0 || len > 5) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535) {
        return false;
    }
    *out = v;
    return true;
}

static int px_allow_entry(const char *e, size_t len, struct http_proxy_dest *d,
                          char *why, size_t whylen)
{
    const char *colon, *ports, *dash;
    size_t alen, plen;
    char addr[64];

    if (e[0] == '[') {
        /* [v6]/bits:ports or [v6]:ports */
        const char *rb = memchr(e, ']', len);
        if (rb == NULL) {
            return px_why(why, whylen, "'%.*s': no closing ']'", (int)len, e);
        }
        colon = memchr(rb, ':', len - (size_t)(rb - e));
        if (colon == NULL) {
            return px_why(why, whylen, "'%.*s': no :PORTS", (int)len, e);
        }
        /* the address without brackets, then the /bits between ] and : */
        alen = (size_t)(rb - e - 1);
        if (alen + (size_t)(colon - rb - 1) >= sizeof(addr)) {
            return px_why(why, whylen, "'%.*s': address too long", (int)len, e);
        }
        memcpy(addr, e + 1, alen);
        memcpy(addr + alen, rb + 1, (size_t)(colon - rb - 1));
        addr[alen + (size_t)(colon - rb - 1)] = '\0';
    } else {
        colon = memchr(e, ':', len);
        if (colon == NULL) {
            return px_why(why, whylen,
                          "'%.*s': no :PORTS (write ADDRESS[/BITS]:PORTS, "
                          "IPv6 in brackets)",
                          (int)len, e);
        }
        if (memchr(colon + 1, ':', len - (size_t)(colon + 1 - e)) != NULL) {
            return px_why(why, whylen, "'%.*s': IPv6 addresses go in brackets",
                          (int)len, e);
        }
        alen = (size_t)(colon - e);
        if (alen >= sizeof(addr)) {
            return px_why(why, whylen, "'%.*s': address too long", (int)len, e);
        }
        memcpy(addr, e, alen);
        addr[alen] = '\0';
    }
    if (addr[0] == '\0' || !http_cidr_list_valid(addr) ||
        strchr(addr, ',') != NULL) {
        return px_why(why, whylen, "'%.*s': not an address or CIDR", (int)len,
                      e);
    }
    ports = colon + 1;
    plen = len - (size_t)(ports - e);
    if (plen == 1 && ports[0] == '*') {
        d->port_lo = 1;
        d->port_hi = 65535;
    } else if ((dash = memchr(ports, '-', plen)) != NULL) {
        if (!px_port(ports, (size_t)(dash - ports), &d->port_lo) ||
            !px_port(dash + 1, plen - (size_t)(dash + 1 - ports),
                     &d->port_hi) ||
            d->port_lo > d->port_hi) {
            return px_why(why, whylen, "'%.*s': bad port range", (int)len, e);
        }
    } else if (!px_port(ports, plen, &d->port_lo)) {
        return px_why(why, whylen, "'%.*s': bad port (1-65535, LO-HI or *)",
                      (int)len, e);
    } else {
        d->port_hi = d->port_lo;
    }
    snprintf(d->cidr, sizeof(d->cidr), "%s", addr);
    return ERR_OK;
}

int http_proxy_allow_parse(const char *text, struct http_proxy_dest **out,
                           size_t *n, char *why, size_t whylen)
{
    struct http_proxy_dest *d = NULL, *nd;
    size_t cnt = 0, len;
    const char *p = text != NULL ? text : "";
    int r;

    *out = NULL;
    *n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        len = strcspn(p, " \t,");
        if (cnt >= 1024) {
            free(d);
            return px_why(why, whylen, "more than 1024 entries");
        }
        nd = realloc(d, (cnt + 1) * sizeof(*d));
        if (nd == NULL) {
            free(d);
            return ERR_NOMEM;
        }
        d = nd;
        memset(&d[cnt], 0, sizeof(d[cnt]));
        if ((r = px_allow_entry(p, len, &d[cnt], why, whylen)) != ERR_OK) {
            free(d);
            return r;
        }
        cnt++;
        p += len;
    }
    *out = d;
    *n = cnt;
    return ERR_OK;
}

bool http_proxy_allow_match(const struct http_proxy_dest *d, size_t n,
                            const char *ip, int port)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (port >= d[i].port_lo && port <= d[i].port_hi &&
            http_cidr_list_match(d[i].cidr, ip)) {
            return true;
        }
    }
    return false;
}

/* --- the request head ----------------------------------------------------- */

size_t http_proxy_head_len(const char *buf, size_t len)
{
    size_t i;

    for (i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n' &&
            (buf[i + 1] == '\n' ||
             (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n'))) {
            return i + (buf[i + 1] == '\n' ? 2 : 3);
        }
    }
    return 0;
}

static int px_bad(int status, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int px_bad(int status, char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    util_strip_ctl(why);
    return status;
}

static bool px_host_name_ok(const char *s)
{
    size_t i;

    if (s[0] == '\0' || s[0] == '-' || s[0] == '.') {
        return false;
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' &&
            s[i] != '_') {
            return false;
        }
    }
    return true;
}

/* "host:port" or "[v6]:port" into req. */
static int px_authority(const char *a, size_t len, struct http_proxy_req *req,
                        char *why, size_t whylen)
{
    const char *colon;
    size_t hlen;
    struct in6_addr a6;

    if (len > 0 && a[0] == '[') {
        const char *rb = memchr(a, ']', len);
        if (rb == NULL || rb + 1 >= a + len || rb[1] != ':') {
            return px_bad(400, why, whylen,
                          "the CONNECT target must be HOST:PORT");
        }
        hlen = (size_t)(rb - a - 1);
        colon = rb + 1;
        if (hlen == 0 || hlen > HTTP_PROXY_HOST_MAX) {
            return px_bad(400, why, whylen, "bad IPv6 address");
        }
        memcpy(req->host, a + 1, hlen);
        req->host[hlen] = '\0';
        if (inet_pton(AF_INET6, req->host, &a6) != 1) {
            return px_bad(400, why, whylen, "bad IPv6 address");
        }
    } else {
        colon = NULL;
        for (size_t i = 0; i < len; i++) {
            if (a[i] == ':') {
                if (colon != NULL) {
                    return px_bad(400, why, whylen,
                                  "IPv6 targets go in brackets: [ADDR]:PORT");
                }
                colon = a + i;
            }
        }
        if (colon == NULL) {
            return px_bad(400, why, whylen,
                          "the CONNECT target must be HOST:PORT");
        }
        hlen = (size_t)(colon - a);
        if (hlen == 0 || hlen > HTTP_PROXY_HOST_MAX) {
            return px_bad(400, why, whylen, "the host name is %s",
                          hlen == 0 ? "empty" : "too long");
        }
        memcpy(req->host, a, hlen);
        req->host[hlen] = '\0';
        if (!px_host_name_ok(req->host)) {
            return px_bad(400, why, whylen, "'%s' is not a host name",
                          req->host);
        }
    }
    if (!px_port(colon + 1, len - (size_t)(colon + 1 - a), &req->port)) {
        return px_bad(400, why, whylen, "the port must be 1-65535");
    }
    return 0;
}

static int px_auth_header(const char *v, size_t vlen,
                          struct http_proxy_req *req)
{
    size_t i;

    req->has_auth = true;
    req->token[0] = '\0';
    if (vlen < 7 || strncasecmp(v, "Bearer ", 7) != 0) {
        return 0; /* another scheme: answered 407 with what we take */
    }
    v += 7;
    vlen -= 7;
    while (vlen > 0 && *v == ' ') {
        v++;
        vlen--;
    }
    if (vlen == 0 || vlen > HTTP_PROXY_TOKEN_MAX) {
        return 0;
    }
    for (i = 0; i < vlen; i++) {
        if (!isalnum((unsigned char)v[i]) && v[i] != '-' && v[i] != '_' &&
            v[i] != '.' && v[i] != '=') {
            return 0;
        }
    }
    memcpy(req->token, v, vlen);
    req->token[vlen] = '\0';
    return 0;
}

int http_proxy_parse_head(const char *buf, size_t len,
                          struct http_proxy_req *req, char *why, size_t whylen)
{
    const char *p = buf, *end = buf + len, *eol, *sp1, *sp2, *colon, *v;
    size_t llen, vlen;
    bool first = true;
    int r;

    memset(req, 0, sizeof(*req));
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if ((ch < 0x20 && ch != '\r' && ch != '\n' && ch != '\t') ||
            ch == 0x7f) {
            return px_bad(400, why, whylen,
                          "control characters in the request");
        }
    }
    while (p < end) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL) {
            return px_bad(400, why, whylen, "the request head is incomplete");
        }
        llen = (size_t)(eol - p);
        if (llen > 0 && p[llen - 1] == '\r') {
            llen--;
        }
        if (llen == 0) {
            break; /* the blank line */
        }
        if (first) {
            first = false;
            sp1 = memchr(p, ' ', llen);
            sp2 = sp1 != NULL
                      ? memchr(sp1 + 1, ' ', llen - (size_t)(sp1 + 1 - p))
                      : NULL;
            if (sp1 == NULL || sp2 == NULL ||
                memchr(sp2 + 1, ' ', llen - (size_t)(sp2 + 1 - p)) != NULL) {
                return px_bad(400, why, whylen, "malformed request line");
            }
            if ((size_t)(p + llen - sp2 - 1) != 8 ||
                memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
                (sp2[8] != '0' && sp2[8] != '1')) {
                return px_bad(505, why, whylen, "only HTTP/1.0 and 1.1");
            }
            if ((size_t)(sp1 - p) == 7 && memcmp(p, "OPTIONS", 7) == 0 &&
                sp2 == sp1 + 2 && sp1[1] == '*') {
                req->check = true; /* `peer check`: who is there */
            } else if ((size_t)(sp1 - p) != 7 || memcmp(p, "CONNECT", 7) != 0) {
                return px_bad(405, why, whylen,
                              "this is a CONNECT proxy: %.*s is not served",
                              (int)((size_t)(sp1 - p) > 16 ? 16 : sp1 - p), p);
            } else if ((r = px_authority(sp1 + 1, (size_t)(sp2 - sp1 - 1), req,
                                         why, whylen)) != 0) {
                return r;
            }
        } else {
            colon = memchr(p, ':', llen);
            if (colon == NULL || colon == p || p[0] == ' ' || p[0] == '\t') {
                return px_bad(400, why, whylen, "malformed header line");
            }
            v = colon + 1;
            vlen = llen - (size_t)(v - p);
            while (vlen > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                vlen--;
            }
            while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) {
                vlen--;
            }
            if ((size_t)(colon - p) == 19 &&
                strncasecmp(p, "Proxy-Authorization", 19) == 0) {
                if (req->has_auth) {
                    return px_bad(400, why, whylen,
                                  "more than one Proxy-Authorization header");
                }
                px_auth_header(v, vlen, req);
            } else if ((size_t)(colon - p) == 16 &&
                       strncasecmp(p, "Portcullis-Agent", 16) == 0) {
                if (req->agent[0] != '\0' || vlen == 0 ||
                    vlen > HTTP_PROXY_AGENT_MAX) {
                    return px_bad(400, why, whylen, "bad Portcullis-Agent");
                }
                for (size_t i = 0; i < vlen; i++) {
                    if (!isalnum((unsigned char)v[i]) && v[i] != '.' &&
                        v[i] != '_' && v[i] != '-') {
                        return px_bad(400, why, whylen, "bad Portcullis-Agent");
                    }
                }
                memcpy(req->agent, v, vlen);
                req->agent[vlen] = '\0';
            } else if ((size_t)(colon - p) == 15 &&
                       strncasecmp(p, "Portcullis-Kind", 15) == 0) {
                if (req->udp || vlen != 3 || strncasecmp(v, "udp", 3) != 0) {
                    return px_bad(400, why, whylen, "bad Portcullis-Kind");
                }
                req->udp = true;
            }
        }
        p = eol + 1;
    }
    if (first) {
        return px_bad(400, why, whylen, "empty request");
    }
    return 0;
}

/* --- connections ---------------------------------------------------------- */

static struct px_conn *px_find(struct http_proxy *px, uint64_t id)
{
    struct px_conn *c;

    for (c = px->conns; c != NULL; c = c->next) {
        if (c->id == id) {
            return c;
        }
    }
    return NULL;
}

static void px_close(struct px_conn *c)
{
    struct http_proxy *px = c->px;

    if (c->timer != 0) {
        loop_del_timer(px->loop, c->timer);
    }
    if (c->hub_req != NULL) {
        hub_connect_cancel(c->hub_req);
    }
    udp_relay_stop(c->relay);
    if (c->tfd >= 0) {
        loop_del_fd(px->loop, c->tfd);
        close(c->tfd);
    }
    if (c->cfd >= 0) {
        loop_del_fd(px->loop, c->cfd);
        if (c->ssl != NULL) {
            SSL_free(c->ssl);
        }
        close(c->cfd);
    }
    tlspump_free(c->pump);
    *c->prev = c->next;
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    px->nconns--;
    srccount_drop(px->sources, c->src, 0);
    sodium_memzero(c->req.token, sizeof(c->req.token));
    sodium_memzero(c->head, sizeof(c->head));
    free(c);
}

static void px_on_pump_done(void *arg, const char *why)
{
    struct px_conn *c = arg;

    if (why != NULL && c->state == PX_RELAY) {
        log_info("http_proxy: %s to %s ended: %s", c->ip, c->dest, why);
    }
    px_close(c);
}

/* Hands the client (and the destination, fd -1 for none) to a pump that
 * first writes to_client, then relays. The pump may finish at once. */
static void px_hand_over(struct px_conn *c, const char *to_client, size_t n,
                         const void *to_target, size_t tn)
{
    struct tlspump *p;
    int cfd = c->cfd, tfd = c->tfd;
    SSL *ssl = c->ssl;

    loop_del_fd(c->px->loop, cfd);
    if (tfd >= 0) {
        loop_del_fd(c->px->loop, tfd);
    }
    c->cfd = c->tfd = -1;
    c->ssl = NULL;
    p = tlspump_new(c->px->loop, cfd, ssl, tfd, NULL, px_on_pump_done, c);
    if (p == NULL) {
        px_close(c);
        return;
    }
    c->pump = p;
    if (tlspump_send(p, 0, to_client, n) != ERR_OK ||
        (tn > 0 && tlspump_send(p, 1, to_target, tn) != ERR_OK)) {
        px_close(c);
        return;
    }
    tlspump_start(p);
}

static void px_audit(struct px_conn *c, const char *action, const char *detail)
{
    char target[sizeof(c->dest)];

    snprintf(target, sizeof(target), "%s", c->dest[0] != '\0' ? c->dest : "-");
    if (audit_write(c->px->st, c->actor[0] != '\0' ? c->actor : "-", c->ip,
                    action, target, detail) != ERR_OK) {
        log_warn("http_proxy: cannot write the audit event %s", action);
    }
}

static const char *px_reason(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 405:
        return "Method Not Allowed";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Error";
}

/* Answers status with text as the body and closes once it is out. */
static void px_answer(struct px_conn *c, int status, const char *text)
{
    char buf[1024];
    int n;

    n = snprintf(
        buf, sizeof(buf),
        "HTTP/1.1 %d %s\r\n"
        "Server: portcullis/%s\r\n"
        "%s"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: %zu\r\n"
        "Connection: close\r\n\r\n%s\n",
        status, status == 200 ? "OK" : px_reason(status), PORTCULLIS_VERSION,
        status == 407 ? "Proxy-Authenticate: Bearer realm=\"portcullis\"\r\n"
                      : "",
        strlen(text) + 1, text);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        n = 0;
    }
    if (c->hub_req != NULL) {
        hub_connect_cancel(c->hub_req);
        c->hub_req = NULL;
    }
    if (c->tfd >= 0) {
        loop_del_fd(c->px->loop, c->tfd);
        close(c->tfd);
        c->tfd = -1;
    }
    c->state = PX_CLOSING;
    px_hand_over(c, buf, (size_t)n, NULL, 0);
}

/* Answers a refusal (why as the body), audits it, and closes. */
static void px_refuse(struct px_conn *c, int status, const char *why)
{
    char detail[512];

    snprintf(detail, sizeof(detail), "%d %s", status, why);
    px_audit(c, "proxy.refused", detail);
    log_info("http_proxy: %s refused %s: %d %s", c->ip,
             c->dest[0] != '\0' ? c->dest : "-", status, why);
    px_answer(c, status, why);
}

static void px_on_timeout(struct loop *l, void *arg)
{
    struct px_conn *c = arg;

    (void)l;
    c->timer = 0;
    if (c->delayed_status != 0) {
        int status = c->delayed_status;
        c->delayed_status = 0;
        px_refuse(c, status, c->delayed_why);
    } else if (c->state == PX_CONNECTING) {
        px_refuse(c, 504, "the destination did not answer in time");
    } else if (c->state == PX_HANDSHAKE) {
        px_close(c); /* no TLS yet: nothing can be said */
    } else {
        px_refuse(c, 408, "the request did not arrive in time");
    }
}

static void px_timer(struct px_conn *c, int seconds)
{
    if (c->timer != 0) {
        loop_del_timer(c->px->loop, c->timer);
    }
    c->timer =
        loop_add_timer(c->px->loop, (int64_t)seconds * 1000, px_on_timeout, c);
}

/* A refused credential is answered after [auth] failure_delay_ms, as a
 * failed login is: guessing costs the guesser time, and the audit log
 * grows no faster than the delay lets it. The connection reads nothing
 * meanwhile. */
static void px_refuse_auth(struct px_conn *c, int status, const char *why)
{
    if (c->px->cfg->failure_delay_ms <= 0) {
        px_refuse(c, status, why);
        return;
    }
    c->delayed_status = status;
    snprintf(c->delayed_why, sizeof(c->delayed_why), "%s", why);
    c->state = PX_CLOSING;
    (void)loop_mod_fd(c->px->loop, c->cfd, 0);
    if (c->timer != 0) {
        loop_del_timer(c->px->loop, c->timer);
    }
    c->timer = loop_add_timer(c->px->loop, c->px->cfg->failure_delay_ms,
                              px_on_timeout, c);
    if (c->timer == 0) {
        px_refuse(c, status, why);
    }
}

/* --- bytes in and out of the client (TLS or not) ---------------------------
 * Each returns > 0 bytes moved, 0 nothing now, -1 end of stream or error. */

static ssize_t px_c_read(struct px_conn *c, void *buf, size_t n)
{
    ssize_t r;
    int e;

    if (c->ssl == NULL) {
        r = recv(c->cfd, buf, n, 0);
        if (r < 0) {
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
                       ? 0
                       : -1;
        }
        return r == 0 ? -1 : r;
    }
    c->rd_wants_wr = false;
    ERR_clear_error();
    r = SSL_read(c->ssl, buf, (int)(n > INT32_MAX ? INT32_MAX : n));
    if (r > 0) {
        return r;
    }
    e = SSL_get_error(c->ssl, (int)r);
    if (e == SSL_ERROR_WANT_READ) {
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        c->rd_wants_wr = true;
        return 0;
    }
    return -1;
}

/* --- after the head: authenticate, check, resolve, connect -----------------
 */

static void px_connect_next(struct px_conn *c);

static void px_on_target(struct loop *l, int fd, int events, void *arg)
{
    struct px_conn *c = arg;
    int err = 0;
    socklen_t elen = sizeof(err);
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    char detail[128];

    (void)l;
    (void)fd;
    if (c->state == PX_CONNECTING) {
        if ((events & (LOOP_WRITE | LOOP_READ)) == 0) {
            return;
        }
        if (getsockopt(c->tfd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) {
            err = errno;
        }
        if (err != 0) {
            loop_del_fd(c->px->loop, c->tfd);
            close(c->tfd);
            c->tfd = -1;
            if (c->next_addr < c->naddrs) {
                px_connect_next(c);
                return;
            }
            char why[300];
            snprintf(why, sizeof(why), "cannot connect to %s: %s", c->dest,
                     strerror(err));
            px_refuse(c, 502, why);
            return;
        }
        if (c->timer != 0) {
            loop_del_timer(c->px->loop, c->timer);
            c->timer = 0;
        }
        c->state = PX_RELAY;
        snprintf(detail, sizeof(detail), "connected to %s", c->conn_ip);
        px_audit(c, "proxy.connect", detail);
        log_info("http_proxy: %s (%s) connected to %s (%s)", c->actor, c->ip,
                 c->dest, c->conn_ip);
        /* the 200 goes ahead of anything the target says; what the client
         * sent after its head goes first to the target */
        px_hand_over(c, ok, sizeof(ok) - 1, c->head + c->headlen, c->extra);
    }
}

static void px_connect_next(struct px_conn *c)
{
    const struct sockaddr *sa;
    int fd, one = 1;

    while (c->next_addr < c->naddrs) {
        sa = (const struct sockaddr *)&c->addrs[c->next_addr];
        socklen_t salen = c->addrlens[c->next_addr];
        c->next_addr++;
        if (getnameinfo(sa, salen, c->conn_ip, sizeof(c->conn_ip), NULL, 0,
                        NI_NUMERICHOST) != 0) {
            continue;
        }
        fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
        if (fd < 0) {
            continue;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, sa, salen) != 0 && errno != EINPROGRESS) {
            close(fd);
            continue;
        }
        if (loop_add_fd(c->px->loop, fd, LOOP_WRITE, px_on_target, c) !=
            ERR_OK) {
            close(fd);
            px_refuse(c, 503, "out of resources");
            return;
        }
        c->tfd = fd;
        c->state = PX_CONNECTING;
        px_timer(c, c->px->cfg->http_proxy_connect_timeout_seconds);
        return;
    }
    char why[300];
    snprintf(why, sizeof(why), "cannot connect to %s", c->dest);
    px_refuse(c, 502, why);
}

/* Keeps the addresses the allow list lets through; refuses if none. */
static void px_take_addrs(struct px_conn *c, const struct addrinfo *res)
{
    char ip[INET6_ADDRSTRLEN], first[INET6_ADDRSTRLEN] = "";
    const struct addrinfo *ai;
    char why[400];

    c->naddrs = c->next_addr = 0;
    for (ai = res; ai != NULL && c->naddrs < PX_MAX_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(c->addrs[0]) ||
            getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof(ip), NULL, 0,
                        NI_NUMERICHOST) != 0) {
            continue;
        }
        if (first[0] == '\0') {
            snprintf(first, sizeof(first), "%s", ip);
        }
        if (!http_proxy_allow_match(c->px->allow, c->px->nallow, ip,
                                    c->req.port)) {
            continue;
        }
        memcpy(&c->addrs[c->naddrs], ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET) {
            ((struct sockaddr_in *)&c->addrs[c->naddrs])->sin_port =
                htons((uint16_t)c->req.port);
        } else {
            ((struct sockaddr_in6 *)&c->addrs[c->naddrs])->sin6_port =
                htons((uint16_t)c->req.port);
        }
        c->addrlens[c->naddrs] = (socklen_t)ai->ai_addrlen;
        c->naddrs++;
    }
    if (c->naddrs == 0) {
        if (strcmp(first, c->req.host) == 0 || first[0] == '\0') {
            snprintf(why, sizeof(why),
                     "destination %s is not allowed by this node's "
                     "[http_proxy] allow",
                     c->dest);
        } else {
            snprintf(why, sizeof(why),
                     "destination %s (%s) is not allowed by this node's "
                     "[http_proxy] allow",
                     c->dest, first);
        }
        px_refuse(c, 403, why);
        return;
    }
    px_connect_next(c);
}

/* The running proxy: a resolution that finishes after http_proxy_stop()
 * finds none (loop_resolve's callback cannot be cancelled). */
static struct http_proxy *px_live;

static void px_on_resolved(struct loop *l, const struct addrinfo *res,
                           const char *why, void *arg)
{
    uint64_t id = *(uint64_t *)arg;
    struct px_conn *c;
    char msg[400];

    (void)l;
    free(arg);
    if (px_live == NULL || (c = px_find(px_live, id)) == NULL ||
        c->state != PX_RESOLVING) {
        return; /* it went meanwhile */
    }
    if (res == NULL) {
        snprintf(msg, sizeof(msg), "cannot resolve %s: %s", c->req.host,
                 why != NULL ? why : "no address");
        px_refuse(c, 502, msg);
        return;
    }
    px_take_addrs(c, res);
}

/* The hub opened (or could not open) the stream through the agent. */
static void px_on_agent(void *arg, bool ok, const char *why)
{
    struct px_conn *c = arg;
    static const char okmsg[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    char msg[400];

    c->hub_req = NULL;
    if (!ok) {
        if (c->tfd >= 0) {
            close(c->tfd);
            c->tfd = -1;
        }
        snprintf(msg, sizeof(msg), "through agent '%s': %s", c->req.agent,
                 why != NULL ? why : "failed");
        px_refuse(c, 502, msg);
        return;
    }
    if (c->timer != 0) {
        loop_del_timer(c->px->loop, c->timer);
        c->timer = 0;
    }
    c->state = PX_RELAY;
    snprintf(msg, sizeof(msg), "through agent %s", c->req.agent);
    px_audit(c, "proxy.connect", msg);
    log_info("http_proxy: %s (%s) connected to %s through agent %s", c->actor,
             c->ip, c->dest, c->req.agent);
    px_hand_over(c, okmsg, sizeof(okmsg) - 1, c->head + c->headlen, c->extra);
}

/* A UDP flow's relay ended by itself: the stream (c->tfd) reads its end. */
static void px_on_relay_end(void *arg, const char *why)
{
    struct px_conn *c = arg;

    c->relay = NULL;
    log_info("http_proxy: %s (%s): udp flow through agent %s ended: %s",
             c->actor, c->ip, c->req.agent, why);
}

/* Another node of the cluster asks for a stream through an agent this
 * node holds (the node: route, route/route.h): a node credential
 * (auth/jwt.h) and a Portcullis-Agent header; the agent's own allow-list
 * decides the destination, not [http_proxy] allow. */
static void px_node_request(struct px_conn *c)
{
    struct http_proxy_req *q = &c->req;
    char node[JWT_NODE_ID_LEN + 1];
    struct hub_req *h;
    int sv[2], dg[2], r;

    r = jwt_node_token_check(c->px->key, q->token, util_now(), node);
    sodium_memzero(q->token, sizeof(q->token));
    if (r != ERR_OK) {
        px_refuse_auth(c, 407,
                       r == ERR_TIMEOUT
                           ? "the node credential is out of its time window "
                             "(are the nodes' clocks apart?)"
                           : "the node credential is not valid here (do the "
                             "nodes share api_jwt.key?)");
        return;
    }
    snprintf(c->actor, sizeof(c->actor), "node:%s", node);
    if (q->check) {
        px_audit(c, "proxy.check", "OPTIONS *");
        px_answer(c, 200, "portcullis " PORTCULLIS_VERSION);
        return;
    }
    if (q->agent[0] == '\0') {
        px_refuse(c, 403,
                  "a node credential takes only streams through an agent "
                  "(Portcullis-Agent)");
        return;
    }
    if (c->px->hub == NULL) {
        px_refuse(c, 503, "this node holds no agents");
        return;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        px_refuse(c, 503, "out of resources");
        return;
    }
    /* a UDP flow: the hub takes datagrams (a SOCK_SEQPACKET pair), which
     * a relay frames onto the stream and back; it ends with either */
    if (q->udp) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, dg) != 0) {
            close(sv[0]);
            close(sv[1]);
            px_refuse(c, 503, "out of resources");
            return;
        }
        /* the relay takes (and on failure closes) dg[1] and sv[0] */
        if ((c->relay = udp_relay_start(c->px->loop, dg[1], sv[0],
                                        px_on_relay_end, c)) == NULL) {
            close(dg[0]);
            close(sv[1]);
            px_refuse(c, 503, "out of resources");
            return;
        }
    }
    c->tfd = sv[1];
    c->state = PX_CONNECTING;
    px_timer(c, c->px->cfg->http_proxy_connect_timeout_seconds);
    /* hub_connect calls back at once when it fails early (c may be gone
     * then, and NULL comes back): c is touched only after a handle */
    h = hub_connect(c->px->hub, q->agent, q->udp ? HUB_UDP : HUB_TCP, q->host,
                    q->port, c->ip, 0, q->udp ? dg[0] : sv[0], px_on_agent, c);
    if (h != NULL) {
        c->hub_req = h;
    }
}

static void px_request(struct px_conn *c)
{
    struct http_bearer b;
    struct http_proxy_req *q = &c->req;
    struct addrinfo hints, *res = NULL;
    char why[300];
    int status;

    status = http_proxy_parse_head(c->head, c->headlen, q, why, sizeof(why));
    if (q->host[0] != '\0' && q->port > 0) {
        snprintf(c->dest, sizeof(c->dest),
                 strchr(q->host, ':') != NULL ? "[%s]:%d" : "%s:%d", q->host,
                 q->port);
    }
    if (status != 0) {
        px_refuse(c, status, why);
        return;
    }
    if (!q->has_auth) {
        px_refuse_auth(
            c, 407,
            "this proxy needs Proxy-Authorization: Bearer <API token> "
            "of a user with the service role");
        return;
    }
    if (q->token[0] == '\0') {
        px_refuse_auth(c, 407,
                       "the Proxy-Authorization header must be 'Bearer <API "
                       "token>'");
        return;
    }
    if (jwt_is_node_token(q->token)) {
        px_node_request(c);
        return;
    }
    if (q->agent[0] != '\0' || q->udp) {
        sodium_memzero(q->token, sizeof(q->token));
        px_refuse_auth(c, 403,
                       "streams through an agent are for the nodes of this "
                       "cluster (a node credential)");
        return;
    }
    switch (http_bearer_check(c->px->st, c->px->key, q->token, c->ip, NULL, &b,
                              why, sizeof(why))) {
    case HTTP_BEARER_OK:
        break;
    case HTTP_BEARER_UNAUTHORIZED:
        px_refuse_auth(c, 407, why);
        return;
    case HTTP_BEARER_FORBIDDEN:
        px_refuse_auth(c, 403, why);
        return;
    default:
        px_refuse(c, 503, why);
        return;
    }
    sodium_memzero(q->token, sizeof(q->token));
    snprintf(c->actor, sizeof(c->actor), "%s", b.user.name);
    if (b.claims.kind != JWT_API) {
        px_refuse_auth(c, 407,
                       "only API tokens are taken here, not a login's session "
                       "token");
        return;
    }
    if ((b.root_roles & SITE_ROLE_BIT(SITE_ROLE_SERVICE)) == 0) {
        snprintf(why, sizeof(why),
                 "user %s does not hold the service role on this node",
                 b.user.name);
        px_refuse_auth(c, 403, why);
        return;
    }
    if (q->check) {
        /* `peer check`: the credential works here; say who answers */
        px_audit(c, "proxy.check", "OPTIONS *");
        px_answer(c, 200, "portcullis " PORTCULLIS_VERSION);
        return;
    }
    /* A literal address is checked now; a name after it resolves. */
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(q->host, NULL, &hints, &res) == 0) {
        px_take_addrs(c, res);
        freeaddrinfo(res);
        return;
    }
    hints.ai_flags = 0;
    uint64_t *arg = malloc(sizeof(*arg));
    if (arg == NULL) {
        px_refuse(c, 503, "out of memory");
        return;
    }
    *arg = c->id;
    c->state = PX_RESOLVING;
    if (loop_resolve(c->px->loop, q->host, NULL, &hints, px_on_resolved, arg) !=
        ERR_OK) {
        free(arg);
        px_refuse(c, 503, "cannot resolve names now");
    }
}

/* --- the pump ---------------------------------------------------------------
 */

/* Reads the request head; at its end, acts on the request. */
static void px_head_read(struct px_conn *c)
{
    size_t hl;
    ssize_t n;

    for (;;) {
        n = px_c_read(c, c->head + c->headlen,
                      HTTP_PROXY_HEAD_MAX - c->headlen);
        if (n < 0) {
            px_close(c);
            return;
        }
        if (n == 0) {
            (void)loop_mod_fd(c->px->loop, c->cfd,
                              c->rd_wants_wr ? LOOP_WRITE : LOOP_READ);
            return;
        }
        c->headlen += (size_t)n;
        c->head[c->headlen] = '\0';
        if ((hl = http_proxy_head_len(c->head, c->headlen)) > 0) {
            /* bytes after the head are the client's first data */
            c->extra = c->headlen - hl;
            c->headlen = hl;
            if (c->timer != 0) {
                loop_del_timer(c->px->loop, c->timer);
                c->timer = 0;
            }
            (void)loop_mod_fd(c->px->loop, c->cfd, 0);
            px_request(c);
            return;
        }
        if (c->headlen >= HTTP_PROXY_HEAD_MAX) {
            px_refuse(c, 431, "the request head is over 8 KiB");
            return;
        }
    }
}

static void px_handshake(struct px_conn *c)
{
    int r, e;

    ERR_clear_error();
    r = SSL_accept(c->ssl);
    if (r == 1) {
        c->state = PX_HEAD;
        px_head_read(c);
        return;
    }
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        (void)loop_mod_fd(c->px->loop, c->cfd, LOOP_READ);
    } else if (e == SSL_ERROR_WANT_WRITE) {
        (void)loop_mod_fd(c->px->loop, c->cfd, LOOP_WRITE);
    } else {
        log_info("http_proxy: TLS handshake with %s failed", c->ip);
        px_close(c);
    }
}

static void px_on_client(struct loop *l, int fd, int events, void *arg)
{
    struct px_conn *c = arg;

    (void)l;
    (void)fd;
    (void)events;
    if (c->state == PX_HANDSHAKE) {
        px_handshake(c);
    } else if (c->state == PX_HEAD) {
        px_head_read(c);
    } else {
        /* nothing is read until the destination answers (the pump takes
         * over then) or while an answer waits its delay */
        (void)loop_mod_fd(c->px->loop, c->cfd, 0);
    }
}

static void px_on_accept(struct loop *l, int fd, int events, void *arg)
{
    struct http_proxy *px = arg;
    struct sockaddr_storage ss;
    socklen_t sl;
    struct srccount_src *src;
    struct px_conn *c;
    char ip[INET6_ADDRSTRLEN];
    int cfd, one = 1, i;

    (void)l;
    (void)events;
    for (i = 0; i < 64; i++) {
        sl = sizeof(ss);
        cfd = accept4(fd, (struct sockaddr *)&ss, &sl,
                      SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            return;
        }
        if (getnameinfo((struct sockaddr *)&ss, sl, ip, sizeof(ip), NULL, 0,
                        NI_NUMERICHOST) != 0) {
            close(cfd);
            continue;
        }
        if (strncmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, ':') == NULL) {
            memmove(ip, ip + 7, strlen(ip + 7) + 1);
        }
        src = srccount_find(px->sources, ip);
        if (px->nconns >= (unsigned)px->cfg->http_proxy_max_connections ||
            (src != NULL &&
             src->n[0] >= (unsigned)px->cfg->http_proxy_max_per_source)) {
            log_warn("http_proxy: refused a connection from %s (%s)", ip,
                     src != NULL &&
                             src->n[0] >=
                                 (unsigned)px->cfg->http_proxy_max_per_source
                         ? "max_connections_per_source reached"
                         : "max_connections reached");
            close(cfd);
            continue;
        }
        if ((c = calloc(1, sizeof(*c))) == NULL) {
            close(cfd);
            continue;
        }
        if ((c->src = srccount_add(px->sources, ip, 0)) == NULL) {
            free(c);
            close(cfd);
            continue;
        }
        (void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->px = px;
        c->id = ++px->next_id;
        c->cfd = cfd;
        c->tfd = -1;
        snprintf(c->ip, sizeof(c->ip), "%s", ip);
        c->next = px->conns;
        c->prev = &px->conns;
        if (px->conns != NULL) {
            px->conns->prev = &c->next;
        }
        px->conns = c;
        px->nconns++;
        c->state = px->tls != NULL ? PX_HANDSHAKE : PX_HEAD;
        if (px->tls != NULL && ((c->ssl = SSL_new(px->tls)) == NULL ||
                                SSL_set_fd(c->ssl, cfd) != 1)) {
            if (loop_add_fd(px->loop, cfd, LOOP_READ, px_on_client, c) ==
                ERR_OK) {
                px_close(c);
            }
            continue;
        }
        if (loop_add_fd(px->loop, cfd, LOOP_READ, px_on_client, c) != ERR_OK) {
            if (c->ssl != NULL) {
                SSL_free(c->ssl);
            }
            close(cfd);
            *c->prev = c->next;
            if (c->next != NULL) {
                c->next->prev = c->prev;
            }
            px->nconns--;
            srccount_drop(px->sources, c->src, 0);
            free(c);
            continue;
        }
        px_timer(c, px->cfg->http_proxy_timeout_seconds);
    }
}

/* --- start and stop ---------------------------------------------------------
 */

static int px_listen(struct http_proxy *px)
{
    struct addrinfo hints, *res = NULL, *ai;
    const char *host = px->cfg->http_proxy_listen;
    char port[16];
    int fd = -1, one = 1, r;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
    snprintf(port, sizeof(port), "%d", px->cfg->http_proxy_port);
    if (strcmp(host, "*") == 0) {
        host = NULL;
        hints.ai_family = AF_INET6;
    }
    if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
        log_error("[http_proxy] listen '%s': not an IP address or * (%s)",
                  px->cfg->http_proxy_listen, gai_strerror(r));
        return ERR_CONFIG;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family,
                    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6 && host == NULL) {
            int zero = 0;
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
                             sizeof(zero));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, 128) == 0) {
            break;
        }
        r = errno;
        close(fd);
        fd = -1;
        errno = r;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        log_error("[http_proxy] cannot listen on %s port %d: %s",
                  px->cfg->http_proxy_listen, px->cfg->http_proxy_port,
                  strerror(errno));
        return ERR_IO;
    }
    px->lfd = fd;
    return loop_add_fd(px->loop, fd, LOOP_READ, px_on_accept, px);
}

static int px_tls(struct http_proxy *px)
{
    const struct config *cfg = px->cfg;
    const char *cert = cfg->http_proxy_tls_cert;
    const char *key = cfg->http_proxy_tls_key;

    if (cert == NULL || key == NULL) {
        log_error("[http_proxy] tls is on but tls_cert or tls_key is empty");
        return ERR_CONFIG;
    }
    px->tls = SSL_CTX_new(TLS_server_method());
    if (px->tls == NULL ||
        SSL_CTX_set_min_proto_version(px->tls, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(px->tls, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(px->tls, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(px->tls) != 1) {
        log_error("[http_proxy] cannot load the certificate %s and key %s",
                  cert, key);
        return ERR_CONFIG;
    }
    SSL_CTX_set_mode(px->tls, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(px->tls, SSL_OP_NO_RENEGOTIATION);
    return ERR_OK;
}

int http_proxy_start(struct http_proxy **out, const struct config *cfg,
                     struct loop *l, struct store *st, struct hub *hub)
{
    struct http_proxy *px;
    char why[256];
    int r;

    *out = NULL;
    if (!cfg->http_proxy_enabled) {
        return ERR_OK;
    }
    if ((px = calloc(1, sizeof(*px))) == NULL) {
        return ERR_NOMEM;
    }
    px->cfg = cfg;
    px->loop = l;
    px->st = st;
    px->hub = hub;
    px->lfd = -1;
    if ((px->sources = srccount_new()) == NULL) {
        free(px);
        return ERR_NOMEM;
    }
    if ((r = http_proxy_allow_parse(cfg->http_proxy_allow, &px->allow,
                                    &px->nallow, why, sizeof(why))) != ERR_OK) {
        log_error("[http_proxy] allow: %s", why);
        goto fail;
    }
    if ((r = jwt_key_load(cfg->http_jwt_secret, true, &px->key)) != ERR_OK) {
        log_error("[http_proxy] cannot load the token key %s: %s",
                  cfg->http_jwt_secret, err_str(r));
        goto fail;
    }
    if (cfg->http_proxy_tls && (r = px_tls(px)) != ERR_OK) {
        goto fail;
    }
    if (!cfg->http_proxy_tls) {
        log_warn("[http_proxy] tls = false: API tokens and session bytes "
                 "cross the network in clear; use it only inside a network "
                 "you trust");
    }
    if (px->nallow == 0) {
        log_warn("[http_proxy] allow is empty: every CONNECT is refused");
    }
    if ((r = px_listen(px)) != ERR_OK) {
        goto fail;
    }
    px_live = px;
    log_info("http_proxy: listening on %s port %d (%s), %zu allowed "
             "destination(s)",
             cfg->http_proxy_listen, cfg->http_proxy_port,
             px->tls != NULL ? "TLS" : "plain HTTP", px->nallow);
    *out = px;
    return ERR_OK;
fail:
    http_proxy_stop(px);
    return r;
}

void http_proxy_stop(struct http_proxy *px)
{
    if (px == NULL) {
        return;
    }
    if (px_live == px) {
        px_live = NULL;
    }
    while (px->conns != NULL) {
        px_close(px->conns);
    }
    srccount_free(px->sources);
    px->sources = NULL;
    if (px->lfd >= 0) {
        loop_del_fd(px->loop, px->lfd);
        close(px->lfd);
    }
    if (px->tls != NULL) {
        SSL_CTX_free(px->tls);
    }
    jwt_key_free(px->key);
    free(px->allow);
    free(px);
}
