"""`portcullis agent pair` off the main loop (issue 18; docs/store.md
"The CLI's pairing question"). The CLI asks the running server for a
code over DATA/run/ask.sock; a question that names a credential needs
that credential's row (its secret's hash). On PostgreSQL the server now
reads it on a store worker of its own and answers the CLI when the read
comes back, so another session holding the credentials table locked (or
a stopped database) delays that answer, never the loop: the web UI's
page, asked from 127.0.0.2, keeps being answered at once. Before, the
read held the whole loop until the lock went or the statement deadline
(3 s).

The hostile paths: the asker killed while its question waits (the late
answer is dropped, the server goes on), many questions at once (at most
4 wait; the rest are refused at once with a clear error), the server
stopped (SIGTERM) while a question waits (a clean exit, no sanitizer
report: run this file on the ASan build too), a stopped database (an
error by the deadline), and malformed or oversized questions."""

import http.client
import json
import os
import select
import socket
import subprocess
import time

import pclib
from pclib import parse_kv
from test_store_pg import lock_tables
from test_store_pg_offloop2 import page, probe_while
from test_store_pg_offloop3 import srv  # noqa: F401 (a fixture)

LOOP_LIMIT = pclib.LOOP_LIMIT  # the loop-stall limit of every such test


def _credential(f):
    kv = parse_kv(f.p.cli("credential", "add", "--name", pclib.uniq("c"))[1])
    return kv["id"], kv["secret"]


def _pair_args(f, cid):
    return [f.p.bin, "-c", str(f.p.conf), "agent", "pair", "--credential",
            cid, "--json"]


def _pair(f, cid, secret):
    """`agent pair --credential` (rc, stdout, stderr)."""
    return f.p.cli("agent", "pair", "--credential", cid, "--json",
                   input="%s:%s\n" % (cid, secret), check=False)


def _pair_started(f, cid, secret):
    """The same, started: the process (its secret already given)."""
    rd, wr = os.pipe()
    os.write(wr, ("%s:%s\n" % (cid, secret)).encode())
    os.close(wr)
    try:
        return subprocess.Popen(_pair_args(f, cid), stdin=rd,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    finally:
        os.close(rd)


def _lock_credentials(f, seconds=3):
    """The credentials table held (ACCESS EXCLUSIVE: reads wait) for
    about seconds - 0.5 from now."""
    return lock_tables(f.own, f.dbname, "credentials", seconds=seconds)


def _ask_sock(f):
    found = list(f.p.dir.rglob("run/ask.sock"))
    assert found, "no ask.sock under %s" % f.p.dir
    return str(found[0])


def _ask_raw(path, data, timeout=2.0):
    """One datagram to ask.sock from an autobound address; the answer's
    bytes, or None when none came within timeout."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.bind("")  # autobind: an abstract address for the answer
        s.settimeout(timeout)
        s.sendto(data, path)
        try:
            return s.recv(65536)
        except socket.timeout:
            return None
    finally:
        s.close()


def test_pair_with_a_credential_does_not_hold_the_loop(srv):
    """The credentials table locked for about 2.5 s while `agent pair
    --credential` asks: the web page is answered at once meanwhile, and
    the code comes once the lock goes; its installer holds the
    credential."""
    f = srv
    cid, secret = _credential(f)
    assert _pair(f, cid, secret)[0] == 0  # the worker's connection is up

    holder = _lock_credentials(f)
    try:
        r, took, worst = probe_while(f.p.http_port,
                                     lambda: _pair(f, cid, secret), 2.0,
                                     settle=0.1)
    finally:
        holder.wait(timeout=30)
    print("agent pair while the credentials table was locked: rc %r in "
          "%.3f s; the slowest web page %.3f s" % (
              r[0] if isinstance(r, tuple) else r, took or -1, worst))
    assert worst < LOOP_LIMIT, \
        "the pairing question held the loop: the web page took %.2f s" % worst
    assert isinstance(r, tuple) and r[0] == 0, r
    assert took > 1.0, "the answer did not wait for the lock (%.2f s)" % took
    code = json.loads(r[1])["code"]
    c = http.client.HTTPConnection("127.0.0.1", f.p.http_port, timeout=10)
    c.request("GET", "/pair/" + code)
    resp = c.getresponse()
    body = resp.read()
    c.close()
    assert resp.status == 200, body[:200]
    assert ("CREDENTIAL='%s:%s'" % (cid, secret)).encode() in body


def test_wrong_secret_is_refused_off_the_loop(srv):
    """The check that runs on the worker still refuses: a wrong secret and
    an unknown credential get their clear errors."""
    f = srv
    cid, _ = _credential(f)
    rc, out, err = _pair(f, cid, "wrong-secret")
    assert rc != 0 and "wrong secret" in err, (rc, out, err)
    rc, out, err = _pair(f, "nosuchcredential", "x")
    assert rc != 0 and "not found" in err, (rc, out, err)


def test_asker_killed_while_its_question_waits(srv):
    """The CLI killed while the credentials table is locked: the answer
    that comes once the lock goes finds nobody and is dropped; the server
    goes on (the page, and the next question, answered)."""
    f = srv
    cid, secret = _credential(f)
    holder = _lock_credentials(f)
    try:
        proc = _pair_started(f, cid, secret)
        time.sleep(0.7)
        proc.kill()
        proc.wait(timeout=10)
        assert page(f.p.http_port) < LOOP_LIMIT
    finally:
        holder.wait(timeout=30)
    time.sleep(0.3)  # the read came back and its answer went nowhere
    assert f.p.proc.poll() is None, "the server died:\n" + f.p.log_tail()
    rc, out, err = _pair(f, cid, secret)
    assert rc == 0 and json.loads(out)["code"], (rc, out, err)


def _question(cid, secret):
    return json.dumps({"op": "pair", "actor": "admin", "tags": [],
                       "credential": cid, "secret": secret}).encode()


def test_many_questions_are_bounded(srv):
    """Eight questions at once (straight to ask.sock, so they all arrive
    while the table is locked) : four wait, the rest are refused at once
    with a clear error; the ones that waited get their codes once the lock
    goes, and the loop stays free."""
    f = srv
    cid, secret = _credential(f)
    assert _pair(f, cid, secret)[0] == 0
    path = _ask_sock(f)
    socks = []
    holder = _lock_credentials(f)
    try:
        t0 = time.monotonic()
        for _ in range(8):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind("")
            s.settimeout(10)
            s.sendto(_question(cid, secret), path)
            socks.append(s)
        answers = []
        worst = 0.0
        left = list(socks)
        while left and time.monotonic() - t0 < 10:
            ready, _, _ = select.select(left, [], [], 0.05)
            for s in ready:  # each answer's time as it comes
                answers.append((json.loads(s.recv(65536)),
                                time.monotonic() - t0))
                left.remove(s)
            worst = max(worst, page(f.p.http_port))
    finally:
        for s in socks:
            s.close()
        holder.wait(timeout=30)
    ok = [a for a in answers if "code" in a[0]]
    busy = [a for a in answers if "code" not in a[0]]
    print("8 questions at once: %d answered with a code (the last at %.2f "
          "s), %d refused (the last at %.2f s); the slowest page %.3f s" % (
              len(ok), max(a[1] for a in ok) if ok else -1, len(busy),
              max(a[1] for a in busy) if busy else -1, worst))
    assert worst < LOOP_LIMIT, worst
    assert len(answers) == 8, answers
    assert len(ok) == 4 and len(busy) == 4, answers
    for a, took in busy:
        assert "too many pairing questions" in a["error"], a
        assert took < 1.0, "a refusal waited %.2f s" % took
    for a, took in ok:
        assert took > 1.0, "answered before the lock went (%.2f s)" % took


def test_stop_while_a_question_waits(srv):
    """SIGTERM while a question waits for the locked credentials table:
    the server exits cleanly (status 0, no sanitizer report) and the CLI
    is told at once that the server stopped, not left to its timeout."""
    f = srv
    cid, secret = _credential(f)
    holder = _lock_credentials(f)
    try:
        proc = _pair_started(f, cid, secret)
        time.sleep(0.7)
        t0 = time.monotonic()
        rc = f.p.stop()
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        holder.wait(timeout=30)
    print("SIGTERM while a question waited: exit %r; the CLI answered in "
          "%.2f s: %s" % (rc, took, err.strip()))
    assert rc == 0, "exit status %r:\n%s" % (rc, f.p.log_tail())
    assert proc.returncode != 0 and "server stopped" in err, (out, err)
    assert took < 4.0, took  # the CLI's own timeout is 5 s
    found = f.p.sanitizer_findings(new_only=False)
    assert not found, found


def test_stopped_database_answers_by_the_deadline(srv):
    """The database stopped (SIGSTOP): a question (straight to ask.sock:
    the CLI itself could not open the store) is answered with an error by
    the statement deadline (3 s), the loop free meanwhile; once the
    database is back, pairing works again."""
    f = srv
    cid, secret = _credential(f)
    assert _pair(f, cid, secret)[0] == 0
    q = _question(cid, secret)
    path = _ask_sock(f)
    f.freeze()
    try:
        r, took, worst = probe_while(f.p.http_port,
                                     lambda: _ask_raw(path, q, timeout=10),
                                     2.5, settle=0.1)
    finally:
        f.back()
    print("a pairing question while the database was stopped: %r in %.3f "
          "s; the slowest web page %.3f s" % (r, took or -1, worst))
    assert worst < LOOP_LIMIT, worst
    assert r is not None and "database" in json.loads(r)["error"], r
    assert took < 3.0 + 1.0, took
    pclib.wait_for(lambda: _pair(f, cid, secret)[0] == 0 or None, 30,
                   "pairing works again once the database is back")


def test_malformed_and_oversized_questions(srv):
    """Straight to ask.sock: a question that is not JSON, or not ours, is
    answered with an error; one over 4096 bytes, or from an unbound
    socket, gets nothing; the server goes on and answers the next."""
    f = srv
    path = _ask_sock(f)
    a = _ask_raw(path, b"not json")
    assert a is not None and "error" in json.loads(a), a
    a = _ask_raw(path, b'{"op":"steal"}')
    assert json.loads(a)["error"] == "not a question this server knows", a
    a = _ask_raw(path, b'{"op":"pair","credential":5}')
    assert a is not None, "a credential that is not text got no answer"
    assert _ask_raw(path, b"{" + b" " * 5000 + b"}", timeout=1.0) is None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.sendto(b'{"op":"pair"}', path)  # unbound: nowhere to answer
    finally:
        s.close()
    a = _ask_raw(path, json.dumps({"op": "pair", "tags": ["raw"]}).encode())
    assert a is not None and json.loads(a)["code"], a
    assert f.p.proc.poll() is None
