"""Fixtures for the suite's own tests. The network guard is installed first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import netguard

netguard.install()

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lab")


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """The whole lab, started once for the session (every component)."""
    from phasegate.lab.core import Lab

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
