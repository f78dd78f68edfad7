@phase0 @metrics
Feature: Phase 0 metrics: the Forgejo integrity probe, instance-aware alerts and the retention CronJob
  Phase 0 is done when the Forgejo integrity probe completes once and pushes its
  metrics, the registry alerts cover both registries, and the retention CronJob
  starts in dry-run mode.

  @readonly
  Scenario: The registry integrity alerts are instance-aware
    Then Prometheus' rules API lists every registry integrity alert, instance-aware
