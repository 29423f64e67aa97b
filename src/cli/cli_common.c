/*
 * What every admin command shares (see cli.h): walking the command tree,
 * the one table-driven option parser, one-line errors, opening the
 * configured store and vault on first use, lookups by name with worded
 * errors, reading a password from stdin, key fingerprints, and the table
 * and JSON printers.
 */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/password.h"
#include "common/err.h"
#include "common/util.h"
#include "common/vault.h"
#include "store/audit.h"

#define CLI_MAX_OPTS 32       /* options in one command's table */
#define CLI_TABLE_MAX_COLS 12 /* columns of one list */

/* --- messages --- */

/* Names from the command line and the store are echoed in messages, so
 * control characters are replaced: an error stays one line. */
static void cli_clean(char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            *s = '?';
        }
    }
}

__attribute__((format(printf, 2, 0))) static void
cli_vmessage(const char *hint, const char *fmt, va_list ap)
{
    char msg[1024];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    cli_clean(msg);
    if (hint != NULL) {
        fprintf(stderr, "portcullis: %s (see 'portcullis %s%s--help')\n", msg,
                hint, hint[0] != '\0' ? " " : "");
    } else {
        fprintf(stderr, "portcullis: %s\n", msg);
    }
}

int cli_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cli_vmessage(NULL, fmt, ap);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

int cli_usage(const struct cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cli_vmessage(ctx->cmd, fmt, ap);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_store_error(int err, const char *what, const char *name)
{
    switch (err) {
    case ERR_NOT_FOUND:
        return cli_error("%s '%s' not found", what, name);
    case ERR_EXISTS:
        return cli_error("%s '%s' already exists", what, name);
    case ERR_INVALID:
        return cli_error("invalid %s '%s'", what, name);
    case ERR_TOO_LONG:
        return cli_error("%s '%s' is too long", what, name);
    default:
        return cli_error("%s '%s': %s", what, name, err_str(err));
    }
}

/* --- the command tree --- */

static bool cli_is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* A synopsis may hold line breaks; its next lines are indented under the
 * command's first argument. */
static void cli_print_synopsis(FILE *f, const char *prefix, const char *s)
{
    int indent = (int)strlen(prefix) + 4;

    fputs(prefix, f);
    for (; *s != '\0'; s++) {
        if (*s == '\n') {
            fprintf(f, "\n%*s", indent, "");
        } else {
            fputc(*s, f);
        }
    }
    fputc('\n', f);
}

static void cli_print_synopses(const struct cli_cmd *c, FILE *f)
{
    size_t i;

    if (c->synopsis != NULL) {
        cli_print_synopsis(f, "  portcullis ", c->synopsis);
    }
    for (i = 0; c->sub != NULL && c->sub[i] != NULL; i++) {
        cli_print_synopses(c->sub[i], f);
    }
}

void cli_print_help(const struct cli_cmd *c, FILE *f)
{
    if (c->sub == NULL) {
        cli_print_synopsis(f, "usage: portcullis ", c->synopsis);
        fprintf(f, "\n%s\n", c->summary);
    } else {
        fprintf(f, "usage:\n");
        cli_print_synopses(c, f);
        fprintf(f, "\n%s\n", c->summary);
    }
    if (c->details != NULL) {
        fprintf(f, "\n%s", c->details);
    }
}

int cli_dispatch(struct cli_ctx *ctx, const struct cli_cmd *c, int argc,
                 char **argv)
{
    size_t n = strlen(ctx->cmd), i;

    snprintf(ctx->cmd + n, sizeof(ctx->cmd) - n, "%s%s", n > 0 ? " " : "",
             c->name);
    ctx->cur = c;
    if (c->sub == NULL) {
        return c->run(ctx, argc, argv);
    }
    if (argc > 0 && cli_is_help(argv[0])) {
        cli_print_help(c, stdout);
        return CLI_EXIT_OK;
    }
    for (i = 0; argc > 0 && c->sub[i] != NULL; i++) {
        if (strcmp(c->sub[i]->name, argv[0]) == 0) {
            return cli_dispatch(ctx, c->sub[i], argc - 1, argv + 1);
        }
    }
    if (c->run != NULL) {
        return c->run(ctx, argc, argv);
    }
    if (argc == 0) {
        return cli_usage(ctx, "'%s' needs a command", ctx->cmd);
    }
    if (argv[0][0] == '-') {
        return cli_usage(ctx, "'%s' needs a command before option '%s'",
                         ctx->cmd, argv[0]);
    }
    return cli_usage(ctx, "unknown command '%s %s'", ctx->cmd, argv[0]);
}

/* --- the option parser --- */

static int cli_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return ERR_INVALID;
    }
    *out = (int)v;
    return ERR_OK;
}

/* Splits "NAME [ASSET]" into words; counts the required ones. */
static int cli_posspec(const char *spec, char names[CLI_MAX_POS][32],
                       size_t *nnames, size_t *nreq)
{
    size_t len;

    *nnames = 0;
    *nreq = 0;
    while (spec != NULL && *spec != '\0') {
        while (*spec == ' ') {
            spec++;
        }
        len = strcspn(spec, " ");
        if (len == 0) {
            break;
        }
        if (*nnames == CLI_MAX_POS || len >= 32) {
            return ERR_INTERNAL;
        }
        if (spec[0] == '[' && len > 2) {
            snprintf(names[*nnames], 32, "%.*s", (int)(len - 2), spec + 1);
        } else {
            snprintf(names[*nnames], 32, "%.*s", (int)len, spec);
            (*nreq)++;
        }
        (*nnames)++;
        spec += len;
    }
    return ERR_OK;
}

int cli_parse(struct cli_ctx *ctx, int argc, char **argv,
              const struct cli_opt *opts, const char *posspec,
              const char *pos[CLI_MAX_POS])
{
    char names[CLI_MAX_POS][32];
    bool seen[CLI_MAX_OPTS] = {false}, dashdash = false;
    size_t nnames, nreq, npos = 0, i, namelen;
    const char *a, *eq, *val;
    int ai;

    for (i = 0; i < CLI_MAX_POS; i++) {
        pos[i] = NULL;
    }
    if (cli_posspec(posspec, names, &nnames, &nreq) != ERR_OK) {
        return cli_error("internal error: bad argument spec");
    }
    /* --help wins over every other mistake on the line. */
    for (ai = 0; ai < argc && strcmp(argv[ai], "--") != 0; ai++) {
        if (cli_is_help(argv[ai])) {
            cli_print_help(ctx->cur, stdout);
            return CLI_EXIT_OK;
        }
    }
    for (ai = 0; ai < argc; ai++) {
        a = argv[ai];
        if (!dashdash && strcmp(a, "--") == 0) {
            dashdash = true;
            continue;
        }
        if (dashdash || a[0] != '-' || a[1] == '\0') {
            if (npos == nnames) {
                return cli_usage(ctx, "unexpected argument '%s'", a);
            }
            if (a[0] == '\0') {
                return cli_usage(ctx, "%s must not be empty", names[npos]);
            }
            pos[npos++] = a;
            continue;
        }
        eq = strchr(a, '=');
        namelen = eq != NULL ? (size_t)(eq - a) : strlen(a);
        for (i = 0; opts != NULL && opts[i].name != NULL; i++) {
            if (strlen(opts[i].name) == namelen &&
                strncmp(opts[i].name, a, namelen) == 0) {
                break;
            }
        }
        if (opts == NULL || opts[i].name == NULL) {
            if (strcmp(a, "-c") == 0 || strncmp(a, "--config", 8) == 0) {
                return cli_usage(ctx, "-c FILE goes before the command");
            }
            return cli_usage(ctx, "unknown option '%.*s'", (int)namelen, a);
        }
        if (i >= CLI_MAX_OPTS) {
            return cli_error("internal error: too many options");
        }
        if (seen[i]) {
            return cli_usage(ctx, "option %s given twice", opts[i].name);
        }
        seen[i] = true;
        if (opts[i].type == CLI_FLAG) {
            if (eq != NULL) {
                return cli_usage(ctx, "option %s takes no value", opts[i].name);
            }
            *(bool *)opts[i].val = true;
            continue;
        }
        if (eq != NULL) {
            val = eq + 1;
        } else if (ai + 1 < argc) {
            val = argv[++ai];
        } else {
            return cli_usage(ctx, "option %s needs a value", opts[i].name);
        }
        if (*val == '\0') {
            return cli_usage(ctx, "option %s needs a non-empty value",
                             opts[i].name);
        }
        if (opts[i].type == CLI_STR) {
            *(const char **)opts[i].val = val;
        } else if (cli_parse_int(val, opts[i].lo, opts[i].hi,
                                 (int *)opts[i].val) != ERR_OK) {
            return cli_usage(ctx, "option %s needs an integer from %d to %d",
                             opts[i].name, opts[i].lo, opts[i].hi);
        }
    }
    if (npos < nreq) {
        return cli_usage(ctx, "missing %s", names[npos]);
    }
    return CLI_PARSED;
}

/* --- the configured state --- */

int cli_load_config(struct cli_ctx *ctx)
{
    char why[512], node[128];
    int r;

    if (ctx->cfg_loaded) {
        return CLI_EXIT_OK;
    }
    if (ctx->config_path == NULL) {
        return cli_usage(ctx, "no configuration: pass -c FILE before the "
                              "command or set PORTCULLIS_CONFIG");
    }
    why[0] = '\0';
    r = config_load(ctx->config_path, &ctx->cfg, why, sizeof(why));
    if (r != ERR_OK) {
        return cli_error("%s", why[0] != '\0' ? why : err_str(r));
    }
    ctx->cfg_loaded = true;
    /* every hash this process makes (the CLI's, or the server's and its
     * children's) at the configured cost */
    password_set_cost((unsigned)ctx->cfg.password_passes,
                      (unsigned)ctx->cfg.password_memory_kib);
    config_node_name(&ctx->cfg, node, sizeof(node));
    store_set_session_defaults(node, ctx->cfg.node_dead_after_seconds);
    return CLI_EXIT_OK;
}

int cli_open_store(struct cli_ctx *ctx)
{
    int rc, r;

    if (ctx->st != NULL) {
        return CLI_EXIT_OK;
    }
    if ((rc = cli_load_config(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    /* store_open() creates a missing database; outside `init` a missing
     * one means a wrong path, not a wish for an empty store. (A
     * PostgreSQL store, [store] url, is a database someone created.) */
    if (strcmp(ctx->cfg.store_driver, "sqlite") == 0 &&
        access(ctx->cfg.store_path, F_OK) != 0) {
        return cli_error("store %s does not exist (see 'portcullis init')",
                         ctx->cfg.store_path);
    }
    r = store_open(ctx->cfg.store_path, &ctx->st);
    if (r != ERR_OK) {
        ctx->st = NULL;
        return cli_error("cannot open store %s: %s", ctx->cfg.store_path,
                         err_str(r));
    }
    if ((r = store_set_audit_key(ctx->st, ctx->cfg.store_audit_key)) !=
        ERR_OK) {
        return cli_error("%s", err_str(r));
    }
    return CLI_EXIT_OK;
}

int cli_list_start(struct cli_ctx *ctx, int argc, char **argv, bool *json)
{
    const char *pos[CLI_MAX_POS];
    const struct cli_opt opts[] = {CLI_OPT_FLAG("--json", json), CLI_OPT_END};
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    return CLI_PARSED;
}

int cli_open_vault(struct cli_ctx *ctx)
{
    int rc, r;

    if (ctx->vault != NULL) {
        return CLI_EXIT_OK;
    }
    if ((rc = cli_load_config(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    r = vault_load(ctx->cfg.vault_key, &ctx->vault);
    if (r != ERR_OK) {
        ctx->vault = NULL;
        return cli_error("cannot load vault key %s: %s", ctx->cfg.vault_key,
                         err_str(r));
    }
    return CLI_EXIT_OK;
}

void cli_ctx_free(struct cli_ctx *ctx)
{
    store_close(ctx->st);
    ctx->st = NULL;
    vault_free(ctx->vault);
    ctx->vault = NULL;
    if (ctx->cfg_loaded) {
        config_free(&ctx->cfg);
        ctx->cfg_loaded = false;
    }
}

int cli_get_user(struct cli_ctx *ctx, const char *ref, struct store_user *u)
{
    int rc, r;

    memset(u, 0, sizeof(*u));
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_user_get(ctx->st, ref, u)) != ERR_OK) {
        return cli_store_error(r, "user", ref);
    }
    return CLI_EXIT_OK;
}

int cli_get_group(struct cli_ctx *ctx, const char *ref, struct store_group *g)
{
    int rc, r;

    memset(g, 0, sizeof(*g));
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_group_get(ctx->st, ref, g)) != ERR_OK) {
        return cli_store_error(r, "group", ref);
    }
    return CLI_EXIT_OK;
}

int cli_get_asset(struct cli_ctx *ctx, const char *ref, struct store_asset *out)
{
    struct store_asset *list = NULL;
    size_t n = 0, i, hits = 0, at = 0, used = 0;
    char ids[1024] = "";
    int rc, r;

    memset(out, 0, sizeof(*out));
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    /* The store refuses names shaped like a UUID: an ID is never a name. */
    if (util_is_uuid(ref)) {
        if ((r = store_asset_get(ctx->st, ref, out)) != ERR_OK) {
            return cli_store_error(r, "asset", ref);
        }
        return CLI_EXIT_OK;
    }
    /* By name in any site: an admin names assets across the tree, unlike a
     * login, which names them within one site. */
    if ((r = store_asset_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list assets: %s", err_str(r));
    }
    for (i = 0; i < n; i++) {
        if (strcmp(list[i].name, ref) != 0) {
            continue;
        }
        if (hits++ == 0) {
            at = i;
        }
        if (used < sizeof(ids)) {
            used += (size_t)snprintf(ids + used, sizeof(ids) - used, "%s%s",
                                     hits > 1 ? ", " : "", list[i].id);
        }
    }
    if (hits == 0) {
        rc = cli_error("asset '%s' not found", ref);
    } else if (hits > 1) {
        rc = cli_error("asset name '%s' is ambiguous, use an ID: %s", ref, ids);
    } else {
        *out = list[at];
        memset(&list[at], 0, sizeof(list[at]));
        rc = CLI_EXIT_OK;
    }
    store_asset_list_free(list, n);
    return rc;
}

/* --- secrets --- */

int cli_read_password(char **out)
{
    struct termios old, quiet;
    bool tty = false;
    int r;

    *out = NULL;
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0) {
            tty = true;
            fprintf(stderr, "Password: ");
            fflush(stderr);
        }
    }
    r = util_read_stdin_line(PASSWORD_MAX, out);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (r == ERR_TOO_LONG) {
        return cli_error("password too long (at most %d bytes)", PASSWORD_MAX);
    }
    if (r != ERR_OK) {
        return cli_error("cannot read the password from standard input: %s",
                         err_str(r));
    }
    if ((*out)[0] == '\0') {
        cli_secret_free(*out);
        *out = NULL;
        return cli_error("empty password on standard input");
    }
    return CLI_EXIT_OK;
}

void cli_secret_free(char *s)
{
    if (s != NULL) {
        sodium_memzero(s, strlen(s));
        free(s);
    }
}

int cli_admin_error(const struct cli_ctx *ctx, const struct admin_err *e)
{
    if (e->code == ERR_INVALID || e->code == ERR_TOO_LONG) {
        return cli_usage(ctx, "%s", e->msg);
    }
    return cli_error("%s", e->msg);
}

/* --- tables --- */

struct cli_table {
    size_t ncols;
    size_t nrows; /* including the header */
    size_t cap;   /* rows allocated */
    char **cells; /* nrows * ncols */
    bool failed;  /* an allocation failed; finish reports it */
};

/* Adds a row of t->ncols cells. */
static void cli_table_row(struct cli_table *t, const char *const *row)
{
    char **cells;
    const char *s;
    size_t c;

    if (t->failed) {
        return;
    }
    if (t->nrows == t->cap) {
        t->cap = t->cap == 0 ? 16 : t->cap * 2;
        cells = realloc(t->cells, t->cap * t->ncols * sizeof(*cells));
        if (cells == NULL) {
            t->failed = true;
            return;
        }
        t->cells = cells;
    }
    for (c = 0; c < t->ncols; c++) {
        s = row[c];
        if (s == NULL || *s == '\0') {
            s = "-";
        }
        t->cells[t->nrows * t->ncols + c] = strdup(s);
        if (t->cells[t->nrows * t->ncols + c] == NULL) {
            t->failed = true;
        } else {
            cli_clean(t->cells[t->nrows * t->ncols + c]);
        }
    }
    t->nrows++;
}

static void cli_table_vadd(struct cli_table *t, va_list ap)
{
    const char *row[CLI_TABLE_MAX_COLS];
    size_t c;

    for (c = 0; c < t->ncols; c++) {
        row[c] = va_arg(ap, const char *);
    }
    cli_table_row(t, row);
}

struct cli_table *cli_table_new(size_t ncols, ...)
{
    struct cli_table *t;
    va_list ap;

    if (ncols == 0 || ncols > CLI_TABLE_MAX_COLS ||
        (t = calloc(1, sizeof(*t))) == NULL) {
        return NULL;
    }
    t->ncols = ncols;
    va_start(ap, ncols);
    cli_table_vadd(t, ap);
    va_end(ap);
    return t;
}

void cli_table_add(struct cli_table *t, ...)
{
    va_list ap;

    if (t == NULL) {
        return;
    }
    va_start(ap, t);
    cli_table_vadd(t, ap);
    va_end(ap);
}

void cli_table_print(const struct cli_table *t, FILE *f)
{
    size_t w[CLI_TABLE_MAX_COLS] = {0}, r, c, len;
    const char *s;

    for (r = 0; r < t->nrows; r++) {
        for (c = 0; c < t->ncols; c++) {
            len = strlen(t->cells[r * t->ncols + c]);
            if (len > w[c]) {
                w[c] = len;
            }
        }
    }
    for (r = 0; r < t->nrows; r++) {
        for (c = 0; c < t->ncols; c++) {
            s = t->cells[r * t->ncols + c];
            if (c + 1 < t->ncols) {
                fprintf(f, "%-*s  ", (int)w[c], s);
            } else {
                fprintf(f, "%s\n", s);
            }
        }
    }
}

void cli_table_free(struct cli_table *t)
{
    size_t i;

    if (t == NULL) {
        return;
    }
    for (i = 0; t->cells != NULL && i < t->nrows * t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    free(t);
}

int cli_table_finish(struct cli_table *t)
{
    int rc = CLI_EXIT_OK;

    if (t == NULL || t->failed) {
        rc = cli_error("%s", err_str(ERR_NOMEM));
    } else {
        cli_table_print(t, stdout);
    }
    cli_table_free(t);
    return rc;
}

void cli_show(const char *field, const char *value)
{
    char *v;

    if (value == NULL || *value == '\0') {
        value = "-";
    }
    if ((v = strdup(value)) == NULL) {
        return;
    }
    cli_clean(v);
    printf("%-20s %s\n", field, v);
    free(v);
}

/* --- JSON --- */

int cli_json_print(json_t *j)
{
    int r;

    if (j == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    r = json_dumpf(j, stdout, JSON_INDENT(2));
    json_decref(j);
    if (r != 0) {
        return cli_error("cannot write JSON to standard output");
    }
    putchar('\n');
    return CLI_EXIT_OK;
}

void cli_json_append(json_t **arr, json_t *v)
{
    /* json_array_append_new() releases v on every failure, NULL arr too. */
    if (json_array_append_new(*arr, v) != 0) {
        json_decref(*arr);
        *arr = NULL;
    }
}

void cli_json_set(json_t **obj, const char *key, json_t *v)
{
    /* json_object_set_new() releases v on every failure, NULL obj too. */
    if (json_object_set_new(*obj, key, v) != 0) {
        json_decref(*obj);
        *obj = NULL;
    }
}

json_t *cli_json_time(int64_t t)
{
    char s[32];

    if (t == 0) {
        return json_null();
    }
    util_fmt_time(t, s, sizeof(s));
    return json_string(s);
}

const char *cli_nz(const char *s)
{
    return s != NULL && *s != '\0' ? s : NULL;
}

void cli_fmt_time(int64_t t, char *out, size_t outlen)
{
    if (t == 0) {
        snprintf(out, outlen, "-");
        return;
    }
    util_fmt_time(t, out, outlen);
}

int cli_parse_time(const char *s, int64_t *out)
{
    static const char *const forms[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
                                        "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M",
                                        "%Y-%m-%d"};
    struct tm tm;
    const char *end;
    char *e = NULL;
    long long v;
    time_t t;
    size_t i;

    *out = 0;
    if (s == NULL || *s == '\0') {
        return ERR_INVALID;
    }
    if (strspn(s, "0123456789") == strlen(s)) {
        errno = 0;
        v = strtoll(s, &e, 10);
        if (errno != 0 || *e != '\0' || v > INT64_MAX / 2) {
            return ERR_INVALID;
        }
        *out = (int64_t)v;
        return ERR_OK;
    }
    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        memset(&tm, 0, sizeof(tm));
        end = strptime(s, forms[i], &tm);
        if (end == NULL) {
            continue;
        }
        /* UTC only: a trailing Z, or nothing. */
        if (*end == 'Z' && i < 4) {
            end++;
        }
        if (*end != '\0') {
            continue;
        }
        if ((t = timegm(&tm)) == (time_t)-1) {
            return ERR_INVALID;
        }
        *out = (int64_t)t;
        return ERR_OK;
    }
    return ERR_INVALID;
}

json_t *cli_json_text(const char *s)
{
    json_t *j;
    char *c;
    size_t i;

    if ((j = json_string(s)) != NULL || s == NULL) {
        return j;
    }
    /* Not UTF-8: keep ASCII, mark the rest. */
    if ((c = strdup(s)) == NULL) {
        return NULL;
    }
    for (i = 0; c[i] != '\0'; i++) {
        if ((unsigned char)c[i] >= 0x80) {
            c[i] = '?';
        }
    }
    j = json_string(c);
    free(c);
    return j;
}

/* --- descriptors (admin.h) --- */

int cli_fields_table(const struct admin_field *f, const void *list, size_t n,
                     size_t stride)
{
    const struct admin_field *cols[CLI_TABLE_MAX_COLS];
    const char *row[CLI_TABLE_MAX_COLS];
    char cell[CLI_TABLE_MAX_COLS][1024];
    struct cli_table *t;
    size_t nc = 0, c, i;

    for (; f->json != NULL && nc < CLI_TABLE_MAX_COLS; f++) {
        if (f->col != NULL) {
            cols[nc] = f;
            row[nc++] = f->col;
        }
    }
    if (nc == 0 || (t = calloc(1, sizeof(*t))) == NULL) {
        return cli_table_finish(NULL);
    }
    t->ncols = nc;
    cli_table_row(t, row);
    for (i = 0; i < n; i++) {
        const void *obj = (const char *)list + i * stride;

        for (c = 0; c < nc; c++) {
            admin_field_text(cols[c], obj, cell[c], sizeof(cell[c]));
            row[c] = cell[c];
        }
        cli_table_row(t, row);
    }
    return cli_table_finish(t);
}

int cli_fields_list(const struct admin_field *f, const void *list, size_t n,
                    size_t stride, bool json)
{
    json_t *arr;
    size_t i;

    if (!json) {
        return cli_fields_table(f, list, n, stride);
    }
    arr = json_array();
    for (i = 0; i < n; i++) {
        cli_json_append(&arr,
                        admin_json_encode(f, (const char *)list + i * stride));
    }
    return cli_json_print(arr);
}

void cli_fields_show(const struct admin_field *f, const void *obj)
{
    char text[2048];

    for (; f->json != NULL; f++) {
        if (!(f->flags & AF_NOJSON)) {
            admin_field_text(f, obj, text, sizeof(text));
            cli_show(f->json, text);
        }
    }
}

/* The actor of a change from the CLI: "cli:<unix user>". */
static void cli_actor(char *out, size_t outlen)
{
    struct passwd *pw = getpwuid(getuid());

    if (pw != NULL && pw->pw_name != NULL) {
        snprintf(out, outlen, "cli:%.100s", pw->pw_name);
    } else {
        snprintf(out, outlen, "cli:uid=%u", (unsigned)getuid());
    }
}

int cli_admin_ctx(struct cli_ctx *ctx, struct admin_ctx *c)
{
    static char actor[STORE_NAME_MAX + 1];
    int rc;

    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    cli_actor(actor, sizeof(actor));
    memset(c, 0, sizeof(*c));
    c->st = ctx->st;
    c->cfg = &ctx->cfg;
    c->vault = ctx->vault; /* NULL unless the verb opened it first */
    c->data_dir = ctx->cfg.data_dir;
    c->actor = actor;
    c->source = "cli";
    return CLI_EXIT_OK;
}

int cli_admin_delete(struct cli_ctx *ctx, int argc, char **argv,
                     const char *posspec,
                     int (*del)(const struct admin_ctx *c, const char *ref,
                                struct admin_err *e))
{
    const char *pos[CLI_MAX_POS];
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, posspec, pos)) != CLI_PARSED ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (del(&ac, pos[0], &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

void cli_notice(const struct admin_notice *n)
{
    if (n->warn[0] != '\0') {
        cli_error("warning: %s", n->warn);
    }
}

/* A comma-separated option value as a JSON array of its entries. */
static json_t *cli_csv_json(const char *v)
{
    json_t *a = json_array();
    size_t len;

    while (a != NULL && *v != '\0') {
        len = strcspn(v, ",");
        json_array_append_new(a, json_stringn(v, len));
        v += len + (v[len] == ',');
    }
    return a;
}

int cli_parse_fields(struct cli_ctx *ctx, int argc, char **argv,
                     const struct admin_field *f, bool create,
                     const struct cli_opt *extra, const char *posspec,
                     const char *pos[CLI_MAX_POS], json_t **body)
{
    struct cli_opt opts[CLI_MAX_OPTS + 1];
    const struct admin_field *of[CLI_MAX_OPTS];
    const char *strs[CLI_MAX_OPTS];
    bool flags[CLI_MAX_OPTS];
    int ints[CLI_MAX_OPTS];
    size_t n = 0, i;
    json_t *v;
    int rc;

    *body = NULL;
    for (; f->json != NULL; f++) {
        if (f->cli == NULL || strncmp(f->cli, "--", 2) != 0 ||
            (f->flags & AF_READONLY) || f->type == AF_FN ||
            (!create && (f->flags & AF_FIXED)) ||
            (create && (f->flags & AF_NOCREATE)) || n >= CLI_MAX_OPTS) {
            continue;
        }
        of[n] = f;
        strs[n] = NULL;
        flags[n] = false;
        ints[n] = INT_MIN; /* not given */
        if (f->type == AF_BOOL) {
            opts[n] = (struct cli_opt)CLI_OPT_FLAG(f->cli, &flags[n]);
        } else if (f->type == AF_INT) {
            opts[n] = (struct cli_opt)CLI_OPT_INT(f->cli, &ints[n], (int)f->lo,
                                                  (int)f->hi);
        } else {
            opts[n] = (struct cli_opt)CLI_OPT_STR(f->cli, &strs[n]);
        }
        n++;
    }
    for (i = 0; extra != NULL && extra[i].name != NULL && n < CLI_MAX_OPTS;
         i++) {
        of[n] = NULL;
        opts[n++] = extra[i];
    }
    opts[n] = (struct cli_opt)CLI_OPT_END;
    if ((rc = cli_parse(ctx, argc, argv, opts, posspec, pos)) != CLI_PARSED) {
        return rc;
    }
    if ((*body = json_object()) == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    for (i = 0; i < n; i++) {
        if ((f = of[i]) == NULL) {
            continue;
        }
        if (f->type == AF_BOOL) {
            /* "--no-shell" turns shell off, "--x11" turns x11 on */
            v = flags[i] ? json_boolean(strncmp(f->cli, "--no-", 5) != 0)
                         : NULL;
        } else if (f->type == AF_INT) {
            v = ints[i] != INT_MIN ? json_integer(ints[i]) : NULL;
        } else if (strs[i] == NULL) {
            v = NULL;
        } else {
            v = f->type == AF_CSV ? cli_csv_json(strs[i])
                                  : json_string(strs[i]);
        }
        if (v == NULL && create && (f->flags & AF_REQUIRED)) {
            json_decref(*body);
            *body = NULL;
            return cli_usage(ctx, "missing %s", f->cli);
        }
        if (v != NULL) {
            json_object_set_new(*body, f->in != NULL ? f->in : f->json, v);
        }
    }
    return CLI_PARSED;
}
