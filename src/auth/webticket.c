/*
 * One-time tickets of the browser terminal; see webticket.h.
 *
 * A fixed table of WEBTICKET_MAX slots, allocated once: issuing never
 * allocates, and a flood of terminal openings is refused (ERR_DENIED)
 * rather than growing memory. Expired slots are reclaimed when a ticket
 * is issued. Everything runs in the main process's loop thread.
 */
#include "auth/webticket.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"

#define WEBTICKET_RAW 32
#define WEBTICKET_PREFIX_LEN (sizeof(WEBTICKET_PREFIX) - 1)

struct webticket {
    bool used;
    uint8_t hash[crypto_hash_sha256_BYTES];
    int64_t expires_ms;
    char user_id[STORE_ID_MAX + 1];
    char asset_id[STORE_ID_MAX + 1];
    char local_ip[WEBTICKET_IP_MAX + 1];
    uint16_t local_port;
    char browser_ip[WEBTICKET_IP_MAX + 1];
    uint16_t browser_port;
};

struct webtickets {
    struct webticket slot[WEBTICKET_MAX];
};

struct webtickets *webtickets_new(void)
{
    if (sodium_init() < 0) {
        return NULL;
    }
    return calloc(1, sizeof(struct webtickets));
}

void webtickets_free(struct webtickets *t)
{
    if (t == NULL) {
        return;
    }
    sodium_memzero(t, sizeof(*t));
    free(t);
}

bool webticket_is_ticket(const char *password)
{
    return password != NULL &&
           strncmp(password, WEBTICKET_PREFIX, WEBTICKET_PREFIX_LEN) == 0;
}

static bool webticket_copy(char *dst, size_t dstlen, const char *src)
{
    size_t n;

    if (src == NULL || (n = strlen(src)) == 0 || n >= dstlen) {
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

/* The SHA-256 of a well-formed ticket string; false if malformed. */
static bool webticket_hash(const char *ticket, uint8_t *hash)
{
    if (ticket == NULL || strlen(ticket) != WEBTICKET_STR_LEN ||
        !webticket_is_ticket(ticket)) {
        return false;
    }
    for (size_t i = WEBTICKET_PREFIX_LEN; i < WEBTICKET_STR_LEN; i++) {
        char ch = ticket[i];

        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return false;
        }
    }
    crypto_hash_sha256(hash, (const unsigned char *)ticket, WEBTICKET_STR_LEN);
    return true;
}

int webticket_issue(struct webtickets *t, const char *user_id,
                    const char *asset_id, const char *local_ip,
                    uint16_t local_port, const char *browser_ip,
                    uint16_t browser_port, int64_t now_ms,
                    char out[WEBTICKET_STR_LEN + 1])
{
    uint8_t raw[WEBTICKET_RAW];
    struct webticket *free_slot = NULL, *e;

    out[0] = '\0';
    for (size_t i = 0; i < WEBTICKET_MAX; i++) {
        e = &t->slot[i];
        if (e->used && e->expires_ms <= now_ms) {
            sodium_memzero(e, sizeof(*e));
        }
        if (!e->used && free_slot == NULL) {
            free_slot = e;
        }
    }
    if (free_slot == NULL) {
        return ERR_DENIED;
    }
    e = free_slot;
    if (!webticket_copy(e->user_id, sizeof(e->user_id), user_id) ||
        !webticket_copy(e->asset_id, sizeof(e->asset_id), asset_id) ||
        !webticket_copy(e->local_ip, sizeof(e->local_ip), local_ip) ||
        !webticket_copy(e->browser_ip, sizeof(e->browser_ip), browser_ip)) {
        sodium_memzero(e, sizeof(*e));
        return ERR_INVALID;
    }
    randombytes_buf(raw, sizeof(raw));
    memcpy(out, WEBTICKET_PREFIX, WEBTICKET_PREFIX_LEN);
    sodium_bin2hex(out + WEBTICKET_PREFIX_LEN, 2 * WEBTICKET_RAW + 1, raw,
                   sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    crypto_hash_sha256(e->hash, (const unsigned char *)out, WEBTICKET_STR_LEN);
    e->local_port = local_port;
    e->browser_port = browser_port;
    e->expires_ms = now_ms + WEBTICKET_TTL_MS;
    e->used = true;
    return ERR_OK;
}

/* The slot holding hash, or NULL. Every slot's hash is compared in
 * constant time. */
static struct webticket *webticket_find(struct webtickets *t,
                                        const uint8_t *hash)
{
    struct webticket *found = NULL;

    for (size_t i = 0; i < WEBTICKET_MAX; i++) {
        if (t->slot[i].used && sodium_memcmp(t->slot[i].hash, hash,
                                             crypto_hash_sha256_BYTES) == 0) {
            found = &t->slot[i];
        }
    }
    return found;
}

int webticket_redeem(struct webtickets *t, const char *ticket,
                     const char *peer_ip, uint16_t peer_port, int64_t now_ms,
                     struct webticket_grant *g)
{
    uint8_t hash[crypto_hash_sha256_BYTES];
    struct webticket *e;
    struct webticket copy;
    int r = ERR_AUTH;

    memset(g, 0, sizeof(*g));
    if (!webticket_hash(ticket, hash) ||
        (e = webticket_find(t, hash)) == NULL) {
        return ERR_AUTH;
    }
    /* Single use: gone whatever the binding says. */
    copy = *e;
    sodium_memzero(e, sizeof(*e));
    if (copy.expires_ms > now_ms && peer_ip != NULL &&
        strcmp(copy.local_ip, peer_ip) == 0 && copy.local_port == peer_port) {
        memcpy(g->user_id, copy.user_id, sizeof(g->user_id));
        memcpy(g->asset_id, copy.asset_id, sizeof(g->asset_id));
        memcpy(g->browser_ip, copy.browser_ip, sizeof(g->browser_ip));
        /* as the proxy writes a client's address: "ip:port" */
        snprintf(g->browser_addr, sizeof(g->browser_addr), "%s:%u",
                 copy.browser_ip, (unsigned)copy.browser_port);
        r = ERR_OK;
    }
    sodium_memzero(&copy, sizeof(copy));
    sodium_memzero(hash, sizeof(hash));
    return r;
}

void webticket_revoke(struct webtickets *t, const char *ticket)
{
    uint8_t hash[crypto_hash_sha256_BYTES];
    struct webticket *e;

    if (t != NULL && webticket_hash(ticket, hash) &&
        (e = webticket_find(t, hash)) != NULL) {
        sodium_memzero(e, sizeof(*e));
    }
}
