@phase0 @registry
Feature: Phase 0 - Forgejo's registry: each account does exactly its job
  Forgejo's container packages belong to their owner: a user's packages are written by
  that user only (services/context/package.go). So the pusher (the owner's write:package
  PAT) pushes, the puller (cluster-puller's read:package PAT) pulls every byte and is
  refused a push, and the cleaner (the retention job's PAT) deletes through the package
  API -- a refused DELETE is red here, not hidden by a dry run for a month. And the
  retention CronJob's own Job runs once with DRY_RUN forced true: the versions its real
  script would delete must not include a manifest that a version it keeps needs. The
  smoke package (forgejo.owner / smoke_image : smoke_tag of the inventory) and that Job
  are the only things these gates create; every writing scenario removes them again (the
  package as the owner), also when it fails, and first sweeps what a crashed run left.

  @readonly
  Scenario: Registry login as the pusher succeeds
    When the pusher logs in to the Forgejo registry
    Then the registry challenged for a Bearer token from its own token realm
    And the token realm gave the pusher a token
    And the registry answered the authenticated ping with 200

  @writes
  Scenario: The smoke image pushed by the pusher is pullable by the puller
    Given no smoke package is left in Forgejo
    When the pusher pushes the smoke image
    Then the puller can pull every manifest and blob of the smoke image

  @writes
  Scenario: The puller can pull but is refused a push
    Given no smoke package is left in Forgejo
    And the pusher pushes the smoke image
    Then the puller can pull every manifest and blob of the smoke image
    And the puller is refused a push of the smoke image

  @writes
  Scenario: The cleaner deletes the smoke package through the package API
    Given no smoke package is left in Forgejo
    And the pusher pushes the smoke image
    When the cleaner deletes the smoke tag through the package API
    Then the package API answered 204
    And the smoke tag is gone from the package API
    And the smoke tag is gone from the registry

  @writes
  Scenario: The retention job's own dry run deletes nothing a kept image needs
    When the retention CronJob's own Job runs once with DRY_RUN=true within 120 seconds
    Then no version the retention job keeps needs a manifest it would delete
