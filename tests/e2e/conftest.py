"""Fixtures of the Portcullis end-to-end tests (see README.md here).

  free_port   a function returning an unused loopback TCP port
  pc          a fresh `portcullis init` data directory (function scope),
              not started: pc.cli(...), pc.start(), pc.stop(), helpers
  proxy       the same, started, shared by the tests of one module
  pctarget    the local account the target's password logins use
  target      an OpenSSH sshd on a loopback port (module scope)
  ssh_client  OpenSSH ssh/scp/sftp pointed at `proxy` (module scope)
  server_factory  make(**auth): started servers of one test's own, with
              [auth] settings of its own (lockout, failure delay)

Whatever a fixture starts it stops, also when the test fails. A server
whose log shows a sanitizer report fails the test that was running.
"""

import fcntl
import os
import pwd
import subprocess
import time

import pytest

import pclib
from pclib import Client, Portcullis, Target

PCTARGET_USER = "pctarget"
PCTARGET_PASSWORD = "Pc-target-pw-4711"

if not os.access(pclib.ASKPASS, os.X_OK):
    os.chmod(pclib.ASKPASS, 0o755)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "timing: waits mostly for a clock (idle timeouts, "
        "keepalive deadlines); ./dev test runs it on the normal build only")
    config.addinivalue_line(
        "markers", "core: the e2e core (login, policy, relay, report, "
        "agents, tunnels, API) that ./dev test runs once more with the "
        "store on PostgreSQL (PORTCULLIS_TEST_STORE=pg)")
    config.addinivalue_line(
        "markers", "matrix: one algorithm of the client matrix (libssh's "
        "negotiation, not our code paths); ./dev test runs it on the normal "
        "build only")
    config.addinivalue_line(
        "markers", "solo: measures latency under a load it makes itself; "
        "./dev test runs it after the other tests, one at a time, not beside "
        "another pytest-xdist worker")


# The longest files first, longest first (seconds of all their tests in
# one run on the normal build): with `--dist loadfile` pytest-xdist hands
# the files to its workers in collection order (a worker gets the next
# file when it has two tests left), and collected alphabetically a long
# file such as test_tunnel.py or test_web.py came last and kept one worker
# busy while the others had nothing left. Started first, the short files
# fill the end. Every other file follows in its usual order; a file's
# tests keep theirs. The seconds are one run's with four workers on the
# shared box under others' load (2026-12-05: the stage took 1314 s
# instead of about 715 s, so about twice the usual), from its --junitxml;
# test_rdp_codec_ids.py (265 s) and test_store_pg_http.py (157 s) were
# not in the list yet and were the last files of two workers, which ended
# 100 s after the first. Simulated over that run's per-file times
# (xdist's loadfile handing files out as workers come free): the list
# before, workers ending at 1156-1246 s with four workers and 913-1042 s
# with five; this order, 1199-1210 s and 952-974 s. Put a new file that
# takes 40 s or more (see the slowest-files table at the end of a run)
# where its seconds rank it.
LONG_FILES_FIRST = [
    "test_store_pg.py",            # 289 s
    "test_rdp_codec_ids.py",       # 265 s
    "test_ansible.py",             # 264 s
    "test_cluster.py",             # 248 s
    "test_clients.py",             # 221 s
    "test_rdp_devices.py",         # 207 s
    "test_web.py",                 # 186 s
    "test_tunnel.py",              # 164 s (a timing test: 91 s, now 80)
    "test_store_pg_http.py",       # 157 s
    "test_agent_protocol.py",      # 133 s
    "test_jobs.py",                # 128 s
    "test_refusals.py",            # 124 s (a timing test: 83 s, now 72)
    "test_store_pg_outage.py",     # 123 s
    "test_readme_walkthrough.py",  # 120 s (waits for fresh TOTP codes)
    "test_agent.py",               # 110 s
    "test_rdp_end.py",             # 102 s
    "test_rdp_gfx.py",             # 100 s
    "test_rdp.py",                 # 96 s
    "test_lockout.py",             # 87 s
    "test_rdp_tls.py",             # 86 s
    "test_rdp_record.py",          # 76 s
    "test_peer_route.py",          # 68 s
    "test_directory.py",           # 67 s
    "test_rdp_clipboard.py",       # 66 s
    "test_rdp_xrdp.py",            # 65 s
    "test_store_pg_close.py",      # 65 s
    "test_hub_offloop.py",         # 59 s (PostgreSQL frozen, tables locked)
    "test_rdp_resize.py",          # 54 s
    "test_store_pg_offloop2.py",   # 52 s (PostgreSQL frozen)
    "test_drain_hostile.py",       # 51 s
    "test_rdp_clip_files.py",      # 50 s
    "test_shutdown.py",            # 50 s
    "test_rdp_profile.py",         # 49 s
    "test_http_proxy.py",          # 48 s
    "test_recording.py",           # 48 s
    "test_login_forms.py",         # 46 s
    "test_tunnel_drain.py",        # 46 s
    "test_relay_more.py",          # 46 s
    "test_preauth.py",             # 44 s
    "test_job_stream_cluster.py",  # 44 s
    "test_pairing.py",             # 43 s
    "test_rdp_caps.py",            # ~40 s (estimate: four RDP sessions)
]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONG_FILES_FIRST)}

    def key(item):
        name = os.path.basename(item.nodeid.split("::", 1)[0])
        return rank.get(name, len(rank))

    items.sort(key=key)  # stable: the rest, and each file's tests, in order


# Seconds per test file (setup, call and teardown of its tests), summed
# where the reports arrive (the pytest-xdist controller): the files that
# make the e2e stage long, shown at its end. Also when each worker sent its
# last report: a worker that ends long before the others is an idle core.
_FILE_SECONDS = {}
_WORKER_LAST = {}
_T0 = time.monotonic()


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration
    node = getattr(report, "node", None)
    gateway = getattr(node, "gateway", None)
    if gateway is not None:
        _WORKER_LAST[gateway.id] = (time.monotonic() - _T0, path)


def pytest_terminal_summary(terminalreporter):
    if not _FILE_SECONDS:
        return
    slow = sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1])[:15]
    terminalreporter.write_sep("=", "slowest files (s, all their tests)")
    for path, secs in slow:
        terminalreporter.write_line("%8.1f  %s" % (secs, path))
    if _WORKER_LAST:
        terminalreporter.write_line(
            "workers' last reports (s after the start, last file): " +
            ", ".join("%s %.0f %s" % (w, t, os.path.basename(p)) for w, (t, p)
                      in sorted(_WORKER_LAST.items())))


def _check_sanitizers(server, new_only):
    found = server.sanitizer_findings(new_only=new_only)
    if found:
        pytest.fail("sanitizer report in %s:\n%s" % (server.log_path, found),
                    pytrace=False)


@pytest.fixture
def free_port():
    """Call it for a loopback TCP port nobody listens on."""
    return pclib.free_port


@pytest.fixture
def pc(tmp_path):
    """A fresh `portcullis init --dir <tmp> --ssh-port P --http-port Q`,
    tuned for tests (no lockout, no failure delay), not started."""
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    yield p
    p.stop()
    _check_sanitizers(p, new_only=False)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """A started server shared by one module's tests (each test makes its
    own users, assets and profiles with unique names)."""
    p = Portcullis(tmp_path_factory.mktemp("proxy"))
    p.tune_for_tests()
    p.start()
    yield p
    p.stop()
    _check_sanitizers(p, new_only=False)


@pytest.fixture
def server_factory(tmp_path):
    """A function make(**auth) that inits and starts a server of this
    test's own, tuned for tests and then with each [auth] key given set
    (e.g. make(max_failures=3, lockout_seconds=60)); every server made is
    stopped (and its log checked for sanitizer reports) after the test.
    For tests that change the throttle, which a shared `proxy` must not
    see."""
    made = []

    def make(**auth):
        p = Portcullis(tmp_path / ("pc%d" % len(made)))
        p.tune_for_tests()
        for key, value in auth.items():
            p.set_config("auth", key, str(value))
        made.append(p)
        return p.start()

    yield make
    for p in made:
        p.stop()
    for p in made:
        _check_sanitizers(p, new_only=False)


@pytest.fixture(autouse=True)
def _sanitizer_watch():
    """After each test: a sanitizer report in any running server's log
    fails this test (the report appeared while it ran)."""
    yield
    for s in pclib.live_servers():
        _check_sanitizers(s, new_only=True)


@pytest.fixture(scope="session")
def pctarget():
    """(user, password) of the local account `pctarget` that assets with a
    vaulted password log in as. Created once if missing (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates the account pctarget, runs sshd")
    # one test process at a time (xdist workers, other runs on the box)
    with open("/tmp/portcullis-pctarget.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(["id", "-u", PCTARGET_USER], capture_output=True,
                          timeout=10).returncode != 0:
            r = pclib.run(["useradd", "-m", "-s", "/bin/bash",
                           PCTARGET_USER])
            assert r.rc == 0, r
        r = pclib.run(["chpasswd"], input="%s:%s\n" % (PCTARGET_USER,
                                                        PCTARGET_PASSWORD))
        assert r.rc == 0, r
        # Its home must be its own (Ansible and scp write there): a home
        # left by an earlier account of that name, deleted and made again
        # with another uid, is not (useradd -m keeps a directory it finds).
        pw = pwd.getpwnam(PCTARGET_USER)
        os.makedirs(pw.pw_dir, mode=0o755, exist_ok=True)
        if os.stat(pw.pw_dir).st_uid != pw.pw_uid:
            r = pclib.run(["chown", "-R", "%d:%d" % (pw.pw_uid, pw.pw_gid),
                           pw.pw_dir])
            assert r.rc == 0, r
    return PCTARGET_USER, PCTARGET_PASSWORD


@pytest.fixture(scope="module")
def target(tmp_path_factory, pctarget):
    """A real OpenSSH sshd on 127.0.0.1:<free port>: .host, .port,
    .fingerprint (SHA256:... of its host key), .key (private key root logs
    in with), .password_user/.password (pctarget), .files (a scratch
    directory on its filesystem), .log_path."""
    t = Target(tmp_path_factory.mktemp("target"), *pctarget)
    t.start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def ssh_client(proxy):
    """ssh/scp/sftp against the module's `proxy`."""
    return Client(proxy.ssh_port)
