"""The REST API (issue 5) over real HTTP against a real `portcullis serve`.

Covers: login with and without TOTP, logout, the API token lifecycle
(create, use, disable, enable, expire, delete, from the API and the CLI),
token filters, every resource's happy path, site-role permissions, the
refusals (no token, bad signature, alg none, other algorithms, expired,
wrong role, malformed JSON, unknown fields, 413, 404, 405) with the server
still serving after each, that what the API creates works through the SSH
proxy and shows in the CLI, and that every route docs/api.md names exists.
"""

import base64
import hashlib
import hmac
import http.client
import json
import re
import time

import pytest

import pclib
from pclib import REPO, totp_code, uniq

API = "/api/v1"


# ----------------------------------------------------------------- helpers

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        self.json = None
        if headers.get("content-type", "").startswith("application/json") \
                and body:
            self.json = json.loads(body)

    @property
    def data(self):
        return self.json["data"]

    def error_code(self):
        return self.json["errors"][0]["code"] if self.json else None

    def __repr__(self):
        return "<%d %s>" % (self.status, self.raw[:800])


def call(port, method, path, body=None, token=None, raw=None, headers=None):
    """One request on a fresh connection; returns a Resp."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    hdrs = dict(headers or {})
    data = raw
    if data is None and body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        hdrs.setdefault("Content-Type", "application/json")
    if token:
        hdrs["Authorization"] = "Bearer " + token
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        out = Resp(r.status, {k.lower(): v for k, v in r.getheaders()},
                   r.read())
    finally:
        conn.close()
    return out


def assert_error_shape(r, status, code=None):
    assert r.status == status, r
    assert set(r.json) == {"errors"}, r
    err = r.json["errors"][0]
    assert set(err) == {"code", "title", "detail"}, r
    if code:
        assert err["code"] == code, r


def login(port, user, password, totp=None):
    body = {"username": user, "password": password}
    if totp is not None:
        body["totp"] = totp
    return call(port, "POST", API + "/login", body)


def still_serving(port):
    r = call(port, "GET", "/healthz")
    assert r.status == 200 and r.data["status"] == "ok", r


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_json(o):
    return b64url(json.dumps(o, separators=(",", ":")).encode())


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@pytest.fixture(scope="module")
def api(proxy):
    """The module's server with its HTTP port up, and an admin session."""
    proxy.wait_http()
    r = login(proxy.http_port, proxy.admin_user, proxy.admin_password)
    assert r.status == 200, r
    proxy.admin_token = r.data["token"]
    return proxy


def admin_call(api, method, path, body=None, **kw):
    return call(api.http_port, method, path, body, token=api.admin_token, **kw)


def make_user(api, name=None, password="Pw-" + uniq("p"), roles=()):
    """A user made through the API, with site roles granted through it."""
    name = name or uniq("u")
    r = admin_call(api, "POST", API + "/users",
                   {"name": name, "password": password})
    assert r.status == 201, r
    for role in roles:
        site = "/root"
        if isinstance(role, tuple):
            site, role = role
        r = admin_call(api, "POST", API + "/site-roles",
                       {"site": site, "user": name, "role": role})
        assert r.status == 201, r
    return name, password


def session_token(api, name, password):
    r = login(api.http_port, name, password)
    assert r.status == 200, r
    return r.data["token"]


# ------------------------------------------------------ routes and refusals

def test_healthz_404_405(api):
    port = api.http_port
    r = call(port, "GET", "/healthz")
    assert r.status == 200 and r.data["status"] == "ok", r
    assert "meta" in r.json
    r = call(port, "GET", API + "/no-such-thing")
    assert_error_shape(r, 404, "not_found")
    r = call(port, "PUT", API + "/me", token=api.admin_token)
    assert_error_shape(r, 405, "method_not_allowed")
    assert set(x.strip() for x in r.headers["allow"].split(",")) == \
        {"GET", "PATCH"}, r.headers
    r = call(port, "DELETE", API + "/login")
    assert_error_shape(r, 405)
    assert "POST" in r.headers["allow"]
    still_serving(port)


def test_refusals_of_tokens(api):
    port = api.http_port
    good = api.admin_token
    # no token
    r = call(port, "GET", API + "/me")
    assert_error_shape(r, 401, "unauthorized")
    assert r.headers.get("www-authenticate", "").startswith("Bearer")
    # not a bearer token
    r = call(port, "GET", API + "/me", headers={"Authorization": "Basic Zm9v"})
    assert_error_shape(r, 401)
    # garbage
    for bad in ("abc", "a.b", "a.b.c.d", "....", good + "x" * 3000):
        r = call(port, "GET", API + "/me", token=bad)
        assert r.status in (400, 401), (bad[:40], r)
    # bad signature: one character of the signature changed
    head, payload, sig = good.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    r = call(port, "GET", API + "/me", token="%s.%s.%s" % (head, payload,
                                                           flipped))
    assert_error_shape(r, 401)
    # a changed payload with the old signature
    claims = json.loads(unb64url(payload))
    claims["sub"] = "00000000-0000-4000-8000-000000000000"
    r = call(port, "GET", API + "/me",
             token="%s.%s.%s" % (head, b64url_json(claims), sig))
    assert_error_shape(r, 401)
    # alg none, with and without a signature
    none_head = b64url_json({"alg": "none", "typ": "JWT"})
    for t in ("%s.%s." % (none_head, payload),
              "%s.%s.%s" % (none_head, payload, sig)):
        r = call(port, "GET", API + "/me", token=t)
        assert_error_shape(r, 401)
    # another algorithm, signed with a key an attacker might guess
    for alg, fn in (("HS512", hashlib.sha512), ("HS384", hashlib.sha384)):
        h = b64url_json({"alg": alg, "typ": "JWT"})
        s = b64url(hmac.new(b"", ("%s.%s" % (h, payload)).encode(),
                            fn).digest())
        r = call(port, "GET", API + "/me", token="%s.%s.%s" % (h, payload, s))
        assert_error_shape(r, 401)
    # RS256 header (key confusion)
    h = b64url_json({"alg": "RS256", "typ": "JWT"})
    r = call(port, "GET", API + "/me", token="%s.%s.%s" % (h, payload, sig))
    assert_error_shape(r, 401)
    # the good token still works, and the server still serves
    r = call(port, "GET", API + "/me", token=good)
    assert r.status == 200, r
    still_serving(port)


def test_refusals_of_bodies(api):
    port = api.http_port
    t = api.admin_token
    cases = [
        (b"{not json", "invalid_body"),
        (b"[]", "invalid_body"),
        (b'{"name": "x", "bogus": 1}', "invalid_body"),
        (b'{"name": 5}', "invalid_body"),
        (b'{"name": "a", "name": "b"}', "invalid_body"),
        (b'{"password": "x"}', "invalid_body"),  # name missing
        (b'{"name": "a\\u0000b"}', "invalid_body"),
    ]
    for raw, code in cases:
        r = call(port, "POST", API + "/users", raw=raw, token=t)
        assert_error_shape(r, 400, code)
        assert r.json["errors"][0]["detail"], r
    r = call(port, "POST", API + "/users", raw=b'{"name":"x","bogus":1}',
             token=t)
    assert "bogus" in r.json["errors"][0]["detail"]
    # a body on a route without one
    r = call(port, "GET", API + "/me", raw=b'{"a":1}', token=t)
    assert_error_shape(r, 400)
    # unknown query parameters
    r = call(port, "GET", API + "/users?bogus=1", token=t)
    assert_error_shape(r, 400, "invalid_query")
    r = call(port, "GET", API + "/users?page[limit]=0", token=t)
    assert_error_shape(r, 400)
    # 413: declared too large (not even read), and the server goes on
    big = b'{"name":"' + b"a" * (2 * 1024 * 1024) + b'"}'
    try:
        r = call(port, "POST", API + "/users", raw=big, token=t)
        assert_error_shape(r, 413, "payload_too_large")
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server may close before the client has sent it all
    # 413 by the Content-Length alone, on a raw socket
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Content-Length: 99999999\r\n\r\n{")
        got = s.recv(4096)
    assert got.startswith(b"HTTP/1.1 413"), got
    still_serving(port)


# ---------------------------------------------------------- authentication

@pytest.mark.core
def test_login_logout_without_totp(api):
    port = api.http_port
    name, pw = make_user(api)
    r = login(port, name, pw)
    assert r.status == 200, r
    assert r.data["token_type"] == "Bearer"
    assert r.data["user"]["name"] == name
    token = r.data["token"]
    me = call(port, "GET", API + "/me", token=token)
    assert me.status == 200 and me.data["name"] == name, me
    assert me.data["token"]["kind"] == "session"
    assert "password_hash" not in json.dumps(me.json)
    r = login(port, name, pw + "x")
    assert_error_shape(r, 401, "login_failed")
    r = login(port, "nobody-" + uniq(), pw)
    assert_error_shape(r, 401, "login_failed")
    r = call(port, "POST", API + "/logout", token=token)
    assert r.status == 204, r
    r = call(port, "GET", API + "/me", token=token)
    assert_error_shape(r, 401)
    assert "logged out" in r.json["errors"][0]["detail"]
    # a new login works again
    assert login(port, name, pw).status == 200
    # the audit log has the logins
    r = admin_call(api, "GET", API + "/audit?filter[actor]=%s" % name)
    actions = [e["action"] for e in r.data]
    assert "login.ok" in actions and "logout" in actions, r


def test_login_with_totp(api):
    port = api.http_port
    name, pw = make_user(api)
    r = admin_call(api, "POST", API + "/users/%s/totp" % name)
    assert r.status == 200, r
    secret = r.data["secret"]
    assert r.data["uri"].startswith("otpauth://totp/")
    r = admin_call(api, "GET", API + "/users/%s" % name)
    assert r.data["totp_enabled"] is True
    assert secret not in json.dumps(r.json)
    r = login(port, name, pw)
    assert_error_shape(r, 401, "totp_required")
    r = login(port, name, pw, pclib.totp_wrong_code(secret))
    assert_error_shape(r, 401, "login_failed")
    code = pclib.fresh_totp_code(secret)
    r = login(port, name, pw, code)
    assert r.status == 200, r
    # the same code again is a replay
    r = login(port, name, pw, code)
    assert_error_shape(r, 401, "login_failed")
    # a right code with a wrong password fails
    r = login(port, name, pw + "x", totp_code(secret))
    assert_error_shape(r, 401)
    r = admin_call(api, "DELETE", API + "/users/%s/totp" % name)
    assert r.status == 204, r
    assert login(port, name, pw).status == 200


def test_login_lockout(server_factory):
    pc = server_factory(max_failures=3, lockout_seconds=60,
                        failure_window_seconds=60,
                        failure_delay_ms=50).wait_http()
    port = pc.http_port
    for _ in range(3):
        r = login(port, pc.admin_user, "wrong")
        assert r.status == 401, r
    t0 = time.monotonic()
    r = login(port, pc.admin_user, pc.admin_password)
    assert_error_shape(r, 429, "locked_out")
    assert time.monotonic() - t0 >= 0.04  # answered after the delay
    still_serving(port)


# ------------------------------------------------------------- API tokens

@pytest.mark.core
def test_token_lifecycle_api(api):
    port = api.http_port
    name, pw = make_user(api)
    st = session_token(api, name, pw)
    # a user makes their own token
    r = call(port, "POST", API + "/api-tokens",
             {"expires_in": "1h", "description": "ci"}, token=st)
    assert r.status == 201, r
    tok, tid = r.data["token"], r.data["id"]
    assert r.data["user"] == name and r.data["enabled"] is True
    me = call(port, "GET", API + "/me", token=tok)
    assert me.status == 200 and me.data["token"]["kind"] == "api", me
    # details later show everything but the secret
    r = call(port, "GET", API + "/api-tokens/%s" % tid, token=st)
    assert r.status == 200 and "token" not in r.data, r
    assert tok not in json.dumps(r.json)
    r = call(port, "GET", API + "/api-tokens", token=st)
    assert [x["id"] for x in r.data] == [tid], r
    # disable: fails at once; enable: works again
    r = call(port, "PATCH", API + "/api-tokens/%s" % tid, {"enabled": False},
             token=st)
    assert r.status == 200 and r.data["enabled"] is False, r
    r = call(port, "GET", API + "/me", token=tok)
    assert_error_shape(r, 401)
    assert "disabled" in r.json["errors"][0]["detail"]
    r = call(port, "PATCH", API + "/api-tokens/%s" % tid, {"enabled": True},
             token=st)
    assert call(port, "GET", API + "/me", token=tok).status == 200
    # logout does not apply to API tokens
    r = call(port, "POST", API + "/logout", token=tok)
    assert_error_shape(r, 400)
    # delete: fails at once
    r = call(port, "DELETE", API + "/api-tokens/%s" % tid, token=st)
    assert r.status == 204, r
    r = call(port, "GET", API + "/me", token=tok)
    assert_error_shape(r, 401)
    r = call(port, "GET", API + "/api-tokens/%s" % tid, token=st)
    assert_error_shape(r, 404)
    # expiry
    r = call(port, "POST", API + "/api-tokens", {"expires_in": "2s"},
             token=st)
    assert r.status == 201, r
    short = r.data["token"]
    assert call(port, "GET", API + "/me", token=short).status == 200
    time.sleep(3.2)
    r = call(port, "GET", API + "/me", token=short)
    assert_error_shape(r, 401)
    assert "expired" in r.json["errors"][0]["detail"]
    # bad expiry
    r = call(port, "POST", API + "/api-tokens", {"expires_in": "soon"},
             token=st)
    assert_error_shape(r, 400)
    still_serving(port)


@pytest.mark.core
def test_token_lifecycle_cli(api):
    port = api.http_port
    name, _ = make_user(api)
    _, out, _ = api.cli("token", "add", "--user", name, "--expires", "30d",
                        "--description", "from cli")
    kv = pclib.parse_kv(out)
    tok, tid = kv["token"], kv["id"]
    assert pclib.UUID_RE.match(tid)
    r = call(port, "GET", API + "/me", token=tok)
    assert r.status == 200 and r.data["name"] == name, r
    _, out, _ = api.cli("token", "list", "--json")
    rows = [x for x in json.loads(out) if x["id"] == tid]
    assert rows and rows[0]["description"] == "from cli", out
    assert tok not in out
    api.cli("token", "disable", tid)
    assert call(port, "GET", API + "/me", token=tok).status == 401
    api.cli("token", "enable", tid)
    assert call(port, "GET", API + "/me", token=tok).status == 200
    api.cli("token", "delete", tid)
    assert call(port, "GET", API + "/me", token=tok).status == 401
    rc, _, err = api.cli("token", "add", "--user", name, "--expires", "x",
                         check=False)
    # the same words as the API's (tests/e2e/test_admin_roundtrip.py)
    assert rc == 2 and "the expiry needs a duration like 30d" in err
    # the store holds no token, only a hash of its ID
    db = api.store_dump()
    assert tok.encode() not in db
    jti = json.loads(unb64url(tok.split(".")[1]))["jti"]
    assert jti.encode() not in db


def test_token_filters(api):
    port = api.http_port
    name, pw = make_user(api)
    st = session_token(api, name, pw)

    def mk(**filt):
        r = call(port, "POST", API + "/api-tokens",
                 dict(expires_in="1h", **filt), token=st)
        assert r.status == 201, r
        return r.data["token"]

    elsewhere = mk(filter_cidrs=["10.0.0.0/8", "192.0.2.7"])
    r = call(port, "GET", API + "/me", token=elsewhere)
    assert_error_shape(r, 403, "token_filter")
    here = mk(filter_cidrs=["127.0.0.0/8"])
    assert call(port, "GET", API + "/me", token=here).status == 200
    only_me = mk(filter_paths=["/api/v1/me"])
    assert call(port, "GET", API + "/me", token=only_me).status == 200
    r = call(port, "GET", API + "/api-tokens", token=only_me)
    assert_error_shape(r, 403, "token_filter")
    r = call(port, "POST", API + "/api-tokens",
             {"filter_cidrs": ["not-an-address"]}, token=st)
    assert_error_shape(r, 400)
    # CLI filters
    _, out, _ = api.cli("token", "add", "--user", name, "--expires", "1h",
                        "--filter-cidr", "10.1.0.0/16",
                        "--filter-path", "/api/v1/me")
    t = pclib.parse_kv(out)["token"]
    assert call(port, "GET", API + "/me", token=t).status == 403
    still_serving(port)


def scope_refused(r, words):
    """403 token_scope whose detail says why."""
    assert_error_shape(r, 403, "token_scope")
    assert words in r.json["errors"][0]["detail"], r


def test_token_cannot_mint_a_wider_token(api):
    """A filtered or short-lived API token cannot create a token broader
    or longer-lived than itself; a login session (the root) can."""
    port = api.http_port
    name, pw = make_user(api)
    st = session_token(api, name, pw)
    r = call(port, "POST", API + "/api-tokens",
             {"expires_in": "1h",
              "filter_paths": ["/api/v1/me", "/api/v1/api-tokens"]},
             token=st)
    assert r.status == 201, r
    ft, ft_exp = r.data["token"], r.data["expires_at"]
    # no filter at all, or a path outside its own: refused
    r = call(port, "POST", API + "/api-tokens", {}, token=ft)
    scope_refused(r, "wider path filter")
    r = call(port, "POST", API + "/api-tokens",
             {"expires_in": "30m", "filter_paths": ["/api/v1/assets"]},
             token=ft)
    scope_refused(r, "wider path filter")
    r = call(port, "POST", API + "/api-tokens",
             {"expires_in": "30m",
              "filter_paths": ["/api/v1/me", "/api/v1/users"]}, token=ft)
    scope_refused(r, "wider path filter")
    # longer-lived than itself: refused (ten years, or a day)
    for life in ("3650d", "1d"):
        r = call(port, "POST", API + "/api-tokens",
                 {"expires_in": life, "filter_paths": ["/api/v1/me"]},
                 token=ft)
        scope_refused(r, "outlives")
    # narrower and shorter: fine; the default lifetime is cut to its own
    r = call(port, "POST", API + "/api-tokens",
             {"expires_in": "30m", "filter_paths": ["/api/v1/me"]}, token=ft)
    assert r.status == 201 and r.data["filter"]["paths"] == ["/api/v1/me"], r
    r = call(port, "POST", API + "/api-tokens",
             {"filter_paths": ["/api/v1/me"]}, token=ft)
    assert r.status == 201 and r.data["expires_at"] <= ft_exp, r
    # a source filter binds the same way
    r = call(port, "POST", API + "/api-tokens",
             {"expires_in": "1h", "filter_cidrs": ["127.0.0.0/8"]}, token=st)
    assert r.status == 201, r
    ct = r.data["token"]
    r = call(port, "POST", API + "/api-tokens", {"expires_in": "30m"},
             token=ct)
    scope_refused(r, "wider source filter")
    r = call(port, "POST", API + "/api-tokens",
             {"expires_in": "30m", "filter_cidrs": ["0.0.0.0/0"]}, token=ct)
    scope_refused(r, "wider source filter")
    r = call(port, "POST", API + "/api-tokens",
             {"expires_in": "30m", "filter_cidrs": ["127.0.0.1"]}, token=ct)
    assert r.status == 201, r
    # an unfiltered API token still cannot outlive itself
    r = call(port, "POST", API + "/api-tokens", {"expires_in": "1h"},
             token=st)
    plain = r.data["token"]
    r = call(port, "POST", API + "/api-tokens", {"expires_in": "3650d"},
             token=plain)
    scope_refused(r, "outlives")
    # the login session is the root: a ten-year unfiltered token is its call
    r = call(port, "POST", API + "/api-tokens", {"expires_in": "3650d"},
             token=st)
    assert r.status == 201 and r.data["filter"]["paths"] == [], r
    still_serving(port)


def test_token_cannot_widen_itself_or_another(api):
    port = api.http_port
    name, pw = make_user(api)
    st = session_token(api, name, pw)
    r = call(port, "POST", API + "/api-tokens",
             {"expires_in": "1h",
              "filter_paths": ["/api/v1/me", "/api/v1/api-tokens"]},
             token=st)
    assert r.status == 201, r
    ft, fid = r.data["token"], r.data["id"]
    me = API + "/api-tokens/%s" % fid
    # its own filter away, or wider: refused, and the filter still holds
    r = call(port, "PATCH", me, {"filter_paths": []}, token=ft)
    scope_refused(r, "wider path filter")
    r = call(port, "PATCH", me, {"filter_paths": ["/"]}, token=ft)
    scope_refused(r, "wider path filter")
    r = call(port, "GET", me, token=st)
    assert r.data["filter"]["paths"] == ["/api/v1/me", "/api/v1/api-tokens"]
    r = call(port, "GET", API + "/assets", token=ft)
    assert_error_shape(r, 403, "token_filter")
    # narrowing itself is fine
    r = call(port, "PATCH", me,
             {"description": "narrowed",
              "filter_paths": ["/api/v1/me", "/api/v1/api-tokens/"]},
             token=ft)
    assert r.status == 200, r
    # another, broader token of the same user: it may disable it, not
    # enable it again, and not loosen its filter
    r = call(port, "POST", API + "/api-tokens",
             {"expires_in": "1h", "filter_paths": ["/api/v1/me"]}, token=st)
    other = API + "/api-tokens/%s" % r.data["id"]
    r = call(port, "POST", API + "/api-tokens", {"expires_in": "10d"},
             token=st)
    wide = API + "/api-tokens/%s" % r.data["id"]
    r = call(port, "PATCH", wide, {"enabled": False}, token=ft)
    assert r.status == 200 and r.data["enabled"] is False, r
    r = call(port, "PATCH", wide, {"enabled": True}, token=ft)
    scope_refused(r, "wider path filter")
    r = call(port, "PATCH", other, {"filter_paths": []}, token=ft)
    scope_refused(r, "wider path filter")
    r = call(port, "PATCH", other, {"filter_paths": ["/api/v1/assets"]},
             token=ft)
    scope_refused(r, "wider path filter")
    # the session may do all of it
    r = call(port, "PATCH", wide, {"enabled": True}, token=st)
    assert r.status == 200 and r.data["enabled"] is True, r
    r = call(port, "PATCH", me, {"filter_paths": []}, token=st)
    assert r.status == 200 and r.data["filter"]["paths"] == [], r
    still_serving(port)


def terminal_auth(port, token, asset):
    """Opens the browser terminal's WebSocket, sends auth, returns the
    first JSON message the server sends back."""
    import websocket
    ws = websocket.create_connection(
        "ws://127.0.0.1:%d%s/terminal" % (port, API),
        subprotocols=["portcullis-terminal.v1"], timeout=30)
    try:
        ws.send(json.dumps({"type": "auth", "token": token, "asset": asset,
                            "cols": 80, "rows": 24}))
        while True:
            op, data = ws.recv_data()
            if op == websocket.ABNF.OPCODE_TEXT:
                return json.loads(data)
    finally:
        ws.close()


def test_terminal_checks_the_token_filter_on_its_own_path(api):
    """The terminal judges a token's path filter on /api/v1/terminal, not
    on /api/v1/me (which it asks to authenticate)."""
    port = api.http_port
    name, pw = make_user(api)
    st = session_token(api, name, pw)
    asset = "00000000-0000-4000-8000-000000000001"  # no such asset

    def mk(paths):
        r = call(port, "POST", API + "/api-tokens",
                 {"expires_in": "1h", "filter_paths": paths}, token=st)
        assert r.status == 201, r
        return r.data["token"]

    m = terminal_auth(port, mk(["/api/v1/me"]), asset)
    assert m["type"] == "error", m
    assert "may not be used on /api/v1/terminal" in m["detail"], m
    # a token made for the terminal passes the token check (what happens
    # next, with an unknown asset, is the proxy's matter, not the token's)
    for paths in (["/api/v1/terminal"], ["/api/v1/terminal", "/api/v1/me"]):
        m = terminal_auth(port, mk(paths), asset)
        assert m["type"] == "ready" or "token" not in m["detail"], m
    still_serving(port)


# ------------------------------------------------------------ audit chain

def rewrite_audit_unkeyed(pc):
    """Rewrites every hash of the audit chain of pc's store, and its head,
    with the unkeyed formula (docs/store.md): what anyone who can write the
    database, but cannot read the key, can compute."""
    def field(b):
        return len(b).to_bytes(4, "big") + b

    prev = hashlib.sha256(b"portcullis audit v1 genesis").digest()
    rows = pc.store_sql("SELECT seq, time, actor, source, action, target,"
                        " detail FROM audit ORDER BY seq")
    for seq, t, *fields in rows:
        seq, t = int(seq), int(t)
        h = hashlib.sha256(field(b"portcullis audit v1") + prev
                           + seq.to_bytes(8, "big") + t.to_bytes(8, "big")
                           + b"".join(field(x.encode()) for x in fields))
        pc.store_sql("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?",
                     prev.hex(), h.hexdigest(), seq)
        prev = h.digest()
    pc.store_sql("UPDATE audit_head SET hash = ?", prev.hex())
    return len(rows)


def test_audit_chain_is_keyed(pc):
    """Someone who can write the database but not read audit.key cannot
    rewrite the audit log whole any more (issue 11, defect 9)."""
    key = pc.dir / "audit.key"
    assert key.stat().st_mode & 0o777 == 0o600, "init makes the key"
    assert key.stat().st_size == 32
    for g in ("ops", "dev", "qa"):
        pc.cli("group", "add", g)
    rc, out, _ = pc.cli("audit", "verify")
    assert out.startswith("ok: 3 entries, keyed from entry 1"), out
    # an edit to one row (the group's name), then every hash rewritten
    # with the unkeyed formula: this verified before the chain had a key
    pc.store_sql("UPDATE audit SET target = 'nobody' WHERE seq = 2")
    assert rewrite_audit_unkeyed(pc) == 3
    rc, out, err = pc.cli("audit", "verify", check=False)
    assert rc == 1, (out, err)
    assert "no entry is keyed" in err and "rewritten" in err, err
    # without the key the same rewrite looks consistent; verify says what
    # that is worth, and a copy of the key still catches it
    away = pc.dir / "audit.key.copy"
    key.rename(away)
    rc, out, err = pc.cli("audit", "verify")
    assert out.startswith("ok: 3 entries, not keyed"), out
    assert "could have rewritten it whole" in err, err
    rc, out, err = pc.cli("audit", "verify", "--key", str(away), check=False)
    assert rc == 1 and "no entry is keyed" in err, (out, err)
    # the server's next (keyed) entry does not make it pass for an old,
    # unkeyed log: keyed hashing starts only with its marker
    away.rename(key)
    pc.cli("group", "add", "sec")
    rc, out, err = pc.cli("audit", "verify", check=False)
    assert rc == 1 and "broken at entry 3" in err, (out, err)
    assert "does not start with its marker" in err, err


# ------------------------------------------------------------ permissions

@pytest.mark.core
def test_roles_are_enforced(api):
    port = api.http_port
    # no site role: own profile and tokens only
    plain, pw = make_user(api)
    st = session_token(api, plain, pw)
    assert call(port, "GET", API + "/me", token=st).status == 200
    for method, path in (("GET", "/users"), ("GET", "/assets"),
                         ("GET", "/audit"), ("GET", "/sessions"),
                         ("GET", "/site-roles")):
        r = call(port, method, API + path, token=st)
        assert_error_shape(r, 403, "forbidden")
    r = call(port, "GET", "/metrics", token=st)
    assert_error_shape(r, 403)
    r = call(port, "POST", API + "/api-tokens", {"user": "admin"}, token=st)
    assert_error_shape(r, 403)
    r = call(port, "PATCH", API + "/me",
             {"current_password": pw, "password": pw + "2"}, token=st)
    assert r.status == 204, r
    assert login(port, plain, pw + "2").status == 200
    # someone else's token: 403
    r = admin_call(api, "POST", API + "/api-tokens", {"expires_in": "1h"})
    admin_tid = r.data["id"]
    r = call(port, "DELETE", API + "/api-tokens/%s" % admin_tid, token=st)
    assert_error_shape(r, 403)

    # configuration-manager: configuration, not users and roles
    cm, cpw = make_user(api, roles=["configuration-manager"])
    ct = session_token(api, cm, cpw)
    assert call(port, "GET", API + "/assets", token=ct).status == 200
    r = call(port, "POST", API + "/groups", {"name": uniq("g")}, token=ct)
    assert r.status == 201, r
    r = call(port, "POST", API + "/users", {"name": uniq("u")}, token=ct)
    assert_error_shape(r, 403)
    r = call(port, "POST", API + "/site-roles",
             {"user": cm, "role": "administrator"}, token=ct)
    assert_error_shape(r, 403)
    assert call(port, "GET", "/metrics", token=ct).status == 200

    # service: metrics, nothing of the configuration
    sv, spw = make_user(api, roles=["service"])
    svt = session_token(api, sv, spw)
    assert call(port, "GET", "/metrics", token=svt).status == 200
    assert call(port, "GET", API + "/assets", token=svt).status == 403

    # a role on a sub-site covers that site only
    site = "/root/" + uniq("s")
    assert admin_call(api, "POST", API + "/sites", {"path": site}).status \
        == 201
    sub, subpw = make_user(api, roles=[(site, "configuration-manager")])
    sbt = session_token(api, sub, subpw)
    r = call(port, "POST", API + "/assets",
             {"name": uniq("a"), "host": "127.0.0.1", "site": site},
             token=sbt)
    assert r.status == 201, r
    aid = r.data["id"]
    assert call(port, "GET", API + "/assets/%s" % aid, token=sbt).status \
        == 200
    r = call(port, "POST", API + "/assets",
             {"name": uniq("a"), "host": "127.0.0.1"}, token=sbt)
    assert_error_shape(r, 403)
    # a role through a group counts
    g = uniq("g")
    admin_call(api, "POST", API + "/groups", {"name": g})
    viag, vpw = make_user(api)
    assert admin_call(api, "POST", API + "/groups/%s/members" % g,
                      {"user": viag}).status == 201
    assert admin_call(api, "POST", API + "/site-roles",
                      {"group": g, "role": "configuration-manager"}).status \
        == 201
    vt = session_token(api, viag, vpw)
    assert call(port, "GET", API + "/assets", token=vt).status == 200
    # role list in the CLI
    _, out, _ = api.cli("role", "list", "--json")
    assert any(r["grantee"] == g for r in json.loads(out))
    still_serving(port)


# -------------------------------------------------------------- resources

@pytest.mark.core
def test_users_keys_groups(api, tmp_path):
    port = api.http_port
    name, pw = make_user(api)
    r = admin_call(api, "GET", API + "/users?filter[name]=%s" % name)
    assert r.status == 200 and [u["name"] for u in r.data] == [name], r
    assert r.json["meta"]["total"] == 1
    uid = r.data[0]["id"]
    r = admin_call(api, "GET", API + "/users/%s" % uid)
    assert r.data["name"] == name and r.data["has_password"] is True
    r = admin_call(api, "GET", API + "/users?sort=-name&page[limit]=2"
                   "&page[offset]=0")
    assert r.status == 200 and len(r.data) <= 2, r
    names = [u["name"] for u in admin_call(
        api, "GET", API + "/users?sort=name&page[limit]=1000").data]
    assert names == sorted(names)
    r = admin_call(api, "PATCH", API + "/users/%s" % name, {"disabled": True})
    assert r.status == 200 and r.data["disabled"] is True, r
    assert login(port, name, pw).status == 401
    admin_call(api, "PATCH", API + "/users/%s" % name, {"disabled": False})
    # keys
    key = pclib.keygen(tmp_path / "k")
    pub = (tmp_path / "k.pub").read_text().strip()
    r = admin_call(api, "POST", API + "/users/%s/keys" % name,
                   {"public_key": pub})
    assert r.status == 201, r
    assert r.data["fingerprint"] == pclib.key_fingerprint(str(key) + ".pub")
    kid = r.data["id"]
    r = admin_call(api, "GET", API + "/users/%s/keys" % name)
    assert [k["id"] for k in r.data] == [kid]
    r = admin_call(api, "POST", API + "/users/%s/keys" % name,
                   {"public_key": "ssh-ed25519 AAAAnotakey"})
    assert_error_shape(r, 400)
    assert admin_call(api, "DELETE", API + "/users/%s/keys/%s" % (
        name, kid)).status == 204
    # groups and members
    g = uniq("g")
    r = admin_call(api, "POST", API + "/groups", {"name": g})
    assert r.status == 201 and r.data["members"] == [], r
    r = admin_call(api, "POST", API + "/groups", {"name": g})
    assert_error_shape(r, 409)
    r = admin_call(api, "POST", API + "/groups/%s/members" % g,
                   {"user": name})
    assert r.status == 201 and r.data["members"] == [name], r
    r = admin_call(api, "GET", API + "/groups/%s/members" % g)
    assert [u["name"] for u in r.data] == [name]
    _, out, _ = api.cli("group", "list", "--json")
    assert any(x["name"] == g and name in x["members"]
               for x in json.loads(out)), out
    assert admin_call(api, "DELETE", API + "/groups/%s/members/%s" % (
        g, name)).status == 204
    assert admin_call(api, "DELETE", API + "/groups/%s" % g).status == 204
    assert admin_call(api, "GET", API + "/groups/%s" % g).status == 404
    # delete the user
    assert admin_call(api, "DELETE", API + "/users/%s" % name).status == 204
    assert admin_call(api, "GET", API + "/users/%s" % name).status == 404
    # every change is in the audit log, by the admin, from the client
    r = admin_call(api, "GET", API + "/audit?filter[action]=user.add"
                   "&filter[target]=%s" % name)
    assert len(r.data) == 1, r
    assert r.data[0]["actor"] == "admin"
    assert r.data[0]["source"].startswith("127.0.0.1")
    assert pw not in json.dumps(admin_call(api, "GET", API + "/audit").json)


@pytest.mark.core
def test_sites_assets_grants_profiles(api):
    site = "/root/" + uniq("s")
    r = admin_call(api, "POST", API + "/sites", {"path": site + "/sub"})
    assert r.status == 201 and r.data["path"] == site + "/sub", r
    sub_id = r.data["id"]
    r = admin_call(api, "GET", API + "/sites?filter[path]=%s" % site)
    assert len(r.data) == 1, r
    assert admin_call(api, "GET", API + "/sites/%s" % sub_id).status == 200
    # assets: the vaulted login is write-only
    secret = "Vaulted-" + uniq("pw")
    r = admin_call(api, "POST", API + "/assets",
                   {"name": uniq("a"), "host": "127.0.0.1", "port": 2222,
                    "site": site, "login": "root", "password": secret})
    assert r.status == 201, r
    aid = r.data["id"]
    assert r.data["has_password"] is True and r.data["site"] == site
    assert secret not in json.dumps(r.json)
    r = admin_call(api, "GET", API + "/assets/%s" % aid)
    assert r.status == 200 and secret not in r.raw.decode(), r
    assert "password_sealed" not in r.raw.decode()
    r = admin_call(api, "PATCH", API + "/assets/%s" % aid,
                   {"port": 2200, "password": None})
    assert r.status == 200 and r.data["port"] == 2200, r
    assert r.data["has_password"] is False
    r = admin_call(api, "POST", API + "/assets",
                   {"name": uniq("a"), "host": "bad host!"})
    assert_error_shape(r, 400)
    r = admin_call(api, "POST", API + "/assets",
                   {"name": uniq("a"), "host": "h", "port": 70000})
    assert_error_shape(r, 400)
    # a site with assets is not deleted
    r = admin_call(api, "GET", API + "/sites?filter[path]=%s" % site)
    r = admin_call(api, "DELETE", API + "/sites/%s" % r.data[0]["id"])
    assert_error_shape(r, 409)
    # grants on the asset
    user, _ = make_user(api)
    r = admin_call(api, "POST", API + "/assets/%s/grants" % aid,
                   {"user": user, "role": "editor"})
    assert r.status == 201 and r.data["role"] == "editor", r
    gid = r.data["id"]
    r = admin_call(api, "GET", API + "/assets/%s/grants" % aid)
    assert [g["id"] for g in r.data] == [gid]
    r = admin_call(api, "POST", API + "/assets/%s/grants" % aid,
                   {"user": user, "role": "emperor"})
    assert_error_shape(r, 400)
    assert admin_call(api, "DELETE", API + "/assets/%s/grants/%s" % (
        aid, gid)).status == 204
    # access profiles and assignments
    pname = uniq("p")
    r = admin_call(api, "POST", API + "/access-profiles",
                   {"name": pname, "native": "record", "exec": False,
                    "local_forward": True, "max_session_minutes": 30})
    assert r.status == 201, r
    assert r.data["native_session"] == "record" and r.data["exec"] is False
    assert r.data["shell"] is True and r.data["local_forward"] is True
    r = admin_call(api, "PATCH", API + "/access-profiles/%s" % pname,
                   {"native": "allow"})
    assert r.data["native_session"] == "allow", r
    r = admin_call(api, "POST", API + "/access-profiles/%s/assignments"
                   % pname, {"user": user})
    assert r.status == 201, r
    r = admin_call(api, "GET", API + "/users/%s" % user)
    assert r.data["profiles"] == [pname], r
    assert admin_call(api, "DELETE", API + "/access-profiles/%s/assignments/"
                      "user/%s" % (pname, user)).status == 204
    assert admin_call(api, "DELETE", API + "/access-profiles/%s" % pname) \
        .status == 204
    # delete the asset
    assert admin_call(api, "DELETE", API + "/assets/%s" % aid).status == 204
    assert admin_call(api, "GET", API + "/assets/%s" % aid).status == 404
    assert admin_call(api, "DELETE", API + "/sites/%s" % sub_id).status == 204


@pytest.mark.core
def test_sessions_audit_metrics(api):
    port = api.http_port
    r = admin_call(api, "GET", API + "/sessions?page[limit]=5")
    assert r.status == 200 and isinstance(r.data, list), r
    assert r.json["meta"]["limit"] == 5
    r = admin_call(api, "GET", API + "/sessions?filter[result]=denied")
    assert r.status == 200, r
    r = admin_call(api, "GET", API + "/sessions/%s" %
                   "00000000-0000-4000-8000-000000000000")
    assert_error_shape(r, 404)
    r = admin_call(api, "GET", API + "/sessions/%s/recording" %
                   "00000000-0000-4000-8000-000000000000")
    assert_error_shape(r, 404)
    r = admin_call(api, "GET", API + "/audit?sort=-seq&page[limit]=3")
    assert r.status == 200 and len(r.data) <= 3, r
    seqs = [e["seq"] for e in r.data]
    assert seqs == sorted(seqs, reverse=True)
    r = call(port, "GET", "/metrics", token=api.admin_token)
    assert r.status == 200, r
    text = r.raw.decode()
    for name in ("portcullis_sessions_total", "portcullis_agents_online 0",
                 "portcullis_auth_failures_total", "portcullis_bytes_relayed"):
        assert name in text, text


# ---------------------------------------------- through the proxy, the CLI

@pytest.mark.core
def test_api_made_user_and_asset_work_through_ssh(api, target, ssh_client):
    user, pw = make_user(api)
    key = target.key.read_text()
    aname = uniq("a")
    r = admin_call(api, "POST", API + "/assets",
                   {"name": aname, "host": target.host, "port": target.port,
                    "login": "root", "private_key": key,
                    "host_key_fingerprint": target.fingerprint})
    assert r.status == 201, r
    aid = r.data["id"]
    assert r.data["has_key"] is True and key not in r.raw.decode()
    assert admin_call(api, "POST", API + "/assets/%s/grants" % aid,
                      {"user": user, "role": "viewer"}).status == 201
    prof = uniq("p")
    assert admin_call(api, "POST", API + "/access-profiles",
                      {"name": prof, "native": "allow"}).status == 201
    assert admin_call(api, "POST", API + "/access-profiles/%s/assignments"
                      % prof, {"user": user}).status == 201
    res = ssh_client.ssh("%s#%s" % (user, aid), "echo via-api", password=pw)
    assert res.rc == 0 and res.out.strip() == "via-api", res
    # the CLI sees what the API made
    _, out, _ = api.cli("user", "list", "--json")
    assert any(u["name"] == user for u in json.loads(out))
    _, out, _ = api.cli("asset", "show", aid, "--json")
    assert json.loads(out)["name"] == aname
    # and the API sees the session
    row = api.session_of(user, result="ok")
    r = admin_call(api, "GET", API + "/sessions?filter[user]=%s" % user)
    assert row["id"] in [s["id"] for s in r.data], r
    r = admin_call(api, "GET", API + "/sessions/%s/recording" % row["id"])
    assert r.status == 404, r


# ------------------------------------------------------ docs/api.md routes

ROUTE_RE = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*`([^`]+)`")


def documented_routes():
    routes = []
    for line in (REPO / "docs" / "api.md").read_text().splitlines():
        m = ROUTE_RE.match(line)
        if m:
            routes.append((m.group(1), m.group(2)))
    return routes


def test_every_documented_route_exists(api):
    routes = documented_routes()
    assert len(routes) >= 40, routes
    for method, path in routes:
        concrete = re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000",
                          path)
        if method in ("POST", "PATCH", "PUT"):
            # an invalid body: the route must exist to say so
            r = admin_call(api, method, concrete, raw=b'{"x-unknown": 1}')
        elif method == "DELETE":
            r = admin_call(api, "GET", concrete + "/x-nothing-here")
            # deleting nothing must not be a missing route either
            r = admin_call(api, method, concrete)
        else:
            r = admin_call(api, method, concrete)
        assert r.status != 405, (method, path, r)
        if r.status == 404:
            assert "no such resource" not in r.raw.decode(), \
                (method, path, r)
    # logout last: it ends the admin session used above
    still_serving(api.http_port)


def test_https_when_a_certificate_is_configured(pc, tmp_path):
    """[http] tls_cert / tls_key: the API answers over TLS only."""
    import ssl
    import subprocess
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", "/CN=127.0.0.1"], check=True,
                   capture_output=True, timeout=60)
    pc.set_config("http", "tls_cert", str(cert))
    pc.set_config("http", "tls_key", str(key))
    pc.start().wait_http()
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", pc.http_port,
                                       timeout=30, context=ctx)
    try:
        conn.request("POST", API + "/login", body=json.dumps(
            {"username": pc.admin_user, "password": pc.admin_password}),
            headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        body = json.loads(r.read())
    finally:
        conn.close()
    assert r.status == 200 and body["data"]["token"], body
    # plain HTTP on the TLS port gets no API answer
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        r = call(pc.http_port, "GET", "/healthz")
        assert r.status != 200
        raise http.client.HTTPException("answered")


def test_connections_per_source_are_bounded(pc):
    """[http] max_connections_per_source: one more is closed at once; the
    ones open keep working, and a slot frees when one closes."""
    import socket
    pc.set_config("http", "max_connections_per_source", "2")
    pc.start().wait_http()
    port = pc.http_port
    a = socket.create_connection(("127.0.0.1", port), timeout=10)
    b = socket.create_connection(("127.0.0.1", port), timeout=10)
    time.sleep(0.3)
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = c.recv(100)
    except OSError:
        got = b""
    c.close()
    assert got == b"", got
    b.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b.recv(15) == b"HTTP/1.1 200 OK"
    a.close()
    b.close()
    time.sleep(0.3)
    still_serving(port)


# ------------------------------------------ one rule through both doors
# The admin layer (src/admin/) holds the rules of users, keys, sites,
# assets, grants and profiles; the CLI and the API are adapters. Each test
# makes a noun through one door and reads it through the other, field for
# field, and shows a refusal is the same, with the same words, at both.

def cli_refusal(api, *args, input=None):
    rc, out, err = api.cli(*args, input=input, check=False)
    assert rc != 0, (rc, out, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    return rc, lines[0]


def api_refusal(r, status=400):
    assert_error_shape(r, status)
    return r.json["errors"][0]["detail"]


def profile_by_name(api, name):
    _, out, _ = api.cli("profile", "list", "--json")
    got = [p for p in json.loads(out) if p["name"] == name]
    assert len(got) == 1, out
    return got[0]


def test_profile_assignments_through_both_doors(api):
    """Who a profile is assigned to: `profile show` and GET
    /access-profiles/{id}/assignments give the same users and groups
    (users first, by name); an unknown profile is 404 / one line."""
    name = uniq("pa")
    api.cli("profile", "add", name, "--native", "allow")
    r = admin_call(api, "GET", API + "/access-profiles/%s/assignments" % name)
    assert r.status == 200 and r.data == [], r
    _, out, _ = api.cli("profile", "show", name)
    assert "assigned_to          nobody" in out, out
    zed, amy = uniq("zed"), uniq("amy")
    for u in (zed, amy):
        api.user_add(u, password="pw-" + uniq())
    grp = uniq("grp")
    api.cli("group", "add", grp)
    api.cli("profile", "assign", name, "--user", zed)
    api.cli("profile", "assign", name, "--group", grp)
    r = admin_call(api, "POST", API + "/access-profiles/%s/assignments"
                   % name, {"user": amy})
    assert r.status == 201, r
    r = admin_call(api, "GET", API + "/access-profiles/%s/assignments" % name)
    assert r.status == 200, r
    assert [(a["kind"], a["name"]) for a in r.data] == \
        [("user", amy), ("user", zed), ("group", grp)], r.data
    _, out, _ = api.cli("profile", "show", name, "--json")
    assert json.loads(out)["assignments"] == r.data
    _, out, _ = api.cli("profile", "show", name)
    lines = [l.split(None, 1)[1] for l in out.splitlines()
             if l.startswith("assigned_to ")]
    assert lines == ["%s %s (%s)" % (a["kind"], a["name"], a["id"])
                     for a in r.data], out
    # taken away through the API: gone at both doors
    r = admin_call(api, "DELETE", API + "/access-profiles/%s/assignments/"
                   "user/%s" % (name, zed))
    assert r.status == 204, r
    _, out, _ = api.cli("profile", "show", name, "--json")
    assert [a["name"] for a in json.loads(out)["assignments"]] == [amy, grp]
    r = admin_call(api, "GET", API + "/access-profiles/nope-%s/assignments"
                   % uniq(""))
    assert r.status == 404, r
    rc, line = cli_refusal(api, "profile", "show", "nope-" + uniq(""))
    assert rc != 0 and "not found" in line, line


def test_profile_through_both_doors(api):
    # made by the CLI, read by the API: the same object
    name = uniq("pr")
    api.cli("profile", "add", name, "--native", "record", "--record-input",
            "--no-scp", "--x11", "--max-session-minutes", "527040",
            "--idle-timeout-minutes", "15")
    cli_view = profile_by_name(api, name)
    r = admin_call(api, "GET", API + "/access-profiles/%s" % name)
    assert r.status == 200, r
    assert r.data == cli_view
    assert r.data["max_session_minutes"] == 527040
    assert r.data["record_input"] is True and r.data["scp"] is False
    # made by the API, read by the CLI: the same defaults as `profile add`
    name2 = uniq("pr")
    r = admin_call(api, "POST", API + "/access-profiles",
                   {"name": name2, "native": "allow",
                    "idle_timeout_minutes": 527040})
    assert r.status == 201, r
    assert r.data == profile_by_name(api, name2)
    api.cli("profile", "add", name2 + "c", "--native", "allow")
    cli_default = dict(profile_by_name(api, name2 + "c"))
    api_default = dict(r.data)
    for d in (cli_default, api_default):
        del d["id"], d["name"], d["idle_timeout_minutes"]
    assert cli_default == api_default
    # record_input without native record: refused at both, same words
    words = "record input needs native sessions set to record"
    rc, line = cli_refusal(api, "profile", "add", uniq("pr"), "--native",
                           "allow", "--record-input")
    assert rc == 2 and words in line, line
    detail = api_refusal(admin_call(
        api, "POST", API + "/access-profiles",
        {"name": uniq("pr"), "native": "allow", "record_input": True}))
    assert words in detail
    # and by a PATCH that would leave the profile in that state
    detail = api_refusal(admin_call(
        api, "PATCH", API + "/access-profiles/%s" % name2,
        {"record_input": True}))
    assert words in detail
    detail = api_refusal(admin_call(
        api, "PATCH", API + "/access-profiles/%s" % name,
        {"native": "allow"}))
    assert words in detail
    assert profile_by_name(api, name)["native_session"] == "record"
    # the largest minute limit is one leap year at both doors
    rc, line = cli_refusal(api, "profile", "add", uniq("pr"), "--native",
                           "allow", "--max-session-minutes", "527041")
    assert rc == 2 and "527040" in line, line
    detail = api_refusal(admin_call(
        api, "POST", API + "/access-profiles",
        {"name": uniq("pr"), "native": "allow",
         "max_session_minutes": 527041}))
    assert "527040" in detail


def noncanonical_b64(b64):
    """The same key blob with non-zero bits in the padding's spare bits,
    which base64 decoders ignore: a non-canonical spelling."""
    alpha = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
             "0123456789+/")
    assert b64.endswith("==") and not b64.endswith("==="), b64
    i = alpha.index(b64[-3])
    assert i & 0xF == 0
    return b64[:-3] + alpha[i | 1] + "=="


@pytest.mark.core
def test_public_keys_through_both_doors(api, tmp_path):
    name, _ = make_user(api)
    # a blob that is not a key of the type it claims
    ed = pclib.keygen(tmp_path / "ed")
    ed_b64 = (tmp_path / "ed.pub").read_text().split()[1]
    wrong = "ssh-rsa %s wrong-type\n" % ed_b64
    (tmp_path / "wrong.pub").write_text(wrong)
    words = "not a valid ssh-rsa public key"
    _, line = cli_refusal(api, "user", "key", "add", name,
                          tmp_path / "wrong.pub")
    assert words in line, line
    assert words in api_refusal(admin_call(
        api, "POST", API + "/users/%s/keys" % name,
        {"public_key": wrong.strip()}))
    # a comment longer than 128 characters: refused, never truncated
    long_line = "ssh-ed25519 %s %s" % (ed_b64, "c" * 129)
    (tmp_path / "long.pub").write_text(long_line + "\n")
    words = "key comment longer than 128 characters"
    _, line = cli_refusal(api, "user", "key", "add", name,
                          tmp_path / "long.pub")
    assert words in line, line
    assert words in api_refusal(admin_call(
        api, "POST", API + "/users/%s/keys" % name,
        {"public_key": long_line}))
    r = admin_call(api, "GET", API + "/users/%s/keys" % name)
    assert r.data == [], r
    # 128 characters are kept whole; the API's key is the CLI's key
    r = admin_call(api, "POST", API + "/users/%s/keys" % name,
                   {"public_key": "ssh-ed25519 %s %s" % (ed_b64, "c" * 128)})
    assert r.status == 201, r
    _, out, _ = api.cli("user", "key", "list", name, "--json")
    assert json.loads(out) == [r.data]
    assert r.data["comment"] == "c" * 128
    # a non-canonical spelling of a blob is stored canonical, by both doors
    ec = tmp_path / "ec"
    subprocess_run = __import__("subprocess").run
    subprocess_run(["ssh-keygen", "-q", "-t", "ecdsa", "-b", "384", "-N", "",
                    "-C", "x", "-f", str(ec)], check=True, timeout=30,
                   stdin=__import__("subprocess").DEVNULL)
    ec_b64 = (tmp_path / "ec.pub").read_text().split()[1]
    odd = "ecdsa-sha2-nistp384 %s api" % noncanonical_b64(ec_b64)
    r = admin_call(api, "POST", API + "/users/%s/keys" % name,
                   {"public_key": odd})
    assert r.status == 201, r
    assert r.data["fingerprint"] == pclib.key_fingerprint(str(ec) + ".pub")
    name2, _ = make_user(api)
    (tmp_path / "odd.pub").write_text(odd.replace(" api", " cli") + "\n")
    api.cli("user", "key", "add", name2, tmp_path / "odd.pub")
    stored = {c: b for c, b in api.store_sql(
        "SELECT comment, base64 FROM user_keys WHERE comment IN "
        "('api', 'cli')")}
    assert stored == {"api": ec_b64, "cli": ec_b64}


def test_asset_through_both_doors(api):
    site = "/root/" + uniq("s")
    api.cli("site", "add", site)
    # made by the CLI, read by the API: field for field, site_id included
    name = uniq("a")
    _, out, _ = api.cli("asset", "add", name, "--host", "10.9.8.7", "--port",
                        "2222", "--site", site, "--login", "ops",
                        "--protocol", "rdp", "--password-stdin",
                        input="s3cret\n")
    aid = out.strip()
    _, out, _ = api.cli("asset", "show", aid, "--json")
    cli_view = json.loads(out)
    r = admin_call(api, "GET", API + "/assets/%s" % aid)
    assert r.status == 200, r
    assert r.data == cli_view
    assert cli_view["site_id"] and cli_view["protocol"] == "rdp"
    assert cli_view["has_password"] is True
    sites = {s["path"]: s["id"] for s in json.loads(
        api.cli("site", "list", "--json")[1])}
    assert cli_view["site_id"] == sites[site]
    # made by the API, read by the CLI, with the same defaults
    name2 = uniq("a")
    r = admin_call(api, "POST", API + "/assets",
                   {"name": name2, "host": "db.example"})
    assert r.status == 201, r
    _, out, _ = api.cli("asset", "show", r.data["id"], "--json")
    assert json.loads(out) == r.data
    assert (r.data["protocol"], r.data["port"], r.data["route"],
            r.data["site"]) == ("ssh", 22, "direct", "/root")
    # refusals: the same words at both doors
    for cli_args, body, words in [
            (["--host", "bad host!"], {"host": "bad host!"},
             "host must be a host name or address"),
            (["--host", "h", "--host-key-fingerprint", "SHA256:short"],
             {"host": "h", "host_key_fingerprint": "SHA256:short"},
             "host key fingerprint must be SHA256:<43 base64 characters>"),
            (["--host", "h", "--protocol", "ftp"],
             {"host": "h", "protocol": "ftp"},
             "protocol must be ssh, rdp or tcp"),
            (["--host", "h", "--route", "elsewhere"],
             {"host": "h", "route": "elsewhere"},
             "route must be 'direct', 'agent:ID' or 'peer:NAME'")]:
        n = uniq("a")
        rc, line = cli_refusal(api, "asset", "add", n, *cli_args)
        assert rc == 2 and words in line, (cli_args, line)
        body["name"] = n
        assert words in api_refusal(admin_call(api, "POST", API + "/assets",
                                               body)), body
    words = "host key fingerprint must be SHA256:<43 base64 characters>"
    rc, line = cli_refusal(api, "asset", "retrust", aid, "--fingerprint",
                           "MD5:aa")
    assert words in line, line
    assert words in api_refusal(admin_call(
        api, "PATCH", API + "/assets/%s" % aid,
        {"host_key_fingerprint": "MD5:aa"}))


def test_asset_protocol_is_honoured_by_the_proxy(api, target, ssh_client):
    """protocol is a field of the asset at both doors; an rdp asset is
    refused by the SSH proxy with one clear line and a report row, and
    switching it back to ssh through the API lets the same session in."""
    user, pw = make_user(api)
    aname = uniq("a")
    keyfile = target.key
    _, out, _ = api.cli("asset", "add", aname, "--protocol", "rdp",
                        "--host", target.host, "--port", str(target.port),
                        "--login", "root", "--key", keyfile,
                        "--host-key-fingerprint", target.fingerprint)
    aid = out.strip()
    api.cli("grant", aid, "--user", user, "--role", "viewer")
    prof = uniq("p")
    api.cli("profile", "add", prof, "--native", "allow")
    api.cli("profile", "assign", prof, "--user", user)
    res = ssh_client.ssh("%s#%s" % (user, aid), "echo no", password=pw)
    assert res.rc != 0, res
    assert "asset '%s' is not an SSH asset" % aname in res.err, res
    api.session_of(user, result="denied: not an SSH asset")
    r = admin_call(api, "PATCH", API + "/assets/%s" % aid,
                   {"protocol": "ssh"})
    assert r.status == 200 and r.data["protocol"] == "ssh", r
    res = ssh_client.ssh("%s#%s" % (user, aid), "echo yes", password=pw)
    assert res.rc == 0 and res.out.strip() == "yes", res


def test_grant_through_both_doors(api):
    user, _ = make_user(api)
    aname = uniq("a")
    _, out, _ = api.cli("asset", "add", aname, "--host", "h.example")
    aid = out.strip()
    # made by the CLI, seen by the API as the same object
    _, out, _ = api.cli("grant", aid, "--user", user, "--role", "viewer")
    gid = out.strip()
    r = admin_call(api, "GET", API + "/assets/%s/grants" % aid)
    _, out, _ = api.cli("grant", "list", "--json")
    assert r.data == [g for g in json.loads(out) if g["id"] == gid], r
    # a second grant for the same pair: the same words at both doors
    words = "user '%s' already has a grant on asset '%s'" % (user, aname)
    _, line = cli_refusal(api, "grant", aname, "--user", user, "--role",
                          "owner")
    assert words in line, line
    assert words in api_refusal(admin_call(
        api, "POST", API + "/assets/%s/grants" % aid,
        {"user": user, "role": "owner"}), 409)
    words = "role must be viewer, editor or owner"
    rc, line = cli_refusal(api, "grant", aname, "--user", user, "--role",
                           "boss")
    assert rc == 2 and words in line, line
    assert words in api_refusal(admin_call(
        api, "POST", API + "/assets/%s/grants" % aid,
        {"user": user, "role": "boss"}))


def test_group_and_site_through_both_doors(api):
    user, _ = make_user(api)
    g = uniq("g")
    api.cli("group", "add", g)
    api.cli("group", "member", "add", g, user)
    r = admin_call(api, "GET", API + "/groups/%s" % g)
    _, out, _ = api.cli("group", "list", "--json")
    assert [x for x in json.loads(out) if x["name"] == g] == [r.data], r
    words = "user '%s' is already a member of group '%s'" % (user, g)
    _, line = cli_refusal(api, "group", "member", "add", g, user)
    assert words in line, line
    assert words in api_refusal(admin_call(
        api, "POST", API + "/groups/%s/members" % g, {"user": user}), 409)
    assert admin_call(api, "DELETE", API + "/groups/%s/members/%s" % (
        g, user)).status == 204
    words = "user '%s' is not a member of group '%s'" % (user, g)
    _, line = cli_refusal(api, "group", "member", "remove", g, user)
    assert words in line, line
    assert words in api_refusal(admin_call(
        api, "DELETE", API + "/groups/%s/members/%s" % (g, user)), 404)
    # a site with an asset cannot go, and /root never, at either door
    site = "/root/" + uniq("s")
    r = admin_call(api, "POST", API + "/sites", {"path": site})
    assert r.status == 201, r
    _, out, _ = api.cli("site", "list", "--json")
    assert r.data in json.loads(out)
    api.cli("asset", "add", uniq("a"), "--host", "h", "--site", site)
    words = "site '%s' still has assets or sub-sites" % site
    _, line = cli_refusal(api, "site", "delete", site)
    assert words in line, line
    assert words in api_refusal(admin_call(
        api, "DELETE", API + "/sites/%s" % r.data["id"]), 409)
    words = "site '/root' cannot be deleted"
    _, line = cli_refusal(api, "site", "delete", "/root")
    assert words in line, line
    assert words in api_refusal(admin_call(
        api, "DELETE", API + "/sites/%2Froot"), 403)


def test_nodes_list_is_this_one_node_on_sqlite(api):
    """GET /nodes (issue 18): on SQLite the server is the one node, online,
    with its addresses; a user without a site role may not read it."""
    r = admin_call(api, "GET", API + "/nodes")
    assert r.status == 200, r
    assert len(r.data) == 1, r.data
    node = r.data[0]
    assert node["state"] == "online" and node["online"] is True, node
    assert "ssh=127.0.0.1:%d" % api.ssh_port in node["addresses"], node
    assert re.match(r"^[0-9a-f]{32}$", node["id"]), node
    assert node["reaped_by"] is None and node["sessions"] >= 0
    name, pw = make_user(api)
    r = call(api.http_port, "GET", API + "/nodes",
             token=session_token(api, name, pw))
    assert_error_shape(r, 403)
