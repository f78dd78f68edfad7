"""Bad input: a broken inventory or bad command-line arguments stop the run with one clear line.

Inventory errors: `config.load` raises InventoryError (one line naming the
key), and a gate run (`pytest -m phase0 --inventory bad.toml`) stops as a
pytest usage error with that line and no traceback. CLI arguments: exit 2,
one line on stderr.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from phasegate import config
from phasegate.cli import build_parser
from tests import REPO

SHIPPED = tomllib.loads(config.DEFAULT_INVENTORY.read_text())

pytestmark = pytest.mark.timeout(120)


def _set(path: str, value):
    def mutate(raw):
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[last] = value

    return mutate


def _delete(path: str):
    def mutate(raw):
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[p]
        del node[last]

    return mutate


def _duplicate_project(raw):
    raw["projects"].append(copy.deepcopy(raw["projects"][0]))


# name -> (mutation of the shipped inventory, words the one line must contain)
INVENTORY_ERRORS = {
    "unknown-top-level-key": (_set("timeoutz", {"read": 1}), ["unknown key", "'timeoutz'"]),
    "unknown-nested-key": (_set("forgejo.ownr", "viktor"), ["unknown key", "'forgejo.ownr'"]),
    "number-is-a-string": (_set("timeouts.read", "fast"), ["timeouts.read", "must be a number"]),
    "string-is-a-number": (_set("forgejo.owner", 5), ["forgejo.owner", "must be a str"]),
    "bool-is-a-string": (_set("projects.0.cutover", "yes"), ["projects[0].cutover", "must be a bool"]),
    "list-is-a-string": (_set("secrets.forgejo_push_token.needed_by", "phase0"), ["needed_by", "must be a list"]),
    "table-is-a-string": (_set("forgejo.pusher", "ci-pusher"), ["forgejo.pusher", "must be a table"]),
    "missing-key": (_delete("forgejo.owner"), ["missing key", "'forgejo.owner'"]),
    "url-without-scheme": (_set("forgejo.url", "forgejo.example.test"), ["forgejo.url", "absolute http(s) URL"]),
    "url-other-scheme": (_set("private_registry.url", "ftp://registry.test"), ["private_registry.url", "http(s)"]),
    "url-without-host": (_set("forgejo.url", "https://"), ["forgejo.url"]),
    "url-unparseable": (_set("forgejo.url", "http://[::1"), ["forgejo.url", "URL"]),
    "project-listed-twice": (_duplicate_project, ["projects[", "listed twice"]),
    "secret-reference-unknown": (_set("forgejo.pusher.secret", "no_such_secret"), ["forgejo.pusher.secret", "no_such_secret"]),
    "zero-timeout": (_set("timeouts.total", 0), ["timeouts.total", "more than 0"]),
    "negative-retries": (_set("timeouts.retries", -1), ["timeouts.retries"]),
}


def write_inventory(tmp_path: Path, name: str) -> Path:
    raw = copy.deepcopy(SHIPPED)
    mutate, _ = INVENTORY_ERRORS[name]
    mutate(raw)
    path = tmp_path / f"{name}.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    assert "Traceback" not in text
    return lines[0]


def test_the_shipped_inventory_loads():
    config.load(config.DEFAULT_INVENTORY)


@pytest.mark.parametrize("name", list(INVENTORY_ERRORS))
def test_inventory_error_is_one_line_naming_the_key(tmp_path, name):
    path = write_inventory(tmp_path, name)
    with pytest.raises(config.InventoryError) as e:
        config.load(path)
    line = one_line(str(e.value))
    for word in INVENTORY_ERRORS[name][1]:
        assert word in line, f"{line!r} lacks {word!r}"
    assert str(path) in line, "the line names the file"


def test_inventory_not_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("name = \n[forgejo\n")
    with pytest.raises(config.InventoryError) as e:
        config.load(path)
    assert "not valid TOML" in one_line(str(e.value))


def test_inventory_not_found(tmp_path):
    with pytest.raises(config.InventoryError) as e:
        config.load(tmp_path / "nowhere.toml")
    assert "file not found" in one_line(str(e.value))


def test_missing_secret_names_its_variable(monkeypatch):
    inv = config.load(config.DEFAULT_INVENTORY)
    ref = inv.secrets["forgejo_push_token"]
    monkeypatch.delenv(ref.env, raising=False)
    with pytest.raises(config.InventoryError) as e:
        inv.secret("forgejo_push_token")
    assert ref.env in one_line(str(e.value))
    assert inv.missing_secrets({"phase0"}) and all(" (set PHASEGATE_" in x for x in inv.missing_secrets({"phase0"}))


# -- the same through a gate run: a pytest usage error, one line, no traceback ----------


def _gates(args: list[str], env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PHASEGATE_")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.netguard", "-p", "no:cacheprovider", *args],
                          cwd=cwd, env=e, capture_output=True, text=True, timeout=110)


@pytest.mark.parametrize("name", ["unknown-nested-key", "number-is-a-string", "url-without-scheme",
                                  "project-listed-twice", "secret-reference-unknown"])
def test_gate_run_with_a_bad_inventory_is_one_line(tmp_path, name):
    path = write_inventory(tmp_path, name)
    p = _gates(["-m", "phase0", f"--inventory={path}"])
    assert p.returncode == pytest.ExitCode.USAGE_ERROR, p.stdout + p.stderr
    line = one_line(p.stderr + p.stdout)
    assert line.startswith("ERROR: ") and all(w in line for w in INVENTORY_ERRORS[name][1]), line


def test_gate_run_with_a_missing_inventory_is_one_line(tmp_path):
    p = _gates(["-m", "phase0", f"--inventory={tmp_path / 'nowhere.toml'}"])
    assert p.returncode == pytest.ExitCode.USAGE_ERROR
    assert "file not found" in one_line(p.stderr + p.stdout)


def test_inventory_path_as_a_separate_word_is_one_line(tmp_path):
    """`--inventory PATH` (a space) makes pytest take PATH for the tests' root before the plugin loads:
    without the plugin's check, the gates' collection breaks with 15 tracebacks."""
    path = tmp_path / "inventory.toml"
    path.write_text((REPO / "phasegate.toml").read_text())
    p = _gates(["-m", "phase0", "--inventory", str(path), "--collect-only"])
    assert p.returncode == pytest.ExitCode.USAGE_ERROR, p.stdout + p.stderr
    assert "--inventory=PATH" in one_line(p.stderr + p.stdout)


def test_gate_run_with_a_missing_secret_is_one_line(tmp_path):
    """A selected gate that needs an unset secret stops the run at start-up (before any gate runs)."""
    (tmp_path / "test_gate.py").write_text(
        "import pytest\n\n@pytest.mark.phase0\ndef test_needs_the_push_token():\n    raise AssertionError('gate-body-ran')\n")
    p = _gates(["-m", "phase0", "--inventory", str(config.DEFAULT_INVENTORY), str(tmp_path / "test_gate.py"),
                "--rootdir", str(tmp_path), "-c", os.devnull], env={"PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert p.returncode == pytest.ExitCode.USAGE_ERROR, p.stdout + p.stderr
    # collection already started, so pytest's session header is on stdout; the verdict is stderr's one line
    assert "Traceback" not in p.stdout and "gate-body-ran" not in p.stdout
    line = one_line(p.stderr)
    assert "missing secrets" in line and "PHASEGATE_FORGEJO_PUSH_TOKEN" in line


# -- the phasegate command: exit 2, one line -----------------------------------------------


def _subcommands() -> list[list[str]]:
    """Every (sub)command path of the CLI, found from the parser itself (new commands are covered)."""
    import argparse

    out: list[list[str]] = []

    def walk(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out.append(prefix + [name])
                    walk(sub, prefix + [name])

    walk(build_parser(), [])
    return out


BAD_ARGS = [
    [],
    ["no-such-command"],
    ["lab"],
    ["lab", "nope"],
    ["integrity"],
    ["integrity", "https://127.0.0.1:1", "--mode", "deep"],
    ["integrity", "https://127.0.0.1:1", "--concurrency", "0"],
    ["integrity", "https://127.0.0.1:1", "--concurrency", "many"],
    ["integrity", "https://127.0.0.1:1", "--read-timeout", "-1"],
    ["integrity", "registry.example.test"],
    ["integrity", "https://127.0.0.1:1", "--username", "u"],
    ["integrity", "https://127.0.0.1:1", "--username", "u", "--password-env", "PHASEGATE_TEST_UNSET_VARIABLE"],
    ["integrity", "https://127.0.0.1:1", "--ca-bundle", "/nonexistent/ca.pem"],
] + [path + ["--no-such-option"] for path in _subcommands()]


@pytest.mark.parametrize("argv", BAD_ARGS, ids=lambda a: " ".join(a) or "(none)")
def test_cli_bad_arguments_exit_2_one_line(argv, capsys, monkeypatch):
    from phasegate.cli import main

    monkeypatch.delenv("PHASEGATE_TEST_UNSET_VARIABLE", raising=False)
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    line = one_line(err)
    assert line.startswith("phasegate"), line


def test_console_script_bad_arguments_no_traceback():
    p = subprocess.run([sys.executable, "-m", "phasegate.cli", "integrity", "--concurrency", "x"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    one_line(p.stderr)
