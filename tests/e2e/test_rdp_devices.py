"""The RDP proxy's drive, printer and port redirection and its audio
(docs/rdp.md "Virtual channels"), end to end.

xfreerdp through the proxy to tests/e2e/rdp_dev_target.c, a FreeRDP server
running FreeRDP's own rdpdr and rdpsnd channel servers (the shadow server
speaks neither). The client shares a directory (/drive:), announces a
printer, a serial and a parallel port and a smart card (all of which
xfreerdp does headless), and plays audio with its fake backend. The target
writes what it saw to a file: each device the client announced, the
content and SHA-256 of a file it read from the drive, the client's audio
formats and its confirmations of a block of samples. It also writes a
file on the drive (created, written, closed) and prints a job on the
printer (opened, written, closed: xfreerdp's CUPS backend hands it to a
cupsd of the test's own, on a Unix socket, whose spool keeps the job's
bytes), and as a hostile server would, sends opens and writes to
device IDs it was never told of.
"""
import hashlib
import os
import re
import shutil
import subprocess
import time

import pytest

from pclib import run, stop_process, uniq, xvfb_run
from test_rdp import ProgramTarget, rdp_asset, rdp_proxy  # noqa: F401

TOOLS = ["xfreerdp", "Xvfb", "xvfb-run", "openssl"]
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="RDP device test tools missing (scripts/install-deps)")

FILE = "secret.txt"
WRITTEN = "from-target.bin"  # what the target writes on the drive
# the proxy's line for devices its filter took off the client's list
TAKEN_OFF = r"device redirection: \d+ devices? (of|from) the client taken off"


class DevTarget(ProgramTarget):
    """rdp-dev-target (device redirection and audio)."""
    EXE = "rdp-dev-target"
    OUT = "dev.txt"

    def __init__(self, workdir, write=None, job=None):
        """write: bytes the target writes to \\WRITTEN on each drive;
        job: bytes it prints on each printer."""
        super().__init__(workdir)
        self._env = dict(os.environ)
        for k in ("DT_WRITE", "DT_WRITE_SRC", "DT_PRINT_SRC"):
            self._env.pop(k, None)
        if write is not None:
            (self.dir / "write.src").write_bytes(write)
            self._env.update(DT_WRITE="\\" + WRITTEN,
                             DT_WRITE_SRC=str(self.dir / "write.src"))
        if job is not None:
            (self.dir / "job.src").write_bytes(job)
            self._env.update(DT_PRINT_SRC=str(self.dir / "job.src"))

    def args(self):
        return ["\\" + FILE]

    def env(self):
        return self._env

    def devices(self):
        """The kinds of device the target saw announced."""
        return {ln.split()[0] for ln in self.lines()
                if ln.split()[:1] in (["drive"], ["printer"], ["port"],
                                      ["smartcard"])}


WRITE_DATA = os.urandom(64 * 1024 + 321)


@pytest.fixture
def dev_target(tmp_path):
    t = DevTarget(tmp_path / "target", write=WRITE_DATA).start()
    yield t
    t.stop()


# The client: xfreerdp until the target wrote a line starting with WANT
# (or WAIT seconds), and then until the shell test DONE holds (10 s at
# most), then it is ended.
DRIVER = r"""
set -u
"$@" > "$OUT/client.log" 2>&1 &
pid=$!
for i in $(seq 1 $((WAIT * 10))); do
    grep -q "^$WANT" "$TARGET_OUT" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
for i in $(seq 1 100); do
    sh -c "$DONE" && break
    sleep 0.1
done
sleep 1
kill -TERM $pid 2>/dev/null
wait $pid
echo "exit $?" > "$OUT/exit"
"""


# The target's 33 writes of 2 KiB take about 10 s, through the proxy and
# direct alike (measured: wopen to wclose 11.1 s proxied, 10.6 s with
# xfreerdp straight to rdp-dev-target): FreeRDP 2.11's rdpdr server thread
# takes about 0.3 s per request. Under ASan on a loaded box that passed
# 30 s, hence the 60 s ceilings below (a ceiling: the driver stops at the
# line it waits for).
def dev_client(pc, out, login, password, target, share, want, wait=15,
               cups=None, done="true"):
    """xfreerdp sharing `share` as drive "share", with a printer, COM7,
    LPT3, a smart card and audio (the fake backend); its printer prints
    to the Cups server cups (else to none: CUPS_SERVER names no
    server)."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OUT=str(out), TARGET_OUT=str(target.out),
               WANT=want, WAIT=str(wait), DONE=done,
               CUPS_SERVER=str(cups.sock) if cups else str(out / "no-cups"))
    args = ["xfreerdp", "/v:127.0.0.1:%d" % pc.rdp_port, "/u:%s" % login,
            "/p:%s" % password, "/cert:ignore", "/sec:nla", "/size:800x600",
            "/drive:share,%s" % share, "/printer:TestPrinter",
            "/serial:COM7,/dev/null", "/parallel:LPT3,/dev/null",
            "/smartcard", "/sound:sys:fake", "/log-level:WARN"]
    r = run(xvfb_run("800x600") + ["sh", "-c", DRIVER,
                          "driver"] + args, env=env, timeout=wait + 45)
    assert (out / "exit").exists(), r
    return r


def dev_user(pc, asset, flags=()):
    user = pc.user_add(password="User-Pass-77")
    pc.allow(user, asset, flags=flags)
    return user, "User-Pass-77"


def proxy_log(pc, pattern):
    """The proxy's log lines (the RDP child's) that match pattern."""
    return [ln for ln in pc.log_text().splitlines() if re.search(pattern, ln)]


def shared(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    data = ("a file on the client " + uniq("f") + "\n").encode()
    (share / FILE).write_bytes(data)
    return share, data


def test_drive_read_and_written_by_the_target(rdp_proxy, dev_target,
                                              tmp_path):
    """rdp_drive on: the target reads the file in the client's shared
    directory, and creates, writes and closes a file of 64 KiB there,
    which lands in the client's directory byte for byte; the printer,
    the ports and the smart card never cross, and the target's opens and
    writes to their IDs never reach the client."""
    asset = rdp_asset(rdp_proxy, dev_target)
    user, pw = dev_user(rdp_proxy, asset, flags=["--rdp-drive"])
    share, data = shared(tmp_path)
    dev_client(rdp_proxy, tmp_path / "c", "%s#%s" % (user, asset), pw,
               dev_target, share, want="wclose ", wait=60)
    lines = dev_target.lines()
    assert any(re.fullmatch(r"drive \d+ share", ln) for ln in lines), lines
    reads = [ln.split(" ", 4) for ln in lines if ln.startswith("read ")]
    assert reads, lines
    _, status, length, digest, text = reads[0]
    assert status == "0" and int(length) == len(data), reads
    assert digest == hashlib.sha256(data).hexdigest(), reads
    assert text == data.decode().replace("\n", "?"), reads
    assert dev_target.devices() == {"drive"}, lines
    # the target then tried the same open on the IDs xfreerdp gives the
    # other devices: none reached them (xfreerdp logs an I/O request on
    # its serial port, its smart card or an unknown ID)
    drive_id = next(ln.split()[1] for ln in lines if ln.startswith("drive "))
    assert [ln for ln in lines if ln.startswith("open ")] == [
        "open %s 0" % drive_id], lines
    # the target's writes to the other IDs got no answer either
    assert not [ln for ln in lines if ln.startswith("write ")], lines
    # its file: created, written (2 KiB a request), closed, and there on
    # the client whole
    for want in ("wopen %s 0" % drive_id,
                 "wwrite %s 0 %d" % (drive_id, len(WRITE_DATA)),
                 "wclose %s 0" % drive_id):
        assert want in lines, [ln for ln in lines if not ln.startswith(
            "audio ")]
    written = share / WRITTEN
    assert written.exists(), sorted(os.listdir(share))
    assert hashlib.sha256(written.read_bytes()).hexdigest() == \
        hashlib.sha256(WRITE_DATA).hexdigest()
    assert_no_stray_io(tmp_path / "c")
    assert proxy_log(rdp_proxy, r"device redirection: I/O on a device that "
                     r"was not announced \(or the access profile refused\) "
                     r"from the target refused")
    assert proxy_log(rdp_proxy, r"%s: drive and printer redirection allowed "
                     r"\(channel rdpdr relayed, printers refused\)"
                     % re.escape(user))
    assert proxy_log(rdp_proxy, TAKEN_OFF)
    row = rdp_proxy.session_of(user, kind="rdp", result="ok")
    assert row["asset_id"] == asset, row


@pytest.mark.parametrize("audio", [True, False])
def test_drive_refused_by_default(rdp_proxy, dev_target, tmp_path, audio):
    """rdp_drive off (the default): no device reaches the target. With
    audio on (the default) rdpdr is relayed (Windows plays audio only to
    clients that joined it) with every device taken off; with audio off
    too, the channel is not offered at all."""
    asset = rdp_asset(rdp_proxy, dev_target)
    user, pw = dev_user(rdp_proxy, asset,
                        flags=[] if audio else ["--no-rdp-audio"])
    share, _ = shared(tmp_path)
    dev_client(rdp_proxy, tmp_path / "c", "%s#%s" % (user, asset), pw,
               dev_target, share,
               want="audio confirm" if audio else "no-rdpsnd", wait=10)
    lines = dev_target.lines()
    assert dev_target.devices() == set(), lines
    assert not any(ln.startswith(("open ", "read ", "wopen ", "write "))
                   for ln in lines), lines
    u = re.escape(user)
    if audio:
        assert "joined rdpdr" in lines, lines
        assert proxy_log(rdp_proxy, r"%s: drive and printer redirection "
                         r"allowed \(channel rdpdr relayed, drives refused, "
                         r"printers refused\)" % u)
        assert proxy_log(rdp_proxy, TAKEN_OFF)
    else:
        assert "no-rdpdr" in lines, lines
        assert proxy_log(rdp_proxy, r"%s: drive and printer redirection "
                         r"refused by the access profile \(channel rdpdr not "
                         r"offered to the target\)" % u)
    # the session otherwise works: it was activated, and it ends ok
    assert any(ln in ("joined rdpsnd", "no-rdpsnd") for ln in lines), lines
    rdp_proxy.session_of(user, kind="rdp", result="ok")


def test_printer_only(rdp_proxy, dev_target, tmp_path):
    """rdp_printer on, rdp_drive off: the printer crosses, the drive does
    not (nor the ports and the smart card)."""
    asset = rdp_asset(rdp_proxy, dev_target)
    user, pw = dev_user(rdp_proxy, asset, flags=["--rdp-printer"])
    share, _ = shared(tmp_path)
    dev_client(rdp_proxy, tmp_path / "c", "%s#%s" % (user, asset), pw,
               dev_target, share, want="printer ", wait=10)
    lines = dev_target.lines()
    assert dev_target.devices() == {"printer"}, lines
    assert not any(ln.startswith(("open ", "read ")) for ln in lines), lines
    assert proxy_log(rdp_proxy, r"%s: drive and printer redirection allowed "
                     r"\(channel rdpdr relayed, drives refused\)"
                     % re.escape(user))


@pytest.mark.parametrize("audio", [True, False])
def test_audio_by_profile(rdp_proxy, dev_target, tmp_path, audio):
    """rdp_audio on (the default): the client gets the target's formats
    and a block of samples, and confirms it; off: the target is never
    offered rdpsnd."""
    asset = rdp_asset(rdp_proxy, dev_target)
    user, pw = dev_user(rdp_proxy, asset,
                        flags=[] if audio else ["--no-rdp-audio"])
    share, _ = shared(tmp_path)
    dev_client(rdp_proxy, tmp_path / "c", "%s#%s" % (user, asset), pw,
               dev_target, share,
               want="audio confirm" if audio else "no-rdpsnd", wait=10)
    lines = dev_target.lines()
    u = re.escape(user)
    if audio:
        assert "joined rdpsnd" in lines, lines
        assert any(re.fullmatch(r"audio formats [1-9]\d*", ln)
                   for ln in lines), lines
        assert "audio confirm" in lines, lines
        assert proxy_log(rdp_proxy, r"%s: audio allowed \(channel rdpsnd "
                         r"relayed\)" % u)
    else:
        assert "no-rdpsnd" in lines, lines
        assert not any(ln.startswith("audio ") for ln in lines), lines
        assert proxy_log(rdp_proxy, r"%s: audio refused by the access "
                         r"profile \(channel rdpsnd not offered to the "
                         r"target\)" % u)
    rdp_proxy.session_of(user, kind="rdp", result="ok")


class Cups:
    """A cupsd of the test's own: on a Unix socket in workdir (no TCP
    port), one raw queue named `printer` that takes jobs and prints none,
    so that each job's bytes stay in its spool (d<job>-001) to
    compare."""

    def __init__(self, workdir, printer):
        self.dir = workdir
        self.sock = workdir / "c.sock"
        self.spool = workdir / "spool"
        self.printer = printer
        self.proc = None

    def start(self):
        d = self.dir
        for sub in ("etc", "spool", "cache", "state", "tmp", "log", "out"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d / "out", 0o777)
        (d / "etc" / "cupsd.conf").write_text(
            "Listen %s\nLogLevel debug\nWebInterface No\nBrowsing No\n"
            "DefaultAuthType None\nPreserveJobFiles Yes\n"
            "<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
            "<Policy default>\n  <Limit All>\n    Order deny,allow\n"
            "  </Limit>\n</Policy>\n" % self.sock)
        (d / "etc" / "cups-files.conf").write_text("".join(
            "%s %s\n" % kv for kv in (
                ("ServerRoot", d / "etc"), ("RequestRoot", self.spool),
                ("CacheDir", d / "cache"), ("StateDir", d / "state"),
                ("TempDir", d / "tmp"), ("ErrorLog", d / "log" / "error_log"),
                ("AccessLog", d / "log" / "access_log"),
                ("PageLog", d / "log" / "page_log"), ("FileDevice", "Yes"))))
        self.log = open(d / "cupsd.out", "w")
        self.proc = subprocess.Popen(
            ["cupsd", "-f", "-c", str(d / "etc" / "cupsd.conf"), "-s",
             str(d / "etc" / "cups-files.conf")],
            stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 10
        while not self.sock.exists():
            assert self.proc.poll() is None and time.monotonic() < deadline, \
                (d / "cupsd.out").read_text()
            time.sleep(0.1)
        env = dict(os.environ, CUPS_SERVER=str(self.sock))
        # accepting jobs, but stopped: each job stays queued with its
        # bytes in the spool (and Debian's cupsd 2.4.2 crashed starting
        # xfreerdp's jobs on a raw queue)
        for cmd in (["lpadmin", "-p", self.printer, "-v",
                     "file://%s" % (d / "out" / "job.prn")],
                    ["cupsaccept", self.printer]):
            r = run(cmd, env=env)
            assert r.rc == 0, r
        return self

    def jobs(self):
        """The bytes of each job cupsd got, in order."""
        return [p.read_bytes() for p in sorted(self.spool.glob("d*-001"))]

    def requests(self):
        """The jobs cupsd was asked to create (printed or not): its log's
        lines for them."""
        log = self.dir / "log" / "error_log"
        return [ln for ln in log.read_text(errors="replace").splitlines()
                if re.search(r"\[Job \d+\] Queued on", ln)]

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, 5)
            self.proc = None


@pytest.mark.skipif(shutil.which("cupsd") is None or
                    shutil.which("lpadmin") is None,
                    reason="cupsd missing (cups-daemon, cups-client: "
                    "scripts/install-deps); xfreerdp 2.11's only printer "
                    "backend on Linux hands jobs to CUPS")
def test_print_job_reaches_the_client_printer(rdp_proxy, tmp_path):
    """rdp_printer on (drives off): the target opens the printer the
    client announced, writes a job of 40 KiB and closes it; xfreerdp's
    printer backend (CUPS, the only one FreeRDP 2.11 has on Linux) gets
    it and hands it to the client's cupsd, whose spool holds the same
    bytes. The target's opens and writes to the other IDs (the drive's
    among them, never announced to it) get no answer."""
    job = b"%!PS-Adobe-3.0\n% " + uniq("job").encode() + b"\n" + \
        os.urandom(40 * 1024)
    cups = Cups(tmp_path / "cups", "TestPrinter").start()
    target = DevTarget(tmp_path / "target", write=WRITE_DATA, job=job).start()
    try:
        asset = rdp_asset(rdp_proxy, target)
        user, pw = dev_user(rdp_proxy, asset, flags=["--rdp-printer"])
        share, _ = shared(tmp_path)
        dev_client(rdp_proxy, tmp_path / "c", "%s#%s" % (user, asset), pw,
                   target, share, want="pclose ", wait=60, cups=cups,
                   done="ls %s/d*-001 >/dev/null 2>&1" % cups.spool)
        lines = target.lines()
        assert dev_target_kinds(lines) == {"printer"}, lines
        pid = next(ln.split()[1] for ln in lines if ln.startswith("printer "))
        for want in ("popen %s 0" % pid, "pwrite %s 0 %d" % (pid, len(job)),
                     "pclose %s 0" % pid):
            assert want in lines, lines
        jobs = cups.jobs()
        assert [hashlib.sha256(j).hexdigest() for j in jobs] == [
            hashlib.sha256(job).hexdigest()], (
            [len(j) for j in jobs],
            (tmp_path / "c" / "client.log").read_text(errors="replace")[-2000:])
        # nothing reached the drive or any other device
        assert not any(ln.startswith(("open ", "write ", "read ", "wopen "))
                       for ln in lines), lines
        assert_no_stray_io(tmp_path / "c")
        assert len(cups.requests()) == 1, cups.requests()
        assert not (share / WRITTEN).exists()
        assert proxy_log(rdp_proxy, r"device redirection: I/O on a device "
                         r"that was not announced \(or the access profile "
                         r"refused\) from the target refused")
        rdp_proxy.session_of(user, kind="rdp", result="ok")
    finally:
        target.stop()
        cups.stop()


def test_print_job_refused_without_printers(rdp_proxy, tmp_path):
    """rdp_printer off, rdp_drive on: the target never sees the printer,
    and its opens and writes to every other ID (the printer's among them)
    never reach the client: no job is printed."""
    job = b"no job " + uniq("job").encode()
    cups = Cups(tmp_path / "cups", "TestPrinter").start() \
        if shutil.which("cupsd") and shutil.which("lpadmin") else None
    target = DevTarget(tmp_path / "target", write=WRITE_DATA, job=job).start()
    try:
        asset = rdp_asset(rdp_proxy, target)
        user, pw = dev_user(rdp_proxy, asset, flags=["--rdp-drive"])
        share, _ = shared(tmp_path)
        dev_client(rdp_proxy, tmp_path / "c", "%s#%s" % (user, asset), pw,
                   target, share, want="wclose ", wait=60, cups=cups)
        lines = target.lines()
        assert dev_target_kinds(lines) == {"drive"}, lines
        assert not [ln for ln in lines if ln.startswith("p")], lines
        # its opens and writes on the printer's ID (and the others) got
        # no answer
        assert not [ln for ln in lines if ln.startswith(("open ", "write "))
                    and ln.split()[1] != drive_of(lines)], lines
        # no request reached the client's other devices: no job was even
        # started on its printer
        assert_no_stray_io(tmp_path / "c")
        if cups is not None:
            assert cups.requests() == []
    finally:
        target.stop()
        if cups is not None:
            cups.stop()


def assert_no_stray_io(out):
    """xfreerdp's log in out has no sign of an I/O request that reached a
    device of the client the target was not to see (its serial and
    parallel ports, its smart card, its printer or an unknown ID)."""
    client = (out / "client.log").read_text(errors="replace")
    for sign in ("CreateFile failure: COM7", "Unexpected SmartCard IRP",
                 "devman_get_device_by_id failed", "parallel_process_irp",
                 "serial_process_irp", "cupsPrintFile"):
        assert sign not in client, client[-3000:]


def drive_of(lines):
    return next(ln.split()[1] for ln in lines if ln.startswith("drive "))


def dev_target_kinds(lines):
    return {ln.split()[0] for ln in lines
            if ln.split()[:1] in (["drive"], ["printer"], ["port"],
                                  ["smartcard"])}
