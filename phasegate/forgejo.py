"""Forgejo's REST API: the package API (list, get, delete versions) and the health check.

Forgejo authenticates its REST API with `Authorization: token <PAT>`; the PAT
is a `Secret` revealed only while the request is built. Every call goes through
phasegate.http.client (timeouts, retries for reads, the read-only guard,
the redacted transcript).

Container versions are tags *and* untagged `sha256:<hex>` manifests (children
of multi-arch indexes, attestation manifests); `PackageVersion.untagged` tells
them apart. Deleting is deliberately narrow: a client deletes only versions of
the package names it was built for (`deletable`), so a slip in a gate can
never remove a production image.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from phasegate import http
from phasegate.secrets import Secret
from phasegate.verdict import AuthError, Broken

PAGE_LIMIT = 50  # Forgejo's maximum page size ([api] MAX_RESPONSE_ITEMS)


class DeletionRefused(Broken):
    """The client was asked to delete a package it was not built to delete."""


class TokenAuth(httpx.Auth):
    """`Authorization: token <PAT>`, the PAT revealed only on the wire."""

    def __init__(self, secret: Secret):
        self._secret = secret

    def auth_flow(self, request):
        request.headers["Authorization"] = f"token {self._secret.reveal()}"
        yield request


@dataclass(frozen=True)
class PackageVersion:
    id: int
    owner: str
    type: str
    name: str
    version: str
    created_at: dt.datetime
    creator: str
    html_url: str

    @property
    def untagged(self) -> bool:
        """An index child or attestation manifest stored without a tag."""
        return self.version.startswith("sha256:")

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.name}:{self.version}"

    @classmethod
    def from_api(cls, d: dict) -> PackageVersion:
        return cls(
            id=int(d["id"]),
            owner=(d.get("owner") or {}).get("login", ""),
            type=d.get("type", ""),
            name=d["name"],
            version=d["version"],
            created_at=_parse_time(d.get("created_at", "")),
            creator=(d.get("creator") or {}).get("login", ""),
            html_url=d.get("html_url", ""),
        )


def _parse_time(s: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.UTC)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Health:
    http_status: int
    status: str  # pass | fail (or whatever the server said)
    checks: dict[str, str]  # check name -> its status

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and self.status == "pass"

    def failing(self) -> list[str]:
        return sorted(k for k, v in self.checks.items() if v != "pass")


@dataclass
class Forgejo:
    """A Forgejo instance's REST API as one user (a PAT)."""

    client: httpx.Client
    owner: str
    deletable: frozenset[str] = field(default_factory=frozenset)  # package names delete() may touch

    @classmethod
    def connect(cls, url: str, token: Secret | None, settings: http.HttpSettings, *, owner: str,
                ca_bundle: str = "", deletable=()) -> Forgejo:
        c = http.client(settings, base_url=url, ca_bundle=ca_bundle, auth=TokenAuth(token) if token else None)
        return cls(c, owner, frozenset(deletable))

    @classmethod
    def from_inventory(cls, inventory, settings: http.HttpSettings, *, user: str = "puller", deletable=()) -> Forgejo:
        """As the inventory's `forgejo.<user>` (pusher, puller, cleaner)."""
        f = inventory.forgejo
        secret = inventory.secret(getattr(f, user).secret)
        return cls.connect(f.url, secret, settings, owner=f.owner, ca_bundle=f.ca_bundle, deletable=deletable)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Forgejo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- health ------------------------------------------------------------
    def health(self) -> Health:
        r = self.client.get("/api/healthz", auth=None)
        try:
            body = r.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        checks = {}
        for name, results in (body.get("checks") or {}).items():
            statuses = {c.get("status") for c in results or [] if isinstance(c, dict)}
            checks[name] = "pass" if statuses == {"pass"} else ",".join(sorted(s or "?" for s in statuses)) or "?"
        return Health(r.status_code, str(body.get("status", "")), checks)

    # -- packages ------------------------------------------------------------
    def _path(self, name: str, version: str = "", type: str = "container") -> str:
        p = f"/api/v1/packages/{urllib.parse.quote(self.owner, safe='')}/{type}/{urllib.parse.quote(name, safe='')}"
        if version:
            p += "/" + urllib.parse.quote(version, safe=":")
        return p

    def _check(self, r: httpx.Response, what: str) -> None:
        if r.status_code in (401, 403):
            raise AuthError(f"{what}: HTTP {r.status_code} ({_message(r)})")
        if r.status_code >= 500:
            raise http.status_error(r, what)
        if r.status_code >= 400:
            raise Broken(f"{what}: unexpected HTTP {r.status_code} ({_message(r)})")

    def versions(self, *, q: str = "", type: str = "container", limit: int = PAGE_LIMIT) -> Iterator[PackageVersion]:
        """Every version of the owner's packages (name filter `q`), paging until an empty page
        (as the retention script does; X-Total-Count is informative only)."""
        page = 1
        seen: set[int] = set()
        while True:
            what = f"list {type} packages of {self.owner} (page {page})"
            r = self.client.get(f"/api/v1/packages/{urllib.parse.quote(self.owner, safe='')}",
                                params={"type": type, "q": q, "page": page, "limit": limit})
            self._check(r, what)
            items = _json(r, what)
            if not isinstance(items, list):
                raise Broken(f"{what}: answer is not a list")
            fresh = [_version(d, what) for d in items]
            fresh = [v for v in fresh if v.id not in seen]
            if not items or not fresh:  # empty page, or a server repeating itself
                return
            for v in fresh:
                seen.add(v.id)
                yield v
            page += 1

    def package_versions(self, name: str) -> list[PackageVersion]:
        """The versions of one package (exact name), tags and untagged digests."""
        return [v for v in self.versions(q=name) if v.name == name]

    def get(self, name: str, version: str) -> PackageVersion | None:
        what = f"get package {self.owner}/{name}:{version}"
        r = self.client.get(self._path(name, version))
        if r.status_code == 404:
            return None
        self._check(r, what)
        return _version(_json(r, what), what)

    def delete(self, name: str, version: str) -> int:
        """DELETE one version; returns the HTTP status (204 = deleted, 404 = was not there)."""
        if name not in self.deletable:
            raise DeletionRefused(
                f"refused to delete {self.owner}/{name}:{version}: this client may only delete "
                f"{', '.join(sorted(self.deletable)) or 'nothing'}"
            )
        what = f"delete package {self.owner}/{name}:{version}"
        r = self.client.delete(self._path(name, version))
        if r.status_code not in (204, 404):
            self._check(r, what)
        return r.status_code

    def try_delete(self, name: str, version: str) -> tuple[int, str]:
        """DELETE one version and report the answer as it came: (status, Forgejo's message). A 401/403
        is an answer here (a gate judges who may delete), not an AuthError; 5xx and transport
        trouble still raise."""
        if name not in self.deletable:
            raise DeletionRefused(f"refused to delete {self.owner}/{name}:{version}: this client may only delete "
                                  f"{', '.join(sorted(self.deletable)) or 'nothing'}")
        r = self.client.delete(self._path(name, version))
        if r.status_code >= 500:
            raise http.status_error(r, f"delete package {self.owner}/{name}:{version}")
        return r.status_code, "" if r.status_code < 300 else _message(r)


def _json(r: httpx.Response, what: str):
    """The answer's JSON, or a one-line Broken (a proxy's HTML page, a truncated body)."""
    try:
        return r.json()
    except ValueError:
        raise Broken(f"{what}: answer is not JSON (HTTP {r.status_code}, "
                     f"{r.headers.get('content-type', 'no content type')})") from None


def _version(d, what: str) -> PackageVersion:
    try:
        return PackageVersion.from_api(d)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise Broken(f"{what}: a package version without {e} ({type(e).__name__})") from None


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json().get("message", ""))[:200]
    except Exception:
        return r.text[:200].strip()


# --------------------------------------------------------------------------
# The Phase 0 smoke package
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SmokePackage:
    """`<owner>/<smoke_image>:<smoke_tag>` of the inventory: the only package a gate may create and delete."""

    owner: str
    image: str
    tag: str

    @classmethod
    def from_inventory(cls, inventory) -> SmokePackage:
        f = inventory.forgejo
        return cls(f.owner, f.smoke_image, f.smoke_tag)

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.image}"

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    def build(self):
        """The smoke image (config + one layer, built in code; same bytes on every run)."""
        from phasegate import images

        return images.build_image(f"phasegate smoke test {self.ref}")

    def packages(self, inventory, settings: http.HttpSettings, user: str = "pusher") -> Forgejo:
        """A package API client as `forgejo.<user>` that may delete this package and nothing else."""
        return Forgejo.from_inventory(inventory, settings, user=user, deletable={self.image})

    def housekeeper(self, inventory, settings: http.HttpSettings, roles=("pusher", "cleaner")) -> Forgejo:
        """A package API client for sweeping the smoke package: the first of `roles` whose listing is
        not refused. Sweeping is housekeeping, not a judgment: a gate judges each account's own job,
        so one refused account must not stop the sweep (the last refusal is raised if all are)."""
        refused: AuthError | None = None
        for role in roles:
            api = self.packages(inventory, settings, user=role)
            try:
                api.package_versions(self.image)
                return api
            except AuthError as e:
                refused = e
                api.close()
        raise refused or AuthError("no account to sweep the smoke package with")

    def sweep(self, api: Forgejo) -> list[str]:
        """Delete every version of the smoke package (tags and untagged digests); the versions removed."""
        removed = []
        for v in api.package_versions(self.image):
            if api.delete(v.name, v.version) == 204:
                removed.append(v.version)
        return removed
