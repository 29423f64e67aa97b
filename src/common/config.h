/*
 * portcullis.conf: an INI file written by `portcullis init` and read by
 * every command. Relative paths in it are taken relative to the directory
 * of the file itself, so a data directory can be moved as a whole.
 *
 *   [server]  data_dir, log_level
 *   [ssh]     listen, port, host_key, max_startups, max_sessions,
 *             login_grace_seconds, connect_timeout_seconds, privsep_user
 *   [http]    listen, port, tls_cert, tls_key, allow_plain_http,
 *             jwt_secret, session_minutes, max_body_bytes,
 *             max_connections_per_source, timeout_seconds, web_root
 *   [store]   driver (sqlite), path
 *   [vault]   key_file
 *   [auth]    max_failures, failure_window_seconds, lockout_seconds,
 *             failure_delay_ms
 *   [record]  dir (recordings), retention_days (0 = keep forever)
 *
 * Booleans are written `true` or `false`.
 *
 * Ownership: config_load() fills a struct config the caller releases with
 * config_free(); all strings are heap copies.
 */
#ifndef PORTCULLIS_CONFIG_H
#define PORTCULLIS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct config {
    char *path;     /* absolute path of the file loaded */
    char *data_dir; /* absolute */
    char *log_level;

    char *ssh_listen;            /* address the SSH proxy binds */
    int ssh_port;                /* default 2203 */
    char *ssh_host_key;          /* ed25519 private key, absolute path */
    int max_startups;            /* concurrent unauthenticated children */
    int max_sessions;            /* concurrent children in all */
    int login_grace_seconds;     /* time allowed to authenticate */
    int connect_timeout_seconds; /* upstream TCP connect */
    char *privsep_user;     /* children drop to this user when run as root */
    char *client_ciphers;   /* offered to users' clients (client leg) */
    char *upstream_ciphers; /* preferred towards targets (upstream leg) */

    char *http_listen;
    int http_port;                 /* default 8080 */
    char *http_tls_cert;           /* PEM certificate; NULL = plain HTTP */
    char *http_tls_key;            /* its private key */
    bool http_allow_plain_http;    /* plain HTTP off loopback (default no) */
    char *http_jwt_secret;         /* HS256 key file (made on first use) */
    int http_session_minutes;      /* lifetime of a login's session JWT */
    int http_max_body;             /* largest request body accepted */
    int http_max_conns_per_source; /* open connections per client address */
    int http_timeout_seconds;      /* idle / request deadline */
    char *http_web_root; /* the built web UI served at / (web/dist); default
                            the build's, PORTCULLIS_WEB_ROOT from meson */

    char *store_driver; /* "sqlite" */
    char *store_path;   /* absolute */

    char *vault_key; /* absolute path of the 32-byte vault key */

    int max_failures;           /* failed logins before a lockout */
    int failure_window_seconds; /* window in which they count */
    int lockout_seconds;        /* how long a lockout lasts */
    int failure_delay_ms;       /* delay before a failure is answered */

    char *record_dir;          /* absolute; session recordings */
    int record_retention_days; /* 0 = keep forever */

    /* agents (the hub, src/hub/) */
    int agent_keepalive_seconds; /* WebSocket ping after this much silence */
    int agent_timeout_seconds;   /* silent this long: the agent is dead */
    int agent_max;               /* agents connected at once */

    /* tunnels to agents' sides (src/hub/tunnel.c) */
    char *tunnel_listen; /* address tunnel listeners bind */
    int tunnel_port_min; /* the range tunnel ports come from */
    int tunnel_port_max;
    int tunnel_udp_flow_seconds; /* a UDP flow without datagrams ends */
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
void config_free(struct config *cfg);

#endif
