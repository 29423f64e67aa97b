"""Helpers shared by the Portcullis end-to-end tests.

conftest.py builds its fixtures from these classes; tests import the plain
functions (totp_code, uniq, sha256_file, ...) directly:

    from pclib import totp_code, uniq

Everything here drives real programs: the `portcullis` binary of the build
under test ($PORTCULLIS_BUILD, default build/), OpenSSH's ssh/scp/sftp
clients and an OpenSSH sshd as the target. Every process started here is
stopped by the fixture that started it, and every wait has a deadline so a
hang fails one test instead of blocking the run.
"""

import base64
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ASKPASS = HERE / "askpass.sh"

UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
FP_RE = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")

# What a sanitizer prints when it finds something.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:",
                     "LeakSanitizer")

# Default deadline for one client command (ssh, scp, sftp, the CLI).
CMD_TIMEOUT = 60

# The slowest answer of the server's loop (a page, /healthz, an echo
# through an open session) that the "the loop is not held" tests accept
# while the store waits (a lock, a frozen database): a held loop is the
# statement deadline (3 s) or the lock's length (4-5 s). A sanitizer build
# on a busy box answered in up to 0.3 s, and on a box half as fast (CI on
# a loaded machine, the e2e stage twice its usual time) 0.5 and 0.75 s
# limits failed with no loop held; 1 s is still a third of any hold.
LOOP_LIMIT = 1.0


# ------------------------------------------------------------ small helpers

def build_dir():
    """The build directory under test: $PORTCULLIS_BUILD (relative to the
    repository root unless absolute), default build/."""
    b = Path(os.environ.get("PORTCULLIS_BUILD", "build"))
    return b if b.is_absolute() else REPO / b


def static_agent():
    """The static agent of this build; a sanitizer build has none (its
    runtimes do not link -static), so its tests serve the normal build's
    (`./dev test` builds build/ first)."""
    own = build_dir() / "agent" / "portcullis-agent-static"
    if own.exists():
        return own
    if build_dir() == REPO / "build":
        pytest.fail("%s was not built (meson option agent_static)" % own)
    normal = REPO / "build" / "agent" / "portcullis-agent-static"
    if normal.exists():
        return normal
    pytest.skip("no portcullis-agent-static in %s or build/ (build/ "
                "first: ./dev build)" % build_dir())


def serve_static_agent(p):
    """Points [pairing] agent_binary at static_agent() unless the server
    finds its own beside it."""
    exe = static_agent()
    if exe.parent.parent != build_dir():
        p.set_config("pairing", "agent_binary", str(exe))


def portcullis_bin():
    return build_dir() / "portcullis"


_ports_given = set()


def _worker():
    """(index, count) of this pytest-xdist worker, (0, 1) without xdist.
    Test files run side by side in workers (./dev test), so the ports each
    hands out must never be the other's."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if name.startswith("gw") and name[2:].isdigit() and count > 1:
        return int(name[2:]) % count, count
    return 0, 1


_xvfb_runs = 0


def xvfb_run(size="1280x1024"):
    """xvfb-run's argv start for a client under its own X server of `size`
    (the command follows). `-noreset` is the fix for xfreerdp's "failed to
    open display: :436" (three times in CI, never here): an X server
    resets when its last client leaves, and a client that connects during
    the reset is refused. The drivers poll with `xdotool search` while
    xfreerdp starts, so each poll's disconnect could be the last one just
    as xfreerdp connected; start_xvfb() in test_rdp.py had met the same
    with one xfreerdp after another. `-a` alone races: two workers (or a
    worker and an `Xvfb -displayfd`, which takes the lowest free display)
    can both find :99 free, so each worker searches from its own display
    numbers, and each call from the next of its worker's 50 (xvfb-run
    kills its Xvfb without waiting for it)."""
    global _xvfb_runs
    index, _ = _worker()
    _xvfb_runs += 1
    return ["xvfb-run", "-a", "-n",
            str(200 + 100 * index + 2 * (_xvfb_runs % 25)),
            "-s", "-screen 0 %sx24 -noreset" % size]


def free_port():
    """A loopback TCP port nobody listens on right now (and that this test
    run has not handed out before). Without xdist the kernel picks one
    (bind(0) hands out even ports; outgoing connections take odd ones, so
    the two do not meet). Under pytest-xdist each worker draws at random
    from its own slice of 10000-19999, below Linux's ephemeral range
    (32768-60999, where a client's outgoing connection could take the
    port before the server listens) and the tunnel ranges (20000-32700),
    so two workers never hand out the same port.
    """
    index, count = _worker()
    lo = 10000 + index * (10000 // count)
    hi = lo + 10000 // count
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if count == 1:
                s.bind(("127.0.0.1", 0))
            else:
                try:
                    s.bind(("127.0.0.1", random.randrange(lo, hi)))
                except OSError:
                    continue
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no free loopback port found")


def port_block(n, lo=21000, hi=32700):
    """The first of n consecutive loopback ports, free for TCP and UDP
    right now, inside [lo, hi): below Linux's ephemeral ports (which
    outgoing connections take) and above the default tunnel range
    20000-20999. Each xdist worker draws from its own slice of the span."""
    index, count = _worker()
    span = (hi - lo) // count
    lo, hi = lo + index * span, lo + (index + 1) * span
    for _ in range(200):
        base = random.randrange(lo, hi - n)
        ok = True
        for p in range(base, base + n):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    try:
                        s.bind(("127.0.0.1", p))
                    except OSError:
                        ok = False
            if not ok:
                break
        if ok:
            return base
    raise RuntimeError("no free range of %d loopback ports" % n)


_counter = itertools.count(1)


def uniq(prefix="t"):
    """A short name unique within this test run: letters and digits only,
    so it is valid as a user, group, profile or asset name."""
    return "%s%s%d" % (prefix, uuid.uuid4().hex[:5], next(_counter))


def wait_for(cond, timeout=15.0, what="condition", step=0.1):
    """cond()'s first true value, polled every step seconds; fails the
    test naming what after timeout seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    pytest.fail("timed out waiting for %s" % what)


def http_json(port, method, path, token=None, body=None, host="127.0.0.1"):
    """One HTTP request to the API on port: (status, the JSON answer or
    {}); body a str or bytes sent as JSON."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=30)
    hdrs = {"Content-Type": "application/json"}
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


def left_behind(d):
    """The names in directory d (none when it is not there)."""
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def wait_port(port, timeout=15.0, proc=None, host="127.0.0.1"):
    """Waits until host:port accepts a TCP connection. Fails early if proc
    (a Popen) exits first. Returns True, or False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _holds_socket(pids, inode):
    """Whether one of pids has the socket of inode open (True when their
    descriptors cannot be read: not root)."""
    want = "socket:[%s]" % inode
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except PermissionError:
            return True
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == want:
                    return True
            except OSError:
                continue
    return False


def wait_listen(port, timeout=15.0, proc=None, own_netns=False,
                owned=False):
    """Waits until something listens on port, without connecting to it
    (reads /proc/net/tcp; with own_netns, proc's own namespace's table).
    With owned, only a socket of proc or a process below it counts (a
    server started again after a crash: its old spawner's socket may
    still be there for a moment, about to close). Fails early if proc
    exits first."""
    want = ":%04X" % port
    deadline = time.monotonic() + timeout
    table = "/proc/%d/net/tcp" % proc.pid if own_netns else "/proc/net/tcp"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1].endswith(want) and fields[3] == "0A":
                    if not owned or proc is None or _holds_socket(
                            [proc.pid] + descendants(proc.pid), fields[9]):
                        return True
        time.sleep(0.05)
    return False


def echo_roundtrip(port, size=64 * 1024):
    """Sends size random bytes to 127.0.0.1:port and checks that the same
    come back (an EchoServer behind a forward)."""
    payload = os.urandom(size)
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    assert got == payload, bytes_diff(got, payload)


def bytes_diff(got, want):
    """"" if equal, else where and how two byte strings differ."""
    if got == want:
        return ""
    n = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
             min(len(got), len(want)))
    return "got %d bytes, expected %d; first difference at offset %d" % (
        len(got), len(want), n)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_file(path, size):
    """Writes size random bytes to path; returns its SHA-256 (hex)."""
    h = hashlib.sha256()
    left = size
    with open(path, "wb") as f:
        while left > 0:
            chunk = os.urandom(min(left, 1 << 20))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def keygen(path, comment="e2e"):
    """An ed25519 key pair without passphrase at path and path.pub."""
    path = Path(path)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                    comment, "-f", str(path)], check=True,
                   stdin=subprocess.DEVNULL, timeout=30)
    return path


def key_fingerprint(pub_path):
    """The SHA256:... fingerprint of a public key file, as OpenSSH prints
    it (ssh-keygen -lf)."""
    out = subprocess.run(["ssh-keygen", "-lf", str(pub_path)], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return out.split()[1]


def children_of(pid):
    """PIDs of the direct children of pid (pgrep -P)."""
    r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                       text=True, timeout=10)
    return sorted(int(x) for x in r.stdout.split())


def proc_stat(pid):
    """/proc/PID/stat after the command name (which may hold spaces and
    ')'): state, ppid, pgrp, session, tty_nr, ...; OSError if gone."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    return st[st.rindex(")") + 2:].split()


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat."""
    x = proc_stat(pid)
    return (int(x[11]) + int(x[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid):
    """PIDs of every process below pid (children, grandchildren, ...)."""
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            parent[int(d)] = int(proc_stat(int(d))[1])
        except OSError:
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return sorted(out)


def _tcp_table():
    """(local port, remote port, state, inode) of every TCP socket."""
    rows = []
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            x = line.split()
            rows.append((int(x[1].rsplit(":", 1)[1], 16),
                         int(x[2].rsplit(":", 1)[1], 16), x[3], x[9]))
    return rows


def socket_inodes(pid):
    """Inodes (strings) of the sockets process pid has open."""
    out = set()
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def client_port_of(pid, server_port):
    """The local port of process pid's TCP connection to server_port."""
    inodes = socket_inodes(pid)
    for lport, rport, _, inode in _tcp_table():
        if inode in inodes and rport == server_port:
            return lport
    return None


def serving_process(candidates, server_port, client_port, timeout=5.0):
    """The one process among candidates (a callable returning PIDs) that
    holds the server side of the connection from client_port: the session
    child serving that client. Fails unless exactly one does."""
    deadline = time.monotonic() + timeout
    holders = []
    while True:
        table = _tcp_table()
        inodes = {inode for lport, rport, _, inode in table
                  if lport == server_port and rport == client_port}
        # the spawner holds the connection too, from accept() until it
        # has forked the child: never it (it holds the listener)
        listeners = {inode for lport, _, state, inode in table
                     if lport == server_port and state == "0A"}
        holders = [p for p in candidates()
                   if socket_inodes(p) & inodes and
                   not socket_inodes(p) & listeners]
        if len(holders) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(holders) == 1, (
        "processes holding the connection from port %d: %s (of %s)"
        % (client_port, holders, candidates()))
    return holders[0]


def proc_status(pid):
    """/proc/PID/status as a dict of field -> value (strings)."""
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def parse_kv(text):
    """key=value lines into a dict (the value keeps any further '=')."""
    out = {}
    for line in text.splitlines():
        if "=" in line:
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


# ------------------------------------------------------------------- TOTP

def _b32decode(secret):
    s = secret.strip().replace(" ", "").upper()
    return base64.b32decode(s + "=" * (-len(s) % 8))


def totp_code(secret_b32, t=None, step=30, digits=6):
    """RFC 6238 TOTP (HMAC-SHA-1, 30 s steps, 6 digits) for time t."""
    if t is None:
        t = time.time()
    counter = int(t // step)
    mac = hmac.new(_b32decode(secret_b32), struct.pack(">Q", counter),
                   hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return "%0*d" % (digits, value % 10 ** digits)


def totp_wrong_code(secret_b32):
    """A 6-digit code that is wrong for every step a server may accept
    now (the current one and two either side)."""
    now = time.time()
    valid = {totp_code(secret_b32, now + d * 30) for d in range(-2, 3)}
    for n in itertools.count(123456, 7919):
        code = "%06d" % (n % 1000000)
        if code not in valid:
            return code
    raise AssertionError("unreachable")


def fresh_totp_code(secret_b32, min_left=3.0):
    """The current code, waiting for the next step first if fewer than
    min_left seconds of this one remain (so the server sees the same
    step, which matters when a test replays it)."""
    left = 30 - (time.time() % 30)
    if left < min_left:
        time.sleep(left + 0.2)
    return totp_code(secret_b32)


# -------------------------------------------------------- running commands

class Result:
    """What a finished client command left: rc, stdout, stderr (text)."""

    def __init__(self, args, rc, out, err):
        self.args = args
        self.rc = rc
        self.out = out
        self.err = err

    def __iter__(self):
        return iter((self.rc, self.out, self.err))

    def __repr__(self):
        return "<%s rc=%s\n--- stdout ---\n%s\n--- stderr ---\n%s>" % (
            " ".join(str(a) for a in self.args), self.rc, self.out[-3000:],
            self.err[-3000:])

    def portcullis_lines(self):
        """The `portcullis: ...` lines the proxy wrote to stderr."""
        return [l for l in self.err.splitlines()
                if l.startswith("portcullis: ")]


def run(args, input=None, timeout=CMD_TIMEOUT, env=None, stdin=None,
        stdout=None, cwd=None):
    """Runs args to completion with a deadline; a timeout fails the test.
    input (str or bytes) is fed on stdin; stdout may be redirected to a
    file object (then Result.out is "")."""
    if isinstance(input, str):
        input = input.encode()
    if input is None and stdin is None:
        stdin = subprocess.DEVNULL
    try:
        p = subprocess.run([str(a) for a in args], input=input, stdin=stdin,
                           stdout=stdout if stdout is not None
                           else subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, cwd=cwd,
                           timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired as e:
        # what each server of this test process logged last: a client
        # that hangs is mostly waiting for one of them
        logs = ""
        for srv in list(_live_servers):
            try:
                logs += "\n--- the last lines of %s:\n%s" % (
                    srv.log_path, srv.log_tail(25))
            except OSError:
                pass
        pytest.fail("timed out after %ss: %s\nstderr so far:\n%s%s" % (
            timeout, " ".join(str(a) for a in args),
            (e.stderr or b"").decode(errors="replace")[-2000:], logs))
    out = p.stdout.decode(errors="replace") if p.stdout is not None else ""
    return Result(args, p.returncode, out,
                  p.stderr.decode(errors="replace"))


def stop_process(proc, timeout=15.0, sig=signal.SIGTERM):
    """Sends sig, waits; kills the whole process group if still alive.
    Returns the exit status."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return proc.wait(timeout=timeout)


# ------------------------------------------------------------- portcullis

_live_servers = []
_shared_host_keys = None


def shared_host_keys():
    """A directory with one set of OpenSSH host keys (ssh_host_ed25519_key,
    ssh_host_ecdsa_key, ssh_host_rsa_key) made once per test run, which
    servers adopt with `init --host-keys`: an RSA 3072 key costs 0.3-1.5 s
    to make, and hundreds of servers are made. Tests of `init`'s own key
    making pass fresh_keys=True."""
    global _shared_host_keys
    if _shared_host_keys is None:
        import atexit
        import shutil
        import tempfile
        d = Path(tempfile.mkdtemp(prefix="pc-hostkeys-"))
        atexit.register(shutil.rmtree, d, True)
        for t, bits in (("ed25519", None), ("ecdsa", "256"),
                        ("rsa", "3072")):
            args = ["ssh-keygen", "-q", "-t", t, "-N", "", "-C",
                    "e2e-shared-host-key", "-f",
                    str(d / ("ssh_host_%s_key" % t))]
            if bits:
                args[4:4] = ["-b", bits]
            subprocess.run(args, check=True, stdin=subprocess.DEVNULL,
                           timeout=60)
        _shared_host_keys = d
    return _shared_host_keys


_init_templates = {}

# The files of a data directory that `init` fills with fresh random bytes
# and that nothing in a new store depends on yet (no vaulted secret, no
# token, no audit entry): each copy of the template gets its own.
_INIT_RANDOM_KEYS = ("vault.key", "api_jwt.key", "audit.key")

# The tests that have had their copy of the template: a test's second
# Portcullis runs `init` (two servers of one test may be compared: another
# TLS certificate, another admin).
_init_copied_for = set()


def _init_copy_allowed():
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    if test in _init_copied_for:
        return False
    _init_copied_for.add(test)
    return True


def init_template(host_keys):
    """(directory, init's output) of one `portcullis init` on SQLite
    adopting host_keys, made once per pytest process (per build and key
    set) and removed at exit. Each init hashed the admin's password at the default
    argon2id cost (64 MiB) and created the schema: 0.2-0.25 CPU seconds,
    the dearest CLI command of the suite (a quarter of the CLI's CPU in
    one sample); a copy costs a few milliseconds."""
    bin_ = portcullis_bin()
    t = _init_templates.get((bin_, host_keys))
    if t is None:
        import atexit
        d = Path(tempfile.mkdtemp(prefix="pc-init-template-")) / "data"
        r = run([bin_, "init", "--dir", d, "--ssh-port", free_port(),
                 "--http-port", free_port(), "--host-keys", host_keys])
        if r.rc != 0:
            pytest.fail("portcullis init failed: %r" % r)
        names = sorted(p.name for p in d.iterdir())
        if any((d / n).is_dir() for n in names):
            pytest.fail("init made a directory in %s; copy_init_template "
                        "copies files only" % d)
        t = (d, r.out)
        _init_templates[(bin_, host_keys)] = t
        atexit.register(shutil.rmtree, str(d.parent), True)
    return t


_made_once = {}
_made_once_dir = None


def _made_once_files(key, names, make):
    """The paths of files `names` that make(dir) writes into a directory
    of its own, made once per pytest process per key (a tuple of
    everything the files depend on) and removed at exit."""
    global _made_once_dir
    paths = _made_once.get(key)
    if paths is None:
        if _made_once_dir is None:
            import atexit
            _made_once_dir = Path(tempfile.mkdtemp(prefix="pc-made-once-"))
            atexit.register(shutil.rmtree, str(_made_once_dir), True)
        d = _made_once_dir / str(len(_made_once))
        d.mkdir()
        make(d)
        paths = [d / n for n in names]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            pytest.fail("not made: %s (for %r)" % (", ".join(missing), key))
        _made_once[key] = paths
    return paths


def self_signed_cert(cert, key, subject, newkey=("rsa:2048",), days=2):
    """A self-signed certificate and its unencrypted private key, as
    `openssl req -x509 -newkey NEWKEY... -nodes -subj SUBJECT -days DAYS`
    writes them, copied to the paths cert and key (PEM). Made once per
    pytest process per (subject, newkey, days): an RSA 2048 key costs
    0.2-0.9 CPU seconds, and the RDP test targets each made one at every
    start (about 19 CPU seconds an e2e stage). Each caller gets copies of
    its own (it may change them). Two targets of one process with the
    same subject share the key: a test that needs a certificate unlike
    another's passes a subject of its own."""
    def make(d):
        r = run(["openssl", "req", "-x509", "-newkey"] + list(newkey)
                + ["-nodes", "-subj", subject, "-days", str(days),
                   "-keyout", d / "key.pem", "-out", d / "cert.pem"])
        assert r.rc == 0, r
    c, k = _made_once_files(("cert", subject, tuple(newkey), days),
                            ("cert.pem", "key.pem"), make)
    shutil.copyfile(c, cert)
    shutil.copyfile(k, key)
    os.chmod(key, 0o600)
    return Path(cert), Path(key)


def magick_image(path, size, *spec):
    """ImageMagick's `convert -size SIZE SPEC... PATH` (e.g. a solid
    colour, "xc:rgb(1,2,3)"; noise, "xc:", "+noise", "Random"), made once
    per pytest process per (size, spec, file type) and copied to path.
    Random noise is then the same noise for each caller: what the tests
    need of it is that it does not compress."""
    path = Path(path)
    name = "image" + path.suffix

    def make(d):
        r = run(["convert", "-size", size] + list(spec) + [d / name])
        assert r.rc == 0, r
    (src,) = _made_once_files(("image", size, tuple(spec), path.suffix),
                              (name,), make)
    shutil.copyfile(src, path)
    return path


_shared_pg = None


def shared_pg():
    """The PostgreSQL server of this test run (pglib.PgServer), started on
    first use and stopped at exit: one per pytest session."""
    global _shared_pg
    if _shared_pg is None:
        import atexit
        import pglib
        _shared_pg = pglib.PgServer()
        atexit.register(_shared_pg.close)
    return _shared_pg


def store_on_pg():
    """True when PORTCULLIS_TEST_STORE=pg: every Portcullis keeps its store
    in a database of its own on shared_pg() (`init --store-url`)."""
    return os.environ.get("PORTCULLIS_TEST_STORE", "") == "pg"


class Portcullis:
    """One data directory made by `portcullis init`, and optionally its
    server (`serve`) running with the log in <dir>/server.log."""

    def __init__(self, workdir, ssh_port=None, http_port=None,
                 fresh_keys=False, store_url=None):
        """fresh_keys: let init make new host keys rather than adopt the
        run's shared set (shared_host_keys()). store_url: init on that
        PostgreSQL database; with PORTCULLIS_TEST_STORE=pg and none given,
        a new database on the run's shared PostgreSQL (shared_pg())."""
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ssh_port = ssh_port or free_port()
        self.http_port = http_port or free_port()
        self.bin = portcullis_bin()
        if not self.bin.exists():
            pytest.fail("%s does not exist: build first (./dev build)"
                        % self.bin)
        args = [self.bin, "init", "--dir", self.dir, "--ssh-port",
                self.ssh_port, "--http-port", self.http_port]
        host_keys = None
        if not fresh_keys:
            host_keys = shared_host_keys()
            args += ["--host-keys", host_keys]
        if store_url is None and store_on_pg():
            store_url = shared_pg().new_database()
        self.store_url = store_url or None
        if store_url:
            args += ["--store-url", store_url]
        if fresh_keys or store_url or any(self.dir.iterdir()) or \
                not _init_copy_allowed():
            r = run(args)
            if r.rc != 0:
                pytest.fail("portcullis init failed: %r" % r)
            out = r.out
        else:
            out = self._copy_init_template(host_keys)
        self.init_output = out
        self.info = parse_kv(out)
        for k in ("config", "admin_user", "admin_password", "fingerprint"):
            if k not in self.info:
                pytest.fail("portcullis init printed no %s=: %r" % (k, r))
        self.conf = Path(self.info["config"])
        if not self.conf.is_absolute():
            self.conf = (self.dir / self.conf).resolve()
        if self.store_url is not None and \
                "url = %s" % self.store_url not in self.conf.read_text():
            pytest.fail("init --store-url wrote no [store] url to %s"
                        % self.conf)
        self.admin_user = self.info["admin_user"]
        self.admin_password = self.info["admin_password"]
        self.fingerprint = self.info["fingerprint"]
        self.log_path = self.dir / "server.log"
        self.proc = None
        self._log_seen = 0

    def _copy_init_template(self, host_keys):
        """What `init` with the shared host keys on SQLite makes, copied
        from init_template() into self.dir: its files (modes kept), fresh
        random keys (_INIT_RANDOM_KEYS), this server's ports in the
        config; returns init's output as it would have printed it. The
        copies share the admin's password and hash, the IDs of the admin
        and the root site, and the TLS certificate (as they share the host
        keys), so only a test's first Portcullis is a copy: a second one
        of the same test (compared with the first) runs `init`. Tests of
        `init`'s own output run it themselves or use fresh_keys=True."""
        src, out = init_template(host_keys)
        for f in src.iterdir():
            shutil.copy2(f, self.dir / f.name)
        for name in _INIT_RANDOM_KEYS:
            with open(self.dir / name, "wb") as f:
                f.write(os.urandom(32))
        self.conf = self.dir / "portcullis.conf"
        self.set_config("ssh", "port", self.ssh_port)
        self.set_config("http", "port", self.http_port)
        return out.replace(str(src), str(self.dir.resolve()))

    # --- configuration

    def set_config(self, section, key, value):
        """Sets key = value in [section] of portcullis.conf (adding the key
        or the section as needed)."""
        lines = self.conf.read_text().splitlines()
        out, cur, done = [], None, False
        for line in lines:
            s = line.strip()
            if s.startswith("[") and s.endswith("]"):
                if cur == section and not done:
                    out.append("%s = %s" % (key, value))
                    done = True
                cur = s[1:-1].strip()
            elif cur == section and not done and "=" in s and \
                    not s.startswith(("#", ";")) and \
                    s.split("=", 1)[0].strip() == key:
                out.append("%s = %s" % (key, value))
                done = True
                continue
            out.append(line)
        if not done:
            if cur != section:
                out.append("")
                out.append("[%s]" % section)
            out.append("%s = %s" % (key, value))
        self.conf.write_text("\n".join(out) + "\n")

    def tune_for_tests(self):
        """The e2e suite logs in and fails on purpose many times from one
        address: no lockout and no failure delay, or later tests would be
        refused for the earlier ones' failures; and no per-source cap on
        connections before authentication."""
        self.set_config("auth", "max_failures", "100")
        self.set_config("auth", "failure_window_seconds", "1")
        self.set_config("auth", "lockout_seconds", "0")
        self.set_config("auth", "failure_delay_ms", "0")
        # Password hashes at OWASP's floor for argon2id (19 MiB, 2 passes)
        # instead of the default 64 MiB: about a third of the CPU for each
        # user made and each password login, which were the largest share
        # of the suite's CPU; the default cost is what test_password.c,
        # the README walkthrough and servers not tuned here use.
        self.set_config("auth", "password_memory_kib", "19456")
        # Many logins start at once from 127.0.0.1 (test_concurrency) and
        # 70 from other addresses (test_loop_latency): no per-source cap and
        # no random early drop below 256; test_preauth.py sets its own.
        self.set_config("ssh", "max_startups_per_source", "1000")
        self.set_config("ssh", "max_startups", "256")

    # --- the CLI

    def cli(self, *args, input=None, check=True, timeout=CMD_TIMEOUT):
        """Runs `portcullis -c CONF ARGS...`; returns (rc, stdout, stderr).
        With check, a non-zero exit fails the test."""
        r = run([self.bin, "-c", self.conf] + [str(a) for a in args],
                input=input, timeout=timeout)
        if check and r.rc != 0:
            pytest.fail("portcullis %s failed: %r" % (" ".join(
                str(a) for a in args), r))
        return r.rc, r.out, r.err

    def user_add(self, name=None, password=None, disabled=False):
        name = name or uniq("u")
        args = ["user", "add", name]
        if password is not None:
            args.append("--password-stdin")
        if disabled:
            args.append("--disabled")
        self.cli(*args, input=None if password is None else password + "\n")
        return name

    def totp_enable(self, user):
        """Enables TOTP; returns the base32 secret."""
        _, out, _ = self.cli("user", "totp", user, "--enable")
        kv = parse_kv(out)
        assert "secret" in kv, out
        return kv["secret"]

    def key_add(self, user, pub_path):
        self.cli("user", "key", "add", user, pub_path)

    def asset_add(self, name, host, port, login, password=None, key=None,
                  site=None, fingerprint=None):
        """Adds an asset; returns its ID (which `asset add` prints alone)."""
        args = ["asset", "add", name, "--host", host, "--port", port,
                "--login", login]
        if site:
            args += ["--site", site]
        if password is not None:
            args.append("--password-stdin")
        if key:
            args += ["--key", key]
        if fingerprint:
            args += ["--host-key-fingerprint", fingerprint]
        _, out, _ = self.cli(*args, input=None if password is None
                             else password + "\n")
        asset_id = out.strip()
        assert UUID_RE.match(asset_id), "asset add printed %r" % out
        return asset_id

    def target_asset(self, target, name=None, site=None, as_root=True,
                     pin=True):
        """An asset for the OpenSSH target: root with the target's client
        key (default) or pctarget with its password."""
        name = name or uniq("a")
        fp = target.fingerprint if pin else None
        if as_root:
            return self.asset_add(name, target.host, target.port, "root",
                                  key=target.key, site=site, fingerprint=fp)
        return self.asset_add(name, target.host, target.port,
                              target.password_user,
                              password=target.password, site=site,
                              fingerprint=fp)

    def grant(self, asset_id=None, user=None, group=None, site=None,
              role="viewer"):
        args = ["grant"]
        if asset_id:
            args.append(asset_id)
        if site:
            args += ["--site", site]
        if user:
            args += ["--user", user]
        if group:
            args += ["--group", group]
        args += ["--role", role]
        self.cli(*args)

    def profile_add(self, name=None, native="allow", flags=()):
        name = name or uniq("p")
        self.cli("profile", "add", name, "--native", native, *flags)
        return name

    def profile_assign(self, name, user=None, group=None):
        if user:
            self.cli("profile", "assign", name, "--user", user)
        if group:
            self.cli("profile", "assign", name, "--group", group)

    def allow(self, user, asset_id, flags=(), native="allow"):
        """Viewer on the asset plus an own profile (native allow, with
        flags such as --no-exec or --local-forward) for the user."""
        self.grant(asset_id, user=user)
        prof = self.profile_add(native=native, flags=flags)
        self.profile_assign(prof, user=user)
        return prof

    def write_known_hosts(self, path):
        """A known_hosts file at path holding this server's host keys (the
        ones init made or adopted) for [127.0.0.1]:ssh_port; returns path.
        A key file missing is left out (the test that needs it fails on
        its own)."""
        lines = []
        for name in ("ssh_host_ecdsa_key", "ssh_host_ed25519_key",
                     "ssh_host_rsa_key"):
            pub = self.dir / (name + ".pub")
            if pub.exists():
                alg, blob = pub.read_text().split()[:2]
                lines.append("[127.0.0.1]:%d %s %s" % (self.ssh_port, alg,
                                                        blob))
        path.write_text("\n".join(lines) + "\n")
        return path

    # --- the session report

    def store_sql(self, sql, *params):
        """Runs sql on this server's store behind its back, SQLite or
        PostgreSQL alike: "?" placeholders take params (text or None).
        Returns the rows, each a list of text (None for NULL on SQLite,
        "" on PostgreSQL)."""
        if self.store_url is None:
            import sqlite3
            # waits for the server's write lock like any other writer
            db = sqlite3.connect(str(self.dir / "portcullis.db"), timeout=10)
            try:
                rows = db.execute(sql, params).fetchall()
                db.commit()
            finally:
                db.close()
            return [[None if v is None else str(v) for v in row]
                    for row in rows]
        parts = sql.split("?")
        assert len(parts) == len(params) + 1, (sql, params)
        text = parts[0]
        for v, rest in zip(params, parts[1:]):
            text += ("NULL" if v is None else
                     "'%s'" % str(v).replace("'", "''")) + rest
        pg = shared_pg()
        out = pg.psql(pg.dbname_of(self.store_url), text)
        return [ln.split("|") for ln in out.splitlines() if ln.strip()]

    def store_text(self, sql, *params):
        """store_sql's rows as the sqlite3 and psql shells print them: one
        line per row, the values joined by "|" (NULL empty)."""
        return "".join("|".join("" if v is None else v for v in row) + "\n"
                       for row in self.store_sql(sql, *params))

    def store_dump(self):
        """Everything the store holds, as bytes, for "this secret is
        nowhere in the store" checks: the SQLite database file and its
        -wal/-journal files, or pg_dump of the PostgreSQL database."""
        if self.store_url is None:
            return b"".join(f.read_bytes() for f in
                            sorted(self.dir.glob("portcullis.db*")))
        pg = shared_pg()
        return pg.dump(pg.dbname_of(self.store_url)).encode()

    def sessions(self):
        _, out, _ = self.cli("session", "list", "--json")
        rows = json.loads(out)
        assert isinstance(rows, list), out
        return rows

    def wait_session(self, match, timeout=20.0, what="a matching row"):
        """Polls `session list --json` until a closed row (result set)
        satisfies match(row); returns it. Fails listing the rows seen."""
        deadline = time.monotonic() + timeout
        rows = []
        while True:
            rows = self.sessions()
            for row in rows:
                if row.get("result") and match(row):
                    return row
            if time.monotonic() > deadline:
                break
            time.sleep(0.25)
        pytest.fail("no session row with %s after %ss; rows:\n%s" % (
            what, timeout, json.dumps(rows[:30], indent=1)))

    def session_of(self, user, result=None, kind=None, timeout=20.0):
        """The closed row of user (as given in the login) whose result
        contains `result` (and whose kind is `kind`, if given)."""
        def match(row):
            if row.get("user") != user:
                return False
            if kind is not None and row.get("kind") != kind:
                return False
            return result is None or result in (row.get("result") or "")
        return self.wait_session(
            match, timeout,
            "user=%r result~%r kind=%r" % (user, result, kind))

    # --- the server

    def start(self, timeout=15.0, wait=True):
        """Starts `portcullis -c CONF serve` and waits until the SSH port
        accepts connections (its own socket, not one left by a server
        before it); with wait False, returns at once."""
        assert self.proc is None, "already started"
        log = open(self.log_path, "ab")
        cmd = [str(self.bin), "-c", str(self.conf), "serve"]
        netns = getattr(self, "netns", None)
        if netns is not None:
            # a node inside a network namespace of the test's own
            cmd = ["ip", "netns", "exec", netns] + cmd
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        finally:
            log.close()
        _live_servers.append(self)
        if not wait:
            return self
        # Listening means accepting; a probe connection would only leave
        # a stray session child behind.
        if not wait_listen(self.ssh_port, timeout, self.proc,
                           own_netns=netns is not None, owned=True):
            rc = self.proc.poll()
            tail = self.log_tail()
            self.stop()
            pytest.fail("portcullis serve did not accept connections on "
                        "port %d within %ss (exit status %s); log:\n%s"
                        % (self.ssh_port, timeout, rc, tail))
        return self

    def wait_http(self, timeout=15.0):
        """Waits until the HTTP listener (REST API) listens; fails the test
        if it does not within timeout."""
        if not wait_listen(self.http_port, timeout, self.proc):
            pytest.fail("portcullis serve did not listen on HTTP port %d "
                        "within %ss; log:\n%s" % (self.http_port, timeout,
                                                  self.log_tail()))
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def children(self):
        """Direct children of the server process (pgrep -P)."""
        return children_of(self.proc.pid) if self.proc else []

    def descendants(self):
        """Every process below the server: the server may fork a spawner
        that forks the session children, so tests look at all of them."""
        return descendants(self.proc.pid) if self.proc else []

    def stop(self, timeout=15.0):
        """SIGTERM and wait (SIGKILL to the process group after timeout).
        Returns the exit status, None if it was not running."""
        if self.proc is None:
            return None
        rc = stop_process(self.proc, timeout)
        # Children of a clean shutdown are gone; after a forced one make
        # sure nothing of ours keeps the ports.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc = None
        if self in _live_servers:
            _live_servers.remove(self)
        return rc

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def sanitizer_findings(self, new_only=False):
        """The part of the server log a sanitizer wrote, or None. With
        new_only, only what was logged since the last call."""
        text = self.log_text()
        start = self._log_seen if new_only else 0
        self._log_seen = len(text)
        return sanitizer_excerpt(text[start:])


_FRAME_RE = re.compile(r"\((/\S+)\+(0x[0-9a-f]+)\)")


def symbolize(lines):
    """Sanitizer frames like `#3 0x55.. (/path/portcullis+0xe2501)` get
    `in func file:line` from addr2line: a sandboxed child cannot run the
    symbolizer itself, so its reports arrive unsymbolized."""
    wanted = {}
    for line in lines:
        for path, off in _FRAME_RE.findall(line):
            if path.startswith(str(REPO)):
                wanted.setdefault(path, set()).add(off)
    names = {}
    for path, offs in wanted.items():
        offs = sorted(offs)
        try:
            r = subprocess.run(["addr2line", "-f", "-C", "-e", path] + offs,
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        out = r.stdout.splitlines()
        for i, off in enumerate(offs):
            if 2 * i + 1 < len(out):
                names[(path, off)] = "%s %s" % (
                    out[2 * i], out[2 * i + 1].replace(str(REPO) + "/", ""))
    res = []
    for line in lines:
        m = _FRAME_RE.search(line)
        if m and (m.group(1), m.group(2)) in names:
            line += "  in " + names[(m.group(1), m.group(2))]
        res.append(line)
    return res


def sanitizer_excerpt(text):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if any(m in line for m in SANITIZER_MARKERS):
            lo = max(0, i - 3)
            return "\n".join(symbolize(lines[lo:lo + 80]))
    return None


def live_servers():
    return list(_live_servers)


# ----------------------------------------------------------------- target

class Target:
    """An OpenSSH sshd on a loopback port with its own host key and config;
    root logs in with `key`, `password_user` with `password`."""

    def __init__(self, workdir, password_user, password, extra_config=()):
        """extra_config: more sshd_config lines (e.g. "AcceptEnv LC_*"),
        appended after the defaults."""
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = free_port()
        self.password_user = password_user
        self.password = password
        self.host_key = keygen(self.dir / "ssh_host_ed25519_key", "target")
        self.fingerprint = key_fingerprint(str(self.host_key) + ".pub")
        self.key = keygen(self.dir / "client_key", "asset-login")
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_text(
            Path(str(self.key) + ".pub").read_text())
        # A directory root's file tests use on the target's filesystem.
        self.files = self.dir / "files"
        self.files.mkdir(exist_ok=True)
        self.config = self.dir / "sshd_config"
        self.config.write_text("\n".join([
            "Port %d" % self.port,
            "ListenAddress 127.0.0.1",
            "HostKey %s" % self.host_key,
            "PidFile %s" % (self.dir / "sshd.pid"),
            "AuthorizedKeysFile %s" % self.authorized_keys,
            "PermitRootLogin yes",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "UsePAM no",
            "StrictModes no",
            "AllowTcpForwarding yes",
            "MaxStartups 200",
            "MaxSessions 200",
            "Subsystem sftp internal-sftp",
            # bash run by sshd for a command reads ~/.bashrc unless
            # SHLVL says it is not the first shell: root's on this box
            # runs `pyenv rehash`, which prints "cannot rehash" when two
            # logins start at once, and tests compare what the command
            # printed (with the proxy and without)
            "SetEnv SHLVL=1",
        ] + list(extra_config) + [""]))
        self.log_path = self.dir / "sshd.log"
        self.proc = None

    def start(self):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        r = run(["/usr/sbin/sshd", "-t", "-f", self.config])
        if r.rc != 0:
            pytest.fail("sshd rejects its config: %r" % r)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        finally:
            log.close()
        if not wait_listen(self.port, 15, self.proc):
            self.stop()
            pytest.fail("target sshd did not start; log:\n%s"
                        % self.log_path.read_text(errors="replace"))
        return self

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, 10)
            self.proc = None

    def ssh_args(self, command=None, extra=()):
        """ssh straight to this sshd as root with its client key (no
        proxy in between): the reference a proxied session is compared
        with."""
        args = ["ssh"] + SSH_COMMON + [
            "-i", str(self.key), "-o", "IdentitiesOnly=yes",
            "-o", "PreferredAuthentications=publickey",
            "-o", "BatchMode=yes", "-p", str(self.port)] + list(extra) + \
            ["root@%s" % self.host]
        if command is not None:
            args.append(command)
        return args

    def ssh(self, command=None, extra=(), input=None, stdin=None,
            timeout=CMD_TIMEOUT):
        """Runs ssh_args(...) to completion; returns a Result."""
        env = dict(os.environ)
        env.pop("SSH_AUTH_SOCK", None)
        return run(self.ssh_args(command, extra), input=input, stdin=stdin,
                   env=env, timeout=timeout)


# ----------------------------------------------------------------- client

SSH_COMMON = ["-F", "/dev/null",
              "-o", "StrictHostKeyChecking=no",
              "-o", "UserKnownHostsFile=/dev/null",
              "-o", "LogLevel=ERROR",
              "-o", "ConnectTimeout=10",
              "-o", "ServerAliveInterval=10",
              "-o", "ServerAliveCountMax=3"]


class Client:
    """OpenSSH clients pointed at the proxy on 127.0.0.1:port.

    Authentication: with key=PATH the client offers only that key
    (then keyboard-interactive, for a TOTP prompt); otherwise password then
    keyboard-interactive, never a key. Passwords and TOTP codes are typed
    by tests/e2e/askpass.sh from PC_PASSWORD / PC_TOTP. `methods`
    overrides PreferredAuthentications.
    """

    def __init__(self, port, host="127.0.0.1"):
        self.port = port
        self.host = host

    def env(self, password=None, totp=None):
        env = dict(os.environ)
        env.pop("SSH_AUTH_SOCK", None)
        env.update({
            "SSH_ASKPASS": str(ASKPASS),
            "SSH_ASKPASS_REQUIRE": "force",
            "DISPLAY": env.get("DISPLAY") or ":0",
            "PC_PASSWORD": password or "",
            "PC_TOTP": totp or "",
        })
        return env

    @staticmethod
    def auth_options(key=None, methods=None):
        if key:
            return ["-i", str(key), "-o", "IdentitiesOnly=yes",
                    "-o", "PreferredAuthentications=%s"
                    % (methods or "publickey,keyboard-interactive"),
                    "-o", "NumberOfPasswordPrompts=1"]
        return ["-o", "PubkeyAuthentication=no",
                "-o", "PreferredAuthentications=%s"
                % (methods or "password,keyboard-interactive"),
                "-o", "NumberOfPasswordPrompts=1"]

    def ssh_args(self, login, command=None, key=None, methods=None,
                 extra=()):
        args = ["ssh"] + SSH_COMMON + self.auth_options(key, methods) + \
            ["-p", str(self.port)] + list(extra) + \
            ["%s@%s" % (login, self.host)]
        if command is not None:
            args.append(command)
        return args

    def ssh(self, login, command=None, password=None, totp=None, key=None,
            methods=None, extra=(), input=None, stdin=None, stdout=None,
            timeout=CMD_TIMEOUT):
        return run(self.ssh_args(login, command, key, methods, extra),
                   input=input, stdin=stdin, stdout=stdout,
                   env=self.env(password, totp), timeout=timeout)

    def popen_ssh(self, login, command=None, password=None, totp=None,
                  key=None, methods=None, extra=(), **kw):
        """ssh in the background (caller must wait/stop it)."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            self.ssh_args(login, command, key, methods, extra),
            env=self.env(password, totp), start_new_session=True, **kw)

    def remote(self, path):
        """scp's spelling of a path on the proxy (login given by -o User)."""
        return "%s:%s" % (self.host, path)

    def scp(self, login, *args, legacy=False, password=None, totp=None,
            key=None, timeout=CMD_TIMEOUT):
        """scp -P PORT -o User=LOGIN ARGS; legacy=True adds -O (the old
        scp protocol) instead of the default SFTP mode."""
        cmd = ["scp"] + SSH_COMMON + self.auth_options(key) + \
            ["-P", str(self.port), "-o", "User=%s" % login]
        if legacy:
            cmd.append("-O")
        return run(cmd + list(args), env=self.env(password, totp),
                   timeout=timeout)

    def sftp(self, login, batch, password=None, totp=None, key=None,
             extra=(), timeout=CMD_TIMEOUT):
        """sftp -b BATCHFILE (batch mode allows no password prompt, so
        use key auth); extra: more ssh options."""
        cmd = ["sftp"] + SSH_COMMON + self.auth_options(key) + \
            ["-P", str(self.port), "-o", "User=%s" % login] + list(extra) + \
            ["-b", str(batch), self.host]
        return run(cmd, env=self.env(password, totp), timeout=timeout)


class PtySession:
    """A command on a pseudo-terminal (for `ssh -tt` shells): write() what
    a user types, expect() a regex in what the terminal shows."""

    def __init__(self, args, env, cols=120, rows=40):
        import fcntl
        import termios
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave,
                                     stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.buf = b""

    def write(self, text):
        os.write(self.master, text.encode())

    def _read(self, wait):
        r, _, _ = select.select([self.master], [], [], wait)
        if not r:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the other side is gone
            return False
        if not data:
            return False
        self.buf += data
        return True

    def expect(self, pattern, timeout=20.0):
        """Waits for the regex (bytes) in the output; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.5)):
                m = rx.search(self.buf)
                if m:
                    return m
                pytest.fail("terminal never showed %r; it showed:\n%r"
                            % (pattern, self.buf[-3000:]))

    def wait(self, timeout=20.0):
        """Reads until the command exits; returns its exit status."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        while self._read(0.05):
            if time.monotonic() > deadline + 2:
                break
        try:
            return self.proc.wait(timeout=max(0.1, deadline -
                                              time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail("terminal command did not exit; it showed:\n%r"
                        % self.buf[-3000:])

    def close(self):
        if self.proc.poll() is None:
            stop_process(self.proc, 5, signal.SIGKILL)
        try:
            os.close(self.master)
        except OSError:
            pass


# -------------------------------------------------------- a TCP echo server

class EchoServer:
    """A threaded TCP echo service on a loopback port (for -L tests)."""

    def __init__(self):
        import threading
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import threading
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._echo, args=(conn,),
                             daemon=True).start()

    @staticmethod
    def _echo(conn):
        conn.settimeout(30)
        with conn:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    conn.sendall(data)
            except OSError:
                pass

    def close(self):
        self._stop = True
        self.thread.join(5)
        self.sock.close()


def json_dump(x):
    return json.dumps(x, indent=1, sort_keys=True)
