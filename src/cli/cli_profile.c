/*
 * `portcullis profile ...`: access profiles, assigned to users or groups.
 * A profile says whether native sessions are denied, allowed or recorded,
 * which channel kinds are switched on, and how long a session may last.
 */
#include <string.h>

#include "cli/cli.h"
#include "common/err.h"

static int profile_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *native = NULL;
    bool no_shell = false, no_exec = false, no_sftp = false, no_scp = false;
    bool lfwd = false, rfwd = false, afwd = false, x11 = false;
    bool rec_input = false;
    int max_min = 0, idle_min = 0, rc;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--native", &native),
        CLI_OPT_FLAG("--no-shell", &no_shell),
        CLI_OPT_FLAG("--no-exec", &no_exec),
        CLI_OPT_FLAG("--no-sftp", &no_sftp),
        CLI_OPT_FLAG("--no-scp", &no_scp),
        CLI_OPT_FLAG("--local-forward", &lfwd),
        CLI_OPT_FLAG("--remote-forward", &rfwd),
        CLI_OPT_FLAG("--agent-forward", &afwd),
        CLI_OPT_FLAG("--x11", &x11),
        CLI_OPT_FLAG("--record-input", &rec_input),
        CLI_OPT_INT("--max-session-minutes", &max_min, 0, ADMIN_MINUTES_MAX),
        CLI_OPT_INT("--idle-timeout-minutes", &idle_min, 0, ADMIN_MINUTES_MAX),
        CLI_OPT_END,
    };
    struct admin_err e;
    struct store_profile p;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if (native == NULL) {
        return cli_usage(ctx, "missing --native deny|allow|record");
    }
    admin_profile_defaults(&p);
    if ((p.native = store_native_parse(native)) < 0) {
        return cli_usage(ctx, "--native must be deny, allow or record");
    }
    if (admin_set_name(p.name, sizeof(p.name), pos[0], "profile", &e) !=
        ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    p.shell = !no_shell;
    p.exec = !no_exec;
    p.sftp = !no_sftp;
    p.scp = !no_scp;
    p.local_forward = lfwd;
    p.remote_forward = rfwd;
    p.agent_forward = afwd;
    p.x11 = x11;
    p.max_session_minutes = max_min;
    p.idle_timeout_minutes = idle_min;
    p.record_input = rec_input;
    if (admin_profile_check(&p, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_profile_add(ctx->st, &p, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

/* profile assign / unassign NAME (--user U | --group G) */
static int profile_assignment(struct cli_ctx *ctx, int argc, char **argv,
                              bool assign)
{
    const char *pos[CLI_MAX_POS], *user = NULL, *group = NULL;
    const struct cli_opt opts[] = {CLI_OPT_STR("--user", &user),
                                   CLI_OPT_STR("--group", &group), CLI_OPT_END};
    struct store_profile p;
    struct store_user u;
    struct store_group g;
    const char *uid = NULL, *gid = NULL, *who;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((user != NULL) == (group != NULL)) {
        return cli_usage(ctx, "give either --user USER or --group GROUP");
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_profile_get(ctx->st, pos[0], &p)) != ERR_OK) {
        return cli_store_error(r, "profile", pos[0]);
    }
    if (user != NULL) {
        if ((rc = cli_get_user(ctx, user, &u)) != CLI_EXIT_OK) {
            return rc;
        }
        uid = u.id;
    } else {
        if ((rc = cli_get_group(ctx, group, &g)) != CLI_EXIT_OK) {
            return rc;
        }
        gid = g.id;
    }
    if (assign) {
        r = store_profile_assign(ctx->st, p.id, uid, gid);
    } else {
        r = store_profile_unassign(ctx->st, p.id, uid, gid);
    }
    who = user != NULL ? user : group;
    if (r == ERR_EXISTS) {
        return cli_error("profile '%s' is already assigned to %s '%s'", p.name,
                         user != NULL ? "user" : "group", who);
    }
    if (r == ERR_NOT_FOUND) {
        return cli_error("profile '%s' is not assigned to %s '%s'", p.name,
                         user != NULL ? "user" : "group", who);
    }
    if (r != ERR_OK) {
        return cli_store_error(r, "profile", pos[0]);
    }
    return CLI_EXIT_OK;
}

static int profile_assign_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return profile_assignment(ctx, argc, argv, true);
}

static int profile_unassign_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return profile_assignment(ctx, argc, argv, false);
}

/* The switched-on channel kinds, e.g. "shell,exec,sftp,scp". */
static void profile_channels(const struct store_profile *p, char *out,
                             size_t outlen)
{
    const struct {
        bool on;
        const char *name;
    } ch[] = {
        {p->shell, "shell"},
        {p->exec, "exec"},
        {p->sftp, "sftp"},
        {p->scp, "scp"},
        {p->local_forward, "local-forward"},
        {p->remote_forward, "remote-forward"},
        {p->agent_forward, "agent-forward"},
        {p->x11, "x11"},
    };
    size_t i, len;

    out[0] = '\0';
    for (i = 0; i < sizeof(ch) / sizeof(ch[0]); i++) {
        if (ch[i].on) {
            len = strlen(out);
            snprintf(out + len, outlen - len, "%s%s", len > 0 ? "," : "",
                     ch[i].name);
        }
    }
}

static int profile_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    struct store_profile *list = NULL, *p;
    struct cli_table *t;
    json_t *arr;
    char channels[128], maxm[16], idlem[16];
    size_t n = 0, i;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_profile_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list profiles: %s", err_str(r));
    }
    if (json) {
        arr = json_array();
        for (i = 0; i < n; i++) {
            cli_json_append(&arr, admin_profile_json(&list[i]));
        }
        rc = cli_json_print(arr);
    } else {
        t = cli_table_new(6, "ID", "NAME", "NATIVE", "CHANNELS", "MAX_MIN",
                          "IDLE_MIN");
        for (i = 0; i < n; i++) {
            p = &list[i];
            profile_channels(p, channels, sizeof(channels));
            snprintf(maxm, sizeof(maxm), "%d", p->max_session_minutes);
            snprintf(idlem, sizeof(idlem), "%d", p->idle_timeout_minutes);
            cli_table_add(t, p->id, p->name, store_native_str(p->native),
                          channels, p->max_session_minutes > 0 ? maxm : "-",
                          p->idle_timeout_minutes > 0 ? idlem : "-");
        }
        rc = cli_table_finish(t);
    }
    store_list_free(list);
    return rc;
}

static int profile_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_profile_delete(ctx->st, pos[0])) != ERR_OK) {
        return cli_store_error(r, "profile", pos[0]);
    }
    return CLI_EXIT_OK;
}

static const struct cli_cmd profile_add_cmd = {
    .name = "add",
    .synopsis = "profile add NAME --native deny|allow|record [--no-shell]\n"
                "[--no-exec] [--no-sftp] [--no-scp] [--local-forward]\n"
                "[--remote-forward] [--agent-forward] [--x11]\n"
                "[--max-session-minutes N] [--idle-timeout-minutes N]",
    .summary = "Create an access profile.",
    .details =
        "Options:\n"
        "  --native deny|allow|record  native sessions: refused, allowed, or\n"
        "                              allowed and recorded\n"
        "  --no-shell, --no-exec, --no-sftp, --no-scp\n"
        "                              switch off a channel kind (all on by "
        "default)\n"
        "  --local-forward, --remote-forward, --agent-forward, --x11\n"
        "                              switch on a forwarding (all off by "
        "default)\n"
        "  --max-session-minutes N     end sessions after N minutes (0: "
        "never)\n"
        "  --idle-timeout-minutes N    end idle sessions after N minutes (0: "
        "never)\n",
    .run = profile_add_run,
    .mutates = true,
};
static const struct cli_cmd profile_assign_cmd = {
    .name = "assign",
    .synopsis = "profile assign NAME (--user U | --group G)",
    .summary = "Assign a profile to a user or a group.",
    .run = profile_assign_run,
    .mutates = true,
};
static const struct cli_cmd profile_unassign_cmd = {
    .name = "unassign",
    .synopsis = "profile unassign NAME (--user U | --group G)",
    .summary = "Take a profile away from a user or a group.",
    .run = profile_unassign_run,
    .mutates = true,
};
static const struct cli_cmd profile_list_cmd = {
    .name = "list",
    .synopsis = "profile list [--json]",
    .summary = "List access profiles.",
    .run = profile_list_run,
};
static const struct cli_cmd profile_delete_cmd = {
    .name = "delete",
    .synopsis = "profile delete NAME",
    .summary = "Delete an access profile.",
    .run = profile_delete_run,
    .mutates = true,
};
static const struct cli_cmd *const profile_cmds[] = {
    &profile_add_cmd,  &profile_assign_cmd, &profile_unassign_cmd,
    &profile_list_cmd, &profile_delete_cmd, NULL};

const struct cli_cmd cli_profile = {
    .name = "profile",
    .summary = "Manage access profiles.",
    .details =
        "A native session needs a profile with --native allow or record and "
        "the\nchannel kind switched on, besides at least a viewer grant.\n",
    .sub = profile_cmds,
};
