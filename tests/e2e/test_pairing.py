"""Pairing (issue 14 item 6; docs/agent.md, "Install by pairing").

`portcullis agent pair` asks the running server for a one-time code; a
new machine (here a network namespace) fetches /pair/CODE with curl,
runs the installer it gets (install prefix in a temporary directory, no
systemd), and the agent it installed comes online with the code's tags.
A used, an expired and a made-up code get clear errors, never an
installer; 1,000 guesses get rate-limited; the static agent links no
libssh or libwebsockets shared library.
"""

import http.client
import json
import subprocess
import time

import pytest

import pclib
from agentlib import (NetNS, agents, netns, wait_agent)  # noqa: F401
from pclib import (Portcullis, parse_kv, serve_static_agent, static_agent,
                   stop_process, uniq)
from test_web import WEB, web_ui  # noqa: F401 (builds web/dist)


def start_server(tmp_path, listen="127.0.0.1", code_seconds=None):
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    if listen != "127.0.0.1":
        p.set_config("http", "listen", listen)
        p.set_config("http", "allow_plain_http", "true")
    if code_seconds is not None:
        p.set_config("pairing", "code_seconds", str(code_seconds))
    serve_static_agent(p)
    p.start()
    if not pclib.wait_port(p.http_port, 15, p.proc, host=listen):
        pytest.fail("HTTP listener not up; log:\n%s" % p.log_tail())
    return p


@pytest.fixture
def ns_pair_server(tmp_path, netns):  # noqa: F811
    p = start_server(tmp_path, listen=netns.host_ip)
    yield p, netns
    p.stop()


@pytest.fixture
def pair_server(tmp_path):
    p = start_server(tmp_path)
    yield p
    p.stop()


@pytest.fixture
def short_server(tmp_path):
    p = start_server(tmp_path, code_seconds=2)
    yield p
    p.stop()


def pair(pc, *args):
    rc, out, err = pc.cli("agent", "pair", *args)
    kv = parse_kv(out)
    assert "code" in kv and "url" in kv, out + err
    return kv


def get(host, port, path):
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def run_sh(script, *args, input=None):
    return subprocess.run(["sh", "-s", "--"] + list(args), input=script,
                          capture_output=True, timeout=30)


def test_static_agent_links_no_libssh_or_libwebsockets():
    exe = static_agent()
    assert exe.exists(), "portcullis-agent-static was not built"
    r = subprocess.run(["ldd", str(exe)], capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert "libssh" not in out and "libwebsockets" not in out, out
    assert "not a dynamic executable" in out, out
    v = subprocess.run([str(exe), "--version"], capture_output=True,
                       text=True, timeout=10)
    assert v.returncode == 0 and v.stdout.startswith("portcullis-agent"), v
    # and it runs where no shared library is there at all: the library
    # directory hidden under an empty tmpfs in a mount namespace of its own
    lib = "/usr/lib/x86_64-linux-gnu"
    script = ("mount -t tmpfs none %s && ! ls %s/libssh.so* 2>/dev/null && "
              "%s --version && ! /bin/true" % (lib, lib, exe))
    h = subprocess.run(["unshare", "-m", "--propagation", "private", "sh",
                        "-c", script], capture_output=True, text=True,
                       timeout=20)
    # /bin/true itself cannot run there (it needs libc.so.6): the check
    # would pass for nothing otherwise
    assert h.returncode == 0, h
    assert h.stdout.startswith("portcullis-agent"), h


def test_pair_install_in_netns_agent_comes_online(ns_pair_server, tmp_path):
    pc, ns = ns_pair_server
    kv = pair(pc, "--tag", "paired", "--tag", "web", "--name", "new-box")
    code, url = kv["code"], kv["url"]
    assert len(code) >= 10 and url.endswith("/pair/" + code)
    assert url.startswith("http://%s:%d/" % (ns.host_ip, pc.http_port))
    prefix = tmp_path / "root"
    agent_id = uniq("paired")
    # the one-line command, as the CLI printed it, without sudo
    r = ns.run("sh", "-c",
               "curl -sS '%s' | sh -s -- --prefix %s --id %s --tag extra"
               % (url, prefix, agent_id), check=False, timeout=60)
    assert r.rc == 0, (r.out, r.err)
    assert "no systemd here" in r.out
    conf = prefix / "etc/portcullis/agent.conf"
    exe = prefix / "usr/local/bin/portcullis-agent"
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    text = conf.read_text()
    assert "server = ws://%s:%d" % (ns.host_ip, pc.http_port) in text
    assert "fingerprint = " + pc.info["fingerprint"] in text
    assert exe.read_bytes() == static_agent().read_bytes()
    log = open(tmp_path / "agent.log", "w")
    proc = subprocess.Popen(["ip", "netns", "exec", ns.ns, str(exe), "-c",
                             str(conf)], stdout=log, stderr=log)
    try:
        row = wait_agent(pc, agent_id, online=True, timeout=30)
        assert sorted(row["tags"]) == ["extra", "paired", "web"], row
        assert row["name"] == "new-box"
        # the code is used: a second fetch is a clear error, no installer
        st, body = get(ns.host_ip, pc.http_port, "/pair/" + code)
        assert st == 404
        assert b"unknown, used or expired" in body
        assert b"credential" not in body
        r = ns.run("sh", "-c", "curl -sS '%s' | sh" % url, check=False)
        assert r.rc != 0
        assert "portcullis: this pairing code is unknown, used or expired" \
            in r.err
    finally:
        stop_process(proc)
        log.close()
    rc, out, _ = pc.cli("audit", "list", "--json", check=False)
    assert "pairing.use" in out and code not in out


def test_installer_help_and_bad_option(pair_server):
    pc = pair_server
    code = pair(pc)["code"]
    st, body = get("127.0.0.1", pc.http_port, "/pair/" + code)
    assert st == 200
    r = run_sh(body, "-h")
    assert r.returncode == 0
    for opt in (b"--tag", b"--name", b"--allow", b"--proxy", b"--prefix",
                b"--no-start"):
        assert opt in r.stdout
    r = run_sh(body, "--bogus")
    assert r.returncode == 1 and b"unknown option '--bogus'" in r.stderr


def test_expired_madeup_and_windows(short_server):
    pc = short_server
    code = pair(pc)["code"]
    # Windows: a clear message, and the code stays unused
    st, body = get("127.0.0.1", pc.http_port, "/pair/%s?os=windows" % code)
    assert st == 501 and b"no Windows agent yet" in body
    assert b"Write-Error" in body
    time.sleep(3)
    st, body = get("127.0.0.1", pc.http_port, "/pair/" + code)
    assert st == 404 and b"unknown, used or expired" in body
    st, body = get("127.0.0.1", pc.http_port, "/pair/aaaaaaaaaaaa")
    assert st == 404 and body.startswith(b"#!/bin/sh\necho 'portcullis:")
    st, body = get("127.0.0.1", pc.http_port, "/pair/aaaaaaaaaaaa/agent")
    assert st == 404


def test_no_server_running(tmp_path):
    p = Portcullis(tmp_path / "pc")
    rc, out, err = p.cli("agent", "pair", check=False)
    assert rc != 0 and "no server is running" in err


def test_thousand_guesses_rate_limited(pair_server):
    pc = pair_server
    good = pair(pc)["code"]
    statuses = []
    c = http.client.HTTPConnection("127.0.0.1", pc.http_port, timeout=10)
    for i in range(1000):
        c.request("GET", "/pair/%012d" % i)
        r = c.getresponse()
        r.read()
        statuses.append(r.status)
        if r.getheader("connection", "").lower() == "close":
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", pc.http_port,
                                           timeout=10)
    c.close()
    assert statuses.count(404) <= 10, statuses[:20]
    assert statuses.count(429) >= 990
    # while limited, even the right code gets no installer
    st, body = get("127.0.0.1", pc.http_port, "/pair/" + good)
    assert st == 429 and b"too many wrong pairing codes" in body


def https_api(port, method, path, body=None, token=None):
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=30,
                                    context=ctx)
    hdrs = {"Content-Type": "application/json"}
    if token:
        hdrs["Authorization"] = "Bearer " + token
    c.request(method, path, body=json.dumps(body) if body is not None
              else None, headers=hdrs)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


@pytest.fixture
def https_server(tmp_path):
    p = Portcullis(tmp_path / "pc")
    p.tune_for_tests()
    p.set_config("http", "tls_cert", "tls.crt")
    p.set_config("http", "tls_key", "tls.key")
    serve_static_agent(p)
    p.start()
    if not pclib.wait_port(p.http_port, 15, p.proc):
        pytest.fail("HTTPS listener not up; log:\n%s" % p.log_tail())
    yield p
    p.stop()


def test_https_api_pairing_pins_tls_key(https_server, tmp_path):
    """POST /api/v1/pairing; the printed line pins the TLS key with curl
    --pinnedpubkey; the installer trusts the self-signed certificate and
    the agent comes online over wss://."""
    pc = https_server
    st, r = https_api(pc.http_port, "POST", "/api/v1/login",
                      {"username": pc.admin_user,
                       "password": pc.admin_password})
    assert st == 200, r
    token = r["data"]["token"]
    st, r = https_api(pc.http_port, "POST", "/api/v1/pairing",
                      {"tags": ["tls"], "name": "tls-box"}, token)
    assert st == 201, r
    d = r["data"]
    assert d["plain_http"] is False
    assert d["url"] == "https://127.0.0.1:%d/pair/%s" % (pc.http_port,
                                                         d["code"])
    assert "--pinnedpubkey 'sha256//" in d["command"]
    assert d["command"].endswith("| sudo sh -s --")
    # a wrong tag is refused with the reason
    st, r = https_api(pc.http_port, "POST", "/api/v1/pairing",
                      {"tags": ["a'b"]}, token)
    assert st == 400 and "a tag is" in r["errors"][0]["detail"], r
    # without a token: 401
    st, _ = https_api(pc.http_port, "POST", "/api/v1/pairing", {})
    assert st == 401
    prefix = tmp_path / "root"
    agent_id = uniq("tls")
    cmd = d["command"].replace("| sudo sh -s --",
                               "| sh -s -- --prefix %s --id %s"
                               % (prefix, agent_id))
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    conf = prefix / "etc/portcullis/agent.conf"
    text = conf.read_text()
    assert "server = wss://127.0.0.1:%d" % pc.http_port in text
    ca = prefix / "etc/portcullis/server-ca.pem"
    assert ("ca = %s" % ca) in text
    assert ca.read_text().strip() == (pc.dir / "tls.crt").read_text().strip()
    # a wrong pin refuses the download: the same line with another key
    code2 = https_api(pc.http_port, "POST", "/api/v1/pairing", {},
                      token)[1]["data"]
    bad = code2["command"].replace("sha256//", "sha256//AAAA").replace(
        "| sudo sh -s --", "| sh -s -- --prefix %s" % (tmp_path / "bad"))
    r = subprocess.run(["sh", "-c", bad], capture_output=True, text=True,
                       timeout=60)
    assert "does not match pinned public key" in r.stderr, r
    assert not (tmp_path / "bad").exists()
    log = open(tmp_path / "agent.log", "w")
    proc = subprocess.Popen([str(prefix / "usr/local/bin/portcullis-agent"),
                             "-c", str(conf)], stdout=log, stderr=log)
    try:
        row = wait_agent(pc, agent_id, online=True, timeout=30)
        assert row["tags"] == ["tls"] and row["name"] == "tls-box"
    finally:
        stop_process(proc)
        log.close()


def test_pair_with_existing_credential(pair_server, tmp_path):
    pc = pair_server
    _, out, _ = pc.cli("credential", "add", "--name", "mine")
    kv = parse_kv(out)
    rc, out, err = pc.cli("agent", "pair", "--credential", kv["id"],
                          input="wrong-secret\n", check=False)
    assert rc != 0 and "wrong secret" in err
    rc, out, err = pc.cli("agent", "pair", "--credential", kv["id"],
                          "--json", input="%s:%s\n" % (kv["id"], kv["secret"]))
    code = json.loads(out)["code"]
    st, body = get("127.0.0.1", pc.http_port, "/pair/" + code)
    assert st == 200
    assert ("CREDENTIAL='%s:%s'" % (kv["id"], kv["secret"])).encode() in body
    # no credential was made for it
    _, out, _ = pc.cli("credential", "list", "--json")
    assert len(json.loads(out)) == 1


def test_browser_install_agent_button(pair_server, web_ui, tmp_path):  # noqa: F811
    """The web UI's "Install agent" (web/e2e/pairing.mjs in Chromium) makes
    a code and shows the one-line command; that line, run as shown (with
    --prefix instead of sudo), installs an agent that comes online with the
    tags typed in the page."""
    pc = pair_server
    cfg = {"url": "http://127.0.0.1:%d" % pc.http_port,
           "admin_user": pc.admin_user, "admin_password": pc.admin_password,
           "tags": ["webpair", "ui"], "name": "from-the-page",
           "screenshots": None}
    cfg_path = tmp_path / "pairing.json"
    cfg_path.write_text(json.dumps(cfg))
    r = pclib.run(["node", "e2e/pairing.mjs", str(cfg_path)], cwd=WEB,
                  timeout=240)
    assert r.rc == 0, r
    res = json.loads(r.out.strip().splitlines()[-1])
    cmd = res["command"]
    assert cmd.startswith("curl -sS 'http://127.0.0.1:%d/pair/"
                          % pc.http_port), cmd
    assert cmd.endswith("| sudo sh -s --"), cmd
    assert "plain HTTP" in res["status"]
    prefix = tmp_path / "root"
    agent_id = uniq("webpair")
    r = subprocess.run(["sh", "-c", cmd.replace(
        "| sudo sh -s --", "| sh -s -- --prefix %s --id %s"
        % (prefix, agent_id))], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    conf = prefix / "etc/portcullis/agent.conf"
    log = open(tmp_path / "agent.log", "w")
    proc = subprocess.Popen([str(prefix / "usr/local/bin/portcullis-agent"),
                             "-c", str(conf)], stdout=log, stderr=log)
    try:
        row = wait_agent(pc, agent_id, online=True, timeout=30)
        assert sorted(row["tags"]) == ["ui", "webpair"], row
        assert row["name"] == "from-the-page"
    finally:
        stop_process(proc)
        log.close()


def test_guesses_from_many_sources_hit_the_global_limit(pair_server):
    """10 sources x 10 wrong codes (each source at its own limit) reach
    the global one: a fresh source is refused even with the right code."""
    pc = pair_server
    good = pair(pc)["code"]
    for n in range(2, 12):
        src = "127.0.0.%d" % n
        for i in range(10):
            c = http.client.HTTPConnection("127.0.0.1", pc.http_port,
                                           timeout=10,
                                           source_address=(src, 0))
            c.request("GET", "/pair/%02d%010d" % (n, i))
            r = c.getresponse()
            r.read()
            c.close()
            assert r.status == 404, (src, i, r.status)
    c = http.client.HTTPConnection("127.0.0.1", pc.http_port, timeout=10,
                                   source_address=("127.0.0.77", 0))
    c.request("GET", "/pair/" + good)
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 429 and b"too many wrong pairing codes" in body
