"""A job's output pushed to watchers as it arrives (issue 14: "output
streams live"): GET /api/v1/jobs/{id}/stream as server-sent events
(docs/api.md "Watching a job"). The output reaches a watcher within a
second of the job printing it; only those who may read the job may watch
it; a job printing as fast as it can for seconds keeps the agent's and
the server's memory bounded and its kept output truncated with the
documented marker, and watchers that never read cost the server
nothing."""
import http.client
import os
import json
import re
import socket
import subprocess
import time

from agentlib import agent_server, make_agent, wait_agent  # noqa: F401
from pclib import uniq
from test_jobs import API, SCRIPTS, call, online_agent, wait_job
from test_job_perms import login

MARKER = "\n[portcullis: output truncated at 4194304 bytes]\n"


def token(pc):
    call(pc, "GET", API + "/jobs")  # logs in once
    return pc._job_token


class Watch:
    """One SSE connection: events as (arrival time, name, data)."""

    def __init__(self, pc, job_id, tok, rcvbuf=None, host="127.0.0.1"):
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(30)
        self.sock.connect((host, pc.http_port))
        auth = "Authorization: Bearer %s\r\n" % tok if tok else ""
        self.sock.sendall(("GET %s/jobs/%s/stream HTTP/1.1\r\nHost: x\r\n"
                           "%sAccept: text/event-stream\r\n\r\n"
                           % (API, job_id, auth)).encode())
        self.buf = b""
        self.status = None
        self.headers = {}
        self.events = []
        self.eof = False

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            self.eof = True
        self.buf += d
        return d

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise AssertionError("no answer: %r" % self.buf)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        return self.status

    def body(self):
        """The rest of a non-streamed answer (its Content-Length)."""
        n = int(self.headers.get("content-length", "0"))
        while len(self.buf) < n and self._fill():
            pass
        return json.loads(self.buf[:n]) if n else None

    def next_event(self):
        while b"\n\n" not in self.buf:
            if self.eof or not self._fill():
                return None
        raw, self.buf = self.buf.split(b"\n\n", 1)
        now = time.time()
        name, data = None, None
        for ln in raw.decode().split("\n"):
            if ln.startswith("event: "):
                name = ln[7:]
            elif ln.startswith("data: "):
                data = json.loads(ln[6:])
        if name is None:
            return self.next_event()  # a keepalive comment
        ev = (now, name, data)
        self.events.append(ev)
        return ev

    def all_events(self):
        while self.next_event() is not None:
            pass
        return self.events

    def close(self):
        self.sock.close()


def watchers(pc):
    conn = http.client.HTTPConnection("127.0.0.1", pc.http_port, timeout=30)
    conn.request("GET", "/metrics",
                 headers={"Authorization": "Bearer " + token(pc)})
    r = conn.getresponse()
    body = r.read().decode()
    conn.close()
    assert r.status == 200, body
    return int(re.search(r"^portcullis_job_watchers (\d+)$", body,
                         re.M).group(1))


def wait_watchers(pc, n, timeout=10):
    deadline = time.monotonic() + timeout
    while watchers(pc) != n and time.monotonic() < deadline:
        time.sleep(0.1)
    assert watchers(pc) == n


def start(pc, a, script, timeout=30):
    status, out = call(pc, "POST", "%s/agents/%s/commands" % (API, a.id),
                       {"interpreter": "sh", "script": script,
                        "timeout": timeout, "wait": False})
    assert status == 202, out
    return out["data"]["id"]


def text_of(events, stream):
    return "".join(d["text"] for _, n, d in events
                   if n == "output" and d["stream"] == stream)


def test_output_reaches_a_watcher_within_a_second(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=SCRIPTS)
    # each line carries the moment the job printed it (one clock: the
    # agent runs on this machine)
    jid = start(pc, a, "sleep 1\n"
                       "for i in 1 2 3; do echo \"$i $(date +%s.%N)\"; "
                       "sleep 1; done\n"
                       "echo oops >&2\nexit 4\n")
    w = Watch(pc, jid, token(pc))
    assert w.head() == 200
    assert w.headers["content-type"].startswith("text/event-stream")
    _, name, data = w.next_event()
    assert name == "job" and data["id"] == jid, data
    assert data["status"] == "running", data
    lines = 0
    while lines < 3:
        ev = w.next_event()
        assert ev is not None, w.events
        got, name, data = ev
        assert name == "output", ev
        if data["stream"] != "stdout":
            continue
        for ln in data["text"].splitlines():
            lines += 1
            printed = float(ln.split()[1])
            assert got - printed < 1.0, (ln, got)
    events = w.all_events()
    assert events[-1][1] == "end", events
    end = events[-1][2]
    assert (end["status"], end["exit_code"]) == ("failed", 4), end
    assert w.eof
    w.close()
    # the same bytes as the recorded output, in order, with their offsets
    j = wait_job(pc, jid, lambda d: d["status"] != "running")
    assert text_of(events, "stdout") == j["stdout"]
    assert text_of(events, "stderr") == j["stderr"] == "oops\n"
    off = 0
    for _, n, d in events:
        if n == "output" and d["stream"] == "stdout":
            assert d["offset"] == off
            off += len(d["text"].encode())
    # the polled API still answers as before
    assert j["exit_code"] == 4
    # the watcher is gone with its connection
    wait_watchers(pc, 0)


def test_cli_follow_is_pushed_by_the_server(agent_server, make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=SCRIPTS)
    # (time for the CLI to start, slow under sanitizers)
    jid = start(pc, a, "sleep 4\n"
                       "for i in 1 2; do echo \"$i $(date +%s.%N)\"; "
                       "sleep 1; done\n"
                       "echo late >&2\nexit 3\n")
    p = subprocess.Popen([pc.bin, "-c", pc.conf, "job", "show", jid,
                          "--follow"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        # the server follows the job for the CLI (watch.sock)
        wait_watchers(pc, 1)
        for _ in range(2):
            ln = p.stdout.readline()
            assert time.time() - float(ln.split()[1]) < 1.0, ln
        rest, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert (p.returncode, rest, err) == (3, "", "late\n")
    wait_watchers(pc, 0)
    # after the end: the store alone, the same output
    rc, out, err = pc.cli("job", "show", jid, "--follow", check=False)
    assert rc == 3 and err == "late\n" and len(out.splitlines()) == 2, (
        rc, out, err)


def test_watching_an_ended_job_gives_its_output_and_end(agent_server,
                                                        make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=SCRIPTS)
    jid = start(pc, a, "printf 'h\\303\\251llo\\n'; echo e >&2")
    j = wait_job(pc, jid, lambda d: d["status"] != "running")
    w = Watch(pc, jid, token(pc))
    assert w.head() == 200
    events = w.all_events()
    assert [n for _, n, _ in events][0] == "job"
    assert events[-1][1] == "end" and events[-1][2]["status"] == "ok"
    assert text_of(events, "stdout") == j["stdout"] == "h\u00e9llo\n"
    assert text_of(events, "stderr") == "e\n"


def test_only_those_who_may_read_the_job_may_watch_it(agent_server,
                                                      make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=SCRIPTS)
    jid = start(pc, a, "sleep 3; echo secret")
    # no token, a made-up token: 401
    for tok in (None, "not-a-token"):
        w = Watch(pc, jid, tok)
        assert w.head() == 401, (tok, w.buf)
        assert w.body()["errors"], w.buf
        w.close()
    # a user without a job role: as if the job did not exist
    user, pw = "nosy-" + uniq(), "pw-" + uniq()
    pc.user_add(user, password=pw)
    w = Watch(pc, jid, login(pc, user, pw))
    assert w.head() == 404
    assert "secret" not in json.dumps(w.body())
    w.close()
    # an unknown job
    w = Watch(pc, "no-such-job", token(pc))
    assert w.head() == 404
    w.close()


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def runner_pids(agent_pid):
    """The agent's job runners (detached: children of init, found by
    their agent's command line is not possible; by parent subreaper
    instead): every process whose name is the agent's binary."""
    out = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open("/proc/%s/comm" % pid) as f:
                if f.read().strip().startswith("portcullis-age"):
                    out.append(int(pid))
        except OSError:
            pass
    return [p for p in out if p != agent_pid]


def test_fast_output_and_idle_watchers_keep_memory_bounded(agent_server,
                                                          make_agent):
    pc = agent_server
    a = online_agent(pc, make_agent, conf=SCRIPTS)
    tok = token(pc)
    base_server = rss_kib(pc.pid)
    base_agent = rss_kib(a.pid)
    # a job that prints 12 MB on each stream as fast as it can (for
    # seconds: the server takes it as fast as it can, and past the cap
    # the agent's runner reads and drops)
    jid = start(pc, a, "yes portcullis-stdout-line | head -c 12000000 &\n"
                       "yes portcullis-stderr-line | head -c 12000000 >&2\n"
                       "wait\n",
                timeout=60)
    # 20 watchers that never read a byte (small receive buffers), and one
    # that reads everything
    idle = [Watch(pc, jid, tok, rcvbuf=4096) for _ in range(20)]
    reader = Watch(pc, jid, tok)
    assert reader.head() == 200
    peak_server = peak_agent = peak_runner = 0
    deadline = time.monotonic() + 60
    done = False
    sampled = 0
    while time.monotonic() < deadline and not done:
        ev = reader.next_event()
        done = ev is None or ev[1] == "end"
        if time.monotonic() - sampled < 0.2 and not done:
            continue
        sampled = time.monotonic()
        peak_server = max(peak_server, rss_kib(pc.pid))
        peak_agent = max(peak_agent, rss_kib(a.pid))
        for p in runner_pids(a.pid):
            peak_runner = max(peak_runner, rss_kib(p))
    assert done, reader.events[-3:]
    end = reader.events[-1][2]
    assert end["status"] == "ok", end
    out, err = text_of(reader.events, "stdout"), text_of(reader.events,
                                                        "stderr")
    for s, line in ((out, "portcullis-stdout-line\n"),
                    (err, "portcullis-stderr-line\n")):
        assert s.endswith(MARKER), s[-200:]
        assert len(s) == 4 * 1024 * 1024 + len(MARKER)
        assert s.startswith(line * 3)
    # the kept output says the same
    j = wait_job(pc, jid, lambda d: d["status"] != "running")
    assert j["stdout"] == out and j["stderr"] == err
    # two 4 MiB buffers, shared by every watcher, and the store's copies:
    # well under 64 MiB more than before; 20 watchers each holding a copy
    # would be 160 MiB and more
    # (AddressSanitizer keeps freed memory in quarantine: the figures mean
    # nothing there)
    with open("/proc/%d/maps" % pc.pid) as f:
        sanitized = "libasan" in f.read()
    if not sanitized:
        assert peak_server - base_server < 64 * 1024, (base_server,
                                                       peak_server)
        # the agent relays through the SSH window; its runner drops what
        # is past the cap instead of holding it
        assert peak_agent - base_agent < 16 * 1024, (base_agent, peak_agent)
        assert peak_runner < 32 * 1024, peak_runner
    print("rss KiB: server %d -> %d, agent %d -> %d, runner %d"
          % (base_server, peak_server, base_agent, peak_agent, peak_runner))
    for w in idle:
        w.close()
    reader.close()


def test_one_user_cannot_take_every_stream(agent_server, make_agent):
    """Each user has a share of the node's job streams (32 of 256),
    however many tokens they hold: a token holder opening streams in a
    loop gets 429 at 33 and leaves the others theirs."""
    pc = agent_server
    u = uniq("s")
    a = online_agent(pc, make_agent, conf=SCRIPTS + ["name = sse-" + u])
    jid = start(pc, a, "sleep 20; echo done", timeout=30)
    # the greedy user: a job runner on the agent, with two tokens
    greedy, pw = "greedy-" + u, "pw-" + uniq()
    pc.user_add(greedy, password=pw)
    assert pc.cli("client-group", "add", "g-" + u,
                  "--match-name", "sse-%s" % u)[0] == 0
    assert pc.cli("role", "grant", "--user", greedy, "--role", "job-runner",
                  "--client-group", "g-" + u)[0] == 0
    toks = [login(pc, greedy, pw), login(pc, greedy, pw)]
    base = watchers(pc)
    held = []
    for i in range(32):
        w = Watch(pc, jid, toks[i % 2])
        assert w.head() == 200, (i, w.buf)
        held.append(w)
    wait_watchers(pc, base + 32)
    for tok in toks:
        w = Watch(pc, jid, tok)
        assert w.head() == 429, w.buf
        assert "at most 32 per user" in json.dumps(w.body())
        w.close()
    # someone else still watches
    other = Watch(pc, jid, token(pc))
    assert other.head() == 200
    assert other.next_event()[1] == "job"
    # one closed: the greedy user may open one again
    held.pop().close()
    wait_watchers(pc, base + 32)
    w = Watch(pc, jid, toks[0])
    assert w.head() == 200, w.buf
    held.append(w)
    # closed, read or not: each gives its place back within a second or
    # two (a closed watcher is noticed though nothing is written to it)
    for w in held + [other]:
        w.close()
    wait_watchers(pc, base, timeout=3)
