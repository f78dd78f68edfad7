"""Steps are thin (issue #17, docs/design.md "Steps"): parse, call one library function, assert.

Read from the source of steps/*.py with `ast`, nothing imported:
- a step body (decorators and docstring excluded, blank and comment-only lines not counted) is at most
  MAX_STEP_LINES lines;
- nothing in steps/ judges: no `raise`, no verdict (GateFailed, Broken and its kinds, Pending, NotJudged,
  `check`) named, caught or imported, no verdict text built (`expected=` / `seen=` keywords): judging
  lives in phasegate/ (modules without pytest, one per outside world, judges receive their clients);
- a step module (every steps/*.py but common.py and the test_*.py bindings) holds only steps and fixtures:
  shared plumbing (cleanup helpers, shared fixtures) lives in steps/common.py, state types in phasegate/;
- step state passed on by `target_fixture` is a dataclass (or a client object), never a tuple, dict or
  list literal;
- no copied steps: two steps with the same body (names aside) are one step with a parameter.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STEPS = REPO / "steps"
MAX_STEP_LINES = 12
STEP_DECORATORS = {"given", "when", "then", "step"}
VERDICT_NAMES = {"GateFailed", "Broken", "Unreachable", "TimedOut", "ServerError", "AuthError", "WriteRefused",
                 "Pending", "NotJudged", "check"}
VERDICT_KEYWORDS = {"expected", "seen"}
PLUMBING = "common.py"  # shared step plumbing: fixtures and cleanup helpers (no steps of its own needed)


@dataclass(frozen=True)
class Problem:
    where: str  # file:line function
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _decorator_name(d: ast.expr) -> str:
    f = d.func if isinstance(d, ast.Call) else d
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _is_step(fn: ast.FunctionDef) -> bool:
    return any(_decorator_name(d) in STEP_DECORATORS for d in fn.decorator_list)


def _is_fixture(fn: ast.FunctionDef) -> bool:
    return any(_decorator_name(d) == "fixture" for d in fn.decorator_list)


def _target_fixture(fn: ast.FunctionDef) -> str:
    for d in fn.decorator_list:
        if isinstance(d, ast.Call) and _decorator_name(d) in STEP_DECORATORS:
            for k in d.keywords:
                if k.arg == "target_fixture" and isinstance(k.value, ast.Constant):
                    return str(k.value.value)
    return ""


def _body(fn: ast.FunctionDef) -> list[ast.stmt]:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    return body


def body_lines(fn: ast.FunctionDef, source_lines: list[str]) -> int:
    """Lines of the body without its docstring, blank lines and comment-only lines."""
    body = _body(fn)
    if not body:
        return 0
    first, last = body[0].lineno, max(getattr(s, "end_lineno", s.lineno) or s.lineno for s in body)
    lines = source_lines[first - 1:last]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def _normalised(fn: ast.FunctionDef) -> str:
    """The body with every name and string replaced: two steps that differ by a word compare equal."""

    class Blank(ast.NodeTransformer):
        def visit_Name(self, node):
            return ast.copy_location(ast.Name(id="_", ctx=node.ctx), node)

        def visit_Constant(self, node):
            return ast.copy_location(ast.Constant(value=type(node.value).__name__), node)

        def visit_Attribute(self, node):
            self.generic_visit(node)
            return node

    module = ast.Module(body=[Blank().visit(ast.parse(ast.unparse(s))) for s in _body(fn)], type_ignores=[])
    return ast.dump(module, annotate_fields=False)


def _verdict_problems(tree: ast.AST, name: str) -> list[Problem]:
    out = []
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Raise):
            out.append(Problem(where, "raises (a verdict or an error is the library's to raise)"))
        elif isinstance(node, ast.Name) and node.id in VERDICT_NAMES:
            out.append(Problem(where, f"names the verdict {node.id} (judging belongs in phasegate/)"))
        elif isinstance(node, ast.Attribute) and node.attr in VERDICT_NAMES:
            out.append(Problem(where, f"names the verdict {node.attr} (judging belongs in phasegate/)"))
        elif isinstance(node, ast.ImportFrom) and node.module == "phasegate.verdict":
            out.append(Problem(where, "imports phasegate.verdict (judging belongs in phasegate/)"))
        elif isinstance(node, ast.keyword) and node.arg in VERDICT_KEYWORDS:
            out.append(Problem(where, f"builds verdict text ({node.arg}=...): the judge's job"))
    return out


def problems_of(source: str, filename: str) -> list[Problem]:
    tree = ast.parse(source)
    lines = source.splitlines()
    out = sorted(_verdict_problems(tree, filename), key=lambda p: int(p.where.split(":")[1]))
    steps = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and filename != PLUMBING:
            out.append(Problem(f"{filename}:{node.lineno} {node.name}",
                               "a class in a step module (step state and judges live in phasegate/)"))
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        where = f"{filename}:{node.lineno} {node.name}"
        if _is_step(node):
            steps.append(node)
            n = body_lines(node, lines)
            if n > MAX_STEP_LINES:
                out.append(Problem(where, f"step body of {n} lines (at most {MAX_STEP_LINES})"))
            if _target_fixture(node):
                out += _literal_state(node, where, repr(_target_fixture(node)))
        elif _is_fixture(node):
            out += _literal_state(node, where, f"fixture {node.name!r}")
        elif filename != PLUMBING:
            out.append(Problem(where, "a helper in a step module (shared plumbing goes to steps/common.py, "
                                      "knowledge to phasegate/)"))
    return out + _copies(steps, filename)


def _literal_state(fn: ast.FunctionDef, where: str, what: str) -> list[Problem]:
    """State handed on as a tuple, dict or list literal (returned or yielded) instead of a dataclass."""
    out = []
    for r in ast.walk(fn):
        if isinstance(r, ast.Return | ast.Yield) and isinstance(r.value, ast.Tuple | ast.Dict | ast.List):
            out.append(Problem(where, f"passes {what} on as a {type(r.value).__name__.lower()} "
                                      "(step state is a dataclass)"))
    return out


def _copies(steps: list[ast.FunctionDef], filename: str) -> list[Problem]:
    seen: dict[str, str] = {}
    out = []
    for fn in steps:
        key = _normalised(fn)
        if len(_body(fn)) > 1 and key in seen:  # one-call steps are alike by design; longer ones are copies
            out.append(Problem(f"{filename}:{fn.lineno} {fn.name}", f"the same body as {seen[key]} "
                                                                   "(one step with a parameter)"))
        seen.setdefault(key, fn.name)
    return out


def _modules():
    for path in sorted(STEPS.glob("*.py")):
        if not path.name.startswith("test_"):
            yield path


def test_every_step_is_thin():
    problems = [p for path in _modules() for p in problems_of(path.read_text(), path.name)]
    assert not problems, "steps that are not thin:\n  " + "\n  ".join(map(str, problems))


def test_no_two_step_modules_hold_the_same_step():
    seen: dict[str, str] = {}
    copies = []
    for path in _modules():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and _is_step(node) and len(_body(node)) > 1:
                key = _normalised(node)
                if key in seen:
                    copies.append(f"{path.name} {node.name} = {seen[key]}")
                seen.setdefault(key, f"{path.name} {node.name}")
    assert not copies, copies


def test_the_meta_test_sees_a_fat_judging_step():
    bad = textwrap.dedent('''
        from pytest_bdd import given, then
        from phasegate.verdict import GateFailed, check

        class Held:
            pass

        def _helper(x):
            return x

        @pytest.fixture
        def pair(inventory):
            yield inventory.a, inventory.b

        @given("a thing", target_fixture="thing")
        def thing(inventory):
            """Docstrings do not count."""
            return inventory.a, inventory.b

        @then("it is fine")
        def fine(thing):
            if not thing:
                raise GateFailed(expected="a", seen="b", where="c")
            check(thing, expected="x", seen="y", where="z")
            a = 1
            b = 2
            c = 3
            d = 4
            e = 5
            f = 6
            g = 7
            h = 8
            i = 9
            return a + b + c + d + e + f + g + h + i

        @then("it is also fine")
        def fine_too(thing):
            if not thing:
                raise GateFailed(expected="a", seen="b", where="q")
            check(thing, expected="x", seen="y", where="w")
            a = 1
            b = 2
            c = 3
            d = 4
            e = 5
            f = 6
            g = 7
            h = 8
            i = 9
            return a + b + c + d + e + f + g + h + i
    ''')
    found = "\n".join(map(str, problems_of(bad, "bad.py")))
    for what in ("raises", "names the verdict GateFailed", "names the verdict check", "imports phasegate.verdict",
                 "builds verdict text (expected=", "builds verdict text (seen=", "step body of 13 lines",
                 "a class in a step module", "a helper in a step module", "passes 'thing' on as a tuple",
                 "passes fixture 'pair' on as a tuple",
                 "the same body as fine"):
        assert what in found, (what, found)
    good = textwrap.dedent('''
        from pytest_bdd import given, then
        from phasegate import cluster

        @given("a thing", target_fixture="thing")
        def thing(inventory):
            """Docstrings do not count."""
            # nor do comments
            return cluster.Thing.of(inventory)

        @then("it is fine")
        def fine(thing, kube):
            cluster.judge(kube, thing)
    ''')
    assert problems_of(good, "good.py") == []
