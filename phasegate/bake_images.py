"""Phase 2, "No image= lines change. Pods still pull from registry.viktorbarzin.me" (the plan's first Phase 2
item): over the bake window, no container of a project workload ran an image from the Forgejo host; Phase 3
flips the image= lines, not the bake.

The signal, and why it is the only one (sources in docs/inventory.md, "Bake signals"):
- kube-state-metrics' `kube_pod_container_info{image}` is dropped by the real scrape config
  (stacks/monitoring/modules/monitoring/prometheus_chart_values.tpl:464 @ 5d22b449, the
  kubernetes-service-endpoints drop list), and no kept KSM series carries an image.
- cAdvisor's per-container series carry `namespace`, `pod`, `container`, `image`, `name`, `id` (kubelet
  pkg/kubelet/server/server.go `containerPrometheusLabelsFunc`: image = the container's Spec.Image), plus the
  scrape's `job`, `instance` (the node) and the node's labels mapped in (PCV:386-403). The cadvisor job's
  metric_relabel_configs act on `__name__` only, no labeldrop (PCV:404-414 @ 5d22b449, unchanged at af6aa18b,
  the bake era's 2-minute scrapes, and at HEAD 0cd4afb6). `container_start_time_seconds` is kept (PCV:413)
  and is emitted for every container cAdvisor sees, whatever metric sets are enabled (google/cadvisor
  metrics/prometheus.go: the container's creation/start time, unix seconds): its value says when the
  container started, to the second, even when the first scrape saw it up to 2 minutes later.

What `image` holds with containerd (kubelet passes the image *ID* to CreateContainer: kuberuntime_container.go
generateContainerConfig `ImageSpec{Image: imageRef}`, imageRef = the ID EnsureImageExists returns): containerd's
CRI resolves the ID to its image record and names the container's image after `References[0]`
(pkg/cri/server/helpers.go `toContainerdImage`; the client's `WithNewSnapshot` sets `c.Image = i.Name()`),
and cAdvisor's containerd handler reports `cntr.Image` (container/containerd/handler.go). The references of one
image ID are merged and sorted (pkg/cri/store/image/image.go `store.add`: `docker.Sort`, distribution/reference
sort.go: name+tag before name+digest, then alphabetically). So the label is the tag form
(`registry.viktorbarzin.me/payslip-ingest:4f70681d`), not a digest, and when the node holds the same bytes
under several names it is the alphabetically first tag: `forgejo.viktorbarzin.me/...` sorts before
`registry.viktorbarzin.me/...` and `...:5050/...`, so a container flipped to Forgejo always reads as Forgejo;
one whose pod spec still names registry-private reads as Forgejo only on a node that also pulled those bytes
from Forgejo, which is a pull from Forgejo during the bake either way.

Which pods are a workload's (no kept series names a pod's owner: `kube_pod_owner` is dropped, PCV:464):
a Deployment's pods are `<deployment>-<pod-template-hash>-<5>` (pkg/controller/deployment/sync.go: the
ReplicaSet is `<deployment>-<hash>`, hash = rand.SafeEncodeString of the template hash, at most 10 characters
of the alphabet below; its pods get GenerateName `<replicaset>-` and k8s.io/apiserver names.SimpleNameGenerator
appends 5 of the same characters); a CronJob's Jobs are `<cronjob>-<scheduled unix minutes>`
(pkg/controller/cronjob getJobName) and their pods `<job>-<5>`.

Absence is never green: a Deployment's containers must be seen across the window with no gap longer than the
scenario's tolerance; a CronJob is judged by its runs (`kube_job_status_start_time`, KSM, kept PCV:468): runs
none of whose containers cAdvisor saw are "no data" (a run shorter than a 2-minute scrape, or one whose
container never started, leaves no sample); a CronJob with no run in the window pulled nothing, which
`kube_cronjob_status_last_successful_time` (kept PCV:468) must show across the window, else "no data".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from phasegate import cri
from phasegate.prometheus import iso
from phasegate.verdict import GateFailed

if TYPE_CHECKING:
    from phasegate import config
    from phasegate.bake import BakeJudge
    from phasegate.prometheus import Result

CRITERION = "no Forgejo image before the cutover"  # phasegate.bake.NO_FORGEJO_IMAGE
DAY = 86400
# k8s.io/apimachinery/pkg/util/rand: the alphabet of SafeEncodeString and String (no vowels)
SAFE = "bcdfghjklmnpqrstvwxz2456789"
MAX_POINTS = 200  # offending points per workload on the chart (a CronJob's runs are one container each)


def pod_regex(kind: str, name: str) -> str:
    """The names of the pods of a Deployment or CronJob, as a PromQL (RE2, anchored) regex."""
    if kind == "Deployment":
        return f"{name}-[{SAFE}]{{1,10}}-[{SAFE}]{{5}}"
    if kind == "CronJob":
        return f"{name}-[0-9]+-[{SAFE}]{{5}}"
    raise ValueError(f"unknown workload kind {kind!r}")


@dataclass
class Container:
    """One container of one pod on one image, as cAdvisor reported it (every series of it merged)."""

    pod: str
    container: str
    image: str
    node: str
    first: float  # first sample in the window
    last: float
    started: float  # container_start_time_seconds (0 = unknown)
    times: list[float] = field(default_factory=list)

    def line(self, day) -> str:
        started = f"started {iso(self.started)}, " if self.started > 0 else ""
        return (f"pod {self.pod} container {self.container} image {self.image} on {self.node or '?'}: "
                f"{started}first scraped {iso(self.first)} ({day(self.first)}), last {iso(self.last)}")


@dataclass
class Workload:
    """What the window holds of one project workload."""

    label: str  # "Deployment ns/name"
    kind: str
    promql: str
    containers: list[Container] = field(default_factory=list)
    runs: dict[str, float] = field(default_factory=dict)  # CronJob: job name -> start, runs started in the window
    note: str = ""  # why it has nothing to judge (a CronJob that did not run)
    no_data: str = ""  # why it cannot be judged
    holes: list[tuple[float, float]] = field(default_factory=list)


class Registries:
    """Names an image's registry: Forgejo, registry-private (host or alias), or another host."""

    def __init__(self, inv: config.Inventory):
        self.forgejo = inv.forgejo.host.lower()
        self.private = {h.lower() for h in [inv.private_registry.host, *inv.private_registry.aliases]}

    def of(self, image: str) -> str:
        host, _ = cri.split_image(image)
        if host == self.forgejo:
            return "Forgejo"
        return "registry-private" if host in self.private else host

    def is_forgejo(self, image: str) -> bool:
        return bool(image) and cri.split_image(image)[0] == self.forgejo


def containers_of(res: Result) -> list[Container]:
    """The series of a workload's pods merged per (pod, container, image): a restarted container is a new
    series (new id) on the same image."""
    out: dict[tuple[str, str, str], Container] = {}
    for s in res.series:
        if not s.samples:
            continue
        key = (s.label("pod"), s.label("container"), s.label("image"))
        times = [x.t for x in s.samples]
        started = min((x.v for x in s.samples if x.v > 0), default=0.0)
        c = out.get(key)
        if c is None:
            out[key] = Container(*key, node=s.label("instance"), first=min(times), last=max(times), started=started,
                                 times=times)
            continue
        c.first, c.last = min(c.first, min(times)), max(c.last, max(times))
        known = [v for v in (c.started, started) if v > 0]
        c.started = min(known) if known else 0.0
        c.times += times
    return sorted(out.values(), key=lambda c: (c.first, c.pod, c.container))


def read_workload(bj: BakeJudge, p: config.Project, w: config.Workload, tolerance: float) -> Workload:
    """Every container of one workload's pods in the window; for a CronJob also its runs; `no_data` when
    the window cannot say what it ran."""
    from phasegate.bake import holes_in

    ns = p.workload_namespace(w)
    win = bj.window
    q = bj.promql("workload_containers", namespace=ns, pods=pod_regex(w.kind, w.name))
    seen = Workload(f"{w.kind} {ns}/{w.name}", w.kind, q, containers_of(bj.samples(q)))
    judged = [c for c in seen.containers if c.image]
    if w.kind == "Deployment":
        if not judged:
            seen.no_data = "cAdvisor holds no container of its pods in the window"
            seen.holes = [(win.start, win.until)]
            return seen
        holes = seen.holes = holes_in([t for c in judged for t in c.times], win.start, win.until, tolerance)
        if holes:
            seen.no_data = (f"its containers unseen for {len(holes)} stretch(es) longer than {tolerance / 60:.0f} min: "
                            + ", ".join(f"{iso(a)} .. {iso(b)}" for a, b in holes))
        return seen
    # CronJob: its Jobs live on after they finish (history limits, ttl): read from a day before the window
    qj = bj.promql("job_start", namespace=ns, cronjob=w.name)
    for s, x in bj.samples(qj, win.start - DAY, win.until).samples():
        if win.start <= x.v < win.until:
            seen.runs[s.label("job_name")] = x.v
    if judged:
        return seen
    if seen.runs:
        first = min(seen.runs.values())
        seen.no_data = (f"{len(seen.runs)} run(s) started in the window (PromQL {qj}, first {iso(first)}) and cAdvisor "
                        "saw the container of none (a run shorter than a scrape interval, or one whose container "
                        "never started, leaves no sample)")
        return seen
    ql = bj.promql("cronjob_last_success", namespace=ns, cronjob=w.name)
    last = bj.samples(ql)
    if last.empty:
        seen.no_data = (f"no run of it started in the window (PromQL {qj}) and kube-state-metrics holds no "
                        f"last-successful time of it (PromQL {ql}): whether it ran cannot be told")
        return seen
    holes = holes_in([x.t for _, x in last.samples()], win.start, win.until, tolerance)
    values = [x.v for _, x in last.samples()]
    if holes:
        seen.no_data = (f"no run of it started in the window, and PromQL {ql} has {len(holes)} gap(s) longer than "
                        f"{tolerance / 60:.0f} min: " + ", ".join(f"{iso(a)} .. {iso(b)}" for a, b in holes))
    elif max(values) >= win.start:
        seen.no_data = (f"it succeeded at {iso(max(values))} (PromQL {ql}) but neither that run's Job nor its "
                        "container is in Prometheus")
    else:
        seen.note = f"did not run in the window: no Job started; last success {iso(max(values))} (PromQL {ql})"
    return seen


def _summary(w: Workload, reg: Registries) -> str:
    if w.no_data:
        return f"{w.label}: no data: {w.no_data}"
    if w.note:
        return f"{w.label}: {w.note}"
    images: dict[str, list[Container]] = {}
    for c in w.containers:
        images.setdefault(c.image, []).append(c)
    parts = [f"{img or '(image label empty)'} [{reg.of(img) if img else '?'}] in {len({c.pod for c in cs})} pod(s) "
             f"{iso(min(c.first for c in cs))} .. {iso(max(c.last for c in cs))}" for img, cs in sorted(images.items())]
    runs = ""
    if w.kind == "CronJob":
        unseen = len(set(w.runs) - {c.pod.rsplit("-", 1)[0] for c in w.containers})
        runs = f"{len(w.runs)} run(s) in the window, {unseen} not seen by cAdvisor (not judged); "
    return f"{w.label}: {runs}" + "; ".join(parts)


def _steps(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """A step series kept to its changes: the first and last point of every run of equal values."""
    out: list[tuple[float, float]] = []
    for t, v in points:
        if len(out) >= 2 and out[-1][1] == v and out[-2][1] == v:
            out[-1] = (t, v)
        else:
            out.append((t, v))
    return out


def judge(bj: BakeJudge, max_gap_minutes: int | None = None) -> None:
    """Red when any container of a project workload ran an image from the Forgejo host inside the bake window
    (judged so far while it is open), naming the container and when it started and was first seen; red
    ("no data") when a workload's containers are not there to judge; Pending while the window is open."""
    from phasegate.bake import Threshold, _listing, _with

    inv, win = bj.inv, bj.window
    tolerance = (inv.bake.max_hole_minutes if max_gap_minutes is None else max_gap_minutes) * 60
    reg = Registries(inv)
    data = bj._new_data(CRITERION, Threshold(0, f"containers on an image from {reg.forgejo}"))
    workloads = [read_workload(bj, p, w, tolerance) for p in inv.projects for w in p.workloads]
    bad: list[tuple[float, str, Workload]] = []  # per workload: its first container on Forgejo
    flipped = 0
    for w in workloads:
        counts: dict[float, float] = {}
        on_forgejo = [c for c in w.containers if reg.is_forgejo(c.image)]
        for c in w.containers:
            one = 1.0 if reg.is_forgejo(c.image) else 0.0
            for t in c.times:
                counts[t] = counts.get(t, 0.0) + one
        if counts:
            data.series[f"{w.label} containers from {reg.forgejo}"] = _steps(sorted(counts.items()))
        if on_forgejo:
            c = on_forgejo[0]
            more = f" (+{len(on_forgejo) - 1} more container(s) of it)" if len(on_forgejo) > 1 else ""
            bad.append((c.first, f"{w.label}: {c.line(win.day)}{more}", w))
            data.offending += [(x.first, 1.0) for x in on_forgejo[:MAX_POINTS]]
            flipped += len(on_forgejo)
    bad.sort(key=lambda b: b[0])
    judged = "judged, per workload:\n" + "\n".join(f"  {_summary(w, reg)}" for w in workloads)
    label = ("\nthe image label is containerd's first tag of the image a container runs (kubelet passes the image "
             "ID; references sorted): a node that pulled the same bytes from Forgejo names them by Forgejo")
    expected = (f"every container of the projects' workloads on the images they ran before the cutover "
                f"(registry-private: {', '.join(sorted(reg.private))}), none from {reg.forgejo} during the bake")
    template = inv.metrics.queries.workload_containers
    if not workloads:
        raise _with(GateFailed(expected=expected, seen="no data: the inventory's [[projects]] list no workload",
                               where="inventory [[projects]] workloads"), data)
    if bad:
        first = bad[0]
        raise _with(GateFailed(
            expected=expected,
            seen=f"{flipped} container(s) of {len(bad)} workload(s) ran an image from {reg.forgejo}; first: {first[1]}",
            where=f"PromQL {first[2].promql} over {win}",
            evidence=f"first container on a Forgejo image, per workload:\n{_listing([b[1] for b in bad])}\n"
                     f"{judged}{label}"),
            data)
    missing = [w for w in workloads if w.no_data]
    if missing:
        for w in missing:
            data.holes += w.holes
        raise _with(GateFailed(
            expected=f"cAdvisor's containers of every project workload in the window (a Deployment's with no gap "
                     f"longer than {tolerance / 60:.0f} min; a CronJob's runs), to judge their images by",
            seen=f"no data for {len(missing)} workload(s); first: {missing[0].label}: {missing[0].no_data}",
            where=f"PromQL {missing[0].promql} over {win}", evidence=judged), data)
    bj._verdict(data, expected=expected, where=f"PromQL {template} per project workload over {win}", bad=[],
                still_needed=f"the rest of the window, to {iso(win.end)}, with no container on {reg.forgejo}")
