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
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from phasegate.oci import NotFound, RegistryClient
from phasegate.verdict import Broken, GateFailed


class Version(Protocol):
    """What the keep-set needs of a package version (phasegate.forgejo.PackageVersion); read-only, so a
    frozen dataclass satisfies it."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def created_at(self) -> dt.datetime: ...


@dataclass
class KeepSet:
    package: str
    keep: list[Version] = field(default_factory=list)  # versions, newest first
    delete: list[Version] = field(default_factory=list)
    why: dict[str, str] = field(default_factory=dict)  # version -> why it is kept

    def deleted(self, version: str) -> bool:
        return any(v.version == version for v in self.delete)


def keep_sets(versions: Iterable[Version], *, keep_last_n: int, always_keep: list[str],
              keep_substring: str) -> dict[str, KeepSet]:
    """What the retention job keeps and deletes, per package name."""
    by_name: dict[str, list[Version]] = {}
    for v in versions:
        by_name.setdefault(v.name, []).append(v)
    out: dict[str, KeepSet] = {}
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
    out: list[Orphan] = []
    for name, ks in sets.items():
        deleted = {v.version: v for v in ks.delete}
        if not deleted:
            continue
        repo = f"{owner}/{name}"
        for kept in ks.keep:
            stack: list[tuple[str, tuple[str, ...]]] = [(kept.version, (kept.version,))]
            seen: set[str] = set()
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


# --------------------------------------------------------------------------
# The retention job's own dry run (issue 16.2): the real script, not a model of it
# --------------------------------------------------------------------------
#
# Log lines of stacks/forgejo/files/cleanup.sh (CS:29-30,88,95,100,109 @ 5d22b449; infra-facts.md §5):
#   Forgejo cleanup: owner=<o> keep_last=<n> dry_run=<v>
#   [<name>] <N> version(s)
#     DRY_RUN would DELETE <FORGEJO_HOST>/api/v1/packages/<owner>/container/<name>/<version>
#   Summary: kept=<K> to_delete=<D> dry_run=<v>

HEADER = re.compile(r"^Forgejo cleanup: owner=(?P<owner>\S*) keep_last=(?P<keep>\S*) dry_run=(?P<dry>\S*)$")
WOULD_DELETE = re.compile(r"^\s*DRY_RUN would DELETE (?P<url>\S+)$")
DELETED = re.compile(r"^\s*(deleted|FAIL) \S+")
SUMMARY = re.compile(r"^Summary: kept=(?P<kept>\d+) to_delete=(?P<deleted>\d+) dry_run=(?P<dry>\S*)$")


@dataclass(frozen=True)
class DryRun:
    """What one dry-run Job of the retention CronJob printed."""

    job: str  # namespace/name
    log: str
    owner: str
    dry_run: str
    would_delete: dict  # package name -> set of versions
    summary: str

    @classmethod
    def parse(cls, job: str, log: str) -> DryRun:
        header = summary = None
        would: dict[str, set[str]] = {}
        deleted = []
        for line in log.splitlines():
            header = header or HEADER.match(line.strip())
            summary = SUMMARY.match(line.strip()) or summary
            if m := WOULD_DELETE.match(line):
                path = urllib.parse.urlsplit(m["url"]).path
                _, _, rest = path.partition("/api/v1/packages/")
                owner, kind, name, version = (rest.split("/", 3) + ["", "", "", ""])[:4]
                would.setdefault(urllib.parse.unquote(name), set()).add(urllib.parse.unquote(version))
            elif DELETED.match(line):
                deleted.append(line.strip())
        if header is None or summary is None:
            raise Broken(f"the retention Job {job} printed no {'header' if header is None else 'Summary'} line "
                         f"(the script did not run to its end): {log.strip()[-300:] or 'empty log'}")
        if header["dry"] != "true" or deleted:
            raise GateFailed(expected="the Job runs with DRY_RUN=true and deletes nothing",
                             seen=f"dry_run={header['dry']}; {len(deleted)} delete line(s): {'; '.join(deleted[:3])}",
                             where=f"job {job}", evidence=log)
        count = sum(len(v) for v in would.values())
        if int(summary["deleted"]) != count:
            raise Broken(f"the retention Job {job} says to_delete={summary['deleted']} but printed {count} "
                         f"'would DELETE' line(s): the log is incomplete")
        return cls(job, log, header["owner"], header["dry"], would, summary.group(0))


def _finished(kube, ns: str, name: str):
    for job in kube.jobs(ns):
        if job.metadata.name == name:
            st = job.status
            if st and (st.succeeded or 0) >= 1:
                return "succeeded"
            if st and (st.failed or 0) >= 1:
                return "failed"
    return None


def run_dry_run(kube, r, *, timeout: float) -> DryRun:
    """Create a Job from the retention CronJob with DRY_RUN forced true, wait for it, read its pod's
    log, delete the Job (a write on the cluster: @writes; the script only reads the registry)."""
    name = kube.create_job_from_cronjob(r.namespace, r.cronjob, what="phasegate-dryrun", env={r.dry_run_env: "true"})
    where = f"job {r.namespace}/{name} (from cronjob {r.cronjob}, {r.dry_run_env}=true)"
    try:
        state = kube.wait_for(lambda: _finished(kube, r.namespace, name), what=where, timeout=timeout)
        logs = "".join(kube.pod_log(r.namespace, p.metadata.name) for p in kube.pods(r.namespace, f"job-name={name}"))
        if state is None:
            raise GateFailed(expected=f"the retention dry run finishes within {timeout:.0f}s",
                             seen="still running (or never started)", where=where, evidence=logs)
        if state != "succeeded":
            raise GateFailed(expected="the retention dry run succeeds", seen=f"the Job failed: {logs.strip()[-300:]}",
                             where=where, evidence=logs)
        return DryRun.parse(f"{r.namespace}/{name}", logs)
    finally:
        kube.delete_job(r.namespace, name)


def judge_dry_run(run: DryRun, versions: list, client: RegistryClient, owner: str) -> list[Orphan]:
    """Every digest a version the job keeps needs (its manifest, index children recursively) that
    the job printed as 'would DELETE'. `versions`: the package API's list as the script saw it."""
    sets: dict[str, KeepSet] = {}
    for v in versions:
        ks = sets.setdefault(v.name, KeepSet(v.name))
        if v.version in run.would_delete.get(v.name, set()):
            ks.delete.append(v)
        else:
            ks.keep.append(v)
            ks.why[v.version] = "kept by the job"
    return orphans(client, owner, sets)


def gate_dry_run(run: DryRun, api, client: RegistryClient, owner: str) -> None:
    """The dry run's 'would DELETE' lines name no manifest that a version the job keeps needs. `api`: Forgejo's
    package API (the versions as the script saw them), `client`: Forgejo's registry (the manifests)."""
    found = judge_dry_run(run, list(api.versions()), client, owner)
    lines = grouped(found, owner)
    if found:
        raise GateFailed(
            expected=f"the job's 'would DELETE' lines name no manifest a version it keeps needs ({run.summary})",
            seen=f"{len(lines)} needed manifest(s) on its delete list; first: {lines[0]}",
            where=f"job {run.job}", evidence="\n".join(lines) + "\n--- the job's log\n" + run.log)
