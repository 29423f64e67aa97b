/*
 * The [directory "DOMAIN"] sections of portcullis.conf: which LDAP
 * directory (Active Directory, OpenLDAP, ...) checks the passwords of
 * logins "user@DOMAIN", and how its groups become Portcullis groups.
 * docs/directories.md lists the keys with examples.
 *
 * config.c keeps the keys of these sections as written (struct
 * config_subkey, with line numbers); directory_conf_parse() checks them
 * and builds one struct directory_conf per section. serve checks them at
 * start (monitor_init), the CLI when `portcullis directory` runs.
 *
 * Ownership: directory_conf_parse() returns an array the caller frees
 * with directory_conf_free(); all strings are heap copies.
 */
#ifndef PORTCULLIS_DIRECTORY_CONF_H
#define PORTCULLIS_DIRECTORY_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

#define DIRECTORY_URLS_MAX 8
#define DIRECTORY_MAPS_MAX 256
#define DIRECTORY_DOMAIN_MAX 253
/* the associated data of a sealed service-account password */
#define DIRECTORY_AD_BIND "directory-bind"

enum directory_nested {
    DIRECTORY_NESTED_OFF,       /* direct groups only */
    DIRECTORY_NESTED_IN_CHAIN,  /* AD's LDAP_MATCHING_RULE_IN_CHAIN */
    DIRECTORY_NESTED_RECURSIVE, /* one group search per level */
};

struct directory_map {
    char *from; /* a directory group's name (cn) or DN; case ignored */
    char *to;   /* a Portcullis group name */
};

struct directory_conf {
    char *name;                     /* the domain, lowercase: "contoso.com" */
    int line;                       /* of its section header */
    char *urls[DIRECTORY_URLS_MAX]; /* ldap:// or ldaps://, tried in order */
    size_t nurls;
    bool starttls; /* ldap:// URLs upgrade with StartTLS (required) */
    char *ca_file; /* CA certificates for TLS; NULL: the system's */
    char *bind;    /* user bind name: "{user}@contoso.com" (UPN) or a DN
                      template "uid={user},ou=people,dc=..."; NULL: search
                      for the user's DN with the service account */
    char *bind_dn; /* service account DN, or NULL */
    uint8_t *bind_password_sealed; /* its password, vault-sealed */
    size_t bind_password_sealed_len;
    char *base_dn;                /* where users are searched */
    char *user_filter;            /* "(uid={user})"; {user} escaped */
    char *group_base_dn;          /* where groups are searched */
    char *group_filter;           /* "(member={dn})": the user's groups */
    char *group_attribute;        /* "memberOf": read groups from the
                                     user's entry instead; NULL: search */
    char *group_name_attribute;   /* "cn" */
    char *display_name_attribute; /* "displayName" */
    char *mail_attribute;         /* "mail" */
    enum directory_nested nested;
    struct directory_map maps[DIRECTORY_MAPS_MAX];
    size_t nmaps;
    bool map_by_name; /* a group named like a Portcullis group maps to it */
    int connect_timeout_seconds; /* per server (TCP and TLS) */
    int timeout_seconds;         /* a whole login's directory work */
    int max_concurrent_binds;    /* logins checked at once */
    int key_cache_seconds;       /* keyed logins: how long a check holds */
};

/* Builds the directories of cfg's [directory "NAME"] sections into *out
 * (*n of them; NULL and 0 for none). On error returns ERR_CONFIG and a
 * one-line reason with the file and line in why. */
int directory_conf_parse(const struct config *cfg, struct directory_conf **out,
                         size_t *n, char *why, size_t whylen);
void directory_conf_free(struct directory_conf *d, size_t n);
/* The JSON form of d for `directory list --json` and the API: every
 * setting but the sealed password (only whether there is one). */
struct json_t;
struct json_t *directory_conf_json(const struct directory_conf *d);
/* The directory for domain (case ignored), or NULL. */
const struct directory_conf *directory_conf_find(const struct directory_conf *d,
                                                 size_t n, const char *domain);

#endif
