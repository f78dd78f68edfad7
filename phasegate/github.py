"""GitHub's public REST API: is a repository archived, are its Actions workflows disabled?

Anonymous reads (public repositories need no token; the limit is 60 requests
an hour per address, plenty for a gate). Through phasegate.http.client like
every other HTTP call.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from phasegate import http
from phasegate.verdict import Broken, GateFailed, check

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




# -- the gates (features/phase1_github_workflow.feature, phase3_github_archived.feature) ----------------


@dataclass(frozen=True)
class Seen:
    """What GitHub answered about one project's repository: the repository, or its workflows (None: 404)."""

    full_name: str  # owner/repo
    api_url: str
    repository: Repository | None = None
    workflows: list[Workflow] | None = None


def _repo_of(listed: dict[str, str], project: str, key: str) -> str:
    if project not in listed:
        raise Broken(f"no GitHub repository for {project!r} in github.{key} ({', '.join(listed) or 'empty'})")
    return listed[project]


def read_repository(gh: GitHub, g, project: str) -> Seen:
    """The repository of `project` in [github] archived_after_cutover, as GitHub serves it."""
    full_name = _repo_of(g.archived_after_cutover, project, "archived_after_cutover")
    return Seen(full_name, g.api_url, repository=gh.repository(full_name))


def read_workflows(gh: GitHub, g, project: str) -> Seen:
    """The Actions workflows of `project`'s repository in [github] workflows_disabled."""
    full_name = _repo_of(g.workflows_disabled, project, "workflows_disabled")
    return Seen(full_name, g.api_url, workflows=gh.workflows(full_name))


def judge_archived(seen: Seen) -> None:
    where = f"GET {seen.api_url}/repos/{seen.full_name}"
    repo = seen.repository
    if repo is None:
        raise GateFailed(expected="archived: true", seen="404 (no such public repository)", where=where)
    check(repo.archived, expected="archived: true", seen=f"archived: false ({repo.html_url} not archived)",
          where=where)


def judge_workflows_disabled(seen: Seen) -> None:
    where = f"GET {seen.api_url}/repos/{seen.full_name}/actions/workflows"
    workflows = seen.workflows
    check(workflows is not None, expected="the repository's workflow list", seen="404 (no such public repository)",
          where=where)
    active = [w for w in workflows or [] if w.runs]
    check(not active, expected="every GitHub Actions workflow disabled (state disabled_manually), so only "
                               "Woodpecker pushes the image",
          seen="; ".join(f"{w.path} ({w.name}): state {w.state}" for w in active), where=where)
