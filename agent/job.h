/*
 * Commands the server asks the agent to run (docs/agent-protocol.md §6,
 * docs/agent.md "Commands"). The agent's own configuration decides: the
 * rules here are checked in the agent, and nothing the server sends can
 * widen them.
 *
 * job_rules: commands_enabled, scripts_enabled, script_interpreter,
 * command_allow / command_deny (POSIX extended regular expressions),
 * command_timeout_max, allow_root.
 * job_check() says whether a request may run and, if not, which rule
 * refused it. job_request_parse() parses the server's request (fuzzed).
 * job_runner_spawn() starts a detached runner process that reads the
 * request from a socket, checks it, runs it and writes the result back.
 *
 * Ownership: job_rules_free() frees the compiled expressions.
 */
#ifndef PORTCULLIS_AGENT_JOB_H
#define PORTCULLIS_AGENT_JOB_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define JOB_DEST "job@portcullis" /* the direct-tcpip host of a job */
#define JOB_RULES_MAX 32
#define JOB_PATTERN_MAX 512
#define JOB_COMMAND_MAX 8192
#define JOB_CWD_MAX 4096
#define JOB_PUSH_DIRS_MAX 16
#define JOB_SUDO_USERS_MAX 16
#define JOB_SUDO_PATH "/usr/bin/sudo"
#define JOB_PUSH_SIZE_MAX (16 * 1024 * 1024)
#define JOB_ACCOUNT_MAX 32
#define JOB_INTERP_NAME_MAX 64
#define JOB_INTERP_MAX 16    /* script_interpreter entries */
#define JOB_SCRIPT_MAX 65536 /* bytes of a script */
/* a script's JSON escapes may grow it; the hub sends at most this */
#define JOB_REQUEST_MAX (3 * JOB_SCRIPT_MAX + 16384)
#define JOB_OUTPUT_CAP (4 * 1024 * 1024)
#define JOB_TIMEOUT_MAX_DEFAULT 300
#define JOB_RESULTS_KEEP_DAYS_DEFAULT 30
#define JOB_KILL_GRACE_MS 2000
#define JOB_TRUNC_MARKER "\n[portcullis: output truncated at 4194304 bytes]\n"
/* the characters the safe default refuses */
#define JOB_METACHARS ";&|$<>`\n"

struct job_rule {
    regex_t re;
    char pattern[JOB_PATTERN_MAX + 1];
};

struct job_interp {
    char name[JOB_INTERP_NAME_MAX + 1];
    char path[JOB_CWD_MAX + 1]; /* absolute */
};

struct job_rules {
    bool enabled;         /* commands_enabled (default false) */
    bool scripts_enabled; /* scripts_enabled (default false) */
    /* script_interpreter; none configured: the defaults (job.c) */
    struct job_interp interp[JOB_INTERP_MAX];
    size_t ninterp;
    bool allow_root; /* allow_root (default false) */
    int timeout_max; /* command_timeout_max seconds */
    struct job_rule allow[JOB_RULES_MAX];
    size_t nallow;
    struct job_rule deny[JOB_RULES_MAX];
    size_t ndeny;
    /* job_results_dir: where finished results wait for the server's
     * ack; "" : not kept */
    char results_dir[JOB_CWD_MAX + 1];
    /* job_results_keep_days: a kept result nobody asked for goes after
     * this many days (0: kept until the server asks) */
    int results_keep_days;
    /* file_push_dir: the directories pushed files may land in (and
     * below); none by default */
    char push_dirs[JOB_PUSH_DIRS_MAX][JOB_CWD_MAX + 1];
    size_t npush_dirs;
    /* sudo_user: the accounts a job may ask to run as, through sudo -n
     * (the host's sudoers must let the agent's user do so); none: sudo
     * is off */
    char sudo_users[JOB_SUDO_USERS_MAX][JOB_ACCOUNT_MAX + 1];
    size_t nsudo;
};

#define JOB_ID_MAX 64         /* [A-Za-z0-9-], a file name in job_results_dir */
#define JOB_ACK_WAIT_MS 30000 /* after the result, for the server's ack */

struct job_push {
    char path[JOB_CWD_MAX + 1]; /* absolute, no "." / ".." / empty parts */
    int mode;                   /* 0-01777 */
    char owner[JOB_ACCOUNT_MAX + 1], group[JOB_ACCOUNT_MAX + 1]; /* or "" */
    bool overwrite;
    char sha256[64 + 1]; /* lowercase hex */
    size_t size;
};

struct job_request {
    char id[JOB_ID_MAX + 1];    /* "" : the server gave none (not kept) */
    char fetch[JOB_ID_MAX + 1]; /* a fetch: the kept result of this job */
    char command[JOB_COMMAND_MAX + 1];         /* "" for a script */
    char interpreter[JOB_INTERP_NAME_MAX + 1]; /* "" for a command */
    char script[JOB_SCRIPT_MAX + 1];
    bool is_push; /* a file push: push, and size bytes after the line */
    struct job_push push;
    char cwd[JOB_CWD_MAX + 1];      /* "" : the runner's directory (/) */
    int timeout;                    /* seconds, 1-86400 */
    char sudo[JOB_ACCOUNT_MAX + 1]; /* "" : as the agent's own user */
};

void job_rules_init(struct job_rules *r);
void job_rules_free(struct job_rules *r);
/* Adds an allow (deny false) or deny rule. ERR_CONFIG with why. */
int job_rules_add(struct job_rules *r, bool deny, const char *pattern,
                  char *why, size_t whylen);
/* Adds a script_interpreter entry: "NAME=/absolute/path", or a NAME of
 * the defaults (sh, bash, python3, pwsh, powershell). ERR_CONFIG with
 * why. */
int job_interp_add(struct job_rules *r, const char *v, char *why,
                   size_t whylen);
/* Adds a file_push_dir (an absolute path without "." or ".." parts; a
 * trailing '/' is dropped). ERR_CONFIG with why. */
int job_push_dir_add(struct job_rules *r, const char *v, char *why,
                     size_t whylen);
/* Adds a sudo_user (an account name). ERR_CONFIG with why. */
int job_sudo_user_add(struct job_rules *r, const char *v, char *why,
                      size_t whylen);
/* The interpreter's path, or NULL if it is not permitted. */
const char *job_interp_path(const struct job_rules *r, const char *name);
/* true if the request may run as user euid; else false and why names the
 * rule that refused it. */
bool job_check(const struct job_rules *r, const struct job_request *q,
               uid_t euid, char *why, size_t whylen);
/* Parses {"id": S, "command": S, "cwd": S, "timeout": N}, {"id": S,
 * "interpreter": S, "script": S, "cwd": S, "timeout": N} or {"fetch": S,
 * "timeout": N} strictly (docs/agent-protocol.md §6). ERR_OK or
 * ERR_INVALID with why. Pure; fuzzed. */
int job_request_parse(const char *data, size_t len, struct job_request *out,
                      char *why, size_t whylen);
/* Starts a runner on fd (it owns a dup of it; the caller still closes
 * its own copy). The runner is detached (reparented to init): the agent
 * never waits for it. ERR_OK or ERR_IO. */
int job_runner_spawn(const struct job_rules *r, int fd);
/* Deletes the kept results in r->results_dir last written more than
 * max_age seconds ago, except those a runner holds (a job still running
 * keeps its file locked). The number deleted, or -1 if the directory
 * cannot be read. */
int job_results_sweep(const struct job_rules *r, long long max_age);

#endif
