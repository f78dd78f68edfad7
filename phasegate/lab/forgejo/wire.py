"""The Forgejo stand-in's wire: its HTTP micro-framework (requests, responses, routes, the TLS server)
and the grammar of Forgejo v11's container registry (media types, names, tags, digests, limits).

Nothing here knows accounts, storage or packages; every other module of the stand-in speaks through it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# -- Forgejo's constants (v11) ------------------------------------------------

API_VERSION_HEADER = ("Docker-Distribution-Api-Version", "registry/2.0")
MAX_MANIFEST = 10 * 1024 * 1024
CATALOG_MAX = 100
API_DEFAULT_LIMIT = 30
API_MAX_LIMIT = 50

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
ENGINE_ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

IMAGE_NAME = re.compile(r"\A[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*\Z")
TAG = re.compile(r"\A[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\Z")
DIGEST = re.compile(r"\Asha256:[a-f0-9]{64}\Z")
UPLOAD_ID = re.compile(r"\A[a-zA-Z0-9\-_.=]+\Z")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- HTTP plumbing ------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str  # normalised, still percent-encoded (Forgejo routes on the escaped path)
    query: dict[str, list[str]]
    headers: object  # email.message.Message (case-insensitive .get)
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # route groups, percent-decoded

    def arg(self, name: str, default: str = "") -> str:
        v = self.query.get(name)
        return v[0] if v else default

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    omit_length: bool = False  # v11 sends no Content-Length for HEAD on a zero-byte blob

    @classmethod
    def json(cls, obj, status: int = 200, headers=(), content_type: str = "application/json;charset=utf-8") -> Response:
        return cls(status, [("Content-Type", content_type), *headers], json.dumps(obj).encode())

    @classmethod
    def text(cls, text: str, status: int, headers=()) -> Response:
        return cls(status, [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff"), *headers],
                   (text + "\n").encode())

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class HttpError(Exception):
    """Raised by handlers (and `api_principal`) to answer with `response`."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


@dataclass
class Route:
    methods: frozenset[str]
    pattern: re.Pattern
    handler: Callable[[Request], Response]
    name: str = ""


def oci_error(status: int, code: str, message: str = "") -> Response:
    body = json.dumps({"errors": [{"code": code, "message": message}]}) + "\n"
    return Response(status, [("Content-Type", "application/json"), API_VERSION_HEADER], body.encode())


def registry_response(status: int, headers=(), body: bytes = b"") -> Response:
    return Response(status, [API_VERSION_HEADER, *headers], body)


def api_error(root_url: str, status: int, message: str) -> Response:
    """/api/v1's JSON error (message + the swagger URL under ROOT_URL)."""
    return Response.json({"message": message, "url": f"{root_url}api/swagger"}, status)


def normalise(path: str) -> str:
    # Forgejo strips trailing slashes and collapses doubled ones before routing
    path = re.sub(r"/{2,}", "/", path)
    return path.rstrip("/") or "/"


# -- the server: TLS per connection, one Request per HTTP exchange ---------------


class Server(ThreadingHTTPServer):
    """Serves `standin.handle(Request) -> Response | None` (None: never answer) over TLS."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, standin, ssl_context: ssl.SSLContext):
        self.standin = standin
        self.ssl_context = ssl_context
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        # TLS handshake in the connection's own thread: a stalled client never blocks accept()
        request.settimeout(10)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end

    def log_message(self, format, *args):  # the stand-in keeps its own request log
        pass

    def version_string(self) -> str:
        return ""

    def send_response(self, code, message=None):
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _dispatch(self):
        standin = self.server.standin
        raw, _, query = self.path.partition("?")
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        req = Request(self.command, normalise(raw), urllib.parse.parse_qs(query, keep_blank_values=True), self.headers, body)
        resp = standin.handle(req)
        if resp is None:  # hang: never answer
            self.close_connection = True
            return
        self.send_response(resp.status)
        names = {k.lower() for k, _ in resp.headers}
        for k, v in resp.headers:
            self.send_header(k, v)
        if "content-length" not in names and not resp.omit_length and resp.status not in (204, 304):
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch
