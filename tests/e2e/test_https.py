"""HTTPS with the certificate `portcullis init` makes (issue 5, item 1).

Covers: init writes tls.crt (0644) and tls.key (0600) and prints the
certificate's SHA-256 as tls_fingerprint=; on a loopback listen address the
config carries the two TLS lines commented out (plain HTTP stays the
development default), on any other address active; once enabled, the server
answers a real HTTPS request that verifies against tls.crt for the names
localhost and 127.0.0.1 (and no other); and `serve` refuses plain HTTP on a
non-loopback [http] listen address with one clear line, before it binds
anything. Servers here listen on loopback only: the refusal is checked with
192.0.2.1 (TEST-NET-1), which `serve` refuses before any bind.
"""

import hashlib
import re
import socket
import ssl
import subprocess

import pytest

from pclib import Portcullis, parse_kv, portcullis_bin, run

TLS_FP_RE = re.compile(r"^SHA256:[0-9A-F]{2}(:[0-9A-F]{2}){31}$")


def cert_der(path):
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def fp_of_der(der):
    """init's spelling of a certificate's fingerprint: SHA256:AB:CD:..."""
    h = hashlib.sha256(der).hexdigest().upper()
    return "SHA256:" + ":".join(h[i:i + 2] for i in range(0, 64, 2))


def config_lines(pc, section):
    """The lines of [section] of portcullis.conf, stripped, blank ones
    left out."""
    out, cur = [], None
    for line in pc.conf.read_text().splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            cur = s[1:-1]
        elif cur == section and s:
            out.append(s)
    return out


def san_of(cert_path):
    """The subjectAltName entries of a certificate, as openssl prints
    them ("DNS:localhost", "IP Address:127.0.0.1")."""
    out = subprocess.run(["openssl", "x509", "-in", str(cert_path), "-noout",
                          "-ext", "subjectAltName"], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return {x.strip() for x in out.splitlines()[-1].split(",")}


def https_get(port, path, cafile, server_hostname):
    """GET path over TLS to 127.0.0.1:port, verifying the server's
    certificate against cafile for server_hostname (verification stays
    on). Returns (status line, body, the server certificate's DER)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close"
                       "\r\n\r\n" % (path, server_hostname)).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body, der


def test_init_makes_a_certificate_and_prints_its_fingerprint(pc):
    crt, key = pc.dir / "tls.crt", pc.dir / "tls.key"
    assert crt.stat().st_mode & 0o777 == 0o644
    assert key.stat().st_mode & 0o777 == 0o600
    fp = pc.info.get("tls_fingerprint")
    assert fp and TLS_FP_RE.match(fp), pc.init_output
    assert fp == fp_of_der(cert_der(crt))
    # the earlier lines are all still there
    for k in ("config", "admin_user", "admin_password", "fingerprint"):
        assert k in pc.info, pc.init_output
    # the key is the certificate's, and not encrypted
    r = run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"])
    assert r.rc == 0, r
    r2 = run(["openssl", "pkey", "-in", key, "-pubout"])
    assert r2.rc == 0, r2
    assert r.out == r2.out
    r = run(["openssl", "x509", "-in", crt, "-noout", "-subject", "-dates"])
    assert "CN = portcullis" in r.out, r
    assert san_of(crt) == {"DNS:localhost", "IP Address:127.0.0.1"}


def test_loopback_config_has_the_tls_lines_commented_out(pc):
    lines = config_lines(pc, "http")
    assert "# tls_cert = tls.crt" in lines, lines
    assert "# tls_key = tls.key" in lines, lines
    assert not [l for l in lines if l.startswith("tls_")], lines
    # and plain HTTP is what serves
    pc.start().wait_http()
    with socket.create_connection(("127.0.0.1", pc.http_port),
                                  timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(15) == b"HTTP/1.1 200 OK"


def test_https_with_the_certificate_init_made(pc):
    pc.set_config("http", "tls_cert", "tls.crt")
    pc.set_config("http", "tls_key", "tls.key")
    pc.start().wait_http()
    crt = pc.dir / "tls.crt"
    for name in ("localhost", "127.0.0.1"):
        status, body, der = https_get(pc.http_port, "/healthz", crt, name)
        assert status == "HTTP/1.1 200 OK", (name, status, body)
        assert b'"status":"ok"' in body, body
        assert fp_of_der(der) == pc.info["tls_fingerprint"]
        assert der == cert_der(crt)
    # verification is real: a name the certificate does not carry fails
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(pc.http_port, "/healthz", crt, "portcullis.example")
    # and so does another certificate as the trust anchor
    other = Portcullis(pc.dir.parent / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(pc.http_port, "/healthz", other.dir / "tls.crt",
                  "localhost")
    # the server still serves
    status, _, _ = https_get(pc.http_port, "/healthz", crt, "localhost")
    assert status == "HTTP/1.1 200 OK"


def test_non_loopback_init_writes_the_tls_lines_active(tmp_path):
    """init --listen with a non-loopback address (nothing is started)."""
    r = run([portcullis_bin(), "init",
             "--dir", tmp_path / "d", "--listen", "192.0.2.1"])
    assert r.rc == 0, r
    info = parse_kv(r.out)
    assert TLS_FP_RE.match(info["tls_fingerprint"]), r
    text = (tmp_path / "d" / "portcullis.conf").read_text()
    http = text.split("[http]", 1)[1].split("[", 1)[0]
    lines = [l.strip() for l in http.splitlines()]
    assert "tls_cert = tls.crt" in lines, http
    assert "tls_key = tls.key" in lines, http
    assert san_of(tmp_path / "d" / "tls.crt") == {
        "DNS:localhost", "IP Address:127.0.0.1", "IP Address:192.0.2.1"}


def test_serve_refuses_plain_http_off_loopback(pc):
    pc.set_config("http", "listen", "192.0.2.1")
    rc, out, err = pc.cli("serve", check=False, timeout=30)
    assert rc != 0, (out, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("portcullis: "), err
    assert "192.0.2.1" in lines[0] and "not a loopback" in lines[0], err
    assert "allow_plain_http = true" in lines[0], err
    # it refused before binding: its SSH port is free (nothing left over)
    with socket.socket() as s:
        s.bind(("127.0.0.1", pc.ssh_port))


def test_allow_plain_http_must_be_true_or_false(pc):
    pc.set_config("http", "allow_plain_http", "yes")
    rc, out, err = pc.cli("user", "list", check=False)
    assert rc != 0
    assert "allow_plain_http" in err and "true or false" in err, err
