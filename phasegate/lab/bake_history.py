"""Bake histories as data: what the 14 days of Phase 2 looked like, day by day.

`GREEN` describes a healthy bake; each entry of `FAULTS` is a list of events
laid over it (day numbers count from the bake start, times are UTC). `render()`
turns a history into the series Prometheus would hold after those days (the
integrity probes' pushes as scraped from the Pushgateway with honor_labels,
kube-state-metrics and cAdvisor series of the forgejo container, the
retention Jobs, the retention job's pushed summary, the external healthz
monitor, ALERTS for every alert that fired) and `openmetrics()` writes them
for `promtool tsdb create-blocks-from openmetrics`.

The lab's bake starts on a Monday, so the GC weekday (Sunday) is day 6 and 13.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

UTC = dt.timezone.utc
MIN = 60
HOUR = 3600
DAY = 86400

# The healthy bake. Resolution is coarse on purpose (one sample per 15 minutes):
# the gates judge minutes-to-hours events and the backfill stays fast.
GREEN = {
    "step_minutes": 15,  # scrape resolution of the backfill
    "probe_lag_seconds": 120,  # a probe run finishes this long before the scrape that sees it
    "repos": 11,
    "tags": 57,
    "indexes": 9,
    "memory_limit_bytes": 1024 * 1024 * 1024,  # Phase 0: request = limit = 1Gi
    "memory_ratio_low": 0.42,
    "memory_ratio_high": 0.66,
    "retention_hour": 4,  # 0 4 * * *
    "retention_minutes": 2,  # how long one run takes
    "retention_kept": 70,
    "retention_to_delete": 9,
    "dry_run_until_day": 6,  # DRY_RUN=true for days 0-6, false from day 7
}

# name -> (description, events)
FAULTS: dict[str, tuple[str, list[dict]]] = {
    "bake-integrity-failure-day9": (
        "registry_manifest_integrity_failures > 0 for two hours on day 9, RegistryManifestIntegrityFailure firing",
        [{"what": "integrity_failures", "day": 9, "at": "10:00", "hours": 2, "value": 3, "alert": True}],
    ),
    "bake-failure-sample-without-alert": (
        "one failure sample on day 4 that never lasted long enough to become an alert",
        [{"what": "integrity_failures", "day": 4, "at": "13:15", "hours": 0.25, "value": 1, "alert": False}],
    ),
    "bake-probe-silent-day5": (
        "the Forgejo integrity probe did not run for 3 hours on day 5",
        [{"what": "probe_silent", "day": 5, "at": "02:00", "hours": 3}],
    ),
    "bake-forgejo-near-oom-day3": (
        "the forgejo container's working set reached 93% of its memory limit on day 3",
        [{"what": "memory", "day": 3, "at": "20:00", "hours": 1, "ratio": 0.93}],
    ),
    "bake-forgejo-oomkilled": (
        "the forgejo container was OOMKilled and restarted on day 6",
        [{"what": "oom_killed", "day": 6, "at": "14:30"}],
    ),
    "bake-retention-12-runs": (
        "the retention CronJob succeeded 12 times instead of 14 (days 2 and 3 failed)",
        [{"what": "retention_failed", "days": [2, 3]}],
    ),
    "bake-dry-run-still-true-day10": (
        "the retention job still ran with DRY_RUN=true on day 10 (flipped on day 11)",
        [{"what": "dry_run_until", "day": 10}],
    ),
    "bake-no-sunday-gc": (
        "no Sunday GC cycle inside the window: the retention CronJob was suspended on Sundays"
        " (manual runs on the Monday/Saturday next to it kept the count at 14)",
        [{"what": "no_sunday_runs", "makeup": {6: 7, 13: 12}}],
    ),
    "bake-healthz-down": (
        "the external /api/healthz monitor saw Forgejo down for an hour on day 11",
        [{"what": "healthz_down", "day": 11, "at": "07:00", "hours": 1}],
    ),
}


@dataclass(frozen=True)
class Names:
    """Label values the history uses; the lab fills them from its inventory."""

    forgejo_instance: str
    private_instance: str
    probe_push_job: str = "forgejo-integrity-probe"
    private_push_job: str = "registry-integrity-probe"
    forgejo_namespace: str = "forgejo"
    forgejo_container: str = "forgejo"
    forgejo_pod: str = "forgejo-7c9d5b6f4d-q8x2m"
    retention_namespace: str = "forgejo"
    retention_cronjob: str = "forgejo-cleanup"
    healthz_instance: str = ""
    failure_alert: str = "RegistryManifestIntegrityFailure"
    stale_alert: str = "RegistryIntegrityProbeStale"


@dataclass
class History:
    start: float  # bake start, unix seconds (00:00 UTC)
    days: int
    families: dict[str, dict[tuple, list[tuple[float, float]]]] = field(default_factory=dict)

    def add(self, name: str, labels: dict, t: float, v: float) -> None:
        key = tuple(sorted(labels.items()))
        self.families.setdefault(name, {}).setdefault(key, []).append((t, v))

    def openmetrics(self) -> str:
        out = []
        for name in sorted(self.families):
            out.append(f"# TYPE {name} gauge")
            for key, samples in sorted(self.families[name].items()):
                lab = ",".join(f'{k}="{v}"' for k, v in key)
                for t, v in sorted(samples):
                    out.append(f"{name}{{{lab}}} {_fmt(v)} {int(t)}")
        out.append("# EOF")
        return "\n".join(out) + "\n"


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _at(start: float, day: int, hhmm: str) -> float:
    h, m = hhmm.split(":")
    return start + day * DAY + int(h) * HOUR + int(m) * MIN


def render(start: dt.date, days: int, names: Names, events: list[dict] | None = None,
           margin_hours: float = 6) -> History:
    """The series of a bake that started on `start` and lasted `days`, with `events` laid over GREEN."""
    g = GREEN
    events = events or []
    t0 = dt.datetime.combine(start, dt.time(0, 0), UTC).timestamp()
    h = History(start=t0, days=days)
    step = g["step_minutes"] * MIN
    first, last = t0 - margin_hours * HOUR, t0 + days * DAY + margin_hours * HOUR
    times = [first + i * step for i in range(int((last - first) // step) + 1)]

    def spans(what):
        for e in events:
            if e["what"] == what:
                s = _at(t0, e["day"], e["at"])
                yield e, s, s + e["hours"] * HOUR

    # -- integrity probes (Pushgateway, honor_labels) ------------------------
    silent = [(s, end) for _, s, end in spans("probe_silent")]
    failing = list(spans("integrity_failures"))
    for instance, job in ((names.forgejo_instance, names.probe_push_job),
                          (names.private_instance, names.private_push_job)):
        labels = {"instance": instance, "job": job}
        last_run = None
        for t in times:
            run = t - g["probe_lag_seconds"]
            if instance == names.forgejo_instance and any(s <= run < end for s, end in silent):
                run = last_run  # the Pushgateway keeps serving the last push
            last_run = run
            value = 0
            if instance == names.forgejo_instance:
                for e, s, end in failing:
                    if s <= t < end:
                        value = e["value"]
            h.add("registry_manifest_integrity_failures", labels, t, value)
            h.add("registry_manifest_integrity_catalog_accessible", labels, t, 1)
            h.add("registry_manifest_integrity_repos_checked", labels, t, g["repos"])
            h.add("registry_manifest_integrity_tags_checked", labels, t, g["tags"])
            h.add("registry_manifest_integrity_indexes_checked", labels, t, g["indexes"])
            h.add("registry_manifest_integrity_last_run_timestamp", labels, t, run)
    for e, s, end in failing:
        if e.get("alert"):
            alert = {"alertname": names.failure_alert, "alertstate": "firing", "instance": names.forgejo_instance,
                     "job": names.probe_push_job, "severity": "critical"}
            for t in times:
                if s + 30 * MIN <= t < end + step:
                    h.add("ALERTS", alert, t, 1)
    for s, end in silent:
        alert = {"alertname": names.stale_alert, "alertstate": "firing", "instance": names.forgejo_instance,
                 "job": names.probe_push_job, "severity": "warning"}
        for t in times:
            if s + 75 * MIN <= t < end:
                h.add("ALERTS", alert, t, 1)

    # -- the forgejo container (cAdvisor, kube-state-metrics) -----------------
    limit = g["memory_limit_bytes"]
    pod = {"namespace": names.forgejo_namespace, "pod": names.forgejo_pod, "container": names.forgejo_container}
    peaks = list(spans("memory"))
    ooms = [_at(t0, e["day"], e["at"]) for e in events if e["what"] == "oom_killed"]
    lo, hi = g["memory_ratio_low"], g["memory_ratio_high"]
    for t in times:
        ratio = lo + (hi - lo) * (0.5 + 0.5 * math.sin(2 * math.pi * ((t - t0) % DAY) / DAY))
        for e, s, end in peaks:
            if s <= t < end:
                ratio = e["ratio"]
        h.add("container_memory_working_set_bytes", {**pod, "job": "kubelet", "image": "codeberg.org/forgejo/forgejo:11"},
              t, int(ratio * limit))
        h.add("kube_pod_container_resource_limits",
              {**pod, "job": "kube-state-metrics", "resource": "memory", "unit": "byte"}, t, limit)
        restarts = sum(1 for o in ooms if o <= t)
        h.add("kube_pod_container_status_restarts_total", {**pod, "job": "kube-state-metrics"}, t, restarts)
        if restarts:
            h.add("kube_pod_container_status_last_terminated_reason",
                  {**pod, "job": "kube-state-metrics", "reason": "OOMKilled"}, t, 1)

    # -- the retention CronJob (kube-state-metrics) and its pushed summary ----
    failed_days: set[int] = set()
    dry_until = g["dry_run_until_day"]
    makeup: dict[int, int] = {}
    for e in events:
        if e["what"] == "retention_failed":
            failed_days |= set(e["days"])
        if e["what"] == "dry_run_until":
            dry_until = e["day"]
        if e["what"] == "no_sunday_runs":
            makeup = dict(e["makeup"])
    runs = []  # (scheduled, day, succeeded, manual)
    for day in range(-1, days + 1):
        if day in makeup:
            runs.append((_at(t0, makeup[day], "09:00"), makeup[day], True, True))
            continue
        runs.append((t0 + day * DAY + g["retention_hour"] * HOUR, day, day not in failed_days, False))
    cleanup_state = None  # (dry_run, to_delete, last_run)
    summary_points: list[tuple[float, tuple]] = []
    for scheduled, day, ok, manual in sorted(runs):
        job_name = (f"{names.retention_cronjob}-manual-{int(scheduled) // 60}" if manual
                    else f"{names.retention_cronjob}-{int(scheduled) // 60}")
        jl = {"namespace": names.retention_namespace, "job_name": job_name, "job": "kube-state-metrics"}
        started = scheduled + 5
        done = started + g["retention_minutes"] * MIN
        # the Job object lives until ttlSecondsAfterFinished (3600 s): so do its series
        for t in times:
            if scheduled <= t <= done + HOUR:
                h.add("kube_job_owner", {**jl, "owner_kind": "CronJob", "owner_name": names.retention_cronjob,
                                         "owner_is_controller": "true"}, t, 1)
                h.add("kube_job_status_start_time", jl, t, started)
                finished = t >= done
                h.add("kube_job_status_succeeded", jl, t, 1 if (finished and ok) else 0)
                h.add("kube_job_status_failed", jl, t, 1 if (finished and not ok) else 0)
                if finished and ok:
                    h.add("kube_job_status_completion_time", jl, t, done)
        if ok:
            dry = day <= dry_until
            summary_points.append((done, (1 if dry else 0, g["retention_to_delete"], done)))
    summary_points.sort()
    pl = {"job": names.retention_cronjob, "instance": ""}
    for t in times:
        for at, state in summary_points:
            if at <= t:
                cleanup_state = state
        if cleanup_state is None:
            continue
        dry, to_delete, last = cleanup_state
        h.add("forgejo_cleanup_dry_run", pl, t, dry)
        h.add("forgejo_cleanup_to_delete", pl, t, to_delete)
        h.add("forgejo_cleanup_kept", pl, t, g["retention_kept"])
        h.add("forgejo_cleanup_last_run_timestamp", pl, t, last)

    # -- the external /api/healthz monitor ------------------------------------
    down = [(s, end) for _, s, end in spans("healthz_down")]
    hl = {"instance": names.healthz_instance, "job": "blackbox-healthz"}
    for t in times:
        h.add("probe_success", hl, t, 0 if any(s <= t < end for s, end in down) else 1)
    return h
