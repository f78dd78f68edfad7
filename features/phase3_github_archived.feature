@phase3 @readonly @project
Feature: GitHub repositories are archived once their project is cut over
  beadboard (project beads-server) and claude-memory-mcp moved to Forgejo; after their
  cutover rows the GitHub repositories are archived (read through GitHub's public
  repository API). Rows are projects: `--project beads-server` selects the beadboard archive.

  Scenario Outline: <project>'s GitHub repository is archived
    Given the GitHub repository of <project>
    Then GitHub says the repository is archived

    Examples:
      | project           |
      | beads-server      |
      | claude-memory-mcp |
