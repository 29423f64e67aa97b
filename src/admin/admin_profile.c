/*
 * Access profiles: the model of a noun as one descriptor table plus its
 * rules. admin_profile_fields drives the JSON of `profile list --json`
 * and of /api/v1/access-profiles, and the API's create and PATCH; the
 * rules the table cannot say (record_input needs native record) are in
 * admin_profile_check, which every create and update passes.
 */
#include "admin/admin.h"

#include <stddef.h>
#include <string.h>

#include "common/err.h"

#define PF_BOOL(j, c, m)                                                       \
    {                                                                          \
        j, NULL, c, AF_BOOL, offsetof(struct store_profile, m), sizeof(bool),  \
            0, 0, 0                                                            \
    }
#define PF_MIN(j, c, m)                                                        \
    {                                                                          \
        j, NULL, c, AF_INT, offsetof(struct store_profile, m), sizeof(int), 0, \
            0, ADMIN_MINUTES_MAX                                               \
    }

const struct admin_field admin_profile_fields[] = {
    {"id", NULL, NULL, AF_STR, offsetof(struct store_profile, id),
     STORE_ID_MAX + 1, AF_READONLY, 0, 0},
    {"name", NULL, "NAME", AF_STR, offsetof(struct store_profile, name),
     STORE_NAME_MAX + 1, AF_REQUIRED, 0, 0},
    {"native_session", "native", "--native", AF_NATIVE,
     offsetof(struct store_profile, native), sizeof(int), AF_REQUIRED, 0, 0},
    PF_BOOL("shell", "--no-shell", shell),
    PF_BOOL("exec", "--no-exec", exec),
    PF_BOOL("sftp", "--no-sftp", sftp),
    PF_BOOL("scp", "--no-scp", scp),
    PF_BOOL("local_forward", "--local-forward", local_forward),
    PF_BOOL("remote_forward", "--remote-forward", remote_forward),
    PF_BOOL("agent_forward", "--agent-forward", agent_forward),
    PF_BOOL("x11", "--x11", x11),
    PF_MIN("max_session_minutes", "--max-session-minutes", max_session_minutes),
    PF_MIN("idle_timeout_minutes", "--idle-timeout-minutes",
           idle_timeout_minutes),
    PF_BOOL("record_input", "--record-input", record_input),
    {NULL, NULL, NULL, AF_STR, 0, 0, 0, 0, 0},
};

void admin_profile_defaults(struct store_profile *p)
{
    memset(p, 0, sizeof(*p));
    p->native = NATIVE_DENY;
    p->shell = p->exec = p->sftp = p->scp = true;
}

int admin_profile_check(const struct store_profile *p, struct admin_err *e)
{
    if (p->name[0] == '\0' || strlen(p->name) > STORE_NAME_MAX) {
        return admin_fail(e, ERR_INVALID, "a profile name is 1-%d characters",
                          STORE_NAME_MAX);
    }
    if (p->native != NATIVE_DENY && p->native != NATIVE_ALLOW &&
        p->native != NATIVE_RECORD) {
        return admin_fail(e, ERR_INVALID,
                          "native session must be deny, allow or record");
    }
    if (p->max_session_minutes < 0 ||
        p->max_session_minutes > ADMIN_MINUTES_MAX ||
        p->idle_timeout_minutes < 0 ||
        p->idle_timeout_minutes > ADMIN_MINUTES_MAX) {
        return admin_fail(e, ERR_INVALID,
                          "session and idle limits are 0-%d minutes",
                          ADMIN_MINUTES_MAX);
    }
    if (p->record_input && p->native != NATIVE_RECORD) {
        return admin_fail(e, ERR_INVALID,
                          "record input needs native sessions set to record");
    }
    return ERR_OK;
}

static int admin_profile_write(struct store *st, struct store_profile *p,
                               bool add, struct admin_err *e)
{
    int r;

    if ((r = admin_profile_check(p, e)) != ERR_OK) {
        return r;
    }
    r = add ? store_profile_add(st, p) : store_profile_update(st, p);
    if (r == ERR_EXISTS) {
        return admin_fail(e, r, "profile '%s' already exists", p->name);
    }
    if (r == ERR_NOT_FOUND) {
        return admin_fail(e, r, "profile '%s' not found", p->name);
    }
    if (r != ERR_OK) {
        return admin_fail(e, r, "profile '%s': %s", p->name, err_str(r));
    }
    return ERR_OK;
}

int admin_profile_add(struct store *st, struct store_profile *p,
                      struct admin_err *e)
{
    return admin_profile_write(st, p, true, e);
}

int admin_profile_update(struct store *st, const struct store_profile *p,
                         struct admin_err *e)
{
    struct store_profile copy = *p;

    return admin_profile_write(st, &copy, false, e);
}

json_t *admin_profile_json(const struct store_profile *p)
{
    return admin_json_encode(admin_profile_fields, p);
}
