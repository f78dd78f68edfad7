"""The lab: local servers on loopback that stand in for the homelab.

A `Lab` starts its components in order (each may use the ones before it),
then writes an inventory (`inventory.toml`) and an env file (`lab.env`) with
generated secrets. The suite's gates run against that inventory exactly as
they run against production: nothing in phasegate/ outside lab/ knows which.

A component is any object with `name`, `start(lab)`, `stop()`,
`inventory() -> dict` (a fragment deep-merged into the inventory) and
`env() -> dict` (environment variables, i.e. secrets). Components are named
in COMPONENTS below and imported lazily so a lab that needs only registries
does not pay for Prometheus.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import ipaddress
import os
import re
import secrets as _secrets
import shutil
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import tomli_w

from phasegate import config
from phasegate.lab import procs
from phasegate.lab.procs import LabError
from phasegate.lab.tls import LabCA
from phasegate.secrets import register

# name -> "module:Class"; order is start order.
COMPONENTS: dict[str, str] = {
    "registries": "phasegate.lab.registries:RegistriesLab",
    "vm": "phasegate.lab.vm:RegistryVmLab",
    "github": "phasegate.lab.github:GitHubStandin",
    "report": "phasegate.lab.report:ReportLab",
    "infra_checkout": "phasegate.lab.infra_checkout:InfraCheckoutComponent",
    "forgejo_repos": "phasegate.lab.forgejo.repos:ForgejoReposStandin",
    "cluster": "phasegate.lab.cluster:ClusterLab",
    # pod logs (Alloy's labels) and the external healthz monitor; metrics fills them with the bake's history
    "loki": "phasegate.lab.loki:LokiStandin",
    "uptime_kuma": "phasegate.lab.uptime_kuma:UptimeKumaStandin",
    # after cluster: it registers the probe CronJob's lab runner on the Kubernetes stand-in
    "metrics": "phasegate.lab.metrics:MetricsLab",
    # after cluster: the retention CronJob's pods run the infra checkout's cleanup.sh
    "forgejo_cleanup": "phasegate.lab.forgejo.cleanup:ForgejoCleanupJob",
    # after metrics: adds its scrape jobs (the stand-in's working set, limit, restarts) to the lab Prometheus
    "forgejo_metrics": "phasegate.lab.forgejo.metrics:ForgejoMetrics",
}

# The main job (`phasegate lab run`): which gates run in which lab state.
# Phases 0-3 are judged while registry-private still runs; 4-5 after decommission.
MAIN_JOB: list[tuple[str, str | None]] = [
    ("phase0 or phase1 or phase2 or phase3", None),
    ("phase4 or phase5", "decommissioned"),
]

LAB_TIMEOUTS = {"connect": 3.0, "read": 5.0, "total": 60.0}

# Every generated secret starts with this, so the canary test can grep for leaks.
CANARY = "pgcanary"


class Component(Protocol):
    name: str

    def start(self, lab: Lab) -> None: ...
    def stop(self) -> None: ...
    def inventory(self) -> dict: ...
    def env(self) -> dict: ...


def _replace(path: Path, text: str, mode: int = 0o644) -> None:
    """`path` holds `text`, written beside it and renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


_HOST_KEYS = re.compile(r"(?:^|_)(?:host|hosts|url|urls|alias|aliases|server|servers|address|endpoint|realm)$")
# userinfo (ssh://root@host) is skipped: the host is what must be loopback
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://(?:[^/@\s]*@)?(\[[^\]]+\]|[^/:@\s\]]+)", re.I)
_HOST_PORT = re.compile(r"^(\[[^\]]+\]|[A-Za-z0-9.-]+):\d+$")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def _loopback_host(host: str) -> bool:
    host = host.strip("[]").rstrip(".").lower()
    if host in ("localhost", "ip6-localhost") or host.endswith(".test"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def non_loopback(inv, path: str = "") -> list[str]:
    """Every inventory value (key path) that names a host outside loopback / `.test`:
    URLs anywhere, host[:port] values of host-like keys, and any IPv4 literal."""
    bad: list[str] = []
    if isinstance(inv, dict):
        for k, v in inv.items():
            bad += non_loopback(v, f"{path}.{k}" if path else str(k))
        return bad
    if isinstance(inv, list):
        for i, v in enumerate(inv):
            bad += non_loopback(v, f"{path}[{i}]")
        return bad
    if not isinstance(inv, str) or not inv:
        return bad
    key = re.sub(r"\[\d+\]$", "", path).rsplit(".", 1)[-1].lower()
    hosts = [m.group(1) for m in _URL.finditer(inv)]
    hosts += _IPV4.findall(inv)
    m = _HOST_PORT.match(inv)
    if m:
        hosts.append(m.group(1))
    elif _HOST_KEYS.search(key) and not hosts and "/" not in inv and " " not in inv:
        hosts.append(inv)
    bad += [f"{path} = {inv!r}" for h in hosts if not _loopback_host(h)][:1]
    return bad


class Lab:
    def __init__(self, dir: Path | str, components: list[str] | None = None):
        self.dir = Path(dir).resolve()
        self.names = list(components) if components is not None else list(COMPONENTS)
        unknown = [n for n in self.names if n not in COMPONENTS]
        if unknown:
            raise ValueError(f"unknown lab component(s): {', '.join(unknown)} (known: {', '.join(COMPONENTS)})")
        self.components: dict[str, Component] = {}
        self.ca: LabCA | None = None
        self._secrets: dict[str, str] = {}
        self._keeper: procs.Keeper | None = None
        self.started = False

    # -- secrets -----------------------------------------------------------
    def secret(self, key: str) -> str:
        """A generated secret value, stable for this lab's life, carrying the canary marker."""
        if key not in self._secrets:
            value = f"{CANARY}-{key.replace('_', '-')}-{_secrets.token_hex(12)}"
            register(value)
            self._secrets[key] = value
        return self._secrets[key]

    def secret_values(self) -> list[str]:
        """Every secret this lab generated (the canary test looks for them in outputs)."""
        return list(self._secrets.values())

    # -- life cycle --------------------------------------------------------
    def up(self) -> Lab:
        removed = self.clear()
        if removed:
            print(f"lab: {removed}", file=sys.stderr, flush=True)
        self.dir.mkdir(parents=True)
        procs.claim(self.dir)
        # from here on, whatever the lab starts dies with this process, however it ends (procs.Keeper)
        self._keeper = procs.Keeper(self.dir)
        try:
            self.ca = LabCA.create(self.dir / "tls")
            for name in self.names:
                module, cls = COMPONENTS[name].split(":")
                comp = getattr(importlib.import_module(module), cls)()
                self.components[name] = comp
                comp.start(self)
            self.write()
        except BaseException:
            self.down()
            raise
        self.started = True
        return self

    def down(self) -> None:
        for comp in reversed(list(self.components.values())):
            with contextlib.suppress(Exception):
                comp.stop()
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.stop()  # its last sweep removes whatever a component's stop left running
        if (procs.owner(self.dir) or (None,))[0] == os.getpid():
            procs.release(self.dir)
        self.started = False

    def clear(self) -> str:
        """Remove what a previous lab in this directory left behind (it may have been killed:
        processes, podman's containers and their mounts), then the directory. Returns one line
        saying what was removed ("" for nothing); a leftover that will not go is one LabError naming it."""
        claimed = procs.owner(self.dir)
        if claimed is not None and claimed[1] and claimed[0] != os.getpid():
            raise LabError(f"a lab is running in {self.dir} (pid {claimed[0]}); "
                           f"stop it first: phasegate lab down --dir {self.dir}")
        if not self.dir.exists():
            return ""
        swept = procs.sweep(self.dir)
        failed: list[tuple[str, BaseException]] = []
        shutil.rmtree(self.dir, onerror=lambda _fn, path, exc: failed.append((path, exc[1])))
        if failed:
            path, exc = failed[0]
            raise LabError(f"cannot remove {path} (left by the last lab in {self.dir}): "
                           f"{getattr(exc, 'strerror', None) or exc}")
        return f"removed what the last lab in {self.dir} left behind: {swept.summary()}" if swept else ""

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    def __getitem__(self, name: str):
        return self.components[name]

    def __contains__(self, name: str) -> bool:
        return name in self.components

    # -- what the suite is given -------------------------------------------
    @property
    def inventory_path(self) -> Path:
        return self.dir / "inventory.toml"

    @property
    def env_path(self) -> Path:
        return self.dir / "lab.env"

    def inventory_dict(self) -> dict:
        base = tomllib.loads(config.DEFAULT_INVENTORY.read_text())
        base["name"] = "phasegate-lab"
        # short timeouts: a hanging lab server must turn a gate red in seconds, not minutes
        base["timeouts"] = deep_merge(base.get("timeouts", {}), LAB_TIMEOUTS)
        for comp in self.components.values():
            base = deep_merge(base, comp.inventory())
        return base

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for comp in self.components.values():
            out.update(comp.env())
        return out

    def write(self) -> None:
        inv = self.inventory_dict()
        config.parse(inv, where="lab inventory")  # the lab must write a valid inventory
        bad = non_loopback(inv)
        if bad:  # a lab gate must never reach a real host
            raise LabError("lab inventory names non-loopback hosts: " + "; ".join(bad))
        lines = [f"export {k}={v}" for k, v in sorted(self.env().items())]
        lines.append(f"export PHASEGATE_INVENTORY={self.inventory_path}")
        # whole files or none: a gate run may read them while the lab writes them again (a fault, midnight)
        _replace(self.inventory_path, tomli_w.dumps(inv))
        _replace(self.env_path, "\n".join(lines) + "\n", mode=0o600)

    # -- faults and states -------------------------------------------------
    @contextlib.contextmanager
    def state(self, name: str) -> Iterator[None]:
        """Put the lab in a named state (e.g. `decommissioned`) for the block; same registry as faults."""
        from phasegate.lab import faults

        with faults.apply(self, name):
            yield

    @contextlib.contextmanager
    def fault(self, name: str) -> Iterator[None]:
        """Apply a named fault (phasegate.lab.faults) for the duration of the block."""
        from phasegate.lab import faults

        with faults.apply(self, name):
            yield
