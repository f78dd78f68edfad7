@phase4 @static @readonly
Feature: Phase 4 decommission in the infra repository
  After registry-private is stopped, nothing in the infra repository may bring
  it back: new nodes get no hosts.toml for it, the cluster pull secret names
  only Forgejo, and the old integrity probe is gone.

  Background:
    Given the infra repository checkout

  Scenario: The cloud-init template writes no hosts.toml for registry-private
    Then the cloud-init template writes no hosts.toml entry for registry-private

  Scenario: The registry-credentials Terraform has only the Forgejo auths entry
    Then the registry-credentials Terraform has only the Forgejo auths entry

  Scenario: The old registry-integrity-probe CronJob is gone from the monitoring stack
    Then the monitoring stack no longer defines the old integrity probe CronJob

  Scenario: The registry VM's compose template no longer starts registry-private
    Then the registry VM's compose template in the infra repository runs no registry-private service
