"""`--dist loadgroup` keeps a group on one worker (tests/xdist_groups.py), under the pytest the suite runs."""

from __future__ import annotations

import os
import subprocess
import sys

from tests import REPO

SUITE = '''
import os, pytest

def _note(name):
    with open(os.environ["WHERE"], "a") as f:
        f.write(f"{name} {os.environ['PYTEST_XDIST_WORKER']}\\n")

pytestmark = pytest.mark.xdist_group("shared")

@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    _note(f"grouped-{i}")
'''

LOOSE = '''
import os, pytest

@pytest.mark.parametrize("i", range(6))
def test_loose(i):
    with open(os.environ["WHERE"], "a") as f:
        f.write(f"loose-{i} {os.environ['PYTEST_XDIST_WORKER']}\\n")
'''


def _run_in_workers(tmp_path, workers: int) -> list[tuple[str, str]]:
    """pytest -n `workers` --dist loadgroup over tmp_path's tests: (test, worker) in the order they ran."""
    where = tmp_path / "where"
    env = {**os.environ, "WHERE": str(where), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.xdist_groups", "-n", str(workers), "--dist",
                           "loadgroup", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'base'}", "--rootdir",
                           str(tmp_path), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [(line.split()[0], line.split()[1]) for line in where.read_text().splitlines()]


def test_a_group_runs_on_one_worker_and_other_tests_spread(tmp_path):
    (tmp_path / "test_grouped.py").write_text(SUITE)
    (tmp_path / "test_loose.py").write_text(LOOSE)
    ran = dict(_run_in_workers(tmp_path, 2))
    assert len(ran) == 12, ran
    grouped = {w for name, w in ran.items() if name.startswith("grouped-")}
    assert len(grouped) == 1, f"the group was split over workers: {ran}"
    assert len(set(ran.values())) == 2, f"the ungrouped tests did not spread over both workers: {ran}"


def test_work_marked_slow_goes_out_first(tmp_path):
    """The scheduler hands out scopes with a `slow` test before the rest, whatever the collection order."""
    (tmp_path / "conftest.py").write_text('def pytest_configure(config):\n'
                                          '    config.addinivalue_line("markers", "slow: long")\n')
    (tmp_path / "test_a_loose.py").write_text(LOOSE)
    (tmp_path / "test_z_slow.py").write_text('import os, pytest\n\n@pytest.mark.slow\ndef test_long():\n'
                                             '    with open(os.environ["WHERE"], "a") as f:\n'
                                             '        f.write(f"slow {os.environ[\'PYTEST_XDIST_WORKER\']}\\n")\n')
    order = [name for name, _ in _run_in_workers(tmp_path, 1)]
    assert len(order) == 7 and order[0] == "slow", order
