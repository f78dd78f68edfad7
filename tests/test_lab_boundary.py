"""The lab is beside the library, not in it (go-containerregistry's pkg/registry pins its imports the same way).

- Nothing the gates run imports `phasegate.lab`: the library (`phasegate/`), the steps and the root conftest
  never do; only the `phasegate lab ...` command does, inside its own functions, so `phasegate report` or a
  gate run never loads a stand-in.
- The wheel the bake job could install from this checkout holds no `phasegate/lab/` file.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests import REPO

LAB_COMMAND_FUNCS = ("_lab_",)  # cli.py's `phasegate lab ...` handlers are named _lab_<verb>


def _lab_imports(path: Path) -> list[tuple[int, str]]:
    """(line, enclosing function or '<module>') of every import of phasegate.lab in a file."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            mods: list[str] = []
            if isinstance(child, ast.Import):
                mods = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module:
                mods = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
            if any(m == "phasegate.lab" or m.startswith("phasegate.lab.") for m in mods):
                found.append((child.lineno, func))
            visit(child, name)

    visit(tree, "<module>")
    return found


def _gate_side_files() -> list[Path]:
    lib = [p for p in (REPO / "phasegate").rglob("*.py") if "lab" not in p.relative_to(REPO / "phasegate").parts[:1]]
    return sorted(lib + list((REPO / "steps").rglob("*.py")) + [REPO / "conftest.py"])


def test_only_the_lab_command_imports_the_lab():
    offenders = []
    for path in _gate_side_files():
        for line, func in _lab_imports(path):
            allowed = path.name == "cli.py" and func.startswith(LAB_COMMAND_FUNCS)
            if not allowed:
                offenders.append(f"{path.relative_to(REPO)}:{line} (in {func})")
    assert not offenders, "the lab is imported outside `phasegate lab`: " + ", ".join(offenders)


def test_the_boundary_check_sees_an_import(tmp_path):
    """The check above can fail: a module-level and a nested import are both found."""
    bad = tmp_path / "bad.py"
    bad.write_text("import phasegate.lab.core\n\ndef f():\n    from phasegate.lab import metrics\n")
    assert _lab_imports(bad) == [(1, "<module>"), (4, "f")]


@pytest.mark.slow
def test_the_wheel_holds_no_lab(tmp_path):
    """Built from the tracked files only (a stale egg-info in the checkout would list the lab as sources)."""
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True,
                           timeout=60).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    out = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("phasegate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("phasegate/") and n.endswith("oci.py") for n in names), names
    lab = [n for n in names if n.startswith("phasegate/lab/")]
    assert not lab, f"the wheel ships the lab: {lab[:5]}"
