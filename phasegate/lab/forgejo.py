"""A Forgejo v11 stand-in: Forgejo's registry and package API on the wire, over a real engine.

No Forgejo binary can run here, so the lab serves what phasegate talks to --
`/v2` (Forgejo's OCI registry), `/v2/token`, `/api/healthz` and the package
REST API -- over HTTPS with a lab-CA certificate, the way Forgejo v11 answers
(../shared/reference/forgejo-registry-v11-details.md: challenge string, JWT
realm, PAT scopes, the three error styles, tags/catalog paging quirks, the
version model with untagged `sha256:` versions) and with Forgejo's package
permissions (`access()`: a user's packages written by that user only, an
organisation's by its teams, other users reading by the owner's visibility). Bytes live in a real
distribution engine (plain HTTP, loopback, no auth) that only the stand-in
talks to; blob and manifest traffic is proxied to it.

The package model is derived from the engine's storage on every request, so a
corruption made on disk (a fault) shows up exactly as it would in Forgejo:
- a *tag version* per tag (`_manifests/tags/<tag>`),
- an *untagged version* `sha256:<hex>` per stored manifest no tag points at
  (index children and attestation manifests pushed by digest),
- metadata Forgejo keeps in its database (version id, created_at, creator)
  in an overlay that lab scenarios may edit (`set_created_at`, to age versions).

Other lab areas extend it:
- `route(methods, pattern, handler)` mounts more routes (e.g. repository API);
  `api_principal(req, "repository")` authenticates them like Forgejo's /api/v1.
- `knobs` holds the faults (500 to everything, hang, slow, refuse or ignore
  DELETE, scopes not enforced, failing health check).
- `counts` / `requests()` count what reached it, per method, so a test can
  prove a read-only run wrote nothing.
- `versions()`, `set_created_at()` (age a version), `delete_version()` (what the
  package API DELETE does) and `run_cleanup_packages()` (Forgejo's own cron that
  drops unreferenced `sha256:` versions) let lab scenarios shape the package state.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets as _secrets
import shutil
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from phasegate.lab.distribution import DistributionRegistry

# -- Forgejo's constants (v11) ------------------------------------------------

API_VERSION_HEADER = ("Docker-Distribution-Api-Version", "registry/2.0")
PACKAGE_API_REALM = 'Basic realm="Gitea Package API"'
# /v2 permission or scope refusal: 401, body = the error's title (routers/api/packages/api.go:86-90,
# services/context/base.go:123-128 on Forgejo's v11.0 branch; reference/forgejo-registry-v11-details.md §0)
REQ_PACKAGE_ACCESS = "reqPackageAccess"
# /api/v1 permission refusal: 403 JSON (routers/api/v1/api.go reqPackageAccess)
PERMISSION_TEXT = "user should have specific permission or be a site admin"
# /api/v1 with a token that resolves to no user (reference/forgejo-registry-v11-details.md §7, corrected)
INVALID_TOKEN_TEXT = "user does not exist [uid: 0, name: ]"
AUTH_FAILED_TEXT = "authGroup.Verify"
APP_NAME = "Forgejo: Beyond coding. We Forge."
TOKEN_TTL = dt.timedelta(hours=24)
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


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- HS256 JWT (what Forgejo's packages service signs with its JWT_SECRET) ----


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_encode(claims: dict, key: bytes) -> str:
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(sig)}"


def jwt_decode(token: str, key: bytes) -> dict | None:
    """Claims of a valid, unexpired HS256 token signed with `key`, else None."""
    try:
        head, body, sig = token.split(".")
        if json.loads(_unb64url(head)).get("alg") != "HS256":
            return None
        want = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(want, _unb64url(sig)):
            return None
        claims = json.loads(_unb64url(body))
    except Exception:
        return None
    now = time.time()
    if claims.get("exp", 0) < now or claims.get("nbf", 0) > now + 1:
        return None
    return claims


# -- users, tokens, owners ----------------------------------------------------


@dataclass
class User:
    name: str
    id: int
    password: str | None = None
    admin: bool = False

    def api(self, root: str) -> dict:
        return {
            "id": self.id, "login": self.name, "login_name": "", "full_name": "", "email": f"{self.name}@noreply.forgejo.test",
            "avatar_url": f"{root}avatars/{self.id}", "html_url": f"{root}{self.name}", "language": "", "is_admin": self.admin,
            "restricted": False, "active": True, "prohibit_login": False, "visibility": "public", "username": self.name,
        }


GHOST = User("Ghost", -1)


@dataclass
class Pat:
    """A personal access token. `scopes` as Forgejo writes them: read:package, write:package, all."""

    user: str
    name: str
    token: str
    scopes: frozenset[str]
    revoked: bool = False

    @property
    def scope_string(self) -> str:
        return ",".join(sorted(self.scopes))


@dataclass
class Owner:
    """A package owner: a user (its packages are written by that user only) or an organisation
    (written by members whose team grants Packages write)."""

    name: str
    visibility: str = "public"  # public | limited | private
    members: dict[str, str] = field(default_factory=dict)  # organisation: user -> read | write (team "Packages" unit)
    kind: str = "organization"  # user | organization


@dataclass(frozen=True)
class Principal:
    """Who a request is: a user (None = ghost) and the token scopes it is limited to (None = unrestricted)."""

    user: User | None
    scopes: frozenset[str] | None
    via: str  # pat | password | jwt | ghost


def has_scope(scopes: frozenset[str] | None, needed: str) -> bool:
    if scopes is None or "all" in scopes or needed in scopes:
        return True
    level, _, category = needed.partition(":")
    return level == "read" and f"write:{category}" in scopes


def parse_scopes(s: str) -> frozenset[str] | None:
    parts = frozenset(p.strip() for p in (s or "").split(",") if p.strip())
    return parts or None


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


def _normalise(path: str) -> str:
    # Forgejo strips trailing slashes and collapses doubled ones before routing
    path = re.sub(r"/{2,}", "/", path)
    return path.rstrip("/") or "/"


# -- fault knobs and counters -------------------------------------------------


@dataclass
class Knobs:
    """Faults of the stand-in. `only` limits the transport faults to paths with these prefixes."""

    mode: str = "normal"  # normal | error500 | hang | slow
    slow_seconds: float = 0.0
    only: tuple[str, ...] = ()
    healthy: bool = True  # False: /api/healthz reports database:ping fail (424)
    delete_mode: str = "normal"  # normal | refuse (package API DELETE 500) | ignore (204, version survives)
    enforce_scopes: bool = True  # False: the pre-7.0.8 bug (a permitted user's PAT pushes whatever its scope)
    ignored_deletes: list[tuple[str, str]] = field(default_factory=list)  # (repository, version) answered 204
    blobs_unreadable: bool = False  # HEAD/GET of blobs 404 (database row present, file gone: gitea#19586)
    release: threading.Event = field(default_factory=threading.Event)  # set = hanging requests give up

    def applies(self, path: str) -> bool:
        return not self.only or any(path.startswith(p) for p in self.only)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    status: int | None  # None: never answered (hang)


# -- the engine's storage, read the way Forgejo's database would answer -------


@dataclass(frozen=True)
class Version:
    """One package version as Forgejo lists it."""

    id: int
    owner: str
    name: str  # image name without the owner
    version: str  # lowercased tag or sha256:<hex>
    digest: str
    created_at: dt.datetime
    creator: str

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def untagged(self) -> bool:
        return self.version.startswith("sha256:")


@dataclass
class _Meta:
    digest: str
    id: int
    created_at: dt.datetime
    creator: str


class _Store:
    """Tags, manifests and version metadata, derived from the engine's files."""

    def __init__(self, engine: DistributionRegistry, default_creator: str):
        self.engine = engine
        self.default_creator = default_creator
        self.lock = threading.RLock()
        self._meta: dict[tuple[str, str], _Meta] = {}
        self._next_id = 1
        self._manifest_cache: dict[str, dict | None] = {}

    # raw storage
    @property
    def _repos_root(self) -> Path:
        return self.engine.v2 / "repositories"

    def repositories(self) -> list[str]:
        root = self._repos_root
        out = []
        if not root.is_dir():
            return out
        for dirpath, dirnames, _ in os.walk(root):
            if any(d in ("_manifests", "_layers", "_uploads") for d in dirnames):
                out.append(os.path.relpath(dirpath, root).replace(os.sep, "/"))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(out)

    def exists(self, repo: str) -> bool:
        return (self._repos_root / repo / "_manifests").is_dir() or (self._repos_root / repo / "_layers").is_dir()

    def tags(self, repo: str) -> dict[str, tuple[str, Path]]:
        d = self._repos_root / repo / "_manifests" / "tags"
        out = {}
        if d.is_dir():
            for tag in os.listdir(d):
                link = d / tag / "current" / "link"
                with contextlib.suppress(OSError):
                    out[tag] = (link.read_text().strip(), link)
        return out

    def revisions(self, repo: str) -> dict[str, Path]:
        d = self._repos_root / repo / "_manifests" / "revisions" / "sha256"
        out = {}
        if d.is_dir():
            for hexd in os.listdir(d):
                link = d / hexd / "link"
                if link.is_file():
                    out[f"sha256:{hexd}"] = link
        return out

    def manifest(self, digest: str) -> dict | None:
        if digest not in self._manifest_cache:
            try:
                self._manifest_cache[digest] = json.loads((self.engine.blob_dir(digest) / "data").read_bytes())
            except (OSError, ValueError):
                return None
        return self._manifest_cache[digest]

    def children(self, repo: str) -> set[str]:
        """Digests listed by any index stored in `repo`."""
        out = set()
        for d in self.revisions(repo):
            m = self.manifest(d) or {}
            if isinstance(m.get("manifests"), list):
                out |= {c.get("digest") for c in m["manifests"] if isinstance(c, dict)}
        return out

    # versions
    def _meta_for(self, repo: str, version: str, digest: str, link: Path) -> _Meta:
        m = self._meta.get((repo, version))
        if m is None or m.digest != digest:
            try:
                created = dt.datetime.fromtimestamp(int(link.stat().st_mtime), dt.UTC)
            except OSError:
                created = _now()
            m = self._meta[(repo, version)] = _Meta(digest, self._next_id, created, self.default_creator)
            self._next_id += 1
        return m

    def versions(self, owner: str | None = None) -> list[Version]:
        with self.lock:
            out = []
            for repo in self.repositories():
                o, _, name = repo.partition("/")
                if not name or (owner is not None and o != owner):
                    continue
                tags = self.tags(repo)
                tagged = set()
                for tag, (digest, link) in sorted(tags.items()):
                    tagged.add(digest)
                    m = self._meta_for(repo, tag, digest, link)
                    out.append(Version(m.id, o, name, tag, digest, m.created_at, m.creator))
                for digest, link in sorted(self.revisions(repo).items()):
                    if digest not in tagged:
                        m = self._meta_for(repo, digest, digest, link)
                        out.append(Version(m.id, o, name, digest, digest, m.created_at, m.creator))
            return out

    def record_push(self, repo: str, version: str, digest: str, creator: str) -> None:
        with self.lock:
            self._meta[(repo, version)] = _Meta(digest, self._next_id, _now(), creator)
            self._next_id += 1

    def set_created_at(self, repo: str, version: str, when: dt.datetime) -> None:
        with self.lock:
            self.versions(repo.split("/", 1)[0])  # make sure the overlay knows the version
            m = self._meta.get((repo, version))
            if m is None:
                raise KeyError(f"no version {repo}:{version}")
            m.created_at = when.astimezone(dt.UTC).replace(microsecond=0)

    def record_pushes(self, pushes: list[tuple[str, str, dt.datetime]]) -> None:
        """(repository, version, pushed at) in push order: each version gets that created_at and
        a fresh id in that order (Forgejo's ids follow inserts: a buildx push writes the children,
        then the index, then each further tag of it, within one second)."""
        with self.lock:
            for owner in {r.split("/", 1)[0] for r, _, _ in pushes}:
                self.versions(owner)  # the overlay knows every stored version
            for repo, version, when in pushes:
                m = self._meta.get((repo, version))
                if m is None:
                    raise KeyError(f"no version {repo}:{version}")
                m.id, m.created_at = self._next_id, when.astimezone(dt.UTC).replace(microsecond=0)
                self._next_id += 1

    def untag(self, repo: str, tag: str) -> None:
        shutil.rmtree(self.engine.tag_dir(repo, tag), ignore_errors=True)


# -- the server ---------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, standin: ForgejoStandin, ssl_context: ssl.SSLContext):
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


class _Handler(BaseHTTPRequestHandler):
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
        standin: ForgejoStandin = self.server.standin
        raw, _, query = self.path.partition("?")
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        req = Request(self.command, _normalise(raw), urllib.parse.parse_qs(query, keep_blank_values=True), self.headers, body)
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


class ForgejoStandin:
    """Forgejo v11 on the wire, in front of a real distribution engine. See the module doc."""

    def __init__(self, engine: DistributionRegistry, cert: Path, key: Path, *, host: str = "127.0.0.1",
                 port: int = 0, default_creator: str = "ci-pusher"):
        self.engine = engine
        self.store = _Store(engine, default_creator)
        self.knobs = Knobs()
        self.users: dict[str, User] = {}
        self.pats: dict[str, Pat] = {}
        self.owners: dict[str, Owner] = {}
        self.routes: list[Route] = []
        self._builtin: list[Route] = []
        self._jwt_key = _secrets.token_bytes(32)
        self._uploads: dict[str, tuple[str, str]] = {}  # uuid -> (repo, engine location with _state)
        self._uploaded: dict[str, int] = {}
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self._seen: collections.deque[Seen] = collections.deque(maxlen=20000)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        ctx.set_alpn_protocols(["http/1.1"])
        self._server = _Server((host, port), _Handler, self, ctx)
        self.host, self.port = self._server.server_address[:2]
        self._thread: threading.Thread | None = None
        self._engine_http = httpx.Client(base_url=engine.url, timeout=30, trust_env=False)
        self._register_builtin_routes()

    # -- addresses -------------------------------------------------------------
    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.netloc}"

    @property
    def root_url(self) -> str:
        """Forgejo's ROOT_URL (always ends with /)."""
        return self.url + "/"

    # -- life cycle ------------------------------------------------------------
    def start(self) -> ForgejoStandin:
        self._thread = threading.Thread(target=self._server.serve_forever, name="forgejo-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.knobs.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._engine_http.close()

    # -- accounts --------------------------------------------------------------
    def add_user(self, name: str, password: str | None = None, admin: bool = False,
                 visibility: str = "public") -> User:
        """A user; also the owner of its own packages (Forgejo's default user visibility is public)."""
        u = User(name, len(self.users) + 1, password, admin)
        self.users[name] = u
        self.owners[name] = Owner(name, visibility, kind="user")
        return u

    def add_owner(self, name: str, visibility: str = "private", members: dict[str, str] | None = None) -> Owner:
        """An organisation whose members' team grants them Packages read or write."""
        o = self.owners[name] = Owner(name, visibility, dict(members or {}), kind="organization")
        return o

    def add_pat(self, user: str, name: str, token: str, scopes) -> Pat:
        if user not in self.users:
            raise KeyError(f"no user {user!r}")
        p = Pat(user, name, token, frozenset(scopes))
        self.pats[token] = p
        return p

    def pat(self, user: str, name: str) -> Pat:
        for p in self.pats.values():
            if p.user == user and p.name == name:
                return p
        raise KeyError(f"no token {name!r} of {user!r}")

    # -- extension: routes ---------------------------------------------------
    def route(self, methods, pattern: str, handler: Callable[[Request], Response], name: str = "") -> Route:
        """Mount a handler: `methods` ("GET" or ["GET", "HEAD"]), a regex matched against the whole
        normalised, still percent-encoded path (named groups arrive decoded in `req.params`).
        Routes added here are tried before the built-in ones, newest first. A handler returns a
        `Response` or raises `HttpError`."""
        ms = frozenset([methods] if isinstance(methods, str) else methods)
        r = Route(frozenset(m.upper() for m in ms), re.compile(pattern), handler, name or pattern)
        self.routes.insert(0, r)
        return r

    def _register_builtin_routes(self) -> None:
        def add(methods, pattern, handler):
            self._builtin.append(Route(frozenset(methods), re.compile(pattern), handler, handler.__name__))

        add({"GET"}, r"/api/healthz", self._healthz)
        add({"GET"}, r"/api/v1/packages/(?P<owner>[^/]+)", self._api_list)
        add({"GET", "DELETE"}, r"/api/v1/packages/(?P<owner>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)/(?P<version>[^/]+)",
            self._api_version)
        add({"GET"}, r"/api/v1/packages/(?P<owner>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)/(?P<version>[^/]+)/files",
            self._api_files)
        add({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}, r"/v2(?:/.*)?", self._v2)

    # -- counters ---------------------------------------------------------------
    def requests(self, since: int = 0) -> list[Seen]:
        """Requests seen (method, path, status), oldest first; `since` = a previous `mark()`."""
        with self._lock:
            items = list(self._seen)
        return items[since:] if since else items

    def mark(self) -> int:
        with self._lock:
            return len(self._seen)

    def writes(self, since: int = 0) -> list[Seen]:
        return [s for s in self.requests(since) if s.method not in ("GET", "HEAD", "OPTIONS")]

    def reset_counters(self) -> None:
        with self._lock:
            self.counts.clear()
            self._seen.clear()

    # -- faults -----------------------------------------------------------------
    @contextlib.contextmanager
    def fault(self, **changes):
        """Set knobs for the block (`mode="hang"`, `delete_mode="ignore"`, `enforce_scopes=False`, ...)."""
        old = dataclasses.replace(self.knobs, ignored_deletes=[])
        if changes.get("mode") == "hang":
            changes["release"] = threading.Event()
        changes.setdefault("ignored_deletes", [])
        for k, v in changes.items():
            if not hasattr(self.knobs, k):
                raise AttributeError(f"no knob {k!r}")
            setattr(self.knobs, k, v)
        try:
            yield self.knobs
        finally:
            self.knobs.release.set()
            ignored, self.knobs = self.knobs.ignored_deletes, old
            # the lab's repair: what the faulty server claimed to delete goes now, so the
            # next gate run starts from the state the previous one asked for
            for repository, version in ignored:
                self.delete_version(repository, version)

    # -- the package model (also for lab scenarios) -------------------------------
    def versions(self, owner: str | None = None) -> list[Version]:
        return self.store.versions(owner)

    def set_created_at(self, repository: str, version: str, when: dt.datetime) -> None:
        """Age (or rejuvenate) a version: what Forgejo's database says its created_at is."""
        self.store.set_created_at(repository, version, when)

    def record_pushes(self, pushes: list[tuple[str, str, dt.datetime]]) -> None:
        """Give stored versions the ids and created_at of a push history (see _Store.record_pushes)."""
        self.store.record_pushes(pushes)

    def push_order(self, repository: str, tag: str) -> list[str]:
        """The versions one push of `tag` writes, in the order a client writes them: every
        untagged manifest below it (children before their index), then the tag."""
        out: list[str] = []
        tags = self.store.tags(repository)

        def walk(digest: str) -> None:
            m = self.store.manifest(digest) or {}
            for c in m.get("manifests") or []:
                d = c.get("digest") if isinstance(c, dict) else None
                if d and d not in out:
                    walk(d)
                    if not any(t == d for t, _ in tags.values()):
                        out.append(d)

        walk(tags[tag][0])
        return out + [tag]

    def manifest_bytes(self, repository: str, ref: str) -> tuple[bytes, str]:
        """The stored manifest of a version (lab scenarios): its bytes and media type."""
        r = self._engine_http.get(f"/v2/{repository}/manifests/{ref}", headers={"Accept": ENGINE_ACCEPT})
        r.raise_for_status()
        return r.content, r.headers.get("Content-Type", "")

    def store_manifest(self, repository: str, tag: str, body: bytes, media_type: str, *, creator: str) -> str:
        """Store a manifest under a tag as a push would (its blobs must be in the image already)."""
        with self.store.lock:
            r = self._engine_http.put(f"/v2/{repository}/manifests/{tag}", content=body,
                                      headers={"Content-Type": media_type})
            r.raise_for_status()
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            self.store.record_push(repository, tag.lower(), digest, creator)
        return digest

    def delete_version(self, repository: str, version: str) -> bool:
        """What DELETE /api/v1/packages/{owner}/container/{name}/{version} does. False if unknown."""
        with self.store.lock:
            v = self._find(repository, version)
            if v is None:
                return False
            if v.untagged:
                self._engine_delete_manifest(repository, v.digest)
            else:
                self.store.untag(repository, v.version)
                self._drop_if_unreferenced(repository, v.digest)
            return True

    def run_cleanup_packages(self, older_than: dt.timedelta = dt.timedelta(hours=24),
                             now: dt.datetime | None = None) -> list[Version]:
        """Forgejo >= 9's `cleanup_packages` cron ([cron.cleanup_packages] @midnight, OLDER_THAN 24h;
        services/packages/container/cleanup_sha256.go cleanupSHA256, Forgejo PRs 4698 and 5430):
        delete every untagged `sha256:` version older than `older_than` whose digest no *tagged*
        index lists (only non-sha256 versions' metadata protect) -- the indexes are read globally,
        across every image and whatever their age. Returns what it deleted. Lab scenarios and
        faults call it; it is not run at lab start because the seed's nested indexes (which
        Forgejo itself refuses: 400 MANIFEST_INVALID) would lose their grandchildren."""
        cutoff = (now or _now()) - older_than
        gone = []
        with self.store.lock:
            versions = self.store.versions()
            referenced = set()
            for v in versions:
                if not v.untagged:
                    m = self.store.manifest(v.digest) or {}
                    if isinstance(m.get("manifests"), list):
                        referenced |= {c.get("digest") for c in m["manifests"] if isinstance(c, dict)}
            for v in versions:
                if v.untagged and v.created_at < cutoff and v.digest not in referenced:
                    self.delete_version(v.repository, v.version)
                    gone.append(v)
        return gone

    def _find(self, repository: str, version: str) -> Version | None:
        owner = repository.split("/", 1)[0]
        for v in self.store.versions(owner):
            if v.repository == repository and v.version == version.lower():
                return v
        return None

    def _drop_if_unreferenced(self, repo: str, digest: str) -> None:
        # Forgejo keeps a manifest reachable by digest only while some version holds it
        if any(d == digest for d, _ in self.store.tags(repo).values()):
            return
        if digest in self.store.children(repo):
            return
        self._engine_delete_manifest(repo, digest)

    def _engine_delete_manifest(self, repo: str, digest: str) -> None:
        gone = self._blobs_of(digest)
        self._engine_http.delete(f"/v2/{repo}/manifests/{digest}")
        # a version's blobs are its package files: removing the version removes them, so a layer
        # no other version of the image uses answers 404 at once (Forgejo serves a blob only from
        # some version's files of that image: models/packages/container/search.go, v11 sheet §5)
        still = set()
        for d in list(self.store.revisions(repo)):
            still |= self._blobs_of(d)
        for blob in gone - still:
            self._engine_http.delete(f"/v2/{repo}/blobs/{blob}")

    def _blobs_of(self, digest: str) -> set[str]:
        m = self.store.manifest(digest) or {}
        descs = [m.get("config")] + list(m.get("layers") or [])
        return {d["digest"] for d in descs if isinstance(d, dict) and DIGEST.match(str(d.get("digest", "")))}

    # -- dispatch -----------------------------------------------------------------
    def handle(self, req: Request) -> Response | None:
        k = self.knobs
        status: int | None = None
        try:
            if k.mode != "normal" and k.applies(req.path):
                if k.mode == "hang":
                    k.release.wait()
                    return None
                if k.mode == "error500":
                    resp = Response(500, [], b"")
                    status = 500
                    return resp
                if k.mode == "slow":
                    time.sleep(k.slow_seconds)
            resp = self._route(req)
            status = resp.status
            return resp
        finally:
            with self._lock:
                self.counts[req.method] += 1
                self._seen.append(Seen(req.method, req.path, status))

    def _route(self, req: Request) -> Response:
        allowed: set[str] = set()
        for r in self.routes + self._builtin:
            m = r.pattern.fullmatch(req.path)
            if not m:
                continue
            if req.method not in r.methods:
                allowed |= r.methods
                continue
            req.params = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items() if v is not None}
            try:
                return r.handler(req)
            except HttpError as e:
                return e.response
            except Exception as e:  # a stand-in bug must show as a 500, not a hang
                import traceback

                traceback.print_exc()
                return Response.text(f"stand-in error: {type(e).__name__}", 500)
        if allowed:
            return Response.text("Method Not Allowed", 405, [("Allow", ", ".join(sorted(allowed)))])
        if req.path.startswith("/api/"):
            return self._api_error(404, "not found")
        return Response.text("Not found.", 404)

    # -- /api/healthz -------------------------------------------------------------
    def _healthz(self, req: Request) -> Response:
        t = _rfc3339(_now())
        db = "pass" if self.knobs.healthy else "fail"
        body = {"status": "pass" if db == "pass" else "fail", "description": APP_NAME,
                "checks": {"cache:ping": [{"status": "pass", "time": t}], "database:ping": [{"status": db, "time": t}]}}
        return Response(200 if db == "pass" else 424, [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                        json.dumps(body, indent=2).encode())

    # -- authentication -------------------------------------------------------------
    def _basic(self, cred: str) -> Principal | None:
        try:
            user, _, pw = base64.b64decode(cred.strip()).decode().partition(":")
        except Exception:
            return None
        token = user if pw in ("", "x-oauth-basic") else pw
        pat = self.pats.get(token)
        if pat and not pat.revoked:
            return Principal(self.users[pat.user], pat.scopes, "pat")
        u = self.users.get(user)
        if u and u.password and hmac.compare_digest(u.password, pw):
            return Principal(u, None, "password")
        return None

    def _auth_failed(self) -> HttpError:
        return HttpError(Response.text(AUTH_FAILED_TEXT, 401))

    def _container_principal(self, req: Request) -> Principal | None:
        """Forgejo's /v2 auth group: Basic (only under /v2/...), then the registry JWT. None = no credentials."""
        auth = req.header("Authorization")
        if not auth:
            return None
        scheme, _, cred = auth.partition(" ")
        if scheme.lower() == "basic" and req.path.startswith("/v2/"):
            p = self._basic(cred)
            if p is None:
                raise self._auth_failed()
            return p
        claims = jwt_decode(cred.strip(), self._jwt_key)
        if claims is None:
            raise self._auth_failed()
        uid = claims.get("UserID")
        user = next((u for u in self.users.values() if u.id == uid), None)
        if user is None and uid != GHOST.id:
            raise self._auth_failed()
        return Principal(user, parse_scopes(claims.get("Scope", "")), "jwt" if user else "ghost")

    def api_principal(self, req: Request, category: str = "package") -> Principal:
        """Authenticate an /api/v1 request like Forgejo (token/Bearer PAT, Basic, ?token=) and check
        the PAT's scope for `category` (read:<category> for GET/HEAD, write:<category> otherwise).
        Raises HttpError with Forgejo's JSON answer when it fails."""
        auth = req.header("Authorization")
        token = req.arg("token") or req.arg("access_token")
        p: Principal | None = None
        if auth:
            scheme, _, cred = auth.partition(" ")
            if scheme == "token" or scheme.lower() == "bearer":
                token = cred.strip()
            elif scheme.lower() == "basic":
                p = self._basic(cred)
                if p is None:
                    raise HttpError(self._api_error(401, "user does not exist"))
        if p is None and token:
            pat = self.pats.get(token)
            if pat is None or pat.revoked:
                raise HttpError(self._api_error(401, INVALID_TOKEN_TEXT))
            p = Principal(self.users[pat.user], pat.scopes, "pat")
        if p is None:
            raise HttpError(self._api_error(401, "token is required"))
        needed = f"{'read' if req.method in ('GET', 'HEAD') else 'write'}:{category}"
        if not has_scope(p.scopes, needed):
            raise HttpError(self._api_error(403, f"token does not have at least one of required scope(s): [{needed}]"))
        return p

    def _api_error(self, status: int, message: str) -> Response:
        return Response.json({"message": message, "url": f"{self.root_url}api/swagger"}, status)

    def access(self, principal: Principal | None, owner: str) -> str:
        """Permission level on an owner's packages: none | read | write. As Forgejo's
        determineAccessMode (services/context/package.go, go-gitea/gitea @ 0bd9aa0a; Forgejo v11
        services/context/package.go:106-145): a user's packages are written by that user only --
        another user's write:package PAT is refused -- and read by signed-in users when the owner
        is public or limited, by anonymous callers when public; an organisation's by its members
        at their team's Packages level, by others (read) when the organisation is visible to them.
        Site admins bypass every check."""
        o = self.owners.get(owner)
        if o is None:
            return "none"
        user = principal.user if principal else None
        if user is not None and user.admin:
            return "write"
        if o.kind == "user":
            if user is not None and user.name == o.name:
                return "write"
            if user is not None:
                return "read" if o.visibility in ("public", "limited") else "none"
            return "read" if o.visibility == "public" else "none"
        level = o.members.get(user.name, "none") if user is not None else "none"
        if level == "none" and (o.visibility == "public" or (o.visibility == "limited" and user is not None)):
            level = "read"
        return level

    def _require(self, principal: Principal, owner: str, mode: str) -> None:
        level = self.access(principal, owner)
        ok = level == "write" or (mode == "read" and level == "read")
        if ok and self.knobs.enforce_scopes and principal.via in ("pat", "jwt"):
            ok = has_scope(principal.scopes, f"{mode}:package")
        if not ok:
            raise HttpError(Response.text(REQ_PACKAGE_ACCESS, 401, [("WWW-Authenticate", PACKAGE_API_REALM)]))

    def _challenge(self) -> Response:
        r = oci_error(401, "UNAUTHORIZED")
        r.headers.append(("WWW-Authenticate",
                          f'Bearer realm="{self.root_url}v2/token",service="container_registry",scope="*"'))
        return r

    # -- /v2 ----------------------------------------------------------------------
    _V2_ROUTES = [
        ("uploads", re.compile(r"/v2/(?P<owner>[^/]+)/(?P<image>.+)/blobs/uploads(?:/(?P<uuid>[^/]+))?")),
        ("blob", re.compile(r"/v2/(?P<owner>[^/]+)/(?P<image>.+)/blobs/(?P<digest>[^/]+)")),
        ("manifest", re.compile(r"/v2/(?P<owner>[^/]+)/(?P<image>.+)/manifests/(?P<ref>[^/]+)")),
        ("tags", re.compile(r"/v2/(?P<owner>[^/]+)/(?P<image>.+)/tags/list")),
    ]

    def _v2(self, req: Request) -> Response:
        principal = self._container_principal(req)
        if req.path == "/v2":
            if req.method != "GET":
                return Response(405, [("Allow", "GET")], b"")
            if principal is None:
                return self._challenge()
            return registry_response(200)
        if req.path == "/v2/token":
            if req.method == "GET":
                return self._token(principal)
            return Response(404, [], b"")  # POST is a stub so containerd falls back to GET
        if principal is None:
            return self._challenge()
        if req.path == "/v2/_catalog":
            if req.method != "GET":
                return Response(405, [("Allow", "GET")], b"")
            return self._catalog(req, principal)
        for kind, pattern in self._V2_ROUTES:
            m = pattern.fullmatch(req.path)
            if not m:
                continue
            g = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items() if v is not None}
            owner = g["owner"].lower()
            if owner not in self.owners:
                return Response.text("Not found.", 404)
            image = g["image"]
            if not IMAGE_NAME.match(image):
                return oci_error(400, "NAME_INVALID")
            repo = f"{owner}/{image}"
            handler = getattr(self, f"_v2_{kind}")
            return handler(req, principal, owner, repo, g)
        return Response(404, [], b"")

    def _token(self, principal: Principal | None) -> Response:
        user = principal.user if principal else None
        now = int(time.time())
        # the PAT's scope travels in the JWT (Forgejo; Gitea 1.21 dropped it); empty = unrestricted
        scope = ",".join(sorted(principal.scopes or ())) if principal is not None else ""
        claims = {"exp": now + int(TOKEN_TTL.total_seconds()), "nbf": now, "UserID": user.id if user else GHOST.id,
                  "Scope": scope}
        return Response.json({"token": jwt_encode(claims, self._jwt_key)}, headers=[API_VERSION_HEADER])

    def _catalog(self, req: Request, principal: Principal) -> Response:
        try:
            n = int(req.arg("n", "0"))
        except ValueError:
            n = 0
        if n <= 0 or n > CATALOG_MAX:
            n = CATALOG_MAX
        last = req.arg("last").lower()
        repos = sorted({v.repository for v in self.store.versions()
                        if self.access(principal, v.owner) != "none"})
        page = [r for r in repos if r > last][:n]
        headers = [("Content-Type", "application/json")]
        if len(page) == n:
            q = urllib.parse.urlencode({"last": page[-1], "n": n})
            headers.append(("Link", f'</v2/_catalog?{q}>; rel="next"'))
        return registry_response(200, headers, json.dumps({"repositories": page}).encode())

    def _v2_tags(self, req, principal, owner, repo, g) -> Response:
        if req.method != "GET":
            return Response(404, [], b"")
        self._require(principal, owner, "read")
        if not self.store.exists(repo):
            return oci_error(404, "NAME_UNKNOWN")
        tags = sorted(self.store.tags(repo))
        last = req.arg("last").lower()
        if last:
            tags = [t for t in tags if t > last]
        n_raw = req.query.get("n")
        n = None
        if n_raw is not None:
            try:
                n = int(n_raw[0])
            except ValueError:
                n = 0
            tags = tags[:max(n, 0)]
        headers = [("Content-Type", "application/json")]
        if tags:
            q = {"last": tags[-1]}
            if n and n > 0:
                q["n"] = n
            headers.append(("Link", f'</v2/{repo}/tags/list?{urllib.parse.urlencode(q)}>; rel="next"'))
        return registry_response(200, headers, json.dumps({"name": repo, "tags": tags}).encode())

    # blobs
    def _engine(self, method: str, url: str, **kw) -> httpx.Response:
        try:
            return self._engine_http.request(method, url, **kw)
        except httpx.HTTPError as e:
            raise HttpError(registry_response(500)) from e

    def _v2_blob(self, req, principal, owner, repo, g) -> Response:
        digest = g["digest"]
        if req.method in ("GET", "HEAD"):
            self._require(principal, owner, "read")
            if not DIGEST.match(digest) or self.knobs.blobs_unreadable:
                return oci_error(404, "BLOB_UNKNOWN")
            r = self._engine(req.method, f"/v2/{repo}/blobs/{digest}")
            if r.status_code == 404:
                return oci_error(404, "BLOB_UNKNOWN")
            if r.status_code != 200:
                return registry_response(500)
            size = int(r.headers.get("Content-Length", len(r.content)))
            headers = [("Docker-Content-Digest", digest), ("ETag", f'"{digest}"')]
            if req.method == "HEAD":
                if size:
                    headers.append(("Content-Length", str(size)))
                return Response(200, [API_VERSION_HEADER, *headers], b"", omit_length=size == 0)
            headers.append(("Content-Type", r.headers.get("Content-Type", "application/octet-stream")))
            return registry_response(200, headers, r.content)
        if req.method == "DELETE":
            self._require(principal, owner, "write")
            if not DIGEST.match(digest):
                return oci_error(404, "BLOB_UNKNOWN")
            self._engine("DELETE", f"/v2/{repo}/blobs/{digest}")
            return registry_response(202)
        return Response(404, [], b"")

    def _blob_created(self, repo: str, digest: str) -> Response:
        return registry_response(201, [("Location", f"/v2/{repo}/blobs/{digest}"), ("Docker-Content-Digest", digest)])

    def _engine_upload(self, repo: str) -> str:
        r = self._engine("POST", f"/v2/{repo}/blobs/uploads/")
        if r.status_code != 202:
            raise HttpError(registry_response(500))
        return r.headers["Location"]

    def _engine_finish(self, repo: str, location: str, digest: str, body: bytes) -> Response:
        sep = "&" if "?" in location else "?"
        r = self._engine("PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}", content=body,
                         headers={"Content-Type": "application/octet-stream"})
        if r.status_code == 201:
            return self._blob_created(repo, digest)
        if r.status_code == 400:
            return oci_error(400, "DIGEST_INVALID")
        return registry_response(500)

    def _v2_uploads(self, req, principal, owner, repo, g) -> Response:
        self._require(principal, owner, "write")
        uuid = g.get("uuid")
        if req.method == "POST" and uuid is None:
            mount, source, digest = req.arg("mount"), req.arg("from"), req.arg("digest")
            if mount and DIGEST.match(mount):
                src = self._mount_source(principal, mount, source)
                if src:
                    r = self._engine("POST", f"/v2/{repo}/blobs/uploads/",
                                     params={"mount": mount, "from": src})
                    if r.status_code == 201:
                        return self._blob_created(repo, mount)
            if digest:
                return self._engine_finish(repo, self._engine_upload(repo), digest, req.body)
            location = self._engine_upload(repo)
            uuid = location.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
            with self._lock:
                self._uploads[uuid] = (repo, location)
                self._uploaded[uuid] = 0
            return registry_response(202, [("Location", f"/v2/{repo}/blobs/uploads/{uuid}"), ("Range", "0-0"),
                                           ("Docker-Upload-Uuid", uuid)])
        if uuid is None or not UPLOAD_ID.match(uuid) or uuid not in self._uploads:
            return oci_error(404, "BLOB_UPLOAD_UNKNOWN")
        _, location = self._uploads[uuid]
        size = self._uploaded[uuid]
        where = [("Location", f"/v2/{repo}/blobs/uploads/{uuid}"), ("Docker-Upload-Uuid", uuid)]
        if req.method == "GET":
            return registry_response(204, [("Range", f"0-{size}"), *where])  # v11's off-by-one
        if req.method == "PATCH":
            cr = req.header("Content-Range")
            if cr:
                m = re.fullmatch(r"(\d+)-(\d+)", cr.strip())
                if not m:
                    return oci_error(400, "BLOB_UPLOAD_INVALID")
                if int(m.group(1)) != size:
                    return oci_error(416, "BLOB_UPLOAD_INVALID")
            elif size > 0:
                return oci_error(400, "BLOB_UPLOAD_INVALID", "Stream uploads after first write are not allowed")
            r = self._engine("PATCH", location, content=req.body, headers={"Content-Type": "application/octet-stream"})
            if r.status_code != 202:
                return registry_response(500)
            with self._lock:
                self._uploads[uuid] = (repo, r.headers["Location"])
                self._uploaded[uuid] = size + len(req.body)
            return registry_response(202, [("Range", f"0-{size + len(req.body) - 1}"), *where])
        if req.method == "PUT":
            digest = req.arg("digest")
            if not digest:
                return oci_error(400, "DIGEST_INVALID")
            resp = self._engine_finish(repo, location, digest, req.body)
            if resp.status == 201:
                with self._lock:
                    self._uploads.pop(uuid, None)
                    self._uploaded.pop(uuid, None)
            return resp
        if req.method == "DELETE":
            self._engine("DELETE", location)
            with self._lock:
                self._uploads.pop(uuid, None)
                self._uploaded.pop(uuid, None)
            return registry_response(204)
        return Response(404, [], b"")

    def _mount_source(self, principal: Principal, digest: str, source: str) -> str | None:
        candidates = [source.lower()] if source else self.store.repositories()
        for repo in candidates:
            if self.access(principal, repo.split("/", 1)[0]) == "none":
                continue
            link = self.engine.v2 / "repositories" / repo / "_layers" / "sha256" / digest.split(":", 1)[1] / "link"
            if link.is_file():
                return repo
        return None

    # manifests
    def _v2_manifest(self, req, principal, owner, repo, g) -> Response:
        ref = g["ref"]
        if req.method in ("GET", "HEAD"):
            self._require(principal, owner, "read")
            return self._get_manifest(req.method, repo, ref)
        if req.method == "PUT":
            self._require(principal, owner, "write")
            return self._put_manifest(req, principal, repo, ref)
        if req.method == "DELETE":
            self._require(principal, owner, "write")
            return self._delete_manifest(repo, ref)
        return Response(404, [], b"")

    def _engine_ref(self, ref: str) -> str | None:
        if DIGEST.match(ref):
            return ref
        if TAG.match(ref):
            return ref.lower()
        return None

    def _get_manifest(self, method: str, repo: str, ref: str) -> Response:
        eref = self._engine_ref(ref)
        if eref is None:
            return oci_error(404, "MANIFEST_UNKNOWN")
        r = self._engine(method, f"/v2/{repo}/manifests/{eref}", headers={"Accept": ENGINE_ACCEPT})
        if r.status_code == 404:
            return oci_error(404, "MANIFEST_UNKNOWN")
        if r.status_code != 200:
            return registry_response(500)
        digest = r.headers.get("Docker-Content-Digest", "")
        headers = [("Content-Type", r.headers.get("Content-Type", "")), ("Docker-Content-Digest", digest),
                   ("ETag", f'"{digest}"'), ("Content-Length", r.headers.get("Content-Length", str(len(r.content))))]
        return registry_response(200, headers, r.content if method == "GET" else b"")

    def _put_manifest(self, req: Request, principal: Principal, repo: str, ref: str) -> Response:
        body = req.body
        if len(body) > MAX_MANIFEST:
            return oci_error(413, "MANIFEST_INVALID", "Manifest exceeds maximum size")
        is_digest = bool(DIGEST.match(ref))
        if not is_digest and not TAG.match(ref):
            return oci_error(400, "MANIFEST_INVALID", "Tag is invalid")
        try:
            doc = json.loads(body)
            assert isinstance(doc, dict)
        except Exception:
            return registry_response(500)
        if doc.get("schemaVersion") != 2:
            return oci_error(501, "UNSUPPORTED", "Schema version is not supported")
        ctype = req.header("Content-Type")
        if not ctype.startswith(("application/vnd.docker.", "application/vnd.oci.")):
            ctype = doc.get("mediaType") or ""
        if not ctype.startswith(("application/vnd.docker.", "application/vnd.oci.")):
            return oci_error(400, "MANIFEST_INVALID", "MediaType not recognized")
        if ctype in IMAGE_MANIFESTS:
            for desc in [doc.get("config") or {}] + list(doc.get("layers") or []):
                d = desc.get("digest", "")
                r = self._engine("HEAD", f"/v2/{repo}/blobs/{d}") if DIGEST.match(d) else None
                if r is None or r.status_code != 200:
                    return oci_error(404, "BLOB_UNKNOWN")
                if "size" in desc and int(r.headers.get("Content-Length", -1)) != desc["size"]:
                    return oci_error(400, "SIZE_INVALID")
        elif ctype in INDEXES:
            for child in doc.get("manifests") or []:
                if child.get("mediaType") not in IMAGE_MANIFESTS:
                    return oci_error(400, "MANIFEST_INVALID")
                d = child.get("digest", "")
                r = self._engine("HEAD", f"/v2/{repo}/manifests/{d}", headers={"Accept": ENGINE_ACCEPT}) \
                    if DIGEST.match(d) else None
                if r is None or r.status_code != 200:
                    return oci_error(404, "MANIFEST_BLOB_UNKNOWN")
        else:
            return oci_error(400, "MANIFEST_INVALID")
        version = ref if is_digest else ref.lower()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        with self.store.lock:
            old = None if is_digest else self.store.tags(repo).get(version, (None,))[0]
            r = self._engine("PUT", f"/v2/{repo}/manifests/{version}", content=body, headers={"Content-Type": ctype})
            if r.status_code == 400 and "DIGEST_INVALID" in r.text:
                return oci_error(400, "DIGEST_INVALID")
            if r.status_code != 201:
                return registry_response(500)
            self.store.record_push(repo, version, digest, principal.user.name if principal.user else GHOST.name)
            if old and old != digest:  # re-pushing a tag drops the old manifest unless something holds it
                self._drop_if_unreferenced(repo, old)
        return registry_response(201, [("Location", f"/v2/{repo}/manifests/{ref}"), ("Docker-Content-Digest", digest),
                                       ("ETag", f'"{digest}"')])

    def _delete_manifest(self, repo: str, ref: str) -> Response:
        with self.store.lock:
            if DIGEST.match(ref):
                if ref not in self.store.revisions(repo):
                    return oci_error(404, "MANIFEST_UNKNOWN")
                self._engine_delete_manifest(repo, ref)
                return registry_response(202)
            tag = ref.lower()
            tags = self.store.tags(repo)
            if not TAG.match(ref) or tag not in tags:
                return oci_error(404, "MANIFEST_UNKNOWN")
            self.store.untag(repo, tag)
            self._drop_if_unreferenced(repo, tags[tag][0])
            return registry_response(202)

    # -- package REST API ---------------------------------------------------------
    def _package_json(self, v: Version) -> dict:
        owner = self.users.get(v.owner) or User(v.owner, 0)
        creator = self.users.get(v.creator) or GHOST
        name_q = urllib.parse.quote(v.name, safe="")
        version_q = urllib.parse.quote(v.version, safe=":")
        return {
            "id": v.id, "owner": owner.api(self.root_url), "repository": None, "creator": creator.api(self.root_url),
            "type": "container", "name": v.name, "version": v.version,
            "html_url": f"{self.root_url}{v.owner}/-/packages/container/{name_q}/{version_q}",
            "created_at": _rfc3339(v.created_at),
        }

    def _api_owner(self, req: Request) -> tuple[Principal, str]:
        p = self.api_principal(req, "package")
        owner = req.params["owner"].lower()
        if owner not in self.owners:
            raise HttpError(self._api_error(404, "user does not exist"))
        return p, owner

    def _api_permit(self, p: Principal, owner: str, mode: str) -> None:
        """routers/api/v1/api.go reqPackageAccess: 403 JSON below the access the route needs."""
        level = self.access(p, owner)
        if not (level == "write" or (mode == "read" and level == "read")):
            raise HttpError(self._api_error(403, PERMISSION_TEXT))

    def _api_list(self, req: Request) -> Response:
        p, owner = self._api_owner(req)
        self._api_permit(p, owner, "read")
        ptype = req.arg("type")
        q = req.arg("q").lower()
        try:
            page = max(int(req.arg("page", "1")), 1)
        except ValueError:
            page = 1
        try:
            limit = int(req.arg("limit", "0"))
        except ValueError:
            limit = 0
        if limit <= 0:
            limit = API_DEFAULT_LIMIT
        limit = min(limit, API_MAX_LIMIT)
        versions = [] if ptype not in ("", "container") else self.store.versions(owner)
        versions = [v for v in versions if q in v.name.lower()]
        versions.sort(key=lambda v: (-v.created_at.timestamp(), v.id))
        total = len(versions)
        chunk = versions[(page - 1) * limit: page * limit]
        headers = [("X-Total-Count", str(total)), ("Access-Control-Expose-Headers", "X-Total-Count, Link")]
        link = self._page_links(req, page, limit, total)
        if link:
            headers.append(("Link", link))
        return Response.json([self._package_json(v) for v in chunk], headers=headers)

    def _page_links(self, req: Request, page: int, limit: int, total: int) -> str:
        pages = max((total + limit - 1) // limit, 1)
        base = f"{self.root_url}{req.path.lstrip('/')}"

        def url(p: int) -> str:
            q = {k: v[0] for k, v in req.query.items() if k not in ("page", "limit")}
            q.update(page=str(p), limit=str(limit))
            return f"<{base}?{urllib.parse.urlencode(sorted(q.items()))}>"

        links = []
        if page < pages:
            links += [f'{url(page + 1)}; rel="next"', f'{url(pages)}; rel="last"']
        if page > 1:
            links += [f'{url(1)}; rel="first"', f'{url(page - 1)}; rel="prev"']
        return ",".join(links)

    def _api_target(self, req: Request, mode: str) -> Version:
        # PackageAssignmentAPI looks the version up (404) before reqPackageAccess judges the
        # caller (403): services/context/package.go packageAssignment, Forgejo v11
        # routers/api/v1/packages/package.go:71-90
        p, owner = self._api_owner(req)
        if req.params["type"] != "container":
            raise HttpError(self._api_error(404, "package does not exist"))
        v = self._find(f"{owner}/{req.params['name'].lower()}", req.params["version"])
        if v is None:
            raise HttpError(self._api_error(404, "package does not exist"))
        self._api_permit(p, owner, "read")
        if mode == "write":
            self._api_permit(p, owner, "write")
        return v

    def _api_version(self, req: Request) -> Response:
        if req.method == "GET":
            return Response.json(self._package_json(self._api_target(req, "read")))
        v = self._api_target(req, "write")
        if self.knobs.delete_mode == "refuse":
            return self._api_error(500, "package version could not be deleted")
        if self.knobs.delete_mode == "ignore":
            self.knobs.ignored_deletes.append((v.repository, v.version))
        else:
            self.delete_version(v.repository, v.version)
        return Response(204, [], b"")

    def _api_files(self, req: Request) -> Response:
        v = self._api_target(req, "read")
        files = [("manifest.json", v.digest)]
        m = self.store.manifest(v.digest) or {}
        for desc in [m.get("config")] + list(m.get("layers") or []):
            if isinstance(desc, dict) and DIGEST.match(desc.get("digest", "")):
                files.append((desc["digest"].replace(":", "_"), desc["digest"]))
        out = []
        for i, (name, digest) in enumerate(files, 1):
            try:
                data = (self.engine.blob_dir(digest) / "data").read_bytes()
            except OSError:
                data = b""
            out.append({"id": v.id * 100 + i, "Size": len(data), "name": name, "md5": hashlib.md5(data).hexdigest(),
                        "sha1": hashlib.sha1(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest(),
                        "sha512": hashlib.sha512(data).hexdigest()})
        return Response.json(out)
