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
    "phasegate.lab.forgejo_faults",
    "phasegate.lab.cluster",
]


def fault(name: str, *, component: str, description: str):
    def deco(fn):
        if name in FAULTS:
            raise ValueError(f"fault {name!r} registered twice")
        FAULTS[name] = Fault(name, component, description, contextlib.contextmanager(fn))
        return fn

    return deco


# Composable lab states: each area contributes its part of a state (e.g. what
# "decommissioned" means for the cluster, the registry VM, the infra checkout)
# with `@state_part(...)`; `lab.state(name)` applies every part whose component
# runs in the lab, in registration order, and repairs them in reverse.
STATE_PARTS: dict[str, list[Fault]] = {}


def state_part(state: str, *, component: str, description: str):
    def deco(fn):
        parts = STATE_PARTS.setdefault(state, [])
        parts.append(Fault(f"{state}:{fn.__name__}", component, description, contextlib.contextmanager(fn)))
        if state not in FAULTS:
            FAULTS[state] = Fault(state, "", f"lab state {state!r} (composed of its parts)", _composite(state))
        return fn

    return deco


def _composite(state: str):
    @contextlib.contextmanager
    def apply_parts(lab):
        with contextlib.ExitStack() as stack:
            for part in STATE_PARTS.get(state, []):
                if part.component in lab:
                    stack.enter_context(part.make(lab))
            yield

    return apply_parts


def known() -> dict[str, Fault]:
    for m in FAULT_MODULES:
        importlib.import_module(m)
    return FAULTS


@contextlib.contextmanager
def apply(lab, name: str):
    faults = known()
    if name not in faults:
        raise KeyError(f"unknown fault {name!r}; known: {', '.join(sorted(faults))}")
    f = faults[name]
    if f.component and f.component not in lab:
        raise RuntimeError(f"fault {name!r} needs lab component {f.component!r}, not started")
    with f.make(lab):
        yield
