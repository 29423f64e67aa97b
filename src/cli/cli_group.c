/*
 * `portcullis group ...`: groups of users. Grants and access profiles given
 * to a group reach all of its members.
 */
#include <string.h>

#include "cli/cli.h"
#include "common/err.h"

static int group_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "NAME", pos)) != CLI_PARSED ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_group_add(&ac, pos[0], NULL, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

/* The members' names of one group, as JSON strings or joined by ", ". */
static int group_members(struct cli_ctx *ctx, const struct store_group *g,
                         json_t **arr, char *names, size_t nameslen)
{
    struct store_user *list = NULL;
    size_t n = 0, i, len;
    int r;

    if ((r = store_group_members(ctx->st, g->id, &list, &n)) != ERR_OK) {
        return cli_error("cannot list members of group '%s': %s", g->name,
                         err_str(r));
    }
    for (i = 0; i < n; i++) {
        if (arr != NULL) {
            cli_json_append(arr, json_string(list[i].name));
        } else {
            len = strlen(names);
            snprintf(names + len, nameslen - len, "%s%s", len > 0 ? ", " : "",
                     list[i].name);
        }
    }
    store_user_list_free(list, n);
    return CLI_EXIT_OK;
}

static int group_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    struct store_group *list = NULL;
    struct cli_table *t = NULL;
    json_t *arr = NULL, *members;
    char names[4096];
    size_t n = 0, i;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_group_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list groups: %s", err_str(r));
    }
    if (json) {
        arr = json_array();
    } else {
        t = cli_table_new(3, "ID", "NAME", "MEMBERS");
    }
    for (i = 0; i < n; i++) {
        names[0] = '\0';
        members = json ? json_array() : NULL;
        rc = group_members(ctx, &list[i], json ? &members : NULL, names,
                           sizeof(names));
        if (rc != CLI_EXIT_OK) {
            json_decref(members);
            goto out;
        }
        if (json) {
            cli_json_append(&arr, json_pack("{s:s, s:s, s:o}", "id", list[i].id,
                                            "name", list[i].name, "members",
                                            members));
        } else {
            cli_table_add(t, list[i].id, list[i].name, names);
        }
    }
    if (json) {
        rc = cli_json_print(arr);
        arr = NULL;
    } else {
        rc = cli_table_finish(t);
        t = NULL;
    }
out:
    json_decref(arr);
    cli_table_free(t);
    store_list_free(list);
    return rc;
}

static int group_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct store_group g;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "NAME", pos)) != CLI_PARSED ||
        (rc = cli_get_group(ctx, pos[0], &g)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_group_delete(&ac, &g, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

static int group_member_change(struct cli_ctx *ctx, int argc, char **argv,
                               bool add)
{
    const char *pos[CLI_MAX_POS];
    struct admin_ctx ac;
    struct admin_err e;
    struct store_group g;
    struct store_user u;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "GROUP USER", pos)) !=
        CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_get_group(ctx, pos[0], &g)) != CLI_EXIT_OK ||
        (rc = cli_get_user(ctx, pos[1], &u)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_group_member(&ac, &g, &u, add, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

static int group_member_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return group_member_change(ctx, argc, argv, true);
}

static int group_member_remove_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return group_member_change(ctx, argc, argv, false);
}

static const struct cli_cmd group_add_cmd = {
    .name = "add",
    .synopsis = "group add NAME",
    .summary = "Create a group.",
    .run = group_add_run,
};
static const struct cli_cmd group_list_cmd = {
    .name = "list",
    .synopsis = "group list [--json]",
    .summary = "List groups with their members.",
    .run = group_list_run,
};
static const struct cli_cmd group_delete_cmd = {
    .name = "delete",
    .synopsis = "group delete NAME",
    .summary = "Delete a group (not its members).",
    .run = group_delete_run,
};
static const struct cli_cmd group_member_add_cmd = {
    .name = "add",
    .synopsis = "group member add GROUP USER",
    .summary = "Add a user to a group.",
    .run = group_member_add_run,
};
static const struct cli_cmd group_member_remove_cmd = {
    .name = "remove",
    .synopsis = "group member remove GROUP USER",
    .summary = "Remove a user from a group.",
    .run = group_member_remove_run,
};
static const struct cli_cmd *const group_member_cmds[] = {
    &group_member_add_cmd, &group_member_remove_cmd, NULL};
static const struct cli_cmd group_member_cmd = {
    .name = "member",
    .summary = "Manage the members of a group.",
    .sub = group_member_cmds,
};
static const struct cli_cmd *const group_cmds[] = {
    &group_add_cmd, &group_list_cmd, &group_delete_cmd, &group_member_cmd,
    NULL};

const struct cli_cmd cli_group = {
    .name = "group",
    .summary = "Manage groups of users.",
    .details = "GROUP and USER are names or IDs.\n",
    .sub = group_cmds,
};
