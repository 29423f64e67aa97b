"""The failed-login throttle as a user meets it: after max_failures wrong
passwords within the window the user and the address are locked out (the
right password is refused too, and the report says "denied: locked out"),
the lock ends after lockout_seconds, and every failure is answered only
after failure_delay_ms.

Each test starts a server of its own (`server_factory`): the shared
`proxy` of other modules runs with the throttle off, and a lock here must
not refuse another test's logins."""

import time

from pclib import Client, json_dump, uniq

LOCK = dict(max_failures=3, failure_window_seconds=300, lockout_seconds=60,
            failure_delay_ms=0)


def allowed_user(server, asset_id):
    """A user with a password, allowed on asset_id: (user, password)."""
    pw = "pw-" + uniq()
    user = server.user_add(password=pw)
    server.allow(user, asset_id)
    return user, pw


def attempt(client, user, asset_id, password, source=None):
    """One login with exactly one password attempt (the password method
    only, one prompt, so one ssh run is one failure), running a command
    that shows whether the session started."""
    extra = ["-b", source] if source else []
    return client.ssh("%s#%s" % (user, asset_id), "echo login-ok",
                      password=password, methods="password", extra=extra)


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


def fail_three_times(server, client, user, asset_id):
    for i in range(3):
        before = closed_rows(server)
        assert_refused(attempt(client, user, asset_id, "wrong-%d" % i))
        wait_newest(server, user, "denied: authentication failed", before)


def test_three_failures_lock_the_user_and_the_address(server_factory,
                                                      target):
    server = server_factory(**LOCK)
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    a, pw_a = allowed_user(server, asset_id)
    b, pw_b = allowed_user(server, asset_id)
    c, pw_c = allowed_user(server, asset_id)

    # Before any failure the right password works.
    assert_in(attempt(client, a, asset_id, pw_a))
    fail_three_times(server, client, a, asset_id)

    # Now the right password is refused too, and the report says why.
    before = closed_rows(server)
    assert_refused(attempt(client, a, asset_id, pw_a))
    wait_newest(server, a, "denied: locked out", before)
    # Another user from the same address (127.0.0.1) is locked out as
    # well: failures are counted per address too.
    before = closed_rows(server)
    assert_refused(attempt(client, b, asset_id, pw_b))
    wait_newest(server, b, "denied: locked out", before)
    # The user stays locked from another address (per-user lock) ...
    before = closed_rows(server)
    assert_refused(attempt(client, a, asset_id, pw_a, source="127.0.0.2"))
    wait_newest(server, a, "denied: locked out", before)
    # ... while another user from another address is not affected.
    assert_in(attempt(client, c, asset_id, pw_c, source="127.0.0.2"))

    log = server.log_text()
    assert "user %s locked out after repeated failures" % a in log, \
        server.log_tail()
    assert "address 127.0.0.1 locked out after repeated failures" in log, \
        server.log_tail()
    # Nothing secret in the log.
    for secret in (pw_a, pw_b, pw_c, "wrong-0"):
        assert secret not in log


def test_two_failures_do_not_lock(server_factory, target):
    server = server_factory(**LOCK)
    client = Client(server.ssh_port)
    asset_id = server.target_asset(target)
    a, pw_a = allowed_user(server, asset_id)
    for i in range(2):
        assert_refused(attempt(client, a, asset_id, "wrong-%d" % i))
    assert_in(attempt(client, a, asset_id, pw_a))
    # The success forgot the two failures: two more do not lock either.
    for i in range(2):
        assert_refused(attempt(client, a, asset_id, "wrong-%d" % i))
    assert_in(attempt(client, a, asset_id, pw_a))


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
    fail_three_times(server, client, a, asset_id)
    before = closed_rows(server)
    assert_refused(attempt(client, a, asset_id, pw_a))
    wait_newest(server, a, "denied: locked out", before)
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
