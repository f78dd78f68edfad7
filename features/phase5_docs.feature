@phase5 @static @readonly
Feature: Phase 5 documentation describes Forgejo as the registry
  Each document of the plan's Phase 5 table exists (a replaced one is gone or
  carries a superseded banner), says what the table says it must now say (the
  inventory's must_mention, in its section: ci-cd.md's Image Registry section
  names Forgejo, monitoring.md the new probe target; a new runbook holds its
  procedure), and mentions registry-private, the deleted probe and replaced
  runbooks only as history. History is recognised by structure: a historical
  heading (History, Decommission, Migration...), a superseded banner, a dated
  event or a citation of a post-mortem, plan or ADR, or a phrase that puts the
  sentence in the past by itself ("migrated from", "decommissioned", "no
  longer"); "was" or "removed" alone excuse nothing.

  Background:
    Given the infra repository checkout

  Scenario Outline: The document <doc> no longer describes registry-private as current
    Then the document "<doc>" says what it must now say and mentions registry-private only as history

    Examples:
      | doc                                              |
      | docs/runbooks/registry-vm.md                     |
      | docs/runbooks/registry-rebuild-image.md          |
      | docs/runbooks/forgejo-registry-rebuild-image.md  |
      | docs/runbooks/forgejo-registry-breakglass.md     |
      | docs/architecture/ci-cd.md                       |
      | docs/architecture/monitoring.md                  |
      | .claude/CLAUDE.md                                |
      | ../CLAUDE.md                                     |
      | .claude/reference/service-catalog.md             |
