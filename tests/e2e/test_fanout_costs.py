"""System calls that made a job on 1,000 agents slow (found by the job
fan-out bench, bench/run --jobs-only; counted with strace on real
processes).

How many send() calls the server spends on a large answer.

libwebsockets sends at most a protocol's `tx_packet_size` per send()
(when 0: its 4 KiB service buffer) and keeps the rest of what it was
given for later turns of the loop, one piece per POLLOUT. The server's
HTTP protocol and the agents' WebSocket protocol left it at 0, so a
400 KB API answer took ~100 turns of the loop and a 64 KiB frame to an
agent 16: with 1,000 agents returning job results, the POST that
started the job took seconds to answer. Real server, real agent; the
sends are counted with strace on the server's main process, on the one
descriptor of the connection in question.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from agentlib import agent_server, make_agent, wait_agent  # noqa: F401
import pclib
from pclib import Portcullis, _tcp_table, client_port_of, cpu_seconds
from test_jobs import API, call, push

pytestmark = pytest.mark.skipif(shutil.which("strace") is None,
                                reason="needs strace (scripts/install-deps)")

def socket_fds(pid, local_port, remote_port):
    """Process pid's descriptors for the TCP connection local_port ->
    remote_port."""
    inodes = {inode for lport, rport, _, inode in _tcp_table()
              if lport == local_port and rport == remote_port}
    fds = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            fds.add(int(fd))
    return fds


def server_fd(pid, server_port, peer_port, timeout=10.0):
    """The server's descriptor for the TCP connection from peer_port
    (once the server has accepted it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fds = socket_fds(pid, server_port, peer_port)
        if fds:
            return min(fds)
        time.sleep(0.02)
    raise AssertionError("no descriptor of pid %d for the connection from "
                         "port %d" % (pid, peer_port))


def traced(path, calls, fds=None):
    """The results of the calls (a regular expression of names, e.g.
    "read|recvfrom") on descriptors fds (None: any) that strace -o wrote
    to path, in order."""
    pat = re.compile(r"^(?:\d+\s+)?(?:%s)\((\d+),.*\)\s+=\s+(-?\d+)"
                     % calls)
    got = []
    for line in path.read_text().splitlines():
        m = pat.match(line.strip())
        if m and (fds is None or int(m.group(1)) in fds):
            got.append(int(m.group(2)))
    return got


def strace(pid, out, *args):
    """strace ARGS -o OUT on running process pid, once it is attached."""
    proc = subprocess.Popen(
        ["strace", "-qq", "-e", "signal=none", "-o", str(out)] +
        list(args) + ["-p", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open("/proc/%d/status" % pid) as f:
            if re.search(r"^TracerPid:\s+[1-9]", f.read(), re.M):
                return proc
        time.sleep(0.02)
    proc.kill()
    pytest.fail("strace did not attach to %d" % pid)


class Sends:
    """strace -e sendto on a running process, until stop()."""

    def __init__(self, pid, out):
        self.out = out
        self.proc = strace(pid, out, "-e", "trace=sendto")

    def stop(self, fd=None, total=0, timeout=5.0):
        """Stop tracing, once the sends on fd add up to total: the peer
        can have read a send's bytes before strace has written its line
        (strace writes a call when it returns), so a trace stopped at
        once can miss the last one."""
        deadline = time.monotonic() + timeout
        while fd is not None and time.monotonic() < deadline:
            if sum(self.on(fd)) >= total:
                break
            time.sleep(0.05)
        self.proc.terminate()
        self.proc.wait(10)

    def on(self, fd):
        """The byte counts of the sends on fd."""
        return [n for n in traced(self.out, "sendto", {fd}) if n >= 0]


def test_a_large_api_answer_and_a_file_push_go_out_in_few_sends(
        agent_server, make_agent, tmp_path):
    pc = agent_server
    accept = tmp_path / "accept"
    accept.mkdir()
    a = make_agent(pc, conf=["commands_enabled = true", "allow_root = true",
                             "file_push_dir = %s/" % accept])
    wait_agent(pc, a.id)
    # A job with ~390 KB of stdout makes a large answer to GET its job.
    status, out = call(pc, "POST", "%s/agents/%s/commands" % (API, a.id),
                       {"command": "seq 1 70000", "timeout": 30})
    assert status == 200 and out["data"]["status"] == "ok", (status, out)
    want = "".join("%d\n" % i for i in range(1, 70001))
    conn = http.client.HTTPConnection("127.0.0.1", pc.http_port, timeout=30)
    conn.connect()
    fd = server_fd(pc.pid, pc.http_port, conn.sock.getsockname()[1])
    sends = Sends(pc.pid, tmp_path / "http.strace")
    conn.request("GET", "%s/jobs/%s" % (API, out["data"]["id"]),
                 headers={"Authorization": "Bearer " + pc._job_token})
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    sends.stop(fd, len(raw))
    assert r.status == 200 and json.loads(raw)["data"]["stdout"] == want
    sizes = sends.on(fd)
    assert sum(sizes) >= len(raw), (sum(sizes), len(raw))
    # 16 KiB slices (the headers go on their own); 4 KiB ones before. A
    # slow reader may split a slice (a short send), so: most of the bytes
    # went in sends larger than libwebsockets' 4 KiB piece (4,116 with
    # its headroom), and far fewer sends than 4 KiB pieces.
    assert sum(n for n in sizes if n > 4116) >= len(raw) // 2, sizes
    assert len(sizes) <= len(raw) // 6144 + 8, (len(raw), sizes)
    # A 700 KB file push: the server frames it to the agent 64 KiB at a
    # time (SSH-encrypted inside the WebSocket).
    agent_fd = server_fd(pc.pid, pc.http_port,
                         client_port_of(a.pid, pc.http_port))
    data = os.urandom(700 * 1000)
    sends = Sends(pc.pid, tmp_path / "push.strace")
    _, jobs = push(pc, {"agents": [a.id]}, data, str(accept / "f.bin"))
    sends.stop(agent_fd, len(data))
    assert jobs[0]["status"] == "ok", jobs
    assert (accept / "f.bin").read_bytes() == data
    sizes = sends.on(agent_fd)
    assert sum(sizes) >= len(data), (sum(sizes), len(data))
    assert sum(n for n in sizes if n > 4116) >= len(data) // 2, sizes
    assert len(sizes) <= sum(sizes) // 6144 + 16, (sum(sizes), sizes)


def test_a_job_runner_closes_the_agents_descriptors_in_few_calls(
        agent_server, make_agent, tmp_path):
    """The runner a job forks closed every descriptor number below 65,536
    one close() at a time (and none above): ~65,000 system calls per job,
    two thirds of the whole box's CPU when 1,000 agents ran `true`
    (bench/run --jobs-only). Now close_range(2). The command still sees
    only 0, 1 and 2 (and the directory ls reads)."""
    pc = agent_server
    a = make_agent(pc, conf=["commands_enabled = true", "allow_root = true"])
    wait_agent(pc, a.id)
    out = tmp_path / "agent.strace"
    tr = strace(a.pid, out, "-f", "-c", "-e", "trace=close,close_range")
    status, got = call(pc, "POST", "%s/agents/%s/commands" % (API, a.id),
                       {"command": "ls /proc/self/fd", "timeout": 30})
    tr.terminate()
    tr.wait(10)
    assert status == 200 and got["data"]["status"] == "ok", (status, got)
    assert got["data"]["stdout"].split() == ["0", "1", "2", "3"], got
    calls = {}
    for line in out.read_text().splitlines():
        x = line.split()
        if x and x[-1] in ("close", "close_range"):
            calls[x[-1]] = int(x[3])   # % time, seconds, usecs/call, calls
    assert sum(calls.values()) < 2000, calls


def test_near_its_descriptor_limit_the_server_refuses_without_spinning(
        tmp_path):
    """Out of descriptors (1,000 agents on a server whose limit is too
    low), accept() failed with EMFILE, the listener stayed readable, and
    the loop spun on it while libwebsockets logged "accept: errno 24"
    (over a million lines in 3 s here). Now a connection that arrives
    within 64 descriptors of the limit is closed at once, with one log
    line per 10 s, and the server serves again once descriptors are
    free."""
    import socket

    pc = Portcullis(tmp_path / "pc")
    pc.tune_for_tests()
    pc.set_config("http", "max_connections_per_source", "100000")
    pc.start()
    pc.wait_http()
    held = []
    try:
        nfd = len(os.listdir("/proc/%d/fd" % pc.pid))
        lim = nfd + 100
        subprocess.run(["prlimit", "--pid", str(pc.pid),
                        "--nofile=%d:%d" % (lim, lim)], check=True)
        for _ in range(150):   # more than the limit leaves room for
            held.append(socket.create_connection(("127.0.0.1",
                                                  pc.http_port), 5))
        deadline = time.monotonic() + 15
        while not any(x in pc.log_text() for x in (
                "accept: errno 24", "refusing connections: descriptor")):
            assert time.monotonic() < deadline, pc.log_tail()
            time.sleep(0.1)
        c0 = cpu_seconds(pc.pid)
        time.sleep(3)
        spent = cpu_seconds(pc.pid) - c0
        text = pc.log_text()
        assert text.count("accept: errno 24") <= 2, text.count(
            "accept: errno 24")
        assert spent < 1.0, spent   # a spinning loop takes all 3 s
        assert text.count("refusing connections: descriptor") == 1, \
            pc.log_tail()
        # the connections past the reserve were closed by the server
        closed = 0
        for s in held:
            s.settimeout(0.05)
            try:
                closed += s.recv(1) == b""
            except (socket.timeout, OSError):
                pass
        assert closed >= 50, closed
        assert pc.proc.poll() is None
        for s in held:
            s.close()
        held = []
        deadline = time.monotonic() + 15
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", pc.http_port,
                                               timeout=5)
                c.request("GET", API + "/me")
                st = c.getresponse().status
                c.close()
                if st == 401:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, pc.log_tail()
            time.sleep(0.2)
    finally:
        for s in held:
            s.close()
        pc.stop()


def test_ssh_spawner_out_of_descriptors_waits_without_spinning(tmp_path):
    """The SSH spawner out of descriptors: accept() failed with EMFILE,
    the listener stayed readable, and the spawner's poll loop spun on it
    logging an error each turn. Now it stops polling the listener for
    100 ms at a time (connections wait in the listen queue), logs once
    per 10 s with a count, and takes them when descriptors are free."""
    import socket

    from pclib import children_of, socket_inodes
    pc = Portcullis(tmp_path / "pc")
    pc.tune_for_tests()
    pc.start()
    listen = {ino for lp, _, st, ino in _tcp_table()
              if lp == pc.ssh_port and st == "0A"}
    spawner = [p for p in children_of(pc.pid)
               if socket_inodes(p) & listen]
    assert len(spawner) == 1, spawner
    sp = spawner[0]
    # a limit at the lowest free descriptor number: no new one at all
    used = {int(x) for x in os.listdir("/proc/%d/fd" % sp)}
    nfd = min(set(range(len(used) + 1)) - used)
    subprocess.run(["prlimit", "--pid", str(sp), "--nofile=%d:" % nfd],
                   check=True)
    held = []
    try:
        for _ in range(3):
            held.append(socket.create_connection(("127.0.0.1",
                                                  pc.ssh_port), 5))
        deadline = time.monotonic() + 10
        while "accept: Too many open files" not in pc.log_text():
            assert time.monotonic() < deadline, pc.log_tail()
            time.sleep(0.1)
        c0 = cpu_seconds(sp)
        time.sleep(3)
        spent = cpu_seconds(sp) - c0
        assert spent < 0.5, spent   # a spinning loop takes all 3 s
        assert pc.log_text().count("accept: Too many open files") == 1, \
            pc.log_tail()
        # descriptors free again: the waiting connections are served
        subprocess.run(["prlimit", "--pid", str(sp),
                        "--nofile=%d:" % (nfd + 4096)], check=True)
        for s in held:
            s.settimeout(10)
            assert s.recv(64).startswith(b"SSH-2.0-"), "no SSH banner"
    finally:
        for s in held:
            s.close()
        pc.stop()


def test_job_watch_socket_out_of_descriptors_does_not_spin(tmp_path):
    """The main process out of descriptors with a CLI `--follow` waiting
    on the job watch socket: accept() failed with EMFILE and the main
    loop spun on the readable listener. Now the listener is left alone
    until the next tick, and the connection is taken when descriptors
    are free."""
    import glob
    import socket

    pc = Portcullis(tmp_path / "pc")
    pc.tune_for_tests()
    pc.start()
    deadline = time.monotonic() + 10
    while not glob.glob(str(pc.dir / "**" / "watch.sock"), recursive=True):
        assert time.monotonic() < deadline, pc.log_tail()
        time.sleep(0.1)
    paths = glob.glob(str(pc.dir / "**" / "watch.sock"), recursive=True)
    assert len(paths) == 1, paths
    used = {int(x) for x in os.listdir("/proc/%d/fd" % pc.pid)}
    nfd = min(set(range(len(used) + 1)) - used)
    hard = int(subprocess.run(["prlimit", "--pid", str(pc.pid), "--nofile",
                               "--raw", "--noheadings", "-o", "SOFT"],
                              capture_output=True, text=True,
                              check=True).stdout.split()[0])
    subprocess.run(["prlimit", "--pid", str(pc.pid), "--nofile=%d:" % nfd],
                   check=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(paths[0])
        time.sleep(0.5)
        c0 = cpu_seconds(pc.pid)
        time.sleep(3)
        spent = cpu_seconds(pc.pid) - c0
        assert spent < 0.5, spent   # a spinning loop takes all 3 s
        assert pc.log_text().count("job watch socket: cannot accept") == 1
        subprocess.run(["prlimit", "--pid", str(pc.pid),
                        "--nofile=%d:" % hard], check=True)
        # taken now: the server answers the watch request (an unknown
        # job: the connection is closed)
        deadline = time.monotonic() + 10
        while True:
            used = {int(x) for x in os.listdir("/proc/%d/fd" % pc.pid)}
            if any(os.readlink("/proc/%d/fd/%d" % (pc.pid, f)).startswith(
                    "socket:") for f in used if f >= nfd):
                break
            assert time.monotonic() < deadline, "never accepted"
            time.sleep(0.1)
        assert pc.proc.poll() is None
    finally:
        s.close()
        pc.stop()


def tunnel_to(tmp_path, make_agent, remote_port):
    """A server, an agent and a tunnel through it to 127.0.0.1:remote_port:
    (server, agent, the tunnel's port). The caller stops the server."""
    pc = Portcullis(tmp_path / "pc")
    pc.tune_for_tests()
    base = pclib.port_block(4)
    pc.set_config("tunnel", "port_min", str(base))
    pc.set_config("tunnel", "port_max", str(base + 3))
    pc.start()
    pc.wait_http()
    try:
        a = make_agent(pc)
        wait_agent(pc, a.id)
        _, out, _ = pc.cli("tunnel", "add", a.id, "--remote",
                           "127.0.0.1:%d" % remote_port,
                           "--acl", "127.0.0.1/32")
        kv = pclib.parse_kv(out)
        assert kv["state"] == "listening", kv
    except BaseException:
        pc.stop()
        raise
    return pc, a, int(kv["port"])


def test_a_tunnel_download_is_read_from_the_agent_in_large_pieces(
        tmp_path, make_agent):  # noqa: F811
    """Bytes from the agent (a download through an agent tunnel) were
    read by the server 4 KiB at a time, one turn of its loop each
    (libwebsockets' default service buffer). Count the server's reads on
    the agent's connection while 8 MB come down a tunnel."""
    import socket
    import threading

    size = 8 * 1000 * 1000
    data = os.urandom(size)
    src = socket.socket()
    src.bind(("127.0.0.1", 0))
    src.listen(4)

    def serve():
        c, _ = src.accept()
        with c:
            c.sendall(data)
    threading.Thread(target=serve, daemon=True).start()
    pc, a, port = tunnel_to(tmp_path, make_agent, src.getsockname()[1])
    try:
        agent_fd = server_fd(pc.pid, pc.http_port,
                             client_port_of(a.pid, pc.http_port))
        trace = tmp_path / "reads.strace"
        tr = strace(pc.pid, trace, "-e", "trace=read,recvfrom")
        got = bytearray()
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=30) as s:
            while len(got) < size:
                d = s.recv(1 << 20)
                if not d:
                    break
                got += d
        tr.terminate()
        tr.wait(10)
        assert bytes(got) == data
        sizes = [n for n in traced(trace, "read|recvfrom", {agent_fd})
                 if n >= 0]
        print("reads on the agent's connection: %d, %d bytes, largest %d"
              % (len(sizes), sum(sizes), max(sizes or [0])))
        assert sum(sizes) >= size, (sum(sizes), size)
        assert sum(n for n in sizes if n > 4096) >= size // 2, sizes[:50]
        assert len(sizes) <= sum(sizes) // 12288 + 16, (len(sizes),
                                                        sum(sizes))
    finally:
        src.close()
        pc.stop()


def test_a_tunnel_connection_goes_in_few_frames_and_loop_turns(
        tmp_path, make_agent):  # noqa: F811
    """A TCP connection through an agent tunnel, one short request and
    answer and the close (an HTTP request with Connection: close), cost
    each side a WebSocket frame for nearly every SSH packet: the agent's
    channel confirmation, its "ok", and the window adjustment libssh sends
    on the first data went out as three frames; the server's window
    adjustment and the client's request as two, and the server's loop
    turned once more for the POLLOUT libssh waits for after every packet
    (two epoll_ctl each time). Now what libssh writes in one turn leaves
    as one frame, the agent grows the window with its confirmation, and
    the server polls libssh itself when a stream waits for it. The SSH
    packets are the same (old agents and servers see no difference).
    Counted with strace over 30 connections, one after the other."""
    import socket
    import threading

    n = 30
    body = b"x" * 1024
    answer = (b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nConnection: "
              b"close\r\n\r\n" + body)
    src = socket.socket()
    src.bind(("127.0.0.1", 0))
    src.listen(16)

    def serve():
        while True:
            try:
                c, _ = src.accept()
            except OSError:
                return
            with c:
                got = b""
                while b"\r\n\r\n" not in got:
                    d = c.recv(4096)
                    if not d:
                        break
                    got += d
                c.sendall(answer)
    threading.Thread(target=serve, daemon=True).start()
    pc, a, port = tunnel_to(tmp_path, make_agent, src.getsockname()[1])
    try:
        req = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

        def one():
            with socket.create_connection(("127.0.0.1", port),
                                          timeout=30) as s:
                s.sendall(req)
                got = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    got += d
            assert got.endswith(body), got[:200]
        for _ in range(3):
            one()
        server_ws = server_fd(pc.pid, pc.http_port,
                              client_port_of(a.pid, pc.http_port))
        agent_ws = socket_fds(a.pid, client_port_of(a.pid, pc.http_port),
                              pc.http_port)
        assert agent_ws
        st, at = tmp_path / "server.strace", tmp_path / "agent.strace"
        trs = [strace(pc.pid, st, "-e", "trace=sendto,epoll_ctl"),
               strace(a.pid, at, "-e", "trace=sendto")]
        for _ in range(n):
            one()
            # the close has gone both ways before the next connection,
            # whose open would otherwise often share its frame
            time.sleep(0.05)
        time.sleep(0.5)
        for tr in trs:
            tr.terminate()
            tr.wait(10)
        frames_down = len(traced(st, "sendto", {server_ws}))
        frames_up = len(traced(at, "sendto", agent_ws))
        ctl = len(traced(st, "epoll_ctl"))
        print("per connection: frames server->agent %.2f, agent->server "
              "%.2f; server epoll_ctl %.2f"
              % (frames_down / n, frames_up / n, ctl / n))
        # before: 4 and 5 frames (open | window adjustment | request |
        # EOF + close; confirmation | ok | window adjustment | answer +
        # EOF | close) and 15-16 epoll_ctl; now 3 and 3 (open | window
        # adjustment + request | EOF + close; confirmation + window
        # adjustment + ok | answer + EOF | close) and 10
        assert frames_down <= 3.3 * n, frames_down
        assert frames_up <= 3.3 * n, frames_up
        assert ctl <= 12 * n, ctl
    finally:
        src.close()
        pc.stop()
