/*
 * `portcullis role ...`: site roles, who may manage Portcullis (SPEC §4):
 * administrator (everything), configuration-manager (configuration, not
 * users and roles), service (what a peer node's proxy needs) and user
 * (their own profile and tokens). Granted to a user or a group on a site,
 * inherited by its sub-sites. `init` makes admin an administrator on /root.
 */
#include <string.h>

#include "admin/admin_job_role.h"
#include "cli/cli.h"
#include "common/err.h"
#include "store/access.h"
#include "store/client_groups.h"

/* `role grant ... --role job-runner --client-group CG`
 * (admin_job_role.h, as POST /api/v1/job-roles) */
static int role_grant_job(struct cli_ctx *ctx, const char *user,
                          const char *group, const char *role,
                          const char *cgroup)
{
    struct admin_job_role_req q = {
        .user = user, .group = group, .role = role, .client_group = cgroup};
    struct store_job_role_row w;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if (job_role_parse(role) < 0) {
        return cli_usage(ctx, "with --client-group, --role is job-runner, "
                              "job-pusher or job-scheduler");
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_job_role_add(&ac, &q, &w, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    printf("%s\n", w.r.id);
    return CLI_EXIT_OK;
}

static int role_grant_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *site = "/root", *user = NULL;
    const char *group = NULL, *role = NULL, *cgroup = NULL;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--site", &site), CLI_OPT_STR("--client-group", &cgroup),
        CLI_OPT_STR("--user", &user), CLI_OPT_STR("--group", &group),
        CLI_OPT_STR("--role", &role), CLI_OPT_END,
    };
    struct store_site_role sr;
    struct store_site s;
    struct store_user u;
    struct store_group g;
    struct admin_ctx ac;
    struct admin_err e;
    int rc, r;

    memset(&sr, 0, sizeof(sr));
    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((user != NULL) == (group != NULL)) {
        return cli_usage(ctx, "give either --user USER or --group GROUP");
    }
    if (role == NULL) {
        return cli_usage(ctx, "missing --role administrator|"
                              "configuration-manager|service|user");
    }
    if (cgroup != NULL) {
        return role_grant_job(ctx, user, group, role, cgroup);
    }
    if (admin_site_role_parse(role, &e) < 0) {
        return cli_admin_error(ctx, &e);
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_site_get(ctx->st, site, &s)) != ERR_OK) {
        return cli_store_error(r, "site", site);
    }
    if (user != NULL) {
        if ((rc = cli_get_user(ctx, user, &u)) != CLI_EXIT_OK) {
            return rc;
        }
        memcpy(sr.user_id, u.id, sizeof(u.id));
    } else {
        if ((rc = cli_get_group(ctx, group, &g)) != CLI_EXIT_OK) {
            return rc;
        }
        memcpy(sr.group_id, g.id, sizeof(g.id));
    }
    memcpy(sr.site_id, s.id, sizeof(s.id));
    if (admin_site_role_add(&ac, &sr, role, user != NULL ? u.name : g.name,
                            s.path, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    printf("%s\n", sr.id);
    return CLI_EXIT_OK;
}

static int role_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    struct store_site_role *list = NULL;
    size_t n = 0;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_site_role_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list roles: %s", err_str(r));
    }
    rc = cli_fields_list(admin_site_role_fields, list, n, sizeof(*list), json);
    store_list_free(list);
    return rc;
}

static int role_jobs_run(struct cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    struct store_job_role_row *list = NULL;
    size_t n = 0;
    json_t *arr;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_job_role_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list job roles: %s", err_str(r));
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct store_job_role_row *w = &list[i];
        if (!json) {
            printf("%s  %-13s  %s %s  on %s\n", w->r.id,
                   job_role_str(w->r.role),
                   w->r.user_id[0] != '\0' ? "user" : "group", w->grantee,
                   w->client_group);
            continue;
        }
        json_array_append_new(arr, admin_job_role_json(w));
    }
    free(list);
    if (json) {
        return cli_json_print(arr);
    }
    json_decref(arr);
    return CLI_EXIT_OK;
}

static int role_revoke_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "ID", pos)) != CLI_PARSED ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_site_role_delete(&ac, pos[0], &e) != ERR_OK) {
        /* or a job role (role grant --client-group) */
        if (e.code == ERR_NOT_FOUND) {
            struct admin_err je;

            if (admin_job_role_delete(&ac, pos[0], &je) == ERR_OK) {
                return CLI_EXIT_OK;
            }
            if (je.code != ERR_NOT_FOUND) {
                return cli_admin_error(ctx, &je);
            }
        }
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

static const struct cli_cmd role_grant_cmd = {
    .name = "grant",
    .synopsis =
        "role grant [--site PATH] (--user U | --group G)\n"
        "--role administrator|configuration-manager|service|user\n"
        "portcullis role grant (--user U | --group G) --client-group CG\n"
        "--role job-runner|job-pusher|job-scheduler",
    .summary = "Grant a site role (default site /root), or a job role on a "
               "client group; prints its ID.",
    .run = role_grant_run,
};
static const struct cli_cmd role_list_cmd = {
    .name = "list",
    .synopsis = "role list [--json]",
    .summary = "List site roles.",
    .run = role_list_run,
};
static const struct cli_cmd role_jobs_cmd = {
    .name = "jobs",
    .synopsis = "role jobs [--json]",
    .summary = "List job roles (role grant --client-group).",
    .run = role_jobs_run,
};
static const struct cli_cmd role_revoke_cmd = {
    .name = "revoke",
    .synopsis = "role revoke ID",
    .summary = "Revoke a site role or a job role.",
    .run = role_revoke_run,
};
static const struct cli_cmd *const role_cmds[] = {
    &role_grant_cmd, &role_list_cmd, &role_jobs_cmd, &role_revoke_cmd, NULL};

const struct cli_cmd cli_role = {
    .name = "role",
    .summary = "Manage site roles (who may manage Portcullis).",
    .details = "Roles are inherited by sub-sites. administrator: everything; "
               "configuration-manager:\nconfiguration but not users and "
               "roles; service: what a peer node needs;\nuser: their own "
               "profile and API tokens.\n",
    .sub = role_cmds,
};
