"""The failed-login throttle as a user meets it (docs/security.md,
"Lockouts"). Failures are counted per source address and, per user, per
failing factor (password, TOTP), the user being the one the login resolves
to, whatever its spelling. After max_failures within the window the key is
locked for lockout_seconds: a locked password refuses the right password
too but leaves the user's key login working from a clean address; a locked
address refuses every user. The report and the audit log say which lock
refused a login, and every failure is answered only after failure_delay_ms.

Each test starts a server of its own (`server_factory`): the shared
`proxy` of other modules runs with the throttle off, and a lock here must
not refuse another test's logins."""

import http.client
import json
import time

from pclib import (Client, fresh_totp_code, json_dump, keygen,
                   totp_wrong_code, uniq)

LOCK = dict(max_failures=3, failure_window_seconds=300, lockout_seconds=60,
            failure_delay_ms=0)

PW_LOCKED = "denied: locked out: password locked after too many wrong " \
    "passwords"
TOTP_LOCKED = "denied: locked out: TOTP locked after too many wrong codes"


def addr_locked(ip):
    return "denied: locked out: too many failures from %s" % ip


def allowed_user(server, asset_id):
    """A user with a password, allowed on asset_id: (user, password)."""
    pw = "pw-" + uniq()
    user = server.user_add(password=pw)
    server.allow(user, asset_id)
    return user, pw


def user_id(server, user):
    _, out, _ = server.cli("user", "show", user, "--json")
    return json.loads(out)["id"]


def attempt(client, user, asset_id, password, source=None):
    """One login with exactly one password attempt (the password method
    only, one prompt, so one ssh run is one failure), running a command
    that shows whether the session started."""
    extra = ["-b", source] if source else []
    return client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                      password=password, methods="password", extra=extra)


def key_attempt(client, user, asset_id, key, source=None):
    extra = ["-b", source] if source else []
    return client.ssh("%s#%s" % (user, asset_id), "echo login-ok", key=key,
                      methods="publickey", extra=extra)


def assert_in(r):
    assert r.rc == 0, r
    assert r.out == "login-ok\n", r


def assert_refused(r):
    assert r.rc == 255, r
    assert "Permission denied" in r.err, r
    assert "login-ok" not in r.out, r


def wait_newest(server, user, result, before, timeout=20.0):
    """Waits until the report has more than `before` closed rows and the
    newest closed row is user's with exactly `result` (rows are closed a
    moment after the client exits); fails showing the newest rows."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in server.sessions() if r.get("result")]
        if len(rows) > before and rows[0]["user"] == user and \
                rows[0]["result"] == result:
            return rows[0]
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    raise AssertionError(
        "newest report row is not user=%r result=%r (rows before: %d); "
        "newest rows:\n%s" % (user, result, before, json_dump(rows[:5])))


def closed_rows(server):
    return len([r for r in server.sessions() if r.get("result")])


def fail_once(server, client, user, asset_id, source=None, i=0):
    before = closed_rows(server)
    assert_refused(attempt(client, user, asset_id, "wrong-%d" % i, source))
    wait_newest(server, user, "denied: authentication failed", before)


def audit_details(server, action):
    _, out, _ = server.cli("audit", "list", "--json", "--action", action,
                           "--limit", "1000")
    return [e.get("detail", "") for e in json.loads(out)]


def test_spellings_of_one_user_share_one_password_counter(server_factory,
                                                          target, tmp_path):
    server = server_factory(**LOCK)
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    a, pw_a = allowed_user(server, asset_id)
    key = keygen(tmp_path / "akey")
    server.key_add(a, str(key) + ".pub")
    uid = user_id(server, a)
    spellings = [a, uid.lower(), uid.upper()]
    # The name, the ID and the ID in capitals each log in (the grammar's
    # principal is a name or an ID, either case) ...
    for s in spellings:
        assert_in(attempt(client, s, asset_id, pw_a, source="127.0.0.8"))
    # ... and one wrong password under each spelling, each from another
    # address (so no address reaches max_failures), locks her password:
    # three spellings are one user, not three fresh counters.
    for i, (s, src) in enumerate(zip(spellings,
                                     ["127.0.0.1", "127.0.0.2",
                                      "127.0.0.4"])):
        fail_once(server, client, s, asset_id, source=src, i=i)
    # The right password is refused now, under any spelling, from a clean
    # address, and the report says why.
    for s in spellings:
        before = closed_rows(server)
        assert_refused(attempt(client, s, asset_id, pw_a, source="127.0.0.5"))
        wait_newest(server, s, PW_LOCKED, before)
    # Her key login still works, from another address: a password lock is
    # no denial of service on her key.
    assert_in(key_attempt(client, a, asset_id, key, source="127.0.0.3"))
    # The audit log says what was locked, for how long and why.
    locks = audit_details(server, "login.lock")
    assert any("password of user id %s" % uid in d and "60 s" in d and
               "3 failures" in d for d in locks), locks
    log = server.log_text()
    assert "password of user id %s" % uid in log, server.log_tail()
    assert pw_a not in log and "wrong-0" not in log


def test_failures_lock_the_password_and_the_address(server_factory, target,
                                                    tmp_path):
    server = server_factory(**LOCK)
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    a, pw_a = allowed_user(server, asset_id)
    b, pw_b = allowed_user(server, asset_id)
    c, pw_c = allowed_user(server, asset_id)
    key = keygen(tmp_path / "bkey")
    server.key_add(b, str(key) + ".pub")

    # Before any failure the right password works.
    assert_in(attempt(client, a, asset_id, pw_a))
    for i in range(3):
        fail_once(server, client, a, asset_id, i=i)

    # From 127.0.0.1 everyone is refused now, by the address lock: a, b by
    # password and b by key.
    before = closed_rows(server)
    assert_refused(attempt(client, a, asset_id, pw_a))
    wait_newest(server, a, addr_locked("127.0.0.1"), before)
    before = closed_rows(server)
    assert_refused(attempt(client, b, asset_id, pw_b))
    wait_newest(server, b, addr_locked("127.0.0.1"), before)
    before = closed_rows(server)
    assert_refused(key_attempt(client, b, asset_id, key))
    wait_newest(server, b, addr_locked("127.0.0.1"), before)
    # a's password stays locked from another address (per-user lock) ...
    before = closed_rows(server)
    assert_refused(attempt(client, a, asset_id, pw_a, source="127.0.0.2"))
    wait_newest(server, a, PW_LOCKED, before)
    # ... while others from there are not affected, by password or key.
    assert_in(attempt(client, c, asset_id, pw_c, source="127.0.0.2"))
    assert_in(key_attempt(client, b, asset_id, key, source="127.0.0.2"))

    locks = audit_details(server, "login.lock")
    assert any("address 127.0.0.1 locked for 60 s" in d for d in locks), locks
    log = server.log_text()
    assert "address 127.0.0.1 locked for 60 s after 3 failures" in log, \
        server.log_tail()
    for secret in (pw_a, pw_b, pw_c, "wrong-0"):
        assert secret not in log


def test_failing_source_is_throttled_for_every_user(server_factory, target,
                                                    tmp_path):
    server = server_factory(**LOCK)
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    b, pw_b = allowed_user(server, asset_id)
    key = keygen(tmp_path / "bkey")
    server.key_add(b, str(key) + ".pub")
    # Three names that exist nowhere, from one address: the address is
    # counted even when the user is unknown.
    for i in range(3):
        fail_once(server, client, "nobody-%d-%s" % (i, uniq()), asset_id,
                  source="127.0.0.6", i=i)
    before = closed_rows(server)
    assert_refused(attempt(client, b, asset_id, pw_b, source="127.0.0.6"))
    wait_newest(server, b, addr_locked("127.0.0.6"), before)
    before = closed_rows(server)
    assert_refused(key_attempt(client, b, asset_id, key, source="127.0.0.6"))
    wait_newest(server, b, addr_locked("127.0.0.6"), before)
    # From another address b is fine.
    assert_in(attempt(client, b, asset_id, pw_b, source="127.0.0.7"))
    assert_in(key_attempt(client, b, asset_id, key, source="127.0.0.7"))


def test_unknown_user_locks_like_a_known_one(server_factory, target):
    """No user enumeration: a name that exists nowhere is counted and
    locked exactly as a real user's password is, with the same answer."""
    server = server_factory(**LOCK)
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    a, _ = allowed_user(server, asset_id)
    ghost = "ghost-" + uniq()
    for name in (a, ghost):
        for i, src in enumerate(["127.0.0.1", "127.0.0.2", "127.0.0.4"]):
            fail_once(server, client, name, asset_id, source=src, i=i)
    for name in (a, ghost):
        before = closed_rows(server)
        r = attempt(client, name, asset_id, "anything", source="127.0.0.5")
        assert_refused(r)
        wait_newest(server, name, PW_LOCKED, before)
    # What the client sees is the same, word for word.
    ra = attempt(client, a, asset_id, "anything", source="127.0.0.5")
    rg = attempt(client, ghost, asset_id, "anything", source="127.0.0.5")
    assert (ra.rc, ra.out) == (rg.rc, rg.out)
    assert ra.err.replace(a, "X") == rg.err.replace(ghost, "X")


def test_wrong_totp_codes_lock_the_totp_factor(server_factory, target):
    server = server_factory(**LOCK)
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    a, pw_a = allowed_user(server, asset_id)
    secret = server.totp_enable(a)
    srcs = ["127.0.0.1", "127.0.0.2", "127.0.0.4"]
    for i, src in enumerate(srcs):
        before = closed_rows(server)
        r = attempt(client, "%s?%s" % (a, totp_wrong_code(secret)), asset_id,
                    pw_a, source=src)
        assert_refused(r)
        wait_newest(server, a, "denied: wrong TOTP code", before)
    # The right password and a code: refused by the TOTP lock, and said so.
    before = closed_rows(server)
    r = attempt(client, "%s?%s" % (a, fresh_totp_code(secret)), asset_id, pw_a,
                source="127.0.0.5")
    assert_refused(r)
    wait_newest(server, a, TOTP_LOCKED, before)
    locks = audit_details(server, "login.lock")
    assert any(d.startswith("totp of user id ") for d in locks), locks


def test_a_success_forgets_the_users_failures_not_the_addresss(
        server_factory, target):
    server = server_factory(**LOCK)
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    a, pw_a = allowed_user(server, asset_id)
    b, pw_b = allowed_user(server, asset_id)
    for i in range(2):
        assert_refused(attempt(client, a, asset_id, "wrong-%d" % i))
    assert_in(attempt(client, a, asset_id, pw_a, source="127.0.0.2"))
    # The success forgot a's two failures: two more (from elsewhere) do
    # not lock her.
    for i in range(2):
        assert_refused(attempt(client, a, asset_id, "wrong-%d" % i,
                               source="127.0.0.4"))
    assert_in(attempt(client, a, asset_id, pw_a, source="127.0.0.2"))
    # But 127.0.0.1 keeps its two: one more failure there (any user)
    # locks it, though nobody failed three times in a row.
    assert_refused(attempt(client, b, asset_id, "wrong"))
    before = closed_rows(server)
    assert_refused(attempt(client, b, asset_id, pw_b))
    wait_newest(server, b, addr_locked("127.0.0.1"), before)


def test_failures_outside_the_window_do_not_lock(server_factory, target):
    server = server_factory(**dict(LOCK, failure_window_seconds=2))
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    a, pw_a = allowed_user(server, asset_id)
    for i in range(2):
        assert_refused(attempt(client, a, asset_id, "wrong-%d" % i))
    time.sleep(2.5)
    # The third failure is more than the window after the first.
    assert_refused(attempt(client, a, asset_id, "wrong-2"))
    assert_in(attempt(client, a, asset_id, pw_a))


def test_lock_ends_after_lockout_seconds(server_factory, target):
    server = server_factory(**dict(LOCK, lockout_seconds=2))
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    a, pw_a = allowed_user(server, asset_id)
    for i in range(3):
        fail_once(server, client, a, asset_id, i=i)
    before = closed_rows(server)
    assert_refused(attempt(client, a, asset_id, pw_a))
    wait_newest(server, a, addr_locked("127.0.0.1"), before)
    time.sleep(3)
    assert_in(attempt(client, a, asset_id, pw_a))
    server.session_of(a, "ok", kind="exec")


def timed_failures(server, target, n):
    """Seconds each of n wrong passwords takes to be refused, as a user
    waits for it (the whole ssh run: connect, key exchange, one attempt,
    "Permission denied")."""
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    a, _ = allowed_user(server, asset_id)
    took = []
    for i in range(n):
        t0 = time.monotonic()
        r = attempt(client, a, asset_id, "wrong-%d" % i)
        took.append(time.monotonic() - t0)
        assert_refused(r)
    return took


def test_failure_delay(server_factory, target):
    # A lower bound: load on the machine can only make it longer.
    slow = timed_failures(server_factory(failure_delay_ms=1000), target, 2)
    assert min(slow) >= 1.0, "failure_delay_ms=1000, refused after %s s" % (
        ", ".join("%.3f" % t for t in slow))
    # Without the delay a refusal takes about 0.1 s (argon2id and the
    # key exchange); the fastest of three, so that a busy machine does
    # not fail the test.
    fast = timed_failures(server_factory(failure_delay_ms=0), target, 3)
    assert min(fast) < 0.7, "failure_delay_ms=0, refused after %s s" % (
        ", ".join("%.3f" % t for t in fast))


def api_login(server, user, password, source):
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port,
                                      timeout=60, source_address=(source, 0))
    try:
        conn.request("POST", "/api/v1/login", body=json.dumps(
            {"username": user, "password": password}),
            headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def test_api_logins_lock_the_resolved_user_and_the_address(server_factory,
                                                           tmp_path, target):
    server = server_factory(**LOCK)
    server.wait_http()
    asset_id = server.target_asset(target)
    a, pw_a = allowed_user(server, asset_id)
    b, pw_b = allowed_user(server, asset_id)
    key = keygen(tmp_path / "akey")
    server.key_add(a, str(key) + ".pub")
    uid = user_id(server, a)
    # One wrong password under each spelling, each from its own address.
    for s, src in zip([a, uid, uid.upper()],
                      ["127.0.4.1", "127.0.4.2", "127.0.4.3"]):
        assert api_login(server, s, "wrong", src) == 401
    # Her password is locked, under any spelling, from a clean address ...
    assert api_login(server, a, pw_a, "127.0.4.4") == 429
    assert api_login(server, uid, pw_a, "127.0.4.4") == 429
    # ... her key login over SSH still works, b is not affected.
    assert_in(key_attempt(Client(server.ssh_port), a, asset_id, key,
                          source="127.0.4.5"))
    assert api_login(server, b, pw_b, "127.0.4.4") == 200
    # Three failures from one address (any names) lock it for everyone.
    for name in ("ghost-1", "ghost-2", b):
        assert api_login(server, name, "wrong", "127.0.4.6") == 401
    assert api_login(server, b, pw_b, "127.0.4.6") == 429
    assert api_login(server, b, pw_b, "127.0.4.7") == 200
    fails = audit_details(server, "login.fail")
    assert "api: locked out: password locked" in fails, fails
    assert "api: locked out: too many failures from this address" in fails
    locks = audit_details(server, "login.lock")
    assert any("password of user id %s" % uid in d for d in locks), locks
    assert any("address 127.0.4.6 locked" in d for d in locks), locks


def test_ssh_and_api_failures_count_together(server_factory, target):
    """One table for both doors: two wrong passwords over SSH and one over
    the API lock her password for both."""
    server = server_factory(**LOCK)
    server.wait_http()
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    a, pw_a = allowed_user(server, asset_id)
    fail_once(server, client, a, asset_id, source="127.0.6.1", i=0)
    fail_once(server, client, a, asset_id, source="127.0.6.2", i=1)
    assert api_login(server, a, "wrong-2", "127.0.6.3") == 401
    assert api_login(server, a, pw_a, "127.0.6.4") == 429
    before = closed_rows(server)
    assert_refused(attempt(client, a, asset_id, pw_a, source="127.0.6.4"))
    wait_newest(server, a, PW_LOCKED, before)
