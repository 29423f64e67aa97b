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
    const char *pos[CLI_MAX_POS];
    struct store_profile p;
    struct admin_ctx ac;
    struct admin_err e;
    json_t *body = NULL;
    int rc;

    /* the options are the descriptor's (admin_profile.c) */
    if ((rc = cli_parse_fields(ctx, argc, argv, admin_profile_fields, true,
                               NULL, "NAME", pos, &body)) != CLI_PARSED) {
        return rc;
    }
    admin_profile_defaults(&p);
    rc = admin_set_name(p.name, sizeof(p.name), pos[0], "profile", &e);
    if (rc == ERR_OK) {
        rc = admin_json_apply(admin_profile_fields, body, &p, &e);
    }
    json_decref(body);
    if (rc != ERR_OK || admin_profile_check(&p, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_profile_add(&ac, &p, &e) != ERR_OK) {
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
    struct admin_ctx ac;
    struct admin_err e;
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
    who = user != NULL ? user : group;
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_profile_assign(&ac, &p, uid, gid, who, assign, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
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

static int profile_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    struct store_profile *list = NULL;
    size_t n = 0;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_profile_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list profiles: %s", err_str(r));
    }
    rc = cli_fields_list(admin_profile_fields, list, n, sizeof(*list), json);
    store_list_free(list);
    return rc;
}

static int profile_show_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool json = false;
    const struct cli_opt opts[] = {CLI_OPT_FLAG("--json", &json), CLI_OPT_END};
    struct store_profile p;
    struct admin_ctx ac;
    struct admin_err e;
    json_t *who = NULL, *o, *v;
    size_t i;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_profile_get(ctx->st, pos[0], &p)) != ERR_OK) {
        return cli_store_error(r, "profile", pos[0]);
    }
    if (admin_profile_assignees(&ac, &p, &who, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    if (json) {
        o = admin_profile_json(&p);
        json_object_set_new(o, "assignments", who);
        return cli_json_print(o);
    }
    cli_fields_show(admin_profile_fields, &p);
    if (json_array_size(who) == 0) {
        cli_show("assigned_to", "nobody");
    }
    json_array_foreach(who, i, v)
    {
        char line[STORE_NAME_MAX + STORE_ID_MAX + 16];
        snprintf(line, sizeof(line), "%s %s (%s)",
                 json_string_value(json_object_get(v, "kind")),
                 json_string_value(json_object_get(v, "name")),
                 json_string_value(json_object_get(v, "id")));
        cli_show("assigned_to", line);
    }
    json_decref(who);
    return CLI_EXIT_OK;
}

static int profile_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct store_profile p;
    struct admin_ctx ac;
    struct admin_err e;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "NAME", pos)) != CLI_PARSED ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_profile_get(ctx->st, pos[0], &p)) != ERR_OK) {
        return cli_store_error(r, "profile", pos[0]);
    }
    if (admin_profile_delete(&ac, &p, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

static const struct cli_cmd profile_add_cmd = {
    .name = "add",
    .synopsis = "profile add NAME --native deny|allow|record [--no-shell]\n"
                "[--no-exec] [--no-sftp] [--no-scp] [--local-forward]\n"
                "[--remote-forward] [--agent-forward] [--x11]\n"
                "[--max-session-minutes N] [--idle-timeout-minutes N]\n"
                "[--record-input] [--no-rdp-clipboard-text]\n"
                "[--rdp-clipboard-files] [--no-rdp-audio] [--rdp-drive]\n"
                "[--rdp-printer] [--no-rdp]",
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
        "never)\n"
        "  --record-input              with record: what the user types too\n"
        "  --no-rdp-clipboard-text     RDP: no clipboard at all\n"
        "  --rdp-clipboard-files       RDP: files on the clipboard too\n"
        "  --no-rdp-audio              RDP: no audio from the target\n"
        "  --rdp-drive, --rdp-printer  RDP: drive and printer redirection\n"
        "  --no-rdp                    no RDP sessions at all (SSH only)\n",
    .run = profile_add_run,
};
static const struct cli_cmd profile_assign_cmd = {
    .name = "assign",
    .synopsis = "profile assign NAME (--user U | --group G)",
    .summary = "Assign a profile to a user or a group.",
    .run = profile_assign_run,
};
static const struct cli_cmd profile_unassign_cmd = {
    .name = "unassign",
    .synopsis = "profile unassign NAME (--user U | --group G)",
    .summary = "Take a profile away from a user or a group.",
    .run = profile_unassign_run,
};
static const struct cli_cmd profile_list_cmd = {
    .name = "list",
    .synopsis = "profile list [--json]",
    .summary = "List access profiles.",
    .run = profile_list_run,
};
static const struct cli_cmd profile_show_cmd = {
    .name = "show",
    .synopsis = "profile show NAME [--json]",
    .summary = "Show an access profile and who it is assigned to.",
    .details = "Prints the profile's fields, then one assigned_to line per "
               "user or group it\nis assigned to directly (users first). "
               "--json: the profile with an\n\"assignments\" list of "
               "{kind, id, name}.\n",
    .run = profile_show_run,
};
static const struct cli_cmd profile_delete_cmd = {
    .name = "delete",
    .synopsis = "profile delete NAME",
    .summary = "Delete an access profile.",
    .run = profile_delete_run,
};
static const struct cli_cmd *const profile_cmds[] = {&profile_add_cmd,
                                                     &profile_assign_cmd,
                                                     &profile_unassign_cmd,
                                                     &profile_list_cmd,
                                                     &profile_show_cmd,
                                                     &profile_delete_cmd,
                                                     NULL};

const struct cli_cmd cli_profile = {
    .name = "profile",
    .summary = "Manage access profiles.",
    .details =
        "A native session needs a profile with --native allow or record and "
        "the\nchannel kind switched on, besides at least a viewer grant.\n",
    .sub = profile_cmds,
};
