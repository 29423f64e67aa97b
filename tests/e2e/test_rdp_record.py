"""RDP session recordings (docs/recordings.md) end to end.

A profile with `native record` records an RDP session: the RDP child
decodes what the target draws and writes it as .rdprec (screens and
changed areas, the pointer, and the keys when the profile records input).
What a user of the recording sees is asserted: the target's colour on
the recorded screen (read here by a reader of our own, by `portcullis
session frame` as a PNG, and in the web UI's player in Chromium), the
typed keys, the report row's hash and size. A session that cannot be
recorded does not run, and a recording stops at its size limit, ending
the session.

The target and client are those of test_rdp.py (freerdp-shadow-cli on an
Xvfb of solid dodger blue, xfreerdp under xvfb-run).
"""
import hashlib
import json
import os
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from pclib import (Portcullis, free_port, run, stop_process, wait_listen,
                   xvfb_run)
from test_rdp import (COLOUR, FAST, RdpTarget, near, pixel, pytestmark,  # noqa: F401
                      rdp_asset, rdp_proxy, rdp_target, refused, run_client,
                      xfreerdp_args)
from test_web import WEB, web_ui  # noqa: F401 (the fixture: web/dist built)

MAGIC = b"PCRDPv1\n"
START, FRAME, RECT, MOUSE, KEY, UNICODE, END = range(1, 8)


def client_log(r, out):
    """What the driver and xfreerdp said, for an assertion message."""
    log = out / "client.log"
    return "%s\n%s" % (r, log.read_text()[-2000:] if log.exists() else "")


def read_rdprec(path):
    """The records of an .rdprec file, a reader of its own written from
    docs/recordings.md: [(type, ms, payload)]; a cut-short tail is
    dropped."""
    data = Path(path).read_bytes()
    assert data[:8] == MAGIC, data[:16]
    out, at = [], 8
    while at + 9 <= len(data):
        t, ms, n = struct.unpack(">BII", data[at:at + 9])
        if at + 9 + n > len(data):
            break
        out.append((t, ms, data[at + 9:at + 9 + n]))
        at += 9 + n
    return out


def screen_at(records, until_ms=None):
    """The screen (width, height, RGB bytes) after the records up to
    until_ms (all of them by default)."""
    w = h = 0
    rgb = None
    for t, ms, p in records:
        if until_ms is not None and ms > until_ms:
            break
        if t == FRAME:
            w, h = struct.unpack(">HH", p[:4])
            rgb = bytearray(zlib.decompress(p[4:]))
            assert len(rgb) == w * h * 3
        elif t == RECT:
            x, y, rw, rh = struct.unpack(">HHHH", p[:8])
            px = zlib.decompress(p[8:])
            assert len(px) == rw * rh * 3 and x + rw <= w and y + rh <= h
            for row in range(rh):
                o = ((y + row) * w + x) * 3
                rgb[o:o + rw * 3] = px[row * rw * 3:(row + 1) * rw * 3]
    return w, h, rgb


def rgb_at(screen, x, y):
    w, _, rgb = screen
    o = (y * w + x) * 3
    return tuple(rgb[o:o + 3])


def check_row_file(row):
    path = row["recording_path"]
    assert path.endswith(".rdprec"), row
    data = Path(path).read_bytes()
    assert row["recording_sha256"] == hashlib.sha256(data).hexdigest(), row
    assert row["recording_size"] == len(data), row
    assert (os.stat(path).st_mode & 0o777) == 0o640, oct(os.stat(path).st_mode)
    return path


def test_recorded_session_shows_what_was_drawn(rdp_proxy, rdp_target,
                                               tmp_path):
    asset = rdp_asset(rdp_proxy, rdp_target)
    user = rdp_proxy.user_add(password="User-Pass-77")
    rdp_proxy.allow(user, asset, native="record", flags=("--record-input",))
    r, _ = run_client(rdp_proxy, tmp_path, "%s#%s" % (user, asset),
                      "User-Pass-77", text="rec ok")
    assert (tmp_path / "before.png").exists(), \
        "no xfreerdp window: %s\n%s" % (r, (tmp_path / "client.log")
                                        .read_text()[-2000:])
    assert near(pixel(tmp_path / "before.png"), COLOUR)
    row = rdp_proxy.session_of(user, kind="rdp", result="ok")
    path = check_row_file(row)
    recs = read_rdprec(path)
    types = [t for t, _, _ in recs]
    assert types[0] == START, types[:5]
    w, h = struct.unpack(">HH", recs[0][2][:4])
    assert (w, h) == (1024, 768), (w, h)
    assert FRAME in types, types[:20]
    assert types[-1] == END, types[-5:]
    assert recs[-1][2].decode().startswith("ok"), recs[-1]
    # time never runs backwards
    assert all(a[1] <= b[1] for a, b in zip(recs, recs[1:]))
    # the recorded screen shows the target's desktop, as the client did
    screen = screen_at(recs)
    assert near(rgb_at(screen, 800, 650), COLOUR), rgb_at(screen, 800, 650)
    # the pointer, and (the profile records input) the typed keys:
    # "rec ok" is 6 presses and 6 releases of scancodes at least
    assert MOUSE in types
    keys = [struct.unpack(">HH", p) for t, _, p in recs if t in (KEY,
                                                                  UNICODE)]
    assert len(keys) >= 12, keys
    # `portcullis session frame` writes the last screen as a PNG
    png = tmp_path / "last.png"
    rdp_proxy.cli("session", "frame", row["id"], "--output", str(png))
    assert near(pixel(png), COLOUR), pixel(png)
    # ... and never over an existing file
    rc, _, err = rdp_proxy.cli("session", "frame", row["id"], "--output",
                               str(png), check=False)
    assert rc != 0 and "already exists" in err, err


def test_keys_not_recorded_without_record_input(rdp_proxy, rdp_target,
                                                tmp_path):
    asset = rdp_asset(rdp_proxy, rdp_target)
    user = rdp_proxy.user_add(password="User-Pass-77")
    rdp_proxy.allow(user, asset, native="record")
    r, _ = run_client(rdp_proxy, tmp_path, "%s#%s" % (user, asset),
                      "User-Pass-77", text="secret")
    assert (tmp_path / "before.png").exists(), client_log(r, tmp_path)
    row = rdp_proxy.session_of(user, kind="rdp", result="ok")
    recs = read_rdprec(check_row_file(row))
    types = {t for t, _, _ in recs}
    assert FRAME in types and MOUSE in types, types
    assert KEY not in types and UNICODE not in types, types


def record_proxy(tmp_path, **record):
    """A proxy of its own with [record] settings."""
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    p.rdp_port = free_port()
    p.set_config("rdp", "enabled", "true")
    p.set_config("rdp", "port", str(p.rdp_port))
    for k, v in record.items():
        p.set_config("record", k, v)
    p.start()
    assert wait_listen(p.rdp_port, 15, p.proc), p.log_tail()
    return p


def stop_clean(p):
    """Stops a proxy of record_proxy's; fails on a sanitizer report."""
    p.stop()
    found = p.sanitizer_findings()
    if found:
        pytest.fail("sanitizer report in %s:\n%s" % (p.log_path, found))


def test_unwritable_recording_dir_refuses_the_session(tmp_path, rdp_target):
    """A session that must be recorded and cannot be does not run: the
    client is refused at once and told, the row says why."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    p = record_proxy(tmp_path, dir=str(blocker / "recordings"))
    try:
        asset = rdp_asset(p, rdp_target)
        user = p.user_add(password="User-Pass-77")
        p.allow(user, asset, native="record")
        before = len(rdp_target.keys())
        r, took = refused(p, "%s#%s" % (user, asset), "User-Pass-77")
        assert r.rc != 0 and took < FAST, (r, took)
        assert "ERRINFO_SERVER_DENIED_CONNECTION" in r.out + r.err, r
        row = p.session_of(user, kind="rdp", result="error")
        assert "must be recorded" in row["result"] and \
            "cannot be created" in row["result"], row
        assert not row.get("recording_path"), row
        # the target was never reached
        assert len(rdp_target.keys()) == before
    finally:
        stop_clean(p)


def test_refused_target_leaves_no_empty_recording(tmp_path, rdp_target):
    """The target refuses the connection (nothing listens on its port)
    after the recording file was created: the empty file is removed and
    the row links no recording."""
    p = record_proxy(tmp_path)
    try:
        asset = rdp_asset(p, rdp_target, port=str(free_port()))
        user = p.user_add(password="User-Pass-77")
        p.allow(user, asset, native="record")
        r, _ = refused(p, "%s#%s" % (user, asset), "User-Pass-77")
        assert r.rc != 0, r
        row = p.session_of(user, kind="rdp", result="error")
        assert not row.get("recording_path"), row
        assert not row.get("recording_sha256"), row
        left = [os.path.join(d, f) for d, _, fs in os.walk(p.dir)
                for f in fs if f.endswith(".rdprec")]
        assert left == [], left
    finally:
        stop_clean(p)


@pytest.fixture
def noisy_target(tmp_path):
    """A target whose desktop is noise: it does not compress."""
    t = RdpTarget(tmp_path / "noisy", background=["xc:", "+noise",
                                                   "Random"]).start()
    yield t
    t.stop()


def test_size_limit_ends_the_session(tmp_path, noisy_target):
    """[record] rdp_max_mb = 1 with a screen of noise (2.3 MB a screen):
    the recording stops at 1 MiB, whole records only, with an END record
    saying why; the session ends (a recorded session never runs on
    unrecorded), the client is told, the row says why."""
    p = record_proxy(tmp_path, rdp_max_mb="1")
    try:
        asset = rdp_asset(p, noisy_target)
        user = p.user_add(password="User-Pass-77")
        p.allow(user, asset, native="record")
        r, took = refused(p, "%s#%s" % (user, asset), "User-Pass-77")
        assert r.rc != 0, r
        assert "ERRINFO_SERVER_DENIED_CONNECTION" in r.out + r.err, r
        row = p.session_of(user, kind="rdp", result="error")
        assert "size limit" in row["result"], row
        path = check_row_file(row)
        assert os.path.getsize(path) <= 1024 * 1024
        recs = read_rdprec(path)
        assert sum(9 + len(pl) for _, _, pl in recs) + 8 == \
            os.path.getsize(path), "a record was cut"
        assert recs[-1][0] == END and b"size limit" in recs[-1][2], recs[-1]
    finally:
        stop_clean(p)


def test_web_ui_plays_the_recording(rdp_proxy, rdp_target, web_ui, tmp_path):
    """The session page's player (Chromium) draws the recorded screen on
    its canvas: the target's colour as it plays and after seeking to the
    end, black again after seeking back to the start, at the recorded
    size, with the END record's words and the keys counted."""
    asset = rdp_asset(rdp_proxy, rdp_target)
    user = rdp_proxy.user_add(password="User-Pass-77")
    rdp_proxy.allow(user, asset, native="record", flags=("--record-input",))
    r, _ = run_client(rdp_proxy, tmp_path / "c", "%s#%s" % (user, asset),
                      "User-Pass-77", text="web")
    assert (tmp_path / "c" / "before.png").exists(), \
        client_log(r, tmp_path / "c")
    row = rdp_proxy.session_of(user, kind="rdp", result="ok")
    rdp_proxy.wait_http()
    cfg = {"url": "http://127.0.0.1:%d" % rdp_proxy.http_port,
           "user": rdp_proxy.admin_user, "password": rdp_proxy.admin_password,
           "session_id": row["id"], "x": 800, "y": 650,
           "screenshots": os.environ.get("PORTCULLIS_SCREENSHOTS")}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    r = run(["node", "e2e/rdprec.mjs", str(path)], cwd=WEB, timeout=120)
    assert r.rc == 0, r
    res = json.loads(r.out.strip().splitlines()[-1])
    for at in ("playing", "last"):
        assert (res[at]["width"], res[at]["height"]) == (1024, 768), res
        assert near(tuple(res[at]["rgb"]), COLOUR), res
    # back at the start: the screen before the target drew (black)
    assert tuple(res["start"]["rgb"]) == (0, 0, 0), res
    assert "ended: ok" in res["facts"], res
    assert "key event" in res["facts"] and "0 key events" not in \
        res["facts"], res


def test_recording_grown_past_the_limit_ends_the_session(tmp_path,
                                                         rdp_target):
    """The monitor watches an RDP recording's size too (a child taken over
    through a FreeRDP bug could write on past the limit it enforces
    itself): bytes appended to the file of a live session, as such a
    child would, end that session within a sweep or two."""
    p = record_proxy(tmp_path, rdp_max_mb="1")
    client = None
    try:
        asset = rdp_asset(p, rdp_target)
        user = p.user_add(password="User-Pass-77")
        p.allow(user, asset, native="record")
        client = subprocess.Popen(
            xvfb_run("1024x768") +
            xfreerdp_args(p, "%s#%s" % (user, asset), "User-Pass-77"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 30
        files = []
        while not files:
            assert time.monotonic() < deadline, "no recording started"
            assert client.poll() is None, "the client ended early"
            time.sleep(0.3)
            files = [f for f in (p.dir / "recordings").rglob("*.rdprec")
                     if f.stat().st_size > 0]
        with open(files[0], "ab") as f:
            f.write(b"\0" * (2 * 1024 * 1024))
        t0 = time.monotonic()
        row = p.session_of(user, kind="rdp", result="error", timeout=20)
        assert "passed its size limit" in row["result"], row
        assert time.monotonic() - t0 < 10
        # the client's connection went with the session
        client.wait(timeout=15)
    finally:
        if client is not None:
            stop_process(client, 5)
        stop_clean(p)
