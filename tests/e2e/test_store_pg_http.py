"""The API's store work off the main loop, on PostgreSQL (issue 18;
docs/store.md "The API off the loop"). /healthz, /metrics, the report,
the audit log, the lists the web UI polls and the changes (and the token
check before them) run on connections of the API's own, on worker
threads; the loop only hands them over and sends the answer, after a
change's loop part (the hub told) where it has one. A database
that stops answering delays those answers (503 at the statement deadline
at the latest), never the loop: the web UI's files, a session's bytes
and new SSH connections keep being served. Before, each of those GETs
held the whole loop for the statement deadline (3 s)."""

import contextlib
import http.client
import json
import os
import subprocess
import threading
import time

import pclib
from agentlib import agent_server, make_agent  # noqa: F401 (fixtures)
from agentlib import credential, wait_agent, wait_log
from pclib import http_json, uniq
from test_store_pg import _Outage


# The probes of the loop come from another address than the floods: the
# server allows [http] max_connections_per_source (64) from one address,
# and a user's browser is not the flood's source either.
PROBE_SOURCE = "127.0.0.2"
LOOP_LIMIT = pclib.LOOP_LIMIT  # the loop-stall limit of every such test


def _call(port, method, path, token=None, body=None, timeout=30,
          source=None):
    """One API request: (status, the JSON answer or {}, Retry-After,
    seconds); from source (an address) when given."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout,
        source_address=(source, 0) if source else None)
    hdrs = {"Content-Type": "application/json"}
    if token:
        hdrs["Authorization"] = "Bearer " + token
    try:
        conn.request(method, path, headers=hdrs,
                     body=json.dumps(body) if body is not None else None)
        r = conn.getresponse()
        raw = r.read()
        try:
            doc = json.loads(raw or b"{}")
        except ValueError:
            doc = {}
        return r.status, doc, r.getheader("Retry-After"), \
            time.monotonic() - t0
    finally:
        conn.close()


def _get(port, path, token=None, timeout=30):
    """GET path: (status, the JSON answer or {}, Retry-After, seconds)."""
    return _call(port, "GET", path, token=token, timeout=timeout)


def _code(doc):
    return (doc.get("errors") or [{}])[0].get("code")


def _hammer(port, token, stop, out, paths):
    """GETs paths in turn until stop: (path, status, code, Retry-After,
    seconds) each."""
    i = 0
    while not stop.is_set():
        path = paths[i % len(paths)]
        i += 1
        try:
            st, doc, retry, took = _get(port, path, token)
            out.append((path, st, _code(doc), retry, took))
        except OSError as e:
            out.append((path, None, repr(e), None, 0.0))


def _loop_probe(o, seconds):
    """For seconds: GET / (the web UI, no store), the live session's echo
    and a new TCP connection's SSH banner, every 50 ms; the slowest of
    each."""
    import socket
    worst = {"/": 0.0, "echo": 0.0, "banner": 0.0}
    t_end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        # the web UI's page (503 if not built)
        _call(o.p.http_port, "GET", "/", source=PROBE_SOURCE)
        worst["/"] = max(worst["/"], time.monotonic() - t0)
        n += 1
        t0 = time.monotonic()
        o.echo(o.live, b"probe-%d\n" % n)
        worst["echo"] = max(worst["echo"], time.monotonic() - t0)
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", o.p.ssh_port), 10,
                                      (PROBE_SOURCE, 0)) as s:
            assert s.recv(4).startswith(b"SSH-")
        worst["banner"] = max(worst["banner"], time.monotonic() - t0)
        time.sleep(0.05)
    return worst


def test_store_reads_do_not_hold_the_loop_while_the_database_hangs(
        target, tmp_path):
    """PostgreSQL stopped (SIGSTOP) for 5 s while four clients hammer
    /healthz, /api/v1/sessions and /api/v1/audit: the web UI's page, a
    session's echo and an SSH banner answer within LOOP_LIMIT (0.75 s)
    throughout (before: 3 s and more, each GET holding the loop for the
    statement deadline); the store's requests get 503 (store_unavailable, or
    store_busy when too many wait) with Retry-After, none later than the
    deadline; /healthz says the database does not answer, and 200 again
    once it is back."""
    o = _Outage(target, tmp_path)
    p = o.p
    try:
        for path in ("/healthz", "/api/v1/sessions", "/api/v1/audit"):
            st, doc, _, _ = _get(p.http_port, path, o.token)
            assert st == 200, (path, doc)
        o.freeze()
        stop = threading.Event()
        out = []
        paths = ["/healthz", "/api/v1/sessions", "/api/v1/audit",
                 "/api/v1/healthz"]
        hammers = [threading.Thread(target=_hammer, daemon=True,
                                    args=(p.http_port, o.token, stop, out,
                                          paths[k:] + paths[:k]))
                   for k in range(4)]
        for t in hammers:
            t.start()
        try:
            o.end_one()  # a session ends meanwhile
            worst = _loop_probe(o, 5.0)
        finally:
            stop.set()
            for t in hammers:
                t.join(timeout=30)
        o.thaw()
        answers = [x for x in out if x[1] is not None]
        slowest = max(x[4] for x in answers)
        codes = sorted(set((x[1], x[2]) for x in answers))
        print("slowest while stopped: %s; store requests: %d, slowest "
              "%.3f s, answers %s" % (worst, len(answers), slowest, codes))
        assert len(answers) == len(out), [x for x in out if x[1] is None]
        assert all(v < LOOP_LIMIT for v in worst.values()), \
            "the loop stalled: %s" % worst
        assert slowest < 3.0 + 0.75, "a store read took %.2f s" % slowest
        late = [x for x in answers if x[1] != 200]
        assert late, codes  # the database did not answer: some 503s
        assert all(x[1] == 503 and x[2] in ("store_unavailable",
                                            "store_busy") and x[3] == "1"
                   for x in late), codes
        hz = [x for x in late if x[0] == "/healthz"]
        assert hz and hz[0][2] == "store_unavailable", hz
        # /healthz answers 200 again once the database is back
        ok = pclib.wait_for(
            lambda: _get(p.http_port, "/healthz")[0] == 200 or None, 20,
            "/healthz 200 after the database came back")
        assert ok
        o.recovered()
    finally:
        o.close()


def test_healthz_says_when_the_database_is_down(target, tmp_path):
    """The database stopped (pg_ctl stop): /healthz answers 503 at once,
    saying the database does not answer, with Retry-After; started again,
    200."""
    o = _Outage(target, tmp_path)
    p = o.p
    try:
        st, doc, _, _ = _get(p.http_port, "/healthz")
        assert st == 200, doc
        o.own.stop()
        st, doc, retry, took = _get(p.http_port, "/healthz")
        print("healthz while down: %d %s in %.3f s" % (st, doc, took))
        assert st == 503 and retry == "1", doc
        assert "database" in json.dumps(doc), doc
        assert took < 1.0, took
        o.own.start()
        pclib.wait_for(lambda: _get(p.http_port, "/healthz")[0] == 200 or
                       None, 30, "/healthz 200 after the database restarted")
    finally:
        o.close()


@contextlib.contextmanager
def _writes_held(o, table, seconds):
    """Another session holds table in EXCLUSIVE mode for seconds (reads go
    on, writes wait) from when the lock is taken to the with's end, which
    waits for it to have been let go cleanly."""
    holder = subprocess.Popen(
        o.own.as_user + [os.path.join(o.own.bindir, "psql"), "-h", o.own.dir,
                         "-p", str(o.own.port), "-U", "portcullis", "-d",
                         o.dbname, "-X", "-q", "-c",
                         "BEGIN; LOCK TABLE %s IN EXCLUSIVE MODE; SELECT "
                         "pg_sleep(%s); COMMIT;" % (table, seconds)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        yield
        assert holder.wait(timeout=30) == 0, holder.stderr.read()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_report_read_after_a_session_ended_is_closed(target, tmp_path):
    """A session ends while its report row's close waits (the sessions
    table held against writes for 0.6 s: the writer's batch waits, reads
    do not); GET /api/v1/sessions/{id} and the list, asked at once on the
    API's own connection, answer it closed, not open."""
    o = _Outage(target, tmp_path)
    p = o.p
    try:
        st, doc, _, _ = _get(p.http_port, "/api/v1/sessions", o.token)
        mine = [x for x in doc["data"] if x.get("user") == o.user and
                "ending-done" in (x.get("detail") or "")]
        assert len(mine) == 1 and not mine[0].get("result"), mine
        sid = mine[0]["id"]
        with _writes_held(o, "sessions", 0.6):
            o.end_one()
            st, doc, _, took = _get(p.http_port, "/api/v1/sessions/" + sid,
                                    o.token)
            print("read after the end: %d in %.3f s: %s" % (st, took, doc))
            assert st == 200 and doc["data"].get("result") == "ok", doc
            st, doc, _, _ = _get(p.http_port, "/api/v1/sessions", o.token)
            row = [x for x in doc["data"] if x["id"] == sid]
            assert row and row[0].get("result") == "ok", row
    finally:
        o.close()


def test_audit_read_after_an_event_has_it(target, tmp_path):
    """The audit log's writer is the other queue the API's reads wait for
    (store_worker_writing): a failed login's event waits behind the audit
    table held against writes for 0.6 s; GET /api/v1/audit asked at once
    has it."""
    o = _Outage(target, tmp_path)
    name = "ghost-" + uniq()
    try:
        with _writes_held(o, "audit", 0.6):
            st, _ = http_json(o.p.http_port, "POST", "/api/v1/login",
                              body=json.dumps({"username": name,
                                               "password": "wrong"}))
            assert st == 401
            st, doc, _, took = _get(o.p.http_port, "/api/v1/audit", o.token)
            print("audit read after the event: %d in %.3f s" % (st, took))
            assert st == 200 and name in json.dumps(doc), doc
    finally:
        o.close()


def test_many_slow_requests_are_bounded(target, tmp_path):
    """The users table locked for 5 s (every token check waits on it)
    while 200 requests with a token come at once, a third of them from
    clients that hang up at once: the ones past the bound get 503
    store_busy at once, the others 503 at the deadline at the latest; the
    web UI's page, an SSH banner and a login's TOTP-free echo answer
    meanwhile; afterwards the API answers 200 (under the ASan build: no
    leak, no crash at stop)."""
    import socket
    o = _Outage(target, tmp_path)
    p = o.p
    holder = None
    try:
        st, _, _, _ = _get(p.http_port, "/api/v1/users", o.token)
        assert st == 200
        holder = o.lock("users", 5)
        results = []
        lock = threading.Lock()

        def one(k):
            # four sources of 50 clients each: the store's bound is under
            # test, not [http] max_connections_per_source (64), which a
            # slow (sanitizer) server on a busy box met from one address
            src = "127.0.3.%d" % (k % 4 + 1)
            if k % 3 == 0:  # a client that goes at once
                s = socket.create_connection(("127.0.0.1", p.http_port), 10,
                                             source_address=(src, 0))
                s.sendall(b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: Bearer " + o.token.encode() +
                          b"\r\n\r\n")
                s.close()
                return
            try:
                r = _call(p.http_port, "GET", "/api/v1/users", o.token,
                          source=src)
            except OSError as e:
                r = (None, repr(e), None, 0.0)
            with lock:
                results.append(r)

        threads = [threading.Thread(target=one, args=(k,), daemon=True)
                   for k in range(200)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        o.end_one()
        worst = _loop_probe(o, 2.0)
        for t in threads:
            t.join(timeout=30)
        took = time.monotonic() - t0
        busy = [r for r in results if r[0] == 503 and
                _code(r[1]) == "store_busy"]
        refused = [r for r in results if r[0] is None]
        results = [r for r in results if r[0] is not None]
        print("%d answers in %.2f s: %s; loop %s; %d connections refused "
              "(per-source limit): %s" % (
                  len(results), took,
                  sorted(set((r[0], _code(r[1])) for r in results)), worst,
                  len(refused), refused[:3]))
        assert all(v < LOOP_LIMIT for v in worst.values()), worst
        assert len(results) >= 100, len(results)
        assert all(r[0] in (200, 503) for r in results), results
        assert busy and all(r[3] < 1.0 and r[2] == "1" for r in busy), busy
        assert all(r[3] < 3.0 + 0.75 for r in results), \
            max(r[3] for r in results)
        assert holder.wait(timeout=30) == 0, holder.stderr.read()
        holder = None
        pclib.wait_for(
            lambda: _get(p.http_port, "/api/v1/users", o.token)[0] == 200
            or None, 20, "the API answers again")
        o.recovered()
        assert p.stop() == 0, p.log_tail()
        assert p.sanitizer_findings() is None, p.sanitizer_findings()
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        o.close()


# ------------------------------------------------ the API's writes, off the loop

def _hang_up(port, token, method, path, body=None, after=0.3):
    """Sends one request and closes the connection after seconds, without
    reading the answer (a client that goes mid-write)."""
    import socket
    data = json.dumps(body).encode() if body is not None else b""
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (method, path, token, len(data))).encode() + data)
    time.sleep(after)
    s.close()


def _write_hammer(port, token, stop, out, k):
    """Writes of several kinds in turn until stop: (what, status, code,
    Retry-After, seconds) each. None of them changes anything the
    sessions of the test depend on."""
    i = 0
    while not stop.is_set():
        i += 1
        what = ("POST /groups", "PATCH /users", "DELETE /credentials",
                "POST /api-tokens")[(i + k) % 4]
        if what == "POST /groups":
            args = ("POST", "/api/v1/groups", {"name": uniq("g")})
        elif what == "PATCH /users":
            args = ("PATCH", "/api/v1/users/admin", {"disabled": False})
        elif what == "DELETE /credentials":
            args = ("DELETE", "/api/v1/credentials/no-such-credential", None)
        else:
            args = ("POST", "/api/v1/api-tokens", {"expires_in": "1h"})
        try:
            st, doc, retry, took = _call(port, args[0], args[1], token,
                                         args[2])
            out.append((what, st, _code(doc), retry, took))
        except OSError as e:
            out.append((what, None, repr(e), None, 0.0))


def test_writes_do_not_hold_the_loop_while_the_database_hangs(
        target, tmp_path):
    """PostgreSQL stopped (SIGSTOP) for 5 s while four clients fire the
    API's writes (a group, a user, a credential, a token): the web UI's
    page, a session's echo and a new SSH banner answer within LOOP_LIMIT
    (0.75 s) throughout (before: each write held the loop for the statement
    deadline, 3 s); the writes get 503 with Retry-After, none later than
    the deadline; afterwards they are made again."""
    o = _Outage(target, tmp_path)
    p = o.p
    try:
        st, doc, _, _ = _call(p.http_port, "POST", "/api/v1/groups",
                              o.token, {"name": uniq("g")})
        assert st == 201, doc
        o.freeze()
        stop = threading.Event()
        out = []
        hammers = [threading.Thread(target=_write_hammer, daemon=True,
                                    args=(p.http_port, o.token, stop, out, k))
                   for k in range(4)]
        for t in hammers:
            t.start()
        try:
            o.end_one()  # a session ends meanwhile (o.recovered)
            worst = _loop_probe(o, 5.0)
        finally:
            stop.set()
            for t in hammers:
                t.join(timeout=30)
        o.thaw()
        answers = [x for x in out if x[1] is not None]
        slowest = max(x[4] for x in answers)
        codes = sorted(set((x[0], x[1], x[2]) for x in answers))
        print("slowest while stopped: %s; writes: %d, slowest %.3f s, "
              "answers %s" % (worst, len(answers), slowest, codes))
        assert len(answers) == len(out), [x for x in out if x[1] is None]
        assert all(v < LOOP_LIMIT for v in worst.values()), \
            "the loop stalled: %s" % worst
        assert slowest < 3.0 + 0.75, "a write took %.2f s" % slowest
        late = [x for x in answers if x[1] not in (201, 200, 404)]
        assert late, codes
        assert all(x[1] == 503 and x[2] in ("store_unavailable",
                                            "store_busy") and x[3] == "1"
                   for x in late), codes
        name = uniq("g")
        ok = pclib.wait_for(
            lambda: _call(p.http_port, "POST", "/api/v1/groups", o.token,
                          {"name": name})[0] in (201, 409) or None, 20,
            "a write made after the database came back")
        assert ok
        # read-after-write: the same client sees it at once
        st, doc, _, _ = _call(p.http_port, "GET", "/api/v1/groups/" + name,
                              o.token)
        assert st == 200 and doc["data"]["name"] == name, doc
        o.recovered()
    finally:
        o.close()


def test_writes_past_the_bound_get_store_busy(target, tmp_path):
    """The groups table locked for 5 s (a new group's INSERT waits) while
    50 clients each ask for a new group at once (the per-source cap
    is 64): the ones past the bound
    (2 running, 32 waiting) get 503 store_busy at once, the others 503
    at the deadline at the latest; the loop stays responsive; a group
    answered store_busy is never made, nor one that was still waiting
    at its deadline (dropped unrun), and one answered 201 is."""
    o = _Outage(target, tmp_path)
    p = o.p
    holder = None
    try:
        holder = o.lock("groups", 5)
        results = []
        lock = threading.Lock()

        def one(k):
            name = "busy-%d-%s" % (k, uniq())
            try:
                r = _call(p.http_port, "POST", "/api/v1/groups", o.token,
                          {"name": name})
            except OSError as e:
                r = (None, repr(e), None, 0.0)
            with lock:
                results.append((name,) + r)

        threads = [threading.Thread(target=one, args=(k,), daemon=True)
                   for k in range(50)]
        for t in threads:
            t.start()
        o.end_one()  # a session ends meanwhile (o.recovered)
        worst = _loop_probe(o, 2.0)
        for t in threads:
            t.join(timeout=30)
        answered = [r for r in results if r[1] is not None]
        kinds = sorted(set((r[1], _code(r[2])) for r in answered))
        print("%d answers: %s; loop %s" % (len(answered), kinds, worst))
        assert all(v < LOOP_LIMIT for v in worst.values()), worst
        assert len(answered) == 50, results
        busy = [r for r in answered if r[1] == 503 and
                _code(r[2]) == "store_busy"]
        assert busy and all(r[4] < 1.0 and r[3] == "1" for r in busy), busy
        assert all(r[1] in (201, 503) for r in answered), kinds
        assert all(r[4] < 3.0 + 0.75 for r in answered), \
            max(r[4] for r in answered)
        assert holder.wait(timeout=30) == 0, holder.stderr.read()
        holder = None
        time.sleep(1.0)  # a write held past its deadline comes back
        st, doc, _, _ = _call(p.http_port, "GET",
                              "/api/v1/groups?page[limit]=1000", o.token)
        assert st == 200, doc
        made = {g["name"] for g in doc["data"]}
        for r in answered:
            if r[1] == 201:
                assert r[0] in made, r
            elif "not made" in json.dumps(r[2]) or \
                    _code(r[2]) == "store_busy":
                assert r[0] not in made, r
        o.recovered()
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        o.close()


def test_a_write_whose_client_went_is_made_with_its_after_effect(
        target, tmp_path, make_agent):
    """DELETE /api/v1/credentials/{id} while the credentials table is
    locked (2 s), its client gone after 0.3 s: the loop answers meanwhile
    (a session's echo, an SSH banner), and once the lock goes the
    credential is deleted and its connected agent dropped: the change's
    loop part (the hub told) ran though nobody waited for the answer."""
    o = _Outage(target, tmp_path)
    p = o.p
    holder = None
    try:
        cred = credential(p)
        a = make_agent(p, credential=cred)
        wait_agent(p, a.id)
        holder = o.lock("credentials", 2)
        _hang_up(p.http_port, o.token, "DELETE",
                 "/api/v1/credentials/" + cred[0])
        worst = _loop_probe(o, 1.0)
        print("loop while the delete waits: %s" % worst)
        assert all(v < LOOP_LIMIT for v in worst.values()), worst
        assert holder.wait(timeout=30) == 0, holder.stderr.read()
        holder = None
        wait_agent(p, a.id, online=False, timeout=10)
        wait_log(a, "refused credential %s" % cred[0], timeout=15)
        st, doc, _, _ = _call(p.http_port, "GET",
                              "/api/v1/credentials/" + cred[0], o.token)
        assert st == 404, doc
        st, doc, _, _ = _call(p.http_port, "GET", "/api/v1/agents/" + a.id,
                              o.token)
        assert st == 200 and doc["data"]["online"] is False, doc
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        o.close()


# The same after-effects on the store the run uses (SQLite, or PostgreSQL
# with PORTCULLIS_TEST_STORE=pg): the write through the API, its effect on
# the loop's live state.

def _admin_token(pc):
    return pclib.parse_kv(pc.cli("token", "add", "--user", "admin",
                                 "--expires", "1d")[1])["token"]


def test_api_disable_ends_the_live_session(proxy, target, ssh_client):
    """PATCH /api/v1/users/{name} {"disabled": true}: the user's live SSH
    session ends (the monitor's sweep), its row says why."""
    token = _admin_token(proxy)
    password = "pw-" + uniq()
    user = proxy.user_add(password=password)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    proc = ssh_client.popen_ssh("%s#%s" % (user, asset_id), "sleep 120",
                                password=password)
    try:
        pclib.wait_for(lambda: any(r.get("user") == user and
                                   not r.get("result")
                                   for r in proxy.sessions()) or None, 20,
                       "the session's open row")
        st, doc, _, _ = _call(proxy.http_port, "PATCH",
                              "/api/v1/users/" + user, token,
                              {"disabled": True})
        assert st == 200 and doc["data"]["disabled"] is True, doc
        t0 = time.monotonic()
        proc.wait(timeout=15)
        assert time.monotonic() - t0 < 10
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proxy.session_of(user)["result"] == "error: user disabled"


def test_api_credential_delete_drops_its_agent(agent_server, make_agent):
    """DELETE /api/v1/credentials/{id}: its connected agent drops at once
    and is refused when it comes back; GET /api/v1/agents and
    /agents/{id} say it is offline (the hub's word), and say online while
    it was."""
    pc = agent_server
    token = _admin_token(pc)
    cred = credential(pc)
    a = make_agent(pc, credential=cred)
    wait_agent(pc, a.id)
    st, doc, _, _ = _call(pc.http_port, "GET", "/api/v1/agents/" + a.id,
                          token)
    assert st == 200 and doc["data"]["online"] is True, doc
    st, doc, _, _ = _call(pc.http_port, "GET",
                          "/api/v1/agents?filter[online]=true", token)
    assert st == 200 and a.id in [x["id"] for x in doc["data"]], doc
    st, doc, _, _ = _call(pc.http_port, "DELETE",
                          "/api/v1/credentials/" + cred[0], token)
    assert st == 204, doc
    wait_agent(pc, a.id, online=False, timeout=10)
    wait_log(a, "refused credential %s" % cred[0], timeout=15)
    st, doc, _, _ = _call(pc.http_port, "GET", "/api/v1/agents/" + a.id,
                          token)
    assert st == 200 and doc["data"]["online"] is False, doc
    st, doc, _, _ = _call(pc.http_port, "GET",
                          "/api/v1/agents?filter[online]=false", token)
    assert st == 200 and a.id in [x["id"] for x in doc["data"]], doc
