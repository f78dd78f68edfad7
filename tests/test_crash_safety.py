"""Crash safety: a writing gate killed (SIGKILL) after each of its steps leaves only its own names
behind, and the next run sweeps them and passes.

For every @writes scenario of features/: kill the run after step 1, 2, ... N
(each run starts from what the previous kill left: its start-of-run sweep must
cope), check that everything new in the lab carries the suite's names, then
run the scenario whole: it passes and the lab is back to what it was.
The lab's objects are read from the servers' own stores: Forgejo package
versions and the Kubernetes stand-in's namespaces, Jobs and Pods (a Pod is
the suite's when its namespace or its owning Job carries the suite's label).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import REPO
from tests.gherkin_walk import scenarios

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(1800)]


def writing_scenarios() -> list[tuple[str, list[int]]]:
    """(scenario name, the steps after which to kill it) for every @writes scenario.

    A kill point is the sequence of step texts run so far; one already covered by an earlier
    scenario (the same Given/When steps) is not repeated, which keeps the test to minutes.
    """
    out, covered = [], set()
    for sc in scenarios():
        if "writes" not in sc.tags or sc.node.get("examples"):
            continue
        texts = [*sc.background, *sc.steps]
        points = []
        for n in range(1, len(texts) + 1):
            if tuple(texts[:n]) not in covered:
                covered.add(tuple(texts[:n]))
                points.append(n)
        out.append((sc.name, points))
        STATE[sc.name] = _main_job_state(set(sc.tags))
    return out


# scenario -> the lab state its phase is judged in (MAIN_JOB): Phase 4 runs after decommission.
STATE: dict[str, str | None] = {}


def _main_job_state(tags: set[str]) -> str | None:
    from phasegate.lab.core import MAIN_JOB

    phase = next((t for t in tags if t.startswith("phase")), "")
    return next((state for expr, state in MAIN_JOB if phase and phase in expr.split()), None)


def lab_objects(lab) -> set[str]:
    """What the lab holds that a gate could have created, read from the lab servers' own stores:
    Forgejo package versions, and the Kubernetes namespaces, Jobs and Pods of the API stand-in."""
    forgejo = lab["registries"].forgejo
    out = {f"package {v.repository}:{v.version}" for v in forgejo.versions()}
    return out | set(_cluster_objects(lab))


def _cluster_objects(lab) -> dict[str, dict]:
    api = lab["cluster"].api
    out = {}
    for kind in ("Namespace", "Job", "Pod"):
        for o in api.list(kind):
            md = o["metadata"]
            out[f"{kind} {md['namespace'] + '/' if md.get('namespace') else ''}{md['name']}"] = o
    return out


def foreign_objects(lab, inventory, keys: set[str]) -> list[str]:
    """Of `keys` (new since the run started), those that do not carry the suite's names.

    The suite's own: the smoke and push-storm packages; namespaces with the prefix and the label; Jobs with the label;
    Pods in such a namespace or owned by such a Job.
    """
    f, c = inventory.forgejo, inventory.cluster
    label_key, _, label_value = c.test_label.partition("=")
    objects = _cluster_objects(lab)

    def labelled(o) -> bool:
        return (o["metadata"].get("labels") or {}).get(label_key) == (label_value or "true")

    own_jobs = {k.split(" ", 1)[1] for k, o in objects.items() if k.startswith("Job ") and labelled(o)}

    def own(key: str) -> bool:
        kind, name = key.split(" ", 1)
        if kind == "package":
            return name.startswith((f"{f.owner}/{f.smoke_image}:", f"{f.owner}/{inventory.push_storm.image}:"))
        o = objects.get(key)
        if o is None:  # gone again already: nothing left behind
            return True
        if kind == "Namespace":
            return name.startswith(c.test_prefix) and labelled(o)
        if kind == "Job":
            return labelled(o)
        ns = name.split("/", 1)[0]
        owners = {f"{ns}/{r['name']}" for r in o["metadata"].get("ownerReferences") or [] if r.get("kind") == "Job"}
        return (ns.startswith(c.test_prefix) and f"Namespace {ns}" in objects and labelled(objects[f"Namespace {ns}"])) \
            or bool(owners & own_jobs)

    return sorted(k for k in keys if not own(k))


SCENARIOS = writing_scenarios()


@pytest.mark.parametrize("scenario,kill_points", SCENARIOS, ids=[s for s, _ in SCENARIOS])
def test_killed_after_every_step_then_rerun_clean(lab, gates, scenario, kill_points):
    import contextlib

    state = STATE.get(scenario)
    with lab.state(state) if state else contextlib.nullcontext():
        _kill_and_rerun(lab, gates, scenario, kill_points)


def _kill_and_rerun(lab, gates, scenario, kill_points):
    from phasegate.config import load

    inventory = load(lab.inventory_path)
    before = lab_objects(lab)
    for n in kill_points:
        run = gates(scenario=scenario, args=["-p", "tests.crash_at"], env={"CRASH_AFTER_STEP": str(n)})
        assert run.returncode == -9, (f"the run was not killed after step {n}: the scenario did not get that far "
                                      f"(did the previous kill's leftovers break it?)\n{run.summary()}")
        assert not run.leaks, run.leaks
        foreign = foreign_objects(lab, inventory, lab_objects(lab) - before)
        assert not foreign, f"killed after step {n}, the lab holds objects without the suite's names: {foreign}"
    run = gates(scenario=scenario)
    assert run.passed() == [scenario], f"the rerun after the crashes did not pass\n{run.summary()}"
    lab["cluster"].settle()
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
    targets = sorted({v.repository for v in lab["registries"].forgejo.versions()})
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


def test_kubernetes_deletion_refuses_everything_the_suite_did_not_create(lab, monkeypatch):
    """delete_namespace / delete_job / sweep, pointed at the lab cluster's real objects and at look-alikes
    (the prefix without the label, the label without the prefix): each is refused, nothing is deleted."""
    from phasegate.config import load
    from phasegate.http import GUARD
    from phasegate.kube import Kube, NotLabelled

    for k, v in lab.env().items():
        monkeypatch.setenv(k, v)
    inv = load(lab.inventory_path)
    api = lab["cluster"].api
    key, _, value = inv.cluster.test_label.partition("=")
    lookalikes = {f"{inv.cluster.test_prefix}unlabelled": {}, "not-the-suites": {key: value}}
    for name, labels in lookalikes.items():
        api.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    jobs = [(j["metadata"]["namespace"], j["metadata"]["name"]) for j in api.list("Job")
            if (j["metadata"].get("labels") or {}).get(key) != value]
    assert jobs, "the lab cluster holds no Job to try"
    try:
        before = lab_objects(lab)
        kube = Kube.from_inventory(inv)
        try:
            with GUARD.writes_allowed("refusal test"):
                for ns in sorted({o["metadata"]["name"] for o in api.list("Namespace")}):
                    with pytest.raises(NotLabelled):
                        kube.delete_namespace(ns)
                for ns, name in jobs:
                    with pytest.raises(NotLabelled):
                        kube.delete_job(ns, name)
                assert kube.sweep() == [], "sweep deletes only prefix + label"
        finally:
            kube.close()
        assert lab_objects(lab) == before
    finally:
        for name in lookalikes:
            api.delete("Namespace", name)
