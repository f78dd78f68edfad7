"""GitHub's public REST API: is a repository archived, are its Actions workflows disabled?

Anonymous reads (public repositories need no token; the limit is 60 requests
an hour per address, plenty for a gate). Through phasegate.http.client like
every other HTTP call.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from phasegate import http
from phasegate.verdict import Broken

ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"


@dataclass(frozen=True)
class Repository:
    full_name: str
    archived: bool
    html_url: str
    pushed_at: str
    visibility: str


class GitHub:
    def __init__(self, client: httpx.Client, api_url: str):
        self.client = client
        self.api_url = api_url

    @classmethod
    def from_inventory(cls, inventory, settings: http.HttpSettings) -> GitHub:
        g = inventory.github
        c = http.client(settings, base_url=g.api_url, ca_bundle=g.ca_bundle,
                        headers={"Accept": ACCEPT, "X-GitHub-Api-Version": API_VERSION})
        return cls(c, g.api_url)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> GitHub:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def workflows(self, full_name: str) -> list[Workflow] | None:
        """The repository's GitHub Actions workflows with their state; None on 404."""
        return _list_workflows(self, full_name)

    def repository(self, full_name: str) -> Repository | None:
        """GET /repos/{owner}/{repo}; None when GitHub answers 404 (missing, or private to anonymous)."""
        owner, _, name = full_name.partition("/")
        if not owner or not name:
            raise Broken(f"GitHub repository {full_name!r} is not owner/name")
        what = f"GET {self.api_url}/repos/{full_name}"
        r = self.client.get(f"/repos/{owner}/{name}")
        if r.status_code == 404:
            return None
        if r.status_code in (403, 429) and r.headers.get("x-ratelimit-remaining") == "0":
            raise Broken(f"{what}: GitHub's rate limit for anonymous calls is used up (resets at "
                         f"{r.headers.get('x-ratelimit-reset', '?')})")
        if r.status_code >= 500:
            raise http.status_error(r, what)
        if r.status_code != 200:
            raise Broken(f"{what}: unexpected HTTP {r.status_code}")
        try:
            d = r.json()
        except ValueError:
            raise Broken(f"{what}: answer is not JSON") from None
        if "archived" not in d:
            raise Broken(f"{what}: answer has no 'archived' field (not GitHub's repository object?)")
        return Repository(d.get("full_name", full_name), bool(d["archived"]), d.get("html_url", ""),
                          d.get("pushed_at", ""), d.get("visibility", ""))


@dataclass(frozen=True)
class Workflow:
    name: str
    path: str
    state: str  # active, deleted, disabled_fork, disabled_inactivity, disabled_manually (GitHub's "workflow" schema)

    @property
    def runs(self) -> bool:
        return self.state == "active"


def _list_workflows(self: GitHub, full_name: str) -> list[Workflow] | None:
    """GET /repos/{owner}/{repo}/actions/workflows (docs.github.com/rest/actions/workflows, "List repository
    workflows", anonymous for public repositories); None when GitHub answers 404."""
    owner, _, name = full_name.partition("/")
    what = f"GET {self.api_url}/repos/{full_name}/actions/workflows"
    r = self.client.get(f"/repos/{owner}/{name}/actions/workflows", params={"per_page": 100})
    if r.status_code == 404:
        return None
    if r.status_code in (403, 429) and r.headers.get("x-ratelimit-remaining") == "0":
        raise Broken(f"{what}: GitHub's rate limit for anonymous calls is used up")
    if r.status_code >= 500:
        raise http.status_error(r, what)
    if r.status_code != 200:
        raise Broken(f"{what}: unexpected HTTP {r.status_code}")
    try:
        d = r.json()
        items = d["workflows"]
        out = [Workflow(str(w.get("name", "")), str(w.get("path", "")), str(w["state"])) for w in items]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise Broken(f"{what}: answer is not GitHub's workflow list") from None
    if int(d.get("total_count", len(out))) > len(out):
        raise Broken(f"{what}: {d.get('total_count')} workflows, only {len(out)} on the first page")
    return out


