from pytest_bdd import scenarios

scenarios("phase1_github_workflow.feature")
