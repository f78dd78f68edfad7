@phase3 @cluster @project
Feature: Phase 3 - each project is cut over to Forgejo, in the plan's order
  One row per project of the inventory's [[projects]], in cutover order (lowest
  blast radius first); run one with `pytest -m phase3 --project <project>`. A project
  is its own image(s) and every workload running one, in containers and init
  containers, in any namespace (Deployments and CronJobs); images that are not
  the project's are listed as ignored, never judged. A project is cut over when
  every pod template names Forgejo for its images, every rollout finished, every
  running pod runs the template, with the digest Forgejo serves for the tag,
  that image is intact on Forgejo; each row judges its own project first and
  the order last (every project before it cut over: an earlier project's checks
  are taken from its own row of this run, with when, or judged now when its row
  did not run, as with --project). Projects cut over outside
  the cluster (no workloads: CI files, docs) are judged by the static gates.

  @readonly
  Scenario Outline: <project> is cut over to Forgejo
    Given the project "<project>" of the inventory
    Then its pod templates name Forgejo for the project's images
    And its rollouts are complete
    And every running pod of it runs its templates' images
    And every running pod of it runs the digest Forgejo serves for its tag
    And its images pass the integrity check on Forgejo
    And every project before it in the cutover order is cut over

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
