"""Seed a distribution registry's filesystem directly (benchmarks only).

Pushing tens of thousands of objects through the API would make seeding the
slowest part of a benchmark that measures reads; distribution serves whatever
its storage layout holds, so the benchmark writes that layout itself before
the registry starts. The images are phasegate.images builds: real manifests,
configs and layers, multi-arch indexes with attestation children.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from phasegate import images


@dataclass(frozen=True)
class SeedSize:
    repos: int
    tags: int

    @property
    def label(self) -> str:
        return f"{self.repos}x{self.tags}"


def _write(path: Path, data: bytes) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _blob(v2: Path, digest: str, data: bytes) -> None:
    hexd = digest.split(":", 1)[1]
    _write(v2 / "blobs" / "sha256" / hexd[:2] / hexd / "data", data)


def _link(path: Path, digest: str) -> None:
    _write(path / "link", digest.encode())


def seed(root: Path, size: SeedSize) -> dict:
    """Write `size.repos` repositories with `size.tags` multi-arch tags each; returns counts."""
    v2 = root / "docker" / "registry" / "v2"
    refs = blobs = 0
    blob_paths: list[str] = []
    for r in range(size.repos):
        repo = f"bench/app-{r:04d}"
        rdir = v2 / "repositories" / repo
        for t in range(size.tags):
            item = images.build_multiarch(f"{repo}/{t}", media_type=images.OCI_INDEX, attestations=True)
            for m in item.walk():
                hexd = m.digest.split(":", 1)[1]
                _blob(v2, m.digest, m.manifest)
                _link(rdir / "_manifests" / "revisions" / "sha256" / hexd, m.digest)
                refs += 1
                for b in m.blobs():
                    _blob(v2, b.digest, b.data)
                    _link(rdir / "_layers" / "sha256" / b.digest.split(":", 1)[1], b.digest)
                    refs += 1
                    blobs += 1
                    blob_paths.append(f"/v2/{repo}/blobs/{b.digest}")
            tag = f"{t:08x}"
            tdir = rdir / "_manifests" / "tags" / tag
            _link(tdir / "current", item.digest)
            _link(tdir / "index" / "sha256" / item.digest.split(":", 1)[1], item.digest)
    return {"repositories": size.repos, "tags": size.repos * size.tags, "references": refs, "blobs": blobs,
            "blob_paths": blob_paths}
