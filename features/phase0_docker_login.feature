@phase0 @readonly @registry
Feature: docker login to Forgejo through a Docker engine
  The plan's first smoke test is `docker login forgejo.viktorbarzin.me`. Through the
  docker SDK, a Docker engine (the inventory's [docker_api]) logs in as the pusher
  (viktor: ci-pusher cannot write viktor/*, see docs/inventory.md). The
  engine only authenticates (GET /v2/ and the token realm): nothing is created.

  Scenario: docker login as the pusher through the Docker API
    Given the Docker API of the inventory
    When the engine logs in to the Forgejo registry as the pusher
    Then the engine accepts the login
