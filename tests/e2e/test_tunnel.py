"""Tunnels (SPEC §6, issue 4 point 5): `portcullis tunnel add` makes the
server listen on a port and carry each TCP connection or UDP flow whose
source the tunnel's ACL allows to HOST:PORT as seen from an agent.

The agent and its targets live in a network namespace of the test's own
(agentlib.NetNS) that nothing on the host can connect into: the target
sshd and an echo service listen on the namespace's loopback, so whatever
reaches them from the host went through the agent. Clients connect to the
tunnel ports on the host's 127.0.0.1; 127.0.0.2 plays the address outside
the ACL.
"""

import json
import os
import select
import socket
import subprocess
import threading
import time

import pytest

import pclib
from agentlib import NsTarget, make_agent, netns  # noqa: F401 (fixtures)
from pclib import Portcullis, cpu_seconds, wait_for

FLOW_SECONDS = 2  # [tunnel] udp_flow_seconds of the test servers
ECHO_PORT = 7     # inside the namespace: nothing else listens there

# TCP and UDP echo on the namespace's 127.0.0.1:7; every datagram it gets
# is logged (hex, one per line) to argv[1], so a test can tell what
# reached the target.
ECHO_SERVICE = r'''
import socket, sys, threading
log = open(sys.argv[1], "ab", buffering=0)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", int(sys.argv[2])))
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", int(sys.argv[2])))
t.listen(64)
def udp():
    while True:
        d, a = u.recvfrom(65536)
        log.write(d.hex().encode() + b"\n")
        u.sendto(b"echo:" + d, a)
def conn(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
def tcp():
    while True:
        c, _ = t.accept()
        threading.Thread(target=conn, args=(c,), daemon=True).start()
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
tcp()
'''


@pytest.fixture
def server(tmp_path, netns):  # noqa: F811
    """A started server for an agent inside netns (its HTTP listener on the
    host's end of the veth), tunnel ports from a range of its own (so
    parallel runs do not collide; below Linux's ephemeral ports, which
    outgoing connections take, and above the default range 20000-20999),
    UDP flows ending after FLOW_SECONDS."""
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    p.set_config("http", "listen", netns.host_ip)
    p.set_config("http", "allow_plain_http", "true")
    base = pclib.port_block(50)
    p.set_config("tunnel", "port_min", str(base))
    p.set_config("tunnel", "port_max", str(base + 49))
    p.set_config("tunnel", "udp_flow_seconds", str(FLOW_SECONDS))
    p.start()
    if not pclib.wait_port(p.http_port, 15, p.proc, host=netns.host_ip):
        pytest.fail("HTTP listener not up on %s:%d; log:\n%s"
                    % (netns.host_ip, p.http_port, p.log_tail()))
    yield p
    p.stop()
    found = p.sanitizer_findings(new_only=False)
    if found:
        pytest.fail("sanitizer report in %s:\n%s" % (p.log_path, found),
                    pytrace=False)


@pytest.fixture
def agent(server, netns, make_agent):  # noqa: F811
    """A portcullis-agent inside netns, online (default allow-list: the
    namespace's loopback)."""
    a = make_agent(server, netns=netns)
    wait_online(server, a.id)
    return a


class Echo:
    def __init__(self, netns, logpath):
        self.log = logpath
        self.port = ECHO_PORT
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns.ns, "/usr/bin/python3", "-c",
             ECHO_SERVICE, str(logpath), str(ECHO_PORT)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        r, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline() if r else b""
        if line.strip() != b"ready":
            self.stop()
            pytest.fail("the echo service did not start: %r" % line)

    def datagrams(self):
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        return [bytes.fromhex(x) for x in text.split()]

    def stop(self):
        pclib.stop_process(self.proc, 5)


@pytest.fixture
def echo(netns, tmp_path):  # noqa: F811
    """TCP and UDP echo on 127.0.0.1:ECHO_PORT inside netns (UDP answers
    b"echo:" + datagram)."""
    e = Echo(netns, tmp_path / "echo.log")
    yield e
    e.stop()


@pytest.fixture
def ns_target(tmp_path, netns, pctarget):  # noqa: F811
    """The suite's target sshd, on the namespace's loopback."""
    t = NsTarget(tmp_path / "target", netns, *pctarget)
    t.start()
    yield t
    t.stop()


# ----------------------------------------------------------------- helpers

def agent_row(pc, agent_id):
    _, out, _ = pc.cli("agent", "list", "--json")
    return {a["id"]: a for a in json.loads(out)}.get(agent_id)


def wait_online(pc, agent_id, online=True):
    wait_for(lambda: (agent_row(pc, agent_id) or {}).get("online") is online,
             timeout=30, what="agent %s online=%s" % (agent_id, online))


def tunnel_add(pc, agent_id, remote, *args):
    """`tunnel add`; returns (id, port, state) as it printed them."""
    _, out, _ = pc.cli("tunnel", "add", agent_id, "--remote", remote, *args)
    kv = pclib.parse_kv(out)
    return kv["id"], int(kv["port"]), kv["state"]


def tunnels(pc):
    _, out, _ = pc.cli("tunnel", "list", "--json")
    return {t["id"]: t for t in json.loads(out)}


def state_of(pc, tunnel_id):
    return tunnels(pc)[tunnel_id]["state"]


def tunnel_rows(pc, tunnel_id):
    """The tunnel's closed report rows."""
    return [s for s in pc.sessions() if s["kind"] == "tunnel" and
            tunnel_id in (s.get("detail") or "") and s["result"]]


def ssh_via(target, port, command):
    """ssh as root to the target sshd, but to the tunnel's port on the
    host's 127.0.0.1."""
    args = target.ssh_args(command)
    i = args.index("-p")
    args[i + 1] = str(port)
    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    return pclib.run(args, env=env)


def tcp_refused(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return False
    except ConnectionRefusedError:
        return True


def tcp_echo(port, data=b"ping\n", src="127.0.0.1"):
    """What comes back for data sent through a TCP tunnel to the echo;
    b"" if the connection was closed without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(src, 0)) as s:
        s.settimeout(10)
        try:
            s.sendall(data)
            got = b""
            while len(got) < len(data):
                d = s.recv(65536)
                if not d:
                    break
                got += d
            return got
        except (ConnectionResetError, BrokenPipeError):
            return b""


def udp_socket(src="127.0.0.1", timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    return s


def udp_port_free(port):
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


# ------------------------------------------------------------------- tests

@pytest.mark.core
def test_tcp_tunnel_carries_ssh_to_a_target_only_the_agent_reaches(
        server, agent, ns_target):
    # the target is out of the host's reach
    assert tcp_refused(ns_target.port)
    tid, port, state = tunnel_add(server, agent.id,
                                  "127.0.0.1:%d" % ns_target.port,
                                  "--acl", "127.0.0.1/32")
    assert state == "listening"
    t = tunnels(server)[tid]
    assert (t["state"], t["local_port"], t["acl"]) == \
        ("listening", port, ["127.0.0.1/32"])
    r = ssh_via(ns_target, port, "echo through-the-tunnel")
    assert (r.rc, r.out) == (0, "through-the-tunnel\n"), r
    r = ssh_via(ns_target, port, "echo again")
    assert (r.rc, r.out) == (0, "again\n"), r
    rows = wait_for(lambda: len(tunnel_rows(server, tid)) >= 2 and
                    tunnel_rows(server, tid), what="two report rows")
    assert len(rows) == 2
    for row in rows:
        assert row["result"] == "ok", row
        assert row["bytes_up"] > 0 and row["bytes_down"] > 0, row
        assert row["route"] == "agent:%s" % agent.id
        assert row["client"].startswith("127.0.0.1:")
        assert "%s/127.0.0.1:%d" % (agent.id, ns_target.port) in \
            row["detail"]
    # the first use reached the store at once
    assert tunnels(server)[tid]["last_used"]


def test_tcp_tunnel_carries_bulk_data_both_ways(server, agent, echo):
    tid, port, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % echo.port)
    blob = os.urandom(8 << 20)
    got = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        sender = threading.Thread(target=s.sendall, args=(blob,))
        sender.start()
        while len(got) < len(blob):
            d = s.recv(1 << 16)
            if not d:
                break
            got += d
        sender.join(30)
    assert len(got) == len(blob)
    assert bytes(got) == blob
    # the connection's row has what it carried (the echo adds nothing)
    row = wait_for(lambda: tunnel_rows(server, tid),
                   what="the connection's row to close")[0]
    assert (row["result"], row["bytes_up"], row["bytes_down"]) == \
        ("ok", len(blob), len(blob)), row


def test_tcp_from_outside_the_acl_is_closed_at_once(server, agent, ns_target):
    tid, port, _ = tunnel_add(server, agent.id,
                              "127.0.0.1:%d" % ns_target.port,
                              "--acl", "127.0.0.1/32")
    s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                 source_address=("127.0.0.2", 0))
    s.settimeout(5)
    try:
        got = s.recv(100)
    except ConnectionResetError:
        got = b""
    s.close()
    assert got == b""  # no SSH banner: closed before anything was carried
    row = wait_for(lambda: tunnel_rows(server, tid), what="the row")[0]
    assert row["result"].startswith("denied:"), row
    assert row["client"].startswith("127.0.0.2:")
    assert row["route"] == "agent:%s" % agent.id
    assert "refused 127.0.0.2:" in server.log_text()
    # the allowed address still gets through, to the SSH server
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(10)
    assert s.recv(100).startswith(b"SSH-2.0-")
    s.close()


def test_udp_tunnel_round_trips_and_refuses_other_sources(server, agent,
                                                          echo):
    tid, port, state = tunnel_add(server, agent.id,
                                  "127.0.0.1:%d" % echo.port, "--udp",
                                  "--acl", "127.0.0.1/32")
    assert state == "listening"
    c = udp_socket()
    sent = 0
    for i in range(20):
        msg = b"datagram %d " % i + b"x" * i * 50
        c.sendto(msg, ("127.0.0.1", port))
        sent += len(msg)
        data, src = c.recvfrom(65536)
        assert (data, src) == (b"echo:" + msg, ("127.0.0.1", port))
    # a large datagram arrives whole
    big = bytes(range(256)) * 200
    c.sendto(big, ("127.0.0.1", port))
    sent += len(big)
    assert c.recvfrom(65536)[0] == b"echo:" + big
    # another client is a flow of its own
    c2 = udp_socket()
    c2.sendto(b"second", ("127.0.0.1", port))
    assert c2.recvfrom(100)[0] == b"echo:second"
    # another source address gets nothing, and nothing reaches the target
    bad = udp_socket("127.0.0.2", timeout=2)
    for _ in range(3):
        bad.sendto(b"from outside", ("127.0.0.1", port))
    with pytest.raises(socket.timeout):
        bad.recvfrom(100)
    assert b"from outside" not in echo.datagrams()
    assert len(echo.datagrams()) == 22
    # flows end after udp_flow_seconds without datagrams; their rows then
    # hold the payload bytes each way
    rows = wait_for(lambda: len(tunnel_rows(server, tid)) >= 3 and
                    tunnel_rows(server, tid), what="the flows' rows")
    by_client = {r["client"]: r for r in rows}
    first = by_client["127.0.0.1:%d" % c.getsockname()[1]]
    assert first["result"] == "ok"
    assert first["route"] == "agent:%s" % agent.id
    assert (first["bytes_up"], first["bytes_down"]) == (sent, sent + 21 * 5)
    denied = [r for r in rows if r["client"].startswith("127.0.0.2:")]
    assert len(denied) == 1, rows  # one row per source, not per datagram
    assert denied[0]["result"].startswith("denied:")
    # after its flow ended, the same client starts a new one
    c.sendto(b"again", ("127.0.0.1", port))
    assert c.recvfrom(100)[0] == b"echo:again"
    for s in (c, c2, bad):
        s.close()


@pytest.mark.core
def test_acl_change_applies_to_new_connections(server, agent, echo):
    tid, port, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % echo.port,
                              "--acl", "127.0.0.1/32")
    assert tcp_echo(port, src="127.0.0.2") == b""
    assert tcp_echo(port) == b"ping\n"
    server.cli("tunnel", "acl", tid, "127.0.0.0/29")
    wait_for(lambda: tcp_echo(port, src="127.0.0.2") == b"ping\n",
             what="the new ACL to apply")
    server.cli("tunnel", "acl", tid, "127.0.0.2/32")
    wait_for(lambda: tcp_echo(port) == b"", what="127.0.0.1 refused")
    assert tcp_echo(port, src="127.0.0.2") == b"ping\n"


def test_delete_closes_the_listeners(server, agent, echo):
    tid, port, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % echo.port)
    uid, uport, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % echo.port,
                               "--udp")
    assert tcp_echo(port) == b"ping\n"
    c = udp_socket()
    c.sendto(b"before", ("127.0.0.1", uport))
    assert c.recvfrom(100)[0] == b"echo:before"
    # an established connection ends with its tunnel
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    held.sendall(b"x\n")
    assert held.recv(100)
    server.cli("tunnel", "delete", tid)
    wait_for(lambda: tcp_refused(port), what="the TCP listener to close")
    held.settimeout(10)
    assert held.recv(100) == b"", "the connection outlived its tunnel"
    held.close()
    server.cli("tunnel", "delete", uid)
    wait_for(lambda: udp_port_free(uport), what="the UDP socket to close")
    assert tunnels(server) == {}
    # the open UDP flow's row was closed with what it carried
    row = wait_for(lambda: tunnel_rows(server, uid), what="the flow's row")[0]
    assert (row["result"], row["bytes_up"], row["bytes_down"]) == \
        ("ok", 6, 11)
    c.close()


def test_listener_follows_the_agent(server, agent, echo):
    tid, port, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % echo.port)
    uid, uport, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % echo.port,
                               "--udp")
    assert tcp_echo(port) == b"ping\n"
    agent.kill()
    wait_for(lambda: tcp_refused(port), what="the TCP listener to close")
    wait_for(lambda: udp_port_free(uport), what="the UDP socket to close")
    assert state_of(server, tid) == "agent offline"
    assert state_of(server, uid) == "agent offline"
    agent.start()
    wait_for(lambda: state_of(server, tid) == "listening", timeout=30,
             what="the listener to come back")
    assert tcp_echo(port) == b"ping\n"
    assert state_of(server, uid) == "listening"
    c = udp_socket()
    c.sendto(b"back", ("127.0.0.1", uport))
    assert c.recvfrom(100)[0] == b"echo:back"
    c.close()


def test_tunnel_added_while_the_agent_is_offline(server, agent, echo):
    agent.kill()
    wait_online(server, agent.id, online=False)
    tid, port, state = tunnel_add(server, agent.id,
                                  "127.0.0.1:%d" % echo.port)
    assert state == "agent offline"
    assert tcp_refused(port)
    agent.start()
    wait_for(lambda: state_of(server, tid) == "listening", timeout=30,
             what="state 'listening'")
    assert tcp_echo(port) == b"ping\n"


def test_a_taken_port_is_an_error_state_until_it_is_free(server, agent,
                                                         echo):
    agent.kill()
    wait_online(server, agent.id, online=False)
    tid, port, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % echo.port)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen(1)
    try:
        agent.start()
        st = wait_for(lambda: state_of(server, tid).startswith("error:") and
                      state_of(server, tid), timeout=30,
                      what="an error state")
        assert "in use" in st, st
    finally:
        squatter.close()
    # retried by itself
    wait_for(lambda: state_of(server, tid) == "listening", timeout=20,
             what="the listener once the port is free")
    assert tcp_echo(port) == b"ping\n"


def test_unreachable_target_is_reported(server, agent):
    tid, port, _ = tunnel_add(server, agent.id, "127.0.0.1:9")
    assert tcp_echo(port) == b""
    row = wait_for(lambda: tunnel_rows(server, tid), what="the row")[0]
    assert row["result"].startswith("error:"), row
    assert "refused" in row["result"].lower(), row


def test_unreachable_target_with_early_bytes_gets_nothing_back(server, agent):
    """The server sends a client's first bytes before the agent's "ok"
    (optimistic open): when the target then refuses, the client's
    connection is closed without a byte of anyone's, and the row says why
    with nothing carried."""
    tid, port, _ = tunnel_add(server, agent.id, "127.0.0.1:9")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(10)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n" * 100)
        got = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        except ConnectionResetError:
            pass
    assert got == b""
    row = wait_for(lambda: tunnel_rows(server, tid), what="the row")[0]
    assert row["result"].startswith("error: connect"), row
    assert "refused" in row["result"].lower(), row
    assert (row["bytes_up"], row["bytes_down"]) == (0, 0), row


def test_every_row_is_written_when_the_server_stops(server, agent, echo):
    """Report rows are queued and written in batches (at most 100 ms
    late): a server stopped right after many short connections, with one
    still open, has written a row for each of them."""
    tid, port, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % echo.port)
    n = 30
    for i in range(n):
        data = b"short %d\n" % i
        assert tcp_echo(port, data) == data
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    held.settimeout(10)
    held.sendall(b"held\n")
    assert held.recv(100) == b"held\n"
    assert server.stop() == 0  # SIGTERM at once, the last rows still queued
    held.close()
    rows = tunnel_rows(server, tid)  # read from the store, server stopped
    assert len(rows) == n + 1, rows
    short = [r for r in rows if r["bytes_up"] != 5]
    assert len(short) == n
    for r in short:
        # Each client had its echo and closed; a stream whose close had not
        # come back from the agent yet when the server stopped ends with
        # the stop ("agent disconnected"), with all its bytes counted.
        assert r["result"] in ("ok", "error: agent disconnected"), r
        assert r["bytes_up"] == r["bytes_down"], r
    assert sum(r["result"] == "ok" for r in short) >= n // 2, short
    assert sorted(r["bytes_up"] for r in short) == \
        sorted(len(b"short %d\n" % i) for i in range(n))
    last = [r for r in rows if r["bytes_up"] == 5]
    assert len(last) == 1 and last[0]["bytes_down"] == 5, last
    assert last[0]["result"], last  # closed by the stop, whatever the words
    # no row of this tunnel was left open
    assert not [s for s in server.sessions() if s["kind"] == "tunnel" and
                tid in (s.get("detail") or "") and not s["result"]]


def test_idle_agent_with_open_streams_sleeps(server, agent, echo):
    """An agent whose tunnels hold open, idle connections sleeps in its
    poll: no busy polling (libssh's zero-timeout polls happen only in a
    pass that something woke). Measured from /proc over 3 s; the bound is
    generous (a loop polling without sleep would use most of the 3 s)."""
    with open("/proc/%d/comm" % agent.pid) as f:
        assert f.read().strip().startswith("portcullis-agen")
    tid, port, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % echo.port)
    conns = []
    try:
        for i in range(20):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.settimeout(10)
            conns.append(c)
            c.sendall(b"hello %d\n" % i)
            got = b""
            while not got.endswith(b"\n"):
                d = c.recv(100)
                assert d, "the echo closed"
                got += d
            assert got == b"hello %d\n" % i
        time.sleep(1)  # the last replies' rows and window updates settle
        a0, s0 = cpu_seconds(agent.pid), cpu_seconds(server.pid)
        time.sleep(3)
        agent_cpu = cpu_seconds(agent.pid) - a0
        server_cpu = cpu_seconds(server.pid) - s0
        assert agent_cpu <= 0.15, agent_cpu
        assert server_cpu <= 0.15, server_cpu
        # and the streams still work after the quiet
        conns[0].sendall(b"again\n")
        assert conns[0].recv(100) == b"again\n"
    finally:
        for c in conns:
            c.close()


@pytest.mark.timing
@pytest.mark.timeout(180)
def test_idle_tunnel_is_deleted(server, agent, echo):
    """--idle-timeout is in minutes (the server sweeps once a second): this
    test waits about 80 s. Used 20 s after it was made, the tunnel must
    still be there 70 s after it was made (9 s past its minute had the
    use not restarted the idle time) and go a minute after the use."""
    tid, port, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % echo.port,
                              "--idle-timeout", "1")
    keep, kport, _ = tunnel_add(server, agent.id,
                                "127.0.0.1:%d" % echo.port)
    time.sleep(20)
    # a connection restarts the idle time
    wait_for(lambda: tcp_refused(port) is False and tcp_echo(port) ==
             b"ping\n", what="a connection through the tunnel")
    used = time.monotonic()
    time.sleep(50)
    assert tid in tunnels(server)  # 50 s after its last use
    wait_for(lambda: tid not in tunnels(server), timeout=30, step=1,
             what="the idle tunnel to be deleted")
    assert time.monotonic() - used >= 59
    assert tcp_refused(port)
    # the tunnel without an idle timeout stays
    assert keep in tunnels(server)
    wait_for(lambda: state_of(server, keep) == "listening", timeout=30,
             what="the other tunnel listening")
    assert tcp_echo(kport) == b"ping\n"
