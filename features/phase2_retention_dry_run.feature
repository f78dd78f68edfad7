@phase2 @bake @registry
Feature: Phase 2 - day 7 of the bake: the retention job's own dry run before DRY_RUN goes false
  The plan flips the retention CronJob's DRY_RUN to false on day 7 of the bake. Before
  that, its own Job runs once more with DRY_RUN forced true (a Job created from the
  CronJob: a write on the cluster, read-only on the registry), and the "would DELETE"
  lines the real script prints are judged against every version it keeps: their
  manifests and index children must all survive. This is the 2026-06-10 incident
  (a kept index's children deleted as "old versions"), caught before it happens.

  @writes
  Scenario: Day 7: the retention job's own dry run deletes nothing a kept image needs
    When the retention CronJob's own Job runs once with DRY_RUN=true within 120 seconds
    Then no version the retention job keeps needs a manifest it would delete
