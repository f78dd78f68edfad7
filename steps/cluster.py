"""Steps about the Kubernetes cluster (knowledge in phasegate.kube; registries through phasegate.oci)."""

from __future__ import annotations

import secrets as _secrets

import pytest
from pytest_bdd import given, parsers, then, when

from phasegate import containerd_config, cutover, images, nodepull, report
from phasegate.http import GUARD
from phasegate.kube import (
    Kube,
    PullSecret,
    auths_registries,
    expected_auths_keys,
    hosts_toml_path,
    quantity,
    registry_url,
    size_bytes,
)
from phasegate.oci import RegistryClient
from phasegate.verdict import AuthError, GateFailed, NotJudged, check


@pytest.fixture(scope="session")
def kube(inventory):
    k = Kube.from_inventory(inventory)
    yield k
    k.close()


def _cleanup(request, fn, what: str):
    """Run `fn` at teardown with writes allowed (the scenario that created it was @writes)."""

    def run():
        with GUARD.writes_allowed(f"cleanup of {what} ({request.node.nodeid})"):
            fn()

    request.addfinalizer(run)


# -- Forgejo's objects ----------------------------------------------------------


@given("the Forgejo Deployment", target_fixture="forgejo_deployment")
def forgejo_deployment(kube, inventory):
    f = inventory.forgejo
    d = kube.deployment(f.namespace, f.deployment)
    check(d is not None, expected=f"Deployment {f.deployment}", seen="no such Deployment",
          where=f"namespace {f.namespace}")
    return d


def _forgejo_container(d, inventory):
    f = inventory.forgejo
    for c in d.spec.template.spec.containers:
        if c.name == f.container:
            return c
    raise GateFailed(expected=f"container {f.container}", seen=f"containers {[c.name for c in d.spec.template.spec.containers]}",
                     where=f"Deployment {f.namespace}/{f.deployment}")


@then("its Forgejo container requests and is limited to at least the inventory's Forgejo memory")
def forgejo_memory(forgejo_deployment, inventory):
    c = _forgejo_container(forgejo_deployment, inventory)
    want = inventory.cluster.forgejo_memory
    res = c.resources
    req = (res.requests or {}).get("memory") if res else None
    lim = (res.limits or {}).get("memory") if res else None
    ok = req is not None and lim is not None and quantity(req) >= quantity(want) and quantity(lim) >= quantity(want)
    check(ok, expected=f"memory request and limit >= {want}", seen=f"request {req or 'unset'}, limit {lim or 'unset'}",
          where=f"Deployment {inventory.forgejo.namespace}/{inventory.forgejo.deployment} container {c.name}")


@then("its Forgejo container sets the inventory's packages environment variables")
def forgejo_env(forgejo_deployment, inventory):
    c = _forgejo_container(forgejo_deployment, inventory)
    env = {e.name: e.value for e in c.env or []}
    want = inventory.cluster.forgejo_env
    wrong = {k: env.get(k, "<unset>") for k, v in want.items() if env.get(k) != v}
    check(not wrong, expected=", ".join(f"{k}={v}" for k, v in want.items()),
          seen=", ".join(f"{k}={v}" for k, v in wrong.items()),
          where=f"Deployment {inventory.forgejo.namespace}/{inventory.forgejo.deployment} container {c.name}")


@given("the Forgejo PVC", target_fixture="forgejo_pvc")
def forgejo_pvc(kube, inventory):
    ns, name = inventory.forgejo.namespace, inventory.cluster.forgejo_pvc
    pvc = kube.pvc(ns, name)
    check(pvc is not None, expected=f"PersistentVolumeClaim {name}", seen="no such PVC", where=f"namespace {ns}")
    return pvc


@then("the PVC requests and has at least the inventory's minimum size")
def pvc_size(forgejo_pvc, inventory):
    want = inventory.cluster.forgejo_pvc_min
    req = (forgejo_pvc.spec.resources.requests or {}).get("storage")
    cap = ((forgejo_pvc.status.capacity if forgejo_pvc.status else None) or {}).get("storage")
    ok = req is not None and cap is not None and quantity(req) >= quantity(want) and quantity(cap) >= quantity(want)
    check(ok, expected=f"storage request and capacity >= {want}", seen=f"request {req or 'unset'}, capacity {cap or 'unset'}",
          where=f"PVC {inventory.forgejo.namespace}/{inventory.cluster.forgejo_pvc}")


@given("the Forgejo ingress", target_fixture="forgejo_ingress")
def forgejo_ingress(kube, inventory):
    ns, name = inventory.forgejo.namespace, inventory.cluster.forgejo_ingress
    ing = kube.ingress(ns, name)
    check(ing is not None, expected=f"Ingress {name}", seen="no such Ingress", where=f"namespace {ns}")
    return ing


@then("the ingress carries a Traefik buffering middleware allowing the inventory's body size")
def ingress_buffering(forgejo_ingress, kube, inventory):
    ns = forgejo_ingress.metadata.namespace
    where = f"Ingress {ns}/{forgejo_ingress.metadata.name}"
    want = size_bytes(inventory.cluster.forgejo_max_body)
    refs = (forgejo_ingress.metadata.annotations or {}).get("traefik.ingress.kubernetes.io/router.middlewares", "")
    seen = []
    by_ref = kube.middlewares_by_ref()  # Traefik names a CRD middleware <namespace>-<name>@kubernetescrd
    for ref in filter(None, (r.strip() for r in refs.split(","))):
        mw = by_ref.get(ref.split("@", 1)[0])
        if mw is None:
            seen.append(f"{ref}: no such middleware")
            continue
        limit = ((mw.get("spec") or {}).get("buffering") or {}).get("maxRequestBodyBytes")
        if limit is None:
            continue  # another middleware (retry, error pages, rate limit, ...)
        if int(limit) >= want:
            return
        seen.append(f"{ref}: maxRequestBodyBytes {limit}")
    raise GateFailed(expected=f"a Buffering middleware with maxRequestBodyBytes >= {want} ({inventory.cluster.forgejo_max_body})",
                     seen="; ".join(seen) or "no middleware on the ingress (router.middlewares annotation unset)",
                     where=where)


# -- fresh namespace and the cloned pull secret -----------------------------------


@given("a fresh namespace", target_fixture="namespace")
def fresh_namespace(request, kube):
    name = kube.fresh_name("ns")
    _cleanup(request, lambda: kube.delete_namespace(name), f"namespace {name}")  # before creating it
    kube.sweep()
    kube.create_namespace(name)
    return name


@when("Kyverno has cloned the pull secret into it", target_fixture="pull_secret")
def cloned_pull_secret(kube, namespace, inventory):
    c = inventory.cluster
    sec = kube.wait_for_secret(namespace, c.credentials_secret)
    check(sec is not None, expected=f"Secret {c.credentials_secret} cloned from {c.credentials_namespace}",
          seen=f"no such Secret after {c.wait_timeout:.0f}s", where=f"namespace {namespace}")
    return PullSecret.from_v1(sec)


@then(parsers.parse("the pull secret holds exactly the auths keys of {registries}"))
def auths_keys(pull_secret, registries, inventory):
    """Keys are matched to registries as kubelet's keyring matches them (phasegate.cri: `https://host/v2/` is host)."""
    seen = pull_secret.keys()
    missing, extra = auths_registries(seen, inventory, registries)
    want = ", ".join(expected_auths_keys(inventory, registries))
    check(not missing and not extra, expected=f"auths entries for exactly {registries} ({want}), keys matched as "
                                              "kubelet's keyring matches them",
          seen=f"{len(seen)} auths entries: {', '.join(seen)}"
               + (f"; no entry for {', '.join(missing)}" if missing else "")
               + (f"; not of {registries}: {', '.join(extra)}" if extra else ""), where=pull_secret.where())


@then("every auths entry of the pull secret authenticates against its registry")
def auths_authenticate(pull_secret, inventory, http_settings):
    failures = []
    for key, (user, password) in sorted(pull_secret.auths.items()):
        url, ca = registry_url(inventory, key)
        try:
            with RegistryClient(url, username=user, password=password, ca_bundle=ca, settings=http_settings) as client:
                client.ping()
        except AuthError as e:
            failures.append(f"{key} as {user!r}: {e}")
    check(not failures, expected="every auths entry's credentials accepted by its registry",
          seen="; ".join(failures), where=pull_secret.where())


# -- fresh-tag pulls from every node -----------------------------------------------


FRESH_TAG_PREFIX = nodepull.FRESH_TAG_PREFIX


@given("a fresh tag pushed to Forgejo", target_fixture="fresh_tag")
def fresh_tag(request, inventory, http_settings):
    """A never-seen tag of the smoke package: the smoke program (linux/amd64 + arm64) with unique bytes, so no
    node can serve it from its content store."""
    from phasegate.forgejo import Forgejo

    f = inventory.forgejo
    repository = f"{f.owner}/{f.smoke_image}"
    tag = f"{FRESH_TAG_PREFIX}{_secrets.token_hex(4)}"
    api = Forgejo.from_inventory(inventory, http_settings, user="cleaner", deletable={f.smoke_image})
    image = images.build_smoke(f"phasegate fresh pull {tag} {_secrets.token_hex(8)}")

    def cleanup():
        try:
            nodepull.remove_fresh_tag(api, f.smoke_image, tag, [c.digest for c in image.children])
        finally:
            api.close()

    _cleanup(request, cleanup, f"{repository}:{tag}")  # registered before the push
    nodepull.sweep_fresh_tags(api, f.smoke_image)  # leftovers of a crashed run
    with RegistryClient.from_inventory(inventory, "forgejo", "pusher") as pusher:
        digest = pusher.push(repository, image, tag=tag)
    return nodepull.FreshTag(f"{f.host}/{repository}:{tag}", f"{f.host}/{repository}", digest)


@when("a pod on every node runs the fresh tag through the pull secret", target_fixture="pull_pods")
def pods_on_every_node(kube, namespace, pull_secret, fresh_tag):
    return nodepull.run_on_every_node(kube, namespace, fresh_tag, pull_secret.name)


@then("every pod pulled the fresh tag from Forgejo")
def pulled_from_forgejo(kube, pull_pods, fresh_tag):
    problems = nodepull.problems(kube, pull_pods, fresh_tag)
    check(not problems, expected=f"every node ran {fresh_tag.repository}@{fresh_tag.digest} to exit code 0",
          seen="; ".join(problems), where=f"namespace {pull_pods.namespace}, image {fresh_tag.image}")


# -- node files: containerd hosts.toml (Phase 0) and every registry configuration (Phase 4) ------


@when("every node's hosts.toml for the Forgejo host is read", target_fixture="node_hosts")
def read_hosts_toml(kube, namespace, inventory):
    return nodepull.read_hosts_tomls(kube, namespace, inventory, [inventory.forgejo.host])


@then("every node has a hosts.toml for the Forgejo host")
def hosts_toml_present(node_hosts, inventory):
    host = inventory.forgejo.host
    missing = [node for node, files in sorted(node_hosts.items()) if files.get(host) is None]
    check(not missing, expected=f"{hosts_toml_path(inventory, host)} on every node",
          seen=f"missing on node {', '.join(missing)}", where=f"nodes {', '.join(sorted(node_hosts))}")


@then("every node's Forgejo mirror is an inventory mirror that answers as the registry")
def mirror_answers(node_hosts, kube, namespace, inventory, http_settings):
    problems = nodepull.mirror_problems(kube, namespace, inventory, node_hosts, http_settings)
    allowed = sorted(m.rstrip("/") for m in inventory.cluster.forgejo_mirrors)
    check(not problems, expected=f"every node's {inventory.forgejo.host} mirror in {allowed} answering /v2/ as "
                                 "the registry, probed as containerd would (hosts.toml TLS settings)",
          seen="; ".join(problems),
          where=f"{hosts_toml_path(inventory, inventory.forgejo.host)} on nodes {', '.join(sorted(node_hosts))}")


@when("every node's containerd registry configuration is read", target_fixture="node_registry_configs")
def read_registry_configs(kube, namespace, inventory):
    return containerd_config.read_nodes(kube, namespace, inventory.cluster)


@then("no node's containerd registry configuration names registry-private")
def no_private_registry_config(node_registry_configs, inventory):
    p = inventory.private_registry
    containerd_config.judge_named_nowhere(node_registry_configs, [p.host, *p.aliases])


# -- Phase 3: cutover (phasegate.cutover judges; one step per check, the order last) ----------


@given(parsers.parse('the project "{name}" of the inventory'), target_fixture="project")
def project(name, inventory):
    return inventory.project(name)


@pytest.fixture
def forgejo_puller(inventory):
    with RegistryClient.from_inventory(inventory, "forgejo", "puller") as c:
        yield c


def _judge(findings, project, expected: str):
    report.attach_text(f"{findings.check}: judged and ignored", findings.evidence() or "(nothing)")
    check(findings.ok, expected=expected, seen="; ".join(findings.problems), where=f"project {project.name}",
          evidence=findings.evidence())


def _in_cluster(project):
    if not project.in_cluster():  # the inventory lists no workload: an explicit opt-out, never a silent skip
        where = project.stack or "files outside the cluster"
        raise NotJudged(f"{project.name}: inventory [[projects]] lists no cluster workload (cut over in {where}: "
                        f"judged by the Phase 3 static gates, run them with --project {project.name})")


@then("its pod templates name Forgejo for the project's images")
def template_from_forgejo(project, kube, inventory):
    _in_cluster(project)
    _judge(cutover.template(kube, inventory, project), project,
           f"every container and init container running {', '.join(project.own_images)} names "
           f"{cutover.forgejo_prefix(inventory)}")


@then("its rollouts are complete")
def rollout_complete(project, kube, inventory):
    _in_cluster(project)
    _judge(cutover.rollout(kube, inventory, project), project,
           "every Deployment rolled out; every CronJob's newest Job ran the template and succeeded")


@then("every running pod of it runs its templates' images")
def pods_run_template(project, kube, inventory):
    _in_cluster(project)
    _judge(cutover.pods(kube, inventory, project), project,
           "running pods (phase Running, no deletionTimestamp) with every own container started from the template")


@then("every running pod of it runs the digest Forgejo serves for its tag")
def pods_run_forgejo_digest(project, kube, inventory, forgejo_puller):
    _in_cluster(project)
    _judge(cutover.digest(kube, inventory, project, forgejo_puller), project,
           "every own container's imageID digest = the digest Forgejo serves for the template's tag")


@then("its images pass the integrity check on Forgejo")
def image_integrity(project, kube, inventory, forgejo_puller):
    _in_cluster(project)
    _judge(cutover.integrity_of(kube, inventory, project, forgejo_puller), project,
           "every manifest and blob of the project's images present on Forgejo")


@then("every project before it in the cutover order is cut over")
def earlier_cut_over(project, kube, inventory, forgejo_puller):
    f = cutover.order(kube, inventory, project, forgejo_puller)
    names = [p.name for p in inventory.cutover_order()]
    upto = names[: names.index(project.name) + 1] if project.name in names else names
    _judge(f, project, f"projects before {project.name} cut over (cutover order {' > '.join(upto)})")
