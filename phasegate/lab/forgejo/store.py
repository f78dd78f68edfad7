"""The Forgejo stand-in's storage: the engine's files read the way Forgejo's database would answer.

Bytes live in a real distribution engine (plain HTTP, loopback, no auth) that only the stand-in
talks to. The package model is derived from the engine's storage on every request, so a corruption
made on disk (a fault) shows up exactly as it would in Forgejo:
- a *tag version* per tag (`_manifests/tags/<tag>`),
- an *untagged version* `sha256:<hex>` per stored manifest no tag points at
  (index children and attestation manifests pushed by digest),
- metadata Forgejo keeps in its database (version id, created_at, creator)
  in an overlay that lab scenarios may edit (`set_created_at`, to age versions).
What Forgejo does to its database and files when a version goes (`delete_version`: a manifest kept
only while some version holds it, its blobs with it) lives here too, shared by /v2 and the package API.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx

from phasegate.lab.distribution import DistributionRegistry
from phasegate.lab.forgejo.wire import DIGEST, HttpError, now, registry_response


@dataclass(frozen=True)
class VersionRecord:
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


_DROPPED = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)  # a connection that failed


class Store:
    """Tags, manifests and version metadata, derived from the engine's files; the engine's HTTP API."""

    def __init__(self, engine: DistributionRegistry, default_creator: str):
        self.engine = engine
        self.http = httpx.Client(base_url=engine.url, timeout=30, trust_env=False)
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
                created = now()
            m = self._meta[(repo, version)] = _Meta(digest, self._next_id, created, self.default_creator)
            self._next_id += 1
        return m

    def versions(self, owner: str | None = None) -> list[VersionRecord]:
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
                    out.append(VersionRecord(m.id, o, name, tag, digest, m.created_at, m.creator))
                for digest, link in sorted(self.revisions(repo).items()):
                    if digest not in tagged:
                        m = self._meta_for(repo, digest, digest, link)
                        out.append(VersionRecord(m.id, o, name, digest, digest, m.created_at, m.creator))
            return out

    def record_push(self, repo: str, version: str, digest: str, creator: str) -> None:
        with self.lock:
            self._meta[(repo, version)] = _Meta(digest, self._next_id, now(), creator)
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

    # -- the engine's HTTP API (only the stand-in talks to it) -------------------------
    def call(self, method: str, url: str, **kw) -> httpx.Response:
        """A request to the engine; a transport failure answers the client 500. A read (GET, HEAD) whose
        connection failed is sent once more first: the hop to the engine is the lab's own (Forgejo reads its
        files), and a pooled keep-alive connection the engine dropped is not the registry failing."""
        try:
            return self.http.request(method, url, **kw)
        except _DROPPED as e:  # not a timeout: a wait is not sent twice
            if method not in ("GET", "HEAD"):
                raise HttpError(registry_response(500)) from e
        except httpx.HTTPError as e:
            raise HttpError(registry_response(500)) from e
        try:
            return self.http.request(method, url, **kw)
        except httpx.HTTPError as e:
            raise HttpError(registry_response(500)) from e

    def close(self) -> None:
        self.http.close()

    # -- what deleting a version does ------------------------------------------------
    def find(self, repository: str, version: str) -> VersionRecord | None:
        owner = repository.split("/", 1)[0]
        for v in self.versions(owner):
            if v.repository == repository and v.version == version.lower():
                return v
        return None

    def delete_version(self, repository: str, version: str) -> bool:
        """What DELETE /api/v1/packages/{owner}/container/{name}/{version} does. False if unknown."""
        with self.lock:
            v = self.find(repository, version)
            if v is None:
                return False
            if v.untagged:
                self.delete_manifest(repository, v.digest)
            else:
                self.untag(repository, v.version)
                self.drop_if_unreferenced(repository, v.digest)
            return True

    def drop_if_unreferenced(self, repo: str, digest: str) -> None:
        # Forgejo keeps a manifest reachable by digest only while some version holds it
        if any(d == digest for d, _ in self.tags(repo).values()):
            return
        if digest in self.children(repo):
            return
        self.delete_manifest(repo, digest)

    def delete_manifest(self, repo: str, digest: str) -> None:
        gone = self.blobs_of(digest)
        self.http.delete(f"/v2/{repo}/manifests/{digest}")
        # a version's blobs are its package files: removing the version removes them, so a layer
        # no other version of the image uses answers 404 at once (Forgejo serves a blob only from
        # some version's files of that image: models/packages/container/search.go, v11 sheet §5)
        still = set()
        for d in list(self.revisions(repo)):
            still |= self.blobs_of(d)
        for blob in gone - still:
            self.http.delete(f"/v2/{repo}/blobs/{blob}")

    def blobs_of(self, digest: str) -> set[str]:
        m = self.manifest(digest) or {}
        descs = [m.get("config")] + list(m.get("layers") or [])
        return {d["digest"] for d in descs if isinstance(d, dict) and DIGEST.match(str(d.get("digest", "")))}
