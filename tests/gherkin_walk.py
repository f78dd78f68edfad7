"""The one Gherkin walker of the suite's own tests: every scenario of features/ with its tags."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gherkin.parser import Parser

FEATURES = Path(__file__).resolve().parent.parent / "features"


@dataclass(frozen=True)
class ScenarioDoc:
    feature: str  # file name, e.g. phase2_bake.feature
    name: str
    tags: frozenset[str]  # feature and scenario tags, without "@"
    node: dict  # the parser's scenario node (steps, examples)


def scenarios(features: Path = FEATURES) -> Iterator[ScenarioDoc]:
    for path in sorted(features.glob("*.feature")):
        doc = Parser().parse(path.read_text())
        feature_tags = {t["name"].lstrip("@") for t in doc["feature"]["tags"]}
        for child in doc["feature"]["children"]:
            sc = child.get("scenario")
            if sc:
                tags = feature_tags | {t["name"].lstrip("@") for t in sc["tags"]}
                yield ScenarioDoc(path.name, sc["name"], frozenset(tags), sc)


def markers_of(selected: Iterator[ScenarioDoc] | list[ScenarioDoc]) -> set[str]:
    """Every tag carried by the given scenarios: what a `needed_by` marker list is matched against."""
    return set().union(*(s.tags for s in selected)) if selected else set()
