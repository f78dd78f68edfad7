"""What each module of the lab's split stand-ins may import, pinned the way go-containerregistry's
pkg/registry pins its dependencies (pkg/registry/depcheck_test.go @ 8066ab41: `AssertOnlyDependencies`,
the standard library and a named list).

The Forgejo stand-in (phasegate/lab/forgejo/), the Kubernetes stand-in (phasegate/lab/kube/) and the infra
checkout (phasegate/lab/infra_checkout/) are split by resource. The rules the table below holds:
- the wire (HTTP plumbing, the objects' grammar) imports nothing of phasegate; an area (blobs, manifests,
  packages; pods, workloads, jobs...) imports the wire and the areas it names, never a sibling area
  nor the module that composes them (router);
- only the router composes the areas; only `*_faults` modules and lab components (repos, cleanup, metrics,
  the infra checkout's __init__) import the lab's fault registry and its other components;
- the stand-ins never import the library's client of the same outside world (phasegate.forgejo,
  phasegate.kube): a stand-in written from its client would share its mistakes.
Imports under `if TYPE_CHECKING:` are for annotations only and are not counted.
Also pinned here: no lab class takes the name of a class of the library (`phasegate.config.Cluster` and the
lab's cluster component were both `Cluster`).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPLIT = ("phasegate/lab/forgejo", "phasegate/lab/kube", "phasegate/lab/infra_checkout")

F = "phasegate.lab.forgejo"
K = "phasegate.lab.kube"
LAB = "phasegate.lab"
FAULT_DEPS = {f"{LAB}.faults", f"{LAB}.registries", f"{LAB}.seed", f"{LAB}.procs"}

# module -> (phasegate modules it may import, third-party distributions it may import)
ALLOWED: dict[str, tuple[set[str], set[str]]] = {
    # the Forgejo stand-in
    f"{F}.wire": (set(), set()),
    f"{F}.knobs": (set(), set()),
    f"{F}.auth": ({f"{F}.wire", f"{F}.knobs"}, set()),
    f"{F}.store": ({f"{F}.wire", f"{LAB}.distribution"}, {"httpx"}),
    f"{F}.blobs": ({f"{F}.wire", f"{F}.knobs", f"{F}.auth", f"{F}.store"}, set()),
    f"{F}.manifests": ({f"{F}.wire", f"{F}.auth", f"{F}.store"}, set()),
    f"{F}.packages": ({f"{F}.wire", f"{F}.knobs", f"{F}.auth", f"{F}.store"}, set()),
    f"{F}.router": ({f"{F}.wire", f"{F}.knobs", f"{F}.auth", f"{F}.store", f"{F}.blobs", f"{F}.manifests",
                     f"{F}.packages", f"{LAB}.distribution"}, set()),
    F: ({f"{F}.router", f"{F}.knobs", f"{F}.store", f"{F}.wire"}, set()),
    f"{F}.router_faults": ({f"{LAB}.faults"}, set()),
    f"{F}.auth_faults": ({f"{LAB}.faults", f"{LAB}.registries"}, set()),
    f"{F}.blobs_faults": ({f"{LAB}.faults"}, set()),
    f"{F}.store_faults": ({f"{LAB}.faults", f"{LAB}.registries", f"{LAB}.seed"}, set()),
    f"{F}.packages_faults": (FAULT_DEPS, set()),
    # lab components mounted on or beside the stand-in
    f"{F}.repos": ({f"{F}.wire", f"{LAB}.faults", f"{LAB}.seed"}, set()),
    f"{F}.cleanup": ({"phasegate.config"}, set()),
    f"{F}.metrics": ({f"{LAB}.faults", f"{LAB}.procs", "phasegate.units"}, {"httpx", "yaml"}),
    # the Kubernetes stand-in
    f"{K}.objects": (set(), set()),
    f"{K}.store": ({f"{K}.objects"}, set()),
    f"{K}.controllers": (set(), set()),
    f"{K}.namespaces": ({f"{K}.objects"}, set()),
    f"{K}.admission": ({f"{K}.objects"}, set()),
    # the kubelet matches pull secrets as kubelet's keyring does: phasegate.cri holds those rules
    f"{K}.pods": ({f"{K}.objects", f"{LAB}.nodes", "phasegate.cri"}, set()),
    f"{K}.workloads": ({f"{K}.objects"}, set()),
    f"{K}.jobs": ({f"{K}.objects"}, set()),
    f"{K}.router": ({f"{K}.objects", f"{K}.store", f"{K}.controllers", f"{K}.namespaces", f"{K}.admission",
                     f"{K}.pods", f"{K}.workloads", f"{K}.jobs", f"{LAB}.nodes", f"{LAB}.procs"}, {"yaml"}),
    K: ({f"{K}.objects", f"{K}.pods", f"{K}.router"}, set()),
    # the infra checkout
    f"{LAB}.infra_checkout.render": (set(), set()),
    f"{LAB}.infra_checkout": ({f"{LAB}.faults", f"{LAB}.infra_checkout.render"}, set()),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def imports_of(source: str) -> set[str]:
    """Every module a source imports (top level and inside functions), `from pkg import mod` as pkg.mod,
    except under `if TYPE_CHECKING:`."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for a in child.names:
                    sub = f"{child.module}.{a.name}"
                    found.add(sub if child.module.startswith("phasegate") and _is_module(sub) else child.module)
            visit(child)

    visit(ast.parse(source))
    found.discard("__future__")
    return found


def violations(module: str, source: str) -> list[str]:
    own, third = ALLOWED[module]
    out = []
    for name in sorted(imports_of(source)):
        top = name.split(".")[0]
        if top == "phasegate":
            if name not in own:
                out.append(f"{module} imports {name}")
        elif top not in sys.stdlib_module_names and top not in third:
            out.append(f"{module} imports {name} (third party)")
    return out


def _split_modules() -> dict[str, Path]:
    return {_module_name(p): p for d in SPLIT for p in sorted((REPO / d).glob("*.py"))}


def test_every_split_module_is_pinned():
    assert set(_split_modules()) == set(ALLOWED)


def test_each_split_module_imports_only_what_it_may():
    bad = [v for module, path in _split_modules().items() for v in violations(module, path.read_text())]
    assert not bad, "; ".join(bad)


def test_the_check_sees_a_forbidden_import():
    """An area importing a sibling, the lab's registry of faults in a function, the client it stands in for."""
    src = ("from phasegate.lab.forgejo.manifests import Manifests\n"
           "def f():\n    from phasegate.lab import faults\n    import phasegate.forgejo\n"
           "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from phasegate.lab.forgejo.router import X\n")
    assert violations(f"{F}.blobs", src) == [f"{F}.blobs imports phasegate.forgejo",
                                              f"{F}.blobs imports phasegate.lab.faults",
                                              f"{F}.blobs imports phasegate.lab.forgejo.manifests"]
    assert violations(f"{F}.wire", "import httpx\n") == [f"{F}.wire imports httpx (third party)"]


def _classes(paths) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in paths:
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.ClassDef):
                out.setdefault(node.name, []).append(str(p.relative_to(REPO)))
    return out


def test_no_lab_class_takes_a_library_class_name():
    lib = _classes(p for p in (REPO / "phasegate").rglob("*.py") if "lab" not in p.relative_to(REPO / "phasegate").parts[:1])
    lab = _classes((REPO / "phasegate" / "lab").rglob("*.py"))
    clashes = {name: lib[name] + lab[name] for name in set(lib) & set(lab)}
    assert not clashes, clashes
