"""Steps about the registries: login, push, pull, package API (knowledge in phasegate.oci,
phasegate.integrity and phasegate.forgejo)."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then, when

from phasegate import integrity
from phasegate.forgejo import SmokePackage
from phasegate.http import GUARD
from phasegate.oci import NotFound, RegistryClient, registry_login
from phasegate.verdict import AuthError, GateFailed, check

ROLES = ("pusher", "puller", "cleaner")  # accounts of [forgejo] in the inventory


def _account(inventory, role: str):
    if role not in ROLES:
        raise ValueError(f"unknown Forgejo account {role!r} in a step (known: {', '.join(ROLES)})")
    return getattr(inventory.forgejo, role)


@pytest.fixture
def forgejo_registry(inventory):
    """role -> a phasegate.oci client for Forgejo's registry as that inventory account (one per scenario)."""
    clients: dict[str, RegistryClient] = {}

    def get(role: str) -> RegistryClient:
        _account(inventory, role)
        if role not in clients:
            clients[role] = RegistryClient.from_inventory(inventory, "forgejo", role)
        return clients[role]

    yield get
    for c in clients.values():
        c.close()


@pytest.fixture
def smoke(inventory) -> SmokePackage:
    return SmokePackage.from_inventory(inventory)


# -- login ---------------------------------------------------------------------


@when(parsers.parse("the {role} logs in to the Forgejo registry"), target_fixture="login")
def log_in(role, inventory, forgejo_registry):
    user = _account(inventory, role).username
    try:
        return registry_login(forgejo_registry(role))
    except AuthError as e:
        raise GateFailed(expected=f"{user} logs in to the registry (its PAT gets a token)", seen=str(e),
                         where=f"{inventory.forgejo.url}/v2/") from None


@then("the registry challenged for a Bearer token from its own token realm")
def challenged(login, inventory):
    realm = f"{inventory.forgejo.url}/v2/token"
    check(login.scheme == "bearer" and login.params.get("realm") == realm,
          expected=f'a 401 with WWW-Authenticate: Bearer realm="{realm}"',
          seen=login.challenge or "no challenge (the ping answered without asking for credentials)",
          where=f"GET {inventory.forgejo.url}/v2/")


@then(parsers.parse("the token realm gave the {role} a token"))
def token_given(login, role, inventory):
    check(login.token_status == 200, expected=f"HTTP 200 with a token for {_account(inventory, role).username}",
          seen=f"HTTP {login.token_status}" if login.token_status else "no token requested",
          where=login.token_url or f"{inventory.forgejo.url}/v2/token")


@then(parsers.parse("the registry answered the authenticated ping with {status:d}"))
def ping_answered(login, status, inventory):
    check(login.ping_status == status, expected=f"HTTP {status}", seen=f"HTTP {login.ping_status}",
          where=f"GET {inventory.forgejo.url}/v2/ with the token")


# -- the smoke package -----------------------------------------------------------


@given("no smoke package is left in Forgejo")
def no_smoke_package(request, inventory, http_settings, smoke):
    """Register the cleanup first (it runs also when a later step fails), then sweep leftovers
    (as the pusher, the owner who pushed it, else the cleaner: whichever is not refused)."""
    api = smoke.housekeeper(inventory, http_settings)

    def cleanup():
        # teardown of this @writes scenario: its cleanup may write
        with GUARD.writes_allowed(f"cleanup of {request.node.nodeid}"):
            smoke.sweep(api)
        api.close()

    request.addfinalizer(cleanup)
    smoke.sweep(api)
    left = [v.version for v in api.package_versions(smoke.image)]
    check(not left, expected=f"no version of {smoke.repository} left after the sweep",
          seen=f"versions still listed: {', '.join(left)}", where=f"{inventory.forgejo.url}/api/v1/packages/{smoke.owner}")


@given(parsers.parse("the {role} pushes the smoke image"), target_fixture="smoke_digest")
@when(parsers.parse("the {role} pushes the smoke image"), target_fixture="smoke_digest")
def push_smoke(role, inventory, forgejo_registry, smoke):
    user = _account(inventory, role).username
    try:
        return forgejo_registry(role).push(smoke.repository, smoke.build(), tag=smoke.tag)
    except AuthError as e:  # the pusher's one job refused: a finding, not an outage
        raise GateFailed(expected=f"{user} pushes {smoke.ref} (the owner's write:package PAT)", seen=str(e),
                         where=f"{inventory.forgejo.host}/{smoke.ref}") from None


@then(parsers.parse("the {role} can pull every manifest and blob of the smoke image"))
def pull_everything(role, inventory, forgejo_registry, smoke):
    user = _account(inventory, role).username
    try:
        result = integrity.check_image(forgejo_registry(role), smoke.repository, smoke.tag, mode="verify")
    except AuthError as e:  # e.g. the owner made private: other users may no longer read
        raise GateFailed(expected=f"{user} reads {smoke.ref} (read:package, the owner public or limited)",
                         seen=str(e), where=f"{inventory.forgejo.host}/{smoke.ref}") from None
    result.require_intact(f"{smoke.ref} as {user}")
    image = smoke.build()
    check(result.manifests >= 1 and result.blobs == len(image.blobs()),
          expected=f"{user} pulls the manifest and all {len(image.blobs())} blobs, each matching its digest",
          seen=result.summary(), where=f"{inventory.forgejo.host}/{smoke.ref}@{image.digest}")


@then(parsers.parse("the {role} is refused a push of the smoke image"))
def push_refused(role, inventory, forgejo_registry, smoke):
    user = _account(inventory, role).username
    try:
        digest = forgejo_registry(role).push(smoke.repository, smoke.build(), tag=smoke.tag)
    except AuthError:
        return  # 401/403: what a read:package PAT must get
    raise GateFailed(expected=f"{user}'s push refused with 401/403 (a read:package PAT)",
                     seen=f"push accepted: {smoke.ref}@{digest}", where=f"{inventory.forgejo.host}/{smoke.ref}")


@when(parsers.parse("the {role} deletes the smoke tag through the package API"), target_fixture="delete_status")
def delete_smoke(role, inventory, http_settings, smoke):
    with smoke.packages(inventory, http_settings, user=role) as api:
        return role, api.try_delete(smoke.image, smoke.tag)


@then(parsers.parse("the package API answered {status:d}"))
def package_api_answered(delete_status, status, inventory, smoke):
    role, (got, message) = delete_status
    check(got == status, expected=f"HTTP {status} to {_account(inventory, role).username}'s DELETE",
          seen=f"HTTP {got}" + (f" ({message})" if message else ""),
          where=f"DELETE {inventory.forgejo.url}/api/v1/packages/{smoke.owner}/container/{smoke.image}/{smoke.tag}")


@then("the smoke tag is gone from the package API")
def gone_from_package_api(inventory, http_settings, smoke):
    with smoke.packages(inventory, http_settings, user="puller") as api:
        one = api.get(smoke.image, smoke.tag)
        listed = [v.version for v in api.package_versions(smoke.image) if v.version == smoke.tag]
    check(one is None and not listed, expected=f"{smoke.ref} unknown to the package API (404, not listed)",
          seen=f"still there: GET {'200' if one else '404'}, listed {len(listed)} time(s)",
          where=f"{inventory.forgejo.url}/api/v1/packages/{smoke.owner}/container/{smoke.image}/{smoke.tag}")


@then("the smoke tag is gone from the registry")
def gone_from_registry(inventory, forgejo_registry, smoke):
    client = forgejo_registry("puller")
    head = client.head_manifest(smoke.repository, smoke.tag)
    try:
        tags = client.tags(smoke.repository)
    except NotFound:
        tags = []
    check(head.status == 404 and smoke.tag not in tags,
          expected=f"HEAD {smoke.ref} 404 and {smoke.tag!r} not in tags/list",
          seen=f"HEAD {head.status}{' ' + head.digest if head.digest else ''}, tags/list {'has' if smoke.tag in tags else 'lacks'} it",
          where=f"{inventory.forgejo.host}/v2/{smoke.repository}/manifests/{smoke.tag}")


# -- the retention job's own dry run (issue 16.2) --------------------------------


@when(parsers.parse("the retention CronJob's own Job runs once with DRY_RUN=true within {seconds:d} seconds"),
      target_fixture="retention_dry_run")
def retention_dry_run(kube, inventory, seconds):
    from phasegate import retention

    return retention.run_dry_run(kube, inventory.retention, timeout=seconds)


@then("no version the retention job keeps needs a manifest it would delete")
def dry_run_orphans_nothing(retention_dry_run, inventory, http_settings):
    from phasegate import retention
    from phasegate.forgejo import Forgejo

    f, run = inventory.forgejo, retention_dry_run
    with Forgejo.from_inventory(inventory, http_settings, user="puller") as api, \
            RegistryClient.from_inventory(inventory, "forgejo", "puller") as client:
        found = retention.judge_dry_run(run, list(api.versions()), client, f.owner)
    lines = retention.grouped(found, f.owner)
    check(not found, expected=f"the job's 'would DELETE' lines name no manifest a version it keeps needs ({run.summary})",
          seen=f"{len(lines)} needed manifest(s) on its delete list; first: {lines[0] if lines else ''}",
          where=f"job {run.job}", evidence="\n".join(lines) + "\n--- the job's log\n" + run.log)


# -- the push storm (issue 16.4) -----------------------------------------------------


@given("the push storm is enabled in the inventory")
def push_storm_enabled(inventory):
    from phasegate.verdict import NotJudged

    if not inventory.push_storm.enabled:
        raise NotJudged("[push_storm] enabled = false in the inventory: the storm puts real load on Forgejo (opt-in)")


@given("no push-storm package is left in Forgejo")
def no_push_storm_package(request, inventory, http_settings):
    """Register the removal first (it runs also when a later step fails), then sweep leftovers."""
    from phasegate import push_storm
    from phasegate.forgejo import Forgejo

    image = inventory.push_storm.image
    api = Forgejo.from_inventory(inventory, http_settings, user="pusher", deletable={image})

    def cleanup():
        with GUARD.writes_allowed(f"cleanup of {request.node.nodeid}"):
            push_storm.remove(api, image)
        api.close()

    request.addfinalizer(cleanup)
    push_storm.remove(api, image)


@when("the pusher pushes the inventory's push storm", target_fixture="storm")
def push_the_storm(inventory):
    import secrets

    from phasegate import push_storm

    s, f = inventory.push_storm, inventory.forgejo
    return push_storm.run_storm(lambda: RegistryClient.from_inventory(inventory, "forgejo", "pusher"),
                                f"{f.owner}/{s.image}", pushes=s.pushes, layers=s.layers, layer_size=s.layer_size,
                                chunk_size=s.chunk_size, run_id=f"storm-{secrets.token_hex(3)}")


@then("every push of the storm succeeded")
def storm_pushes_succeeded(storm, inventory):
    failed = storm.failed()
    check(not failed, expected=f"all {len(storm.pushes)} pushes succeed",
          seen=f"{len(failed)} failed: " + "; ".join(f"{p.tag}: {p.error}" for p in failed[:3]),
          where=f"{inventory.forgejo.host}/{storm.repository}", evidence=storm.summary())


@pytest.fixture
def storm_pressure():
    """What Prometheus saw of Forgejo during the storm (asked once per scenario, shared by its steps)."""
    return {}


@then(parsers.parse("Prometheus shows Forgejo's working set below {percent:d}% of its memory limit during the storm "
                    "within {seconds:d} seconds"))
def storm_working_set(storm, inventory, http_settings, percent, seconds, storm_pressure):
    from phasegate import push_storm
    from phasegate.prometheus import Prometheus, iso

    m, f = inventory.metrics, inventory.forgejo
    with Prometheus(m.prometheus_url, http_settings, ca_bundle=m.ca_bundle) as prom:
        p = push_storm.pressure(prom, m.queries, namespace=f.namespace, container=f.container, storm=storm,
                                wait_seconds=seconds)
    storm_pressure["seen"] = p
    check(p.ratio < percent / 100, expected=f"working set below {percent}% of the {p.limit / 2**20:.0f} MiB limit",
          seen=f"peak {p.peak / 2**20:.0f} MiB ({p.ratio:.0%}) at {iso(p.peak_at)}",
          where=f"PromQL {p.promql['working_set']} / {p.promql['memory_limit']}", evidence=storm.summary())


@then("Prometheus shows no restart of Forgejo during the storm")
def storm_no_restart(storm, inventory, http_settings, storm_pressure):
    from phasegate import push_storm
    from phasegate.prometheus import Prometheus

    p = storm_pressure.get("seen")
    if p is None:
        m, f = inventory.metrics, inventory.forgejo
        with Prometheus(m.prometheus_url, http_settings, ca_bundle=m.ca_bundle) as prom:
            p = push_storm.pressure(prom, m.queries, namespace=f.namespace, container=f.container, storm=storm,
                                    wait_seconds=120)
    check(p.restarts == 0, expected="no restart of Forgejo's container during the storm",
          seen=f"{p.restarts:g} restart(s)", where=f"PromQL {p.promql['restarts']}", evidence=storm.summary())
