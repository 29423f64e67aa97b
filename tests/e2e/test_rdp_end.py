"""Who ended an RDP session, in its report row (docs/rdp.md, "Report").

A session the client ends (xfreerdp quitting: an MCS Disconnect Provider
Ultimatum, then its socket closes) must not be reported as ended by the
target. While the target's screen changes, the proxy is forwarding the
target's updates when the client goes, and the failed write to the
client showed first on the target's leg: the row said "ok: the target
ended the session". The target here changes its whole screen all the
time (noise images, as bench/rdp does), which is when that happened.
"""
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pclib import magick_image, run
from test_rdp import (TOOLS, RdpTarget, rdp_asset, rdp_user,  # noqa: F401
                      run_client, start_rdp_proxy, stop_rdp_proxy)

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="RDP test tools missing (scripts/install-deps)")


REPO = Path(__file__).resolve().parents[2]
CLIENT_ENDED = "ok: the client ended the session"


class Animated(RdpTarget):
    """The shadow target whose root window cycles through noise images
    until stop()."""

    def start(self):
        super().start()
        self.noise = []
        for i in range(3):
            p = self.dir / ("noise%d.png" % i)
            magick_image(p, "1024x768", "-seed", str(i + 1), "xc:",
                         "+noise", "Random")
            self.noise.append(p)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self):
        i = 0
        while not self._stop.is_set():
            # exits 1 on Debian 12 though it worked (as in bench/rdp)
            subprocess.run(["display", "-window", "root",
                            str(self.noise[i % 3])], env=self.env(),
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
            i += 1

    def stop(self):
        self._stop.set()
        self._thread.join()
        super().stop()


@pytest.fixture(scope="module")
def busy_target(tmp_path_factory):
    t = Animated(tmp_path_factory.mktemp("rdpbusy")).start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    p = start_rdp_proxy(tmp_path_factory.mktemp("rdpendproxy"))
    yield p
    stop_rdp_proxy(p)


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """bench/rdpprobe.c: a FreeRDP client that holds the session for the
    seconds given, then calls freerdp_disconnect."""
    exe = tmp_path_factory.mktemp("rdpprobe") / "rdpprobe"
    flags = run(["pkg-config", "--cflags", "--libs", "freerdp2",
                 "freerdp-client2", "winpr2"]).out.split()
    r = run(["cc", "-O2", "-o", str(exe), str(REPO / "bench" / "rdpprobe.c")]
            + flags, timeout=120)
    assert r.rc == 0, r
    return exe


def test_xfreerdp_quitting_is_reported_as_the_client(proxy, busy_target,
                                                     tmp_path):
    asset = rdp_asset(proxy, busy_target)
    user, pw = rdp_user(proxy, asset)
    r, _ = run_client(proxy, tmp_path, "%s#%s" % (user, asset), pw)
    assert (tmp_path / "before.png").exists(), r
    row = proxy.session_of(user, kind="rdp")
    assert row["result"] == CLIENT_ENDED, row


@pytest.mark.parametrize("n", range(4))
def test_disconnecting_client_is_reported_as_the_client(proxy, busy_target,
                                                        probe, n):
    asset = rdp_asset(proxy, busy_target)
    user, pw = rdp_user(proxy, asset)
    r = run([str(probe), "127.0.0.1", str(proxy.rdp_port),
             "%s#%s" % (user, asset), pw, "1.5"], timeout=90)
    assert r.rc == 0 and "first_frame_ms=" in r.out, r
    row = proxy.session_of(user, kind="rdp")
    assert row["bytes_down"] > 1000000, row  # the screen was changing
    assert row["result"] == CLIENT_ENDED, row


def test_target_ending_is_reported_as_the_target(proxy, probe, tmp_path):
    """The other way: the target goes while the client stays."""
    t = RdpTarget(tmp_path / "target").start()
    try:
        asset = rdp_asset(proxy, t)
        user, pw = rdp_user(proxy, asset)
        p = subprocess.Popen([str(probe), "127.0.0.1", str(proxy.rdp_port),
                              "%s#%s" % (user, asset), pw, "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # the session is up (its row open), and a little more
        deadline = time.monotonic() + 30
        while not any(r.get("user") == user for r in proxy.sessions()):
            assert time.monotonic() < deadline and p.poll() is None, \
                p.communicate()
            time.sleep(0.25)
        time.sleep(2)
        t.stop()  # the shadow server and its X server go
        p.wait(timeout=30)
    finally:
        t.stop()
    row = proxy.session_of(user, kind="rdp")
    assert row["result"] == "ok: the target ended the session", row
