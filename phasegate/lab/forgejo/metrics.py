"""Lab component `forgejo_metrics`: the Forgejo stand-in's own memory as a kubelet would report it.

The real cluster's Prometheus keeps cAdvisor's `container_memory_working_set_bytes` (job `kubelet`)
and kube-state-metrics' `kube_pod_container_resource_limits` / `kube_pod_container_status_restarts_total`
(infra-facts.md §7; the cAdvisor limit series is dropped there, so the limit comes from KSM). This
component serves those series for the stand-in on loopback (`/metrics/cadvisor`, `/metrics`) with the
label sets the lab's bake history uses (namespace, pod, container; image on cAdvisor's), and adds the
two scrape jobs to the lab Prometheus (its config file, then SIGHUP):
- the working set is the lab process's resident memory (the stand-in buffers every request body in
  it), the peak since the previous scrape so a short storm is not missed between scrapes (sampled at
  each request's start and end, every 50 ms while one is in hand, and at the scrape);
- the limit is the memory limit of the lab cluster's `forgejo` Deployment (`cluster.forgejo_memory`);
- a restart is counted when a request's body does not fit in `oom_room` (the fault: the memory left under
  the limit): the bodies of the requests the stand-in holds, this one's included, are more. As an
  OOMKilled container, the request in hand gets no answer and the connection drops. The bodies are
  counted, not read off the resident size: a request reuses heap an earlier one freed without the
  resident size growing, so a storm could pass under a limit it fills.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

from phasegate.lab.faults import fault
from phasegate.units import quantity

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class ForgejoMetrics:
    name = "forgejo_metrics"

    def __init__(self):
        self._lab = None
        self.server: ThreadingHTTPServer | None = None
        self.peak = 0
        self.restarts = 0
        self.oom_room = 0  # bytes of request bodies that fit under the limit; 0 = no OOM killer (the fault sets it)
        self.held = 0  # bytes of request bodies the stand-in holds now
        self.in_hand = 0  # requests the stand-in handles now
        self._busy = threading.Event()  # set while it handles any (the sampler runs only then)
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self, lab) -> None:
        self._lab = lab
        standin = lab["registries"].forgejo
        inner = standin.handle

        def handle(req):  # every request: a memory sample, and the OOM killer when the fault is on
            self.sample()
            size = len(req.body or b"")
            with self._lock:
                self.held += size
                self.in_hand += 1
                self._busy.set()
                killed = bool(self.oom_room) and self.held > self.oom_room
                self.restarts += killed
            try:
                return None if killed else inner(req)  # killed: the process is gone, the connection drops
            finally:
                self.sample()
                with self._lock:
                    self.held -= size
                    self.in_hand -= 1
                    if not self.in_hand:
                        self._busy.clear()

        standin.handle = handle
        comp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = comp.exposition(self.path).encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="forgejo-metrics", daemon=True).start()
        threading.Thread(target=self._sampler, name="forgejo-rss", daemon=True).start()
        if "metrics" in lab:
            self._add_scrape_jobs(lab["metrics"])

    def stop(self) -> None:
        self._stop.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def inventory(self) -> dict:
        # the lab opts in to the push storm, with sizes a loopback lab pushes in seconds
        return {"push_storm": {"enabled": True, "pushes": 4, "layers": 3, "layer_size": "4m", "chunk_size": "1m"}}

    def env(self) -> dict:
        return {}

    # -- measurements --------------------------------------------------------------
    def sample(self) -> int:
        now = rss()
        with self._lock:
            self.peak = max(self.peak, now)
        return now

    def _sampler(self) -> None:
        """Every 50 ms while the stand-in handles a request (its memory grows only then; idle, a scrape reads
        it): a lab idles most of its life, and sampling it then cost a few per cent of a CPU for nothing."""
        while not self._stop.is_set():
            if self._busy.wait(1.0) and not self._stop.wait(0.05):
                self.sample()

    def limit(self) -> int:
        d = self._lab["cluster"].api.get("Deployment", "forgejo", "forgejo") if "cluster" in self._lab else None
        try:
            mem = d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
        except (TypeError, KeyError, IndexError):
            return 0
        return int(quantity(mem))

    def _labels(self) -> dict:
        names = self._lab["metrics"].names if "metrics" in self._lab else None
        return {"namespace": getattr(names, "forgejo_namespace", "forgejo"),
                "pod": getattr(names, "forgejo_pod", "forgejo-0"),
                "container": getattr(names, "forgejo_container", "forgejo")}

    def exposition(self, path: str) -> str:
        labels = self._labels()
        lbl = ",".join(f'{k}="{v}"' for k, v in labels.items())
        if path.startswith("/metrics/cadvisor"):
            with self._lock:
                peak, self.peak = self.peak, 0
            peak = max(peak, rss())
            return ("# TYPE container_memory_working_set_bytes gauge\n"
                    f'container_memory_working_set_bytes{{{lbl},image="codeberg.org/forgejo/forgejo:11"}} {peak}\n')
        if path.startswith("/metrics"):
            out = ["# TYPE kube_pod_container_status_restarts_total counter",
                   f"kube_pod_container_status_restarts_total{{{lbl}}} {self.restarts}"]
            limit = self.limit()
            if limit:
                out += ["# TYPE kube_pod_container_resource_limits gauge",
                        f'kube_pod_container_resource_limits{{{lbl},resource="memory",unit="byte"}} {limit}']
            return "\n".join(out) + "\n"
        return ""

    # -- the lab Prometheus ------------------------------------------------------------
    def _add_scrape_jobs(self, m) -> None:
        path = m.dir / "prometheus.yml"
        doc = yaml.safe_load(path.read_text())
        doc["scrape_configs"] += [
            {"job_name": "kubelet", "metrics_path": "/metrics/cadvisor", "honor_labels": True,
             "static_configs": [{"targets": [self.target]}]},
            {"job_name": "kube-state-metrics", "metrics_path": "/metrics", "honor_labels": True,
             "static_configs": [{"targets": [self.target]}]},
        ]
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        if m.prometheus and m.prometheus.alive():
            m.prometheus.signal(signal.SIGHUP)


@contextlib.contextmanager
def _oom(lab, room: int):
    comp = lab["forgejo_metrics"]
    comp.oom_room = room
    try:
        yield
    finally:
        comp.oom_room = 0  # the restart count stays, as kube-state-metrics keeps it


@fault("forgejo-push-storm-oomkilled", component="forgejo_metrics",
       description="the 2026-06-09 push storm: Forgejo's memory limit leaves no room for concurrent "
                   "uploads, the container is OOMKilled mid-push (restarts, dropped connections)")
def _push_storm_oomkilled(lab):
    # msg@e0452611 (1Gi -> 3Gi after CI push storms OOMKilled Forgejo), infra-facts.md §1
    # room for less than one chunk of the lab's storm (1 MiB, ForgejoMetrics.inventory): no upload fits
    with _oom(lab, room=512 * 2**10):
        yield


@fault("forgejo-push-storm-near-limit", component="forgejo_metrics",
       description="Forgejo's memory limit barely above its working set (as at 1Gi before 2026-06-09): "
                   "the storm takes it past 90% of the limit")
def _push_storm_near_limit(lab):
    api = lab["cluster"].api
    limit = f"{int(rss() / 0.93)}"  # bytes: the idle working set is already 93% of it

    def set_limit(value):
        def fn(d):
            d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = value
        return fn

    before = api.get("Deployment", "forgejo", "forgejo")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    api.mutate("Deployment", "forgejo", "forgejo", set_limit(limit), fire=False)
    _scraped_limit(lab, int(quantity(limit)))  # the fault is in place once Prometheus holds it
    try:
        yield
    finally:
        api.mutate("Deployment", "forgejo", "forgejo", set_limit(before), fire=False)
        _scraped_limit(lab, int(quantity(before)))


def _scraped_limit(lab, value: int) -> None:
    from phasegate.lab.procs import loopback_http, wait_until

    m = lab["metrics"]
    promql = 'kube_pod_container_resource_limits{namespace="forgejo", container="forgejo", resource="memory", job="kube-state-metrics"}'

    def scraped() -> bool:
        r = loopback_http().get(f"{m.prometheus_url}/api/v1/query", params={"query": promql}, timeout=2).json()
        return any(int(float(x["value"][1])) == value for x in r["data"]["result"])

    wait_until(scraped, timeout=30, what="the lab Prometheus scraping Forgejo's new memory limit", proc=m.prometheus)
