"""The web UI (issue 7): web/dist served at / by a real `portcullis
serve`, and the UI driven in Debian's Chromium (playwright-core, headless)
by web/e2e/run.mjs.

Covers: content types, caching and gzip of the built files, the security
headers and the Content-Security-Policy, the SPA fallback, that no path or
symlink leads out of web_root, what a server without a built UI answers,
GET /api/v1/settings, and in the browser: login with TOTP, TOTP enrolment
with a QR code, a user, an asset and a grant made in the UI, the exact ssh
command the UI shows (then run as shown), a recorded session played in the
page, an API token created, disabled and deleted, every page without
console errors, a phone-sized screen, and the CSP blocking an inline
script. The browser run saves the screenshots in a temporary directory
(PORTCULLIS_SCREENSHOTS=docs/screenshots refreshes README.md's).
"""

import gzip
import http.client
import json
import os
import re
import select
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import pclib
from pclib import REPO, SSH_COMMON, Client, EchoServer, run, totp_code, uniq

WEB = REPO / "web"
DIST = WEB / "dist"
# The browser runs save the main pages in a directory of this run's
# (a test run leaves the checkout as it found it);
# PORTCULLIS_SCREENSHOTS=docs/screenshots refreshes the ones README.md
# shows.
SCREENSHOTS = Path(os.environ.get("PORTCULLIS_SCREENSHOTS") or
                   tempfile.mkdtemp(prefix="portcullis-screenshots."))
CHROMIUM = os.environ.get("PORTCULLIS_CHROMIUM", "/usr/bin/chromium")
NOT_BUILT = "the web UI is not built; run: cd web && npm ci && npm run build"
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
       "style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; worker-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def get(port, path, headers=None, method="GET"):
    """One request with the path sent exactly as given; status 0 when the
    server closed the connection without an answer (libwebsockets does
    that to a NUL in a path)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except http.client.RemoteDisconnected:
        return 0, {}, b""
    finally:
        conn.close()


def newest_source():
    files = [WEB / "index.html", WEB / "vite.config.js",
             WEB / "package-lock.json"]
    for d in (WEB / "src", WEB / "public"):
        files += [p for p in d.rglob("*") if p.is_file()]
    return max(p.stat().st_mtime for p in files)


@pytest.fixture(scope="module")
def web_ui():
    """web/dist, built if missing or older than web/'s sources (npm ci
    first when node_modules is missing)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is missing: `./dev deps` installs nodejs and npm")
    if not (WEB / "node_modules" / ".package-lock.json").exists():
        r = run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, timeout=600)
        assert r.rc == 0, r
    index = DIST / "index.html"
    if not index.exists() or index.stat().st_mtime < newest_source():
        r = run([npm, "run", "build"], cwd=WEB, timeout=300)
        assert r.rc == 0, r
    assert index.exists()
    return DIST


def asset_paths():
    html = (DIST / "index.html").read_text()
    js = re.search(r'src="(/assets/[^"]+\.js)"', html).group(1)
    css = re.search(r'href="(/assets/[^"]+\.css)"', html).group(1)
    return js, css


def check_security_headers(h, csp):
    assert h["content-security-policy"] == csp, h
    assert h["x-content-type-options"] == "nosniff", h
    assert h["referrer-policy"] == "no-referrer", h
    assert h["x-frame-options"] == "DENY", h


# ------------------------------------------------------------ serving files

def test_files_types_caching_gzip_and_headers(proxy, web_ui):
    port = proxy.wait_http().http_port
    st, h, body = get(port, "/")
    assert st == 200 and h["content-type"] == "text/html; charset=utf-8"
    assert body == (DIST / "index.html").read_bytes()
    assert h["cache-control"] == "no-cache"
    check_security_headers(h, CSP)

    js, css = asset_paths()
    st, h, plain = get(port, js)
    assert st == 200 and h["content-type"] == "text/javascript; charset=utf-8"
    assert h["cache-control"] == "public, max-age=31536000, immutable"
    assert "content-encoding" not in h
    assert h["vary"] == "Accept-Encoding"
    assert plain == (DIST / js.lstrip("/")).read_bytes()
    st, h, packed = get(port, js, {"Accept-Encoding": "br, gzip;q=0.8"})
    assert st == 200 and h["content-encoding"] == "gzip", h
    assert int(h["content-length"]) == len(packed) < len(plain)
    assert gzip.decompress(packed) == plain
    st, h, _ = get(port, js, {"Accept-Encoding": "gzip;q=0, deflate"})
    assert st == 200 and "content-encoding" not in h
    st, h, _ = get(port, css)
    assert st == 200 and h["content-type"] == "text/css; charset=utf-8"
    st, h, body = get(port, "/favicon.svg")
    assert st == 200 and h["content-type"] == "image/svg+xml"
    # HEAD: the headers of GET, no body
    st, h, body = get(port, "/", method="HEAD")
    assert st == 200 and body == b"" and \
        int(h["content-length"]) == (DIST / "index.html").stat().st_size

    # API answers keep their own, stricter policy
    st, h, _ = get(port, "/healthz")
    assert st == 200 and h["content-type"] == "application/json"
    check_security_headers(h, "default-src 'none'; frame-ancestors 'none'")
    assert h["cache-control"] == "no-store"


def test_spa_fallback_and_the_api_is_not_swallowed(proxy, web_ui):
    port = proxy.wait_http().http_port
    index = (DIST / "index.html").read_bytes()
    for path in ("/login", "/assets/0b8e6b8e-1111-4c2c-9a57-3a1d1a1c9d10",
                 "/sessions?user=x", "/users/alice/", "/users/j.doe",
                 "/users/j%20doe", "/x.key"):
        st, h, body = get(port, path)
        assert st == 200 and body == index, path
        assert h["cache-control"] == "no-cache", path
    for path in ("/assets/missing-abc.js", "/nope.css", "/a/b.png"):
        st, h, body = get(port, path)
        assert st == 404 and body == b"not found\n", path
    st, h, body = get(port, "/api/v1/nope")
    assert st == 404 and json.loads(body)["errors"][0]["code"] == "not_found"
    st, h, body = get(port, "/api/v1/assets")
    assert st == 401, body
    # only GET and HEAD reach the files
    st, h, body = get(port, "/", method="POST")
    assert st == 404 and h["content-type"] == "application/json"


def test_no_path_or_symlink_leads_out_of_web_root(pc, web_ui, tmp_path):
    root = tmp_path / "www"
    shutil.copytree(DIST, root)
    (tmp_path / "outside.js").write_text("SECRET-OUTSIDE\n")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "x.js").write_text("SECRET-OUTSIDE\n")
    os.symlink(tmp_path / "outside.js", root / "leak.js")
    os.symlink(tmp_path / "outdir", root / "linkdir")
    (root / "inside.js").write_text("INSIDE-OK\n")
    (root / ".hidden.js").write_text("SECRET-HIDDEN\n")
    pc.set_config("http", "web_root", str(root))
    pc.start().wait_http()
    port = pc.http_port
    assert get(port, "/inside.js")[:1] == (200,)
    conf = pc.conf.read_bytes()
    vault = (pc.dir / "vault.key").read_bytes()
    for path in ("/leak.js", "/linkdir/x.js", "/.hidden.js",
                 "/../outside.js", "/..%2foutside.js", "/%2e%2e/outside.js",
                 "/assets/../../outside.js", "//etc/passwd",
                 "/../pc/portcullis.conf", "/%2e%2e/%2e%2e/etc/passwd",
                 "/inside.js%00.html", "/./inside.js/", "/assets/..",
                 "/vault.key", "/../pc/vault.key"):
        st, h, body = get(port, path)
        assert b"SECRET-" not in body and conf not in body, path
        assert vault not in body and b"root:" not in body, path
        assert st in (0, 200, 400, 403, 404), (path, st)
        if st == 200:
            assert body == (root / "index.html").read_bytes(), path
    for path in ("/leak.js", "/linkdir/x.js", "/.hidden.js"):
        assert get(port, path)[0] == 404, path
    assert get(port, "/healthz")[0] == 200


def test_a_server_without_the_ui_says_how_to_build_it(pc, tmp_path):
    (tmp_path / "empty").mkdir()
    pc.set_config("http", "web_root", str(tmp_path / "empty"))
    pc.start().wait_http()
    port = pc.http_port
    for path in ("/", "/assets", "/index.html"):
        st, h, body = get(port, path)
        assert st == 503 and body.decode().strip() == NOT_BUILT, path
    assert get(port, "/healthz")[0] == 200
    pc.stop()
    # The data directory is no web root: it has no index.html, so nothing
    # in it (vault.key, the config) is ever served.
    pc.set_config("http", "web_root", str(pc.dir))
    pc.start().wait_http()
    for path in ("/vault.key", "/portcullis.conf", "/portcullis.db", "/"):
        st, h, body = get(pc.http_port, path)
        assert st == 503 and body.decode().strip() == NOT_BUILT, path


def api_login(port, user, password, totp=None):
    body = {"username": user, "password": password}
    if totp:
        body["totp"] = totp
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/api/v1/login", body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        doc = json.loads(r.read())
    finally:
        conn.close()
    assert r.status == 200, doc
    return doc["data"]["token"]


def test_settings_route(proxy):
    port = proxy.wait_http().http_port
    st, _, _ = get(port, "/api/v1/settings")
    assert st == 401
    # any signed-in user may read it (they need it for their command line)
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    tok = api_login(port, user, pw)
    st, h, body = get(port, "/api/v1/settings",
                      {"Authorization": "Bearer " + tok})
    assert st == 200, body
    d = json.loads(body)["data"]
    assert d["ssh"] == {"listen": "127.0.0.1", "port": proxy.ssh_port,
                        "host_key_fingerprint": proxy.fingerprint}
    assert d["http"]["port"] == port and d["http"]["tls"] is False
    assert d["http"]["url"] == "http://127.0.0.1:%d" % port
    assert d["http"]["tls_fingerprint"] is None
    # the RDP proxy, off unless configured (docs/rdp.md)
    assert d["rdp"] == {"enabled": False, "listen": "127.0.0.1",
                        "port": 3317, "tls_fingerprint": None}


# ------------------------------------------------------------- the browser

def _wait_open(proxy, user, timeout=20.0):
    """Waits until user has an open row (no result yet) in the report."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if [r for r in proxy.sessions()
                if r.get("user") == user and not r.get("result")]:
            return
        time.sleep(0.25)
    pytest.fail("no open session of %s" % user)


def test_browser(proxy, target, ssh_client, web_ui, tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("%s is missing: `./dev deps` installs chromium" % CHROMIUM)
    port = proxy.wait_http().http_port
    # an administrator with TOTP, made with the CLI
    admin, admin_pw = uniq("wadm"), "Web-admin-pw-" + uniq()
    proxy.user_add(admin, password=admin_pw)
    proxy.cli("role", "grant", "--user", admin, "--role", "administrator")
    secret = proxy.totp_enable(admin)
    # a real recorded session to play in the page
    rec_pw = "pw-" + uniq()
    rec_user = proxy.user_add(password=rec_pw)
    rec_asset = proxy.target_asset(target)
    proxy.allow(rec_user, rec_asset, native="record")
    r = ssh_client.ssh("%s#%s" % (rec_user, rec_asset),
                       "echo web-rec-$((6*7))", password=rec_pw)
    assert r.rc == 0 and "web-rec-42" in r.out, r
    row = proxy.session_of(rec_user, "ok", kind="exec")
    assert row["recording_path"], row
    # a recorded file transfer (legacy scp: one record per file)
    xfer = tmp_path / ("web-xfer-%s.txt" % uniq())
    xfer.write_text("x" * 4321)
    r = ssh_client.scp("%s#%s" % (rec_user, rec_asset), str(xfer),
                       ssh_client.remote("/tmp/" + xfer.name), legacy=True,
                       password=rec_pw)
    assert r.rc == 0, r
    xrow = proxy.session_of(rec_user, "ok", kind="scp")
    # and a refusal for the dashboard
    r = ssh_client.ssh("%s#%s" % (rec_user, rec_asset), "true",
                       password="wrong-" + rec_pw)
    assert r.rc != 0
    proxy.session_of(rec_user, "denied")

    names = {"user": uniq("wuser"), "asset": uniq("wasset"),
             "token": uniq("wtoken")}
    cfg = {
        "url": "http://127.0.0.1:%d" % port,
        "user": admin, "password": admin_pw, "totp_secret": secret,
        "target_host": target.host, "target_port": target.port,
        "target_key": open(target.key).read(),
        "target_fingerprint": target.fingerprint,
        "recorded_user": rec_user, "recorded_text": "web-rec-42",
        "transfer_session": xrow["id"], "transfer_name": xfer.name,
        "ssh_port": proxy.ssh_port, "screenshots": str(SCREENSHOTS),
        "names": names,
    }
    cfg_path = tmp_path / "web-e2e.json"
    cfg_path.write_text(json.dumps(cfg))
    # a session open while the dashboard is looked at
    held = ssh_client.popen_ssh("%s#%s" % (rec_user, rec_asset), "sleep 300",
                                password=rec_pw)
    try:
        _wait_open(proxy, rec_user)
        r = run(["node", "e2e/run.mjs", cfg_path], cwd=WEB, timeout=280)
    finally:
        pclib.stop_process(held, 10)
    assert r.rc == 0, "web e2e failed:\n%s\n%s" % (r.out[-3000:],
                                                    r.err[-6000:])
    res = json.loads(r.out.strip().splitlines()[-1])

    # What the UI did, as the CLI sees it.
    _, out, _ = proxy.cli("user", "show", names["user"], "--json")
    u = json.loads(out)
    assert u["totp_enabled"] is True and u["has_password"] is True, u
    _, out, _ = proxy.cli("asset", "show", names["asset"], "--json")
    a = json.loads(out)
    assert (a["host"], a["port"], a["login_user"]) == \
        (target.host, target.port, "root"), a
    assert a["has_key"] is True and \
        a["host_key_fingerprint"] == target.fingerprint, a
    assert res["asset_url"].endswith("/assets/" + a["id"])
    _, out, _ = proxy.cli("grant", "list", "--json")
    assert [g for g in json.loads(out) if g["asset_id"] == a["id"] and
            g["grantee"] == names["user"] and g["role"] == "viewer"], out
    _, out, _ = proxy.cli("token", "list", "--json")
    assert not [t for t in json.loads(out)
                if t.get("description") == names["token"]], out
    _, out, _ = proxy.cli("audit", "list", "--json", "--actor", admin)
    actions = {e["action"] for e in json.loads(out)}
    assert {"user.add", "user.totp.enable", "asset.add", "grant.add",
            "token.add", "token.update", "token.delete"} <= actions, actions
    assert res["csp_violations"], res
    assert res["settings_fingerprint"] == proxy.fingerprint, res

    # The ssh command the UI showed works as shown (plus the suite's
    # non-interactive options), for the signed-in user once they may.
    proxy.allow(admin, a["id"])
    argv = shlex.split(res["ssh_command"])
    assert argv[0] == "ssh"
    argv = ["ssh"] + SSH_COMMON + Client.auth_options() + argv[1:] + \
        ["echo", "via-web-command"]
    step = int(time.time() // 30)
    while int(time.time() // 30) == step or 30 - time.time() % 30 < 3:
        time.sleep(0.5)  # the browser's login used this step's code
    r = run(argv, env=ssh_client.env(admin_pw, totp_code(secret)))
    assert r.rc == 0 and r.out.strip() == "via-web-command", r

    for name in ("login", "dashboard", "asset", "recording", "tokens",
                 "sessions", "user-totp", "phone-assets"):
        p = SCREENSHOTS / ("%s.png" % name)
        assert p.exists() and p.stat().st_size > 5000, p


# ------------------------------------------------- agents in the browser

def read_json_line(proc, timeout=120.0):
    """The next JSON line the node script prints (a hand-over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("{"):
                return json.loads(line)
        elif proc.poll() is not None:
            break
    proc.kill()
    pytest.fail("web e2e (agents) stopped or hung; stderr:\n%s"
                % proc.stderr.read()[-6000:])


def echoes(port, payload=b"through-the-tunnel"):
    """Whether a TCP connection to port echoes payload back."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            return got == payload
    except OSError:
        return False


def test_browser_agents_credentials_and_tunnels(proxy, web_ui, tmp_path):
    from agentlib import Agent, wait_agent, wait_log

    port = proxy.wait_http().http_port
    admin, admin_pw = uniq("wagadm"), "Web-admin-pw-" + uniq()
    proxy.user_add(admin, password=admin_pw)
    proxy.cli("role", "grant", "--user", admin, "--role", "administrator")
    echo = EchoServer()
    agent_id = uniq("wagent")
    names = {"credential": uniq("wcred")}
    _, out, _ = proxy.cli("credential", "add", "--name", uniq("heir"))
    heir = pclib.parse_kv(out)["id"]
    cfg = {"mode": "agents", "url": "http://127.0.0.1:%d" % port,
           "user": admin, "password": admin_pw, "agent_id": agent_id,
           "agent_hostname": socket.gethostname(), "echo_port": echo.port,
           "rebind_credential": heir,
           "screenshots": str(SCREENSHOTS), "names": names}
    cfg_path = tmp_path / "web-agents.json"
    cfg_path.write_text(json.dumps(cfg))
    node = subprocess.Popen(["node", "e2e/run.mjs", str(cfg_path)], cwd=WEB,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    agent = None
    try:
        # the credential and the install snippet the page showed
        msg = read_json_line(node)
        conf = dict(re.findall(r"^(\w+) = (.+)$", msg["snippet"], re.M))
        assert conf == {"server": "ws://127.0.0.1:%d" % port,
                        "fingerprint": proxy.fingerprint,
                        "credential": msg["credential"]}, msg
        cred_id, secret = msg["credential"].split(":", 1)
        _, out, _ = proxy.cli("credential", "list", "--json")
        assert [c for c in json.loads(out) if c["id"] == cred_id and
                c["name"] == names["credential"]], out
        # an agent installed from that snippet
        agent = Agent(tmp_path / "agent", conf["server"], conf["fingerprint"],
                      (cred_id, secret), agent_id).start()
        wait_agent(proxy, agent_id)
        node.stdin.write("continue\n")
        node.stdin.flush()

        # the tunnel made in the page carries TCP to the echo service
        msg = read_json_line(node)
        tport = msg["tunnel_port"]
        assert echoes(tport), "no echo through tunnel port %d" % tport
        node.stdin.write("continue\n")
        node.stdin.flush()

        # its new ACL leaves 127.0.0.1 out
        msg = read_json_line(node)
        _, out, _ = proxy.cli("tunnel", "list", "--json")
        rows = [t for t in json.loads(out) if t["local_port"] == tport]
        assert rows and rows[0]["acl"] == ["10.9.9.9/32"], out
        assert not echoes(tport)
        node.stdin.write("continue\n")
        node.stdin.flush()

        # closed in the page: gone
        msg = read_json_line(node)
        assert msg == {"closed": True}
        assert node.wait(60) == 0, node.stderr.read()[-3000:]
        _, out, _ = proxy.cli("tunnel", "list", "--json")
        assert not [t for t in json.loads(out) if t["local_port"] == tport]
        deadline = time.monotonic() + 10
        while echoes(tport) is not False or _listening(tport):
            assert time.monotonic() < deadline, "tunnel port still open"
            time.sleep(0.2)
        # rebound in the page: the agent's own credential is refused now
        _, out, _ = proxy.cli("agent", "show", agent_id, "--json")
        assert json.loads(out)["bound_credential"] == heir, out
        wait_log(agent, "agent id bound to another credential")
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(10)
        if agent is not None:
            agent.stop()
        echo.close()
    for name in ("credentials", "agents", "agent"):
        p = SCREENSHOTS / ("%s.png" % name)
        assert p.exists() and p.stat().st_size > 5000, p


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


# ------------------------------------------------- the browser terminal

def test_browser_terminal(proxy, target, ssh_client, web_ui, tmp_path):
    """A shell in the page (xterm.js over /api/v1/terminal), opened by the
    server through its own SSH proxy: TOTP asked in the page, the session
    in the report as the browser's (kind shell, route direct, the
    browser's address) with a recording that plays; a wrong code and a
    user without a grant refused in words; a forged ticket refused."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("%s is missing: `./dev deps` installs chromium" % CHROMIUM)
    port = proxy.wait_http().http_port
    admin, admin_pw = uniq("wtadm"), "Web-term-pw-" + uniq()
    proxy.user_add(admin, password=admin_pw)
    proxy.cli("role", "grant", "--user", admin, "--role", "administrator")
    secret = proxy.totp_enable(admin)
    asset = proxy.target_asset(target)
    proxy.allow(admin, asset, native="record")
    plain_pw = "pw-" + uniq()
    plain = proxy.user_add(password=plain_pw)
    cfg = {"mode": "terminal", "url": "http://127.0.0.1:%d" % port,
           "user": admin, "password": admin_pw, "totp_secret": secret,
           "asset_id": asset, "plain_user": plain,
           "plain_password": plain_pw, "screenshots": str(SCREENSHOTS)}
    cfg_path = tmp_path / "web-terminal.json"
    cfg_path.write_text(json.dumps(cfg))
    r = run(["node", "e2e/run.mjs", cfg_path], cwd=WEB, timeout=240)
    assert r.rc == 0, "web e2e (terminal) failed:\n%s\n%s" % (
        r.out[-3000:], r.err[-6000:])
    res = json.loads(r.out.strip().splitlines()[-1])

    # refusals, in words
    assert "The terminal could not be opened" in res["wrong_totp"], res
    assert "TOTP code was not accepted" in res["wrong_totp"], res
    assert "The terminal could not be opened" in res["no_grant"], res
    assert "access denied" in res["no_grant"] or \
        "not allowed" in res["no_grant"], res
    assert res["size_after"][1] < res["size_before"][1], res
    assert res["played"] is True and res["violations"] == [], res

    # the report: as a native session, from the browser's address
    row = proxy.session_of(admin, "ok", kind="shell")
    assert row["route"] == "direct", row
    assert row["client"].startswith("127.0.0.1:"), row
    assert row["exit_status"] == 0, row
    rec = Path(row["recording_path"])
    assert rec.exists() and "pc-42" in rec.read_text(errors="replace"), row
    proxy.session_of(admin, "wrong TOTP code")
    refused = proxy.session_of(plain, "denied")
    assert refused["client"].startswith("127.0.0.1:"), refused
    _, out, _ = proxy.cli("audit", "list", "--json", "--actor", admin)
    assert {"login.ok", "login.fail", "session.start"} <= \
        {e["action"] for e in json.loads(out)}, out

    # a ticket is no password for anyone else: a forged one is refused
    forged = "pcwt1-" + "0" * 64
    r = ssh_client.ssh("%s#%s" % (plain, asset), "true", password=forged)
    assert r.rc != 0, r
    p = SCREENSHOTS / "terminal.png"
    assert p.exists() and p.stat().st_size > 5000, p
