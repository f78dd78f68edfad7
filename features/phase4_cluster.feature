@phase4 @cluster
Feature: Phase 4 - the cluster no longer depends on registry-private
  After the decommission the pull secret names Forgejo only, no node's containerd
  registry configuration names registry-private (its config.toml and imports, every
  hosts directory containerd reads), and every node still pulls a fresh tag from Forgejo.

  @writes
  Scenario: A fresh namespace receives a pull secret for Forgejo only
    Given a fresh namespace
    When Kyverno has cloned the pull secret into it
    Then the pull secret holds exactly the auths keys of Forgejo
    And every auths entry of the pull secret authenticates against its registry

  @writes
  Scenario: Every node still pulls a fresh tag from Forgejo after the decommission
    Given a fresh tag pushed to Forgejo
    And a fresh namespace
    When Kyverno has cloned the pull secret into it
    And a pod on every node runs the fresh tag through the pull secret
    Then every pod pulled the fresh tag from Forgejo

  @writes
  Scenario: No node's containerd registry configuration names registry-private
    Given a fresh namespace
    When every node's containerd registry configuration is read
    Then no node's containerd registry configuration names registry-private
