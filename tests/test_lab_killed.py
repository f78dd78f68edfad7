"""The lab survives being killed: nothing it started outlives it, and the next start is clean.

A lab (`phasegate lab up`, `phasegate lab run`, or the `lab` fixture of a pytest run of the
suite's own tests) is killed at several points of its start and while gates run. Within 10 s no
process whose command line names its directory may be left, nor a mount under it; when the lab's
keeper was killed too, the next start in the same directory removes what is left (saying so in one
line); `phasegate lab run` there then passes and leaves nothing. Every lab here lives in this test's own tmp dir: nothing else is looked at or killed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from phasegate.lab import procs
from phasegate.lab.core import Lab
from phasegate.lab.procs import LabError
from tests import REPO
from tests.harness import GATE_RUNS

GONE_WITHIN = 10.0      # seconds a killed lab's processes may take to go (a property, polled)
POINT_WITHIN = 240.0    # seconds a start may take to reach a kill point before that is a failure


# -- what the test looks at: /proc and the mount table, read independently of phasegate.lab.procs ------

def named(lab_dir: Path) -> list[str]:
    """Live processes whose command line names the lab directory (a zombie's is empty). Polled while a start
    runs on a busy machine: a command line without the directory's bytes is passed over first."""
    needle = str(lab_dir).encode()
    pattern = re.compile(re.escape(str(lab_dir)) + r"(?![\w.-])")
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        if needle not in raw:
            continue
        argv = raw.replace(b"\0", b" ").decode(errors="replace")
        if pattern.search(argv) and int(pid) != os.getpid():
            out.append(f"{pid}: {argv}")
    return out

# Under `-n N` the tests that kill whole labs are two work units: the long kill-during-start-and-gates test
# alone, the others one after another on one worker (each marked `slow`, so both units start first).
KILLS = pytest.mark.xdist_group("whole-lab-kills")


def mounts_under(lab_dir: Path) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(f"{lab_dir}/")]


def nothing_left_within(lab_dir: Path, seconds: float = GONE_WITHIN) -> list[str]:
    """What is still there after `seconds`: processes naming the lab directory, mounts under it."""
    deadline = time.monotonic() + seconds
    while (left := named(lab_dir) + mounts_under(lab_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def phasegate(*args: str) -> list[str]:
    return [sys.executable, "-m", "phasegate.cli", *args]


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PHASEGATE_")}
    e["PYTHONPATH"] = str(REPO)
    e["PYTHONUNBUFFERED"] = "1"  # what a run said before it was killed is in its log
    e[GATE_RUNS] = "subprocess"  # a gate run is found by its command line (a forked child's is its server's)
    return e


def start(argv: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, env=env(), stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(point, proc: subprocess.Popen, log: Path, what: str) -> None:
    """Poll until `point()` holds while `proc` still runs (a start that dies first is a failure)."""
    deadline = time.monotonic() + POINT_WITHIN
    while not point():
        if proc.poll() is not None:
            pytest.fail(f"{what}: exited with {proc.returncode} before the kill point\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{what}: kill point not reached\n{log.read_text()[-3000:]}")
        time.sleep(0.25)  # a kill point is a stage that lasts seconds; a look at every process costs ~5 ms


def kill(proc: subprocess.Popen, sig: int, log: Path, what: str) -> None:
    assert proc.poll() is None, f"{what}: had already exited\n{log.read_text()[-3000:]}"
    proc.send_signal(sig)
    try:
        proc.wait(120)  # an orderly stop (SIGINT, SIGTERM) on a busy machine: a backstop, not the property (GONE_WITHIN is)
    except subprocess.TimeoutExpired:
        masks = _signal_masks(proc.pid) + " (this test's process: " + _signal_masks(os.getpid()) + ")"
        proc.send_signal(signal.SIGUSR1)  # phasegate.cli: every thread's stack to its log
        time.sleep(2)
        proc.kill()
        pytest.fail(f"{what}: still running 120 s after {signal.Signals(sig).name}; {masks}; its threads:\n"
                    f"{log.read_text()[-12000:]}")
    text = log.read_text()
    assert "Traceback" not in text, f"{what}: a traceback\n{text[-3000:]}"


def _signal_masks(pid: int) -> str:
    """A process's ignored, blocked and pending signals (/proc/PID/status), to tell why a signal did nothing."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as e:
        return f"no status for {pid}: {e}"
    return ", ".join(line.replace("\t", " ") for line in lines if line.startswith(("SigIgn", "SigBlk", "SigPnd", "ShdPnd")))


def a_process(lab_dir: Path, *words: str):
    return lambda: any(all(w in line for w in words) for line in named(lab_dir))


def lab_run_passes(lab_dir: Path, cwd: Path) -> None:
    """The main job on the same directory passes, and leaves no mount under it."""
    log = cwd / "lab-run.log"
    # from a scratch working directory (its report goes there), gates collected from the repository
    argv = phasegate("lab", "run", "--dir", str(lab_dir), str(REPO / "steps"), "-c", str(REPO / "pyproject.toml"),
                     "--rootdir", str(REPO), "-p", "tests.netguard", "-q")
    rc = subprocess.run(argv, cwd=cwd, env=env(), stdout=log.open("wb"), stderr=subprocess.STDOUT,
                        timeout=900).returncode
    text = log.read_text()
    assert rc == 0 and " passed" in text and "Traceback" not in text, f"lab run: exit {rc}\n{text[-4000:]}"
    assert not mounts_under(lab_dir), mounts_under(lab_dir)
    assert not named(lab_dir), named(lab_dir)


# -- unit: what a sweep takes is the lab's and nothing else ------------------------------------------------

def _sleeper(*argv_tail: str, extra_env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(120)", *argv_tail],
                            env={**os.environ, **(extra_env or {})}, start_new_session=True)


def test_a_sweep_takes_the_labs_processes_and_nothing_else(tmp_path):
    lab_dir, sibling = tmp_path / "lab", tmp_path / "lab2"
    lab_dir.mkdir()
    sibling.mkdir()
    by_argv = _sleeper(f"--config={lab_dir}/x.yml")
    by_mark = _sleeper(extra_env={procs.LAB_MARK: str(lab_dir)})
    # a child of a lab process that does not say so itself (an sshd session, a podman's conmon)
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
                               "time.sleep(120)", str(lab_dir)], start_new_session=True)
    other = [_sleeper(str(sibling)), _sleeper(f"{tmp_path}/x{lab_dir}"), _sleeper(str(tmp_path))]
    try:
        deadline = time.monotonic() + 10
        while len(procs.lab_processes(lab_dir)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        taken = {p.pid for p in procs.lab_processes(lab_dir)}
        assert {by_argv.pid, by_mark.pid, parent.pid} <= taken and len(taken) == 4, taken
        swept = procs.sweep(lab_dir)
        assert len(swept.processes) == 4, swept
        for p in (by_argv, by_mark, parent):
            assert p.wait(5) == -signal.SIGKILL
        assert all(p.poll() is None for p in other), "a sweep touched a process of another directory"
        assert not procs.lab_processes(lab_dir)
    finally:
        for p in [by_argv, by_mark, parent, *other]:
            p.kill()
            p.wait()


def test_a_leftover_that_will_not_go_is_one_error_naming_it(tmp_path):
    lab_dir = tmp_path / "lab"
    stuck = lab_dir / "vm" / "root"
    stuck.mkdir(parents=True)
    (stuck / "pinned").write_text("x")
    subprocess.run(["chattr", "+i", str(stuck / "pinned")], check=True)  # not even root may delete it
    try:
        with pytest.raises(LabError, match=re.escape(str(stuck / "pinned"))):
            Lab(lab_dir).clear()
        p = subprocess.run(phasegate("lab", "up", "--dir", str(lab_dir)), cwd=tmp_path, env=env(),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, p
        assert p.stderr.count("\n") == 1 and str(stuck / "pinned") in p.stderr and "Traceback" not in p.stderr, p.stderr
    finally:
        subprocess.run(["chattr", "-i", str(stuck / "pinned")], check=True)


def test_a_start_refuses_a_directory_a_running_lab_owns(tmp_path):
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import sys, time; from phasegate.lab import procs; "
                              "procs.claim(sys.argv[1]); print(flush=True); time.sleep(120)", str(lab_dir)],
                             stdout=subprocess.PIPE, env=env())
    try:
        owner.stdout.readline()
        with pytest.raises(LabError, match=f"a lab is running in {re.escape(str(lab_dir))} \\(pid {owner.pid}\\)"):
            Lab(lab_dir).clear()
        assert lab_dir.exists()
    finally:
        owner.kill()
        owner.wait()
    Lab(lab_dir).clear()  # its owner gone, the directory is a leftover like any other
    assert not lab_dir.exists()


def test_fixture_labs_of_a_killed_session_are_swept_and_a_running_sessions_are_not(tmp_path, pytestconfig):
    from tests.conftest import _clear_abandoned_labs

    dead_lab, live_lab = tmp_path / "pytest-1" / "lab0" / "lab", tmp_path / "pytest-2" / "lab0" / "lab"
    for d in (dead_lab, live_lab):
        d.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "import sys; from phasegate.lab import procs; procs.claim(sys.argv[1])",
                             str(dead_lab)], env=env())
    assert gone.wait(30) == 0  # claimed by a process that is gone: a session killed before it stopped its lab
    procs.claim(live_lab)      # claimed by this one: running
    in_dead, in_live = _sleeper(f"{dead_lab}/x"), _sleeper(f"{live_lab}/x")
    try:
        _clear_abandoned_labs(pytestconfig, tmp_path, "*/*/lab")
        assert in_dead.wait(10) == -signal.SIGKILL
        assert in_live.poll() is None, "a running session's lab was swept"
        assert not (dead_lab / procs.OWNER_FILE).exists() and (live_lab / procs.OWNER_FILE).exists()
    finally:
        for p in (in_dead, in_live):
            p.kill()
            p.wait()


@pytest.fixture
def short_tmp():
    """A scratch directory with a short path: podman refuses a runroot longer than 50 characters."""
    d = Path(tempfile.mkdtemp(prefix="pgkill-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


# -- the whole lab, killed ----------------------------------------------------------------------------------

# (what is seen when the kill comes, how to see it, the signal); each is one start of the lab
START_POINTS = [
    ("podman's service started", lambda d: a_process(d, "podman", "system service"), signal.SIGKILL),
    ("containers being created", lambda d: a_process(d, "conmon"), signal.SIGKILL),
    ("containerd nodes started", lambda d: a_process(d, "containerd --config"), signal.SIGINT),
    ("prometheus started", lambda d: a_process(d, "prometheus --config.file"), signal.SIGKILL),
    ("the lab ready", None, signal.SIGTERM),
    ("the lab ready", None, signal.SIGKILL),
]
# (the main job's stage `lab run --stage` starts, the gates it kills them in, the signal)
GATE_POINTS = [(1, "phase0 or phase1", signal.SIGKILL), (1, "phase0 or phase1", signal.SIGINT),
               (2, "phase4 or phase5", signal.SIGKILL)]


@pytest.mark.slow
@pytest.mark.lab
@pytest.mark.timeout(1800)
@pytest.mark.xdist_group("whole-lab-kills-during-start-and-gates")
def test_lab_killed_during_start_and_gates_leaves_nothing_and_the_next_run_passes(short_tmp):
    tmp_path = short_tmp
    lab_dir = tmp_path / "lab"
    for n, (what, point, sig) in enumerate(START_POINTS):
        log, ready = tmp_path / f"up-{n}.log", tmp_path / f"ready-{n}"
        proc = start(phasegate("lab", "up", "--dir", str(lab_dir), "--ready-file", str(ready)), tmp_path, log)
        wait_for(point(lab_dir) if point else ready.exists, proc, log, f"lab up until {what}")
        kill(proc, sig, log, f"lab up ended with {sig.name} at {what}")
        assert not (left := nothing_left_within(lab_dir)), f"{sig.name} at {what}: left {left}"
    for n, (number, stage, sig) in enumerate(GATE_POINTS):
        log = tmp_path / f"run-{n}.log"
        proc = start(phasegate("lab", "run", "--dir", str(lab_dir), "--stage", str(number), str(REPO / "steps"),
                               "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO)), tmp_path, log)
        wait_for(a_process(lab_dir, "pytest -m " + stage, "--inventory="), proc, log, f"lab run until gates {stage}")
        time.sleep(1)  # fast: inside a scenario; slow: pytest still starting (both orderly, tests/test_gates_interrupted.py)
        kill(proc, sig, log, f"lab run ended with {sig.name} while gates {stage} ran")
        assert not (left := nothing_left_within(lab_dir)), f"{sig.name} while gates {stage} ran: left {left}"
    lab_run_passes(lab_dir, tmp_path)


@KILLS
@pytest.mark.slow
@pytest.mark.lab
@pytest.mark.timeout(600)
def test_a_start_removes_what_a_killed_lab_and_its_keeper_left_saying_so_in_one_line(short_tmp):
    """The keeper killed with its lab (an OOM killer, a kill of everything): podman's conmons and
    containers and their shm mounts are still there; the next start removes them."""
    tmp_path = short_tmp
    lab_dir = tmp_path / "lab"
    log, ready = tmp_path / "up-1.log", tmp_path / "ready-1"
    proc = start(phasegate("lab", "up", "--dir", str(lab_dir), "--ready-file", str(ready)), tmp_path, log)
    wait_for(ready.exists, proc, log, "lab up until ready")
    keepers = [int(line.split(":")[0]) for line in named(lab_dir) if procs.KEEPER_MODULE in line]
    assert len(keepers) == 1, named(lab_dir)
    os.kill(keepers[0], signal.SIGKILL)
    kill(proc, signal.SIGKILL, log, "lab up killed with its keeper")
    time.sleep(1)
    left, mounted = named(lab_dir), mounts_under(lab_dir)
    assert any("conmon" in line for line in left) and mounted, (left, mounted)  # else this proves nothing
    log, ready = tmp_path / "up-2.log", tmp_path / "ready-2"
    proc = start(phasegate("lab", "up", "--dir", str(lab_dir), "--ready-file", str(ready)), tmp_path, log)
    wait_for(ready.exists, proc, log, "the next lab up until ready")
    said = [line for line in log.read_text().splitlines() if line.startswith("lab: removed")]
    assert len(said) == 1 and f"in {lab_dir} left behind" in said[0] and "conmon x" in said[0] \
        and f"{len(mounted)} mounts" in said[0], log.read_text()
    old = {line.split(":")[0] for line in left}
    assert not old & {line.split(":")[0] for line in named(lab_dir)}, "the last lab's processes still run"
    assert not set(mounted) & set(mounts_under(lab_dir)), "the last lab's mounts are still there"
    kill(proc, signal.SIGINT, log, "the next lab stopped with Ctrl-C")
    assert "lab stopped" in log.read_text()
    assert not (left := nothing_left_within(lab_dir)), left


@KILLS
@pytest.mark.slow
@pytest.mark.lab
@pytest.mark.timeout(1800)
def test_pytest_of_the_suite_ended_with_sigterm_leaves_nothing_and_the_next_run_passes(short_tmp):
    tmp_path = short_tmp
    basetemp = tmp_path / "basetemp"
    lab_dir = basetemp / "lab0" / "lab"  # the session `lab` fixture's directory (tests/conftest.py)
    # the same --basetemp every time: each session starts over what the last one left
    argv = [sys.executable, "-m", "pytest", "-p", "tests.netguard", "-q", "-x", "-p", "no:cacheprovider",
            f"--basetemp={basetemp}",
            "tests/test_cluster_gates.py::test_cluster_gates_leave_nothing_behind_even_when_red"]
    starting = a_process(lab_dir, "conmon")
    gate_running = a_process(lab_dir, "pytest", f"--inventory={lab_dir}/inventory.toml")

    # the keeper killed too (an OOM killer): podman's conmons and containers stay for the next session
    log = tmp_path / "pytest-0.log"
    proc = start(argv, REPO, log)
    wait_for(starting, proc, log, "pytest until its lab starts containers")
    keepers = [int(line.split(":")[0]) for line in named(lab_dir) if procs.KEEPER_MODULE in line]
    assert len(keepers) == 1, named(lab_dir)
    os.kill(keepers[0], signal.SIGKILL)
    kill(proc, signal.SIGTERM, log, "pytest ended with SIGTERM, its keeper killed")
    time.sleep(1)
    assert any("conmon" in line for line in named(lab_dir)), named(lab_dir)  # else the next part proves nothing

    for n, (what, point) in enumerate([("a gate running", gate_running), ("the fixture lab starting", starting)], 1):
        log = tmp_path / f"pytest-{n}.log"
        proc = start(argv, REPO, log)
        wait_for(point, proc, log, f"pytest until {what}")
        said = [line for line in log.read_text().splitlines() if line.startswith("lab: removed")]
        assert len(said) == (1 if n == 1 else 0), log.read_text()
        kill(proc, signal.SIGTERM, log, f"pytest ended with SIGTERM at {what}")
        assert not (left := nothing_left_within(lab_dir)), f"pytest ended at {what}: left {left}"
    lab_run_passes(lab_dir, tmp_path)
