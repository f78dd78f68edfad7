"""Instance-awareness judged by promtool: the real Phase 0 rules pass, each broken shape is red."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from phasegate import config, promtool
from phasegate.lab.metrics import rules
from phasegate.prometheus import AlertRule
from phasegate.verdict import Broken

MIRROR = Path("/work/.mirror/ViktorBarzin+infra/repo")
M = config.Metrics()
QUERIES = {"failures": M.queries.failures, "catalog_accessible": M.queries.catalog_accessible,
           "last_run": M.queries.last_run}
INSTANCES = [M.forgejo_instance, "registry.viktorbarzin.me:5050"]


def _as_api(doc: dict) -> list[AlertRule]:
    """What /api/v1/rules gives for a rules file: `for` in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    return [AlertRule(r["alert"], r["expr"], float(r["for"][:-1]) * units[r["for"][-1]], r.get("labels", {}),
                      r.get("annotations", {}), g["name"], "rules.yml")
            for g in doc["groups"] for r in g["rules"]]


def judge(doc: dict) -> promtool.RuleTest:
    return promtool.test_instance_awareness(_as_api(doc), M.integrity_alerts, QUERIES, INSTANCES, M.probe_push_job)


def test_the_real_phase0_rules_pass():
    r = judge(rules())
    assert r.passed, r.output + "\n" + r.summary()
    assert "SUCCESS" in r.output


def test_lab_rules_are_the_infra_repository_s_rules_at_phase0():
    if not (MIRROR / "HEAD").exists():
        pytest.fail(f"the infra mirror {MIRROR} is needed to compare the lab's rules with the real ones")
    tpl = subprocess.run(["git", "-C", str(MIRROR), "show",
                          "5d22b449:stacks/monitoring/modules/monitoring/prometheus_chart_values.tpl"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    block = "\n".join(line[10:] for line in tpl[1652:1674])  # lines 1653-1674, indented 10
    real = yaml.safe_load(block)
    assert [r["alert"] for r in real] == M.integrity_alerts
    assert real == rules()["groups"][0]["rules"]
    assert judge({"groups": [{"name": "Cluster", "rules": real}]}).passed


@pytest.mark.parametrize("variant,words", [
    ("aggregated", ["RegistryManifestIntegrityFailure", "no instance label"]),
    ("old-job", ["RegistryIntegrityProbeStale", "fired 0 alert(s)"]),
    ("hard-coded", ["fired 1 alert(s): instance=\"registry.viktorbarzin.me:5050\""]),
    ("pre-phase0", ["no annotation names the firing instance"]),
])
def test_a_rule_that_loses_an_instance_is_red(variant, words):
    r = judge(rules(variant, INSTANCES[1]))
    assert not r.passed
    for w in words:
        assert w in r.summary(), r.summary()


def test_an_alert_firing_when_healthy_is_red():
    doc = rules()
    doc["groups"][0]["rules"][2]["expr"] = "registry_manifest_integrity_catalog_accessible >= 0"
    r = judge(doc)
    assert not r.passed and "probe signals healthy" in r.summary()


def test_a_missing_alert_is_red():
    doc = rules()
    del doc["groups"][0]["rules"][1]
    r = judge(doc)
    assert not r.passed and "RegistryIntegrityProbeStale: no such alerting rule loaded" in r.summary()


def test_a_templated_label_cannot_be_judged():
    doc = rules()
    doc["groups"][0]["rules"][0]["labels"]["severity"] = "{{ $labels.sev }}"
    with pytest.raises(Broken, match="template"):
        judge(doc)
