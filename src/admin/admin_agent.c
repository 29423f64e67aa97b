/*
 * The agent side's nouns: agent credentials, agents and tunnels (SPEC
 * section 6, docs/agent-protocol.md), for `portcullis credential | agent
 * | tunnel` and /api/v1/credentials | agents | tunnels alike.
 *
 * Each change is checked here (the tunnel's own rules are in
 * hub/tunnel_def.h, which the listeners share), written, audited, and
 * told to the running server: directly through the hub when the change
 * comes through the API inside the server, by a notice (notify.h) when
 * it comes from the CLI, and to the other nodes of a cluster through the
 * store (store/notices.h). A deleted credential's agents drop at once, a
 * new tunnel listens, a changed ACL applies to the next connection.
 *
 * A new credential's secret leaves here once; the store keeps only its
 * argon2id hash (common/secret.h).
 */
#include "admin/admin.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/secret.h"
#include "common/err.h"
#include "common/notify.h"
#include "common/util.h"
#include "hub/hub.h"
#include "hub/tunnel_def.h"
#include "store/audit.h"
#include "store/notices.h"

#define ADMIN_CRED_ID_BYTES 16 /* 32 hex digits */

_Static_assert(ADMIN_TUNNEL_IDLE_MAX == TUNNEL_IDLE_MAX,
               "admin.h and tunnel_def.h agree on the idle limit");

int admin_audit(const struct admin_ctx *c, const char *action,
                const char *target, const char *detail, struct admin_err *e)
{
    int r =
        audit_write(c->st, c->actor != NULL ? c->actor : "-",
                    c->source != NULL ? c->source : "-", action,
                    target != NULL ? target : "", detail != NULL ? detail : "");

    if (r != ERR_OK) {
        return admin_fail(e, r,
                          "the change was made, but the audit log could "
                          "not record it: %s",
                          err_str(r));
    }
    return ERR_OK;
}

/* Tells the running server what changed (HUB_CHANGE_*). */
static void admin_notify(const struct admin_ctx *c, unsigned what,
                         struct admin_notice *n)
{
    struct admin_notice dummy;
    int r;

    if (n == NULL) {
        n = &dummy;
    }
    n->delivered = false;
    n->warn[0] = '\0';
    /* the other nodes of a cluster (store/notices.h; nothing on SQLite) */
    if (c->st != NULL && store_notice_publish(c->st, what) != ERR_OK) {
        snprintf(n->warn, sizeof(n->warn),
                 "the other nodes could not be told; they apply the change "
                 "when their agents reconnect or at their next start");
    }
    if (c->hub != NULL) {
        hub_changed(c->hub, what);
        n->delivered = true;
        return;
    }
    if (c->data_dir == NULL) {
        return;
    }
    if ((r = notify_tell(c->data_dir, what, &n->delivered)) != ERR_OK) {
        snprintf(n->warn, sizeof(n->warn),
                 "the running server could not be told (%s); it applies "
                 "the change at its next start",
                 err_str(r));
    }
}

/* A store error about a what called name, in the words of both doors. */
static int admin_agent_store_fail(struct admin_err *e, int r, const char *what,
                                  const char *name)
{
    switch (r) {
    case ERR_NOT_FOUND:
        return admin_fail(e, r, "%s '%.200s' not found", what, name);
    case ERR_EXISTS:
        return admin_fail(e, r, "%s '%.200s' already exists", what, name);
    default:
        return admin_fail(e, r, "%s '%.200s': %s", what, name, err_str(r));
    }
}

/* --- credentials ----------------------------------------------------- */

const struct admin_field admin_credential_fields[] = {
    ADMIN_FIELD(struct store_credential, "id", AF_STR, id, .flags = AF_READONLY,
                .col = "ID"),
    ADMIN_FIELD(struct store_credential, "name", AF_STRZ, name,
                .flags = AF_EMPTY | AF_FIXED, .cli = "--name", .col = "NAME"),
    ADMIN_FIELD(struct store_credential, "agents", AF_INT, agents,
                .flags = AF_READONLY, .col = "AGENTS"),
    ADMIN_FIELD(struct store_credential, "created_by", AF_STRZ, created_by,
                .flags = AF_READONLY),
    ADMIN_FIELD(struct store_credential, "created_at", AF_TIME, created_at,
                .flags = AF_READONLY, .col = "CREATED"),
    /* the table's last column, as before */
    ADMIN_FIELD(struct store_credential, "created_by_col", AF_STR, created_by,
                .flags = AF_READONLY | AF_NOJSON, .col = "CREATED BY"),
    ADMIN_FIELD_END,
};

int admin_credential_add(const struct admin_ctx *c, const char *name,
                         struct store_credential *out, char *secret,
                         size_t secretlen, struct admin_err *e)
{
    unsigned char raw[ADMIN_CRED_ID_BYTES];
    char detail[STORE_NAME_MAX + 8] = "";
    int r;

    memset(out, 0, sizeof(*out));
    if (secretlen < SECRET_CHARS + 1) {
        return admin_fail(e, ERR_INTERNAL, "no room for the secret");
    }
    secret[0] = '\0';
    if (name != NULL && strlen(name) > STORE_NAME_MAX) {
        return admin_fail(e, ERR_INVALID, "name is limited to %d characters",
                          STORE_NAME_MAX);
    }
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(out->id, sizeof(out->id), raw, sizeof(raw));
    snprintf(out->name, sizeof(out->name), "%s", name != NULL ? name : "");
    snprintf(out->created_by, sizeof(out->created_by), "%s",
             c->actor != NULL ? c->actor : "");
    out->created_at = util_now();
    secret_generate(secret);
    if ((r = secret_hash(secret, out->secret_hash, sizeof(out->secret_hash))) !=
        ERR_OK) {
        sodium_memzero(secret, secretlen);
        return admin_fail(e, r, "cannot hash the secret: %s", err_str(r));
    }
    if ((r = store_credential_add(c->st, out)) != ERR_OK) {
        sodium_memzero(secret, secretlen);
        return r == ERR_INVALID
                   ? admin_fail(e, r, "name must not hold control characters")
                   : admin_agent_store_fail(e, r, "credential", out->id);
    }
    sodium_memzero(out->secret_hash, sizeof(out->secret_hash));
    if (out->name[0] != '\0') {
        snprintf(detail, sizeof(detail), "name=%s", out->name);
    }
    return admin_audit(c, "credential.add", out->id, detail, e);
}

int admin_credential_delete(const struct admin_ctx *c, const char *id,
                            struct admin_notice *n, struct admin_err *e)
{
    int r = store_credential_delete(c->st, id);

    if (r != ERR_OK) {
        return admin_agent_store_fail(e, r, "credential", id);
    }
    /* agents logged in with it drop now */
    admin_notify(c, HUB_CHANGE_CREDENTIALS, n);
    return admin_audit(c, "credential.delete", id, NULL, e);
}

/* --- agents ------------------------------------------------------------ */

static json_t *admin_agent_state(const void *obj)
{
    return json_string(((const struct store_agent *)obj)->online ? "online"
                                                                 : "offline");
}

#define AG(j, t, m, ...) ADMIN_FIELD(struct store_agent, j, t, m, __VA_ARGS__)

/* Everything an agent announced; all read-only (the hub writes agents). */
const struct admin_field admin_agent_fields[] = {
    AG("id", AF_STR, id, .flags = AF_READONLY, .col = "ID"),
    AG("name", AF_STRZ, name, .flags = AF_READONLY, .col = "NAME"),
    AG("online", AF_BOOL, online, .flags = AF_READONLY),
    ADMIN_FIELD_FN("state", admin_agent_state, .flags = AF_NOJSON,
                   .col = "STATE"),
    AG("credential_id", AF_STRZ, credential_id, .flags = AF_READONLY),
    AG("bound_credential", AF_STRZ, bound_credential, .flags = AF_READONLY,
       .cli = "--credential"),
    AG("hostname", AF_STRZ, hostname, .flags = AF_READONLY),
    AG("os", AF_STRZ, os, .flags = AF_READONLY),
    AG("kernel", AF_STRZ, kernel, .flags = AF_READONLY),
    AG("arch", AF_STRZ, arch, .flags = AF_READONLY),
    AG("version", AF_STRZ, version, .flags = AF_READONLY),
    AG("addresses", AF_JSONLIST, addresses, .flags = AF_READONLY),
    AG("tags", AF_JSONLIST, tags, .flags = AF_READONLY),
    AG("remote_addr", AF_STRZ, remote_addr, .flags = AF_READONLY),
    AG("first_seen", AF_TIME, first_seen, .flags = AF_READONLY),
    AG("connected_at", AF_TIME, connected_at, .flags = AF_READONLY),
    AG("last_seen", AF_TIME, last_seen, .flags = AF_READONLY),
    AG("node", AF_STRZ, node, .flags = AF_READONLY),
    /* the table: ID NAME STATE LAST SEEN ADDRESS TAGS */
    AG("last_seen_col", AF_TIME, last_seen, .flags = AF_READONLY | AF_NOJSON,
       .col = "LAST SEEN"),
    AG("remote_addr_col", AF_STR, remote_addr, .flags = AF_READONLY | AF_NOJSON,
       .col = "ADDRESS"),
    AG("tags_col", AF_JSONLIST, tags, .flags = AF_READONLY | AF_NOJSON,
       .col = "TAGS"),
    ADMIN_FIELD_END,
};

json_t *admin_agent_json(const struct admin_ctx *c, const struct store_agent *a)
{
    json_t *j = admin_json_encode(admin_agent_fields, a);

    if (j != NULL && c != NULL && c->hub != NULL) {
        /* here, or (on a cluster) on the node the store names */
        json_object_set_new(
            j, "online",
            json_boolean(hub_agent_online(c->hub, a->id) ||
                         (a->online && a->node[0] != '\0' &&
                          strcmp(a->node, store_node_self(c->st)) != 0)));
    }
    return j;
}

int admin_agent_rebind(const struct admin_ctx *c, const char *id,
                       const char *cred, struct admin_notice *n,
                       struct admin_err *e)
{
    struct store_credential cr;
    char detail[STORE_ID_MAX + 16];
    int r;

    if (cred != NULL && cred[0] == '\0') {
        cred = NULL;
    }
    snprintf(detail, sizeof(detail), "credential=(unbound)");
    if (cred != NULL) {
        r = store_credential_get(c->st, cred, &cr);
        if (r == ERR_OK) {
            snprintf(detail, sizeof(detail), "credential=%s", cr.id);
        }
        sodium_memzero(&cr, sizeof(cr));
        if (r != ERR_OK) {
            return admin_agent_store_fail(
                e, r == ERR_INVALID ? ERR_NOT_FOUND : r, "credential", cred);
        }
    }
    if ((r = store_agent_bind(c->st, id, cred)) != ERR_OK) {
        return r == ERR_INVALID
                   ? admin_agent_store_fail(e, ERR_NOT_FOUND, "credential",
                                            cred != NULL ? cred : "")
                   : admin_agent_store_fail(e, r, "agent", id);
    }
    /* a connected agent with another credential goes */
    admin_notify(c, HUB_CHANGE_AGENTS, n);
    return admin_audit(c, "agent.rebind", id, detail, e);
}

int admin_agent_delete(const struct admin_ctx *c, const char *id,
                       struct admin_notice *n, struct admin_err *e)
{
    int r = store_agent_delete(c->st, id);

    if (r != ERR_OK) {
        return admin_agent_store_fail(e, r, "agent", id);
    }
    /* its tunnels went with it: their listeners close too */
    admin_notify(c, HUB_CHANGE_AGENTS | HUB_CHANGE_TUNNELS, n);
    return admin_audit(c, "agent.delete", id, NULL, e);
}

/* --- tunnels ----------------------------------------------------------- */

const char *admin_tunnel_state(const struct store_tunnel *t)
{
    return tunnel_def_state(t);
}

static json_t *admin_tunnel_proto(const void *obj)
{
    return json_string(((const struct store_tunnel *)obj)->udp ? "udp" : "tcp");
}

static json_t *admin_tunnel_state_json(const void *obj)
{
    return admin_json_text(tunnel_def_state(obj));
}

/* The table's REMOTE: "host:port", "[v6]:port". */
static json_t *admin_tunnel_remote(const void *obj)
{
    const struct store_tunnel *t = obj;
    char s[STORE_HOST_MAX + 16];

    snprintf(s, sizeof(s),
             strchr(t->remote_host, ':') != NULL ? "[%s]:%d" : "%s:%d",
             t->remote_host, t->remote_port);
    return admin_json_text(s);
}

/* "agent:ID" or "peer:NAME", as a report row's route says it. */
static json_t *admin_tunnel_route(const void *obj)
{
    const struct store_tunnel *t = obj;
    char s[STORE_ROUTE_MAX + 1];

    if (t->peer[0] != '\0') {
        snprintf(s, sizeof(s), "peer:%s", t->peer);
    } else {
        snprintf(s, sizeof(s), "agent:%s", t->agent_id);
    }
    return admin_json_text(s);
}

/* The table's IDLE: "5m" or "never". */
static json_t *admin_tunnel_idle(const void *obj)
{
    const struct store_tunnel *t = obj;
    char s[16];

    if (t->idle_minutes <= 0) {
        return json_string("never");
    }
    snprintf(s, sizeof(s), "%dm", t->idle_minutes);
    return json_string(s);
}

#define TU(j, t, m, ...) ADMIN_FIELD(struct store_tunnel, j, t, m, __VA_ARGS__)

const struct admin_field admin_tunnel_fields[] = {
    TU("id", AF_STR, id, .flags = AF_READONLY, .col = "ID"),
    TU("agent_id", AF_STRZ, agent_id, .flags = AF_READONLY, .in = "agent"),
    TU("peer", AF_STRZ, peer, .flags = AF_READONLY, .in = "peer"),
    ADMIN_FIELD_FN("route", admin_tunnel_route, .cli = "ROUTE", .col = "ROUTE"),
    ADMIN_FIELD_FN("protocol", admin_tunnel_proto, .cli = "--udp",
                   .col = "PROTO"),
    TU("remote_host", AF_STR, remote_host, .flags = AF_READONLY),
    TU("remote_port", AF_INT, remote_port, .flags = AF_READONLY),
    TU("local_port", AF_INT, local_port, .flags = AF_READONLY,
       .cli = "--local-port", .lo = 1, .hi = 65535, .col = "PORT"),
    ADMIN_FIELD_FN("remote", admin_tunnel_remote, .flags = AF_NOJSON,
                   .cli = "--remote", .col = "REMOTE"),
    TU("acl", AF_CSV, acl, .cli = "--acl", .hi = 64, .col = "ACL"),
    TU("idle_timeout_minutes", AF_INT, idle_minutes, .flags = AF_READONLY,
       .cli = "--idle-timeout", .lo = 0, .hi = TUNNEL_IDLE_MAX),
    ADMIN_FIELD_FN("state", admin_tunnel_state_json, .col = "STATE"),
    ADMIN_FIELD_FN("idle", admin_tunnel_idle, .flags = AF_NOJSON,
                   .col = "IDLE"),
    TU("created_by", AF_STRZ, created_by, .flags = AF_READONLY),
    TU("created_at", AF_TIME, created_at, .flags = AF_READONLY),
    TU("last_used", AF_TIME, last_used, .flags = AF_READONLY,
       .col = "LAST USED"),
    ADMIN_FIELD_END,
};

/* A refusal of tunnel_def: its one line, with the code it returned. */
static int admin_tunnel_fail(struct admin_err *e, int r, const char *why)
{
    return admin_fail(e, r == ERR_TOO_LONG ? ERR_INVALID : r, "%s", why);
}

int admin_tunnel_add(const struct admin_ctx *c,
                     const struct admin_tunnel_req *req, struct store_tunnel *t,
                     struct admin_notice *n, struct admin_err *e)
{
    struct tunnel_def_req tr;
    char why[512], detail[AGENT_ID_MAX + STORE_HOST_MAX + TUNNEL_ACL_MAX + 96];
    int r;

    memset(&tr, 0, sizeof(tr));
    tr.agent_id = req->agent_id;
    tr.peer = req->peer;
    tr.remote = req->remote;
    tr.udp = req->udp;
    tr.local_port = req->local_port;
    tr.acl = req->acl;
    tr.default_ip = req->default_ip;
    tr.idle_minutes = req->idle_minutes;
    tr.created_by = c->actor;
    if ((req->agent_id == NULL && req->peer == NULL) || req->remote == NULL) {
        return admin_fail(e, ERR_INVALID,
                          "a tunnel needs an agent or a peer, and a "
                          "remote HOST:PORT");
    }
    if (req->idle_minutes < 0 || req->idle_minutes > TUNNEL_IDLE_MAX) {
        return admin_fail(e, ERR_INVALID,
                          "the idle timeout is 0-%d minutes (0: never)",
                          TUNNEL_IDLE_MAX);
    }
    r = tunnel_def_add(c->st, c->cfg, &tr, t, why, sizeof(why));
    if (r != ERR_OK) {
        return admin_tunnel_fail(e, r, why);
    }
    admin_notify(c, HUB_CHANGE_TUNNELS, n);
    /* In the server the listener may be up (and its state written)
     * already. */
    if (c->hub != NULL) {
        struct store_tunnel now;

        if (store_tunnel_get(c->st, t->id, &now) == ERR_OK) {
            *t = now;
        }
    }
    snprintf(detail, sizeof(detail),
             "%s=%s protocol=%s remote=%s:%d local_port=%d acl=%s",
             t->peer[0] != '\0' ? "peer" : "agent",
             t->peer[0] != '\0' ? t->peer : t->agent_id, t->udp ? "udp" : "tcp",
             t->remote_host, t->remote_port, t->local_port, t->acl);
    return admin_audit(c, "tunnel.add", t->id, detail, e);
}

int admin_tunnel_set_acl(const struct admin_ctx *c, const char *id,
                         const char *acl, struct store_tunnel *t,
                         struct admin_notice *n, struct admin_err *e)
{
    char norm[TUNNEL_ACL_MAX + 1], why[256], detail[TUNNEL_ACL_MAX + 8];
    int r;

    if (tunnel_acl_normalize(acl, norm, sizeof(norm), why, sizeof(why)) !=
        ERR_OK) {
        return admin_fail(e, ERR_INVALID, "acl: %s", why);
    }
    if ((r = store_tunnel_set_acl(c->st, id, norm)) != ERR_OK ||
        (r = store_tunnel_get(c->st, id, t)) != ERR_OK) {
        return admin_agent_store_fail(e, r, "tunnel", id);
    }
    admin_notify(c, HUB_CHANGE_TUNNELS, n);
    snprintf(detail, sizeof(detail), "acl=%s", norm);
    return admin_audit(c, "tunnel.acl", id, detail, e);
}

int admin_tunnel_delete(const struct admin_ctx *c, const char *id,
                        struct admin_notice *n, struct admin_err *e)
{
    int r = store_tunnel_delete(c->st, id);

    if (r != ERR_OK) {
        return admin_agent_store_fail(e, r, "tunnel", id);
    }
    admin_notify(c, HUB_CHANGE_TUNNELS, n);
    return admin_audit(c, "tunnel.delete", id, NULL, e);
}
