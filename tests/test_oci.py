"""phasegate.oci against real registries: the seeded lab registry-private and a scratch registry."""

from __future__ import annotations

import pytest

from phasegate import http, images
from phasegate.lab import seed
from phasegate.oci import NotFound, RegistryClient, ServerAnswer, parse_challenge, split_reference
from phasegate.secrets import Secret
from phasegate.verdict import AuthError, Unreachable
from tests.oci_fixtures import private, registry, scratch, scratch_client  # noqa: F401

pytestmark = pytest.mark.lab


def _by_kind(namespace=""):
    """One seeded (repository, tag, built item) per manifest kind."""
    out = {}
    for i, project in enumerate(seed.PROJECTS):
        kind = seed.KINDS[i % len(seed.KINDS)]
        out.setdefault(kind, (namespace + project, "latest", seed.build(kind, f"{project}/2")))
    return out


def test_ping_and_auth(registry):
    info = registry.client.ping()
    assert info["api_version"] == "registry/2.0"


@pytest.mark.parametrize("kind,media_type", [
    ("oci-index", images.OCI_INDEX), ("docker-list", images.DOCKER_LIST),
    ("oci-manifest", images.OCI_MANIFEST), ("docker-manifest", images.DOCKER_MANIFEST),
    ("nested-index", images.OCI_INDEX),
])
def test_every_manifest_type_by_tag_and_digest(registry, kind, media_type):
    private = registry.client
    repo, tag, item = _by_kind(registry.namespace)[kind]
    m = private.get_manifest(repo, tag)
    assert (m.media_type, m.digest, m.raw) == (media_type, item.digest, item.manifest)
    assert m.where == f"{repo}:{tag}@{item.digest}"
    head = private.head_manifest(repo, item.digest)
    assert (head.status, head.digest, head.size, head.media_type) == (200, item.digest, item.size, media_type)
    by_digest = private.get_manifest(repo, item.digest)
    assert by_digest.raw == item.manifest


def test_attestation_children_and_nested_index(registry):
    private = registry.client
    repo, tag, item = _by_kind(registry.namespace)["oci-index"]
    children = private.get_manifest(repo, tag).children()
    assert [c.is_attestation for c in children] == [False, False, True, True]
    assert all(c.platform == {"architecture": "unknown", "os": "unknown"} for c in children if c.is_attestation)
    repo, tag, item = _by_kind(registry.namespace)["nested-index"]
    nested = private.get_manifest(repo, tag).children()
    assert nested[0].is_index and private.get_manifest(repo, nested[0].digest).is_index


def test_tags_beyond_one_page(registry):
    """distribution: one page or n/last; Forgejo: Link on every page, the last one too."""
    tags = registry.client.tags(registry.repo(seed.PAGINATED))
    expected = next(r for r in registry.plan() if r.name == registry.repo(seed.PAGINATED)).tags
    assert len(tags) == len(set(tags)) == len(expected) > 100
    assert set(tags) == set(expected)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_catalog_pagination_any_page_size(registry, n):
    everything = registry.client.catalog()
    assert registry.client.catalog(n=n) == everything
    assert {r.name for r in registry.plan()} <= set(everything)


def test_catalog_exact_multiple_of_page_size(registry):
    everything = registry.client.catalog()
    assert registry.client.catalog(n=len(everything)) == everything  # a full last page, then an empty one


def test_blob_head_and_streamed_verify(registry):
    private = registry.client
    repo, tag, item = _by_kind(registry.namespace)["oci-manifest"]
    layer = item.layers[0]
    assert private.head_blob(repo, layer.digest, layer.size).ok
    v = private.verify_blob(repo, layer.digest, layer.size)
    assert (v.status, v.digest, v.size) == (200, layer.digest, layer.size)
    assert private.get_blob(repo, item.config.digest) == item.config.data


def test_404_is_an_answer_never_retried(registry):
    private, repo = registry.client, registry.repo("payslip-ingest")
    private.head_manifest(repo, "latest")  # auth settled: every later request is exactly one exchange
    mark = http.TRANSCRIPT.mark()
    assert private.head_manifest(repo, "no-such-tag").status == 404
    assert private.head_blob(repo, "sha256:" + "0" * 64).status == 404
    with pytest.raises(NotFound, match="not found"):
        private.get_manifest(repo, "no-such-tag")
    assert private.verify_blob(repo, "sha256:" + "0" * 64).status == 404
    seen = http.TRANSCRIPT.since(mark)
    assert [e.status for e in seen] == [404, 404, 404, 404], http.TRANSCRIPT.render(seen)


def test_wrong_password_is_one_redacted_auth_line(lab, registry):
    wrong = "pgcanary-wrong-password-123"
    client = RegistryClient(registry.url, username=registry.username, password=Secret(wrong),
                            ca_bundle=str(lab.ca.bundle))
    with client, pytest.raises(AuthError) as e:
        client.catalog()
    text = str(e.value)
    assert "401" in text and "\n" not in text and wrong not in text


def test_untrusted_tls_is_broken_not_failed(lab):
    p = lab["registries"].private
    with RegistryClient(p.url) as client, pytest.raises(Unreachable):
        client.ping()


def test_password_must_be_a_secret():
    with pytest.raises(TypeError):
        RegistryClient("https://127.0.0.1:1", username="u", password="plain")


def test_push_pull_delete_roundtrip(scratch_client):
    c = scratch_client
    for kind in ("oci-index", "docker-list", "oci-manifest", "docker-manifest", "nested-index"):
        item = seed.build(kind, f"roundtrip/{kind}")
        assert c.push("roundtrip", item, tag=kind) == item.digest
        assert c.get_manifest("roundtrip", kind).digest == item.digest
        for m in item.walk():
            assert c.get_manifest("roundtrip", m.digest).raw == m.manifest
            for b in m.blobs():
                assert c.verify_blob("roundtrip", b.digest, b.size).ok
    item = seed.build("oci-manifest", "roundtrip/oci-manifest")
    assert c.delete_manifest("roundtrip", item.digest) == 202
    assert c.head_manifest("roundtrip", item.digest).status == 404


def test_push_is_refused_by_the_read_only_guard(scratch):
    from phasegate.verdict import WriteRefused

    with RegistryClient(scratch.url) as c, pytest.raises(WriteRefused):
        c.push("refused", images.build_image("refused"), tag="1")


def test_manifest_bytes_rotten_on_disk(scratch, scratch_client):
    item = images.build_image("rot-manifest")
    scratch_client.push("rot", item, tag="1")
    data = scratch.blob_dir(item.digest) / "data"
    raw = data.read_bytes()
    data.write_bytes(raw.replace(b'"schemaVersion":2', b'"schemaVersion":3'))
    # distribution re-reads and checks manifest bytes itself and answers 500 (a server answer, not retried)
    with pytest.raises(ServerAnswer) as e:
        scratch_client.get_manifest("rot", item.digest)
    assert e.value.status == 500
    from phasegate.integrity import check_image

    result = check_image(scratch_client, "rot", "1")
    assert [(b.kind, b.status) for b in result.broken] == [("manifest", 500)]


def test_blob_answering_200_with_zero_bytes_is_not_ok(scratch, scratch_client):
    item = images.build_image("zero-bytes")
    scratch_client.push("zero", item, tag="1")
    layer = item.layers[0]
    (scratch.blob_dir(layer.digest) / "data").write_bytes(b"")
    head = scratch_client.head_blob("zero", layer.digest, layer.size)
    assert head.found and not head.ok and head.size == 0
    assert scratch_client.verify_blob("zero", layer.digest, layer.size).status == "digest-mismatch"


def test_images_are_deterministic_and_valid():
    a, b = images.build_image("same"), images.build_image("same")
    assert a.manifest == b.manifest and a.digest == b.digest
    import gzip
    import io
    import json
    import tarfile

    tar = gzip.decompress(a.layers[0].data)
    assert json.loads(a.config.data)["rootfs"]["diff_ids"] == [images.sha256(tar)]
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        assert [m.name for m in t.getmembers()] == ["phasegate-seed.txt"]


def test_challenge_parsing_and_references():
    assert parse_challenge('Bearer realm="https://f.test/v2/token",service="container_registry",scope="*"') == (
        "bearer", {"realm": "https://f.test/v2/token", "service": "container_registry", "scope": "*"})
    assert parse_challenge('Basic realm="registry-private"') == ("basic", {"realm": "registry-private"})
    assert split_reference("viktor/app:v1") == ("viktor/app", "v1")
    assert split_reference("host:5050/app@sha256:ab") == ("host:5050/app", "sha256:ab")
    assert split_reference("host:5050/app") == ("host:5050/app", "latest")


def test_client_from_the_lab_inventory(lab, monkeypatch):
    from phasegate import config

    for k, v in lab.env().items():
        monkeypatch.setenv(k, v)
    inv = config.load(lab.inventory_path)
    with RegistryClient.from_inventory(inv, "private_registry", "user") as c:
        assert c.ping()["api_version"] == "registry/2.0"
        assert seed.PAGINATED in c.catalog()
