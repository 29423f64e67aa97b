"""README.md's own commands, run as a new user would run them.

The fenced code blocks of README.md's "Using it" and "The REST API"
sections are read from the file itself (so the README and this test cannot
drift apart) and run with only the substitutions the README tells its
reader to make: the SSH server of theirs (`10.0.0.8`, `deploy`,
`/secure/deploy_key`) becomes the test's sshd, `gw.example` and the ports
become the test server's, SECRET the `secret=` that `user totp` printed,
and the `-L` ports free ones. The clients are unmodified OpenSSH ssh, scp
and sftp (through wrappers that add only `-F CONFIG`: alice's key, no
known_hosts) and curl.

alice has TOTP (the README enables it), and a code is good once: the
`oathtool` and askpass used here hand out codes of successive 30 s steps
(the server accepts one step either side of now), so five logins need not
wait 30 s each.

docs/cli.md's synopses are checked against the program: every option a
synopsis names is one `portcullis NOUN VERB --help` lists.
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time

import pytest

import pclib
from pclib import REPO, free_port, keygen, parse_kv, run, stop_process

README = REPO / "README.md"
CLI_MD = REPO / "docs" / "cli.md"


def section_blocks(text, title):
    """The fenced code blocks of the '## title' section, in order."""
    m = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(title), text,
                  re.S | re.M)
    assert m, "README.md has no section '## %s'" % title
    return re.findall(r"^```[a-z]*\n(.*?)^```", m.group(1), re.S | re.M)


def logical_lines(block):
    """A block's commands: continuation lines joined, comments kept (bash
    drops them)."""
    out, cur = [], ""
    for line in block.splitlines():
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        if cur.strip():
            out.append(cur)
        cur = ""
    return out


# One TOTP code source for the test's oathtool and askpass: each call
# gives the code of the step after the last one handed out, never one
# older than the step before now (and not that one in the last 5 s of a
# step, when it could leave the window before the server checks it).
# Walk.next_totp_usable() waits, before a login, until that step is at
# most one ahead of now (the server's window).
TOTP_SOURCE = r'''#!/usr/bin/python3
import base64, fcntl, hashlib, hmac, os, struct, sys, time
secret = os.environ["WALK_TOTP_SECRET"]
state = os.environ["WALK_TOTP_STATE"]
def code(step):
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 15
    v = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return "%06d" % (v % 1000000)
with open(state, "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    last = int(f.read().strip() or 0)
    now = time.time()
    # the step before now only while it stays in the window until used
    step = max(last + 1, int(now // 30) - (1 if now % 30 < 25 else 0))
    f.seek(0)
    f.truncate()
    f.write(str(step))
print(code(step))
'''


class Walk:
    """The reader's shell: a bin directory with ssh/scp/sftp wrappers and
    oathtool first on PATH, the askpass, and the variables the README's
    blocks set (P, ID, TOKEN)."""

    def __init__(self, d, pc):
        self.dir = d
        self.pc = pc
        self.bin = d / "bin"
        self.bin.mkdir()
        self.home = d / "alice"
        self.home.mkdir()
        self.key = keygen(self.home / "id_ed25519", "alice")
        cfg = d / "ssh_config"
        cfg.write_text("\n".join([
            "Host *",
            "  IdentityFile %s" % self.key,
            "  IdentitiesOnly yes",
            "  PreferredAuthentications publickey,keyboard-interactive",
            "  StrictHostKeyChecking no",
            "  UserKnownHostsFile /dev/null",
            "  LogLevel ERROR",
            "  ConnectTimeout 10", ""]))
        for tool in ("ssh", "scp", "sftp"):
            w = self.bin / tool
            w.write_text('#!/bin/sh\nexec /usr/bin/%s -F %s "$@"\n'
                         % (tool, shlex.quote(str(cfg))))
            w.chmod(0o755)
        totp = self.bin / "walk-totp"
        totp.write_text(TOTP_SOURCE)
        totp.chmod(0o755)
        oath = self.bin / "oathtool"
        oath.write_text('#!/bin/sh\n# oathtool --totp -b SECRET\n'
                        '[ "$1 $2" = "--totp -b" ] || exit 2\n'
                        'WALK_TOTP_SECRET="$3" exec %s\n' % totp)
        oath.chmod(0o755)
        askpass = self.bin / "askpass"
        askpass.write_text('#!/bin/sh\ncase "$1" in\n*TOTP*) exec %s ;;\n'
                           '*) echo "a long passphrase" ;;\nesac\n' % totp)
        askpass.chmod(0o755)
        self.vars = {}

    def env(self):
        env = dict(os.environ)
        env.pop("SSH_AUTH_SOCK", None)
        env.update({
            "PATH": "%s:%s" % (self.bin, env.get("PATH", "/usr/bin:/bin")),
            "SSH_ASKPASS": str(self.bin / "askpass"),
            "SSH_ASKPASS_REQUIRE": "force",
            "DISPLAY": env.get("DISPLAY") or ":0",
            "WALK_TOTP_STATE": str(self.dir / "totp-step"),
            "WALK_TOTP_SECRET": self.vars.get("SECRET", ""),
        })
        env.update(self.vars)
        return env

    def substitute(self, line, target, echo_port, local_port):
        """The substitutions README.md tells its reader to make."""
        pc = self.pc
        line = line.replace("build/portcullis", str(pc.bin))
        if target is None:  # lines that reach no SSH target
            line = line.replace("SECRET", self.vars.get("SECRET", "SECRET"))
            return line.replace("demo/portcullis.conf", str(pc.conf))
        line = line.replace("demo/portcullis.conf", str(pc.conf))
        line = line.replace("--host 10.0.0.8",
                            "--host 127.0.0.1 --port %d" % target.port)
        line = line.replace("--login deploy --key /secure/deploy_key",
                            "--login root --key %s" % target.key)
        line = line.replace("~alice/.ssh/id_ed25519.pub",
                            "%s.pub" % self.key)
        line = line.replace("-L 5432:127.0.0.1:5432",
                            "-L %d:127.0.0.1:%d" % (local_port, echo_port))
        line = line.replace("gw.example:/tmp/",
                            "gw.example:%s/" % target.files)
        line = line.replace("gw.example", "127.0.0.1")
        line = line.replace("2203", str(pc.ssh_port))
        line = line.replace("127.0.0.1:8080", "127.0.0.1:%d" % pc.http_port)
        line = line.replace("SECRET", self.vars.get("SECRET", "SECRET"))
        return line

    def next_totp_usable(self):
        """Waits until the code the source hands out next is within the
        server's window (one step either side of now)."""
        state = self.dir / "totp-step"
        last = int(state.read_text().strip() or 0) if state.exists() else 0
        now = time.time()
        nxt = max(last + 1, int(now // 30) - (1 if now % 30 < 25 else 0))
        ready = (nxt - 1) * 30 + 1.0  # step nxt-1 has begun, with a margin
        if time.time() < ready:
            time.sleep(ready - time.time())

    def sh(self, script, input=None, timeout=60):
        """bash -e SCRIPT in alice's directory; the variables it sets are
        printed after it (env -0) and kept for the next blocks."""
        marker = "@@walk-vars@@"
        full = "set -ea\n%s\necho %s\nenv -0\n" % (script, marker)
        r = run(["bash", "-c", full], input=input, env=self.env(),
                cwd=self.home, timeout=timeout)
        out, _, envpart = r.out.partition(marker + "\n")
        for kv in envpart.split("\0"):
            k, _, v = kv.partition("=")
            if k in ("P", "ID", "TOKEN"):
                self.vars[k] = v
        r.out = out
        return r


@pytest.fixture
def walk(tmp_path, pc):
    """A started server (pc) and the reader's shell."""
    pc.start()
    d = tmp_path / "walk"
    d.mkdir()
    return Walk(d, pc)


def test_using_it_and_the_rest_api_as_written(walk, pc, target):
    """README.md "Using it" and "The REST API": the admin block, then
    every client line (ssh with the TOTP prompt, ssh with the code in the
    login, scp, sftp, -L) as alice, `session list`, then the REST block
    with curl; each command exits 0 and says what the README says."""
    text = README.read_text()
    blocks = section_blocks(text, "Using it")
    assert len(blocks) >= 3, "Using it: setup, clients, RDP blocks"
    setup, clients = blocks[0], blocks[1]
    echo = pclib.EchoServer()
    local_port = free_port()
    try:
        # 1. The administrator's block, as one script.
        script = "\n".join(walk.substitute(l, target, echo.port, local_port)
                           for l in logical_lines(setup))
        r = walk.sh(script)
        assert r.rc == 0, r
        kv = parse_kv(r.out)
        assert re.fullmatch(r"[A-Z2-7]{32}", kv.get("secret", "")), r.out
        assert kv["uri"].startswith("otpauth://totp/Portcullis:alice?"), r
        walk.vars["SECRET"] = kv["secret"]
        assert pclib.UUID_RE.match(walk.vars.get("ID", "")), walk.vars

        # 2. alice's clients, one line at a time.
        (walk.home / "file").write_text("readme walkthrough\n")
        lines = logical_lines(clients)
        kinds = []
        for line in lines:
            cmd = walk.substitute(line, target, echo.port, local_port)
            word = line.split()[0]
            if word in ("ssh", "scp", "sftp"):
                walk.next_totp_usable()  # each is one login with a code
            if word == "ssh" and " -L " in line:
                p = subprocess.Popen(["bash", "-c", cmd], env=walk.env(),
                                     cwd=walk.home, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE,
                                     start_new_session=True)
                try:
                    assert pclib.wait_port(local_port, 30, p), \
                        "ssh -L never listened: %r" % (p.stderr.read(),)
                    with socket.create_connection(("127.0.0.1", local_port),
                                                  10) as s:
                        s.sendall(b"through -L\n")
                        s.settimeout(10)
                        assert s.recv(100) == b"through -L\n"
                    # the forwarded connection's row closes before ssh
                    # ends (ending ssh first is the client disconnecting)
                    pc.wait_session(lambda row: row["kind"] == "forward" and
                                    row["bytes_up"] > 0, 20,
                                    "the -L connection's row")
                finally:
                    stop_process(p, 10)
                kinds.append("forward")
            elif word == "ssh":
                # without a command: a shell reading its commands on stdin
                r = walk.sh(cmd, input="echo shell-ok\n")
                assert r.rc == 0, r
                if "uptime" in line:
                    assert "load average" in r.out, r
                    kinds.append("exec")
                else:
                    assert "shell-ok" in r.out, r
                    kinds.append("shell")
            elif word == "scp":
                r = walk.sh(cmd)
                assert r.rc == 0, r
                assert (target.files / "file").read_text() == \
                    "readme walkthrough\n"
                kinds.append("sftp")  # OpenSSH 9's scp speaks SFTP
            elif word == "sftp":
                r = walk.sh(cmd, input="ls %s\nbye\n" % target.files)
                assert r.rc == 0, r
                assert "file" in r.out, r
                kinds.append("sftp")
            elif line.startswith("$P session list"):
                r = walk.sh(cmd)
                assert r.rc == 0, r
                rows = [l for l in r.out.splitlines()[1:] if l.strip()]
                assert len(rows) >= len(kinds), r.out
                for row in rows:
                    assert "alice" in row and row.split()[-1] == "ok", r.out
            else:
                pytest.fail("README 'Using it' has a line this test does "
                            "not know how to run: %r" % line)
        assert kinds.count("forward") == 1 and "exec" in kinds, kinds
    finally:
        echo.close()

    # 3. The REST API block.
    (rest,) = section_blocks(text, "The REST API")
    out = []
    for line in logical_lines(rest):
        cmd = walk.substitute(line, target, echo.port, local_port)
        if '"totp": "123456"' in cmd:
            # "with alice's current TOTP code"
            walk.next_totp_usable()
            code = run([walk.bin / "oathtool", "--totp", "-b",
                        walk.vars["SECRET"]], env=walk.env()).out.strip()
            cmd = cmd.replace('"123456"', '"%s"' % code)
        r = walk.sh(cmd)
        assert r.rc == 0, (line, r)
        out.append((line, r.out))
    assert walk.vars.get("TOKEN", "").count(".") == 2, walk.vars
    for line, o in out:
        if "/api/v1/assets" in line:
            assets = json.loads(o)["data"]
            assert [a["name"] for a in assets] == ["Prod DB 08"], o
        elif "/api/v1/login" in line:
            data = json.loads(o)["data"]
            assert data["user"]["name"] == "alice" and data["token"], o
        elif "role grant" in line:
            assert pclib.UUID_RE.match(o.strip()), o
    rc, out_, _ = pc.cli("role", "list", "--json")
    roles = json.loads(out_)
    assert any(x["grantee"] == "bob" and x["role"] == "configuration-manager"
               for x in roles), roles


RDP_TOOLS = ["xfreerdp", "freerdp-shadow-cli", "Xvfb", "xvfb-run",
             "winpr-hash", "xdotool", "convert", "xev"]


@pytest.mark.skipif(any(shutil.which(t) is None for t in RDP_TOOLS),
                    reason="needs FreeRDP's shadow server and xfreerdp")
def test_rdp_block_as_written(tmp_path, pc):
    """README.md's RDP block against FreeRDP's shadow server: the asset
    and grant lines, then the xfreerdp line as written (alice's TOTP code
    in the user name, since an RDP client cannot be asked for one; the
    old `/u:alice#win-db-01` was refused: `denied: TOTP required`), its
    certificate question answered as a reader would; the session is in
    `session list`."""
    from test_rdp import TARGET_PASSWORD, TARGET_USER, RdpTarget

    rdp = section_blocks(README.read_text(), "Using it")[2]
    lines = logical_lines(rdp)
    rdp_port = free_port()
    pc.set_config("rdp", "enabled", "true")
    pc.set_config("rdp", "port", str(rdp_port))
    pc.start()
    assert pclib.wait_listen(rdp_port, 15, pc.proc), pc.log_tail()
    # alice as the setup block makes her: TOTP on, profile engineers
    pc.cli("user", "add", "alice", "--password-stdin",
           input="a long passphrase\n")
    pc.cli("profile", "add", "engineers", "--native", "allow",
           "--local-forward")
    pc.cli("profile", "assign", "engineers", "--user", "alice")
    d = tmp_path / "walk"
    d.mkdir()
    walk = Walk(d, pc)
    walk.vars["SECRET"] = pc.totp_enable("alice")
    walk.vars["P"] = "%s -c %s" % (pc.bin, pc.conf)
    target = RdpTarget(tmp_path / "rdptarget").start()
    try:
        def subst(line):
            # "replace 10.0.0.5 with an RDP server of yours and
            # CORP\\svc-admin with an account there, --port if not 3389"
            line = line.replace("--host 10.0.0.5", "--host 127.0.0.1 "
                                "--port %d" % target.port)
            line = line.replace("'CORP\\svc-admin'", TARGET_USER)
            line = line.replace("'vaulted password'", "'%s'"
                                % TARGET_PASSWORD)
            line = line.replace("gw.example:3317", "127.0.0.1:%d" % rdp_port)
            return walk.substitute(line, None, 0, 0)

        cli = [l for l in lines if l.startswith("$P ")]
        assert len(cli) == 2, lines
        r = walk.sh("\n".join(subst(l) for l in cli))
        assert r.rc == 0, r
        (client,) = [l for l in lines if l.startswith("xfreerdp ")]
        walk.next_totp_usable()
        # The code source hands out the step before now until 25 s into a
        # step, which leaves the code as little as 5 s in the server's
        # window; an RDP client under ASan on a loaded CI box took longer
        # than that to reach the proxy's NLA (the test failed once so).
        # This is the walk's only code: start where it has 20 s or more.
        into = time.time() % 30
        if 10 < into < 25:
            time.sleep(25.2 - into)
        env = walk.env()
        env["HOME"] = str(d)  # xfreerdp's known_hosts2 of this test's own
        log = open(d / "xfreerdp.log", "wb")
        p = subprocess.Popen(pclib.xvfb_run() + ["bash", "-c", subst(client)],
                             env=env, cwd=d, stdin=subprocess.PIPE,
                             stdout=log, stderr=log, start_new_session=True)
        try:
            p.stdin.write(b"T\n")  # "Do you trust the above certificate?"
            p.stdin.close()
            seen = lambda: any(row["kind"] == "rdp" and
                               row["user"] == "alice" for row in pc.sessions())
            end = time.monotonic() + 60
            while not seen():
                assert time.monotonic() < end, "no rdp row; xfreerdp:\n%s" \
                    % (d / "xfreerdp.log").read_text(errors="replace")[-3000:]
                time.sleep(0.25)
            time.sleep(2)
        finally:
            try:  # xvfb-run, bash and xfreerdp: the whole group
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            stop_process(p, 10)
            log.close()
        row = pc.session_of("alice", kind="rdp", timeout=30)
        assert row["result"].startswith("ok"), row
        assert row["asset"] == "win-db-01" and row["bytes_down"] > 0, row
    finally:
        target.stop()


def test_cli_md_synopses_name_only_options_the_program_has():
    """Every option in a `portcullis NOUN VERB ...` synopsis of
    docs/cli.md is listed by `portcullis NOUN VERB --help` (the help is
    generated from the same table the parser uses)."""
    text = CLI_MD.read_text()
    blocks = re.findall(r"^```\n(.*?)^```", text, re.S | re.M)
    synopses = []
    for b in blocks:
        cur = None
        for line in b.splitlines():
            if line.startswith("portcullis "):
                cur = [line]
                synopses.append(cur)
            elif cur is not None and line.startswith(" ") and \
                    not line.strip().startswith("("):
                cur.append(line)
            else:
                cur = None
    assert len(synopses) > 50, "docs/cli.md lost its synopses?"
    opt = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
    wrong = []
    for s in synopses:
        words = " ".join(s).split()
        path = []
        for w in words[1:]:
            if not re.fullmatch(r"[a-z][a-z-]*", w):
                break
            path.append(w)
        r = run([pclib.portcullis_bin()] + path + ["--help"])
        if r.rc != 0:
            wrong.append("%s --help: exit %d" % (" ".join(path), r.rc))
            continue
        missing = set(opt.findall(" ".join(s))) - set(opt.findall(r.out))
        if missing:
            wrong.append("portcullis %s --help lacks %s"
                         % (" ".join(path), ", ".join(sorted(missing))))
    assert not wrong, "\n".join(wrong)


def test_every_list_route_pages(pc):
    """docs/api.md: lists take page[limit] and answer meta {total, limit,
    offset}; /api/v1/peers too."""
    pc.start().wait_http()  # start() waits for the SSH port only
    rc, out, _ = pc.cli("token", "add", "--user", "admin", "--expires", "1h")
    token = parse_kv(out)["token"]
    status, body = pclib.http_json(pc.http_port, "GET",
                                   "/api/v1/peers?page[limit]=1", token)
    assert status == 200, body
    assert body["meta"] == {"total": 0, "limit": 1, "offset": 0}, body


def test_api_asset_by_name_says_assets_go_by_id(pc, target):
    """`{id}` of /api/v1/assets/{id} is an ID (docs/api.md); an asset's
    name there, as the CLI would take it, is answered 404 saying so (it
    said only "asset 'NAME' not found" of an asset that exists)."""
    pc.start().wait_http()
    aid = pc.asset_add("named-asset", "127.0.0.1", target.port, "root")
    token = parse_kv(pc.cli("token", "add", "--user", "admin", "--expires",
                            "1h")[1])["token"]
    status, body = pclib.http_json(pc.http_port, "GET",
                                   "/api/v1/assets/named-asset", token)
    assert status == 404, body
    detail = body["errors"][0]["detail"]
    assert detail.startswith("asset 'named-asset' not found: the API names "
                             "an asset by its ID"), detail
    status, body = pclib.http_json(pc.http_port, "GET",
                                   "/api/v1/assets/%s" % aid, token)
    assert status == 200 and body["data"]["name"] == "named-asset", body


def test_operations_md_config_keys_are_in_their_sections(pc):
    """Every key of docs/operations.md's configuration table, written into
    the section the table puts it in, is one the program knows there (a
    value it refuses is fine: this checks the key and its section, which
    a reader copies; `[jobs] timeout_seconds` was documented for
    `[agent] timeout_seconds`)."""
    text = (REPO / "docs" / "operations.md").read_text()
    start = text.index("## Configuration (`portcullis.conf`)")
    table = text[start:text.index("### HTTPS", start)]
    section, pairs = None, []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not line.startswith("|") or \
                cells[0].startswith("---") or cells[0] == "section":
            continue
        m = re.fullmatch(r"`\[([a-z_]+)\]`", cells[0])
        if m:
            section = m.group(1)
        if cells[1] == "others":
            continue
        for key in re.findall(r"`([a-z_]+)`", cells[1]):
            pairs.append((section, key))
    assert len(pairs) > 60, pairs
    base = pc.conf.read_text()
    wrong = []
    for section, key in pairs:
        conf = pc.dir / "probe.conf"
        conf.write_text(base + "\n[%s]\n%s = @\n" % (section, key))
        r = run([pc.bin, "-c", conf, "user", "list"])
        if re.search(r"unknown (key|section) '", r.err):
            wrong.append("[%s] %s: %s" % (section, key, r.err.strip()))
    assert not wrong, "\n".join(wrong)


def test_config_given_twice_is_a_usage_error(pc):
    """docs/cli.md: repeated options are usage errors; `-c` too (the later
    one used to win silently: a second -c pasted after `$P` acted on
    another store)."""
    other = pc.dir / "other.conf"
    for args in (["-c", pc.conf, "-c", other],
                 ["--config=%s" % pc.conf, "--config", other]):
        r = run([pc.bin] + args + ["user", "list"])
        assert r.rc == 2, r
        assert r.err.strip() == "portcullis: option -c/--config given " \
            "twice (see 'portcullis --help')", r
