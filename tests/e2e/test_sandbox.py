"""The pre-authentication child (SPEC §10): sandboxed with seccomp and
no_new_privs, unprivileged, holding no store or key, and unable to take
the server down with garbage."""

import fcntl
import os
import pty
import socket
import subprocess
import termios
import threading
import time

import pytest

from pclib import proc_stat, serving_process, wait_listen


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


def start_on_a_terminal(pc):
    """Starts pc's server as an administrator does in a terminal: a pty
    is its controlling terminal and its stdin, stdout and stderr. What it
    writes there is copied to its log file (so log and sanitizer checks
    still work). Returns the pty's path."""
    master, slave = os.openpty()
    tty_path = os.ttyname(slave)

    def take_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    pc.proc = subprocess.Popen(
        [str(pc.bin), "-c", str(pc.conf), "serve"], stdin=slave,
        stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=take_terminal)
    os.close(slave)

    def copy_to_log():
        with open(pc.log_path, "ab") as log:
            while True:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    break
                if not data:
                    break
                log.write(data)
                log.flush()
        os.close(master)

    threading.Thread(target=copy_to_log, daemon=True).start()
    assert wait_listen(pc.ssh_port, 15, pc.proc), pc.log_tail()
    return tty_path


def test_preauth_child_holds_no_terminal(pc):
    """Issue 11, defect 9: a session child kept the server's stdin,
    stdout and stderr (here: the administrator's terminal) and that
    terminal as its controlling terminal. Now fds 0-2 are /dev/null, it
    has no controlling terminal, and the terminal is open in it at most
    write-only (for its log lines), so it can neither read what is typed
    there nor type into it."""
    tty_path = start_on_a_terminal(pc)
    assert int(proc_stat(pc.proc.pid)[4]) != 0, "server has no terminal"
    s, _, pid = open_preauth(pc)
    with s:
        status_when(pid, "Seccomp", "2")
        assert int(proc_stat(pid)[4]) == 0, proc_stat(pid)
        for fd in (0, 1, 2):
            assert os.readlink("/proc/%d/fd/%d" % (pid, fd)) == "/dev/null"
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                path = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                    info = f.read()
            except FileNotFoundError:
                continue
            if path == tty_path:
                flags = int(info.split("flags:")[1].split()[0], 8)
                assert flags & os.O_ACCMODE == os.O_WRONLY, (fd, info)
    # Its log lines still reach the server's log.
    s2, _, pid2 = open_preauth(pc)
    s2.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and \
            "portcullis[%d]" % pid2 not in pc.log_text():
        time.sleep(0.1)
    assert "portcullis[%d]" % pid2 in pc.log_text(), pc.log_tail()
