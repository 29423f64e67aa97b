"""`portcullis node join` (issue 18, docs/operations.md "Cluster"): the
first node is made by `init --store-url`; its shared keys are copied to a
directory (as an operator copies them over ssh) and a second node joins
the same PostgreSQL store from them. Both serve on loopback: the second
lists both nodes, presents the same SSH host key and TLS certificate,
lets a user made through the first log in, and takes the first's API
tokens. Refusals come before anything is written: a SQLite store, an
unreachable one, a database without a store, missing or loose keys, and
keys of another cluster."""

import json
import os
import shutil
import time

import pytest

import pclib
import pglib
from pclib import Client, Portcullis, http_json, left_behind, run, uniq

SHARED = ("vault.key", "api_jwt.key", "audit.key", "tls.crt", "tls.key",
          "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub",
          "ssh_host_ecdsa_key", "ssh_host_ecdsa_key.pub",
          "ssh_host_rsa_key", "ssh_host_rsa_key.pub")


@pytest.fixture(scope="module")
def pg():
    return pclib.shared_pg()


def seed_of(node, where):
    """The shared keys of node copied to where, modes kept."""
    where.mkdir(mode=0o700)
    for f in SHARED:
        shutil.copy2(node.dir / f, where / f)
    return where


def join(tmp_path, url, seed, name="b", extra=()):
    d = tmp_path / name
    ports = [pclib.free_port() for _ in range(3)]
    r = run([pclib.portcullis_bin(), "node", "join", "--dir", d,
             "--store-url", url, "--from", seed, "--name", name,
             "--ssh-port", ports[0], "--http-port", ports[1],
             "--proxy-port", ports[2]] + list(extra))
    return r, d, ports


def joined(d, ports, url, out):
    """A Portcullis for the data directory node join made."""
    p = Portcullis.__new__(Portcullis)
    p.dir = d
    p.ssh_port, p.http_port, p.proxy_port = ports
    p.bin = pclib.portcullis_bin()
    p.store_url = url
    p.info = pclib.parse_kv(out)
    p.conf = d / "portcullis.conf"
    p.fingerprint = p.info["fingerprint"]
    p.log_path = d / "server.log"
    p.proc = None
    p._log_seen = 0
    return p


def fast_heartbeat(p, name):
    p.tune_for_tests()
    p.set_config("node", "name", name)
    p.set_config("node", "heartbeat_seconds", "1")
    p.set_config("node", "dead_after_seconds", "4")




def test_second_node_joins_and_serves_the_same_store(pg, target, tmp_path):
    url = pg.new_database()
    a = Portcullis(tmp_path / "a", store_url=url)
    fast_heartbeat(a, "a")
    seed = seed_of(a, tmp_path / "seed")
    r, d, ports = join(tmp_path, url, seed)
    assert r.rc == 0, r
    b = joined(d, ports, url, r.out)
    # the same keys: users' known_hosts and agents' pins fit both nodes
    assert b.info["fingerprint"] == a.info["fingerprint"]
    assert b.info["tls_fingerprint"] == a.info["tls_fingerprint"]
    assert b.info["store"] == url
    conf = b.conf.read_text()
    assert "url = %s\n" % url in conf and "name = b\n" in conf, conf
    assert "[http_proxy]\nenabled = true\n" in conf, conf
    for f in ("vault.key", "api_jwt.key", "audit.key", "tls.key",
              "ssh_host_ed25519_key"):
        assert (d / f).read_bytes() == (a.dir / f).read_bytes(), f
        assert (d / f).stat().st_mode & 0o777 == 0o600, f
    assert not (d / "portcullis.db").exists()
    fast_heartbeat(b, "b")
    try:
        a.start()
        b.start()
        b.wait_http()
        deadline = time.monotonic() + 15
        while True:
            _, out, _ = b.cli("node", "list", "--json")
            rows = {n["name"]: n for n in json.loads(out)}
            if {"a", "b"} <= set(rows) and all(
                    rows[n]["state"] == "online" for n in ("a", "b")):
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)
        # a user and an asset made through a, a login through b
        pw = "pw-" + uniq()
        user = a.user_add(password=pw)
        asset = a.target_asset(target)
        a.allow(user, asset)
        got = Client(b.ssh_port).ssh("%s#%s" % (user, asset),
                                     "echo via-b", password=pw)
        assert got.rc == 0 and got.out.strip() == "via-b", got
        row = a.session_of(user, "ok", kind="exec")
        assert row["node"] == rows["b"]["id"], row
        # an API token made through a is good on b
        tok = pclib.parse_kv(a.cli("token", "add", "--user", "admin",
                                          "--expires", "1d")[1])
        st, body = http_json(b.http_port, "GET", "/api/v1/nodes", tok["token"])
        assert st == 200, (st, body)
        assert {n["name"] for n in body["data"]} == {"a", "b"}, body
    finally:
        b.stop()
        a.stop()


def test_join_refusals_write_nothing(pg, tmp_path):
    url = pg.new_database()
    a = Portcullis(tmp_path / "a", store_url=url)
    seed = seed_of(a, tmp_path / "seed")

    # a SQLite store belongs to one node
    r, d, _ = join(tmp_path, str(tmp_path / "x.db"), seed)
    assert r.rc == 2 and "a SQLite store belongs to one node" in r.err, r
    assert left_behind(d) == []
    # a server that is not there: one clear line, at once
    nosock = tmp_path / "nosock"
    nosock.mkdir()
    t0 = time.monotonic()
    r, d, _ = join(tmp_path, "postgresql:///pc?host=%s&user=x" % nosock,
                   seed)
    assert r.rc == 1 and "cannot connect to PostgreSQL" in r.err, r
    assert "cannot open the PostgreSQL store" in r.err, r
    assert time.monotonic() - t0 < 10
    assert left_behind(d) == []
    # an empty database: no store to join, and none is made in it
    empty = pg.new_database()
    r, d, _ = join(tmp_path, empty, seed)
    assert r.rc == 1 and "holds no Portcullis store" in r.err, r
    assert "init --store-url" in r.err, r
    dbname = pglib.PgServer.dbname_of(empty)
    assert pg.psql(dbname, "SELECT tablename FROM pg_tables WHERE "
                   "schemaname = 'public'").split() == []
    assert left_behind(d) == []
    # a key others can read, and a missing one
    os.chmod(seed / "vault.key", 0o644)
    r, d, _ = join(tmp_path, url, seed)
    assert r.rc == 1 and "vault.key can be read by group or others" in r.err
    assert left_behind(d) == []
    os.chmod(seed / "vault.key", 0o600)
    os.rename(seed / "api_jwt.key", tmp_path / "api_jwt.key")
    r, d, _ = join(tmp_path, url, seed)
    assert r.rc == 1 and "holds no api_jwt.key" in r.err, r
    assert left_behind(d) == []
    os.rename(tmp_path / "api_jwt.key", seed / "api_jwt.key")
    # another cluster's keys: its audit key does not verify this store's
    # log (which has entries once anything was changed through the CLI)
    a.user_add()
    other = Portcullis(tmp_path / "other", store_url=pg.new_database())
    wrong = seed_of(other, tmp_path / "wrong")
    r, d, _ = join(tmp_path, url, wrong)
    assert r.rc == 1 and "not this cluster's audit key" in r.err, r
    assert left_behind(d) == []
    # and with the right keys it goes through
    r, d, _ = join(tmp_path, url, seed)
    assert r.rc == 0, r
