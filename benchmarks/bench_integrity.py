"""Integrity sweep throughput, measured side by side on the same lab registry.

    .venv/bin/python -m benchmarks.bench_integrity [--sizes 1,4,16] [--auth] [--seconds 5]

For each registry size (1x = 20 repositories x 10 multi-arch tags, each tag an
OCI index with two images and two attestation manifests: 13 references) and
each path (bare loopback, and through a proxy adding 2.5 ms each way), it
measures in one run:

- ceiling:    the registry's own rate on small-blob GETs from wrk (16 connections,
              2 threads). wrk cannot measure HEAD (after a HEAD answer's
              Content-Length it waits for a body that never comes), and for
              sub-KB blobs a GET costs distribution what a HEAD does (a stat
              plus a tiny read), so this is the HEAD ceiling and, times the
              mean blob size, the raw GET bytes/s for the verify comparison;
- sequential: the old probe's algorithm (catalog, tags, then one request at a
              time: manifest, children, every blob), keep-alive, reimplemented here;
- phasegate:  phasegate.integrity.check_registry --mode head and --mode verify
              at the default concurrency.

It prints references checked per second, the ratios phasegate/ceiling and
phasegate/sequential, and seconds per 1,000 distinct references by size (a
flat line means time grows linearly). Nothing here is a test: numbers go to
benchmarks/RESULTS.md by hand, with the machine they came from.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.delay_proxy import DelayProxy
from benchmarks.disk_seed import SeedSize, seed
from phasegate import images
from phasegate.http import HttpSettings
from phasegate.integrity import DEFAULT_CONCURRENCY, check_registry
from phasegate.lab.distribution import DistributionRegistry
from phasegate.oci import RegistryClient
from phasegate.secrets import Secret

BASE = SeedSize(repos=20, tags=10)
ACCEPT = ", ".join(images.MANIFEST_TYPES)
WRK_LUA = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local i = 0
local hdrs = {}
%(auth)s
request = function()
  i = i + 1
  return wrk.format("%(method)s", paths[(i %% #paths) + 1], hdrs)
end
"""


def wrk(url: str, paths: list[str], method: str, seconds: int, auth: str, tmp: Path) -> float:
    """Requests per second wrk reaches on these paths (16 connections, 2 threads)."""
    pfile = tmp / "paths.txt"
    pfile.write_text("\n".join(paths) + "\n")
    script = tmp / f"{method}.lua"
    auth_line = f'hdrs["Authorization"] = "Basic {auth}"' if auth else ""
    script.write_text(WRK_LUA % {"paths": pfile, "method": method, "auth": auth_line})
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "-s", str(script), url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk gave no rate:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error answers:\n{out}")
    return float(m.group(1))


def sequential(url: str, auth: tuple[str, str] | None, budget_s: float) -> tuple[int, float]:
    """The old probe's walk, one request at a time; stops after `budget_s`. (references, seconds)"""
    refs = 0
    start = time.perf_counter()
    with httpx.Client(base_url=url, auth=auth, timeout=30, trust_env=False) as c:
        repos, last = [], None
        while True:
            r = c.get("/v2/_catalog", params={"n": 100, **({"last": last} if last else {})})
            page = r.json()["repositories"]
            repos += page
            if len(page) < 100:
                break
            last = page[-1]
        for repo in repos:
            for tag in c.get(f"/v2/{repo}/tags/list").json()["tags"]:
                todo = [tag]
                while todo:
                    r = c.get(f"/v2/{repo}/manifests/{todo.pop()}", headers={"Accept": ACCEPT})
                    refs += 1
                    m = r.json()
                    todo += [d["digest"] for d in m.get("manifests", [])]
                    for d in ([m["config"]] if "config" in m else []) + m.get("layers", []):
                        c.head(f"/v2/{repo}/blobs/{d['digest']}")
                        refs += 1
                if time.perf_counter() - start > budget_s:
                    return refs, time.perf_counter() - start
    return refs, time.perf_counter() - start


def phasegate_walk(url: str, mode: str, user: str, password: str) -> tuple[int, int, float]:
    """(references, bytes, seconds) of check_registry at the default concurrency."""
    settings = HttpSettings(connect=5, read=30, total=120)
    client = RegistryClient(url, username=user, password=Secret(password) if password else None, settings=settings)
    start = time.perf_counter()
    with client:
        result = check_registry(client, mode=mode)
    took = time.perf_counter() - start
    if result.broken:
        raise RuntimeError(f"benchmark registry is broken: {result.broken[:3]}")
    return result.manifests + result.blobs, 0, took


def run(sizes: list[int], auth: bool, seconds: int, seq_budget: float) -> list[dict]:
    rows = []
    user, password = ("bench", "bench-password-0") if auth else ("", "")
    basic = base64.b64encode(f"{user}:{password}".encode()).decode() if auth else ""
    for factor in sizes:
        size = SeedSize(BASE.repos * factor, BASE.tags)
        with tempfile.TemporaryDirectory(prefix="pg-bench-") as tmpd:
            tmp = Path(tmpd)
            reg = DistributionRegistry(tmp / "reg", name="bench", users={user: password} if auth else {})
            reg.root.mkdir(parents=True)
            t0 = time.perf_counter()
            info = seed(reg.root, size)
            seeded = time.perf_counter() - t0
            reg.start()
            try:
                blob_paths = info["blob_paths"]
                mean_blob = _mean_blob_bytes(reg.root)
                for path_name, delay in (("loopback", 0.0), ("5ms-rtt", 0.0025)):
                    if delay:
                        proxy = DelayProxy(reg.port, delay).__enter__()
                        url = f"http://127.0.0.1:{proxy.port}"
                    else:
                        proxy, url = None, reg.url
                    try:
                        get_ceiling = wrk(url, blob_paths, "GET", seconds, basic, tmp)
                        head_ceiling = get_ceiling
                        seq_refs, seq_s = sequential(url, (user, password) if auth else None, seq_budget)
                        head_refs, _, head_s = phasegate_walk(url, "head", user, password)
                        verify_refs, _, verify_s = phasegate_walk(url, "verify", user, password)
                    finally:
                        if proxy:
                            proxy.__exit__(None, None, None)
                    row = {
                        "size": size.label, "path": path_name, "auth": auth, "references": info["references"],
                        "seed_s": round(seeded, 1),
                        "ceiling_rps": round(head_ceiling),
                        "ceiling_get_Bps": round(get_ceiling * mean_blob),
                        "sequential_rps": round(seq_refs / seq_s), "head_rps": round(head_refs / head_s),
                        "head_s": round(head_s, 2), "verify_rps": round(verify_refs / verify_s),
                        "verify_Bps": round(verify_refs / verify_s * mean_blob), "verify_s": round(verify_s, 2),
                        "head_s_per_1k_refs": round(head_s / head_refs * 1000, 3),
                    }
                    row["head_vs_ceiling"] = round(row["head_rps"] / row["ceiling_rps"], 2)
                    row["head_vs_sequential"] = round(row["head_rps"] / row["sequential_rps"], 2)
                    row["verify_vs_get_bytes"] = round(row["verify_Bps"] / row["ceiling_get_Bps"], 2)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                reg.stop()
    return rows


def _mean_blob_bytes(root: Path) -> float:
    sizes = [p.stat().st_size for p in (root / "docker/registry/v2/blobs").rglob("data")]
    return sum(sizes) / max(1, len(sizes))


def markdown(rows: list[dict]) -> str:
    head = ("| size | path | auth | refs | ceiling req/s | sequential refs/s | phasegate head refs/s | "
            "head/ceiling | head/sequential | s per 1k refs | verify refs/s | verify/GET bytes |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['size']} | {r['path']} | {'htpasswd' if r['auth'] else 'none'} | {r['references']} | "
                     f"{r['ceiling_rps']} | {r['sequential_rps']} | {r['head_rps']} | {r['head_vs_ceiling']} | "
                     f"{r['head_vs_sequential']} | {r['head_s_per_1k_refs']} | {r['verify_rps']} | "
                     f"{r['verify_vs_get_bytes']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1,4,16", help="multiples of 20 repos x 10 tags (default 1,4,16)")
    p.add_argument("--auth", action="store_true", help="htpasswd (bcrypt) Basic auth on the registry")
    p.add_argument("--seconds", type=int, default=5, help="wrk duration per measurement")
    p.add_argument("--sequential-budget", type=float, default=20.0, help="seconds the sequential walk may run")
    args = p.parse_args(argv)
    print(f"# machine: {platform.platform()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"default concurrency {DEFAULT_CONCURRENCY}", flush=True)
    rows = run([int(s) for s in args.sizes.split(",")], args.auth, args.seconds, args.sequential_budget)
    print()
    print(markdown(rows))
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
