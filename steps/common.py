"""Step plumbing shared by every step module: the clients more than one area uses, and teardown.

No steps judge here (tests/test_steps_thin.py): a fixture opens a client, `at_teardown` registers a
writing scenario's cleanup. Library functions that create something take `at_teardown` and register
the removal themselves before they create it, so a failing or killed gate leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest

from phasegate.http import GUARD, HttpSettings

Teardown = Callable[[Callable[[], object], str], None]  # (fn, what it removes) -> registered


def at_teardown(request) -> Teardown:
    """A registrar for cleanups of `request`'s scenario: each runs at teardown, also when a step failed,
    with writes allowed (only a @writes scenario creates anything to remove)."""

    def register(fn: Callable[[], object], what: str) -> None:
        def run() -> None:
            with GUARD.writes_allowed(f"cleanup of {what} ({request.node.nodeid})"):
                fn()

        request.addfinalizer(run)

    return register


@pytest.fixture
def teardown(request) -> Teardown:
    return at_teardown(request)


@pytest.fixture
def closer():
    """Closes what a scenario's steps opened (clients with `close()` or a context), at its teardown."""
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def kube(inventory):
    from phasegate.kube import Kube

    k = Kube.from_inventory(inventory)
    yield k
    k.close()


@pytest.fixture(scope="session")
def prometheus(inventory, http_settings: HttpSettings):
    from phasegate.prometheus import Prometheus

    with Prometheus(inventory.metrics.prometheus_url, http_settings, ca_bundle=inventory.metrics.ca_bundle) as p:
        yield p


@pytest.fixture(scope="session")
def forgejo_repo_reader(inventory, http_settings: HttpSettings):
    from phasegate.forgejo_repos import ForgejoRepos

    reader = inventory.dual_push.repo_reader
    with ForgejoRepos.connect(inventory.forgejo.url, inventory.secret(reader.secret), http_settings,
                              ca_bundle=inventory.forgejo.ca_bundle) as repos:
        yield repos


@pytest.fixture
def forgejo_puller(inventory):
    """Forgejo's registry (/v2) as the puller."""
    from phasegate.oci import RegistryClient

    with RegistryClient.from_inventory(inventory, "forgejo", "puller") as c:
        yield c


@pytest.fixture
def forgejo_packages(inventory, http_settings: HttpSettings):
    """Forgejo's package API as the puller (read-only: it may delete nothing)."""
    from phasegate.forgejo import Forgejo

    with Forgejo.from_inventory(inventory, http_settings, user="puller") as api:
        yield api
