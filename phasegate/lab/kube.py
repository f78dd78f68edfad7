"""A Kubernetes API stand-in: the REST subset the gates use, over HTTPS, for the official client.

No kube-apiserver can run on these machines, so the lab serves the wire
protocol itself: JSON objects under `/api/v1` and `/apis/<group>/<version>`,
list/get/create/patch/delete with label and field selectors, bearer-token
auth, `pods/<name>/log`, and real `Status` errors (404 NotFound, 409
AlreadyExists, 422 Invalid, 401 Unauthorized, 403 Forbidden). Objects are
kept as the API serves them and validate against the official OpenAPI
schemas (tests/test_kube_standin.py checks every stored object).

Controllers run inside the stand-in:
- Kyverno's clone rule: a new namespace (unless excluded) receives a copy of
  the source Secret (`kyverno/registry-credentials`);
- a kubelet per node (`phasegate.lab.nodes.ContainerdNode`): pulls each
  container's image through that node's real containerd with the pod's
  `imagePullSecrets` credentials, honours `imagePullPolicy`, and reports
  `containerStatuses` (`imageID`, or `ErrImagePull`/`ImagePullBackOff` with
  containerd's message). A container whose command is `cat FILE...` prints
  those files from its hostPath volumes, `ls -1A DIR...` lists directories
  (how the suite reads node files: phasegate.lab.nodes `busybox_ls`);
- the deployment controller (ReplicaSets per pod template, surge rollout,
  status with observedGeneration/updated/ready/available replicas);
- the job controller: a Job runs one pod; a Job owned by a CronJob updates
  the CronJob's status and history limits.

Lab hooks other areas use (see README "Cluster lab"):
- `register_runner(namespace, cronjob, fn)`: a pod of a Job of that CronJob
  (scheduled or `create job --from=cronjob/...`) runs `fn(RunContext)` after its
  image was pulled; `fn` returns `(exit_code, log)`. Without a runner a job
  container succeeds with an empty log.
- `put(obj)` / `get(...)` / `mutate(...)` / `delete(...)`: direct store access for
  seeding and faults (controllers fire as for API writes).
- `seed_job(cronjob_ns, cronjob, name, log=..., succeeded=..., finished=...)`: job history.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import queue
import re
import secrets as _secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from phasegate.lab.nodes import ContainerdNode, PullFailed, TLSServer, busybox_ls, pod_host_file
from phasegate.lab.procs import free_port

# (group, version, plural) -> (kind, namespaced)
RESOURCES: dict[tuple[str, str, str], tuple[str, bool]] = {
    ("", "v1", "namespaces"): ("Namespace", False),
    ("", "v1", "nodes"): ("Node", False),
    ("", "v1", "secrets"): ("Secret", True),
    ("", "v1", "serviceaccounts"): ("ServiceAccount", True),
    ("", "v1", "events"): ("Event", True),
    ("", "v1", "pods"): ("Pod", True),
    ("", "v1", "persistentvolumeclaims"): ("PersistentVolumeClaim", True),
    ("apps", "v1", "deployments"): ("Deployment", True),
    ("apps", "v1", "replicasets"): ("ReplicaSet", True),
    ("batch", "v1", "cronjobs"): ("CronJob", True),
    ("batch", "v1", "jobs"): ("Job", True),
    ("networking.k8s.io", "v1", "ingresses"): ("Ingress", True),
    ("traefik.io", "v1alpha1", "middlewares"): ("Middleware", True),
}
KINDS = {kind: key for key, (kind, _) in RESOURCES.items()}
# kinds served with a /status subresource (their main endpoint ignores status writes)
STATUS_SUBRESOURCE = frozenset({"Namespace", "Node", "Pod", "PersistentVolumeClaim", "Deployment", "ReplicaSet",
                                "CronJob", "Job", "Ingress"})
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
KYVERNO_EXCLUDED = ("kube-system", "kube-public", "kube-node-lease")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, name: str = "", kind: str = "", group: str = ""):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = {k: v for k, v in (("name", name), ("group", group), ("kind", kind)) if v}

    def status(self) -> dict:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "details": self.details, "code": self.code}


def _resource_label(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group, plural, name):
    return ApiError(404, "NotFound", f'{_resource_label(group, plural)} "{name}" not found', name, plural, group)


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (strategic merge patches of the gates' shape are the same)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(target, ops):
    out = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = out
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        if isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last)
            if op["op"] == "add":
                parent.insert(idx, op["value"])
            elif op["op"] == "replace":
                parent[idx] = op["value"]
            elif op["op"] == "remove":
                parent.pop(idx)
        else:
            if op["op"] in ("add", "replace"):
                parent[last] = op["value"]
            elif op["op"] == "remove":
                parent.pop(last, None)
    return out


def match_labels(labels: dict, selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def match_fields(obj: dict, selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        neg = "!=" in term
        k, v = term.replace("!=", "=").replace("==", "=").split("=", 1)
        cur = obj
        for part in k.strip().split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if (str(cur if cur is not None else "") == v.strip()) == neg:
            return False
    return True


def image_repo(image: str) -> str:
    """The repository part of an image reference as containerd names it (docker.io/library/ for short names)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    return name


def normalise_ref(image: str) -> str:
    repo = image_repo(image)
    if "@" in image:
        return f"{repo}@{image.split('@', 1)[1]}"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return f"{repo}:{tag}"


@dataclass
class RunContext:
    """What a job runner gets: the pod as created, its node, resolved env, and the lab."""

    api: KubeStandin
    pod: dict
    job: dict | None
    node: ContainerdNode
    env: dict[str, str]
    lab: object = None


Runner = Callable[[RunContext], tuple[int, str]]


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str


class KubeStandin:
    def __init__(self, *, token: str, cert: Path, key: Path, nodes: dict[str, ContainerdNode],
                 clone_source: tuple[str, str] = ("kyverno", "registry-credentials"),
                 clone_excluded: tuple[str, ...] = KYVERNO_EXCLUDED, lab=None):
        self.token = token
        self.cert, self.key = cert, key
        self.nodes = nodes
        self.clone_source = clone_source
        self.clone_excluded = clone_excluded
        self.lab = lab
        self.port = 0
        self._server: TLSServer | None = None
        self._lock = threading.RLock()
        self._store: dict[tuple[str, str], dict[tuple[str, str], dict]] = {
            (g, p): {} for (g, _, p) in RESOURCES
        }
        self._rv = 1000
        self.logs: dict[tuple[str, str], str] = {}
        self.runners: dict[tuple[str, str], Runner] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every API request
        self.kyverno_enabled = True
        self.frozen: set[tuple[str, str]] = set()  # deployments whose controller is paused (faults)
        self.pull_backoff = 0.5  # seconds from ErrImagePull to ImagePullBackOff (doubling on each retry)
        # issue 20: the refusals a real API server answers with 403 Forbidden (faults switch them on)
        self.denied: set[tuple[str, str]] = set()  # RBAC: (verb, resource[/subresource]) the suite may not do
        self.default_pod_security = "privileged"  # PodSecurity level for namespaces without an enforce label
        self.serviceaccount_delay = 0.0  # seconds from a namespace's creation to its `default` ServiceAccount
        self.namespace_delete_delay = 0.05  # seconds a deleted namespace stays Terminating (its content goes first)
        self.user = "system:serviceaccount:phasegate:phasegate"
        self.job_backoff = 0.2  # seconds before a failed Job pod is replaced (real: 10s, doubling)
        self.progress_deadline_scale = 1.0  # lab seconds per progressDeadlineSeconds second
        self.ttl_scale = 1.0  # ttlSecondsAfterFinished in lab seconds
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._sched = 0
        self._idle = threading.Condition()
        self._busy = 0

    # -- life cycle -------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> KubeStandin:
        self.port = self.port or free_port()
        self._server = TLSServer(("127.0.0.1", self.port), _Handler, self.cert, self.key)
        self._server.api = self
        t = threading.Thread(target=self._server.serve_forever, name="kube-api", daemon=True)
        t.start()
        c = threading.Thread(target=self._controller_loop, name="kube-controllers", daemon=True)
        c.start()
        self._threads = [t, c]
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._queue.put(None)
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # -- write evidence (tests/test_readonly_guard.py): what the API was asked, not what the suite says --
    def mark(self) -> int:
        return len(self.requests)

    def writes(self, since: int = 0) -> list[ApiRequest]:
        return [ApiRequest(m, p) for m, p in self.requests[since:] if m not in ("GET", "HEAD", "OPTIONS")]

    def register_runner(self, namespace: str, cronjob: str, fn: Runner) -> None:
        """Jobs of CronJob `namespace/cronjob` run `fn` (see module doc)."""
        self.runners[(namespace, cronjob)] = fn

    # -- store ------------------------------------------------------------------
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
                if _owned_by(pod, obj):
                    self.delete("Pod", pod["metadata"]["name"], namespace)
        if kind == "Job":
            for pod in self.list("Pod", namespace):
                if _owned_by(pod, obj):
                    self.delete("Pod", pod["metadata"]["name"], namespace)
        if kind == "Deployment":
            for rs in self.list("ReplicaSet", namespace):
                if _owned_by(rs, obj):
                    self.delete("ReplicaSet", rs["metadata"]["name"], namespace)
        if kind == "CronJob":
            for job in self.list("Job", namespace):
                if _owned_by(job, obj):
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
                c.setdefault("imagePullPolicy", _default_policy(c.get("image", "")))
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

    # -- controllers --------------------------------------------------------------
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

    # scheduler: pods without nodeName land on the nodes in turn
    def _schedule(self, ns: str, name: str) -> None:
        pod = self.get("Pod", name, ns)
        if pod is None:
            return
        node = pod["spec"].get("nodeName")
        if not node:
            names = sorted(self.nodes)
            node = names[self._sched % len(names)]
            self._sched += 1
            self.mutate("Pod", name, ns, lambda p: p["spec"].__setitem__("nodeName", node), fire=False)
        if node not in self.nodes:
            return  # stays Pending, as on a cluster without that node
        self._update_status("Pod", name, ns, lambda p: p["status"].update({
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}]}))
        with self._idle:
            self._busy += 1
        t = threading.Thread(target=self._kubelet_run, args=(ns, name, node), name=f"kubelet-{node}-{name}",
                             daemon=True)
        t.start()

    # kubelet
    def _pull_credentials(self, pod: dict, image: str) -> tuple[str, str]:
        """The first credentials kubelet's keyring finds for `image` in the pod's pull secrets
        (phasegate.cri.lookup: kubernetes pkg/credentialprovider/keyring.go, `https://host/v2/` is `host`)."""
        from phasegate import cri

        ns = pod["metadata"]["namespace"]
        for ref in pod["spec"].get("imagePullSecrets") or []:
            sec = self.get("Secret", ref.get("name", ""), ns)
            if not sec or sec.get("type") != "kubernetes.io/dockerconfigjson":
                continue
            try:
                auths = json.loads(base64.b64decode(sec["data"][".dockerconfigjson"])).get("auths") or {}
            except Exception:
                continue
            for key in cri.lookup(auths, image_repo(image)):
                entry = auths[key]
                if entry.get("auth"):
                    user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
                    return user, pw
                return entry.get("username", ""), entry.get("password", "")
        return "", ""

    def _env(self, pod: dict, container: dict) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        env = {}
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = e["value"]
            elif (e.get("valueFrom") or {}).get("secretKeyRef"):
                ref = e["valueFrom"]["secretKeyRef"]
                sec = self.get("Secret", ref["name"], ns)
                if sec and ref["key"] in (sec.get("data") or {}):
                    env[e["name"]] = base64.b64decode(sec["data"][ref["key"]]).decode()
        return env

    def _missing_env_source(self, pod: dict, c: dict) -> str:
        ns = pod["metadata"]["namespace"]
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if not ref or ref.get("optional"):
                continue
            sec = self.get("Secret", ref["name"], ns)
            if sec is None:
                return f'secret "{ref["name"]}" not found'
            if ref["key"] not in (sec.get("data") or {}):
                return f'couldn\'t find key {ref["key"]} in Secret {ns}/{ref["name"]}'
        return ""

    def _container_status(self, c: dict, **kw) -> dict:
        st = {"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "restartCount": 0,
              "started": False}
        st.update(kw)
        return st

    def _kubelet_run(self, ns: str, name: str, node_name: str) -> None:
        try:
            self._kubelet(ns, name, node_name)
        except Exception:
            import traceback

            traceback.print_exc()
        finally:
            self._done()

    def _image_id(self, node: ContainerdNode, image: str, digest: str) -> str:
        """The imageID containerd's CRI reports: the image (keyed by config digest) merges every reference to
        the same content, sorted; the first repo@digest is reported (containerd pkg/cri/store/image/image.go
        `Store.add` merges references; pkg/cri/server/container_status.go `toCRIContainerStatus` takes
        repoDigests[0]). So a node that cached the bytes under another registry's name may report that name."""
        refs = node.refs_of(digest) or [normalise_ref(image)]
        repos = sorted({f"{image_repo(r)}@{digest}" for r in refs if not r.startswith("sha256:")})
        return repos[0] if repos else f"{image_repo(image)}@{digest}"

    def _pull(self, pod: dict, c: dict, node: ContainerdNode) -> tuple[str, tuple[str, str] | None]:
        """(image digest, None) or ("", (reason, message)) as the kubelet's image manager reports a pull."""
        image = c["image"]
        ref = normalise_ref(image)
        policy = c.get("imagePullPolicy") or _default_policy(image)
        digest = node.image_digest(ref)
        if policy == "Never" and not digest:
            return "", ("ErrImageNeverPull", f'Container image "{image}" is not present with pull policy of Never')
        if policy == "Always" or not digest:
            user, pw = self._pull_credentials(pod, image)
            try:
                digest = node.pull(ref, user, pw)
            except PullFailed as e:
                msg = (f'Failed to pull image "{image}": rpc error: code = Unknown desc = '
                       f'failed to pull and unpack image "{ref}": {e}')
                self._event(pod, c, node, "Failed", msg)
                # kubelet pkg/kubelet/images/image_manager.go: ErrImagePull, "Failed to pull image %q: %v" around
                # the CRI's gRPC error (containerd pkg/cri/server/image_pull.go "failed to pull and unpack image")
                return "", ("ErrImagePull", f'Failed to pull image "{image}": rpc error: code = Unknown desc = '
                                            f'failed to pull and unpack image "{ref}": {e}')
        return digest, None

    def _event(self, pod: dict, c: dict, node: ContainerdNode, reason: str, message: str) -> None:
        """A Warning Event on the pod, as the kubelet records a failed pull (pkg/kubelet/images/image_manager.go
        logIt: reason "Failed"); `kubectl describe pod` and the suite read the cause there once the status says
        only ImagePullBackOff."""
        ns = pod["metadata"]["namespace"]
        t = now()
        self.put({"apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": reason, "message": message,
                  "metadata": {"name": f"{pod['metadata']['name']}.{_secrets.token_hex(8)}", "namespace": ns},
                  "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"],
                                     "uid": pod["metadata"]["uid"], "apiVersion": "v1",
                                     "fieldPath": f"spec.containers{{{c['name']}}}"},
                  "source": {"component": "kubelet", "host": node.name}, "count": 1,
                  "firstTimestamp": t, "lastTimestamp": t}, fire=False)

    def _kubelet(self, ns: str, name: str, node_name: str) -> None:
        """One pod on one node: init containers in order (each pulled, then run to completion), then the
        containers. Statuses as the kubelet reports them (initContainerStatuses, containerStatuses)."""
        node = self.nodes[node_name]
        pod = self.get("Pod", name, ns)
        if pod is None:
            return
        started = now()
        self._update_status("Pod", name, ns, lambda p: p["status"].update({
            "hostIP": node.address, "podIP": node.address, "startTime": started}))
        inits = pod["spec"].get("initContainers") or []
        mains = pod["spec"]["containers"]
        init_st = [self._container_status(c, state={"waiting": {"reason": "PodInitializing"}}) for c in inits]
        main_st = [self._container_status(c, state={"waiting": {"reason": "PodInitializing" if inits
                                                                 else "ContainerCreating"}}) for c in mains]
        job = self._owner_job(pod)
        for i, c in enumerate(inits):
            st = self._start(pod, c, node, job, started)
            init_st[i] = st
            term = (st.get("state") or {}).get("terminated")
            if not term:  # waiting: pull failed or container could not be created
                self._set_containers(ns, name, main_st, phase="Pending", ready=False, init=init_st)
                self._back_off(ns, name, node, c, init=True, index=i)
                return
            if term["exitCode"] != 0:  # an init container failed: restartPolicy Never fails the pod
                self.logs[(ns, name)] = st.pop("_log", "")
                phase = "Failed" if pod["spec"].get("restartPolicy") == "Never" else "Pending"
                self._set_containers(ns, name, main_st, phase=phase, ready=False, init=init_st)
                return
            st.pop("_log", None)
        logs, codes = [], []
        for i, c in enumerate(mains):
            st = self._start(pod, c, node, job, started)
            logs.append(st.pop("_log", ""))
            main_st[i] = st
            term = (st.get("state") or {}).get("terminated")
            if term:
                codes.append(term["exitCode"])
        if self.get("Pod", name, ns) is None:
            return
        self.logs[(ns, name)] = "".join(logs)
        waiting = [s for s in main_st if (s.get("state") or {}).get("waiting")]
        if waiting:
            self._set_containers(ns, name, main_st, phase="Pending", ready=False, init=init_st)
            bad = next(i for i, s in enumerate(main_st) if (s.get("state") or {}).get("waiting"))
            self._back_off(ns, name, node, mains[bad], init=False, index=bad)
        elif codes and len(codes) == len(mains):
            phase = "Succeeded" if all(c == 0 for c in codes) else "Failed"
            self._set_containers(ns, name, main_st, phase=phase, ready=False, init=init_st)
        else:
            self._set_containers(ns, name, main_st, phase="Running", ready=True, init=init_st)

    def _start(self, pod: dict, c: dict, node: ContainerdNode, job: dict | None, started: str) -> dict:
        """Pull, create and run one container; its status (with its output under "_log" when it ended)."""
        digest, err = self._pull(pod, c, node)
        if err:
            return self._container_status(c, state={"waiting": {"reason": err[0], "message": err[1]}})
        image_id = self._image_id(node, c["image"], digest)
        missing = self._missing_env_source(pod, c)
        if missing:
            # kubelet pkg/kubelet/kubelet_pods.go makeEnvironmentVariables; kuberuntime reports
            # CreateContainerConfigError and keeps the pod Pending, retrying
            return self._container_status(c, state={"waiting": {"reason": "CreateContainerConfigError",
                                                                "message": missing}})
        argv = list(c.get("command") or []) + list(c.get("args") or [])
        config = node.image_config(digest)
        if not argv and not (config.get("Entrypoint") or config.get("Cmd")):
            # containerd pkg/cri/opts/spec.go WithProcessArgs: "no command specified", wrapped by
            # pkg/cri/server/container_create.go; kubelet reports CreateContainerError and never gets an imageID
            cid = hashlib.sha256(f"{pod['metadata']['uid']}/{c['name']}".encode()).hexdigest()
            return self._container_status(c, state={"waiting": {
                "reason": "CreateContainerError",
                "message": f'failed to generate container "{cid}" spec: failed to generate spec: no command specified'}})
        cid = "containerd://" + hashlib.sha256(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}/"
                                               f"{c['name']}".encode()).hexdigest()
        code, out = self._run_container(pod, c, node, job, digest)
        if code is None and c in (pod["spec"].get("initContainers") or []):
            code = 0  # an init container runs to completion (the lab runs none of the projects' programs)
        if code is None:
            return self._container_status(c, imageID=image_id, containerID=cid, ready=True, started=True,
                                          state={"running": {"startedAt": started}})
        term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "startedAt": started,
                "finishedAt": now()}
        if code == 128 and "OCI runtime" in out:
            # runc could not start the process (no such executable): kubelet reports StartError, exit code 128,
            # with the runtime's message (containerd pkg/cri/server/container_start.go)
            term.update(reason="StartError", message=out.strip().removeprefix("ctr: "))
            out = ""
        return dict(self._container_status(c, imageID=image_id, containerID=cid, state={"terminated": term}),
                    _log=out)

    def _back_off(self, ns: str, name: str, node: ContainerdNode, c: dict, *, init: bool, index: int) -> None:
        """A container that cannot start: the kubelet retries, ErrImagePull and ImagePullBackOff alternating with
        a doubling back-off (kubelet pkg/kubelet/images/image_manager.go `backOff`, 10s doubling to 300s; the
        lab's base is `pull_backoff`). Retries run on their own thread (not counted by wait_idle) until the pod
        is gone or the pull succeeds; a successful pull restarts the pod's kubelet run."""
        key = "initContainerStatuses" if init else "containerStatuses"

        def set_waiting(reason: str, message: str) -> None:
            def fn(p):
                st = (p["status"].get(key) or [])
                if index < len(st):
                    st[index]["state"] = {"waiting": {"reason": reason, "message": message}}
            self._update_status("Pod", name, ns, fn)

        pod = self.get("Pod", name, ns)
        cur = ((pod or {}).get("status", {}).get(key) or [{}])[index].get("state", {}).get("waiting", {})
        if cur.get("reason") != "ErrImagePull":
            return  # CreateContainerError and the like: the kubelet retries the same error (nothing changes)

        def loop():
            delay = self.pull_backoff
            while not self._stopping.is_set():
                time.sleep(delay)
                if self.get("Pod", name, ns) is None:
                    return
                set_waiting("ImagePullBackOff", f'Back-off pulling image "{c["image"]}"')
                time.sleep(delay)
                pod = self.get("Pod", name, ns)
                if pod is None:
                    return
                digest, err = self._pull(pod, c, node)
                if not err:
                    with self._idle:
                        self._busy += 1
                    self._kubelet_run(ns, name, node.name)
                    return
                set_waiting(err[0], err[1])
                delay = min(delay * 2, self.pull_backoff * 30)

        threading.Thread(target=loop, name=f"kubelet-backoff-{name}", daemon=True).start()

    def _owner_job(self, pod: dict) -> dict | None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref["kind"] == "Job":
                return self.get("Job", ref["name"], pod["metadata"]["namespace"])
        return None

    def _run_container(self, pod: dict, c: dict, node: ContainerdNode, job: dict | None,
                       digest: str = "") -> tuple[int | None, str]:
        """None = keeps running (a server); otherwise (exit code, log).

        A run-to-completion pod (restartPolicy Never, not a Job's) with the image's own command is really run
        by the node's containerd (`ctr run`): the smoke image proves it runs, a broken one fails as it would.
        """
        argv = list(c.get("command") or []) + list(c.get("args") or [])
        if argv and argv[0] in ("cat", "/bin/cat"):
            return self._cat(pod, c, node, argv[1:])
        if argv and argv[0] in ("ls", "/bin/ls"):
            return busybox_ls(pod, c, node, argv[1:])
        if job is None and pod["spec"].get("restartPolicy") == "Never":
            cid = f"{pod['metadata']['name']}-{c['name']}-{_secrets.token_hex(3)}"
            return node.run(normalise_ref(c["image"]), cid, argv)
        if job is not None:
            runner = self._runner_for(job)
            if runner:
                ctx = RunContext(api=self, pod=pod, job=job, node=node, env=self._env(pod, c), lab=self.lab)
                try:
                    code, log = runner(ctx)
                except Exception as e:
                    return 1, f"runner failed: {type(e).__name__}: {e}\n"
                return int(code), log
            if argv:  # no runner, an explicit command: the node's containerd runs it (a missing one is StartError)
                return node.run(normalise_ref(c["image"]), f"{pod['metadata']['name']}-{c['name']}", argv)
            return 0, ""  # no runner, the image's own command: succeeds with an empty log (the lab hook's default)
        if pod["spec"].get("restartPolicy") in ("Never", "OnFailure") and argv:
            return 0, ""
        return None, ""

    def _runner_for(self, job: dict) -> Runner | None:
        ns = job["metadata"]["namespace"]
        for ref in job["metadata"].get("ownerReferences") or []:
            if ref["kind"] == "CronJob" and (ns, ref["name"]) in self.runners:
                return self.runners[(ns, ref["name"])]
        return self.runners.get((ns, job["metadata"]["name"]))

    def _cat(self, pod: dict, c: dict, node: ContainerdNode, paths: list[str]) -> tuple[int, str]:
        out, code = [], 0
        for path in paths:
            host_path = pod_host_file(pod, c, node, path)
            if host_path is None or not host_path.is_file():
                out.append(f"cat: can't open '{path}': No such file or directory\n")
                code = 1
                continue
            out.append(host_path.read_text(errors="replace"))
        return code, "".join(out)

    def _set_containers(self, ns, name, statuses, *, phase, ready, init=None):
        def fn(p):
            st = p["status"]
            st["phase"] = phase
            st["containerStatuses"] = statuses
            if init:
                st["initContainerStatuses"] = init
            t = now()
            st["conditions"] = [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                {"type": "Initialized", "status": "True" if all((s.get("state") or {}).get("terminated")
                                                                 for s in init or []) else "False",
                 "lastTransitionTime": t},
                {"type": "ContainersReady", "status": "True" if ready else "False", "lastTransitionTime": t},
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": t},
            ]
        self._update_status("Pod", name, ns, fn)

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
        owned = [rs for rs in self.list("ReplicaSet", ns) if _owned_by(rs, d)]
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
                             "ownerReferences": [_owner_ref(d)]},
                "spec": {"replicas": replicas, "selector": {"matchLabels": dict(sel, **{"pod-template-hash": h})},
                         "template": tpl},
                "status": {"replicas": 0},
            }, fire=False)
        old = [rs for rs in owned if rs["metadata"]["name"] != new["metadata"]["name"]]
        every_rs = old + [new]
        pods = {rs["metadata"]["name"]: [p for p in self.list("Pod", ns) if _owned_by(p, rs)] for rs in every_rs}
        new_pods = pods[new["metadata"]["name"]]
        for _ in range(replicas - len(new_pods)):
            tpl = new["spec"]["template"]
            pod_name = f"{new['metadata']['name']}-{_secrets.token_hex(3)[:5]}"
            self.put({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": dict(copy.deepcopy(tpl.get("metadata", {})), name=pod_name, namespace=ns,
                                 ownerReferences=[_owner_ref(new)]),
                "spec": copy.deepcopy(tpl["spec"]),
            })
        new_pods = [p for p in self.list("Pod", ns) if _owned_by(p, new)]
        ready_new = [p for p in new_pods if _pod_ready(p)]
        if len(ready_new) >= replicas:
            for rs in old:  # surge rollout: old pods go once the new ones are ready
                for p in pods.get(rs["metadata"]["name"], []):
                    self.delete("Pod", p["metadata"]["name"], ns)
                self.mutate("ReplicaSet", rs["metadata"]["name"], ns,
                            lambda r: r["spec"].__setitem__("replicas", 0), fire=False)
        all_pods = [p for rs in every_rs for p in self.list("Pod", ns) if _owned_by(p, rs)]
        ready = [p for p in all_pods if _pod_ready(p)]
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

    # job controller
    def _job_pod(self, job: dict) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        tpl = job["spec"]["template"]
        labels = dict((tpl.get("metadata") or {}).get("labels") or {})
        labels.update({"job-name": name, "batch.kubernetes.io/job-name": name})
        self.put({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": f"{name}-{_secrets.token_hex(3)[:5]}", "namespace": ns, "labels": labels,
                               "ownerReferences": [_owner_ref(job)]},
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
        pods = [p for p in self.list("Pod", ns) if _owned_by(p, job)]
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
                                          if _owned_by(p, j) and p["status"].get("phase") not in ("Succeeded", "Failed")]:
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
        jobs = sorted((j for j in self.list("Job", ns) if _owned_by(j, cj)),
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
                         "labels": {"job-name": name}, "ownerReferences": [_owner_ref(cj)]},
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
                         "ownerReferences": [_owner_ref(job)]},
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

    # -- API handling -------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, headers, body: bytes) -> tuple[int, str, bytes]:
        if headers.get("Authorization", "") != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")
        parts = [p for p in path.split("/") if p]
        if parts == ["version"]:
            return 200, "application/json", json.dumps({"major": "1", "minor": "30", "gitVersion": "v1.30.0-phasegate-lab",
                                                         "platform": "linux/amd64"}).encode()
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns = ""
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in RESOURCES:
            ns, rest = rest[1], rest[2:]
        if not rest or (group, version, rest[0]) not in RESOURCES:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else ""), (rest[2] if len(rest) > 2 else "")
        kind, namespaced = RESOURCES[(group, version, plural)]
        self._authorize(method, group, plural, name, sub, ns)
        q = {k: v[0] for k, v in query.items()}
        if method == "GET" and not name:
            items = [o for o in self.list(kind, ns if (namespaced and ns) else None, q.get("labelSelector", ""))
                     if match_fields(o, q.get("fieldSelector", ""))]
            for o in items:
                o.pop("kind", None)
                o.pop("apiVersion", None)
            with self._lock:
                rv = str(self._rv)
            return self._json(200, {"kind": f"{kind}List", "apiVersion": f"{group}/{version}" if group else version,
                                    "metadata": {"resourceVersion": rv}, "items": items})
        if method == "POST" and not name:
            return self._create(kind, group, plural, ns, namespaced, body)
        if not name:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {plural}")
        obj = self.get(kind, name, ns)
        if obj is None:
            raise not_found(group, plural, name)
        if sub == "log" and kind == "Pod" and method == "GET":
            if obj["status"].get("phase") == "Pending":
                c = obj["spec"]["containers"][0]["name"]
                raise ApiError(400, "BadRequest",
                               f'container "{c}" in pod "{name}" is waiting to start: '
                               + _waiting_reason(obj))
            return 200, "text/plain", self.logs.get((ns, name), "").encode()
        if sub == "status" and kind in STATUS_SUBRESOURCE:
            return self._status_subresource(kind, name, ns, namespaced, obj, method, headers, body)
        if sub:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET":
            return self._json(200, obj)
        if method == "DELETE":
            if kind == "Namespace":
                return self._json(200, self._terminate_namespace(name))
            out = self.delete(kind, name, ns)
            return self._json(200, out)
        if method == "PATCH":
            ctype = headers.get("Content-Type", "")
            patch = json.loads(body or b"{}")
            new = json_patch(obj, patch) if "json-patch" in ctype else merge_patch(obj, patch)
            new["metadata"]["name"], new["metadata"]["uid"] = name, obj["metadata"]["uid"]
            if namespaced:
                new["metadata"]["namespace"] = ns
            if kind in STATUS_SUBRESOURCE:  # the main resource ignores status (it has its own subresource)
                new["status"] = obj.get("status", {})
            return self._json(200, self.put(new))
        if method == "PUT":
            new = json.loads(body)
            if new.get("metadata", {}).get("name") != name:
                raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
            new["metadata"]["uid"] = obj["metadata"]["uid"]
            new["metadata"]["creationTimestamp"] = obj["metadata"]["creationTimestamp"]
            if kind in STATUS_SUBRESOURCE:
                new["status"] = obj.get("status", {})
            return self._json(200, self.put(new))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

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

    def _status_subresource(self, kind, name, ns, namespaced, obj, method, headers, body):
        """GET/PUT/PATCH <object>/status: only `status` changes, the generation does not (the registry's
        status strategy: e.g. kubernetes pkg/registry/apps/deployment/strategy.go deploymentStatusStrategy
        PrepareForUpdate keeps the old spec)."""
        if method == "GET":
            return self._json(200, obj)
        if method == "PATCH":
            patch = json.loads(body or b"{}")
            ctype = headers.get("Content-Type", "")
            new = json_patch(obj, patch) if "json-patch" in ctype else merge_patch(obj, patch)
        elif method == "PUT":
            new = json.loads(body)
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on the status subresource")
        status = new.get("status") or {}
        out = self._update_status(kind, name, ns, lambda o: o.__setitem__("status", status))
        return self._json(200, out)

    def _create(self, kind, group, plural, ns, namespaced, body) -> tuple[int, str, bytes]:
        try:
            obj = json.loads(body)
        except ValueError:
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format") from None
        md = obj.setdefault("metadata", {})
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + _secrets.token_hex(3)[:5]
        name = md.get("name") or ""
        label = _resource_label(group, plural)
        if not name:
            raise ApiError(422, "Invalid", f"{kind} \"\" is invalid: metadata.name: Required value: name or "
                                           f"generateName is required", "", plural, group)
        if len(name) > 253 or not DNS1123.match(name) or (kind in ("Namespace", "Pod") and "." in name and kind == "Namespace"):
            raise ApiError(422, "Invalid", f'{kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": '
                                           "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                                           "characters or '-'", name, plural, group)
        if namespaced:
            if obj.get("metadata", {}).get("namespace", ns) != ns:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                                                  "sent on the request")
            md["namespace"] = ns
            nso = self.get("Namespace", ns)
            if nso is None:
                raise not_found("", "namespaces", ns)
        if kind == "Pod":
            self._admit_pod(obj, ns, name)
            problems = []
            for i, c in enumerate((obj.get("spec") or {}).get("containers") or []):
                if not c.get("image"):
                    problems.append(f"spec.containers[{i}].image: Required value")
            if not (obj.get("spec") or {}).get("containers"):
                problems.append("spec.containers: Required value")
            if problems:
                raise ApiError(422, "Invalid", f'Pod "{name}" is invalid: ' + ", ".join(problems), name, plural)
        obj["kind"] = kind
        obj.pop("status", None) if kind not in ("Namespace",) else None
        with self._lock:
            existing = self.get(kind, name, ns if namespaced else "")
            if existing is not None:
                deleting = "object is being deleted: " if existing["metadata"].get("deletionTimestamp") else ""
                raise ApiError(409, "AlreadyExists", f'{deleting}{label} "{name}" already exists', name, plural, group)
            for k in ("uid", "resourceVersion", "creationTimestamp", "generation"):
                md.pop(k, None)
            created = self.put(obj)
        return self._json(201, created)

    @staticmethod
    def _json(code: int, obj) -> tuple[int, str, bytes]:
        return code, "application/json", json.dumps(obj).encode()


def _waiting_reason(pod: dict) -> str:
    for s in pod["status"].get("containerStatuses") or []:
        w = (s.get("state") or {}).get("waiting")
        if w:
            return w.get("reason", "ContainerCreating")
    return "ContainerCreating"


def _default_policy(image: str) -> str:
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    if "@" in image:
        return "IfNotPresent"
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def _owner_ref(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _owned_by(obj: dict, owner: dict) -> bool:
    return any(r.get("uid") == owner["metadata"]["uid"] for r in obj["metadata"].get("ownerReferences") or [])


def _pod_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def _do(self):
        api: KubeStandin = self.server.api
        u = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        api.requests.append((self.command, u.path))
        try:
            code, ctype, data = api.handle(self.command, u.path, urllib.parse.parse_qs(u.query), self.headers, body)
        except ApiError as e:
            code, ctype, data = e.code, "application/json", json.dumps(e.status()).encode()
        except Exception as e:
            err = ApiError(500, "InternalError", f"an error on the server ({type(e).__name__}: {e}) has prevented "
                                                 "the request from succeeding")
            code, ctype, data = 500, "application/json", json.dumps(err.status()).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _do


def kubeconfig(path: Path, *, server: str, ca: Path, token: str, context: str = "phasegate-lab") -> Path:
    import yaml

    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "phasegate", "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": "phasegate"}}],
    }
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return path
