"""Lab component `vm`: the registry VM, for real, on loopback.

- Its Docker engine is podman's Docker-compatible API (`podman system service`)
  in an isolated instance (own root, runroot, tmpdir, containers.conf,
  registries.conf; vfs storage, runc, cgroupfs), with real long-lived
  containers named like the real ones (registry-private, the pull-through
  caches), made from a busybox image imported from a rootfs tar (no network).
- It is reached the way the real VM is: a real OpenSSH `sshd` on a loopback
  port with a lab host key, a lab client key and a known_hosts file (host-key
  checking on). sshd hands every session `DOCKER_HOST` = the podman socket, so
  the Docker CLI on this machine answers `docker system dial-stdio` over SSH
  exactly as on the VM, and `DockerClient(base_url="ssh://...")` works end to end.
- Its filesystem is a directory (`fs/`) standing in for `/`: registry-private's
  blob storage under opt/registry/data/private/, the infra-ci break-glass
  tarballs (`docker save | gzip` of a real image, via podman) in its
  `_breakglass/`, and the NAS copy in `nas/` on the same sshd (a second
  directory on the same lab host; the inventory gives it its own path).
- The same podman API is the lab's Docker API for the Phase 0 `docker login`.

The state `decommissioned` (part contributed here): registry-private's
container is stopped, the lab's registry-private endpoint stops serving, the
compose file no longer starts it, and the blob storage is purged (the lab's
decommission date is more than a week ago).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import gzip
import os
import secrets as _secrets
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from phasegate.lab.procs import LabError, Proc, free_port, wait_until

IMAGE = "localhost/phasegate-lab/busybox:1"
CONTAINERS = ["registry-private", "registry-dockerhub", "registry-ghcr", "registry-quay", "registry-k8s",
              "registry-kyverno", "registry-nginx"]
PRIVATE = "registry-private"
# PID 1 exits on SIGTERM (as registry:2 does), so `stop` is quick
CONTAINER_CMD = ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
RUN_LIMITS = ["--runtime", "runc", "--cgroup-manager", "cgroupfs",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
BUSYBOX_CANDIDATES = ["/bin/busybox", "/usr/bin/busybox"]
INFRA_CI = "infra-ci"
STORAGE = "opt/registry/data/private"
COMPOSE = "opt/registry/docker-compose.yml"
COMMAND_TIMEOUT = 30.0


def _static(path: str) -> bool:
    """An ELF executable without a program interpreter (PT_INTERP) needs no libc in the image."""
    import struct

    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _busybox() -> str:
    for p in BUSYBOX_CANDIDATES:
        if os.path.exists(p) and _static(p):
            return p
    raise LabError("a static busybox was not found: run scripts/setup.sh (Debian package busybox-static)")


def _compose(private_enabled: bool) -> str:
    """The VM's compose file: registry-private commented out after decommission (as the plan says)."""
    lines = ["services:"]
    svc = [f"  {PRIVATE}:", "    image: registry:2.8.3", "    container_name: registry-private",
           "    ports: [\"5050:5000\"]", "    volumes: [\"/opt/registry/data/private:/var/lib/registry\"]"]
    lines += svc if private_enabled else ["#" + s[1:] if s.startswith("  ") else "#" + s for s in svc]
    for i, name in enumerate(CONTAINERS[1:-1]):
        lines += [f"  {name.removeprefix('registry-')}:", "    image: registry:2.8.3",
                  f"    container_name: {name}", f"    ports: [\"{5000 + 10 * i}:5000\"]"]
    lines += ["  nginx:", "    image: nginx:1.27", "    container_name: registry-nginx"]
    return "\n".join(lines) + "\n"


class RegistryVmLab:
    name = "vm"

    def __init__(self):
        self._lab = None
        self.dir: Path | None = None
        self.podman_proc: Proc | None = None
        self.sshd: Proc | None = None
        self.ssh_port = 0
        self.user = getpass.getuser()
        self.infra_ci_tags: list[str] = []  # oldest first
        self.forgejo_netloc = ""
        self.decommissioned_days_ago: int | None = 8  # None: the inventory names no decommission date
        self.extra_old_endpoints: list[str] = []  # faults add endpoints here

    # -- paths ---------------------------------------------------------------
    @property
    def socket(self) -> Path:
        return self.dir / "podman.sock"

    @property
    def fs(self) -> Path:
        return self.dir / "fs"

    @property
    def storage(self) -> Path:
        return self.fs / STORAGE

    @property
    def breakglass(self) -> Path:
        return self.storage / "_breakglass"

    @property
    def nas(self) -> Path:
        return self.dir / "nas" / "registry" / "_breakglass"

    @property
    def purged(self) -> Path:
        return self.dir / "purged-storage"

    @property
    def compose_file(self) -> Path:
        return self.fs / COMPOSE

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.ssh_port}"

    # -- podman --------------------------------------------------------------
    def _podman_env(self) -> dict:
        return {"CONTAINERS_CONF": str(self.dir / "containers.conf"),
                "CONTAINERS_REGISTRIES_CONF": str(self.dir / "registries.conf"),
                "CONTAINERS_STORAGE_CONF": str(self.dir / "storage.conf"),
                "TMPDIR": str(self.dir / "tmp"),
                # podman is Go: its TLS roots come from SSL_CERT_FILE. The lab CA is its trust store, so
                # logins and pushes verify the lab registries' certificates as production verifies the
                # real ones (podman's /auth ignores registries.conf `insecure` except for localhost).
                "SSL_CERT_FILE": str(self._lab.ca.bundle)}

    # podman refuses a runroot path longer than 50 characters; "rr" keeps a pytest basetemp's lab
    # (/tmp/pytest-of-root/pytest-NNNN/lab0/lab/vm/rr) under it long after pytest's counter passes 1000.
    RUNROOT = "rr"

    def podman_argv(self, *args: str) -> list[str]:
        d = self.dir
        return ["podman", "--storage-driver", "vfs", "--root", str(d / "root"), "--runroot", str(d / self.RUNROOT),
                "--tmpdir", str(d / "tmp"), *args]

    def podman(self, *args: str, input: bytes | None = None, timeout: float = COMMAND_TIMEOUT) -> str:
        env = dict(os.environ)
        env.update(self._podman_env())
        p = subprocess.run(self.podman_argv(*args), env=env, input=input, capture_output=True, timeout=timeout)
        if p.returncode != 0:
            raise LabError(f"podman {' '.join(args[:2])}: {p.stderr.decode(errors='replace').strip()[-800:]}")
        return p.stdout.decode()

    def _write_podman_config(self) -> None:
        d = self.dir
        for sub in ("root", self.RUNROOT, "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "containers.conf").write_text(
            '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nruntime = "runc"\n'
            f'events_logfile_path = "{d / "events.log"}"\n'
            '[containers]\nnetns = "none"\n')
        (d / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\nrunroot = "{d / self.RUNROOT}"\n'
            f'graphroot = "{d / "root"}"\n')
        (d / "registries.conf").write_text("unqualified-search-registries = []\n")

    def _import_image(self) -> None:
        rootfs = self.dir / "rootfs.tar"
        with tarfile.open(rootfs, "w") as tar:
            for name in ("bin", "tmp"):
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            tar.add(_busybox(), "bin/busybox")
            for applet in ("sh", "sleep", "true"):
                info = tarfile.TarInfo(f"bin/{applet}")
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)
        self.podman("import", "--change", "CMD [\"sleep\", \"2147483647\"]", str(rootfs), IMAGE)

    def _run_containers(self) -> list[subprocess.Popen]:
        env = dict(os.environ)
        env.update(self._podman_env())
        procs = []
        for name in CONTAINERS:
            argv = self.podman_argv("run", "-d", "--name", name, *RUN_LIMITS, "--network", "none",
                                    "--label", "phasegate.lab=vm", IMAGE, *CONTAINER_CMD)
            procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        return procs

    def container_status(self, name: str) -> str:
        return self.podman("inspect", "--format", "{{.State.Status}}", name).strip()

    def stop_container(self, name: str) -> None:
        self.podman("stop", "-t", "5", name)

    def start_container(self, name: str) -> None:
        self.podman("start", name)

    # -- sshd ----------------------------------------------------------------
    def _start_sshd(self) -> None:
        ssh = self.dir / "ssh"
        ssh.mkdir(mode=0o700)
        for key in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"phasegate-lab-{key}",
                            "-f", str(ssh / key)], check=True, capture_output=True, timeout=COMMAND_TIMEOUT)
        shutil.copy(ssh / "client_key.pub", ssh / "authorized_keys")
        self.ssh_port = free_port()
        host_pub = (ssh / "host_key.pub").read_text().split()[:2]
        (ssh / "known_hosts").write_text(f"[127.0.0.1]:{self.ssh_port} {' '.join(host_pub)}\n")
        remote_docker_config = self.dir / "remote-docker-config"
        remote_docker_config.mkdir()
        (ssh / "sshd_config").write_text("\n".join([
            f"Port {self.ssh_port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {ssh / 'host_key'}",
            f"AuthorizedKeysFile {ssh / 'authorized_keys'}",
            f"PidFile {ssh / 'sshd.pid'}",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            # the lab host is on loopback: a cheaper key exchange than the post-quantum default
            "KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org",
            f"AllowUsers {self.user}",
            # what the VM's shell has: the engine behind `docker`, and a config dir of its own
            f"SetEnv DOCKER_HOST=unix://{self.socket} DOCKER_CONFIG={remote_docker_config}",
            "",
        ]))
        if os.geteuid() == 0:
            # privilege separation directory, as the Debian package's service creates it
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        if not os.path.exists(sshd):
            raise LabError("sshd not found: run scripts/setup.sh (Debian package openssh-server)")
        self.sshd = Proc("vm-sshd", [sshd, "-D", "-e", "-f", str(ssh / "sshd_config")], self.dir / "sshd.log").start()
        from phasegate.lab.procs import port_open

        wait_until(lambda: port_open("127.0.0.1", self.ssh_port), timeout=10, what="lab VM sshd", proc=self.sshd)

    # -- break-glass tarballs --------------------------------------------------
    def _seed_infra_ci(self, lab) -> None:
        """Break-glass tarballs of infra-ci's two seeded builds (phasegate.lab.seed pushes them to
        both registries), on the VM and the NAS, `latest` pointing at the newer one.

        The tarballs are real `docker save` archives (podman's docker-archive) of an image named
        <forgejo host>/viktor/infra-ci:<tag>; the gate reads names and tags, not layer bytes.
        Forgejo's database is told the newer build is the newest infra-ci version (the seed
        writes its versions within the same second)."""
        from phasegate.lab import seed

        regs = lab["registries"] if "registries" in lab else None
        forgejo = getattr(regs, "forgejo", None)
        owner = "viktor"
        if INFRA_CI in seed.PROJECTS:
            self.infra_ci_tags = [seed.sha_tag(INFRA_CI, 1), seed.sha_tag(INFRA_CI, 2)]
        else:
            self.infra_ci_tags = [_secrets.token_hex(4) for _ in range(2)]
        if forgejo is not None:
            self.forgejo_netloc = forgejo.netloc
            package = f"{owner}/{INFRA_CI}"
            versions = [v for v in forgejo.versions(owner) if v.repository == package]
            if versions:
                newest = max(v.created_at for v in versions) + dt.timedelta(seconds=1)
                forgejo.set_created_at(package, self.infra_ci_tags[-1], newest)
            name = f"{self.forgejo_netloc}/{package}"
        else:
            name = f"forgejo.test/{owner}/{INFRA_CI}"
        for tag in self.infra_ci_tags:
            self.podman("tag", IMAGE, f"{name}:{tag}")
        now = time.time()
        for directory in (self.breakglass, self.nas):
            directory.mkdir(parents=True, exist_ok=True)
        for age_h, tag in zip((48, 1), self.infra_ci_tags, strict=False):
            tar = self.dir / f"{tag}.tar"
            self.podman("save", "--format", "docker-archive", "-o", str(tar), f"{name}:{tag}")
            gz = self.breakglass / f"{INFRA_CI}-{tag}.tar.gz"
            with open(tar, "rb") as src, gzip.open(gz, "wb", compresslevel=1) as dst:
                shutil.copyfileobj(src, dst)
            tar.unlink()
            os.utime(gz, (now - age_h * 3600, now - age_h * 3600))
            shutil.copy2(gz, self.nas / gz.name)
        for directory in (self.breakglass, self.nas):
            (directory / "latest").symlink_to(f"{INFRA_CI}-{self.infra_ci_tags[-1]}.tar.gz")

    def newest_tarball(self, directory: Path) -> Path:
        return directory / f"{INFRA_CI}-{self.infra_ci_tags[-1]}.tar.gz"

    def oldest_tarball(self, directory: Path) -> Path:
        return directory / f"{INFRA_CI}-{self.infra_ci_tags[0]}.tar.gz"

    def _seed_storage(self) -> None:
        """registry-private's blob storage: a distribution layout with a few blobs."""
        v2 = self.storage / "docker" / "registry" / "v2"
        for _ in range(3):
            data = _secrets.token_bytes(4096)
            import hashlib

            h = hashlib.sha256(data).hexdigest()
            blob = v2 / "blobs" / "sha256" / h[:2] / h / "data"
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
        (v2 / "repositories" / "infra-ci" / "_manifests" / "tags").mkdir(parents=True, exist_ok=True)

    # -- life cycle ------------------------------------------------------------
    def start(self, lab) -> None:
        self._lab = lab
        self.dir = lab.dir / "vm"
        self.dir.mkdir(parents=True)
        self._write_podman_config()
        self.podman_proc = Proc("vm-podman", self.podman_argv("system", "service", "--time=0",
                                                              f"unix://{self.socket}"),
                                self.dir / "podman.log", env=self._podman_env()).start()
        self._import_image()
        runs = self._run_containers()
        self._start_sshd()
        self.storage.mkdir(parents=True)
        self._seed_storage()
        self.compose_file.write_text(_compose(private_enabled=True))
        self._seed_infra_ci(lab)
        for name, p in zip(CONTAINERS, runs, strict=False):
            _, err = p.communicate(timeout=60)
            if p.returncode != 0:
                raise LabError(f"podman run {name}: {err.decode(errors='replace').strip()[-800:]}")
        wait_until(self._api_ready, timeout=20, what="lab VM podman API", proc=self.podman_proc)

    def _api_ready(self) -> bool:
        import socket

        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(self.socket))
            s.sendall(b"GET /v1.41/_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            return b"200" in s.recv(64)

    def stop(self) -> None:
        if self.sshd:
            self.sshd.stop()
        if self.dir and self.dir.exists():
            try:
                self.podman("rm", "-f", "-t", "0", "--all", timeout=60)
            except Exception:
                pass
        if self.podman_proc:
            self.podman_proc.stop()

    # -- what the suite is given ---------------------------------------------------
    def inventory(self) -> dict:
        ssh = self.dir / "ssh"
        ssh_opts = {"identity_file": str(ssh / "client_key"), "known_hosts": str(ssh / "known_hosts"),
                    "connect_timeout": 5.0, "command_timeout": 30.0}
        regs = self._lab["registries"] if "registries" in self._lab else None
        private = getattr(regs, "private", None)
        today = dt.date.today()
        inv = {
            "registry_vm": {
                "url": self.url,
                "ssh": ssh_opts,
                "docker_api_version": "1.41",
                "compose_file": str(self.compose_file),
                "old_endpoints": ([private.url] if private else []) + self.extra_old_endpoints,
                "storage_path": str(self.storage),
                "breakglass": {
                    "copies": [
                        {"name": "registry-vm", "dir": str(self.breakglass)},
                        {"name": "nas", "dir": str(self.nas), "url": self.url},
                    ],
                },
            },
            "docker_api": {"url": f"unix://{self.socket}", "version": "1.41"},
        }
        if self.decommissioned_days_ago is not None:
            # decommissioned more than a week ago: in the "decommissioned" state the purge is due
            inv["registry_vm"]["decommissioned_on"] = today - dt.timedelta(days=self.decommissioned_days_ago)
        return inv

    def env(self) -> dict:
        return {}


# --------------------------------------------------------------------------
# The decommissioned state (this area's part) and the faults of the VM gates
# --------------------------------------------------------------------------

from phasegate.lab.faults import fault, state_part  # noqa: E402


def _private_endpoint(lab):
    regs = lab["registries"] if "registries" in lab else None
    return getattr(regs, "private", None)


@state_part("decommissioned", component="vm",
            description="registry-private stopped on the VM (container and endpoint), compose entry commented "
                        "out, blob storage purged (decommission date is 8 days ago)")
def _decommissioned(lab):
    vm = lab["vm"]
    endpoint = _private_endpoint(lab)
    vm.stop_container(PRIVATE)
    vm.compose_file.write_text(_compose(private_enabled=False))
    if endpoint is not None:
        endpoint.stop()
    keep = vm.storage / "_breakglass"
    vm.purged.mkdir(exist_ok=True)
    for entry in list(vm.storage.iterdir()):
        if entry != keep:
            entry.rename(vm.purged / entry.name)
    try:
        yield
    finally:
        for entry in list(vm.purged.iterdir()):
            entry.rename(vm.storage / entry.name)
        if endpoint is not None:
            endpoint.start()
        vm.compose_file.write_text(_compose(private_enabled=True))
        if vm.container_status(PRIVATE) != "running":
            vm.start_container(PRIVATE)


@fault("vm-registry-private-running", component="vm",
       description="after decommission, registry-private's container runs again on the VM")
def _private_running(lab):
    vm = lab["vm"]
    was = vm.container_status(PRIVATE)
    if was != "running":
        vm.start_container(PRIVATE)
    try:
        yield
    finally:
        if was != "running":
            vm.stop_container(PRIVATE)


@fault("vm-pull-through-cache-stopped", component="vm",
       description="the pull-through cache registry-quay is stopped on the VM")
def _cache_stopped(lab):
    vm = lab["vm"]
    vm.stop_container("registry-quay")
    try:
        yield
    finally:
        vm.start_container("registry-quay")


@fault("old-registry-endpoint-serving", component="vm",
       description="after decommission, registry-private's endpoint still answers /v2/ as a registry")
def _endpoint_serving(lab):
    endpoint = _private_endpoint(lab)
    was_alive = endpoint.proc is not None and endpoint.proc.alive()
    if not was_alive:
        endpoint.start()
    try:
        yield
    finally:
        if not was_alive:
            endpoint.stop()


@fault("vm-storage-still-present", component="vm",
       description="a week after decommission, registry-private's blob storage is still on the VM")
def _storage_present(lab):
    vm = lab["vm"]
    moved = [e for e in vm.purged.iterdir()] if vm.purged.exists() else []
    for entry in moved:
        entry.rename(vm.storage / entry.name)
    try:
        yield
    finally:
        for entry in moved:
            (vm.storage / entry.name).rename(entry)


@contextlib.contextmanager
def _saved(*paths: Path):
    """Put files back exactly as they were (content, mtime, symlink target)."""
    backup = {}
    for p in paths:
        if p.is_symlink():
            backup[p] = ("link", os.readlink(p))
        elif p.exists():
            st = p.stat()
            backup[p] = ("file", p.read_bytes(), st.st_mtime)
        else:
            backup[p] = ("absent",)
    try:
        yield
    finally:
        for p, b in backup.items():
            if p.is_symlink() or p.exists():
                p.unlink()
            if b[0] == "link":
                p.symlink_to(b[1])
            elif b[0] == "file":
                p.write_bytes(b[1])
                os.utime(p, (b[2], b[2]))


@fault("breakglass-stale", component="vm",
       description="the newest break-glass tarball (VM and NAS) is 10 days old: the tarball step stopped running")
def _stale(lab):
    vm = lab["vm"]
    newest = [vm.newest_tarball(d) for d in (vm.breakglass, vm.nas)]
    older = [vm.oldest_tarball(d) for d in (vm.breakglass, vm.nas)]
    with _saved(*newest, *older):
        now = time.time()
        for files, days in ((newest, 10), (older, 12)):  # the order of builds stays, only the clock moved on
            for f in files:
                os.utime(f, (now - days * 86400, now - days * 86400))
        yield


@fault("breakglass-broken-gzip", component="vm",
       description="the newest break-glass tarball on the VM is truncated (gzip -t fails)")
def _broken_gzip(lab):
    vm = lab["vm"]
    f = vm.newest_tarball(vm.breakglass)
    with _saved(f):
        data = f.read_bytes()
        st = f.stat()
        f.write_bytes(data[: len(data) // 2])
        os.utime(f, (st.st_mtime, st.st_mtime))
        yield


@fault("breakglass-wrong-tag", component="vm",
       description="the newest break-glass tarball on the VM is for a tag Forgejo does not have as its newest build")
def _wrong_tag(lab):
    vm = lab["vm"]
    newest = vm.newest_tarball(vm.breakglass)
    wrong = vm.breakglass / f"{INFRA_CI}-0badc0de.tar.gz"
    latest = vm.breakglass / "latest"
    with _saved(newest, wrong, latest):
        st = newest.stat()
        newest.rename(wrong)
        os.utime(wrong, (st.st_mtime, st.st_mtime))
        latest.unlink()
        latest.symlink_to(wrong.name)
        yield


@fault("breakglass-missing-latest", component="vm",
       description="the NAS copy has no `latest` symlink")
def _missing_latest(lab):
    vm = lab["vm"]
    latest = vm.nas / "latest"
    with _saved(latest):
        latest.unlink()
        yield


@fault("breakglass-manifest-mismatch", component="vm",
       description="the newest tarball on the VM is named for the newest tag but holds the previous build")
def _manifest_mismatch(lab):
    vm = lab["vm"]
    newest = vm.newest_tarball(vm.breakglass)
    with _saved(newest):
        st = newest.stat()
        newest.write_bytes(vm.oldest_tarball(vm.breakglass).read_bytes())
        os.utime(newest, (st.st_mtime, st.st_mtime))
        yield


@fault("docker-login-bad-password", component="vm",
       description="the ci-pusher token the suite is given is wrong: the engine's login is refused")
def _bad_login(lab):
    from phasegate.lab.core import CANARY
    from phasegate.secrets import register

    key = "forgejo_push_token"
    good = lab.secret(key)
    wrong = f"{CANARY}-wrong-{_secrets.token_hex(12)}"
    register(wrong)
    lab._secrets[key] = wrong
    try:
        yield
    finally:
        lab._secrets[key] = good


@contextlib.contextmanager
def _decommission_date(lab, days_ago):
    vm = lab["vm"]
    before = vm.decommissioned_days_ago
    vm.decommissioned_days_ago = days_ago
    lab.write()
    try:
        yield
    finally:
        vm.decommissioned_days_ago = before
        lab.write()


@fault("vm-storage-present-no-decommission-date", component="vm",
       description="the blob storage is still on the VM and the inventory names no decommission date")
def _storage_present_no_date(lab):
    with contextlib.contextmanager(_storage_present)(lab), _decommission_date(lab, None):
        yield


@fault("vm-storage-present-inside-grace-week", component="vm",
       description="registry-private was decommissioned 3 days ago and its blob storage is still there (pending)")
def _storage_present_in_grace(lab):
    with contextlib.contextmanager(_storage_present)(lab), _decommission_date(lab, 3):
        yield


@fault("vm-compose-file-unparsable", component="vm",
       description="the VM's docker-compose.yml is not valid YAML (a merge conflict left in it)")
def _compose_unparsable(lab):
    vm = lab["vm"]
    before = vm.compose_file.read_text()
    vm.compose_file.write_text(before.replace("services:\n", "services:\n<<<<<<< HEAD\n  : [\n", 1))
    try:
        yield
    finally:
        vm.compose_file.write_text(before)


@fault("old-registry-endpoint-unverifiable", component="vm",
       description="an old endpoint answers TLS with a certificate the runner cannot verify (unknown CA)")
def _endpoint_unverifiable(lab):
    import trustme

    from phasegate.lab import evil

    server = evil.EvilServer(evil.status(404), tls=evil.tls_context(trustme.CA(), "127.0.0.1")).start()
    vm = lab["vm"]
    before = list(vm.extra_old_endpoints)
    vm.extra_old_endpoints.append(server.url)
    lab.write()
    try:
        yield
    finally:
        vm.extra_old_endpoints[:] = before
        lab.write()
        server.stop()
