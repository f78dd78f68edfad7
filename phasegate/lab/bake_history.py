"""Bake histories as data: what the 14 days of Phase 2 looked like, in the real environment's shape.

`GREEN` describes a healthy bake; each entry of `FAULTS` is a list of events laid over it (day numbers
count from the bake start, times UTC); `REPLAY` is the real May-June 2026 history (infra-facts §12).
`render()` turns a history into what the three outside worlds would hold after those days:

- Prometheus: every series as the real scrape config stores it. Samples every 2 minutes (the bake
  era's global scrape_interval, scrape_config.SCRAPE_INTERVAL_SECONDS), the real label sets per
  scrape job, and every sample passed through the real metric_relabel keep/drop lists
  (phasegate/lab/scrape_config.py): series the real Prometheus drops (`kube_job_owner`,
  `kube_job_status_succeeded`, `kube_job_status_completion_time`,
  `kube_pod_container_status_last_terminated_reason`, `container_spec_memory_limit_bytes`) are
  rendered as kube-state-metrics / cAdvisor expose them and then dropped, exactly as in production.
- the projects' workloads: cAdvisor's `container_start_time_seconds` per main container with the image it
  runs (`image`), the CronJobs' runs and last successes from kube-state-metrics (`_project_workloads`);
  fault `bake-forgejo-image-day6` flips one Deployment to Forgejo, the replay has them all on Forgejo.
- Loki: the retention job's own log lines (stacks/forgejo/files/cleanup.sh @ 5d22b449: :29-30, 52,
  73, 88, 95, 100, 102, 109), one stream per run's pod with Alloy's labels.
- Uptime Kuma: the `[External] forgejo` monitor's heartbeats every 300 s (DOWN after 3 PENDING retries).

The integrity probes push with grouping key `job` only and `instance` as a sample label; the
Pushgateway is scraped with honor_labels (PCV:515-523 @ 5d22b449), so a series keeps the pushed
`job` and `instance`. The retention job pushes nothing (no Pushgateway use in stacks/forgejo/).

The lab's bake starts on a Monday, so the GC weekday (Sunday) is day 6 and 13.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field

from phasegate.lab import scrape_config

UTC = dt.UTC
MIN = 60
HOUR = 3600
DAY = 86400
GI = 2**30

CADVISOR = "kubernetes-nodes-cadvisor"
KSM = "kubernetes-service-endpoints"
KUBELET = "kubernetes-nodes"
PUSHGATEWAY = "prometheus-pushgateway"
RULES = "rule-evaluation"  # ALERTS: written by Prometheus itself, not scraped

GREEN = {
    "scrape_seconds": scrape_config.SCRAPE_INTERVAL_SECONDS,
    "probe_every_minutes": 15,  # */15 * * * * (MON:457-516 @5d22b449)
    "probe_runtime_seconds": 70,
    "repos": 11, "tags": 57, "indexes": 9,
    "memory_limit_bytes": 1 * GI,  # Phase 0: request = limit = 1Gi (FJ:125-133 @5d22b449)
    "memory_ratio_low": 0.42, "memory_ratio_high": 0.66,
    "pvc_capacity_bytes": 30 * GI,  # floor 30Gi from 05-09 (msg@fecfa211)
    "pvc_used_bytes": 11 * GI, "pvc_growth_per_day": 0.15 * GI,
    "retention_hour": 4,  # 0 4 * * * (CT:45-59 @6d5204db)
    "retention_minutes": 2,
    "retention_kept": 70, "retention_to_delete": 9,
    "dry_run_until_day": 6,  # DRY_RUN=true for days 0-6, false from day 7
    "healthz_every_seconds": 300,  # main.tf:449 @5d22b449
    "healthz_retries": 3,
    # the projects' workloads (lab assumptions: how long a CronJob's run lasts, since when the pods run)
    "cronjob_run_seconds": 100,  # under a */2 schedule's 2 minutes (concurrencyPolicy Forbid)
    "pods_running_since_days": 2,
}

# name -> (description, events)
FAULTS: dict[str, tuple[str, list[dict]]] = {
    "bake-integrity-failure-day9": (
        "registry_manifest_integrity_failures > 0 for two hours on day 9, RegistryManifestIntegrityFailure firing",
        [{"what": "integrity_failures", "day": 9, "at": "10:00", "hours": 2, "value": 3, "alert": True}],
    ),
    "bake-failure-sample-without-alert": (
        "one failing probe run on day 4 that never lasted long enough to become an alert",
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
        "the forgejo container was OOMKilled between two scrapes on day 6: no working-set sample above the "
        "ratio, cAdvisor missed the kill, only the restart counter moved",
        [{"what": "oom_killed", "day": 6, "at": "14:30", "seen_by_cadvisor": False}],
    ),
    "bake-memory-hole-48h": (
        "cAdvisor's forgejo series have a 48-hour hole from day 4 (the node's kubelet was not scraped)",
        [{"what": "hole", "series": "memory", "day": 4, "at": "06:01", "hours": 48}],
    ),
    "bake-retention-12-runs": (
        "the retention CronJob's runs on days 2 and 3 failed (BackoffLimitExceeded): 12 successful of 14",
        [{"what": "retention_failed", "days": [2, 3]}],
    ),
    "bake-dry-run-still-true-day10": (
        "the retention job still ran with DRY_RUN=true on day 10 (flipped on day 11)",
        [{"what": "dry_run_until", "day": 10}],
    ),
    "bake-no-sunday-gc": (
        "no Sunday GC cycle inside the window: the Sunday run after the flip (day 13) deleted nothing",
        [{"what": "nothing_to_delete", "days": [13]}],
    ),
    "bake-cleanup-403": (
        "the cleanup token may not delete: every DELETE of the deleting runs got HTTP 403 (FAIL lines, exit 0)",
        [{"what": "delete_status", "from_day": 7, "status": 403}],
    ),
    "bake-no-pod-logs-days-3-5": (
        "Alloy shipped no pod logs on days 3 to 5 (as 2026-05-21 .. 06-05, msg@bb0099b7): the retention runs of "
        "those days have no Summary line in Loki",
        [{"what": "no_pod_logs", "days": [3, 4, 5]}],
    ),
    "bake-healthz-down": (
        "the external /api/healthz monitor saw Forgejo down for an hour on day 11",
        [{"what": "healthz_down", "day": 11, "at": "07:00", "hours": 1}],
    ),
    "bake-healthz-hole-48h": (
        "Uptime Kuma recorded no heartbeat of the monitor for 48 hours from day 8 (monitor paused)",
        [{"what": "hole", "series": "healthz", "day": 8, "at": "00:01", "hours": 48}],
    ),
    "bake-forgejo-image-day6": (
        "job-hunter's Deployment flipped to its Forgejo image on bake day 6 (a premature Phase 3 image= flip): its "
        "new pod runs forgejo/viktor/job-hunter",
        [{"what": "image_flip", "workload": "job-hunter", "day": 6, "at": "10:00", "to": "forgejo"}],
    ),
    "bake-pvc-at-autoresize-cap": (
        "the Forgejo PVC grew to its 50Gi autoresize cap on day 8 and filled to 46Gi",
        [{"what": "pvc", "day": 8, "at": "12:00", "capacity_gi": 50, "used_gi": 46}],
    ),
}


def _ts(s: str) -> float:
    return dt.datetime.strptime(s, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()


# The real May-June 2026 history (infra-facts §12), as a bake window 2026-06-06 .. 2026-06-20 laid over
# the events that really happened (the real bake never ran: Phase 3 followed Phase 0 by 2h39m).
REPLAY_START = dt.date(2026, 6, 6)
REPLAY: list[dict] = [
    # 06-09: CI push storms OOMKill Forgejo at 1Gi -> limit 3Gi at 14:23 (msg@e0452611)
    {"what": "oom_killed", "t": _ts("2026-06-09 11:40"), "seen_by_cadvisor": True},
    {"what": "memory_limit", "t": _ts("2026-06-09 14:23"), "gi": 3},
    # 06-09: the PVC at its 50Gi autoresize cap (msg@e0452611); /data 58% before the 06-13 wipe
    {"what": "pvc", "t": _ts("2026-06-09 12:00"), "capacity_gi": 50, "used_gi": 29},
    # 06-09 14:23 DRY_RUN=false with viktor's PAT (CT:7-17,30 @e0452611); first deleting run 06-10 04:00 (PMR:13-14)
    {"what": "dry_run_false", "t": _ts("2026-06-09 14:23")},
    # the run orphaned kms-website's index children: probe 4 failures / 60 indexes, alert 08:29:52 EEST (PMR:5-9,26-30)
    {"what": "integrity_failures", "t": _ts("2026-06-10 04:15"), "hours": 5.25, "value": 4, "alert": True,
     "alert_at": _ts("2026-06-10 05:29")},
    # 06-10 09:22 revert to DRY_RUN=true, still at HEAD (CT:40 @0cd4afb6): stuck in the dry run
    {"what": "dry_run_true", "t": _ts("2026-06-10 09:22")},
    # 06-13 14:02 OOMKilled x2 at 3Gi (msg@ff3cc44a); 4Gi at 14:13 (msg@ba72621e)
    {"what": "oom_killed", "t": _ts("2026-06-13 14:02"), "seen_by_cadvisor": True},
    {"what": "oom_killed", "t": _ts("2026-06-13 14:04"), "seen_by_cadvisor": True},
    {"what": "memory_limit", "t": _ts("2026-06-13 14:13"), "gi": 4},
    # the 6Gi attempt rejected by the 4Gi quota: 0 pods for ~6 minutes (msg@ba72621e)
    {"what": "healthz_down", "t": _ts("2026-06-13 14:06"), "hours": 0.1},
    # no bake: every project workload named Forgejo from Phase 3 on (3148d15d 05-07 18:30; wealthfolio-sync f6e764a9
    # 22:38; claude-memory 48e504bb 19:05), then ghcr (ADR-0002) at these commits (commit times; the applies are
    # not recorded): stacks/*/main.tf @ 54dfaf6e, c16fe561, 72b5843e, 5d236c23, f18dfa4c, 8aba3a01, 2f3c58df,
    # 3960eac7, eb8b5505 (chrome-service's novnc, TF-managed from then on)
    {"what": "image_flip", "workload": "*", "t": _ts("2026-05-07 18:30"), "to": "forgejo"},
    {"what": "image_flip", "workload": "job-hunter", "t": _ts("2026-06-12 23:06"), "to": "ghcr"},
    {"what": "image_flip", "workload": "music-viktor", "t": _ts("2026-06-12 23:37"), "to": "ghcr"},
    {"what": "image_flip", "workload": "music-emo", "t": _ts("2026-06-12 23:37"), "to": "ghcr"},
    {"what": "image_flip", "workload": "beadboard", "t": _ts("2026-06-12 23:52"), "to": "ghcr"},
    {"what": "image_flip", "workload": "payslip-ingest", "t": _ts("2026-06-13 00:03"), "to": "ghcr"},
    {"what": "image_flip", "workload": "actualbudget-payroll-sync", "t": _ts("2026-06-13 00:03"), "to": "ghcr",
     "tag": "latest"},
    {"what": "image_flip", "workload": "fire-planner", "t": _ts("2026-06-13 00:38"), "to": "ghcr"},
    {"what": "image_flip", "workload": "fire-planner-recompute", "t": _ts("2026-06-13 00:38"), "to": "ghcr"},
    {"what": "image_flip", "workload": "wealthfolio-sync", "t": _ts("2026-06-13 01:39"), "to": "ghcr", "tag": "latest"},
    {"what": "image_flip", "workload": "claude-agent-service", "t": _ts("2026-06-13 01:47"), "to": "ghcr"},
    {"what": "image_flip", "workload": "beads-dispatcher", "t": _ts("2026-06-13 01:47"), "to": "ghcr"},
    {"what": "image_flip", "workload": "beads-reaper", "t": _ts("2026-06-13 01:47"), "to": "ghcr"},
    {"what": "image_flip", "workload": "claude-memory", "t": _ts("2026-06-13 02:34"), "to": "ghcr", "tag": "latest"},
    {"what": "image_flip", "workload": "chrome-service", "t": _ts("2026-06-13 09:49"), "to": "ghcr", "tag": "latest"},
    # actualbudget-payroll-sync suspended 05-12 (0f8faca3, still at cdd60d90): no run in the window; its last
    # success is not recorded: the lab puts it at the last run before its ExternalSecret broke (04-25, ibid.)
    {"what": "cronjob_suspended", "workload": "actualbudget-payroll-sync", "t": _ts("2026-05-12 13:31"),
     "last_success": _ts("2026-04-24 02:01")},
]


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
    forgejo_node: str = "k8s-node2"
    forgejo_pvc: str = "forgejo-data-encrypted"
    retention_namespace: str = "forgejo"
    retention_cronjob: str = "forgejo-cleanup"
    retention_container: str = "cleanup"
    owner: str = "viktor"
    healthz_instance: str = ""
    failure_alert: str = "RegistryManifestIntegrityFailure"
    stale_alert: str = "RegistryIntegrityProbeStale"
    workloads: tuple[RunningWorkload, ...] = ()  # the projects' workloads (cAdvisor's `image` per container)


@dataclass(frozen=True)
class RunningWorkload:
    """A project workload as the history runs it (the lab fills these from its inventory's [[projects]])."""

    kind: str  # Deployment | CronJob
    namespace: str
    name: str
    containers: tuple[tuple[str, str, str], ...]  # (container, its image before the cutover, its Forgejo image)
    node: str = "k8s-node1"


SMALL_FAMILY = 20_000  # samples: families below this share one block (History.block_groups)


@dataclass
class History:
    start: float  # bake start, unix seconds (00:00 UTC)
    days: int
    families: dict[str, dict[tuple, list[tuple[float, float]]]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)  # series name -> the rule that dropped it
    logs: list[tuple[dict, list[tuple[int, str]]]] = field(default_factory=list)  # Loki streams (labels, [(ns, line)])
    beats: list[tuple[float, int, str]] = field(default_factory=list)  # Uptime Kuma heartbeats
    _groups: list | None = field(default=None, repr=False, compare=False)  # block_groups, until the next sample
    _series: dict = field(default_factory=dict, repr=False, compare=False)  # (job, name, labels as given) -> samples

    def add(self, job: str, name: str, labels: dict, t: float, v: float) -> None:
        """A sample as `job` scrapes it; the real metric_relabel rules decide whether Prometheus keeps it."""
        series = self._series_of(job, name, labels)
        if series is not None:
            series.append((t, v))
            self._groups = None

    def extend(self, job: str, name: str, labels: dict, samples: list[tuple[float, float]]) -> None:
        """Many samples of one series at once (same rules as `add`)."""
        if samples:
            series = self._series_of(job, name, labels)
            if series is not None:
                series.extend(samples)
                self._groups = None

    def _series_of(self, job: str, name: str, labels: dict) -> list | None:
        """The sample list of a series (made when first asked), or None when the real scrape config drops it.
        Found by the labels as given: a render asks for the same series at every scrape (~200,000 times)."""
        given = (job, name, tuple(labels.items()))
        try:
            return self._series[given]
        except KeyError:
            pass
        series = None
        if job != RULES and not scrape_config.kept(job, name):
            if name not in self.dropped:
                self.dropped[name] = scrape_config.why_dropped(job, name)
        else:
            series = self.families.setdefault(name, {}).setdefault(tuple(sorted(labels.items())), [])
        self._series[given] = series
        return series

    def block_groups(self) -> list[tuple[tuple, list[str]]]:
        """The families in the groups the lab backfills as blocks of their own, each with a key of its
        content: a family of at least SMALL_FAMILY samples alone, the smaller ones together. A fault changes
        one to three families, so a switch to its history backfills only their groups again. Worked out once
        per content: the lab asks at every switch to a history and back."""
        if self._groups is None:
            self._groups = self._block_groups()
        return self._groups

    def _block_groups(self) -> list[tuple[tuple, list[str]]]:
        big, small = [], []
        for name in sorted(self.families):
            fam = self.families[name]
            key = (name, hash(tuple((k, tuple(v)) for k, v in sorted(fam.items()))))
            (big if sum(len(v) for v in fam.values()) >= SMALL_FAMILY else small).append((key, name))
        groups = [((key,), [name]) for key, name in big]
        if small:
            groups.append((tuple(key for key, _ in small), [name for _, name in small]))
        return groups

    def openmetrics(self, names: list[str] | None = None) -> str:
        """The families (all, or `names`) as OpenMetrics text, what `promtool tsdb create-blocks-from` reads."""
        out = []
        for name in sorted(self.families) if names is None else sorted(names):
            out.append(f"# TYPE {name} gauge")
            for key, samples in sorted(self.families[name].items()):
                lab = ",".join(f'{k}="{v}"' for k, v in key)
                for t, v in sorted(samples):
                    out.append(f"{name}{{{lab}}} {_fmt(v)} {int(t)}")
        out.append("# EOF")
        return "\n".join(out) + "\n"


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _at(start: float, e: dict) -> float:
    if "t" in e:
        return e["t"]
    h, m = e.get("at", "00:00").split(":")
    return start + e["day"] * DAY + int(h) * HOUR + int(m) * MIN


def _hash(*parts) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


# label sets as the real scrape jobs store them (PCV:357-469 @5d22b449): cAdvisor and kubelet via the
# API server proxy with the node's labels mapped in; kube-state-metrics through its Service's endpoints
# (honor_labels: KSM's own namespace/pod/container win; the Service's labels are mapped in)
def _node_labels(node: str, job: str) -> dict:
    return {"job": job, "instance": node, "kubernetes_io_hostname": node, "kubernetes_io_os": "linux",
            "beta_kubernetes_io_arch": "amd64"}


KSM_TARGET = {"job": KSM, "instance": "10.10.169.154:8080", "service": "prometheus-kube-state-metrics",
              "app_kubernetes_io_name": "kube-state-metrics", "app_kubernetes_io_instance": "prometheus",
              "node": "k8s-node1"}


def render(start: dt.date, days: int, names: Names, events: list[dict] | None = None,
           margin_hours: float = 6, until: float | None = None) -> History:
    """The bake that started on `start` and lasted `days`, with `events` laid over GREEN, as far as
    `until` (unix seconds; default: the window's end plus a margin)."""
    g = GREEN
    events = events or []
    t0 = dt.datetime.combine(start, dt.time(0, 0), UTC).timestamp()
    h = History(start=t0, days=days)
    step = g["scrape_seconds"]
    first = t0 - margin_hours * HOUR
    last = until if until is not None else t0 + days * DAY + margin_hours * HOUR
    times = [first + i * step for i in range(int((last - first) // step) + 1)]

    def of(what):
        return [e for e in events if e["what"] == what]

    def spans(what):
        for e in of(what):
            s = _at(t0, e)
            yield e, s, s + e.get("hours", 0) * HOUR

    holes = {e["series"]: [] for e in of("hole")}
    for e, s, end in spans("hole"):
        holes[e["series"]].append((s, end))

    def in_hole(series: str, t: float) -> bool:
        return any(s <= t < end for s, end in holes.get(series, []))

    _probes(h, g, names, times, t0, list(spans("integrity_failures")), [(s, end) for _, s, end in spans("probe_silent")])
    _forgejo_container(h, g, names, times, t0, events, of, spans, in_hole)
    _pvc(h, g, names, times, t0, of)
    _retention(h, g, names, times, t0, days, events, of, last)
    _healthz(h, g, t0, first, last, [(s, end) for _, s, end in spans("healthz_down")], in_hole)
    _project_workloads(h, g, names, t0, first, last, events)
    return h


def _probes(h: History, g, names: Names, times, t0, failing, silent) -> None:
    every = g["probe_every_minutes"] * MIN
    for instance, job in ((names.forgejo_instance, names.probe_push_job),
                          (names.private_instance, names.private_push_job)):
        labels = {"instance": instance, "job": job}  # grouping key job, instance a sample label
        failures, last_runs = [], []
        last_run = None
        for t in times:
            run = (t - g["probe_runtime_seconds"]) // every * every + g["probe_runtime_seconds"]
            if instance == names.forgejo_instance and any(s <= run < end for s, end in silent):
                run = last_run  # the Pushgateway keeps serving the last push
            last_run = run
            value = 0
            if instance == names.forgejo_instance:
                for e, s, end in failing:
                    if s <= run < end:
                        value = e["value"]
            failures.append((t, value))
            last_runs.append((t, run))
        # one series per family and instance, a sample at every scrape (the same samples as one add() each)
        h.extend(PUSHGATEWAY, "registry_manifest_integrity_failures", labels, failures)
        for name, value in (("catalog_accessible", 1), ("repos_checked", g["repos"]), ("tags_checked", g["tags"]),
                            ("indexes_checked", g["indexes"])):
            h.extend(PUSHGATEWAY, f"registry_manifest_integrity_{name}", labels, [(t, value) for t in times])
        h.extend(PUSHGATEWAY, "registry_manifest_integrity_last_run_timestamp", labels, last_runs)
    for e, s, end in failing:
        if e.get("alert"):
            alert = {"alertname": names.failure_alert, "alertstate": "firing", "instance": names.forgejo_instance,
                     "job": names.probe_push_job, "severity": "critical"}
            fire = e.get("alert_at", s + 30 * MIN)
            for t in times:
                if fire <= t < end + 2 * g["scrape_seconds"]:
                    h.add(RULES, "ALERTS", alert, t, 1)
    for s, end in silent:
        alert = {"alertname": names.stale_alert, "alertstate": "firing", "instance": names.forgejo_instance,
                 "job": names.probe_push_job, "severity": "warning"}
        for t in times:
            if s + 75 * MIN <= t < end:
                h.add(RULES, "ALERTS", alert, t, 1)


def _forgejo_container(h: History, g, names: Names, times, t0, events, of, spans, in_hole) -> None:
    ns, pod, ctr = names.forgejo_namespace, names.forgejo_pod, names.forgejo_container
    uid = _hash(pod)[:8] + "-" + _hash(pod)[8:12] + "-4" + _hash(pod)[13:16] + "-8" + _hash(pod)[17:20] + "-" + _hash(pod)[20:32]
    limits = sorted((_at(t0, e), e["gi"] * GI) for e in of("memory_limit"))
    ooms = sorted((_at(t0, e), e.get("seen_by_cadvisor", False)) for e in of("oom_killed"))
    peaks = list(spans("memory"))
    lo, hi = g["memory_ratio_low"], g["memory_ratio_high"]
    node = _node_labels(names.forgejo_node, CADVISOR)
    for t in times:
        limit = g["memory_limit_bytes"]
        for at, value in limits:
            if at <= t:
                limit = value
        restarts = sum(1 for at, _ in ooms if at <= t)
        # each restart is a new container (new cgroup): cAdvisor's id/name labels change with it
        cid = _hash(pod, restarts)[:64]
        cadv = {**node, "namespace": ns, "pod": pod, "container": ctr, "image": "codeberg.org/forgejo/forgejo:11",
                "name": cid, "id": f"/kubepods/burstable/pod{uid}/{cid}"}
        ratio = lo + (hi - lo) * (0.5 + 0.5 * math.sin(2 * math.pi * ((t - t0) % DAY) / DAY))
        for e, s, end in peaks:
            if s <= t < end:
                ratio = e["ratio"]
        if not in_hole("memory", t):
            h.add(CADVISOR, "container_memory_working_set_bytes", cadv, t, int(ratio * limit))
            h.add(CADVISOR, "container_spec_memory_limit_bytes", cadv, t, limit)  # dropped (container_spec_.*)
            # container_oom_events_total counts kills in one container's cgroup: the restarted container is a
            # new series at 0; the killed one shows its 1 only if a scrape fell between the kill and the
            # cgroup's removal (seen_by_cadvisor), else the kill is never seen
            h.add(CADVISOR, "container_oom_events_total", cadv, t, 0)
            for i, (at, seen) in enumerate(ooms):
                if seen and at <= t < at + g["scrape_seconds"]:
                    old = _hash(pod, i)[:64]
                    h.add(CADVISOR, "container_oom_events_total",
                          {**cadv, "name": old, "id": f"/kubepods/burstable/pod{uid}/{old}"}, t, 1)
        ksm = {**KSM_TARGET, "namespace": ns, "pod": pod, "container": ctr, "uid": uid}
        h.add(KSM, "kube_pod_container_resource_limits", {**ksm, "resource": "memory", "unit": "byte",
                                                          "node": names.forgejo_node}, t, limit)
        h.add(KSM, "kube_pod_container_status_restarts_total", ksm, t, restarts)
        if restarts:
            h.add(KSM, "kube_pod_container_status_last_terminated_reason", {**ksm, "reason": "OOMKilled"}, t, 1)  # dropped


def _pvc(h: History, g, names: Names, times, t0, of) -> None:
    changes = sorted((_at(t0, e), e) for e in of("pvc"))
    labels = {**_node_labels(names.forgejo_node, KUBELET), "namespace": names.forgejo_namespace,
              "persistentvolumeclaim": names.forgejo_pvc}
    for t in times:
        cap = g["pvc_capacity_bytes"]
        used = g["pvc_used_bytes"] + g["pvc_growth_per_day"] * (t - t0) / DAY
        for at, e in changes:
            if at <= t:
                cap, used = e["capacity_gi"] * GI, e["used_gi"] * GI
        h.add(KUBELET, "kubelet_volume_stats_capacity_bytes", labels, t, int(cap))
        h.add(KUBELET, "kubelet_volume_stats_used_bytes", labels, t, int(used))
        h.add(KUBELET, "kubelet_volume_stats_inodes_used", labels, t, 41_000)


PACKAGES = [("payslip-ingest", 14, 3), ("job-hunter", 13, 2), ("infra-ci", 15, 4), ("fire-planner", 11, 0)]


def _cleanup_log(names: Names, started: float, dry: bool, delete_status: int, nothing: bool,
                 kept: int) -> list[tuple[float, str]]:
    """The lines cleanup.sh prints (CS:29-30,52,73,88,95,100,102,109 @5d22b449): D counts failures too."""
    host = "http://forgejo.forgejo.svc.cluster.local"
    lines = [f"Forgejo cleanup: owner={names.owner} keep_last=10 dry_run={'true' if dry else 'false'}",
             f"API base: {host}/api/v1",
             f"Found {kept + (0 if nothing else 9)} package version(s)."]
    to_delete = 0
    for name, n, d in PACKAGES:
        d = 0 if nothing else d
        lines += [f"[{name}] {n} version(s)", f"  keep={n - d} delete={d}"]
        for i in range(d):
            ver = _hash(name, started, i)[:8]
            url = f"{host}/api/v1/packages/{names.owner}/container/{name}/{ver}"
            to_delete += 1
            if dry:
                lines.append(f"  DRY_RUN would DELETE {url}")
            elif delete_status in (200, 204):
                lines.append(f"  deleted {name}:{ver}")
            else:
                lines.append(f"  FAIL {name}:{ver} HTTP {delete_status}")
    lines.append(f"Summary: kept={kept} to_delete={to_delete} dry_run={'true' if dry else 'false'}")
    return [(started + 20 + i * 0.05, line) for i, line in enumerate(lines)]


def _retention(h: History, g, names: Names, times, t0, days, events, of, last) -> None:
    failed_days: set[int] = set()
    for e in of("retention_failed"):
        failed_days |= set(e["days"])
    nothing_days: set[int] = set()
    for e in of("nothing_to_delete"):
        nothing_days |= set(e["days"])
    dry_until = g["dry_run_until_day"]
    for e in of("dry_run_until"):
        dry_until = e["day"]
    flips = sorted((_at(t0, e), e["what"] == "dry_run_true") for e in of("dry_run_false") + of("dry_run_true"))
    delete_from = {e["from_day"]: e["status"] for e in of("delete_status")}
    unshipped = {d for e in of("no_pod_logs") for d in e["days"]}

    def dry_at(day: int, t: float) -> bool:
        if flips:
            dry = True
            for at, value in flips:
                if at <= t:
                    dry = value
            return dry
        return day <= dry_until

    def status_at(day: int) -> int:
        status = 204
        for d, s in delete_from.items():
            if day >= d:
                status = s
        return status

    ns, cj, ctr = names.retention_namespace, names.retention_cronjob, names.retention_container
    last_success = None
    success_points: list[tuple[float, float]] = []
    for day in range(-1, days + 1):
        scheduled = t0 + day * DAY + g["retention_hour"] * HOUR
        if scheduled > last:
            break
        # the CronJob controller names a Job <cronjob>-<scheduled time in minutes> (kubernetes
        # pkg/controller/cronjob/cronjob_controllerv2.go getJobName: "%s-%d", unix seconds / 60); Jobs live 3600 s after finishing (CT:45-59 @6d5204db)
        job_name = f"{cj}-{int(scheduled) // 60}"
        pod = f"{job_name}-{_hash(job_name)[:5]}"
        ok = day not in failed_days
        started = scheduled + 3
        done = started + g["retention_minutes"] * MIN
        jl = {**KSM_TARGET, "namespace": ns, "job_name": job_name}
        for t in times:
            if scheduled <= t <= done + HOUR:
                finished = t >= done
                h.add(KSM, "kube_job_owner", {**jl, "owner_kind": "CronJob", "owner_name": cj,
                                              "owner_is_controller": "true"}, t, 1)  # dropped
                h.add(KSM, "kube_job_status_start_time", jl, t, started)
                h.add(KSM, "kube_job_status_succeeded", jl, t, 1 if finished and ok else 0)  # dropped
                h.add(KSM, "kube_job_status_failed", jl, t, 0)
                if finished and not ok:
                    h.add(KSM, "kube_job_status_failed", {**jl, "reason": "BackoffLimitExceeded"}, t, 1)
                if finished and ok:
                    h.add(KSM, "kube_job_status_completion_time", jl, t, done)  # dropped
        dry = dry_at(day, started)
        if ok:
            success_points.append((done, done))
            lines = _cleanup_log(names, started, dry, status_at(day), day in nothing_days, g["retention_kept"])
        else:
            lines = [(started + 20, f"Forgejo cleanup: owner={names.owner} keep_last=10 "
                                    f"dry_run={'true' if dry else 'false'}"),
                     (started + 21, "API base: http://forgejo.forgejo.svc.cluster.local/api/v1"),
                     (started + 25, "curl: (22) The requested URL returned error: 500")]
        # Alloy ships the pod's lines with these labels (alloy.yaml:53-99 @0cd4afb6); the Job's pods carry
        # no app.kubernetes.io/name, so no `app` label
        if day not in unshipped:
            h.logs.append(({"namespace": ns, "pod": pod, "container": ctr, "job": f"{ns}/{ctr}"},
                           [(int(ts * 1e9), line) for ts, line in lines if ts <= last]))
    cl = {**KSM_TARGET, "namespace": ns, "cronjob": cj}
    for t in times:
        for at, v in success_points:
            if at <= t:
                last_success = v
        if last_success is not None:
            h.add(KSM, "kube_cronjob_status_last_successful_time", cl, t, last_success)


def _healthz(h: History, g, t0, first, last, down, in_hole) -> None:
    every = g["healthz_every_seconds"]
    failing = 0
    t = first
    while t <= last:
        if not in_hole("healthz", t):
            if any(s <= t < end for s, end in down):
                failing += 1
                status = 2 if failing <= g["healthz_retries"] else 0  # PENDING while retrying, then DOWN
                h.beats.append((t, status, "Request failed with status code 502"))
            else:
                failing = 0
                h.beats.append((t, 1, "200 - OK"))
        t += every


# -- the projects' workloads: what cAdvisor's `image` label shows of them -------------------------------------
#
# cAdvisor is scraped per node (PCV:386-414 @5d22b449); Prometheus staggers each target's scrapes inside the
# interval (a per-target offset), so the lab gives each node its own phase: forgejo's node keeps the phase of
# the other series, the projects' nodes are 40 s and 80 s later.
NODE_OFFSETS = {"k8s-node1": 40, "k8s-node2": 0, "k8s-node3": 80}
# k8s.io/apimachinery/pkg/util/rand: pod-template hashes and generated name suffixes use this alphabet
SAFE = "bcdfghjklmnpqrstvwxz2456789"
# the projects' CronJobs at 3148d15d: schedule (no timeZone: the controller's UTC), ttlSecondsAfterFinished
# (None: none), successfulJobsHistoryLimit 3 for all: stacks/payslip-ingest/main.tf:337,339,349;
# stacks/beads-server/main.tf:748,750,758 and :875,877,885; stacks/fire-planner/main.tf:270,272,282;
# stacks/wealthfolio/main.tf:501,503
PROJECT_CRONJOBS: dict[str, tuple[str, int | None]] = {
    "actualbudget-payroll-sync": ("0 2 * * *", 86400),
    "beads-dispatcher": ("*/2 * * * *", 600),
    "beads-reaper": ("*/10 * * * *", 600),
    "fire-planner-recompute": ("0 9 2 * *", 86400),
    "wealthfolio-sync": ("0 8 1 * *", None),
}
JOBS_KEPT = 3  # successfulJobsHistoryLimit (the same lines)
CRON_LOOKBACK_DAYS = 40  # a monthly CronJob's last success before the window


def _safe(n: int, *parts) -> str:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return "".join(SAFE[b % len(SAFE)] for b in digest[:n])


def _scrapes(node: str, first: float, a: float, b: float) -> list[float]:
    """The node's cAdvisor scrape times in [a, b) (every 2 minutes from the history's first, at its offset)."""
    step = GREEN["scrape_seconds"]
    base = first + NODE_OFFSETS.get(node, 0)
    i = max(0, math.ceil((a - base) / step))
    out = []
    while base + i * step < b:
        out.append(base + i * step)
        i += 1
    return out


def _cron_field(spec: str, lo: int, hi: int) -> list[int]:
    if spec == "*":
        return list(range(lo, hi + 1))
    if spec.startswith("*/"):
        return list(range(lo, hi + 1, int(spec[2:])))
    return [int(spec)]


def cron_times(expr: str, a: float, b: float) -> list[float]:
    """The times in [a, b) a cron schedule `m h dom * *` (UTC) fires at."""
    minute, hour, dom, month, dow = expr.split()
    if (month, dow) != ("*", "*"):
        raise ValueError(f"unsupported schedule {expr!r}")
    minutes, hours, days = _cron_field(minute, 0, 59), _cron_field(hour, 0, 23), set(_cron_field(dom, 1, 31))
    out = []
    day = dt.datetime.fromtimestamp(a, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day.timestamp() < b:
        if day.day in days:
            for hh in hours:
                for mm in minutes:
                    t = day.timestamp() + hh * HOUR + mm * MIN
                    if a <= t < b:
                        out.append(t)
        day += dt.timedelta(days=1)
    return out


def _image(c: tuple[str, str, str], state: tuple[str, str]) -> str:
    """The image a container runs in `state` (before | forgejo | ghcr, with an optional tag)."""
    _, before, forgejo = c
    to, tag = state
    if to == "before" or before == forgejo:  # not the project's own image: never flipped
        return before
    if to == "forgejo":
        return forgejo
    repo, _, old_tag = forgejo.rsplit("/", 1)[-1].partition(":")
    return f"ghcr.io/viktorbarzin/{repo}:{tag or old_tag}"


def _project_workloads(h: History, g, names: Names, t0: float, first: float, last: float, events: list[dict]) -> None:
    """cAdvisor's `container_start_time_seconds` of every main container of the projects' pods (init containers
    exit within seconds and are rarely scraped; the lab leaves them out), with the real labels; kube-state-
    metrics' Job start times and last-successful times of the projects' CronJobs."""
    flips = sorted(((_at(t0, e), e) for e in events if e["what"] == "image_flip"), key=lambda x: x[0])
    suspended = {e["workload"]: e for e in events if e["what"] == "cronjob_suspended"}
    ksm_times = [first + i * g["scrape_seconds"] for i in range(int((last - first) // g["scrape_seconds"]) + 1)]

    def state_at(name: str, t: float) -> tuple[str, str]:
        state = ("before", "")
        for at, e in flips:
            if at <= t and e["workload"] in ("*", name):
                state = (e["to"], e.get("tag", ""))
        return state

    for w in names.workloads:
        node_labels = _node_labels(w.node, CADVISOR)

        def container(pod: str, c: tuple[str, str, str], image: str, started: float, a: float, b: float,
                      w=w, node_labels=node_labels) -> None:
            cid = _hash(pod, c[0], started)[:64]
            uid = _hash(pod)
            labels = {**node_labels, "namespace": w.namespace, "pod": pod, "container": c[0], "image": image,
                      "name": cid, "id": f"/kubepods/burstable/pod{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-"
                                        f"{uid[20:32]}/{cid}"}
            h.extend(CADVISOR, "container_start_time_seconds", labels,
                     [(t, started) for t in _scrapes(w.node, first, max(a, first), min(b, last + 1))])

        if w.kind == "Deployment":
            # one pod per ReplicaSet (<deployment>-<pod-template-hash>-<5>); a flip rolls a new one out
            changes = [first - g["pods_running_since_days"] * DAY]
            changes += [at for at, e in flips if e["workload"] in ("*", w.name) and first < at <= last]
            for i, at in enumerate(changes):
                state = state_at(w.name, at)
                pod = f"{w.name}-{_safe(10, w.name, state)}-{_safe(5, w.name, state, i)}"
                end = changes[i + 1] + 45 if i + 1 < len(changes) else last + 1  # the old pod ends once the new runs
                for c in w.containers:
                    container(pod, c, _image(c, state), at + 15, at + 15, end)
            continue
        schedule, ttl = PROJECT_CRONJOBS[w.name]
        stop = suspended.get(w.name)
        runs = [s for s in cron_times(schedule, first - CRON_LOOKBACK_DAYS * DAY, last)
                if stop is None or s < stop["t"]]
        dones = [s + 3 + g["cronjob_run_seconds"] for s in runs]
        for i, s in enumerate(runs):
            started, done = s + 3, dones[i]
            gone = min(done + ttl if ttl else math.inf, dones[i + JOBS_KEPT] if i + JOBS_KEPT < len(runs) else math.inf)
            if gone < first:
                continue
            # the CronJob controller names a Job <cronjob>-<scheduled unix minutes>; its pod <job>-<5>
            job = f"{w.name}-{int(s) // 60}"
            jl = {**KSM_TARGET, "namespace": w.namespace, "job_name": job}
            h.extend(KSM, "kube_job_status_start_time", jl,
                     [(t, started) for t in ksm_times[bisect.bisect_left(ksm_times, s):bisect.bisect_right(ksm_times, gone)]])
            state = state_at(w.name, s)
            for c in w.containers:
                container(f"{job}-{_safe(5, job)}", c, _image(c, state), started, started, done)
        successes = sorted(dones) if stop is None or "last_success" not in stop else [stop["last_success"]]
        cl = {**KSM_TARGET, "namespace": w.namespace, "cronjob": w.name}
        points, j, value = [], 0, None
        for t in ksm_times:
            while j < len(successes) and successes[j] <= t:
                value, j = successes[j], j + 1
            if value is not None:
                points.append((t, value))
        h.extend(KSM, "kube_cronjob_status_last_successful_time", cl, points)
