"""The integrity walk against the seeded lab registries: green, each seeded fault exactly, in both modes."""

from __future__ import annotations

import pytest

from phasegate import http
from phasegate.integrity import check_image, check_registry
from phasegate.lab import seed
from tests.oci_fixtures import private  # noqa: F401

pytestmark = pytest.mark.lab

SEEDED = seed.plan("")
FAULTS = seed.faults("")


@pytest.mark.parametrize("mode", ["head", "verify"])
def test_green_registry_counts_everything_seeded(private, mode):
    names = [r.name for r in SEEDED]
    result = check_registry(private, mode=mode, repositories=names)
    exp = seed.expected(SEEDED)
    assert (result.repositories, result.tags, result.manifests, result.indexes, result.blobs) == (
        exp.repositories, exp.tags, exp.manifests, exp.indexes, exp.blobs)
    assert result.broken == []


@pytest.mark.parametrize("mode", ["head", "verify"])
def test_every_seeded_fault_exactly_and_nothing_else(lab, private, mode):
    """All three faults at once (distinct targets): the walk reports exactly one reference per fault."""
    with lab.fault("private-orphaned-index-child"), lab.fault("private-missing-layer"), \
            lab.fault("private-bitrot-layer"):
        result = check_registry(private, mode=mode)
    expected = []
    for target in FAULTS.values():
        status = target.head_status if mode == "head" else target.verify_status
        if status is not None:  # a flipped byte keeps the size: only `verify` sees bit rot
            expected.append((target.repository, target.tag, target.digest, target.kind, status))
    got = [(b.repository, b.tag, b.digest, b.kind, b.status) for b in result.broken]
    assert sorted(got, key=str) == sorted(expected, key=str)
    for b in result.broken:
        assert b.path[0] == f"{b.repository}:{b.tag}" and b.path[-1] == b.digest and len(b.path) == 3


def test_faults_are_repaired_on_exit(lab, private):
    for name in ("private-orphaned-index-child", "private-missing-layer", "private-bitrot-layer"):
        with lab.fault(name):
            pass
    assert check_registry(private, mode="verify").ok


def test_digests_shared_by_many_tags_cost_one_request_per_tag(private):
    repo = next(r for r in SEEDED if r.name == seed.PAGINATED)
    mark = http.TRANSCRIPT.mark()
    result = check_registry(private, repositories=[repo.name], concurrency=4)
    exchanges = http.TRANSCRIPT.since(mark)
    manifest_gets = [e for e in exchanges if "/manifests/" in e.url]
    blob_heads = [e for e in exchanges if "/blobs/" in e.url]
    exp = seed.expected([repo])
    assert result.tags == len(repo.tags) > 100
    assert len(manifest_gets) == len(repo.tags) + exp.manifests - len({i.digest for i in repo.tags.values()})
    assert len(blob_heads) == exp.blobs == result.blobs


def test_tags_per_repo_limit(private):
    result = check_registry(private, repositories=[seed.PAGINATED, "payslip-ingest"], tags_per_repo=2)
    assert (result.repositories, result.tags) == (2, 4)


def test_check_one_image(lab, private):
    ok = check_image(private, "payslip-ingest", "latest", mode="verify")
    assert ok.ok and ok.indexes == 1 and ok.manifests == 5 and ok.blobs == 8
    target = FAULTS[seed.ORPHANED_CHILD]
    with lab.fault("private-orphaned-index-child"):
        bad = check_image(private, target.repository, target.tag)
    assert [(b.digest, b.kind, b.status) for b in bad.broken] == [(target.digest, "index-child", 404)]
    missing = check_image(private, "payslip-ingest", "no-such-tag")
    assert [(b.kind, b.status) for b in missing.broken] == [("manifest", 404)]
