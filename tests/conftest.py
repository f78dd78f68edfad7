"""Fixtures for the suite's own tests. The network guard is installed first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import REPO, netguard

netguard.install()


def _clear_abandoned_labs(config, root: Path, pattern: str) -> None:
    """Labs of earlier sessions whose pytest was killed before it stopped them (and whose keeper
    died too): their processes and mounts go, with one line saying what, or one error naming what
    will not; their files stay for pytest to rotate. Only labs claimed by a process that is gone
    are touched, never a running session's."""
    from phasegate.lab import procs

    for old in procs.abandoned_labs(root, pattern):
        try:
            swept = procs.sweep(old)
        except procs.LabError as e:
            pytest.exit(str(e), returncode=2)
        procs.release(old)
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if swept and reporter is not None:
            reporter.write_line(f"lab: removed what the last lab in {old.resolve()} left behind: {swept.summary()}")


PYCACHE = "phasegate-tests-pycache"


def _cache_bytecode_outside_the_tree() -> None:
    """Every Python process these tests start (gate runs, the lab, example projects: some 400) keeps
    its bytecode, and pytest its rewritten step and plugin modules, in one cache outside the working
    tree: read back, not compiled again, which is about 0.4 s of CPU per gate run. An environment that
    says PYTHONDONTWRITEBYTECODE (this machine's does) would make each one compile everything anew."""
    import tempfile

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / PYCACHE))


# Parallel runs (`-n N`, pytest-xdist) give each worker its own lab under `<basetemp>/popen-gwN/`.
# podman refuses a runroot path longer than 50 characters (phasegate/lab/vm.py), and pytest's
# numbered `/tmp/pytest-of-root/pytest-NNN/popen-gwN/lab0/lab/vm/rr` passes that: a parallel run's
# base is a short directory of its own instead, `/tmp/pgt-XXXX`, its earlier siblings' labs swept
# like pytest's numbered ones and the oldest directories removed beyond the last three.
SHORT_BASE_PREFIX = "pgt-"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    from tests import xdist_groups

    if config.pluginmanager.hasplugin("xdist"):  # not under `-p no:xdist`: its hook would be unknown
        config.pluginmanager.register(xdist_groups, "tests.xdist_groups")  # loadgroup, fixed for pytest 9.2
    _cache_bytecode_outside_the_tree()
    parallel = getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput")
    if parallel and not config.option.basetemp:
        import shutil
        import tempfile

        from phasegate.lab import procs

        root = Path(tempfile.gettempdir())
        _clear_abandoned_labs(config, root, f"{SHORT_BASE_PREFIX}*/*/*/lab")
        olds = sorted(root.glob(f"{SHORT_BASE_PREFIX}*"), key=lambda p: p.stat().st_mtime)
        for old in olds[:-2]:
            if not procs.lab_processes(old) and not procs.lab_mounts(old):
                shutil.rmtree(old, ignore_errors=True)
        config.option.basetemp = tempfile.mkdtemp(prefix=SHORT_BASE_PREFIX, dir=root)


def pytest_sessionstart(session):
    # a --basetemp given again is wiped by pytest before any fixture runs: what a killed lab left in it goes first
    given = session.config.option.basetemp
    if given and Path(given).is_dir():
        _clear_abandoned_labs(session.config, Path(given).resolve(), "*/lab")


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="session")
def lab(tmp_path_factory, pytestconfig):
    """The whole lab, started once for the session (every component)."""
    from phasegate.lab.core import Lab

    base = tmp_path_factory.getbasetemp()
    if base.parent.name.startswith("pytest-of-"):  # pytest's numbered dirs: earlier sessions' labs are siblings
        _clear_abandoned_labs(pytestconfig, base.parent, "*/*/lab")
    lab = Lab(tmp_path_factory.mktemp("lab") / "lab")
    lab.up()
    yield lab
    lab.down()


@pytest.fixture(scope="session")
def gates(lab):
    """Run gate scenarios against the session lab: gates(markexpr, fault=..., scenario=...)."""
    from tests.harness import GateRunner

    return GateRunner(lab)


@pytest.fixture(scope="session")
def inventory_of():
    """lab -> its parsed inventory (phasegate.config.Inventory)."""
    from phasegate import config

    return lambda lab: config.load(lab.inventory_path)


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory):
    """A real Prometheus Pushgateway on loopback for one test module, without a persistence file:
    what an earlier run pushed is never served to this one."""
    import shutil

    import httpx

    from phasegate.lab.procs import Proc, free_port, wait_until

    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.fail("prometheus-pushgateway not installed: run scripts/setup.sh")
    port = free_port()
    proc = Proc("pushgateway", [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
                tmp_path_factory.mktemp("pushgateway") / "log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, timeout=20,
                   what="pushgateway", proc=proc)
        yield url
    finally:
        proc.stop()


@pytest.fixture
def closing():
    """closing(client) -> client, closed after the test: for tests that build several clients."""
    made = []

    def keep(thing):
        made.append(thing)
        return thing

    yield keep
    for thing in made:
        thing.close()


@pytest.fixture
def serve():
    """serve(behaviour, **kw): a phasegate.lab.evil server on loopback, stopped after the test."""
    from phasegate.lab import evil

    started: list[evil.EvilServer] = []

    def start(behaviour, **kw) -> evil.EvilServer:
        s = evil.EvilServer(behaviour, **kw).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Under `-n N --dist loadgroup` a module whose tests share a module-scoped fixture (a lab state,
    a run of every gate against bad servers) runs on one worker, so the fixture is built once; every
    other test goes to whichever worker is free."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info else []
        if any(d[-1].scope == "module" for d in defs if d) and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
