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
