"""The one Gherkin walker of the suite's own tests: every scenario of features/ with its tags, steps
and Examples rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gherkin.parser import Parser

FEATURES = Path(__file__).resolve().parent.parent / "features"


@dataclass(frozen=True)
class ScenarioDoc:
    feature: str  # file name, e.g. phase2_bake.feature
    name: str  # as written: an outline's name keeps its <placeholders>
    tags: frozenset[str]  # feature and scenario tags, without "@"
    node: dict  # the parser's scenario node (steps, examples)
    background: tuple[str, ...] = ()  # the feature's Background step texts, run before every scenario

    @property
    def steps(self) -> list[str]:
        """The scenario's own step texts (an outline's with their <placeholders>)."""
        return [st["text"] for st in self.node["steps"]]

    def rows(self) -> list[dict[str, str]]:
        """An outline's Examples rows, header -> cell; [] for a plain scenario."""
        out = []
        for ex in self.node.get("examples", []):
            header = [c["value"] for c in ex["tableHeader"]["cells"]] if ex.get("tableHeader") else []
            out += [dict(zip(header, [c["value"] for c in r["cells"]], strict=True)) for r in ex.get("tableBody", [])]
        return out

    def names(self) -> set[str]:
        """Every name the scenario runs under: its own, and an outline's once per Examples row."""
        out = {self.name}
        for row in self.rows():
            name = self.name
            for k, v in row.items():
                name = name.replace(f"<{k}>", v)
            out.add(name)
        return out


def scenarios(features: Path = FEATURES) -> Iterator[ScenarioDoc]:
    for path in sorted(features.glob("*.feature")):
        doc = Parser().parse(path.read_text())
        feature_tags = {t["name"].lstrip("@") for t in doc["feature"]["tags"]}
        children = doc["feature"]["children"]
        background = tuple(st["text"] for c in children if "background" in c for st in c["background"]["steps"])
        for child in children:
            for sc in [child.get("scenario")] + [c.get("scenario") for c in child.get("rule", {}).get("children", [])]:
                if sc:
                    tags = feature_tags | {t["name"].lstrip("@") for t in sc["tags"]}
                    yield ScenarioDoc(path.name, sc["name"], frozenset(tags), sc, background)


def outline(feature: str) -> ScenarioDoc:
    """The one Scenario Outline of a feature file (e.g. phase3_cutover.feature)."""
    (found,) = [s for s in scenarios() if s.feature == feature and s.node.get("examples")]
    return found


def markers_of(selected: Iterable[ScenarioDoc]) -> set[str]:
    """Every tag carried by the given scenarios: what a `needed_by` marker list is matched against."""
    return set().union(*(s.tags for s in selected))
