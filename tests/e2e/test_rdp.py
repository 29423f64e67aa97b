"""The RDP proxy ([rdp], docs/rdp.md) end to end.

The target is FreeRDP's shadow server (freerdp-shadow-cli) sharing an Xvfb
of the test's own, with NLA against a SAM file (a real NTLM check: a
wrong password fails there too). Its screen is a solid colour no client
shows by itself, with an xev window on it that prints every key it gets.
The client is xfreerdp under `xvfb-run -a -n N`, driven by a small shell script
inside that X server: it waits for the xfreerdp window, takes a
screenshot (ImageMagick's import), types with xdotool, and quits.

What a user sees is asserted: the target's colour in the client's
screenshot, the typed text arriving as key events on the target, the
client's exit, the time a refusal takes, and the report row (kind rdp,
bytes each way, the result with its reason).
"""
import json
import os
import shutil
import socket
import subprocess
import time
import warnings
from pathlib import Path

import pytest

from pclib import (Client, Portcullis, build_dir, free_port, fresh_totp_code,
                   magick_image, run, self_signed_cert, serving_process,
                   stop_process, totp_wrong_code, uniq, wait_listen, xvfb_run)
from test_web import WEB, web_ui  # noqa: F401 (the fixture: web/dist built)

TOOLS = ["xfreerdp", "freerdp-shadow-cli", "Xvfb", "xvfb-run", "xdotool",
         "import", "convert", "xev"]
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="RDP test tools missing (scripts/install-deps)")

TARGET_USER = "rdptarget"
TARGET_PASSWORD = "Target-Pass-42"
# dodger blue: the target's desktop, which no client draws by itself
COLOUR = (30, 144, 255)
# a refusal must reach the client at once (a naive port hangs ~10 s)
FAST = 6.0


def nt_hash(password):
    """MD4(UTF-16LE(password)) with winpr-hash, FreeRDP's own tool."""
    r = run(["winpr-hash", "-u", "x", "-p", password])
    assert r.rc == 0, r
    return r.out.strip().splitlines()[-1].strip()


def start_xvfb(size="1024x768"):
    """An Xvfb on a display it picks (-displayfd: the lowest free one, and
    it tells which): (process, ":N"). -noreset: an X server resets when
    its last client leaves, and a client connecting meanwhile fails
    ("failed to open display"), which one xfreerdp after another on the
    same display met under load."""
    rfd, wfd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(wfd), "-screen", "0", size + "x24",
         "-nolisten", "tcp", "-noreset"], pass_fds=(wfd,),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    os.close(wfd)
    with os.fdopen(rfd) as f:
        num = f.readline().strip()
    if not num.isdigit():
        stop_process(xvfb, 5)
        raise AssertionError("Xvfb gave no display")
    return xvfb, ":" + num


class ProgramTarget:
    """One of the test RDP servers built with the tests
    (tests/e2e/rdp-*-target: TLS security, any login accepted) on a free
    loopback port with a fresh certificate; it writes what it saw, one
    line each, to self.out. A subclass names the program (EXE) and its
    output file (OUT), and may add arguments (args) and environment
    variables (env)."""
    EXE = None
    OUT = "target.txt"

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.out = self.dir / self.OUT
        self.proc = None

    def args(self):
        return []

    def env(self):
        return None

    def start(self):
        # the process's certificate for this program (pclib: made once)
        cert, key = self_signed_cert(self.dir / "cert.pem",
                                     self.dir / "key.pem", "/CN=%s" % self.EXE)
        self.out.write_text("")
        exe = build_dir() / "tests" / "e2e" / self.EXE
        assert exe.exists(), "build the tests (meson -Dtests=true)"
        self.log = open(self.dir / "target.log", "w")
        self.proc = subprocess.Popen(
            [str(exe), str(self.port), str(cert), str(key), str(self.out)]
            + self.args(), stdout=self.log, stderr=self.log,
            start_new_session=True, env=self.env())
        assert wait_listen(self.port, 10, self.proc), "%s not up" % self.EXE
        return self

    def lines(self):
        return self.out.read_text(errors="replace").splitlines()

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, 5)
            self.proc = None


class RdpTarget:
    """Xvfb + a solid background + xev + freerdp-shadow-cli with NLA."""

    def __init__(self, workdir, background=None):
        self.dir = Path(workdir)
        # ImageMagick's canvas for the desktop: the solid COLOUR unless
        # given (test_rdp_record.py shows noise, which does not compress)
        self.background = background or ["xc:rgb(%d,%d,%d)" % COLOUR]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.procs = []
        self.display = None

    def start(self):
        xvfb, self.display = start_xvfb()
        self.procs.append(xvfb)
        env = self.env()
        bg = self.dir / "bg.png"
        magick_image(bg, "1024x768", *self.background)
        # sets the root window's background; exits at once
        subprocess.run(["display", "-window", "root", str(bg)], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30)
        self.xev_out = open(self.dir / "xev.txt", "w")
        xev = subprocess.Popen(
            ["xev", "-geometry", "400x300+300+200", "-event", "keyboard"],
            env=env, stdout=self.xev_out, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.procs.append(xev)
        time.sleep(0.5)
        # keys go to the window under the pointer (no window manager)
        run(["xdotool", "mousemove", "500", "350"], env=env)
        sam = self.dir / "sam"
        sam.write_text("%s::aad3b435b51404eeaad3b435b51404ee:%s:::\n"
                       % (TARGET_USER, nt_hash(TARGET_PASSWORD)))
        self.log = open(self.dir / "shadow.log", "w")
        shadow = subprocess.Popen(
            ["freerdp-shadow-cli", "/port:%d" % self.port,
             "/bind-address:127.0.0.1", "/sec:nla",
             "/sam-file:%s" % sam, "+auth"],
            env=env, stdout=self.log, stderr=self.log,
            start_new_session=True)
        self.procs.append(shadow)
        assert wait_listen(self.port, 15, shadow), "shadow server not up"
        return self

    def env(self):
        env = dict(os.environ)
        env["DISPLAY"] = self.display
        env.pop("XAUTHORITY", None)
        return env

    def keys(self):
        """The key names xev printed (presses only)."""
        self.xev_out.flush()
        out, press = [], False
        for line in (self.dir / "xev.txt").read_text().splitlines():
            if line.startswith("KeyPress"):
                press = True
            elif line.startswith("KeyRelease"):
                press = False
            elif press and "keysym" in line:
                name = line.split("keysym", 1)[1].split(",")[1].split(")")[0]
                out.append(name.strip())
                press = False
        return out

    def stop(self):
        for p in reversed(self.procs):
            stop_process(p, 5)
        self.procs = []


@pytest.fixture(scope="module")
def rdp_target(tmp_path_factory):
    t = RdpTarget(tmp_path_factory.mktemp("rdptarget")).start()
    yield t
    t.stop()


def start_rdp_proxy(d, **rdp):
    """A started Portcullis in d with [rdp] on a free port (and the
    other [rdp] settings given)."""
    p = Portcullis(d)
    p.tune_for_tests()
    p.rdp_port = free_port()
    p.set_config("rdp", "enabled", "true")
    p.set_config("rdp", "port", str(p.rdp_port))
    for k, v in rdp.items():
        p.set_config("rdp", k, v)
    p.start()
    assert wait_listen(p.rdp_port, 15, p.proc), p.log_tail()
    return p


def stop_rdp_proxy(p):
    """Stops p; fails on anything a sanitizer logged."""
    p.stop()
    found = p.sanitizer_findings()
    if found:
        pytest.fail("sanitizer report in %s:\n%s" % (p.log_path, found))


@pytest.fixture(scope="module")
def rdp_proxy(tmp_path_factory):
    p = start_rdp_proxy(tmp_path_factory.mktemp("rdpproxy"))
    yield p
    stop_rdp_proxy(p)


def rdp_asset(pc, target, name=None, port=None):
    """An rdp asset for the shadow target with its vaulted login."""
    name = name or uniq("w")
    _, out, _ = pc.cli("asset", "add", name, "--protocol", "rdp", "--host",
                       "127.0.0.1", "--port", port or target.port,
                       "--login", TARGET_USER, "--password-stdin",
                       input=TARGET_PASSWORD + "\n")
    return out.strip()


def rdp_user(pc, asset_id, password="User-Pass-77"):
    user = pc.user_add(password=password)
    pc.allow(user, asset_id)
    return user, password


def xfreerdp_args(pc, login, password, extra=(), sec="nla"):
    """sec: the security xfreerdp insists on (nla; tls, test_rdp_tls.py)"""
    return ["xfreerdp", "/v:127.0.0.1:%d" % pc.rdp_port, "/u:%s" % login,
            "/p:%s" % password, "/cert:ignore", "/sec:%s" % sec,
            "/size:1024x768", "-clipboard", "/log-level:ERROR"] + list(extra)


# The client's side, one driver script for every RDP test with its
# hooks: before_client runs before xfreerdp starts (test_rdp_clipboard.py
# sets the X clipboard there); xfreerdp in the background; when its
# window is there (30 s at most: NLA, argon2id and TLS on a loaded
# machine; "$win" is its id), "$OUT/up" is written and on_window runs;
# then quit, and "$OUT/exit" says how xfreerdp ended.
DRIVER_TEMPLATE = r"""
set -u
before_client() {
:
@BEFORE@
}
on_window() {
:
@ON_WINDOW@
}
before_client
"$@" > "$OUT/client.log" 2>&1 &
pid=$!
for i in $(seq 1 300); do
    win=$(xdotool search --class xfreerdp 2>/dev/null | head -1)
    [ -n "$win" ] && break
    kill -0 $pid 2>/dev/null || { wait $pid; echo "exit $?" > "$OUT/exit"; exit 0; }
    sleep 0.1
done
echo up > "$OUT/up"
on_window
kill -TERM $pid
wait $pid
echo "exit $?" > "$OUT/exit"
"""

# The desktop tests' hook: a screenshot once the first frame is there,
# typing, a second screenshot. freerdp-shadow with the graphics pipeline
# (xfreerdp's default) could send no frame to a screen that does not
# change until the proxy asked it for its screen after the caps confirm
# (docs/rdp.md, "The first frame of a still screen"): after 8 s of black
# the mouse is still moved over the window, as a user would, and
# "$OUT/nudged" says so (a pytest warning: it should no longer happen).
DESKTOP = r"""
# the first frame: until the screen is no longer black (20 s at most),
# or xfreerdp has ended (a session the proxy ended: no frame will come,
# and 40 more screenshots took the 60 s of run_client on a slow box)
for i in $(seq 1 40); do
    sleep 0.5
    import -window root "$OUT/before.png"
    lit=$(convert "$OUT/before.png" -format '%[fx:mean>0.05?1:0]' info:)
    [ "$lit" = 1 ] && break
    kill -0 $pid 2>/dev/null || break
    if [ "$i" = 16 ]; then
        echo nudged > "$OUT/nudged"
        xdotool mousemove 300 300 sleep 0.2 mousemove 320 310
    fi
done
xdotool mousemove 500 350
xdotool windowfocus --sync "$win" 2>/dev/null
xdotool type --delay 60 "$TEXT"
sleep 1.5
import -window root "$OUT/after.png"
"""


def rdp_driver(before="", on_window=DESKTOP):
    """The driver script (sh -c DRIVER driver xfreerdp ARGS...) with its
    hooks, shell code run before xfreerdp starts and once its window is
    up."""
    return DRIVER_TEMPLATE.replace("@BEFORE@", before).replace(
        "@ON_WINDOW@", on_window)


DRIVER = rdp_driver()


def run_client(pc, out, login, password, text="rdp ok", timeout=60,
               sec="nla", extra=()):
    """extra: more xfreerdp arguments (xfreerdp 2.11 asks for the
    graphics pipeline unless given /network, /gfx, /rfx or /bpp)"""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OUT=str(out), TEXT=text)
    t0 = time.monotonic()
    r = run(xvfb_run("1024x768") + ["sh", "-c",
             DRIVER, "driver"] + xfreerdp_args(pc, login, password,
                                               extra=extra, sec=sec),
            env=env, timeout=timeout)
    return r, time.monotonic() - t0


def assert_desktop_and_typing(target, out, r, keys_before, text):
    """run_client's result: the target's desktop in the client's window,
    and what xdotool typed on the client on the target's keyboard."""
    assert (out / "before.png").exists(), \
        "no xfreerdp window: %s\n%s" % (r, (out / "client.log")
                                        .read_text()[-2000:])
    assert near(pixel(out / "before.png"), COLOUR), pixel(out / "before.png")
    if (out / "nudged").exists():
        warnings.warn("%s: the first frame came only after the mouse "
                      "moved" % out)
    keys = target.keys()[keys_before:]
    assert "".join(k if len(k) == 1 else " " if k == "space" else ""
                   for k in keys).endswith(text), keys


def pixel(png, x=800, y=650):
    r = run(["convert", str(png), "-format", "%[fx:int(255*r)],"
             "%[fx:int(255*g)],%[fx:int(255*b)]", "-crop",
             "1x1+%d+%d" % (x, y), "info:"])
    return tuple(int(v) for v in r.out.strip().split(","))


def near(c, want, tol=12):
    return all(abs(a - b) <= tol for a, b in zip(c, want))


def refused(pc, login, password, timeout=30, sec="nla"):
    """xfreerdp that is to be refused: (exit status, seconds)."""
    t0 = time.monotonic()
    r = run(xvfb_run() + xfreerdp_args(pc, login, password, sec=sec),
            timeout=timeout)
    return r, time.monotonic() - t0


def test_desktop_and_typing_through_the_proxy(rdp_proxy, rdp_target,
                                              tmp_path):
    asset = rdp_asset(rdp_proxy, rdp_target)
    user, pw = rdp_user(rdp_proxy, asset)
    before = len(rdp_target.keys())
    r, _ = run_client(rdp_proxy, tmp_path, "%s#%s" % (user, asset), pw,
                      text="rdp ok")
    assert_desktop_and_typing(rdp_target, tmp_path, r, before, "rdp ok")
    row = rdp_proxy.session_of(user, kind="rdp", result="ok")
    assert row["asset_id"] == asset and row["route"] == "direct", row
    assert row["bytes_up"] > 0 and row["bytes_down"] > 0, row


def test_login_with_totp_in_the_user_name(rdp_proxy, rdp_target, tmp_path):
    asset = rdp_asset(rdp_proxy, rdp_target)
    user, pw = rdp_user(rdp_proxy, asset)
    secret = rdp_proxy.totp_enable(user)
    code = fresh_totp_code(secret)
    r, _ = run_client(rdp_proxy, tmp_path,
                      "%s?%s#%s" % (user, code, asset), pw)
    assert (tmp_path / "before.png").exists(), r
    assert near(pixel(tmp_path / "before.png"), COLOUR)
    rdp_proxy.session_of(user, kind="rdp", result="ok")


def test_wrong_password_refused_at_once(rdp_proxy, rdp_target):
    asset = rdp_asset(rdp_proxy, rdp_target)
    user, _ = rdp_user(rdp_proxy, asset)
    r, took = refused(rdp_proxy, "%s#%s" % (user, asset), "not-the-password")
    assert r.rc != 0, r
    assert took < FAST, "refusal took %.1f s" % took
    row = rdp_proxy.session_of(user, kind="rdp", result="denied")
    assert "authentication failed" in row["result"], row


def test_wrong_totp_refused(rdp_proxy, rdp_target):
    asset = rdp_asset(rdp_proxy, rdp_target)
    user, pw = rdp_user(rdp_proxy, asset)
    secret = rdp_proxy.totp_enable(user)
    r, took = refused(rdp_proxy, "%s?%s#%s" % (user, totp_wrong_code(secret),
                                               asset), pw)
    assert r.rc != 0, r
    assert took < FAST, "refusal took %.1f s" % took
    # the client is told to enter its credentials anew (mstsc asks for
    # them; the code goes in the user name)
    assert "ERRINFO_SERVER_FRESH_CREDENTIALS_REQUIRED" in r.out + r.err, r
    row = rdp_proxy.session_of(user, kind="rdp", result="denied")
    assert "TOTP" in row["result"] or "code" in row["result"], row
    # and no code at all: refused, saying the code goes in the user name
    r, took = refused(rdp_proxy, "%s#%s" % (user, asset), pw)
    assert r.rc != 0 and took < FAST, (r, took)
    assert "ERRINFO_SERVER_FRESH_CREDENTIALS_REQUIRED" in r.out + r.err, r


def test_no_role_on_the_asset(rdp_proxy, rdp_target):
    asset = rdp_asset(rdp_proxy, rdp_target)
    user = rdp_proxy.user_add(password="User-Pass-77")
    rdp_proxy.profile_assign(rdp_proxy.profile_add(), user=user)
    r, took = refused(rdp_proxy, "%s#%s" % (user, asset), "User-Pass-77")
    assert r.rc != 0, r
    assert took < FAST, "refusal took %.1f s" % took
    assert "ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES" in r.out + r.err, r
    row = rdp_proxy.session_of(user, kind="rdp", result="denied")
    assert "unknown asset" in row["result"] or "role" in row["result"], row


def test_profile_deny(rdp_proxy, rdp_target):
    asset = rdp_asset(rdp_proxy, rdp_target)
    user = rdp_proxy.user_add(password="User-Pass-77")
    rdp_proxy.allow(user, asset, native="deny")
    r, took = refused(rdp_proxy, "%s#%s" % (user, asset), "User-Pass-77")
    assert r.rc != 0 and took < FAST, (r, took)
    # the client is told why (mstsc words it as a missing privilege)
    assert "ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES" in r.out + r.err, r
    row = rdp_proxy.session_of(user, kind="rdp", result="denied")
    assert "profile" in row["result"], row


def test_asset_down(rdp_proxy, rdp_target):
    asset = rdp_asset(rdp_proxy, rdp_target, port=free_port())
    user, pw = rdp_user(rdp_proxy, asset)
    r, took = refused(rdp_proxy, "%s#%s" % (user, asset), pw)
    assert r.rc != 0, r
    assert took < FAST, "refusal took %.1f s" % took
    assert "ERRINFO_SERVER_DENIED_CONNECTION" in r.out + r.err, r
    row = rdp_proxy.session_of(user, kind="rdp", result="error")
    assert "cannot reach" in row["result"], row


def test_ssh_asset_is_not_an_rdp_asset(rdp_proxy, rdp_target):
    _, out, _ = rdp_proxy.cli("asset", "add", uniq("s"), "--host",
                              "127.0.0.1", "--port", 22)
    asset = out.strip()
    user, pw = rdp_user(rdp_proxy, asset)
    r, took = refused(rdp_proxy, "%s#%s" % (user, asset), pw)
    assert r.rc != 0 and took < FAST, (r, took)
    rdp_proxy.session_of(user, kind="rdp", result="not an RDP asset")


def test_changed_target_certificate_refused(rdp_proxy, rdp_target):
    asset = rdp_asset(rdp_proxy, rdp_target)
    user, pw = rdp_user(rdp_proxy, asset)
    # pinned to another certificate than the target presents
    rdp_proxy.store_sql("UPDATE assets SET host_key_fp = ? WHERE id = ?",
                        "SHA256:" + "A" * 43, asset)
    r, took = refused(rdp_proxy, "%s#%s" % (user, asset), pw)
    assert r.rc != 0 and took < FAST, (r, took)
    assert "ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES" in r.out + r.err, r
    row = rdp_proxy.session_of(user, kind="rdp", result="denied")
    assert "has changed" in row["result"], row


def test_no_nt_hash_until_a_password_login(rdp_proxy, rdp_target, tmp_path):
    """A user from before RDP (no NT hash) is refused with what to do;
    one SSH password login later, RDP works."""
    asset = rdp_asset(rdp_proxy, rdp_target)
    user, pw = rdp_user(rdp_proxy, asset)
    rdp_proxy.store_sql("UPDATE users SET nt_sealed = NULL WHERE name = ?",
                        user)
    r, took = refused(rdp_proxy, "%s#%s" % (user, asset), pw)
    assert r.rc != 0 and took < FAST, (r, took)
    row = rdp_proxy.session_of(user, kind="rdp", result="denied")
    assert "log in once over SSH" in row["result"], row
    # one password login over SSH (to any asset: the login is enough)
    Client(rdp_proxy.ssh_port).ssh("%s#%s" % (user, asset), "true",
                                   password=pw)
    ((n,),) = rdp_proxy.store_sql(
        "SELECT length(nt_sealed) FROM users WHERE name = ?", user)
    assert n and int(n) > 16, "no sealed NT hash after the SSH login"
    r, _ = run_client(rdp_proxy, tmp_path, "%s#%s" % (user, asset), pw)
    assert (tmp_path / "before.png").exists(), r
    assert near(pixel(tmp_path / "before.png"), COLOUR)


def test_rdp_asset_default_port(rdp_proxy):
    _, out, _ = rdp_proxy.cli("asset", "add", uniq("d"), "--protocol", "rdp",
                              "--host", "192.0.2.1")
    _, show, _ = rdp_proxy.cli("asset", "show", out.strip(), "--json")
    assert '"port": 3389' in show or '"port":3389' in show, show


def test_web_ui_rdp_file_opens_in_xfreerdp(rdp_proxy, rdp_target, web_ui,
                                           tmp_path):
    """The asset page's .rdp file, as mstsc would read it: xfreerdp takes
    server, port and user name from it and reaches the target's desktop;
    the page shows the xfreerdp line and the user name to copy."""
    asset = rdp_asset(rdp_proxy, rdp_target, name=uniq("webrdp"))
    user, pw = rdp_user(rdp_proxy, asset)
    # the asset pages are an administrator's
    rdp_proxy.cli("role", "grant", "--user", user, "--role", "administrator")
    rdp_proxy.wait_http()
    dl = tmp_path / "asset.rdp"
    cfg = {"url": "http://127.0.0.1:%d" % rdp_proxy.http_port, "user": user,
           "password": pw, "asset_id": asset, "download": str(dl),
           "screenshots": os.environ.get("PORTCULLIS_SCREENSHOTS")}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    r = run(["node", "e2e/rdp.mjs", str(path)], cwd=WEB, timeout=120)
    assert r.rc == 0, r
    res = json.loads(r.out.strip().splitlines()[-1])
    assert res["filename"].endswith(".rdp"), res
    login = res["user_name"]
    assert login.startswith(user + "#"), res
    assert res["xfreerdp"] == "xfreerdp /v:127.0.0.1:%d /u:'%s' /sec:nla" % (
        rdp_proxy.rdp_port, login), res
    text = dl.read_bytes().decode()
    assert "full address:s:127.0.0.1:%d\r\n" % rdp_proxy.rdp_port in text
    assert "username:s:%s\r\n" % login in text, text
    # xfreerdp reads server, port and user name from the file alone
    out = tmp_path / "client"
    out.mkdir()
    env = dict(os.environ, OUT=str(out), TEXT="")
    r = run(xvfb_run("1024x768") + ["sh", "-c",
             DRIVER, "driver", "xfreerdp", str(dl), "/p:%s" % pw,
             "/cert:ignore", "/size:1024x768", "-clipboard",
             "/log-level:ERROR"], env=env, timeout=60)
    assert (out / "before.png").exists(), (r, (out / "client.log")
                                           .read_text()[-2000:])
    assert near(pixel(out / "before.png"), COLOUR)
    rdp_proxy.session_of(user, kind="rdp", result="ok")


def test_settings_route_says_where_rdp_listens(rdp_proxy):
    """GET /api/v1/settings: what the asset page builds the .rdp file
    and the client settings from, with the certificate's fingerprint."""
    import urllib.request
    port = rdp_proxy.wait_http().http_port
    req = urllib.request.Request(
        "http://127.0.0.1:%d/api/v1/login" % port, method="POST",
        data=json.dumps({"username": rdp_proxy.admin_user,
                         "password": rdp_proxy.admin_password}).encode(),
        headers={"Content-Type": "application/json"})
    tok = json.loads(urllib.request.urlopen(req, timeout=10).read())[
        "data"]["token"]
    req = urllib.request.Request(
        "http://127.0.0.1:%d/api/v1/settings" % port,
        headers={"Authorization": "Bearer " + tok})
    d = json.loads(urllib.request.urlopen(req, timeout=10).read())["data"]
    assert d["rdp"]["enabled"] is True and d["rdp"]["port"] == \
        rdp_proxy.rdp_port, d
    assert d["rdp"]["tls_fingerprint"] == rdp_proxy.info["tls_fingerprint"], d


def test_rdp_child_is_sandboxed(rdp_proxy):
    """Before the client has sent a byte, the RDP child serving it is in
    its seccomp filter with no_new_privs, unprivileged (as root: chrooted
    into rdp-root), and holds no file of the data directory but the log."""
    with socket.create_connection(("127.0.0.1", rdp_proxy.rdp_port),
                                  timeout=10) as s:
        pid = serving_process(rdp_proxy.descendants, rdp_proxy.rdp_port,
                              s.getsockname()[1])
        deadline = time.monotonic() + 5
        while True:
            with open("/proc/%d/status" % pid) as f:
                raw = f.read()
            if "Seccomp:\t2\n" in raw or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert "Seccomp:\t2\n" in raw, raw
        assert "NoNewPrivs:\t1\n" in raw, raw
        data_dir = str(rdp_proxy.dir.resolve())
        if os.geteuid() == 0:
            uid = [ln for ln in raw.splitlines() if ln.startswith("Uid:")][0]
            assert "0" not in uid.split()[1:], uid
            assert os.readlink("/proc/%d/root" % pid) == \
                os.path.join(data_dir, "rdp-root")
        held = []
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                path = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except FileNotFoundError:
                continue
            if path.startswith(data_dir) and \
                    path != str(rdp_proxy.log_path.resolve()):
                held.append((fd, path))
        assert held == [], held


def test_back_leg_woken_out_of_freerdp_waits(rdp_target, tmp_path):
    """FreeRDP's client sleeps 100 ms between reads while it connects; the
    back leg's watcher signals its thread when the target has answered
    (tgkill of its own thread with SIGURG, which the sandbox allows and
    nothing else: docs/rdp.md, "FreeRDP's connect waits"). The debug log
    says how often it woke the thread and warns if the sandbox refused
    the signal; the back leg's MCS, channel joins and licensing (one
    100 ms sleep or more each without it) take a fraction of that."""
    p = start_rdp_proxy(tmp_path / "pc")
    try:
        p.stop()
        p.set_config("server", "log_level", "debug")
        p.start()
        assert wait_listen(p.rdp_port, 15, p.proc), p.log_tail()
        asset = rdp_asset(p, rdp_target)
        user, pw = rdp_user(p, asset)
        before = len(rdp_target.keys())
        r, _ = run_client(p, tmp_path / "c", "%s#%s" % (user, asset), pw,
                          text="woken")
        assert_desktop_and_typing(rdp_target, tmp_path / "c", r, before,
                                  "woken")
        log = p.log_path.read_text()
        assert "could not signal its thread" not in log, log[-3000:]
        woke = [ln for ln in log.splitlines()
                if "the back leg's watcher woke its thread" in ln]
        assert len(woke) == 1, log[-3000:]
        n = int(woke[0].split("woke its thread ")[1].split()[0])
        assert n >= 1, woke
        # state 3 (MCS connect) to 12 (capability exchange), ms after the
        # client's connect: several round trips with the target
        at = {}
        for ln in log.splitlines():
            if "the back leg's state " in ln:
                st, ms = ln.split("the back leg's state ")[1].split(", ")
                at.setdefault(int(st), int(ms.split()[0]))
        assert 3 in at and 12 in at, log[-3000:]
        if at[12] - at[3] >= 300:
            warnings.warn("the back leg's MCS and licensing took %d ms "
                          "(a loaded box?)" % (at[12] - at[3]))
    finally:
        stop_rdp_proxy(p)


def freerdp_mapped(pid):
    """Does process pid have FreeRDP's library mapped?"""
    with open("/proc/%d/maps" % pid) as f:
        return "libfreerdp" in f.read()


def test_freerdp_is_loaded_only_with_rdp_on(rdp_proxy, tmp_path):
    """FreeRDP and its codecs (over a hundred libraries, three quarters of
    the program's start-up) are in the module portcullis-rdp.so, loaded
    by a server with [rdp] on: the program itself does not need them,
    a server without [rdp] does not map them, one with [rdp] does."""
    needed = subprocess.run(["readelf", "-d", str(build_dir() / "portcullis")],
                            capture_output=True, text=True, check=True).stdout
    assert "libfreerdp" not in needed and "libwinpr" not in needed, needed
    assert freerdp_mapped(rdp_proxy.proc.pid)
    p = Portcullis(tmp_path / "nordp")
    p.tune_for_tests()
    p.start()
    try:
        assert not freerdp_mapped(p.proc.pid)
    finally:
        p.stop()


def test_rdp_module_missing_or_writable_is_refused(tmp_path):
    """The module is code the server runs: one others may write is
    refused at start, as is none at all, each with the reason, and the
    server does not start half-way."""
    d = tmp_path / "bin"
    d.mkdir()
    shutil.copy2(build_dir() / "portcullis", d / "portcullis")
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    p.bin = d / "portcullis"
    p.set_config("rdp", "enabled", "true")
    p.set_config("rdp", "port", str(free_port()))

    def refused():
        r = subprocess.run([str(p.bin), "-c", str(p.conf), "serve"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0, r
        return r.stdout + r.stderr

    assert "cannot find the RDP proxy's module" in refused()
    shutil.copy2(build_dir() / "portcullis-rdp.so", d / "portcullis-rdp.so")
    os.chmod(d / "portcullis-rdp.so", 0o757)
    assert "not writable by group or others" in refused()


# An X.224 Connection Request asking for NLA (MS-RDPBCGR 2.2.1.1): what a
# served connection answers with a Connection Confirm (TPKT, version 3).
X224_CR = bytes.fromhex("030000130ee000000000000100080003000000")


def rdp_conn(port, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def served(port, src):
    """Does a connection from src get a session child (an X.224
    Connection Confirm), or is it closed unanswered?"""
    s = rdp_conn(port, src)
    try:
        s.sendall(X224_CR)
        got = s.recv(4)
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        got = b""
    finally:
        s.close()
    return got[:2] == b"\x03\x00"


@pytest.fixture
def rdp_capped(tmp_path, rdp_target):
    """A proxy of its own with small pre-authentication limits: 3
    unauthenticated RDP children per source, 5 in all."""
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    p.rdp_port = free_port()
    p.set_config("rdp", "enabled", "true")
    p.set_config("rdp", "port", str(p.rdp_port))
    p.set_config("ssh", "max_sessions", "6")
    p.set_config("ssh", "max_startups", "5")
    p.set_config("ssh", "max_startups_per_source", "3")
    p.start()
    assert wait_listen(p.rdp_port, 15, p.proc), p.log_tail()
    yield p
    p.stop()


def test_one_source_cannot_take_every_rdp_slot(rdp_capped, rdp_target,
                                               tmp_path):
    """A flood of silent connections from 127.0.0.2 holds only its
    per-source share of the pre-authentication slots: a real xfreerdp
    login from 127.0.0.1 still gets the desktop, another source is
    served, the flood's extra connections are closed unanswered, and when
    the flood goes its slots come back."""
    pc = rdp_capped
    flood = []
    for _ in range(10):
        try:
            flood.append(rdp_conn(pc.rdp_port, "127.0.0.2"))
        except OSError:
            pass
    time.sleep(1.0)  # every child forked (or refused)
    try:
        # 127.0.0.2 has its 3: a fourth is closed unanswered
        assert not served(pc.rdp_port, "127.0.0.2")
        # another source is served
        assert served(pc.rdp_port, "127.0.0.3")
        asset = rdp_asset(pc, rdp_target)
        user, pw = rdp_user(pc, asset)
        r, _ = run_client(pc, tmp_path / "c", "%s#%s" % (user, asset), pw)
        assert (tmp_path / "c" / "before.png").exists(), r
        assert near(pixel(tmp_path / "c" / "before.png"), COLOUR)
        pc.session_of(user, kind="rdp", result="ok")
    finally:
        for s in flood:
            s.close()
    # the flood's children see their client gone and end; their slots
    # are given back when the spawner reaps them
    deadline = time.monotonic() + 10
    while not served(pc.rdp_port, "127.0.0.2"):
        assert time.monotonic() < deadline, "slots never came back"
        time.sleep(0.3)


def test_directory_user_told_rdp_is_not_for_them(tmp_path, rdp_target):
    """A login of a configured directory domain (alice@contoso.com) is
    refused at once saying that domain users cannot use RDP yet, not with
    the SSH-or-web advice a local user without an NT hash gets (which
    would not help: a directory password never gives us an NT hash)."""
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    p.rdp_port = free_port()
    p.set_config("rdp", "enabled", "true")
    p.set_config("rdp", "port", str(p.rdp_port))
    with open(p.conf, "a") as f:
        f.write('\n[directory "contoso.com"]\n'
                'url = ldap://127.0.0.1:%d\n'
                'bind = uid={user},ou=people,dc=contoso,dc=com\n'
                'base_dn = ou=people,dc=contoso,dc=com\n' % free_port())
    p.start()
    try:
        assert wait_listen(p.rdp_port, 15, p.proc), p.log_tail()
        asset = rdp_asset(p, rdp_target)
        r, took = refused(p, "alice@contoso.com#%s" % asset, "Dir-Pass-1")
        assert r.rc != 0 and took < FAST, (r, took)
        row = p.wait_session(
            lambda row: row.get("kind") == "rdp" and "cannot log in over "
            "RDP" in (row.get("result") or ""), 20, "the directory refusal")
        assert "directory (domain) users" in row["result"], row
        assert "log in once over SSH" not in row["result"], row
    finally:
        p.stop()
