/*
 * `portcullis store`: operations on the store as a whole. `store migrate`
 * copies a SQLite installation's data into PostgreSQL (store/copy.h does
 * the copy and its check; docs/operations.md says what else moves).
 *
 * It needs no configuration: both stores are named on the command line,
 * so it runs against a stopped installation as well as a running one.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "common/config.h"
#include "common/err.h"
#include "store/copy.h"

static int store_migrate_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *from = NULL, *to = NULL, *pos[CLI_MAX_POS];
    bool replace = false;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--from", &from),
        CLI_OPT_STR("--to", &to),
        CLI_OPT_FLAG("--replace", &replace),
        CLI_OPT_END,
    };
    struct store_copy_table *t = NULL;
    char why[768], hex[65];
    size_t n = 0, i;
    int64_t rows = 0;
    int rc, r, seqs = 0;

    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if (from == NULL || to == NULL) {
        return cli_usage(ctx, "needs --from sqlite:PATH and --to "
                              "postgresql://...");
    }
    if (strncmp(from, "sqlite:", 7) != 0 || from[7] == '\0') {
        return cli_usage(ctx, "--from must be sqlite:PATH");
    }
    from += 7;
    if (config_store_url_check(to, why, sizeof(why)) != ERR_OK) {
        return cli_usage(ctx, "--to: %s", why);
    }
    /* Opening a store creates a missing file: a typo must not copy an
     * empty store over. */
    if (access(from, R_OK) != 0) {
        return cli_error("--from: cannot read %s", from);
    }
    r = store_copy(from, to, replace, &t, &n, &seqs, why, sizeof(why));
    if (r != ERR_OK) {
        return cli_error("store migrate: %s", why);
    }
    for (i = 0; i < n; i++) {
        sodium_bin2hex(hex, sizeof(hex), t[i].digest, sizeof(t[i].digest));
        printf("table=%s rows=%lld sha256=%s\n", t[i].name,
               (long long)t[i].rows, hex);
        rows += t[i].rows;
    }
    printf("moved_rows=%lld tables=%zu sequences_set=%d checked=yes\n",
           (long long)rows, n, seqs);
    printf("# Every table's row count and digest were read back from the "
           "target before\n# the commit. The vault key and recordings are "
           "files: copy vault.key and\n# the recordings directory to each "
           "node (docs/operations.md), then set\n# [store] url in "
           "portcullis.conf.\n");
    free(t);
    return CLI_EXIT_OK;
}

static const struct cli_cmd store_migrate_cmd = {
    .name = "migrate",
    .synopsis = "store migrate --from sqlite:PATH --to postgresql://... "
                "[--replace]",
    .summary = "Copy a SQLite store's data into PostgreSQL, checked row for "
               "row.",
    .details =
        "The SQLite store (stopped or running) is read in one read "
        "transaction;\n"
        "the target is written in one transaction and committed only after "
        "every\n"
        "table's row count and SHA-256 digest read back from it match the "
        "source.\n"
        "The target database must exist (created with --locale=C); its "
        "schema is\n"
        "made or brought up to date. A target that already holds data is "
        "refused\n"
        "unless --replace (which deletes it, in the same transaction).\n"
        "Prints table=NAME rows=N sha256=HEX per table and a moved_rows= "
        "line.\n"
        "vault.key and recordings move as files (docs/operations.md).\n",
    .run = store_migrate_run,
};

static const struct cli_cmd *const store_cmds[] = {&store_migrate_cmd, NULL};

const struct cli_cmd cli_store = {
    .name = "store",
    .summary = "Operations on the whole store (migrate SQLite to "
               "PostgreSQL).",
    .sub = store_cmds,
};
