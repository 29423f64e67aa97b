"""Domain logins against a real directory (docs/directories.md): Debian's
slapd, started here on loopback ports with its own database (users, groups,
a nested group) and a test CA made with openssl, serves two domains:

* contoso.com: ldap:// with StartTLS, a DN template bind, a first URL that
  refuses connections (the second is tried), a user filter that hides
  disabled users, recursive nested groups;
* fabrikam.com: ldaps://, search-then-bind with a service account whose
  password is sealed by `portcullis directory seal-password`.

Each test asserts what a user sees (ssh's exit and output, the API's
answer) and the report row or audit event.
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pclib import (Client, fresh_totp_code, free_port, keygen, run,
                   stop_process, uniq, wait_port)

SLAPD = "/usr/sbin/slapd"
BASE = "dc=contoso,dc=com"
PW = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3",
      "dave": "dave-pw-4", "svc": "svc-pw-5"}

pytestmark = pytest.mark.skipif(
    not os.path.exists(SLAPD) or shutil.which("ldapmodify") is None,
    reason="slapd and ldap-utils are needed (scripts/install-deps)")


def people(uid, extra=""):
    return ("dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\n"
            "uid: %s\ncn: %s\nsn: %s\ndisplayName: %s Test\n"
            "mail: %s@contoso.com\nuserPassword: %s\n%s\n"
            % (uid, BASE, uid, uid, uid, uid.capitalize(), uid, PW[uid],
               extra))


def group(cn, members):
    return ("dn: cn=%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: %s\n%s\n"
            % (cn, BASE, cn,
               "".join("member: %s\n" % m for m in members)))


def user_dn(uid):
    return "uid=%s,ou=people,%s" % (uid, BASE)


def group_dn(cn):
    return "cn=%s,ou=groups,%s" % (cn, BASE)


LDIF = (
    "dn: %s\nobjectClass: dcObject\nobjectClass: organization\n"
    "dc: contoso\no: Contoso\n\n" % BASE
    + "dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n"
    % BASE
    + "dn: ou=groups,%s\nobjectClass: organizationalUnit\nou: groups\n\n"
    % BASE
    # seeAlso stands in for AD's memberOf (group_attribute) in northwind.com
    + people("alice", "seeAlso: %s\n" % group_dn("ops")) + people("bob")
    + people("dave")
    + people("carol", "description: disabled\n")
    + "dn: cn=svc,%s\nobjectClass: person\ncn: svc\nsn: svc\n"
      "userPassword: %s\n\n" % (BASE, PW["svc"])
    + group("ops", [user_dn("alice"), user_dn("bob")])
    + group("devs", [user_dn("dave")])
    # nested: ops is a member of staff, so alice and bob are too
    + group("staff", [group_dn("ops")]))

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key
database mdb
maxsize 16777216
suffix "{base}"
rootdn "cn=admin,{base}"
rootpw admin-secret
directory {d}/db
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
"""


def openssl(*args):
    r = run(["openssl"] + list(args))
    assert r.rc == 0, r


class Slapd:
    """slapd on 127.0.0.1 (ldap:// and ldaps://) with the LDIF above."""

    def __init__(self, d):
        self.dir = Path(d)
        self.port = free_port()
        self.tls_port = free_port()
        self.proc = None
        (self.dir / "db").mkdir(parents=True)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", self.dir / "ca.key",
                "-out", self.dir / "ca.pem", "-days", "2",
                "-subj", "/CN=portcullis test CA")
        openssl("req", *ec, "-keyout", self.dir / "server.key", "-out",
                self.dir / "server.csr", "-subj", "/CN=127.0.0.1")
        (self.dir / "ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", self.dir / "server.csr", "-CA",
                self.dir / "ca.pem", "-CAkey", self.dir / "ca.key",
                "-CAcreateserial", "-out", self.dir / "server.pem", "-days",
                "2", "-extfile", self.dir / "ext")
        (self.dir / "slapd.conf").write_text(
            SLAPD_CONF.format(d=self.dir, base=BASE))
        (self.dir / "data.ldif").write_text(LDIF)
        r = run(["slapadd", "-f", self.dir / "slapd.conf", "-l",
                 self.dir / "data.ldif"])
        assert r.rc == 0, r

    def start(self):
        self.proc = subprocess.Popen(
            [SLAPD, "-f", str(self.dir / "slapd.conf"), "-h",
             "ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/"
             % (self.port, self.tls_port), "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "slapd.log", "ab"),
            start_new_session=True)
        wait_port(self.port, proc=self.proc)
        wait_port(self.tls_port, proc=self.proc)

    def stop(self):
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)
            stop_process(self.proc)
            self.proc = None

    def modify(self, ldif):
        r = run(["ldapmodify", "-x", "-H", "ldap://127.0.0.1:%d" % self.port,
                 "-D", "cn=admin,%s" % BASE, "-w", "admin-secret"],
                input=ldif)
        assert r.rc == 0, r


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    s = Slapd(tmp_path_factory.mktemp("slapd"))
    s.start()
    yield s
    s.stop()


def directory_sections(slapd, sealed):
    dead = free_port()  # nothing listens: the first URL refuses
    return """
[directory "contoso.com"]
url = ldap://127.0.0.1:{dead} ldap://127.0.0.1:{port}
starttls = true
ca_file = {ca}
bind = uid={{user}},ou=people,{base}
base_dn = ou=people,{base}
user_filter = (&(uid={{user}})(!(description=disabled)))
group_base_dn = ou=groups,{base}
group_filter = (member={{dn}})
map_group = "ops -> dir-ops"
map_group = "cn=staff,ou=groups,{base} -> dir-staff"
map_group = devs -> dir-devs
timeout_seconds = 3
connect_timeout_seconds = 2
max_concurrent_binds = 2
key_cache_seconds = 2

[directory "fabrikam.com"]
url = ldaps://127.0.0.1:{tls_port}
ca_file = {ca}
bind_dn = cn=svc,{base}
{sealed}
base_dn = ou=people,{base}
user_filter = (&(objectClass=inetOrgPerson)(uid={{user}})(!(description=disabled)))
group_base_dn = ou=groups,{base}
map_by_name = true
key_cache_seconds = 2

[directory "northwind.com"]
url = ldap://127.0.0.1:{port}
bind = uid={{user}},ou=people,{base}
base_dn = ou=people,{base}
group_attribute = seeAlso
group_base_dn = ou=groups,{base}
group_filter = (member={{dn}})
map_group = staff -> dir-staff
""".format(dead=dead, port=slapd.port, tls_port=slapd.tls_port,
           ca=slapd.dir / "ca.pem", base=BASE, sealed=sealed)


@pytest.fixture(scope="module")
def dproxy(proxy, slapd):
    """The module's server with both directories configured, restarted so
    that it reads them, with the groups they map to."""
    _, out, _ = proxy.cli("directory", "seal-password", "fabrikam.com",
                          input=PW["svc"] + "\n")
    assert out.startswith("bind_password_sealed = "), out
    assert PW["svc"] not in out
    proxy.stop()
    with open(proxy.conf, "a") as f:
        f.write(directory_sections(slapd, out.strip()))
    proxy.start()
    proxy.wait_http()
    for g in ("dir-ops", "dir-staff", "dir-devs", "ops"):
        proxy.cli("group", "add", g)
    return proxy


@pytest.fixture(scope="module")
def ops_asset(dproxy, target):
    """An asset the group dir-ops (and only it) may use."""
    asset_id = dproxy.target_asset(target)
    dproxy.grant(asset_id, group="dir-ops")
    prof = dproxy.profile_add()
    dproxy.profile_assign(prof, group="dir-ops")
    return asset_id


def groups_of(proxy, user):
    _, out, _ = proxy.cli("user", "show", user, "--json")
    return sorted(json.loads(out).get("groups", []))


def new_row(proxy, user, seen, result=None, timeout=20.0):
    """The first closed row of user not among the IDs in seen."""
    return proxy.wait_session(
        lambda r: r.get("user") == user and r["id"] not in seen and
        (result is None or result in r["result"]), timeout,
        "a new row of %s with %r" % (user, result))


def row_ids(proxy):
    return {r["id"] for r in proxy.sessions()}


def api_login(proxy, user, password, totp=None):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.http_port,
                                      timeout=60)
    body = {"username": user, "password": password}
    if totp:
        body["totp"] = totp
    try:
        conn.request("POST", "/api/v1/login", body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = json.loads(r.read() or b"{}")
        # success: {"data": {...}}; failure: {"errors": [...]}
        return r.status, data.get("data", data)
    finally:
        conn.close()


def audit_of(proxy, action):
    _, out, _ = proxy.cli("audit", "list", "--json")
    return [e for e in json.loads(out) if e.get("action") == action]


def detail_of(data):
    return " ".join(e.get("detail", "") for e in data.get("errors", []))


# ------------------------------------------------------------ logins

def test_directory_test_shows_each_step(dproxy, slapd):
    rc, out, err = dproxy.cli("directory", "test", "contoso.com", "--user",
                              "alice", input=PW["alice"] + "\n")
    assert rc == 0, err
    lines = out.splitlines()
    steps = [ln.split()[0] for ln in lines[1:]]
    assert steps[:4] == ["connect", "connect", "tls", "bind"], out
    assert "Can't contact LDAP server" in lines[1], out
    assert "StartTLS: TLS established" in out
    assert "bind     as uid=alice,ou=people,%s: ok" % BASE in out
    assert "display name 'Alice Test', mail 'alice@contoso.com'" in out
    assert "groups   ops (cn=ops,ou=groups,%s)" % BASE in out
    assert "groups   staff [nested]" in out
    assert "map      ops -> dir-ops" in out
    assert "map      staff -> dir-staff" in out
    assert "group    dir-ops: exists" in out
    assert lines[-1].startswith("ok: alice@contoso.com"), out
    # a wrong password: one clear line, exit 1
    rc, out, err = dproxy.cli("directory", "test", "contoso.com", "--user",
                              "alice", input="nope\n", check=False)
    assert rc == 1
    assert err.strip() == "portcullis: wrong user name or password", err
    # over ldaps:// with the sealed service account
    rc, out, err = dproxy.cli("directory", "test", "fabrikam.com", "--user",
                              "dave", input=PW["dave"] + "\n")
    assert "ldaps: TLS established" in out
    assert "service account cn=svc,%s: ok" % BASE in out
    assert "map      devs -> devs (by name, if it exists)" in out
    # list shows both
    _, out, _ = dproxy.cli("directory", "list", "--json")
    doms = {d["domain"]: d for d in json.loads(out)}
    assert set(doms) == {"contoso.com", "fabrikam.com", "northwind.com"}
    assert doms["contoso.com"]["starttls"] is True


def test_domain_user_logs_in_through_ssh_from_mapped_group(
        dproxy, slapd, ssh_client, ops_asset):
    user = "alice@contoso.com"
    seen = row_ids(dproxy)
    r = ssh_client.ssh("%s#%s" % (user, ops_asset), "echo login-ok",
                       password=PW["alice"])
    assert r.rc == 0 and "login-ok" in r.out, r
    assert new_row(dproxy, user, seen)["result"] == "ok"
    # made just in time, groups mapped (nested included), no local password
    assert groups_of(dproxy, user) == ["dir-ops", "dir-staff"]
    _, out, _ = dproxy.cli("user", "show", user, "--json")
    shown = json.loads(out)
    assert shown["has_password"] is False
    # what the directory says of her, stored with the user
    assert shown["display_name"] == "Alice Test", shown
    assert shown["mail"] == "alice@contoso.com", shown
    ev = audit_of(dproxy, "directory.login")
    assert any(e["actor"] == user and "Alice Test" in e["detail"] and
               "joined group dir-ops" in e["detail"] for e in ev), ev

    # removed from ops in the directory: access goes at the next login
    slapd.modify("dn: %s\nchangetype: modify\ndelete: member\nmember: %s\n"
                 % (group_dn("ops"), user_dn("alice")))
    try:
        seen = row_ids(dproxy)
        r = ssh_client.ssh("%s#%s" % (user, ops_asset), "echo login-ok",
                           password=PW["alice"])
        assert r.rc != 0 and "login-ok" not in r.out, r
        row = new_row(dproxy, user, seen)
        assert row["result"].startswith("denied"), row
        assert groups_of(dproxy, user) == []
    finally:
        slapd.modify("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n"
                     % (group_dn("ops"), user_dn("alice")))
    # and comes back with the membership
    r = ssh_client.ssh("%s#%s" % (user, ops_asset), "echo login-ok",
                       password=PW["alice"])
    assert r.rc == 0, r
    assert groups_of(dproxy, user) == ["dir-ops", "dir-staff"]


def test_group_added_by_hand_goes_at_next_login(dproxy, ssh_client,
                                                ops_asset):
    user = "bob@contoso.com"
    r = ssh_client.ssh("%s#%s" % (user, ops_asset), "echo login-ok",
                       password=PW["bob"])
    assert r.rc == 0, r
    dproxy.cli("group", "member", "add", "ops", user)
    assert groups_of(dproxy, user) == ["dir-ops", "dir-staff", "ops"]
    r = ssh_client.ssh("%s#%s" % (user, ops_asset), "echo login-ok",
                       password=PW["bob"])
    assert r.rc == 0, r
    assert groups_of(dproxy, user) == ["dir-ops", "dir-staff"]


def test_domain_user_with_totp_in_the_login(dproxy, ssh_client, ops_asset):
    user = "bob@contoso.com"
    r = ssh_client.ssh("%s#%s" % (user, ops_asset), "echo login-ok",
                       password=PW["bob"])
    assert r.rc == 0, r
    secret = dproxy.totp_enable(user)
    try:
        seen = row_ids(dproxy)
        r = ssh_client.ssh("%s?000000#%s" % (user, ops_asset),
                           "echo login-ok", password=PW["bob"])
        assert r.rc == 255 and "login-ok" not in r.out, r
        new_row(dproxy, user, seen, "denied: wrong TOTP code")
        code = fresh_totp_code(secret)
        r = ssh_client.ssh("%s?%s#%s" % (user, code, ops_asset),
                           "echo login-ok", password=PW["bob"])
        assert r.rc == 0 and "login-ok" in r.out, r
        # the API asks for it too
        status, data = api_login(dproxy, user, PW["bob"])
        assert status == 401 and data["errors"][0]["code"] == \
            "totp_required", data
    finally:
        dproxy.cli("user", "totp", user, "--disable")


def test_domain_user_logs_in_through_the_api_over_ldaps(dproxy):
    status, data = api_login(dproxy, "dave@fabrikam.com", PW["dave"])
    assert status == 200, data
    assert data["user"]["name"] == "dave@fabrikam.com"
    assert data["token"]
    # map_by_name: the directory's devs is Portcullis's devs if it exists;
    # it does not, so no group (and no error)
    assert groups_of(dproxy, "dave@fabrikam.com") == []
    status, data = api_login(dproxy, "alice@contoso.com", PW["alice"])
    assert status == 200, data


# ---------------------------------------------------------- refusals

def refused_ssh(proxy, client, login, password, user, result):
    seen = row_ids(proxy)
    t0 = time.monotonic()
    r = client.ssh(login, "echo login-ok", password=password)
    took = time.monotonic() - t0
    assert r.rc == 255 and "Permission denied" in r.err, r
    assert "login-ok" not in r.out
    row = new_row(proxy, user, seen, result)
    assert row["result"] == "denied: " + result, row
    return took


def test_wrong_password(dproxy, ssh_client, ops_asset):
    refused_ssh(dproxy, ssh_client, "alice@contoso.com#%s" % ops_asset,
                "wrong", "alice@contoso.com", "wrong user name or password")
    status, data = api_login(dproxy, "alice@contoso.com", "wrong")
    assert status == 401, data
    ev = audit_of(dproxy, "login.fail")
    assert any(e["actor"] == "alice@contoso.com" and
               "wrong username or password" in e["detail"] for e in ev)


def test_unknown_user(dproxy, ssh_client, ops_asset):
    user = uniq("nobody") + "@contoso.com"
    refused_ssh(dproxy, ssh_client, "%s#%s" % (user, ops_asset), "whatever",
                user, "wrong user name or password")
    # and nothing was made locally
    rc, _, err = dproxy.cli("user", "show", user, check=False)
    assert rc == 1, err


def test_disabled_user(dproxy, ssh_client, ops_asset):
    """carol's password is right, but user_filter hides her."""
    refused_ssh(dproxy, ssh_client, "carol@contoso.com#%s" % ops_asset,
                PW["carol"], "carol@contoso.com",
                "user carol not found or disabled in directory contoso.com")
    status, data = api_login(dproxy, "carol@contoso.com", PW["carol"])
    assert status == 401
    assert "not found or disabled" in detail_of(data), data


def test_user_deleted_in_directory_can_no_longer_log_in(dproxy, slapd,
                                                        ssh_client,
                                                        ops_asset):
    user = "dave@contoso.com"
    status, _ = api_login(dproxy, user, PW["dave"])
    assert status == 200
    slapd.modify("dn: %s\nchangetype: modify\nadd: description\n"
                 "description: disabled\n" % user_dn("dave"))
    try:
        status, data = api_login(dproxy, user, PW["dave"])
        assert status == 401, data
        assert "not found or disabled" in detail_of(data)
    finally:
        slapd.modify("dn: %s\nchangetype: modify\ndelete: description\n"
                     % user_dn("dave"))


def test_empty_password(dproxy, ssh_client, ops_asset):
    refused_ssh(dproxy, ssh_client, "alice@contoso.com#%s" % ops_asset, "",
                "alice@contoso.com", "empty password")
    status, data = api_login(dproxy, "alice@contoso.com", "")
    assert status in (400, 401), data


def test_user_name_with_filter_characters(dproxy, ssh_client, ops_asset):
    # SSH: the login grammar refuses them before any directory is asked.
    # OpenSSH's ssh will not even send such a name: paramiko does.
    import paramiko
    seen = row_ids(dproxy)
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        c.connect("127.0.0.1", port=dproxy.ssh_port,
                  username="al*()\\@contoso.com#%s" % ops_asset,
                  password=PW["alice"], look_for_keys=False,
                  allow_agent=False, timeout=30)
    c.close()
    dproxy.wait_session(
        lambda row: row["id"] not in seen and
        row["result"].startswith("denied: invalid login: user name may "
                                 "contain only"), 20, "an invalid login row")
    # The API takes any string: escaped, so no wildcard matches alice
    for name in ("*", "al*", "*)(uid=alice", "alice)(|(uid=*", "\\2a",
                 "*(", "alice\\"):
        status, data = api_login(dproxy, name + "@contoso.com", PW["alice"])
        assert status == 401, (name, data)
        assert data["errors"][0]["code"] == "login_failed", data
        rc, _, _ = dproxy.cli("user", "show", name + "@contoso.com",
                              check=False)
        assert rc == 1, name
    # each refusal is in the audit log under the name as given
    failed = {e["actor"] for e in audit_of(dproxy, "login.fail")}
    assert {"*@contoso.com", "*)(uid=alice@contoso.com"} <= failed, failed


def test_unknown_domain(dproxy, ssh_client, ops_asset):
    user = "alice@" + uniq("nowhere") + ".example"
    refused_ssh(dproxy, ssh_client, "%s#%s" % (user, ops_asset),
                PW["alice"], user,
                "unknown domain %s" % user.split("@")[1])
    status, data = api_login(dproxy, user, PW["alice"])
    assert status == 401
    assert "unknown domain" in detail_of(data)
    assert any(e["actor"] == user and "unknown domain" in e["detail"]
               for e in audit_of(dproxy, "login.fail"))
    # a local user whose name carries another domain still logs in
    local = uniq("loc") + "@local.example"
    dproxy.user_add(local, password="local-pw-1")
    status, data = api_login(dproxy, local, "local-pw-1")
    assert status == 200, data


@pytest.mark.solo  # a local login's time against its usual one
def test_directory_down_refuses_in_time_and_delays_no_local_user(
        dproxy, slapd, ssh_client, ops_asset, target):
    local = dproxy.user_add(password="local-pw-2")
    dproxy.allow(local, ops_asset)
    # warm: one local login before, for its usual time
    t0 = time.monotonic()
    r = ssh_client.ssh("%s#%s" % (local, ops_asset), "echo login-ok",
                       password="local-pw-2")
    usual = time.monotonic() - t0
    assert r.rc == 0, r
    # black hole: slapd stopped, its sockets still accept in the kernel
    os.kill(slapd.proc.pid, signal.SIGSTOP)
    try:
        results = {}

        def domain_login(i):
            t = time.monotonic()
            # one attempt (password only, no keyboard-interactive retry)
            rr = ssh_client.ssh("alice@contoso.com#%s" % ops_asset,
                                "echo login-ok", password=PW["alice"],
                                methods="password")
            results[i] = (rr, time.monotonic() - t)

        seen = row_ids(dproxy)
        # more than max_concurrent_binds (2): some wait in the queue
        threads = [threading.Thread(target=domain_login, args=(i,))
                   for i in range(5)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        r = ssh_client.ssh("%s#%s" % (local, ops_asset), "echo login-ok",
                           password="local-pw-2")
        during = time.monotonic() - t0
        assert r.rc == 0, r
        assert during < usual + 1.5, \
            "local login took %.2f s (usual %.2f s)" % (during, usual)
        for t in threads:
            t.join(60)
        for rr, took in results.values():
            assert rr.rc == 255 and "login-ok" not in rr.out, rr
            # timeout_seconds = 3, plus ssh's own handshake
            assert took < 3 + 2, "refused after %.2f s" % took
        row = new_row(dproxy, "alice@contoso.com", seen,
                      "directory contoso.com unreachable")
        assert row["result"].startswith(
            "denied: directory contoso.com unreachable"), row
        t0 = time.monotonic()
        status, data = api_login(dproxy, "alice@contoso.com", PW["alice"])
        assert status == 503, data
        assert data["errors"][0]["code"] == "directory_unreachable"
        assert time.monotonic() - t0 < 3 + 1.5
    finally:
        os.kill(slapd.proc.pid, signal.SIGCONT)
    # back: logins work again
    time.sleep(0.5)
    status, data = api_login(dproxy, "alice@contoso.com", PW["alice"])
    assert status == 200, data


def test_bad_directory_section_stops_serve(pc):
    with open(pc.conf, "a") as f:
        f.write('\n[directory "contoso.com"]\nurl = http://x\n')
    r = run([pc.bin, "-c", pc.conf, "serve"], timeout=30)
    assert r.rc != 0
    assert "'url' needs one or more ldap:// or ldaps:// URLs" in r.err, r
    rc, _, err = pc.cli("directory", "list", check=False)
    assert rc == 1 and "'url' needs" in err


def with_directories(server, slapd):
    """A started server of the test's own, restarted with the directories
    of directory_sections() (fabrikam.com's password sealed for it)."""
    _, out, _ = server.cli("directory", "seal-password", "fabrikam.com",
                           input=PW["svc"] + "\n")
    server.stop()
    with open(server.conf, "a") as f:
        f.write(directory_sections(slapd, out.strip()))
    server.start()
    server.wait_http()
    return server


def test_lockout_and_failure_delay_apply_to_domain_logins(server_factory,
                                                          slapd, target):
    server = with_directories(
        server_factory(max_failures=3, lockout_seconds=60,
                       failure_window_seconds=60, failure_delay_ms=800),
        slapd)
    user = "bob@contoso.com"
    t0 = time.monotonic()
    status, _ = api_login(server, user, "wrong-1")
    assert status == 401
    assert time.monotonic() - t0 >= 0.8, "no failure delay"
    for i in range(2):
        status, _ = api_login(server, user, "wrong-%d" % (i + 2))
        assert status == 401
    # the right password no longer helps
    status, data = api_login(server, user, PW["bob"])
    assert status == 429, data
    assert data["errors"][0]["code"] == "locked_out"
    ev = audit_of(server, "login.lock")
    assert any("password of unknown user" in e["detail"] and user in
               e["detail"] for e in ev), ev
    # the SSH side shares the counters
    r = Client(server.ssh_port).ssh("%s#x" % user, "true",
                                    password=PW["bob"], methods="password")
    assert r.rc == 255, r
    row = server.wait_session(
        lambda row: row.get("user") == user and "locked out" in row["result"],
        20, "a locked-out row")
    assert row["result"].startswith("denied: locked out"), row


def test_keys_of_domain_users_work_while_the_directory_knows_them(
        dproxy, slapd, ssh_client, ops_asset, tmp_path):
    # fabrikam.com has a service account: it is asked at each key login
    user = "dave@fabrikam.com"
    status, _ = api_login(dproxy, user, PW["dave"])
    assert status == 200
    dproxy.allow(user, ops_asset)
    key = keygen(tmp_path / "dave")
    dproxy.key_add(user, str(key) + ".pub")
    r = ssh_client.ssh("%s#%s" % (user, ops_asset), "echo login-ok", key=key,
                       methods="publickey")
    assert r.rc == 0 and "login-ok" in r.out, r
    slapd.modify("dn: %s\nchangetype: modify\nadd: description\n"
                 "description: disabled\n" % user_dn("dave"))
    try:
        time.sleep(2.5)  # key_cache_seconds = 2
        seen = row_ids(dproxy)
        r = ssh_client.ssh("%s#%s" % (user, ops_asset), "echo login-ok",
                           key=key, methods="publickey")
        assert r.rc == 255 and "login-ok" not in r.out, r
        row = new_row(dproxy, user, seen)
        assert row["result"] == ("denied: user dave not found or disabled "
                                 "in directory fabrikam.com"), row
    finally:
        slapd.modify("dn: %s\nchangetype: modify\ndelete: description\n"
                     % user_dn("dave"))
    time.sleep(2.5)
    r = ssh_client.ssh("%s#%s" % (user, ops_asset), "echo login-ok", key=key,
                       methods="publickey")
    assert r.rc == 0, r

    # contoso.com has none: a key works only within key_cache_seconds of a
    # password login
    user = "alice@contoso.com"
    key = keygen(tmp_path / "alice")
    status, _ = api_login(dproxy, user, PW["alice"])
    assert status == 200
    dproxy.key_add(user, str(key) + ".pub")
    r = ssh_client.ssh("%s#%s" % (user, ops_asset), "echo login-ok", key=key,
                       methods="publickey")
    assert r.rc == 0, r
    time.sleep(2.5)
    seen = row_ids(dproxy)
    r = ssh_client.ssh("%s#%s" % (user, ops_asset), "echo login-ok", key=key,
                       methods="publickey")
    assert r.rc == 255, r
    row = new_row(dproxy, user, seen)
    assert "cannot check key logins" in row["result"], row


def test_api_lists_directories_read_only(dproxy):
    conn = http.client.HTTPConnection("127.0.0.1", dproxy.http_port,
                                      timeout=60)
    status, data = api_login(dproxy, dproxy.admin_user,
                             dproxy.admin_password)
    assert status == 200, data
    conn.request("GET", "/api/v1/directories",
                 headers={"Authorization": "Bearer " + data["token"]})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status == 200, body
    dirs = {d["domain"]: d for d in json.loads(body)["data"]}
    assert set(dirs) == {"contoso.com", "fabrikam.com", "northwind.com"}
    c = dirs["contoso.com"]
    assert c["starttls"] is True and c["nested_groups"] == "recursive"
    assert {"from": "ops", "to": "dir-ops", "group_exists": True} in \
        c["map_group"]
    f = dirs["fabrikam.com"]
    assert f["bind_password_sealed"] is True and f["map_by_name"] is True
    assert PW["svc"].encode() not in body
    # and nobody else may read them
    conn = http.client.HTTPConnection("127.0.0.1", dproxy.http_port,
                                      timeout=60)
    conn.request("GET", "/api/v1/directories")
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 401


def test_search_then_bind_does_not_tell_unknown_users_apart(dproxy):
    """fabrikam.com finds users with its service account before any
    password is checked: an unknown or disabled user must be answered as
    a wrong password (and count as one), or anyone could list users."""
    for name, pw in (("ghost", "whatever"), ("carol", PW["carol"]),
                     ("alice", "wrong")):
        status, data = api_login(dproxy, name + "@fabrikam.com", pw)
        assert status == 401, (name, data)
        assert data["errors"][0]["code"] == "login_failed"
        assert "not found" not in detail_of(data)
    rc, out, err = dproxy.cli("directory", "test", "fabrikam.com", "--user",
                              "ghost", input="whatever\n", check=False)
    assert rc == 1
    assert err.strip() == "portcullis: wrong user name or password", err
    assert "no entry (unknown, or disabled by the filter)" in out


def test_one_local_user_however_the_login_spells_it(dproxy, ssh_client,
                                                    ops_asset):
    r = ssh_client.ssh("ALICE@Contoso.COM#%s" % ops_asset, "echo login-ok",
                       password=PW["alice"])
    assert r.rc == 0 and "login-ok" in r.out, r
    status, data = api_login(dproxy, "Alice@contoso.com", PW["alice"])
    assert status == 200, data
    assert data["user"]["name"] == "alice@contoso.com"
    _, out, _ = dproxy.cli("user", "list", "--json")
    names = [u["name"] for u in json.loads(out)]
    assert [n for n in names if n.lower() == "alice@contoso.com"] == \
        ["alice@contoso.com"], names


def test_web_ui_domain_login_and_directories_page(dproxy, tmp_path):
    from test_web import CHROMIUM, WEB, web_ui as _build  # noqa: F401
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("%s is missing: `./dev deps` installs chromium" %
                    CHROMIUM)
    getattr(_build, "__wrapped__", _build)()  # web/dist, built if stale
    cfg = {"url": "http://127.0.0.1:%d" % dproxy.http_port,
           "domain_user": "bob@contoso.com", "domain_password": PW["bob"],
           "wrong_password": "wrong", "admin_user": dproxy.admin_user,
           "admin_password": dproxy.admin_password,
           "screenshots": os.environ.get("PORTCULLIS_SCREENSHOTS")}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    r = run(["node", "e2e/directory.mjs", path], cwd=WEB, timeout=200)
    assert r.rc == 0, r
    res = json.loads(r.out.strip().splitlines()[-1])
    assert res["wrong"], res
    assert res["signed_in"] is True, res
    assert sorted(res["domains"]) == ["contoso.com", "fabrikam.com",
                                      "northwind.com"], res
    assert any("ops" in row and "dir-ops" in row and "yes" in row
               for row in res["mapping"]), res
    ev = audit_of(dproxy, "login.ok")
    assert any(e["actor"] == "bob@contoso.com" for e in ev)


def test_groups_from_an_attribute_of_the_entry(dproxy, ssh_client,
                                               ops_asset):
    """northwind.com reads the direct groups from an attribute of the
    user's entry (as memberOf on Active Directory), names them by their
    DN's first RDN, and still finds the nested ones by search."""
    rc, out, err = dproxy.cli("directory", "test", "northwind.com", "--user",
                              "alice", input=PW["alice"] + "\n")
    assert rc == 0, err
    assert "groups   ops (cn=ops,ou=groups,%s)" % BASE in out
    assert "groups   staff [nested]" in out
    assert "map      ops -> (not mapped)" in out
    assert "map      staff -> dir-staff" in out
    status, data = api_login(dproxy, "alice@northwind.com", PW["alice"])
    assert status == 200, data
    assert groups_of(dproxy, "alice@northwind.com") == ["dir-staff"]


def test_a_black_holed_ldaps_server_holds_no_thread(server_factory, slapd):
    """libldap 2.5 does not bound an ldaps:// handshake with a server that
    accepts and never answers; the deadline must free the thread too, or
    serve could not even stop while the directory is down."""
    server = with_directories(server_factory(), slapd)
    os.kill(slapd.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        status, data = api_login(server, "dave@fabrikam.com", PW["dave"])
        assert status == 503, data
        assert detail_of(data).startswith("directory fabrikam.com "
                                          "unreachable"), data
        assert time.monotonic() - t0 < 5 + 1.5  # timeout_seconds = 5
        t0 = time.monotonic()
        rc = server.stop()
        took = time.monotonic() - t0
        assert rc == 0 and took < 5, "serve stopped after %.1f s with %s" % (
            took, rc)
    finally:
        os.kill(slapd.proc.pid, signal.SIGCONT)
