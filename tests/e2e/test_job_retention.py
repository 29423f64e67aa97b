"""Cleanup of kept job results (issue 14): the server deletes jobs (and
their output) that ended more than [jobs] retention_days ago, at its start
and hourly (docs/operations.md); the agent deletes results it kept in
job_results_dir that nobody asked for within job_results_keep_days
(docs/agent.md), but never the file of a job still running."""
import fcntl
import os
import sqlite3
import time

from agentlib import (agent_server, make_agent, wait_agent,  # noqa: F401
                      wait_log)
from pclib import Portcullis
from test_jobs import API, ON, call, online_agent, run

DAY = 86400


def test_server_deletes_jobs_past_the_retention(tmp_path, make_agent):
    pc = Portcullis(tmp_path / "pc")
    pc.tune_for_tests()
    pc.set_config("jobs", "retention_days", "1")
    pc.start()
    pc.wait_http()
    try:
        a = online_agent(pc, make_agent)
        old = run(pc, a.id, "echo old-output", timeout=10)
        new = run(pc, a.id, "echo new-output", timeout=10)
        assert old["stdout"] == "old-output\n"
        pc.stop()
        # the first job ended two days ago, the other now
        db = sqlite3.connect(str(pc.dir / "portcullis.db"))
        with db:
            db.execute("UPDATE jobs SET finished_at = finished_at - ?"
                       " WHERE id = ?", (2 * DAY, old["id"]))
        db.close()
        pc.start()
        pc.wait_http()
        deadline = time.monotonic() + 10
        while "retention: deleted 1 jobs" not in pc.log_text() and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        assert "retention: deleted 1 jobs" in pc.log_text()
        status, got = call(pc, "GET", "%s/jobs/%s" % (API, old["id"]))
        assert status == 404, got
        status, got = call(pc, "GET", "%s/jobs/%s" % (API, new["id"]))
        assert status == 200 and got["data"]["stdout"] == "new-output\n"
        # its output is gone from the store too, not only hidden
        db = sqlite3.connect(str(pc.dir / "portcullis.db"))
        rows = db.execute("SELECT count(*) FROM jobs WHERE id = ?",
                          (old["id"],)).fetchone()[0]
        db.close()
        assert rows == 0
    finally:
        pc.stop()


def test_agent_deletes_old_kept_results_but_not_a_running_jobs(
        agent_server, make_agent, tmp_path):
    pc = agent_server
    keep = tmp_path / "kept"
    keep.mkdir(mode=0o700)
    then = time.time() - 2 * DAY
    files = {}
    for name in ("old-never-asked", "fresh-one", "old-still-running",
                 ".old-not-a-result"):
        p = keep / name
        p.write_bytes(b"R\x00\x00\x00\x02{}")
        if name != "fresh-one":
            os.utime(p, (then, then))
        files[name] = p
    # a runner holds the file of a job still running (its lock)
    held = open(files["old-still-running"], "rb")
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        a = make_agent(pc, conf=ON + ["job_results_dir = %s" % keep,
                                      "job_results_keep_days = 1"])
        wait_agent(pc, a.id)
        wait_log(a, "deleted 1 kept job result older than 1 days")
        assert not files["old-never-asked"].exists()
        assert files["fresh-one"].exists()
        assert files["old-still-running"].exists()
        assert files[".old-not-a-result"].exists()
        # a job's own kept file still goes when the server acknowledges it
        j = run(pc, a.id, "echo hi", timeout=10)
        assert j["status"] == "ok"
        deadline = time.monotonic() + 10
        while (keep / j["id"]).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (keep / j["id"]).exists()
    finally:
        held.close()


def test_agent_keeps_results_with_keep_days_0(agent_server, make_agent,
                                              tmp_path):
    pc = agent_server
    keep = tmp_path / "kept"
    keep.mkdir(mode=0o700)
    p = keep / "old-never-asked"
    p.write_bytes(b"x")
    then = time.time() - 400 * DAY
    os.utime(p, (then, then))
    a = make_agent(pc, conf=ON + ["job_results_dir = %s" % keep,
                                  "job_results_keep_days = 0"])
    wait_agent(pc, a.id)
    time.sleep(1)
    assert p.exists()
    assert "kept job result" not in a.log_text()
