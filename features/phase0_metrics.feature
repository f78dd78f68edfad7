@phase0 @metrics
Feature: Phase 0 metrics: the Forgejo integrity probe, instance-aware alerts and the retention CronJob
  Phase 0 is done when the Forgejo integrity probe completes once and pushes its
  metrics, the registry alerts cover both registries, and the retention CronJob
  starts in dry-run mode.

  @readonly
  Scenario: The registry integrity alerts are instance-aware
    Then Prometheus' rules API lists every registry integrity alert, instance-aware

  @writes
  Scenario: The Forgejo integrity probe completes once and pushes its metrics
    When a Job created from the integrity probe CronJob runs to completion
    Then the Pushgateway holds a fresh probe run for the Forgejo instance with the catalog readable and zero failures

  @readonly
  Scenario: The retention CronJob exists with schedule 0 4 * * * and DRY_RUN=true
    Then the retention CronJob has schedule "0 4 * * *" and DRY_RUN "true" for Phase 0
