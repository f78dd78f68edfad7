"""The integrity walk against both seeded lab registries: green, each seeded fault exactly, both modes."""

from __future__ import annotations

import pytest

from phasegate import http
from phasegate.integrity import check_image, check_reference, check_registry
from phasegate.lab import seed
from phasegate.verdict import GateFailed
from tests.oci_fixtures import registry, scratch, scratch_client  # noqa: F401

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("mode", ["head", "verify"])
def test_green_registry_counts_everything_seeded(registry, mode):
    plan = registry.plan()
    result = check_registry(registry.client, mode=mode, repositories=[r.name for r in plan])
    exp = seed.expected(plan)
    assert (result.repositories, result.tags, result.manifests, result.indexes, result.blobs) == (
        exp.repositories, exp.tags, exp.manifests, exp.indexes, exp.blobs)
    assert not result.broken, "\n".join(b.line() for b in result.broken)  # kind and status, not a cut repr


@pytest.mark.parametrize("mode", ["head", "verify"])
def test_every_seeded_fault_exactly_and_nothing_else(lab, registry, mode):
    """All three faults at once (distinct targets): the whole-registry walk reports exactly one per fault."""
    with lab.fault(registry.fault(seed.ORPHANED_CHILD)), lab.fault(registry.fault(seed.MISSING_LAYER)), \
            lab.fault(registry.fault(seed.BITROT_LAYER)):
        result = check_registry(registry.client, mode=mode)
    expected = []
    for target in registry.faults().values():
        status = target.head_status if mode == "head" else target.verify_status
        if status is not None:  # a flipped byte keeps the size: only `verify` sees bit rot
            expected.append((target.repository, target.tag, target.digest, target.kind, status))
    got = [(b.repository, b.tag, b.digest, b.kind, b.status) for b in result.broken]
    assert sorted(got, key=str) == sorted(expected, key=str)
    for b in result.broken:
        assert b.path[0] == f"{b.repository}:{b.tag}" and b.path[-1] == b.digest and len(b.path) == 3


def test_faults_are_repaired_on_exit(lab, registry):
    for name in (seed.ORPHANED_CHILD, seed.MISSING_LAYER, seed.BITROT_LAYER):
        with lab.fault(registry.fault(name)):
            pass
    assert check_registry(registry.client, mode="verify").ok


def test_digests_shared_by_many_tags_cost_one_request_per_tag(registry):
    repo = next(r for r in registry.plan() if r.name == registry.repo(seed.PAGINATED))
    mark = http.TRANSCRIPT.mark()
    result = check_registry(registry.client, repositories=[repo.name], concurrency=4)
    exchanges = http.TRANSCRIPT.since(mark)
    manifest_gets = [e for e in exchanges if "/manifests/" in e.url and e.status == 200]
    blob_heads = [e for e in exchanges if "/blobs/" in e.url and e.status == 200]
    exp = seed.expected([repo])
    assert result.tags == len(repo.tags) > 100
    assert len(manifest_gets) == len(repo.tags) + exp.manifests - len({i.digest for i in repo.tags.values()})
    assert len(blob_heads) == exp.blobs == result.blobs


def test_tags_per_repo_limit(registry):
    result = check_registry(registry.client, repositories=[registry.repo(seed.PAGINATED),
                                                           registry.repo("payslip-ingest")], tags_per_repo=2)
    assert (result.repositories, result.tags) == (2, 4)


def test_check_one_image(lab, registry):
    ok = check_image(registry.client, registry.repo("payslip-ingest"), "latest", mode="verify")
    assert ok.ok and ok.indexes == 1 and ok.manifests == 5 and ok.blobs == 8
    target = registry.faults()[seed.ORPHANED_CHILD]
    with lab.fault(registry.fault(seed.ORPHANED_CHILD)):
        bad = check_image(registry.client, target.repository, target.tag)
    assert [(b.digest, b.kind, b.status) for b in bad.broken] == [(target.digest, "index-child", 404)]
    with pytest.raises(GateFailed) as e:
        bad.require_intact(f"{target.repository}:{target.tag}")
    assert target.digest in str(e.value) and "index-child 404" in str(e.value)
    missing = check_reference(registry.client, registry.repo("payslip-ingest") + ":no-such-tag")
    assert [(b.kind, b.status) for b in missing.broken] == [("manifest", 404)]
    assert check_reference(registry.client, registry.repo("job-hunter") + ":latest").require_intact("job-hunter").ok


def test_seed_through_the_client_into_an_empty_registry(scratch_client):
    """The lab copies a stored seed when it can; the client path must keep working on its own."""
    part = [r for r in seed.plan("seeded/") if not r.name.endswith(seed.PAGINATED)]  # every kind, not 100 tags
    repos = seed.seed(scratch_client, namespace="seeded/", repos=part)
    result = check_registry(scratch_client, mode="verify", repositories=[r.name for r in repos])
    exp = seed.expected(repos)
    assert (result.repositories, result.tags, result.manifests, result.indexes, result.blobs) == (
        exp.repositories, exp.tags, exp.manifests, exp.indexes, exp.blobs)
    assert result.ok
