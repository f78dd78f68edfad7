"""Step plumbing shared by every step module: the clients more than one area uses, and teardown.

No steps judge here (tests/test_steps_thin.py): a fixture opens a client, `at_teardown` registers a
writing scenario's cleanup. Library functions that create something take `at_teardown` and register
the removal themselves before they create it, so a failing or killed gate leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from typing import Any

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


def client(name: str, opens: Callable[[Any, HttpSettings], Any], *, scope: str = "session", doc: str = ""):
    """The fixture `name`: the client `opens(inventory, http_settings)` returns, closed (`close()`) after.

    `opens` imports its module when called: a gate run that never uses a client never imports it (the
    `kubernetes` client alone costs about 0.4 s of every start)."""

    def fixture(inventory, http_settings: HttpSettings):
        c = opens(inventory, http_settings)
        try:
            yield c
        finally:
            c.close()

    fixture.__doc__ = doc or f"The {name.replace('_', ' ')} client, from the inventory."
    return pytest.fixture(name=name, scope=scope)(fixture)


def _module(name: str):
    return importlib.import_module(f"phasegate.{name}")


kube = client("kube", lambda inv, _: _module("kube").Kube.from_inventory(inv))
prometheus = client("prometheus", lambda inv, s: _module("prometheus").Prometheus.from_inventory(inv, s))
pushgateway = client("pushgateway", lambda inv, s: _module("prometheus").Pushgateway.from_inventory(inv, s))
loki = client("loki", lambda inv, s: _module("loki").Loki.from_inventory(inv, s))
forgejo_repo_reader = client("forgejo_repo_reader",
                             lambda inv, s: _module("forgejo_repos").ForgejoRepos.from_inventory(inv, s))
forgejo_puller = client("forgejo_puller", lambda inv, _: _module("oci").RegistryClient.from_inventory(
    inv, "forgejo", "puller"), scope="function", doc="Forgejo's registry (/v2) as the puller.")
forgejo_packages = client("forgejo_packages", lambda inv, s: _module("forgejo").Forgejo.from_inventory(
    inv, s, user="puller"), scope="function", doc="Forgejo's package API as the puller (read-only: it may delete nothing).")
github_api = client("github_api", lambda inv, s: _module("github").GitHub.from_inventory(inv, s), scope="function")
