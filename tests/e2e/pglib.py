"""A private PostgreSQL server for the end-to-end tests.

PgServer(dir) runs `initdb` and `pg_ctl start` in a fresh directory (as
scripts/with-postgres does): UTF-8, the C collation, trust authentication,
listening only on a Unix socket in that directory (no TCP port), and as
the `postgres` system user when the tests run as root (initdb refuses
root). new_database() creates one more empty database (from template0,
--locale=C) and returns its postgresql:// URL; every Portcullis of a test
run on PostgreSQL gets one of its own, so tests do not see each other's
rows. psql() runs a statement in one, dump() shows one whole (pg_dump).
stop() / start() stop and restart the same cluster (the outage
tests); close() stops it and removes the directory.

Skips the test (pytest.skip) when PostgreSQL's server binaries are not
installed (scripts/install-deps installs them).
"""

import glob
import itertools
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

_counter = itertools.count(1)


def pg_bindir():
    env = os.environ.get("PG_BINDIR")
    if env:
        return env
    found = sorted(d for d in glob.glob("/usr/lib/postgresql/*/bin")
                   if os.access(os.path.join(d, "initdb"), os.X_OK))
    return found[-1] if found else None


class PgServer:
    def __init__(self):
        self.bindir = pg_bindir()
        if self.bindir is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not "
                        "found: install postgresql (scripts/install-deps)")
        self.dir = tempfile.mkdtemp(prefix="portcullis-e2e-pg.")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.port = 5432  # names the socket file in self.dir only
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, os.environ.get("PG_USER", "postgres"))
            self.as_user = ["runuser", "-u",
                            os.environ.get("PG_USER", "postgres"), "--"]
        # --no-sync: a throwaway cluster need not wait for the disk
        self._run(["initdb", "--no-sync", "-D", self.data, "-U",
                   "portcullis", "-A", "trust", "-E", "UTF8", "--locale=C"])
        self.running = False
        self.start()

    def _run(self, args, check=True, timeout=120):
        cmd = self.as_user + [os.path.join(self.bindir, args[0])] + args[1:]
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s %s" % (
                args[0], r.returncode, r.stdout, r.stderr))
        return r

    def start(self):
        self._run(["pg_ctl", "-D", self.data, "-l",
                   os.path.join(self.dir, "server.log"), "-w", "-t", "60",
                   "-o", "-k %s -p %d -c listen_addresses= -c fsync=off "
                   "-c max_connections=300" % (self.dir, self.port),
                   "start"])
        self.running = True

    def stop(self):
        """Stops the server now (mode immediate: sessions are cut off, as
        when the database's machine goes away)."""
        self._run(["pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                   "stop"], check=False)
        self.running = False

    def url(self, dbname):
        return "postgresql:///%s?host=%s&port=%d&user=portcullis" % (
            dbname, self.dir, self.port)

    @staticmethod
    def dbname_of(url):
        """The database name in a URL url() made."""
        return url.split("///")[1].split("?")[0]

    def psql(self, dbname, sql):
        """Runs sql in dbname; returns psql's output (unaligned, no
        headers)."""
        r = self._run(["psql", "-h", self.dir, "-p", str(self.port), "-U",
                       "portcullis", "-d", dbname, "-X", "-A", "-t", "-v",
                       "ON_ERROR_STOP=1", "-c", sql])
        return r.stdout

    def dump(self, dbname):
        """pg_dump of dbname (plain SQL, data included) as text: what
        someone who can read the database sees."""
        return self._run(["pg_dump", "-h", self.dir, "-p", str(self.port),
                          "-U", "portcullis", "--no-owner", dbname]).stdout

    def new_database(self, prefix="pc"):
        """An empty database of its own (C collation); returns its URL."""
        name = "%s_%d_%d" % (prefix, os.getpid(), next(_counter))
        self._run(["createdb", "-h", self.dir, "-p", str(self.port), "-U",
                   "portcullis", "-T", "template0", "-E", "UTF8",
                   "--locale=C", name])
        return self.url(name)

    def freeze(self, dbname):
        """Stops the backends of dbname's clients as they are
        (connections open, idle), then the postmaster, with SIGSTOP:
        statements and cancel requests hang, new connections are accepted
        by the kernel and never answered. Returns the stopped PIDs, for
        thaw()."""
        backends = [int(x) for x in self.psql(
            dbname, "SELECT pid FROM pg_stat_activity WHERE datname = "
            "current_database() AND backend_type = 'client backend' "
            "AND pid <> pg_backend_pid()").split()]
        assert backends
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        stopped = []
        for pid in backends + [postmaster]:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        return stopped

    @staticmethod
    def thaw(stopped):
        """Resumes what freeze() stopped (emptying the list), the
        postmaster first."""
        while stopped:
            try:
                os.kill(stopped.pop(), signal.SIGCONT)
            except ProcessLookupError:
                pass

    def close(self):
        if self.running:
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
