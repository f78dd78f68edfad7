"""Steps about the Kubernetes cluster (thin: phasegate.cluster, phasegate.nodepull and phasegate.cutover judge)."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then, when

from phasegate import cluster, containerd_config, cutover, nodepull

# -- Forgejo's objects ----------------------------------------------------------


@given("the Forgejo Deployment", target_fixture="forgejo_deployment")
def forgejo_deployment(kube, inventory):
    return cluster.forgejo_deployment(kube, inventory.forgejo)


@then(parsers.parse('its Forgejo container requests and is limited to at least "{memory}" of memory'))
def forgejo_memory(forgejo_deployment, inventory, memory):
    cluster.judge_memory(forgejo_deployment, inventory.forgejo, inventory.said("cluster.forgejo_memory", memory))


@then("its Forgejo container sets the inventory's packages environment variables")
def forgejo_env(forgejo_deployment, inventory):
    cluster.judge_env(forgejo_deployment, inventory.forgejo, inventory.cluster.forgejo_env)


@given("the Forgejo PVC", target_fixture="forgejo_pvc")
def forgejo_pvc(kube, inventory):
    return cluster.forgejo_pvc(kube, inventory.forgejo.namespace, inventory.cluster.forgejo_pvc)


@then(parsers.parse('the PVC requests and has at least "{size}" of storage'))
def pvc_size(forgejo_pvc, inventory, size):
    cluster.judge_pvc_size(forgejo_pvc, inventory.said("cluster.forgejo_pvc_min", size))


@given("the Forgejo ingress", target_fixture="forgejo_ingress")
def forgejo_ingress(kube, inventory):
    return cluster.forgejo_ingress(kube, inventory.forgejo.namespace, inventory.cluster.forgejo_ingress)


@then(parsers.parse('the ingress carries a Traefik buffering middleware allowing request bodies of "{size}"'))
def ingress_buffering(forgejo_ingress, kube, inventory, size):
    cluster.judge_ingress_buffering(forgejo_ingress, kube, inventory.said("cluster.forgejo_max_body", size))


# -- fresh namespace and the cloned pull secret -----------------------------------


@given("a fresh namespace", target_fixture="namespace")
def fresh_namespace(kube, teardown):
    return cluster.fresh_namespace(kube, teardown)


@when("Kyverno has cloned the pull secret into it", target_fixture="pull_secret")
def cloned_pull_secret(kube, namespace, inventory):
    return cluster.cloned_pull_secret(kube, namespace, inventory.cluster)


@then(parsers.parse("the pull secret holds exactly the auths keys of {registries}"))
def auths_keys(pull_secret, registries, inventory):
    cluster.judge_auths_keys(pull_secret, inventory, registries)


@then("every auths entry of the pull secret authenticates against its registry")
def auths_authenticate(pull_secret, inventory, http_settings):
    cluster.judge_auths_authenticate(pull_secret, inventory, http_settings)


# -- fresh-tag pulls from every node -----------------------------------------------


@given("a fresh tag pushed to Forgejo", target_fixture="fresh_tag")
def fresh_tag(inventory, http_settings, teardown):
    return nodepull.push_fresh_tag(inventory, http_settings, teardown)


@when("a pod on every node runs the fresh tag through the pull secret", target_fixture="pull_pods")
def pods_on_every_node(kube, namespace, pull_secret, fresh_tag):
    return nodepull.run_on_every_node(kube, namespace, fresh_tag, pull_secret.name)


@then("every pod pulled the fresh tag from Forgejo")
def pulled_from_forgejo(kube, pull_pods, fresh_tag):
    nodepull.judge_pulls(kube, pull_pods, fresh_tag)


# -- node files: containerd hosts.toml (Phase 0) and every registry configuration (Phase 4) ------


@when(parsers.parse("every node's hosts.toml for the {which} is read"), target_fixture="node_hosts")
def read_hosts_toml(kube, namespace, inventory, which):
    return nodepull.read_hosts_tomls(kube, namespace, inventory, which)


@then("every node has a hosts.toml for the Forgejo host")
def hosts_toml_present(node_hosts, inventory):
    nodepull.judge_hosts_toml_present(node_hosts, inventory)


@then("every node's Forgejo mirror is an inventory mirror that answers as the registry")
def mirror_answers(node_hosts, kube, inventory, http_settings):
    nodepull.judge_mirrors(kube, node_hosts, inventory, http_settings)


@when("every node's containerd registry configuration is read", target_fixture="node_registry_configs")
def read_registry_configs(kube, namespace, inventory):
    return containerd_config.read_nodes(kube, namespace, inventory.cluster)


@then("no node's containerd registry configuration names registry-private")
def no_private_registry_config(node_registry_configs, inventory):
    p = inventory.private_registry
    containerd_config.judge_named_nowhere(node_registry_configs, [p.host, *p.aliases])


# -- Phase 3: cutover (phasegate.cutover judges; one step per check, the order last) ----------


@pytest.fixture(scope="session")
def cutover_rows():
    """What each project's own Phase 3 row judged in this run: the order step of a later row reads it."""
    return cutover.RowFindings()


@given(parsers.parse('the project "{name}" of the inventory'), target_fixture="project")
def project(name, inventory):
    return inventory.project(name)


@then(cutover.CHECK_STEPS["template"])
def template_from_forgejo(project, kube, inventory, cutover_rows):
    cutover.gate("template", kube, inventory, project, rows=cutover_rows)


@then(cutover.CHECK_STEPS["rollout"])
def rollout_complete(project, kube, inventory, cutover_rows):
    cutover.gate("rollout", kube, inventory, project, rows=cutover_rows)


@then(cutover.CHECK_STEPS["pods"])
def pods_run_template(project, kube, inventory, cutover_rows):
    cutover.gate("pods", kube, inventory, project, rows=cutover_rows)


@then(cutover.CHECK_STEPS["digest"])
def pods_run_forgejo_digest(project, kube, inventory, forgejo_puller, cutover_rows):
    cutover.gate("digest", kube, inventory, project, forgejo_puller, rows=cutover_rows)


@then(cutover.CHECK_STEPS["integrity"])
def image_integrity(project, kube, inventory, forgejo_puller, cutover_rows):
    cutover.gate("integrity", kube, inventory, project, forgejo_puller, rows=cutover_rows)


@then(cutover.CHECK_STEPS["order"])
def earlier_cut_over(project, kube, inventory, forgejo_puller, cutover_rows):
    cutover.gate("order", kube, inventory, project, forgejo_puller, rows=cutover_rows)
