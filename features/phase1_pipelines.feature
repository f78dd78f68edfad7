@phase1 @readonly
Feature: Phase 1 pipeline configs push to both registries with secrets from Woodpecker
  Each project's Woodpecker file, read through Forgejo's raw file endpoint, has
  a build-and-push step (woodpeckerci/plugin-docker-buildx) whose repo list
  names both registries and whose logins take username and password with
  from_secret for both. A credential written in clear fails with file and line.

  Background:
    Given the Forgejo repository API as the repository reader

  @project
  Scenario Outline: The <project> pipeline pushes to both registries with secret logins
    Then the pipeline of "<project>" pushes to both registries with from_secret logins

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
