"""Two Portcullis nodes on one real PostgreSQL (issue 18).

  PostgreSQL     a private server of the test's own: initdb in a fresh
                 temporary directory, listening only on a Unix socket there
                 (as scripts/with-postgres does; as root the server runs as
                 the "postgres" system user), one database "portcullis";
                 .url is what [store] url takes. stop() removes everything.
  make_node(pg, workdir, name, seed=None, netns=None)
                 a Portcullis data directory on that store: `init` makes
                 it, then [store] url points at PostgreSQL, [node] name is
                 set and the heartbeat is shortened for tests (1 s, dead
                 after 4 s). seed: another node whose vault key, JWT secret,
                 audit key and TLS certificate this one takes (a cluster
                 shares them). With netns, the HTTP listener is on the
                 host's end of the namespace's veth (agents inside reach
                 it); with proxy, the CONNECT proxy other nodes reach its
                 agents through is on (127.0.0.1:.proxy_port).

Fixtures (import them into a test module):

  pg             a started PostgreSQL for one test, stopped after it

Everything a fixture starts it stops, also when the test fails.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import pclib
from pclib import Portcullis

HEARTBEAT_SECONDS = 1
DEAD_AFTER_SECONDS = 4


def _pg_bindir():
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin")):
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


class PostgreSQL:
    PORT = 5432  # only names the socket file in the private directory

    def __init__(self):
        self.bindir = _pg_bindir()
        if self.bindir is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not "
                        "installed (scripts/install-deps)")
        self.dir = Path(tempfile.mkdtemp(prefix="portcullis-e2e-pg."))
        os.chmod(self.dir, 0o755)
        self.as_user = []
        if os.geteuid() == 0:
            user = os.environ.get("PG_USER", "postgres")
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                shutil.rmtree(self.dir, ignore_errors=True)
                pytest.skip("no %s system user to run PostgreSQL as" % user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", user, "--"]
        self.data = self.dir / "data"
        self.started = False
        self.url = ("postgresql:///portcullis?host=%s&port=%d&user=portcullis"
                    % (self.dir, self.PORT))

    def _run(self, *args, timeout=120):
        r = pclib.run(self.as_user + [str(a) for a in args], timeout=timeout)
        if r.rc != 0:
            pytest.fail("%s failed: %r" % (args[0], r))
        return r

    def start(self):
        self._run(self.bindir / "initdb", "-D", self.data, "-U", "portcullis",
                  "-A", "trust", "-E", "UTF8", "--locale=C")
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-l",
                  self.dir / "server.log", "-w", "-t", "60", "-o",
                  "-k %s -p %d -c listen_addresses= -c fsync=off "
                  "-c max_connections=100" % (self.dir, self.PORT), "start")
        self.started = True
        self._run(self.bindir / "createdb", "-h", self.dir, "-p", self.PORT,
                  "-U", "portcullis", "-T", "template0", "-E", "UTF8",
                  "--locale=C", "portcullis")
        return self

    def outage(self, seconds):
        """Stops the server (fast: connections are cut), waits, starts it
        again on the same data."""
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "fast",
                  "-w", "stop")
        time.sleep(seconds)
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-l",
                  self.dir / "server.log", "-w", "-t", "60", "-o",
                  "-k %s -p %d -c listen_addresses= -c fsync=off "
                  "-c max_connections=100" % (self.dir, self.PORT), "start")

    def psql(self, sql):
        """Runs sql; returns psql's unaligned output."""
        r = pclib.run([str(self.bindir / "psql"), "-h", str(self.dir), "-p",
                       str(self.PORT), "-U", "portcullis", "-d", "portcullis",
                       "-At", "-c", sql])
        assert r.rc == 0, r
        return r.out

    def stop(self):
        if self.started:
            subprocess.run(self.as_user + [
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
                "immediate", "stop"], capture_output=True, timeout=60)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def pg():
    p = PostgreSQL()
    try:
        p.start()
        yield p
    finally:
        p.stop()


# The files every node of a cluster shares (docs/operations.md, "Cluster").
SHARED_FILES = ("vault.key", "api_jwt.key", "audit.key", "tls.crt",
                "tls.key")


def make_node(pg, workdir, name, seed=None, netns=None, proxy=False):
    p = Portcullis(workdir)
    p.tune_for_tests()
    p.set_config("store", "url", pg.url)
    p.set_config("node", "name", name)
    p.set_config("node", "heartbeat_seconds", str(HEARTBEAT_SECONDS))
    p.set_config("node", "dead_after_seconds", str(DEAD_AFTER_SECONDS))
    if netns is not None:
        p.set_config("http", "listen", netns.host_ip)
        p.set_config("http", "allow_plain_http", "true")
    if proxy:
        # the link other nodes reach this node's agents through (TLS with
        # the shared certificate, a node credential): no other destination
        p.proxy_port = pclib.free_port()
        p.set_config("http_proxy", "enabled", "true")
        p.set_config("http_proxy", "listen", "127.0.0.1")
        p.set_config("http_proxy", "port", str(p.proxy_port))
    if seed is not None:
        for f in SHARED_FILES:
            src = seed.dir / f
            if src.exists():
                shutil.copy2(src, p.dir / f)
    return p
