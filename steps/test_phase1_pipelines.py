from pytest_bdd import scenarios

scenarios("phase1_pipelines.feature")
