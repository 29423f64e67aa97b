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

from pclib import (EchoServer, Target, echo_roundtrip, free_port, keygen,
                   run, stop_process, uniq, wait_listen)
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


class HostileTarget:
    """An SSH server (paramiko) that, asked to run `probe`, opens towards
    the client what a compromised target would: an agent channel, an X11
    channel, forwarded connections to a port nobody forwarded and to the
    one the client did; it prints each outcome and exits 0."""

    def __init__(self, tmp_path):
        import paramiko
        import threading
        self.paramiko = paramiko
        self.key = paramiko.Ed25519Key.from_private_key_file(
            str(keygen(tmp_path / "hostile_host")))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.forwards = []  # (address, port) the proxy asked it to listen on
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        paramiko, outer = self.paramiko, self

        class Server(paramiko.ServerInterface):
            def __init__(self):
                self.exec_event = None
                self.command = None

            def get_allowed_auths(self, username):
                return "password"

            def check_auth_password(self, username, password):
                return paramiko.AUTH_SUCCESSFUL

            def check_channel_request(self, kind, chanid):
                return paramiko.OPEN_SUCCEEDED

            def check_channel_exec_request(self, channel, command):
                self.command = command
                return True

            def check_port_forward_request(self, address, port):
                outer.forwards.append((address, port))
                return port

        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        t = paramiko.Transport(conn)
        t.add_server_key(self.key)
        server = Server()
        t.start_server(server=server)
        chan = t.accept(20)
        deadline = time.monotonic() + 20
        while server.command is None and time.monotonic() < deadline:
            time.sleep(0.05)
        results = []

        def attempt(name, opener):
            try:
                c = opener()
                results.append("%s=opened" % name)
                c.sendall(b"ping")
                c.close()
            except Exception:  # paramiko's ChannelException and friends
                results.append("%s=refused" % name)

        attempt("agent", lambda: t.open_channel("auth-agent@openssh.com"))
        attempt("x11", lambda: t.open_x11_channel(("127.0.0.1", 6000)))
        granted = self.forwards[0] if self.forwards else ("127.0.0.1", 1)
        attempt("other-port", lambda: t.open_forwarded_tcpip_channel(
            ("127.0.0.1", 40000), (granted[0], granted[1] + 1)))
        attempt("granted-port", lambda: t.open_forwarded_tcpip_channel(
            ("127.0.0.1", 40001), granted))
        chan.sendall((" ".join(results) + "\n").encode())
        chan.send_exit_status(0)
        time.sleep(0.5)
        chan.close()
        t.close()

    def close(self):
        self.sock.close()


def test_a_target_opens_only_what_was_granted(proxy, ssh_client, tmp_path):
    """A compromised target opens what it likes towards the client: with
    only a remote forward of one port granted (agent forwarding asked by
    the client but not in its profile, no X11), everything but a
    connection to that port is refused, and never reaches the client."""
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    hostile = HostileTarget(tmp_path)
    asset_id = proxy.asset_add(uniq("hostile"), "127.0.0.1", hostile.port,
                               "root", password="anything")
    proxy.allow(user, asset_id, flags=("--remote-forward",))
    sock, pid, _ = agent(tmp_path)
    echo = EchoServer()
    try:
        r = ssh_with_agent(ssh_client, "%s#%s" % (user, asset_id), pw, sock,
                           "probe",
                           extra=["-R", "127.0.0.1:%d:127.0.0.1:%d"
                                  % (free_port(), echo.port)])
    finally:
        os.kill(pid, signal.SIGTERM)
        hostile.close()
    assert r.rc == 0, r
    assert r.out.split() == ["agent=refused", "x11=refused",
                             "other-port=refused", "granted-port=opened"], r
    # the granted connection reached the client's -R destination
    deadline = time.monotonic() + 10
    while echo.connections < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert echo.connections == 1
    echo.close()
    log = proxy.log_text()
    assert "opened an agent channel that was not granted" in log
    assert "opened an x11 channel that was not granted" in log
    assert "that was not granted; refused" in log


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


def test_forward_requests_are_bounded(proxy, target, ssh_client):
    """Each forward request is a report row, granted or refused: a client
    asking for 300 gets 256 rows, and the rest are refused unseen."""
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)  # no --remote-forward: all refused
    extra = ["-N", "-o", "ExitOnForwardFailure=no"]
    for i in range(300):
        extra += ["-R", "127.0.0.1:%d:127.0.0.1:9" % (40000 + i)]
    proc = ssh_client.popen_ssh("%s#%s" % (user, asset_id), password=pw,
                                extra=extra)
    try:
        deadline = time.monotonic() + 30
        while "refusing the rest unseen" not in proxy.log_text():
            assert time.monotonic() < deadline, proxy.log_tail()
            assert proc.poll() is None, proc.communicate(timeout=5)
            time.sleep(0.2)
    finally:
        stop_process(proc, 3)
    rows = [s for s in proxy.sessions()
            if s.get("user") == user and s.get("kind") == "forward"]
    assert len(rows) == 256, len(rows)
    assert all(s["result"].startswith("denied") for s in rows)
