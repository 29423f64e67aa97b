"""The lockout bounds what wrong RDP passwords cost the server
(docs/security.md, "RDP: the codec warm-up is bounded by the lockout").

With NLA the monitor hands the child the user's NTLM key (MP_RDP_NTLM)
before the password is proven, and the child starts FreeRDP's codec
warm-up then (about 0.3 s of CPU, on a thread, while NLA ends). So each
wrong password for a real user costs that CPU; what bounds it is the
lockout: after max_failures the monitor refuses at MP_RDP_NTLM, hands no
key, and the child ends inside NLA without the warm-up. Asserted: the
client refused at once each time, the report rows (authentication
failed, then locked out), the monitor's log line saying the login was
refused before any key, and the CPU the session children used (the
spawner's reaped children's time, /proc/PID/stat cutime + cstime): the
warm-up shows before the lockout, and not after.
"""
import os
import shutil
import time

import pytest

from pclib import Portcullis, free_port, wait_listen
from test_rdp import TOOLS, rdp_asset, refused, rdp_user

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="RDP test tools missing (scripts/install-deps)")

MAX_FAILURES = 3
TICK = os.sysconf("SC_CLK_TCK")


@pytest.fixture
def locking_proxy(tmp_path):
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    p.set_config("auth", "max_failures", str(MAX_FAILURES))
    p.set_config("auth", "failure_window_seconds", "300")
    p.set_config("auth", "lockout_seconds", "300")
    p.rdp_port = free_port()
    p.set_config("rdp", "enabled", "true")
    p.set_config("rdp", "port", str(p.rdp_port))
    p.start()
    assert wait_listen(p.rdp_port, 15, p.proc), p.log_tail()
    yield p
    p.stop()


def children_cpu(pc):
    """Seconds of CPU the server's reaped children used (each process's
    cutime + cstime: the session children are reaped by the spawner)."""
    total = 0
    for pid in [pc.proc.pid] + pc.descendants():
        try:
            stat = open("/proc/%d/stat" % pid).read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / TICK


def settle(pc, nprocs):
    """Waits until the session children have ended (the server is back
    to nprocs processes), so their CPU is counted."""
    deadline = time.monotonic() + 20
    while len(pc.descendants()) > nprocs:
        assert time.monotonic() < deadline, pc.descendants()
        time.sleep(0.1)


def rows_of(pc, user):
    return [r for r in pc.sessions() if r.get("user") == user and
            r.get("result")]


def test_lockout_stops_the_ntlm_key_and_the_codec_warmup(locking_proxy):
    pc = locking_proxy
    asset = rdp_asset(pc, None, port=free_port())  # never reached
    user, pw = rdp_user(pc, asset)
    login = "%s#%s" % (user, asset)
    time.sleep(1.0)
    nprocs = len(pc.descendants())

    # wrong passwords up to the lockout: the key is handed each time (a
    # real user), the warm-up runs, NLA fails at once
    cpu0 = children_cpu(pc)
    for i in range(MAX_FAILURES):
        r, took = refused(pc, login, "wrong-%d" % i)
        assert r.rc != 0 and took < 10, (r, took)
    settle(pc, nprocs)
    cpu_keyed = children_cpu(pc) - cpu0
    deadline = time.monotonic() + 20
    while len(rows_of(pc, user)) < MAX_FAILURES:
        assert time.monotonic() < deadline, pc.sessions()
        time.sleep(0.2)
    # (the last one is charged when its key is handed, so its own row
    # already says locked out)
    results = [r["result"] for r in rows_of(pc, user)]
    assert results.count("denied: authentication failed") == \
        MAX_FAILURES - 1, results
    assert "locked out" in results[0], results

    # locked: even the right password is refused at once, before any key
    cpu1 = children_cpu(pc)
    for _ in range(MAX_FAILURES):
        r, took = refused(pc, login, pw)
        assert r.rc != 0 and took < 10, (r, took)
    settle(pc, nprocs)
    cpu_locked = children_cpu(pc) - cpu1
    deadline = time.monotonic() + 20
    while len(rows_of(pc, user)) < 2 * MAX_FAILURES:
        assert time.monotonic() < deadline, pc.sessions()
        time.sleep(0.2)
    locked_rows = rows_of(pc, user)[:MAX_FAILURES]  # newest first
    assert all("locked out" in r["result"] for r in locked_rows), locked_rows
    refusals = [ln for ln in pc.log_text().splitlines()
                if "RDP login %s from" % user in ln and
                "refused: locked out" in ln]
    # (xfreerdp tries more than once when refused inside NLA)
    assert len(refusals) >= MAX_FAILURES, pc.log_tail()
    # The warm-up (0.2-0.3 s a key) ran only while keys were handed: the
    # measure sees it before the lockout, and a locked connection costs a
    # TLS handshake and NLA's start (~0.01 s, 0.02 s under ASan; with a
    # key handed while locked it was 0.23 s).
    print("children's CPU: %.2f s keyed, %.2f s locked (%d connections)"
          % (cpu_keyed, cpu_locked, len(refusals)))
    assert cpu_keyed >= 0.1 * MAX_FAILURES, (cpu_keyed, cpu_locked)
    assert cpu_locked / len(refusals) < 0.08, (cpu_locked, len(refusals))
