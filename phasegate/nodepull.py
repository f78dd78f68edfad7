"""Phase 0 and Phase 4 node gates: every node runs a fresh tag from Forgejo; every node's Forgejo mirror answers.

A pull is judged by what the kubelet reports: the container ran to exit code 0
(the smoke program, phasegate.images.build_smoke: a command-less image fails
with CreateContainerError on a real node, so nothing less proves a pull), and
its imageID carries the digest pushed (phasegate.cri: compared by digest, in
any runtime's imageID form).
"""

from __future__ import annotations

from dataclasses import dataclass

from phasegate import cri, mirror
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


def read_hosts_tomls(kube, namespace: str, inv, hosts: list[str]) -> dict[str, dict[str, str | None]]:
    """{node: {host: hosts.toml text or None}} for every node."""
    from phasegate.kube import hosts_toml_path

    out = {}
    for node in kube.node_names():
        files = kube.read_node_files(namespace, node, [hosts_toml_path(inv, h) for h in hosts])
        out[node] = dict(zip(hosts, files.values(), strict=False))
    return out


def mirror_problems(kube, namespace: str, inv, node_hosts: dict, settings) -> list[str]:
    """Every node's Forgejo hosts.toml: its pull hosts are inventory mirrors answering as the registry, probed the
    way containerd would (phasegate.mirror: skip_verify, ca read from the node, the mirror's own Host)."""
    from phasegate.kube import hosts_toml_path

    host = inv.forgejo.host
    path = hosts_toml_path(inv, host)
    allowed = {m.rstrip("/") for m in inv.cluster.forgejo_mirrors}
    answers: dict = {}
    out = []
    for node, files in sorted(node_hosts.items()):

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

