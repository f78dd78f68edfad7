"""containerd's registry mirrors (hosts.toml) and the one "does this answer as a registry?" probe.

A node's `/etc/containerd/certs.d/<host>/hosts.toml` says where containerd
sends pulls for <host>: each `[host."URL"]` table in order (those with the
needed capabilities), then `server`. containerd talks to a host table as:
- the URL plus `/v2/...` (unless `override_path = true`: the URL's path is the
  API root) -- containerd remotes/docker/config/hosts.go `parseHostConfig`;
- TLS: `skip_verify = true` turns verification off; `ca` (a path on the node,
  relative paths taken from the hosts.toml directory, hosts.go `makeAbsPath`)
  replaces the system roots -- hosts.go `ConfigureHosts`;
- the request's Host is the URL's host (the mirror's address, not the
  registry's name): a Host-routed proxy (Traefik) that has no router for a bare
  IP answers `404 page not found`, and containerd falls back to the next host --
  the 2026-06-10 tuya-bridge hairpin (docs/post-mortems/
  2026-06-10-tuya-bridge-forgejo-pull-hairpin.md:24-27,42-49 @ 0cd4afb6).

`registry_answer` is the probe every gate that asks "is a registry answering
here?" uses: GET <root>/v2/ answered 200 with `Docker-Distribution-API-Version`,
or 401 with that header or a registry challenge (`WWW-Authenticate: Bearer
realm=...` or `Basic realm=...`) -- the distribution API's base endpoint
(distribution docs/spec/api.md "API Version Check").
"""

from __future__ import annotations

import tempfile
import tomllib
from dataclasses import dataclass, field

from phasegate import http
from phasegate.verdict import Broken

REGISTRY_HEADER = "Docker-Distribution-API-Version"


@dataclass(frozen=True)
class HostEntry:
    url: str
    capabilities: tuple[str, ...] = ("pull", "resolve", "push")  # containerd's default for a [host] table
    skip_verify: bool = False
    ca: tuple[str, ...] = ()
    override_path: bool = False

    def api_root(self) -> str:
        """Where containerd sends /v2/ requests for this host."""
        url = self.url.rstrip("/")
        if self.override_path:
            return url
        return url if url.endswith("/v2") else url + "/v2"

    def tls(self) -> str:
        if self.skip_verify:
            return "skip_verify = true"
        return f"ca = {', '.join(self.ca)}" if self.ca else "system roots"


@dataclass(frozen=True)
class HostsToml:
    server: str
    hosts: list[HostEntry] = field(default_factory=list)

    @property
    def mirrors(self) -> list[tuple[str, list[str]]]:  # (url, capabilities): the older shape steps read
        return [(h.url, list(h.capabilities)) for h in self.hosts]

    def pull_hosts(self) -> list[HostEntry]:
        """The [host] tables containerd tries for a pull, in order (pull and resolve both needed)."""
        return [h for h in self.hosts if "pull" in h.capabilities and "resolve" in h.capabilities]


def parse_hosts_toml(text: str) -> HostsToml:
    doc = tomllib.loads(text)
    hosts = []
    for url, t in (doc.get("host") or {}).items():
        ca = t.get("ca", ())
        hosts.append(HostEntry(url=url, capabilities=tuple(t.get("capabilities", ("pull", "resolve", "push"))),
                               skip_verify=bool(t.get("skip_verify", False)),
                               ca=(ca,) if isinstance(ca, str) else tuple(ca),
                               override_path=bool(t.get("override_path", False))))
    return HostsToml(server=doc.get("server", ""), hosts=hosts)


def ca_path(hosts_toml_path: str, ca: str) -> str:
    """A `ca` entry as containerd opens it (relative to the hosts.toml directory)."""
    if ca.startswith("/"):
        return ca
    return hosts_toml_path.rsplit("/", 1)[0] + "/" + ca


@dataclass(frozen=True)
class RegistryAnswer:
    url: str
    is_registry: bool
    seen: str  # what answered: status, header, challenge, or why there was no answer


def registry_answer(api_root: str, settings: http.HttpSettings, *, ca_bundle: str = "", verify: bool = True,
                    ca_pem: str = "") -> RegistryAnswer:
    """GET <api_root>/ (the /v2/ endpoint) and say whether a registry answered, and what did.

    `api_root` ends in /v2 (HostEntry.api_root, or a registry's URL + "/v2"); never /v2/v2.
    `ca_pem`: a CA read from elsewhere (a node's file), trusted instead of `ca_bundle`.
    """
    target = api_root.rstrip("/") + "/"
    tmp = None
    try:
        if ca_pem:
            tmp = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=True)
            tmp.write(ca_pem)
            tmp.flush()
            ca_bundle = tmp.name
        try:
            with http.client(settings, ca_bundle=ca_bundle, verify=verify) as c:
                r = c.get(target)
        except Broken as e:
            return RegistryAnswer(target, False, f"no answer ({e})")
    finally:
        if tmp:
            tmp.close()
    header = r.headers.get(REGISTRY_HEADER, "")
    challenge = r.headers.get("www-authenticate", "")
    scheme = challenge.split(" ", 1)[0].lower()
    challenged = scheme in ("bearer", "basic") and "realm=" in challenge.lower()
    ok = (r.status_code == 200 and bool(header)) or (r.status_code == 401 and (bool(header) or challenged))
    seen = f"HTTP {r.status_code}"
    seen += f", {REGISTRY_HEADER}: {header}" if header else f", no {REGISTRY_HEADER} header"
    if challenge:
        seen += f", WWW-Authenticate: {challenge.split(',')[0]}"
    if not ok:
        body = r.text[:60].strip()
        seen += f", body {body!r}" if body else ""
    return RegistryAnswer(target, ok, seen)


@dataclass(frozen=True)
class MirrorFinding:
    node: str
    problem: str  # "" = this mirror answers as the registry

    def line(self) -> str:
        return f"node {self.node}: {self.problem}"


def judge_node(node: str, path: str, text: str | None, allowed: set[str], answer) -> list[str]:
    """Problems of one node's hosts.toml for the Forgejo host ([] = pulls go to an allowed mirror that answers).

    `answer(entry) -> RegistryAnswer` probes one host table as containerd would (cached by the caller).
    """
    if text is None:
        return [f"node {node}: no {path}"]
    try:
        cfg = parse_hosts_toml(text)
    except tomllib.TOMLDecodeError as e:
        return [f"node {node}: {path} is not valid TOML ({e})"]
    pulls = cfg.pull_hosts()
    if not pulls:
        return [f"node {node}: no [host] with pull+resolve: pulls go to server {cfg.server or '(unset)'}"]
    problems = []
    for h in pulls:
        if h.url.rstrip("/") not in allowed:
            problems.append(f"node {node}: mirror {h.url} is not one of {', '.join(sorted(allowed))}")
            continue
        a = answer(h)
        if not a.is_registry:
            problems.append(f"node {node}: mirror {h.url} ({h.tls()}) answered GET {a.url} with {a.seen}: "
                            f"not the registry, so containerd falls back to server {cfg.server or '(unset)'}")
    return problems
