"""Privilege separation of the SSH host keys and of public-key logins
(issue 11, defect 4; docs/security.md "Host keys and public-key logins").

Only the main process holds the private host key: the spawner and every
session child hold stand-ins and ask the monitor to sign the key exchange.
These tests read the processes' memory (as root) for the key's secret
bytes, and check that the key clients see is still the one `init` printed
and that key logins still work."""

import base64
import os
import re
import struct

import pytest

from pclib import parse_kv, run
from test_sandbox import open_preauth, status_when

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="reading another process's memory "
                                "needs root")


def _ssh_string(data, off):
    n = struct.unpack(">I", data[off:off + 4])[0]
    return data[off + 4:off + 4 + n], off + 4 + n


def ed25519_seed(path):
    """The 32-byte secret of an unencrypted OpenSSH Ed25519 key file."""
    text = open(path).read()
    b64 = "".join(l for l in text.splitlines() if not l.startswith("-----"))
    data = base64.b64decode(b64)
    magic = b"openssh-key-v1\0"
    assert data.startswith(magic)
    off = len(magic)
    cipher, off = _ssh_string(data, off)
    assert cipher == b"none", "the host key is encrypted"
    _, off = _ssh_string(data, off)  # kdf name
    _, off = _ssh_string(data, off)  # kdf options
    off += 4  # number of keys
    _, off = _ssh_string(data, off)  # public key
    priv, _ = _ssh_string(data, off)
    p = 8  # two check words
    ktype, p = _ssh_string(priv, p)
    assert ktype == b"ssh-ed25519"
    _, p = _ssh_string(priv, p)  # public
    secret, p = _ssh_string(priv, p)  # seed || public
    return secret[:32]


def memory_contains(pid, needle):
    """True if any readable mapping of pid holds needle. Read in chunks
    (overlapping by len(needle) - 1); mappings of 1 GiB or more are
    reserved address space (ASan's shadow), not data the process wrote."""
    chunk = 16 << 20
    with open("/proc/%d/maps" % pid) as maps, \
            open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            if not m or m.group(3)[0] != "r" or "[vvar]" in line:
                continue
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            if end - start >= 1 << 30:
                continue
            pos, tail = start, b""
            while pos < end:
                n = min(chunk, end - pos)
                try:
                    mem.seek(pos)
                    data = mem.read(n)
                except (OSError, ValueError, OverflowError):
                    break
                if needle in tail + data:
                    return True
                tail = data[-(len(needle) - 1):]
                pos += n
    return False


def host_key_path(proxy):
    conf = proxy.conf.read_text()
    m = re.search(r"^\s*host_key\s*=\s*(\S+)", conf, re.M)
    assert m, conf
    p = m.group(1)
    return p if os.path.isabs(p) else str(proxy.dir / p)


def spawner_pid(proxy, child):
    """The parent of a session child: the spawner."""
    with open("/proc/%d/status" % child) as f:
        for line in f:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise AssertionError("no parent of %d" % child)


def test_only_the_main_process_holds_the_host_key(proxy):
    seed = ed25519_seed(host_key_path(proxy))
    s, _, pid = open_preauth(proxy)
    with s:
        status_when(pid, "Seccomp", "2")
        spawner = spawner_pid(proxy, pid)
        assert spawner != proxy.pid
        # The scan works: the monitor does hold the key.
        assert memory_contains(proxy.pid, seed)
        assert not memory_contains(spawner, seed), "the spawner holds it"
        assert not memory_contains(pid, seed), "a pre-auth child holds it"


def test_clients_see_the_real_host_key(proxy, tmp_path):
    """The key exchange is signed by the monitor with the key init made:
    OpenSSH checks the signature and the fingerprint init printed."""
    kh = tmp_path / "known_hosts"
    r = run(["ssh-keyscan", "-p", str(proxy.ssh_port), "-t", "ed25519",
             "127.0.0.1"])
    assert r.rc == 0 and r.out.strip(), r
    kh.write_text(r.out)
    r2 = run(["ssh-keygen", "-l", "-f", str(kh)])
    assert proxy.fingerprint in r2.out, (r2, proxy.fingerprint)
    # A full login with strict checking against that key: the signature
    # over the exchange hash verifies (else "incorrect signature").
    r3 = run(["ssh", "-p", str(proxy.ssh_port), "-o", "BatchMode=yes",
              "-o", "StrictHostKeyChecking=yes",
              "-o", "UserKnownHostsFile=%s" % kh,
              "-o", "PreferredAuthentications=password",
              "nobody#nothing@127.0.0.1", "true"])
    assert "Permission denied" in r3.err, r3
    assert "signature" not in r3.err.lower(), r3
