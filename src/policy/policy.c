/*
 * The native-session decision; see policy.h for the rules (SPEC §4).
 *
 * Kept pure, with no store and no clock, so every rule has a unit test and
 * the proxy, the web UI and the CLI's "explain" all decide alike. The
 * checks run in a fixed order (role, explicit deny, allow/record, channel
 * kind) so a refused user always sees the most basic reason first. The
 * reason strings are user-facing and appear in the session report; tests
 * match them exactly, so change them only together.
 *
 * Fail closed: a profile whose native setting is none of allow/record
 * (a corrupt row, a newer value this build does not know) counts as deny.
 */
#include "policy/policy.h"

#include <stdio.h>
#include <string.h>

/* The kind as the session report's `kind` column names it. */
static const char *const policy_kind_names[KIND__COUNT] = {
    [KIND_SHELL] = "shell",
    [KIND_EXEC] = "exec",
    [KIND_SFTP] = "sftp",
    [KIND_SCP] = "scp",
    [KIND_LOCAL_FORWARD] = "forward",
    [KIND_REMOTE_FORWARD] = "forward",
    [KIND_AGENT_FORWARD] = "agent",
    [KIND_X11] = "x11",
    [KIND_RDP] = "rdp",
};

/* The kind in a refusal message: "... does not allow <this> sessions". */
static const char *const policy_kind_words[KIND__COUNT] = {
    [KIND_SHELL] = "shell",
    [KIND_EXEC] = "exec",
    [KIND_SFTP] = "sftp",
    [KIND_SCP] = "scp",
    [KIND_LOCAL_FORWARD] = "local port forwarding",
    [KIND_REMOTE_FORWARD] = "remote port forwarding",
    [KIND_AGENT_FORWARD] = "agent forwarding",
    [KIND_X11] = "X11 forwarding",
    [KIND_RDP] = "RDP",
};

const char *policy_kind_str(int kind)
{
    if (kind < 0 || kind >= KIND__COUNT) {
        return "unknown";
    }
    return policy_kind_names[kind];
}

static bool policy_allows(const struct store_profile *p)
{
    return p->native == NATIVE_ALLOW || p->native == NATIVE_RECORD;
}

static bool policy_kind_on(const struct store_profile *p, int kind)
{
    switch (kind) {
    case KIND_SHELL:
        return p->shell;
    case KIND_EXEC:
        return p->exec;
    case KIND_SFTP:
        return p->sftp;
    case KIND_SCP:
        return p->scp;
    case KIND_LOCAL_FORWARD:
        return p->local_forward;
    case KIND_REMOTE_FORWARD:
        return p->remote_forward;
    case KIND_AGENT_FORWARD:
        return p->agent_forward;
    case KIND_X11:
        return p->x11;
    case KIND_RDP:
        return p->rdp;
    default:
        return false;
    }
}

/* The smaller of two limits where 0 (or less) means none. */
static int policy_min_limit(int cur, int add)
{
    if (add <= 0) {
        return cur;
    }
    if (cur <= 0 || add < cur) {
        return add;
    }
    return cur;
}

static void policy_refuse(struct policy_decision *out, const char *reason)
{
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

void policy_decide(int role, const struct store_profile *profiles,
                   size_t nprofiles, int kind, struct policy_decision *out)
{
    bool any_allow = false, kind_on = false, record = false, input = false;
    int max_minutes = 0, idle_minutes = 0;
    unsigned rdp = 0;
    size_t i;

    if (out == NULL) {
        return;
    }
    memset(out, 0, sizeof(*out));
    if (profiles == NULL) {
        nprofiles = 0;
    }
    if (role < ROLE_VIEWER) {
        policy_refuse(out, "you have no role on this asset");
        return;
    }
    for (i = 0; i < nprofiles; i++) {
        if (!policy_allows(&profiles[i])) {
            policy_refuse(out, "an access profile denies native sessions");
            return;
        }
    }
    for (i = 0; i < nprofiles; i++) {
        const struct store_profile *p = &profiles[i];

        any_allow = true;
        kind_on = kind_on || policy_kind_on(p, kind);
        record = record || p->native == NATIVE_RECORD;
        input = input || (p->native == NATIVE_RECORD && p->record_input);
        max_minutes = policy_min_limit(max_minutes, p->max_session_minutes);
        idle_minutes = policy_min_limit(idle_minutes, p->idle_timeout_minutes);
        if (p->rdp) {
            /* only a profile that allows RDP widens its channels */
            rdp |= (p->rdp_clipboard_text ? POLICY_RDP_CLIPBOARD : 0) |
                   (p->rdp_clipboard_files ? POLICY_RDP_CLIP_FILES : 0) |
                   (p->rdp_audio ? POLICY_RDP_AUDIO : 0) |
                   (p->rdp_drive ? POLICY_RDP_DRIVE : 0) |
                   (p->rdp_printer ? POLICY_RDP_PRINTER : 0);
        }
    }
    if (!any_allow) {
        policy_refuse(out, "no access profile allows native sessions");
        return;
    }
    if (kind < 0 || kind >= KIND__COUNT) {
        policy_refuse(out, "unknown channel kind");
        return;
    }
    if (!kind_on) {
        snprintf(out->reason, sizeof(out->reason),
                 "your access profile does not allow %s sessions",
                 policy_kind_words[kind]);
        return;
    }
    out->allowed = true;
    out->record = record;
    out->record_input = input;
    out->max_session_minutes = max_minutes;
    out->idle_timeout_minutes = idle_minutes;
    /* files travel on the clipboard: never without it */
    if (!(rdp & POLICY_RDP_CLIPBOARD)) {
        rdp &= ~POLICY_RDP_CLIP_FILES;
    }
    out->rdp_channels = rdp;
}
