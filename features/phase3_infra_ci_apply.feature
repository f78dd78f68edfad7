@phase3 @readonly @project
Feature: infra-ci's cutover: the next push to master applies cleanly
  The plan's Phase 3 row for infra-ci flips the image references in the infra
  repository's .woodpecker files and says: verify the next push to master applies
  cleanly. Woodpecker reports each push's apply pipeline as a commit status on
  Forgejo; the newest push that ran it must be green (still running = pending).

  Background:
    Given the Forgejo repository API as the repository reader

  Scenario Outline: The newest push to <project>'s repository applies cleanly
    Then the newest apply of the repository of "<project>" succeeded

    Examples:
      | project  |
      | infra-ci |
