"""The pairing installer's systemd branch (docs/agent.md, "Install by
pairing"), without touching this host.

systemd is not PID 1 here, so the installer runs in a chroot of its own:
a mount and PID namespace (nothing mounted in it reaches the host), this
host's /usr bound read-only, /usr/local a temporary directory, copies of
the account files in its /etc (useradd writes those), /run/systemd/system
present, /proc of the new PID namespace (the real systemctl sees the
chroot and skips daemon-reload). The installer takes the systemd branch
as on a real machine: it creates the agent's user and writes the unit.
Then, still in that namespace, the real `systemd-analyze verify --root`
checks the unit (its ExecStart binary included) and the real
`systemctl --root enable` enables it offline.
"""

import os
import shutil
import subprocess

import pytest

from pclib import uniq
from test_pairing import pair, pair_server, static_agent  # noqa: F401

HOST_UNIT = "/etc/systemd/system/portcullis-agent.service"


def host_account_lines(path):
    """The lines of an account file (passwd, group) naming the agent's user."""
    with open(path) as f:
        return [ln for ln in f.read().splitlines()
                if ln.startswith("portcullis-agent:")]


SETUP = r"""
set -eu
R=$1 L=$2 URL=$3 ID=$4
mkdir -p "$R/usr" "$R/etc/systemd/system" "$R/tmp" "$R/proc" "$R/dev" \
    "$R/run/systemd/system" "$R/var/tmp"
for d in bin sbin lib lib64; do ln -s "usr/$d" "$R/$d"; done
mount --bind /usr "$R/usr"
mount -o remount,bind,ro "$R/usr"
mount --bind "$L" "$R/usr/local"
mount --bind /dev "$R/dev"
mount -t proc proc "$R/proc"
for f in passwd group shadow gshadow login.defs nsswitch.conf; do
    [ -e "/etc/$f" ] && cp -p "/etc/$f" "$R/etc/"
done
chroot "$R" sh -c "curl -sS '$URL' | sh -s -- --id '$ID' --no-start" \
    >"$R/../install.out" 2>"$R/../install.err"
echo "installer=$?"
systemd-analyze verify --root="$R" \
    "$R/etc/systemd/system/portcullis-agent.service" \
    >"$R/../verify.out" 2>&1 && echo verify=0 || echo "verify=$?"
systemctl --root="$R" enable portcullis-agent.service >"$R/../enable.out" 2>&1 \
    && echo enable=0 || echo "enable=$?"
echo "is-enabled=$(systemctl --root="$R" is-enabled portcullis-agent.service)"
cmp "$R/usr/local/bin/portcullis-agent" "$5" && echo same-binary
"""


def need(*tools):
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip("%s is not installed" % t)


def test_installer_systemd_branch_writes_a_unit_that_verifies_and_enables(
        pair_server, tmp_path):  # noqa: F811
    need("systemd-analyze", "systemctl", "unshare", "chroot", "useradd",
         "curl")
    kv = pair(pair_server, "--tag", "sd")
    top = tmp_path / "box"
    root, local = top / "root", top / "local"
    root.mkdir(parents=True)
    local.mkdir()
    agent_id = uniq("sd")
    host_accounts = {f: host_account_lines(f)
                     for f in ("/etc/passwd", "/etc/group")}
    host_unit = os.path.exists(HOST_UNIT)
    r = subprocess.run(
        ["unshare", "-m", "-p", "-f", "--propagation", "private", "sh", "-c",
         SETUP, "setup", str(root), str(local), kv["url"], agent_id,
         str(static_agent())],
        capture_output=True, text=True, timeout=120)
    out = r.stdout
    info = {k: v for k, _, v in (line.partition("=")
                                 for line in out.splitlines())}
    inst_out = (top / "install.out").read_text()
    inst_err = (top / "install.err").read_text()
    assert r.returncode == 0 and info.get("installer") == "0", \
        (r, inst_out, inst_err)
    # the systemd branch, not the "no systemd here" one
    assert "no systemd here" not in inst_out, inst_out
    assert "systemctl enable --now portcullis-agent" in inst_out, inst_out
    assert "same-binary" in out, out

    unit = root / "etc/systemd/system/portcullis-agent.service"
    text = unit.read_text()
    assert oct(unit.stat().st_mode & 0o777) == "0o644"
    assert "User=portcullis-agent\n" in text, text
    assert ("ExecStart=/usr/local/bin/portcullis-agent -c "
            "/etc/portcullis/agent.conf\n") in text, text
    assert "WantedBy=multi-user.target" in text, text
    # verified by systemd itself: no error, not a word about the unit
    verify = (top / "verify.out").read_text()
    assert info.get("verify") == "0", verify
    assert "portcullis-agent" not in verify, verify
    # enabled offline under the root directory
    assert info.get("enable") == "0", (top / "enable.out").read_text()
    assert info.get("is-enabled") == "enabled", out
    link = root / "etc/systemd/system/multi-user.target.wants" / \
        "portcullis-agent.service"
    assert link.is_symlink()
    assert str(link.readlink()) == \
        "/etc/systemd/system/portcullis-agent.service"
    # the agent's unprivileged user, in the chroot's account files only
    passwd = (root / "etc/passwd").read_text()
    user = [ln for ln in passwd.splitlines()
            if ln.startswith("portcullis-agent:")]
    assert len(user) == 1 and ":/usr/sbin/nologin" in user[0], passwd
    assert int(user[0].split(":")[2]) < 1000, user  # a system account
    # and nothing on the host: its agent account lines are as they were
    # (other tests running beside this one add and remove their own users,
    # so the files are not compared whole)
    for f, before in host_accounts.items():
        assert host_account_lines(f) == before, f
    assert os.path.exists(HOST_UNIT) == host_unit
    conf = root / "etc/portcullis/agent.conf"
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    ctext = conf.read_text()
    assert "id = %s\n" % agent_id in ctext and "tag = sd\n" in ctext, ctext
    # the agent's user owns its config (uid from the chroot's passwd)
    assert conf.stat().st_uid == int(user[0].split(":")[2])
