/*
 * The spawner's admission table (pre-authentication limits, SPEC §10).
 *
 * The spawner forks one session child per TCP connection. Before it forks
 * it asks this table whether the connection may have a child at all, so a
 * flood of connections costs an accept() and a close() each, never a
 * fork. The table knows every child the spawner forked and has not yet
 * reaped, whether that child is still before authentication, and how many
 * such children each source address has:
 *
 *   [ssh] max_sessions             children in all
 *   [ssh] max_startups             start:rate:full, as OpenSSH's
 *                                  MaxStartups: from `start` children
 *                                  before authentication on, a new
 *                                  connection is dropped with probability
 *                                  rate% growing linearly to 100% at
 *                                  `full` (a single number N is N:100:N)
 *   [ssh] max_startups_per_source  children before authentication per
 *                                  source (IPv4 address, IPv6 /64)
 *
 * A child's slot before authentication is given back exactly once: when
 * the main process reports that the child authenticated
 * (preauth_authed), or when the spawner reaps it (preauth_gone),
 * whichever comes first. Both go through one transition function
 * (preauth.c), so no path can forget the counters or apply them twice,
 * and reaping is the ground truth: a child that dies in any state frees
 * its slots when it is reaped.
 *
 * Pure: no I/O, no clock and no randomness of its own (callers pass the
 * time and a random roll), so unit tests drive it directly.
 *
 * Ownership: preauth_new() returns a table the caller frees with
 * preauth_free() (NULL is a no-op).
 */
#ifndef PORTCULLIS_PREAUTH_H
#define PORTCULLIS_PREAUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct preauth_limits {
    int start;        /* unauthenticated children where dropping starts */
    int rate;         /* drop probability there, percent (1-100) */
    int full;         /* unauthenticated children where all are refused */
    int per_source;   /* unauthenticated children per source */
    int max_sessions; /* children in all */
};

/* A source: an IPv4 address (as ::ffff:a.b.c.d) or an IPv6 /64 (the rest
 * zero), since one IPv6 host usually holds a whole /64. */
struct preauth_src {
    uint8_t b[16];
};

enum preauth_verdict {
    PREAUTH_ACCEPT = 0,
    PREAUTH_SESSIONS, /* max_sessions children are alive */
    PREAUTH_FULL,     /* `full` children are before authentication */
    PREAUTH_SOURCE,   /* this source has per_source of them */
    PREAUTH_DROP,     /* random early drop between start and full */
};

struct preauth;

struct preauth *preauth_new(const struct preauth_limits *limits,
                            uint64_t hash_seed);
void preauth_free(struct preauth *p);

/* The source key of a peer address (AF_INET or AF_INET6; anything else
 * maps to the all-zero key). */
void preauth_source_of(const struct sockaddr *sa, socklen_t len,
                       struct preauth_src *out);

/* May a new connection from src have a child? roll is uniform in
 * [0, 100) and decides a random early drop. */
enum preauth_verdict preauth_admit(const struct preauth *p,
                                   const struct preauth_src *src,
                                   uint32_t roll);
const char *preauth_verdict_str(enum preauth_verdict v);

/* A child was forked for src at now_ms: it holds a slot before
 * authentication. ERR_EXISTS if pid is already in the table, ERR_NOMEM. */
int preauth_add(struct preauth *p, pid_t pid, const struct preauth_src *src,
                int64_t now_ms);
/* The main process says pid authenticated: its slots before
 * authentication are given back (once; later calls change nothing).
 * ERR_NOT_FOUND if pid is not in the table (already reaped). */
int preauth_authed(struct preauth *p, pid_t pid);
/* pid was reaped: gives back whatever it held and forgets it.
 * ERR_NOT_FOUND if pid is not in the table. */
int preauth_gone(struct preauth *p, pid_t pid);

/* Up to max pids of children still before authentication that were
 * added at or before now_ms - older_ms (overdue: their own login grace
 * timer should have ended them); returns how many were written. */
size_t preauth_overdue(const struct preauth *p, int64_t now_ms,
                       int64_t older_ms, pid_t *out, size_t max);

int preauth_live(const struct preauth *p);   /* children in the table */
int preauth_unauth(const struct preauth *p); /* of them before auth */
int preauth_source_count(const struct preauth *p,
                         const struct preauth_src *src);

#endif
