"""The tag vocabulary of features/: a typo must not silently drop a gate from `-m phaseN`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.gherkin_walk import scenarios

REPO = Path(__file__).resolve().parent.parent
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
