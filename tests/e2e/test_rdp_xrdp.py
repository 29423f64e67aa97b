"""The RDP proxy against xrdp (issue 17: "to xrdp with TLS"), a target
that speaks TLS only (`security_layer=tls`): no NLA. The proxy's back
leg offers NLA and TLS; against xrdp it must settle on TLS, send the
vaulted login in the Client Info PDU (xrdp then tries its session
manager with it), pin xrdp's certificate, and relay xrdp's screen.

xrdp runs here with an ini of the test's own (loopback port, the test's
certificate, its log in the test's directory, a login screen colour no
client draws by itself) and no session manager: xrdp takes the vaulted
login from the Client Info PDU, tries its session manager with it, fails
and shows its connection log window, which is what the client sees
through the proxy; xrdp's log shows the security protocol it chose.
xrdp's first pointer shape crashed the session child before
(`test_tls_only_target_through_the_proxy` is its regression test).
"""
import shutil
import subprocess

import pytest

from pclib import (free_port, self_signed_cert, stop_process,
                   wait_listen)
from test_rdp import (near, pixel, pytestmark, rdp_proxy,  # noqa: F401
                      rdp_user, run_client)

# xrdp's window colour (xrdp.ini grey=), which no client draws by itself
XRDP_GREY = (0x8b, 0x45, 0x13)
VAULT_USER = "xrdp-vaulted"


def start_xrdp(d, ini_values):
    """xrdp --nodaemon on a free loopback port, TLS only, with a
    certificate of its own and its log in d; ini_values: more xrdp.ini
    keys (a key already there takes the new value). Its port and
    directory are p.port and p.dir."""
    if shutil.which("xrdp") is None:
        pytest.skip("xrdp not installed (Debian 12 package xrdp; "
                    "scripts/install-deps installs it)")
    port = free_port()
    self_signed_cert(d / "cert.pem", d / "key.pem", "/CN=xrdp-test")
    values = {
        "port": "tcp://127.0.0.1:%d" % port,
        "security_layer": "tls",
        "certificate": str(d / "cert.pem"),
        "key_file": str(d / "key.pem"),
        "LogFile": str(d / "xrdp.log"),
        "EnableSyslog": "false",
        "fork": "false",
    }
    values.update(ini_values)
    ini, seen = [], False
    with open("/etc/xrdp/xrdp.ini") as f:
        for line in f.read().splitlines():
            key = line.split("=", 1)[0]
            if not line.startswith((";", "[", "#")) and key in values:
                line = "%s=%s" % (key, values[key])
            # only the first "port=" is the listener's (the modules'
            # come later)
            if line.startswith("port=tcp://"):
                line = "port=-1" if seen else line
                seen = True
            ini.append(line)
    (d / "xrdp.ini").write_text("\n".join(ini) + "\n")
    log = open(d / "stdout.log", "w")
    p = subprocess.Popen(["xrdp", "--nodaemon", "--config",
                          str(d / "xrdp.ini")], stdout=log, stderr=log,
                         start_new_session=True)
    log.close()
    assert wait_listen(port, 15, p), (d / "stdout.log").read_text()
    p.port, p.dir = port, d
    return p


@pytest.fixture(scope="module")
def xrdp(tmp_path_factory):
    p = start_xrdp(tmp_path_factory.mktemp("xrdp"),
                   {"grey": "%02x%02x%02x" % XRDP_GREY})
    yield p
    stop_process(p, 5)


def test_tls_only_target_through_the_proxy(rdp_proxy, xrdp, tmp_path):
    pc = rdp_proxy
    _, out, _ = pc.cli("asset", "add", "xrdp-" + tmp_path.name[-8:],
                       "--protocol", "rdp", "--host", "127.0.0.1", "--port",
                       str(xrdp.port), "--login", VAULT_USER,
                       "--password-stdin", input="Vaulted-Pass-9\n")
    asset = out.strip()
    user, pw = rdp_user(pc, asset)
    r, _ = run_client(pc, tmp_path, "%s#%s" % (user, asset), pw, text="x")
    assert (tmp_path / "before.png").exists(), \
        "no xfreerdp window: %s\n%s" % (r, (tmp_path / "client.log")
                                        .read_text()[-2000:])
    # xrdp's connection log window, relayed
    assert near(pixel(tmp_path / "before.png", 200, 200), XRDP_GREY), \
        pixel(tmp_path / "before.png", 200, 200)
    row = pc.session_of(user, kind="rdp", result="ok")
    assert row["asset_id"] == asset and row["bytes_down"] > 0, row
    log = (xrdp.dir / "xrdp.log").read_text()
    # TLS, not NLA: xrdp was configured for TLS only and chose it
    assert "selected [SSL]" in log, log[-3000:]
    # a user name and password came in the Client Info PDU (xrdp goes to
    # its session manager only with both)
    assert "connecting to sesman" in log, log[-3000:]
    # the certificate is pinned now (trust on first use, like SSH)
    _, out, _ = pc.cli("asset", "show", asset)
    assert "SHA256:" in out, out
