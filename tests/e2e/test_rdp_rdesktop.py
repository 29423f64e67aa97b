"""rdesktop through the RDP proxy (issue 17): a second RDP client,
written independently of FreeRDP (Debian 12's rdesktop 1.9.0).

rdesktop offers NLA only through GSSAPI with Kerberos ("Failed to
initialize NLA, do you have correct Kerberos TGT initialized ?"), then
TLS, then standard RDP security; it takes an RSA server key only. So it
logs in through the proxy's `[rdp] tls_logins` path (test_rdp_tls.py):
TLS with an RSA certificate (`[rdp] tls_cert`), its user name in the
same `user?TOTP#asset` grammar and its password in the Client Info PDU,
checked by the monitor. FreeRDP 2.11's server refused rdesktop's MCS
Erect Domain Request (not in PER); the session child rewrites it before
FreeRDP parses it (docs/rdp.md, "rdesktop"). The target is test_rdp.py's
shadow server (NLA, its desktop one colour, its key events seen by xev).
"""
import os
import shutil
import time

import pytest

from pclib import fresh_totp_code, run, self_signed_cert, xvfb_run
from test_rdp import (COLOUR, FAST, near, pixel,  # noqa: F401
                      pytestmark, rdp_asset, rdp_target, rdp_user,
                      start_rdp_proxy, stop_rdp_proxy)

if shutil.which("rdesktop") is None:
    pytestmark = pytest.mark.skip(reason="rdesktop not installed (Debian 12 "
                                  "package rdesktop; scripts/install-deps)")


def rsa_proxy(d, **rdp):
    d.mkdir(parents=True, exist_ok=True)
    # rdesktop takes an RSA server key only (GnuTLS: "Peer's certificate
    # public key algorithm is not RSA"); init makes a P-256 one
    self_signed_cert(d / "rsa.crt", d / "rsa.key", "/CN=portcullis-rsa")
    return start_rdp_proxy(d / "pc", tls_cert=str(d / "rsa.crt"),
                           tls_key=str(d / "rsa.key"), **rdp)


@pytest.fixture(scope="module")
def tls_proxy(tmp_path_factory):
    p = rsa_proxy(tmp_path_factory.mktemp("rdprdesktop"), tls_logins="true")
    yield p
    stop_rdp_proxy(p)


# rdesktop in the background, its question about the (self-signed)
# certificate answered yes; once its window is there, screenshots until
# the desktop is lit (20 s at most), typing, and quit. "$OUT/exit": how
# rdesktop ended; "$OUT/took": seconds from its start to its end when it
# ended by itself (refused: its window may have come up first).
DRIVER = r"""
set -u
export HOME="$OUT/home"
mkdir -p "$HOME"
t0=$(date +%s.%N)
yes yes | "$@" > "$OUT/client.log" 2>&1 &
pid=$!
ended() {
    kill -0 $pid 2>/dev/null && return 1
    wait $pid
    echo "exit $?" > "$OUT/exit"
    echo "$(date +%s.%N) - $t0" | bc > "$OUT/took"
    return 0
}
for i in $(seq 1 300); do
    win=$(xdotool search --class rdesktop 2>/dev/null | head -1)
    [ -n "$win" ] && break
    ended && exit 0
    sleep 0.1
done
echo up > "$OUT/up"
for i in $(seq 1 40); do
    sleep 0.5
    ended && exit 0
    import -window root "$OUT/before.png"
    lit=$(convert "$OUT/before.png" -format '%[fx:mean>0.05?1:0]' info:)
    [ "$lit" = 1 ] && break
done
xdotool mousemove 500 350
xdotool windowfocus --sync "$win" 2>/dev/null
xdotool type --delay 60 "$TEXT"
sleep 1.5
ended && exit 0
kill -TERM $pid
wait $pid
echo "exit $?" > "$OUT/exit"
"""


def rdesktop(pc, out, login, password, text="rdesktop ok", timeout=90):
    """rdesktop to pc's RDP port: (its log, seconds it ran when it ended
    by itself or None)."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OUT=str(out), TEXT=text)
    run(xvfb_run("1024x768") + [
        "sh", "-c", DRIVER, "driver", "rdesktop", "-u", login,
        "-p", password, "-g", "1024x768", "-a", "24",
        "127.0.0.1:%d" % pc.rdp_port], env=env, timeout=timeout)
    log = (out / "client.log").read_text(errors="replace") \
        if (out / "client.log").exists() else ""
    took = float((out / "took").read_text()) if (out / "took").exists() \
        else None
    return log, took


def no_desktop(out):
    """Refused: the target's desktop never in rdesktop's window."""
    png = out / "before.png"
    return not png.exists() or not near(pixel(png), COLOUR)


def typed(target, keys_before):
    keys = target.keys()[keys_before:]
    return "".join(k if len(k) == 1 else " " if k == "space" else ""
                   for k in keys)


def test_rdesktop_reaches_the_desktop(tls_proxy, rdp_target, tmp_path):
    """user?TOTP#asset: without the code told and refused; with it, the
    target's desktop in rdesktop's window, typing reaches the target,
    and the report row is there."""
    asset = rdp_asset(tls_proxy, rdp_target)
    user, pw = rdp_user(tls_proxy, asset)
    secret = tls_proxy.totp_enable(user)
    # no code: refused at once, the row says why
    log, took = rdesktop(tls_proxy, tmp_path / "nocode",
                         "%s#%s" % (user, asset), pw)
    assert no_desktop(tmp_path / "nocode"), log
    assert took is not None and took < FAST, (took, log)
    row = tls_proxy.session_of(user, kind="rdp", result="TOTP required")
    assert "user?123456#asset" in row["result"], row
    # with the code: in
    before = len(rdp_target.keys())
    out = tmp_path / "in"
    log, took = rdesktop(tls_proxy, out, "%s?%s#%s" % (
        user, fresh_totp_code(secret), asset), pw)
    assert (out / "up").exists() and (out / "before.png").exists(), log
    assert "Connection established using SSL" in log, log
    assert near(pixel(out / "before.png"), COLOUR), pixel(out / "before.png")
    assert typed(rdp_target, before).endswith("rdesktop ok"), \
        rdp_target.keys()[before:]
    row = tls_proxy.session_of(user, kind="rdp", result="ok")
    assert row["asset_id"] == asset and row["bytes_down"] > 0, row
    assert row["bytes_up"] > 0, row
    # what made it possible: rdesktop's Erect Domain Request mended
    proxy_log = tls_proxy.log_path.read_text()
    assert "Erect Domain Request (rdesktop's, not in PER) rewritten" in \
        proxy_log, proxy_log[-3000:]
    assert "bytes too long" not in proxy_log, proxy_log[-3000:]


def test_rdesktop_wrong_password_refused_fast(tls_proxy, rdp_target,
                                              tmp_path):
    """A wrong password: no desktop, rdesktop ends within FAST seconds
    and says the server wants fresh credentials (the proxy's Set Error
    Info, as mstsc is told); the report row says why."""
    asset = rdp_asset(tls_proxy, rdp_target)
    user, _ = rdp_user(tls_proxy, asset)
    log, took = rdesktop(tls_proxy, tmp_path, "%s#%s" % (user, asset),
                         "not-it")
    assert no_desktop(tmp_path), log
    assert took is not None and took < FAST, (took, log)
    # rdesktop's words for ERRINFO_SERVER_FRESH_CREDENTIALS_REQUIRED
    assert "requires that the user enter their credentials" in log, log
    row = tls_proxy.session_of(user, kind="rdp", result="denied")
    assert "authentication failed" in row["result"], row


def test_rdesktop_refused_without_tls_logins(tmp_path, rdp_target):
    """The default (NLA only): rdesktop, which cannot do NLA here, is
    refused at the negotiation, fast, and nothing past it runs (no
    login, no report row)."""
    p = rsa_proxy(tmp_path / "nla")
    try:
        asset = rdp_asset(p, rdp_target)
        user, pw = rdp_user(p, asset)
        log, took = rdesktop(p, tmp_path / "c", "%s#%s" % (user, asset), pw)
        assert no_desktop(tmp_path / "c"), log
        assert took is not None and took < FAST, (took, log)
        assert "CredSSP required by server" in log, log
        plog = p.log_path.read_text()
        assert "login %s" % user not in plog, plog[-3000:]
    finally:
        stop_rdp_proxy(p)
