/*
 * Route handlers for the agent side: agent credentials, agents and
 * tunnels (SPEC §6, docs/api.md). They mirror `portcullis credential |
 * agent | tunnel` and share their rules and JSON forms with them
 * (hub/tunnel_def.h).
 *
 * The API runs inside the server process, so after a change it tells the
 * hub directly (hub_changed()) where the CLI sends a notice (notify.h):
 * a deleted credential's agents drop at once, a new tunnel listens, a
 * changed ACL applies to the next connection. An agent's online flag is
 * the hub's own view when there is a hub (it knows about connections
 * that are a moment old), otherwise the store's.
 *
 * A new credential's secret appears in the answer to its POST and nowhere
 * else: the store keeps only its argon2id hash. Permission checks are not
 * made here: http_dispatch() has made them from the route table.
 */
#include "http/http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/secret.h"
#include "common/err.h"
#include "common/util.h"
#include "hub/tunnel_def.h"
#include "store/agents.h"

#define HTTP_CRED_ID_BYTES 16 /* 32 hex digits */

static void http_agents_changed(struct http_req *req, unsigned what)
{
    if (req->h->hub != NULL) {
        hub_changed(req->h->hub, what);
    }
}

/* A JSON array of strings joined with commas into out. */
static int http_join_list(const json_t *arr, char *out, size_t outlen)
{
    size_t i, used = 0, len;
    json_t *v;

    out[0] = '\0';
    json_array_foreach(arr, i, v)
    {
        len = strlen(json_string_value(v));
        if (used + (used > 0) + len + 1 > outlen) {
            return ERR_TOO_LONG;
        }
        if (used > 0) {
            out[used++] = ',';
        }
        memcpy(out + used, json_string_value(v), len + 1);
        used += len;
    }
    return ERR_OK;
}

/* --- credentials --------------------------------------------------------- */

int http_h_credentials_list(struct http_req *req)
{
    struct store_credential *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_credential_list(req->h->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "credential", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, tunnel_def_credential_json(&list[i]));
    }
    store_credential_list_free(list, n);
    return http_list(req, arr);
}

int http_h_credentials_add(struct http_req *req)
{
    const char *name = http_body_str(req->body, "name");
    struct store_credential c;
    unsigned char raw[HTTP_CRED_ID_BYTES];
    char secret[SECRET_CHARS + 1] = "";
    json_t *data = NULL;
    int r;

    memset(&c, 0, sizeof(c));
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(c.id, sizeof(c.id), raw, sizeof(raw));
    snprintf(c.name, sizeof(c.name), "%s", name != NULL ? name : "");
    snprintf(c.created_by, sizeof(c.created_by), "%s", req->auth.user.name);
    c.created_at = util_now();
    secret_generate(secret);
    if ((r = secret_hash(secret, c.secret_hash, sizeof(c.secret_hash))) !=
        ERR_OK) {
        http_error(req, 500, "internal", "Internal error",
                   "cannot hash the secret: %s", err_str(r));
        goto out;
    }
    if ((r = store_credential_add(req->h->store, &c)) != ERR_OK) {
        http_store_error(req, r, "credential", c.id);
        goto out;
    }
    snprintf(req->audit_target, sizeof(req->audit_target), "%s", c.id);
    if (c.name[0] != '\0') {
        snprintf(req->audit_detail, sizeof(req->audit_detail), "name=%s",
                 c.name);
    }
    data = tunnel_def_credential_json(&c);
    if (data != NULL) {
        json_object_set_new(data, "secret", json_string(secret));
    }
    http_ok(req, 201, data, NULL);
out:
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(&c, sizeof(c));
    return 0;
}

int http_h_credentials_get(struct http_req *req)
{
    struct store_credential c;
    int r = store_credential_get(req->h->store, req->params[0], &c);

    if (r != ERR_OK) {
        return http_store_error(req, r, "credential", req->params[0]);
    }
    http_ok(req, 200, tunnel_def_credential_json(&c), NULL);
    sodium_memzero(&c, sizeof(c));
    return 0;
}

int http_h_credentials_delete(struct http_req *req)
{
    int r = store_credential_delete(req->h->store, req->params[0]);

    snprintf(req->audit_target, sizeof(req->audit_target), "%s",
             req->params[0]);
    if (r != ERR_OK) {
        return http_store_error(req, r, "credential", req->params[0]);
    }
    /* agents logged in with it drop now */
    http_agents_changed(req, HUB_CHANGE_CREDENTIALS);
    return http_ok(req, 204, NULL, NULL);
}

/* --- agents -------------------------------------------------------------- */

static json_t *http_agent_json(struct http_req *req,
                               const struct store_agent *a)
{
    json_t *j = tunnel_def_agent_json(a);

    if (j != NULL && req->h->hub != NULL) {
        json_object_set_new(j, "online",
                            json_boolean(hub_agent_online(req->h->hub, a->id)));
    }
    return j;
}

int http_h_agents_list(struct http_req *req)
{
    struct store_agent *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_agent_list(req->h->store, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "agent", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, http_agent_json(req, &list[i]));
    }
    store_agent_list_free(list, n);
    return http_list(req, arr);
}

int http_h_agents_get(struct http_req *req)
{
    struct store_agent *a = calloc(1, sizeof(*a));
    struct store_tunnel *tl = NULL;
    size_t nt = 0;
    json_t *j;
    int r;

    /* two 8 KiB lists: not on the stack */
    if (a == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    if ((r = store_agent_get(req->h->store, req->params[0], a)) != ERR_OK ||
        (r = store_tunnel_list(req->h->store, a->id, &tl, &nt)) != ERR_OK) {
        http_store_error(req, r, "agent", req->params[0]);
        goto out;
    }
    j = http_agent_json(req, a);
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
    int r = store_agent_delete(req->h->store, req->params[0]);

    snprintf(req->audit_target, sizeof(req->audit_target), "%s",
             req->params[0]);
    if (r != ERR_OK) {
        return http_store_error(req, r, "agent", req->params[0]);
    }
    /* its tunnels went with it */
    http_agents_changed(req, HUB_CHANGE_AGENTS | HUB_CHANGE_TUNNELS);
    return http_ok(req, 204, NULL, NULL);
}

/* POST /agents/{id}/rebind {"credential": "ID"}: the agent ID now
 * belongs to that credential ("" unbinds it: the next credential to
 * announce it takes it). A connected agent with another credential is
 * dropped. */
int http_h_agents_rebind(struct http_req *req)
{
    const char *cred =
        json_string_value(json_object_get(req->body, "credential"));
    struct store_credential c;
    int r;

    snprintf(req->audit_target, sizeof(req->audit_target), "%s",
             req->params[0]);
    snprintf(req->audit_detail, sizeof(req->audit_detail),
             "credential=(unbound)");
    if (cred[0] != '\0') {
        r = store_credential_get(req->h->store, cred, &c);
        snprintf(req->audit_detail, sizeof(req->audit_detail), "credential=%s",
                 r == ERR_OK ? c.id : cred);
        sodium_memzero(&c, sizeof(c));
        if (r != ERR_OK) {
            return http_store_error(req, r, "credential", cred);
        }
    }
    if ((r = store_agent_bind(req->h->store, req->params[0], cred)) != ERR_OK) {
        return http_store_error(req, r, "agent", req->params[0]);
    }
    http_agents_changed(req, HUB_CHANGE_AGENTS);
    return http_h_agents_get(req);
}

/* --- tunnels ------------------------------------------------------------- */

int http_h_tunnels_list(struct http_req *req)
{
    struct store_tunnel *list = NULL;
    size_t n = 0, i;
    json_t *arr;
    int r;

    if ((r = store_tunnel_list(req->h->store, NULL, &list, &n)) != ERR_OK) {
        return http_store_error(req, r, "tunnel", "list");
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, tunnel_def_tunnel_json(&list[i]));
    }
    store_tunnel_list_free(list, n);
    return http_list(req, arr);
}

int http_h_tunnels_add(struct http_req *req)
{
    struct tunnel_def_req tr;
    struct store_tunnel t;
    char acl[TUNNEL_ACL_MAX + 1], why[512];
    char detail[AGENT_ID_MAX + STORE_HOST_MAX + TUNNEL_ACL_MAX + 96];
    json_t *jacl = json_object_get(req->body, "acl");
    int r, status;

    memset(&tr, 0, sizeof(tr));
    tr.agent_id = http_body_str(req->body, "agent");
    tr.remote = http_body_str(req->body, "remote");
    tr.udp = http_body_bool(req->body, "udp", false);
    tr.local_port = (int)http_body_int(req->body, "local_port", 0);
    tr.idle_minutes = (int)http_body_int(req->body, "idle_timeout_minutes", 0);
    tr.created_by = req->auth.user.name;
    snprintf(req->audit_target, sizeof(req->audit_target), "%s", tr.agent_id);
    if (jacl != NULL) {
        if (http_join_list(jacl, acl, sizeof(acl)) != ERR_OK) {
            return http_error(req, 400, "invalid", "Invalid value",
                              "acl is too long (at most %d characters)",
                              TUNNEL_ACL_MAX);
        }
        tr.acl = acl;
    } else {
        /* the caller's own address only */
        tr.default_ip = req->client_ip;
    }
    r = tunnel_def_add(req->h->store, req->h->cfg, &tr, &t, why, sizeof(why));
    if (r != ERR_OK) {
        switch (r) {
        case ERR_INVALID:
        case ERR_TOO_LONG:
            status = 400;
            break;
        case ERR_NOT_FOUND:
            status = 404;
            break;
        case ERR_EXISTS:
            status = 409;
            break;
        default:
            status = 500;
            break;
        }
        return http_error(req, status,
                          status == 400   ? "invalid"
                          : status == 404 ? "not_found"
                          : status == 409 ? "conflict"
                                          : "internal",
                          status == 400   ? "Invalid value"
                          : status == 404 ? "Not found"
                          : status == 409 ? "Conflict"
                                          : "Internal error",
                          "%s", why);
    }
    snprintf(req->audit_target, sizeof(req->audit_target), "%s", t.id);
    /* the whole line, cut to the audit field's size */
    snprintf(detail, sizeof(detail),
             "agent=%s protocol=%s remote=%s:%d local_port=%d acl=%s",
             t.agent_id, t.udp ? "udp" : "tcp", t.remote_host, t.remote_port,
             t.local_port, t.acl);
    util_strlcpy(req->audit_detail, detail, sizeof(req->audit_detail));
    /* In this process: the listener may be up (and its state written)
     * before we read the row back. */
    http_agents_changed(req, HUB_CHANGE_TUNNELS);
    if (store_tunnel_get(req->h->store, t.id, &t) != ERR_OK) {
        t.state[0] = '\0';
    }
    return http_ok(req, 201, tunnel_def_tunnel_json(&t), NULL);
}

int http_h_tunnels_get(struct http_req *req)
{
    struct store_tunnel t;
    int r = store_tunnel_get(req->h->store, req->params[0], &t);

    if (r != ERR_OK) {
        return http_store_error(req, r, "tunnel", req->params[0]);
    }
    return http_ok(req, 200, tunnel_def_tunnel_json(&t), NULL);
}

int http_h_tunnels_patch(struct http_req *req)
{
    char joined[TUNNEL_ACL_MAX * 2 + 1], acl[TUNNEL_ACL_MAX + 1], why[256];
    char detail[TUNNEL_ACL_MAX + 8];
    struct store_tunnel t;
    int r;

    snprintf(req->audit_target, sizeof(req->audit_target), "%s",
             req->params[0]);
    if (http_join_list(json_object_get(req->body, "acl"), joined,
                       sizeof(joined)) != ERR_OK) {
        return http_error(req, 400, "invalid", "Invalid value",
                          "acl is too long (at most %d characters)",
                          TUNNEL_ACL_MAX);
    }
    if (tunnel_acl_normalize(joined, acl, sizeof(acl), why, sizeof(why)) !=
        ERR_OK) {
        return http_error(req, 400, "invalid", "Invalid value", "acl: %s", why);
    }
    if ((r = store_tunnel_set_acl(req->h->store, req->params[0], acl)) !=
            ERR_OK ||
        (r = store_tunnel_get(req->h->store, req->params[0], &t)) != ERR_OK) {
        return http_store_error(req, r, "tunnel", req->params[0]);
    }
    snprintf(detail, sizeof(detail), "acl=%s", acl);
    util_strlcpy(req->audit_detail, detail, sizeof(req->audit_detail));
    http_agents_changed(req, HUB_CHANGE_TUNNELS);
    return http_ok(req, 200, tunnel_def_tunnel_json(&t), NULL);
}

int http_h_tunnels_delete(struct http_req *req)
{
    int r = store_tunnel_delete(req->h->store, req->params[0]);

    snprintf(req->audit_target, sizeof(req->audit_target), "%s",
             req->params[0]);
    if (r != ERR_OK) {
        return http_store_error(req, r, "tunnel", req->params[0]);
    }
    http_agents_changed(req, HUB_CHANGE_TUNNELS);
    return http_ok(req, 204, NULL, NULL);
}
