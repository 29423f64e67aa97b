"""What a session relays once it is allowed: an interactive shell on a pty,
exec with exit codes and separate stderr, a 100 MiB stdin/stdout round
trip, scp (legacy and SFTP mode), an sftp batch, and `ssh -L`."""

import os
import socket

import pytest

from pclib import (EchoServer, PtySession, echo_roundtrip, free_port, keygen,
                   make_file, sha256_file, stop_process, uniq, wait_listen)

MiB = 1 << 20


@pytest.fixture
def session_user(proxy, target):
    """A user with a password, allowed (all default channels) on a root
    asset of the target: (login, password, user, asset_id)."""
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    return "%s#%s" % (user, asset_id), pw, user, asset_id


@pytest.fixture
def key_user(proxy, target, tmp_path):
    """A user with a registered public key, allowed on a root asset:
    (login, key, user, asset_id)."""
    user = proxy.user_add()
    key = keygen(tmp_path / "userkey")
    proxy.key_add(user, str(key) + ".pub")
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    return "%s#%s" % (user, asset_id), key, user, asset_id


@pytest.mark.core
def test_shell_on_a_pty(proxy, ssh_client, session_user):
    login, pw, user, _ = session_user
    env = ssh_client.env(password=pw)
    env["TERM"] = "xterm"
    term = PtySession(ssh_client.ssh_args(login, extra=["-tt"]), env)
    try:
        term.write("echo $((6*7))\n")
        term.expect(rb"[\r\n]42\r?\n")
        term.write("exit\n")
        assert term.wait() == 0, term.buf[-2000:]
    finally:
        term.close()
    row = proxy.session_of(user, "ok", kind="shell")
    assert row["bytes_down"] > 0 and row["bytes_up"] > 0


@pytest.mark.core
def test_exec_exit_status(proxy, ssh_client, session_user):
    login, pw, user, _ = session_user
    r = ssh_client.ssh(login, "exit 3", password=pw)
    assert r.rc == 3, r
    row = proxy.session_of(user, kind="exec")
    assert row["result"] == "ok"
    assert row["exit_status"] == 3
    _, out, _ = proxy.cli("session", "show", row["id"])
    assert row["id"] in out and user in out


def test_exec_keeps_stderr_separate(proxy, ssh_client, session_user):
    login, pw, _, _ = session_user
    r = ssh_client.ssh(login, "echo to-out; echo to-err >&2; echo more-out",
                       password=pw)
    assert r.rc == 0, r
    assert r.out == "to-out\nmore-out\n", r
    assert "to-err" in r.err and "to-err" not in r.out, r


@pytest.mark.core
def test_exec_with_vaulted_password_login(proxy, target, ssh_client):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target, as_root=False)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "id -un", password=pw)
    assert r.rc == 0, r
    assert r.out.strip() == target.password_user
    # The user never sees the vaulted password.
    assert target.password not in r.out + r.err


def test_stdin_round_trip_100_mib(proxy, ssh_client, session_user, tmp_path):
    login, pw, user, _ = session_user
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    digest = make_file(src, 100 * MiB)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        r = ssh_client.ssh(login, "cat", password=pw, stdin=fin, stdout=fout,
                           timeout=300)
    assert r.rc == 0, r
    assert os.path.getsize(dst) == 100 * MiB
    assert sha256_file(dst) == digest
    with open(src, "rb") as fin:
        r = ssh_client.ssh(login, "sha256sum", password=pw, stdin=fin,
                           timeout=300)
    assert r.rc == 0, r
    assert r.out.split()[0] == digest
    # The `cat` session: 100 MiB each way (sha256sum sends back a line).
    row = proxy.wait_session(
        lambda s: s.get("user") == user and s.get("kind") == "exec" and
        (s.get("bytes_down") or 0) >= 100 * MiB,
        what="an exec row of %s with 100 MiB down" % user)
    assert row["result"] == "ok"
    assert row["bytes_up"] >= 100 * MiB
    assert row["exit_status"] == 0


@pytest.mark.core
@pytest.mark.parametrize("legacy", [True, False], ids=["scp-O", "scp-sftp"])
def test_scp_upload_and_download(proxy, target, ssh_client, session_user,
                                 tmp_path, legacy):
    login, pw, user, _ = session_user
    src = tmp_path / "up.bin"
    digest = make_file(src, 8 * MiB + 12345)
    remote = target.files / ("scp-%s-%s.bin" % (uniq(), int(legacy)))
    r = ssh_client.scp(login, src, ssh_client.remote(remote), legacy=legacy,
                       password=pw)
    assert r.rc == 0, r
    assert sha256_file(remote) == digest
    back = tmp_path / "down.bin"
    r = ssh_client.scp(login, ssh_client.remote(remote), back, legacy=legacy,
                       password=pw)
    assert r.rc == 0, r
    assert sha256_file(back) == digest
    kinds = ("scp",) if legacy else ("sftp", "scp")
    row = proxy.wait_session(
        lambda s: s.get("user") == user and s.get("kind") in kinds,
        what="a %s row of %s" % ("/".join(kinds), user))
    assert row["result"] == "ok"


@pytest.mark.core
def test_sftp_batch(proxy, target, ssh_client, key_user, tmp_path):
    login, key, user, _ = key_user
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    da = make_file(a, 3 * MiB + 7)
    make_file(b, 1000)
    got = tmp_path / "got.bin"
    d = target.files / ("sftp-" + uniq())
    batch = tmp_path / "batch"
    batch.write_text("\n".join([
        "mkdir %s" % d,
        "put %s %s/a.bin" % (a, d),
        "put %s %s/b.bin" % (b, d),
        "ls %s" % d,
        "get %s/a.bin %s" % (d, got),
        "rename %s/a.bin %s/c.bin" % (d, d),
        "rm %s/b.bin" % d,
        "",
    ]))
    r = ssh_client.sftp(login, batch, key=key)
    assert r.rc == 0, r
    assert "a.bin" in r.out and "b.bin" in r.out, r
    assert sha256_file(got) == da
    assert sorted(os.listdir(d)) == ["c.bin"]
    assert sha256_file(d / "c.bin") == da
    row = proxy.session_of(user, "ok", kind="sftp")
    assert row["bytes_up"] >= 3 * MiB


def _forward(ssh_client, login, pw, echo_port):
    lport = free_port()
    proc = ssh_client.popen_ssh(
        login, password=pw,
        extra=["-N", "-o", "ExitOnForwardFailure=yes",
               "-L", "127.0.0.1:%d:127.0.0.1:%d" % (lport, echo_port)])
    return lport, proc


@pytest.mark.core
def test_local_forward(proxy, target, ssh_client):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, flags=("--local-forward",))
    echo = EchoServer()
    lport, proc = _forward(ssh_client, "%s#%s" % (user, asset_id), pw,
                           echo.port)
    try:
        assert wait_listen(lport, 20, proc), proc.communicate(timeout=5)
        echo_roundtrip(lport)
        # The channel closed with the connection above: its row is closed
        # while the client is still connected.
        row = proxy.wait_session(
            lambda s: s.get("user") == user and s.get("kind") == "forward"
            and (s.get("bytes_up") or 0) >= 64 * 1024,
            what="a forward row of %s with 64 KiB up" % user)
    finally:
        stop_process(proc, 3)
        echo.close()
    assert row["result"] == "ok"
    assert row["bytes_down"] >= 64 * 1024


def test_local_forward_after_a_connection_closed_at_once(proxy, target,
                                                         ssh_client):
    """A forwarded connection that closes before any data (a port probe)
    leaves the next one working."""
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, flags=("--local-forward",))
    echo = EchoServer()
    lport, proc = _forward(ssh_client, "%s#%s" % (user, asset_id), pw,
                           echo.port)
    try:
        assert wait_listen(lport, 20, proc), proc.communicate(timeout=5)
        socket.create_connection(("127.0.0.1", lport), timeout=20).close()
        echo_roundtrip(lport, 4096)
    finally:
        stop_process(proc, 3)
        echo.close()


def test_local_forward_refused_without_the_profile_switch(proxy, target,
                                                          ssh_client):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)  # no --local-forward
    echo = EchoServer()
    lport, proc = _forward(ssh_client, "%s#%s" % (user, asset_id), pw,
                           echo.port)
    try:
        assert wait_listen(lport, 20, proc), proc.communicate(timeout=5)
        with socket.create_connection(("127.0.0.1", lport), timeout=20) as s:
            try:
                s.sendall(b"hello")
                s.settimeout(15)
                got = s.recv(100)
            except (ConnectionResetError, BrokenPipeError):
                got = b""
        assert got == b""
    finally:
        stop_process(proc, 3)
        echo.close()
    assert echo.connections == 0
    row = proxy.session_of(user, "denied: ", kind="forward")
    assert row["result"].startswith("denied: ")
