"""Tiny, valid container images built in code, deterministic from a seed string.

An `Image` is a config blob + one gzip tar layer (a single small file) + a
manifest in either image manifest type (OCI or Docker schema 2). An `Index`
lists images or other indexes (OCI index or Docker manifest list), optionally
with buildx-style attestation children (platform unknown/unknown, annotation
`vnd.docker.reference.type: attestation-manifest`). Same seed, same bytes,
same digests: the lab and its faults find their targets by rebuilding them.

The layer is a real tar containerd can unpack; the config's `rootfs.diff_ids`
is the sha256 of the uncompressed tar, as the image spec requires.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"

ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
ATTESTATION_KIND = "attestation-manifest"
SUBJECT_ANNOTATION = "vnd.docker.reference.digest"

# A fixed creation time keeps builds reproducible.
CREATED = "2026-01-01T00:00:00Z"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Image:
    """One image manifest with its config and layer blobs."""

    media_type: str
    manifest: bytes = field(repr=False)
    config: Blob
    layers: tuple[Blob, ...]
    platform: dict = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def size(self) -> int:
        return len(self.manifest)

    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}

    def walk(self):
        """Every manifest of this tree, children before parents (push order)."""
        yield self


@dataclass(frozen=True)
class Index:
    """An OCI index or Docker manifest list and the manifests it lists."""

    media_type: str
    manifest: bytes = field(repr=False)
    children: tuple  # of Image | Index

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def size(self) -> int:
        return len(self.manifest)

    def blobs(self) -> tuple[Blob, ...]:
        return ()

    def descriptor(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}

    def walk(self):
        seen = set()
        for child in self.children:
            for m in child.walk():
                if m.digest not in seen:
                    seen.add(m.digest)
                    yield m
        yield self


def layer_tar(seed: str, path: str = "phasegate-seed.txt") -> bytes:
    """An uncompressed tar holding one regular file whose content names the seed."""
    content = f"phasegate test image\nseed: {seed}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(path)
        info.size = len(content)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def build_image(
    seed: str,
    *,
    media_type: str = OCI_MANIFEST,
    architecture: str = "amd64",
    os: str = "linux",
    variant: str = "",
) -> Image:
    """A single-platform image: config + one gzip layer + manifest of `media_type`."""
    if media_type not in IMAGE_TYPES:
        raise ValueError(f"not an image manifest type: {media_type}")
    docker = media_type == DOCKER_MANIFEST
    tar = layer_tar(seed)
    layer = Blob(DOCKER_LAYER if docker else OCI_LAYER, gzip_bytes(tar))
    cfg = {
        "architecture": architecture,
        "os": os,
        **({"variant": variant} if variant else {}),
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": {"org.opencontainers.image.title": seed},
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
        "history": [{"created": CREATED, "created_by": f"phasegate images.build_image({seed!r})"}],
    }
    config = Blob(DOCKER_CONFIG if docker else OCI_CONFIG, _json(cfg))
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    }
    platform = {"architecture": architecture, "os": os, **({"variant": variant} if variant else {})}
    return Image(media_type, _json(manifest), config, (layer,), platform)


def build_attestation(seed: str, subject: Image) -> Image:
    """A buildx-style attestation manifest (OCI, unknown/unknown, an in-toto layer) for `subject`."""
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [{"name": seed, "digest": {"sha256": subject.digest.split(":", 1)[1]}}],
        "predicate": {"builder": {"id": "phasegate"}, "buildType": "phasegate/test"},
    }
    layer = Blob(IN_TOTO, _json(statement))
    cfg = {"architecture": "unknown", "os": "unknown", "config": {},
           "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}
    config = Blob(OCI_CONFIG, _json(cfg))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor(annotations={"in-toto.io/predicate-type": statement["predicateType"]})],
    }
    return Image(OCI_MANIFEST, _json(manifest), config, (layer,), {"architecture": "unknown", "os": "unknown"})


def build_index(children, *, media_type: str = OCI_INDEX, attestations: dict | None = None) -> Index:
    """An index over `children` (Images with a platform, or nested Indexes).

    `attestations` maps a child Image's digest to its attestation Image; each is
    listed after the images, the way buildx writes them.
    """
    if media_type not in INDEX_TYPES:
        raise ValueError(f"not an index type: {media_type}")
    entries, members = [], []
    for child in children:
        extra = {"platform": child.platform} if isinstance(child, Image) and child.platform else {}
        entries.append(child.descriptor(**extra))
        members.append(child)
    for subject_digest, att in (attestations or {}).items():
        entries.append(att.descriptor(
            platform={"architecture": "unknown", "os": "unknown"},
            annotations={SUBJECT_ANNOTATION: subject_digest, ATTESTATION_ANNOTATION: ATTESTATION_KIND},
        ))
        members.append(att)
    manifest = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    return Index(media_type, _json(manifest), tuple(members))


def build_multiarch(
    seed: str,
    *,
    platforms=(("linux", "amd64", ""), ("linux", "arm64", "v8")),
    media_type: str = OCI_INDEX,
    attestations: bool = True,
) -> Index:
    """A multi-platform index; with `attestations` (OCI index only) one attestation child per image."""
    image_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
    images = [build_image(f"{seed}/{os_}-{arch}{variant}", media_type=image_type, architecture=arch, os=os_,
                          variant=variant) for os_, arch, variant in platforms]
    atts = {}
    if attestations and media_type == OCI_INDEX:
        atts = {img.digest: build_attestation(f"{seed}/attestation-{i}", img) for i, img in enumerate(images)}
    return build_index(images, media_type=media_type, attestations=atts)


def build_nested(seed: str) -> Index:
    """An OCI index whose children include another index (nested), plus a plain image."""
    inner = build_multiarch(f"{seed}/inner", attestations=True)
    extra = build_image(f"{seed}/s390x", architecture="s390x")
    return build_index([inner, extra], media_type=OCI_INDEX)


Manifest = Image | Index
