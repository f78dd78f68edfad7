"""The bake clock cross-checked: `bake.last_dual_push` (typed by hand) against what Forgejo shows.

The exit verdict counts the bake's 14 days from the inventory's `bake.last_dual_push`. A date typed
earlier than the day the last project really started dual-pushing ends the bake early, counting days
when that project still pushed to one registry only. The observed start per project is Phase 1's
library answer, `phasegate.dual_push.dual_push_started(inv, project, repos)`: the project's first
successful dual-push commit in its source repository (not the oldest surviving package version, which
retention moves later); the last of them is the clock.
A date typed later only makes the bake wait longer: shown in the evidence, not red.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from phasegate import dual_push
from phasegate.verdict import Broken, GateFailed


@dataclass(frozen=True)
class ClockCheck:
    declared: dt.date
    starts: dict  # project -> datetime it started dual-pushing (as Forgejo shows it)
    last_project: str
    last_start: dt.datetime

    def render(self) -> str:
        lines = [f"{p:24} dual-push since {t:%Y-%m-%d %H:%M}Z" for p, t in sorted(self.starts.items(), key=lambda x: x[1])]
        lines.append(f"observed: the bake clock starts {self.last_start:%Y-%m-%d} ({self.last_project}); "
                     f"inventory bake.last_dual_push = {self.declared}")
        return "\n".join(lines)


def observed_starts(inv, repos) -> dict[str, dt.datetime]:
    """Project -> when its first successfully built dual-push commit was made (`repos`: ForgejoRepos)."""
    starts: dict[str, dt.datetime] = {}
    unknown: list[str] = []
    for p in dual_push.dual_push_projects(inv):
        first = dual_push.dual_push_started(inv, p, repos)
        if first is None:
            unknown.append(p.name)
        else:
            starts[p.name] = first.created
    if unknown:
        # a project whose history shows no successful dual-push commit: when the clock starts cannot be told
        raise Broken(f"no successfully built dual-push commit in the history of {', '.join(unknown)}: "
                     "the bake clock cannot be cross-checked")
    if not starts:
        raise Broken("the inventory lists no dual-push project: the bake clock cannot be cross-checked")
    return starts


def cross_check(declared: dt.date, starts: dict[str, dt.datetime], where: str) -> ClockCheck:
    last_project, last = max(starts.items(), key=lambda x: x[1])
    check = ClockCheck(declared, starts, last_project, last)
    observed = last.astimezone(dt.UTC).date()
    if declared < observed:
        raise GateFailed(
            expected=f"bake.last_dual_push on or after {observed} (when {last_project} started dual-pushing, "
                     "as Forgejo shows it)",
            seen=f"bake.last_dual_push = {declared}: {(observed - declared).days} day(s) early, so the 14 days "
                 f"would be counted from before {last_project} pushed to both registries",
            where=where, evidence=check.render())
    return check


def judge(inv, repos) -> ClockCheck:
    """The inventory's `bake.last_dual_push` is not before the last project started dual-pushing, as the projects'
    repositories on Forgejo show it (`repos`: ForgejoRepos); the clock attached to the report."""
    from phasegate.report import attach_text

    check = cross_check(inv.bake.last_dual_push, observed_starts(inv, repos),
                        where=f"inventory [bake] last_dual_push against the projects' repositories on {inv.forgejo.url}")
    attach_text("bake clock", check.render())
    return check
