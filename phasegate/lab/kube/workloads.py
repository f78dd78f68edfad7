"""Workloads of the Kubernetes stand-in: the deployment controller (a ReplicaSet per pod template, surge
rollout, status with observedGeneration/updated/ready/available replicas, Progressing with its deadline,
paused Deployments). The stand-in serves no StatefulSets or DaemonSets (the gates read none).

A mixin of `KubeStandin` (router.py).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import secrets as _secrets

from phasegate.lab.kube.objects import now, owned_by, owner_ref, pod_ready


class Deployments:
    def _init_workloads(self) -> None:
        self.frozen: set[tuple[str, str]] = set()  # deployments whose controller is paused (faults)
        self.progress_deadline_scale = 1.0  # lab seconds per progressDeadlineSeconds second

    # deployment controller
    def _reconcile_deployment(self, ns: str, name: str) -> None:
        d = self.get("Deployment", name, ns)
        if d is None or (ns, name) in self.frozen:
            return
        if d["spec"].get("paused"):
            # kubernetes pkg/controller/deployment/sync.go: a paused Deployment is scaled, never rolled out;
            # Progressing turns Unknown with reason DeploymentPaused (deployment/util PausedDeployReason)
            t = now()

            def paused(obj):
                st = obj.setdefault("status", {})
                st["observedGeneration"] = obj["metadata"].get("generation", 1)
                conds = [c for c in st.get("conditions") or [] if c["type"] != "Progressing"]
                conds.append({"type": "Progressing", "status": "Unknown", "reason": "DeploymentPaused",
                              "message": "Deployment is paused", "lastUpdateTime": t, "lastTransitionTime": t})
                st["conditions"] = conds
            self._update_status("Deployment", name, ns, paused)
            return
        template = d["spec"]["template"]
        h = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        replicas = d["spec"].get("replicas", 1)
        sel = d["spec"]["selector"].get("matchLabels", {})
        owned = [rs for rs in self.list("ReplicaSet", ns) if owned_by(rs, d)]
        new = next((rs for rs in owned if rs["metadata"]["labels"].get("pod-template-hash") == h), None)
        if new is None:
            revision = 1 + max([int(rs["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "0"))
                                for rs in owned] or [0])
            tpl = copy.deepcopy(template)
            tpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            new = self.put({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{name}-{h}", "namespace": ns,
                             "labels": dict(sel, **{"pod-template-hash": h}),
                             "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                             "ownerReferences": [owner_ref(d)]},
                "spec": {"replicas": replicas, "selector": {"matchLabels": dict(sel, **{"pod-template-hash": h})},
                         "template": tpl},
                "status": {"replicas": 0},
            }, fire=False)
        old = [rs for rs in owned if rs["metadata"]["name"] != new["metadata"]["name"]]
        every_rs = old + [new]
        pods = {rs["metadata"]["name"]: [p for p in self.list("Pod", ns) if owned_by(p, rs)] for rs in every_rs}
        new_pods = pods[new["metadata"]["name"]]
        for _ in range(replicas - len(new_pods)):
            tpl = new["spec"]["template"]
            pod_name = f"{new['metadata']['name']}-{_secrets.token_hex(3)[:5]}"
            self.put({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": dict(copy.deepcopy(tpl.get("metadata", {})), name=pod_name, namespace=ns,
                                 ownerReferences=[owner_ref(new)]),
                "spec": copy.deepcopy(tpl["spec"]),
            })
        new_pods = [p for p in self.list("Pod", ns) if owned_by(p, new)]
        ready_new = [p for p in new_pods if pod_ready(p)]
        if len(ready_new) >= replicas:
            for rs in old:  # surge rollout: old pods go once the new ones are ready
                for p in pods.get(rs["metadata"]["name"], []):
                    self.delete("Pod", p["metadata"]["name"], ns)
                self.mutate("ReplicaSet", rs["metadata"]["name"], ns,
                            lambda r: r["spec"].__setitem__("replicas", 0), fire=False)
        all_pods = [p for rs in every_rs for p in self.list("Pod", ns) if owned_by(p, rs)]
        ready = [p for p in all_pods if pod_ready(p)]
        updated = len(new_pods)
        complete = len(ready_new) >= replicas and len(all_pods) == updated
        # kubernetes pkg/controller/deployment/progress.go: a rollout that has not completed within
        # progressDeadlineSeconds of the new ReplicaSet's creation gets Progressing=False, ProgressDeadlineExceeded
        # (the lab's clock: progress_deadline_scale seconds per second)
        started = dt.datetime.strptime(new["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.UTC)
        deadline = d["spec"].get("progressDeadlineSeconds", 600) * self.progress_deadline_scale
        overdue = not complete and (dt.datetime.now(dt.UTC) - started).total_seconds() > deadline
        rs_name = new["metadata"]["name"]
        progressing = {
            "type": "Progressing", "status": "False" if overdue else "True",
            "reason": "ProgressDeadlineExceeded" if overdue else ("NewReplicaSetAvailable" if complete
                                                                  else "ReplicaSetUpdated"),
            "message": f'ReplicaSet "{rs_name}" ' + ("has timed out progressing." if overdue else
                                                     "has successfully progressed." if complete else "is progressing."),
            "lastUpdateTime": now(), "lastTransitionTime": now()}

        def status(obj):
            st = {
                "observedGeneration": obj["metadata"].get("generation", 1),
                "replicas": len(all_pods), "updatedReplicas": updated,
                "readyReplicas": len(ready), "availableReplicas": len(ready),
            }
            if len(all_pods) - len(ready) > 0:
                st["unavailableReplicas"] = len(all_pods) - len(ready)
            t = now()
            st["conditions"] = [
                {"type": "Available", "status": "True" if len(ready) >= replicas else "False",
                 "reason": "MinimumReplicasAvailable" if len(ready) >= replicas else "MinimumReplicasUnavailable",
                 "message": "Deployment has minimum availability." if len(ready) >= replicas
                 else "Deployment does not have minimum availability.",
                 "lastUpdateTime": t, "lastTransitionTime": t},
                progressing,
            ]
            for k in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
                if st[k] == 0:
                    st.pop(k)
            obj["status"] = st
        self._update_status("Deployment", name, ns, status)
        self._update_status("ReplicaSet", new["metadata"]["name"], ns, lambda r: r.__setitem__("status", {
            "replicas": len(new_pods), "readyReplicas": len(ready_new), "availableReplicas": len(ready_new),
            "fullyLabeledReplicas": len(new_pods), "observedGeneration": r["metadata"].get("generation", 1)}))
