/*
 * Commands run on the agent (job.h). The runner is a process of its own
 * (forked twice, so the agent has nothing to reap): it reads the request
 * from its socket until EOF, checks it against the rules, runs
 * /bin/sh -c COMMAND in a new process group, captures stdout and stderr
 * (each capped at JOB_OUTPUT_CAP, then the truncation marker), and at the
 * timeout sends SIGTERM to the whole group, then SIGKILL after
 * JOB_KILL_GRACE_MS. When the job ends the group is killed anyway, so
 * nothing the command started outlives it. The result goes back on the
 * socket: one JSON header line, then the stdout and stderr bytes
 * (docs/agent-protocol.md §6).
 */
#include "agent/job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <sodium.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"

#define JOB_SCRIPT_FD 3 /* the script, as /dev/fd/3 */

extern char **environ;

static void job_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
}

void job_rules_init(struct job_rules *r)
{
    memset(r, 0, sizeof(*r));
    r->timeout_max = JOB_TIMEOUT_MAX_DEFAULT;
    r->results_keep_days = JOB_RESULTS_KEEP_DAYS_DEFAULT;
}

void job_rules_free(struct job_rules *r)
{
    for (size_t i = 0; i < r->nallow; i++) {
        regfree(&r->allow[i].re);
    }
    for (size_t i = 0; i < r->ndeny; i++) {
        regfree(&r->deny[i].re);
    }
    r->nallow = r->ndeny = 0;
}

/* glibc's regcomp copies an operand once per "+" and once per count of
 * "{n,m}", so nested repetitions ("((a+)+)+", "(a{40}){40}") grow its tree
 * as the product of their factors, and stacked ones ("a???+++", which POSIX
 * leaves undefined) blow up its epsilon closures: 60 "+" in a row exhausted
 * memory and "?"s stacked before "+"s ran for minutes (found by
 * fuzz_agent_conf). job_pattern_cost() refuses a repetition operator right
 * after another, more than JOB_REPEAT_OPS of them, and a copy product above
 * JOB_REPEAT_MAX; 32 patterns at those limits compile in well under a
 * second. Returns NULL when pattern (ERE) is fine, else the reason. */
#define JOB_REPEAT_MAX 1024
#define JOB_REPEAT_OPS 64
#define JOB_STR_(x) #x
#define JOB_STR(x) JOB_STR_(x)
static const char *job_pattern_cost(const char *p)
{
    long grp[JOB_PATTERN_MAX + 2], last = 1, worst = 1, m;
    size_t d = 0;
    int ops = 0;
    bool after_op = false;

    grp[0] = 1;
    for (; *p != '\0'; p++) {
        bool op = (*p == '+' || *p == '*' || *p == '?' || *p == '{');

        if (op && after_op) {
            return "two repetition operators in a row (like \"a*+\" or "
                   "\"a{2}?\"); group the operand instead: \"(a*)+\"";
        }
        if (op && ++ops > JOB_REPEAT_OPS) {
            return "more than " JOB_STR(JOB_REPEAT_OPS) " repetition operators";
        }
        after_op = op;
        m = 1;
        if (*p == '\\' && p[1] != '\0') {
            p++;
            last = 1;
        } else if (*p == '[') {
            /* a bracket expression is one atom: "[]...]", "[^]...]",
             * "[:class:]" inside */
            p += (p[1] == '^') ? 2 : 1;
            if (*p == ']') {
                p++;
            }
            while (*p != '\0' && *p != ']') {
                if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
                    const char *end = strchr(p + 2, p[1]);
                    p = (end != NULL && end[1] == ']') ? end + 1 : p;
                }
                p++;
            }
            if (*p == '\0') {
                break;
            }
            last = 1;
        } else if (*p == '(' && d + 1 < sizeof(grp) / sizeof(grp[0])) {
            grp[++d] = 1;
            continue;
        } else if (*p == ')' && d > 0) {
            last = grp[d--];
        } else if (*p == '+') {
            m = 2;
        } else if (*p == '{') {
            long a = 0, b = 0;
            for (p++; *p >= '0' && *p <= '9'; p++) {
                a = a < JOB_REPEAT_MAX ? a * 10 + (*p - '0') : a;
            }
            if (*p == ',') {
                for (p++; *p >= '0' && *p <= '9'; p++) {
                    b = b < JOB_REPEAT_MAX ? b * 10 + (*p - '0') : b;
                }
            }
            m = (a > b ? a : b) + 1;
            if (*p == '\0') {
                break;
            }
        } else if (*p == '*' || *p == '?' || *p == '|') {
            continue;
        } else {
            last = 1;
        }
        last = last * m > JOB_REPEAT_MAX ? JOB_REPEAT_MAX + 1 : last * m;
        grp[d] = grp[d] > last ? grp[d] : last;
        worst = worst > last ? worst : last;
    }
    return worst > JOB_REPEAT_MAX
               ? "repetitions nested too deep (\"+\" and \"{n,m}\" "
                 "multiply; at most " JOB_STR(JOB_REPEAT_MAX) " copies)"
               : NULL;
}

int job_rules_add(struct job_rules *r, bool deny, const char *pattern,
                  char *why, size_t whylen)
{
    struct job_rule *rule;
    size_t *n = deny ? &r->ndeny : &r->nallow;
    const char *key = deny ? "command_deny" : "command_allow";
    const char *cost;
    char err[128];
    int rc;

    if (*n >= JOB_RULES_MAX) {
        job_why(why, whylen, "%s: at most %d rules", key, JOB_RULES_MAX);
        return ERR_CONFIG;
    }
    if (pattern[0] == '\0' || strlen(pattern) > JOB_PATTERN_MAX) {
        job_why(why, whylen, "%s: a pattern of 1-%d characters", key,
                JOB_PATTERN_MAX);
        return ERR_CONFIG;
    }
    if ((cost = job_pattern_cost(pattern)) != NULL) {
        job_why(why, whylen, "%s: %s", key, cost);
        return ERR_CONFIG;
    }
    rule = deny ? &r->deny[*n] : &r->allow[*n];
    if ((rc = regcomp(&rule->re, pattern, REG_EXTENDED)) != 0) {
        regerror(rc, &rule->re, err, sizeof(err));
        job_why(why, whylen, "%s: bad regular expression: %s", key, err);
        return ERR_CONFIG;
    }
    snprintf(rule->pattern, sizeof(rule->pattern), "%s", pattern);
    (*n)++;
    return ERR_OK;
}

static const struct {
    const char *name, *path;
} job_interp_defaults[] = {
    {"sh", "/bin/sh"},
    {"bash", "/bin/bash"},
    {"python3", "/usr/bin/python3"},
    {"pwsh", "/usr/bin/pwsh"},
    {"powershell", "/usr/bin/pwsh"},
};
#define JOB_NDEFAULTS                                                          \
    (sizeof(job_interp_defaults) / sizeof(job_interp_defaults[0]))

int job_interp_add(struct job_rules *r, const char *v, char *why, size_t whylen)
{
    const char *eq = strchr(v, '=');
    size_t nl = eq != NULL ? (size_t)(eq - v) : strlen(v);
    const char *path = NULL;
    struct job_interp *in;

    if (r->ninterp >= JOB_INTERP_MAX) {
        job_why(why, whylen, "script_interpreter: at most %d", JOB_INTERP_MAX);
        return ERR_CONFIG;
    }
    if (nl == 0 || nl > JOB_INTERP_NAME_MAX ||
        strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789._-") != nl) {
        job_why(why, whylen,
                "script_interpreter: NAME or NAME=/path (NAME: letters, "
                "digits, '.', '_', '-')");
        return ERR_CONFIG;
    }
    if (eq != NULL) {
        path = eq + 1;
        if (path[0] != '/' || strlen(path) > JOB_CWD_MAX) {
            job_why(why, whylen, "script_interpreter: an absolute path");
            return ERR_CONFIG;
        }
    } else {
        for (size_t i = 0; i < JOB_NDEFAULTS; i++) {
            if (strcmp(job_interp_defaults[i].name, v) == 0) {
                path = job_interp_defaults[i].path;
            }
        }
        if (path == NULL) {
            job_why(why, whylen,
                    "script_interpreter: '%s' has no default path; write "
                    "%s=/path",
                    v, v);
            return ERR_CONFIG;
        }
    }
    in = &r->interp[r->ninterp++];
    snprintf(in->name, sizeof(in->name), "%.*s", (int)nl, v);
    snprintf(in->path, sizeof(in->path), "%s", path);
    return ERR_OK;
}

const char *job_interp_path(const struct job_rules *r, const char *name)
{
    if (r->ninterp == 0) {
        for (size_t i = 0; i < JOB_NDEFAULTS; i++) {
            if (strcmp(job_interp_defaults[i].name, name) == 0) {
                return job_interp_defaults[i].path;
            }
        }
        return NULL;
    }
    for (size_t i = 0; i < r->ninterp; i++) {
        if (strcmp(r->interp[i].name, name) == 0) {
            return r->interp[i].path;
        }
    }
    return NULL;
}

int job_push_dir_add(struct job_rules *r, const char *v, char *why,
                     size_t whylen)
{
    char d[JOB_CWD_MAX + 2];
    size_t n;

    if (r->npush_dirs >= JOB_PUSH_DIRS_MAX) {
        job_why(why, whylen, "file_push_dir: at most %d", JOB_PUSH_DIRS_MAX);
        return ERR_CONFIG;
    }
    snprintf(d, sizeof(d), "%s", v);
    n = strlen(d);
    while (n > 1 && d[n - 1] == '/') {
        d[--n] = '\0';
    }
    if (!util_path_clean(d, n, JOB_CWD_MAX)) {
        job_why(why, whylen,
                "file_push_dir: an absolute path without '.' or '..' parts "
                "(not /)");
        return ERR_CONFIG;
    }
    snprintf(r->push_dirs[r->npush_dirs++], sizeof(r->push_dirs[0]), "%s", d);
    return ERR_OK;
}

static bool job_account_ok(const char *s, size_t n);

int job_sudo_user_add(struct job_rules *r, const char *v, char *why,
                      size_t whylen)
{
    if (r->nsudo >= JOB_SUDO_USERS_MAX) {
        job_why(why, whylen, "sudo_user: at most %d", JOB_SUDO_USERS_MAX);
        return ERR_CONFIG;
    }
    if (v[0] == '\0' || !job_account_ok(v, strlen(v))) {
        job_why(why, whylen,
                "sudo_user: an account name (letters, digits, '.', '_', "
                "'-'; at most %d)",
                JOB_ACCOUNT_MAX);
        return ERR_CONFIG;
    }
    snprintf(r->sudo_users[r->nsudo++], sizeof(r->sudo_users[0]), "%s", v);
    return ERR_OK;
}

/* Whether account names root (by name or number, or an account whose
 * uid is 0). */
static bool job_account_is_root(const char *account)
{
    struct passwd *pw;

    if (strcmp(account, "root") == 0 || strcmp(account, "0") == 0) {
        return true;
    }
    pw = getpwnam(account);
    return pw != NULL && pw->pw_uid == 0;
}

/* The accepted directory path lies in (the longest), or NULL. */
static const char *job_push_dir_of(const struct job_rules *r, const char *path)
{
    const char *best = NULL;

    for (size_t i = 0; i < r->npush_dirs; i++) {
        size_t n = strlen(r->push_dirs[i]);
        if (strncmp(path, r->push_dirs[i], n) == 0 && path[n] == '/' &&
            (best == NULL || n > strlen(best))) {
            best = r->push_dirs[i];
        }
    }
    return best;
}

/* An allow rule must match the whole command. */
static bool job_full_match(const regex_t *re, const char *s)
{
    regmatch_t m[1];

    return regexec(re, s, 1, m, 0) == 0 && m[0].rm_so == 0 &&
           (size_t)m[0].rm_eo == strlen(s);
}

/* A script's lines, each checked as a command would be: no deny rule
 * may match a line; with allow rules, every line that is not empty or a
 * '#' comment must match one whole. */
static bool job_check_script(const struct job_rules *r, const char *script,
                             char *why, size_t whylen)
{
    static char line[JOB_SCRIPT_MAX + 1];
    const char *p = script;
    int no = 0;

    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
        const char *t;
        bool allowed = false;

        memcpy(line, p, n);
        line[n] = '\0';
        p += n + (nl != NULL ? 1 : 0);
        no++;
        for (size_t i = 0; i < r->ndeny; i++) {
            if (regexec(&r->deny[i].re, line, 0, NULL, 0) == 0) {
                job_why(why, whylen, "command_deny '%s' matches script line %d",
                        r->deny[i].pattern, no);
                return false;
            }
        }
        if (r->nallow == 0) {
            continue;
        }
        t = line + strspn(line, " \t\r");
        if (*t == '\0' || *t == '#') {
            continue;
        }
        for (size_t i = 0; i < r->nallow && !allowed; i++) {
            allowed = job_full_match(&r->allow[i].re, line);
        }
        if (!allowed) {
            job_why(why, whylen, "no command_allow rule matches script line %d",
                    no);
            return false;
        }
    }
    return true;
}

bool job_check(const struct job_rules *r, const struct job_request *q,
               uid_t euid, char *why, size_t whylen)
{
    bool allowed = false;

    if (q->is_push) {
        if (r->npush_dirs == 0) {
            job_why(why, whylen, "no file_push_dir on this agent");
            return false;
        }
        if (euid == 0 && !r->allow_root) {
            job_why(why, whylen,
                    "allow_root is off and the agent runs as root");
            return false;
        }
        if (job_push_dir_of(r, q->push.path) == NULL) {
            job_why(why, whylen, "%.200s is outside every file_push_dir",
                    q->push.path);
            return false;
        }
        if (q->push.size > JOB_PUSH_SIZE_MAX) {
            job_why(why, whylen, "the file is larger than %d bytes",
                    JOB_PUSH_SIZE_MAX);
            return false;
        }
        if ((q->push.owner[0] != '\0' || q->push.group[0] != '\0') &&
            euid != 0) {
            job_why(why, whylen,
                    "owner and group need an agent running as root");
            return false;
        }
        return true;
    }
    if (q->interpreter[0] != '\0') {
        if (!r->scripts_enabled) {
            job_why(why, whylen, "scripts_enabled is off on this agent");
            return false;
        }
    } else if (!r->enabled) {
        job_why(why, whylen, "commands_enabled is off on this agent");
        return false;
    }
    if (euid == 0 && !r->allow_root) {
        job_why(why, whylen, "allow_root is off and the agent runs as root");
        return false;
    }
    if (q->timeout > r->timeout_max) {
        job_why(why, whylen, "timeout %d s exceeds command_timeout_max %d s",
                q->timeout, r->timeout_max);
        return false;
    }
    if (q->sudo[0] != '\0') {
        bool listed = false;
        if (r->nsudo == 0) {
            job_why(why, whylen, "sudo is off on this agent (no sudo_user)");
            return false;
        }
        for (size_t i = 0; i < r->nsudo; i++) {
            listed = listed || strcmp(r->sudo_users[i], q->sudo) == 0;
        }
        if (!listed) {
            job_why(why, whylen, "sudo to '%s' is not allowed (sudo_user)",
                    q->sudo);
            return false;
        }
        if (job_account_is_root(q->sudo) && !r->allow_root) {
            job_why(why, whylen, "sudo to root needs allow_root");
            return false;
        }
    }
    if (q->interpreter[0] != '\0') {
        if (job_interp_path(r, q->interpreter) == NULL) {
            job_why(why, whylen,
                    "interpreter '%s' is not permitted (script_interpreter)",
                    q->interpreter);
            return false;
        }
        return job_check_script(r, q->script, why, whylen);
    }
    for (size_t i = 0; i < r->ndeny; i++) {
        if (regexec(&r->deny[i].re, q->command, 0, NULL, 0) == 0) {
            job_why(why, whylen, "command_deny '%s' matches",
                    r->deny[i].pattern);
            return false;
        }
    }
    for (size_t i = 0; i < r->nallow; i++) {
        if (job_full_match(&r->allow[i].re, q->command)) {
            allowed = true;
            break;
        }
    }
    if (r->nallow > 0 && !allowed) {
        job_why(why, whylen, "no command_allow rule matches the command");
        return false;
    }
    if (!allowed && strpbrk(q->command, JOB_METACHARS) != NULL) {
        job_why(why, whylen,
                "the safe default refuses shell metacharacters "
                "(; & | $ < > ` newline) unless a command_allow rule "
                "matches");
        return false;
    }
    return true;
}

static bool job_account_ok(const char *s, size_t n)
{
    return n == 0 ||
           (n <= JOB_ACCOUNT_MAX && s[0] != '-' &&
            strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789._-") == n);
}

/* {"path": S, "mode": N, "owner": S, "group": S, "overwrite": B,
 * "sha256": S, "size": N}, every key required, no other. */
static int job_push_parse(const json_t *o, struct job_push *p, char *why,
                          size_t whylen)
{
    const json_t *v;
    const char *key;
    size_t seen = 0;

    if (!json_is_object(o)) {
        job_why(why, whylen, "push: an object");
        return ERR_INVALID;
    }
    json_object_foreach((json_t *)(uintptr_t)o, key, v)
    {
        const char *sv = json_string_value(v);
        size_t n = json_string_length(v);

        if (strcmp(key, "path") == 0) {
            if (sv == NULL || !util_path_clean(sv, n, JOB_CWD_MAX)) {
                job_why(why, whylen,
                        "push.path: an absolute path without '.', '..' or "
                        "empty parts");
                return ERR_INVALID;
            }
            memcpy(p->path, sv, n + 1);
        } else if (strcmp(key, "mode") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > 01777) {
                job_why(why, whylen,
                        "push.mode: 0-01777 (no setuid or setgid)");
                return ERR_INVALID;
            }
            p->mode = (int)json_integer_value(v);
        } else if (strcmp(key, "owner") == 0 || strcmp(key, "group") == 0) {
            if (sv == NULL || !job_account_ok(sv, n)) {
                job_why(why, whylen, "push.%s: a name or number", key);
                return ERR_INVALID;
            }
            memcpy(key[0] == 'o' ? p->owner : p->group, sv, n + 1);
        } else if (strcmp(key, "overwrite") == 0) {
            if (!json_is_boolean(v)) {
                job_why(why, whylen, "push.overwrite: true or false");
                return ERR_INVALID;
            }
            p->overwrite = json_is_true(v);
        } else if (strcmp(key, "sha256") == 0) {
            if (sv == NULL || n != 64 || strspn(sv, "0123456789abcdef") != 64) {
                job_why(why, whylen, "push.sha256: 64 lowercase hex digits");
                return ERR_INVALID;
            }
            memcpy(p->sha256, sv, 65);
        } else if (strcmp(key, "size") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > JOB_PUSH_SIZE_MAX) {
                job_why(why, whylen, "push.size: 0-%d bytes",
                        JOB_PUSH_SIZE_MAX);
                return ERR_INVALID;
            }
            p->size = (size_t)json_integer_value(v);
        } else {
            job_why(why, whylen, "push: unknown key '%.40s'", key);
            return ERR_INVALID;
        }
        seen++;
    }
    if (seen != 7) {
        job_why(why, whylen,
                "push: path, mode, owner, group, overwrite, sha256 and size, "
                "each once");
        return ERR_INVALID;
    }
    return ERR_OK;
}

int job_request_parse(const char *data, size_t len, struct job_request *out,
                      char *why, size_t whylen)
{
    json_error_t je;
    json_t *root, *v;
    const char *key;
    int rc = ERR_INVALID;

    memset(out, 0, sizeof(*out));
    out->timeout = 60;
    if (len > JOB_REQUEST_MAX) {
        job_why(why, whylen, "request too large");
        return ERR_INVALID;
    }
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL || !json_is_object(root)) {
        job_why(why, whylen, "request is not a JSON object");
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "command") == 0) {
            size_t n = json_string_length(v);
            if (!json_is_string(v) || n == 0 || n > JOB_COMMAND_MAX ||
                memchr(json_string_value(v), '\0', n) != NULL) {
                job_why(why, whylen, "command: a string of 1-%d bytes",
                        JOB_COMMAND_MAX);
                goto out;
            }
            memcpy(out->command, json_string_value(v), n + 1);
        } else if (strcmp(key, "id") == 0 || strcmp(key, "fetch") == 0) {
            const char *in = json_string_value(v);
            size_t n = json_string_length(v);
            if (!json_is_string(v) || n == 0 || n > JOB_ID_MAX ||
                strspn(in, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
                           "XYZ0123456789-") != n) {
                job_why(why, whylen, "%s: 1-%d of A-Z a-z 0-9 -", key,
                        JOB_ID_MAX);
                goto out;
            }
            memcpy(key[0] == 'i' ? out->id : out->fetch, in, n + 1);
        } else if (strcmp(key, "push") == 0) {
            if (job_push_parse(v, &out->push, why, whylen) != ERR_OK) {
                goto out;
            }
            out->is_push = true;
        } else if (strcmp(key, "interpreter") == 0) {
            const char *in = json_string_value(v);
            size_t n = json_string_length(v);
            if (!json_is_string(v) || n == 0 || n > JOB_INTERP_NAME_MAX ||
                strspn(in, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
                           "XYZ0123456789._-") != n) {
                job_why(why, whylen, "interpreter: a name of 1-%d characters",
                        JOB_INTERP_NAME_MAX);
                goto out;
            }
            memcpy(out->interpreter, in, n + 1);
        } else if (strcmp(key, "script") == 0) {
            size_t n = json_string_length(v);
            if (!json_is_string(v) || n == 0 || n > JOB_SCRIPT_MAX ||
                memchr(json_string_value(v), '\0', n) != NULL) {
                job_why(why, whylen, "script: a string of 1-%d bytes",
                        JOB_SCRIPT_MAX);
                goto out;
            }
            memcpy(out->script, json_string_value(v), n + 1);
        } else if (strcmp(key, "cwd") == 0) {
            size_t n = json_string_length(v);
            if (!json_is_string(v) || n > JOB_CWD_MAX ||
                memchr(json_string_value(v), '\0', n) != NULL ||
                (n > 0 && json_string_value(v)[0] != '/')) {
                job_why(why, whylen, "cwd: an absolute path");
                goto out;
            }
            memcpy(out->cwd, json_string_value(v), n + 1);
        } else if (strcmp(key, "sudo") == 0) {
            size_t n = json_string_length(v);
            if (!json_is_string(v) || n == 0 ||
                !job_account_ok(json_string_value(v), n)) {
                job_why(why, whylen, "sudo: an account name of 1-%d characters",
                        JOB_ACCOUNT_MAX);
                goto out;
            }
            memcpy(out->sudo, json_string_value(v), n + 1);
        } else if (strcmp(key, "timeout") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > 86400) {
                job_why(why, whylen, "timeout: seconds from 1 to 86400");
                goto out;
            }
            out->timeout = (int)json_integer_value(v);
        }
    }
    if (out->is_push) {
        if (out->command[0] != '\0' || out->script[0] != '\0' ||
            out->interpreter[0] != '\0' || out->fetch[0] != '\0' ||
            out->sudo[0] != '\0') {
            job_why(why, whylen, "a push asks for nothing else");
            goto out;
        }
        rc = ERR_OK;
        goto out;
    }
    if (out->fetch[0] != '\0') {
        if (out->command[0] != '\0' || out->script[0] != '\0' ||
            out->interpreter[0] != '\0' || out->id[0] != '\0' ||
            out->sudo[0] != '\0') {
            job_why(why, whylen, "a fetch asks for nothing else");
            goto out;
        }
        rc = ERR_OK;
        goto out;
    }
    if ((out->interpreter[0] != '\0') != (out->script[0] != '\0')) {
        job_why(why, whylen, "a script needs both interpreter and script");
        goto out;
    }
    if ((out->command[0] != '\0') == (out->script[0] != '\0')) {
        job_why(why, whylen, "a command or a script, one of them");
        goto out;
    }
    rc = ERR_OK;
out:
    json_decref(root);
    return rc;
}

/* ---- the runner (its own process from here on) ---- */

static bool job_write_all(int fd, const void *p, size_t len)
{
    const char *c = p;

    while (len > 0) {
        ssize_t n = write(fd, c, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        c += n;
        len -= (size_t)n;
    }
    return true;
}

/* Where the frames go: the socket (while it takes them) and the kept
 * copy of the result (when there is one). */
struct job_sink {
    int sock;
    bool sock_ok;
    int keep;         /* -1: none */
    const char *sudo; /* ran through sudo as this account; NULL: no */
};

static void job_frame(struct job_sink *k, char type, const void *p, size_t n)
{
    uint8_t h[5] = {(uint8_t)type, (uint8_t)(n >> 24), (uint8_t)(n >> 16),
                    (uint8_t)(n >> 8), (uint8_t)n};

    if (k->sock_ok && (!job_write_all(k->sock, h, sizeof(h)) ||
                       !job_write_all(k->sock, p, n))) {
        k->sock_ok = false; /* the agent went away: the copy remains */
    }
    if (k->keep >= 0 && (!job_write_all(k->keep, h, sizeof(h)) ||
                         !job_write_all(k->keep, p, n))) {
        close(k->keep);
        k->keep = -1;
    }
}

struct job_out {
    char type; /* 'O' or 'E' */
    size_t len;
    bool truncated;
    bool eof;
};

static void job_send_result(struct job_sink *k, const char *status, int code,
                            int sig, const char *why, const struct job_out *o,
                            const struct job_out *e)
{
    json_t *h = json_object();
    char *line;

    json_object_set_new(h, "status", json_string(status));
    json_object_set_new(h, "exit_code",
                        code >= 0 ? json_integer(code) : json_null());
    json_object_set_new(h, "signal", sig > 0 ? json_integer(sig) : json_null());
    if (why != NULL) {
        json_object_set_new(h, "why", json_string(why));
    }
    if (k->sudo != NULL) {
        /* tells the server the request's sudo was understood */
        json_object_set_new(h, "sudo", json_string(k->sudo));
    }
    json_object_set_new(h, "stdout_len",
                        json_integer(o ? (json_int_t)o->len : 0));
    json_object_set_new(h, "stderr_len",
                        json_integer(e ? (json_int_t)e->len : 0));
    line = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    if (line != NULL) {
        job_frame(k, 'R', line, strlen(line));
        free(line);
    }
}

static int64_t job_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Output as it comes: a frame per read, up to the cap. */
static void job_read_into(int fd, struct job_out *o, struct job_sink *k)
{
    char tmp[65536];
    ssize_t n = read(fd, tmp, sizeof(tmp));
    size_t room, take;

    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    if (n <= 0) {
        o->eof = true;
        return;
    }
    room = JOB_OUTPUT_CAP - o->len;
    take = (size_t)n < room ? (size_t)n : room;
    if (take > 0) {
        job_frame(k, o->type, tmp, take);
        o->len += take;
    }
    if (take < (size_t)n) {
        o->truncated = true;
    }
}

static void job_finish_out(struct job_out *o, struct job_sink *k)
{
    if (o->truncated) {
        job_frame(k, o->type, JOB_TRUNC_MARKER, strlen(JOB_TRUNC_MARKER));
        o->len += strlen(JOB_TRUNC_MARKER);
    }
}

/* After the result: EOF, then the server's "ack\n" (it has recorded the
 * result) lets the kept copy go. */
static void job_await_ack(int sock, int dir, const char *name)
{
    char buf[8];
    size_t len = 0;
    int64_t deadline = job_now_ms() + JOB_ACK_WAIT_MS;

    shutdown(sock, SHUT_WR);
    while (len < 4) {
        struct pollfd p = {.fd = sock, .events = POLLIN};
        int64_t left = deadline - job_now_ms();
        ssize_t n;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            return;
        }
        n = read(sock, buf + len, 4 - len);
        if (n <= 0) {
            return;
        }
        len += (size_t)n;
    }
    if (memcmp(buf, "ack\n", 4) == 0 && dir >= 0 && name[0] != '\0') {
        unlinkat(dir, name, 0);
    }
}

/* Whether a kept copy ends with a whole 'R' frame. */
static bool job_kept_complete(int fd)
{
    uint8_t h[5];
    off_t at = 0, end = lseek(fd, 0, SEEK_END);
    char last = 0;

    while (at < end) {
        uint32_t n;
        if (pread(fd, h, sizeof(h), at) != (ssize_t)sizeof(h)) {
            return false;
        }
        n = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 |
            h[4];
        last = (char)h[0];
        at += (off_t)sizeof(h) + n;
    }
    lseek(fd, 0, SEEK_SET);
    return at == end && last == 'R';
}

/* A fetch: the kept result of job q->fetch, replayed as it was sent; a
 * job still running is waited for (its runner holds a lock on the copy)
 * up to q->timeout. */
static void job_fetch(const struct job_rules *r, int sock,
                      const struct job_request *q)
{
    struct job_sink k = {.sock = sock, .sock_ok = true, .keep = -1};
    int dir = -1, fd = -1;
    int64_t deadline = job_now_ms() + (int64_t)q->timeout * 1000;
    char buf[65536];
    ssize_t n;

    if (r->results_dir[0] == '\0' ||
        (dir = open(r->results_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        (fd = openat(dir, q->fetch, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        job_send_result(&k, "unknown", -1, 0, "no result kept", NULL, NULL);
        goto out;
    }
    while (flock(fd, LOCK_SH | LOCK_NB) != 0) {
        if (job_now_ms() >= deadline) {
            job_send_result(&k, "unknown", -1, 0, "the job is still running",
                            NULL, NULL);
            goto out;
        }
        poll(NULL, 0, 100);
    }
    if (!job_kept_complete(fd)) {
        /* its runner died with it (a reboot): nothing to hand over */
        unlinkat(dir, q->fetch, 0);
        job_send_result(&k, "unknown", -1, 0, "the kept result is incomplete",
                        NULL, NULL);
        goto out;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (!job_write_all(sock, buf, (size_t)n)) {
            goto out;
        }
    }
    close(fd);
    fd = -1;
    job_await_ack(sock, dir, q->fetch);
out:
    if (fd >= 0) {
        close(fd);
    }
    if (dir >= 0) {
        close(dir);
    }
}

/* The script in a sealed memory file, read from offset 0; -1 on error. */
static int job_script_fd(const char *script)
{
    size_t len = strlen(script);
    int fd = memfd_create("portcullis-script", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0) {
        return -1;
    }
    job_write_all(fd, script, len);
    if (lseek(fd, 0, SEEK_END) != (off_t)len || lseek(fd, 0, SEEK_SET) != 0 ||
        fcntl(fd, F_ADD_SEALS,
              F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The runner is a child subreaper: whatever the job started and left
 * behind (a daemon that left the process group with setsid) becomes its
 * child once its parent is gone. Kill them all, until none is left. */
static void job_sweep(void)
{
    char path[64], buf[4096];

    for (int round = 0; round < 100; round++) {
        bool any = false;
        int fd;
        ssize_t n;

        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
        snprintf(path, sizeof(path), "/proc/self/task/%d/children",
                 (int)getpid());
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
            return;
        }
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0) {
            return;
        }
        buf[n] = '\0';
        for (char *p = buf; *p != '\0';) {
            char *end;
            long pid = strtol(p, &end, 10);
            if (end == p) {
                break;
            }
            if (pid > 1) {
                kill(-(pid_t)pid, SIGKILL);
                kill((pid_t)pid, SIGKILL);
                any = true;
            }
            p = end;
        }
        if (!any) {
            return;
        }
        poll(NULL, 0, 10);
    }
}

/* Receives a pushed file into a new file in the directory it goes to,
 * checks its size and SHA-256, sets owner, group and mode, and moves it
 * into place (docs/agent.md, "File push"). Every directory below the
 * accepted one is opened with O_NOFOLLOW from its parent's descriptor,
 * so neither a symbolic link nor a directory swapped in meanwhile can
 * lead outside; the file is created with O_EXCL | O_NOFOLLOW under a
 * temporary name and renamed, which replaces (never follows) whatever
 * is at the destination, or with overwrite off fails if anything is. */
static void job_push_run(const struct job_rules *r, int sock,
                         const struct job_request *q, const char *extra,
                         size_t extra_len, struct job_sink *k)
{
    const struct job_push *p = &q->push;
    const char *base = job_push_dir_of(r, p->path), *rest, *slash;
    crypto_hash_sha256_state hs;
    unsigned char md[crypto_hash_sha256_BYTES];
    char hex[2 * sizeof(md) + 1], tmp[64], why[512], msg[4400];
    static char buf[65536];
    int dfd = -1, fd = -1;
    size_t got = 0;
    int64_t deadline = job_now_ms() + (int64_t)q->timeout * 1000;
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    struct job_out o = {.type = 'O'};

    why[0] = '\0';
    if ((dfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(why, sizeof(why), "cannot open %.200s: %s", base,
                 strerror(errno));
        goto fail;
    }
    rest = p->path + strlen(base) + 1;
    while ((slash = strchr(rest, '/')) != NULL) {
        char comp[NAME_MAX + 1];
        size_t n = (size_t)(slash - rest);
        int nfd;
        if (n > NAME_MAX) {
            snprintf(why, sizeof(why), "a path component is too long");
            goto fail;
        }
        memcpy(comp, rest, n);
        comp[n] = '\0';
        nfd =
            openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            snprintf(why, sizeof(why),
                     "cannot open the directory %.200s%s: %s (symbolic links "
                     "are not followed)",
                     comp, "", strerror(errno));
            goto fail;
        }
        close(dfd);
        dfd = nfd;
        rest = slash + 1;
    }
    if (strlen(rest) > NAME_MAX) {
        snprintf(why, sizeof(why), "the file name is too long");
        goto fail;
    }
    if (p->owner[0] != '\0') {
        struct passwd *pw = getpwnam(p->owner);
        char *end;
        unsigned long v = strtoul(p->owner, &end, 10);
        if (pw != NULL) {
            uid = pw->pw_uid;
        } else if (*end == '\0') {
            uid = (uid_t)v;
        } else {
            snprintf(why, sizeof(why), "no user %s on this agent", p->owner);
            goto fail;
        }
    }
    if (p->group[0] != '\0') {
        struct group *gr = getgrnam(p->group);
        char *end;
        unsigned long v = strtoul(p->group, &end, 10);
        if (gr != NULL) {
            gid = gr->gr_gid;
        } else if (*end == '\0') {
            gid = (gid_t)v;
        } else {
            snprintf(why, sizeof(why), "no group %s on this agent", p->group);
            goto fail;
        }
    }
    {
        unsigned char rnd[8];
        char rh[17];
        randombytes_buf(rnd, sizeof(rnd));
        sodium_bin2hex(rh, sizeof(rh), rnd, sizeof(rnd));
        snprintf(tmp, sizeof(tmp), ".portcullis-push-%s", rh);
    }
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0600);
    if (fd < 0) {
        snprintf(why, sizeof(why), "cannot create a file in %.200s: %s", base,
                 strerror(errno));
        goto fail;
    }
    crypto_hash_sha256_init(&hs);
    if (extra_len > p->size) {
        snprintf(why, sizeof(why), "more bytes than the announced size");
        goto fail;
    }
    if (extra_len > 0) {
        crypto_hash_sha256_update(&hs, (const unsigned char *)extra, extra_len);
        if (!job_write_all(fd, extra, extra_len)) {
            snprintf(why, sizeof(why), "cannot write: %s", strerror(errno));
            goto fail;
        }
        got = extra_len;
    }
    while (got < p->size) {
        struct pollfd pf = {.fd = sock, .events = POLLIN};
        int64_t left = deadline - job_now_ms();
        size_t want = p->size - got < sizeof(buf) ? p->size - got : sizeof(buf);
        ssize_t n;
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0) {
            snprintf(why, sizeof(why), "timed out after %zu of %zu bytes", got,
                     p->size);
            goto fail;
        }
        n = read(sock, buf, want);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            snprintf(why, sizeof(why), "the file ended after %zu of %zu bytes",
                     got, p->size);
            goto fail;
        }
        crypto_hash_sha256_update(&hs, (const unsigned char *)buf, (size_t)n);
        if (!job_write_all(fd, buf, (size_t)n)) {
            snprintf(why, sizeof(why), "cannot write: %s", strerror(errno));
            goto fail;
        }
        got += (size_t)n;
    }
    crypto_hash_sha256_final(&hs, md);
    sodium_bin2hex(hex, sizeof(hex), md, sizeof(md));
    if (strcmp(hex, p->sha256) != 0) {
        snprintf(why, sizeof(why),
                 "SHA-256 mismatch: the file arrived as %s, not %s", hex,
                 p->sha256);
        goto fail;
    }
    if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) != 0) {
        snprintf(why, sizeof(why), "cannot set owner/group: %s",
                 strerror(errno));
        goto fail;
    }
    if (fchmod(fd, (mode_t)p->mode) != 0 || fsync(fd) != 0) {
        snprintf(why, sizeof(why), "cannot set the mode: %s", strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    if (p->overwrite ? renameat(dfd, tmp, dfd, rest) != 0
                     : renameat2(dfd, tmp, dfd, rest, RENAME_NOREPLACE) != 0) {
        snprintf(why, sizeof(why), "%.200s%s", p->path,
                 errno == EEXIST ? " exists and overwrite is off"
                                 : ": cannot put the file there");
        if (errno != EEXIST) {
            size_t l = strlen(why);
            snprintf(why + l, sizeof(why) - l, " (%s)", strerror(errno));
        }
        unlinkat(dfd, tmp, 0);
        close(dfd);
        job_send_result(k, "failed", -1, 0, why, NULL, NULL);
        return;
    }
    close(dfd);
    snprintf(msg, sizeof(msg), "wrote %s (%zu bytes, sha256 %s, mode %04o)\n",
             p->path, p->size, hex, (unsigned)p->mode);
    job_frame(k, 'O', msg, strlen(msg));
    o.len = strlen(msg);
    job_send_result(k, "ok", 0, 0, NULL, &o, NULL);
    return;
fail:
    if (fd >= 0) {
        close(fd);
        unlinkat(dfd, tmp, 0);
    }
    if (dfd >= 0) {
        close(dfd);
    }
    job_send_result(k, "failed", -1, 0, why, NULL, NULL);
}

static void job_runner(const struct job_rules *r, int fd)
{
    static char req[JOB_REQUEST_MAX + 1];
    static struct job_request q;
    struct job_sink k = {.sock = fd, .sock_ok = true, .keep = -1};
    size_t len = 0, extra_len = 0;
    const char *extra = NULL;
    int sfd = -1, dir = -1;
    char why[256];
    int po[2], pe[2];
    pid_t pid;
    int status = 0;
    bool exited = false, timed_out = false, termed = false;
    int64_t deadline, kill_at = 0;
    struct job_out o = {.type = 'O'}, e = {.type = 'E'};

    /* the request: one line (or everything up to EOF) */
    for (;;) {
        ssize_t n = read(fd, req + len, sizeof(req) - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        if (memchr(req + len - (size_t)n, '\n', (size_t)n) != NULL ||
            len >= sizeof(req) - 1) {
            break;
        }
    }
    {
        char *nl = memchr(req, '\n', len);
        if (nl != NULL) {
            extra = nl + 1;
            extra_len = len - (size_t)(nl + 1 - req);
            len = (size_t)(nl - req);
        }
    }
    if (job_request_parse(req, len, &q, why, sizeof(why)) != ERR_OK) {
        job_send_result(&k, "refused", -1, 0, why, NULL, NULL);
        shutdown(fd, SHUT_WR);
        return;
    }
    if (q.fetch[0] != '\0') {
        job_fetch(r, fd, &q);
        return;
    }
    if (!job_check(r, &q, geteuid(), why, sizeof(why))) {
        job_send_result(&k, "refused", -1, 0, why, NULL, NULL);
        shutdown(fd, SHUT_WR);
        return;
    }
    /* the copy kept until the server acknowledges the result; its lock
     * tells a fetch that the job still runs */
    if (q.id[0] != '\0' && r->results_dir[0] != '\0') {
        dir = open(r->results_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        k.keep =
            dir < 0
                ? -1
                : openat(dir, q.id,
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         0600);
        if (k.keep < 0 || flock(k.keep, LOCK_EX) != 0) {
            snprintf(why, sizeof(why), "cannot keep the result in %.200s: %s",
                     r->results_dir, strerror(errno));
            if (k.keep >= 0) {
                close(k.keep);
                k.keep = -1;
            }
            job_send_result(&k, "failed", -1, 0, why, NULL, NULL);
            shutdown(fd, SHUT_WR);
            return;
        }
    }
    if (q.is_push) {
        job_push_run(r, fd, &q, extra, extra_len, &k);
        goto done;
    }
    if (q.sudo[0] != '\0') {
        k.sudo = q.sudo;
    }
    if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
        job_send_result(&k, "failed", -1, 0, "out of resources", NULL, NULL);
        return;
    }
    if (q.interpreter[0] != '\0' && (sfd = job_script_fd(q.script)) < 0) {
        job_send_result(&k, "failed", -1, 0, "cannot hold the script", NULL,
                        NULL);
        return;
    }
    /* posix_spawn, not fork: fork runs the atfork handlers of the
     * libraries the agent links (libuv's closes and reopens its own pipe
     * by number, which here may be one of ours) */
    {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        sigset_t all, none;
        char sh[] = "sh", dash_c[] = "-c", dev_script[32];
        char pw_np[] = "-NoProfile", pw_ni[] = "-NonInteractive",
             pw_cmd[] = "-Command", pw_stdin[] = "-";
        char dev_stdin[] = "/dev/stdin", sudo[] = "sudo", sudo_n[] = "-n",
             sudo_u[] = "-u", sudo_end[] = "--", prog_path[JOB_CWD_MAX + 1];
        char *argv[8] = {sh, dash_c, q.command, NULL};
        char *sargv[16];
        const char *prog = "/bin/sh";
        int rc;

        sigfillset(&all);
        sigemptyset(&none);
        posix_spawn_file_actions_init(&fa);
        if (sfd >= 0) {
            prog = job_interp_path(r, q.interpreter);
            argv[0] = q.interpreter;
            if (strcmp(q.interpreter, "pwsh") == 0 ||
                strcmp(q.interpreter, "powershell") == 0) {
                /* PowerShell runs only *.ps1 files: the script is its
                 * standard input */
                posix_spawn_file_actions_adddup2(&fa, sfd, 0);
                argv[1] = pw_np;
                argv[2] = pw_ni;
                argv[3] = pw_cmd;
                argv[4] = pw_stdin;
                argv[5] = NULL;
            } else if (q.sudo[0] != '\0') {
                /* sudo closes every descriptor above 2: the sealed copy
                 * is the standard input */
                posix_spawn_file_actions_adddup2(&fa, sfd, 0);
                argv[1] = dev_stdin;
                argv[2] = NULL;
            } else {
                /* the sealed copy, by its descriptor: nothing on disk */
                posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY,
                                                 0);
                posix_spawn_file_actions_adddup2(&fa, sfd, JOB_SCRIPT_FD);
                snprintf(dev_script, sizeof(dev_script), "/dev/fd/%d",
                         JOB_SCRIPT_FD);
                argv[1] = dev_script;
                argv[2] = NULL;
            }
        } else {
            posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        }
        posix_spawn_file_actions_adddup2(&fa, po[1], 1);
        posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
        if (q.cwd[0] != '\0') {
            posix_spawn_file_actions_addchdir_np(&fa, q.cwd);
        }
        posix_spawnattr_init(&at);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
                                          POSIX_SPAWN_SETSIGDEF |
                                          POSIX_SPAWN_SETSIGMASK);
        posix_spawnattr_setpgroup(&at, 0);
        posix_spawnattr_setsigdefault(&at, &all);
        posix_spawnattr_setsigmask(&at, &none);
        if (q.sudo[0] != '\0') {
            /* sudo -n -u USER -- PROG ARGS...: never asks for a password
             * (the host's sudoers decides, docs/agent.md "sudo") */
            size_t na = 0;
            snprintf(prog_path, sizeof(prog_path), "%s", prog);
            sargv[na++] = sudo;
            sargv[na++] = sudo_n;
            sargv[na++] = sudo_u;
            sargv[na++] = q.sudo;
            sargv[na++] = sudo_end;
            sargv[na++] = prog_path;
            for (size_t i = 1; argv[i] != NULL && na < 15; i++) {
                sargv[na++] = argv[i];
            }
            sargv[na] = NULL;
            prog = JOB_SUDO_PATH;
            rc = posix_spawn(&pid, prog, &fa, &at, sargv, environ);
        } else {
            rc = posix_spawn(&pid, prog, &fa, &at, argv, environ);
        }
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
        if (sfd >= 0) {
            close(sfd);
        }
        if (rc != 0) {
            snprintf(why, sizeof(why), "cannot start %s%s%.200s: %s", prog,
                     q.cwd[0] != '\0' ? " in " : "", q.cwd, strerror(rc));
            job_send_result(&k, "failed", -1, 0, why, NULL, NULL);
            return;
        }
    }
    close(po[1]);
    close(pe[1]);
    deadline = job_now_ms() + (int64_t)q.timeout * 1000;
    while (!(exited && o.eof && e.eof)) {
        struct pollfd p[2];
        int np = 0;
        int64_t now = job_now_ms();

        if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
            exited = true;
        }
        if (!termed && now >= deadline) {
            timed_out = termed = true;
            kill(-pid, SIGTERM);
            kill_at = now + JOB_KILL_GRACE_MS;
        }
        if (termed && kill_at > 0 && now >= kill_at) {
            kill(-pid, SIGKILL);
            kill_at = 0;
        }
        if (termed && kill_at == 0 && exited) {
            break; /* killed: what is left of the pipes does not matter */
        }
        if (!o.eof) {
            p[np].fd = po[0];
            p[np++].events = POLLIN;
        }
        if (!e.eof) {
            p[np].fd = pe[0];
            p[np++].events = POLLIN;
        }
        if (np > 0 && poll(p, (nfds_t)np, 100) > 0) {
            for (int i = 0; i < np; i++) {
                if (p[i].revents != 0) {
                    job_read_into(p[i].fd, p[i].fd == po[0] ? &o : &e, &k);
                }
            }
        } else if (np == 0) {
            poll(NULL, 0, 20);
        }
    }
    if (!exited) {
        waitpid(pid, &status, 0);
    }
    kill(-pid, SIGKILL); /* whatever the command left behind */
    job_sweep();
    job_finish_out(&o, &k);
    job_finish_out(&e, &k);
    if (timed_out) {
        job_send_result(&k, "timeout", -1,
                        WIFSIGNALED(status) ? WTERMSIG(status) : 0,
                        "timed out: the process group was killed", &o, &e);
    } else if (WIFEXITED(status)) {
        job_send_result(&k, WEXITSTATUS(status) == 0 ? "ok" : "failed",
                        WEXITSTATUS(status), 0, NULL, &o, &e);
    } else {
        job_send_result(&k, "failed", -1,
                        WIFSIGNALED(status) ? WTERMSIG(status) : 0, NULL, &o,
                        &e);
    }
done:
    if (k.keep >= 0) {
        /* complete: a fetch may read it from now on */
        fsync(k.keep);
        close(k.keep);
    }
    if (k.sock_ok) {
        job_await_ack(fd, dir, q.id);
    }
    if (dir >= 0) {
        close(dir);
    }
}

/* In the runner: closes every descriptor but keep, with close_range(2)
 * (Linux 5.9): one close() per possible number was ~65,000 system calls
 * per job, most of a box's CPU when a thousand agents ran a job at once,
 * and missed descriptors above 65,535. Without close_range, one close()
 * per number below the descriptor limit. */
static void job_close_all_but(int keep)
{
    struct rlimit rl;
    long max = 65536;

    if (close_range(0, (unsigned)keep - 1, 0) == 0 &&
        close_range((unsigned)keep + 1, ~0U, 0) == 0) {
        return;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur > (rlim_t)max) {
        max = (long)rl.rlim_cur;
    }
    for (long i = 0; i < max; i++) {
        if (i != keep) {
            close((int)i);
        }
    }
}

int job_runner_spawn(const struct job_rules *r, int fd)
{
    pid_t mid = fork();
    int st;

    if (mid < 0) {
        return ERR_IO;
    }
    if (mid == 0) {
        pid_t run = fork();
        if (run != 0) {
            _exit(run < 0 ? 1 : 0);
        }
        /* the runner: keep fd, close everything else of the agent's */
        int keep = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (keep < 0) {
            _exit(1);
        }
        job_close_all_but(keep);
        /* 0, 1 and 2 are /dev/null: the agent's may be anything */
        for (int i = 0; i < 3; i++) {
            if (open("/dev/null", O_RDWR) != i) {
                _exit(1);
            }
        }
        {
            int fl = fcntl(keep, F_GETFL);
            fcntl(keep, F_SETFL, fl & ~O_NONBLOCK);
        }
        signal(SIGPIPE, SIG_IGN);
        signal(SIGCHLD, SIG_DFL);
        (void)prctl(PR_SET_CHILD_SUBREAPER, 1);
        job_runner(r, keep);
        shutdown(keep, SHUT_WR);
        close(keep);
        _exit(0);
    }
    while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? ERR_OK : ERR_IO;
}

int job_results_sweep(const struct job_rules *r, long long max_age)
{
    int dir, n = 0;
    DIR *d;
    struct dirent *e;
    time_t cut = time(NULL) - (time_t)max_age;

    if (r->results_dir[0] == '\0' ||
        (dir = open(r->results_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        return -1;
    }
    if ((d = fdopendir(dir)) == NULL) {
        close(dir);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat sb;
        int fd;

        /* the files are named by job IDs: [A-Za-z0-9-] */
        if (e->d_name[0] == '.' || strlen(e->d_name) > JOB_ID_MAX ||
            strspn(e->d_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"
                              "RSTUVWXYZ0123456789-") != strlen(e->d_name)) {
            continue;
        }
        fd = openat(dir, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_mtime < cut &&
            flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            unlinkat(dir, e->d_name, 0) == 0) {
            n++;
        }
        close(fd);
    }
    closedir(d);
    return n;
}
