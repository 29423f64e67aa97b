/*
 * portcullis.conf: an INI file written by `portcullis init` and read by
 * every command. Relative paths in it are taken relative to the directory
 * of the file itself, so a data directory can be moved as a whole.
 *
 *   [server]  data_dir, log_level
 *   [ssh]     listen, port, host_key, host_key_ecdsa, host_key_rsa,
 *             max_startups (N or start:rate:full), max_startups_per_source,
 *             max_auth_tries, max_sessions, login_grace_seconds,
 *             connect_timeout_seconds, privsep_user, banner, banner_file,
 *             client_ciphers, client_macs, client_kex, hostkey_algorithms,
 *             upstream_ciphers, upstream_macs, upstream_kex,
 *             upstream_hostkey_algorithms
 *   [http]    listen, port, tls_cert, tls_key, allow_plain_http,
 *             jwt_secret, session_minutes, max_body_bytes,
 *             max_connections_per_source, timeout_seconds, web_root
 *   [http_proxy] enabled, listen, port, tls, tls_cert, tls_key, allow,
 *             max_connections, max_connections_per_source,
 *             timeout_seconds, connect_timeout_seconds (the peer-node
 *             CONNECT proxy, off by default)
 *   [rdp]     enabled, listen, port, tls_cert, tls_key (the RDP proxy,
 *             off by default; docs/rdp.md)
 *   [store]   driver (sqlite), path
 *   [vault]   key_file
 *   [auth]    max_failures, failure_window_seconds, lockout_seconds,
 *             failure_delay_ms, max_concurrent_hashes,
 *             password_memory_kib, password_passes (the argon2id cost
 *             of password hashes made from now on; at least OWASP's
 *             minimum, config_check_password_cost)
 *   [record]  dir (recordings), retention_days (0 = keep forever),
 *             rdp_max_mb, ssh_max_mb (an RDP / SSH recording's size
 *             limit, MiB)
 *   [node]    name, heartbeat_seconds, dead_after_seconds (a node of a
 *             cluster on a shared store, store/nodes.h)
 *   [directory "NAME"]  any keys: kept as written (struct config_subkey)
 *             for the module that owns the kind, src/auth/directory_conf.c,
 *             which checks them
 *
 * Booleans are written `true` or `false`. Algorithm lists are comma-
 * separated SSH names, checked at load against what libssh 0.10 can do
 * (config_weak_algorithms() names the ones below OpenSSH's defaults). An
 * empty host_key_ecdsa / host_key_rsa / banner_file means none.
 *
 * Ownership: config_load() fills a struct config the caller releases with
 * config_free(); all strings are heap copies.
 */
#ifndef PORTCULLIS_CONFIG_H
#define PORTCULLIS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/*
 * One key of a quoted subsection, [KIND "NAME"] (only the kinds in
 * config.c's config_subsection_kinds[]): kept as written, in file order,
 * for the module that owns the kind to check and use; a header alone is
 * kept as a key "" so that an empty section is seen too.
 */
struct config_subkey {
    char *kind;  /* "directory" */
    char *name;  /* what the quotes held */
    char *key;   /* "" for the header */
    char *value; /* trimmed; quotes are the owner's business */
    int line;
};

struct config {
    char *path;     /* absolute path of the file loaded */
    char *data_dir; /* absolute */
    char *log_level;

    char *ssh_listen;            /* address the SSH proxy binds */
    int ssh_port;                /* default 2203 */
    char *ssh_host_key;          /* ed25519 private key, absolute path;
                                    the key agents pin */
    char *ssh_host_key_ecdsa;    /* ECDSA P-256 key for users' clients,
                                    absolute path, or NULL for none */
    char *ssh_host_key_rsa;      /* RSA 3072 key, absolute path, or NULL */
    int max_startups;            /* full: unauthenticated children (of
                                    start:rate:full, sshproxy/preauth.h) */
    int max_startups_begin;      /* start: random early drop from here */
    int max_startups_rate;       /* rate: drop percentage at start */
    int max_startups_per_source; /* unauthenticated children per source */
    int max_auth_tries;          /* failed attempts per connection */
    int max_sessions;            /* concurrent children in all */
    int login_grace_seconds;     /* time allowed to authenticate */
    int connect_timeout_seconds; /* upstream TCP connect */
    char *privsep_user; /* children drop to this user when run as root */
    /* Offered to users' clients (the client leg); the client's order
     * decides, so these are sets. */
    char *client_ciphers;
    char *client_macs;
    char *client_kex;
    char *hostkey_algorithms;
    /* Offered towards targets (the upstream leg), in our order of
     * preference; upstream_ciphers also goes to agents (hub.c). */
    char *upstream_ciphers;
    char *upstream_macs;
    char *upstream_kex;
    char *upstream_hostkey_algorithms;
    char *ssh_banner;      /* text sent before login; NULL = none */
    char *ssh_banner_file; /* or a file's, read by serve; NULL = none */

    char *http_listen;
    int http_port;                 /* default 8080 */
    char *http_tls_cert;           /* PEM certificate; NULL = plain HTTP */
    char *http_tls_key;            /* its private key */
    bool http_allow_plain_http;    /* plain HTTP off loopback (default no) */
    char *http_jwt_secret;         /* HS256 key file (made on first use) */
    int http_session_minutes;      /* lifetime of a login's session JWT */
    int http_max_body;             /* largest request body accepted */
    int http_max_conns_per_source; /* open connections per client address */
    /* WebSockets (/agent, terminal) not yet authenticated, per address */
    int http_max_preauth_ws_per_source;
    int http_timeout_seconds; /* idle / request deadline */
    char *http_web_root; /* the built web UI served at / (web/dist); default
                            the build's, PORTCULLIS_WEB_ROOT from meson */

    /* [http_proxy]: the peer-node CONNECT proxy (http/http_proxy.h) */
    bool http_proxy_enabled;        /* default off */
    char *http_proxy_listen;        /* IP address or *; default 127.0.0.1 */
    int http_proxy_port;            /* default 3128 */
    bool http_proxy_tls;            /* default on */
    char *http_proxy_tls_cert;      /* default the node's tls.crt (init's) */
    char *http_proxy_tls_key;       /* and tls.key */
    char *http_proxy_allow;         /* destinations; "" = none */
    int http_proxy_max_connections; /* open at once, default 1024 */
    int http_proxy_max_per_source;  /* per client address, default 64 */
    int http_proxy_timeout_seconds; /* TLS handshake + request, default 10 */
    int http_proxy_connect_timeout_seconds; /* to the destination, 10 */

    /* [rdp]: the RDP proxy (rdpproxy/rdp_server.h), off by default */
    bool rdp_enabled;
    char *rdp_listen;   /* default 127.0.0.1 */
    int rdp_port;       /* default 3317 */
    char *rdp_tls_cert; /* default the node's tls.crt (init's) */
    char *rdp_tls_key;  /* and tls.key */
    /* bulk compression (MPPC/XCRUSH) of what goes to the client, when
     * the client asks for it; default true (docs/operations.md) */
    bool rdp_compression;
    /* also accept clients that log in inside TLS without NLA (the
     * password in the Client Info PDU); off by default */
    bool rdp_tls_logins;

    char *store_driver; /* "sqlite", or "postgresql" when url is set */
    /* absolute; with [store] url set, that URL (what store_open() takes) */
    char *store_path;
    char *store_url; /* "" or "postgresql://..." (no password in it) */
    /* absolute path of the audit log's key; "" (SQLite): audit.key beside
     * the database file; with url set it defaults to data_dir/audit.key */
    char *store_audit_key;
    /* what is kept in memory while the store does not answer (a
     * PostgreSQL outage), to be written when it does: tunnel report rows
     * (hub/tunnel.c) and audit events (store/audit.h); beyond, counted */
    int store_outage_rows;
    /* the longest the server's loop waits for one statement's answer
     * (PostgreSQL; store.h, store_reconnect_off_loop) */
    int store_statement_deadline_ms;
    int store_outage_audit_events;

    char *vault_key; /* absolute path of the 32-byte vault key */

    int max_failures;           /* failed logins before a lockout */
    int failure_window_seconds; /* window in which they count */
    int lockout_seconds;        /* how long a lockout lasts */
    int failure_delay_ms;       /* delay before a failure is answered */
    int max_concurrent_hashes;  /* pre-auth argon2id runs at once */
    int password_memory_kib;    /* argon2id memory of new hashes, KiB */
    int password_passes;        /* argon2id passes (t) of new hashes */

    char *record_dir;          /* absolute; session recordings */
    int record_retention_days; /* 0 = keep forever */
    int record_rdp_max_mb;     /* an RDP recording's size limit, MiB */
    int record_ssh_max_mb;     /* an SSH recording's size limit, MiB */

    /* agents (the hub, src/hub/) */
    int agent_keepalive_seconds; /* WebSocket ping after this much silence */
    int agent_timeout_seconds;   /* silent this long: the agent is dead */
    int agent_max;               /* agents connected at once */
    /* schedules: the real seconds one minute of the schedule clock lasts
     * (60; shorter only for tests) */
    int jobs_schedule_minute_seconds;
    int jobs_retention_days; /* finished jobs older than this go; 0: kept */

    /* this node of a cluster (store/nodes.h, daemon/daemon.c) */
    char *node_name;             /* NULL = the host name */
    int node_heartbeat_seconds;  /* how often the node's row is refreshed */
    int node_dead_after_seconds; /* a heartbeat older: the node is dead */

    /* tunnels to agents' sides (src/hub/tunnel.c) */
    char *tunnel_listen; /* address tunnel listeners bind */
    int tunnel_port_min; /* the range tunnel ports come from */
    int tunnel_port_max;
    int tunnel_udp_flow_seconds; /* a UDP flow without datagrams ends */

    /* pairing (src/http/http_pair.c) */
    char *pairing_url;          /* base URL in answers; NULL: from Host */
    char *pairing_agent_binary; /* the static agent; NULL: beside us */
    int pairing_code_seconds;   /* a code's life */

    /* [directory "NAME"] sections, unchecked (auth/directory_conf.h) */
    struct config_subkey *subkeys;
    size_t nsubkeys;
};

/* Loads path; on error returns ERR_CONFIG and writes a one-line reason
 * (with the line number) into why. */
int config_load(const char *path, struct config *cfg, char *why, size_t whylen);
/* As config_load(), from len bytes of text in memory (the fuzz target,
 * tests); path is the absolute name it stands for: relative paths in it
 * are taken from its directory, messages name it. Nothing is read from
 * disk. */
int config_parse_text(const char *text, size_t len, const char *path,
                      struct config *cfg, char *why, size_t whylen);
/* Fills cfg with the embedded defaults for a data directory. */
int config_defaults(struct config *cfg, const char *data_dir);
/* ERR_OK when url may be [store] url: postgresql:// or postgres://, no
 * spaces or control characters, no password (user:pw@ or password=);
 * otherwise ERR_CONFIG and why (which never quotes the URL). */
int config_store_url_check(const char *url, char *why, size_t whylen);
/* The node's name: [node] name, else the host's name, else "node". */
void config_node_name(const struct config *cfg, char *out, size_t outlen);
void config_free(struct config *cfg);

/*
 * The table-driven reader both configuration files go through:
 * portcullis.conf (config_keys in config.c) and the agent's file
 * (agent/agent_conf.c). A file is lines of `key = value`, blank lines and
 * comments (`#` or `;` first); with sections, `[name]` lines start one.
 * Each key is one row: where it lives (offset into the caller's struct),
 * its kind and limits, or a setter of its own for what a kind cannot
 * say. Every refusal is one line, "FILE:LINE: what".
 */
enum config_kind {
    CK_STR,     /* a heap copy (hi > 0: at most hi characters) */
    CK_PATH,    /* a heap copy, relative to the file's directory */
    CK_INT,     /* an int from lo to hi */
    CK_BOOL,    /* true or false */
    CK_OPTSTR,  /* CK_STR, or NULL for an empty value */
    CK_OPTPATH, /* CK_PATH, or NULL for an empty value */
    CK_FN,      /* the row's set() parses and stores */
};

struct config_key {
    const char *section; /* "" in a file without sections */
    const char *key;
    enum config_kind kind;
    size_t off; /* offsetof the field in the caller's struct */
    int lo, hi;
    /* CK_FN: stores v into obj, or returns ERR_CONFIG with the reason
     * (without file and line) in why, or ERR_NOMEM. */
    int (*set)(void *obj, const struct config_key *k, const char *v, char *why,
               size_t whylen);
};

struct config_schema {
    const struct config_key *keys;
    size_t nkeys;
    bool sections;   /* [section] lines; without, every key is in "" */
    bool no_control; /* values with control characters are refused */
    /* [KIND "NAME"] sections (NULL: none): subsection() recognises a
     * header's text (modifying it; *kind, *name point into it), subkey()
     * keeps each of its lines (and the header, with key ""), as written,
     * for the module that owns the kind */
    bool (*subsection)(char *hdr, const char **kind, const char **name);
    int (*subkey)(void *obj, const char *kind, const char *name,
                  const char *key, const char *value, int line);
};

/* Sets one key by its table row (a file line; the agent's flags too).
 * dir: base of relative paths (NULL: taken as given). ERR_NOT_FOUND when
 * the table has no such key (why untouched), ERR_CONFIG with the reason in
 * why, ERR_NOMEM. */
int config_set_key(const struct config_schema *sc, void *obj,
                   const char *section, const char *key, const char *v,
                   const char *dir, char *why, size_t whylen);
/* Reads every line of f into obj; messages name path and the line. The
 * line buffer is wiped after use (a line may hold a secret). */
int config_read_lines(const struct config_schema *sc, FILE *f, const char *path,
                      const char *dir, void *obj, char *why, size_t whylen);

/* Writes into out (always terminated) the algorithms cfg enables that
 * OpenSSH does not offer by default, as "NAME ([ssh] KEY), ..."; returns
 * how many there are (0: out is ""). serve logs them as a warning. */
int config_weak_algorithms(const struct config *cfg, char *out, size_t outlen);

#endif
