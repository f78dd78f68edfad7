"""Loaded into a gate run by tests/test_crash_safety.py: SIGKILL this pytest process right after
step number CRASH_AFTER_STEP (1-based, counted across the run) has finished.

SIGKILL, not an exception: no finalizer, no teardown, no atexit runs, exactly
like a laptop lid closing or an OOM kill in the middle of a sign-off run.
"""

from __future__ import annotations

import os
import signal

_done = 0


def pytest_bdd_after_step(request, feature, scenario, step, step_func, step_func_args):
    global _done
    _done += 1
    if _done == int(os.environ.get("CRASH_AFTER_STEP", "0")):
        os.kill(os.getpid(), signal.SIGKILL)
