"""portcullis-agent end to end (issue 4): a real agent against a real
server, real ssh/scp/sftp through an asset whose route is the agent, in a
network namespace nothing can connect into; the refusals (wrong host key
fingerprint, wrong secret, deleted credential, duplicate ID, a target
outside the agent's allow-list); the faults (agent killed mid-session,
network cut, server restarted); an HTTP proxy (tinyproxy, CONNECT with
basic auth) and wss://. Servers listen on loopback or on the host's end of
the test's own veth pair.
"""

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

import pclib
from agentlib import (NsTarget, agent_server, agents, credential,  # noqa
                      is_online, make_agent, netns, ns_server, wait_agent,
                      wait_log)
from pclib import Client, free_port, make_file, run, sha256_file, uniq

PCTARGET_PASSWORD = "Pc-target-pw-4711"


def route_asset(pc, agent_id, target, host="127.0.0.1", port=None):
    """An SSH asset reached through agent_id: root with the target's key,
    host key pinned; returns its ID."""
    _, out, _ = pc.cli("asset", "add", uniq("a"), "--host", host,
                       "--port", port or target.port, "--login", "root",
                       "--key", target.key, "--host-key-fingerprint",
                       target.fingerprint, "--route", "agent:%s" % agent_id)
    asset_id = out.strip()
    assert pclib.UUID_RE.match(asset_id), out
    return asset_id


def allowed_user(pc, asset_id):
    """A user with a password allowed on asset_id: (login, password,
    user)."""
    pw = "pw-" + uniq()
    user = pc.user_add(password=pw)
    pc.allow(user, asset_id)
    return "%s#%s" % (user, asset_id), pw, user


@pytest.fixture
def ns_target(tmp_path, netns, pctarget):
    t = NsTarget(tmp_path / "target", netns, *pctarget)
    t.start()
    yield t
    t.stop()


@pytest.fixture
def local_target(tmp_path, pctarget):
    t = pclib.Target(tmp_path / "target", *pctarget)
    t.start()
    yield t
    t.stop()


# ------------------------------------------------------------- online


@pytest.mark.core
def test_agent_comes_online_with_its_facts(agent_server, make_agent):
    pc = agent_server
    a = make_agent(pc, conf=["name = db-08", "tag = prod", "tag = db"])
    row = wait_agent(pc, a.id)
    assert row["name"] == "db-08"
    assert sorted(row["tags"]) == ["db", "prod"]
    assert row["version"] == pclib.run(
        [str(a.command()[0]), "--version"]).out.split()[-1]
    uname = os.uname()
    assert row["kernel"] == "%s %s" % (uname.sysname, uname.release)
    assert row["arch"] == uname.machine
    assert row["hostname"] == socket.gethostname()
    assert "127.0.0.1" not in row.get("addresses", [])
    assert "online" in a.log_text()
    # A clean stop: the server sees it go at once.
    a.stop()
    wait_agent(pc, a.id, online=False, timeout=10)


def test_bad_config_is_one_clear_line(tmp_path):
    from agentlib import agent_bin
    conf = tmp_path / "bad.conf"
    conf.write_text("server = ws://127.0.0.1:1\nfrobnicate = 1\n")
    r = pclib.run([str(agent_bin()), "-c", str(conf)])
    assert r.rc == 2
    assert r.err.strip().splitlines() == [
        "portcullis-agent: %s:2: unknown key 'frobnicate'" % conf]
    r = pclib.run([str(agent_bin()), "--server", "http://x",
                   "--fingerprint", "SHA256:" + "A" * 43,
                   "--credential", "a:b", "--id", "x"])
    assert r.rc == 2 and "ws:// or wss://" in r.err
    assert len(r.err.strip().splitlines()) == 1


# ------------------------------------------------- ssh through the agent


@pytest.mark.core
def test_ssh_scp_sftp_through_an_agent_in_a_namespace(ns_server, ns_target,
                                                       make_agent, tmp_path):
    pc, ns = ns_server
    # Nothing outside the namespace reaches the target.
    for host in (ns.ns_ip, "127.0.0.1"):
        with pytest.raises(OSError):
            socket.create_connection((host, ns_target.port), timeout=3)
    a = make_agent(pc, netns=ns)
    wait_agent(pc, a.id)
    asset_id = route_asset(pc, a.id, ns_target)
    login, pw, user = allowed_user(pc, asset_id)
    cl = Client(pc.ssh_port)

    r = cl.ssh(login, "echo via-agent; cat /proc/net/dev | grep -c pcvn",
               password=pw)
    assert r.rc == 0, r
    assert r.out.split() == ["via-agent", "1"]  # ran inside the namespace
    row = pc.session_of(user, "ok", kind="exec")
    assert row["route"] == "agent:%s" % a.id

    src = tmp_path / "up.bin"
    make_file(src, 3 << 20)
    remote = ns_target.files / "up.bin"
    r = cl.scp(login, str(src), cl.remote(str(remote)), password=pw)
    assert r.rc == 0, r
    assert sha256_file(remote) == sha256_file(src)
    back = tmp_path / "back.bin"
    r = cl.scp(login, cl.remote(str(remote)), str(back), password=pw)
    assert r.rc == 0, r
    assert sha256_file(back) == sha256_file(src)

    key = pclib.keygen(tmp_path / "userkey")
    pc.key_add(user, str(key) + ".pub")
    batch = tmp_path / "batch"
    got = tmp_path / "sftp.bin"
    batch.write_text("get %s %s\nls %s\n" % (remote, got, ns_target.files))
    r = cl.sftp(login, batch, key=key)
    assert r.rc == 0, r
    assert sha256_file(got) == sha256_file(src)
    assert "stream tcp 127.0.0.1:%d" % ns_target.port in a.log_text()


# ------------------------------------------------------------ refusals


def test_wrong_fingerprint_is_refused_and_logged(agent_server, make_agent):
    pc = agent_server
    wrong = "SHA256:" + "A" * 43
    a = make_agent(pc, fingerprint=wrong)
    log = wait_log(a, "host key mismatch")
    line = [x for x in log.splitlines() if "host key mismatch" in x][0]
    assert "expected %s" % wrong in line
    assert "presented %s" % pc.fingerprint in line
    time.sleep(1)
    assert a.id not in agents(pc)
    assert a.running()  # it keeps trying (the server may be fixed)
    wait_log(a, "reconnecting in")


def test_wrong_secret_is_refused(agent_server, make_agent):
    pc = agent_server
    cid, _ = credential(pc)
    a = make_agent(pc, credential=(cid, "not-the-secret"))
    wait_log(a, "refused credential %s" % cid)
    assert a.id not in agents(pc)
    assert "not-the-secret" not in a.log_text()


def test_deleted_credential_drops_the_agent(agent_server, make_agent):
    pc = agent_server
    cred = credential(pc)
    a = make_agent(pc, credential=cred)
    wait_agent(pc, a.id)
    pc.cli("credential", "delete", cred[0])
    wait_agent(pc, a.id, online=False, timeout=10)
    wait_log(a, "refused credential %s" % cred[0], timeout=15)
    time.sleep(3)
    assert not is_online(agents(pc).get(a.id))


def test_duplicate_id_is_refused(agent_server, make_agent):
    pc = agent_server
    first = make_agent(pc)
    wait_agent(pc, first.id)
    # the same credential (another one is refused for the binding first)
    second = make_agent(pc, agent_id=first.id, credential=first.cred)
    wait_log(second, "agent id already in use")
    # The first one answers the server's probe and stays.
    time.sleep(2)
    assert is_online(agents(pc)[first.id])
    assert "connection to the server lost" not in first.log_text()


def _audit(pc, action):
    _, out, _ = pc.cli("audit", "list", "--json")
    return [e for e in json.loads(out) if e["action"] == action]


def test_agent_id_is_bound_to_its_first_credential(agent_server, make_agent):
    """Issue 11, defect 2: another credential cannot take over an offline
    agent ID; the owner still can; after `agent rebind` the new one can
    and the old one cannot (and is dropped if connected)."""
    pc = agent_server
    owner = make_agent(pc)
    wait_agent(pc, owner.id)
    owner.stop()
    wait_agent(pc, owner.id, online=False)

    thief_cred = credential(pc)
    thief = make_agent(pc, agent_id=owner.id, credential=thief_cred)
    wait_log(thief, "agent id bound to another credential")
    row = agents(pc)[owner.id]
    assert not is_online(row)
    assert row["credential_id"] == owner.cred[0]
    assert row["bound_credential"] == owner.cred[0]
    assert "agent id bound to another credential" in pc.log_text()
    refused = [e for e in _audit(pc, "agent.refused")
               if e["target"] == owner.id]
    assert refused and thief_cred[0] in refused[0]["actor"]
    thief.stop()

    back = make_agent(pc, agent_id=owner.id, credential=owner.cred)
    wait_agent(pc, owner.id)

    # rebind while the owner is connected: it is dropped, the new
    # credential comes online, the old one is refused from now on
    _, out, _ = pc.cli("agent", "rebind", owner.id, "--credential",
                       thief_cred[0])
    wait_agent(pc, owner.id, online=False)
    wait_log(back, "agent id bound to another credential")
    heir = make_agent(pc, agent_id=owner.id, credential=thief_cred)
    row = wait_agent(pc, owner.id)
    assert row["credential_id"] == thief_cred[0]
    assert row["bound_credential"] == thief_cred[0]
    assert [e for e in _audit(pc, "agent.rebind") if e["target"] == owner.id]
    back.stop()
    heir.stop()

    rc, _, err = pc.cli("agent", "rebind", owner.id, "--credential",
                        "0" * 32, check=False)
    assert rc == 1 and "credential" in err and "not found" in err, err
    rc, _, err = pc.cli("agent", "rebind", owner.id, check=False)
    assert rc == 2 and "--unbind" in err, err
    # unbound: the next credential to announce it takes it
    pc.cli("agent", "rebind", owner.id, "--unbind")
    wait_agent(pc, owner.id, online=False)
    again = make_agent(pc, agent_id=owner.id, credential=owner.cred)
    row = wait_agent(pc, owner.id)
    assert row["bound_credential"] == owner.cred[0]
    again.stop()


def test_target_outside_the_allow_list(agent_server, make_agent,
                                       local_target):
    pc = agent_server
    a = make_agent(pc, args=["--allow", "127.0.0.1:1"])
    wait_agent(pc, a.id)
    asset_id = route_asset(pc, a.id, local_target)
    login, pw, user = allowed_user(pc, asset_id)
    r = Client(pc.ssh_port).ssh(login, "echo never", password=pw)
    assert r.rc != 0
    assert "never" not in r.out
    assert "allow-list" in r.err, r
    wait_log(a, "refused stream 127.0.0.1:%d" % local_target.port)
    assert "not in the allow-list" in a.log_text()


# --------------------------------------------------------------- faults


def test_agent_killed_mid_session(agent_server, make_agent, local_target):
    pc = agent_server
    a = make_agent(pc)
    wait_agent(pc, a.id)
    asset_id = route_asset(pc, a.id, local_target)
    login, pw, user = allowed_user(pc, asset_id)
    cl = Client(pc.ssh_port)
    p = cl.popen_ssh(login, "echo started; sleep 60; echo finished",
                     password=pw)
    try:
        assert p.stdout.readline().strip() == b"started"
        a.kill()
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0
    assert b"finished" not in out
    # a clear word to the user, and the server lets go of everything
    assert b"portcullis: " in err, err
    wait_agent(pc, a.id, online=False, timeout=35)
    row = pc.session_of(user, kind="exec")
    assert row["result"].startswith("error"), row
    # only the spawner is left below the server: no session child
    end = time.time() + 10
    while len(pc.descendants()) > 1 and time.time() < end:
        time.sleep(0.2)
    assert len(pc.descendants()) == 1, "session children left behind"


@pytest.mark.timing
def test_cut_network_is_noticed_within_30s(ns_server, make_agent):
    pc, ns = ns_server
    a = make_agent(pc, netns=ns)
    wait_agent(pc, a.id)
    ns.link_down()
    t0 = time.monotonic()
    wait_agent(pc, a.id, online=False, timeout=40)
    assert time.monotonic() - t0 <= 30


def test_server_restart_agent_comes_back(agent_server, make_agent):
    pc = agent_server
    a = make_agent(pc)
    wait_agent(pc, a.id)
    pc.stop()
    time.sleep(2)
    pc.start()
    wait_agent(pc, a.id, timeout=30)
    assert "reconnecting in" in a.log_text()


# ------------------------------------------------ transport: proxy, TLS


@pytest.fixture
def tinyproxy(tmp_path):
    """tinyproxy on 127.0.0.1 with basic auth: (port, user, password,
    log path)."""
    exe = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    if not os.path.exists(exe):
        pytest.fail("tinyproxy is not installed (scripts/install-deps)")
    port = free_port()
    user, pw = "pxuser", "px-" + uniq()
    log = tmp_path / "tinyproxy.log"
    conf = tmp_path / "tinyproxy.conf"
    conf.write_text("\n".join([
        "Port %d" % port, "Listen 127.0.0.1", "Timeout 600",
        "LogFile \"%s\"" % log, "LogLevel Info", "MaxClients 20",
        "Allow 127.0.0.1", "BasicAuth %s %s" % (user, pw), ""]))
    if os.geteuid() == 0:
        conf.write_text(conf.read_text() + "User root\nGroup root\n")
    p = subprocess.Popen([exe, "-d", "-c", str(conf)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.STDOUT, start_new_session=True)
    if not pclib.wait_listen(port, 15, p):
        pclib.stop_process(p, 5)
        pytest.fail("tinyproxy did not start: %s" % (
            log.read_text() if log.exists() else "no log"))
    yield port, user, pw, log
    pclib.stop_process(p, 10)


def test_through_an_http_proxy_with_basic_auth(agent_server, make_agent,
                                               tinyproxy):
    pc = agent_server
    port, user, pw, log = tinyproxy
    a = make_agent(pc, conf=["proxy = http://%s:%s@127.0.0.1:%d"
                             % (user, pw, port)])
    wait_agent(pc, a.id)
    text = log.read_text(errors="replace")
    assert "CONNECT" in text and "127.0.0.1:%d" % pc.http_port in text, text
    # The server saw the proxy's connection, not a direct one: the proxy
    # really carried it (and a wrong password gets nowhere).
    bad = make_agent(pc, conf=["proxy = http://%s:bad-px-913@127.0.0.1:%d"
                               % (user, port)])
    wait_log(bad, "the proxy refused the CONNECT")
    assert bad.id not in agents(pc)
    assert "bad-px-913" not in bad.log_text()


def test_over_wss_with_a_ca_file(tmp_path, make_agent):
    pc = pclib.Portcullis(tmp_path / "pc")
    pc.tune_for_tests()
    pc.set_config("http", "tls_cert", "tls.crt")
    pc.set_config("http", "tls_key", "tls.key")
    pc.start()
    try:
        pc.wait_http()
        ca = pc.dir / "tls.crt"
        url = "wss://localhost:%d" % pc.http_port
        a = make_agent(pc, server=url, args=["--ca", str(ca)])
        wait_agent(pc, a.id)
        # Without the CA (system CAs only) the self-signed certificate is
        # refused, and ws:// to the TLS port gets nowhere either. Each
        # says why in words (libwebsockets' own are the same for every
        # TLS failure: "connect SSL err 1: error:00000001:lib(0)...").
        b = make_agent(pc, server=url)
        wait_log(b, "cannot connect")
        wait_log(b, "the server's TLS certificate was refused: not signed "
                 "by a CA this agent trusts; give the CA's certificate "
                 "with --ca")
        c = make_agent(pc, server="ws://127.0.0.1:%d" % pc.http_port)
        wait_log(c, "cannot connect")
        time.sleep(1)
        listed = agents(pc)
        assert b.id not in listed and c.id not in listed
        assert "lib(0)" not in b.log_text(), b.log_text()
    finally:
        pc.stop()


def test_wss_certificate_for_another_name_says_so(tmp_path, agent_server,
                                                  make_agent):
    """A certificate from a trusted CA (--ca) that names another host
    than the URL's: told as such, not as an untrusted CA."""
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
             "-out", str(crt), "-subj", "/CN=other.example", "-addext",
             "subjectAltName=DNS:other.example", "-days", "2"])
    assert r.rc == 0, r
    port = free_port()
    srv = subprocess.Popen(["openssl", "s_server", "-accept",
                            "127.0.0.1:%d" % port, "-cert", str(crt),
                            "-key", str(key), "-www", "-quiet"],
                           stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        assert pclib.wait_listen(port, 15, srv)
        a = make_agent(agent_server, server="wss://127.0.0.1:%d" % port,
                       args=["--ca", str(crt)])
        wait_log(a, "the server's TLS certificate was refused: it does "
                 "not name the host in the URL")
        assert "lib(0)" not in a.log_text(), a.log_text()
    finally:
        pclib.stop_process(srv, 5)


def test_wss_to_a_plain_http_server_says_so(agent_server, make_agent):
    """wss:// to a server that speaks plain HTTP: OpenSSL's error reads
    like a certificate problem; the agent says the server did not answer
    as a TLS server, and what to write instead."""
    pc = agent_server
    a = make_agent(pc, server="wss://127.0.0.1:%d" % pc.http_port)
    wait_log(a, "no TLS answer from the server: a plain HTTP server or "
             "port? Then the URL is ws://, or the server's TLS port")
    assert "certificate" not in a.log_text(), a.log_text()
    assert a.id not in agents(pc)


# ------------------------------------------- the agent's own WebSocket reads

def test_idle_agent_answers_the_servers_pings(tmp_path, make_agent):
    """Once online the agent reads its WebSocket itself (agent/conn.c,
    conn_raw_start), so it, not libwebsockets, must answer the server's
    PINGs. The server PINGs after 1 s of silence and drops an agent silent
    for 3 s; the agent's own keepalive (10 s) sends nothing in the 7 s
    below, so only its PONGs keep it online."""
    pc = pclib.Portcullis(tmp_path / "pc")
    pc.tune_for_tests()
    pc.set_config("agent", "keepalive_seconds", "1")
    pc.set_config("agent", "timeout_seconds", "3")
    pc.start()
    pc.wait_http()
    try:
        a = make_agent(pc)
        wait_agent(pc, a.id)
        time.sleep(7)
        assert agents(pc)[a.id]["online"], agents(pc)
        assert "keepalive timeout" not in pc.log_text()
        assert "connection to the server lost" not in a.log_text()
    finally:
        pc.stop()
