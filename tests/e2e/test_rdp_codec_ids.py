"""Surface commands' codec IDs through the RDP proxy (docs/rdp.md, "Codec
IDs of surface commands").

In the Bitmap Codecs capability set the client numbers the codecs it
announces, and the server uses those numbers in its surface commands.
The proxy's back leg, a FreeRDP client, announces FreeRDP's numbers to
the target (NSCodec 1, RemoteFX 3); the real client may announce others
(mstsc is free to). So the proxy renumbers each surface command into the
client's numbering, and sends none whose codec the client did not
announce.

No client here numbers its codecs its own way (every one is FreeRDP),
so the test makes one: xfreerdp with `/sec:tls` (the proxy's
`tls_logins`: no CredSSP, so a man in the middle can read and change the
RDP PDUs) talks to a shim that ends TLS on both sides, swaps the IDs of
NSCodec and RemoteFX in the client's Confirm Active (RemoteFX 1, NSCodec
3: the worst case, each ID meaning the other codec in FreeRDP's
numbering), records the codec IDs of the surface commands coming back
(fast-path, uncompressed: `[rdp] compression = false`, xfreerdp
`-compression`) and swaps them back for xfreerdp, which decodes by
FreeRDP's numbers. Through the proxy to freerdp-shadow with `/rfx`,
the target's RemoteFX must reach the shim as ID 1, and xfreerdp then
shows the target's desktop.

A hostile target (rdp_surf_target.c) sends surface bits under IDs it
was not offered (an ID no codec has, RemoteFX, JPEG and RemoteFX's image
mode to a client that announced none of them), then a plain screen: the
client must get the screen and none of the rest (xfreerdp fails the
session on junk under RemoteFX's ID).

NSCodec, which freerdp-shadow sends only to clients taking 4 MB
fast-path PDUs, comes from the same target in its nsc mode: a picture
encoded with FreeRDP's NSCodec encoder under the ID the back leg
announced. It must reach xfreerdp renumbered and show where it was
drawn, on xfreerdp's screen and in the recording (the tests' reader,
`portcullis session frame`, the web UI's player). In its nsc-big mode
the target first sends an NSCodec bitmap far larger than its rectangle,
which FreeRDP 2.11's decoder writes past the screen: it must reach
neither xfreerdp nor the recorder; in its bpp1 mode, a "not encoded"
bitmap of 1 bit per pixel, which FreeRDP's decoder logs pixel by pixel,
must not either. In its planar-big mode it sends a Bitmap Update (the
classic path) with a planar bitmap far taller than the desktop, which
FreeRDP 2.11's planar decoder writes past its scratch buffer: it must
reach neither either.
"""
import collections
import json
import os
import select
import socket
import ssl
import struct
import threading
from pathlib import Path

import pytest

from pclib import run, self_signed_cert
from test_rdp import (COLOUR, ProgramTarget, near, pixel,  # noqa: F401
                      pytestmark, rdp_asset, rdp_target, rdp_user, run_client,
                      start_rdp_proxy, stop_rdp_proxy)
from test_rdp_record import check_row_file, read_rdprec, rgb_at, screen_at
from test_web import WEB, web_ui  # noqa: F401 (the fixture: web/dist built)

# [MS-RDPBCGR] 2.2.7.2.10.1.1: codec GUIDs as they are on the wire
GUID_RFX = bytes.fromhex("122f777672bd6344afb3b73c9c6f7886")
GUID_NSC = bytes.fromhex("b91b8dca0f004f15589fae2d1a87e2d6")
FREERDP_IDS = {GUID_NSC: 1, GUID_RFX: 3}
# the shim's client: RemoteFX 1, NSCodec 3
SWAPPED = {GUID_RFX: 1, GUID_NSC: 3}
FASTPATH_SURFCMDS = 0x4
FASTPATH_BITMAP = 0x1
TEAL = (0, 128, 128)


def read_frame(buf):
    """One whole PDU at the start of buf (TPKT or fast-path): its length,
    or 0 when more bytes are needed."""
    if len(buf) < 4:
        return 0
    if buf[0] == 3:
        n = struct.unpack(">H", bytes(buf[2:4]))[0]
    elif buf[1] & 0x80:
        n = ((buf[1] & 0x7F) << 8) | buf[2]
    else:
        n = buf[1]
    return n if n >= 2 and len(buf) >= n else 0


def tls_frames(a, b, timeout=60):
    """The whole PDUs (read_frame) arriving on TLS sockets a and b, as
    (socket, frame), each frame a bytearray of its own, in order per
    socket: what a shim between client and target reads. Ends when
    either side closes or nothing comes for timeout seconds."""
    bufs = {a: bytearray(), b: bytearray()}
    while True:
        ready = [s for s in (a, b) if s.pending()]
        if not ready:
            ready, _, _ = select.select([a, b], [], [], timeout)
            if not ready:
                return
        for s in ready:
            got = s.recv(65536)
            if not got:
                return
            buf = bufs[s]
            buf += got
            while True:
                n = read_frame(buf)
                if n == 0:
                    break
                f = bytearray(buf[:n])
                del buf[:n]
                yield s, f


def recv_tpkt(sock):
    buf = b""
    while len(buf) < 4 or len(buf) < struct.unpack(">H", buf[2:4])[0]:
        got = sock.recv(4096)
        if not got:
            raise ConnectionError("closed during X.224")
        buf += got
    return buf


class CodecShim:
    """xfreerdp -> shim -> proxy with TLS ended here on both sides (RDP's
    TLS security: the X.224 request and confirm in the clear, then TLS
    from the client, then the PDUs; nothing binds TLS to the PDUs inside
    it). ids: the client's codec numbering, as written into its Confirm
    Active; self.seen counts the codec IDs of the surface commands the
    proxy sent (self.marks its frame markers); each is swapped back into
    FreeRDP's numbering for xfreerdp."""

    def __init__(self, workdir, upstream_port, ids):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.up_port = upstream_port
        self.ids = ids
        self.back = {ids[g]: FREERDP_IDS[g] for g in ids}
        self.seen = collections.Counter()
        self.marks = 0
        self.bitmaps = 0   # Bitmap Updates (fast-path) the proxy sent
        self.compressed = 0
        self.rewritten = 0
        self.errors = []
        cert, key = self_signed_cert(self.dir / "shim.crt",
                                     self.dir / "shim.key", "/CN=shim")
        self.sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.sctx.load_cert_chain(str(cert), str(key))
        self.cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.cctx.check_hostname = False
        self.cctx.verify_mode = ssl.CERT_NONE
        # TLS 1.2: with 1.3 the server's session tickets come after the
        # handshake, and a blocking read that meets one waits for data
        # that the other side is waiting for the shim to relay
        for ctx in (self.sctx, self.cctx):
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self):
        self.ls.close()

    def _serve(self):
        try:
            c, _ = self.ls.accept()
        except OSError:
            return
        try:
            self._relay(c)
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.errors.append(repr(e))

    def _relay(self, c):
        u = socket.create_connection(("127.0.0.1", self.up_port))
        u.sendall(recv_tpkt(c))      # X.224 Connection Request
        cc = recv_tpkt(u)            # Connection Confirm
        c.sendall(cc)
        # RDP_NEG_RSP: type 2, selectedProtocol 1 (TLS)
        assert cc[11] == 2 and struct.unpack("<I", cc[15:19])[0] == 1, \
            cc.hex()
        us = self.cctx.wrap_socket(u)
        cs = self.sctx.wrap_socket(c, server_side=True)
        held = []   # the proxy's frames of a fragmented update, held
        frag = []   # (frame, offset) of each fragment's data, its bytes
        for s, f in tls_frames(cs, us):
            if s is cs:
                self._from_client(f)
                us.sendall(f)
            else:
                for g in self._from_proxy(f, held, frag):
                    cs.sendall(g)

    def _from_client(self, f):
        """The Confirm Active's codec IDs into self.ids (the GUID, then
        the codecID byte); nothing else of the client's has these GUIDs."""
        if f[0] != 3:
            return
        for guid, cid in self.ids.items():
            i = f.find(guid)
            if i >= 0 and i + 16 < len(f):
                f[i + 16] = cid
                self.rewritten += 1

    def _from_proxy(self, f, held, frag):
        """A frame of the proxy's: the frames to send on now (a frame
        with a fragment of a surface commands update is held until the
        update's last fragment, which has its codec IDs swapped back)."""
        if f[0] == 3 or f[0] & 0xC0:   # slow-path, or encrypted
            if held:
                held.append(f)
                return []
            return [f]
        i = 3 if f[1] & 0x80 else 2
        wait = False
        while i + 3 <= len(f):
            h = f[i]
            code, fr, comp = h & 0x0F, (h >> 4) & 3, (h >> 6) & 3
            i += 1
            if comp == 2:
                if f[i] & 0x20:
                    self.compressed += 1
                i += 1
            size = struct.unpack("<H", bytes(f[i:i + 2]))[0]
            i += 2
            if code == FASTPATH_BITMAP and fr in (0, 2):
                self.bitmaps += 1
            if code == FASTPATH_SURFCMDS:
                if fr in (0, 2):   # single, first
                    frag.clear()
                frag.append((f, i, size))
                if fr in (0, 1):   # single, last
                    self._surfcmds(frag)
                    frag.clear()
                else:
                    wait = True
            i += size
        held.append(f)
        if wait:
            return []
        out = list(held)
        held.clear()
        return out

    def _surfcmds(self, frag):
        """The surface commands of one update, its data spread over the
        fragments' frames: each codecID seen, and swapped back."""
        data = b"".join(bytes(f[o:o + n]) for f, o, n in frag)

        def poke(pos, v):
            for f, o, n in frag:
                if pos < n:
                    f[o + pos] = v
                    return
                pos -= n

        i = 0
        while i + 2 <= len(data):
            t = struct.unpack("<H", data[i:i + 2])[0]
            if t in (1, 6) and i + 22 <= len(data):
                flags, cid = data[i + 11], data[i + 13]
                n = struct.unpack("<I", data[i + 18:i + 22])[0]
                self.seen[cid] += 1
                poke(i + 13, self.back.get(cid, cid))
                i += 22 + (24 if flags & 1 else 0) + n
            elif t == 4:
                self.marks += 1
                i += 8
            else:
                self.errors.append("surface command type %d" % t)
                return


def shim_client(pc, shim, out, login, pw, extra):
    """run_client of test_rdp.py through the shim, TLS security."""
    port = pc.rdp_port
    pc.rdp_port = shim.port
    try:
        return run_client(pc, out, login, pw, text="x", sec="tls",
                          extra=extra)[0]
    finally:
        pc.rdp_port = port


@pytest.fixture(scope="module")
def tls_proxy(tmp_path_factory):
    p = start_rdp_proxy(tmp_path_factory.mktemp("rdpcodec"),
                        tls_logins="true", compression="false")
    yield p
    stop_rdp_proxy(p)


@pytest.mark.parametrize("recorded", [False, True],
                         ids=["relayed", "recorded"])
def test_client_numbering_reaches_the_client(tls_proxy, rdp_target,
                                             tmp_path, recorded):
    """A client numbering RemoteFX 1 and NSCodec 3 (FreeRDP's numbers
    swapped) gets freerdp-shadow's RemoteFX under 1, never 3, and shows
    the desktop once the shim puts FreeRDP's numbers back. Recorded, the
    recorder decodes the same RemoteFX in the back leg's numbering: the
    recording shows the desktop too."""
    asset = rdp_asset(tls_proxy, rdp_target)
    if recorded:
        pw = "User-Pass-77"
        user = tls_proxy.user_add(password=pw)
        tls_proxy.allow(user, asset, native="record")
    else:
        user, pw = rdp_user(tls_proxy, asset)
    shim = CodecShim(tmp_path / "shim", tls_proxy.rdp_port, SWAPPED)
    try:
        r = shim_client(tls_proxy, shim, tmp_path, "%s#%s" % (user, asset),
                        pw, ["/rfx", "/nsc", "-compression", "/bpp:32"])
    finally:
        shim.close()
    print("codec IDs seen:", dict(shim.seen), "rewritten:", shim.rewritten,
          "errors:", shim.errors)
    assert shim.rewritten == 2, (shim.rewritten, shim.errors)
    assert shim.compressed == 0
    # the target's RemoteFX, in the client's numbering only
    assert shim.seen[1] > 0, (dict(shim.seen), r,
                              (tmp_path / "client.log").read_text()[-2000:])
    assert shim.seen[3] == 0, dict(shim.seen)
    assert set(shim.seen) <= {0, 1, 3}, dict(shim.seen)
    log = tls_proxy.log_text()
    assert "the client's surface codecs: NSCodec as ID 3, RemoteFX as " \
        "ID 1" in log, log[-3000:]
    assert (tmp_path / "before.png").exists(), \
        "no xfreerdp window: %s\n%s" % (r, (tmp_path / "client.log")
                                        .read_text()[-2000:])
    assert near(pixel(tmp_path / "before.png"), COLOUR), \
        pixel(tmp_path / "before.png")
    row = tls_proxy.session_of(user, kind="rdp", result="ok")
    assert row["bytes_down"] > 0, row
    if recorded:
        screen = screen_at(read_rdprec(check_row_file(row)))
        assert near(rgb_at(screen, 800, 650), COLOUR), \
            rgb_at(screen, 800, 650)


class SurfTarget(ProgramTarget):
    """rdp-surf-target (a hostile target's surface bits)."""
    EXE = "rdp-surf-target"
    OUT = "surf.txt"


@pytest.fixture
def surf_target(tmp_path):
    t = SurfTarget(tmp_path / "target").start()
    yield t
    t.stop()


def test_codecs_not_offered_never_reach_the_client(tls_proxy, surf_target,
                                                   tmp_path):
    """The hostile target's surface bits under IDs the client never
    announced (xfreerdp /bpp:32: surface commands, no codec) are not
    sent to it: the shim sees only ID 0, xfreerdp shows the target's
    plain teal screen and logs no codec failure, the proxy logs the
    refusals, and the session ends as the client leaves."""
    asset = rdp_asset(tls_proxy, surf_target)
    user, pw = rdp_user(tls_proxy, asset)
    since = len(tls_proxy.log_text())
    shim = CodecShim(tmp_path / "shim", tls_proxy.rdp_port, {})
    try:
        r = shim_client(tls_proxy, shim, tmp_path, "%s#%s" % (user, asset),
                        pw, ["-compression", "/bpp:32"])
    finally:
        shim.close()
    print("codec IDs seen:", dict(shim.seen), "errors:", shim.errors)
    lines = surf_target.lines()
    # the back leg offered the target surface commands and no codec
    assert "offered 1 0 0 0 0" in lines and "sent" in lines, lines
    client_log = (tmp_path / "client.log").read_text(errors="replace")
    assert shim.seen[0] > 0, (dict(shim.seen), r, client_log[-2000:])
    assert set(shim.seen) == {0}, dict(shim.seen)
    assert "codecID" not in client_log and "RemoteFX" not in client_log, \
        client_log[-2000:]
    # after.png: before.png is taken once a twentieth of the screen is
    # lit, which can be before the strip at y=650 is drawn
    assert (tmp_path / "after.png").exists(), (r, client_log[-2000:])
    assert near(pixel(tmp_path / "after.png"), TEAL), \
        pixel(tmp_path / "after.png")
    row = tls_proxy.session_of(user, kind="rdp", result="ok")
    assert "client ended" in row["result"], row
    # the first refusal said at once, the others counted (rate-limited:
    # a target can send thousands a second) and said at the end
    log = tls_proxy.log_text()[since:]
    assert "a surface command with codec ID 66 from the target not sent " \
        "to the client (a codec the client was not offered)" in log, \
        log[-3000:]
    assert "more surface command(s) from the target not sent to the " \
        "client" in log, log[-3000:]


# rdp_surf_target.c's NSCodec picture: each quadrant's colour at a point
# well inside it, and the white square with a black one in it at (64, 64)
QUADS = [((256, 192), (220, 40, 40)), ((768, 192), (40, 200, 60)),
         ((256, 576), (40, 60, 220)), ((768, 576), (230, 200, 40))]
MARKS = [((70, 70), (255, 255, 255)), ((96, 96), (0, 0, 0)),
         ((120, 120), (255, 255, 255)), ((140, 140), (220, 40, 40))]
PICTURE = QUADS + MARKS


class NscTarget(SurfTarget):
    """rdp-surf-target sending its NSCodec picture (mode nsc), after a
    bitmap far larger than its rectangle (mode nsc-big)."""

    def __init__(self, workdir, mode):
        super().__init__(workdir)
        self.mode = mode

    def args(self):
        return [self.mode]


def picture_misses(at):
    """The points of PICTURE where at(x, y) is not the picture's colour
    (NSCodec loses some chroma: near()'s tolerance)."""
    return [(xy, want, at(*xy)) for xy, want in PICTURE
            if not near(at(*xy), want)]


def nsc_session(proxy, target, tmp_path, ids, recorded):
    """xfreerdp /nsc through the shim numbering its codecs as ids to the
    target: (shim, xfreerdp's result, user)."""
    asset = rdp_asset(proxy, target)
    if recorded:
        pw = "User-Pass-77"
        user = proxy.user_add(password=pw)
        proxy.allow(user, asset, native="record")
    else:
        user, pw = rdp_user(proxy, asset)
    shim = CodecShim(tmp_path / "shim", proxy.rdp_port, ids)
    try:
        r = shim_client(proxy, shim, tmp_path, "%s#%s" % (user, asset), pw,
                        ["/nsc", "-compression", "/bpp:32"])
    finally:
        shim.close()
    print("codec IDs seen:", dict(shim.seen), "rewritten:", shim.rewritten,
          "errors:", shim.errors, "xfreerdp:", r)
    return shim, r, user


def assert_picture_shown(proxy, target, tmp_path, user, r, recorded):
    """xfreerdp's screen (the screenshot taken 1.5 s after the first lit
    one: every strip drawn) shows the picture, and so does the
    recording's last screen; the session ended as the client left."""
    lines = target.lines()
    client_log = (tmp_path / "client.log").read_text(errors="replace")
    assert "sent" in lines, (lines, r, client_log[-2000:])
    shot = tmp_path / "after.png"
    assert shot.exists(), (r, client_log[-2000:])
    assert picture_misses(lambda x, y: pixel(shot, x, y)) == []
    assert "NSCodec" not in client_log, client_log[-2000:]
    row = proxy.session_of(user, kind="rdp", result="ok")
    assert "client ended" in row["result"], row
    if recorded:
        screen = screen_at(read_rdprec(check_row_file(row)))
        assert picture_misses(lambda x, y: rgb_at(screen, x, y)) == []
        # the repo's own renderer: `portcullis session frame`'s PNG
        png = tmp_path / "frame.png"
        proxy.cli("session", "frame", row["id"], "--output", str(png))
        assert picture_misses(lambda x, y: pixel(png, x, y)) == []
    return row


@pytest.mark.parametrize("numbering,recorded", [
    ("client", False), ("client", True), ("freerdp", False)],
    ids=["renumbered-relayed", "renumbered-recorded", "same-ids-relayed"])
def test_nscodec_picture_reaches_the_client(tls_proxy, tmp_path, numbering,
                                            recorded):
    """A target's NSCodec (FreeRDP's encoder, under the ID the back leg
    announced, 1) reaches a client numbering NSCodec 3 as 3 and never 1,
    and one numbering as FreeRDP does as 1; xfreerdp decodes it into the
    picture (its four quadrants and a black-in-white square at their
    places: neither flipped nor shifted). Recorded, the recorder's
    decoder (FreeRDP's gdi on the back leg) draws the same picture into
    the recording."""
    target = NscTarget(tmp_path / "target", "nsc").start()
    try:
        ids = SWAPPED if numbering == "client" else {}
        shim, r, user = nsc_session(tls_proxy, target, tmp_path, ids,
                                    recorded)
    finally:
        target.stop()
    # the back leg offered the target NSCodec under FreeRDP's ID
    assert "offered 1 1 1 0 0" in target.lines(), target.lines()
    nsc_id = 3 if numbering == "client" else 1
    assert shim.rewritten == (1 if numbering == "client" else 0)
    assert shim.errors == [] and shim.compressed == 0, shim.errors
    assert shim.seen[nsc_id] >= 12, dict(shim.seen)
    assert set(shim.seen) == {nsc_id}, dict(shim.seen)
    assert_picture_shown(tls_proxy, target, tmp_path, user, r, recorded)


@pytest.mark.parametrize("recorded", [False, True],
                         ids=["relayed", "recorded"])
def test_nscodec_bitmap_larger_than_its_rectangle_goes_nowhere(
        tls_proxy, tmp_path, recorded):
    """A hostile target's NSCodec command whose bitmap (1024x4096) is far
    larger than its 8x8 rectangle at the screen's corner, which FreeRDP
    2.11's decoder would copy whole past the end of the screen, is sent
    neither to the client nor to the recorder's decoder: the proxy logs
    it, the picture after it is shown and recorded, its corner is not
    white, and the session ends as the client leaves (before: the
    recorded session's child died; relayed, xfreerdp did)."""
    since = len(tls_proxy.log_text())
    target = NscTarget(tmp_path / "target", "nsc-big").start()
    try:
        shim, r, user = nsc_session(tls_proxy, target, tmp_path, SWAPPED,
                                    recorded)
    finally:
        target.stop()
    log = tls_proxy.log_text()[since:]
    assert "a surface command from the target not sent to the client " \
        "(an NSCodec bitmap of 1024x4096 for a rectangle of 8x8)" in log, \
        log[-3000:]
    # the picture's 12 strips, and not the hostile command
    assert shim.seen[3] == 12 * len([ln for ln in target.lines()
                                     if ln == "sent"]), dict(shim.seen)
    assert_picture_shown(tls_proxy, target, tmp_path, user, r, recorded)
    corner = pixel(tmp_path / "after.png", 1020, 764)
    assert near(corner, QUADS[3][1]), corner


def test_nscodec_recording_plays_in_the_web_player(tls_proxy, web_ui,
                                                  tmp_path):
    """The session page's player (Chromium, web/e2e/rdprec.mjs, as
    test_rdp_record.py drives it) shows a recorded NSCodec session: the
    picture's blue bottom left quadrant where it was drawn (flipped, it
    would be red), as it plays and at the end."""
    target = NscTarget(tmp_path / "target", "nsc").start()
    try:
        _, r, user = nsc_session(tls_proxy, target, tmp_path, SWAPPED, True)
    finally:
        target.stop()
    row = assert_picture_shown(tls_proxy, target, tmp_path, user, r, True)
    tls_proxy.wait_http()
    (x, y), blue = QUADS[2]
    cfg = {"url": "http://127.0.0.1:%d" % tls_proxy.http_port,
           "user": tls_proxy.admin_user,
           "password": tls_proxy.admin_password,
           "session_id": row["id"], "x": x, "y": y,
           "screenshots": os.environ.get("PORTCULLIS_SCREENSHOTS")}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    r = run(["node", "e2e/rdprec.mjs", str(path)], cwd=WEB, timeout=120)
    assert r.rc == 0, r
    res = json.loads(r.out.strip().splitlines()[-1])
    for at in ("playing", "last"):
        assert (res[at]["width"], res[at]["height"]) == (1024, 768), res
        assert near(tuple(res[at]["rgb"]), blue), res


class HostileSession:
    """What hostile_recorded_session saw: the target's lines, the client's
    and the proxy's log (since the session began), the user, the shim."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def hostile_recorded_session(tls_proxy, tmp_path, mode):
    """One recorded session of a new user through the shim to an
    NscTarget in mode (whose hostile update comes before its teal
    screen), xfreerdp at 32 bpp without compression; fails unless the
    target got as far as sending."""
    since = len(tls_proxy.log_text())
    target = NscTarget(tmp_path / "target", mode).start()
    asset = rdp_asset(tls_proxy, target)
    pw = "User-Pass-77"
    user = tls_proxy.user_add(password=pw)
    tls_proxy.allow(user, asset, native="record")
    shim = CodecShim(tmp_path / "shim", tls_proxy.rdp_port, {})
    try:
        r = shim_client(tls_proxy, shim, tmp_path, "%s#%s" % (user, asset),
                        pw, ["-compression", "/bpp:32"])
        # the row closed before the target is stopped: stopped at once,
        # the target's end could be seen before the client's (CI: "the
        # target ended the session" 0.25 s after xfreerdp was killed)
        tls_proxy.session_of(user, kind="rdp")
    finally:
        shim.close()
        target.stop()
    h = HostileSession(
        lines=target.lines(), user=user, shim=shim, result=r,
        client_log=(tmp_path / "client.log").read_text(errors="replace"),
        log=tls_proxy.log_text()[since:])
    assert "sent" in h.lines, (h.lines, r, h.client_log[-2000:])
    return h


def test_bitmap_of_a_depth_no_decoder_takes_goes_nowhere(tls_proxy,
                                                          tmp_path):
    """A hostile target's "not encoded" bitmap of 1 bit per pixel (16
    bytes for 1024x64), a depth FreeRDP's decoder does not take, which
    made it log an error for each of the bitmap's pixels (65,601 lines
    in the proxy's log from the recorder, as many in xfreerdp's: a
    target could fill the proxy's log at will), is sent neither to the
    client nor to the recorder: neither log has such a line, the proxy
    logs the refusal once, and the teal screen after it is shown and
    recorded."""
    h = hostile_recorded_session(tls_proxy, tmp_path, "bpp1")
    client_log, log, user = h.client_log, h.log, h.user
    assert "Unsupported" not in log, "%d lines: %s" % (
        log.count("\n"), log[-1000:])
    assert "Unsupported" not in client_log, client_log[-1000:]
    assert "a surface command from the target not sent to the client " \
        "(a bitmap of 1 bits per pixel, a depth no decoder takes)" in log, \
        log[-3000:]
    assert near(pixel(tmp_path / "after.png"), TEAL), \
        pixel(tmp_path / "after.png")
    row = tls_proxy.session_of(user, kind="rdp", result="ok")
    assert "client ended" in row["result"], row
    screen = screen_at(read_rdprec(check_row_file(row)))
    assert near(rgb_at(screen, 800, 650), TEAL), rgb_at(screen, 800, 650)


def test_planar_bitmap_taller_than_the_desktop_goes_nowhere(tls_proxy,
                                                           tmp_path):
    """A hostile target's Bitmap Update whose one rectangle (64x64 at the
    screen's corner) has a 64x2048 planar bitmap (32 bpp, run-length, a
    few KB), which FreeRDP 2.11's planar decoder writes into a scratch
    buffer of the 1024x768 desktop's size unchecked, 3.5 MB past its end,
    is sent neither to the client nor to the recorder's decoder: the
    shim sees no Bitmap Update, the proxy logs the refusal, and the teal
    screen after it is shown and recorded (before: the recorded
    session's child died, SIGSEGV; under the ASan build, which does not
    see into the uninstrumented libfreerdp2, it died of SEGV in
    libavutil as it ended; xfreerdp got the update)."""
    h = hostile_recorded_session(tls_proxy, tmp_path, "planar-big")
    lines, log, user, shim = h.lines, h.log, h.user, h.shim
    print("target:", lines, "bitmap updates seen:", shim.bitmaps,
          "errors:", shim.errors)
    assert [ln for ln in lines if ln.startswith("planar ")], lines
    assert "a bitmap update from the target not sent to the client (a " \
        "planar bitmap of 64x2048 for a desktop of 1024x768)" in log, \
        log[-3000:]
    assert shim.bitmaps == 0, shim.bitmaps
    assert near(pixel(tmp_path / "after.png"), TEAL), \
        pixel(tmp_path / "after.png")
    row = tls_proxy.session_of(user, kind="rdp", result="ok")
    assert "client ended" in row["result"], row
    screen = screen_at(read_rdprec(check_row_file(row)))
    for x, y in ((32, 32), (800, 650)):
        assert near(rgb_at(screen, x, y), TEAL), (x, y, rgb_at(screen, x, y))


def test_drawing_order_not_offered_ends_the_session(tls_proxy, tmp_path):
    """A hostile target's Cache Brush order (a secondary drawing order),
    which the back leg never asked for (it announces no drawing order and
    no cache) and FreeRDP 2.11's client takes whatever it announced (its
    check_secondary_order_supported lets every Cache Brush through, and
    the target's own Demand Active can switch on glyph, offscreen,
    nine-grid and GDI+ orders in the back leg's settings), is refused
    before FreeRDP parses it: the proxy logs it, the session ends with
    that reason in its row, and the client never gets the teal screen
    after it (before: the recorder's gdi put the brush in its cache and
    the session went on)."""
    since = len(tls_proxy.log_text())
    target = NscTarget(tmp_path / "target", "brush").start()
    asset = rdp_asset(tls_proxy, target)
    pw = "User-Pass-77"
    user = tls_proxy.user_add(password=pw)
    tls_proxy.allow(user, asset, native="record")
    shim = CodecShim(tmp_path / "shim", tls_proxy.rdp_port, {})
    try:
        r = shim_client(tls_proxy, shim, tmp_path, "%s#%s" % (user, asset),
                        pw, ["-compression", "/bpp:32"])
    finally:
        shim.close()
        target.stop()
    lines = target.lines()
    log = tls_proxy.log_text()[since:]
    print("target:", lines, "xfreerdp:", r)
    assert "brush" in lines, (lines, r)
    why = "the target sent a drawing order the proxy did not offer " \
        "(secondary order Cache Brush)"
    assert why in log, log[-3000:]
    row = tls_proxy.session_of(user, kind="rdp", result="error")
    assert row["result"] == "error: " + why, row
    shot = tmp_path / "after.png"
    assert not shot.exists() or not near(pixel(shot), TEAL), shot


def test_pointer_past_the_clients_cache_goes_nowhere(tls_proxy, tmp_path):
    """A hostile target's Cached Pointer Update naming cache index 25,
    past the 20 entries xfreerdp announced (and the back leg, announcing
    the client's size, announced to the target), is not sent to the
    client, which FreeRDP's client side would have let through: xfreerdp
    logs no invalid pointer index, the proxy logs the refusal, the New
    Pointer before it (index 1) and the teal screen after it are shown,
    and the session ends as the client leaves (before: xfreerdp got it,
    logged "invalid pointer index:25" and ended the session)."""
    h = hostile_recorded_session(tls_proxy, tmp_path, "pointer")
    lines, log, client_log, user = h.lines, h.log, h.client_log, h.user
    assert "pointer 20" in lines, lines
    assert "invalid pointer index" not in client_log, client_log[-2000:]
    assert "a pointer update from the target not sent to the client " \
        "(cache index 25, the client's cache has 20)" in log, log[-3000:]
    assert "a pointer update from the target not sent to the client " \
        "(cache index 1" not in log, log[-3000:]
    assert near(pixel(tmp_path / "after.png"), TEAL), \
        pixel(tmp_path / "after.png")
    row = tls_proxy.session_of(user, kind="rdp", result="ok")
    assert "client ended" in row["result"], row
