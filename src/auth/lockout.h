/*
 * Failed-login throttling: a bounded in-memory table of failure counters
 * keyed by strings such as "password:id:<uuid>" or "addr:192.0.2.7". After
 * max_failures failures within window seconds the key is locked for
 * lockout seconds; every attempt for a locked key fails without checking
 * the secret. The table has a fixed number of slots; when full, the oldest
 * entry is evicted, so an attacker cannot grow memory.
 */
#ifndef PORTCULLIS_LOCKOUT_H
#define PORTCULLIS_LOCKOUT_H

#include <stdbool.h>
#include <stddef.h>
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
/* Takes back the newest failure of key (one counted in advance for an
 * attempt that then succeeded); never lifts a lock. */
void lockout_forgive(struct lockout *l, const char *key);

/*
 * The keys callers count under (docs/security.md, "Lockouts"). A factor
 * is locked per user, never per spelling of a login: user_id is the ID the
 * login resolved to (any case); when the login names no user, user_id is
 * NULL or "" and the key is the lowercased name, so that an unknown name
 * locks exactly as a known one does and lockouts do not reveal which users
 * exist. out gets LOCKOUT_KEY_MAX bytes at most (longer names are cut:
 * they only need to stay distinct enough to count).
 */
#define LOCKOUT_KEY_MAX 400
enum lockout_factor {
    LOCKOUT_PASSWORD, /* "password" */
    LOCKOUT_TOTP,     /* "totp" */
};
void lockout_key_factor(char *out, size_t outlen, enum lockout_factor f,
                        const char *user_id, const char *name);
/* "addr:<ip>": the source address, for every user. */
void lockout_key_addr(char *out, size_t outlen, const char *ip);
/* The factor's name as the report and audit log say it. */
const char *lockout_factor_str(enum lockout_factor f);

#endif
