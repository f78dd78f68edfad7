"""Forgejo gates that must stay green where production is healthy (issue 20): the red cases are in
tests/faults/registry.toml; these are the lab faults whose real events are *not* failures."""

from __future__ import annotations

import datetime as dt

import pytest

from phasegate.lab import seed

pytestmark = pytest.mark.lab

BAKE_CLOCK = "Every project dual-pushes and the bake clock starts at the last one"


def oldest_tag_per_project(lab) -> dict[str, str]:
    out = {}
    for v in sorted(lab["registries"].forgejo.versions("viktor"), key=lambda v: (v.created_at, v.id)):
        if not v.untagged and v.name in seed.PROJECTS:
            out.setdefault(v.name, v.version)
    return out


def test_first_pushes_pruned_by_retention_leave_the_bake_clock_green(lab, gates):
    """Retention deleted every project's first pushed build: the oldest surviving package version
    moves later, but the bake clock comes from the first successful dual-push commit, so the gate
    stays green."""
    before = oldest_tag_per_project(lab)
    assert before["payslip-ingest"] == seed.sha_tag("payslip-ingest", 1)
    with lab.fault("forgejo-first-pushes-pruned"):
        after = oldest_tag_per_project(lab)
    assert after["payslip-ingest"] == seed.sha_tag("payslip-ingest", 2)  # the fault really prunes them
    assert oldest_tag_per_project(lab) == before  # and puts them back
    pruned = gates(scenario=BAKE_CLOCK, fault="forgejo-first-pushes-pruned")
    assert pruned.passed() == [BAKE_CLOCK] and not pruned.failed(), pruned.summary()


DRY_RUN = "The retention job's own dry run deletes nothing a kept image needs"


def test_the_retention_dry_run_runs_the_script_and_writes_nothing_to_forgejo(lab, gates):
    """Green: the CronJob's own Job runs the infra checkout's cleanup.sh (BusyBox sh, curl, jq) with
    DRY_RUN=true against the stand-in, which sees only reads; the Job is deleted afterwards."""
    forgejo, kube = lab["registries"].forgejo, lab["cluster"].api
    mark = forgejo.mark()
    run = gates(scenario=DRY_RUN)
    assert run.passed() == [DRY_RUN], run.summary()
    seen = forgejo.requests(mark)
    assert any(s.path == "/api/v1/packages/viktor" for s in seen), "the script never listed the packages"
    assert forgejo.writes(mark) == []
    assert not [j for j in kube.list("Job", "forgejo") if "phasegate-dryrun" in j["metadata"]["name"]]


STORM = "Forgejo takes concurrent chunked pushes without nearing its memory limit or restarting"


def test_the_push_storm_is_green_in_the_lab_and_leaves_nothing_behind(lab, gates):
    forgejo = lab["registries"].forgejo
    run = gates(scenario=STORM)
    assert run.passed() == [STORM], run.summary()
    assert not [v for v in forgejo.versions("viktor") if v.name == "phasegate-push-storm"]
    patches = [s for s in forgejo.requests() if s.method == "PATCH" and "phasegate-push-storm" in s.path]
    assert len(patches) >= 4 * 3 * 4  # 4 pushes x 3 layers x 4 chunks of 1 MiB: chunked, not monolithic


def test_a_storm_that_fails_still_removes_what_it_pushed(lab, gates):
    forgejo = lab["registries"].forgejo
    run = gates(scenario=STORM, fault="forgejo-push-storm-near-limit")
    assert run.failed() == [STORM], run.summary()
    assert not [v for v in forgejo.versions("viktor") if v.name == "phasegate-push-storm"]


def test_the_seeded_history_is_a_push_history(lab):
    """Ids follow push order (a buildx push: children, then the index, then latest, in one second);
    builds are days apart; the API lists newest first, ties id ascending."""
    f = lab["registries"].forgejo
    repo = "viktor/payslip-ingest"
    vs = {v.version: v for v in f.versions("viktor") if v.repository == repo}
    build1, build2 = vs[seed.sha_tag("payslip-ingest", 1)], vs[seed.sha_tag("payslip-ingest", 2)]
    children = [vs[d] for d in f.push_order(repo, build2.version)[:-1]]
    assert children and all(c.untagged for c in children)
    assert build1.created_at < build2.created_at - dt.timedelta(hours=12)
    assert {c.created_at for c in children} == {build2.created_at, vs["latest"].created_at}
    assert max(c.id for c in children) < build2.id < vs["latest"].id and build1.id < min(c.id for c in children)
