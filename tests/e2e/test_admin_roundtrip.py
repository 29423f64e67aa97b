"""Both doors, one set of rules (issue 13): every admin noun made through
the CLI reads the same through the REST API, field for field, and the
reverse; and a value one door refuses the other refuses with the same
words.

The nouns: user, group, site, asset, grant, access profile, API token,
agent credential, agent and tunnel. An agent is not made by either door
(the hub writes it when an agent announces itself), so its row is written
straight into the store (sqlite3 or psql) the way test_agent_admin.py
does, and both doors read it.

The fields compared are each noun's JSON form (the admin layer's
descriptor tables, src/admin/); a field only one door shows fails the
test, and so does a refusal worded differently.
"""

import http.client
import json

import pytest

import pclib
from pclib import uniq

API = "/api/v1"


# ----------------------------------------------------------------- helpers

class Door:
    """The CLI and the API of one running server."""

    def __init__(self, server):
        self.s = server
        self.token = None

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.s.http_port,
                                          timeout=30)
        hdrs = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        try:
            conn.request(method, API + path, body=data, headers=hdrs)
            r = conn.getresponse()
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def api(self, method, path, body=None, status=None):
        st, j = self.call(method, path, body)
        if status is not None:
            assert st == status, (method, path, body, st, j)
        else:
            assert 200 <= st < 300, (method, path, body, st, j)
        return j["data"] if j is not None and "data" in j else j

    def api_refusal(self, method, path, body=None):
        """(status, detail) of a refused request."""
        st, j = self.call(method, path, body)
        assert st >= 400, (method, path, body, st, j)
        return st, j["errors"][0]["detail"]

    def cli(self, *args, input=None):
        _, out, _ = self.s.cli(*args, input=input)
        return out

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json"))

    def cli_refusal(self, *args, input=None):
        """(exit status, message) of a refused command: its one line
        without "portcullis: " and the usage hint."""
        rc, _, err = self.s.cli(*args, input=input, check=False)
        assert rc in (1, 2), (args, rc, err)
        msg = err.strip().splitlines()[-1]
        assert msg.startswith("portcullis: "), err
        msg = msg[len("portcullis: "):]
        if " (see 'portcullis " in msg:
            msg = msg[:msg.index(" (see 'portcullis ")]
        return rc, msg


def by(items, key, value):
    found = [i for i in items if i[key] == value]
    assert len(found) == 1, (key, value, items)
    return found[0]


def same(a, b, keys):
    """a and b agree on every one of keys, which both hold."""
    assert keys <= set(a), (keys - set(a), a)
    assert keys <= set(b), (keys - set(b), b)
    for k in sorted(keys):
        assert a[k] == b[k], (k, a[k], b[k])


def same_refusal(cli, api):
    """A refusal through both doors: usage (2) is the API's 400, a
    missing object (1) its 404, and the words are the same."""
    (rc, cmsg), (status, amsg) = cli, api
    assert cmsg == amsg, (cmsg, amsg)
    if rc == 2:
        assert status == 400, (cli, api)
    else:
        assert status in (403, 404, 409), (cli, api)


def sql(server, statement):
    """Runs one statement on the server's store behind its back, SQLite or
    PostgreSQL (pclib's store_sql); the rows as the sqlite3 shell prints
    them."""
    return server.store_text(statement)


# The JSON form of each noun (src/admin/ descriptors).
USER = {"id", "name", "disabled", "totp_enabled", "has_password",
        "created_at"}
GROUP = {"id", "name", "members"}
SITE = {"id", "path", "parent_id"}
ASSET = {"id", "name", "site", "site_id", "protocol", "host", "port",
         "login_user", "route", "has_password", "has_key",
         "host_key_fingerprint", "created_at"}
GRANT = {"id", "target_type", "asset_id", "site_id", "target",
         "grantee_type", "user_id", "group_id", "grantee", "role"}
SITE_ROLE = {"id", "site", "site_id", "grantee_type", "grantee", "role"}
PROFILE = {"id", "name", "native_session", "shell", "exec", "sftp", "scp",
           "local_forward", "remote_forward", "agent_forward", "x11",
           "max_session_minutes", "idle_timeout_minutes", "record_input",
           "rdp_clipboard_text", "rdp_clipboard_files", "rdp_audio",
           "rdp_drive", "rdp_printer", "rdp"}
TOKEN = {"id", "user", "user_id", "description", "enabled", "expired",
         "expires_at", "created_at", "filter"}
CREDENTIAL = {"id", "name", "agents", "created_by", "created_at"}
AGENT = {"id", "name", "online", "credential_id", "bound_credential",
         "hostname", "os", "kernel", "arch", "version", "addresses", "tags",
         "remote_addr", "first_seen", "connected_at", "last_seen"}
TUNNEL = {"id", "agent_id", "peer", "route", "protocol", "remote_host", "remote_port",
          "local_port", "acl", "idle_timeout_minutes", "state",
          "created_by", "created_at", "last_used"}


@pytest.fixture(scope="module")
def door(tmp_path_factory):
    p = pclib.Portcullis(tmp_path_factory.mktemp("roundtrip"))
    p.tune_for_tests()
    p.set_config("tunnel", "listen", "127.0.0.1")
    p.start()
    p.wait_http()
    d = Door(p)
    st, j = d.call("POST", "/login", {"username": p.admin_user,
                                      "password": p.admin_password})
    assert st == 200, j
    d.token = j["data"]["token"]
    yield d
    p.stop()
    found = p.sanitizer_findings()
    assert not found, "sanitizer report in %s:\n%s" % (p.log_path, found)


# ------------------------------------------------------------------ nouns

def test_user(door):
    name = uniq("rtu")
    door.cli("user", "add", name, "--disabled")
    api = by(door.api("GET", "/users"), "name", name)
    cli = by(door.cli_json("user", "list"), "name", name)
    same(cli, api, USER)
    assert api["disabled"] is True and api["has_password"] is False

    name2 = uniq("rtu")
    made = door.api("POST", "/users", {"name": name2, "password": "pw-" +
                                       uniq("x")}, status=201)
    cli = by(door.cli_json("user", "list"), "name", name2)
    same(cli, made, USER)
    assert cli["has_password"] is True

    same_refusal(door.cli_refusal("user", "add", name),
                 door.api_refusal("POST", "/users", {"name": name}))


def test_group(door):
    name = uniq("rtg")
    door.cli("group", "add", name)
    api = by(door.api("GET", "/groups"), "name", name)
    same(by(door.cli_json("group", "list"), "name", name), api, GROUP)

    name2 = uniq("rtg")
    made = door.api("POST", "/groups", {"name": name2}, status=201)
    same(by(door.cli_json("group", "list"), "name", name2), made, GROUP)

    same_refusal(door.cli_refusal("group", "add", name),
                 door.api_refusal("POST", "/groups", {"name": name}))


def test_site(door):
    path = "/root/" + uniq("rts")
    door.cli("site", "add", path)
    api = by(door.api("GET", "/sites"), "path", path)
    same(by(door.cli_json("site", "list"), "path", path), api, SITE)

    path2 = "/root/" + uniq("rts")
    made = door.api("POST", "/sites", {"path": path2}, status=201)
    same(by(door.cli_json("site", "list"), "path", path2), made, SITE)

    same_refusal(door.cli_refusal("site", "delete", "/root"),
                 door.api_refusal("DELETE", "/sites/" + api["parent_id"]))


def test_asset(door):
    name = uniq("rta")
    out = pclib.parse_kv(door.cli("asset", "add", name, "--host",
                                  "db.example.net", "--port", "2222",
                                  "--login", "deploy", "--route", "direct"))
    aid = out.get("id") or by(door.cli_json("asset", "list"), "name",
                              name)["id"]
    api = door.api("GET", "/assets/" + aid)
    same(by(door.cli_json("asset", "list"), "id", aid), api, ASSET)
    assert api["port"] == 2222 and api["login_user"] == "deploy"

    name2 = uniq("rta")
    made = door.api("POST", "/assets", {"name": name2, "host": "10.0.0.9",
                                        "protocol": "tcp", "port": 5432},
                    status=201)
    same(by(door.cli_json("asset", "list"), "id", made["id"]), made, ASSET)

    same_refusal(door.cli_refusal("asset", "add", uniq("rta"), "--host",
                                  "bad host!"),
                 door.api_refusal("POST", "/assets", {"name": uniq("rta"),
                                                      "host": "bad host!"}))


def test_grant(door):
    user, asset = uniq("rtu"), uniq("rta")
    door.cli("user", "add", user)
    door.cli("asset", "add", asset, "--host", "h.example.net")
    aid = by(door.cli_json("asset", "list"), "name", asset)["id"]
    door.cli("grant", asset, "--user", user, "--role", "editor")
    cli = by(door.cli_json("grant", "list"), "grantee", user)
    api = by(door.api("GET", "/assets/%s/grants" % aid), "grantee", user)
    same(cli, api, GRANT)
    assert api["role"] == "editor"

    group = uniq("rtg")
    door.cli("group", "add", group)
    made = door.api("POST", "/assets/%s/grants" % aid,
                    {"group": group, "role": "viewer"}, status=201)
    same(by(door.cli_json("grant", "list"), "id", made["id"]), made, GRANT)

    # a second grant to the same group: refused by both, naming a group
    cli = door.cli_refusal("grant", asset, "--group", group, "--role",
                           "owner")
    assert cli[1] == "group '%s' already has a grant on asset '%s'" % (
        group, asset), cli
    api = door.api_refusal("POST", "/assets/%s/grants" % aid,
                           {"group": group, "role": "owner"})
    assert api[1] == "group '%s' already has a grant on asset '%s'" % (
        group, asset), api
    rows = json.loads(door.cli("audit", "list", "--json", "--action",
                               "grant.add"))
    assert [e["detail"] for e in rows if e["target"] == asset] == [
        "group=%s role=viewer" % group, "user=%s role=editor" % user], rows

    same_refusal(door.cli_refusal("grant", asset, "--user", user, "--role",
                                  "boss"),
                 door.api_refusal("POST", "/assets/%s/grants" % aid,
                                  {"user": user, "role": "boss"}))


def test_site_role(door):
    user, group = uniq("rtu"), uniq("rtg")
    door.cli("user", "add", user)
    door.cli("group", "add", group)
    rid = door.cli("role", "grant", "--user", user, "--role",
                   "service").strip()
    api = by(door.api("GET", "/site-roles"), "id", rid)
    same(by(door.cli_json("role", "list"), "id", rid), api, SITE_ROLE)
    assert api["role"] == "service" and api["site"] == "/root"

    made = door.api("POST", "/site-roles",
                    {"group": group, "role": "configuration-manager"},
                    status=201)
    same(by(door.cli_json("role", "list"), "id", made["id"]), made,
         SITE_ROLE)

    same_refusal(door.cli_refusal("role", "grant", "--user", user, "--role",
                                  "service"),
                 door.api_refusal("POST", "/site-roles",
                                  {"user": user, "role": "service"}))
    same_refusal(door.cli_refusal("role", "grant", "--user", user, "--role",
                                  "boss"),
                 door.api_refusal("POST", "/site-roles",
                                  {"user": user, "role": "boss"}))
    door.api("DELETE", "/site-roles/" + made["id"], status=204)
    same_refusal(door.cli_refusal("role", "revoke", made["id"]),
                 door.api_refusal("DELETE", "/site-roles/" + made["id"]))


def test_profile(door):
    name = uniq("rtp")
    door.cli("profile", "add", name, "--native", "record", "--no-scp",
             "--local-forward", "--max-session-minutes", "90",
             "--record-input")
    api = by(door.api("GET", "/access-profiles"), "name", name)
    same(by(door.cli_json("profile", "list"), "name", name), api, PROFILE)
    assert api["scp"] is False and api["record_input"] is True

    name2 = uniq("rtp")
    made = door.api("POST", "/access-profiles",
                    {"name": name2, "native": "allow", "x11": True,
                     "idle_timeout_minutes": 15}, status=201)
    same(by(door.cli_json("profile", "list"), "name", name2), made, PROFILE)

    # record input without native record: refused by both, same words
    same_refusal(door.cli_refusal("profile", "add", uniq("rtp"), "--native",
                                  "allow", "--record-input"),
                 door.api_refusal("POST", "/access-profiles",
                                  {"name": uniq("rtp"), "native": "allow",
                                   "record_input": True}))

    # the RDP channel switches: clipboard and audio on, the rest off by
    # default; set alike by both
    assert made["rdp_clipboard_text"] is True and made["rdp_audio"] is True
    assert made["rdp"] is True
    assert not (made["rdp_clipboard_files"] or made["rdp_drive"] or
                made["rdp_printer"])
    name3 = uniq("rtp")
    door.cli("profile", "add", name3, "--native", "allow",
             "--rdp-clipboard-files", "--no-rdp-audio", "--rdp-drive",
             "--no-rdp")
    api = by(door.api("GET", "/access-profiles"), "name", name3)
    same(by(door.cli_json("profile", "list"), "name", name3), api, PROFILE)
    assert api["rdp_clipboard_files"] and api["rdp_drive"]
    assert not (api["rdp_audio"] or api["rdp_printer"] or api["rdp"])
    # files without the clipboard: refused by both, same words
    same_refusal(door.cli_refusal("profile", "add", uniq("rtp"), "--native",
                                  "allow", "--no-rdp-clipboard-text",
                                  "--rdp-clipboard-files"),
                 door.api_refusal("POST", "/access-profiles",
                                  {"name": uniq("rtp"), "native": "allow",
                                   "rdp_clipboard_text": False,
                                   "rdp_clipboard_files": True}))


def test_token(door):
    user = uniq("rtu")
    door.cli("user", "add", user)
    out = pclib.parse_kv(door.cli("token", "add", "--user", user,
                                  "--expires", "2d", "--description",
                                  "ci job", "--filter-cidr", "10.0.0.0/8",
                                  "--filter-path", "/api/v1/assets"))
    api = door.api("GET", "/api-tokens/" + out["id"])
    same(by(door.cli_json("token", "list"), "id", out["id"]), api, TOKEN)
    assert api["filter"] == {"cidrs": ["10.0.0.0/8"],
                             "paths": ["/api/v1/assets"]}
    assert api["description"] == "ci job" and api["user"] == user

    made = door.api("POST", "/api-tokens",
                    {"user": user, "expires_in": "3h",
                     "filter_paths": ["/api/v1/me"]}, status=201)
    cli = by(door.cli_json("token", "list"), "id", made["id"])
    same(cli, made, TOKEN - {"token"})
    assert "token" not in cli

    # a disabled token reads disabled through both doors
    door.cli("token", "disable", out["id"])
    assert door.api("GET", "/api-tokens/" + out["id"])["enabled"] is False

    same_refusal(door.cli_refusal("token", "add", "--user", user,
                                  "--expires", "soon"),
                 door.api_refusal("POST", "/api-tokens",
                                  {"user": user, "expires_in": "soon"}))
    same_refusal(door.cli_refusal("token", "add", "--user", user,
                                  "--expires", "1d", "--filter-cidr",
                                  "10.0.0.0/99"),
                 door.api_refusal("POST", "/api-tokens",
                                  {"user": user,
                                   "filter_cidrs": ["10.0.0.0/99"]}))
    same_refusal(door.cli_refusal("token", "delete", "nope"),
                 door.api_refusal("DELETE", "/api-tokens/nope"))


def test_credential(door):
    name = uniq("rtc")
    out = pclib.parse_kv(door.cli("credential", "add", "--name", name))
    api = door.api("GET", "/credentials/" + out["id"])
    same(by(door.cli_json("credential", "list"), "id", out["id"]), api,
         CREDENTIAL)
    assert api["name"] == name and api["created_by"].startswith("cli:")

    made = door.api("POST", "/credentials", {"name": uniq("rtc")},
                    status=201)
    assert made["secret"]
    cli = by(door.cli_json("credential", "list"), "id", made["id"])
    same(cli, made, CREDENTIAL)
    assert "secret" not in cli and made["created_by"] == door.s.admin_user

    same_refusal(door.cli_refusal("credential", "delete", "f" * 32),
                 door.api_refusal("DELETE", "/credentials/" + "f" * 32))


def add_agent_row(server):
    agent_id = uniq("ag")
    sql(server, "INSERT INTO agents (id, name, hostname, os, kernel, arch,"
        " version, addresses, tags, remote_addr, online, first_seen,"
        " connected_at, last_seen) VALUES ('%s', 'edge one', 'e1.lan',"
        " 'Debian GNU/Linux 12', 'Linux 6.1.0', 'x86_64', '0.1.0',"
        " '[\"10.1.2.8\"]', '[\"prod\",\"eu\"]', '192.0.2.7:40000', 0,"
        " 1700000000, 1700000000, 1700000100)" % agent_id)
    return agent_id


@pytest.mark.core
def test_agent(door):
    agent = add_agent_row(door.s)
    api = door.api("GET", "/agents/" + agent)
    cli = door.cli_json("agent", "show", agent)
    same(cli, api, AGENT | {"tunnels"})
    same(by(door.cli_json("agent", "list"), "id", agent),
         by(door.api("GET", "/agents"), "id", agent), AGENT)
    assert api["tags"] == ["prod", "eu"] and api["online"] is False

    cred = pclib.parse_kv(door.cli("credential", "add"))["id"]
    door.cli("agent", "rebind", agent, "--credential", cred)
    assert door.api("GET", "/agents/" + agent)["bound_credential"] == cred
    door.api("POST", "/agents/%s/rebind" % agent, {"credential": ""})
    assert door.cli_json("agent", "show", agent)["bound_credential"] is None

    same_refusal(door.cli_refusal("agent", "rebind", agent, "--credential",
                                  "f" * 32),
                 door.api_refusal("POST", "/agents/%s/rebind" % agent,
                                  {"credential": "f" * 32}))
    same_refusal(door.cli_refusal("agent", "delete", "nobody"),
                 door.api_refusal("DELETE", "/agents/nobody"))


@pytest.mark.core
def test_tunnel(door):
    agent = add_agent_row(door.s)
    out = pclib.parse_kv(door.cli("tunnel", "add", agent, "--remote",
                                  "127.0.0.1:5432", "--acl",
                                  "10.1.2.3/8,::1", "--idle-timeout", "7"))
    api = door.api("GET", "/tunnels/" + out["id"])
    same(by(door.cli_json("tunnel", "list"), "id", out["id"]), api, TUNNEL)
    assert api["acl"] == ["10.0.0.0/8", "::1/128"]
    assert api["idle_timeout_minutes"] == 7

    made = door.api("POST", "/tunnels",
                    {"agent": agent, "remote": "[::1]:53", "udp": True,
                     "acl": ["192.0.2.0/24"]}, status=201)
    same(by(door.cli_json("tunnel", "list"), "id", made["id"]), made,
         TUNNEL - {"state"})

    # the ACL changed through one door reads the same through the other
    door.cli("tunnel", "acl", made["id"], "192.0.2.9")
    assert door.api("GET", "/tunnels/" + made["id"])["acl"] == \
        ["192.0.2.9/32"]

    same_refusal(door.cli_refusal("tunnel", "add", agent, "--remote",
                                  "127.0.0.1:22", "--acl", "not-an-ip"),
                 door.api_refusal("POST", "/tunnels",
                                  {"agent": agent, "remote": "127.0.0.1:22",
                                   "acl": ["not-an-ip"]}))
    same_refusal(door.cli_refusal("tunnel", "add", "nobody", "--remote",
                                  "127.0.0.1:22", "--acl", "10.0.0.1"),
                 door.api_refusal("POST", "/tunnels",
                                  {"agent": "nobody",
                                   "remote": "127.0.0.1:22",
                                   "acl": ["10.0.0.1"]}))
    same_refusal(door.cli_refusal("tunnel", "acl", made["id"], "x/y"),
                 door.api_refusal("PATCH", "/tunnels/" + made["id"],
                                  {"acl": ["x/y"]}))
    same_refusal(door.cli_refusal("tunnel", "delete", "nope"),
                 door.api_refusal("DELETE", "/tunnels/nope"))


def test_one_audit_event_per_change(door):
    """A change through either door is audited once, by admin (no second
    event from the door's own generic code), with the same action and
    target whichever door it came through."""
    name = uniq("rtc")
    out = pclib.parse_kv(door.cli("credential", "add", "--name", name))
    made = door.api("POST", "/credentials", {"name": name}, status=201)
    u1, u2, g1 = uniq("rtu"), uniq("rtu"), uniq("rtg")
    door.cli("user", "add", u1)
    door.api("POST", "/users", {"name": u2}, status=201)
    door.cli("group", "add", g1)
    door.cli("group", "member", "add", g1, u1)
    door.api("POST", "/groups/%s/members" % g1, {"user": u2}, status=201)
    door.cli("user", "disable", u1)
    door.api("PATCH", "/users/" + u2, {"disabled": True})
    rows = json.loads(door.cli("audit", "list", "--json"))

    def events(target, action_prefix):
        return [e for e in rows if e["target"] == target
                and e["action"].startswith(action_prefix)]

    for cid, src in ((out["id"], "cli"), (made["id"], None)):
        ev = events(cid, "credential.")
        assert [e["action"] for e in ev] == ["credential.add"], ev
        if src:
            assert ev[0]["source"] == src
    for user, src, verb in ((u1, "cli", "user.disable"),
                            (u2, None, "user.update")):
        ev = events(user, "user.")
        assert sorted(e["action"] for e in ev) == sorted(["user.add", verb]), \
            ev
        assert all((e["source"] == "cli") == (src == "cli") for e in ev), ev
    ev = events(g1, "group.")
    assert sorted((e["action"], e["detail"]) for e in ev) == sorted(
        [("group.add", ""), ("group.member.add", u1),
         ("group.member.add", u2)]), ev
