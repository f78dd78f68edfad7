"""Steps about Prometheus, the Pushgateway and the Phase 2 bake (thin: phasegate.bake does the judging)."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then, when

from phasegate import bake, report
from phasegate.http import HttpSettings
from phasegate.prometheus import Prometheus, Pushgateway
from phasegate.verdict import check


@pytest.fixture(scope="session")
def prometheus(inventory, http_settings: HttpSettings):
    with Prometheus(inventory.metrics.prometheus_url, http_settings, ca_bundle=inventory.metrics.ca_bundle) as p:
        yield p


@pytest.fixture(scope="session")
def pushgateway(inventory, http_settings: HttpSettings):
    p = Pushgateway(inventory.metrics.pushgateway_url, http_settings, ca_bundle=inventory.metrics.ca_bundle)
    yield p
    p.close()


@pytest.fixture(scope="session")
def loki(inventory, http_settings: HttpSettings):
    from phasegate.loki import Loki

    with Loki(inventory.loki.url, http_settings, ca_bundle=inventory.loki.ca_bundle) as client:
        yield client


@pytest.fixture(scope="session")
def bake_live(inventory, http_settings):
    """The clients of the live exit criteria (phasegate.bake.LiveClients)."""
    live = bake.LiveClients.from_inventory(inventory, http_settings)
    yield live
    live.close()


@given("the bake window from the inventory", target_fixture="bake_judge")
def bake_window(prometheus, loki, inventory, http_settings):
    from phasegate.uptime_kuma import UptimeKuma

    return bake.BakeJudge.connect(prometheus, inventory, loki=loki,
                                  kuma=lambda: UptimeKuma.from_inventory(inventory, http_settings))


def _judged(bake_judge: bake.BakeJudge, criterion: str, check) -> None:
    try:
        check()
    finally:  # the chart data of what was judged, for the report (phasegate.bake.CriterionData)
        if criterion in bake_judge.data:
            report.attach_json("criterion-data", bake_judge.data[criterion].to_json())


@then(parsers.parse('the bake criterion "{criterion}" holds'))
def bake_criterion_holds(bake_judge: bake.BakeJudge, criterion: str):
    checks = bake_judge.criteria()
    if criterion not in checks:
        raise KeyError(f"unknown bake criterion {criterion!r}; known: {', '.join(checks)}")
    _judged(bake_judge, criterion, checks[criterion])


@then(parsers.parse("no container of a project workload ran an image from Forgejo during the bake, "
                    "each Deployment seen by cAdvisor with no gap over {minutes:d} minutes"))
def no_forgejo_image_in_bake(bake_judge: bake.BakeJudge, minutes: int):
    _judged(bake_judge, bake.NO_FORGEJO_IMAGE, lambda: bake_judge.no_forgejo_images(max_gap_minutes=minutes))


@then("every bake exit criterion holds")
def every_bake_criterion_holds(bake_judge: bake.BakeJudge, inventory, bake_live):
    bake.exit_verdict(bake.exit_checks(bake_judge, inventory, bake_live))


@then("Forgejo's /api/healthz answers green now")
def healthz_green_now(inventory, bake_live):
    bake.healthz_now(inventory, bake_live.public)


@then("Prometheus' rules API lists every registry integrity alert, instance-aware")
def alerts_instance_aware(prometheus: Prometheus, inventory):
    from phasegate import promtool
    from phasegate.report import attach_text

    m = inventory.metrics
    q = m.queries
    result = promtool.test_instance_awareness(
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


@then("the retention job's keep-set deletes no manifest that a kept version needs")
def retention_keeps_children(inventory, bake_live):
    bake.retention_safe(inventory, bake_live.packages, bake_live.registry)


@then("once a week, every Forgejo image passes the integrity check in verify mode")
def full_verify_weekly(prometheus, inventory, bake_live):
    bake.full_verify_weekly(inventory, bake_live.registry, now=prometheus.now())


@then("the newest tagged image in Forgejo pulls as the puller with every manifest and blob intact")
def smoke_pull(inventory, bake_live):
    bake.smoke_check(inventory, bake_live.packages, bake_live.registry)


# -- Phase 0: the probe runs once and pushes; the retention CronJob ---------------------


@when("a Job created from the integrity probe CronJob runs to completion", target_fixture="probe_run")
def probe_job_runs(kube, inventory, request):
    from phasegate import probe

    m = inventory.metrics
    # cleanup registered before the Job exists: every Job of this CronJob carrying the suite's label
    request.addfinalizer(lambda: _as_cleanup(request, lambda: probe.remove_suite_jobs(kube, m)))
    probe.remove_suite_jobs(kube, m)  # a crashed earlier run's leftovers
    return probe.run_once(kube, m, timeout=m.probe_job_timeout)


def _as_cleanup(request, fn):
    from phasegate.http import GUARD

    with GUARD.writes_allowed(f"cleanup ({request.node.nodeid})"):
        fn()


@then("the Pushgateway holds a fresh probe run for the Forgejo instance with the catalog readable and zero failures")
def pushgateway_fresh(pushgateway, inventory, probe_run):
    from phasegate import probe

    probe.check_pushed(pushgateway, inventory.metrics, probe_run)


@then("the retention CronJob has the inventory's schedule and DRY_RUN for Phase 0")
def retention_cronjob(kube, inventory):
    from phasegate import probe

    probe.check_retention_cronjob(kube, inventory.retention)
