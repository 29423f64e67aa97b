"""Display resize through the RDP proxy (issue 17, "display resize";
docs/rdp.md, "Display resize").

xfreerdp with /dynamic-resolution sends a Monitor Layout on the dynamic
channel Microsoft::Windows::RDS::DisplayControl when its window is
resized; the proxy relays drdynvc with a filter that lets only that
channel through (src/rdpproxy/rdp_dvc.h), the target (xrdp, which
supports DisplayControl) changes its desktop size with a reactivation,
and the proxy resizes the client. The client's window is resized with
xdotool; what is asserted is what the user sees: the target's
background colour where the window grew (black if the desktop had not
followed), xrdp's log of the new size, and the proxy's log line.

xrdp runs as in test_rdp_xrdp.py (TLS only, no session manager: its
login screen is what is relayed), with a background colour of its own.
"""
import os
import struct

import pytest

from pclib import build_dir, run, stop_process, xvfb_run
from test_rdp import (near, pixel, pytestmark, rdp_driver,  # noqa: F401
                      rdp_proxy, rdp_user)
from test_rdp_xrdp import start_xrdp
from test_rdp_record import FRAME, check_row_file, read_rdprec, screen_at

# xrdp's login screen background (xrdp.ini ls_top_window_bg_color),
# which no client draws by itself
XRDP_BG = (0x2e, 0x8b, 0x57)
VAULT_USER = "xrdp-vaulted"
DISP = "Microsoft::Windows::RDS::DisplayControl"

# The client: xfreerdp with /dynamic-resolution in a 1600x1200 Xvfb; once
# its first frame is there, a screenshot, the window resized with
# xdotool, a screenshot once the target's screen had time to follow,
# then quit (test_rdp.py's driver with this window hook).
DRIVER = rdp_driver(on_window=r"""
sleep 0.5
xdotool windowmove --sync "$win" 0 0 2>/dev/null
for i in $(seq 1 40); do
    sleep 0.5
    import -window root "$OUT/before.png"
    lit=$(convert "$OUT/before.png" -format '%[fx:mean>0.05?1:0]' info:)
    [ "$lit" = 1 ] && break
done
sleep 2
xdotool windowsize "$win" $W $H
sleep 8
xdotool getwindowgeometry "$win" > "$OUT/geometry"
import -window root "$OUT/after.png"
kill -0 $pid 2>/dev/null && echo alive > "$OUT/alive"
""")


@pytest.fixture(scope="module")
def xrdp(tmp_path_factory):
    p = start_xrdp(tmp_path_factory.mktemp("xrdpresize"), {
        "LogLevel": "DEBUG",
        "ls_top_window_bg_color": "%02x%02x%02x" % XRDP_BG})
    yield p
    stop_process(p, 5)


def resize_client(pc, out, login, password, w, h, extra=()):
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OUT=str(out), W=str(w), H=str(h))
    return run(xvfb_run("1600x1200") + ["sh", "-c",
                             DRIVER, "driver",
                             "xfreerdp", "/v:127.0.0.1:%d" % pc.rdp_port,
                             "/u:%s" % login, "/p:%s" % password,
                             "/cert:ignore", "/size:1024x768",
                             "/dynamic-resolution", "-clipboard",
                             "/log-level:INFO"] + list(extra),
               env=env, timeout=90)


def xrdp_asset(pc, xrdp, tmp_path):
    _, out, _ = pc.cli("asset", "add", "xrdpz-" + tmp_path.name[-8:],
                       "--protocol", "rdp", "--host", "127.0.0.1", "--port",
                       str(xrdp.port), "--login", VAULT_USER,
                       "--password-stdin", input="Vaulted-Pass-9\n")
    return out.strip()


def test_resize_reaches_the_target_and_the_client(rdp_proxy, xrdp, tmp_path):
    pc = rdp_proxy
    asset = xrdp_asset(pc, xrdp, tmp_path)
    user, pw = rdp_user(pc, asset)
    r = resize_client(pc, tmp_path, "%s#%s" % (user, asset), pw, 1280, 960)
    client = (tmp_path / "client.log").read_text()
    assert (tmp_path / "after.png").exists(), "%s\n%s" % (r, client[-3000:])
    # before: the window at 1024x768, nothing at 1250,930
    assert near(pixel(tmp_path / "before.png", 1250, 930), (0, 0, 0)), \
        pixel(tmp_path / "before.png", 1250, 930)
    # the window grew, and the target's desktop with it: its background
    # where there was no desktop before (black if it had not followed)
    geo = (tmp_path / "geometry").read_text()
    assert "1280x960" in geo, geo
    assert near(pixel(tmp_path / "after.png", 1250, 930), XRDP_BG), \
        (pixel(tmp_path / "after.png", 1250, 930), client[-3000:])
    assert (tmp_path / "alive").exists(), client[-3000:]
    # no updates reached the client while it was being reactivated (it
    # read them as a broken capability exchange)
    assert "tpdu length" not in client, client[-3000:]
    # xrdp got the layout
    assert "MonitorLayoutSize 40 NumMonitor 1" in \
        (xrdp.dir / "xrdp.log").read_text()
    log = pc.log_text()
    assert "display resize: 1280x960" in log, log[-3000:]
    assert "desktop is 1280x960 now: the client follows" in log, log[-3000:]
    # reactivated (updates held meanwhile), then the screen asked again
    assert "the client is active again at 1280x960" in log, log[-3000:]


def test_hostile_layouts_refused_and_a_flood_coalesced(rdp_proxy, xrdp,
                                                       tmp_path):
    """A client that speaks drdynvc by hand: data on a channel never
    opened, layouts out of bounds or malformed, a compressed PDU, one of
    17 monitors, then 12 good layouts 20 ms apart. The session survives,
    the target gets no bad layout and at most two of the flood (the
    first, and the last when its turn came), and the client ends at the
    last size. The session is recorded: the recording follows the sizes
    and plays back at the last one."""
    pc = rdp_proxy
    asset = xrdp_asset(pc, xrdp, tmp_path)
    user, pw = pc.user_add(password="User-Pass-77"), "User-Pass-77"
    pc.allow(user, asset, native="record")
    exe = build_dir() / "tests" / "e2e" / "rdp-dvc-client"
    assert exe.exists(), "build the tests (meson -Dtests=true)"
    xlog = xrdp.dir / "xrdp.log"
    seen = len(xlog.read_text()) if xlog.exists() else 0
    r = run([str(exe), str(pc.rdp_port), "%s#%s" % (user, asset), pw,
             "1200", "900"], timeout=60)
    lines = r.out.splitlines()
    # the target's capabilities came clamped to version 2, and only
    # display control was offered
    assert "caps 2" in lines, r
    assert "create " + DISP in lines, r
    assert [x for x in lines if x.startswith("create ")] == \
        ["create " + DISP], r
    assert "sent" in lines, r
    # the last of the flood reached the target and came back as the
    # client's new desktop size; the session lived on
    assert "resized 1200x900" in lines, r
    assert lines[-1] == "alive" and r.rc == 0, r
    layouts = xlog.read_text()[seen:].count("dynamic_monitor_data:")
    assert 1 <= layouts <= 2, xlog.read_text()[seen:][-3000:]
    log = pc.log_text()
    for why in ("data on a dynamic channel not open",
                "a monitor layout out of bounds",
                "a dynamic channel PDU of a version not agreed",
                "a malformed dynamic channel PDU from the client",
                "held (one a second reaches the target)",
                "display resize: the held layout sent"):
        assert why in log, (why, log[-4000:])
    # the flood's held layouts are told once, not one line each
    assert log.count("held (one a second reaches the target)") == 1, \
        log[-4000:]
    # the child did not crash: the session ended as the client left
    row = pc.session_of(user, kind="rdp", result="ok")
    assert row["asset_id"] == asset, row
    # the recording: a FRAME at each size, in order, and its last screen
    # the target's at 1200x900 (its background in the corner that the
    # first size did not have)
    recs = read_rdprec(check_row_file(row))
    sizes = [struct.unpack(">HH", p[:4]) for t, _, p in recs if t == FRAME]
    assert sizes[0] == (1024, 768) and sizes[-1] == (1200, 900), sizes
    assert (1100, 800) in sizes, sizes
    screen = screen_at(recs)
    assert screen[:2] == (1200, 900)
    o = (880 * 1200 + 1180) * 3
    assert near(tuple(screen[2][o:o + 3]), XRDP_BG), tuple(screen[2][o:o + 3])
