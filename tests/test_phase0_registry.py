"""Phase 0 registry gates against the lab's Forgejo: read-only runs write nothing, writing runs
clean up (also on failure, also after a crash), deletion is fenced to the smoke package,
and the seeded Forgejo serves the integrity walk (green and each on-disk fault exactly)."""

from __future__ import annotations

import pytest

from phasegate import config
from phasegate.forgejo import DeletionRefused, SmokePackage
from phasegate.http import GUARD, HttpSettings
from phasegate.integrity import check_registry
from phasegate.lab import seed
from phasegate.oci import RegistryClient

pytestmark = pytest.mark.lab

FEATURE_WRITES = "The smoke image pushed by the pusher is pullable by the puller"
FEATURE_REFUSAL = "The puller can pull but is refused a push"


@pytest.fixture(scope="module")
def inventory(lab):
    return config.load(lab.inventory_path)


@pytest.fixture
def lab_env(lab, monkeypatch):
    for k, v in lab.env().items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def smoke(inventory):
    return SmokePackage.from_inventory(inventory)


def smoke_versions(lab, smoke) -> list[str]:
    return sorted(v.version for v in lab["registries"].forgejo.versions(smoke.owner) if v.name == smoke.image)


def test_a_readonly_run_writes_nothing_to_forgejo(lab, gates):
    forgejo = lab["registries"].forgejo
    mark = forgejo.mark()
    run = gates("phase0 and registry and readonly")
    assert run.passed() and not run.failed(), run.summary()
    assert forgejo.requests(mark), "the read-only gates did not talk to Forgejo"
    assert forgejo.writes(mark) == []


def test_a_rerun_after_a_crash_starts_clean(lab, lab_env, inventory, smoke, gates):
    # what a crashed run leaves: the smoke tag and an untagged version of the smoke package
    with RegistryClient.from_inventory(inventory, "forgejo", "pusher") as pusher, GUARD.writes_allowed("crash leftovers"):
        image = smoke.build()
        pusher.push(smoke.repository, image, tag=smoke.tag)
        pusher.put_manifest(smoke.repository, image.digest, image.manifest, image.media_type)
        other = SmokePackage(smoke.owner, smoke.image, "crashed").build()
        pusher.push(smoke.repository, other, tag=None)
    assert len(smoke_versions(lab, smoke)) >= 2
    run = gates(scenario=FEATURE_WRITES)
    assert run.outcome(FEATURE_WRITES) == "passed", run.summary()
    assert smoke_versions(lab, smoke) == []


def test_a_failing_writing_gate_still_removes_what_it_pushed(lab, smoke, gates):
    run = gates(scenario=FEATURE_REFUSAL, fault="forgejo-puller-can-push")
    assert run.outcome(FEATURE_REFUSAL) == "failed", run.summary()
    assert smoke_versions(lab, smoke) == []


def test_deletion_is_fenced_to_the_smoke_package(lab_env, inventory, smoke):
    settings = HttpSettings.from_timeouts(inventory.timeouts)
    with smoke.packages(inventory, settings) as api, GUARD.writes_allowed("fence test"):
        assert api.deletable == frozenset({inventory.forgejo.smoke_image})
        victim = next(v for v in api.versions() if v.name != smoke.image)
        with pytest.raises(DeletionRefused, match="may only delete smoketest"):
            api.delete(victim.name, victim.version)
        assert api.get(victim.name, victim.version) is not None


# -- the seeded Forgejo serves the integrity walk ----------------------------------

SEEDED = seed.plan("viktor/")
FAULTS = seed.faults("viktor/")


@pytest.fixture(scope="module")
def puller(lab):
    """Forgejo's registry as cluster-puller (the lab's PAT), read-only use."""
    from phasegate.secrets import Secret

    f = lab["registries"].forgejo
    with RegistryClient(f.url, username="cluster-puller", password=Secret(lab.secret("forgejo_pull_token"), "pull"),
                        ca_bundle=str(lab.ca.bundle)) as client:
        yield client


def test_seeded_forgejo_is_green_with_every_version_kind(lab, puller):
    names = [r.name for r in SEEDED]
    result = check_registry(puller, mode="head", repositories=names)
    exp = seed.expected(SEEDED)
    assert (result.repositories, result.tags, result.manifests, result.indexes, result.blobs) == (
        exp.repositories, exp.tags, exp.manifests, exp.indexes, exp.blobs)
    assert result.broken == []
    versions = lab["registries"].forgejo.versions("viktor")
    assert any(v.untagged for v in versions) and any(not v.untagged for v in versions)


@pytest.mark.parametrize("mode", ["head", "verify"])
def test_forgejo_on_disk_faults_exactly(lab, puller, mode):
    names = [r.name for r in SEEDED]
    with lab.fault("forgejo-orphaned-index-child"), lab.fault("forgejo-missing-layer"), \
            lab.fault("forgejo-bitrot-layer"):
        result = check_registry(puller, mode=mode, repositories=names)
    expected = []
    for target in FAULTS.values():
        status = target.head_status if mode == "head" else target.verify_status
        if status is not None:
            expected.append((target.repository, target.tag, target.digest, target.kind, status))
    got = [(b.repository, b.tag, b.digest, b.kind, b.status) for b in result.broken]
    assert sorted(got, key=str) == sorted(expected, key=str)
    assert check_registry(puller, mode=mode, repositories=names).ok  # repaired on exit
