"""A TCP stream's last bytes reach a slow reader on either side.

When one end half-closes first and the other then sends its last data,
EOF and close right behind each other, the stream must end only after the
bytes already taken from the channel are written to the reader (issue 12:
never lost data). The readers here are slow on purpose (a small receive
buffer, nothing read for READ_WAIT seconds, then a pause between
reads), so bytes are still in flight when the channel's close arrives.
"""
import hashlib
import os
import select
import socket
import subprocess
import time

import pytest

import pclib
from agentlib import make_agent, netns  # noqa: F401 (fixtures)
from pclib import wait_for
from test_tunnel import agent, server, tunnel_add  # noqa: F401 (fixtures)

SINK_PORT = 9     # inside the namespace: half-closes, then reads slowly
SOURCE_PORT = 19  # inside the namespace: sends BLOB_SIZE bytes, closes
BLOB_SIZE = 16 << 20  # well above what loopback socket buffers absorb
SLOW_READ = 4096  # bytes per read of a slow reader
SLOW_PAUSE = 0.0002
READ_WAIT = 1.0   # a slow reader reads nothing this long after its half-close

# argv: log path, sink port, source port, blob size. The sink logs
# "<bytes> <sha256>\n" per connection once the peer's EOF is read; the
# source sends a deterministic blob (sha256 chain) and closes.
SERVICE = r'''
import hashlib, socket, sys, threading, time
log = open(sys.argv[1], "a")
size = int(sys.argv[4])
def blob():
    out, h = bytearray(), b"portcullis"
    while len(out) < size:
        h = hashlib.sha256(h).digest()
        out += h
    return bytes(out[:size])
BLOB = blob()
def listener(port, rcvbuf):
    t = socket.socket()
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf:
        t.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    t.bind(("127.0.0.1", port))
    t.listen(16)
    return t
def sink(c):
    with c:
        c.shutdown(socket.SHUT_WR)
        time.sleep(%(wait)f)
        h, n = hashlib.sha256(), 0
        while True:
            d = c.recv(%(read)d)
            if not d:
                break
            h.update(d)
            n += len(d)
            time.sleep(%(pause)f)
        log.write("%%d %%s\n" %% (n, h.hexdigest()))
        log.flush()
def source(c):
    with c:
        c.sendall(BLOB)
def serve(t, fn):
    while True:
        c, _ = t.accept()
        threading.Thread(target=fn, args=(c,), daemon=True).start()
a = listener(int(sys.argv[2]), 4096)
b = listener(int(sys.argv[3]), 0)
threading.Thread(target=serve, args=(b, source), daemon=True).start()
print("ready", flush=True)
serve(a, sink)
''' % {"read": SLOW_READ, "pause": SLOW_PAUSE, "wait": READ_WAIT}


def expected_blob():
    out, h = bytearray(), b"portcullis"
    while len(out) < BLOB_SIZE:
        h = hashlib.sha256(h).digest()
        out += h
    return bytes(out[:BLOB_SIZE])


class Service:
    def __init__(self, netns, logpath):  # noqa: F811
        self.log = logpath
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns.ns, "/usr/bin/python3", "-c",
             SERVICE, str(logpath), str(SINK_PORT), str(SOURCE_PORT),
             str(BLOB_SIZE)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        r, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline() if r else b""
        if line.strip() != b"ready":
            self.stop()
            pytest.fail("the drain service did not start: %r" % line)

    def sink_results(self):
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        return [ln.split() for ln in text.splitlines() if ln.strip()]

    def stop(self):
        pclib.stop_process(self.proc, 5)


@pytest.fixture
def service(netns, tmp_path):  # noqa: F811
    s = Service(netns, tmp_path / "sink.log")
    yield s
    s.stop()


def test_slow_target_gets_every_byte_after_the_client_closes(
        server, agent, service):  # noqa: F811
    """The target half-closes at once (the agent sends EOF), the client
    sends BLOB_SIZE bytes and closes: the server's last data, EOF and
    close reach the agent together, while the target still reads."""
    _, port, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % SINK_PORT)
    blob = os.urandom(BLOB_SIZE)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        # the target's EOF arrives first
        s.settimeout(10)
        assert s.recv(1) == b""
        s.sendall(blob)
    res = wait_for(service.sink_results, timeout=60,
                   what="the target to read to its EOF")
    assert res[0] == [str(len(blob)), hashlib.sha256(blob).hexdigest()], \
        "the target got %s of %d bytes" % (res[0][0], len(blob))


def test_slow_client_gets_every_byte_after_the_target_closes(
        server, agent, service):  # noqa: F811
    """The client half-closes at once, the target sends BLOB_SIZE bytes
    and closes: the agent's last data, EOF and close reach the server
    together, while the client still reads."""
    _, port, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % SOURCE_PORT)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        s.shutdown(socket.SHUT_WR)
        time.sleep(READ_WAIT)
        h, n = hashlib.sha256(), 0
        while True:
            d = s.recv(SLOW_READ)
            if not d:
                break
            h.update(d)
            n += len(d)
            time.sleep(SLOW_PAUSE)
    finally:
        s.close()
    assert (n, h.hexdigest()) == \
        (BLOB_SIZE, hashlib.sha256(expected_blob()).hexdigest()), \
        "the client got %d of %d bytes; server log:\n%s" % (
            n, BLOB_SIZE, server.log_tail())


def test_client_reset_when_the_agent_goes_mid_stream(
        server, agent, service):  # noqa: F811
    """The agent dies while the target's bytes are on their way: the
    client's connection is reset, so it cannot mistake the part it got
    for the whole (a clean end of stream would say "that was all")."""
    import signal
    _, port, _ = tunnel_add(server, agent.id, "127.0.0.1:%d" % SOURCE_PORT)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    n, error = 0, None
    try:
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        s.shutdown(socket.SHUT_WR)
        while n < 256 * 1024:
            d = s.recv(SLOW_READ)
            assert d, "the stream ended after %d bytes" % n
            n += len(d)
        os.kill(agent.proc.pid, signal.SIGKILL)
        agent.proc.wait(timeout=10)
        while True:
            time.sleep(SLOW_PAUSE)
            d = s.recv(SLOW_READ)
            if not d:
                break
            n += len(d)
    except ConnectionResetError as e:
        error = e
    finally:
        s.close()
    assert n < BLOB_SIZE, "the whole blob came before the agent died"
    assert error is not None, \
        "a clean end of stream after %d of %d bytes" % (n, BLOB_SIZE)
