"""The keep-set as forgejo-cleanup's cleanup.sh decides it (stacks/forgejo/files/cleanup.sh:72-87
@ 5d22b449 and e0452611), checked on tied timestamps: a buildx push writes an index's children,
the index and its other tags within one second, children first (lower ids)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from phasegate.retention import keep_sets

T0 = dt.datetime(2026, 6, 9, 14, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class V:
    id: int
    name: str
    version: str
    created_at: dt.datetime


def history(newer: int) -> list[V]:
    """build 1; then one buildx push (2 children, the index tag, latest) in one second; then `newer` builds."""
    vs = [V(1, "app", "aaaa0001", T0)]
    push = T0 + dt.timedelta(days=1)
    vs += [V(2, "app", "sha256:" + "c1" * 32, push), V(3, "app", "sha256:" + "c2" * 32, push),
           V(4, "app", "bbbb0002", push), V(5, "app", "latest", push)]
    vs += [V(5 + n, "app", f"later-{n}", push + dt.timedelta(hours=n)) for n in range(1, newer + 1)]
    return vs


def test_ties_end_id_descending_as_the_script_reverses_its_stable_sort():
    ks = keep_sets(history(newer=7), keep_last_n=10, always_keep=["latest"], keep_substring="cache")["app"]
    # newest first: the 7 later builds, then the tied push id-descending (latest, index, c2, c1), then build 1
    assert [v.id for v in ks.keep] == [12, 11, 10, 9, 8, 7, 6, 5, 4, 3]
    assert [v.id for v in ks.delete] == [2, 1]  # a kept index's child goes: the 2026-06-10 shape


def test_latest_and_cache_tags_are_kept_beyond_the_newest_n():
    vs = history(newer=12) + [V(99, "app", "buildcache", T0 - dt.timedelta(days=3))]
    ks = keep_sets(vs, keep_last_n=10, always_keep=["latest"], keep_substring="cache")["app"]
    assert ks.why["latest"] == "always kept (latest)" and ks.why["buildcache"] == "contains 'cache'"
    assert {v.version for v in ks.delete} == {"aaaa0001", "bbbb0002", "later-1", "later-2", "sha256:" + "c1" * 32,
                                              "sha256:" + "c2" * 32}


LOG = """Forgejo cleanup: owner=viktor keep_last=10 dry_run=true
API base: https://127.0.0.1:1/api/v1
Found 13 package version(s).
[app] 13 version(s)
  keep=11 delete=2
  DRY_RUN would DELETE https://127.0.0.1:1/api/v1/packages/viktor/container/app/sha256:c1c1
  DRY_RUN would DELETE https://127.0.0.1:1/api/v1/packages/viktor/container/app/aaaa0001
Summary: kept=11 to_delete=2 dry_run=true
"""


def test_the_dry_run_log_is_read_as_the_script_prints_it():
    from phasegate.retention import DryRun

    run = DryRun.parse("forgejo/job", LOG)
    assert run.would_delete == {"app": {"sha256:c1c1", "aaaa0001"}} and run.dry_run == "true"


def test_a_log_that_deleted_or_was_cut_short_is_not_a_dry_run():
    import pytest

    from phasegate.retention import DryRun
    from phasegate.verdict import Broken, GateFailed

    with pytest.raises(GateFailed, match="dry_run=false"):
        DryRun.parse("forgejo/job", LOG.replace("dry_run=true", "dry_run=false"))
    with pytest.raises(Broken, match="no Summary line"):
        DryRun.parse("forgejo/job", LOG.rsplit("Summary", 1)[0])
    with pytest.raises(Broken, match="to_delete=2 but printed 1"):
        DryRun.parse("forgejo/job", LOG.replace("  DRY_RUN would DELETE https://127.0.0.1:1/api/v1/packages/viktor/container/app/aaaa0001\n", ""))
