"""Jobs on agents (issue 14): the server asks, the agent's own config
decides (commands_enabled, command_allow/deny, the shell-metacharacter
default, command_timeout_max, allow_root, scripts_enabled,
script_interpreter, file_push_dir), runs the command or script in its own
process group with capped output, streams it, and kills whatever the job
started at its end or timeout. Batches on many agents (IDs, tags, client
groups) with a concurrency limit; results kept by an agent that went away;
file pushes and the attacks on them; schedules with a fast clock. Real
agents (one in a network namespace) and a real server, through the REST
API and the CLI.
"""

import base64
import hashlib
import http.client
import json
import os
import pwd
import stat
import struct
import signal
import subprocess
import time

import pytest

from agentlib import (agent_server, make_agent, netns, ns_server,  # noqa: F401
                      wait_agent)
from pclib import Portcullis, uniq

API = "/api/v1"
ON = ["commands_enabled = true", "allow_root = true"]


def call(pc, method, path, body=None, timeout=60):
    if not getattr(pc, "_job_token", None):
        conn = http.client.HTTPConnection("127.0.0.1", pc.http_port,
                                          timeout=30)
        conn.request("POST", API + "/login",
                     body=json.dumps({"username": pc.admin_user,
                                      "password": pc.admin_password}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        pc._job_token = json.loads(r.read())["data"]["token"]
        conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", pc.http_port,
                                      timeout=timeout)
    hdrs = {"Authorization": "Bearer " + pc._job_token}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=hdrs)
    r = conn.getresponse()
    status, raw = r.status, r.read()
    conn.close()
    return status, json.loads(raw) if raw else None


def run(pc, agent_id, command, **kw):
    body = {"command": command} if command is not None else {}
    body.update(kw)
    status, out = call(pc, "POST", "%s/agents/%s/commands" % (API, agent_id),
                       body)
    assert status == 200, (status, out)
    return out["data"]


def online_agent(pc, make_agent, conf=ON):
    a = make_agent(pc, conf=list(conf))
    wait_agent(pc, a.id)
    return a


def test_command_output_and_exit_code(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=ON + ["command_allow = .*"])
    j = run(pc, a.id, "printf hello", timeout=10)
    assert j["status"] == "ok", j
    assert j["exit_code"] == 0 and j["stdout"] == "hello", j
    j = run(pc, a.id, "ls /nonexistent-" + uniq(), cwd="/tmp", timeout=10)
    assert j["status"] == "failed" and j["exit_code"] == 2, j
    assert "No such file" in j["stderr"], j
    j = run(pc, a.id, "pwd", cwd="/tmp")
    assert j["stdout"] == "/tmp\n", j
    # the job is recorded with its output
    status, got = call(pc, "GET", "%s/jobs/%s" % (API, j["id"]))
    assert status == 200 and got["data"]["stdout"] == "/tmp\n", got
    status, lst = call(pc, "GET", API + "/jobs")
    assert status == 200 and j["id"] in [x["id"] for x in lst["data"]]
    # the audit trail names it
    _, out, _ = pc.cli("audit", "list", "--json")
    assert "job.run" in out


def test_commands_off_refuses_with_the_reason(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=["allow_root = true"])
    j = run(pc, a.id, "id")
    assert j["status"] == "refused", j
    assert "commands_enabled is off" in j["why"], j


def test_root_refused_without_allow_root(agent_server, make_agent):
    pc = agent_server
    if os.geteuid() != 0:
        pytest.skip("the agent must run as root for this check")
    a = online_agent(pc, make_agent, conf=["commands_enabled = true"])
    j = run(pc, a.id, "id")
    assert j["status"] == "refused" and "allow_root" in j["why"], j


def test_deny_rule_refuses_with_its_reason(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=ON + ["command_deny = ^rm[[:space:]]"])
    j = run(pc, a.id, "rm -f /tmp/nothing-" + uniq())
    assert j["status"] == "refused", j
    assert "command_deny '^rm[[:space:]]' matches" in j["why"], j
    assert run(pc, a.id, "true")["status"] == "ok"


def test_metacharacters_refused_by_default(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent)
    marker = "/tmp/pc-job-" + uniq()
    for cmd in ("true; touch %s" % marker, "true && touch %s" % marker,
                "true | touch %s" % marker, "echo $(touch %s)" % marker,
                "true > %s" % marker, "echo `touch %s`" % marker):
        j = run(pc, a.id, cmd)
        assert j["status"] == "refused", (cmd, j)
        assert "metacharacters" in j["why"], j
    assert not os.path.exists(marker)
    # the timeout the agent accepts is its own
    j = run(pc, a.id, "true", timeout=3600)
    assert j["status"] == "refused" and "command_timeout_max" in j["why"], j


def test_allow_rule_admits_metacharacters(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent,
                     conf=ON + ["command_allow = echo [a-z]+ [|] wc -c"])
    j = run(pc, a.id, "echo abc | wc -c")
    assert j["status"] == "ok" and j["stdout"].strip() == "4", j
    j = run(pc, a.id, "echo abc | wc -c; id")  # not a whole match
    assert j["status"] == "refused", j
    assert "no command_allow rule matches" in j["why"], j


def procs_with(text):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if text.encode() in cmd:
            found.append(int(pid))
    return found


def test_timeout_kills_the_process_group(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent)
    secs = str(6000 + int(time.time()) % 997)
    t0 = time.monotonic()
    j = run(pc, a.id, "sleep %s" % secs, timeout=2)
    took = time.monotonic() - t0
    assert j["status"] == "timeout", j
    assert j["exit_code"] is None and j["signal"] == 15, j
    assert took < 10, took
    deadline = time.monotonic() + 5
    while procs_with("sleep\0" + secs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert procs_with("sleep\0" + secs) == []
    # nor a runner: only the agent itself runs its config (the runner
    # waits for the server's acknowledgement of the stored result, which
    # may come a moment after the job reads as ended)
    deadline = time.monotonic() + 5
    while procs_with(str(a.conf)) != [a.proc.pid] and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    assert procs_with(str(a.conf)) == [a.proc.pid]


def test_background_child_killed_with_the_job(agent_server, make_agent):
    pc = agent_server
    secs = str(7000 + int(time.time()) % 997)
    a = online_agent(pc, make_agent,
                     conf=ON + ["command_allow = sleep [0-9]+ & true"])
    j = run(pc, a.id, "sleep %s & true" % secs, timeout=3)
    # the background sleep holds the output open: the job ends at its
    # timeout, and the group goes with it
    assert j["status"] == "timeout", j
    deadline = time.monotonic() + 5
    while procs_with("sleep\0" + secs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert procs_with("sleep\0" + secs) == []


def test_output_over_the_cap_is_truncated(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent)
    j = run(pc, a.id, "seq 1 1000000", timeout=30)
    assert j["status"] == "ok", {k: v for k, v in j.items()
                                 if k not in ("stdout",)}
    out = j["stdout"]
    marker = "\n[portcullis: output truncated at 4194304 bytes]\n"
    assert out.endswith(marker)
    assert len(out) == 4 * 1024 * 1024 + len(marker)
    assert out.startswith("1\n2\n3\n")


def test_offline_agent(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent)
    a.stop()
    wait_agent(pc, a.id, online=False)
    j = run(pc, a.id, "true")
    assert j["status"] == "agent offline", j
    status, _ = call(pc, "POST", "%s/agents/%s/commands" % (API, a.id),
                     {"command": "true", "timeout": 0})
    assert status == 400


def test_no_wait_answers_202(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent)
    status, out = call(pc, "POST", "%s/agents/%s/commands" % (API, a.id),
                       {"command": "sleep 1", "wait": False})
    assert status == 202 and out["data"]["status"] == "running", out
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, got = call(pc, "GET", "%s/jobs/%s" % (API, out["data"]["id"]))
        if got["data"]["status"] != "running":
            break
        time.sleep(0.2)
    assert got["data"]["status"] == "ok" and got["data"]["exit_code"] == 0


# ------------------------------------------------------------- the CLI


def test_cli_job_run_prints_output_and_exits_with_its_code(agent_server,
                                                           make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent)
    rc, out, err = pc.cli("job", "run", a.id, "--cwd", "/tmp", "--", "pwd")
    assert (rc, out) == (0, "/tmp\n"), (rc, out, err)
    rc, out, err = pc.cli("job", "run", a.id, "--", "ls", "/nonexistent-x",
                          check=False)
    assert rc == 2 and "No such file" in err, (rc, out, err)
    rc, out, err = pc.cli("job", "run", a.id, "--timeout", "1", "--",
                          "sleep", "30", check=False)
    assert rc == 124 and "timeout" in err, (rc, out, err)
    rc, out, err = pc.cli("job", "run", a.id, "--", "echo a; id",
                          check=False)
    assert rc == 125 and "refused" in err and "metacharacters" in err, err
    rc, out, err = pc.cli("job", "run", "no-such-agent", "--", "true",
                          check=False)
    assert rc == 125 and "agent offline" in err, (rc, out, err)
    _, out, _ = pc.cli("job", "list", "--json")
    rows = json.loads(out)
    assert sorted(r["status"] for r in rows) == [
        "agent offline", "failed", "ok", "refused", "timeout"], rows
    pwd = [r for r in rows if r["command"] == "pwd"][0]
    _, out, _ = pc.cli("job", "show", pwd["id"])
    assert "status=ok" in out and "--- stdout\n/tmp\n" in out, out
    rc, _, err = pc.cli("job", "run", a.id, check=False)
    assert rc == 2 and "after '--'" in err


def test_cli_job_run_without_server(agent_server):
    pc = agent_server
    pc.stop()
    rc, out, err = pc.cli("job", "run", "x", "--", "true", check=False)
    assert rc == 125 and "no server is running" in err, (rc, out, err)
    pc.start()
    pc.wait_http()


def test_job_running_at_a_restart_ends_lost(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent)
    status, out = call(pc, "POST", "%s/agents/%s/commands" % (API, a.id),
                       {"command": "sleep 30", "wait": False})
    assert status == 202, out
    time.sleep(1)
    # a crash: nothing records the job's end but the next start
    os.killpg(pc.proc.pid, signal.SIGKILL)
    pc.proc.wait(10)
    pc.proc = None
    pc.start()
    pc.wait_http()
    pc._job_token = None
    status, got = call(pc, "GET", "%s/jobs/%s" % (API, out["data"]["id"]))
    assert status == 200 and got["data"]["status"] == "lost", json.dumps(got)
    assert "restarted" in got["data"]["why"]


def test_agent_gone_mid_job_ends_lost(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent)
    status, out = call(pc, "POST", "%s/agents/%s/commands" % (API, a.id),
                       {"command": "sleep 30", "wait": False})
    assert status == 202, out
    time.sleep(1)
    a.kill()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        _, got = call(pc, "GET", "%s/jobs/%s" % (API, out["data"]["id"]))
        if got["data"]["status"] != "running":
            break
        time.sleep(0.2)
    assert got["data"]["status"] == "lost", json.dumps(got)


# ------------------------------------------------- many agents (batches)


def batch_done(pc, batch, n, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, got = call(pc, "GET",
                           "%s/jobs?filter[batch]=%s" % (API, batch))
        assert status == 200, got
        rows = got["data"]
        if len(rows) == n and all(r["status"] not in ("queued", "running")
                                  for r in rows):
            return rows
        time.sleep(0.2)
    pytest.fail("batch %s unfinished: %r" % (batch, rows))


def test_batch_by_tag_gives_one_result_per_agent(agent_server, make_agent):
    pc = agent_server
    tag = uniq("t")
    tagged = [online_agent(pc, make_agent, conf=ON + ["tag = " + tag])
              for _ in range(3)]
    other = online_agent(pc, make_agent, conf=ON + ["tag = other"])
    status, out = call(pc, "POST", API + "/jobs",
                       {"tags": [tag], "command": "hostname -s",
                        "timeout": 10})
    assert status == 202, out
    batch = out["data"]["batch"]
    assert sorted(j["agent"] for j in out["data"]["jobs"]) == \
        sorted(a.id for a in tagged)
    rows = batch_done(pc, batch, 3)
    assert [r["status"] for r in rows] == ["ok"] * 3, rows
    assert other.id not in [r["agent"] for r in rows]
    for r in rows:
        status, got = call(pc, "GET", "%s/jobs/%s" % (API, r["id"]))
        assert got["data"]["stdout"].strip() == os.uname().nodename.split(
            ".")[0], got
    # the CLI: IDs and a tag together, each result under a header, exit 0
    rc, out, err = pc.cli("job", "run", "%s,%s" % (other.id, tagged[0].id),
                          "--tag", tag, "--", "printf", "hi")
    assert rc == 0, (rc, out, err)
    for a in tagged + [other]:
        assert ("=== %s: ok (exit 0)\nhi\n" % a.id) in out, out
    assert out.count("=== ") == 4, out
    # one failure: exit 1, the failing agent's status shown
    rc, out, err = pc.cli("job", "run", "%s,no-such-agent" % other.id,
                          "--", "true", check=False)
    assert rc == 1 and "=== no-such-agent: agent offline" in out, (out, err)
    # a tag nobody has is an error, nothing queued
    rc, out, err = pc.cli("job", "run", "--tag", "nobody-" + uniq(), "--",
                          "true", check=False)
    assert rc == 1 and "no agent has the tag" in err, err
    status, out = call(pc, "POST", API + "/jobs", {"command": "true"})
    assert status == 400 and "no target" in json.dumps(out), out


def test_batch_concurrency_limit(agent_server, make_agent):
    pc = agent_server
    tag = uniq("c")
    for _ in range(3):
        online_agent(pc, make_agent,
                     conf=ON + ["tag = " + tag, "command_allow = .*"])
    cmd = "date +%s.%N; sleep 0.5; date +%s.%N"
    status, out = call(pc, "POST", API + "/jobs",
                       {"tags": [tag], "command": cmd, "concurrency": 1})
    assert status == 202, out
    rows = batch_done(pc, out["data"]["batch"], 3)
    spans = []
    for r in rows:
        _, got = call(pc, "GET", "%s/jobs/%s" % (API, r["id"]))
        assert got["data"]["status"] == "ok", got
        spans.append(tuple(float(x) for x in got["data"]["stdout"].split()))
    spans.sort()
    # one at a time: each starts after the previous one ended
    for a, b in zip(spans, spans[1:]):
        assert b[0] >= a[1], spans
    # no limit: they overlap
    status, out = call(pc, "POST", API + "/jobs",
                       {"tags": [tag], "command": cmd})
    rows = batch_done(pc, out["data"]["batch"], 3)
    spans = sorted(tuple(float(x) for x in call(
        pc, "GET", "%s/jobs/%s" % (API, r["id"]))[1]["data"]["stdout"].split())
        for r in rows)
    assert spans[-1][0] < spans[0][1], spans


def test_batch_stop_on_failure_skips_the_rest(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent)
    b = online_agent(pc, make_agent)
    status, out = call(pc, "POST", API + "/jobs",
                       {"agents": ["no-such-" + uniq(), a.id, b.id],
                        "command": "true", "concurrency": 1,
                        "stop_on_failure": True})
    assert status == 202, out
    rows = batch_done(pc, out["data"]["batch"], 3)
    assert sorted(r["status"] for r in rows) == [
        "agent offline", "skipped", "skipped"], rows


# ---------------------------------------------------------------- scripts

SCRIPTS = ON + ["scripts_enabled = true"]


def test_scripts_in_bash_and_python3(agent_server, make_agent, tmp_path):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=SCRIPTS)
    j = run(pc, a.id, None, interpreter="bash", timeout=10,
            script='x=(a b c)\necho "${#x[@]} $BASH_VERSION" | cut -c1-2\n'
                   'echo err >&2\nexit 3\n')
    assert j["status"] == "failed" and j["exit_code"] == 3, j
    assert j["stdout"] == "3 \n" and j["stderr"] == "err\n", j
    assert j["interpreter"] == "bash", j
    assert j["command"].startswith("[bash script, "), j
    j = run(pc, a.id, None, interpreter="python3", cwd="/tmp",
            script="import os, sys\nprint(os.getcwd(), sys.version_info[0])\n")
    assert j["status"] == "ok" and j["stdout"] == "/tmp 3\n", j
    # output that is not UTF-8: each byte that is not becomes U+FFFD
    j = run(pc, a.id, None, interpreter="python3",
            script="import sys\nsys.stdout.buffer.write(b'a\\xffb\\xc3')\n")
    assert j["status"] == "ok" and j["stdout"] == "a\ufffdb\ufffd", j
    # the CLI: a file, or standard input
    f = tmp_path / "s.py"
    f.write_text("print(sum(range(10)))\n")
    rc, out, err = pc.cli("job", "run", a.id, "--script", str(f),
                          "--interpreter", "python3")
    assert (rc, out) == (0, "45\n"), (rc, out, err)
    rc, out, err = pc.cli("job", "run", a.id, "--script", str(f), "--",
                          "true", check=False)
    assert rc == 2 and "not both" in err, err


def test_script_in_pwsh(agent_server, make_agent):
    """PowerShell reads its script from standard input (agent/job.c)."""
    if not os.path.exists("/usr/bin/pwsh"):
        pytest.skip("pwsh (PowerShell) is not packaged in Debian 12; the "
                    "agent's default path for it is /usr/bin/pwsh")
    pc = agent_server
    a = online_agent(pc, make_agent, conf=SCRIPTS)
    j = run(pc, a.id, None, interpreter="pwsh", timeout=60,
            script='Write-Output (2 + 3)\n[Console]::Error.WriteLine("e")\n'
                   'exit 6\n')
    assert (j["status"], j["exit_code"], j["stdout"], j["stderr"]) == (
        "failed", 6, "5\n", "e\n"), j


def test_scripts_off_by_default_and_interpreters_limited(agent_server,
                                                         make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent)  # commands on, scripts not
    j = run(pc, a.id, None, interpreter="sh", script="echo hi\n")
    assert j["status"] == "refused", j
    assert "scripts_enabled is off" in j["why"], j
    b = online_agent(pc, make_agent,
                     conf=SCRIPTS + ["script_interpreter = sh"])
    j = run(pc, b.id, None, interpreter="bash", script="echo hi\n")
    assert j["status"] == "refused", j
    assert "interpreter 'bash' is not permitted" in j["why"], j
    assert run(pc, b.id, None, interpreter="sh",
               script="echo hi\n")["stdout"] == "hi\n"
    # an interpreter the agent names by path
    c = online_agent(pc, make_agent,
                     conf=SCRIPTS + ["script_interpreter = py=/usr/bin/python3"])
    assert run(pc, c.id, None, interpreter="py",
               script="print(6*7)\n")["stdout"] == "42\n"


def test_script_lines_meet_the_deny_and_allow_rules(agent_server, make_agent):
    pc = agent_server
    marker = "/tmp/pc-script-" + uniq()
    a = online_agent(pc, make_agent,
                     conf=SCRIPTS + ["command_deny = ^rm[[:space:]]"])
    j = run(pc, a.id, None, interpreter="sh",
            script="touch %s\nrm -f %s\n" % (marker, marker))
    assert j["status"] == "refused", j
    assert "command_deny '^rm[[:space:]]' matches script line 2" in j["why"]
    assert not os.path.exists(marker)
    b = online_agent(pc, make_agent,
                     conf=SCRIPTS + ["command_allow = echo [a-z]+"])
    j = run(pc, b.id, None, interpreter="sh",
            script="#!/bin/sh\n\necho abc\n  # note\necho def\n")
    assert j["status"] == "ok" and j["stdout"] == "abc\ndef\n", j
    j = run(pc, b.id, None, interpreter="sh",
            script="echo abc\ntouch %s\n" % marker)
    assert j["status"] == "refused", j
    assert "no command_allow rule matches script line 2" in j["why"], j
    assert not os.path.exists(marker)


def test_script_timeout_leaves_nothing_behind(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=SCRIPTS)
    s1 = str(8000 + int(time.time()) % 997)
    s2 = str(9000 + int(time.time()) % 997)
    # a daemon that left the process group, then a long sleep
    j = run(pc, a.id, None, interpreter="sh", timeout=2,
            script="setsid sleep %s >/dev/null 2>&1 < /dev/null &\n"
                   "sleep %s\n" % (s1, s2))
    assert j["status"] == "timeout", j
    deadline = time.monotonic() + 5
    while (procs_with("sleep\0" + s1) or procs_with("sleep\0" + s2)) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    assert procs_with("sleep\0" + s1) == [] and procs_with("sleep\0" + s2) == []
    # a job that ends at once does not leave its daemon running either
    j = run(pc, a.id, None, interpreter="sh", timeout=10,
            script="setsid sleep %s >/dev/null 2>&1 < /dev/null &\necho ok\n"
                   % s1)
    assert j["status"] == "ok" and j["stdout"] == "ok\n", j
    deadline = time.monotonic() + 5
    while procs_with("sleep\0" + s1) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert procs_with("sleep\0" + s1) == []
    # nor a copy of the script on disk: it is a sealed memory file
    j = run(pc, a.id, None, interpreter="sh", script="echo $0\n")
    assert j["stdout"] == "/dev/fd/3\n", j


def test_script_output_cap_on_both_streams(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=SCRIPTS)
    j = run(pc, a.id, None, interpreter="python3", timeout=30,
            script="import sys\nsys.stdout.write('o' * 5000000)\n"
                   "sys.stderr.write('e' * 4194304)\n")
    marker = "\n[portcullis: output truncated at 4194304 bytes]\n"
    assert j["status"] == "ok", j["why"]
    assert j["stdout"] == "o" * 4194304 + marker
    assert j["stderr"] == "e" * 4194304  # exactly the cap: not truncated


# ------------------------------------------- live output, kept results


def wait_job(pc, job_id, cond, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, got = call(pc, "GET", "%s/jobs/%s" % (API, job_id))
        if cond(got["data"]):
            return got["data"]
        time.sleep(0.1)
    pytest.fail("job %s: %r" % (job_id, got))


def test_output_streams_live(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=SCRIPTS)
    script = "echo first\necho oops >&2\nsleep 2\necho second\n"
    status, out = call(pc, "POST", "%s/agents/%s/commands" % (API, a.id),
                       {"interpreter": "sh", "script": script,
                        "wait": False})
    assert status == 202, out
    jid = out["data"]["id"]
    # the API: the output so far, while the job still runs
    j = wait_job(pc, jid, lambda d: d["stdout"] == "first\n")
    assert j["status"] == "running" and j["stderr"] == "oops\n", j
    # the CLI follows it: the first line comes before the job ends
    p = subprocess.Popen([pc.bin, "-c", pc.conf, "job", "show", jid,
                          "--follow"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "first\n"
        assert call(pc, "GET", "%s/jobs/%s" % (API, jid))[1]["data"][
            "status"] == "running"
        rest, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert (p.returncode, rest, err) == (0, "second\n", "oops\n")
    # job run --follow prints as it goes and exits with the job's code
    rc, out, err = pc.cli("job", "run", a.id, "--follow", "--script", "-",
                          "--interpreter", "sh",
                          input="echo a\nsleep 1\necho b\nexit 7\n",
                          check=False)
    assert (rc, out) == (7, "a\nb\n"), (rc, out, err)


def test_killed_agent_hands_its_result_over_when_back(agent_server,
                                                      make_agent, tmp_path):
    pc = agent_server
    keep = tmp_path / "kept-results"
    keep.mkdir()
    a = online_agent(pc, make_agent,
                     conf=SCRIPTS + ["job_results_dir = %s" % keep])
    status, out = call(pc, "POST", "%s/agents/%s/commands" % (API, a.id),
                       {"interpreter": "sh", "wait": False,
                        "script": "echo before\nsleep 2\necho after\n",
                        "timeout": 20})
    assert status == 202, out
    jid = out["data"]["id"]
    wait_job(pc, jid, lambda d: d["stdout"] == "before\n")
    a.kill()  # mid-job: the runner goes on without it
    j = wait_job(pc, jid, lambda d: d["status"] != "running")
    assert j["status"] == "lost", j
    time.sleep(2.5)  # the job ends while the agent is away
    assert [p.name for p in keep.iterdir()] == [jid]
    a.start()
    wait_agent(pc, a.id)
    j = wait_job(pc, jid, lambda d: d["status"] != "lost")
    assert j["status"] == "ok" and j["stdout"] == "before\nafter\n", j
    # acknowledged: the agent dropped its copy
    deadline = time.monotonic() + 10
    while list(keep.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(keep.iterdir()) == []
    # a job that ends while the agent is connected leaves no copy either
    j = run(pc, a.id, None, interpreter="sh", script="echo x\n")
    assert j["status"] == "ok"
    deadline = time.monotonic() + 10
    while list(keep.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(keep.iterdir()) == []


def test_lost_job_without_a_kept_result_stays_lost(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=SCRIPTS)
    status, out = call(pc, "POST", "%s/agents/%s/commands" % (API, a.id),
                       {"command": "sleep 2", "wait": False})
    jid = out["data"]["id"]
    time.sleep(0.5)
    a.kill()
    wait_job(pc, jid, lambda d: d["status"] == "lost")
    a.start()
    wait_agent(pc, a.id)
    j = wait_job(pc, jid, lambda d: "kept no result" in d["why"])
    assert j["status"] == "lost", j


# -------------------------------------------------------------- file push


def push(pc, targets, data, dest, **kw):
    body = {"file_base64": base64.b64encode(data).decode(), "dest": dest}
    body.update(targets)
    body.update(kw)
    status, out = call(pc, "POST", API + "/jobs", body)
    assert status == 202, (status, out)
    rows = batch_done(pc, out["data"]["batch"], len(out["data"]["jobs"]))
    return status, [call(pc, "GET", "%s/jobs/%s" % (API, r["id"]))[1]["data"]
                    for r in rows]


def test_file_push_lands_with_mode_owner_and_hash(agent_server, make_agent,
                                                  tmp_path):
    pc = agent_server
    accept = tmp_path / "accept"
    (accept / "sub").mkdir(parents=True)
    tag = uniq("p")
    conf = ["allow_root = true", "file_push_dir = %s/" % accept,
            "tag = " + tag]
    agents = [online_agent(pc, make_agent, conf=conf) for _ in range(2)]
    data = os.urandom(700 * 1000 + 7)  # base64 within [http] max_body_bytes
    dest = accept / "sub" / "blob.bin"
    _, jobs = push(pc, {"tags": [tag]}, data, str(dest), mode=0o640,
                   overwrite=True, **({"owner": "nobody", "group": "nogroup"}
                                      if os.geteuid() == 0 else {}))
    digest = hashlib.sha256(data).hexdigest()
    assert sorted(j["agent"] for j in jobs) == sorted(a.id for a in agents)
    for j in jobs:
        assert j["status"] == "ok", j
        assert j["stdout"] == "wrote %s (%d bytes, sha256 %s, mode 0640)\n" % (
            dest, len(data), digest), j
        assert j["push"]["sha256"] == digest and j["push"]["size"] == len(data)
        assert j["concurrency"] == 16  # pushes: at most 16 at once
    assert dest.read_bytes() == data
    st = os.stat(dest)
    assert stat.S_IMODE(st.st_mode) == 0o640
    if os.geteuid() == 0:
        assert st.st_uid == pwd.getpwnam("nobody").pw_uid
    assert [p.name for p in (accept / "sub").iterdir()] == ["blob.bin"]
    # overwrite off: an existing file stays
    _, jobs = push(pc, {"agents": [agents[0].id]}, b"new", str(dest))
    assert jobs[0]["status"] == "failed", jobs
    assert "exists and overwrite is off" in jobs[0]["why"], jobs
    assert dest.read_bytes() == data
    # the CLI
    src = tmp_path / "small.txt"
    src.write_text("hello\n")
    rc, out, err = pc.cli("job", "push", str(src), agents[1].id, "--dest",
                          str(accept / "small.txt"), "--mode", "600")
    assert rc == 0 and out.startswith("wrote %s (6 bytes" % (
        accept / "small.txt")), (rc, out, err)
    assert stat.S_IMODE(os.stat(accept / "small.txt").st_mode) == 0o600


def test_file_push_refused_outside_the_accepted_directories(
        agent_server, make_agent, tmp_path):
    pc = agent_server
    accept = tmp_path / "accept"
    accept.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me\n")
    a = online_agent(pc, make_agent,
                     conf=["allow_root = true", "file_push_dir = %s" % accept])
    none = online_agent(pc, make_agent, conf=["allow_root = true"])
    # none accepted by default
    _, jobs = push(pc, {"agents": [none.id]}, b"x", str(accept / "f"))
    assert jobs[0]["status"] == "refused", jobs
    assert "no file_push_dir on this agent" in jobs[0]["why"]
    # outside, and the accepted directory itself with a longer name
    for dest in (outside / "f", str(accept) + "-evil/f", accept):
        _, jobs = push(pc, {"agents": [a.id]}, b"x", str(dest))
        assert jobs[0]["status"] == "refused", (dest, jobs)
        assert "outside every file_push_dir" in jobs[0]["why"], jobs
    # '..' never reaches the agent
    status, out = call(pc, "POST", API + "/jobs", {
        "agents": [a.id], "file_base64": "eA==",
        "dest": "%s/../outside/f" % accept})
    assert status == 400 and "'..'" in json.dumps(out), out
    # a symbolic link to a directory outside is not followed
    os.symlink(outside, accept / "link")
    _, jobs = push(pc, {"agents": [a.id]}, b"x", str(accept / "link" / "f"))
    assert jobs[0]["status"] == "failed", jobs
    assert "symbolic links are not followed" in jobs[0]["why"], jobs
    # a symbolic link as the destination is replaced, not written through
    os.symlink(outside / "precious", accept / "trap")
    _, jobs = push(pc, {"agents": [a.id]}, b"pushed\n", str(accept / "trap"),
                   overwrite=True)
    assert jobs[0]["status"] == "ok", jobs
    assert not os.path.islink(accept / "trap")
    assert (accept / "trap").read_text() == "pushed\n"
    assert sorted(p.name for p in outside.iterdir()) == ["precious"]
    assert (outside / "precious").read_text() == "keep me\n"
    # nothing half-written is left behind
    assert sorted(p.name for p in accept.iterdir()) == ["link", "trap"]


# -------------------------------------------------------------- schedules


@pytest.fixture
def fast_clock_server(tmp_path):
    """A server whose schedule clock runs a minute every 2 s."""
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    p.set_config("jobs", "schedule_minute_seconds", "2")
    p.start()
    p.wait_http()
    yield p
    p.stop()


def test_schedule_fires_each_minute_and_reports_missed(fast_clock_server,
                                                       make_agent):
    pc = fast_clock_server
    tag = uniq("s")
    a = online_agent(pc, make_agent, conf=ON + ["tag = " + tag])
    name = uniq("every")
    rc, out, err = pc.cli("schedule", "add", name, "--cron", "* * * * *",
                          "--tag", tag, "--", "echo", "tick")
    assert rc == 0, err
    status, s = call(pc, "GET", "%s/schedules/%s" % (API, name))
    assert status == 200 and s["data"]["next_run"] and \
        s["data"]["next_run_utc"].endswith("Z"), s

    def scheduled():
        _, lst = call(pc, "GET", API + "/jobs")
        return [j for j in lst["data"]
                if j["started_by"] == "schedule:" + name]

    deadline = time.monotonic() + 15
    while len(scheduled()) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    jobs = scheduled()
    assert len(jobs) >= 2, jobs
    assert len({j["batch"] for j in jobs}) == len(jobs)  # one batch each
    for j in jobs[:2]:
        got = wait_job(pc, j["id"], lambda d: d["status"] != "running")
        assert got["status"] == "ok" and got["stdout"] == "tick\n", got
        assert got["agent"] == a.id
    # a schedule that may not run: not every minute, so nothing fires now
    status, out = call(pc, "POST", API + "/schedules",
                       {"name": uniq("bad"), "cron": "61 * * * *",
                        "command": "true", "tags": [tag]})
    assert status == 400 and "minute" in json.dumps(out), out
    # the server stops for about 4 schedule minutes: reported, not run
    before = len(scheduled())
    pc.stop()
    time.sleep(6)
    pc.start()
    pc.wait_http()
    pc._job_token = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = call(pc, "GET", "%s/schedules/%s" % (API, name))[1]["data"]
        if s["missed"] >= 2:
            break
        time.sleep(0.2)
    assert s["missed"] >= 2 and s["last_missed"], s
    # only the firings after the start ran: at most one so far
    assert len(scheduled()) - before <= 2
    _, out, _ = pc.cli("audit", "list", "--json")
    assert "schedule.missed" in out and "not run late" in out
    rc, out, _ = pc.cli("schedule", "list")
    assert name in out
    assert pc.cli("schedule", "delete", name)[0] == 0
    assert call(pc, "GET", "%s/schedules/%s" % (API, name))[0] == 404


# ---------------------------------------------------------- client groups


def test_client_groups_static_and_dynamic_as_targets(agent_server,
                                                     make_agent):
    pc = agent_server
    u = uniq("cg")
    web1 = online_agent(pc, make_agent,
                        conf=ON + ["name = web1-" + u, "tag = prod"])
    web2 = online_agent(pc, make_agent,
                        conf=ON + ["name = web2-" + u, "tag = dev"])
    db = online_agent(pc, make_agent,
                      conf=ON + ["name = db-" + u, "tag = prod"])
    rc, _, err = pc.cli("client-group", "add", "web-prod-" + u,
                        "--match-name", "web*-" + u, "--match-tag", "prod")
    assert rc == 0, err
    status, out = call(pc, "POST", API + "/client-groups",
                       {"name": "db-" + u, "agents": [db.id]})
    assert status == 201, out
    status, out = call(pc, "GET", "%s/client-groups/web-prod-%s" % (API, u))
    assert status == 200 and out["data"]["members"] == [web1.id], out
    # both groups as targets: the dynamic one's match and the static one
    rc, out, err = pc.cli("job", "run", "--groups",
                          "web-prod-%s,db-%s" % (u, u), "--", "true")
    assert rc == 0, (out, err)
    assert sorted(l.split(":")[0][4:] for l in out.splitlines()
                  if l.startswith("=== ")) == sorted([web1.id, db.id]), out
    assert web2.id not in out
    status, out = call(pc, "POST", API + "/jobs",
                       {"groups": ["db-" + u], "command": "true"})
    assert status == 202 and [j["agent"] for j in out["data"]["jobs"]] == [
        db.id], out
    # unknown groups and rules are errors
    rc, _, err = pc.cli("job", "run", "--groups", "nope-" + u, "--", "true",
                        check=False)
    assert rc == 1 and "client group 'nope-%s' not found" % u in err, err
    status, out = call(pc, "POST", API + "/client-groups",
                       {"name": "x-" + u, "rules": '{"ip": ["1*"]}'})
    assert status == 400 and "unknown field" in json.dumps(out), out
    assert pc.cli("client-group", "delete", "db-" + u)[0] == 0
    status, _ = call(pc, "GET", "%s/client-groups/db-%s" % (API, u))
    assert status == 404


# ----------------------------------------------- an agent in a namespace


def test_job_on_an_agent_in_a_network_namespace(ns_server, make_agent):
    pc, ns = ns_server
    a = make_agent(pc, netns=ns, conf=ON)
    wait_agent(pc, a.id)
    # the command runs where the agent runs: inside the namespace
    rc, out, err = pc.cli("job", "run", a.id, "--", "ip", "-o", "-4", "addr",
                          "show")
    assert rc == 0, (out, err)
    assert ns.ns_ip + "/30" in out and ns.host_ip + "/30" not in out, out


# ------------------------------------------------------ a hostile agent


def frame(kind, payload):
    return kind + struct.pack(">I", len(payload)) + payload


def test_hostile_agent_results_are_refused(agent_server):
    """An agent of our own (agentproto: paramiko) answers the server's job
    channels with what the real agent never sends: lengths that lie, an
    output frame over the limit, bytes after the result, a status it may
    not claim. Each job ends failed with the reason; the server goes on."""
    import paramiko

    from agentlib import credential
    from agentproto import ProtoAgent

    pc = agent_server
    ok = json.dumps({"status": "ok", "exit_code": 0, "signal": None,
                     "stdout_len": 5, "stderr_len": 0}).encode()
    answers = [
        # forged: claims 5 bytes of stdout, sends 3
        (frame(b"O", b"abc") + frame(b"R", ok), "lengths differ"),
        # an output frame larger than any the agent may send
        (b"O" + struct.pack(">I", 70000) + b"x" * 100,
         "an output frame of 70000 bytes"),
        # bytes after the result
        (frame(b"O", b"hello") + frame(b"R", ok) + b"O",
         "bytes after the result"),
        # a status only the server gives
        (frame(b"R", json.dumps({"status": "lost", "stdout_len": 0,
                                 "stderr_len": 0}).encode()),
         "no known status"),
    ]
    a = ProtoAgent("ws://127.0.0.1:%d/agent" % pc.http_port)
    a.login(*credential(pc))
    pending = list(answers)

    def on_channel_open(t, m):
        kind = m.get_text()
        peer = m.get_int()
        m.get_int()
        m.get_int()
        assert kind == "direct-tcpip" and m.get_text() == "job@portcullis"
        t.channels_seen[77] = True
        payload = pending.pop(0)[0]
        for typ, *args in (
                (paramiko.common.cMSG_CHANNEL_OPEN_SUCCESS, peer, 77,
                 1 << 30, 32768),):
            r = paramiko.Message()
            r.add_byte(typ)
            for v in args:
                r.add_int(v)
            t._send_user_message(r)
        r = paramiko.Message()
        r.add_byte(paramiko.common.cMSG_CHANNEL_EXTENDED_DATA)
        r.add_int(peer)
        r.add_int(1)
        r.add_string(b"ok\n")
        t._send_user_message(r)
        r = paramiko.Message()
        r.add_byte(paramiko.common.cMSG_CHANNEL_DATA)
        r.add_int(peer)
        r.add_string(payload)
        t._send_user_message(r)
        r = paramiko.Message()
        r.add_byte(paramiko.common.cMSG_CHANNEL_EOF)
        r.add_int(peer)
        t._send_user_message(r)

    a.t._handler_table = dict(a.t._handler_table)
    a.t._handler_table[paramiko.common.MSG_CHANNEL_OPEN] = on_channel_open
    ident = uniq("evil")
    try:
        assert a.announce({"id": ident}) == (0, "")
        wait_agent(pc, ident)
        for _, reason in answers:
            j = run(pc, ident, "true", timeout=5)
            assert j["status"] == "failed", j
            assert "the agent's result is malformed" in j["why"], j
            assert reason in j["why"], (reason, j)
    finally:
        a.close()
    assert pc.proc.poll() is None
