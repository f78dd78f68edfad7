"""`needed_by` is complete: each phase's gates run with only the secrets the inventory says it needs (15.8).

A gate that reads a secret its phase does not declare would stop mid-run on a runner that is handed
only the declared ones (Phase 4's fresh tag needed the push token and did not say so); the bake job
is handed exactly the phase2 secrets, so a phase2 gate must never need another.
"""

from __future__ import annotations

import pytest

from phasegate import config
from tests.gherkin_walk import markers_of, scenarios

pytestmark = pytest.mark.lab

MISSING = "is missing: set the environment variable"


@pytest.mark.parametrize("phase", [f"phase{i}" for i in range(6)])
def test_each_phase_runs_with_only_its_declared_secrets(lab, gates, phase):
    inv = config.load(lab.inventory_path)
    # needed_by names markers: a secret is declared for the phase when it names a tag of one of its gates
    markers = markers_of([sc for sc in scenarios() if phase in sc.tags])
    blank = {ref.env: "" for ref in inv.secrets.values() if not set(ref.needed_by) & markers}
    state = "decommissioned" if phase in ("phase4", "phase5") else None
    if state:
        with lab.state(state):
            run = gates(phase, env=blank)
    else:
        run = gates(phase, env=blank)
    assert run.results, run.summary()
    undeclared = [f"{r['scenario']}: {r['message'][:300]}" for r in run.results if MISSING in r.get("message", "")]
    assert not undeclared, f"{phase} gates use secrets their phase does not declare in needed_by:\n" + "\n".join(undeclared)
    # (whether each gate is green is test_fault_matrix's green-lab test; here only the secrets count)
