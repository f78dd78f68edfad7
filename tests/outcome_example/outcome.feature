# A self-contained feature for the Pending / NotJudged outcomes (copied into a temporary project by
# tests/test_outcomes.py; the real gates live in features/).
Feature: Outcomes of a gate

  @phase2 @readonly
  Scenario: A criterion that holds
    Then the criterion "holds"

  @phase2 @readonly
  Scenario: A criterion whose window is still open
    Then the criterion "pending"

  @phase2 @readonly
  Scenario: A criterion the inventory opts out of
    Then the criterion "not judged"

  @phase2 @readonly @red
  Scenario: A criterion that is broken so far
    Then the criterion "failed"

  @phase2 @readonly
  Scenario: A gate whose client the inventory opts out of before it starts
    Then the criterion "holds"
