"""The RDP proxy's drive, printer and port redirection and its audio
(docs/rdp.md "Virtual channels"), end to end.

xfreerdp through the proxy to tests/e2e/rdp_dev_target.c, a FreeRDP server
running FreeRDP's own rdpdr and rdpsnd channel servers (the shadow server
speaks neither). The client shares a directory (/drive:), announces a
printer, a serial and a parallel port and a smart card (all of which
xfreerdp does headless), and plays audio with its fake backend. The target
writes what it saw to a file: each device the client announced, the
content and SHA-256 of a file it read from the drive, the client's audio
formats and its confirmations of a block of samples.
"""
import hashlib
import os
import re
import shutil
import subprocess

import pytest

from pclib import build_dir, free_port, run, stop_process, uniq, wait_listen, \
    xvfb_run
from test_rdp import rdp_asset, rdp_proxy  # noqa: F401 (the fixture)

TOOLS = ["xfreerdp", "Xvfb", "xvfb-run", "openssl"]
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="RDP device test tools missing (scripts/install-deps)")

FILE = "secret.txt"
# the proxy's line for devices its filter took off the client's list
TAKEN_OFF = r"device redirection: \d+ devices? (of|from) the client taken off"


class DevTarget:
    """rdp-dev-target on a free loopback port with a fresh certificate."""

    def __init__(self, workdir):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.out = self.dir / "dev.txt"
        self.proc = None

    def start(self):
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-subj", "/CN=devtarget", "-days", "2", "-keyout", str(key),
                 "-out", str(cert)])
        assert r.rc == 0, r
        self.out.write_text("")
        exe = build_dir() / "tests" / "e2e" / "rdp-dev-target"
        assert exe.exists(), "build the tests (meson -Dtests=true)"
        self.log = open(self.dir / "target.log", "w")
        self.proc = subprocess.Popen(
            [str(exe), str(self.port), str(cert), str(key), str(self.out),
             "\\" + FILE],
            stdout=self.log, stderr=self.log, start_new_session=True)
        assert wait_listen(self.port, 10, self.proc), "dev target not up"
        return self

    def lines(self):
        return self.out.read_text(errors="replace").splitlines()

    def devices(self):
        """The kinds of device the target saw announced."""
        return {ln.split()[0] for ln in self.lines()
                if ln.split()[:1] in (["drive"], ["printer"], ["port"],
                                      ["smartcard"])}

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, 5)
            self.proc = None


@pytest.fixture
def dev_target(tmp_path):
    t = DevTarget(tmp_path / "target").start()
    yield t
    t.stop()


# The client: xfreerdp until the target wrote a line starting with WANT
# (or WAIT seconds), then it is ended.
DRIVER = r"""
set -u
"$@" > "$OUT/client.log" 2>&1 &
pid=$!
for i in $(seq 1 $((WAIT * 10))); do
    grep -q "^$WANT" "$TARGET_OUT" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
sleep 1
kill -TERM $pid 2>/dev/null
wait $pid
echo "exit $?" > "$OUT/exit"
"""


def dev_client(pc, out, login, password, target, share, want, wait=15):
    """xfreerdp sharing `share` as drive "share", with a printer, COM7,
    LPT3, a smart card and audio (the fake backend)."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OUT=str(out), TARGET_OUT=str(target.out),
               WANT=want, WAIT=str(wait))
    args = ["xfreerdp", "/v:127.0.0.1:%d" % pc.rdp_port, "/u:%s" % login,
            "/p:%s" % password, "/cert:ignore", "/sec:nla", "/size:800x600",
            "/drive:share,%s" % share, "/printer:TestPrinter",
            "/serial:COM7,/dev/null", "/parallel:LPT3,/dev/null",
            "/smartcard", "/sound:sys:fake", "/log-level:WARN"]
    r = run(xvfb_run() + ["-s", "-screen 0 800x600x24", "sh", "-c", DRIVER,
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


def test_drive_read_by_the_target(rdp_proxy, dev_target, tmp_path):
    """rdp_drive on: the target reads the file in the client's shared
    directory; the printer, the ports and the smart card never cross."""
    asset = rdp_asset(rdp_proxy, dev_target)
    user, pw = dev_user(rdp_proxy, asset, flags=["--rdp-drive"])
    share, data = shared(tmp_path)
    dev_client(rdp_proxy, tmp_path / "c", "%s#%s" % (user, asset), pw,
               dev_target, share, want="read ")
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
    client = (tmp_path / "c" / "client.log").read_text(errors="replace")
    for sign in ("CreateFile failure: COM7", "Unexpected SmartCard IRP",
                 "devman_get_device_by_id failed"):
        assert sign not in client, client[-3000:]
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
    assert not any(ln.startswith(("open ", "read ")) for ln in lines), lines
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
