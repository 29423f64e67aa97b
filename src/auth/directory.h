/*
 * Directory (LDAP) logins: "alice@contoso.com" is checked by binding to
 * the directory configured for contoso.com (directory_conf.h) as alice,
 * with her password; her entry gives her display name, mail and groups,
 * and the section's mapping turns those groups into Portcullis groups.
 * docs/directories.md says how to configure it and why OpenLDAP's libldap.
 *
 * Three layers:
 *
 *  - the escapers (RFC 4515 for filter values, RFC 4514 for DN values):
 *    pure, unit-tested and fuzzed, the only way user input reaches a
 *    filter or a DN;
 *  - directory_check(): one whole check with libldap's synchronous calls
 *    (connect, TLS, bind, entry, groups, mapping). It blocks, so serve
 *    runs it on the loop's worker threads only; `portcullis directory
 *    test` runs it in line and shows each step (trace);
 *  - the service: runs checks off the loop with a cap on concurrent binds
 *    per directory and a bounded queue, and answers every request within
 *    the directory's timeout_seconds whatever libldap does (a timer in
 *    the loop's thread answers "unreachable" and the late result is
 *    dropped), so a directory that is down delays nobody else.
 *
 * An empty password never reaches a bind (a simple bind with an empty
 * password is an anonymous bind, which "succeeds").
 */
#ifndef PORTCULLIS_DIRECTORY_H
#define PORTCULLIS_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/directory_conf.h"

#define DIRECTORY_USER_MAX 64     /* the user part of a login */
#define DIRECTORY_DN_MAX 1024     /* a DN we keep */
#define DIRECTORY_VALUE_MAX 256   /* display name, mail, group name */
#define DIRECTORY_GROUPS_MAX 256  /* groups of one user, nested included */
#define DIRECTORY_FILTER_MAX 4096 /* a filter after substitution */

/* RFC 4515: a value for a filter (assertion value): '*', '(', ')', '\'
 * and NUL become \2a \28 \29 \5c \00. in is len bytes. ERR_OK, or
 * ERR_TOO_LONG when out (always terminated if outlen > 0) is too small. */
int directory_escape_filter(const char *in, size_t len, char *out,
                            size_t outlen);
/* RFC 4514: a value for a DN's attribute value: '"', '+', ',', ';', '<',
 * '>', '\', '=' with a backslash; a leading '#' or space and a trailing
 * space escaped; NUL and other control bytes as \XX. Same returns. */
int directory_escape_dn(const char *in, size_t len, char *out, size_t outlen);
/* Replaces every "{name}" in tmpl with value (escaped by the caller);
 * ERR_TOO_LONG if out is too small. */
int directory_template(const char *tmpl, const char *name, const char *value,
                       char *out, size_t outlen);

struct directory_group {
    char dn[DIRECTORY_DN_MAX + 1];
    char name[DIRECTORY_VALUE_MAX + 1]; /* group_name_attribute or first RDN */
};

struct directory_result {
    /* ERR_OK; ERR_AUTH: wrong password or no such user (the directory
     * does not say which), or an empty password; ERR_NOT_FOUND: the
     * password was right but user_filter finds no entry (disabled);
     * ERR_CONNECT: no server answered; ERR_TIMEOUT: no answer within
     * timeout_seconds; ERR_DENIED: the directory refused otherwise;
     * ERR_INVALID: a user name the directory cannot be asked about;
     * ERR_NOMEM. */
    int status;
    char why[256]; /* for the user, the report row and the audit */
    char dn[DIRECTORY_DN_MAX + 1];
    char display_name[DIRECTORY_VALUE_MAX + 1];
    char mail[DIRECTORY_VALUE_MAX + 1];
    struct directory_group *groups; /* heap */
    size_t ngroups;
    char **mapped; /* Portcullis group names, heap; no duplicates */
    size_t nmapped;
};

void directory_result_clear(struct directory_result *res);

/* Each step of a check, for `portcullis directory test`: step is
 * "connect", "tls", "bind", "entry", "groups" or "map". */
typedef void (*directory_trace_fn)(void *arg, const char *step,
                                   const char *text);

/*
 * One whole check of user's password against d, blocking (at most about
 * nurls * connect_timeout_seconds + a few timeout_seconds). svc_password
 * is the opened bind_password_sealed (NULL when d has no bind_dn). res is
 * filled in every case (res->status is returned too). trace may be NULL.
 */
int directory_check(const struct directory_conf *d, const char *svc_password,
                    const char *user, const char *password,
                    struct directory_result *res, directory_trace_fn trace,
                    void *arg);

/*
 * For a key login (no password): does the directory still know user?
 * Binds as the service account (bind_dn; ERR_DENIED without one), reads
 * the entry through user_filter (ERR_NOT_FOUND: deleted or disabled) and
 * the groups, as directory_check does.
 */
int directory_lookup(const struct directory_conf *d, const char *svc_password,
                     const char *user, struct directory_result *res,
                     directory_trace_fn trace, void *arg);

/* --- the service, in the loop's thread --- */

struct loop;
struct vault;
struct config;
struct directory_service;

/* The directories of cfg, their service passwords opened with v. NULL and
 * why when the config or a sealed password is wrong; with no directories
 * configured, a service that knows none (directory_service_count 0). l
 * may be NULL: a check of the setup only. */
struct directory_service *directory_service_new(struct loop *l,
                                                const struct config *cfg,
                                                const struct vault *v,
                                                char *why, size_t whylen);
/* Running checks finish on their threads and are then dropped. */
void directory_service_free(struct directory_service *s);
size_t directory_service_count(const struct directory_service *s);
/* Worker threads its checks may hold at once (the sum of the caps). */
unsigned directory_service_workers(const struct directory_service *s);
const struct directory_conf *
directory_service_find(const struct directory_service *s, const char *domain);
/* The i-th directory, i < directory_service_count(s). */
const struct directory_conf *
directory_service_nth(const struct directory_service *s, size_t i);

/* done(ctx, tag, res) runs later in the loop's thread, exactly once per
 * accepted request unless forgotten; res is valid during the call only. */
typedef void (*directory_done_fn)(void *ctx, uint64_t tag,
                                  const struct directory_result *res);
/* Returns ERR_OK (done will run), ERR_NOT_FOUND (no directory for
 * domain), ERR_DENIED (busy: cap running and the queue full) or ERR_NOMEM
 * / ERR_IO. The user name and password are copied (the copy wiped). */
int directory_login_async(struct directory_service *s, const char *domain,
                          const char *user, const char *password,
                          directory_done_fn done, void *ctx, uint64_t tag);
/* As directory_login_async, for a key login: directory_lookup. */
int directory_lookup_async(struct directory_service *s, const char *domain,
                           const char *user, directory_done_fn done, void *ctx,
                           uint64_t tag);
/* A successful check or lookup of user@domain within the directory's
 * key_cache_seconds: a key login need not ask again. */
bool directory_service_cached(const struct directory_service *s,
                              const char *domain, const char *user);
/* Drops every request made with ctx (done will not run for them). */
void directory_service_forget(struct directory_service *s, const void *ctx);
/* Checks waiting and running now (tests, metrics). */
void directory_service_load(const struct directory_service *s,
                            unsigned *running, unsigned *waiting);

/* The one service of this process: the monitor makes it at start and the
 * HTTP side borrows it (so both doors share one cap). NULL before. */
struct directory_service *directory_service_shared(void);
void directory_service_set_shared(struct directory_service *s);

/* --- just in time, in the loop's thread --- */

struct store;
struct store_user;

/* directory_provision(): admin/admin.h (the admin layer makes the user). */

#endif
