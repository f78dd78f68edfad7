"""The infra-ci break-glass tarballs: `docker save | gzip` of each build, on the VM and the NAS.

Everything is read where the tarballs lie (phasegate.vmhost runs the commands
over SSH): one `find` lists the directory with mtimes and symlink targets
(plus the host's clock, so age is judged by the host's own time), `gzip -t`
tests the newest tarball, `tar -xzOf ... manifest.json` reads the
docker-archive manifest out of it. Nothing is copied here.
"""

from __future__ import annotations

import builtins
import json
import posixpath
import re
from dataclasses import dataclass

from phasegate.config import Breakglass, BreakglassCopy
from phasegate.verdict import Broken
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
