from pytest_bdd import scenarios

scenarios("phase1_dual_push.feature")
