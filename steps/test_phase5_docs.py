from pytest_bdd import scenarios

scenarios("phase5_docs.feature")
