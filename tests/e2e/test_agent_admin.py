"""The administration side of agents (issue 4): agent credentials, agents
and tunnels through the CLI and the REST API, against a real running
`portcullis serve`, and the host key fingerprint `init` prints.

Covers: `init` prints fingerprint= equal to `ssh-keygen -lf` of the host
key and writes [tunnel] listen with --listen; credential add/list/delete
(the secret shown once, only an argon2id hash in the database, nowhere in
clear, not in the audit log); tunnel add with a picked and an explicit
port, a port held by another socket, out-of-range and duplicate ports, a
bad ACL, an unknown agent, the default ACL from $SSH_CONNECTION, the state
the running server writes (and "pending" when none runs); tunnel
list/acl/delete; agent list/show/delete (its tunnels go with it); the same
lifecycles over the API with the permission refusals of each role; and an
audit event for every change.

No agent connects in these tests (the agent program and the hub are
covered elsewhere), so an agent row is written the way an administrator
with the database's shell (sqlite3 or psql) would write it: straight into
the `agents` table.
It is the same row the hub writes when an agent announces itself
(store_agent_online), and the CLI and API only read it.
"""

import http.client
import json
import os
import socket
import time

import pytest

import pclib
from pclib import uniq

API = "/api/v1"


# ----------------------------------------------------------------- helpers

def sql(server, statement):
    """Runs one statement on the server's store behind its back, SQLite or
    PostgreSQL (pclib's store_sql); the rows as the sqlite3 shell prints
    them."""
    return server.store_text(statement)


def add_agent_row(server, agent_id=None, name=None, online=0, tags=("prod",)):
    """An agent as if it had announced itself once (see the module's
    docstring for why it is written behind the server's back)."""
    agent_id = agent_id or uniq("ag")
    name = name or agent_id
    sql(server, "INSERT INTO agents (id, name, hostname, os, kernel, arch,"
        " version, addresses, tags, remote_addr, online, first_seen,"
        " connected_at, last_seen) VALUES ('%s', '%s', '%s.lan',"
        " 'Debian GNU/Linux 12 (bookworm)', 'Linux 6.1.0', 'x86_64',"
        " '0.1.0', '[\"10.1.2.8\"]', '%s', '192.0.2.7:40000', %d,"
        " 1700000000, 1700000000, 1700000100)"
        % (agent_id, name, name, json.dumps(list(tags)), online))
    return agent_id


def kv(out):
    return pclib.parse_kv(out)


def cli_env(server, *args, env=None):
    """The CLI with an environment of our own (for $SSH_CONNECTION)."""
    e = dict(os.environ)
    e.pop("SSH_CONNECTION", None)
    e.pop("SSH_CLIENT", None)
    e.update(env or {})
    return pclib.run([server.bin, "-c", server.conf] + [str(a) for a in args],
                     env=e)


class Resp:
    def __init__(self, status, body):
        self.status = status
        self.raw = body
        self.json = json.loads(body) if body else None

    @property
    def data(self):
        return self.json["data"]

    def detail(self):
        return self.json["errors"][0]["detail"] if self.json else ""

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:600])


def call(server, method, path, body=None, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port,
                                      timeout=30)
    hdrs = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if token:
        hdrs["Authorization"] = "Bearer " + token
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return Resp(r.status, r.read())
    finally:
        conn.close()


def login(server, user, password):
    r = call(server, "POST", API + "/login",
             {"username": user, "password": password})
    assert r.status == 200, r
    return r.data["token"]


def audit_rows(server, action):
    _, out, _ = server.cli("audit", "list", "--json")
    return [e for e in json.loads(out) if e["action"] == action]


# ---------------------------------------------------------------- fixtures

TUNNEL_PORTS = 12


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """A started server of this module's own, with a tunnel port range of
    its own on loopback (so its picks do not meet other tests' tunnels)."""
    p = pclib.Portcullis(tmp_path_factory.mktemp("agentadmin"))
    p.tune_for_tests()
    base = pclib.port_block(TUNNEL_PORTS)
    p.set_config("tunnel", "listen", "127.0.0.1")
    p.set_config("tunnel", "port_min", str(base))
    p.set_config("tunnel", "port_max", str(base + TUNNEL_PORTS - 1))
    p.tunnel_base = base
    p.start()
    p.wait_http()
    p.admin_token = login(p, p.admin_user, p.admin_password)
    yield p
    p.stop()
    found = p.sanitizer_findings()
    assert not found, "sanitizer report in %s:\n%s" % (p.log_path, found)


# ------------------------------------------------------------------- init

def test_init_fingerprint_matches_ssh_keygen(pc):
    r = pclib.run(["ssh-keygen", "-lf", pc.dir / "ssh_host_ed25519_key"])
    assert r.rc == 0, r
    want = r.out.split()[1]
    assert want.startswith("SHA256:")
    assert pc.info["fingerprint"] == want
    # and the .pub file names the same key
    r = pclib.run(["ssh-keygen", "-lf", pc.dir / "ssh_host_ed25519_key.pub"])
    assert r.out.split()[1] == want


def test_init_listen_goes_to_tunnel_section(tmp_path):
    d = tmp_path / "pcl"
    r = pclib.run([pclib.portcullis_bin(), "init", "--dir", d, "--ssh-port",
                   pclib.free_port(), "--http-port", pclib.free_port(),
                   "--listen", "127.0.0.2"])
    assert r.rc == 0, r
    section, tunnel = None, {}
    for line in (d / "portcullis.conf").read_text().splitlines():
        s = line.strip()
        if s.startswith("["):
            section = s
        elif section == "[tunnel]" and "=" in s and not s.startswith("#"):
            k, v = s.split("=", 1)
            tunnel[k.strip()] = v.strip()
    assert tunnel.get("listen") == "127.0.0.2", tunnel


# ------------------------------------------------------- credentials (CLI)

@pytest.mark.core
def test_credential_cli_lifecycle(srv):
    name = uniq("cred")
    _, out, _ = srv.cli("credential", "add", "--name", name)
    info = kv(out)
    cid, secret = info["id"], info["secret"]
    assert len(cid) == 32 and all(c in "0123456789abcdef" for c in cid)
    assert len(secret) == 43

    # shown once: never by list, in either form
    _, out, _ = srv.cli("credential", "list")
    assert cid in out and name in out and secret not in out
    _, out, _ = srv.cli("credential", "list", "--json")
    rows = [c for c in json.loads(out) if c["id"] == cid]
    assert rows and rows[0]["name"] == name and rows[0]["agents"] == 0
    assert secret not in out and "argon2" not in out

    # the store holds an argon2id hash and the secret nowhere in clear
    stored = sql(srv, "SELECT secret_hash FROM credentials WHERE id = '%s'"
                 % cid).strip()
    assert stored.startswith("$argon2id$v=19$m=8,t=1,p=1$"), stored
    assert secret.encode() not in srv.store_dump()

    # audited with its ID, never the secret
    ev = [e for e in audit_rows(srv, "credential.add") if e["target"] == cid]
    assert len(ev) == 1 and secret not in json.dumps(ev)

    srv.cli("credential", "delete", cid)
    _, out, _ = srv.cli("credential", "list")
    assert cid not in out
    rc, _, err = srv.cli("credential", "delete", cid, check=False)
    assert rc == 1 and err.strip() == \
        "portcullis: credential '%s' not found" % cid
    assert [e for e in audit_rows(srv, "credential.delete")
            if e["target"] == cid]


def test_credential_cli_refusals(srv):
    rc, _, err = srv.cli("credential", "add", "--name", "x" * 129,
                         check=False)
    assert rc == 2 and "name is limited to 128 characters" in err
    rc, _, err = srv.cli("credential", "delete", "not-an-id", check=False)
    assert rc == 1 and "not found" in err
    rc, _, err = srv.cli("credential", "add", "extra", check=False)
    assert rc == 2 and "unexpected argument" in err
    for noun in ("credential", "agent", "tunnel"):
        rc, out, _ = srv.cli(noun, "--help")
        assert rc == 0 and ("portcullis %s" % noun) in out


# ---------------------------------------------------------- tunnels (CLI)

@pytest.mark.core
def test_tunnel_cli_ports_and_refusals(srv):
    agent = add_agent_row(srv)
    base = srv.tunnel_base

    # lowest free port; the running server writes the state (the agent is
    # not connected)
    rc, out, err = srv.cli("tunnel", "add", agent, "--remote", "127.0.0.1:22")
    t1 = kv(out)
    assert t1["state"] == "agent offline", out
    p1 = int(t1["port"])
    assert base <= p1 < base + TUNNEL_PORTS

    # a port someone else listens on is skipped when picking, and refused
    # when asked for
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", p1 + 1))
        holder.listen(1)
        _, out, _ = srv.cli("tunnel", "add", agent, "--remote", "h.lan:80")
        t2 = kv(out)
        assert int(t2["port"]) == p1 + 2, out
        rc, out, err = srv.cli("tunnel", "add", agent, "--remote", "h.lan:80",
                               "--local-port", p1 + 1, check=False)
        assert rc == 1 and "cannot be bound" in err, err
        assert out == ""
    finally:
        holder.close()

    # explicit port in range; the same number again is a duplicate for TCP
    # but free for UDP
    explicit = base + TUNNEL_PORTS - 1
    _, out, _ = srv.cli("tunnel", "add", agent, "--remote", "[::1]:5432",
                        "--local-port", explicit, "--idle-timeout", 30)
    t3 = kv(out)
    assert int(t3["port"]) == explicit
    rc, _, err = srv.cli("tunnel", "add", agent, "--remote", "x.lan:1",
                         "--local-port", explicit, check=False)
    assert rc == 1
    assert err.strip() == ("portcullis: local port %d/tcp is already used by "
                           "tunnel %s" % (explicit, t3["id"]))
    _, out, _ = srv.cli("tunnel", "add", agent, "--udp", "--remote",
                        "127.0.0.1:53", "--local-port", explicit)
    t4 = kv(out)
    assert int(t4["port"]) == explicit

    # out of range, bad ACL, unknown agent, bad target: one line each, and
    # nothing was added
    before = sql(srv, "SELECT COUNT(*) FROM tunnels").strip()
    cases = [
        (["--remote", "x:1", "--local-port", base - 1], 2,
         "outside the tunnel port range"),
        (["--remote", "x:1", "--acl", "10.0.0.0/33"], 2,
         "'10.0.0.0/33' in the ACL is not an address or CIDR"),
        (["--remote", "x:1", "--acl", "example.com"], 2, "not an address"),
        (["--remote", "x"], 2, "HOST:PORT"),
        (["--remote", "::1:22"], 2, "brackets"),
        (["--remote", "x:70000"], 2, "1 to 65535"),
        (["--remote", "x:1", "--idle-timeout", "-1"], 2, "--idle-timeout"),
    ]
    for args, want_rc, needle in cases:
        rc, out, err = srv.cli("tunnel", "add", agent, *args, check=False)
        assert rc == want_rc and needle in err, (args, rc, err)
        assert len(err.strip().splitlines()) == 1 and out == ""
    rc, _, err = srv.cli("tunnel", "add", "no-such-agent", "--remote", "x:1",
                         check=False)
    assert rc == 1 and err.strip() == \
        "portcullis: agent 'no-such-agent' not found"
    rc, _, err = srv.cli("tunnel", "add", agent, check=False)
    assert rc == 2 and "missing --remote" in err
    assert sql(srv, "SELECT COUNT(*) FROM tunnels").strip() == before

    # list: everything, or one agent's; JSON forms
    _, out, _ = srv.cli("tunnel", "list", "--agent", agent, "--json")
    rows = {t["id"]: t for t in json.loads(out)}
    assert set(rows) == {t1["id"], t2["id"], t3["id"], t4["id"]}
    assert rows[t1["id"]]["acl"] == ["127.0.0.1/32", "::1/128"]
    assert rows[t3["id"]]["remote_host"] == "::1"
    assert rows[t3["id"]]["idle_timeout_minutes"] == 30
    assert rows[t4["id"]]["protocol"] == "udp"
    _, out, _ = srv.cli("tunnel", "list")
    assert t1["id"] in out and "[::1]:5432" in out
    rc, _, err = srv.cli("tunnel", "list", "--agent", "nobody", check=False)
    assert rc == 1 and "agent 'nobody' not found" in err

    # acl: validated and stored canonical
    _, out, _ = srv.cli("tunnel", "acl", t1["id"],
                        "10.1.2.3/8, 192.0.2.1,2001:db8::1/32")
    assert kv(out)["acl"] == "10.0.0.0/8,192.0.2.1/32,2001:db8::/32"
    assert sql(srv, "SELECT acl FROM tunnels WHERE id = '%s'"
               % t1["id"]).strip() == "10.0.0.0/8,192.0.2.1/32,2001:db8::/32"
    rc, _, err = srv.cli("tunnel", "acl", t1["id"], "nonsense", check=False)
    assert rc == 2 and "not an address" in err

    # delete
    srv.cli("tunnel", "delete", t2["id"])
    rc, _, err = srv.cli("tunnel", "delete", t2["id"], check=False)
    assert rc == 1 and "tunnel '%s' not found" % t2["id"] in err

    # every change audited; the add names the new tunnel
    adds = {e["target"] for e in audit_rows(srv, "tunnel.add")}
    assert {t1["id"], t2["id"], t3["id"], t4["id"]} <= adds
    assert [e for e in audit_rows(srv, "tunnel.acl")
            if e["target"] == t1["id"]]
    assert [e for e in audit_rows(srv, "tunnel.delete")
            if e["target"] == t2["id"]]


def test_tunnel_default_acl_is_the_admins_address(srv):
    agent = add_agent_row(srv)
    r = cli_env(srv, "tunnel", "add", agent, "--remote", "127.0.0.1:22",
                env={"SSH_CONNECTION": "192.0.2.44 50123 10.0.0.1 22"})
    assert r.rc == 0, r
    tid = kv(r.out)["id"]
    assert sql(srv, "SELECT acl FROM tunnels WHERE id = '%s'"
               % tid).strip() == "192.0.2.44/32"
    r = cli_env(srv, "tunnel", "add", agent, "--remote", "127.0.0.1:22",
                env={"SSH_CLIENT": "2001:db8::9 50123 22"})
    assert r.rc == 0, r
    tid = kv(r.out)["id"]
    assert sql(srv, "SELECT acl FROM tunnels WHERE id = '%s'"
               % tid).strip() == "2001:db8::9/128"
    srv.cli("agent", "delete", agent)


def test_tunnel_pending_without_server(pc):
    """No server runs: the tunnel is stored and its state is pending,
    without waiting for an answer nobody will give."""
    agent = add_agent_row(pc)
    t0 = time.monotonic()
    _, out, _ = pc.cli("tunnel", "add", agent, "--remote", "127.0.0.1:22")
    assert time.monotonic() - t0 < 2.5
    info = kv(out)
    assert info["state"] == "pending"
    assert 20000 <= int(info["port"]) <= 20999  # the default range
    assert sql(pc, "SELECT state FROM tunnels WHERE id = '%s'"
               % info["id"]).strip() == ""


# ----------------------------------------------------------- agents (CLI)

@pytest.mark.core
def test_agent_cli_list_show_delete(srv):
    agent = add_agent_row(srv, name=uniq("db"), tags=("prod", "db"))
    _, out, _ = srv.cli("tunnel", "add", agent, "--remote", "127.0.0.1:22")
    tid = kv(out)["id"]

    _, out, _ = srv.cli("agent", "list")
    line = [l for l in out.splitlines() if l.startswith(agent + " ")]
    assert line, out
    assert "offline" in line[0] and "192.0.2.7:40000" in line[0] \
        and "prod,db" in line[0]
    _, out, _ = srv.cli("agent", "list", "--json")
    row = [a for a in json.loads(out) if a["id"] == agent][0]
    assert row["online"] is False and row["tags"] == ["prod", "db"]
    assert row["addresses"] == ["10.1.2.8"]

    _, out, _ = srv.cli("agent", "show", agent)
    shown = {}
    for l in out.splitlines():
        k, _, v = l.partition(" ")
        shown[k] = v.strip()
    assert shown["state"] == "offline"
    assert shown["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert shown["kernel"] == "Linux 6.1.0" and shown["arch"] == "x86_64"
    assert shown["version"] == "0.1.0" and shown["addresses"] == "10.1.2.8"
    assert shown["tags"] == "prod, db" and shown["tunnels"] == "1"
    assert shown["last_seen"] == "2023-11-14T22:15:00Z"
    _, out, _ = srv.cli("agent", "show", agent, "--json")
    assert json.loads(out)["hostname"].endswith(".lan")

    srv.cli("agent", "delete", agent)
    rc, _, err = srv.cli("agent", "show", agent, check=False)
    assert rc == 1 and err.strip() == "portcullis: agent '%s' not found" \
        % agent
    # its tunnels went with it
    assert sql(srv, "SELECT COUNT(*) FROM tunnels WHERE id = '%s'"
               % tid).strip() == "0"
    rc, _, err = srv.cli("agent", "delete", agent, check=False)
    assert rc == 1 and "not found" in err
    assert [e for e in audit_rows(srv, "agent.delete")
            if e["target"] == agent]


# -------------------------------------------------------------------- API

def test_api_credentials(srv):
    tok = srv.admin_token
    r = call(srv, "POST", API + "/credentials", {"name": "api agents"}, tok)
    assert r.status == 201, r
    cid, secret = r.data["id"], r.data["secret"]
    assert len(cid) == 32 and len(secret) == 43
    assert r.data["created_by"] == srv.admin_user

    r = call(srv, "GET", API + "/credentials", token=tok)
    assert r.status == 200
    row = [c for c in r.data if c["id"] == cid][0]
    assert "secret" not in row and secret not in r.raw.decode()
    r = call(srv, "GET", API + "/credentials/" + cid, token=tok)
    assert r.status == 200 and "secret" not in r.data
    # the CLI sees it; the hash is argon2id
    _, out, _ = srv.cli("credential", "list")
    assert cid in out
    assert sql(srv, "SELECT secret_hash FROM credentials WHERE id = '%s'"
               % cid).startswith("$argon2id$")

    r = call(srv, "POST", API + "/credentials", {"secret": "mine"}, tok)
    assert r.status == 400, r
    r = call(srv, "DELETE", API + "/credentials/" + cid, token=tok)
    assert r.status == 204, r
    r = call(srv, "DELETE", API + "/credentials/" + cid, token=tok)
    assert r.status == 404, r
    assert [e for e in audit_rows(srv, "credential.add")
            if e["target"] == cid and e["actor"] == srv.admin_user]
    assert [e for e in audit_rows(srv, "credential.delete")
            if e["target"] == cid]


@pytest.mark.core
def test_api_agents_and_tunnels(srv):
    tok = srv.admin_token
    agent = add_agent_row(srv, tags=("edge",))
    r = call(srv, "GET", API + "/agents?filter[id]=" + agent, token=tok)
    assert r.status == 200 and len(r.data) == 1, r
    assert r.data[0]["online"] is False and r.data[0]["tags"] == ["edge"]

    # POST: the default ACL is the caller's address (loopback here)
    r = call(srv, "POST", API + "/tunnels",
             {"agent": agent, "remote": "127.0.0.1:22"}, tok)
    assert r.status == 201, r
    t1 = r.data
    assert t1["acl"] == ["127.0.0.1/32"], t1
    assert srv.tunnel_base <= t1["local_port"] < \
        srv.tunnel_base + TUNNEL_PORTS
    r = call(srv, "POST", API + "/tunnels",
             {"agent": agent, "remote": "[::1]:53", "udp": True,
              "local_port": t1["local_port"], "acl": ["10.1.2.3/8"],
              "idle_timeout_minutes": 5}, tok)
    assert r.status == 201, r
    t2 = r.data
    assert t2["protocol"] == "udp" and t2["acl"] == ["10.0.0.0/8"]

    # refusals
    for body, status, needle in [
        ({"agent": "nobody", "remote": "x:1"}, 404, "agent 'nobody'"),
        ({"agent": agent, "remote": "x:1", "udp": True,
          "local_port": t1["local_port"]}, 409, "already used"),
        ({"agent": agent, "remote": "x:1",
          "local_port": srv.tunnel_base - 1}, 400, "outside"),
        ({"agent": agent, "remote": "x:1", "acl": ["300.0.0.1"]}, 400,
         "not an address"),
        ({"agent": agent, "remote": "x"}, 400, "HOST:PORT"),
        ({"agent": agent}, 400, "remote"),
        ({"agent": agent, "remote": "x:1", "colour": "red"}, 400, "colour"),
    ]:
        r = call(srv, "POST", API + "/tunnels", body, tok)
        assert r.status == status and needle in r.detail(), (body, r)

    r = call(srv, "GET", API + "/tunnels?filter[agent_id]=" + agent,
             token=tok)
    assert r.status == 200
    assert {t["id"] for t in r.data} == {t1["id"], t2["id"]}
    r = call(srv, "GET", API + "/tunnels/" + t1["id"], token=tok)
    assert r.status == 200 and r.data["state"] == "agent offline", r

    r = call(srv, "PATCH", API + "/tunnels/" + t1["id"],
             {"acl": ["192.0.2.0/24", "::1"]}, tok)
    assert r.status == 200 and r.data["acl"] == ["192.0.2.0/24", "::1/128"]
    r = call(srv, "PATCH", API + "/tunnels/" + t1["id"],
             {"remote": "127.0.0.1:23"}, tok)
    assert r.status == 400, r
    r = call(srv, "PATCH", API + "/tunnels/" + t1["id"], {"acl": ["x"]}, tok)
    assert r.status == 400, r
    _, out, _ = srv.cli("tunnel", "list", "--agent", agent)
    assert "192.0.2.0/24,::1/128" in out

    r = call(srv, "GET", API + "/agents/" + agent, token=tok)
    assert r.status == 200 and r.data["tunnels"] == 2
    r = call(srv, "DELETE", API + "/tunnels/" + t2["id"], token=tok)
    assert r.status == 204
    r = call(srv, "DELETE", API + "/agents/" + agent, token=tok)
    assert r.status == 204
    r = call(srv, "GET", API + "/tunnels/" + t1["id"], token=tok)
    assert r.status == 404
    r = call(srv, "GET", API + "/agents/" + agent, token=tok)
    assert r.status == 404

    for action, target in [("tunnel.add", t1["id"]), ("tunnel.add", t2["id"]),
                           ("tunnel.acl", t1["id"]),
                           ("tunnel.delete", t2["id"]),
                           ("agent.delete", agent)]:
        assert [e for e in audit_rows(srv, action)
                if e["target"] == target and e["actor"] == srv.admin_user], \
            (action, target)


def test_api_agent_rebind(srv):
    """POST /agents/{id}/rebind names the credential an agent ID belongs
    to ("" unbinds it); audited; unknown agents and credentials are 404,
    a body without "credential" 400."""
    tok = srv.admin_token
    agent = add_agent_row(srv)
    r = call(srv, "POST", API + "/credentials", {"name": "heir"}, tok)
    assert r.status == 201, r
    cred = r.data["id"]

    r = call(srv, "POST", API + "/agents/%s/rebind" % agent,
             {"credential": cred.upper()}, tok)
    assert r.status == 200 and r.data["bound_credential"] == cred, r
    _, out, _ = srv.cli("agent", "show", agent)
    shown = dict(l.split(None, 1) for l in out.splitlines() if " " in l)
    assert shown["bound_credential"].strip() == cred, out
    r = call(srv, "POST", API + "/agents/%s/rebind" % agent,
             {"credential": ""}, tok)
    assert r.status == 200 and r.data["bound_credential"] is None, r

    for path, body, status, needle in [
        (agent, {"credential": "f" * 32}, 404, "credential"),
        (agent, {"credential": "nope"}, 404, "credential"),
        ("nobody", {"credential": cred}, 404, "agent 'nobody'"),
        (agent, {}, 400, "credential"),
    ]:
        r = call(srv, "POST", API + "/agents/%s/rebind" % path, body, tok)
        assert r.status == status and needle in r.detail(), (path, body, r)
    rows = [e for e in audit_rows(srv, "agent.rebind")
            if e["target"] == agent and e["actor"] == srv.admin_user]
    assert len(rows) == 2, rows
    assert cred in rows[-1]["detail"] or cred in rows[0]["detail"]


def test_api_permissions(srv):
    """Credentials are the administrator's; agents and tunnels also the
    configuration manager's; anyone else is refused, and so is a caller
    without a token."""
    agent = add_agent_row(srv)
    users = {}
    for role in ("configuration-manager", "service", None):
        name, pw = uniq("u"), "Pw-" + uniq("p")
        srv.user_add(name, pw)
        if role:
            srv.cli("role", "grant", "--user", name, "--role", role)
        users[role] = login(srv, name, pw)

    cm = users["configuration-manager"]
    r = call(srv, "POST", API + "/credentials", {}, cm)
    assert r.status == 403 and "administrator" in r.detail(), r
    assert call(srv, "GET", API + "/credentials", token=cm).status == 403
    assert call(srv, "GET", API + "/agents", token=cm).status == 200
    r = call(srv, "POST", API + "/tunnels",
             {"agent": agent, "remote": "127.0.0.1:22"}, cm)
    assert r.status == 201, r
    tid = r.data["id"]

    for who in (users["service"], users[None]):
        for method, path, body in [
            ("GET", "/credentials", None), ("POST", "/credentials", {}),
            ("GET", "/agents", None), ("GET", "/agents/" + agent, None),
            ("DELETE", "/agents/" + agent, None), ("GET", "/tunnels", None),
            ("POST", "/agents/%s/rebind" % agent, {"credential": ""}),
            ("POST", "/tunnels", {"agent": agent, "remote": "x:1"}),
            ("PATCH", "/tunnels/" + tid, {"acl": ["0.0.0.0/0"]}),
            ("DELETE", "/tunnels/" + tid, None),
        ]:
            r = call(srv, method, API + path, body, who)
            assert r.status == 403, (method, path, r)
    r = call(srv, "GET", API + "/agents")
    assert r.status == 401
    # nothing changed by the refused calls
    assert sql(srv, "SELECT acl FROM tunnels WHERE id = '%s'"
               % tid).strip() == "127.0.0.1/32"
    assert call(srv, "DELETE", API + "/tunnels/" + tid, token=cm).status == 204
    assert call(srv, "DELETE", API + "/agents/" + agent,
                token=cm).status == 204
