"""A misbehaving HTTP server on loopback: the bad networks and bad servers a gate must survive.

`EvilServer(behaviour)` listens on 127.0.0.1 (plain or TLS) and answers every
request with a behaviour: accept and never answer, dribble headers or a body
byte by byte, 5xx, close mid-body, invalid JSON, lying headers. It counts what
it was asked (`requests`), so a test can prove retries never hide a 404 and
writes are never retried.

Raw sockets on purpose: a real HTTP server library would not let us stop
half-way through a header line. Every response closes the connection, so each
retry is a new connection and a new entry in `requests`.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict


class Conn:
    """One accepted connection, handed to a behaviour."""

    def __init__(self, sock: socket.socket, stop: threading.Event):
        self.sock = sock
        self._stop = stop

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def respond(self, status: int, body: bytes = b"", headers: dict | None = None, reason: str = "") -> None:
        h = {"Content-Length": str(len(body)), "Connection": "close"}
        h.update(headers or {})
        head = f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Whatever')}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        self.send(head.encode() + body)

    def dribble(self, data: bytes, interval: float) -> bool:
        """Send `data` one byte at a time, `interval` apart, until done (True), stopped or the peer leaves (False)."""
        for i in range(len(data)):
            if not self.send(data[i : i + 1]) or self._stop.wait(interval):
                return False
        return True

    def hold(self) -> None:
        """Keep the connection open and silent until the server stops."""
        self._stop.wait()


Behaviour = Callable[[SeenRequest, Conn], None]

_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 401: "Unauthorized", 404: "Not Found",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def tls_context(ca, *names: str) -> ssl.SSLContext:
    """A server-side TLS context with a certificate from `ca` (a trustme.CA) for `names`."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


class EvilServer:
    def __init__(self, behaviour: Behaviour, *, tls: ssl.SSLContext | None = None, handshake: bool = True,
                 read_request: bool = True):
        self.behaviour = behaviour
        self.tls = tls
        self.handshake = handshake  # False: accept the TCP connection, never start TLS
        self.read_request = read_request  # False: accept and never read a byte
        self.requests: list[SeenRequest] = []
        self.connections = 0  # TCP connections accepted (a refused TLS handshake sends no request)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method) and (path is None or r.path.startswith(path)))

    def start(self) -> EvilServer:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        s.settimeout(0.2)
        self._listener = s
        self.port = s.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, name=f"evil-{self.port}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            socks = list(self._socks)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        for t in self._threads:
            t.join(timeout=5)
        if self._listener:
            self._listener.close()

    def __enter__(self) -> EvilServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._socks.append(sock)
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, sock: socket.socket) -> None:
        conn = Conn(sock, self._stop)
        try:
            if not self.read_request or (self.tls and not self.handshake):
                conn.hold()
                return
            if self.tls:
                sock.settimeout(5)
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # the client refused our certificate: that is the point
                with self._lock:
                    self._socks.append(sock)
                conn = Conn(sock, self._stop)
            req = _read_request(sock, self._stop)
            if req is None:
                return
            with self._lock:
                self.requests.append(req)
            self.behaviour(req, conn)
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass


def _read_request(sock: socket.socket, stop: threading.Event) -> SeenRequest | None:
    sock.settimeout(0.2)
    buf = b""
    while b"\r\n\r\n" not in buf:
        if stop.is_set():
            return None
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    # drain a request body so the client is never blocked writing it
    want = int(headers.get("content-length", "0") or 0)
    chunked = "chunked" in headers.get("transfer-encoding", "")
    while (len(rest) < want or (chunked and b"0\r\n\r\n" not in rest)) and not stop.is_set():
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        rest += chunk
    return SeenRequest(method, path, headers)


# --------------------------------------------------------------------------
# Behaviours
# --------------------------------------------------------------------------


def hang() -> Behaviour:
    """Read the request, then never answer."""
    return lambda req, conn: conn.hold()


def status(code: int, body: bytes = b"", headers: dict | None = None) -> Behaviour:
    return lambda req, conn: conn.respond(code, body, headers)


def dribble_headers(interval: float = 0.05) -> Behaviour:
    """A status line, then header bytes one at a time, forever: only a total deadline ends it."""

    def run(req, conn):
        conn.send(b"HTTP/1.1 200 OK\r\n")
        i = 0
        # until stopped or the client gives up (a peer that left would otherwise be written to in a busy loop)
        while conn.dribble(f"X-Slow-{i}: {'a' * 20}\r\n".encode(), interval):
            i += 1

    return run


def dribble_body(interval: float = 0.05, length: int = 1_000_000, content_type: str = "application/octet-stream",
                 headers: dict | None = None) -> Behaviour:
    """Prompt headers announcing `length` bytes, then the body one byte at a time."""

    def run(req, conn):
        h = {"Content-Length": str(length), "Content-Type": content_type, "Connection": "close"}
        h.update(headers or {})
        conn.send(("HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode())
        if req.method != "HEAD":
            conn.dribble(b"{" + b" " * (length - 1), interval)

    return run


def close_mid_body(declared: int = 10_000, sent: int = 100, content_type: str = "application/json",
                   headers: dict | None = None) -> Behaviour:
    """Announce `declared` bytes, send `sent`, then close the connection."""

    def run(req, conn):
        h = {"Content-Length": str(declared), "Content-Type": content_type, "Connection": "close"}
        h.update(headers or {})
        conn.send(("HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode())
        if req.method != "HEAD":
            conn.send(b"{" + b" " * (sent - 1))

    return run


def body(payload: bytes, content_type: str = "application/json", headers: dict | None = None,
         code: int = 200) -> Behaviour:
    """A complete answer with these bytes (HEAD gets the headers only)."""

    def run(req, conn):
        h = {"Content-Type": content_type}
        h.update(headers or {})
        if req.method == "HEAD":
            h["Content-Length"] = str(len(payload))
            head = f"HTTP/1.1 {code} {_REASONS.get(code, 'OK')}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
            conn.send((head + "Connection: close\r\n\r\n").encode())
        else:
            conn.respond(code, payload, h)

    return run


def routes(table: dict[str, Behaviour], default: Behaviour | None = None) -> Behaviour:
    """Dispatch on the longest matching path prefix (`/v2/` answers 200 by default, as a registry would)."""
    table = {"/v2/": status(200, b"{}", {"Content-Type": "application/json"}), **table}

    def run(req, conn):
        path = req.path.split("?", 1)[0]
        exact = table.get(path)
        if exact is not None:
            return exact(req, conn)
        for prefix in sorted(table, key=len, reverse=True):
            if prefix != "/v2/" and path.startswith(prefix):
                return table[prefix](req, conn)
        return (default or status(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}'))(req, conn)

    return run


# -- registry-shaped payloads -------------------------------------------------

EMPTY_CONFIG = b"{}"


def image_manifest(layers: int = 1) -> bytes:
    """A small, valid OCI image manifest (its blobs exist nowhere)."""
    desc = lambda mt, data: {"mediaType": mt, "digest": digest(data), "size": len(data)}  # noqa: E731
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", EMPTY_CONFIG),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", f"layer-{i}".encode()) for i in range(layers)],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


WRONG_DIGEST = "sha256:" + "0" * 64


def echo_credentials() -> Behaviour:
    """A careless server: it refuses every credential and hands it back in its error answers.

    No Authorization: 401 with a Bearer challenge to its own /v2/token. The
    token realm and everything else: 401 whose JSON error message, detail and
    WWW-Authenticate header repeat the Authorization header and the full path
    (query tokens included). Whatever the suite prints from an error answer,
    the credential is in it, so the secrets canary sees any unredacted path.
    """

    def run(req, conn):
        auth = req.headers.get("authorization", "")
        port = conn.sock.getsockname()[1]
        message = f"credentials {auth!r} refused for {req.path}"
        err = {"errors": [{"code": "UNAUTHORIZED", "message": message, "detail": {"headers": req.headers}}],
               "message": message}
        headers = {"Content-Type": "application/json"}
        if not auth and not req.path.startswith("/v2/token"):
            headers["WWW-Authenticate"] = f'Bearer realm="http://127.0.0.1:{port}/v2/token",service="echo",scope="*"'
        else:
            headers["WWW-Authenticate"] = f'Basic realm="{auth or req.path}"'
        conn.respond(401, json.dumps(err).encode(), headers)

    return run
