"""The pre-authentication child (SPEC §10): sandboxed with seccomp and
no_new_privs, unprivileged, holding no store or key, and unable to take
the server down with garbage."""

import os
import socket
import time

import pytest

from pclib import serving_process


def open_preauth(proxy, timeout=10.0):
    """A raw TCP connection to the proxy that has read the server's SSH
    banner and sent ours; returns (sock, banner, pid of the process that
    serves it). That process is the server's descendant (`pgrep -P` of
    the server, or below a spawner process) holding the server side of
    this connection."""
    s = socket.create_connection(("127.0.0.1", proxy.ssh_port),
                                 timeout=timeout)
    banner = b""
    while b"\n" not in banner:
        chunk = s.recv(256)
        assert chunk, "connection closed before the banner: %r" % banner
        banner += chunk
    s.sendall(b"SSH-2.0-e2e_probe\r\n")
    pid = serving_process(proxy.descendants, proxy.ssh_port,
                          s.getsockname()[1])
    return s, banner, pid


def status_when(pid, field, value, timeout=5.0):
    """/proc/PID/status once field has value (or at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        st = {}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                st[k] = v.strip()
        if st.get(field) == value or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


def test_preauth_child_is_sandboxed(proxy):
    s, banner, pid = open_preauth(proxy)
    with s:
        assert banner.startswith(b"SSH-2.0-"), banner
        status_when(pid, "Seccomp", "2")
        with open("/proc/%d/status" % pid) as f:
            raw = f.read()
        assert "Seccomp:\t2\n" in raw, raw  # 2 = filter mode
        assert "NoNewPrivs:\t1\n" in raw, raw


@pytest.mark.skipif(os.geteuid() != 0, reason="the server drops privileges "
                    "only when it runs as root")
def test_preauth_child_runs_unprivileged(proxy):
    s, _, pid = open_preauth(proxy)
    with s:
        st = status_when(pid, "Seccomp", "2")
        uids = st["Uid"].split()
        gids = st["Gid"].split()
        assert "0" not in uids, st["Uid"]
        assert "0" not in gids, st["Gid"]


def test_preauth_child_holds_no_store_or_keys(proxy):
    """No open file of the data directory (database, vault key, host
    key, ...) other than the log the test harness gave it as stderr."""
    s, _, pid = open_preauth(proxy)
    with s:
        status_when(pid, "Seccomp", "2")
        data_dir = str(proxy.dir.resolve())
        held = []
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                path = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except FileNotFoundError:
                continue
            if path.startswith(data_dir) and \
                    path != str(proxy.log_path.resolve()):
                held.append((fd, path))
        assert held == [], held


def test_garbage_before_auth_ends_only_that_connection(proxy):
    s, _, pid = open_preauth(proxy)
    with s:
        try:
            s.sendall(os.urandom(64 * 1024))
            s.settimeout(10)
            while s.recv(4096):
                pass
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            pass
    deadline = time.monotonic() + 10
    while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxy.proc.poll() is None, proxy.log_tail()
    # The server still greets new connections.
    with socket.create_connection(("127.0.0.1", proxy.ssh_port),
                                  timeout=10) as s2:
        assert s2.recv(256).startswith(b"SSH-2.0-")


def test_endless_banner_is_cut_off(proxy):
    """A client that never finishes its banner line is disconnected (a
    pre-auth limit), and the server stays up."""
    with socket.create_connection(("127.0.0.1", proxy.ssh_port),
                                  timeout=10) as s:
        s.recv(256)
        closed = False
        try:
            for _ in range(256):
                s.sendall(b"A" * 4096)
        except (ConnectionResetError, BrokenPipeError):
            closed = True
        except socket.timeout:
            pass  # not reading any more, but not closed either
        if not closed:
            s.settimeout(10)
            try:
                while s.recv(4096):
                    pass
                closed = True
            except ConnectionResetError:
                closed = True
            except socket.timeout:
                pass
        assert closed, "the server kept a 1 MiB banner line open"
    assert proxy.proc.poll() is None, proxy.log_tail()
