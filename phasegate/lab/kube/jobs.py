"""Jobs and CronJobs of the Kubernetes stand-in: the job controller (one pod, replaced after a back-off until
`backoffLimit`, `ttlSecondsAfterFinished`), a CronJob's status and history limits when its Job ends,
and `seed_job()` for job history. Pods of a CronJob's Jobs run its registered runner (pods.py).

A mixin of `KubeStandin` (router.py).
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets as _secrets
import threading
import time

from phasegate.lab.kube.objects import now, owned_by, owner_ref, rfc3339


class Jobs:
    def _init_jobs(self) -> None:
        self.job_backoff = 0.2  # seconds before a failed Job pod is replaced (real: 10s, doubling)
        self.ttl_scale = 1.0  # ttlSecondsAfterFinished in lab seconds

    # job controller
    def _job_pod(self, job: dict) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        tpl = job["spec"]["template"]
        labels = dict((tpl.get("metadata") or {}).get("labels") or {})
        labels.update({"job-name": name, "batch.kubernetes.io/job-name": name})
        self.put({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": f"{name}-{_secrets.token_hex(3)[:5]}", "namespace": ns, "labels": labels,
                               "ownerReferences": [owner_ref(job)]},
                  "spec": copy.deepcopy(tpl["spec"])})

    def _reconcile_job(self, ns: str, name: str) -> None:
        """The job controller (kubernetes pkg/controller/job/job_controller.go): a failed pod is replaced after a
        back-off (10s doubling, capped at 6 min; the lab's base is `job_backoff`) until more pods failed than
        `backoffLimit` (default 6): then the Job fails with BackoffLimitExceeded. Finished Jobs with
        `ttlSecondsAfterFinished` are deleted that long after (pkg/controller/ttlafterfinished)."""
        job = self.get("Job", name, ns)
        st = (job or {}).get("status") or {}
        if job is None or st.get("completionTime") or any(c["type"] == "Failed" for c in st.get("conditions") or []):
            return
        pods = [p for p in self.list("Pod", ns) if owned_by(p, job)]
        if not pods:
            self._job_pod(job)
            self._update_status("Job", name, ns, lambda j: j["status"].update({"active": 1, "startTime": now()}))
            return
        succeeded = [p for p in pods if p["status"].get("phase") == "Succeeded"]
        failed = [p for p in pods if p["status"].get("phase") == "Failed"]
        active = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")]
        t = now()
        limit = job["spec"].get("backoffLimit", 6)
        if succeeded:
            def complete(j):
                j["status"].pop("active", None)
                j["status"].update({"succeeded": 1, "failed": len(failed) or None, "completionTime": t,
                                    "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": t,
                                                    "lastTransitionTime": t}]})
                if j["status"]["failed"] is None:
                    j["status"].pop("failed")
            self._update_status("Job", name, ns, complete)
            self._job_finished(job, ok=True, when=t)
        elif len(failed) > limit:
            def fail(j):
                j["status"].pop("active", None)
                j["status"].update({"failed": len(failed), "conditions": [
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": "Job has reached the specified backoff limit", "lastProbeTime": t,
                     "lastTransitionTime": t}]})
            self._update_status("Job", name, ns, fail)
            self._job_finished(job, ok=False, when=t)
        elif failed and not active:
            self._update_status("Job", name, ns, lambda j: j["status"].update({"failed": len(failed), "active": 1}))
            delay = min(self.job_backoff * 2 ** (len(failed) - 1), self.job_backoff * 36)

            def retry():
                time.sleep(delay)
                j = self.get("Job", name, ns)
                if j is not None and not [p for p in self.list("Pod", ns)
                                          if owned_by(p, j) and p["status"].get("phase") not in ("Succeeded", "Failed")]:
                    self._job_pod(j)
            threading.Thread(target=retry, name=f"job-retry-{name}", daemon=True).start()

    def _job_finished(self, job: dict, *, ok: bool, when: str) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        for ref in job["metadata"].get("ownerReferences") or []:
            if ref["kind"] == "CronJob":
                self._cronjob_history(ns, ref["name"], succeeded=ok, when=when)
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is not None:
            def expire():
                time.sleep(ttl * self.ttl_scale)
                self.delete("Job", name, ns)
            threading.Thread(target=expire, name=f"job-ttl-{name}", daemon=True).start()

    def _cronjob_history(self, ns: str, name: str, *, succeeded: bool, when: str) -> None:
        cj = self.get("CronJob", name, ns)
        if cj is None:
            return
        if succeeded:
            self._update_status("CronJob", name, ns, lambda c: c["status"].update({"lastSuccessfulTime": when}))
        jobs = sorted((j for j in self.list("Job", ns) if owned_by(j, cj)),
                      key=lambda j: j["metadata"]["creationTimestamp"])
        for flag, limit in (("succeeded", cj["spec"].get("successfulJobsHistoryLimit", 3)),
                            ("failed", cj["spec"].get("failedJobsHistoryLimit", 1))):
            finished = [j for j in jobs if (j.get("status") or {}).get(flag)]
            for j in finished[: max(0, len(finished) - limit)]:
                self.delete("Job", j["metadata"]["name"], ns)

    def seed_job(self, namespace: str, cronjob: str, name: str, *, log: str = "", succeeded: bool = True,
                 finished: dt.datetime | None = None, node: str | None = None) -> dict:
        """A finished Job of `cronjob` with its pod and log, as history (no pull, no run)."""
        cj = self.get("CronJob", cronjob, namespace)
        if cj is None:
            raise KeyError(f"CronJob {namespace}/{cronjob}")
        t = rfc3339(finished or dt.datetime.now(dt.UTC))
        tpl = copy.deepcopy(cj["spec"]["jobTemplate"])
        job = self.put({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": t,
                         "labels": {"job-name": name}, "ownerReferences": [owner_ref(cj)]},
            "spec": tpl["spec"],
            "status": {"startTime": t, **({"succeeded": 1, "completionTime": t, "conditions": [
                {"type": "Complete", "status": "True", "lastProbeTime": t, "lastTransitionTime": t}]}
                if succeeded else {"failed": 1, "conditions": [
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                     "lastProbeTime": t, "lastTransitionTime": t}]})},
        }, fire=False)
        c = tpl["spec"]["template"]["spec"]["containers"][0]
        pod_name = f"{name}-{_secrets.token_hex(3)[:5]}"
        self.put({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": namespace, "creationTimestamp": t,
                         "labels": {"job-name": name, "batch.kubernetes.io/job-name": name},
                         "ownerReferences": [owner_ref(job)]},
            "spec": dict(copy.deepcopy(tpl["spec"]["template"]["spec"]), nodeName=node or sorted(self.nodes)[0]),
            "status": {"phase": "Succeeded" if succeeded else "Failed", "startTime": t, "containerStatuses": [
                self._container_status(c, state={"terminated": {"exitCode": 0 if succeeded else 1,
                                                                "reason": "Completed" if succeeded else "Error",
                                                                "startedAt": t, "finishedAt": t}})]},
        }, fire=False)
        self.logs[(namespace, pod_name)] = log
        self._update_status("CronJob", cronjob, namespace, lambda cj: cj["status"].update(
            {"lastScheduleTime": t, **({"lastSuccessfulTime": t} if succeeded else {})}))
        return job
