"""The hostile-child suite (issue 11, "Prove the process model"): the test
plays a compromised session child against a real server.

It connects to the proxy like any client, stops the session child the
server forked for it (SIGSTOP), takes a duplicate of that child's monitor
socket with pidfd_getfd(2) (root only), and from then on speaks the monitor
protocol (src/sshproxy/mproto.h) itself: every request out of order, with
forged fields, oversize or truncated. Each must be refused, the child
killed where the design says so (monitor.h's table), and the server must
go on serving real users."""

import ctypes
import hmac
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

from pclib import free_port, fresh_totp_code, keygen, serving_process, uniq
from test_rdp import rdp_proxy  # noqa: F401 (the fixture: [rdp] enabled)
from test_sandbox import open_preauth

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="pidfd_getfd on a session child "
                                "needs root")

paramiko = pytest.importorskip("paramiko")

# mproto.h
AUTH_PASSWORD, AUTH_PUBKEY, AUTH_TOTP, AUTHORIZE, CONNECT, CREDENTIALS, \
    HOSTKEY, SESSION_END, RECORD_OPEN, KEX_SIGN, RDP_NTLM = range(1, 12)
AUTH_REPLY, AUTHORIZE_REPLY, CONNECT_REPLY, CREDENTIALS_REPLY, \
    HOSTKEY_REPLY, ACK, RECORD_OPEN_REPLY, KEX_SIGN_REPLY, \
    RDP_NTLM_REPLY = range(64, 73)
AUTH_FAIL, AUTH_OK, AUTH_PARTIAL = 0, 1, 2
# policy.h: enum policy_kind
KIND_SHELL, KIND_EXEC, KIND_SFTP, KIND_SCP, KIND_LOCAL_FORWARD, \
    KIND_REMOTE_FORWARD, KIND_AGENT_FORWARD, KIND_X11, KIND_RDP = range(9)
MPROTO_MAX = 65536
SYS_pidfd_getfd = 438  # x86_64 and most others

_libc = ctypes.CDLL(None, use_errno=True)


def s_str(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">I", len(b)) + b


def u8(v):
    return struct.pack(">B", v)


def u32(v):
    return struct.pack(">I", v)


def get_str(data, off):
    n = struct.unpack(">I", data[off:off + 4])[0]
    return data[off + 4:off + 4 + n], off + 4 + n


def _seqpacket_inodes():
    inodes = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 7 and parts[4] == "0005":
                inodes.add(parts[6])
    return inodes


class HostileChild:
    """A stopped real session child whose monitor socket the test holds:
    an SSH child, or with rdp an RDP child (the proxy's [rdp] enabled)."""

    def __init__(self, proxy, rdp=False):
        if rdp:
            self.tcp = socket.create_connection(
                ("127.0.0.1", proxy.rdp_port), timeout=10)
            self.pid = serving_process(proxy.descendants, proxy.rdp_port,
                                       self.tcp.getsockname()[1])
        else:
            self.tcp, _, self.pid = open_preauth(proxy)
        os.kill(self.pid, signal.SIGSTOP)
        seq = _seqpacket_inodes()
        target = None
        for fd in os.listdir("/proc/%d/fd" % self.pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (self.pid, fd))
            except FileNotFoundError:
                continue
            if link.startswith("socket:[") and link[8:-1] in seq:
                target = int(fd)
        assert target is not None, "no monitor socket in child %d" % self.pid
        pidfd = os.pidfd_open(self.pid)
        try:
            newfd = _libc.syscall(SYS_pidfd_getfd, pidfd, target, 0)
            if newfd < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
        finally:
            os.close(pidfd)
        self.sock = socket.socket(fileno=newfd)
        self.sock.settimeout(15)

    def send(self, mtype, payload=b""):
        self.sock.send(u8(mtype) + payload)

    def recv(self):
        """(type, payload), or None at EOF (the monitor closed its end)."""
        try:
            data = self.sock.recv(MPROTO_MAX + 16)
        except ConnectionResetError:
            return None
        if not data:
            return None
        return data[0], data[1:]

    def call(self, mtype, payload=b""):
        self.send(mtype, payload)
        r = self.recv()
        assert r is not None, "the monitor ended the child on a valid request"
        return r

    def alive(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        return state not in ("Z", "X")

    def expect_killed(self, timeout=10.0):
        """The monitor closes its end and the process is gone."""
        deadline = time.monotonic() + timeout
        got = "none"
        while time.monotonic() < deadline:
            try:
                self.sock.settimeout(max(0.05, deadline - time.monotonic()))
                r = self.recv()
            except socket.timeout:
                r = "timeout"
            if r is None:
                got = "eof"
                break
            if r == "timeout":
                break
            got = "reply %d" % r[0]  # a reply still queued: read on
        assert got == "eof", "monitor did not end the child (%s)" % got
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.alive(), "child %d still alive" % self.pid

    def expect_killed_unanswered(self, timeout=10.0):
        """The monitor ends the child without answering its last request
        at all (no reply of any kind comes before the end)."""
        self.sock.settimeout(timeout)
        try:
            r = self.recv()
        except socket.timeout:
            r = "timeout"
        assert r is None, "monitor answered instead of ending the child: " \
            "%r" % (r if r == "timeout" else "reply %d" % r[0])
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.alive(), "child %d still alive" % self.pid

    def close(self):
        try:
            self.sock.close()
        finally:
            if self.alive():
                os.kill(self.pid, signal.SIGKILL)
            self.tcp.close()

    # --- requests as a real child sends them

    def kex_sign(self, h=None, key_type="ssh-ed25519", digest=0):
        self.session_id = h or os.urandom(32)
        return self.call(KEX_SIGN, s_str(key_type) + u8(digest) +
                         s_str(self.session_id))

    def password(self, login, password):
        return self.call(AUTH_PASSWORD, s_str(login) + s_str(password))

    def signed_pubkey(self, login, key, session_id=None, sign_with=None,
                      alg="ssh-ed25519"):
        blob = key.asbytes()
        data = s_str(session_id or self.session_id) + u8(50) + \
            s_str(login) + s_str("ssh-connection") + s_str("publickey") + \
            u8(1) + s_str(alg) + s_str(blob)
        sig = (sign_with or key).sign_ssh_data(data).asbytes()
        return self.call(AUTH_PUBKEY, s_str(login) + u8(1) + s_str(data) +
                         s_str(sig))


def verdict(reply):
    mtype, payload = reply
    assert mtype == AUTH_REPLY, reply
    return payload[0]


def _hostile_children(server, rdp):
    made = []

    def make():
        h = HostileChild(server, rdp=rdp)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
    # Whatever the hostile children did, the server is still up.
    assert server.proc.poll() is None, server.log_tail()


@pytest.fixture
def hostile(proxy):
    yield from _hostile_children(proxy, False)


@pytest.fixture
def victim(proxy, target, tmp_path):
    """A user with a registered Ed25519 key and a password, allowed on an
    asset: (login, password, paramiko key, asset id)."""
    password = "pw-" + uniq()
    user = proxy.user_add(password=password)
    path = keygen(tmp_path / ("k" + uniq()))
    proxy.key_add(user, str(path) + ".pub")
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id)
    key = paramiko.Ed25519Key(filename=str(path))
    return "%s#%s" % (user, asset_id), password, key, asset_id


def attacker_key(tmp_path):
    path = keygen(tmp_path / ("evil" + uniq()))
    return paramiko.Ed25519Key(filename=str(path))


def assert_not_authenticated(h):
    """Authorizing anything is a protocol violation before login."""
    h.send(AUTHORIZE, u8(KIND_EXEC) + s_str("id"))
    h.expect_killed()


def host_public_key(proxy):
    pub = None
    for line in proxy.conf.read_text().splitlines():
        k, _, v = line.partition("=")
        if k.strip() == "host_key":
            p = v.strip()
            pub = p if os.path.isabs(p) else str(proxy.dir / p)
    priv = paramiko.Ed25519Key(filename=pub)
    return paramiko.Ed25519Key(data=priv.asbytes())


def test_monitor_signs_the_exchange_hash_with_the_real_host_key(proxy,
                                                                 hostile):
    h = hostile()
    mtype, payload = h.kex_sign()
    assert mtype == KEX_SIGN_REPLY
    sig, end = get_str(payload, 0)
    assert end == len(payload)
    assert host_public_key(proxy).verify_ssh_sig(
        h.session_id, paramiko.Message(sig))


def test_valid_signature_logs_in(hostile, victim):
    """The positive control: the checks below refuse only what is wrong."""
    login, _, key, _ = victim
    h = hostile()
    h.kex_sign()
    assert verdict(h.signed_pubkey(login, key)) == AUTH_OK
    mtype, payload = h.call(AUTHORIZE, u8(KIND_EXEC) + s_str("id"))
    assert mtype == AUTHORIZE_REPLY and payload[0] == 1, payload


def test_verified_flag_without_signature(hostile, victim):
    """The old protocol's "libssh verified it" flag: a fingerprint and 1."""
    login, _, key, _ = victim
    h = hostile()
    h.kex_sign()
    fp = "SHA256:" + "A" * 43
    h.send(AUTH_PUBKEY, s_str(login) + s_str(fp) + u8(1))
    r = h.recv()
    assert r is None or verdict(r) != AUTH_OK
    if r is not None:
        assert_not_authenticated(h)
    else:
        h.expect_killed()


def test_signature_by_another_key(hostile, victim, tmp_path):
    login, _, key, _ = victim
    h = hostile()
    h.kex_sign()
    assert verdict(h.signed_pubkey(login, key,
                                   sign_with=attacker_key(tmp_path))) \
        == AUTH_FAIL
    assert_not_authenticated(h)


def test_signature_replayed_from_another_session(hostile, victim):
    """A real signature by the victim's key, but over another session's
    identifier (e.g. one made for a server the attacker runs)."""
    login, _, key, _ = victim
    h = hostile()
    h.kex_sign()
    assert verdict(h.signed_pubkey(login, key, session_id=os.urandom(32))) \
        == AUTH_FAIL
    assert_not_authenticated(h)


def test_signature_for_another_login(hostile, victim, proxy):
    """Signed as the victim, presented for another user's login."""
    login, _, key, asset_id = victim
    other = proxy.user_add(password="pw-" + uniq())
    h = hostile()
    h.kex_sign()
    blob = key.asbytes()
    data = s_str(h.session_id) + u8(50) + s_str(login) + \
        s_str("ssh-connection") + s_str("publickey") + u8(1) + \
        s_str("ssh-ed25519") + s_str(blob)
    sig = key.sign_ssh_data(data).asbytes()
    r = h.call(AUTH_PUBKEY, s_str("%s#%s" % (other, asset_id)) + u8(1) +
               s_str(data) + s_str(sig))
    assert verdict(r) == AUTH_FAIL
    assert_not_authenticated(h)


def test_pubkey_before_key_exchange_is_killed(hostile, victim):
    login, _, key, _ = victim
    h = hostile()
    h.session_id = os.urandom(32)
    blob = key.asbytes()
    h.send(AUTH_PUBKEY, s_str(login) + u8(0) + s_str(blob))
    h.expect_killed()


def test_second_kex_signature_before_login_is_killed(hostile):
    h = hostile()
    h.kex_sign()
    h.send(KEX_SIGN, s_str("ssh-ed25519") + u8(0) + s_str(os.urandom(32)))
    h.expect_killed()


@pytest.mark.parametrize("data", [b"", b"x" * 33, b"y" * 100])
def test_kex_signature_of_other_data_is_killed(hostile, data):
    """Only a digest-sized exchange hash is signed, never arbitrary bytes."""
    h = hostile()
    h.send(KEX_SIGN, s_str("ssh-ed25519") + u8(0) + s_str(data))
    h.expect_killed()


@pytest.mark.parametrize("mtype,payload", [
    (AUTHORIZE, u8(KIND_EXEC) + s_str("id")),
    (CONNECT, b""),
    (CREDENTIALS, b""),
    (HOSTKEY, s_str("row") + s_str("SHA256:" + "B" * 43)),
    (SESSION_END, s_str("row")),
    (RECORD_OPEN, s_str("row") + u8(0)),
    (AUTH_TOTP, s_str("123456")),
    (200, b""),
])
def test_requests_before_login_are_killed(hostile, mtype, payload):
    h = hostile()
    h.send(mtype, payload)
    h.expect_killed()


def test_credentials_before_authorize_is_killed(hostile, victim):
    login, password, _, _ = victim
    h = hostile()
    h.kex_sign()
    assert verdict(h.password(login, password)) == AUTH_OK
    h.send(CREDENTIALS)
    h.expect_killed()


def test_hostkey_before_connect_is_killed(hostile, victim, proxy):
    """A child must not pin a host key for an asset it never connected to
    (on an unpinned asset that would be trust on first use of a key the
    child chose)."""
    login, password, _, asset_id = victim
    h = hostile()
    h.kex_sign()
    assert verdict(h.password(login, password)) == AUTH_OK
    mtype, payload = h.call(AUTHORIZE, u8(KIND_EXEC) + s_str("id"))
    assert mtype == AUTHORIZE_REPLY and payload[0] == 1
    row, _ = get_str(payload, 1)
    # asked (for its row, as the child does), but the test never waits
    # for the stream: an empty MP_CONNECT is itself malformed and got the
    # child killed before HOSTKEY was read (a BrokenPipeError under load)
    h.send(CONNECT, s_str(row))
    h.send(HOSTKEY, s_str(row) + s_str("SHA256:" + "C" * 43))
    r = h.recv()
    while r is not None and r[0] == CONNECT_REPLY and r[1][:1] == b"\x00":
        r = h.recv()  # a failed connect's reply; then the verdict
    if r is not None and r[0] == CONNECT_REPLY:
        pytest.skip("the connect finished before HOSTKEY was read")
    assert r is None
    h.expect_killed()


def test_second_login_after_authentication_is_killed(hostile, victim, proxy,
                                                     target):
    """One connection, one user and one asset: a child cannot log in again
    to reach another asset."""
    login, password, _, _ = victim
    other_asset = proxy.target_asset(target)
    h = hostile()
    h.kex_sign()
    assert verdict(h.password(login, password)) == AUTH_OK
    user = login.split("#")[0]
    h.send(AUTH_PASSWORD, s_str("%s#%s" % (user, other_asset)) +
           s_str(password))
    h.expect_killed()


def test_session_end_for_another_childs_row_is_killed(hostile, victim,
                                                      proxy):
    login, password, _, _ = victim
    a = hostile()
    a.kex_sign()
    assert verdict(a.password(login, password)) == AUTH_OK
    mtype, payload = a.call(AUTHORIZE, u8(KIND_EXEC) + s_str("id"))
    row, _ = get_str(payload, 1)
    b = hostile()
    b.kex_sign()
    assert verdict(b.password(login, password)) == AUTH_OK
    b.send(SESSION_END, s_str(row) + struct.pack(">QQI", 1, 2, 1) +
           s_str("ok") + struct.pack(">Q", 0) + s_str(""))
    b.expect_killed()
    # a's row was not closed by b.
    assert not any(r.get("id") == row and r.get("result") == "ok"
                   for r in proxy.sessions())
    assert a.alive()


def test_scp_that_is_not_scp_is_killed(hostile, victim):
    """A child may not call a command scp to pass an scp-only profile."""
    login, password, _, _ = victim
    h = hostile()
    h.kex_sign()
    assert verdict(h.password(login, password)) == AUTH_OK
    h.send(AUTHORIZE, u8(KIND_SCP) + s_str("scp -f /x; bash -i"))
    h.expect_killed()


def test_second_password_while_one_is_checked_is_killed(hostile, victim):
    """Password checks run on worker threads: a request while one is
    pending is a violation, not a way to queue guesses."""
    login, password, _, _ = victim
    h = hostile()
    h.kex_sign()
    h.send(AUTH_PASSWORD, s_str(login) + s_str("wrong-" + uniq()))
    h.send(AUTH_PASSWORD, s_str(login) + s_str(password))
    h.expect_killed()


def test_truncated_message_is_killed(hostile):
    h = hostile()
    # A string whose length runs past the end of the message.
    h.send(AUTH_PASSWORD, u32(1000) + b"alice")
    h.expect_killed()


def test_trailing_bytes_are_killed(hostile, victim):
    login, password, _, _ = victim
    h = hostile()
    h.kex_sign()
    h.send(AUTH_PASSWORD, s_str(login) + s_str(password) + b"\x00")
    h.expect_killed()


def test_oversize_message_is_killed(hostile):
    h = hostile()
    h.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MPROTO_MAX)
    h.send(AUTH_PASSWORD, s_str("a" * (MPROTO_MAX + 10)) + s_str("x"))
    h.expect_killed()


def test_unread_replies_do_not_stall_the_server(hostile, victim, proxy,
                                                ssh_client):
    """A child that sends requests and never reads a reply: the monitor
    never blocks on it, and real users are served meanwhile."""
    login, password, key, _ = victim
    h = hostile()
    h.kex_sign()
    probe = s_str(login) + u8(0) + s_str(key.asbytes())
    h.sock.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 20
    while sent < 20000 and time.monotonic() < deadline:
        try:
            h.send(AUTH_PUBKEY, probe)
            sent += 1
        except BlockingIOError:
            time.sleep(0.01)  # our send buffer is full: the monitor waits
            if not h.alive():
                break
        except (BrokenPipeError, ConnectionResetError):
            # The monitor's replies filled our unread receive buffer, so
            # it ended us (it never waits on a child): the socket is gone.
            h.expect_killed()
            break
    h.sock.setblocking(True)
    t0 = time.monotonic()
    r = ssh_client.ssh(login, "echo still-serving", password=password)
    assert "still-serving" in r.out, r
    assert time.monotonic() - t0 < 10


# --- one kind of child asking for the other kind's requests
#
# The SSH proxy's children and the RDP proxy's talk to the same monitor.
# What only one kind ever asks (monitor.h's table): an SSH child never
# asks for an NTLM key or an RDP session; an RDP child never asks for a
# host-key signature, a public-key login, a TOTP answer after a partial
# login (its code comes in the user name) or an SSH channel. A child
# that does is compromised: it is ended without an answer.

def _md4(data):
    """RFC 1320 MD4 (Debian's OpenSSL 3 has it only in the legacy
    provider, which Python's hashlib does not load): what an NT hash is
    made of."""
    mask = 0xffffffff

    def rol(x, n):
        x &= mask
        return ((x << n) | (x >> (32 - n))) & mask

    msg = bytearray(data) + b"\x80"
    msg += b"\0" * ((56 - len(msg)) % 64) + struct.pack("<Q", 8 * len(data))
    h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]
    rounds = [
        (lambda b, c, d: (b & c) | (~b & d), 0, list(range(16)), (3, 7, 11, 19)),
        (lambda b, c, d: (b & c) | (b & d) | (c & d), 0x5a827999,
         [(i % 4) * 4 + i // 4 for i in range(16)], (3, 5, 9, 13)),
        (lambda b, c, d: b ^ c ^ d, 0x6ed9eba1,
         [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15],
         (3, 9, 11, 15)),
    ]
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off:off + 64])
        a, b, c, d = h
        for fn, add, order, shifts in rounds:
            for i, k in enumerate(order):
                a = rol(a + fn(b, c, d) + x[k] + add, shifts[i % 4])
                a, b, c, d = d, a, b, c
        h = [(v + w) & mask for v, w in zip(h, (a, b, c, d))]
    return struct.pack("<4I", *h)


assert _md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"


def ntlm_request(login, password, domain=""):
    """MP_RDP_NTLM as a child asks it for an NTLMv2 client that knows
    password (MS-NLMP §3.3.2): login, domain, a server challenge and the
    client's response; and the NTOWFv2 key that response proves."""
    upper = "".join(ch.upper() if "a" <= ch <= "z" else ch for ch in login)
    nt = _md4(password.encode("utf-16-le"))
    key = hmac.new(nt, (upper + domain).encode("utf-16-le"), "md5").digest()
    challenge = os.urandom(8)
    blob = b"\x01\x01" + b"\0" * 6 + os.urandom(16) + b"\0" * 4 + \
        b"\0" * 4 + b"\0" * 4  # time, client challenge, AV pairs' end
    proof = hmac.new(key, challenge + blob, "md5").digest()
    return (s_str(login) + s_str(domain) + s_str(challenge) +
            s_str(proof + blob)), key


def rdp_asset(pc):
    """An rdp asset (no target behind it: nothing here connects)."""
    _, out, _ = pc.cli("asset", "add", uniq("w"), "--protocol", "rdp",
                       "--host", "127.0.0.1", "--port", free_port(),
                       "--login", "rdptarget", "--password-stdin",
                       input="Target-Pass-42\n")
    return out.strip()


def test_ssh_child_asking_for_an_ntlm_key_is_killed(hostile, victim):
    login, _, _, _ = victim
    h = hostile()
    h.kex_sign()
    h.send(RDP_NTLM, s_str(login) + s_str(""))
    h.expect_killed_unanswered()


def test_ssh_child_authorizing_an_rdp_session_is_killed(hostile, proxy):
    """Logged in for an rdp asset it may use, an SSH child asking for an
    RDP session is ended, and no report row is opened for it."""
    password = "pw-" + uniq()
    user = proxy.user_add(password=password)
    asset_id = rdp_asset(proxy)
    proxy.allow(user, asset_id)
    h = hostile()
    h.kex_sign()
    assert verdict(h.password("%s#%s" % (user, asset_id), password)) \
        == AUTH_OK
    h.send(AUTHORIZE, u8(KIND_RDP) + s_str(""))
    h.expect_killed_unanswered()
    assert not any(r.get("user") == user and r.get("kind") == "rdp"
                   for r in proxy.sessions())


@pytest.fixture
def rdp_hostile(rdp_proxy):
    yield from _hostile_children(rdp_proxy, True)


@pytest.fixture
def rdp_victim(rdp_proxy):
    """A user with a password allowed on an rdp asset: (login,
    password)."""
    password = "pw-" + uniq()
    user = rdp_proxy.user_add(password=password)
    asset_id = rdp_asset(rdp_proxy)
    rdp_proxy.allow(user, asset_id)
    return "%s#%s" % (user, asset_id), password


@pytest.fixture
def victim_key(rdp_proxy, tmp_path):
    """A user with a registered Ed25519 key allowed on an rdp asset:
    (login, paramiko key)."""
    user = rdp_proxy.user_add(password="pw-" + uniq())
    path = keygen(tmp_path / ("k" + uniq()))
    rdp_proxy.key_add(user, str(path) + ".pub")
    asset_id = rdp_asset(rdp_proxy)
    rdp_proxy.allow(user, asset_id)
    return "%s#%s" % (user, asset_id), \
        paramiko.Ed25519Key(filename=str(path))


def test_rdp_child_requests_are_answered(rdp_hostile, rdp_victim):
    """The positive control: a child of the RDP spawner, impersonated,
    gets its NTLM key question answered, logs in and is given its RDP
    session, so the refusals below refuse only the other kind's
    requests."""
    login, password = rdp_victim
    h = rdp_hostile()
    req, key = ntlm_request(login, password)
    mtype, payload = h.call(RDP_NTLM, req)
    assert mtype == RDP_NTLM_REPLY and payload[0] == 1, payload
    assert get_str(payload, 1 + 4 + len(get_str(payload, 1)[0]))[0] == key
    assert verdict(h.password(login, password)) == AUTH_OK
    mtype, payload = h.call(AUTHORIZE, u8(KIND_RDP) + s_str(""))
    assert mtype == AUTHORIZE_REPLY and payload[0] == 1, payload


def test_rdp_child_without_the_password_gets_no_ntlm_key(rdp_hostile,
                                                        rdp_proxy,
                                                        rdp_victim):
    """The NTLM key (NTOWFv2, attackable offline at MD4 speed) goes only
    to a child whose client proved the password: a compromised child
    that names a user and sends a response made without her password,
    or the old request with none, gets no key; the first is a wrong
    password counted at once (the report row says so), the second ends
    the child. The same user's real password is then still accepted."""
    login, password = rdp_victim
    h = rdp_hostile()
    req, key = ntlm_request(login, "not-" + password)
    mtype, payload = h.call(RDP_NTLM, req)
    assert mtype == RDP_NTLM_REPLY and payload[0] == 0, payload
    why, off = get_str(payload, 1)
    assert why == b"authentication failed", payload
    assert get_str(payload, off)[0] == b"", payload
    h.close()
    row = rdp_proxy.wait_session(
        lambda r: r.get("user") == login.split("#")[0])
    assert row["result"] == "denied: authentication failed", row
    h = rdp_hostile()
    h.send(RDP_NTLM, s_str(login) + s_str(""))
    h.expect_killed_unanswered()
    h = rdp_hostile()
    req, key = ntlm_request(login, password)
    mtype, payload = h.call(RDP_NTLM, req)
    assert mtype == RDP_NTLM_REPLY and payload[0] == 1, payload


def test_rdp_child_asking_for_a_host_key_signature_is_killed(rdp_hostile):
    """The SSH host key signs for SSH children only: an RDP child has no
    key exchange, and a signature over bytes it chose is an oracle."""
    h = rdp_hostile()
    h.send(KEX_SIGN, s_str("ssh-ed25519") + u8(0) + s_str(os.urandom(32)))
    h.expect_killed_unanswered()


def test_rdp_child_probing_a_public_key_is_killed(rdp_hostile, victim_key):
    login, key = victim_key
    h = rdp_hostile()
    h.send(AUTH_PUBKEY, s_str(login) + u8(0) + s_str(key.asbytes()))
    h.expect_killed_unanswered()


def test_rdp_child_answering_totp_is_killed(rdp_hostile, rdp_proxy,
                                            rdp_victim):
    """An RDP login's TOTP code comes in the user name; a partial login
    gives an RDP child no second question to answer."""
    login, password = rdp_victim
    secret = rdp_proxy.totp_enable(login.split("#")[0])
    h = rdp_hostile()
    assert verdict(h.password(login, password)) == AUTH_PARTIAL
    h.send(AUTH_TOTP, s_str(fresh_totp_code(secret)))
    h.expect_killed_unanswered()


@pytest.mark.parametrize("kind", [
    KIND_SHELL, KIND_EXEC, KIND_SFTP, KIND_SCP, KIND_LOCAL_FORWARD,
    KIND_REMOTE_FORWARD, KIND_AGENT_FORWARD, KIND_X11])
def test_rdp_child_authorizing_an_ssh_channel_is_killed(rdp_hostile,
                                                        rdp_proxy,
                                                        rdp_victim, kind):
    login, password = rdp_victim
    h = rdp_hostile()
    assert verdict(h.password(login, password)) == AUTH_OK
    detail = "scp -f /etc/hostname" if kind == KIND_SCP else "id"
    h.send(AUTHORIZE, u8(kind) + s_str(detail))
    h.expect_killed_unanswered()
    user = login.split("#")[0]
    assert not any(r.get("user") == user for r in rdp_proxy.sessions())


def _recorded_login(pc, asset_id, native="record"):
    password = "pw-" + uniq()
    user = pc.user_add(password=password)
    pc.allow(user, asset_id, native=native)
    return "%s#%s" % (user, asset_id), password


@pytest.mark.parametrize("case", ["another childs row", "rdp format",
                                  "second open", "unrecorded row"])
def test_record_open_is_held_to_the_childs_own_recorded_row(hostile, proxy,
                                                            target, case):
    """A recording file is handed to the child whose recorded session it
    is, once, in its own kind's format: a child cannot get a file for
    another child's session (to write a forged recording in it), a second
    descriptor for its own, an RDP recording, or a file for a session
    that policy does not record."""
    asset_id = proxy.target_asset(target)
    login, password = _recorded_login(
        proxy, asset_id, native="allow" if case == "unrecorded row"
        else "record")
    a = hostile()
    a.kex_sign()
    assert verdict(a.password(login, password)) == AUTH_OK
    mtype, payload = a.call(AUTHORIZE, u8(KIND_EXEC) + s_str("id"))
    assert mtype == AUTHORIZE_REPLY and payload[0] == 1, payload
    row, _ = get_str(payload, 1)
    if case == "another childs row":
        b = hostile()
        b.kex_sign()
        assert verdict(b.password(login, password)) == AUTH_OK
        b.send(RECORD_OPEN, s_str(row) + u8(0))
        b.expect_killed()
        assert a.alive()
        # a's own request is still answered: b took nothing from it
        mtype, payload = a.call(RECORD_OPEN, s_str(row) + u8(0))
        assert mtype == RECORD_OPEN_REPLY and payload[0] == 1, payload
        return
    if case == "second open":
        mtype, payload = a.call(RECORD_OPEN, s_str(row) + u8(0))
        assert mtype == RECORD_OPEN_REPLY and payload[0] == 1, payload
    a.send(RECORD_OPEN, s_str(row) + u8(2 if case == "rdp format" else 0))
    a.expect_killed()


def test_rdp_child_opening_an_ssh_recording_is_killed(rdp_hostile,
                                                      rdp_proxy):
    login, password = _recorded_login(rdp_proxy, rdp_asset(rdp_proxy))
    h = rdp_hostile()
    assert verdict(h.password(login, password)) == AUTH_OK
    mtype, payload = h.call(AUTHORIZE, u8(KIND_RDP) + s_str(""))
    assert mtype == AUTHORIZE_REPLY and payload[0] == 1, payload
    row, _ = get_str(payload, 1)
    for fmt in (0, 1):
        # never answered: asciicast or JSON lines are an SSH child's
        h2 = rdp_hostile() if fmt else h
        if fmt:
            assert verdict(h2.password(login, password)) == AUTH_OK
            mtype, payload = h2.call(AUTHORIZE, u8(KIND_RDP) + s_str(""))
            assert payload[0] == 1, payload
            row, _ = get_str(payload, 1)
        h2.send(RECORD_OPEN, s_str(row) + u8(fmt))
        h2.expect_killed()
