"""The refusals a real API server answers with 403 Forbidden: RBAC (a denied verb on a resource) and the
admission of a new pod (namespace lifecycle, its service account, PodSecurity). Faults switch them on.

A mixin of `KubeStandin` (router.py).
"""

from __future__ import annotations

from phasegate.lab.kube.objects import ApiError


class Admission:
    def _init_admission(self) -> None:
        # issue 20: the refusals a real API server answers with 403 Forbidden (faults switch them on)
        self.denied: set[tuple[str, str]] = set()  # RBAC: (verb, resource[/subresource]) the suite may not do
        self.default_pod_security = "privileged"  # PodSecurity level for namespaces without an enforce label
        self.user = "system:serviceaccount:phasegate:phasegate"

    def _authorize(self, method: str, group: str, plural: str, name: str, sub: str, ns: str) -> None:
        """RBAC: a denied (verb, resource) is 403 with the authorizer's message (k8s.io/apiserver
        pkg/endpoints/handlers/responsewriters/errors.go forbiddenMessage)."""
        verb = {"GET": "get" if name else "list", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}.get(method, method.lower())
        resource = f"{plural}/{sub}" if sub else plural
        if (verb, resource) not in self.denied:
            return
        what = f'{plural} "{name}"' if name else plural
        where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
        raise ApiError(403, "Forbidden", f'{what} is forbidden: User "{self.user}" cannot {verb} resource '
                                         f'"{resource}" in API group "{group}"{where}', name, plural, group)

    def _admit_pod(self, obj: dict, ns: str, name: str) -> None:
        """Admission of a new pod: namespace lifecycle, service account, PodSecurity (each a 403 as the real plugin
        answers it; sources in phasegate.kube.Forbidden)."""
        nso = self.get("Namespace", ns) or {}
        if nso.get("metadata", {}).get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: unable to create new content in namespace '
                                             f"{ns} because it is being terminated", name, "pods")
        sa = (obj.get("spec") or {}).get("serviceAccountName") or "default"
        if self.get("ServiceAccount", sa, ns) is None:
            raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: error looking up service account '
                                             f'{ns}/{sa}: serviceaccount "{sa}" not found', name, "pods")
        level = (nso.get("metadata", {}).get("labels") or {}).get("pod-security.kubernetes.io/enforce",
                                                                   self.default_pod_security)
        host_paths = [v["name"] for v in (obj.get("spec") or {}).get("volumes") or [] if v.get("hostPath")]
        if level in ("baseline", "restricted") and host_paths:
            vols = ", ".join(f'"{v}"' for v in host_paths)
            raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": '
                                             f"hostPath volumes (volume{'s' if len(host_paths) > 1 else ''} {vols})",
                           name, "pods")
