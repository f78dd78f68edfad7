"""The Kubernetes stand-in's controller manager: one work queue, one thread. A write to the store names the
controller that must look (a new namespace: service accounts and Kyverno; a new pod: the scheduler; a
Deployment, a Job: their controllers; a pod's status: its owner's controller) and `wait_idle()` waits
until no controller work and no kubelet pull is pending.

A mixin of `KubeStandin` (router.py): the queue's work items name the methods of the other areas.
"""

from __future__ import annotations

import queue
import threading
import time


class Controllers:
    def _init_controllers(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0

    def _changed(self, kind: str, ns: str, name: str, *, created: bool, status_only: bool = False) -> None:
        if kind == "Namespace" and created:
            self._enqueue(("serviceaccount", name))
            self._enqueue(("clone", name))
        elif kind == "Pod" and created:
            self._enqueue(("schedule", ns, name))
        elif kind == "Deployment" and not status_only:
            self._enqueue(("deployment", ns, name))
        elif kind == "Job" and created:
            self._enqueue(("job", ns, name))
        elif kind == "Pod" and status_only:
            pod = self.get("Pod", name, ns)
            if pod:
                self._notify_owner(pod)
        elif kind == "Secret" and (ns, name) == self.clone_source and not created:
            self._enqueue(("resync",))

    def _notify_owner(self, obj: dict) -> None:
        ns = obj["metadata"].get("namespace", "")
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref["kind"] == "ReplicaSet":
                rs = self.get("ReplicaSet", ref["name"], ns)
                for dref in (rs or {}).get("metadata", {}).get("ownerReferences") or []:
                    if dref["kind"] == "Deployment":
                        self._enqueue(("deployment", ns, dref["name"]))
            elif ref["kind"] == "Job":
                self._enqueue(("job", ns, ref["name"]))
            elif ref["kind"] == "Deployment":
                self._enqueue(("deployment", ns, ref["name"]))

    def _enqueue(self, item) -> None:
        with self._idle:
            self._busy += 1
        self._queue.put(item)

    def _done(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Until no controller work and no kubelet pull is pending (lab start, tests)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _controller_loop(self) -> None:
        while not self._stopping.is_set():
            item = self._queue.get()
            if item is None:
                return
            try:
                what = item[0]
                if what == "clone":
                    self._kyverno_clone(item[1])
                elif what == "resync":
                    self._kyverno_resync()
                elif what == "serviceaccount":
                    self._default_serviceaccount(item[1])
                elif what == "ns-delete":
                    self._finish_namespace(item[1])
                elif what == "schedule":
                    self._schedule(item[1], item[2])
                elif what == "deployment":
                    self._reconcile_deployment(item[1], item[2])
                elif what == "job":
                    self._reconcile_job(item[1], item[2])
            except Exception as e:  # a controller bug must not stop the others
                import traceback

                traceback.print_exc()
                del e
            finally:
                self._done()
