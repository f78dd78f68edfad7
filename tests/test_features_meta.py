"""The tag vocabulary of features/: a typo must not silently drop a gate from `-m phaseN`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests import REPO
from tests.gherkin_walk import scenarios

MARKERS = {m.split(":")[0] for m in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]}
PHASES = {f"phase{i}" for i in range(6)}


def _scenarios():
    for sc in scenarios():
        yield sc.feature, sc.name, set(sc.tags)


def test_features_exist():
    assert list((REPO / "features").glob("*.feature"))


def test_every_tag_is_a_registered_marker():
    bad = [(f, s, sorted(t - MARKERS)) for f, s, t in _scenarios() if t - MARKERS]
    assert not bad, f"unregistered tags: {bad}"


def test_every_scenario_has_one_phase_and_says_if_it_writes():
    bad = []
    for f, s, tags in _scenarios():
        if len(tags & PHASES) != 1 or len(tags & {"writes", "readonly"}) != 1:
            bad.append((f, s, sorted(tags)))
    assert not bad, f"scenarios need exactly one @phaseN and exactly one of @writes/@readonly: {bad}"


def test_every_feature_is_bound():
    bound = "\n".join(p.read_text() for p in (REPO / "steps").glob("test_*.py"))
    unbound = [p.name for p in (REPO / "features").glob("*.feature") if p.name not in bound]
    assert not unbound, f"features not bound by a steps/test_*.py module: {unbound}"


# -- every outline's Examples table is the inventory's list, not a copy that drifts (issue 15.6) --------


def _outlines():
    """(feature file, outline name, header, rows) of every Scenario Outline."""
    for sc in scenarios():
        for ex in sc.node.get("examples") or []:
            header = [c["value"] for c in ex["tableHeader"]["cells"]]
            rows = [dict(zip(header, [c["value"] for c in r["cells"]], strict=True)) for r in ex.get("tableBody", [])]
            yield sc.feature, sc.name, header, rows


def _expected_rows(inv) -> dict[tuple[str, str], tuple[str, list[str]]]:
    """(feature, outline) -> (column, the inventory's values in order): what each table must list."""
    projects = inv.projects
    return {
        ("phase1_dual_push.feature", "<project> pushes its newest build to both registries"):
            ("project", [p.name for p in projects if p.dual_push]),
        ("phase1_pipelines.feature", "The <project> pipeline pushes to both registries with secret logins"):
            ("project", [p.name for p in projects if p.dual_push]),
        ("phase1_breakglass.feature", "The <copy> break-glass copy holds the newest infra-ci build"):
            ("copy", [c.name for c in inv.registry_vm.breakglass.copies]),
        ("phase3_cutover.feature", "<project> is cut over to Forgejo"):
            ("project", [p.name for p in inv.cutover_order()]),
        ("phase3_infra_repo.feature", "The <project> stack resolves its images to Forgejo"):
            ("project", [s.project for s in inv.infra_repo.stacks]),
        ("phase3_preflight.feature", "Before its cutover, every image <project>'s flipped stack pulls is on Forgejo "
                                     "with registry-private's digest and intact"):
            ("project", [s.project for s in inv.infra_repo.stacks]),
        ("phase3_github_archived.feature", "<project>'s GitHub repository is archived"):
            ("project", list(inv.github.archived_after_cutover)),
        ("phase1_github_workflow.feature", "<project>'s GitHub Actions workflows are disabled"):
            ("project", list(inv.github.workflows_disabled)),
        ("phase5_docs.feature", "The document <doc> no longer describes registry-private as current"):
            ("doc", [d.path for d in inv.infra_repo.docs]),
    }


ORDERED = {("phase3_cutover.feature", "<project> is cut over to Forgejo")}


def test_every_outline_examples_table_is_the_inventory_list():
    from phasegate import config

    problems = _table_problems(config.load(REPO / "phasegate.toml"))
    assert not problems, "\n".join(problems)


def _table_problems(inv) -> list[str]:
    expected = _expected_rows(inv)
    names = {p.name for p in inv.projects}
    problems = []
    seen = set()
    for feature, outline, header, rows in _outlines():
        key = (feature, outline)
        if key in expected:
            seen.add(key)
            column, want = expected[key]
            got = [r.get(column, "") for r in rows]
            # order matters where it is the plan's (cutover order); elsewhere the rows are a set
            if (got != want) if key in ORDERED else (sorted(got) != sorted(want) or len(set(got)) != len(got)):
                problems.append(f"{feature}: {outline!r}: column {column} is {got}, the inventory lists {want}")
        elif "project" not in header:
            problems.append(f"{feature}: {outline!r}: an Examples table with no inventory list to check it against "
                            "(add it to _expected_rows)")
        # every project column names a project of the inventory (also one-row outlines: --project selects by it)
        bad = [r["project"] for r in rows if "project" in r and r["project"] not in names]
        if bad:
            problems.append(f"{feature}: {outline!r}: project(s) {bad} are not [[projects]] names")
    problems += [f"{f}: outline {o!r} not found" for f, o in set(expected) - seen]
    return problems


def test_the_meta_test_sees_a_drifted_table():
    """An inventory with one more project, or another order, than the tables is caught."""
    import dataclasses

    from phasegate import config

    inv = config.load(REPO / "phasegate.toml")
    extra = dataclasses.replace(inv.projects[0], name="new-project")
    grown = _table_problems(dataclasses.replace(inv, projects=[*inv.projects, extra]))
    assert any("cut over" in p and "new-project" in p for p in grown), grown
    assert any("pushes its newest build" in p for p in grown), grown
    swapped = _table_problems(dataclasses.replace(inv, projects=[inv.projects[1], inv.projects[0], *inv.projects[2:]]))
    assert [p for p in swapped if "cut over" in p] and not [p for p in swapped if "pipeline" in p], swapped


# -- every number a gate judges by: in the scenario text, and the same as the inventory's (issue #17.3) -------
# A step that judges by a number parses it from its text and hands it to `Inventory.said(key, value)`, which
# refuses to judge when the text and the inventory disagree. Here the features' numbers are tied to the shipped
# inventory ahead of any run: every `said` step's value in every feature, and the numbers scenario names carry
# for steps that take theirs from the inventory (the bake criteria: their evidence also names them).


def _said_steps() -> list[tuple[str, str, str, str]]:
    """(steps module, step pattern, inventory key, parameter) of every step that calls `<x>.said("key", param)`."""
    import ast

    out = []
    for path in sorted((REPO / "steps").glob("*.py")):
        for fn in ast.parse(path.read_text()).body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            patterns = [a.value for d in fn.decorator_list if isinstance(d, ast.Call)
                        for a in ast.walk(d) if isinstance(a, ast.Constant) and isinstance(a.value, str)
                        and d.args and a in ast.walk(d.args[0])]
            for call in ast.walk(fn):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "said"
                        and len(call.args) == 2 and isinstance(call.args[0], ast.Constant)
                        and isinstance(call.args[1], ast.Name)):
                    out += [(path.name, "".join(patterns), str(call.args[0].value), call.args[1].id)]
    return out


def _feature_steps():
    for sc in scenarios():
        for step in sc.node["steps"]:
            yield sc.feature, sc.name, step["text"]


def _said_problems(inv) -> list[str]:
    import parse

    problems, used = [], set()
    steps = list(_feature_steps())
    for module, pattern, key, param in _said_steps():
        compiled = parse.compile(pattern)
        for feature, name, text in steps:
            m = compiled.parse(text)
            if m is None:
                continue
            used.add((module, key))
            try:
                inv.said(key, m.named[param])
            except Exception as e:
                problems.append(f"{feature}: {name!r}: step {text!r}: {e}")
    problems += [f"steps/{m}: the value of {k} is parsed by a step no feature uses"
                 for m, _, k, _ in _said_steps() if (m, k) not in used]
    return problems


# (feature, scenario name with the number as \S+ words, the fragment the inventory's value makes)
NAMED_NUMBERS = [
    ("phase0_metrics.feature", r"The retention CronJob exists with schedule .+ and DRY_RUN=\S+",
     lambda inv: f"schedule {inv.retention.schedule} and {inv.retention.dry_run_env}={inv.retention.phase0_dry_run}"),
    ("phase0_infra_repo.feature", r"The Forgejo PVC autoresizes up to a \S+ cap",
     lambda inv: f"up to a {inv.bake.pvc_storage_limit} cap"),
    ("phase0_infra_repo.feature", r"The Forgejo integrity probe CronJob runs every \d+ minutes",
     lambda inv: f"every {inv.metrics.probe_interval_minutes} minutes"),
    ("phase2_bake.feature", r"The Forgejo integrity probe was never stale for more than .+",
     lambda inv: "more than an hour" if inv.metrics.probe_max_age_minutes == 60
     else f"more than {inv.metrics.probe_max_age_minutes} minutes"),
    ("phase2_bake.feature", r"The retention CronJob succeeded at least \d+ times",
     lambda inv: f"at least {inv.bake.min_retention_runs} times"),
    ("phase2_bake.feature", r"At least one full \S+ GC cycle elapsed inside the window",
     lambda inv: f"full {inv.bake.gc_weekday} GC cycle"),
    ("phase2_bake.feature", r"DRY_RUN flipped to false on day \d+ and .*",
     lambda inv: f"on day {inv.bake.dry_run_flip_day} and"),
    ("phase2_bake.feature", r"Bake exit verdict: every criterion green and \d+ days since the last dual-push",
     lambda inv: f"and {inv.bake.days} days since"),
    ("phase4_registry_vm.feature", r"registry-private's blob storage is freed .+ after the decommission",
     lambda inv: "a week after" if inv.registry_vm.storage_grace_days == 7
     else f"{inv.registry_vm.storage_grace_days} days after"),
]
# a step that names a value of the inventory without `said` (a generic step: any CronJob, any schedule)
NAMED_IN_STEPS = [
    ("phase0_infra_repo.feature", r"the monitoring stack's CronJob \"\S+\" runs on schedule \".+\"",
     lambda inv: f'CronJob "{inv.metrics.probe_cronjob}" runs on schedule "*/{inv.metrics.probe_interval_minutes} * * * *"'),
]


def _named_problems(inv) -> list[str]:
    import re

    problems = []
    names = [(sc.feature, sc.name) for sc in scenarios()]
    for feature, pattern, fragment in NAMED_NUMBERS:
        hits = [n for f, n in names if f == feature and re.fullmatch(pattern, n)]
        if len(hits) != 1:
            problems.append(f"{feature}: {len(hits)} scenario(s) named like {pattern!r} (want one)")
        elif fragment(inv) not in hits[0]:
            problems.append(f"{feature}: {hits[0]!r} does not say {fragment(inv)!r} (the inventory's value)")
    steps = list(_feature_steps())
    for feature, pattern, fragment in NAMED_IN_STEPS:
        hits = [t for f, _, t in steps if f == feature and re.fullmatch(pattern, t)]
        if not hits:
            problems.append(f"{feature}: no step like {pattern!r}")
        problems += [f"{feature}: step {t!r} does not say {fragment(inv)!r} (the inventory's value)"
                     for t in hits if fragment(inv) not in t]
    return problems


def test_every_number_in_the_features_is_the_inventorys():
    from phasegate import config

    inv = config.load(REPO / "phasegate.toml")
    assert _said_steps(), "no step parses a number it judges by (Inventory.said): the walk is broken"
    problems = _said_problems(inv) + _named_problems(inv)
    assert not problems, "\n".join(problems)


def test_the_meta_test_sees_a_drifted_number():
    import dataclasses

    from phasegate import config

    inv = config.load(REPO / "phasegate.toml")
    drifted = dataclasses.replace(
        inv, cluster=dataclasses.replace(inv.cluster, forgejo_memory="2Gi"),
        bake=dataclasses.replace(inv.bake, min_retention_runs=12, pvc_storage_limit="60Gi"),
        registry_vm=dataclasses.replace(inv.registry_vm, storage_grace_days=14),
        metrics=dataclasses.replace(inv.metrics, probe_interval_minutes=5))
    found = "\n".join(_said_problems(drifted) + _named_problems(drifted))
    for what in ("'1Gi' where the inventory's cluster.forgejo_memory is '2Gi'", "at least 12 times",
                 "storage_grace_days is 14", "'50Gi' where the inventory's bake.pvc_storage_limit",
                 "14 days after", "every 5 minutes", '"*/5 * * * *"'):
        assert what in found, (what, found)


def test_said_compares_as_the_inventory_writes_the_value():
    import pytest

    from phasegate import config
    from phasegate.verdict import Broken

    inv = config.load(REPO / "phasegate.toml")
    assert inv.said("registry_vm.breakglass.max_age_hours", 192.0) == 192.0  # a float key, parsed as a number
    assert inv.said("registry_vm.storage_grace_days", "7") == "7"
    assert inv.said("retention.phase0_dry_run", "true") == "true"
    assert inv.said("push_storm.enabled", "false") == "false"  # a bool key in its TOML spelling
    with pytest.raises(Broken, match="'1024Mi' where the inventory's cluster.forgejo_memory is '1Gi'"):
        inv.said("cluster.forgejo_memory", "1024Mi")  # said as the inventory says it, or not at all
    with pytest.raises(Broken, match="storage_grace_days"):
        inv.said("registry_vm.storage_grace_days", "a week")
