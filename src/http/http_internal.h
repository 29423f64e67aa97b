/*
 * What the files of src/http/ share: the server state, one request as the
 * route handlers see it, the route table's types, and the response
 * helpers. Not for other modules.
 *
 * A request travels: http_server.c (libwebsockets: method, path, query,
 * headers, body with its size limit) -> http_dispatch() in http_routes.c
 * (route match, 404/405, authentication, token filters, strict body and
 * query parsing, the permission check, the handler, the audit event) ->
 * back to http_server.c, which writes the response.
 *
 * Ownership: struct http_req belongs to its connection; the JSON values
 * in it (body, data, meta, errors) are references it holds and
 * http_req_clear() releases.
 */
#ifndef PORTCULLIS_HTTP_INTERNAL_H
#define PORTCULLIS_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libwebsockets.h>

#include "auth/lockout.h"
#include "common/config.h"
#include "common/loop.h"
#include "common/vault.h"
#include "http/http.h"
#include "http/http_body.h"
#include "auth/jwt.h"
#include "hub/hub.h"
#include "store/access.h"
#include "store/store.h"

#define HTTP_PROTOCOLS_MAX 4 /* http, agents, (web terminal) */
#define HTTP_PATH_MAX 1024
#define HTTP_QUERY_MAX 2048
#define HTTP_PARAMS 3
#define HTTP_PARAM_MAX 256
#define HTTP_FILTERS 8
#define HTTP_LIST_DEFAULT 100
#define HTTP_LIST_MAX 1000

enum http_method {
    HM_GET = 0,
    HM_POST,
    HM_PUT,
    HM_PATCH,
    HM_DELETE,
    HM_HEAD,
    HM_OPTIONS,
    HM__COUNT
};
const char *http_method_str(int m);

/* Who may call a route (issue 5 §4, SPEC §4). Site roles are a set;
 * administrator may do everything. */
enum http_perm {
    PERM_PUBLIC = 0, /* no token */
    PERM_SELF,       /* any authenticated user (their own profile, tokens) */
    PERM_SERVICE,    /* service, configuration-manager or administrator */
    PERM_CONFIG,     /* configuration-manager or administrator */
    PERM_ADMIN,      /* administrator: users and roles */
};

/* Which site a permission is checked on (roles are inherited downwards). */
enum http_scope {
    SCOPE_ROOT = 0,  /* /root: the whole tree */
    SCOPE_ASSET,     /* the site of the asset named by the first path {id} */
    SCOPE_SITE,      /* the site named by the first path {id} */
    SCOPE_BODY_SITE, /* the body's "site" field, /root if absent */
    SCOPE_TOKEN,     /* the token {id} must be the caller's own, unless the
                        caller is an administrator */
    SCOPE_BODY_USER, /* the body's "user" must be the caller, unless the
                        caller is an administrator */
};

struct http;
struct srccount;
struct http_req;
struct http_conn;
struct password_pool;

typedef int (*http_handler_fn)(struct http_req *req);

struct http_route {
    int method;
    const char *pattern; /* "/api/v1/users/{id}"; {x} matches one segment */
    int perm;
    int scope;
    const struct http_field *body; /* NULL: the route takes no body */
    bool list;                     /* accepts page[], sort, filter[] */
    http_handler_fn fn;
    const char *action; /* audit action of a change ("user.add"); NULL */
    /* its work is store reads only (no state of the loop's: the hub's
     * agents, jobs in flight, streams): on a database server it runs,
     * token check included, on one of the API's store connections off
     * the loop (http_offloop.c); HTTP_OFF_WRITES: and it reads what the
     * store's own writers write (the report, the audit log), so it waits
     * for them first */
    int off_loop;
    /* the loop part of a route off the loop whose change the loop's live
     * state must hear of (the hub: agents, credentials, tunnels): on the
     * loop, after the job's work ran (whether or not its client is still
     * there, whatever its answer: the change may be made though the
     * answer says otherwise), before the answer is sent; req is the
     * job's copy, holding the answer. NULL: none. On the loop a route
     * needs none: the handler tells the hub itself (http_admin_ctx). */
    void (*then)(struct http *h, struct http_req *req);
};
enum { HTTP_ON_LOOP = 0, HTTP_OFF = 1, HTTP_OFF_WRITES = 2 };

struct http_auth {
    bool ok;
    struct store_user user;
    struct jwt_claims claims;
    char jti_hash[JWT_HASH_LEN + 1];
    unsigned root_roles; /* site roles held on /root */
};

struct http_filter {
    char field[64];
    char value[256];
};

struct http_metrics {
    uint64_t requests;
    uint64_t api_auth_failures; /* failed logins and refused tokens */
    uint64_t login_failures;    /* failed POST /login */
    uint64_t responses_4xx, responses_5xx;
};

/*
 * Waiting for a deferred answer (http_waiter.c): the waiter of an answer
 * that comes later (a new tunnel's, a command's job, a job followed on
 * another node, a pairing question, a request off the loop) embeds a
 * struct http_waiter. It is on one list (struct http_waiters, whose count
 * is the waiters' bound) and has at most one timer armed, which calls
 * due(owner) once, on the loop. The waiter keeps its own fields and frees
 * itself, after http_waiter_unlink (off its list, its timer disarmed; a
 * no-op once done, so a waiter let go by http_waiters_forget may call it
 * again when it goes). Zeroed: on no list, no timer; an empty list. Loop
 * thread only.
 */
typedef void (*http_waiter_fn)(void *owner);
struct http_waiters;
struct http_waiter {
    struct http_waiter *next, **pprev; /* pprev NULL: on no list */
    struct http_waiters *list;
    void *owner;       /* the waiter's struct, given to the callbacks */
    struct loop *loop; /* of the armed timer */
    uint64_t timer;    /* 0: none armed (or it fired) */
    http_waiter_fn due;
};
struct http_waiters {
    struct http_waiter *first;
    unsigned n; /* waiters on the list */
};
/* wr (inside owner) first on l. */
void http_waiter_link(struct http_waiters *l, struct http_waiter *wr,
                      void *owner);
void http_waiter_unlink(struct http_waiter *wr);
/* due(the owner of wr's link) after ms, instead of an armed timer's;
 * false: out of memory, none armed. */
bool http_waiter_arm(struct http_waiter *wr, struct loop *loop, int64_t ms,
                     http_waiter_fn due);
void http_waiter_disarm(struct http_waiter *wr);
/* At a stop: every waiter of l unlinked (its timer disarmed), then
 * each(owner) if each is not NULL (it may free the waiter, or keep it for
 * a callback that comes back later and finds it let go). */
void http_waiters_forget(struct http_waiters *l, http_waiter_fn each);

struct http {
    const struct config *cfg;
    struct loop *loop;
    struct store *store;
    struct vault *vault;
    struct jwt_key *key;
    struct lockout *lockout;
    bool lockout_borrowed; /* the monitor's (http_share_auth) */
    struct lws_context *ctx;
    struct srccount *srcs; /* connections per client source */
    struct http_metrics m;
    bool tls;
    struct hub *hub;       /* the agent hub, or NULL */
    struct routes *routes; /* for peer checks (route/route.h) */
    lws_callback_function *hub_callback;
    struct webtickets *tickets; /* the monitor's, for the browser terminal */
    /* argon2id off the loop: the monitor's pool (shared: one cap), or NULL
     * to check in line; requests waiting for it (http_defer) */
    struct password_pool *hashes;
    struct http_conn *deferred;
    uint64_t next_deferred;
    /* commands waiting for a job that runs on another node (jobs) */
    struct http_waiters follows;
    /* commands waiting for (or started without waiting for) a job that
     * runs here, until its result is recorded (http_res_jobs.c) */
    struct http_waiters job_waits;
    /* this node's tunnels (http_set_tunnels), and the new tunnels' answers
     * waiting until they have looked at them (http_res_agents.c) */
    struct tunnels *tunnels;
    struct http_waiters tunnel_waits;
    unsigned nterms;          /* browser terminals open (http_term.c) */
    struct http_pairs *pairs; /* pairing codes (http_pair.c) */
    struct http_off *off;     /* store reads off the loop (http_offloop.c) */
    struct lws_protocols protocols[HTTP_PROTOCOLS_MAX + 1];
};

struct http_req {
    struct http *h;
    /* the connection its store calls use: h->store on the loop, or one of
     * the API's own on a worker thread (http_offloop.c); set by
     * http_dispatch when NULL */
    struct store *store;
    /* what the loop knew when the request came (for GET /metrics, whose
     * work may run off the loop): the counters and the job watchers */
    struct http_metrics seen;
    uint64_t seen_watchers;
    /* refused tokens, added to h->m on the loop (a worker thread does
     * not touch h) */
    unsigned auth_failures;
    /* its dispatch runs on a worker thread (http_offloop.c): the
     * handlers leave the loop's state to the route's then */
    bool on_worker;
    /* its handler ran: the token and the permission were checked and
     * passed (a route's then runs only for such a request) */
    bool handled;
    /* set by a loop part (a route's then, an http_off_hand then) on the
     * job's copy: the request stays deferred, something else (a password
     * check, a peer check) answers it later by its ID (req->deferred of
     * the copy). Set on a request without a connection that
     * http_dispatch gave to the worker: its answer goes to off_answer. */
    bool later;
    /* a request without a connection (the browser terminal's GET /me):
     * where its answer goes when its route runs off the loop, on the
     * loop, once (http_off_forget: not at all) */
    void (*off_answer)(void *arg, struct http_req *answer);
    void *off_arg;
    const struct http_route *route;
    int method;
    char path[HTTP_PATH_MAX];
    /* the path an API token's path filter is checked against; NULL for
     * path (the browser terminal asks GET /me for its own path) */
    const char *filter_path;
    char query[HTTP_QUERY_MAX];
    char client_ip[64];
    char client[80]; /* "ip:port"-like, for the audit source */
    char params[HTTP_PARAMS][HTTP_PARAM_MAX];
    const char *authorization; /* the raw header value, or NULL */
    const char *body_data;
    size_t body_len;
    json_t *body;

    /* the query of a list route */
    size_t limit, offset;
    char sort[64];
    struct http_filter filters[HTTP_FILTERS];
    size_t nfilters;

    struct http_auth auth;

    /* the response */
    int status;
    json_t *data, *meta, *errors;
    char *raw;         /* a non-JSON body (metrics); heap */
    size_t raw_len;    /* its length; 0: strlen(raw) */
    char host[256];    /* the Host header ("" if none) */
    char query_os[16]; /* ?os= of GET /pair/{code} */
    const char *raw_type;
    char allow[64];  /* the Allow header of a 405 */
    bool www_auth;   /* add WWW-Authenticate: Bearer */
    int retry_after; /* > 0: add Retry-After: this many seconds (a 503) */
    int delay_ms;    /* answer after this long (failed logins) */
    /* an answer that comes later (http_defer): the connection, and what a
     * deferred login resolved its name to */
    struct http_conn *conn;
    uint64_t deferred; /* 0, or the ID http_defer gave */
    char login_uid[STORE_ID_MAX + 1];
    char audit_target[256];
    char audit_detail[512];
};

void http_req_clear(struct http_req *req);

/* --- jobs (http_res_jobs.c) --- */
/* Ends the commands still waiting for a job on another node (http_stop). */
void http_job_follows_free(struct http *h);
/* Forgets the commands waiting for a job that runs here (http_stop): a
 * result recorded later (the hub's writer) finds h gone and only frees
 * its waiter. */
void http_job_waits_forget(struct http *h);
/* At stop: the new tunnels' answers that wait are dropped. */
void http_tunnel_waits_forget(struct http *h);

/* --- pairing (http_pair.c) --- */
#define PAIR_CODE_BUF 16
int http_pairs_new(struct http *h);
void http_pairs_free(struct http_pairs *ps);
/* Makes a code from req {"tags":[..],"name":..,"credential":..,
 * "secret":..}; why says what was refused. */
int http_pair_create(struct http *h, const json_t *req, const char *actor,
                     char code[PAIR_CODE_BUF], int64_t *expires, char *why,
                     size_t whylen);
json_t *http_pair_answer(const struct http *h, const char *host,
                         const char *code, int64_t expires);
int http_h_pair_get(struct http_req *req);
int http_h_pair_agent(struct http_req *req);
int http_h_pairing_add(struct http_req *req);
/* POST /pairing's loop part: the code made once the check passed off
 * the loop. */
void http_then_pairing(struct http *h, struct http_req *req);

/*
 * Answering later: a handler whose work runs off the loop (a password
 * check on the worker pool) returns http_defer(req), which gives an ID to
 * pass to the work instead of req (the client may close the connection
 * meanwhile, and req goes with it). When the work is done, in the loop's
 * thread, http_deferred(h, id) gives req back, or NULL if its connection
 * is gone (then drop the result); fill the answer as a handler does and
 * call http_resume(req) to send it. Routes that answer later write their
 * own audit events.
 */
int http_defer(struct http_req *req, uint64_t *id);
/* Takes back http_defer() while still in the handler (answer now). */
void http_undefer(struct http_req *req);
struct http_req *http_deferred(struct http *h, uint64_t id);
void http_resume(struct http_req *req);

/*
 * A streamed answer (http_sse.c: a job's output as server-sent events).
 * The handler hands req's connection over with http_conn_stream(); from
 * then on http_server.c calls http_sse_writeable() whenever the
 * connection can write (0: go on; 1: the stream is complete; -1: an
 * error; the connection closes on either) and http_sse_free() when the
 * connection goes.
 */
struct http_sse;
int http_conn_stream(struct http_req *req, struct http_sse *s);
struct lws *http_conn_wsi(struct http_req *req);
int http_sse_writeable(struct http_sse *s, struct lws *wsi);
void http_sse_free(struct http_sse *s);
/* GET /jobs/{id}/stream's loop part (a database server): the waiting
 * connection becomes the stream */
void http_then_jobs_stream(struct http *h, struct http_req *req);
/* Runs w (a read of the jobs) on the job streams' store worker (one
 * connection; in line on SQLite): false if it cannot be had (w not
 * run, its done not called). */
struct store_work;
bool http_jobs_read(struct http *h, struct store_work *w);
/* After the connections (http_stop): the streams' store reads stopped
 * (a read that comes back later finds no one). */
void http_sse_stop(void);
int http_h_jobs_stream(struct http_req *req);

/* Runs the request through the route table and fills the response. */
void http_dispatch(struct http_req *req);
/* What http_dispatch does once the route is found (req->route): the
 * token, the body and query, the permission, the handler, the store
 * check and the audit event. On a worker thread for a route off the
 * loop (http_offloop.c): it touches req, req->store and what never
 * changes in req->h (cfg, key), nothing else. */
void http_dispatch_route(struct http_req *req);

/*
 * Store reads off the loop (http_offloop.c): a fixed set of store
 * connections for the routes marked off_loop, used only on a database
 * server (SQLite: the routes run on the loop, as every route does).
 */
#define HTTP_OFF_CONNS 2    /* connections, so worker threads, at most */
#define HTTP_OFF_WAITING 32 /* requests waiting for one, at most */
int http_off_new(struct http *h);
void http_off_free(struct http *h);
/* On the loop, for a route off the loop: true when req was taken (it
 * waits for a connection, answered later, or was answered at once: 503
 * when too many wait or the database does not answer); false: run it
 * here (SQLite, or no connection to answer later on). A request without
 * a connection but with off_answer set is taken too: req->later says its
 * answer comes to off_answer. */
bool http_off_take(struct http_req *req);
/* The callback owner arg went: its answer is dropped (a job not started
 * is not run). */
void http_off_forget(struct http *h, void *arg);
/*
 * A handler's own store work off the loop, for a route that runs on the
 * loop (its state is the loop's: lockouts, pairing codes) or a step of a
 * request already deferred (a login once its password was checked):
 * work(w, st, ctx) on a worker thread, with w a copy of req (its body
 * parsed, no answer) and st one of the API's connections; it touches
 * only w, st and ctx. Then then(h, w, req, ctx, ran) on the loop, exactly
 * once: req is the request if its client is still there and it was not
 * answered at the deadline (else NULL), ran whether work ran (false: 503
 * at once, dropped unrun, no connection: w's answer is 503 then). then
 * frees ctx (a plain heap block: free() at the API's stop), does the
 * loop's part and fills w's answer, which is then sent; or sets
 * w->later and answers req itself later, by req->deferred. The bounds
 * and the deadline are the routes' (HTTP_OFF_CONNS, HTTP_OFF_WAITING).
 * SQLite: work and then run here at once with w == req (then defers req
 * itself if it must answer later). true: taken (req deferred, its answer
 * sent after then); false: req holds its answer now (in line, or 503 at
 * once after then(.., ran false)), not sent: a request that was
 * deferred already is the caller's to resume. A route's audit action is
 * not written for a request handed off: its work or then writes it.
 */
typedef void (*http_off_work_fn)(struct http_req *w, struct store *st,
                                 void *ctx);
typedef void (*http_off_then_fn)(struct http *h, struct http_req *w,
                                 struct http_req *req, void *ctx, bool ran);
/* ctx_free: how ctx goes if the API stops before then ran (then owns
 * it otherwise); it may hold secrets (a credential's, a user's row). */
bool http_off_hand(struct http_req *req, http_off_work_fn work,
                   http_off_then_fn then, void *ctx, void (*ctx_free)(void *));

/* Response helpers; each returns 0 so a handler can `return http_ok(..)`.
 * http_ok steals data (and meta, may be NULL). */
int http_ok(struct http_req *req, int status, json_t *data, json_t *meta);
int http_error(struct http_req *req, int status, const char *code,
               const char *title, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Maps a store error about object what/name to 404, 409, 400 or 500. */
int http_store_error(struct http_req *req, int err, const char *what,
                     const char *name);
/* Sorts, filters and pages a JSON array of objects by the request's list
 * query, then answers 200 with meta {total, limit, offset}. Steals arr. */
int http_list(struct http_req *req, json_t *arr);
/* ISO-8601 string or null. */
json_t *http_json_time(int64_t t);
/* NULL for "" (for json_pack's "s?"). */
const char *http_nz(const char *s);

/* The route table (http_routes.c) and its size, for docs and tests. */
extern const struct http_route http_routes[];
extern const size_t http_routes_count;

/* Handlers, by resource (http_res_*.c). */
int http_h_healthz(struct http_req *req);
/* jobs (http_res_jobs.c) */
int http_h_agents_command(struct http_req *req);
int http_h_jobs_list(struct http_req *req);
int http_h_jobs_add(struct http_req *req);
/* the loop parts of the two job starts off the loop (http_res_jobs.c):
 * the job recorded on the worker started through the hub */
void http_then_agents_command(struct http *h, struct http_req *req);
void http_then_jobs_add(struct http *h, struct http_req *req);
int http_h_schedules_list(struct http_req *req);
int http_h_client_groups_list(struct http_req *req);
int http_h_client_groups_add(struct http_req *req);
int http_h_client_groups_get(struct http_req *req);
int http_h_client_groups_delete(struct http_req *req);
int http_h_schedules_add(struct http_req *req);
int http_h_schedules_get(struct http_req *req);
int http_h_schedules_delete(struct http_req *req);
int http_h_schedules_patch(struct http_req *req);
int http_h_client_groups_agent_add(struct http_req *req);
int http_h_client_groups_agent_delete(struct http_req *req);
int http_h_job_roles_list(struct http_req *req);
/* GET /me's "job_roles": [{role, client_group}] the caller holds. */
json_t *http_me_job_roles(struct http_req *req);
int http_h_job_roles_add(struct http_req *req);
int http_h_job_roles_delete(struct http_req *req);
int http_h_jobs_get(struct http_req *req);
/* The job req->params[0] names, if the caller's scope holds it (the
 * caller frees it: store_job_free_output, free); else NULL with *ret what
 * the handler returns (the error answered: a job out of scope is 404 as
 * an unknown one, not confirmed to exist). */
struct store_job *http_job_read(struct http_req *req, int *ret);
int http_h_metrics(struct http_req *req);
int http_h_login(struct http_req *req);
int http_h_logout(struct http_req *req);
int http_h_me_get(struct http_req *req);
int http_h_me_patch(struct http_req *req);

int http_h_users_list(struct http_req *req);
int http_h_users_add(struct http_req *req);
int http_h_users_get(struct http_req *req);
int http_h_users_patch(struct http_req *req);
int http_h_users_delete(struct http_req *req);
int http_h_users_totp_enable(struct http_req *req);
int http_h_users_totp_disable(struct http_req *req);
int http_h_users_keys_list(struct http_req *req);
int http_h_users_keys_add(struct http_req *req);
int http_h_users_keys_delete(struct http_req *req);

int http_h_groups_list(struct http_req *req);
int http_h_groups_add(struct http_req *req);
int http_h_groups_get(struct http_req *req);
int http_h_groups_delete(struct http_req *req);
int http_h_groups_members_list(struct http_req *req);
int http_h_groups_members_add(struct http_req *req);
int http_h_groups_members_delete(struct http_req *req);

int http_h_sites_list(struct http_req *req);
int http_h_sites_add(struct http_req *req);
int http_h_sites_get(struct http_req *req);
int http_h_sites_delete(struct http_req *req);
int http_h_site_roles_list(struct http_req *req);
int http_h_site_roles_add(struct http_req *req);
int http_h_site_roles_delete(struct http_req *req);

int http_h_assets_list(struct http_req *req);
int http_h_assets_add(struct http_req *req);
int http_h_assets_get(struct http_req *req);
int http_h_assets_patch(struct http_req *req);
int http_h_assets_delete(struct http_req *req);
int http_h_grants_list(struct http_req *req);
int http_h_grants_add(struct http_req *req);
int http_h_grants_delete(struct http_req *req);

int http_h_profiles_list(struct http_req *req);
int http_h_profiles_add(struct http_req *req);
int http_h_profiles_get(struct http_req *req);
int http_h_profiles_assignments(struct http_req *req);
int http_h_profiles_patch(struct http_req *req);
int http_h_profiles_delete(struct http_req *req);
int http_h_profiles_assign(struct http_req *req);
int http_h_profiles_unassign(struct http_req *req);

int http_h_tokens_list(struct http_req *req);
int http_h_tokens_add(struct http_req *req);
int http_h_tokens_get(struct http_req *req);
int http_h_tokens_patch(struct http_req *req);
int http_h_tokens_delete(struct http_req *req);

int http_h_sessions_list(struct http_req *req);
int http_h_sessions_get(struct http_req *req);
int http_h_sessions_recording(struct http_req *req);
int http_h_audit_list(struct http_req *req);
int http_h_directories_list(struct http_req *req); /* http_res_auth.c */
/* its loop part: the directories' configuration read on the loop */
void http_then_directories(struct http *h, struct http_req *req);

/* The agent side (http_res_agents.c). */
int http_h_peers_list(struct http_req *req); /* http_res_peers.c */
int http_h_peers_add(struct http_req *req);
int http_h_peers_get(struct http_req *req);
int http_h_peers_patch(struct http_req *req);
int http_h_peers_delete(struct http_req *req);
int http_h_peers_check(struct http_req *req);
int http_h_credentials_list(struct http_req *req);
int http_h_credentials_add(struct http_req *req);
int http_h_credentials_get(struct http_req *req);
int http_h_credentials_delete(struct http_req *req);
int http_h_agents_list(struct http_req *req);
int http_h_nodes_list(struct http_req *req);
int http_h_agents_get(struct http_req *req);
int http_h_agents_delete(struct http_req *req);
int http_h_agents_rebind(struct http_req *req);
int http_h_tunnels_list(struct http_req *req);
int http_h_tunnels_add(struct http_req *req);
int http_h_tunnels_get(struct http_req *req);
int http_h_tunnels_patch(struct http_req *req);
int http_h_tunnels_delete(struct http_req *req);
/* The loop parts (struct http_route's then) of the agent side's routes
 * off the loop: the hub told of a change (credentials, agents, tunnels),
 * an agent's "online" made the hub's, the new tunnel's state re-read
 * once its listener is up. */
void http_then_credentials(struct http *h, struct http_req *req);
void http_then_agent_delete(struct http *h, struct http_req *req);
void http_then_agent_rebind(struct http *h, struct http_req *req);
void http_then_agent_get(struct http *h, struct http_req *req);
void http_then_agents_list(struct http *h, struct http_req *req);
void http_then_tunnel_add(struct http *h, struct http_req *req);
void http_then_tunnels(struct http *h, struct http_req *req);
/* POST /peers/{id}/check's: the check started once the peer was read
 * off the loop (its answer comes later: req->later). */
void http_then_peer_check(struct http *h, struct http_req *req);

/* --- the browser terminal (http_term.c) ------------------------------ */

/* http_server.c: the WebSocket wsi has authenticated; it leaves its
 * address's count of pre-auth WebSockets. */
void http_ws_authed(struct lws *wsi);

#define HTTP_TERM_PROTOCOL "portcullis-terminal.v1"
#define HTTP_TERM_PATH "/api/v1/terminal"
#define HTTP_TERM_MSG_MAX 4096 /* one text message of the page */
#define HTTP_TERM_TEXT_MAX 256 /* an answer to a prompt */
#define HTTP_TERM_DIM_MAX 1000 /* columns or rows */

enum http_term_msg_type {
    HTTP_TERM_AUTH = 1, /* {type, token, asset, cols, rows}: first only */
    HTTP_TERM_ANSWER,   /* {type, text}: to the last prompt */
    HTTP_TERM_RESIZE,   /* {type, cols, rows} */
};

struct http_term_msg {
    int type;
    char token[JWT_MAX + 1];
    char asset[STORE_ID_MAX + 1];
    char text[HTTP_TERM_TEXT_MAX + 1];
    unsigned cols, rows;
};

/* Parses one text message of the page strictly: a JSON object with a
 * known "type", exactly that type's fields (no unknown or duplicate key),
 * each of its type and within its maximum. Pure; ERR_OK or ERR_INVALID
 * with *why a static reason. *out is zeroed first; the caller wipes it
 * (it may hold a token or a TOTP code). */
int http_term_msg_parse(const char *s, size_t len, struct http_term_msg *out,
                        const char **why);

/* The terminal's libwebsockets callback and per-connection data size. */
int http_term_callback(struct lws *wsi, enum lws_callback_reasons reason,
                       void *user, void *in, size_t len);
extern const size_t http_term_pss_size;

/* The admin layer (admin.h) under the handlers: the door of a change
 * through the API (the store, the config, the hub told directly on the
 * loop, never on a worker thread: there the route's then tells it; the
 * caller as the audit actor, its address as the source), and a refusal
 * answered with admin's words (400, 404, 409, 403 or 500 by its code). */
struct admin_ctx;
struct admin_err;
void http_admin_ctx(struct http_req *req, struct admin_ctx *c);
int http_admin_error(struct http_req *req, const struct admin_err *e);

#endif
