"""/v2 manifests, tags and the catalog of the Forgejo stand-in.

Manifests are checked the way Forgejo v11 checks a push (size, schema version, media type, every
referenced blob or child manifest present in the image) before the engine stores them; a tag pushed
again or deleted drops the manifest it held unless some version still holds it. Tags and catalog
page as Forgejo does (`n`/`last`, a `Link` on every non-empty tags page, the catalog filtered by the
caller's access to each owner)."""

from __future__ import annotations

import hashlib
import json
import urllib.parse

from phasegate.lab.forgejo.auth import GHOST, AccountBook, Principal
from phasegate.lab.forgejo.store import Store
from phasegate.lab.forgejo.wire import (
    CATALOG_MAX,
    DIGEST,
    ENGINE_ACCEPT,
    IMAGE_MANIFESTS,
    INDEXES,
    MAX_MANIFEST,
    TAG,
    Request,
    Response,
    oci_error,
    registry_response,
)


class Manifests:
    def __init__(self, store: Store, accounts: AccountBook):
        self.store = store
        self.accounts = accounts

    # -- catalog and tags ---------------------------------------------------------
    def catalog(self, req: Request, principal: Principal) -> Response:
        try:
            n = int(req.arg("n", "0"))
        except ValueError:
            n = 0
        if n <= 0 or n > CATALOG_MAX:
            n = CATALOG_MAX
        last = req.arg("last").lower()
        repos = sorted({v.repository for v in self.store.versions()
                        if self.accounts.access(principal, v.owner) != "none"})
        page = [r for r in repos if r > last][:n]
        headers = [("Content-Type", "application/json")]
        if len(page) == n:
            q = urllib.parse.urlencode({"last": page[-1], "n": n})
            headers.append(("Link", f'</v2/_catalog?{q}>; rel="next"'))
        return registry_response(200, headers, json.dumps({"repositories": page}).encode())

    def tags(self, req: Request, principal: Principal, owner: str, repo: str, g: dict[str, str]) -> Response:
        if req.method != "GET":
            return Response(404, [], b"")
        self.accounts.require(principal, owner, "read")
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

    # -- manifests ------------------------------------------------------------------
    def manifest(self, req: Request, principal: Principal, owner: str, repo: str, g: dict[str, str]) -> Response:
        ref = g["ref"]
        if req.method in ("GET", "HEAD"):
            self.accounts.require(principal, owner, "read")
            return self._get(req.method, repo, ref)
        if req.method == "PUT":
            self.accounts.require(principal, owner, "write")
            return self._put(req, principal, repo, ref)
        if req.method == "DELETE":
            self.accounts.require(principal, owner, "write")
            return self._delete(repo, ref)
        return Response(404, [], b"")

    def _engine_ref(self, ref: str) -> str | None:
        if DIGEST.match(ref):
            return ref
        if TAG.match(ref):
            return ref.lower()
        return None

    def _get(self, method: str, repo: str, ref: str) -> Response:
        eref = self._engine_ref(ref)
        if eref is None:
            return oci_error(404, "MANIFEST_UNKNOWN")
        r = self.store.call(method, f"/v2/{repo}/manifests/{eref}", headers={"Accept": ENGINE_ACCEPT})
        if r.status_code == 404:
            return oci_error(404, "MANIFEST_UNKNOWN")
        if r.status_code != 200:
            return registry_response(500)
        digest = r.headers.get("Docker-Content-Digest", "")
        headers = [("Content-Type", r.headers.get("Content-Type", "")), ("Docker-Content-Digest", digest),
                   ("ETag", f'"{digest}"'), ("Content-Length", r.headers.get("Content-Length", str(len(r.content))))]
        return registry_response(200, headers, r.content if method == "GET" else b"")

    def _put(self, req: Request, principal: Principal, repo: str, ref: str) -> Response:
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
                r = self.store.call("HEAD", f"/v2/{repo}/blobs/{d}") if DIGEST.match(d) else None
                if r is None or r.status_code != 200:
                    return oci_error(404, "BLOB_UNKNOWN")
                if "size" in desc and int(r.headers.get("Content-Length", -1)) != desc["size"]:
                    return oci_error(400, "SIZE_INVALID")
        elif ctype in INDEXES:
            for child in doc.get("manifests") or []:
                if child.get("mediaType") not in IMAGE_MANIFESTS:
                    return oci_error(400, "MANIFEST_INVALID")
                d = child.get("digest", "")
                r = self.store.call("HEAD", f"/v2/{repo}/manifests/{d}", headers={"Accept": ENGINE_ACCEPT}) \
                    if DIGEST.match(d) else None
                if r is None or r.status_code != 200:
                    return oci_error(404, "MANIFEST_BLOB_UNKNOWN")
        else:
            return oci_error(400, "MANIFEST_INVALID")
        version = ref if is_digest else ref.lower()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        with self.store.lock:
            old = None if is_digest else self.store.tags(repo).get(version, (None,))[0]
            r = self.store.call("PUT", f"/v2/{repo}/manifests/{version}", content=body, headers={"Content-Type": ctype})
            if r.status_code == 400 and "DIGEST_INVALID" in r.text:
                return oci_error(400, "DIGEST_INVALID")
            if r.status_code != 201:
                return registry_response(500)
            self.store.record_push(repo, version, digest, principal.user.name if principal.user else GHOST.name)
            if old and old != digest:  # re-pushing a tag drops the old manifest unless something holds it
                self.store.drop_if_unreferenced(repo, old)
        return registry_response(201, [("Location", f"/v2/{repo}/manifests/{ref}"), ("Docker-Content-Digest", digest),
                                       ("ETag", f'"{digest}"')])

    def _delete(self, repo: str, ref: str) -> Response:
        with self.store.lock:
            if DIGEST.match(ref):
                if ref not in self.store.revisions(repo):
                    return oci_error(404, "MANIFEST_UNKNOWN")
                self.store.delete_manifest(repo, ref)
                return registry_response(202)
            tag = ref.lower()
            tags = self.store.tags(repo)
            if not TAG.match(ref) or tag not in tags:
                return oci_error(404, "MANIFEST_UNKNOWN")
            self.store.untag(repo, tag)
            self.store.drop_if_unreferenced(repo, tags[tag][0])
            return registry_response(202)
