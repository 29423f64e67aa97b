"""Stopping a server (SIGTERM, what `systemctl stop` sends) while users
are connected, and while its database does not answer.

Found: with any SSH session open, SIGTERM never finished. The main
process left its loop and waited for the spawner; the spawner ended the
sessions and waited for them; each session, told to stop, asked the
monitor (in the main process, no longer answering) to close its report
row, and waited for ever. systemd would SIGKILL it after 90 s, and the
rows stayed open until the next start. Now the main process keeps its
loop running while the sessions end (at most 10 s), so each row is
closed with why. And with the database's server stopped (SIGSTOP, a
frozen VM), jobs on worker threads that wait on it (the heartbeat, the
disabled-user check, a cancel request) are no longer waited for past a
few seconds, and the audit events it could not write are kept in the
data directory for the next start instead of lost.
"""

import datetime
import json
import os
import signal
import socket
import subprocess
import time

from pclib import (Client, Portcullis, children_of, http_json, uniq,
                   wait_for)
from test_rdp import rdp_target  # noqa: F401 (a fixture)
from test_store_pg import _Outage

STOP_MESSAGE = (b"portcullis: the access server stopped (restarted, or its "
                b"node failed); this session has ended. Connect again.")


def open_cats(pc, user, pw, asset, n):
    """n `cat` sessions through pc, each shown to relay a line."""
    client = Client(pc.ssh_port)
    procs = []
    for _ in range(n):
        proc = client.popen_ssh("%s#%s" % (user, asset), "cat", password=pw,
                                stdin=subprocess.PIPE)
        procs.append(proc)
        proc.stdin.write(b"one\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"one\n"
    return procs


def test_sigterm_ends_open_sessions_closes_their_rows_and_exits(target,
                                                               tmp_path):
    pc = Portcullis(tmp_path / "pc")
    pc.tune_for_tests()
    pc.start()
    pw = "pw-" + uniq()
    user = pc.user_add(password=pw)
    asset = pc.target_asset(target)
    pc.allow(user, asset)
    procs = open_cats(pc, user, pw, asset, 2)
    t0 = time.monotonic()
    rc = pc.stop(timeout=20)
    took = time.monotonic() - t0
    assert rc == 0, (rc, took, pc.log_tail())   # before: SIGKILLed at 20 s
    assert took < 8, (took, pc.log_tail())
    for proc in procs:
        _, err = proc.communicate(timeout=10)
        assert proc.returncode != 0
        assert STOP_MESSAGE in err, err
    rows = [s for s in pc.sessions() if s.get("user") == user]
    assert len(rows) == 2, rows
    for row in rows:
        assert row["result"] == \
            "error: interrupted (the access server stopped)", row
        assert row["bytes_up"] == 4 and row["bytes_down"] == 4, row
    assert "did not end within" not in pc.log_text()


def _hold(port):
    """A socket listening on 127.0.0.1:port, or None while it is taken."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    s.listen(1)
    return s


def test_a_port_still_held_is_waited_for_then_refused(tmp_path):
    """Found (test_jobs.py's restart test, under load): even letting the
    port go first, the spawner of a server killed a moment ago may not have
    run yet when the supervisor's restart binds. The new server waits for
    the port a few seconds (saying so), then starts; a port that stays
    taken is a clear error and a non-zero exit, not a hang."""
    pc = Portcullis(tmp_path / "pc")
    pc.tune_for_tests()
    holder = _hold(pc.ssh_port)
    assert holder is not None
    try:
        pc.start(wait=False)  # the port is the holder's
        wait_for(lambda: "is in use; waiting up to" in pc.log_text(),
                 what="the server to say it waits for the port")
        assert pc.proc.poll() is None, pc.log_tail()
        holder.close()
        holder = None
        # the server's own spawner answers now
        def answers():
            try:
                with socket.create_connection(("127.0.0.1", pc.ssh_port),
                                              timeout=5) as c:
                    c.settimeout(5)
                    return c.recv(64).startswith(b"SSH-2.0-")
            except OSError:
                return False
        wait_for(answers, what="the SSH port to answer")
        pc.wait_http()
        assert "cannot listen" not in pc.log_text()
        pc.stop()
        # held for good: a clear error after the wait, and an exit
        holder = wait_for(lambda: _hold(pc.ssh_port),
                          what="the stopped server's port to be free")
        t0 = time.monotonic()
        pc.start(wait=False)
        rc = pc.proc.wait(20)
        took = time.monotonic() - t0
        assert rc != 0, pc.log_tail()
        assert 4 <= took < 15, took
        assert "Address already in use" in pc.log_text(), pc.log_tail()
        pc.proc = None
    finally:
        if holder is not None:
            holder.close()
        pc.stop()


def test_a_crashed_server_starts_again_at_once(tmp_path):
    """Found (test_jobs.py's restart test failed so under load): after the
    main process died, its spawner ended the children of connections not
    yet logged in and waited for them while still holding the SSH port, so
    a server started again at once (a supervisor's restart) failed with
    "Address already in use"; such a child that is stopped (a frozen
    disk, a debugger) kept the port for as long as it was. Now the
    spawner lets the port go first. (The start waits for the new server's
    own socket: the old spawner's may still listen for a moment, and the
    new one binds up to 0.1 s after it closes.)"""
    pc = Portcullis(tmp_path / "pc")
    pc.tune_for_tests()
    pc.start()
    conn = socket.create_connection(("127.0.0.1", pc.ssh_port), timeout=10)
    assert conn.recv(64).startswith(b"SSH-2.0-")
    spawners = pc.children()
    stopped = [c for sp in spawners for c in children_of(sp)]
    assert stopped, (spawners, pc.descendants())
    try:
        for p in stopped:
            os.kill(p, signal.SIGSTOP)
        os.kill(pc.proc.pid, signal.SIGKILL)  # the spawners see it go
        pc.proc.wait(10)
        pc.proc = None
        pc.start(timeout=10)
        # the new server's own spawner answers (the old socket, were it
        # still there, would take the connection and never answer)
        with socket.create_connection(("127.0.0.1", pc.ssh_port),
                                      timeout=10) as fresh:
            fresh.settimeout(10)
            assert fresh.recv(64).startswith(b"SSH-2.0-")
        pc.wait_http()
        assert "Address already in use" not in pc.log_text()
    finally:
        for p in stopped:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        conn.close()
        pc.stop()


def test_a_node_whose_database_is_frozen_still_stops(target, tmp_path):
    """PostgreSQL's backends and postmaster stopped with SIGSTOP: the
    heartbeat and the disabled-user check on their own connections, and a
    cancel request, wait on it for ever (statement_timeout is the
    server's, and it is stopped). Before: SIGTERM never finished. Now the
    server ends its sessions, gives those jobs a few seconds and exits 0,
    saying what it could not write."""
    o = _Outage(target, tmp_path)
    p = o.p
    try:
        o.freeze()
        # a statement on the loop meets its deadline (a cancel request
        # goes out on a worker and hangs), and the checks on their own
        # connections come round and hang too
        st, _ = http_json(p.http_port, "GET", "/api/v1/users", o.token)
        assert st == 503
        time.sleep(4)
        t0 = time.monotonic()
        t0_wall = time.time()
        rc = p.stop(timeout=30)
        took = time.monotonic() - t0
        assert rc == 0, (rc, took, p.log_tail())   # before: SIGKILLed
        assert took < 15, (took, p.log_tail())
        text = p.log_text()
        assert "not waited for" in text, p.log_tail()
        for proc in (o.live, o.ending):
            _, err = proc.communicate(timeout=10)
            assert STOP_MESSAGE in err, err
        o.live = o.ending = None
        # the sessions' end events could not be written: kept in the data
        # directory (before: "... are lost"), written at the next start
        assert "kept in" in text and "are lost" not in text, p.log_tail()
        spool = p.dir / "audit-pending"
        assert spool.exists() and spool.stat().st_mode & 0o077 == 0
        o.thaw()
        p.start()
        p.wait_http()

        def ends():
            _, out, _ = p.cli("audit", "list", "--json")
            return [e for e in json.loads(out)
                    if e.get("action") == "session.end" and
                    e.get("actor") == o.user]
        deadline = time.monotonic() + 20
        while len(ends()) < 2:
            assert time.monotonic() < deadline, (ends(), p.log_tail())
            time.sleep(0.2)
        for e in ends():
            assert "the access server stopped" in e["detail"], e
            # when it happened, not when it was written
            when = datetime.datetime.fromisoformat(
                e["time"].replace("Z", "+00:00")).timestamp()
            assert when < t0_wall + 5, (e, t0_wall)
        assert not spool.exists()
        rc, out, err = p.cli("audit", "verify", check=False)
        assert rc == 0, (out, err)
    finally:
        o.close()


def wakeups(pid):
    """How often pid's main thread has slept and woken (its voluntary
    context switches)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches for %d" % pid)


def test_sigterm_tells_an_rdp_client_and_closes_its_row(rdp_target,
                                                        tmp_path):
    """An RDP session at a stop: the session child died at SIGTERM (the
    client saw a dropped connection, the row was closed by the monitor
    without its bytes). Now the client is told (a Set Error Info PDU: an
    administrative tool disconnected it) and the row is closed with why
    and its bytes."""
    import pytest
    from test_rdp import (TOOLS, rdp_asset, rdp_driver, rdp_user,
                          start_rdp_proxy, xfreerdp_args)
    from pclib import xvfb_run
    import shutil
    if any(shutil.which(t) is None for t in TOOLS):
        pytest.skip("RDP test tools missing (scripts/install-deps)")
    pc = start_rdp_proxy(tmp_path / "pc")
    driver = None
    try:
        asset = rdp_asset(pc, rdp_target)
        user, pw = rdp_user(pc, asset)
        out = tmp_path / "client"
        out.mkdir()
        # the window is up: wait (60 s at most) for xfreerdp to end
        hold = rdp_driver(on_window=r"""
for i in $(seq 1 600); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
""")
        env = dict(os.environ, OUT=str(out), TEXT="")
        driver = subprocess.Popen(
            xvfb_run("1024x768") + ["sh", "-c", hold,
                          "driver"] +
            xfreerdp_args(pc, "%s#%s" % (user, asset), pw),
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (out / "up").exists():
            assert driver.poll() is None, (out / "client.log").read_text()
            assert time.monotonic() < deadline, "no xfreerdp window"
            time.sleep(0.2)
        time.sleep(3)  # the first frames went down
        # idle, the session child's loop sleeps: it no longer wakes each
        # second to look for a SIGTERM (an eventfd wakes it; 5 times in
        # 5 s before, 0 after)
        spawners = pc.children()
        (child,) = [p for p in pc.descendants() if p not in spawners]
        w0 = wakeups(child)
        time.sleep(5)
        woke = wakeups(child) - w0
        assert woke <= 2, "the idle session child woke %d times in 5 s" % woke
        t0 = time.monotonic()
        rc = pc.stop(timeout=20)
        took = time.monotonic() - t0
        assert rc == 0 and took < 8, (rc, took, pc.log_tail())
        assert driver.wait(timeout=30) == 0
        driver = None
        log = (out / "client.log").read_text()
        assert "ERRINFO_RPC_INITIATED_DISCONNECT" in log, log[-3000:]
        rows = [s for s in pc.sessions() if s.get("user") == user]
        assert len(rows) == 1, rows
        assert rows[0]["result"] == \
            "error: interrupted (the access server stopped)", rows
        assert rows[0]["bytes_down"] > 0, rows
    finally:
        if driver is not None:
            driver.kill()
            driver.wait()
        pc.stop()
