@phase0 @cluster
Feature: Phase 0 - the cluster is ready to pull from Forgejo's registry
  Forgejo runs with at least the memory, volume and request-body size the registry needs;
  every new namespace receives the cluster-wide pull secret with exactly the
  registries of the migration (keys matched as kubelet's keyring matches them),
  each entry really authenticating; and every node pulls a tag it has never seen
  from Forgejo and runs it (the smoke program for linux/amd64 and arm64: a
  command-less image cannot run on a real node) through the in-cluster mirror,
  probed as containerd talks to it from hosts.toml (the 2026-06-10 hairpin stayed
  hidden while images were cached: a fresh tag on every node cannot hide it).
  Namespaces and pods these gates create carry the suite's prefix and label and
  are removed also when a gate fails.

  @readonly
  Scenario: Forgejo runs with the planned memory and the packages settings
    Given the Forgejo Deployment
    Then its Forgejo container requests and is limited to at least "1Gi" of memory
    And its Forgejo container sets the inventory's packages environment variables

  @readonly
  Scenario: Forgejo's volume holds at least the planned size
    Given the Forgejo PVC
    Then the PVC requests and has at least "15Gi" of storage

  @readonly
  Scenario: The Forgejo ingress buffers request bodies up to the planned size
    Given the Forgejo ingress
    Then the ingress carries a Traefik buffering middleware allowing request bodies of "5g"

  @writes
  Scenario: A fresh namespace receives a pull secret for Forgejo and registry-private that authenticates
    Given a fresh namespace
    When Kyverno has cloned the pull secret into it
    Then the pull secret holds exactly the auths keys of Forgejo and registry-private
    And every auths entry of the pull secret authenticates against its registry

  @writes
  Scenario: Every node pulls a fresh tag from Forgejo through the pull secret
    Given a fresh tag pushed to Forgejo
    And a fresh namespace
    When Kyverno has cloned the pull secret into it
    And a pod on every node runs the fresh tag through the pull secret
    Then every pod pulled the fresh tag from Forgejo

  @writes
  Scenario: Every node sends Forgejo pulls through the in-cluster mirror
    Given a fresh namespace
    When every node's hosts.toml for the Forgejo host is read
    Then every node has a hosts.toml for the Forgejo host
    And every node's Forgejo mirror is an inventory mirror that answers as the registry
