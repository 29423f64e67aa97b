"""The admin CLI on a fresh data directory: init's output, every noun's
--help, add/list/show/delete round trips, one-line errors, secrets sealed
at rest, and `serve` starting and stopping cleanly."""

import base64
import json
import subprocess
from pathlib import Path

import pytest

from pclib import (FP_RE, UUID_RE, Client, http_json, keygen,
                   key_fingerprint, totp_code, uniq, wait_for)

NOUNS = ["user", "group", "site", "asset", "grant", "profile", "session",
         "job", "schedule", "client-group"]


def assert_one_line_error(rc, out, err):
    assert rc != 0, "expected a failure, got rc 0; stdout=%r" % out
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, "expected one line on stderr, got %r" % err
    return lines[0]


def test_totp_helper_matches_rfc6238():
    # RFC 6238 appendix B, SHA-1 seed "12345678901234567890": the 8-digit
    # codes end in these 6 digits.
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp_code(secret, 59) == "287082"
    assert totp_code(secret, 1111111109) == "081804"
    assert totp_code(secret, 2000000000) == "279037"


def test_init_prints_config_admin_and_fingerprint(pc):
    assert pc.conf.is_file()
    assert pc.admin_user == "admin"
    assert len(pc.admin_password) >= 12
    assert FP_RE.match(pc.fingerprint), pc.fingerprint
    # The fingerprint is the one of the SSH host key init created.
    keys = [k for k in pc.dir.iterdir()
            if k.name.startswith("ssh_host_") and not k.name.endswith(".pub")]
    assert keys, "no ssh_host_* key in %s" % sorted(pc.dir.iterdir())
    fps = set()
    for k in keys:
        pub = subprocess.run(["ssh-keygen", "-y", "-f", str(k)],
                             capture_output=True, text=True, check=True,
                             timeout=30).stdout
        p = pc.dir.parent / (k.name + ".derived.pub")
        p.write_text(pub)
        fps.add(key_fingerprint(p))
    assert pc.fingerprint in fps


def test_admin_password_is_not_stored_in_plaintext(pc):
    # The admin password is printed once and stored only as a hash.
    for f in pc.dir.rglob("*"):
        if f.is_file() and f.name != "server.log":
            assert pc.admin_password.encode() not in f.read_bytes(), f


def test_password_cost_follows_the_config(pc):
    """[auth] password_memory_kib / password_passes: the hashes the CLI
    makes carry the configured cost (tune_for_tests: 19456 KiB, 2 passes),
    the admin's from `init` the default; after a change, a right password
    whose hash has another cost is hashed again at the new one, by the
    API's login and by the SSH proxy's; a pair below OWASP's floor for
    argon2id is refused with the reason."""
    def stored(user):
        rows = pc.store_sql("SELECT password_hash FROM users WHERE name = ?",
                            user)
        return rows[0][0]

    def login(user, password):
        return http_json(pc.http_port, "POST", "/api/v1/login",
                         body=json.dumps({"username": user,
                                          "password": password}))[0]

    name = pc.user_add(password="correct horse battery")
    other = pc.user_add(password="other pw")
    assert "$m=19456,t=2,p=1$" in stored(name)
    assert "$m=19456,t=2,p=1$" in stored(other)
    assert "$m=65536,t=2,p=1$" in stored(pc.admin_user)
    pc.set_config("auth", "password_passes", "3")
    pc.set_config("auth", "password_memory_kib", "12288")
    pc.cli("user", "passwd", name, "--password-stdin", input="new pw 2\n")
    assert "$m=12288,t=3,p=1$" in stored(name)
    pc.start().wait_http()
    assert login(name, "new pw 2") == 200
    assert login(name, "correct horse battery") == 401
    assert "$m=65536,t=2,p=1$" in stored(pc.admin_user)
    assert login(pc.admin_user, "wrong") == 401
    assert "$m=65536,t=2,p=1$" in stored(pc.admin_user)  # not on a failure
    assert login(pc.admin_user, pc.admin_password) == 200
    assert "$m=12288,t=3,p=1$" in stored(pc.admin_user)
    assert login(pc.admin_user, pc.admin_password) == 200
    # the SSH login fails at the asset, after the password was right
    r = Client(pc.ssh_port).ssh(other + "#no-such-asset", "true",
                                password="other pw")
    assert r.rc != 0
    wait_for(lambda: "$m=12288,t=3,p=1$" in stored(other),
             what="the SSH login's hash remade at the configured cost")
    assert login(other, "other pw") == 200
    pc.stop()
    pc.set_config("auth", "password_memory_kib", "12287")
    line = assert_one_line_error(*pc.cli("user", "list", check=False))
    assert "below the minimum for password_passes 3 (12288 KiB" in line


@pytest.mark.parametrize("noun", NOUNS)
def test_help_on_each_noun(pc, noun):
    rc, out, err = pc.cli(noun, "--help", check=False)
    assert rc == 0, err
    assert noun in (out + err)


def test_top_level_help(pc):
    rc, out, err = pc.cli("--help", check=False)
    assert rc == 0, err
    for noun in NOUNS:
        assert noun in out + err


def test_unknown_noun_is_a_one_line_error(pc):
    line = assert_one_line_error(*pc.cli("frobnicate", check=False))
    assert line.startswith("portcullis: ") or "frobnicate" in line


def test_user_lifecycle(pc):
    name = pc.user_add(password="correct horse battery")
    _, out, _ = pc.cli("user", "list")
    assert name in out
    _, out, _ = pc.cli("user", "list", "--json")
    assert name in json.dumps(json.loads(out))
    _, out, _ = pc.cli("user", "show", name)
    assert name in out
    pc.cli("user", "passwd", name, "--password-stdin", input="new pw 2\n")
    pc.cli("user", "delete", name)
    _, out, _ = pc.cli("user", "list")
    assert name not in out
    line = assert_one_line_error(*pc.cli("user", "show", name, check=False))
    assert name in line


def test_user_add_duplicate_is_refused(pc):
    name = pc.user_add()
    line = assert_one_line_error(*pc.cli("user", "add", name, check=False))
    assert name in line


def test_user_with_domain_name(pc):
    name = uniq("bw") + "@contoso.com"
    pc.user_add(name, password="pw-1")
    _, out, _ = pc.cli("user", "show", name)
    assert name in out


def test_user_totp_enable_prints_secret_and_uri(pc):
    name = pc.user_add(password="pw")
    _, out, _ = pc.cli("user", "totp", name, "--enable")
    kv = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    secret = kv["secret"]
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) >= 16
    assert kv["uri"].startswith("otpauth://totp/")
    assert "secret=" + secret in kv["uri"]
    assert len(totp_code(secret)) == 6


def test_user_key_add(pc, tmp_path):
    name = pc.user_add()
    key = keygen(tmp_path / "k")
    pc.key_add(name, str(key) + ".pub")
    _, out, _ = pc.cli("user", "key", "list", name)
    assert key_fingerprint(str(key) + ".pub") in out
    line = assert_one_line_error(*pc.cli(
        "user", "key", "add", name, tmp_path / "missing.pub", check=False))
    assert line


def test_user_key_add_rejects_garbage(pc, tmp_path):
    name = pc.user_add()
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 not-base64!!! x\n")
    assert_one_line_error(*pc.cli("user", "key", "add", name, bad,
                                  check=False))


def test_group_and_membership(pc):
    user = pc.user_add()
    group = uniq("g")
    pc.cli("group", "add", group)
    pc.cli("group", "member", "add", group, user)
    _, out, _ = pc.cli("group", "list")
    assert group in out
    line = assert_one_line_error(*pc.cli(
        "group", "member", "add", group, "nosuchuser", check=False))
    assert "nosuchuser" in line


def test_site_add_and_list(pc):
    pc.cli("site", "add", "/root/DevOps")
    pc.cli("site", "add", "/root/DevOps/Linux")
    _, out, _ = pc.cli("site", "list")
    assert "/root/DevOps" in out
    assert "/root/DevOps/Linux" in out


def test_asset_add_show_list_delete(pc, tmp_path):
    key = keygen(tmp_path / "assetkey")
    pc.cli("site", "add", "/root/DevOps")
    name = "Prod DB " + uniq("")
    asset_id = pc.asset_add(name, "127.0.0.1", 2222, "root", key=key,
                            site="/root/DevOps")
    assert UUID_RE.match(asset_id)
    _, out, _ = pc.cli("asset", "show", asset_id)
    assert name in out and "127.0.0.1" in out and "/root/DevOps" in out
    _, out, _ = pc.cli("asset", "list", "--json")
    listed = json.dumps(json.loads(out))
    assert asset_id in listed and name in listed
    pc.cli("asset", "delete", asset_id)
    line = assert_one_line_error(*pc.cli("asset", "show", asset_id,
                                         check=False))
    assert asset_id in line


def test_asset_add_rejects_bad_input(pc):
    base = ["asset", "add", uniq("a"), "--host", "127.0.0.1", "--login",
            "root"]
    assert_one_line_error(*pc.cli(*base, "--port", "70000", check=False))
    assert_one_line_error(*pc.cli(*base, "--port", "22",
                                  "--host-key-fingerprint", "SHA256:nope",
                                  check=False))
    assert_one_line_error(*pc.cli(*base, "--port", "22", "--site",
                                  "/root/NoSuchSite", check=False))


def test_asset_route_to_an_unknown_peer_or_agent_warns(pc):
    """A route through a peer or an agent the store does not know yet is
    accepted (either may come later) with a warning; a known one or
    direct gets none."""
    base = ["asset", "add", "--host", "127.0.0.1", "--login", "root",
            "--port", "22"]
    rc, out, err = pc.cli(*base[:2], uniq("p"), *base[2:], "--route",
                          "peer:nope")
    assert rc == 0 and len(out.split()) == 1, (rc, out, err)
    assert "warning: no peer named 'nope' yet: sessions to this asset " \
        "fail until `portcullis peer add nope ...`" in err, err
    rc, out, err = pc.cli(*base[:2], uniq("g"), *base[2:], "--route",
                          "agent:not-yet-here")
    assert rc == 0 and "warning: no agent 'not-yet-here' has connected " \
        "yet" in err, err
    rc, out, err = pc.cli(*base[:2], uniq("d"), *base[2:], "--route",
                          "direct")
    assert rc == 0 and "warning" not in err, err


def test_asset_retrust_clears_the_pin(pc, tmp_path):
    key = keygen(tmp_path / "hk")
    fp = key_fingerprint(str(key) + ".pub")
    asset_id = pc.asset_add(uniq("a"), "127.0.0.1", 22, "root",
                            password="x", fingerprint=fp)
    _, out, _ = pc.cli("asset", "show", asset_id)
    assert fp in out
    pc.cli("asset", "retrust", asset_id)
    _, out, _ = pc.cli("asset", "show", asset_id)
    assert fp not in out


def test_secrets_are_sealed_at_rest(pc, tmp_path):
    """Vaulted logins, user passwords and TOTP seeds never appear in
    plaintext in the data directory, nor in `asset show`/`list`."""
    asset_pw = "Vaulted-" + uniq("pw")
    user_pw = "UserPw-" + uniq("pw")
    key = keygen(tmp_path / "vaultkey")
    key_body = [l for l in Path(key).read_text().splitlines()
                if l and not l.startswith("-----")]
    asset_id = pc.asset_add(uniq("a"), "127.0.0.1", 22, "root",
                            password=asset_pw, key=key)
    user = pc.user_add(password=user_pw)
    secret = pc.totp_enable(user)
    seed = base64.b32decode(secret + "=" * (-len(secret) % 8))
    for verb in (("asset", "show", asset_id), ("asset", "list"),
                 ("asset", "list", "--json"), ("user", "show", user)):
        _, out, _ = pc.cli(*verb)
        assert asset_pw not in out and user_pw not in out, verb
        assert key_body[1] not in out, verb
    for f in pc.dir.rglob("*"):
        if not f.is_file():
            continue
        data = f.read_bytes()
        assert asset_pw.encode() not in data, f
        assert user_pw.encode() not in data, f
        assert secret.encode() not in data, f
        assert seed not in data, f
        for l in key_body[1:3]:
            assert l.encode() not in data, f


def test_grant_and_profile(pc):
    user = pc.user_add()
    group = uniq("g")
    pc.cli("group", "add", group)
    pc.cli("group", "member", "add", group, user)
    pc.cli("site", "add", "/root/DevOps")
    asset_id = pc.asset_add(uniq("a"), "127.0.0.1", 22, "root", password="x")
    pc.grant(asset_id, user=user)
    pc.grant(site="/root/DevOps", group=group)
    prof = pc.profile_add(native="record", flags=("--no-shell", "--no-sftp",
                                                  "--local-forward"))
    pc.profile_assign(prof, user=user)
    pc.profile_assign(prof, group=group)
    pc.profile_add(native="deny")
    pc.profile_add(native="allow", flags=("--no-exec", "--no-scp"))
    _, out, _ = pc.cli("profile", "list")
    assert prof in out
    assert_one_line_error(*pc.cli("profile", "add", uniq("p"), "--native",
                                  "sometimes", check=False))
    assert_one_line_error(*pc.cli("grant", asset_id, "--user", user,
                                  "--role", "emperor", check=False))
    assert_one_line_error(*pc.cli("grant", asset_id, "--user", "nobody9",
                                  "--role", "viewer", check=False))


def test_schedule_verbs(pc, tmp_path):
    """schedule add/list/show/delete from the CLI alone (no server): the
    targets by ID, --tag (repeatable, T1,T2) and --groups land in the
    schedule; contradictory or missing parts are one-line usage errors."""
    def err_of(*args):
        rc, out, err = pc.cli(*args, check=False)
        assert_one_line_error(rc, out, err)
        return rc, err

    rc, out, _ = pc.cli("schedule", "add", "nightly", "--cron", "0 3 * * *",
                        "--agents", "a1,a2", "--tag", "x", "--tag=y,z",
                        "--groups", "g1,g2", "--timeout", "30", "--",
                        "echo", "hi there")
    assert UUID_RE.match(out.strip()), out
    script = tmp_path / "s.sh"
    script.write_text("echo hi\n")
    pc.cli("schedule", "add", "scripted", "--cron", "0 4 * * *", "--tag",
           "x", "--script", script, "--interpreter", "bash")
    s = json.loads(pc.cli("schedule", "show", "nightly")[1])
    assert (s["agents"], s["tags"], s["groups"]) == (
        ["a1", "a2"], ["x", "y", "z"], ["g1", "g2"]), s
    assert (s["command"], s["interpreter"], s["timeout"]) == (
        "echo hi there", None, 30), s
    s = json.loads(pc.cli("schedule", "show", "scripted")[1])
    assert (s["command"], s["interpreter"], s["agents"]) == (
        None, "bash", []), s
    _, out, _ = pc.cli("schedule", "list")
    rows = {l.split()[0]: l for l in out.splitlines()[1:]}
    assert rows["nightly"].endswith("echo hi there"), out
    assert rows["scripted"].endswith("(script)"), out
    _, out, _ = pc.cli("schedule", "list", "--json")
    assert sorted(s["name"] for s in json.loads(out)) == ["nightly",
                                                          "scripted"]

    rc, err = err_of("schedule", "add", "nightly", "--cron", "0 3 * * *",
                     "--tag", "x", "--", "true")
    assert rc == 1 and "exists" in err, err
    assert err_of("schedule", "add", "n2", "--tag", "x", "--",
                  "true")[0] == 2
    rc, err = err_of("schedule", "add", "n2", "--cron", "0 3 * * *",
                     "--tag", "x")
    assert rc == 2 and "after '--'" in err, err
    rc, err = err_of("schedule", "add", "n2", "--cron", "0 3 * * *",
                     "--tag")
    assert rc == 2 and "--tag" in err, err
    # as job run: a script or a command, and --interpreter with --script
    rc, err = err_of("schedule", "add", "n2", "--cron", "0 3 * * *",
                     "--tag", "x", "--script", script, "--", "true")
    assert rc == 2 and "not both" in err, err
    rc, err = err_of("schedule", "add", "n2", "--cron", "0 3 * * *",
                     "--tag", "x", "--interpreter", "bash", "--", "true")
    assert rc == 2 and "--interpreter goes with --script" in err, err
    for verb in ("show", "delete"):
        rc, err = err_of("schedule", verb, "nope")
        assert rc == 1 and "schedule 'nope' not found" in err, err
    pc.cli("schedule", "delete", "nightly")
    assert err_of("schedule", "show", "nightly")[0] == 1
    _, out, _ = pc.cli("schedule", "list", "--json")
    assert [s["name"] for s in json.loads(out)] == ["scripted"]


def test_client_group_verbs(pc):
    rc, out, _ = pc.cli("client-group", "add", "web", "--agents", "a1,a2",
                        "--match-name", "w*", "--match-tag", "prod,dev",
                        "--description", "the web tier")
    assert UUID_RE.match(out.strip()), out
    g = json.loads(pc.cli("client-group", "show", "web")[1])
    assert (g["agents"], g["rules"], g["description"]) == (
        ["a1", "a2"], {"name": ["w*"], "tags": ["prod", "dev"]},
        "the web tier"), g
    assert g["members"] == [], g  # no agents yet: the key all the same
    _, out, _ = pc.cli("client-group", "list")
    assert out.splitlines()[1].split()[:2] == ["web", "0"], out
    _, out, _ = pc.cli("client-group", "list", "--json")
    assert [(g["name"], g["members"]) for g in json.loads(out)] == [
        ("web", [])], out
    for verb in ("show", "delete"):
        rc, out, err = pc.cli("client-group", verb, "nope", check=False)
        line = assert_one_line_error(rc, out, err)
        assert rc == 1 and "client group 'nope' not found" in line, line
    pc.cli("client-group", "delete", "web")
    _, out, _ = pc.cli("client-group", "list", "--json")
    assert json.loads(out) == []


def test_session_list_is_empty_json_at_first(pc):
    _, out, _ = pc.cli("session", "list", "--json")
    assert json.loads(out) == []


def test_session_show_unknown_is_an_error(pc):
    line = assert_one_line_error(*pc.cli(
        "session", "show", "00000000-0000-4000-8000-000000000000",
        check=False))
    assert line


def test_serve_starts_and_stops_cleanly(pc):
    pc.start()
    assert pc.stop() == 0
