"""`phasegate lab run` asked to stop while its gates run: Ctrl-C reaches the gates as an orderly interrupt
(their teardowns run) wherever pytest is, also while it still starts, and nothing prints a traceback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from _pytest._code.code import ExceptionInfo

from phasegate.pytest_plugin import pytest_keyboard_interrupt
from tests import REPO
from tests.example_project import example_project

EXAMPLE = REPO / "tests" / "interrupt_example"
# the main job's wait for one gate run, alone: `phasegate lab run` without a lab around it
DRIVER = ("import os, sys\nfrom phasegate.cli import _gates_until_done\n"
          "try:\n    sys.exit(_gates_until_done(sys.argv[1:], dict(os.environ)))\n"
          "except KeyboardInterrupt:\n    print('driver: interrupted', flush=True)\n    sys.exit(130)\n")


def _start(tmp: Path, slow_start: float) -> tuple[subprocess.Popen, Path]:
    project = example_project(tmp / "project", EXAMPLE, {"slow_start.py": "conftest.py",
                                                         "interrupt_steps.py": "steps/test_interrupt.py"},
                              {}, "interrupt-example")
    marks = tmp / "marks"
    marks.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHASEGATE_", "CI_"))}
    env.update(PYTHONPATH=str(REPO), INTERRUPT_EXAMPLE_MARKS=str(marks),
               INTERRUPT_EXAMPLE_SLOW_START=str(slow_start), PYTHONUNBUFFERED="1")
    gates = [sys.executable, "-m", "pytest", "-p", "tests.netguard", "-p", "no:cacheprovider",
             f"--inventory={project / 'inventory.toml'}"]
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, *gates], cwd=project, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return proc, marks


def _when(mark: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not mark.exists():
        assert proc.poll() is None, f"exited {proc.returncode} before {mark.name}:\n{proc.communicate()[0]}"
        if time.monotonic() > deadline:  # a backstop for a run that hangs, not a speed goal
            proc.kill()
            pytest.fail(f"{mark.name} not seen in 60 s:\n{proc.communicate()[0]}")
        time.sleep(0.02)


def _interrupted(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"still running 60 s after SIGINT:\n{proc.communicate()[0]}")
    assert proc.returncode == 130 and "driver: interrupted" in out, out
    assert "Traceback" not in out and re.search(r"!+ KeyboardInterrupt !+", out), out  # pytest's report of a Ctrl-C


def test_a_ctrl_c_while_pytest_still_starts_interrupts_its_session_without_a_traceback(tmp_path):
    proc, marks = _start(tmp_path, slow_start=6)  # longer than any forwarding delay of a loaded machine
    _when(marks / "loading", proc)  # pytest is loading its conftests: no session yet
    _interrupted(proc)
    assert not (marks / "created").exists(), "the scenario ran: the interrupt did not come as pytest started"


def test_a_ctrl_c_during_a_scenario_runs_its_teardown_without_a_traceback(tmp_path):
    proc, marks = _start(tmp_path, slow_start=0)
    _when(marks / "running", proc)
    _interrupted(proc)
    assert (marks / "removed").exists(), "the scenario's teardown did not run"


def test_a_ctrl_c_at_an_instruction_without_a_line_is_reported_not_a_crash():
    """Python 3.11 can raise KeyboardInterrupt where the traceback entry has no line (tb_lineno None); pytest's
    own report of it then fails. A traceback entry like that, built from this frame at an offset past its code."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as e:
        lineless = types.TracebackType(None, sys._getframe(), 10**6, -1)
        assert lineless.tb_lineno is None  # else this proves nothing
        e.__traceback__.tb_next = lineless
        excinfo = ExceptionInfo.from_exception(e)
    with pytest.raises(TypeError):
        ExceptionInfo.from_exception(excinfo.value).getrepr(funcargs=True)  # pytest's own report, unhelped
    pytest_keyboard_interrupt(excinfo)
    assert "KeyboardInterrupt" in str(excinfo.getrepr(funcargs=True))
    assert len(excinfo.traceback) == 1
