/*
 * Loader for portcullis.conf; see config.h. The file is written by the
 * administrator, not a peer, but a typo still gets a line-numbered error
 * instead of a silent default.
 */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"

/*
 * SSH algorithms. The floor is compatibility: by default both legs offer
 * what OpenSSH 9.2 (Debian 12) offers, as far as libssh 0.10 can do it
 * (no UMAC, no sntrup761 key exchange), so every client stack in common
 * use connects (SPEC section 11). On the client leg the client's order
 * decides, so the lists are sets there; towards targets ours decides, and
 * AES-GCM comes first because it is cheapest on CPUs with AES
 * instructions (bench/README.md): a preference by order, never a narrower
 * offer. Names an operator may add beyond these are in config_algos[]
 * with weak set, and serve warns about them at start.
 */
#define CONFIG_CLIENT_CIPHERS                                                  \
    "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"          \
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com"
#define CONFIG_UPSTREAM_CIPHERS                                                \
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,"                           \
    "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr"
#define CONFIG_MACS                                                            \
    "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,"             \
    "hmac-sha1-etm@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1"
#define CONFIG_KEX                                                             \
    "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,"       \
    "ecdh-sha2-nistp384,ecdh-sha2-nistp521,"                                   \
    "diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,"      \
    "diffie-hellman-group18-sha512,diffie-hellman-group14-sha256"
#define CONFIG_HOSTKEY_ALGORITHMS                                              \
    "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521," \
    "rsa-sha2-512,rsa-sha2-256"

enum config_algo_kind { CA_CIPHER, CA_MAC, CA_KEX, CA_HOSTKEY };

/* Every name libssh 0.10 (built with OpenSSL, as Debian's is) negotiates.
 * weak: OpenSSH no longer offers it by default (CBC modes, SHA-1 key
 * exchanges and signatures, 1024-bit groups). */
static const struct config_algo {
    const char *name;
    enum config_algo_kind kind;
    bool weak;
} config_algos[] = {
    {"chacha20-poly1305@openssh.com", CA_CIPHER, false},
    {"aes128-gcm@openssh.com", CA_CIPHER, false},
    {"aes256-gcm@openssh.com", CA_CIPHER, false},
    {"aes128-ctr", CA_CIPHER, false},
    {"aes192-ctr", CA_CIPHER, false},
    {"aes256-ctr", CA_CIPHER, false},
    {"aes128-cbc", CA_CIPHER, true},
    {"aes192-cbc", CA_CIPHER, true},
    {"aes256-cbc", CA_CIPHER, true},
    {"3des-cbc", CA_CIPHER, true},
    {"hmac-sha2-256-etm@openssh.com", CA_MAC, false},
    {"hmac-sha2-512-etm@openssh.com", CA_MAC, false},
    {"hmac-sha1-etm@openssh.com", CA_MAC, false},
    {"hmac-sha2-256", CA_MAC, false},
    {"hmac-sha2-512", CA_MAC, false},
    {"hmac-sha1", CA_MAC, false},
    {"curve25519-sha256", CA_KEX, false},
    {"curve25519-sha256@libssh.org", CA_KEX, false},
    {"ecdh-sha2-nistp256", CA_KEX, false},
    {"ecdh-sha2-nistp384", CA_KEX, false},
    {"ecdh-sha2-nistp521", CA_KEX, false},
    {"diffie-hellman-group-exchange-sha256", CA_KEX, false},
    {"diffie-hellman-group16-sha512", CA_KEX, false},
    {"diffie-hellman-group18-sha512", CA_KEX, false},
    {"diffie-hellman-group14-sha256", CA_KEX, false},
    {"diffie-hellman-group14-sha1", CA_KEX, true},
    {"diffie-hellman-group-exchange-sha1", CA_KEX, true},
    {"diffie-hellman-group1-sha1", CA_KEX, true},
    {"ssh-ed25519", CA_HOSTKEY, false},
    {"ecdsa-sha2-nistp256", CA_HOSTKEY, false},
    {"ecdsa-sha2-nistp384", CA_HOSTKEY, false},
    {"ecdsa-sha2-nistp521", CA_HOSTKEY, false},
    {"rsa-sha2-512", CA_HOSTKEY, false},
    {"rsa-sha2-256", CA_HOSTKEY, false},
    {"ssh-rsa", CA_HOSTKEY, true},
};

static const char *const config_algo_what[] = {
    [CA_CIPHER] = "cipher",
    [CA_MAC] = "MAC",
    [CA_KEX] = "key exchange",
    [CA_HOSTKEY] = "host key algorithm",
};

/* The [ssh] keys that hold algorithm lists. */
static const struct config_algo_key {
    const char *key;
    size_t off;
    enum config_algo_kind kind;
} config_algo_keys[] = {
    {"client_ciphers", offsetof(struct config, client_ciphers), CA_CIPHER},
    {"client_macs", offsetof(struct config, client_macs), CA_MAC},
    {"client_kex", offsetof(struct config, client_kex), CA_KEX},
    {"hostkey_algorithms", offsetof(struct config, hostkey_algorithms),
     CA_HOSTKEY},
    {"upstream_ciphers", offsetof(struct config, upstream_ciphers), CA_CIPHER},
    {"upstream_macs", offsetof(struct config, upstream_macs), CA_MAC},
    {"upstream_kex", offsetof(struct config, upstream_kex), CA_KEX},
    {"upstream_hostkey_algorithms",
     offsetof(struct config, upstream_hostkey_algorithms), CA_HOSTKEY},
};

#define CONFIG_NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int config_set_str(char **dst, const char *v)
{
    char *s = strdup(v);

    if (s == NULL) {
        return ERR_NOMEM;
    }
    free(*dst);
    *dst = s;
    return ERR_OK;
}

/* Joins a relative path onto base; absolute paths pass unchanged. */
static int config_set_path(char **dst, const char *base, const char *v)
{
    char *s;
    size_t n;

    if (v[0] == '/' || base == NULL) {
        return config_set_str(dst, v);
    }
    n = strlen(base) + 1 + strlen(v) + 1;
    if ((s = malloc(n)) == NULL) {
        return ERR_NOMEM;
    }
    snprintf(s, n, "%s/%s", base, v);
    free(*dst);
    *dst = s;
    return ERR_OK;
}

static int config_parse_int(const char *v, int lo, int hi, int *out)
{
    char *end = NULL;
    long x;

    errno = 0;
    x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
        return ERR_CONFIG;
    }
    *out = (int)x;
    return ERR_OK;
}

/*
 * [ssh] max_startups: "N" (refuse from N unauthenticated connections on)
 * or OpenSSH's "start:rate:full" (random early drop), with
 * lo <= start <= full <= hi and 1 <= rate <= 100.
 */
static int config_parse_startups(const char *v, int lo, int hi,
                                 struct config *cfg)
{
    char a[16], b[16], c[16];
    int start, rate, full;

    if (strchr(v, ':') == NULL) {
        if (config_parse_int(v, lo, hi, &full) != ERR_OK) {
            return ERR_CONFIG;
        }
        start = full;
        rate = 100;
    } else if (sscanf(v, "%15[0-9]:%15[0-9]:%15[0-9]", a, b, c) != 3 ||
               strlen(a) + strlen(b) + strlen(c) + 2 != strlen(v) ||
               config_parse_int(a, lo, hi, &start) != ERR_OK ||
               config_parse_int(b, 1, 100, &rate) != ERR_OK ||
               config_parse_int(c, lo, hi, &full) != ERR_OK || start > full) {
        return ERR_CONFIG;
    }
    cfg->max_startups_begin = start;
    cfg->max_startups_rate = rate;
    cfg->max_startups = full;
    return ERR_OK;
}

static int config_set_startups(void *obj, const struct config_key *k,
                               const char *v, char *why, size_t whylen)
{
    if (config_parse_startups(v, k->lo, k->hi, obj) != ERR_OK) {
        snprintf(why, whylen,
                 "'%s' needs an integer from %d to %d, or start:rate:full "
                 "(start <= full, rate 1-100)",
                 k->key, k->lo, k->hi);
        return ERR_CONFIG;
    }
    return ERR_OK;
}

/* Only the two words init writes: "yes", "1" or "on" are typos here,
 * not alternative spellings. */
static int config_parse_bool(const char *v, bool *out)
{
    if (strcmp(v, "true") == 0) {
        *out = true;
    } else if (strcmp(v, "false") == 0) {
        *out = false;
    } else {
        return ERR_CONFIG;
    }
    return ERR_OK;
}

int config_defaults(struct config *cfg, const char *data_dir)
{
    int r = ERR_OK;

    memset(cfg, 0, sizeof(*cfg));
    cfg->ssh_port = 2203;
    cfg->max_startups_begin = 64;
    cfg->max_startups_rate = 30;
    cfg->max_startups = 256;
    cfg->max_startups_per_source = 10;
    cfg->max_auth_tries = 6;
    cfg->max_sessions = 4096;
    cfg->login_grace_seconds = 60;
    cfg->connect_timeout_seconds = 10;
    cfg->http_port = 8080;
    cfg->http_session_minutes = 60;
    cfg->http_max_body = 1024 * 1024;
    cfg->http_max_conns_per_source = 64;
    cfg->http_max_preauth_ws_per_source = 32;
    cfg->http_timeout_seconds = 30;
    cfg->max_failures = 5;
    cfg->store_outage_rows = 4096;
    cfg->store_statement_deadline_ms = 3000;
    cfg->store_outage_audit_events = 4096;
    cfg->record_rdp_max_mb = 256;
    cfg->record_ssh_max_mb = 1024;
    cfg->failure_window_seconds = 300;
    cfg->lockout_seconds = 300;
    cfg->failure_delay_ms = 1000;
    cfg->max_concurrent_hashes = 2;
    /* libsodium's crypto_pwhash_*_INTERACTIVE: 64 MiB, 2 passes */
    cfg->password_memory_kib = 65536;
    cfg->password_passes = 2;
    cfg->agent_keepalive_seconds = 10;
    cfg->agent_timeout_seconds = 25;
    cfg->agent_max = 20000;
    cfg->node_heartbeat_seconds = 5;
    cfg->node_dead_after_seconds = 30;
    cfg->jobs_schedule_minute_seconds = 60;
    cfg->jobs_retention_days = 90;
    cfg->tunnel_port_min = 20000;
    cfg->tunnel_port_max = 20999;
    cfg->tunnel_udp_flow_seconds = 60;
    cfg->pairing_code_seconds = 600;
    cfg->http_proxy_port = 3128;
    cfg->http_proxy_tls = true;
    cfg->http_proxy_max_connections = 1024;
    cfg->http_proxy_max_per_source = 64;
    cfg->http_proxy_timeout_seconds = 10;
    cfg->http_proxy_connect_timeout_seconds = 10;
    cfg->rdp_port = 3317;
    cfg->rdp_compression = true;
    if ((r = config_set_str(&cfg->data_dir, data_dir)) ||
        (r = config_set_str(&cfg->log_level, "info")) ||
        (r = config_set_str(&cfg->ssh_listen, "127.0.0.1")) ||
        (r = config_set_path(&cfg->ssh_host_key, data_dir,
                             "ssh_host_ed25519_key")) ||
        (r = config_set_path(&cfg->ssh_host_key_ecdsa, data_dir,
                             "ssh_host_ecdsa_key")) ||
        (r = config_set_path(&cfg->ssh_host_key_rsa, data_dir,
                             "ssh_host_rsa_key")) ||
        (r = config_set_str(&cfg->privsep_user, "nobody")) ||
        (r = config_set_str(&cfg->client_ciphers, CONFIG_CLIENT_CIPHERS)) ||
        (r = config_set_str(&cfg->client_macs, CONFIG_MACS)) ||
        (r = config_set_str(&cfg->client_kex, CONFIG_KEX)) ||
        (r = config_set_str(&cfg->hostkey_algorithms,
                            CONFIG_HOSTKEY_ALGORITHMS)) ||
        (r = config_set_str(&cfg->upstream_ciphers, CONFIG_UPSTREAM_CIPHERS)) ||
        (r = config_set_str(&cfg->upstream_macs, CONFIG_MACS)) ||
        (r = config_set_str(&cfg->upstream_kex, CONFIG_KEX)) ||
        (r = config_set_str(&cfg->upstream_hostkey_algorithms,
                            CONFIG_HOSTKEY_ALGORITHMS)) ||
        (r = config_set_str(&cfg->http_listen, "127.0.0.1")) ||
        (r = config_set_str(&cfg->tunnel_listen, "127.0.0.1")) ||
        (r = config_set_str(&cfg->http_proxy_listen, "127.0.0.1")) ||
        (r = config_set_path(&cfg->http_proxy_tls_cert, data_dir, "tls.crt")) ||
        (r = config_set_path(&cfg->http_proxy_tls_key, data_dir, "tls.key")) ||
        (r = config_set_path(&cfg->http_jwt_secret, data_dir, "api_jwt.key")) ||
        (r = config_set_str(&cfg->rdp_listen, "127.0.0.1")) ||
        (r = config_set_path(&cfg->rdp_tls_cert, data_dir, "tls.crt")) ||
        (r = config_set_path(&cfg->rdp_tls_key, data_dir, "tls.key")) ||
        (r = config_set_str(&cfg->store_driver, "sqlite")) ||
        (r = config_set_path(&cfg->store_path, data_dir, "portcullis.db")) ||
        (r = config_set_str(&cfg->store_url, "")) ||
        (r = config_set_str(&cfg->store_audit_key, "")) ||
        (r = config_set_path(&cfg->vault_key, data_dir, "vault.key")) ||
        (r = config_set_path(&cfg->record_dir, data_dir, "recordings"))) {
        config_free(cfg);
        return r;
    }
#ifdef PORTCULLIS_WEB_ROOT
    /* the UI this build's source tree builds (web/dist), if it is there */
    if ((r = config_set_str(&cfg->http_web_root, PORTCULLIS_WEB_ROOT))) {
        config_free(cfg);
    }
#endif
    return r;
}

/* True when a postgresql:// URL carries a password: in the userinfo
 * ("user:secret@host") or as a "password=" parameter. */
static bool config_url_has_password(const char *url)
{
    const char *auth = strstr(url, "://") + 3;
    size_t n = strcspn(auth, "/?");
    const char *at = memchr(auth, '@', n);
    const char *q = strchr(url, '?');

    if (at != NULL && memchr(auth, ':', (size_t)(at - auth)) != NULL) {
        return true;
    }
    for (; q != NULL; q = strchr(q + 1, '&')) {
        if (strncmp(q + 1, "password=", 9) == 0) {
            return true;
        }
    }
    return false;
}

int config_store_url_check(const char *url, char *why, size_t whylen)
{
    if (strncmp(url, "postgresql://", 13) != 0 &&
        strncmp(url, "postgres://", 11) != 0) {
        snprintf(why, whylen,
                 "[store] url must start with "
                 "postgresql:// (SQLite takes path)");
        return ERR_CONFIG;
    }
    for (const char *c = url; *c != '\0'; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(why, whylen, "[store] url: spaces or control characters");
            return ERR_CONFIG;
        }
    }
    /* The URL is logged with errors and read by every process: keep the
     * password in PostgreSQL's password file (passfile=, PGPASSFILE). */
    if (config_url_has_password(url)) {
        snprintf(why, whylen,
                 "[store] url must not hold a password; "
                 "use a password file (passfile=... or PGPASSFILE)");
        return ERR_CONFIG;
    }
    return ERR_OK;
}

/* [store]: driver sqlite with path (the default), or a postgresql:// url,
 * which selects PostgreSQL and becomes the location store_open() takes. */
static int config_store_check(struct config *cfg, const char *path, char *why,
                              size_t whylen)
{
    const char *url = cfg->store_url;
    bool pg = url[0] != '\0';
    char msg[160];
    char *loc;

    if (strcmp(cfg->store_driver, "sqlite") != 0 &&
        strcmp(cfg->store_driver, "postgresql") != 0) {
        snprintf(why, whylen, "%s: unsupported store driver '%s'", path,
                 cfg->store_driver);
        return ERR_CONFIG;
    }
    if (!pg && strcmp(cfg->store_driver, "postgresql") == 0) {
        snprintf(why, whylen,
                 "%s: [store] driver postgresql needs url = "
                 "postgresql://...",
                 path);
        return ERR_CONFIG;
    }
    if (!pg) {
        return ERR_OK;
    }
    if (config_store_url_check(url, msg, sizeof(msg)) != ERR_OK) {
        snprintf(why, whylen, "%s: %s", path, msg);
        return ERR_CONFIG;
    }
    /* A database on a server has no directory: the audit key lives in the
     * data directory unless configured elsewhere. */
    if (cfg->store_audit_key[0] == '\0' &&
        config_set_path(&cfg->store_audit_key, cfg->data_dir, "audit.key") !=
            ERR_OK) {
        return ERR_NOMEM;
    }
    if ((loc = strdup(url)) == NULL ||
        config_set_str(&cfg->store_driver, "postgresql") != ERR_OK) {
        free(loc);
        return ERR_NOMEM;
    }
    free(cfg->store_path);
    cfg->store_path = loc;
    return ERR_OK;
}

/* portcullis.conf, one row per key (config.h: struct config_key). */
#define CK(sec, key, kind, field, lo, hi)                                      \
    {                                                                          \
        sec, key, kind, offsetof(struct config, field), lo, hi, NULL           \
    }

static const struct config_key config_keys[] = {
    CK("server", "data_dir", CK_PATH, data_dir, 0, 0),
    CK("server", "log_level", CK_STR, log_level, 0, 0),
    CK("ssh", "listen", CK_STR, ssh_listen, 0, 0),
    CK("ssh", "port", CK_INT, ssh_port, 0, 65535),
    CK("ssh", "host_key", CK_PATH, ssh_host_key, 0, 0),
    CK("ssh", "host_key_ecdsa", CK_OPTPATH, ssh_host_key_ecdsa, 0, 0),
    CK("ssh", "host_key_rsa", CK_OPTPATH, ssh_host_key_rsa, 0, 0),
    {"ssh", "max_startups", CK_FN, offsetof(struct config, max_startups), 1,
     100000, config_set_startups},
    CK("ssh", "max_startups_per_source", CK_INT, max_startups_per_source, 1,
       100000),
    CK("ssh", "max_auth_tries", CK_INT, max_auth_tries, 1, 100),
    CK("ssh", "max_sessions", CK_INT, max_sessions, 1, 1000000),
    CK("ssh", "login_grace_seconds", CK_INT, login_grace_seconds, 1, 3600),
    CK("ssh", "connect_timeout_seconds", CK_INT, connect_timeout_seconds, 1,
       600),
    CK("ssh", "privsep_user", CK_STR, privsep_user, 0, 0),
    CK("ssh", "banner", CK_OPTSTR, ssh_banner, 0, 0),
    CK("ssh", "banner_file", CK_OPTPATH, ssh_banner_file, 0, 0),
    CK("ssh", "client_ciphers", CK_STR, client_ciphers, 0, 0),
    CK("ssh", "client_macs", CK_STR, client_macs, 0, 0),
    CK("ssh", "client_kex", CK_STR, client_kex, 0, 0),
    CK("ssh", "hostkey_algorithms", CK_STR, hostkey_algorithms, 0, 0),
    CK("ssh", "upstream_ciphers", CK_STR, upstream_ciphers, 0, 0),
    CK("ssh", "upstream_macs", CK_STR, upstream_macs, 0, 0),
    CK("ssh", "upstream_kex", CK_STR, upstream_kex, 0, 0),
    CK("ssh", "upstream_hostkey_algorithms", CK_STR,
       upstream_hostkey_algorithms, 0, 0),
    CK("http", "listen", CK_STR, http_listen, 0, 0),
    CK("http", "port", CK_INT, http_port, 0, 65535),
    CK("http", "tls_cert", CK_PATH, http_tls_cert, 0, 0),
    CK("http", "tls_key", CK_PATH, http_tls_key, 0, 0),
    CK("http", "allow_plain_http", CK_BOOL, http_allow_plain_http, 0, 0),
    CK("http", "jwt_secret", CK_PATH, http_jwt_secret, 0, 0),
    CK("http", "session_minutes", CK_INT, http_session_minutes, 1, 10080),
    CK("http", "max_body_bytes", CK_INT, http_max_body, 1024, 64 * 1024 * 1024),
    CK("http", "max_connections_per_source", CK_INT, http_max_conns_per_source,
       1, 100000),
    CK("http", "max_preauth_websockets_per_source", CK_INT,
       http_max_preauth_ws_per_source, 1, 100000),
    CK("http", "timeout_seconds", CK_INT, http_timeout_seconds, 1, 3600),
    CK("http", "web_root", CK_PATH, http_web_root, 0, 0),
    CK("http_proxy", "enabled", CK_BOOL, http_proxy_enabled, 0, 0),
    CK("http_proxy", "listen", CK_STR, http_proxy_listen, 0, 0),
    CK("http_proxy", "port", CK_INT, http_proxy_port, 1, 65535),
    CK("http_proxy", "tls", CK_BOOL, http_proxy_tls, 0, 0),
    CK("http_proxy", "tls_cert", CK_OPTPATH, http_proxy_tls_cert, 0, 0),
    CK("http_proxy", "tls_key", CK_OPTPATH, http_proxy_tls_key, 0, 0),
    CK("http_proxy", "allow", CK_OPTSTR, http_proxy_allow, 0, 0),
    CK("http_proxy", "max_connections", CK_INT, http_proxy_max_connections, 1,
       1000000),
    CK("http_proxy", "max_connections_per_source", CK_INT,
       http_proxy_max_per_source, 1, 1000000),
    CK("http_proxy", "timeout_seconds", CK_INT, http_proxy_timeout_seconds, 1,
       3600),
    CK("http_proxy", "connect_timeout_seconds", CK_INT,
       http_proxy_connect_timeout_seconds, 1, 600),
    CK("rdp", "enabled", CK_BOOL, rdp_enabled, 0, 0),
    CK("rdp", "listen", CK_STR, rdp_listen, 0, 0),
    CK("rdp", "port", CK_INT, rdp_port, 0, 65535),
    CK("rdp", "tls_cert", CK_PATH, rdp_tls_cert, 0, 0),
    CK("rdp", "tls_key", CK_PATH, rdp_tls_key, 0, 0),
    CK("rdp", "compression", CK_BOOL, rdp_compression, 0, 0),
    CK("rdp", "tls_logins", CK_BOOL, rdp_tls_logins, 0, 0),
    CK("store", "driver", CK_STR, store_driver, 0, 0),
    CK("store", "path", CK_PATH, store_path, 0, 0),
    CK("store", "url", CK_STR, store_url, 0, 0),
    CK("store", "audit_key", CK_PATH, store_audit_key, 0, 0),
    CK("store", "outage_rows", CK_INT, store_outage_rows, 16, 1000000),
    CK("store", "statement_deadline_ms", CK_INT, store_statement_deadline_ms,
       100, 600000),
    CK("store", "outage_audit_events", CK_INT, store_outage_audit_events, 16,
       1000000),
    CK("vault", "key_file", CK_PATH, vault_key, 0, 0),
    CK("auth", "max_failures", CK_INT, max_failures, 1, 100),
    CK("auth", "failure_window_seconds", CK_INT, failure_window_seconds, 1,
       86400 * 30),
    CK("auth", "lockout_seconds", CK_INT, lockout_seconds, 0, 86400 * 30),
    CK("auth", "failure_delay_ms", CK_INT, failure_delay_ms, 0, 60000),
    CK("auth", "max_concurrent_hashes", CK_INT, max_concurrent_hashes, 1, 64),
    CK("auth", "password_memory_kib", CK_INT, password_memory_kib, 7168,
       4194304),
    CK("auth", "password_passes", CK_INT, password_passes, 1, 64),
    CK("record", "dir", CK_PATH, record_dir, 0, 0),
    CK("record", "retention_days", CK_INT, record_retention_days, 0, 36500),
    CK("record", "rdp_max_mb", CK_INT, record_rdp_max_mb, 1, 4096),
    CK("record", "ssh_max_mb", CK_INT, record_ssh_max_mb, 1, 65536),
    CK("agent", "keepalive_seconds", CK_INT, agent_keepalive_seconds, 1, 3600),
    CK("agent", "timeout_seconds", CK_INT, agent_timeout_seconds, 2, 7200),
    CK("agent", "max_agents", CK_INT, agent_max, 1, 1000000),
    CK("node", "name", CK_OPTSTR, node_name, 0, 0),
    CK("node", "heartbeat_seconds", CK_INT, node_heartbeat_seconds, 1, 60),
    CK("node", "dead_after_seconds", CK_INT, node_dead_after_seconds, 3, 3600),
    CK("jobs", "schedule_minute_seconds", CK_INT, jobs_schedule_minute_seconds,
       1, 60),
    CK("jobs", "retention_days", CK_INT, jobs_retention_days, 0, 36500),
    CK("tunnel", "listen", CK_STR, tunnel_listen, 0, 0),
    CK("tunnel", "port_min", CK_INT, tunnel_port_min, 1, 65535),
    CK("tunnel", "port_max", CK_INT, tunnel_port_max, 1, 65535),
    CK("tunnel", "udp_flow_seconds", CK_INT, tunnel_udp_flow_seconds, 1, 86400),
    CK("pairing", "url", CK_OPTSTR, pairing_url, 0, 0),
    CK("pairing", "agent_binary", CK_OPTPATH, pairing_agent_binary, 0, 0),
    CK("pairing", "code_seconds", CK_INT, pairing_code_seconds, 1, 86400),
};

/*
 * Quoted subsections, [KIND "NAME"]: their keys are kept as written for
 * the module that owns the kind (common knows no modules above it); the
 * owner checks them when it starts, with the line numbers kept here.
 */
static const char *const config_subsection_kinds[] = {"directory"};

/* *kind and *name point into hdr (modified) if it is [KIND "NAME"] with
 * a known kind and a name of 1-255 characters without quotes. */
static bool config_subsection(char *hdr, const char **kind, const char **name)
{
    char *sp = strchr(hdr, ' '), *q, *end;
    size_t i;

    if (sp == NULL) {
        return false;
    }
    *sp = '\0';
    q = sp + 1;
    while (*q == ' ') {
        q++;
    }
    end = q + strlen(q);
    if (*q != '"' || end - q < 3 || end[-1] != '"' || end - q > 257 ||
        memchr(q + 1, '"', (size_t)(end - q - 2)) != NULL) {
        *sp = ' ';
        return false;
    }
    end[-1] = '\0';
    for (i = 0; i < CONFIG_NELEM(config_subsection_kinds); i++) {
        if (strcmp(hdr, config_subsection_kinds[i]) == 0) {
            *kind = config_subsection_kinds[i];
            *name = q + 1;
            return true;
        }
    }
    end[-1] = '"';
    *sp = ' ';
    return false;
}

static int config_subkey_add(void *obj, const char *kind, const char *name,
                             const char *k, const char *v, int line)
{
    struct config *cfg = obj;
    struct config_subkey *n, *e;

    n = realloc(cfg->subkeys, (cfg->nsubkeys + 1) * sizeof(*n));
    if (n == NULL) {
        return ERR_NOMEM;
    }
    cfg->subkeys = n;
    e = &n[cfg->nsubkeys];
    memset(e, 0, sizeof(*e));
    e->line = line;
    if ((e->kind = strdup(kind)) == NULL || (e->name = strdup(name)) == NULL ||
        (e->key = strdup(k)) == NULL || (e->value = strdup(v)) == NULL) {
        free(e->kind);
        free(e->name);
        free(e->key);
        return ERR_NOMEM;
    }
    cfg->nsubkeys++;
    return ERR_OK;
}

static const struct config_schema config_schema = {
    .keys = config_keys,
    .nkeys = sizeof(config_keys) / sizeof(config_keys[0]),
    .sections = true,
    .no_control = false,
    .subsection = config_subsection,
    .subkey = config_subkey_add,
};

static char *config_trim(char *s)
{
    char *e;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) {
        *--e = '\0';
    }
    return s;
}

static const struct config_algo *config_algo_find(const char *name, size_t len,
                                                  enum config_algo_kind kind)
{
    size_t i;

    for (i = 0; i < CONFIG_NELEM(config_algos); i++) {
        if (config_algos[i].kind == kind &&
            strlen(config_algos[i].name) == len &&
            memcmp(config_algos[i].name, name, len) == 0) {
            return &config_algos[i];
        }
    }
    return NULL;
}

/*
 * Every algorithm list: one or more known names of its kind, no empty
 * items. Spaces around the commas are dropped (libssh would refuse them).
 * libssh itself silently ignores names it does not know, so a typo would
 * otherwise shrink the offer without a word.
 */
/*
 * [auth] password_memory_kib and password_passes: the argon2id cost of
 * the password hashes made from now on (a hash keeps the cost it was made
 * with). Never below OWASP's minimum for argon2id with one lane
 * (Password Storage Cheat Sheet): the memory a number of passes needs at
 * least, so an operator can trade memory for time, not security for
 * speed. The default, libsodium's "interactive" 64 MiB and 2 passes, is
 * above every row.
 */
static const struct {
    int passes;
    int min_kib;
} config_argon2_floor[] = {
    {1, 47104}, {2, 19456}, {3, 12288}, {4, 9216}, {5, 7168},
};

static int config_check_password_cost(const struct config *cfg,
                                      const char *path, char *why,
                                      size_t whylen)
{
    int need = 0;

    for (size_t i = 0;
         i < sizeof(config_argon2_floor) / sizeof(config_argon2_floor[0]);
         i++) {
        if (cfg->password_passes >= config_argon2_floor[i].passes) {
            need = config_argon2_floor[i].min_kib;
        }
    }
    if (cfg->password_memory_kib < need) {
        snprintf(why, whylen,
                 "%s: [auth] password_memory_kib %d is below the minimum "
                 "for password_passes %d (%d KiB: OWASP's floor for "
                 "argon2id; fewer passes need more memory)",
                 path, cfg->password_memory_kib, cfg->password_passes, need);
        return ERR_CONFIG;
    }
    return ERR_OK;
}

static int config_check_algos(struct config *cfg, const char *path, char *why,
                              size_t whylen)
{
    const struct config_algo_key *k;
    char *list, *rd, *wr, *item, *end;
    size_t i, len;

    for (i = 0; i < CONFIG_NELEM(config_algo_keys); i++) {
        k = &config_algo_keys[i];
        list = *(char **)((char *)cfg + k->off);
        /* squeeze out blanks in place */
        for (rd = wr = list; *rd != '\0'; rd++) {
            if (!isspace((unsigned char)*rd)) {
                *wr++ = *rd;
            }
        }
        *wr = '\0';
        if (list[0] == '\0') {
            snprintf(why, whylen, "%s: [ssh] %s needs at least one %s", path,
                     k->key, config_algo_what[k->kind]);
            return ERR_CONFIG;
        }
        for (item = list;; item = end + 1) {
            end = strchr(item, ',');
            len = end != NULL ? (size_t)(end - item) : strlen(item);
            if (config_algo_find(item, len, k->kind) == NULL) {
                snprintf(why, whylen,
                         "%s: [ssh] %s: unknown %s '%.*s' (see "
                         "docs/operations.md for the names)",
                         path, k->key, config_algo_what[k->kind],
                         (int)(len > 64 ? 64 : len), item);
                return ERR_CONFIG;
            }
            if (end == NULL) {
                break;
            }
        }
    }
    return ERR_OK;
}

void config_node_name(const struct config *cfg, char *out, size_t outlen)
{
    char host[256];

    if (cfg->node_name != NULL && cfg->node_name[0] != '\0') {
        snprintf(out, outlen, "%s", cfg->node_name);
        return;
    }
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
        snprintf(host, sizeof(host), "node");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(out, outlen, "%s", host);
}

int config_weak_algorithms(const struct config *cfg, char *out, size_t outlen)
{
    const struct config_algo_key *k;
    const struct config_algo *a;
    const char *list, *item, *end;
    size_t i, len, used = 0;
    bool full = outlen == 0;
    int n = 0, w;

    if (outlen > 0) {
        out[0] = '\0';
    }
    for (i = 0; i < CONFIG_NELEM(config_algo_keys); i++) {
        k = &config_algo_keys[i];
        list = *(char *const *)((const char *)cfg + k->off);
        for (item = list; list != NULL && *item != '\0'; item = end + 1) {
            end = strchr(item, ',');
            len = end != NULL ? (size_t)(end - item) : strlen(item);
            a = config_algo_find(item, len, k->kind);
            if (a != NULL && a->weak) {
                /* Whole items only: one that does not fit ends the text. */
                if (!full) {
                    w = snprintf(out + used, outlen - used, "%s%s ([ssh] %s)",
                                 n > 0 ? ", " : "", a->name, k->key);
                    if (w > 0 && used + (size_t)w < outlen) {
                        used += (size_t)w;
                    } else {
                        full = true;
                        if (used < outlen) {
                            out[used] = '\0';
                        }
                    }
                }
                n++;
            }
            if (end == NULL) {
                break;
            }
        }
    }
    return n;
}

/* --- the table-driven reader (config.h) --- */

static bool config_has_control(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return true;
        }
    }
    return false;
}

int config_set_key(const struct config_schema *sc, void *obj,
                   const char *section, const char *key, const char *v,
                   const char *dir, char *why, size_t whylen)
{
    const struct config_key *k = NULL;
    char **dst;
    int r;

    for (size_t i = 0; i < sc->nkeys; i++) {
        if (strcmp(sc->keys[i].section, section) == 0 &&
            strcmp(sc->keys[i].key, key) == 0) {
            k = &sc->keys[i];
            break;
        }
    }
    if (k == NULL) {
        return ERR_NOT_FOUND;
    }
    if (sc->no_control && config_has_control(v)) {
        snprintf(why, whylen, "%s: control characters in the value", key);
        return ERR_CONFIG;
    }
    dst = (char **)((char *)obj + k->off);
    switch (k->kind) {
    case CK_OPTSTR:
    case CK_OPTPATH:
        if (*v == '\0') {
            free(*dst);
            *dst = NULL;
            return ERR_OK;
        }
        /* fall through */
    case CK_STR:
    case CK_PATH:
        if (k->hi > 0 && strlen(v) > (size_t)k->hi) {
            snprintf(why, whylen, "%s: at most %d characters", key, k->hi);
            return ERR_CONFIG;
        }
        r = k->kind == CK_STR || k->kind == CK_OPTSTR
                ? config_set_str(dst, v)
                : config_set_path(dst, dir, v);
        break;
    case CK_INT:
        r = config_parse_int(v, k->lo, k->hi, (int *)((char *)obj + k->off));
        if (r != ERR_OK) {
            snprintf(why, whylen, "'%s' needs an integer from %d to %d", key,
                     k->lo, k->hi);
        }
        break;
    case CK_BOOL:
        r = config_parse_bool(v, (bool *)((char *)obj + k->off));
        if (r != ERR_OK) {
            snprintf(why, whylen, "'%s' needs true or false", key);
        }
        break;
    case CK_FN:
        r = k->set(obj, k, v, why, whylen);
        break;
    default:
        r = ERR_INTERNAL;
        break;
    }
    if (r != ERR_OK && r != ERR_CONFIG) {
        snprintf(why, whylen, "%s", err_str(r));
    }
    return r;
}

/* Prefixes why (a reason) with "path:line: ". */
static int config_line_fail(char *why, size_t whylen, const char *path,
                            int lineno, int r)
{
    char reason[512];

    if (r == ERR_CONFIG) {
        snprintf(reason, sizeof(reason), "%s", why);
        snprintf(why, whylen, "%s:%d: %s", path, lineno, reason);
    }
    return r;
}

int config_read_lines(const struct config_schema *sc, FILE *f, const char *path,
                      const char *dir, void *obj, char *why, size_t whylen)
{
    char line[4096], section[64] = "", subname[256] = "";
    const char *subkind = NULL, *sk, *sn;
    char *k, *v, *eq;
    int lineno = 0, r = ERR_OK;

    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(why, whylen, "%s:%d: line too long", path, lineno);
            r = ERR_CONFIG;
            goto out;
        }
        k = config_trim(line);
        if (*k == '\0' || *k == '#' || *k == ';') {
            continue;
        }
        if (*k == '[' && sc->sections) {
            v = strchr(k, ']');
            subkind = NULL;
            /* [KIND "NAME"]: its keys go, as written, to the kind's owner */
            if (v != NULL && v[1] == '\0' && sc->subsection != NULL) {
                *v = '\0';
                if (sc->subsection(k + 1, &sk, &sn)) {
                    subkind = sk;
                    snprintf(subname, sizeof(subname), "%s", sn);
                    snprintf(section, sizeof(section), "%s", sk);
                    if ((r = sc->subkey(obj, sk, sn, "", "", lineno)) !=
                        ERR_OK) {
                        snprintf(why, whylen, "%s", err_str(r));
                        goto out;
                    }
                    continue;
                }
                *v = ']';
            }
            if (v == NULL || v[1] != '\0' ||
                (size_t)(v - k) >= sizeof(section)) {
                snprintf(why, whylen, "%s:%d: bad section header", path,
                         lineno);
                r = ERR_CONFIG;
                goto out;
            }
            *v = '\0';
            snprintf(section, sizeof(section), "%s", k + 1);
            continue;
        }
        if ((eq = strchr(k, '=')) == NULL) {
            snprintf(why, whylen, "%s:%d: expected key = value", path, lineno);
            r = ERR_CONFIG;
            goto out;
        }
        *eq = '\0';
        v = config_trim(eq + 1);
        k = config_trim(k);
        if (subkind != NULL) {
            if ((r = sc->subkey(obj, subkind, subname, k, v, lineno)) !=
                ERR_OK) {
                snprintf(why, whylen, "%s", err_str(r));
                goto out;
            }
            continue;
        }
        r = config_set_key(sc, obj, section, k, v, dir, why, whylen);
        if (r == ERR_NOT_FOUND) {
            if (sc->sections) {
                snprintf(why, whylen, "%s:%d: unknown key '%s' in [%s]", path,
                         lineno, k, section);
            } else {
                snprintf(why, whylen, "%s:%d: unknown key '%.40s'", path,
                         lineno, k);
            }
            r = ERR_CONFIG;
            goto out;
        }
        if (r != ERR_OK) {
            config_line_fail(why, whylen, path, lineno, r);
            goto out;
        }
    }
    if (ferror(f)) {
        r = ERR_IO;
    }
out:
    sodium_memzero(line, sizeof(line));
    return r;
}

/* config_load(), or config_parse_text() when text is set: then path is
 * the absolute name the text stands for (messages, relative paths). */
static int config_read(const char *path, const char *text, size_t len,
                       struct config *cfg, char *why, size_t whylen)
{
    char absdir[PATH_MAX], abspath[PATH_MAX];
    char *slash, *copy = NULL;
    FILE *f = NULL;
    int r = ERR_OK;

    memset(cfg, 0, sizeof(*cfg));
    if (text != NULL) {
        if (path[0] != '/' || strlen(path) >= sizeof(abspath)) {
            snprintf(why, whylen, "config text: %s is not an absolute path",
                     path);
            return ERR_CONFIG;
        }
        snprintf(abspath, sizeof(abspath), "%s", path);
    } else if (realpath(path, abspath) == NULL) {
        snprintf(why, whylen, "cannot read config %s: %s", path,
                 strerror(errno));
        return ERR_CONFIG;
    }
    snprintf(absdir, sizeof(absdir), "%s", abspath);
    if ((slash = strrchr(absdir, '/')) != NULL) {
        *slash = '\0';
    }
    if (absdir[0] == '\0') {
        snprintf(absdir, sizeof(absdir), "/");
    }
    if ((r = config_defaults(cfg, absdir)) != ERR_OK) {
        snprintf(why, whylen, "%s", err_str(r));
        return r;
    }
    if ((r = config_set_str(&cfg->path, abspath)) != ERR_OK) {
        goto out;
    }
    if (text != NULL) {
        /* fmemopen wants a writable buffer (and one byte at least) */
        if ((copy = malloc(len + 1)) == NULL) {
            r = ERR_NOMEM;
            snprintf(why, whylen, "%s", err_str(r));
            goto out;
        }
        memcpy(copy, text, len);
        copy[len] = '\n';
        f = fmemopen(copy, len + 1, "r");
    } else {
        f = fopen(abspath, "r");
    }
    if (f == NULL) {
        snprintf(why, whylen, "cannot read config %s: %s", path,
                 strerror(errno));
        r = ERR_CONFIG;
        goto out;
    }
    r = config_read_lines(&config_schema, f, path, absdir, cfg, why, whylen);
    if (r == ERR_IO) {
        /* fgets() also stops on a read error (EISDIR for a directory):
         * that must not pass for the end of a file of defaults. */
        snprintf(why, whylen, "cannot read config %s: %s", path,
                 strerror(errno));
        r = ERR_CONFIG;
    }
    if (r != ERR_OK) {
        goto out;
    }
    if ((r = config_store_check(cfg, path, why, whylen)) != ERR_OK) {
        goto out;
    }
    if (log_level_parse(cfg->log_level) < 0) {
        snprintf(why, whylen, "%s: unknown log_level '%s'", path,
                 cfg->log_level);
        r = ERR_CONFIG;
        goto out;
    }
    if (cfg->tunnel_port_min > cfg->tunnel_port_max) {
        snprintf(why, whylen, "%s: [tunnel] port_min %d is above port_max %d",
                 path, cfg->tunnel_port_min, cfg->tunnel_port_max);
        r = ERR_CONFIG;
        goto out;
    }
    if ((r = config_check_algos(cfg, path, why, whylen)) != ERR_OK) {
        goto out;
    }
    if ((r = config_check_password_cost(cfg, path, why, whylen)) != ERR_OK) {
        goto out;
    }
    if (cfg->ssh_banner != NULL && cfg->ssh_banner_file != NULL) {
        snprintf(why, whylen, "%s: [ssh] set banner or banner_file, not both",
                 path);
        r = ERR_CONFIG;
        goto out;
    }
    if (cfg->agent_timeout_seconds <= cfg->agent_keepalive_seconds) {
        snprintf(why, whylen,
                 "%s: [agent] timeout_seconds must be above keepalive_seconds",
                 path);
        r = ERR_CONFIG;
        goto out;
    }
    if (cfg->node_dead_after_seconds < 2 * cfg->node_heartbeat_seconds) {
        snprintf(why, whylen,
                 "%s: [node] dead_after_seconds must be at least twice "
                 "heartbeat_seconds",
                 path);
        r = ERR_CONFIG;
        goto out;
    }
out:
    if (f != NULL) {
        fclose(f);
    }
    free(copy);
    if (r != ERR_OK) {
        config_free(cfg);
    }
    return r;
}

int config_load(const char *path, struct config *cfg, char *why, size_t whylen)
{
    return config_read(path, NULL, 0, cfg, why, whylen);
}

int config_parse_text(const char *text, size_t len, const char *path,
                      struct config *cfg, char *why, size_t whylen)
{
    return config_read(path, text != NULL ? text : "", text != NULL ? len : 0,
                       cfg, why, whylen);
}

void config_free(struct config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    free(cfg->path);
    free(cfg->data_dir);
    free(cfg->log_level);
    free(cfg->ssh_listen);
    free(cfg->ssh_host_key);
    free(cfg->ssh_host_key_ecdsa);
    free(cfg->ssh_host_key_rsa);
    free(cfg->privsep_user);
    free(cfg->ssh_banner);
    free(cfg->ssh_banner_file);
    free(cfg->client_ciphers);
    free(cfg->client_macs);
    free(cfg->client_kex);
    free(cfg->hostkey_algorithms);
    free(cfg->upstream_ciphers);
    free(cfg->upstream_macs);
    free(cfg->upstream_kex);
    free(cfg->upstream_hostkey_algorithms);
    free(cfg->http_listen);
    free(cfg->http_tls_cert);
    free(cfg->http_tls_key);
    free(cfg->http_jwt_secret);
    free(cfg->http_web_root);
    free(cfg->store_driver);
    free(cfg->store_path);
    free(cfg->store_url);
    free(cfg->store_audit_key);
    free(cfg->vault_key);
    free(cfg->record_dir);
    free(cfg->tunnel_listen);
    free(cfg->node_name);
    free(cfg->http_proxy_listen);
    free(cfg->http_proxy_tls_cert);
    free(cfg->http_proxy_tls_key);
    free(cfg->http_proxy_allow);
    free(cfg->rdp_listen);
    free(cfg->rdp_tls_cert);
    free(cfg->rdp_tls_key);
    free(cfg->pairing_url);
    free(cfg->pairing_agent_binary);
    for (size_t i = 0; i < cfg->nsubkeys; i++) {
        free(cfg->subkeys[i].kind);
        free(cfg->subkeys[i].name);
        free(cfg->subkeys[i].key);
        free(cfg->subkeys[i].value);
    }
    free(cfg->subkeys);
    memset(cfg, 0, sizeof(*cfg));
}
