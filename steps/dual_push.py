"""Steps of Phase 1 dual-push and pipeline configs (thin: phasegate.dual_push judges)."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then

from phasegate import dual_push


@pytest.fixture(scope="session")
def dual_push_registries(inventory):
    from phasegate.oci import RegistryClient

    with RegistryClient.from_inventory(inventory, "private_registry", "user") as private, \
            RegistryClient.from_inventory(inventory, "forgejo", "puller") as forgejo:
        yield dual_push.Registries(private, forgejo)


@given("the Forgejo repository API as the repository reader", target_fixture="repos")
def repos(forgejo_repo_reader):
    return forgejo_repo_reader


@then(parsers.parse('the newest build of "{project}" is in both registries with one digest and passes the integrity check'))
def project_dual_pushes(inventory, repos, dual_push_registries, project):
    dual_push.judge_project(inventory, project, repos, dual_push_registries)


@then("every dual-push project of the inventory pushes to both registries", target_fixture="dual_pushes")
def every_project_dual_pushes(inventory, repos, dual_push_registries):
    return dual_push.judge_every_project(inventory, repos, dual_push_registries)


@then("the bake clock starts when the last project started dual-pushing")
def bake_clock(inventory, repos, dual_pushes):
    print(dual_push.bake_clock(inventory, repos, dual_pushes).render())


@then(parsers.parse('the pipeline of "{project}" pushes to both registries with from_secret logins'))
def pipeline_pushes_to_both(inventory, repos, project):
    dual_push.judge_pipeline(inventory, project, repos)
