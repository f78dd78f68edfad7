"""`promtool test rules`: alerting rules judged by Prometheus' own rule engine.

Whether an alert covers every registry is a question about how the rule
*evaluates*, not how its text looks: `sum(registry_manifest_integrity_failures) > 0`
names no instance and still loses it; `...{job="registry-integrity-probe"}`
looks generic and never sees the Forgejo probe. So the gate hands the rules
Prometheus has loaded (its rules API) to `promtool test rules` with synthetic
series, one set per registry instance, shaped like what the probe pushes
(stacks/monitoring/modules/monitoring/main.tf:591-602 @5d22b449: the gauges
carry `instance="$INSTANCE"`; the push goes to `/metrics/job/<probe job>` and
Prometheus scrapes the Pushgateway with `honor_labels: true`,
prometheus_chart_values.tpl:170-181 @5d22b449, so each series also carries
`job="<probe job>"`).

Two test groups: with every probe signal unhealthy each alert must fire once
per instance carrying that instance (and the job) as labels; with every signal
healthy none may fire. promtool compares annotations exactly (unittest.go
compares labels and annotations of each firing alert), and an annotation's
rendered text cannot be predicted without its template engine, so the copy
given to promtool carries the rules' expressions, `for` and labels; whether
an annotation names the firing instance is read from its template text.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from phasegate.prometheus import AlertRule
from phasegate.verdict import Broken, check

PROMTOOL = "promtool"
INTERVAL_S = 60

# What the probe pushes when a registry is unhealthy vs healthy, per inventory query key
# (phasegate.toml [metrics.queries]). `last_run`: a timestamp frozen at 0 is stale; one that
# follows the clock (0, 60, 120, ... at 1m steps) is fresh.
SIGNALS = {
    "failures": ("3", "0"),
    "catalog_accessible": ("0", "1"),
    "last_run": ("0", "fresh"),
}


@dataclass(frozen=True)
class RuleTest:
    passed: bool
    output: str  # promtool's own report
    problems: list[str]  # one line per alert that is wrong, for the verdict
    eval_minutes: int

    def summary(self) -> str:
        return "; ".join(self.problems) or "every alert fires per instance with its instance label"


def metric_selector(promql: str) -> tuple[str, dict]:
    """`name{k="v",...}` of an inventory query -> (name, labels); $-placeholders are left to the caller."""
    m = re.fullmatch(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*", promql)
    if not m:
        raise Broken(f"inventory query {promql!r} is not a plain series selector")
    labels = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', m.group(2) or ""))
    return m.group(1), labels


def _series(queries: dict[str, str], instances: list[str], job: str, unhealthy: bool, steps: int) -> list[dict]:
    out = []
    for key, promql in queries.items():
        name, labels = metric_selector(promql)
        bad, good = SIGNALS[key]
        value = bad if unhealthy else good
        for inst in instances:
            lbl = {k: v.replace("$instance", inst) for k, v in labels.items()}
            lbl.update(instance=inst, job=job)
            inner = ", ".join(f'{k}="{v}"' for k, v in sorted(lbl.items()))
            values = f"0+{INTERVAL_S}x{steps}" if value == "fresh" else f"{value}x{steps}"
            out.append({"series": f"{name}{{{inner}}}", "values": values})
    return out


def _rules_file(rules: list[AlertRule]) -> dict:
    groups: dict[str, list] = {}
    for r in rules:
        groups.setdefault(r.group or "rules", []).append(
            {"alert": r.name, "expr": r.query, "for": f"{int(r.duration)}s", "labels": dict(r.labels)})
    return {"groups": [{"name": g, "rules": rs} for g, rs in groups.items()]}


def _instance_in_annotations(rule: AlertRule) -> bool:
    texts = " ".join(str(v) for v in rule.annotations.values())
    return bool(re.search(r"\$labels\.instance\b|\.Labels\.instance\b|index \$labels \"instance\"", texts))


def test_instance_awareness(rules: list[AlertRule], alerts: list[str], queries: dict[str, str],
                            instances: list[str], job: str, *, timeout: float = 60.0) -> RuleTest:
    """Run `promtool test rules` on `rules` (those named in `alerts`) with series per instance."""
    if shutil.which(PROMTOOL) is None:
        raise Broken("promtool not found on PATH (Debian package prometheus): the alert rules cannot be "
                     "evaluated, so instance-awareness is not judged")
    chosen = [r for r in rules if r.name in alerts]
    problems = [f"{a}: no such alerting rule loaded" for a in alerts if a not in {r.name for r in chosen}]
    problems += [f"{r.name}: no annotation names the firing instance ($labels.instance); annotations: "
                 f"{r.annotations}" for r in chosen if not _instance_in_annotations(r)]
    longest_for = max((r.duration for r in chosen), default=0)
    # the stale alert needs time() - 0 > an hour first; then the longest `for`; then a margin
    eval_minutes = 60 + math.ceil(longest_for / 60) + 10
    steps = eval_minutes + 5
    present = sorted({r.name for r in chosen})
    fire = [{"eval_time": f"{eval_minutes}m", "alertname": a,
             "exp_alerts": [{"exp_labels": {**_static_labels(chosen, a), "instance": i, "job": job}}
                            for i in instances]} for a in present]
    quiet = [{"eval_time": f"{eval_minutes}m", "alertname": a, "exp_alerts": []} for a in present]
    with tempfile.TemporaryDirectory(prefix="phasegate-promtool-") as tmp:
        rules_path = Path(tmp) / "rules.yml"
        rules_path.write_text(yaml.safe_dump(_rules_file(chosen), sort_keys=False))
        test_path = Path(tmp) / "test.yml"
        test_path.write_text(yaml.safe_dump({
            "rule_files": [str(rules_path)], "evaluation_interval": "1m",
            "tests": [
                {"name": "probe signals unhealthy: each alert fires once per instance", "interval": "1m",
                 "input_series": _series(queries, instances, job, True, steps), "alert_rule_test": fire},
                {"name": "probe signals healthy: no alert fires", "interval": "1m",
                 "input_series": _series(queries, instances, job, False, steps), "alert_rule_test": quiet},
            ]}, sort_keys=False))
        if not present:
            return RuleTest(False, "(promtool not run: none of the alerts is loaded)", problems, eval_minutes)
        try:
            proc = subprocess.run([PROMTOOL, "test", "rules", str(test_path)], capture_output=True, text=True,
                                  timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise Broken(f"promtool test rules did not finish in {timeout:g} s") from None
    output = (proc.stdout + proc.stderr).replace(tmp, "<tmp>").strip()
    if proc.returncode != 0 and "FAILED" not in output:
        raise Broken(f"promtool test rules could not run the rules (exit {proc.returncode}): {output[-800:]}")
    problems += _failures(output)
    return RuleTest(proc.returncode == 0 and not problems, output, problems, eval_minutes)


def gate_instance_awareness(prometheus, m) -> RuleTest:
    """The live alert rules (Prometheus' rules API) of `m.integrity_alerts` are instance-aware for both registry
    instances, judged by promtool; promtool's report attached whatever the verdict."""
    from phasegate.report import attach_text

    q = m.queries
    result = test_instance_awareness(
        prometheus.alert_rules(), m.integrity_alerts,
        {"failures": q.failures, "catalog_accessible": q.catalog_accessible, "last_run": q.last_run},
        [m.forgejo_instance, m.private_instance], m.probe_push_job)
    attach_text("promtool test rules", result.output)
    check(result.passed,
          expected=f"{', '.join(m.integrity_alerts)} each fire once per registry instance "
                   f"({m.forgejo_instance}, {m.private_instance}) carrying its instance label, name it in an "
                   "annotation, and stay quiet when the probe is healthy",
          seen=f"{len(result.problems)} problem(s): {result.summary()}",
          where=f"GET {m.prometheus_url}/api/v1/rules?type=alert, judged by promtool test rules",
          evidence="promtool:\n" + result.output)
    return result


def _static_labels(rules: list[AlertRule], alert: str) -> dict:
    """The labels a rule adds to its alerts; a templated label value is not predictable here."""
    out: dict = {}
    for r in rules:
        if r.name == alert:
            for k, v in r.labels.items():
                if "{{" in str(v):
                    raise Broken(f"{alert}: label {k} is a template ({v!r}): its value cannot be predicted "
                                 "for promtool's expectation")
                out[k] = v
    return out


_BLOCK = re.compile(r"name:\s*(?P<group>[^\n]*?),\s*\n\s*alertname:\s*(?P<alert>\S+), time: (?P<time>[^,]+),"
                    r"(?P<body>.*?)(?=\n\s*name:|\Z)", re.S)


def _failures(output: str) -> list[str]:
    """promtool's FAILED blocks as one line each: what fired, with which instance labels."""
    out = []
    for m in _BLOCK.finditer(output):
        got = m.group("body").split("got:", 1)[-1]
        fired = re.findall(r"Labels:\{([^}]*)\}", got)
        insts = [re.search(r'instance="([^"]*)"', f) for f in fired]
        seen = ", ".join(f'instance="{i.group(1)}"' if i else "no instance label" for i in insts)
        out.append(f"{m.group('alert')} ({m.group('group')}, at {m.group('time')}): "
                   f"fired {len(fired)} alert(s){': ' + seen if fired else ''}")
    return out
