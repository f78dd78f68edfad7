"""Named lab faults: each one breaks the lab the way a real incident would.

A fault is a context manager factory taking the Lab: it breaks something on
entry and repairs it on exit, so one lab serves a whole fault matrix. Modules
of phasegate/lab register their faults with `@fault(...)`; the matrix in
tests/fault_matrix.toml names them.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    name: str
    component: str
    description: str
    make: Callable[..., AbstractContextManager]


FAULTS: dict[str, Fault] = {}

# modules whose import registers faults (kept in one list so `known()` is complete)
FAULT_MODULES = [
    "phasegate.lab.registries",
    "phasegate.lab.metrics",
    "phasegate.lab.vm",
    "phasegate.lab.github",
    "phasegate.lab.infra_checkout",
    "phasegate.lab.forgejo.repos",
    "phasegate.lab.forgejo.router_faults",
    "phasegate.lab.forgejo.auth_faults",
    "phasegate.lab.forgejo.blobs_faults",
    "phasegate.lab.forgejo.store_faults",
    "phasegate.lab.forgejo.packages_faults",
    "phasegate.lab.forgejo.metrics",
    "phasegate.lab.cluster",
]

# Lab states (e.g. "decommissioned") are built from parts each area registers with
# `@state_part(state, component=...)`; `apply(lab, state)` enters every part whose
# component runs in that lab, in registration order, and leaves them in reverse.
STATE_PARTS: dict[str, list[Fault]] = {}


def fault(name: str, *, component: str, description: str):
    def deco(fn):
        if name in FAULTS:
            raise ValueError(f"fault {name!r} registered twice")
        FAULTS[name] = Fault(name, component, description, contextlib.contextmanager(fn))
        return fn

    return deco


def state_part(state: str, *, component: str, description: str):
    def deco(fn):
        STATE_PARTS.setdefault(state, []).append(Fault(state, component, description, contextlib.contextmanager(fn)))
        return fn

    return deco


def known() -> dict[str, Fault]:
    for m in FAULT_MODULES:
        importlib.import_module(m)
    return FAULTS


@dataclass(frozen=True)
class RedCase:
    """A row of the fault matrix (tests/faults/*.toml): the gate a fault turns red, in which lab state."""

    fault: str
    scenario: str
    state: str
    expect: list[str]


def matrix(root=None) -> list[RedCase]:
    """The fault matrix of a source checkout (empty when the suite is installed without its tests)."""
    import tomllib
    from pathlib import Path

    root = Path(root) if root else Path(__file__).resolve().parents[2]
    out = []
    for path in sorted((root / "tests" / "faults").glob("*.toml")):
        for c in tomllib.loads(path.read_text()).get("case", []):
            out.append(RedCase(c["fault"], c["scenario"], c.get("state", ""), list(c.get("expect", []))))
    return out


@contextlib.contextmanager
def apply(lab, name: str):
    faults = known()
    if name in STATE_PARTS and name not in faults:
        with contextlib.ExitStack() as stack:
            for part in STATE_PARTS[name]:
                if part.component in lab:
                    stack.enter_context(part.make(lab))
            yield
        return
    if name not in faults:
        raise KeyError(f"unknown fault {name!r}; known: {', '.join(sorted(faults))}")
    f = faults[name]
    if f.component not in lab:
        raise RuntimeError(f"fault {name!r} needs lab component {f.component!r}, not started")
    with f.make(lab):
        yield
