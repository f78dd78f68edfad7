"""Phase 0 and Phase 4 node gates: every node runs a fresh tag from Forgejo; every node's Forgejo mirror answers.

A pull is judged by what the kubelet reports: the container ran to exit code 0
(the smoke program, phasegate.images.build_smoke: a command-less image fails
with CreateContainerError on a real node, so nothing less proves a pull), and
its imageID carries the digest pushed (phasegate.cri: compared by digest, in
any runtime's imageID form).
"""

from __future__ import annotations

import secrets as _secrets
from dataclasses import dataclass

from phasegate import cri, mirror
from phasegate.pullsecret import hosts_toml_path
from phasegate.verdict import check


@dataclass(frozen=True)
class FreshTag:
    image: str  # host/owner/smoke:tag
    repository: str  # host/owner/smoke
    digest: str  # the index digest pushed


@dataclass
class NodePods:
    namespace: str
    pods: dict  # node -> V1Pod as last read


def run_on_every_node(kube, namespace: str, tag: FreshTag, pull_secret: str) -> NodePods:
    nodes = kube.node_names()
    check(bool(nodes), expected="at least one node", seen="the API lists no node", where=kube.where)
    names = {node: kube.create_pod(namespace, "pull", node=node, image=tag.image, pull_secret=pull_secret)
             for node in nodes}
    return NodePods(namespace, {node: kube.wait_pod_settled(namespace, name) for node, name in names.items()})


def push_fresh_tag(inv, settings, at_teardown) -> FreshTag:
    """A never-seen tag of the smoke package, pushed as the pusher: the smoke program (linux/amd64 + arm64)
    with unique bytes, so no node can serve it from its content store. Its removal (the tag and its children,
    as the cleaner) is registered with `at_teardown(fn, what)` before the push; a crashed run's leftovers are
    swept first."""
    from phasegate import images
    from phasegate.forgejo import Forgejo
    from phasegate.oci import RegistryClient

    f = inv.forgejo
    repository = f"{f.owner}/{f.smoke_image}"
    tag = f"{FRESH_TAG_PREFIX}{_secrets.token_hex(4)}"
    api = Forgejo.from_inventory(inv, settings, user="cleaner", deletable={f.smoke_image})
    image = images.build_smoke(f"phasegate fresh pull {tag} {_secrets.token_hex(8)}")

    def cleanup():
        try:
            remove_fresh_tag(api, f.smoke_image, tag, [c.digest for c in image.children])
        finally:
            api.close()

    at_teardown(cleanup, f"{repository}:{tag}")  # registered before the push
    sweep_fresh_tags(api, f.smoke_image)  # leftovers of a crashed run
    with RegistryClient.from_inventory(inv, "forgejo", "pusher") as pusher:
        digest = pusher.push(repository, image, tag=tag)
    return FreshTag(f"{f.host}/{repository}:{tag}", f"{f.host}/{repository}", digest)


def judge_pulls(kube, pods: NodePods, tag: FreshTag) -> None:
    """Every node ran the fresh tag to exit code 0, with the digest pushed."""
    found = problems(kube, pods, tag)
    check(not found, expected=f"every node ran {tag.repository}@{tag.digest} to exit code 0",
          seen="; ".join(found), where=f"namespace {pods.namespace}, image {tag.image}")


def problems(kube, pods: NodePods, tag: FreshTag) -> list[str]:
    """Why a node did not run the fresh tag ([] = every node ran it to exit code 0)."""
    from phasegate.kube import Kube

    out = []
    for node, pod in sorted(pods.pods.items()):
        states = Kube.container_states(pod)
        if not states:
            out.append(f"node {node}: pod {pod.metadata.namespace}/{pod.metadata.name} is {pod.status.phase} "
                       "with no container status")
            continue
        for s in states:
            image_id = cri.ImageId.parse(s.image_id)
            if s.waiting_reason == "ImagePullBackOff":
                cause = kube.last_pull_error(pod, s.container)
                out.append(f"node {node}: {s.waiting_reason}: {s.message}" + (f"; last ErrImagePull: {cause}"
                                                                            if cause else ""))
            elif s.waiting_reason:
                out.append(f"node {node}: {s.waiting_reason}: {s.message}")
            elif not image_id.runs(tag.digest):
                out.append(f"node {node}: imageID {s.image_id or '(none)'}, pushed {tag.digest}")
            elif s.exit_code is None:
                out.append(f"node {node}: container {s.container} has not finished (pod {pod.status.phase})")
            elif s.exit_code != 0:
                out.append(f"node {node}: container {s.container} {s.terminated_reason or 'exited'} with code "
                           f"{s.exit_code}" + (f": {s.message}" if s.message else ""))
    return out


@dataclass(frozen=True)
class NodeHosts:
    """Every node's containerd hosts.toml for a set of registry hosts, as read from the node."""

    namespace: str  # where the reader pods ran (node files are read through a hostPath pod's log)
    files: dict[str, dict[str, str | None]]  # node -> registry host -> hosts.toml text (None: no such file)

    def nodes(self) -> str:
        return ", ".join(sorted(self.files))


HOST_SETS = ("Forgejo host", "registry-private hosts")  # as the steps name them


def host_set(inv, which: str) -> list[str]:
    if which == "Forgejo host":
        return [inv.forgejo.host]
    if which == "registry-private hosts":
        p = inv.private_registry
        return [p.host, *p.aliases]
    raise ValueError(f"unknown host set {which!r} (known: {', '.join(HOST_SETS)})")


def read_hosts_tomls(kube, namespace: str, inv, which: str) -> NodeHosts:
    """Every node's hosts.toml for the host set `which` (HOST_SETS)."""
    hosts = host_set(inv, which)
    out = {}
    for node in kube.node_names():
        files = kube.read_node_files(namespace, node, [hosts_toml_path(inv, h) for h in hosts])
        out[node] = dict(zip(hosts, files.values(), strict=False))
    return NodeHosts(namespace, out)


def judge_hosts_toml_present(node_hosts: NodeHosts, inv) -> None:
    host = inv.forgejo.host
    missing = [node for node, files in sorted(node_hosts.files.items()) if files.get(host) is None]
    check(not missing, expected=f"{hosts_toml_path(inv, host)} on every node",
          seen=f"missing on node {', '.join(missing)}", where=f"nodes {node_hosts.nodes()}")


def judge_mirrors(kube, node_hosts: NodeHosts, inv, settings) -> None:
    found = mirror_problems(kube, node_hosts, inv, settings)
    allowed = sorted(m.rstrip("/") for m in inv.cluster.forgejo_mirrors)
    check(not found, expected=f"every node's {inv.forgejo.host} mirror in {allowed} answering /v2/ as "
                              "the registry, probed as containerd would (hosts.toml TLS settings)",
          seen="; ".join(found),
          where=f"{hosts_toml_path(inv, inv.forgejo.host)} on nodes {node_hosts.nodes()}")


def judge_no_hosts_toml(node_hosts: NodeHosts, inv) -> None:
    """No node keeps a hosts.toml for any host read (Phase 4: the registry-private hosts)."""
    kept = [f"node {node}: {hosts_toml_path(inv, h)}" for node, files in sorted(node_hosts.files.items())
            for h, text in files.items() if text is not None]
    check(not kept, expected="no hosts.toml for registry-private on any node", seen="; ".join(kept),
          where=f"nodes {node_hosts.nodes()}")


def mirror_problems(kube, node_hosts: NodeHosts, inv, settings) -> list[str]:
    """Every node's Forgejo hosts.toml: its pull hosts are inventory mirrors answering as the registry, probed the
    way containerd would (phasegate.mirror: skip_verify, ca read from the node, the mirror's own Host)."""
    namespace = node_hosts.namespace
    host = inv.forgejo.host
    path = hosts_toml_path(inv, host)
    allowed = {m.rstrip("/") for m in inv.cluster.forgejo_mirrors}
    answers: dict = {}
    out = []
    for node, files in sorted(node_hosts.files.items()):

        def answer(entry: mirror.HostEntry, node=node):
            ca_files = tuple(mirror.ca_path(path, c) for c in entry.ca)
            key = (entry, ca_files if ca_files else ())
            if key not in answers:
                pem = ""
                if ca_files and not entry.skip_verify:
                    read = kube.read_node_files(namespace, node, list(ca_files))
                    missing = [p for p, text in read.items() if text is None]
                    if missing:
                        return mirror.RegistryAnswer(entry.api_root() + "/", False,
                                                     f"no answer (ca file {', '.join(missing)} missing on the node)")
                    pem = "\n".join(t for t in read.values() if t)
                answers[key] = mirror.registry_answer(entry.api_root(), settings, verify=not entry.skip_verify,
                                                      ca_pem=pem)
            return answers[key]

        out += mirror.judge_node(node, path, files.get(host), allowed, answer)
    return out


# -- the fresh tag's package versions --------------------------------------------------------------
# An index pushed to Forgejo's container registry is one package version per manifest: the tag, and an
# untagged `sha256:<hex>` version for each child (Forgejo's container package model; its cleanup_packages
# cron removes untagged ones only after 24 h). So removing a pushed index is the tag and its children.

FRESH_TAG_PREFIX = "pull-"


def remove_fresh_tag(api, package: str, tag: str, child_digests: list[str]) -> None:
    """Delete the fresh tag and the untagged versions of its children (a 404 is already gone)."""
    api.delete(package, tag)
    for digest in child_digests:
        api.delete(package, digest)


def sweep_fresh_tags(api, package: str) -> list[str]:
    """Leftovers of a crashed run in the smoke package: every `pull-*` tag and every untagged child
    version (the smoke package is the suite's own; its Phase 0 tag is a single manifest, no children)."""
    gone = []
    for v in api.package_versions(package):
        if v.version.startswith((FRESH_TAG_PREFIX, "sha256:")):
            api.delete(package, v.version)
            gone.append(v.version)
    return gone

