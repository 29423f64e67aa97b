/*
 * `portcullis audit ...`: reading and checking the audit log (audit.h).
 * Events come from the server (logins, sessions), the API and every
 * changing CLI command (written once, by cli_dispatch() in cli_common.c).
 * `list` shows them newest first; `verify` walks the whole hash chain and
 * names the first entry that was changed, removed or reordered, and says
 * whether the chain is keyed (store_audit.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
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
    const char *pos[CLI_MAX_POS], *key = NULL;
    const struct cli_opt opts[] = {CLI_OPT_STR("--key", &key), CLI_OPT_END};
    struct audit_verify_result *res = NULL;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((res = calloc(1, sizeof(*res))) == NULL) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    r = audit_verify_full(ctx->st, key, res);
    if (r == ERR_CRYPTO && res->bad_seq > 0) {
        rc = cli_error("audit log broken at entry %" PRId64 ": %s",
                       res->bad_seq, res->why);
    } else if (r == ERR_CRYPTO) {
        rc = cli_error("audit log broken: %s", res->why);
    } else if (r != ERR_OK) {
        rc = cli_error("cannot verify the audit log: %s",
                       res->why[0] != '\0' ? res->why : err_str(r));
    } else if (res->keyed && res->keyed_from > 0) {
        printf("ok: %" PRId64 " entries, keyed from entry %" PRId64
               " (audit key %s, id %s)\n",
               res->count, res->keyed_from, res->key_path, res->key_id);
        if (res->keyed_from > 1) {
            printf("entries 1 to %" PRId64 " were written before keyed "
                   "hashing and are pinned by entry %" PRId64 "\n",
                   res->keyed_from - 1, res->keyed_from);
        }
    } else if (res->keyed) {
        printf("ok: %" PRId64 " entries (audit key %s, id %s)\n", res->count,
               res->key_path, res->key_id);
    } else {
        printf("ok: %" PRId64 " entries, not keyed\n", res->count);
        fprintf(stderr,
                "portcullis: warning: no audit key%s%s: the chain is "
                "consistent, but anyone who can write the database could "
                "have rewritten it whole\n",
                res->key_path[0] != '\0' ? " at " : "", res->key_path);
    }
    free(res);
    return rc;
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
    .synopsis = "audit verify [--key FILE]",
    .summary = "Check the hash chain of the whole audit log.",
    .details = "Prints \"ok: N entries\" and exits 0 when every entry is "
               "intact; otherwise\nexits 1 with one line naming the first "
               "entry that was changed, removed\nor reordered, or where the "
               "log was cut short. Entries are keyed (HMAC-SHA-256)\nwith "
               "the audit key, audit.key beside the database; a log rewritten "
               "by\nsomeone without the key fails. Entries from before keyed "
               "hashing verify\nwithout it.\n"
               "Options:\n"
               "  --key FILE   the audit key to check with (a copy of the "
               "database elsewhere)\n",
    .run = audit_verify_run,
};
static const struct cli_cmd *const audit_cmds[] = {&audit_list_cmd,
                                                   &audit_verify_cmd, NULL};

const struct cli_cmd cli_audit = {
    .name = "audit",
    .summary = "Read and verify the audit log.",
    .sub = audit_cmds,
};
