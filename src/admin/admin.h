/*
 * The admin layer: the one place for the rules of the configuration
 * nouns (users and their keys, groups, sites, assets, grants, access
 * profiles, API tokens, agent credentials, agents, tunnels), under both
 * front ends. The CLI (src/cli/) and the HTTP API (src/http/) only parse
 * a request, call admin, and print or encode the result; validation,
 * defaults, sealing with the vault and the JSON form of each noun are
 * here, so both doors accept, refuse and show the same things with the
 * same words. Each noun is one descriptor table (struct admin_field)
 * driving its JSON, the API's body schemas, the CLI's table columns and
 * (profile add, asset add) options.
 *
 * Errors: a function that refuses fills a struct admin_err with an ERR_*
 * code and one sentence for the user (no trailing period, no option or
 * field syntax of one door), and returns the code. ERR_INVALID is a
 * refused value (the CLI's usage exit, the API's 400); other codes are
 * the store's (ERR_NOT_FOUND, ERR_EXISTS, ...).
 *
 * Audit: every change a function here makes that takes a struct
 * admin_ctx (the door: who, from where, how to tell a running server)
 * writes its audit event here, once, whichever door it came through; the
 * doors write none for these (the CLI has no audit hook of its own, and
 * these routes have no audit action). Actions are "<noun>.<verb>"; site
 * and job roles are audited here too ("role.grant", "role.revoke"). Only
 * logins and a user's own password change ("user.passwd" on PATCH
 * /api/v1/me) are audited by the doors.
 *
 * Dependencies: admin includes store, auth, hub (tunnel rules, notices)
 * and common, never cli; http only for the JWT code (admin_token.c) until
 * that moves to auth.
 */
#ifndef PORTCULLIS_ADMIN_H
#define PORTCULLIS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libssh/libssh.h>

#include "common/config.h"
#include "store/access.h"
#include "store/agents.h"
#include "store/store.h"

struct vault;
struct hub;
struct jwt_key;

/* The largest session or idle limit of a profile, in minutes: one leap
 * year (366 days), so "a year" is accepted whatever the year. The larger
 * of the two limits the doors used to have, so no profile either door
 * made before is refused now. */
#define ADMIN_MINUTES_MAX (366 * 24 * 60)
#define ADMIN_ASSET_DEFAULT_SITE "/root"
#define ADMIN_ASSET_DEFAULT_PORT 22
#define ADMIN_ASSET_DEFAULT_RDP_PORT 3389 /* protocol rdp without a port */
#define ADMIN_ASSET_DEFAULT_ROUTE "direct"
#define ADMIN_ASSET_DEFAULT_PROTOCOL "ssh"
/* A private key given to be vaulted: the file's or the field's size. */
#define ADMIN_PRIVKEY_MAX (16 * 1024)
#define ADMIN_TOTP_ISSUER "Portcullis"

struct admin_err {
    int code;
    char msg[320];
};

/* Sets e (if not NULL) and returns code. */
int admin_fail(struct admin_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- shared validators --------------------------------------------- */

/* Copies a name of a what (e.g. "profile") into dst[size], refusing an
 * empty or too long one (never truncated). */
int admin_set_name(char *dst, size_t size, const char *src, const char *what,
                   struct admin_err *e);

/* A host name or address: 1-255 of A-Z a-z 0-9 . - _ : [ ] % */
bool admin_host_valid(const char *s);
/* "SHA256:" and 43 unpadded base64 characters, as ssh-keygen -l prints. */
bool admin_fingerprint_valid(const char *s);
extern const char admin_msg_host[];
extern const char admin_msg_fingerprint[];
extern const char admin_msg_route[];

/* --- descriptors: one table per noun ------------------------------- */

enum admin_ftype {
    AF_STR,      /* char[size]; bytes that are not UTF-8 shown as '?' */
    AF_BOOL,     /* bool */
    AF_INT,      /* int, within [lo, hi] */
    AF_NATIVE,   /* int NATIVE_*, "deny" / "allow" / "record" */
    AF_STRZ,     /* char[size]; "" is JSON null both ways */
    AF_TIME,     /* int64_t Unix time, shown as an ISO 8601 string; 0: null */
    AF_SEALED,   /* uint8_t *: shown as whether it is set, never the bytes */
    AF_CSV,      /* char[size] "a,b": a JSON array of at most hi strings */
    AF_JSONLIST, /* char[size] holding a JSON array of strings (shown only) */
    AF_FN,       /* computed by get() (shown only) */
};

enum {
    AF_READONLY = 1 << 0, /* shown, never set from a request */
    AF_REQUIRED = 1 << 1, /* needed to create */
    AF_NOJSON = 1 << 2,   /* a table column only, not in the JSON form */
    AF_FIXED = 1 << 3,    /* given at create, never changed by an update */
    AF_NOCREATE = 1 << 4, /* changed by an update, not given at create */
    AF_EMPTY = 1 << 5,    /* "" is a value (AF_STR, AF_STRZ) */
};

struct admin_field {
    const char *json; /* key in JSON (output and API body) */
    const char *in;   /* key in an API body if not json (NULL: same) */
    const char *cli;  /* the CLI's option, for docs and messages */
    enum admin_ftype type;
    size_t offset, size;
    unsigned flags;
    long lo, hi;
    const char *col; /* header of the CLI's table column; NULL: none */
    json_t *(*get)(const void *obj); /* AF_FN */
};

/* A descriptor entry of struct type T's member m; the rest by name
 * (.flags, .lo, .hi, .in, .cli, .col, .get). */
#define ADMIN_FIELD(T, j, t, m, ...)                                           \
    {                                                                          \
        .json = (j), .type = (t), .offset = offsetof(T, m),                    \
        .size = sizeof(((T *)0)->m), __VA_ARGS__                               \
    }
#define ADMIN_FIELD_FN(j, fn, ...)                                             \
    {                                                                          \
        .json = (j), .type = AF_FN, .get = (fn), __VA_ARGS__                   \
    }
#define ADMIN_FIELD_END                                                        \
    {                                                                          \
        .json = NULL                                                           \
    }

/* The descriptors, each ended by a field with json NULL. */
extern const struct admin_field admin_user_fields[];
extern const struct admin_field admin_key_fields[];
extern const struct admin_field admin_group_fields[];
extern const struct admin_field admin_site_fields[];
extern const struct admin_field admin_grant_fields[];
extern const struct admin_field admin_site_role_fields[];
extern const struct admin_field admin_profile_fields[];
extern const struct admin_field admin_asset_fields[];
extern const struct admin_field admin_token_fields[];
extern const struct admin_field admin_credential_fields[];
extern const struct admin_field admin_agent_fields[];
extern const struct admin_field admin_tunnel_fields[];
extern const struct admin_field admin_node_fields[];

/* The body schema of a noun's create (create) or update, as the API's
 * route table checks it (http_body.h): every field a request may set
 * (not read-only, computed, time, sealed or shown-only lists; not AF_FIXED
 * on an update, not AF_NOCREATE on a create), with its type and limits.
 * Each is handed to fn(arg, key, type, required, lo, hi) with type one
 * of "string", "string_null", "int", "bool", "list". */
void admin_body_schema(const struct admin_field *f, bool create,
                       void (*fn)(void *arg, const char *key, const char *type,
                                  bool required, long lo, long hi),
                       void *arg);

/* Encodes obj by its descriptor: every field but AF_NOJSON ones, in
 * table order. */
json_t *admin_json_encode(const struct admin_field *f, const void *obj);
/* The JSON value of one field of obj (a new reference; NULL: no memory). */
json_t *admin_field_json(const struct admin_field *f, const void *obj);
/* The text of one field for a table cell: a string as it is, true/false
 * as yes/no, a number, a list joined with ','; "" for null. */
void admin_field_text(const struct admin_field *f, const void *obj, char *out,
                      size_t outlen);
/* Applies the keys of a JSON body present in the descriptor to obj
 * (strings are checked for length, ints for limits, natives parsed);
 * read-only, time and sealed fields and unknown keys are ignored (the
 * API's route schema refuses unknown ones; secrets need sealing). */
int admin_json_apply(const struct admin_field *f, const json_t *body, void *obj,
                     struct admin_err *e);
/* The same for the one field f. */
int admin_field_apply(const struct admin_field *f, const json_t *body,
                      void *obj, struct admin_err *e);
/* The field of f named json (or whose body key is), or NULL. */
const struct admin_field *admin_field_find(const struct admin_field *f,
                                           const char *json);
/* A JSON string of text that may hold bytes that are not UTF-8 (from an
 * agent, or an old row): those become '?'. */
json_t *admin_json_text(const char *s);

json_t *admin_json_time(int64_t t);

/* --- the door a change comes through -------------------------------- */

/*
 * What the functions that write an audit event or tell a running server
 * need to know about the change's door. The CLI fills data_dir (a notice
 * goes to the server of that data directory, notify.h) and leaves hub
 * NULL; the API, inside the server, sets hub (told directly). actor and
 * source name the audit event's who and from where ("cli:alice", "cli";
 * a user name, "192.0.2.7:51234").
 */
struct admin_ctx {
    struct store *st;
    const struct config *cfg;
    const struct vault *vault; /* to seal; NULL if the change needs none */
    struct hub *hub;
    const char *data_dir;
    const char *actor;
    const char *source;
    /* NULL: the caller holds every right (an administrator, the local
     * CLI). Else the user ID whose job roles (client_groups.h) limit the
     * jobs it may start and see (admin_job.h). */
    const char *job_user;
    /* the API caller's user ID (NULL: the local CLI); a schedule keeps
     * it (admin_schedule.h) */
    const char *user_id;
};

/* After a change that was made: a notice the server did not get is not
 * a refusal. The functions below that tell a running server set warn
 * (one sentence) when it could not be told, and *delivered (if not NULL)
 * whether a server took the notice. */
struct admin_notice {
    bool delivered;
    char warn[160];
};

/* Writes the audit event of a change: action "<noun>.<verb>". A failure
 * is returned (ERR_*) with e set: the change was made. */
int admin_audit(const struct admin_ctx *c, const char *action,
                const char *target, const char *detail, struct admin_err *e);

/* --- users and their keys ------------------------------------------ */

/* A new user; pw (NULL: none, then only keys log in) reaches the store
 * hashed. out may be NULL. */
/* Seals and stores the NT hash of pw for the user (the RDP proxy's NLA,
 * docs/rdp.md) when c->vault is set; admin_user_add and
 * admin_user_update do it themselves. Failures are logged only. */
void admin_user_keep_nt(const struct admin_ctx *c, const char *user_id,
                        const char *pw);
int admin_user_add(const struct admin_ctx *c, const char *name, const char *pw,
                   bool disabled, struct store_user *out, struct admin_err *e);
/* Hashes pw into the store (no audit event: the caller's change is
 * audited, e.g. admin_user_update, or is the user's own). */
int admin_user_set_password(struct store *st, const struct store_user *u,
                            const char *pw, struct admin_err *e);
/* A new password (pw, NULL: unchanged) and/or disabled flag (0, 1; -1:
 * unchanged), audited as action ("user.passwd", "user.enable",
 * "user.update", ...). */
int admin_user_update(const struct admin_ctx *c, const struct store_user *u,
                      const char *pw, int disabled, const char *action,
                      struct admin_err *e);
int admin_user_delete(const struct admin_ctx *c, const struct store_user *u,
                      struct admin_err *e);
json_t *admin_user_json(const struct store_user *u);
/* user_json with the names of the user's groups and profiles. */
int admin_user_detail_json(struct store *st, const struct store_user *u,
                           json_t **out);
json_t *admin_key_json(const struct store_user_key *k);

/* A public key as admin accepts it: its type, the canonical base64 of
 * its blob (libssh's export, heap), its comment and fingerprint. */
struct admin_pubkey {
    char type[32];
    char *b64;
    char comment[STORE_NAME_MAX + 1];
    char fp[STORE_FP_MAX + 1];
};

/* Parses one public key out of authorized_keys-style text (blank lines
 * and # comments aside; one "TYPE BASE64 [COMMENT]" line). Refused: a
 * private key, several keys, an unknown type, a blob that is not a key
 * of that type, a comment longer than STORE_NAME_MAX. text is modified. */
int admin_pubkey_parse(char *text, struct admin_pubkey *k, struct admin_err *e);
void admin_pubkey_clear(struct admin_pubkey *k);
/* Parses text and registers the key for u; out is cleared by
 * store_user_key_clear. */
int admin_user_key_add(const struct admin_ctx *c, const struct store_user *u,
                       char *text, struct store_user_key *out,
                       struct admin_err *e);
/* Removes u's key ref (its ID or fingerprint). */
int admin_user_key_delete(const struct admin_ctx *c, const struct store_user *u,
                          const char *ref, struct admin_err *e);
/* The SHA256 fingerprint of a libssh key ("SHA256:..."). */
int admin_key_fingerprint(ssh_key key, char *out, size_t outlen);

/* New TOTP secret for u, sealed and stored; b32 and uri (for the user's
 * app) are filled. The caller wipes them. */
int admin_user_totp_enable(const struct admin_ctx *c,
                           const struct store_user *u, char *b32, size_t b32len,
                           char *uri, size_t urilen, struct admin_err *e);
int admin_user_totp_disable(const struct admin_ctx *c,
                            const struct store_user *u, struct admin_err *e);

/* --- groups and sites ---------------------------------------------- */

/* A new group (out may be NULL). */
int admin_group_add(const struct admin_ctx *c, const char *name,
                    struct store_group *out, struct admin_err *e);
int admin_group_delete(const struct admin_ctx *c, const struct store_group *g,
                       struct admin_err *e);
/* Adds u to g (add) or takes u out of it. */
int admin_group_member(const struct admin_ctx *c, const struct store_group *g,
                       const struct store_user *u, bool add,
                       struct admin_err *e);
/* Deletes a site (path or ID): not /root, not while it has assets or
 * sub-sites (ERR_EXISTS). */
int admin_site_delete(const struct admin_ctx *c, const struct store_site *s,
                      struct admin_err *e);
/* A new site (and any missing parents); out may be NULL. */
int admin_site_add(const struct admin_ctx *c, const char *path,
                   struct store_site *out, struct admin_err *e);
/* A group with the names of its members. */
json_t *admin_group_json(struct store *st, const struct store_group *g);
json_t *admin_site_json(const struct store_site *s);

/* --- assets -------------------------------------------------------- */

/* An asset with its defaults: protocol ssh, port 22, route direct, a new
 * ID (the associated data of its sealed logins names it). */
void admin_asset_defaults(struct store_asset *a);
/* After the body is applied: an rdp asset given no port gets 3389. */
void admin_asset_default_port(struct store_asset *a, const json_t *body);
/* Resolves the site (NULL: /root) into a->site_id and a->site_path. */
int admin_asset_set_site(struct store *st, struct store_asset *a,
                         const char *site, struct admin_err *e);
/* Checks a private key (PEM or OpenSSH text; no passphrase) and seals it
 * for the asset. */
int admin_asset_seal_key(const struct vault *v, struct store_asset *a,
                         const char *pem, size_t len, struct admin_err *e);
/* Seals a login password for the asset (NULL: erases it). */
int admin_asset_seal_password(const struct vault *v, struct store_asset *a,
                              const char *pw, struct admin_err *e);
/* Checks every field of a and adds it / writes it back. */
int admin_asset_check(const struct store_asset *a, struct admin_err *e);
int admin_asset_add(const struct admin_ctx *c, struct store_asset *a,
                    struct admin_err *e);
int admin_asset_update(const struct admin_ctx *c, struct store_asset *a,
                       struct admin_err *e);
int admin_asset_delete(const struct admin_ctx *c, const struct store_asset *a,
                       struct admin_err *e);
/* Pins fp ("" or NULL: trust the next key the target shows). */
int admin_asset_retrust(const struct admin_ctx *c, const struct store_asset *a,
                        const char *fp, struct admin_err *e);
json_t *admin_asset_json(const struct store_asset *a);

/* --- site roles ------------------------------------------------------ */

/* A site role (SITE_ROLE_*) from its name; -1 and e set. */
int admin_site_role_parse(const char *role, struct admin_err *e);
/* Adds sr (its site and grantee IDs set) with the role named role; the
 * names are for the words of a refusal and the audit event. */
int admin_site_role_add(const struct admin_ctx *c, struct store_site_role *sr,
                        const char *role, const char *grantee, const char *site,
                        struct admin_err *e);
int admin_site_role_delete(const struct admin_ctx *c, const char *id,
                           struct admin_err *e);

/* --- grants -------------------------------------------------------- */

/* An asset role (ROLE_VIEWER..ROLE_OWNER) from its name; -1 and e set. */
int admin_role_parse(const char *role, struct admin_err *e);
/* Adds grant g (its target and grantee IDs set) with the role named
 * role; gives g a new ID. The names are for the words of a refusal. */
int admin_grant_add(const struct admin_ctx *c, struct store_grant *g,
                    const char *role, const char *grantee, const char *target,
                    struct admin_err *e);
int admin_grant_delete(const struct admin_ctx *c, const char *id,
                       struct admin_err *e);
json_t *admin_grant_json(const struct store_grant *g);

/* --- access profiles ----------------------------------------------- */

/* A new profile: sessions (shell, exec, sftp, scp) on, forwardings off. */
void admin_profile_defaults(struct store_profile *p);
int admin_profile_check(const struct store_profile *p, struct admin_err *e);
int admin_profile_add(const struct admin_ctx *c, struct store_profile *p,
                      struct admin_err *e);
int admin_profile_update(const struct admin_ctx *c,
                         const struct store_profile *p, struct admin_err *e);
int admin_profile_delete(const struct admin_ctx *c,
                         const struct store_profile *p, struct admin_err *e);
/* Assigns p to a user or a group (exactly one ID set; who is its name for
 * the words), or takes it away (assign false). */
int admin_profile_assign(const struct admin_ctx *c,
                         const struct store_profile *p, const char *user_id,
                         const char *group_id, const char *who, bool assign,
                         struct admin_err *e);
json_t *admin_profile_json(const struct store_profile *p);
/* Who profile p is assigned to: [{"kind": "user"|"group", "id", "name"}],
 * users first, each kind by name; *out NULL on failure (e set). */
int admin_profile_assignees(const struct admin_ctx *c,
                            const struct store_profile *p, json_t **out,
                            struct admin_err *e);

/* --- agent credentials, agents, tunnels ----------------------------- */

/* A new credential (name may be NULL); its secret (SECRET_CHARS + 1
 * bytes) is returned once, the store keeps its argon2id hash. Audited. */
int admin_credential_add(const struct admin_ctx *c, const char *name,
                         struct store_credential *out, char *secret,
                         size_t secretlen, struct admin_err *e);
/* Deletes it; agents logged in with it drop at once. Audited. */
int admin_credential_delete(const struct admin_ctx *c, const char *id,
                            struct admin_notice *n, struct admin_err *e);
/* An agent as JSON; its online flag the hub's own view when there is a
 * hub (it knows about connections a moment old), else the store's. */
json_t *admin_agent_json(const struct admin_ctx *c,
                         const struct store_agent *a);
/* The agent's ID bound to credential cred (NULL or "": unbound, the next
 * credential to announce it takes it). Audited. */
int admin_agent_rebind(const struct admin_ctx *c, const char *id,
                       const char *cred, struct admin_notice *n,
                       struct admin_err *e);
/* Deletes an agent and its tunnels. Audited. */
int admin_agent_delete(const struct admin_ctx *c, const char *id,
                       struct admin_notice *n, struct admin_err *e);
/* Asks the running server (c->data_dir) for a pairing code with these
 * tags, name and credential (NULL: the server makes one when the code is
 * used; else its secret too). *answer: {"code","url","command",
 * "expires_at","plain_http"}, the caller's to json_decref. */
int admin_agent_pair(const struct admin_ctx *c, const char *const *tags,
                     size_t ntags, const char *name, const char *credential,
                     const char *secret, json_t **answer, struct admin_err *e);

/* The longest idle timeout of a tunnel, in minutes (hub/tunnel_def.h's
 * TUNNEL_IDLE_MAX). */
#define ADMIN_TUNNEL_IDLE_MAX 525600

/* What a door asks for; see hub/tunnel_def.h for the rules. */
struct admin_tunnel_req {
    const char *agent_id; /* through this agent, or */
    const char *peer;     /* through this peer node (TCP only) */
    const char *remote;   /* "HOST:PORT", "[v6]:PORT" */
    bool udp;
    int local_port;         /* 0: the lowest free one */
    const char *acl;        /* NULL: default_ip's address only */
    const char *default_ip; /* the creator's address */
    int idle_minutes;       /* 0: never */
};
/* Adds a tunnel (created_by the actor), tells the server. Audited. */
int admin_tunnel_add(const struct admin_ctx *c,
                     const struct admin_tunnel_req *req, struct store_tunnel *t,
                     struct admin_notice *n, struct admin_err *e);
/* Replaces a tunnel's ACL (acl: "a,b", checked and made canonical); t
 * gets the tunnel as stored. Audited. */
int admin_tunnel_set_acl(const struct admin_ctx *c, const char *id,
                         const char *acl, struct store_tunnel *t,
                         struct admin_notice *n, struct admin_err *e);
int admin_tunnel_delete(const struct admin_ctx *c, const char *id,
                        struct admin_notice *n, struct admin_err *e);
const char *admin_tunnel_state(const struct store_tunnel *t);

/* --- API tokens ----------------------------------------------------- */

#define ADMIN_TOKEN_DEFAULT_LIFETIME "30d"

/* A new API token for user (name or ID). lifetime in seconds, or 0 to
 * parse expires ("30d", "12h", "15m", "3600s"; at most 10 years). */
struct admin_token_req {
    const char *user;
    const char *expires;
    int64_t lifetime;
    const char *description;
    const char *cidrs; /* "a,b" or NULL / "" for any */
    const char *paths;
};
/* Checks req's values (not the user); *lifetime gets its lifetime. */
int admin_token_check(const struct admin_token_req *req, int64_t *lifetime,
                      struct admin_err *e);
/* Loads (or first makes) the API's signing key: [http] jwt_secret. */
int admin_token_key_load(const char *path, struct jwt_key **out,
                         struct admin_err *e);
void admin_token_key_free(struct jwt_key *k);
/* Makes the token: out is the stored row (with the user's name), *token
 * the JWT, shown once, freed (wiped) with admin_token_free. Audited. */
int admin_token_add(const struct admin_ctx *c, const struct jwt_key *key,
                    const struct admin_token_req *req,
                    struct store_api_token *out, char **token,
                    struct admin_err *e);
void admin_token_free(char *token);
/* Writes t back (enabled, description, filters checked). Audited as
 * action (e.g. "token.update", "token.disable"). */
int admin_token_update(const struct admin_ctx *c, struct store_api_token *t,
                       const char *action, struct admin_err *e);
int admin_token_delete(const struct admin_ctx *c, const char *id,
                       struct admin_err *e);
json_t *admin_token_json(const struct store_api_token *t);

/* --- the nodes of a cluster (store/nodes.h) ------------------------ */

struct store_node;
/* Every node with its state: "online", "offline" (no heartbeat for
 * [node] dead_after_seconds, not yet declared dead), "stopped", "dead". */
int admin_node_list(const struct admin_ctx *c, const struct config *cfg,
                    struct store_node **list, size_t *n, struct admin_err *e);

/* --- peer nodes (store/peers.h) ------------------------------------ */

#define ADMIN_PEER_DEFAULT_PORT 3128
struct store_peer;
extern const struct admin_field admin_peer_fields[];
/* A new peer from a request body (name, host, port, tls_fingerprint,
 * plain_http, via) and its proxy's API token (sealed here; c->vault must
 * be open). Audited (peer.add; never the token). */
int admin_peer_add(const struct admin_ctx *c, const json_t *body,
                   const char *token, struct store_peer *out,
                   struct admin_err *e);
/* Changes what body names (not the name); token NULL keeps the old one. */
int admin_peer_update(const struct admin_ctx *c, const char *name_or_id,
                      const json_t *body, const char *token,
                      struct store_peer *out, struct admin_err *e);
/* Refused while an asset's route or another peer's via names it. */
int admin_peer_delete(const struct admin_ctx *c, const char *name_or_id,
                      struct admin_err *e);

/* --- directory (LDAP) logins: the user just in time (auth/directory.h) */

struct directory_result;
/*
 * After a successful check: creates the local user principal
 * ("alice@contoso.com", lowercased) if new, and sets the user's groups to
 * exactly the mapped groups that exist (a domain user's group memberships
 * belong to the directory; groups added by hand go at the next login). Refuses
 * a user disabled locally. Fills *u; detail (for the audit) says what changed.
 * ERR_OK, or an error with why.
 */
int directory_provision(struct store *st, const char *principal,
                        const struct directory_result *res,
                        struct store_user *u, char *why, size_t whylen,
                        char *detail, size_t detlen);

#endif
