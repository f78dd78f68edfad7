from pytest_bdd import scenarios

scenarios("phase3_infra_ci_apply.feature")
