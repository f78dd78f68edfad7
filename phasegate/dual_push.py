"""Phase 1: every project's newest build is in both registries, byte for byte, and its pipeline says so.

Dual-push of one project:
1. the newest *built* commit: the newest of the last `commit_window` commits
   of the project's Forgejo repository whose commit status (the project's
   `status_context`, or the combined state) is `success` -- Woodpecker
   reports its pipelines there, so an unbuilt head commit is skipped;
2. its image tag from the inventory's `tag_template` (`{sha:.8}`: the 8-hex
   short SHA the real pipelines tag with);
3. `<registry-private>/<image>:<tag>` and `<forgejo>/<owner>/<image>:<tag>`
   both exist with the same manifest digest, and both pass the one-image
   integrity check (phasegate.integrity.check_image).

Pipeline config of one project: its `.woodpecker.yml` read through
Forgejo's raw file endpoint has a build-and-push step (the inventory's push
plugin) whose `repo:` list names both registries and whose `logins` use
`from_secret` for both; any credential written in clear fails with file:line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import yaml

from phasegate.forgejo_repos import Commit, ForgejoRepos
from phasegate.infra_repo import image_host, image_repository
from phasegate.verdict import Broken, GateFailed

SECRET_KEYS = ("password", "token", "pass", "secret", "api_key")


def project(inv, name: str):
    for p in inv.projects:
        if p.name == name:
            return p
    raise Broken(f"inventory: no [[projects]] entry named {name!r}")


def source_repo(inv, p) -> str:
    return p.repo or f"{inv.forgejo.owner}/{p.name}"


def newest_built_commit(repos: ForgejoRepos, repo: str, *, window: int, context: str = "") -> Commit:
    commits = repos.commits(repo, limit=window)
    if commits is None:
        raise GateFailed(expected=f"repository {repo} on Forgejo (the project is migrated)",
                         seen="404: no such repository", where=f"GET /api/v1/repos/{repo}/commits")
    if not commits:
        raise GateFailed(expected=f"at least one commit in {repo}", seen="no commits", where=f"{repo}")
    seen = []
    for c in commits:
        state = repos.status(repo, c.sha, context)
        if state == "success":
            return c
        seen.append(f"{c.short}={state or 'no status'}")
    raise GateFailed(expected=f"a successfully built commit among the newest {window} of {repo}"
                     + (f" (status context {context})" if context else ""),
                     seen=", ".join(seen), where=f"{repo}")


def image_tag(template: str, commit: Commit) -> str:
    return template.format(sha=commit.sha, short=commit.short)


@dataclass(frozen=True)
class DualPush:
    project: str
    commit: Commit
    tag: str
    private_ref: str
    forgejo_ref: str
    private_digest: str
    forgejo_digest: str

    def line(self) -> str:
        return (f"{self.project}: {self.private_ref}@{self.private_digest} == {self.forgejo_ref}@{self.forgejo_digest}"
                f" (commit {self.commit.sha[:12]} {self.commit.created:%Y-%m-%d %H:%M}Z)")


def check_dual_push(inv, p, repos: ForgejoRepos, private, forgejo) -> DualPush:
    """private / forgejo: phasegate.oci.RegistryClient for each registry (read-only)."""
    spec = inv.dual_push
    repo = source_repo(inv, p)
    commit = newest_built_commit(repos, repo, window=spec.commit_window, context=p.status_context)
    tag = image_tag(spec.tag_template, commit)
    priv_repo, fj_repo = p.image, f"{inv.forgejo.owner}/{p.image}"
    priv_ref, fj_ref = f"{inv.private_registry.host}/{priv_repo}:{tag}", f"{inv.forgejo.host}/{fj_repo}:{tag}"
    ph, fh = private.head_manifest(priv_repo, tag), forgejo.head_manifest(fj_repo, tag)
    missing = [ref for ref, h in ((priv_ref, ph), (fj_ref, fh)) if not h.found]
    if missing:
        raise GateFailed(expected=f"{p.name} commit {commit.short} pushed to both registries as :{tag}",
                         seen="missing: " + ", ".join(missing) + "; present: "
                         + (", ".join(f"{r}@{h.digest}" for r, h in ((priv_ref, ph), (fj_ref, fh)) if h.found) or "none"),
                         where=", ".join(missing))
    if ph.digest != fh.digest:
        raise GateFailed(expected=f"{p.name}:{tag} has one manifest digest in both registries",
                         seen=f"registry-private {ph.digest} vs Forgejo {fh.digest}",
                         where=f"{priv_ref}@{ph.digest}, {fj_ref}@{fh.digest}")
    from phasegate.integrity import check_image

    for label, client, repository, ref in (("registry-private", private, priv_repo, priv_ref), ("Forgejo", forgejo, fj_repo, fj_ref)):
        result = check_image(client, repository, tag)
        if not result.ok:
            raise GateFailed(expected=f"{ref} passes the integrity check ({label})",
                             seen="; ".join(b.line() for b in result.broken[:5]), where=result.broken[0].where)
    return DualPush(p.name, commit, tag, priv_ref, fj_ref, ph.digest, fh.digest)


@dataclass(frozen=True)
class Registries:
    """Both registries, read-only: phasegate.oci.RegistryClient for registry-private and for Forgejo."""

    private: object
    forgejo: object


def judge_project(inv, name: str, repos: ForgejoRepos, registries: Registries) -> DualPush:
    """The newest build of project `name` is in both registries with one digest, intact in each."""
    return check_dual_push(inv, project(inv, name), repos, registries.private, registries.forgejo)


def judge_every_project(inv, repos: ForgejoRepos, registries: Registries) -> list[DualPush]:
    """Every dual-push project of the inventory dual-pushes its newest build; red with every one that does not."""
    done, failed = [], []
    for p in dual_push_projects(inv):
        try:
            done.append(check_dual_push(inv, p, repos, registries.private, registries.forgejo))
        except GateFailed as e:
            failed.append(f"{p.name}: {e.seen} ({e.where})")
    if failed:
        raise GateFailed(expected="every project of the inventory dual-pushes its newest build",
                         seen=f"{len(done)} dual-push, {len(failed)} do not:\n  " + "\n  ".join(failed),
                         where=", ".join(f.split(":")[0] for f in failed))
    return done


def judge_pipeline(inv, name: str, repos: ForgejoRepos) -> str:
    """Project `name`'s pipeline file, read through Forgejo's raw file endpoint, pushes to both registries with
    from_secret logins (`check_pipeline`); the name of its build-and-push step."""
    p = project(inv, name)
    repo = source_repo(inv, p)
    return check_pipeline(inv, p, repos.raw(repo, p.pipeline), f"{repo}/{p.pipeline}")


def dual_push_projects(inv) -> list:
    return [p for p in inv.projects if p.dual_push]


PIPELINE_HISTORY = 50  # commits that changed a project's pipeline file, newest first: how far back to look


def dual_push_started(inv, p, repos: ForgejoRepos) -> Commit | None:
    """The project's first successful dual-push commit: the oldest commit that changed its pipeline
    file to push to both registries and whose build succeeded (its status context, else the
    combined state). Read from the repository's history, not from Forgejo's package versions:
    retention and clean-ups delete first pushes, so the oldest *surviving* version moves later
    on a healthy history. A dual-push change whose own build failed is passed over for the next
    one (a later start: the bake is then judged as shorter, never longer). None if no such commit."""
    repo = source_repo(inv, p)
    commits = repos.commits(repo, limit=PIPELINE_HISTORY, path=p.pipeline)
    for c in reversed(commits or []):  # oldest first
        try:
            check_pipeline(inv, p, repos.raw(repo, p.pipeline, ref=c.sha), f"{repo}/{p.pipeline}@{c.short}")
        except GateFailed:
            continue  # not (yet) a dual-push pipeline at this commit
        if repos.status(repo, c.sha, p.status_context) == "success":
            return c
    return None


# --------------------------------------------------------------------------
# Pipeline configs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Scalar:
    value: object
    line: int


def _plain(node):
    """YAML node -> Python with Scalar leaves (keeping lines)."""
    if isinstance(node, yaml.MappingNode):
        return {k.value: _plain(v) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v) for v in node.value]
    return Scalar(node.value, node.start_mark.line + 1)


def _steps(doc) -> list[tuple[str, dict]]:
    steps = doc.get("steps") or doc.get("pipeline") or [] if isinstance(doc, dict) else []
    if isinstance(steps, dict):
        return [(k, v) for k, v in steps.items() if isinstance(v, dict)]
    return [(getattr(s.get("name"), "value", f"#{i}"), s) for i, s in enumerate(steps) if isinstance(s, dict)]


def _list(v) -> list[Scalar]:
    if isinstance(v, list):
        return [x for x in v if isinstance(x, Scalar)]
    if isinstance(v, Scalar):
        return [Scalar(s.strip(), v.line) for s in str(v.value).split(",") if s.strip()]
    return []


def _clear_text(v, path: str, out: list[tuple[str, int]]) -> None:
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "from_secret":
                continue
            if any(s in k.lower() for s in SECRET_KEYS) and isinstance(x, Scalar) and str(x.value).strip():
                out.append((f"{path}.{k}", x.line))
            else:
                _clear_text(x, f"{path}.{k}", out)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            _clear_text(x, f"{path}[{i}]", out)


def _from_secret(v) -> bool:
    return isinstance(v, dict) and isinstance(v.get("from_secret"), Scalar) and bool(str(v["from_secret"].value))


def check_pipeline(inv, p, text: str | None, where: str) -> str:
    """Judge one project's pipeline file; returns the name of its build-and-push step."""
    if text is None:
        raise GateFailed(expected=f"{where} exists", seen="404: no such file", where=where)
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as e:
        raise GateFailed(expected=f"{where} is valid YAML", seen=str(e).splitlines()[0], where=where) from None
    doc = _plain(node) if node is not None else {}
    plugin = inv.dual_push.push_plugin
    pushes = [(n, s) for n, s in _steps(doc) if isinstance(s.get("image"), Scalar) and str(s["image"].value).split(":")[0] == plugin]
    if not pushes:
        raise GateFailed(expected=f"a build-and-push step using {plugin}", seen="none among the steps", where=where)
    private_hosts = {inv.private_registry.host, *inv.private_registry.aliases}
    want_private = p.image
    want_forgejo = f"{inv.forgejo.owner}/{p.image}"
    problems: list[str] = []
    for name, step in pushes:
        settings = step.get("settings") or {}
        repos = _list(settings.get("repo") if isinstance(settings, dict) else None)
        has_private = [r for r in repos if image_host(str(r.value)) in private_hosts and image_repository(str(r.value) + ":x") == want_private]
        has_forgejo = [r for r in repos if image_host(str(r.value)) == inv.forgejo.host and image_repository(str(r.value) + ":x") == want_forgejo]
        step_line = step["image"].line
        if not has_private:
            problems.append(f"{where}:{step_line}: step {name} pushes to no registry-private repo ({inv.private_registry.host}/{want_private}); repo: "
                            + ", ".join(f"{r.value} (line {r.line})" for r in repos))
        if not has_forgejo:
            problems.append(f"{where}:{step_line}: step {name} pushes to no Forgejo repo ({inv.forgejo.host}/{want_forgejo}); repo: "
                            + ", ".join(f"{r.value} (line {r.line})" for r in repos))
        logins = settings.get("logins") if isinstance(settings, dict) else None
        logins = logins if isinstance(logins, list) else []
        for label, hosts in (("registry-private", private_hosts), ("Forgejo", {inv.forgejo.host})):
            match = [lg for lg in logins if isinstance(lg, dict) and isinstance(lg.get("registry"), Scalar)
                     and str(lg["registry"].value).removeprefix("https://").removeprefix("http://").rstrip("/") in hosts]
            if not match:
                problems.append(f"{where}:{step_line}: step {name} has no login for {label}")
            elif not all(_from_secret(lg.get("username")) and _from_secret(lg.get("password")) for lg in match):
                problems.append(f"{where}:{match[0]['registry'].line}: {label} login does not take username and password from_secret")
        leaks: list[tuple[str, int]] = []
        _clear_text(settings, f"{name}.settings", leaks)
        _clear_text(step.get("environment") or {}, f"{name}.environment", leaks)
        problems += [f"{where}:{line}: {key} is written in clear (use from_secret)" for key, line in leaks]
        if not problems:
            return name
    raise GateFailed(expected=f"a {plugin} step pushing to both registries with from_secret logins",
                     seen="\n  " + "\n  ".join(problems), where=where)


@dataclass(frozen=True)
class BakeClock:
    starts: dict  # project -> datetime of its first successful dual-push commit
    last_project: str
    last_start: dt.datetime
    inventory_start: dt.date | None

    def render(self) -> str:
        lines = [f"{p:24} dual-push since {t:%Y-%m-%d %H:%M}Z" for p, t in sorted(self.starts.items(), key=lambda x: x[1])]
        lines.append(f"bake clock starts {self.last_start:%Y-%m-%d %H:%M}Z (last project: {self.last_project})")
        if self.inventory_start:
            lines.append(f"inventory bake.start = {self.inventory_start}")
        return "\n".join(lines)


def bake_clock(inv, repos: ForgejoRepos, pushes: list[DualPush]) -> BakeClock:
    """The bake clock: when the last project started dual-pushing (its first successful dual-push commit).

    When the inventory names a bake start date (Phase 2's `bake.start`), it must not be before that
    moment: a bake counted from earlier would include days when a project still pushed to one registry.
    """
    starts, unknown = {}, []
    for push in pushes:
        p = project(inv, push.project)
        first = dual_push_started(inv, p, repos)
        if first is None:
            unknown.append(p.name)
        else:
            starts[p.name] = first.created
    if unknown or not starts:
        raise GateFailed(expected="a successfully built dual-push commit (pipeline pushing to both registries) "
                                  "in every dual-push project's history",
                         seen="none for " + (", ".join(unknown) or "any project"),
                         where=", ".join(source_repo(inv, project(inv, n)) for n in unknown) or "the projects' repositories")
    last_project, last = max(starts.items(), key=lambda x: x[1])
    bake = getattr(inv, "bake", None)
    declared = getattr(bake, "start", None)
    if isinstance(declared, dt.datetime):
        declared = declared.date()
    if declared is not None and declared < last.date():
        raise GateFailed(expected=f"the bake clock (inventory bake.start) starts on or after {last:%Y-%m-%d}, "
                         f"when {last_project} started dual-pushing",
                         seen=f"bake.start = {declared}", where=f"{inv.forgejo.owner}/{project(inv, last_project).image}")
    return BakeClock(starts, last_project, last, declared)
