"""What the RDP proxy's back leg announces to the target, and what it
does with what it did not announce (docs/rdp.md, "What the back leg
announces", "Drawing orders, pointers, palettes and frame markers").

FreeRDP 2.11's client reads the target's Demand Active into the same
settings it writes its Confirm Active from, one right after the other,
and writes some capability sets from its own defaults whatever it was
told: a Windows server's Bitmap Cache Host Support set turned on
persistent bitmap keys in the back leg's Confirm Active, and every
Confirm Active announced a five-cell bitmap cache, both of which invite
the target to send cache orders that the proxy refuses (ending the
session). The proxy makes its Confirm Active announce only what it takes.

No Windows server is here, so a shim stands between the back leg and a
FreeRDP test target (rdp-surf-target: TLS security, so a man in the
middle can read and change the PDUs inside TLS): it adds to the target's
Demand Active the sets a Windows server sends (Bitmap Cache Host
Support, GDI+, Remote Programs, Window List, Desktop Composition),
records the Confirm Active the back leg sends, and, as a server may,
sends a Cache Bitmap V2 order once the session runs if the back leg
announced a bitmap cache. With the shim it also sends a primary order
(DstBlt) the back leg never announced, which FreeRDP refuses itself:
the session's result must say so in the proxy's words. A Demand Active
with sets only a client sends (Glyph Cache, Offscreen, DrawNineGrid) is
refused by FreeRDP, and the result says that too.

A client that announces no pointer cache (a shim between xfreerdp and
the proxy sets its Pointer set's sizes to 0) must get no pointer update
that names a cache entry.
"""
import socket
import ssl
import struct
import threading
from pathlib import Path

import pytest

from pclib import run
from test_rdp import (near, pixel, pytestmark,  # noqa: F401
                      rdp_asset, rdp_user, run_client, start_rdp_proxy,
                      stop_rdp_proxy)
from test_rdp_codec_ids import (TEAL, CodecShim, SurfTarget, recv_tpkt,
                                shim_client, tls_frames)

# [MS-RDPBCGR] 2.2.1.13.1.1.1 capabilitySetType
CAPSET = {"order": 0x03, "bitmap_cache": 0x04, "pointer": 0x08,
          "brush": 0x0F, "glyph": 0x10, "offscreen": 0x11,
          "host_support": 0x12, "bitmap_cache_v2": 0x13, "ninegrid": 0x15,
          "gdiplus": 0x16, "rail": 0x17, "window": 0x18, "compdesk": 0x19,
          "surface": 0x1C}
SURFCMDS = 0x02 | 0x40 | 0x10   # set and stream surface bits, frame marker

# what a Windows server's Demand Active carries beyond FreeRDP's own
WINDOWS_SETS = [
    # Bitmap Cache Host Support: cache version 2 (persistent keys)
    (CAPSET["host_support"], bytes([1, 0, 0, 0])),
    # GDI+: supported, version, cache level one, cache sizes
    (CAPSET["gdiplus"], struct.pack("<III", 1, 0x0A0C, 1) + bytes(24)),
    # Remote Programs: RAIL supported; Window List: windows, icon caches
    (CAPSET["rail"], struct.pack("<I", 1)),
    (CAPSET["window"], struct.pack("<IBH", 2, 3, 12)),
    # Desktop Composition: supported
    (CAPSET["compdesk"], struct.pack("<H", 1)),
]


def slow_path(frame, want_type):
    """A slow-path PDU's Share Control Header: (offset of its body after
    the header, MCS header bytes 7..12, pduSource) when frame is a TPKT
    whose share control pduType is want_type (1 Demand Active, 3 Confirm
    Active, 7 data), else None."""
    if len(frame) < 21 or frame[0] != 3 or frame[4:7] != b"\x02\xf0\x80":
        return None
    at = 15 if frame[13] & 0x80 else 14
    if len(frame) < at + 6:
        return None
    ptype = struct.unpack("<H", bytes(frame[at + 2:at + 4]))[0]
    if ptype & 0x0F != want_type:
        return None
    return at + 6, bytes(frame[7:13]), bytes(frame[at + 4:at + 6])


def caps_of(frame, want_type):
    """The capability sets of a Demand (1) or Confirm (3) Active PDU:
    (offset of numberCapabilities, [(type, offset of body, body)]), or
    None for another PDU."""
    sp = slow_path(frame, want_type)
    if sp is None:
        return None
    at = sp[0]
    if want_type == 3:
        at += 6   # shareId, originatorId
    else:
        at += 4   # shareId
    src_len, _ = struct.unpack("<HH", bytes(frame[at:at + 4]))
    at += 4 + src_len
    n_at = at
    n = struct.unpack("<H", bytes(frame[at:at + 2]))[0]
    at += 4
    sets = []
    for _ in range(n):
        t, ln = struct.unpack("<HH", bytes(frame[at:at + 4]))
        sets.append((t, at + 4, bytes(frame[at + 4:at + ln])))
        at += ln
    return n_at, sets


def with_sets(frame, extra):
    """A Demand Active frame with the sets extra [(type, body)] added
    after its others (before its sessionId): every length in front of
    them (TPKT, MCS, Share Control, lengthCombinedCapabilities) and
    numberCapabilities grown to fit."""
    n_at, sets = caps_of(frame, 1)
    end = sets[-1][1] + len(sets[-1][2])
    add = b"".join(struct.pack("<HH", t, len(b) + 4) + b for t, b in extra)
    f = bytearray(frame[:end]) + add + bytearray(frame[end:])
    grow = len(add)
    assert f[13] & 0x80, "a Demand Active has a 2-byte MCS length"
    struct.pack_into(">H", f, 2, len(f))
    mcs = ((f[13] & 0x3F) << 8 | f[14]) + grow
    f[13], f[14] = 0x80 | (mcs >> 8), mcs & 0xFF
    total = struct.unpack("<H", bytes(f[15:17]))[0] + grow
    struct.pack_into("<H", f, 15, total)
    # lengthCombinedCapabilities: 2 bytes before the sourceDescriptor's
    # length's end; numberCapabilities at n_at
    src_len = struct.unpack("<H", bytes(f[25:27]))[0]
    comb = struct.unpack("<H", bytes(f[27:29]))[0] + grow
    assert 29 + src_len == n_at, (src_len, n_at)
    struct.pack_into("<H", f, 27, comb)
    struct.pack_into("<H", f, n_at, len(sets) + len(extra))
    return f


def update_pdu(demand, share_id, orders):
    """A slow-path Update PDU of orders (TS_UPDATE_ORDERS, one order in
    the bytes given) from the server, its MCS header and pduSource those
    of the server's Demand Active."""
    _, mcs_hdr, source = demand
    data = (struct.pack("<HHHH", 0, 0, 1, 0)   # ORDERS, pad, 1 order, pad
            + orders)
    share_data = struct.pack("<IBBHBBH", share_id, 0, 1, len(data) + 4,
                             2, 0, 0) + data   # PDUTYPE2_UPDATE
    body = struct.pack("<HH", len(share_data) + 6, 0x17) + source \
        + share_data
    mcs = bytes([0x68]) + mcs_hdr[1:5] + bytes([0x70, 0x80 | (len(body)
                                                              >> 8),
                                                len(body) & 0xFF]) + body
    x224 = b"\x02\xf0\x80" + mcs
    return struct.pack(">BBH", 3, 0, len(x224) + 4) + x224


# a Cache Bitmap V2 order (secondary, uncompressed: type 4) of 16 bytes
# of body: orderLength is the body's length less 7
CACHE_BITMAP_V2 = struct.pack("<BHHB", 0x03, 16 - 7, 0, 0x04) + bytes(16)
# a DstBlt (primary, type 0): TS_STANDARD | TS_TYPE_CHANGE, then fields
DSTBLT = bytes([0x09, 0x00, 0x1F, 0, 0, 0, 0, 8, 0, 8, 0, 0xFF])


class BackShim:
    """The proxy's back leg -> shim -> target, TLS ended here on both
    sides: the target's Demand Active gets the sets `extra`; the back
    leg's Confirm Actives are kept (self.confirms: {type: body}); before
    the target's first fast-path update, order(confirm) may give the
    bytes of one order to send first (self.sent_order says it did)."""

    def __init__(self, workdir, target_port, extra, order=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.target_port = target_port
        self.extra = extra
        self.order = order
        self.confirms = []
        self.demand_types = []
        self.sent_order = False
        self.errors = []
        cert, key = self.dir / "shim.crt", self.dir / "shim.key"
        r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-subj", "/CN=backshim", "-days", "2", "-keyout", str(key),
                 "-out", str(cert)])
        assert r.rc == 0, r
        self.sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.sctx.load_cert_chain(str(cert), str(key))
        self.cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.cctx.check_hostname = False
        self.cctx.verify_mode = ssl.CERT_NONE
        for ctx in (self.sctx, self.cctx):   # as CodecShim: TLS 1.2
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
        self.thread.join(10)

    def _serve(self):
        try:
            c, _ = self.ls.accept()
        except OSError:
            return
        try:
            self._relay(c)
        except (ssl.SSLEOFError, ConnectionError):
            pass   # a side closed without TLS's close_notify: the end
        except Exception as e:  # noqa: BLE001 (reported by the test)
            self.errors.append(repr(e))
        finally:
            c.close()

    def _relay(self, c):
        u = socket.create_connection(("127.0.0.1", self.target_port))
        u.sendall(recv_tpkt(c))      # X.224 Connection Request
        cc = recv_tpkt(u)            # Connection Confirm: TLS chosen
        c.sendall(cc)
        assert cc[11] == 2 and struct.unpack("<I", cc[15:19])[0] == 1, \
            cc.hex()
        ts = self.cctx.wrap_socket(u)
        ps = self.sctx.wrap_socket(c, server_side=True)
        demand = share_id = None
        for s, f in tls_frames(ps, ts):
            if s is ps:
                got_caps = caps_of(f, 3)
                if got_caps is not None:
                    self.confirms.append(
                        {t: body for t, _, body in got_caps[1]})
                ts.sendall(f)
                continue
            if caps_of(f, 1) is not None:
                demand = slow_path(f, 1)
                share_id = struct.unpack(
                    "<I", bytes(f[demand[0]:demand[0] + 4]))[0]
                self.demand_types = [t for t, _, _ in caps_of(f, 1)[1]]
                f = with_sets(f, self.extra)
            elif (f[0] != 3 and self.order and self.confirms
                  and not self.sent_order):
                self.sent_order = True
                o = self.order(self.confirms[-1])
                if o:
                    ps.sendall(update_pdu(demand, share_id, o))
                else:
                    self.sent_order = False
                    self.order = None
            ps.sendall(f)


@pytest.fixture(scope="module")
def caps_proxy(tmp_path_factory):
    p = start_rdp_proxy(tmp_path_factory.mktemp("rdpcaps"),
                        tls_logins="true", compression="false")
    yield p
    stop_rdp_proxy(p)


def shimmed_session(proxy, tmp_path, extra, order=None, mode="junk"):
    """One session of a new user, xfreerdp (NLA, 32 bpp, no compression)
    through the proxy, its back leg through a BackShim to an
    rdp-surf-target in mode: (shim, target lines, xfreerdp's result,
    user, the proxy's log since)."""
    since = len(proxy.log_text())
    target = SurfTarget(tmp_path / "target")
    target.args = lambda: [mode]
    target.start()
    shim = BackShim(tmp_path / "backshim", target.port, extra, order)
    try:
        asset = rdp_asset(proxy, target, port=str(shim.port))
        user, pw = rdp_user(proxy, asset)
        r, _ = run_client(proxy, tmp_path, "%s#%s" % (user, asset), pw,
                          text="x", extra=["-compression", "/bpp:32"])
        # the row closed before the target is stopped (or its end could
        # be seen before the client's)
        proxy.session_of(user, kind="rdp")
    finally:
        shim.close()
        target.stop()
    print("demand:", shim.demand_types, "confirms:", shim.confirms,
          "order sent:", shim.sent_order, "errors:", shim.errors)
    return shim, target.lines(), r, user, proxy.log_text()[since:]


def cache_bitmap_if_announced(confirm):
    """As a server may: a Cache Bitmap V2 order when the client announced
    a bitmap cache (cells in its Bitmap Cache Rev. 2 set)."""
    bc2 = confirm.get(CAPSET["bitmap_cache_v2"], b"")
    return CACHE_BITMAP_V2 if len(bc2) >= 4 and bc2[3] > 0 else None


def test_confirm_active_announces_only_what_the_proxy_takes(caps_proxy,
                                                            tmp_path):
    """To a target whose Demand Active carries what a Windows server's
    does (Bitmap Cache Host Support, GDI+, Remote Programs, Window List,
    Desktop Composition), the back leg's Confirm Active announces no
    bitmap cache (no cell, no persistent keys), no drawing order, no
    brush or glyph cache, no offscreen, nine-grid, GDI+ or window
    support, and no surface command beyond FreeRDP's own; a target that
    would fill an announced bitmap cache sends nothing, and the session
    runs to the client's end with the target's teal screen shown
    (before: FreeRDP's five cells and the target's persistent keys were
    announced, the target's Cache Bitmap V2 order came and the proxy
    ended the session refusing it)."""
    shim, lines, r, user, log = shimmed_session(
        caps_proxy, tmp_path, WINDOWS_SETS, cache_bitmap_if_announced)
    assert shim.errors == [], shim.errors
    assert CAPSET["surface"] in shim.demand_types, shim.demand_types
    assert len(shim.confirms) == 1, shim.confirms
    ca = shim.confirms[0]
    bc2 = ca[CAPSET["bitmap_cache_v2"]]
    assert bc2[3] == 0 and bc2[0] & 0x01 == 0, bc2.hex()
    assert bc2[:24] == bytes(24), bc2.hex()
    assert ca[CAPSET["order"]][32:64] == bytes(32), ca[CAPSET["order"]].hex()
    assert ca[CAPSET["brush"]][:4] == bytes(4)
    assert ca[CAPSET["glyph"]][:46] == bytes(46)
    for name in ("offscreen", "ninegrid", "gdiplus", "rail", "window",
                 "compdesk", "bitmap_cache"):
        body = ca.get(CAPSET[name])
        assert body is None or body == bytes(len(body)), (name, body)
    surf = struct.unpack("<I", ca[CAPSET["surface"]][:4])[0]
    assert surf & ~SURFCMDS == 0, hex(surf)
    assert not shim.sent_order
    assert "sent" in lines, (lines, r)
    client_log = (tmp_path / "client.log").read_text(errors="replace")
    assert (tmp_path / "after.png").exists(), (r, client_log[-2000:])
    assert near(pixel(tmp_path / "after.png"), TEAL), \
        pixel(tmp_path / "after.png")
    assert "drawing order" not in log, log[-3000:]
    row = caps_proxy.session_of(user, kind="rdp", result="ok")
    assert "client ended" in row["result"], row


def test_primary_order_not_offered_is_named(caps_proxy, tmp_path):
    """A primary order the back leg never announced (a DstBlt), which
    FreeRDP refuses itself before parsing it, ends the session with the
    proxy's words, as a secondary order's refusal does: the log line and
    the session's result name it (before: the result said the target
    had ended the session)."""
    shim, lines, r, user, log = shimmed_session(
        caps_proxy, tmp_path, [], lambda confirm: DSTBLT)
    assert shim.errors == [] and shim.sent_order, shim.errors
    why = "the target sent a drawing order the proxy did not offer " \
        "(primary order DstBlt)"
    assert why in log, log[-3000:]
    row = caps_proxy.session_of(user, kind="rdp", result="error")
    assert row["result"] == "error: " + why, row


class NoPointerCacheShim(CodecShim):
    """CodecShim whose client announces no pointer cache: the sizes of
    its Confirm Active's Pointer set (colorPointerCacheSize and
    pointerCacheSize) set to 0."""

    def _from_client(self, f):
        got = caps_of(f, 3)
        if got is None:
            return
        for t, at, body in got[1]:
            if t == CAPSET["pointer"]:
                f[at + 2:at + len(body)] = bytes(len(body) - 2)
                self.rewritten += 1


def test_client_without_pointer_cache_gets_no_cached_pointer(caps_proxy,
                                                             tmp_path):
    """A client that announces no pointer cache gets no pointer update
    that names a cache entry: the back leg tells the target it has none
    (it announced 20 before), and the hostile target's New Pointer (cache
    index 1) and Cached Pointer (index 25) are not sent to the client
    (before: both were, unchecked, and xfreerdp, whose own cache has 20,
    logged "invalid pointer index:25" and ended the session); the
    target's teal screen is shown and the session ends as the client
    leaves."""
    since = len(caps_proxy.log_text())
    target = SurfTarget(tmp_path / "target")
    target.args = lambda: ["pointer"]
    target.start()
    asset = rdp_asset(caps_proxy, target)
    user, pw = rdp_user(caps_proxy, asset)
    shim = NoPointerCacheShim(tmp_path / "shim", caps_proxy.rdp_port, {})
    try:
        r = shim_client(caps_proxy, shim, tmp_path, "%s#%s" % (user, asset),
                        pw, ["-compression", "/bpp:32"])
    finally:
        shim.close()
        target.stop()
    lines = target.lines()
    log = caps_proxy.log_text()[since:]
    client_log = (tmp_path / "client.log").read_text(errors="replace")
    print("target:", lines, "rewritten:", shim.rewritten, "xfreerdp:", r)
    assert shim.rewritten == 1, shim.errors
    assert "pointer 0" in lines, lines
    assert "invalid pointer index" not in client_log, client_log[-2000:]
    assert "a pointer update from the target not sent to the client " \
        "(cache index 1, the client announced no pointer cache)" in log, \
        log[-3000:]
    assert near(pixel(tmp_path / "after.png"), TEAL), \
        pixel(tmp_path / "after.png")
    row = caps_proxy.session_of(user, kind="rdp", result="ok")
    assert "client ended" in row["result"], row


# sets only a client sends ([MS-RDPBCGR] 2.2.7.1), which FreeRDP 2.11's
# client refuses to find in a Demand Active
CLIENT_ONLY_SETS = [
    (CAPSET["glyph"], bytes(40) + struct.pack("<I", 0) +
     struct.pack("<HH", 3, 0)),                          # GLYPH_SUPPORT_ENCODE
    (CAPSET["offscreen"], struct.pack("<IHH", 1, 7680, 2000)),
    (CAPSET["ninegrid"], struct.pack("<IHH", 2, 2560, 256)),
]


def test_demand_active_with_client_only_sets_is_refused(caps_proxy,
                                                        tmp_path):
    """A target whose Demand Active carries a Glyph Cache, Offscreen
    Bitmap Cache and DrawNineGrid Cache set (sets only a client sends,
    which would turn those orders on) gets no Confirm Active: FreeRDP
    2.11's client refuses such a Demand Active, the session ends with an
    error that says so (before: "the target refused the connection or
    the vaulted login"), and the proxy serves the next session."""
    shim, lines, r, user, log = shimmed_session(
        caps_proxy, tmp_path / "one", CLIENT_ONLY_SETS)
    assert shim.errors == [], shim.errors
    assert shim.confirms == [], shim.confirms
    assert "sent" not in lines, lines
    row = caps_proxy.session_of(user, kind="rdp", result="error")
    assert row["result"] == "error: the target's Demand Active announced " \
        "what only a client announces (Glyph Cache): the proxy's FreeRDP " \
        "refused it", row
    shim, lines, r, user, log = shimmed_session(caps_proxy, tmp_path / "two",
                                                [])
    assert "sent" in lines, (lines, r)
    row = caps_proxy.session_of(user, kind="rdp", result="ok")
    assert "client ended" in row["result"], row
