/*
 * Unit tests for src/policy/policy.c: each rule of SPEC §4 with its exact
 * user-facing reason, the order the rules are checked in, and how several
 * profiles combine (deny wins, record wins, kinds OR together, the
 * smallest limit applies).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/policy.h"

/* A profile with native setting `native` and no channel kind on. */
static struct store_profile prof(int native)
{
    struct store_profile p;

    memset(&p, 0, sizeof(p));
    p.native = native;
    p.rdp = true;
    return p;
}

static struct store_profile prof_all(int native)
{
    struct store_profile p = prof(native);

    p.shell = p.exec = p.sftp = p.scp = true;
    p.local_forward = p.remote_forward = p.agent_forward = p.x11 = true;
    return p;
}

static void set_kind(struct store_profile *p, int kind, bool on)
{
    switch (kind) {
    case KIND_SHELL:
        p->shell = on;
        break;
    case KIND_EXEC:
        p->exec = on;
        break;
    case KIND_SFTP:
        p->sftp = on;
        break;
    case KIND_SCP:
        p->scp = on;
        break;
    case KIND_LOCAL_FORWARD:
        p->local_forward = on;
        break;
    case KIND_REMOTE_FORWARD:
        p->remote_forward = on;
        break;
    case KIND_AGENT_FORWARD:
        p->agent_forward = on;
        break;
    case KIND_X11:
        p->x11 = on;
        break;
    default:
        break;
    }
}

static void test_allowed(void **state)
{
    struct store_profile p = prof_all(NATIVE_ALLOW);
    struct policy_decision d;
    int role;

    (void)state;
    for (role = ROLE_VIEWER; role <= ROLE_OWNER; role++) {
        policy_decide(role, &p, 1, KIND_SHELL, &d);
        assert_true(d.allowed);
        assert_false(d.record);
        assert_string_equal(d.reason, "");
        assert_int_equal(d.max_session_minutes, 0);
        assert_int_equal(d.idle_timeout_minutes, 0);
    }
}

static void test_no_role(void **state)
{
    struct store_profile p[2] = {prof_all(NATIVE_ALLOW), prof(NATIVE_DENY)};
    struct policy_decision d;

    (void)state;
    policy_decide(ROLE_NONE, p, 1, KIND_SHELL, &d);
    assert_false(d.allowed);
    assert_string_equal(d.reason, "you have no role on this asset");
    /* Role is checked before anything else, deny included. */
    policy_decide(ROLE_NONE, p, 2, KIND_SHELL, &d);
    assert_string_equal(d.reason, "you have no role on this asset");
    policy_decide(-1, NULL, 0, KIND_SHELL, &d);
    assert_false(d.allowed);
    assert_string_equal(d.reason, "you have no role on this asset");
}

static void test_no_profile(void **state)
{
    struct policy_decision d;

    (void)state;
    policy_decide(ROLE_OWNER, NULL, 0, KIND_SHELL, &d);
    assert_false(d.allowed);
    assert_string_equal(d.reason, "no access profile allows native sessions");
}

static void test_deny_wins(void **state)
{
    struct store_profile p[3] = {prof_all(NATIVE_ALLOW), prof(NATIVE_DENY),
                                 prof_all(NATIVE_RECORD)};
    struct policy_decision d;

    (void)state;
    policy_decide(ROLE_VIEWER, &p[1], 1, KIND_SHELL, &d);
    assert_false(d.allowed);
    assert_string_equal(d.reason, "an access profile denies native sessions");
    policy_decide(ROLE_OWNER, p, 3, KIND_SHELL, &d);
    assert_false(d.allowed);
    assert_false(d.record);
    assert_string_equal(d.reason, "an access profile denies native sessions");
    /* Deny is checked before the channel kind. */
    p[0] = prof(NATIVE_ALLOW);
    policy_decide(ROLE_OWNER, p, 2, KIND_X11, &d);
    assert_string_equal(d.reason, "an access profile denies native sessions");
}

static void test_unknown_native_fails_closed(void **state)
{
    struct store_profile p[2] = {prof_all(NATIVE_ALLOW), prof_all(7)};
    struct policy_decision d;

    (void)state;
    policy_decide(ROLE_OWNER, p, 2, KIND_SHELL, &d);
    assert_false(d.allowed);
    assert_string_equal(d.reason, "an access profile denies native sessions");
}

/* An RDP session needs a role and a profile that allows native
 * sessions; no channel switch (docs/rdp.md). */
static void test_rdp_kind(void **state)
{
    struct store_profile p = prof(NATIVE_ALLOW);
    struct policy_decision d;

    (void)state;
    policy_decide(ROLE_VIEWER, &p, 1, KIND_RDP, &d);
    assert_true(d.allowed);
    assert_string_equal(policy_kind_str(KIND_RDP), "rdp");
    policy_decide(ROLE_NONE, &p, 1, KIND_RDP, &d);
    assert_false(d.allowed);
    p = prof(NATIVE_DENY);
    policy_decide(ROLE_OWNER, &p, 1, KIND_RDP, &d);
    assert_false(d.allowed);
    p = prof(NATIVE_RECORD);
    policy_decide(ROLE_VIEWER, &p, 1, KIND_RDP, &d);
    assert_true(d.allowed);
    assert_true(d.record);
}

/* RDP virtual channels: each on when one allowing profile switches it
 * on (as channel kinds combine); a denying profile refuses the session;
 * files never without the clipboard. */
static void test_rdp_channels(void **state)
{
    struct store_profile p[2] = {prof(NATIVE_ALLOW), prof(NATIVE_ALLOW)};
    struct policy_decision d;

    (void)state;
    policy_decide(ROLE_VIEWER, p, 2, KIND_RDP, &d);
    assert_true(d.allowed);
    assert_int_equal(d.rdp_channels, 0);
    p[0].rdp_clipboard_text = true;
    p[0].rdp_audio = true;
    p[1].rdp_drive = true;
    policy_decide(ROLE_VIEWER, p, 2, KIND_RDP, &d);
    assert_int_equal(d.rdp_channels, POLICY_RDP_CLIPBOARD | POLICY_RDP_AUDIO |
                                         POLICY_RDP_DRIVE);
    p[1].rdp_clipboard_files = true; /* files (a corrupt row) alone */
    p[0].rdp_clipboard_text = false;
    policy_decide(ROLE_VIEWER, p, 2, KIND_RDP, &d);
    assert_int_equal(d.rdp_channels, POLICY_RDP_AUDIO | POLICY_RDP_DRIVE);
    p[1].rdp_clipboard_text = true;
    p[1].rdp_printer = true;
    policy_decide(ROLE_VIEWER, p, 2, KIND_RDP, &d);
    assert_int_equal(d.rdp_channels, POLICY_RDP_CLIPBOARD |
                                         POLICY_RDP_CLIP_FILES |
                                         POLICY_RDP_AUDIO | POLICY_RDP_DRIVE |
                                         POLICY_RDP_PRINTER);
    /* a profile without RDP neither allows it nor widens its channels */
    p[1].rdp = false;
    policy_decide(ROLE_VIEWER, p, 2, KIND_RDP, &d);
    assert_true(d.allowed);
    assert_int_equal(d.rdp_channels, POLICY_RDP_AUDIO);
    p[0].rdp = false;
    policy_decide(ROLE_VIEWER, p, 2, KIND_RDP, &d);
    assert_false(d.allowed);
    assert_string_equal(d.reason,
                        "your access profile does not allow RDP sessions");
    p[0].rdp = p[1].rdp = true;
    p[0].native = NATIVE_DENY;
    policy_decide(ROLE_VIEWER, p, 2, KIND_RDP, &d);
    assert_false(d.allowed);
    assert_int_equal(d.rdp_channels, 0);
}

static void test_kind_messages(void **state)
{
    static const char *const words[KIND__COUNT] = {
        "shell",
        "exec",
        "sftp",
        "scp",
        "local port forwarding",
        "remote port forwarding",
        "agent forwarding",
        "X11 forwarding",
    };
    struct policy_decision d;
    char want[160];
    int k;

    (void)state;
    /* every kind with a switch of its own (KIND_RDP has none yet) */
    for (k = 0; k < KIND_RDP; k++) {
        /* Everything on except kind k. */
        struct store_profile p = prof_all(NATIVE_ALLOW);

        set_kind(&p, k, false);
        policy_decide(ROLE_VIEWER, &p, 1, k, &d);
        assert_false(d.allowed);
        snprintf(want, sizeof(want),
                 "your access profile does not allow %s sessions", words[k]);
        assert_string_equal(d.reason, want);

        /* Only kind k on: allowed for k. */
        p = prof(NATIVE_ALLOW);
        set_kind(&p, k, true);
        policy_decide(ROLE_VIEWER, &p, 1, k, &d);
        assert_true(d.allowed);
    }
}

static void test_kind_str(void **state)
{
    (void)state;
    assert_string_equal(policy_kind_str(KIND_SHELL), "shell");
    assert_string_equal(policy_kind_str(KIND_EXEC), "exec");
    assert_string_equal(policy_kind_str(KIND_SFTP), "sftp");
    assert_string_equal(policy_kind_str(KIND_SCP), "scp");
    assert_string_equal(policy_kind_str(KIND_LOCAL_FORWARD), "forward");
    assert_string_equal(policy_kind_str(KIND_REMOTE_FORWARD), "forward");
    assert_string_equal(policy_kind_str(KIND_AGENT_FORWARD), "agent");
    assert_string_equal(policy_kind_str(KIND_X11), "x11");
    assert_string_equal(policy_kind_str(KIND__COUNT), "unknown");
    assert_string_equal(policy_kind_str(-1), "unknown");
}

static void test_unknown_kind_refused(void **state)
{
    struct store_profile p = prof_all(NATIVE_ALLOW);
    struct policy_decision d;

    (void)state;
    policy_decide(ROLE_OWNER, &p, 1, KIND__COUNT, &d);
    assert_false(d.allowed);
    policy_decide(ROLE_OWNER, &p, 1, -1, &d);
    assert_false(d.allowed);
}

static void test_kinds_or_across_profiles(void **state)
{
    struct store_profile p[2] = {prof(NATIVE_ALLOW), prof(NATIVE_RECORD)};
    struct policy_decision d;

    (void)state;
    p[0].shell = true;
    p[1].sftp = true;
    policy_decide(ROLE_VIEWER, p, 2, KIND_SHELL, &d);
    assert_true(d.allowed);
    policy_decide(ROLE_VIEWER, p, 2, KIND_SFTP, &d);
    assert_true(d.allowed);
    policy_decide(ROLE_VIEWER, p, 2, KIND_SCP, &d);
    assert_false(d.allowed);
    assert_string_equal(d.reason,
                        "your access profile does not allow scp sessions");
}

static void test_record_wins(void **state)
{
    struct store_profile p[2] = {prof_all(NATIVE_ALLOW), prof(NATIVE_RECORD)};
    struct policy_decision d;

    (void)state;
    policy_decide(ROLE_VIEWER, p, 1, KIND_EXEC, &d);
    assert_true(d.allowed);
    assert_false(d.record);
    policy_decide(ROLE_VIEWER, p, 2, KIND_EXEC, &d);
    assert_true(d.allowed);
    assert_true(d.record);
    /* Order does not matter, and the recording profile need not be the
     * one that switches the kind on. */
    {
        struct store_profile q[2] = {p[1], p[0]};

        policy_decide(ROLE_VIEWER, q, 2, KIND_EXEC, &d);
        assert_true(d.allowed);
        assert_true(d.record);
    }
}

static void test_min_limits(void **state)
{
    struct store_profile p[3] = {prof_all(NATIVE_ALLOW), prof_all(NATIVE_ALLOW),
                                 prof_all(NATIVE_RECORD)};
    struct policy_decision d;

    (void)state;
    p[0].max_session_minutes = 60;
    p[0].idle_timeout_minutes = 0;
    p[1].max_session_minutes = 30;
    p[1].idle_timeout_minutes = 10;
    p[2].max_session_minutes = 0;
    p[2].idle_timeout_minutes = 5;
    policy_decide(ROLE_EDITOR, p, 3, KIND_SHELL, &d);
    assert_true(d.allowed);
    assert_int_equal(d.max_session_minutes, 30);
    assert_int_equal(d.idle_timeout_minutes, 5);

    /* Zero means none, so it never wins the minimum. */
    policy_decide(ROLE_EDITOR, &p[2], 1, KIND_SHELL, &d);
    assert_int_equal(d.max_session_minutes, 0);
    assert_int_equal(d.idle_timeout_minutes, 5);
    policy_decide(ROLE_EDITOR, p, 1, KIND_SHELL, &d);
    assert_int_equal(d.max_session_minutes, 60);
    assert_int_equal(d.idle_timeout_minutes, 0);
}

static void test_refusal_clears_everything(void **state)
{
    struct store_profile p[2] = {prof_all(NATIVE_RECORD), prof(NATIVE_DENY)};
    struct policy_decision d;

    (void)state;
    p[0].max_session_minutes = 5;
    memset(&d, 0xff, sizeof(d));
    policy_decide(ROLE_OWNER, p, 2, KIND_SHELL, &d);
    assert_false(d.allowed);
    assert_false(d.record);
    assert_int_equal(d.max_session_minutes, 0);
    assert_int_equal(d.idle_timeout_minutes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed),
        cmocka_unit_test(test_no_role),
        cmocka_unit_test(test_no_profile),
        cmocka_unit_test(test_deny_wins),
        cmocka_unit_test(test_unknown_native_fails_closed),
        cmocka_unit_test(test_kind_messages),
        cmocka_unit_test(test_rdp_kind),
        cmocka_unit_test(test_rdp_channels),
        cmocka_unit_test(test_kind_str),
        cmocka_unit_test(test_unknown_kind_refused),
        cmocka_unit_test(test_kinds_or_across_profiles),
        cmocka_unit_test(test_record_wins),
        cmocka_unit_test(test_min_limits),
        cmocka_unit_test(test_refusal_clears_everything),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
