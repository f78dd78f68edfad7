"""`--dist loadgroup` that works with pytest 9.2: tests marked `xdist_group` run on one worker.

pytest-xdist 3.8 groups by renaming each marked item's node id to `<id>@<group>` in the worker and
splitting the suffix off in the controller. pytest 9.2 keeps node ids in a structured `NodeId`, so
the rename is lost and every test is scheduled on its own: a module fixture meant to be built once is
built on every worker that gets one of its tests (pytest-dev/pytest-xdist#1386, open; fix proposed in
#1388). Here the workers write `{node id: group}` next to their base directories when they have
collected, and the controller's scheduler (xdist's public `pytest_xdist_make_scheduler` hook) reads
it back: the same grouping, without touching node ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

GROUPS_DIR = "xdist-groups"


def group_of(item: pytest.Item) -> str | None:
    """The work unit an item belongs to: every `xdist_group` name on it, as xdist joins them."""
    names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
    return "_".join(sorted(names)) or None


def _groups_dir(config: pytest.Config, worker: bool) -> Path | None:
    base = config.option.basetemp
    if not base:
        return None
    # a worker's base is `<controller base>/popen-gwN` (xdist's setup_config)
    return (Path(base).parent if worker else Path(base)) / GROUPS_DIR


@pytest.hookimpl(trylast=True)  # after every hook that adds a group mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or config.getvalue("dist") != "no" or not config.getvalue("loadgroup"):
        return
    out = _groups_dir(config, worker=True)
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    groups = {item.nodeid: g for item in items if (g := group_of(item))}
    slow = [item.nodeid for item in items if item.get_closest_marker("slow")]
    tmp = out / f".{workerinput['workerid']}.json"
    tmp.write_text(json.dumps({"groups": groups, "slow": slow}))
    tmp.rename(out / f"{workerinput['workerid']}.json")  # whole or absent for the controller


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    groups_dir = _groups_dir(config, worker=False)

    class GroupedScheduling(LoadScopeScheduling):
        """xdist's LoadScopeScheduling: a marked test's scope is its group, any other test its own.
        Scopes holding a test marked `slow` go out first, then the rest largest first (xdist's reorder):
        the longest work starts at once instead of lengthening the end of the run."""

        groups: dict[str, str] | None = None
        slow: set[str] = set()
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # first called in schedule(), after every worker has collected
                self.groups, self.slow = {}, set()
                for f in sorted(groups_dir.glob("*.json")) if groups_dir else []:
                    found = json.loads(f.read_text())
                    self.groups.update(found["groups"])
                    self.slow.update(found["slow"])
            return self.groups.get(nodeid, nodeid)

        def _assign_work_unit(self, node) -> None:
            if not self.ordered:  # schedule() has filled the queue and hands out the first units now
                self.ordered = True
                slow_first = sorted(self.workqueue.items(), key=lambda unit: not (set(unit[1]) & self.slow))
                self.workqueue.clear()
                self.workqueue.update(slow_first)
            super()._assign_work_unit(node)

    return GroupedScheduling(config, log)


def on_one_worker_per_fault(fault: str) -> pytest.MarkDecorator:
    """Tests that apply the same lab fault run on one worker: a bake history's render and TSDB blocks are
    built once per lab, and the fault matrix runs every scenario one fault turns red in one gate run."""
    return pytest.mark.xdist_group(f"fault:{fault}")
