"""The integrity walk: catalog -> every tag -> manifest -> index children -> blobs.

Every referenced object is checked once per (repository, digest), with a
bounded thread pool over one shared `RegistryClient` (one httpx client,
connection reuse, HTTP/2 when offered):

- manifests and index children are always fetched (their bodies name what
  comes next) and their raw bytes hashed against the digest they were asked
  by, in both modes;
- blobs (config and layers): mode `head` HEADs them and compares
  Content-Length with the descriptor's size (a lost blob can answer 200 with
  0 bytes); mode `verify` GETs and sha256-hashes every byte while streaming.
  A flipped byte keeps the size, so only `verify` sees bit rot.

A 5xx for one object (after phasegate.http's retries) is a broken reference
with that status; a 5xx for the catalog or a tag list, 401/403 and
connection errors stop the walk (it cannot judge: AuthError, ServerError,
Unreachable).

A tag whose manifest was already walked from another tag costs one request.
A broken object is reported once, with the path from the first tag that
reached it, e.g. ["app:v1", "sha256:<index>", "sha256:<child>"].

Counts: `manifests` is every unique (repository, digest) manifest checked,
indexes included; `indexes` is how many of those were indexes; `blobs` every
unique (repository, digest) config or layer.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from phasegate.oci import Descriptor, DigestMismatch, InvalidManifest, Manifest, NotFound, RegistryClient, ServerAnswer

MODES = ("head", "verify")
DEFAULT_CONCURRENCY = 8
KINDS = ("manifest", "index-child", "config", "layer")


@dataclass(frozen=True)
class BrokenReference:
    repository: str
    tag: str
    digest: str
    kind: str  # manifest | index-child | config | layer
    status: int | str  # HTTP status, or "digest-mismatch"
    path: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.repository}:{self.tag}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"

    def line(self) -> str:
        return f"{self.where} {self.kind} {self.status} via {' -> '.join(self.path)}"

    def to_json(self) -> dict:
        d = asdict(self)
        d["path"] = list(self.path)
        return d


@dataclass
class IntegrityResult:
    repositories: int = 0
    tags: int = 0
    manifests: int = 0
    indexes: int = 0
    blobs: int = 0
    broken: list[BrokenReference] = field(default_factory=list)
    mode: str = "head"

    @property
    def ok(self) -> bool:
        return not self.broken

    def to_json(self) -> dict:
        return {
            "repositories": self.repositories,
            "tags": self.tags,
            "manifests": self.manifests,
            "indexes": self.indexes,
            "blobs": self.blobs,
            "broken": [b.to_json() for b in self.broken],
        }

    def require_intact(self, what: str) -> IntegrityResult:
        """Raise phasegate.verdict.GateFailed naming every broken reference; returns self when intact."""
        if self.broken:
            from phasegate.verdict import GateFailed

            lines = [b.line() for b in self.broken]
            raise GateFailed(
                expected=f"every manifest, index child and blob of {what} present"
                + (" with matching bytes" if self.mode == "verify" else ""),
                seen=f"{len(self.broken)} broken reference(s): " + "; ".join(lines[:5])
                + (f"; ... {len(lines) - 5} more" if len(lines) > 5 else ""),
                where=self.broken[0].where,
                evidence="\n".join(lines),
            )
        return self

    def summary(self) -> str:
        return (f"{self.repositories} repositories, {self.tags} tags, {self.manifests} manifests "
                f"({self.indexes} indexes), {self.blobs} blobs checked ({self.mode}): {len(self.broken)} broken")


class _Walk:
    """A work queue on a thread pool where tasks add tasks; the first fatal error stops it."""

    def __init__(self, client: RegistryClient, mode: str, concurrency: int):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.client, self.mode = client, mode
        self.pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="integrity")
        self.cv = threading.Condition()
        self.pending = 0
        self.fatal: BaseException | None = None
        self.claimed: set[tuple[str, str]] = set()
        self.result = IntegrityResult(mode=mode)
        self._broken: dict[tuple[str, str], BrokenReference] = {}

    # -- queue -------------------------------------------------------------
    def submit(self, fn, *args) -> None:
        with self.cv:
            if self.fatal is not None:
                return
            self.pending += 1
        self.pool.submit(self._run, fn, args)

    def _run(self, fn, args) -> None:
        try:
            if self.fatal is None:
                fn(*args)
        except BaseException as e:  # auth, unreachable, 5xx: the walk cannot judge, stop it
            with self.cv:
                self.fatal = self.fatal or e
        finally:
            with self.cv:
                self.pending -= 1
                if self.pending == 0:
                    self.cv.notify_all()

    def wait(self) -> IntegrityResult:
        with self.cv:
            while self.pending:
                self.cv.wait()
        self.pool.shutdown()
        if self.fatal is not None:
            raise self.fatal
        self.result.broken = sorted(self._broken.values(), key=lambda b: (b.repository, b.tag, b.kind, b.digest))
        return self.result

    # -- bookkeeping -------------------------------------------------------
    def claim(self, repository: str, digest: str) -> bool:
        with self.cv:
            key = (repository, digest)
            if key in self.claimed:
                return False
            self.claimed.add(key)
            return True

    def count(self, **kw) -> None:
        with self.cv:
            for k, v in kw.items():
                setattr(self.result, k, getattr(self.result, k) + v)

    def broken(self, repository, tag, digest, kind, status, path) -> None:
        with self.cv:
            self._broken.setdefault((repository, digest or f"tag:{tag}"),
                                    BrokenReference(repository, tag, digest, kind, status, tuple(path)))

    # -- tasks ---------------------------------------------------------------
    def repository(self, repository: str, tags_per_repo: int | None) -> None:
        try:
            tags = self.client.tags(repository)
        except NotFound:
            tags = []  # listed in the catalog but gone: nothing to walk
        if tags_per_repo is not None:
            tags = tags[:tags_per_repo]
        self.count(repositories=1, tags=len(tags))
        for tag in tags:
            self.submit(self.tag, repository, tag)

    def tag(self, repository: str, tag: str, reference: str | None = None) -> None:
        reference = reference or tag
        path = [f"{repository}@{reference}" if ":" in reference else f"{repository}:{reference}"]
        try:
            m = self.client.get_manifest(repository, reference)
        except NotFound:
            self.broken(repository, tag, reference if ":" in reference else "", "manifest", 404, path)
            return
        except DigestMismatch as e:
            self.broken(repository, tag, e.digest, "manifest", "digest-mismatch", path)
            return
        except ServerAnswer as e:  # one object the registry cannot serve (distribution: 500 for rotten manifest bytes)
            self.broken(repository, tag, reference if ":" in reference else "", "manifest", e.status, path)
            return
        if self.claim(repository, m.digest):
            self.manifest(m, tag, path + [m.digest])

    def manifest(self, m: Manifest, tag: str, path: list[str], kind: str = "manifest") -> None:
        # bytes no client can walk (not JSON, or a media type outside the four) cannot be pulled either
        try:
            _ = m.json  # parsing is the check
        except InvalidManifest:
            self.count(manifests=1)
            self.broken(m.repository, tag, m.digest, kind, "invalid-manifest", path)
            return
        if not m.known_type and not m.is_index and "config" not in m.json:
            self.count(manifests=1)
            self.broken(m.repository, tag, m.digest, kind, f"unknown-media-type {m.media_type or '(none)'}", path)
            return
        self.count(manifests=1, indexes=int(m.is_index))
        if m.is_index:
            for child in m.children():
                if self.claim(m.repository, child.digest):
                    self.submit(self.child, m.repository, tag, child, path + [child.digest])
            return
        blobs = [(d, "config") for d in ([m.config] if m.config else [])] + [(d, "layer") for d in m.layers]
        for desc, kind in blobs:
            if self.claim(m.repository, desc.digest):
                self.submit(self.blob, m.repository, tag, desc, kind, path + [desc.digest])

    def child(self, repository: str, tag: str, desc: Descriptor, path: list[str]) -> None:
        try:
            m = self.client.get_manifest(repository, desc.digest)
        except NotFound:
            self.broken(repository, tag, desc.digest, "index-child", 404, path)
            return
        except DigestMismatch:
            self.broken(repository, tag, desc.digest, "index-child", "digest-mismatch", path)
            return
        except ServerAnswer as e:
            self.broken(repository, tag, desc.digest, "index-child", e.status, path)
            return
        self.manifest(m, tag, path, "index-child")

    def blob(self, repository: str, tag: str, desc: Descriptor, kind: str, path: list[str]) -> None:
        self.count(blobs=1)
        size = desc.size if desc.size >= 0 else None
        try:
            if self.mode == "verify":
                h = self.client.verify_blob(repository, desc.digest, size)
            else:
                h = self.client.head_blob(repository, desc.digest, size)
        except ServerAnswer as e:
            self.broken(repository, tag, desc.digest, kind, e.status, path)
            return
        if h.ok:
            return
        # 200 with the wrong size: the bytes cannot hash to the digest
        status = h.status if h.status != 200 else "digest-mismatch"
        self.broken(repository, tag, desc.digest, kind, status, path)


def check_registry(
    client: RegistryClient,
    *,
    mode: str = "head",
    tags_per_repo: int | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    repositories: list[str] | None = None,
) -> IntegrityResult:
    """Walk every repository of the catalog (or the given ones) and every tag.

    Raises phasegate.verdict.AuthError / Unreachable / ServerError when the
    registry cannot be judged (the walk stops at the first such error).
    """
    walk = _Walk(client, mode, concurrency)
    repos = repositories if repositories is not None else client.catalog()
    for repo in repos:
        walk.submit(walk.repository, repo, tags_per_repo)
    return walk.wait()


def check_image(client: RegistryClient, repository: str, reference: str, *, mode: str = "head",
                concurrency: int = DEFAULT_CONCURRENCY) -> IntegrityResult:
    """Check one image (`repository` + tag or digest): every manifest and blob it references."""
    walk = _Walk(client, mode, concurrency)
    walk.count(repositories=1, tags=1)
    walk.submit(walk.tag, repository, reference, reference)
    return walk.wait()


def check_reference(client: RegistryClient, reference: str, *, mode: str = "head",
                    concurrency: int = DEFAULT_CONCURRENCY) -> IntegrityResult:
    """`repo:tag` or `repo@sha256:...` (no registry host): check_image on it."""
    from phasegate.oci import split_reference

    repository, ref = split_reference(reference)
    return check_image(client, repository, ref, mode=mode, concurrency=concurrency)
