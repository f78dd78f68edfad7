"""Pods of the Kubernetes stand-in: the scheduler and a kubelet per node (`phasegate.lab.nodes.ContainerdNode`).

The kubelet pulls each container's image through that node's real containerd with the pod's
`imagePullSecrets` credentials, honours `imagePullPolicy`, and reports `containerStatuses` (`imageID`,
or `ErrImagePull`/`ImagePullBackOff` with containerd's message, and a Warning Event); init containers
run first, in order. A container whose command is `cat FILE...` prints those files from its hostPath
volumes and `ls -1A DIR...` lists directories (how the suite reads node files); a run-to-completion pod with the image's own command is really
run by the node's containerd; a pod of a Job of a CronJob with a registered runner runs `fn(RunContext)`.

A mixin of `KubeStandin` (router.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as _secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from phasegate.lab.kube.objects import default_policy, image_repo, normalise_ref, now
from phasegate.lab.nodes import ContainerdNode, PullFailed, busybox_ls, pod_host_file

if TYPE_CHECKING:
    from phasegate.lab.kube.router import KubeStandin


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


def waiting_reason(pod: dict) -> str:
    for s in pod["status"].get("containerStatuses") or []:
        w = (s.get("state") or {}).get("waiting")
        if w:
            return w.get("reason", "ContainerCreating")
    return "ContainerCreating"


class Kubelet:
    def _init_kubelet(self, nodes: dict[str, ContainerdNode], lab) -> None:
        self.nodes = nodes
        self.lab = lab
        self.runners: dict[tuple[str, str], Runner] = {}
        self.pull_backoff = 0.5  # seconds from ErrImagePull to ImagePullBackOff (doubling on each retry)
        self._sched = 0

    def register_runner(self, namespace: str, cronjob: str, fn: Runner) -> None:
        """Jobs of CronJob `namespace/cronjob` run `fn` (see module doc)."""
        self.runners[(namespace, cronjob)] = fn

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

    @staticmethod
    def _image_id(references: dict[str, str], image: str, digest: str) -> str:
        """The imageID containerd's CRI reports: the image (keyed by config digest) merges every reference to
        the same content, sorted; the first repo@digest is reported (containerd pkg/cri/store/image/image.go
        `Store.add` merges references; pkg/cri/server/container_status.go `toCRIContainerStatus` takes
        repoDigests[0]). So a node that cached the bytes under another registry's name may report that name."""
        refs = ContainerdNode.refs_of(digest, references) or [normalise_ref(image)]
        repos = sorted({f"{image_repo(r)}@{digest}" for r in refs if not r.startswith("sha256:")})
        return repos[0] if repos else f"{image_repo(image)}@{digest}"

    def _pull(self, pod: dict, c: dict, node: ContainerdNode) -> tuple[str, tuple[str, str] | None, dict[str, str]]:
        """(image digest, None, the node's references) or ("", (reason, message), {}) as the kubelet's image
        manager reports a pull."""
        image = c["image"]
        ref = normalise_ref(image)
        policy = c.get("imagePullPolicy") or default_policy(image)
        references = node.references()
        if policy == "Never" and not references.get(ref):
            return "", ("ErrImageNeverPull", f'Container image "{image}" is not present with pull policy of Never'), {}
        if policy == "Always" or not references.get(ref):
            user, pw = self._pull_credentials(pod, image)
            try:
                references = node.pull(ref, user, pw)
            except PullFailed as e:
                msg = (f'Failed to pull image "{image}": rpc error: code = Unknown desc = '
                       f'failed to pull and unpack image "{ref}": {e}')
                self._event(pod, c, node, "Failed", msg)
                # kubelet pkg/kubelet/images/image_manager.go: ErrImagePull, "Failed to pull image %q: %v" around
                # the CRI's gRPC error (containerd pkg/cri/server/image_pull.go "failed to pull and unpack image")
                return "", ("ErrImagePull", f'Failed to pull image "{image}": rpc error: code = Unknown desc = '
                                            f'failed to pull and unpack image "{ref}": {e}'), {}
        return references[ref], None, references

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
        digest, err, references = self._pull(pod, c, node)
        if err:
            return self._container_status(c, state={"waiting": {"reason": err[0], "message": err[1]}})
        image_id = self._image_id(references, c["image"], digest)
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
                _, err, _ = self._pull(pod, c, node)
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
