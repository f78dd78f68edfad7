"""The gate fork server runs `python -m pytest` as a fresh interpreter would: asserts rewritten in the
plugins and tests it loads, the request's directory, environment and streams, the exit code or the
signal, a timeout that kills the run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from tests import REPO
from tests.harness import ForkServer, run_pytest

PLUGIN = """
import os
import pytest

@pytest.fixture
def answer():
    seen = {"answer": 41}
    assert seen["answer"] == 42
"""
TESTS = """
import os
import signal

def test_uses_the_plugin(answer):
    pass

def test_sees_its_environment_and_directory(tmp_path):
    assert os.environ["FORKED_RUN_MARK"] == "seen" and os.getcwd() == os.environ["FORKED_RUN_CWD"]
    print("said on stdout")

def test_killed():
    if os.environ.get("KILL_ME"):
        os.kill(os.getpid(), signal.SIGKILL)

def test_sleeps():
    if os.environ.get("SLEEP_ME"):
        import time
        time.sleep(60)
"""


@pytest.fixture(scope="module")
def server():
    s = ForkServer()
    yield s
    s.stop()


@pytest.fixture
def project(tmp_path):
    (tmp_path / "the_plugin.py").write_text(PLUGIN)
    (tmp_path / "test_forked.py").write_text(TESTS)
    env = {**os.environ, "FORKED_RUN_MARK": "seen", "FORKED_RUN_CWD": str(tmp_path)}
    return tmp_path, env


def _args(*extra: str) -> list[str]:
    return ["-p", "the_plugin", "-p", "no:cacheprovider", "-q", *extra]


def test_the_server_imports_nothing_pytest_rewrites_but_through_pytest():
    out = subprocess.run([sys.executable, "-m", "tests.gate_forkserver", "--preloaded"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_forked_run_in_the_repository_collects_as_a_fresh_one(server):
    # phasegate, the conftest and the steps come preloaded here (rewritten by pytest's hook in the server); the
    # default inventory's gates are collected, then refused for their missing secrets, before any connection
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASEGATE_")}
    args = ["-p", "tests.netguard", "-p", "no:cacheprovider", "--co", "-q", "-m", "phase0"]
    forked = server.run(args, REPO, env, timeout=120)
    fresh = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120)
    def timeless(out: str) -> str:
        return re.sub(r" in \d+\.\d+s", " in Ns", out)

    assert forked.returncode == fresh.returncode and "tests collected" in forked.stdout, forked.stdout + forked.stderr
    assert (timeless(forked.stdout), forked.stderr) == (timeless(fresh.stdout), fresh.stderr)
    assert "cannot be rewritten" not in forked.stdout + forked.stderr


def test_a_forked_run_is_the_runs_pytest_with_rewritten_asserts(server, project):
    cwd, env = project
    forked = server.run(_args("-k", "plugin or environment"), cwd, env, timeout=120)
    fresh = subprocess.run([sys.executable, "-m", "pytest", *_args("-k", "plugin or environment")], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=120)
    assert forked.returncode == fresh.returncode == 1, forked.stdout + forked.stderr
    # the plugin's assert is rewritten (its operands shown), and nothing was imported too early to be
    for out in (forked.stdout, fresh.stdout):
        assert "assert 41 == 42" in out and "1 passed, 2 deselected, 1 error" in out, out
    assert "cannot be rewritten" not in forked.stdout + forked.stderr
    assert "said on stdout" not in forked.stdout  # captured by pytest, as in the fresh run
    assert forked.stderr == fresh.stderr


def test_a_killed_run_returns_its_signal_and_a_slow_one_times_out(server, project):
    cwd, env = project
    killed = server.run(_args("-k", "killed"), cwd, {**env, "KILL_ME": "1"}, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stdout
    with pytest.raises(subprocess.TimeoutExpired):
        server.run(_args("-k", "sleeps"), cwd, {**env, "SLEEP_ME": "1"}, timeout=3)
    after = server.run(_args("-k", "environment"), cwd, env, timeout=120)
    assert after.returncode == 0, after.stdout  # the server goes on serving


def test_a_run_with_other_interpreter_options_is_a_fresh_interpreter(project):
    cwd, env = project
    env = {**env, "PYTHONHASHSEED": "7"}
    assert not ForkServer.get().serves(env)
    run = run_pytest(_args("-k", "environment"), cwd=cwd, env=env, timeout=120)
    assert run.returncode == 0, run.stdout
