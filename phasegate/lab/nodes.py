"""Lab nodes: one real containerd per node, and a loopback "Traefik" in front of Forgejo.

Each node is a private containerd (`containerd --config FILE`: its own root,
state and socket) plus a directory that plays the node's root filesystem
(`rootfs/`). The node's registry configuration lives where it lives on a real
node, `rootfs/etc/containerd/certs.d/<host>/hosts.toml`, and every pull goes
through `ctr -n k8s.io images pull --hosts-dir <rootfs>/etc/containerd/certs.d`,
which resolves mirrors exactly as the kubelet's CRI pull does (Debian ships no
crictl). A hostPath volume of a lab pod maps into `rootfs/`.

`rootfs/etc/containerd/config.toml` is the node's config.toml as the infra
repository's cloud-init leaves it (`cloud_init_config_toml`): what the suite's
node reader sees. The lab's containerd itself runs on a private config (its own
root, state and sockets), so that file's contents never change what it pulls.

`TraefikFront` is the in-cluster load balancer the Forgejo mirror entry points
at: it forwards to Forgejo only when the request's Host matches one of its
routers, and answers Traefik's `404 page not found` otherwise -- what the real
Traefik does for a bare IP without SNI (the 2026-06-10 pull hairpin).
"""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import io
import json
import platform
import re
import shutil
import ssl
import subprocess
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from phasegate.lab.procs import LabError, Proc, free_port, wait_until

CERTS_D = "etc/containerd/certs.d"
CONFIG_TOML = "etc/containerd/config.toml"
PULL_TIMEOUT = 60.0
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


class PullFailed(Exception):
    """containerd could not pull; the message is containerd's own."""


@dataclass
class ContainerdNode:
    name: str
    dir: Path
    address: str = "127.0.0.1"  # the node's InternalIP in the stand-in
    proc: Proc | None = None
    _blobs: dict[str, dict] = field(default_factory=dict, repr=False)  # digest -> parsed blob (_content)

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    @property
    def rootfs(self) -> Path:
        """The node's `/` as hostPath volumes see it."""
        return self.dir / "rootfs"

    @property
    def certs_d(self) -> Path:
        return self.rootfs / CERTS_D

    def hosts_toml(self, host: str) -> Path:
        return self.certs_d / host / "hosts.toml"

    @property
    def config_toml(self) -> Path:
        """The node's /etc/containerd/config.toml (read by the suite; not the lab containerd's own config)."""
        return self.rootfs / CONFIG_TOML

    def host_path(self, path: str) -> Path:
        """A path on the node (absolute, as in a hostPath volume) inside the lab."""
        rel = Path("/" + path.lstrip("/")).resolve().relative_to("/")
        return self.rootfs / rel

    def start(self) -> ContainerdNode:
        if shutil.which("containerd") is None or shutil.which("ctr") is None:
            raise LabError("containerd/ctr not found: run scripts/setup.sh (Debian package containerd)")
        self.certs_d.mkdir(parents=True, exist_ok=True)
        self.config_toml.write_text(cloud_init_config_toml())
        cfg = self.dir / "config.toml"
        # A private instance: nothing shared with a system containerd (root, state, sockets).
        cfg.write_text(
            "version = 2\n"
            f'root = "{self.dir / "root"}"\n'
            f'state = "{self.dir / "state"}"\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{self.dir / "containerd.ttrpc.sock"}"\n'
            '[debug]\n  address = ""\n[metrics]\n  address = ""\n'
            '[plugins."io.containerd.grpc.v1.cri"]\n  disable_tcp_service = true\n'
            '  stream_server_address = "127.0.0.1"\n  stream_server_port = "0"\n'
            '[plugins."io.containerd.grpc.v1.cri".registry]\n'
            f'  config_path = "{self.certs_d}"\n'
        )
        self.proc = Proc(f"containerd-{self.name}", ["containerd", "--config", str(cfg)], self.dir / "containerd.log").start()
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        wait_until(lambda: self._ctr(["version"], timeout=2).returncode == 0, timeout=timeout,
                   what=f"containerd of {self.name}", proc=self.proc)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    # -- ctr ------------------------------------------------------------------
    def _ctr(self, args: list[str], timeout: float = PULL_TIMEOUT, input: bytes | None = None):
        return subprocess.run(["ctr", "-a", str(self.socket), "-n", "k8s.io", *args], capture_output=True,
                              timeout=timeout, input=input)

    def pull(self, ref: str, user: str = "", password: str = "", timeout: float = PULL_TIMEOUT) -> dict[str, str]:
        """Pull `ref` as the kubelet's CRI would (hosts.toml resolution); returns the node's references after it
        (`references()`), `ref` among them."""
        args = ["images", "pull", "--hosts-dir", str(self.certs_d)]
        if user:
            # lab credentials only (generated canary values); production never calls this
            args += ["--user", f"{user}:{password}"]
        try:
            r = self._ctr(args + [ref], timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PullFailed(f"pulling {ref}: no answer within {timeout:.0f}s") from None
        if r.returncode != 0:
            err = r.stderr.decode(errors="replace").strip().splitlines()
            msg = err[-1] if err else f"ctr exited {r.returncode}"
            if password:
                msg = msg.replace(password, "***")
            raise PullFailed(msg.removeprefix("ctr: "))
        after = self.references()
        if not after.get(ref):
            raise PullFailed(f"pulled {ref} but containerd does not list it")
        return after

    def references(self) -> dict[str, str]:
        """Every image reference on the node and its target digest (one `ctr images ls`): what the kubelet asks
        of one image (is it there, which references share its content) read from one listing."""
        r = self._ctr(["images", "ls"], timeout=10)
        out = {}
        for line in r.stdout.decode().splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 3:
                out[cols[0]] = cols[2]
        return out

    @staticmethod
    def refs_of(digest: str, references: dict[str, str]) -> list[str]:
        """Every reference of `references` whose target is `digest` (containerd merges them into one CRI image)."""
        return [ref for ref, target in references.items() if target == digest]

    def image_config(self, digest: str, _depth: int = 0) -> dict:
        """The image config (the `config` object of the OCI config blob) of target `digest` for this node's
        platform, found as containerd's platform matcher does (nested indexes descended)."""
        doc = self._content(digest)
        if "manifests" in doc:
            if _depth > 3:
                return {}
            for m in doc["manifests"]:
                plat = m.get("platform") or {}
                nested = "index" in m.get("mediaType", "") or "list" in m.get("mediaType", "")
                if (plat.get("os") == "linux" and plat.get("architecture") == _ARCH) or (nested and not plat):
                    cfg = self.image_config(m["digest"], _depth + 1)
                    if cfg is not None and (cfg or not nested):
                        return cfg
            return {}
        cfg = doc.get("config") or {}
        return (self._content(cfg["digest"]).get("config") or {}) if cfg.get("digest") else {}

    def _content(self, digest: str) -> dict:
        """A manifest, index or config blob of the node's content store. The store is content-addressed
        (containerd verifies every blob against its digest), so a blob read once is kept: a copy of it, for each
        pod the stand-in starts reads the same few blobs (62 of a lab start's 146 `ctr` runs before this cache)."""
        known = self._blobs.get(digest)
        if known is None:
            r = self._ctr(["content", "get", digest], timeout=10)
            try:
                known = json.loads(r.stdout) if r.returncode == 0 else None
            except ValueError:
                known = None
            if not isinstance(known, dict):
                return {}
            self._blobs[digest] = known
        return copy.deepcopy(known)

    def run(self, ref: str, container_id: str, argv: list[str] | None = None, timeout: float = 30.0) -> tuple[int, str]:
        """Run the image's own command to the end with this node's real containerd (`ctr run --rm`): (exit code, output).

        What the kubelet's CRI does for a container, minus the sandbox: runc, the image's rootfs, its Cmd.
        """
        try:
            r = self._ctr(["run", "--rm", ref, container_id, *(argv or [])], timeout=timeout)
        except subprocess.TimeoutExpired:
            self._ctr(["tasks", "kill", "-s", "SIGKILL", container_id], timeout=10)
            self._ctr(["containers", "rm", container_id], timeout=10)
            return 137, f"killed after {timeout:.0f}s\n"
        out = r.stdout.decode(errors="replace")
        err = r.stderr.decode(errors="replace")
        if "OCI runtime" in err:  # runc could not start the process: the runtime's error, as exit code 128
            self._ctr(["containers", "rm", container_id], timeout=10)
            return 128, err.strip().splitlines()[-1]
        if r.returncode != 0 and err:
            out += err
        return r.returncode, out

    def images(self) -> list[str]:
        r = self._ctr(["images", "ls", "-q"], timeout=10)
        return [n for n in r.stdout.decode().split() if not n.startswith("sha256:")]

    def remove_image(self, ref: str) -> None:
        self._ctr(["images", "rm", ref], timeout=10)

    def import_images(self, tar: bytes) -> None:
        r = self._ctr(["images", "import", "-"], timeout=30, input=tar)
        if r.returncode != 0:
            raise LabError(f"{self.name}: image import failed: {r.stderr.decode(errors='replace')[-400:]}")


@functools.cache
def cloud_init_config_toml() -> str:
    """/etc/containerd/config.toml as the infra repository's cloud-init leaves a node: the real
    `containerd config default` (modules/create-template-vm/cloud_init.yaml:76 @5d22b449; this machine's
    containerd, Debian 1.6.20: version 2, `config_path = ""`), then its edits in place:
    - `sed -i 's|config_path = ""|config_path = "/etc/containerd/certs.d"|'` (stacks/infra/main.tf:68 @5d22b449);
    - `sed -i 's/.*max_concurrent_downloads = 3/max_concurrent_downloads = 20/g'` (main.tf:96);
    - the GC tuning patched in place, as k8s-node-containerd-setup.sh:89-95 @8ed427a7 does. The 5d22b449
      template appended those three plugin tables instead (main.tf:100-116), which containerd 1.6.20 refuses
      on top of its own `config default` ("duplicated tables", tried here); the later script's comment
      (:92-93) blames containerd 2's defaults for the same failure.
    """
    r = subprocess.run(["containerd", "config", "default"], capture_output=True, timeout=30, check=True)
    text = r.stdout.decode()
    text = text.replace('config_path = ""', 'config_path = "/etc/containerd/certs.d"')
    text = re.sub(r"(?m)^.*max_concurrent_downloads = 3", "max_concurrent_downloads = 20", text)
    text = re.sub(r"(?m)^[ \t]*pause_threshold = .*", "  pause_threshold = 0.02", text)
    text = re.sub(r"(?m)^[ \t]*schedule_delay = .*", "  schedule_delay = '1800s'", text)
    text = re.sub(r"(?m)^[ \t]*exit_timeout = .*", "  exit_timeout = '5m'", text)
    return text


def pod_host_file(pod: dict, container: dict, node: ContainerdNode, path: str) -> Path | None:
    """The lab file behind `path` as a pod's container sees it through its hostPath volumes (None: no volume)."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    for m in sorted(container.get("volumeMounts") or [], key=lambda m: -len(m["mountPath"])):
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            hp = (volumes.get(m["name"]) or {}).get("hostPath")
            return node.host_path(hp["path"].rstrip("/") + path[len(mp):]) if hp else None
    return None


def busybox_ls(pod: dict, container: dict, node: ContainerdNode, args: list[str]) -> tuple[int, str]:
    """busybox `ls [-1A] DIR...` in a reader pod: each directory's entries, one a line, sorted by name; a missing
    one is `ls: DIR: No such file or directory` and exit code 1."""
    out, code = [], 0
    for path in [a for a in args if not a.startswith("-")]:
        d = pod_host_file(pod, container, node, path)
        if d is None or not d.exists():
            out.append(f"ls: {path}: No such file or directory\n")
            code = 1
        elif d.is_dir():
            out += [e + "\n" for e in sorted(x.name for x in d.iterdir())]
        else:
            out.append(path + "\n")
    return code, "".join(out)


def write_hosts_toml(node: ContainerdNode, host: str, server: str, mirrors: list[str], ca: Path | None,
                     *, skip_verify: bool = False) -> Path:
    """certs.d/<host>/hosts.toml as a node carries it: `server`, then `[host]` tables tried in order.

    The CA goes next to it as `ca.crt`, named relatively (containerd opens a relative `ca` from the
    hosts.toml directory: remotes/docker/config/hosts.go `makeAbsPath`), so the node's own file is what
    both containerd and the suite's node reader see. `skip_verify`: as the real mirror entry since 06-01.
    Without mirrors the server itself gets a `[host]` table (containerd 1.6 needs one to take a `ca`;
    a top-level `ca` makes it reject the file).
    """
    path = node.hosts_toml(host)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f'server = "{server}"', ""]
    for m in mirrors or [server]:
        lines.append(f'[host."{m}"]')
        lines.append('  capabilities = ["pull", "resolve"]')
        if skip_verify:
            lines.append("  skip_verify = true")
        elif ca:
            shutil.copyfile(ca, path.parent / "ca.crt")
            lines.append('  ca = "ca.crt"')
        lines.append("")
    path.write_text("\n".join(lines))
    return path


# -- local images (never pulled: imported into each node at start) -----------


def _tar(files: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = (modes or {}).get(name, 0o644)
            t.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def image_layout_tar(names: list[str]) -> bytes:
    """An OCI image-layout tar of one tiny image per name in `names` (for `ctr images import`).

    Stands for images a node has from elsewhere (busybox for the node-file
    reader, Forgejo's own image, the probes' images) so the lab never needs a
    public registry. Each has its own content (containerd merges the names of
    identical content into one image) and a command that really runs (the
    lab's kubelet runs run-to-completion pods with real containerd): a static
    program at /bin/sh that prints one line and exits 0 (phasegate.images.static_hello_elf).
    """
    from phasegate.images import static_hello_elf

    program = static_hello_elf(_ARCH, b"lab image: exit 0\n")
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    entries = []
    for n in names:
        layer_tar = _tar({"etc/phasegate-lab-image": f"lab image {n}\n".encode(), "bin/sh": program},
                         modes={"bin/sh": 0o755})
        layer = gzip.compress(layer_tar, mtime=0)
        cfg = json.dumps({"architecture": _ARCH, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                          "rootfs": {"type": "layers", "diff_ids": [_sha(layer_tar)]}}).encode()
        man = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha(cfg), "size": len(cfg)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _sha(layer),
                        "size": len(layer)}],
        }).encode()
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _sha(man),
                        "size": len(man), "annotations": {"io.containerd.image.name": n,
                                                          "org.opencontainers.image.ref.name": n.rsplit(":", 1)[-1]}})
        for blob in (layer, cfg, man):
            files["blobs/sha256/" + _sha(blob)[7:]] = blob
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    files["index.json"] = json.dumps(index).encode()
    return _tar(files)


# -- the Traefik front --------------------------------------------------------

NOT_FOUND = b"404 page not found\n"


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FrontServer

    def log_message(self, format, *args):
        pass

    def _proxy(self):
        front = self.server.front
        host = (self.headers.get("Host") or "").lower()
        backend = front.routes.get(host)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        front.seen.append((self.command, host, self.path))
        if backend is None:
            self.send_response(404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(NOT_FOUND)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(NOT_FOUND)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "content-length")}
        try:
            r = front.client.request(self.command, backend + self.path, headers=headers, content=body)
        except httpx.HTTPError as e:
            msg = f"502 bad gateway: {type(e).__name__}\n".encode()
            self.send_response(502)
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        self.send_response(r.status_code)
        for k, v in r.headers.multi_items():
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "content-encoding", "server", "date"):
                self.send_header(k, v)
        content = r.content
        # HEAD: the backend's length (containerd reads a manifest's size from it)
        length = r.headers.get("content-length", "0") if self.command == "HEAD" else str(len(content))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _proxy


class TLSServer(ThreadingHTTPServer):
    """A threading HTTPS server; the TLS handshake runs in the request thread, not the accept loop."""

    daemon_threads = True

    def __init__(self, addr, handler, cert: Path, key: Path):
        super().__init__(addr, handler)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))

    def get_request(self):
        sock, addr = super().get_request()
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address):
        try:
            request.settimeout(30)
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


class _FrontServer(TLSServer):
    front: TraefikFront


@dataclass
class TraefikFront:
    """HTTPS on loopback; routes by Host (`host[:port]` -> backend base URL), 404 otherwise."""

    cert: Path
    key: Path
    backend_verify: ssl.SSLContext | bool
    host: str = "127.0.0.1"
    port: int = 0
    routes: dict[str, str] = field(default_factory=dict)
    seen: list = field(default_factory=list)
    client: httpx.Client | None = None
    _server: _FrontServer | None = None

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.netloc}"

    def start(self) -> TraefikFront:
        # one keep-alive pool to the backends (a TLS handshake per proxied request would dominate a pull)
        self.client = httpx.Client(verify=self.backend_verify, timeout=30, trust_env=False,
                                   limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))
        self.port = self.port or free_port()
        self._server = _FrontServer((self.host, self.port), _FrontHandler, self.cert, self.key)
        self._server.front = self
        threading.Thread(target=self._server.serve_forever, name="traefik-front", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self.client.close()
