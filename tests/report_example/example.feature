# A self-contained feature for the report machinery's own tests (copied into a temporary
# project by tests/test_report.py; the real gates live in features/).
Feature: Report example against a loopback registry

  @phase0 @readonly
  Scenario: A gate that passes
    Given the example registry
    When the gate reads "/v2/" with its token
    Then the answer is HTTP 200

  @phase0 @readonly
  Scenario: A gate that finds a product defect
    Given the example registry
    When the gate reads "/v2/viktor/app/manifests/missing" with its token
    Then the answer is HTTP 200

  @phase0 @readonly
  Scenario: A gate that cannot reach its registry
    Given a registry that does not listen
    When the gate reads "/v2/" with its token
    Then the answer is HTTP 200

  @phase2 @readonly
  Scenario: A bake gate that shows its PromQL and integrity evidence
    Given the example registry
    Then the evidence of the bake is attached

  @phase3 @readonly @project
  Scenario Outline: Cutover of <project>
    Given the example registry
    Then the cutover matrix of <project> is attached on node <node>

    Examples:
      | project        | node      |
      | payslip-ingest | k8s-node1 |
      | job-hunter     | k8s-node2 |

  @phase0 @readonly
  Scenario: A gate whose client cannot be built
    Given the example registry
    Then the unbuildable client answers
