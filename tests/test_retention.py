"""The keep-set as forgejo-cleanup's cleanup.sh decides it (stacks/forgejo/files/cleanup.sh:72-87
@ 5d22b449 and e0452611), checked on tied timestamps: a buildx push writes an index's children,
the index and its other tags within one second, children first (lower ids)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from phasegate.retention import keep_sets

T0 = dt.datetime(2026, 6, 9, 14, 0, tzinfo=dt.timezone.utc)


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
