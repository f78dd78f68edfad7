"""Phase 3: is one project cut over to Forgejo? Five checks, each on its own, then the order.

A project ([[projects]], phasegate.config.Project) is its own image(s) and every
workload that runs one: Deployments and CronJobs, in any namespace, in
containers and init containers. An image is the project's when its repository's
last path part is one of the project's image names (wherever it is hosted:
registry-private, Forgejo, Docker Hub); every other image (busybox init
containers, a Playwright main container, a curl CronJob) is not judged and is
listed as ignored in the evidence.

The five checks, named as the Phase 3 rows' steps name them (the cutover matrix
is drawn from those steps):
- template:  every own container of every workload names Forgejo (host/owner/);
- rollout:   Deployments: `kubectl rollout status` (paused, progress deadline,
             old replicas); CronJobs: the newest Job ran the template and succeeded;
- pods:      every running pod (phase Running, no deletionTimestamp: Evicted and
             Terminating pods linger in a real cluster and are not the workload's)
             runs the template's own images, none waiting;
- digest:    every own container's imageID is the digest Forgejo serves for the
             template's tag, compared by digest (phasegate.cri: the repository
             containerd reports may be the other registry's name for the same bytes);
- integrity: every own template image is whole on Forgejo (phasegate.integrity).
`order` takes the five on each earlier project and names the ones that fail: from that project's own row
when the row judged them earlier in this run (rows run in cutover order; the evidence says which row and
when), judged now otherwise (a run of one project: `--project`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from phasegate import cri, integrity, report
from phasegate.oci import NotFound
from phasegate.pullsecret import image_ref_parts
from phasegate.verdict import NotJudged, check

CHECKS = ("template", "rollout", "pods", "digest", "integrity")
# The Phase 3 row's step per check (features/phase3_cutover.feature), in the row's order: the cutover matrix
# (project x check) is read from these steps' Allure results, so the texts are stable names.
CHECK_STEPS = {
    "template": "its pod templates name Forgejo for the project's images",
    "rollout": "its rollouts are complete",
    "pods": "every running pod of it runs its templates' images",
    "digest": "every running pod of it runs the digest Forgejo serves for its tag",
    "integrity": "its images pass the integrity check on Forgejo",
    "order": "every project before it in the cutover order is cut over",
}


@dataclass(frozen=True)
class OwnContainer:
    """A container (or init container) of a workload's template that runs one of the project's images."""

    workload: str  # "Deployment ns/name"
    container: str
    init: bool
    image: str

    def where(self) -> str:
        return f"{self.workload} {'initContainer' if self.init else 'container'} {self.container}"


@dataclass
class Findings:
    """What one check saw: problems (empty = passed), what it judged, and what it ignored."""

    check: str
    problems: list[str] = field(default_factory=list)
    judged: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def evidence(self) -> str:
        lines = [f"judged: {j}" for j in self.judged] + [f"ignored (not the project's image): {i}"
                                                          for i in self.ignored]
        return "\n".join(lines)


@dataclass
class RowFindings:
    """What each project's own row judged in this run, per check (its Findings and when), for the order step
    of the rows after it: one judgement per project and check in a run, not one per later row."""

    seen: dict[str, dict[str, tuple[Findings, dt.datetime]]] = field(default_factory=dict)

    def record(self, project: str, findings: Findings) -> None:
        self.seen.setdefault(project, {})[findings.check] = (findings, dt.datetime.now(dt.UTC))

    def get(self, project: str, check: str) -> tuple[Findings, dt.datetime] | None:
        return self.seen.get(project, {}).get(check)


def is_own_image(image: str, p) -> bool:
    _, repo = cri.split_image(image)
    return repo.rsplit("/", 1)[-1] in p.own_images


def forgejo_prefix(inv) -> str:
    return f"{inv.forgejo.host}/{inv.forgejo.owner}/"


class Project:
    """One project's workloads as the API serves them now (read once per check)."""

    def __init__(self, kube, inv, p):
        self.kube, self.inv, self.p = kube, inv, p

    def workloads(self):
        """[(label, workload spec, object or None, pod spec or None)]."""
        out = []
        for w in self.p.workloads:
            ns = self.p.workload_namespace(w)
            label = f"{w.kind} {ns}/{w.name}"
            if w.kind == "Deployment":
                obj = self.kube.deployment(ns, w.name)
                spec = obj.spec.template.spec if obj else None
            else:
                obj = self.kube.cronjob(ns, w.name)
                spec = obj.spec.job_template.spec.template.spec if obj else None
            out.append((label, w, obj, spec))
        return out

    def own_containers(self, findings: Findings) -> list[OwnContainer]:
        own = []
        for label, w, _obj, spec in self.workloads():
            if spec is None:
                findings.problems.append(f"{label}: no such {w.kind}")
                continue
            mine = []
            for init, containers in ((True, spec.init_containers or []), (False, spec.containers or [])):
                for c in containers:
                    if is_own_image(c.image, self.p):
                        mine.append(OwnContainer(label, c.name, init, c.image))
                    else:
                        findings.ignored.append(f"{label} {'initContainer' if init else 'container'} {c.name}: "
                                                f"{c.image}")
            if not mine:
                findings.problems.append(f"{label}: no container runs {' or '.join(self.p.own_images)}")
            own += mine
        return own


def template(kube, inv, p) -> Findings:
    f = Findings("template")
    prefix = forgejo_prefix(inv)
    for c in Project(kube, inv, p).own_containers(f):
        f.judged.append(f"{c.where()}: {c.image}")
        if not c.image.startswith(prefix):
            f.problems.append(f"{c.where()}: image {c.image}")
    return f


def rollout(kube, inv, p) -> Findings:
    f = Findings("rollout")
    for label, w, obj, _spec in Project(kube, inv, p).workloads():
        if obj is None:
            f.problems.append(f"{label}: no such {w.kind}")
            continue
        f.judged.append(label)
        if w.kind == "Deployment":
            why = kube.rollout_problem(obj)
            if why:
                f.problems.append(f"{label}: {why}")
            continue
        job = kube.newest_job(obj)
        if job is None:
            f.problems.append(f"{label}: no Job has run since the flip")
            continue
        want = _images(obj.spec.job_template.spec.template.spec)
        ran = _images(job.spec.template.spec)
        if ran != want:
            f.problems.append(f"{label}: newest Job {job.metadata.name} ran {sorted(ran.values())}, not the "
                              f"template's {sorted(want.values())}")
        elif not (job.status and job.status.succeeded):
            f.problems.append(f"{label}: newest Job {job.metadata.name} has not succeeded")
    return f


def _images(spec) -> dict[str, str]:
    return {("init " if init else "") + c.name: c.image
            for init, cs in ((True, spec.init_containers or []), (False, spec.containers or [])) for c in cs}


def _pods_of(kube, label: str, w, obj) -> list:
    """The pods a workload runs now: Running and not being deleted (Deployments), or the newest Job's pods."""
    ns = obj.metadata.namespace
    if w.kind == "Deployment":
        sel = ",".join(f"{k}={v}" for k, v in (obj.spec.selector.match_labels or {}).items())
        return [pod for pod in kube.pods(ns, sel) if running(pod)]
    job = kube.newest_job(obj)
    if job is None:
        return []
    return [pod for pod in kube.pods(ns, f"job-name={job.metadata.name}") if pod.metadata.deletion_timestamp is None]


def running(pod) -> bool:
    """A pod that serves: phase Running and no deletionTimestamp (Evicted = Failed, Terminating = deleting)."""
    return (pod.status.phase if pod.status else "") == "Running" and pod.metadata.deletion_timestamp is None


def _pod_states(kube, p, w, obj, spec):
    """[(own container of the template, pod, state)] for every pod of the workload, and problems."""
    label = f"{w.kind} {obj.metadata.namespace}/{obj.metadata.name}"
    own = {(True, c.name): c.image for c in spec.init_containers or [] if is_own_image(c.image, p)}
    own |= {(False, c.name): c.image for c in spec.containers or [] if is_own_image(c.image, p)}
    pods = _pods_of(kube, label, w, obj)
    if not pods:
        return [], [f"{label}: no running pod"]
    out = []
    for pod in pods:
        states = {(s.init, s.container): s for s in kube.container_states(pod)}
        for key, image in own.items():
            s = states.get(key)
            out.append((label, key, image, pod, s))
    return out, []


def _spec_image(pod, init: bool, name: str) -> str:
    containers = (pod.spec.init_containers if init else pod.spec.containers) or []
    return next((c.image for c in containers if c.name == name), "")


def _running_containers(kube, inv, p, f: Findings):
    """(where, init, name, template image, pod, state) of every own container in the project's running
    pods; a missing workload or a pod problem goes to `f.problems` on the way."""
    for label, w, obj, spec in Project(kube, inv, p).workloads():
        if obj is None:
            f.problems.append(f"{label}: no such {w.kind}")
            continue
        states, problems = _pod_states(kube, p, w, obj, spec)
        f.problems += problems
        for pod_label, (init, name), image, pod, s in states:
            kind = "initContainer" if init else "container"
            where = f"pod {pod.metadata.namespace}/{pod.metadata.name} ({pod_label}) {kind} {name}"
            yield where, init, name, image, pod, s


def pods(kube, inv, p) -> Findings:
    f = Findings("pods")
    for where, init, name, image, pod, s in _running_containers(kube, inv, p, f):
        f.judged.append(where)
        if s is None:
            f.problems.append(f"{where}: no status")
        elif s.waiting_reason:
            cause = kube.last_pull_error(pod, name) if s.waiting_reason == "ImagePullBackOff" else ""
            f.problems.append(f"{where}: {s.waiting_reason}: {s.message}"
                              + (f"; last ErrImagePull: {cause}" if cause else ""))
        else:
            # the pod's own spec, not status.image: containerd reports the first sorted tag of the image,
            # which can be the other registry's name for the same bytes (pkg/cri/server/container_status.go)
            spec_image = _spec_image(pod, init, name)
            if spec_image != image:
                f.problems.append(f"{where}: the pod runs {spec_image or '(no such container)'}, the template "
                                  f"names {image}")
    return f


def digest(kube, inv, p, client) -> Findings:
    f = Findings("digest")
    served: dict[str, str] = {}
    for where, _init, _name, image, _pod, s in _running_containers(kube, inv, p, f):
        if image not in served:
            served[image] = _served_digest(client, inv, image)
        want = served[image]
        image_id = cri.ImageId.parse(s.image_id if s else "")
        f.judged.append(f"{where}: imageID {image_id.raw or '(none)'}, Forgejo serves {image} as {want}")
        if not want.startswith("sha256:") or not image_id.runs(want):
            state = f" ({s.waiting_reason})" if s and s.waiting_reason else ""
            f.problems.append(f"{where}: imageID {image_id.raw or '(none)'}{state}, Forgejo serves {image} as {want}")
    return f


def _served_digest(client, inv, image: str) -> str:
    if not image.startswith(forgejo_prefix(inv)):
        return "(not a Forgejo image)"
    host, repo, tag = image_ref_parts(image)
    if "@" in image:
        return image.rsplit("@", 1)[1]
    try:
        return client.head_manifest(repo, tag or "latest").digest or "(no digest)"
    except NotFound:
        return "(tag not on Forgejo)"


def integrity_of(kube, inv, p, client) -> Findings:
    f = Findings("integrity")
    seen = set()
    for c in Project(kube, inv, p).own_containers(f):
        if c.image in seen or not c.image.startswith(forgejo_prefix(inv)):
            continue
        seen.add(c.image)
        host, repo, tag = image_ref_parts(c.image)
        result = integrity.check_image(client, repo, tag or "latest")
        f.judged.append(f"{c.image} ({c.where()})")
        f.problems += [f"{c.image}: {b.line()}" for b in result.broken]
    return f


def run_check(check: str, kube, inv, p, client) -> Findings:
    if check == "template":
        return template(kube, inv, p)
    if check == "rollout":
        return rollout(kube, inv, p)
    if check == "pods":
        return pods(kube, inv, p)
    if check == "digest":
        return digest(kube, inv, p, client)
    if check == "integrity":
        return integrity_of(kube, inv, p, client)
    raise ValueError(f"unknown cutover check {check!r} (one of {', '.join(CHECKS)})")


def order(kube, inv, p, client, rows: RowFindings | None = None) -> Findings:
    """Every project before `p` in the cutover order passes all five checks; the ones that do not are named.
    A check its own row already judged in this run (`rows`) is taken from there, with when; the rest are
    judged now."""
    f = Findings("order")
    names = [q.name for q in inv.cutover_order()]
    if p.name not in names:
        f.problems.append(f"{p.name} is not in the cutover order ({', '.join(names)})")
        return f
    for q in inv.cutover_order()[: names.index(p.name)]:
        if not q.in_cluster():
            f.ignored.append(f"{q.name}: no cluster workload (judged by the static gates)")
            continue
        from_row, now = [], []
        for each in CHECKS:
            earlier = rows.get(q.name, each) if rows else None
            if earlier:
                r = earlier[0]
                from_row.append(f"{each} at {earlier[1]:%H:%M:%S} UTC")
            else:
                r = run_check(each, kube, inv, q, client)
                now.append(each)
            if not r.ok:
                f.problems.append(f"{q.name} ({each}): {'; '.join(r.problems)}")
                break
        sources = ([f"its own row in this run: {', '.join(from_row)}"] if from_row else []) + (
            [f"judged now: {', '.join(now)}"] if now else [])
        f.judged.append(f"{q.name} ({'; '.join(sources)})")
    return f


# -- a row's step: one check judged (the steps of features/phase3_cutover.feature call `gate`) -------------


def _expected(name: str, inv, p) -> str:
    if name == "template":
        return (f"every container and init container running {', '.join(p.own_images)} names "
                f"{forgejo_prefix(inv)}")
    if name == "order":
        names = [q.name for q in inv.cutover_order()]
        upto = names[: names.index(p.name) + 1] if p.name in names else names
        return f"projects before {p.name} cut over (cutover order {' > '.join(upto)})"
    return {
        "rollout": "every Deployment rolled out; every CronJob's newest Job ran the template and succeeded",
        "pods": "running pods (phase Running, no deletionTimestamp) with every own container started from the "
                "template",
        "digest": "every own container's imageID digest = the digest Forgejo serves for the template's tag",
        "integrity": "every manifest and blob of the project's images present on Forgejo",
    }[name]


def gate(name: str, kube, inv, p, client=None, rows: RowFindings | None = None) -> None:
    """The check `name` (CHECKS, or "order") of project `p`, as its row's step judges it: what was judged and
    ignored attached to the report, problems a failed verdict. A project that lists no cluster workload is
    not judged by the five checks (an explicit opt-out: its static gates judge it), the order still is.
    `rows`: this run's record of the rows' findings (a check is recorded there, the order reads it)."""
    if name != "order" and not p.in_cluster():
        where = p.stack or "files outside the cluster"
        raise NotJudged(f"{p.name}: inventory [[projects]] lists no cluster workload (cut over in {where}: "
                        f"judged by the Phase 3 static gates, run them with --project {p.name})")
    if name == "order":
        findings = order(kube, inv, p, client, rows)
    else:
        findings = run_check(name, kube, inv, p, client)
        if rows is not None:
            rows.record(p.name, findings)
    report.attach_text(f"{findings.check}: judged and ignored", findings.evidence() or "(nothing)")
    check(findings.ok, expected=_expected(name, inv, p), seen="; ".join(findings.problems), where=f"project {p.name}",
          evidence=findings.evidence())
