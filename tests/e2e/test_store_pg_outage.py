"""What is written during a PostgreSQL outage (issue 18: "stop PostgreSQL
for 10 s: ... nothing in the store is lost; everything recovers by itself
when it returns").

Tunnel connection report rows and audit events the store cannot take
while its database is down wait in the server's memory, in order and
within a bound ([store] outage_rows, outage_audit_events), and are written
by the server itself when PostgreSQL is back: no restart. What does not
fit the bound is counted, said once in the log, and recorded as an audit
event when the store answers again.

The agent runs on the host (the tunnel's target is an echo service on the
host's loopback, which the agent's default allow-list permits); each test
has a PostgreSQL of its own (pglib.PgServer), since it stops it.
"""

import json
import re
import socket
import subprocess
import threading
import time

import pytest

import pclib
import pglib
from agentlib import make_agent  # noqa: F401 (fixture)
from pclib import Client, Portcullis, uniq
from test_store_pg import lock_tables, slowest_healthz, unlock_tables

# this file's waits: store outages take longer than most
def wait_for(cond, timeout=20.0, what="condition", step=0.25):
    return pclib.wait_for(cond, timeout, what, step)


class TcpEcho:
    """A TCP echo on the host's 127.0.0.1 (a free port)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    @staticmethod
    def _serve(c):
        with c:
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                c.sendall(d)

    def close(self):
        self.sock.close()


def echo_through(port, data=b"ping\n"):
    """Sends data through the tunnel's port and reads the echo; returns
    (what came back, the client's source port)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(10)
        src = s.getsockname()[1]
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            d = s.recv(65536)
            if not d:
                break
            got += d
        return got, src


def tunnel_rows_of(pc, srcs):
    """Report rows of tunnel connections from the given source ports
    (closed ones only)."""
    out = {}
    for s in pc.sessions():
        if s.get("kind") != "tunnel" or not s.get("result"):
            continue
        m = re.search(r":(\d+)$", s.get("client") or "")
        if m and int(m.group(1)) in srcs:
            out[int(m.group(1))] = s
    return out


def audit(pc):
    _, out, _ = pc.cli("audit", "list", "--json")
    return json.loads(out)


def server_on_own_pg(tmp_path, own, **conf):
    p = Portcullis(tmp_path / "pc", store_url=own.new_database())
    p.tune_for_tests()
    base = pclib.port_block(10)
    p.set_config("tunnel", "port_min", str(base))
    p.set_config("tunnel", "port_max", str(base + 9))
    for k, v in conf.items():
        p.set_config("store", k, str(v))
    p.start()
    p.wait_http()
    return p


def stop_clean(pc):
    """Stops pc (exit 0) and fails on anything a sanitizer logged (the
    ASan build of the suite)."""
    assert pc.stop() == 0
    found = pc.sanitizer_findings()
    if found:
        pytest.fail("sanitizer report in %s:\n%s" % (pc.log_path, found),
                    pytrace=False)


def tunnel_to(pc, agent_id, echo):
    _, out, _ = pc.cli("tunnel", "add", agent_id, "--remote",
                       "127.0.0.1:%d" % echo.port, "--acl", "127.0.0.1/32")
    kv = pclib.parse_kv(out)
    assert kv["state"] == "listening", kv
    return kv["id"], int(kv["port"])


def wait_agent_online(pc, agent_id):
    def online():
        _, out, _ = pc.cli("agent", "list", "--json")
        return any(a["id"] == agent_id and a.get("online") is True
                   for a in json.loads(out))
    wait_for(online, 30, "agent %s online" % agent_id)


def test_tunnel_rows_and_audit_events_of_an_outage_are_written_when_it_ends(
        target, tmp_path, make_agent):  # noqa: F811
    """PostgreSQL down: tunnel connections still work and their rows, a
    refused login's login.fail event and the session.end event of a
    session that ended meanwhile all reach the store once PostgreSQL is
    back, with no restart of Portcullis; nothing is reported lost."""
    own = pglib.PgServer()
    p = None
    echo = TcpEcho()
    ending = None
    try:
        p = server_on_own_pg(tmp_path, own)
        a = make_agent(p)
        wait_agent_online(p, a.id)
        tid, port = tunnel_to(p, a.id, echo)
        got, before = echo_through(port)
        assert got == b"ping\n"
        wait_for(lambda: tunnel_rows_of(p, {before}), 20,
                 "the row of the connection before the outage")

        pw = "pw-" + uniq()
        user = p.user_add(password=pw)
        asset = p.target_asset(target)
        p.allow(user, asset)
        client = Client(p.ssh_port)
        login = "%s#%s" % (user, asset)
        ending = client.popen_ssh(login, "cat; echo ending-done",
                                  password=pw, stdin=subprocess.PIPE)
        ending.stdin.write(b"one\n")
        ending.stdin.flush()
        assert ending.stdout.readline() == b"one\n"
        row = wait_for(lambda: next(
            (s for s in p.sessions() if s.get("user") == user and
             not s.get("result")), None), 20, "the session's open row")
        seen_before = max(e["seq"] for e in audit(p))

        own.stop()
        t0 = time.monotonic()
        # tunnel connections during the outage: carried, and their rows
        # kept for later
        srcs = set()
        for i in range(25):
            data = b"outage-%d\n" % i
            got, src = echo_through(port, data)
            assert got == data, (i, got)
            srcs.add(src)
        # a login refused because the store does not answer (audited
        # login.fail "store unavailable")
        stranger = "nobody-" + uniq()
        r = client.ssh("%s#%s" % (stranger, asset), "true", password="x")
        assert r.rc == 255, r
        # a session that ends during the outage (audited session.end)
        ending.stdin.close()
        assert ending.stdout.readline() == b"ending-done\n"
        assert ending.wait(timeout=20) == 0
        ending = None
        time.sleep(max(0.0, 10 - (time.monotonic() - t0)))

        own.start()
        rows = wait_for(lambda: (lambda x: x if len(x) == len(srcs) else
                                 None)(tunnel_rows_of(p, srcs)),
                        30, "the outage's 25 tunnel rows")
        for src, s in rows.items():
            assert s["result"] == "ok", s
            assert s["bytes_up"] == s["bytes_down"] > 0, s
            assert tid in s.get("detail", ""), s
            assert s.get("ended_at"), s

        def events():
            new = [e for e in audit(p) if e["seq"] > seen_before]
            fail = [e for e in new if e["action"] == "login.fail" and
                    e["actor"] == stranger]
            end = [e for e in new if e["action"] == "session.end" and
                   e["target"] == row["id"]]
            return (fail, end, new) if fail and end else None
        fail, end, new = wait_for(events, 30, "the outage's audit events")
        assert fail[0]["detail"] == "store unavailable", fail
        assert end[0]["actor"] == user, end
        assert not [e for e in new if e["action"] in
                    ("audit.lost", "report.lost")], new
        # written in the order they happened: the login.fail before the
        # session's end, with the times they happened (not when written)
        assert fail[0]["seq"] < end[0]["seq"], new
        assert fail[0]["time"] <= end[0]["time"], new
        rc, out, _ = p.cli("audit", "verify")
        assert rc == 0 and out.startswith("ok"), out
        log = p.log_text()
        assert "report rows wait in memory" in log
        assert "audit events wait in memory" in log
        assert "tunnel report row(s) written" in log
        assert "audit event(s) written" in log
        assert "not kept" not in log
        # and the store is simply back: a new connection's row
        got, after = echo_through(port)
        assert got == b"ping\n"
        wait_for(lambda: tunnel_rows_of(p, {after}), 20, "a new row")
        stop_clean(p)
    finally:
        if ending is not None:
            ending.kill()
            ending.wait()
        if p is not None:
            p.stop()
        echo.close()
        own.close()


def test_the_outage_queues_hold_their_bounds(target, tmp_path,
                                             make_agent):  # noqa: F811
    """[store] outage_rows = 16 and outage_audit_events = 16: 40 tunnel
    connections during the outage all work, but only the first 16 rows
    are kept; failed logins (which anyone can cause before authenticating)
    take at most half of the audit room. Each bound is said once in the
    log, and what was not kept is counted in an audit event when the
    store is back."""
    own = pglib.PgServer()
    p = None
    echo = TcpEcho()
    try:
        p = server_on_own_pg(tmp_path, own, outage_rows=16,
                             outage_audit_events=16)
        a = make_agent(p)
        wait_agent_online(p, a.id)
        tid, port = tunnel_to(p, a.id, echo)
        got, before = echo_through(port)
        assert got == b"ping\n"
        # written before the outage, so it does not take a place
        wait_for(lambda: tunnel_rows_of(p, {before}), 20,
                 "the row of the connection before the outage")
        asset = p.target_asset(target)
        client = Client(p.ssh_port)
        seen_before = max(e["seq"] for e in audit(p))

        own.stop()
        srcs = []
        for i in range(40):
            data = b"flood-%d\n" % i
            got, src = echo_through(port, data)
            assert got == data, (i, got)  # the connections themselves work
            srcs.append(src)
        strangers = ["nobody%d-%s" % (i, uniq()) for i in range(12)]
        for s in strangers:
            r = client.ssh("%s#%s" % (s, asset), "true", password="x")
            assert r.rc == 255, r
        time.sleep(1)
        log = p.log_text()
        assert log.count("report rows wait for the store already") == 1, \
            p.log_tail()
        assert log.count("audit events wait for the database already") \
            == 1, p.log_tail()
        refused = log.count("refused: the store is unavailable")
        assert refused >= len(strangers)

        own.start()
        lost = wait_for(lambda: [e for e in audit(p) if e["seq"] >
                                 seen_before and e["action"] in
                                 ("audit.lost", "report.lost")]
                        if len([e for e in audit(p) if e["action"] in
                                ("audit.lost", "report.lost")]) == 2
                        else None, 30, "the two notes of what was lost")
        # the first 16 connections' rows, none of the later ones
        rows = tunnel_rows_of(p, set(srcs))
        assert set(rows) == set(srcs[:16]), sorted(
            srcs.index(x) for x in rows)
        assert all(s["result"] == "ok" for s in rows.values())
        report = [e for e in lost if e["action"] == "report.lost"]
        assert report[0]["detail"].startswith(
            "24 tunnel report row(s)"), report
        # failed logins kept: half the room (8); the rest counted
        fails = [e for e in audit(p) if e["seq"] > seen_before and
                 e["action"] == "login.fail"]
        assert len(fails) == 8, fails
        # the earliest ones (audit list is newest first)
        actors = [e["actor"] for e in sorted(fails, key=lambda e: e["seq"])]
        assert actors[0] == strangers[0], actors
        assert set(actors) <= set(strangers[:8]), actors
        note = [e for e in lost if e["action"] == "audit.lost"]
        assert note[0]["detail"].startswith(
            "%d audit event(s)" % (refused - 8)), (note, refused)
        rc, out, _ = p.cli("audit", "verify")
        assert rc == 0 and out.startswith("ok"), out
        # the server itself is fine: a new connection, a new row
        got, after = echo_through(port)
        assert got == b"ping\n"
        wait_for(lambda: tunnel_rows_of(p, {after}), 20, "a new row")
        stop_clean(p)
    finally:
        if p is not None:
            p.stop()
        echo.close()
        own.close()


def test_a_clean_stop_during_the_outage_says_what_is_lost(target, tmp_path,
                                                          make_agent):  # noqa: F811
    """Stopped (SIGTERM) while PostgreSQL is still down: the server tries
    the store once more and then says in its log how many tunnel rows it
    could not write (kept in memory only) and that the audit events it
    could not write are kept in the data directory's sealed spool for the
    next start (test_shutdown.py restarts and finds them), and stops
    cleanly. The rows it had open before are closed as interrupted by the
    next start."""
    own = pglib.PgServer()
    p = None
    echo = TcpEcho()
    try:
        p = server_on_own_pg(tmp_path, own)
        a = make_agent(p)
        wait_agent_online(p, a.id)
        tid, port = tunnel_to(p, a.id, echo)
        asset = p.target_asset(target)
        client = Client(p.ssh_port)
        own.stop()
        for i in range(5):
            got, _ = echo_through(port, b"x%d\n" % i)
            assert got == b"x%d\n" % i
        r = client.ssh("nobody-%s#%s" % (uniq(), asset), "true",
                       password="x")
        assert r.rc == 255, r
        time.sleep(0.5)
        stop_clean(p)
        log = p.log_text()
        assert "5 tunnel report row(s) could not be written (the store " \
            "does not answer) and are lost" in log, p.log_tail()
        assert re.search(r"\d+ audit event\(s\) could not be written \(the "
                         r"database does not answer\); kept in .*"
                         r"audit-pending for the next start", log), \
            p.log_tail()
        spool = p.dir / "audit-pending"
        assert spool.exists() and spool.stat().st_mode & 0o077 == 0
    finally:
        if p is not None:
            p.stop()
        echo.close()
        own.close()


def test_loop_answers_while_tunnel_rows_wait_for_a_lock(tmp_path,
                                                        make_agent):  # noqa: F811
    """Tunnel report rows are written on a worker with a connection of
    their own: while another session holds the sessions table locked
    (ACCESS EXCLUSIVE) for 5 s and short connections keep going through
    an agent tunnel (more than a batch of rows: several fill up while one
    waits), the loop keeps answering HTTP at once, every connection is
    carried, and once the lock is released every connection's row is in
    the store, closed "ok" with its bytes; none reported lost. Before,
    each batch held the loop for the statement deadline (3 s), was
    cancelled, and its rows were lost."""
    own = pglib.PgServer()
    p = None
    holder = None
    echo = TcpEcho()
    try:
        p = server_on_own_pg(tmp_path, own)
        dbname = pglib.PgServer.dbname_of(p.store_url)
        a = make_agent(p)
        wait_agent_online(p, a.id)
        tid, port = tunnel_to(p, a.id, echo)
        got, first = echo_through(port)
        assert got == b"ping\n"
        wait_for(lambda: tunnel_rows_of(p, {first}), 20, "the first row")

        holder = lock_tables(own, dbname, "sessions", 5)
        stop = threading.Event()
        sent = {}  # source port -> bytes sent
        bad = []
        lock = threading.Lock()

        def connections(k):
            i = 0
            while not stop.is_set():
                i += 1
                data = b"lock-%d-%d-%s\n" % (k, i, b"x" * (i % 50))
                try:
                    back, src = echo_through(port, data)
                except OSError as e:
                    bad.append(repr(e))
                    return
                if back != data:
                    bad.append((data, back))
                    return
                with lock:
                    sent[src] = len(data)
                time.sleep(0.01)  # several batches, within outage_rows

        workers = [threading.Thread(target=connections, args=(k,),
                                    daemon=True) for k in range(2)]
        for w in workers:
            w.start()
        worst = slowest_healthz(p.http_port)
        stop.set()
        for w in workers:
            w.join(20)
        assert holder.wait(timeout=30) == 0, holder.stderr.read()
        holder = None
        print("slowest /healthz %.3f s, %d connections" % (worst, len(sent)))
        assert worst < pclib.LOOP_LIMIT, "the loop stalled %.2f s" % worst
        assert not bad, bad[:3]
        assert len(sent) > 256, "only %d connections" % len(sent)

        def rows():
            out = own.psql(dbname, "SELECT client_addr, result, bytes_up, "
                           "bytes_down FROM sessions WHERE kind = 'tunnel' "
                           "AND ended_at IS NOT NULL")
            got = {}
            for line in out.splitlines():
                addr, result, up, down = line.split("|")
                got[int(addr.rsplit(":", 1)[1])] = (result, int(up),
                                                    int(down))
            return got if all(s in got for s in sent) else None
        got = wait_for(rows, 30, "every connection's row")
        for src, n in sent.items():
            assert got[src] == ("ok", n, n), (src, n, got[src])
        log = p.log_text()
        assert "not kept" not in log
        assert "the report row" not in log
        assert not [e for e in audit(p) if e["action"] == "report.lost"]
        stop_clean(p)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        if p is not None:
            p.stop()
        echo.close()
        own.close()


def test_a_flood_of_connections_during_a_lock_stays_bounded(tmp_path,
                                                            make_agent):  # noqa: F811
    """While a lock holds the batch on its worker, connections keep
    coming faster than a batch (128): the queue that fills meanwhile joins
    the waiting rows under [store] outage_rows (here 64), so memory stays
    bounded. The earliest connections' rows are kept and written once the
    lock goes, every connection still works, and what was not kept is
    recorded as one report.lost event with its count."""
    own = pglib.PgServer()
    p = None
    holder = None
    echo = TcpEcho()
    try:
        p = server_on_own_pg(tmp_path, own, outage_rows=64)
        dbname = pglib.PgServer.dbname_of(p.store_url)
        a = make_agent(p)
        wait_agent_online(p, a.id)
        tid, port = tunnel_to(p, a.id, echo)
        got, first = echo_through(port)
        assert got == b"ping\n"
        wait_for(lambda: tunnel_rows_of(p, {first}), 20, "the first row")
        # held until the flood is over (a fixed 4 s ended mid-flood on a
        # loaded box, and the rows after it were all written)
        holder = lock_tables(own, dbname, "sessions", 120)
        order = []
        for i in range(600):
            data = b"flood-%d\n" % i
            back, src = echo_through(port, data)
            assert back == data, (i, back)
            order.append(src)
        assert holder.poll() is None, "the lock ended before the flood"
        unlock_tables(own, dbname, holder)
        holder = None

        def lost():
            ev = [e for e in audit(p) if e["action"] == "report.lost"]
            return ev or None
        ev = wait_for(lost, 30, "the report.lost event")
        n = int(re.match(r"(\d+) tunnel report row", ev[0]["detail"]).group(1))
        # at most 64 waiting + the batch in flight + the queue kept
        assert 0 < n <= 600, ev
        rows = own.psql(dbname, "SELECT client_addr FROM sessions WHERE "
                        "kind = 'tunnel' AND ended_at IS NOT NULL")
        written = {int(x.rsplit(":", 1)[1]) for x in rows.split()}
        kept = [s for s in order if s in written]
        assert 64 <= len(kept) <= 64 + 2 * 128 + 16, len(kept)
        # the earliest are kept, the newest dropped
        assert set(order[:len(kept) - 16]) <= written
        assert "not kept" in p.log_text()
        stop_clean(p)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        if p is not None:
            p.stop()
        echo.close()
        own.close()


def test_a_stop_does_not_wait_for_a_batch_held_by_a_lock(tmp_path,
                                                         make_agent):  # noqa: F811
    """Stopped (SIGTERM) while a lock on the sessions table holds the
    batch of tunnel rows on its worker for longer than any stop should
    take: the server waits for it 2 s, says so, counts its rows as lost
    (writing the rest would overtake it) and stops, long before the lock
    goes."""
    own = pglib.PgServer()
    p = None
    holder = None
    echo = TcpEcho()
    try:
        p = server_on_own_pg(tmp_path, own)
        dbname = pglib.PgServer.dbname_of(p.store_url)
        a = make_agent(p)
        wait_agent_online(p, a.id)
        tid, port = tunnel_to(p, a.id, echo)
        holder = lock_tables(own, dbname, "sessions", 40)
        for i in range(5):
            got, _ = echo_through(port, b"x%d\n" % i)
            assert got == b"x%d\n" % i
        time.sleep(0.5)  # the batch is on its worker, behind the lock
        t0 = time.monotonic()
        p.stop(timeout=30)
        took = time.monotonic() - t0
        log = p.log_text()
        assert took < 20, "the stop took %.1f s" % took
        assert "tunnel: report rows: 1 statement has not returned in " \
            "2000 ms; not waited for" in log, p.log_tail()
        assert re.search(r"tunnel: \d+ tunnel report row\(s\) could not be "
                         r"written \(the store does not answer\) and are "
                         r"lost", log), p.log_tail()
        print("stop took %.2f s" % took)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        if p is not None:
            p.stop()
        echo.close()
        own.close()
