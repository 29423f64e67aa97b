"""The agent tunnels' store work off the main loop (issue 18; docs/store.md
"What the loop still asks, and the trace"): on PostgreSQL the tunnels are
read on a worker of their own (at each change of the tunnels or agents,
and each presence notice of another node), and a tunnel's state, its
last use and the presence notice go through an ordered write queue. So a
lock on the tunnels table (another session's) or a database that does
not answer delays them, never the loop: the web UI's page (asked from
127.0.0.2) is answered at once meanwhile, and once the lock goes the
store holds what the tunnels did. Before, each of these held the whole
loop until the lock went or the statement deadline (3 s) passed. A new
tunnel's answer through the API, which waits for the tunnels' read of
it, waits 5 s at the most."""

import json
import os
import signal
import time

import pclib
import pglib
from agentlib import make_agent, netns, wait_agent  # noqa: F401
from test_store_pg import lock_tables
from test_store_pg_offloop2 import _Frozen, _call, probe_while
from test_store_pg_offloop3 import _close
from test_tunnel import tcp_echo, tcp_refused

LOOP_LIMIT = pclib.LOOP_LIMIT  # the loop-stall limit of every such test
# http_res_agents.c HTTP_TUNNEL_WAIT_MS: a new tunnel's answer waits that
# long at most for the tunnels to apply the read its change asked for
TUNNEL_WAIT = 5.0
# hub.h HUB_CHANGE_TUNNELS, as another node's notice carries it
CHANGE_TUNNELS = 2


def _tunnels(f):
    rc, out, err = f.p.cli("tunnel", "list", "--json")
    assert rc == 0, err
    return {t["id"]: t for t in json.loads(out)}


def _tunnel_add(f, a, echo):
    """A TCP tunnel through agent a to the echo service: (id, port), once
    it listens."""
    rc, out, err = f.p.cli("tunnel", "add", a.id, "--remote",
                           "127.0.0.1:%d" % echo.port, "--acl",
                           "127.0.0.1/32")
    assert rc == 0, err
    t = pclib.parse_kv(out)
    assert t["state"] == "listening", out
    return t["id"], int(t["port"])


def _setup(tmp_path, make_agent):  # noqa: F811
    """A server on its own PostgreSQL, an agent, a TCP tunnel through it
    to an echo service, listening."""
    f = _Frozen(tmp_path)
    try:
        echo = pclib.EchoServer()
        a = make_agent(f.p)
        wait_agent(f.p, a.id)
        tid, port = _tunnel_add(f, a, echo)
        return f, a, echo, tid, port
    except BaseException:
        _close(f)
        raise


def test_an_agent_gone_while_the_tunnels_table_is_locked(tmp_path,
                                                         make_agent):  # noqa: F811,E501
    """The agent goes while another session holds the tunnels table
    against writes for 2.5 s: its tunnel closes at once, the page is
    answered at once throughout, and the state "agent offline" is in the
    store once the lock goes."""
    f, a, echo, tid, port = _setup(tmp_path, make_agent)
    try:
        assert tcp_echo(port) == b"ping\n"
        holder = lock_tables(f.own, f.dbname, "tunnels", seconds=2.5,
                             mode="EXCLUSIVE")

        def fire():
            a.kill()
            # the listener closes on the loop, before any write
            return pclib.wait_for(
                lambda: tcp_refused(port) or None, 5,
                "the tunnel's port closes")
        r, _, worst = probe_while(f.p.http_port, fire, 1.2, settle=0.1)
        assert r is True, r
        print("tunnel state write held by a lock: the slowest page "
              "%.3f s" % worst)
        assert worst < LOOP_LIMIT, "the tunnel's state write held the " \
            "loop (the page took %.2f s)" % worst
        # the API's reads of what the loop wrote (the report, the audit
        # log) do not wait for the tunnels' writes: they read none of it
        for path in ("/sessions", "/audit"):
            st, _, _, took = _call(f.p.http_port, "GET", "/api/v1" + path,
                                   f.token)
            assert st == 200 and took < LOOP_LIMIT, (path, st, took)
        holder.wait(30)
        pclib.wait_for(lambda: _tunnels(f)[tid]["state"] == "agent offline"
                       or None, 15, "the state written once the lock went")
        # and back: it listens again and carries traffic
        a.start()
        wait_agent(f.p, a.id)
        pclib.wait_for(lambda: _tunnels(f)[tid]["state"] == "listening"
                       or None, 15, "listening again")
        assert tcp_echo(port) == b"ping\n"
    finally:
        echo.close()
        _close(f)


def test_another_nodes_change_while_the_tunnels_cannot_be_read(
        tmp_path, make_agent):  # noqa: F811
    """Another node tells of a change to the tunnels while another session
    holds the tunnels table against reads too for 2.5 s: the page is
    answered at once throughout (the read waits on the tunnels' worker);
    the tunnel carries traffic meanwhile, and a tunnel added after the
    lock listens."""
    f, a, echo, tid, port = _setup(tmp_path, make_agent)
    try:
        holder = lock_tables(f.own, f.dbname, "tunnels", seconds=2.5)

        def fire():
            # a notice as another node's tunnel change sends it
            f.own.psql(f.dbname, "SELECT pg_notify('portcullis_change', "
                       "'%d nodeelsewhere')" % CHANGE_TUNNELS)
            time.sleep(0.3)
            # the listener, the loop's, still relays
            return tcp_echo(port)
        r, _, worst = probe_while(f.p.http_port, fire, 1.8, settle=0.1)
        assert r == b"ping\n", r
        print("tunnels' read held by a lock: the slowest page %.3f s" % worst)
        assert worst < LOOP_LIMIT, "the tunnels' read held the loop " \
            "(the page took %.2f s)" % worst
        holder.wait(30)
        _, port2 = _tunnel_add(f, a, echo)
        assert tcp_echo(port2) == b"ping\n"
        assert tcp_echo(port) == b"ping\n"
    finally:
        echo.close()
        _close(f)


def _tunnels_reader(f):
    """The PID of the backend of the tunnels' own store reads, found
    waiting on a lock of the tunnels table for the read that another
    node's notice asks for (nothing else reads that table meanwhile);
    once it is idle again."""
    def backends(where):
        return [int(x) for x in f.own.psql(
            f.dbname, "SELECT pid FROM pg_stat_activity WHERE datname = "
            "current_database() AND backend_type = 'client backend' AND "
            "pid <> pg_backend_pid() AND " + where).split()]

    holder = lock_tables(f.own, f.dbname, "tunnels", seconds=2)
    try:
        f.own.psql(f.dbname, "SELECT pg_notify('portcullis_change', "
                   "'%d nodeelsewhere')" % CHANGE_TUNNELS)
        pids = pclib.wait_for(
            lambda: backends("wait_event_type = 'Lock' AND query LIKE "
                             "'%FROM tunnels WHERE%'") or None, 1.4,
            "the tunnels' read waits for the lock")
        assert len(pids) == 1, pids
    finally:
        holder.wait(30)
    pclib.wait_for(lambda: backends("pid = %d AND state = 'idle'" % pids[0])
                   or None, 10, "the tunnels' read done")
    return pids[0]


def test_a_new_tunnels_answer_waits_at_most_its_deadline(tmp_path,
                                                         make_agent):  # noqa: F811,E501
    """POST /api/v1/tunnels answers with the state this node gave the new
    tunnel, once the tunnels applied the read its change asked for, but
    5 s later at the most: with the tunnels' read connection stopped (its
    backend SIGSTOPped, the database answering everyone else) the answer
    is 201 at the deadline with the tunnel as added ("pending"); once the
    connection runs again the tunnel listens and carries traffic."""
    f = _Frozen(tmp_path)
    echo = None
    stopped = []
    try:
        echo = pclib.EchoServer()
        a = make_agent(f.p)
        wait_agent(f.p, a.id)
        pid = _tunnels_reader(f)
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)
        st, doc, raw, took = _call(
            f.p.http_port, "POST", "/api/v1/tunnels", f.token,
            {"agent": a.id, "remote": "127.0.0.1:%d" % echo.port,
             "acl": ["127.0.0.1/32"]})
        assert st == 201, raw
        t = doc["data"]
        print("a new tunnel's answer with its read held: %.3f s" % took)
        assert TUNNEL_WAIT - 0.1 <= took < TUNNEL_WAIT + 3, took
        assert t["state"] == "pending", t
        pglib.PgServer.thaw(stopped)
        pclib.wait_for(lambda: _tunnels(f)[t["id"]]["state"] == "listening"
                       or None, 15, "listening once the read came back")
        assert tcp_echo(int(t["local_port"])) == b"ping\n"
    finally:
        pglib.PgServer.thaw(stopped)
        if echo is not None:
            echo.close()
        _close(f)
