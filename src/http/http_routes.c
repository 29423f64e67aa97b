/*
 * The route table and the one place where requests are authenticated and
 * authorized.
 *
 * Each route names its method and path pattern, the permission it needs
 * and on which site that permission is checked, the strict schema of its
 * body, whether it is a list, its handler, and the audit action it
 * writes. http_dispatch() applies all of that before a handler runs, so
 * handlers contain no permission checks: they only do the work.
 *
 * Order of checks: the route (404, or 405 with Allow), the token (401:
 * missing, malformed, bad signature, refused algorithm, expired, revoked,
 * disabled or deleted API token, disabled user), the token's filter (403),
 * the body and query (400), the permission (403), the handler, and on
 * success the audit event of a change.
 */
#include "http/http_bearer.h"
#include "http/http_internal.h"
#include "http/http_web.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "admin/admin.h"
#include "admin/admin_job.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "store/audit.h"
#include "store/agents.h"

#define API "/api/v1"
#define F_END                                                                  \
    {                                                                          \
        NULL, HF_STRING, false, 0, 0                                           \
    }
#define NAME_FIELD(n, req)                                                     \
    {                                                                          \
        n, HF_STRING, req, 1, STORE_NAME_MAX                                   \
    }
#define SECRET_FIELD(n, req)                                                   \
    {                                                                          \
        n, HF_SECRET, req, 1, 1024                                             \
    }

/* --- body schemas ------------------------------------------------------ */

static const struct http_field body_login[] = {
    NAME_FIELD("username", true),
    SECRET_FIELD("password", true),
    {"totp", HF_SECRET, false, 0, 16},
    F_END,
};
static const struct http_field body_me_patch[] = {
    SECRET_FIELD("current_password", true),
    SECRET_FIELD("password", true),
    F_END,
};
static const struct http_field body_key_add[] = {
    {"public_key", HF_STRING, true, 1, STORE_KEY_MAX},
    F_END,
};
static const struct http_field body_member_add[] = {
    NAME_FIELD("user", true),
    F_END,
};
static const struct http_field body_site_role_add[] = {
    {"site", HF_STRING, false, 1, STORE_PATH_MAX},
    NAME_FIELD("user", false),
    NAME_FIELD("group", false),
    {"role", HF_STRING, true, 1, 32},
    F_END,
};
static const struct http_field body_grant_add[] = {
    NAME_FIELD("user", false),
    NAME_FIELD("group", false),
    {"role", HF_STRING, true, 1, 16},
    F_END,
};
static const struct http_field body_assign[] = {
    NAME_FIELD("user", false),
    NAME_FIELD("group", false),
    F_END,
};
/* agent side (http_res_agents.c) */
static const struct http_field body_agent_rebind[] = {
    {"credential", HF_STRING, true, 0, STORE_ID_MAX},
    F_END,
};
static const struct http_field body_agent_command[] = {
    {"command", HF_SECRET, false, 1, JOB_CMD_MAX},
    {"interpreter", HF_STRING, false, 1, JOB_INTERP_MAX},
    {"script", HF_SECRET, false, 1, JOB_SCRIPT_MAX},
    {"cwd", HF_STRING, false, 0, JOB_CWDIR_MAX},
    {"sudo", HF_STRING, false, 1, JOB_SUDO_MAX},
    {"timeout", HF_INT, false, 1, 86400},
    {"wait", HF_BOOL, false, 0, 0},
    F_END,
};
static const struct http_field body_jobs_add[] = {
    {"agents", HF_STRING_LIST, false, 0, ADMIN_JOB_TARGETS_MAX},
    {"tags", HF_STRING_LIST, false, 0, 64},
    {"groups", HF_STRING_LIST, false, 0, 64},
    {"command", HF_SECRET, false, 1, JOB_CMD_MAX},
    {"interpreter", HF_STRING, false, 1, JOB_INTERP_MAX},
    {"script", HF_SECRET, false, 1, JOB_SCRIPT_MAX},
    {"cwd", HF_STRING, false, 0, JOB_CWDIR_MAX},
    {"sudo", HF_STRING, false, 1, JOB_SUDO_MAX},
    {"timeout", HF_INT, false, 1, 86400},
    {"concurrency", HF_INT, false, 0, ADMIN_JOB_TARGETS_MAX},
    {"stop_on_failure", HF_BOOL, false, 0, 0},
    {"file_base64", HF_SECRET, false, 0, (JOB_PUSH_MAX + 2) / 3 * 4},
    {"dest", HF_STRING, false, 1, JOB_CWDIR_MAX},
    {"mode", HF_INT, false, 0, 01777},
    {"owner", HF_STRING, false, 0, 32},
    {"group", HF_STRING, false, 0, 32},
    {"overwrite", HF_BOOL, false, 0, 0},
    F_END,
};
static const struct http_field body_schedule_add[] = {
    {"name", HF_STRING, true, 1, 64},
    {"cron", HF_STRING, true, 1, 255},
    {"agents", HF_STRING_LIST, false, 0, ADMIN_JOB_TARGETS_MAX},
    {"tags", HF_STRING_LIST, false, 0, 64},
    {"groups", HF_STRING_LIST, false, 0, 64},
    {"command", HF_SECRET, false, 1, JOB_CMD_MAX},
    {"interpreter", HF_STRING, false, 1, JOB_INTERP_MAX},
    {"script", HF_SECRET, false, 1, JOB_SCRIPT_MAX},
    {"cwd", HF_STRING, false, 0, JOB_CWDIR_MAX},
    {"sudo", HF_STRING, false, 1, JOB_SUDO_MAX},
    {"timeout", HF_INT, false, 1, 86400},
    {"concurrency", HF_INT, false, 0, ADMIN_JOB_TARGETS_MAX},
    F_END,
};
static const struct http_field body_client_group_add[] = {
    {"name", HF_STRING, true, 1, 64},
    {"description", HF_STRING, false, 0, 255},
    {"agents", HF_STRING_LIST, false, 0, 512},
    {"rules", HF_SECRET, false, 2, 8192}, /* a JSON object, as text */
    F_END,
};
static const struct http_field body_schedule_patch[] = {
    {"enabled", HF_BOOL, true, 0, 0},
    F_END,
};
static const struct http_field body_client_group_agent[] = {
    {"agent", HF_STRING, true, 1, AGENT_ID_MAX},
    F_END,
};
static const struct http_field body_job_role_add[] = {
    NAME_FIELD("user", false),
    NAME_FIELD("group", false),
    {"role", HF_STRING, true, 1, 32},
    {"client_group", HF_STRING, true, 1, 64},
    F_END,
};
static const struct http_field body_tunnel_add[] = {
    /* one of agent and peer (admin_tunnel_add says so otherwise) */
    {"agent", HF_STRING, false, 1, AGENT_ID_MAX},
    {"peer", HF_STRING, false, 1, PEER_NAME_MAX},
    {"remote", HF_STRING, true, 1, STORE_HOST_MAX + 8},
    {"udp", HF_BOOL, false, 0, 0},
    {"local_port", HF_INT, false, 1, 65535},
    {"acl", HF_STRING_LIST, false, 0, 64},
    {"idle_timeout_minutes", HF_INT, false, 0, ADMIN_TUNNEL_IDLE_MAX},
    F_END,
};
static const struct http_field body_tunnel_patch[] = {
    {"acl", HF_STRING_LIST, true, 0, 64},
    F_END,
};
static const struct http_field body_empty[] = {F_END};
static const struct http_field body_pairing[] = {
    {"tags", HF_STRING_LIST, false, 0, 16},
    NAME_FIELD("name", false),
    {"credential", HF_STRING, false, 1, STORE_ID_MAX},
    SECRET_FIELD("secret", false),
    F_END,
};

/* --- body schemas from the nouns' descriptors (admin.h) ------------- */

/* The fields a request may set come from the noun's descriptor; the
 * extra ones here are the hand-written verbs' (secrets to hash or seal,
 * names to look up). */
static const struct http_field extra_user[] = {
    SECRET_FIELD("password", false),
    F_END,
};
static const struct http_field extra_asset_add[] = {
    {"site", HF_STRING, false, 1, STORE_PATH_MAX},
    SECRET_FIELD("password", false),
    {"private_key", HF_SECRET, false, 1, ADMIN_PRIVKEY_MAX},
    F_END,
};
static const struct http_field extra_asset_patch[] = {
    {"password", HF_STRING_NULL, false, 1, 1024},
    {"private_key", HF_STRING_NULL, false, 1, ADMIN_PRIVKEY_MAX},
    F_END,
};
static const struct http_field extra_peer_add[] = {
    {"token", HF_SECRET, true, 5, 4000},
    F_END,
};
static const struct http_field extra_peer_patch[] = {
    {"token", HF_SECRET, false, 5, 4000},
    F_END,
};
static const struct http_field extra_token_add[] = {
    NAME_FIELD("user", false),
    {"expires_in", HF_STRING, false, 1, 16},
    F_END,
};

#define SCHEMA(name) static struct http_field name[HTTP_BODY_MAX_FIELDS + 1]
SCHEMA(body_user_add);
SCHEMA(body_user_patch);
SCHEMA(body_group_add);
SCHEMA(body_site_add);
SCHEMA(body_asset_add);
SCHEMA(body_asset_patch);
SCHEMA(body_profile_add);
SCHEMA(body_profile_patch);
SCHEMA(body_token_add);
SCHEMA(body_token_patch);
SCHEMA(body_credential_add);
SCHEMA(body_peer_add);
SCHEMA(body_peer_patch);

static const struct {
    struct http_field *out;
    const struct admin_field *fields;
    bool create;
    const struct http_field *extra;
} http_schemas[] = {
    {body_user_add, admin_user_fields, true, extra_user},
    {body_user_patch, admin_user_fields, false, extra_user},
    {body_group_add, admin_group_fields, true, NULL},
    {body_site_add, admin_site_fields, true, NULL},
    {body_asset_add, admin_asset_fields, true, extra_asset_add},
    {body_asset_patch, admin_asset_fields, false, extra_asset_patch},
    {body_profile_add, admin_profile_fields, true, NULL},
    {body_profile_patch, admin_profile_fields, false, NULL},
    {body_token_add, admin_token_fields, true, extra_token_add},
    {body_token_patch, admin_token_fields, false, NULL},
    {body_credential_add, admin_credential_fields, true, NULL},
    {body_peer_add, admin_peer_fields, true, extra_peer_add},
    {body_peer_patch, admin_peer_fields, false, extra_peer_patch},
};

struct http_schema_fill {
    struct http_field *out;
    size_t n;
};

static void http_schema_add(void *arg, const char *key, const char *type,
                            bool required, long lo, long hi)
{
    struct http_schema_fill *sf = arg;
    struct http_field *f;

    if (sf->n >= HTTP_BODY_MAX_FIELDS) {
        return; /* test_admin checks no table comes near */
    }
    f = &sf->out[sf->n++];
    f->name = key;
    f->type = strcmp(type, "int") == 0           ? HF_INT
              : strcmp(type, "bool") == 0        ? HF_BOOL
              : strcmp(type, "list") == 0        ? HF_STRING_LIST
              : strcmp(type, "string_null") == 0 ? HF_STRING_NULL
                                                 : HF_STRING;
    f->required = required;
    f->lo = lo;
    f->hi = hi;
}

/* Fills the generated schemas once, before the first request. */
static void http_schemas_init(void)
{
    static bool done;
    struct http_schema_fill sf;
    const struct http_field *x;
    size_t i;

    if (done) {
        return;
    }
    for (i = 0; i < sizeof(http_schemas) / sizeof(http_schemas[0]); i++) {
        sf.out = http_schemas[i].out;
        sf.n = 0;
        admin_body_schema(http_schemas[i].fields, http_schemas[i].create,
                          http_schema_add, &sf);
        for (x = http_schemas[i].extra; x != NULL && x->name != NULL; x++) {
            if (sf.n < HTTP_BODY_MAX_FIELDS) {
                sf.out[sf.n++] = *x;
            }
        }
        sf.out[sf.n].name = NULL;
    }
    done = true;
}

/* --- the table --------------------------------------------------------- */

/*
 * Where each route runs (http_offloop.c, docs/store.md "The API off the
 * loop"). On a database server:
 *   RS  off the loop: its work is the store's only, reads or writes (a
 *       change the loop's live state does not hear of: the monitor reads
 *       users, grants and tokens at each login, channel and sweep);
 *   RW  off the loop, a read of the report or the audit log: after the
 *       store's own writers;
 *   RT  off the loop, with a loop part (the route's then, run on the
 *       loop once the work is back): a change the hub must hear of, or an
 *       answer that shows the hub's live state;
 *   R   on the loop: the comment beside it says why.
 * On SQLite every route runs on the loop.
 */
#define R(m, p, perm, scope, body, list, fn, action)                           \
    {                                                                          \
        m, p, perm, scope, body, list, fn, action, HTTP_ON_LOOP, NULL          \
    }
#define RS(m, p, perm, scope, body, list, fn, action)                          \
    {                                                                          \
        m, p, perm, scope, body, list, fn, action, HTTP_OFF, NULL              \
    }
#define RW(m, p, perm, scope, body, list, fn, action)                          \
    {                                                                          \
        m, p, perm, scope, body, list, fn, action, HTTP_OFF_WRITES, NULL       \
    }
#define RT(m, p, perm, scope, body, list, fn, action, then)                    \
    {                                                                          \
        m, p, perm, scope, body, list, fn, action, HTTP_OFF, then              \
    }

const struct http_route http_routes[] = {
    RS(HM_GET, "/healthz", PERM_PUBLIC, SCOPE_ROOT, NULL, false, http_h_healthz,
       NULL),
    RW(HM_GET, "/metrics", PERM_SERVICE, SCOPE_ROOT, NULL, false,
       http_h_metrics, NULL),
    RS(HM_GET, API "/healthz", PERM_PUBLIC, SCOPE_ROOT, NULL, false,
       http_h_healthz, NULL),

    /* on the loop: its lockouts and password pool are the loop's */
    R(HM_POST, API "/login", PERM_PUBLIC, SCOPE_ROOT, body_login, false,
      http_h_login, NULL),
    RS(HM_POST, API "/logout", PERM_SELF, SCOPE_ROOT, body_empty, false,
       http_h_logout, "logout"),
    RS(HM_GET, API "/me", PERM_SELF, SCOPE_ROOT, NULL, false, http_h_me_get,
       NULL),
    RS(HM_PATCH, API "/me", PERM_SELF, SCOPE_ROOT, body_me_patch, false,
       http_h_me_patch, "user.passwd"),
    RS(HM_GET, API "/settings", PERM_SELF, SCOPE_ROOT, NULL, false,
       http_h_settings, NULL),

    RS(HM_GET, API "/users", PERM_ADMIN, SCOPE_ROOT, NULL, true,
       http_h_users_list, NULL),
    RS(HM_POST, API "/users", PERM_ADMIN, SCOPE_ROOT, body_user_add, false,
       http_h_users_add, NULL /* admin: user.add */),
    RS(HM_GET, API "/users/{id}", PERM_ADMIN, SCOPE_ROOT, NULL, false,
       http_h_users_get, NULL),
    RS(HM_PATCH, API "/users/{id}", PERM_ADMIN, SCOPE_ROOT, body_user_patch,
       false, http_h_users_patch, NULL /* admin: user.update */),
    RS(HM_DELETE, API "/users/{id}", PERM_ADMIN, SCOPE_ROOT, NULL, false,
       http_h_users_delete, NULL /* admin: user.delete */),
    RS(HM_POST, API "/users/{id}/totp", PERM_ADMIN, SCOPE_ROOT, body_empty,
       false, http_h_users_totp_enable, NULL /* admin: user.totp.enable */),
    RS(HM_DELETE, API "/users/{id}/totp", PERM_ADMIN, SCOPE_ROOT, NULL, false,
       http_h_users_totp_disable, NULL /* admin: user.totp.disable */),
    RS(HM_GET, API "/users/{id}/keys", PERM_ADMIN, SCOPE_ROOT, NULL, true,
       http_h_users_keys_list, NULL),
    RS(HM_POST, API "/users/{id}/keys", PERM_ADMIN, SCOPE_ROOT, body_key_add,
       false, http_h_users_keys_add, NULL /* admin: user.key.add */),
    RS(HM_DELETE, API "/users/{id}/keys/{key}", PERM_ADMIN, SCOPE_ROOT, NULL,
       false, http_h_users_keys_delete, NULL /* admin: user.key.delete */),

    /* the groups read off the loop; the directory configuration is the
     * loop's (reloads): read by the loop part */
    RT(HM_GET, API "/directories", PERM_CONFIG, SCOPE_ROOT, NULL, true,
       http_h_directories_list, NULL, http_then_directories),
    RS(HM_GET, API "/groups", PERM_CONFIG, SCOPE_ROOT, NULL, true,
       http_h_groups_list, NULL),
    RS(HM_POST, API "/groups", PERM_CONFIG, SCOPE_ROOT, body_group_add, false,
       http_h_groups_add, NULL /* admin: group.add */),
    RS(HM_GET, API "/groups/{id}", PERM_CONFIG, SCOPE_ROOT, NULL, false,
       http_h_groups_get, NULL),
    RS(HM_DELETE, API "/groups/{id}", PERM_CONFIG, SCOPE_ROOT, NULL, false,
       http_h_groups_delete, NULL /* admin: group.delete */),
    RS(HM_GET, API "/groups/{id}/members", PERM_CONFIG, SCOPE_ROOT, NULL, true,
       http_h_groups_members_list, NULL),
    RS(HM_POST, API "/groups/{id}/members", PERM_ADMIN, SCOPE_ROOT,
       body_member_add, false, http_h_groups_members_add,
       NULL /* admin: group.member.add */),
    RS(HM_DELETE, API "/groups/{id}/members/{user}", PERM_ADMIN, SCOPE_ROOT,
       NULL, false, http_h_groups_members_delete,
       NULL /* admin: group.member.remove */),

    RS(HM_GET, API "/sites", PERM_CONFIG, SCOPE_ROOT, NULL, true,
       http_h_sites_list, NULL),
    RS(HM_POST, API "/sites", PERM_CONFIG, SCOPE_ROOT, body_site_add, false,
       http_h_sites_add, NULL /* admin: site.add */),
    RS(HM_GET, API "/sites/{id}", PERM_CONFIG, SCOPE_SITE, NULL, false,
       http_h_sites_get, NULL),
    RS(HM_DELETE, API "/sites/{id}", PERM_CONFIG, SCOPE_SITE, NULL, false,
       http_h_sites_delete, NULL /* admin: site.delete */),

    RS(HM_GET, API "/site-roles", PERM_ADMIN, SCOPE_ROOT, NULL, true,
       http_h_site_roles_list, NULL),
    RS(HM_POST, API "/site-roles", PERM_ADMIN, SCOPE_ROOT, body_site_role_add,
       false, http_h_site_roles_add, NULL /* admin: role.grant */),
    RS(HM_DELETE, API "/site-roles/{id}", PERM_ADMIN, SCOPE_ROOT, NULL, false,
       http_h_site_roles_delete, NULL /* admin: role.revoke */),

    RS(HM_GET, API "/assets", PERM_CONFIG, SCOPE_ROOT, NULL, true,
       http_h_assets_list, NULL),
    RS(HM_POST, API "/assets", PERM_CONFIG, SCOPE_BODY_SITE, body_asset_add,
       false, http_h_assets_add, NULL /* admin: asset.add */),
    RS(HM_GET, API "/assets/{id}", PERM_CONFIG, SCOPE_ASSET, NULL, false,
       http_h_assets_get, NULL),
    RS(HM_PATCH, API "/assets/{id}", PERM_CONFIG, SCOPE_ASSET, body_asset_patch,
       false, http_h_assets_patch, NULL /* admin: asset.update */),
    RS(HM_DELETE, API "/assets/{id}", PERM_CONFIG, SCOPE_ASSET, NULL, false,
       http_h_assets_delete, NULL /* admin: asset.delete */),
    RS(HM_GET, API "/assets/{id}/grants", PERM_CONFIG, SCOPE_ASSET, NULL, true,
       http_h_grants_list, NULL),
    RS(HM_POST, API "/assets/{id}/grants", PERM_CONFIG, SCOPE_ASSET,
       body_grant_add, false, http_h_grants_add, NULL /* admin: grant.add */),
    RS(HM_DELETE, API "/assets/{id}/grants/{grant}", PERM_CONFIG, SCOPE_ASSET,
       NULL, false, http_h_grants_delete, NULL /* admin: grant.delete */),

    RS(HM_GET, API "/access-profiles", PERM_CONFIG, SCOPE_ROOT, NULL, true,
       http_h_profiles_list, NULL),
    RS(HM_POST, API "/access-profiles", PERM_CONFIG, SCOPE_ROOT,
       body_profile_add, false, http_h_profiles_add,
       NULL /* admin: profile.add */),
    RS(HM_GET, API "/access-profiles/{id}", PERM_CONFIG, SCOPE_ROOT, NULL,
       false, http_h_profiles_get, NULL),
    RS(HM_PATCH, API "/access-profiles/{id}", PERM_CONFIG, SCOPE_ROOT,
       body_profile_patch, false, http_h_profiles_patch,
       NULL /* admin: profile.update */),
    RS(HM_DELETE, API "/access-profiles/{id}", PERM_CONFIG, SCOPE_ROOT, NULL,
       false, http_h_profiles_delete, NULL /* admin: profile.delete */),
    RS(HM_GET, API "/access-profiles/{id}/assignments", PERM_CONFIG, SCOPE_ROOT,
       NULL, true, http_h_profiles_assignments, NULL),
    RS(HM_POST, API "/access-profiles/{id}/assignments", PERM_CONFIG,
       SCOPE_ROOT, body_assign, false, http_h_profiles_assign,
       NULL /* admin: profile.assign */),
    RS(HM_DELETE, API "/access-profiles/{id}/assignments/{kind}/{name}",
       PERM_CONFIG, SCOPE_ROOT, NULL, false, http_h_profiles_unassign,
       NULL /* admin: profile.unassign */),

    RS(HM_GET, API "/api-tokens", PERM_SELF, SCOPE_ROOT, NULL, true,
       http_h_tokens_list, NULL),
    RS(HM_POST, API "/api-tokens", PERM_SELF, SCOPE_BODY_USER, body_token_add,
       false, http_h_tokens_add, NULL /* admin: token.add */),
    RS(HM_GET, API "/api-tokens/{id}", PERM_SELF, SCOPE_TOKEN, NULL, false,
       http_h_tokens_get, NULL),
    RS(HM_PATCH, API "/api-tokens/{id}", PERM_SELF, SCOPE_TOKEN,
       body_token_patch, false, http_h_tokens_patch,
       NULL /* admin: token.update */),
    RS(HM_DELETE, API "/api-tokens/{id}", PERM_SELF, SCOPE_TOKEN, NULL, false,
       http_h_tokens_delete, NULL /* admin: token.delete */),

    RW(HM_GET, API "/sessions", PERM_CONFIG, SCOPE_ROOT, NULL, true,
       http_h_sessions_list, NULL),
    RW(HM_GET, API "/sessions/{id}", PERM_CONFIG, SCOPE_ROOT, NULL, false,
       http_h_sessions_get, NULL),
    RW(HM_GET, API "/sessions/{id}/recording", PERM_CONFIG, SCOPE_ROOT, NULL,
       false, http_h_sessions_recording, NULL),
    RW(HM_GET, API "/audit", PERM_ADMIN, SCOPE_ROOT, NULL, true,
       http_h_audit_list, NULL),

    RS(HM_GET, API "/peers", PERM_CONFIG, SCOPE_ROOT, NULL, true,
       http_h_peers_list, NULL),
    RS(HM_POST, API "/peers", PERM_CONFIG, SCOPE_ROOT, body_peer_add, false,
       http_h_peers_add, NULL /* admin: peer.add */),
    RS(HM_GET, API "/peers/{id}", PERM_CONFIG, SCOPE_ROOT, NULL, false,
       http_h_peers_get, NULL),
    RS(HM_PATCH, API "/peers/{id}", PERM_CONFIG, SCOPE_ROOT, body_peer_patch,
       false, http_h_peers_patch, NULL /* admin: peer.update */),
    RS(HM_DELETE, API "/peers/{id}", PERM_CONFIG, SCOPE_ROOT, NULL, false,
       http_h_peers_delete, NULL /* admin: peer.delete */),
    /* the peer read off the loop; the loop part reaches the peer through
     * the loop's routes */
    RT(HM_POST, API "/peers/{id}/check", PERM_CONFIG, SCOPE_ROOT, body_empty,
       false, http_h_peers_check, NULL, http_then_peer_check),
    /* the check off the loop, the code made by the loop part (the codes
     * are the loop's, http_pair.c) */
    RT(HM_POST, API "/pairing", PERM_ADMIN, SCOPE_ROOT, body_pairing, false,
       http_h_pairing_add, NULL /* audited: pairing.create */,
       http_then_pairing),
    /* on the loop: the codes and their rate limit are the loop's; the
     * credential it makes is made off the loop (http_off_hand) */
    R(HM_GET, "/pair/{code}", PERM_PUBLIC, SCOPE_ROOT, NULL, false,
      http_h_pair_get, NULL /* audited: pairing.use */),
    /* on the loop: pairing codes are the loop's (no store work) */
    R(HM_GET, "/pair/{code}/agent", PERM_PUBLIC, SCOPE_ROOT, NULL, false,
      http_h_pair_agent, NULL),
    RS(HM_GET, API "/credentials", PERM_ADMIN, SCOPE_ROOT, NULL, true,
       http_h_credentials_list, NULL),
    RS(HM_POST, API "/credentials", PERM_ADMIN, SCOPE_ROOT, body_credential_add,
       false, http_h_credentials_add, NULL /* admin: credential.add */),
    RS(HM_GET, API "/credentials/{id}", PERM_ADMIN, SCOPE_ROOT, NULL, false,
       http_h_credentials_get, NULL),
    RT(HM_DELETE, API "/credentials/{id}", PERM_ADMIN, SCOPE_ROOT, NULL, false,
       http_h_credentials_delete, NULL /* admin: credential.delete */,
       http_then_credentials),
    RT(HM_GET, API "/agents", PERM_CONFIG, SCOPE_ROOT, NULL, true,
       http_h_agents_list, NULL, http_then_agents_list),
    RS(HM_GET, API "/nodes", PERM_CONFIG, SCOPE_ROOT, NULL, true,
       http_h_nodes_list, NULL),
    RT(HM_GET, API "/agents/{id}", PERM_CONFIG, SCOPE_ROOT, NULL, false,
       http_h_agents_get, NULL, http_then_agent_get),
    RT(HM_DELETE, API "/agents/{id}", PERM_CONFIG, SCOPE_ROOT, NULL, false,
       http_h_agents_delete, NULL /* admin: agent.delete */,
       http_then_agent_delete),
    RT(HM_POST, API "/agents/{id}/rebind", PERM_CONFIG, SCOPE_ROOT,
       body_agent_rebind, false, http_h_agents_rebind,
       NULL /* admin: agent.rebind */, http_then_agent_rebind),
    /* the job recorded off the loop, started through the hub by the
     * loop part; its answer waits for its end */
    RT(HM_POST, API "/agents/{id}/commands", PERM_SELF, SCOPE_ROOT,
       body_agent_command, false, http_h_agents_command,
       NULL /* admin: job.run */, http_then_agents_command),
    /* after the jobs' result writes the loop asked for (hub_jobw.c) */
    RW(HM_GET, API "/jobs", PERM_SELF, SCOPE_ROOT, NULL, true, http_h_jobs_list,
       NULL),
    /* the jobs recorded off the loop, picked up by the loop part */
    RT(HM_POST, API "/jobs", PERM_SELF, SCOPE_ROOT, body_jobs_add, false,
       http_h_jobs_add, NULL /* admin: job.run */, http_then_jobs_add),
    RW(HM_GET, API "/jobs/{id}", PERM_SELF, SCOPE_ROOT, NULL, false,
       http_h_jobs_get, NULL),
    /* the job read off the loop; the loop part makes the connection the
     * stream, fed by the hub (or the store, read on a worker) */
    RT(HM_GET, API "/jobs/{id}/stream", PERM_SELF, SCOPE_ROOT, NULL, false,
       http_h_jobs_stream, NULL, http_then_jobs_stream),
    RS(HM_GET, API "/client-groups", PERM_ADMIN, SCOPE_ROOT, NULL, true,
       http_h_client_groups_list, NULL),
    RS(HM_POST, API "/client-groups", PERM_ADMIN, SCOPE_ROOT,
       body_client_group_add, false, http_h_client_groups_add,
       NULL /* admin: client_group.add */),
    RS(HM_GET, API "/client-groups/{id}", PERM_ADMIN, SCOPE_ROOT, NULL, false,
       http_h_client_groups_get, NULL),
    RS(HM_DELETE, API "/client-groups/{id}", PERM_ADMIN, SCOPE_ROOT, NULL,
       false, http_h_client_groups_delete,
       NULL /* admin: client_group.delete */),
    RS(HM_POST, API "/client-groups/{id}/agents", PERM_ADMIN, SCOPE_ROOT,
       body_client_group_agent, false, http_h_client_groups_agent_add,
       NULL /* admin: client_group.update */),
    RS(HM_DELETE, API "/client-groups/{id}/agents/{agent}", PERM_ADMIN,
       SCOPE_ROOT, NULL, false, http_h_client_groups_agent_delete,
       NULL /* admin: client_group.update */),
    RS(HM_GET, API "/job-roles", PERM_ADMIN, SCOPE_ROOT, NULL, true,
       http_h_job_roles_list, NULL),
    RS(HM_POST, API "/job-roles", PERM_ADMIN, SCOPE_ROOT, body_job_role_add,
       false, http_h_job_roles_add, NULL /* admin: role.grant */),
    RS(HM_DELETE, API "/job-roles/{id}", PERM_ADMIN, SCOPE_ROOT, NULL, false,
       http_h_job_roles_delete, NULL /* admin: role.revoke */),
    RS(HM_GET, API "/schedules", PERM_SELF, SCOPE_ROOT, NULL, true,
       http_h_schedules_list, NULL),
    RS(HM_POST, API "/schedules", PERM_SELF, SCOPE_ROOT, body_schedule_add,
       false, http_h_schedules_add, NULL /* admin: schedule.add */),
    RS(HM_GET, API "/schedules/{id}", PERM_SELF, SCOPE_ROOT, NULL, false,
       http_h_schedules_get, NULL),
    RS(HM_PATCH, API "/schedules/{id}", PERM_SELF, SCOPE_ROOT,
       body_schedule_patch, false, http_h_schedules_patch,
       NULL /* admin: schedule.enable, schedule.disable */),
    RS(HM_DELETE, API "/schedules/{id}", PERM_SELF, SCOPE_ROOT, NULL, false,
       http_h_schedules_delete, NULL /* admin: schedule.delete */),
    RS(HM_GET, API "/tunnels", PERM_CONFIG, SCOPE_ROOT, NULL, true,
       http_h_tunnels_list, NULL),
    RT(HM_POST, API "/tunnels", PERM_CONFIG, SCOPE_ROOT, body_tunnel_add, false,
       http_h_tunnels_add, NULL /* admin: tunnel.add */, http_then_tunnel_add),
    RS(HM_GET, API "/tunnels/{id}", PERM_CONFIG, SCOPE_ROOT, NULL, false,
       http_h_tunnels_get, NULL),
    RT(HM_PATCH, API "/tunnels/{id}", PERM_CONFIG, SCOPE_ROOT,
       body_tunnel_patch, false, http_h_tunnels_patch,
       NULL /* admin: tunnel.acl */, http_then_tunnels),
    RT(HM_DELETE, API "/tunnels/{id}", PERM_CONFIG, SCOPE_ROOT, NULL, false,
       http_h_tunnels_delete, NULL /* admin: tunnel.delete */,
       http_then_tunnels),
};

const size_t http_routes_count = sizeof(http_routes) / sizeof(http_routes[0]);

/* --- responses ---------------------------------------------------------- */

void http_req_clear(struct http_req *req)
{
    json_decref(req->body);
    json_decref(req->data);
    json_decref(req->meta);
    json_decref(req->errors);
    if (req->raw != NULL) {
        sodium_memzero(req->raw,
                       req->raw_len > 0 ? req->raw_len : strlen(req->raw));
    }
    free(req->raw);
    req->raw_len = 0;
    req->body = req->data = req->meta = req->errors = NULL;
    req->raw = NULL;
    sodium_memzero(&req->auth, sizeof(req->auth));
}

int http_ok(struct http_req *req, int status, json_t *data, json_t *meta)
{
    json_decref(req->data);
    json_decref(req->meta);
    req->status = status;
    req->data = data;
    req->meta = meta;
    if (status != 204 && data == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    return 0;
}

int http_error(struct http_req *req, int status, const char *code,
               const char *title, const char *fmt, ...)
{
    char detail[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    for (char *p = detail; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20) {
            *p = '?';
        }
    }
    json_decref(req->data);
    json_decref(req->meta);
    json_decref(req->errors);
    req->data = req->meta = NULL;
    req->status = status;
    req->errors = json_pack("[{s:s, s:s, s:s}]", "code", code, "title", title,
                            "detail", detail);
    return 0;
}

int http_store_error(struct http_req *req, int err, const char *what,
                     const char *name)
{
    switch (err) {
    case ERR_NOT_FOUND:
        return http_error(req, 404, "not_found", "Not found",
                          "%s '%.200s' not found", what, name);
    case ERR_EXISTS:
        return http_error(req, 409, "conflict", "Conflict",
                          "%s '%.200s' already exists or is still in use", what,
                          name);
    case ERR_INVALID:
    case ERR_TOO_LONG:
        return http_error(req, 400, "invalid", "Invalid value",
                          "invalid %s '%.200s': %s", what, name, err_str(err));
    case ERR_DENIED:
        return http_error(req, 403, "forbidden", "Forbidden",
                          "%s '%.200s' cannot be changed", what, name);
    default:
        return http_error(req, 500, "internal", "Internal error", "%s: %s",
                          what, err_str(err));
    }
}

json_t *http_json_time(int64_t t)
{
    char buf[32];

    if (t == 0) {
        return json_null();
    }
    util_fmt_time(t, buf, sizeof(buf));
    return json_string(buf);
}

const char *http_nz(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* --- lists: filter, sort, page ----------------------------------------- */

static bool http_value_matches(json_t *v, const char *want)
{
    char num[32];

    if (json_is_string(v)) {
        return strcmp(json_string_value(v), want) == 0;
    }
    if (json_is_integer(v)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        return strcmp(num, want) == 0;
    }
    if (json_is_boolean(v)) {
        return strcmp(want, json_is_true(v) ? "true" : "false") == 0;
    }
    if (json_is_null(v)) {
        return strcmp(want, "null") == 0;
    }
    return false;
}

/* qsort's comparator has no argument: per thread, since lists are also
 * answered on the API's store workers (http_offloop.c) */
static _Thread_local const char *http_sort_key;
static _Thread_local bool http_sort_desc;

static int http_sort_cmp(const void *a, const void *b)
{
    json_t *x = json_object_get(*(json_t *const *)a, http_sort_key);
    json_t *y = json_object_get(*(json_t *const *)b, http_sort_key);
    int c = 0;

    if (json_is_integer(x) && json_is_integer(y)) {
        c = json_integer_value(x) < json_integer_value(y)   ? -1
            : json_integer_value(x) > json_integer_value(y) ? 1
                                                            : 0;
    } else if (json_is_string(x) && json_is_string(y)) {
        c = strcmp(json_string_value(x), json_string_value(y));
    } else if (json_is_boolean(x) && json_is_boolean(y)) {
        c = (int)json_is_true(x) - (int)json_is_true(y);
    } else {
        /* nulls and absent values sort first */
        c = (x != NULL && !json_is_null(x)) - (y != NULL && !json_is_null(y));
    }
    return http_sort_desc ? -c : c;
}

static bool http_known_field(json_t *arr, const char *field)
{
    json_t *first = json_array_get(arr, 0);
    json_t *v;

    if (first == NULL) {
        return true; /* nothing to check against */
    }
    v = json_object_get(first, field);
    return v != NULL && !json_is_object(v) && !json_is_array(v);
}

int http_list(struct http_req *req, json_t *arr)
{
    json_t *kept = NULL, *page = NULL, *item, **items = NULL;
    size_t i, n, total, f;
    bool ok;

    if (arr == NULL) {
        return http_error(req, 500, "internal", "Internal error",
                          "out of memory");
    }
    for (f = 0; f < req->nfilters; f++) {
        if (!http_known_field(arr, req->filters[f].field)) {
            json_decref(arr);
            return http_error(req, 400, "invalid_filter", "Invalid filter",
                              "cannot filter on '%s'", req->filters[f].field);
        }
    }
    if (req->sort[0] != '\0' &&
        !http_known_field(arr, req->sort + (req->sort[0] == '-'))) {
        json_decref(arr);
        return http_error(req, 400, "invalid_sort", "Invalid sort",
                          "cannot sort by '%s'", req->sort);
    }
    kept = json_array();
    json_array_foreach(arr, i, item)
    {
        ok = true;
        for (f = 0; f < req->nfilters && ok; f++) {
            ok =
                http_value_matches(json_object_get(item, req->filters[f].field),
                                   req->filters[f].value);
        }
        if (ok) {
            json_array_append(kept, item);
        }
    }
    json_decref(arr);
    total = json_array_size(kept);
    if (req->sort[0] != '\0' && total > 1) {
        if ((items = calloc(total, sizeof(*items))) == NULL) {
            json_decref(kept);
            return http_error(req, 500, "internal", "Internal error",
                              "out of memory");
        }
        for (i = 0; i < total; i++) {
            items[i] = json_array_get(kept, i);
        }
        http_sort_desc = req->sort[0] == '-';
        http_sort_key = req->sort + (http_sort_desc ? 1 : 0);
        qsort(items, total, sizeof(*items), http_sort_cmp);
    }
    page = json_array();
    n = 0;
    for (i = req->offset; i < total && n < req->limit; i++, n++) {
        json_array_append(page,
                          items != NULL ? items[i] : json_array_get(kept, i));
    }
    free(items);
    json_decref(kept);
    return http_ok(req, 200, page,
                   json_pack("{s:I, s:I, s:I}", "total", (json_int_t)total,
                             "limit", (json_int_t)req->limit, "offset",
                             (json_int_t)req->offset));
}

/* Parses the query string: list routes take page[limit], page[offset],
 * sort and filter[field]; other routes take nothing. */
static int http_parse_query(struct http_req *req)
{
    char q[HTTP_QUERY_MAX], *save = NULL, *kv, *val, *end;
    unsigned long long v;

    req->limit = HTTP_LIST_DEFAULT;
    req->offset = 0;
    snprintf(q, sizeof(q), "%s", req->query);
    for (kv = strtok_r(q, "&", &save); kv != NULL;
         kv = strtok_r(NULL, "&", &save)) {
        val = strchr(kv, '=');
        if (val == NULL) {
            return http_error(req, 400, "invalid_query", "Invalid query",
                              "query parameter '%.64s' needs a value", kv);
        }
        *val++ = '\0';
        if (strcmp(kv, "os") == 0 &&
            strncmp(req->route->pattern, "/pair/", 6) == 0 &&
            strlen(val) < sizeof(req->query_os)) {
            snprintf(req->query_os, sizeof(req->query_os), "%s", val);
            continue;
        }
        if (!req->route->list) {
            return http_error(req, 400, "invalid_query", "Invalid query",
                              "unknown query parameter '%.64s'", kv);
        }
        if (strcmp(kv, "page[limit]") == 0 || strcmp(kv, "page[offset]") == 0) {
            end = NULL;
            v = strtoull(val, &end, 10);
            if (val[0] < '0' || val[0] > '9' || *end != '\0' ||
                (kv[5] == 'l' && (v < 1 || v > HTTP_LIST_MAX)) ||
                v > 1000000000ULL) {
                return http_error(req, 400, "invalid_query", "Invalid query",
                                  "%s must be an integer%s", kv,
                                  kv[5] == 'l' ? " from 1 to 1000" : "");
            }
            if (kv[5] == 'l') {
                req->limit = (size_t)v;
            } else {
                req->offset = (size_t)v;
            }
        } else if (strcmp(kv, "sort") == 0) {
            if (strlen(val) == 0 || strlen(val) >= sizeof(req->sort)) {
                return http_error(req, 400, "invalid_sort", "Invalid sort",
                                  "sort needs a field name");
            }
            snprintf(req->sort, sizeof(req->sort), "%s", val);
        } else if (strncmp(kv, "filter[", 7) == 0 &&
                   kv[strlen(kv) - 1] == ']' && strlen(kv) > 8) {
            if (req->nfilters == HTTP_FILTERS || strlen(kv) - 8 >= 64 ||
                strlen(val) >= 256) {
                return http_error(req, 400, "invalid_filter", "Invalid filter",
                                  "too many or too long "
                                  "filters");
            }
            snprintf(req->filters[req->nfilters].field, 64, "%.*s",
                     (int)(strlen(kv) - 8), kv + 7);
            snprintf(req->filters[req->nfilters].value, 256, "%s", val);
            req->nfilters++;
        } else {
            return http_error(req, 400, "invalid_query", "Invalid query",
                              "unknown query parameter '%.64s'", kv);
        }
    }
    return 0;
}

/* --- routing ------------------------------------------------------------- */

/* Matches path against pattern, capturing {x} segments into params. */
static bool http_match(const char *pattern, const char *path,
                       char params[HTTP_PARAMS][HTTP_PARAM_MAX])
{
    size_t np = 0, plen, slen;

    for (;;) {
        if (*pattern == '\0' || *path == '\0') {
            return *pattern == '\0' &&
                   (*path == '\0' || strcmp(path, "/") == 0);
        }
        if (*pattern != '/' || *path != '/') {
            return false;
        }
        pattern++;
        path++;
        plen = strcspn(pattern, "/");
        slen = strcspn(path, "/");
        if (plen > 2 && pattern[0] == '{') {
            if (slen == 0 || slen >= HTTP_PARAM_MAX || np == HTTP_PARAMS) {
                return false;
            }
            memcpy(params[np], path, slen);
            params[np][slen] = '\0';
            np++;
        } else if (plen != slen || strncmp(pattern, path, plen) != 0) {
            return false;
        }
        pattern += plen;
        path += slen;
    }
}

static const struct http_route *http_route_find(struct http_req *req)
{
    char params[HTTP_PARAMS][HTTP_PARAM_MAX];
    size_t i, used = 0;
    bool path_known = false;

    http_schemas_init();
    req->allow[0] = '\0';
    for (i = 0; i < http_routes_count; i++) {
        if (!http_match(http_routes[i].pattern, req->path, params)) {
            continue;
        }
        path_known = true;
        if (http_routes[i].method == req->method ||
            (req->method == HM_HEAD && http_routes[i].method == HM_GET)) {
            memcpy(req->params, params, sizeof(params));
            return &http_routes[i];
        }
        used += (size_t)snprintf(req->allow + used, sizeof(req->allow) - used,
                                 "%s%s", used > 0 ? ", " : "",
                                 http_method_str(http_routes[i].method));
        if (used >= sizeof(req->allow)) {
            used = sizeof(req->allow) - 1;
        }
    }
    if (path_known) {
        http_error(req, 405, "method_not_allowed", "Method not allowed",
                   "%s is not allowed on %.200s (allowed: %s)",
                   http_method_str(req->method), req->path, req->allow);
    } else {
        req->allow[0] = '\0';
        http_error(req, 404, "not_found", "Not found",
                   "no such resource: %.200s", req->path);
    }
    return NULL;
}

/* --- authentication ------------------------------------------------------ */

static int http_unauthorized(struct http_req *req, const char *why)
{
    req->auth_failures++;
    req->www_auth = true;
    return http_error(req, 401, "unauthorized", "Unauthorized", "%s", why);
}

static int http_authenticate(struct http_req *req)
{
    struct http_auth *a = &req->auth;
    struct http_bearer b;
    const char *t = req->authorization;
    char why[256];

    if (t == NULL || t[0] == '\0') {
        return http_unauthorized(req, "this resource needs an Authorization: "
                                      "Bearer token");
    }
    if (strncasecmp(t, "Bearer ", 7) != 0) {
        return http_unauthorized(req, "the Authorization header must be "
                                      "'Bearer <token>'");
    }
    t += 7;
    while (*t == ' ') {
        t++;
    }
    switch (http_bearer_check(req->store, req->h->key, t, req->client_ip,
                              req->filter_path != NULL ? req->filter_path
                                                       : req->path,
                              &b, why, sizeof(why))) {
    case HTTP_BEARER_OK:
        break;
    case HTTP_BEARER_UNAUTHORIZED:
        return http_unauthorized(req, why);
    case HTTP_BEARER_FORBIDDEN:
        req->auth_failures++;
        return http_error(req, 403, "token_filter", "Forbidden", "%s", why);
    case HTTP_BEARER_ERROR:
    default:
        return http_error(req, 500, "internal", "Internal error", "%s", why);
    }
    a->claims = b.claims;
    memcpy(a->jti_hash, b.jti_hash, sizeof(a->jti_hash));
    a->user = b.user;
    a->root_roles = b.root_roles;
    a->ok = true;
    return 0;
}

/* --- authorization: the one place ---------------------------------------- */

static bool http_perm_allows(int perm, unsigned mask)
{
    switch (perm) {
    case PERM_PUBLIC:
    case PERM_SELF:
        return true;
    case PERM_SERVICE:
        return (mask & (SITE_ROLE_BIT(SITE_ROLE_SERVICE) |
                        SITE_ROLE_BIT(SITE_ROLE_CONFIG) |
                        SITE_ROLE_BIT(SITE_ROLE_ADMIN))) != 0;
    case PERM_CONFIG:
        return (mask & (SITE_ROLE_BIT(SITE_ROLE_CONFIG) |
                        SITE_ROLE_BIT(SITE_ROLE_ADMIN))) != 0;
    case PERM_ADMIN:
        return (mask & SITE_ROLE_BIT(SITE_ROLE_ADMIN)) != 0;
    }
    return false;
}

static int http_forbidden(struct http_req *req, const char *why)
{
    return http_error(req, 403, "forbidden", "Forbidden", "%s", why);
}

static const char *http_perm_words(int perm)
{
    switch (perm) {
    case PERM_SERVICE:
        return "the service, configuration-manager or administrator role";
    case PERM_CONFIG:
        return "the configuration-manager or administrator role";
    case PERM_ADMIN:
        return "the administrator role";
    }
    return "a login";
}

static int http_authorize(struct http_req *req)
{
    const struct http_route *rt = req->route;
    struct store_asset asset;
    struct store_site site;
    struct store_api_token tok;
    struct store_user u;
    const char *ref;
    bool admin = (req->auth.root_roles & SITE_ROLE_BIT(SITE_ROLE_ADMIN)) != 0;
    unsigned mask = req->auth.root_roles;
    char why[160];
    int r;

    switch (rt->scope) {
    case SCOPE_ASSET:
        memset(&asset, 0, sizeof(asset));
        r = store_asset_get(req->store, req->params[0], &asset);
        if (r == ERR_OK) {
            r = store_site_role_mask(req->store, req->auth.user.id,
                                     asset.site_id, &mask);
            store_asset_clear(&asset);
        } else if (r != ERR_NOT_FOUND) {
            return http_store_error(req, r, "asset", req->params[0]);
        }
        /* an unknown asset: judged on /root, then the handler's 404 */
        break;
    case SCOPE_SITE:
        if (store_site_get(req->store, req->params[0], &site) == ERR_OK) {
            r = store_site_role_mask(req->store, req->auth.user.id, site.id,
                                     &mask);
            if (r != ERR_OK) {
                return http_store_error(req, r, "site", req->params[0]);
            }
        }
        break;
    case SCOPE_BODY_SITE:
        ref = http_body_str(req->body, "site");
        if (ref != NULL) {
            r = store_site_get(req->store, ref, &site);
            if (r != ERR_OK) {
                return http_store_error(req, r, "site", ref);
            }
            r = store_site_role_mask(req->store, req->auth.user.id, site.id,
                                     &mask);
            if (r != ERR_OK) {
                return http_store_error(req, r, "site", ref);
            }
        }
        break;
    case SCOPE_TOKEN:
        r = store_api_token_get(req->store, req->params[0], &tok);
        if (r == ERR_OK && !admin &&
            strcmp(tok.user_id, req->auth.user.id) != 0) {
            return http_forbidden(req, "only an administrator may manage "
                                       "another user's API tokens");
        }
        break;
    case SCOPE_BODY_USER:
        ref = http_body_str(req->body, "user");
        if (ref != NULL && !admin) {
            r = store_user_get(req->store, ref, &u);
            if (r != ERR_OK || strcmp(u.id, req->auth.user.id) != 0) {
                return http_forbidden(req, "only an administrator may make "
                                           "API tokens for another user");
            }
        }
        break;
    default:
        break;
    }
    if (!http_perm_allows(rt->perm, mask)) {
        snprintf(why, sizeof(why), "%s %s needs %s",
                 http_method_str(rt->method), rt->pattern,
                 http_perm_words(rt->perm));
        return http_forbidden(req, why);
    }
    return 0;
}

/* --- dispatch ------------------------------------------------------------ */

static void http_audit(struct http_req *req)
{
    const char *actor = req->auth.ok ? req->auth.user.name : "-";
    int r;

    if (req->route->action == NULL || req->status >= 300) {
        return;
    }
    r = audit_write(req->store, actor, req->client, req->route->action,
                    req->audit_target[0] != '\0' ? req->audit_target
                                                 : req->path,
                    req->audit_detail);
    if (r != ERR_OK) {
        log_error("http: cannot write the audit event %s: %s",
                  req->route->action, err_str(r));
    }
}

/* A request that failed while the store's database is unreachable (a
 * PostgreSQL outage) is answered 503 store_unavailable, whatever the
 * handler or the token check made of the store's error (a 500 with the
 * store's words, or a 404 or 401 for a row it could not read): the
 * caller should try again, and nothing internal is shown. A body refused
 * as invalid (400) needs no store and stays. The store reconnects by
 * itself (db_pg.c), so the next request after the outage works. */
static void http_store_check(struct http_req *req)
{
    if (req->status > 400 && store_unreachable(req->store)) {
        http_error(req, 503, "store_unavailable", "Database unavailable",
                   "the access server cannot reach its database; try again "
                   "in a moment");
    }
}

void http_dispatch(struct http_req *req)
{
    req->status = 500;
    if (req->store == NULL) {
        req->store = req->h->store;
    }
    if ((req->route = http_route_find(req)) == NULL) {
        return;
    }
    /* what GET /metrics shows of the loop's state, wherever it runs */
    req->seen = req->h->m;
    req->seen_watchers = req->h->hub != NULL ? hub_watch_count(req->h->hub) : 0;
    if (req->route->off_loop != HTTP_ON_LOOP && http_off_take(req)) {
        return; /* answered at once, or later: http_offloop.c */
    }
    http_dispatch_route(req);
    req->h->m.api_auth_failures += req->auth_failures;
    req->auth_failures = 0;
}

void http_dispatch_route(struct http_req *req)
{
    char why[256];
    int r;

    req->status = 500;
    if (req->route->perm != PERM_PUBLIC) {
        http_authenticate(req);
        if (!req->auth.ok) {
            http_store_check(req);
            return;
        }
    }
    if (req->route->body == NULL) {
        if (req->body_len > 0) {
            http_error(req, 400, "invalid_body", "Invalid body",
                       "%s %s takes no body", http_method_str(req->method),
                       req->route->pattern);
            return;
        }
    } else {
        r = http_body_parse(req->body_data, req->body_len, req->route->body,
                            &req->body, why, sizeof(why));
        if (r != ERR_OK) {
            http_error(req, 400, "invalid_body", "Invalid body", "%s", why);
            return;
        }
    }
    req->status = 0;
    if (http_parse_query(req) != 0 || req->status != 0) {
        return;
    }
    if (req->route->perm != PERM_PUBLIC &&
        (http_authorize(req) != 0 || req->errors != NULL)) {
        http_store_check(req);
        return;
    }
    req->status = 500;
    req->handled = true;
    req->route->fn(req);
    if (req->deferred != 0) {
        return; /* answered later: http_resume() */
    }
    if (req->errors == NULL && req->data == NULL && req->raw == NULL &&
        req->status != 204) {
        http_error(req, 500, "internal", "Internal error",
                   "the handler gave no answer");
    }
    http_store_check(req);
    http_audit(req);
}
