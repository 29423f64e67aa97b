/*
 * `portcullis audit ...`: reading and checking the audit log (audit.h).
 * Events come from the server (logins, sessions), the API and every
 * changing CLI command (written once, by cli_dispatch() in cli_common.c).
 * `list` shows them newest first; `verify` walks the whole hash chain and
 * names the first entry that was changed, removed or reordered.
 */
#include <inttypes.h>
#include <string.h>

#include "cli/cli.h"
#include "common/err.h"
#include "store/audit.h"

static json_t *audit_json(const struct audit_entry *e)
{
    json_t *o = json_object();

    cli_json_set(&o, "seq", json_integer((json_int_t)e->seq));
    cli_json_set(&o, "time", cli_json_time(e->time));
    cli_json_set(&o, "actor", cli_json_text(e->actor));
    cli_json_set(&o, "source", cli_json_text(e->source));
    cli_json_set(&o, "action", cli_json_text(e->action));
    cli_json_set(&o, "target", cli_json_text(e->target));
    cli_json_set(&o, "detail", cli_json_text(e->detail));
    cli_json_set(&o, "hash", json_string(e->hash));
    return o;
}

static int audit_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *actor = NULL, *action = NULL;
    const char *since = NULL, *until = NULL;
    bool json = false;
    int limit = 0, rc, r;
    const struct cli_opt opts[] = {
        CLI_OPT_FLAG("--json", &json),
        CLI_OPT_STR("--actor", &actor),
        CLI_OPT_STR("--action", &action),
        CLI_OPT_STR("--since", &since),
        CLI_OPT_STR("--until", &until),
        CLI_OPT_INT("--limit", &limit, 1, 100000000),
        CLI_OPT_END,
    };
    struct audit_filter f;
    struct audit_entry *list = NULL, *e;
    struct cli_table *t;
    json_t *arr;
    char when[32], seq[24];
    size_t n = 0, i;

    memset(&f, 0, sizeof(f));
    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
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
    f.actor = actor;
    f.action = action;
    f.limit = (size_t)limit;
    if ((r = audit_list(ctx->st, &f, &list, &n)) != ERR_OK) {
        return cli_error("cannot list the audit log: %s", err_str(r));
    }
    if (json) {
        arr = json_array();
        for (i = 0; i < n; i++) {
            cli_json_append(&arr, audit_json(&list[i]));
        }
        rc = cli_json_print(arr);
    } else {
        t = cli_table_new(7, "SEQ", "TIME", "ACTOR", "SOURCE", "ACTION",
                          "TARGET", "DETAIL");
        for (i = 0; i < n; i++) {
            e = &list[i];
            cli_fmt_time(e->time, when, sizeof(when));
            snprintf(seq, sizeof(seq), "%" PRId64, e->seq);
            cli_table_add(t, seq, when, e->actor, e->source, e->action,
                          e->target, e->detail);
        }
        rc = cli_table_finish(t);
    }
    store_list_free(list);
    return rc;
}

static int audit_verify_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    const struct cli_opt opts[] = {CLI_OPT_END};
    char why[256] = "";
    int64_t count = 0, bad = 0;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    r = audit_verify_count(ctx->st, &count, &bad, why, sizeof(why));
    if (r == ERR_CRYPTO && bad > 0) {
        return cli_error("audit log broken at entry %" PRId64 ": %s", bad, why);
    }
    if (r == ERR_CRYPTO) {
        return cli_error("audit log broken: %s", why);
    }
    if (r != ERR_OK) {
        return cli_error("cannot verify the audit log: %s", err_str(r));
    }
    printf("ok: %" PRId64 " entries\n", count);
    return CLI_EXIT_OK;
}

static const struct cli_cmd audit_list_cmd = {
    .name = "list",
    .synopsis = "audit list [--json] [--actor U] [--action PREFIX]\n"
                "[--since T] [--until T] [--limit N]",
    .summary = "List audit events, newest first.",
    .details = "Options:\n"
               "  --actor U         events of one actor (\"admin\", "
               "\"cli:root\", \"system\")\n"
               "  --action PREFIX   events whose action starts with PREFIX "
               "(\"login.\", \"user.\")\n"
               "  --since T         at or after T (2026-11-21T05:00:00Z, "
               "2026-11-21, or Unix seconds)\n"
               "  --until T         at or before T\n"
               "  --limit N         at most N events\n",
    .run = audit_list_run,
};
static const struct cli_cmd audit_verify_cmd = {
    .name = "verify",
    .synopsis = "audit verify",
    .summary = "Check the hash chain of the whole audit log.",
    .details = "Prints \"ok: N entries\" and exits 0 when every entry is "
               "intact; otherwise\nexits 1 with one line naming the first "
               "entry that was changed, removed\nor reordered, or where the "
               "log was cut short.\n",
    .run = audit_verify_run,
};
static const struct cli_cmd *const audit_cmds[] = {&audit_list_cmd,
                                                   &audit_verify_cmd, NULL};

const struct cli_cmd cli_audit = {
    .name = "audit",
    .summary = "Read and verify the audit log.",
    .sub = audit_cmds,
};
