"""infra-ci's cutover row: "Verify next push to master applies cleanly" (plan Phase 3, row 9).

The infra repository's Woodpecker pipeline `default.yml` applies Terraform on every push to master and
reports a commit status (context `ci/woodpecker/push/default` on Forgejo). After the flip of the
infra-ci image references, the newest push whose apply has a status must have applied cleanly:
success passes, failure or error fails, pending is Pending (the apply is still running), and no apply
status among the newest commits is a failure (nothing proves the flip applies).
"""

from __future__ import annotations

from phasegate.forgejo_repos import ForgejoRepos
from phasegate.verdict import GateFailed, Pending


def judge_next_apply(repos: ForgejoRepos, repo: str, context: str, window: int) -> str:
    """The newest commit's apply verdict; returns "<sha> success" when it applied cleanly."""
    where = f"{repo} commit statuses (context {context})"
    commits = repos.commits(repo, limit=window)
    if commits is None:
        raise GateFailed(expected=f"repository {repo} on Forgejo", seen="404: no such repository", where=where)
    skipped = []
    for c in commits:
        state = repos.status(repo, c.sha, context)
        if not state:
            skipped.append(c.short)
            continue  # a push that ran other pipelines only
        if state == "success":
            return f"{c.short} {state}"
        if state == "pending":
            raise Pending(f"{repo}@{c.short} ({c.message[:60]}): its apply ({context}) is still running")
        raise GateFailed(expected=f"the newest push to {repo} applies cleanly ({context} success)",
                         seen=f"{c.short} ({c.message[:80]}, {c.created:%Y-%m-%d %H:%M}Z): {state}", where=where)
    raise GateFailed(expected=f"an apply ({context}) among the newest {window} commits of {repo}",
                     seen=f"none of {', '.join(skipped) or 'no commits'} has that status", where=where)
