"""The route module's store reads off the main loop (issue 18; docs/store.md
"The API off the loop", the route layer). A session's way to its asset
may need the store: a peer: route reads the peer and its via chain, an
agent: route whose agent this node does not hold reads which node holds
it. On PostgreSQL those reads run on the routes' own connections, so while
another session holds the table locked (a slow or stuck database) the
server's loop keeps answering (GET /healthz every 50 ms), and the session
goes on when the lock goes: here to its clear refusal (the peer's proxy
port is closed; the agent is connected nowhere). Before, each read held
the whole loop until the lock went or the statement deadline (3 s) came.
A client that leaves while its read waits leaves nothing behind (the
late answer is dropped; the server goes on serving)."""

import subprocess
import threading
import time

import pytest

import pclib
import pglib
from pclib import Client, Portcullis, uniq
from test_store_pg import lock_tables

LOOP_LIMIT = pclib.LOOP_LIMIT  # the loop-stall limit of every such test


@pytest.fixture
def server(tmp_path):
    """(Portcullis on a PostgreSQL of its own, the PgServer, its database
    name, a private key file for the assets)."""
    own = pglib.PgServer()
    p = None
    try:
        url = own.new_database()
        p = Portcullis(tmp_path / "pc", store_url=url)
        p.tune_for_tests()
        p.start()
        p.wait_http()
        key = tmp_path / "asset_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(key)], check=True)
        yield p, own, pglib.PgServer.dbname_of(url), key
    finally:
        if p is not None:
            p.stop()
        own.close()


def _asset(p, key, route):
    _, out, _ = p.cli("asset", "add", uniq("a"), "--host", "127.0.0.1",
                      "--port", str(pclib.free_port()), "--login", "root",
                      "--key", str(key), "--route", route)
    asset_id = out.strip()
    pw = "pw-" + uniq()
    user = p.user_add(password=pw)
    p.allow(user, asset_id)
    return "%s#%s" % (user, asset_id), pw


def _probe(port, seconds, out):
    """GET /healthz every 50 ms for seconds, from 127.0.0.2 (not the
    clients' address); the slowest answer into out["worst"]."""
    import http.client
    worst = 0.0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                          source_address=("127.0.0.2", 0))
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        conn.close()
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.05)
    out["worst"] = worst


def _session_while_locked(p, own, dbname, table, login, pw, hold=2):
    """table locked (reads wait) for hold seconds; meanwhile an ssh
    session to login and the loop's probe: (ssh's result, seconds the
    session took, the slowest probe)."""
    c = Client(p.ssh_port)
    probe = {}
    holder = lock_tables(own, dbname, table, seconds=hold)
    try:
        t = threading.Thread(target=_probe,
                             args=(p.http_port, hold + 0.5, probe))
        t.start()
        t0 = time.monotonic()
        r = c.ssh(login, "true", password=pw, timeout=60)
        took = time.monotonic() - t0
        t.join(60)
    finally:
        holder.wait(30)
    return r, took, probe.get("worst")


def test_peer_route_read_does_not_hold_the_loop(server):
    p, own, dbname, key = server
    dead = pclib.free_port()  # nobody listens: the peer is down
    p.cli("peer", "add", "down", "--host", "127.0.0.1", "--port", str(dead),
          "--tls-fingerprint", "SHA256:" + ":".join(["ab"] * 32),
          "--token-stdin", input="a.b.c\n")
    login, pw = _asset(p, key, "peer:down")
    # as before, unlocked: the session is refused naming the peer
    r = Client(p.ssh_port).ssh(login, "true", password=pw)
    assert r.rc != 0 and "peer down: cannot reach its proxy" in r.err, r

    r, took, worst = _session_while_locked(p, own, dbname, "peers", login,
                                           pw)
    print("peer route, peers locked 2 s: session %.2f s, slowest "
          "/healthz %.3f s" % (took, worst))
    assert worst is not None and worst < LOOP_LIMIT, \
        "the peer's read held the loop: /healthz took %.2f s" % worst
    # the read waited for the lock, then went on to the same refusal
    assert r.rc != 0 and "peer down: cannot reach its proxy" in r.err, r
    assert took >= 1.0, took


def test_agent_route_read_does_not_hold_the_loop(server):
    p, own, dbname, key = server
    login, pw = _asset(p, key, "agent:ghost")
    r = Client(p.ssh_port).ssh(login, "true", password=pw)
    assert r.rc != 0 and "ghost" in r.err and "not connected" in r.err, r

    r, took, worst = _session_while_locked(p, own, dbname, "agents", login,
                                           pw)
    print("agent route, agents locked 2 s: session %.2f s, slowest "
          "/healthz %.3f s" % (took, worst))
    assert worst is not None and worst < LOOP_LIMIT, \
        "the agent's read held the loop: /healthz took %.2f s" % worst
    assert r.rc != 0 and "ghost" in r.err and "not connected" in r.err, r


def test_client_gone_while_its_route_read_waits(server):
    """Clients that leave while their route's read waits on a lock: the
    late answers are dropped, and the server serves the next session (and
    a sanitizer build reports nothing: the fixture's stop checks)."""
    p, own, dbname, key = server
    p.cli("peer", "add", "down", "--host", "127.0.0.1", "--port",
          str(pclib.free_port()), "--tls-fingerprint",
          "SHA256:" + ":".join(["ab"] * 32), "--token-stdin",
          input="a.b.c\n")
    login, pw = _asset(p, key, "peer:down")
    c = Client(p.ssh_port)
    holder = lock_tables(own, dbname, "peers", seconds=3)
    try:
        procs = [c.popen_ssh(login, "true", password=pw) for _ in range(4)]
        time.sleep(1.5)  # logged in, each waiting for the peer's read
        for pr in procs:
            pr.kill()
            pr.wait(10)
    finally:
        holder.wait(30)
    time.sleep(0.5)
    r = c.ssh(login, "true", password=pw)
    assert r.rc != 0 and "peer down: cannot reach its proxy" in r.err, r
    assert p.proc.poll() is None, p.log_tail()
    found = p.sanitizer_findings()
    assert not found, found
