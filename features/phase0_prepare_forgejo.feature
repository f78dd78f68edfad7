@phase0 @registry
Feature: Phase 0 - Forgejo's registry takes pushes and pulls with the right credentials
  Before any image moves, Forgejo's built-in OCI registry must accept ci-pusher's
  write:package PAT, serve every byte of what was pushed to cluster-puller's
  read:package PAT and refuse that PAT a push, and the package API must delete a
  package for good. The smoke package (forgejo.owner / smoke_image : smoke_tag of the
  inventory) is the only thing these gates create; every writing scenario removes
  it again, also when it fails, and first sweeps what a crashed run left behind.

  @readonly
  Scenario: Registry login as ci-pusher succeeds
    When the pusher logs in to the Forgejo registry
    Then the registry challenged for a Bearer token from its own token realm
    And the token realm gave the pusher a token
    And the registry answered the authenticated ping with 200

  @writes
  Scenario: The smoke image pushed by ci-pusher is pullable by cluster-puller
    Given no smoke package is left in Forgejo
    When the pusher pushes the smoke image
    Then the puller can pull every manifest and blob of the smoke image

  @writes
  Scenario: cluster-puller can pull but is refused a push
    Given no smoke package is left in Forgejo
    And the pusher pushes the smoke image
    Then the puller can pull every manifest and blob of the smoke image
    And the puller is refused a push of the smoke image

  @writes
  Scenario: The smoke package is deleted through the package API
    Given no smoke package is left in Forgejo
    And the pusher pushes the smoke image
    When the cleaner deletes the smoke tag through the package API
    Then the package API answered 204
    And the smoke tag is gone from the package API
    And the smoke tag is gone from the registry
