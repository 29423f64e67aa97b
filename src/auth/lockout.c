/*
 * Failed-login throttling; see lockout.h.
 *
 * The table lives in the server's main process and is fed with keys an
 * attacker chooses (user names, addresses), so it must stay small and must
 * not be easy to flush:
 *
 *  - Keys are stored as a 16-byte keyed BLAKE2b hash (random key per
 *    table): fixed-size slots whatever the key's length, no user names kept
 *    in memory, and no way to aim two keys at one slot.
 *  - The window slides: each slot keeps the times of its last max_failures
 *    failures in a ring, and a key locks when the oldest of those is less
 *    than window seconds old. A fixed window that restarts would let
 *    2 * max_failures - 2 guesses through around its edge.
 *  - When every slot is taken, the victim is, in order: a slot with no
 *    lock and no failure inside the window (it tells us nothing), then the
 *    least recently used unlocked slot, and only then the least recently
 *    used locked one. Filling the table with fresh names therefore does not
 *    lift a lock unless the attacker locks more keys than there are slots.
 *
 * Memory is slots * (slot + max_failures timestamps), allocated once in
 * lockout_new(); max_failures is capped at LOCKOUT_MAX_FAILURES for that
 * reason.
 */
#include "auth/lockout.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define LOCKOUT_HASH_LEN 16
#define LOCKOUT_MAX_FAILURES 100
#define LOCKOUT_MAX_SLOTS (1U << 20)

struct lockout_slot {
    uint8_t hash[LOCKOUT_HASH_LEN];
    bool used;
    int64_t last;         /* last failure or lock check: for eviction */
    int64_t locked_until; /* locked while now < locked_until */
    unsigned nfail;       /* valid times in the ring (<= max_failures) */
    unsigned head;        /* where the next failure time goes */
};

struct lockout {
    int max_failures;
    int window;
    int lockout_seconds;
    unsigned nslots;
    uint8_t hash_key[crypto_generichash_KEYBYTES];
    struct lockout_slot *slots;
    int64_t *times; /* nslots rings of max_failures failure times */
};

struct lockout *lockout_new(int max_failures, int window_seconds,
                            int lockout_seconds, unsigned slots)
{
    struct lockout *l = NULL;

    if (max_failures < 1 || max_failures > LOCKOUT_MAX_FAILURES ||
        window_seconds < 1 || lockout_seconds < 0 || slots == 0 ||
        slots > LOCKOUT_MAX_SLOTS || sodium_init() < 0) {
        return NULL;
    }
    if ((l = calloc(1, sizeof(*l))) == NULL) {
        return NULL;
    }
    l->max_failures = max_failures;
    l->window = window_seconds;
    l->lockout_seconds = lockout_seconds;
    l->nslots = slots;
    randombytes_buf(l->hash_key, sizeof(l->hash_key));
    l->slots = calloc(slots, sizeof(*l->slots));
    l->times = calloc((size_t)slots * (size_t)max_failures, sizeof(int64_t));
    if (l->slots == NULL || l->times == NULL) {
        lockout_free(l);
        return NULL;
    }
    return l;
}

void lockout_free(struct lockout *l)
{
    if (l == NULL) {
        return;
    }
    sodium_memzero(l->hash_key, sizeof(l->hash_key));
    free(l->slots);
    free(l->times);
    free(l);
}

static void lockout_hash(const struct lockout *l, const char *key,
                         uint8_t out[LOCKOUT_HASH_LEN])
{
    crypto_generichash(out, LOCKOUT_HASH_LEN, (const unsigned char *)key,
                       strlen(key), l->hash_key, sizeof(l->hash_key));
}

static struct lockout_slot *lockout_find(struct lockout *l,
                                         const uint8_t hash[LOCKOUT_HASH_LEN])
{
    unsigned i;

    for (i = 0; i < l->nslots; i++) {
        if (l->slots[i].used &&
            memcmp(l->slots[i].hash, hash, LOCKOUT_HASH_LEN) == 0) {
            return &l->slots[i];
        }
    }
    return NULL;
}

static int64_t *lockout_ring(struct lockout *l, const struct lockout_slot *s)
{
    return l->times + (size_t)(s - l->slots) * (size_t)l->max_failures;
}

/* The most recent failure time of s (s->nfail > 0). */
static int64_t lockout_newest(struct lockout *l, const struct lockout_slot *s)
{
    unsigned i = s->head == 0 ? (unsigned)l->max_failures - 1 : s->head - 1;

    return lockout_ring(l, s)[i];
}

/* Eviction rank: lower goes first (see the comment at the top). */
static int lockout_rank(struct lockout *l, const struct lockout_slot *s,
                        int64_t now)
{
    if (!s->used) {
        return 0;
    }
    if (s->locked_until > now) {
        return 3;
    }
    if (s->nfail == 0 || now - lockout_newest(l, s) >= l->window) {
        return 1;
    }
    return 2;
}

static struct lockout_slot *lockout_take(struct lockout *l,
                                         const uint8_t hash[LOCKOUT_HASH_LEN],
                                         int64_t now)
{
    struct lockout_slot *victim = &l->slots[0];
    int best = lockout_rank(l, victim, now), rank;
    unsigned i;

    for (i = 1; i < l->nslots && best > 0; i++) {
        struct lockout_slot *s = &l->slots[i];

        rank = lockout_rank(l, s, now);
        if (rank < best || (rank == best && s->last < victim->last)) {
            victim = s;
            best = rank;
        }
    }
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->hash, hash, LOCKOUT_HASH_LEN);
    victim->used = true;
    victim->last = now;
    return victim;
}

bool lockout_is_locked(struct lockout *l, const char *key, int64_t now)
{
    uint8_t hash[LOCKOUT_HASH_LEN];
    struct lockout_slot *s;

    if (l == NULL || key == NULL || l->lockout_seconds == 0) {
        return false;
    }
    lockout_hash(l, key, hash);
    if ((s = lockout_find(l, hash)) == NULL) {
        return false;
    }
    if (now < s->locked_until) {
        s->last = now;
        return true;
    }
    return false;
}

bool lockout_fail(struct lockout *l, const char *key, int64_t now)
{
    uint8_t hash[LOCKOUT_HASH_LEN];
    struct lockout_slot *s;
    int64_t *ring;

    if (l == NULL || key == NULL || l->lockout_seconds == 0) {
        return false;
    }
    lockout_hash(l, key, hash);
    if ((s = lockout_find(l, hash)) == NULL) {
        s = lockout_take(l, hash, now);
    }
    s->last = now;
    /* Failures while locked neither extend the lock nor count towards the
     * next one, so nobody can keep a user locked out for ever by trying
     * faster than the lock expires. */
    if (now < s->locked_until) {
        return false;
    }
    ring = lockout_ring(l, s);
    ring[s->head] = now;
    s->head = (s->head + 1) % (unsigned)l->max_failures;
    if (s->nfail < (unsigned)l->max_failures) {
        s->nfail++;
    }
    /* When the ring is full, ring[head] is the oldest of the last
     * max_failures failures; all of them lie within the window iff it
     * does. */
    if (s->nfail == (unsigned)l->max_failures &&
        now - ring[s->head] < l->window) {
        s->locked_until = now + l->lockout_seconds;
        s->nfail = 0;
        s->head = 0;
        return true;
    }
    return false;
}

void lockout_success(struct lockout *l, const char *key)
{
    uint8_t hash[LOCKOUT_HASH_LEN];
    struct lockout_slot *s;

    if (l == NULL || key == NULL) {
        return;
    }
    lockout_hash(l, key, hash);
    if ((s = lockout_find(l, hash)) == NULL) {
        return;
    }
    /* A success never lifts a lock (callers check lockout_is_locked before
     * the secret, so it should not happen); it only forgets failures. */
    if (s->locked_until == 0) {
        memset(s, 0, sizeof(*s));
    } else {
        s->nfail = 0;
        s->head = 0;
    }
}

void lockout_forgive(struct lockout *l, const char *key)
{
    uint8_t hash[LOCKOUT_HASH_LEN];
    struct lockout_slot *s;

    if (l == NULL || key == NULL) {
        return;
    }
    lockout_hash(l, key, hash);
    if ((s = lockout_find(l, hash)) == NULL || s->nfail == 0 ||
        s->locked_until != 0) {
        return;
    }
    s->head = s->head == 0 ? (unsigned)l->max_failures - 1 : s->head - 1;
    s->nfail--;
}

const char *lockout_factor_str(enum lockout_factor f)
{
    return f == LOCKOUT_TOTP ? "totp" : "password";
}

/* Lowercased copy of s after prefix; IDs are UUIDs (either case names one
 * user), and an unknown name is counted whatever its case. */
static void lockout_key_lower(char *out, size_t outlen, const char *prefix,
                              const char *s)
{
    size_t n;

    if (outlen == 0) {
        return;
    }
    snprintf(out, outlen, "%s%s", prefix, s != NULL ? s : "");
    for (n = strlen(prefix); out[n] != '\0'; n++) {
        out[n] = (char)tolower((unsigned char)out[n]);
    }
}

void lockout_key_factor(char *out, size_t outlen, enum lockout_factor f,
                        const char *user_id, const char *name)
{
    char prefix[32];
    bool known = user_id != NULL && user_id[0] != '\0';

    snprintf(prefix, sizeof(prefix), "%s:%s:", lockout_factor_str(f),
             known ? "id" : "name");
    lockout_key_lower(out, outlen, prefix, known ? user_id : name);
}

void lockout_key_addr(char *out, size_t outlen, const char *ip)
{
    lockout_key_lower(out, outlen, "addr:", ip);
}
