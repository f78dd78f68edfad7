"""Crash safety: a writing gate killed (SIGKILL) after each of its steps leaves only its own names
behind, and the next run sweeps them and passes.

For every @writes scenario of features/: kill the run after step 1, 2, ... N
(each run starts from what the previous kill left: its start-of-run sweep must
cope), check that everything new in the lab carries the suite's names, then
run the scenario whole: it passes and the lab is back to what it was.
Kubernetes objects (namespaces with the suite's prefix and label) join when
the cluster area's writing gates and stand-in land.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gherkin.parser import Parser

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(1800)]


def writing_scenarios() -> list[tuple[str, list[int]]]:
    """(scenario name, the steps after which to kill it) for every @writes scenario.

    A kill point is the sequence of step texts run so far; one already covered by an earlier
    scenario (the same Given/When steps) is not repeated, which keeps the test to minutes.
    """
    out, covered = [], set()
    for path in sorted((REPO / "features").glob("*.feature")):
        feature = Parser().parse(path.read_text())["feature"]
        ftags = {t["name"] for t in feature["tags"]}
        background = [st["text"] for c in feature["children"] if "background" in c for st in c["background"]["steps"]]
        for child in feature["children"]:
            sc = child.get("scenario")
            if not sc or "@writes" not in ftags | {t["name"] for t in sc["tags"]} or sc.get("examples"):
                continue
            texts = background + [st["text"] for st in sc["steps"]]
            points = []
            for n in range(1, len(texts) + 1):
                if tuple(texts[:n]) not in covered:
                    covered.add(tuple(texts[:n]))
                    points.append(n)
            out.append((sc["name"], points))
            tags = {t.lstrip("@") for t in ftags | {t["name"] for t in sc["tags"]}}
            STATE[sc["name"]] = _main_job_state(tags)
    return out


# scenario -> the lab state its phase is judged in (MAIN_JOB): Phase 4 runs after decommission.
STATE: dict[str, str | None] = {}


def _main_job_state(tags: set[str]) -> str | None:
    from phasegate.lab.core import MAIN_JOB

    phase = next((t for t in tags if t.startswith("phase")), "")
    return next((state for expr, state in MAIN_JOB if phase and phase in expr.split()), None)


def lab_objects(lab) -> set[str]:
    """What the lab holds that a gate could have created: Forgejo package versions (repository:version)."""
    forgejo = lab["registries"].forgejo
    return {f"{v.repository}:{v.version}" for v in forgejo.versions()}


def suite_names(inventory) -> tuple[str, ...]:
    """Prefixes of everything the suite may create (config: forgejo smoke image)."""
    f = inventory.forgejo
    return (f"{f.owner}/{f.smoke_image}:",)


SCENARIOS = writing_scenarios()


@pytest.mark.parametrize("scenario,kill_points", SCENARIOS, ids=[s for s, _ in SCENARIOS])
def test_killed_after_every_step_then_rerun_clean(lab, gates, scenario, kill_points):
    import contextlib

    state = STATE.get(scenario)
    with lab.state(state) if state else contextlib.nullcontext():
        _kill_and_rerun(lab, gates, scenario, kill_points)


def _kill_and_rerun(lab, gates, scenario, kill_points):
    from phasegate.config import load

    own = suite_names(load(lab.inventory_path))
    before = lab_objects(lab)
    for n in kill_points:
        run = gates(scenario=scenario, args=["-p", "tests.crash_at"], env={"CRASH_AFTER_STEP": str(n)})
        assert run.returncode == -9, (f"the run was not killed after step {n}: the scenario did not get that far "
                                      f"(did the previous kill's leftovers break it?)\n{run.summary()}")
        assert not run.leaks, run.leaks
        new = lab_objects(lab) - before
        foreign = sorted(x for x in new if not x.startswith(own))
        assert not foreign, f"killed after step {n}, the lab holds objects without the suite's names: {foreign}"
    run = gates(scenario=scenario)
    assert run.passed() == [scenario], f"the rerun after the crashes did not pass\n{run.summary()}"
    assert lab_objects(lab) == before, f"left behind: {sorted(lab_objects(lab) ^ before)}"


def test_deletion_refuses_everything_but_the_suites_own_names(lab, monkeypatch):
    """The cleaner the gates use, pointed at real packages of the lab: each delete is refused before the wire."""
    from phasegate.config import load
    from phasegate.forgejo import DeletionRefused, SmokePackage
    from phasegate.http import GUARD, HttpSettings

    for k, v in lab.env().items():
        monkeypatch.setenv(k, v)
    inv = load(lab.inventory_path)
    before = lab_objects(lab)
    mark = lab["registries"].forgejo.mark()
    targets = sorted({x.rsplit(":", 1)[0] if not x.split(":", 1)[1].startswith("sha256") else x.split(":sha256")[0]
                      for x in before})
    assert targets, "the lab's Forgejo holds no package to try"
    smoke = SmokePackage.from_inventory(inv)
    with smoke.packages(inv, HttpSettings.from_timeouts(inv.timeouts)) as api, GUARD.writes_allowed("refusal test"):
        for repository in targets + [f"{smoke.repository}-other", f"{inv.forgejo.owner}/smoketes"]:
            name = repository.split("/", 1)[1]
            if name == smoke.image:
                continue
            with pytest.raises(DeletionRefused):
                api.delete(name, "latest")
    assert lab_objects(lab) == before
    assert not lab["registries"].forgejo.writes(mark), "a refused delete never reaches the server"
