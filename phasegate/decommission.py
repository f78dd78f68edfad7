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
from phasegate.verdict import Broken, GateFailed, Pending, Unreachable
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


