"""Measures the lab's cluster start: three containerd nodes (goal < 10 s) and the whole component.

    .venv/bin/python benchmarks/bench_cluster_start.py
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from phasegate.lab.cluster import NODE_NAMES
from phasegate.lab.nodes import ContainerdNode


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.monotonic()
        nodes = [ContainerdNode(n, Path(tmp) / n).start() for n in NODE_NAMES]
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda n: n.wait_ready(), nodes))
        print(f"three containerd nodes ready: {time.monotonic() - t:.2f} s")
        for n in nodes:
            n.stop()
        from phasegate.lab.core import Lab

        t = time.monotonic()
        lab = Lab(Path(tmp) / "lab").up()
        try:
            print(f"whole lab up: {time.monotonic() - t:.2f} s")
        finally:
            lab.down()


if __name__ == "__main__":
    main()
