"""Namespaces of the Kubernetes stand-in and what happens in them on their own: the service account
controller's `default`, Kyverno's clone rule (a new namespace, unless excluded, receives a copy of the
source Secret `kyverno/registry-credentials`, kept in sync), and asynchronous deletion (Terminating,
content first, finalizers of other controllers honoured).

A mixin of `KubeStandin` (router.py).
"""

from __future__ import annotations

import copy
import threading
import time

from phasegate.lab.kube.objects import now

KYVERNO_EXCLUDED = ("kube-system", "kube-public", "kube-node-lease")


class Namespaces:
    def _init_namespaces(self, clone_source: tuple[str, str], clone_excluded: tuple[str, ...]) -> None:
        self.clone_source = clone_source
        self.clone_excluded = clone_excluded
        self.kyverno_enabled = True
        self.serviceaccount_delay = 0.0  # seconds from a namespace's creation to its `default` ServiceAccount
        self.namespace_delete_delay = 0.05  # seconds a deleted namespace stays Terminating (its content goes first)

    # Kyverno ClusterPolicy sync-registry-credentials (generate, clone, synchronize)
    def _clone_into(self, ns: str) -> None:
        src_ns, src_name = self.clone_source
        src = self.get("Secret", src_name, src_ns)
        if src is None or ns == src_ns or ns in self.clone_excluded:
            return
        if self.get("Namespace", ns) is None:
            return
        self.put({
            "apiVersion": "v1", "kind": "Secret", "type": src.get("type", "Opaque"),
            "metadata": {"name": src_name, "namespace": ns, "labels": {
                "app.kubernetes.io/managed-by": "kyverno",
                "generate.kyverno.io/policy-name": "sync-registry-credentials",
                "generate.kyverno.io/rule-name": "sync-registry-secret",
            }},
            "data": copy.deepcopy(src.get("data", {})),
        }, fire=False)

    def _default_serviceaccount(self, ns: str) -> None:
        """The service account controller creates `default` in every new namespace, a moment later
        (kubernetes pkg/controller/serviceaccount/serviceaccounts_controller.go)."""
        if self.serviceaccount_delay:
            def later():
                time.sleep(self.serviceaccount_delay)
                if self.get("Namespace", ns) is not None:
                    self.put({"apiVersion": "v1", "kind": "ServiceAccount",
                              "metadata": {"name": "default", "namespace": ns}}, fire=False)
            threading.Thread(target=later, daemon=True).start()
            return
        self.put({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}},
                 fire=False)

    def _kyverno_clone(self, ns: str) -> None:
        if self.kyverno_enabled:
            self._clone_into(ns)

    def _kyverno_resync(self) -> None:
        if not self.kyverno_enabled:
            return
        src_ns, src_name = self.clone_source
        for ns in self.list("Namespace"):
            name = ns["metadata"]["name"]
            if self.get("Secret", src_name, name) is not None:
                self._clone_into(name)

    # namespace deletion
    def _terminate_namespace(self, name: str) -> dict:
        """Namespace deletion is asynchronous (kubernetes pkg/controller/namespace): Terminating first, content
        removed, then the namespace; metadata.finalizers of other controllers keep it Terminating."""
        t = now()

        def mark(o):
            o["metadata"].setdefault("deletionTimestamp", t)
            o["metadata"]["deletionGracePeriodSeconds"] = 0
            o["status"] = {"phase": "Terminating", "conditions": [
                {"type": "NamespaceDeletionContentFailure", "status": "False", "reason": "ContentDeleted",
                 "message": "All content successfully deleted", "lastTransitionTime": t}]}
        out = self._update_status("Namespace", name, "", mark)
        self._enqueue(("ns-delete", name))
        return out

    def _finish_namespace(self, name: str) -> None:
        time.sleep(self.namespace_delete_delay)
        ns = self.get("Namespace", name)
        if ns is None or ns["metadata"].get("finalizers"):
            return  # another controller's finalizer: stays Terminating until it is removed
        self.delete("Namespace", name)
