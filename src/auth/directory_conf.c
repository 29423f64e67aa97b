/*
 * Checks the [directory "DOMAIN"] sections; see directory_conf.h. A typo
 * here would silently change who may log in, so every key is known, every
 * value checked, and an error names the file and line.
 */
#include "auth/directory_conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "common/config.h"
#include "common/err.h"

#define DIRECTORY_SEALED_MAX 1024

static int dconf_str(char **dst, const char *v)
{
    char *s = strdup(v);

    if (s == NULL) {
        return ERR_NOMEM;
    }
    free(*dst);
    *dst = s;
    return ERR_OK;
}

/* "text" -> text: values may be quoted (they often hold spaces). */
static void dconf_unquote(const char *v, char *out, size_t outlen)
{
    size_t len = strlen(v);

    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        snprintf(out, outlen, "%.*s", (int)(len - 2), v + 1);
    } else {
        snprintf(out, outlen, "%s", v);
    }
}

static bool dconf_domain_ok(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > DIRECTORY_DOMAIN_MAX || s[0] == '.' || s[0] == '-' ||
        s[len - 1] == '.') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-') {
            return false;
        }
    }
    return true;
}

static int dconf_int(const char *v, int lo, int hi, int *out)
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

static int dconf_bool(const char *v, bool *out)
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

static bool dconf_url_ok(const char *u)
{
    return (strncasecmp(u, "ldap://", 7) == 0 && u[7] != '\0') ||
           (strncasecmp(u, "ldaps://", 8) == 0 && u[8] != '\0');
}

static struct directory_conf *dconf_new(struct directory_conf **list, size_t *n,
                                        const char *name, int line)
{
    struct directory_conf *nl, *d;

    nl = realloc(*list, (*n + 1) * sizeof(*nl));
    if (nl == NULL) {
        return NULL;
    }
    *list = nl;
    d = &nl[*n];
    memset(d, 0, sizeof(*d));
    d->line = line;
    d->nested = DIRECTORY_NESTED_RECURSIVE;
    d->connect_timeout_seconds = 3;
    d->timeout_seconds = 5;
    d->max_concurrent_binds = 4;
    d->key_cache_seconds = 300;
    if ((d->name = strdup(name)) == NULL) {
        return NULL;
    }
    for (char *p = d->name; *p != '\0'; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    (*n)++;
    return d;
}

/* "FROM -> TO" */
static int dconf_map(struct directory_conf *d, const char *v)
{
    const char *arrow = strstr(v, "->");
    char from[512], to[512];
    size_t a, b;
    struct directory_map *m;

    if (arrow == NULL || d->nmaps == DIRECTORY_MAPS_MAX) {
        return ERR_CONFIG;
    }
    a = (size_t)(arrow - v);
    while (a > 0 && isspace((unsigned char)v[a - 1])) {
        a--;
    }
    arrow += 2;
    while (isspace((unsigned char)*arrow)) {
        arrow++;
    }
    b = strlen(arrow);
    if (a == 0 || b == 0 || a >= sizeof(from) || b >= sizeof(to)) {
        return ERR_CONFIG;
    }
    snprintf(from, sizeof(from), "%.*s", (int)a, v);
    snprintf(to, sizeof(to), "%s", arrow);
    m = &d->maps[d->nmaps];
    if ((m->from = strdup(from)) == NULL || (m->to = strdup(to)) == NULL) {
        free(m->from);
        m->from = NULL;
        return ERR_NOMEM;
    }
    d->nmaps++;
    return ERR_OK;
}

/* A relative path is taken from the config file's directory. */
static int dconf_path(char **dst, const char *cfgpath, const char *v)
{
    const char *slash = strrchr(cfgpath, '/');
    char *s;
    size_t n;

    if (v[0] == '/' || slash == NULL) {
        return dconf_str(dst, v);
    }
    n = (size_t)(slash - cfgpath) + 1 + strlen(v) + 1;
    if ((s = malloc(n)) == NULL) {
        return ERR_NOMEM;
    }
    snprintf(s, n, "%.*s/%s", (int)(slash - cfgpath), cfgpath, v);
    free(*dst);
    *dst = s;
    return ERR_OK;
}

/* One key; ERR_CONFIG with *what set to what the value should be. */
static int dconf_key(struct directory_conf *d, const struct config *cfg,
                     const char *k, const char *v, const char **what)
{
    char *copy, *tok, *save = NULL;
    int r = ERR_OK;

    if (strcmp(k, "url") == 0) {
        *what = "one or more ldap:// or ldaps:// URLs, separated by spaces";
        if ((copy = strdup(v)) == NULL) {
            return ERR_NOMEM;
        }
        for (tok = strtok_r(copy, " ,", &save); tok != NULL && r == ERR_OK;
             tok = strtok_r(NULL, " ,", &save)) {
            if (!dconf_url_ok(tok) || d->nurls == DIRECTORY_URLS_MAX) {
                r = ERR_CONFIG;
            } else if ((d->urls[d->nurls] = strdup(tok)) == NULL) {
                r = ERR_NOMEM;
            } else {
                d->nurls++;
            }
        }
        free(copy);
        return r;
    }
    if (strcmp(k, "starttls") == 0) {
        *what = "true or false";
        return dconf_bool(v, &d->starttls);
    }
    if (strcmp(k, "map_by_name") == 0) {
        *what = "true or false";
        return dconf_bool(v, &d->map_by_name);
    }
    if (strcmp(k, "ca_file") == 0) {
        *what = "a file";
        return v[0] == '\0' ? ERR_CONFIG
                            : dconf_path(&d->ca_file, cfg->path, v);
    }
    if (strcmp(k, "bind") == 0) {
        *what = "a template with {user}, e.g. {user}@contoso.com or "
                "uid={user},ou=people,dc=contoso,dc=com";
        return strstr(v, "{user}") == NULL ? ERR_CONFIG
                                           : dconf_str(&d->bind, v);
    }
    if (strcmp(k, "user_filter") == 0) {
        *what = "an LDAP filter in parentheses with {user}, e.g. (uid={user})";
        return v[0] != '(' || strstr(v, "{user}") == NULL
                   ? ERR_CONFIG
                   : dconf_str(&d->user_filter, v);
    }
    if (strcmp(k, "group_filter") == 0) {
        *what = "an LDAP filter in parentheses with {dn}, e.g. (member={dn})";
        return v[0] != '(' || strstr(v, "{dn}") == NULL
                   ? ERR_CONFIG
                   : dconf_str(&d->group_filter, v);
    }
    if (strcmp(k, "bind_password_sealed") == 0) {
        uint8_t bin[DIRECTORY_SEALED_MAX];
        size_t len = 0;

        *what = "the output of `portcullis directory seal-password`";
        if (sodium_base642bin(bin, sizeof(bin), v, strlen(v), NULL, &len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            len == 0) {
            return ERR_CONFIG;
        }
        free(d->bind_password_sealed);
        if ((d->bind_password_sealed = malloc(len)) == NULL) {
            return ERR_NOMEM;
        }
        memcpy(d->bind_password_sealed, bin, len);
        d->bind_password_sealed_len = len;
        return ERR_OK;
    }
    if (strcmp(k, "nested_groups") == 0) {
        *what = "off, in_chain or recursive";
        if (strcmp(v, "off") == 0) {
            d->nested = DIRECTORY_NESTED_OFF;
        } else if (strcmp(v, "in_chain") == 0) {
            d->nested = DIRECTORY_NESTED_IN_CHAIN;
        } else if (strcmp(v, "recursive") == 0) {
            d->nested = DIRECTORY_NESTED_RECURSIVE;
        } else {
            return ERR_CONFIG;
        }
        return ERR_OK;
    }
    if (strcmp(k, "map_group") == 0) {
        *what = "\"DIRECTORY GROUP -> PORTCULLIS GROUP\"";
        return dconf_map(d, v);
    }
    {
        static const struct {
            const char *key;
            size_t off;
        } strs[] = {
            {"bind_dn", offsetof(struct directory_conf, bind_dn)},
            {"base_dn", offsetof(struct directory_conf, base_dn)},
            {"group_base_dn", offsetof(struct directory_conf, group_base_dn)},
            {"group_attribute",
             offsetof(struct directory_conf, group_attribute)},
            {"group_name_attribute",
             offsetof(struct directory_conf, group_name_attribute)},
            {"display_name_attribute",
             offsetof(struct directory_conf, display_name_attribute)},
            {"mail_attribute", offsetof(struct directory_conf, mail_attribute)},
        };
        static const struct {
            const char *key;
            size_t off;
            int lo, hi;
        } ints[] = {
            {"connect_timeout_seconds",
             offsetof(struct directory_conf, connect_timeout_seconds), 1, 60},
            {"timeout_seconds",
             offsetof(struct directory_conf, timeout_seconds), 1, 120},
            {"max_concurrent_binds",
             offsetof(struct directory_conf, max_concurrent_binds), 1, 64},
            {"key_cache_seconds",
             offsetof(struct directory_conf, key_cache_seconds), 0, 86400},
        };
        static char range[64];

        for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
            if (strcmp(k, strs[i].key) == 0) {
                *what = "a value";
                return v[0] == '\0'
                           ? ERR_CONFIG
                           : dconf_str((char **)((char *)d + strs[i].off), v);
            }
        }
        for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
            if (strcmp(k, ints[i].key) == 0) {
                snprintf(range, sizeof(range), "an integer from %d to %d",
                         ints[i].lo, ints[i].hi);
                *what = range;
                return dconf_int(v, ints[i].lo, ints[i].hi,
                                 (int *)((char *)d + ints[i].off));
            }
        }
    }
    *what = NULL; /* unknown key */
    return ERR_CONFIG;
}

static int dconf_defaults(struct directory_conf *d, const char *path, char *why,
                          size_t whylen)
{
    int r = ERR_OK;

    if (d->nurls == 0 || d->base_dn == NULL) {
        snprintf(why, whylen, "%s:%d: [directory \"%s\"] needs url and base_dn",
                 path, d->line, d->name);
        return ERR_CONFIG;
    }
    if (d->bind == NULL && d->bind_dn == NULL) {
        snprintf(why, whylen,
                 "%s:%d: [directory \"%s\"] needs bind (a template such as "
                 "{user}@%s) or bind_dn and bind_password_sealed (a service "
                 "account that searches for the user)",
                 path, d->line, d->name, d->name);
        return ERR_CONFIG;
    }
    if ((d->bind_dn == NULL) != (d->bind_password_sealed == NULL)) {
        snprintf(why, whylen,
                 "%s:%d: [directory \"%s\"] bind_dn and bind_password_sealed "
                 "go together",
                 path, d->line, d->name);
        return ERR_CONFIG;
    }
    if (d->starttls) {
        for (size_t i = 0; i < d->nurls; i++) {
            if (strncasecmp(d->urls[i], "ldaps://", 8) == 0) {
                snprintf(why, whylen,
                         "%s:%d: [directory \"%s\"] starttls is for ldap:// "
                         "URLs, %s is ldaps:// already",
                         path, d->line, d->name, d->urls[i]);
                return ERR_CONFIG;
            }
        }
    }
    if ((d->user_filter == NULL &&
         (r = dconf_str(&d->user_filter, "(uid={user})")) != ERR_OK) ||
        (d->group_base_dn == NULL &&
         (r = dconf_str(&d->group_base_dn, d->base_dn)) != ERR_OK) ||
        (d->group_filter == NULL &&
         (r = dconf_str(&d->group_filter,
                        "(|(member={dn})(uniqueMember={dn}))")) != ERR_OK) ||
        (d->group_name_attribute == NULL &&
         (r = dconf_str(&d->group_name_attribute, "cn")) != ERR_OK) ||
        (d->display_name_attribute == NULL &&
         (r = dconf_str(&d->display_name_attribute, "displayName")) !=
             ERR_OK) ||
        (d->mail_attribute == NULL &&
         (r = dconf_str(&d->mail_attribute, "mail")) != ERR_OK)) {
        snprintf(why, whylen, "%s", err_str(r));
    }
    return r;
}

int directory_conf_parse(const struct config *cfg, struct directory_conf **out,
                         size_t *n, char *why, size_t whylen)
{
    struct directory_conf *list = NULL, *d = NULL;
    const struct config_subkey *s;
    const char *what = NULL;
    char v[4096];
    size_t cnt = 0, i;
    int r = ERR_OK;

    *out = NULL;
    *n = 0;
    for (i = 0; i < cfg->nsubkeys; i++) {
        s = &cfg->subkeys[i];
        if (strcmp(s->kind, "directory") != 0) {
            continue;
        }
        if (s->key[0] == '\0') {
            if (!dconf_domain_ok(s->name)) {
                snprintf(why, whylen,
                         "%s:%d: [directory \"%s\"]: the name must be a "
                         "domain (letters, digits, dots, hyphens)",
                         cfg->path, s->line, s->name);
                r = ERR_CONFIG;
                goto out;
            }
            if (directory_conf_find(list, cnt, s->name) != NULL) {
                snprintf(why, whylen, "%s:%d: [directory \"%s\"] appears twice",
                         cfg->path, s->line, s->name);
                r = ERR_CONFIG;
                goto out;
            }
            if ((d = dconf_new(&list, &cnt, s->name, s->line)) == NULL) {
                r = ERR_NOMEM;
                snprintf(why, whylen, "%s", err_str(r));
                goto out;
            }
            continue;
        }
        dconf_unquote(s->value, v, sizeof(v));
        r = dconf_key(d, cfg, s->key, v, &what);
        if (r == ERR_NOMEM) {
            snprintf(why, whylen, "%s", err_str(r));
            goto out;
        }
        if (r != ERR_OK) {
            if (what == NULL) {
                snprintf(why, whylen,
                         "%s:%d: unknown key '%s' in [directory \"%s\"] (see "
                         "docs/directories.md)",
                         cfg->path, s->line, s->key, s->name);
            } else {
                snprintf(why, whylen, "%s:%d: '%s' needs %s", cfg->path,
                         s->line, s->key, what);
            }
            r = ERR_CONFIG;
            goto out;
        }
    }
    for (i = 0; i < cnt; i++) {
        if ((r = dconf_defaults(&list[i], cfg->path, why, whylen)) != ERR_OK) {
            goto out;
        }
    }
out:
    sodium_memzero(v, sizeof(v));
    if (r != ERR_OK) {
        directory_conf_free(list, cnt);
        return r;
    }
    *out = list;
    *n = cnt;
    return ERR_OK;
}

void directory_conf_free(struct directory_conf *d, size_t n)
{
    if (d == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(d[i].name);
        for (size_t j = 0; j < d[i].nurls; j++) {
            free(d[i].urls[j]);
        }
        free(d[i].ca_file);
        free(d[i].bind);
        free(d[i].bind_dn);
        free(d[i].bind_password_sealed);
        free(d[i].base_dn);
        free(d[i].user_filter);
        free(d[i].group_base_dn);
        free(d[i].group_filter);
        free(d[i].group_attribute);
        free(d[i].group_name_attribute);
        free(d[i].display_name_attribute);
        free(d[i].mail_attribute);
        for (size_t j = 0; j < d[i].nmaps; j++) {
            free(d[i].maps[j].from);
            free(d[i].maps[j].to);
        }
    }
    free(d);
}

const struct directory_conf *directory_conf_find(const struct directory_conf *d,
                                                 size_t n, const char *domain)
{
    for (size_t i = 0; d != NULL && domain != NULL && i < n; i++) {
        if (strcasecmp(d[i].name, domain) == 0) {
            return &d[i];
        }
    }
    return NULL;
}

json_t *directory_conf_json(const struct directory_conf *d)
{
    static const char *const nested[] = {
        [DIRECTORY_NESTED_OFF] = "off",
        [DIRECTORY_NESTED_IN_CHAIN] = "in_chain",
        [DIRECTORY_NESTED_RECURSIVE] = "recursive",
    };
    json_t *urls = json_array(), *maps = json_array();

    for (size_t i = 0; i < d->nurls; i++) {
        json_array_append_new(urls, json_string(d->urls[i]));
    }
    for (size_t i = 0; i < d->nmaps; i++) {
        json_array_append_new(maps,
                              json_pack("{s:s, s:s}", "from", d->maps[i].from,
                                        "to", d->maps[i].to));
    }
    return json_pack(
        "{s:s, s:o, s:b, s:s?, s:s?, s:s?, s:b, s:s, s:s, s:s, s:s, s:s?, "
        "s:s, s:s, s:o, s:b, s:i, s:i, s:i, s:i}",
        "domain", d->name, "urls", urls, "starttls", d->starttls, "ca_file",
        d->ca_file, "bind", d->bind, "bind_dn", d->bind_dn,
        "bind_password_sealed", d->bind_password_sealed != NULL, "base_dn",
        d->base_dn, "user_filter", d->user_filter, "group_base_dn",
        d->group_base_dn, "group_filter", d->group_filter, "group_attribute",
        d->group_attribute, "group_name_attribute", d->group_name_attribute,
        "nested_groups", nested[d->nested], "map_group", maps, "map_by_name",
        d->map_by_name, "connect_timeout_seconds", d->connect_timeout_seconds,
        "timeout_seconds", d->timeout_seconds, "max_concurrent_binds",
        d->max_concurrent_binds, "key_cache_seconds", d->key_cache_seconds);
}
