"""A real distribution registry (Debian's `docker-registry`) on loopback.

registry-private in the lab is one of these with htpasswd Basic auth and TLS;
the Forgejo stand-in keeps its blobs and manifests in another one (plain HTTP,
no auth, reachable only through the stand-in). Corruptions are made on disk,
the way distribution#3324 makes them (see phasegate.lab.faults).
"""

from __future__ import annotations

import secrets as _secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from phasegate.lab.procs import Proc, free_port, wait_until

BINARY = "docker-registry"


@dataclass
class DistributionRegistry:
    dir: Path
    name: str = "registry"
    users: dict[str, str] = field(default_factory=dict)  # htpasswd users (empty = no auth)
    cert: Path | None = None
    key: Path | None = None
    ca_bundle: Path | None = None
    port: int = 0
    proc: Proc | None = None

    @property
    def root(self) -> Path:
        return self.dir / "data"

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def _write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        cfg: dict = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.netloc, "secret": _secrets.token_hex(16)},
        }
        if self.cert:
            cfg["http"]["tls"] = {"certificate": str(self.cert), "key": str(self.key)}
        if self.users:
            htpasswd = self.dir / "htpasswd"
            htpasswd.write_text("")
            for user, password in self.users.items():
                # -i reads the password from stdin: it never appears in a process list
                subprocess.run(["htpasswd", "-iB", str(htpasswd), user], input=password.encode(),
                               check=True, capture_output=True)
            cfg["auth"] = {"htpasswd": {"realm": self.name, "path": str(htpasswd)}}
        path = self.dir / "config.yml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def start(self, timeout: float = 15.0) -> DistributionRegistry:
        if shutil.which(BINARY) is None:
            raise RuntimeError(f"{BINARY} not found: run scripts/setup.sh (Debian package docker-registry)")
        if not self.port:
            self.port = free_port()
        cfg = self._write_config()
        self.proc = Proc(self.name, [BINARY, "serve", str(cfg)], self.dir / "registry.log").start()
        import ssl

        verify = ssl.create_default_context(cafile=str(self.ca_bundle)) if self.ca_bundle else False

        def ready() -> bool:
            r = httpx.get(f"{self.url}/v2/", verify=verify, timeout=1.0, trust_env=False)
            return r.status_code in (200, 401)

        wait_until(ready, timeout=timeout, what=f"{self.name} at {self.url}", proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    # -- on-disk layout, for faults ---------------------------------------
    @property
    def v2(self) -> Path:
        return self.root / "docker" / "registry" / "v2"

    def blob_dir(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.v2 / "blobs" / "sha256" / hexd[:2] / hexd

    def revision_link(self, repo: str, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.v2 / "repositories" / repo / "_manifests" / "revisions" / "sha256" / hexd / "link"

    def tag_dir(self, repo: str, tag: str) -> Path:
        return self.v2 / "repositories" / repo / "_manifests" / "tags" / tag

    def access_log(self) -> list[str]:
        """The registry's access-log lines (method and path of every request it served)."""
        if not self.proc:
            return []
        return [line for line in self.proc.log.read_text(errors="replace").splitlines() if '"' in line and "HTTP/" in line]
