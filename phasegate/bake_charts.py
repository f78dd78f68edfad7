"""INTERIM ADAPTER (swap at merge): chart data for the current bake criteria.

The bake criteria (phasegate.bake.BakeJudge) raise a verdict and return nothing; until they
hand back their own `phasegate.charts.CriterionData` (attached as "criterion-data"), this
module rebuilds it from the same PromQL, window and thresholds the judge uses. It reads
Prometheus again (read-only range reads) and never judges: the verdict stays the judge's.

`criterion_data(judge, name)` returns None for a criterion it cannot draw. Delete this module
(and `pytest_report.CriterionChartsFromJudge`) once the bake criteria attach their own data.
"""

from __future__ import annotations

from phasegate.bake import DAY, BakeJudge
from phasegate.charts import CriterionData, Threshold, holes_in
from phasegate.prometheus import Result


def _series(res: Result, value=lambda t, v: v) -> dict[str, list[tuple[float, float]]]:
    return {s.name: [(x.t, value(x.t, x.v)) for x in s.samples] for s in res.series}


def _holes(res: Result, judge: BakeJudge) -> list[tuple[float, float]]:
    w, tol = judge.window, judge._tolerance()
    end = min(w.end, w.now)
    ts = [(x.t, x.v) for _, x in res.samples()]
    return holes_in(ts, w.start, end, tol)


def _data(judge: BakeJudge, title: str, **kw) -> CriterionData:
    w = judge.window
    return CriterionData(window_start=w.start, window_end=w.end, now=w.now, title=title, **kw)


def criterion_data(judge: BakeJudge, name: str):
    """The judge's own data for `name` when it keeps it (`judge.data[name]`, anything with
    `to_json()`), else rebuilt here; None for a criterion this cannot draw."""
    own = getattr(judge, "data", None)
    if isinstance(own, dict) and name in own:
        return own[name]
    inv, w = judge.inv, judge.window
    if name == "zero integrity failures and alerts":
        res = judge.samples(judge.promql("failures"))
        alerts = judge.samples(judge.promql("alert", alert=inv.metrics.failure_alert))
        series = _series(res) | _series(alerts)
        bad = [(x.t, x.v) for _, x in res.samples() + alerts.samples() if x.v > 0]
        return _data(judge, name, series=series, threshold=Threshold(0, "above 0 = a failure / the alert firing"),
                     offending=bad, holes=_holes(res, judge), unit="failures")
    if name == "probe never stale":
        res = judge.samples(judge.promql("last_run"))
        limit = judge._tolerance()
        series = _series(res, lambda t, v: (t - v) / 60)
        bad = [(x.t, (x.t - x.v) / 60) for _, x in res.samples() if x.t - x.v > limit]
        return _data(judge, name, series={f"age of {k}": v for k, v in series.items()},
                     threshold=Threshold(limit / 60, f"stale: older than {limit / 60:.0f} min"),
                     offending=bad, holes=_holes(res, judge), unit="minutes since the probe's last run")
    if name == "forgejo never near OOM":
        ratio = inv.bake.near_oom_ratio
        ws, lim = judge.samples(judge.promql("working_set")), judge.samples(judge.promql("memory_limit"))
        limits = {s.label("pod"): sorted(s.samples, key=lambda x: x.t) for s in lim.series}
        series, bad = {}, []
        for s in ws.series:
            pl = limits.get(s.label("pod"))
            if not pl:
                continue
            pts, i = [], 0
            for x in s.samples:
                while i + 1 < len(pl) and pl[i + 1].t <= x.t:
                    i += 1
                if pl[i].v > 0:
                    pts.append((x.t, 100 * x.v / pl[i].v))
            series[f"working set / limit, pod {s.label('pod')}"] = pts
            bad += [p for p in pts if p[1] >= 100 * ratio]
        return _data(judge, name, series=series, threshold=Threshold(100 * ratio, f"near OOM: {ratio:.0%} of the limit"),
                     offending=bad, holes=_holes(ws, judge), unit="% of the memory limit")
    if name in ("retention succeeded enough", "DRY_RUN flipped", "Sunday GC cycle"):
        runs = judge.retention_runs()
        if name == "retention succeeded enough":
            pts, bad, n = [], [], 0
            for r in runs:
                n += r.succeeded
                pts.append((r.started, n))
                if not r.succeeded:
                    bad.append((r.started, n))
            ok_days = {w.day_of(r.started) for r in runs if r.succeeded}
            last_day = min(w.days, int((min(w.now, w.end) - w.start) // DAY))
            holes = [(w.day_start(d), w.day_start(d) + DAY) for d in range(last_day) if d not in ok_days]
            need = inv.bake.min_retention_runs
            return _data(judge, name, series={"successful retention runs so far": pts},
                         threshold=Threshold(need, f"at least {need} successful runs"), offending=bad, holes=holes,
                         unit="runs")
        flip = w.day_start(inv.bake.dry_run_flip_day)
        pts = [(r.started, 1.0 if r.dry_run else 0.0) for r in runs if r.succeeded and r.dry_run is not None]
        bad = [(r.started, 1.0 if r.dry_run else 0.0) for r in runs if r.succeeded and r.dry_run is not None
               and (r.started >= flip) == bool(r.dry_run)]
        return _data(judge, name, series={"DRY_RUN of each successful run (1 = dry run, 0 = deleting)": pts},
                     threshold=Threshold(0.5, f"day {inv.bake.dry_run_flip_day}: dry runs (1) before, deleting (0) after"),
                     offending=bad if name == "DRY_RUN flipped" else [], unit="DRY_RUN")
    if name == "healthz green over the window":
        res = judge.samples(judge.promql("healthz", instance=inv.metrics.healthz_instance))
        bad = [(x.t, x.v) for _, x in res.samples() if x.v < 1]
        return _data(judge, name, series=_series(res), threshold=Threshold(1, "green = 1"), offending=bad,
                     holes=_holes(res, judge), unit="up")
    if name == "bake long enough":
        return _data(judge, name, series={}, unit="")
    return None
