"""Steps about the Kubernetes cluster (knowledge in phasegate.kube; registries through phasegate.oci)."""

from __future__ import annotations

import secrets as _secrets

import httpx
import pytest
from pytest_bdd import given, parsers, then, when

from phasegate import http, images, integrity
from phasegate.http import GUARD
from phasegate.kube import (Kube, PullSecret, expected_auths_keys, hosts_toml_path, image_ref_parts,
                            parse_hosts_toml, quantity, registry_url, size_bytes)
from phasegate.oci import NotFound, RegistryClient
from phasegate.verdict import AuthError, Broken, GateFailed, check


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


@then("its Forgejo container requests and is limited to the inventory's Forgejo memory")
def forgejo_memory(forgejo_deployment, inventory):
    c = _forgejo_container(forgejo_deployment, inventory)
    want = inventory.cluster.forgejo_memory
    res = c.resources
    req = (res.requests or {}).get("memory") if res else None
    lim = (res.limits or {}).get("memory") if res else None
    ok = req is not None and lim is not None and quantity(req) == quantity(want) == quantity(lim)
    check(ok, expected=f"memory request = limit = {want}", seen=f"request {req or 'unset'}, limit {lim or 'unset'}",
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
    for ref in filter(None, (r.strip() for r in refs.split(","))):
        name = ref.split("@", 1)[0]
        # Traefik names a CRD middleware <namespace>-<name>@kubernetescrd
        mw_ns, mw_name = (ns, name[len(ns) + 1:]) if name.startswith(ns + "-") else (ns, name)
        mw = kube.middleware(mw_ns, mw_name)
        if mw is None:
            seen.append(f"{ref}: middleware {mw_ns}/{mw_name} not found")
            continue
        limit = ((mw.get("spec") or {}).get("buffering") or {}).get("maxRequestBodyBytes")
        if limit is None:
            seen.append(f"{ref}: no buffering.maxRequestBodyBytes")
            continue
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
    want = expected_auths_keys(inventory, registries)
    seen = pull_secret.keys()
    check(seen == want, expected=f"{len(want)} auths entries: {', '.join(want)}",
          seen=f"{len(seen)} auths entries: {', '.join(seen)}", where=pull_secret.where())


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


FRESH_TAG_PREFIX = "pull-"


@given("a fresh tag pushed to Forgejo", target_fixture="fresh_tag")
def fresh_tag(request, inventory, http_settings):
    """A never-seen tag of the smoke package: unique bytes, so no node can serve it from its content store."""
    from phasegate.forgejo import Forgejo

    f = inventory.forgejo
    repository = f"{f.owner}/{f.smoke_image}"
    tag = f"{FRESH_TAG_PREFIX}{_secrets.token_hex(4)}"
    api = Forgejo.from_inventory(inventory, http_settings, user="cleaner", deletable={f.smoke_image})

    def cleanup():
        try:
            api.delete(f.smoke_image, tag)
        finally:
            api.close()

    _cleanup(request, cleanup, f"{repository}:{tag}")  # registered before the push
    for v in api.package_versions(f.smoke_image):  # leftovers of a crashed run
        if v.version.startswith(FRESH_TAG_PREFIX):
            api.delete(f.smoke_image, v.version)
    image = images.build_image(f"phasegate fresh pull {tag} {_secrets.token_hex(8)}")
    with RegistryClient.from_inventory(inventory, "forgejo", "pusher") as pusher:
        digest = pusher.push(repository, image, tag=tag)
    return {"image": f"{f.host}/{repository}:{tag}", "digest": digest, "repository": f"{f.host}/{repository}"}


@when("a pod on every node runs the fresh tag through the pull secret", target_fixture="pull_pods")
def pods_on_every_node(kube, namespace, pull_secret, fresh_tag):
    nodes = kube.node_names()
    check(bool(nodes), expected="at least one node", seen="the API lists no node", where=kube.where)
    pods = {node: kube.create_pod(namespace, "pull", node=node, image=fresh_tag["image"],
                                  pull_secret=pull_secret.name) for node in nodes}
    return {node: kube.wait_pod_settled(namespace, name) for node, name in pods.items()}


@then("every pod pulled the fresh tag from Forgejo")
def pulled_from_forgejo(kube, pull_pods, fresh_tag):
    problems = []
    for node, pod in sorted(pull_pods.items()):
        states = kube.container_states(pod)
        if not states:
            problems.append(f"node {node}: pod {pod.metadata.namespace}/{pod.metadata.name} is "
                            f"{pod.status.phase} with no container status")
            continue
        for s in states:
            if s.waiting_reason:
                problems.append(f"node {node}: {s.waiting_reason}: {s.message}")
            elif s.repository != fresh_tag["repository"] or s.digest != fresh_tag["digest"]:
                problems.append(f"node {node}: imageID {s.image_id or '(none)'}")
    check(not problems, expected=f"every node runs {fresh_tag['repository']}@{fresh_tag['digest']}",
          seen="; ".join(problems), where=f"namespace {next(iter(pull_pods.values())).metadata.namespace}, "
                                          f"image {fresh_tag['image']}")


# -- node files: containerd hosts.toml ----------------------------------------------


@when(parsers.parse("every node's hosts.toml for the {which} is read"), target_fixture="node_hosts")
def read_hosts_toml(kube, namespace, inventory, which):
    if which == "Forgejo host":
        hosts = [inventory.forgejo.host]
    elif which == "registry-private hosts":
        p = inventory.private_registry
        hosts = [p.host, *p.aliases]
    else:
        raise ValueError(f"unknown host set {which!r}")
    out = {}
    for node in kube.node_names():
        files = kube.read_node_files(namespace, node, [hosts_toml_path(inventory, h) for h in hosts])
        out[node] = dict(zip(hosts, files.values()))
    return out


@then("every node has a hosts.toml for the Forgejo host")
def hosts_toml_present(node_hosts, inventory):
    host = inventory.forgejo.host
    missing = [node for node, files in sorted(node_hosts.items()) if files.get(host) is None]
    check(not missing, expected=f"{hosts_toml_path(inventory, host)} on every node",
          seen=f"missing on node {', '.join(missing)}", where=f"nodes {', '.join(sorted(node_hosts))}")


@then("every node's Forgejo mirror is an inventory mirror that answers as the registry")
def mirror_internal(node_hosts, inventory, http_settings):
    host = inventory.forgejo.host
    allowed = {m.rstrip("/") for m in inventory.cluster.forgejo_mirrors}
    problems, answers = [], {}
    for node, files in sorted(node_hosts.items()):
        text = files.get(host)
        if text is None:
            problems.append(f"node {node}: no hosts.toml")
            continue
        try:
            cfg = parse_hosts_toml(text)
        except ValueError as e:
            problems.append(f"node {node}: hosts.toml is not valid TOML ({e})")
            continue
        pulls = [url for url, caps in cfg.mirrors if "pull" in caps and "resolve" in caps]
        if not pulls:
            problems.append(f"node {node}: no mirror with pull+resolve: pulls go to server {cfg.server}")
            continue
        for url in pulls:
            if url.rstrip("/") not in allowed:
                problems.append(f"node {node}: mirror {url} is not one of {', '.join(sorted(allowed))}")
                continue
            if url not in answers:
                answers[url] = _registry_answer(url, inventory, http_settings)
            if answers[url]:
                problems.append(f"node {node}: mirror {url} {answers[url]}")
    check(not problems, expected=f"every node's {host} mirror in {sorted(allowed)} answering /v2/ as the registry",
          seen="; ".join(problems), where=f"{hosts_toml_path(inventory, host)} on nodes {', '.join(sorted(node_hosts))}")


def _registry_answer(url: str, inventory, http_settings) -> str:
    """'' when `url` answers /v2/ like a registry (200, or 401 with a registry challenge), else what it did."""
    try:
        with http.client(http_settings, ca_bundle=inventory.forgejo.ca_bundle) as c:
            r = c.get(url.rstrip("/") + "/v2/")
    except Broken as e:
        return f"did not answer ({e})"
    api_version = r.headers.get("docker-distribution-api-version", "")
    challenge = r.headers.get("www-authenticate", "")
    if r.status_code == 200 or (r.status_code == 401 and ("realm" in challenge or api_version)):
        return ""
    return f"answered {r.status_code} ({r.text[:60].strip()!r}) for /v2/, not the registry"


@then("no node has a hosts.toml for registry-private")
def no_private_hosts(node_hosts, inventory):
    kept = [f"node {node}: {hosts_toml_path(inventory, h)}" for node, files in sorted(node_hosts.items())
            for h, text in files.items() if text is not None]
    check(not kept, expected="no hosts.toml for registry-private on any node", seen="; ".join(kept),
          where=f"nodes {', '.join(sorted(node_hosts))}")


# -- Phase 3: cutover ------------------------------------------------------------------


@given(parsers.parse('the project "{name}" of the inventory'), target_fixture="project")
def project(name, inventory):
    return inventory.project(name)


def _cutover_problems(kube, inventory, p, client: RegistryClient) -> list[str]:
    """Why project `p` is not cut over ([] if it is): template, rollout, running pods' images."""
    problems = _template_problems(kube, inventory, p)
    if problems:
        return problems
    problems += _rollout_problems(kube, p)
    problems += _pod_image_problems(kube, inventory, p, client)
    return problems


def _workload(kube, p):
    spec, obj = kube.pod_template(p)
    if spec is None:
        raise GateFailed(expected=f"{p.kind} {p.workload_name}", seen=f"no such {p.kind}",
                         where=f"namespace {p.namespace} (project {p.name})")
    return spec, obj


def _flipped_containers(spec, p):
    return [c for c in spec.containers if not p.container or c.name == p.container]


def _template_problems(kube, inventory, p) -> list[str]:
    spec, _ = _workload(kube, p)
    prefix = f"{inventory.forgejo.host}/{inventory.forgejo.owner}/"
    return [f"{p.kind} {p.namespace}/{p.workload_name} container {c.name}: image {c.image}"
            for c in _flipped_containers(spec, p) if not c.image.startswith(prefix)]


def _rollout_problems(kube, p) -> list[str]:
    _, obj = _workload(kube, p)
    if p.kind == "Deployment":
        why = kube.rollout_problem(obj)
        return [f"Deployment {p.namespace}/{p.workload_name}: {why}"] if why else []
    job = kube.newest_job(p)
    want = {c.name: c.image for c in obj.spec.job_template.spec.template.spec.containers}
    if job is None:
        return [f"CronJob {p.namespace}/{p.workload_name}: no Job has run since the flip"]
    ran = {c.name: c.image for c in job.spec.template.spec.containers}
    if ran != want:
        return [f"CronJob {p.namespace}/{p.workload_name}: newest Job {job.metadata.name} ran {sorted(ran.values())}, "
                f"not the template's {sorted(want.values())}"]
    if not (job.status and job.status.succeeded):
        return [f"CronJob {p.namespace}/{p.workload_name}: newest Job {job.metadata.name} has not succeeded"]
    return []


def _pod_image_problems(kube, inventory, p, client: RegistryClient) -> list[str]:
    spec, _ = _workload(kube, p)
    want = {c.name: c.image for c in _flipped_containers(spec, p)}
    pods = kube.workload_pods(p)
    if not pods:
        return [f"{p.kind} {p.namespace}/{p.workload_name}: no pod"]
    served: dict[str, str] = {}
    problems = []
    for pod in pods:
        for s in kube.container_states(pod):
            if s.container not in want:
                continue
            host, repo, tag = image_ref_parts(want[s.container])
            if want[s.container] not in served:
                try:
                    served[want[s.container]] = client.head_manifest(repo, tag).digest or "(no digest)"
                except NotFound:
                    served[want[s.container]] = "(tag not on Forgejo)"
            expect = f"{host}/{repo}@{served[want[s.container]]}"
            if s.image_id != expect:
                state = f" ({s.waiting_reason})" if s.waiting_reason else ""
                problems.append(f"{s.where()}: imageID {s.image_id or '(none)'}{state}, Forgejo serves {expect}")
    return problems


@pytest.fixture
def forgejo_puller(inventory):
    with RegistryClient.from_inventory(inventory, "forgejo", "puller") as c:
        yield c


def _needs_workload(p):
    if p.kind == "none":  # the inventory says so: an explicit opt-out, shown as not judged (never a skip)
        from phasegate.verdict import NotJudged

        raise NotJudged(f"{p.name}: inventory [[projects]] kind = \"none\": no cluster workload (cut over in "
                        f"{p.stack or 'files outside the cluster'}: judged by the Phase 3 static gates, "
                        f"run them with --project {p.name})")


@then("every project before it in the cutover order is cut over")
def earlier_cut_over(project, kube, inventory, forgejo_puller):
    order = inventory.cutover_order()
    names = [p.name for p in order]
    check(project.name in names, expected=f"{project.name} in the cutover order",
          seen=f"cutover order: {', '.join(names)}", where="inventory [[projects]]")
    problems = []
    for p in order[: names.index(project.name)]:
        if p.kind == "none":
            continue
        problems += [f"{p.name}: {x}" for x in _cutover_problems(kube, inventory, p, forgejo_puller)]
    check(not problems, expected=f"projects before {project.name} cut over", seen="; ".join(problems),
          where="cutover order " + " > ".join(names[: names.index(project.name) + 1]))


@then("its pod template images come from Forgejo")
def template_from_forgejo(project, kube, inventory):
    _needs_workload(project)
    problems = _template_problems(kube, inventory, project)
    check(not problems, expected=f"images under {inventory.forgejo.host}/{inventory.forgejo.owner}/",
          seen="; ".join(problems), where=f"project {project.name}")


@then("its rollout is complete")
def rollout_complete(project, kube):
    _needs_workload(project)
    problems = _rollout_problems(kube, project)
    check(not problems, expected="rollout complete", seen="; ".join(problems), where=f"project {project.name}")


@then("every running pod of it runs the image Forgejo serves for its tag")
def pods_run_forgejo_image(project, kube, inventory, forgejo_puller):
    _needs_workload(project)
    problems = _pod_image_problems(kube, inventory, project, forgejo_puller)
    check(not problems, expected="every pod's imageID = the digest Forgejo serves for the template's tag",
          seen="; ".join(problems), where=f"project {project.name}")


@then("its image passes the integrity check on Forgejo")
def image_integrity(project, kube, inventory, forgejo_puller):
    _needs_workload(project)
    spec, _ = _workload(kube, project)
    broken = []
    for c in _flipped_containers(spec, project):
        host, repo, tag = image_ref_parts(c.image)
        result = integrity.check_image(forgejo_puller, repo, tag)
        broken += [b.line() for b in result.broken]
    check(not broken, expected="every manifest and blob of the image present on Forgejo",
          seen="; ".join(broken), where=f"project {project.name}")
