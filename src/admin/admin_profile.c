/*
 * Access profiles: the model of a noun as one descriptor table plus its
 * rules. admin_profile_fields drives the JSON of `profile list --json`
 * and of /api/v1/access-profiles, and the API's create and PATCH; the
 * rules the table cannot say (record_input needs native record, files on
 * the RDP clipboard need the clipboard) are in
 * admin_profile_check, which every create and update passes.
 */
#include "admin/admin.h"

#include <stddef.h>
#include <string.h>

#include "common/err.h"

#define PF(j, t, m, ...) ADMIN_FIELD(struct store_profile, j, t, m, __VA_ARGS__)
#define PF_BOOL(j, c, m) PF(j, AF_BOOL, m, .cli = (c))
#define PF_MIN(j, c, m)                                                        \
    PF(j, AF_INT, m, .cli = (c), .lo = 0, .hi = ADMIN_MINUTES_MAX)

/* The table's CHANNELS: the channels a profile allows, "shell,exec". */
static json_t *profile_channels(const void *obj)
{
    const struct store_profile *p = obj;
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
        {p->rdp, "rdp"},
    };
    json_t *a = json_array();
    size_t i;

    for (i = 0; a != NULL && i < sizeof(ch) / sizeof(ch[0]); i++) {
        if (ch[i].on) {
            json_array_append_new(a, json_string(ch[i].name));
        }
    }
    return a;
}

/* A limit in the table: "-" for none. */
static json_t *profile_minutes(int m)
{
    return m > 0 ? json_integer(m) : json_null();
}

static json_t *profile_max(const void *obj)
{
    return profile_minutes(
        ((const struct store_profile *)obj)->max_session_minutes);
}

static json_t *profile_idle(const void *obj)
{
    return profile_minutes(
        ((const struct store_profile *)obj)->idle_timeout_minutes);
}

const struct admin_field admin_profile_fields[] = {
    PF("id", AF_STR, id, .flags = AF_READONLY, .col = "ID"),
    PF("name", AF_STR, name, .flags = AF_REQUIRED, .cli = "NAME",
       .col = "NAME"),
    PF("native_session", AF_NATIVE, native, .in = "native",
       .flags = AF_REQUIRED, .cli = "--native", .col = "NATIVE"),
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
    PF_BOOL("rdp_clipboard_text", "--no-rdp-clipboard-text",
            rdp_clipboard_text),
    PF_BOOL("rdp_clipboard_files", "--rdp-clipboard-files",
            rdp_clipboard_files),
    PF_BOOL("rdp_audio", "--no-rdp-audio", rdp_audio),
    PF_BOOL("rdp_drive", "--rdp-drive", rdp_drive),
    PF_BOOL("rdp_printer", "--rdp-printer", rdp_printer),
    PF_BOOL("rdp", "--no-rdp", rdp),
    ADMIN_FIELD_FN("channels", profile_channels, .flags = AF_NOJSON,
                   .col = "CHANNELS"),
    ADMIN_FIELD_FN("max_min", profile_max, .flags = AF_NOJSON,
                   .col = "MAX_MIN"),
    ADMIN_FIELD_FN("idle_min", profile_idle, .flags = AF_NOJSON,
                   .col = "IDLE_MIN"),
    ADMIN_FIELD_END,
};

void admin_profile_defaults(struct store_profile *p)
{
    memset(p, 0, sizeof(*p));
    p->native = NATIVE_DENY;
    p->shell = p->exec = p->sftp = p->scp = true;
    p->rdp_clipboard_text = p->rdp_audio = true;
    p->rdp = true;
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
    if (p->rdp_clipboard_files && !p->rdp_clipboard_text) {
        return admin_fail(e, ERR_INVALID,
                          "clipboard files need the clipboard (text) on");
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

int admin_profile_add(const struct admin_ctx *c, struct store_profile *p,
                      struct admin_err *e)
{
    int r = admin_profile_write(c->st, p, true, e);

    return r != ERR_OK ? r : admin_audit(c, "profile.add", p->name, NULL, e);
}

int admin_profile_update(const struct admin_ctx *c,
                         const struct store_profile *p, struct admin_err *e)
{
    struct store_profile copy = *p;
    int r = admin_profile_write(c->st, &copy, false, e);

    return r != ERR_OK ? r : admin_audit(c, "profile.update", p->name, NULL, e);
}

int admin_profile_delete(const struct admin_ctx *c,
                         const struct store_profile *p, struct admin_err *e)
{
    int r = store_profile_delete(c->st, p->id);

    if (r != ERR_OK) {
        return admin_fail(e, r,
                          r == ERR_NOT_FOUND ? "profile '%s' not found"
                                             : "profile '%s' cannot be deleted",
                          p->name);
    }
    return admin_audit(c, "profile.delete", p->name, NULL, e);
}

int admin_profile_assign(const struct admin_ctx *c,
                         const struct store_profile *p, const char *user_id,
                         const char *group_id, const char *who, bool assign,
                         struct admin_err *e)
{
    char detail[STORE_NAME_MAX + 8];
    int r = assign ? store_profile_assign(c->st, p->id, user_id, group_id)
                   : store_profile_unassign(c->st, p->id, user_id, group_id);

    if (r == ERR_EXISTS) {
        return admin_fail(e, r, "profile '%s' is already assigned to %s '%s'",
                          p->name, user_id != NULL ? "user" : "group", who);
    }
    if (r == ERR_NOT_FOUND) {
        return admin_fail(e, r, "profile '%s' is not assigned to %s '%s'",
                          p->name, user_id != NULL ? "user" : "group", who);
    }
    if (r != ERR_OK) {
        return admin_fail(e, r, "profile '%s': %s", p->name, err_str(r));
    }
    snprintf(detail, sizeof(detail), "%s=%s",
             user_id != NULL ? "user" : "group", who);
    return admin_audit(c, assign ? "profile.assign" : "profile.unassign",
                       p->name, detail, e);
}

json_t *admin_profile_json(const struct store_profile *p)
{
    return admin_json_encode(admin_profile_fields, p);
}

int admin_profile_assignees(const struct admin_ctx *c,
                            const struct store_profile *p, json_t **out,
                            struct admin_err *e)
{
    struct store_assignee *list = NULL;
    size_t n = 0;
    json_t *arr;
    int r;

    *out = NULL;
    if ((r = store_profile_assignees(c->st, p->id, &list, &n)) != ERR_OK) {
        return admin_fail(e, r, "profile '%s': cannot read its assignments: %s",
                          p->name, err_str(r));
    }
    if ((arr = json_array()) == NULL) {
        store_list_free(list);
        return admin_fail(e, ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "kind",
                            json_string(list[i].group ? "group" : "user"));
        json_object_set_new(o, "id", json_string(list[i].id));
        json_object_set_new(o, "name", admin_json_text(list[i].name));
        json_array_append_new(arr, o);
    }
    store_list_free(list);
    *out = arr;
    return ERR_OK;
}
