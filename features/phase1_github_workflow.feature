@phase1 @readonly @project
Feature: A project that moved its build to Woodpecker no longer builds on GitHub Actions
  The plan's Phase 1 row for beadboard: push to Forgejo, a new .woodpecker.yml, and
  disable the GitHub Actions workflow (archiving the repository waits for Phase 3).
  Read through GitHub's public API: every workflow of the repository is disabled.

  Scenario Outline: <project>'s GitHub Actions workflows are disabled
    Given the GitHub Actions workflows of <project>
    Then no workflow of it is active on GitHub

    Examples:
      | project      |
      | beads-server |
