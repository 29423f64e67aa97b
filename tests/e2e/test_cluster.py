"""Two `serve` nodes on one PostgreSQL (issue 18, docs/operations.md
"Cluster"): each registers itself and `node list` shows both with the
agents and sessions each holds; a credential deleted through node B drops
its agent on node A within 2 s (a LISTEN/NOTIFY notice: B's CLI reaches
only B's own socket); a node killed with SIGKILL is noticed by the other
within [node] dead_after_seconds (4 s here, 30 by default), its open
report row is closed as interrupted, and its agent reconnects to the
other node from its list of server URLs.

The agents run in a network namespace of the test's own, as in
test_agent.py; both nodes' HTTP listeners are on the host's end of its
veth.
"""

import json
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

import pclib
from agentlib import (agents, credential, make_agent, netns,  # noqa: F401
                      wait_agent, wait_log)
from clusterlib import DEAD_AFTER_SECONDS, HEARTBEAT_SECONDS, make_node, pg  # noqa: F401,E501
from agentlib import NsTarget
from pclib import Client, uniq


def nodes(pc):
    """{name: row} from `node list --json` run against pc's config."""
    _, out, _ = pc.cli("node", "list", "--json")
    return {r["name"]: r for r in json.loads(out)}


def wait_nodes(pc, pred, timeout, what):
    deadline = time.monotonic() + timeout
    rows = {}
    while time.monotonic() < deadline:
        rows = nodes(pc)
        if pred(rows):
            return rows
        time.sleep(0.2)
    pytest.fail("node list: not %s within %ss: %r" % (what, timeout, rows))


@pytest.fixture
def cluster(tmp_path, pg, netns):  # noqa: F811
    """(a, b, netns): two started nodes "a" and "b" on one PostgreSQL,
    each with its proxy for the other's sessions to its agents."""
    a = make_node(pg, tmp_path / "a", "a", netns=netns, proxy=True)
    started = []
    try:
        a.start()
        started.append(a)
        assert pclib.wait_port(a.http_port, 15, a.proc, host=netns.host_ip)
        # a's first start made api_jwt.key: b shares it
        b = make_node(pg, tmp_path / "b", "b", seed=a, netns=netns,
                      proxy=True)
        # tunnels listen on every node: on one machine, b on an address
        # of its own (127.0.0.2, the same ports as a's)
        b.set_config("tunnel", "listen", "127.0.0.2")
        b.start()
        started.append(b)
        assert pclib.wait_port(b.http_port, 15, b.proc, host=netns.host_ip)
        yield a, b, netns
    finally:
        for p in started:
            p.stop()
        for p in started:
            found = p.sanitizer_findings(new_only=False)
            if found:
                pytest.fail("sanitizer report in %s:\n%s" % (p.log_path,
                                                             found),
                            pytrace=False)


def proxy_ask(port, token, agent, dest_port):
    """CONNECT 127.0.0.1:dest_port through a node's proxy with token and a
    Portcullis-Agent header: (status, body)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            s.sendall(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n"
                       "Portcullis-Agent: %s\r\n"
                       "Proxy-Authorization: Bearer %s\r\n\r\n"
                       % (dest_port, agent, token)).encode())
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


def url(pc, ns):
    return "ws://%s:%d" % (ns.host_ip, pc.http_port)


def user_of_an_asset_behind_a(a, b, ns, make_agent, target):
    """An agent connected to node a only, an asset added through node b
    for target (an NsTarget) behind it, and a user b allows on it:
    (agent, asset ID, user, password)."""
    ag = make_agent(a, netns=ns, server=url(a, ns))
    wait_agent(a, ag.id)
    _, out, _ = b.cli("asset", "add", uniq("a"), "--host", "127.0.0.1",
                      "--port", target.port, "--login", "root", "--key",
                      target.key, "--host-key-fingerprint",
                      target.fingerprint, "--route", "agent:%s" % ag.id)
    asset_id = out.strip()
    pw = "pw-" + uniq()
    user = b.user_add(password=pw)
    b.allow(user, asset_id)
    return ag, asset_id, user, pw


def test_node_list_shows_both_nodes_and_what_each_holds(cluster, make_agent):
    a, b, ns = cluster
    ag = make_agent(a, netns=ns, server=url(a, ns))
    wait_agent(b, ag.id)  # read through b's config: one store
    rows = wait_nodes(b, lambda r: {"a", "b"} <= set(r) and
                      r["a"]["agents"] == 1, 10, "both, a holding the agent")
    for name, p in (("a", a), ("b", b)):
        row = rows[name]
        assert row["state"] == "online" and row["online"] is True, row
        assert "ssh=127.0.0.1:%d" % p.ssh_port in row["addresses"], row
        assert len(row["id"]) == 32, row
    assert rows["b"]["agents"] == 0
    assert agents(b)[ag.id]["node"] == rows["a"]["id"]
    # the same through the other node's CLI, and as a table
    assert set(nodes(a)) == {"a", "b"}
    _, out, _ = a.cli("node", "list")
    header = out.splitlines()[0].split()
    assert header[:5] == ["ID", "NAME", "STATE", "AGENTS", "SESSIONS"], out
    assert sum(1 for line in out.splitlines() if " online " in line) == 2


def test_credential_deleted_on_b_drops_its_agent_on_a(cluster, make_agent):
    a, b, ns = cluster
    cred = credential(b)
    ag = make_agent(a, netns=ns, server=url(a, ns), credential=cred)
    keep = make_agent(a, netns=ns, server=url(a, ns))
    wait_agent(a, ag.id)
    wait_agent(a, keep.id)
    t0 = time.monotonic()
    b.cli("credential", "delete", cred[0])
    wait_agent(a, ag.id, online=False, timeout=5)
    took = time.monotonic() - t0
    assert took <= 2.0, "the agent dropped after %.1f s" % took
    assert "its credential was deleted" in a.log_text()
    # and it stays out: the server refuses the deleted credential
    wait_log(ag, "refused credential", timeout=15)
    # the other agent stays
    assert agents(a)[keep.id]["online"] is True


def test_notices_come_back_after_a_database_outage(cluster, make_agent, pg):  # noqa: F811,E501
    """PostgreSQL stops for 3 s: each node's LISTEN connection is cut and
    reconnects by itself, so a credential deleted through b afterwards
    still drops its agent on a at once; the agent stayed connected."""
    a, b, ns = cluster
    cred = credential(b)
    ag = make_agent(a, netns=ns, server=url(a, ns), credential=cred)
    wait_agent(a, ag.id)
    pg.outage(3)
    for p in (a, b):
        deadline = time.monotonic() + 15
        while "store notices: listening again" not in p.log_text():
            assert time.monotonic() < deadline, p.log_tail()
            time.sleep(0.2)
    assert "connection to the server lost" not in ag.log_text()
    t0 = time.monotonic()
    b.cli("credential", "delete", cred[0])
    wait_agent(a, ag.id, online=False, timeout=5)
    took = time.monotonic() - t0
    assert took <= 2.0, "the agent dropped after %.1f s" % took
    assert "its credential was deleted" in a.log_text()


def test_killed_node_is_noticed_its_row_closed_and_agent_moves(
        cluster, make_agent, pctarget, tmp_path):
    a, b, ns = cluster
    ag = make_agent(a, netns=ns, server="%s, %s" % (url(a, ns), url(b, ns)))
    wait_agent(a, ag.id)
    rows = wait_nodes(b, lambda r: r.get("a", {}).get("agents") == 1, 10,
                      "a holding the agent")
    id_a, id_b = rows["a"]["id"], rows["b"]["id"]
    # a session through a, held open
    target = pclib.Target(tmp_path / "target", *pctarget)
    target.start()
    try:
        asset_id = a.target_asset(target)
        pw = "pw-" + uniq()
        user = a.user_add(password=pw)
        a.allow(user, asset_id)
        client = Client(a.ssh_port)
        # OpenSSH prints a disconnect's reason at LogLevel INFO (its
        # default; the suite's clients run at ERROR)
        args = [x.replace("LogLevel=ERROR", "LogLevel=INFO") for x in
                client.ssh_args("%s#%s" % (user, asset_id),
                                "echo started; sleep 120")]
        p = subprocess.Popen(args, env=client.env(password=pw),
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        try:
            assert p.stdout.readline().strip() == b"started"
            wait_nodes(b, lambda r: r["a"]["sessions"] == 1, 10,
                       "a holding the session")
            os.kill(a.proc.pid, signal.SIGKILL)
            t0 = time.monotonic()
            # the user is told, at once, why the session ended
            _, err = p.communicate(timeout=10)
            assert p.returncode == 255, (p.returncode, err)
            assert b"portcullis: the access server stopped (restarted, or " \
                b"its node failed); this session has ended. Connect again." \
                in err, err
            assert time.monotonic() - t0 < 5
            # b declares a dead within dead_after plus a heartbeat or two
            rows = wait_nodes(b, lambda r: r["a"]["state"] == "dead",
                              DEAD_AFTER_SECONDS + 4 * HEARTBEAT_SECONDS + 5,
                              "a dead")
            took = time.monotonic() - t0
            assert rows["a"]["reaped_by"] == id_b
            assert rows["a"]["sessions"] == 0
            assert took <= DEAD_AFTER_SECONDS + 4 * HEARTBEAT_SECONDS, took
            row = b.session_of(user)
            assert row["result"] == \
                "error: interrupted (its node stopped answering)", row
            assert row["ended_at"], row
            assert row["node"] == id_a, row
            assert row["agent_node"] is None, row  # a direct route
        finally:
            if p.poll() is None:
                p.kill()
            p.wait(10)
    finally:
        target.stop()
    # the agent came back, on b
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = agents(b).get(ag.id)
        if row and row["online"] and row["node"] == id_b:
            break
        time.sleep(0.5)
    else:
        pytest.fail("agent not back on b within 60 s: %r\n%s"
                    % (agents(b).get(ag.id), ag.log_text()[-2000:]))
    assert "online (server %s" % url(b, ns) in ag.log_text()
    assert nodes(b)["b"]["agents"] == 1
    assert id_a != id_b


def test_user_on_b_reaches_the_agent_held_by_a(cluster, make_agent, pctarget,
                                               tmp_path):
    """The node: route: the agent is connected to a only; a user logs in
    through b, whose session reaches the asset behind the agent through
    a's proxy (a node credential, the shared certificate pinned)."""
    a, b, ns = cluster
    target = NsTarget(tmp_path / "target", ns, *pctarget)
    target.start()
    try:
        ag, asset_id, user, pw = user_of_an_asset_behind_a(
            a, b, ns, make_agent, target)
        r = Client(b.ssh_port).ssh("%s#%s" % (user, asset_id),
                                   "echo via-a; grep -c pcvn /proc/net/dev",
                                   password=pw)
        assert r.rc == 0, (r, b.log_tail(), a.log_tail())
        assert r.out.split() == ["via-a", "1"]  # ran inside the namespace
        row = b.session_of(user, "ok", kind="exec")
        assert row["route"] == "agent:%s" % ag.id
        rows = nodes(b)
        assert row["node"] == rows["b"]["id"], row  # the user's node
        # and the node that held the agent, read through either node
        assert row["agent_node"] == rows["a"]["id"], row
        assert a.session_of(user, "ok", kind="exec")["agent_node"] == \
            rows["a"]["id"]
        _, out, _ = a.cli("session", "show", row["id"])
        assert "agent_node" in out and rows["a"]["id"] in out, out
        assert "through agent %s" % ag.id in a.log_text()
        # the agent never connected to b
        assert "online (server %s" % url(b, ns) not in ag.log_text()
        assert "proxy=127.0.0.1:%d" % a.proxy_port in rows["a"]["addresses"]
        # a's proxy refuses a forged node credential, and an agent stream
        # asked for with anything but a node credential
        forged = "pcnode1.%s.%d.%s" % (rows["b"]["id"], int(time.time()),
                                       "0" * 64)
        status, body = proxy_ask(a.proxy_port, forged, ag.id, target.port)
        assert status == 407 and "node credential is not valid" in body
        status, body = proxy_ask(a.proxy_port, "not-a-token", ag.id,
                                 target.port)
        assert status == 403 and "nodes of this cluster" in body, body
    finally:
        target.stop()


def test_tunnel_added_on_b_listens_on_a(cluster, make_agent, pctarget,
                                        tmp_path):
    """A tunnel created through b for an agent held by a: a's tunnels
    hear of it (a notice) and listen; b, which does not hold the agent,
    does not overwrite the state a wrote, not even when it restarts."""
    a, b, ns = cluster
    target = NsTarget(tmp_path / "target", ns, *pctarget)
    target.start()
    try:
        ag = make_agent(a, netns=ns, server=url(a, ns))
        wait_agent(a, ag.id)
        _, out, _ = b.cli("tunnel", "add", ag.id, "--remote",
                          "127.0.0.1:%d" % target.port, "--acl",
                          "127.0.0.1/32")
        kv = pclib.parse_kv(out)
        tid, port = kv["id"], int(kv["port"])
        deadline = time.monotonic() + 5
        while True:
            _, out, _ = b.cli("tunnel", "list", "--json")
            state = {t["id"]: t for t in json.loads(out)}[tid]["state"]
            if state == "listening":
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        # a's listener reaches the sshd only the agent reaches
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.settimeout(10)
            assert s.recv(64).startswith(b"SSH-2.0-"), "no SSH banner"
        # b restarting (its tunnels re-read, the agent not its own)
        b.stop()
        b.start()
        assert pclib.wait_port(b.http_port, 15, b.proc, host=ns.host_ip)
        time.sleep(2 * HEARTBEAT_SECONDS)
        _, out, _ = a.cli("tunnel", "list", "--json")
        assert {t["id"]: t for t in json.loads(out)}[tid]["state"] == \
            "listening"
    finally:
        target.stop()


def banner(host, port):
    """Whether an SSH server's banner comes from host:port."""
    try:
        with socket.create_connection((host, port), timeout=10) as s:
            s.settimeout(10)
            return s.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def test_tunnel_port_on_every_node(cluster, make_agent, pctarget, tmp_path):
    """A TCP tunnel listens on every node while its agent is online on
    one: node b, which does not hold the agent (here on 127.0.0.2, the
    same port as a's on 127.0.0.1: one machine), carries a connection
    through a (the node: hop, as a session does), with a report row of
    its own; a writes the state, b leaves it alone; when the agent goes,
    b stops listening within seconds, and starts again when it is
    back."""
    a, b, ns = cluster
    target = NsTarget(tmp_path / "target", ns, *pctarget)
    target.start()
    try:
        ag = make_agent(a, netns=ns, server=url(a, ns))
        wait_agent(a, ag.id)
        _, out, _ = b.cli("tunnel", "add", ag.id, "--remote",
                          "127.0.0.1:%d" % target.port, "--acl",
                          "127.0.0.0/8")
        kv = pclib.parse_kv(out)
        tid, port = kv["id"], int(kv["port"])
        deadline = time.monotonic() + 10
        while not (banner("127.0.0.1", port) and banner("127.0.0.2", port)):
            assert time.monotonic() < deadline, (a.log_tail(), b.log_tail())
            time.sleep(0.3)
        assert "tunnel %s: listening on port %d/tcp" % (tid, port) in \
            b.log_text()
        # b's connection went through a: its row on b, route agent:ID
        rows = nodes(b)
        deadline = time.monotonic() + 10
        while True:
            _, out, _ = b.cli("session", "list", "--json")
            mine = [r for r in json.loads(out) if r["kind"] == "tunnel" and
                    r["node"] == rows["b"]["id"]]
            if mine or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert mine and mine[0]["route"] == "agent:%s" % ag.id, mine
        assert "through agent:%s" % ag.id in b.log_text()
        # only a writes the state
        _, out, _ = b.cli("tunnel", "list", "--json")
        assert {t["id"]: t for t in json.loads(out)}[tid]["state"] == \
            "listening"
        # the agent goes: b stops listening too
        ag.stop()
        wait_for_listen(("127.0.0.2", port), False, 15)
        # and it comes back: b listens again
        ag.start()
        wait_agent(a, ag.id)
        deadline = time.monotonic() + 15
        while not banner("127.0.0.2", port):
            assert time.monotonic() < deadline, b.log_tail()
            time.sleep(0.3)
    finally:
        target.stop()


def test_a_tunnel_used_through_b_does_not_idle_out_on_a(cluster, make_agent,
                                                       pctarget, tmp_path):
    """A tunnel with a one-minute idle time, used only through node b
    (which records the use in the store): node a, which holds the agent
    and saw no use itself, does not delete it when its own minute is up
    (its delete is conditional on the store's last use) and listens
    again."""
    a, b, ns = cluster
    target = NsTarget(tmp_path / "target", ns, *pctarget)
    target.start()
    try:
        ag = make_agent(a, netns=ns, server=url(a, ns))
        wait_agent(a, ag.id)
        made = time.monotonic()
        _, out, _ = b.cli("tunnel", "add", ag.id, "--remote",
                          "127.0.0.1:%d" % target.port, "--acl",
                          "127.0.0.0/8", "--idle-timeout", "1")
        kv = pclib.parse_kv(out)
        tid, port = kv["id"], int(kv["port"])
        pclib.wait_for(lambda: banner("127.0.0.2", port) or None, 15,
                       "b listens")
        # used through b half-way through the minute
        time.sleep(max(0.0, 30 - (time.monotonic() - made)))
        assert banner("127.0.0.2", port)
        # a's minute (from the tunnel's creation, all it saw itself) is
        # up: it keeps the tunnel, counting from b's use
        time.sleep(max(0.0, 72 - (time.monotonic() - made)))
        assert "deleted: idle" not in a.log_text(), a.log_tail()
        _, out, _ = a.cli("tunnel", "list", "--json")
        assert tid in {t["id"] for t in json.loads(out)}
        assert "tunnel %s: not deleted: used through another node since" % \
            tid in a.log_text(), a.log_tail()
        pclib.wait_for(lambda: banner("127.0.0.1", port) or None, 15,
                       "a listens again")
    finally:
        target.stop()


def test_udp_tunnel_port_on_every_node(cluster, make_agent, tmp_path):
    """A UDP tunnel listens on every node as a TCP one does: node b, which
    does not hold the agent, carries each client's flow to a over the
    node hop (datagrams framed on the stream) and back; several flows at
    once, each with its report row on b; a datagram of the largest size
    crosses whole; b stops listening when the agent goes."""
    from test_tunnel import Echo
    a, b, ns = cluster
    echo = Echo(ns, tmp_path / "echo.log")
    try:
        ag = make_agent(a, netns=ns, server=url(a, ns))
        wait_agent(a, ag.id)
        _, out, _ = b.cli("tunnel", "add", ag.id, "--remote",
                          "127.0.0.1:%d" % echo.port, "--udp", "--acl",
                          "127.0.0.0/8")
        kv = pclib.parse_kv(out)
        tid, port = kv["id"], int(kv["port"])

        def ask(s, data, tries=1):
            for _ in range(tries):
                s.sendto(data, ("127.0.0.2", port))
                try:
                    return s.recvfrom(65536)[0]
                except (socket.timeout, ConnectionRefusedError):
                    time.sleep(0.3)
            return None

        socks = []
        for i in range(3):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.settimeout(2)
            socks.append(s)
        try:
            # b listens once the presence notice came (within seconds)
            assert ask(socks[0], b"first", tries=25) == b"echo:first", \
                b.log_tail()
            assert "tunnel %s: listening on port %d/udp" % (tid, port) in \
                b.log_text()
            for i, s in enumerate(socks):
                for j in range(3):
                    d = b"flow%d-%d" % (i, j)
                    assert ask(s, d, tries=3) == b"echo:" + d
            big = bytes(range(256)) * 200  # 51200 bytes, framed as one
            assert ask(socks[1], big, tries=3) == b"echo:" + big
            # every flow reached the target through a: rows on b
            id_b = nodes(b)["b"]["id"]
            deadline = time.monotonic() + 10
            while True:
                _, out, _ = b.cli("session", "list", "--json")
                mine = [r for r in json.loads(out)
                        if r["kind"] == "tunnel" and r["node"] == id_b]
                if len(mine) >= 3 or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            assert len(mine) >= 3, mine
            assert all(r["route"] == "agent:%s" % ag.id for r in mine), mine
        finally:
            for s in socks:
                s.close()
        # the agent goes: b stops listening (the port is free on 127.0.0.2)
        ag.stop()
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind(("127.0.0.2", port))
                break
            except OSError:
                assert time.monotonic() < deadline, b.log_tail()
                time.sleep(0.3)
    finally:
        echo.stop()


def wait_for_listen(addr, listening, timeout):
    """Waits until a TCP connection to addr is accepted (listening) or
    refused (not)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(addr, timeout=5).close()
            now = True
        except ConnectionRefusedError:
            now = False
        if now == listening:
            return
        assert time.monotonic() < deadline, (addr, listening)
        time.sleep(0.2)


def test_paused_node_declared_dead_takes_its_agents_back(cluster, make_agent):
    """Node a stopped (SIGSTOP) longer than dead_after: b declares it dead
    and marks its agent offline; when a runs again it learns it was
    declared dead and writes the agent it still holds back online."""
    a, b, ns = cluster
    ag = make_agent(a, netns=ns, server=url(a, ns))
    wait_agent(a, ag.id)
    id_a = nodes(b)["a"]["id"]
    # a TCP tunnel of the agent: b listens for it too (on 127.0.0.2)
    _, out, _ = b.cli("tunnel", "add", ag.id, "--remote", "127.0.0.1:9",
                      "--acl", "127.0.0.0/8")
    port = int(pclib.parse_kv(out)["port"])
    wait_for_listen(("127.0.0.2", port), True, 10)
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        wait_nodes(b, lambda r: r["a"]["state"] == "dead",
                   DEAD_AFTER_SECONDS + 4 * HEARTBEAT_SECONDS + 5, "a dead")
        assert agents(b)[ag.id]["online"] is False
        # the dead node's agent is offline: b's tunnel stops listening
        wait_for_listen(("127.0.0.2", port), False, 10)
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    wait_nodes(b, lambda r: r["a"]["state"] == "online", 10, "a online")
    row = wait_agent(b, ag.id, timeout=10)
    assert row["node"] == id_a, row
    assert "declared this node dead" in a.log_text()
    # the agent never noticed: its connection to a held
    assert "connection to the server lost" not in ag.log_text()
    # a wrote it back online and said so: b listens again
    wait_for_listen(("127.0.0.2", port), True, 10)


def test_a_node_frozen_inside_a_write_does_not_hold_the_others(cluster, pg):  # noqa: F811,E501
    """Every write of every node takes the cluster's one write lock. A node
    stopped (SIGSTOP, a paused VM) inside a write transaction keeps its
    connection open (its kernel still answers), so the lock stayed held
    and the other node could not write its heartbeat, let alone declare
    the frozen one dead, until it ran again. Its connections now carry
    idle_in_transaction_session_timeout (a third of dead_after, at least
    3 s): the server ends the frozen one's transaction and the other node
    goes on. Made certain here: a psql session holds the nodes table, so
    the node whose heartbeat has taken the write lock waits for it there;
    that node is stopped, the table let go, and its transaction is left
    idle holding the write lock."""
    a, b, _ = cluster
    # (a node answers HTTP a moment before its row is written)
    wait_nodes(b, lambda r: all(r.get(n, {}).get("state") == "online"
                                for n in ("a", "b")), 15, "both online")
    holder = subprocess.Popen(
        pg.as_user + [str(pg.bindir / "psql"), "-h", str(pg.dir), "-p",
                      str(pg.PORT), "-U", "portcullis", "-d", "portcullis",
                      "-X", "-q", "-c",
                      "BEGIN; LOCK TABLE nodes IN EXCLUSIVE MODE;"
                      " SELECT pg_sleep(60); COMMIT;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    frozen = None
    try:
        # the node whose heartbeat holds the write lock and waits for the
        # table (the connections name their node: application_name)
        def waiting():
            out = pg.psql(
                "SELECT a.application_name FROM pg_stat_activity a"
                " JOIN pg_locks l ON l.pid = a.pid JOIN pg_class c"
                " ON c.oid = l.relation WHERE NOT l.granted"
                " AND c.relname = 'nodes'").strip()
            return out if out in ("portcullis a", "portcullis b") else None
        name = pclib.wait_for(waiting, 15, "a heartbeat waiting for nodes")
        frozen, other = (a, b) if name == "portcullis a" else (b, a)
        fname, oname = name[-1], "b" if name == "portcullis a" else "a"
        os.kill(frozen.proc.pid, signal.SIGSTOP)
        # the table goes: the frozen node's UPDATE runs, then its
        # transaction sits idle with the write lock
        pg.psql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE"
                " query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()")
        holder.wait(timeout=10)
        wait_nodes(other, lambda r: r[fname]["state"] == "dead",
                   DEAD_AFTER_SECONDS + 4 * HEARTBEAT_SECONDS + 5,
                   "%s declared dead by %s" % (fname, oname))
        assert other.proc.poll() is None
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if frozen is not None:
            os.kill(frozen.proc.pid, signal.SIGCONT)
    # it runs again: its lost connection is opened anew, it learns it was
    # declared dead and is back
    wait_nodes(other, lambda r: r[fname]["state"] == "online", 15,
               "%s online again" % fname)
    assert "declared this node dead" in frozen.log_text(), frozen.log_tail()
