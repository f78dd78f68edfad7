"""Steps about Prometheus, the Pushgateway and the Phase 2 bake (thin: phasegate.bake, probe, promtool judge)."""

from __future__ import annotations

import pytest
from pytest_bdd import given, parsers, then, when

from phasegate import bake, probe, promtool
from steps.common import client

bake_live = client("bake_live", bake.LiveClients.from_inventory,
                   doc="The clients of the live exit criteria (phasegate.bake.LiveClients).")


@pytest.fixture(scope="session")
def bake_verdicts():
    """This run's verdict of each bake criterion its own scenario judged: the exit verdict reads them."""
    return bake.CriterionVerdicts()


@given("the bake window from the inventory", target_fixture="bake_judge")
def bake_window(prometheus, loki, inventory, http_settings):
    from phasegate.uptime_kuma import UptimeKuma

    return bake.BakeJudge.connect(prometheus, inventory, loki=loki,
                                  kuma=lambda: UptimeKuma.from_inventory(inventory, http_settings))


@then(parsers.parse('the bake criterion "{criterion}" holds'))
def bake_criterion_holds(bake_judge: bake.BakeJudge, criterion: str, bake_verdicts):
    bake.judge_criterion(bake_judge, criterion, verdicts=bake_verdicts)


@then(parsers.parse("no container of a project workload ran an image from Forgejo during the bake, "
                    "each Deployment seen by cAdvisor with no gap over {minutes:d} minutes"))
def no_forgejo_image_in_bake(bake_judge: bake.BakeJudge, minutes: int, bake_verdicts):
    bake.judge_criterion(bake_judge, bake.NO_FORGEJO_IMAGE, lambda: bake_judge.no_forgejo_images(max_gap_minutes=minutes),
                         bake_verdicts)


@then("every bake exit criterion holds")
def every_bake_criterion_holds(bake_judge: bake.BakeJudge, inventory, bake_live, bake_verdicts):
    bake.exit_verdict(bake.exit_checks(bake_judge, inventory, bake_live), bake_verdicts, bake_judge.data)


@then("Forgejo's /api/healthz answers green now")
def healthz_green_now(inventory, bake_live, bake_verdicts):
    bake_verdicts.judge(bake.HEALTHZ_NOW, lambda: bake.healthz_now(inventory, bake_live.public))


@then("Prometheus' rules API lists every registry integrity alert, instance-aware")
def alerts_instance_aware(prometheus, inventory):
    promtool.gate_instance_awareness(prometheus, inventory.metrics)


@then("the retention job's keep-set deletes no manifest that a kept version needs")
def retention_keeps_children(inventory, bake_live, bake_verdicts):
    bake_verdicts.judge(bake.KEEP_SET_SAFE, lambda: bake.retention_safe(inventory, bake_live.packages, bake_live.registry))


@then("once a week, every Forgejo image passes the integrity check in verify mode")
def full_verify_weekly(prometheus, inventory, bake_live):
    bake.full_verify_weekly(inventory, bake_live.registry, now=prometheus.now())


@then("the newest tagged image in Forgejo pulls as the puller with every manifest and blob intact")
def smoke_pull(inventory, bake_live, bake_verdicts):
    bake_verdicts.judge(bake.DAILY_SMOKE, lambda: bake.smoke_check(inventory, bake_live.packages, bake_live.registry))


# -- Phase 0: the probe runs once and pushes; the retention CronJob ---------------------


@when("a Job created from the integrity probe CronJob runs to completion", target_fixture="probe_run")
def probe_job_runs(kube, inventory, teardown):
    return probe.run_clean(kube, inventory.metrics, teardown)


@then("the Pushgateway holds a fresh probe run for the Forgejo instance with the catalog readable and zero failures")
def pushgateway_fresh(pushgateway, inventory, probe_run):
    probe.check_pushed(pushgateway, inventory.metrics, probe_run)


@then(parsers.parse('the retention CronJob has schedule "{schedule}" and DRY_RUN "{dry_run}" for Phase 0'))
def retention_cronjob(kube, inventory, schedule, dry_run):
    probe.check_retention_cronjob(kube, inventory.retention, schedule=inventory.said("retention.schedule", schedule),
                                  dry_run=inventory.said("retention.phase0_dry_run", dry_run))
