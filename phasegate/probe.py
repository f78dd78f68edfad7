"""The integrity probe CronJob and the retention CronJob as Phase 0 sees them.

Phase 0 is done when the Forgejo probe "completes once and pushes metrics":
`run_once()` is `kubectl create job --from=cronjob/forgejo-integrity-probe`
and a wait for the Job to finish; `check_pushed()` reads what the Pushgateway
then holds for the Forgejo instance. The Job carries the suite's label, so
`remove_suite_jobs()` (run before and after) deletes only what the suite made.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from phasegate import config
from phasegate.prometheus import Pushgateway, iso
from phasegate.verdict import GateFailed

CLOCK_SLACK = 120.0  # seconds of clock skew allowed between this machine and the cluster


@dataclass(frozen=True)
class ProbeRun:
    namespace: str
    job_name: str
    started: float  # unix seconds, this machine's clock, just before the Job was created
    succeeded: bool
    log: str = ""


def _owned_by(job, cronjob: str) -> bool:
    return any(ref.kind == "CronJob" and ref.name == cronjob for ref in (job.metadata.owner_references or []))


def remove_suite_jobs(kube, m: config.Metrics) -> list[str]:
    """Delete the Jobs of the probe CronJob that carry the suite's label (none other)."""
    gone = []
    for job in kube.jobs(m.probe_namespace, selector=f"{kube.label_key}={kube.label_value}"):
        if _owned_by(job, m.probe_cronjob):
            kube.delete_job(m.probe_namespace, job.metadata.name)
            gone.append(job.metadata.name)
    return gone


def _finished(kube, ns: str, name: str):
    """("succeeded" | "failed", job) once the Job has an answer: a failed pod is one. The real probe Job
    retries a failed pod (backoff_limit = 1, MON:470 @5d22b449; the API's default is 6): a probe that
    failed once has not completed once, whatever a retry does later, so the gate does not wait it out."""
    for job in kube.jobs(ns):
        if job.metadata.name == name:
            st = job.status
            if st and (st.succeeded or 0) >= 1:
                return ("succeeded", job)
            if st and (st.failed or 0) >= 1:
                return ("failed", job)
    return None


def _logs(kube, ns: str, job_name: str) -> str:
    out = []
    for pod in kube.pods(ns, selector=f"job-name={job_name}"):
        try:
            out.append(f"--- pod {pod.metadata.name}\n{kube.pod_log(ns, pod.metadata.name)[-2000:]}")
        except Exception as e:  # diagnostics only: the verdict stands without them
            out.append(f"--- pod {pod.metadata.name}: log unavailable ({type(e).__name__})")
    return "\n".join(out)


def run_clean(kube, m: config.Metrics, at_teardown) -> ProbeRun:
    """`run_once` within the inventory's probe_job_timeout, the suite's Jobs of the CronJob removed at teardown
    (registered with `at_teardown(fn, what)` before the Job exists) and swept first (a crashed run's)."""
    at_teardown(lambda: remove_suite_jobs(kube, m), f"the suite's Jobs of cronjob {m.probe_namespace}/{m.probe_cronjob}")
    remove_suite_jobs(kube, m)
    return run_once(kube, m, timeout=m.probe_job_timeout)


def run_once(kube, m: config.Metrics, *, timeout: float) -> ProbeRun:
    """Create a Job from the probe CronJob and wait until it finishes (a write: @writes only)."""
    started = time.time()
    name = kube.create_job_from_cronjob(m.probe_namespace, m.probe_cronjob, what="phasegate")
    where = f"job {m.probe_namespace}/{name} (from cronjob {m.probe_cronjob})"
    done = kube.wait_for(lambda: _finished(kube, m.probe_namespace, name), what=where, timeout=timeout)
    if done is None:
        job = next((j for j in kube.jobs(m.probe_namespace) if j.metadata.name == name), None)
        state = kube.job_outcome(job) if job is not None else "never created"
        raise GateFailed(expected=f"the probe Job finishes within {timeout:.0f}s", seen=f"the Job is {state}",
                         where=where, evidence=_logs(kube, m.probe_namespace, name))
    state, job = done
    log = _logs(kube, m.probe_namespace, name)
    if state != "succeeded":
        # "failed (BackoffLimitExceeded ...)" or "failed N time(s), retrying (backoffLimit M)"
        raise GateFailed(expected="the probe Job succeeds", seen=f"the Job {kube.job_outcome(job)}", where=where,
                         evidence=log)
    return ProbeRun(m.probe_namespace, name, started, True, log)


def check_pushed(pgw: Pushgateway, m: config.Metrics, run: ProbeRun) -> None:
    """The Pushgateway holds this run's push for the Forgejo instance: fresh, catalog readable, zero failures."""
    # The probe pushes to /metrics/job/<job> (grouping key: job only) with `instance` as a label of its
    # samples (MON:510,526-527,591-602 @5d22b449): the instance is read from the sample, not the group.
    where = f"Pushgateway {pgw.url} group job={m.probe_push_job}, samples instance={m.forgejo_instance}"
    groups = [g for g in pgw.groups() if g["labels"].get("job") == m.probe_push_job]

    def instance_of(g: dict, labels: dict) -> str:
        return labels.get("instance") or g["labels"].get("instance", "")

    def value(name: str) -> float | None:
        for g in groups:
            for labels, v in g["metrics"].get(name, []):
                if instance_of(g, labels) == m.forgejo_instance:
                    return v
        return None

    if not groups or all(value(n) is None for n in ("registry_manifest_integrity_last_run_timestamp",
                                                    "registry_manifest_integrity_failures")):
        raise GateFailed(expected=f"a push from the probe for instance {m.forgejo_instance}",
                         seen="no data: no such push on the Pushgateway", where=where, evidence=run.log)

    last = value("registry_manifest_integrity_last_run_timestamp")
    catalog = value("registry_manifest_integrity_catalog_accessible")
    failures = value("registry_manifest_integrity_failures")
    problems = []
    if last is None:
        problems.append("no data: registry_manifest_integrity_last_run_timestamp missing")
    elif last < run.started - CLOCK_SLACK:
        problems.append(f"registry_manifest_integrity_last_run_timestamp = {iso(last)}, older than the Job "
                        f"created at {iso(run.started)}: not this run's push")
    if catalog is None or catalog != 1:
        problems.append(f"registry_manifest_integrity_catalog_accessible = {catalog} (expected 1)")
    if failures is None or failures != 0:
        problems.append(f"registry_manifest_integrity_failures = {failures} (expected 0)")
    if problems:
        raise GateFailed(expected="a fresh push with catalog_accessible 1 and failures 0",
                         seen="; ".join(problems), where=f"{where} after {run.namespace}/{run.job_name}",
                         evidence=run.log)


def check_retention_cronjob(kube, r: config.Retention, *, schedule: str = "", dry_run: str = "") -> None:
    """The retention CronJob exists with `schedule` and, in Phase 0, DRY_RUN=`dry_run` (by default the
    inventory's schedule and phase0_dry_run)."""
    r = dataclasses.replace(r, schedule=schedule or r.schedule, phase0_dry_run=dry_run or r.phase0_dry_run)
    where = f"cronjob {r.namespace}/{r.cronjob}"
    cj = kube.cronjob(r.namespace, r.cronjob)
    if cj is None:
        raise GateFailed(expected=f"{where} exists", seen="not found", where=where)
    problems = []
    if cj.spec.schedule != r.schedule:
        problems.append(f"schedule {cj.spec.schedule!r} (expected {r.schedule!r})")
    containers = cj.spec.job_template.spec.template.spec.containers or []
    c = next((c for c in containers if c.name == r.container), None)
    if c is None:
        problems.append(f"no container {r.container!r} (has {', '.join(x.name for x in containers)})")
    else:
        env = {e.name: e.value for e in (c.env or [])}
        if env.get(r.dry_run_env) != r.phase0_dry_run:
            problems.append(f"{r.dry_run_env}={env.get(r.dry_run_env)!r} (expected {r.phase0_dry_run!r})")
    if problems:
        raise GateFailed(expected=f"schedule {r.schedule!r} and {r.dry_run_env}={r.phase0_dry_run}",
                         seen="; ".join(problems), where=f"{where} container {r.container}")
