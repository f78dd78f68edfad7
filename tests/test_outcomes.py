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

EXAMPLE = REPO / "tests" / "outcome_example"


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory):
    port = free_port()
    d = tmp_path_factory.mktemp("pushgateway")
    # no persistence file: a push of an earlier run must not be served to this one
    proc = Proc("pushgateway", ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}",
                                "--persistence.file="], d / "log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, timeout=20,
                   what="pushgateway", proc=proc)
        yield url
    finally:
        proc.stop()


def _run(tmp: Path, pushgateway: str, markexpr: str) -> tuple[subprocess.CompletedProcess, dict]:
    tmp.mkdir()
    (tmp / "features").mkdir()
    (tmp / "steps").mkdir()
    shutil.copy(EXAMPLE / "outcome.feature", tmp / "features" / "outcome.feature")
    shutil.copy(EXAMPLE / "outcome_steps.py", tmp / "steps" / "test_outcome.py")
    (tmp / "pytest.ini").write_text(
        "[pytest]\ntestpaths = steps\nbdd_features_base_dir = features/\nstrict_markers = true\n"
        "markers =\n    phase2: p2\n    readonly: ro\n    red: red\n")
    inv = tomllib.loads((REPO / "phasegate.toml").read_text())
    inv["name"] = "outcome-example"
    inv["report"]["results_dir"] = str(tmp / "results")
    (tmp / "inventory.toml").write_text(tomli_w.dumps(inv))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHASEGATE_", "CI_"))}
    env.update({"PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"})
    env.update({ref["env"]: f"pgcanary-{key}" for key, ref in inv["secrets"].items()})  # gates may need them
    argv = [sys.executable, "-m", "pytest", "-p", "tests.netguard", "-p", "no:cacheprovider", "-m", markexpr,
            "--inventory", str(tmp / "inventory.toml"), "--push-metrics", "--pushgateway", pushgateway]
    proc = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    results = {}
    for f in (tmp / "results").glob("*-result.json"):
        d = json.loads(f.read_text())
        results[d["name"]] = d
    return proc, results


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
