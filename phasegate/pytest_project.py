"""`--project NAME`: every gate whose subject is that project, in every phase.

A gate's subject is the `project` column of its outline's Examples row (the
inventory's [[projects]] name): the Phase 1 dual-push and pipeline rows, the
break-glass copies of infra-ci, the Phase 3 cutover, stack, pipeline, CLAUDE.md
and GitHub-archive rows. Selection is by that value, never by words in a test
id (`-k beads-server` misses `beadboard`'s archive; `-k infra` matches
infra-ci and the infra repository's gates alike). Combine with `-m phaseN`.
"""

from __future__ import annotations

import pytest

from phasegate.pytest_report import _params


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("phasegate").addoption(
        "--project", action="append", default=[], metavar="NAME",
        help="run only the gates whose subject is project NAME ([[projects]] name; repeatable)")


def subject(item: pytest.Item) -> str:
    """The project a gate is about ('' for gates about no single project)."""
    return str(_params(item).get("project", ""))


def select(items: list, wanted: set[str]) -> tuple[list, list]:
    keep = [i for i in items if subject(i) in wanted]
    return keep, [i for i in items if subject(i) not in wanted]


@pytest.hookimpl(trylast=True)  # after phasegate's plugin has read the inventory
def pytest_configure(config: pytest.Config) -> None:
    wanted = set(config.getoption("--project") or [])
    if not wanted:
        return
    from phasegate.pytest_plugin import _INVENTORY

    known = [p.name for p in config.stash[_INVENTORY].projects]
    unknown = sorted(wanted - set(known))
    if unknown:
        raise pytest.UsageError(f"--project {', '.join(unknown)}: no such project in the inventory "
                                f"(known: {', '.join(known)})")


@pytest.hookimpl(trylast=True)  # after -m / -k
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    wanted = set(config.getoption("--project") or [])
    if not wanted:
        return
    keep, drop = select(items, wanted)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep
