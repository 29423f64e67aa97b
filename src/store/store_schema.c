/*
 * The schema (SQLite's and PostgreSQL's) as an ordered list of migrations.
 *
 * store_open() applies every step whose version is above the one recorded
 * in schema_version, each in its own immediate transaction (see
 * store_migrate() in store_common.c). A step is never edited once
 * released: a change to the schema is a new step appended here.
 *
 * The SQL is kept to what PostgreSQL also accepts (BIGINT, partial and
 * expression indexes, ON DELETE CASCADE, CHECK, ALTER TABLE ADD COLUMN
 * with a default), so both drivers run the same text. What differs there
 * (docs/store.md, "Portability"):
 *   - BLOB is spelt BYTEA (users.totp_sealed, assets.password_sealed,
 *     assets.key_sealed, ...): db_pg.c's db_exec() rewrites that one word;
 *   - each step's write transaction takes the advisory write lock there
 *     (db_pg.c), so one node migrates at a time, as SQLite's BEGIN
 *     IMMEDIATE serializes them here;
 *   - the database is created with the "C" collation, so ORDER BY name
 *     sorts as SQLite's BINARY does.
 * Flags stay INTEGER 0/1 (not BOOLEAN) so the queries run unchanged, and no
 * step may use SQLite's table-rebuild idiom. Values never appear in the
 * text: rows that need one (the /root site's UUID) are written by the
 * step's C hook with bound parameters.
 */
#include "store/store_internal.h"

#include <stddef.h>

/*
 * Version 1: every object of SPEC sections 4, 5 and 8.
 *
 * IDs are UUID text. Booleans are INTEGER 0/1 and roles and native modes
 * are the enum values (a role's MAX() is the best role). Grants and
 * profile assignments point at exactly one target and one grantee, which
 * CHECK enforces; their uniqueness is an index over COALESCE() because
 * both databases treat NULLs in a unique constraint as distinct.
 *
 * Sessions carry no foreign keys on purpose: a report row outlives the
 * user and the asset it names. seq orders rows started in the same second
 * (newest first) without relying on SQLite's rowid.
 */
static const char store_schema_v1[] =
    "CREATE TABLE users ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " password_hash TEXT NOT NULL DEFAULT '',"
    " disabled INTEGER NOT NULL DEFAULT 0,"
    " totp_enabled INTEGER NOT NULL DEFAULT 0,"
    " totp_sealed BLOB,"
    " totp_last_step BIGINT NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL);"

    "CREATE TABLE user_keys ("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " type TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL,"
    " comment TEXT NOT NULL DEFAULT '',"
    " base64 TEXT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " UNIQUE (user_id, fingerprint));"

    "CREATE TABLE groups ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " created_at BIGINT NOT NULL);"

    "CREATE TABLE group_members ("
    " group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,"
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " PRIMARY KEY (group_id, user_id));"
    "CREATE INDEX group_members_user ON group_members(user_id);"

    /* No cascade from a parent: a site with sub-sites or assets is not
     * deleted (store_site_delete refuses). */
    "CREATE TABLE sites ("
    " id TEXT PRIMARY KEY,"
    " path TEXT NOT NULL UNIQUE,"
    " parent_id TEXT REFERENCES sites(id),"
    " created_at BIGINT NOT NULL);"
    "CREATE INDEX sites_parent ON sites(parent_id);"

    "CREATE TABLE assets ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " site_id TEXT NOT NULL REFERENCES sites(id),"
    " protocol TEXT NOT NULL,"
    " host TEXT NOT NULL,"
    " port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),"
    " route TEXT NOT NULL,"
    " login_user TEXT NOT NULL DEFAULT '',"
    " password_sealed BLOB,"
    " key_sealed BLOB,"
    " host_key_fp TEXT NOT NULL DEFAULT '',"
    " created_at BIGINT NOT NULL);"
    "CREATE INDEX assets_site_name ON assets(site_id, name);"

    "CREATE TABLE grants ("
    " id TEXT PRIMARY KEY,"
    " asset_id TEXT REFERENCES assets(id) ON DELETE CASCADE,"
    " site_id TEXT REFERENCES sites(id) ON DELETE CASCADE,"
    " user_id TEXT REFERENCES users(id) ON DELETE CASCADE,"
    " group_id TEXT REFERENCES groups(id) ON DELETE CASCADE,"
    " role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 3),"
    " created_at BIGINT NOT NULL,"
    " CHECK ((asset_id IS NULL) <> (site_id IS NULL)),"
    " CHECK ((user_id IS NULL) <> (group_id IS NULL)));"
    "CREATE UNIQUE INDEX grants_target_grantee ON grants"
    " (COALESCE(asset_id, site_id), COALESCE(user_id, group_id));"
    "CREATE INDEX grants_user ON grants(user_id);"
    "CREATE INDEX grants_group ON grants(group_id);"

    "CREATE TABLE profiles ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " native INTEGER NOT NULL CHECK (native BETWEEN 0 AND 2),"
    " shell INTEGER NOT NULL DEFAULT 0,"
    " exec INTEGER NOT NULL DEFAULT 0,"
    " sftp INTEGER NOT NULL DEFAULT 0,"
    " scp INTEGER NOT NULL DEFAULT 0,"
    " local_forward INTEGER NOT NULL DEFAULT 0,"
    " remote_forward INTEGER NOT NULL DEFAULT 0,"
    " agent_forward INTEGER NOT NULL DEFAULT 0,"
    " x11 INTEGER NOT NULL DEFAULT 0,"
    " max_session_minutes INTEGER NOT NULL DEFAULT 0,"
    " idle_timeout_minutes INTEGER NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL);"

    "CREATE TABLE profile_assignments ("
    " id TEXT PRIMARY KEY,"
    " profile_id TEXT NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,"
    " user_id TEXT REFERENCES users(id) ON DELETE CASCADE,"
    " group_id TEXT REFERENCES groups(id) ON DELETE CASCADE,"
    " CHECK ((user_id IS NULL) <> (group_id IS NULL)));"
    "CREATE UNIQUE INDEX profile_assignments_uniq ON profile_assignments"
    " (profile_id, COALESCE(user_id, group_id));"
    "CREATE INDEX profile_assignments_user ON profile_assignments(user_id);"
    "CREATE INDEX profile_assignments_group ON profile_assignments(group_id);"

    "CREATE TABLE sessions ("
    " id TEXT PRIMARY KEY,"
    " seq BIGINT NOT NULL,"
    " user_id TEXT NOT NULL DEFAULT '',"
    " user_name TEXT NOT NULL DEFAULT '',"
    " asset_id TEXT NOT NULL DEFAULT '',"
    " asset_name TEXT NOT NULL DEFAULT '',"
    " site TEXT NOT NULL DEFAULT '',"
    " kind TEXT NOT NULL DEFAULT '',"
    " client_addr TEXT NOT NULL DEFAULT '',"
    " route TEXT NOT NULL DEFAULT '',"
    " started_at BIGINT NOT NULL,"
    " ended_at BIGINT," /* NULL while open */
    " bytes_up BIGINT NOT NULL DEFAULT 0,"
    " bytes_down BIGINT NOT NULL DEFAULT 0,"
    " exit_status INTEGER NOT NULL DEFAULT -1,"
    " result TEXT NOT NULL DEFAULT '',"
    " detail TEXT NOT NULL DEFAULT '',"
    " recording_path TEXT NOT NULL DEFAULT '',"
    " recording_sha256 TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX sessions_started ON sessions(started_at, seq);"
    "CREATE INDEX sessions_seq ON sessions(seq);"
    "CREATE INDEX sessions_user ON sessions(user_name);"
    "CREATE INDEX sessions_asset ON sessions(asset_id);"
    "CREATE INDEX sessions_open ON sessions(ended_at) WHERE ended_at IS NULL;";

/*
 * Version 2: who may manage Portcullis (access.h). Site roles go to a user
 * or a group on a site, inherited by sub-sites; 1..4 are user, service,
 * configuration-manager, administrator (a set, not an order). API tokens
 * keep only a hash of the token's ID; revoked session tokens are kept
 * until they expire.
 */
static const char store_schema_v2[] =
    "CREATE TABLE site_roles ("
    " id TEXT PRIMARY KEY,"
    " site_id TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,"
    " user_id TEXT REFERENCES users(id) ON DELETE CASCADE,"
    " group_id TEXT REFERENCES groups(id) ON DELETE CASCADE,"
    " role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 4),"
    " created_at BIGINT NOT NULL,"
    " CHECK ((user_id IS NULL) <> (group_id IS NULL)));"
    "CREATE UNIQUE INDEX site_roles_uniq ON site_roles"
    " (site_id, COALESCE(user_id, group_id), role);"
    "CREATE INDEX site_roles_user ON site_roles(user_id);"
    "CREATE INDEX site_roles_group ON site_roles(group_id);"

    "CREATE TABLE api_tokens ("
    " id TEXT PRIMARY KEY,"
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " jti_hash TEXT NOT NULL UNIQUE,"
    " description TEXT NOT NULL DEFAULT '',"
    " filter_cidrs TEXT NOT NULL DEFAULT '',"
    " filter_paths TEXT NOT NULL DEFAULT '',"
    " enabled INTEGER NOT NULL DEFAULT 1,"
    " expires_at BIGINT NOT NULL,"
    " created_at BIGINT NOT NULL);"
    "CREATE INDEX api_tokens_user ON api_tokens(user_id);"

    "CREATE TABLE revoked_jwts ("
    " jti_hash TEXT PRIMARY KEY,"
    " expires_at BIGINT NOT NULL);";

/*
 * Version 3: the audit log (audit.h, store_audit.c) and what the session
 * report keeps about a recording.
 *
 * audit: one row per event, chained by hash; seq is the order of appending
 * (1, 2, ...). audit_head: exactly one row with the newest seq and hash,
 * updated in the same transaction as each append, so rows deleted from the
 * end of the log are noticed. It starts at seq 0 with no hash (a constant
 * row, not a value, so it is written here rather than by a hook).
 *
 * sessions: the recording's size in bytes, and when the retention sweep
 * deleted the file (NULL while it exists; path and SHA-256 are kept).
 */
static const char store_schema_v3[] =
    "CREATE TABLE audit ("
    " seq BIGINT PRIMARY KEY,"
    " time BIGINT NOT NULL,"
    " actor TEXT NOT NULL,"
    " source TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " detail TEXT NOT NULL,"
    " prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL);"
    "CREATE INDEX audit_time ON audit(time);"
    "CREATE INDEX audit_actor ON audit(actor);"

    "CREATE TABLE audit_head ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " seq BIGINT NOT NULL,"
    " hash TEXT NOT NULL);"
    "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');"

    "ALTER TABLE sessions ADD COLUMN recording_size BIGINT NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE sessions ADD COLUMN recording_deleted_at BIGINT;";

/* v4: access profiles may record terminal input too. */
static const char store_schema_v4[] =
    "ALTER TABLE profiles ADD COLUMN record_input INTEGER NOT NULL"
    " DEFAULT 0;";

/*
 * Version 5: the agent side (agents.h, store_agents.c; SPEC §6).
 *
 * credentials: an agent credential; only the argon2id hash of its secret.
 * agents: one row per agent ID ever announced, refreshed at each
 * announcement. credential_id names the credential it last used, without
 * a foreign key on purpose: deleting a credential keeps the agents' rows
 * (their history), it only stops them from logging in again. addresses and
 * tags are JSON arrays of strings.
 * tunnels: ON DELETE CASCADE from agents, so deleting an agent deletes its
 * tunnels in the same statement; a local port is unique per protocol
 * (one TCP and one UDP tunnel may share a number).
 */
static const char store_schema_v5[] =
    "CREATE TABLE credentials ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL DEFAULT '',"
    " secret_hash TEXT NOT NULL,"
    " created_by TEXT NOT NULL DEFAULT '',"
    " created_at BIGINT NOT NULL);"

    "CREATE TABLE agents ("
    " id TEXT PRIMARY KEY,"
    " credential_id TEXT NOT NULL DEFAULT '',"
    " name TEXT NOT NULL DEFAULT '',"
    " hostname TEXT NOT NULL DEFAULT '',"
    " os TEXT NOT NULL DEFAULT '',"
    " kernel TEXT NOT NULL DEFAULT '',"
    " arch TEXT NOT NULL DEFAULT '',"
    " version TEXT NOT NULL DEFAULT '',"
    " addresses TEXT NOT NULL DEFAULT '[]',"
    " tags TEXT NOT NULL DEFAULT '[]',"
    " remote_addr TEXT NOT NULL DEFAULT '',"
    " online INTEGER NOT NULL DEFAULT 0,"
    " first_seen BIGINT NOT NULL,"
    " connected_at BIGINT NOT NULL,"
    " last_seen BIGINT NOT NULL);"
    "CREATE INDEX agents_credential ON agents(credential_id);"

    "CREATE TABLE tunnels ("
    " id TEXT PRIMARY KEY,"
    " agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,"
    " protocol TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp')),"
    " remote_host TEXT NOT NULL,"
    " remote_port INTEGER NOT NULL CHECK (remote_port BETWEEN 1 AND 65535),"
    " local_port INTEGER NOT NULL CHECK (local_port BETWEEN 1 AND 65535),"
    " acl TEXT NOT NULL,"
    " idle_minutes INTEGER NOT NULL DEFAULT 0 CHECK (idle_minutes >= 0),"
    " created_by TEXT NOT NULL DEFAULT '',"
    " created_at BIGINT NOT NULL,"
    " state TEXT NOT NULL DEFAULT '',"
    " last_used BIGINT NOT NULL DEFAULT 0,"
    " UNIQUE (protocol, local_port));"
    "CREATE INDEX tunnels_agent ON tunnels(agent_id);";

/*
 * Version 6: an agent ID belongs to the credential that first announced
 * it (docs/agent.md). bound_credential is that credential's ID, or '' when
 * the ID is unbound (the next credential to announce it binds it); only an
 * administrator changes it (`portcullis agent rebind`). Agents announced
 * before this step are bound to the credential they last used.
 */
static const char store_schema_v6[] =
    "ALTER TABLE agents ADD COLUMN bound_credential TEXT NOT NULL"
    " DEFAULT '';"
    "UPDATE agents SET bound_credential = credential_id;";

/*
 * Version 7: peer nodes (store/peers.h), the main node's side of SPEC
 * section 7. The API token is sealed by the vault; via is "" or the
 * "peer:NAME" route through which the peer's proxy is reached.
 */
static const char store_schema_v7[] =
    "CREATE TABLE peers ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " host TEXT NOT NULL,"
    " port INTEGER NOT NULL,"
    " token_sealed BLOB NOT NULL,"
    " tls_fingerprint TEXT NOT NULL DEFAULT '',"
    " plain_http INTEGER NOT NULL DEFAULT 0,"
    " via TEXT NOT NULL DEFAULT '',"
    " created_at INTEGER NOT NULL);";

/*
 * Version 8: what a directory says of a domain user (issue 16): display
 * name and mail, refreshed at each directory login; "" for local users.
 */
static const char store_schema_v8[] =
    "ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE users ADD COLUMN mail TEXT NOT NULL DEFAULT '';";

/*
 * Version 9: jobs (store/jobs.h, issue 14): commands run on agents.
 * exit_code is NULL when the command did not exit (refused, timeout,
 * killed by a signal); stdout and stderr are the captured bytes.
 */
static const char store_schema_v9[] =
    "CREATE TABLE jobs ("
    " id TEXT PRIMARY KEY,"
    " started_by TEXT NOT NULL DEFAULT '',"
    " agent_id TEXT NOT NULL,"
    " command TEXT NOT NULL,"
    " cwd TEXT NOT NULL DEFAULT '',"
    " timeout INTEGER NOT NULL,"
    " status TEXT NOT NULL,"
    " exit_code INTEGER,"
    " signal INTEGER NOT NULL DEFAULT 0,"
    " why TEXT NOT NULL DEFAULT '',"
    " started_at BIGINT NOT NULL,"
    " finished_at BIGINT NOT NULL DEFAULT 0,"
    " stdout BLOB,"
    " stderr BLOB);"
    "CREATE INDEX jobs_started ON jobs(started_at);";

/*
 * Version 10: tunnels through a peer node (issue 15). A tunnel goes
 * either through an agent (agent_id, peer '') or through the peer node
 * named peer (agent_id NULL, so no foreign key applies); the CHECK keeps
 * it one or the other. SQL cannot drop a NOT NULL portably, so the table
 * is rebuilt and its rows copied.
 */
static const char store_schema_v10[] =
    "CREATE TABLE tunnels_v10 ("
    " id TEXT PRIMARY KEY,"
    " agent_id TEXT REFERENCES agents(id) ON DELETE CASCADE,"
    " peer TEXT NOT NULL DEFAULT '',"
    " protocol TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp')),"
    " remote_host TEXT NOT NULL,"
    " remote_port INTEGER NOT NULL CHECK (remote_port BETWEEN 1 AND 65535),"
    " local_port INTEGER NOT NULL CHECK (local_port BETWEEN 1 AND 65535),"
    " acl TEXT NOT NULL,"
    " idle_minutes INTEGER NOT NULL DEFAULT 0 CHECK (idle_minutes >= 0),"
    " created_by TEXT NOT NULL DEFAULT '',"
    " created_at BIGINT NOT NULL,"
    " state TEXT NOT NULL DEFAULT '',"
    " last_used BIGINT NOT NULL DEFAULT 0,"
    " UNIQUE (protocol, local_port),"
    " CHECK ((agent_id IS NULL AND peer <> '')"
    " OR (agent_id IS NOT NULL AND peer = '')));"
    "INSERT INTO tunnels_v10 (id, agent_id, protocol, remote_host,"
    " remote_port, local_port, acl, idle_minutes, created_by, created_at,"
    " state, last_used)"
    " SELECT id, agent_id, protocol, remote_host, remote_port, local_port,"
    " acl, idle_minutes, created_by, created_at, state, last_used"
    " FROM tunnels;"
    "DROP TABLE tunnels;"
    "ALTER TABLE tunnels_v10 RENAME TO tunnels;"
    "CREATE INDEX tunnels_agent ON tunnels(agent_id);"
    "CREATE INDEX tunnels_peer ON tunnels(peer);";

/*
 * Version 11: the NT hash of a user's password (MD4 of its UTF-16LE form),
 * sealed by the vault ("user-nthash:<user id>"): what the RDP proxy's
 * NLA front needs (docs/rdp.md). NULL until the password is set or used
 * once after this version; a new password clears it.
 */
static const char store_schema_v11[] =
    "ALTER TABLE users ADD COLUMN nt_sealed BLOB;";

/*
 * Version 12: the nodes of a cluster (store/nodes.h, issue 18), and which
 * node holds each agent, each open report row and each running job (""
 * for none).
 */
static const char store_schema_v12[] =
    "CREATE TABLE nodes ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " addresses TEXT NOT NULL DEFAULT '',"
    " version TEXT NOT NULL DEFAULT '',"
    " started_at BIGINT NOT NULL,"
    " heartbeat_at BIGINT NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'up',"
    " reaped_by TEXT NOT NULL DEFAULT '');"
    "ALTER TABLE agents ADD COLUMN node TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE sessions ADD COLUMN node TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN node TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX sessions_node_open ON sessions(node, ended_at);";

/*
 * Version 13: jobs on many agents and scripts (issue 14). batch_id groups
 * the jobs of one run (one per agent, batch_seq their order: the targets'
 * order, which is the order they start in), concurrency is the most of a batch
 * running at once (0: no limit), stop_on_failure skips the batch's queued
 * jobs after a failure; interpreter is set for a script, whose body is in
 * script (command then holds a summary with its SHA-256); recoverable
 * marks a lost job whose agent may still hand its result over when it
 * comes back (asked once); push is a file push's parameters (JSON), its
 * bytes stored once per batch in job_payloads. schedules: a job on a
 * cron expression (store/schedules.h). client_groups: agents by ID
 * (static) and by patterns (dynamic), usable as targets.
 */
static const char store_schema_v13[] =
    "ALTER TABLE jobs ADD COLUMN batch_id TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN batch_seq INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN concurrency INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN stop_on_failure INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN interpreter TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE jobs ADD COLUMN script TEXT;"
    "ALTER TABLE jobs ADD COLUMN recoverable INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN push TEXT;"
    "CREATE TABLE job_payloads ("
    " batch_id TEXT PRIMARY KEY,"
    " data BLOB NOT NULL);"
    "CREATE TABLE schedules ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " cron TEXT NOT NULL,"
    " agents TEXT NOT NULL DEFAULT '[]',"
    " tags TEXT NOT NULL DEFAULT '[]',"
    " command TEXT NOT NULL DEFAULT '',"
    " interpreter TEXT NOT NULL DEFAULT '',"
    " script TEXT,"
    " cwd TEXT NOT NULL DEFAULT '',"
    " timeout INTEGER NOT NULL,"
    " concurrency INTEGER NOT NULL DEFAULT 0,"
    " created_by TEXT NOT NULL DEFAULT '',"
    " created_at BIGINT NOT NULL,"
    " last_fire BIGINT NOT NULL DEFAULT 0,"
    " fired BIGINT NOT NULL DEFAULT 0,"
    " missed BIGINT NOT NULL DEFAULT 0,"
    " last_missed_at BIGINT NOT NULL DEFAULT 0,"
    " last_batch TEXT NOT NULL DEFAULT '',"
    " groups TEXT NOT NULL DEFAULT '[]');"
    "CREATE TABLE client_groups ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " description TEXT NOT NULL DEFAULT '',"
    " agents TEXT NOT NULL DEFAULT '[]',"
    " rules TEXT NOT NULL DEFAULT '{}',"
    " created_by TEXT NOT NULL DEFAULT '',"
    " created_at BIGINT NOT NULL);"
    "CREATE INDEX jobs_batch ON jobs(batch_id);";

/*
 * Version 14: job roles (client_groups.h): job-runner, job-pusher and
 * job-scheduler (1..3) granted to a user or a group for one client group;
 * a schedule keeps its API creator's user ID, whose rights each firing
 * has ('' for the local CLI's).
 */
static const char store_schema_v14[] =
    "CREATE TABLE job_roles ("
    " id TEXT PRIMARY KEY,"
    " client_group_id TEXT NOT NULL REFERENCES client_groups(id)"
    "  ON DELETE CASCADE,"
    " user_id TEXT REFERENCES users(id) ON DELETE CASCADE,"
    " group_id TEXT REFERENCES groups(id) ON DELETE CASCADE,"
    " role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 3),"
    " created_at BIGINT NOT NULL,"
    " CHECK ((user_id IS NULL) <> (group_id IS NULL)));"
    "CREATE UNIQUE INDEX job_roles_uniq ON job_roles"
    " (client_group_id, COALESCE(user_id, group_id), role);"
    "CREATE INDEX job_roles_user ON job_roles(user_id);"
    "CREATE INDEX job_roles_group ON job_roles(group_id);"
    "ALTER TABLE schedules ADD COLUMN created_by_id TEXT NOT NULL"
    " DEFAULT '';";

/* Version 15 (issue 14): a schedule may be disabled (it then neither
 * fires nor counts missed firings). */
static const char store_schema_v15[] =
    "ALTER TABLE schedules ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1;";

/*
 * Version 16: a job may run through sudo as another account on the agent
 * (issue 14; docs/agent.md "sudo"): sudo names it, "" for none.
 */
static const char store_schema_v16[] =
    "ALTER TABLE jobs ADD COLUMN sudo TEXT NOT NULL DEFAULT '';";

/*
 * Version 17: a report row names the node that held the agent when the
 * session reached it through another node of the cluster (the node:
 * route); '' when the session's own node held it, or no agent was used.
 */
static const char store_schema_v17[] =
    "ALTER TABLE sessions ADD COLUMN agent_node TEXT NOT NULL DEFAULT '';";

/*
 * Version 18 (issue 17): an access profile's RDP virtual channels. The
 * clipboard (without files) and audio out are on, files on the
 * clipboard, drive and printer redirection off, for existing profiles
 * as for new ones.
 */
static const char store_schema_v18[] =
    "ALTER TABLE profiles ADD COLUMN rdp_clipboard_text INTEGER NOT NULL"
    " DEFAULT 1;"
    "ALTER TABLE profiles ADD COLUMN rdp_clipboard_files INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE profiles ADD COLUMN rdp_audio INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE profiles ADD COLUMN rdp_drive INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE profiles ADD COLUMN rdp_printer INTEGER NOT NULL DEFAULT 0;";

/*
 * Version 19 (issue 17): an access profile's switch for RDP sessions at
 * all, as shell, exec, sftp and scp are for SSH. On, for existing
 * profiles as for new ones: native allow/record was all RDP needed.
 */
static const char store_schema_v19[] =
    "ALTER TABLE profiles ADD COLUMN rdp INTEGER NOT NULL DEFAULT 1;";

/*
 * Version 20 (issue 14): a job's output as appended chunks. Live output
 * used to rewrite jobs.stdout and jobs.stderr whole on every progress
 * write; now each write adds the new bytes only: one row per stream
 * (1 stdout, 2 stderr) and write, pos its offset in the stream. A job's
 * output is its chunks in pos order (store_jobs.c). The output of jobs
 * that already exist moves into one chunk each; the old columns stay,
 * NULL (SQL cannot drop a column portably).
 */
static const char store_schema_v20[] =
    "CREATE TABLE job_output ("
    " job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    " stream INTEGER NOT NULL CHECK (stream IN (1, 2)),"
    " pos BIGINT NOT NULL CHECK (pos >= 0),"
    " data BLOB NOT NULL,"
    " PRIMARY KEY (job_id, stream, pos));"
    "INSERT INTO job_output (job_id, stream, pos, data)"
    " SELECT id, 1, 0, stdout FROM jobs"
    " WHERE stdout IS NOT NULL AND length(stdout) > 0;"
    "INSERT INTO job_output (job_id, stream, pos, data)"
    " SELECT id, 2, 0, stderr FROM jobs"
    " WHERE stderr IS NOT NULL AND length(stderr) > 0;"
    "UPDATE jobs SET stdout = NULL, stderr = NULL"
    " WHERE stdout IS NOT NULL OR stderr IS NOT NULL;";

const struct store_migration store_migrations[] = {
    {1, store_schema_v1, STORE_HOOK_ROOT_SITE},
    {2, store_schema_v2, STORE_HOOK_NONE},
    {3, store_schema_v3, STORE_HOOK_NONE},
    {4, store_schema_v4, STORE_HOOK_NONE},
    {5, store_schema_v5, STORE_HOOK_NONE},
    {6, store_schema_v6, STORE_HOOK_NONE},
    {7, store_schema_v7, STORE_HOOK_NONE},
    {8, store_schema_v8, STORE_HOOK_NONE},
    {9, store_schema_v9, STORE_HOOK_NONE},
    {10, store_schema_v10, STORE_HOOK_NONE},
    {11, store_schema_v11, STORE_HOOK_NONE},
    {12, store_schema_v12, STORE_HOOK_NONE},
    {13, store_schema_v13, STORE_HOOK_NONE},
    {14, store_schema_v14, STORE_HOOK_NONE},
    {15, store_schema_v15, STORE_HOOK_NONE},
    {16, store_schema_v16, STORE_HOOK_NONE},
    {17, store_schema_v17, STORE_HOOK_NONE},
    {18, store_schema_v18, STORE_HOOK_NONE},
    {19, store_schema_v19, STORE_HOOK_NONE},
    {20, store_schema_v20, STORE_HOOK_NONE},
};

const size_t store_migrations_count =
    sizeof(store_migrations) / sizeof(store_migrations[0]);
