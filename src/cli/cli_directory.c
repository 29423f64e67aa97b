/*
 * `portcullis directory ...`: the [directory "DOMAIN"] sections of the
 * config (auth/directory_conf.h, docs/directories.md).
 *
 *   list                       the directories configured
 *   test DOMAIN --user NAME    one login's check, step by step (reads the
 *                              password): connect, TLS, bind, the entry,
 *                              the groups and what they map to
 *   seal-password DOMAIN       seals a service account's password with
 *                              the vault for bind_password_sealed
 *
 * test changes nothing: it runs the directory check of a login in line
 * (serve runs the same one on its worker threads) and reads the store
 * only to say which mapped groups exist.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/directory.h"
#include "cli/cli.h"
#include "common/err.h"
#include "common/vault.h"

extern const struct cli_cmd cli_directory;

/* The directories of the loaded config; CLI_EXIT_OK or an exit status. */
static int dir_load(struct cli_ctx *ctx, struct directory_conf **dirs,
                    size_t *n)
{
    char why[512];
    int rc;

    if ((rc = cli_load_config(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if (directory_conf_parse(&ctx->cfg, dirs, n, why, sizeof(why)) != ERR_OK) {
        return cli_error("%s", why);
    }
    return CLI_EXIT_OK;
}

static int dir_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool json = false;
    const struct cli_opt opts[] = {CLI_OPT_FLAG("--json", &json), CLI_OPT_END};
    struct directory_conf *dirs = NULL;
    struct cli_table *t;
    char urls[1024], maps[2048];
    size_t n = 0;
    json_t *arr;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = dir_load(ctx, &dirs, &n)) != CLI_EXIT_OK) {
        return rc;
    }
    arr = json_array();
    t = cli_table_new(5, "DOMAIN", "URL", "STARTTLS", "BIND", "GROUP MAPPING");
    for (size_t i = 0; i < n; i++) {
        const struct directory_conf *d = &dirs[i];

        urls[0] = maps[0] = '\0';
        for (size_t j = 0; j < d->nurls; j++) {
            size_t u = strlen(urls);

            snprintf(urls + u, sizeof(urls) - u, "%s%s", j ? " " : "",
                     d->urls[j]);
        }
        for (size_t j = 0; j < d->nmaps; j++) {
            size_t u = strlen(maps);

            snprintf(maps + u, sizeof(maps) - u, "%s%s -> %s", j ? ", " : "",
                     d->maps[j].from, d->maps[j].to);
        }
        if (d->map_by_name) {
            size_t u = strlen(maps);

            snprintf(maps + u, sizeof(maps) - u, "%sby name", u ? ", " : "");
        }
        cli_table_add(t, d->name, urls, d->starttls ? "yes" : "no",
                      d->bind != NULL ? d->bind : "search as bind_dn", maps);
        cli_json_append(&arr, directory_conf_json(d));
    }
    directory_conf_free(dirs, n);
    if (json) {
        cli_table_free(t);
        return cli_json_print(arr);
    }
    json_decref(arr);
    return cli_table_finish(t);
}

static void dir_trace(void *arg, const char *step, const char *text)
{
    (void)arg;
    printf("%-8s %s\n", step, text);
    fflush(stdout);
}

/* The opened service password of d into *pw (NULL if d has none). */
static int dir_service_password(struct cli_ctx *ctx,
                                const struct directory_conf *d, char **pw)
{
    char ad[VAULT_AD_MAX];
    uint8_t *plain = NULL;
    size_t len = 0;
    int rc;

    *pw = NULL;
    if (d->bind_password_sealed == NULL) {
        return CLI_EXIT_OK;
    }
    if ((rc = cli_open_vault(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    vault_ad(ad, DIRECTORY_AD_BIND, d->name);
    if (vault_open(ctx->vault, ad, d->bind_password_sealed,
                   d->bind_password_sealed_len, &plain, &len) != ERR_OK) {
        return cli_error("[directory \"%s\"] bind_password_sealed does not "
                         "open with this vault key; seal it again with "
                         "'portcullis directory seal-password %s'",
                         d->name, d->name);
    }
    *pw = strdup((const char *)plain);
    vault_secret_free(plain, len);
    return *pw != NULL ? CLI_EXIT_OK : cli_error("out of memory");
}

/*
 * The test runs the check in line, and libldap 2.5 does not bound an
 * ldaps:// handshake with a server that accepts and never answers (serve
 * frees its threads at the deadline, directory.c): an alarm ends the
 * command with the same words instead.
 */
static char dir_alarm_msg[160];

static void dir_on_alarm(int sig)
{
    ssize_t w;

    (void)sig;
    w = write(STDERR_FILENO, dir_alarm_msg, strlen(dir_alarm_msg));
    (void)w;
    _exit(CLI_EXIT_FAIL);
}

static int dir_test_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *user = NULL;
    const struct cli_opt opts[] = {CLI_OPT_STR("--user", &user), CLI_OPT_END};
    struct directory_conf *dirs = NULL;
    const struct directory_conf *d;
    struct directory_result res;
    struct store_group g;
    char *pw = NULL, *svc = NULL;
    size_t n = 0;
    int rc, r;

    memset(&res, 0, sizeof(res));
    if ((rc = cli_parse(ctx, argc, argv, opts, "DOMAIN", pos)) != CLI_PARSED) {
        return rc;
    }
    if (user == NULL || user[0] == '\0') {
        return cli_usage(ctx, "--user NAME is required");
    }
    if ((rc = dir_load(ctx, &dirs, &n)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((d = directory_conf_find(dirs, n, pos[0])) == NULL) {
        rc = cli_error("no [directory \"%s\"] in %s", pos[0], ctx->cfg.path);
        goto out;
    }
    if ((rc = dir_service_password(ctx, d, &svc)) != CLI_EXIT_OK ||
        (rc = cli_read_password(&pw)) != CLI_EXIT_OK) {
        goto out;
    }
    printf("directory %s: user %s\n", d->name, user);
    fflush(stdout);
    snprintf(dir_alarm_msg, sizeof(dir_alarm_msg),
             "portcullis: directory %s unreachable (no answer within %d s)\n",
             d->name,
             d->timeout_seconds * 3 +
                 d->connect_timeout_seconds * (int)d->nurls);
    signal(SIGALRM, dir_on_alarm);
    alarm((unsigned)(d->timeout_seconds * 3 +
                     d->connect_timeout_seconds * (int)d->nurls));
    r = directory_check(d, svc, user, pw, &res, dir_trace, NULL);
    alarm(0);
    if (r != ERR_OK) {
        rc = cli_error("%s", res.why);
        goto out;
    }
    if (cli_open_store(ctx) == CLI_EXIT_OK) {
        for (size_t i = 0; i < res.nmapped; i++) {
            bool ok = store_group_get(ctx->st, res.mapped[i], &g) == ERR_OK;

            printf("%-8s %s: %s\n", "group", res.mapped[i],
                   ok ? "exists: the user joins it at login"
                      : "no such Portcullis group: ignored");
        }
    }
    printf("ok: %s@%s would log in as %s@%s with %zu mapped group(s)\n", user,
           d->name, user, d->name, res.nmapped);
    rc = CLI_EXIT_OK;
out:
    if (pw != NULL) {
        cli_secret_free(pw);
    }
    if (svc != NULL) {
        cli_secret_free(svc);
    }
    directory_result_clear(&res);
    directory_conf_free(dirs, n);
    return rc;
}

static int dir_seal_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    const struct cli_opt opts[] = {CLI_OPT_END};
    char ad[VAULT_AD_MAX], *pw = NULL, *b64 = NULL;
    uint8_t *sealed = NULL;
    size_t len = 0, b64len;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "DOMAIN", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_vault(ctx)) != CLI_EXIT_OK ||
        (rc = cli_read_password(&pw)) != CLI_EXIT_OK) {
        return rc;
    }
    vault_ad(ad, DIRECTORY_AD_BIND, pos[0]);
    for (char *p = ad; *p != '\0'; p++) {
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    }
    r = vault_seal(ctx->vault, ad, (const uint8_t *)pw, strlen(pw), &sealed,
                   &len);
    cli_secret_free(pw);
    if (r != ERR_OK) {
        return cli_error("cannot seal the password: %s", err_str(r));
    }
    b64len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    if ((b64 = malloc(b64len)) == NULL) {
        free(sealed);
        return cli_error("out of memory");
    }
    sodium_bin2base64(b64, b64len, sealed, len, sodium_base64_VARIANT_ORIGINAL);
    printf("bind_password_sealed = %s\n", b64);
    free(b64);
    free(sealed);
    return CLI_EXIT_OK;
}

static const struct cli_cmd dir_list_cmd = {
    .name = "list",
    .synopsis = "directory list [--json]",
    .summary = "List the directories of the config and their group mapping.",
    .run = dir_list_run,
};
static const struct cli_cmd dir_test_cmd = {
    .name = "test",
    .synopsis = "directory test DOMAIN --user NAME",
    .summary = "Check a directory login step by step (reads the password).",
    .details = "Shows connect, TLS, bind, the user's entry, the groups found "
               "(nested ones\nmarked) and the Portcullis groups they map to. "
               "Changes nothing.\nThe password is read from standard input "
               "(echo off on a terminal).\n",
    .run = dir_test_run,
};
static const struct cli_cmd dir_seal_cmd = {
    .name = "seal-password",
    .synopsis = "directory seal-password DOMAIN",
    .summary = "Seal a service account's password for bind_password_sealed.",
    .details = "Reads the password from standard input and prints the line "
               "to put into\n[directory \"DOMAIN\"]. It opens only with this "
               "server's vault key and only\nfor that domain.\n",
    .run = dir_seal_run,
};
static const struct cli_cmd *const dir_cmds[] = {&dir_list_cmd, &dir_test_cmd,
                                                 &dir_seal_cmd, NULL};

const struct cli_cmd cli_directory = {
    .name = "directory",
    .summary = "Directories (LDAP) that check domain logins.",
    .sub = dir_cmds,
};
