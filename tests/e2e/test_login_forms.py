"""Every form of the login grammar (SPEC §3) through the SSH proxy to a real
OpenSSH target, with password, public-key and TOTP authentication:

    principal[/site][?totp]#asset    principal = user[@domain]
"""

import json
import subprocess

import pytest

from pclib import (fresh_totp_code, keygen, key_fingerprint, run,
                   totp_wrong_code, uniq)


def assert_ran(r, marker="login-ok"):
    assert r.rc == 0, r
    assert marker in r.out, r


@pytest.fixture(scope="module")
def devops(proxy):
    """The sites /root/DevOps and /root/DevOps/Linux."""
    proxy.cli("site", "add", "/root/DevOps")
    proxy.cli("site", "add", "/root/DevOps/Linux")
    return "/root/DevOps"


def new_user(proxy, name=None, totp=False):
    password = "pw-" + uniq()
    user = proxy.user_add(name, password=password)
    secret = proxy.totp_enable(user) if totp else None
    return user, password, secret


def test_proxy_presents_the_host_key_init_printed(proxy, tmp_path):
    r = subprocess.run(["ssh-keyscan", "-T", "10", "-t", "ed25519", "-p",
                        str(proxy.ssh_port), "127.0.0.1"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.strip(), r.stderr
    (tmp_path / "scanned").write_text(r.stdout)
    assert key_fingerprint(tmp_path / "scanned") == proxy.fingerprint


@pytest.mark.core
def test_asset_by_id(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok; whoami",
                       password=pw)
    assert_ran(r)
    assert r.out.split() == ["login-ok", "root"], r
    row = proxy.session_of(user, "ok", kind="exec")
    assert row["result"] == "ok"
    assert row["asset_id"] == asset_id
    assert row["site"] in ("/root", "root", "/")
    assert row["client"].startswith("127.0.0.1")
    assert row["route"] == "direct"
    assert row["exit_status"] == 0
    assert row["user_id"]


def test_asset_by_name_with_spaces(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy)
    asset_id = proxy.target_asset(target, name="Prod DB 08")
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#Prod DB 08" % user, "echo login-ok", password=pw)
    assert_ran(r)
    row = proxy.session_of(user, "ok")
    assert row["asset_id"] == asset_id
    assert row["asset"] == "Prod DB 08"


@pytest.mark.core
def test_totp_in_login(proxy, target, ssh_client):
    user, pw, secret = new_user(proxy, totp=True)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    code = fresh_totp_code(secret)
    r = ssh_client.ssh("%s?%s#%s" % (user, code, asset_id), "echo login-ok",
                       password=pw)
    assert_ran(r)
    row = proxy.session_of(user, "ok")
    # Nothing secret in the report or the server's log.
    report = json.dumps(proxy.sessions())
    assert "?" + code not in report
    assert pw not in report
    log = proxy.log_text()
    assert "?" + code not in log
    assert pw not in log
    assert row["user"] == user


def test_keyboard_interactive_totp(proxy, target, ssh_client):
    user, pw, secret = new_user(proxy, totp=True)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password=pw, totp=fresh_totp_code(secret))
    assert_ran(r)
    proxy.session_of(user, "ok")


def kbd_interactive_twice(proxy, ssh_client, login, password, totp):
    """OpenSSH as a person runs it (LogLevel INFO, two tries), answering
    keyboard-interactive from the askpass; returns its stderr."""
    r = run(["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o",
             "PubkeyAuthentication=no", "-o",
             "PreferredAuthentications=keyboard-interactive",
             "-o", "NumberOfPasswordPrompts=2", "-p", str(proxy.ssh_port),
             "%s@127.0.0.1" % login, "echo login-ok"],
            env=ssh_client.env(password, totp))
    assert r.rc == 255 and "login-ok" not in r.out, r
    return r.err


def test_keyboard_interactive_says_why_it_asks_again(proxy, target,
                                                     ssh_client):
    """A wrong answer at a prompt: OpenSSH asks keyboard-interactive again
    without a word; the next prompt says why (a wrong TOTP code, or one
    already used, only after the password was right; a wrong password in
    the same words for a known and an unknown user)."""
    user, pw, secret = new_user(proxy, totp=True)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    login = "%s#%s" % (user, asset_id)
    err = kbd_interactive_twice(proxy, ssh_client, login, pw,
                                totp_wrong_code(secret))
    assert err.count("Wrong TOTP code, or one already used") == 1, err
    assert "Wrong password" not in err, err
    err = kbd_interactive_twice(proxy, ssh_client, login, "not-" + pw, "1")
    assert err.count("Wrong password.") == 1 and "TOTP" not in err, err
    nobody = uniq("nobody") + "#" + asset_id
    err2 = kbd_interactive_twice(proxy, ssh_client, nobody, "not-" + pw, "1")
    assert err2.replace(nobody, "LOGIN") == err.replace(login, "LOGIN"), \
        (err, err2)


def test_domain_user(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy, name="bwilliams@contoso.com")
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    # OpenSSH splits user@host at the last '@'.
    r = ssh_client.ssh("bwilliams@contoso.com#%s" % asset_id,
                       "echo login-ok", password=pw)
    assert_ran(r)
    row = proxy.session_of("bwilliams@contoso.com", "ok")
    assert row["asset_id"] == asset_id


def test_domain_user_with_totp(proxy, target, ssh_client):
    user, pw, secret = new_user(proxy, name=uniq("bw") + "@contoso.com",
                                totp=True)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s?%s#%s" % (user, fresh_totp_code(secret),
                                     asset_id), "echo login-ok", password=pw)
    assert_ran(r)
    proxy.session_of(user, "ok")


@pytest.mark.core
def test_sub_site_through_a_group_site_grant(proxy, target, ssh_client,
                                             devops):
    """Asset in /root/DevOps named in the login as `/DevOps`; the role
    comes from a site grant to a group the user is in."""
    user, pw, _ = new_user(proxy)
    group = uniq("g")
    proxy.cli("group", "add", group)
    proxy.cli("group", "member", "add", group, user)
    name = "Web " + uniq("")
    asset_id = proxy.target_asset(target, name=name, site=devops)
    proxy.grant(site=devops, group=group)
    prof = proxy.profile_add()
    proxy.profile_assign(prof, group=group)
    r = ssh_client.ssh("%s/DevOps#%s" % (user, name), "echo login-ok",
                       password=pw)
    assert_ran(r)
    row = proxy.session_of(user, "ok")
    assert row["asset_id"] == asset_id
    assert row["site"] == "/root/DevOps"


def test_nested_sub_site_by_path(proxy, target, ssh_client, devops):
    user, pw, _ = new_user(proxy)
    name = "Db " + uniq("")
    asset_id = proxy.target_asset(target, name=name,
                                  site="/root/DevOps/Linux")
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s/DevOps/Linux#%s" % (user, name), "echo login-ok",
                       password=pw)
    assert_ran(r)
    assert proxy.session_of(user, "ok")["asset_id"] == asset_id


def test_site_and_totp(proxy, target, ssh_client, devops):
    user, pw, secret = new_user(proxy, totp=True)
    name = uniq("a")
    asset_id = proxy.target_asset(target, name=name, site=devops)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s/DevOps?%s#%s" % (user, fresh_totp_code(secret),
                                            name), "echo login-ok",
                       password=pw)
    assert_ran(r)
    assert proxy.session_of(user, "ok")["asset_id"] == asset_id


def test_domain_site_and_totp_together(proxy, target, ssh_client, devops):
    user, pw, secret = new_user(proxy, name=uniq("bw") + "@contoso.com",
                                totp=True)
    name = "Prod App " + uniq("")
    asset_id = proxy.target_asset(target, name=name, site=devops)
    proxy.allow(user, asset_id)
    login = "%s/DevOps?%s#%s" % (user, fresh_totp_code(secret), name)
    r = ssh_client.ssh(login, "echo login-ok", password=pw)
    assert_ran(r)
    row = proxy.session_of(user, "ok")
    assert row["asset_id"] == asset_id
    assert row["site"] == "/root/DevOps"


@pytest.mark.core
def test_public_key_login(proxy, target, ssh_client, tmp_path):
    user = proxy.user_add()
    key = keygen(tmp_path / "userkey")
    proxy.key_add(user, str(key) + ".pub")
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok", key=key)
    assert_ran(r)
    proxy.session_of(user, "ok")


def test_public_key_and_keyboard_interactive_totp(proxy, target,
                                                   ssh_client, tmp_path):
    user = proxy.user_add()
    secret = proxy.totp_enable(user)
    key = keygen(tmp_path / "userkey")
    proxy.key_add(user, str(key) + ".pub")
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok", key=key,
                       totp=fresh_totp_code(secret))
    assert_ran(r)
    proxy.session_of(user, "ok")


def test_unpinned_asset_is_trusted_on_first_use(proxy, target, ssh_client):
    user, pw, _ = new_user(proxy)
    asset_id = proxy.target_asset(target, pin=False)
    proxy.allow(user, asset_id)
    r = ssh_client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                       password=pw)
    assert_ran(r)
    _, out, _ = proxy.cli("asset", "show", asset_id)
    assert target.fingerprint in out
