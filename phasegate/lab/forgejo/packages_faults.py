"""Faults of the Forgejo stand-in's package API and package list (lab component `registries`): DELETE
refused or ignored, and the retention history (what the package list looks like after real pushes and
clean-ups, issue 20)."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from pathlib import Path

from phasegate.lab import seed
from phasegate.lab.faults import fault
from phasegate.lab.procs import LabError
from phasegate.lab.registries import FORGEJO_OWNER, FORGEJO_PUSHER


def _forgejo(lab):
    return lab["registries"].forgejo


@fault("forgejo-delete-ignored", component="registries",
       description="Forgejo's package API answers DELETE with 204 but the version survives")
def _delete_ignored(lab):
    with _forgejo(lab).fault(delete_mode="ignore"):
        yield


@fault("forgejo-delete-refused", component="registries",
       description="Forgejo's package API refuses to delete a version (HTTP 500)")
def _delete_refused(lab):
    with _forgejo(lab).fault(delete_mode="refuse"):
        yield


# --------------------------------------------------------------------------
# Retention history (issue 20): what the package list looks like after real pushes and clean-ups
# --------------------------------------------------------------------------

TIE_PROJECT = "payslip-ingest"  # an OCI index with attestation children (seed KINDS[0])


@contextlib.contextmanager
def _newer_builds(lab, newer: int):
    """`newer` later single-arch builds of TIE_PROJECT, an hour apart after its buildx push."""
    f = _forgejo(lab)
    repo = f"{FORGEJO_OWNER}/{TIE_PROJECT}"
    group = f.push_order(repo, seed.sha_tag(TIE_PROJECT, 2)) + ["latest"]
    when = {v.version: v.created_at for v in f.versions(FORGEJO_OWNER) if v.repository == repo}
    pushed_at = when[group[-1]]
    if any(when[v] != pushed_at for v in group):
        raise LabError(f"{repo}: the seeded buildx push is not one second: {when}")
    body, ctype = f.manifest_bytes(repo, seed.sha_tag(TIE_PROJECT, 1))
    later = [f"later-build-{n}" for n in range(1, newer + 1)]
    try:
        for n, tag in enumerate(later, 1):
            f.store_manifest(repo, tag, body, ctype, creator=FORGEJO_PUSHER)
            f.set_created_at(repo, tag, pushed_at + dt.timedelta(hours=n))
        yield
    finally:
        for tag in later:
            f.delete_version(repo, tag)


@fault("forgejo-retention-ties", component="registries",
       description="8 newer builds put the keep boundary inside a buildx push whose children, index and "
                   "latest share one second: cleanup.sh's sort_by(.created_at) | reverse keeps the index "
                   "and latest and deletes their children (a model keeping ties id-ascending sees no orphan)")
def _retention_ties(lab):
    with _newer_builds(lab, 8):  # 8 + latest + the index tag = the newest 10
        yield


@fault("forgejo-retention-2026-06-10", component="registries",
       description="the 2026-06-10 keep-set (kms-website): an image not rebuilt recently -- 10 newer builds "
                   "fill the newest-10 window, `latest` (an index) is kept by its own rule, its children "
                   "sort older and are deleted")
def _retention_20260610(lab):
    # docs/post-mortems/2026-06-10-forgejo-retention-orphaned-indexes.md "Root cause" @ 0cd4afb6
    with _newer_builds(lab, 10):
        yield


@fault("forgejo-first-pushes-pruned", component="registries",
       description="retention (and later clean-ups) deleted every project's first pushed build before "
                   "Phase 1 runs: the oldest surviving package version is no longer the dual-push start")
def _first_pushes_pruned(lab):
    f = _forgejo(lab)
    engine = lab["registries"].forgejo_engine
    aside = lab.dir / "faults" / "first-pushes-pruned"
    moved: list[tuple[Path, Path]] = []
    try:
        for image in seed.PROJECTS:
            repo, tag = f"{FORGEJO_OWNER}/{image}", seed.sha_tag(image, 1)
            tags = f.store.tags(repo)
            if tag not in tags:
                continue
            digest = tags[tag][0]
            dirs = [engine.tag_dir(repo, tag)]
            if not any(d == digest for t, (d, _) in tags.items() if t != tag):
                dirs.append(engine.v2 / "repositories" / repo / "_manifests" / "revisions" / "sha256" / digest.split(":", 1)[1])
            for d in dirs:
                dst = aside / d.relative_to(engine.v2)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(d), str(dst))
                moved.append((d, dst))
        yield
    finally:
        for d, dst in reversed(moved):
            shutil.move(str(dst), str(d))


# --------------------------------------------------------------------------
# The cutover pre-flight (issue 16.3): what a flipped stack pulls, missing or another build on Forgejo
# --------------------------------------------------------------------------


@fault("forgejo-only-latest-copied", component="registries",
       description="only `:latest` (and novnc's `:v4`) was copied to Forgejo, as scripts/forgejo-migrate-orphan-images.sh "
                   "did (:39-48 @c2f8a300): the tags the stacks pin (claude-agent-service:2fd7670d, "
                   "beadboard:17a38e43) are not on Forgejo, registry-private still serves them")
def _only_latest_copied(lab):
    refs = [(f"{FORGEJO_OWNER}/{image}", tag) for image, tags in seed.PINNED.items() for tag in tags
            if (image, tag) not in seed.PINNED_COPIED_BY_SCRIPT]
    with seed.tags_removed(lab["registries"].forgejo_engine, refs):
        yield


PINNED_REBUILT = ("chrome-service-novnc", "v4")  # a hand-made tag, the one a rebuild would reuse


@fault("forgejo-pinned-tag-other-build", component="registries",
       description="Forgejo's chrome-service-novnc:v4 names another build than registry-private's (a rebuild pushed "
                   "under the same tag to Forgejo only): the flip would change what the pods run")
def _pinned_tag_other_build(lab):
    image, tag = PINNED_REBUILT
    older = next(r for r in seed.plan("") if r.name == image).tags[seed.sha_tag(image, 1)].digest
    with seed.tag_repointed(lab["registries"].forgejo_engine, f"{FORGEJO_OWNER}/{image}", tag, older):
        yield
