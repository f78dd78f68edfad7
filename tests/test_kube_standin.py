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
    for (group, _version, _plural), (kind, _) in __import__("phasegate.lab.kube", fromlist=["RESOURCES"]).RESOURCES.items():
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
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

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
    from phasegate.pullsecret import dockerconfig_auths

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
    lab["cluster"].settle()  # deletion is asynchronous: Terminating first
    assert lab["cluster"].api.get("Namespace", name) is None


def test_kubelet_reports_err_image_pull_with_containerds_message(lab, kube, namespace, inventory_of):
    inv = inventory_of(lab)
    image = f"{inv.forgejo.host}/{inv.forgejo.owner}/no-such-image:1"
    kube.wait_for_secret(namespace, "registry-credentials")
    pod = kube.wait_pod_settled(namespace, kube.create_pod(namespace, "err", node="k8s-node1", image=image,
                                                           pull_secret="registry-credentials"))
    (state,) = kube.container_states(pod)
    assert pod.status.phase == "Pending"
    assert state.waiting_reason == "ErrImagePull" and state.image_id == ""
    assert state.message.startswith(f'Failed to pull image "{image}": rpc error: code = Unknown desc = '
                                    f'failed to pull and unpack image')
    # the mirror answers 404 for an unknown image, so containerd falls back to the server entry (nothing listens)
    assert "127.0.0.1:1" in state.message


def test_pull_policy_never_and_if_not_present(lab, kube, namespace):
    from phasegate.lab.cluster import LOCAL_IMAGES

    never = kube.wait_pod_settled(namespace, kube.create_pod(namespace, "never", node="k8s-node2",
                                                             image="docker.io/library/absent:1", pull_policy="Never"))
    assert kube.container_states(never)[0].waiting_reason == "ErrImageNeverPull"
    present = kube.wait_pod_settled(namespace, kube.create_pod(namespace, "present", node="k8s-node2",
                                                               image=LOCAL_IMAGES["cleanup"], pull_policy="IfNotPresent"))
    assert present.status.phase == "Succeeded"  # its command ran to the end on the node's containerd
    assert kube.container_states(present)[0].image_id.startswith("docker.io/library/alpine@sha256:")
    assert kube.pod_log(namespace, present.metadata.name) == "lab image: exit 0\n"


def test_node_files_are_read_through_a_hostpath_pod(lab, kube, namespace, inventory_of):
    from phasegate.pullsecret import hosts_toml_path

    inv = inventory_of(lab)
    c = lab["cluster"]
    path = hosts_toml_path(inv, inv.forgejo.host)
    files = kube.read_node_files(namespace, "k8s-node3", [path, "/etc/containerd/certs.d/absent.test/hosts.toml"])
    assert files[path] == c.nodes["k8s-node3"].hosts_toml(inv.forgejo.host).read_text()
    assert files["/etc/containerd/certs.d/absent.test/hosts.toml"] is None
    readers = kube.pods(namespace)
    # the node's / read-only: a missing hostPath source would be created by containerd's CRI (MkdirAll)
    assert readers and all(p.spec.volumes[0].host_path.path == "/" for p in readers)
    assert all(p.spec.containers[0].volume_mounts[0].read_only for p in readers)
    assert kube.read_node_files(namespace, "k8s-node3", ["/etc/containerd/config.toml"])[
        "/etc/containerd/config.toml"] == c.nodes["k8s-node3"].config_toml.read_text()
    listed = kube.list_node_dirs(namespace, "k8s-node3", ["/etc/containerd/certs.d", "/etc/docker/certs.d"])
    assert listed == {"/etc/containerd/certs.d": sorted(p.name for p in c.nodes["k8s-node3"].certs_d.iterdir()),
                      "/etc/docker/certs.d": None}
    assert kube.node_runtimes()["k8s-node3"].startswith("containerd://")


def test_rollout_restart_rolls_out_a_new_replicaset(lab, kube, writes, inventory_of):
    ns, name = "freedify", "music-viktor"
    before = kube.deployment(ns, name)
    old_pods = {x.metadata.name for x in kube.pods(ns, "app=music-viktor")}
    kube.rollout_restart(ns, name)
    lab["cluster"].settle()
    after = kube.deployment(ns, name)
    assert after.metadata.generation == before.metadata.generation + 1
    assert kube.rollout_problem(after) == ""
    new_pods = {x.metadata.name for x in kube.pods(ns, "app=music-viktor")}
    assert new_pods and not new_pods & old_pods
    # the old ReplicaSet is scaled down to 0 (kubernetes pkg/controller/deployment/rolling.go reconcileOldReplicaSets)
    old_rs = [rs for rs in kube.apps.list_namespaced_replica_set(ns).items
              if rs.metadata.owner_references[0].name == name and rs.spec.template.metadata.annotations is None]
    assert old_rs and all(rs.spec.replicas == 0 for rs in old_rs)


def test_job_from_cronjob_runs_a_registered_runner(lab, kube, writes):
    from phasegate.lab.kube import RunContext

    seen = {}

    def runner(ctx: RunContext):
        seen["user"] = ctx.env.get("REG_USER")
        seen["node"] = ctx.node.name
        return 0, "probe ran\nrepos_checked 3\n"

    api = lab["cluster"].api
    lab_runner = api.runners.get(("monitoring", "forgejo-integrity-probe"))  # the metrics lab's probe
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
        # the lab is shared with later tests on this worker (the fault matrix runs the probe): put its runner back
        if lab_runner is None:
            api.runners.pop(("monitoring", "forgejo-integrity-probe"), None)
        else:
            api.register_runner("monitoring", "forgejo-integrity-probe", lab_runner)
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


# -- issue 14 / 20: kubelet, containerd and controller semantics the gates rely on ------------------------------


@pytest.fixture
def smoke_ref(lab, inventory_of):
    """push(tag, image=None) -> (reference, digest): a smoke image pushed to the session lab's Forgejo, its
    version removed again at teardown (the lab is shared: a later fault that takes the newest image, or a
    walk of every image, must find the seeded ones only)."""
    from phasegate import images
    from phasegate.http import GUARD
    from phasegate.oci import RegistryClient
    from phasegate.secrets import Secret

    f = inventory_of(lab).forgejo
    repo = f"{f.owner}/{f.smoke_image}"
    pushed = []

    def push(tag: str, image=None):
        pushed.append(tag)
        with RegistryClient(str(f.url), username=f.pusher.username, password=Secret(lab.secret(f.pusher.secret)),
                            ca_bundle=f.ca_bundle) as c, GUARD.writes_allowed("stand-in test"):
            digest = c.push(repo, image or images.build_smoke(f"standin {tag}"), tag=tag)
        return f"{f.host}/{repo}:{tag}", digest

    yield push
    for tag in pushed:
        lab["registries"].forgejo.delete_version(repo, tag)


def test_the_smoke_image_really_runs_on_the_nodes_containerd(lab, kube, namespace, smoke_ref):
    from phasegate import images

    ref, digest = smoke_ref("standin-run")
    kube.wait_for_secret(namespace, "registry-credentials")
    pod = kube.wait_pod_settled(namespace, kube.create_pod(namespace, "smoke", node="k8s-node1", image=ref,
                                                           pull_secret="registry-credentials"))
    (state,) = kube.container_states(pod)
    assert (pod.status.phase, state.exit_code, state.digest) == ("Succeeded", 0, digest)
    assert kube.pod_log(namespace, pod.metadata.name) == images.SMOKE_MESSAGE.decode()


def test_a_command_less_image_fails_with_create_container_error_and_no_image_id(lab, kube, namespace, smoke_ref):
    """containerd's CRI: "no command specified" (pkg/cri/opts/spec.go WithProcessArgs); kubelet: CreateContainerError."""
    from phasegate import images

    ref, _ = smoke_ref("standin-nocmd", images.build_image("standin no command", command=()))
    kube.wait_for_secret(namespace, "registry-credentials")
    name = kube.create_pod(namespace, "nocmd", node="k8s-node2", image=ref, pull_secret="registry-credentials")
    lab["cluster"].settle()
    (state,) = kube.container_states(kube.core.read_namespaced_pod(name, namespace))
    assert state.waiting_reason == "CreateContainerError" and state.image_id == ""
    assert "failed to generate spec: no command specified" in state.message


def test_a_url_form_auths_key_pulls_as_kubelet_matches_it(lab, kube, namespace, inventory_of, writes, smoke_ref):
    """kubelet's keyring: `https://host/v2/` is `host` (pkg/credentialprovider/keyring.go)."""
    from kubernetes import client as k8s

    from phasegate.lab.cluster import dockerconfigjson

    inv = inventory_of(lab)
    ref, digest = smoke_ref("standin-urlkey")
    entries = {f"https://{inv.forgejo.host}/v2/": ("cluster-puller", lab.secret("forgejo_pull_token"))}
    kube.core.create_namespaced_secret(namespace, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="url-form"), type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": dockerconfigjson(entries)}))
    pod = kube.wait_pod_settled(namespace, kube.create_pod(namespace, "urlkey", node="k8s-node3", image=ref,
                                                           pull_secret="url-form"))
    (state,) = kube.container_states(pod)
    assert (state.exit_code, state.digest) == (0, digest), state


def test_init_containers_run_first_and_report_their_statuses(lab, kube):
    pod = next(p for p in kube.pods("claude-agent") if p.status.phase == "Running")
    inits = [s for s in kube.container_states(pod) if s.init]
    assert [s.container for s in inits] == ["fix-perms", "copy-claude-creds", "git-init", "seed-beads-agent"]
    assert all(s.exit_code == 0 and s.image_id for s in inits)
    assert {c.type: c.status for c in pod.status.conditions}["Initialized"] == "True"


def test_image_id_is_containerds_first_sorted_repo_digest(lab, kube, namespace, smoke_ref):
    """containerd keys an image by content and merges its references, sorted; the CRI reports the first
    repo@digest (pkg/cri/store/image/image.go, pkg/cri/server/container_status.go)."""
    ref, digest = smoke_ref("standin-refs")
    node = lab["cluster"].nodes["k8s-node1"]
    node.pull(ref, "cluster-puller", lab.secret("forgejo_pull_token"))
    node._ctr(["images", "tag", ref, "0.old-registry.test:5050/smoke:standin-refs"], timeout=10)
    try:
        kube.wait_for_secret(namespace, "registry-credentials")
        pod = kube.wait_pod_settled(namespace, kube.create_pod(namespace, "refs", node="k8s-node1", image=ref,
                                                               pull_secret="registry-credentials",
                                                               pull_policy="IfNotPresent"))
        (state,) = kube.container_states(pod)
        assert state.image_id == f"0.old-registry.test:5050/smoke@{digest}"
    finally:
        node.remove_image("0.old-registry.test:5050/smoke:standin-refs")


def test_err_image_pull_and_back_off_alternate_while_the_kubelet_retries(lab, kube, namespace, inventory_of):
    import time

    inv = inventory_of(lab)
    image = f"{inv.forgejo.host}/{inv.forgejo.owner}/no-such-image:retry"
    kube.wait_for_secret(namespace, "registry-credentials")
    name = kube.create_pod(namespace, "retry", node="k8s-node1", image=image, pull_secret="registry-credentials")
    seen = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not {"ErrImagePull", "ImagePullBackOff"} <= set(seen[2:]):
        pod = kube.core.read_namespaced_pod(name, namespace)
        states = kube.container_states(pod)
        if states and (not seen or seen[-1] != states[0].waiting_reason):
            seen.append(states[0].waiting_reason)
        time.sleep(0.05)
    assert seen[:2] == ["ErrImagePull", "ImagePullBackOff"] and {"ErrImagePull", "ImagePullBackOff"} <= set(seen[2:]), seen


def test_status_is_a_subresource(lab, kube, writes):
    """PATCH of the main resource ignores status; PATCH of /status changes status only (no new generation)."""
    d = kube.deployment("job-hunter", "job-hunter")
    kube.apps.patch_namespaced_deployment("job-hunter", "job-hunter", {"status": {"replicas": 7}})
    assert kube.deployment("job-hunter", "job-hunter").status.replicas == d.status.replicas
    kube.apps.patch_namespaced_deployment_status("job-hunter", "job-hunter", {"status": {"readyReplicas": 1}})
    after = kube.apps.read_namespaced_deployment_status("job-hunter", "job-hunter")
    assert after.metadata.generation == d.metadata.generation and after.status.ready_replicas == 1


def test_a_paused_deployment_is_not_rolled_out(lab, kube, writes):
    api = lab["cluster"].api
    api.mutate("Deployment", "beadboard", "beads-server", lambda d: d["spec"].__setitem__("paused", True))
    try:
        kube.rollout_restart("beads-server", "beadboard")
        lab["cluster"].settle()
        d = kube.deployment("beads-server", "beadboard")
        assert kube.rollout_problem(d) == "rollout paused (spec.paused)"
        progressing = {c.type: c for c in d.status.conditions}["Progressing"]
        assert (progressing.status, progressing.reason) == ("Unknown", "DeploymentPaused")
    finally:
        api.mutate("Deployment", "beadboard", "beads-server", lambda d: d["spec"].pop("paused", None))
        lab["cluster"].settle()


def test_namespace_deletion_is_asynchronous(lab, kube, writes):
    """Terminating first (pods refused with 403 NamespaceTerminating, re-create 409), gone once its content is."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    from phasegate.kube import Forbidden

    api = lab["cluster"].api
    name = kube.fresh_name("async")
    kube.create_namespace(name)
    api.mutate("Namespace", name, "", lambda n: n["metadata"].__setitem__("finalizers", ["example.com/hold"]))
    kube.core.delete_namespace(name)
    try:
        assert kube.core.read_namespace(name).status.phase == "Terminating"
        with pytest.raises(Forbidden, match="NamespaceTerminating.*being terminated"):
            kube.create_pod(name, "late", node="k8s-node1", image="docker.io/library/busybox:1.36")
        with pytest.raises(ApiException) as e:
            kube.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
        assert e.value.status == 409 and "object is being deleted" in json.loads(e.value.body)["message"]
    finally:
        api.mutate("Namespace", name, "", lambda n: n["metadata"].pop("finalizers", None))
        api._enqueue(("ns-delete", name))
        lab["cluster"].settle()
    assert api.get("Namespace", name) is None


def test_403s_are_classified_with_the_servers_reason(lab, kube, namespace):
    from phasegate.kube import Forbidden

    api = lab["cluster"].api
    api.denied.add(("get", "pods/log"))
    try:
        with pytest.raises(Forbidden) as e:
            kube.pod_log(namespace, "anything")
        assert e.value.kind == "RBAC" and 'cannot get resource "pods/log"' in str(e.value)
    finally:
        api.denied.discard(("get", "pods/log"))
    api.default_pod_security = "baseline"
    try:
        with pytest.raises(Forbidden) as e:
            kube.create_pod(namespace, "hp", node="k8s-node1", image="docker.io/library/busybox:1.36",
                            host_path="/etc", mount_path="/host/etc")
        assert e.value.kind == "PodSecurity admission" and 'violates PodSecurity "baseline:latest"' in str(e.value)
    finally:
        api.default_pod_security = "privileged"


def test_a_service_account_that_appears_a_second_later_is_waited_for(lab, kube, writes):
    api = lab["cluster"].api
    api.serviceaccount_delay = 1.0
    name = kube.fresh_name("sa")
    try:
        kube.create_namespace(name)
        assert api.get("ServiceAccount", "default", name) is None
        pod = kube.create_pod(name, "early", node="k8s-node1", image="docker.io/library/busybox:1.36",
                              pull_policy="IfNotPresent")
        assert api.get("Pod", pod, name) is not None
        assert any(m == "POST" and p.endswith("/pods") for m, p in api.requests)
    finally:
        api.serviceaccount_delay = 0.0
        kube.delete_namespace(name)


# -- Jobs (issue 20) -----------------------------------------------------------------------------------------


def _job(kube, ns, name, container, **spec):
    from kubernetes import client as k8s

    job = k8s.V1Job(metadata=k8s.V1ObjectMeta(name=name, labels={kube.label_key: kube.label_value}),
                    spec=k8s.V1JobSpec(template=k8s.V1PodTemplateSpec(spec=k8s.V1PodSpec(
                        restart_policy="Never", containers=[container], automount_service_account_token=False)),
                        **spec))
    return kube.batch.create_namespaced_job(ns, job)


def test_a_failing_job_is_retried_until_its_backoff_limit(lab, kube, namespace):
    """backoffLimit defaults to 6 (pkg/apis/batch/v1/defaults.go); the controller replaces failed pods."""
    import time

    from kubernetes import client as k8s

    created = _job(kube, namespace, "fails", k8s.V1Container(name="c", image="docker.io/library/busybox:1.36",
                                                            image_pull_policy="IfNotPresent",
                                                            command=["/no/such/program"]))
    assert created.spec.backoff_limit == 6
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job = kube.batch.read_namespaced_job("fails", namespace)
        if (job.status.failed or 0) >= 2:
            break
        time.sleep(0.1)
    assert (job.status.failed or 0) >= 2 and not job.status.succeeded
    outcome = kube.job_outcome(job)
    assert outcome.startswith("failed") and "retrying (backoffLimit 6)" in outcome and "StartError" in outcome, outcome


def test_a_missing_command_is_start_error_with_the_runtimes_message(lab, kube, namespace):
    pod = kube.wait_pod_settled(namespace, kube.create_pod(namespace, "nocmd", node="k8s-node3",
                                                           image="docker.io/library/busybox:1.36",
                                                           pull_policy="IfNotPresent", command=["/no/such/program"]))
    (state,) = kube.container_states(pod)
    assert (pod.status.phase, state.terminated_reason, state.exit_code) == ("Failed", "StartError", 128)
    assert "/no/such/program" in state.message and "no such file or directory" in state.message


def test_a_missing_secret_key_is_create_container_config_error_and_pending(lab, kube, namespace):
    from kubernetes import client as k8s

    kube.core.create_namespaced_secret(namespace, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="creds"),
                                                              string_data={"REG_USER": "x"}))
    env = [k8s.V1EnvVar(name="REG_PASS", value_from=k8s.V1EnvVarSource(
        secret_key_ref=k8s.V1SecretKeySelector(name="creds", key="REG_PASS")))]
    _job(kube, namespace, "config", k8s.V1Container(name="c", image="docker.io/library/busybox:1.36",
                                                    image_pull_policy="IfNotPresent", env=env), backoff_limit=0)
    lab["cluster"].settle()
    job = kube.batch.read_namespaced_job("config", namespace)
    (pod,) = kube.pods(namespace, "job-name=config")
    assert pod.status.phase == "Pending"
    assert kube.job_outcome(job) == (f"running, pod CreateContainerConfigError: couldn't find key REG_PASS in Secret "
                                     f"{namespace}/creds")


def test_a_finished_job_with_a_ttl_is_deleted(lab, kube, namespace):
    import time

    from kubernetes import client as k8s

    _job(kube, namespace, "ttl", k8s.V1Container(name="c", image="docker.io/library/busybox:1.36",
                                                 image_pull_policy="IfNotPresent"), ttl_seconds_after_finished=1)
    lab["cluster"].settle()
    assert kube.job_outcome(kube.batch.read_namespaced_job("ttl", namespace)) == "complete"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and lab["cluster"].api.get("Job", "ttl", namespace) is not None:
        time.sleep(0.1)
    assert lab["cluster"].api.get("Job", "ttl", namespace) is None


def test_a_stuck_rollout_exceeds_its_progress_deadline(lab, kube, writes):
    """pkg/controller/deployment/progress.go: Progressing=False, ProgressDeadlineExceeded; the gate says so."""
    import time

    api = lab["cluster"].api
    c = lab["cluster"]
    p = c.inv.project("beads-server")
    w = p.workloads[0]
    fref, _, _ = c.project_images[p.name]
    api.progress_deadline_scale = 0.002  # 600 s -> 1.2 s
    try:
        c.put_workload(p, w, fref.rsplit(":", 1)[0] + ":deadbeef")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            why = kube.rollout_problem(kube.deployment(p.namespace, w.name))
            if why.startswith("progress deadline exceeded"):
                break
            time.sleep(0.2)
        assert why.startswith("progress deadline exceeded") and "has timed out progressing" in why, why
    finally:
        api.progress_deadline_scale = 1.0
        c.put_workload(p, w, fref)
        c.settle()
