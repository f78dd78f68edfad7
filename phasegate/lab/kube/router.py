"""The Kubernetes stand-in's API server: HTTPS with bearer-token auth, `/version`, the resource paths under
`/api/v1` and `/apis/<group>/<version>` (RESOURCES), list with label and field selectors, get, create
(validation, admission), patch (merge and JSON patch), update, delete, `pods/<name>/log` and the
`/status` subresources, every refusal a real `Status`.

`KubeStandin` is the API server and its controllers in one object, composed of one mixin per area:
the store (store.py), the controller manager (controllers.py), namespaces and Kyverno (namespaces.py),
RBAC and admission (admission.py), the scheduler and kubelets (pods.py), Deployments (workloads.py),
Jobs and CronJobs (jobs.py).
"""

from __future__ import annotations

import json
import secrets as _secrets
import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from phasegate.lab.kube.admission import Admission
from phasegate.lab.kube.controllers import Controllers
from phasegate.lab.kube.jobs import Jobs
from phasegate.lab.kube.namespaces import KYVERNO_EXCLUDED, Namespaces
from phasegate.lab.kube.objects import (
    DNS1123,
    RESOURCES,
    STATUS_SUBRESOURCE,
    ApiError,
    json_patch,
    match_fields,
    merge_patch,
    not_found,
    resource_label,
)
from phasegate.lab.kube.pods import Kubelet, waiting_reason
from phasegate.lab.kube.store import ObjectStore
from phasegate.lab.kube.workloads import Deployments
from phasegate.lab.nodes import ContainerdNode, TLSServer
from phasegate.lab.procs import free_port


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str


class KubeStandin(ObjectStore, Controllers, Namespaces, Admission, Kubelet, Deployments, Jobs):
    def __init__(self, *, token: str, cert: Path, key: Path, nodes: dict[str, ContainerdNode],
                 clone_source: tuple[str, str] = ("kyverno", "registry-credentials"),
                 clone_excluded: tuple[str, ...] = KYVERNO_EXCLUDED, lab=None):
        self.token = token
        self.cert, self.key = cert, key
        self.port = 0
        self._server: TLSServer | None = None
        self.requests: list[tuple[str, str]] = []  # (method, path) of every API request
        self._init_store()
        self._init_controllers()
        self._init_namespaces(clone_source, clone_excluded)
        self._init_admission()
        self._init_kubelet(nodes, lab)
        self._init_workloads()
        self._init_jobs()

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
                               + waiting_reason(obj))
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
        label = resource_label(group, plural)
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
