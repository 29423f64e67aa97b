"""A second, independent implementation of the agent side of
docs/agent-protocol.md, for conformance tests of the server's hub:
websocket-client for the WebSocket, paramiko for the SSH client inside.

It does on purpose what the real agent never does (opens channels on the
server, sends other requests), to check that the server refuses them.
"""

import json
import select
import socket
import threading
import time
import urllib.parse

import paramiko
import websocket

SUBPROTOCOL = "portcullis-agent.v1"


class WsBridge:
    """A socketpair whose far end is pumped to and from a WebSocket's
    binary frames by two threads; paramiko gets the near end."""

    def __init__(self, url, subprotocols=(SUBPROTOCOL,), timeout=10,
                 sockopt=(), source=None):
        kw = {}
        if source is not None:
            # from a given (loopback) address: our own connected socket
            u = urllib.parse.urlsplit(url)
            kw["socket"] = socket.create_connection(
                (u.hostname, u.port), timeout=timeout,
                source_address=(source, 0))
        self.ws = websocket.create_connection(
            url, subprotocols=list(subprotocols), timeout=timeout,
            sockopt=tuple(sockopt), **kw)
        self.near, self.far = socket.socketpair()
        self.closed = threading.Event()
        self.close_status = None
        self.pings = 0
        self.muted = False  # stop answering PINGs and sending anything
        self.deaf = False   # stop reading the server, keep sending
        threading.Thread(target=self._ws_to_sock, daemon=True).start()
        threading.Thread(target=self._sock_to_ws, daemon=True).start()

    def _ws_to_sock(self):
        try:
            while True:
                # Muted: read nothing at all (websocket-client answers a
                # PING by itself when it reads one), like a dead peer.
                if self.muted or self.deaf:
                    time.sleep(0.05)
                    continue
                # (websocket-client reads exactly one frame's bytes, so
                # nothing waits in its buffers when the socket is idle)
                if not select.select([self.ws.sock], [], [], 0.1)[0]:
                    continue
                op, data = self.ws.recv_data(control_frame=True)
                if op == websocket.ABNF.OPCODE_PING:
                    self.pings += 1
                    if not self.muted:
                        self.ws.pong(data)
                    continue
                if op == websocket.ABNF.OPCODE_CLOSE:
                    if len(data) >= 2:
                        self.close_status = int.from_bytes(data[:2], "big")
                    break
                if op == websocket.ABNF.OPCODE_BINARY:
                    self.far.sendall(data)
        except Exception:
            pass
        self.closed.set()
        try:
            self.far.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _sock_to_ws(self):
        try:
            while True:
                data = self.far.recv(65536)
                if not data:
                    break
                if not self.muted:
                    self.ws.send_binary(data)
        except Exception:
            pass

    def close(self):
        for s in (self.near, self.far):
            try:
                s.close()
            except OSError:
                pass
        try:
            self.ws.close()
        except Exception:
            pass


def fingerprint_of(key):
    """OpenSSH's SHA256:... form of a paramiko PKey."""
    import base64
    import hashlib
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class ProtoAgent:
    """One agent connection: connect(), login(), announce()."""

    def __init__(self, url, sockopt=(), source=None):
        self.bridge = WsBridge(url, sockopt=sockopt, source=source)
        self.t = paramiko.Transport(self.bridge.near)
        self.t.banner_timeout = 10
        self.t.start_client(timeout=10)
        self.host_key_fp = fingerprint_of(self.t.get_remote_server_key())

    def login(self, cred_id, secret):
        self.t.auth_password(cred_id, secret)

    def announce(self, facts, subsystem="announce@portcullis"):
        """Returns (exit status, stderr text)."""
        ch = self.t.open_session(timeout=10)
        ch.settimeout(10)
        ch.invoke_subsystem(subsystem)
        ch.sendall(facts if isinstance(facts, bytes)
                   else json.dumps(facts).encode())
        ch.shutdown_write()
        err = b""
        while True:
            d = ch.recv_stderr(4096)
            if not d:
                break
            err += d
        status = ch.recv_exit_status()
        ch.close()
        return status, err.decode(errors="replace")

    def close(self):
        try:
            self.t.close()
        finally:
            self.bridge.close()
