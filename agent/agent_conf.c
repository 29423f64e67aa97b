/* The agent's configuration; see agent_conf.h. */
#include "agent/agent_conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define AGENT_MACHINE_ID "/etc/machine-id"
#define AGENT_URL_MAX 1024
#define AGENT_PROXY_AUTH_MAX 90 /* libwebsockets keeps it in 96 bytes */

static int conf_fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int conf_fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return ERR_CONFIG;
}

void agent_conf_init(struct agent_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->keepalive = 10;
    c->timeout = 25;
    c->log_level = LOG_INFO;
    job_rules_init(&c->jobs);
}

static void conf_free_secret(char **s)
{
    if (*s != NULL) {
        sodium_memzero(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

void agent_conf_free(struct agent_conf *c)
{
    free(c->server);
    free(c->fingerprint);
    free(c->cred_id);
    conf_free_secret(&c->cred_secret);
    free(c->id);
    free(c->name);
    for (size_t i = 0; i < c->ntags; i++) {
        free(c->tags[i]);
    }
    free(c->tags);
    allow_list_clear(&c->allow);
    job_rules_free(&c->jobs);
    conf_free_secret(&c->proxy);
    free(c->ca);
    free(c->host);
    free(c->path);
    for (size_t i = 0; i < c->nservers; i++) {
        free(c->servers[i].url);
        free(c->servers[i].host);
        free(c->servers[i].path);
    }
    conf_free_secret(&c->proxy_lws);
    memset(c, 0, sizeof(*c));
}

bool agent_conf_valid_id(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > AGENT_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-') {
            return false;
        }
    }
    return true;
}

static int conf_strdup(char **dst, const char *v)
{
    char *d = strdup(v);

    if (d == NULL) {
        return ERR_NOMEM;
    }
    free(*dst);
    *dst = d;
    return ERR_OK;
}

/* "SHA256:" and 43 characters of unpadded base64. */
static bool conf_valid_fingerprint(const char *s)
{
    if (strlen(s) != AGENT_FP_LEN || strncmp(s, "SHA256:", 7) != 0) {
        return false;
    }
    for (const char *p = s + 7; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '/') {
            return false;
        }
    }
    return true;
}

/* --- the keys: one table, read by common/config.c's reader --- */

static int conf_set_fingerprint(void *obj, const struct config_key *k,
                                const char *v, char *why, size_t whylen)
{
    struct agent_conf *c = obj;

    if (!conf_valid_fingerprint(v)) {
        return conf_fail(why, whylen,
                         "fingerprint must be SHA256: and 43 base64 "
                         "characters, as `portcullis init` prints it");
    }
    return conf_strdup(&c->fingerprint, v);
}

static int conf_set_credential(void *obj, const struct config_key *k,
                               const char *v, char *why, size_t whylen)
{
    struct agent_conf *c = obj;
    const char *colon = strchr(v, ':');

    if (colon == NULL || colon == v || colon[1] == '\0' ||
        (size_t)(colon - v) > 128 || strlen(colon + 1) > AGENT_SECRET_MAX) {
        return conf_fail(why, whylen,
                         "credential must be ID:SECRET, as `portcullis "
                         "credential add` prints them");
    }
    free(c->cred_id);
    conf_free_secret(&c->cred_secret);
    c->cred_id = strndup(v, (size_t)(colon - v));
    c->cred_secret = strdup(colon + 1);
    if (c->cred_id == NULL || c->cred_secret == NULL) {
        return ERR_NOMEM;
    }
    if (!c->setting_by_flag) {
        c->secret_in_file = true;
    }
    return ERR_OK;
}

static int conf_set_id(void *obj, const struct config_key *k, const char *v,
                       char *why, size_t whylen)
{
    struct agent_conf *c = obj;

    if (!agent_conf_valid_id(v)) {
        return conf_fail(why, whylen,
                         "id must be 1-64 of A-Z a-z 0-9 . _ -, got "
                         "'%.70s'",
                         v);
    }
    return conf_strdup(&c->id, v);
}

static int conf_set_name(void *obj, const struct config_key *k, const char *v,
                         char *why, size_t whylen)
{
    struct agent_conf *c = obj;

    if (v[0] == '\0' || strlen(v) > AGENT_NAME_MAX) {
        return conf_fail(why, whylen, "name must be 1-%d characters",
                         AGENT_NAME_MAX);
    }
    return conf_strdup(&c->name, v);
}

/* Repeatable; a flag replaces what the file listed. */
static int conf_set_tag(void *obj, const struct config_key *k, const char *v,
                        char *why, size_t whylen)
{
    struct agent_conf *c = obj;
    char **t;

    if (c->setting_by_flag && !c->tags_by_flag) {
        for (size_t i = 0; i < c->ntags; i++) {
            free(c->tags[i]);
        }
        c->ntags = 0;
        c->tags_by_flag = true;
    }
    if (v[0] == '\0' || strlen(v) > AGENT_TAG_MAX) {
        return conf_fail(why, whylen, "tag must be 1-%d characters",
                         AGENT_TAG_MAX);
    }
    if (c->ntags >= AGENT_TAGS_MAX) {
        return conf_fail(why, whylen, "more than %d tags", AGENT_TAGS_MAX);
    }
    if ((t = realloc(c->tags, (c->ntags + 1) * sizeof(*t))) == NULL) {
        return ERR_NOMEM;
    }
    c->tags = t;
    if ((c->tags[c->ntags] = strdup(v)) == NULL) {
        return ERR_NOMEM;
    }
    c->ntags++;
    return ERR_OK;
}

/* Repeatable; a flag replaces what the file listed. */
static int conf_set_allow(void *obj, const struct config_key *k, const char *v,
                          char *why, size_t whylen)
{
    struct agent_conf *c = obj;
    char awhy[160];
    int r;

    if (c->setting_by_flag && !c->allow_by_flag) {
        allow_list_clear(&c->allow);
        c->allow_by_flag = true;
    }
    r = allow_list_add(&c->allow, v, awhy, sizeof(awhy));
    if (r == ERR_NOMEM) {
        return r;
    }
    if (r != ERR_OK) {
        return conf_fail(why, whylen, "allow: %s", awhy);
    }
    return ERR_OK;
}

static int conf_set_command_rule(struct agent_conf *c, bool deny, const char *v,
                                 char *why, size_t whylen)
{
    return job_rules_add(&c->jobs, deny, v, why, whylen);
}

static int conf_set_command_allow(void *obj, const struct config_key *k,
                                  const char *v, char *why, size_t whylen)
{
    return conf_set_command_rule(obj, false, v, why, whylen);
}

static int conf_set_command_deny(void *obj, const struct config_key *k,
                                 const char *v, char *why, size_t whylen)
{
    return conf_set_command_rule(obj, true, v, why, whylen);
}

static int conf_set_script_interpreter(void *obj, const struct config_key *k,
                                       const char *v, char *why, size_t whylen)
{
    struct agent_conf *c = obj;

    return job_interp_add(&c->jobs, v, why, whylen);
}

static int conf_set_sudo_user(void *obj, const struct config_key *k,
                              const char *v, char *why, size_t whylen)
{
    struct agent_conf *c = obj;

    (void)k;
    return job_sudo_user_add(&c->jobs, v, why, whylen);
}

static int conf_set_results_dir(void *obj, const struct config_key *k,
                                const char *v, char *why, size_t whylen)
{
    struct agent_conf *c = obj;

    (void)k;
    if (v[0] != '\0' && (v[0] != '/' || strlen(v) > JOB_CWD_MAX)) {
        return conf_fail(why, whylen, "job_results_dir: an absolute path");
    }
    snprintf(c->jobs.results_dir, sizeof(c->jobs.results_dir), "%s", v);
    return ERR_OK;
}

static int conf_set_push_dir(void *obj, const struct config_key *k,
                             const char *v, char *why, size_t whylen)
{
    struct agent_conf *c = obj;

    (void)k;
    return job_push_dir_add(&c->jobs, v, why, whylen);
}

/* The proxy URL may carry a password: the old value is wiped. */
static int conf_set_proxy(void *obj, const struct config_key *k, const char *v,
                          char *why, size_t whylen)
{
    struct agent_conf *c = obj;

    if (strlen(v) > AGENT_URL_MAX) {
        return conf_fail(why, whylen, "proxy: URL too long");
    }
    conf_free_secret(&c->proxy);
    return conf_strdup(&c->proxy, v);
}

static int conf_set_log_level(void *obj, const struct config_key *k,
                              const char *v, char *why, size_t whylen)
{
    struct agent_conf *c = obj;
    int lvl = log_level_parse(v);

    if (lvl < 0) {
        return conf_fail(why, whylen,
                         "log_level must be error, warn, info or debug");
    }
    c->log_level = lvl;
    return ERR_OK;
}

#define AK(key, kind, field, lo, hi, fn)                                       \
    {                                                                          \
        "", key, kind, offsetof(struct agent_conf, field), lo, hi, fn          \
    }

/* Every key is a file line and a flag (--KEY VALUE). */
static const struct config_key agent_conf_keys[] = {
    AK("server", CK_STR, server, 0, AGENT_URL_MAX, NULL),
    AK("fingerprint", CK_FN, fingerprint, 0, 0, conf_set_fingerprint),
    AK("credential", CK_FN, cred_id, 0, 0, conf_set_credential),
    AK("id", CK_FN, id, 0, 0, conf_set_id),
    AK("name", CK_FN, name, 0, 0, conf_set_name),
    AK("tag", CK_FN, tags, 0, 0, conf_set_tag),
    AK("allow", CK_FN, allow, 0, 0, conf_set_allow),
    AK("proxy", CK_FN, proxy, 0, 0, conf_set_proxy),
    AK("ca", CK_STR, ca, 0, 0, NULL),
    AK("keepalive", CK_INT, keepalive, 1, 3600, NULL),
    AK("timeout", CK_INT, timeout, 1, 3600, NULL),
    AK("commands_enabled", CK_BOOL, jobs.enabled, 0, 0, NULL),
    AK("scripts_enabled", CK_BOOL, jobs.scripts_enabled, 0, 0, NULL),
    AK("script_interpreter", CK_FN, jobs, 0, 0, conf_set_script_interpreter),
    AK("job_results_dir", CK_FN, jobs, 0, 0, conf_set_results_dir),
    AK("job_results_keep_days", CK_INT, jobs.results_keep_days, 0, 36500, NULL),
    AK("file_push_dir", CK_FN, jobs, 0, 0, conf_set_push_dir),
    AK("command_allow", CK_FN, jobs, 0, 0, conf_set_command_allow),
    AK("command_deny", CK_FN, jobs, 0, 0, conf_set_command_deny),
    AK("command_timeout_max", CK_INT, jobs.timeout_max, 1, 86400, NULL),
    AK("allow_root", CK_BOOL, jobs.allow_root, 0, 0, NULL),
    AK("sudo_user", CK_FN, jobs, 0, 0, conf_set_sudo_user),
    AK("log_level", CK_FN, log_level, 0, 0, conf_set_log_level),
    AK("log-level", CK_FN, log_level, 0, 0, conf_set_log_level),
};

static const struct config_schema agent_conf_schema = {
    .keys = agent_conf_keys,
    .nkeys = sizeof(agent_conf_keys) / sizeof(agent_conf_keys[0]),
    .sections = false,
    .no_control = true,
};

int agent_conf_set(struct agent_conf *c, const char *key, const char *v,
                   bool by_flag, char *why, size_t whylen)
{
    int r;

    c->setting_by_flag = by_flag;
    r = config_set_key(&agent_conf_schema, c, "", key, v, NULL, why, whylen);
    c->setting_by_flag = false;
    if (r == ERR_NOT_FOUND) {
        return conf_fail(why, whylen, "unknown key '%.40s'", key);
    }
    return r;
}

int agent_conf_parse_text(struct agent_conf *c, const char *text, size_t len,
                          const char *path, char *why, size_t whylen)
{
    static char empty[] = "\n";
    FILE *f;
    int r;

    if (memchr(text, '\0', len) != NULL) {
        return conf_fail(why, whylen, "%s: not a text file", path);
    }
    /* (fmemopen wants one byte at least; it only reads here) */
    f = fmemopen(len > 0 ? (void *)(uintptr_t)text : (void *)empty,
                 len > 0 ? len : 1, "r");
    if (f == NULL) {
        return ERR_NOMEM;
    }
    c->secret_in_file = false;
    r = config_read_lines(&agent_conf_schema, f, path, NULL, c, why, whylen);
    if (r == ERR_IO) {
        r = conf_fail(why, whylen, "%s: cannot read", path);
    }
    fclose(f);
    return r;
}

int agent_conf_load(struct agent_conf *c, const char *path, char *why,
                    size_t whylen)
{
    uint8_t *data = NULL;
    size_t len = 0;
    struct stat st;
    int r;

    c->file = path;
    r = util_read_file(path, AGENT_CONF_FILE_MAX, &data, &len);
    if (r != ERR_OK) {
        return conf_fail(why, whylen, "%s: cannot read: %s", path,
                         r == ERR_TOO_LONG ? "file too large"
                                           : strerror(errno ? errno : EIO));
    }
    r = agent_conf_parse_text(c, (const char *)data, len, path, why, whylen);
    if (r != ERR_OK) {
        goto out;
    }
    if (c->secret_in_file && stat(path, &st) == 0 && (st.st_mode & 044) != 0) {
        log_warn("%s holds the credential secret and is readable by %s; "
                 "run: chmod 600 %s",
                 path, (st.st_mode & 004) ? "others" : "its group", path);
    }
out:
    sodium_memzero(data, len);
    free(data);
    return r;
}

static bool conf_in(const char *const *keys, const char *k)
{
    for (size_t i = 0; keys != NULL && keys[i] != NULL; i++) {
        if (strcmp(keys[i], k) == 0) {
            return true;
        }
    }
    return false;
}

int agent_conf_args(struct agent_conf *c, int argc, char **argv,
                    const char *const *extra_keys,
                    int (*extra_fn)(void *arg, const char *key,
                                    const char *value, char *why,
                                    size_t whylen),
                    void *extra_arg, enum agent_conf_action *action, char *why,
                    size_t whylen)
{
    char key[48], fwhy[256];
    const char *a, *val, *eq;
    int r, i;

    *action = AGENT_CONF_RUN;
    /* First pass: help, version, the config file. */
    for (i = 1; i < argc; i++) {
        a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *action = AGENT_CONF_HELP;
            return ERR_OK;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            *action = AGENT_CONF_VERSION;
            return ERR_OK;
        }
    }
    for (i = 1; i < argc; i++) {
        a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                return conf_fail(why, whylen, "%s needs a file", a);
            }
            if ((r = agent_conf_load(c, argv[++i], why, whylen)) != ERR_OK) {
                return r;
            }
        } else if (strncmp(a, "--config=", 9) == 0) {
            if ((r = agent_conf_load(c, a + 9, why, whylen)) != ERR_OK) {
                return r;
            }
        }
    }
    /* Second pass: every other flag, overriding the file. */
    for (i = 1; i < argc; i++) {
        a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0) {
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            return conf_fail(why, whylen,
                             "unexpected argument '%.60s' (see --help)", a);
        }
        a += 2;
        eq = strchr(a, '=');
        if ((eq != NULL ? (size_t)(eq - a) : strlen(a)) >= sizeof(key)) {
            return conf_fail(why, whylen, "unknown option --%.40s", a);
        }
        if (eq != NULL) {
            memcpy(key, a, (size_t)(eq - a));
            key[eq - a] = '\0';
            val = eq + 1;
        } else {
            snprintf(key, sizeof(key), "%s", a);
            if (i + 1 >= argc) {
                return conf_fail(why, whylen, "--%s needs a value", key);
            }
            val = argv[++i];
        }
        if (conf_in(extra_keys, key) && extra_fn != NULL) {
            r = extra_fn(extra_arg, key, val, fwhy, sizeof(fwhy));
        } else {
            c->setting_by_flag = true;
            r = config_set_key(&agent_conf_schema, c, "", key, val, NULL, fwhy,
                               sizeof(fwhy));
            c->setting_by_flag = false;
            if (r == ERR_NOT_FOUND) {
                return conf_fail(why, whylen,
                                 "unknown option --%s (see --help)", key);
            }
        }
        if (r == ERR_NOMEM) {
            return r;
        }
        if (r != ERR_OK) {
            return conf_fail(why, whylen, "--%s: %s", key, fwhy);
        }
    }
    return ERR_OK;
}

/* Splits "host[:port]" or "[v6][:port]" into a heap host and a port. */
static int conf_hostport(const char *s, size_t len, int defport, char **host,
                         int *port)
{
    const char *h = s, *hend, *p = NULL;
    char *end = NULL;
    long n;

    if (len == 0) {
        return ERR_INVALID;
    }
    if (s[0] == '[') {
        hend = memchr(s, ']', len);
        if (hend == NULL) {
            return ERR_INVALID;
        }
        h = s + 1;
        if (hend + 1 < s + len) {
            if (hend[1] != ':') {
                return ERR_INVALID;
            }
            p = hend + 2;
        }
    } else {
        hend = memchr(s, ':', len);
        if (hend == NULL) {
            hend = s + len;
        } else {
            p = hend + 1;
        }
    }
    if (hend == h) {
        return ERR_INVALID;
    }
    for (const char *q = h; q < hend; q++) {
        if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' &&
            *q != '_' && !(s[0] == '[' && *q == ':')) {
            return ERR_INVALID;
        }
    }
    *port = defport;
    if (p != NULL) {
        char digits[8];
        size_t dl = (size_t)(s + len - p);
        if (dl == 0 || dl >= sizeof(digits)) {
            return ERR_INVALID;
        }
        memcpy(digits, p, dl);
        digits[dl] = '\0';
        n = strtol(digits, &end, 10);
        if (*end != '\0' || n < 1 || n > 65535 ||
            !isdigit((unsigned char)digits[0])) {
            return ERR_INVALID;
        }
        *port = (int)n;
    }
    if (*port == 0) {
        return ERR_INVALID;
    }
    *host = strndup(h, (size_t)(hend - h));
    return *host == NULL ? ERR_NOMEM : ERR_OK;
}

/* One ws:// or wss:// URL s (not NUL-terminated: len bytes) into sv. */
static int conf_parse_url(const char *s, size_t len, struct agent_server *sv,
                          char *why, size_t whylen)
{
    const char *auth, *slash, *end = s + len;
    int r;

    if ((sv->url = strndup(s, len)) == NULL) {
        return ERR_NOMEM;
    }
    s = sv->url;
    end = s + len;
    if (strncmp(s, "wss://", 6) == 0) {
        sv->tls = true;
        auth = s + 6;
    } else if (strncmp(s, "ws://", 5) == 0) {
        sv->tls = false;
        auth = s + 5;
    } else {
        return conf_fail(why, whylen,
                         "server must be a ws:// or wss:// URL, got '%.80s'",
                         s);
    }
    slash = memchr(auth, '/', (size_t)(end - auth));
    if (slash == NULL) {
        slash = end;
    }
    if (memchr(auth, '@', (size_t)(slash - auth)) != NULL) {
        return conf_fail(why, whylen, "server: no user in the URL, please");
    }
    r = conf_hostport(auth, (size_t)(slash - auth), sv->tls ? 443 : 80,
                      &sv->host, &sv->port);
    if (r == ERR_NOMEM) {
        return r;
    }
    if (r != ERR_OK) {
        return conf_fail(why, whylen, "server: bad host or port in '%.80s'", s);
    }
    if (*slash == '\0' || strcmp(slash, "/") == 0) {
        slash = "/agent";
    }
    for (const char *q = slash; *q != '\0'; q++) {
        if ((unsigned char)*q <= ' ' || *q == '#') {
            return conf_fail(why, whylen, "server: bad path in '%.80s'", s);
        }
    }
    sv->path = strdup(slash);
    return sv->path == NULL ? ERR_NOMEM : ERR_OK;
}

/* server: one URL, or several separated by commas or spaces (the nodes
 * of a cluster, tried in turn). The first one's parts are also c->tls,
 * c->host, c->port and c->path. */
static int conf_parse_server(struct agent_conf *c, char *why, size_t whylen)
{
    const char *s = c->server, *tok;
    size_t len;
    int r;

    while (*s != '\0') {
        s += strspn(s, ", \t");
        if (*s == '\0') {
            break;
        }
        tok = s;
        len = strcspn(s, ", \t");
        s += len;
        if (c->nservers == AGENT_SERVERS_MAX) {
            return conf_fail(why, whylen, "server: at most %d URLs",
                             AGENT_SERVERS_MAX);
        }
        if ((r = conf_parse_url(tok, len, &c->servers[c->nservers++], why,
                                whylen)) != ERR_OK) {
            return r;
        }
        c->tls_any |= c->servers[c->nservers - 1].tls;
    }
    if (c->nservers == 0) {
        return conf_fail(why, whylen, "no server (--server ws://HOST:PORT)");
    }
    c->tls = c->servers[0].tls;
    c->port = c->servers[0].port;
    if ((c->host = strdup(c->servers[0].host)) == NULL ||
        (c->path = strdup(c->servers[0].path)) == NULL) {
        return ERR_NOMEM;
    }
    return ERR_OK;
}

static int conf_parse_proxy(struct agent_conf *c, char *why, size_t whylen)
{
    const char *s = c->proxy, *at, *hp, *end;
    char *host = NULL;
    int port = 0, r;
    size_t n;

    if (strncmp(s, "http://", 7) != 0) {
        return conf_fail(why, whylen,
                         "proxy must be http://[user:password@]host:port");
    }
    s += 7;
    end = s + strlen(s);
    if (end > s && end[-1] == '/') {
        end--;
    }
    at = NULL;
    for (const char *q = s; q < end; q++) {
        if (*q == '@') {
            at = q;
        }
    }
    hp = at != NULL ? at + 1 : s;
    if (at != NULL) {
        if (memchr(s, ':', (size_t)(at - s)) == NULL || at == s ||
            (size_t)(at - s) > AGENT_PROXY_AUTH_MAX) {
            return conf_fail(why, whylen,
                             "proxy: the user part must be user:password, "
                             "at most %d characters",
                             AGENT_PROXY_AUTH_MAX);
        }
        c->proxy_auth = true;
    }
    r = conf_hostport(hp, (size_t)(end - hp), 0, &host, &port);
    if (r == ERR_NOMEM) {
        return r;
    }
    if (r != ERR_OK) {
        return conf_fail(why, whylen,
                         "proxy must be http://[user:password@]host:port "
                         "(the port is required)");
    }
    free(host);
    n = (size_t)(end - s);
    c->proxy_lws = strndup(s, n);
    return c->proxy_lws == NULL ? ERR_NOMEM : ERR_OK;
}

int agent_conf_finish(struct agent_conf *c, bool skip_id, char *why,
                      size_t whylen)
{
    uint8_t *mid = NULL;
    size_t len = 0;
    int r;

    if (c->server == NULL) {
        return conf_fail(why, whylen, "no server (--server ws://HOST:PORT)");
    }
    if (c->fingerprint == NULL) {
        return conf_fail(why, whylen,
                         "no fingerprint (--fingerprint SHA256:..., from "
                         "`portcullis init`)");
    }
    if (c->cred_id == NULL) {
        return conf_fail(why, whylen, "no credential (--credential ID:SECRET)");
    }
    if (c->timeout <= c->keepalive) {
        return conf_fail(why, whylen,
                         "timeout (%d) must be greater than keepalive (%d)",
                         c->timeout, c->keepalive);
    }
    if ((r = conf_parse_server(c, why, whylen)) != ERR_OK) {
        return r;
    }
    if (c->proxy != NULL && (r = conf_parse_proxy(c, why, whylen)) != ERR_OK) {
        return r;
    }
    if (c->ca != NULL && !c->tls_any) {
        log_warn("ca is set but the server URL is ws://; it is not used");
    }
    if (c->allow.n == 0 && (r = allow_list_add_defaults(&c->allow)) != ERR_OK) {
        return r;
    }
    if (c->id == NULL && !skip_id) {
        r = util_read_file(AGENT_MACHINE_ID, 256, &mid, &len);
        if (r != ERR_OK) {
            return conf_fail(why, whylen,
                             "no id given and %s cannot be read; set id",
                             AGENT_MACHINE_ID);
        }
        while (len > 0 && (mid[len - 1] == '\n' || mid[len - 1] == ' ')) {
            mid[--len] = '\0';
        }
        if (!agent_conf_valid_id((char *)mid)) {
            free(mid);
            return conf_fail(why, whylen,
                             "%s does not hold a valid agent id; set id",
                             AGENT_MACHINE_ID);
        }
        c->id = (char *)mid;
    }
    return ERR_OK;
}
