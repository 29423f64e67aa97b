"""`portcullis init` and its SSH host keys: the three it makes, and
`--host-keys DIR`, which adopts the keys an OpenSSH server already has
(a bastion taking over an sshd's address keeps its host keys, so users'
known_hosts files stay valid). Adopted keys are served for every host key
algorithm; a key that is not safe to adopt is refused with the reason,
and nothing is left behind."""

import os

import pytest

from pclib import Portcullis, parse_kv, portcullis_bin, run
from test_clients import Acct, openssh_env, openssh_opts

TYPES = (("ed25519", "fingerprint", "(ED25519)"),
         ("ecdsa", "fingerprint_ecdsa", "(ECDSA)"),
         ("rsa", "fingerprint_rsa", "(RSA)"))


def keygen(path, typ, bits=None, fmt=None, passphrase=""):
    args = ["ssh-keygen", "-q", "-t", typ, "-N", passphrase, "-C", "sshd",
            "-f", str(path)]
    if bits:
        args += ["-b", str(bits)]
    if fmt:
        args += ["-m", fmt]
    r = run(args)
    assert r.rc == 0, r
    return path


def fingerprint(path):
    r = run(["ssh-keygen", "-lf", str(path)])
    assert r.rc == 0, r
    return r.out.split()[1]


def init(tmp_path, name, *extra):
    return run([portcullis_bin(), "init", "--dir", tmp_path / name,
                "--ssh-port", "0", "--http-port", "0"] + list(extra))


def test_init_makes_three_new_keys_without_host_keys(tmp_path):
    """Without --host-keys, init makes Ed25519, ECDSA P-256 and RSA 3072
    keys (0600), each data directory its own."""
    fps = []
    for name in ("a", "b"):
        r = init(tmp_path, name)
        assert r.rc == 0, r
        info = parse_kv(r.out)
        for typ, key, label in TYPES:
            path = tmp_path / name / ("ssh_host_%s_key" % typ)
            assert path.stat().st_mode & 0o777 == 0o600
            out = run(["ssh-keygen", "-lf", str(path) + ".pub"]).out
            assert out.rstrip().endswith(label), out
            assert info[key] == out.split()[1]
            want = {"rsa": "3072", "ecdsa": "256"}.get(typ)
            if want:
                assert out.split()[0] == want, out
            fps.append(info[key])
    assert len(set(fps)) == 6, fps


@pytest.fixture
def sshd_keys(tmp_path):
    """What an OpenSSH server's /etc/ssh holds: its three host keys, the
    RSA one in the older PEM format (as sshd made them before 7.8)."""
    d = tmp_path / "etc-ssh"
    d.mkdir()
    keygen(d / "ssh_host_ed25519_key", "ed25519")
    keygen(d / "ssh_host_ecdsa_key", "ecdsa", 256)
    keygen(d / "ssh_host_rsa_key", "rsa", 2048, fmt="PEM")
    return d


def test_adopted_keys_are_served_for_every_algorithm(tmp_path, sshd_keys,
                                                     target):
    """The sshd's keys, adopted, are what every host key algorithm
    presents: a client whose known_hosts holds only the sshd's keys (checked
    strictly) connects with each, runs a command and gets its output."""
    r = init(tmp_path, "adopt", "--host-keys", sshd_keys)
    assert r.rc == 0, r
    info = parse_kv(r.out)
    for typ, key, _ in TYPES:
        src = sshd_keys / ("ssh_host_%s_key" % typ)
        dst = tmp_path / "adopt" / ("ssh_host_%s_key" % typ)
        assert info[key] == fingerprint(src), (typ, r.out)
        assert dst.read_bytes() == src.read_bytes(), typ
        assert dst.stat().st_mode & 0o777 == 0o600
        assert fingerprint(str(dst) + ".pub") == info[key]

    pc2 = _adopting_server(tmp_path / "served2", sshd_keys)
    try:
        acct = Acct(pc2, target, tmp_path)
        lines = []
        for typ, _, _ in TYPES:
            pub = (sshd_keys / ("ssh_host_%s_key.pub" % typ)).read_text()
            lines.append("[127.0.0.1]:%d %s" % (pc2.ssh_port,
                                                " ".join(pub.split()[:2])))
        acct.known_hosts.write_text("\n".join(lines) + "\n")
        for alg in ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-256",
                    "rsa-sha2-512"):
            r = run(["ssh"] + openssh_opts(
                acct, ["-o", "HostKeyAlgorithms=" + alg]) +
                ["%s@127.0.0.1" % acct.login, "echo adopted-" + alg],
                env=openssh_env(acct))
            assert r.rc == 0 and r.out == "adopted-%s\n" % alg, (alg, r)
    finally:
        pc2.stop()


def _adopting_server(path, keys):
    """A started server whose init adopted keys (the shared helper passes
    the run's own key set; this one passes the sshd's)."""
    import pclib
    saved = pclib.shared_host_keys
    pclib.shared_host_keys = lambda: keys
    try:
        p = Portcullis(path)
    finally:
        pclib.shared_host_keys = saved
    p.tune_for_tests()
    return p.start()


def test_a_type_the_directory_lacks_is_made_new(tmp_path):
    d = tmp_path / "only-ed25519"
    d.mkdir()
    keygen(d / "ssh_host_ed25519_key", "ed25519")
    r = init(tmp_path, "pc", "--host-keys", d)
    assert r.rc == 0, r
    info = parse_kv(r.out)
    assert info["fingerprint"] == fingerprint(d / "ssh_host_ed25519_key")
    out = run(["ssh-keygen", "-lf",
               str(tmp_path / "pc" / "ssh_host_rsa_key.pub")]).out
    assert out.split()[0] == "3072" and info["fingerprint_rsa"] in out


@pytest.mark.parametrize("case", ["rsa1024", "ecdsa384", "wrongtype",
                                  "encrypted", "readable", "garbage",
                                  "empty-dir"])
def test_unsafe_or_unusable_keys_are_refused(tmp_path, case):
    """Each refusal names the file and the reason, exits non-zero, and
    leaves no data directory behind (never half a server)."""
    d = tmp_path / "keys"
    d.mkdir()
    want = {
        "rsa1024": "RSA key of 1024 bits; at least 2048 are needed",
        "ecdsa384": "the ECDSA host key must be NIST P-256",
        "wrongtype": "a ssh-ed25519 key, not RSA",
        "encrypted": "not an unencrypted OpenSSH or PEM private key",
        "readable": "permissions 0644 are too open",
        "garbage": "not an unencrypted OpenSSH or PEM private key",
        "empty-dir": "no ssh_host_ed25519_key, ssh_host_ecdsa_key or "
                     "ssh_host_rsa_key there",
    }[case]
    if case == "rsa1024":
        keygen(d / "ssh_host_rsa_key", "rsa", 1024)
    elif case == "ecdsa384":
        keygen(d / "ssh_host_ecdsa_key", "ecdsa", 384)
    elif case == "wrongtype":
        keygen(d / "ssh_host_rsa_key", "ed25519")
    elif case == "encrypted":
        keygen(d / "ssh_host_ed25519_key", "ed25519", passphrase="secret pw")
    elif case == "readable":
        keygen(d / "ssh_host_ed25519_key", "ed25519")
        os.chmod(d / "ssh_host_ed25519_key", 0o644)
    elif case == "garbage":
        (d / "ssh_host_ed25519_key").write_bytes(b"\x00\xffnot a key\n" * 40)
        os.chmod(d / "ssh_host_ed25519_key", 0o600)
    r = init(tmp_path, "pc", "--host-keys", d)
    assert r.rc != 0, r
    assert want in r.err, r
    assert "BEGIN" not in r.err and "secret pw" not in r.err
    assert not (tmp_path / "pc").exists(), list((tmp_path / "pc").iterdir())
