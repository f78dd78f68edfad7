"""Fixtures shared by the OCI/integrity tests: clients on the session lab, a scratch registry to write to."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from phasegate.lab import seed
from phasegate.lab.distribution import DistributionRegistry
from phasegate.oci import RegistryClient
from phasegate.secrets import Secret

REGISTRIES = ["private", "forgejo"]


@dataclass(frozen=True)
class SeededRegistry:
    """A seeded lab registry as the tests see it: a read client, its namespace and fault names."""

    name: str
    client: RegistryClient
    namespace: str  # repository prefix of the seed ("" or "viktor/")
    fault_prefix: str  # "private-" / "forgejo-"
    url: str
    username: str
    secret_key: str  # lab secret holding the password / PAT

    def repo(self, project: str) -> str:
        return f"{self.namespace}{project}"

    def plan(self) -> list[seed.Repo]:
        return seed.plan(self.namespace)

    def faults(self) -> dict[str, seed.SeededFault]:
        return seed.faults(self.namespace)

    def fault(self, name: str) -> str:
        return f"{self.fault_prefix}{name}"


def _seeded(lab, name: str) -> SeededRegistry:
    regs = lab["registries"]
    if name == "private":
        from phasegate.lab.registries import PRIVATE_USER

        user, key, url, ns = PRIVATE_USER, "private_registry_password", regs.private.url, ""
    else:
        from phasegate.lab.registries import FORGEJO_OWNER, FORGEJO_PULLER

        user, key, url, ns = FORGEJO_PULLER, "forgejo_pull_token", regs.forgejo.url, f"{FORGEJO_OWNER}/"
    client = RegistryClient(url, username=user, password=Secret(lab.secret(key), key), ca_bundle=str(lab.ca.bundle))
    return SeededRegistry(name, client, ns, f"{name}-", url, user, key)


@pytest.fixture(scope="session", params=REGISTRIES)
def registry(request, lab) -> SeededRegistry:
    """Each seeded lab registry in turn (registry-private; Forgejo as cluster-puller). Read-only use."""
    reg = _seeded(lab, request.param)
    yield reg
    reg.client.close()


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
