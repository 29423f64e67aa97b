"""The end of an SSH session on PostgreSQL (issue 18): its report row is
closed off the main loop, by the report rows' writer (a connection of
its own, docs/store.md "Report rows off the loop"). A database that
holds the sessions table locked, or that stops answering, delays the
row, never the loop: /healthz answers at once and an open session keeps
relaying while a session ends; the row is closed, once and with the
session's own result and bytes, when the database takes it. Before,
the close ran on the loop's connection and held it for the statement
deadline (3 s)."""

import http.client
import threading
import time

import pclib
from test_store_pg import _Outage


def slowest_answer(port, seconds, path):
    """GET path every 50 ms for seconds; the slowest answer's time."""
    worst = 0.0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path)
        conn.getresponse().read()
        conn.close()
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.05)
    return worst


def _ending_row(o):
    """The closed exec rows of o's user: the "ending" session's (its
    command is "cat; echo ending-done")."""
    return [x for x in o.p.sessions() if x.get("user") == o.user and
            "ending-done" in (x.get("detail") or "") and x.get("result")]


def _end_during(o, stall, seconds=4.0, path="/healthz"):
    """While stall() holds the database up: the "ending" session ends
    (0.5 s in) and the "live" one echoes every 0.1 s; returns the
    slowest answer to GET path and the slowest echo."""
    echoes = {"worst": 0.0, "bad": None}
    stop = threading.Event()

    def echo():
        n = 0
        while not stop.is_set():
            n += 1
            line = b"echo-%d\n" % n
            t0 = time.monotonic()
            o.live.stdin.write(line)
            o.live.stdin.flush()
            back = o.live.stdout.readline()
            if back != line:
                echoes["bad"] = back
                return
            echoes["worst"] = max(echoes["worst"], time.monotonic() - t0)
            time.sleep(0.1)

    def end():
        time.sleep(0.5)
        o.end_one()

    stall()
    e = threading.Thread(target=echo, daemon=True)
    t = threading.Thread(target=end, daemon=True)
    e.start()
    t.start()
    worst = slowest_answer(o.p.http_port, seconds, path)
    stop.set()
    e.join(timeout=30)
    t.join(timeout=30)
    assert not t.is_alive() and o.ending is None, "the session did not end"
    assert not e.is_alive() and echoes["bad"] is None, echoes
    return worst, echoes["worst"]


def _row_written_once(o):
    row = pclib.wait_for(lambda: _ending_row(o) or None, 30,
                         "the ended session's row")
    assert len(row) == 1, row
    assert row[0]["result"] == "ok" and row[0]["exit_status"] == 0, row
    assert row[0]["bytes_up"] > 0 and row[0]["bytes_down"] > 0, row
    n = o.own.psql(o.dbname, "SELECT count(*) FROM sessions WHERE "
                   "result <> '' AND detail LIKE '%ending-done%'").strip()
    assert n == "1", n


def test_a_session_end_during_a_lock_does_not_hold_the_loop(target,
                                                            tmp_path):
    """Another session holds the sessions table locked (ACCESS
    EXCLUSIVE) for 5 s; an SSH session ends meanwhile. The loop answers
    /healthz at once (before: 3.0 s, the close's UPDATE on the loop
    waiting for the statement deadline), the open session keeps
    relaying, and once the lock is gone the row is closed ok, once."""
    o = _Outage(target, tmp_path)
    holder = []
    try:
        worst, worst_echo = _end_during(
            o, lambda: holder.append(o.lock("sessions")))
        assert holder[0].wait(timeout=30) == 0, holder[0].stderr.read()
        holder.clear()
        print("slowest /healthz %.3f s, echo %.3f s" % (worst, worst_echo))
        assert worst < pclib.LOOP_LIMIT and worst_echo < pclib.LOOP_LIMIT, \
            "the loop stalled %.2f s (echo %.2f s)" % (worst, worst_echo)
        _row_written_once(o)
        o.echo(o.live, b"after\n")
    finally:
        for h in holder:
            h.kill()
            h.wait()
        o.close()


def test_a_session_end_while_the_database_hangs(target, tmp_path):
    """The database's backends and postmaster stopped (SIGSTOP) with the
    server's connections open, for 5 s; an SSH session ends meanwhile.
    The loop answers HTTP at once (the web UI's page: /healthz reads the
    store; before: 3.36 s, the close meeting the statement deadline and
    its cancel's grace), and after SIGCONT the row is closed ok, once."""
    o = _Outage(target, tmp_path)
    try:
        worst, worst_echo = _end_during(o, o.freeze, 5.0, "/")
        o.thaw()
        print("slowest / %.3f s, echo %.3f s" % (worst, worst_echo))
        assert worst < pclib.LOOP_LIMIT and worst_echo < pclib.LOOP_LIMIT, \
            "the loop stalled %.2f s (echo %.2f s)" % (worst, worst_echo)
        _row_written_once(o)
        o.echo(o.live, b"after\n")
    finally:
        o.close()
