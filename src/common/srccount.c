/*
 * Connections per source; see srccount.h.
 */
#include "common/srccount.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>

#define SRCCOUNT_BUCKETS 256

struct srccount {
    struct srccount_src *b[SRCCOUNT_BUCKETS];
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    size_t n;
};

struct srccount *srccount_new(void)
{
    struct srccount *sc = calloc(1, sizeof(*sc));

    if (sc != NULL) {
        randombytes_buf(sc->hkey, sizeof(sc->hkey));
    }
    return sc;
}

void srccount_free(struct srccount *sc)
{
    struct srccount_src *s, *next;

    if (sc == NULL) {
        return;
    }
    for (size_t i = 0; i < SRCCOUNT_BUCKETS; i++) {
        for (s = sc->b[i]; s != NULL; s = next) {
            next = s->next;
            free(s);
        }
    }
    free(sc);
}

bool srccount_source(const char *ip, uint8_t key[17], char *text,
                     size_t textlen)
{
    uint8_t a[16], net[16];
    char buf[INET6_ADDRSTRLEN];

    memset(key, 0, 17);
    if (ip == NULL) {
        return false;
    }
    if (inet_pton(AF_INET, ip, a) == 1) {
        key[0] = 4;
        memcpy(key + 1, a, 4);
        snprintf(text, textlen, "%s", ip);
        return true;
    }
    if (inet_pton(AF_INET6, ip, a) != 1) {
        return false;
    }
    if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a)) {
        key[0] = 4;
        memcpy(key + 1, a + 12, 4);
        inet_ntop(AF_INET, a + 12, buf, sizeof(buf));
        snprintf(text, textlen, "%s", buf);
        return true;
    }
    key[0] = 6;
    memcpy(key + 1, a, 8);
    memset(net, 0, sizeof(net));
    memcpy(net, a, 8);
    inet_ntop(AF_INET6, net, buf, sizeof(buf));
    snprintf(text, textlen, "%s/64", buf);
    return true;
}

static size_t srccount_bucket(const struct srccount *sc, const uint8_t *key)
{
    uint64_t x;

    crypto_shorthash((unsigned char *)&x, key, 17, sc->hkey);
    return (size_t)(x % SRCCOUNT_BUCKETS);
}

static struct srccount_src *srccount_lookup(struct srccount *sc,
                                            const uint8_t *key)
{
    struct srccount_src *s;

    for (s = sc->b[srccount_bucket(sc, key)]; s != NULL; s = s->next) {
        if (memcmp(s->key, key, 17) == 0) {
            return s;
        }
    }
    return NULL;
}

struct srccount_src *srccount_find(struct srccount *sc, const char *ip)
{
    uint8_t key[17];
    char text[SRCCOUNT_TEXT_MAX];

    if (!srccount_source(ip, key, text, sizeof(text))) {
        return NULL;
    }
    return srccount_lookup(sc, key);
}

struct srccount_src *srccount_add(struct srccount *sc, const char *ip, int kind)
{
    struct srccount_src *s;
    uint8_t key[17];
    char text[SRCCOUNT_TEXT_MAX];
    size_t b;

    if (kind < 0 || kind >= SRCCOUNT_KINDS ||
        !srccount_source(ip, key, text, sizeof(text))) {
        return NULL;
    }
    if ((s = srccount_lookup(sc, key)) == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL) {
            return NULL;
        }
        memcpy(s->key, key, sizeof(key));
        memcpy(s->text, text, sizeof(text));
        b = srccount_bucket(sc, key);
        s->next = sc->b[b];
        sc->b[b] = s;
        sc->n++;
    }
    s->n[kind]++;
    return s;
}

void srccount_drop(struct srccount *sc, struct srccount_src *s, int kind)
{
    struct srccount_src **pp;

    if (s == NULL || kind < 0 || kind >= SRCCOUNT_KINDS) {
        return;
    }
    if (s->n[kind] > 0) {
        s->n[kind]--;
    }
    for (int k = 0; k < SRCCOUNT_KINDS; k++) {
        if (s->n[k] > 0) {
            return;
        }
    }
    for (pp = &sc->b[srccount_bucket(sc, s->key)]; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            sc->n--;
            free(s);
            return;
        }
    }
}

void srccount_move(struct srccount_src *s, int from, int to)
{
    if (s == NULL || from < 0 || from >= SRCCOUNT_KINDS || to < 0 ||
        to >= SRCCOUNT_KINDS) {
        return;
    }
    s->n[to]++;
    if (s->n[from] > 0) {
        s->n[from]--;
    }
}

size_t srccount_size(const struct srccount *sc)
{
    return sc != NULL ? sc->n : 0;
}
