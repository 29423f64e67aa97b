/*
 * "May user U open a channel of kind K on asset A?" as a pure function of
 * the user's best asset role and access profiles (fetched by the caller
 * from the store), so it can be unit-tested without a store.
 *
 * Rules (SPEC §4):
 *  - the user needs at least ROLE_VIEWER on the asset;
 *  - and at least one assigned profile with native allow or record;
 *  - a profile with native deny, assigned directly or via a group, wins
 *    over any allow (explicit deny);
 *  - the channel kind must be switched on in at least one allowing profile
 *    (shell, exec, sftp, scp, local_forward, ...);
 *  - the session is recorded if any allowing profile says record;
 *  - limits: the smallest non-zero max_session_minutes and
 *    idle_timeout_minutes of the allowing profiles;
 *  - an RDP session's virtual channels (POLICY_RDP_*) like the channel
 *    kinds: on if at least one allowing profile switches it on (a deny
 *    wins as above: it refuses the whole session).
 */
#ifndef PORTCULLIS_POLICY_H
#define PORTCULLIS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

enum policy_kind {
    KIND_SHELL = 0,
    KIND_EXEC,
    KIND_SFTP,
    KIND_SCP,
    KIND_LOCAL_FORWARD,
    KIND_REMOTE_FORWARD,
    KIND_AGENT_FORWARD,
    KIND_X11,
    KIND_RDP, /* a whole RDP session (rdpproxy/) */
    KIND__COUNT
};

/* Report name of a kind: "shell", "exec", "sftp", "scp", "forward", ... */
const char *policy_kind_str(int kind);

/* policy_decision.rdp_channels: what an RDP session may relay */
#define POLICY_RDP_CLIPBOARD 0x01u  /* cliprdr, every format but files */
#define POLICY_RDP_CLIP_FILES 0x02u /* files on the clipboard too */
#define POLICY_RDP_AUDIO 0x04u      /* rdpsnd: audio out */
#define POLICY_RDP_DRIVE 0x08u      /* rdpdr: drives */
#define POLICY_RDP_PRINTER 0x10u    /* rdpdr: printers */

struct policy_decision {
    bool allowed;
    bool record;
    bool record_input;        /* record what the user types too */
    int max_session_minutes;  /* 0 = unlimited */
    int idle_timeout_minutes; /* 0 = none */
    unsigned rdp_channels;    /* POLICY_RDP_* */
    char reason[160];         /* when refused: "no access profile allows native
                                 sessions", "no role on this asset", ... */
};

void policy_decide(int role, const struct store_profile *profiles,
                   size_t nprofiles, int kind, struct policy_decision *out);

#endif
