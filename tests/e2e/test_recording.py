"""Recordings of sessions whose access profile says `record` (issue 3):
asciicast v2 for shell and exec sessions that `asciinema cat` replays to
what the user saw, JSON-lines transfer records for scp, durability across
a kill -9 of the server, and refusal when the recording cannot be
written."""

import fcntl
import json
import os
import signal
import stat
import struct
import subprocess
import termios
import time

import pytest

from pclib import (Client, Portcullis, PtySession, keygen, sha256_file,
                   uniq)


def recorded_user(proxy, target, native="record"):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, native=native)
    return "%s#%s" % (user, asset_id), pw, user


def asciinema_cat(path):
    """What `asciinema cat` prints (it wants a terminal: run it under
    script(1))."""
    r = subprocess.run(["script", "-qec", "asciinema cat %s" % path,
                        "/dev/null"], capture_output=True, timeout=60)
    assert r.returncode == 0, r
    return r.stdout.decode("utf-8", "replace")


def cast_events(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    header = json.loads(lines[0])
    return header, [json.loads(line) for line in lines[1:]]


def check_recording_row(row):
    path = row["recording_path"]
    assert path and os.path.isfile(path), row
    assert row["recording_sha256"] == sha256_file(path), row
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    return path


def test_recorded_shell_replays_what_the_user_saw(proxy, target,
                                                  ssh_client):
    login, pw, user = recorded_user(proxy, target)
    env = ssh_client.env(password=pw)
    env["TERM"] = "xterm"
    term = PtySession(ssh_client.ssh_args(login, extra=["-tt"]), env,
                      cols=90, rows=25)
    try:
        term.write("echo rec-$((6*7))\n")
        term.expect(rb"rec-42")
        fcntl.ioctl(term.master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", 30, 100, 0, 0))
        os.kill(term.proc.pid, signal.SIGWINCH)
        term.write("stty size\n")
        term.expect(rb"30 100")
        term.write("exit\n")
        assert term.wait() == 0
    finally:
        term.close()
    row = proxy.session_of(user, "ok", kind="shell")
    path = check_recording_row(row)
    header, events = cast_events(path)
    assert header["version"] == 2
    assert (header["width"], header["height"]) == (90, 25)
    assert user in header["title"] and row["id"] in header["title"]
    assert ["r", "100x30"] in [e[1:] for e in events]
    assert not any(e[1] == "i" for e in events)  # input only if asked
    times = [e[0] for e in events]
    assert times == sorted(times)
    shown = asciinema_cat(path)
    assert "rec-42" in shown and "30 100" in shown


def test_recorded_exec_keeps_stdout_and_stderr(proxy, target, ssh_client):
    login, pw, user = recorded_user(proxy, target)
    r = ssh_client.ssh(login, "echo to-out; echo to-err >&2; exit 4",
                       password=pw)
    assert r.rc == 4 and "to-out" in r.out and "to-err" in r.err
    row = proxy.session_of(user, "ok", kind="exec")
    path = check_recording_row(row)
    shown = asciinema_cat(path)
    assert "to-out" in shown and "to-err" in shown


def test_allow_profile_is_not_recorded(proxy, target, ssh_client):
    login, pw, user = recorded_user(proxy, target, native="allow")
    r = ssh_client.ssh(login, "echo plain", password=pw)
    assert r.rc == 0
    row = proxy.session_of(user, "ok", kind="exec")
    assert not row.get("recording_path")


def test_scp_legacy_upload_is_recorded_as_transfers(proxy, target,
                                                    ssh_client, tmp_path):
    user = proxy.user_add()
    key = keygen(tmp_path / "k")
    proxy.key_add(user, str(key) + ".pub")
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, native="record")
    src = tmp_path / "up"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"x" * 1234)
    (src / "sub" / "b.bin").write_bytes(os.urandom(70000))
    dest = "/tmp/pc-rec-%s" % uniq()
    r = ssh_client.scp("%s#%s" % (user, asset_id), "-r", str(src),
                       ssh_client.remote(dest), legacy=True, key=key)
    assert r.rc == 0, r
    row = proxy.session_of(user, "ok", kind="scp")
    path = check_recording_row(row)
    with open(path) as f:
        recs = [json.loads(line) for line in f]
    assert recs[0]["op"] == "start" and recs[0]["kind"] == "scp"
    got = {(x["op"], x["path"], x["bytes"]) for x in recs[1:]}
    assert ("upload", "up/a.txt", 1234) in got
    assert ("upload", "up/sub/b.bin", 70000) in got
    assert ("mkdir", "up/sub", 0) in got
    subprocess.run(["rm", "-rf", dest])


def test_scp_only_profile_records_real_scp_both_ways(proxy, target,
                                                      ssh_client, tmp_path):
    """Issue 11, defect 1: under a profile that allows only scp, real
    `scp -O` still works both ways with a path the user had to quote;
    the target is sent the canonical command (it shows in the report
    row), and both transfers are recorded."""
    user = proxy.user_add()
    key = keygen(tmp_path / "k")
    proxy.key_add(user, str(key) + ".pub")
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, native="record",
                flags=("--no-shell", "--no-exec", "--no-sftp"))
    login = "%s#%s" % (user, asset_id)
    data = os.urandom(50000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    remote = "/tmp/pc-scp %s.bin" % uniq()
    try:
        up = ssh_client.scp(login, str(src),
                            ssh_client.remote("'%s'" % remote),
                            legacy=True, key=key)
        assert up.rc == 0, up
        back = tmp_path / "back.bin"
        down = ssh_client.scp(login,
                              ssh_client.remote(remote.replace(" ", "\\ ")),
                              str(back), legacy=True, key=key)
        assert down.rc == 0, down
        assert back.read_bytes() == data
    finally:
        subprocess.run(["rm", "-f", remote])
    quoted = "'%s'" % remote
    rows = {}
    for mode in ("-t", "-f"):
        rows[mode] = proxy.wait_session(
            lambda row, m=mode: row.get("user") == user and
            row.get("kind") == "scp" and
            row.get("detail") == "scp %s %s" % (m, quoted),
            what="the scp %s row" % mode)
        assert rows[mode]["result"] == "ok", rows[mode]
    name = os.path.basename(remote)
    with open(check_recording_row(rows["-t"])) as f:
        recs = [json.loads(line) for line in f]
    assert recs[0]["op"] == "start" and recs[0]["kind"] == "scp"
    assert ("upload", "src.bin", 50000) in {(x["op"], x["path"], x["bytes"])
                                       for x in recs[1:]}, recs
    with open(check_recording_row(rows["-f"])) as f:
        recs = [json.loads(line) for line in f]
    assert ("download", name, 50000) in {(x["op"], x["path"], x["bytes"])
                                         for x in recs[1:]}, recs


def test_unwritable_recording_dir_refuses_the_session(pc, target, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    pc.set_config("record", "dir", str(blocker / "recordings"))
    pc.start()
    pw = "pw-" + uniq()
    user = pc.user_add(password=pw)
    asset_id = pc.target_asset(target)
    pc.allow(user, asset_id, native="record")
    r = Client(pc.ssh_port).ssh("%s#%s" % (user, asset_id), "echo ran",
                                password=pw)
    assert r.rc != 0 and "ran" not in r.out
    lines = r.portcullis_lines()
    assert len(lines) == 1 and "cannot record this session" in lines[0], r
    pc.session_of(user, "error: recording unavailable")


def test_kill_9_keeps_the_recording_and_marks_the_row(pc, target):
    pc.start()
    pw = "pw-" + uniq()
    user = pc.user_add(password=pw)
    asset_id = pc.target_asset(target)
    pc.allow(user, asset_id, native="record")
    client = Client(pc.ssh_port)
    proc = client.popen_ssh("%s#%s" % (user, asset_id),
                            "echo before-the-crash; sleep 60", password=pw,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        path = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = [r for r in pc.sessions() if r["user"] == user]
            path = rows[0].get("recording_path") if rows else None
            if path and os.path.exists(path) and \
                    "before-the-crash" in open(path).read():
                break
            time.sleep(0.2)
        else:
            pytest.fail("the recording never showed the output: %r"
                        % pc.sessions()[:3])
        os.kill(pc.proc.pid, signal.SIGKILL)
        pc.proc.wait()
        pc.proc = None
    finally:
        proc.kill()
        proc.wait()
    header, events = cast_events(path)  # every line still parses
    assert header["version"] == 2
    assert any("before-the-crash" in e[2] for e in events)
    pc.start()
    pc.session_of(user, "error: interrupted")


def key_user_on(server, target, tmp_path, native="record"):
    user = server.user_add()
    key = keygen(tmp_path / ("k-" + user))
    server.key_add(user, str(key) + ".pub")
    asset_id = server.target_asset(target)
    server.allow(user, asset_id, native=native)
    return "%s#%s" % (user, asset_id), key, user


def test_sftp_batch_is_recorded_as_transfers(proxy, target, ssh_client,
                                             tmp_path):
    login, key, user = key_user_on(proxy, target, tmp_path)
    src = tmp_path / "put.bin"
    src.write_bytes(os.urandom(300000))
    d = "/tmp/pc-sftp-%s" % uniq()
    batch = tmp_path / "batch"
    batch.write_text("mkdir %s\nput %s %s/a.bin\nget %s/a.bin %s\n"
                     "rename %s/a.bin %s/b.bin\nrm %s/b.bin\nrmdir %s\n"
                     % (d, src, d, d, tmp_path / "got.bin", d, d, d, d))
    r = ssh_client.sftp(login, batch, key=key)
    assert r.rc == 0, r
    row = proxy.session_of(user, "ok", kind="sftp")
    path = check_recording_row(row)
    with open(path) as f:
        recs = [json.loads(line) for line in f]
    assert recs[0]["op"] == "start" and recs[0]["kind"] == "sftp"
    ops = [(x["op"], x.get("path"), x.get("path2")) for x in recs[1:]]
    assert ("mkdir", d, "") in ops
    assert ("rename", d + "/a.bin", d + "/b.bin") in ops
    assert ("remove", d + "/b.bin", "") in ops
    assert ("rmdir", d, "") in ops
    closes = [x for x in recs if x["op"] == "close" and
              x["path"] == d + "/a.bin"]
    assert any(x["bytes_written"] == 300000 for x in closes), closes
    assert any(x["bytes_read"] == 300000 for x in closes), closes


def test_audit_log_has_logins_sessions_and_changes(pc, target, tmp_path):
    pc.start()
    pw = "pw-" + uniq()
    user = pc.user_add(password=pw)
    asset_id = pc.target_asset(target)
    pc.allow(user, asset_id)
    client = Client(pc.ssh_port)
    assert client.ssh("%s#%s" % (user, asset_id), "true",
                      password=pw).rc == 0
    assert client.ssh("%s#%s" % (user, asset_id), "true",
                      password="wrong").rc == 255
    pc.session_of(user, "ok", kind="exec")
    _, out, _ = pc.cli("audit", "list", "--json")
    events = json.loads(out)
    got = {(e["action"], e["actor"]) for e in events}
    assert ("login.ok", user) in got
    assert ("login.fail", user) in got
    assert ("session.start", user) in got
    assert ("session.end", user) in got
    assert any(e["action"] == "user.add" and e["target"] == user
               for e in events)
    assert pw not in out and "wrong" not in out
    rc, out, _ = pc.cli("audit", "verify")
    assert rc == 0 and out.startswith("ok:")
    # An edit made behind Portcullis's back is found and named.
    victim = [e for e in events if e["action"] == "login.ok"][0]
    pc.store_sql("UPDATE audit SET actor = 'mallory' WHERE seq = ?",
                 victim["seq"])
    rc, out, err = pc.cli("audit", "verify", check=False)
    assert rc != 0
    assert "entry %d" % victim["seq"] in err, err


def test_retention_deletes_old_recordings(pc, target, tmp_path):
    pc.set_config("record", "retention_days", "1")
    pc.start()
    login, key, user = key_user_on(pc, target, tmp_path)
    assert Client(pc.ssh_port).ssh(login, "echo old", key=key).rc == 0
    row = pc.session_of(user, "ok", kind="exec")
    path = check_recording_row(row)
    pc.stop()
    old = int(time.time()) - 3 * 86400
    pc.store_sql("UPDATE sessions SET started_at = ?, ended_at = ? "
                 "WHERE id = ?", old, old + 1, row["id"])
    pc.start()  # the server sweeps at start, then hourly
    deadline = time.monotonic() + 15
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(path)
    _, out, _ = pc.cli("audit", "list", "--json")
    assert any(e["action"] == "recording.delete" and e["target"] == row["id"]
               for e in json.loads(out))


def test_record_input_adds_what_the_user_typed(proxy, target, ssh_client):
    pw = "pw-" + uniq()
    user = proxy.user_add(password=pw)
    asset_id = proxy.target_asset(target)
    proxy.allow(user, asset_id, native="record", flags=("--record-input",))
    env = ssh_client.env(password=pw)
    term = PtySession(ssh_client.ssh_args("%s#%s" % (user, asset_id),
                                          extra=["-tt"]), env)
    try:
        term.write("echo typed-$((2+3))\n")
        term.expect(rb"typed-5")
        term.write("exit\n")
        assert term.wait() == 0
    finally:
        term.close()
    row = proxy.session_of(user, "ok", kind="shell")
    _, events = cast_events(check_recording_row(row))
    typed = "".join(e[2] for e in events if e[1] == "i")
    assert "echo typed-$((2+3))" in typed
    # Without --record-input (the other tests' profiles) there are none.
    _, out, _ = proxy.cli("profile", "list", "--json")
    assert any(p["record_input"] for p in json.loads(out))


def test_record_input_needs_record(proxy):
    rc, _, err = proxy.cli("profile", "add", uniq("p"), "--native", "allow",
                           "--record-input", check=False)
    assert rc == 2 and "record input needs native sessions set to record" in err


def test_session_play_and_export(proxy, target, ssh_client, tmp_path):
    login, pw, user = recorded_user(proxy, target)
    r = ssh_client.ssh(login, "echo play-me-$((40+2))", password=pw)
    assert r.rc == 0
    row = proxy.session_of(user, "ok", kind="exec")
    path = check_recording_row(row)
    rc, out, _ = proxy.cli("session", "play", row["id"], "--speed", "20")
    assert rc == 0 and "play-me-42" in out
    dest = tmp_path / "out.cast"
    proxy.cli("session", "export", row["id"], "--output", str(dest))
    assert sha256_file(dest) == sha256_file(path)
    rc, _, err = proxy.cli("session", "export", row["id"], "--output",
                           str(dest), check=False)
    assert rc != 0 and "already exists" in err
    # A session without a terminal recording has nothing to play.
    plain_login, plain_pw, plain_user = recorded_user(proxy, target,
                                                      native="allow")
    assert ssh_client.ssh(plain_login, "true", password=plain_pw).rc == 0
    plain = proxy.session_of(plain_user, "ok", kind="exec")
    rc, _, err = proxy.cli("session", "play", plain["id"], check=False)
    assert rc != 0 and err.strip()


def test_ssh_recording_size_limit_ends_the_session(pc, target):
    """[record] ssh_max_mb: output past the limit ends the session with a
    message; the file stays within the limit, ends with a marker and
    still plays; a session under the limit is unaffected."""
    pc.set_config("record", "ssh_max_mb", "1")
    pc.start()
    pw = "pw-" + uniq()
    user = pc.user_add(password=pw)
    asset_id = pc.target_asset(target)
    pc.allow(user, asset_id, native="record")
    client = Client(pc.ssh_port)
    login = "%s#%s" % (user, asset_id)
    r = client.ssh(login, "echo small-$((6*7))", password=pw)
    assert r.rc == 0 and "small-42" in r.out, r
    small = pc.session_of(user, "ok", kind="exec")
    check_recording_row(small)
    r = client.ssh(login, "head -c 4000000 /dev/urandom | base64",
                   password=pw)
    assert r.rc != 0, r
    assert any("recording reached its size limit" in line
               for line in r.portcullis_lines()), r.err
    assert len(r.out) < 1024 * 1024 + 65536, len(r.out)
    row = pc.session_of(user, "error: the recording reached its size limit",
                        kind="exec")
    assert "ssh_max_mb" in row["result"], row
    path = check_recording_row(row)
    assert os.path.getsize(path) <= 1024 * 1024, os.path.getsize(path)
    header, events = cast_events(path)  # whole events only
    assert header["version"] == 2
    assert "size limit" in events[-1][2], events[-1]
    assert sum(len(e[2]) for e in events) > 512 * 1024
    rc, out, _ = pc.cli("session", "play", row["id"], "--speed", "1000")
    assert rc == 0 and "size limit" in out
    dest = pc.dir / ("limit-%s.cast" % uniq())
    pc.cli("session", "export", row["id"], "--output", str(dest))
    assert sha256_file(dest) == sha256_file(path)


def test_refused_target_leaves_no_empty_recording(pc, target, free_port):
    """The target refuses the connection after authorization: the
    recording file (created before the target is reached) is removed
    and the row links no recording."""
    pc.start()
    pw = "pw-" + uniq()
    user = pc.user_add(password=pw)
    asset_id = pc.asset_add(uniq("a"), "127.0.0.1", str(free_port()),
                            "root", key=target.key)
    pc.allow(user, asset_id, native="record")
    def recordings():
        found = set()
        for root, _, files in os.walk(pc.dir):
            found.update(os.path.join(root, f) for f in files
                         if f.endswith(".cast"))
        return found

    before = recordings()
    r = Client(pc.ssh_port).ssh("%s#%s" % (user, asset_id), "echo ran",
                                password=pw)
    assert r.rc != 0 and "ran" not in r.out
    assert r.portcullis_lines(), r.err
    row = pc.session_of(user, "error", kind="exec")
    assert not row.get("recording_path"), row
    assert not row.get("recording_sha256"), row
    after = recordings()
    assert after == before, after - before
