"""The peer-node HTTP CONNECT proxy (SPEC section 7, issue 15 part 1):
`[http_proxy]` on the node in the isolated segment.

A CONNECT is relayed only for an API token of a user with the `service`
site role, to a destination the allow list names; everything else gets
its status and reason, and every attempt is an audit event. Real parts:
the server's own TLS certificate is verified by the client, a real sshd
is reached through the proxy with OpenSSH's ssh (ProxyCommand), and curl
is used as a client nobody here wrote."""

import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pclib import EchoServer, free_port, run, uniq, wait_port

HERE = Path(__file__).resolve().parent

# A ProxyCommand for ssh: TLS to the proxy (the node's certificate as the
# only trust anchor), CONNECT with the token, then stdin/stdout relayed.
CONNECT_PY = r'''
import os, select, socket, ssl, sys
host, port, ca, token, dest = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection((host, int(port))),
                    server_hostname="localhost")
s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Bearer %s"
           "\r\n\r\n" % (dest, dest, token)).encode())
head = b""
while b"\r\n\r\n" not in head:
    c = s.recv(1)
    if not c:
        sys.exit("proxy closed")
    head += c
if not head.startswith(b"HTTP/1.1 200"):
    sys.exit("proxy said: " + head.decode(errors="replace").split("\r\n")[0])
s.setblocking(False)
out, pend, stdin_open = sys.stdout.buffer, b"", True
while True:
    rl = [s] + ([0] if stdin_open and not pend else [])
    r, w, _ = select.select(rl if not s.pending() else [], [s] if pend else [],
                            [], None if not s.pending() else 0)
    if s.pending() or s in r:
        try:
            d = s.recv(65536)
            if not d:
                break
            out.write(d)
            out.flush()
        except ssl.SSLWantReadError:
            pass
    if 0 in r:
        d = os.read(0, 65536)
        if d:
            pend += d
        else:
            stdin_open = False
    if pend and (s in w or not r):
        try:
            pend = pend[s.send(pend):]
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            pass
'''


class Node:
    """A peer node: a server with [http_proxy] on, a service account and
    its API token."""

    def __init__(self, pc, allow, tls=True, extra=()):
        self.pc = pc
        self.port = free_port()
        pc.set_config("http_proxy", "enabled", "true")
        pc.set_config("http_proxy", "port", str(self.port))
        pc.set_config("http_proxy", "allow", allow)
        if not tls:
            pc.set_config("http_proxy", "tls", "false")
        for k, v in extra:
            pc.set_config("http_proxy", k, v)
        self.svc = pc.user_add(password="svc-pw-" + uniq())
        pc.cli("role", "grant", "--user", self.svc, "--role", "service")
        self.token = self.token_of(self.svc)
        self.ca = pc.dir / "tls.crt"
        self.tls = tls

    def start(self):
        """Starts the server and waits for the proxy's port (it listens
        after the SSH port pc.start() waits for)."""
        self.pc.start()
        assert wait_port(self.port), "the proxy does not listen"
        time.sleep(0.1)  # the probe connection is gone from the counts
        return self

    def token_of(self, user, expires="1h"):
        _, out, _ = self.pc.cli("token", "add", "--user", user, "--expires",
                                expires)
        kv = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
        self.last_token_id = kv["id"]
        return kv["token"]

    def open(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        if self.tls:
            ctx = ssl.create_default_context(cafile=str(self.ca))
            s = ctx.wrap_socket(s, server_hostname="localhost")
        return s

    def connect(self, dest, token=None, auth=None, method="CONNECT"):
        """Sends a request; returns (socket, status, head text, body)."""
        s = self.open()
        lines = ["%s %s HTTP/1.1" % (method, dest), "Host: %s" % dest]
        if auth is not None:
            lines.append("Proxy-Authorization: " + auth)
        elif token is not None:
            lines.append("Proxy-Authorization: Bearer " + token)
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            c = s.recv(1)
            if not c:
                break
            head += c
        text = head.decode(errors="replace")
        status = int(text.split()[1]) if text.startswith("HTTP/1.1 ") else 0
        body = b""
        if status != 200:
            try:
                while True:
                    c = s.recv(4096)
                    if not c:
                        break
                    body += c
            except (OSError, ssl.SSLError):
                pass
        return s, status, text, body.decode(errors="replace")

    def audit(self, action):
        _, out, _ = self.pc.cli("audit", "list", "--json", "--action", action)
        return json.loads(out)


@pytest.fixture
def echo():
    e = EchoServer()
    yield e
    e.close()


@pytest.fixture
def node(pc, echo):
    n = Node(pc, "127.0.0.1:%d" % echo.port)
    n.start()
    return n


def test_service_token_relays_bytes_both_ways(node, echo):
    """200, then 1 MiB each way through TLS, unchanged; the audit log
    names the service account and the destination."""
    dest = "127.0.0.1:%d" % echo.port
    s, status, head, _ = node.connect(dest, node.token)
    assert status == 200, head
    data = bytes(range(256)) * 4096
    got = b""
    s.settimeout(20)
    sent = 0
    while sent < len(data) or len(got) < len(data):
        if sent < len(data):
            s.sendall(data[sent:sent + 65536])
            sent += 65536
        while len(got) < min(sent, len(data)):
            got += s.recv(1 << 20)
    assert got == data
    s.close()
    ev = node.audit("proxy.connect")
    assert any(e["actor"] == node.svc and e["target"] == dest for e in ev), ev


def test_ssh_to_a_real_sshd_through_the_proxy(pc, target, tmp_path):
    """OpenSSH reaches an sshd through the CONNECT proxy (ProxyCommand),
    the way a main node's peer route will: a command runs and its output
    comes back."""
    n = Node(pc, "127.0.0.1:%d" % target.port)
    n.start()
    script = tmp_path / "connect.py"
    script.write_text(CONNECT_PY)
    proxy_cmd = "%s %s 127.0.0.1 %d %s %s 127.0.0.1:%d" % (
        "/usr/bin/python3", script, n.port, n.ca, n.token, target.port)
    known = tmp_path / "known_hosts"
    known.write_text("127.0.0.1 " + " ".join(
        Path(str(target.host_key) + ".pub").read_text().split()[:2]) + "\n")
    r = run(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=yes",
             "-o", "UserKnownHostsFile=%s" % known,
             "-o", "HostKeyAlias=127.0.0.1",
             "-o", "ProxyCommand=" + proxy_cmd, "-i", str(target.key),
             "-o", "IdentitiesOnly=yes", "-p", str(target.port),
             "root@127.0.0.1", "echo through-the-peer"], timeout=60)
    assert r.rc == 0 and r.out == "through-the-peer\n", r


def test_curl_through_the_proxy(node, tmp_path):
    """curl (libcurl's HTTPS proxy support) tunnels an HTTP request to a
    web server behind the node: the node's own API on its HTTP port."""
    pc = node.pc
    pc.set_config("http_proxy", "allow", "127.0.0.1:%d" % pc.http_port)
    pc.stop()
    node.start()
    r = run(["curl", "-sS", "--max-time", "20", "-p",
             "--proxy", "https://localhost:%d" % node.port,
             "--proxy-cacert", str(node.ca),
             "--proxy-header", "Proxy-Authorization: Bearer " + node.token,
             "http://127.0.0.1:%d/healthz" % pc.http_port])
    assert r.rc == 0 and '"status":"ok"' in r.out, r
    r = run(["curl", "-sS", "--max-time", "20", "-p", "-o", "/dev/null",
             "-w", "%{http_connect}",
             "--proxy", "https://localhost:%d" % node.port,
             "--proxy-cacert", str(node.ca),
             "http://127.0.0.1:%d/healthz" % pc.http_port])
    assert r.out == "407", r


def test_refusals_each_with_status_reason_and_audit(node, echo, pc):
    dest = "127.0.0.1:%d" % echo.port
    plain_user = pc.user_add(password="pw-" + uniq())
    plain_token = node.token_of(plain_user)
    expiring = node.token_of(node.svc, expires="1s")
    disabled = node.token_of(node.svc)
    pc.cli("token", "disable", node.last_token_id)
    cases = [
        (dict(), 407, "needs Proxy-Authorization: Bearer <API token>"),
        (dict(auth="Basic c3ZjOnB3"), 407, "must be 'Bearer <API token>'"),
        (dict(token="not.a.jwt"), 407, "the token is malformed"),
        (dict(token=node.token[:-4] + "AAAA"), 407,
         "signature or algorithm is not accepted"),
        (dict(token=plain_token), 403,
         "user %s does not hold the service role" % plain_user),
        (dict(token=disabled), 407, "the API token is disabled"),
        (dict(token=node.token, dest="127.0.0.2:%d" % echo.port), 403,
         "destination 127.0.0.2:%d is not allowed" % echo.port),
        (dict(token=node.token, dest="127.0.0.1:1"), 403,
         "destination 127.0.0.1:1 is not allowed"),
        (dict(token=node.token, method="GET"), 405,
         "this is a CONNECT proxy"),
        (dict(token=node.token, dest="no-port"), 400, "HOST:PORT"),
    ]
    time.sleep(1.5)  # the 1 s token is past its expiry now
    cases.append((dict(token=expiring), 407, "expired"))
    for kw, status, why in cases:
        d = kw.pop("dest", dest)
        s, got, head, body = node.connect(d, **kw)
        s.close()
        assert got == status and why in body, (kw, head, body)
        if status == 407:
            assert "Proxy-Authenticate: Bearer" in head, head
        assert node.token not in body
    ev = node.audit("proxy.refused")
    details = " | ".join(e["detail"] for e in ev)
    for _, status, why in cases:
        assert ("%d " % status) in details and why in details, (why, details)
    assert not node.audit("proxy.connect")


def test_session_token_is_not_a_service_credential(node, echo, pc):
    """A login's session token (POST /api/v1/login) of the service user is
    refused: only API tokens, which expire and can be disabled, open the
    proxy."""
    import urllib.request
    pw = "svc2-pw-" + uniq()
    user = pc.user_add(password=pw)
    pc.cli("role", "grant", "--user", user, "--role", "service")
    req = urllib.request.Request(
        "http://127.0.0.1:%d/api/v1/login" % pc.http_port,
        data=json.dumps({"username": user, "password": pw}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    tok = json.loads(urllib.request.urlopen(req, timeout=10).read())["data"]["token"]
    s, status, head, body = node.connect("127.0.0.1:%d" % echo.port, tok)
    s.close()
    assert status == 407 and "only API tokens" in body, (head, body)


def test_unreachable_destination_is_502(pc):
    port = free_port()  # nobody listens
    n = Node(pc, "127.0.0.1:%d" % port)
    n.start()
    s, status, head, body = n.connect("127.0.0.1:%d" % port, n.token)
    s.close()
    assert status == 502 and "cannot connect to 127.0.0.1:%d" % port in body, \
        (head, body)


def test_names_are_checked_after_resolution(pc, echo):
    """A name is resolved and its address checked: localhost reaches the
    allowed 127.0.0.1; a name whose addresses are not allowed is refused
    with the address it resolved to."""
    n = Node(pc, "127.0.0.1:%d" % echo.port)
    n.start()
    s, status, head, _ = n.connect("localhost:%d" % echo.port, n.token)
    assert status == 200, head
    s.sendall(b"hello")
    assert s.recv(5) == b"hello"
    s.close()
    pc.stop()
    pc.set_config("http_proxy", "allow", "10.0.0.0/8:*")
    n.start()
    s, status, head, body = n.connect("localhost:%d" % echo.port, n.token)
    s.close()
    assert status == 403 and "(127.0.0.1) is not allowed" in body, body


def test_tls_is_required_unless_turned_off(pc, echo):
    n = Node(pc, "127.0.0.1:%d" % echo.port)
    n.start()
    # plain HTTP to the TLS port: no answer a client could take for 200
    s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % echo.port)
    try:
        data = s.recv(100)
    except OSError:
        data = b""
    assert not data.startswith(b"HTTP/1.1 200"), data
    s.close()
    pc.stop()
    pc.set_config("http_proxy", "tls", "false")
    n.start()
    n.tls = False
    s, status, head, _ = n.connect("127.0.0.1:%d" % echo.port, n.token)
    assert status == 200, head
    s.close()
    assert "tls = false: API tokens and session bytes cross the network " \
        "in clear" in pc.log_text()


def test_empty_allow_refuses_everything_with_a_warning(pc, echo):
    n = Node(pc, "")
    n.start()
    assert "allow is empty: every CONNECT is refused" in pc.log_text()
    s, status, _, body = n.connect("127.0.0.1:%d" % echo.port, n.token)
    s.close()
    assert status == 403 and "not allowed" in body


@pytest.mark.parametrize("allow,why", [
    ("10.0.0.0/8", "no :PORTS"),
    ("fd00::/8:22", "IPv6 addresses go in brackets"),
    ("10.0.0.0/33:22", "not an address or CIDR"),
    ("10.0.0.1:0", "bad port"),
    ("10.0.0.1:30-20", "bad port range"),
])
def test_bad_allow_list_stops_serve(pc, allow, why):
    Node(pc, allow)
    rc, out, err = pc.cli("serve", check=False, timeout=30)
    assert rc != 0
    assert "[http_proxy] allow: " in err and why in err, err


def test_slow_and_too_many_clients_are_cut_off(pc, echo):
    """A client that never finishes its request is closed after
    timeout_seconds; a source holds at most max_connections_per_source
    connections; the proxy keeps serving others meanwhile."""
    n = Node(pc, "127.0.0.1:%d" % echo.port,
             extra=[("timeout_seconds", "2"),
                    ("max_connections_per_source", "3")])
    n.start()
    idle = [socket.create_connection(("127.0.0.1", n.port), timeout=10)
            for _ in range(3)]
    time.sleep(0.3)
    extra = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    assert extra.recv(10) == b""  # the fourth is closed at once
    extra.close()
    t0 = time.monotonic()
    for s in idle:
        assert s.recv(10) == b""  # closed by the deadline
    assert time.monotonic() - t0 < 8
    for s in idle:
        s.close()
    time.sleep(0.3)
    s, status, head, _ = n.connect("127.0.0.1:%d" % echo.port, n.token)
    assert status == 200, head
    s.close()


def test_refused_credentials_wait_the_failure_delay(pc, echo):
    """A refused token is answered after [auth] failure_delay_ms, as a
    failed login is; a good one is not delayed."""
    n = Node(pc, "127.0.0.1:%d" % echo.port)
    pc.set_config("auth", "failure_delay_ms", "1500")
    n.start()
    t0 = time.monotonic()
    s, status, _, body = n.connect("127.0.0.1:%d" % echo.port, "x.y.z")
    s.close()
    assert status == 407 and time.monotonic() - t0 >= 1.4, body
    t0 = time.monotonic()
    s, status, head, _ = n.connect("127.0.0.1:%d" % echo.port, n.token)
    s.close()
    assert status == 200 and time.monotonic() - t0 < 1.0, head


def test_options_star_is_the_peer_check(node, pc):
    """OPTIONS * with a service token: 200 and the node's version, nothing
    relayed, a proxy.check audit event; without or with a lesser token:
    the same refusals as CONNECT."""
    s, status, head, _ = node.connect("*", node.token, method="OPTIONS")
    body = s.recv(200).decode()
    s.close()
    assert status == 200, head
    assert "Server: portcullis/" in head and body.startswith("portcullis "), \
        (head, body)
    assert node.audit("proxy.check")
    s, status, _, body = node.connect("*", None, method="OPTIONS")
    s.close()
    assert status == 407, body
    other = node.token_of(pc.user_add(password="pw-" + uniq()))
    s, status, _, body = node.connect("*", other, method="OPTIONS")
    s.close()
    assert status == 403 and "service role" in body, body
