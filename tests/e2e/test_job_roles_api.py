"""Job roles, client-group members and schedule on/off through the REST
API (issue 14; docs/api.md "Jobs"): /api/v1/job-roles grants and revokes
job-runner / job-pusher / job-scheduler on a client group, for
administrators only, with the same rules, words and audit events as
`portcullis role grant --client-group` / `role jobs` / `role revoke`. A
job operator cannot grant themselves anything, and a revoked grant stops
working on the next request. POST/DELETE /client-groups/{id}/agents
change a group's static members; PATCH /schedules/{id} {"enabled"}
stops and restarts a schedule (its minutes while off are not "missed").
Real agents and a real server.
"""
import json
import time

from agentlib import agent_server, make_agent, wait_agent  # noqa: F401
from pclib import uniq
from test_job_perms import as_user, audit_actions, login
from test_jobs import (API, ON, call, fast_clock_server,  # noqa: F401
                       online_agent)


def cli_job_roles(pc):
    rc, out, err = pc.cli("role", "jobs", "--json")
    assert rc == 0, err
    return json.loads(out)


def test_job_roles_through_the_api_hostile_holder_and_revocation(
        agent_server, make_agent):
    pc = agent_server
    u = uniq("jr")
    a = online_agent(pc, make_agent,
                     conf=ON + ["name = jr-" + u, "command_allow = .*"])
    status, out = call(pc, "POST", API + "/client-groups",
                       {"name": "cg-" + u, "agents": [a.id]})
    assert status == 201, out
    user, pw = "op-" + u, "pw-" + uniq()
    pc.user_add(user, password=pw)
    tok = login(pc, user, pw)
    cmd = ("%s/agents/%s/commands" % (API, a.id),
           {"command": "printf hi", "timeout": 10})
    grant = {"user": user, "role": "job-runner", "client_group": "cg-" + u}

    # a user with no role cannot grant themselves one, nor list or revoke
    for method, path, body in [("POST", API + "/job-roles", grant),
                               ("GET", API + "/job-roles", None),
                               ("DELETE", API + "/job-roles/x", None)]:
        status, out = as_user(pc, tok, method, path, body)
        assert status == 403, (method, out)
        assert "administrator" in out["errors"][0]["detail"], out
    assert [g for g in cli_job_roles(pc) if g["grantee"] == user] == []
    assert as_user(pc, tok, "POST", *cmd)[0] == 403

    # the administrator grants; the CLI sees the same grant
    n = len(audit_actions(pc, "role.grant"))
    status, out = call(pc, "POST", API + "/job-roles", grant)
    assert status == 201, out
    made = out["data"]
    assert made == {"id": made["id"], "role": "job-runner",
                    "grantee_type": "user", "grantee": user,
                    "client_group": "cg-" + u}, made
    assert made in cli_job_roles(pc)
    status, out = call(pc, "GET", API + "/job-roles")
    assert status == 200 and made in out["data"], out
    ev = audit_actions(pc, "role.grant")
    assert len(ev) == n + 1 and ev[-1]["target"] == "client-group:cg-" + u \
        and "role=job-runner" in ev[-1]["detail"], ev[-1]
    status, me = as_user(pc, tok, "GET", API + "/me")
    assert me["data"]["job_roles"] == [
        {"role": "job-runner", "client_group": "cg-" + u}], me
    status, out = as_user(pc, tok, "POST", *cmd)
    assert status == 200 and out["data"]["stdout"] == "hi", out

    # a job-runner still cannot grant: not itself job-pusher, not another
    # user, and cannot revoke its own grant away from the audit trail
    other = "other-" + u
    pc.user_add(other, password="pw-" + uniq())
    for body in [dict(grant, role="job-pusher"),
                 dict(grant, user=other),
                 dict(grant, role="job-scheduler")]:
        status, out = as_user(pc, tok, "POST", API + "/job-roles", body)
        assert status == 403, out
    assert as_user(pc, tok, "DELETE",
                   "%s/job-roles/%s" % (API, made["id"]))[0] == 403
    assert [g["role"] for g in cli_job_roles(pc)
            if g["grantee"] in (user, other)] == ["job-runner"]
    status, out = as_user(pc, tok, "POST", API + "/jobs",
                          {"agents": [a.id], "dest": "/tmp/x-" + u,
                           "file_base64": "aGk="})
    assert status == 403 and "job-pusher" in json.dumps(out), out

    # the rules, in the CLI's words
    for body, code, words in [
            (dict(grant, role="root"), 400, "job-runner, job-pusher"),
            (dict(grant, group="g"), 400, "either a user or a group"),
            (dict(grant, client_group="nope-" + u), 404,
             "client group 'nope-%s' not found" % u),
            (dict(grant, user="nobody-" + u), 404, "not found"),
            (grant, 409, "already has the role job-runner")]:
        status, out = call(pc, "POST", API + "/job-roles", body)
        assert status == code and words in out["errors"][0]["detail"], \
            (body, out)
        if body is not grant or code != 409:
            continue
        rc, _, err = pc.cli("role", "grant", "--user", user, "--role",
                            "job-runner", "--client-group", "cg-" + u,
                            check=False)
        assert rc != 0 and words in err, err

    # revoked through the API: the very next request is refused
    n = len(audit_actions(pc, "role.revoke"))
    status, out = call(pc, "DELETE", "%s/job-roles/%s" % (API, made["id"]))
    assert status == 204, out
    status, out = as_user(pc, tok, "POST", *cmd)
    assert status == 403 and "nothing was run" in json.dumps(out), out
    assert made not in cli_job_roles(pc)
    ev = audit_actions(pc, "role.revoke")
    assert len(ev) == n + 1 and ev[-1]["target"] == "client-group:cg-" + u
    status, out = call(pc, "DELETE", "%s/job-roles/%s" % (API, made["id"]))
    assert status == 404, out
    assert as_user(pc, tok, "GET", API + "/me")[1]["data"]["job_roles"] == []

    # a CLI grant to a group shows in the API and the API revokes it
    grp = "ops-" + u
    assert pc.cli("group", "add", grp)[0] == 0
    assert pc.cli("group", "member", "add", grp, user)[0] == 0
    rc, gid, err = pc.cli("role", "grant", "--group", grp, "--role",
                          "job-runner", "--client-group", "cg-" + u)
    assert rc == 0, err
    gid = gid.strip()
    status, out = call(pc, "GET", API + "/job-roles")
    assert {"id": gid, "role": "job-runner", "grantee_type": "group",
            "grantee": grp, "client_group": "cg-" + u} in out["data"], out
    status, out = as_user(pc, tok, "POST", *cmd)
    assert status == 200, out
    # leaving the group ends the grant at once; back in, it holds again
    assert pc.cli("group", "member", "remove", grp, user)[0] == 0
    assert as_user(pc, tok, "POST", *cmd)[0] == 403
    assert pc.cli("group", "member", "add", grp, user)[0] == 0
    assert as_user(pc, tok, "POST", *cmd)[0] == 200
    assert call(pc, "DELETE", "%s/job-roles/%s" % (API, gid))[0] == 204
    assert as_user(pc, tok, "POST", *cmd)[0] == 403
    # and the CLI revokes an API grant
    status, out = call(pc, "POST", API + "/job-roles", grant)
    assert status == 201, out
    assert pc.cli("role", "revoke", out["data"]["id"])[0] == 0
    assert as_user(pc, tok, "POST", *cmd)[0] == 403


def test_client_group_members_through_the_api_and_cli(agent_server,
                                                      make_agent):
    pc = agent_server
    u = uniq("cm")
    a = online_agent(pc, make_agent, conf=ON + ["name = a-" + u])
    b = online_agent(pc, make_agent, conf=ON + ["name = b-" + u])
    status, out = call(pc, "POST", API + "/client-groups",
                       {"name": "cg-" + u, "agents": [a.id]})
    assert status == 201, out
    path = "%s/client-groups/cg-%s/agents" % (API, u)
    n = len(audit_actions(pc, "client_group.update"))
    status, out = call(pc, "POST", path, {"agent": b.id})
    assert status == 200, out
    assert out["data"]["agents"] == [a.id, b.id], out
    assert sorted(out["data"]["members"]) == sorted([a.id, b.id]), out
    assert len(audit_actions(pc, "client_group.update")) == n + 1
    status, out = call(pc, "POST", path, {"agent": b.id})
    assert status == 409 and "already in" in json.dumps(out), out
    status, out = call(pc, "DELETE", "%s/%s" % (path, a.id))
    assert status == 200 and out["data"]["agents"] == [b.id], out
    status, out = call(pc, "DELETE", "%s/%s" % (path, a.id))
    assert status == 404 and "not a static member" in json.dumps(out), out
    status, out = call(pc, "POST", "%s/client-groups/nope-%s/agents"
                       % (API, u), {"agent": a.id})
    assert status == 404, out
    # the CLI agrees
    assert pc.cli("client-group", "add-agent", "cg-" + u, a.id)[0] == 0
    rc, _, err = pc.cli("client-group", "add-agent", "cg-" + u, a.id,
                        check=False)
    assert rc != 0 and "already in" in err, err
    assert pc.cli("client-group", "remove-agent", "cg-" + u, b.id)[0] == 0
    status, out = call(pc, "GET", "%s/client-groups/cg-%s" % (API, u))
    assert out["data"]["agents"] == [a.id], out
    # not for a user without the administrator role
    user, pw = "u-" + u, "pw-" + uniq()
    pc.user_add(user, password=pw)
    tok = login(pc, user, pw)
    assert as_user(pc, tok, "POST", path, {"agent": b.id})[0] == 403
    assert as_user(pc, tok, "DELETE", "%s/%s" % (path, a.id))[0] == 403
    status, out = call(pc, "GET", "%s/client-groups/cg-%s" % (API, u))
    assert out["data"]["agents"] == [a.id], out


def test_schedule_disabled_does_not_fire_nor_miss(fast_clock_server,
                                                  make_agent):
    pc = fast_clock_server
    u = uniq("sd")
    a = online_agent(pc, make_agent, conf=ON + ["tag = t" + u])
    status, out = call(pc, "POST", API + "/schedules",
                       {"name": "s-" + u, "cron": "* * * * *",
                        "agents": [a.id], "command": "true"})
    assert status == 201 and out["data"]["enabled"] is True, out
    path = "%s/schedules/s-%s" % (API, u)

    def fired():
        return call(pc, "GET", path)[1]["data"]["fired"]

    deadline = time.monotonic() + 15
    while fired() < 1 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert fired() >= 1
    status, out = call(pc, "PATCH", path, {"enabled": False})
    assert status == 200 and out["data"]["enabled"] is False and \
        out["data"]["next_run"] is None, out
    assert audit_actions(pc, "schedule.disable")[-1]["target"] == "s-" + u
    time.sleep(2.5)  # a firing in flight may still land
    before = fired()
    time.sleep(6)  # three minutes on the schedule clock
    s = call(pc, "GET", path)[1]["data"]
    assert s["fired"] == before and s["missed"] == 0, s
    _, out, _ = pc.cli("schedule", "list")
    assert [ln for ln in out.splitlines() if ln.startswith("s-" + u)][0] \
        .split()[-2] == "(disabled)", out
    # bad bodies
    for body in [{}, {"enabled": "yes"}, {"enabled": True, "cron": "x"}]:
        assert call(pc, "PATCH", path, body)[0] == 400, body
    assert call(pc, "PATCH", "%s/schedules/nope-%s" % (API, u),
                {"enabled": True})[0] == 404
    # a user who did not make it cannot switch it (not even see it)
    user, pw = "u-" + u, "pw-" + uniq()
    pc.user_add(user, password=pw)
    tok = login(pc, user, pw)
    assert as_user(pc, tok, "PATCH", path, {"enabled": True})[0] == 404
    assert call(pc, "GET", path)[1]["data"]["enabled"] is False
    # enabled again (through the CLI): it fires again, nothing missed
    assert pc.cli("schedule", "enable", "s-" + u)[0] == 0
    deadline = time.monotonic() + 15
    while fired() <= before and time.monotonic() < deadline:
        time.sleep(0.3)
    s = call(pc, "GET", path)[1]["data"]
    assert s["fired"] > before and s["missed"] == 0 and s["enabled"], s
    assert pc.cli("schedule", "disable", "s-" + u)[0] == 0
    assert call(pc, "GET", path)[1]["data"]["enabled"] is False
