@phase3 @static @readonly
Feature: Phase 3 cutover in the infra repository
  The cutover rows of the plan change files of the infra repository. These
  scenarios read a checkout of it (inventory infra_repo.path). Terraform image
  values are resolved through locals, variable defaults, for_each maps and
  dynamic blocks with a real HCL parser, never grepped from `image =` lines.

  Background:
    Given the infra repository checkout

  @project
  Scenario Outline: The <project> stack resolves its images to Forgejo
    Then the cutover stack of "<project>" resolves its images to the Forgejo registry

    Examples:
      | project              |
      | payslip-ingest       |
      | job-hunter           |
      | claude-agent-service |
      | fire-planner         |
      | wealthfolio-sync     |
      | freedify             |
      | chrome-service       |
      | beads-server         |

  @project
  Scenario Outline: The infra pipelines run the infra-ci image from Forgejo
    Then the infra pipelines use the infra-ci image from the Forgejo registry

    Examples:
      | project  |
      | infra-ci |

  @project
  Scenario Outline: The monorepo CLAUDE.md installs claude-memory-mcp from Forgejo
    Then the monorepo CLAUDE.md installs claude-memory-mcp from Forgejo

    Examples:
      | project           |
      | claude-memory-mcp |
