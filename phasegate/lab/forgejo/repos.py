"""Lab component `forgejo_repos`: Forgejo's repository API on the Forgejo stand-in.

Mounted with the stand-in's route table (phasegate.lab.forgejo.router): the
projects' source repositories answer
  GET /api/v1/repos/{owner}/{repo}/commits            (newest first; limit, sha, path; X-Total-Count)
  GET /api/v1/repos/{owner}/{repo}/commits/{sha}/status (combined state + statuses by context)
  GET /api/v1/repos/{owner}/{repo}/raw/{filepath}     (text; 404 JSON when missing)
authenticated like Forgejo's /api/v1 (PAT scope read:repository).

Each project's newest *built* commit has the SHA whose 8-hex prefix is the
newest tag the lab seeded into both registries (phasegate.lab.seed); some
repositories carry a newer commit whose build is still pending, and infra's
newest commit did not run the build-ci-image pipeline, so "newest built" is
really judged. Each repository holds a dual-push `.woodpecker.yml` written with
the lab's registry hosts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import shutil
import urllib.parse
from dataclasses import dataclass, field

from phasegate.lab import seed
from phasegate.lab.faults import fault
from phasegate.lab.forgejo.wire import HttpError, Response

READER = "viktor"
TOKEN_KEY = "forgejo_repo_token"
TOKEN_ENV = "PHASEGATE_FORGEJO_REPO_TOKEN"


@dataclass
class LabCommit:
    sha: str
    when: dt.datetime
    message: str
    statuses: dict[str, str] = field(default_factory=dict)  # context -> state


@dataclass
class LabRepo:
    full_name: str
    commits: list[LabCommit]  # newest first
    files: dict[str, str]


def _sha(prefix: str, *parts) -> str:
    return prefix + hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[: 40 - len(prefix)]


class ForgejoReposStandin:
    name = "forgejo_repos"

    def __init__(self):
        self.repos: dict[str, LabRepo] = {}
        self._lab = None
        self._inv = None
        self.t0 = dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.UTC)

    # -- life cycle --------------------------------------------------------
    def start(self, lab) -> None:
        self._lab = lab
        standin = lab["registries"].forgejo
        standin.add_pat(READER, "repo", lab.secret(TOKEN_KEY), {"read:repository"})
        self._inv = lab.inventory_dict()
        self.t0 = self._history_start()
        self.build()
        self._record_pushes(standin)
        base = r"/api/v1/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        standin.route("GET", base + r"/commits", self._commits)
        standin.route("GET", base + r"/commits/(?P<sha>[0-9a-f]{7,40})/status(?:es)?", self._status)
        standin.route("GET", base + r"/raw/(?P<path>.+)", self._raw)

    def stop(self) -> None:
        pass

    def _history_start(self) -> dt.datetime:
        """When the lab's projects started dual-pushing: well before the bake start (Phase 2's
        `bake.start`, if the inventory has one) and at least a month ago."""
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        declared = (self._inv.get("bake") or {}).get("start")
        if isinstance(declared, dt.date):
            declared = dt.datetime(declared.year, declared.month, declared.day, tzinfo=dt.UTC)
            start = min(start, declared)
        return (start - dt.timedelta(days=12)).replace(hour=9, minute=0, second=0, microsecond=0)

    PIPELINE_MINUTES = 4  # a build's push lands this long after its commit

    def _record_pushes(self, standin) -> None:
        """Forgejo's package versions get the history the builds wrote: each project's older build
        pushed a few minutes after its commit, the newer build's index children, index and `latest`
        within one second after its commit (ties, as buildx writes them), ids in push order; the
        pagination image's further tags are its earlier builds (one an hour before the older build)."""
        owner = self._inv["forgejo"]["owner"]
        pushes: list[tuple[str, str, dt.datetime]] = []
        for p in self._inv.get("projects", []):
            full = p.get("repo") or f"{owner}/{p['name']}"
            repo = self.repos.get(full)
            if repo is None:
                continue
            image = f"{owner}/{p['image']}"
            tags = standin.store.tags(image)
            by_sha = {c.sha[:8]: c for c in repo.commits}
            for n in (1, 2):
                tag = seed.sha_tag(p["image"], n)
                commit = next((c for short, c in by_sha.items() if short == tag), None)
                if tag not in tags or commit is None:
                    continue
                at = commit.when + dt.timedelta(minutes=self.PIPELINE_MINUTES)
                versions = standin.push_order(image, tag) + (["latest"] if n == 2 and "latest" in tags else [])
                pushes += [(image, v, at) for v in versions]
                if n == 1:  # the pagination image's many earlier builds, one an hour before this one
                    earlier = sorted(t for t in tags if t not in {tag, "latest", seed.sha_tag(p["image"], 2)})
                    pushes += [(image, t, at - dt.timedelta(hours=len(earlier) - k)) for k, t in enumerate(earlier)]
        seen: set[tuple[str, str]] = set()
        ordered = []
        for repo_name, version, at in sorted(pushes, key=lambda x: x[2]):  # stable: push order within a second
            if (repo_name, version) not in seen:
                seen.add((repo_name, version))
                ordered.append((repo_name, version, at))
        standin.record_pushes(ordered)

    def inventory(self) -> dict:
        return {"dual_push": {"repo_reader": {"username": READER, "secret": TOKEN_KEY}}}

    def env(self) -> dict:
        return {TOKEN_ENV: self._lab.secret(TOKEN_KEY)} if self._lab else {}

    def build(self, pipelines: dict[str, str] | None = None) -> None:
        inv = self._inv
        owner = inv["forgejo"]["owner"]
        self.repos = {}
        for i, p in enumerate(inv.get("projects", [])):
            if not p.get("dual_push", True):
                continue
            image, full = p["image"], p.get("repo") or f"{owner}/{p['name']}"
            context = p.get("status_context", "")
            pipeline = p.get("pipeline", ".woodpecker.yml")
            built = LabCommit(_sha(seed.sha_tag(image, 2), image, 2), self.t0 + dt.timedelta(days=i + 1, hours=2),
                              f"{image}: build 2", {context or "ci/woodpecker/push/woodpecker": "success"})
            older = LabCommit(_sha(seed.sha_tag(image, 1), image, 1), self.t0 + dt.timedelta(days=i),
                              f"{image}: build 1", {context or "ci/woodpecker/push/woodpecker": "success"})
            commits = [built, older]
            if context:  # infra: newer commits that did not touch ci/Dockerfile ran other pipelines only
                commits.insert(0, LabCommit(_sha("", image, "docs"), built.when + dt.timedelta(hours=3),
                                            "docs: runbook", {"ci/woodpecker/push/default": "success"}))
            elif i % 3 == 0:  # a push whose build is still running
                commits.insert(0, LabCommit(_sha("", image, "wip"), built.when + dt.timedelta(hours=1),
                                            f"{image}: wip", {"ci/woodpecker/push/woodpecker": "pending"}))
            text = (pipelines or {}).get(p["name"]) or pipeline_yaml(inv, image)
            self.repos[full] = LabRepo(full, commits, {pipeline: text})

    def project(self, name: str) -> dict:
        return next(p for p in self._inv["projects"] if p["name"] == name)

    def repo_of(self, name: str) -> LabRepo:
        p = self.project(name)
        return self.repos[p.get("repo") or f"{self._inv['forgejo']['owner']}/{p['name']}"]

    # -- handlers ----------------------------------------------------------
    def _repo(self, req) -> LabRepo:
        standin = self._lab["registries"].forgejo
        standin.api_principal(req, "repository")
        repo = self.repos.get(f"{req.params['owner']}/{req.params['repo']}")
        if repo is None:
            raise HttpError(Response.json({"message": "The target couldn't be found.", "url": standin.root_url + "api/swagger",
                                           "errors": []}, 404))
        return repo

    def _commit_json(self, repo: LabRepo, c: LabCommit, root: str) -> dict:
        who = {"name": "Viktor Barzin", "email": "viktor@example.test", "date": c.when.strftime("%Y-%m-%dT%H:%M:%SZ")}
        api = f"{root}api/v1/repos/{repo.full_name}"
        return {
            "url": f"{api}/git/commits/{c.sha}", "sha": c.sha, "created": who["date"],
            "html_url": f"{root}{repo.full_name}/commit/{c.sha}",
            "commit": {"url": f"{api}/git/commits/{c.sha}", "author": who, "committer": who, "message": c.message + "\n",
                       "tree": {"url": f"{api}/git/trees/{c.sha}", "sha": c.sha, "created": who["date"]}},
            "author": {"login": READER}, "committer": {"login": READER},
            "parents": [], "files": None, "stats": None,
        }

    def _commits(self, req):
        repo = self._repo(req)
        # utils.GetListOptions: limit <= 0 is the default page (30); capped at [git] COMMITS_RANGE_SIZE 50
        # (routers/api/v1/repo/commits.go GetAllCommits)
        limit = int(req.arg("limit", "0") or 0)
        limit = 30 if limit <= 0 else min(limit, 50)
        page = max(1, int(req.arg("page", "1") or 1))
        commits = repo.commits
        if req.arg("sha"):
            idx = next((i for i, c in enumerate(commits) if c.sha.startswith(req.arg("sha"))), 0)
            commits = commits[idx:]
        chunk = commits[(page - 1) * limit: page * limit]
        root = self._lab["registries"].forgejo.root_url
        more = len(commits) > page * limit
        return Response.json([self._commit_json(repo, c, root) for c in chunk],
                             headers=[("X-Total-Count", str(len(commits))), ("X-HasMore", "true" if more else "false")])

    def _status(self, req):
        repo = self._repo(req)
        c = next((c for c in repo.commits if c.sha.startswith(req.params["sha"])), None)
        statuses = [] if c is None else [
            {"id": n + 1, "status": state, "context": ctx, "target_url": "", "description": ctx,
             "created_at": c.when.strftime("%Y-%m-%dT%H:%M:%SZ"), "updated_at": c.when.strftime("%Y-%m-%dT%H:%M:%SZ")}
            for n, (ctx, state) in enumerate(sorted(c.statuses.items()))]
        # the combined state is the worst one by Forgejo's priority error > failure > warning >
        # pending > success (modules/structs/commit_status.go; go-gitea/gitea
        # modules/structs/commit_status_test.go TestNoBetterThan)
        worst = ["error", "failure", "warning", "pending", "success"]
        states = [s["status"] for s in statuses]
        combined = min(states, key=lambda st: worst.index(st) if st in worst else 0) if states else ""
        return Response.json({"state": combined, "sha": c.sha if c else req.params["sha"],
                              "total_count": len(statuses), "statuses": statuses})

    def _raw(self, req):
        repo = self._repo(req)
        path = urllib.parse.unquote(req.params["path"])
        if path not in repo.files:
            raise HttpError(Response.json({"message": "object does not exist [id: , rel_path: ]", "url": ""}, 404))
        return Response(200, [("Content-Type", "text/plain; charset=utf-8")], repo.files[path].encode())


def pipeline_yaml(inv: dict, image: str, *, private: bool = True, clear_text: bool = False) -> str:
    """A project's dual-push pipeline in the shape of the plan's payslip-ingest template."""
    priv = inv["private_registry"]["host"]
    fj, owner = inv["forgejo"]["host"], inv["forgejo"]["owner"]
    repos = ([f"        - {priv}/{image}\n"] if private else []) + [f"        - {fj}/{owner}/{image}\n"]
    logins = ""
    if private:
        logins += f"""        - registry: {priv}
          username:
            from_secret: registry_user
          password:
            from_secret: registry_password
"""
    password = ' "hunter2-written-in-clear"' if clear_text else "\n            from_secret: forgejo_push_token"
    logins += f"""        - registry: {fj}
          username:
            from_secret: forgejo_user
          password:{password}
"""
    return f"""when:
  - event: push
    branch: master

steps:
  - name: test
    image: python:3.12-slim
    commands:
      - pip install -e '.[dev]' && pytest -q

  - name: build-and-push
    image: woodpeckerci/plugin-docker-buildx
    settings:
      repo:
{"".join(repos)}      tags:
        - latest
        - "${{CI_COMMIT_SHA:0:8}}"
      platforms: linux/amd64
      logins:
{logins}"""


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


def _newest_tag(lab, name: str) -> tuple[str, str]:
    comp = lab["forgejo_repos"]
    p = comp.project(name)
    return p["image"], seed.sha_tag(p["image"], 2)


@fault("dual-push-tag-missing-forgejo", component="forgejo_repos",
       description="payslip-ingest's newest build tag is missing in Forgejo (pushed to registry-private only)")
def _tag_missing(lab):
    image, tag = _newest_tag(lab, "payslip-ingest")
    engine = lab["registries"].forgejo_engine
    tag_dir = engine.tag_dir(f"{lab['forgejo_repos']._inv['forgejo']['owner']}/{image}", tag)
    aside = lab.dir / "faults" / "tag-missing"
    aside.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(tag_dir), str(aside))
    try:
        yield
    finally:
        shutil.move(str(aside), str(tag_dir))


@fault("dual-push-digest-differs", component="forgejo_repos",
       description="job-hunter's newest tag points at another manifest in Forgejo than in registry-private")
def _digest_differs(lab):
    image, tag = _newest_tag(lab, "job-hunter")
    engine = lab["registries"].forgejo_engine
    repo = f"{lab['forgejo_repos']._inv['forgejo']['owner']}/{image}"
    other = next(r for r in seed.plan("") if r.name == image).tags[seed.sha_tag(image, 1)].digest  # the older build
    current = engine.tag_dir(repo, tag) / "current" / "link"
    index = engine.tag_dir(repo, tag) / "index" / "sha256" / other.split(":", 1)[1] / "link"
    before = current.read_text()
    current.write_text(other)
    index.parent.mkdir(parents=True, exist_ok=True)
    index.write_text(other)
    try:
        yield
    finally:
        current.write_text(before)
        shutil.rmtree(index.parent, ignore_errors=True)


@fault("project-not-migrated", component="forgejo_repos",
       description="hmrc-sync has no repository on Forgejo yet (still in the monorepo)")
def _not_migrated(lab):
    comp = lab["forgejo_repos"]
    repo = comp.repo_of("hmrc-sync")
    del comp.repos[repo.full_name]
    try:
        yield
    finally:
        comp.repos[repo.full_name] = repo


@contextlib.contextmanager
def _pipeline(lab, name: str, **kw):
    comp = lab["forgejo_repos"]
    repo = comp.repo_of(name)
    (path, before), = repo.files.items()
    repo.files[path] = pipeline_yaml(comp._inv, comp.project(name)["image"], **kw)
    try:
        yield
    finally:
        repo.files[path] = before


@fault("pipeline-single-registry", component="forgejo_repos",
       description="freedify's .woodpecker.yml pushes to Forgejo only")
def _single_registry(lab):
    with _pipeline(lab, "freedify", private=False):
        yield


@fault("pipeline-clear-text-password", component="forgejo_repos",
       description="beads-server's (beadboard) .woodpecker.yml writes the Forgejo password in clear")
def _clear_text(lab):
    with _pipeline(lab, "beads-server", clear_text=True):
        yield


@fault("infra-apply-failed-after-flip", component="forgejo_repos",
       description="the newest push to viktor/infra after the infra-ci flip failed its apply (default pipeline)")
def _infra_apply_failed(lab):
    repo = next(r for r in lab["forgejo_repos"].repos.values() if r.full_name.endswith("/infra"))
    newest = next(c for c in repo.commits if "ci/woodpecker/push/default" in c.statuses)
    before = dict(newest.statuses)
    newest.statuses["ci/woodpecker/push/default"] = "failure"
    try:
        yield
    finally:
        newest.statuses.clear()
        newest.statuses.update(before)
