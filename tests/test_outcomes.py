"""Pending and NotJudged end to end: pytest's summary and exit status, the Allure results (own status,
category, label, message) and the verdicts pushed to a real Pushgateway."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import tomli_w

from phasegate import report
from phasegate.lab.procs import Proc, free_port, wait_until
from tests import REPO
from tests.example_project import example_project, run_example

EXAMPLE = REPO / "tests" / "outcome_example"


def _run(tmp: Path, pushgateway: str, markexpr: str) -> tuple[subprocess.CompletedProcess, dict]:
    project = example_project(tmp, EXAMPLE, {"outcome.feature": "features/outcome.feature",
                                             "outcome_steps.py": "steps/test_outcome.py"},
                              {"phase2": "p2", "readonly": "ro", "red": "red"}, "outcome-example")
    inv = tomllib.loads((project / "inventory.toml").read_text())
    secrets = {ref["env"]: f"pgcanary-{key}" for key, ref in inv["secrets"].items()}  # gates may need them
    run = run_example(project, pushgateway, secrets, ["-m", markexpr])
    return run.proc, run.by_name


def _states(pushgateway: str) -> dict[str, dict]:
    out = {}
    for g in httpx.get(f"{pushgateway}/api/v1/metrics", timeout=5).json()["data"]:
        if "phasegate_gate_state" in g:
            states = {m["labels"]["state"]: m["value"] for m in g["phasegate_gate_state"]["metrics"]}
            passed = g.get("phasegate_gate_passed", {}).get("metrics", [{}])[0].get("value")
            out[g["labels"]["gate"]] = {"state": next(s for s, v in states.items() if v == "1"), "passed": passed}
    return out


def test_pending_and_not_judged_are_outcomes_of_their_own_and_exit_0(tmp_path, pushgateway):
    proc, results = _run(tmp_path / "open", pushgateway, "phase2 and not red")
    assert proc.returncode == 0, proc.stdout[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert "1 passed" in last and "1 pending" in last and "2 not judged" in last, last
    assert "skipped" not in last
    assert "day 5 of 14" in proc.stdout and "still needed: 9 more successful retention runs" in proc.stdout
    # Allure: own status, own category, a label, the message visible
    pending = results["A criterion whose window is still open"]
    assert pending["status"] == "unknown"
    assert pending["statusDetails"]["message"].startswith("PENDING: day 5 of 14")
    assert {"name": "outcome", "value": "pending"} in pending["labels"]
    nj = results["A criterion the inventory opts out of"]
    assert nj["status"] == "unknown" and nj["statusDetails"]["message"].startswith("NOT JUDGED: [bake] not_judged")
    assert results["A criterion that holds"]["status"] == "passed"
    cats = json.loads((tmp_path / "open" / "results" / "categories.json").read_text())
    import re

    by_name = {c["name"]: c for c in cats}
    assert re.fullmatch(by_name["Pending (window still open)"]["messageRegex"], pending["statusDetails"]["message"])
    assert not re.fullmatch(by_name["Pending (window still open)"]["messageRegex"], nj["statusDetails"]["message"])
    # the pushed verdicts: a state per gate; phasegate_gate_passed only for judged gates
    states = _states(pushgateway)
    assert states["A criterion whose window is still open"] == {"state": "pending", "passed": None}
    assert states["A criterion the inventory opts out of"] == {"state": "not_judged", "passed": None}
    assert states["A criterion that holds"] == {"state": "passed", "passed": "1"}
    # opted out by a fixture, before the scenario began: still its own outcome, in the report too
    early = results["A gate whose client the inventory opts out of before it starts"]
    assert early["status"] == "unknown" and early["statusDetails"]["message"].startswith("NOT JUDGED: [docker_api]")
    assert states["A gate whose client the inventory opts out of before it starts"]["state"] == "not_judged"


def test_a_failure_beside_pending_exits_1(tmp_path, pushgateway):
    proc, results = _run(tmp_path / "red", pushgateway, "phase2")
    assert proc.returncode == 1, proc.stdout[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert "1 failed" in last and "1 pending" in last, last
    assert results["A criterion that is broken so far"]["status"] == "failed"
    assert _states(pushgateway)["A criterion that is broken so far"] == {"state": "failed", "passed": "0"}


def test_categories_keep_product_defects_and_test_broken_first():
    assert [c["name"] for c in report.CATEGORIES][:2] == [report.PRODUCT_DEFECTS, report.TEST_BROKEN]
    assert {c["name"] for c in report.CATEGORIES[2:]} == {"Pending (window still open)",
                                                          "Not judged (opted out in the inventory)"}
