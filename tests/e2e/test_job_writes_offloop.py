"""A running job's store writes off the main loop (issue 18; docs/store.md
"Jobs off the loop"): on PostgreSQL the live output every 250 ms and the
result at the end go through the hub's ordered writer (hub_jobw.c) on a
connection of its own. So a lock on job_output or jobs (another
session's), or a database that stops answering, delays those writes,
never the loop: the web UI's page (asked from 127.0.0.2) is answered at
once meanwhile, a command's answer (built from the result in memory)
is not held, and once the database takes the writes again the job's
output is whole and in order. Before, each write held the whole loop
until the lock went or the statement deadline (3 s) passed."""

import time

import pclib
from agentlib import make_agent, netns, wait_agent  # noqa: F401
from test_store_pg import lock_tables
from test_store_pg_offloop2 import _Frozen, _call, probe_while
from test_store_pg_offloop3 import ON, _close

API = "/api/v1"
LOOP_LIMIT = pclib.LOOP_LIMIT  # the loop-stall limit of every such test
# prints one line every 0.4 s for 3.2 s
PRINTER = "for i in 1 2 3 4 5 6 7 8; do echo line$i; sleep 0.4; done"
LINES = "".join("line%d\n" % i for i in range(1, 9))


def _setup(tmp_path, make_agent):  # noqa: F811
    f = _Frozen(tmp_path)
    try:
        a = make_agent(f.p, conf=ON)
        wait_agent(f.p, a.id)
        st, doc, _, _ = _call(f.p.http_port, "POST",
                              "%s/agents/%s/commands" % (API, a.id),
                              f.token, {"command": "printf warm"})
        assert st == 200 and doc["data"]["stdout"] == "warm", doc
        return f, a
    except BaseException:
        _close(f)
        raise


def _start(f, a, command):
    st, doc, _, _ = _call(f.p.http_port, "POST",
                          "%s/agents/%s/commands" % (API, a.id), f.token,
                          {"command": command, "wait": False})
    assert st == 202, doc
    return doc["data"]["id"]


def _ended(f, job_id, timeout=30):
    """The job once it ended (GET /jobs/{id}, which waits for the writes
    the loop asked for)."""
    def get():
        st, doc, _, _ = _call(f.p.http_port, "GET", API + "/jobs/" + job_id,
                              f.token)
        assert st == 200, doc
        d = doc["data"]
        return d if d["status"] not in ("running", "queued") else None
    return pclib.wait_for(get, timeout, "job %s ends" % job_id)


def test_live_output_waits_for_its_table_not_the_loop(tmp_path, make_agent):  # noqa: F811
    """A job printing for 3.2 s while another session holds job_output
    against writes for 2.5 s: the page is answered at once throughout;
    the job's output is whole and in order once the lock goes."""
    f, a = _setup(tmp_path, make_agent)
    try:
        job = _start(f, a, PRINTER)
        time.sleep(0.5)  # its first lines are written
        holder = lock_tables(f.own, f.dbname, "job_output", seconds=2.5,
                             mode="EXCLUSIVE")
        _, _, worst = probe_while(f.p.http_port, lambda: holder.wait(30),
                                  2.3, settle=0.1)
        print("live output held by a lock: the slowest page %.3f s" % worst)
        assert worst < LOOP_LIMIT, "the live output's write held the loop " \
            "(the page took %.2f s)" % worst
        d = _ended(f, job)
        assert d["status"] == "ok" and d["stdout"] == LINES, d
    finally:
        _close(f)


def test_a_result_waits_for_the_jobs_table_not_the_loop(tmp_path, make_agent):  # noqa: F811
    """A command that ends while another session holds the jobs table
    against writes for 3 s: the page is answered at once meanwhile; the
    command's answer comes once its result is in the store (so whoever
    reads the job then, the CLI, another node, sees it ended), with its
    output."""
    f, a = _setup(tmp_path, make_agent)
    try:
        holder = None
        out = {}

        def fire():
            return _call(f.p.http_port, "POST",
                         "%s/agents/%s/commands" % (API, a.id), f.token,
                         {"command": "sleep 1; printf done"})

        def locked_fire():
            # the row is written first (the API's worker): the lock comes
            # once the job runs
            nonlocal holder
            import threading
            t = threading.Thread(target=lambda: out.update(r=fire()),
                                 daemon=True)
            t0 = time.monotonic()
            t.start()
            time.sleep(0.4)
            holder = lock_tables(f.own, f.dbname, "jobs", seconds=3,
                                 mode="EXCLUSIVE")
            t.join(30)
            out["took"] = time.monotonic() - t0
            return out.get("r")

        r, _, worst = probe_while(f.p.http_port, locked_fire, 2.5,
                                  settle=0.5)
        holder.wait(30)
        print("result held by a lock: answered in %.2f s, the slowest page "
              "%.3f s" % (out["took"], worst))
        st, doc, _, _ = r
        assert st == 200 and doc["data"]["stdout"] == "done", doc
        assert worst < LOOP_LIMIT, "the result's write held the loop " \
            "(the page took %.2f s)" % worst
        # read at once, on another connection: written before the answer
        row = f.own.psql(f.dbname, "SELECT status FROM jobs WHERE id = "
                         "'%s'" % doc["data"]["id"]).strip()
        assert row == "ok", row
        assert out["took"] > 3, "answered before the lock went (%.2f s)" \
            % out["took"]
    finally:
        _close(f)


def test_a_stopped_database_loses_no_output(tmp_path, make_agent):  # noqa: F811
    """The database stopped (SIGSTOP) for 3 s while two jobs print and
    one of them ends: the page is answered at once meanwhile, and after
    the database comes back both jobs' rows hold their whole output in
    order and their results."""
    f, a = _setup(tmp_path, make_agent)
    try:
        long_job = _start(f, a, PRINTER)
        short_job = _start(f, a, "echo a; sleep 0.8; echo b; exit 3")
        time.sleep(0.3)
        f.freeze()
        try:
            _, _, worst = probe_while(f.p.http_port, lambda: time.sleep(3),
                                      2.8, settle=0.1)
        finally:
            f.back()
        print("database stopped: the slowest page %.3f s" % worst)
        assert worst < LOOP_LIMIT, "a job's write held the loop " \
            "(the page took %.2f s)" % worst
        d = _ended(f, short_job)
        assert d["status"] == "failed" and d["exit_code"] == 3, d
        assert d["stdout"] == "a\nb\n", d
        d = _ended(f, long_job)
        assert d["status"] == "ok" and d["stdout"] == LINES, d
        # nothing left behind for the writer at stop
        f.p.stop()
        assert "not made at stop" not in f.p.log_text(), f.p.log_tail()
        f.p.start()
        f.p.wait_http()
    finally:
        _close(f)


def test_stop_while_a_result_waits(tmp_path, make_agent):  # noqa: F811
    """SIGTERM while a command's result waits for a lock on the jobs
    table (its client waiting for the answer): the server exits cleanly
    within its stop deadline (no sanitizer report), and after a restart
    the job is not left running."""
    f, a = _setup(tmp_path, make_agent)
    try:
        out = {}

        def fire():
            try:
                out["r"] = _call(f.p.http_port, "POST",
                                 "%s/agents/%s/commands" % (API, a.id),
                                 f.token, {"command": "sleep 0.5; printf x"})
            except OSError as e:
                out["r"] = e
        import threading
        t = threading.Thread(target=fire, daemon=True)
        t.start()
        time.sleep(0.2)
        holder = lock_tables(f.own, f.dbname, "jobs", seconds=4,
                             mode="EXCLUSIVE")
        time.sleep(1.0)  # the job ended; its result waits for the lock
        t0 = time.monotonic()
        f.p.stop()
        took = time.monotonic() - t0
        t.join(timeout=30)
        holder.wait(timeout=30)
        assert took < 10, took
        found = f.p.sanitizer_findings(new_only=False)
        assert not found, found
        f.p.start()
        f.p.wait_http()
        st, doc, _, _ = _call(f.p.http_port, "GET", API + "/jobs", f.token)
        assert st == 200, doc
        left = [j for j in doc["data"] if j["command"] == "sleep 0.5; printf x"]
        assert left, doc
        for j in left:
            _ended(f, j["id"])
    finally:
        _close(f)
