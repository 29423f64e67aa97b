"""[rdp] compression (docs/operations.md "RDP"): bulk compression of what
the proxy sends to the client. On (the default), the client's request is
honoured, as a direct connection to Windows would; off, the client is
sent uncompressed PDUs, which costs bandwidth and saves the proxy most of
its CPU (bench/README.md "Issue 17: RDP"). Either way xfreerdp shows the
target's desktop. The desktop here is a fine pattern that the codecs'
run-length coding leaves large and bulk compression makes small, so the
report rows' bytes show which way each session went."""

import pytest

from test_rdp import (RdpTarget, pytestmark, rdp_asset, rdp_user,  # noqa: F401
                      run_client, start_rdp_proxy, stop_rdp_proxy)


@pytest.fixture(scope="module")
def patterned(tmp_path_factory):
    t = RdpTarget(tmp_path_factory.mktemp("rdppattern"),
                  background=["pattern:hexagons"]).start()
    yield t
    t.stop()


def proxy(tmp_path, compression):
    conf = {} if compression == "default" else {"compression": compression}
    return start_rdp_proxy(tmp_path / ("pc-" + compression), **conf)


def session_bytes(p, target, out):
    asset = rdp_asset(p, target)
    user, pw = rdp_user(p, asset)
    # classic updates (/bpp: no graphics pipeline), which bulk compression
    # makes small; H.264 frames on GFX are compressed already
    r, _ = run_client(p, out, "%s#%s" % (user, asset), pw, text="x",
                      extra=["/bpp:32"])
    assert (out / "before.png").exists(), \
        "no xfreerdp window: %s\n%s" % (r, (out / "client.log")
                                        .read_text()[-2000:])
    row = p.session_of(user, kind="rdp", result="ok")
    return row["bytes_down"]


def test_compression_off_sends_more_and_still_works(patterned, tmp_path):
    got = {}
    for mode in ("default", "false"):
        p = proxy(tmp_path, mode)
        try:
            got[mode] = session_bytes(p, patterned, tmp_path / mode)
        finally:
            stop_rdp_proxy(p)
    print("bytes to the client:", got)
    assert got["false"] > 2 * got["default"], got

