"""Files on the RDP proxy's clipboard (docs/rdp.md "Virtual channels"),
end to end: a file copied on the client is read by the target through
the proxy with rdp_clipboard_files on, and nothing of it crosses with
files off (the default); a hostile target's File Contents Requests for
streams it was never offered are refused either way.

The client is xfreerdp with its real X11 clipboard: a text/uri-list
naming the file is put on its X clipboard with xclip (FreeRDP 2.11's
X11 client turns that into FileGroupDescriptorW when the server says it
takes file streams, and answers File Contents Requests from the file).
The target is tests/e2e/rdp_clip_target.c: it asks for the file list,
then for the first file's size (FILECONTENTS_SIZE) and its bytes, 64 KiB
a request (FILECONTENTS_RANGE), and writes the SHA-256 of what it got.

The other direction (a file copied on the target, read by the client)
needs a client that reads a server's file contents, which xfreerdp
2.11's X11 client does only through a FUSE file system Debian's build
leaves out (the xfreerdp here is not linked with libfuse: a paste gives
names, never contents). There the client is tests/e2e/rdp_clip_client.c,
which speaks the client side of the clipboard channel by hand (and
asks, as a hostile client, for files never offered), and the target
offers a file (rdp_clip_target.c with CT_OFFER_FILE).
"""
import hashlib
import os
import re

import pytest

from pclib import build_dir, run, uniq
from test_rdp import rdp_asset, rdp_proxy  # noqa: F401 (the fixture)
from test_rdp_clipboard import TOOLS, ClipTarget, clip_client, clip_user, \
    formats_seen, pytestmark, proxy_log  # noqa: F401

SIZE = 300 * 1024 + 123  # five ranges of 64 KiB and a short one


def copied_file(tmp_path):
    src = tmp_path / "client-files"
    src.mkdir()
    name = "report-%s.bin" % uniq("f")
    data = os.urandom(SIZE)
    (src / name).write_bytes(data)
    return src / name, data


def run_copy(pc, target, tmp_path, flags, want):
    asset = rdp_asset(pc, target)
    user, pw = clip_user(pc, asset, flags=flags)
    path, data = copied_file(tmp_path)
    clip_client(pc, tmp_path / "c", "%s#%s" % (user, asset), pw, target,
                "file://%s\n" % path, want=want, wait=15,
                ctype="text/uri-list")
    return user, path, data


def file_lines(target):
    return [ln for ln in target.lines()
            if ln.split(" ")[0] in ("files", "size", "file", "contents")]


def test_file_copied_on_the_client_read_by_the_target(rdp_proxy, tmp_path):
    """rdp_clipboard_files on: the target gets the file list, the file's
    size and all its bytes (five ranges), the same SHA-256 as the file on
    the client. A hostile target (CT_HOSTILE) also asks for stream 85
    before any file was offered and for the file past the end of the
    list: neither request reaches the client (xfreerdp would answer each
    with a failure), and the proxy logs the refusals."""
    target = ClipTarget(tmp_path / "target", hostile=True).start()
    try:
        user, path, data = run_copy(rdp_proxy, target, tmp_path,
                                    ["--rdp-clipboard-files"], want="file")
        lines = file_lines(target)
        name = path.name
        assert "files 1 %s %d" % (name, SIZE) in lines, target.lines()
        assert "size %d" % SIZE in lines, lines
        digest = hashlib.sha256(data).hexdigest()
        assert "file %s %d %s 5" % (name, SIZE, digest) in lines, lines
        # the requests for streams never offered got no answer at all
        assert not [ln for ln in lines if ln.startswith("contents ")], lines
        assert proxy_log(rdp_proxy, r"clipboard: file contents of a file the "
                         r"other side did not offer from the target refused")
        assert proxy_log(rdp_proxy, r"%s: clipboard allowed \(channel cliprdr "
                         r"relayed\)" % re.escape(user))
        rdp_proxy.session_of(user, kind="rdp", result="ok")
    finally:
        target.stop()


def test_file_not_copied_with_files_off(rdp_proxy, tmp_path):
    """rdp_clipboard_files off (the default): the client is told the
    target takes no file streams and offers no file format, and the
    hostile target's File Contents Request never reaches it."""
    target = ClipTarget(tmp_path / "target", hostile=True).start()
    try:
        user, _, _ = run_copy(rdp_proxy, target, tmp_path, [], want=None)
        seen = formats_seen(target)
        assert not any(re.search(r"FileGroupDescriptor|FileContents|uri-list",
                                 ln) for ln in seen), seen
        assert file_lines(target) == [], target.lines()
        assert proxy_log(rdp_proxy, r"clipboard: files on the clipboard \(the "
                         r"access profile refuses them\) from the target "
                         r"refused")
        assert proxy_log(rdp_proxy, r"%s: clipboard allowed \(channel cliprdr "
                         r"relayed, files refused\)" % re.escape(user))
        rdp_proxy.session_of(user, kind="rdp", result="ok")
    finally:
        target.stop()


@pytest.mark.parametrize("files", [True, False])
def test_file_copied_on_the_target_read_by_the_client(rdp_proxy, tmp_path,
                                                      files):
    """The target offers a file of 300 KiB on its clipboard; the client
    (rdp-clip-client, by hand) asks for the list, the size and the bytes.
    With rdp_clipboard_files it gets the file whole (the same SHA-256);
    without, the target's list reaches it without the file formats and
    it asks for nothing. Either way its requests for stream 85 (before
    any list) and 102 (past the end of the list) never reach the target
    (it writes "asked" for each request it gets)."""
    src = tmp_path / "target-files"
    src.mkdir()
    path = src / ("offered-%s.bin" % uniq("f"))
    data = os.urandom(SIZE)
    path.write_bytes(data)
    target = ClipTarget(tmp_path / "target", offer_file=path).start()
    try:
        asset = rdp_asset(rdp_proxy, target)
        user, pw = clip_user(rdp_proxy, asset,
                             flags=["--rdp-clipboard-files"] if files else [])
        exe = build_dir() / "tests" / "e2e" / "rdp-clip-client"
        assert exe.exists(), "build the tests (meson -Dtests=true)"
        r = run([str(exe), str(rdp_proxy.rdp_port), "%s#%s" % (user, asset),
                 pw], timeout=60)
        lines = r.out.splitlines()
        assert lines and lines[-1] == "done", r
        formats = [ln for ln in lines if ln.startswith("formats ")]
        asked = [ln for ln in target.lines() if ln.startswith("asked ")]
        if files:
            assert formats == ["formats %d:FileGroupDescriptorW,%d:FileContents"
                               % (0xc0a0, 0xc0a1)], r
            assert "files 1 %s %d" % (path.name, SIZE) in lines, r
            digest = hashlib.sha256(data).hexdigest()
            assert "file %s %d %s 5" % (path.name, SIZE, digest) in lines, r
            assert {a.split()[1] for a in asked} == {"1", "2"}, asked
            why = r"file contents of a file the other side did not offer"
        else:
            assert formats == ["formats "], r
            assert not [ln for ln in lines if ln.startswith("file")], r
            assert asked == [], asked
            why = r"files on the clipboard \(the access profile refuses them\)"
        # the client's requests for streams never offered: no answer
        assert not [ln for ln in lines if ln.startswith("contents ")], r
        assert proxy_log(rdp_proxy, r"clipboard: %s from the client refused"
                         % why)
        rdp_proxy.session_of(user, kind="rdp", result="ok")
    finally:
        target.stop()
