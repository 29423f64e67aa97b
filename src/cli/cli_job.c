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
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "admin/admin.h"
#include "admin/admin_client_group.h"
#include "admin/admin_job.h"
#include "admin/admin_schedule.h"
#include "cli/cli.h"
#include "common/err.h"
#include "common/notify.h"
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

static bool job_read_all(int fd, uint8_t *p, size_t n, time_t deadline)
{
    while (n > 0) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        time_t left = deadline - time(NULL);
        ssize_t got;
        if (left <= 0 || poll(&pf, 1, (int)(left * 1000)) <= 0) {
            return false;
        }
        got = read(fd, p, n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            return false;
        }
        p += got;
        n -= (size_t)got;
    }
    return true;
}

/* The output pushed by the running server as it arrives (watch.sock,
 * src/hub/hub_watchsock.c): prints it until the server says it has no
 * more ('Z'), or goes away; *out_done and *err_done count what was
 * printed, for the store to take over from there. */
static void job_follow_pushed(struct cli_ctx *ctx, const char *id,
                              size_t *out_done, size_t *err_done,
                              time_t deadline)
{
    static uint8_t buf[65536];
    char line[STORE_ID_MAX + 2];
    int fd, n;

    if (notify_stream_connect(ctx->cfg.data_dir, "watch.sock", &fd) != ERR_OK) {
        return; /* no server here: the store alone */
    }
    n = snprintf(line, sizeof(line), "%s\n", id);
    if (n > 0 && (size_t)n < sizeof(line) && write(fd, line, (size_t)n) == n) {
        for (;;) {
            uint8_t h[5];
            uint32_t len;
            if (!job_read_all(fd, h, sizeof(h), deadline)) {
                break;
            }
            len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 |
                  (uint32_t)h[3] << 8 | h[4];
            if (h[0] == 'Z' || (h[0] != 'O' && h[0] != 'E') ||
                len > sizeof(buf) || !job_read_all(fd, buf, len, deadline)) {
                break;
            }
            if (h[0] == 'O') {
                fwrite(buf, 1, len, stdout);
                fflush(stdout);
                *out_done += len;
            } else {
                fwrite(buf, 1, len, stderr);
                *err_done += len;
            }
        }
    }
    close(fd);
}

/* Prints job id's output as it arrives (stdout to stdout, stderr to
 * stderr) until it ends; returns the exit status job run would. The
 * running server pushes it; the store has the rest and the result (and
 * all of it when the job runs on another node or no server answers). */
static int job_follow(struct cli_ctx *ctx, const char *id, int wait_s)
{
    struct store_job *j = calloc(1, sizeof(*j));
    size_t out_done = 0, err_done = 0;
    time_t deadline = time(NULL) + wait_s;
    int rc;

    if (j == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    job_follow_pushed(ctx, id, &out_done, &err_done, deadline);
    for (;;) {
        bool ended;
        /* only the output beyond what is printed is read */
        int r = store_job_get_from(ctx->st, id, out_done, err_done, j);

        if (r != ERR_OK) {
            free(j);
            return cli_store_error(r, "job", id);
        }
        ended = strcmp(j->status, "queued") != 0 &&
                strcmp(j->status, "running") != 0;
        /* a result replaces the live output: it only grows */
        if (j->out_len > 0) {
            fwrite(j->out, 1, j->out_len, stdout);
            out_done += j->out_len;
            fflush(stdout);
        }
        if (j->err_len > 0) {
            fwrite(j->err, 1, j->err_len, stderr);
            err_done += j->err_len;
        }
        store_job_free_output(j);
        if (ended) {
            break;
        }
        if (time(NULL) > deadline) {
            free(j);
            return cli_error("job %s: no result after %d s; see `job show "
                             "%s`",
                             id, wait_s, id);
        }
        job_sleep_ms(100);
    }
    if (strcmp(j->status, "ok") != 0 && strcmp(j->status, "failed") != 0) {
        fprintf(stderr, "portcullis: job %s: %s%s%s\n", j->id, j->status,
                j->why[0] != '\0' ? ": " : "", j->why);
    }
    rc = job_exit(j);
    free(j);
    return rc;
}

/* A finished job of a batch: a header line, then its output. */
static void job_print_one(const struct store_job *j)
{
    char code[32] = "";

    if (j->exit_code >= 0) {
        snprintf(code, sizeof(code), " (exit %d)", j->exit_code);
    }
    printf("=== %s: %s%s%s%s\n", j->agent_id, j->status, code,
           j->why[0] != '\0' ? ": " : "", j->why);
    if (j->out_len > 0) {
        fwrite(j->out, 1, j->out_len, stdout);
        if (j->out[j->out_len - 1] != '\n') {
            putchar('\n');
        }
    }
    fflush(stdout);
    if (j->err_len > 0) {
        fprintf(stderr, "=== %s (stderr)\n", j->agent_id);
        fwrite(j->err, 1, j->err_len, stderr);
    }
}

/* Waits for the jobs of batch, printing each as it ends: one named
 * agent prints its output as is and exits with its code; a batch prints
 * a header per agent and exits 0 if every job ended ok, else 1. */
static int job_wait(struct cli_ctx *ctx, const char *batch, size_t njobs,
                    bool single, int timeout, int concurrency)
{
    size_t rounds = concurrency > 0 ? (njobs + (size_t)concurrency - 1) /
                                          (size_t)concurrency
                                    : 1;
    time_t deadline =
        time(NULL) + (time_t)rounds * (timeout + JOB_WAIT_GRACE_S);
    bool *shown = calloc(njobs, sizeof(*shown));
    struct store_job *j = calloc(1, sizeof(*j));
    size_t nshown = 0;
    bool all_ok = true;
    int rc = CLI_EXIT_FAIL;

    if (shown == NULL || j == NULL) {
        free(shown);
        free(j);
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    while (nshown < njobs) {
        struct store_job *list = NULL;
        size_t n = 0;
        int r = store_job_list_batch(ctx->st, batch, &list, &n);

        if (r != ERR_OK) {
            rc = cli_error("batch %s: %s", batch, err_str(r));
            goto out;
        }
        for (size_t i = 0; i < n && i < njobs; i++) {
            if (shown[i] || strcmp(list[i].status, "queued") == 0 ||
                strcmp(list[i].status, "running") == 0) {
                continue;
            }
            if ((r = store_job_get(ctx->st, list[i].id, j)) != ERR_OK) {
                free(list);
                rc = cli_error("job %s: %s", list[i].id, err_str(r));
                goto out;
            }
            shown[i] = true;
            nshown++;
            if (strcmp(j->status, "ok") != 0) {
                all_ok = false;
            }
            if (single) {
                if (j->out_len > 0) {
                    fwrite(j->out, 1, j->out_len, stdout);
                }
                fflush(stdout);
                if (j->err_len > 0) {
                    fwrite(j->err, 1, j->err_len, stderr);
                }
                if (strcmp(j->status, "ok") != 0 &&
                    strcmp(j->status, "failed") != 0) {
                    fprintf(stderr, "portcullis: job %s: %s%s%s\n", j->id,
                            j->status, j->why[0] != '\0' ? ": " : "", j->why);
                }
                rc = job_exit(j);
            } else {
                job_print_one(j);
            }
            store_job_free_output(j);
        }
        free(list);
        if (nshown == njobs) {
            break;
        }
        if (time(NULL) > deadline) {
            rc = cli_error("batch %s: no result after waiting; see `job list "
                           "--batch %s`",
                           batch, batch);
            goto out;
        }
        job_sleep_ms(100);
    }
    if (!single) {
        rc = all_ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
out:
    free(shown);
    free(j);
    return rc;
}

/* A script file ("-": standard input), at most JOB_SCRIPT_MAX bytes. */
static char *job_read_script(const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char *buf;
    size_t n;

    if (f == NULL) {
        cli_error("cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    if ((buf = malloc(JOB_SCRIPT_MAX + 2)) == NULL) {
        if (f != stdin) {
            fclose(f);
        }
        return NULL;
    }
    n = fread(buf, 1, JOB_SCRIPT_MAX + 1, f);
    if (f != stdin) {
        fclose(f);
    }
    buf[n] = '\0';
    if (n == 0 || n > JOB_SCRIPT_MAX || strlen(buf) != n) {
        cli_error("%s: a script of 1-%d bytes without NUL bytes", path,
                  JOB_SCRIPT_MAX);
        free(buf);
        return NULL;
    }
    return buf;
}

/* Splits a comma-separated list into ptrs (at most max); false if more. */
static bool job_split(char *s, const char **ptrs, size_t *n, size_t max)
{
    for (char *tok = strtok(s, ","); tok != NULL; tok = strtok(NULL, ",")) {
        if (*n >= max) {
            return false;
        }
        ptrs[(*n)++] = tok;
    }
    return true;
}

#define JOB_CLI_TAGS_MAX 64

/* A file to push, at most JOB_PUSH_MAX bytes (heap; *len). */
static uint8_t *job_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;

    if (f == NULL) {
        cli_error("cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    if ((buf = malloc(JOB_PUSH_MAX + 1)) == NULL) {
        fclose(f);
        cli_error("%s", err_str(ERR_NOMEM));
        return NULL;
    }
    *len = fread(buf, 1, JOB_PUSH_MAX + 1, f);
    if (ferror(f) || *len > JOB_PUSH_MAX) {
        cli_error("%s: %s", path,
                  ferror(f) ? strerror(errno) : "larger than 16 MiB");
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    return buf;
}

/*
 * What `job run`, `job push` and `schedule add` are given besides their
 * options: the agents (ID,ID,...), the tags (--tag T, repeatable, each
 * T1,T2), the client groups (--groups G,...), and the program: a script
 * (--script FILE) or the words after "--". The arrays point into the
 * copies kept here; job_line_free() releases everything.
 */
struct job_line {
    int dd;      /* argv's index of "--" (argc if there is none) */
    char **args; /* argv before "--" without the --tag options */
    int nargs;
    const char *tags[JOB_CLI_TAGS_MAX];
    char *tag_copy[JOB_CLI_TAGS_MAX];
    size_t ntags, ntagc;
    const char *groups[JOB_CLI_TAGS_MAX];
    char *group_list;
    size_t ngroups;
    const char **agents;
    char *agent_list;
    size_t nagents;
    char *cmd;    /* the words after "--", joined by spaces */
    char *script; /* --script FILE's text */
};

static void job_line_free(struct job_line *l)
{
    for (size_t i = 0; i < l->ntagc; i++) {
        free(l->tag_copy[i]);
    }
    free(l->args);
    free(l->group_list);
    free(l->agents);
    free(l->agent_list);
    free(l->cmd);
    free(l->script);
}

/* Takes the --tag options out of argv before "--" (cli_parse() then
 * parses l->args). Returns CLI_PARSED, or the exit status. */
static int job_line_tags(struct cli_ctx *ctx, int argc, char **argv,
                         struct job_line *l)
{
    for (l->dd = 0; l->dd < argc && strcmp(argv[l->dd], "--") != 0; l->dd++) {
    }
    if ((l->args = calloc((size_t)l->dd + 1, sizeof(*l->args))) == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    for (int i = 0; i < l->dd; i++) {
        const char *v;
        if (strcmp(argv[i], "--tag") == 0) {
            if (i + 1 >= l->dd) {
                return cli_usage(ctx, "--tag needs a value");
            }
            v = argv[++i];
        } else if (strncmp(argv[i], "--tag=", 6) == 0) {
            v = argv[i] + 6;
        } else {
            l->args[l->nargs++] = argv[i];
            continue;
        }
        if (l->ntagc >= JOB_CLI_TAGS_MAX ||
            (l->tag_copy[l->ntagc] = strdup(v)) == NULL ||
            !job_split(l->tag_copy[l->ntagc++], l->tags, &l->ntags,
                       JOB_CLI_TAGS_MAX)) {
            return cli_usage(ctx, "at most %d tags", JOB_CLI_TAGS_MAX);
        }
    }
    return CLI_PARSED;
}

/* Agent IDs "ID,ID,..." (list may be NULL: none) into *agents, pointing
 * into *copy; the caller frees both. Returns CLI_PARSED, or the exit
 * status. */
static int job_agents(struct cli_ctx *ctx, const char *list,
                      const char ***agents, char **copy, size_t *n)
{
    if (list == NULL) {
        return CLI_PARSED;
    }
    if ((*copy = strdup(list)) == NULL ||
        (*agents = calloc(ADMIN_JOB_TARGETS_MAX, sizeof(**agents))) == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    if (!job_split(*copy, *agents, n, ADMIN_JOB_TARGETS_MAX)) {
        return cli_usage(ctx, "at most %d agents", ADMIN_JOB_TARGETS_MAX);
    }
    return CLI_PARSED;
}

/* The agents (list, may be NULL) and --groups (may be NULL). Returns
 * CLI_PARSED, or the exit status. */
static int job_line_targets(struct cli_ctx *ctx, const char *agents,
                            const char *groups, struct job_line *l)
{
    if (groups != NULL &&
        ((l->group_list = strdup(groups)) == NULL ||
         !job_split(l->group_list, l->groups, &l->ngroups, JOB_CLI_TAGS_MAX))) {
        return cli_usage(ctx, "--groups: at most %d", JOB_CLI_TAGS_MAX);
    }
    return job_agents(ctx, agents, &l->agents, &l->agent_list, &l->nagents);
}

/* The program: --script FILE (script_path; *interp defaults to sh) or
 * the command after "--", not both; --interpreter only with --script.
 * Returns CLI_PARSED, or the exit status. */
static int job_line_program(struct cli_ctx *ctx, int argc, char **argv,
                            const char *script_path, const char **interp,
                            struct job_line *l)
{
    size_t len = 0;

    if (script_path != NULL) {
        if (l->dd < argc) {
            return cli_usage(ctx, "a script or a command after '--', not both");
        }
        if ((l->script = job_read_script(script_path)) == NULL) {
            return CLI_EXIT_FAIL;
        }
        if (*interp == NULL) {
            *interp = "sh";
        }
        return CLI_PARSED;
    }
    if (l->dd + 1 >= argc) {
        return cli_usage(ctx, "the command goes after '--'");
    }
    if (*interp != NULL) {
        return cli_usage(ctx, "--interpreter goes with --script");
    }
    for (int i = l->dd + 1; i < argc; i++) {
        len += strlen(argv[i]) + 1;
    }
    if (len > JOB_CMD_MAX + 1) {
        return cli_usage(ctx, "the command is longer than %d bytes",
                         JOB_CMD_MAX);
    }
    if ((l->cmd = calloc(1, len + 1)) == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    for (int i = l->dd + 1; i < argc; i++) {
        if (i > l->dd + 1) {
            strcat(l->cmd, " ");
        }
        strcat(l->cmd, argv[i]);
    }
    return CLI_PARSED;
}

static int job_start(struct cli_ctx *ctx, int argc, char **argv, bool push_mode)
{
    const char *pos[CLI_MAX_POS], *cwd = NULL, *script_path = NULL,
                                  *sudo = NULL;
    const char *interp = NULL, *dest = NULL, *mode_s = NULL, *owner = NULL,
               *group = NULL, *groups_opt = NULL;
    int timeout = ADMIN_JOB_TIMEOUT_DEFAULT, concurrency = 0, rc, r;
    bool stop = false, follow = false, overwrite = false;
    uint8_t *file = NULL;
    size_t file_len = 0, njobs = 0;
    struct admin_job_push push;
    const struct cli_opt push_opts[] = {
        CLI_OPT_STR("--groups", &groups_opt),
        CLI_OPT_INT("--timeout", &timeout, 1, ADMIN_JOB_TIMEOUT_MAX),
        CLI_OPT_INT("--concurrency", &concurrency, 0, ADMIN_JOB_TARGETS_MAX),
        CLI_OPT_FLAG("--stop-on-failure", &stop),
        CLI_OPT_STR("--dest", &dest),
        CLI_OPT_STR("--mode", &mode_s),
        CLI_OPT_STR("--owner", &owner),
        CLI_OPT_STR("--group", &group),
        CLI_OPT_FLAG("--overwrite", &overwrite),
        CLI_OPT_END,
    };
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--groups", &groups_opt),
        CLI_OPT_INT("--timeout", &timeout, 1, ADMIN_JOB_TIMEOUT_MAX),
        CLI_OPT_STR("--cwd", &cwd),
        CLI_OPT_STR("--sudo", &sudo),
        CLI_OPT_INT("--concurrency", &concurrency, 0, ADMIN_JOB_TARGETS_MAX),
        CLI_OPT_FLAG("--stop-on-failure", &stop),
        CLI_OPT_STR("--script", &script_path),
        CLI_OPT_STR("--interpreter", &interp),
        CLI_OPT_FLAG("--follow", &follow),
        CLI_OPT_END,
    };
    struct job_line l = {0};
    struct admin_job_targets t;
    struct admin_job_req q;
    struct admin_ctx ac;
    struct admin_err e;
    char batch[STORE_ID_MAX + 1];
    bool delivered = false;

    if ((rc = job_line_tags(ctx, argc, argv, &l)) != CLI_PARSED ||
        (rc = push_mode ? cli_parse(ctx, l.nargs, l.args, push_opts,
                                    "FILE [AGENTS]", pos)
                        : cli_parse(ctx, l.nargs, l.args, opts, "[AGENTS]",
                                    pos)) != CLI_PARSED ||
        (rc = job_line_targets(ctx, push_mode ? pos[1] : pos[0], groups_opt,
                               &l)) != CLI_PARSED) {
        goto out;
    }
    if (l.nagents == 0 && l.ntags == 0 && l.ngroups == 0) {
        rc = cli_usage(ctx, "name the agents (ID,ID,...), --tag or --groups");
        goto out;
    }
    memset(&push, 0, sizeof(push));
    if (push_mode) {
        char *end = NULL;
        long mode = mode_s != NULL ? strtol(mode_s, &end, 8) : 0644;
        if (l.dd < argc) {
            rc = cli_usage(ctx, "a push takes no command");
            goto out;
        }
        if (dest == NULL) {
            rc = cli_usage(ctx, "--dest PATH: where the file goes");
            goto out;
        }
        if (mode_s != NULL &&
            (end == mode_s || *end != '\0' || mode < 0 || mode > 01777)) {
            rc = cli_usage(ctx, "--mode: octal 0000-1777");
            goto out;
        }
        if ((file = job_read_file(pos[0], &file_len)) == NULL) {
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        push = (struct admin_job_push){.dest = dest,
                                       .mode = (int)mode,
                                       .owner = owner,
                                       .group = group,
                                       .overwrite = overwrite,
                                       .data = file,
                                       .len = file_len};
    } else if ((rc = job_line_program(ctx, argc, argv, script_path, &interp,
                                      &l)) != CLI_PARSED) {
        goto out;
    }
    if (cwd != NULL && cwd[0] != '/') {
        rc = cli_usage(ctx, "--cwd must be an absolute path");
        goto out;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        goto out;
    }
    t = (struct admin_job_targets){l.agents, l.nagents, l.tags,
                                   l.ntags,  l.groups,  l.ngroups};
    q = (struct admin_job_req){.command = l.cmd,
                               .interpreter = l.script != NULL ? interp : NULL,
                               .script = l.script,
                               .push = push_mode ? &push : NULL,
                               .cwd = cwd,
                               .sudo = sudo,
                               .timeout = timeout,
                               .concurrency = concurrency,
                               .stop_on_failure = stop};
    r = admin_job_queue_many(&ac, &t, &q, batch, &njobs, &delivered, &e);
    if (r != ERR_OK) {
        rc = cli_error("%s", e.msg);
        goto out;
    }
    if (!delivered) {
        fprintf(stderr,
                "portcullis: %s %s: no server is running (jobs run in the "
                "server)\n",
                njobs == 1 ? "job" : "batch", batch);
        rc = JOB_EXIT_NOT_RUN;
        goto out;
    }
    if (follow && njobs == 1) {
        struct store_job *list = NULL;
        size_t n = 0;
        if (store_job_list_batch(ctx->st, batch, &list, &n) != ERR_OK ||
            n != 1) {
            free(list);
            rc = cli_error("batch %s: cannot read its job", batch);
            goto out;
        }
        {
            char id[STORE_ID_MAX + 1];
            snprintf(id, sizeof(id), "%s", list[0].id);
            free(list);
            rc = job_follow(ctx, id, timeout + JOB_WAIT_GRACE_S);
        }
        goto out;
    }
    if (follow) {
        rc = cli_usage(ctx, "--follow takes one agent (see job show --follow)");
        goto out;
    }
    rc = job_wait(ctx, batch, njobs,
                  l.nagents == 1 && l.ntags == 0 && l.ngroups == 0, timeout,
                  concurrency);
out:
    free(file);
    job_line_free(&l);
    return rc;
}

static int job_run_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return job_start(ctx, argc, argv, false);
}

static int job_push_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return job_start(ctx, argc, argv, true);
}

static int job_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *batch = NULL;
    bool json = false;
    const struct cli_opt opts[] = {
        CLI_OPT_FLAG("--json", &json),
        CLI_OPT_STR("--batch", &batch),
        CLI_OPT_END,
    };
    struct store_job *list = NULL;
    size_t n = 0;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED ||
        (rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    r = batch != NULL ? store_job_list_batch(ctx->st, batch, &list, &n)
                      : store_job_list(ctx->st, 1000, &list, &n);
    if (r != ERR_OK) {
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
    bool json = false, follow = false;
    const struct cli_opt opts[] = {
        CLI_OPT_FLAG("--json", &json),
        CLI_OPT_FLAG("--follow", &follow),
        CLI_OPT_END,
    };
    struct store_job *j;
    json_t *o;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "ID", pos)) != CLI_PARSED ||
        (rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if (follow) {
        if (json) {
            return cli_usage(ctx, "--follow prints the output, not JSON");
        }
        return job_follow(ctx, pos[0],
                          ADMIN_JOB_TIMEOUT_MAX + JOB_WAIT_GRACE_S);
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
    .synopsis = "job run [AGENT,...] [--tag T]... [--groups G,...] "
                "[--concurrency N] "
                "[--stop-on-failure] [--timeout S] [--cwd DIR] [--sudo USER] "
                "[--follow] "
                "{-- COMMAND... | --script FILE [--interpreter NAME]}",
    .summary = "Run a command or a script on agents (their own config "
               "decides) and wait. One agent: print its output and exit with "
               "its exit code (124: timeout, 125: not run). Several: print "
               "each result as it arrives, exit 0 if all ended ok, else 1.",
    .run = job_run_run,
};
static const struct cli_cmd job_list_cmd = {
    .name = "list",
    .synopsis = "job list [--batch ID] [--json]",
    .summary = "List jobs, newest first (a batch's in the order they were "
               "queued).",
    .run = job_list_run,
};
static const struct cli_cmd job_show_cmd = {
    .name = "show",
    .synopsis = "job show ID [--json | --follow]",
    .summary = "Show a job with its output; --follow prints the output as "
               "it arrives until the job ends, and exits as job run would.",
    .run = job_show_run,
};

static const struct cli_cmd job_push_cmd = {
    .name = "push",
    .synopsis = "job push FILE [AGENT,...] [--tag T]... [--groups G,...] "
                "--dest PATH "
                "[--mode OCTAL] [--owner USER] [--group GROUP] [--overwrite] "
                "[--concurrency N] [--stop-on-failure] [--timeout S]",
    .summary = "Copy a file to agents (into a directory their config "
               "accepts; SHA-256 checked on arrival), reported as jobs.",
    .run = job_push_run,
};

static const struct cli_cmd *const job_cmds[] = {
    &job_run_cmd, &job_push_cmd, &job_list_cmd, &job_show_cmd, NULL};

const struct cli_cmd cli_job = {
    .name = "job",
    .summary = "Run commands on agents and read their results.",
    .sub = job_cmds,
};

/* --- schedules -------------------------------------------------------- */

static int sched_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *cron = NULL, *cwd = NULL;
    const char *script_path = NULL, *interp = NULL, *agents_opt = NULL;
    const char *groups_opt = NULL;
    int timeout = ADMIN_JOB_TIMEOUT_DEFAULT, concurrency = 0, rc;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--cron", &cron),
        CLI_OPT_STR("--groups", &groups_opt),
        CLI_OPT_STR("--agents", &agents_opt),
        CLI_OPT_INT("--timeout", &timeout, 1, ADMIN_JOB_TIMEOUT_MAX),
        CLI_OPT_STR("--cwd", &cwd),
        CLI_OPT_INT("--concurrency", &concurrency, 0, ADMIN_JOB_TARGETS_MAX),
        CLI_OPT_STR("--script", &script_path),
        CLI_OPT_STR("--interpreter", &interp),
        CLI_OPT_END,
    };
    struct job_line l = {0};
    struct admin_schedule_req q;
    struct store_schedule *s = NULL;
    struct admin_ctx ac;
    struct admin_err e;

    if ((rc = job_line_tags(ctx, argc, argv, &l)) != CLI_PARSED ||
        (rc = cli_parse(ctx, l.nargs, l.args, opts, "NAME", pos)) !=
            CLI_PARSED) {
        goto out;
    }
    if (cron == NULL) {
        rc = cli_usage(ctx, "--cron 'MIN HOUR DOM MONTH DOW'");
        goto out;
    }
    if ((rc = job_line_targets(ctx, agents_opt, groups_opt, &l)) !=
            CLI_PARSED ||
        (rc = job_line_program(ctx, argc, argv, script_path, &interp, &l)) !=
            CLI_PARSED) {
        goto out;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        goto out;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        rc = cli_error("%s", err_str(ERR_NOMEM));
        goto out;
    }
    q = (struct admin_schedule_req){
        .name = pos[0],
        .cron = cron,
        .targets = {l.agents, l.nagents, l.tags, l.ntags, l.groups, l.ngroups},
        .job = {.command = l.cmd,
                .interpreter = l.script != NULL ? interp : NULL,
                .script = l.script,
                .cwd = cwd,
                .timeout = timeout,
                .concurrency = concurrency}};
    if (admin_schedule_add(&ac, &q, s, &e) != ERR_OK) {
        rc = cli_error("%s", e.msg);
        goto out;
    }
    printf("%s\n", s->id);
    rc = CLI_EXIT_OK;
out:
    free(s);
    job_line_free(&l);
    return rc;
}

static int sched_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct store_schedule *list = NULL;
    size_t n = 0;
    bool json = false;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_load_config(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_schedule_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list schedules: %s", err_str(r));
    }
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            cli_json_append(&arr, admin_schedule_json(&ctx->cfg, &list[i]));
        }
        store_schedule_list_free(list, n);
        return cli_json_print(arr);
    }
    printf("%-20s  %-16s  %5s  %6s  %-25s  %s\n", "NAME", "CRON", "FIRED",
           "MISSED", "NEXT (SERVER TIME)", "COMMAND");
    for (size_t i = 0; i < n; i++) {
        json_t *o = admin_schedule_json(&ctx->cfg, &list[i]);
        const char *next = json_string_value(json_object_get(o, "next_run"));
        printf("%-20s  %-16s  %5lld  %6lld  %-25s  %.60s\n", list[i].name,
               list[i].cron, (long long)list[i].fired,
               (long long)list[i].missed,
               next != NULL      ? next
               : list[i].enabled ? "-"
                                 : "(disabled)",
               list[i].interpreter[0] != '\0' ? "(script)" : list[i].command);
        json_decref(o);
    }
    store_schedule_list_free(list, n);
    return CLI_EXIT_OK;
}

static int sched_show_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    const struct cli_opt opts[] = {CLI_OPT_END};
    struct store_schedule *s;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED ||
        (rc = cli_open_store(ctx)) != CLI_EXIT_OK ||
        (rc = cli_load_config(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    if ((r = store_schedule_get(ctx->st, pos[0], s)) != ERR_OK) {
        free(s);
        return cli_store_error(r, "schedule", pos[0]);
    }
    rc = cli_json_print(admin_schedule_json(&ctx->cfg, s));
    store_schedule_release(s);
    free(s);
    return rc;
}

static int sched_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return cli_admin_delete(ctx, argc, argv, "NAME", admin_schedule_delete);
}

static const struct cli_cmd sched_add_cmd = {
    .name = "add",
    .synopsis = "schedule add NAME --cron 'MIN HOUR DOM MONTH DOW' "
                "[--agents ID,...] [--tag T]... [--groups G,...] [--timeout S] "
                "[--cwd DIR] "
                "[--concurrency N] {-- COMMAND... | --script FILE "
                "[--interpreter NAME]}",
    .summary = "Run a command or script on agents at the minutes of a cron "
               "expression (the server's time zone); each firing is a batch "
               "of jobs. Firings missed while the server is down are "
               "reported, not run late.",
    .run = sched_add_run,
};
static const struct cli_cmd sched_list_cmd = {
    .name = "list",
    .synopsis = "schedule list [--json]",
    .summary = "List schedules with their next firing (server time; UTC in "
               "--json) and how many fired and were missed.",
    .run = sched_list_run,
};
static const struct cli_cmd sched_show_cmd = {
    .name = "show",
    .synopsis = "schedule show NAME",
    .summary = "Show a schedule (JSON).",
    .run = sched_show_run,
};
static const struct cli_cmd sched_delete_cmd = {
    .name = "delete",
    .synopsis = "schedule delete NAME",
    .summary = "Delete a schedule (its jobs stay).",
    .run = sched_delete_run,
};

/* cli_job_member.c */
extern const struct cli_cmd cli_schedule_enable_cmd, cli_schedule_disable_cmd,
    cli_client_group_add_agent_cmd, cli_client_group_remove_agent_cmd;

static const struct cli_cmd *const sched_cmds[] = {&sched_add_cmd,
                                                   &sched_list_cmd,
                                                   &sched_show_cmd,
                                                   &sched_delete_cmd,
                                                   &cli_schedule_enable_cmd,
                                                   &cli_schedule_disable_cmd,
                                                   NULL};

const struct cli_cmd cli_schedule = {
    .name = "schedule",
    .summary = "Run commands and scripts on agents on a cron schedule.",
    .sub = sched_cmds,
};

/* --- client groups ---------------------------------------------------- */

/* Adds "key": [comma-separated patterns] to rules. */
static bool cg_rule(json_t *rules, const char *key, const char *list)
{
    json_t *a;
    char *copy, *save = NULL;

    if (list == NULL) {
        return true;
    }
    if ((copy = strdup(list)) == NULL) {
        return false;
    }
    a = json_array();
    for (char *t = strtok_r(copy, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        json_array_append_new(a, json_string(t));
    }
    free(copy);
    json_object_set_new(rules, key, a);
    return true;
}

static int cg_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *agents_opt = NULL, *desc = NULL;
    const char *m_id = NULL, *m_name = NULL, *m_host = NULL, *m_os = NULL,
               *m_tag = NULL;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--agents", &agents_opt),
        CLI_OPT_STR("--description", &desc),
        CLI_OPT_STR("--match-id", &m_id),
        CLI_OPT_STR("--match-name", &m_name),
        CLI_OPT_STR("--match-hostname", &m_host),
        CLI_OPT_STR("--match-os", &m_os),
        CLI_OPT_STR("--match-tag", &m_tag),
        CLI_OPT_END,
    };
    struct admin_client_group_req q;
    struct store_client_group *g = NULL;
    const char **agents = NULL;
    char *agent_list = NULL;
    size_t nagents = 0;
    json_t *rules = json_object();
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED) {
        goto out;
    }
    if ((rc = job_agents(ctx, agents_opt, &agents, &agent_list, &nagents)) !=
        CLI_PARSED) {
        goto out;
    }
    if (!cg_rule(rules, "id", m_id) || !cg_rule(rules, "name", m_name) ||
        !cg_rule(rules, "hostname", m_host) || !cg_rule(rules, "os", m_os) ||
        !cg_rule(rules, "tags", m_tag) || (g = calloc(1, sizeof(*g))) == NULL) {
        rc = cli_error("%s", err_str(ERR_NOMEM));
        goto out;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        goto out;
    }
    q = (struct admin_client_group_req){.name = pos[0],
                                        .description = desc,
                                        .agents = agents,
                                        .nagents = nagents,
                                        .rules = rules};
    if (admin_client_group_add(&ac, &q, g, &e) != ERR_OK) {
        rc = cli_error("%s", e.msg);
        goto out;
    }
    printf("%s\n", g->id);
    rc = CLI_EXIT_OK;
out:
    json_decref(rules);
    free(g);
    free(agents);
    free(agent_list);
    return rc;
}

static int cg_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct store_client_group *list = NULL;
    struct store_agent *agents = NULL;
    size_t n = 0, na = 0;
    bool json = false;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_client_group_list(ctx->st, &list, &n)) != ERR_OK ||
        (r = store_agent_list(ctx->st, &agents, &na)) != ERR_OK) {
        free(list);
        return cli_error("cannot list client groups: %s", err_str(r));
    }
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            cli_json_append(
                &arr, admin_client_group_json(&list[i], true, agents, na));
        }
        free(list);
        store_agent_list_free(agents, na);
        return cli_json_print(arr);
    }
    printf("%-24s  %7s  %s\n", "NAME", "MEMBERS", "RULES");
    for (size_t i = 0; i < n; i++) {
        size_t m = 0;
        for (size_t k = 0; k < na; k++) {
            m += admin_client_group_has(&list[i], &agents[k]) ? 1 : 0;
        }
        printf("%-24s  %7zu  %.80s\n", list[i].name, m, list[i].rules);
    }
    free(list);
    store_agent_list_free(agents, na);
    return CLI_EXIT_OK;
}

static int cg_show_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    const struct cli_opt opts[] = {CLI_OPT_END};
    struct store_client_group *g;
    struct store_agent *agents = NULL;
    size_t na = 0;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED ||
        (rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((g = calloc(1, sizeof(*g))) == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    if ((r = store_client_group_get(ctx->st, pos[0], g)) != ERR_OK ||
        (r = store_agent_list(ctx->st, &agents, &na)) != ERR_OK) {
        free(g);
        return cli_store_error(r, "client group", pos[0]);
    }
    rc = cli_json_print(admin_client_group_json(g, true, agents, na));
    store_agent_list_free(agents, na);
    free(g);
    return rc;
}

static int cg_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return cli_admin_delete(ctx, argc, argv, "NAME", admin_client_group_delete);
}

static const struct cli_cmd cg_add_cmd = {
    .name = "add",
    .synopsis = "client-group add NAME [--agents ID,...] [--match-id GLOB,...] "
                "[--match-name GLOB,...] [--match-hostname GLOB,...] "
                "[--match-os GLOB,...] [--match-tag GLOB,...] "
                "[--description TEXT]",
    .summary = "A group of agents: static (--agents) and dynamic (every "
               "--match-* field given must match one of its patterns), "
               "usable as job and schedule targets (--groups).",
    .run = cg_add_run,
};
static const struct cli_cmd cg_list_cmd = {
    .name = "list",
    .synopsis = "client-group list [--json]",
    .summary = "List client groups with their current members.",
    .run = cg_list_run,
};
static const struct cli_cmd cg_show_cmd = {
    .name = "show",
    .synopsis = "client-group show NAME",
    .summary = "Show a client group and its current members (JSON).",
    .run = cg_show_run,
};
static const struct cli_cmd cg_delete_cmd = {
    .name = "delete",
    .synopsis = "client-group delete NAME",
    .summary = "Delete a client group.",
    .run = cg_delete_run,
};

static const struct cli_cmd *const cg_cmds[] = {
    &cg_add_cmd,
    &cg_list_cmd,
    &cg_show_cmd,
    &cg_delete_cmd,
    &cli_client_group_add_agent_cmd,
    &cli_client_group_remove_agent_cmd,
    NULL};

const struct cli_cmd cli_client_group = {
    .name = "client-group",
    .summary = "Groups of agents (static and dynamic) for jobs and schedules.",
    .sub = cg_cmds,
};
