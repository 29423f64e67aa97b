"""Peer nodes (issue 15): two real Portcullis nodes. The target sshd lives
in a network namespace the test creates, listening on the namespace's own
127.0.0.1, which only the peer node (running inside the namespace) can
reach; the main node (outside) reaches only the peer's [http_proxy] port
on the namespace's veth address. Users connect to the main node with
OpenSSH's ssh, scp and sftp; the asset's route is peer:NAME.

Checked: sessions work and the report shows the route; the peer's audit
log shows the CONNECT by its service account; `peer check` reports the
version and round trip, or exactly why not; every refusal (wrong TLS pin,
no service role, disabled or expired token, destination outside the
peer's allow list, the peer down, a via loop) gives the user one clear
line and a report row."""

import json
import socket
import time

import pytest

import pclib
from agentlib import NsTarget, netns  # noqa: F401 (fixture)
from pclib import Client, Portcullis, make_file, sha256_file, uniq


class Peer:
    """The segment's node: started inside netns, its CONNECT proxy on the
    namespace's veth address, a service account with an API token."""

    def __init__(self, tmp_path, ns, allow):
        self.ns = ns
        self.pc = Portcullis(tmp_path / "peer")
        self.pc.netns = ns.ns
        self.pc.tune_for_tests()
        self.port = pclib.free_port()
        self.pc.set_config("http_proxy", "enabled", "true")
        self.pc.set_config("http_proxy", "listen", ns.ns_ip)
        self.pc.set_config("http_proxy", "port", str(self.port))
        self.pc.set_config("http_proxy", "allow", allow)
        self.svc = self.pc.user_add(password="svc-" + uniq())
        self.pc.cli("role", "grant", "--user", self.svc, "--role", "service")
        self.token, self.token_id = self.token_of(self.svc)
        self.fingerprint = self.pc.info["tls_fingerprint"]

    def token_of(self, user, expires="1h"):
        _, out, _ = self.pc.cli("token", "add", "--user", user, "--expires",
                                expires)
        kv = pclib.parse_kv(out)
        return kv["token"], kv["id"]

    def start(self):
        self.pc.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.ns.ns_ip, self.port),
                                         timeout=1).close()
                time.sleep(0.1)
                return self
            except OSError:
                time.sleep(0.05)
        pytest.fail("the peer's proxy does not listen:\n" +
                    self.pc.log_tail())

    def audit(self, action):
        _, out, _ = self.pc.cli("audit", "list", "--json", "--action", action)
        return json.loads(out)


@pytest.fixture
def segment(tmp_path, netns, pctarget):
    """(peer, target): the namespace's sshd and its started peer node."""
    t = NsTarget(tmp_path / "target", netns, *pctarget)
    t.start()
    p = Peer(tmp_path, netns, "127.0.0.1:%d" % t.port)
    p.start()
    yield p, t
    p.pc.stop()
    t.stop()


def add_peer(pc, peer, name="seg", token=None, extra=()):
    pc.cli("peer", "add", name, "--host", peer.ns.ns_ip, "--port", peer.port,
           "--tls-fingerprint", peer.fingerprint, "--token-stdin", *extra,
           input=(token or peer.token) + "\n")


def peer_asset(pc, target, route="peer:seg", port=None):
    _, out, _ = pc.cli("asset", "add", uniq("a"), "--host", "127.0.0.1",
                       "--port", port or target.port, "--login", "root",
                       "--key", target.key, "--host-key-fingerprint",
                       target.fingerprint, "--route", route)
    return out.strip()


def user_on(pc, asset_id):
    pw = "pw-" + uniq()
    user = pc.user_add(password=pw)
    pc.allow(user, asset_id)
    return "%s#%s" % (user, asset_id), pw, user


def test_ssh_scp_sftp_through_a_peer_node(pc, segment, tmp_path):
    peer, target = segment
    # the main node's side cannot reach the target itself
    for host in (peer.ns.ns_ip, "127.0.0.1"):
        with pytest.raises(OSError):
            socket.create_connection((host, target.port), timeout=3)
    pc.start()
    add_peer(pc, peer)
    asset_id = peer_asset(pc, target)
    login, pw, user = user_on(pc, asset_id)
    cl = Client(pc.ssh_port)

    r = cl.ssh(login, "echo via-peer; cat /proc/net/dev | grep -c pcvn",
               password=pw)
    assert r.rc == 0, r
    assert r.out.split() == ["via-peer", "1"]  # ran inside the namespace
    row = pc.session_of(user, "ok", kind="exec")
    assert row["route"] == "peer:seg", row

    src = tmp_path / "up.bin"
    make_file(src, 3 << 20)
    remote = target.files / "up.bin"
    r = cl.scp(login, str(src), cl.remote(str(remote)), password=pw)
    assert r.rc == 0, r
    assert sha256_file(remote) == sha256_file(src)
    back = tmp_path / "back.bin"
    r = cl.scp(login, cl.remote(str(remote)), str(back), password=pw)
    assert r.rc == 0, r
    assert sha256_file(back) == sha256_file(src)

    key = pclib.keygen(tmp_path / "userkey")
    pc.key_add(user, str(key) + ".pub")
    batch = tmp_path / "batch"
    got = tmp_path / "sftp.bin"
    batch.write_text("get %s %s\n" % (remote, got))
    r = cl.sftp(login, batch, key=key)
    assert r.rc == 0, r
    assert sha256_file(got) == sha256_file(src)

    # the peer's own audit log: the CONNECTs by its service account
    ev = peer.audit("proxy.connect")
    assert ev and all(e["actor"] == peer.svc for e in ev), ev
    assert any(e["target"] == "127.0.0.1:%d" % target.port for e in ev), ev
    # the token is sealed at rest on the main node
    assert peer.token.encode() not in pc.store_dump()
    _, out, _ = pc.cli("peer", "show", "seg", "--json")
    shown = json.loads(out)
    assert shown["token_set"] is True and peer.token not in out


def test_peer_check(pc, segment):
    peer, _ = segment
    add_peer(pc, peer)
    rc, out, err = pc.cli("peer", "check", "seg")
    kv = pclib.parse_kv(out)
    assert rc == 0 and kv["ok"] == "true", (out, err)
    assert kv["server"].startswith("portcullis/"), out
    assert int(kv["round_trip_ms"]) >= 0
    assert peer.audit("proxy.check")
    # a wrong pin: the check says whose certificate it met
    pc.cli("peer", "add", "wrongpin", "--host", peer.ns.ns_ip, "--port",
           peer.port, "--tls-fingerprint", "SHA256:" + ":".join(["AB"] * 32),
           "--token-stdin", input=peer.token + "\n")
    rc, out, err = pc.cli("peer", "check", "wrongpin", check=False)
    assert rc == 1 and "ok=false" in out, out
    assert "the proxy's TLS certificate is %s, not the pinned" % \
        peer.fingerprint in err, err
    # a token of a user without the service role
    plain, _ = peer.token_of(peer.pc.user_add(password="x-" + uniq()))
    add_peer(pc, peer, name="norole", token=plain)
    rc, out, err = pc.cli("peer", "check", "norole", check=False)
    assert rc == 1 and "peer norole refused: 403" in err and \
        "does not hold the service role" in err, err
    # a disabled token and an expired one
    tok, tok_id = peer.token_of(peer.svc)
    peer.pc.cli("token", "disable", tok_id)
    add_peer(pc, peer, name="disabled", token=tok)
    rc, out, err = pc.cli("peer", "check", "disabled", check=False)
    assert rc == 1 and "peer disabled refused: 407 the API token is " \
        "disabled" in err, err
    tok, _ = peer.token_of(peer.svc, expires="1s")
    add_peer(pc, peer, name="expired", token=tok)
    time.sleep(1.5)
    rc, out, err = pc.cli("peer", "check", "expired", check=False)
    assert rc == 1 and "peer expired refused: 407" in err and \
        "expired" in err.split("407", 1)[1], err
    # nothing listens
    pc.cli("peer", "add", "down", "--host", "127.0.0.1", "--port",
           pclib.free_port(), "--tls-fingerprint", peer.fingerprint,
           "--token-stdin", input=peer.token + "\n")
    rc, out, err = pc.cli("peer", "check", "down", check=False)
    assert rc == 1 and "peer down: cannot reach its proxy" in err and \
        "Connection refused" in err, err


def refused(pc, cl, login, pw, user, want):
    r = cl.ssh(login, "true", password=pw)
    assert r.rc != 0 and want in r.err, (want, r)
    row = pc.session_of(user)
    assert row["result"] != "ok" and want in json.dumps(row), row
    return row


def test_refusals_reach_the_user_and_the_report(pc, segment):
    peer, target = segment
    pc.start()
    cl = Client(pc.ssh_port)
    # destination outside the peer's allow list
    add_peer(pc, peer)
    a = peer_asset(pc, target, port=22)
    login, pw, user = user_on(pc, a)
    refused(pc, cl, login, pw, user,
            "peer seg refused: 403 destination 127.0.0.1:22 is not allowed")
    # a disabled token
    peer.pc.cli("token", "disable", peer.token_id)
    a = peer_asset(pc, target)
    login, pw, user = user_on(pc, a)
    refused(pc, cl, login, pw, user,
            "peer seg refused: 407 the API token is disabled")
    # an expired one
    tok, _ = peer.token_of(peer.svc, expires="1s")
    add_peer(pc, peer, name="expiring", token=tok)
    time.sleep(1.5)
    a = peer_asset(pc, target, route="peer:expiring")
    login, pw, user = user_on(pc, a)
    refused(pc, cl, login, pw, user, "peer expiring refused: 407")
    # an unknown peer
    a = peer_asset(pc, target, route="peer:nosuch")
    login, pw, user = user_on(pc, a)
    refused(pc, cl, login, pw, user, "peer 'nosuch' is not configured here")
    # the peer down
    fresh, _ = peer.token_of(peer.svc)
    add_peer(pc, peer, name="later", token=fresh)
    peer.pc.stop()
    a = peer_asset(pc, target, route="peer:later")
    login, pw, user = user_on(pc, a)
    refused(pc, cl, login, pw, user, "peer later: cannot reach its proxy")


def test_via_chains_and_loops(pc, segment):
    """A peer reached through another (a segment behind a segment) works
    here with the peer as its own front (the proxy allows its own port);
    a via that would loop is refused when it is set."""
    peer, target = segment
    peer.pc.stop()
    peer.pc.set_config("http_proxy", "allow", "127.0.0.1:%d %s:%d" % (
        target.port, peer.ns.ns_ip, peer.port))
    peer.start()
    pc.start()
    add_peer(pc, peer, name="front")
    # "inner" is the same node reached through "front": CONNECT to the
    # proxy's own address, then TLS and CONNECT again inside
    add_peer(pc, peer, name="inner", extra=("--via", "peer:front"))
    a = peer_asset(pc, target, route="peer:inner")
    login, pw, user = user_on(pc, a)
    r = Client(pc.ssh_port).ssh(login, "echo chained", password=pw)
    assert r.rc == 0 and r.out == "chained\n", r
    assert len(peer.audit("proxy.connect")) >= 2
    rc, _, err = pc.cli("peer", "update", "front", "--via", "peer:inner",
                        check=False)
    assert rc != 0 and "would make a loop back to peer front" in err, err
    rc, _, err = pc.cli("peer", "delete", "front", check=False)
    assert rc != 0 and "still the route of 1" in err, err


def test_peers_through_the_api(pc, segment):
    """/api/v1/peers: the same rules as the CLI (token write-only), and
    POST /peers/{id}/check answers as `peer check` does."""
    import urllib.error
    import urllib.request
    peer, _ = segment
    pc.start()
    pc.wait_http()
    base = "http://127.0.0.1:%d/api/v1" % pc.http_port

    def call(method, path, body=None, token=None):
        req = urllib.request.Request(
            base + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": "Bearer " + (token or admin)})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    req = urllib.request.Request(
        base + "/login", method="POST",
        data=json.dumps({"username": pc.admin_user,
                         "password": pc.admin_password}).encode(),
        headers={"Content-Type": "application/json"})
    admin = json.loads(urllib.request.urlopen(req, timeout=30).read())[
        "data"]["token"]
    st, body = call("POST", "/peers", {
        "name": "seg", "host": peer.ns.ns_ip, "port": peer.port,
        "tls_fingerprint": peer.fingerprint.lower(), "token": peer.token})
    assert st == 201, body
    data = body["data"]
    assert data["token_set"] is True and "token" not in data
    assert data["tls_fingerprint"] == peer.fingerprint  # canonical form
    st, body = call("POST", "/peers/%s/check" % data["id"], {})
    assert st == 200 and body["data"]["ok"] is True, body
    assert body["data"]["server"].startswith("portcullis/")
    # the same refusals as the CLI's, word for word
    st, body = call("POST", "/peers", {"name": "x", "host": "10.0.0.1",
                                       "token": peer.token})
    assert st == 400 and "TLS fingerprint is needed" in json.dumps(body)
    rc, _, err = pc.cli("peer", "add", "x", "--host", "10.0.0.1",
                        "--token-stdin", input=peer.token + "\n",
                        check=False)
    assert rc != 0 and "TLS fingerprint is needed" in err
    st, body = call("PATCH", "/peers/seg", {"token": "a.b.c"})
    assert st == 200, body
    st, body = call("POST", "/peers/seg/check", {})
    assert st == 200 and body["data"]["ok"] is False and \
        "407" in body["data"]["reason"], body
    st, body = call("GET", "/peers")
    assert st == 200 and [p["name"] for p in body["data"]] == ["seg"]
    st, _ = call("DELETE", "/peers/seg")
    assert st == 204


def test_web_ui_adds_a_peer_and_routes_an_asset_through_it(pc, segment,
                                                           tmp_path):
    """Playwright in Debian's Chromium (web/e2e/peers.mjs): an
    administrator adds the peer on Configuration > Peer Nodes, checks it,
    creates an asset with the route peer:NAME and a tunnel through the
    peer; then OpenSSH reaches the namespace's sshd through both."""
    import os
    from test_web import CHROMIUM, WEB, web_ui as _build  # noqa: F401
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("%s is missing: `./dev deps` installs chromium" %
                    CHROMIUM)
    getattr(_build, "__wrapped__", _build)()  # web/dist, built if stale
    peer, target = segment
    pc.start()
    pc.wait_http()
    name = uniq("web")
    cfg = {"url": "http://127.0.0.1:%d" % pc.http_port,
           "admin_user": pc.admin_user, "admin_password": pc.admin_password,
           "peer": {"name": "webseg", "host": peer.ns.ns_ip,
                    "port": peer.port, "fingerprint": peer.fingerprint,
                    "token": peer.token},
           "asset": {"name": name, "host": "127.0.0.1", "port": target.port,
                     "private_key": target.key.read_text(),
                     "fingerprint": target.fingerprint},
           "screenshots": os.environ.get("PORTCULLIS_SCREENSHOTS")}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    r = pclib.run(["node", "e2e/peers.mjs", path], cwd=WEB, timeout=200)
    assert r.rc == 0, r
    res = json.loads(r.out.strip().splitlines()[-1])
    assert "webseg" in res["row"] and "pinned" in res["row"], res
    assert res["check"].startswith("ok: portcullis/"), res
    assert res["asset_route"] is True, res
    asset_id = res["asset_url"].rstrip("/").rsplit("/", 1)[-1]
    login, pw, user = user_on(pc, asset_id)
    r = Client(pc.ssh_port).ssh(login, "echo from-the-web-ui", password=pw)
    assert r.rc == 0 and r.out == "from-the-web-ui\n", r
    assert pc.session_of(user, "ok")["route"] == "peer:webseg"
    # the tunnel made on the same page carries ssh to the target
    assert "peer:webseg" in res["tunnel_row"], res
    args = target.ssh_args("echo via-web-tunnel")
    args[args.index("-p") + 1] = str(res["tunnel_port"])
    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    r = pclib.run(args, env=env)
    assert r.rc == 0 and r.out == "via-web-tunnel\n", r
