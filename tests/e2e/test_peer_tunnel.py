"""Tunnels through a peer node (issue 15): `portcullis tunnel add
peer:NAME --remote HOST:PORT` on the main node makes it listen on a port
and carry each TCP connection through the peer's CONNECT proxy to a host
only the peer reaches, with the same ACL, audit and report rows as an
agent's tunnel.

Two real nodes, as in test_peer_route.py: the target sshd lives on a
network namespace's own 127.0.0.1; the peer node runs inside the
namespace, its proxy on the namespace's veth address; the main node runs
outside and reaches only that proxy port. Clients connect to the tunnel's
port on the host's 127.0.0.1."""

import json
import os
import socket
import time

import pytest

import pclib
from agentlib import netns  # noqa: F401 (fixture)
from test_peer_route import add_peer, segment  # noqa: F401 (fixture)


@pytest.fixture
def main(pc):
    """The main node, with tunnel ports from a range of its own (parallel
    runs do not collide)."""
    base = pclib.port_block(50)
    pc.set_config("tunnel", "listen", "127.0.0.1")
    pc.set_config("tunnel", "port_min", str(base))
    pc.set_config("tunnel", "port_max", str(base + 49))
    pc.start()
    return pc


def tunnel_add(pc, route, remote, *args, check=True):
    rc, out, err = pc.cli("tunnel", "add", route, "--remote", remote,
                          "--acl", "127.0.0.1", *args, check=check)
    if not check:
        return rc, out, err
    kv = pclib.parse_kv(out)
    return kv["id"], int(kv["port"]), kv["state"]


def rows_of(pc, tunnel_id, n=1, timeout=20):
    """The tunnel's closed report rows, once there are n."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [s for s in pc.sessions() if s["kind"] == "tunnel" and
                tunnel_id in (s.get("detail") or "") and s["result"]]
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def ssh_via(target, port, command):
    """ssh as root to the target sshd, but to the tunnel's port."""
    args = target.ssh_args(command)
    args[args.index("-p") + 1] = str(port)
    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    return pclib.run(args, env=env)


def closed_at_once(port):
    """Connects to the tunnel and reads: the peer refused, so the tunnel
    closes the connection without a byte (rather than hanging)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(20)
        return s.recv(100) == b""


def test_tcp_through_a_peer_node(main, segment):  # noqa: F811
    pc = main
    peer, target = segment
    # nothing outside the namespace reaches the target itself
    with pytest.raises(OSError):
        socket.create_connection((peer.ns.ns_ip, target.port), timeout=3)
    add_peer(pc, peer)
    tid, port, state = tunnel_add(pc, "peer:seg",
                                  "127.0.0.1:%d" % target.port)
    assert state == "listening", state

    # a whole SSH session through the tunnel, run inside the namespace
    r = ssh_via(target, port, "echo via-peer-tunnel; grep -c pcvn "
                "/proc/net/dev")
    assert r.rc == 0, r
    assert r.out.split() == ["via-peer-tunnel", "1"], r
    rows = rows_of(pc, tid)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["route"] == "peer:seg" and row["result"] == "ok", row
    assert row["bytes_up"] > 1000 and row["bytes_down"] > 1000, row
    assert row["client"].startswith("127.0.0.1:"), row
    assert "peer:seg/127.0.0.1:%d" % target.port in row["detail"], row

    # listed with its route; the JSON says which peer, and no agent
    _, out, _ = pc.cli("tunnel", "list", "--json")
    t = {x["id"]: x for x in json.loads(out)}[tid]
    assert t["peer"] == "seg" and t["agent_id"] is None, t
    assert t["route"] == "peer:seg" and t["state"] == "listening", t
    _, out, _ = pc.cli("tunnel", "list")
    assert "peer:seg" in out, out

    # the peer's audit log: the CONNECT by its service account
    ev = peer.audit("proxy.connect")
    assert any(e["actor"] == peer.svc and
               e["target"] == "127.0.0.1:%d" % target.port for e in ev), ev
    # the main node's audit log: who made the tunnel, through which peer
    _, out, _ = pc.cli("audit", "list", "--json", "--action", "tunnel.add")
    ev = json.loads(out)
    assert ev and "peer=seg" in ev[0]["detail"], ev

    # the ACL holds as for an agent's tunnel
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        assert s.recv(100) == b""
    denied = [x for x in rows_of(pc, tid, n=2) if
              x["result"].startswith("denied:")]
    assert denied and "not in the tunnel's ACL" in denied[0]["result"], \
        denied

    # the peer stays while the tunnel uses it
    rc, _, err = pc.cli("peer", "delete", "seg", check=False)
    assert rc != 0 and "still the route of 1" in err and "tunnel" in err, \
        err
    pc.cli("tunnel", "delete", tid)
    pc.cli("peer", "delete", "seg")


def test_refusals(main, segment):  # noqa: F811
    pc = main
    peer, target = segment
    add_peer(pc, peer)
    # refused when made: an unknown peer, UDP, a route that is neither
    rc, _, err = tunnel_add(pc, "peer:nosuch", "127.0.0.1:22", check=False)
    assert rc != 0 and "peer 'nosuch' not found" in err, err
    rc, _, err = tunnel_add(pc, "peer:seg", "127.0.0.1:53", "--udp",
                            check=False)
    assert rc != 0 and "a tunnel through a peer carries TCP only" in err, \
        err
    rc, _, err = tunnel_add(pc, "cluster:x", "127.0.0.1:22", check=False)
    assert rc != 0 and "the route is AGENT, agent:AGENT or peer:NAME" in err, \
        err

    # a destination outside the peer's allow-list: the connection closes,
    # the row says why
    tid, port, _ = tunnel_add(pc, "peer:seg", "127.0.0.1:22")
    assert closed_at_once(port)
    row = rows_of(pc, tid)[0]
    assert row["result"] == "error: peer seg refused: 403 destination " \
        "127.0.0.1:22 is not allowed by this node's [http_proxy] allow", row
    assert row["route"] == "peer:seg", row

    # the peer down
    tid, port, _ = tunnel_add(pc, "peer:seg", "127.0.0.1:%d" % target.port)
    peer.pc.stop()
    assert closed_at_once(port)
    row = rows_of(pc, tid)[0]
    assert row["result"].startswith("error: peer seg: cannot reach its "
                                    "proxy"), row
    _, out, _ = pc.cli("audit", "list", "--json", "--action", "tunnel.add")
    assert len(json.loads(out)) == 2


def test_the_api_makes_them_too(main, segment):  # noqa: F811
    """POST /api/v1/tunnels with "peer": the same rules as the CLI."""
    import urllib.error
    import urllib.request
    pc = main
    peer, target = segment
    pc.wait_http()
    add_peer(pc, peer)
    base = "http://127.0.0.1:%d/api/v1" % pc.http_port
    req = urllib.request.Request(
        base + "/login", method="POST",
        data=json.dumps({"username": pc.admin_user,
                         "password": pc.admin_password}).encode(),
        headers={"Content-Type": "application/json"})
    admin = json.loads(urllib.request.urlopen(req, timeout=30).read())[
        "data"]["token"]

    def post(body):
        req = urllib.request.Request(
            base + "/tunnels", method="POST", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": "Bearer " + admin})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    remote = "127.0.0.1:%d" % target.port
    st, body = post({"peer": "seg", "remote": remote, "udp": True})
    assert st == 400 and "TCP only" in json.dumps(body), body
    st, body = post({"peer": "nosuch", "remote": remote})
    assert st == 404 and "peer 'nosuch' not found" in json.dumps(body), body
    st, body = post({"remote": remote})
    assert st == 400 and "an agent or a peer" in json.dumps(body), body
    st, body = post({"peer": "seg", "remote": remote, "acl": ["127.0.0.1"]})
    assert st == 201, body
    t = body["data"]
    assert t["route"] == "peer:seg" and t["agent_id"] is None, t
    r = ssh_via(target, t["local_port"], "echo via-api-tunnel")
    assert r.rc == 0 and r.out == "via-api-tunnel\n", r


def test_deleting_a_tunnel_ends_its_connections(main, segment):  # noqa: F811
    """A connection carried through the peer, and one still waiting for a
    peer that never answers, both end when the tunnel is deleted; each
    row says how."""
    pc = main
    peer, target = segment
    add_peer(pc, peer)
    # a "peer" whose port takes TCP connections but never speaks TLS:
    # the route waits for it until [ssh] connect_timeout_seconds
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)
    pc.cli("peer", "add", "mute", "--host", "127.0.0.1", "--port",
           mute.getsockname()[1], "--tls-fingerprint", peer.fingerprint,
           "--token-stdin", input=peer.token + "\n")
    carried, cport, _ = tunnel_add(pc, "peer:seg",
                                   "127.0.0.1:%d" % target.port)
    waiting, wport, _ = tunnel_add(pc, "peer:mute", "127.0.0.1:22")
    try:
        a = socket.create_connection(("127.0.0.1", cport), timeout=10)
        a.settimeout(20)
        assert a.recv(100).startswith(b"SSH-2.0-")  # the target's banner
        b = socket.create_connection(("127.0.0.1", wport), timeout=10)
        b.settimeout(20)
        time.sleep(0.5)  # the route is waiting for the mute peer now
        pc.cli("tunnel", "delete", carried)
        pc.cli("tunnel", "delete", waiting)
        assert a.recv(100) == b"" and b.recv(100) == b""
        a.close()
        b.close()
    finally:
        mute.close()
    row = rows_of(pc, carried)[0]
    assert row["result"] == "ok" and row["bytes_down"] > 0, row
    row = rows_of(pc, waiting)[0]
    assert row["result"] == "error: the tunnel was deleted", row
