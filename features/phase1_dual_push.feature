@phase1 @registry @readonly
Feature: Phase 1 dual-push: every project's newest build is in both registries
  The newest built commit of each project comes from its Forgejo repository
  (commits whose Woodpecker status is success); its image tag comes from the
  inventory's tag template (the 8-hex short SHA). Both registry-private and
  Forgejo must hold that tag with the same manifest digest, and both copies
  must pass the integrity check. The bake clock starts when the last project
  started dual-pushing.

  Background:
    Given the Forgejo repository API as the repository reader

  @project
  Scenario Outline: <project> pushes its newest build to both registries
    Then the newest build of "<project>" is in both registries with one digest and passes the integrity check

    Examples:
      | project              |
      | payslip-ingest       |
      | job-hunter           |
      | claude-agent-service |
      | fire-planner         |
      | wealthfolio-sync     |
      | hmrc-sync            |
      | freedify             |
      | beads-server         |
      | claude-memory-mcp    |
      | infra-ci             |

  Scenario: Every project dual-pushes and the bake clock starts at the last one
    Then every dual-push project of the inventory pushes to both registries
    And the bake clock starts when the last project started dual-pushing
