/*
 * `portcullis session ...`: the session report. Every proxy connection
 * attempt leaves a row (who, which asset, what kind of channel, from
 * where, how it ended); these verbs read them, newest first, replay a
 * terminal recording (asciicast v2) with its timing, copy a recording
 * out for an auditor, and write a screen of an RDP recording (.rdprec,
 * record/rdprec.h) as a PNG.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "common/err.h"
#include "common/util.h"
#include "record/rdprec.h"

/* Longest asciicast line `play` reads; longer ones are skipped. */
#define SESSION_PLAY_LINE_MAX (16 * 1024 * 1024)
/* Pauses in a replay are cut to this many seconds (before --speed). */
#define SESSION_PLAY_IDLE_MAX 2.0
/* Largest RDP recording `frame` reads ([record] rdp_max_mb's maximum). */
#define SESSION_RDPREC_MAX ((size_t)4096 * 1024 * 1024)

static const char *const session_kinds[] = {"shell",   "exec", "sftp",   "scp",
                                            "forward", "rdp",  "tunnel", NULL};

static json_int_t clamp_size(const struct store_session *s)
{
    return s->recording_size > (uint64_t)INT64_MAX
               ? (json_int_t)INT64_MAX
               : (json_int_t)s->recording_size;
}

static json_t *session_json(const struct store_session *s)
{
    json_t *exit_status, *o;

    exit_status =
        s->exit_status >= 0 ? json_integer(s->exit_status) : json_null();
    o = json_pack(
        "{s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:o, s:o, "
        "s:I, s:I, s:o, s:s?, s:s?, s:s?, s:s?}",
        "id", s->id, "user", cli_nz(s->user_name), "user_id",
        cli_nz(s->user_id), "asset", cli_nz(s->asset_name), "asset_id",
        cli_nz(s->asset_id), "site", cli_nz(s->site), "kind", cli_nz(s->kind),
        "client", cli_nz(s->client_addr), "route", cli_nz(s->route),
        "started_at", cli_json_time(s->started_at), "ended_at",
        cli_json_time(s->ended_at), "bytes_up", (json_int_t)s->bytes_up,
        "bytes_down", (json_int_t)s->bytes_down, "exit_status", exit_status,
        "result", cli_nz(s->result), "detail", cli_nz(s->detail),
        "recording_path", cli_nz(s->recording_path), "recording_sha256",
        cli_nz(s->recording_sha256));
    /* Fields added later, set one by one so the pack above stays as is. */
    cli_json_set(&o, "recording_size", json_integer(clamp_size(s)));
    cli_json_set(&o, "recording_deleted_at",
                 cli_json_time(s->recording_deleted_at));
    cli_json_set(&o, "node",
                 s->node[0] != '\0' ? json_string(s->node) : json_null());
    cli_json_set(&o, "agent_node",
                 s->agent_node[0] != '\0' ? json_string(s->agent_node)
                                          : json_null());
    return o;
}

static int session_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *user = NULL, *asset = NULL, *kind = NULL;
    const char *result = NULL, *since = NULL, *until = NULL;
    bool json = false;
    int limit = 0, rc, r;
    const struct cli_opt opts[] = {
        CLI_OPT_FLAG("--json", &json),
        CLI_OPT_STR("--user", &user),
        CLI_OPT_STR("--asset", &asset),
        CLI_OPT_STR("--kind", &kind),
        CLI_OPT_STR("--result", &result),
        CLI_OPT_STR("--since", &since),
        CLI_OPT_STR("--until", &until),
        CLI_OPT_INT("--limit", &limit, 1, 1000000),
        CLI_OPT_END,
    };
    struct store_session_filter f;
    struct store_session *list = NULL, *s;
    struct store_asset a;
    struct cli_table *t;
    json_t *arr;
    char started[32], up[24], down[24], asset_id[STORE_ID_MAX + 1];
    size_t n = 0, i;

    memset(&f, 0, sizeof(f));
    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
    }
    for (i = 0; kind != NULL && session_kinds[i] != NULL; i++) {
        if (strcmp(kind, session_kinds[i]) == 0) {
            break;
        }
    }
    if (kind != NULL && session_kinds[i] == NULL) {
        return cli_usage(ctx, "--kind must be one of shell, exec, sftp, scp, "
                              "forward, rdp, tunnel");
    }
    if (result != NULL && strcmp(result, "ok") != 0 &&
        strcmp(result, "denied") != 0 && strcmp(result, "error") != 0) {
        return cli_usage(ctx, "--result must be ok, denied or error");
    }
    if (since != NULL && cli_parse_time(since, &f.since) != ERR_OK) {
        return cli_usage(ctx, "--since needs a time such as "
                              "2026-11-21T05:00:00Z or Unix seconds");
    }
    if (until != NULL && cli_parse_time(until, &f.until) != ERR_OK) {
        return cli_usage(ctx, "--until needs a time such as "
                              "2026-11-21T05:00:00Z or Unix seconds");
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    /* Rows outlive their assets: an ID is taken as it is, a name must
     * still name one asset. */
    if (asset != NULL && !util_is_uuid(asset)) {
        if ((rc = cli_get_asset(ctx, asset, &a)) != CLI_EXIT_OK) {
            return rc;
        }
        snprintf(asset_id, sizeof(asset_id), "%s", a.id);
        store_asset_clear(&a);
        asset = asset_id;
    }
    f.user_name = user;
    f.asset_id = asset;
    f.kind = kind;
    f.result_prefix = result;
    f.limit = (size_t)limit;
    if ((r = store_session_list(ctx->st, &f, &list, &n)) != ERR_OK) {
        return cli_error("cannot list sessions: %s", err_str(r));
    }
    if (json) {
        arr = json_array();
        for (i = 0; i < n; i++) {
            cli_json_append(&arr, session_json(&list[i]));
        }
        rc = cli_json_print(arr);
    } else {
        t = cli_table_new(9, "ID", "STARTED", "USER", "ASSET", "KIND", "CLIENT",
                          "UP", "DOWN", "RESULT");
        for (i = 0; i < n; i++) {
            s = &list[i];
            cli_fmt_time(s->started_at, started, sizeof(started));
            snprintf(up, sizeof(up), "%" PRIu64, s->bytes_up);
            snprintf(down, sizeof(down), "%" PRIu64, s->bytes_down);
            cli_table_add(t, s->id, started, s->user_name, s->asset_name,
                          s->kind, s->client_addr, up, down,
                          s->result[0] != '\0' ? s->result : "(open)");
        }
        rc = cli_table_finish(t);
    }
    store_list_free(list);
    return rc;
}

static int session_show_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool json = false;
    const struct cli_opt opts[] = {CLI_OPT_FLAG("--json", &json), CLI_OPT_END};
    struct store_session s;
    char started[32], ended[32], up[24], down[24], exit_status[16];
    char size[24], deleted[32];
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "ID", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_session_get(ctx->st, pos[0], &s)) != ERR_OK) {
        return cli_store_error(r, "session", pos[0]);
    }
    if (json) {
        return cli_json_print(session_json(&s));
    }
    cli_fmt_time(s.started_at, started, sizeof(started));
    cli_fmt_time(s.ended_at, ended, sizeof(ended));
    snprintf(up, sizeof(up), "%" PRIu64, s.bytes_up);
    snprintf(down, sizeof(down), "%" PRIu64, s.bytes_down);
    snprintf(exit_status, sizeof(exit_status), "%d", s.exit_status);
    cli_show("id", s.id);
    cli_show("user", s.user_name);
    cli_show("user_id", s.user_id);
    cli_show("asset", s.asset_name);
    cli_show("asset_id", s.asset_id);
    cli_show("site", s.site);
    cli_show("kind", s.kind);
    cli_show("client", s.client_addr);
    cli_show("route", s.route);
    cli_show("node", s.node);
    cli_show("agent_node", s.agent_node);
    cli_show("started_at", started);
    cli_show("ended_at", ended);
    cli_show("bytes_up", up);
    cli_show("bytes_down", down);
    cli_show("exit_status", s.exit_status >= 0 ? exit_status : "-");
    cli_show("result", s.result[0] != '\0' ? s.result : "(open)");
    cli_show("detail", s.detail);
    cli_show("recording_path", s.recording_path);
    snprintf(size, sizeof(size), "%" PRIu64, s.recording_size);
    cli_show("recording_size", s.recording_path[0] != '\0' ? size : "");
    cli_show("recording_sha256", s.recording_sha256);
    cli_fmt_time(s.recording_deleted_at, deleted, sizeof(deleted));
    cli_show("recording_deleted_at", deleted);
    return CLI_EXIT_OK;
}

/* --- recordings ------------------------------------------------------------
 */

/* The row of session `id` and the file of its recording: an absolute path
 * as the server stores it, or one relative to [record] dir. */
static int session_recording(struct cli_ctx *ctx, const char *id,
                             struct store_session *s, char *path,
                             size_t pathlen)
{
    char when[32];
    int rc, r;

    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_session_get(ctx->st, id, s)) != ERR_OK) {
        return cli_store_error(r, "session", id);
    }
    if (s->recording_path[0] == '\0') {
        return cli_error("session %s has no recording", s->id);
    }
    if (s->recording_deleted_at != 0) {
        cli_fmt_time(s->recording_deleted_at, when, sizeof(when));
        return cli_error("the recording of session %s was deleted by the "
                         "retention policy at %s",
                         s->id, when);
    }
    if (s->recording_path[0] == '/') {
        snprintf(path, pathlen, "%s", s->recording_path);
    } else if ((size_t)snprintf(path, pathlen, "%s/%s", ctx->cfg.record_dir,
                                s->recording_path) >= pathlen) {
        return cli_error("recording path too long");
    }
    return CLI_EXIT_OK;
}

/* Reads one line into *line (NUL-terminated, newline dropped). Returns 1
 * for a line, 0 at the end, -1 on a read error. A line longer than max is
 * skipped and reported as an empty one, so one bad event does not stop a
 * replay and memory stays bounded. */
static int session_read_line(FILE *f, char **line, size_t *cap, size_t max)
{
    size_t n = 0;
    bool skipping = false;
    char *p;
    int c;

    while ((c = getc(f)) != EOF && c != '\n') {
        if (skipping) {
            continue;
        }
        if (n + 1 >= *cap) {
            size_t ncap = *cap != 0 ? *cap * 2 : 4096;

            if (ncap > max + 1) {
                ncap = max + 1;
            }
            if (n + 1 >= ncap) {
                skipping = true;
                n = 0;
                continue;
            }
            if ((p = realloc(*line, ncap)) == NULL) {
                return -1;
            }
            *line = p;
            *cap = ncap;
        }
        (*line)[n++] = (char)c;
    }
    if (ferror(f)) {
        return -1;
    }
    if (c == EOF && n == 0 && !skipping) {
        return 0;
    }
    if (*line == NULL && (*line = malloc(1)) == NULL) {
        return -1;
    }
    if (*cap == 0) {
        *cap = 1;
    }
    (*line)[n] = '\0';
    return 1;
}

static void session_sleep(double seconds)
{
    struct timespec ts;

    if (seconds <= 0) {
        return;
    }
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double session_mono(void)
{
    return (double)util_mono_ms() / 1000.0;
}

static int session_play_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *speed_s = NULL;
    const struct cli_opt opts[] = {CLI_OPT_STR("--speed", &speed_s),
                                   CLI_OPT_END};
    struct store_session s;
    char path[4096], *line = NULL, *end = NULL;
    double speed = 1.0, idle = SESSION_PLAY_IDLE_MAX, last = 0, played = 0;
    double start, at, gap;
    json_t *j = NULL, *v;
    json_error_t jerr;
    size_t cap = 0;
    FILE *f = NULL;
    int rc, got;

    if ((rc = cli_parse(ctx, argc, argv, opts, "ID", pos)) != CLI_PARSED) {
        return rc;
    }
    if (speed_s != NULL) {
        errno = 0;
        speed = strtod(speed_s, &end);
        if (errno != 0 || end == speed_s || *end != '\0' || !isfinite(speed) ||
            speed < 0.01 || speed > 10000) {
            return cli_usage(ctx, "--speed needs a number from 0.01 to 10000");
        }
    }
    if ((rc = session_recording(ctx, pos[0], &s, path, sizeof(path))) !=
        CLI_EXIT_OK) {
        return rc;
    }
    if ((f = fopen(path, "r")) == NULL) {
        rc = cli_error("cannot open recording %s: %s", path, strerror(errno));
        goto out;
    }
    /* The header says whether this is a terminal recording at all (a
     * transfer record is JSON lines without one). */
    got = session_read_line(f, &line, &cap, SESSION_PLAY_LINE_MAX);
    if (got > 0) {
        j = json_loads(line, 0, &jerr);
    }
    if (got < 0) {
        rc = cli_error("cannot read recording %s: %s", path, strerror(errno));
        goto out;
    }
    if (j == NULL || !json_is_object(j) ||
        json_integer_value(json_object_get(j, "version")) != 2) {
        rc = cli_error("session %s has no terminal recording (%s is not "
                       "asciicast v2)",
                       s.id, path);
        goto out;
    }
    v = json_object_get(j, "idle_time_limit");
    if (json_is_number(v) && json_number_value(v) > 0 &&
        json_number_value(v) < idle) {
        idle = json_number_value(v);
    }
    json_decref(j);
    j = NULL;
    start = session_mono();
    while ((got = session_read_line(f, &line, &cap, SESSION_PLAY_LINE_MAX)) >
           0) {
        json_t *t, *type, *data;

        json_decref(j);
        /* A line cut short by a crash, or one that is not an event, is
         * passed over: the rest still plays. */
        if ((j = json_loads(line, 0, &jerr)) == NULL || !json_is_array(j) ||
            json_array_size(j) < 3) {
            continue;
        }
        t = json_array_get(j, 0);
        type = json_array_get(j, 1);
        data = json_array_get(j, 2);
        if (!json_is_number(t) || !json_is_string(type) ||
            !json_is_string(data) ||
            strcmp(json_string_value(type), "o") != 0) {
            continue;
        }
        at = json_number_value(t);
        gap = at - last;
        if (gap > idle) {
            gap = idle;
        }
        if (gap > 0) {
            played += gap / speed;
            last = at;
        }
        session_sleep(start + played - session_mono());
        if (fwrite(json_string_value(data), 1, json_string_length(data),
                   stdout) != json_string_length(data) ||
            fflush(stdout) != 0) {
            rc = cli_error("cannot write to standard output");
            goto out;
        }
    }
    if (got < 0) {
        rc = cli_error("cannot read recording %s: %s", path, strerror(errno));
        goto out;
    }
    rc = CLI_EXIT_OK;
out:
    json_decref(j);
    free(line);
    if (f != NULL) {
        fclose(f);
    }
    return rc;
}

/* Copies the recording to a new file (never over an existing one),
 * checking its SHA-256 against the report's on the way. */
static int session_export_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *output = NULL;
    const struct cli_opt opts[] = {CLI_OPT_STR("--output", &output),
                                   CLI_OPT_END};
    struct store_session s;
    crypto_hash_sha256_state h;
    uint8_t buf[65536], digest[crypto_hash_sha256_BYTES];
    char path[4096], hex[2 * crypto_hash_sha256_BYTES + 1];
    uint64_t total = 0;
    ssize_t got, put, off;
    bool created = false;
    int in = -1, out = -1, rc;

    if ((rc = cli_parse(ctx, argc, argv, opts, "ID", pos)) != CLI_PARSED) {
        return rc;
    }
    if (output == NULL) {
        return cli_usage(ctx, "missing --output FILE");
    }
    if ((rc = session_recording(ctx, pos[0], &s, path, sizeof(path))) !=
        CLI_EXIT_OK) {
        return rc;
    }
    if ((in = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = cli_error("cannot open recording %s: %s", path, strerror(errno));
        goto out;
    }
    out = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
               0600);
    if (out < 0) {
        rc = errno == EEXIST
                 ? cli_error("%s already exists; not overwriting it", output)
                 : cli_error("cannot create %s: %s", output, strerror(errno));
        goto out;
    }
    created = true;
    crypto_hash_sha256_init(&h);
    for (;;) {
        got = read(in, buf, sizeof(buf));
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            rc = cli_error("cannot read recording %s: %s", path,
                           strerror(errno));
            goto out;
        }
        if (got == 0) {
            break;
        }
        crypto_hash_sha256_update(&h, buf, (unsigned long long)got);
        total += (uint64_t)got;
        for (off = 0; off < got; off += put) {
            put = write(out, buf + off, (size_t)(got - off));
            if (put < 0 && errno == EINTR) {
                put = 0;
                continue;
            }
            if (put <= 0) {
                rc = cli_error("cannot write %s: %s", output, strerror(errno));
                goto out;
            }
        }
    }
    if (fsync(out) != 0 || close(out) != 0) {
        out = -1;
        rc = cli_error("cannot write %s: %s", output, strerror(errno));
        goto out;
    }
    out = -1;
    crypto_hash_sha256_final(&h, digest);
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
    created = false; /* complete: kept even if it does not match */
    if (s.recording_sha256[0] != '\0' && strcmp(hex, s.recording_sha256) != 0) {
        rc = cli_error("wrote %s, but its SHA-256 %s differs from the "
                       "report's %s: the recording changed after the "
                       "session ended",
                       output, hex, s.recording_sha256);
        goto out;
    }
    if (s.recording_sha256[0] != '\0' && s.recording_size != 0 &&
        total != s.recording_size) {
        rc = cli_error("wrote %s, but its size %" PRIu64
                       " differs from the report's %" PRIu64,
                       output, total, s.recording_size);
        goto out;
    }
    rc = CLI_EXIT_OK;
out:
    if (out >= 0) {
        close(out);
    }
    if (created) {
        unlink(output);
    }
    if (in >= 0) {
        close(in);
    }
    return rc;
}

/* The screen of an RDP recording at --at SECONDS (default: its end), as
 * a new PNG file. A recording cut short by a crash gives its last whole
 * screen; a malformed one is an error naming where it broke. */
static int session_frame_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *output = NULL, *at_s = NULL;
    const struct cli_opt opts[] = {CLI_OPT_STR("--output", &output),
                                   CLI_OPT_STR("--at", &at_s), CLI_OPT_END};
    struct store_session s;
    struct rdprec_canvas cv;
    struct rdprec_event ev;
    char path[4096], *end = NULL;
    uint8_t *data = NULL, *png = NULL;
    size_t len = 0, off = 0, pnglen = 0, put = 0;
    double at = -1;
    bool created = false;
    int fd = -1, rc, r;
    ssize_t n;

    memset(&cv, 0, sizeof(cv));
    if ((rc = cli_parse(ctx, argc, argv, opts, "ID", pos)) != CLI_PARSED) {
        return rc;
    }
    if (output == NULL) {
        return cli_usage(ctx, "missing --output FILE.png");
    }
    if (at_s != NULL) {
        errno = 0;
        at = strtod(at_s, &end);
        if (errno != 0 || end == at_s || *end != '\0' || !isfinite(at) ||
            at < 0 || at > 4294967.0) {
            return cli_usage(ctx, "--at needs a number of seconds");
        }
    }
    if ((rc = session_recording(ctx, pos[0], &s, path, sizeof(path))) !=
        CLI_EXIT_OK) {
        return rc;
    }
    if ((r = util_read_file(path, SESSION_RDPREC_MAX, &data, &len)) != ERR_OK) {
        return cli_error("cannot read recording %s: %s", path, err_str(r));
    }
    while ((r = rdprec_next(data, len, &off, &ev)) == ERR_OK) {
        if (at >= 0 && (double)ev.ms > at * 1000.0) {
            break;
        }
        if ((r = rdprec_canvas_apply(&cv, &ev)) != ERR_OK) {
            break;
        }
    }
    if (r == ERR_INVALID && off == 0) {
        rc = cli_error("session %s has no RDP recording (%s is not .rdprec)",
                       s.id, path);
        goto out;
    }
    if (r != ERR_OK && r != ERR_NOT_FOUND && r != ERR_IO) {
        rc = cli_error("recording %s is malformed at byte %zu: %s", path, off,
                       err_str(r));
        goto out;
    }
    if (cv.rgb == NULL) {
        rc = cli_error("recording %s has no screen %s", path,
                       at >= 0 ? "by then" : "at all");
        goto out;
    }
    if ((r = rdprec_canvas_png(&cv, &png, &pnglen)) != ERR_OK) {
        rc = cli_error("cannot make the PNG: %s", err_str(r));
        goto out;
    }
    fd = open(output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
              0600);
    if (fd < 0) {
        rc = errno == EEXIST
                 ? cli_error("%s already exists; not overwriting it", output)
                 : cli_error("cannot create %s: %s", output, strerror(errno));
        goto out;
    }
    created = true;
    while (put < pnglen) {
        n = write(fd, png + put, pnglen - put);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = cli_error("cannot write %s: %s", output, strerror(errno));
            goto out;
        }
        put += (size_t)n;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = cli_error("cannot write %s: %s", output, strerror(errno));
        goto out;
    }
    fd = -1;
    created = false;
    printf("%s: %ux%u at %u.%03u s\n", output, cv.w, cv.h, cv.ms / 1000,
           cv.ms % 1000);
    rc = CLI_EXIT_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (created) {
        unlink(output);
    }
    free(png);
    free(data);
    rdprec_canvas_free(&cv);
    return rc;
}

static const struct cli_cmd session_list_cmd = {
    .name = "list",
    .synopsis = "session list [--json] [--user U] [--asset ID] [--kind K]\n"
                "[--result ok|denied|error] [--since T] [--until T] "
                "[--limit N]",
    .summary = "List session report rows, newest first.",
    .details =
        "Options:\n"
        "  --user U          rows whose login named user U\n"
        "  --asset ID        rows of one asset (an ID, or a name of one "
        "asset)\n"
        "  --kind K          shell, exec, sftp, scp, forward, rdp or tunnel\n"
        "  --result R        ok, denied or error\n"
        "  --since T         rows started at or after T "
        "(2026-11-21T05:00:00Z,\n"
        "                    2026-11-21, or Unix seconds)\n"
        "  --until T         rows started at or before T\n"
        "  --limit N         at most N rows\n",
    .run = session_list_run,
};
static const struct cli_cmd session_show_cmd = {
    .name = "show",
    .synopsis = "session show ID [--json]",
    .summary = "Show one session report row.",
    .run = session_show_run,
};
static const struct cli_cmd session_play_cmd = {
    .name = "play",
    .synopsis = "session play ID [--speed X]",
    .summary = "Replay a session's terminal recording in this terminal.",
    .details = "Writes the recorded output with its timing; pauses longer "
               "than 2 seconds are\ncut to 2. --speed X plays X times as "
               "fast (0.01 to 10000).\n",
    .run = session_play_run,
};
static const struct cli_cmd session_export_cmd = {
    .name = "export",
    .synopsis = "session export ID --output FILE",
    .summary = "Copy a session's recording to a new file.",
    .details = "FILE must not exist. The copy is checked against the "
               "SHA-256 in the report;\na mismatch is an error (the copy "
               "is kept for examination).\n",
    .run = session_export_run,
};
static const struct cli_cmd session_frame_cmd = {
    .name = "frame",
    .synopsis = "session frame ID --output FILE.png [--at SECONDS]",
    .summary = "Write a screen of an RDP session's recording as a PNG.",
    .details = "The screen as the user saw it SECONDS into the session "
               "(default: at its end).\nFILE.png must not exist.\n",
    .run = session_frame_run,
};
static const struct cli_cmd *const session_cmds[] = {
    &session_list_cmd,   &session_show_cmd,  &session_play_cmd,
    &session_export_cmd, &session_frame_cmd, NULL};

const struct cli_cmd cli_session = {
    .name = "session",
    .summary = "Read the session report.",
    .sub = session_cmds,
};
