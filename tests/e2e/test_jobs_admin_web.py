"""Client groups, job roles, file push and schedules in the web UI
(issue 14 item 7; docs/web.md): web/e2e/jobadmin.mjs in Chromium against
a real server (its schedule clock runs a minute every 2 s) and two real
agents. The test checks what the pages showed, then what they changed,
through the API and on the agent's disk: the client group's static
members, the operator's job roles, the pushed file (content and mode),
the schedule (fired, then disabled; the deleted one gone); the refusals
(a name taken, a user who does not exist, a bad cron expression, a push
outside file_push_dir, a non-administrator on Client groups) are shown
in the server's words. Then a job-runner (granted through the API on
another client group) runs `echo` on its agent from the Jobs page, and
is refused the other agent reached by its tag; as a job-scheduler it
sees only its own schedules and adds one on its group.
"""

import json
import os
import stat

import pclib
from agentlib import make_agent, wait_agent  # noqa: F401
from pclib import uniq
from test_jobs import API, ON, call, fast_clock_server  # noqa: F401
from test_web import WEB, web_ui  # noqa: F401 (builds web/dist)


def test_browser_manages_groups_roles_pushes_and_schedules(
        fast_clock_server, make_agent, web_ui, tmp_path):  # noqa: F811
    pc = fast_clock_server
    u = uniq("wa")
    ids = ["wa-a-" + u, "wa-b-" + u]
    push_dir = tmp_path / "pushed"
    push_dir.mkdir()
    for i in ids:
        make_agent(pc, agent_id=i,
                   conf=ON + ["name = " + i, "command_allow = .*",
                              "tag = t-" + i,
                              "file_push_dir = %s" % push_dir])
        wait_agent(pc, i)
    # a job-runner on a group of A, granted through the API
    runner, runner_pw = "run-" + u, "pw-" + uniq()
    pc.user_add(runner, password=runner_pw)
    status, out = call(pc, "POST", API + "/client-groups",
                       {"name": "rg-" + u, "agents": [ids[0]]})
    assert status == 201, out
    for role in ("job-runner", "job-scheduler"):
        status, out = call(pc, "POST", API + "/job-roles",
                           {"user": runner, "role": role,
                            "client_group": "rg-" + u})
        assert status == 201, out
    op, op_pw = "op-" + u, "pw-" + uniq()
    pc.user_add(op, password=op_pw)
    content = "setting = %s\n" % u
    cfg = {"url": "http://127.0.0.1:%d" % pc.http_port,
           "admin_user": pc.admin_user, "admin_password": pc.admin_password,
           "agents": ids, "group": "cg-" + u, "schedule": "sch-" + u,
           "operator": {"user": op, "password": op_pw},
           "push": {"inside": str(push_dir / "app.conf"),
                    "inside2": str(push_dir / "op.conf"),
                    "outside": str(tmp_path / "elsewhere.conf"),
                    "content": content},
           "runner": {"user": runner, "password": runner_pw,
                      "group": "rg-" + u, "mark": "ran-" + u,
                      "tag_b": "t-" + ids[1]},
           "screenshots": os.environ.get("PORTCULLIS_SCREENSHOTS")}
    cfg_path = tmp_path / "jobadmin.json"
    cfg_path.write_text(json.dumps(cfg))
    r = pclib.run(["node", "e2e/jobadmin.mjs", str(cfg_path)], cwd=WEB,
                  timeout=300)
    assert r.rc == 0, r
    res = json.loads(r.out.strip().splitlines()[-1])

    # client groups: the refusal in words; B in, A out, B a member now
    assert "cg-%s" % u in res["group_refused"] and \
        "exists" in res["group_refused"], res
    assert res["group_agents"] == [ids[1]], res
    assert res["group_members"] == ids[1], res
    status, g = call(pc, "GET", "%s/client-groups/cg-%s" % (API, u))
    assert status == 200 and g["data"]["agents"] == [ids[1]], g

    # job roles: the unknown user refused; job-pusher kept, job-runner gone
    assert "nobody-cg-%s" % u in res["grant_refused"] and \
        "not found" in res["grant_refused"], res
    assert len(res["roles"]) == 1 and "job-pusher" in res["roles"][0], res
    _, out, _ = pc.cli("role", "jobs", "--json")
    assert [(j["role"], j["client_group"]) for j in json.loads(out)
            if j["grantee"] == op] == [("job-pusher", "cg-" + u)], out

    # file push: landed with its content and mode; outside refused
    assert res["push_ok"]["heading"] == "%s: ok" % ids[1] or \
        res["push_ok"]["heading"].startswith("%s: ok" % ids[1]), res
    assert res["push_ok"]["command"].startswith(
        "[push %s, %d bytes, sha256 " % (push_dir / "app.conf",
                                         len(content))), res
    f = push_dir / "app.conf"
    assert f.read_text() == content
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert res["push_refused"]["heading"] == "%s: refused" % ids[1], res
    assert "outside every file_push_dir" in res["push_refused"]["why"], res
    assert not (tmp_path / "elsewhere.conf").exists()

    # schedules: the cron error shown; fired; disabled; the other deleted
    assert "cron" in res["cron_refused"].lower() and \
        "61" in res["cron_refused"], res
    assert res["schedule_new"]["state"] == "enabled" and \
        "UTC" in res["schedule_new"]["next"], res
    assert "fired; view the last" in res["schedule_last"], res
    assert res["schedule_disabled"] == {"state": "disabled", "next": "–"}, res
    status, s = call(pc, "GET", "%s/schedules/sch-%s" % (API, u))
    assert status == 200 and s["data"]["enabled"] is False and \
        s["data"]["fired"] >= 1, s
    assert call(pc, "GET", "%s/schedules/sch-%s-gone" % (API, u))[0] == 404

    # the operator: File push only, the group only, its push landed; the
    # administrator's pages refused by the server
    assert "File push" in res["operator_nav"], res
    for page in ("Jobs", "Schedules", "Client groups", "Job roles",
                 "Agents", "Users"):
        assert page not in res["operator_nav"], res
    assert res["operator_choices"] == ["Client group cg-%s" % u], res
    for page in ("File push", "Client groups", "Job roles"):
        assert page not in res["runner_nav"], res
    assert "Jobs" in res["runner_nav"] and "Schedules" in res["runner_nav"]
    assert res["runner_choices"] == ["Client group rg-%s" % u], res
    assert res["runner_run"] == {"heading": "%s: ok (exit 0)" % ids[0],
                                 "stdout": "ran-" + u}, res
    assert "nothing was run" in res["runner_refused"] and \
        "job-runner" in res["runner_refused"], res
    assert ids[1] not in res["runner_refused"], res
    # job-scheduler: their own schedules only (not the administrator's)
    assert res["runner_sched_choices"] == ["Client group rg-%s" % u], res
    assert res["runner_schedules"] == ["sch-%s-runner" % u], res
    status, s = call(pc, "GET", "%s/schedules/sch-%s-runner" % (API, u))
    assert status == 200 and s["data"]["groups"] == ["rg-" + u] and \
        s["data"]["created_by"] == runner, s
    assert res["operator_push"]["heading"].startswith("%s: ok" % ids[1]), res
    assert (push_dir / "op.conf").read_text() == content
    assert "Forbidden" in res["operator_groups"] and \
        "administrator" in res["operator_groups"], res
    _, jobs = call(pc, "GET", API + "/jobs")
    assert any(j["started_by"] == op for j in jobs["data"]), jobs
    ran = [j for j in jobs["data"] if j["started_by"] == runner]
    assert [(j["agent"], j["command"]) for j in ran] == \
        [(ids[0], "echo ran-" + u)], ran
