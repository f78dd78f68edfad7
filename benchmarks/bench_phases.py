"""Wall time of each phase's gates against the lab, lab start included.

    .venv/bin/python -m benchmarks.bench_phases

Starts the whole lab once (timed), then runs `pytest -m phaseN` for every
phase in its main-job lab state, one after another, and prints seconds per
phase. Numbers go to benchmarks/RESULTS.md by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from phasegate.lab.core import MAIN_JOB, Lab

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pg-phases-") as tmp:
        t0 = time.perf_counter()
        lab = Lab(Path(tmp) / "lab").up()
        print(f"lab start: {time.perf_counter() - t0:.1f} s", flush=True)
        try:
            env = {**os.environ, **lab.env()}
            for phase in [f"phase{i}" for i in range(6)]:
                state = next((s for expr, s in MAIN_JOB if phase in expr), None)
                argv = [sys.executable, "-m", "pytest", "-m", phase, f"--inventory={lab.inventory_path}", "-q",
                        "-p", "no:cacheprovider"]
                t = time.perf_counter()
                if state:
                    with lab.state(state):
                        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
                else:
                    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
                last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
                print(f"{phase}: {time.perf_counter() - t:.1f} s  [{last}]", flush=True)
        finally:
            lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
