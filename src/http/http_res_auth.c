/*
 * Route handlers for logging in and out, the caller's own profile, API
 * tokens, the session report, the audit log, /healthz and /metrics.
 *
 * Handlers run after http_dispatch() has authenticated the caller,
 * checked the route's permission and parsed the body strictly; they only
 * do the work. Logins are throttled like SSH logins (lockout.h): a
 * failure is answered after failure_delay_ms (from a loop timer, so the
 * loop never sleeps) and repeated failures lock the user and the address.
 */
#include "http/http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/directory.h"
#include "auth/password.h"
#include "auth/totp.h"
#include "admin/admin.h"
#include "common/err.h"
#include "common/log.h"
#include "auth/lockout.h"
#include "common/util.h"
#include "store/audit.h"

#define HTTP_RECORDING_MAX (256u * 1024 * 1024)

/* --- health and metrics ---------------------------------------------------
 */

int http_h_healthz(struct http_req *req)
{
    int v = 0, r = store_schema_version(req->store, &v);

    if (r != ERR_OK) {
        return http_error(req, 503, "unavailable", "Unavailable",
                          "the store does not answer: %s", err_str(r));
    }
    return http_ok(req, 200,
                   json_pack("{s:s, s:i, s:s}", "status", "ok",
                             "schema_version", v, "version",
                             PORTCULLIS_VERSION),
                   NULL);
}

struct http_mcount {
    char kind[16];
    char result[16];
    uint64_t n;
};

static void http_metric_add(struct http_mcount *c, size_t *nc, size_t max,
                            const char *kind, const char *result)
{
    for (size_t i = 0; i < *nc; i++) {
        if (strcmp(c[i].kind, kind) == 0 && strcmp(c[i].result, result) == 0) {
            c[i].n++;
            return;
        }
    }
    if (*nc < max) {
        snprintf(c[*nc].kind, sizeof(c[*nc].kind), "%s", kind);
        snprintf(c[*nc].result, sizeof(c[*nc].result), "%s", result);
        c[*nc].n = 1;
        (*nc)++;
    }
}

static const char *http_result_class(const char *result)
{
    if (result[0] == '\0') {
        return "open";
    }
    if (strncmp(result, "ok", 2) == 0) {
        return "ok";
    }
    if (strncmp(result, "denied", 6) == 0) {
        return "denied";
    }
    return "error";
}

int http_h_metrics(struct http_req *req)
{
    struct store_session_filter f;
    struct store_session *list = NULL;
    struct http_mcount counts[64], active[16];
    size_t n = 0, nc = 0, na = 0, used = 0, cap = 8192, i;
    uint64_t up = 0, down = 0, ssh_fail = 0;
    const char *kind;
    char *out = NULL, *grown;
    int r;

    memset(&f, 0, sizeof(f));
    if ((r = store_session_list(req->store, &f, &list, &n)) != ERR_OK) {
        return http_error(req, 500, "internal", "Internal error",
                          "cannot read the session report: %s", err_str(r));
    }
    for (i = 0; i < n; i++) {
        kind = list[i].kind[0] != '\0' ? list[i].kind : "login";
        up += list[i].bytes_up;
        down += list[i].bytes_down;
        if (list[i].ended_at == 0) {
            http_metric_add(active, &na, 16, kind, "");
        } else {
            http_metric_add(counts, &nc, 64, kind,
                            http_result_class(list[i].result));
            if (list[i].kind[0] == '\0' &&
                strncmp(list[i].result, "denied", 6) == 0) {
                ssh_fail++;
            }
        }
    }
    store_list_free(list);
    if ((out = malloc(cap)) == NULL) {
        return http_error(req, 500, "internal", "Internal error", "no memory");
    }
#define EMIT(...)                                                              \
    do {                                                                       \
        int k_ = snprintf(out + used, cap - used, __VA_ARGS__);                \
        if (k_ < 0) {                                                          \
            break;                                                             \
        }                                                                      \
        if ((size_t)k_ >= cap - used) {                                        \
            cap = cap * 2 + (size_t)k_;                                        \
            if ((grown = realloc(out, cap)) == NULL) {                         \
                free(out);                                                     \
                return http_error(req, 500, "internal", "Internal error",      \
                                  "no memory");                                \
            }                                                                  \
            out = grown;                                                       \
            k_ = snprintf(out + used, cap - used, __VA_ARGS__);                \
        }                                                                      \
        used += (size_t)k_;                                                    \
    } while (0)
    EMIT("# HELP portcullis_sessions_active Sessions (report rows) open now, "
         "by kind.\n# TYPE portcullis_sessions_active gauge\n");
    for (i = 0; i < na; i++) {
        EMIT("portcullis_sessions_active{kind=\"%s\"} %llu\n", active[i].kind,
             (unsigned long long)active[i].n);
    }
    EMIT("# HELP portcullis_sessions_total Closed session report rows, by "
         "kind and result.\n# TYPE portcullis_sessions_total counter\n");
    for (i = 0; i < nc; i++) {
        EMIT("portcullis_sessions_total{kind=\"%s\",result=\"%s\"} %llu\n",
             counts[i].kind, counts[i].result, (unsigned long long)counts[i].n);
    }
    EMIT("# HELP portcullis_bytes_relayed_total Bytes relayed by sessions.\n"
         "# TYPE portcullis_bytes_relayed_total counter\n"
         "portcullis_bytes_relayed_total{direction=\"up\"} %llu\n"
         "portcullis_bytes_relayed_total{direction=\"down\"} %llu\n",
         (unsigned long long)up, (unsigned long long)down);
    EMIT("# HELP portcullis_auth_failures_total Failed authentications.\n"
         "# TYPE portcullis_auth_failures_total counter\n"
         "portcullis_auth_failures_total{via=\"ssh\"} %llu\n"
         "portcullis_auth_failures_total{via=\"api_login\"} %llu\n"
         "portcullis_auth_failures_total{via=\"api_token\"} %llu\n",
         (unsigned long long)ssh_fail,
         (unsigned long long)req->seen.login_failures,
         (unsigned long long)(req->seen.api_auth_failures -
                              req->seen.login_failures));
    EMIT("# HELP portcullis_agents_online Agents connected now.\n"
         "# TYPE portcullis_agents_online gauge\n"
         "portcullis_agents_online 0\n");
    EMIT("# HELP portcullis_job_watchers Watchers following a job's output "
         "now (API streams and the CLI's --follow).\n"
         "# TYPE portcullis_job_watchers gauge\n"
         "portcullis_job_watchers %llu\n",
         (unsigned long long)req->seen_watchers);
    EMIT("# HELP portcullis_http_requests_total HTTP requests served.\n"
         "# TYPE portcullis_http_requests_total counter\n"
         "portcullis_http_requests_total %llu\n",
         (unsigned long long)req->seen.requests);
#undef EMIT
    req->raw = out;
    req->raw_type = "text/plain; version=0.0.4";
    req->status = 200;
    return 0;
}

/* --- login and logout ---------------------------------------------------- */

/*
 * POST /api/v1/login runs on the loop: its lockout table, the password
 * pool and the failure delay are the loop's. Its store work is not: on a
 * database server each store step runs off the loop (http_off_hand) and
 * the loop only keeps the books between them:
 *
 *   lookup (worker: the user by name) -> the lockout check (loop: the
 *   address and the password factor, for the user the name resolved to)
 *   -> the password (the pool) or the directory (its own threads) ->
 *   [a directory's user made or refreshed (worker)] -> the failure books
 *   (loop: a wrong password counts here, no store) or, for a right one,
 *   recheck (worker: a remade hash stored, the user read again, its TOTP
 *   code checked and used, the TOTP factor's lock read on the loop
 *   before) -> the books and the token (loop).
 *
 * Every failure is counted on the loop, in the order the answers come,
 * so concurrent failures all count; a lock taken while a login's later
 * steps ran is looked at again on the loop before its token is issued
 * (a success never lifts a lock), so none slips through between worker
 * and loop. The audit events are written on the loop's store (on a
 * database server they are queued there, store_audit.c).
 */

static void http_login_audit(struct http_req *req, const char *action,
                             const char *user, const char *detail)
{
    int r = audit_write(req->h->store, user, req->client, action, user, detail);

    if (r != ERR_OK) {
        log_error("http: cannot write the audit event %s: %s", action,
                  err_str(r));
    }
}

static int http_login_unavailable(struct http_req *req)
{
    return http_error(req, 503, "store_unavailable", "Database unavailable",
                      "the access server cannot reach its database; "
                      "try again in a moment");
}

/* Checks the TOTP code of user u on st: ERR_OK, ERR_AUTH or ERR_REPLAY. */
static int http_login_totp(const struct http_req *req, struct store *st,
                           const struct store_user *u, const char *code)
{
    uint8_t *seed = NULL;
    size_t seed_len = 0;
    int64_t step = 0;
    char ad[64];
    int r;

    snprintf(ad, sizeof(ad), "totp:%s", u->id);
    r = vault_open(req->h->vault, ad, u->totp_sealed, u->totp_sealed_len, &seed,
                   &seed_len);
    if (r != ERR_OK) {
        log_error("http: cannot open the TOTP seed of %s", u->name);
        return ERR_AUTH;
    }
    r = totp_check(seed, seed_len, code, util_now(), &step);
    vault_secret_free(seed, seed_len);
    if (r != ERR_OK) {
        return ERR_AUTH;
    }
    return store_user_totp_use(st, u->id, step);
}

/* The lockout keys of a login (docs/security.md, "Lockouts"): the source
 * address, and per factor the user the name resolved to (uid), whatever
 * its spelling; an unknown name by itself, alike. */
static void http_login_keys(const struct http_req *req, const char *name,
                            char *pkey, char *tkey, char *akey)
{
    const char *uid = req->login_uid[0] != '\0' ? req->login_uid : NULL;

    lockout_key_factor(pkey, LOCKOUT_KEY_MAX, LOCKOUT_PASSWORD, uid, name);
    lockout_key_factor(tkey, LOCKOUT_KEY_MAX, LOCKOUT_TOTP, uid, name);
    lockout_key_addr(akey, LOCKOUT_KEY_MAX, req->client_ip);
}

/* A lock began: the log and the audit say what, for how long and why
 * (factor of the login's user, or the address when factor is NULL). */
static void http_login_locked(struct http_req *req, const char *name,
                              const char *factor)
{
    const struct config *cfg = req->h->cfg;
    char what[600];

    if (factor != NULL) {
        snprintf(what, sizeof(what),
                 "%s of %s%s (login '%s') locked for %d s after %d failures "
                 "within %d s",
                 factor, req->login_uid[0] ? "user id " : "unknown user",
                 req->login_uid, name, cfg->lockout_seconds, cfg->max_failures,
                 cfg->failure_window_seconds);
    } else {
        snprintf(what, sizeof(what),
                 "address %s locked for %d s after %d failures within %d s",
                 req->client_ip, cfg->lockout_seconds, cfg->max_failures,
                 cfg->failure_window_seconds);
    }
    log_warn("http: %s", what);
    http_login_audit(req, "login.lock", name, what);
}

/* A failed login's books, on the loop: counted under lkey (NULL: under
 * none, e.g. a locked factor; by_user false: not under the factor, e.g.
 * a disabled user) and the address, delayed, audited, answered 401. */
static int http_login_failed(struct http_req *req, const char *lkey, bool totp,
                             bool by_user, const char *why)
{
    const char *name = http_body_str(req->body, "username");
    char akey[LOCKOUT_KEY_MAX];
    int64_t now = util_now();

    lockout_key_addr(akey, sizeof(akey), req->client_ip);
    req->h->m.login_failures++;
    req->h->m.api_auth_failures++;
    if (lkey != NULL && by_user && lockout_fail(req->h->lockout, lkey, now)) {
        http_login_locked(req, name, totp ? "totp" : "password");
    }
    if (lkey != NULL && lockout_fail(req->h->lockout, akey, now)) {
        http_login_locked(req, name, NULL);
    }
    req->delay_ms = req->h->cfg->failure_delay_ms;
    http_login_audit(req, "login.fail", name, why);
    return http_error(req, 401, "login_failed", "Login failed",
                      "wrong username, password or TOTP code");
}

/* A refusal for a lock, counted nowhere (the secret was not judged). */
static int http_login_refuse_locked(struct http_req *req, const char *why)
{
    req->h->m.login_failures++;
    req->h->m.api_auth_failures++;
    req->delay_ms = req->h->cfg->failure_delay_ms;
    http_login_audit(req, "login.fail", http_body_str(req->body, "username"),
                     why);
    return http_error(req, 429, "locked_out", "Too many failures",
                      "too many failed logins; try again later");
}

/* The store steps of a login between the loop's books (see above). */
enum {
    LOGIN_OK = 0,
    LOGIN_STORE,    /* the database did not answer */
    LOGIN_NO_USER,  /* gone meanwhile */
    LOGIN_DISABLED, /* user disabled */
    LOGIN_TOTP_NEEDED,
    LOGIN_TOTP_LOCKED,
    LOGIN_TOTP_WRONG,
    LOGIN_TOTP_REPLAY,
};

struct http_login {
    /* lookup */
    int r;
    /* recheck: in */
    bool rehash, tkey_locked;
    char old_hash[STORE_HASH_MAX + 1], new_hash[STORE_HASH_MAX + 1];
    /* recheck: out (and a directory's user) */
    int outcome;
    bool totp_tried;
    struct store_user u;
    /* a directory's answer */
    struct directory_result dres;
    char why[256], detail[1024];
};

static struct http_login *http_login_new(void)
{
    return calloc(1, sizeof(struct http_login));
}

static void http_login_free(void *p)
{
    struct http_login *lc = p;

    if (lc != NULL) {
        directory_result_clear(&lc->dres);
        sodium_memzero(lc, sizeof(*lc));
        free(lc);
    }
}

/* From a loop part of a step (w the job's copy, or req itself in line):
 * a further step started for req; w's own answer is not sent then. */
static void http_login_handed(struct http_req *w, struct http_req *req,
                              bool taken)
{
    if (w == req) {
        return; /* in line: req holds the answer, the caller resumes */
    }
    w->later = true;
    if (!taken) {
        http_resume(req);
    }
}

/* recheck, on a worker: the right password's user as it is now. */
static void http_login_recheck_work(struct http_req *w, struct store *st,
                                    void *ctx)
{
    struct http_login *lc = ctx;
    const char *code = http_body_str(w->body, "totp");
    struct store_user u;
    int r;

    if (lc->rehash &&
        store_user_get(st, http_body_str(w->body, "username"), &u) == ERR_OK) {
        if (store_user_rehash(st, u.id, lc->old_hash, lc->new_hash) == ERR_OK) {
            log_info("remade the password hash of user %s at the "
                     "configured cost ([auth] password_memory_kib, "
                     "password_passes)",
                     u.name);
        }
        sodium_memzero(&u, sizeof(u));
    }
    /* Read again: the user may have changed while the hash ran. */
    r = store_user_get(st, w->login_uid, &lc->u);
    if (r == ERR_STORE) {
        lc->outcome = LOGIN_STORE;
    } else if (r != ERR_OK) {
        lc->outcome = LOGIN_NO_USER;
    } else if (lc->u.disabled) {
        lc->outcome = LOGIN_DISABLED;
    } else if (!lc->u.totp_enabled) {
        lc->outcome = LOGIN_OK;
    } else if (code == NULL || code[0] == '\0') {
        lc->outcome = LOGIN_TOTP_NEEDED;
    } else if (lc->tkey_locked) {
        lc->outcome = LOGIN_TOTP_LOCKED;
    } else {
        lc->totp_tried = true;
        r = http_login_totp(w, st, &lc->u, code);
        lc->outcome = r == ERR_OK       ? LOGIN_OK
                      : r == ERR_REPLAY ? LOGIN_TOTP_REPLAY
                      : r == ERR_STORE  ? LOGIN_STORE
                                        : LOGIN_TOTP_WRONG;
    }
}

/* recheck's books and the token, on the loop (also when the client went:
 * a wrong TOTP code counts all the same). */
static void http_login_recheck_then(struct http *h, struct http_req *w,
                                    struct http_req *req, void *ctx, bool ran)
{
    struct http_login *lc = ctx;
    const char *name = http_body_str(w->body, "username");
    struct store_user *u = &lc->u;
    struct jwt_claims c;
    char pkey[LOCKOUT_KEY_MAX], tkey[LOCKOUT_KEY_MAX], akey[LOCKOUT_KEY_MAX],
        *token = NULL;
    int64_t now = util_now();
    int r;

    (void)req;
    memset(&c, 0, sizeof(c));
    if (!ran) {
        goto out; /* nothing judged: 503 */
    }
    http_login_keys(w, name, pkey, tkey, akey);
    switch (lc->outcome) {
    case LOGIN_STORE:
        (void)http_login_unavailable(w);
        goto out;
    case LOGIN_NO_USER:
        (void)http_login_failed(w, pkey, false, true,
                                "wrong username or password");
        goto out;
    case LOGIN_DISABLED:
        (void)http_login_failed(w, pkey, false, false, "user disabled");
        goto out;
    case LOGIN_TOTP_NEEDED:
        (void)http_error(w, 401, "totp_required", "TOTP required",
                         "this user needs a TOTP code: send 'totp'");
        goto out;
    case LOGIN_TOTP_LOCKED:
        (void)http_login_failed(w, NULL, true, true, "locked out: TOTP locked");
        goto out;
    case LOGIN_TOTP_WRONG:
    case LOGIN_TOTP_REPLAY:
        (void)http_login_failed(w, tkey, true, true,
                                lc->outcome == LOGIN_TOTP_REPLAY
                                    ? "TOTP code already used"
                                    : "wrong TOTP code");
        goto out;
    default:
        break;
    }
    if (lc->totp_tried) {
        lockout_success(h->lockout, tkey);
    }
    /* locked while the password or the code was checked: not now */
    if (lockout_is_locked(h->lockout, akey, now) ||
        lockout_is_locked(h->lockout, pkey, now) ||
        (lc->totp_tried && lockout_is_locked(h->lockout, tkey, now))) {
        (void)http_login_refuse_locked(w, "api: locked out meanwhile");
        goto out;
    }
    c.kind = JWT_SESSION;
    snprintf(c.sub, sizeof(c.sub), "%s", u->id);
    c.iat = now;
    c.exp = now + (int64_t)h->cfg->http_session_minutes * 60;
    if ((r = jwt_issue(h->key, &c, &token)) != ERR_OK) {
        (void)http_error(w, 500, "internal", "Internal error",
                         "cannot issue a token: %s", err_str(r));
        goto out;
    }
    http_login_audit(w, "login.ok", u->name, "api");
    http_ok(w, 200,
            json_pack("{s:s, s:s, s:o, s:{s:s, s:s}}", "token", token,
                      "token_type", "Bearer", "expires_at",
                      http_json_time(c.exp), "user", "id", u->id, "name",
                      u->name),
            NULL);
    jwt_token_free(token);
out:
    sodium_memzero(&c, sizeof(c));
    http_login_free(lc);
}

/* The rest of a login once its password was checked (r: ERR_OK or
 * ERR_AUTH), req waiting: a wrong one's books here; a right one's
 * recheck off the loop. true when req holds its answer now. */
static bool http_login_finish(struct http_req *req, int r,
                              const struct password_rehash *rh)
{
    const char *name = http_body_str(req->body, "username");
    char pkey[LOCKOUT_KEY_MAX], tkey[LOCKOUT_KEY_MAX], akey[LOCKOUT_KEY_MAX];
    struct http_login *lc;

    http_login_keys(req, name, pkey, tkey, akey);
    if (r != ERR_OK) {
        (void)http_login_failed(req, pkey, false, true,
                                "wrong username or password");
        return true;
    }
    lockout_success(req->h->lockout, pkey);
    if ((lc = http_login_new()) == NULL) {
        (void)http_error(req, 500, "internal", "Internal error", "no memory");
        return true;
    }
    lc->tkey_locked = lockout_is_locked(req->h->lockout, tkey, util_now());
    if (rh != NULL) {
        lc->rehash = true;
        snprintf(lc->old_hash, sizeof(lc->old_hash), "%s", rh->old_hash);
        snprintf(lc->new_hash, sizeof(lc->new_hash), "%s", rh->new_hash);
    }
    /* a further step of a request that waits: false when req holds its
     * answer now (in line, or 503 at once) */
    return !http_off_hand(req, http_login_recheck_work, http_login_recheck_then,
                          lc, http_login_free);
}

/* password_done_fn: the pool checked the password of deferred login id;
 * its client may have gone meanwhile. A hash remade at the configured
 * cost (rh) is stored as for SSH logins (store_user_rehash), off the
 * loop with the recheck. */
static void http_login_checked(void *ctx, uint64_t id, int result,
                               const struct password_rehash *rh)
{
    struct http_req *req = http_deferred(ctx, id);

    if (req != NULL &&
        http_login_finish(req, result == ERR_OK ? ERR_OK : ERR_AUTH,
                          result == ERR_OK ? rh : NULL)) {
        http_resume(req);
    }
}

/* A directory's user made or refreshed, on a worker. */
static void http_login_dir_work(struct http_req *w, struct store *st, void *ctx)
{
    struct http_login *lc = ctx;

    lc->r = directory_provision(st, http_body_str(w->body, "username"),
                                &lc->dres, &lc->u, lc->why, sizeof(lc->why),
                                lc->detail, sizeof(lc->detail));
}

/* The directory's refusal of deferred login req: its books and answer. */
static void http_login_dir_refused(struct http_req *req, const char *why,
                                   bool unreachable)
{
    req->h->m.login_failures++;
    req->delay_ms = req->h->cfg->failure_delay_ms;
    http_login_audit(req, "login.fail", http_body_str(req->body, "username"),
                     why);
    if (unreachable) {
        (void)http_error(req, 503, "directory_unreachable",
                         "Directory unreachable", "%s", why);
    } else {
        (void)http_error(req, 401, "login_failed", "Login failed", "%s", why);
    }
}

static void http_login_dir_then(struct http *h, struct http_req *w,
                                struct http_req *req, void *ctx, bool ran)
{
    struct http_login *lc = ctx;
    bool now;

    (void)h;
    if (!ran || req == NULL) {
        http_login_free(lc);
        return;
    }
    if (lc->r != ERR_OK) {
        http_login_dir_refused(w, lc->why, false);
        http_login_free(lc);
        return;
    }
    snprintf(req->login_uid, sizeof(req->login_uid), "%s", lc->u.id);
    http_login_audit(req, "directory.login", lc->u.name, lc->detail);
    http_login_free(lc);
    now = http_login_finish(req, ERR_OK, NULL);
    http_login_handed(w, req, !now);
}

/* directory_done_fn: the directory (auth/directory.h) answered for
 * deferred login id, or its deadline did. A right password makes or
 * refreshes the local user (off the loop) and goes on as a local login
 * would (TOTP, counters, token); a wrong one counts like one; the rest
 * (unreachable, disabled in the directory) is refused with the
 * directory's words. */
static void http_login_dir_done(void *ctx, uint64_t id,
                                const struct directory_result *res)
{
    struct http_req *req = http_deferred(ctx, id);
    struct http_login *lc;

    if (req == NULL) {
        return;
    }
    if (res->status == ERR_OK) {
        if ((lc = http_login_new()) == NULL) {
            (void)http_error(req, 500, "internal", "Internal error",
                             "no memory");
            http_resume(req);
            return;
        }
        /* what directory_provision reads, the mapped names copied (res
         * is the directory's, freed when this returns) */
        lc->dres = *res;
        lc->dres.groups = NULL;
        lc->dres.ngroups = 0;
        lc->dres.mapped = NULL;
        lc->dres.nmapped = 0;
        if (res->nmapped > 0 &&
            (lc->dres.mapped = calloc(res->nmapped, sizeof(char *))) != NULL) {
            for (size_t i = 0; i < res->nmapped; i++) {
                if ((lc->dres.mapped[lc->dres.nmapped] =
                         strdup(res->mapped[i])) != NULL) {
                    lc->dres.nmapped++;
                }
            }
        }
        if (!http_off_hand(req, http_login_dir_work, http_login_dir_then, lc,
                           http_login_free)) {
            http_resume(req);
        }
        return;
    }
    if (res->status == ERR_AUTH) {
        if (http_login_finish(req, ERR_AUTH, NULL)) {
            http_resume(req);
        }
        return;
    }
    http_login_dir_refused(req, res->why,
                           res->status == ERR_CONNECT ||
                               res->status == ERR_TIMEOUT);
    http_resume(req);
}

/* req waits for id from here on: deferred already (its lookup ran off
 * the loop: w is the job's copy; w->later once the wait began) or now
 * (in line: w == req). */
static int http_login_defer(struct http_req *w, struct http_req *req,
                            uint64_t *id)
{
    if (w != req) {
        *id = req->deferred;
        return *id != 0 ? ERR_OK : ERR_INVALID;
    }
    return http_defer(req, id);
}

static void http_login_undefer(struct http_req *w, struct http_req *req)
{
    if (w == req) {
        http_undefer(req);
    }
}

/* A login "user@DOMAIN" with a directory for DOMAIN: sent there (ERR_OK,
 * answered later), refused at once (ERR_DENIED: answered in w), or not
 * a directory login (ERR_NOT_FOUND). */
static int http_login_directory(struct http_req *w, struct http_req *req,
                                const char *name, const char *pw, bool found)
{
    struct directory_service *dirs = directory_service_shared();
    const char *at = strrchr(name, '@');
    char user[DIRECTORY_USER_MAX + 1];
    uint64_t id = 0;
    int r;

    if (at == NULL || directory_service_count(dirs) == 0) {
        return ERR_NOT_FOUND;
    }
    if (directory_service_find(dirs, at + 1) == NULL) {
        if (found) {
            return ERR_NOT_FOUND;
        }
        w->delay_ms = w->h->cfg->failure_delay_ms;
        http_login_audit(w, "login.fail", name, "api: unknown domain");
        (void)http_error(w, 401, "login_failed", "Login failed",
                         "unknown domain %s", at + 1);
        return ERR_DENIED;
    }
    if ((size_t)(at - name) == 0 || (size_t)(at - name) > DIRECTORY_USER_MAX) {
        w->delay_ms = w->h->cfg->failure_delay_ms;
        http_login_audit(w, "login.fail", name, "api: invalid user name");
        (void)http_error(w, 401, "login_failed", "Login failed",
                         "a directory user name is 1-%d characters",
                         DIRECTORY_USER_MAX);
        return ERR_DENIED;
    }
    snprintf(user, sizeof(user), "%.*s", (int)(at - name), name);
    if (http_login_defer(w, req, &id) != ERR_OK) {
        (void)http_error(w, 503, "server_busy", "Server busy",
                         "too many logins at once; try again shortly");
        return ERR_DENIED;
    }
    r = directory_login_async(dirs, at + 1, user, pw, http_login_dir_done,
                              req->h, id);
    if (r != ERR_OK) {
        http_login_undefer(w, req);
        (void)http_error(w, 503, "server_busy", "Server busy",
                         "too many logins at once; try again shortly");
        return ERR_DENIED;
    }
    if (w != req) {
        w->later = true;
    }
    return ERR_OK;
}

/* lookup, on a worker: the user the name names. */
static void http_login_lookup_work(struct http_req *w, struct store *st,
                                   void *ctx)
{
    struct http_login *lc = ctx;

    lc->r = store_user_get(st, http_body_str(w->body, "username"), &lc->u);
}

/* lookup's loop part: the lockout check, then the password to the pool
 * or the directory. */
static void http_login_lookup_then(struct http *h, struct http_req *w,
                                   struct http_req *req, void *ctx, bool ran)
{
    struct http_login *lc = ctx;
    const char *name = http_body_str(w->body, "username");
    const char *pw = http_body_str(w->body, "password");
    char pkey[LOCKOUT_KEY_MAX], tkey[LOCKOUT_KEY_MAX], akey[LOCKOUT_KEY_MAX];
    int64_t now = util_now();
    uint64_t id = 0;
    bool found;
    int r;

    if (!ran || req == NULL) {
        goto out; /* 503, or nobody to answer: nothing judged */
    }
    /* The store did not answer (PostgreSQL down): say so; nobody guessed
     * anything, so nothing is counted. */
    if (lc->r == ERR_STORE) {
        (void)http_login_unavailable(w);
        goto out;
    }
    found = lc->r == ERR_OK;
    snprintf(req->login_uid, sizeof(req->login_uid), "%s",
             found ? lc->u.id : "");
    if (w != req) {
        memcpy(w->login_uid, req->login_uid, sizeof(w->login_uid));
    }
    http_login_keys(w, name, pkey, tkey, akey);
    if (lockout_is_locked(h->lockout, akey, now) ||
        lockout_is_locked(h->lockout, pkey, now)) {
        (void)http_login_refuse_locked(
            w, lockout_is_locked(h->lockout, akey, now)
                   ? "api: locked out: too many failures from "
                     "this address"
                   : "api: locked out: password locked");
        goto out;
    }
    if (http_login_directory(w, req, name, pw, found) != ERR_NOT_FOUND) {
        goto out;
    }
    if (h->hashes == NULL || http_login_defer(w, req, &id) != ERR_OK) {
        /* in line: the password here, the recheck as a further step */
        r = password_verify(found ? lc->u.password_hash : NULL, pw);
        if (w == req) {
            (void)http_login_finish(req, r, NULL);
        } else {
            http_login_handed(w, req, !http_login_finish(req, r, NULL));
        }
        goto out;
    }
    r = password_verify_async(h->hashes, found ? lc->u.password_hash : NULL, pw,
                              http_login_checked, h, id);
    if (r != ERR_OK) {
        http_login_undefer(w, req);
        if (r == ERR_DENIED) {
            log_warn("http: login from %s refused: too many password checks "
                     "running and waiting",
                     w->client_ip);
        }
        (void)http_error(w, 503, "server_busy", "Server busy",
                         "too many logins at once; try again shortly");
        goto out;
    }
    if (w != req) {
        w->later = true;
    }
out:
    http_login_free(lc);
}

/*
 * POST /api/v1/login. The user's lookup runs off the loop on a database
 * server (above); the password is checked on the monitor's worker pool
 * (password.h), or by a directory (directory.h), so the answer comes
 * later (http_defer); a full pool answers 503 at once.
 */
int http_h_login(struct http_req *req)
{
    struct http_login *lc = http_login_new();

    if (lc == NULL) {
        return http_error(req, 500, "internal", "Internal error", "no memory");
    }
    (void)http_off_hand(req, http_login_lookup_work, http_login_lookup_then, lc,
                        http_login_free);
    return 0;
}

/* The directories' list, each mapping target saying whether that group
 * exists: by a store read each on the loop's store (SQLite), or in names,
 * the groups' IDs and names read off the loop. On the loop (the
 * directory service's configuration is the loop's: reloads). */
static int http_directories_answer(struct http_req *req, const json_t *names)
{
    struct directory_service *dirs = directory_service_shared();
    const struct directory_conf *d;
    struct store_group g;
    json_t *arr = json_array(), *o, *maps, *m, *v;
    size_t i, j, k;
    bool exists;

    for (i = 0; i < directory_service_count(dirs); i++) {
        d = directory_service_nth(dirs, i);
        o = directory_conf_json(d);
        maps = o != NULL ? json_object_get(o, "map_group") : NULL;
        for (j = 0; maps != NULL && j < json_array_size(maps); j++) {
            m = json_array_get(maps, j);
            if (names == NULL) {
                exists =
                    store_group_get(req->store, d->maps[j].to, &g) == ERR_OK;
            } else {
                exists = false;
                json_array_foreach(names, k, v)
                {
                    if (strcmp(json_string_value(v), d->maps[j].to) == 0) {
                        exists = true;
                        break;
                    }
                }
            }
            json_object_set_new(m, "group_exists", json_boolean(exists));
        }
        json_array_append_new(arr, o);
    }
    return http_list(req, arr);
}

/*
 * GET /api/v1/directories: the [directory "DOMAIN"] sections serve runs
 * with (read only; the config file is where they change), each mapping
 * target saying whether that Portcullis group exists. On a database
 * server the token check and the groups' read run off the loop (202
 * with the groups' IDs and names between the two) and the route's loop
 * part (http_then_directories) reads the configuration.
 */
int http_h_directories_list(struct http_req *req)
{
    struct store_group *list = NULL;
    size_t n = 0, i;
    json_t *names;
    int r;

    if (!req->on_worker) {
        return http_directories_answer(req, NULL);
    }
    if ((r = store_group_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "group", "list");
    }
    names = json_array();
    for (i = 0; names != NULL && i < n; i++) {
        json_array_append_new(names, json_string(list[i].id));
        json_array_append_new(names, json_string(list[i].name));
    }
    store_list_free(list);
    return http_ok(req, 202, names, NULL);
}

void http_then_directories(struct http *h, struct http_req *req)
{
    json_t *names;

    (void)h;
    if (req->status != 202) {
        return;
    }
    names = json_incref(req->data);
    (void)http_directories_answer(req, names);
    json_decref(names);
}

int http_h_logout(struct http_req *req)
{
    int r;

    if (req->auth.claims.kind != JWT_SESSION) {
        return http_error(req, 400, "not_a_session", "Not a session",
                          "an API token is ended with DELETE "
                          "/api/v1/api-tokens/{id}");
    }
    r = store_jwt_revoke(req->store, req->auth.jti_hash, req->auth.claims.exp);
    if (r != ERR_OK) {
        return http_error(req, 500, "internal", "Internal error",
                          "cannot revoke the session: %s", err_str(r));
    }
    snprintf(req->audit_target, sizeof(req->audit_target), "%s",
             req->auth.user.name);
    return http_ok(req, 204, NULL, NULL);
}

/* --- the caller's own profile --------------------------------------------- */

int http_h_me_get(struct http_req *req)
{
    const struct store_user *u = &req->auth.user;
    struct store_site_role *roles = NULL;
    struct store_group *groups = NULL;
    size_t nr = 0, ng = 0, i, j;
    json_t *jroles, *jgroups, *me;
    bool mine;
    int r;

    if ((r = store_user_groups(req->store, u->id, &groups, &ng)) != ERR_OK ||
        (r = store_site_role_list(req->store, &roles, &nr)) != ERR_OK) {
        store_list_free(groups);
        return http_error(req, 500, "internal", "Internal error",
                          "cannot read the profile: %s", err_str(r));
    }
    jroles = json_array();
    jgroups = json_array();
    for (i = 0; i < ng; i++) {
        json_array_append_new(jgroups, json_string(groups[i].name));
    }
    for (i = 0; i < nr; i++) {
        mine = strcmp(roles[i].user_id, u->id) == 0;
        for (j = 0; j < ng && !mine; j++) {
            mine = strcmp(roles[i].group_id, groups[j].id) == 0;
        }
        if (mine) {
            json_array_append_new(
                jroles,
                json_pack("{s:s, s:s, s:s?}", "site", roles[i].site_path,
                          "role", site_role_str(roles[i].role), "via_group",
                          roles[i].group_id[0] != '\0' ? roles[i].grantee_name
                                                       : NULL));
        }
    }
    store_list_free(groups);
    store_list_free(roles);
    me = json_pack("{s:s, s:s, s:b, s:b, s:b, s:o, s:o, s:o, s:o, "
                   "s:{s:s, s:o}}",
                   "id", u->id, "name", u->name, "disabled", u->disabled,
                   "totp_enabled", u->totp_enabled, "has_password",
                   u->password_hash[0] != '\0', "created_at",
                   http_json_time(u->created_at), "groups", jgroups, "roles",
                   jroles, "job_roles", http_me_job_roles(req), "token", "kind",
                   req->auth.claims.kind == JWT_API ? "api" : "session",
                   "expires_at", http_json_time(req->auth.claims.exp));
    return http_ok(req, 200, me, NULL);
}

int http_h_me_patch(struct http_req *req)
{
    const char *cur = http_body_str(req->body, "current_password");
    const char *pw = http_body_str(req->body, "password");
    char hash[STORE_HASH_MAX + 1] = "";
    int r;

    snprintf(req->audit_target, sizeof(req->audit_target), "%s",
             req->auth.user.name);
    if (password_verify(req->auth.user.password_hash, cur) != ERR_OK) {
        req->delay_ms = req->h->cfg->failure_delay_ms;
        return http_error(req, 403, "wrong_password", "Forbidden",
                          "the current password is wrong");
    }
    if ((r = password_hash(pw, hash, sizeof(hash))) != ERR_OK ||
        (r = store_user_set_password(req->store, req->auth.user.id, hash)) !=
            ERR_OK) {
        sodium_memzero(hash, sizeof(hash));
        return http_store_error(req, r, "user", req->auth.user.name);
    }
    sodium_memzero(hash, sizeof(hash));
    {
        struct admin_ctx ac;

        http_admin_ctx(req, &ac);
        admin_user_keep_nt(&ac, req->auth.user.id, pw);
    }
    return http_ok(req, 204, NULL, NULL);
}

/* --- API tokens ---------------------------------------------------------- */

static bool http_is_admin(const struct http_req *req)
{
    return (req->auth.root_roles & SITE_ROLE_BIT(SITE_ROLE_ADMIN)) != 0;
}

/*
 * The token rule: a token never makes or widens a token beyond itself.
 * A session JWT (POST /login) is the root and may give any bounds; an API
 * token may create a token, or widen one (a filter loosened, a disabled
 * token enabled), only within its own source filter, its own path filter
 * and its own expiry. Otherwise a token limited to one path could mint an
 * unlimited ten-year token, or PATCH its own filters away.
 *
 * On success *caller is the calling API token (for its expiry), or
 * caller->id[0] == '\0' for a session. Returns 0, or -1 after answering.
 */
static int http_token_caller(struct http_req *req,
                             struct store_api_token *caller)
{
    int r;

    memset(caller, 0, sizeof(*caller));
    if (req->auth.claims.kind != JWT_API) {
        return 0;
    }
    r = store_api_token_find(req->store, req->auth.jti_hash, caller);
    if (r != ERR_OK) {
        http_store_error(req, r, "token", req->auth.claims.tid);
        return -1;
    }
    return 0;
}

static int http_token_beyond(struct http_req *req,
                             const struct store_api_token *caller,
                             const char *cidrs, const char *paths,
                             int64_t expires_at)
{
    char when[32];

    if (caller->id[0] == '\0') {
        return 0;
    }
    if (!http_cidr_list_within(cidrs, caller->filter_cidrs)) {
        http_error(req, 403, "token_scope", "Forbidden",
                   "an API token cannot give a token a wider source "
                   "filter than its own (%.300s)",
                   caller->filter_cidrs);
        return -1;
    }
    if (!http_path_list_within(paths, caller->filter_paths)) {
        http_error(req, 403, "token_scope", "Forbidden",
                   "an API token cannot give a token a wider path "
                   "filter than its own (%.300s)",
                   caller->filter_paths);
        return -1;
    }
    if (expires_at > caller->expires_at) {
        util_fmt_time(caller->expires_at, when, sizeof(when));
        http_error(req, 403, "token_scope", "Forbidden",
                   "an API token cannot make a token that outlives "
                   "it (it expires at %s)",
                   when);
        return -1;
    }
    return 0;
}

int http_h_tokens_list(struct http_req *req)
{
    struct store_api_token *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    r = store_api_token_list(
        req->store, http_is_admin(req) ? NULL : req->auth.user.id, &list, &n);
    if (r != ERR_OK) {
        return http_store_error(req, r, "token", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, admin_token_json(&list[i]));
    }
    store_list_free(list);
    return http_list(req, arr);
}

/* The body's filter lists into t's filter fields, by the descriptor. */
static int http_token_filters(struct http_req *req, struct store_api_token *t,
                              struct admin_err *e)
{
    int r = admin_field_apply(
        admin_field_find(admin_token_fields, "filter_cidrs"), req->body, t, e);

    return r != ERR_OK ? r
                       : admin_field_apply(admin_field_find(admin_token_fields,
                                                            "filter_paths"),
                                           req->body, t, e);
}

int http_h_tokens_add(struct http_req *req)
{
    struct store_api_token t, in, caller;
    struct admin_token_req tr;
    struct admin_ctx ac;
    struct admin_err e;
    int64_t now = util_now();
    char *token = NULL;
    json_t *data;
    int r;

    memset(&in, 0, sizeof(in));
    memset(&tr, 0, sizeof(tr));
    tr.user = http_body_str(req->body, "user");
    tr.expires = http_body_str(req->body, "expires_in");
    tr.description = http_body_str(req->body, "description");
    if (tr.user == NULL) {
        tr.user = req->auth.user.id;
    }
    if (http_token_filters(req, &in, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    tr.cidrs = in.filter_cidrs;
    tr.paths = in.filter_paths;
    if (admin_token_check(&tr, &tr.lifetime, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    if (http_token_caller(req, &caller) != 0) {
        return 0;
    }
    /* Made by an API token without expires_in: the default, cut to the
     * caller's own expiry (an explicit longer one is refused below). */
    if (tr.expires == NULL && caller.id[0] != '\0' &&
        now + tr.lifetime > caller.expires_at) {
        tr.lifetime = caller.expires_at - now;
    }
    if (http_token_beyond(req, &caller, tr.cidrs, tr.paths,
                          now + tr.lifetime) != 0) {
        return 0;
    }
    http_admin_ctx(req, &ac);
    r = admin_token_add(&ac, req->h->key, &tr, &t, &token, &e);
    if (token == NULL) {
        return http_admin_error(req, &e);
    }
    data = admin_token_json(&t);
    json_object_set_new(data, "token", json_string(token));
    admin_token_free(token);
    (void)r; /* an audit failure: the token is made and shown once */
    return http_ok(req, 201, data, NULL);
}

int http_h_tokens_get(struct http_req *req)
{
    struct store_api_token t;
    int r = store_api_token_get(req->store, req->params[0], &t);

    if (r != ERR_OK) {
        return http_store_error(req, r, "token", req->params[0]);
    }
    return http_ok(req, 200, admin_token_json(&t), NULL);
}

int http_h_tokens_patch(struct http_req *req)
{
    struct store_api_token t, old, caller;
    struct admin_ctx ac;
    struct admin_err e;
    int r = store_api_token_get(req->store, req->params[0], &t);

    if (r != ERR_OK) {
        return http_store_error(req, r, "token", req->params[0]);
    }
    old = t;
    t.enabled = http_body_bool(req->body, "enabled", t.enabled);
    if (http_body_has(req->body, "description")) {
        snprintf(t.description, sizeof(t.description), "%s",
                 http_body_str(req->body, "description"));
    }
    if (http_token_filters(req, &t, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    /* Narrowing (a tighter filter, disabling) is always allowed; widening
     * only within the caller's own bounds (see http_token_beyond). */
    if (!http_cidr_list_within(t.filter_cidrs, old.filter_cidrs) ||
        !http_path_list_within(t.filter_paths, old.filter_paths) ||
        (t.enabled && !old.enabled)) {
        if (http_token_caller(req, &caller) != 0 ||
            http_token_beyond(req, &caller, t.filter_cidrs, t.filter_paths,
                              t.expires_at) != 0) {
            return 0;
        }
    }
    http_admin_ctx(req, &ac);
    if (admin_token_update(&ac, &t, "token.update", &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 200, admin_token_json(&t), NULL);
}

int http_h_tokens_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_token_delete(&ac, req->params[0], &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

/* --- the session report and the audit log -------------------------------- */

static json_t *http_session_json(const struct store_session *s)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:s?, s:s, s:s?, s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:I, "
        "s:o, s:s?, s:s, s:s?, s:s?}",
        "id", s->id, "user", s->user_name, "user_id", http_nz(s->user_id),
        "asset", s->asset_name, "asset_id", http_nz(s->asset_id), "site",
        s->site, "kind", s->kind, "client", s->client_addr, "route", s->route,
        "started_at", http_json_time(s->started_at), "ended_at",
        http_json_time(s->ended_at), "bytes_up", (json_int_t)s->bytes_up,
        "bytes_down", (json_int_t)s->bytes_down, "exit_status",
        s->exit_status >= 0 ? json_integer(s->exit_status) : json_null(),
        "result", http_nz(s->result), "detail", s->detail, "recording_path",
        http_nz(s->recording_path), "recording_sha256",
        http_nz(s->recording_sha256));

    /* the node it ran on (a cluster's, store/nodes.h), and the node that
     * held its agent when that was another one; null for none */
    if (o != NULL) {
        json_object_set_new(
            o, "node", s->node[0] != '\0' ? json_string(s->node) : json_null());
        json_object_set_new(o, "agent_node",
                            s->agent_node[0] != '\0'
                                ? json_string(s->agent_node)
                                : json_null());
    }
    return o;
}

int http_h_sessions_list(struct http_req *req)
{
    struct store_session_filter f;
    struct store_session *list = NULL;
    char prefix[16] = "";
    size_t n = 0, i, k = 0;
    json_t *arr;
    int r;

    memset(&f, 0, sizeof(f));
    /* filter[result]=ok|denied|error matches by prefix ("denied: ..."),
     * which the generic exact-match filter cannot. */
    for (i = 0; i < req->nfilters; i++) {
        if (strcmp(req->filters[i].field, "result") == 0 &&
            (strcmp(req->filters[i].value, "ok") == 0 ||
             strcmp(req->filters[i].value, "denied") == 0 ||
             strcmp(req->filters[i].value, "error") == 0)) {
            snprintf(prefix, sizeof(prefix), "%s", req->filters[i].value);
            f.result_prefix = prefix;
            continue;
        }
        req->filters[k++] = req->filters[i];
    }
    req->nfilters = k;
    if ((r = store_session_list(req->store, &f, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "session", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, http_session_json(&list[i]));
    }
    store_list_free(list);
    return http_list(req, arr);
}

int http_h_sessions_get(struct http_req *req)
{
    struct store_session s;
    int r = store_session_get(req->store, req->params[0], &s);

    if (r != ERR_OK) {
        return http_store_error(req, r, "session", req->params[0]);
    }
    return http_ok(req, 200, http_session_json(&s), NULL);
}

int http_h_sessions_recording(struct http_req *req)
{
    struct store_session s;
    uint8_t *data = NULL;
    size_t len = 0;
    int r = store_session_get(req->store, req->params[0], &s);

    if (r != ERR_OK) {
        return http_store_error(req, r, "session", req->params[0]);
    }
    if (s.recording_path[0] == '\0') {
        return http_error(req, 404, "no_recording", "No recording",
                          "session %s was not recorded", s.id);
    }
    r = util_read_file(s.recording_path, HTTP_RECORDING_MAX, &data, &len);
    if (r != ERR_OK) {
        return http_error(req, 404, "no_recording", "No recording",
                          "the recording of session %s cannot be read: %s",
                          s.id, err_str(r));
    }
    req->raw = (char *)data;
    req->raw_len = len; /* binary (.rdprec): not up to the first NUL */
    req->raw_type = strstr(s.recording_path, ".cast") != NULL
                        ? "application/x-asciicast"
                    : strstr(s.recording_path, ".rdprec") != NULL
                        ? "application/x-portcullis-rdprec"
                        : "application/octet-stream";
    req->status = 200;
    return 0;
}

int http_h_audit_list(struct http_req *req)
{
    struct audit_filter f;
    struct audit_entry *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    memset(&f, 0, sizeof(f));
    if ((r = audit_list(req->store, &f, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "audit log", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(
            arr, json_pack("{s:I, s:o, s:s, s:s, s:s, s:s, s:s, s:s}", "seq",
                           (json_int_t)list[i].seq, "time",
                           http_json_time(list[i].time), "actor", list[i].actor,
                           "source", list[i].source, "action", list[i].action,
                           "target", list[i].target, "detail", list[i].detail,
                           "hash", list[i].hash));
    }
    store_list_free(list);
    return http_list(req, arr);
}
