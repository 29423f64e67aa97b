"""Every way a session is refused, as the user sees it (OpenSSH's
"Permission denied" for authentication, one `portcullis: ...` line on
stderr after it) and as the session report records it."""

import subprocess
import time

import pytest

from pclib import (EchoServer, echo_roundtrip, fresh_totp_code, free_port,
                   keygen, key_fingerprint, stop_process, totp_wrong_code,
                   uniq, wait_listen)


def assert_auth_failed(r):
    assert r.rc == 255, r
    assert "Permission denied" in r.err, r
    assert "login-ok" not in r.out


def assert_refused(r, message):
    """Refused after authentication: non-zero exit, exactly one line
    starting `portcullis: ` that contains message, nothing ran."""
    assert r.rc != 0, r
    lines = r.portcullis_lines()
    assert len(lines) == 1, r
    assert message in lines[0], r
    assert "login-ok" not in r.out
    return lines[0]


def new_user(proxy, totp=False, disabled=False):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw, disabled=disabled)
    secret = proxy.totp_enable(user) if totp else None
    return user, pw, secret


@pytest.fixture
def allowed(proxy, target):
    """A user allowed on a root asset: (user, password, asset_id)."""
    user, pw, _ = new_user(proxy)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    return user, pw, asset_id


# ------------------------------------------------------ authentication

@pytest.mark.core
def test_wrong_password(proxy, ssh_client, allowed):
    user, pw, asset_id = allowed
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password=pw + "x")
    assert_auth_failed(r)
    proxy.session_of(user, "denied: authentication failed")


def test_unknown_user(proxy, target, ssh_client):
    user = uniq("ghost")
    asset_id = proxy.target_asset(target)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password="whatever")
    assert_auth_failed(r)
    proxy.session_of(user, "denied: authentication failed")


def test_unregistered_public_key(proxy, ssh_client, allowed, tmp_path):
    user, _, asset_id = allowed
    proxy.key_add(user, str(keygen(tmp_path / "registered")) + ".pub")
    other = keygen(tmp_path / "other")
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       key=other, methods="publickey")
    assert_auth_failed(r)
    proxy.session_of(user, "denied: authentication failed")


@pytest.mark.core
def test_disabled_user(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy, disabled=True)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password=pw)
    assert_auth_failed(r)
    proxy.session_of(user, "denied: user disabled")


def test_wrong_totp_in_login(proxy, target, ssh_client):
    user, pw, secret = new_user(proxy, totp=True)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s?%s#%s" % (user, totp_wrong_code(secret),
                                     asset_id), "echo login-ok", password=pw)
    assert_auth_failed(r)
    proxy.session_of(user, "denied: wrong TOTP code")


def test_wrong_totp_keyboard_interactive(proxy, target, ssh_client):
    user, pw, secret = new_user(proxy, totp=True)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password=pw, totp=totp_wrong_code(secret))
    assert_auth_failed(r)
    proxy.session_of(user, "denied: wrong TOTP code")


def test_missing_totp(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy, totp=True)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password=pw, totp="")
    assert_auth_failed(r)
    row = proxy.session_of(user, "denied: ")
    assert row["result"].startswith("denied: ")


@pytest.mark.core
def test_replayed_totp(proxy, target, ssh_client):
    user, pw, secret = new_user(proxy, totp=True)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    code = fresh_totp_code(secret, min_left=10)
    login = "%s?%s#%s" % (user, code, asset_id)
    first = ssh_client.ssh(login, "echo login-ok", password=pw)
    assert first.rc == 0 and "login-ok" in first.out, first
    second = ssh_client.ssh(login, "echo login-ok", password=pw)
    assert_auth_failed(second)
    proxy.session_of(user, "denied: TOTP code already used")


# ------------------------------------------------------- authorization

@pytest.mark.core
def test_no_role_on_the_asset(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy)
    asset_id = proxy.target_asset(target)
    proxy.profile_assign(proxy.profile_add(), user=user)  # no grant
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password=pw)
    assert_refused(r, "portcullis: access denied: you have no role on "
                   "this asset")
    proxy.session_of(user, "denied: you have no role on this asset")


def test_no_access_profile(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy)
    asset_id = proxy.target_asset(target)
    proxy.grant(asset_id, user=user)  # no profile
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password=pw)
    assert_refused(r, "portcullis: access denied: no access profile allows "
                   "native sessions")
    proxy.session_of(user, "denied: no access profile allows native "
                     "sessions")


@pytest.mark.core
def test_deny_profile_wins(proxy, target, ssh_client):
    """An allow profile of the user's own and a deny profile through a
    group: the deny wins."""
    user, pw, _ = new_user(proxy)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    group = uniq("g")
    proxy.cli("group", "add", group)
    proxy.cli("group", "member", "add", group, user)
    proxy.profile_assign(proxy.profile_add(native="deny"), group=group)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password=pw)
    assert_refused(r, "portcullis: access denied: an access profile denies "
                   "native sessions")
    proxy.session_of(user, "denied: an access profile denies native "
                     "sessions")


@pytest.mark.core
def test_exec_switched_off(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, flags=("--no-exec",))
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password=pw)
    assert_refused(r, "portcullis: access denied: your access profile does "
                   "not allow exec sessions")
    proxy.session_of(user, "denied: your access profile does not allow "
                     "exec sessions", kind="exec")


def test_shell_switched_off(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, flags=("--no-shell",))
    r = ssh_client.ssh("%s#%s" % (user, asset_id), None, password=pw,
                       input="echo login-ok\n")
    assert_refused(r, "portcullis: access denied: your access profile does "
                   "not allow shell sessions")
    proxy.session_of(user, "denied: your access profile does not allow "
                     "shell sessions", kind="shell")


def test_sftp_switched_off(proxy, target, ssh_client, tmp_path):
    user = proxy.user_add()
    key = keygen(tmp_path / "k")
    proxy.key_add(user, str(key) + ".pub")
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, flags=("--no-sftp",))
    batch = tmp_path / "batch"
    batch.write_text("ls /\n")
    r = ssh_client.sftp("%s#%s" % (user, asset_id), batch, key=key)
    assert r.rc != 0, r
    proxy.session_of(user, "denied: your access profile does not allow "
                     "sftp sessions", kind="sftp")


SCP_ONLY = ("--no-shell", "--no-exec", "--no-sftp")


@pytest.mark.parametrize("command", [
    "scp -f /etc/hostname; echo login-ok",
    "scp -t /tmp && echo login-ok",
    "scp -t $(echo login-ok >&2)",
    "scp -f /etc/hostname\necho login-ok",
    "scp -S /bin/echo -t /tmp",
])
def test_scp_only_profile_refuses_commands_dressed_as_scp(
        proxy, target, ssh_client, command):
    """Issue 11, defect 1: an exec that merely starts like scp used to be
    classified as scp and sent whole to the target's shell, so an
    scp-only profile ran any command (unrecorded). Now it is an exec,
    refused by the exec switch, with its report row."""
    user, pw, _ = new_user(proxy)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, flags=SCP_ONLY)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), command, password=pw)
    assert_refused(r, "portcullis: access denied: your access profile does "
                   "not allow exec sessions")
    assert "login-ok" not in r.err
    row = proxy.session_of(user, "denied: your access profile does not "
                           "allow exec sessions", kind="exec")
    assert row["detail"] == command, row


@pytest.mark.timing
def test_idle_timeout_ends_a_quiet_session_only(proxy, target, ssh_client):
    """Issue 11, defect 9: idle_timeout_minutes was stored and ignored. A
    session that moves no byte for a minute is ended with one line and
    its row says why; one that prints every 10 s outlives the minute. In
    the same minute, max_session_minutes ends a busy session (its first
    test) and the same user's `ssh -N -R` forward (a connection with no
    channel of its own: the target's connections to the forwarded port
    are refused from then on). Minutes are the profile's only unit: this
    waits for the clock."""
    user, pw, _ = new_user(proxy)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, flags=("--idle-timeout-minutes", "1"))
    login = "%s#%s" % (user, asset_id)
    capped, capped_pw, _ = new_user(proxy)
    proxy.allow(capped, asset_id, flags=("--max-session-minutes", "1",
                                         "--remote-forward"))
    quiet_cmd = "sleep 150; echo login-ok"
    # 70 s: ten past the minute the quiet one gets (its idle time and the
    # capped one's limit end at about 60 s)
    busy_cmd = "for i in 1 2 3 4 5 6 7; do echo tick; sleep 10; done"
    started = time.monotonic()
    quiet = ssh_client.popen_ssh(login, quiet_cmd, password=pw)
    busy = ssh_client.popen_ssh(login, busy_cmd, password=pw)
    long = ssh_client.popen_ssh("%s#%s" % (capped, asset_id), busy_cmd,
                                password=capped_pw)
    # and an `ssh -N -R` of the capped user: no channel of its own, but
    # its forward ends with the limit too
    echo, rport = EchoServer(), free_port()
    fwd = ssh_client.popen_ssh(
        "%s#%s" % (capped, asset_id), password=capped_pw,
        extra=["-N", "-R", "127.0.0.1:%d:127.0.0.1:%d" % (rport, echo.port)])
    try:
        assert wait_listen(rport, 20, fwd), fwd.communicate(timeout=5)
        echo_roundtrip(rport, 1024)
        out, err = quiet.communicate(timeout=120)
        quiet_took = time.monotonic() - started
        long_out, long_err = long.communicate(timeout=120)
        long_took = time.monotonic() - started
        busy_out, busy_err = busy.communicate(timeout=120)
        proxy.session_of(capped, "ok: session time limit reached",
                         kind="forward")
        # the target still listens (its connection lives on), but what
        # reaches it is refused: nothing comes back
        with pytest.raises((AssertionError, ConnectionError)):
            echo_roundtrip(rport, 1024)
    except subprocess.TimeoutExpired:
        pytest.fail("a session outlived its idle timeout or time limit")
    finally:
        for p in (quiet, busy, long, fwd):
            if p.poll() is None:
                stop_process(p)
        echo.close()

    def portcullis_lines(err):
        return [l for l in err.decode(errors="replace").splitlines()
                if l.startswith("portcullis: ")]

    assert quiet.returncode != 0, err
    assert 55 <= quiet_took <= 90, quiet_took
    assert b"login-ok" not in out
    assert portcullis_lines(err) == [
        "portcullis: session closed: idle for 1 minute"], err
    assert busy.returncode == 0, busy_err
    assert busy_out.split() == [b"tick"] * 7
    row = proxy.session_of(user, "ok: idle timeout", kind="exec")
    assert row["detail"] == quiet_cmd, row
    row = proxy.wait_session(lambda r: r.get("user") == user and
                             r.get("detail") == busy_cmd)
    assert row["result"] == "ok", row

    assert long.returncode != 0, long_err
    assert 55 <= long_took <= 90, long_took
    assert 5 <= len(long_out.split()) <= 7, long_out
    assert portcullis_lines(long_err) == [
        "portcullis: session time limit reached"], long_err
    proxy.session_of(capped, "ok: session time limit reached", kind="exec")


def test_unknown_asset(proxy, ssh_client):
    user, pw, _ = new_user(proxy)
    proxy.profile_assign(proxy.profile_add(), user=user)
    name = uniq("nosuch")
    r = ssh_client.ssh("%s#%s" % (user, name), "echo login-ok", password=pw)
    assert_refused(r, "portcullis: unknown asset '%s'" % name)
    proxy.session_of(user, "denied: unknown asset")


def test_asset_of_a_sub_site_is_unknown_without_the_site(proxy, target,
                                                         ssh_client):
    site = "/root/" + uniq("S")
    proxy.cli("site", "add", site)
    user, pw, _ = new_user(proxy)
    name = uniq("a")
    asset_id = proxy.target_asset(target, name=name, site=site)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#%s" % (user, name), "echo login-ok", password=pw)
    assert_refused(r, "portcullis: unknown asset '%s'" % name)
    proxy.session_of(user, "denied: unknown asset")


@pytest.mark.core
def test_ambiguous_asset_name(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy)
    name = "Twin " + uniq("")
    first = proxy.target_asset(target, name=name)
    second = proxy.target_asset(target, name=name)
    proxy.allow(user, first)
    proxy.grant(second, user=user)
    r = ssh_client.ssh("%s#%s" % (user, name), "echo login-ok", password=pw)
    line = assert_refused(r, "portcullis: asset name '%s' is ambiguous: "
                          "matches " % name)
    assert first in line and second in line, line
    assert "use the asset ID" in line
    proxy.session_of(user, "denied: ambiguous asset name")
    # An ID always matches exactly.
    r = ssh_client.ssh("%s#%s" % (user, second), "echo login-ok",
                       password=pw)
    assert r.rc == 0 and "login-ok" in r.out, r


# ------------------------------------------------------------- upstream

def test_target_down(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy)
    asset_id = proxy.asset_add(uniq("down"), "127.0.0.1", free_port(),
                               "root", key=target.key)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password=pw)
    assert_refused(r, "portcullis: cannot reach asset")
    proxy.session_of(user, "error: cannot reach asset")


def test_host_key_changed_then_retrust(proxy, target, ssh_client, tmp_path):
    user, pw, _ = new_user(proxy)
    wrong = key_fingerprint(str(keygen(tmp_path / "notthetarget")) + ".pub")
    asset_id = proxy.asset_add(uniq("a"), target.host, target.port, "root",
                               key=target.key, fingerprint=wrong)
    proxy.allow(user, asset_id)
    login = "%s#%s" % (user, asset_id)
    r = ssh_client.ssh(login, "echo login-ok", password=pw)
    line = assert_refused(r, "portcullis: host key of asset ")
    assert "has changed" in line
    proxy.session_of(user, "error: host key changed")
    proxy.cli("asset", "retrust", asset_id)
    r = ssh_client.ssh(login, "echo login-ok", password=pw)
    assert r.rc == 0 and "login-ok" in r.out, r
    _, out, _ = proxy.cli("asset", "show", asset_id)
    assert target.fingerprint in out
