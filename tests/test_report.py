"""The report machinery on a self-contained example feature (tests/report_example/):
labels, plan links, evidence attachments, categories, environment, executor, redaction,
Allure 3 / Allure 2 rendering with history, and verdicts pushed to a real Pushgateway.

The same machinery on the real gates against the lab, in a browser: tests/test_report_browser.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import tomli_w

from phasegate import report
from phasegate.lab.procs import Proc, free_port, wait_until
from tests import REPO
from tests.example_project import example_project, run_example

EXAMPLE = REPO / "tests" / "report_example"
CANARY = "pgcanary"
SECRETS = {
    "PHASEGATE_FORGEJO_PUSH_TOKEN": "pgcanary-push-0123456789",
    "PHASEGATE_FORGEJO_PULL_TOKEN": "pgcanary-pull-0123456789",
    "PHASEGATE_FORGEJO_CLEANUP_TOKEN": "pgcanary-cleanup-0123456789",
    "PHASEGATE_PRIVATE_REGISTRY_PASSWORD": "pgcanary-private-0123456789",
    "PHASEGATE_FORGEJO_REPO_TOKEN": "pgcanary-repo-0123456789",  # phase3 needs it (infra-ci next apply)
    "EXAMPLE_TOKEN": "pgcanary-example-0123456789",
}


def _project(tmp: Path) -> Path:
    """A throw-away gate project: features/, steps/, conftest.py and an inventory."""
    return example_project(tmp, EXAMPLE, {"example.feature": "features/example.feature",
                                          "example_steps.py": "steps/test_example.py",
                                          "example_conftest.py": "conftest.py"},
                           {"phase0": "p0", "phase2": "p2", "phase3": "p3", "readonly": "ro", "project": "per project"},
                           "report-example")


@pytest.fixture(scope="module")
def example_run(tmp_path_factory, pushgateway):
    """One run of the example gates: default results folder, --push-metrics, CI variables set."""
    tmp = _project(tmp_path_factory.mktemp("example"))
    run = run_example(tmp, pushgateway, {**SECRETS, "CI_PIPELINE_NUMBER": "42",
                                         "CI_PIPELINE_URL": "https://ci.lab.test/repos/7/pipeline/42",
                                         "CI_REPO": "viktor/phasegate", "CI_SYSTEM_URL": "https://ci.lab.test",
                                         "CI_SYSTEM_NAME": "woodpecker"}, ["-q"])
    assert run.results.is_dir(), run.proc.stdout[-3000:] + run.proc.stderr[-2000:]
    return {"dir": tmp, "results": run.results, "by_name": run.by_name, "proc": run.proc}


def _labels(result: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for lbl in result["labels"]:
        out.setdefault(lbl["name"], []).append(lbl["value"])
    return out


def _attachments(result: dict) -> list[str]:
    names = [a["name"] for a in result.get("attachments", [])]
    for step in result.get("steps", []):
        names += [a["name"] for a in step.get("attachments", [])]
    return names


def test_every_scenario_is_a_result_with_its_phase_project_node_and_plan_link(example_run):
    r = example_run["by_name"]
    assert example_run["proc"].returncode == 1  # three red gates
    assert set(r) == {"A gate that passes", "A gate that finds a product defect", "A gate that cannot reach its registry",
                      "A bake gate that shows its PromQL and integrity evidence",
                      "Cutover of payslip-ingest", "Cutover of job-hunter", "A gate whose client cannot be built"}
    cut = _labels(r["Cutover of job-hunter"])
    assert cut["phase"] == ["phase3"] and cut["project"] == ["job-hunter"] and cut["node"] == ["k8s-node2"]
    assert cut["registry"] == ["forgejo.lab.test"]  # added from a step with report.label()
    assert cut["parentSuite"] == ["Phase 3 — Cutover"] and cut["suite"] == ["Report example against a loopback registry"]
    links = r["A gate that passes"]["links"]
    assert links == [{"type": "link", "name": "Plan: Phase 0 — Prepare Forgejo",
                      "url": "https://forgejo.viktorbarzin.me/viktor/infra/src/branch/master/docs/plans/"
                             "2026-05-07-forgejo-registry-consolidation-plan.md#phase-0--prepare-forgejo-1-pr-no-cutover-risk"}]
    # the Gherkin steps are the Allure steps
    assert [s["name"] for s in r["A gate that passes"]["steps"]] == [
        "Given the example registry", 'When the gate reads "/v2/" with its token', "Then the answer is HTTP 200"]
    # step parameters are what the Gherkin text gave, not the fixtures the step function takes
    when = r["A gate that passes"]["steps"][1]
    assert [(p["name"], p["value"]) for p in when["parameters"]] == [("path", "'/v2/'")]


def test_a_product_defect_fails_with_its_evidence_and_a_broken_gate_says_why(example_run):
    r = example_run["by_name"]
    defect = r["A gate that finds a product defect"]
    assert defect["status"] == "failed"
    assert defect["statusDetails"]["message"].startswith("phasegate.verdict.GateFailed")
    failed_step = defect["steps"][-1]
    assert failed_step["status"] == "failed"
    names = [a["name"] for a in failed_step["attachments"]]
    assert names[:2] == ["Evidence", "HTTP exchanges (redacted)"]
    files = {a["name"]: (example_run["results"] / a["source"]).read_text() for a in failed_step["attachments"]}
    assert "MANIFEST_UNKNOWN" in files["Evidence"]
    assert "GET http://127.0.0.1:" in files["HTTP exchanges (redacted)"]
    assert "authorization: Bearer ***" in files["HTTP exchanges (redacted)"]
    broken = r["A gate that cannot reach its registry"]
    assert broken["status"] == "broken"
    assert broken["statusDetails"]["message"].startswith("phasegate.verdict.Unreachable")
    assert "Why the gate could not be judged" in _attachments(broken)
    # a gate whose fixtures fail before the scenario starts is still in the report, broken
    setup = r["A gate whose client cannot be built"]
    assert setup["status"] == "broken" and "Unreachable" in setup["statusDetails"]["message"]
    assert _labels(setup)["phase"] == ["phase0"] and setup["links"][0]["name"] == "Plan: Phase 0 — Prepare Forgejo"


def test_categories_split_product_defects_from_test_broken(example_run):
    cats = json.loads((example_run["results"] / "categories.json").read_text())
    assert [(c["name"], c["matchedStatuses"]) for c in cats][:2] == [
        ("Product defects", ["failed"]), ("Test broken", ["broken"])]  # then Pending / Not judged (test_outcomes)


def test_environment_and_executor_name_the_run_without_secrets(example_run):
    props = (example_run["results"] / "environment.properties").read_text()
    assert "inventory=report-example" in props
    assert "registry.forgejo=https\\://forgejo.viktorbarzin.me (owner viktor)" in props
    assert "suite.version=0.1.0" in props and "suite.git_sha=" in props
    ex = json.loads((example_run["results"] / "executor.json").read_text())
    assert ex["type"] == "woodpecker" and ex["buildOrder"] == 42
    assert ex["buildUrl"] == "https://ci.lab.test/repos/7/pipeline/42"


def test_evidence_api_attaches_promql_integrity_pulls_and_the_cutover_matrix(example_run):
    r = example_run["by_name"]
    bake = r["A bake gate that shows its PromQL and integrity evidence"]
    assert _attachments(bake) == ["PromQL", "Integrity: broken references"]
    src = {a["name"]: (example_run["results"] / a["source"]).read_text() for a in bake["steps"][-1]["attachments"]}
    assert "registry_manifest_integrity_failures" in src["PromQL"] and "14d" in src["PromQL"]
    assert "10 samples, min 0, max 0" in src["PromQL"]
    assert "index-child" in src["Integrity: broken references"] and "viktor/app:1" in src["Integrity: broken references"]
    cut = r["Cutover of payslip-ingest"]
    atts = {a["name"]: (example_run["results"] / a["source"]).read_text() for a in cut["steps"][-1]["attachments"]}
    assert set(atts) == {"Pulls per node", "Phase 3 cutover matrix", "Phase 3 cutover matrix (Markdown)"}
    md = atts["Phase 3 cutover matrix (Markdown)"]
    assert md.splitlines()[0] == ("| project | stack flipped | rollout complete | imageID from Forgejo | digest matches "
                                  "| integrity |")
    assert "| payslip-ingest | yes | yes | yes | **NO** pod runs sha256:0000 | yes |" in md
    assert "k8s-node1" in atts["Pulls per node"]


def test_no_secret_reaches_the_results(example_run):
    leaks = [p.name for p in example_run["results"].rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert not leaks, f"secrets in Allure results: {leaks}"
    # the example step printed its token on purpose: the captured stdout is redacted in the
    # results (above) and in pytest's own report
    assert CANARY not in example_run["proc"].stdout


def test_allure3_renders_one_file_without_analytics_or_secrets_and_keeps_history(example_run, tmp_path):
    history = tmp_path / "history"
    for _ in range(2):
        done = report.render(example_run["results"], tmp_path / "html", history, engine="allure3")
    assert done.engine == "allure3" and done.index == tmp_path / "html" / "index.html"
    assert set(done.pages) == {"dashboard", "awesome"}
    for page in [done.index, *done.pages.values()]:
        text = page.read_text()
        assert CANARY not in text
        assert "googletagmanager" not in text and "gtag(" not in text
    # each page is one file carrying its data inline: nothing to fetch, so it opens from file://
    assert 'd("widgets/statistic.json"' in done.gates_page.read_text()
    assert len((history / "history.jsonl").read_text().splitlines()) == 2  # one line per run: the trend


def test_allure2_fallback_renders_and_keeps_history(example_run, tmp_path):
    if report.allure2_binary() is None:
        pytest.fail("Allure 2 (npm allure-commandline) or java missing: run scripts/setup.sh")
    history = tmp_path / "history"
    for _ in range(2):
        done = report.render(example_run["results"], tmp_path / "html2", history, engine="allure2")
    assert done.engine == "allure2" and done.index.is_file()
    assert "googletagmanager" not in done.index.read_text()
    assert (history / "allure2" / "history.json").is_file()
    # the overview's trend widget: one point per run
    assert len(json.loads((history / "allure2" / "history-trend.json").read_text())) == 2


def test_verdicts_are_in_the_pushgateway(example_run, pushgateway):
    groups = httpx.get(f"{pushgateway}/api/v1/metrics", timeout=5).json()["data"]
    passed = {}
    stamps = {}
    for g in groups:
        labels = g["labels"]
        if labels["job"] != "phasegate":
            continue
        if "phasegate_gate_passed" in g:
            passed[(labels["phase"], labels["gate"], labels.get("project", ""))] = \
                g["phasegate_gate_passed"]["metrics"][0]["value"]
        if "phasegate_run_timestamp" in g:
            stamps[labels["phase"]] = float(g["phasegate_run_timestamp"]["metrics"][0]["value"])
    assert passed == {
        ("phase0", "A gate that passes", ""): "1",
        ("phase0", "A gate that finds a product defect", ""): "0",
        ("phase0", "A gate that cannot reach its registry", ""): "0",
        ("phase0", "A gate whose client cannot be built", ""): "0",
        ("phase2", "A bake gate that shows its PromQL and integrity evidence", ""): "1",
        ("phase3", "Cutover of payslip-ingest", "payslip-ingest"): "1",
        ("phase3", "Cutover of job-hunter", "job-hunter"): "1",
    }
    assert set(stamps) == {"phase0", "phase2", "phase3"} and all(s > 1.7e9 for s in stamps.values())
    assert "pushed 7 gate verdict(s)" in example_run["proc"].stdout


def test_the_suites_own_tests_write_no_allure_results(tmp_path):
    """`pytest tests` (the suite's own tests) must not fill reports/ with results."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    inv = tomllib.loads((REPO / "phasegate.toml").read_text())
    inv["report"]["results_dir"] = str(tmp_path / "results")
    (tmp_path / "inv.toml").write_text(tomli_w.dumps(inv))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--inventory",
                           str(tmp_path / "inv.toml"), "tests"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("PHASEGATE_")})
    assert proc.returncode == 0, proc.stdout
    assert not (tmp_path / "results").exists()


def test_executor_outside_ci_is_none_and_cutover_rows_mark_unchecked_cells():
    assert report.executor({}) is None
    rows = report.cutover_rows([{"project": "freedify", "stack_flipped": True}])
    assert rows[0][0] == "freedify" and rows[0][1] is True
    assert rows[0][2] == report.Cell(None, "not checked")


def test_the_trend_keeps_pending_apart_from_passed(tmp_path):
    """Pending and not-judged gates are Allure's `unknown` (skipped stays skipped): each run of the
    dashboard's trend counts them apart from `passed`, so the bake's open days never look green."""
    import base64
    import re
    import uuid

    results = tmp_path / "results"
    results.mkdir()
    for name, status in (("green", "passed"), ("window open", "unknown"), ("skipped", "skipped")):
        doc = {"uuid": str(uuid.uuid4()), "historyId": name, "testCaseId": name, "fullName": name, "name": name,
               "status": status, "stage": "finished", "start": 1, "stop": 2,
               "labels": [{"name": "phase", "value": "phase2"}], "steps": []}
        (results / f"{doc['uuid']}-result.json").write_text(json.dumps(doc))
    history = tmp_path / "history"
    for day in (1, 2):
        done = report.render(results, tmp_path / f"html{day}", history, engine="allure3")
    page = done.pages["dashboard"].read_text()
    charts = json.loads(base64.b64decode(re.search(r'd\("widgets/charts.json","([^"]*)"\)', page).group(1)))
    trend = next(c for c in charts["general"].values() if c["type"] == "statusDynamics")
    assert trend["title"] == report.TREND_TITLE
    assert not trend.get("statuses")  # no status filtered out of the trend
    assert [p["statistic"] for p in trend["data"]][:2] == [{"total": 3, "passed": 1, "unknown": 1, "skipped": 1}] * 2


def test_the_summary_links_files_and_a_phase3_run_opens_on_its_matrix(tmp_path):
    page = tmp_path / "index.html"
    page.write_text('x{"pluginId":"dashboard","href":"dashboard/"},{"pluginId":"awesome","href":"awesome/"}y')
    report.link_files(page, report.ALLURE3_PLUGINS, anchors={"awesome": "#globalAttachments"})
    assert page.read_text() == ('x{"pluginId":"dashboard","href":"dashboard/index.html"},'
                                '{"pluginId":"awesome","href":"awesome/index.html#globalAttachments"}y')
    page.write_text('{"href":"dashboard/"}')
    with pytest.raises(report.ReportError, match="no link to the awesome report"):
        report.link_files(page, report.ALLURE3_PLUGINS)
