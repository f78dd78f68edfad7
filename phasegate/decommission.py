"""Phase 4 on the registry VM: registry-private gone, the caches untouched, storage freed.

- Containers are read through the VM's Docker API (phasegate.dockerhost, over SSH).
- "No longer serves a registry": a distribution registry answers `GET /v2/`
  with 200 or 401 and the header `Docker-Distribution-API-Version:
  registry/2.0`. Anything else (connection refused, a proxy's 404/502, no
  such name) is not a registry. A read that times out is not a verdict.
- Storage: the plan purges /opt/registry/data/private/ one week after the
  decommission, while the break-glass tarballs under its `_breakglass/` stay
  (the VM runbook: "pull-through caches and break-glass tarballs only"). So
  freed means: nothing left in the storage directory but the inventory's
  `storage_keep` entries. Before the week is over the check is not due.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from dataclasses import dataclass


from phasegate import http
from phasegate.verdict import Unreachable
from phasegate.vmhost import RemoteHost

REGISTRY_HEADER = "Docker-Distribution-API-Version"


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
    except Unreachable as e:  # refused, no route, no such name, TLS handshake refused
        return EndpointAnswer(target, False, f"no connection ({e})")
    header = r.headers.get(REGISTRY_HEADER, "")
    registry = r.status_code in (200, 401) and header.startswith("registry/2")
    www = r.headers.get("www-authenticate", "")
    seen = f"HTTP {r.status_code}" + (f", {REGISTRY_HEADER}: {header}" if header else f", no {REGISTRY_HEADER} header")
    if www:
        seen += f", WWW-Authenticate: {www.split(',')[0]}"
    return EndpointAnswer(target, registry, seen)


@dataclass(frozen=True)
class PurgeDue:
    due: bool
    due_on: dt.date | None
    reason: str


def purge_due(decommissioned_on: dt.date | None, grace_days: int, today: dt.date | None = None) -> PurgeDue:
    today = today or dt.date.today()
    if decommissioned_on is None:
        return PurgeDue(False, None, "not due: registry_vm.decommissioned_on is not set (registry-private "
                                     "not decommissioned yet)")
    due_on = decommissioned_on + dt.timedelta(days=grace_days)
    if today < due_on:
        return PurgeDue(False, due_on, f"not due: blob storage is purged {grace_days} days after the "
                                       f"decommission of {decommissioned_on.isoformat()}, i.e. from "
                                       f"{due_on.isoformat()} (today is {today.isoformat()})")
    return PurgeDue(True, due_on, f"due since {due_on.isoformat()}")


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


def compose_services(text: str) -> dict:
    """The services of a compose file (commented-out ones are not services)."""
    import yaml

    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return {}
    services = doc.get("services") if isinstance(doc, dict) else None
    return services if isinstance(services, dict) else {}


def service_for_container(services: dict, container: str) -> str | None:
    for key, svc in services.items():
        if key == container or (isinstance(svc, dict) and svc.get("container_name") == container):
            return key
    return None


