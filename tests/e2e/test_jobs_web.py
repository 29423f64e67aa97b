"""Jobs in the web UI (issue 14 item 7; docs/web.md, `/jobs`): two real
agents, one in a network namespace, one on the host, both connected to a
server listening on the host's end of the namespace's veth. In Chromium
(web/e2e/jobs.mjs) an administrator checks both agents, runs `echo` and
sees each agent's output with its exit code; runs by tag a command that
prints, sleeps and prints again, and sees the first line while the jobs
still run (pushed by each job's event stream, not polled); then finds both batches in the history and opens the first
again; a command the agents' deny rule refuses shows "refused" and the
rule; with the job's stream answering 503, its output is polled and still
shows while it runs. The test checks what the page showed against the API's record.
"""

import http.client
import json
import os

import pytest

import pclib
from agentlib import make_agent, netns, ns_server, wait_agent  # noqa: F401
from pclib import uniq
from test_web import WEB, web_ui  # noqa: F401 (builds web/dist)


API = "/api/v1"


def call(pc, host, method, path):
    """An administrator's API call on the server's veth address."""
    def req(method, path, body=None, token=None):
        conn = http.client.HTTPConnection(host, pc.http_port, timeout=30)
        hdrs = {"Content-Type": "application/json"}
        if token:
            hdrs["Authorization"] = "Bearer " + token
        conn.request(method, path, body=body and json.dumps(body), headers=hdrs)
        r = conn.getresponse()
        status, raw = r.status, r.read()
        conn.close()
        return status, json.loads(raw) if raw else None

    _, doc = req("POST", API + "/login", {"username": pc.admin_user,
                                          "password": pc.admin_password})
    return req(method, path, token=doc["data"]["token"])


@pytest.fixture
def two_agents(ns_server, make_agent):  # noqa: F811
    """(pc, [id in the namespace, id on the host], tag)."""
    pc, ns = ns_server
    tag = uniq("webjob")
    ids = [uniq("nsag"), uniq("hostag")]
    conf = ["commands_enabled = true", "allow_root = true",
            "command_allow = .*", "command_deny = ^rm[[:space:]]",
            "tag = " + tag]
    make_agent(pc, agent_id=ids[0], netns=ns, conf=conf + ["name = " + ids[0]])
    # the host's agent reaches the same listener, on the veth's host end
    make_agent(pc, agent_id=ids[1], conf=conf + ["name = " + ids[1]],
               server="ws://%s:%d" % (ns.host_ip, pc.http_port))
    for i in ids:
        wait_agent(pc, i)
    return pc, ns, ids, tag


def test_browser_runs_echo_on_two_agents_and_shows_both(two_agents, web_ui,  # noqa: F811
                                                        tmp_path):
    pc, ns, ids, tag = two_agents
    mark = "pc-web-" + uniq()
    cfg = {"url": "http://%s:%d" % (ns.host_ip, pc.http_port),
           "admin_user": pc.admin_user, "admin_password": pc.admin_password,
           "agents": ids, "tag": tag, "mark": mark,
           "denied": "rm -f /tmp/pc-web-nothing-" + uniq(),
           "screenshots": os.environ.get("PORTCULLIS_SCREENSHOTS")}
    cfg_path = tmp_path / "jobs.json"
    cfg_path.write_text(json.dumps(cfg))
    r = pclib.run(["node", "e2e/jobs.mjs", str(cfg_path)], cwd=WEB,
                  timeout=240)
    assert r.rc == 0, r
    res = json.loads(r.out.strip().splitlines()[-1])

    # an agent's page opens Jobs with that agent (only) checked
    assert res["prechecked"] == [ids[1]], res
    # the echo: each agent's own output and exit code, in the page
    for i in ids:
        assert res["first"][i]["stdout"].strip() == mark, res
        assert res["first"][i]["heading"] == "%s: ok (exit 0)" % i, res
        assert res["again"][i].strip() == mark, res
    # by tag, the output arrived while the jobs ran
    for row in res["while_running"]:
        assert "first-" + mark in row["stdout"], res
        assert "second-" + mark not in row["stdout"], res
        assert row["heading"].endswith(": running"), res
    assert "of 2 finished; the output follows" in res["progress"], res
    # ... pushed: each job's stream opened once, and GET /jobs/{id} asked
    # only before the stream and for the final state (a 0.7 s poll
    # through the 4 s sleep would ask it 6 times or more)
    status, out = call(pc, ns.host_ip, "GET", API + "/jobs")
    slept = [j["id"] for j in out["data"]
             if j["command"].startswith("echo first-" + mark)]
    assert len(slept) == 2, out
    asked = res["asked"]
    for jid in slept:
        assert asked.count("GET %s/stream" % jid) == 1, asked
        assert 1 <= asked.count("GET %s" % jid) <= 3, asked
    assert all(a.split()[1].split("/")[0] in slept for a in asked), asked
    for i in ids:
        assert res["second"][i]["stdout"].split() == \
            ["first-" + mark, "second-" + mark], res
        assert res["second"][i]["heading"] == "%s: ok (exit 0)" % i, res
    # the history: both batches, each "2 ok"
    assert len(res["history"]) == 2 and \
        all("2 ok" in h for h in res["history"]), res

    # the agent's deny rule, in words
    assert res["refused"]["heading"] == "%s: refused" % ids[0], res
    assert "command_deny '^rm[[:space:]]' matches" in res["refused"]["why"], \
        res

    # a stream that cannot be opened (503): the job is polled, and its
    # first line still shows while it runs
    fb = res["fallback_running"]
    assert "fallback-first-" + mark in fb["stdout"], res
    assert "fallback-second-" + mark not in fb["stdout"], res
    assert fb["heading"] == "%s: running" % ids[0], res
    fb = res["fallback"]
    assert fb["stdout"].split() == \
        ["fallback-first-" + mark, "fallback-second-" + mark], res
    assert fb["heading"] == "%s: ok (exit 0)" % ids[0], res
    tried = [a for a in fb["asked"] if a.endswith("/stream")]
    assert len(tried) == 1, fb
    assert len(fb["asked"]) - len(tried) >= 3, fb

    # what the page showed is what the server recorded
    status, out = call(pc, ns.host_ip, "GET", API + "/jobs")
    assert status == 200, out
    echo = [j for j in out["data"] if j["command"] == "echo " + mark]
    assert sorted(j["agent"] for j in echo) == sorted(ids), out
    assert len({j["batch"] for j in echo}) == 1
    assert res["first_url"] == "?batch=" + echo[0]["batch"], res
    for j in echo:
        status, got = call(pc, ns.host_ip, "GET", "%s/jobs/%s" % (API, j["id"]))
        assert got["data"]["stdout"] == mark + "\n", got
        assert got["data"]["status"] == "ok" and got["data"]["exit_code"] == 0
