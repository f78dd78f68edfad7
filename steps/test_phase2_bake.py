from pytest_bdd import scenarios

scenarios("phase2_bake.feature")
