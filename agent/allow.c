/* The agent's allow-list; see allow.h. */
#include "agent/allow.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/err.h"

static int allow_fail(char *why, size_t whylen, const char *what, const char *s)
{
    if (why != NULL && whylen > 0) {
        snprintf(why, whylen, "%s '%.80s'", what, s);
    }
    return ERR_INVALID;
}

/* A DNS name: labels of letters, digits, '-' and '_' separated by dots,
 * no empty label; at most ALLOW_MAX_NAME. */
static bool allow_valid_name(const char *s, size_t len)
{
    size_t label = 0;

    if (len == 0 || len > ALLOW_MAX_NAME) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
            continue;
        }
        if (!isalnum(c) && c != '-' && c != '_') {
            return false;
        }
        if (++label > 63) {
            return false;
        }
    }
    return true;
}

/* A decimal number in [lo, hi] made of digits only. */
static bool allow_number(const char *s, size_t len, unsigned long lo,
                         unsigned long hi, unsigned long *out)
{
    unsigned long v = 0;

    if (len == 0 || len > 5) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

static int allow_parse_ports(const char *p, struct allow_entry *e, char *why,
                             size_t whylen)
{
    const char *dash = strchr(p, '-');
    unsigned long lo, hi;

    if (strcmp(p, "*") == 0) {
        e->port_lo = 1;
        e->port_hi = 65535;
        return ERR_OK;
    }
    if (dash == NULL) {
        if (!allow_number(p, strlen(p), 1, 65535, &lo)) {
            return allow_fail(why, whylen, "bad port", p);
        }
        e->port_lo = e->port_hi = (uint16_t)lo;
        return ERR_OK;
    }
    if (!allow_number(p, (size_t)(dash - p), 1, 65535, &lo) ||
        !allow_number(dash + 1, strlen(dash + 1), 1, 65535, &hi) || lo > hi) {
        return allow_fail(why, whylen, "bad port range", p);
    }
    e->port_lo = (uint16_t)lo;
    e->port_hi = (uint16_t)hi;
    return ERR_OK;
}

static void allow_mask(uint8_t *addr, unsigned bytes, unsigned prefix)
{
    for (unsigned i = 0; i < bytes; i++) {
        unsigned bit = i * 8;
        if (bit >= prefix) {
            addr[i] = 0;
        } else if (prefix - bit < 8) {
            addr[i] &= (uint8_t)(0xff << (8 - (prefix - bit)));
        }
    }
}

int allow_entry_parse(const char *s, struct allow_entry *e, char *why,
                      size_t whylen)
{
    char host[ALLOW_MAX_NAME + 1];
    const char *orig = s, *hp, *hend, *colon, *slash = NULL;
    size_t hlen;
    unsigned long prefix = 0;
    bool bracket = false;
    int r;

    memset(e, 0, sizeof(*e));
    if (s == NULL || strlen(s) > ALLOW_MAX_TARGET) {
        return allow_fail(why, whylen, "allow entry too long", "");
    }
    e->proto = ALLOW_TCP;
    if (strncmp(s, "udp:", 4) == 0) {
        e->proto = ALLOW_UDP;
        s += 4;
    }
    hp = s;
    if (*hp == '[') {
        bracket = true;
        hend = strchr(hp, ']');
        if (hend == NULL) {
            return allow_fail(why, whylen, "missing ']' in allow entry", orig);
        }
        hp++;
        colon = hend + 1;
        if (*colon == '/') {
            slash = colon;
            colon = strchr(colon, ':');
        }
        if (colon == NULL || *colon != ':') {
            return allow_fail(why, whylen, "expected HOST:PORT, got", orig);
        }
    } else {
        colon = strrchr(hp, ':');
        if (colon == NULL) {
            return allow_fail(why, whylen, "expected HOST:PORT, got", orig);
        }
        hend = colon;
        slash = memchr(hp, '/', (size_t)(hend - hp));
        if (slash != NULL) {
            hend = slash;
        }
    }
    hlen = (size_t)(hend - hp);
    if (hlen == 0 || hlen > ALLOW_MAX_NAME) {
        return allow_fail(why, whylen, "bad host in allow entry", orig);
    }
    memcpy(host, hp, hlen);
    host[hlen] = '\0';
    if ((r = allow_parse_ports(colon + 1, e, why, whylen)) != ERR_OK) {
        return r;
    }
    if (bracket) {
        if (inet_pton(AF_INET6, host, e->addr) != 1) {
            return allow_fail(why, whylen, "bad IPv6 address", host);
        }
        e->family = AF_INET6;
    } else if (inet_pton(AF_INET, host, e->addr) == 1) {
        e->family = AF_INET;
    } else if (strchr(host, ':') != NULL) {
        return allow_fail(why, whylen,
                          "IPv6 addresses need brackets ([::1]:22)", orig);
    } else if (allow_valid_name(host, hlen)) {
        if (slash != NULL) {
            return allow_fail(why, whylen, "a CIDR needs an address, got",
                              orig);
        }
        e->kind = ALLOW_KIND_NAME;
        for (size_t i = 0; i <= hlen; i++) {
            e->name[i] = (char)tolower((unsigned char)host[i]);
        }
        return ERR_OK;
    } else {
        return allow_fail(why, whylen, "bad host in allow entry", orig);
    }
    e->kind = ALLOW_KIND_NET;
    e->prefix = e->family == AF_INET ? 32 : 128;
    if (slash != NULL) {
        if (!allow_number(slash + 1, (size_t)(colon - slash - 1), 0, e->prefix,
                          &prefix)) {
            return allow_fail(why, whylen, "bad prefix length in", orig);
        }
        e->prefix = (unsigned)prefix;
    }
    allow_mask(e->addr, e->family == AF_INET ? 4 : 16, e->prefix);
    return ERR_OK;
}

int allow_list_add(struct allow_list *l, const char *s, char *why,
                   size_t whylen)
{
    struct allow_entry e, *v;
    int r;

    if ((r = allow_entry_parse(s, &e, why, whylen)) != ERR_OK) {
        return r;
    }
    if (l->n >= ALLOW_MAX_ENTRIES) {
        if (why != NULL && whylen > 0) {
            snprintf(why, whylen, "more than %d allow entries",
                     ALLOW_MAX_ENTRIES);
        }
        return ERR_TOO_LONG;
    }
    v = realloc(l->v, (l->n + 1) * sizeof(*v));
    if (v == NULL) {
        return ERR_NOMEM;
    }
    l->v = v;
    l->v[l->n++] = e;
    return ERR_OK;
}

int allow_list_add_defaults(struct allow_list *l)
{
    static const char *const defaults[] = {
        "127.0.0.1:*",     "[::1]:*",     "localhost:*",
        "udp:127.0.0.1:*", "udp:[::1]:*", "udp:localhost:*",
    };
    int r;

    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if ((r = allow_list_add(l, defaults[i], NULL, 0)) != ERR_OK) {
            return r;
        }
    }
    return ERR_OK;
}

void allow_list_clear(struct allow_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int allow_target_parse(const char *host, uint32_t port, struct allow_target *t,
                       char *why, size_t whylen)
{
    const char *h = host;
    size_t len;

    memset(t, 0, sizeof(*t));
    if (host == NULL || strlen(host) > ALLOW_MAX_TARGET) {
        return allow_fail(why, whylen, "target host too long", "");
    }
    if (port < 1 || port > 65535) {
        if (why != NULL && whylen > 0) {
            snprintf(why, whylen, "bad target port %lu", (unsigned long)port);
        }
        return ERR_INVALID;
    }
    t->port = (uint16_t)port;
    t->proto = ALLOW_TCP;
    if (strncmp(h, "udp:", 4) == 0) {
        t->proto = ALLOW_UDP;
        h += 4;
    }
    len = strlen(h);
    if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
        h++;
        len -= 2;
    }
    if (len == 0 || len > ALLOW_MAX_NAME) {
        return allow_fail(why, whylen, "bad target host", host);
    }
    memcpy(t->host, h, len);
    t->host[len] = '\0';
    if (inet_pton(AF_INET, t->host, t->addr) == 1) {
        t->is_addr = true;
        t->family = AF_INET;
    } else if (inet_pton(AF_INET6, t->host, t->addr) == 1) {
        t->is_addr = true;
        t->family = AF_INET6;
    } else if (!allow_valid_name(t->host, len)) {
        return allow_fail(why, whylen, "bad target host", host);
    }
    return ERR_OK;
}

static bool allow_port_ok(const struct allow_entry *e, enum allow_proto proto,
                          uint16_t port)
{
    return e->proto == proto && port >= e->port_lo && port <= e->port_hi;
}

static bool allow_net_match(const struct allow_entry *e, int family,
                            const uint8_t *addr)
{
    unsigned full, rest;

    if (e->family != family) {
        return false;
    }
    full = e->prefix / 8;
    rest = e->prefix % 8;
    if (memcmp(e->addr, addr, full) != 0) {
        return false;
    }
    if (rest != 0 &&
        (addr[full] & (uint8_t)(0xff << (8 - rest))) != e->addr[full]) {
        return false;
    }
    return true;
}

bool allow_check_addr(const struct allow_list *l, enum allow_proto proto,
                      int family, const uint8_t *addr, uint16_t port)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};

    if (family == AF_INET6 && memcmp(addr, mapped, sizeof(mapped)) == 0) {
        family = AF_INET;
        addr += 12;
    }
    if (family != AF_INET && family != AF_INET6) {
        return false;
    }
    for (size_t i = 0; i < l->n; i++) {
        const struct allow_entry *e = &l->v[i];
        if (e->kind == ALLOW_KIND_NET && allow_port_ok(e, proto, port) &&
            allow_net_match(e, family, addr)) {
            return true;
        }
    }
    return false;
}

enum allow_verdict allow_check(const struct allow_list *l,
                               const struct allow_target *t)
{
    bool could_resolve = false;

    if (t->is_addr) {
        return allow_check_addr(l, t->proto, t->family, t->addr, t->port)
                   ? ALLOW_YES
                   : ALLOW_NO;
    }
    for (size_t i = 0; i < l->n; i++) {
        const struct allow_entry *e = &l->v[i];
        if (!allow_port_ok(e, t->proto, t->port)) {
            continue;
        }
        if (e->kind == ALLOW_KIND_NAME) {
            if (strcasecmp(e->name, t->host) == 0) {
                return ALLOW_YES;
            }
        } else {
            could_resolve = true;
        }
    }
    return could_resolve ? ALLOW_RESOLVE : ALLOW_NO;
}
