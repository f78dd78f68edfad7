"""Every gate can fail: each scenario has at least one lab fault that turns it red."""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path

import pytest

from tests import REPO
from tests.gherkin_walk import markers_of, scenarios
from tests.harness import GateRun
from tests.xdist_groups import on_one_worker_per_fault

# tests/faults/<area>.toml, one file per area so areas do not edit one file.
MATRIX = [
    dict(case, file=path.name)
    for path in sorted((REPO / "tests" / "faults").glob("*.toml"))
    for case in tomllib.loads(path.read_text()).get("case", [])
]


def feature_scenarios() -> dict[str, set[str]]:
    """scenario template name -> names it may appear under in the matrix (outline rows expanded)."""
    return {sc.name: sc.names() for sc in scenarios()}


def test_every_scenario_has_a_red_case():
    covered = {c["scenario"] for c in MATRIX}
    missing = [t for t, names in feature_scenarios().items() if not names & covered]
    assert not missing, f"scenarios without a fault in tests/faults/*.toml: {missing}"


def test_every_case_names_a_real_scenario_and_fault():
    from phasegate.lab.faults import known

    names = set().union(*feature_scenarios().values()) if feature_scenarios() else set()
    faults = known()
    bad = [c for c in MATRIX if c["scenario"] not in names or c["fault"] not in faults or not c.get("expect")]
    assert not bad, f"matrix rows naming unknown scenarios/faults, or without expected words: {bad}"


# The green baseline, one run per phase with only the secrets the inventory declares for it (`needed_by`):
# a gate that reads a secret its phase does not declare would stop mid-run on a runner handed only the
# declared ones (Phase 4's fresh tag needed the push token and did not say so), and the bake job is handed
# exactly the phase2 secrets. Each phase runs in the lab state the main job judges it in (MAIN_JOB); the
# main job's own shape, every phase of a stage in one session, is `phasegate lab run` (test_lab_killed).
MISSING = "is missing: set the environment variable"


def main_job_state(phase: str) -> str | None:
    from phasegate.lab.core import MAIN_JOB

    (state,) = [state for markexpr, state in MAIN_JOB if phase in markexpr.split(" or ")]
    return state


@pytest.mark.lab
@pytest.mark.parametrize("phase", [f"phase{i}" for i in range(6)])
def test_green_lab_passes_every_gate_of_each_phase_with_only_its_declared_secrets(lab, gates, inventory_of, phase):
    # needed_by names markers: a secret is declared for the phase when it names a tag of one of its gates
    markers = markers_of([sc for sc in scenarios() if phase in sc.tags])
    blank = {ref.env: "" for ref in inventory_of(lab).secrets.values() if not set(ref.needed_by) & markers}
    state = main_job_state(phase)
    with lab.state(state) if state else contextlib.nullcontext():
        run = gates(phase, env=blank)
    assert run.results, run.summary()
    undeclared = [f"{r['scenario']}: {r['message'][:300]}" for r in run.results if MISSING in r.get("message", "")]
    assert not undeclared, f"{phase} gates use secrets their phase does not declare in needed_by:\n" + "\n".join(undeclared)
    assert run.returncode in (0, 5), run.summary()
    assert not run.failed(), run.summary()
    assert not run.leaks, f"secrets leaked: {run.leaks}"


# (fault, lab state) -> the gate run of every scenario the matrix says that fault turns red, in one session
# (as a user's `pytest -m ...` under that fault would run them); the rows of one fault share a worker
_RUNS: dict[tuple[str, str], GateRun] = {}


def _run_under_fault(gates, lab, fault: str, state: str) -> GateRun:
    key = (fault, state)
    if key not in _RUNS:
        scenarios = sorted({c["scenario"] for c in MATRIX if (c["fault"], c.get("state", "")) == key})
        with lab.state(state) if state else contextlib.nullcontext():
            _RUNS[key] = gates(scenario=scenarios, fault=fault)
    return _RUNS[key]


@pytest.mark.lab
@pytest.mark.parametrize("case", [pytest.param(c, marks=on_one_worker_per_fault(c["fault"])) for c in MATRIX],
                         ids=[f"{c['fault']}->{c['scenario']}" for c in MATRIX])
def test_fault_turns_its_gate_red(lab, gates, case):
    result = _run_under_fault(gates, lab, case["fault"], case.get("state", ""))
    assert result.results, f"scenario {case['scenario']!r} was not collected\n{result.summary()}"
    assert not result.leaks, f"secrets leaked: {result.leaks}"
    outcomes = {r["scenario"]: r for r in result.results}
    mine = [r for name, r in outcomes.items() if name == case["scenario"]] or \
        [r for name, r in outcomes.items() if case["scenario"] in name] or \
        (list(outcomes.values()) if len(outcomes) == 1 else [])
    assert len(mine) == 1, f"scenario {case['scenario']!r} is not one of this run's results\n{result.summary()}"
    row = mine[0]
    assert row["outcome"] in ("failed", "error"), f"{case['fault']} did not turn the gate red\n{result.summary()}"
    for word in case["expect"]:
        assert word in row["message"], f"failure message lacks {word!r}:\n{row['message']}"
