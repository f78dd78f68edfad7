"""Named lab faults: each one breaks the lab the way a real incident would.

A fault is a context manager factory taking the Lab: it breaks something on
entry and repairs it on exit, so one lab serves a whole fault matrix. Modules
of phasegate/lab register their faults with `@fault(...)`; the matrix in
tests/fault_matrix.toml names them.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from typing import Callable, ContextManager


@dataclass(frozen=True)
class Fault:
    name: str
    component: str
    description: str
    make: Callable[..., ContextManager]


FAULTS: dict[str, Fault] = {}

# modules whose import registers faults (kept in one list so `known()` is complete)
FAULT_MODULES = [
    "phasegate.lab.registries",
    "phasegate.lab.vm",
    "phasegate.lab.github",
    "phasegate.lab.forgejo_faults",
]

# Named lab states (e.g. "decommissioned") are composed of parts, one per area:
# each area registers its part with `@state_part(...)`; entering the state enters
# every part whose component runs in the lab (in registration order), and leaving
# repairs them in reverse. A state may also be registered whole with `@fault`.
STATE_PARTS: dict[str, list[Fault]] = {}


def fault(name: str, *, component: str, description: str):
    def deco(fn):
        if name in FAULTS:
            raise ValueError(f"fault {name!r} registered twice")
        FAULTS[name] = Fault(name, component, description, contextlib.contextmanager(fn))
        return fn

    return deco


def state_part(state: str, *, component: str, description: str):
    """Register one area's contribution to the lab state `state`."""
    def deco(fn):
        STATE_PARTS.setdefault(state, []).append(
            Fault(f"{state}:{fn.__module__}.{fn.__name__}", component, description, contextlib.contextmanager(fn)))
        return fn

    return deco


def known() -> dict[str, Fault]:
    for m in FAULT_MODULES:
        importlib.import_module(m)
    return FAULTS


@contextlib.contextmanager
def apply(lab, name: str):
    faults = known()
    parts = [p for p in STATE_PARTS.get(name, []) if p.component in lab]
    if name not in faults and name not in STATE_PARTS:
        raise KeyError(f"unknown fault {name!r}; known: {', '.join(sorted(faults))}")
    with contextlib.ExitStack() as stack:
        if name in faults:
            f = faults[name]
            if f.component not in lab:
                raise RuntimeError(f"fault {name!r} needs lab component {f.component!r}, not started")
            stack.enter_context(f.make(lab))
        for part in parts:
            stack.enter_context(part.make(lab))
        yield
