"""Steps about Forgejo's registry: login, the smoke package, the retention dry run, the push storm
(thin: phasegate.smoke, phasegate.retention and phasegate.push_storm judge)."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then, when

from phasegate import push_storm, retention, smoke
from phasegate.forgejo import SmokePackage
from steps.common import client

forgejo_registry = client("forgejo_registry", lambda inv, _: smoke.Accounts(inv), scope="function",
                          doc="Forgejo's registry as each inventory account (role -> a phasegate.oci client).")


@pytest.fixture
def smoke_package(inventory) -> SmokePackage:
    return SmokePackage.from_inventory(inventory)


# -- login ---------------------------------------------------------------------


@when(parsers.parse("the {role} logs in to the Forgejo registry"), target_fixture="login")
def log_in(role, forgejo_registry):
    return smoke.log_in(forgejo_registry, role)


@then("the registry challenged for a Bearer token from its own token realm")
def challenged(login, inventory):
    smoke.judge_challenge(login, inventory)


@then(parsers.parse("the token realm gave the {role} a token"))
def token_given(login, role, inventory):
    smoke.judge_token(login, inventory, role)


@then(parsers.parse("the registry answered the authenticated ping with {status:d}"))
def ping_answered(login, status, inventory):
    smoke.judge_ping(login, inventory, status)


# -- the smoke package -----------------------------------------------------------


@given("no smoke package is left in Forgejo")
def no_smoke_package(inventory, http_settings, smoke_package, teardown):
    smoke.clean_slate(inventory, http_settings, smoke_package, teardown)


@given(parsers.parse("the {role} pushes the smoke image"), target_fixture="smoke_digest")
@when(parsers.parse("the {role} pushes the smoke image"), target_fixture="smoke_digest")
def push_smoke(role, forgejo_registry, smoke_package):
    return smoke.push(forgejo_registry, role, smoke_package)


@then(parsers.parse("the {role} can pull every manifest and blob of the smoke image"))
def pull_everything(role, forgejo_registry, smoke_package):
    smoke.judge_pull(forgejo_registry, role, smoke_package)


@then(parsers.parse("the {role} is refused a push of the smoke image"))
def push_refused(role, forgejo_registry, smoke_package):
    smoke.judge_push_refused(forgejo_registry, role, smoke_package)


@when(parsers.parse("the {role} deletes the smoke tag through the package API"), target_fixture="deletion")
def delete_smoke(role, inventory, http_settings, smoke_package):
    return smoke.delete(inventory, http_settings, smoke_package, role)


@then(parsers.parse("the package API answered {status:d}"))
def package_api_answered(deletion, status, inventory, smoke_package):
    smoke.judge_deletion(deletion, inventory, smoke_package, status)


@then("the smoke tag is gone from the package API")
def gone_from_package_api(forgejo_packages, inventory, smoke_package):
    smoke.judge_gone_from_package_api(forgejo_packages, inventory, smoke_package)


@then("the smoke tag is gone from the registry")
def gone_from_registry(forgejo_puller, inventory, smoke_package):
    smoke.judge_gone_from_registry(forgejo_puller, inventory, smoke_package)


# -- the retention job's own dry run (issue 16.2) --------------------------------


@when(parsers.parse("the retention CronJob's own Job runs once with DRY_RUN=true within {seconds:d} seconds"),
      target_fixture="retention_dry_run")
def retention_dry_run(kube, inventory, seconds):
    return retention.run_dry_run(kube, inventory.retention, timeout=seconds)


@then("no version the retention job keeps needs a manifest it would delete")
def dry_run_orphans_nothing(retention_dry_run, forgejo_packages, forgejo_puller, inventory):
    retention.gate_dry_run(retention_dry_run, forgejo_packages, forgejo_puller, inventory.forgejo.owner)


# -- the push storm (issue 16.4) -----------------------------------------------------


@given("the push storm is enabled in the inventory")
def push_storm_enabled(inventory):
    push_storm.require_enabled(inventory)


@given("no push-storm package is left in Forgejo")
def no_push_storm_package(inventory, http_settings, teardown):
    push_storm.clean_slate(inventory, http_settings, teardown)


@when("the pusher pushes the inventory's push storm", target_fixture="storm")
def push_the_storm(inventory):
    return push_storm.run_inventory_storm(inventory)


@then("every push of the storm succeeded")
def storm_pushes_succeeded(storm, inventory):
    push_storm.judge_pushes(storm, inventory)


@then(parsers.parse("Prometheus shows Forgejo's working set below {percent:d}% of its memory limit during the storm "
                    "within {seconds:d} seconds"), target_fixture="storm_pressure")
def storm_working_set(storm, prometheus, inventory, percent, seconds):
    return push_storm.judge_working_set(prometheus, inventory, storm, percent=percent, wait_seconds=seconds)


@then("Prometheus shows no restart of Forgejo during the storm")
def storm_no_restart(storm, storm_pressure):
    push_storm.judge_no_restart(storm_pressure, storm)
