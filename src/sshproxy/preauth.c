/*
 * The spawner's admission table; see preauth.h.
 *
 * Two small chained hash tables: children by pid, and sources by key
 * with the number of their children before authentication (an entry
 * exists only while that number is above zero, so a flood of one-off
 * addresses leaves nothing behind). Every change of a child's state goes
 * through preauth_move(), the one place that touches the counters.
 */
#include "sshproxy/preauth.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define PREAUTH_BUCKETS 1024 /* power of two */

enum preauth_state {
    PREAUTH_ST_NEW = 0, /* not yet counted */
    PREAUTH_ST_PREAUTH, /* counted: live, unauth, its source */
    PREAUTH_ST_AUTHED,  /* counted: live */
    PREAUTH_ST_GONE,    /* counted nowhere; about to be freed */
};

struct preauth_source {
    struct preauth_source *next;
    struct preauth_src key;
    int count; /* children of this source before authentication */
};

struct preauth_child {
    struct preauth_child *next;
    pid_t pid;
    enum preauth_state state;
    int64_t added_ms;
    struct preauth_source *src; /* while PREAUTH only */
};

struct preauth {
    struct preauth_limits lim;
    uint64_t seed;
    int live, unauth;
    struct preauth_child *children[PREAUTH_BUCKETS];
    struct preauth_source *sources[PREAUTH_BUCKETS];
};

struct preauth *preauth_new(const struct preauth_limits *limits,
                            uint64_t hash_seed)
{
    struct preauth *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        return NULL;
    }
    p->lim = *limits;
    p->seed = hash_seed;
    return p;
}

void preauth_free(struct preauth *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < PREAUTH_BUCKETS; i++) {
        while (p->children[i] != NULL) {
            struct preauth_child *c = p->children[i];
            p->children[i] = c->next;
            free(c);
        }
        while (p->sources[i] != NULL) {
            struct preauth_source *s = p->sources[i];
            p->sources[i] = s->next;
            free(s);
        }
    }
    free(p);
}

void preauth_source_of(const struct sockaddr *sa, socklen_t len,
                       struct preauth_src *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        out->b[10] = 0xff;
        out->b[11] = 0xff;
        memcpy(out->b + 12, &sin->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6 &&
               len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            memcpy(out->b, &sin6->sin6_addr, 16); /* the IPv4 key */
        } else {
            memcpy(out->b, &sin6->sin6_addr, 8); /* the /64 */
        }
    }
}

/* FNV-1a over the key, mixed with a per-process seed so a remote peer
 * cannot aim its addresses at one bucket. */
static size_t preauth_src_hash(const struct preauth *p,
                               const struct preauth_src *k)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ p->seed;

    for (size_t i = 0; i < sizeof(k->b); i++) {
        h ^= k->b[i];
        h *= 0x100000001b3ULL;
    }
    return (size_t)(h ^ (h >> 29)) & (PREAUTH_BUCKETS - 1);
}

static struct preauth_source *preauth_src_find(const struct preauth *p,
                                               const struct preauth_src *k)
{
    struct preauth_source *s = p->sources[preauth_src_hash(p, k)];

    while (s != NULL && memcmp(&s->key, k, sizeof(*k)) != 0) {
        s = s->next;
    }
    return s;
}

static void preauth_src_release(struct preauth *p, struct preauth_source *s)
{
    struct preauth_source **pp = &p->sources[preauth_src_hash(p, &s->key)];

    if (--s->count > 0) {
        return;
    }
    while (*pp != s) {
        pp = &(*pp)->next;
    }
    *pp = s->next;
    free(s);
}

static struct preauth_child **preauth_child_slot(struct preauth *p, pid_t pid)
{
    struct preauth_child **pp =
        &p->children[(size_t)pid & (PREAUTH_BUCKETS - 1)];

    while (*pp != NULL && (*pp)->pid != pid) {
        pp = &(*pp)->next;
    }
    return pp;
}

/*
 * The one state transition: NEW -> PREAUTH -> AUTHED -> GONE (AUTHED may
 * be skipped). Leaving PREAUTH gives back the unauthenticated slot and
 * the source's; reaching GONE gives back the session slot. Going
 * backwards or standing still changes nothing, so a repeated report
 * cannot count twice. Entering PREAUTH needs c->src already set (its
 * count is raised here).
 */
static void preauth_move(struct preauth *p, struct preauth_child *c,
                         enum preauth_state to)
{
    if (to <= c->state) {
        return;
    }
    if (c->state == PREAUTH_ST_NEW) {
        p->live++;
        if (to == PREAUTH_ST_PREAUTH) {
            p->unauth++;
            c->src->count++;
        }
    } else if (c->state == PREAUTH_ST_PREAUTH) {
        p->unauth--;
        preauth_src_release(p, c->src);
        c->src = NULL;
    }
    if (to == PREAUTH_ST_GONE) {
        p->live--;
    }
    c->state = to;
}

enum preauth_verdict preauth_admit(const struct preauth *p,
                                   const struct preauth_src *src, uint32_t roll)
{
    const struct preauth_source *s;
    int n = p->unauth, span, prob;

    if (p->live >= p->lim.max_sessions) {
        return PREAUTH_SESSIONS;
    }
    if (n >= p->lim.full) {
        return PREAUTH_FULL;
    }
    if ((s = preauth_src_find(p, src)) != NULL &&
        s->count >= p->lim.per_source) {
        return PREAUTH_SOURCE;
    }
    if (n < p->lim.start) {
        return PREAUTH_ACCEPT;
    }
    /* OpenSSH's curve: rate% at start, rising linearly to 100% at full. */
    span = p->lim.full - p->lim.start;
    prob = p->lim.rate;
    if (span > 0) {
        prob += (100 - p->lim.rate) * (n - p->lim.start) / span;
    }
    return roll < (uint32_t)prob ? PREAUTH_DROP : PREAUTH_ACCEPT;
}

const char *preauth_verdict_str(enum preauth_verdict v)
{
    switch (v) {
    case PREAUTH_ACCEPT:
        return "accepted";
    case PREAUTH_SESSIONS:
        return "too many sessions";
    case PREAUTH_FULL:
        return "too many unauthenticated connections";
    case PREAUTH_SOURCE:
        return "too many unauthenticated connections from this address";
    case PREAUTH_DROP:
        return "too many unauthenticated connections (random early drop)";
    }
    return "?";
}

int preauth_add(struct preauth *p, pid_t pid, const struct preauth_src *src,
                int64_t now_ms)
{
    struct preauth_child **pp = preauth_child_slot(p, pid), *c;
    struct preauth_source *s;
    size_t h;

    if (*pp != NULL) {
        return ERR_EXISTS;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        return ERR_NOMEM;
    }
    if ((s = preauth_src_find(p, src)) == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL) {
            free(c);
            return ERR_NOMEM;
        }
        s->key = *src;
        h = preauth_src_hash(p, src);
        s->next = p->sources[h];
        p->sources[h] = s;
    }
    c->pid = pid;
    c->added_ms = now_ms;
    c->src = s;
    preauth_move(p, c, PREAUTH_ST_PREAUTH);
    *pp = c;
    return ERR_OK;
}

int preauth_authed(struct preauth *p, pid_t pid)
{
    struct preauth_child *c = *preauth_child_slot(p, pid);

    if (c == NULL) {
        return ERR_NOT_FOUND;
    }
    preauth_move(p, c, PREAUTH_ST_AUTHED);
    return ERR_OK;
}

int preauth_gone(struct preauth *p, pid_t pid)
{
    struct preauth_child **pp = preauth_child_slot(p, pid), *c = *pp;

    if (c == NULL) {
        return ERR_NOT_FOUND;
    }
    preauth_move(p, c, PREAUTH_ST_GONE);
    *pp = c->next;
    free(c);
    return ERR_OK;
}

size_t preauth_overdue(const struct preauth *p, int64_t now_ms,
                       int64_t older_ms, pid_t *out, size_t max)
{
    size_t n = 0;

    if (p->unauth == 0) {
        return 0;
    }
    for (size_t i = 0; i < PREAUTH_BUCKETS && n < max; i++) {
        for (const struct preauth_child *c = p->children[i];
             c != NULL && n < max; c = c->next) {
            if (c->state == PREAUTH_ST_PREAUTH &&
                c->added_ms <= now_ms - older_ms) {
                out[n++] = c->pid;
            }
        }
    }
    return n;
}

int preauth_live(const struct preauth *p)
{
    return p->live;
}

int preauth_unauth(const struct preauth *p)
{
    return p->unauth;
}

int preauth_source_count(const struct preauth *p, const struct preauth_src *src)
{
    const struct preauth_source *s = preauth_src_find(p, src);

    return s != NULL ? s->count : 0;
}
