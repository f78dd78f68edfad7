"""The retention job's keep-set, and whether it would delete something a kept image needs.

`forgejo-cleanup` (stacks/forgejo/files/cleanup.sh) lists every container
package version of the owner, and per package keeps the newest `KEEP_LAST_N`
versions by `created_at`, plus `latest`, plus every version containing
`cache`; it deletes the rest. "Newest" is the script's own order: the pages in
the API's order (created_at descending, ties id ascending), then per name
`sort_by(.created_at) | reverse` (cleanup.sh:72-75 @ 5d22b449 and e0452611): jq's
sort is stable, so the reverse leaves versions of one second id-*descending*. A
buildx push writes an index's children, the index and its other tags within one
second, children first (lower ids), so at the keep boundary the script keeps the
index and drops its children. Forgejo stores the children of a multi-arch or
attested index as separate *untagged* `sha256:` versions, often older than the
newest ten: deleting them breaks the kept tag (the 2026-06-10 incident).

`keep_sets()` reproduces the job's decision from the live package list;
`orphans()` resolves every kept version's manifest through the registry
(index children recursively) and returns each needed digest the job would
delete. Read-only: nothing here deletes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from phasegate.oci import NotFound, RegistryClient


class Version(Protocol):
    """What the keep-set needs of a package version (phasegate.forgejo.PackageVersion)."""

    id: int
    name: str
    version: str
    created_at: dt.datetime


@dataclass
class KeepSet:
    package: str
    keep: list = field(default_factory=list)  # versions, newest first
    delete: list = field(default_factory=list)
    why: dict = field(default_factory=dict)  # version -> why it is kept

    def deleted(self, version: str) -> bool:
        return any(v.version == version for v in self.delete)


def keep_sets(versions: Iterable[Version], *, keep_last_n: int, always_keep: list[str],
              keep_substring: str) -> dict[str, KeepSet]:
    """What the retention job keeps and deletes, per package name."""
    by_name: dict[str, list] = {}
    for v in versions:
        by_name.setdefault(v.name, []).append(v)
    out = {}
    for name, vs in sorted(by_name.items()):
        api_order = sorted(vs, key=lambda v: (-v.created_at.timestamp(), v.id))
        vs = list(reversed(sorted(api_order, key=lambda v: v.created_at)))  # sort_by(.created_at) | reverse
        ks = KeepSet(name)
        for i, v in enumerate(vs):
            if i < keep_last_n:
                ks.why[v.version] = f"one of the newest {keep_last_n}"
            elif v.version in always_keep:
                ks.why[v.version] = f"always kept ({v.version})"
            elif keep_substring and keep_substring.lower() in v.version.lower():
                ks.why[v.version] = f"contains {keep_substring!r}"
            (ks.keep if v.version in ks.why else ks.delete).append(v)
        out[name] = ks
    return out


@dataclass(frozen=True)
class Orphan:
    """A digest a kept version needs that the retention job would delete."""

    package: str
    kept: str  # the kept version (tag or digest)
    kept_why: str
    needed: str  # the digest it needs
    path: tuple[str, ...]  # kept -> ... -> needed
    platform: str
    deleted_created_at: dt.datetime

    def line(self, owner: str) -> str:
        chain = " -> ".join(self.path)
        return (f"{owner}/{self.package}:{self.kept} ({self.kept_why}) needs {self.needed}"
                f"{f' ({self.platform})' if self.platform else ''} via {chain}; the job would delete it "
                f"(version created {self.deleted_created_at.strftime('%Y-%m-%dT%H:%M:%SZ')})")


def grouped(found: list[Orphan], owner: str) -> list[str]:
    """One line per orphaned digest, naming every kept version that needs it."""
    by: dict[tuple[str, str], list[Orphan]] = {}
    for o in found:
        by.setdefault((o.package, o.needed), []).append(o)
    lines = []
    for (package, needed), os_ in by.items():
        first = os_[0]
        kept = ", ".join(f"{o.kept} ({o.kept_why})" for o in os_[:5]) + (f" and {len(os_) - 5} more" if len(os_) > 5 else "")
        lines.append(f"{owner}/{package}@{needed} (index child{', ' + first.platform if first.platform else ''}; "
                     f"version created {first.deleted_created_at.strftime('%Y-%m-%dT%H:%M:%SZ')}): the job would "
                     f"delete it, yet {len(os_)} kept version(s) need it: {kept}")
    return lines


def _platform(desc) -> str:
    p = desc.platform or {}
    s = "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)
    if desc.is_attestation:
        s = (s + " " if s and s != "unknown/unknown" else "") + "attestation"
    return s


def orphans(client: RegistryClient, owner: str, sets: dict[str, KeepSet]) -> list[Orphan]:
    """Every (kept version, needed digest) pair where the digest is in its package's delete set."""
    out = []
    for name, ks in sets.items():
        deleted = {v.version: v for v in ks.delete}
        if not deleted:
            continue
        repo = f"{owner}/{name}"
        for kept in ks.keep:
            stack = [(kept.version, (kept.version,))]
            seen = set()
            while stack:
                ref, path = stack.pop()
                try:
                    m = client.get_manifest(repo, ref)
                except NotFound:
                    continue  # a missing manifest is the integrity gate's finding, not retention's
                for child in m.children():
                    if child.digest in seen:
                        continue
                    seen.add(child.digest)
                    cpath = path + (child.digest,)
                    if child.digest in deleted:
                        out.append(Orphan(name, kept.version, ks.why[kept.version], child.digest, cpath,
                                          _platform(child), deleted[child.digest].created_at))
                    if child.is_index:
                        stack.append((child.digest, cpath))
    return out
