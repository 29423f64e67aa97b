/*
 * The agent's allow-list (docs/agent-protocol.md §4): which targets the
 * server may ask this agent to connect to. Pure: strings in, verdicts out,
 * no resolving and no I/O, so it is unit-tested and fuzzed with hostile
 * host/port pairs as the server could send them.
 *
 * Entries are "[udp:]HOST:PORT": HOST a name, an IPv4 address, a bracketed
 * IPv6 address, or a CIDR ("10.0.0.0/8", "[fd00::]/8"); PORT a number, a
 * range "LO-HI" or "*". Without "udp:" an entry allows TCP only.
 *
 * A target is checked in two steps. allow_check() looks at the target as
 * the server sent it: an address literal is decided at once; a name is
 * allowed when a name entry equals it (case-insensitive), refused when no
 * address entry could match it either, and otherwise needs resolving, after
 * which every address to be used must pass allow_check_addr().
 *
 * Ownership: struct allow_list owns its entries; allow_list_clear() frees
 * them. Nothing else allocates.
 */
#ifndef PORTCULLIS_AGENT_ALLOW_H
#define PORTCULLIS_AGENT_ALLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ALLOW_MAX_ENTRIES 256 /* entries in one list */
#define ALLOW_MAX_NAME 253    /* a DNS name */
#define ALLOW_MAX_TARGET 300  /* the server's host string, "udp:" included */

enum allow_proto { ALLOW_TCP = 0, ALLOW_UDP = 1 };

enum allow_kind {
    ALLOW_KIND_NAME, /* equal names only */
    ALLOW_KIND_NET,  /* an address (full-length prefix) or a CIDR */
};

struct allow_entry {
    enum allow_proto proto;
    enum allow_kind kind;
    char name[ALLOW_MAX_NAME + 1]; /* kind NAME: lower-case */
    int family;                    /* kind NET: AF_INET or AF_INET6 */
    uint8_t addr[16];              /* kind NET: network, host bits zero */
    unsigned prefix;               /* kind NET: prefix length in bits */
    uint16_t port_lo, port_hi;     /* inclusive */
};

struct allow_list {
    struct allow_entry *v; /* n entries, heap */
    size_t n;
};

/* A target as the server asked for it (a direct-tcpip open). */
struct allow_target {
    enum allow_proto proto;
    char host[ALLOW_MAX_NAME + 1]; /* without "udp:" and brackets */
    bool is_addr;                  /* host is an address literal */
    int family;                    /* is_addr: AF_INET or AF_INET6 */
    uint8_t addr[16];              /* is_addr */
    uint16_t port;
};

enum allow_verdict {
    ALLOW_NO = 0,  /* refuse */
    ALLOW_YES,     /* allowed as named */
    ALLOW_RESOLVE, /* a name: allowed only for addresses that pass
                      allow_check_addr() */
};

/* Parses one entry. On error returns ERR_INVALID with a one-line reason
 * in why (e.g. "bad port range '9-1'"). */
int allow_entry_parse(const char *s, struct allow_entry *e, char *why,
                      size_t whylen);
/* Parses and appends one entry (ERR_TOO_LONG past ALLOW_MAX_ENTRIES). */
int allow_list_add(struct allow_list *l, const char *s, char *why,
                   size_t whylen);
/* Appends the default entries: the agent's own loopback, TCP and UDP. */
int allow_list_add_defaults(struct allow_list *l);
void allow_list_clear(struct allow_list *l);

/* Parses the host and port of a direct-tcpip open ("udp:" prefix for UDP;
 * an IPv6 literal with or without brackets). ERR_INVALID with why for a
 * port outside 1-65535, an empty or over-long host, or a host that is
 * neither an address nor a valid DNS name. */
int allow_target_parse(const char *host, uint32_t port, struct allow_target *t,
                       char *why, size_t whylen);
enum allow_verdict allow_check(const struct allow_list *l,
                               const struct allow_target *t);
/* An address a name resolved to (family AF_INET: 4 bytes, AF_INET6: 16;
 * an IPv4-mapped IPv6 address is checked as IPv4). */
bool allow_check_addr(const struct allow_list *l, enum allow_proto proto,
                      int family, const uint8_t *addr, uint16_t port);

#endif
