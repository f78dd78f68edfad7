"""The Forgejo stand-in's front: the server, the route table, the transport faults and counters.

`ForgejoStandin` builds one of each area (accounts, storage, blobs, manifests, packages) and routes
to them: `/api/healthz` (here), the package REST API (packages), `/v2` (here: the ping, `/v2/token`
from accounts, `/v2/_catalog` and tags and manifests from manifests, blobs and uploads from blobs).
It also keeps the lab's view of the stand-in:
- `route(methods, pattern, handler)` mounts more routes (e.g. the repository API, repos.py);
  `api_principal(req, "repository")` authenticates them like Forgejo's /api/v1.
- `knobs` holds the faults (500 to everything, hang, slow, refuse or ignore DELETE, scopes not
  enforced, failing health check); `fault(**changes)` sets them for a block.
- `counts` / `requests()` count what reached it, per method, so a test can prove a read-only run
  wrote nothing.
- the package model of the lab's scenarios, as packages.py and store.py give it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import json
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from phasegate.lab.distribution import DistributionRegistry
from phasegate.lab.forgejo.auth import AccountBook, Owner, Pat, Principal, User
from phasegate.lab.forgejo.blobs import Blobs
from phasegate.lab.forgejo.knobs import Knobs
from phasegate.lab.forgejo.manifests import Manifests
from phasegate.lab.forgejo.packages import Packages
from phasegate.lab.forgejo.store import Store, VersionRecord
from phasegate.lab.forgejo.wire import (
    IMAGE_NAME,
    HttpError,
    Request,
    RequestHandler,
    Response,
    Route,
    Server,
    now,
    oci_error,
    registry_response,
    rfc3339,
)

APP_NAME = "Forgejo: Beyond coding. We Forge."


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    status: int | None  # None: never answered (hang)


class ForgejoStandin:
    """Forgejo v11 on the wire, in front of a real distribution engine (see the package doc)."""

    def __init__(self, engine: DistributionRegistry, cert: Path, key: Path, *, host: str = "127.0.0.1",
                 port: int = 0, default_creator: str = "ci-pusher"):
        self.engine = engine
        self.knobs = Knobs()
        self.routes: list[Route] = []
        self._builtin: list[Route] = []
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self._seen: collections.deque[SeenRequest] = collections.deque(maxlen=20000)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        ctx.set_alpn_protocols(["http/1.1"])
        self._server = Server((host, port), RequestHandler, self, ctx)
        self.host, self.port = self._server.server_address[:2]
        self._thread: threading.Thread | None = None
        self.store = Store(engine, default_creator)
        self.accounts = AccountBook(self.root_url, self.knobs)
        self.blobs = Blobs(self.store, self.accounts, self.knobs)
        self.manifests = Manifests(self.store, self.accounts)
        self.packages = Packages(self.store, self.accounts, self.knobs)
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
        self.store.close()

    # -- accounts (auth.py) --------------------------------------------------------
    @property
    def users(self) -> dict[str, User]:
        return self.accounts.users

    @property
    def owners(self) -> dict[str, Owner]:
        return self.accounts.owners

    def add_user(self, name: str, password: str | None = None, admin: bool = False,
                 visibility: str = "public") -> User:
        return self.accounts.add_user(name, password, admin, visibility)

    def add_owner(self, name: str, visibility: str = "private", members: dict[str, str] | None = None) -> Owner:
        return self.accounts.add_owner(name, visibility, members)

    def add_pat(self, user: str, name: str, token: str, scopes) -> Pat:
        return self.accounts.add_pat(user, name, token, scopes)

    def pat(self, user: str, name: str) -> Pat:
        return self.accounts.pat(user, name)

    def api_principal(self, req: Request, category: str = "package") -> Principal:
        """Authenticate an /api/v1 request of a mounted route (see AccountBook.api_principal)."""
        return self.accounts.api_principal(req, category)

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
        def add(methods, pattern, handler, name):
            self._builtin.append(Route(frozenset(methods), re.compile(pattern), handler, name))

        version = r"/api/v1/packages/(?P<owner>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)/(?P<version>[^/]+)"
        add({"GET"}, r"/api/healthz", self._healthz, "_healthz")
        add({"GET"}, r"/api/v1/packages/(?P<owner>[^/]+)", self.packages.list, "_api_list")
        add({"GET", "DELETE"}, version, self.packages.version, "_api_version")
        add({"GET"}, version + r"/files", self.packages.files, "_api_files")
        add({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}, r"/v2(?:/.*)?", self._v2, "_v2")

    # -- counters ---------------------------------------------------------------
    def requests(self, since: int = 0) -> list[SeenRequest]:
        """Requests seen (method, path, status), oldest first; `since` = a previous `mark()`."""
        with self._lock:
            items = list(self._seen)
        return items[since:] if since else items

    def mark(self) -> int:
        with self._lock:
            return len(self._seen)

    def writes(self, since: int = 0) -> list[SeenRequest]:
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
            ignored = self.knobs.ignored_deletes
            # the knobs object is shared by every area: its previous values go back in place
            for f in dataclasses.fields(old):
                setattr(self.knobs, f.name, getattr(old, f.name))
            # the lab's repair: what the faulty server claimed to delete goes now, so the
            # next gate run starts from the state the previous one asked for
            for repository, version in ignored:
                self.delete_version(repository, version)

    # -- the package model (packages.py, store.py; also for lab scenarios) -----------
    def versions(self, owner: str | None = None) -> list[VersionRecord]:
        return self.store.versions(owner)

    def set_created_at(self, repository: str, version: str, when: dt.datetime) -> None:
        """Age (or rejuvenate) a version: what Forgejo's database says its created_at is."""
        self.store.set_created_at(repository, version, when)

    def record_pushes(self, pushes: list[tuple[str, str, dt.datetime]]) -> None:
        """Give stored versions the ids and created_at of a push history (see Store.record_pushes)."""
        self.store.record_pushes(pushes)

    def push_order(self, repository: str, tag: str) -> list[str]:
        return self.packages.push_order(repository, tag)

    def manifest_bytes(self, repository: str, ref: str) -> tuple[bytes, str]:
        return self.packages.manifest_bytes(repository, ref)

    def store_manifest(self, repository: str, tag: str, body: bytes, media_type: str, *, creator: str) -> str:
        return self.packages.store_manifest(repository, tag, body, media_type, creator=creator)

    def delete_version(self, repository: str, version: str) -> bool:
        """What DELETE /api/v1/packages/{owner}/container/{name}/{version} does. False if unknown."""
        return self.store.delete_version(repository, version)

    def run_cleanup_packages(self, older_than: dt.timedelta = dt.timedelta(hours=24),
                             now: dt.datetime | None = None) -> list[VersionRecord]:
        return self.packages.run_cleanup_packages(older_than, now)

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
                self._seen.append(SeenRequest(req.method, req.path, status))

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
            return self.accounts.api_error(404, "not found")
        return Response.text("Not found.", 404)

    # -- /api/healthz -------------------------------------------------------------
    def _healthz(self, req: Request) -> Response:
        t = rfc3339(now())
        db = "pass" if self.knobs.healthy else "fail"
        body = {"status": "pass" if db == "pass" else "fail", "description": APP_NAME,
                "checks": {"cache:ping": [{"status": "pass", "time": t}], "database:ping": [{"status": db, "time": t}]}}
        return Response(200 if db == "pass" else 424, [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                        json.dumps(body, indent=2).encode())

    # -- /v2 ----------------------------------------------------------------------
    _V2_ROUTES = [
        ("uploads", re.compile(r"/v2/(?P<owner>[^/]+)/(?P<image>.+)/blobs/uploads(?:/(?P<uuid>[^/]+))?")),
        ("blob", re.compile(r"/v2/(?P<owner>[^/]+)/(?P<image>.+)/blobs/(?P<digest>[^/]+)")),
        ("manifest", re.compile(r"/v2/(?P<owner>[^/]+)/(?P<image>.+)/manifests/(?P<ref>[^/]+)")),
        ("tags", re.compile(r"/v2/(?P<owner>[^/]+)/(?P<image>.+)/tags/list")),
    ]

    def _v2(self, req: Request) -> Response:
        principal = self.accounts.container_principal(req)
        if req.path == "/v2":
            if req.method != "GET":
                return Response(405, [("Allow", "GET")], b"")
            if principal is None:
                return self.accounts.challenge()
            return registry_response(200)
        if req.path == "/v2/token":
            if req.method == "GET":
                return self.accounts.token(principal)
            return Response(404, [], b"")  # POST is a stub so containerd falls back to GET
        if principal is None:
            return self.accounts.challenge()
        if req.path == "/v2/_catalog":
            if req.method != "GET":
                return Response(405, [("Allow", "GET")], b"")
            return self.manifests.catalog(req, principal)
        handlers = {"uploads": self.blobs.uploads, "blob": self.blobs.blob,
                    "manifest": self.manifests.manifest, "tags": self.manifests.tags}
        for kind, pattern in self._V2_ROUTES:
            m = pattern.fullmatch(req.path)
            if not m:
                continue
            g = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items() if v is not None}
            owner = g["owner"].lower()
            if owner not in self.accounts.owners:
                return Response.text("Not found.", 404)
            image = g["image"]
            if not IMAGE_NAME.match(image):
                return oci_error(400, "NAME_INVALID")
            repo = f"{owner}/{image}"
            return handlers[kind](req, principal, owner, repo, g)
        return Response(404, [], b"")
