/*
 * The `portcullis` admin CLI: what main.c and every noun file share.
 *
 * A command is a tree of struct cli_cmd: main.c holds the nouns, each noun
 * file (cli_user.c, cli_asset.c, ...) its verbs. main.c walks the tree with
 * cli_dispatch(); a leaf's run() parses its own arguments with the one
 * table-driven parser, cli_parse(), and returns the process exit status:
 *
 *   0  success (and --help)
 *   1  the command failed: one line "portcullis: <message>" on stderr
 *   2  the command line was wrong: one line with a hint to use --help
 *
 * Helpers named cli_* that print an error return one of these statuses, so
 * a verb can simply `return cli_error(...)` or propagate them.
 *
 * Ownership: struct cli_ctx owns the loaded config, the store handle and
 * the vault; cli_ctx_free() releases them once, in main().
 */
#ifndef PORTCULLIS_CLI_H
#define PORTCULLIS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <libssh/libssh.h>

#include "admin/admin.h"
#include "common/config.h"
#include "store/store.h"

enum cli_exit { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* cli_parse(): the arguments were parsed and the command should run. */
#define CLI_PARSED (-1)
/* Most positional arguments a command takes. */
#define CLI_MAX_POS 4

struct vault;
struct cli_cmd;

struct cli_ctx {
    const char *config_path; /* -c FILE or $PORTCULLIS_CONFIG; may be NULL */
    struct config cfg;
    bool cfg_loaded;
    struct store *st;          /* opened on first use */
    struct vault *vault;       /* loaded on first use */
    const struct cli_cmd *cur; /* the command being run, for --help */
    char cmd[128];             /* its words: "user key add" */
};

struct cli_cmd {
    const char *name;     /* the word on the command line */
    const char *synopsis; /* usage after "portcullis "; NULL for pure nouns */
    const char *summary;  /* one line */
    const char *details;  /* options and notes; may be NULL */
    /* Runs a leaf (argv holds what follows its name). A noun with both
     * run and sub runs run() when its first argument names no sub-verb. */
    int (*run)(struct cli_ctx *ctx, int argc, char **argv);
    const struct cli_cmd *const *sub; /* NULL-terminated, or NULL */
};

/* The top-level commands: one file per noun; init and serve in cli_init.c. */
extern const struct cli_cmd cli_init;
extern const struct cli_cmd cli_serve;
extern const struct cli_cmd cli_user;
extern const struct cli_cmd cli_group;
extern const struct cli_cmd cli_site;
extern const struct cli_cmd cli_asset;
extern const struct cli_cmd cli_grant;
extern const struct cli_cmd cli_profile;
extern const struct cli_cmd cli_session;
extern const struct cli_cmd cli_audit;
extern const struct cli_cmd cli_token;
extern const struct cli_cmd cli_role;

/* --- dispatch, parsing, messages --- */

int cli_dispatch(struct cli_ctx *ctx, const struct cli_cmd *c, int argc,
                 char **argv);
void cli_print_help(const struct cli_cmd *c, FILE *f);
void cli_ctx_free(struct cli_ctx *ctx);

enum cli_opt_type { CLI_FLAG, CLI_STR, CLI_INT };

/* One option of a command. val points at a bool (CLI_FLAG, set true), a
 * const char * (CLI_STR, pointed into argv) or an int (CLI_INT, checked
 * against lo..hi). Tables end with an entry whose name is NULL. */
struct cli_opt {
    const char *name; /* "--json" */
    enum cli_opt_type type;
    void *val;
    int lo, hi;
};

#define CLI_OPT_FLAG(name, val)                                                \
    {                                                                          \
        name, CLI_FLAG, val, 0, 0                                              \
    }
#define CLI_OPT_STR(name, val)                                                 \
    {                                                                          \
        name, CLI_STR, val, 0, 0                                               \
    }
#define CLI_OPT_INT(name, val, lo, hi)                                         \
    {                                                                          \
        name, CLI_INT, val, lo, hi                                             \
    }
#define CLI_OPT_END                                                            \
    {                                                                          \
        NULL, CLI_FLAG, NULL, 0, 0                                             \
    }

/* Parses argv against opts and the positional spec, e.g. "NAME FILE" or
 * "[ASSET]" (bracketed words are optional and come last); pos receives
 * them (unused slots NULL). Options and positionals may be mixed, "--"
 * ends the options, "--opt=value" is accepted. Returns CLI_PARSED, or an
 * exit status after printing the help (0) or a usage error (2). */
int cli_parse(struct cli_ctx *ctx, int argc, char **argv,
              const struct cli_opt *opts, const char *posspec,
              const char *pos[CLI_MAX_POS]);

/* "portcullis: <message>" on stderr; returns CLI_EXIT_FAIL. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error with a hint naming the current command's --help; returns
 * CLI_EXIT_USAGE. */
int cli_usage(const struct cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* An error from the store about object `what` called `name`, worded by
 * code ("user 'bob' not found", "group 'ops' already exists"). */
int cli_store_error(int err, const char *what, const char *name);

/* --- the configured state --- */

int cli_load_config(struct cli_ctx *ctx);
int cli_open_store(struct cli_ctx *ctx);
/* The start every "<noun> list" command shares: parses argv (--json, no
 * positional arguments) into *json and opens the store. Returns
 * CLI_PARSED to go on, or the exit status to return. */
int cli_list_start(struct cli_ctx *ctx, int argc, char **argv, bool *json);
int cli_open_vault(struct cli_ctx *ctx);

/* Looks an object up by name or ID, with a worded error. */
int cli_get_user(struct cli_ctx *ctx, const char *ref, struct store_user *u);
int cli_get_group(struct cli_ctx *ctx, const char *ref, struct store_group *g);
/* An asset by ID, or by name when exactly one asset (in any site) has it;
 * otherwise the error names the candidates' IDs. out must be released with
 * store_asset_clear(). */
int cli_get_asset(struct cli_ctx *ctx, const char *ref,
                  struct store_asset *out);

/* --- secrets --- */

/* Reads a password from one line of standard input (echo off on a
 * terminal). The caller wipes and frees it with cli_secret_free(). */
int cli_read_password(char **out);
void cli_secret_free(char *s);

/* Prints a refusal of the admin layer (admin.h) as one line: a refused
 * value exits CLI_EXIT_USAGE, anything else CLI_EXIT_FAIL. Host and
 * fingerprint validators, key fingerprints: admin.h. */
int cli_admin_error(const struct cli_ctx *ctx, const struct admin_err *e);

/* --- output --- */

struct cli_table;

/* Aligned columns under a header line. Cells are copied; NULL or "" cells
 * print as "-". */
struct cli_table *cli_table_new(size_t ncols, ...);
void cli_table_add(struct cli_table *t, ...);
void cli_table_print(const struct cli_table *t, FILE *f);
void cli_table_free(struct cli_table *t);
/* Prints a table and frees it: the tail of every list verb. A failed
 * allocation (NULL table, or a row that could not be added) is reported
 * here, so rows may be added without checking each one. */
int cli_table_finish(struct cli_table *t);

/* One "field  value" line of a `show` verb. */
void cli_show(const char *field, const char *value);

/* Prints j (indented, newline) on stdout and releases it; NULL means an
 * allocation failed. */
int cli_json_print(json_t *j);
/* Appends v to the array *arr; on failure releases both and leaves *arr
 * NULL, so a loop appends without checks and cli_json_print() reports it.
 */
void cli_json_append(json_t **arr, json_t *v);
/* Sets key of the object *obj to v, the same way. */
void cli_json_set(json_t **obj, const char *key, json_t *v);
/* An ISO-8601 string, or JSON null when t is 0. */
json_t *cli_json_time(int64_t t);
/* NULL for "" (with json_pack's "s?"), s otherwise. */
const char *cli_nz(const char *s);
/* The ISO-8601 form of t into out[32], or "-" when t is 0. */
void cli_fmt_time(int64_t t, char *out, size_t outlen);
/* A time argument (--since, --until): Unix seconds, or ISO-8601 UTC as
 * "2026-11-21T05:00:00Z", "2026-11-21T05:00Z" or "2026-11-21" (midnight).
 * Returns ERR_OK or ERR_INVALID (prints nothing). */
int cli_parse_time(const char *s, int64_t *out);
/* A JSON string for text from the store, which may hold bytes that are
 * not UTF-8: those become '?' rather than failing the whole output. */
json_t *cli_json_text(const char *s);

/* --- descriptors (admin.h) --- */

/* A list verb's table: one column per field with a header (col), cells
 * as admin_field_text() writes them. list holds n objects stride bytes
 * apart. */
int cli_fields_table(const struct admin_field *f, const void *list, size_t n,
                     size_t stride);
/* A list verb's answer: the JSON forms (json) or the table. */
int cli_fields_list(const struct admin_field *f, const void *list, size_t n,
                    size_t stride, bool json);
/* A show verb's "field  value" lines, one per JSON field. */
void cli_fields_show(const struct admin_field *f, const void *obj);

/* Parses a create's (create) or an update's options by the noun's
 * descriptor: one option per field a request may set whose CLI name is
 * an option ("--port"): a flag for a bool ("--no-shell" sets shell
 * false, "--x11" sets x11 true), an integer within the field's limits,
 * text otherwise (a list comma-separated); extra are the verb's own
 * options (NULL: none). The values given become *body, an object under
 * the API's body keys, for admin_json_apply: the API's own path. A
 * required field not given is a usage error. Returns as cli_parse. */
int cli_parse_fields(struct cli_ctx *ctx, int argc, char **argv,
                     const struct admin_field *f, bool create,
                     const struct cli_opt *extra, const char *posspec,
                     const char *pos[CLI_MAX_POS], json_t **body);

/* The door of a change from the CLI (admin.h): the store (opened here),
 * the config, notices to the server of the data directory, the actor
 * "cli:<unix user>". */
int cli_admin_ctx(struct cli_ctx *ctx, struct admin_ctx *c);
/* A delete verb whose one positional argument (posspec, e.g. "NAME")
 * names what del (admin's delete function) removes; del's refusal is
 * printed as by cli_admin_error(). Returns the exit status. */
int cli_admin_delete(struct cli_ctx *ctx, int argc, char **argv,
                     const char *posspec,
                     int (*del)(const struct admin_ctx *c, const char *ref,
                                struct admin_err *e));
/* Prints a notice's warning, if any (the change was made). */
void cli_notice(const struct admin_notice *n);

#endif
