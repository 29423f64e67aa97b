"""The agent hub's store work off the main loop on PostgreSQL (issue 18:
"never blocking the main loop"; docs/architecture.md "The hub's store
work").

An agent's password check, its announcement, its going offline and the
check after a store change are jobs on store workers of the hub's own; a
database that stops answering (frozen with SIGSTOP, as a stalled VM or a
hung storage would leave it: connections stay open, nothing answers)
holds those jobs, never the loop. So while it is frozen, a connected
agent's tunnel keeps carrying data and an SSH session through the agent
keeps relaying, with no pause; a new agent's connection waits (and is
closed cleanly at the handshake deadline), and comes online once the
database thaws.

Each test has a PostgreSQL of its own (pglib.PgServer), since it freezes
it; they run whatever PORTCULLIS_TEST_STORE says.
"""

import os
import signal
import subprocess
import threading
import time

import paramiko
import pytest

import pclib
import pglib
from agentlib import (agents, credential, is_online, make_agent,  # noqa
                      wait_log)
from agentproto import ProtoAgent
from pclib import Client, Portcullis, uniq
from test_store_pg import lock_tables
from test_store_pg_outage import (TcpEcho, echo_through, tunnel_to,
                                  wait_agent_online)


def server_on_own_pg(tmp_path, own):
    p = Portcullis(tmp_path / "pc", store_url=own.new_database())
    p.tune_for_tests()
    base = pclib.port_block(10)
    p.set_config("tunnel", "port_min", str(base))
    p.set_config("tunnel", "port_max", str(base + 9))
    p.start()
    p.wait_http()
    return p


def pg_pids(own):
    """The postmaster's PID and its children's (every backend)."""
    with open(os.path.join(own.data, "postmaster.pid")) as f:
        main = int(f.readline())
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...
        if int(st.rsplit(")", 1)[1].split()[1]) == main:
            kids.append(int(d))
    return main, kids


class Frozen:
    """PostgreSQL stopped with SIGSTOP (every process of it) until
    thaw(): connections stay open and nothing answers."""

    def __init__(self, own):
        self.main, self.kids = pg_pids(own)
        os.kill(self.main, signal.SIGSTOP)  # no new backends meanwhile
        for k in self.kids:
            try:
                os.kill(k, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        self.frozen = True

    def thaw(self):
        if not self.frozen:
            return
        self.frozen = False
        for k in self.kids:
            try:
                os.kill(k, signal.SIGCONT)
            except ProcessLookupError:
                pass
        os.kill(self.main, signal.SIGCONT)


def route_asset(pc, agent_id, target):
    """An SSH asset reached through agent_id; returns its ID."""
    _, out, _ = pc.cli("asset", "add", uniq("a"), "--host", "127.0.0.1",
                       "--port", target.port, "--login", "root",
                       "--key", target.key, "--host-key-fingerprint",
                       target.fingerprint, "--route", "agent:%s" % agent_id)
    asset_id = out.strip()
    assert pclib.UUID_RE.match(asset_id), out
    return asset_id


def stop_clean(pc):
    assert pc.stop() == 0
    found = pc.sanitizer_findings()
    if found:
        pytest.fail("sanitizer report in %s:\n%s" % (pc.log_path, found),
                    pytrace=False)


class Locked:
    """Another session holds the hub's tables (credentials, agents)
    locked (ACCESS EXCLUSIVE) for seconds: every statement on them waits,
    on a healthy connection (so the loop's own connection is not given
    up after its first deadline, as a frozen server's is: each statement
    on the loop would wait again)."""

    def __init__(self, own, p, seconds):
        self.holder = lock_tables(own, own.dbname_of(p.store_url),
                                  "credentials, agents", seconds)

    def thaw(self):
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
            self.holder = None


def run_agent_traffic_while(tmp_path, target, make_agent, stall, window,
                            most_slow):
    """An agent with a tunnel and an SSH session through it; then the
    database stalled (stall(own, p)) while a new agent logs in: both
    keep carrying data for window seconds (a round trip over 1 s at most
    most_slow times), the new agent does not come online meanwhile, and
    it does once the stall ends."""
    own = pglib.PgServer()
    p = None
    echo = TcpEcho()
    sess = None
    stalled = None
    try:
        p = server_on_own_pg(tmp_path, own)
        a = make_agent(p)
        wait_agent_online(p, a.id)
        _, port = tunnel_to(p, a.id, echo)
        asset = route_asset(p, a.id, target)
        pw = "pw-" + uniq()
        user = p.user_add(password=pw)
        p.allow(user, asset)
        sess = Client(p.ssh_port).popen_ssh("%s#%s" % (user, asset), "cat",
                                            password=pw,
                                            stdin=subprocess.PIPE)
        sess.stdin.write(b"before\n")
        sess.stdin.flush()
        assert sess.stdout.readline() == b"before\n"
        got, _ = echo_through(port)
        assert got == b"ping\n"
        b = make_agent(p, start=False)  # its credential made now

        stalled = stall(own, p)
        t0 = time.monotonic()
        b.start()
        slow, i, worst = [], 0, 0.0
        while time.monotonic() - t0 < window:
            t = time.monotonic()
            data = b"stalled-%d\n" % i
            got, _ = echo_through(port, data)
            assert got == data, (i, got)
            sess.stdin.write(data)
            sess.stdin.flush()
            assert sess.stdout.readline() == data, i
            took = time.monotonic() - t
            worst = max(worst, took)
            if took > 1.0:
                slow.append(round(took, 2))
            i += 1
            time.sleep(0.05)
        print("%d round trips, slowest %.3f s" % (i, worst))
        assert len(slow) <= most_slow, "round trips over 1 s: %r" % slow
        assert i > 40, i
        assert " online" not in b.log_text(), b.log_text()
        # it waited: its credential was not refused for want of an
        # answer (the lookup on the loop's connection, given up after
        # its deadline, failed at once and said "wrong ID or secret")
        assert "refused credential" not in b.log_text(), b.log_text()
        stalled.thaw()

        # the new agent is let in once the database answers (within its
        # retry back-off), and the first is still there
        wait_agent_online(p, b.id)
        wait_log(b, " online", 60)
        got, _ = echo_through(port, b"after\n")
        assert got == b"after\n"
        sess.stdin.close()
        assert sess.wait(timeout=20) == 0
        sess = None
        stop_clean(p)
    finally:
        if stalled is not None:
            stalled.thaw()
        if sess is not None:
            sess.kill()
            sess.wait()
        if p is not None:
            p.stop()
        echo.close()
        own.close()


def test_locked_agent_tables_hold_no_agent_traffic(target, tmp_path,
                                                   make_agent):  # noqa
    """The credentials and agents tables locked for 12 s while a new
    agent logs in: the connected agent's tunnel and an SSH session
    through it never pause (the password lookup on the loop held it for
    the statement deadline, 3 s, at each attempt), the new agent waits,
    and comes online once the lock goes."""
    run_agent_traffic_while(tmp_path, target, make_agent,
                            lambda own, p: Locked(own, p, 12), 10, 0)


def test_a_frozen_database_holds_no_agent_traffic(target, tmp_path,
                                                  make_agent):  # noqa: F811
    """PostgreSQL frozen (SIGSTOP) for 13 s while a new agent logs in:
    the connected agent's tunnel and an SSH session through it keep
    carrying data, the new agent waits (its connection is closed at the
    hub's handshake deadline, 10 s, and it tries again) rather than
    being told its credential is wrong, and it comes online once the
    database thaws. One round trip may take the
    statement deadline (3 s): the schedules' tick (admin_schedule.c)
    still reads the store on the loop, every 15 s; the loop's connection
    is given up after that first deadline and fails at once meanwhile."""
    run_agent_traffic_while(tmp_path, target, make_agent,
                            lambda own, p: Frozen(own), 13, 1)


def send_password_request(t, user, secret):
    """A raw SSH_MSG_USERAUTH_REQUEST (password) on transport t, past
    paramiko's own one-at-a-time auth handler."""
    m = paramiko.Message()
    m.add_byte(paramiko.common.cMSG_USERAUTH_REQUEST)
    m.add_string(user)
    m.add_string("ssh-connection")
    m.add_string("password")
    m.add_boolean(False)
    m.add_string(secret)
    t._send_message(m)


def test_one_lookup_in_flight_per_connection(target, tmp_path,
                                             make_agent):  # noqa: F811
    """While a connection's password is looked up (the credentials table
    locked, so it stays in flight), a second auth request on it ends the
    connection: a hostile agent cannot queue lookups. The connected
    agent's tunnel is not held meanwhile."""
    own = pglib.PgServer()
    p = None
    echo = TcpEcho()
    frozen = None
    pa = None
    try:
        p = server_on_own_pg(tmp_path, own)
        a = make_agent(p)
        wait_agent_online(p, a.id)
        _, port = tunnel_to(p, a.id, echo)
        cred, secret = credential(p)
        url = "ws://127.0.0.1:%d/agent" % p.http_port

        frozen = Locked(own, p, 12)
        pa = ProtoAgent(url)
        outcome = {}

        def login():
            try:
                pa.login(cred, secret)
                outcome["ok"] = True
            except Exception as e:  # noqa: BLE001 (what it was is noted)
                outcome["error"] = repr(e)
        th = threading.Thread(target=login, daemon=True)
        th.start()
        # its request is in (paramiko asked for the service first)
        pclib.wait_for(lambda: pa.t.auth_handler is not None and
                       pa.t.auth_handler.auth_method == "password", 5,
                       "the first password request")
        time.sleep(0.5)
        send_password_request(pa.t, cred, secret)
        pclib.wait_for(lambda: not pa.t.is_active(), 5,
                       "the connection closed")
        th.join(10)
        assert "ok" not in outcome, outcome
        # the loop was not held meanwhile
        t = time.monotonic()
        got, _ = echo_through(port, b"still\n")
        assert got == b"still\n"
        assert time.monotonic() - t < 1.0
        frozen.thaw()
        assert "authentication requests while one is checked" in \
            p.log_text(), p.log_tail()
        stop_clean(p)
    finally:
        if pa is not None:
            pa.close()
        if frozen is not None:
            frozen.thaw()
        if p is not None:
            p.stop()
        echo.close()
        own.close()


def test_an_agent_gone_while_its_announcement_waits_ends_offline(
        tmp_path, make_agent):  # noqa: F811
    """The agents table locked for writes while an agent announces
    itself (its lookups still read it), and the
    agent killed meanwhile: its online write (queued first) and its
    offline write (queued when it went) are made in that order once the
    lock goes, so the store ends with the agent offline."""
    own = pglib.PgServer()
    p = None
    holder = None
    try:
        p = server_on_own_pg(tmp_path, own)
        # the hub's store connections opened (by a first agent's login)
        a = make_agent(p)
        wait_agent_online(p, a.id)
        b = make_agent(p, start=False)
        holder = lock_tables(own, own.dbname_of(p.store_url), "agents", 6,
                             mode="EXCLUSIVE")  # reads go on
        b.start()
        time.sleep(2.5)  # authenticated; its announcement waits
        b.kill()
        holder.wait(timeout=30)
        holder = None

        def settled():
            row = agents(p).get(b.id)
            return row if row is not None and not is_online(row) else None
        row = pclib.wait_for(settled, 20, "the agent's row, offline")
        stop_clean(p)
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        if p is not None:
            p.stop()
        own.close()
