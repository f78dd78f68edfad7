"""Every place containerd takes registry configuration from, and what in it names a given registry.

containerd's CRI plugin resolves a registry host through (containerd/containerd docs/hosts.md,
docs/cri/registry.md):
- `config_path` of the CRI registry section (`[plugins."io.containerd.grpc.v1.cri".registry]` in
  config version 2, `[plugins."io.containerd.cri.v1.images".registry]` in version 3), a list of
  directories separated by ':' holding `<host>/hosts.toml` (`<host>` with its `:port`), and
  `_default/hosts.toml` for every host without a directory of its own;
- the deprecated inline tables of the same section, `mirrors."<host>".endpoint` and
  `configs."<host>".tls/auth`, still honoured when no config_path is set;
- files pulled in by the top-level `imports = [...]` (merged into the main file).
The infra repository sets `config_path = "/etc/containerd/certs.d"` by sed in cloud-init
(stacks/infra/main.tf:67 @5d22b449). A node can still name registry-private in any of these places
after its certs.d/<host> directory is gone; this module finds each.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

CRI_SECTIONS = (("plugins", "io.containerd.grpc.v1.cri", "registry"), ("plugins", "io.containerd.cri.v1.images", "registry"))


@dataclass
class RegistryConfig:
    config_paths: list[str] = field(default_factory=list)
    mirrors: dict[str, list[str]] = field(default_factory=dict)  # host -> endpoints (inline, deprecated)
    configs: list[str] = field(default_factory=list)  # hosts with inline tls/auth (deprecated)
    imports: list[str] = field(default_factory=list)


def _section(doc: dict, path: tuple[str, ...]) -> dict | None:
    node: object = doc
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def registry_config(*config_texts: str) -> RegistryConfig:
    """The registry settings of config.toml and its imports (later files win, as containerd merges them)."""
    out = RegistryConfig()
    for text in config_texts:
        doc = tomllib.loads(text)
        out.imports += [str(i) for i in doc.get("imports") or []]
        for path in CRI_SECTIONS:
            reg = _section(doc, path)
            if reg is None:
                continue
            if reg.get("config_path"):
                out.config_paths = [p for p in str(reg["config_path"]).split(":") if p]
            for host, m in (reg.get("mirrors") or {}).items():
                out.mirrors[host] = [str(e) for e in (m or {}).get("endpoint") or []]
            out.configs += [h for h in (reg.get("configs") or {}) if h not in out.configs]
    return out


def hosts_toml_paths(cfg: RegistryConfig, hosts: list[str]) -> list[str]:
    """The hosts.toml files containerd would read for these hosts, plus `_default` (dirs in order)."""
    return [f"{d.rstrip('/')}/{h}/hosts.toml" for d in cfg.config_paths for h in [*hosts, "_default"]]


def _names(url_or_host: str, hosts: list[str]) -> str | None:
    bare = url_or_host.split("://", 1)[-1].split("/", 1)[0]
    return next((h for h in hosts if bare == h), None)


def references(cfg: RegistryConfig, hosts_files: dict[str, str | None], old_hosts: list[str]) -> list[str]:
    """Every place that still sends pulls of, or to, an old host: one line each (empty = none).

    `hosts_files`: path -> content (None = absent) of the hosts.toml files read from the node
    (at least `hosts_toml_paths(cfg, old_hosts)`; any other hosts.toml may be added, e.g. docker.io's).
    """
    out = []
    for host, endpoints in cfg.mirrors.items():
        if _names(host, old_hosts):
            out.append(f"config.toml mirrors.\"{host}\" (inline, deprecated)")
        out += [f"config.toml mirrors.\"{host}\" endpoint {e}" for e in endpoints if _names(e, old_hosts)]
    out += [f"config.toml configs.\"{h}\" (inline tls/auth)" for h in cfg.configs if _names(h, old_hosts)]
    for path, text in sorted(hosts_files.items()):
        if text is None:
            continue
        d = path.rsplit("/", 2)[-2] if path.count("/") >= 2 else ""
        if _names(d, old_hosts):
            out.append(f"{path} (a hosts.toml for {d})")
            continue
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            out.append(f"{path}: not valid TOML, containerd's reading of it cannot be told ({e})")
            continue
        server = str(doc.get("server", ""))
        if server and _names(server, old_hosts):
            out.append(f"{path}: server = {server}")
        out += [f"{path}: [host.\"{h}\"]" for h in (doc.get("host") or {}) if _names(h, old_hosts)]
    return out
