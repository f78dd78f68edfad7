"""The infra-ci break-glass tarballs: `docker save | gzip` of each build, on the VM and the NAS.

Everything is read where the tarballs lie (phasegate.vmhost runs the commands
over SSH): one `find` lists the directory with mtimes and symlink targets
(plus the host's clock, so age is judged by the host's own time), `gzip -t`
tests the newest tarball, `tar -xzOf ... manifest.json` reads the
docker-archive manifest out of it. Nothing is copied here.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import posixpath
import re
from dataclasses import dataclass

from phasegate.config import Breakglass, BreakglassCopy
from phasegate.verdict import Broken, GateFailed, check
from phasegate.vmhost import RemoteHost

# prints the host's clock, then one line per directory entry: type, mtime, name, symlink target
_LIST = 'date +%s && find "$1" -mindepth 1 -maxdepth 1 -printf "%y\\t%T@\\t%f\\t%l\\n"'


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # f = file, l = symlink, d = directory
    mtime: float
    target: str = ""  # symlink target


@dataclass(frozen=True)
class Listing:
    host: str
    dir: str
    now: float  # the host's clock when listed
    entries: dict[str, Entry]

    def where(self, name: str = "") -> str:
        return f"{self.host}:{posixpath.join(self.dir, name) if name else self.dir}"


@dataclass(frozen=True)
class Tarball:
    name: str
    tag: str
    mtime: float


def tarball_pattern(cfg: Breakglass) -> re.Pattern:
    """file_template with {tag} as a capture group, e.g. infra-ci-(?P<tag>.+)\\.tar\\.gz"""
    before, _, after = cfg.file_template.partition("{tag}")
    return re.compile(re.escape(before) + r"(?P<tag>[^/]+?)" + re.escape(after) + "$")


class BreakglassCopyReader:
    """One copy of the tarballs (the VM's directory or the NAS), read over SSH."""

    def __init__(self, host: RemoteHost, copy: BreakglassCopy, cfg: Breakglass):
        self.host = host
        self.copy = copy
        self.cfg = cfg

    @classmethod
    def from_inventory(cls, inventory, name: str) -> BreakglassCopyReader:
        vm = inventory.registry_vm
        copies = {c.name: c for c in vm.breakglass.copies}
        if name not in copies:
            raise Broken(f"no break-glass copy {name!r} in the inventory (registry_vm.breakglass.copies: "
                         f"{', '.join(copies) or 'none'})")
        c = copies[name]
        host = RemoteHost(c.url or vm.url, c.ssh or vm.ssh)
        return cls(host, c, vm.breakglass)

    def list(self) -> Listing:  # the class's annotations below say builtins.list: this name shadows it
        r = self.host.run(["sh", "-c", _LIST, "sh", self.copy.dir])
        lines = r.text.splitlines()
        if not lines:
            raise Broken(f"listing {self.copy.dir} on {self.host.target.url}: no output ({r.stderr})")
        now = float(lines[0])
        if not r.ok:
            if "No such file" in r.stderr:
                return Listing(self.host.target.url, self.copy.dir, now, {})
            raise Broken(f"listing {self.copy.dir} on {self.host.target.url}: {r.stderr}")
        entries = {}
        for line in lines[1:]:
            kind, mtime, name, target = (line.split("\t") + ["", "", "", ""])[:4]
            entries[name] = Entry(name, kind, float(mtime or 0), target)
        return Listing(self.host.target.url, self.copy.dir, now, entries)

    def tarballs(self, listing: Listing) -> builtins.list[Tarball]:
        """Regular files named like a tarball, newest first."""
        pat = tarball_pattern(self.cfg)
        found = []
        for e in listing.entries.values():
            m = pat.match(e.name)
            if m and e.kind == "f":
                found.append(Tarball(e.name, m.group("tag"), e.mtime))
        return sorted(found, key=lambda t: t.mtime, reverse=True)

    def gzip_test(self, name: str) -> tuple[bool, str]:
        r = self.host.run(["gzip", "-t", posixpath.join(self.copy.dir, name)])
        return r.ok, r.stderr

    def manifest(self, name: str) -> builtins.list[dict]:
        """manifest.json of a docker-archive tarball (`docker save` format)."""
        path = posixpath.join(self.copy.dir, name)
        r = self.host.run(["tar", "-xzOf", path, "manifest.json"])
        if not r.ok:
            raise ManifestUnreadable(f"tar -xzOf {path} manifest.json: {r.stderr or f'exit {r.returncode}'}")
        try:
            data = json.loads(r.stdout)
        except ValueError:
            raise ManifestUnreadable(f"manifest.json of {path} is not JSON") from None
        if not isinstance(data, list):
            raise ManifestUnreadable(f"manifest.json of {path} is not a docker-archive manifest (a list)")
        return data


class ManifestUnreadable(Exception):
    pass


def repo_tags(manifest: list[dict]) -> list[str]:
    return [t for item in manifest if isinstance(item, dict) for t in (item.get("RepoTags") or [])]


def names_image_and_tag(manifest: list[dict], image: str, tag: str) -> bool:
    """Some RepoTags entry is <any registry>/<...>/<image>:<tag>."""
    for ref in repo_tags(manifest):
        repo, _, t = ref.rpartition(":")
        if t == tag and repo.rsplit("/", 1)[-1] == image:
            return True
    return False


# -- the gates of one copy (features/phase1_breakglass.feature) ----------------------------------------


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@dataclass(frozen=True)
class View:
    """One copy as read once over SSH: its listing and its tarballs, newest first."""

    reader: BreakglassCopyReader
    listing: Listing
    tarballs: builtins.list[Tarball]

    @classmethod
    def read(cls, inventory, copy: str) -> View:
        reader = BreakglassCopyReader.from_inventory(inventory, copy)
        listing = reader.list()
        return cls(reader, listing, reader.tarballs(listing))

    @property
    def newest(self) -> Tarball:
        if not self.tarballs:
            raise GateFailed(expected=f"a tarball named {self.reader.cfg.file_template}",
                             seen="no break-glass tarball at all", where=self.listing.where())
        return self.tarballs[0]


def newest_build(api, inv):
    """The newest build tag (`tag_pattern`) of the break-glass image in Forgejo, from `api` (the package API)."""
    cfg = inv.registry_vm.breakglass
    pattern = re.compile(cfg.tag_pattern)
    builds = [v for v in api.package_versions(cfg.image) if pattern.match(v.version)]
    where = f"{inv.forgejo.url} package {inv.forgejo.owner}/{cfg.image}"
    check(bool(builds), expected=f"at least one build tag matching {cfg.tag_pattern}", seen="none", where=where)
    # ties in created_at (one-second resolution) go to the later version id, as Forgejo assigns them
    return max(builds, key=lambda v: (v.created_at, v.id))


def judge_newest_is_build(bg: View, build) -> None:
    cfg = bg.reader.cfg
    expected = cfg.file_template.format(tag=build.version)
    newest = bg.newest
    check(newest.tag == build.version,
          expected=f"newest tarball {expected} (Forgejo's newest {cfg.image} build {build.version}, "
                   f"pushed {build.created_at:%Y-%m-%d %H:%M}Z)",
          seen=f"newest tarball is {newest.name} (mtime {_when(newest.mtime)}): wrong tag"
               + ("" if expected in bg.listing.entries else f"; {expected} is missing"),
          where=bg.listing.where(newest.name))


def judge_latest_link(bg: View) -> None:
    name = bg.reader.cfg.latest_link
    entry = bg.listing.entries.get(name)
    newest = bg.newest
    if entry is None:
        raise GateFailed(expected=f"symlink {name} -> {newest.name}", seen=f"no {name} symlink (missing)",
                         where=bg.listing.where(name))
    check(entry.kind == "l", expected=f"symlink {name} -> {newest.name}",
          seen=f"{name} is not a symlink (type {entry.kind})", where=bg.listing.where(name))
    target = entry.target.rstrip("/").rsplit("/", 1)[-1]
    check(target == newest.name, expected=f"symlink {name} -> {newest.name}", seen=f"{name} -> {entry.target}",
          where=bg.listing.where(name))


def judge_gzip(bg: View) -> None:
    ok, err = bg.reader.gzip_test(bg.newest.name)
    check(ok, expected="gzip -t passes", seen=f"gzip -t failed: {err or 'non-zero exit'}",
          where=bg.listing.where(bg.newest.name))


def judge_manifest(bg: View, build) -> None:
    image = bg.reader.cfg.image
    newest = bg.newest
    where = bg.listing.where(newest.name) + " manifest.json"
    try:
        manifest = bg.reader.manifest(newest.name)
    except ManifestUnreadable as e:
        raise GateFailed(expected=f"a docker-archive manifest.json naming {image}:{build.version}",
                         seen=str(e), where=where) from None
    check(names_image_and_tag(manifest, image, build.version),
          expected=f"RepoTags naming {image}:{build.version}",
          seen=f"RepoTags {repo_tags(manifest)} (wrong tag)", where=where)


def judge_fresh(bg: View, max_age_hours: float) -> None:
    """The newest tarball is at most `max_age_hours` old by the host's own clock."""
    newest = bg.newest
    age_h = (bg.listing.now - newest.mtime) / 3600
    check(age_h <= max_age_hours, expected=f"newest tarball at most {max_age_hours:g} h old",
          seen=f"{newest.name} is {age_h:.1f} h old (stale: written {_when(newest.mtime)}, "
               f"host clock {_when(bg.listing.now)})",
          where=bg.listing.where(newest.name))
