"""A pull secret's auths keys and the registry names a node uses: plain data, no API client.

Split from phasegate.kube so that a gate which only names registries (cluster, cutover) does not import the
`kubernetes` client (about 0.4 s of every start of the suite).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from phasegate import cri
from phasegate.secrets import Secret, register, register_basic


@dataclass(frozen=True)
class PullSecret:
    """A kubernetes.io/dockerconfigjson Secret, read into memory: keys visible, credentials as `Secret`s.

    Steps pass this around instead of the raw V1Secret, whose repr carries the
    base64 of every password (reports record fixture values).
    """

    namespace: str
    name: str
    auths: dict[str, tuple[str, Secret]] = field(repr=False)

    @classmethod
    def from_v1(cls, secret) -> PullSecret:
        raw = (secret.data or {}).get(".dockerconfigjson")
        auths: dict[str, tuple[str, Secret]] = {}
        if raw:
            register(raw)
            cfg = json.loads(base64.b64decode(raw))
            for key, entry in (cfg.get("auths") or {}).items():
                user, pw = entry.get("username", ""), entry.get("password", "")
                if entry.get("auth"):
                    register(entry["auth"])
                    user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
                register_basic(user, pw)
                auths[key] = (user, Secret(pw, name=f"auths[{key}]"))
        return cls(secret.metadata.namespace, secret.metadata.name, auths)

    def keys(self) -> list[str]:
        return sorted(self.auths)

    def where(self) -> str:
        return f"Secret {self.namespace}/{self.name}"


def dockerconfig_auths(secret) -> dict[str, tuple[str, Secret]]:
    """{auths key: (username, password)} of a kubernetes.io/dockerconfigjson Secret (values stay in memory)."""
    return PullSecret.from_v1(secret).auths


def registry_host(image: str) -> str:
    first = image.split("/", 1)[0]
    return first if ("." in first or ":" in first or first == "localhost") and "/" in image else "docker.io"


# --------------------------------------------------------------------------
# What the gates judge (shared by steps and the CLI)
# --------------------------------------------------------------------------


def expected_auths_keys(inv, registries: str) -> list[str]:
    """The auths keys the pull secret must hold: "Forgejo" or "Forgejo and registry-private"."""
    keys = [inv.forgejo.host]
    if registries == "Forgejo and registry-private":
        keys += [inv.private_registry.host, *inv.private_registry.aliases]
    elif registries != "Forgejo":
        raise ValueError(f"unknown registry set {registries!r} (Forgejo | Forgejo and registry-private)")
    return sorted(set(keys))


def registry_url(inv, key: str) -> tuple[str, str]:
    """(base URL, CA bundle) of the registry an auths key names, parsed as kubelet's keyring does
    (phasegate.cri.AuthsKey: `https://host/v2/` is `host`; the URL never carries the /v2/ path)."""
    k = cri.AuthsKey.parse(key)
    if cri.same_registry(key, inv.forgejo.host):
        return str(inv.forgejo.url), inv.forgejo.ca_bundle
    p = inv.private_registry
    if cri.same_registry(key, p.host):
        return str(p.url), p.ca_bundle
    return k.registry_url(), p.ca_bundle if any(cri.same_registry(key, a) for a in p.aliases) else ""


def auths_registries(keys, inv, registries: str) -> tuple[list[str], list[str]]:
    """(registries of the set with no matching key, keys naming no registry of the set), matched as kubelet does."""
    want = expected_auths_keys(inv, registries)
    missing = [h for h in want if not any(cri.same_registry(k, h) for k in keys)]
    extra = [k for k in keys if not any(cri.same_registry(k, h) for h in want)]
    return missing, extra


def hosts_toml_path(inv, host: str) -> str:
    return f"{inv.cluster.containerd_certs_dir.rstrip('/')}/{host}/hosts.toml"


def image_ref_parts(image: str) -> tuple[str, str, str]:
    """(registry host, repository, tag) of `host/repo:tag` (a digest reference gives tag '')."""
    name = image.split("@", 1)[0]
    host, _, rest = name.partition("/")
    repo, tag = rest, ""
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = rest.rsplit(":", 1)
    return host, repo, tag
