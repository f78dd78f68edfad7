"""The daily bake pipeline (.woodpecker/bake.yml): a named cron, the read-only bake, secrets from the inventory."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from phasegate import config

REPO = Path(__file__).resolve().parent.parent
PIPELINE = yaml.safe_load((REPO / ".woodpecker" / "bake.yml").read_text())


def _steps() -> list[dict]:
    steps = PIPELINE["steps"]
    return steps if isinstance(steps, list) else [dict(s, name=n) for n, s in steps.items()]


def _when(node) -> list[dict]:
    w = node.get("when", [])
    return w if isinstance(w, list) else [w]


def test_runs_only_on_its_named_cron():
    whens = _when(PIPELINE)
    assert whens, "the pipeline needs a workflow-level `when`"
    for w in whens:
        assert w.get("event") == "cron" or w.get("event") == ["cron"], w
        assert isinstance(w.get("cron"), str) and w["cron"], "name the cron, so other crons do not run the bake"


def test_installs_the_suite_and_runs_the_read_only_bake():
    commands = [c for s in _steps() for c in s.get("commands", [])]
    assert any("pip install" in c and "." in shlex.split(c)[-1:] for c in commands), commands
    runs = [shlex.split(c) for c in commands if "pytest" in c]
    assert runs, "no pytest command"
    argv = runs[0]
    after = argv[argv.index("pytest") + 1:]  # `python -m pytest -m EXPR`: the marker -m comes after pytest
    assert after[after.index("-m") + 1] == "phase2 and readonly", argv
    assert "--alluredir" in argv or any(a.startswith("--alluredir=") for a in argv)


def test_every_secret_comes_from_the_inventory_and_every_needed_one_is_given():
    inv = config.load(REPO / "phasegate.toml")
    given: dict[str, str] = {}
    for step in _steps():
        for var, value in (step.get("environment") or {}).items():
            if isinstance(value, dict):
                assert set(value) == {"from_secret"}, f"{step['name']}: {var} must come from from_secret only"
                given[var] = value["from_secret"]
            else:
                assert "token" not in var.lower() and "password" not in var.lower(), f"{var} set in clear text"
    assert given, "the bake needs its secrets"
    for var, secret in given.items():
        assert secret in inv.secrets, f"from_secret {secret!r} is not a [secrets] key of the inventory"
        assert inv.secrets[secret].env == var, f"{secret} must be exported as {inv.secrets[secret].env}, not {var}"
    needed = {k for k, ref in inv.secrets.items() if "phase2" in ref.needed_by}
    assert needed <= set(given.values()), f"secrets the phase2 gates need but the pipeline lacks: {needed - set(given.values())}"
    # and only those: the read-only bake is never handed a token it does not use (the cleanup token deletes)
    assert set(given.values()) <= needed, f"secrets the bake is given but never uses: {set(given.values()) - needed}"


def test_results_are_kept_also_when_the_bake_fails():
    keep = [s for s in _steps() if any("allure-results" in c for c in s.get("commands", [])) and "pytest" not in str(s)]
    assert keep, "a step must keep the Allure results"
    statuses = [w.get("status") for w in _when(keep[0])]
    assert any(isinstance(st, list) and {"success", "failure"} <= set(st) for st in statuses), statuses
