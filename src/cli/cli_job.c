/*
 * `portcullis job`: commands run on agents (issue 14, docs/agent.md
 * "Commands").
 *
 * A job runs in the server (the hub reaches the agent), and the CLI has
 * no request/response channel to it. So `job run` queues the job in the
 * store (status "queued"), tells the server with a notice
 * (common/notify.h, HUB_CHANGE_JOBS; the notice carries no authority, the
 * server only re-reads the store), and waits by reading the job back from
 * the store until it ends. No server running: the job is marked failed at
 * once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "admin/admin.h"
#include "admin/admin_job.h"
#include "cli/cli.h"
#include "common/err.h"
#include "store/jobs.h"

#define JOB_EXIT_TIMEOUT 124 /* as timeout(1) */
#define JOB_EXIT_NOT_RUN                                                       \
    125                     /* refused, agent offline, lost, failed to start   \
                             */
#define JOB_WAIT_GRACE_S 40 /* past the timeout, before giving up waiting */

static void job_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* The job's outcome as an exit status of `job run`. */
static int job_exit(const struct store_job *j)
{
    if (strcmp(j->status, "ok") == 0 || strcmp(j->status, "failed") == 0) {
        if (j->exit_code >= 0) {
            return j->exit_code;
        }
        return j->signal > 0 ? 128 + j->signal : JOB_EXIT_NOT_RUN;
    }
    return strcmp(j->status, "timeout") == 0 ? JOB_EXIT_TIMEOUT
                                             : JOB_EXIT_NOT_RUN;
}

static int job_run_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *cwd = NULL;
    int timeout = ADMIN_JOB_TIMEOUT_DEFAULT, dd, rc, r;
    const struct cli_opt opts[] = {
        CLI_OPT_INT("--timeout", &timeout, 1, ADMIN_JOB_TIMEOUT_MAX),
        CLI_OPT_STR("--cwd", &cwd),
        CLI_OPT_END,
    };
    struct store_job *j;
    struct admin_ctx ac;
    struct admin_err e;
    char *cmd;
    size_t len = 0;
    bool delivered = false;
    time_t deadline;

    for (dd = 0; dd < argc && strcmp(argv[dd], "--") != 0; dd++) {
    }
    if ((rc = cli_parse(ctx, dd, argv, opts, "AGENT", pos)) != CLI_PARSED) {
        return rc;
    }
    if (dd + 1 >= argc) {
        return cli_usage(ctx, "the command goes after '--'");
    }
    for (int i = dd + 1; i < argc; i++) {
        len += strlen(argv[i]) + 1;
    }
    if (len > JOB_CMD_MAX + 1) {
        return cli_usage(ctx, "the command is longer than %d bytes",
                         JOB_CMD_MAX);
    }
    if ((cmd = calloc(1, len + 1)) == NULL ||
        (j = calloc(1, sizeof(*j))) == NULL) {
        free(cmd);
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    for (int i = dd + 1; i < argc; i++) {
        if (i > dd + 1) {
            strcat(cmd, " ");
        }
        strcat(cmd, argv[i]);
    }
    if (cwd != NULL && cwd[0] != '/') {
        free(cmd);
        free(j);
        return cli_usage(ctx, "--cwd must be an absolute path");
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        free(cmd);
        free(j);
        return rc;
    }
    r = admin_job_queue(&ac, pos[0], cmd, cwd, timeout, j, &delivered, &e);
    free(cmd);
    if (r != ERR_OK) {
        free(j);
        return cli_error("%s", e.msg);
    }
    if (!delivered) {
        fprintf(stderr,
                "portcullis: job %s: no server is running (jobs run in the "
                "server)\n",
                j->id);
        free(j);
        return JOB_EXIT_NOT_RUN;
    }
    deadline = time(NULL) + timeout + JOB_WAIT_GRACE_S;
    {
        char id[STORE_ID_MAX + 1];
        snprintf(id, sizeof(id), "%s", j->id);
        for (;;) {
            r = store_job_get(ctx->st, id, j);
            if (r != ERR_OK) {
                free(j);
                return cli_error("job %s: %s", id, err_str(r));
            }
            if (strcmp(j->status, "queued") != 0 &&
                strcmp(j->status, "running") != 0) {
                break;
            }
            store_job_free_output(j);
            if (time(NULL) > deadline) {
                free(j);
                return cli_error("job %s: no result after %d s; see `job "
                                 "show %s`",
                                 id, timeout + JOB_WAIT_GRACE_S, id);
            }
            job_sleep_ms(100);
        }
    }
    /* an empty output may have no buffer at all */
    if (j->out_len > 0) {
        fwrite(j->out, 1, j->out_len, stdout);
    }
    fflush(stdout);
    if (j->err_len > 0) {
        fwrite(j->err, 1, j->err_len, stderr);
    }
    if (strcmp(j->status, "ok") != 0 && strcmp(j->status, "failed") != 0) {
        fprintf(stderr, "portcullis: job %s: %s%s%s\n", j->id, j->status,
                j->why[0] != '\0' ? ": " : "", j->why);
    }
    rc = job_exit(j);
    store_job_free_output(j);
    free(j);
    return rc;
}

static int job_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct store_job *list = NULL;
    size_t n = 0;
    bool json = false;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_job_list(ctx->st, 1000, &list, &n)) != ERR_OK) {
        return cli_error("cannot list jobs: %s", err_str(r));
    }
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            cli_json_append(&arr, admin_job_json(&list[i], false));
        }
        free(list);
        return cli_json_print(arr);
    }
    printf("%-36s  %-20s  %-13s  %4s  %s\n", "ID", "AGENT", "STATUS", "EXIT",
           "COMMAND");
    for (size_t i = 0; i < n; i++) {
        char code[12] = "-";
        if (list[i].exit_code >= 0) {
            snprintf(code, sizeof(code), "%d", list[i].exit_code);
        }
        printf("%-36s  %-20s  %-13s  %4s  %.60s\n", list[i].id,
               list[i].agent_id, list[i].status, code, list[i].command);
    }
    free(list);
    return CLI_EXIT_OK;
}

static int job_show_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool json = false;
    const struct cli_opt opts[] = {
        CLI_OPT_FLAG("--json", &json),
        CLI_OPT_END,
    };
    struct store_job *j;
    json_t *o;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "ID", pos)) != CLI_PARSED ||
        (rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    if ((r = store_job_get(ctx->st, pos[0], j)) != ERR_OK) {
        free(j);
        return cli_store_error(r, "job", pos[0]);
    }
    o = admin_job_json(j, true);
    store_job_free_output(j);
    free(j);
    if (json) {
        return cli_json_print(o);
    }
    {
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v)
        {
            if (strcmp(key, "stdout") == 0 || strcmp(key, "stderr") == 0) {
                continue;
            }
            if (json_is_string(v)) {
                printf("%s=%s\n", key, json_string_value(v));
            } else if (json_is_integer(v)) {
                printf("%s=%lld\n", key, (long long)json_integer_value(v));
            } else {
                printf("%s=\n", key);
            }
        }
        printf("--- stdout\n%s",
               json_string_value(json_object_get(o, "stdout")));
        printf("--- stderr\n%s",
               json_string_value(json_object_get(o, "stderr")));
    }
    json_decref(o);
    return CLI_EXIT_OK;
}

static const struct cli_cmd job_run_cmd = {
    .name = "run",
    .synopsis = "job run AGENT [--timeout S] [--cwd DIR] -- COMMAND...",
    .summary = "Run a command on an agent (its own config decides), wait, "
               "print its output and exit with its exit code (124: timeout, "
               "125: not run).",
    .run = job_run_run,
};
static const struct cli_cmd job_list_cmd = {
    .name = "list",
    .synopsis = "job list [--json]",
    .summary = "List jobs, newest first.",
    .run = job_list_run,
};
static const struct cli_cmd job_show_cmd = {
    .name = "show",
    .synopsis = "job show ID [--json]",
    .summary = "Show a job with its output.",
    .run = job_show_run,
};

static const struct cli_cmd *const job_cmds[] = {&job_run_cmd, &job_list_cmd,
                                                 &job_show_cmd, NULL};

const struct cli_cmd cli_job = {
    .name = "job",
    .summary = "Run commands on agents and read their results.",
    .sub = job_cmds,
};
