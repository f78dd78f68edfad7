"""Fixtures shared by the OCI/integrity tests: clients on the session lab, a scratch registry to write to."""

from __future__ import annotations

import pytest

from phasegate.lab.distribution import DistributionRegistry
from phasegate.oci import RegistryClient


@pytest.fixture(scope="session")
def private(lab) -> RegistryClient:
    """registry-private of the session lab (seeded, TLS, htpasswd) as its user. Read-only use."""
    with lab["registries"].private_client() as client:
        yield client


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A fresh plain-HTTP distribution registry to write to (keeps the shared lab's content exact)."""
    reg = DistributionRegistry(dir=tmp_path_factory.mktemp("scratch"), name="scratch").start()
    yield reg
    reg.stop()


@pytest.fixture
def scratch_client(scratch):
    from phasegate.http import GUARD

    with RegistryClient(scratch.url) as client, GUARD.writes_allowed("scratch registry test"):
        yield client
