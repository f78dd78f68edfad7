"""The metrics lab and the bake gates: real Prometheus, Loki and Uptime Kuma stand-ins, backfilled histories of
the real shape, one red gate per fault, an open window judged so far, the real May-June 2026 replay."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
import tomllib
from pathlib import Path
from unittest import mock

import pytest

from phasegate import bake, config
from phasegate.http import HttpSettings
from phasegate.lab import bake_history
from phasegate.prometheus import Prometheus, PromQLError, iso
from phasegate.verdict import GateFailed, Pending
from tests import REPO
from tests.xdist_groups import on_one_worker_per_fault

CASES = tomllib.loads((REPO / "tests" / "faults" / "metrics.toml").read_text())["case"]
# the bake faults of this area: each has exactly one Phase 2 gate of its own
OWN = {c["fault"]: c["scenario"] for c in CASES
       if (c["fault"].startswith("bake-") and not c["fault"].startswith("bake-open-"))
       or c["fault"] == "retention-orphans-children"}

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
    "bake-forgejo-image-day6": "no Forgejo image before the cutover",
    "bake-integrity-failure-day9": "zero integrity failures and alerts",
    "bake-failure-sample-without-alert": "zero integrity failures and alerts",
    "bake-probe-silent-day5": "probe never stale",
    "bake-forgejo-near-oom-day3": "forgejo never near OOM",
    "bake-forgejo-oomkilled": "forgejo never near OOM",
    "bake-memory-hole-48h": "forgejo never near OOM",
    "bake-pvc-at-autoresize-cap": "PVC headroom",
    "bake-no-pod-logs-days-3-5": "DRY_RUN flipped",
    # no DELETE succeeds, so no Sunday GC cycle either: both are truly broken
    "bake-cleanup-403": ("DRY_RUN flipped", "Sunday GC cycle"),
    "bake-healthz-hole-48h": "healthz green over the window",
    "bake-retention-12-runs": "retention succeeded enough",
    "bake-no-sunday-gc": "Sunday GC cycle",
    "bake-dry-run-still-true-day10": "DRY_RUN flipped",
    "bake-healthz-down": "healthz green over the window",
    "bake-dual-push-too-recent": "bake long enough",
    "retention-orphans-children": "retention keep-set safe",
}


def _judge_all(lab, live: bool = True) -> tuple[dict[str, str], dict[str, str], bake.BakeJudge]:
    """(red, pending, judge) over every exit criterion, as the gates judge them."""
    from phasegate.loki import Loki
    from phasegate.uptime_kuma import UptimeKuma

    inv = config.load(lab.inventory_path)  # faults may rewrite the lab inventory
    with mock.patch.dict(os.environ, lab.env()), Prometheus(inv.metrics.prometheus_url, HttpSettings()) as p, \
            Loki(inv.loki.url, HttpSettings()) as loki:
        judge = bake.BakeJudge.connect(p, inv, loki=loki, kuma=lambda: UptimeKuma.from_inventory(inv, HttpSettings()))
        red, pending = {}, {}
        clients = bake.LiveClients.from_inventory(inv, HttpSettings()) if live else None
        checks = bake.exit_checks(judge, inv, clients) if clients else judge.criteria()
        try:
            for name, check in checks.items():
                try:
                    check()
                except GateFailed as e:
                    red[name] = str(e)
                except Pending as e:
                    pending[name] = str(e)
        finally:
            if clients:
                clients.close()
        return red, pending, judge


def _red_criteria(lab, live: bool = True) -> dict[str, str]:
    red, pending, _ = _judge_all(lab, live)
    assert not pending, f"a complete window left criteria pending: {pending}"
    return red


def test_every_bake_fault_has_its_own_criterion():
    assert set(OWN_CRITERION) == set(OWN), "a bake fault of tests/faults/metrics.toml lacks its criterion here"


def test_the_green_bake_has_no_red_criterion(lab):
    assert _red_criteria(lab) == {}


@pytest.mark.parametrize("fault", [pytest.param(f, marks=on_one_worker_per_fault(f)) for f in sorted(OWN_CRITERION)])
def test_each_bake_fault_turns_exactly_its_own_criterion_red(lab, fault):
    """In-process over every exit criterion (the matrix runs the scenarios themselves)."""
    # a history fault only changes Prometheus: the live checks (Forgejo) are judged in the green test
    with lab.fault(fault):
        red = _red_criteria(lab, live=fault not in bake_history.FAULTS)
    own = OWN_CRITERION[fault]
    owns = set(own) if isinstance(own, tuple) else {own}
    assert set(red) == owns, f"{fault}: red criteria {sorted(red)} (expected only {own!r})\n" + "\n".join(red.values())
    message = red[own[0] if isinstance(own, tuple) else own]
    for day in _event_dates(lab, fault):
        assert day in message, f"the offending day {day} is not in the verdict:\n{message}"
    assert any(w in message for w in ("PromQL", "inventory [bake]", "@sha256:", "Uptime Kuma")), message


def test_bake_window_from_inventory():
    b = config.Bake(start=dt.date(2026, 6, 1), days=14)
    w = bake.BakeWindow.from_inventory(b, now=dt.datetime(2026, 6, 20, tzinfo=dt.UTC).timestamp())
    assert iso(w.start) == "2026-06-01T00:00:00Z" and iso(w.end) == "2026-06-15T00:00:00Z"
    assert w.complete and w.day_of(w.day_start(9) + 3600) == 9
    early = bake.BakeWindow.from_inventory(b, now=dt.datetime(2026, 6, 10, tzinfo=dt.UTC).timestamp())
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

    loki, kuma = lab["loki"], lab["uptime_kuma"]
    loki0, kuma0 = len(loki.requests), len(kuma.refused_events)
    run = gates("phase2 and readonly")
    assert run.results and not run.failed(), run.summary()
    assert loki.requests[loki0:] and not [r for r in loki.requests[loki0:] if r[0] != "GET"], "the bake wrote to Loki"
    assert kuma.refused_events[kuma0:] == [], "the bake emitted a non-read Uptime Kuma event"

    assert _pushgateway_writes(m.pushgateway_url) == push0, "the bake pushed to the Pushgateway"
    assert _prometheus_writes(m.prometheus_url) == prom0, "the bake used a Prometheus write/admin endpoint"
    if forgejo:
        assert forgejo.requests(forgejo0), "the bake never reached the Forgejo stand-in (nothing was judged there)"
        assert not forgejo.writes(forgejo0), f"the bake wrote to Forgejo: {forgejo.writes(forgejo0)}"
    if kube:
        writes = [r for r in kube.requests[kube0:] if r[0].upper() not in ("GET", "HEAD", "OPTIONS")]
        assert not writes, f"the bake wrote to the Kubernetes API: {writes}"


# -- the real environment's shape --------------------------------------------------------------


def test_no_bake_query_reads_a_series_the_real_scrape_config_drops():
    """Every series a criterion reads is kept by the real metric_relabel lists (the sheet's drops are absent)."""
    import re

    from phasegate.lab import scrape_config

    jobs = [j for j in scrape_config.RULES if j != "prometheus-pushgateway"]
    for field, query in dataclasses.asdict(config.MetricQueries()).items():
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", query).group(0)
        if name.startswith(("registry_manifest_integrity_", "ALERTS")):
            continue  # pushed by the probe (Pushgateway: no metric_relabel) / written by the rule evaluator
        assert any(scrape_config.kept(j, name) for j in jobs), f"{field}: {name} is dropped by every scrape job"
    for dropped in ("kube_job_owner", "kube_job_status_succeeded", "kube_job_status_completion_time",
                    "kube_pod_container_status_last_terminated_reason"):
        assert not scrape_config.kept("kubernetes-service-endpoints", dropped)
    assert not scrape_config.kept("kubernetes-nodes-cadvisor", "container_spec_memory_limit_bytes")  # container_spec_.*
    assert scrape_config.kept("kubernetes-nodes", "kubelet_volume_stats_used_bytes")


def test_the_lab_prometheus_holds_no_series_the_real_config_drops_and_the_real_labels(lab, prom):
    names = set(httpx_get_json(f"{lab['metrics'].prometheus_url}/api/v1/label/__name__/values"))
    for dropped in ("kube_job_owner", "kube_job_status_succeeded", "kube_job_status_completion_time",
                    "kube_pod_container_status_last_terminated_reason", "container_spec_memory_limit_bytes",
                    "forgejo_cleanup_dry_run", "probe_success"):
        assert dropped not in names, f"{dropped} is in the lab's Prometheus but not in the real one"
    res = prom.query("registry_manifest_integrity_failures", at=lab["metrics"].prom_window_end())
    assert {tuple(sorted(s.labels)) for s in res.series} == {("__name__", "instance", "job")}
    assert {s.label("job") for s in res.series} == {"forgejo-integrity-probe", "registry-integrity-probe"}
    ksm = prom.query("kube_pod_container_status_restarts_total", at=lab["metrics"].prom_window_end()).series[0]
    assert ksm.label("job") == "kubernetes-service-endpoints" and ksm.label("namespace") == "forgejo"
    # 2-minute scrapes (the bake era's global scrape_interval)
    s = prom.query("container_memory_working_set_bytes[1h]", at=lab["metrics"].prom_window_end()).series[0].samples
    assert {round(b.t - a.t) for a, b in zip(s, s[1:], strict=False)} == {120}


def httpx_get_json(url: str):
    import httpx

    return httpx.get(url, timeout=5).json()["data"]


def test_the_cleanup_jobs_lines_reach_loki_with_alloys_labels(lab, inv):
    from phasegate.loki import Loki

    judge_start = dt.datetime.combine(inv.bake.start, dt.time(0), dt.UTC).timestamp()
    with Loki(inv.loki.url, HttpSettings()) as loki:
        lines = loki.lines('{namespace="forgejo", job="forgejo/cleanup"}', judge_start, judge_start + 86400)
    assert lines and all(set(x.labels) == {"namespace", "pod", "container", "job"} for x in lines)
    assert lines[0].line.startswith("Forgejo cleanup: owner=viktor keep_last=10 dry_run=true")
    assert any(x.line.startswith("Summary: kept=") for x in lines)


def test_the_lab_pushgateway_keeps_no_state_between_runs(lab):
    import httpx

    url = lab["metrics"].pushgateway_url
    flags = httpx.get(f"{url}/api/v1/status", timeout=5).json()["data"]["flags"]
    assert flags["persistence.file"] == ""


def test_each_criterion_leaves_its_chart_data(lab):
    red, _, judge = _judge_all(lab, live=False)
    assert not red
    d = judge.data["forgejo never near OOM"].to_json()
    assert d["threshold"] == {"value": 0.9, "label": "working set at 90% of the memory limit"}
    assert d["window_start"] == judge.window.start and d["window_end"] == judge.window.end and d["now"] > d["window_end"]
    ratio = next(v for k, v in d["series"].items() if k.startswith("working_set/limit"))
    assert len(ratio) > 10000 and all(0 < r < 0.9 for _, r in ratio)
    assert d["offending"] == [] and d["holes"] == []


def test_a_hole_is_named_and_on_the_verdicts_chart_data(lab):
    with lab.fault("bake-memory-hole-48h"):
        red, _, judge = _judge_all(lab, live=False)
    start = lab["metrics"].start_date + dt.timedelta(days=4)
    assert f"no sample from {start.isoformat()}T06:00:00Z to {(start + dt.timedelta(days=2)).isoformat()}T06:02:00Z" \
        in red["forgejo never near OOM"]
    holes = judge.data["forgejo never near OOM"].holes
    assert len(holes) == 1 and holes[0][1] - holes[0][0] >= 48 * 3600


# -- an open window, judged so far -------------------------------------------------------------


@pytest.mark.slow
def test_day_5_of_a_clean_bake_exits_0_every_criterion_passed_or_pending(lab, gates, tmp_path):
    import json

    pushgateway = _pushgateway(tmp_path)
    try:
        run = gates("phase2 and readonly", fault="bake-open-day5", alluredir=tmp_path / "allure",
                    args=["--push-metrics", f"--pushgateway={pushgateway.url}"])
        assert run.returncode == 0, run.summary()
        outcomes = {r["scenario"]: r["outcome"] for r in run.results}
        assert set(outcomes.values()) <= {"passed", "pending"}, outcomes
        assert outcomes["Zero integrity failures and zero RegistryManifestIntegrityFailure alerts for Forgejo"] == "pending"
        assert outcomes["Bake exit verdict: every criterion green and 14 days since the last dual-push"] == "pending"
        assert "day 5 of 14" in run.by_scenario()["The retention CronJob succeeded at least 14 times"]["message"]
        assert " pending" in run.stdout.strip().splitlines()[-1]
        # the report: pending is its own status, with its message
        results = [json.loads(p.read_text()) for p in (tmp_path / "allure").glob("*-result.json")]
        pending = [r for r in results if r["status"] == "unknown"]
        assert pending and all(r["statusDetails"]["message"].startswith("PENDING: ") for r in pending)
        # each bake criterion carries its chart data for the report
        data = [a for r in results for st in r.get("steps", []) for a in st.get("attachments", [])
                if a["name"] == "criterion-data"]
        assert len(data) >= 8
        doc = json.loads(((tmp_path / "allure") / data[0]["source"]).read_text())
        assert {"criterion", "series", "threshold", "window_start", "window_end", "now", "offending",
                "holes"} <= set(doc)
        # the pushed metrics: a state per gate
        import httpx

        groups = httpx.get(f"{pushgateway.url}/api/v1/metrics", timeout=5).json()["data"]
        states = {g["labels"]["gate"]: next(m["labels"]["state"] for m in g["phasegate_gate_state"]["metrics"]
                                            if m["value"] == "1")
                  for g in groups if "phasegate_gate_state" in g}
        assert states["The Forgejo integrity probe was never stale for more than an hour"] == "pending"
        assert set(states.values()) <= {"passed", "pending"}
    finally:
        pushgateway.stop()


@pytest.mark.slow
def test_day_5_with_an_integrity_failure_on_day_3_exits_1_and_names_it(lab, gates):
    run = gates("phase2 and readonly", fault="bake-open-day5-integrity-failure-day3")
    assert run.returncode == 1, run.summary()
    day3 = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)).isoformat()
    red = run.by_scenario()["Zero integrity failures and zero RegistryManifestIntegrityFailure alerts for Forgejo"]
    assert red["outcome"] == "failed" and f"{day3}T09:" in red["message"], red["message"]
    exit_verdict = "Bake exit verdict: every criterion green and 14 days since the last dual-push"
    assert set(run.failed()) == {"Zero integrity failures and zero RegistryManifestIntegrityFailure alerts for Forgejo",
                                 exit_verdict}
    assert run.pending(), "the other criteria stay pending"
    # the exit verdict takes the criterion's verdict from its own scenario of the run; alone, it judges it now
    assert "[zero integrity failures and alerts] red (its own scenario at " in run.message(exit_verdict)
    with lab.fault("bake-open-day5-integrity-failure-day3"):
        alone = gates(scenario=exit_verdict)
    assert alone.failed() == [exit_verdict], alone.summary()
    msg = alone.message(exit_verdict)
    assert "[zero integrity failures and alerts] red (judged now)" in msg and f"{day3}T09:" in msg, msg


def _pushgateway(tmp_path):
    import httpx

    from phasegate.lab.procs import Proc, free_port, wait_until

    port = free_port()
    proc = Proc("pushgateway", ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}",
                                "--persistence.file="], tmp_path / "pushgateway.log").start()
    proc.url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{proc.url}/-/ready", timeout=1).status_code == 200, timeout=20,
               what="pushgateway", proc=proc)
    return proc


def test_an_open_window_is_judged_so_far(lab):
    with lab.fault("bake-open-day5"):
        red, pending, judge = _judge_all(lab, live=False)
    assert red == {}
    assert set(pending) == set(judge.criteria()), "every history-judged criterion is pending on day 5"
    # days 0-4 each had their 04:00 run; today's (day 5) counts once it has finished and been scraped
    # (bake_history: retention_hour 4, 2 minutes; the open history is rendered up to a minute ago)
    since_midnight = time.time() % 86400
    runs = {5} if since_midnight < 4 * 3600 else {6} if since_midnight > 4 * 3600 + 600 else {5, 6}
    assert any(f"still needed: {14 - n} more successful run(s) ({n} of 14 so far)" in pending["retention succeeded enough"]
               for n in runs), pending["retention succeeded enough"]
    # the Sundays of the window from today (day 5) on: the open window starts five days before today, any weekday
    start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=5)
    sundays = [d for d in range(5, 14) if (start + dt.timedelta(days=d)).weekday() == 6]
    ahead = ", ".join(f"day {d}" for d in sundays)
    assert f"still needed: a deleting retention run on a Sunday ({ahead})" in pending["Sunday GC cycle"]
    assert "the flip to DRY_RUN=false on day 7" in pending["DRY_RUN flipped"]
    assert all("day 5 of 14" in m for m in pending.values())


# -- the real May-June 2026 history --------------------------------------------------------------

# criterion -> the event times (UTC) its verdict must name (infra-facts §12)
REPLAY_RED = {
    # no bake at all: every project workload ran its Forgejo image from Phase 3 (05-07) until ghcr (06-12/13)
    "no Forgejo image before the cutover": ["first scraped 2026-06-06T00:00:40Z", "11 workload(s)"],
    "zero integrity failures and alerts": ["2026-06-10T04:", "firing from 2026-06-10T05:30"],  # orphaned kms-website children
    "forgejo never near OOM": ["2026-06-09T11:40", "2026-06-13T14:02"],  # push-storm OOMKills at 1Gi / 3Gi
    "PVC headroom": ["2026-06-09T12:00:00Z"],  # the PVC at its 50Gi autoresize cap
    "DRY_RUN flipped": ["2026-06-10T04:00:03Z", "2026-06-13T04:00:03Z"],  # first deleting run (day 4); stuck dry
    "Sunday GC cycle": ["2026-06-14"],  # no deleting run on either Sunday: retention stuck in DRY_RUN
    "healthz green over the window": ["2026-06-13T14:10"],  # 6Gi rejected by the quota: 0 pods ~6 min
}


def test_the_replay_of_may_june_2026_turns_exactly_the_broken_criteria_red_with_their_times(lab):
    with lab.fault("replay"):
        red, pending, _ = _judge_all(lab, live=False)
    assert not pending
    assert set(red) == set(REPLAY_RED), f"red: {sorted(red)}"
    for criterion, times in REPLAY_RED.items():
        for t in times:
            assert t in red[criterion], f"{criterion}: {t} not named:\n{red[criterion]}"


def test_the_weekly_full_verify_is_pending_on_other_days_naming_the_next_run():
    inv = config.load(REPO / "phasegate.toml")
    saturday = dt.datetime(2026, 6, 13, 7, 0, tzinfo=dt.UTC).timestamp()
    with pytest.raises(Pending, match="runs on Sundays; next on 2026-06-14"):
        bake.full_verify_weekly(inv, registry=object(), now=saturday)  # no request on other days: any use would raise


def test_holes_are_found_anywhere_and_at_the_edges():
    assert bake.holes_in([0, 120, 240], 0, 240, 600) == []
    assert bake.holes_in([0, 120, 48 * 3600, 48 * 3600 + 120], 0, 48 * 3600 + 120, 600) == [(120, 48 * 3600)]
    assert bake.holes_in([3600], 0, 7200, 600) == [(0, 3600), (3600, 7200)]
    assert bake.holes_in([], 0, 7200, 600) == [(0, 7200)]


def test_the_dry_run_locals_history_is_read_from_the_infra_repositorys_git_log(tmp_path):
    """The cross-check's source: every change of the local over the checkout's history (the real sequence)."""
    import subprocess

    from phasegate import infra_repo

    repo = tmp_path / "infra"
    (repo / "stacks" / "forgejo").mkdir(parents=True)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@lab.test", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@lab.test", "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    for when, value in (("2026-05-07T15:53:08Z", "true"), ("2026-06-09T14:23:33Z", "false"),
                        ("2026-06-10T09:22:47Z", "true")):
        (repo / "stacks/forgejo/cleanup.tf").write_text(f"locals {{\n  forgejo_cleanup_dry_run = {value}\n}}\n")
        subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
        subprocess.run(["git", "-C", str(repo), "commit", "-qm", value], check=True,
                       env={**env, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when})
    history = infra_repo.declared_history(repo, "stacks/forgejo/cleanup.tf", "forgejo_cleanup_dry_run")
    assert [(iso(d.t), d.value) for d in history] == [
        ("2026-05-07T15:53:08Z", "true"), ("2026-06-09T14:23:33Z", "false"), ("2026-06-10T09:22:47Z", "true")]
    assert infra_repo.declared_history(tmp_path, "stacks/forgejo/cleanup.tf", "forgejo_cleanup_dry_run") == []
