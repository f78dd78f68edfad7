@phase5 @static @readonly
Feature: Phase 5 documentation describes Forgejo as the registry
  Each document of the plan's Phase 5 table exists (a replaced one is gone or
  carries a superseded banner) and mentions registry-private only as history:
  under a historical heading (History, Decommissioned, Legacy, Migration...),
  in a document with a superseded banner, or in a sentence that says so in the
  past tense ("was", "decommissioned", "migrated from", "no longer"...).

  Background:
    Given the infra repository checkout

  Scenario Outline: The document <doc> no longer describes registry-private as current
    Then the document "<doc>" mentions registry-private only as history

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
