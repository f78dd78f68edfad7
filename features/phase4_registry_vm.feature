@phase4 @readonly @host
Feature: registry-private is decommissioned on the registry VM
  registry-private's container is stopped (its compose service commented out), the
  pull-through caches beside it keep running, its endpoint no longer serves a registry,
  and one week later its blob storage is deleted. Containers are read through the VM's
  Docker API over SSH.

  Scenario: registry-private no longer runs on the registry VM
    Given the registry VM's Docker engine, reached over SSH
    Then the old registry's container is not running
    And the VM's compose file no longer starts the old registry

  Scenario: The pull-through caches still run on the registry VM
    Given the registry VM's Docker engine, reached over SSH
    Then every pull-through cache container is running

  Scenario: The old registry endpoints no longer serve a registry
    Then no old registry endpoint answers /v2/ as a registry

  Scenario: registry-private's blob storage is freed a week after the decommission
    Then the registry VM holds no blob storage of the old registry once the purge is due, 7 days after the decommission
