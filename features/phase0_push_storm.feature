@phase0 @registry @load
Feature: Phase 0 - Forgejo takes a CI push storm
  On 2026-06-09 CI pipelines finishing together OOMKilled Forgejo (its memory went
  1Gi -> 3Gi -> 4Gi). Before images move, the suite pushes the way CI pushes: several
  concurrent pushes, as the pusher, of multi-layer images (sizes from the inventory's
  [push_storm]), every layer a chunked upload whose requests stay below the ingress's
  body-size limit. Every push must succeed, and Prometheus must show Forgejo's working
  set below its memory limit and no restart during the storm. Everything pushed is
  deleted again, also when the storm fails. Opt-in: it puts real load on production.

  @writes
  Scenario: Forgejo takes concurrent chunked pushes without nearing its memory limit or restarting
    Given the push storm is enabled in the inventory
    And no push-storm package is left in Forgejo
    When the pusher pushes the inventory's push storm
    Then every push of the storm succeeded
    And Prometheus shows Forgejo's working set below 90% of its memory limit during the storm within 120 seconds
    And Prometheus shows no restart of Forgejo during the storm
