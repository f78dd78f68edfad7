"""Lab seed data for a registry, and the on-disk faults that break it.

`plan(namespace)` says what a seeded registry holds (pure, deterministic: the
same digests every time); `seed(client, namespace)` pushes it through
phasegate.oci. `namespace` is the repository prefix: "" for registry-private,
"viktor/" for Forgejo.

What a seeded registry holds:
- the projects' images of the default inventory ([[projects]] image) with two 8-hex sha tags + `latest` (the
  older build single-arch, the newer one of the project's manifest kind)
  (`latest` and the newest sha tag share a digest: digests reached from
  several tags), in every manifest type: OCI index with attestation children,
  Docker manifest list, OCI manifest, Docker schema 2, and a nested index;
- `infra-ci` with more tags than one page (n=100), all sharing one manifest;
- the tags the lab checkout's stacks pin (`PINNED`: claude-agent-service:2fd7670d, chrome-service-novnc:v4,
  beadboard:17a38e43, the real stacks' values), each another tag of the project's newest build, in both
  registries (so the cutover pre-flight is green; faults take them off Forgejo or repoint them);
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


def _project_images() -> list[str]:
    """The image names of the default inventory's [[projects]] (the lab inventory keeps them)."""
    import tomllib

    from phasegate.config import DEFAULT_INVENTORY

    names = [p["image"] for p in tomllib.loads(DEFAULT_INVENTORY.read_text()).get("projects", [])]
    return list(dict.fromkeys(names)) or ["payslip-ingest", "job-hunter", "infra-ci"]


PROJECTS = _project_images()
PAGINATED = "infra-ci" if "infra-ci" in PROJECTS else PROJECTS[-1]
PAGINATED_TAGS = 101  # latest included: more than one page of 100
KINDS = ["oci-index", "docker-manifest", "oci-manifest", "docker-list", "nested-index"]

# Tags the stacks pin rather than `latest`, as the lab checkout's stacks pin them (phasegate.lab.infra_checkout
# _claude_agent, _chrome, _beads), with the real values: claude-agent-service `local.image_tag = "2fd7670d"`
# (stacks/claude-agent-service/main.tf:14 @5d22b449, :15 @3148d15d; stacks/beads-server/main.tf:15-17),
# chrome-service-novnc `:v4` (stacks/chrome-service/main.tf:273 @5d22b449), beadboard `17a38e43`
# (stacks/beads-server/main.tf:6-8). The real payslip-ingest and job-hunter stacks pin 4f70681d / 92afc38d
# through terragrunt inputs (terragrunt.hcl:23 / :25 @3148d15d), which the lab checkout does not carry yet.
# Each is another tag of the project's newest build: the build its pods run.
PINNED = {"claude-agent-service": ["2fd7670d"], "chrome-service-novnc": ["v4"], "beadboard": ["17a38e43"]}
# What scripts/forgejo-migrate-orphan-images.sh:39-48 @c2f8a300 copied to Forgejo besides `:latest`: only novnc's
# `:v4` (its fault `forgejo-only-latest-copied` takes every other pinned tag off Forgejo).
PINNED_COPIED_BY_SCRIPT = {("chrome-service-novnc", "v4")}

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
        # the older build is single-arch (the project moved to buildx later): fewer blobs, faster seed
        old_kind = "docker-manifest" if kind.startswith("docker") else "oci-manifest"
        repo.tags[sha_tag(project, 1)] = build(old_kind, f"{project}/1")
        repo.tags[sha_tag(project, 2)] = build(kind, f"{project}/2")
        repo.tags["latest"] = repo.tags[sha_tag(project, 2)]
        for tag in PINNED.get(project, []):
            repo.tags[tag] = repo.tags[sha_tag(project, 2)]
        if project == PAGINATED:
            shared = repo.tags["latest"]
            for n in range(PAGINATED_TAGS - len(repo.tags)):
                repo.tags[sha_tag(project, "old", n)] = shared
        repos.append(repo)
    for _name, (repo_name, item) in _fault_items(namespace).items():
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


def seed(client, namespace: str = "", concurrency: int = 8, retag=None, repos: list[Repo] | None = None) -> list[Repo]:
    """Push the plan through `client` (a phasegate.oci.RegistryClient allowed to write).

    Every manifest and blob goes through the client. Extra tags of an already
    pushed manifest go through it too, unless `retag(repository, tag, digest)`
    is given (a lab's fast path, e.g. `distribution_retag(registry)`).
    `repos` pushes part of the plan instead of all of it.
    """
    repos = plan(namespace) if repos is None else repos

    def push_repo(repo: Repo) -> list[tuple[str, str, Image | Index]]:
        pushed, extra = {}, []
        for tag, item in repo.tags.items():
            if item.digest in pushed:
                extra.append((repo.name, tag, item))  # same manifest, another tag: one PUT later
                continue
            client.push(repo.name, item, tag=tag, skip_existing=False)
            pushed[item.digest] = tag
        return extra

    with ThreadPoolExecutor(concurrency) as pool:
        retags = [t for extra in pool.map(push_repo, repos) for t in extra]
        if retag is None:
            list(pool.map(lambda t: client.tag(t[0], t[2], t[1]), retags))
        else:
            for repo_name, tag, item in retags:
                retag(repo_name, tag, item.digest)
    return repos


def distribution_retag(registry):
    """Tag an already pushed manifest by writing the two links distribution itself writes.

    Only for the lab's seed: the pagination repository needs 100+ tags and a
    manifest PUT per tag costs more than the rest of the seed together.
    """

    def retag(repository: str, tag: str, digest: str) -> None:
        tag_dir = registry.tag_dir(repository, tag)
        for link in (tag_dir / "current" / "link", tag_dir / "index" / "sha256" / digest.split(":", 1)[1] / "link"):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.write_text(digest)

    return retag


# Seeded storage is kept between lab starts: the plan is deterministic, so the
# files one seed through the client wrote are what every later seed would write.
CACHE_ENV = "PHASEGATE_SEED_CACHE"  # a directory, or "off"
LAYOUT = "distribution-v2-1"  # bump when the storage layout or the seeding changes


def _cache_dir() -> Path | None:
    import os

    value = os.environ.get(CACHE_ENV, "")
    if value == "off":
        return None
    return Path(value) if value else Path.home() / ".cache" / "phasegate" / "seed"


def _cache_key(repos: list[Repo]) -> str:
    listing = [LAYOUT] + [f"{r.name}:{t}@{i.digest}" for r in repos for t, i in sorted(r.tags.items())]
    return images.sha256("\n".join(listing).encode())[7:23]


def seed_distribution(registry, client, namespace: str = "") -> list[Repo]:
    """Seed a lab DistributionRegistry: through `client` the first time, then from the stored result.

    The first seed of a plan on a machine goes through phasegate.oci (and the
    retag fast path); its storage tree is kept under ~/.cache/phasegate/seed
    (or $PHASEGATE_SEED_CACHE; "off" disables) and later labs copy it in, which
    takes milliseconds instead of seconds of uploads. Copied, never linked:
    faults edit a lab's files, never the stored ones.
    """
    import os

    repos = plan(namespace)
    cache = _cache_dir()
    entry = cache / _cache_key(repos) if cache else None
    if entry is not None and (entry / "complete").is_file():
        import subprocess

        registry.v2.mkdir(parents=True, exist_ok=True)
        # cp is twice as fast as shutil.copytree for these ~2000 small files
        subprocess.run(["cp", "-r", f"{entry / 'v2'}/.", str(registry.v2)], check=True, timeout=60,
                       capture_output=True)
        return repos
    seed(client, namespace, retag=distribution_retag(registry))
    if entry is not None:
        tmp = entry.parent / f".{entry.name}.{os.getpid()}"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(registry.v2, tmp / "v2", ignore=shutil.ignore_patterns("_uploads"))
            (tmp / "complete").write_text("")
            os.rename(tmp, entry)  # atomic; another process may have stored it first
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
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


# --------------------------------------------------------------------------
# Tag faults (generic over a DistributionRegistry): a tag gone, a tag naming another build
# --------------------------------------------------------------------------


@contextlib.contextmanager
def tags_removed(registry, refs: list[tuple[str, str]]):
    """The tags' directories set aside (the manifests stay, reachable by digest): `repo:tag` answers 404."""
    moved: list[tuple[Path, Path]] = []
    try:
        for repository, tag in refs:
            d = registry.tag_dir(repository, tag)
            aside = registry.dir / "fault-aside" / "tags" / repository / tag
            aside.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(aside, ignore_errors=True)
            shutil.move(str(d), str(aside))
            moved.append((d, aside))
        yield refs
    finally:
        for d, aside in reversed(moved):
            shutil.rmtree(d, ignore_errors=True)
            shutil.move(str(aside), str(d))


@contextlib.contextmanager
def tag_repointed(registry, repository: str, tag: str, digest: str):
    """The tag names another manifest of its repository (the links distribution writes on a PUT by tag)."""
    d = registry.tag_dir(repository, tag)
    aside = registry.dir / "fault-aside" / "retag" / repository / tag
    shutil.rmtree(aside, ignore_errors=True)
    shutil.copytree(d, aside)
    try:
        distribution_retag(registry)(repository, tag, digest)
        yield digest
    finally:
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(aside, d)
        shutil.rmtree(aside, ignore_errors=True)
