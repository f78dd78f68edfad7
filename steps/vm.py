"""Steps about the registry VM (break-glass, decommission), GitHub archives and docker login.

Thin: parse the step, call phasegate.{breakglass,decommission,dockerhost,github}, which judge.
"""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from phasegate import breakglass, decommission, dockerhost, github
from phasegate.dockerhost import DockerHost
from phasegate.vmhost import RemoteHost

# -- break-glass ----------------------------------------------------------------


@given(parsers.parse('the break-glass copy "{copy}", read over SSH'), target_fixture="bg")
def bg_copy(inventory, copy):
    return breakglass.View.read(inventory, copy)


@given("the newest build tag of the break-glass image in Forgejo", target_fixture="build")
def newest_build(forgejo_packages, inventory):
    return breakglass.newest_build(forgejo_packages, inventory)


@then("the newest tarball there is for that build tag")
def newest_is_build(bg, build):
    breakglass.judge_newest_is_build(bg, build)


@then("the latest symlink points to the newest tarball")
def latest_points_to_newest(bg):
    breakglass.judge_latest_link(bg)


@then("the newest tarball passes gzip -t")
def newest_gzip_ok(bg):
    breakglass.judge_gzip(bg)


@then("the newest tarball's manifest.json names the image and the build tag")
def manifest_names_build(bg, build):
    breakglass.judge_manifest(bg, build)


@then(parsers.parse("the newest tarball is no older than {hours:g} hours"))
def newest_fresh(bg, inventory, hours):
    breakglass.judge_fresh(bg, inventory.said("registry_vm.breakglass.max_age_hours", hours))


# -- the registry VM's containers ----------------------------------------------------


@given("the registry VM's Docker engine, reached over SSH", target_fixture="vm_containers")
def vm_engine(inventory, closer):
    docker = closer.enter_context(DockerHost.registry_vm(inventory))
    return decommission.VmContainers.read(docker, inventory.registry_vm.url)


@then("the old registry's container is not running")
def old_container_stopped(vm_containers, inventory):
    decommission.judge_stopped(vm_containers, inventory.private_registry.container)


@then("the VM's compose file no longer starts the old registry")
def compose_without_old(inventory):
    decommission.judge_compose_without(RemoteHost.registry_vm(inventory), inventory.registry_vm,
                                       inventory.private_registry.container)


@then("every pull-through cache container is running")
def caches_running(vm_containers, inventory):
    decommission.judge_running(vm_containers, inventory.registry_vm.pull_through_caches)


@then("no old registry endpoint answers /v2/ as a registry")
def old_endpoints_dead(inventory, http_settings):
    decommission.judge_endpoints_dead(inventory.registry_vm.old_endpoints, http_settings,
                                      inventory.private_registry.ca_bundle)


@then(parsers.parse("the registry VM holds no blob storage of the old registry once the purge is due, "
                    "{days:d} days after the decommission"))
def storage_freed(inventory, days):
    decommission.judge_storage(RemoteHost.registry_vm(inventory), inventory.registry_vm,
                               inventory.said("registry_vm.storage_grace_days", days))


# -- GitHub ---------------------------------------------------------------------


@given(parsers.parse("the GitHub repository of {project}"), target_fixture="gh_repo")
def github_repo(github_api, inventory, project):
    return github.read_repository(github_api, inventory.github, project)


@then("GitHub says the repository is archived")
def github_archived(gh_repo):
    github.judge_archived(gh_repo)


@given(parsers.parse("the GitHub Actions workflows of {project}"), target_fixture="gh_workflows")
def github_workflows(github_api, inventory, project):
    return github.read_workflows(github_api, inventory.github, project)


@then("no workflow of it is active on GitHub")
def github_workflows_disabled(gh_workflows):
    github.judge_workflows_disabled(gh_workflows)


# -- docker login ---------------------------------------------------------------


@given("the Docker API of the inventory", target_fixture="docker_api")
def docker_api(inventory, closer):
    return closer.enter_context(DockerHost.configured(inventory))


@when("the engine logs in to the Forgejo registry as the pusher", target_fixture="docker_login")
def engine_login(docker_api, inventory):
    return dockerhost.log_in(docker_api, inventory)


@then("the engine accepts the login")
def login_accepted(docker_login):
    dockerhost.judge_login(docker_login)
