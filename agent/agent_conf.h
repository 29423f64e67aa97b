/*
 * The agent's configuration: a file of "key = value" lines
 * (portcullis-agent -c FILE) and the same keys as flags, flags winning.
 * Both go through one table of keys read by the server's own reader
 * (common/config.h: config_read_lines, config_set_key), so a refusal is
 * worded the same way ("FILE:LINE: what", "--KEY: what").
 * Keys: server, fingerprint, credential (ID:SECRET), id, name, tag
 * (repeatable), allow (repeatable), proxy, ca, keepalive, timeout,
 * log_level. See docs/agent.md.
 *
 * Ownership: agent_conf_free() frees every string and wipes the secret
 * (credential). Parsed forms of the server URL and proxy live here too.
 */
#ifndef PORTCULLIS_AGENT_CONF_H
#define PORTCULLIS_AGENT_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/allow.h"
#include "agent/job.h"

#define AGENT_ID_MAX 64
#define AGENT_NAME_MAX 128
#define AGENT_TAG_MAX 64
#define AGENT_TAGS_MAX 32
#define AGENT_FP_LEN 50 /* "SHA256:" + 43 characters of unpadded base64 */
#define AGENT_SECRET_MAX 256
#define AGENT_CONF_FILE_MAX (256 * 1024)
#define AGENT_SERVERS_MAX 8 /* URLs in server (the nodes of a cluster) */

/* One server URL, parsed. */
struct agent_server {
    char *url;  /* as configured */
    bool tls;   /* wss:// */
    char *host; /* without brackets */
    int port;
    char *path; /* default "/agent" */
};

struct agent_conf {
    /* ws://host[:port][/path] or wss://...; several (a cluster's nodes)
     * separated by commas or spaces, tried in turn */
    char *server;
    char *fingerprint; /* SHA256:... */
    char *cred_id;     /* credential ID (the SSH user name) */
    char *cred_secret; /* credential secret (wiped on free) */
    char *id;          /* agent ID; NULL: /etc/machine-id */
    char *name;        /* display name; NULL: the host name */
    char **tags;       /* ntags strings */
    size_t ntags;
    struct allow_list allow; /* empty: the defaults */
    char *proxy;             /* http://[user:pass@]host:port, or NULL */
    char *ca;                /* CA file for wss://, or NULL: system CAs */
    int keepalive;           /* seconds of silence before a PING */
    int timeout;             /* seconds of silence before hanging up */
    int log_level;           /* enum log_level */
    struct job_rules jobs;   /* commands_enabled, command_*, allow_root */

    /* Parsed by agent_conf_finish(). */
    struct agent_server servers[AGENT_SERVERS_MAX];
    size_t nservers;
    bool tls_any;         /* one of them is wss:// */
    bool tls;             /* the first server's: wss:// */
    char *host;           /* the first server's host, without brackets */
    int port;             /* its port */
    char *path;           /* its request path, default "/agent" */
    char *proxy_lws;      /* "[user:pass@]host:port" for lws_set_proxy */
    bool proxy_auth;      /* the proxy URL carries a user */
    const char *file;     /* the config file given with -c, or NULL */
    bool tags_by_flag;    /* a --tag replaced the file's tags */
    bool allow_by_flag;   /* an --allow replaced the file's entries */
    bool setting_by_flag; /* while a flag (not a file line) is being set */
    bool secret_in_file;  /* the file being loaded held the credential */
};

enum agent_conf_action {
    AGENT_CONF_RUN = 0,
    AGENT_CONF_HELP,
    AGENT_CONF_VERSION,
};

void agent_conf_init(struct agent_conf *c);
void agent_conf_free(struct agent_conf *c);

/* Sets one key (from a file line or a flag). ERR_CONFIG with a one-line
 * reason in why. */
int agent_conf_set(struct agent_conf *c, const char *key, const char *value,
                   bool by_flag, char *why, size_t whylen);
/* Reads a config file; errors name the file and line. Warns when the file
 * holds the credential and is readable by group or others. */
int agent_conf_load(struct agent_conf *c, const char *path, char *why,
                    size_t whylen);
/* The same from len bytes of text in memory (the fuzz target, tests);
 * path names it in messages. Nothing is read from disk. */
int agent_conf_parse_text(struct agent_conf *c, const char *text, size_t len,
                          const char *path, char *why, size_t whylen);
/* Parses argv: -c FILE first (loaded before the other flags apply), then
 * every flag. extra_keys: flags the caller handles itself (NULL-terminated
 * long names without "--", each taking a value), reported through
 * extra_fn. Sets *action for --help / --version. */
int agent_conf_args(struct agent_conf *c, int argc, char **argv,
                    const char *const *extra_keys,
                    int (*extra_fn)(void *arg, const char *key,
                                    const char *value, char *why,
                                    size_t whylen),
                    void *extra_arg, enum agent_conf_action *action, char *why,
                    size_t whylen);
/* Checks required keys and parses the URLs; applies defaults (allow-list,
 * id from /etc/machine-id unless skip_id). */
int agent_conf_finish(struct agent_conf *c, bool skip_id, char *why,
                      size_t whylen);
/* true if s is a valid agent ID (1-64 of A-Z a-z 0-9 . _ -). */
bool agent_conf_valid_id(const char *s);

#endif
