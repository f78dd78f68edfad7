@phase3 @cluster @project
Feature: Phase 3 - each project is cut over to Forgejo, in the plan's order
  One row per project of the inventory's [[projects]], in cutover order (lowest
  blast radius first); run one with `pytest -m phase3 -k <project>`. A project is
  cut over when its workload's pod template names Forgejo, the rollout finished,
  every running pod's imageID is the digest Forgejo serves for that tag, that
  image is intact on Forgejo, and every project before it is cut over too.
  Projects cut over outside the cluster (kind = "none": CI files, docs) are
  judged by the static gates; their rows here only check the order.

  @readonly
  Scenario Outline: <project> is cut over to Forgejo
    Given the project "<project>" of the inventory
    Then every project before it in the cutover order is cut over
    And its pod template images come from Forgejo
    And its rollout is complete
    And every running pod of it runs the image Forgejo serves for its tag
    And its image passes the integrity check on Forgejo

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
      | infra-ci             |
      | claude-memory-mcp    |
