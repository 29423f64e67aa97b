/*
 * Tunnel definitions; see tunnel_def.h. Pure checks (ACL, remote target)
 * plus the two steps that touch the world: the store (ports used by other
 * tunnels, the agent's existence, the insert) and a test bind of the
 * candidate port on [tunnel] listen.
 *
 * The test bind only says the port was free a moment ago; the listener
 * (tunnel.c) binds it for real later and reports "error: ..." in the
 * tunnel's state if something took it meanwhile. It still catches the
 * common mistakes at once: a port another daemon already listens on.
 */
#include "hub/tunnel_def.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>

#include "common/cidr.h"
#include "common/err.h"
#include "common/util.h"
#include "store/peers.h"

/* Auto-picked ports retried when another writer took the same one
 * between the pick and the insert. */
#define TUNNEL_ADD_TRIES 5

static int tunnel_why(char *why, size_t whylen, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int tunnel_why(char *why, size_t whylen, int err, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
        /* The text may quote what a user sent ('%s' is not a host name):
         * it goes to terminals and logs, so no control characters (an
         * escape sequence would rewrite the operator's screen). */
        util_strip_ctl(why);
    }
    return err;
}

/* --- ACLs ---------------------------------------------------------------- */

bool tunnel_acl_allows(const char *acl, const char *ip)
{
    return acl != NULL && acl[0] != '\0' && cidr_list_match(acl, ip);
}

/* One entry "addr[/bits]" (already checked by cidr_list_valid) in
 * canonical form into out. */
static int tunnel_cidr_canon(const char *entry, char *out, size_t outlen)
{
    char tmp[64], *slash, text[INET6_ADDRSTRLEN];
    uint8_t a[16];
    int fam, bits, maxbits, i, n;

    if (strlen(entry) >= sizeof(tmp)) {
        return ERR_INVALID;
    }
    memcpy(tmp, entry, strlen(entry) + 1);
    slash = strchr(tmp, '/');
    if (slash != NULL) {
        *slash++ = '\0';
    }
    memset(a, 0, sizeof(a));
    if (inet_pton(AF_INET, tmp, a) == 1) {
        fam = AF_INET;
        maxbits = 32;
    } else if (inet_pton(AF_INET6, tmp, a) == 1) {
        fam = AF_INET6;
        maxbits = 128;
    } else {
        return ERR_INVALID;
    }
    bits = slash != NULL ? atoi(slash) : maxbits;
    if (bits < 0 || bits > maxbits) {
        return ERR_INVALID;
    }
    for (i = 0; i < maxbits / 8; i++) {
        int keep = bits - i * 8;

        if (keep <= 0) {
            a[i] = 0;
        } else if (keep < 8) {
            a[i] &= (uint8_t)(0xff << (8 - keep));
        }
    }
    if (inet_ntop(fam, a, text, sizeof(text)) == NULL) {
        return ERR_INVALID;
    }
    n = snprintf(out, outlen, "%s/%d", text, bits);
    return n < 0 || (size_t)n >= outlen ? ERR_TOO_LONG : ERR_OK;
}

int tunnel_acl_normalize(const char *in, char *out, size_t outlen, char *why,
                         size_t whylen)
{
    char entry[64], canon[64];
    size_t used = 0, len, clen;
    const char *p, *e, *next;
    bool last;

    if (out == NULL || outlen == 0) {
        return ERR_INVALID;
    }
    out[0] = '\0';
    if (in == NULL || in[0] == '\0') {
        return tunnel_why(why, whylen, ERR_INVALID, "the ACL is empty");
    }
    if (strnlen(in, TUNNEL_ACL_MAX * 2 + 1) > TUNNEL_ACL_MAX * 2) {
        return tunnel_why(why, whylen, ERR_TOO_LONG,
                          "the ACL is too long (at most %d characters)",
                          TUNNEL_ACL_MAX);
    }
    for (next = in;;) {
        len = strcspn(next, ",");
        p = next;
        e = next + len;
        last = *e == '\0';
        next = last ? e : e + 1;
        while (p < e && isspace((unsigned char)*p)) {
            p++;
        }
        while (e > p && isspace((unsigned char)e[-1])) {
            e--;
        }
        if (e == p || (size_t)(e - p) >= sizeof(entry)) {
            out[0] = '\0';
            return tunnel_why(why, whylen, ERR_INVALID,
                              "the ACL needs addresses or CIDRs separated "
                              "by commas, e.g. 192.0.2.7,10.0.0.0/8");
        }
        memcpy(entry, p, (size_t)(e - p));
        entry[e - p] = '\0';
        if (!cidr_list_valid(entry) ||
            tunnel_cidr_canon(entry, canon, sizeof(canon)) != ERR_OK) {
            out[0] = '\0';
            return tunnel_why(why, whylen, ERR_INVALID,
                              "'%s' in the ACL is not an address or CIDR",
                              entry);
        }
        clen = strlen(canon);
        if (used + (used > 0) + clen >= outlen ||
            used + (used > 0) + clen > TUNNEL_ACL_MAX) {
            out[0] = '\0';
            return tunnel_why(why, whylen, ERR_TOO_LONG,
                              "the ACL is too long (at most %d characters)",
                              TUNNEL_ACL_MAX);
        }
        if (used > 0) {
            out[used++] = ',';
        }
        memcpy(out + used, canon, clen + 1);
        used += clen;
        if (last) {
            break;
        }
    }
    return ERR_OK;
}

int tunnel_acl_of_ip(const char *ip, char *out, size_t outlen)
{
    uint8_t a[16];
    char text[INET6_ADDRSTRLEN];
    int n;

    if (ip == NULL) {
        return ERR_INVALID;
    }
    if (inet_pton(AF_INET, ip, a) == 1) {
        n = snprintf(out, outlen, "%s/32", ip);
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 &&
            inet_ntop(AF_INET, a + 12, text, sizeof(text)) != NULL) {
            n = snprintf(out, outlen, "%s/32", text);
        } else if (inet_ntop(AF_INET6, a, text, sizeof(text)) != NULL) {
            n = snprintf(out, outlen, "%s/128", text);
        } else {
            return ERR_INVALID;
        }
    } else {
        return ERR_INVALID;
    }
    return n < 0 || (size_t)n >= outlen ? ERR_TOO_LONG : ERR_OK;
}

/* --- the remote target --------------------------------------------------- */

/* A host name as DNS knows it (letters, digits, '-', '_', '.'), or an
 * IPv4 address. */
static bool tunnel_host_name_ok(const char *s)
{
    size_t i;

    if (s[0] == '-' || s[0] == '.') {
        return false;
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (!isalnum((unsigned char)s[i]) && strchr("-_.", s[i]) == NULL) {
            return false;
        }
    }
    return i > 0 && i <= STORE_HOST_MAX;
}

int tunnel_remote_parse(const char *s, char *host, size_t hostlen, int *port,
                        char *why, size_t whylen)
{
    struct in6_addr a6;
    const char *colon, *hs, *he;
    char tmp[STORE_HOST_MAX + 1];
    char *end = NULL;
    long p;

    if (hostlen > 0) {
        host[0] = '\0';
    }
    *port = 0;
    if (s == NULL || s[0] == '\0') {
        return tunnel_why(why, whylen, ERR_INVALID,
                          "the remote target needs HOST:PORT");
    }
    if (s[0] == '[') {
        he = strchr(s, ']');
        if (he == NULL || he[1] != ':') {
            return tunnel_why(why, whylen, ERR_INVALID,
                              "the remote target needs [IPv6]:PORT");
        }
        hs = s + 1;
        colon = he + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || strchr(s, ':') != colon) {
            return tunnel_why(why, whylen, ERR_INVALID,
                              colon == NULL
                                  ? "the remote target needs HOST:PORT"
                                  : "an IPv6 remote target goes in brackets: "
                                    "[ADDR]:PORT");
        }
        hs = s;
        he = colon;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof(tmp) ||
        (size_t)(he - hs) >= hostlen) {
        return tunnel_why(why, whylen, he == hs ? ERR_INVALID : ERR_TOO_LONG,
                          "the remote host is %s",
                          he == hs ? "empty" : "too long");
    }
    memcpy(tmp, hs, (size_t)(he - hs));
    tmp[he - hs] = '\0';
    if (s[0] == '[' ? inet_pton(AF_INET6, tmp, &a6) != 1
                    : !tunnel_host_name_ok(tmp)) {
        return tunnel_why(why, whylen, ERR_INVALID,
                          "'%s' is not a host name or address", tmp);
    }
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || errno != 0 || *end != '\0' ||
        p < 1 || p > 65535) {
        return tunnel_why(why, whylen, ERR_INVALID,
                          "the remote port must be a number from 1 to 65535");
    }
    memcpy(host, tmp, strlen(tmp) + 1);
    *port = (int)p;
    return ERR_OK;
}

/* --- ports --------------------------------------------------------------- */

/* ERR_OK if a socket of the protocol binds to port on every address of
 * the listen setting; else ERR_EXISTS with errno's words in why. */
static int tunnel_test_bind(const char *listen, bool udp, int port, char *why,
                            size_t whylen)
{
    struct addrinfo hints, *res = NULL, *ai;
    char service[8];
    int fd, one = 1, r = ERR_OK, gai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = udp ? SOCK_DGRAM : SOCK_STREAM;
    /* [tunnel] listen is an address (as in tunnel.c): never a DNS lookup in
     * the event loop, where the API calls this. */
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST;
    snprintf(service, sizeof(service), "%d", port);
    gai = getaddrinfo(listen != NULL && listen[0] != '\0' ? listen : NULL,
                      service, &hints, &res);
    if (gai != 0) {
        return tunnel_why(why, whylen, ERR_IO,
                          "cannot resolve [tunnel] listen '%s': %s",
                          listen != NULL ? listen : "", gai_strerror(gai));
    }
    for (ai = res; ai != NULL && r == ERR_OK; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            r = tunnel_why(why, whylen, ERR_IO, "socket: %s", strerror(errno));
            break;
        }
        /* As a TCP listener does: a port whose old connections linger in
         * TIME_WAIT is free. */
        if (!udp) {
            (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            r = tunnel_why(why, whylen, ERR_EXISTS,
                           "port %d/%s cannot be bound on %s: %s", port,
                           udp ? "udp" : "tcp",
                           listen != NULL && listen[0] != '\0' ? listen : "*",
                           strerror(errno));
        }
        close(fd);
    }
    freeaddrinfo(res);
    return r;
}

int tunnel_port_pick(struct store *st, const struct config *cfg, bool udp,
                     int port, int *out, char *why, size_t whylen)
{
    struct store_tunnel *list = NULL;
    unsigned char *used = NULL;
    int lo = cfg->tunnel_port_min, hi = cfg->tunnel_port_max, p, r;
    size_t n = 0, i;

    *out = 0;
    if (port != 0 && (port < lo || port > hi)) {
        return tunnel_why(why, whylen, ERR_INVALID,
                          "local port %d is outside the tunnel port range "
                          "%d-%d ([tunnel] port_min, port_max)",
                          port, lo, hi);
    }
    if ((r = store_tunnel_list(st, NULL, &list, &n)) != ERR_OK) {
        return tunnel_why(why, whylen, r, "cannot list tunnels: %s",
                          err_str(r));
    }
    if ((used = calloc((size_t)(hi - lo + 1), 1)) == NULL) {
        store_tunnel_list_free(list, n);
        return tunnel_why(why, whylen, ERR_NOMEM, "%s", err_str(ERR_NOMEM));
    }
    for (i = 0; i < n; i++) {
        if (list[i].udp != udp) {
            continue;
        }
        if (list[i].local_port == port) {
            r = tunnel_why(why, whylen, ERR_EXISTS,
                           "local port %d/%s is already used by tunnel %s",
                           port, udp ? "udp" : "tcp", list[i].id);
            goto out;
        }
        if (list[i].local_port >= lo && list[i].local_port <= hi) {
            used[list[i].local_port - lo] = 1;
        }
    }
    if (port != 0) {
        r = tunnel_test_bind(cfg->tunnel_listen, udp, port, why, whylen);
        if (r == ERR_OK) {
            *out = port;
        }
        goto out;
    }
    for (p = lo; p <= hi; p++) {
        if (used[p - lo]) {
            continue;
        }
        r = tunnel_test_bind(cfg->tunnel_listen, udp, p, why, whylen);
        if (r == ERR_OK) {
            *out = p;
            goto out;
        }
        if (r != ERR_EXISTS) {
            goto out; /* the address itself is wrong: no port will do */
        }
    }
    r = tunnel_why(why, whylen, ERR_EXISTS,
                   "no free %s port left in the tunnel port range %d-%d",
                   udp ? "udp" : "tcp", lo, hi);
out:
    free(used);
    store_tunnel_list_free(list, n);
    return r;
}

/* --- a whole definition -------------------------------------------------- */

/* The peer of a tunnel must exist (peer names are checked by its own
 * rules when added: admin_peer.c); t->peer gets its stored name. */
static int tunnel_def_peer(struct store *st, const char *peer,
                           struct store_tunnel *t, char *why, size_t whylen)
{
    struct store_peer *p;
    int r;

    if (strlen(peer) > PEER_NAME_MAX) {
        return tunnel_why(why, whylen, ERR_NOT_FOUND, "peer '%.64s' not found",
                          peer);
    }
    if ((p = calloc(1, sizeof(*p))) == NULL) {
        return tunnel_why(why, whylen, ERR_NOMEM, "%s", err_str(ERR_NOMEM));
    }
    r = store_peer_get(st, peer, p);
    if (r == ERR_OK) {
        snprintf(t->peer, sizeof(t->peer), "%s", p->name);
    }
    sodium_memzero(p, sizeof(*p));
    free(p);
    if (r == ERR_NOT_FOUND) {
        return tunnel_why(why, whylen, r, "peer '%s' not found", peer);
    }
    if (r != ERR_OK) {
        return tunnel_why(why, whylen, r, "cannot read peer '%s': %s", peer,
                          err_str(r));
    }
    return ERR_OK;
}

int tunnel_def_add(struct store *st, const struct config *cfg,
                   const struct tunnel_def_req *req, struct store_tunnel *t,
                   char *why, size_t whylen)
{
    struct store_agent *a = NULL;
    int r, tries, port;

    memset(t, 0, sizeof(*t));
    if (req->peer != NULL && req->peer[0] != '\0') {
        if (req->agent_id != NULL && req->agent_id[0] != '\0') {
            return tunnel_why(why, whylen, ERR_INVALID,
                              "a tunnel goes through an agent or a peer, "
                              "not both");
        }
        if (req->udp) {
            return tunnel_why(why, whylen, ERR_INVALID,
                              "a tunnel through a peer carries TCP only "
                              "(the peer's proxy is HTTP CONNECT)");
        }
    } else if (req->agent_id == NULL || req->agent_id[0] == '\0') {
        return tunnel_why(why, whylen, ERR_INVALID, "the agent is missing");
    }
    if (req->agent_id != NULL && strlen(req->agent_id) > AGENT_ID_MAX) {
        return tunnel_why(why, whylen, ERR_NOT_FOUND, "agent '%.64s' not found",
                          req->agent_id);
    }
    if ((r = tunnel_remote_parse(req->remote, t->remote_host,
                                 sizeof(t->remote_host), &t->remote_port, why,
                                 whylen)) != ERR_OK) {
        return r;
    }
    if (req->idle_minutes < 0 || req->idle_minutes > TUNNEL_IDLE_MAX) {
        return tunnel_why(why, whylen, ERR_INVALID,
                          "the idle timeout must be 0 to %d minutes",
                          TUNNEL_IDLE_MAX);
    }
    if (req->acl != NULL) {
        r = tunnel_acl_normalize(req->acl, t->acl, sizeof(t->acl), why, whylen);
    } else if ((r = tunnel_acl_of_ip(req->default_ip, t->acl,
                                     sizeof(t->acl))) != ERR_OK) {
        r = tunnel_why(why, whylen, ERR_INVALID,
                       "cannot make the default ACL from the address '%s'",
                       req->default_ip != NULL ? req->default_ip : "");
    }
    if (r != ERR_OK) {
        return r;
    }
    if (req->created_by != NULL &&
        strlen(req->created_by) >= sizeof(t->created_by)) {
        return tunnel_why(why, whylen, ERR_TOO_LONG,
                          "the creator's name is "
                          "too long");
    }
    if (req->peer != NULL && req->peer[0] != '\0') {
        if ((r = tunnel_def_peer(st, req->peer, t, why, whylen)) != ERR_OK) {
            return r;
        }
        goto add;
    }
    /* The agent must be known (it announced itself once); it need not be
     * online: the tunnel listens whenever it is. */
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        return tunnel_why(why, whylen, ERR_NOMEM, "%s", err_str(ERR_NOMEM));
    }
    r = store_agent_get(st, req->agent_id, a);
    free(a);
    if (r == ERR_NOT_FOUND) {
        return tunnel_why(why, whylen, r, "agent '%s' not found",
                          req->agent_id);
    }
    if (r != ERR_OK) {
        return tunnel_why(why, whylen, r, "cannot read agent '%s': %s",
                          req->agent_id, err_str(r));
    }
    snprintf(t->agent_id, sizeof(t->agent_id), "%s", req->agent_id);
add:
    snprintf(t->created_by, sizeof(t->created_by), "%s",
             req->created_by != NULL ? req->created_by : "");
    t->udp = req->udp;
    t->idle_minutes = req->idle_minutes;
    for (tries = 0; tries < TUNNEL_ADD_TRIES; tries++) {
        r = tunnel_port_pick(st, cfg, req->udp, req->local_port, &port, why,
                             whylen);
        if (r != ERR_OK) {
            return r;
        }
        t->local_port = port;
        t->created_at = util_now();
        r = store_tunnel_add(st, t);
        if (r != ERR_EXISTS || req->local_port != 0) {
            break;
        }
    }
    switch (r) {
    case ERR_OK:
        return ERR_OK;
    case ERR_EXISTS:
        return tunnel_why(why, whylen, r,
                          "local port %d/%s is already used by another "
                          "tunnel",
                          t->local_port, req->udp ? "udp" : "tcp");
    case ERR_NOT_FOUND: /* deleted meanwhile */
        return tunnel_why(why, whylen, r, "agent '%s' not found", t->agent_id);
    default:
        return tunnel_why(why, whylen, r, "cannot add the tunnel: %s",
                          err_str(r));
    }
}

const char *tunnel_def_state(const struct store_tunnel *t)
{
    return t->state[0] != '\0' ? t->state : "pending";
}
