"""The Kubernetes stand-in speaks the API the official client expects, and its controllers behave like a cluster's."""

from __future__ import annotations

import base64
import json

import pytest

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def kube(lab):
    from phasegate import config
    from phasegate.kube import Kube

    k = Kube.from_inventory(config.load(lab.inventory_path))
    yield k
    k.close()


@pytest.fixture
def writes():
    from phasegate.http import GUARD

    with GUARD.writes_allowed("stand-in test"):
        yield


@pytest.fixture
def namespace(kube, writes):
    from phasegate.http import GUARD

    name = kube.fresh_name("test")
    kube.create_namespace(name)
    yield name
    with GUARD.writes_allowed("teardown"):  # the plugin closes the guard before fixtures tear down
        kube.delete_namespace(name)


def test_every_object_validates_against_the_official_schema(lab, kube, namespace):
    """Seeded objects, controller-made objects (RS, pods, jobs) and a fresh namespace with its clone."""
    import kubernetes_validate

    kube.wait_for_secret(namespace, "registry-credentials")
    api = lab["cluster"].api
    checked, errors = 0, []
    for (group, version, plural), (kind, _) in __import__("phasegate.lab.kube", fromlist=["RESOURCES"]).RESOURCES.items():
        if group.endswith("traefik.io"):
            continue  # a CRD: no schema in the official set
        for obj in api.list(kind):
            try:
                kubernetes_validate.validate(obj, "1.30", strict=True)
            except kubernetes_validate.ValidationError as e:
                errors.append(f"{kind} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}: {e.message}")
            checked += 1
    assert checked > 30
    assert not errors, "\n".join(errors[:10])


def test_errors_are_kubernetes_status_objects(kube, namespace):
    from kubernetes.client.exceptions import ApiException
    from kubernetes import client as k8s

    with pytest.raises(ApiException) as e:
        kube.core.read_namespaced_secret("nope", namespace, _request_timeout=5)
    body = json.loads(e.value.body)
    assert (e.value.status, body["kind"], body["reason"], body["details"]["name"]) == (404, "Status", "NotFound", "nope")
    with pytest.raises(ApiException) as e:
        kube.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)), _request_timeout=5)
    assert (e.value.status, json.loads(e.value.body)["reason"]) == (409, "AlreadyExists")
    with pytest.raises(ApiException) as e:
        kube.core.create_namespaced_secret(namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="Bad_Name")),
                                           _request_timeout=5)
    assert (e.value.status, json.loads(e.value.body)["reason"]) == (422, "Invalid")
    with pytest.raises(ApiException) as e:
        kube.core.create_namespaced_pod("no-such-namespace", k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name="p"), spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="x")])),
            _request_timeout=5)
    assert e.value.status == 404


def test_a_wrong_token_is_unauthorized_and_broken(lab):
    import dataclasses

    from phasegate import config
    from phasegate.kube import Kube
    from phasegate.verdict import AuthError

    kc = lab.dir / "kubeconfig-wrong-token"
    kc.write_text(lab["cluster"].kubeconfig.read_text().replace(lab.secret("kube_token"), "wrong-token-123"))
    inv = config.load(lab.inventory_path)
    inv = dataclasses.replace(inv, cluster=dataclasses.replace(inv.cluster, kubeconfig=str(kc)))
    with pytest.raises(AuthError, match="401"):
        Kube.from_inventory(inv).node_names()


def test_kyverno_clones_into_new_namespaces_but_not_excluded_ones(lab, kube, namespace):
    from phasegate.kube import dockerconfig_auths

    secret = kube.wait_for_secret(namespace, "registry-credentials")
    source = kube.secret("kyverno", "registry-credentials")
    assert secret.type == "kubernetes.io/dockerconfigjson"
    assert dockerconfig_auths(secret).keys() == dockerconfig_auths(source).keys()
    for excluded in ("kube-system", "kube-public", "kube-node-lease"):
        assert kube.secret(excluded, "registry-credentials") is None


def test_the_write_guard_stops_kubernetes_writes_before_they_leave(lab, kube):
    from phasegate.http import GUARD
    from phasegate.verdict import WriteRefused

    api = lab["cluster"].api
    before = len(api.requests)
    GUARD.set(False)
    name = kube.fresh_name("guard")
    with pytest.raises(WriteRefused, match="read-only"):
        kube.create_namespace(name)
    with pytest.raises(WriteRefused):
        kube.apps.patch_namespaced_deployment("forgejo", "forgejo", {"metadata": {"labels": {"x": "y"}}})
    with pytest.raises(WriteRefused):
        kube.core.delete_namespace("forgejo")
    assert [m for m, _ in api.requests[before:] if m != "GET"] == []
    assert api.get("Namespace", name) is None


def test_deletion_refuses_what_the_suite_did_not_create(lab, kube, writes):
    from phasegate.kube import NotLabelled

    api = lab["cluster"].api
    api.put({"kind": "Namespace", "metadata": {"name": "phasegate-not-ours"}})  # prefix, but no label
    try:
        with pytest.raises(NotLabelled, match="phasegate-not-ours"):
            kube.delete_namespace("phasegate-not-ours")
        with pytest.raises(NotLabelled):
            kube.delete_namespace("forgejo")  # label missing and no prefix
        assert api.get("Namespace", "phasegate-not-ours") is not None
        assert kube.sweep() == [] or "phasegate-not-ours" not in kube.sweep()
    finally:
        api.delete("Namespace", "phasegate-not-ours")


def test_sweep_removes_leftovers_of_a_crashed_run(lab, kube, writes):
    name = kube.fresh_name("leftover")
    kube.create_namespace(name)
    assert name in kube.sweep()
    assert lab["cluster"].api.get("Namespace", name) is None


def test_kubelet_reports_err_image_pull_with_containerds_message(lab, kube, namespace, inventory_of):
    inv = inventory_of(lab)
    image = f"{inv.forgejo.host}/{inv.forgejo.owner}/no-such-image:1"
    kube.wait_for_secret(namespace, "registry-credentials")
    pod = kube.wait_pod_settled(namespace, kube.create_pod(namespace, "err", node="k8s-node1", image=image,
                                                           pull_secret="registry-credentials"))
    (state,) = kube.container_states(pod)
    assert pod.status.phase == "Pending"
    assert state.waiting_reason == "ImagePullBackOff" and state.image_id == ""
    # the mirror answers 404, so containerd falls back to the server entry (nothing listens in the lab)
    assert image in state.message and "127.0.0.1:1" in state.message


def test_pull_policy_never_and_if_not_present(lab, kube, namespace):
    from phasegate.lab.cluster import LOCAL_IMAGES

    never = kube.wait_pod_settled(namespace, kube.create_pod(namespace, "never", node="k8s-node2",
                                                             image="docker.io/library/absent:1", pull_policy="Never"))
    assert kube.container_states(never)[0].waiting_reason == "ErrImageNeverPull"
    present = kube.wait_pod_settled(namespace, kube.create_pod(namespace, "present", node="k8s-node2",
                                                               image=LOCAL_IMAGES["cleanup"], pull_policy="IfNotPresent"))
    assert present.status.phase == "Running"
    assert kube.container_states(present)[0].image_id.startswith("docker.io/library/alpine@sha256:")


def test_node_files_are_read_through_a_hostpath_pod(lab, kube, namespace, inventory_of):
    from phasegate.kube import hosts_toml_path

    inv = inventory_of(lab)
    c = lab["cluster"]
    path = hosts_toml_path(inv, inv.forgejo.host)
    files = kube.read_node_files(namespace, "k8s-node3", [path, "/etc/containerd/certs.d/absent.test/hosts.toml"])
    assert files[path] == c.nodes["k8s-node3"].hosts_toml(inv.forgejo.host).read_text()
    assert files["/etc/containerd/certs.d/absent.test/hosts.toml"] is None
    readers = kube.pods(namespace)
    assert readers and all(p.spec.volumes[0].host_path.path == "/etc/containerd/certs.d" for p in readers)


def test_rollout_restart_rolls_out_a_new_replicaset(lab, kube, writes, inventory_of):
    inv = inventory_of(lab)
    p = inv.project("freedify")
    before = kube.deployment(p.namespace, p.workload_name)
    old_pods = {x.metadata.name for x in kube.workload_pods(p)}
    kube.rollout_restart(p.namespace, p.workload_name)
    lab["cluster"].settle()
    after = kube.deployment(p.namespace, p.workload_name)
    assert after.metadata.generation == before.metadata.generation + 1
    assert kube.rollout_problem(after) == ""
    new_pods = {x.metadata.name for x in kube.workload_pods(p)}
    assert new_pods and not new_pods & old_pods


def test_job_from_cronjob_runs_a_registered_runner(lab, kube, writes):
    from phasegate.lab.kube import RunContext

    seen = {}

    def runner(ctx: RunContext):
        seen["user"] = ctx.env.get("REG_USER")
        seen["node"] = ctx.node.name
        return 0, "probe ran\nrepos_checked 3\n"

    api = lab["cluster"].api
    api.register_runner("monitoring", "forgejo-integrity-probe", runner)
    try:
        name = kube.create_job_from_cronjob("monitoring", "forgejo-integrity-probe", "test")
        lab["cluster"].settle()
        job = kube.batch.read_namespaced_job(name, "monitoring")
        assert job.status.succeeded == 1
        (pod,) = kube.pods("monitoring", f"job-name={name}")
        assert kube.pod_log("monitoring", pod.metadata.name) == "probe ran\nrepos_checked 3\n"
        assert seen["user"] == "cluster-puller"
        cj = kube.cronjob("monitoring", "forgejo-integrity-probe")
        assert cj.status.last_successful_time is not None
    finally:
        api.runners.pop(("monitoring", "forgejo-integrity-probe"), None)
        kube.delete_job("monitoring", name)


def test_seeded_job_history_keeps_logs(lab, kube):
    api = lab["cluster"].api
    job = api.seed_job("forgejo", "forgejo-cleanup", "forgejo-cleanup-29000000",
                       log="Summary: kept=10 to_delete=2 dry_run=true\n")
    try:
        (pod,) = kube.pods("forgejo", "job-name=forgejo-cleanup-29000000")
        assert kube.pod_log("forgejo", pod.metadata.name).endswith("dry_run=true\n")
    finally:
        api.delete("Job", job["metadata"]["name"], "forgejo")


def test_dockerconfigjson_is_what_kubectl_writes(lab):
    from phasegate.lab.cluster import dockerconfigjson

    cfg = json.loads(base64.b64decode(dockerconfigjson({"h:1": ("u", "p")})))
    assert cfg == {"auths": {"h:1": {"username": "u", "password": "p", "auth": base64.b64encode(b"u:p").decode()}}}
