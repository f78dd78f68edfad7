"""`phasegate lab faults` and `phasegate lab run --fault NAME` (issue 15.10)."""

from __future__ import annotations

import json
import subprocess
import sys

from phasegate.lab.faults import known, matrix


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phasegate.cli", *args], capture_output=True, text=True, timeout=120)


def test_lab_faults_lists_every_fault_with_the_gates_it_turns_red():
    run = _cli("lab", "faults", "--json")
    assert run.returncode == 0, run.stderr
    listed = {f["fault"]: f for f in json.loads(run.stdout)}
    assert set(listed) == set(known())
    for case in matrix():
        assert case.scenario in [r["scenario"] for r in listed[case.fault]["turns_red"]]
    assert all(f["description"] for f in listed.values())
    text = _cli("lab", "faults").stdout
    assert "alerts-aggregate-instance-away  [metrics]" in text and "red: The registry integrity alerts are instance-aware" in text


def test_lab_run_refuses_a_stage_the_main_job_lacks_before_starting_anything():
    run = _cli("lab", "run", "--stage", "3", "--dir", "/nonexistent/lab")
    assert run.returncode == 2 and "no stage 3 (the main job has 2)" in run.stderr


def test_lab_run_refuses_an_unknown_fault_before_starting_anything():
    run = _cli("lab", "run", "--fault", "no-such-fault", "--dir", "/nonexistent/lab")
    assert run.returncode == 2 and "unknown fault 'no-such-fault'" in run.stderr
