@phase0 @static @readonly
Feature: Phase 0 in the infra repository
  Phase 0 changes the infra repository: the Forgejo PVC grows by itself up to a
  cap, the new integrity probe runs on a schedule, and containerd on every node
  (new ones through cloud-init, existing ones through the mirror script) gets a
  hosts.toml for Forgejo. These scenarios read a checkout of it.

  Background:
    Given the infra repository checkout

  Scenario: The Forgejo PVC autoresizes up to a 50Gi cap
    Then the Forgejo PVC in the infra repository autoresizes up to "50Gi"

  Scenario: The Forgejo integrity probe CronJob runs every 15 minutes
    Then the monitoring stack's CronJob "forgejo-integrity-probe" runs on schedule "*/15 * * * *"

  Scenario: New nodes' cloud-init and the mirror script write Forgejo's hosts.toml
    Then the cloud-init template and the mirror script write the Forgejo hosts.toml with the inventory's mirror
