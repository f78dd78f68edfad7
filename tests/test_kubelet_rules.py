"""phasegate.cri: pull-secret keys, imageIDs and digests compared by the rules kubelet and containerd apply."""

from __future__ import annotations

import pytest

from phasegate import cri


# kubernetes/kubernetes pkg/credentialprovider/keyring.go, BasicDockerKeyring.Add: a key without a scheme gets
# "https://"; "It also considers /v2/ and /v1/ equivalent to the hostname"; URLsMatch: host glob per part,
# equal ports, path prefix.
@pytest.mark.parametrize("key", ["forgejo.example", "https://forgejo.example", "https://forgejo.example/",
                                 "https://forgejo.example/v2/", "http://forgejo.example/v1/", "forgejo.example/v2/"])
def test_an_auths_key_in_url_form_names_its_host(key):
    assert cri.AuthsKey.parse(key).index == "forgejo.example"
    assert cri.same_registry(key, "forgejo.example")
    assert cri.lookup([key], "forgejo.example/viktor/app:1") == [key]


def test_the_registry_url_of_a_url_form_key_never_doubles_v2():
    """The gate probed https://host/v2/v2/ for a key written as https://host/v2/ (issue 14)."""
    assert cri.AuthsKey.parse("https://forgejo.example/v2/").registry_url() == "https://forgejo.example"
    assert cri.AuthsKey.parse("http://10.0.20.10:5050").registry_url() == "http://10.0.20.10:5050"


def test_ports_must_be_equal_and_paths_are_prefixes():
    keys = ["10.0.20.10:5050", "registry.example", "registry.example/team"]
    assert cri.lookup(keys, "10.0.20.10:5050/app:1") == ["10.0.20.10:5050"]
    assert cri.lookup(keys, "10.0.20.10/app:1") == []
    # reverse-sorted index: the more specific key first (keyring.go: "credentials for quay.io/coreos should
    # match before quay.io")
    assert cri.lookup(keys, "registry.example/team/app") == ["registry.example/team", "registry.example"]
    assert cri.lookup(keys, "registry.example/teamster/app") == ["registry.example"]


def test_host_globs_match_one_label_each():
    assert cri.lookup(["*.example"], "forgejo.example/x") == ["*.example"]
    assert cri.lookup(["*.example"], "a.forgejo.example/x") == []


def test_short_names_are_docker_hub():
    assert cri.split_image("busybox:1.37") == ("docker.io", "library/busybox")
    assert cri.split_image("viktorbarzin/claude-memory-mcp:17") == ("docker.io", "viktorbarzin/claude-memory-mcp")
    assert cri.split_image("localhost:5000/app@sha256:ab") == ("localhost:5000", "app")


# CRI imageID forms: containerd pkg/cri/server/container_status.go reports repoDigests[0] ("repo@sha256:...");
# dockershim (pkg/kubelet/dockershim/helpers.go DockerPullableImageIDPrefix) reported "docker-pullable://repo@...",
# and "docker://sha256:<config>" without a repo digest.
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("image_id", [f"forgejo.example/viktor/app@{DIGEST}",
                                      f"docker-pullable://forgejo.example/viktor/app@{DIGEST}",
                                      f"10.0.20.10:5050/app@{DIGEST}"])
def test_the_digest_decides_whichever_name_the_runtime_reports(image_id):
    """Both registries serve the same bytes: containerd may report either name (issue 20), the digest decides."""
    parsed = cri.ImageId.parse(image_id)
    assert parsed.digest == DIGEST and parsed.runs(DIGEST)
    assert not parsed.runs("sha256:" + "cd" * 32)


def test_a_bare_config_digest_or_nothing_is_not_a_pulled_image():
    assert not cri.ImageId.parse(f"docker://{DIGEST}").runs(DIGEST)  # a config digest, no repo digest
    assert not cri.ImageId.parse("").runs(DIGEST)
