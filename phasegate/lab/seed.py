"""Lab seed data for a registry, and the on-disk faults that break it.

`plan(namespace)` says what a seeded registry holds (pure, deterministic: the
same digests every time); `seed(client, namespace)` pushes it through
phasegate.oci. `namespace` is the repository prefix: "" for registry-private,
"viktor/" for Forgejo.

What a seeded registry holds:
- the real projects (infra-facts.md) with two 8-hex sha tags + `latest`
  (`latest` and the newest sha tag share a digest: digests reached from
  several tags), in every manifest type: OCI index with attestation children,
  Docker manifest list, OCI manifest, Docker schema 2, and a nested index;
- `infra-ci` with more tags than one page (n=100), all sharing one manifest;
- three dedicated fault targets (`integrity-orphaned-child:1`,
  `integrity-missing-layer:1`, `integrity-bitrot:1`) whose blobs belong to
  them alone, so a fault breaks exactly one thing.

The fault helpers take any `DistributionRegistry` (registry-private, or the
engine behind the Forgejo stand-in) and break the seeded target on disk the
way the real incidents did; each restores what it changed on exit.
"""

from __future__ import annotations

import contextlib
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from phasegate import images
from phasegate.images import Image, Index

PROJECTS = [
    "payslip-ingest", "job-hunter", "claude-agent-service", "fire-planner", "wealthfolio-sync", "freedify",
    "chrome-service", "beads-server", "beadboard", "infra-ci", "claude-memory-mcp", "hmrc-sync",
]
PAGINATED = "infra-ci"
PAGINATED_TAGS = 104  # + latest: 105 tags, more than one page of 100
KINDS = ["oci-index", "docker-manifest", "oci-manifest", "docker-list", "nested-index"]

ORPHANED_CHILD = "orphaned-index-child"
MISSING_LAYER = "missing-layer"
BITROT_LAYER = "bitrot-layer"


def sha_tag(*parts) -> str:
    return images.sha256("/".join(map(str, parts)).encode())[7:15]


def build(kind: str, seed: str) -> Image | Index:
    if kind == "oci-index":
        return images.build_multiarch(seed, media_type=images.OCI_INDEX, attestations=True)
    if kind == "docker-list":
        return images.build_multiarch(seed, media_type=images.DOCKER_LIST, attestations=False)
    if kind == "nested-index":
        return images.build_nested(seed)
    if kind == "docker-manifest":
        return images.build_image(seed, media_type=images.DOCKER_MANIFEST)
    return images.build_image(seed, media_type=images.OCI_MANIFEST)


@dataclass
class Repo:
    name: str
    tags: dict[str, Image | Index] = field(default_factory=dict)


@dataclass(frozen=True)
class SeededFault:
    """A seeded target and the one broken reference its fault produces."""

    name: str
    repository: str
    tag: str
    digest: str  # what breaks
    kind: str  # index-child | layer
    head_status: int | None  # what `integrity --mode head` reports (None: HEAD cannot see it)
    verify_status: int | str  # what `--mode verify` reports


def _fault_items(namespace: str) -> dict[str, tuple[str, Image | Index]]:
    return {
        ORPHANED_CHILD: (f"{namespace}integrity-orphaned-child", build("oci-index", "fault/orphaned-child")),
        MISSING_LAYER: (f"{namespace}integrity-missing-layer", build("oci-manifest", "fault/missing-layer")),
        BITROT_LAYER: (f"{namespace}integrity-bitrot", build("docker-manifest", "fault/bitrot")),
    }


def faults(namespace: str = "") -> dict[str, SeededFault]:
    items = _fault_items(namespace)
    (repo_o, idx), (repo_m, img_m), (repo_b, img_b) = items[ORPHANED_CHILD], items[MISSING_LAYER], items[BITROT_LAYER]
    return {
        ORPHANED_CHILD: SeededFault(ORPHANED_CHILD, repo_o, "1", idx.children[1].digest, "index-child", 404, 404),
        MISSING_LAYER: SeededFault(MISSING_LAYER, repo_m, "1", img_m.layers[0].digest, "layer", 404, 404),
        BITROT_LAYER: SeededFault(BITROT_LAYER, repo_b, "1", img_b.layers[0].digest, "layer", None, "digest-mismatch"),
    }


def plan(namespace: str = "") -> list[Repo]:
    repos = []
    for i, project in enumerate(PROJECTS):
        repo = Repo(f"{namespace}{project}")
        kind = KINDS[i % len(KINDS)]
        for build_no in (1, 2):
            repo.tags[sha_tag(project, build_no)] = build(kind, f"{project}/{build_no}")
        repo.tags["latest"] = repo.tags[sha_tag(project, 2)]
        if project == PAGINATED:
            shared = repo.tags["latest"]
            for n in range(PAGINATED_TAGS - 2):
                repo.tags[sha_tag(project, "old", n)] = shared
        repos.append(repo)
    for name, (repo_name, item) in _fault_items(namespace).items():
        repos.append(Repo(repo_name, {"1": item}))
    return repos


@dataclass(frozen=True)
class Expected:
    """What an integrity walk of a healthy seeded registry counts."""

    repositories: int
    tags: int
    manifests: int
    indexes: int
    blobs: int


def expected(repos: list[Repo]) -> Expected:
    manifests, indexes, blobs = set(), set(), set()
    for repo in repos:
        for item in repo.tags.values():
            for m in item.walk():
                manifests.add((repo.name, m.digest))
                if isinstance(m, Index):
                    indexes.add((repo.name, m.digest))
                blobs.update((repo.name, b.digest) for b in m.blobs())
    return Expected(len(repos), sum(len(r.tags) for r in repos), len(manifests), len(indexes), len(blobs))


def seed(client, namespace: str = "", concurrency: int = 8) -> list[Repo]:
    """Push the plan through `client` (a phasegate.oci.RegistryClient allowed to write)."""
    repos = plan(namespace)

    def push_repo(repo: Repo) -> list[tuple[str, str, Image | Index]]:
        pushed, extra = {}, []
        for tag, item in repo.tags.items():
            if item.digest in pushed:
                extra.append((repo.name, tag, item))  # same manifest, another tag: one PUT later
                continue
            client.push(repo.name, item, tag=tag)
            pushed[item.digest] = tag
        return extra

    with ThreadPoolExecutor(concurrency) as pool:
        retags = [t for extra in pool.map(push_repo, repos) for t in extra]
        list(pool.map(lambda t: client.tag(t[0], t[2], t[1]), retags))
    return repos


# --------------------------------------------------------------------------
# Faults on disk (generic over a DistributionRegistry)
# --------------------------------------------------------------------------


def _set_aside(path: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    target = where / f"{path.parent.name}-{path.name}"
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    shutil.move(str(path), str(target))
    return target


@contextlib.contextmanager
def orphaned_index_child(registry, namespace: str = ""):
    """distribution#3324: the child's revision link is gone; the index still answers 200, the child 404."""
    f = faults(namespace)[ORPHANED_CHILD]
    link = registry.revision_link(f.repository, f.digest)
    aside = _set_aside(link, registry.dir / "fault-aside")
    try:
        yield f
    finally:
        link.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(aside), str(link))


@contextlib.contextmanager
def missing_layer(registry, namespace: str = ""):
    """The layer's blob directory is gone (data lost); the manifest still lists it."""
    f = faults(namespace)[MISSING_LAYER]
    blob = registry.blob_dir(f.digest)
    aside = _set_aside(blob, registry.dir / "fault-aside")
    try:
        yield f
    finally:
        shutil.move(str(aside), str(blob))


@contextlib.contextmanager
def bitrot_layer(registry, namespace: str = ""):
    """One flipped byte in the layer's data file: HEAD still 200 (same size), GET serves wrong bytes."""
    f = faults(namespace)[BITROT_LAYER]
    data = registry.blob_dir(f.digest) / "data"
    original = data.read_bytes()
    mid = len(original) // 2
    data.write_bytes(original[:mid] + bytes([original[mid] ^ 0xFF]) + original[mid + 1:])
    try:
        yield f
    finally:
        data.write_bytes(original)


FAULT_HELPERS = {ORPHANED_CHILD: orphaned_index_child, MISSING_LAYER: missing_layer, BITROT_LAYER: bitrot_layer}
