"""Steps of Phase 1 dual-push and pipeline configs (thin: phasegate.dual_push judges)."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then

from phasegate import dual_push
from phasegate.forgejo_repos import ForgejoRepos
from phasegate.verdict import GateFailed


@pytest.fixture(scope="session")
def forgejo_repo_reader(inventory, http_settings):
    reader = inventory.dual_push.repo_reader
    with ForgejoRepos.connect(inventory.forgejo.url, inventory.secret(reader.secret), http_settings,
                              ca_bundle=inventory.forgejo.ca_bundle) as repos:
        yield repos


@pytest.fixture(scope="session")
def dual_push_registries(inventory):
    from phasegate.oci import RegistryClient

    with RegistryClient.from_inventory(inventory, "private_registry", "user") as private, \
            RegistryClient.from_inventory(inventory, "forgejo", "puller") as forgejo:
        yield private, forgejo


@given("the Forgejo repository API as the repository reader", target_fixture="repos")
def repos(forgejo_repo_reader):
    return forgejo_repo_reader


@then(parsers.parse('the newest build of "{project}" is in both registries with one digest and passes the integrity check'))
def project_dual_pushes(inventory, repos, dual_push_registries, project):
    private, forgejo = dual_push_registries
    dual_push.check_dual_push(inventory, dual_push.project(inventory, project), repos, private, forgejo)


@then("every dual-push project of the inventory pushes to both registries", target_fixture="dual_pushes")
def every_project_dual_pushes(inventory, repos, dual_push_registries):
    private, forgejo = dual_push_registries
    done, failed = [], []
    for p in dual_push.dual_push_projects(inventory):
        try:
            done.append(dual_push.check_dual_push(inventory, p, repos, private, forgejo))
        except GateFailed as e:
            failed.append(f"{p.name}: {e.seen} ({e.where})")
    if failed:
        raise GateFailed(expected="every project of the inventory dual-pushes its newest build",
                         seen=f"{len(done)} dual-push, {len(failed)} do not:\n  " + "\n  ".join(failed),
                         where=", ".join(f.split(":")[0] for f in failed))
    return done


@then("the bake clock starts when the last project started dual-pushing")
def bake_clock(inventory, repos, dual_pushes):
    clock = dual_push.bake_clock(inventory, repos, dual_pushes)
    print(clock.render())


@then(parsers.parse('the pipeline of "{project}" pushes to both registries with from_secret logins'))
def pipeline_pushes_to_both(inventory, repos, project):
    p = dual_push.project(inventory, project)
    repo = dual_push.source_repo(inventory, p)
    text = repos.raw(repo, p.pipeline)
    dual_push.check_pipeline(inventory, p, text, f"{repo}/{p.pipeline}")
