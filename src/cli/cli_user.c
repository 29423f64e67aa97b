/*
 * `portcullis user ...`: Portcullis users, their passwords, TOTP seeds and
 * SSH public keys.
 *
 * Passwords arrive on stdin only (never in argv, where `ps` shows them)
 * and reach the store hashed; TOTP seeds reach it sealed by the vault and
 * are shown once, when they are made. Public keys are parsed, checked
 * and fingerprinted by the admin layer (admin.c), which the API shares,
 * so the store holds only keys libssh accepts, in canonical base64.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli/cli.h"
#include "common/err.h"
#include "common/util.h"

static int user_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool pw_stdin = false;
    /* --disabled is the descriptor's (admin_user_fields) */
    const struct cli_opt extra[] = {
        CLI_OPT_FLAG("--password-stdin", &pw_stdin),
        CLI_OPT_END,
    };
    struct admin_ctx ac;
    struct admin_err e;
    struct store_user u = {0};
    json_t *body = NULL;
    char *pw = NULL;
    int rc;

    if ((rc = cli_parse_fields(ctx, argc, argv, admin_user_fields, true, extra,
                               "NAME", pos, &body)) != CLI_PARSED) {
        return rc;
    }
    rc = admin_json_apply(admin_user_fields, body, &u, &e);
    json_decref(body);
    if (rc != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    /* the vault seals the password's NT hash (RDP logins, docs/rdp.md) */
    if ((pw_stdin && (rc = cli_open_vault(ctx)) != CLI_EXIT_OK) ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (pw_stdin && (rc = cli_read_password(&pw)) != CLI_EXIT_OK) {
        return rc;
    }
    rc = admin_user_add(&ac, pos[0], pw, u.disabled, NULL, &e) == ERR_OK
             ? CLI_EXIT_OK
             : cli_admin_error(ctx, &e);
    cli_secret_free(pw);
    return rc;
}

static int user_passwd_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool pw_stdin = false;
    const struct cli_opt opts[] = {
        CLI_OPT_FLAG("--password-stdin", &pw_stdin),
        CLI_OPT_END,
    };
    struct admin_ctx ac;
    struct admin_err e;
    struct store_user u;
    char *pw = NULL;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if (!pw_stdin) {
        return cli_usage(ctx, "the new password is read with --password-stdin");
    }
    if ((rc = cli_get_user(ctx, pos[0], &u)) != CLI_EXIT_OK ||
        (rc = cli_open_vault(ctx)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((rc = cli_read_password(&pw)) != CLI_EXIT_OK) {
        return rc;
    }
    rc = admin_user_update(&ac, &u, pw, -1, "user.passwd", &e) == ERR_OK
             ? CLI_EXIT_OK
             : cli_admin_error(ctx, &e);
    cli_secret_free(pw);
    return rc;
}

static int user_set_disabled(struct cli_ctx *ctx, int argc, char **argv,
                             bool disabled)
{
    const char *pos[CLI_MAX_POS];
    struct store_user u;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_get_user(ctx, pos[0], &u)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_user_update(&ac, &u, NULL, disabled,
                          disabled ? "user.disable" : "user.enable",
                          &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

static int user_enable_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return user_set_disabled(ctx, argc, argv, false);
}

static int user_disable_run(struct cli_ctx *ctx, int argc, char **argv)
{
    return user_set_disabled(ctx, argc, argv, true);
}

static int user_totp_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool enable = false, disable = false;
    const struct cli_opt opts[] = {
        CLI_OPT_FLAG("--enable", &enable),
        CLI_OPT_FLAG("--disable", &disable),
        CLI_OPT_END,
    };
    struct admin_ctx ac;
    struct admin_err e;
    struct store_user u;
    char b32[64] = "", uri[1024] = "";
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if (enable == disable) {
        return cli_usage(ctx, "give one of --enable or --disable");
    }
    if ((rc = cli_get_user(ctx, pos[0], &u)) != CLI_EXIT_OK ||
        (!disable && (rc = cli_open_vault(ctx)) != CLI_EXIT_OK) ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (disable) {
        return admin_user_totp_disable(&ac, &u, &e) == ERR_OK
                   ? CLI_EXIT_OK
                   : cli_admin_error(ctx, &e);
    }
    if (admin_user_totp_enable(&ac, &u, b32, sizeof(b32), uri, sizeof(uri),
                               &e) != ERR_OK) {
        rc = cli_admin_error(ctx, &e);
    } else {
        printf("secret=%s\nuri=%s\n", b32, uri);
        rc = CLI_EXIT_OK;
    }
    sodium_memzero(b32, sizeof(b32));
    sodium_memzero(uri, sizeof(uri));
    return rc;
}

/* --- public keys --- */

static int user_key_read(const char *file, char **text)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int r;

    *text = NULL;
    if (strcmp(file, "-") == 0) {
        r = util_read_stdin_line(STORE_KEY_MAX, text);
    } else {
        r = util_read_file(file, STORE_KEY_MAX, &data, &len);
        *text = (char *)data;
    }
    if (r == ERR_TOO_LONG) {
        return cli_error("%s: too long for a public key", file);
    }
    if (r != ERR_OK) {
        return cli_error("cannot read %s: %s", file, err_str(r));
    }
    return CLI_EXIT_OK;
}

static int user_key_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct store_user u;
    struct store_user_key k;
    struct admin_ctx ac;
    struct admin_err e;
    char *text = NULL;
    int rc;

    memset(&k, 0, sizeof(k));
    rc = cli_parse(ctx, argc, argv, NULL, "NAME PUBKEY_FILE", pos);
    if (rc != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_get_user(ctx, pos[0], &u)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((rc = user_key_read(pos[1], &text)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_user_key_add(&ac, &u, text, &k, &e) != ERR_OK) {
        rc = e.code == ERR_INVALID ? cli_error("%s: %s", pos[1], e.msg)
                                   : cli_error("%s", e.msg);
    } else {
        printf("%s\n", k.id);
        rc = CLI_EXIT_OK;
    }
    store_user_key_clear(&k);
    free(text);
    return rc;
}

static int user_key_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool json = false;
    const struct cli_opt opts[] = {CLI_OPT_FLAG("--json", &json), CLI_OPT_END};
    struct store_user u;
    struct store_user_key *list = NULL;
    size_t n = 0;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_get_user(ctx, pos[0], &u)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_user_key_list(ctx->st, u.id, &list, &n)) != ERR_OK) {
        return cli_error("cannot list keys: %s", err_str(r));
    }
    rc = cli_fields_list(admin_key_fields, list, n, sizeof(*list), json);
    store_user_key_list_free(list, n);
    return rc;
}

static int user_key_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct store_user u;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    rc = cli_parse(ctx, argc, argv, NULL, "NAME KEY_ID|FINGERPRINT", pos);
    if (rc != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_get_user(ctx, pos[0], &u)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_user_key_delete(&ac, &u, pos[1], &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

/* --- listing --- */

static int user_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    struct store_user *list = NULL;
    size_t n = 0;
    int rc, r;

    if ((rc = cli_list_start(ctx, argc, argv, &json)) != CLI_PARSED) {
        return rc;
    }
    if ((r = store_user_list(ctx->st, &list, &n)) != ERR_OK) {
        return cli_error("cannot list users: %s", err_str(r));
    }
    rc = cli_fields_list(admin_user_fields, list, n, sizeof(*list), json);
    store_user_list_free(list, n);
    return rc;
}

/* Names of a list of groups or profiles, joined for `show`. */
static void user_join(char *out, size_t outlen, const char *name)
{
    size_t len = strlen(out);

    snprintf(out + len, outlen - len, "%s%s", len > 0 ? ", " : "", name);
}

static int user_show_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    bool json = false;
    const struct cli_opt opts[] = {CLI_OPT_FLAG("--json", &json), CLI_OPT_END};
    struct store_user u;
    struct store_group *groups = NULL;
    struct store_profile *profiles = NULL;
    size_t ngroups = 0, nprofiles = 0, i;
    json_t *obj;
    char created[32], gnames[2048] = "", pnames[2048] = "";
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "NAME", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_get_user(ctx, pos[0], &u)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_user_groups(ctx->st, u.id, &groups, &ngroups)) != ERR_OK ||
        (r = store_user_profiles(ctx->st, u.id, &profiles, &nprofiles)) !=
            ERR_OK) {
        rc = cli_error("cannot read user '%s': %s", u.name, err_str(r));
        goto out;
    }
    if (json) {
        if ((r = admin_user_detail_json(ctx->st, &u, &obj)) != ERR_OK) {
            rc = cli_error("cannot read user '%s': %s", u.name, err_str(r));
            goto out;
        }
        rc = cli_json_print(obj);
        goto out;
    }
    for (i = 0; i < ngroups; i++) {
        user_join(gnames, sizeof(gnames), groups[i].name);
    }
    for (i = 0; i < nprofiles; i++) {
        user_join(pnames, sizeof(pnames), profiles[i].name);
    }
    cli_fmt_time(u.created_at, created, sizeof(created));
    cli_show("id", u.id);
    cli_show("name", u.name);
    cli_show("disabled", u.disabled ? "yes" : "no");
    cli_show("totp_enabled", u.totp_enabled ? "yes" : "no");
    cli_show("has_password", u.password_hash[0] != '\0' ? "yes" : "no");
    cli_show("created_at", created);
    cli_show("groups", gnames);
    cli_show("profiles", pnames);
    rc = CLI_EXIT_OK;
out:
    store_list_free(groups);
    store_list_free(profiles);
    return rc;
}

static int user_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct store_user u;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "NAME", pos)) != CLI_PARSED ||
        (rc = cli_get_user(ctx, pos[0], &u)) != CLI_EXIT_OK ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_user_delete(&ac, &u, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    return CLI_EXIT_OK;
}

/* --- the tree --- */

static const struct cli_cmd user_add_cmd = {
    .name = "add",
    .synopsis = "user add NAME [--password-stdin] [--disabled]",
    .summary = "Create a user.",
    .details = "Options:\n"
               "  --password-stdin  read the password from one line of "
               "standard input\n"
               "  --disabled        create the user disabled\n",
    .run = user_add_run,
};
static const struct cli_cmd user_passwd_cmd = {
    .name = "passwd",
    .synopsis = "user passwd NAME --password-stdin",
    .summary = "Set a user's password, read from one line of standard input.",
    .run = user_passwd_run,
};
static const struct cli_cmd user_enable_cmd = {
    .name = "enable",
    .synopsis = "user enable NAME",
    .summary = "Allow a user to log in again.",
    .run = user_enable_run,
};
static const struct cli_cmd user_disable_cmd = {
    .name = "disable",
    .synopsis = "user disable NAME",
    .summary = "Refuse every login of a user.",
    .run = user_disable_run,
};
static const struct cli_cmd user_totp_cmd = {
    .name = "totp",
    .synopsis = "user totp NAME --enable|--disable",
    .summary = "Turn TOTP on (with a new secret) or off for a user.",
    .details = "--enable prints the new secret once, as secret=BASE32 and\n"
               "uri=otpauth://... lines for an authenticator app; logins then\n"
               "need the 6-digit code.\n",
    .run = user_totp_run,
};
static const struct cli_cmd user_key_add_cmd = {
    .name = "add",
    .synopsis = "user key add NAME PUBKEY_FILE",
    .summary =
        "Register an SSH public key (one \"TYPE BASE64 [COMMENT]\" line; - "
        "reads stdin).",
    .details = "Prints the new key's ID.\n",
    .run = user_key_add_run,
};
static const struct cli_cmd user_key_list_cmd = {
    .name = "list",
    .synopsis = "user key list NAME [--json]",
    .summary = "List a user's public keys.",
    .run = user_key_list_run,
};
static const struct cli_cmd user_key_delete_cmd = {
    .name = "delete",
    .synopsis = "user key delete NAME KEY_ID|FINGERPRINT",
    .summary = "Remove one of a user's public keys.",
    .run = user_key_delete_run,
};
static const struct cli_cmd *const user_key_cmds[] = {
    &user_key_add_cmd, &user_key_list_cmd, &user_key_delete_cmd, NULL};
static const struct cli_cmd user_key_cmd = {
    .name = "key",
    .summary = "Manage a user's SSH public keys.",
    .sub = user_key_cmds,
};
static const struct cli_cmd user_list_cmd = {
    .name = "list",
    .synopsis = "user list [--json]",
    .summary = "List users.",
    .run = user_list_run,
};
static const struct cli_cmd user_show_cmd = {
    .name = "show",
    .synopsis = "user show NAME [--json]",
    .summary = "Show a user with their groups and access profiles.",
    .run = user_show_run,
};
static const struct cli_cmd user_delete_cmd = {
    .name = "delete",
    .synopsis = "user delete NAME",
    .summary = "Delete a user.",
    .run = user_delete_run,
};
static const struct cli_cmd *const user_cmds[] = {
    &user_add_cmd,    &user_passwd_cmd,
    &user_enable_cmd, &user_disable_cmd,
    &user_totp_cmd,   &user_key_cmd,
    &user_list_cmd,   &user_show_cmd,
    &user_delete_cmd, NULL};

const struct cli_cmd cli_user = {
    .name = "user",
    .summary = "Manage users, their passwords, TOTP and SSH keys.",
    .details = "NAME is a user's name or ID.\n",
    .sub = user_cmds,
};
