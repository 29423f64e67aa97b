/*
 * Route handlers for the agent side: agent credentials, agents and
 * tunnels (SPEC §6, docs/api.md). They are adapters over the admin layer
 * (admin_agent.c), which `portcullis credential | agent | tunnel` shares:
 * the rules, the JSON forms, the audit event and the notice to the hub
 * are there, so both doors accept, refuse and show the same things.
 *
 * A new credential's secret appears in the answer to its POST and nowhere
 * else: the store keeps only its argon2id hash. Permission checks are not
 * made here: http_dispatch() has made them from the route table.
 *
 * On a database server these routes run off the loop (http_offloop.c),
 * where the hub, the loop's, is not touched: a change is made and
 * published to the other nodes there, and the route's loop part (the
 * http_then_* below, run on the loop once the work is back, also when
 * the client went) tells this node's hub, as admin_notify does on the
 * loop; an agent's "online" is made the hub's there too.
 */
#include "http/http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "admin/admin.h"
#include "common/err.h"
#include "hub/tunnel.h"
#include "store/nodes.h"

/* --- credentials --------------------------------------------------------- */

int http_h_credentials_list(struct http_req *req)
{
    struct store_credential *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_credential_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "credential", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(
            arr, admin_json_encode(admin_credential_fields, &list[i]));
    }
    store_credential_list_free(list, n);
    return http_list(req, arr);
}

int http_h_credentials_add(struct http_req *req)
{
    struct store_credential c;
    struct admin_ctx ac;
    struct admin_err e;
    char secret[64] = "";
    json_t *data;
    int r;

    http_admin_ctx(req, &ac);
    r = admin_credential_add(&ac, http_body_str(req->body, "name"), &c, secret,
                             sizeof(secret), &e);
    if (r != ERR_OK && secret[0] == '\0') {
        return http_admin_error(req, &e);
    }
    /* made (an audit failure is logged by admin's caller below) */
    data = admin_json_encode(admin_credential_fields, &c);
    if (data != NULL) {
        json_object_set_new(data, "secret", json_string(secret));
    }
    sodium_memzero(secret, sizeof(secret));
    http_ok(req, 201, data, NULL);
    sodium_memzero(&c, sizeof(c));
    return 0;
}

int http_h_credentials_get(struct http_req *req)
{
    struct store_credential c;
    int r = store_credential_get(req->store, req->params[0], &c);

    if (r != ERR_OK) {
        return http_store_error(req, r, "credential", req->params[0]);
    }
    http_ok(req, 200, admin_json_encode(admin_credential_fields, &c), NULL);
    sodium_memzero(&c, sizeof(c));
    return 0;
}

int http_h_credentials_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_credential_delete(&ac, req->params[0], NULL, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

/* --- agents -------------------------------------------------------------- */

int http_h_agents_list(struct http_req *req)
{
    struct store_agent *list = NULL;
    struct admin_ctx ac;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_agent_list(req->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "agent", "list");
    }
    http_admin_ctx(req, &ac);
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, admin_agent_json(&ac, &list[i]));
    }
    store_agent_list_free(list, n);
    if (req->on_worker) {
        /* all of them: "online" is the hub's, and a filter or a sort on
         * it is only right after http_then_agents_list made it so */
        return http_ok(req, 200, arr, NULL);
    }
    return http_list(req, arr);
}

/* --- nodes (store/nodes.h) --------------------------------------------- */

int http_h_nodes_list(struct http_req *req)
{
    struct store_node *list = NULL;
    struct admin_ctx ac;
    struct admin_err e;
    size_t n = 0, i;
    json_t *arr;

    http_admin_ctx(req, &ac);
    if (admin_node_list(&ac, req->h->cfg, &list, &n, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr,
                              admin_json_encode(admin_node_fields, &list[i]));
    }
    store_node_list_free(list, n);
    return http_list(req, arr);
}

int http_h_agents_get(struct http_req *req)
{
    struct store_agent *a = calloc(1, sizeof(*a));
    struct store_tunnel *tl = NULL;
    struct admin_ctx ac;
    size_t nt = 0;
    json_t *j;
    int r;

    /* two 8 KiB lists: not on the stack */
    if (a == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    if ((r = store_agent_get(req->store, req->params[0], a)) != ERR_OK ||
        (r = store_tunnel_list(req->store, a->id, &tl, &nt)) != ERR_OK) {
        http_store_error(req, r, "agent", req->params[0]);
        goto out;
    }
    http_admin_ctx(req, &ac);
    j = admin_agent_json(&ac, a);
    if (j != NULL) {
        json_object_set_new(j, "tunnels", json_integer((json_int_t)nt));
    }
    http_ok(req, 200, j, NULL);
out:
    store_tunnel_list_free(tl, nt);
    free(a);
    return 0;
}

int http_h_agents_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_agent_delete(&ac, req->params[0], NULL, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

/* POST /agents/{id}/rebind {"credential": "ID"}: the agent ID now
 * belongs to that credential ("" unbinds it). */
int http_h_agents_rebind(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_agent_rebind(&ac, req->params[0],
                           http_body_str(req->body, "credential"), NULL,
                           &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_h_agents_get(req);
}

/* --- tunnels ------------------------------------------------------------- */

int http_h_tunnels_list(struct http_req *req)
{
    struct store_tunnel *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_tunnel_list(req->store, NULL, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "tunnel", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr,
                              admin_json_encode(admin_tunnel_fields, &list[i]));
    }
    store_tunnel_list_free(list, n);
    return http_list(req, arr);
}

int http_h_tunnels_add(struct http_req *req)
{
    struct admin_tunnel_req tr;
    struct store_tunnel t, in;
    struct admin_ctx ac;
    struct admin_err e;
    const struct admin_field *facl =
        admin_field_find(admin_tunnel_fields, "acl");
    json_t *jacl = json_object_get(req->body, "acl");

    memset(&tr, 0, sizeof(tr));
    memset(&in, 0, sizeof(in));
    tr.agent_id = http_body_str(req->body, "agent");
    tr.peer = http_body_str(req->body, "peer");
    tr.remote = http_body_str(req->body, "remote");
    tr.udp = http_body_bool(req->body, "udp", false);
    tr.local_port = (int)http_body_int(req->body, "local_port", 0);
    tr.idle_minutes = (int)http_body_int(req->body, "idle_timeout_minutes", 0);
    if (jacl != NULL) {
        /* the list joined as the descriptor keeps it ("a,b") */
        if (admin_field_apply(facl, req->body, &in, &e) != ERR_OK) {
            return http_admin_error(req, &e);
        }
        tr.acl = in.acl;
    } else {
        tr.default_ip = req->client_ip; /* the caller's own address only */
    }
    http_admin_ctx(req, &ac);
    if (admin_tunnel_add(&ac, &tr, &t, NULL, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 201, admin_json_encode(admin_tunnel_fields, &t), NULL);
}

int http_h_tunnels_get(struct http_req *req)
{
    struct store_tunnel t;
    int r = store_tunnel_get(req->store, req->params[0], &t);

    if (r != ERR_OK) {
        return http_store_error(req, r, "tunnel", req->params[0]);
    }
    return http_ok(req, 200, admin_json_encode(admin_tunnel_fields, &t), NULL);
}

int http_h_tunnels_patch(struct http_req *req)
{
    const struct admin_field *facl =
        admin_field_find(admin_tunnel_fields, "acl");
    struct store_tunnel t;
    struct admin_ctx ac;
    struct admin_err e;
    char acl[sizeof(t.acl)];

    memset(&t, 0, sizeof(t));
    if (admin_field_apply(facl, req->body, &t, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    memcpy(acl, t.acl, sizeof(acl));
    http_admin_ctx(req, &ac);
    if (admin_tunnel_set_acl(&ac, req->params[0], acl, &t, NULL, &e) !=
        ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 200, admin_json_encode(admin_tunnel_fields, &t), NULL);
}

int http_h_tunnels_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_tunnel_delete(&ac, req->params[0], NULL, &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

/* --- the loop parts (struct http_route's then) ---------------------------- */

/* An agent's "online" as the hub sees it: connected here, or (on a
 * cluster) online on the node the store names (admin_agent_json). */
static void http_agent_online(struct http *h, json_t *j)
{
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *node = json_string_value(json_object_get(j, "node"));
    bool elsewhere = json_is_true(json_object_get(j, "online")) &&
                     node != NULL && node[0] != '\0' &&
                     strcmp(node, store_node_self(h->store)) != 0;

    if (h->hub != NULL && id != NULL) {
        json_object_set_new(
            j, "online",
            json_boolean(hub_agent_online(h->hub, id) || elsewhere));
    }
}

void http_then_credentials(struct http *h, struct http_req *req)
{
    (void)req;
    /* agents logged in with a deleted one drop now */
    hub_changed(h->hub, HUB_CHANGE_CREDENTIALS);
}

void http_then_agent_delete(struct http *h, struct http_req *req)
{
    (void)req;
    /* a connected one goes; its tunnels went with it: their listeners
     * close too */
    hub_changed(h->hub, HUB_CHANGE_AGENTS | HUB_CHANGE_TUNNELS);
}

void http_then_agent_rebind(struct http *h, struct http_req *req)
{
    /* a connected agent with another credential goes */
    hub_changed(h->hub, HUB_CHANGE_AGENTS);
    http_then_agent_get(h, req);
}

void http_then_agent_get(struct http *h, struct http_req *req)
{
    if (req->status == 200 && json_is_object(req->data)) {
        http_agent_online(h, req->data);
    }
}

void http_then_agents_list(struct http *h, struct http_req *req)
{
    json_t *arr, *j;
    size_t i;

    if (req->status != 200 || !json_is_array(req->data) || req->meta != NULL) {
        return; /* refused, or already a page */
    }
    arr = req->data;
    req->data = NULL;
    json_array_foreach(arr, i, j)
    {
        http_agent_online(h, j);
    }
    http_list(req, arr);
}

/*
 * A new tunnel's answer shows the state this node gave it (listening, or
 * why not), as it did when the whole route ran on the loop. The tunnels
 * read the store again for the change (hub/tunnel.h tunnels_reload): at
 * once on SQLite, on their own worker on PostgreSQL, so the answer waits
 * (deferred, at most HTTP_TUNNEL_WAIT_MS, then it shows the state as it
 * stands) until the read asked for it is applied. At most
 * HTTP_TUNNEL_WAITS wait at once; beyond, the answer goes at once.
 */
#define HTTP_TUNNEL_WAIT_MS 5000
#define HTTP_TUNNEL_WAITS 256

struct http_tunnel_wait {
    struct http_waiter waiter; /* in h->tunnel_waits; its deadline */
    struct http *h;
    uint64_t req_id; /* http_defer's */
    uint64_t gen;    /* tunnels_asked once its change was told */
    json_t *answer;  /* the tunnel as added; its state goes in */
    char id[STORE_ID_MAX + 1];
};

/* The tunnel's state as the tunnels hold it into answer, when they have
 * it (a tunnel deleted meanwhile keeps the state it was added with). */
static void http_tunnel_state_into(struct http *h, json_t *answer,
                                   const char *id)
{
    char state[TUNNEL_STATE_MAX + 1];

    if (tunnels_state(h->tunnels, id, state, sizeof(state))) {
        json_object_set_new(answer, "state",
                            json_string(state[0] != '\0' ? state : "pending"));
    }
}

static void http_tunnel_wait_free(void *arg)
{
    struct http_tunnel_wait *w = arg;

    http_waiter_unlink(&w->waiter);
    json_decref(w->answer);
    free(w);
}

/* Answers w (its client may be gone) and frees it. */
static void http_tunnel_wait_answer(struct http_tunnel_wait *w)
{
    struct http_req *req = http_deferred(w->h, w->req_id);

    if (req != NULL) {
        http_tunnel_state_into(w->h, w->answer, w->id);
        http_ok(req, 201, w->answer, NULL);
        w->answer = NULL; /* req's */
        http_resume(req);
    }
    http_tunnel_wait_free(w);
}

static void http_tunnel_wait_due(void *arg)
{
    http_tunnel_wait_answer(arg);
}

/* The tunnels applied every read asked for. */
static void http_tunnels_applied(void *arg)
{
    struct http *h = arg;
    uint64_t applied = tunnels_applied(h->tunnels);
    struct http_waiter *wr, *next;

    for (wr = h->tunnel_waits.first; wr != NULL; wr = next) {
        struct http_tunnel_wait *w = wr->owner;

        next = wr->next;
        if (w->gen <= applied) {
            http_tunnel_wait_answer(w);
        }
    }
}

void http_set_tunnels(struct http *h, struct tunnels *ts)
{
    h->tunnels = ts;
    tunnels_set_applied_fn(ts, http_tunnels_applied, h);
}

void http_tunnel_waits_forget(struct http *h)
{
    tunnels_set_applied_fn(h->tunnels, NULL, NULL);
    h->tunnels = NULL;
    /* their clients are gone */
    http_waiters_forget(&h->tunnel_waits, http_tunnel_wait_free);
}

void http_then_tunnel_add(struct http *h, struct http_req *req)
{
    const char *id = json_string_value(json_object_get(req->data, "id"));
    struct http_tunnel_wait *w;

    http_then_tunnels(h, req);
    if (req->status != 201 || id == NULL || h->tunnels == NULL) {
        return;
    }
    /* applied already (SQLite), or no way to answer later: as it stands */
    if (tunnels_applied(h->tunnels) >= tunnels_asked(h->tunnels) ||
        req->deferred == 0 || h->tunnel_waits.n >= HTTP_TUNNEL_WAITS ||
        (w = calloc(1, sizeof(*w))) == NULL) {
        http_tunnel_state_into(h, req->data, id);
        return;
    }
    w->h = h;
    w->req_id = req->deferred;
    w->gen = tunnels_asked(h->tunnels);
    snprintf(w->id, sizeof(w->id), "%s", id);
    http_waiter_link(&h->tunnel_waits, &w->waiter, w);
    if (!http_waiter_arm(&w->waiter, h->loop, HTTP_TUNNEL_WAIT_MS,
                         http_tunnel_wait_due)) {
        http_tunnel_wait_free(w);
        http_tunnel_state_into(h, req->data, id);
        return;
    }
    w->answer = req->data;
    req->data = NULL;
    req->later = true; /* answered by http_tunnel_wait_answer */
}

void http_then_tunnels(struct http *h, struct http_req *req)
{
    (void)req;
    /* listeners open, change their ACL or close */
    hub_changed(h->hub, HUB_CHANGE_TUNNELS);
}
