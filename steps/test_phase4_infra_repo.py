from pytest_bdd import scenarios

scenarios("phase4_infra_repo.feature")
