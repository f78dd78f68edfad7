@phase2 @bake @readonly @metrics
Feature: Phase 2 bake exit criteria
  The bake lasts at least 14 days after the last project went dual-push. Every
  criterion is judged over the window computed from the inventory's bake start
  date, from what the real environment keeps: Prometheus' series (only those the
  real scrape config keeps), the retention job's own lines in Loki, and the
  healthz monitor's heartbeats in Uptime Kuma. A signal with no data, or with a
  hole longer than the inventory's tolerance, is a red verdict ("no data"), never
  a green one. While the window is open a criterion is judged so far: a violation
  is red at once; a criterion with none is pending (day N of 14, what is still
  needed), and the daily job stays green while nothing is wrong. The exit
  verdict comes last: it takes each criterion's verdict from that criterion's own
  scenario in this run (its evidence says which and when) and judges now only
  the ones no scenario of the run judged.

  Background:
    Given the bake window from the inventory

  Scenario: No image= line changed: no project container ran an image from Forgejo before the cutover
    Then no container of a project workload ran an image from Forgejo during the bake, each Deployment seen by cAdvisor with no gap over 10 minutes

  Scenario: Zero integrity failures and zero RegistryManifestIntegrityFailure alerts for Forgejo
    Then the bake criterion "zero integrity failures and alerts" holds

  Scenario: The Forgejo integrity probe was never stale for more than an hour
    Then the bake criterion "probe never stale" holds

  Scenario: Forgejo was never near OOM
    Then the bake criterion "forgejo never near OOM" holds

  Scenario: Forgejo's PVC kept its headroom below the autoresize cap
    Then the bake criterion "PVC headroom" holds

  Scenario: The retention CronJob succeeded at least 14 times
    Then the bake criterion "retention succeeded enough" holds

  Scenario: At least one full Sunday GC cycle elapsed inside the window
    Then the bake criterion "Sunday GC cycle" holds

  Scenario: DRY_RUN flipped to false on day 7 and deleting runs were observed afterwards
    Then the bake criterion "DRY_RUN flipped" holds

  @uptime_kuma
  Scenario: The /api/healthz monitor was green across the window and healthz is green now
    Then the bake criterion "healthz green over the window" holds
    And Forgejo's /api/healthz answers green now

  Scenario: The retention keep-set never deletes a manifest that a kept image needs
    Then the retention job's keep-set deletes no manifest that a kept version needs

  Scenario: Daily smoke check: a recent image pulls from Forgejo as cluster-puller and passes the integrity check
    Then the newest tagged image in Forgejo pulls as the puller with every manifest and blob intact

  Scenario: Every byte, weekly: every Forgejo image passes the integrity check in verify mode once a week
    Then once a week, every Forgejo image passes the integrity check in verify mode

  Scenario: The bake clock's last dual-push date is the one Phase 1 observed
    Then the inventory's last dual-push date is not before the last project started dual-pushing

  @uptime_kuma
  Scenario: Bake exit verdict: every criterion green and 14 days since the last dual-push
    Then every bake exit criterion holds
