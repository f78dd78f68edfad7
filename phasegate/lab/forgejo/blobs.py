"""/v2 blobs of the Forgejo stand-in: GET/HEAD/DELETE of a blob and uploads (monolithic POST with
`digest`, cross-repository mount, chunked PATCH with Content-Range, the final PUT, cancel), proxied
to the engine with Forgejo v11's answers (its `Range: 0-<size>` off-by-one on GET of an upload, no
Content-Length on HEAD of an empty blob, streamed PATCHes only as the first write)."""

from __future__ import annotations

import re
import threading
import urllib.parse

from phasegate.lab.forgejo.auth import AccountBook, Principal
from phasegate.lab.forgejo.knobs import Knobs
from phasegate.lab.forgejo.store import Store
from phasegate.lab.forgejo.wire import (
    API_VERSION_HEADER,
    DIGEST,
    UPLOAD_ID,
    HttpError,
    Request,
    Response,
    oci_error,
    registry_response,
)


class Blobs:
    def __init__(self, store: Store, accounts: AccountBook, knobs: Knobs):
        self.store = store
        self.accounts = accounts
        self.knobs = knobs
        self._uploads: dict[str, tuple[str, str]] = {}  # uuid -> (repo, engine location with _state)
        self._uploaded: dict[str, int] = {}
        self._lock = threading.Lock()

    def blob(self, req: Request, principal: Principal, owner: str, repo: str, g: dict[str, str]) -> Response:
        digest = g["digest"]
        if req.method in ("GET", "HEAD"):
            self.accounts.require(principal, owner, "read")
            if not DIGEST.match(digest) or self.knobs.blobs_unreadable:
                return oci_error(404, "BLOB_UNKNOWN")
            r = self.store.call(req.method, f"/v2/{repo}/blobs/{digest}")
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
            self.accounts.require(principal, owner, "write")
            if not DIGEST.match(digest):
                return oci_error(404, "BLOB_UNKNOWN")
            self.store.call("DELETE", f"/v2/{repo}/blobs/{digest}")
            return registry_response(202)
        return Response(404, [], b"")

    def _created(self, repo: str, digest: str) -> Response:
        return registry_response(201, [("Location", f"/v2/{repo}/blobs/{digest}"), ("Docker-Content-Digest", digest)])

    def _engine_upload(self, repo: str) -> str:
        r = self.store.call("POST", f"/v2/{repo}/blobs/uploads/")
        if r.status_code != 202:
            raise HttpError(registry_response(500))
        return r.headers["Location"]

    def _engine_finish(self, repo: str, location: str, digest: str, body: bytes) -> Response:
        sep = "&" if "?" in location else "?"
        r = self.store.call("PUT", f"{location}{sep}digest={urllib.parse.quote(digest)}", content=body,
                            headers={"Content-Type": "application/octet-stream"})
        if r.status_code == 201:
            return self._created(repo, digest)
        if r.status_code == 400:
            return oci_error(400, "DIGEST_INVALID")
        return registry_response(500)

    def uploads(self, req: Request, principal: Principal, owner: str, repo: str, g: dict[str, str]) -> Response:
        self.accounts.require(principal, owner, "write")
        uuid = g.get("uuid")
        if req.method == "POST" and uuid is None:
            mount, source, digest = req.arg("mount"), req.arg("from"), req.arg("digest")
            if mount and DIGEST.match(mount):
                src = self._mount_source(principal, mount, source)
                if src:
                    r = self.store.call("POST", f"/v2/{repo}/blobs/uploads/",
                                        params={"mount": mount, "from": src})
                    if r.status_code == 201:
                        return self._created(repo, mount)
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
            r = self.store.call("PATCH", location, content=req.body, headers={"Content-Type": "application/octet-stream"})
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
            self.store.call("DELETE", location)
            with self._lock:
                self._uploads.pop(uuid, None)
                self._uploaded.pop(uuid, None)
            return registry_response(204)
        return Response(404, [], b"")

    def _mount_source(self, principal: Principal, digest: str, source: str) -> str | None:
        candidates = [source.lower()] if source else self.store.repositories()
        for repo in candidates:
            if self.accounts.access(principal, repo.split("/", 1)[0]) == "none":
                continue
            link = self.store.engine.v2 / "repositories" / repo / "_layers" / "sha256" / digest.split(":", 1)[1] / "link"
            if link.is_file():
                return repo
        return None
