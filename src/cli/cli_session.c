/*
 * `portcullis session ...`: the session report. Every proxy connection
 * attempt leaves a row (who, which asset, what kind of channel, from
 * where, how it ended); these verbs read them, newest first.
 */
#include <inttypes.h>
#include <string.h>

#include "cli/cli.h"
#include "common/err.h"
#include "common/util.h"

static const char *const session_kinds[] = {"shell",   "exec", "sftp",   "scp",
                                            "forward", "rdp",  "tunnel", NULL};

static json_t *session_json(const struct store_session *s)
{
    json_t *exit_status;

    exit_status =
        s->exit_status >= 0 ? json_integer(s->exit_status) : json_null();
    return json_pack(
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
}

static int session_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *user = NULL, *asset = NULL, *kind = NULL;
    const char *result = NULL;
    bool json = false;
    int limit = 0, rc, r;
    const struct cli_opt opts[] = {
        CLI_OPT_FLAG("--json", &json),
        CLI_OPT_STR("--user", &user),
        CLI_OPT_STR("--asset", &asset),
        CLI_OPT_STR("--kind", &kind),
        CLI_OPT_STR("--result", &result),
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
    cli_show("started_at", started);
    cli_show("ended_at", ended);
    cli_show("bytes_up", up);
    cli_show("bytes_down", down);
    cli_show("exit_status", s.exit_status >= 0 ? exit_status : "-");
    cli_show("result", s.result[0] != '\0' ? s.result : "(open)");
    cli_show("detail", s.detail);
    cli_show("recording_path", s.recording_path);
    cli_show("recording_sha256", s.recording_sha256);
    return CLI_EXIT_OK;
}

static const struct cli_cmd session_list_cmd = {
    .name = "list",
    .synopsis = "session list [--json] [--user U] [--asset ID] [--kind K]\n"
                "[--result ok|denied|error] [--limit N]",
    .summary = "List session report rows, newest first.",
    .details =
        "Options:\n"
        "  --user U          rows whose login named user U\n"
        "  --asset ID        rows of one asset (an ID, or a name of one "
        "asset)\n"
        "  --kind K          shell, exec, sftp, scp, forward, rdp or tunnel\n"
        "  --result R        ok, denied or error\n"
        "  --limit N         at most N rows\n",
    .run = session_list_run,
};
static const struct cli_cmd session_show_cmd = {
    .name = "show",
    .synopsis = "session show ID [--json]",
    .summary = "Show one session report row.",
    .run = session_show_run,
};
static const struct cli_cmd *const session_cmds[] = {&session_list_cmd,
                                                     &session_show_cmd, NULL};

const struct cli_cmd cli_session = {
    .name = "session",
    .summary = "Read the session report.",
    .sub = session_cmds,
};
