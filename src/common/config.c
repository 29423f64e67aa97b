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

#include "common/err.h"
#include "common/log.h"

/*
 * Ciphers (see bench/README.md for the measurements). AES-GCM runs on the
 * CPU's AES instructions and costs about 60% of ChaCha20-Poly1305 here;
 * a proxy does the cipher work twice, so it offers users' clients only
 * AES-GCM (OpenSSH's clients would otherwise pick ChaCha20, their first
 * choice) and prefers it towards targets, falling back to ChaCha20 and
 * AES-CTR for old targets. Clients without AES-GCM (PuTTY before 0.76)
 * need [ssh] client_ciphers to add aes128-ctr.
 */
#define CONFIG_CLIENT_CIPHERS "aes128-gcm@openssh.com,aes256-gcm@openssh.com"
#define CONFIG_UPSTREAM_CIPHERS                                                \
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,"                           \
    "chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr"

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
    cfg->max_startups = 256;
    cfg->max_sessions = 4096;
    cfg->login_grace_seconds = 60;
    cfg->connect_timeout_seconds = 10;
    cfg->http_port = 8080;
    cfg->http_session_minutes = 60;
    cfg->http_max_body = 1024 * 1024;
    cfg->http_max_conns_per_source = 64;
    cfg->http_timeout_seconds = 30;
    cfg->max_failures = 5;
    cfg->failure_window_seconds = 300;
    cfg->lockout_seconds = 300;
    cfg->failure_delay_ms = 1000;
    cfg->agent_keepalive_seconds = 10;
    cfg->agent_timeout_seconds = 25;
    cfg->agent_max = 20000;
    cfg->tunnel_port_min = 20000;
    cfg->tunnel_port_max = 20999;
    cfg->tunnel_udp_flow_seconds = 60;
    if ((r = config_set_str(&cfg->data_dir, data_dir)) ||
        (r = config_set_str(&cfg->log_level, "info")) ||
        (r = config_set_str(&cfg->ssh_listen, "127.0.0.1")) ||
        (r = config_set_path(&cfg->ssh_host_key, data_dir,
                             "ssh_host_ed25519_key")) ||
        (r = config_set_str(&cfg->privsep_user, "nobody")) ||
        (r = config_set_str(&cfg->client_ciphers, CONFIG_CLIENT_CIPHERS)) ||
        (r = config_set_str(&cfg->upstream_ciphers, CONFIG_UPSTREAM_CIPHERS)) ||
        (r = config_set_str(&cfg->http_listen, "127.0.0.1")) ||
        (r = config_set_str(&cfg->tunnel_listen, "127.0.0.1")) ||
        (r = config_set_path(&cfg->http_jwt_secret, data_dir, "api_jwt.key")) ||
        (r = config_set_str(&cfg->store_driver, "sqlite")) ||
        (r = config_set_path(&cfg->store_path, data_dir, "portcullis.db")) ||
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

struct config_key {
    const char *section;
    const char *key;
    enum { CK_STR, CK_PATH, CK_INT, CK_BOOL } kind;
    size_t off;
    int lo, hi;
};

#define CK(sec, key, kind, field, lo, hi)                                      \
    {                                                                          \
        sec, key, kind, offsetof(struct config, field), lo, hi                 \
    }

static const struct config_key config_keys[] = {
    CK("server", "log_level", CK_STR, log_level, 0, 0),
    CK("ssh", "listen", CK_STR, ssh_listen, 0, 0),
    CK("ssh", "port", CK_INT, ssh_port, 0, 65535),
    CK("ssh", "host_key", CK_PATH, ssh_host_key, 0, 0),
    CK("ssh", "max_startups", CK_INT, max_startups, 1, 100000),
    CK("ssh", "max_sessions", CK_INT, max_sessions, 1, 1000000),
    CK("ssh", "login_grace_seconds", CK_INT, login_grace_seconds, 1, 3600),
    CK("ssh", "connect_timeout_seconds", CK_INT, connect_timeout_seconds, 1,
       600),
    CK("ssh", "privsep_user", CK_STR, privsep_user, 0, 0),
    CK("ssh", "client_ciphers", CK_STR, client_ciphers, 0, 0),
    CK("ssh", "upstream_ciphers", CK_STR, upstream_ciphers, 0, 0),
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
    CK("http", "timeout_seconds", CK_INT, http_timeout_seconds, 1, 3600),
    CK("http", "web_root", CK_PATH, http_web_root, 0, 0),
    CK("store", "driver", CK_STR, store_driver, 0, 0),
    CK("store", "path", CK_PATH, store_path, 0, 0),
    CK("vault", "key_file", CK_PATH, vault_key, 0, 0),
    CK("auth", "max_failures", CK_INT, max_failures, 1, 100),
    CK("auth", "failure_window_seconds", CK_INT, failure_window_seconds, 1,
       86400 * 30),
    CK("auth", "lockout_seconds", CK_INT, lockout_seconds, 0, 86400 * 30),
    CK("auth", "failure_delay_ms", CK_INT, failure_delay_ms, 0, 60000),
    CK("record", "dir", CK_PATH, record_dir, 0, 0),
    CK("record", "retention_days", CK_INT, record_retention_days, 0, 36500),
    CK("agent", "keepalive_seconds", CK_INT, agent_keepalive_seconds, 1, 3600),
    CK("agent", "timeout_seconds", CK_INT, agent_timeout_seconds, 2, 7200),
    CK("agent", "max_agents", CK_INT, agent_max, 1, 1000000),
    CK("tunnel", "listen", CK_STR, tunnel_listen, 0, 0),
    CK("tunnel", "port_min", CK_INT, tunnel_port_min, 1, 65535),
    CK("tunnel", "port_max", CK_INT, tunnel_port_max, 1, 65535),
    CK("tunnel", "udp_flow_seconds", CK_INT, tunnel_udp_flow_seconds, 1, 86400),
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

/* config_load(), or config_parse_text() when text is set: then path is
 * the absolute name the text stands for (messages, relative paths). */
static int config_read(const char *path, const char *text, size_t len,
                       struct config *cfg, char *why, size_t whylen)
{
    char absdir[PATH_MAX], abspath[PATH_MAX], line[4096], section[64] = "";
    char *slash, *k, *v, *eq, *copy = NULL;
    FILE *f = NULL;
    int lineno = 0, r = ERR_OK;
    size_t i;

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
        if (*k == '[') {
            v = strchr(k, ']');
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
        for (i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
            if (strcmp(config_keys[i].section, section) == 0 &&
                strcmp(config_keys[i].key, k) == 0) {
                break;
            }
        }
        if (i == sizeof(config_keys) / sizeof(config_keys[0])) {
            if (strcmp(section, "server") == 0 && strcmp(k, "data_dir") == 0) {
                r = config_set_path(&cfg->data_dir, absdir, v);
                if (r != ERR_OK) {
                    goto out;
                }
                continue;
            }
            snprintf(why, whylen, "%s:%d: unknown key '%s' in [%s]", path,
                     lineno, k, section);
            r = ERR_CONFIG;
            goto out;
        }
        switch (config_keys[i].kind) {
        case CK_STR:
            r = config_set_str((char **)((char *)cfg + config_keys[i].off), v);
            break;
        case CK_PATH:
            r = config_set_path((char **)((char *)cfg + config_keys[i].off),
                                absdir, v);
            break;
        case CK_INT:
            r = config_parse_int(v, config_keys[i].lo, config_keys[i].hi,
                                 (int *)((char *)cfg + config_keys[i].off));
            if (r != ERR_OK) {
                snprintf(why, whylen,
                         "%s:%d: '%s' needs an integer from %d to %d", path,
                         lineno, k, config_keys[i].lo, config_keys[i].hi);
                goto out;
            }
            break;
        case CK_BOOL:
            r = config_parse_bool(v,
                                  (bool *)((char *)cfg + config_keys[i].off));
            if (r != ERR_OK) {
                snprintf(why, whylen, "%s:%d: '%s' needs true or false", path,
                         lineno, k);
                goto out;
            }
            break;
        }
        if (r != ERR_OK) {
            snprintf(why, whylen, "%s", err_str(r));
            goto out;
        }
    }
    /* fgets() also stops on a read error (EISDIR for a directory): that
     * must not pass for the end of a file of defaults. */
    if (ferror(f)) {
        snprintf(why, whylen, "cannot read config %s: %s", path,
                 strerror(errno));
        r = ERR_CONFIG;
        goto out;
    }
    if (strcmp(cfg->store_driver, "sqlite") != 0) {
        snprintf(why, whylen, "%s: unsupported store driver '%s'", path,
                 cfg->store_driver);
        r = ERR_CONFIG;
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
    if (cfg->agent_timeout_seconds <= cfg->agent_keepalive_seconds) {
        snprintf(why, whylen,
                 "%s: [agent] timeout_seconds must be above keepalive_seconds",
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
    free(cfg->privsep_user);
    free(cfg->client_ciphers);
    free(cfg->upstream_ciphers);
    free(cfg->http_listen);
    free(cfg->http_tls_cert);
    free(cfg->http_tls_key);
    free(cfg->http_jwt_secret);
    free(cfg->http_web_root);
    free(cfg->store_driver);
    free(cfg->store_path);
    free(cfg->vault_key);
    free(cfg->record_dir);
    free(cfg->tunnel_listen);
    memset(cfg, 0, sizeof(*cfg));
}
