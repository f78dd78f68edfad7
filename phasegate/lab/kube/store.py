"""The Kubernetes stand-in's object store: get/list/put/mutate/delete as the API server keeps objects
(uid, creationTimestamp, resourceVersion, generation on spec changes, the API's defaults), status
writes apart from spec writes, and deletion's cascade (a namespace's content, a Deployment's
ReplicaSets, their pods, a CronJob's Jobs). Writes notify the controllers (controllers.py).

A mixin of `KubeStandin` (router.py): it needs the controllers' `_changed` and `_notify_owner`.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable

from phasegate.lab.kube.objects import KINDS, RESOURCES, default_policy, match_labels, now, owned_by


class ObjectStore:
    def _init_store(self) -> None:
        self._lock = threading.RLock()
        self._store: dict[tuple[str, str], dict[tuple[str, str], dict]] = {
            (g, p): {} for (g, _, p) in RESOURCES
        }
        self._rv = 1000
        self.logs: dict[tuple[str, str], str] = {}  # (namespace, pod) -> the pod's log

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _key(self, kind: str) -> tuple[str, str, str]:
        return KINDS[kind]

    def get(self, kind: str, name: str, namespace: str = "") -> dict | None:
        g, _, p = self._key(kind)
        with self._lock:
            obj = self._store[(g, p)].get((namespace, name))
            return copy.deepcopy(obj) if obj else None

    def list(self, kind: str, namespace: str | None = None, labels: str = "") -> list[dict]:
        g, _, p = self._key(kind)
        with self._lock:
            items = [copy.deepcopy(o) for (ns, _), o in sorted(self._store[(g, p)].items())
                     if namespace is None or ns == namespace]
        return [o for o in items if match_labels(o["metadata"].get("labels") or {}, labels)]

    def put(self, obj: dict, *, fire: bool = True) -> dict:
        """Create or replace an object as given (seeding, faults); controllers fire."""
        obj = copy.deepcopy(obj)
        kind = obj["kind"]
        g, v, p = self._key(kind)
        obj.setdefault("apiVersion", f"{g}/{v}" if g else v)
        md = obj.setdefault("metadata", {})
        ns = md.get("namespace", "") if RESOURCES[(g, v, p)][1] else ""
        with self._lock:
            old = self._store[(g, p)].get((ns, md["name"]))
            md.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
            md.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"] if old else now())
            md["resourceVersion"] = self._next_rv()
            if kind in ("Deployment", "ReplicaSet", "CronJob", "Job", "Ingress", "Middleware"):
                prev = old["metadata"].get("generation", 1) if old else 0
                changed = old is None or old.get("spec") != obj.get("spec")
                md["generation"] = prev + 1 if changed else max(prev, 1)
            self._defaults(obj)
            self._store[(g, p)][(ns, md["name"])] = obj
        if fire:
            self._changed(kind, ns, md["name"], created=old is None)
        return copy.deepcopy(obj)

    def mutate(self, kind: str, name: str, namespace: str, fn: Callable[[dict], None], *, fire: bool = True) -> dict:
        with self._lock:
            obj = self.get(kind, name, namespace)
            if obj is None:
                raise KeyError(f"{kind} {namespace}/{name}")
            fn(obj)
            return self.put(obj, fire=fire)

    def _update_status(self, kind: str, name: str, namespace: str, fn: Callable[[dict], None]) -> dict | None:
        """Status writes: no generation bump, controllers of owners notified."""
        g, _, p = self._key(kind)
        with self._lock:
            obj = self._store[(g, p)].get((namespace, name))
            if obj is None:
                return None
            fn(obj)
            obj["metadata"]["resourceVersion"] = self._next_rv()
            out = copy.deepcopy(obj)
        self._changed(kind, namespace, name, created=False, status_only=True)
        return out

    def delete(self, kind: str, name: str, namespace: str = "") -> dict | None:
        g, _, p = self._key(kind)
        with self._lock:
            obj = self._store[(g, p)].pop((namespace, name), None)
            if obj is None:
                return None
            if kind == "Namespace":
                for (_gg, _pp), objs in self._store.items():
                    for key in [k for k in objs if k[0] == name]:
                        objs.pop(key)
                for key in [k for k in self.logs if k[0] == name]:
                    self.logs.pop(key)
                obj["status"] = {"phase": "Terminating"}
                obj["metadata"]["deletionTimestamp"] = now()
            if kind == "Pod":
                self.logs.pop((namespace, name), None)
        if kind in ("Pod", "ReplicaSet", "Job"):
            self._notify_owner(obj)
        if kind == "ReplicaSet":
            for pod in self.list("Pod", namespace):
                if owned_by(pod, obj):
                    self.delete("Pod", pod["metadata"]["name"], namespace)
        if kind == "Job":
            for pod in self.list("Pod", namespace):
                if owned_by(pod, obj):
                    self.delete("Pod", pod["metadata"]["name"], namespace)
        if kind == "Deployment":
            for rs in self.list("ReplicaSet", namespace):
                if owned_by(rs, obj):
                    self.delete("ReplicaSet", rs["metadata"]["name"], namespace)
        if kind == "CronJob":
            for job in self.list("Job", namespace):
                if owned_by(job, obj):
                    self.delete("Job", job["metadata"]["name"], namespace)
        return obj

    def _defaults(self, obj: dict) -> None:
        kind = obj["kind"]
        md = obj["metadata"]
        if kind == "Namespace":
            md.setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
        elif kind == "Pod":
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                c.setdefault("imagePullPolicy", default_policy(c.get("image", "")))
                c.setdefault("terminationMessagePath", "/dev/termination-log")
                c.setdefault("terminationMessagePolicy", "File")
            obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
        elif kind == "Secret":
            obj.setdefault("type", "Opaque")
        elif kind == "Deployment":
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("strategy", {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            obj.setdefault("status", {})
        elif kind == "CronJob":
            spec = obj.setdefault("spec", {})
            spec.setdefault("concurrencyPolicy", "Allow")
            spec.setdefault("suspend", False)
            spec.setdefault("successfulJobsHistoryLimit", 3)
            spec.setdefault("failedJobsHistoryLimit", 1)
            obj.setdefault("status", {})
        elif kind == "Job":
            spec = obj.setdefault("spec", {})
            spec.setdefault("backoffLimit", 6)  # kubernetes pkg/apis/batch/v1/defaults.go SetDefaults_Job
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            obj.setdefault("status", {})
