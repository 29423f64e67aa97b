"""A user disabled or deleted while connected loses the connection and its
sessions (issue 11, defect 9): the monitor re-checks the user at every
new channel and sweeps live connections every few seconds."""

import subprocess
import time

import pytest

from pclib import uniq


def wait_open_row(proxy, user, timeout=20.0):
    """Waits until user has a session row that has not ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.get("user") == user and not r.get("result")
               for r in proxy.sessions()):
            return
        time.sleep(0.2)
    pytest.fail("no open session row of %s" % user)


@pytest.mark.parametrize("how", ["disable", "delete"])
def test_disabled_user_loses_live_session(proxy, target, ssh_client, tmp_path,
                                          how):
    password = "pw-" + uniq()
    user = proxy.user_add(password=password)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    p = ssh_client.popen_ssh("%s#%s" % (user, asset_id), "sleep 120",
                             password=password)
    try:
        wait_open_row(proxy, user)
        if how == "disable":
            proxy.cli("user", "disable", user)
        else:
            proxy.cli("user", "delete", user)
        t0 = time.monotonic()
        p.wait(timeout=15)
        assert time.monotonic() - t0 < 10
        assert p.returncode != 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    row = proxy.session_of(user)
    assert row["result"] == "error: user disabled", row


def test_disabled_user_opens_no_new_channel(proxy, target, ssh_client,
                                            tmp_path):
    """A multiplexed connection (OpenSSH ControlMaster) of a user who is
    then disabled runs nothing more."""
    password = "pw-" + uniq()
    user = proxy.user_add(password=password)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    sock = tmp_path / "cm"
    login = "%s#%s" % (user, asset_id)
    m = ssh_client.popen_ssh(login, None, password=password,
                             extra=["-M", "-S", str(sock), "-N"])
    try:
        deadline = time.monotonic() + 15
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sock.exists(), m.stderr.read() if m.poll() is not None else ""
        ok = ssh_client.ssh(login, "echo before", extra=["-S", str(sock)])
        assert "before" in ok.out, ok
        proxy.cli("user", "disable", user)
        r = ssh_client.ssh(login, "echo after-disable",
                           extra=["-S", str(sock)])
        assert "after-disable" not in r.out, r
        m.wait(timeout=15)
    finally:
        if m.poll() is None:
            m.kill()
            m.wait()
