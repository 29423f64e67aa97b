"""Transfers that span many key re-exchanges, on both legs at once.

OpenSSH renegotiates keys after RekeyLimit bytes (hardened client configs
set it low, and so do some servers). While a leg re-keys, libssh holds
that leg's channel data until the new keys are in use, and the relay
keeps moving the other leg: a transfer must arrive whole and in order
however the two legs' re-exchanges fall, in both directions, and the
session must end with the command's status. Here the client re-keys its
leg every MiB and the target's sshd re-keys the upstream leg every MiB.
"""
import hashlib
import os
import subprocess

import pytest

from pclib import Client, Target, keygen

SIZE = 24 << 20
NEWKEYS = "SSH2_MSG_NEWKEYS received"


@pytest.fixture(scope="module")
def rekey_target(tmp_path_factory, pctarget):
    t = Target(tmp_path_factory.mktemp("rekey-target"), *pctarget,
               extra_config=["RekeyLimit 1M", "LogLevel DEBUG1"])
    t.start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def acct(proxy, rekey_target, tmp_path_factory):
    key = keygen(tmp_path_factory.mktemp("rekey-key") / "k")
    user = proxy.user_add(password="pw-rekey-1")
    proxy.key_add(user, str(key) + ".pub")
    asset = proxy.target_asset(rekey_target)
    proxy.allow(user, asset)
    return "%s#%s" % (user, asset), key


def _newkeys_on_target(target):
    return target.log_path.read_text(errors="replace").count(NEWKEYS)


def _run(proxy, acct, command, stdin, stdout):
    login, key = acct
    return Client(proxy.ssh_port).ssh(
        login, command, key=key, extra=("-v", "-o", "RekeyLimit=1M"),
        stdin=stdin, stdout=stdout)


def test_upload_and_download_through_rekeys_on_both_legs(
        proxy, rekey_target, acct, tmp_path):
    data = os.urandom(SIZE)
    src = tmp_path / "src"
    src.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    name = rekey_target.files / "rekeyed"
    before = _newkeys_on_target(rekey_target)

    with open(src, "rb") as f:
        rc, _, err = _run(proxy, acct, "cat > %s" % name, f,
                          subprocess.DEVNULL)
    assert rc == 0, err[-2000:]
    assert hashlib.sha256(name.read_bytes()).hexdigest() == want, \
        "the upload arrived changed"
    # the client's leg re-keyed many times, and so did the upstream leg
    assert err.count(NEWKEYS) >= 8, err[-2000:]
    assert _newkeys_on_target(rekey_target) - before >= 8

    before = _newkeys_on_target(rekey_target)
    dst = tmp_path / "dst"
    with open(dst, "wb") as out:
        rc, _, err = _run(proxy, acct, "cat %s; exit 7" % name,
                          subprocess.DEVNULL, out)
    assert rc == 7, err[-2000:]
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == want, \
        "the download arrived changed"
    assert err.count(NEWKEYS) >= 8, err[-2000:]
    assert _newkeys_on_target(rekey_target) - before >= 8


def test_sftp_both_ways_through_rekeys(proxy, rekey_target, acct,
                                       tmp_path):
    login, key = acct
    data = os.urandom(SIZE)
    src = tmp_path / "src"
    src.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    remote = rekey_target.files / "sftp-rekeyed"
    back = tmp_path / "back"
    batch = tmp_path / "batch"
    batch.write_text("put %s %s\nget %s %s\n" % (src, remote, remote, back))
    before = _newkeys_on_target(rekey_target)
    res = Client(proxy.ssh_port).sftp(login, batch, key=key,
                                      extra=("-o", "RekeyLimit=1M"))
    assert res.rc == 0, res.err[-2000:]
    assert hashlib.sha256(remote.read_bytes()).hexdigest() == want
    assert hashlib.sha256(back.read_bytes()).hexdigest() == want
    n = _newkeys_on_target(rekey_target) - before
    print("sftp put and get of %d MiB: the upstream leg re-keyed %d times"
          % (SIZE >> 20, n))
    assert n >= 16, n
