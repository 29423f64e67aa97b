/*
 * The store: every persistent object of Portcullis behind one interface.
 *
 * The noun files (store_users.c, store_assets.c, ...) implement it over a
 * small database driver (db.h); SQLite's is db_sqlite.c, and PostgreSQL's
 * comes beside it, so nothing here exposes SQL, rowids or SQLite types.
 * docs/store.md describes the layout.
 * Object IDs are text: UUIDs for assets and sessions, and for everything
 * else too, so that a cluster store can create them on any node.
 *
 * Every function is one transaction. Writers use immediate transactions and
 * a busy timeout, so a CLI writing while the server runs waits for the lock
 * instead of failing with "database is locked".
 *
 * Ownership: struct store is opened by store_open() and closed by
 * store_close(NULL-safe). Object structs are filled by the getters; those
 * with heap members are released with their *_clear() function. Lists are
 * heap arrays released with the matching *_list_free(list, n).
 * Secrets arrive here already hashed or sealed; the store never sees
 * plaintext passwords, TOTP seeds or vaulted logins. A handle belongs to the
 * process that opened it: a forked child opens its own (store_close() in a
 * child only frees the struct).
 *
 * References: IDs are stored lower-case (a caller-chosen one is lowered); a
 * parameter named *_id takes an ID (a UUID, either case); name_or_id takes
 * a name or an ID. So that is never ambiguous, names shaped like a UUID are
 * refused (ERR_INVALID), and user names may not hold the login grammar's
 * '/', '?' or '#'. Strings longer than their field are refused
 * (ERR_TOO_LONG), never truncated. Duplicates are ERR_EXISTS, missing
 * objects ERR_NOT_FOUND, database failures ERR_STORE (logged).
 */
#ifndef PORTCULLIS_STORE_H
#define PORTCULLIS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_ID_MAX 36    /* a UUID's characters */
#define STORE_NAME_MAX 128 /* user, group, asset, profile names */
#define STORE_PATH_MAX 512 /* site paths: "/root/DevOps/Linux" */
#define STORE_HOST_MAX 255 /* host names and addresses */
/* argon2id encoded string (crypto_pwhash_STRBYTES) */
#define STORE_HASH_MAX 128
#define STORE_FP_MAX 64            /* "SHA256:" + 43 base64 characters */
#define STORE_USER_INFO_MAX 256    /* display name, mail */
#define STORE_ROUTE_MAX 160        /* "direct", "agent:ID", "peer:NAME" */
#define STORE_SEALED_SMALL_MAX 256 /* a sealed TOTP seed */
#define STORE_RESULT_MAX 512
#define STORE_KEY_MAX 16384 /* a public key in base64, or sealed secrets */

struct store;

enum store_role {
    ROLE_NONE = 0,
    ROLE_VIEWER = 1,
    ROLE_EDITOR = 2,
    ROLE_OWNER = 3
};
const char *store_role_str(int role); /* "viewer", ... ; "none" */
int store_role_parse(const char *s);  /* ROLE_* or -1 */

enum store_native { NATIVE_DENY = 0, NATIVE_ALLOW = 1, NATIVE_RECORD = 2 };
const char *store_native_str(int native);
/* A route an asset may have: "direct", "agent:ID" (ID as an agent
 * announces it) or "peer:NAME" (a peer node, store/peers.h); IDs and
 * names are 1-64 of A-Z a-z 0-9 . _ -. */
bool store_route_valid(const char *route);
int store_native_parse(const char *s); /* NATIVE_* or -1 */

struct store_user {
    char id[STORE_ID_MAX + 1];
    char name[STORE_NAME_MAX + 1]; /* may carry a domain: "bob@contoso.com" */
    char password_hash[STORE_HASH_MAX + 1]; /* "" when no password set */
    bool disabled;
    bool totp_enabled;
    uint8_t totp_sealed[STORE_SEALED_SMALL_MAX]; /* vault-sealed seed */
    size_t totp_sealed_len;
    int64_t totp_last_step; /* highest TOTP time step accepted; replay guard */
    int64_t created_at;
    /* what a directory says of a domain user; "" for local users */
    char display_name[STORE_USER_INFO_MAX + 1];
    char mail[STORE_USER_INFO_MAX + 1];
};

struct store_user_key {
    char id[STORE_ID_MAX + 1];
    char user_id[STORE_ID_MAX + 1];
    char type[32];                      /* "ssh-ed25519", "ssh-rsa", ... */
    char fingerprint[STORE_FP_MAX + 1]; /* "SHA256:..." */
    char comment[STORE_NAME_MAX + 1];
    char *base64; /* heap: the key blob in base64 */
};

struct store_group {
    char id[STORE_ID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
};

struct store_site {
    char id[STORE_ID_MAX + 1];
    char path[STORE_PATH_MAX + 1];    /* "/root" or "/root/a/b" */
    char parent_id[STORE_ID_MAX + 1]; /* "" for /root */
};

struct store_asset {
    char id[STORE_ID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    char site_id[STORE_ID_MAX + 1];
    char site_path[STORE_PATH_MAX + 1]; /* filled by getters */
    char protocol[16];                  /* "ssh", "rdp", "tcp" */
    char host[STORE_HOST_MAX + 1];
    int port;
    char route[STORE_ROUTE_MAX + 1]; /* "direct" */
    char login_user[STORE_NAME_MAX + 1];
    uint8_t *password_sealed; /* heap, NULL if none */
    size_t password_sealed_len;
    uint8_t *key_sealed; /* heap, NULL if none; a sealed private key */
    size_t key_sealed_len;
    char host_key_fp[STORE_FP_MAX + 1]; /* pinned "SHA256:..."; "" = unpinned */
    int64_t created_at;
};

/* A grant of an asset role to a user or a group, on one asset or on a site
 * (then it covers the site's assets and those of all its sub-sites). */
struct store_grant {
    char id[STORE_ID_MAX + 1];
    char asset_id[STORE_ID_MAX + 1]; /* "" if a site grant */
    char site_id[STORE_ID_MAX + 1];  /* "" if an asset grant */
    char user_id[STORE_ID_MAX + 1];  /* "" if a group grant */
    char group_id[STORE_ID_MAX + 1]; /* "" if a user grant */
    /* filled by list and add: asset name or site path */
    char target_name[STORE_PATH_MAX + 1];
    /* filled by list and add: user or group name */
    char grantee_name[STORE_NAME_MAX + 1];
    int role; /* ROLE_* */
};

struct store_profile {
    char id[STORE_ID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    int native; /* NATIVE_* */
    bool shell, exec, sftp, scp;
    bool local_forward, remote_forward, agent_forward, x11;
    int max_session_minutes;  /* 0 = unlimited */
    int idle_timeout_minutes; /* 0 = none */
    bool record_input;        /* record: also what the user types */
    /* RDP virtual channels (docs/security.md "RDP virtual channels"):
     * the clipboard (text and every other format but files), files on
     * the clipboard (needs clipboard text), audio out, drive and printer
     * redirection */
    bool rdp_clipboard_text, rdp_clipboard_files, rdp_audio;
    bool rdp_drive, rdp_printer;
    bool rdp; /* RDP sessions at all (as shell, exec... for SSH) */
};

struct store_session {
    char id[STORE_ID_MAX + 1];
    char user_id[STORE_ID_MAX + 1];      /* "" if the user is unknown */
    char user_name[STORE_NAME_MAX + 1];  /* as given in the login */
    char asset_id[STORE_ID_MAX + 1];     /* "" if not resolved */
    char asset_name[STORE_NAME_MAX + 1]; /* as given, or the resolved name */
    char site[STORE_PATH_MAX + 1];
    /* shell, exec, sftp, scp, forward, rdp, tunnel; "" if the connection
     * never got to a channel */
    char kind[16];
    char client_addr[64]; /* "127.0.0.1:51234" */
    char route[STORE_ROUTE_MAX + 1];
    int64_t started_at;
    int64_t ended_at;                  /* 0 while open */
    uint64_t bytes_up;                 /* client to target */
    uint64_t bytes_down;               /* target to client */
    int exit_status;                   /* -1 if none */
    char result[STORE_RESULT_MAX + 1]; /* "ok", "denied: why", "error: why";
                                          "" while open */
    char detail[STORE_RESULT_MAX + 1]; /* exec command (truncated), etc. */
    char recording_path[STORE_PATH_MAX + 1];
    char recording_sha256[65];
    uint64_t recording_size;      /* bytes; 0 until the recording is closed */
    int64_t recording_deleted_at; /* when retention deleted the file; 0 while
                                     it exists (path and SHA-256 are kept) */
    /* the node (store/nodes.h) the session ran on; "" for none. Read
     * only: store_session_open writes the handle's own */
    char node[32 + 1];
    /* the node that held the agent the session went through when that
     * was another node (the node: route, route/route.h); "" otherwise.
     * Written by store_session_update. */
    char agent_node[32 + 1];
};

/* Every set criterion must hold; since and until are inclusive bounds on
 * started_at. */
struct store_session_filter {
    const char *user_name; /* NULL = any */
    const char *asset_id;
    const char *kind;
    const char *result_prefix; /* "ok", "denied", "error" */
    int64_t since, until;      /* 0 = unbounded */
    size_t limit;              /* 0 = no limit; newest first */
};

/* --- lifecycle --- */
/* Before the first store_open() of a process (and before its threads
 * start): what its PostgreSQL connections tell the server. node_name goes
 * into their application_name; a write transaction left idle (its process
 * frozen) loses its connection after a third of dead_after_seconds (3-10
 * s), so it cannot hold the cluster's write lock until other nodes are
 * unable to declare it dead (db.h). Nothing on SQLite. */
void store_set_session_defaults(const char *node_name, int dead_after_seconds);
/* Opens (creating if absent) and migrates the store at path. */
int store_open(const char *path, struct store **out);
/*
 * `init`'s store: opens path, refuses a database that already holds a
 * Portcullis store (ERR_EXISTS), and begins one write transaction in
 * which the schema is made and every store call made through *out runs,
 * until store_create_end() commits it all (r == ERR_OK) or rolls it all
 * back (PostgreSQL's DDL is transactional, as SQLite's is): a failed init
 * leaves no table behind. *out is closed by store_create_end().
 */
int store_create_begin(const char *path, struct store **out);
int store_create_end(struct store *st, int r);
/* Opens and migrates the store at path only if the database already holds
 * one (ERR_NOT_FOUND otherwise: nothing is created); `node join`. */
int store_open_existing(const char *path, struct store **out);
void store_close(struct store *st);
/* true when the store's database server is known to be unreachable (a
 * PostgreSQL outage): a failed call is then "try again later", not an
 * internal error. Never true on SQLite. */
bool store_unreachable(struct store *st);
/* The server's main store: a lost connection to the database server is
 * opened again on one of loop's worker threads, and until it is, calls
 * fail at once (ERR_STORE, store_unreachable() true) instead of waiting
 * for the server in the loop's thread; a statement the server does not
 * answer within deadline_ms ([store] statement_deadline_ms; <= 0: the
 * default) fails with ERR_STORE, and if the server does not answer its
 * cancel request either, the connection counts as lost (db.h,
 * db_set_loop). Nothing on SQLite. Call once, before serving; loop must
 * outlive the store's calls. */
struct loop;
void store_reconnect_off_loop(struct store *st, struct loop *loop,
                              int deadline_ms);
/* Current schema version, for `--version` style diagnostics and tests. */
int store_schema_version(struct store *st, int *version);

/* --- users --- */
int store_user_add(struct store *st, const char *name,
                   const char *password_hash /* may be NULL/"" */,
                   bool disabled, struct store_user *out /* may be NULL */);
int store_user_get(struct store *st, const char *name_or_id,
                   struct store_user *out);
int store_user_list(struct store *st, struct store_user **list, size_t *n);
/* For each of n user IDs, active[i]: the user exists and is not disabled.
 * One read transaction and one query per 16 IDs (the server's sweep of
 * logged-in users: a round trip per 16 users, not per user, on a
 * database across a network). */
int store_users_active(struct store *st, const char *const *ids, size_t n,
                       bool *active);
void store_user_list_free(struct store_user *list, size_t n);
int store_user_delete(struct store *st, const char *name_or_id);
int store_user_set_password(struct store *st, const char *user_id,
                            const char *password_hash);
/* The same password's hash remade at another cost (auth/password.h,
 * struct password_rehash): set only while the stored hash is still
 * old_hash (a password set meanwhile wins: ERR_NOT_FOUND), and the NT
 * hash stays (the password did not change). */
int store_user_rehash(struct store *st, const char *user_id,
                      const char *old_hash, const char *new_hash);
/* The vault-sealed NT hash of the user's password (the RDP proxy's NLA,
 * docs/rdp.md): *len 0 when none is stored yet. set with NULL clears it;
 * store_user_set_password clears it too. */
int store_user_nt_get(struct store *st, const char *user_id, uint8_t *sealed,
                      size_t cap, size_t *len);
int store_user_nt_set(struct store *st, const char *user_id,
                      const uint8_t *sealed, size_t sealed_len);
/* A domain user's display name and mail, as the directory gave them. */
int store_user_set_info(struct store *st, const char *user_id,
                        const char *display_name, const char *mail);
int store_user_set_disabled(struct store *st, const char *user_id,
                            bool disabled);
/* Enables TOTP with a sealed seed (resets the replay guard), or disables it
 * and erases the seed when sealed is NULL. */
int store_user_set_totp(struct store *st, const char *user_id,
                        const uint8_t *sealed, size_t sealed_len);
/* Records that TOTP time step `step` was used: succeeds only if step is
 * greater than every step used before (ERR_REPLAY otherwise). Atomic, so
 * two sessions racing with one code cannot both win. */
int store_user_totp_use(struct store *st, const char *user_id, int64_t step);

/* --- user public keys --- */
int store_user_key_add(struct store *st, const char *user_id, const char *type,
                       const char *base64, const char *fingerprint,
                       const char *comment,
                       struct store_user_key *out /* may be NULL */);
int store_user_key_list(struct store *st, const char *user_id,
                        struct store_user_key **list, size_t *n);
void store_user_key_list_free(struct store_user_key *list, size_t n);
/* ERR_OK if a key with this fingerprint is registered for the user. */
int store_user_key_match(struct store *st, const char *user_id,
                         const char *fingerprint);
int store_user_key_delete(struct store *st, const char *user_id,
                          const char *key_id_or_fingerprint);
void store_user_key_clear(struct store_user_key *k);

/* --- groups --- */
int store_group_add(struct store *st, const char *name,
                    struct store_group *out /* may be NULL */);
int store_group_get(struct store *st, const char *name_or_id,
                    struct store_group *out);
int store_group_list(struct store *st, struct store_group **list, size_t *n);
int store_group_delete(struct store *st, const char *name_or_id);
int store_group_member_add(struct store *st, const char *group_id,
                           const char *user_id);
int store_group_member_remove(struct store *st, const char *group_id,
                              const char *user_id);
/* Member users of a group. */
int store_group_members(struct store *st, const char *group_id,
                        struct store_user **list, size_t *n);
/* Groups a user belongs to. */
int store_user_groups(struct store *st, const char *user_id,
                      struct store_group **list, size_t *n);

/* --- sites: /root always exists; add creates missing parents --- */
int store_site_add(struct store *st, const char *path,
                   struct store_site *out /* may be NULL */);
/* Accepts "/root/a", "a" or "/a" (both taken below /root). */
int store_site_get(struct store *st, const char *path_or_id,
                   struct store_site *out);
int store_site_list(struct store *st, struct store_site **list, size_t *n);
/* Fails with ERR_EXISTS while the site has assets or sub-sites. */
int store_site_delete(struct store *st, const char *path_or_id);
/* Normalizes a site reference to "/root/..." into out (STORE_PATH_MAX+1). */
int store_site_normalize(const char *in, char *out, size_t outlen);

/* --- assets --- */
/* a->id is generated (UUID) when empty. Several assets may share a name;
 * logins that name them get an "ambiguous" error listing the IDs. The site
 * is a->site_id if set, else a->site_path ("" = /root); it must exist. On
 * success id, site_id, site_path, created_at (and route "direct" if it was
 * empty) are filled in. Names shaped like a UUID are refused. */
int store_asset_add(struct store *st, struct store_asset *a);
/* Replaces every stored field of asset a->id with a's (get, change,
 * update): the sealed blobs too, so NULL there erases a vaulted login.
 * Fills site_id and site_path like add. */
int store_asset_update(struct store *st, struct store_asset *a);
int store_asset_get(struct store *st, const char *id, struct store_asset *out);
/* All assets whose ID equals spec (exact, any site), or else whose name
 * equals spec within the site (exact site, not sub-sites; NULL = /root;
 * any form store_site_get accepts). Zero matches is ERR_OK with *n = 0. */
int store_asset_find(struct store *st, const char *site_path, const char *spec,
                     struct store_asset **list, size_t *n);
int store_asset_list(struct store *st, struct store_asset **list, size_t *n);
void store_asset_list_free(struct store_asset *list, size_t n);
void store_asset_clear(struct store_asset *a);
int store_asset_delete(struct store *st, const char *id);
/* Pins fp if none is pinned yet (ERR_OK), ERR_OK if fp equals the pin,
 * ERR_HOSTKEY if a different key is pinned. Atomic. */
int store_asset_pin_host_key(struct store *st, const char *id, const char *fp);
/* Replaces the pin: fp, or "" to trust the next key seen (retrust). */
int store_asset_set_host_key(struct store *st, const char *id, const char *fp);

/* --- grants (asset roles) --- */
int store_grant_add(struct store *st, struct store_grant *g);
int store_grant_list(struct store *st, struct store_grant **list, size_t *n);
int store_grant_delete(struct store *st, const char *id);
/* The best role the user holds on the asset: a grant to the user or to one
 * of their groups, on the asset itself or on its site or any ancestor site.
 * ROLE_NONE when there is none. */
int store_user_asset_role(struct store *st, const char *user_id,
                          const char *asset_id, int *role);

/* --- access profiles --- */
/* p->id is generated and filled in. */
int store_profile_add(struct store *st, struct store_profile *p);
/* Replaces name, native mode, switches and limits of profile p->id. */
int store_profile_update(struct store *st, const struct store_profile *p);
int store_profile_get(struct store *st, const char *name_or_id,
                      struct store_profile *out);
int store_profile_list(struct store *st, struct store_profile **list,
                       size_t *n);
int store_profile_delete(struct store *st, const char *name_or_id);
/* Exactly one of user_id / group_id is non-NULL. */
int store_profile_assign(struct store *st, const char *profile_id,
                         const char *user_id, const char *group_id);
int store_profile_unassign(struct store *st, const char *profile_id,
                           const char *user_id, const char *group_id);
/* Profiles assigned to the user directly or through any of their groups. */
int store_user_profiles(struct store *st, const char *user_id,
                        struct store_profile **list, size_t *n);
/* Who a profile is assigned to (directly): users first, then groups,
 * each by name. ERR_NOT_FOUND: no profile with that ID. */
struct store_assignee {
    bool group;
    char id[STORE_ID_MAX + 1];
    char name[STORE_NAME_MAX + 1];
};
int store_profile_assignees(struct store *st, const char *profile_id,
                            struct store_assignee **list, size_t *n);

/* --- session report --- */
/* Inserts a row; s->id must be set (a UUID). started_at 0 = now. With
 * ended_at 0 the row is open (bytes 0, exit_status -1, result ""); with
 * ended_at set it is written closed as given (result required), for an
 * attempt refused before it became a session. */
int store_session_open(struct store *st, const struct store_session *s);
/* Closes an open row: end time (0 = now), bytes, exit status, result
 * (required). ERR_NOT_FOUND if no open row has this ID: a closed row is
 * never rewritten. */
int store_session_close(struct store *st, const char *id, int64_t ended_at,
                        uint64_t bytes_up, uint64_t bytes_down, int exit_status,
                        const char *result);
/* One write of store_session_batch: insert s as store_session_open does
 * (open, or closed when s.ended_at is set), or close the open row s.id with
 * s.ended_at, bytes, exit_status and result as store_session_close does.
 * r gets that write's own outcome. */
struct store_session_op {
    struct store_session s;
    bool insert;
    int r;
};
/* Writes n report rows in one transaction (cheaper than one each: for
 * callers that queue short connections' rows). An op that fails on its
 * own (invalid, ERR_NOT_FOUND for a close) leaves the others written; a
 * database error rolls back all of them and is returned. */
int store_session_batch(struct store *st, struct store_session_op *ops,
                        size_t n);
/* Updates fields learned after the row was opened (asset, kind, route,
 * detail). Empty strings leave a field as it is. */
int store_session_update(struct store *st, const struct store_session *s);
int store_session_get(struct store *st, const char *id,
                      struct store_session *out);
int store_session_list(struct store *st, const struct store_session_filter *f,
                       struct store_session **list, size_t *n);
/*
 * The server's report rows off its loop (PostgreSQL): from now on
 * store_session_open, _close, _set_recording and _update on st only check
 * their input and queue the write (ERR_STORE when [store] outage_rows
 * writes wait already, max; nothing is kept then), and one worker with a
 * connection of its own (store_worker.h) writes the queue in order, up to
 * 64 writes a transaction, one transaction in flight; a failed one is
 * tried again, first after 0.25 s, doubling to 4 s. store_session_get
 * and _list on st write what waits first. On SQLite, or without a loop,
 * nothing changes: each write is made at once. docs/store.md.
 */
int store_session_off_loop(struct store *st, struct loop *l,
                           const char *location, size_t max);
/* Stops that: the transaction in flight waited for ms at most, then what
 * waits written on st itself (unless the database did not answer).
 * Returns how many writes were not made (logged; the rows they would
 * have closed stay open, and the next start closes them as interrupted).
 * Writes on st are made at once afterwards. */
size_t store_session_off_loop_stop(struct store *st, int ms);
/* At server start: closes every row this node (store_set_node) or no
 * node left open with `result`; returns how many through *count. Rows
 * other nodes hold open stay open. */
int store_session_close_dangling(struct store *st, int64_t now,
                                 const char *result, int *count);
/* Sets a row's recording path, size and hex SHA-256 (sha256 may be "" while
 * the recording is still being written), open or closed. */
int store_session_set_recording(struct store *st, const char *id,
                                const char *path, uint64_t size,
                                const char *sha256);
/* Rows that ended before `ended_before` and still have a recording file
 * (a path, not yet marked deleted), at most limit of them, ordered by ID
 * and starting after after_id ("" or NULL = from the start): the retention
 * sweep's pages. */
int store_session_list_expired(struct store *st, int64_t ended_before,
                               const char *after_id, size_t limit,
                               struct store_session **list, size_t *n);
/* Marks a row's recording as deleted at `when` (0 = now): size 0, path and
 * SHA-256 kept. ERR_NOT_FOUND if no row has this ID. */
int store_session_recording_deleted(struct store *st, const char *id,
                                    int64_t when);

/* Generic free for the fixed-size struct lists (groups, sites, grants,
 * profiles, sessions, users). */
void store_list_free(void *list);

#endif
