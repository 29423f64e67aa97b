"""Agent forwarding (`ssh -A`) and remote forwards (`ssh -R`) through the
proxy: the access profile's agent_forward and remote_forward switches
(off by default). Allowed, the target's processes use the client's
ssh-agent, and a port listening on the target carries each connection
to where the client's -R points (a fixed port and a port the target
picks, port 0); refused, the client sees what OpenSSH's own sshd would
show (no agent; "remote port forwarding failed"), and the refusal is a
row of the session report. The target is the test's OpenSSH sshd."""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time

import pytest

from pclib import (EchoServer, Target, bytes_diff, free_port, keygen, run,
                   stop_process, uniq, wait_listen)
from test_rdp import start_xvfb


def agent(tmp_path):
    """An ssh-agent of the test's own holding one new key: (socket path,
    the agent's pid, the key's public line)."""
    sock = tmp_path / "agent.sock"
    r = run(["ssh-agent", "-a", str(sock), "-s"])
    assert r.rc == 0, r
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", r.out).group(1))
    key = keygen(tmp_path / "agentkey")
    env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
    r = run(["ssh-add", str(key)], env=env)
    assert r.rc == 0, r
    return str(sock), pid, (tmp_path / "agentkey.pub").read_text().split()[1]


def ssh_with_agent(ssh_client, login, pw, sock, command, extra=()):
    env = ssh_client.env(password=pw)
    env["SSH_AUTH_SOCK"] = sock
    return run(ssh_client.ssh_args(login, command, extra=["-A"] + list(extra)),
               env=env)


def test_agent_forwarding(proxy, target, ssh_client, tmp_path):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, flags=("--agent-forward",))
    sock, pid, blob = agent(tmp_path)
    try:
        login = "%s#%s" % (user, asset_id)
        # the target lists the client's agent's key: an agent round trip
        r = ssh_with_agent(ssh_client, login, pw, sock, "ssh-add -L")
        assert r.rc == 0, r
        assert blob in r.out, r
        # twice in one connection: two session channels, one grant
        r = ssh_with_agent(ssh_client, login, pw, sock,
                           "ssh-add -l >/dev/null && ssh-add -L | wc -l")
        assert r.rc == 0 and r.out.strip() == "1", r
    finally:
        os.kill(pid, signal.SIGTERM)
    row = proxy.wait_session(
        lambda s: s.get("user") == user and s.get("kind") == "agent",
        what="the agent row of %s" % user)
    assert row["result"] == "ok", row
    assert row["bytes_up"] > 0 and row["bytes_down"] > 0, row


def test_agent_forwarding_refused_without_the_switch(proxy, target,
                                                     ssh_client, tmp_path):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)  # no --agent-forward
    sock, pid, _ = agent(tmp_path)
    try:
        r = ssh_with_agent(ssh_client, "%s#%s" % (user, asset_id), pw, sock,
                           "echo agent=${SSH_AUTH_SOCK:-none}")
    finally:
        os.kill(pid, signal.SIGTERM)
    # the session itself runs, without an agent, and nothing is said
    assert r.rc == 0 and r.out.strip() == "agent=none", r
    assert "portcullis" not in r.err, r
    row = proxy.wait_session(
        lambda s: s.get("user") == user and s.get("kind") == "agent",
        what="the refused agent row of %s" % user)
    assert row["result"].startswith("denied"), row
    assert "agent forwarding" in row["result"], row


def echo_roundtrip(port, size=64 * 1024):
    payload = os.urandom(size)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    assert got == payload, bytes_diff(got, payload)


def test_remote_forward(proxy, target, ssh_client):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, flags=("--remote-forward",))
    echo = EchoServer()
    rport = free_port()
    login = "%s#%s" % (user, asset_id)
    proc = ssh_client.popen_ssh(
        login, password=pw,
        extra=["-N", "-o", "ExitOnForwardFailure=yes",
               "-R", "127.0.0.1:%d:127.0.0.1:%d" % (rport, echo.port)])
    try:
        # the target's sshd listens (on this machine's loopback)
        assert wait_listen(rport, 20, proc), proc.communicate(timeout=5)
        echo_roundtrip(rport)
        echo_roundtrip(rport, 1024)  # a second connection
        assert echo.connections >= 2
    finally:
        stop_process(proc, 3)
        echo.close()
    row = proxy.wait_session(
        lambda s: s.get("user") == user and s.get("kind") == "forward"
        and s.get("result") is not None and s.get("ended_at"),
        what="the remote forward row of %s" % user)
    assert row["result"] == "ok", row
    assert "127.0.0.1:%d" % rport in (row.get("detail") or ""), row
    assert row["bytes_up"] >= 65 * 1024 and row["bytes_down"] >= 65 * 1024, row
    # the forward ended with the connection: the target listens no more
    deadline = time.monotonic() + 10
    while wait_listen(rport, 0.2, None) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not wait_listen(rport, 0.2, None)


def test_remote_forward_on_a_port_the_target_picks(proxy, target,
                                                   ssh_client):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, flags=("--remote-forward",))
    echo = EchoServer()
    # OpenSSH says the port the server answered with at LogLevel INFO
    args = [a if a != "LogLevel=ERROR" else "LogLevel=INFO"
            for a in ssh_client.ssh_args(
                "%s#%s" % (user, asset_id),
                extra=["-N", "-o", "ExitOnForwardFailure=yes",
                       "-R", "0:127.0.0.1:%d" % echo.port])]
    proc = subprocess.Popen(args, env=ssh_client.env(password=pw),
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        err, deadline = b"", time.monotonic() + 20
        while b"Allocated port" not in err or not err.endswith(b"\n"):
            ready, _, _ = select.select([proc.stderr], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stderr.fileno(), 4096)
                if not chunk:
                    break
                err += chunk
            assert time.monotonic() < deadline, (err, proc.poll())
        m = re.search(rb"Allocated port (\d+) for remote forward", err)
        assert m, (err, proc.poll())
        echo_roundtrip(int(m.group(1)))
    finally:
        stop_process(proc, 3)
        echo.close()


def test_remote_forward_refused_without_the_switch(proxy, target,
                                                   ssh_client):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)  # no --remote-forward
    rport = free_port()
    r = ssh_client.ssh(
        "%s#%s" % (user, asset_id), password=pw,
        extra=["-N", "-o", "ExitOnForwardFailure=yes",
               "-R", "127.0.0.1:%d:127.0.0.1:9" % rport])
    assert r.rc == 255, r
    assert "remote port forwarding failed" in r.err, r
    assert not wait_listen(rport, 0.2, None)
    row = proxy.wait_session(
        lambda s: s.get("user") == user and s.get("kind") == "forward",
        what="the refused forward row of %s" % user)
    assert row["result"].startswith("denied"), row
    assert "remote port forwarding" in row["result"], row
    # the target was never asked: no connection to it at all
    assert "127.0.0.1:%d" % rport in (row.get("detail") or ""), row


def test_a_target_cannot_open_what_was_not_granted(proxy, target, ssh_client,
                                                   tmp_path):
    """A forward granted for one port: a connection the client did not ask
    for never reaches it, and with an agent on the client but agent
    forwarding refused, nothing on the target reaches that agent."""
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, flags=("--remote-forward",))
    sock, pid, _ = agent(tmp_path)
    echo = EchoServer()
    rport = free_port()
    env = ssh_client.env(password=pw)
    env["SSH_AUTH_SOCK"] = sock
    proc = subprocess.Popen(
        ssh_client.ssh_args("%s#%s" % (user, asset_id),
                            "echo agent=${SSH_AUTH_SOCK:-none}; sleep 30",
                            extra=["-A", "-o", "ExitOnForwardFailure=yes",
                                   "-R", "127.0.0.1:%d:127.0.0.1:%d"
                                   % (rport, echo.port)]),
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == b"agent=none"
        assert wait_listen(rport, 20, proc)
        echo_roundtrip(rport, 1024)
    finally:
        stop_process(proc, 3)
        echo.close()
        os.kill(pid, signal.SIGTERM)


@pytest.fixture
def x11_target(tmp_path_factory, pctarget):
    """The test's sshd with X11 forwarding on (xauth writes the cookie in
    pctarget's home, so the asset logs in as pctarget, not root)."""
    for tool in ("Xvfb", "xauth", "xdpyinfo"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed (scripts/install-deps)" % tool)
    t = Target(tmp_path_factory.mktemp("x11target"), *pctarget,
               extra_config=["X11Forwarding yes",
                             "XAuthLocation %s" % shutil.which("xauth")])
    t.start()
    yield t
    t.stop()


def x11_ssh(ssh_client, login, pw, display, command):
    env = ssh_client.env(password=pw)
    env["DISPLAY"] = display
    return run(ssh_client.ssh_args(login, command, extra=["-Y"]), env=env)


def test_x11_forwarding(proxy, x11_target, ssh_client):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(x11_target, as_root=False)
    proxy.allow(user, asset_id, flags=("--x11",))
    xvfb, display = start_xvfb("1234x567")
    try:
        # an X client on the target draws on the client's X server
        r = x11_ssh(ssh_client, "%s#%s" % (user, asset_id), pw, display,
                    "xdpyinfo | grep dimensions")
    finally:
        stop_process(xvfb, 5)
    assert r.rc == 0, r
    assert "1234x567 pixels" in r.out, r
    row = proxy.wait_session(
        lambda s: s.get("user") == user and s.get("kind") == "x11",
        what="the x11 row of %s" % user)
    assert row["result"] == "ok", row
    assert row["bytes_up"] > 0 and row["bytes_down"] > 0, row


def test_x11_forwarding_refused_without_the_switch(proxy, x11_target,
                                                   ssh_client):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(x11_target, as_root=False)
    proxy.allow(user, asset_id)  # no --x11
    xvfb, display = start_xvfb()
    try:
        r = x11_ssh(ssh_client, "%s#%s" % (user, asset_id), pw, display,
                    "echo display=${DISPLAY:-none}")
    finally:
        stop_process(xvfb, 5)
    # OpenSSH's own words for a refused x11-req; the command still runs
    assert r.rc == 0 and r.out.strip() == "display=none", r
    assert "X11 forwarding request failed" in r.err, r
    row = proxy.wait_session(
        lambda s: s.get("user") == user and s.get("kind") == "x11",
        what="the refused x11 row of %s" % user)
    assert row["result"].startswith("denied"), row
