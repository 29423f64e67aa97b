"""The access profile's `rdp` switch (issue 17: "authorize (asset role
viewer + access profile native allow/record, and an `rdp` channel
switch)"): RDP sessions at all, as shell, exec, sftp and scp are for SSH.
A profile made with `--no-rdp` lets its users use SSH and refuses RDP,
told to the client and in the report; the channels of a profile that
does not allow RDP do not widen what another profile allows.
"""
from pclib import Client
from test_rdp import (FAST, pytestmark, rdp_asset, rdp_proxy,  # noqa: F401
                      rdp_target, refused)


def test_profile_without_rdp_refuses_rdp_not_ssh(rdp_proxy, rdp_target,
                                                 target):
    pc = rdp_proxy
    asset = rdp_asset(pc, rdp_target)
    ssh_asset = pc.target_asset(target)
    user = pc.user_add(password="User-Pass-77")
    prof = pc.profile_add(flags=["--no-rdp"])
    pc.profile_assign(prof, user=user)
    pc.grant(asset, user=user)
    pc.grant(ssh_asset, user=user)
    r, took = refused(pc, "%s#%s" % (user, asset), "User-Pass-77")
    assert r.rc != 0 and took < FAST, (r, took)
    assert "ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES" in r.out + r.err, r
    row = pc.session_of(user, kind="rdp", result="denied")
    assert "does not allow RDP sessions" in row["result"], row
    # the same profile still lets SSH through
    r = Client(pc.ssh_port).ssh("%s#%s" % (user, ssh_asset), "echo ssh-ok",
                                password="User-Pass-77")
    assert r.rc == 0 and "ssh-ok" in r.out, r

