"""RDP logins inside TLS without NLA (`[rdp] tls_logins`, docs/rdp.md).

Issue 17: NLA by default; the TLS-only security mode for clients that do
not do NLA, where the password arrives in the Client Info PDU and is
checked against the argon2id hash like an SSH password. The client is
xfreerdp with `/sec:tls` (it sends the user name and password of `/u:`
and `/p:` in its Client Info PDU, as mstsc does with saved credentials);
the target is test_rdp.py's shadow server with NLA (the back leg is
unchanged).
"""
import os
import time

import pytest

from pclib import fresh_totp_code, run, xvfb_run
from test_rdp import (COLOUR, FAST, assert_desktop_and_typing,  # noqa: F401
                      near, pixel, pytestmark, rdp_asset, rdp_proxy,
                      rdp_target, rdp_user, refused, run_client,
                      start_rdp_proxy, stop_rdp_proxy, xfreerdp_args)


@pytest.fixture(scope="module")
def tls_proxy(tmp_path_factory):
    p = start_rdp_proxy(tmp_path_factory.mktemp("rdptls"), tls_logins="true")
    yield p
    stop_rdp_proxy(p)


def tls_client(pc, out, login, password, text="tls ok"):
    """test_rdp.py's desktop driver with /sec:tls."""
    return run_client(pc, out, login, password, text=text, sec="tls")[0]


def tls_refused(pc, login, password):
    return refused(pc, login, password, sec="tls")


def test_tls_login_reaches_the_desktop(tls_proxy, rdp_target, tmp_path):
    asset = rdp_asset(tls_proxy, rdp_target)
    user, pw = rdp_user(tls_proxy, asset)
    before = len(rdp_target.keys())
    r = tls_client(tls_proxy, tmp_path, "%s#%s" % (user, asset), pw)
    assert_desktop_and_typing(rdp_target, tmp_path, r, before, "tls ok")
    row = tls_proxy.session_of(user, kind="rdp", result="ok")
    assert row["asset_id"] == asset and row["bytes_down"] > 0, row
    # the password was checked by the monitor, not by NLA: no NTLM key
    # was asked for this login
    log = tls_proxy.log_path.read_text()
    assert "login refused" not in "\n".join(
        ln for ln in log.splitlines() if user in ln), log[-2000:]


def test_tls_wrong_password_told_and_counted(tls_proxy, rdp_target):
    asset = rdp_asset(tls_proxy, rdp_target)
    user, _ = rdp_user(tls_proxy, asset)
    r, took = tls_refused(tls_proxy, "%s#%s" % (user, asset), "not-it")
    assert r.rc != 0, r
    assert took < FAST, "refusal took %.1f s" % took
    # told: the client asks for its credentials anew
    assert "ERRINFO_SERVER_FRESH_CREDENTIALS_REQUIRED" in r.out + r.err, r
    row = tls_proxy.session_of(user, kind="rdp", result="denied")
    assert "authentication failed" in row["result"], row
    # counted like a wrong SSH password: an audit event for the user
    _, out, _ = tls_proxy.cli("audit", "list", "--json")
    assert any(e.get("action") == "login.fail" and user in
               (e.get("actor") or "") for e in _json_lines(out)), out[-2000:]


def _json_lines(out):
    import json
    s = out.strip()
    if s.startswith("["):
        return json.loads(s)
    return [json.loads(ln) for ln in s.splitlines() if ln.strip()]


def test_tls_totp_in_the_user_name(tls_proxy, rdp_target, tmp_path):
    asset = rdp_asset(tls_proxy, rdp_target)
    user, pw = rdp_user(tls_proxy, asset)
    secret = tls_proxy.totp_enable(user)
    # no code: refused at once, told to put it in the user name
    r, took = tls_refused(tls_proxy, "%s#%s" % (user, asset), pw)
    assert r.rc != 0 and took < FAST, (r, took)
    assert "ERRINFO_SERVER_FRESH_CREDENTIALS_REQUIRED" in r.out + r.err, r
    row = tls_proxy.session_of(user, kind="rdp", result="TOTP required")
    assert "user?123456#asset" in row["result"], row
    # with the code: in
    r = tls_client(tls_proxy, tmp_path, "%s?%s#%s" % (
        user, fresh_totp_code(secret), asset), pw)
    assert (tmp_path / "before.png").exists(), r
    assert near(pixel(tmp_path / "before.png"), COLOUR)


def test_no_password_sent_is_told(tls_proxy, rdp_target):
    asset = rdp_asset(tls_proxy, rdp_target)
    user, _ = rdp_user(tls_proxy, asset)
    r, took = tls_refused(tls_proxy, "%s#%s" % (user, asset), "")
    assert r.rc != 0 and took < FAST, (r, took)
    # told to enter credentials (mstsc then asks for them)
    assert "ERRINFO_SERVER_FRESH_CREDENTIALS_REQUIRED" in r.out + r.err, r
    # the log says why; nothing was tried, so nothing counts against the
    # user and no report row is written (as for an SSH client that
    # leaves before trying a password)
    log = tls_proxy.log_path.read_text()
    assert "sent no password" in log, log[-2000:]


def test_tls_refused_unless_configured(rdp_proxy, rdp_target):
    """The default ([rdp] tls_logins off): a client that will not do NLA
    is refused at once, with nothing past the negotiation."""
    asset = rdp_asset(rdp_proxy, rdp_target)
    user, pw = rdp_user(rdp_proxy, asset)
    r, took = tls_refused(rdp_proxy, "%s#%s" % (user, asset), pw)
    assert r.rc != 0 and took < FAST, (r, took)
    assert "Protocol Security Negotiation Failure" in r.out + r.err, r


def test_directory_user_over_tls(tmp_path, rdp_target):
    """A directory (LDAP) user cannot do NLA (no NT hash of a directory
    password exists), but over TLS the password is checked by a bind, as
    for SSH: alice@contoso.com reaches the desktop through a group the
    directory maps."""
    from test_directory import BASE, PW, Slapd
    slapd = Slapd(tmp_path / "slapd")
    slapd.start()
    p = None
    try:
        p = start_rdp_proxy(tmp_path / "pc", tls_logins="true")
        p.stop()
        with open(p.conf, "a") as f:
            f.write('\n[directory "contoso.com"]\n'
                    'url = ldap://127.0.0.1:%d\n'
                    'bind = uid={user},ou=people,%s\n'
                    'base_dn = ou=people,%s\n'
                    'group_base_dn = ou=groups,%s\n'
                    'group_filter = (member={dn})\n'
                    'map_group = "ops -> dir-ops"\n'
                    % (slapd.port, BASE, BASE, BASE))
        p.start()
        p.cli("group", "add", "dir-ops")
        asset = rdp_asset(p, rdp_target)
        p.grant(asset, group="dir-ops")
        p.profile_assign(p.profile_add(), group="dir-ops")
        user = "alice@contoso.com"
        # NLA: refused at once, saying what works
        r, took = refused(p, "%s#%s" % (user, asset), PW["alice"])
        assert r.rc != 0 and took < FAST, (r, took)
        row = p.session_of(user, kind="rdp", result="with NLA")
        assert "tls_logins" in row["result"], row
        # TLS: in, through the bind and the mapped group
        r = tls_client(p, tmp_path / "c", "%s#%s" % (user, asset),
                       PW["alice"])
        assert (tmp_path / "c" / "before.png").exists(), \
            "no xfreerdp window: %s\n%s" % (
                r, (tmp_path / "c" / "client.log").read_text()[-2000:])
        assert near(pixel(tmp_path / "c" / "before.png"), COLOUR)
        p.session_of(user, kind="rdp", result="ok")
        # a wrong directory password: refused and told
        r, took = tls_refused(p, "%s#%s" % (user, asset), "not-alice")
        assert r.rc != 0 and took < FAST, (r, took)
        assert "ERRINFO_SERVER_FRESH_CREDENTIALS_REQUIRED" in r.out + r.err, r
    finally:
        if p is not None:
            stop_rdp_proxy(p)
        slapd.stop()



def _memory_holds(pid, needles):
    """Which of needles (bytes) are in process pid's readable memory
    (root reads a non-dumpable child's /proc/PID/mem)."""
    found = set()
    with open("/proc/%d/maps" % pid) as maps, \
            open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            f = line.split()
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            if "r" not in f[1] or (len(f) > 5 and f[5] in ("[vvar]",
                                                           "[vsyscall]")):
                continue
            # in pieces (overlapping by a needle's length), so a large
            # mapping costs no more memory here than a piece
            piece, keep = 16 << 20, max(len(n) for n in needles)
            for start in range(lo, hi, piece):
                try:
                    mem.seek(max(lo, start - keep))
                    chunk = mem.read(min(hi, start + piece) -
                                     max(lo, start - keep))
                except (OSError, ValueError, OverflowError):
                    break
                found |= {n for n in needles if n in chunk}
    return found


def _password_left_in_child(pc, rdp_target, args_of):
    """Starts a session whose password is unique, waits until the child
    is connected to the target, and says which encodings of the password
    (UTF-8 as checked, UTF-16 as sent) the session child still holds.
    FreeRDP's own receive buffers keep the Client Info PDU (and, after
    NLA, CredSSP's decrypted credentials) as the client sent them, UTF-16,
    out of the child's reach (docs/rdp.md): the tests ask for no UTF-8
    copy, the form every copy the child or FreeRDP's settings made has."""
    import re
    import subprocess
    asset = rdp_asset(pc, rdp_target)
    pw = "Wipe-Me-%d-Qx" % os.getpid()
    user, _ = rdp_user(pc, asset, password=pw)
    needles = [pw.encode(), pw.encode("utf-16-le")]
    before = len(pc.log_path.read_text())
    proc = subprocess.Popen(
        xvfb_run("1024x768") +
        args_of(pc, "%s#%s" % (user, asset), pw),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None and time.monotonic() < deadline:
            m = re.search(r"rdp 127\.0\.0\.1:(\d+): %s connected to" %
                          re.escape(user), pc.log_path.read_text()[before:])
            port = int(m.group(1)) if m else None
            time.sleep(0.2)
        assert port is not None, pc.log_tail()
        time.sleep(2)  # activation and the first frames
        from pclib import serving_process
        child = serving_process(pc.descendants, pc.rdp_port, port)
        with open("/proc/%d/maps" % child) as f:
            if "libasan" in f.read():
                # AddressSanitizer's heap and shadow are terabytes of
                # mappings; the plain build's run of this test checks it
                pytest.skip("reads a child's memory: not under ASan")
        return _memory_holds(child, needles), needles
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


@pytest.mark.skipif(os.geteuid() != 0, reason="reads a child's memory")
def test_password_not_kept_after_tls_login(tls_proxy, rdp_target):
    """The Client Info password is wiped once checked: while the session
    runs, the session child holds no UTF-8 copy (FreeRDP's settings, a
    dead stack frame of the handshake)."""
    left, needles = _password_left_in_child(
        tls_proxy, rdp_target,
        lambda pc, login, pw: xfreerdp_args(pc, login, pw, sec="tls"))
    assert needles[0] not in left, left


@pytest.mark.skipif(os.geteuid() != 0, reason="reads a child's memory")
def test_password_not_kept_after_nla_login(tls_proxy, rdp_target):
    """After NLA too: the Client Info PDU's password (clients send it
    there as well) is wiped from FreeRDP's settings."""
    left, needles = _password_left_in_child(tls_proxy, rdp_target,
                                            xfreerdp_args)
    assert needles[0] not in left, left


def test_long_user_name_and_password_refused(tls_proxy, rdp_target):
    """A 1000-character user name or password in the Client Info PDU (the
    PDU allows 255 characters; the login grammar fewer): refused at once,
    no crash, and the proxy serves the next client."""
    asset = rdp_asset(tls_proxy, rdp_target)
    user, pw = rdp_user(tls_proxy, asset)
    for login, password in (("u" * 1000 + "#" + asset, pw),
                            ("%s#%s" % (user, asset), "p" * 1000)):
        r, took = tls_refused(tls_proxy, login, password)
        assert r.rc != 0 and took < FAST, (r, took)
    assert tls_proxy.proc.poll() is None, tls_proxy.log_tail()
    r, took = tls_refused(tls_proxy, "%s#%s" % (user, asset), "not-it")
    assert "ERRINFO_SERVER_FRESH_CREDENTIALS_REQUIRED" in r.out + r.err, r


def test_each_tls_failure_counts_once(tmp_path, rdp_target):
    """With max_failures = 3, two wrong passwords over TLS lock nothing
    (each is counted once, by the monitor's password check) and the
    third locks the password."""
    p = start_rdp_proxy(tmp_path / "pc", tls_logins="true")
    try:
        p.stop()
        p.set_config("auth", "max_failures", "3")
        p.set_config("auth", "failure_window_seconds", "600")
        p.set_config("auth", "lockout_seconds", "60")
        p.start()
        asset = rdp_asset(p, rdp_target)
        user, _ = rdp_user(p, asset)

        def events(action):
            _, out, _ = p.cli("audit", "list", "--json")
            return [e for e in _json_lines(out) if e.get("action") == action]

        for i in range(2):
            r, _ = tls_refused(p, "%s#%s" % (user, asset), "wrong-%d" % i)
            assert r.rc != 0, r
        assert len([e for e in events("login.fail")
                    if user in (e.get("actor") or "")]) == 2
        assert events("login.lock") == [], events("login.lock")
        r, _ = tls_refused(p, "%s#%s" % (user, asset), "wrong-2")
        assert r.rc != 0, r
        assert events("login.lock"), p.log_tail()
    finally:
        stop_rdp_proxy(p)
