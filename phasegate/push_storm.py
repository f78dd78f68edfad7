"""The push-storm smoke (issue 16.4): push the way CI pushes, then ask Prometheus how Forgejo took it.

On 2026-06-09 CI pipelines finishing together OOMKilled Forgejo (memory 1Gi -> 3Gi -> 4Gi,
infra-facts.md §1). The storm: `pushes` concurrent pushes, as the pusher, of multi-layer images
(`layers` x `layer_size` incompressible bytes), every layer a chunked upload whose PATCH bodies
(`chunk_size`) stay below the ingress's body-size limit. Then, from Prometheus, over the storm:
Forgejo's working set (cAdvisor `container_memory_working_set_bytes`) against its limit
(`kube_pod_container_resource_limits{resource="memory"}`: the cAdvisor limit series is dropped by
the real scrape config, infra-facts.md §7) and its restarts
(`kube_pod_container_status_restarts_total`); and every push's own result. Everything pushed is
deleted through the package API afterwards, also when a push or the verdict fails.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from string import Template

from phasegate.prometheus import Prometheus, duration, iso
from phasegate.units import size_bytes
from phasegate.verdict import Broken, GateFailed, NotJudged, check

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
LIMIT_LOOKBACK = 300.0  # seconds before the storm in which the limit and the restart count are read


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


@dataclass(frozen=True)
class StormImage:
    tag: str
    layers: tuple[bytes, ...]
    config: bytes
    manifest: bytes

    @property
    def size(self) -> int:
        return sum(len(x) for x in self.layers) + len(self.config)


def storm_image(tag: str, layers: int, layer_size: int) -> StormImage:
    """A multi-layer image of fresh random bytes (nothing to deduplicate, nothing to compress)."""
    blobs = tuple(os.urandom(layer_size) for _ in range(layers))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [_sha(b) for b in blobs]},
                         "config": {"Labels": {"org.opencontainers.image.title": f"phasegate push storm {tag}"}}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": _sha(b), "size": len(b)} for b in blobs],
    }).encode()
    return StormImage(tag, blobs, config, manifest)


@dataclass
class Push:
    tag: str
    bytes: int
    error: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class Storm:
    repository: str
    chunk: int
    started: float = 0.0
    ended: float = 0.0
    pushes: list[Push] = field(default_factory=list)

    def failed(self) -> list[Push]:
        return [p for p in self.pushes if not p.ok]

    def summary(self) -> str:
        total = sum(p.bytes for p in self.pushes)
        return (f"{len(self.pushes)} concurrent push(es) of {total / 2**20:.0f} MiB in {self.chunk / 2**20:g} MiB chunks "
                f"to {self.repository}, {iso(self.started)} .. {iso(self.ended)}; "
                f"{len(self.pushes) - len(self.failed())} succeeded")


def _push_one(client, repository: str, image: StormImage, chunk: int) -> Push:
    t0 = time.monotonic()
    push = Push(image.tag, image.size)
    try:
        for blob in (*image.layers, image.config):
            client.push_blob_chunked(repository, blob, chunk)
        client.put_manifest(repository, image.tag, image.manifest, OCI_MANIFEST)
    except Broken as e:  # one push's failure is a finding of the storm, the others go on
        push.error = f"{type(e).__name__}: {e}"
    push.seconds = time.monotonic() - t0
    return push


def run_storm(make_client, repository: str, *, pushes: int, layers: int, layer_size: str, chunk_size: str,
              run_id: str) -> Storm:
    """`pushes` concurrent pushes, each with its own registry client from `make_client()`."""
    chunk = size_bytes(chunk_size)
    images = [storm_image(f"{run_id}-{n}", layers, size_bytes(layer_size)) for n in range(1, pushes + 1)]
    storm = Storm(repository, chunk)
    clients = [make_client() for _ in images]
    try:
        storm.started = time.time()
        with concurrent.futures.ThreadPoolExecutor(len(images)) as pool:
            storm.pushes = list(pool.map(lambda ci: _push_one(ci[0], repository, ci[1], chunk), zip(clients, images, strict=False)))
        storm.ended = time.time()
    finally:
        for c in clients:
            c.close()
    return storm


def require_enabled(inv) -> None:
    """The storm runs only where the inventory opts in ([push_storm] enabled): otherwise the gate is not judged."""
    if not inv.push_storm.enabled:
        raise NotJudged("[push_storm] enabled = false in the inventory: the storm puts real load on Forgejo (opt-in)")


def clean_slate(inv, settings, at_teardown) -> None:
    """No version of the storm's package left: its removal registered first (`at_teardown(fn, what)`: it runs
    also when the storm or a verdict fails), then a crashed run's leftovers removed."""
    from phasegate.forgejo import Forgejo

    image = inv.push_storm.image
    api = Forgejo.from_inventory(inv, settings, user="pusher", deletable={image})

    def cleanup():
        try:
            remove(api, image)
        finally:
            api.close()

    at_teardown(cleanup, f"{inv.forgejo.owner}/{image}")
    remove(api, image)


def run_inventory_storm(inv) -> Storm:
    """The inventory's storm ([push_storm]: pushes, layers, sizes), as the pusher."""
    import secrets

    from phasegate.oci import RegistryClient

    s, f = inv.push_storm, inv.forgejo
    return run_storm(lambda: RegistryClient.from_inventory(inv, "forgejo", "pusher"), f"{f.owner}/{s.image}",
                     pushes=s.pushes, layers=s.layers, layer_size=s.layer_size, chunk_size=s.chunk_size,
                     run_id=f"storm-{secrets.token_hex(3)}")


def judge_pushes(storm: Storm, inv) -> None:
    failed = storm.failed()
    check(not failed, expected=f"all {len(storm.pushes)} pushes succeed",
          seen=f"{len(failed)} failed: " + "; ".join(f"{p.tag}: {p.error}" for p in failed[:3]),
          where=f"{inv.forgejo.host}/{storm.repository}", evidence=storm.summary())


def judge_working_set(prom: Prometheus, inv, storm: Storm, *, percent: int, wait_seconds: float) -> Pressure:
    """Forgejo's peak working set during the storm stayed below `percent` % of its memory limit; what Prometheus
    saw is returned for the restart verdict."""
    f = inv.forgejo
    p = pressure(prom, inv.metrics.queries, namespace=f.namespace, container=f.container, storm=storm,
                 wait_seconds=wait_seconds)
    check(p.ratio < percent / 100, expected=f"working set below {percent}% of the {p.limit / 2**20:.0f} MiB limit",
          seen=f"peak {p.peak / 2**20:.0f} MiB ({p.ratio:.0%}) at {iso(p.peak_at)}",
          where=f"PromQL {p.promql['working_set']} / {p.promql['memory_limit']}", evidence=storm.summary())
    return p


def judge_no_restart(p: Pressure, storm: Storm) -> None:
    check(p.restarts == 0, expected="no restart of Forgejo's container during the storm",
          seen=f"{p.restarts:g} restart(s)", where=f"PromQL {p.promql['restarts']}", evidence=storm.summary())


def remove(api, image: str) -> list[str]:
    """Delete every version of the storm's package (tags and untagged digests); the versions removed."""
    removed = []
    for v in api.package_versions(image):
        if api.delete(v.name, v.version) == 204:
            removed.append(v.version)
    return removed


# -- what Prometheus saw -----------------------------------------------------


@dataclass(frozen=True)
class Pressure:
    peak: float  # bytes
    peak_at: float
    limit: float
    restarts: float  # during the storm
    promql: dict

    @property
    def ratio(self) -> float:
        return self.peak / self.limit if self.limit else float("inf")


def pressure(prom: Prometheus, queries, *, namespace: str, container: str, storm: Storm,
             wait_seconds: float, poll: float = 2.0) -> Pressure:
    """Forgejo's peak working set, memory limit and restarts over the storm, once Prometheus holds
    a working-set sample from after the storm ended (waiting up to `wait_seconds` for a scrape)."""
    values = {"namespace": namespace, "container": container}
    q = {k: Template(getattr(queries, k)).safe_substitute(values) for k in ("working_set", "memory_limit", "restarts")}
    start = storm.started - 1
    deadline = time.monotonic() + wait_seconds
    while True:
        end = prom.now()
        ws = prom.raw_samples(q["working_set"], start, end).samples()
        if ws and max(x.t for _, x in ws) >= storm.ended:
            break
        if time.monotonic() > deadline:
            raise GateFailed(expected=f"a working-set sample of {namespace}/{container} scraped after the storm "
                                      f"ended ({iso(storm.ended)}), within {wait_seconds:.0f}s",
                             seen=f"no data: {len(ws)} sample(s) since {iso(start)}",
                             where=f"PromQL {q['working_set']}")
        time.sleep(poll)
    peak_series, peak = max(ws, key=lambda sx: sx[1].v)
    # the limit in force at the peak: its last sample at or before it (kube-state-metrics is scraped
    # less often than a short storm lasts, so look back LIMIT_LOOKBACK seconds)
    limits = sorted((x for _, x in prom.raw_samples(q["memory_limit"], start - LIMIT_LOOKBACK, end).samples()),
                    key=lambda x: x.t)
    if not limits:
        raise GateFailed(expected=f"the memory limit of {namespace}/{container}", seen="no data",
                         where=f"PromQL {q['memory_limit']} over {duration(end - start + LIMIT_LOOKBACK)}")
    limit = ([x for x in limits if x.t <= peak.t] or limits)[-1 if any(x.t <= peak.t for x in limits) else 0]
    restarts = prom.raw_samples(q["restarts"], start - LIMIT_LOOKBACK, end).samples()
    if not restarts:
        raise GateFailed(expected=f"the restart count of {namespace}/{container}", seen="no data",
                         where=f"PromQL {q['restarts']}")
    before = [x.v for _, x in restarts if x.t < storm.started] or [min(x.v for _, x in restarts)]
    return Pressure(peak.v, peak.t, limit.v, max(x.v for _, x in restarts) - max(before), q)
