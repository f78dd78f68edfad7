"""A throw-away gate project (features/, steps/, pytest.ini, an inventory) built from one of the
tests' example folders, and a run of it as a user runs the gates: the report machinery and the
outcomes tested on self-contained scenarios (tests/report_example/, tests/outcome_example/)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from tests import REPO


@dataclass
class ExampleRun:
    dir: Path
    proc: subprocess.CompletedProcess
    by_name: dict[str, dict]  # Allure result of each scenario, by its name

    @property
    def results(self) -> Path:
        return self.dir / "results"


def example_project(tmp: Path, example: Path, files: dict[str, str], markers: dict[str, str], name: str) -> Path:
    """`files`: example file -> where it goes in the project (features/x.feature, steps/test_x.py, conftest.py)."""
    for src, dst in files.items():
        (tmp / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(example / src, tmp / dst)
    (tmp / "pytest.ini").write_text(
        "[pytest]\ntestpaths = steps\nbdd_features_base_dir = features/\nstrict_markers = true\nmarkers =\n"
        + "".join(f"    {m}: {why}\n" for m, why in markers.items()))
    inv = tomllib.loads((REPO / "phasegate.toml").read_text())
    inv["name"] = name
    inv["report"]["results_dir"] = str(tmp / "results")
    (tmp / "inventory.toml").write_text(tomli_w.dumps(inv))
    return tmp


def run_example(project: Path, pushgateway: str, env: dict[str, str], args: list[str]) -> ExampleRun:
    """pytest in the project, its verdicts pushed to `pushgateway`; `env` on top of this process's
    environment without any PHASEGATE_ or CI_ variable."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PHASEGATE_", "CI_"))}
    e.update({"PYTHONPATH": str(REPO)})
    e.update(env)
    argv = [sys.executable, "-m", "pytest", "-p", "tests.netguard", "-p", "no:cacheprovider", *args,
            "--inventory", str(project / "inventory.toml"), "--push-metrics", "--pushgateway", pushgateway]
    proc = subprocess.run(argv, cwd=project, env=e, capture_output=True, text=True, timeout=300)
    by_name = {}
    for f in (project / "results").glob("*-result.json"):
        d = json.loads(f.read_text())
        by_name[d["name"]] = d
    return ExampleRun(project, proc, by_name)
