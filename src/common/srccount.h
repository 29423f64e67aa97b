/*
 * Connections per source: the one table behind every per-source cap of
 * the main process (the HTTP listener's [http] max_connections_per_source
 * and pre-auth WebSockets, http/http_server.c; the peer-node CONNECT
 * proxy's [http_proxy] max_connections_per_source, http/http_proxy.c).
 *
 * A source is an IPv4 address (an IPv4-mapped IPv6 one counts as IPv4),
 * or an IPv6 /64: one host usually holds a whole /64 and can take any
 * address in it, so counting per IPv6 address would let it open 2^64
 * times the cap. Each source keeps SRCCOUNT_KINDS counts the caller
 * names (HTTP: open connections, and upgraded WebSockets not yet
 * authenticated); an entry goes when all its counts are 0.
 *
 * A hash table keyed with a random key (crypto_shorthash), so a client
 * cannot pick addresses that fall into one chain. Not thread-safe: one
 * loop's thread.
 */
#ifndef PORTCULLIS_COMMON_SRCCOUNT_H
#define PORTCULLIS_COMMON_SRCCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRCCOUNT_KINDS 2
#define SRCCOUNT_TEXT_MAX 48 /* "xxxx:xxxx:xxxx:xxxx::/64" and more */

struct srccount;

/* One source and its counts. Callers read n[] and text; the rest is the
 * table's. */
struct srccount_src {
    unsigned n[SRCCOUNT_KINDS];
    char text[SRCCOUNT_TEXT_MAX]; /* "192.0.2.7" or "2001:db8:1:2::/64" */
    struct srccount_src *next;
    uint8_t key[17]; /* family (4 or 6), then the address (v6: 8 bytes) */
};

struct srccount *srccount_new(void);
void srccount_free(struct srccount *sc); /* NULL is fine */

/* The source of the address ip ("192.0.2.7", "::ffff:192.0.2.7",
 * "2001:db8::1"; brackets and a "%zone" are not accepted) as its table
 * key and text. false if ip is not an address. */
bool srccount_source(const char *ip, uint8_t key[17], char *text,
                     size_t textlen);

/* The entry of ip's source, or NULL (none yet, or not an address). */
struct srccount_src *srccount_find(struct srccount *sc, const char *ip);
/* Counts one more of kind for ip's source (made if needed); NULL when
 * out of memory or ip is not an address. */
struct srccount_src *srccount_add(struct srccount *sc, const char *ip,
                                  int kind);
/* One count less of kind (none below 0); the entry is freed when every
 * count is 0. s NULL is fine. */
void srccount_drop(struct srccount *sc, struct srccount_src *s, int kind);
/* Moves one count of s from kind `from` to kind `to`. */
void srccount_move(struct srccount_src *s, int from, int to);
/* How many sources have an entry (for tests). */
size_t srccount_size(const struct srccount *sc);

#endif
