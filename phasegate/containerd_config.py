"""Every place containerd takes registry configuration from, and whether any of it names a given registry.

Where containerd's CRI plugin takes a registry host's configuration from (containerd/containerd at the
versions the cluster runs: 1.6.x, 1.7.x, 2.2.x):
- `config.toml` and every file it pulls in with the top-level `imports = [...]`: a relative path is taken
  from the importing file's directory, a path with `*` is globbed, imports of imports are followed, a file
  is loaded once (cmd/containerd/server/config/config.go `LoadConfig`, `resolveImports` @ v2.2.7;
  services/server/config/config.go @ v1.6.20). A later file replaces a whole plugin section of an
  earlier one (`mergeConfig`: "Replace entire sections instead of merging map's values").
- the CRI registry section, `[plugins."io.containerd.grpc.v1.cri".registry]` (config version 2; `cri`
  in version 1) or `[plugins."io.containerd.cri.v1.images".registry]` (version 3):
  - `config_path`, directories separated by ':' (`filepath.SplitList`); for a host containerd uses the
    first of `<dir>/<host with :port as _port_>`, `<dir>/<host>`, `<dir>/_default` that exists, in the
    first directory that has one (remotes/docker/config/config_unix.go `hostPaths`, hosts.go
    `HostDirFromRoot`; pkg/cri/server/image_pull.go `hostDirFromRoots` @ v1.6.20). A directory without
    hosts.toml still configures the host from its certificate files (hosts.go `loadHostDir`,
    `loadCertFiles`).
  - the deprecated inline `mirrors."<host>".endpoint`, `configs."<host>".tls/auth` and `auths."<url>"`;
    with `config_path` set containerd 1.6+ refuses to load the CRI plugin when `mirrors` (or, before 2.0,
    `configs.tls`) is set: "`mirrors` cannot be set when `config_path` is provided"
    (pkg/cri/config/config.go:399-416 @ v1.6.20; internal/cri/config/config.go:497-503 @ v2.2.7).
- no `config_path` and no `mirrors`: containerd before 2.2 reads no hosts directory at all (the CRI
  default is empty: pkg/cri/config/config_unix.go @ v1.6.20, v1.7.27, and 2.0/2.1); from 2.2 on Linux it
  reads `/etc/containerd/certs.d:/etc/docker/certs.d` (plugins/cri/images/plugin.go:64-72 @ v2.2.7,
  commit 5386802f; docs/cri/registry.md:19-21). The version is the node's
  `status.nodeInfo.containerRuntimeVersion` (`containerd://2.2.4`), as the infra repository's own upgrade
  gate reads it (stacks/k8s-version-upgrade/scripts/compat-gate.py:162-169 @ 0cd4afb6).
- no `config.toml` at all: containerd starts on those built-in defaults (cmd/containerd/command/main.go:
  121-129 @ v1.6.20: the file is loaded only if it exists), so an absent file is judged as the defaults.

The infra repository's nodes: cloud-init writes `containerd config default` to /etc/containerd/config.toml
(modules/create-template-vm/cloud_init.yaml:76 @ 5d22b449) and sets `config_path = "/etc/containerd/certs.d"`
by sed (stacks/infra/main.tf:68 @ 5d22b449; modules/create-template-vm/k8s-node-containerd-setup.sh:21-22
@ 8ed427a7 also for containerd 2's `''`); registry-private's host directories sit under it (main.tf:78-84).
A node can still name registry-private in any of these places after its certs.d/<host> directory is gone;
`references` finds each. The walk reads only what containerd reads, plus the inventory's certs.d (where
the infra repository writes: a leftover there is named even while containerd does not read it, since the
next config_path that points there brings it back).
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from phasegate.verdict import Broken, GateFailed

# the CRI plugin's names (config version 2 and containerd 1.x; version 3, containerd 2.x; version 1's short form)
CRI_PLUGINS = ("io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "cri")
DEFAULT_CONFIG_PATH_SINCE_2_2 = "/etc/containerd/certs.d:/etc/docker/certs.d"
_DEPRECATED = {"mirrors": "inline mirror, deprecated", "configs": "inline registry config, deprecated",
               "auths": "inline auths, deprecated"}


@dataclass
class RegistryConfig:
    """The CRI registry section containerd ends up with after merging config.toml and its imports."""

    config_paths: list[str] = field(default_factory=list)
    mirrors: dict[str, list[str]] = field(default_factory=dict)  # host -> endpoints (inline, deprecated)
    configs: list[str] = field(default_factory=list)  # hosts with inline tls/auth (deprecated)
    imports: list[str] = field(default_factory=list)  # every `imports` entry, as written


def _plugin(doc: dict) -> dict | None:
    plugins = doc.get("plugins")
    if not isinstance(plugins, dict):
        return None
    for name in CRI_PLUGINS:
        if isinstance(plugins.get(name), dict):
            return plugins[name]
    return None


def registry_config(*docs_or_texts: dict | str) -> RegistryConfig:
    """The registry section of config.toml and its imports in load order: a later file with the CRI plugin
    replaces the whole plugin section (containerd's `mergeConfig`), `imports` accumulate."""
    out = RegistryConfig()
    for d in docs_or_texts:
        doc = tomllib.loads(d) if isinstance(d, str) else d
        out.imports += [str(i) for i in doc.get("imports") or []]
        plugin = _plugin(doc)
        if plugin is None:
            continue
        section = plugin.get("registry")
        reg: dict = section if isinstance(section, dict) else {}
        out.config_paths = [p for p in str(reg.get("config_path") or "").split(":") if p]
        out.mirrors = {str(h): [str(e) for e in (m or {}).get("endpoint") or []]
                       for h, m in (reg.get("mirrors") or {}).items()}
        out.configs = [str(h) for h in reg.get("configs") or {}]
    return out


def runtime_version(runtime: str) -> tuple[int, int] | None:
    """(major, minor) of a node's `containerRuntimeVersion` (`containerd://1.7.27`), None if not containerd."""
    m = re.match(r"containerd://v?(\d+)\.(\d+)", runtime.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def hosts_dirs(reg: RegistryConfig, runtime: str) -> tuple[list[str], str]:
    """The config_path directories containerd reads and why; ([], why) when it reads none.

    Raises Broken when that depends on a containerd version the node does not report."""
    if reg.config_paths and reg.mirrors:
        return reg.config_paths, ("config_path, beside inline mirrors: containerd refuses to load its CRI plugin "
                                  "(`mirrors` cannot be set when `config_path` is provided)")
    if reg.config_paths:
        return reg.config_paths, "config_path"
    if reg.mirrors:
        return [], "no config_path (inline mirrors instead): containerd reads no hosts directory"
    version = runtime_version(runtime)
    if version is None:
        raise Broken(f"no config_path and no inline mirrors, and the node reports container runtime "
                     f"{runtime or '(none)'!r}, not containerd://<version>: whether containerd reads "
                     f"{DEFAULT_CONFIG_PATH_SINCE_2_2} (its default from 2.2 on) cannot be told")
    if version >= (2, 2):
        return DEFAULT_CONFIG_PATH_SINCE_2_2.split(":"), f"no config_path: containerd {runtime} defaults to it"
    return [], f"no config_path: containerd {runtime.removeprefix('containerd://')} reads no hosts directory"


def host_directory(host: str) -> str:
    """containerd's alternative directory name of `host:port`: `host_port_` (remotes/docker/config/hosts.go)."""
    i = host.rfind(":")
    return f"{host[:i]}_{host[i + 1:]}_" if i > 0 else host


def names(text: str, old_hosts: list[str]) -> str | None:
    """The old host `text` names (a host, host:port, host_port_, URL, image reference or path), or None.

    Compared per path segment, exactly (case-insensitive): `10.0.20.10:5000` (a pull-through cache on the
    registry VM) is not `10.0.20.10:5050`."""
    s = text.strip().lower()
    if "://" in s:
        s = s.split("://", 1)[1]
    for seg in s.split("/"):
        seg = seg.rsplit("@", 1)[-1] if "@" in seg and "sha256:" not in seg else seg
        for h in old_hosts:
            if seg and seg in (h.lower(), host_directory(h.lower())):
                return h
    return None


@dataclass(frozen=True)
class Reference:
    """One place in a node's containerd configuration that names an old host."""

    file: str
    line: int | None
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}" if self.line else f"{self.file}: {self.what}"


def _code(line: str) -> str:
    """A TOML line without its comment (a '#' outside quotes)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


class _Lines:
    """Finds the line of each finding: the first line naming it that an earlier finding did not take."""

    def __init__(self, text: str):
        self.code = [_code(x).lower() for x in text.splitlines()]
        self.taken: set[tuple[str, int]] = set()

    def find(self, needle: str) -> int | None:
        """The needle as a quoted string first (a key or a value as written), then anywhere on the line."""
        n = needle.lower()
        for forms in ((f'"{n}"', f"'{n}'"), (n,)):
            hits = [i + 1 for i, c in enumerate(self.code) if any(f in c for f in forms)]
            for i in hits:
                if (n, i) not in self.taken:
                    self.taken.add((n, i))
                    return i
            if hits:
                return hits[0]
        return None


def _dotted(keys: tuple[str, ...]) -> str:
    return ".".join(k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k) for k in keys)


def _walk(node: Any, keys: tuple[str, ...], old: list[str]):
    """(keys, rendered finding, the text that names the host) of every key or string value naming an old host."""
    if isinstance(node, dict):
        for k, v in node.items():
            here = (*keys, str(k))
            if names(str(k), old):
                hint = _DEPRECATED.get(keys[-1]) if len(keys) >= 2 and keys[-2] == "registry" else None
                shown = f"[{_dotted(here)}]" if isinstance(v, dict) else f"{_dotted(here)} = {json.dumps(v)}"
                yield here, shown + (f" ({hint})" if hint else ""), str(k)
            yield from _walk(v, here, old)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, str) and names(item, old):
                yield keys, f"{_dotted(keys)} = {json.dumps(node)}", item
            elif isinstance(item, dict | list):
                yield from _walk(item, keys, old)
    elif isinstance(node, str) and names(node, old):
        yield keys, f"{_dotted(keys)} = {json.dumps(node)}", node


def scan(path: str, text: str, old_hosts: list[str], note: str = "") -> list[Reference]:
    """Every key or string value of a TOML file (config.toml, an import, a hosts.toml) naming an old host.

    A file that is not valid TOML is scanned line by line (containerd refuses such a config.toml and ignores
    such a hosts.toml's content; a name in it is still a leftover)."""
    lines = _Lines(text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        out = []
        for i, code in enumerate(lines.code, 1):
            if any(names(tok, old_hosts) for tok in re.findall(r"[^\s\"'\[\]=,{}]+", code)):
                out.append(Reference(path, i, f"{text.splitlines()[i - 1].strip()} (the file is not valid TOML: {e})"
                                     + note))
        return out
    return [Reference(path, lines.find(needle), shown + note) for _, shown, needle in _walk(doc, (), old_hosts)]


# -- reading a node ------------------------------------------------------------------------------------------


@dataclass
class NodeConfig:
    """What was read of one node's containerd registry configuration."""

    node: str
    runtime: str  # status.nodeInfo.containerRuntimeVersion
    config_toml: str
    files: dict[str, str | None] = field(default_factory=dict)  # config.toml, then its imports in load order
    config_paths: list[str] = field(default_factory=list)  # the hosts directories containerd reads
    config_paths_why: str = ""
    roots: dict[str, list[str] | None] = field(default_factory=dict)  # each hosts directory listed -> entries
    hosts_files: dict[str, str | None] = field(default_factory=dict)  # <root>/<entry>/hosts.toml
    problems: list[str] = field(default_factory=list)  # what keeps the gate from judging (Broken)

    def summary(self) -> str:
        files = ", ".join(f"{p}{'' if t is not None else ' (absent)'}" for p, t in self.files.items())
        roots = "; ".join(f"{r}: {', '.join(e) if e else '(empty)' if e is not None else '(absent)'}"
                          for r, e in self.roots.items())
        paths = ":".join(self.config_paths) or "none"
        return (f"node {self.node} ({self.runtime or 'runtime not reported'}): read {files}; "
                f"hosts directories containerd reads: {paths} ({self.config_paths_why}); listed {roots}")


def _resolve(parent: str, imp: str) -> str:
    """An `imports` entry as containerd 2.x resolves it (relative to the importing file's directory)."""
    path = posixpath.normpath(imp)
    return path if posixpath.isabs(path) else posixpath.normpath(posixpath.join(posixpath.dirname(parent), path))


def read_node(kube, namespace: str, node: str, runtime: str, config_toml: str, certs_dir: str) -> NodeConfig:
    """Read one node's config.toml, every import (globs listed), and every hosts directory containerd reads
    plus `certs_dir`, with each entry's hosts.toml. `kube` reads node files (`read_node_files`,
    `list_node_dirs`: {path: content or None when absent})."""
    nc = NodeConfig(node, runtime, config_toml)
    docs: list[dict] = []
    pending = [config_toml]
    while pending:
        for g in pending:
            if "*" in posixpath.dirname(g):
                nc.problems.append(f"{config_toml} imports {g}: a glob in a directory part is not read by the suite")
        dirs = sorted({posixpath.dirname(p) for p in pending if "*" in p and "*" not in posixpath.dirname(p)})
        listed = kube.list_node_dirs(namespace, node, dirs) if dirs else {}
        wanted: list[str] = []
        for p in pending:
            if "*" not in p:
                wanted.append(p)
            elif "*" not in posixpath.dirname(p):
                d, pattern = posixpath.split(p)
                # Go's filepath.Glob: lexical order; a missing directory matches nothing
                wanted += [posixpath.join(d, e) for e in sorted(listed.get(d) or []) if fnmatch.fnmatchcase(e, pattern)]
        wanted = [p for p in dict.fromkeys(wanted) if p not in nc.files]
        read = kube.read_node_files(namespace, node, wanted) if wanted else {}
        pending = []
        for p in wanted:
            text = nc.files[p] = read.get(p)
            if text is None:
                if p != config_toml:
                    nc.problems.append(f"{p}, imported by the configuration, is absent: containerd refuses to start "
                                       "(failed to load TOML)")
                continue
            try:
                doc = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                nc.problems.append(f"{p} is not valid TOML ({e}): containerd refuses to start with it")
                continue
            docs.append(doc)
            pending += [_resolve(p, str(i)) for i in doc.get("imports") or []]
    try:
        nc.config_paths, nc.config_paths_why = hosts_dirs(registry_config(*docs), runtime)
    except Broken as e:
        nc.problems.append(str(e))
    if nc.files.get(config_toml) is None:
        nc.config_paths_why = f"{config_toml} absent, containerd runs on its defaults; {nc.config_paths_why}"
    roots = list(dict.fromkeys([*nc.config_paths, certs_dir.rstrip("/")]))
    nc.roots = kube.list_node_dirs(namespace, node, roots)
    hosts = [f"{r}/{e}/hosts.toml" for r in roots for e in nc.roots.get(r) or []]
    nc.hosts_files = kube.read_node_files(namespace, node, hosts) if hosts else {}
    return nc


def read_nodes(kube, namespace: str, cluster) -> list[NodeConfig]:
    """Every node's containerd registry configuration (`cluster`: the inventory's [cluster])."""
    runtimes = kube.node_runtimes()
    return [read_node(kube, namespace, node, runtimes.get(node, ""), cluster.containerd_config,
                      cluster.containerd_certs_dir) for node in kube.node_names()]


# -- judging -------------------------------------------------------------------------------------------------


def references(nc: NodeConfig, old_hosts: list[str]) -> list[Reference]:
    """Every place on the node that names an old host (empty = none): config.toml and its imports, host
    directories named for an old host (also as `host_port_`), and every hosts.toml (`_default` included)."""
    out: list[Reference] = []
    for path, text in nc.files.items():
        if text is not None:
            out += scan(path, text, old_hosts)
    for root, entries in nc.roots.items():
        note = "" if root in nc.config_paths else \
            f" (containerd does not read {root} now: {nc.config_paths_why}; the next config_path set there does)"
        for e in entries or []:
            hosts_toml = f"{root}/{e}/hosts.toml"
            text = nc.hosts_files.get(hosts_toml)
            host = names(e, old_hosts)
            if host:
                where = hosts_toml if text is not None else f"{root}/{e}/ (no hosts.toml: its certificate files)"
                out.append(Reference(where, None, f"a host directory for {host}: containerd configures {host} from it"
                                     + note))
            if text is not None:
                out += scan(hosts_toml, text, old_hosts, note)
    return out


def judge_named_nowhere(nodes: list[NodeConfig], old_hosts: list[str]) -> None:
    """No node's containerd registry configuration names an old host: GateFailed naming node, file, line and
    key of each place that does; Broken when a node's configuration could not be judged."""
    if not nodes:
        raise GateFailed(expected="at least one node", seen="the API lists no node", where="nodes")
    found = [f"node {n.node}: {r}" for n in nodes for r in references(n, old_hosts)]
    problems = [f"node {n.node}: {p}" for n in nodes for p in n.problems]
    evidence = "\n".join(n.summary() for n in nodes)
    if found:
        cfg = nodes[0].config_toml
        raise GateFailed(
            expected=f"no node's containerd registry configuration names {', '.join(old_hosts)}: no host directory "
                     f"for them (nor host_port_) in a hosts directory, nothing in any hosts.toml (_default included), "
                     f"nothing in {cfg} (inline mirrors/configs/auths or any other key) or a file it imports",
            seen="; ".join(found), where=f"{cfg}, its imports and hosts directories on nodes "
                                         f"{', '.join(n.node for n in nodes)}",
            evidence=evidence + ("\ncould not judge: " + "; ".join(problems) if problems else ""))
    if problems:
        raise Broken("; ".join(problems))
