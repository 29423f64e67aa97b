"""What the main loop still asks the database itself, on PostgreSQL (issue
18: "never blocking the main loop"). With PORTCULLIS_TRACE_LOOP_SQL set
the server logs each statement it makes on the loop's own connection by
its label. Between its start and its stop, a server that serves SSH
sessions, the API, an agent and its jobs may make only the statements
listed below in KNOWN (each one a known remaining case, named in
docs/store.md "What the loop still asks, and the trace"): a new one is a
regression,
and one that is gone should be taken off the list."""

import json
import re

import pclib
import pglib
from agentlib import make_agent, netns, wait_agent  # noqa: F401
from pclib import Client, Portcullis, uniq

API = "/api/v1"
# Each label: where it comes from. None is left: the agent tunnels'
# module (hub/tunnel.c) was the last to ask on the loop, and now reads the
# tunnels on a worker of its own and writes a tunnel's state, its last
# use, an idle delete and the presence notice through an ordered write
# queue. A label that shows up here is a regression.
KNOWN = {}
LINE = re.compile(r"store: a statement on the loop: (.+)$")


def test_only_known_statements_run_on_the_loop(tmp_path, target,
                                               make_agent, monkeypatch):  # noqa: F811,E501
    monkeypatch.setenv("PORTCULLIS_TRACE_LOOP_SQL", "1")
    own = pglib.PgServer()
    p = None
    try:
        url = own.new_database()
        p = Portcullis(tmp_path / "pc", store_url=url)
        p.tune_for_tests()
        p.start()
        p.wait_http()
        pw = "pw-" + uniq()
        user = p.user_add(password=pw)
        asset = p.target_asset(target)
        p.allow(user, asset)
        token = pclib.parse_kv(p.cli("token", "add", "--user", "admin",
                                     "--expires", "1d")[1])["token"]
        # what the start made is not counted: from here on
        mark = len(p.log_text())
        # SSH sessions: a command, a wrong password
        r = Client(p.ssh_port).ssh("%s#%s" % (user, asset), "echo hi",
                                   password=pw)
        assert r.rc == 0 and r.out.strip() == "hi", r
        r = Client(p.ssh_port).ssh("%s#%s" % (user, asset), "echo hi",
                                   password="wrong")
        assert r.rc != 0, r
        # the API: lists, the report, a change
        for path in ("/users", "/assets", "/sessions", "/audit", "/agents"):
            st, _ = pclib.http_json(p.http_port, "GET", API + path,
                                    token=token)
            assert st == 200, path
        st, _ = pclib.http_json(p.http_port, "POST", API + "/groups",
                                token=token,
                                body=json.dumps({"name": uniq("g")}))
        assert st in (200, 201), st
        # an agent, a job on it, and the agent gone
        a = make_agent(p, conf=["commands_enabled = true",
                                "allow_root = true", "command_allow = .*"])
        wait_agent(p, a.id)
        st, doc = pclib.http_json(p.http_port, "POST",
                                  "%s/agents/%s/commands" % (API, a.id),
                                  token=token,
                                  body=json.dumps({"command": "printf x"}))
        assert st == 200 and doc["data"]["stdout"] == "x", doc
        # a tunnel through it: the tunnels' module reads and writes
        tun = pclib.parse_kv(p.cli("tunnel", "add", a.id, "--remote",
                                   "127.0.0.1:%d" % target.port)[1])
        pclib.wait_for(lambda: "listening" in p.cli("tunnel", "list")[1]
                       or None, 15, "the tunnel listens")
        # one through the API: its answer waits for the tunnels' read
        st, doc = pclib.http_json(p.http_port, "POST", API + "/tunnels",
                                  token=token, body=json.dumps({
                                      "agent": a.id, "acl": ["127.0.0.1"],
                                      "remote": "127.0.0.1:%d" % target.port}))
        assert st == 201 and doc["data"]["state"] == "listening", doc
        a.stop()
        wait_agent(p, a.id, online=False)
        p.cli("tunnel", "delete", tun["id"])
        # the agent back: the API's tunnel listens again
        a.start()
        wait_agent(p, a.id)
        pclib.wait_for(lambda: "listening" in p.cli("tunnel", "list")[1]
                       or None, 15, "the tunnel listens again")
        text = p.log_text()[mark:]
        # The trace works: the stop makes statements on the loop's own
        # connection (the node's row, what the write queues still hold:
        # a stop may wait for the store, a running server may not).
        p.stop()
        stop = p.log_text()[mark + len(text):]
        p = None
        seen = {}
        for line in text.splitlines():
            m = LINE.search(line)
            if m:
                seen[m.group(1)] = seen.get(m.group(1), 0) + 1
        print("statements on the loop: %s" % seen)
        new = sorted(set(seen) - set(KNOWN))
        assert not new, "new statements on the loop: %s (all: %s)" % (
            new, seen)
        assert any(LINE.search(x) for x in stop.splitlines()), stop
    finally:
        if p is not None:
            p.stop()
        own.close()


def test_the_trace_is_off_by_default(tmp_path, monkeypatch):
    """Without the variable nothing is logged (and the label, never the
    statement's text or parameters, is what it logs)."""
    monkeypatch.delenv("PORTCULLIS_TRACE_LOOP_SQL", raising=False)
    own = pglib.PgServer()
    p = None
    try:
        p = Portcullis(tmp_path / "pc", store_url=own.new_database())
        p.tune_for_tests()
        p.start()
        p.wait_http()
        p.stop()
        assert "a statement on the loop" not in p.log_text()
        p = None
    finally:
        if p is not None:
            p.stop()
        own.close()
