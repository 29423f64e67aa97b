"""Jobs through sudo (issue 14: "an optional sudo (agent-side sudo
rules)"; docs/agent.md "sudo"): the agent runs a command or script as
another account only if its own sudo_user lists that account (root needs
allow_root too), through `sudo -n -u USER`, and the host's sudoers has the
last word. The agent under test runs as root, which sudoers lets become
anyone; the account is a real one made for the test and removed after.

PowerShell (`pwsh`) is not packaged in Debian 12, so its scripts are not
tested here (the interpreter's default path is /usr/bin/pwsh)."""
import shutil
import subprocess
import time

import pytest

from agentlib import agent_server, make_agent, wait_agent  # noqa: F401
from pclib import uniq
from test_jobs import (API, ON, SCRIPTS, call, online_agent, procs_with,
                       run)

pytestmark = pytest.mark.skipif(
    shutil.which("sudo") is None or shutil.which("useradd") is None,
    reason="sudo or useradd is not installed (scripts/install-deps)")


@pytest.fixture
def account():
    name = uniq("sj")[:30]
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh",
                    name], check=True, capture_output=True, timeout=30)
    yield name
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True,
                   timeout=30)
    subprocess.run(["userdel", name], capture_output=True, timeout=30)


def test_command_and_script_run_as_the_listed_account(agent_server,
                                                      make_agent, account):
    pc = agent_server
    a = online_agent(pc, make_agent,
                     conf=SCRIPTS + ["sudo_user = " + account])
    j = run(pc, a.id, "id -un", sudo=account, timeout=20)
    assert (j["status"], j["stdout"], j["sudo"]) == ("ok", account + "\n",
                                                     account), j
    j = run(pc, a.id, None, interpreter="sh", sudo=account, timeout=20,
            script="id -un\necho err >&2\nexit 4\n")
    assert (j["status"], j["exit_code"], j["stdout"], j["stderr"]) == (
        "failed", 4, account + "\n", "err\n"), j
    j = run(pc, a.id, None, interpreter="python3", sudo=account, timeout=20,
            script="import os, pwd\nprint(pwd.getpwuid(os.getuid())[0])\n")
    assert j["stdout"] == account + "\n", j
    # without sudo: the agent's own user
    j = run(pc, a.id, "id -un", timeout=20)
    assert j["stdout"] == "root\n" and j["sudo"] is None, j
    # the CLI asks the same
    rc, out, err = pc.cli("job", "run", a.id, "--sudo", account, "--",
                          "id", "-un", check=False)
    assert (rc, out) == (0, account + "\n"), err


def test_sudo_refused_with_the_rule(agent_server, make_agent, account):
    pc = agent_server
    off = online_agent(pc, make_agent)
    j = run(pc, off.id, "id -un", sudo=account, timeout=20)
    assert j["status"] == "refused", j
    assert j["why"] == "sudo is off on this agent (no sudo_user)", j
    on = online_agent(pc, make_agent, conf=ON + ["sudo_user = nobody"])
    j = run(pc, on.id, "id -un", sudo=account, timeout=20)
    assert j["status"] == "refused", j
    assert j["why"] == "sudo to '%s' is not allowed (sudo_user)" % account
    # the server checks the name before it asks anyone
    status, out = call(pc, "POST", "%s/agents/%s/commands" % (API, on.id),
                       {"command": "id", "sudo": "-u root"})
    assert status == 400, out


def test_timeout_under_sudo_leaves_nothing_behind(agent_server, make_agent,
                                                  account):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=ON + ["sudo_user = " + account])
    secs = str(8000 + int(time.time()) % 997)
    j = run(pc, a.id, "sleep " + secs, sudo=account, timeout=2)
    assert j["status"] == "timeout", j
    deadline = time.monotonic() + 10
    while procs_with("sleep\0" + secs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert procs_with("sleep\0" + secs) == []
