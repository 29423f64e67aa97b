"""Every SSH client stack in common use connects with the defaults (SPEC
section 11, issue 12): OpenSSH forced to each cipher, MAC, key exchange and
host key type in turn; paramiko; Dropbear's dbclient; PuTTY's plink, pscp
and psftp; asyncssh; Go's x/crypto/ssh (rclone's sftp backend); sshfs (a FUSE
mount over sftp); lftp's own sftp client; rsync and git over ssh; libssh2
(curl's scp:// and sftp://, which only move files; libgit2 through pygit2).
Each runs a command (output and exit status checked) and moves a file
both ways (content checked) through the proxy to a real sshd. The login always carries the '#' of `user#asset`; each client has
its own way of taking such a user name.

No client sees a banner by default; `[ssh] banner` sends one; a weak
algorithm is offered only when configured, with a warning at start.

All of these clients are Debian 12 packages (scripts/install-deps); a
missing one is skipped with the package to install.
"""

import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import textwrap
import urllib.parse

import pytest

from pclib import EchoServer, Target, free_port, keygen, make_file, run, \
    sha256_file, uniq, wait_for

KiB = 1 << 10
SIZE = 300 * KiB + 17  # several SSH packets and channel windows, odd size

# Debian 12's OpenSSH 9.2 sshd, as `sshd -T` prints it, minus what libssh
# 0.10 cannot do (UMAC MACs, the sntrup761 key exchange).
CIPHERS = ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com",
           "aes256-gcm@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr"]
MACS = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com",
        "hmac-sha1-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512",
        "hmac-sha1"]
KEX = ["curve25519-sha256", "curve25519-sha256@libssh.org",
       "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
       "diffie-hellman-group-exchange-sha256",
       "diffie-hellman-group16-sha512", "diffie-hellman-group18-sha512",
       "diffie-hellman-group14-sha256"]
HOSTKEYS = {"ssh-ed25519": "ssh_host_ed25519_key",
            "ecdsa-sha2-nistp256": "ssh_host_ecdsa_key",
            "rsa-sha2-512": "ssh_host_rsa_key",
            "rsa-sha2-256": "ssh_host_rsa_key"}

PY = "/usr/bin/python3"  # Debian's interpreter, with python3-paramiko etc.


def need(program, package):
    """Skips the test (naming the Debian package) if program is missing."""
    if shutil.which(program) is None:
        pytest.skip("%s not installed (Debian 12 package %s; "
                    "scripts/install-deps installs it)" % (program, package))


def need_module(module, package):
    r = subprocess.run([PY, "-c", "import " + module], capture_output=True,
                       timeout=60)
    if r.returncode != 0:
        pytest.skip("python module %s not importable by %s (Debian 12 "
                    "package %s)" % (module, PY, package))


def no_banner(err):
    """What a client printed must hold no banner of ours."""
    assert "portcullis" not in err.lower(), err


class Acct:
    """A user with a password, allowed on a root asset of the target; a
    scratch directory on the target's filesystem; the proxy's host keys
    as a known_hosts file."""

    def __init__(self, proxy, target, tmp, pin=True, record=False, flags=()):
        self.proxy, self.target, self.tmp = proxy, target, tmp
        self.password = "pw-" + uniq()
        self.user = proxy.user_add(password=self.password)
        # pin=False: trust the first host key (the target's is not Ed25519)
        self.asset = proxy.target_asset(target, pin=pin)
        proxy.allow(self.user, self.asset, flags=flags,
                    native="record" if record else "allow")
        self.login = "%s#%s" % (self.user, self.asset)
        self.remote_dir = target.files / uniq("c")
        self.remote_dir.mkdir()
        self.known_hosts = proxy.write_known_hosts(tmp / "known_hosts")
        self.port = proxy.ssh_port

    def fingerprints(self):
        """SHA256:... of the proxy's three host keys (init printed them)."""
        info = self.proxy.info
        return [info[k] for k in ("fingerprint", "fingerprint_ecdsa",
                                  "fingerprint_rsa") if k in info]

    def local_file(self, name="up.bin"):
        path = self.tmp / name
        return path, make_file(path, SIZE)

    def remote_file(self, name="down.bin"):
        path = self.remote_dir / name
        return path, make_file(path, SIZE)


@pytest.fixture
def acct(proxy, target, tmp_path):
    return Acct(proxy, target, tmp_path)


def openssh_env(acct):
    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    env.update({"SSH_ASKPASS": os.path.join(os.path.dirname(__file__),
                                            "askpass.sh"),
                "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0",
                "PC_PASSWORD": acct.password, "PC_TOTP": ""})
    return env


def openssh_opts(acct, extra=()):
    """ssh options: the proxy's own host keys as the only known ones
    (checked strictly), password login, the default LogLevel (INFO: a
    banner or a kbd-interactive name would be printed)."""
    return ["-F", "/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=%s" % acct.known_hosts,
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10", "-o", "PubkeyAuthentication=no",
            "-o", "PreferredAuthentications=password,keyboard-interactive",
            "-o", "NumberOfPasswordPrompts=1",
            "-p", str(acct.port)] + list(extra)


def openssh_round(acct, extra):
    """OpenSSH with extra options: a file up (stdin to `cat >`), a file
    down with an exit status; returns the stderr of both."""
    up, up_sum = acct.local_file()
    dest = acct.remote_dir / "up.bin"
    with open(up, "rb") as f:
        r = run(["ssh"] + openssh_opts(acct, extra) +
                ["%s@127.0.0.1" % acct.login, "cat > %s" % dest],
                stdin=f, env=openssh_env(acct))
    assert r.rc == 0, r
    assert sha256_file(dest) == up_sum
    src, src_sum = acct.remote_file()
    down = acct.tmp / "down.bin"
    with open(down, "wb") as f:
        r2 = run(["ssh"] + openssh_opts(acct, extra) +
                 ["%s@127.0.0.1" % acct.login, "cat %s; exit 7" % src],
                 stdout=f, env=openssh_env(acct))
    assert r2.rc == 7, r2
    assert sha256_file(down) == src_sum
    no_banner(r.err + r2.err)
    return r.err + r2.err


# ------------------------------------------------------------ OpenSSH

@pytest.mark.matrix
@pytest.mark.parametrize("cipher", CIPHERS)
def test_openssh_each_cipher(acct, cipher):
    openssh_round(acct, ["-c", cipher])


@pytest.mark.matrix
@pytest.mark.parametrize("mac", MACS)
def test_openssh_each_mac(acct, mac):
    # a MAC is used only with a non-AEAD cipher
    openssh_round(acct, ["-c", "aes128-ctr", "-o", "MACs=%s" % mac])


@pytest.mark.matrix
@pytest.mark.parametrize("kex", KEX)
def test_openssh_each_kex(acct, kex):
    openssh_round(acct, ["-o", "KexAlgorithms=%s" % kex])


@pytest.mark.matrix
@pytest.mark.parametrize("alg", sorted(HOSTKEYS))
def test_openssh_each_host_key(acct, alg):
    """Each host key type is offered, and it is the key init made (the
    known_hosts file holds only those, checked strictly)."""
    openssh_round(acct, ["-o", "HostKeyAlgorithms=%s" % alg])


def test_openssh_scp_sftp_default(acct):
    up, up_sum = acct.local_file()
    env = openssh_env(acct)
    opts = openssh_opts(acct)
    opts[opts.index("-p")] = "-P"  # scp and sftp spell the port -P
    r = run(["scp"] + opts + ["-o", "User=%s" % acct.login, str(up),
                              "127.0.0.1:%s/scp.bin" % acct.remote_dir],
            env=env)
    assert r.rc == 0, r
    assert sha256_file(acct.remote_dir / "scp.bin") == up_sum
    src, src_sum = acct.remote_file()
    # commands on stdin, not -b: batch mode would allow no password
    r2 = run(["sftp"] + opts + ["-o", "User=%s" % acct.login, "127.0.0.1"],
             input="get %s %s\n" % (src, acct.tmp / "sftp.bin"), env=env)
    assert r2.rc == 0, r2
    assert sha256_file(acct.tmp / "sftp.bin") == src_sum
    no_banner(r.err + r2.err)


# ------------------------------------------------------------ paramiko

PARAMIKO = textwrap.dedent("""
    import sys, paramiko
    port, login, pw, fps, up, rdest, rsrc, down = sys.argv[1:9]
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect("127.0.0.1", int(port), username=login, password=pw,
              look_for_keys=False, allow_agent=False, timeout=20)
    key = c.get_transport().get_remote_server_key()
    fp = "SHA256:" + __import__("base64").b64encode(
        __import__("hashlib").sha256(key.asbytes()).digest()).decode().rstrip("=")
    assert fp in fps.split(","), (fp, fps)
    _, out, err = c.exec_command("echo paramiko-$((6*7)); exit 5")
    print(out.read().decode(), end="")
    print("status", out.channel.recv_exit_status())
    sftp = c.open_sftp()
    sftp.put(up, rdest)
    sftp.get(rsrc, down)
    sftp.close()
    t = c.get_transport()
    print("cipher", t.remote_cipher)
    c.close()
    """)


def test_paramiko(acct):
    need_module("paramiko", "python3-paramiko")
    up, up_sum = acct.local_file()
    src, src_sum = acct.remote_file()
    down = acct.tmp / "down.bin"
    r = run([PY, "-c", PARAMIKO, acct.port, acct.login, acct.password,
             ",".join(acct.fingerprints()), up, acct.remote_dir / "pm.bin",
             src, down])
    assert r.rc == 0, r
    assert "paramiko-42\nstatus 5\n" in r.out, r
    assert sha256_file(acct.remote_dir / "pm.bin") == up_sum
    assert sha256_file(down) == src_sum
    no_banner(r.err)


# ------------------------------------------------------------ asyncssh

ASYNCSSH = textwrap.dedent("""
    import asyncio, sys, asyncssh
    port, login, pw, known, up, rdest, rsrc, down = sys.argv[1:9]
    async def main():
        async with asyncssh.connect("127.0.0.1", int(port), username=login,
                                    password=pw, known_hosts=known,
                                    client_keys=None, agent_path=None,
                                    preferred_auth="password") as c:
            r = await c.run("echo asyncssh-$((6*7)); exit 4")
            print(r.stdout, end="")
            print("status", r.exit_status)
            async with c.start_sftp_client() as sftp:
                await sftp.put(up, rdest)
                await sftp.get(rsrc, down)
    asyncio.run(main())
    """)


def test_asyncssh(acct):
    need_module("asyncssh", "python3-asyncssh")
    up, up_sum = acct.local_file()
    src, src_sum = acct.remote_file()
    down = acct.tmp / "down.bin"
    r = run([PY, "-c", ASYNCSSH, acct.port, acct.login, acct.password,
             acct.known_hosts, up, acct.remote_dir / "as.bin", src, down])
    assert r.rc == 0, r
    assert "asyncssh-42\nstatus 4\n" in r.out, r
    assert sha256_file(acct.remote_dir / "as.bin") == up_sum
    assert sha256_file(down) == src_sum
    no_banner(r.err)


# ------------------------------------------------------------ Dropbear

def test_dropbear_dbclient(acct):
    """dbclient takes the user with -l and the password from
    DROPBEAR_PASSWORD; it has no file transfer of its own, so files go
    through `cat` both ways. It reads known_hosts from the passwd home
    (root's, which a test must not write), so -y -y: no host key check."""
    need("dbclient", "dropbear-bin")
    env = dict(os.environ, DROPBEAR_PASSWORD=acct.password)
    env.pop("SSH_AUTH_SOCK", None)
    base = ["dbclient", "-y", "-y", "-p", str(acct.port), "-l", acct.login,
            "127.0.0.1"]
    r = run(base + ["echo dropbear-$((6*7)); exit 6"], env=env)
    assert r.rc == 6, r
    assert r.out == "dropbear-42\n", r
    up, up_sum = acct.local_file()
    with open(up, "rb") as f:
        r2 = run(base + ["cat > %s/db.bin" % acct.remote_dir], stdin=f,
                 env=env)
    assert r2.rc == 0, r2
    assert sha256_file(acct.remote_dir / "db.bin") == up_sum
    src, src_sum = acct.remote_file()
    down = acct.tmp / "down.bin"
    with open(down, "wb") as f:
        r3 = run(base + ["cat %s" % src], stdout=f, env=env)
    assert r3.rc == 0, r3
    assert sha256_file(down) == src_sum
    no_banner(r.err + r2.err + r3.err)


def test_dropbear_dbclient_agent_and_remote_forward(proxy, target,
                                                    tmp_path):
    """Dropbear's client's `-A` and `-R` through the proxy, as PuTTY's
    below."""
    need("dbclient", "dropbear-bin")
    from test_forwarding import agent
    acct = Acct(proxy, target, tmp_path,
                flags=("--agent-forward", "--remote-forward"))
    sock, pid, blob = agent(tmp_path)
    echo, rport = EchoServer(), free_port()
    env = dict(os.environ, DROPBEAR_PASSWORD=acct.password,
               SSH_AUTH_SOCK=sock)
    try:
        r = run(["dbclient", "-y", "-y", "-A", "-p", str(acct.port),
                 "-R", "127.0.0.1:%d:127.0.0.1:%d" % (rport, echo.port),
                 "-l", acct.login, "127.0.0.1",
                 "ssh-add -L; exec 3<>/dev/tcp/127.0.0.1/%d;"
                 " echo hello >&3; read -r line <&3; echo got=$line" % rport],
                env=env)
    finally:
        os.kill(pid, signal.SIGTERM)
        echo.close()
    assert r.rc == 0, r
    assert blob in r.out and "got=hello" in r.out, r


def test_dropbear_gets_an_exit_status_that_follows_the_eof(acct):
    """dbclient closes its side as soon as it has an EOF and its output is
    written; an exit status the target sends after its EOF came too late
    and dbclient exited 0 (seen on a loaded machine). The target here
    closes its output, then exits 6 half a second later: the relay holds
    the EOF until the exit status is known (relay.c, RELAY_EOF_HOLD_MS)."""
    need("dbclient", "dropbear-bin")
    env = dict(os.environ, DROPBEAR_PASSWORD=acct.password)
    env.pop("SSH_AUTH_SOCK", None)
    r = run(["dbclient", "-y", "-y", "-p", str(acct.port), "-l", acct.login,
             "127.0.0.1", "echo early; exec >&- 2>&-; sleep 0.5; exit 6"],
            env=env)
    assert r.out == "early\n", r
    assert r.rc == 6, r


# ------------------------------------------------------------ PuTTY

def putty_hostkeys(acct):
    out = []
    for fp in acct.fingerprints():
        out += ["-hostkey", fp]
    return out


def test_putty_plink(acct):
    need("plink", "putty-tools")
    r = run(["plink", "-ssh", "-batch", "-P", str(acct.port), "-l",
             acct.login, "-pw", acct.password] + putty_hostkeys(acct) +
            ["127.0.0.1", "echo plink-$((6*7)); exit 3"])
    assert r.rc == 3, r
    assert r.out == "plink-42\n", r
    no_banner(r.err)


def test_putty_plink_agent_and_remote_forward(proxy, target, tmp_path):
    """PuTTY's own implementation of `-A` and `-R` through the proxy: the
    target lists the agent's key and reaches the client's echo server
    through the forwarded port."""
    need("plink", "putty-tools")
    from test_forwarding import agent
    acct = Acct(proxy, target, tmp_path,
                flags=("--agent-forward", "--remote-forward"))
    sock, pid, blob = agent(tmp_path)
    echo, rport = EchoServer(), free_port()
    try:
        r = run(["plink", "-ssh", "-batch", "-A", "-P", str(acct.port),
                 "-R", "127.0.0.1:%d:127.0.0.1:%d" % (rport, echo.port),
                 "-l", acct.login, "-pw", acct.password] +
                putty_hostkeys(acct) +
                ["127.0.0.1",
                 "ssh-add -L; exec 3<>/dev/tcp/127.0.0.1/%d;"
                 " echo hello >&3; read -r line <&3; echo got=$line" % rport],
                env=dict(os.environ, SSH_AUTH_SOCK=sock))
    finally:
        os.kill(pid, signal.SIGTERM)
        echo.close()
    assert r.rc == 0, r
    assert blob in r.out and "got=hello" in r.out, r


def test_putty_pscp_psftp(acct):
    need("pscp", "putty-tools")
    need("psftp", "putty-tools")
    common = ["-batch", "-P", str(acct.port), "-l", acct.login,
              "-pw", acct.password] + putty_hostkeys(acct)
    up, up_sum = acct.local_file()
    # pscp up in both protocols: SFTP (its default) and legacy SCP
    for proto, name in (("-sftp", "pscp-sftp.bin"), ("-scp", "pscp-scp.bin")):
        r = run(["pscp", proto] + common +
                [str(up), "127.0.0.1:%s/%s" % (acct.remote_dir, name)])
        assert r.rc == 0, r
        assert sha256_file(acct.remote_dir / name) == up_sum
        no_banner(r.err)
    src, src_sum = acct.remote_file()
    down = acct.tmp / "pscp-down.bin"
    r = run(["pscp"] + common + ["127.0.0.1:%s" % src, str(down)])
    assert r.rc == 0, r
    assert sha256_file(down) == src_sum
    # psftp: a batch file, both ways
    down2 = acct.tmp / "psftp-down.bin"
    batch = acct.tmp / "psftp.batch"
    batch.write_text("put %s %s/psftp.bin\nget %s %s\n" % (
        up, acct.remote_dir, src, down2))
    r = run(["psftp"] + common + ["-b", str(batch), "127.0.0.1"])
    assert r.rc == 0, r
    assert sha256_file(acct.remote_dir / "psftp.bin") == up_sum
    assert sha256_file(down2) == src_sum
    no_banner(r.err)


# ------------------------------------------------- Go (rclone's sftp)

def test_go_rclone_sftp(acct):
    """Go's golang.org/x/crypto/ssh through rclone's sftp backend: a
    listing, a file each way, and `md5sum` run on the target over an exec
    channel (rclone's hash command)."""
    need("rclone", "rclone")
    obscured = run(["rclone", "obscure", acct.password])
    assert obscured.rc == 0, obscured
    conf = acct.tmp / "rclone.conf"
    conf.write_text(textwrap.dedent("""\
        [pc]
        type = sftp
        host = 127.0.0.1
        port = %d
        user = %s
        pass = %s
        known_hosts_file = %s
        shell_type = unix
        md5sum_command = md5sum
        sha1sum_command = sha1sum
        """ % (acct.port, acct.login, obscured.out.strip(),
               acct.known_hosts)))
    rc = ["rclone", "--config", str(conf), "--retries", "1",
          "--low-level-retries", "1"]
    up, up_sum = acct.local_file()
    r = run(rc + ["copyto", str(up), "pc:%s/rc.bin" % acct.remote_dir])
    assert r.rc == 0, r
    assert sha256_file(acct.remote_dir / "rc.bin") == up_sum
    src, src_sum = acct.remote_file()
    down = acct.tmp / "rc-down.bin"
    r = run(rc + ["copyto", "pc:%s" % src, str(down)])
    assert r.rc == 0, r
    assert sha256_file(down) == src_sum
    r = run(rc + ["lsf", "pc:%s" % acct.remote_dir])
    assert r.rc == 0, r
    assert sorted(r.out.split()) == ["down.bin", "rc.bin"], r
    r = run(rc + ["md5sum", "pc:%s" % acct.remote_dir])
    assert r.rc == 0, r
    want = hashlib.md5(up.read_bytes()).hexdigest()
    assert "%s  rc.bin" % want in r.out, r
    no_banner(r.err)


# ---------------------------------------------- sshfs (FUSE over SFTP)

def test_sshfs_mount(acct):
    """sshfs mounts the asset's directory through the proxy (OpenSSH's ssh
    under it, the sftp subsystem with many requests in flight): a file
    written through the mount reaches the target, one made on the target
    is read through it, a rename and a listing, and the unmount ends the
    session cleanly."""
    need("sshfs", "sshfs")
    fusermount = shutil.which("fusermount3") or shutil.which("fusermount")
    if not os.path.exists("/dev/fuse") or fusermount is None:
        pytest.skip("no FUSE here (/dev/fuse and fusermount3, Debian 12 "
                    "package fuse3)")
    key = keygen(acct.tmp / "id_sshfs", "sshfs")
    acct.proxy.key_add(acct.user, str(key) + ".pub")
    mnt = acct.tmp / "mnt"
    mnt.mkdir()
    opts = ["-p", str(acct.port), "-o", "IdentityFile=%s" % key,
            "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no",
            "-o", "UserKnownHostsFile=%s" % acct.known_hosts,
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
            "-F", "/dev/null"]
    r = run(["sshfs"] + opts + ["%s@127.0.0.1:%s" % (acct.login,
                                                      acct.remote_dir),
                                str(mnt)])
    assert r.rc == 0, r
    try:
        up, up_sum = acct.local_file()
        shutil.copyfile(up, mnt / "up.bin")
        assert sha256_file(acct.remote_dir / "up.bin") == up_sum
        src, src_sum = acct.remote_file()
        assert sha256_file(mnt / src.name) == src_sum
        os.rename(mnt / "up.bin", mnt / "moved.bin")
        assert sorted(os.listdir(mnt)) == ["down.bin", "moved.bin"]
        assert (acct.remote_dir / "moved.bin").exists()
    finally:
        u = run([fusermount, "-u", str(mnt)])
    assert u.rc == 0, u
    no_banner(r.err)
    row = acct.proxy.wait_session(
        lambda x: x.get("user") == acct.user and x.get("kind") == "sftp",
        what="the sshfs session's row")
    assert row["result"].startswith("ok"), row
    assert row["bytes_up"] >= SIZE and row["bytes_down"] >= SIZE, row


# ------------------------------------------------ lftp (its own sftp)

def test_lftp_sftp(acct):
    """lftp's sftp:// (OpenSSH's ssh as transport, lftp's own SFTP
    client): a file each way and a listing."""
    need("lftp", "lftp")
    up, up_sum = acct.local_file()
    src, src_sum = acct.remote_file()
    down = acct.tmp / "lftp-down.bin"
    connect = "ssh -a -x " + " ".join(
        openssh_opts(acct)[:-2] + ["-p", str(acct.port)])
    script = "\n".join([
        "set sftp:connect-program \"%s\"" % connect,
        "set net:max-retries 1",
        "open -u '%s,%s' sftp://127.0.0.1" % (acct.login, acct.password),
        "put %s -o %s/lftp.bin" % (up, acct.remote_dir),
        "get %s -o %s" % (src, down),
        "cls -1 %s/" % acct.remote_dir,
        "bye", ""])
    r = run(["lftp", "-f", "/dev/stdin"], input=script,
            env=openssh_env(acct))
    assert r.rc == 0, r
    assert sha256_file(acct.remote_dir / "lftp.bin") == up_sum
    assert sha256_file(down) == src_sum
    assert "lftp.bin" in r.out and "down.bin" in r.out, r
    no_banner(r.err)


# ------------------------------------------------ rsync and git over ssh

def ssh_command(acct):
    """The `ssh ...` command line rsync -e and GIT_SSH_COMMAND run."""
    return " ".join(["ssh"] + openssh_opts(acct))


def test_rsync_over_ssh(acct):
    need("rsync", "rsync")
    env = openssh_env(acct)
    up, up_sum = acct.local_file()
    dest = "%s@127.0.0.1:%s/rsync.bin" % (acct.login, acct.remote_dir)
    r = run(["rsync", "-e", ssh_command(acct), str(up), dest], env=env)
    assert r.rc == 0, r
    assert sha256_file(acct.remote_dir / "rsync.bin") == up_sum
    src, src_sum = acct.remote_file()
    down = acct.tmp / "rsync-down.bin"
    r2 = run(["rsync", "-e", ssh_command(acct),
              "%s@127.0.0.1:%s" % (acct.login, src), str(down)], env=env)
    assert r2.rc == 0, r2
    assert sha256_file(down) == src_sum
    no_banner(r.err + r2.err)


def test_git_over_ssh(acct):
    need("git", "git")
    bare = acct.remote_dir / "repo.git"
    r = run(["git", "init", "-q", "--bare", "-b", "main", str(bare)])
    assert r.rc == 0, r
    env = openssh_env(acct)
    env.update({"GIT_SSH_COMMAND": ssh_command(acct),
                "GIT_AUTHOR_NAME": "e2e", "GIT_AUTHOR_EMAIL": "e2e@test",
                "GIT_COMMITTER_NAME": "e2e", "GIT_COMMITTER_EMAIL": "e2e@test",
                "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(acct.tmp)})
    url = "%s@127.0.0.1:%s" % (acct.login, bare)
    work = acct.tmp / "work"
    r = run(["git", "clone", "-q", url, str(work)], env=env)
    assert r.rc == 0, r
    (work / "hello.txt").write_text("through the proxy\n")
    for args in (["add", "hello.txt"], ["commit", "-q", "-m", "first"],
                 ["push", "-q", "origin", "HEAD:main"]):
        r = run(["git", "-C", str(work)] + args, env=env)
        assert r.rc == 0, r
        no_banner(r.err)
    # on the target: the pushed commit
    r = run(["git", "--git-dir", str(bare), "show", "main:hello.txt"])
    assert r.out == "through the proxy\n", r
    # and a second clone gets it back
    r = run(["git", "clone", "-q", url, str(acct.tmp / "again")], env=env)
    assert r.rc == 0, r
    assert (acct.tmp / "again" / "hello.txt").read_text() == \
        "through the proxy\n"


# ------------------------------------------------- libgit2 (pygit2) over ssh

def test_libgit2_over_ssh(acct):
    """libgit2 (SPEC section 11; pygit2 here, the library under many IDEs
    and tools), on libssh2: clone, commit, push and clone again through
    the proxy with the login and password from its credentials callback;
    the proxy's host key checked against known_hosts, and a wrong password
    refused."""
    pygit2 = pytest.importorskip(
        "pygit2", reason="python3-pygit2 not installed (Debian 12 package "
        "python3-pygit2; scripts/install-deps installs it)")
    if not pygit2.features & pygit2.GIT_FEATURE_SSH:
        pytest.skip("this libgit2 is built without SSH (Debian 12's has it)")
    bare = acct.remote_dir / "lg2.git"
    r = run(["git", "init", "-q", "--bare", "-b", "main", str(bare)])
    assert r.rc == 0, r
    # libgit2 reads ~/.ssh/known_hosts: a HOME holding the proxy's keys
    home = acct.tmp / "lg2home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(acct.known_hosts.read_text())
    old_home = os.environ.get("HOME")
    level = pygit2.GIT_CONFIG_LEVEL_GLOBAL
    old_search = pygit2.settings.search_path[level]
    os.environ["HOME"] = str(home)
    pygit2.settings.search_path[level] = str(home)
    seen = []

    class Callbacks(pygit2.RemoteCallbacks):
        def __init__(self, password):
            super().__init__()
            self.password = password

        def credentials(self, url, username_from_url, allowed_types):
            assert allowed_types & pygit2.GIT_CREDENTIAL_USERPASS_PLAINTEXT
            assert username_from_url == acct.login, username_from_url
            return pygit2.UserPass(username_from_url, self.password)

        def certificate_check(self, certificate, valid, host):
            seen.append(valid)
            return valid

    # the login in the URL, percent-encoded ('#'): libgit2 wants the
    # credential's user name to be the URL's
    url = "ssh://%s@127.0.0.1:%d%s" % (urllib.parse.quote(acct.login, safe=""),
                                       acct.port, bare)
    try:
        work = pygit2.clone_repository(url, str(acct.tmp / "lg2work"),
                                       callbacks=Callbacks(acct.password))
        (acct.tmp / "lg2work" / "hello.txt").write_text("libgit2 here\n")
        work.index.add("hello.txt")
        work.index.write()
        sig = pygit2.Signature("e2e", "e2e@test")
        work.create_commit("refs/heads/main", sig, sig, "first",
                           work.index.write_tree(), [])
        work.remotes["origin"].push(["refs/heads/main:refs/heads/main"],
                                    callbacks=Callbacks(acct.password))
        r = run(["git", "--git-dir", str(bare), "show", "main:hello.txt"])
        assert r.out == "libgit2 here\n", r
        again = pygit2.clone_repository(url, str(acct.tmp / "lg2again"),
                                        callbacks=Callbacks(acct.password))
        assert again.revparse_single("HEAD:hello.txt").data == \
            b"libgit2 here\n"
        assert seen and all(seen), seen  # the host key was known each time
        with pytest.raises(pygit2.GitError):
            pygit2.clone_repository(url, str(acct.tmp / "lg2refused"),
                                    callbacks=Callbacks("not-" +
                                                        acct.password))
    finally:
        pygit2.settings.search_path[level] = old_search
        if old_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old_home


# ------------------------------------------- libssh2 (curl scp:// sftp://)

def curl_libssh2(acct):
    """Debian's curl, built on libssh2 1.10: skipped if it is not."""
    need("curl", "curl")
    r = run(["curl", "-V"])
    if "libssh2" not in r.out or "scp" not in r.out.split("Protocols:")[-1]:
        pytest.skip("this curl is not built with libssh2 (Debian 12's is)")
    # curl checks the host key against ~/.ssh/known_hosts (its default):
    # a HOME of our own holding the proxy's keys
    home = acct.tmp / "curlhome"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    shutil.copy(acct.known_hosts, home / ".ssh" / "known_hosts")
    env = dict(os.environ)
    env["HOME"] = str(home)
    return env


def curl_round(acct, env, auth, tag):
    """curl up and down by scp:// and sftp://, with auth (curl options);
    file contents checked at both ends."""
    base = ["curl", "-sS", "--connect-timeout", "10"] + auth
    up, up_sum = acct.local_file()
    src, src_sum = acct.remote_file("%s-src.bin" % tag)
    errs = ""
    for proto in ("scp", "sftp"):
        name = "%s-%s.bin" % (tag, proto)
        url = "%s://127.0.0.1:%d%s/%s" % (proto, acct.port, acct.remote_dir,
                                          name)
        r = run(base + ["-T", str(up), url], env=env)
        assert r.rc == 0, r
        assert sha256_file(acct.remote_dir / name) == up_sum
        down = acct.tmp / ("down-" + name)
        url = "%s://127.0.0.1:%d%s" % (proto, acct.port, src)
        r2 = run(base + ["-o", str(down), url], env=env)
        assert r2.rc == 0, r2
        assert sha256_file(down) == src_sum
        errs += r.err + r2.err
    no_banner(errs)


def test_curl_libssh2_password(acct):
    """libssh2 (curl's SSH backend, also PHP's ssh2, libgit2's, many
    appliances'): scp:// and sftp://, each way, password login with the
    defaults."""
    env = curl_libssh2(acct)
    curl_round(acct, env, ["-u", "%s:%s" % (acct.login, acct.password)],
               "pw")
    # a wrong password is refused, and nothing is written
    r = run(["curl", "-sS", "--connect-timeout", "10", "-u",
             "%s:%s" % (acct.login, "not-" + acct.password), "-T",
             str(acct.local_file("x.bin")[0]),
             "scp://127.0.0.1:%d%s/refused.bin" % (acct.port,
                                                   acct.remote_dir)],
            env=env)
    assert r.rc == 67, r  # CURLE_LOGIN_DENIED
    assert not (acct.remote_dir / "refused.bin").exists()
    # the host key really is checked: other keys for the proxy's address
    keygen(acct.tmp / "not_the_proxy")
    pub = (acct.tmp / "not_the_proxy.pub").read_text().split()
    (acct.tmp / "curlhome" / ".ssh" / "known_hosts").write_text(
        "[127.0.0.1]:%d %s %s\n" % (acct.port, pub[0], pub[1]))
    r = run(["curl", "-sS", "--connect-timeout", "10", "-u",
             "%s:%s" % (acct.login, acct.password), "-o",
             str(acct.tmp / "never.bin"),
             "sftp://127.0.0.1:%d%s/pw-src.bin" % (acct.port,
                                                   acct.remote_dir)],
            env=env)
    assert r.rc == 60, r  # CURLE_PEER_FAILED_VERIFICATION
    assert not (acct.tmp / "never.bin").exists()


def test_curl_libssh2_key(acct):
    """libssh2 with a user key (--key/--pubkey): Ed25519 in OpenSSH's
    format, as ssh-keygen writes it."""
    env = curl_libssh2(acct)
    key = keygen(acct.tmp / "curl_key")
    acct.proxy.key_add(acct.user, str(key) + ".pub")
    curl_round(acct, env, ["-u", acct.login + ":", "--key", str(key),
                           "--pubkey", str(key) + ".pub"], "key")


# ------------------------------------------------ banner and weak algorithms

def test_no_banner_by_default_kbd_interactive(acct):
    """keyboard-interactive carried the name "Portcullis", which OpenSSH
    prints to stderr on every login; now nothing."""
    env = openssh_env(acct)
    opts = openssh_opts(acct)
    i = opts.index("PreferredAuthentications=password,keyboard-interactive")
    opts[i] = "PreferredAuthentications=keyboard-interactive"
    r = run(["ssh"] + opts + ["%s@127.0.0.1" % acct.login, "echo kbd-ok"],
            env=env)
    assert r.rc == 0, r
    assert r.out == "kbd-ok\n"
    assert r.err == "", r


def server_with(pc, target, **ssh):
    for key, value in ssh.items():
        pc.set_config("ssh", key, value)
    pc.start()
    return pc


def acct_on(pc, target, tmp_path):
    return Acct(pc, target, tmp_path)


def test_other_clients_are_told_why_portcullis_ended_the_session(
        pc, target, tmp_path):
    """A session Portcullis ends (here: its recording reached [record]
    ssh_max_mb) says why on the channel's stderr with a failing exit
    status; PuTTY's plink and Dropbear's dbclient print it as OpenSSH
    does, and exit non-zero instead of looking like a clean end."""
    pc.set_config("record", "ssh_max_mb", "1")
    pc.start()
    acct = Acct(pc, target, tmp_path, record=True)
    cmd = "head -c 4000000 /dev/urandom | base64"
    why = "the session recording reached its size limit ([record] " \
        "ssh_max_mb); the session has ended"
    tried = 0
    if shutil.which("plink"):
        r = run(["plink", "-ssh", "-batch", "-P", str(acct.port), "-l",
                 acct.login, "-pw", acct.password] + putty_hostkeys(acct) +
                ["127.0.0.1", cmd])
        assert r.rc != 0 and why in r.err, (r.rc, r.err)
        assert 512 * KiB < len(r.out) < 1024 * KiB + 65536, len(r.out)
        tried += 1
    if shutil.which("dbclient"):
        env = dict(os.environ, DROPBEAR_PASSWORD=acct.password)
        env.pop("SSH_AUTH_SOCK", None)
        r = run(["dbclient", "-y", "-y", "-p", str(acct.port), "-l",
                 acct.login, "127.0.0.1", cmd], env=env)
        assert r.rc != 0 and why in r.err, (r.rc, r.err)
        assert 512 * KiB < len(r.out) < 1024 * KiB + 65536, len(r.out)
        tried += 1
    if not tried:
        pytest.skip("neither plink (putty-tools) nor dbclient "
                    "(dropbear-bin) installed")
    # (a row is closed when the server hears the session's end, which may
    # come after the client's exit)
    def closed():
        rows = [x for x in pc.sessions()
                if x.get("user") == acct.user and x.get("result")]
        return rows if len(rows) >= tried else None
    rows = wait_for(closed, timeout=20, what="the clients' rows closed")
    assert len(rows) == tried and all(
        "recording reached its size limit" in x["result"] for x in rows), rows


def test_banner_when_configured(pc, target, tmp_path):
    server_with(pc, target, banner="Authorized use only; sessions recorded")
    acct = acct_on(pc, target, tmp_path)
    r = run(["ssh"] + openssh_opts(acct) +
            ["%s@127.0.0.1" % acct.login, "echo ok"], env=openssh_env(acct))
    assert r.rc == 0, r
    assert r.out == "ok\n"
    assert r.err == "Authorized use only; sessions recorded\n", r


def test_weak_cipher_only_when_configured(proxy, pc, target, tmp_path):
    # the default proxy refuses CBC
    (tmp_path / "d").mkdir()
    default = Acct(proxy, target, tmp_path / "d")
    r = run(["ssh"] + openssh_opts(default, ["-c", "aes128-cbc"]) +
            ["%s@127.0.0.1" % default.login, "true"],
            env=openssh_env(default))
    assert r.rc == 255, r
    assert "no matching cipher found" in r.err, r
    assert "weak SSH algorithms" not in proxy.log_text()
    # an operator adds it: a warning at start, and CBC clients connect
    server_with(pc, target, client_ciphers=",".join(CIPHERS + ["aes128-cbc"]),
                upstream_kex="curve25519-sha256,diffie-hellman-group14-sha1")
    log = pc.log_text()
    assert "weak SSH algorithms enabled" in log, log
    assert "aes128-cbc ([ssh] client_ciphers)" in log, log
    assert "diffie-hellman-group14-sha1 ([ssh] upstream_kex)" in log, log
    acct = acct_on(pc, target, tmp_path)
    openssh_round(acct, ["-c", "aes128-cbc"])


def kexinit_offering(cipher):
    """An unencrypted SSH_MSG_KEXINIT packet (RFC 4253 section 7.1)
    offering only `cipher` both ways."""
    def string(b):
        return struct.pack(">I", len(b)) + b
    lists = [b"curve25519-sha256", b"ssh-ed25519", cipher, cipher,
             b"hmac-sha2-256", b"hmac-sha2-256", b"none", b"none", b"", b""]
    payload = (bytes([20]) + os.urandom(16) +
               b"".join(string(x) for x in lists) + b"\0" + b"\0" * 4)
    pad = 8 - (5 + len(payload)) % 8
    pad += 8 if pad < 4 else 0
    return (struct.pack(">IB", 1 + len(payload) + pad, pad) + payload +
            b"\0" * pad)


def test_kex_failure_still_sends_our_kexinit(proxy):
    """A client whose KEXINIT arrives in the same read as its
    identification string (one that sends both at once, or OpenSSH when
    the session child was scheduled late: CI, under load) offers nothing
    we take. libssh judged it before our identification and KEXINIT had
    left (it writes only after POLLOUT and handles POLLIN first) and
    closed the socket with them queued: OpenSSH users saw "Connection
    closed by ..." instead of "no matching cipher found". Every such
    client must read our identification and KEXINIT before the close."""
    bad = []
    for i in range(20):
        with socket.create_connection(("127.0.0.1", proxy.ssh_port),
                                      timeout=10) as c:
            c.sendall(b"SSH-2.0-kextest\r\n" + kexinit_offering(b"aes128-cbc"))
            got = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                got += d
        ident, _, rest = got.partition(b"\r\n")
        if not ident.startswith(b"SSH-2.0-") or len(rest) < 6 or rest[5] != 20:
            bad.append(got[:64])
    assert not bad, "%d of 20 closed without our KEXINIT: %r" % (len(bad),
                                                                bad[:3])


def test_unknown_algorithm_refused(pc):
    pc.set_config("ssh", "client_ciphers", "aes128-ctr,aes128-gcm")
    rc, out, err = pc.cli("user", "list", check=False)
    assert rc != 0
    assert "[ssh] client_ciphers: unknown cipher 'aes128-gcm'" in err, err
    pc.set_config("ssh", "client_ciphers", "aes128-ctr")
    pc.set_config("ssh", "upstream_kex", "")
    rc, out, err = pc.cli("user", "list", check=False)
    assert rc != 0
    assert "[ssh] upstream_kex needs at least one key exchange" in err, err


# ------------------------------------------------ host keys of old data dirs

def test_old_data_dir_gets_missing_host_keys(pc, target, tmp_path):
    """A data directory from before ECDSA and RSA keys: serve makes them
    (0600, as sshd-keygen does) and offers all three; the Ed25519 key, the
    one agents pin, is unchanged."""
    ed = (pc.dir / "ssh_host_ed25519_key").read_bytes()
    for name in ("ssh_host_ecdsa_key", "ssh_host_rsa_key"):
        (pc.dir / name).unlink()
        (pc.dir / (name + ".pub")).unlink()
    text = pc.conf.read_text()
    pc.conf.write_text("\n".join(l for l in text.splitlines()
                                 if not l.startswith(("host_key_ecdsa",
                                                      "host_key_rsa"))) + "\n")
    pc.start()
    log = pc.log_text()
    assert "made the missing ecdsa host key" in log, log
    assert "made the missing rsa host key" in log, log
    for name in ("ssh_host_ecdsa_key", "ssh_host_rsa_key"):
        assert (pc.dir / name).stat().st_mode & 0o777 == 0o600
    assert (pc.dir / "ssh_host_ed25519_key").read_bytes() == ed
    acct = acct_on(pc, target, tmp_path)  # known_hosts: the new .pub files
    for alg in ("ecdsa-sha2-nistp256", "rsa-sha2-512", "ssh-ed25519"):
        r = run(["ssh"] + openssh_opts(acct, ["-o",
                                              "HostKeyAlgorithms=" + alg]) +
                ["%s@127.0.0.1" % acct.login, "echo hk-ok"],
                env=openssh_env(acct))
        assert r.rc == 0 and r.out == "hk-ok\n", r


def test_host_key_that_cannot_be_made(pc, target, tmp_path):
    """No RSA key and nowhere to make one: serve says so and offers the
    others."""
    pc.set_config("ssh", "host_key_rsa", "/proc/no-such-dir/ssh_host_rsa_key")
    pc.start()
    log = pc.log_text()
    assert "no rsa host key: /proc/no-such-dir/ssh_host_rsa_key is missing " \
        "and cannot be made" in log, log
    acct = acct_on(pc, target, tmp_path)
    r = run(["ssh"] + openssh_opts(acct, ["-o",
                                          "HostKeyAlgorithms=rsa-sha2-256"]) +
            ["%s@127.0.0.1" % acct.login, "true"], env=openssh_env(acct))
    assert r.rc == 255 and "no matching host key type" in r.err, r
    r = run(["ssh"] + openssh_opts(acct, ["-o",
                                          "HostKeyAlgorithms=ecdsa-sha2-nistp256"]) +
            ["%s@127.0.0.1" % acct.login, "echo ok"], env=openssh_env(acct))
    assert r.rc == 0 and r.out == "ok\n", r


def test_init_prints_every_host_key(pc):
    """init makes the three keys and prints each one's fingerprint, as
    ssh-keygen -lf shows it; fingerprint= stays the Ed25519 key's (agents
    pin it)."""
    for key, name, typ in (("fingerprint", "ssh_host_ed25519_key",
                            "(ED25519)"),
                           ("fingerprint_ecdsa", "ssh_host_ecdsa_key",
                            "(ECDSA)"),
                           ("fingerprint_rsa", "ssh_host_rsa_key", "(RSA)")):
        path = pc.dir / name
        assert path.stat().st_mode & 0o777 == 0o600
        r = run(["ssh-keygen", "-lf", str(path) + ".pub"])
        bits, fp = r.out.split()[:2]
        assert r.out.rstrip().endswith(typ), r
        assert pc.info[key] == fp, (key, r.out)
        if typ == "(RSA)":
            assert bits == "3072"
        if typ == "(ECDSA)":
            assert bits == "256"
    text = pc.conf.read_text()
    assert "host_key_ecdsa = ssh_host_ecdsa_key" in text
    assert "host_key_rsa = ssh_host_rsa_key" in text


def test_host_key_of_the_wrong_type_refused(pc):
    pc.set_config("ssh", "host_key_rsa", "ssh_host_ecdsa_key")
    rc, out, err = pc.cli("serve", check=False, timeout=30)
    assert rc != 0
    log = err
    assert "ssh_host_ecdsa_key is of type ecdsa-sha2-nistp256, not rsa" in log, \
        log


# ------------------------------------------------ the upstream leg

def old_target(tmp, pctarget, *config):
    """An sshd that speaks like an old network device: an RSA host key
    only, and only what config allows."""
    d = tmp / "oldtarget"
    d.mkdir()
    rsa = d / "ssh_host_rsa_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "",
                    "-f", str(rsa)], check=True, stdin=subprocess.DEVNULL,
                   timeout=60)
    return Target(d, *pctarget, extra_config=[
        "HostKey %s" % rsa, "HostKeyAlgorithms rsa-sha2-256,rsa-sha2-512"] +
        list(config)).start()


def exec_via(server, target, tmp):
    """`echo` on the target through server; returns the ssh Result."""
    acct = Acct(server, target, tmp, pin=False)
    return run(["ssh"] + openssh_opts(acct) +
               ["%s@127.0.0.1" % acct.login, "echo up-$((6*7))"],
               env=openssh_env(acct))


def test_upstream_old_target_by_default(proxy, pctarget, tmp_path):
    """AES-CTR with HMAC-SHA1, group14-sha256 and an RSA host key: what
    old targets speak is in the default upstream offer."""
    t = old_target(tmp_path, pctarget, "Ciphers aes128-ctr", "MACs hmac-sha1",
                   "KexAlgorithms diffie-hellman-group14-sha256")
    try:
        (tmp_path / "c").mkdir()
        r = exec_via(proxy, t, tmp_path / "c")
        assert r.rc == 0 and r.out == "up-42\n", r
    finally:
        t.stop()


def test_upstream_weak_kex_only_when_configured(proxy, pc, pctarget,
                                                tmp_path):
    t = old_target(tmp_path, pctarget,
                   "KexAlgorithms diffie-hellman-group14-sha1")
    try:
        (tmp_path / "a").mkdir()
        r = exec_via(proxy, t, tmp_path / "a")
        assert r.rc != 0 and "cannot reach asset" in r.err, r
        pc.set_config("ssh", "upstream_kex",
                      "curve25519-sha256,diffie-hellman-group14-sha1")
        pc.start()
        assert "diffie-hellman-group14-sha1 ([ssh] upstream_kex)" in \
            pc.log_text()
        (tmp_path / "b").mkdir()
        r = exec_via(pc, t, tmp_path / "b")
        assert r.rc == 0 and r.out == "up-42\n", r
    finally:
        t.stop()
