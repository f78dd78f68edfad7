"""The Kubernetes cluster, through the official `kubernetes` client only.

`Kube.from_inventory(inv)` builds an ApiClient from the kubeconfig the
inventory names. Every request goes through `GuardedRESTClient`, the one
place that
- refuses writes (POST/PUT/PATCH/DELETE) unless `phasegate.http.GUARD` allows
  them (a `@writes` scenario): no step can reach the API without passing it;
- puts a timeout on every call (`_request_timeout`, from [cluster].request_timeout);
- retries reads on connection errors only, and turns transport failures into
  `phasegate.verdict.Broken` with one readable line (never a traceback).

What the suite creates (namespaces, pods) carries the inventory's prefix and
label; `delete_namespace` refuses anything without that label, and
`sweep()` removes leftovers of a crashed run.

Node files are read the way production allows: a short-lived pod pinned to
the node with a read-only hostPath mount runs `cat FILE`; the file is its log.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets as _secrets
import threading
import time
from dataclasses import dataclass

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client import rest
from kubernetes.client.exceptions import ApiException

from phasegate import cri
from phasegate.http import GUARD, SAFE_METHODS, WriteGuard
from phasegate.secrets import redact, register, register_basic
from phasegate.units import quantity, size_bytes  # noqa: F401 (re-exported for steps)
from phasegate.verdict import AuthError, Broken, ServerError, TimedOut, Unreachable

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class KubeError(Broken):
    """The API answered something the gate cannot judge (4xx/5xx other than a plain 404)."""


class NotLabelled(Broken):
    """A delete was asked for an object the suite did not create (no suite label)."""


# --------------------------------------------------------------------------
# The guarded transport
# --------------------------------------------------------------------------


class GuardedRESTClient(rest.RESTClientObject):
    def __init__(self, configuration, *, guard: WriteGuard, timeout: tuple[float, float], retries: int,
                 backoff: float, where: str, total: float = 120.0):
        super().__init__(configuration)
        self._guard = guard
        self._timeout = timeout
        self._total = max(total, timeout[1])
        self._retries = retries
        self._backoff = backoff
        self._where = where

    def request(self, method, url, *args, **kwargs):
        # keyword arguments only differ between client versions (query_params, _preload_content): pass them on
        if args:
            raise TypeError("GuardedRESTClient.request takes keyword arguments only")
        method = method.upper()
        path = urllib3.util.parse_url(url).path or url
        if method in WRITE_METHODS:
            self._guard.check(method, f"{self._where}{path}")
        kwargs["_request_timeout"] = kwargs.get("_request_timeout") or self._timeout
        attempts = 1 + (self._retries if method in SAFE_METHODS else 0)
        delay = self._backoff
        for attempt in range(1, attempts + 1):
            try:
                response = self._within_deadline(method, url, kwargs)
            except ApiException as e:
                if not e.status:  # TLS failures come back this way (status 0)
                    raise Unreachable(f"Kubernetes API {self._where}: {method} {path}: "
                                      f"{_reason(Exception(e.reason))}") from None
                _raise_unjudgeable(e.status, e.body, method, path)
                raise
            except _DeadlinePassed:
                raise TimedOut(f"Kubernetes API {self._where}: {method} {path}: no complete answer within the "
                               f"total timeout ({self._total:g}s)") from None
            except (urllib3.exceptions.HTTPError, OSError) as e:
                cause = getattr(e, "reason", None) or e  # urllib3 wraps what happened in MaxRetryError
                if isinstance(cause, urllib3.exceptions.ReadTimeoutError) or isinstance(e, TimeoutError):
                    # not retried: the server may still be working on it (as in phasegate.http)
                    raise TimedOut(f"Kubernetes API {self._where}: {method} {path}: no answer within "
                                   f"{self._timeout[1]:g}s (read timeout)") from None
                if attempt < attempts:  # connect errors, or a connection that broke: a read may be sent again
                    time.sleep(delay)
                    delay *= 2
                    continue
                broke = isinstance(cause, (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError))
                raise Unreachable(f"Kubernetes API {self._where}: {method} {path}: "
                                  f"{'connection broke' if broke else 'cannot connect'} ({_reason(e)})") from None
            if response.status >= 400:  # clients >= 37 raise later, from the deserializer
                _raise_unjudgeable(response.status, response.data, method, path)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _within_deadline(self, method, url, kwargs):
        """One exchange, ended at the total deadline.

        urllib3 only has per-read timeouts, so an API server that dribbles its
        answer a byte at a time never trips them. The exchange (body included,
        even for `_preload_content=False`) runs on a helper thread; past the
        deadline the gate gets its verdict and the helper, a daemon thread
        holding one connection, is left until the server stops or goes quiet
        for a read timeout.
        """
        box: dict = {}
        done = threading.Event()

        def exchange():
            try:
                response = rest.RESTClientObject.request(self, method, url, **kwargs)
                # read the body here, inside the deadline (clients >= 37 read it later, in the ApiClient)
                if hasattr(response, "response") and callable(getattr(response, "read", None)):
                    response.read()
                else:
                    _ = getattr(response, "data", None)
                box["response"] = response
            except BaseException as e:  # handed to the caller's thread
                box["error"] = e
            finally:
                done.set()

        threading.Thread(target=exchange, name="kube-exchange", daemon=True).start()
        if not done.wait(self._total):
            raise _DeadlinePassed()
        if "error" in box:
            raise box["error"]
        return box["response"]


class _DeadlinePassed(Exception):
    pass


def _register_credentials(configuration) -> None:
    """The kubeconfig's token, password and key never reach a verdict (an API server may echo them back)."""
    for value in (configuration.api_key or {}).values():
        register(str(value).split(" ", 1)[-1])
    if configuration.username and configuration.password:
        register_basic(configuration.username, configuration.password)
    else:
        register(configuration.password)


class MalformedAnswer(Broken):
    """A 2xx whose body is not the object the API documents (not JSON, wrong shape)."""


class _ApiClient(k8s.ApiClient):
    """The official ApiClient; a body it cannot turn into the model is a verdict, not a traceback."""

    _PLAIN = frozenset({"str", "int", "float", "bool", "object", "date", "datetime", "file", "bytearray", "bytes"})

    def deserialize(self, response, response_type, *args, **kwargs):
        # client 36 passes the RESTResponse, 37 the text; 36 turns a body that is not JSON into an empty
        # model (a Deployment with every field None), so the shape is checked here, before the models
        if isinstance(response_type, str) and response_type not in self._PLAIN:
            text = getattr(response, "data", response)
            try:
                doc = json.loads(text)
            except (ValueError, TypeError):
                raise MalformedAnswer(f"Kubernetes API answered a body that is not JSON where a {response_type} "
                                      "was due") from None
            want = list if response_type.startswith("list[") else dict
            if not isinstance(doc, want):
                raise MalformedAnswer(f"Kubernetes API answered a JSON {type(doc).__name__} where a "
                                      f"{response_type} was due") from None
        try:
            return super().deserialize(response, response_type, *args, **kwargs)
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            raise MalformedAnswer(f"Kubernetes API answered a body that is not the documented object "
                                  f"({type(e).__name__})") from None


def _reason(e: Exception) -> str:
    reason = getattr(e, "reason", None) or e
    text = str(reason)
    m = re.search(r"(\[Errno -?\d+\][^'\")]*|Connection refused|certificate verify failed[^'\")]*|timed out)", text)
    return redact((m.group(1) if m else text.splitlines()[0])[:300])


class Forbidden(Broken):
    """A 403 the API server answered, classified by who refused (`kind`), with the server's message.

    The API server answers every refusal with a Forbidden Status; the message says which part refused:
    - RBAC: `User "..." cannot <verb> resource "<resource>[/<subresource>]"` (k8s.io/apiserver
      pkg/endpoints/handlers/responsewriters/errors.go `forbiddenMessage`);
    - PodSecurity admission: `violates PodSecurity "<level>:<version>": ...` (k8s.io/pod-security-admission
      admission/admission.go);
    - service account not ready: `error looking up service account <ns>/<name>` (plugin/pkg/admission/
      serviceaccount/admission.go): the token controller creates `default` just after the namespace, so a
      pod created at once is refused for a moment (ServiceAccountNotReady: retried until a deadline);
    - NamespaceTerminating: `unable to create new content in namespace <ns> because it is being terminated`
      (plugin/pkg/admission/namespace/lifecycle/admission.go).
    """

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


class ServiceAccountNotReady(Forbidden):
    pass


class StuckTerminating(Broken):
    """A namespace the suite deleted never went away."""


def classify_forbidden(message: str) -> str:
    if "error looking up service account" in message:
        return "service account not ready"
    if "violates PodSecurity" in message:
        return "PodSecurity admission"
    if "because it is being terminated" in message:
        return "NamespaceTerminating"
    if re.search(r'cannot [a-z]+ resource "', message):
        return "RBAC"
    return "forbidden"


def _raise_unjudgeable(status: int, body, method: str, path: str) -> None:
    """Answers no gate can judge become Broken here; 404/409/422 go back to the caller as ApiException."""
    if status in (401, 403) or status >= 500:
        try:
            message = json.loads(body or b"{}").get("message", "")
        except (ValueError, TypeError, AttributeError):
            message = ""
        if status == 403:
            kind = classify_forbidden(message)
            forbidden = ServiceAccountNotReady if kind == "service account not ready" else Forbidden
            raise forbidden(kind, f"Kubernetes API: {method} {path}: HTTP 403 Forbidden ({kind}): {redact(message)}")
        other = AuthError if status == 401 else ServerError
        raise other(f"Kubernetes API: {method} {path}: HTTP {status} {redact(message)}".rstrip())


def status_message(e: ApiException) -> str:
    try:
        return json.loads(e.body or "{}").get("message") or str(e.reason)
    except (ValueError, TypeError):
        return str(e.reason)


# --------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerState:
    """One container of a pod as the kubelet reports it."""

    pod: str
    namespace: str
    node: str
    container: str
    image: str
    image_id: str
    ready: bool
    waiting_reason: str = ""
    message: str = ""
    exit_code: int | None = None
    init: bool = False  # an init container's status (status.initContainerStatuses)
    terminated_reason: str = ""  # Completed, Error, StartError, OOMKilled, ...

    @property
    def digest(self) -> str:
        return cri.ImageId.parse(self.image_id).digest

    @property
    def repository(self) -> str:
        return cri.ImageId.parse(self.image_id).repository

    def where(self) -> str:
        kind = "initContainer" if self.init else "container"
        return f"pod {self.namespace}/{self.pod} on node {self.node}, {kind} {self.container}"


class Kube:
    def __init__(self, api: k8s.ApiClient, cluster, poll_interval: float = 2.0, where: str = ""):
        self.api = api
        self.cluster = cluster
        self.poll = poll_interval
        self.where = where or api.configuration.host
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)
        self.batch = k8s.BatchV1Api(api)
        self.net = k8s.NetworkingV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self.timeout = (min(5.0, cluster.request_timeout), cluster.request_timeout)
        label = cluster.test_label.split("=", 1)
        self.label_key, self.label_value = label[0], (label[1] if len(label) > 1 else "true")

    @classmethod
    def from_inventory(cls, inv, guard: WriteGuard | None = None) -> Kube:
        c = inv.cluster
        configuration = k8s.Configuration()
        try:
            k8s_config.load_kube_config(config_file=c.kubeconfig or None, context=c.context or None,
                                        client_configuration=configuration, persist_config=False)
        except (k8s_config.ConfigException, OSError, TypeError) as e:
            raise Broken(f"kubeconfig {c.kubeconfig or '(default)'}: {redact(str(e))}") from None
        _register_credentials(configuration)
        configuration.retries = 0  # the guarded client retries reads itself, never writes
        api = _ApiClient(configuration)
        t = inv.timeouts
        api.rest_client = GuardedRESTClient(
            configuration, guard=guard or GUARD, timeout=(min(t.connect, c.request_timeout), c.request_timeout),
            retries=t.retries, backoff=t.backoff, where=configuration.host, total=t.total)
        return cls(api, c, poll_interval=t.poll_interval, where=configuration.host)

    def close(self) -> None:
        self.api.close()

    # -- plain reads -------------------------------------------------------------
    def _get(self, fn, *args, what: str):
        try:
            return fn(*args, _request_timeout=self.timeout)
        except ApiException as e:
            if e.status == 404:
                return None
            raise KubeError(f"{what}: {e.status} {status_message(e)}") from None

    def deployment(self, ns: str, name: str):
        return self._get(self.apps.read_namespaced_deployment, name, ns, what=f"deployment {ns}/{name}")

    def cronjob(self, ns: str, name: str):
        return self._get(self.batch.read_namespaced_cron_job, name, ns, what=f"cronjob {ns}/{name}")

    def pvc(self, ns: str, name: str):
        return self._get(self.core.read_namespaced_persistent_volume_claim, name, ns, what=f"pvc {ns}/{name}")

    def ingress(self, ns: str, name: str):
        return self._get(self.net.read_namespaced_ingress, name, ns, what=f"ingress {ns}/{name}")

    def secret(self, ns: str, name: str):
        return self._get(self.core.read_namespaced_secret, name, ns, what=f"secret {ns}/{name}")

    def middleware(self, ns: str, name: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object("traefik.io", "v1alpha1", ns, "middlewares", name,
                                                            _request_timeout=self.timeout)
        except ApiException as e:
            if e.status == 404:
                return None
            raise KubeError(f"middleware {ns}/{name}: {e.status} {status_message(e)}") from None

    def middlewares_by_ref(self) -> dict[str, dict]:
        """Traefik Middlewares of every namespace by the name an ingress annotation uses: `<namespace>-<name>`."""
        try:
            items = self.custom.list_cluster_custom_object("traefik.io", "v1alpha1", "middlewares",
                                                           _request_timeout=self.timeout).get("items", [])
        except ApiException as e:
            raise KubeError(f"middlewares: {e.status} {status_message(e)}") from None
        return {f"{m['metadata']['namespace']}-{m['metadata']['name']}": m for m in items}

    def node_names(self) -> list[str]:
        if self.cluster.nodes:
            return list(self.cluster.nodes)
        nodes = self.core.list_node(_request_timeout=self.timeout).items
        return sorted(n.metadata.name for n in nodes)

    def pods(self, ns: str, selector: str = "") -> list:
        return self.core.list_namespaced_pod(ns, label_selector=selector or None, _request_timeout=self.timeout).items

    def jobs(self, ns: str, selector: str = "") -> list:
        return self.batch.list_namespaced_job(ns, label_selector=selector or None, _request_timeout=self.timeout).items

    def pod_log(self, ns: str, name: str) -> str:
        # Raw bytes, decoded here: some client releases hand back str(bytes) ("b'...'") for logs.
        resp = self.core.read_namespaced_pod_log(name, ns, _request_timeout=self.timeout, _preload_content=False)
        data = resp.data if hasattr(resp, "data") else resp
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)

    @staticmethod
    def container_states(pod) -> list[ContainerState]:
        """Init containers' and containers' statuses (a waiting or terminated one with its reason and message)."""
        out = []
        st = pod.status
        for init, statuses in ((True, st.init_container_statuses if st else None),
                               (False, st.container_statuses if st else None)):
            for s in statuses or []:
                waiting = s.state.waiting if s.state else None
                term = s.state.terminated if s.state else None
                message = (waiting.message if waiting else (term.message if term else "")) or ""
                out.append(ContainerState(
                    pod=pod.metadata.name, namespace=pod.metadata.namespace, node=pod.spec.node_name or "",
                    container=s.name, image=s.image, image_id=s.image_id or "", ready=bool(s.ready),
                    waiting_reason=waiting.reason if waiting else "", message=message,
                    exit_code=term.exit_code if term else None, init=init,
                    terminated_reason=(term.reason or "") if term else ""))
        return out

    # -- the suite's own objects -------------------------------------------------
    def labelled(self, obj) -> bool:
        labels = obj.metadata.labels or {}
        return labels.get(self.label_key) == self.label_value

    def fresh_name(self, what: str) -> str:
        return f"{self.cluster.test_prefix}{what}-{_secrets.token_hex(3)}"[:63]

    def create_namespace(self, name: str) -> str:
        """Create a namespace named by `fresh_name()` (prefix and label: only such may be deleted)."""
        if not name.startswith(self.cluster.test_prefix):
            raise ValueError(f"namespace {name!r} lacks the suite's prefix {self.cluster.test_prefix!r}")
        body = k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={self.label_key: self.label_value}))
        self.core.create_namespace(body, _request_timeout=self.timeout)
        return name

    def delete_namespace(self, name: str) -> None:
        """Delete a namespace the suite created; anything without the suite's label is refused."""
        ns = self._get(self.core.read_namespace, name, what=f"namespace {name}")
        if ns is None:
            return
        if not self.labelled(ns) or not name.startswith(self.cluster.test_prefix):
            raise NotLabelled(f"refused to delete namespace {name}: it lacks the suite's label "
                              f"{self.label_key}={self.label_value} or prefix {self.cluster.test_prefix!r}")
        try:
            self.core.delete_namespace(name, _request_timeout=self.timeout)
        except ApiException as e:
            if e.status != 404:
                raise KubeError(f"deleting namespace {name}: {e.status} {status_message(e)}") from None

    def sweep(self) -> list[str]:
        """Delete namespaces a crashed run left behind (label and prefix both required)."""
        gone, stuck = [], []
        now = time.time()
        for ns in self.core.list_namespace(label_selector=f"{self.label_key}={self.label_value}",
                                           _request_timeout=self.timeout).items:
            if not ns.metadata.name.startswith(self.cluster.test_prefix):
                continue
            if ns.status is None or ns.status.phase != "Terminating":
                self.delete_namespace(ns.metadata.name)
                gone.append(ns.metadata.name)
                continue
            # deletion is asynchronous (kubernetes pkg/controller/namespace): Terminating for a while is normal,
            # Terminating past the wait timeout is a namespace stuck on a finalizer or a failing discovery
            since = ns.metadata.deletion_timestamp
            if since is not None and now - since.timestamp() > self.cluster.wait_timeout:
                why = "; ".join(f"{c.type}: {c.message}" for c in (ns.status.conditions or []) if c.status == "True")
                stuck.append(f"{ns.metadata.name} (Terminating since {since:%Y-%m-%dT%H:%M:%SZ}, finalizers "
                             f"{(ns.spec.finalizers if ns.spec else None) or []}{'; ' + why if why else ''})")
        if stuck:
            raise StuckTerminating(f"namespaces the suite deleted are stuck Terminating for more than "
                                   f"{self.cluster.wait_timeout:g}s: {', '.join(stuck)}")
        return gone

    @contextlib.contextmanager
    def fresh_namespace(self, what: str = "ns"):
        """A namespace for one scenario: swept before, created, always removed after."""
        self.sweep()
        name = None
        try:
            name = self.fresh_name(what)
            self.create_namespace(name)
            yield name
        finally:
            if name:
                self.delete_namespace(name)

    def wait_for(self, check, *, what: str, timeout: float | None = None):
        """Poll `check()` until it returns something truthy; None after the timeout."""
        deadline = time.monotonic() + (timeout or self.cluster.wait_timeout)
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                return None
            time.sleep(self.poll)

    def wait_for_secret(self, ns: str, name: str, timeout: float | None = None):
        return self.wait_for(lambda: self.secret(ns, name), what=f"secret {ns}/{name}", timeout=timeout)

    def create_pod(self, ns: str, what: str, *, node: str, image: str, pull_secret: str = "",
                   pull_policy: str = "Always", command: list[str] | None = None,
                   host_path: str = "", mount_path: str = "") -> str:
        name = self.fresh_name(what)
        container = k8s.V1Container(name="main", image=image, image_pull_policy=pull_policy, command=command,
                                    resources=k8s.V1ResourceRequirements(limits={"cpu": "100m", "memory": "32Mi"}))
        volumes = None
        if host_path:
            container.volume_mounts = [k8s.V1VolumeMount(name="host", mount_path=mount_path, read_only=True)]
            volumes = [k8s.V1Volume(name="host", host_path=k8s.V1HostPathVolumeSource(path=host_path))]
        pod = k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=name, labels={self.label_key: self.label_value}),
            spec=k8s.V1PodSpec(
                node_name=node, restart_policy="Never", containers=[container], volumes=volumes,
                image_pull_secrets=[k8s.V1LocalObjectReference(name=pull_secret)] if pull_secret else None,
                tolerations=[k8s.V1Toleration(operator="Exists")], automount_service_account_token=False,
            ),
        )
        # a namespace's `default` service account appears a moment after the namespace: retried until the deadline
        deadline = time.monotonic() + self.cluster.wait_timeout
        while True:
            try:
                self.core.create_namespaced_pod(ns, pod, _request_timeout=self.timeout)
                return name
            except ServiceAccountNotReady:
                if time.monotonic() > deadline:
                    raise
                time.sleep(self.poll)

    def wait_pod_settled(self, ns: str, name: str, timeout: float | None = None):
        """Until the pod runs, ends, or cannot pull; returns the last pod read."""
        last = {}

        def settled():
            pod = self.core.read_namespaced_pod(name, ns, _request_timeout=self.timeout)
            last["pod"] = pod
            if pod.status.phase in ("Running", "Succeeded", "Failed"):
                return pod
            for s in self.container_states(pod):
                # the first ErrImagePull is a verdict (and carries the runtime's message; ImagePullBackOff,
                # which follows, only says "Back-off pulling image"); CreateContainerError never clears by itself
                if s.waiting_reason in ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
                                        "CreateContainerError", "CreateContainerConfigError"):
                    return pod
            return None

        return self.wait_for(settled, what=f"pod {ns}/{name}", timeout=timeout) or last.get("pod")

    # -- node files --------------------------------------------------------------
    # A reader pod mounts the node's `/` read-only at /host: a hostPath whose source is missing would be
    # created by containerd's CRI (pkg/cri/opts/spec_linux.go:161-168 @ v1.6.20 `MkdirAll(src)`), so the suite
    # never mounts a directory that may not exist.
    def _node_reads(self, ns: str, node: str, commands: dict[str, list[str]]) -> dict[str, str | None]:
        """{key: log, or None when the file or directory is absent} of one short-lived reader pod per command."""
        pods = {key: self.create_pod(ns, "read", node=node, image=self.cluster.node_reader_image,
                                     pull_policy="IfNotPresent", command=argv, host_path="/", mount_path="/host")
                for key, argv in commands.items()}
        out: dict[str, str | None] = {}
        for key, pod_name in pods.items():
            pod = self.wait_pod_settled(ns, pod_name)
            phase = pod.status.phase if pod else "unknown"
            log = self.pod_log(ns, pod_name) if phase in ("Succeeded", "Failed") else ""
            if phase == "Succeeded":
                out[key] = log
            elif phase == "Failed" and ("No such file" in log or "Not a directory" in log):
                out[key] = None
            else:
                states = self.container_states(pod) if pod else []
                detail = "; ".join(f"{s.waiting_reason}: {s.message}" for s in states if s.waiting_reason) or log.strip()
                raise Broken(f"could not read {key} on node {node}: reader pod {ns}/{pod_name} is {phase}"
                             + (f" ({detail[:300]})" if detail else ""))
        return out

    def read_node_files(self, ns: str, node: str, paths: list[str]) -> dict[str, str | None]:
        """{path: content or None (absent)} of files on `node` (busybox `cat`)."""
        return self._node_reads(ns, node, {p: ["cat", "/host" + p] for p in paths})

    def list_node_dirs(self, ns: str, node: str, dirs: list[str]) -> dict[str, list[str] | None]:
        """{directory: its entries, or None (absent)} on `node` (busybox `ls -1A`: names, one a line, sorted)."""
        logs = self._node_reads(ns, node, {d: ["ls", "-1A", "/host" + d] for d in dirs})
        return {d: (None if log is None else [x for x in log.splitlines() if x]) for d, log in logs.items()}

    def node_runtimes(self) -> dict[str, str]:
        """{node: status.nodeInfo.containerRuntimeVersion} (`containerd://1.7.27`; '' if not reported)."""
        nodes = self.core.list_node(_request_timeout=self.timeout).items
        return {n.metadata.name: (n.status.node_info.container_runtime_version or "")
                if n.status and n.status.node_info else "" for n in nodes}

    # -- workloads ---------------------------------------------------------------
    def rollout_problem(self, d) -> str:
        """Why a Deployment's rollout is not complete ('' if it is), as `kubectl rollout status` judges."""
        st = d.status
        want = d.spec.replicas if d.spec.replicas is not None else 1
        if d.spec.paused:
            return "rollout paused (spec.paused)"
        if (st.observed_generation or 0) < (d.metadata.generation or 0):
            return (f"generation {d.metadata.generation} not yet observed "
                    f"(observedGeneration {st.observed_generation or 0})")
        for c in st.conditions or []:
            if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded":
                return f"progress deadline exceeded ({c.message})"
        if (st.updated_replicas or 0) < want:
            return f"{st.updated_replicas or 0} of {want} replicas updated"
        if (st.replicas or 0) > (st.updated_replicas or 0):
            return f"{(st.replicas or 0) - (st.updated_replicas or 0)} old replicas pending termination"
        if (st.available_replicas or 0) < (st.updated_replicas or 0):
            return f"{st.available_replicas or 0} of {st.updated_replicas or 0} updated replicas available"
        return ""

    def newest_job(self, cj):
        """The newest Job a CronJob (object) owns, or None."""
        jobs = [j for j in self.jobs(cj.metadata.namespace)
                if any(r.uid == cj.metadata.uid for r in (j.metadata.owner_references or []))]
        return max(jobs, key=lambda j: j.metadata.creation_timestamp, default=None)

    def last_pull_error(self, pod, container: str = "") -> str:
        """The kubelet's latest "Failed" Warning event of a pod (container), e.g. the pull error behind an
        ImagePullBackOff, whose status says only "Back-off pulling image"; "" if none."""
        events = self.core.list_namespaced_event(
            pod.metadata.namespace, field_selector=f"involvedObject.name={pod.metadata.name}",
            _request_timeout=self.timeout).items
        fails = [e for e in events if e.reason == "Failed" and e.type == "Warning"
                 and (not container or (e.involved_object.field_path or "").endswith(f"{{{container}}}"))]
        last = max(fails, key=lambda e: (e.last_timestamp or e.metadata.creation_timestamp), default=None)
        return last.message if last else ""

    def job_outcome(self, job) -> str:
        """A Job's state in one line, as the job controller and kubelet report it (never "pending" without why):
        complete; failed (BackoffLimitExceeded, pods failed N times); failed N times, retrying (backoffLimit M);
        or Pending with its pod's waiting reason (CreateContainerConfigError, ImagePullBackOff, ...)."""
        st = job.status
        limit = job.spec.backoff_limit if job.spec.backoff_limit is not None else 6
        for c in (st.conditions if st else None) or []:
            if c.status == "True" and c.type == "Complete":
                return "complete"
            if c.status == "True" and c.type == "Failed":
                return f"failed ({c.reason}: {c.message}; {st.failed or 0} pod(s) failed, backoffLimit {limit})"
        pods = self.pods(job.metadata.namespace, f"job-name={job.metadata.name}")
        why = ""
        for pod in pods:
            for s in self.container_states(pod):
                if s.waiting_reason and s.waiting_reason not in ("PodInitializing", "ContainerCreating"):
                    why = f"{s.waiting_reason}: {s.message}".rstrip(": ")
                elif s.terminated_reason == "StartError":
                    why = f"StartError: {s.message}"
        failed = (st.failed if st else 0) or 0
        if failed:
            return f"failed {failed} time(s), retrying (backoffLimit {limit})" + (f"; {why}" if why else "")
        return f"running, pod {why}" if why else "running"

    def rollout_restart(self, ns: str, name: str) -> None:
        """`kubectl rollout restart` (a write: needs a @writes gate)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
        self.apps.patch_namespaced_deployment(name, ns, body, _request_timeout=self.timeout)

    def create_job_from_cronjob(self, ns: str, cronjob: str, what: str = "manual", *,
                                env: dict[str, str] | None = None) -> str:
        """`kubectl create job --from=cronjob/<name>` (a write: needs a @writes gate). `env` forces
        variables of every container of the Job to these values (e.g. DRY_RUN=true)."""
        cj = self.cronjob(ns, cronjob)
        if cj is None:
            raise KubeError(f"cronjob {ns}/{cronjob} not found")
        for c in cj.spec.job_template.spec.template.spec.containers or []:
            for key, value in (env or {}).items():
                c.env = [e for e in (c.env or []) if e.name != key] + [k8s.V1EnvVar(name=key, value=value)]
        name = f"{cronjob}-{what}-{_secrets.token_hex(3)}"[:63]
        job = k8s.V1Job(
            metadata=k8s.V1ObjectMeta(
                name=name, labels={self.label_key: self.label_value},
                annotations={"cronjob.kubernetes.io/instantiate": "manual"},
                owner_references=[k8s.V1OwnerReference(api_version="batch/v1", kind="CronJob", name=cronjob,
                                                       uid=cj.metadata.uid, controller=True)]),
            spec=cj.spec.job_template.spec,
        )
        self.batch.create_namespaced_job(ns, job, _request_timeout=self.timeout)
        return name

    def delete_job(self, ns: str, name: str) -> None:
        job = self._get(self.batch.read_namespaced_job, name, ns, what=f"job {ns}/{name}")
        if job is None:
            return
        if not self.labelled(job):
            raise NotLabelled(f"refused to delete job {ns}/{name}: it lacks the suite's label")
        self.batch.delete_namespaced_job(name, ns, propagation_policy="Background", _request_timeout=self.timeout)

