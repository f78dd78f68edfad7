"""Steps about the registry VM (break-glass, decommission), GitHub archives and docker login.

Thin: parse the step, call phasegate.{breakglass,decommission,dockerhost,github}, judge.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pytest
from pytest_bdd import given, parsers, then, when

from phasegate import breakglass, decommission
from phasegate.dockerhost import DockerHost, LoginRefused
from phasegate.github import GitHub
from phasegate.verdict import Broken, GateFailed, check
from phasegate.vmhost import RemoteHost


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# -- break-glass ----------------------------------------------------------------


@dataclass
class BreakglassView:
    reader: breakglass.BreakglassCopyReader
    listing: breakglass.Listing
    tarballs: list[breakglass.Tarball]

    @property
    def newest(self) -> breakglass.Tarball:
        if not self.tarballs:
            raise GateFailed(expected=f"a tarball named {self.reader.cfg.file_template}",
                             seen="no break-glass tarball at all", where=self.listing.where())
        return self.tarballs[0]


@given(parsers.parse('the break-glass copy "{copy}", read over SSH'), target_fixture="bg")
def bg_copy(inventory, copy):
    reader = breakglass.BreakglassCopyReader.from_inventory(inventory, copy)
    listing = reader.list()
    return BreakglassView(reader, listing, reader.tarballs(listing))


@given("the newest build tag of the break-glass image in Forgejo", target_fixture="build")
def newest_build(inventory, http_settings):
    from phasegate.forgejo import Forgejo

    cfg = inventory.registry_vm.breakglass
    pattern = re.compile(cfg.tag_pattern)
    with Forgejo.from_inventory(inventory, http_settings, user="puller") as fj:
        builds = [v for v in fj.package_versions(cfg.image) if pattern.match(v.version)]
    where = f"{inventory.forgejo.url} package {inventory.forgejo.owner}/{cfg.image}"
    check(bool(builds), expected=f"at least one build tag matching {cfg.tag_pattern}", seen="none", where=where)
    # ties in created_at (one-second resolution) go to the later version id, as Forgejo assigns them
    return max(builds, key=lambda v: (v.created_at, v.id))


@then("the newest tarball there is for that build tag")
def newest_is_build(bg, build):
    cfg = bg.reader.cfg
    expected = cfg.file_template.format(tag=build.version)
    newest = bg.newest
    check(newest.tag == build.version,
          expected=f"newest tarball {expected} (Forgejo's newest {cfg.image} build {build.version}, "
                   f"pushed {build.created_at:%Y-%m-%d %H:%M}Z)",
          seen=f"newest tarball is {newest.name} (mtime {_when(newest.mtime)}): wrong tag"
               + ("" if expected in bg.listing.entries else f"; {expected} is missing"),
          where=bg.listing.where(newest.name))


@then("the latest symlink points to the newest tarball")
def latest_points_to_newest(bg):
    name = bg.reader.cfg.latest_link
    entry = bg.listing.entries.get(name)
    newest = bg.newest
    check(entry is not None, expected=f"symlink {name} -> {newest.name}", seen=f"no {name} symlink (missing)",
          where=bg.listing.where(name))
    check(entry.kind == "l", expected=f"symlink {name} -> {newest.name}",
          seen=f"{name} is not a symlink (type {entry.kind})", where=bg.listing.where(name))
    target = entry.target.rstrip("/").rsplit("/", 1)[-1]
    check(target == newest.name, expected=f"symlink {name} -> {newest.name}", seen=f"{name} -> {entry.target}",
          where=bg.listing.where(name))


@then("the newest tarball passes gzip -t")
def newest_gzip_ok(bg):
    ok, err = bg.reader.gzip_test(bg.newest.name)
    check(ok, expected="gzip -t passes", seen=f"gzip -t failed: {err or 'non-zero exit'}",
          where=bg.listing.where(bg.newest.name))


@then("the newest tarball's manifest.json names the image and the build tag")
def manifest_names_build(bg, build):
    image = bg.reader.cfg.image
    newest = bg.newest
    where = bg.listing.where(newest.name) + " manifest.json"
    try:
        manifest = bg.reader.manifest(newest.name)
    except breakglass.ManifestUnreadable as e:
        raise GateFailed(expected=f"a docker-archive manifest.json naming {image}:{build.version}",
                         seen=str(e), where=where) from None
    check(breakglass.names_image_and_tag(manifest, image, build.version),
          expected=f"RepoTags naming {image}:{build.version}",
          seen=f"RepoTags {breakglass.repo_tags(manifest)} (wrong tag)", where=where)


@then("the newest tarball is no older than the inventory's limit")
def newest_fresh(bg, inventory):
    limit = inventory.registry_vm.breakglass.max_age_hours
    newest = bg.newest
    age_h = (bg.listing.now - newest.mtime) / 3600
    check(age_h <= limit, expected=f"newest tarball at most {limit:g} h old",
          seen=f"{newest.name} is {age_h:.1f} h old (stale: written {_when(newest.mtime)}, "
               f"host clock {_when(bg.listing.now)})",
          where=bg.listing.where(newest.name))


# -- the registry VM's containers ----------------------------------------------------


@pytest.fixture
def vm_engine_holder():
    held: list[DockerHost] = []
    yield held
    for d in held:
        d.close()


@given("the registry VM's Docker engine, reached over SSH", target_fixture="vm_containers")
def vm_engine(inventory, vm_engine_holder):
    d = DockerHost.registry_vm(inventory)
    vm_engine_holder.append(d)
    return d.containers()


@then("the old registry's container is not running")
def old_container_stopped(vm_containers, inventory):
    name = inventory.private_registry.container
    state = vm_containers.get(name)
    check(state is None or not state.running, expected=f"container {name} not running (stopped or removed)",
          seen=f"{state.describe() if state else ''}: still running",
          where=f"docker ps on {inventory.registry_vm.url}")


@then("the VM's compose file no longer starts the old registry")
def compose_without_old(inventory):
    vm = inventory.registry_vm
    host = RemoteHost.registry_vm(inventory)
    r = host.run(["cat", vm.compose_file])
    if not r.ok:
        raise Broken(f"cannot read {vm.compose_file} on {vm.url}: {r.stderr}")
    name = inventory.private_registry.container
    service = decommission.service_for_container(
        decommission.compose_services(r.text, where=f"{vm.url}:{vm.compose_file}"), name)
    check(service is None, expected=f"no active compose service runs {name} (commented out or removed)",
          seen=f"service {service!r} still defines it: `docker compose up` would start it again",
          where=f"{vm.url}:{vm.compose_file}")


@then("every pull-through cache container is running")
def caches_running(vm_containers, inventory):
    vm = inventory.registry_vm
    bad = []
    for name in vm.pull_through_caches:
        state = vm_containers.get(name)
        if state is None or not state.running:
            bad.append(state.describe() if state else f"{name}: no such container")
    check(not bad, expected=f"running: {', '.join(vm.pull_through_caches)}",
          seen="; ".join(f"{b} (stopped)" for b in bad), where=f"docker ps -a on {vm.url}")


@then("no old registry endpoint answers /v2/ as a registry")
def old_endpoints_dead(inventory, http_settings):
    answers = [decommission.probe_registry(url, http_settings, inventory.private_registry.ca_bundle)
               for url in inventory.registry_vm.old_endpoints]
    serving = [a for a in answers if a.serves_registry]
    check(not serving, expected="no registry answers at the old endpoints",
          seen="; ".join(f"{a.url} still serves a registry ({a.seen})" for a in serving),
          where=", ".join(a.url for a in serving))


@then("the registry VM holds no blob storage of the old registry once the purge is due")
def storage_freed(inventory):
    vm = inventory.registry_vm
    left = decommission.storage_left(RemoteHost.registry_vm(inventory), vm.storage_path, vm.storage_keep)
    decommission.judge_purge(left, vm.storage_keep, vm.decommissioned_on, vm.storage_grace_days,
                             where=f"{vm.url}:{vm.storage_path}")


# -- GitHub ---------------------------------------------------------------------


@given(parsers.parse("the GitHub repository of {project}"), target_fixture="gh_repo")
def github_repo(inventory, http_settings, project):
    repos = inventory.github.archived_after_cutover
    if project not in repos:
        raise Broken(f"no GitHub repository for {project!r} in github.archived_after_cutover "
                     f"({', '.join(repos) or 'empty'})")
    with GitHub.from_inventory(inventory, http_settings) as gh:
        return repos[project], gh.repository(repos[project]), inventory.github.api_url


@then("GitHub says the repository is archived")
def github_archived(gh_repo):
    full_name, repo, api = gh_repo
    where = f"GET {api}/repos/{full_name}"
    check(repo is not None, expected="archived: true", seen="404 (no such public repository)", where=where)
    check(repo.archived, expected="archived: true", seen=f"archived: false ({repo.html_url} not archived)",
          where=where)


@given(parsers.parse("the GitHub Actions workflows of {project}"), target_fixture="gh_workflows")
def github_workflows(inventory, http_settings, project):
    repos = inventory.github.workflows_disabled
    if project not in repos:
        raise Broken(f"no GitHub repository for {project!r} in github.workflows_disabled ({', '.join(repos) or 'empty'})")
    with GitHub.from_inventory(inventory, http_settings) as gh:
        return repos[project], gh.workflows(repos[project]), inventory.github.api_url


@then("no workflow of it is active on GitHub")
def github_workflows_disabled(gh_workflows):
    full_name, workflows, api = gh_workflows
    where = f"GET {api}/repos/{full_name}/actions/workflows"
    check(workflows is not None, expected="the repository's workflow list", seen="404 (no such public repository)",
          where=where)
    active = [w for w in workflows if w.runs]
    check(not active, expected="every GitHub Actions workflow disabled (state disabled_manually), so only "
                               "Woodpecker pushes the image",
          seen="; ".join(f"{w.path} ({w.name}): state {w.state}" for w in active), where=where)


# -- docker login ---------------------------------------------------------------


@given("the Docker API of the inventory", target_fixture="docker_api")
def docker_api(inventory, vm_engine_holder):
    d = DockerHost.configured(inventory)
    vm_engine_holder.append(d)
    return d


@when("the engine logs in to the Forgejo registry as the pusher", target_fixture="docker_login")
def engine_login(docker_api, inventory):
    f = inventory.forgejo
    secret = inventory.secret(f.pusher.secret)
    try:
        return f.host, f.pusher.username, docker_api.login(f.host, f.pusher.username, secret), None
    except LoginRefused as e:
        return f.host, f.pusher.username, "", e


@then("the engine accepts the login")
def login_accepted(docker_api, docker_login):
    host, user, status, refused = docker_login
    check(refused is None, expected=f"docker login {host} as {user} succeeds",
          seen=f"login refused (HTTP {refused.status if refused else ''}): {refused}",
          where=f"POST /auth on the Docker API {docker_api.url}")
