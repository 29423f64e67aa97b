"""Shared fixtures and helpers for tests of portcullis-agent (issue 4).

  agent_bin()       the built portcullis-agent
  credential(pc)    `portcullis credential add` -> (id, secret)
  agents(pc)        `portcullis agent list --json` -> {id: row}
  wait_agent(pc, id, online=True, timeout=20)
                    waits until `agent list` shows the agent (not) online
  Agent             one portcullis-agent process with its own config file
                    (mode 0600) and log: start(), stop(), kill(), log_text()
  NetNS             a network namespace made by the test, joined to the
                    host by a veth pair: .ns, .host_ip, .ns_ip, .run(...),
                    .popen(...), .link_down(), .delete()
  NsTarget          pclib.Target's sshd, started inside a NetNS on the
                    namespace's loopback (nothing outside can reach it)

Fixtures (import them into a test module, or into conftest.py):

  agent_server      a started server of the test's own whose HTTP listener
                    (plain, /agent) is on 127.0.0.1
  make_agent        make(pc, id=None, netns=None, **flags) -> a started
                    Agent with a fresh credential (or credential=(id,
                    secret)); every agent made is stopped after the test
  netns             a NetNS, deleted after the test (needs root)
  ns_server         (pc, netns): a started server whose HTTP listener is
                    on the host's end of the veth (plain HTTP allowed
                    there), so an agent inside the namespace reaches it

Everything a fixture starts it stops, also when the test fails.
"""

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

import pclib
from pclib import Portcullis, Target, build_dir, parse_kv, stop_process, uniq


def agent_bin():
    return build_dir() / "agent" / "portcullis-agent"


def credential(pc, name=None):
    """A new agent credential: (id, secret)."""
    args = ["credential", "add"] + (["--name", name] if name else [])
    _, out, _ = pc.cli(*args)
    kv = parse_kv(out)
    assert "id" in kv and "secret" in kv, out
    return kv["id"], kv["secret"]


def agents(pc):
    """{agent id: row} from `agent list --json`."""
    _, out, _ = pc.cli("agent", "list", "--json")
    rows = json.loads(out)
    if isinstance(rows, dict):
        rows = rows.get("agents", [])
    return {r["id"]: r for r in rows}


def is_online(row):
    if row is None:
        return False
    for k in ("online", "state"):
        if k in row:
            v = row[k]
            return v is True or v == "online"
    return False


def wait_agent(pc, agent_id, online=True, timeout=20.0):
    """Waits until `agent list` shows agent_id online (or, with
    online=False, not online); returns its row (None if never listed).
    Fails the test on timeout."""
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        row = agents(pc).get(agent_id)
        if is_online(row) == online:
            return row
        time.sleep(0.2)
    pytest.fail("agent %s not %s within %ss; row: %r"
                % (agent_id, "online" if online else "offline", timeout, row))


def wait_log(agent, text, timeout=20.0):
    """Waits until the agent's log contains text; returns the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = agent.log_text()
        if text in log:
            return log
        time.sleep(0.1)
    pytest.fail("agent log has no %r within %ss; log:\n%s"
                % (text, timeout, agent.log_text()[-3000:]))


class Agent:
    """One portcullis-agent with its config in <dir>/agent.conf (0600:
    it holds the secret) and its log in <dir>/agent.log."""

    def __init__(self, workdir, server, fingerprint, cred, agent_id,
                 netns=None, extra_conf=(), extra_args=()):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.id = agent_id
        self.cred = cred
        self.netns = netns
        self.conf = self.dir / "agent.conf"
        lines = ["server = %s" % server,
                 "fingerprint = %s" % fingerprint,
                 "credential = %s:%s" % cred,
                 "id = %s" % agent_id]
        lines += list(extra_conf)
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.args = list(extra_args)
        self.log_path = self.dir / "agent.log"
        self.proc = None

    def command(self):
        cmd = [str(agent_bin()), "-c", str(self.conf)] + \
            [str(a) for a in self.args]
        if self.netns is not None:
            cmd = ["ip", "netns", "exec", self.netns.ns] + cmd
        return cmd

    def start(self):
        assert self.proc is None
        if not agent_bin().exists():
            pytest.fail("%s does not exist: build first" % agent_bin())
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, start_new_session=True)
        finally:
            log.close()
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            rc = stop_process(self.proc, 10)
            self.proc = None
            return rc
        return None

    def kill(self):
        """SIGKILL, as a crash or an OOM kill would."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


# ------------------------------------------------------------- namespaces

def _ip(*args, check=True):
    r = pclib.run(["ip"] + [str(a) for a in args])
    if check and r.rc != 0:
        pytest.fail("ip %s failed: %r" % (" ".join(map(str, args)), r))
    return r


class NetNS:
    """A network namespace of the test's own with a veth pair to the host:
    host_ip/30 on the host's end, ns_ip/30 inside, and the namespace's own
    loopback up. The namespace has no default route: from inside only the
    host's end of the veth is reachable."""

    def __init__(self):
        if os.geteuid() != 0:
            pytest.skip("needs root: creates a network namespace")
        tag = "%06x" % random.randrange(1 << 24)
        self.ns = "pcag-" + tag
        self.veth_host = "pcvh" + tag
        self.veth_ns = "pcvn" + tag
        octet = random.randrange(1, 250)
        quad = random.randrange(0, 64) * 4
        self.host_ip = "10.213.%d.%d" % (octet, quad + 1)
        self.ns_ip = "10.213.%d.%d" % (octet, quad + 2)
        _ip("netns", "add", self.ns)
        try:
            _ip("link", "add", self.veth_host, "type", "veth", "peer",
                "name", self.veth_ns)
            _ip("link", "set", self.veth_ns, "netns", self.ns)
            _ip("addr", "add", self.host_ip + "/30", "dev", self.veth_host)
            _ip("link", "set", self.veth_host, "up")
            self.run("ip", "addr", "add", self.ns_ip + "/30", "dev",
                     self.veth_ns)
            self.run("ip", "link", "set", self.veth_ns, "up")
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise

    def run(self, *args, check=True, timeout=30):
        r = pclib.run(["ip", "netns", "exec", self.ns] + [str(a) for a in
                                                          args],
                      timeout=timeout)
        if check and r.rc != 0:
            pytest.fail("in %s: %s failed: %r" % (self.ns, " ".join(
                map(str, args)), r))
        return r

    def link_down(self):
        """Cuts the namespace off: its end of the veth goes down."""
        self.run("ip", "link", "set", self.veth_ns, "down")

    def delete(self):
        _ip("link", "del", self.veth_host, check=False)
        _ip("netns", "del", self.ns, check=False)


class NsTarget(Target):
    """The e2e suite's target sshd, run inside a NetNS: it listens on the
    namespace's 127.0.0.1, which nothing outside the namespace reaches."""

    def __init__(self, workdir, netns, password_user, password):
        super().__init__(workdir, password_user, password)
        self.netns = netns

    def _listening(self):
        """Whether sshd listens, read from its own /proc/PID/net/tcp (the
        namespace's table, not the host's)."""
        want = ":%04X" % self.port
        try:
            with open("/proc/%d/net/tcp" % self.proc.pid) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[1].endswith(want) and fields[3] == "0A":
                        return True
        except (FileNotFoundError, ProcessLookupError):
            pass
        return False

    def start(self):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        r = pclib.run(["/usr/sbin/sshd", "-t", "-f", self.config])
        if r.rc != 0:
            pytest.fail("sshd rejects its config: %r" % r)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns.ns, "/usr/sbin/sshd",
                 "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self._listening():
                return self
            time.sleep(0.05)
        self.stop()
        pytest.fail("target sshd did not start in %s; log:\n%s"
                    % (self.netns.ns, self.log_path.read_text(
                        errors="replace")))


# --------------------------------------------------------------- fixtures

@pytest.fixture
def agent_server(tmp_path):
    """A started server of this test's own (agents connect to its HTTP
    listener on 127.0.0.1: ws://127.0.0.1:<http_port>)."""
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    p.start()
    p.wait_http()
    yield p
    p.stop()
    found = p.sanitizer_findings(new_only=False)
    if found:
        pytest.fail("sanitizer report in %s:\n%s" % (p.log_path, found),
                    pytrace=False)


@pytest.fixture
def netns():
    n = NetNS()
    yield n
    n.delete()


@pytest.fixture
def ns_server(tmp_path, netns):
    """(pc, netns): a server whose HTTP listener is on the host's end of
    the veth, for an agent inside netns (ws://<netns.host_ip>:<port>).
    Plain HTTP off loopback must be allowed explicitly; the address is
    reachable only from the test's namespace."""
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    p.set_config("http", "listen", netns.host_ip)
    p.set_config("http", "allow_plain_http", "true")
    p.start()
    if not pclib.wait_port(p.http_port, 15, p.proc, host=netns.host_ip):
        pytest.fail("HTTP listener not up on %s:%d; log:\n%s"
                    % (netns.host_ip, p.http_port, p.log_tail()))
    yield p, netns
    p.stop()


@pytest.fixture
def make_agent(tmp_path):
    """make(pc, agent_id=None, netns=None, server=None, fingerprint=None,
    credential=None, conf=(), args=(), start=True) -> Agent.

    A fresh credential unless credential=(id, secret) is given; server
    defaults to ws://127.0.0.1:<pc.http_port> (ws://<netns.host_ip>:...
    with netns), fingerprint to the server's own. Every agent made is
    stopped after the test."""
    made = []

    def make(pc, agent_id=None, netns=None, server=None, fingerprint=None,
             credential_=None, conf=(), args=(), start=True, **kw):
        cred = kw.pop("credential", credential_)
        assert not kw, kw
        if cred is None:
            cred = credential(pc)
        agent_id = agent_id or uniq("ag")
        if server is None:
            host = netns.host_ip if netns is not None else "127.0.0.1"
            server = "ws://%s:%d" % (host, pc.http_port)
        a = Agent(tmp_path / ("agent%d" % len(made)), server,
                  fingerprint or pc.fingerprint, cred, agent_id,
                  netns=netns, extra_conf=conf, extra_args=args)
        made.append(a)
        if start:
            a.start()
        return a

    yield make
    for a in made:
        a.stop()
