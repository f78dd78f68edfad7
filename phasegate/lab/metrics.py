"""Lab component `metrics`: a real Prometheus and a real Pushgateway on loopback, and the bake's history.

Prometheus scrapes the Pushgateway (honor_labels, as the cluster's chart does), loads the registry
alert rules from a rules file, and serves a bake history backfilled with `promtool tsdb
create-blocks-from openmetrics`. A history is data (phasegate.lab.bake_history): the green bake, the
green bake with one fault's events, the real May-June 2026 replay, or a bake still open (day 5).
Switching history restarts Prometheus on the same port with a fresh data directory holding that
history's blocks, ships the history's retention-job log lines to the Loki stand-in (as Alloy would)
and gives the Uptime Kuma stand-in the monitor's heartbeats.

The lab's bake starts on a Monday 15 to 21 days before today, so the whole window lies in the past
and its Sundays are days 6 and 13.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import httpx
import yaml

from phasegate.lab import bake_history
from phasegate.lab.faults import fault
from phasegate.lab.procs import LabError, Proc, free_port, loopback_http, wait_until

PROMETHEUS = "prometheus"
PUSHGATEWAY = "prometheus-pushgateway"
PROMTOOL = "promtool"


# The registry integrity alerts as Phase 0 left them (group `Cluster`,
# stacks/monitoring/modules/monitoring/prometheus_chart_values.tpl:1653-1674 @5d22b449), verbatim.
PHASE0_RULES = [
    {"alert": "RegistryManifestIntegrityFailure", "expr": "registry_manifest_integrity_failures > 0", "for": "30m",
     "labels": {"severity": "critical"},
     "annotations": {
         "summary": "{{ $labels.instance }}: {{ $value }} broken manifest reference(s) — orphan index or missing blob",
         "description": "The integrity probe CronJob found {{ $value }} manifest/blob references that return non-200 "
                        "on {{ $labels.instance }}. For registry.viktorbarzin.me see "
                        "docs/runbooks/registry-rebuild-image.md (orphan OCI-index child from cleanup-tags.sh+GC race). "
                        "For forgejo.viktorbarzin.me see docs/runbooks/forgejo-registry-rebuild-image.md."}},
    {"alert": "RegistryIntegrityProbeStale", "expr": "time() - registry_manifest_integrity_last_run_timestamp > 3600",
     "for": "15m", "labels": {"severity": "warning"},
     "annotations": {"summary": "{{ $labels.instance }} integrity probe has not reported in >1h — CronJob may be broken"}},
    {"alert": "RegistryCatalogInaccessible", "expr": "registry_manifest_integrity_catalog_accessible == 0",
     "for": "15m", "labels": {"severity": "critical"},
     "annotations": {"summary": "{{ $labels.instance }} probe cannot fetch /v2/_catalog — auth failure or registry down"}},
]


def rules(variant: str = "phase0", instance: str = "") -> dict:
    """The `Cluster` group's registry integrity alerts; `variant` names a fault's shape.

    - `phase0`: the real rules (above);
    - `pre-phase0`: the same expressions with the annotations before Phase 0 (no instance named;
      the diff of 5d22b449 changed only the annotation text);
    - `aggregated`: the failure and catalog alerts summed over every instance (one alert for all);
    - `old-job`: the stale alert selecting the old probe's Pushgateway job (`registry-integrity-probe`,
      stacks/monitoring/modules/monitoring/main.tf:252-431 @5d22b449);
    - `hard-coded`: every expression pinned to `instance` (one registry only).
    """
    import copy

    rs = copy.deepcopy(PHASE0_RULES)
    if variant == "pre-phase0":
        rs[0]["annotations"] = {"summary": "Registry has {{ $value }} broken manifest reference(s) — orphan index or missing blob"}
        rs[1]["annotations"] = {"summary": "Registry integrity probe has not reported in >1h — CronJob may be broken"}
        rs[2]["annotations"] = {"summary": "Registry probe cannot fetch /v2/_catalog — auth failure or registry down"}
    elif variant == "aggregated":
        rs[0]["expr"] = "sum(registry_manifest_integrity_failures) > 0"
        rs[2]["expr"] = "min(registry_manifest_integrity_catalog_accessible) == 0"
    elif variant == "old-job":
        rs[1]["expr"] = 'time() - registry_manifest_integrity_last_run_timestamp{job="registry-integrity-probe"} > 3600'
    elif variant == "hard-coded":
        for r in rs:
            r["expr"] = r["expr"].replace("_failures", f'_failures{{instance="{instance}"}}').replace(
                "_timestamp", f'_timestamp{{instance="{instance}"}}').replace(
                "_accessible", f'_accessible{{instance="{instance}"}}')
    elif variant != "phase0":
        raise ValueError(f"unknown rules variant {variant!r}")
    return {"groups": [{"name": "Cluster", "rules": rs}]}


def lab_bake_start(today: dt.date | None = None) -> dt.date:
    """A Monday at least 15 days before today: the 14-day window is over and has two Sundays."""
    d = (today or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=15)
    return d - dt.timedelta(days=d.weekday())


OPEN_DAY = 5  # the open bake's "today" is day 5 of 14
# histories of a bake still open (start = today - 5 days, rendered up to now): name -> (description, events)
OPEN_HISTORIES: dict[str, tuple[str, list[dict]]] = {
    "bake-open-day5": ("a clean bake on day 5 of 14", []),
    "bake-open-day5-integrity-failure-day3": (
        "day 5 of 14; the integrity probe found broken references for an hour on day 3",
        [{"what": "integrity_failures", "day": 3, "at": "09:00", "hours": 1, "value": 2, "alert": True}]),
}


def _config_uptime_kuma():
    from phasegate import config as _config

    return _config.UptimeKuma()


class MetricsLab:
    name = "metrics"

    def __init__(self):
        self.dir: Path | None = None
        self.prom_port = 0
        self.push_port = 0
        self.prometheus: Proc | None = None
        self.pushgateway: Proc | None = None
        self.history = "green"
        self.start_date = lab_bake_start()
        self.days = 14
        self.names: bake_history.Names | None = None
        self.inventory_override: dict = {}
        self._generation = 0
        self._lab = None
        self.probe_dies = False  # fault: the probe pod exits before pushing
        self.retention_dates: dict = {}  # (repository, child digest) -> the date the seed gave it
        self.healthz_monitor_id = 0
        self._stopped = threading.Event()
        self._rendered: dict[tuple, bake_history.History] = {}  # (history, start, days) -> rendered (see _render)
        self._group_blocks: dict[tuple, Path] = {}  # a block group's content key -> its backfilled blocks
        self._green_groups: set[tuple] = set()
        self._backfills = 0

    # -- component protocol ------------------------------------------------
    def start(self, lab) -> None:
        for b in (PROMETHEUS, PUSHGATEWAY, PROMTOOL):
            if shutil.which(b) is None:
                raise LabError(f"{b} not found: run scripts/setup.sh (Debian packages prometheus, prometheus-pushgateway)")
        self._lab = lab
        self.dir = lab.dir / "metrics"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.names = self._names(lab)
        self.push_port = free_port()
        self.prom_port = free_port()
        # no persistence file (Debian's default is /var/lib/prometheus/pushgateway.data): one run's pushes,
        # or another lab's, must never be served to the next run
        self.pushgateway = Proc("pushgateway", [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{self.push_port}",
                                                "--persistence.file="],
                                self.dir / "pushgateway.log").start()
        self.write_rules(rules())
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [str(self.dir / "rules.yml")],
            "scrape_configs": [{"job_name": "pushgateway", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{self.push_port}"]}]}],
        }))
        wait_until(lambda: loopback_http().get(f"{self.pushgateway_url}/-/ready", timeout=1).status_code == 200,
                   timeout=15, what="pushgateway", proc=self.pushgateway)
        if "uptime_kuma" in lab:  # the monitor external-monitor-sync creates from Forgejo's ingress annotation
            self.healthz_monitor_id = lab["uptime_kuma"].add_monitor(
                _config_uptime_kuma().healthz_monitor, self.names.healthz_instance, interval=300, retries=3)
        h = self._render("green")
        self._start_prometheus("green", h)
        self._ship(h)
        if self.forgejo() is not None:
            self.retention_dates = make_retention_safe(self.forgejo(), _retention())
        if "cluster" in lab:  # the probe CronJob's pods run phasegate.integrity and push here
            from phasegate import config as _config

            m = _config.Metrics()
            lab["cluster"].api.register_runner(m.probe_namespace, m.probe_cronjob, make_probe_runner(self))
        threading.Thread(target=self._each_midnight, name="lab-verify-day", daemon=True).start()

    def _each_midnight(self) -> None:
        """The inventory written again after every UTC midnight: its weekly full verify is due "today" (inventory()),
        and a lab that runs past midnight would otherwise judge the new day by yesterday's weekday (Pending)."""
        while True:
            now = dt.datetime.now(dt.UTC)
            midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(0), dt.UTC)
            if self._stopped.wait((midnight - now).total_seconds() + 1):
                return
            if self._lab is not None and self._lab.started:
                with contextlib.suppress(OSError, LabError):  # a lab going down as the day turns
                    self._lab.write()

    def stop(self) -> None:
        self._stopped.set()
        for p in (self.prometheus, self.pushgateway):
            if p:
                p.stop()

    def forgejo(self):
        """The Forgejo stand-in, if the lab runs one."""
        lab = self._lab
        return getattr(lab["registries"], "forgejo", None) if lab is not None and "registries" in lab else None

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    @property
    def pushgateway_url(self) -> str:
        return f"http://127.0.0.1:{self.push_port}"

    def inventory(self) -> dict:
        n = self.names
        inv = {
            "metrics": {
                "prometheus_url": self.prometheus_url,
                "pushgateway_url": self.pushgateway_url,
                "forgejo_instance": n.forgejo_instance,
                "private_instance": n.private_instance,
                "healthz_instance": n.healthz_instance,
            },
            # the lab's weekly full verify is due today, so the gate walks every byte when it runs
            "bake": {"start": self.start_date, "days": self.days, "last_dual_push": self.start_date,
                     "full_verify_weekday": dt.datetime.now(dt.UTC).strftime("%A")},
        }
        for section, values in self.inventory_override.items():
            inv.setdefault(section, {}).update(values)
        return inv

    def env(self) -> dict:
        return {}

    # -- names the history uses ----------------------------------------------
    @staticmethod
    def _names(lab) -> bake_history.Names:
        """Instance labels from the registries the lab started before this component."""
        merged: dict = {}
        for name in lab.names:
            if name in lab and name != "metrics":
                merged.update({k: v for k, v in lab[name].inventory().items() if isinstance(v, dict)})
        forgejo = merged.get("forgejo", {})
        forgejo_host = forgejo.get("host", "forgejo.lab.test")
        forgejo_url = forgejo.get("url", f"https://{forgejo_host}")
        private = merged.get("private_registry", {})
        private_host = private.get("host", "registry-private.lab.test")
        return bake_history.Names(forgejo_instance=forgejo_host, private_instance=private_host,
                                  healthz_instance=f"{forgejo_url}/api/healthz",
                                  workloads=project_workloads(forgejo_host, forgejo.get("owner", "viktor"), private_host,
                                                              (private.get("aliases") or [private_host])[0]))

    # -- histories -------------------------------------------------------------
    def _history_spec(self, history: str) -> tuple[dt.date, list[dict], float | None]:
        """(bake start, events, render until) of a named history."""
        now = dt.datetime.now(dt.UTC)
        if history in OPEN_HISTORIES:  # a bake still open: day 5 of 14, rendered up to now
            start = now.date() - dt.timedelta(days=OPEN_DAY)
            return start, OPEN_HISTORIES[history][1], now.timestamp() - 60
        if history == "replay":
            return bake_history.REPLAY_START, bake_history.REPLAY, None
        return lab_bake_start(), ([] if history == "green" else bake_history.FAULTS[history][1]), None

    def _render(self, history: str) -> bake_history.History:
        """The history rendered; the green one and the last other one are kept (each switch to a fault's history
        and back needs both again; an open history is rendered up to now, so never kept)."""
        start, events, until = self._history_spec(history)
        key = (history, start, self.days)
        if until is None and key in self._rendered:
            return self._rendered[key]
        h = bake_history.render(start, self.days, self.names, events, until=until)
        if until is None:
            self._rendered = {k: v for k, v in self._rendered.items() if k[0] == "green"}
            self._rendered[key] = h
        return h

    def _blocks(self, history: str, h: bake_history.History) -> list[Path]:
        """The TSDB blocks of a history, one directory per group of families (History.block_groups), each
        backfilled once per content: a fault's history shares most groups with the green one and only its
        changed families are backfilled again. The green history's groups are kept in the lab directory
        (a later start in it reuses them, as every history's blocks were before); other groups that are
        neither green's nor this history's are removed."""
        groups = h.block_groups()
        if history == "green":
            return self._green_blocks(groups, h)
        out = []
        for key, names in groups:
            d = self._group_blocks.get(key)
            if d is None or not d.exists():
                self._backfills += 1
                d = self._backfill(h, names, self.dir / "blocks" / f"group-{self._backfills}")
                self._group_blocks[key] = d
            out.append(d)
        if not self._green_groups:  # green's groups are never removed: every fault switches back to it
            green = self._render("green")
            self._green_blocks(green.block_groups(), green)
        keep = self._green_groups | {key for key, _ in groups}
        for key in [k for k in self._group_blocks if k not in keep]:
            shutil.rmtree(self._group_blocks.pop(key), ignore_errors=True)
        return out

    def _green_blocks(self, groups: list[tuple[tuple, list[str]]], h: bake_history.History) -> list[Path]:
        green = self.dir / "blocks" / "green"
        dirs = [green / f"{i:02d}" for i in range(len(groups))]
        if not all(d.exists() for d in dirs):
            shutil.rmtree(green, ignore_errors=True)
            tmp = green.with_suffix(".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            for (_key, names), d in zip(groups, dirs, strict=True):
                self._backfill(h, names, tmp / d.name)
            tmp.rename(green)
        self._green_groups = {key for key, _ in groups}
        self._group_blocks.update({key: d for (key, _), d in zip(groups, dirs, strict=True)})
        return dirs

    def _backfill(self, h: bake_history.History, names: list[str], out: Path) -> Path:
        """`promtool tsdb create-blocks-from openmetrics` of the families `names` into `out`."""
        shutil.rmtree(out, ignore_errors=True)
        om = self.dir / "backfill.om"
        om.write_text(h.openmetrics(names))
        tmp = out.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        proc = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=1000h",
                               str(om), str(tmp)], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise LabError(f"promtool backfill of {', '.join(names)} failed: {proc.stderr[-2000:]}")
        om.unlink()
        tmp.rename(out)
        return out

    def _start_prometheus(self, history: str, h: bake_history.History | None = None) -> None:
        self._generation += 1
        data = self.dir / f"tsdb-{self._generation}"
        old = [p for p in self.dir.glob("tsdb-*") if p != data]
        for p in old:
            shutil.rmtree(p, ignore_errors=True)
        data.mkdir(parents=True)
        for group in self._blocks(history, h or self._render(history)):
            for block in group.iterdir():
                # hard links, not copies: Prometheus never rewrites a block's files (a compaction writes a new
                # block and deletes the old one's links), so the rendered blocks stay intact for the next start;
                # the groups' blocks overlap in time and hold disjoint series, which Prometheus queries as one
                shutil.copytree(block, data / block.name, copy_function=os.link)
        self.prometheus = Proc("prometheus", [
            PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
            # the real retention is 26w (PCV:201 @5d22b449); the lab's replay lies in June 2026 and the lab's
            # clock is today's, so the lab keeps blocks longer than production would
            "--storage.tsdb.retention.time=3650d", f"--web.listen-address=127.0.0.1:{self.prom_port}",
            "--web.console.templates=/dev/null", "--web.console.libraries=/dev/null",
        ], self.dir / "prometheus.log").start()
        wait_until(lambda: loopback_http().get(f"{self.prometheus_url}/-/ready", timeout=1).status_code == 200,
                   timeout=30, what="prometheus", proc=self.prometheus)
        self.history = history

    def _ship(self, h: bake_history.History) -> None:
        """The history's pod logs to Loki (POST /loki/api/v1/push, Alloy's way) and heartbeats to Uptime Kuma."""
        lab = self._lab
        if lab is not None and "loki" in lab:
            loki = lab["loki"]
            loki.clear()
            streams = [{"stream": labels, "values": [[str(ns), line] for ns, line in entries]}
                       for labels, entries in h.logs if entries]
            if streams:
                r = loopback_http().post(f"{loki.url}/loki/api/v1/push", json={"streams": streams}, timeout=30)
                if r.status_code != 204:
                    raise LabError(f"Loki stand-in refused the history's logs: HTTP {r.status_code} {r.text[:200]}")
        if lab is not None and "uptime_kuma" in lab:
            kuma = lab["uptime_kuma"]
            kuma.set_beats(self.healthz_monitor_id, h.beats)

    def use_history(self, history: str) -> None:
        if history == self.history and self.prometheus and self.prometheus.alive() \
                and history not in OPEN_HISTORIES:
            return
        h = self._render(history)
        start = self._history_spec(history)[0]
        if self.prometheus:
            self.prometheus.stop()
        self._start_prometheus(history, h)
        self._ship(h)
        if start != self.start_date:
            self.start_date = start
            if self._lab is not None and self._lab.started:
                self._lab.write()

    def prom_window_end(self) -> float:
        """The end of the current history's bake window (unix seconds), for instant queries in tests."""
        start = dt.datetime.combine(self.start_date, dt.time(0), dt.UTC).timestamp()
        return min(start + self.days * 86400, dt.datetime.now(dt.UTC).timestamp())

    @contextlib.contextmanager
    def with_history(self, history: str):
        self.use_history(history)
        try:
            yield
        finally:
            self.use_history("green")

    # -- rules -----------------------------------------------------------------
    def write_rules(self, doc: dict) -> None:
        (self.dir / "rules.yml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def reload_rules(self, doc: dict) -> None:
        """Swap the rules file and make Prometheus re-read it (SIGHUP), waiting until it shows."""
        self.write_rules(doc)
        self.prometheus.signal(signal.SIGHUP)
        want = {r["alert"]: r["expr"] for g in doc["groups"] for r in g["rules"]}

        def loaded() -> bool:
            data = loopback_http().get(f"{self.prometheus_url}/api/v1/rules", timeout=2).json()["data"]
            seen = {r["name"]: r["query"] for g in data["groups"] for r in g["rules"]}
            return all(name in seen for name in want) and all(
                _norm(seen[name]) == _norm(expr) for name, expr in want.items())

        wait_until(loaded, timeout=15, what="prometheus rule reload", proc=self.prometheus)

    def set_inventory(self, section: str, **values) -> None:
        self.inventory_override.setdefault(section, {}).update(values)
        self._lab.write()

    def clear_inventory(self, section: str) -> None:
        self.inventory_override.pop(section, None)
        self._lab.write()


def _norm(expr: str) -> str:
    return "".join(expr.split())


# The images the projects' workloads ran before the cutover, where not registry-private's own name
# (stacks @ 5d22b449): beadboard through the registry's :5050 name (stacks/beads-server/main.tf:570; the lab's
# alias of registry-private stands for it), claude-memory-mcp from Docker Hub (stacks/claude-memory/main.tf:179)
PRE_CUTOVER = {"beadboard": "alias", "claude-memory-mcp": "docker.io/viktorbarzin/claude-memory-mcp:17"}


def project_workloads(forgejo_host: str, owner: str, private_host: str,
                      private_alias: str) -> tuple[bake_history.RunningWorkload, ...]:
    """The default inventory's [[projects]] workloads with their main containers (the cluster's shapes,
    phasegate.lab.cluster.WORKLOAD_SHAPES) and the seeded tag: before the cutover on registry-private (or where
    PRE_CUTOVER says), after it on Forgejo under the owner."""
    from phasegate import config as _config
    from phasegate.lab import cluster, seed

    out = []
    for p in _config.load(_config.DEFAULT_INVENTORY).projects:
        tag = seed.sha_tag(p.image, 2)
        before = PRE_CUTOVER.get(p.image, f"{private_host}/{p.image}:{tag}")
        if before == "alias":
            before = f"{private_alias}/{p.image}:{tag}"
        for w in p.workloads:
            shape = cluster.WORKLOAD_SHAPES.get(w.name, [(False, w.name, cluster.OWN)])
            containers = tuple((name, before if img == cluster.OWN else img,
                                f"{forgejo_host}/{owner}/{p.image}:{tag}" if img == cluster.OWN else img)
                               for init, name, img in shape if not init)
            out.append(bake_history.RunningWorkload(w.kind, p.workload_namespace(w), w.name, containers,
                                             node=("k8s-node1", "k8s-node3")[len(out) % 2]))
    return tuple(out)


# -- faults: one per bake history, plus the alert rules and the exit date ----------


def _history_fault(name: str, description: str):
    def make(lab):
        with lab["metrics"].with_history(name):
            yield

    make.__name__ = name.replace("-", "_")
    fault(name, component="metrics", description=description)(make)


for _name, (_description, _events) in bake_history.FAULTS.items():
    _history_fault(_name, _description)
for _name, (_description, _events) in OPEN_HISTORIES.items():
    _history_fault(_name, _description)
_history_fault("replay", "the real May-June 2026 history (infra-facts §12) as a bake window 2026-06-06 .. 06-20")


@fault("alerts-not-instance-aware", component="metrics",
       description="the registry alert rules are pinned to registry-private's instance (one registry only)")
def alerts_not_instance_aware(lab):
    m = lab["metrics"]
    m.reload_rules(rules("hard-coded", m.names.private_instance))
    try:
        yield
    finally:
        m.reload_rules(rules())


@fault("alerts-aggregate-instance-away", component="metrics",
       description="the failure and catalog alerts sum over every instance: one alert, no instance label")
def alerts_aggregate_instance_away(lab):
    m = lab["metrics"]
    m.reload_rules(rules("aggregated"))
    try:
        yield
    finally:
        m.reload_rules(rules())


@fault("alerts-select-old-probe-job", component="metrics",
       description="the stale alert selects the old probe's job (registry-integrity-probe): Forgejo's probe unseen")
def alerts_select_old_probe_job(lab):
    m = lab["metrics"]
    m.reload_rules(rules("old-job"))
    try:
        yield
    finally:
        m.reload_rules(rules())


@fault("alerts-pre-phase0-annotations", component="metrics",
       description="the alert annotations as before Phase 0: they never name the registry that fired")
def alerts_pre_phase0_annotations(lab):
    m = lab["metrics"]
    m.reload_rules(rules("pre-phase0"))
    try:
        yield
    finally:
        m.reload_rules(rules())


@fault("bake-dual-push-too-recent", component="metrics",
       description="a project started dual-pushing only 10 days ago")
def dual_push_too_recent(lab):
    m = lab["metrics"]
    m.set_inventory("bake", last_dual_push=dt.datetime.now(dt.UTC).date() - dt.timedelta(days=10))
    try:
        yield
    finally:
        m.clear_inventory("bake")


@fault("last-dual-push-typed-early", component="forgejo_repos",
       description="bake.last_dual_push typed a day before the first project even started dual-pushing")
def last_dual_push_typed_early(lab):
    m = lab["metrics"]
    m.set_inventory("bake", last_dual_push=(lab["forgejo_repos"].t0 - dt.timedelta(days=1)).date())
    try:
        yield
    finally:
        m.clear_inventory("bake")


# -- the integrity probe's container, as a job runner of the cluster stand-in ----------


def probe_exposition(result, instance: str, catalog_accessible: bool, now: float) -> str:
    """The text the probe pushes (Prometheus exposition format), one gauge per line, each sample
    labelled `instance` (MON:591-602 @5d22b449: the grouping key is the job only)."""
    values = {
        "registry_manifest_integrity_failures": len(result.broken) if result else 0,
        "registry_manifest_integrity_catalog_accessible": 1 if catalog_accessible else 0,
        "registry_manifest_integrity_repos_checked": result.repositories if result else 0,
        "registry_manifest_integrity_tags_checked": result.tags if result else 0,
        "registry_manifest_integrity_indexes_checked": result.indexes if result else 0,
        "registry_manifest_integrity_last_run_timestamp": int(now),
    }
    lines = []
    for name, v in values.items():
        lines += [f"# TYPE {name} gauge", f'{name}{{instance="{instance}"}} {v}']
    return "\n".join(lines) + "\n"


def make_probe_runner(metrics: MetricsLab):
    """What the probe's pod does in the lab: walk the registry it is given (REGISTRY_URL,
    REG_USER/REG_PASS from its Secret) with phasegate.integrity, then push to the Pushgateway
    (the lab's, which is what the in-cluster service name resolves to here)."""
    import time

    from phasegate import integrity
    from phasegate.oci import RegistryClient
    from phasegate.secrets import Secret
    from phasegate.verdict import Broken

    def run(ctx) -> tuple[int, str]:
        if metrics.probe_dies:
            return 1, "ERROR: unable to select packages: curl (no such package)\n"  # the network install failing
        env = ctx.env
        url = env.get("REGISTRY_URL", "")
        instance = httpx.URL(url).netloc.decode()
        client = RegistryClient(url, username=env.get("REG_USER", ""), password=Secret(env.get("REG_PASS", "")),
                                ca_bundle=str(ctx.lab.ca.bundle))
        result, catalog = None, True
        try:
            with client:
                result = integrity.check_registry(client, mode="head")
        except Broken as e:
            catalog = False
            log = f"catalog not accessible: {e}\n"
        else:
            log = f"{result.summary()}\n" + "".join(f"BROKEN {b.line()}\n" for b in result.broken)
        job = metrics.names.probe_push_job
        # REGISTRY_INSTANCE names the instance (MON:457-516 @5d22b449); POST, like the probe's curl (MON:526-527)
        instance = env.get("REGISTRY_INSTANCE") or instance
        body = probe_exposition(result, instance, catalog, time.time())
        r = loopback_http().post(f"{metrics.pushgateway_url}/metrics/job/{job}", content=body, timeout=10)
        if r.status_code not in (200, 202):
            return 1, log + f"push failed: HTTP {r.status_code}\n"
        return 0, log + "pushed\n"

    return run


@fault("probe-dies-at-startup", component="metrics",
       description="the integrity probe's pod exits at start (its network package install fails): nothing is pushed")
def probe_dies_at_startup(lab):
    m = lab["metrics"]
    m.probe_dies = True
    try:
        yield
    finally:
        m.probe_dies = False


@fault("retention-cronjob-not-dry-run", component="cluster",
       description="the forgejo-cleanup CronJob deletes from day one (DRY_RUN=false in Phase 0)")
def retention_not_dry_run(lab):
    from phasegate import config as _config

    r = _config.Retention()
    api = lab["cluster"].api

    def set_dry_run(value: str):
        def change(cj):
            for c in cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    if e["name"] == r.dry_run_env:
                        e["value"] = value
        api.mutate("CronJob", r.cronjob, r.namespace, change)

    set_dry_run("false")
    try:
        yield
    finally:
        set_dry_run(r.phase0_dry_run)


# -- the retention history of the Forgejo stand-in -----------------------------------------
#
# The seeded Forgejo holds every version with the same created_at (the seed's second), so
# the keep-set "newest 10" would be decided by ties. The green lab gives the stand-in the
# dates of a registry on which the retention job is safe: the untagged index children a
# kept version needs are among the newest versions of their package. The fault
# `retention-orphans-children` puts them back where the 2026-06-10 incident had them:
# older than the newest ten, in the job's delete set.


def _children_needed(store, repo: str, kept_digests: list[str]) -> set[str]:
    out, stack = set(), list(kept_digests)
    while stack:
        m = store.manifest(stack.pop()) or {}
        for c in m.get("manifests") or []:
            d = c.get("digest") if isinstance(c, dict) else None
            if d and d not in out:
                out.add(d)
                stack.append(d)
    return out


def retention_orphans(forgejo, retention) -> dict[tuple[str, str], dt.datetime]:
    """{(repository, child digest): created_at} of every child the keep-set would delete."""
    from phasegate.retention import keep_sets

    found = {}
    versions = forgejo.versions()
    sets = keep_sets(versions, keep_last_n=retention.keep_last_n, always_keep=retention.always_keep,
                     keep_substring=retention.keep_substring)
    by_name = {}
    for v in versions:
        by_name.setdefault(v.name, {})[v.version] = v
    for name, ks in sets.items():
        deleted = {v.version for v in ks.delete}
        owner = next(iter(by_name[name].values())).owner
        repo = f"{owner}/{name}"
        needed = _children_needed(forgejo.store, repo, [v.digest for v in ks.keep])
        for d in needed & deleted:
            found[(repo, d)] = by_name[name][d].created_at
    return found


def make_retention_safe(forgejo, retention, rounds: int = 5) -> dict[tuple[str, str], dt.datetime]:
    """Give needed children fresh dates until the keep-set orphans nothing; returns the old dates."""
    old: dict[tuple[str, str], dt.datetime] = {}
    for _ in range(rounds):
        orphans = retention_orphans(forgejo, retention)
        if not orphans:
            return old
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        for (repo, digest), created in orphans.items():
            old.setdefault((repo, digest), created)
            forgejo.set_created_at(repo, digest, now)
    raise LabError(f"retention keep-set still orphans children after {rounds} rounds")


@fault("retention-orphans-children", component="metrics",
       description="the 2026-06-10 situation: index children stored as untagged versions older than the newest ten")
def retention_orphans_children(lab):
    m = lab["metrics"]
    forgejo = m.forgejo()
    if not m.retention_dates:  # the seed's push history keeps every needed child: build the 06-10 keep-set
        from phasegate.lab.forgejo.packages_faults import _retention_20260610

        yield from _retention_20260610(lab)
        return
    for (repo, digest), created in m.retention_dates.items():
        forgejo.set_created_at(repo, digest, created)
    try:
        yield
    finally:
        make_retention_safe(forgejo, _retention())


def _retention():
    from phasegate import config as _config

    return _config.Retention()


def _layers(forgejo, version) -> list[str]:
    manifest = forgejo.store.manifest(version.digest) or {}
    while manifest.get("manifests"):  # an index: follow its first image
        manifest = forgejo.store.manifest(manifest["manifests"][0]["digest"]) or {}
    return [layer["digest"] for layer in manifest.get("layers") or []]


@fault("forgejo-newest-image-layer-lost", component="metrics",
       description="Forgejo: a layer of the newest tagged image is gone from storage (the smoke pull breaks)")
def newest_image_layer_lost(lab):
    yield from _layer_lost(lab, newest=True)


@fault("forgejo-oldest-image-layer-lost", component="metrics",
       description="Forgejo: a layer only the oldest tagged image uses is gone from storage (the daily smoke pull "
                   "of the newest image and the probe's HEADs do not see it; the weekly full verify does)")
def oldest_image_layer_lost(lab):
    yield from _layer_lost(lab, newest=False)


def _layer_lost(lab, newest: bool):
    import shutil

    m = lab["metrics"]
    forgejo = m.forgejo()
    engine = lab["registries"].forgejo_engine
    tagged = sorted((v for v in forgejo.versions() if not v.untagged), key=lambda v: (v.created_at, v.id))
    layers, pick = [], None
    for pick in ([tagged[-1]] if newest else tagged[:-1]):  # oldest first: one with a layer of its own
        others = set() if newest else {d for v in tagged if v is not pick for d in _layers(forgejo, v)}
        layers = [d for d in _layers(forgejo, pick) if d not in others]
        if layers:
            break
    if not layers:
        raise LabError(f"no Forgejo image with a layer of its own to lose (last tried {pick})")
    blob = engine.blob_dir(layers[-1])
    aside = engine.dir / "fault-aside" / f"layer-{blob.name}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(blob), str(aside))
    try:
        yield
    finally:
        shutil.move(str(aside), str(blob))
