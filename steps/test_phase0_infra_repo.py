from pytest_bdd import scenarios

scenarios("phase0_infra_repo.feature")
