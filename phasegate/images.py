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
    command: tuple[str, ...] = ("/bin/sh",),
) -> Image:
    """A single-platform image: config + one gzip layer + manifest of `media_type`.

    `command` is the config's Cmd: application images have one (a command-less image cannot run: containerd
    refuses to create its container). The lab's kubelet checks it and never runs these; only the smoke image
    (build_smoke) really runs. `command=()` builds a command-less image.
    """
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
            **({"Cmd": list(command)} if command else {}),
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


# -- the smoke image: a program that runs ------------------------------------------
#
# A command-less image cannot run: containerd's CRI refuses to create its
# container ("no command specified", kubelet reports CreateContainerError), so
# a node-pull gate needs an image with a program. Like Docker's hello-world,
# the program is a static ELF that writes one line and exits 0; it is
# assembled here, byte by byte, so building the image needs no compiler or
# toolchain. Each is an ELF64 header + one PT_LOAD program header (R+X, the
# whole file at 0x400000) + code + message, and makes two Linux syscalls:
# write(1, msg, len) and exit(0).
#   x86_64 (EM_X86_64 = 62): write = 1, exit = 60, `syscall`;
#   aarch64 (EM_AARCH64 = 183): write = 64, exit = 93, `svc #0`
# (syscall numbers: linux arch/x86/entry/syscalls/syscall_64.tbl and
# include/uapi/asm-generic/unistd.h). tests/test_smoke_image.py runs the amd64
# program on this machine and the whole image through the lab's containerd
# (`ctr run`).

SMOKE_MESSAGE = b"hello from the phasegate smoke image\n"
SMOKE_PATH = "/hello"
_BASE = 0x400000
_HEADERS = 64 + 56  # ELF header + one program header


def _x86_64_code(msg_len: int) -> bytes:
    import struct

    code_len = 33  # the instructions below; the message follows them
    lea_end = 17
    return b"".join([
        b"\xb8\x01\x00\x00\x00",                                  # mov eax, 1 (write)
        b"\xbf\x01\x00\x00\x00",                                  # mov edi, 1 (stdout)
        b"\x48\x8d\x35" + struct.pack("<i", code_len - lea_end),  # lea rsi, [rip + msg]
        b"\xba" + struct.pack("<I", msg_len),                     # mov edx, len
        b"\x0f\x05",                                              # syscall
        b"\xb8\x3c\x00\x00\x00",                                  # mov eax, 60 (exit)
        b"\x31\xff",                                              # xor edi, edi
        b"\x0f\x05",                                              # syscall
    ])


def _aarch64_code(msg_len: int) -> bytes:
    import struct

    def movz(reg: int, imm: int) -> int:  # MOVZ Xd, #imm16
        return 0xD2800000 | (imm << 5) | reg

    msg_offset = 8 * 4 - 4  # from the ADR (2nd instruction) to the message after the 8 instructions
    adr = 0x10000000 | ((msg_offset & 3) << 29) | ((msg_offset >> 2) << 5) | 1  # ADR x1, msg
    words = [movz(0, 1), adr, movz(2, msg_len), movz(8, 64), 0xD4000001,  # write(1, msg, len); svc #0
             movz(0, 0), movz(8, 93), 0xD4000001]                        # exit(0); svc #0
    return struct.pack("<8I", *words)


def static_hello_elf(architecture: str, message: bytes = SMOKE_MESSAGE) -> bytes:
    """A static Linux ELF executable for `architecture` (amd64 | arm64) that prints `message` and exits 0."""
    import struct

    if architecture == "amd64":
        machine, code = 62, _x86_64_code(len(message))
    elif architecture == "arm64":
        machine, code = 183, _aarch64_code(len(message))
    else:
        raise ValueError(f"no smoke program for {architecture} (amd64 | arm64)")
    size = _HEADERS + len(code) + len(message)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, System V
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, _BASE + _HEADERS, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)
    return header + phdr + code + message


def _smoke_layer(seed: str, architecture: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data, mode in ((SMOKE_PATH.lstrip("/"), static_hello_elf(architecture), 0o755),
                                 ("phasegate-seed.txt", f"phasegate smoke image\nseed: {seed}\n".encode(), 0o644)):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_smoke(seed: str, platforms=(("amd64", ""), ("arm64", "v8"))) -> Index:
    """The smoke image: an OCI index of linux/amd64 and linux/arm64 images whose command prints a line.

    `seed` goes into a file of every layer: a fresh seed is a fresh digest no node has cached.
    """
    images = []
    for arch, variant in platforms:
        tar = _smoke_layer(seed, arch)
        layer = Blob(OCI_LAYER, gzip_bytes(tar))
        cfg = {
            "architecture": arch, "os": "linux", **({"variant": variant} if variant else {}),
            "created": CREATED,
            "config": {"Cmd": [SMOKE_PATH], "Labels": {"org.opencontainers.image.title": f"phasegate smoke {seed}"}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
            "history": [{"created": CREATED, "created_by": "phasegate images.build_smoke"}],
        }
        config = Blob(OCI_CONFIG, _json(cfg))
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                    "layers": [layer.descriptor()]}
        platform = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
        images.append(Image(OCI_MANIFEST, _json(manifest), config, (layer,), platform))
    return build_index(images, media_type=OCI_INDEX)
