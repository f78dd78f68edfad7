"""Phase 2, the bake: its window and the exit criteria, judged over the history the real environment keeps.

Sources, each the real environment's (docs/inventory.md, "Bake signals"):
- Prometheus: only series the real scrape config keeps (the integrity probe's gauges via the
  Pushgateway, cAdvisor's working set and OOM events, and its containers' `image` for the projects'
  workloads (phasegate.bake_images), kube-state-metrics' limits, restarts, Jobs and the CronJob's last
  success, the kubelet's volume stats);
- Loki: the retention job's own log lines (`Summary:`, `deleted`, `FAIL`): it pushes no metric;
- Uptime Kuma: the external `/api/healthz` monitor's heartbeats.

Every criterion reads raw samples / lines / beats, so a red verdict names the query, the window and the
offending samples with their times. A needed series with no data, or with a hole longer than the
inventory's tolerance anywhere in the window, is red ("no data", naming the hole's start and end).

A window still open is judged so far ([start, now]): a violation seen so far is red; a criterion with
no violation is `Pending` (day N of 14 and what is still needed), never green, until the window is
complete. "Now" is Prometheus' own clock (`time()`), so the lab and production run the same code.

Each judgement leaves its chart data (`CriterionData`) on `BakeJudge.data[name]` and on the raised
verdict (`criterion_data`), for the report.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, TypeVar

from phasegate import config, units
from phasegate.prometheus import Prometheus, Result, Sample, iso
from phasegate.verdict import GateFailed, NotJudged, Pending

if TYPE_CHECKING:
    from phasegate.forgejo import Forgejo
    from phasegate.loki import Loki
    from phasegate.oci import RegistryClient
    from phasegate.uptime_kuma import UptimeKuma

UTC = dt.UTC
DAY = 86400
MAX_LISTED = 12  # offending samples listed in a verdict (the rest are counted)
SUMMARY = re.compile(r"^Summary: kept=(\d+) to_delete=(\d+) dry_run=(\S+)")  # cleanup.sh:109 @5d22b449
DELETED = re.compile(r"^  deleted (\S+)")  # cleanup.sh:100
FAIL = re.compile(r"^  FAIL (\S+) HTTP (\d+)")  # cleanup.sh:102 (the job still exits 0)
NO_FORGEJO_IMAGE = "no Forgejo image before the cutover"  # phasegate.bake_images.CRITERION


@dataclass(frozen=True)
class BakeWindow:
    start: float  # unix seconds, 00:00 UTC of the bake start date
    end: float  # start + days
    now: float  # Prometheus' clock when the window was computed
    days: int

    @classmethod
    def from_inventory(cls, bake: config.Bake, now: float) -> BakeWindow:
        start = dt.datetime.combine(bake.start, dt.time(0, 0), UTC).timestamp()
        return cls(start=start, end=start + bake.days * DAY, now=now, days=bake.days)

    @property
    def complete(self) -> bool:
        return self.now >= self.end

    @property
    def until(self) -> float:
        """The end of what can be judged: the window's end, or now while it is open."""
        return min(self.end, self.now)

    @property
    def today(self) -> int:
        return self.day_of(self.until)

    def day_start(self, n: int) -> float:
        return self.start + n * DAY

    def day_of(self, t: float) -> int:
        return int((t - self.start) // DAY)

    def day(self, t: float) -> str:
        return f"day {self.day_of(t)} ({iso(t)[:10]})"

    def so_far(self) -> str:
        return f"day {self.today} of {self.days} (judged {iso(self.start)} .. {iso(self.until)})"

    def __str__(self) -> str:
        return f"{iso(self.start)} .. {iso(self.end)} ({self.days} days)"


@dataclass
class Threshold:
    value: float
    label: str


@dataclass
class CriterionData:
    """What a criterion judged, for charts: every series it read, its threshold, the window, now, the
    offending samples and the holes. Plain data (unix seconds); `to_json()` for the report."""

    criterion: str
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    threshold: Threshold | None = None
    window_start: float = 0.0
    window_end: float = 0.0
    now: float = 0.0
    offending: list[tuple[float, float]] = field(default_factory=list)
    holes: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> dict:
        # by hand, not dataclasses.asdict: a 14-day series is thousands of points, and asdict deep-copies each
        def points(ps: list[tuple[float, float]]) -> list[list[float]]:
            return [[t, v] for t, v in ps]

        return {"criterion": self.criterion, "series": {k: points(v) for k, v in self.series.items()},
                "threshold": None if self.threshold is None else {"value": self.threshold.value,
                                                                  "label": self.threshold.label},
                "window_start": self.window_start, "window_end": self.window_end, "now": self.now,
                "offending": points(self.offending), "holes": points(self.holes)}


def _listing(items: list[str]) -> str:
    shown = items[:MAX_LISTED]
    more = len(items) - len(shown)
    return "\n".join(f"  {line}" for line in shown) + (f"\n  (+{more} more)" if more > 0 else "")


def holes_in(times: list[float], start: float, end: float, tolerance: float) -> list[tuple[float, float]]:
    """Gaps longer than `tolerance` between consecutive times, and at either edge of [start, end]."""
    ts = sorted(t for t in times if start - tolerance <= t <= end + tolerance)
    if not ts:
        return [(start, end)]
    out = []
    edges = [start] + ts + [end]
    for a, b in zip(edges, edges[1:], strict=False):
        if b - a > tolerance:
            out.append((a, b))
    return out


def _holes_text(holes: list[tuple[float, float]]) -> str:
    return ", ".join(f"no sample from {iso(a)} to {iso(b)}" for a, b in holes)


def _runs_of(samples: list[Sample], step: float) -> list[tuple[Sample, Sample, int]]:
    """Consecutive samples (no gap above `step`) grouped: (first, last, count)."""
    out: list[tuple[Sample, Sample, int]] = []
    for x in samples:
        if out and x.t - out[-1][1].t <= step:
            out[-1] = (out[-1][0], x, out[-1][2] + 1)
        else:
            out.append((x, x, 1))
    return out


@dataclass
class RetentionRun:
    job_name: str
    started: float
    failed: bool
    succeeded: bool  # the CronJob's last-successful time moved to this run
    pod: str = ""
    summary: tuple[int, int, bool] | None = None  # kept, to_delete, dry_run (None = no Summary line in Loki)
    summary_at: float | None = None
    deleted: int = 0
    fails: list[str] = field(default_factory=list)  # "name:ver HTTP 403 @ time"

    @property
    def dry_run(self) -> bool | None:
        return None if self.summary is None else self.summary[2]

    def line(self, window: BakeWindow) -> str:
        state = "failed" if self.failed else ("succeeded" if self.succeeded else "not finished")
        if self.summary is None:
            log = "no Summary line in Loki"
        else:
            log = (f"Summary kept={self.summary[0]} to_delete={self.summary[1]} "
                   f"dry_run={'true' if self.summary[2] else 'false'}, {self.deleted} deleted")
            if self.fails:
                log += f", {len(self.fails)} FAIL"
        return f"{self.job_name}: started {iso(self.started)} ({window.day(self.started)}), {state}, {log}"


@dataclass
class BakeJudge:
    """Judges the bake criteria of one inventory against Prometheus, Loki and Uptime Kuma."""

    prom: Prometheus
    inv: config.Inventory
    window: BakeWindow
    loki: Loki | None = None
    kuma: Callable[[], UptimeKuma] | None = None  # opens one (it needs its password: opened on use)
    data: dict[str, CriterionData] = field(default_factory=dict)
    _runs: list[RetentionRun] | None = field(default=None, repr=False)

    @classmethod
    def connect(cls, prom: Prometheus, inv: config.Inventory, loki: Loki | None = None,
                kuma: Callable[[], UptimeKuma] | None = None) -> BakeJudge:
        return cls(prom, inv, BakeWindow.from_inventory(inv.bake, prom.now()), loki, kuma)

    # -- queries ---------------------------------------------------------------
    def _values(self, **extra) -> dict:
        m, r = self.inv.metrics, self.inv.retention
        values = {"instance": m.forgejo_instance, "namespace": self.inv.forgejo.namespace,
                  "container": self.inv.forgejo.container, "cronjob": r.cronjob, "alert": m.failure_alert,
                  "pvc": self.inv.bake.pvc}
        values.update(extra)
        return values

    def promql(self, name: str, **extra) -> str:
        return Template(getattr(self.inv.metrics.queries, name)).substitute(self._values(**extra))

    def samples(self, promql: str, start: float | None = None, end: float | None = None) -> Result:
        return self.prom.raw_samples(promql, self.window.start if start is None else start,
                                     self.window.until if end is None else end)

    def where(self, promql: str) -> str:
        return f"PromQL {promql} over {self.window}"

    def _tolerance(self) -> float:
        return self.inv.bake.max_hole_minutes * 60

    def _new_data(self, name: str, threshold: Threshold | None = None) -> CriterionData:
        d = CriterionData(name, threshold=threshold, window_start=self.window.start, window_end=self.window.end,
                          now=self.window.now)
        self.data[name] = d
        return d

    def require_whole_window(self, result: Result, what: str, data: CriterionData | None = None,
                             tolerance: float | None = None) -> None:
        """The series must have samples across the window judged so far, with no hole longer than the
        tolerance: absence (or a gap) proves nothing, so it is "no data", never a pass."""
        tol = self._tolerance() if tolerance is None else tolerance
        if result.empty:
            if data is not None:
                data.holes.append((self.window.start, self.window.until))
            raise GateFailed(
                expected=f"{what} present for the whole bake window",
                seen="no data: Prometheus holds no sample of it in the window (a series that never existed, or "
                     "one the real scrape config drops, proves nothing)",
                where=self.where(result.promql))
        holes = holes_in([x.t for _, x in result.samples()], self.window.start, self.window.until, tol)
        if holes:
            if data is not None:
                data.holes += holes
            raise GateFailed(
                expected=f"{what} present for the whole bake window, no gap longer than {tol / 60:.0f} min",
                seen=f"no data for part of the window: {len(holes)} hole(s), {_holes_text(holes)}",
                where=self.where(result.promql),
                evidence="holes:\n" + _listing([f"{iso(a)} .. {iso(b)} ({(b - a) / 3600:.1f} h)" for a, b in holes]))

    def _verdict(self, data: CriterionData, *, expected: str, where: str, bad: list[str], seen: str = "",
                 still_needed: str = "", extra: str = "") -> None:
        """Red with the offending samples; else, while the window is open, Pending with what is still needed."""
        if bad:
            raise _with(GateFailed(expected=expected, seen=seen or f"{len(bad)} offending sample(s), first: {bad[0]}",
                                   where=where, evidence=f"offending samples:\n{_listing(bad)}{extra}"), data)
        if not self.window.complete:
            need = still_needed or f"the rest of the window, to {iso(self.window.end)}"
            raise _with(Pending(f"{data.criterion}: no violation so far; {self.window.so_far()}; "
                                f"still needed: {need}"), data)

    # -- no image= line changes (phasegate.bake_images) -------------------------------
    def no_forgejo_images(self, max_gap_minutes: int | None = None) -> None:
        """No container of a project workload ran an image from Forgejo in the window (cAdvisor's `image`);
        a Deployment unseen for longer than `max_gap_minutes` (default: [bake] max_hole_minutes) is no data."""
        from phasegate import bake_images

        _opt_out(NO_FORGEJO_IMAGE, self.inv.bake.not_judged.get(NO_FORGEJO_IMAGE),
                 lambda: bake_images.judge(self, max_gap_minutes))()

    # -- integrity ---------------------------------------------------------------
    def zero_integrity_failures(self) -> None:
        name = "zero integrity failures and alerts"
        data = self._new_data(name, Threshold(0, "failures > 0"))
        q = self.promql("failures")
        res = self.samples(q)
        data.series = _series(res)
        self.require_whole_window(res, "the Forgejo integrity probe's failures metric", data)
        step = self._tolerance()
        bad, counted, fired = [], 0, 0
        for s in res.series:
            hits = [x for x in s.samples if x.v > 0]
            data.offending += [(x.t, x.v) for x in hits]
            counted += len(hits)
            for a, b, n in _runs_of(hits, step):
                bad.append(f"{s.name} = {a.v:g} from {iso(a.t)} to {iso(b.t)} ({n} sample(s)) @ {iso(a.t)}")
        qa = self.promql("alert", alert=self.inv.metrics.failure_alert)
        for s in self.samples(qa).series:
            hits = [x for x in s.samples if x.v > 0]
            fired += len(hits)
            for a, b, _n in _runs_of(hits, step):
                bad.append(f"{self.inv.metrics.failure_alert} firing from {iso(a.t)} to {iso(b.t)} @ {iso(a.t)}")
        seen = "; ".join(p for p in (f"{counted} sample(s) with failures > 0" if counted else "",
                                      f"{self.inv.metrics.failure_alert} firing in {fired} sample(s)" if fired else "")
                         if p)
        self._verdict(data, expected=f"zero integrity failures and zero {self.inv.metrics.failure_alert} alerts "
                                     f"for {self.inv.metrics.forgejo_instance}",
                      where=f"PromQL {q} and {qa} over {self.window}", bad=bad,
                      seen=f"{seen}; first at {min(b.split(' @ ')[-1] for b in bad)}" if bad else "")

    def probe_never_stale(self) -> None:
        name = "probe never stale"
        limit = self.inv.metrics.probe_max_age_minutes * 60
        data = self._new_data(name, Threshold(limit, f"last run older than {limit / 60:.0f} min"))
        q = self.promql("last_run")
        res = self.samples(q)
        data.series = {s.name: [(x.t, x.t - x.v) for x in s.samples] for s in res.series}  # age of the last run
        self.require_whole_window(res, "the Forgejo integrity probe's last-run timestamp", data)
        bad = []
        for s in res.series:
            for x in s.samples:
                age = x.t - x.v
                if age > limit:
                    bad.append(f"{s.name} = {iso(x.v)} @ {iso(x.t)}: last run {age / 60:.0f} min old")
                    data.offending.append((x.t, age))
        self._verdict(data, expected=f"the probe never older than {limit / 60:.0f} min across the window",
                      where=self.where(q), bad=bad,
                      seen=f"stale in {len(bad)} sample(s), first at {bad[0].split(' @ ')[-1].split(':')[0]}"
                      if bad else "")

    # -- forgejo memory ------------------------------------------------------------
    def never_near_oom(self) -> None:
        name = "forgejo never near OOM"
        ratio = self.inv.bake.near_oom_ratio
        data = self._new_data(name, Threshold(ratio, f"working set at {ratio:.0%} of the memory limit"))
        qw, ql, qr, qo = (self.promql(k) for k in ("working_set", "memory_limit", "restarts", "oom_events"))
        ws, lim, restarts, ooms = (self.samples(q) for q in (qw, ql, qr, qo))
        self.require_whole_window(ws, "the forgejo container's working set (cAdvisor)", data)
        self.require_whole_window(lim, "the forgejo container's memory limit (kube-state-metrics)", data)
        self.require_whole_window(restarts, "the forgejo container's restart counter (kube-state-metrics)", data)
        limits: dict[str, list[Sample]] = {}
        for s in lim.series:
            limits.setdefault(s.label("pod"), []).extend(s.samples)
        bad = []
        ratios: dict[str, list[tuple[float, float]]] = {}
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
                if limit <= 0:
                    continue
                ratios.setdefault(f"working_set/limit {{pod=\"{s.label('pod')}\"}}", []).append((x.t, x.v / limit))
                if x.v / limit >= ratio:
                    bad.append(f"{s.name} = {x.v / 2**20:.0f}Mi of {limit / 2**20:.0f}Mi "
                               f"({100 * x.v / limit:.0f}%) @ {iso(x.t)}")
                    data.offending.append((x.t, x.v / limit))
        # An OOM kill between two scrapes leaves no working-set sample above the ratio, and cAdvisor's
        # per-container counter can miss it (the killed container's cgroup goes with it). The restart
        # counter always moves: every restart in the window is red, named OOMKilled when cAdvisor saw it.
        # (kube_pod_container_status_last_terminated_reason, which would say why, is dropped: PCV:468.)
        oom_times = []
        for s in ooms.series:
            prev = None
            for x in s.samples:
                # a rise, or a container first seen mid-window already counting a kill
                if (prev is not None and x.v > prev.v) or (prev is None and x.v > 0
                                                           and x.t > self.window.start + self._tolerance()):
                    oom_times.append(x.t)
                prev = x
        oom_times.sort()
        tol = self._tolerance()
        explained = set()
        for s in restarts.series:
            for a, b in zip(s.samples, s.samples[1:], strict=False):
                if b.v > a.v:
                    seen = [t for t in oom_times if a.t - tol <= t <= b.t + tol]
                    explained.update(seen)
                    why = ("OOMKilled: container_oom_events_total rose at " + iso(seen[0]) if seen else
                           "no OOM event seen (cAdvisor can miss a kill between scrapes; a restart is red either way)")
                    bad.append(f"{s.name} rose {a.v:.0f} -> {b.v:.0f} between {iso(a.t)} and {iso(b.t)}: {why}")
                    data.offending.append((b.t, b.v))
        for t in oom_times:
            if t not in explained:
                bad.append(f"container_oom_events_total rose @ {iso(t)} (an OOM kill inside the container)")
                data.offending.append((t, 1))
        data.series = {**ratios, **_series(restarts), **_series(ooms)}
        self._verdict(data, expected=f"forgejo never near OOM: working set below {ratio:.0%} of its limit, "
                                     "no OOM event, no restart",
                      where=f"PromQL {qw} / {ql}, {qr}, {qo} over {self.window}", bad=bad)

    # -- PVC headroom (issue 16: the PVC sat at its 50Gi autoresize cap) ----------------
    def pvc_headroom(self) -> None:
        name = "PVC headroom"
        b = self.inv.bake
        cap = float(units.quantity(b.pvc_storage_limit))
        data = self._new_data(name, Threshold(b.pvc_max_used_of_limit * cap,
                                              f"{b.pvc_max_used_of_limit:.0%} of the {b.pvc_storage_limit} autoresize cap"))
        qu, qc = self.promql("pvc_used"), self.promql("pvc_capacity")
        used, capacity = self.samples(qu), self.samples(qc)
        data.series = {**_series(used), **_series(capacity)}
        self.require_whole_window(used, f"the {b.pvc} PVC's used bytes (kubelet)", data)
        self.require_whole_window(capacity, f"the {b.pvc} PVC's capacity (kubelet)", data)
        bad = []
        for s, x in used.samples():
            if x.v >= b.pvc_max_used_of_limit * cap:
                bad.append(f"{s.name} = {x.v / 2**30:.1f}Gi ({x.v / cap:.0%} of the cap) @ {iso(x.t)}")
                data.offending.append((x.t, x.v))
        for s, x in capacity.samples():
            if x.v >= cap:
                bad.append(f"{s.name} = {x.v / 2**30:.1f}Gi: at the {b.pvc_storage_limit} autoresize cap, it can no "
                           f"longer grow @ {iso(x.t)}")
                data.offending.append((x.t, x.v))
        bad.sort(key=lambda line: line.rsplit(" @ ", 1)[-1])
        self._verdict(data, expected=f"the {b.pvc} PVC below {b.pvc_max_used_of_limit:.0%} of its "
                                     f"{b.pvc_storage_limit} autoresize cap and its capacity below the cap",
                      where=f"PromQL {qu}, {qc} over {self.window}", bad=bad)

    # -- retention -----------------------------------------------------------------
    def retention_runs(self) -> list[RetentionRun]:
        """Every scheduled run of the retention CronJob that started inside the window judged so far:
        start times and failures from kube-state-metrics, success from the CronJob's last-successful
        time, DRY_RUN / deletions / DELETE failures from the job's own lines in Loki."""
        if self._runs is not None:
            return self._runs
        w = self.window
        # Job objects live one hour after they finish (ttlSecondsAfterFinished 3600): read beyond the edges
        start, end = w.start - DAY, min(w.end + DAY, w.now)
        started: dict[str, float] = {}
        for s, x in self.samples(self.promql("job_start"), start, end).samples():
            started[s.label("job_name")] = x.v
        failed = {s.label("job_name") for s, x in self.samples(self.promql("job_failed"), start, end).samples()
                  if x.v > 0}
        successes = sorted({x.v for _, x in self.samples(self.promql("cronjob_last_success"), start, end).samples()})
        runs = []
        ordered = sorted((t, n) for n, t in started.items())
        for i, (t, job_name) in enumerate(ordered):
            if not (w.start <= t < w.until):
                continue
            nxt = ordered[i + 1][0] if i + 1 < len(ordered) else float("inf")
            ok = job_name not in failed and any(t <= v < nxt for v in successes)
            runs.append(RetentionRun(job_name, t, job_name in failed, ok))
        if self.loki is not None:
            self._read_logs(self.loki, runs)
        self._runs = runs
        return runs

    def cleanup_logql(self) -> str:
        r = self.inv.retention
        return Template(self.inv.loki.cleanup_lines).substitute(namespace=r.namespace, container=r.container)

    def _read_logs(self, loki: Loki, runs: list[RetentionRun]) -> None:
        w = self.window
        lines = loki.lines(self.cleanup_logql(), w.start - DAY, min(w.end + DAY, w.now))
        for run in runs:
            own = [x for x in lines if x.label("pod").startswith(run.job_name + "-")]
            if own:
                run.pod = own[0].label("pod")
            for x in own:
                m = SUMMARY.match(x.line)
                if m:
                    run.summary = (int(m.group(1)), int(m.group(2)), m.group(3) == "true")
                    run.summary_at = x.t
                elif DELETED.match(x.line):
                    run.deleted += 1
                else:
                    f = FAIL.match(x.line)
                    if f:
                        run.fails.append(f"{f.group(1)} HTTP {f.group(2)} @ {iso(x.t)}")

    def _runs_where(self) -> str:
        return (f"PromQL {self.promql('job_start')}, {self.promql('job_failed')}, "
                f"{self.promql('cronjob_last_success')} over {self.window}")

    def _logs_where(self) -> str:
        return f"LogQL {self.cleanup_logql()} over {self.window}"

    def retention_succeeded_enough(self) -> None:
        name = "retention succeeded enough"
        need = self.inv.bake.min_retention_runs
        data = self._new_data(name, Threshold(need, f"{need} successful runs"))
        w = self.window
        # the CronJob's series exists all along (unlike its Jobs'): a hole in it is a hole in what KSM saw
        self.require_whole_window(self.samples(self.promql("cronjob_last_success")),
                                  "the retention CronJob's last-successful time (kube-state-metrics)", data)
        runs = self.retention_runs()
        data.series = {"retention run succeeded": [(r.started, 1.0 if r.succeeded else 0.0) for r in runs]}
        ok = [r for r in runs if r.succeeded]
        days_ok = {w.day_of(r.started) for r in ok}
        elapsed = [d for d in range(w.days) if w.day_start(d) + DAY <= w.until]
        missing = [d for d in elapsed if d not in days_ok]
        bad = [r.line(w) for r in runs if r.failed]
        bad += [f"day {d} ({iso(w.day_start(d))[:10]}): no successful run" for d in missing
                if not any(w.day_of(r.started) == d and r.failed for r in runs)]
        for r in runs:
            if r.failed:
                data.offending.append((r.started, 0.0))
        # a day that passed without a successful run can never be made up while the runs are daily
        possible = len(ok) + (0 if w.complete else w.days - len(elapsed))
        if possible < need:
            raise _with(GateFailed(
                expected=f"the retention CronJob {self.inv.retention.namespace}/{self.inv.retention.cronjob} "
                         f"succeeded at least {need} times in the window",
                seen=f"{len(ok)} successful run(s) of {len(runs)}"
                     + ("" if w.complete else f" by {w.day(w.until)}: {need} can no longer be reached"),
                where=self._runs_where(), evidence=f"offending runs / days:\n{_listing(bad)}"), data)
        self._verdict(data, expected=f"at least {need} successful runs", where=self._runs_where(), bad=[],
                      still_needed=f"{need - len(ok)} more successful run(s) ({len(ok)} of {need} so far)")

    def dry_run_flipped(self) -> None:
        name = "DRY_RUN flipped"
        flip_day = self.inv.bake.dry_run_flip_day
        w = self.window
        flip = w.day_start(flip_day)
        data = self._new_data(name, Threshold(flip, f"DRY_RUN=false from day {flip_day}"))
        runs = [r for r in self.retention_runs() if r.succeeded]
        data.series = {"dry_run": [(r.started, float(r.dry_run)) for r in runs if r.dry_run is not None],
                       "deleted": [(r.started, float(r.deleted)) for r in runs]}
        where = f"{self._logs_where()} for each run of {self._runs_where()}"
        if not runs and w.until - w.start > DAY:
            raise _with(GateFailed(expected="retention runs to judge DRY_RUN by",
                                   seen="no data: no successful run in the window", where=where), data)
        if self.loki is None:
            raise _with(GateFailed(expected="the retention job's log lines", seen="no Loki in the inventory",
                                   where=where), data)
        nolog = [r for r in runs if r.summary is None]
        if nolog:
            data.holes += [(r.started, r.started + 3600) for r in nolog]
            raise _with(GateFailed(
                expected="a Summary line in Loki for every successful retention run",
                seen=f"no data: Loki holds no Summary line of {len(nolog)} run(s), first {nolog[0].job_name} "
                     f"started {iso(nolog[0].started)}",
                where=where, evidence="runs without their log:\n" + _listing([r.line(w) for r in nolog])
                + self._declared_text(nolog)), data)
        bad = []
        for r in runs:
            if r.started >= flip and r.dry_run:
                bad.append(r.line(w) + f" (day >= {flip_day}: must delete)")
                data.offending.append((r.started, 1.0))
            elif r.started < flip and not r.dry_run:
                bad.append(r.line(w) + f" (day < {flip_day}: must be a dry run)")
                data.offending.append((r.started, 0.0))
            for f in r.fails:
                bad.append(f"{r.job_name}: FAIL {f} (the DELETE was refused; the job still exits 0)")
                data.offending.append((r.started, 0.0))
        declared = self.declared_dry_run()
        deleting = [r for r in runs if r.started >= flip and r.dry_run is False and r.deleted > 0]
        expected = (f"DRY_RUN=true before day {flip_day} ({iso(flip)}), false from then on, "
                    "deleting runs observed afterwards, no DELETE refused")
        if not bad and not deleting and (w.complete or w.until >= flip + DAY):
            bad = [f"no run from day {flip_day} on deleted anything"]
        self._verdict(data, expected=expected, where=where, bad=bad,
                      extra=self._declared_text([r for r in runs if r.started >= flip or not r.dry_run]) if declared else "",
                      seen=f"{len(bad)} run(s) off plan, first: {bad[0]}" if bad else "",
                      still_needed=(f"the flip to DRY_RUN=false on day {flip_day} ({iso(flip)[:10]}) and deleting "
                                    f"runs after it" if w.until < flip else "deleting runs on the remaining days"))

    def declared_dry_run(self) -> list:
        """The DRY_RUN local's history in the infra repository checkout ([] without one): what was declared,
        to set beside what the job's lines show (never judged on its own: a commit is not a deployment)."""
        from phasegate import infra_repo

        r, spec = self.inv.retention, self.inv.infra_repo
        root = Path(spec.path)
        if not root.is_absolute() and self.inv.source:
            root = Path(self.inv.source).resolve().parent / root
        try:
            return infra_repo.declared_history(root, r.terraform_file, r.dry_run_local)
        except Exception:  # evidence only: a broken checkout must not hide the verdict
            return []

    def _declared_text(self, runs: list[RetentionRun]) -> str:
        history = self.declared_dry_run()
        if not history:
            return ""
        lines = []
        for run in runs:
            before = [d for d in history if d.t <= run.started]
            if before:
                d = before[-1]
                lines.append(f"{run.job_name} ({iso(run.started)}): {self.inv.retention.dry_run_local} = {d.value} "
                             f"declared since {iso(d.t)} ({d.commit})")
        return ("\ninfra repository " + self.inv.retention.terraform_file + " (declared, not observed):\n"
                + _listing(lines)) if lines else ""

    def sunday_gc_cycle(self) -> None:
        name = "Sunday GC cycle"
        w = self.window
        weekday = config.weekday_number(self.inv.bake.gc_weekday)
        day_name = self.inv.bake.gc_weekday.capitalize()
        data = self._new_data(name)
        days = [d for d in range(w.days) if dt.datetime.fromtimestamp(w.day_start(d), UTC).weekday() == weekday]
        runs = self.retention_runs()
        cycles = [r for r in runs if w.day_of(r.started) in days and r.succeeded and r.dry_run is False
                  and r.deleted > 0 and r.summary_at is not None and w.day_of(r.summary_at) == w.day_of(r.started)]
        data.series = {"deleting run on a " + day_name: [(r.started, float(r.deleted)) for r in cycles]}
        if cycles:
            return self._verdict(data, expected="", where=self._runs_where(), bad=[])
        ahead = [d for d in days if w.day_start(d) + DAY > w.until]
        full = [f"day {d} = {iso(w.day_start(d))[:10]}" for d in days]
        on_day = [r.line(w) for r in runs if w.day_of(r.started) in days]
        if ahead and not w.complete:
            raise _with(Pending(f"{name}: no {day_name} GC cycle yet; {w.so_far()}; still needed: a deleting "
                                f"retention run on a {day_name} ({', '.join(f'day {d}' for d in ahead)})"), data)
        raise _with(GateFailed(
            expected=f"at least one full {day_name} GC cycle inside the window: a deleting retention run "
                     f"that started and completed on a {day_name}",
            seen=f"no {day_name} GC cycle: {day_name}s in the window: {', '.join(full) or 'none'}; "
                 f"runs on them: {len(on_day)}",
            where=f"{self._runs_where()}; {self._logs_where()}",
            evidence=f"runs on {day_name}s:\n{_listing(on_day)}" if on_day else ""), data)

    # -- healthz (Uptime Kuma) ------------------------------------------------------------
    def healthz_green_over_window(self) -> None:
        name = "healthz green over the window"
        k = self.inv.uptime_kuma
        w = self.window
        data = self._new_data(name, Threshold(1, "UP"))
        where = f"Uptime Kuma {k.url} monitor {k.healthz_monitor!r} (getMonitorBeats) over {w}"
        if self.kuma is None:
            raise _with(GateFailed(expected="the healthz monitor's heartbeats", seen="no Uptime Kuma client",
                                   where=where), data)
        with self.kuma() as client:
            monitor, beats = client.history(k.healthz_monitor, since=w.start, now=w.now)
        beats = [b for b in beats if b.t <= w.until]
        data.series = {k.healthz_monitor: [(b.t, float(b.status)) for b in beats]}
        if monitor.url != self.inv.metrics.healthz_instance:
            raise _with(GateFailed(expected=f"the monitor targets {self.inv.metrics.healthz_instance}",
                                   seen=f"it targets {monitor.url!r}", where=where), data)
        holes = holes_in([b.t for b in beats], w.start, w.until, k.max_beat_gap_minutes * 60)
        if holes:
            data.holes += holes
            raise _with(GateFailed(
                expected=f"heartbeats across the window, no gap longer than {k.max_beat_gap_minutes} min",
                seen=f"no data for part of the window: {len(holes)} hole(s), {_holes_text(holes)}", where=where,
                evidence="holes:\n" + _listing([f"{iso(a)} .. {iso(b)} ({(b - a) / 3600:.1f} h)" for a, b in holes])),
                data)
        bad = []
        for b in beats:
            if not b.up:
                bad.append(f"{b.state} @ {iso(b.t)}: {b.msg}")
                data.offending.append((b.t, float(b.status)))
        self._verdict(data, expected="the /api/healthz monitor UP in every heartbeat of the window", where=where,
                      bad=bad, seen=f"not UP in {len(bad)} heartbeat(s), first at {bad[0].split(' @ ')[1].split(':')[0]}"
                      if bad else "")

    # -- exit --------------------------------------------------------------------------
    def bake_long_enough(self) -> None:
        name = "bake long enough"
        b = self.inv.bake
        last = dt.datetime.combine(b.last_dual_push, dt.time(0, 0), UTC).timestamp()
        now = self.window.now
        data = self._new_data(name, Threshold(b.days * DAY, f"{b.days} days"))
        if now - last < b.days * DAY and self.window.complete:
            raise _with(GateFailed(
                expected=f"at least {b.days} days since the last project started dual-pushing",
                seen=f"{(now - last) / DAY:.1f} days since {b.last_dual_push.isoformat()} (now {iso(now)})",
                where="inventory [bake] last_dual_push against Prometheus time()"), data)
        if not self.window.complete:
            raise _with(Pending(f"{name}: {self.window.so_far()}; still needed: "
                                f"{(self.window.end - now) / DAY:.1f} more days, to {iso(self.window.end)} "
                                f"(inventory [bake] start/days against Prometheus time())"), data)

    def criteria(self) -> dict[str, Callable[[], None]]:
        """Every history-judged exit criterion by name, in the order of the plan (opt-outs: NotJudged)."""
        checks = {
            NO_FORGEJO_IMAGE: self.no_forgejo_images,
            "zero integrity failures and alerts": self.zero_integrity_failures,
            "probe never stale": self.probe_never_stale,
            "forgejo never near OOM": self.never_near_oom,
            "PVC headroom": self.pvc_headroom,
            "retention succeeded enough": self.retention_succeeded_enough,
            "Sunday GC cycle": self.sunday_gc_cycle,
            "DRY_RUN flipped": self.dry_run_flipped,
            "healthz green over the window": self.healthz_green_over_window,
            "bake long enough": self.bake_long_enough,
        }
        return {name: _opt_out(name, self.inv.bake.not_judged.get(name), check) for name, check in checks.items()}


def _opt_out(name: str, reason: str | None, check: Callable[[], None]) -> Callable[[], None]:
    if not reason:
        return check

    def not_judged() -> None:
        raise NotJudged(f"{name}: {reason} (inventory [bake] not_judged)")

    return not_judged


_Verdict = TypeVar("_Verdict", bound=Exception)


def _with(exc: _Verdict, data: CriterionData) -> _Verdict:
    setattr(exc, "criterion_data", data)  # noqa: B010 (an attribute the verdict classes do not declare)
    return exc


def _series(res: Result) -> dict[str, list[tuple[float, float]]]:
    return {s.name: [(x.t, x.v) for x in s.samples] for s in res.series}


@dataclass
class LiveClients:
    """The clients the live exit criteria judge with, handed in (as `dual_push` is handed its own):
    Forgejo's package API and registry as the puller, and its health endpoint without a token."""

    packages: Forgejo
    registry: RegistryClient
    public: Forgejo

    @classmethod
    def from_inventory(cls, inv: config.Inventory, settings) -> LiveClients:
        from phasegate.forgejo import Forgejo
        from phasegate.oci import RegistryClient

        f = inv.forgejo
        return cls(Forgejo.from_inventory(inv, settings, user="puller"),
                   RegistryClient.from_inventory(inv, registry="forgejo", user="puller"),
                   Forgejo.connect(f.url, None, settings, owner=f.owner, ca_bundle=f.ca_bundle))

    def close(self) -> None:
        for c in (self.packages, self.registry, self.public):
            c.close()


# the live exit criteria, by the names their own scenarios keep their verdicts under (CriterionVerdicts)
HEALTHZ_NOW, KEEP_SET_SAFE, DAILY_SMOKE = "healthz green now", "retention keep-set safe", "daily smoke check"


def exit_checks(judge: BakeJudge, inv: config.Inventory, live: LiveClients) -> dict[str, Callable[[], None]]:
    """Every Phase 2 exit criterion: the history-judged ones and the live ones."""
    checks = dict(judge.criteria())
    checks[HEALTHZ_NOW] = lambda: healthz_now(inv, live.public)
    checks[KEEP_SET_SAFE] = lambda: retention_safe(inv, live.packages, live.registry)
    checks[DAILY_SMOKE] = lambda: smoke_check(inv, live.packages, live.registry)
    return checks


@dataclass
class CriterionVerdicts:
    """This run's verdict of each criterion its own scenario judged (None: green) and when: the exit verdict of
    the same run takes them from here rather than judging them again, so the two never disagree about one
    criterion, and judges now only what no scenario of the run judged (a run of the exit verdict alone)."""

    seen: dict[str, tuple[Exception | None, dt.datetime]] = field(default_factory=dict)
    data: dict[str, CriterionData] = field(default_factory=dict)  # the chart data each was judged with

    def judge(self, name: str, check: Callable[[], None],
              data: Callable[[], CriterionData | None] | None = None) -> None:
        """Judge `name` now and keep its verdict and chart data (a Broken verdict is not kept: the exit
        verdict tries again)."""
        try:
            check()
        except (GateFailed, Pending, NotJudged) as e:
            self._keep(name, e, data)
            raise
        self._keep(name, None, data)

    def _keep(self, name: str, verdict: Exception | None, data: Callable[[], CriterionData | None] | None) -> None:
        self.seen[name] = (verdict, dt.datetime.now(dt.UTC))
        judged = data() if data else None
        if judged is not None:
            self.data[name] = judged

    def source(self, name: str) -> str:
        at = self.seen.get(name)
        return f"its own scenario at {at[1]:%H:%M:%S} UTC" if at else "judged now"

    def replay(self, name: str, check: Callable[[], None]) -> None:
        """The kept verdict of `name` (raised again when it was not green), else `check` judged now."""
        if name not in self.seen:
            check()
            return
        e = self.seen[name][0]
        if e is not None:
            raise e


def judge_criterion(judge: BakeJudge, name: str, check: Callable[[], None] | None = None,
                    verdicts: CriterionVerdicts | None = None) -> None:
    """One exit criterion by its name (`BakeJudge.criteria()`, or `check` where the scenario text gives the
    criterion's numbers), its chart data (`CriterionData`) attached to the report as "criterion-data"
    whatever the verdict; kept in `verdicts` for this run's exit verdict."""
    from phasegate import report

    if check is None:
        checks = judge.criteria()
        if name not in checks:
            raise KeyError(f"unknown bake criterion {name!r}; known: {', '.join(checks)}")
        check = checks[name]

    def judged() -> None:
        try:
            check()
        finally:  # the chart data of what was judged, for the report
            if name in judge.data:
                report.attach_criterion_data(judge.data[name])

    if verdicts is None:
        judged()
    else:
        verdicts.judge(name, judged, lambda: judge.data.get(name))


def exit_verdict(checks: dict[str, Callable[[], None]], verdicts: CriterionVerdicts | None = None,
                 judged: dict[str, CriterionData] | None = None) -> None:
    """Every criterion (from its own scenario of this run when `verdicts` kept it, else judged now): red with all
    the red ones; else Pending while any is pending (the exit is never green before the window is complete);
    else green. Where each verdict came from is attached to the report, and the chart data each verdict was
    judged with: a kept verdict's, or for one judged here its judge's (`judged`, `BakeJudge.data`)."""
    from phasegate import report

    verdicts = verdicts or CriterionVerdicts()
    red, pending, sources = [], [], {}
    for name, check in checks.items():
        source, outcome = verdicts.source(name), "green"
        try:
            verdicts.replay(name, check)
        except GateFailed as e:
            red.append((name, e))
            outcome = "red"
        except (Pending, NotJudged) as e:
            pending.append((name, e))
            outcome = "pending" if isinstance(e, Pending) else "not judged"
        sources[name] = f"{outcome} ({source})"
        data = verdicts.data[name] if name in verdicts.data else (judged or {}).get(name)
        if data is not None:  # none for a criterion not judged (an opt-out) or one without a chart (the live ones)
            report.attach_criterion_data(data)
    report.attach_text("exit verdict: each criterion and where its verdict comes from",
                       "\n".join(f"{n}: {s}" for n, s in sources.items()))
    waiting = [(n, e) for n, e in pending if isinstance(e, Pending)]
    if red:
        raise GateFailed(
            expected="every bake exit criterion green",
            seen=f"{len(red)} red: {', '.join(n for n, _ in red)}"
                 + (f" ({len(waiting)} more still pending)" if waiting else ""),
            where="Phase 2 exit verdict",
            evidence="\n\n".join(f"[{n}] {sources[n]}\n{e.render()}" for n, e in red),
        )
    if waiting:
        raise Pending(f"the bake exit waits on {len(waiting)} pending criterion(s), nothing red so far:\n"
                      + "\n".join(f"  [{n}] {e}" for n, e in waiting))


def healthz_now(inv: config.Inventory, public: Forgejo) -> None:
    """Forgejo's own `/api/healthz` right now: 200 and status `pass`."""
    h = public.health()
    if not h.ok:
        raise GateFailed(expected='HTTP 200 with status "pass"',
                         seen=f"HTTP {h.http_status}, status {h.status!r}, failing checks: {', '.join(h.failing()) or 'none'}",
                         where=f"GET {inv.forgejo.url}/api/healthz")


def retention_safe(inv: config.Inventory, packages: Forgejo, registry: RegistryClient) -> None:
    """The forgejo-cleanup keep-set, computed from the live package list (`packages`, as the puller),
    orphans nothing a kept version needs (manifests read from `registry`)."""
    from phasegate import retention

    r, f = inv.retention, inv.forgejo
    versions = list(packages.versions())
    sets = retention.keep_sets(versions, keep_last_n=r.keep_last_n, always_keep=r.always_keep,
                               keep_substring=r.keep_substring)
    found = retention.orphans(registry, f.owner, sets)
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


def smoke_check(inv: config.Inventory, packages: Forgejo, registry: RegistryClient) -> None:
    """The plan's daily smoke check: pull a recent image from Forgejo as the puller (`packages` lists
    it, `registry` pulls it) and verify every byte."""
    from phasegate import integrity

    f = inv.forgejo
    tagged = [v for v in packages.versions() if not v.untagged]
    if not tagged:
        raise GateFailed(expected=f"at least one tagged image under {f.host}/{f.owner}",
                         seen="no data: the package API lists no tagged container version",
                         where=f"GET {f.url}/api/v1/packages/{f.owner}?type=container")
    newest = max(tagged, key=lambda v: (v.created_at, v.id))
    repo = f"{f.owner}/{newest.name}"
    result = integrity.check_image(registry, repo, newest.version, mode="verify")
    if not result.ok:
        raise GateFailed(
            expected=f"{f.host}/{repo}:{newest.version} pulls with every manifest and blob intact",
            seen=f"{len(result.broken)} broken reference(s): {result.broken[0].line()}",
            where=f"{f.host}/{result.broken[0].where}",
            evidence=f"{result.summary()}\n" + _listing([b.line() for b in result.broken]),
        )


def full_verify_weekly(inv: config.Inventory, registry: RegistryClient, now: float) -> None:
    """Once a week during the bake (inventory [bake] full_verify_weekday, by Prometheus' clock): the
    integrity check in verify mode over every Forgejo image (every tag, every manifest and blob byte),
    judged like the daily smoke check; the probe only HEADs the last five tags' children. Other days
    are Pending, naming the next run."""
    from phasegate import integrity

    f, b = inv.forgejo, inv.bake
    today = dt.datetime.fromtimestamp(now, UTC).date()
    weekday = config.weekday_number(b.full_verify_weekday)
    if today.weekday() != weekday:
        nxt = today + dt.timedelta(days=(weekday - today.weekday()) % 7)
        raise Pending(f"every byte, weekly: runs on {b.full_verify_weekday.capitalize()}s; next on {nxt.isoformat()} "
                      f"(today {today.isoformat()}; the daily smoke check covers the newest image meanwhile)")
    result = integrity.check_registry(registry, mode="verify")
    if not result.ok:
        raise GateFailed(
            expected=f"every image under {f.host} pulls with every manifest and blob intact (verify mode)",
            seen=f"{len(result.broken)} broken reference(s): {result.broken[0].line()}",
            where=f"{f.host}/{result.broken[0].where}",
            evidence=f"{result.summary()}\n" + _listing([b.line() for b in result.broken]),
        )
    if result.tags == 0:
        raise GateFailed(expected=f"images under {f.host} to verify", seen="no data: the catalog lists no tag",
                         where=f"{f.url}/v2/_catalog")
