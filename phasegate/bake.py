"""Phase 2, the bake: its window and the exit criteria, judged over Prometheus' history.

Every criterion reads raw samples (a range selector evaluated at the window's
end), so a red verdict names the PromQL, the window and the offending samples
with their timestamps. A criterion that needs a metric first proves the metric
was there for the whole window: "no data" is a failure, never a pass.

"Now" is Prometheus' own clock (`time()`), so the lab (whose history lies in
the past) and production run the same code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from string import Template

from phasegate import config
from phasegate.prometheus import Prometheus, Result, Sample, iso
from phasegate.verdict import GateFailed

UTC = dt.timezone.utc
DAY = 86400
MAX_LISTED = 12  # offending samples listed in a verdict (the rest are counted)


@dataclass(frozen=True)
class BakeWindow:
    start: float  # unix seconds, 00:00 UTC of the bake start date
    end: float  # start + days
    now: float  # Prometheus' clock when the window was computed
    days: int

    @classmethod
    def from_inventory(cls, bake: config.Bake, now: float) -> "BakeWindow":
        start = dt.datetime.combine(bake.start, dt.time(0, 0), UTC).timestamp()
        return cls(start=start, end=start + bake.days * DAY, now=now, days=bake.days)

    @property
    def complete(self) -> bool:
        return self.now >= self.end

    def day_start(self, n: int) -> float:
        return self.start + n * DAY

    def day_of(self, t: float) -> int:
        return int((t - self.start) // DAY)

    def __str__(self) -> str:
        return f"{iso(self.start)} .. {iso(self.end)} ({self.days} days)"


def _listing(items: list[str]) -> str:
    shown = items[:MAX_LISTED]
    more = len(items) - len(shown)
    return "\n".join(f"  {line}" for line in shown) + (f"\n  (+{more} more)" if more > 0 else "")


@dataclass
class RetentionRun:
    job_name: str
    started: float
    succeeded: bool
    completed: float | None
    dry_run: bool | None = None  # from the job's pushed summary; None = no summary seen

    def line(self, window: BakeWindow) -> str:
        state = "succeeded" if self.succeeded else "did not succeed"
        dry = {True: "dry_run=true", False: "dry_run=false", None: "no summary pushed"}[self.dry_run]
        return f"{self.job_name}: started {iso(self.started)} (day {window.day_of(self.started)}), {state}, {dry}"


@dataclass
class BakeJudge:
    """Judges the bake criteria of one inventory against one Prometheus."""

    prom: Prometheus
    inv: config.Inventory
    window: BakeWindow
    _runs: list[RetentionRun] | None = field(default=None, repr=False)

    @classmethod
    def connect(cls, prom: Prometheus, inv: config.Inventory) -> "BakeJudge":
        return cls(prom, inv, BakeWindow.from_inventory(inv.bake, prom.now()))

    # -- PromQL --------------------------------------------------------------
    def promql(self, name: str, **extra) -> str:
        m, r = self.inv.metrics, self.inv.retention
        values = {
            "instance": m.forgejo_instance, "namespace": self.inv.forgejo.namespace,
            "container": self.inv.forgejo.container, "cronjob": r.cronjob, "alert": m.failure_alert,
        }
        values.update(extra)
        return Template(getattr(m.queries, name)).substitute(values)

    def samples(self, promql: str) -> Result:
        return self.prom.raw_samples(promql, self.window.start, self.window.end)

    def where(self, promql: str) -> str:
        return f"PromQL {promql} over {self.window}"

    def require_whole_window(self, result: Result, what: str, tolerance: float) -> None:
        """The metric must have samples from the window's start to its end: absence proves nothing."""
        w = self.window
        if result.empty:
            raise GateFailed(
                expected=f"{what} present for the whole bake window",
                seen="no data: Prometheus holds no sample of it in the window (a metric that never existed proves nothing)",
                where=self.where(result.promql),
            )
        first = min(s.t for _, s in result.samples())
        last = max(s.t for _, s in result.samples())
        if first > w.start + tolerance or last < w.end - tolerance:
            raise GateFailed(
                expected=f"{what} present for the whole bake window",
                seen=f"no data for part of the window: samples only from {iso(first)} to {iso(last)}",
                where=self.where(result.promql),
            )

    def _tolerance(self) -> float:
        return self.inv.metrics.probe_max_age_minutes * 60

    # -- integrity ---------------------------------------------------------------
    def zero_integrity_failures(self) -> None:
        q = self.promql("failures")
        res = self.samples(q)
        self.require_whole_window(res, "the Forgejo integrity probe's failures metric", self._tolerance())
        bad = [f"{s.name} = {x}" for s, x in res.samples() if x.v > 0]
        qa = self.promql("alert", alert=self.inv.metrics.failure_alert)
        alerts = self.samples(qa)
        fired = [f"{s.name} = {x}" for s, x in alerts.samples() if x.v > 0]
        if bad or fired:
            parts = []
            if bad:
                parts.append(f"{len(bad)} sample(s) with failures > 0")
            if fired:
                parts.append(f"{self.inv.metrics.failure_alert} firing in {len(fired)} sample(s)")
            evidence = ""
            if bad:
                evidence += f"offending samples of {q}:\n{_listing(bad)}"
            if fired:
                evidence += ("\n" if evidence else "") + f"offending samples of {qa}:\n{_listing(fired)}"
            raise GateFailed(
                expected=f"zero integrity failures and zero {self.inv.metrics.failure_alert} alerts "
                         f"for {self.inv.metrics.forgejo_instance}",
                seen="; ".join(parts),
                where=self.where(q),
                evidence=evidence,
            )

    def probe_never_stale(self) -> None:
        q = self.promql("last_run")
        res = self.samples(q)
        limit = self._tolerance()
        self.require_whole_window(res, "the Forgejo integrity probe's last-run timestamp", limit)
        bad = []
        for s in res.series:
            prev = None
            for x in s.samples:
                age = x.t - x.v
                if age > limit:
                    bad.append(f"{s.name} = {iso(x.v)} @ {iso(x.t)}: last run {age / 60:.0f} min old")
                if prev is not None and x.t - prev.t > limit:
                    bad.append(f"{s.name}: no sample between {iso(prev.t)} and {iso(x.t)}")
                prev = x
        if bad:
            raise GateFailed(
                expected=f"the probe never older than {limit / 60:.0f} min across the window",
                seen=f"stale in {len(bad)} sample(s), first at {bad[0].split(' @ ')[-1]}",
                where=self.where(q),
                evidence=f"offending samples:\n{_listing(bad)}",
            )

    # -- forgejo memory ------------------------------------------------------------
    def never_near_oom(self) -> None:
        m = self.inv.metrics
        ratio = self.inv.bake.near_oom_ratio
        qw, ql = self.promql("working_set"), self.promql("memory_limit")
        ws, lim = self.samples(qw), self.samples(ql)
        tol = self._tolerance()
        self.require_whole_window(ws, "the forgejo container's working set", tol)
        self.require_whole_window(lim, "the forgejo container's memory limit", tol)
        limits: dict[str, list[Sample]] = {}
        for s in lim.series:
            limits.setdefault(s.label("pod"), []).extend(s.samples)
        bad = []
        for s in ws.series:
            pod_limits = sorted(limits.get(s.label("pod"), []), key=lambda x: x.t)
            if not pod_limits:
                bad.append(f"{s.name}: no memory limit known for pod {s.label('pod')!r}")
                continue
            i = 0
            for x in s.samples:
                while i + 1 < len(pod_limits) and pod_limits[i + 1].t <= x.t:
                    i += 1
                limit = pod_limits[i].v
                if limit > 0 and x.v / limit >= ratio:
                    bad.append(f"{s.name} = {x.v / 2**20:.0f}Mi of {limit / 2**20:.0f}Mi "
                               f"({100 * x.v / limit:.0f}%) @ {iso(x.t)}")
        qa = self.promql("container_alert", alert=m.near_oom_alert)
        for s, x in self.samples(qa).samples():
            if x.v > 0:
                bad.append(f"{s.name} firing @ {iso(x.t)}")
        qr, qo = self.promql("restarts"), self.promql("oom_killed")
        restarts = self.samples(qr)
        self.require_whole_window(restarts, "the forgejo container's restart counter", tol)
        oom_times = sorted(x.t for s, x in self.samples(qo).samples() if x.v > 0)
        for s in restarts.series:
            for a, b in zip(s.samples, s.samples[1:]):
                if b.v > a.v and any(a.t < t <= b.t + tol for t in oom_times):
                    bad.append(f"{s.name} rose {a.v:.0f} -> {b.v:.0f} between {iso(a.t)} and {iso(b.t)}: "
                               f"last terminated reason OOMKilled")
        if bad:
            raise GateFailed(
                expected=f"forgejo never near OOM: working set below {ratio:.0%} of its limit, "
                         f"no {m.near_oom_alert} alert, no OOMKilled restart",
                seen=f"{len(bad)} offending sample(s), first: {bad[0]}",
                where=f"PromQL {qw} / {ql}, {qa}, {qr} with {qo} over {self.window}",
                evidence=f"offending samples:\n{_listing(bad)}",
            )

    # -- retention -----------------------------------------------------------------
    def retention_runs(self) -> list[RetentionRun]:
        """Every run of the retention CronJob that started inside the window (kube-state-metrics)."""
        if self._runs is not None:
            return self._runs
        # Job objects live one hour after they finish: read a day beyond the window's edges.
        start, end = self.window.start - DAY, min(self.window.end + DAY, self.window.now)
        owned = {s.label("job_name") for s, _ in self.prom.raw_samples(self.promql("job_owner"), start, end).samples()}
        started: dict[str, float] = {}
        for s, x in self.prom.raw_samples(self.promql("job_start"), start, end).samples():
            if s.label("job_name") in owned:
                started[s.label("job_name")] = x.v
        succeeded: dict[str, bool] = {}
        for s, x in self.prom.raw_samples(self.promql("job_succeeded"), start, end).samples():
            if s.label("job_name") in owned and x.v >= 1:
                succeeded[s.label("job_name")] = True
        completed: dict[str, float] = {}
        for s, x in self.prom.raw_samples(self.promql("job_completion"), start, end).samples():
            if s.label("job_name") in owned:
                completed[s.label("job_name")] = x.v
        summary = sorted((x.t, x.v) for _, x in self.prom.raw_samples(self.promql("cleanup_dry_run"), start, end).samples())
        runs = []
        for name, t in sorted(started.items(), key=lambda kv: kv[1]):
            if not (self.window.start <= t < self.window.end):
                continue
            run = RetentionRun(name, t, succeeded.get(name, False), completed.get(name))
            if run.completed is not None:
                after = [v for ts, v in summary if run.completed <= ts <= run.completed + 3600]
                run.dry_run = None if not after else after[0] >= 1
            runs.append(run)
        self._runs = runs
        return runs

    def _runs_where(self) -> str:
        return (f"PromQL {self.promql('job_succeeded')} and {self.promql('job_start')} of jobs owned by "
                f"{self.promql('job_owner')}, over {self.window}")

    def retention_succeeded_enough(self) -> None:
        need = self.inv.bake.min_retention_runs
        runs = self.retention_runs()
        ok = [r for r in runs if r.succeeded]
        if len(ok) < need:
            not_ok = [r.line(self.window) for r in runs if not r.succeeded]
            days_seen = {self.window.day_of(r.started) for r in ok}
            missing_days = [f"day {d} ({iso(self.window.day_start(d))[:10]}): no successful run"
                            for d in range(self.window.days) if d not in days_seen]
            raise GateFailed(
                expected=f"the retention CronJob {self.inv.retention.namespace}/{self.inv.retention.cronjob} "
                         f"succeeded at least {need} times in the window",
                seen=f"{len(ok)} successful run(s) of {len(runs)}",
                where=self._runs_where(),
                evidence=f"offending runs / days:\n{_listing(not_ok + missing_days)}",
            )

    def dry_run_flipped(self) -> None:
        flip_day = self.inv.bake.dry_run_flip_day
        flip = self.window.day_start(flip_day)
        runs = [r for r in self.retention_runs() if r.succeeded]
        if not runs:
            raise GateFailed(expected="retention runs to judge DRY_RUN by", seen="no data: no successful run in the window",
                             where=self._runs_where())
        bad = []
        for r in runs:
            if r.dry_run is None:
                bad.append(r.line(self.window))
            elif r.started >= flip and r.dry_run:
                bad.append(r.line(self.window) + f" (day >= {flip_day}: must delete)")
            elif r.started < flip and not r.dry_run:
                bad.append(r.line(self.window) + f" (day < {flip_day}: must be a dry run)")
        deleting = [r for r in runs if r.started >= flip and r.dry_run is False]
        if bad or not deleting:
            raise GateFailed(
                expected=f"DRY_RUN=true before day {flip_day} ({iso(flip)}), false from then on, "
                         "and deleting runs observed afterwards",
                seen=(f"{len(bad)} run(s) off plan, first: {bad[0]}" if bad else "no deleting run after the flip"),
                where=f"PromQL {self.promql('cleanup_dry_run')} after each run of {self._runs_where()}",
                evidence=f"offending runs:\n{_listing(bad)}" if bad else "",
            )

    def sunday_gc_cycle(self) -> None:
        weekday = config.weekday_number(self.inv.bake.gc_weekday)
        name = self.inv.bake.gc_weekday.capitalize()
        days = [d for d in range(self.window.days)
                if dt.datetime.fromtimestamp(self.window.day_start(d), UTC).weekday() == weekday]
        cycles = []
        for r in self.retention_runs():
            d = self.window.day_of(r.started)
            if d in days and r.succeeded and r.dry_run is False and r.completed is not None \
                    and self.window.day_of(r.completed) == d:
                cycles.append(r)
        if not cycles:
            full = [f"day {d} = {iso(self.window.day_start(d))[:10]}" for d in days]
            on_day = [r.line(self.window) for r in self.retention_runs() if self.window.day_of(r.started) in days]
            raise GateFailed(
                expected=f"at least one full {name} GC cycle inside the window: a deleting retention run "
                         f"that started and completed on a {name}",
                seen=(f"no {name} GC cycle: {name}s in the window: {', '.join(full) or 'none'}; "
                      f"runs on them: {len(on_day)}"),
                where=self._runs_where(),
                evidence=f"runs on {name}s:\n{_listing(on_day)}" if on_day else "",
            )

    # -- healthz ---------------------------------------------------------------------
    def healthz_green_over_window(self) -> None:
        q = self.promql("healthz", instance=self.inv.metrics.healthz_instance)
        res = self.samples(q)
        self.require_whole_window(res, "the /api/healthz monitor", self._tolerance())
        bad = [f"{s.name} = {x}" for s, x in res.samples() if x.v < 1]
        if bad:
            raise GateFailed(
                expected="the /api/healthz monitor green across the window",
                seen=f"down in {len(bad)} sample(s), first at {bad[0].split(' @ ')[-1]}",
                where=self.where(q),
                evidence=f"offending samples:\n{_listing(bad)}",
            )

    # -- exit --------------------------------------------------------------------------
    def bake_long_enough(self) -> None:
        b = self.inv.bake
        last = dt.datetime.combine(b.last_dual_push, dt.time(0, 0), UTC).timestamp()
        now = self.window.now
        if not self.window.complete:
            raise GateFailed(expected=f"the bake window over ({self.window})",
                             seen=f"it is {iso(now)}: {(self.window.end - now) / DAY:.1f} days to go",
                             where="inventory [bake] start/days against Prometheus time()")
        if now - last < b.days * DAY:
            raise GateFailed(
                expected=f"at least {b.days} days since the last project started dual-pushing",
                seen=f"{(now - last) / DAY:.1f} days since {b.last_dual_push.isoformat()} (now {iso(now)})",
                where="inventory [bake] last_dual_push against Prometheus time()",
            )

    def criteria(self) -> dict[str, callable]:
        """Every Prometheus-judged exit criterion by name, in the order of the plan."""
        return {
            "zero integrity failures and alerts": self.zero_integrity_failures,
            "probe never stale": self.probe_never_stale,
            "forgejo never near OOM": self.never_near_oom,
            "retention succeeded enough": self.retention_succeeded_enough,
            "Sunday GC cycle": self.sunday_gc_cycle,
            "DRY_RUN flipped": self.dry_run_flipped,
            "healthz green over the window": self.healthz_green_over_window,
            "bake long enough": self.bake_long_enough,
        }


def exit_checks(judge: BakeJudge, inv: config.Inventory, settings) -> dict[str, callable]:
    """Every Phase 2 exit criterion: the Prometheus-judged ones and the live ones."""
    checks = dict(judge.criteria())
    checks["healthz green now"] = lambda: healthz_now(inv, settings)
    checks["retention keep-set safe"] = lambda: retention_safe(inv, settings)
    checks["daily smoke check"] = lambda: smoke_check(inv, settings)
    return checks


def exit_verdict(checks: dict[str, callable]) -> None:
    """Run every criterion; fail with all the red ones (each with its own verdict)."""
    red = []
    for name, check in checks.items():
        try:
            check()
        except GateFailed as e:
            red.append((name, e))
    if red:
        raise GateFailed(
            expected="every bake exit criterion green",
            seen=f"{len(red)} red: {', '.join(n for n, _ in red)}",
            where="Phase 2 exit verdict",
            evidence="\n\n".join(f"[{n}]\n{e.render()}" for n, e in red),
        )


def healthz_now(inv: config.Inventory, settings) -> None:
    """Forgejo's own `/api/healthz` right now: 200 and status `pass`."""
    from phasegate.forgejo import Forgejo

    with Forgejo.connect(inv.forgejo.url, None, settings, owner=inv.forgejo.owner,
                         ca_bundle=inv.forgejo.ca_bundle) as api:
        h = api.health()
    if not h.ok:
        raise GateFailed(expected='HTTP 200 with status "pass"',
                         seen=f"HTTP {h.http_status}, status {h.status!r}, failing checks: {', '.join(h.failing()) or 'none'}",
                         where=f"GET {inv.forgejo.url}/api/healthz")


def retention_safe(inv: config.Inventory, settings) -> None:
    """The forgejo-cleanup keep-set, computed from the live package list, orphans nothing a kept version needs."""
    from phasegate import retention
    from phasegate.forgejo import Forgejo
    from phasegate.oci import RegistryClient

    r, f = inv.retention, inv.forgejo
    with Forgejo.from_inventory(inv, settings, user="puller") as api:
        versions = list(api.versions())
    sets = retention.keep_sets(versions, keep_last_n=r.keep_last_n, always_keep=r.always_keep,
                               keep_substring=r.keep_substring)
    with RegistryClient.from_inventory(inv, registry="forgejo", user="puller") as client:
        found = retention.orphans(client, f.owner, sets)
    if found:
        deleted = sum(len(k.delete) for k in sets.values())
        lines = retention.grouped(found, f.owner)
        raise GateFailed(
            expected=f"the {r.cronjob} keep-set (newest {r.keep_last_n} per package + {', '.join(r.always_keep)}"
                     f" + tags containing {r.keep_substring!r}) deletes no manifest a kept version needs",
            seen=f"{len(lines)} needed manifest(s) in the delete set ({deleted} version(s) would be deleted); "
                 f"first: {lines[0]}",
            where=f"{f.host}/{f.owner}/{found[0].package}:{found[0].kept}@{found[0].needed}",
            evidence="orphaned by the retention job:\n" + _listing(lines),
        )


def smoke_check(inv: config.Inventory, settings) -> None:
    """The plan's daily smoke check: pull a recent image from Forgejo as the puller and verify every byte."""
    from phasegate import integrity
    from phasegate.forgejo import Forgejo
    from phasegate.oci import RegistryClient

    f = inv.forgejo
    with Forgejo.from_inventory(inv, settings, user="puller") as api:
        tagged = [v for v in api.versions() if not v.untagged]
    if not tagged:
        raise GateFailed(expected=f"at least one tagged image under {f.host}/{f.owner}",
                         seen="no data: the package API lists no tagged container version",
                         where=f"GET {f.url}/api/v1/packages/{f.owner}?type=container")
    newest = max(tagged, key=lambda v: (v.created_at, v.id))
    repo = f"{f.owner}/{newest.name}"
    with RegistryClient.from_inventory(inv, registry="forgejo", user="puller") as client:
        result = integrity.check_image(client, repo, newest.version, mode="verify")
    if not result.ok:
        raise GateFailed(
            expected=f"{f.host}/{repo}:{newest.version} pulls with every manifest and blob intact",
            seen=f"{len(result.broken)} broken reference(s): {result.broken[0].line()}",
            where=f"{f.host}/{result.broken[0].where}",
            evidence=f"{result.summary()}\n" + _listing([b.line() for b in result.broken]),
        )
