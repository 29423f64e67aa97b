/*
 * /api/v1/peers: the peer nodes this node routes `peer:NAME` assets
 * through (admin/admin_peer.c holds the rules). The token is write-only;
 * POST /peers/{id}/check answers later (the peer's proxy is reached on
 * the loop, route/route.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "admin/admin.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "http/http_internal.h"
#include "route/route.h"
#include "store/peers.h"

static int http_peer_error(struct http_req *req, int r, const char *name)
{
    return http_store_error(req, r, "peer", name);
}

int http_h_peers_list(struct http_req *req)
{
    struct store_peer *list = NULL;
    json_t *arr;
    size_t n = 0, i;
    int r;

    if ((r = store_peer_list(req->store, &list, &n)) != ERR_OK) {
        return http_error(req, 500, "internal", "Internal error",
                          "cannot list peers: %s", err_str(r));
    }
    arr = json_array();
    for (i = 0; arr != NULL && i < n; i++) {
        json_array_append_new(arr,
                              admin_json_encode(admin_peer_fields, &list[i]));
    }
    store_peer_list_free(list, n);
    return http_list(req, arr);
}

int http_h_peers_get(struct http_req *req)
{
    struct store_peer p;
    int r = store_peer_get(req->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_peer_error(req, r, req->params[0]);
    }
    http_ok(req, 200, admin_json_encode(admin_peer_fields, &p), NULL);
    sodium_memzero(&p, sizeof(p));
    return 0;
}

int http_h_peers_add(struct http_req *req)
{
    struct store_peer p;
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_peer_add(&ac, req->body, http_body_str(req->body, "token"), &p,
                       &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    http_ok(req, 201, admin_json_encode(admin_peer_fields, &p), NULL);
    sodium_memzero(&p, sizeof(p));
    return 0;
}

int http_h_peers_patch(struct http_req *req)
{
    struct store_peer p;
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_peer_update(&ac, req->params[0], req->body,
                          http_body_str(req->body, "token"), &p,
                          &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    http_ok(req, 200, admin_json_encode(admin_peer_fields, &p), NULL);
    sodium_memzero(&p, sizeof(p));
    return 0;
}

int http_h_peers_delete(struct http_req *req)
{
    struct admin_ctx ac;
    struct admin_err e;

    http_admin_ctx(req, &ac);
    if (admin_peer_delete(&ac, req->params[0], &e) != ERR_OK) {
        return http_admin_error(req, &e);
    }
    return http_ok(req, 204, NULL, NULL);
}

struct http_peer_check {
    struct http *h;
    uint64_t id;
    int64_t t0;
    char name[PEER_NAME_MAX + 1];
    /* a check that ends before route_peer_check returns is answered by
     * the handler itself */
    bool in_handler, done;
    json_t *answer;
};

static json_t *http_peer_answer(struct http_peer_check *pc,
                                const struct route_result *r)
{
    json_t *o =
        json_pack("{s:s, s:b, s:i}", "peer", pc->name, "ok", r->why == NULL,
                  "round_trip_ms", (json_int_t)(util_mono_ms() - pc->t0));

    if (o != NULL) {
        json_object_set_new(o, "server",
                            json_string(r->server != NULL ? r->server : ""));
        json_object_set_new(o, "reason",
                            r->why != NULL ? json_string(r->why) : json_null());
        if (r->status != 0) {
            json_object_set_new(o, "status", json_integer(r->status));
        }
    }
    return o;
}

static void http_peer_checked(void *arg, const struct route_result *r)
{
    struct http_peer_check *pc = arg;
    struct http_req *req;

    if (pc->in_handler) {
        pc->done = true;
        pc->answer = http_peer_answer(pc, r);
        return;
    }
    if ((req = http_deferred(pc->h, pc->id)) != NULL) {
        http_ok(req, 200, http_peer_answer(pc, r), NULL);
        http_resume(req);
    }
    free(pc);
}

/* Starts the check of peer name for req, waiting by its ID id: true
 * when its answer comes later (http_peer_checked), false when req holds
 * it now. On the loop (the peer is reached through the loop's routes). */
static bool http_peer_check_start(struct http *h, struct http_req *req,
                                  const char *name, uint64_t id)
{
    struct http_peer_check *pc;

    if (h->routes == NULL || (pc = calloc(1, sizeof(*pc))) == NULL) {
        http_error(req, 503, "unavailable", "Service unavailable",
                   "peer checks are not available here");
        return false;
    }
    pc->h = h;
    pc->t0 = util_mono_ms();
    pc->id = id;
    snprintf(pc->name, sizeof(pc->name), "%s", name);
    pc->in_handler = true;
    (void)route_peer_check(h->routes, pc->name, http_peer_checked, pc);
    pc->in_handler = false;
    if (pc->done) {
        http_ok(req, 200, pc->answer, NULL);
        free(pc);
        return false;
    }
    return true;
}

/* POST /api/v1/peers/{id}/check: `peer check` through the API. On a
 * database server the token check and the peer's read run off the loop
 * and the check is started by the route's loop part (http_then_peer_
 * check): 202 between the two, with the peer's name. */
int http_h_peers_check(struct http_req *req)
{
    struct store_peer p;
    uint64_t id = 0;
    int r = store_peer_get(req->store, req->params[0], &p);

    if (r != ERR_OK) {
        return http_peer_error(req, r, req->params[0]);
    }
    sodium_memzero(p.token_sealed, sizeof(p.token_sealed));
    if (req->on_worker) {
        return http_ok(req, 202, json_pack("{s:s}", "peer", p.name), NULL);
    }
    if (req->h->routes == NULL) {
        return http_error(req, 503, "unavailable", "Service unavailable",
                          "peer checks are not available here");
    }
    if (http_defer(req, &id) != ERR_OK) {
        return http_error(req, 503, "server_busy", "Server busy",
                          "too many requests waiting; try again shortly");
    }
    if (!http_peer_check_start(req->h, req, p.name, id)) {
        http_undefer(req);
    }
    return 0;
}

void http_then_peer_check(struct http *h, struct http_req *req)
{
    char name[PEER_NAME_MAX + 1];
    const char *n;

    if (req->status != 202) {
        return;
    }
    n = json_string_value(json_object_get(req->data, "peer"));
    snprintf(name, sizeof(name), "%s", n != NULL ? n : "");
    if (req->deferred == 0) {
        /* its client went, or was answered at the deadline: no check */
        http_error(req, 503, "store_unavailable", "Database unavailable",
                   "the access server's database did not answer in time");
        return;
    }
    if (http_peer_check_start(h, req, name, req->deferred)) {
        req->later = true;
    }
}
