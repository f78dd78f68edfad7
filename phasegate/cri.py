"""How kubelet and containerd name registries and images: the rules a gate must compare by.

Strings are not compared as strings here: an auths key, an imageID and an
image reference each have a grammar the kubelet or containerd applies, and a
gate that compares them literally is wrong in production (issue 14).

- Auths keys (`kubernetes.io/dockerconfigjson`): kubelet's keyring parses each
  key as a URL (adding `https://` when there is no scheme), treats a path of
  `/v2/` or `/v1/` as the bare host, and matches an image by host (glob, port
  equal) and path prefix; longer keys first. Source: kubernetes/kubernetes
  pkg/credentialprovider/keyring.go, `BasicDockerKeyring.Add` ("It also
  considers /v2/ and /v1/ equivalent to the hostname") and `URLsMatch`.
- imageIDs (`status.containerStatuses[].imageID`): containerd's CRI reports the
  first of the image's repo digests (`repo@sha256:...`), where the image is keyed
  by its config digest and every reference to it is merged and sorted
  (containerd pkg/cri/server/container_status.go `toCRIContainerStatus`,
  pkg/cri/store/image/image.go `Store.add`); dockershim reported
  `docker-pullable://repo@digest` (pkg/kubelet/dockershim/helpers.go
  `DockerPullableImageIDPrefix`), and a bare `sha256:<config>` when no repo digest
  is known. So the repository in an imageID can name the *other* registry when
  both serve the same bytes: the digest decides, never the name.
"""

from __future__ import annotations

import fnmatch
import urllib.parse
from dataclasses import dataclass

IMAGE_ID_PREFIXES = ("docker-pullable://", "docker://", "containerd://")
DOCKER_HUB = "docker.io"


# -- auths keys --------------------------------------------------------------------


@dataclass(frozen=True)
class AuthsKey:
    """One auths key as kubelet's keyring indexes it: host (with port) and an optional path."""

    raw: str
    host: str
    path: str = ""  # "" or "/namespace..." (never "/v2/")

    @classmethod
    def parse(cls, key: str) -> AuthsKey:
        value = key if key.startswith(("https://", "http://")) else "https://" + key
        u = urllib.parse.urlsplit(value)
        path = u.path
        if path.startswith(("/v2/", "/v1/")):  # keyring.go: /v2/ and /v1/ are the bare host
            path = path[3:]
        return cls(key, u.netloc.lower(), "" if path in ("", "/") else path.rstrip("/"))

    @property
    def index(self) -> str:
        return self.host + self.path

    def matches(self, image: str) -> bool:
        """keyring.go URLsMatch: host glob (per dot-separated part), same port, path prefix."""
        host, path = split_image(image)
        if not _host_match(self.host, host):
            return False
        return not self.path or path == self.path.lstrip("/") or path.startswith(self.path.lstrip("/") + "/")

    def registry_url(self) -> str:
        """The registry's base URL for this key (scheme kept, any /v2/ path dropped: never /v2/v2/)."""
        scheme = "http" if self.raw.startswith("http://") else "https"
        return f"{scheme}://{self.host}"


def _host_match(glob: str, host: str) -> bool:
    g_host, _, g_port = glob.partition(":")
    t_host, _, t_port = host.lower().partition(":")
    if g_port != t_port:
        return False
    g_parts, t_parts = g_host.split("."), t_host.split(".")
    return len(g_parts) == len(t_parts) and all(fnmatch.fnmatchcase(t, g) for g, t in zip(g_parts, t_parts, strict=False))


def split_image(image: str) -> tuple[str, str]:
    """(registry host, repository path) of an image reference, as the keyring sees it (no tag, no digest)."""
    name = image.split("@", 1)[0]
    first, _, rest = name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        first, rest = DOCKER_HUB, name if "/" in name else f"library/{name}"
    last = rest.rsplit("/", 1)
    if ":" in last[-1]:
        rest = rest[: len(rest) - len(last[-1])] + last[-1].split(":", 1)[0]
    return first.lower(), rest


def lookup(keys, image: str) -> list[str]:
    """The auths keys kubelet would try for `image`, most specific first (keyring.go Lookup)."""
    parsed = sorted((AuthsKey.parse(k) for k in keys), key=lambda k: k.index, reverse=True)
    return [k.raw for k in parsed if k.matches(image)]


def same_registry(key: str, host: str) -> bool:
    """Whether auths key `key` names registry `host` (host only, as the pull-secret gates ask)."""
    k = AuthsKey.parse(key)
    return not k.path and _host_match(k.host, host)


# -- imageIDs ------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageId:
    """A container status's imageID in any form the runtimes report."""

    raw: str
    repository: str  # "" for a bare config digest
    digest: str

    @classmethod
    def parse(cls, image_id: str) -> ImageId:
        value = image_id or ""
        for prefix in IMAGE_ID_PREFIXES:
            value = value.removeprefix(prefix)
        if "@" in value:
            repo, digest = value.rsplit("@", 1)
            return cls(image_id, repo, digest)
        return cls(image_id, "", value if value.startswith("sha256:") else "")

    def runs(self, digest: str) -> bool:
        """The container runs the manifest `digest`: decided by the digest, whichever name containerd chose."""
        return bool(self.repository) and self.digest == digest
