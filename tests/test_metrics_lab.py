"""The metrics lab and the bake gates: real Prometheus, backfilled histories, one red gate per fault."""

from __future__ import annotations

import dataclasses
import os
from unittest import mock
import datetime as dt
import tomllib
from pathlib import Path

import pytest

from phasegate import bake, config
from phasegate.http import HttpSettings
from phasegate.lab import bake_history
from phasegate.prometheus import Prometheus, PromQLError, iso
from phasegate.verdict import GateFailed

REPO = Path(__file__).resolve().parent.parent
CASES = tomllib.loads((REPO / "tests" / "faults" / "metrics.toml").read_text())["case"]
# the bake faults of this area: each has exactly one Phase 2 gate of its own
OWN = {c["fault"]: c["scenario"] for c in CASES if c["fault"].startswith("bake-") or c["fault"] == "retention-orphans-children"}

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def inv(lab):
    return config.load(lab.inventory_path)


@pytest.fixture(scope="module")
def prom(inv):
    with Prometheus(inv.metrics.prometheus_url, HttpSettings()) as p:
        yield p


def test_raw_samples_carry_timestamps_over_the_whole_window(inv, prom):
    judge = bake.BakeJudge.connect(prom, inv)
    res = judge.samples(judge.promql("failures"))
    assert res.result_type == "matrix" and len(res.series) == 1
    times = [s.t for s in res.series[0].samples]
    assert min(times) <= judge.window.start + 900 and max(times) == judge.window.end
    assert judge.window.complete and judge.window.days == inv.bake.days


def test_a_metric_prometheus_never_had_fails_with_no_data(inv, prom):
    queries = dataclasses.replace(inv.metrics.queries,
                                  failures='registry_manifest_integrity_failures_typo{instance="$instance"}')
    wrong = dataclasses.replace(inv, metrics=dataclasses.replace(inv.metrics, queries=queries))
    judge = bake.BakeJudge.connect(prom, wrong)
    with pytest.raises(GateFailed) as e:
        judge.zero_integrity_failures()
    assert "no data" in str(e.value) and "registry_manifest_integrity_failures_typo" in str(e.value)


def test_an_instance_prometheus_never_saw_fails_with_no_data(inv, prom):
    wrong = dataclasses.replace(inv, metrics=dataclasses.replace(inv.metrics, forgejo_instance="nowhere.test"))
    judge = bake.BakeJudge.connect(prom, wrong)
    for check in (judge.zero_integrity_failures, judge.probe_never_stale):
        with pytest.raises(GateFailed, match="no data"):
            check()


def test_a_window_only_partly_covered_is_no_data(inv, prom):
    early = dataclasses.replace(inv.bake, start=inv.bake.start - dt.timedelta(days=3))
    judge = bake.BakeJudge.connect(prom, dataclasses.replace(inv, bake=early))
    with pytest.raises(GateFailed, match="no data for part of the window"):
        judge.zero_integrity_failures()


def test_bad_promql_is_broken_not_empty(prom):
    with pytest.raises(PromQLError):
        prom.query("registry_manifest_integrity_failures{")
    assert prom.query("registry_manifest_integrity_failures_typo").empty


def test_alert_rules_are_the_real_ones(prom, inv):
    rules = {r.name: r for r in prom.alert_rules()}
    assert set(inv.metrics.integrity_alerts) <= set(rules)
    assert rules["RegistryManifestIntegrityFailure"].duration == 1800
    assert rules["RegistryManifestIntegrityFailure"].labels["severity"] == "critical"


def _event_dates(lab, fault: str) -> list[str]:
    start = lab["metrics"].start_date
    events = bake_history.FAULTS.get(fault, ("", []))[1]
    return [(start + dt.timedelta(days=e["day"])).isoformat() for e in events if "at" in e]


# fault -> the exit criterion (phasegate.bake.exit_checks) it must turn red, and no other
OWN_CRITERION = {
    "bake-integrity-failure-day9": "zero integrity failures and alerts",
    "bake-failure-sample-without-alert": "zero integrity failures and alerts",
    "bake-probe-silent-day5": "probe never stale",
    "bake-forgejo-near-oom-day3": "forgejo never near OOM",
    "bake-forgejo-oomkilled": "forgejo never near OOM",
    "bake-retention-12-runs": "retention succeeded enough",
    "bake-no-sunday-gc": "Sunday GC cycle",
    "bake-dry-run-still-true-day10": "DRY_RUN flipped",
    "bake-healthz-down": "healthz green over the window",
    "bake-dual-push-too-recent": "bake long enough",
    "retention-orphans-children": "retention keep-set safe",
}


def _red_criteria(lab, live: bool = True) -> dict[str, str]:
    inv = config.load(lab.inventory_path)  # faults may rewrite the lab inventory
    with mock.patch.dict(os.environ, lab.env()), Prometheus(inv.metrics.prometheus_url, HttpSettings()) as p:
        judge = bake.BakeJudge.connect(p, inv)
        red = {}
        checks = bake.exit_checks(judge, inv, HttpSettings()) if live else judge.criteria()
        for name, check in checks.items():
            try:
                check()
            except GateFailed as e:
                red[name] = str(e)
        return red


def test_every_bake_fault_has_its_own_criterion():
    assert set(OWN_CRITERION) == set(OWN), "a bake fault of tests/faults/metrics.toml lacks its criterion here"


def test_the_green_bake_has_no_red_criterion(lab):
    assert _red_criteria(lab) == {}


@pytest.mark.parametrize("fault", sorted(OWN_CRITERION))
def test_each_bake_fault_turns_exactly_its_own_criterion_red(lab, fault):
    """In-process over every exit criterion (the matrix runs the scenarios themselves)."""
    # a history fault only changes Prometheus: the live checks (Forgejo) are judged in the green test
    with lab.fault(fault):
        red = _red_criteria(lab, live=fault not in bake_history.FAULTS)
    own = OWN_CRITERION[fault]
    assert set(red) == {own}, f"{fault}: red criteria {sorted(red)} (expected only {own!r})\n" + "\n".join(red.values())
    message = red[own]
    for day in _event_dates(lab, fault):
        assert day in message, f"the offending day {day} is not in the verdict:\n{message}"
    assert any(w in message for w in ("PromQL", "inventory [bake]", "@sha256:")), message


def test_bake_window_from_inventory():
    b = config.Bake(start=dt.date(2026, 6, 1), days=14)
    w = bake.BakeWindow.from_inventory(b, now=dt.datetime(2026, 6, 20, tzinfo=dt.timezone.utc).timestamp())
    assert iso(w.start) == "2026-06-01T00:00:00Z" and iso(w.end) == "2026-06-15T00:00:00Z"
    assert w.complete and w.day_of(w.day_start(9) + 3600) == 9
    early = bake.BakeWindow.from_inventory(b, now=dt.datetime(2026, 6, 10, tzinfo=dt.timezone.utc).timestamp())
    assert not early.complete


# -- the daily bake job writes nothing, anywhere -----------------------------------------

PROMETHEUS_WRITE_HANDLERS = ("/api/v1/admin", "/-/reload", "/-/quit", "/api/v1/write", "/api/v1/otlp")


def _pushgateway_writes(url: str) -> float:
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("pushgateway_http_requests_total{") and 'method="get"' not in line.lower():
            total += float(line.rsplit(" ", 1)[1])
    return total


def _prometheus_writes(url: str) -> float:
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and any(f'handler="{h}' in line for h in PROMETHEUS_WRITE_HANDLERS):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.slow
def test_the_read_only_bake_sends_no_write_to_any_lab_server(lab, gates):
    m = lab["metrics"]
    forgejo = getattr(lab["registries"], "forgejo", None) if "registries" in lab else None
    kube = lab["cluster"].api if "cluster" in lab else None
    push0, prom0 = _pushgateway_writes(m.pushgateway_url), _prometheus_writes(m.prometheus_url)
    forgejo0 = forgejo.mark() if forgejo else 0
    kube0 = len(kube.requests) if kube else 0

    run = gates("phase2 and readonly")
    assert run.results and not run.failed(), run.summary()

    assert _pushgateway_writes(m.pushgateway_url) == push0, "the bake pushed to the Pushgateway"
    assert _prometheus_writes(m.prometheus_url) == prom0, "the bake used a Prometheus write/admin endpoint"
    if forgejo:
        assert forgejo.requests(forgejo0), "the bake never reached the Forgejo stand-in (nothing was judged there)"
        assert not forgejo.writes(forgejo0), f"the bake wrote to Forgejo: {forgejo.writes(forgejo0)}"
    if kube:
        writes = [r for r in kube.requests[kube0:] if r[0].upper() not in ("GET", "HEAD", "OPTIONS")]
        assert not writes, f"the bake wrote to the Kubernetes API: {writes}"
