"""Portcullis on PostgreSQL, operations (issue 18): `init --store-url` on a
database the test's own PostgreSQL holds (pglib.py), its refusals (a bad
URL, a password in the URL, a server that does not answer, a database
that already holds a store), and serving from it: a real ssh login
through the proxy with its report row read back."""

import os

import pytest

import pclib
from pclib import Client, Portcullis, run, uniq


@pytest.fixture(scope="module")
def pg():
    return pclib.shared_pg()


def _left_behind(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_init_on_postgresql_and_login(pg, target, tmp_path):
    url = pg.new_database()
    p = Portcullis(tmp_path / "pc", store_url=url)
    p.tune_for_tests()
    conf = p.conf.read_text()
    assert "url = %s\n" % url in conf, conf
    assert "portcullis.db" not in conf, conf
    assert not (p.dir / "portcullis.db").exists()
    assert (p.dir / "vault.key").exists()
    dbname = url.split("///")[1].split("?")[0]
    # the schema, /root and the admin are in PostgreSQL
    assert pg.psql(dbname, "SELECT name FROM users").split() == ["admin"]
    assert pg.psql(dbname, "SELECT path FROM sites").split() == ["/root"]
    _, out, _ = p.cli("user", "list")
    assert "admin" in out, out
    try:
        p.start()
        pw = "pw-" + uniq()
        user = p.user_add(password=pw)
        asset = p.target_asset(target)
        p.allow(user, asset)
        r = Client(p.ssh_port).ssh("%s#%s" % (user, asset), "echo on-pg",
                                   password=pw)
        assert r.rc == 0 and r.out.strip() == "on-pg", r
        row = p.session_of(user, "ok", kind="exec")
        assert row["asset_id"] == asset, row
        got = pg.psql(dbname, "SELECT user_name, result FROM sessions")
        assert "%s|ok" % user in got, got
    finally:
        p.stop()


def _init(tmp_path, url):
    d = tmp_path / "pc"
    r = run([pclib.portcullis_bin(), "init", "--dir", d, "--ssh-port",
             pclib.free_port(), "--http-port", pclib.free_port(),
             "--host-keys", pclib.shared_host_keys(), "--store-url", url])
    return r, d


def test_init_refuses_a_password_in_the_url(tmp_path):
    for url in ("postgresql://pcuser:S3cret-pw-991@127.0.0.1/pc",
                "postgresql:///pc?host=/tmp&password=S3cret-pw-991"):
        r, d = _init(tmp_path, url)
        assert r.rc != 0, r
        assert "must not hold a password" in r.err, r
        assert "S3cret-pw-991" not in r.out + r.err, r
        assert _left_behind(d) == [], _left_behind(d)


def test_init_refuses_a_bad_url(tmp_path):
    r, d = _init(tmp_path, "mysql://somewhere/db")
    assert r.rc != 0 and "must start with postgresql://" in r.err, r
    r, d = _init(tmp_path, "postgresql:///pc?port=notaport")
    assert r.rc != 0, r
    assert "cannot open the PostgreSQL store" in r.err, r
    assert _left_behind(d) == [], _left_behind(d)


def test_init_on_a_server_that_is_not_there(tmp_path):
    # a socket directory where nobody listens: refused at once, clearly
    empty = tmp_path / "nosock"
    empty.mkdir()
    r, d = _init(tmp_path, "postgresql:///pc?host=%s&user=x" % empty)
    assert r.rc != 0, r
    assert "cannot open the PostgreSQL store" in r.err, r
    assert "cannot connect to PostgreSQL" in r.err, r
    assert _left_behind(d) == [], _left_behind(d)


def test_init_refuses_a_database_with_a_store(pg, tmp_path):
    url = pg.new_database()
    Portcullis(tmp_path / "first", store_url=url)
    r, d = _init(tmp_path, url)
    assert r.rc != 0, r
    assert "already holds a Portcullis store" in r.err, r
    assert _left_behind(d) == [], _left_behind(d)
