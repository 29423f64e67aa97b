"""Ansible through the proxy, set up as docs/operations.md ("Ansible")
tells its users: the Portcullis login `user#asset` as the SSH user of an
ssh_config host (so Ansible's `~` is the asset login's home), the
defaults of Debian 12's Ansible (ansible-core 2.14) otherwise: the ssh
connection with ControlMaster/ControlPersist, modules sent by sftp with
scp and piped fallbacks, `/bin/sh -c` commands, a remote temporary
directory; then the paramiko connection with ansible_user and a
password, and the plain `ansible_user: user#asset` inventory with its
documented remote_tmp.

Each playbook gathers facts (the setup module), runs a command and
checks its output, copies a file up (also to `~/`) and fetches one down
(content checked), fails a task on purpose (its exit status and stderr
must reach Ansible) and makes a change idempotently. A refusal by the
proxy shows as UNREACHABLE with our line. Ansible is Debian 12's
`ansible-core` (what `ansible` depends on; scripts/install-deps); a
missing one is skipped with the package name.
"""

import json
import os
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from pclib import keygen, make_file, run, sha256_file, uniq, wait_for

KiB = 1 << 10
SIZE = 200 * KiB + 3


def need_ansible():
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook not installed (Debian 12 package "
                    "ansible-core; scripts/install-deps installs it)")


HOME = "/home/pctarget"  # the asset login's home on the target


class Site:
    """One Portcullis user with a key and a password, allowed on an asset
    of the target that logs in as pctarget (its vaulted password), an
    ssh_config naming the proxy, and a scratch directory on each side."""

    def __init__(self, proxy, target, tmp, native="allow"):
        self.proxy, self.target, self.tmp = proxy, target, tmp
        self.password = "pw-" + uniq()
        self.user = proxy.user_add(password=self.password)
        self.key = keygen(tmp / "id_ed25519", "ansible")
        proxy.key_add(self.user, str(self.key) + ".pub")
        self.asset = proxy.target_asset(target, as_root=False)
        proxy.allow(self.user, self.asset, native=native)
        self.login = "%s#%s" % (self.user, self.asset)
        self.name = uniq("ans")
        self.remote = Path(HOME) / self.name  # owned by the asset login
        self.remote.mkdir()
        shutil.chown(self.remote, "pctarget", "pctarget")
        self.known_hosts = proxy.write_known_hosts(tmp / "known_hosts")
        self.cp_dir = tmp / "cp"  # ControlPath sockets of this test only
        self.cp_dir.mkdir()
        # What a user puts in ~/.ssh/config (given with -F here: ssh reads
        # the passwd entry's home, not $HOME).
        self.ssh_config = tmp / "ssh_config"
        self.ssh_config.write_text(textwrap.dedent("""\
            Host proddb
                HostName 127.0.0.1
                Port %d
                User %s
                IdentityFile %s
                IdentitiesOnly yes
                UserKnownHostsFile %s
                GlobalKnownHostsFile /dev/null
                StrictHostKeyChecking yes
            """ % (proxy.ssh_port, self.login, self.key,
                   self.known_hosts)))

    def inventory(self, **more):
        """A YAML inventory for the ssh_config host (more: other host
        variables, e.g. ansible_user)."""
        host = {"ansible_ssh_common_args": "-F %s" % self.ssh_config,
                "ansible_python_interpreter": "/usr/bin/python3"}
        host.update(more)
        path = self.tmp / ("inventory-%s.yml" % uniq())
        path.write_text(json.dumps({"all": {"hosts": {"proddb": host}}}))
        return path

    def env(self):
        env = dict(os.environ)
        env.pop("SSH_AUTH_SOCK", None)
        env.update({
            "ANSIBLE_CONFIG": str(self.tmp / "ansible.cfg"),
            "ANSIBLE_LOCAL_TEMP": str(self.tmp / "ansible-local"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.cp_dir),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "HOME": str(self.tmp),
        })
        (self.tmp / "ansible.cfg").write_text(textwrap.dedent("""
            [defaults]
            host_key_checking = True
            retry_files_enabled = False
            """))
        return env

    def close_masters(self):
        """Ansible leaves its ControlPersist master (60 s) behind: ask it
        to exit, then make sure no ssh of this test is left."""
        for sock in self.cp_dir.iterdir():
            subprocess.run(["ssh", "-o", "ControlPath=%s" % sock, "-O",
                            "exit", "proddb"], capture_output=True,
                           timeout=15)
        r = subprocess.run(["pgrep", "-f", str(self.cp_dir)],
                           capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


PLAYBOOK = """
- hosts: proddb
  gather_facts: true
  tasks:
    - name: a command, its output and status
      ansible.builtin.shell: echo "ans-$((6*7))"; id -un
      register: out
    - ansible.builtin.assert:
        that:
          - out.rc == 0
          - out.stdout_lines == ["ans-42", "pctarget"]
          - ansible_facts.hostname | length > 0
    - name: a file up
      ansible.builtin.copy:
        src: {up}
        dest: {remote}/up.bin
        mode: "0640"
    - name: a file to the asset login's home, written as `~/`
      ansible.builtin.copy:
        content: "home\\n"
        dest: "~/{name}/home.txt"
    - name: a file down
      ansible.builtin.fetch:
        src: {remote}/down.bin
        dest: {down}
        flat: true
    - name: a failing command reports its status and stderr
      ansible.builtin.shell: echo broken-on-purpose >&2; exit 3
      register: bad
      failed_when: false
    - ansible.builtin.assert:
        that:
          - bad.rc == 3
          - bad.stderr == "broken-on-purpose"
    - name: a change through the proxy, then the same task changes nothing
      ansible.builtin.lineinfile:
        path: {remote}/conf.txt
        line: "managed = yes"
        create: true
      register: first
    - ansible.builtin.lineinfile:
        path: {remote}/conf.txt
        line: "managed = yes"
        create: true
      register: second
    - ansible.builtin.assert:
        that:
          - first.changed
          - not second.changed
"""


def playbook_round(site, inventory, home_by_tilde=True, env=None):
    """home_by_tilde: the play writes `~/...` too (only right when
    Ansible's `~` is the asset login's home: no ansible_user)."""
    for old in site.remote.iterdir():  # an earlier round's
        old.unlink()
    up = site.tmp / "up.bin"
    up_sum = make_file(up, SIZE)
    down_sum = make_file(site.remote / "down.bin", SIZE + 1)
    down = site.tmp / "down.bin"
    book = site.tmp / "play.yml"
    text = PLAYBOOK.format(up=up, remote=site.remote, down=down,
                           name=site.name)
    if not home_by_tilde:
        text = text.replace('dest: "~/%s/' % site.name,
                            'dest: "%s/' % site.remote)
    book.write_text(text)
    r = run(["ansible-playbook", "-i", str(inventory), str(book)],
            env=env or site.env(), timeout=240)
    assert r.rc == 0, r
    assert "failed=0" in r.out and "unreachable=0" in r.out, r
    assert sha256_file(site.remote / "up.bin") == up_sum
    assert sha256_file(down) == down_sum
    assert (site.remote / "conf.txt").read_text() == "managed = yes\n"
    assert (site.remote / "home.txt").read_text() == "home\n"
    assert (site.remote / "up.bin").stat().st_uid == \
        (site.remote).stat().st_uid  # written as the asset login
    # Nothing named after the Portcullis login was made in the home
    # (Ansible expands `~` as `~<ansible_user>` on the target).
    assert not [p for p in os.listdir(HOME) if p.startswith("~")], \
        os.listdir(HOME)
    assert "portcullis" not in r.err.lower(), r  # no banner in its output
    return r


@pytest.fixture
def site(proxy, target, tmp_path):
    need_ansible()
    s = Site(proxy, target, tmp_path)
    yield s
    s.close_masters()
    shutil.rmtree(s.remote, ignore_errors=True)


def closed_rows(proxy, user):
    """user's report rows once every one is closed: the server closes a
    channel's row when it hears the channel's end, which may come after
    ansible-playbook has exited."""
    def closed():
        rows = [r for r in proxy.sessions() if r.get("user") == user]
        return rows if rows and all(r.get("result") for r in rows) else None
    return wait_for(closed, timeout=20, what="%s's rows closed" % user)


def test_ansible_ssh_connection_with_a_key(site):
    """The default connection (OpenSSH with ControlMaster): every task's
    commands and file transfers ride one multiplexed connection, each a
    channel of its own; the proxy's host key is checked."""
    playbook_round(site, site.inventory())
    # One report row per channel (docs/architecture.md, "Report rows"):
    # every command and transfer of the play, each ended cleanly.
    rows = closed_rows(site.proxy, site.user)
    assert len(rows) > 10, rows
    assert all((r.get("result") or "").startswith("ok") for r in rows), \
        [r.get("result") for r in rows]


def test_ansible_ad_hoc_and_transfer_methods(site):
    """`ansible -m` ad hoc, with each file transfer method Ansible can be
    set to (sftp, scp, piped: `dd` through a shell), so a profile that
    works for one of them is seen to work for all; and with pipelining
    (modules fed to python3's stdin, the usual speed-up)."""
    inv = site.inventory()
    for method in ("sftp", "scp", "piped", "pipelining"):
        env = site.env()
        if method == "pipelining":
            env["ANSIBLE_PIPELINING"] = "True"
        else:
            env["ANSIBLE_SSH_TRANSFER_METHOD"] = method
        src = site.tmp / ("m-%s.bin" % method)
        want = make_file(src, SIZE + len(method))
        r = run(["ansible", "-i", str(inv), "proddb", "-m", "copy", "-a",
                 "src=%s dest=%s/" % (src, site.remote)], env=env,
                timeout=120)
        assert r.rc == 0 and "CHANGED" in r.out, (method, r)
        assert sha256_file(site.remote / src.name) == want, method
        r = run(["ansible", "-i", str(inv), "proddb", "-m", "command", "-a",
                 "cat /proc/sys/kernel/hostname"], env=env, timeout=120)
        assert r.rc == 0 and "rc=0" in r.out, (method, r)
        site.close_masters()


def test_ansible_recorded(proxy, target, tmp_path):
    """With `native record`, the play runs the same and each of its
    channels (commands, sftp transfers) has its recording, its digest in
    the row."""
    need_ansible()
    site = Site(proxy, target, tmp_path, native="record")
    try:
        playbook_round(site, site.inventory())
    finally:
        site.close_masters()
        shutil.rmtree(site.remote, ignore_errors=True)
    rows = closed_rows(proxy, site.user)
    assert len(rows) > 10, rows
    for row in rows:
        assert (row.get("result") or "").startswith("ok"), row
        path = row.get("recording_path")
        assert path and os.path.exists(path), row
        assert sha256_file(path) == row["recording_sha256"], row
    kinds = {r.get("kind") for r in rows}
    assert "sftp" in kinds, kinds  # the modules went up by sftp


def test_ansible_paramiko_with_a_password(site):
    """The paramiko connection (what Ansible uses where OpenSSH is not,
    and Netmiko/Fabric-style automation) with the user's password."""
    inv = site.inventory(ansible_connection="paramiko",
                         ansible_host="127.0.0.1",
                         ansible_port=site.proxy.ssh_port,
                         ansible_user=site.login,
                         ansible_password=site.password,
                         ansible_remote_tmp="$HOME/.ansible/tmp")
    known = site.tmp / ".ssh"
    known.mkdir(exist_ok=True)
    # paramiko reads ~/.ssh/known_hosts; the proxy's keys go there
    (known / "known_hosts").write_text(site.known_hosts.read_text())
    playbook_round(site, inv, home_by_tilde=False)


def test_ansible_user_in_the_inventory(site):
    """The other way docs/operations.md shows: `ansible_user: user#asset`
    in the inventory, with `remote_tmp = $HOME/.ansible/tmp` so the
    temporary directory is the asset login's (without it, Ansible's
    `echo ~user#asset` names nobody on the target)."""
    inv = site.inventory(ansible_user=site.login,
                         ansible_remote_tmp="$HOME/.ansible/tmp")
    for method in ("smart", "scp"):
        env = site.env()
        env["ANSIBLE_SSH_TRANSFER_METHOD"] = method
        playbook_round(site, inv, home_by_tilde=False, env=env)


def test_ansible_refused_asset_is_unreachable_with_the_reason(site):
    """A login to an asset the user has no role on: Ansible marks the host
    unreachable and shows Portcullis' refusal, not a hang."""
    other = site.proxy.target_asset(site.target)
    inv = site.inventory(ansible_user="%s#%s" % (site.user, other))
    r = run(["ansible", "-i", str(inv), "proddb", "-m", "ping"],
            env=site.env(), timeout=120)
    assert r.rc != 0, r
    # ssh's own exit status for "could not reach": Ansible shows our line
    assert "UNREACHABLE" in r.out, r
    assert "Failed to connect to the host via ssh: portcullis: access " \
        "denied" in r.out, r
    wait_for(lambda: any(x.get("user") == site.user and
                         "denied" in (x.get("result") or "")
                         for x in site.proxy.sessions()),
             what="a refusal row")
