"""Lab component `cluster`: three containerd nodes, a Traefik front, and the Kubernetes stand-in.

Start order: the nodes' containerds start together (each ~0.2 s), local
images are imported into each, hosts.toml files are written, the Traefik
front and the API stand-in start, then the plan's objects are seeded from the
inventory's values (infra-facts.md): the Forgejo Deployment/PVC/ingress/
middleware, the two CronJobs, the cluster-wide pull secret, and one workload
per cutover project whose pods are really pulled by the nodes from Forgejo.

How the lab maps to the real cluster (README "Cluster lab"):
- node `k8s-nodeN` = `ContainerdNode`: `/etc/containerd/certs.d` is
  `<node>/rootfs/etc/containerd/certs.d`; the kubelet's CRI pull is
  `ctr images pull --hosts-dir` with the pod's pull-secret credentials;
- the Forgejo host's hosts.toml: `server` = a loopback port where nothing
  listens (stands for the public name: a fallback must fail, as the hairpin
  does), mirror `[host."https://127.0.0.1:<traefik>"]` = the in-cluster
  Traefik LB, which routes to Forgejo by Host;
- registry-private's host and aliases get a hosts.toml with `server` =
  registry-private (removed by the `decommissioned` state).
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import datetime as dt
import json
import secrets as _secrets
import shutil
import ssl
from pathlib import Path

from phasegate.lab.faults import fault, state_part
from phasegate.lab.kube import KubeStandin, kubeconfig, rfc3339
from phasegate.lab.nodes import ContainerdNode, TraefikFront, image_layout_tar, write_hosts_toml
from phasegate.lab.procs import LabError

NODE_NAMES = ["k8s-node1", "k8s-node2", "k8s-node3"]
DEAD_SERVER = "https://127.0.0.1:1"  # the "public name" in the lab: nothing listens there
LOCAL_IMAGES = {
    "forgejo": "codeberg.org/forgejo/forgejo:11",
    "cleanup": "docker.io/library/alpine:3.20",
    "probe": "docker.io/library/python:3.12-alpine",
    # images of the projects' workloads that are not the projects' own (never judged by cutover)
    "busybox-1.37": "docker.io/library/busybox:1.37",
    "busybox-1.36": "docker.io/library/busybox:1.36",
    "playwright": "mcr.microsoft.com/playwright:v1.48.0-noble",
}

# The projects' workloads as the infra repository has them at the Phase 3 commit 3148d15d
# (docs/inventory.md "Projects" cites each): workload name -> [(init?, container, image)], where image
# "own" is the project's own image and anything else is another image (ignored by the cutover gates).
# A workload not listed here gets one container named after it, on the project's image.
OWN = "own"
WORKLOAD_SHAPES: dict[str, list[tuple[bool, str, str]]] = {
    "payslip-ingest": [(True, "alembic-migrate", OWN), (False, "payslip-ingest", OWN)],
    "actualbudget-payroll-sync": [(False, "sync", OWN)],
    "job-hunter": [(True, "alembic-migrate", OWN), (False, "job-hunter", OWN)],
    "claude-agent-service": [(True, "fix-perms", LOCAL_IMAGES["busybox-1.37"]),
                             (True, "copy-claude-creds", LOCAL_IMAGES["busybox-1.37"]),
                             (True, "git-init", OWN), (True, "seed-beads-agent", OWN),
                             (False, "claude-agent-service", OWN)],
    "beads-dispatcher": [(False, "dispatcher", OWN)],
    "beads-reaper": [(False, "reaper", OWN)],
    "fire-planner": [(True, "alembic-migrate", OWN), (False, "fire-planner", OWN)],
    "fire-planner-recompute": [(False, "recompute", OWN)],
    "wealthfolio-sync": [(False, "sync", OWN)],
    "music-viktor": [(False, "freedify", OWN)],
    "music-emo": [(False, "freedify", OWN)],
    "chrome-service": [(True, "fix-perms", LOCAL_IMAGES["busybox-1.37"]),
                       (False, "chrome-service", LOCAL_IMAGES["playwright"]), (False, "novnc", OWN)],
    "beadboard": [(True, "seed-beads-config", LOCAL_IMAGES["busybox-1.36"]), (False, "beadboard", OWN)],
    "claude-memory": [(False, "claude-memory", OWN)],
}
PULL_SECRET = "registry-credentials"
CONTEXT = "phasegate-lab"


def dockerconfigjson(entries: dict[str, tuple[str, str]]) -> str:
    auths = {host: {"username": u, "password": p, "auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
             for host, (u, p) in entries.items()}
    return base64.b64encode(json.dumps({"auths": auths}).encode()).decode()


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class ClusterLab:
    name = "cluster"

    def __init__(self):
        self.nodes: dict[str, ContainerdNode] = {}
        self.traefik: TraefikFront | None = None
        self.api: KubeStandin | None = None
        self.lab = None
        self.kubeconfig: Path | None = None
        self.inv = None  # the default inventory's values (names of objects), merged with the registries'
        self.project_images: dict[str, tuple[str, str, str]] = {}  # project -> (forgejo ref, private ref, digest)

    # -- start -------------------------------------------------------------------
    def start(self, lab) -> None:
        self.lab = lab
        regs = lab["registries"]
        self.forgejo, self.private = regs.forgejo, regs.private
        d = lab.dir / "cluster"
        for i, name in enumerate(NODE_NAMES):
            self.nodes[name] = ContainerdNode(name, d / name, address=f"127.0.0.{10 + i}").start()
        tar = image_layout_tar([LOCAL_IMAGES[k] for k in LOCAL_IMAGES] + [self._reader_image()])
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            for f in [pool.submit(self._prepare_node, n, tar) for n in self.nodes.values()]:
                f.result()
        cert, key = lab.ca.issue("traefik", "127.0.0.1", "localhost")
        self.traefik = TraefikFront(cert, key, backend_verify=ssl.create_default_context(cafile=str(lab.ca.bundle)))
        self.traefik.start()
        self.traefik.routes[self.traefik.netloc] = self.forgejo.url
        for node in self.nodes.values():
            self.write_node_hosts(node)
        cert, key = lab.ca.issue("kube-apiserver", "127.0.0.1", "localhost")
        self.api = KubeStandin(token=lab.secret("kube_token"), cert=cert, key=key, nodes=self.nodes, lab=lab)
        self.api.start()
        self.kubeconfig = kubeconfig(d / "kubeconfig", server=self.api.url, ca=lab.ca.bundle,
                                     token=lab.secret("kube_token"), context=CONTEXT)
        self.seed()
        if not self.api.wait_idle(60):
            raise LabError("cluster: seeded workloads did not settle within 60s")

    def _reader_image(self) -> str:
        from phasegate import config

        return config.Cluster().node_reader_image

    def _prepare_node(self, node: ContainerdNode, tar: bytes) -> None:
        node.wait_ready()
        node.import_images(tar)

    def stop(self) -> None:
        if self.api:
            self.api.stop()
        if self.traefik:
            self.traefik.stop()
        for node in self.nodes.values():
            node.stop()

    # -- node registry config -------------------------------------------------------
    @property
    def forgejo_host(self) -> str:
        return self.forgejo.netloc

    @property
    def private_hosts(self) -> list[str]:
        return [self.private.netloc, f"localhost:{self.private.port}"]

    def write_node_hosts(self, node: ContainerdNode, *, private: bool = True) -> None:
        write_hosts_toml(node, self.forgejo_host, DEAD_SERVER, [self.traefik.url], self.lab.ca.bundle)
        if private:
            for h in self.private_hosts:
                write_hosts_toml(node, h, self.private.url, [], self.lab.ca.bundle)

    # -- seed ----------------------------------------------------------------------
    def _credentials(self, *, private: bool = True) -> dict[str, tuple[str, str]]:
        entries = {self.forgejo_host: ("cluster-puller", self.lab.secret("forgejo_pull_token"))}
        if private:
            for h in self.private_hosts:
                entries[h] = ("viktor", self.lab.secret("private_registry_password"))
        return entries

    def set_pull_secret(self, entries: dict[str, tuple[str, str]]) -> None:
        self.api.put({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                      "metadata": {"name": PULL_SECRET, "namespace": "kyverno"},
                      "data": {".dockerconfigjson": dockerconfigjson(entries)}})

    def seed(self) -> None:
        from phasegate import config

        inv = config.parse(self.lab.inventory_dict(), where="lab inventory")
        self.inv = inv
        api, c = self.api, inv.cluster
        for _i, name in enumerate(NODE_NAMES):
            api.put(_node(name, self.nodes[name].address))
        namespaces = {"kube-system", "kube-public", "kube-node-lease", "default", c.credentials_namespace,
                      inv.forgejo.namespace, "monitoring"}
        namespaces |= {p.workload_namespace(w) for p in inv.projects for w in p.workloads}
        for ns in sorted(namespaces):
            api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, fire=False)
            api.put({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}},
                    fire=False)
        self.set_pull_secret(self._credentials())
        for ns in sorted(namespaces):
            api._clone_into(ns)
        self.seed_forgejo(inv)
        self.seed_cronjobs(inv)
        self.seed_projects(inv)

    def seed_forgejo(self, inv) -> None:
        api, c, f = self.api, inv.cluster, inv.forgejo
        ns = f.namespace
        env = [{"name": k, "value": v} for k, v in c.forgejo_env.items()]
        env += [{"name": "FORGEJO__server__ROOT_URL", "value": self.forgejo.url + "/"}]
        api.put({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": f.deployment, "namespace": ns, "labels": {"app": "forgejo"}},
                 "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "forgejo"}},
                          "strategy": {"type": "Recreate"},
                          "template": {"metadata": {"labels": {"app": "forgejo"}}, "spec": {
                              "containers": [{"name": f.container, "image": LOCAL_IMAGES["forgejo"],
                                              "imagePullPolicy": "IfNotPresent", "env": env,
                                              "ports": [{"containerPort": 3000, "name": "http"}],
                                              "resources": {"requests": {"memory": c.forgejo_memory, "cpu": "100m"},
                                                            "limits": {"memory": c.forgejo_memory}},
                                              "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                              "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": c.forgejo_pvc}}]}}}})
        api.put({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": c.forgejo_pvc, "namespace": ns,
                              "annotations": {"resize.topolvm.io/storage_limit": "50Gi"}},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": c.forgejo_pvc_min}},
                          "storageClassName": "local-path", "volumeMode": "Filesystem"},
                 "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                            "capacity": {"storage": c.forgejo_pvc_min}}})
        # as the real ingress factory chains them (infra-facts.md section 1: IF:210-217,249-261,321-337 @5d22b449)
        mw = "buffering-forgejo"
        from phasegate.units import size_bytes

        api.put({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
                 "metadata": {"name": mw, "namespace": ns},
                 "spec": {"buffering": {"maxRequestBodyBytes": size_bytes(c.forgejo_max_body)}}})
        api.put({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
                 "metadata": {"name": "retry", "namespace": "traefik"}, "spec": {"retry": {"attempts": 2}}})
        chain = ["traefik-retry@kubernetescrd", f"{ns}-{mw}@kubernetescrd"]
        api.put({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                 "metadata": {"name": c.forgejo_ingress, "namespace": ns, "annotations": {
                     "traefik.ingress.kubernetes.io/router.middlewares": ",".join(chain),
                     "traefik.ingress.kubernetes.io/router.entrypoints": "websecure"}},
                 "spec": {"ingressClassName": "traefik",
                          "rules": [{"host": "forgejo.lab.test", "http": {"paths": [{
                              "path": "/", "pathType": "Prefix",
                              "backend": {"service": {"name": "forgejo", "port": {"number": 80}}}}]}}],
                          "tls": [{"hosts": ["forgejo.lab.test"], "secretName": "tls-secret"}]}})

    def seed_cronjobs(self, inv) -> None:
        api, f = self.api, inv.forgejo
        api.put({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": "forgejo-cleanup-token", "namespace": f.namespace},
                 "data": {"FORGEJO_TOKEN": _b64(self.lab.secret("forgejo_cleanup_token"))}})
        api.put({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": "forgejo-probe-credentials", "namespace": "monitoring"},
                 "data": {"REG_USER": _b64(f.puller.username), "REG_PASS": _b64(self.lab.secret("forgejo_pull_token"))}})
        api.put(_cronjob("forgejo-cleanup", f.namespace, "0 4 * * *", "cleanup", LOCAL_IMAGES["cleanup"], [
            {"name": "FORGEJO_HOST", "value": self.forgejo.url},
            {"name": "FORGEJO_OWNER", "value": f.owner},
            {"name": "KEEP_LAST_N", "value": "10"},
            {"name": "DRY_RUN", "value": "true"},  # as Phase 0 ships it (flipped on bake day 7)
            {"name": "FORGEJO_TOKEN", "valueFrom": {"secretKeyRef": {"name": "forgejo-cleanup-token",
                                                                     "key": "FORGEJO_TOKEN"}}},
        ], concurrency="Forbid", backoff=1))  # backoff_limit = 1 (stacks/forgejo/cleanup.tf @6d5204db)
        api.put(_cronjob("forgejo-integrity-probe", "monitoring", "*/15 * * * *", "probe", LOCAL_IMAGES["probe"], [
            {"name": "REGISTRY_URL", "value": self.forgejo.url},
            {"name": "PUSHGATEWAY", "value": "http://prometheus-prometheus-pushgateway.monitoring:9091"},
            {"name": "REG_USER", "valueFrom": {"secretKeyRef": {"name": "forgejo-probe-credentials", "key": "REG_USER"}}},
            {"name": "REG_PASS", "valueFrom": {"secretKeyRef": {"name": "forgejo-probe-credentials", "key": "REG_PASS"}}},
        ], concurrency="Forbid", backoff=1))  # backoff_limit = 1 (stacks/monitoring/modules/monitoring/main.tf:470 @5d22b449)

    def seed_projects(self, inv) -> None:
        """Every workload of every cutover project, in the real shape (WORKLOAD_SHAPES), cut over to the newest
        sha tag the registries were seeded with (phasegate.lab.seed: the same digest in registry-private and
        Forgejo); pods really pulled by the nodes."""
        from phasegate.lab import seed

        f = inv.forgejo
        plan = {r.name: r for r in seed.plan("")}
        for p in inv.projects:
            if not p.workloads or not p.cutover or p.image not in plan:
                continue
            tag = seed.sha_tag(p.image, 2)
            digest = plan[p.image].tags[tag].digest
            fref = f"{self.forgejo_host}/{f.owner}/{p.image}:{tag}"
            pref = f"{self.private.netloc}/{p.image}:{tag}"
            self.project_images[p.name] = (fref, pref, digest)
            for w in p.workloads:
                self.put_workload(p, w, fref)

    def template(self, p, w, image: str, **images_of: str) -> dict:
        """The pod spec of workload `w`: its shape, own containers on `image` (or `images_of[container]`)."""
        shape = WORKLOAD_SHAPES.get(w.name, [(False, w.name, OWN)])
        spec: dict = {"imagePullSecrets": [{"name": PULL_SECRET}], "containers": []}
        for init, name, img in shape:
            ref = images_of.get(name, image) if img == OWN else img
            c = {"name": name, "image": ref, "imagePullPolicy": "IfNotPresent"}
            spec.setdefault("initContainers", []).append(c) if init else spec["containers"].append(c)
        return spec

    def put_workload(self, p, w, image: str, **images_of: str) -> None:
        """Create or flip workload `w` of project `p` to `image` (own containers; `images_of`: per container)."""
        ns = p.workload_namespace(w)
        spec = self.template(p, w, image, **images_of)
        labels = {"app": w.name}
        if w.kind == "Deployment":
            if self.api.get("Deployment", w.name, ns):
                self.api.mutate("Deployment", w.name, ns, lambda d: d["spec"]["template"].__setitem__("spec", spec))
                return
            self.api.put({"apiVersion": "apps/v1", "kind": "Deployment",
                          "metadata": {"name": w.name, "namespace": ns, "labels": labels},
                          "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                                   "template": {"metadata": {"labels": labels}, "spec": spec}}})
            return
        spec["restartPolicy"] = "OnFailure"
        cj = _cronjob(w.name, ns, "0 * * * *", w.name, image, [])
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"] = spec
        self.api.put(cj)
        self.run_cronjob(ns, w.name)

    def run_cronjob(self, ns: str, name: str) -> None:
        """A Job of the CronJob now, as its schedule would start one."""
        cj = self.api.get("CronJob", name, ns)
        self.api.put({"apiVersion": "batch/v1", "kind": "Job",
                      "metadata": {"name": f"{name}-{_secrets.token_hex(4)}"[:63], "namespace": ns,
                                   "ownerReferences": [_ref(cj)]},
                      "spec": cj["spec"]["jobTemplate"]["spec"]})

    # -- what the suite is given -----------------------------------------------------
    def inventory(self) -> dict:
        return {
            "timeouts": {"poll_interval": 0.1},
            "cluster": {
                "kubeconfig": str(self.kubeconfig),
                "context": CONTEXT,
                "request_timeout": 10.0,
                "wait_timeout": 30.0,
                "forgejo_mirrors": [self.traefik.url],
            },
        }

    def env(self) -> dict:
        return {}

    # write evidence for the read-only test: the API stand-in's own request log
    def mark(self) -> int:
        return self.api.mark()

    def writes(self, since: int = 0):
        return self.api.writes(since)

    def settle(self, timeout: float = 30.0) -> None:
        if not self.api.wait_idle(timeout):
            raise LabError("cluster: controllers did not settle")


def _node(name: str, address: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "kubernetes.io/arch": "amd64"}},
            "spec": {},
            "status": {
                "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status",
                                "lastHeartbeatTime": rfc3339(dt.datetime.now(dt.UTC)),
                                "lastTransitionTime": rfc3339(dt.datetime.now(dt.UTC))}],
                "nodeInfo": {"architecture": "amd64", "bootID": name, "containerRuntimeVersion": "containerd://1.6.20",
                             "kernelVersion": "6.1.0", "kubeProxyVersion": "v1.30.0", "kubeletVersion": "v1.30.0",
                             "machineID": name, "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "systemUUID": name},
                "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}


def _cronjob(name, ns, schedule, container, image, env, concurrency="Allow", backoff=0) -> dict:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": ns},
            "spec": {"schedule": schedule, "concurrencyPolicy": concurrency,
                     "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                     "jobTemplate": {"spec": {"backoffLimit": backoff, "template": {"spec": {
                         "restartPolicy": "Never",
                         "containers": [{"name": container, "image": image, "imagePullPolicy": "IfNotPresent",
                                         "env": env}]}}}}}}


def _ref(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


# ---------------------------------------------------------------------------
# Faults and states
# ---------------------------------------------------------------------------


def _cluster(lab) -> ClusterLab:
    return lab["cluster"]


def _first_node(c: ClusterLab) -> ContainerdNode:
    return c.nodes[NODE_NAMES[1]]


@contextlib.contextmanager
def _restored(c: ClusterLab, kind: str, name: str, namespace: str):
    """A fault's undo: the object as it is now is put back on exit, also when the fault fails half-way."""
    before = c.api.get(kind, name, namespace)
    try:
        yield before
    finally:
        c.api.put(before)


def _pull_secret_fault(lab, change):
    c = _cluster(lab)
    with _restored(c, "Secret", PULL_SECRET, "kyverno") as before:
        current = json.loads(base64.b64decode(before["data"][".dockerconfigjson"]))["auths"]
        entries = {k: (v["username"], v["password"]) for k, v in current.items()}
        change(c, entries)
        c.set_pull_secret(entries)
        yield


@fault("clone-secret-missing-auths-entry", component="cluster",
       description="registry-credentials lacks one registry-private alias (3 of 4 entries in production)")
def _missing_entry(lab):
    yield from _pull_secret_fault(lab, lambda c, e: e.pop(c.private_hosts[-1], None))


@fault("clone-secret-extra-auths-entry", component="cluster",
       description="registry-credentials carries an extra auths entry (5 in production)")
def _extra_entry(lab):
    yield from _pull_secret_fault(lab, lambda c, e: e.__setitem__("registry-extra.test", ("someone", "x" * 12)))


@fault("clone-secret-bad-forgejo-token", component="cluster",
       description="the Forgejo auths entry of registry-credentials holds a wrong token")
def _bad_token(lab):
    yield from _pull_secret_fault(lab, lambda c, e: e.__setitem__(c.forgejo_host, ("cluster-puller", "pgcanary-wrong-" + _secrets.token_hex(8))))


@fault("kyverno-clone-off", component="cluster",
       description="Kyverno does not clone registry-credentials into new namespaces")
def _kyverno_off(lab):
    c = _cluster(lab)
    c.api.kyverno_enabled = False
    try:
        yield
    finally:
        c.api.kyverno_enabled = True


@fault("node-hosts-toml-missing", component="cluster",
       description="k8s-node2 has no certs.d/<forgejo host>/hosts.toml")
def _hosts_missing(lab):
    c = _cluster(lab)
    path = _first_node(c).hosts_toml(c.forgejo_host)
    saved = path.read_text()
    path.unlink()
    try:
        yield
    finally:
        path.write_text(saved)


@fault("node-mirror-bare-ip", component="cluster",
       description="k8s-node2's Forgejo mirror is an address Traefik has no router for: 404, fallback to the "
                   "public name (nothing listens)")
def _mirror_bare_ip(lab):
    c = _cluster(lab)
    node = _first_node(c)
    path = node.hosts_toml(c.forgejo_host)
    saved = path.read_text()
    write_hosts_toml(node, c.forgejo_host, DEAD_SERVER, [f"https://localhost:{c.traefik.port}"], lab.ca.bundle)
    try:
        yield
    finally:
        path.write_text(saved)


@fault("mirror-traefik-404", component="cluster",
       description="as in production (post-mortem 2026-06-10 @ 0cd4afb6): every node's mirror entry is the Traefik "
                   "LB address with skip_verify = true, and Traefik has no router for a bare IP: 404 to /v2/")
def _mirror_404(lab):
    c = _cluster(lab)
    saved = {n.name: n.hosts_toml(c.forgejo_host).read_text() for n in c.nodes.values()}
    route = c.traefik.routes.pop(c.traefik.netloc)
    try:
        for node in c.nodes.values():
            write_hosts_toml(node, c.forgejo_host, DEAD_SERVER, [c.traefik.url], None, skip_verify=True)
        yield
    finally:
        c.traefik.routes[c.traefik.netloc] = route
        for name, text in saved.items():
            c.nodes[name].hosts_toml(c.forgejo_host).write_text(text)


def _mutate_forgejo(lab, fn):
    c = _cluster(lab)
    f = c.inv.forgejo
    try:
        with _restored(c, "Deployment", f.deployment, f.namespace):
            c.api.mutate("Deployment", f.deployment, f.namespace, fn)
            c.settle()
            yield
    finally:
        c.settle()


@fault("forgejo-memory-384Mi", component="cluster", description="Forgejo's memory request and limit left at 384Mi")
def _memory(lab):
    def fn(d):
        d["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"memory": "384Mi"},
                                                                        "limits": {"memory": "384Mi"}}
    yield from _mutate_forgejo(lab, fn)


@fault("forgejo-env-missing", component="cluster", description="Forgejo lacks FORGEJO__packages__ENABLED")
def _env_missing(lab):
    def fn(d):
        c = d["spec"]["template"]["spec"]["containers"][0]
        c["env"] = [e for e in c["env"] if e["name"] != "FORGEJO__packages__ENABLED"]
    yield from _mutate_forgejo(lab, fn)


@fault("forgejo-pvc-5Gi", component="cluster", description="Forgejo's PVC still 5Gi")
def _pvc(lab):
    c = _cluster(lab)
    cl = c.inv.cluster

    def fn(p):
        p["spec"]["resources"]["requests"]["storage"] = "5Gi"
        p["status"]["capacity"]["storage"] = "5Gi"
    with _restored(c, "PersistentVolumeClaim", cl.forgejo_pvc, c.inv.forgejo.namespace):
        c.api.mutate("PersistentVolumeClaim", cl.forgejo_pvc, c.inv.forgejo.namespace, fn)
        yield


@fault("ingress-buffering-1m", component="cluster",
       description="the Forgejo ingress's Buffering middleware allows only 1 MiB bodies")
def _buffering(lab):
    c = _cluster(lab)
    ns = c.inv.forgejo.namespace
    with _restored(c, "Middleware", "buffering-forgejo", ns):
        c.api.mutate("Middleware", "buffering-forgejo", ns,
                     lambda m: m["spec"]["buffering"].__setitem__("maxRequestBodyBytes", 1048576))
        yield


def _project(c: ClusterLab, name: str):
    return c.inv.project(name)


def _workload(p, name: str):
    return next(w for w in p.workloads if w.name == name)


@contextlib.contextmanager
def _flipped(c: ClusterLab, project: str, workload: str, *, old: bool = True, **images_of: str):
    """Workload `workload` of `project` on registry-private (every own container, or those in `images_of`
    given as "old"), rolled out; put back on Forgejo after."""
    p = _project(c, project)
    w = _workload(p, workload)
    fref, pref, _ = c.project_images[p.name]
    per = {k: (pref if v == "old" else v) for k, v in images_of.items()}
    try:
        c.put_workload(p, w, pref if (old and not per) else fref, **per)
        c.settle()
        yield p, w
    finally:
        c.put_workload(p, w, fref)
        c.settle()


@fault("cutover-template-old-image", component="cluster",
       description="payslip-ingest's Deployment still names its registry-private image (rolled out)")
def _template_old(lab):
    with _flipped(_cluster(lab), "payslip-ingest", "payslip-ingest"):
        yield


@fault("cutover-init-container-old-image", component="cluster",
       description="claude-agent-service's init container git-init still on registry-private (main on Forgejo)")
def _init_old(lab):
    with _flipped(_cluster(lab), "claude-agent-service", "claude-agent-service", **{"git-init": "old"}):
        yield


@fault("cutover-second-workload-old-image", component="cluster",
       description="freedify's second Deployment music-emo still on registry-private (music-viktor on Forgejo)")
def _second_workload_old(lab):
    with _flipped(_cluster(lab), "freedify", "music-emo"):
        yield


@fault("cutover-cronjob-old-image", component="cluster",
       description="claude-agent-service's image left on registry-private in CronJob beads-server/beads-reaper")
def _cronjob_old(lab):
    with _flipped(_cluster(lab), "claude-agent-service", "beads-reaper"):
        yield


@fault("cutover-pods-old-image", component="cluster",
       description="payslip-ingest's Deployment names Forgejo but its pods still run the registry-private image "
                   "(rollout not started)")
def _pods_old(lab):
    c = _cluster(lab)
    p = _project(c, "payslip-ingest")
    w = _workload(p, "payslip-ingest")
    fref, pref, _ = c.project_images[p.name]
    c.put_workload(p, w, pref)
    c.settle()
    c.api.frozen.add((p.namespace, w.name))
    c.put_workload(p, w, fref)
    try:
        yield
    finally:
        c.api.frozen.discard((p.namespace, w.name))
        c.api._enqueue(("deployment", p.namespace, w.name))
        c.settle()


@fault("cutover-rollout-stuck", component="cluster",
       description="job-hunter's new pods cannot pull (a tag Forgejo does not have): the rollout never completes")
def _rollout_stuck(lab):
    c = _cluster(lab)
    p = _project(c, "job-hunter")
    fref, _, _ = c.project_images[p.name]
    with _flipped(c, "job-hunter", "job-hunter", old=False, **{"job-hunter": fref.rsplit(":", 1)[0] + ":deadbeef"}):
        yield


@fault("cutover-evicted-old-pod", component="cluster",
       description="(healthy) payslip-ingest's rollout is complete and an Evicted pod of the old ReplicaSet and a "
                   "Terminating one linger on registry-private, as a real cluster keeps them until pod GC")
def _evicted_old_pod(lab):
    c = _cluster(lab)
    p = _project(c, "payslip-ingest")
    _, pref, _ = c.project_images[p.name]
    names = []
    for reason, extra in (("Evicted", {}), ("Terminating", {"deletionTimestamp": rfc3339(dt.datetime.now(dt.UTC)),
                                                             "deletionGracePeriodSeconds": 30})):
        name = f"payslip-ingest-0ld{len(names)}-{_secrets.token_hex(2)}"
        names.append(name)
        running = reason == "Terminating"
        c.api.put({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": p.namespace, "labels": {"app": "payslip-ingest"}, **extra},
                   "spec": dict(c.template(p, _workload(p, "payslip-ingest"), pref), nodeName=NODE_NAMES[0]),
                   "status": {"phase": "Running" if running else "Failed",
                              **({} if running else {"reason": "Evicted", "message":
                                  "The node was low on resource: memory. Threshold quantity: 100Mi, available: 9Mi."}),
                              "containerStatuses": [{"name": "payslip-ingest", "image": pref, "imageID": "",
                                                     "ready": running, "restartCount": 0,
                                                     "state": {"running": {}} if running else
                                                     {"terminated": {"exitCode": 137, "reason": "Error"}}}]}},
                  fire=False)
    try:
        yield
    finally:
        for name in names:
            c.api.delete("Pod", name, p.namespace)


@fault("cutover-image-missing-layer", component="cluster",
       description="the first cutover project's image on Forgejo lost its layer blob")
def _missing_layer(lab):
    import shutil

    c = _cluster(lab)
    p = _project(c, "payslip-ingest")
    _, _, digest = c.project_images[p.name]
    engine = lab["registries"].forgejo_engine
    manifest = json.loads((engine.blob_dir(digest) / "data").read_bytes())
    while "manifests" in manifest:  # an index: break its first platform image
        manifest = json.loads((engine.blob_dir(manifest["manifests"][0]["digest"]) / "data").read_bytes())
    layer = engine.blob_dir(manifest["layers"][0]["digest"])
    saved = layer.with_name(layer.name + ".saved")
    shutil.move(layer, saved)
    try:
        yield
    finally:
        shutil.move(saved, layer)


# -- decommissioned (Phase 4) --------------------------------------------------


@contextlib.contextmanager
def _files_kept(*paths: Path):
    """Put these files and directories back as they were (or remove them if they were not there) on exit."""
    saved = {p: _snapshot(p) for p in paths}
    try:
        yield
    finally:
        for p, snap in saved.items():
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
            for rel, data in (snap or {}).items():
                target = p / rel if rel else p
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)


def _snapshot(p: Path) -> dict[str, bytes] | None:
    if p.is_file():
        return {"": p.read_bytes()}
    if p.is_dir():
        return {str(f.relative_to(p)): f.read_bytes() for f in p.rglob("*") if f.is_file()}
    return None


@state_part("decommissioned", component="cluster",
            description="registry-credentials holds only the Forgejo entry; nodes have no registry-private host "
                        "directory in certs.d")
def _decommission_cluster(lab):
    c = _cluster(lab)
    dirs = [node.certs_d / h for node in c.nodes.values() for h in c.private_hosts]
    with _restored(c, "Secret", PULL_SECRET, "kyverno"), _files_kept(*dirs):
        c.set_pull_secret(c._credentials(private=False))
        for d in dirs:
            if d.exists():
                shutil.rmtree(d)  # the whole directory: containerd configures a host from its certificates too
        yield


@fault("decommission-kept-private-auths", component="cluster",
       description="after decommission, registry-credentials still carries the registry-private entries")
def _kept_auths(lab):
    c = _cluster(lab)
    with _restored(c, "Secret", PULL_SECRET, "kyverno"):
        c.set_pull_secret(c._credentials(private=True))
        yield


@fault("decommission-node-keeps-private-hosts-toml", component="cluster",
       description="after decommission, k8s-node3 still has a hosts.toml for registry-private")
def _kept_hosts(lab):
    c = _cluster(lab)
    node = c.nodes[NODE_NAMES[2]]
    with _files_kept(node.certs_d / c.private_hosts[0]):
        write_hosts_toml(node, c.private_hosts[0], c.private.url, [], lab.ca.bundle)
        yield


@fault("decommission-node-config-inline-mirror", component="cluster",
       description="after decommission, k8s-node2's config.toml still has an inline CRI mirror for registry-private "
                   "(appended as scripts/node_registry_manager.sh adds one)")
def _inline_mirror(lab):
    c = _cluster(lab)
    node = c.nodes[NODE_NAMES[1]]
    host = c.private_hosts[0]
    with _files_kept(node.config_toml):
        # node_registry_manager.sh:40 @5d22b449 (`--add <url>`, its docker.io section for registry-private's host):
        # echo -e "\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"$mirror_url\"]" >> config
        with node.config_toml.open("a") as f:
            f.write(f'\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."{host}"]\n  endpoint = ["{c.private.url}"]\n')
        yield


@fault("decommission-node-default-hosts-toml", component="cluster",
       description="after decommission, k8s-node1's certs.d/_default/hosts.toml sends every registry without a "
                   "directory of its own to registry-private")
def _default_hosts(lab):
    c = _cluster(lab)
    node = c.nodes[NODE_NAMES[0]]
    path = node.certs_d / "_default" / "hosts.toml"
    with _files_kept(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        # the shape of registry-private's own entry (stacks/infra/main.tf:81 @5d22b449), as a catch-all
        path.write_text(f'[host."{c.private.url}"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n')
        yield


@fault("decommission-node-imported-config", component="cluster",
       description="after decommission, k8s-node3's config.toml imports /etc/containerd/conf.d/*.toml and one of "
                   "them keeps an inline TLS config for registry-private")
def _imported_config(lab):
    c = _cluster(lab)
    node = c.nodes[NODE_NAMES[2]]
    conf_d = node.host_path("/etc/containerd/conf.d")
    with _files_kept(node.config_toml, conf_d):
        text = node.config_toml.read_text()
        node.config_toml.write_text(text.replace("imports = []", 'imports = ["/etc/containerd/conf.d/*.toml"]', 1))
        conf_d.mkdir(parents=True, exist_ok=True)
        (conf_d / "10-gc.toml").write_text('version = 2\n\n[plugins."io.containerd.gc.v1.scheduler"]\n'
                                           '  pause_threshold = 0.02\n')
        # registry-private's wildcard certificate has no IP SAN (stacks/infra/main.tf:79 @5d22b449): skip_verify
        (conf_d / "20-registry-private.toml").write_text(
            f'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".registry.configs."{c.private_hosts[1]}".tls]\n'
            '  insecure_skip_verify = true\n')
        yield


# -- 403 Forbidden and namespace life cycle (issue 20) ---------------------------


@fault("rbac-denies-pods-log", component="cluster",
       description="the suite's account may not get pods/log (RBAC): node files cannot be read")
def _rbac_pods_log(lab):
    c = _cluster(lab)
    c.api.denied.add(("get", "pods/log"))
    try:
        yield
    finally:
        c.api.denied.discard(("get", "pods/log"))


@fault("podsecurity-baseline", component="cluster",
       description="PodSecurity enforces baseline on namespaces without a label: the hostPath node-file reader "
                   "pod is refused")
def _podsecurity_baseline(lab):
    c = _cluster(lab)
    c.api.default_pod_security = "baseline"
    try:
        yield
    finally:
        c.api.default_pod_security = "privileged"


@fault("serviceaccount-late", component="cluster",
       description="(healthy) a new namespace's default ServiceAccount appears a second after the namespace, as "
                   "the token controller creates it; pods created before are refused with 403")
def _serviceaccount_late(lab):
    c = _cluster(lab)
    c.api.serviceaccount_delay = 1.0
    try:
        yield
    finally:
        c.api.serviceaccount_delay = 0.0


@fault("namespace-stuck-terminating", component="cluster",
       description="a namespace of an earlier run has been Terminating for an hour (a finalizer nobody removes)")
def _stuck_namespace(lab):
    c = _cluster(lab)
    name = "phasegate-ns-stuck01"
    hour_ago = rfc3339(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    c.api.put({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "phasegate"},
                            "finalizers": ["example.com/never-done"], "deletionTimestamp": hour_ago},
               "spec": {"finalizers": ["kubernetes"]},
               "status": {"phase": "Terminating", "conditions": [
                   {"type": "NamespaceFinalizersRemaining", "status": "True", "reason": "SomeFinalizersRemain",
                    "message": "Some content in the namespace has finalizers remaining: example.com/never-done in 1 "
                               "resource instances", "lastTransitionTime": hour_ago}]}}, fire=False)
    try:
        yield
    finally:
        c.api.delete("Namespace", name)


# -- healthy shapes production has that a naive gate judges wrong (issue 14: tests assert these stay green) ----


@fault("clone-secret-url-form-forgejo-key", component="cluster",
       description="(healthy) the Forgejo auths key is written as a URL, https://<host>/v2/, which kubelet's keyring "
                   "matches to the host")
def _url_form_key(lab):
    def change(c, entries):
        entries[f"https://{c.forgejo_host}/v2/"] = entries.pop(c.forgejo_host)
    yield from _pull_secret_fault(lab, change)


@fault("imageid-docker-pullable", component="cluster",
       description="(healthy) payslip-ingest's running pods report imageIDs in the docker-pullable:// form, on the "
                   "digest Forgejo serves")
def _docker_pullable(lab):
    c = _cluster(lab)
    p = _project(c, "payslip-ingest")
    changed = []
    for pod in c.api.list("Pod", p.namespace):
        if pod["status"].get("phase") != "Running":
            continue

        def fn(o):
            for key in ("initContainerStatuses", "containerStatuses"):
                for s in o["status"].get(key) or []:
                    if s.get("imageID") and not s["imageID"].startswith("docker-pullable://"):
                        s["imageID"] = "docker-pullable://" + s["imageID"]
        c.api._update_status("Pod", pod["metadata"]["name"], p.namespace, fn)
        changed.append(pod["metadata"]["name"])

    def undo(o):
        for key in ("initContainerStatuses", "containerStatuses"):
            for s in o["status"].get(key) or []:
                s["imageID"] = s.get("imageID", "").removeprefix("docker-pullable://")
    try:
        yield
    finally:
        for name in changed:
            c.api._update_status("Pod", name, p.namespace, undo)


@fault("node-refs-old-registry-first", component="cluster",
       description="(healthy) every node also holds payslip-ingest's image under registry-private's name (the same "
                   "bytes, cached before the cutover) and payslip-ingest is restarted: containerd reports the first "
                   "sorted name in the imageID, which may be registry-private's")
def _old_name_first(lab):
    c = _cluster(lab)
    p = _project(c, "payslip-ingest")
    fref, _, _ = c.project_images[p.name]
    rest = fref.split("/", 1)[1].split("/", 1)[1]  # <image>:<tag> (registry-private has no owner)
    olds = [f"{h}/{rest}" for h in c.private_hosts]
    for node in c.nodes.values():
        for old in olds:
            node._ctr(["images", "tag", "--force", f"{fref}", old], timeout=10)
    c.api.mutate("Deployment", "payslip-ingest", p.namespace, lambda d: d["spec"]["template"].setdefault(
        "metadata", {}).setdefault("annotations", {}).__setitem__("kubectl.kubernetes.io/restartedAt", _secrets.token_hex(4)))
    c.settle()
    try:
        yield
    finally:
        for node in c.nodes.values():
            for old in olds:
                node.remove_image(old)
        c.api.mutate("Deployment", "payslip-ingest", p.namespace,
                     lambda d: d["spec"]["template"]["metadata"].pop("annotations", None))
        c.settle()
