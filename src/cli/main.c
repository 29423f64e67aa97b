/*
 * `portcullis`: the entry point of the access server and its admin CLI.
 *
 * Reads the global options (-c FILE, --help, --version), which must come
 * before the command, then hands the rest to the command tree of cli.h:
 * `init` and `serve` (cli_init.c) and one noun per file for the admin
 * commands on the configured store.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "cli/cli.h"
#include "common/log.h"

/* The agent side's nouns (cli_credential.c, cli_agent.c, cli_tunnel.c). */
extern const struct cli_cmd cli_credential;
extern const struct cli_cmd cli_agent;
extern const struct cli_cmd cli_tunnel;
extern const struct cli_cmd cli_directory;    /* cli_directory.c */
extern const struct cli_cmd cli_peer;         /* cli_peer.c */
extern const struct cli_cmd cli_job;          /* cli_job.c */
extern const struct cli_cmd cli_schedule;     /* cli_job.c */
extern const struct cli_cmd cli_client_group; /* cli_job.c */
extern const struct cli_cmd cli_store;        /* cli_store.c */
extern const struct cli_cmd cli_node;         /* cli_node.c */

static const struct cli_cmd *const main_cmds[] = {
    &cli_init,       &cli_serve, &cli_user,     &cli_group,
    &cli_site,       &cli_asset, &cli_grant,    &cli_profile,
    &cli_session,    &cli_audit, &cli_token,    &cli_role,
    &cli_credential, &cli_agent, &cli_tunnel,   &cli_directory,
    &cli_peer,       &cli_job,   &cli_schedule, &cli_client_group,
    &cli_store,      &cli_node,  NULL};

static void main_usage(FILE *f)
{
    size_t i;

    fprintf(f, "usage: portcullis [-c CONF] COMMAND [ARGS...]\n"
               "       portcullis --version\n"
               "\n"
               "Portcullis, a zero-trust SSH access broker: its server and "
               "admin commands.\n"
               "\n"
               "Commands:\n");
    for (i = 0; main_cmds[i] != NULL; i++) {
        fprintf(f, "  %-10s %s\n", main_cmds[i]->name, main_cmds[i]->summary);
    }
    fprintf(f, "\n"
               "Options (before the command):\n"
               "  -c, --config FILE  the configuration file (default: "
               "$PORTCULLIS_CONFIG)\n"
               "  --version          print the version\n"
               "  -h, --help         print this help\n"
               "\n"
               "Run 'portcullis COMMAND --help' for the usage of a "
               "command.\n");
}

int main(int argc, char **argv)
{
    struct cli_ctx ctx;
    const char *a, *env;
    size_t n;
    int i = 1, rc, lvl;
    bool config_given = false;

    memset(&ctx, 0, sizeof(ctx));
    /* The CLI writes only one-line errors of its own; the modules' log
     * lines are for `serve`, or on request through PORTCULLIS_LOG_LEVEL. */
    log_init("portcullis", LOG_ERROR);
    env = getenv("PORTCULLIS_LOG_LEVEL");
    if (env != NULL && (lvl = log_level_parse(env)) >= 0) {
        log_set_level((enum log_level)lvl);
    }
    /* Everything the CLI creates (database, keys, config) is private. */
    umask(077);
    if (sodium_init() < 0) {
        return cli_error("cannot initialise libsodium");
    }
    env = getenv("PORTCULLIS_CONFIG");
    if (env != NULL && *env != '\0') {
        ctx.config_path = env;
    }
    for (; i < argc && argv[i][0] == '-'; i++) {
        a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            main_usage(stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(a, "--version") == 0) {
            printf("portcullis %s\n", PORTCULLIS_VERSION);
            return CLI_EXIT_OK;
        }
        /* Given twice is a usage error, as any repeated option: the
         * later one silently winning would act on the wrong store. */
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0') {
                return cli_usage(&ctx, "option %s needs a file", a);
            }
            if (config_given) {
                return cli_usage(&ctx, "option -c/--config given twice");
            }
            config_given = true;
            ctx.config_path = argv[++i];
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0 && a[9] != '\0') {
            if (config_given) {
                return cli_usage(&ctx, "option -c/--config given twice");
            }
            config_given = true;
            ctx.config_path = a + 9;
            continue;
        }
        return cli_usage(&ctx, "unknown option '%s'", a);
    }
    if (i == argc) {
        main_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    for (n = 0; main_cmds[n] != NULL; n++) {
        if (strcmp(main_cmds[n]->name, argv[i]) == 0) {
            break;
        }
    }
    if (main_cmds[n] == NULL) {
        return cli_usage(&ctx, "unknown command '%s'", argv[i]);
    }
    rc = cli_dispatch(&ctx, main_cmds[n], argc - i - 1, argv + i + 1);
    cli_ctx_free(&ctx);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        rc = cli_error("cannot write to standard output");
    }
    return rc;
}
