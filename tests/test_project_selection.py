"""`--project NAME` selects every gate whose subject is that project, in every phase (issue 15.3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from phasegate import config
from tests import REPO


def collect(*args: str) -> subprocess.CompletedProcess:
    inv = config.load()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASEGATE_")}
    env.update({s.env: "collect-only-not-a-secret" for s in inv.secrets.values()})  # nothing runs
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.netguard", "--collect-only", "-q",
                           "-p", "no:cacheprovider", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def ids(run) -> list[str]:
    return [line for line in run.stdout.splitlines() if line.startswith("steps/")]


@pytest.mark.parametrize("project,expected", [
    # -k infra-ci found one row; the pipelines' static gate and the break-glass copies are about it too
    ("infra-ci", ["test_phase1_breakglass.py::test_the_copy_breakglass_copy_holds_the_newest_infraci_build[nas-infra-ci]",
                  "test_phase1_breakglass.py::test_the_copy_breakglass_copy_holds_the_newest_infraci_build[registry-vm-infra-ci]",
                  "test_phase1_dual_push.py::test_project_pushes_its_newest_build_to_both_registries[infra-ci]",
                  "test_phase1_pipelines.py::test_the_project_pipeline_pushes_to_both_registries_with_secret_logins[infra-ci]",
                  "test_phase3_cutover.py::test_project_is_cut_over_to_forgejo[infra-ci]",
                  "test_phase3_infra_repo.py::test_the_infra_pipelines_run_the_infraci_image_from_forgejo[infra-ci]",
                  "test_phase3_infra_ci_apply.py::test_the_newest_push_to_projects_repository_applies_cleanly[infra-ci]"]),
    # -k claude-memory-mcp missed the CLAUDE.md gate
    ("claude-memory-mcp", ["test_phase3_infra_repo.py::test_the_monorepo_claudemd_installs_claudememorymcp_from_forgejo[claude-memory-mcp]",
                           "test_phase3_github_archived.py::test_projects_github_repository_is_archived[claude-memory-mcp]"]),
    # -k beads-server missed the beadboard archive
    ("beads-server", ["test_phase1_github_workflow.py::test_projects_github_actions_workflows_are_disabled[beads-server]",
                      "test_phase3_github_archived.py::test_projects_github_repository_is_archived[beads-server]",
                      "test_phase3_infra_repo.py::test_the_project_stack_resolves_its_images_to_forgejo[beads-server]",
                      "test_phase3_cutover.py::test_project_is_cut_over_to_forgejo[beads-server]",
                      # its pre-flight: beadboard:17a38e43 and claude-agent-service:2fd7670d on Forgejo before the flip
                      "test_phase3_preflight.py::test_before_its_cutover_every_image_projects_flipped_stack_pulls_is_on_"
                      "forgejo_with_registryprivates_digest_and_intact[beads-server]"]),
])
def test_project_selects_every_gate_about_it(project, expected):
    run = collect(f"--project={project}")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    got = [i.removeprefix("steps/") for i in ids(run)]
    assert set(expected) <= set(got), got
    assert all(i.endswith(f"{project}]") for i in got), got  # nothing about another project


def test_project_combines_with_a_phase():
    run = collect("--project=infra-ci", "-m", "phase3")
    got = ids(run)
    assert len(got) == 3 and all("phase3" in i for i in got), got  # cutover, pipelines, next apply


def test_an_unknown_project_is_a_usage_error():
    run = collect("--project=beadboard")
    assert run.returncode == 4 and "--project beadboard: no such project" in run.stderr + run.stdout
