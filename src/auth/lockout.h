/*
 * Failed-login throttling: a bounded in-memory table of failure counters
 * keyed by strings such as "user:alice" or "addr:192.0.2.7". After
 * max_failures failures within window seconds the key is locked for
 * lockout seconds; every attempt for a locked key fails without checking
 * the secret. The table has a fixed number of slots; when full, the oldest
 * entry is evicted, so an attacker cannot grow memory.
 */
#ifndef PORTCULLIS_LOCKOUT_H
#define PORTCULLIS_LOCKOUT_H

#include <stdbool.h>
#include <stdint.h>

struct lockout;

struct lockout *lockout_new(int max_failures, int window_seconds,
                            int lockout_seconds, unsigned slots);
void lockout_free(struct lockout *l);
/* true while key is locked at time now. */
bool lockout_is_locked(struct lockout *l, const char *key, int64_t now);
/* Counts a failure; returns true if this failure locked the key. */
bool lockout_fail(struct lockout *l, const char *key, int64_t now);
/* Clears the counter after a success. */
void lockout_success(struct lockout *l, const char *key);

#endif
