"""Job roles (issue 14, item 5; docs/security.md "Jobs on agents"):
job-runner / job-pusher granted on a client group let a user who is not
an administrator run jobs on that group's agents, and nowhere else."""
import http.client
import json
import time

from agentlib import agent_server, make_agent, wait_agent  # noqa: F401
from pclib import uniq
from test_jobs import (API, ON, batch_done, call,  # noqa: F401
                       fast_clock_server, online_agent)


def login(pc, user, password):
    conn = http.client.HTTPConnection("127.0.0.1", pc.http_port, timeout=30)
    conn.request("POST", API + "/login",
                 body=json.dumps({"username": user, "password": password}),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    out = json.loads(r.read())
    conn.close()
    assert r.status == 200, out
    return out["data"]["token"]


def as_user(pc, token, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", pc.http_port, timeout=60)
    hdrs = {"Authorization": "Bearer " + token}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=hdrs)
    r = conn.getresponse()
    status, raw = r.status, r.read()
    conn.close()
    return status, json.loads(raw) if raw else None


def denied_events(pc):
    _, out, _ = pc.cli("audit", "list", "--json")
    return [e for e in json.loads(out) if e.get("action") == "job.denied"]


def test_job_runner_is_held_to_its_client_group(agent_server, make_agent):
    pc = agent_server
    u = uniq("p")
    inside = online_agent(pc, make_agent,
                          conf=ON + ["name = in-" + u, "tag = t" + u,
                                     "command_allow = .*"])
    outside = online_agent(pc, make_agent,
                           conf=ON + ["name = out-" + u, "tag = t" + u,
                                      "command_allow = .*"])
    # a dynamic group on the name; another group with the outside agent
    assert pc.cli("client-group", "add", "mine-" + u,
                  "--match-name", "in-%s*" % u)[0] == 0
    status, out = call(pc, "POST", API + "/client-groups",
                       {"name": "theirs-" + u, "agents": [outside.id]})
    assert status == 201, out
    user, pw = "runner-" + u, "pw-" + uniq()
    pc.user_add(user, password=pw)
    tok = login(pc, user, pw)
    # before any grant: nothing, and the refusal is audited
    n0 = len(denied_events(pc))
    status, out = as_user(pc, tok, "POST",
                          "%s/agents/%s/commands" % (API, inside.id),
                          {"command": "true", "timeout": 10})
    assert status == 403, out
    assert len(denied_events(pc)) == n0 + 1
    rc, grant, err = pc.cli("role", "grant", "--user", user, "--role",
                            "job-runner", "--client-group", "mine-" + u)
    assert rc == 0, err
    grant = grant.strip()
    _, out, _ = pc.cli("role", "jobs", "--json")
    assert {"id": grant, "role": "job-runner", "grantee_type": "user",
            "grantee": user, "client_group": "mine-" + u} in json.loads(out)
    # allowed: an agent of the group, by ID, and the group as target
    status, out = as_user(pc, tok, "POST",
                          "%s/agents/%s/commands" % (API, inside.id),
                          {"command": "printf in", "timeout": 10})
    assert status == 200 and out["data"]["stdout"] == "in", out
    mine_job = out["data"]["id"]
    status, out = as_user(pc, tok, "POST", API + "/jobs",
                          {"groups": ["mine-" + u], "command": "true"})
    assert status == 202, out
    batch_done(pc, out["data"]["batch"], 1)
    # refused, nothing queued: the outside agent by ID, by a tag both
    # carry, through the other group, a made-up ID
    before = len(call(pc, "GET", API + "/jobs")[1]["data"])
    for path, body in [
            ("%s/agents/%s/commands" % (API, outside.id), {"command": "true"}),
            (API + "/jobs", {"agents": [outside.id], "command": "true"}),
            (API + "/jobs", {"tags": ["t" + u], "command": "true"}),
            (API + "/jobs", {"groups": ["theirs-" + u], "command": "true"}),
            # names that match nothing answer the same: no probing
            (API + "/jobs", {"groups": ["nope-" + u], "command": "true"}),
            (API + "/jobs", {"tags": ["nope-" + u], "command": "true"}),
            (API + "/jobs", {"agents": [inside.id, "no-such-" + u],
                             "command": "true"})]:
        n = len(denied_events(pc))
        status, out = as_user(pc, tok, "POST", path, body)
        assert status == 403, (path, body, out)
        assert "nothing was run" in json.dumps(out), out
        # an agent reached through a tag or group is not named
        if outside.id not in path + json.dumps(body):
            assert outside.id not in json.dumps(out), out
        ev = denied_events(pc)
        assert len(ev) == n + 1, ev
    assert len(call(pc, "GET", API + "/jobs")[1]["data"]) == before
    # a file push needs job-pusher, not job-runner
    status, out = as_user(pc, tok, "POST", API + "/jobs",
                          {"agents": [inside.id], "dest": "/tmp/x-" + u,
                           "file_base64": "aGk="})
    assert status == 403 and "job-pusher" in json.dumps(out), out
    # output: only the jobs on agents in scope
    status, adm = call(pc, "POST", "%s/agents/%s/commands" % (API, outside.id),
                       {"command": "printf secret", "timeout": 10})
    assert status == 200 and adm["data"]["stdout"] == "secret", adm
    status, out = as_user(pc, tok, "GET",
                          "%s/jobs/%s" % (API, adm["data"]["id"]))
    assert status == 404, out
    status, out = as_user(pc, tok, "GET", "%s/jobs/%s" % (API, mine_job))
    assert status == 200 and out["data"]["stdout"] == "in", out
    status, out = as_user(pc, tok, "GET", API + "/jobs")
    agents = {j["agent"] for j in out["data"]}
    assert status == 200 and agents == {inside.id}, out
    # a dynamic group is evaluated at the time: an agent that comes to
    # match joins the scope at once
    late = online_agent(pc, make_agent,
                        conf=ON + ["name = in-%s-late" % u,
                                   "command_allow = .*"])
    status, out = as_user(pc, tok, "POST",
                          "%s/agents/%s/commands" % (API, late.id),
                          {"command": "printf late", "timeout": 10})
    assert status == 200 and out["data"]["stdout"] == "late", out
    # revoking the role ends it at once
    assert pc.cli("role", "revoke", grant)[0] == 0
    _, out, _ = pc.cli("role", "jobs")
    assert grant not in out
    status, out = as_user(pc, tok, "POST",
                          "%s/agents/%s/commands" % (API, inside.id),
                          {"command": "true", "timeout": 10})
    assert status == 403, out
    # client groups stay administrator-only
    status, out = as_user(pc, tok, "GET", API + "/client-groups")
    assert status == 403, out


def audit_actions(pc, action):
    _, out, _ = pc.cli("audit", "list", "--json")
    return [e for e in json.loads(out) if e.get("action") == action]


def test_job_scheduler_schedules_only_in_scope_and_loses_it_on_revoke(
        fast_clock_server, make_agent):
    pc = fast_clock_server
    u = uniq("s")
    inside = online_agent(pc, make_agent,
                          conf=ON + ["name = in-" + u, "tag = t" + u,
                                     "command_allow = .*"])
    online_agent(pc, make_agent, conf=ON + ["name = out-" + u, "tag = t" + u])
    assert pc.cli("client-group", "add", "mine-" + u,
                  "--match-name", "in-" + u)[0] == 0
    user, pw = "sched-" + u, "pw-" + uniq()
    pc.user_add(user, password=pw)
    tok = login(pc, user, pw)
    rc, _, err = pc.cli("role", "grant", "--user", user, "--role",
                        "job-runner", "--client-group", "mine-" + u)
    assert rc == 0, err
    body = {"name": "mine-" + u, "cron": "* * * * *", "command": "echo tick",
            "groups": ["mine-" + u]}
    # job-runner is not job-scheduler
    n = len(audit_actions(pc, "job.denied"))
    status, out = as_user(pc, tok, "POST", API + "/schedules", body)
    assert status == 403 and "job-scheduler" in json.dumps(out), out
    assert len(audit_actions(pc, "job.denied")) == n + 1
    rc, grant, err = pc.cli("role", "grant", "--user", user, "--role",
                            "job-scheduler", "--client-group", "mine-" + u)
    assert rc == 0, err
    # a tag that reaches an agent outside the group: refused
    status, out = as_user(pc, tok, "POST", API + "/schedules",
                          dict(body, groups=[], tags=["t" + u]))
    assert status == 403, out
    # the group: allowed, and it fires as the schedule
    status, out = as_user(pc, tok, "POST", API + "/schedules", body)
    assert status == 201, out

    def fired():
        _, lst = call(pc, "GET", API + "/jobs")
        return [j for j in lst["data"]
                if j["started_by"] == "schedule:mine-" + u]

    deadline = time.monotonic() + 15
    while not fired() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert fired() and {j["agent"] for j in fired()} == {inside.id}
    # another's schedule: not listed, not readable, not deletable
    assert pc.cli("schedule", "add", "admin-" + u, "--cron", "0 0 1 1 *",
                  "--tag", "t" + u, "--", "true")[0] == 0
    status, out = as_user(pc, tok, "GET", API + "/schedules")
    assert status == 200 and [s["name"] for s in out["data"]] == [
        "mine-" + u], out
    assert as_user(pc, tok, "GET",
                   "%s/schedules/admin-%s" % (API, u))[0] == 404
    assert as_user(pc, tok, "DELETE",
                   "%s/schedules/admin-%s" % (API, u))[0] == 404
    assert call(pc, "GET", "%s/schedules/admin-%s" % (API, u))[0] == 200
    # revoked: the next firings fail (audited) instead of running
    assert pc.cli("role", "revoke", grant.strip())[0] == 0
    time.sleep(2.5)  # a firing in flight may still land
    before = len(fired())
    nfail = len(audit_actions(pc, "schedule.failed"))
    deadline = time.monotonic() + 15
    while (len(audit_actions(pc, "schedule.failed")) < nfail + 2 and
           time.monotonic() < deadline):
        time.sleep(0.3)
    failed = audit_actions(pc, "schedule.failed")
    assert len(failed) >= nfail + 2, failed
    assert len(fired()) == before
    # its own: deletable
    assert as_user(pc, tok, "DELETE",
                   "%s/schedules/mine-%s" % (API, u))[0] == 204


def test_a_disabled_creator_s_schedule_fails(fast_clock_server, make_agent):
    pc = fast_clock_server
    u = uniq("d")
    a = online_agent(pc, make_agent, conf=ON + ["name = d-" + u])
    status, out = call(pc, "POST", API + "/client-groups",
                       {"name": "g-" + u, "agents": [a.id]})
    assert status == 201, out
    user, pw = "sd-" + u, "pw-" + uniq()
    pc.user_add(user, password=pw)
    tok = login(pc, user, pw)
    assert pc.cli("role", "grant", "--user", user, "--role", "job-scheduler",
                  "--client-group", "g-" + u)[0] == 0
    # disabled: it runs no more
    status, out = as_user(pc, tok, "POST", API + "/schedules",
                          {"name": "d-" + u, "cron": "* * * * *",
                           "command": "true", "agents": [a.id]})
    assert status == 201, out
    assert pc.cli("user", "disable", user)[0] == 0

    def ran():
        _, lst = call(pc, "GET", API + "/jobs")
        return [j for j in lst["data"] if j["started_by"] == "schedule:d-" + u]

    time.sleep(0.5)  # a firing in flight may still land
    before = len(ran())
    deadline = time.monotonic() + 15
    failed = []
    while len(failed) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
        failed = [e for e in audit_actions(pc, "schedule.failed")
                  if e.get("target") == "d-" + u]
    assert len(failed) >= 2, failed
    assert "disabled" in json.dumps(failed[-1]), failed
    assert len(ran()) == before
