"""Phase 4 on the registry VM: registry-private gone, the caches untouched, storage freed.

- Containers are read through the VM's Docker API (phasegate.dockerhost, over SSH).
- "No longer serves a registry": a distribution registry answers `GET /v2/`
  with 200 or 401 and the header `Docker-Distribution-API-Version:
  registry/2.0`. A proxy's 404/502 or a refused connection is not a registry.
  A runner that cannot reach the endpoint (no such name, no route, a
  certificate it cannot verify) or a read that times out is not a verdict: broken.
- Storage: the plan purges /opt/registry/data/private/ one week after the
  decommission, while the break-glass tarballs under its `_breakglass/` stay
  (the VM runbook: "pull-through caches and break-glass tarballs only"). So
  freed means: nothing left in the storage directory but the inventory's
  `storage_keep` entries. Storage already freed passes at any time; leftovers before the
  week is over are pending, after it failed.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from dataclasses import dataclass

from phasegate import http
from phasegate.dockerhost import ContainerState, DockerHost
from phasegate.verdict import Broken, GateFailed, Pending, Unreachable, check
from phasegate.vmhost import RemoteHost

REGISTRY_HEADER = "Docker-Distribution-API-Version"
_REFUSED = "connection refused"  # ECONNREFUSED's text, as httpx/httpcore pass it on


@dataclass(frozen=True)
class EndpointAnswer:
    url: str
    serves_registry: bool
    seen: str  # what answered, for the verdict or the report


def probe_registry(url: str, settings: http.HttpSettings, ca_bundle: str = "") -> EndpointAnswer:
    """GET <url>/v2/ and say whether a registry answered."""
    target = url.rstrip("/") + "/v2/"
    try:
        with http.client(settings, ca_bundle=ca_bundle) as c:
            r = c.get(target)
    except Unreachable as e:
        # Refused: the host answered that nothing listens there any more, i.e. gone. Anything else
        # (no such name, no route, a TLS certificate the runner cannot verify, a connection broken
        # mid-answer) says nothing about what listens: the gate cannot judge.
        if _REFUSED in str(e).lower():
            return EndpointAnswer(target, False, f"connection refused ({e})")
        raise Unreachable(f"{target}: the runner cannot reach the old endpoint, so whether it still serves a "
                          f"registry cannot be told ({e})") from None
    header = r.headers.get(REGISTRY_HEADER, "")
    registry = r.status_code in (200, 401) and header.startswith("registry/2")
    www = r.headers.get("www-authenticate", "")
    seen = f"HTTP {r.status_code}" + (f", {REGISTRY_HEADER}: {header}" if header else f", no {REGISTRY_HEADER} header")
    if www:
        seen += f", WWW-Authenticate: {www.split(',')[0]}"
    return EndpointAnswer(target, registry, seen)


def judge_purge(left: StorageLeft, keep: list[str], decommissioned_on: dt.date | None, grace_days: int,
                where: str, today: dt.date | None = None) -> None:
    """The storage verdict: freed passes at any time; leftovers are pending, failed or broken by the date.

    - freed (nothing but `keep`): passed, whatever the date says;
    - leftovers and no decommission date in the inventory: broken (when the purge is due cannot be told);
    - leftovers inside the grace week: Pending (the plan purges one week after the decommission);
    - leftovers after it: failed.
    """
    today = today or dt.date.today()
    if not left.exists:
        raise Broken(f"{where} does not exist: a wrong registry_vm.storage_path, or the directory removed with "
                     f"what it must keep ({', '.join(keep)}); freed storage cannot be told from either")
    if not left.leftovers:
        return
    seen = f"still present: {', '.join(left.leftovers)} ({left.size})"
    if decommissioned_on is None:
        raise Broken(f"{where}: {seen}, and registry_vm.decommissioned_on is not set in the inventory: "
                     f"whether the purge ({grace_days} days after the decommission) is due cannot be told")
    due_on = decommissioned_on + dt.timedelta(days=grace_days)
    if today < due_on:
        raise Pending(f"{where}: {seen}; the purge is due on {due_on.isoformat()} ({grace_days} days after the "
                      f"decommission of {decommissioned_on.isoformat()}), today is day "
                      f"{(today - decommissioned_on).days} of {grace_days}")
    raise GateFailed(expected=f"{where} holds nothing but {', '.join(keep)} from {due_on.isoformat()} "
                              f"({grace_days} days after the decommission of {decommissioned_on.isoformat()})",
                     seen=seen, where=where)


# -- the gates of features/phase4_registry_vm.feature: each receives what it reads (containers, a host) -----


@dataclass(frozen=True)
class VmContainers:
    """The registry VM's containers as its Docker API listed them (`docker ps -a`)."""

    url: str  # the VM (ssh://...)
    states: dict[str, ContainerState]

    @classmethod
    def read(cls, docker: DockerHost, url: str) -> VmContainers:
        return cls(url, docker.containers())


def judge_stopped(containers: VmContainers, name: str) -> None:
    state = containers.states.get(name)
    check(state is None or not state.running, expected=f"container {name} not running (stopped or removed)",
          seen=f"{state.describe() if state else ''}: still running", where=f"docker ps on {containers.url}")


def judge_running(containers: VmContainers, names: list[str]) -> None:
    bad = []
    for name in names:
        state = containers.states.get(name)
        if state is None or not state.running:
            bad.append(state.describe() if state else f"{name}: no such container")
    check(not bad, expected=f"running: {', '.join(names)}",
          seen="; ".join(f"{b} (stopped)" for b in bad), where=f"docker ps -a on {containers.url}")


def judge_compose_without(host: RemoteHost, vm, container: str) -> None:
    """The VM's compose file (read there) has no active service that runs `container`."""
    r = host.run(["cat", vm.compose_file])
    if not r.ok:
        raise Broken(f"cannot read {vm.compose_file} on {vm.url}: {r.stderr}")
    service = service_for_container(compose_services(r.text, where=f"{vm.url}:{vm.compose_file}"), container)
    check(service is None, expected=f"no active compose service runs {container} (commented out or removed)",
          seen=f"service {service!r} still defines it: `docker compose up` would start it again",
          where=f"{vm.url}:{vm.compose_file}")


def judge_endpoints_dead(urls: list[str], settings: http.HttpSettings, ca_bundle: str = "") -> None:
    answers = [probe_registry(url, settings, ca_bundle) for url in urls]
    serving = [a for a in answers if a.serves_registry]
    check(not serving, expected="no registry answers at the old endpoints",
          seen="; ".join(f"{a.url} still serves a registry ({a.seen})" for a in serving),
          where=", ".join(a.url for a in serving))


def judge_storage(host: RemoteHost, vm, grace_days: int, today: dt.date | None = None) -> None:
    """registry-private's blob storage on the VM, judged by `judge_purge` with `grace_days`."""
    left = storage_left(host, vm.storage_path, vm.storage_keep)
    judge_purge(left, vm.storage_keep, vm.decommissioned_on, grace_days, where=f"{vm.url}:{vm.storage_path}",
                today=today)


@dataclass(frozen=True)
class StorageLeft:
    path: str
    exists: bool
    leftovers: list[str]  # entries other than the kept ones
    size: str  # du -sh of the leftovers, for the verdict


def storage_left(host: RemoteHost, path: str, keep: list[str]) -> StorageLeft:
    names = host.listdir(path)
    if names is None:
        return StorageLeft(path, False, [], "")
    left = sorted(n for n in names if n not in keep)
    size = ""
    if left:
        r = host.run(["du", "-sch", "--", *[posixpath.join(path, n) for n in left]])
        lines = r.text.strip().splitlines()
        size = lines[-1].split()[0] if r.ok and lines else "?"
    return StorageLeft(path, True, left, size)


def compose_services(text: str, where: str = "compose file") -> dict:
    """The services of a compose file (commented-out ones are not services).

    A file that is not YAML, or not a compose document, is Broken: what `docker compose up` would start
    cannot be told from it (it would not start anything either, but that is not what the gate asks).
    """
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise Broken(f"{where}: not valid YAML{at} ({getattr(e, 'problem', None) or type(e).__name__}): "
                     "which services it starts cannot be told") from None
    if not isinstance(doc, dict):
        raise Broken(f"{where}: not a compose document (top level is {type(doc).__name__}, not a mapping)")
    services = doc.get("services")
    if services is None:
        return {}
    if not isinstance(services, dict):
        raise Broken(f"{where}: `services` is a {type(services).__name__}, not a mapping")
    return services


def service_for_container(services: dict, container: str) -> str | None:
    for key, svc in services.items():
        if key == container or (isinstance(svc, dict) and svc.get("container_name") == container):
            return key
    return None


