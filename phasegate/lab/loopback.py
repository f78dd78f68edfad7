"""A small base for the lab's HTTP stand-ins: a threaded HTTP server on 127.0.0.1 with JSON helpers.

Each stand-in subclasses `Handler` (its routes) and owns one `LoopbackServer`; the server thread is a
daemon and `stop()` closes the socket. Plain HTTP: the real in-cluster Loki and Uptime Kuma are
reached over plain HTTP service names too.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit


class Write(NamedTuple):
    """A request that would change the stand-in's state (the read-only guard's evidence)."""

    method: str
    path: str


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""

    def log_message(self, format, *args):
        self.server.standin.requests.append((self.command, self.path.split("?", 1)[0]))

    @property
    def standin(self):
        return self.server.standin

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}

    def body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status: int, data: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, status: int, doc) -> None:
        self.send(status, json.dumps(doc).encode(), "application/json")


class LoopbackServer:
    def __init__(self, handler: type[Handler], standin, name: str):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.standin = standin
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"lab-{name}", daemon=True)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


class LoopbackStandin:
    """The lab component protocol every loopback stand-in shares: one server, stopped with the lab."""

    _server: LoopbackServer | None = None

    def serve(self, handler: type[Handler], name: str) -> None:
        self._server = LoopbackServer(handler, self, name).start()

    def stop(self) -> None:
        if self._server:
            self._server.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "the stand-in is not started"
        return self._server.url

