"""The Forgejo stand-in's package REST API and package model.

  GET    /api/v1/packages/{owner}                                  (type, q, page, limit; X-Total-Count, Link)
  GET    /api/v1/packages/{owner}/{type}/{name}/{version}
  DELETE /api/v1/packages/{owner}/{type}/{name}/{version}
  GET    /api/v1/packages/{owner}/{type}/{name}/{version}/files

Authenticated like Forgejo's /api/v1 (PAT scope read:package / write:package), then judged by the
owner's package access (403 JSON); the version is looked up before the caller is judged (404 first).
For lab scenarios the model itself: `versions()`, `set_created_at()` (age a version),
`record_pushes()`, `push_order()`, `store_manifest()`, `delete_version()` (what the API's DELETE does)
and `run_cleanup_packages()` (Forgejo's own cron that drops unreferenced `sha256:` versions).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import urllib.parse

from phasegate.lab.forgejo.auth import GHOST, PERMISSION_TEXT, AccountBook, Principal, User
from phasegate.lab.forgejo.knobs import Knobs
from phasegate.lab.forgejo.store import Store, VersionRecord
from phasegate.lab.forgejo.wire import (
    API_DEFAULT_LIMIT,
    API_MAX_LIMIT,
    DIGEST,
    ENGINE_ACCEPT,
    HttpError,
    Request,
    Response,
    rfc3339,
)
from phasegate.lab.forgejo.wire import now as _now  # run_cleanup_packages has a parameter `now`


class Packages:
    def __init__(self, store: Store, accounts: AccountBook, knobs: Knobs):
        self.store = store
        self.accounts = accounts
        self.knobs = knobs

    @property
    def root_url(self) -> str:
        return self.accounts.root_url

    # -- the REST API ----------------------------------------------------------------
    def _package_json(self, v: VersionRecord) -> dict:
        owner = self.accounts.users.get(v.owner) or User(v.owner, 0)
        creator = self.accounts.users.get(v.creator) or GHOST
        name_q = urllib.parse.quote(v.name, safe="")
        version_q = urllib.parse.quote(v.version, safe=":")
        return {
            "id": v.id, "owner": owner.api(self.root_url), "repository": None, "creator": creator.api(self.root_url),
            "type": "container", "name": v.name, "version": v.version,
            "html_url": f"{self.root_url}{v.owner}/-/packages/container/{name_q}/{version_q}",
            "created_at": rfc3339(v.created_at),
        }

    def _owner(self, req: Request) -> tuple[Principal, str]:
        p = self.accounts.api_principal(req, "package")
        owner = req.params["owner"].lower()
        if owner not in self.accounts.owners:
            raise HttpError(self.accounts.api_error(404, "user does not exist"))
        return p, owner

    def _permit(self, p: Principal, owner: str, mode: str) -> None:
        """routers/api/v1/api.go reqPackageAccess: 403 JSON below the access the route needs."""
        level = self.accounts.access(p, owner)
        if not (level == "write" or (mode == "read" and level == "read")):
            raise HttpError(self.accounts.api_error(403, PERMISSION_TEXT))

    def list(self, req: Request) -> Response:
        p, owner = self._owner(req)
        self._permit(p, owner, "read")
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

    def _target(self, req: Request, mode: str) -> VersionRecord:
        # PackageAssignmentAPI looks the version up (404) before reqPackageAccess judges the
        # caller (403): services/context/package.go packageAssignment, Forgejo v11
        # routers/api/v1/packages/package.go:71-90
        p, owner = self._owner(req)
        if req.params["type"] != "container":
            raise HttpError(self.accounts.api_error(404, "package does not exist"))
        v = self.store.find(f"{owner}/{req.params['name'].lower()}", req.params["version"])
        if v is None:
            raise HttpError(self.accounts.api_error(404, "package does not exist"))
        self._permit(p, owner, "read")
        if mode == "write":
            self._permit(p, owner, "write")
        return v

    def version(self, req: Request) -> Response:
        if req.method == "GET":
            return Response.json(self._package_json(self._target(req, "read")))
        v = self._target(req, "write")
        if self.knobs.delete_mode == "refuse":
            return self.accounts.api_error(500, "package version could not be deleted")
        if self.knobs.delete_mode == "ignore":
            self.knobs.ignored_deletes.append((v.repository, v.version))
        else:
            self.store.delete_version(v.repository, v.version)
        return Response(204, [], b"")

    def files(self, req: Request) -> Response:
        v = self._target(req, "read")
        files = [("manifest.json", v.digest)]
        m = self.store.manifest(v.digest) or {}
        for desc in [m.get("config")] + list(m.get("layers") or []):
            if isinstance(desc, dict) and DIGEST.match(desc.get("digest", "")):
                files.append((desc["digest"].replace(":", "_"), desc["digest"]))
        out = []
        for i, (name, digest) in enumerate(files, 1):
            try:
                data = (self.store.engine.blob_dir(digest) / "data").read_bytes()
            except OSError:
                data = b""
            out.append({"id": v.id * 100 + i, "Size": len(data), "name": name, "md5": hashlib.md5(data).hexdigest(),
                        "sha1": hashlib.sha1(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest(),
                        "sha512": hashlib.sha512(data).hexdigest()})
        return Response.json(out)

    # -- the package model (also for lab scenarios) -------------------------------
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
        r = self.store.http.get(f"/v2/{repository}/manifests/{ref}", headers={"Accept": ENGINE_ACCEPT})
        r.raise_for_status()
        return r.content, r.headers.get("Content-Type", "")

    def store_manifest(self, repository: str, tag: str, body: bytes, media_type: str, *, creator: str) -> str:
        """Store a manifest under a tag as a push would (its blobs must be in the image already)."""
        with self.store.lock:
            r = self.store.http.put(f"/v2/{repository}/manifests/{tag}", content=body,
                                    headers={"Content-Type": media_type})
            r.raise_for_status()
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            self.store.record_push(repository, tag.lower(), digest, creator)
        return digest

    def run_cleanup_packages(self, older_than: dt.timedelta = dt.timedelta(hours=24),
                             now: dt.datetime | None = None) -> list[VersionRecord]:
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
                    self.store.delete_version(v.repository, v.version)
                    gone.append(v)
        return gone

